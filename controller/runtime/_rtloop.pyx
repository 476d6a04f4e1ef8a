# cython: language_level=3
"""The one loop body of the tick, on any CAN link, in real time and in lock-step.

:func:`tick_once` is the tick: read the link into the inputs, update the kernels,
write the command frame, publish the telemetry row.  Both loops call it, and
nothing else runs the kernels:

- :func:`run_loop`, real time: a cadence sleeps to each absolute deadline, then
  the tick, the counters, the parameter change, the console's request;
- :class:`LockStep`, the simulator's: the simulator decides when the next tick
  happens (it steps simulated time) and calls :meth:`LockStep.step`.

The link is any :class:`hal._link.FrameLink`: the board's SocketCAN, socketcand,
the simulator's in-process :class:`~hal._link.MemoryLink`, or, for a configured
python-can interface with no GIL-free link, :class:`~hal._link.PyCanLink` (which
takes the GIL inside its own recv/send, and is not real-time safe).

After the tick's work, at a stride boundary (or any tick while not walking), both loops take a
parameter change by the same call, :meth:`controller.kernels._tick.Tick.take_params`, without the
GIL (the supervisor validated the change and blended its ramp).  The GIL is taken for one thing
only, a console request (rare, and after the tick's work); the runtime runs :func:`run_loop` in
a process of its own (:mod:`controller.runtime.process`), so no other thread holds it.
"""
from libc.stdint cimport int64_t
from posix.unistd cimport getppid
from controller.runtime._rt cimport Cadence, monotonic_ns
from controller.runtime._ring cimport TelemetryRing, ParamChannel
from controller.kernels._tick cimport Tick
from controller.kernels._tables cimport N_TELEMETRY
from hal._link cimport FrameLink

cdef extern from *:
    """
    static inline int64_t rtloop_load(const int64_t* p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }
    static inline void rtloop_store(int64_t* p, int64_t v) { __atomic_store_n(p, v, __ATOMIC_RELAXED); }
    """
    int64_t rtloop_load(const int64_t* p) nogil
    void rtloop_store(int64_t* p, int64_t v) nogil

#: Words of ``stats`` the loop writes, in Cadence's order (controller.runtime.shm.STAT agrees).
DEF W_TICKS = 0
DEF W_MISSED = 1
DEF W_SKIPPED = 2
DEF W_OVERRUNS = 3
DEF W_MAX_LATE = 4
DEF PARENT_CHECK_TICKS = 128     # ~0.1 s at 1 kHz: how soon an orphaned loop notices

#: Ticks run by tick_once in this process, whichever loop called it (tests: the one body).
cdef long long _ticks_run = 0


cdef void tick_once(Tick tick, FrameLink link, double now_s, double* row, long long wake_ns,
                    double late_s) noexcept nogil:
    """THE tick, for every loop: read -> update -> write -> publish ``row`` (NULL: no row).

    ``wake_ns`` >= 0 (real time: when the loop woke): the phases are timed into the row's
    late / read / update / write columns; < 0 (lock-step): not timed, those columns stay NaN,
    so a lock-step run is the same bit for bit for a seed.  Called every tick: no allocation,
    no blocking, no Python object (unless the link is a PyCanLink).
    """
    global _ticks_run
    cdef long long t1 = 0, t2 = 0, t3 = 0
    tick.read_link(link, now_s)
    if wake_ns >= 0:
        t1 = monotonic_ns()
    tick._update(now_s)
    if wake_ns >= 0:
        t2 = monotonic_ns()
    tick.write_link(link)
    if wake_ns >= 0:
        t3 = monotonic_ns()
        tick.timing[0] = late_s
        tick.timing[1] = (t1 - wake_ns) * 1e-9
        tick.timing[2] = (t2 - t1) * 1e-9
        tick.timing[3] = (t3 - t2) * 1e-9
    if row != NULL:
        tick.publish_row(row)
    _ticks_run += 1


def ticks_run():
    """How many ticks :func:`tick_once` ran in this process (both loops count here)."""
    return _ticks_run


cdef class LockStep:
    """The lock-step loop: the simulator decides when the next tick happens.

    ``step(now_s, row)`` runs :func:`tick_once` on ``link`` at simulated time ``now_s``,
    writing telemetry row ``row`` of ``telemetry`` (``TELEMETRY_COLUMNS`` wide), then takes a
    parameter change from ``params`` (if given) as :func:`run_loop` does, by
    ``Tick.take_params``.  Ticks are not timed (their timing columns stay NaN).
    """
    cdef readonly Tick tick
    cdef readonly FrameLink link
    cdef double[:, ::1] table
    cdef readonly ParamChannel params

    def __init__(self, Tick tick not None, FrameLink link not None, double[:, ::1] telemetry not None,
                 ParamChannel params=None):
        from controller.kernels._tick import TELEMETRY_COLUMNS
        if telemetry.shape[1] != len(TELEMETRY_COLUMNS):
            raise ValueError("telemetry table has the wrong shape; use controller.runtime.loop.telemetry_table()")
        self.tick, self.link, self.table = tick, link, telemetry
        self.params = params

    @property
    def telemetry(self):
        return self.table.base

    def step(self, double now_s, Py_ssize_t row):
        """One tick at ``now_s`` into telemetry row ``row``; IndexError outside the table."""
        if not 0 <= row < self.table.shape[0]:
            raise IndexError(f"telemetry row {row} is outside the table's {self.table.shape[0]}")
        with nogil:
            tick_once(self.tick, self.link, now_s, &self.table[row, 0], -1, 0.0)
            if self.params is not None:
                self.tick.take_params(self.params)


def run_loop(Tick tick, FrameLink link, Cadence cadence, TelemetryRing ring, ParamChannel params,
             int64_t[::1] stats, Py_ssize_t stop_word, long long t0_ns,
             requests, Py_ssize_t req_word, Py_ssize_t ack_word, Py_ssize_t link_word=-1):
    """Tick until ``stats[stop_word]`` becomes non-zero, or the process that started this one dies.

    After the tick's work, ``tick.take_params(params)`` (without the GIL) takes a parameter
    change at a stride boundary (or any tick while not walking).  ``requests()`` (with the
    GIL, after the tick's work) is called while ``stats[req_word]`` differs from
    ``stats[ack_word]``: a request from the console waits to be answered (it answers by
    setting the ack word).  ``stats[link_word]`` (if >= 0)
    gets the link's ``down_errno`` every tick: non-zero while the bus is lost.
    """
    if not tick.configured:
        raise ValueError("the tick is not configured")
    # publish_row writes N_TELEMETRY values into a ring slot: a narrower ring would be overrun
    if ring is None or ring.width != N_TELEMETRY:
        raise ValueError(f"the telemetry ring's rows must hold {N_TELEMETRY} values "
                         f"(controller.kernels.telemetry.COLUMNS), got {None if ring is None else ring.width}")
    if stats.shape[0] <= max(stop_word, W_MAX_LATE, req_word, ack_word, link_word):
        raise ValueError("stats is too short")
    cdef long long wake
    cdef double now_s
    cdef Py_ssize_t slot
    cdef int64_t* words = &stats[0]
    cdef int parent = getppid()
    with nogil:
        while rtloop_load(&words[stop_word]) == 0:
            # a supervisor that died cannot stop us: stop ourselves (the driver is then switched
            # off), so a restarted service never finds a second controller on the bus
            if cadence.ticks % PARENT_CHECK_TICKS == 0 and getppid() != parent:
                break
            wake = cadence.sleep()
            cadence.wake(wake)
            now_s = (wake - t0_ns) * 1e-9
            slot = ring.claim()
            tick_once(tick, link, now_s, ring.data + slot * ring.width if slot >= 0 else NULL,
                      wake, cadence.late_ns * 1e-9)
            if slot >= 0:
                ring.publish()
            rtloop_store(&words[W_TICKS], cadence.ticks)
            rtloop_store(&words[W_MISSED], cadence.missed)
            rtloop_store(&words[W_SKIPPED], cadence.skipped)
            rtloop_store(&words[W_OVERRUNS], cadence.overruns)
            rtloop_store(&words[W_MAX_LATE], cadence.max_late_ns)
            if link_word >= 0:
                rtloop_store(&words[link_word], link.down_errno)
            # parameter edits take effect at a stride boundary (a heel strike), or at once while
            # not walking; a change in progress moves one step per boundary (the ramp)
            tick.take_params(params)
            if rtloop_load(&words[req_word]) != rtloop_load(&words[ack_word]):
                with gil:
                    requests()
            cadence.advance(monotonic_ns())
