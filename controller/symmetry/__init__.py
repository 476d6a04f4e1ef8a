"""Gait symmetry: stride-by-stride analysis of both legs, and the symmetry-seeking adaptation."""
