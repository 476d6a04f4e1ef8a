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
