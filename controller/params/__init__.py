"""The parameter registry (every tunable value, its bounds and units) and the parameter file."""
