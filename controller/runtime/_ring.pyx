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
        cdef uint64_t g
        with nogil:
            g = self.put(&values[0])
        return g

    cdef uint64_t put(self, const double* values) noexcept nogil:
        """Writer, without the GIL: publish ``n`` values; returns the new generation."""
        cdef uint64_t s = ring_load_relaxed(self.seq)
        ring_store_release(self.seq, s + 1)       # odd: being written
        ring_fence_release()
        memcpy(self.values, values, self.n * 8)
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

    def read(self, double[::1] out):
        """Any reader: copy the present complete snapshot into ``out`` whether or not it was taken
        before (retries while a publication is in progress); False if nothing was published."""
        if out.shape[0] != self.n:
            raise ValueError(f"snapshot has {self.n} values, out holds {out.shape[0]}")
        cdef uint64_t s1, s2
        cdef int tries
        with nogil:
            for tries in range(100000):
                s1 = ring_load_acquire(self.seq)
                if s1 & 1:
                    continue
                memcpy(&out[0], self.values, self.n * 8)
                ring_fence_acquire()
                s2 = ring_load_relaxed(self.seq)
                if s1 == s2:
                    break
        return s1 == s2 and s1 > 0

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


# ----------------------------------------------------------------------------- parameter changes
#: Most ramp steps one publication carries (controller.runtime.retune.RAMP_STRIDES fits in it).
MAX_STEPS = PARAM_MAX_STEPS
#: Words of a ParamChannel's outcome (``words``), by name: the generation of the last snapshot the
#: tick took (written last), accepted, refused, and whose ramp reached its target; how many were
#: refused; the last refusal's code (controller.runtime.retune.REFUSALS) and the parameters it
#: names (a bit per registry index, two words).
CHANNEL_WORDS = ("params_taken", "params_accepted", "params_refused", "params_applied",
                 "params_rejected", "params_refusal_code", "params_refusal_mask0", "params_refusal_mask1")


def retune_length(Py_ssize_t n):
    """Values of one parameter publication for ``n`` parameters: the step count, a spare, the
    base the steps were blended from, and PARAM_MAX_STEPS step vectors (the last used is the
    target)."""
    return SNAP_BASE + (PARAM_MAX_STEPS + 1) * n


def _aligned_buffer(Py_ssize_t nbytes):
    import numpy as np
    raw = np.zeros(nbytes + LINE, dtype=np.uint8)
    start = (-raw.ctypes.data) % LINE
    return raw[start:start + nbytes]


cdef class ParamChannel:
    """One path for a parameter change: the publisher's ramp in, the tick's outcome out.

    ``published``: a :class:`ParamSnapshot` of :func:`retune_length` values, the whole ramp of one
    change (validated and blended by its publisher, outside the tick).  ``in_force``: the set the
    tick accepted last (its target), published back by the tick.  ``words``: int64 words the tick
    writes (CHANNEL_WORDS, at the indices given), read by the supervisor.  The tick's side
    (``report_*``) runs without the GIL; in the runtime the three live in the shared block
    (controller.runtime.shm), in lock-step :meth:`local` makes them in this process.
    """

    def __init__(self, ParamSnapshot published, ParamSnapshot in_force, words, dict index):
        cdef Py_ssize_t i
        if published.n != retune_length(in_force.n):
            raise ValueError(f"published holds {published.n} values, a ramp of {in_force.n} parameters "
                             f"needs {retune_length(in_force.n)}")
        missing = [w for w in CHANNEL_WORDS if w not in index]
        if missing:
            raise ValueError(f"words missing: {', '.join(missing)}")
        self._words = words
        cdef long long[::1] view = words
        for name in CHANNEL_WORDS:
            if not 0 <= index[name] < view.shape[0]:
                raise ValueError(f"word {name} at {index[name]} is outside the {view.shape[0]} words")
        self.published, self.in_force, self.n = published, in_force, in_force.n
        self.words = <uint64_t*>&view[0]
        self.w_taken = index["params_taken"]
        self.w_accepted = index["params_accepted"]
        self.w_refused = index["params_refused"]
        self.w_applied = index["params_applied"]
        self.w_rejected = index["params_rejected"]
        self.w_code = index["params_refusal_code"]
        self.w_mask0 = index["params_refusal_mask0"]
        self.w_mask1 = index["params_refusal_mask1"]

    @staticmethod
    def local(Py_ssize_t n):
        """A channel in this process's memory (the lock-step simulator, tests, benchmarks)."""
        import numpy as np
        published = ParamSnapshot(_aligned_buffer(snapshot_bytes(retune_length(n))), retune_length(n), True)
        in_force = ParamSnapshot(_aligned_buffer(snapshot_bytes(n)), n, True)
        words = np.zeros(len(CHANNEL_WORDS), dtype=np.int64)
        return ParamChannel(published, in_force, words, {w: i for i, w in enumerate(CHANNEL_WORDS)})

    def word(self, str name):
        """One outcome word, by its CHANNEL_WORDS name (acquire load)."""
        cdef Py_ssize_t i = CHANNEL_WORDS.index(name)
        cdef Py_ssize_t at = (self.w_taken, self.w_accepted, self.w_refused, self.w_applied, self.w_rejected,
                              self.w_code, self.w_mask0, self.w_mask1)[i]
        return <long long>ring_load_acquire(self.words + at)

    # ---- the tick's side (without the GIL) ----
    cdef void report_accepted(self, uint64_t generation, const double* target) noexcept nogil:
        """Snapshot ``generation`` was accepted; ``target`` is now the set in force or ramping in.
        The vector lands before the words that announce it."""
        self.in_force.put(target)
        ring_store_release(self.words + self.w_accepted, generation)
        ring_fence_full()
        ring_store_release(self.words + self.w_taken, generation)

    cdef void report_refused(self, uint64_t generation, int code, uint64_t mask0, uint64_t mask1) noexcept nogil:
        """Snapshot ``generation`` was refused for ``code`` (naming the parameters of the masks);
        the set in force stays."""
        ring_store_release(self.words + self.w_code, <uint64_t>code)
        ring_store_release(self.words + self.w_mask0, mask0)
        ring_store_release(self.words + self.w_mask1, mask1)
        ring_fence_full()
        ring_store_release(self.words + self.w_refused, generation)
        ring_store_release(self.words + self.w_rejected, ring_load_relaxed(self.words + self.w_rejected) + 1)
        ring_fence_full()
        ring_store_release(self.words + self.w_taken, generation)

    cdef void report_applied(self, uint64_t generation) noexcept nogil:
        """The ramp of snapshot ``generation`` reached its target (or it applied at once)."""
        ring_store_release(self.words + self.w_applied, generation)
