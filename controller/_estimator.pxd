from controller._types cimport Inputs, GaitState


cdef class Estimator:
    # parameters (set by configure, outside the tick)
    cdef double hs_load_N
    cdef double to_load_N
    cdef double hold_s
    cdef double min_stride_s
    cdef double max_stride_s
    # state
    cdef GaitState state
    cdef double cond_since_s      # when the pending load condition first held (-1 = none)
    cdef double prev_stride_s     # stride before the last one (for confidence)

    cdef void reset(self) noexcept nogil
    cdef void step(self, const Inputs* inp, double now_s) noexcept nogil
