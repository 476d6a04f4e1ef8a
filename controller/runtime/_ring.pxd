# Lock-free channels over shared memory (implemented in _ring.pyx).
from libc.stdint cimport uint64_t

cdef class TelemetryRing:
    cdef unsigned char[::1] buf
    cdef uint64_t* head
    cdef uint64_t* tail
    cdef uint64_t* dropped_
    cdef double* data
    cdef readonly Py_ssize_t capacity, width
    cdef uint64_t mask
    cdef readonly object rows
    cdef Py_ssize_t claim(self) noexcept nogil
    cdef void publish(self) noexcept nogil

cdef class ParamSnapshot:
    cdef unsigned char[::1] buf
    cdef uint64_t* seq
    cdef double* values
    cdef readonly Py_ssize_t n
    cdef uint64_t seen
    cdef bint take(self, double* out) noexcept nogil
    cdef uint64_t put(self, const double* values) noexcept nogil


# Layout of one parameter publication (ParamChannel.published; retune_length): values[SNAP_COUNT]
# is the number of steps (1..PARAM_MAX_STEPS), the base the steps were blended from starts at
# SNAP_BASE, step k (0-based) at SNAP_BASE + (k + 1) * n; the last step used is the target.
cdef enum:
    PARAM_MAX_STEPS = 4
    SNAP_COUNT = 0
    SNAP_BASE = 2


cdef class ParamChannel:
    cdef readonly ParamSnapshot published
    cdef readonly ParamSnapshot in_force
    cdef object _words
    cdef uint64_t* words
    cdef Py_ssize_t w_taken, w_accepted, w_refused, w_applied, w_rejected, w_code, w_mask0, w_mask1
    cdef readonly Py_ssize_t n
    cdef void report_accepted(self, uint64_t generation, const double* target) noexcept nogil
    cdef void report_refused(self, uint64_t generation, int code, uint64_t mask0, uint64_t mask1) noexcept nogil
    cdef void report_applied(self, uint64_t generation) noexcept nogil
