# POSIX real-time primitives (implemented in _rt.pyx).

cdef long long monotonic_ns() noexcept nogil
cdef void sleep_until_ns(long long t_ns) noexcept nogil

cdef class Cadence:
    cdef readonly long long period_ns, start_ns, next_ns, miss_ns, spin_ns
    cdef readonly long long ticks, missed, skipped, overruns, late_ns, max_late_ns
    cdef long long wake(self, long long now_ns) noexcept nogil
    cdef void advance(self, long long end_ns) noexcept nogil
    cdef long long sleep(self) noexcept nogil
