"""Real-time core of the powered ankle: gait-phase estimator, push-off controller, safety.

The per-tick kernels are Cython ``cdef`` classes (``_estimator``, ``_pushoff``,
``_safety``, composed by ``_tick``); this package's Python modules build them
from the parameter registry and run them (``loop``, ``cli``).
"""
