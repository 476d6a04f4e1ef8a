# Small numeric helpers shared by the kernels (inline, nogil, no allocation).

cdef inline double clamp(double x, double lo, double hi) noexcept nogil:
    """``x`` limited to [lo, hi]; NaN passes through (callers that must not see NaN test for it)."""
    return lo if x < lo else (hi if x > hi else x)


cdef inline double clamp01(double x) noexcept nogil:
    return 0.0 if x < 0.0 else (1.0 if x > 1.0 else x)
