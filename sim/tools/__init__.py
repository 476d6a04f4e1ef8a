"""Offline tools that regenerate the simulator's shipped data files from their source tables in ``sim/data/sources``."""
