"""Offline tools that regenerate the simulator's shipped data files from ``shared/data``."""
