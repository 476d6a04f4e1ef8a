# cython: language_level=3
"""The real-time loop on a GIL-free CAN link: the whole tick without the GIL.

Per period: sleep to the deadline, read the link into the inputs, update the
kernels, write the command frame, publish the telemetry row into the shared
ring, export the cadence's counters, and only then, at a stride boundary, look
for a new parameter snapshot.  The GIL is taken for one thing only, the retune after
a new snapshot arrived (rare, and after the tick's work); the runtime runs this
in a process of its own (:mod:`controller.runtime.process`), so no other thread holds it.
"""
from libc.stdint cimport int64_t
from posix.unistd cimport getppid
from controller.runtime._rt cimport Cadence, monotonic_ns
from controller.runtime._ring cimport TelemetryRing, ParamSnapshot
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


def run_loop(Tick tick, FrameLink link, Cadence cadence, TelemetryRing ring, ParamSnapshot snapshot,
             double[::1] values, int64_t[::1] stats, Py_ssize_t stop_word, long long t0_ns, retune,
             requests, Py_ssize_t req_word, Py_ssize_t ack_word, Py_ssize_t link_word=-1):
    """Tick until ``stats[stop_word]`` becomes non-zero, or the process that started this one dies.

    At a stride boundary (or any tick while not walking), ``retune(values)`` is called
    with the GIL, after the tick's work, when a new parameter snapshot was taken into
    ``values``, and ``retune(None)`` while it last returned True (a ramp in progress).
    It must not raise.  ``requests()`` (also with the GIL, after the tick's work) is called
    while ``stats[req_word]`` differs from ``stats[ack_word]``: a request from the console
    waits to be answered (it answers by setting the ack word).  ``stats[link_word]`` (if >= 0)
    gets the link's ``down_errno`` every tick: non-zero while the bus is lost.
    """
    # publish_row writes N_TELEMETRY values into a ring slot: a narrower ring would be overrun
    if ring is None or ring.width != N_TELEMETRY:
        raise ValueError(f"the telemetry ring's rows must hold {N_TELEMETRY} values "
                         f"(controller.kernels.telemetry.COLUMNS), got {None if ring is None else ring.width}")
    if values.shape[0] != snapshot.n:
        raise ValueError(f"values holds {values.shape[0]}, the snapshot {snapshot.n}")
    if stats.shape[0] <= max(stop_word, W_MAX_LATE, req_word, ack_word, link_word):
        raise ValueError("stats is too short")
    cdef long long wake, t1, t2, t3
    cdef double now_s
    cdef Py_ssize_t slot
    cdef int64_t* words = &stats[0]
    cdef int parent = getppid()
    cdef bint ramping = False
    with nogil:
        while rtloop_load(&words[stop_word]) == 0:
            # a supervisor that died cannot stop us: stop ourselves (the driver is then switched
            # off), so a restarted service never finds a second controller on the bus
            if cadence.ticks % PARENT_CHECK_TICKS == 0 and getppid() != parent:
                break
            wake = cadence.sleep()
            cadence.wake(wake)
            now_s = (wake - t0_ns) * 1e-9
            tick.read_link(link, now_s)
            t1 = monotonic_ns()
            tick._update(now_s)
            t2 = monotonic_ns()
            tick.write_link(link)
            t3 = monotonic_ns()
            tick.timing[0] = cadence.late_ns * 1e-9
            tick.timing[1] = (t1 - wake) * 1e-9
            tick.timing[2] = (t2 - t1) * 1e-9
            tick.timing[3] = (t3 - t2) * 1e-9
            slot = ring.claim()
            if slot >= 0:
                tick.publish_row(ring.data + slot * ring.width)
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
            if tick.at_stride_boundary():
                if snapshot.take(&values[0]):
                    with gil:
                        ramping = retune(values)
                elif ramping:
                    with gil:
                        ramping = retune(None)
            if rtloop_load(&words[req_word]) != rtloop_load(&words[ack_word]):
                with gil:
                    requests()
            cadence.advance(monotonic_ns())
