"""Benchmarks and evaluation harnesses: ``python -m bench.<name> [--json]``.  They print figures, never pass/fail."""
