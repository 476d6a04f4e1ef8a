# cython: language_level=3
"""CAN links the tick reads and writes: SocketCAN, socketcand and the in-process bus without the GIL,
python-can (for any other interface) with it.

``FrameLink.recv`` returns 1 with a frame, 0 when nothing is waiting, or a
negative errno; ``send`` returns 1 when the frame went out (or is queued in
this link's own buffer), else a negative errno.  Neither blocks, allocates or
touches a Python object (PyCanLink excepted: below).  Set-up (opening, the socketcand handshake) is done in
Python by :mod:`hal.links`, which hands the connected socket's descriptor over.

``down_errno`` is non-zero while the link is lost (the errno that said so): a
socketcand server that closed the connection (for good: a new connection is a new
link), a CAN interface that went down or away (until a frame goes through again).

- :class:`SocketCanLink`: a raw CAN_RAW socket; one ``read``/``write`` of a
  ``struct can_frame`` per frame (the board).
- :class:`SocketcandLink`: the socketcand ASCII protocol over TCP (``< frame ID
  SEC.USEC HEX >`` in, ``< send ID DLC B0 .. >`` out), e.g. the simulator's
  gateway on loopback.  A partial TCP write keeps its remainder for the next send,
  so the byte stream never tears.
- :class:`MemoryLink`: one end of an in-process bus (:func:`memory_link_pair`): two
  preallocated rings of ``CanFrame``, one per direction, so a frame crosses by one
  struct copy (the lock-step simulator's bus).  A full ring refuses the frame (-ENOBUFS,
  counted), as a CAN controller's full transmit queue does.
- :class:`PyCanLink`: a python-can bus behind the same interface, for the buses a user
  configures that have no GIL-free link (``virtual``, ``slcan``, ``pcan``, ...).  Its
  ``recv``/``send`` take the GIL, and python-can builds a Python object per frame: it is
  NOT real-time safe (a busy Python thread or the collector can delay the tick).
"""
from cpython.mem cimport PyMem_Malloc, PyMem_Free
from libc.errno cimport errno, EAGAIN, EINTR, ECONNRESET, EINVAL, ENOBUFS, ENETDOWN, ENODEV, ENXIO, EPIPE, EBADF, EIO
from libc.string cimport memcmp, memcpy, memmove, memset
from posix.unistd cimport read, write, close

cdef extern from "<sys/socket.h>" nogil:
    ssize_t recv(int fd, void* buf, size_t n, int flags)
    ssize_t send(int fd, const void* buf, size_t n, int flags)
    int MSG_DONTWAIT
    int MSG_NOSIGNAL

cdef extern from "<linux/can.h>" nogil:
    """
    #ifndef CAN_MTU
    #define CAN_MTU 16
    #endif
    """
    struct can_frame:
        unsigned int can_id
        unsigned char can_dlc
        unsigned char data[8]
    unsigned int CAN_EFF_FLAG
    unsigned int CAN_RTR_FLAG
    unsigned int CAN_ERR_FLAG
    unsigned int CAN_EFF_MASK
    unsigned int CAN_SFF_MASK

cdef extern from *:
    """
    static inline unsigned long long link_load_relaxed(const unsigned long long* p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }
    static inline unsigned long long link_load_acquire(const unsigned long long* p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
    static inline void link_store_release(unsigned long long* p, unsigned long long v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
    """
    unsigned long long link_load_relaxed(const unsigned long long* p) nogil
    unsigned long long link_load_acquire(const unsigned long long* p) nogil
    void link_store_release(unsigned long long* p, unsigned long long v) nogil

DEF RX_BYTES = 8192
DEF TX_BYTES = 4096
DEF MAX_TOKEN = 200      # longer than any frame line: garbage, skipped


cdef class FrameLink:
    """Base of the GIL-free CAN links; the descriptor is owned and closed by the link."""

    def __cinit__(self):
        self.fd = -1
        self.frames_in = self.frames_out = self.send_failures = self.bad_input = 0
        self.last_errno = 0
        self.down_errno = 0

    cdef int recv(self, CanFrame* f) noexcept nogil:
        return 0

    cdef int send(self, const CanFrame* f) noexcept nogil:
        return -1

    def close(self):
        """Close the descriptor (idempotent)."""
        if self.fd >= 0:
            close(self.fd)
            self.fd = -1

    def __dealloc__(self):
        if self.fd >= 0:
            close(self.fd)

    # ---- Python access, for set-up, tests and tools (not the tick) ----
    def discard(self):
        """Drop every frame waiting (what arrived before the loop began); returns how many."""
        cdef CanFrame f
        cdef long long n = 0
        with nogil:
            while self.recv(&f) > 0:
                n += 1
        return n

    def receive(self):
        """One frame as (can_id, data bytes, flags), None if none waiting; OSError on a link error."""
        cdef CanFrame f
        cdef int r
        with nogil:
            r = self.recv(&f)
        if r < 0:
            raise OSError(-r, f"CAN link receive failed (errno {-r})")
        if r == 0:
            return None
        return f.can_id, bytes(f.data[:f.dlc]), f.flags

    def transmit(self, unsigned int can_id, data, int flags=0):
        """Send one frame; OSError on a link error."""
        cdef CanFrame f
        cdef int r, i
        if len(data) > 8:
            raise ValueError(f"a classic CAN frame carries at most 8 bytes, got {len(data)}")
        if can_id > (CAN_EFF_MASK if flags & LINK_EXTENDED else CAN_SFF_MASK):
            raise ValueError(f"CAN id 0x{can_id:X} out of range")
        f.can_id, f.dlc, f.flags = can_id, len(data), flags
        for i in range(f.dlc):
            f.data[i] = data[i]
        with nogil:
            r = self.send(&f)
        if r < 0:
            raise OSError(-r, f"CAN link send failed (errno {-r})")


cdef class SocketCanLink(FrameLink):
    """A bound CAN_RAW socket (descriptor from :func:`hal.links.open_link`)."""

    def __init__(self, int fd):
        self.fd = fd

    cdef int recv(self, CanFrame* f) noexcept nogil:
        cdef can_frame raw
        cdef ssize_t n = read(self.fd, &raw, sizeof(can_frame))
        if n < 0:
            if errno == EAGAIN or errno == EINTR:
                return 0
            self.last_errno = errno
            if means_lost(errno):
                self.down_errno = errno
            return -errno
        self.down_errno = 0
        if n != sizeof(can_frame) or raw.can_dlc > 8:
            self.bad_input += 1
            return 0
        f.flags = 0
        if raw.can_id & CAN_ERR_FLAG:
            f.flags |= LINK_ERROR
        if raw.can_id & CAN_RTR_FLAG:
            f.flags |= LINK_REMOTE
        if raw.can_id & CAN_EFF_FLAG:
            f.flags |= LINK_EXTENDED
            f.can_id = raw.can_id & CAN_EFF_MASK
        else:
            f.can_id = raw.can_id & CAN_SFF_MASK
        f.dlc = raw.can_dlc
        memcpy(f.data, raw.data, 8)
        self.frames_in += 1
        return 1

    cdef int send(self, const CanFrame* f) noexcept nogil:
        cdef can_frame raw
        memset(&raw, 0, sizeof(can_frame))
        raw.can_id = f.can_id | (CAN_EFF_FLAG if f.flags & LINK_EXTENDED else 0)
        raw.can_dlc = f.dlc
        memcpy(raw.data, f.data, f.dlc)
        if write(self.fd, &raw, sizeof(can_frame)) != sizeof(can_frame):
            self.send_failures += 1
            self.last_errno = errno
            if means_lost(errno):
                self.down_errno = errno
            return -errno if errno else -1
        self.down_errno = 0
        self.frames_out += 1
        return 1


cdef inline bint means_lost(int e) noexcept nogil:
    # errors after which nothing gets through until the link is restored
    return e == ENETDOWN or e == ENODEV or e == ENXIO or e == EPIPE or e == ECONNRESET or e == EBADF


cdef inline int hex_value(unsigned char c) noexcept nogil:
    if c >= 48 and c <= 57:
        return c - 48
    if c >= 65 and c <= 70:
        return c - 55
    if c >= 97 and c <= 102:
        return c - 87
    return -1


cdef class SocketcandLink(FrameLink):
    """The socketcand raw-mode stream on a connected TCP socket (handshake already done)."""
    cdef unsigned char rx[RX_BYTES]
    cdef Py_ssize_t rx_len
    cdef unsigned char tx[TX_BYTES]
    cdef Py_ssize_t tx_len
    cdef readonly bint closed_by_peer

    def __init__(self, int fd):
        self.fd = fd
        self.rx_len = 0
        self.tx_len = 0
        self.closed_by_peer = False

    cdef int fill(self) noexcept nogil:
        cdef ssize_t n
        if self.rx_len == RX_BYTES:
            return 0
        n = recv(self.fd, &self.rx[self.rx_len], RX_BYTES - self.rx_len, MSG_DONTWAIT)
        if n > 0:
            self.rx_len += n
            return 1
        if n == 0:
            self.closed_by_peer = True
            self.last_errno = self.down_errno = ECONNRESET     # the server went away
            return -ECONNRESET
        if errno == EAGAIN or errno == EINTR:
            return 0
        self.last_errno = errno
        if means_lost(errno):
            self.down_errno = errno
        return -errno

    cdef bint word_at(self, Py_ssize_t i, Py_ssize_t end, const char* word, Py_ssize_t n) noexcept nogil:
        return end - i >= n and memcmp(&self.rx[i], word, n) == 0

    cdef int parse(self, Py_ssize_t start, Py_ssize_t end, CanFrame* f) noexcept nogil:
        """Parse ``< frame ID SEC.USEC HEX >`` or ``< error ... >`` in rx[start:end+1]."""
        cdef Py_ssize_t i = start + 1, digits = 0, nibbles = 0
        cdef unsigned int can_id = 0
        cdef int v
        while i < end and self.rx[i] == 32:
            i += 1
        if self.word_at(i, end, b"error", 5) and (i + 5 == end or self.rx[i + 5] == 32):
            f.can_id, f.dlc, f.flags = 0, 0, LINK_ERROR
            return 1
        if not self.word_at(i, end, b"frame ", 6):
            return 0
        i += 6
        while i < end:
            v = hex_value(self.rx[i])
            if v < 0:
                break
            can_id = (can_id << 4) | <unsigned int>v
            digits += 1
            i += 1
        # socketcand writes 3 digits for a standard id and 8 for an extended one; nothing else
        if (digits != 3 and digits != 8) or i >= end or self.rx[i] != 32:
            return 0
        i += 1
        while i < end and self.rx[i] != 32:          # the timestamp: not used, the tick stamps
            i += 1
        i += 1
        f.dlc = 0
        while i < end:
            v = hex_value(self.rx[i])
            if v < 0:
                break
            if nibbles % 2 == 0:
                if f.dlc == 8:
                    return 0
                f.data[f.dlc] = <unsigned char>(v << 4)
            else:
                f.data[f.dlc] |= <unsigned char>v
                f.dlc += 1
            nibbles += 1
            i += 1
        if nibbles % 2:
            return 0
        while i < end and self.rx[i] == 32:
            i += 1
        if i != end:
            return 0
        f.flags = LINK_EXTENDED if digits == 8 else 0
        if can_id > (CAN_EFF_MASK if digits == 8 else CAN_SFF_MASK):
            return 0
        f.can_id = can_id
        return 1

    cdef int recv(self, CanFrame* f) noexcept nogil:
        cdef Py_ssize_t start, end, used
        cdef int r
        while True:
            start = 0
            while start < self.rx_len and self.rx[start] != 60:     # '<'
                start += 1
            end = start
            while end < self.rx_len and self.rx[end] != 62:         # '>'
                end += 1
            if end < self.rx_len:                                   # one whole token
                r = self.parse(start, end, f)
                used = end + 1
                memmove(&self.rx[0], &self.rx[used], self.rx_len - used)
                self.rx_len -= used
                if r:
                    self.frames_in += 1
                    return 1
                self.bad_input += 1
                continue
            if start > 0 or self.rx_len - start > MAX_TOKEN:        # junk before '<', or overlong
                if self.rx_len - start > MAX_TOKEN:
                    self.bad_input += 1
                    start = self.rx_len
                memmove(&self.rx[0], &self.rx[start], self.rx_len - start)
                self.rx_len -= start
            r = self.fill()
            if r <= 0:
                return r

    cdef int flush(self) noexcept nogil:
        cdef ssize_t n
        while self.tx_len > 0:
            n = send(self.fd, self.tx, self.tx_len, MSG_DONTWAIT | MSG_NOSIGNAL)
            if n < 0:
                if errno == EINTR:
                    continue
                if errno == EAGAIN:
                    return 0
                self.last_errno = errno
                if means_lost(errno):
                    self.down_errno = errno
                return -errno
            memmove(&self.tx[0], &self.tx[n], self.tx_len - n)
            self.tx_len -= n
        return 1

    cdef int send(self, const CanFrame* f) noexcept nogil:
        cdef unsigned char line[64]
        cdef Py_ssize_t n = 0, k
        cdef int digits = 8 if f.flags & LINK_EXTENDED else 3, shift
        cdef const char* hexd = b"0123456789ABCDEF"
        if f.dlc > 8 or f.flags & (LINK_REMOTE | LINK_ERROR):
            self.send_failures += 1
            return -EINVAL              # socketcand carries data frames only
        memcpy(line, b"< send ", 7)
        n = 7
        for k in range(digits):
            shift = 4 * (digits - 1 - k)
            line[n] = hexd[(f.can_id >> shift) & 15]
            n += 1
        line[n] = 32
        line[n + 1] = hexd[f.dlc]
        n += 2
        for k in range(f.dlc):
            line[n] = 32
            line[n + 1] = hexd[f.data[k] >> 4]
            line[n + 2] = hexd[f.data[k] & 15]
            n += 3
        memcpy(&line[n], b" >", 2)
        n += 2
        if self.flush() < 0 or self.tx_len + n > TX_BYTES:
            self.send_failures += 1
            return -self.last_errno if self.last_errno else -ENOBUFS
        memcpy(&self.tx[self.tx_len], line, n)
        self.tx_len += n
        if self.flush() < 0:
            self.send_failures += 1
            return -self.last_errno
        self.frames_out += 1
        return 1


# ----------------------------------------------------------------------------- in-process bus
#: Largest ring a MemoryLink direction may have (frames): 16 bytes each, 256 MiB at most.
MAX_QUEUE_FRAMES = 1 << 24


cdef class FrameQueue:
    """One direction of an in-process bus: a ring of ``capacity`` CanFrames, allocated once.

    One producer and one consumer, each in any one thread (head and tail are atomic), so the
    simulated devices may answer from a thread of their own during commissioning.
    """
    cdef CanFrame* frames
    cdef readonly Py_ssize_t capacity
    cdef unsigned long long mask
    cdef unsigned long long head       # frames pushed (the producer's)
    cdef unsigned long long tail       # frames popped (the consumer's)

    def __cinit__(self, Py_ssize_t capacity):
        if not 1 <= capacity <= MAX_QUEUE_FRAMES or capacity & (capacity - 1):
            raise ValueError(f"a frame queue holds a power of two of frames, 1..{MAX_QUEUE_FRAMES}; "
                             f"got {capacity}")
        self.frames = <CanFrame*>PyMem_Malloc(capacity * sizeof(CanFrame))
        if self.frames == NULL:
            raise MemoryError(f"no memory for a queue of {capacity} CAN frames")
        memset(self.frames, 0, capacity * sizeof(CanFrame))
        self.capacity = capacity
        self.mask = capacity - 1
        self.head = self.tail = 0

    def __dealloc__(self):
        PyMem_Free(self.frames)

    cdef inline bint push(self, const CanFrame* f) noexcept nogil:
        cdef unsigned long long h = link_load_relaxed(&self.head)
        if h - link_load_acquire(&self.tail) >= <unsigned long long>self.capacity:
            return False
        self.frames[h & self.mask] = f[0]
        link_store_release(&self.head, h + 1)
        return True

    cdef inline bint pop(self, CanFrame* f) noexcept nogil:
        cdef unsigned long long t = link_load_relaxed(&self.tail)
        if t == link_load_acquire(&self.head):
            return False
        f[0] = self.frames[t & self.mask]
        link_store_release(&self.tail, t + 1)
        return True

    @property
    def pending(self):
        """Frames waiting to be received."""
        return <Py_ssize_t>(link_load_acquire(&self.head) - link_load_acquire(&self.tail))


cdef class MemoryLink(FrameLink):
    """One end of an in-process CAN bus (make both with :func:`memory_link_pair`).

    ``send`` copies the frame into the peer's receive ring, ``recv`` copies the oldest one
    out of this end's: no allocation, no Python object, no system call per frame.  A frame
    sent while the peer's ring is full is refused: ``send`` returns -ENOBUFS and counts it in
    ``send_failures`` (the ring keeps what it holds, nothing is overwritten).  The link is
    never lost (``down_errno`` stays 0).
    """
    cdef readonly FrameQueue rx
    cdef readonly FrameQueue tx

    def __init__(self, FrameQueue rx not None, FrameQueue tx not None):
        self.rx = rx
        self.tx = tx

    cdef int recv(self, CanFrame* f) noexcept nogil:
        if self.rx.pop(f):
            self.frames_in += 1
            return 1
        return 0

    cdef int send(self, const CanFrame* f) noexcept nogil:
        if f.dlc > 8:
            self.send_failures += 1
            return -EINVAL
        if self.tx.push(f):
            self.frames_out += 1
            return 1
        self.send_failures += 1
        self.last_errno = ENOBUFS
        return -ENOBUFS


def memory_link_pair(Py_ssize_t capacity=4096, Py_ssize_t reverse_capacity=0):
    """Two connected :class:`MemoryLink` ends ``(a, b)``: what ``a`` sends ``b`` receives and back.

    ``capacity`` frames may wait from ``a`` to ``b``, ``reverse_capacity`` (0: the same) from
    ``b`` to ``a``; each a power of two.  Both rings are allocated here, once.
    """
    cdef FrameQueue ab = FrameQueue(capacity)
    cdef FrameQueue ba = FrameQueue(reverse_capacity or capacity)
    return MemoryLink(ba, ab), MemoryLink(ab, ba)


# ----------------------------------------------------------------------------- python-can adapter
cdef class PyCanLink(FrameLink):
    """A python-can bus behind the FrameLink interface (buses with no GIL-free link).

    NOT real-time safe: ``recv`` and ``send`` take the GIL for python-can's ``recv(0)`` /
    ``send``, and python-can builds a Message per received frame (its virtual bus also
    deep-copies every frame sent), so a busy Python thread or the garbage collector can
    delay the tick.  The real-time runtime uses it only for a configured interface with no
    GIL-free link; the board's SocketCAN and socketcand have their own links.

    python-can's errors never leave the link: a failed ``recv`` returns -EIO, a failed
    ``send`` -EIO (counted in ``send_failures``), with the exception's text in ``last_error``.
    The bus stays the caller's (``close`` does not shut it down).
    """
    cdef readonly object bus
    cdef readonly str last_error
    cdef object _msg               # one Message, refilled for every frame sent

    def __init__(self, bus):
        import can
        if not (hasattr(bus, "send") and hasattr(bus, "recv")):
            raise TypeError(f"PyCanLink needs a python-can bus, got {type(bus).__name__}")
        self.bus = bus
        self.last_error = ""
        self._msg = can.Message(arbitration_id=0, data=bytearray(8), is_extended_id=False)

    cdef int recv(self, CanFrame* f) noexcept nogil:
        with gil:
            return self._recv(f)

    cdef int send(self, const CanFrame* f) noexcept nogil:
        with gil:
            return self._send(f)

    cdef int _recv(self, CanFrame* f) noexcept:
        cdef Py_ssize_t i, n
        try:
            msg = self.bus.recv(0.0)
        except Exception as e:          # python-can's CanError family, OSError, ...
            self.last_error = f"{type(e).__name__}: {e}"
            self.last_errno = EIO
            return -EIO
        if msg is None:
            return 0
        data = msg.data
        n = 0 if data is None else len(data)
        if n > 8:
            self.bad_input += 1
            return 0
        f.flags = 0
        if msg.is_error_frame:
            f.flags |= LINK_ERROR
        if msg.is_remote_frame:
            f.flags |= LINK_REMOTE
        if msg.is_extended_id:
            f.flags |= LINK_EXTENDED
        f.can_id = msg.arbitration_id
        f.dlc = n
        for i in range(n):
            f.data[i] = data[i]
        self.frames_in += 1
        return 1

    cdef int _send(self, const CanFrame* f) noexcept:
        msg = self._msg
        try:
            msg.arbitration_id = f.can_id
            msg.is_extended_id = (f.flags & LINK_EXTENDED) != 0
            msg.is_remote_frame = (f.flags & LINK_REMOTE) != 0
            msg.is_error_frame = (f.flags & LINK_ERROR) != 0
            msg.data = bytearray(f.data[:f.dlc])
            msg.dlc = f.dlc
            self.bus.send(msg)
        except Exception as e:
            self.last_error = f"{type(e).__name__}: {e}"
            self.send_failures += 1
            self.last_errno = EIO
            return -EIO
        self.frames_out += 1
        return 1


cdef class FrameRecorder:
    """Every frame sent on a bus, with the time it was sent, for a CAN log (see :class:`TapLink`).

    The frames wait in a buffer allocated once (``capacity`` frames); :attr:`now_s` is the
    time stamped on the frames sent from now on (the lock-step simulator sets its simulated
    time every step, so a log of a lock-step run is on the same clock as its telemetry).
    :meth:`drain` hands them out; a frame sent while the buffer is full is counted in
    :attr:`dropped`, never written over one waiting.
    """
    cdef CanFrame* frames
    cdef double* stamps
    cdef readonly Py_ssize_t capacity, count
    cdef readonly long long recorded, dropped
    cdef public double now_s

    def __cinit__(self, Py_ssize_t capacity=65536):
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1 frame, got {capacity}")
        self.frames = <CanFrame*>PyMem_Malloc(capacity * sizeof(CanFrame))
        self.stamps = <double*>PyMem_Malloc(capacity * sizeof(double))
        if self.frames == NULL or self.stamps == NULL:
            raise MemoryError()
        self.capacity = capacity
        self.count = 0
        self.recorded = self.dropped = 0
        self.now_s = 0.0

    def __dealloc__(self):
        PyMem_Free(self.frames)
        PyMem_Free(self.stamps)

    cdef inline void add(self, const CanFrame* f) noexcept nogil:
        if self.count >= self.capacity:
            self.dropped += 1
            return
        self.frames[self.count] = f[0]
        self.stamps[self.count] = self.now_s
        self.count += 1
        self.recorded += 1

    def drain(self):
        """The frames waiting, oldest first, as [(t_s, can_id, flags, data bytes)]; then none wait."""
        cdef Py_ssize_t i
        out = [(self.stamps[i], self.frames[i].can_id, self.frames[i].flags,
                bytes(self.frames[i].data[:self.frames[i].dlc])) for i in range(self.count)]
        self.count = 0
        return out


cdef class TapLink(FrameLink):
    """A link that records every frame sent through it into a :class:`FrameRecorder`.

    Put one on each end of a bus (the lock-step simulator's host and devices) with the same
    recorder and the recorder holds the bus's traffic in the order it was sent.  Receiving
    passes through untouched; a send the inner link refuses was never on the bus and is not
    recorded (it is counted in this link's ``send_failures``, as the inner link counts it).
    """
    cdef readonly FrameLink inner
    cdef readonly FrameRecorder recorder

    def __init__(self, FrameLink inner not None, FrameRecorder recorder not None):
        self.inner = inner
        self.recorder = recorder

    cdef int recv(self, CanFrame* f) noexcept nogil:
        cdef int r = self.inner.recv(f)
        if r > 0:
            self.frames_in += 1
        return r

    cdef int send(self, const CanFrame* f) noexcept nogil:
        cdef int r = self.inner.send(f)
        if r > 0:
            self.frames_out += 1
            self.recorder.add(f)
        else:
            self.send_failures += 1
            self.last_errno = -r
        return r
