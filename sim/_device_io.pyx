# cython: language_level=3
"""The simulated devices' frames on a CAN link: the motor drive and the sensor node around one plant.

:class:`DeviceIO` is the per-step frame work of :class:`sim.devices.SimAnkle`: every host frame
to the simulated drive (a :class:`sim._simdrive.SimDrive`: the protocol of the drive the run
chose), the drive's replies and periodic frames, the sensor node's samples, status and
sound-side frames (hal._sensor_frames, the protocol's one definition), all on any
:class:`hal._link.FrameLink` without the GIL.
"""
from libc.math cimport floor
from hal._sensor_frames cimport SENSOR_IMU_ID, SENSOR_LOAD_ID, SENSOR_STATUS_ID, SENSOR_SOUND_ID
from hal._link cimport FrameLink, CanFrame, LINK_ERROR, LINK_EXTENDED
from sim._plant cimport AnklePlant
from sim._simdrive cimport SimDrive, SIM_DRIVE_MAX_OUT


#: The sound-side node's frame period [s] (hal/sensor_node.dbc: SOUND_SIDE, 500 Hz).
SOUND_PERIOD_S = 0.002
cdef double _SOUND_PERIOD_S = SOUND_PERIOD_S


cdef class DeviceIO:
    """The simulated drive's and sensor node's frames on a CAN link (any :class:`hal._link.FrameLink`).

    ``receive`` hands every host frame to the drive, ``reply`` / ``send`` / the sensor samples
    put the devices' frames on the link.  :meth:`step` is a whole lock-step step without any fault
    injection active, in one call; with injections, SimAnkle composes the same parts from
    Python (so the frames, and their order, are the same either way).
    """
    cdef readonly AnklePlant plant
    cdef readonly SimDrive drive
    cdef readonly FrameLink link
    cdef readonly long long frames_in, frames_out, frames_lost
    cdef readonly double status_period_s
    cdef readonly double next_status_s        # the status frame is due at this simulated time
    cdef readonly bint sound_node
    cdef readonly long sound_frames           # SOUND_SIDE frames sent: the next is due at this many periods
    cdef CanFrame out
    cdef CanFrame drive_out[SIM_DRIVE_MAX_OUT]

    def __init__(self, AnklePlant plant not None, SimDrive drive not None, FrameLink link not None,
                 double status_period_s=0.02, bint sound_node=False):
        if drive.plant is not plant:
            raise ValueError("the simulated drive must drive this plant")
        if not status_period_s > 0.0:
            raise ValueError(f"status period must be > 0 s, got {status_period_s}")
        self.plant, self.drive, self.link = plant, drive, link
        self.status_period_s = status_period_s
        self.next_status_s = 0.0
        self.sound_node = sound_node
        self.sound_frames = 0
        self.frames_in = self.frames_out = self.frames_lost = 0
        self.out.flags = 0

    cdef inline void _emit(self, unsigned int can_id, int dlc) noexcept nogil:
        # self.out.data holds the payload; a payload that could not be encoded (dlc <= 0) is not sent
        if dlc <= 0:
            return
        self.out.can_id = can_id
        self.out.dlc = dlc
        self.out.flags = 0
        if self.link.send(&self.out) > 0:
            self.frames_out += 1

    cdef int _receive(self, double now_s, bint lose) noexcept nogil:
        """Every host frame waiting: to the drive (``lose``: dropped, counted as lost).
        Returns how many replies the drive made due."""
        cdef CanFrame f
        cdef int due = 0
        while self.link.recv(&f) > 0:
            if lose:                            # lost on the way: the drive sees nothing
                self.frames_lost += 1
                continue
            self.frames_in += 1
            if f.flags & (LINK_EXTENDED | LINK_ERROR):
                continue
            due += self.drive.receive(&f, now_s)
        return due

    cdef void _reply(self, int due, double now_s, bint cyclic, bint send) noexcept nogil:
        # what the drive sends now (computed even when withheld, so its state moves on alike)
        cdef int i, n = self.drive.respond(due, now_s, cyclic, self.drive_out, SIM_DRIVE_MAX_OUT)
        if not send:
            return
        for i in range(n):
            if self.link.send(&self.drive_out[i]) > 0:
                self.frames_out += 1

    cdef bint _status_due(self, double now_s) noexcept nogil:
        return now_s >= self.next_status_s

    cdef bint _sound_due(self, double now_s) noexcept nogil:
        # on the 2 ms grid (counted, so no rounding drift; a 1 ms step sends every other one)
        return self.sound_node and now_s >= self.sound_frames * _SOUND_PERIOD_S - 1e-9

    cdef void _send_sound(self, double now_s) noexcept nogil:
        self._emit(SENSOR_SOUND_ID, self.plant._sound_payload(self.out.data))
        self.sound_frames = <long>floor(now_s / _SOUND_PERIOD_S + 1e-6) + 1

    def step(self, double now_s):
        """A lock-step step with no injection active: take the host's frames, advance the plant to
        ``now_s``, send the replies, the IMU and load samples, and the status and sound-side
        frames when due.  Returns True when a stride began."""
        cdef bint new_stride
        cdef int due
        due = self._receive(now_s, False)
        new_stride = self.plant._advance(now_s)
        self._reply(due, now_s, True, True)
        self._emit(SENSOR_IMU_ID, self.plant._imu_payload(self.out.data))
        self._emit(SENSOR_LOAD_ID, self.plant._load_payload(self.out.data))
        if self._status_due(now_s):
            self._emit(SENSOR_STATUS_ID, self.plant._status_payload(self.out.data))
            self.next_status_s += self.status_period_s
        if self._sound_due(now_s):
            self._send_sound(now_s)
        return new_stride

    # ---- the parts, for the steps with injections (sim.devices.SimAnkle.step_to) ----
    def receive(self, double now_s, bint lose=False):
        """Take every host frame waiting (``lose``: all lost); returns how many need a reply."""
        return self._receive(now_s, lose)

    def reply(self, int due, double now_s, bint send=True):
        """The drive's frames after the plant reached ``now_s``: its replies to ``due`` requests
        and its periodic frames; ``send`` False withholds them (stale_replies)."""
        self._reply(due, now_s, True, send)

    def send(self, unsigned int can_id, const unsigned char[::1] data, int dlc=-1):
        """Send ``data[:dlc]`` (all of it when dlc < 0) as a standard frame from the devices."""
        cdef int i, n = data.shape[0] if dlc < 0 else dlc
        if not 0 <= n <= min(8, data.shape[0]):
            raise ValueError(f"a frame carries 0..8 bytes of the {data.shape[0]} given, asked {n}")
        for i in range(n):
            self.out.data[i] = data[i]
        if n > 0:
            self._emit(can_id, n)

    def status_due(self, double now_s):
        """Whether the status frame is due at ``now_s``."""
        return self._status_due(now_s)

    def status_sent(self):
        """The status frame due went out (or was withheld): the next is one period later."""
        self.next_status_s += self.status_period_s

    def send_sound_if_due(self, double now_s):
        """The sound-side node's frame, when one is due at ``now_s``."""
        if self._sound_due(now_s):
            self._send_sound(now_s)

    def answer(self):
        """Commissioning: answer one host frame if one is waiting (the plant does not move: the
        driver settles on the command first, so the reply carries its torque).  Returns whether
        a frame came."""
        cdef CanFrame f
        cdef int due
        if self.link.recv(&f) <= 0:
            return False
        self.frames_in += 1
        if f.flags & (LINK_EXTENDED | LINK_ERROR):
            return True
        due = self.drive.receive(&f, self.plant.t_s)
        if due > 0:
            self.plant._settle_driver()
            self._reply(due, self.plant.t_s, False, True)
        return True
