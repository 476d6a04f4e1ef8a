# cython: language_level=3
"""Simulated drives: the protocol side of a motor drive over the plant's motor.

:class:`SimDrive` is the base (declared in _simdrive.pxd): ``receive`` takes one host frame,
``respond`` says what the drive sends after the plant moved.  Both run without the GIL on fixed
records, so the lock-step simulator keeps its speed whatever the drive.  :class:`AkMitSimDrive`
is the CubeMars / T-Motor AK series in MIT mode: its firmware (MIT frames, ranges, error codes)
lives in the plant (:meth:`sim._plant.AnklePlant.driver_frame`, ``reply_payload``), which it was
built with; this class only routes frames to it.  Which simulated drive a run uses comes from the
drive table (:mod:`hal.drives`, part ``sim``).
"""
from sim._plant cimport AnklePlant
from hal._mit cimport MIT_FRAME_NONE
from hal._link cimport LINK_REMOTE


cdef class SimDrive:
    """A drive that does nothing: hears no frame, sends none (subclasses override both)."""

    def __init__(self, AnklePlant plant not None, **options):
        if options:
            raise ValueError(f"unknown simulated drive option(s): {', '.join(sorted(options))}")
        self.plant = plant
        self.name = ""

    cdef int receive(self, const CanFrame* f, double now_s) noexcept nogil:
        return 0

    cdef int respond(self, int due, double now_s, bint cyclic, CanFrame* out, int max_out) noexcept nogil:
        return 0

    # ---- tools and tests ----
    def receive_frame(self, unsigned int can_id, data, double now_s, bint remote=False):
        """:meth:`receive` from Python: returns the replies it made due."""
        cdef CanFrame f
        cdef bytes b = bytes(data)
        if len(b) > 8:
            raise ValueError(f"a CAN frame carries 0..8 bytes, got {len(b)}")
        f.can_id, f.dlc, f.flags = can_id, len(b), LINK_REMOTE if remote else 0
        for i in range(len(b)):
            f.data[i] = b[i]
        return self.receive(&f, now_s)

    def respond_frames(self, int due, double now_s, bint cyclic=True):
        """:meth:`respond` from Python: [(can_id, bytes)]."""
        cdef CanFrame out[SIM_DRIVE_MAX_OUT]
        cdef int n = self.respond(due, now_s, cyclic, out, SIM_DRIVE_MAX_OUT)
        return [(out[i].can_id, bytes(out[i].data[:out[i].dlc])) for i in range(n)]


cdef class AkMitSimDrive(SimDrive):
    """The AK driver in MIT mode: a reply on ``reply_id`` to every MIT frame on its id."""

    def __init__(self, AnklePlant plant not None, unsigned int reply_id=0):
        SimDrive.__init__(self, plant)
        self.name = "ak_mit"
        self.reply_id = reply_id

    cdef int receive(self, const CanFrame* f, double now_s) noexcept nogil:
        if f.flags & LINK_REMOTE or f.can_id != <unsigned int>self.plant.driver_id:
            return 0
        return 1 if self.plant._driver_frame(f.data, f.dlc, now_s) != MIT_FRAME_NONE else 0

    cdef int respond(self, int due, double now_s, bint cyclic, CanFrame* out, int max_out) noexcept nogil:
        cdef int i, dlc, n = 0
        for i in range(due):
            if n >= max_out:
                break
            dlc = self.plant._reply_payload(out[n].data)
            if dlc > 0:                 # a reply that could not be encoded is not sent
                out[n].can_id = self.reply_id
                out[n].dlc = dlc
                out[n].flags = 0
                n += 1
        return n
