# cython: language_level=3
"""The per-tick drive codec (declared in _codec.pxd): the one interface the tick has to a drive.

:class:`DriveCodec` is the base: its ``cdef`` methods are called every tick (no allocation, no
blocking, no GIL, never raise); the ``def`` methods are for set-up code, tools and tests.
:class:`AkMitCodec` is the CubeMars / T-Motor AK series in MIT mode, over the protocol's one
definition in :mod:`hal._mit`.  Which codec a run uses comes from the drive table,
:mod:`hal.drives`.

Units: the Command and the Inputs are the ankle's (rad, rad/s, N*m, + dorsiflexion, +
plantar-flexor torque); the codec maps them through the transmission the tick gives it
(:meth:`DriveCodec.set_transmission`, from ``actuator.*`` and ``calibration.motor_zero_rad``) to
the drive's output shaft and back.
"""
from libc.math cimport NAN
from posix.time cimport clock_gettime, timespec, CLOCK_MONOTONIC
from hal._mit cimport MitCommand, MitReply, mit_pack_command, mit_unpack_reply

MAX_FRAMES = DRIVE_MAX_FRAMES
READS = {"angle": DRIVE_READS_ANGLE, "velocity": DRIVE_READS_VELOCITY, "torque": DRIVE_READS_TORQUE,
         "temperature": DRIVE_READS_TEMPERATURE, "error": DRIVE_READS_ERROR, "supply": DRIVE_READS_SUPPLY}


cdef class DriveCodec:
    """A drive as the tick sees it.  Subclasses set the capability fields and override
    ``encode`` and ``decode``; the base encodes nothing and decodes nothing."""

    def __cinit__(self, *args, **kwargs):
        self.name = ""
        self.impedance = False
        self.readings = 0
        self.watchdog_s = NAN
        self.torque_limit_Nm = NAN
        self.velocity_limit_rad_s = NAN
        self.torque_range_name = "torque range"
        self.tx_id = 0
        self.n_rx_ids = 0
        # no transmission until the tick sets one: NaN encodes nothing (a non-finite command)
        self.ratio = self.efficiency = self.direction = self.motor_zero_rad = NAN
        self.motor_per_ankle_rad = self.motor_gain_per_ankle_gain = NAN
        self.period_s = NAN

    cdef void set_transmission(self, double ratio, double efficiency, double direction,
                               double motor_zero_rad) noexcept nogil:
        """How ankle values map to the driver shaft (called by the tick when its parameters
        are set; the same expressions the tick used before the codec existed)."""
        self.ratio, self.efficiency, self.direction = ratio, efficiency, direction
        self.motor_zero_rad = motor_zero_rad
        self.motor_per_ankle_rad = direction * ratio
        self.motor_gain_per_ankle_gain = 1.0 / (efficiency * ratio * ratio)

    cdef double motor_torque_Nm(self, const Command* cmd) noexcept nogil:
        """The command's feed-forward at the drive's shaft [N*m] (for a torque-only drive the whole
        torque): + motor torque turns the drive positive, + ankle torque is plantar-flexor."""
        return -cmd.torque_ff_Nm / (self.direction * self.ratio * self.efficiency)

    cdef void set_period(self, double period_s) noexcept nogil:
        """The loop's period [s] (called by the tick with its parameters): a codec with periodic
        frames of its own (a host heartbeat) counts encode calls against it, never a clock."""
        self.period_s = period_s

    cdef bint listens(self, unsigned int can_id) noexcept nogil:
        """Is ``can_id`` one this drive sends on (so decode must see it)?  Called every frame."""
        cdef int i
        for i in range(self.n_rx_ids):
            if self._rx_ids[i] == can_id:
                return True
        return False

    cdef int encode(self, const Command* cmd, CanFrame* out, int max_frames) noexcept nogil:
        """This tick's frame(s) for the bounded command into ``out``; returns how many (0: none
        can be sent, e.g. a non-finite value: the drive's watchdog takes over).  Every tick."""
        return 0

    cdef bint decode(self, unsigned int can_id, const unsigned char* data, int dlc, double now_s,
                     Inputs* inp) noexcept nogil:
        """A received frame into the drive readings of ``inp``; True if it was this drive's and
        used.  Every frame ``listens`` says is the drive's."""
        return False

    # ---- set-up code, tools and tests ----

    @property
    def rx_ids(self):
        """The arbitration ids this drive sends on (for kernel receive filters)."""
        return tuple(self._rx_ids[i] for i in range(self.n_rx_ids))

    def reads(self, str what):
        """Does the drive give reading ``what`` (a key of :data:`READS`)?"""
        if what not in READS:
            raise ValueError(f"unknown reading {what!r} (known: {', '.join(READS)})")
        return bool(self.readings & READS[what])

    def capabilities(self):
        """The declared capabilities, as plain data."""
        return {"name": self.name, "impedance": bool(self.impedance),
                "readings": [k for k, bit in READS.items() if self.readings & bit],
                "watchdog_s": self.watchdog_s, "torque_limit_Nm": self.torque_limit_Nm,
                "velocity_limit_rad_s": self.velocity_limit_rad_s, "tx_id": self.tx_id,
                "rx_ids": list(self.rx_ids)}

    def configure_transmission(self, double ratio, double efficiency, double direction,
                               double motor_zero_rad=0.0):
        """:meth:`set_transmission` from Python (tools, tests; the tick sets its own)."""
        self.set_transmission(ratio, efficiency, direction, motor_zero_rad)

    def configure_period(self, double period_s):
        """:meth:`set_period` from Python (tools, tests; the tick sets its own)."""
        self.set_period(period_s)

    def listens_to(self, unsigned int can_id):
        return self.listens(can_id)

    def encode_command(self, double torque_ff_Nm, double p_des_rad, double v_des_rad_s,
                       double kp_Nm_rad, double kd_Nms_rad):
        """The frames for one ankle command, as [(can_id, bytes)]; [] when it cannot be encoded
        (a non-finite value, or no transmission set): then the tick sends nothing."""
        cdef Command c
        cdef CanFrame frames[DRIVE_MAX_FRAMES]
        cdef int n, i
        c.torque_ff_Nm, c.p_des_rad, c.v_des_rad_s = torque_ff_Nm, p_des_rad, v_des_rad_s
        c.kp_Nm_rad, c.kd_Nms_rad = kp_Nm_rad, kd_Nms_rad
        c.torque_expected_Nm = c.pushoff_Nm = 0.0
        n = self.encode(&c, frames, DRIVE_MAX_FRAMES)
        return [(frames[i].can_id, bytes(frames[i].data[:frames[i].dlc])) for i in range(n)]

    def time_encode(self, int n, double torque_ff_Nm=1.0, double kp_Nm_rad=0.0, double kd_Nms_rad=0.0):
        """Mean time of one ``encode`` [ns] over ``n`` calls in compiled code (bench/codec.py)."""
        cdef Command c
        cdef CanFrame frames[DRIVE_MAX_FRAMES]
        cdef timespec a, b
        cdef int i
        c.torque_ff_Nm, c.p_des_rad, c.v_des_rad_s = torque_ff_Nm, 0.0, 0.0
        c.kp_Nm_rad, c.kd_Nms_rad = kp_Nm_rad, kd_Nms_rad
        c.torque_expected_Nm = c.pushoff_Nm = 0.0
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        with nogil:
            clock_gettime(CLOCK_MONOTONIC, &a)
            for i in range(n):
                c.torque_ff_Nm = torque_ff_Nm + 1e-9 * i       # not a constant the compiler may hoist
                self.encode(&c, frames, DRIVE_MAX_FRAMES)
            clock_gettime(CLOCK_MONOTONIC, &b)
        return ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / n

    def time_decode(self, unsigned int can_id, data, int n):
        """Mean time of one ``decode`` of this frame [ns] over ``n`` calls in compiled code."""
        cdef bytes raw = bytes(data)
        cdef unsigned char buf[8]
        cdef Inputs inp
        cdef timespec a, b
        cdef int i, dlc = len(raw)
        if not 0 < dlc <= 8 or n < 1:
            raise ValueError("a frame of 1..8 bytes and n >= 1")
        for i in range(dlc):
            buf[i] = raw[i]
        inp.motor_angle_rad = inp.motor_vel_rad_s = inp.motor_torque_Nm = inp.motor_temp_C = NAN
        inp.drive_supply_V = NAN
        inp.motor_error = 0
        inp.motor_rx_s = -1.0
        with nogil:
            clock_gettime(CLOCK_MONOTONIC, &a)
            for i in range(n):
                self.decode(can_id, buf, dlc, 1e-3 * i, &inp)
            clock_gettime(CLOCK_MONOTONIC, &b)
        return ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / n

    def decode_frame(self, unsigned int can_id, data, double now_s=0.0):
        """The drive readings of one received frame as a dict (ankle side: motor_angle_rad,
        motor_vel_rad_s, motor_torque_Nm, motor_temp_C, motor_error, motor_rx_s, drive_supply_V), or None when
        it is not this drive's or does not decode."""
        cdef bytes b = bytes(data)
        cdef Inputs inp
        inp.motor_angle_rad = inp.motor_vel_rad_s = inp.motor_torque_Nm = NAN
        inp.motor_temp_C = NAN
        inp.drive_supply_V = NAN
        inp.motor_error = 0
        inp.motor_rx_s = -1.0
        if len(b) == 0 or len(b) > 8 or not self.listens(can_id):
            return None
        if not self.decode(can_id, b, len(b), now_s, &inp):
            return None
        return {"motor_angle_rad": inp.motor_angle_rad, "motor_vel_rad_s": inp.motor_vel_rad_s,
                "motor_torque_Nm": inp.motor_torque_Nm, "motor_temp_C": inp.motor_temp_C,
                "motor_error": inp.motor_error, "motor_rx_s": inp.motor_rx_s,
                "drive_supply_V": inp.drive_supply_V}


cdef class AkMitCodec(DriveCodec):
    """CubeMars / T-Motor AK series, MIT mode: one DLC-8 command on ``driver_id`` per tick;
    replies on ``reply_id`` with D0 = driver id.  The drive runs the spring-damper itself
    (``impedance``), so a safe state's kp/kd keep acting if the host stops.

    ``mit_range``: the driver's MIT ranges (keys p_min .. t_max), as checked at commissioning
    (:func:`hal.ak.check_mit_range`; build it through :func:`hal.drives.build_codec`).
    """

    #: the AK driver's loss-of-host timeout as the fault catalogue states it (20-50 ms; the
    #: simulated driver's, sim/plant.py).  Set on the drive with the vendor's tool; not read back.
    WATCHDOG_S = 0.05

    def __init__(self, dict mit_range, int driver_id, int reply_id=0):
        if not 0 <= driver_id <= 0x7FF or not 0 <= reply_id <= 0x7FF:
            raise ValueError(f"driver_id and reply_id must be standard CAN ids, got {driver_id}, {reply_id}")
        # dict -> struct coercion: a missing key raises "No value specified for struct attribute"
        self.rng = mit_range
        self.driver_id, self.reply_id = driver_id, reply_id
        self.name = "ak_mit"
        self.impedance = True
        self.readings = (DRIVE_READS_ANGLE | DRIVE_READS_VELOCITY | DRIVE_READS_TORQUE
                         | DRIVE_READS_TEMPERATURE | DRIVE_READS_ERROR)
        self.watchdog_s = self.WATCHDOG_S
        self.torque_limit_Nm = self.rng.t_max
        self.velocity_limit_rad_s = self.rng.v_max if self.rng.v_max > -self.rng.v_min else -self.rng.v_min
        self.torque_range_name = "MIT torque range"
        self.tx_id = <unsigned int>driver_id
        self._rx_ids[0] = <unsigned int>reply_id
        self.n_rx_ids = 1

    @property
    def mit_range(self):
        return self.rng

    cdef int encode(self, const Command* cmd, CanFrame* out, int max_frames) noexcept nogil:
        cdef MitCommand m
        cdef double g = self.motor_gain_per_ankle_gain
        if max_frames < 1:
            return 0
        m.p_rad = (cmd.p_des_rad + self.motor_zero_rad) * self.motor_per_ankle_rad
        m.v_rad_s = cmd.v_des_rad_s * self.motor_per_ankle_rad
        m.kp_Nm_rad = cmd.kp_Nm_rad * g
        m.kd_Nms_rad = cmd.kd_Nms_rad * g
        m.t_Nm = self.motor_torque_Nm(cmd)
        # refuses NaN/Inf (the tick then sends nothing this tick)
        if mit_pack_command(out[0].data, &self.rng, &m) != 8:
            return 0
        out[0].can_id = self.tx_id
        out[0].dlc = 8
        out[0].flags = 0
        return 1

    cdef bint decode(self, unsigned int can_id, const unsigned char* data, int dlc, double now_s,
                     Inputs* inp) noexcept nogil:
        cdef MitReply rep
        if mit_unpack_reply(data, dlc, &self.rng, &rep) != 0 or rep.driver_id != self.driver_id:
            return False
        inp.motor_angle_rad = rep.p_rad / self.motor_per_ankle_rad - self.motor_zero_rad
        inp.motor_vel_rad_s = rep.v_rad_s / self.motor_per_ankle_rad
        # + motor torque turns the driver positive; plantar-flexor torque is + at the ankle.
        inp.motor_torque_Nm = -self.direction * self.ratio * self.efficiency * rep.t_Nm
        if rep.temperature_C > -1000:
            inp.motor_temp_C = rep.temperature_C
        if rep.error_code >= 0:
            inp.motor_error = rep.error_code
        inp.motor_rx_s = now_s
        return True
