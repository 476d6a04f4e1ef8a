# cython: language_level=3
"""POSIX real-time primitives: the monotonic clock, absolute-deadline sleep, the tick cadence.

``Cadence`` keeps the deadlines of a periodic loop on a fixed grid
(``start + k * period``), so the loop never drifts; it counts late wakes,
overruns and skipped deadlines.  Its bookkeeping takes the time as an argument
(``on_wake`` / ``finish``), so tests drive it with an injected clock; only
``wait`` reads the real clock and sleeps with ``clock_nanosleep(TIMER_ABSTIME)``.
The process-wide settings that need C (``mlockall``, timer slack) are here too;
``controller.runtime.rtsettings`` applies them from configuration.
"""
from libc.errno cimport errno, EINTR
from libc.string cimport strerror
from libc.stdint cimport int64_t
from posix.time cimport clock_gettime, timespec, CLOCK_MONOTONIC

cdef extern from "<time.h>" nogil:
    int clock_nanosleep(int clock_id, int flags, const timespec* request, timespec* remain)
    int TIMER_ABSTIME

cdef extern from "<sys/mman.h>" nogil:
    int mlockall(int flags)
    int munlockall()
    int MCL_CURRENT
    int MCL_FUTURE

cdef extern from "<sys/prctl.h>" nogil:
    int prctl(int option, unsigned long arg2, unsigned long arg3, unsigned long arg4, unsigned long arg5)
    int PR_SET_TIMERSLACK
    int PR_GET_TIMERSLACK
    int PR_SET_NAME

DEF NS_PER_S = 1000000000


cdef long long monotonic_ns() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return <long long>ts.tv_sec * NS_PER_S + ts.tv_nsec


cdef void sleep_until_ns(long long t_ns) noexcept nogil:
    cdef timespec ts
    ts.tv_sec = t_ns // NS_PER_S
    ts.tv_nsec = t_ns % NS_PER_S
    # an absolute deadline: a signal that interrupts the sleep does not move it
    while clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR:
        pass


def now_ns():
    """CLOCK_MONOTONIC in nanoseconds (the clock every process of the runtime shares)."""
    return monotonic_ns()


def sleep_until(long long t_ns):
    """Sleep until CLOCK_MONOTONIC reaches ``t_ns`` (absolute; returns at once if past)."""
    with nogil:
        sleep_until_ns(t_ns)


cdef class Cadence:
    """Deadlines of a periodic loop on the grid ``start_ns + k * period_ns``.

    Per tick: ``on_wake(now)`` records the lateness (``now`` minus the deadline);
    ``finish(end)`` moves to the next deadline.  A tick whose work ends after the
    next deadline is an overrun; the loop then runs the next tick at once (late), but
    deadlines that passed entirely are skipped, not caught up, and counted.  A
    deadline is missed when its tick starts more than ``miss_ns`` late or is skipped.

    ``spin_ns`` > 0: sleep until that long before the deadline, then poll the clock
    up to it.  This buys back the kernel's wake-up latency (tens to hundreds of µs
    without PREEMPT_RT) for that much CPU time per period; 0 on an RT kernel.
    """
    def __init__(self, long long period_ns, long long start_ns, long long miss_ns=500000,
                 long long spin_ns=0):
        if period_ns <= 0:
            raise ValueError(f"period must be positive, got {period_ns} ns")
        if not 0 <= spin_ns < period_ns:
            raise ValueError(f"spin must be in 0..period, got {spin_ns} ns")
        self.spin_ns = spin_ns
        if miss_ns <= 0:
            raise ValueError(f"miss threshold must be positive, got {miss_ns} ns")
        self.period_ns = period_ns
        self.start_ns = start_ns
        self.next_ns = start_ns
        self.miss_ns = miss_ns
        self.ticks = self.missed = self.skipped = self.overruns = 0
        self.late_ns = self.max_late_ns = 0

    cdef long long wake(self, long long now_ns) noexcept nogil:
        cdef long long late = now_ns - self.next_ns
        self.ticks += 1
        self.late_ns = late
        if late > self.max_late_ns:
            self.max_late_ns = late
        if late > self.miss_ns:
            self.missed += 1
        return late

    cdef void advance(self, long long end_ns) noexcept nogil:
        cdef long long behind
        self.next_ns += self.period_ns
        if end_ns > self.next_ns:
            self.overruns += 1
            behind = (end_ns - self.next_ns) // self.period_ns
            if behind > 0:
                self.next_ns += behind * self.period_ns
                self.skipped += behind
                self.missed += behind

    cdef long long sleep(self) noexcept nogil:
        cdef long long t
        if self.spin_ns == 0:
            sleep_until_ns(self.next_ns)
            return monotonic_ns()
        sleep_until_ns(self.next_ns - self.spin_ns)
        t = monotonic_ns()
        while t < self.next_ns:
            t = monotonic_ns()
        return t

    def on_wake(self, long long now_ns):
        """Record a wake at ``now_ns`` for the current deadline; returns the lateness [ns]."""
        return self.wake(now_ns)

    def finish(self, long long end_ns):
        """The tick's work ended at ``end_ns``: move to the next deadline."""
        self.advance(end_ns)

    def wait(self):
        """Sleep until the current deadline (without the GIL), record the wake; returns its time [ns]."""
        cdef long long t
        with nogil:
            t = self.sleep()
            self.wake(t)
        return t

    def export(self, int64_t[::1] out):
        """Write ticks, missed, skipped, overruns, max_late_ns into ``out[0:5]`` (shared stats)."""
        if out.shape[0] < 5:
            raise ValueError("out must hold 5 words")
        out[0] = self.ticks
        out[1] = self.missed
        out[2] = self.skipped
        out[3] = self.overruns
        out[4] = self.max_late_ns

    def rate_Hz(self, long long now_ns):
        """Ticks per second since the start."""
        if now_ns <= self.start_ns:
            return 0.0
        return self.ticks * 1e9 / (now_ns - self.start_ns)


def lock_memory():
    """mlockall(MCL_CURRENT | MCL_FUTURE): no page of this process is ever swapped or faulted out.

    Returns "" or the reason it was refused (errno text).
    """
    if mlockall(MCL_CURRENT | MCL_FUTURE) != 0:
        return strerror(errno).decode()
    return ""


def unlock_memory():
    """munlockall(); for tests that lock memory and must give it back."""
    munlockall()


def set_timer_slack_ns(unsigned long ns):
    """prctl(PR_SET_TIMERSLACK): how late the kernel may wake this thread to batch timers.

    Returns "" or the reason it was refused.
    """
    if ns == 0:
        return "timer slack must be at least 1 ns (0 would restore the default)"
    if prctl(PR_SET_TIMERSLACK, ns, 0, 0, 0) != 0:
        return strerror(errno).decode()
    return ""


def set_thread_name(str name):
    """prctl(PR_SET_NAME): what ps, top and the journal show for the calling thread (15 bytes)."""
    cdef bytes raw = name.encode()[:15]
    cdef const char* c_name = raw
    prctl(PR_SET_NAME, <unsigned long>c_name, 0, 0, 0)


def timer_slack_ns():
    """The calling thread's timer slack [ns]."""
    return prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0)
