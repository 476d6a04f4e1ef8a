# cython: language_level=3
"""Lock-free channels between the tick's process and the others, over shared memory.

``TelemetryRing``: one producer (the tick) and one consumer (the supervisor's
drain thread) pass fixed-width rows of float64 through a ring.  The producer
never waits: when the ring is full the row is dropped and counted.
``ParamSnapshot``: one writer (the supervisor) publishes a whole parameter
vector; the reader (the tick's process, between ticks) takes it only when it
read a complete, unchanged copy (a sequence lock), so it never sees half an edit.

Both sides build their own object over their own mapping of the same bytes;
indices are published with release stores and read with acquire loads.
"""
from libc.stdint cimport uint64_t
from libc.string cimport memcpy

cdef extern from *:
    """
    #include <stdint.h>
    static inline uint64_t ring_load_acquire(const uint64_t* p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
    static inline uint64_t ring_load_relaxed(const uint64_t* p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }
    static inline void ring_store_release(uint64_t* p, uint64_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
    static inline void ring_fence_acquire(void) { __atomic_thread_fence(__ATOMIC_ACQUIRE); }
    static inline void ring_fence_release(void) { __atomic_thread_fence(__ATOMIC_RELEASE); }
    static inline void ring_fence_full(void) { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
    """
    uint64_t ring_load_acquire(const uint64_t* p) nogil
    uint64_t ring_load_relaxed(const uint64_t* p) nogil
    void ring_store_release(uint64_t* p, uint64_t v) nogil
    void ring_fence_acquire() nogil
    void ring_fence_release() nogil
    void ring_fence_full() nogil

# Header words, each on its own cache line so producer and consumer do not share one.
DEF LINE = 64
DEF HEAD = 0          # rows written (producer)
DEF TAIL = LINE       # rows read (consumer)
DEF DROPPED = 2 * LINE   # rows the producer could not write (ring full)
DEF RING_HEADER = 3 * LINE
DEF SNAP_HEADER = LINE


def memory_fence():
    """A full memory barrier, for words written from Python that another process reads in order
    (the console's request: its code and argument before its sequence number)."""
    ring_fence_full()


def ring_bytes(Py_ssize_t capacity, Py_ssize_t width):
    """Bytes a ring of ``capacity`` rows of ``width`` float64 needs."""
    return RING_HEADER + capacity * width * 8


def snapshot_bytes(Py_ssize_t n):
    """Bytes a snapshot of ``n`` float64 values needs."""
    return SNAP_HEADER + n * 8


cdef class TelemetryRing:
    """A single-producer single-consumer ring of float64 rows in ``buffer``.

    Producer: ``slot()`` gives the row to fill (in ``rows``) or -1 when full,
    ``commit()`` publishes it.  Consumer: ``drain(out)`` copies rows out in order.
    ``capacity`` must be a power of two.
    """
    def __init__(self, buffer, Py_ssize_t capacity, Py_ssize_t width, bint reset=False):
        import numpy as np
        if capacity <= 0 or capacity & (capacity - 1):
            raise ValueError(f"capacity must be a power of two, got {capacity}")
        if width <= 0:
            raise ValueError(f"width must be positive, got {width}")
        self.buf = buffer
        if self.buf.shape[0] < ring_bytes(capacity, width):
            raise ValueError(f"buffer holds {self.buf.shape[0]} bytes, the ring needs "
                             f"{ring_bytes(capacity, width)}")
        if (<size_t>&self.buf[0]) % LINE:
            raise ValueError("buffer must be aligned to 64 bytes")
        self.capacity, self.width, self.mask = capacity, width, capacity - 1
        self.head = <uint64_t*>&self.buf[HEAD]
        self.tail = <uint64_t*>&self.buf[TAIL]
        self.dropped_ = <uint64_t*>&self.buf[DROPPED]
        self.data = <double*>&self.buf[RING_HEADER]
        self.rows = np.frombuffer(buffer, dtype=np.float64, count=capacity * width,
                                  offset=RING_HEADER).reshape(capacity, width)
        if reset:
            ring_store_release(self.head, 0)
            ring_store_release(self.tail, 0)
            ring_store_release(self.dropped_, 0)

    # ---- producer (the tick) ----
    cdef Py_ssize_t claim(self) noexcept nogil:
        cdef uint64_t h = ring_load_relaxed(self.head)
        if h - ring_load_acquire(self.tail) >= <uint64_t>self.capacity:
            ring_store_release(self.dropped_, ring_load_relaxed(self.dropped_) + 1)
            return -1
        return <Py_ssize_t>(h & self.mask)

    cdef void publish(self) noexcept nogil:
        ring_store_release(self.head, ring_load_relaxed(self.head) + 1)

    def slot(self):
        """Index in ``rows`` of the next row to fill, or -1 (ring full: the row is dropped)."""
        return self.claim()

    def commit(self):
        """Publish the row filled at ``slot()``."""
        self.publish()

    def push(self, const double[::1] row):
        """Copy ``row`` in and publish it; False if the ring was full (dropped)."""
        if row.shape[0] != self.width:
            raise ValueError(f"row has {row.shape[0]} values, the ring {self.width}")
        cdef Py_ssize_t i
        with nogil:
            i = self.claim()
            if i >= 0:
                memcpy(self.data + i * self.width, &row[0], self.width * 8)
                self.publish()
        return i >= 0

    # ---- consumer ----
    def drain(self, double[:, ::1] out):
        """Copy up to ``len(out)`` pending rows into ``out`` (oldest first); returns how many."""
        if out.shape[1] != self.width:
            raise ValueError(f"out has {out.shape[1]} columns, the ring {self.width}")
        cdef uint64_t t, h
        cdef Py_ssize_t n, k, i
        with nogil:
            t = ring_load_relaxed(self.tail)
            h = ring_load_acquire(self.head)
            n = <Py_ssize_t>(h - t)
            if n > out.shape[0]:
                n = out.shape[0]
            for k in range(n):
                i = <Py_ssize_t>((t + k) & self.mask)
                memcpy(&out[k, 0], self.data + i * self.width, self.width * 8)
            ring_store_release(self.tail, t + n)
        return n

    @property
    def pending(self):
        """Rows written and not yet drained."""
        return ring_load_acquire(self.head) - ring_load_acquire(self.tail)

    @property
    def written(self):
        """Rows published since the ring was reset."""
        return ring_load_acquire(self.head)

    @property
    def dropped(self):
        """Rows the producer dropped because the ring was full."""
        return ring_load_acquire(self.dropped_)


cdef class ParamSnapshot:
    """A parameter vector published whole by one writer, taken whole by one reader (seqlock).

    The sequence number is odd while the writer copies; the reader keeps a copy
    only if the number was even and unchanged across its read, else it tries
    again at the next tick.  ``generation`` counts completed publications.
    """
    def __init__(self, buffer, Py_ssize_t n, bint reset=False):
        if n <= 0:
            raise ValueError(f"n must be positive, got {n}")
        self.buf = buffer
        if self.buf.shape[0] < snapshot_bytes(n):
            raise ValueError(f"buffer holds {self.buf.shape[0]} bytes, the snapshot needs {snapshot_bytes(n)}")
        if (<size_t>&self.buf[0]) % LINE:
            raise ValueError("buffer must be aligned to 64 bytes")
        self.n = n
        self.seq = <uint64_t*>&self.buf[0]
        self.values = <double*>&self.buf[SNAP_HEADER]
        if reset:
            ring_store_release(self.seq, 0)
        self.seen = 0       # the reader takes any publication, including one made before it attached

    def publish(self, const double[::1] values):
        """Writer: publish ``values`` (all ``n`` of them) as the new snapshot."""
        if values.shape[0] != self.n:
            raise ValueError(f"snapshot has {self.n} values, got {values.shape[0]}")
        cdef uint64_t s
        with nogil:
            s = ring_load_relaxed(self.seq)
            ring_store_release(self.seq, s + 1)       # odd: being written
            ring_fence_release()
            memcpy(self.values, &values[0], self.n * 8)
            ring_store_release(self.seq, s + 2)
        return (s + 2) // 2

    cdef bint take(self, double* out) noexcept nogil:
        cdef uint64_t s1 = ring_load_acquire(self.seq), s2
        if s1 == self.seen or s1 & 1:
            return False
        memcpy(out, self.values, self.n * 8)
        ring_fence_acquire()
        s2 = ring_load_relaxed(self.seq)
        if s1 != s2:
            return False
        self.seen = s1
        return True

    def poll(self, double[::1] out):
        """Reader: copy a new complete snapshot into ``out``; False if none (or torn: retry later)."""
        if out.shape[0] != self.n:
            raise ValueError(f"snapshot has {self.n} values, out holds {out.shape[0]}")
        cdef bint got
        with nogil:
            got = self.take(&out[0])
        return got

    @property
    def generation(self):
        """Completed publications so far."""
        return ring_load_acquire(self.seq) // 2

    @property
    def taken(self):
        """Reader: the generation of the snapshot this reader last took (0: none yet).  Not
        :attr:`generation`, which may already count a publication made after the take."""
        return self.seen // 2
