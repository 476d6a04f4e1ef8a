# cython: language_level=3
"""Simulated ankle: the wearer's load, the ankle and foot, the motor with its driver's inner loop.

The wearer walks strides handed in by :mod:`sim.wearer` (reference trajectories
over one stride), or stands through standing segments handed in the same way
(``walking`` False: quiet standing, and the gait initiation that ends a
standing spell).  Whenever the reference load is positive (stance, or standing
with the foot on the ground) the wearer's load acts on the ankle as the
reference ankle moment (what a biological ankle would have to resist) plus a
stiff spring-damper pulling the ankle toward the reference angle: it models
the body rolling over the foot.  The ankle angle then follows from the balance
of that load against the prosthesis torque; a prosthesis that gives exactly the
biological moment reproduces the biological angle, one that gives less lets the
ankle dorsiflex further, up to a hard stop.  In swing the foot is a small
inertia moved only by the prosthesis.

The motor drives the ankle through a rigid transmission (ratio N, efficiency
eta), so its rotor inertia appears at the ankle multiplied by N^2.  The
driver runs its MIT law (kp, kd, feed-forward) at the plant's internal rate
(10 kHz) on its own encoder, limits torque to its rating and goes limp
(damped) when no command arrives within its watchdog timeout.

Heat: a two-node model.  The winding (capacity C_w, resistance R_wc to the
case) takes the copper loss I^2 R(T_w), with R rising 0.393 %/K from its 25 degC
value, plus any injected extra heat; the case (C_c, R_ca to ambient) passes it
on to the air.  The driver's temperature sensor sits on the housing/board, so
the reply's temperature byte reports the CASE temperature: the winding runs
hotter (by P * R_wc in steady state) and the host must model it itself.  The
driver protects itself as a real one does, by reporting an error code in its
replies: 1 (over-temperature) when the case exceeds ``driver_overtemp_degC``,
4 (under-voltage) when the supply is below ``driver_undervoltage_V``.

Fault injection (see :mod:`sim.faults`; :class:`sim.devices.SimAnkle` drives
these): :meth:`AnklePlant.set_encoder_fault` (the driver's encoder jumps or
sticks; its own MIT law then runs on the faulty reading too, as a real driver's
does), :meth:`AnklePlant.set_imu_fault`, :meth:`AnklePlant.set_load_fault`,
:meth:`AnklePlant.set_extra_heat_W`, :meth:`AnklePlant.set_supply_V` and
``error_code`` (a hardware error the driver reports).  All act only from the
moment they are set, and the sensor noise is drawn whether or not a fault
replaces the sample, so a run with a fault is identical to one without it
until the fault begins.

The sensor node adds noise, a gyro bias and a load-cell offset; both of the
latter may drift linearly with time (``gyro_bias_drift_rad_s2``,
``load_offset_drift_N_s``), as a warming MEMS gyro and strain-gauge bridge do.

The sound side (:mod:`sim.asymmetry`): a profile may carry two more rows,
``SOUND_CHANNELS`` (the sound foot's vertical force and the sound shank's
rate), which the optional sound-side node samples (:meth:`AnklePlant.sound_payload`,
noise from a random stream of its own, so the other sensors' samples do not
change with it) and the truth reports.  The plant also integrates the net
ankle work of each walking stride's stance from its true torque and angle
(:attr:`AnklePlant.stance_work_J`) for the wearer to respond to.

Everything here runs without the GIL on preallocated memory; Python only
hands in strides and moves frames.
"""
from libc.math cimport sqrt, log, cos, sin, tanh, M_PI, isfinite, floor
from controller.kernels._numeric cimport clamp
from libc.stdint cimport uint64_t
from hal._mit cimport (MitRange, MitCommand, MitReply, mit_unpack_command, mit_pack_reply,
    mit_frame_kind, MIT_FRAME_NONE, MIT_FRAME_ENTER, MIT_FRAME_EXIT, MIT_FRAME_ZERO, MIT_FRAME_COMMAND)
from hal._sensor_frames cimport (ImuFrame, LoadFrame, StatusFrame, SoundFrame, encode_imu, encode_load,
    encode_status, encode_sound, SENSOR_IMU_ID, SENSOR_LOAD_ID, SENSOR_STATUS_ID, SENSOR_SOUND_ID)
from hal._link cimport FrameLink, CanFrame, LINK_ERROR, LINK_EXTENDED, LINK_REMOTE
import numpy as np

cdef double STANDARD_GRAVITY = 9.80665    # m/s^2
cdef int PROFILE_POINTS = 1001            # samples per stride profile (uniform in phase)
# Longest segment accepted: walking strides are physiologically under 10 s; standing segments
# are cut by the wearer into a few seconds each (profile resolution), this only catches mistakes.
cdef double MAX_WALKING_STRIDE_S = 10.0
cdef double MAX_STANDING_SEGMENT_S = 30.0
#: Values always written by :meth:`AnklePlant.truth` (see ``sim.harness.TRUTH_COLUMNS``) ...
TRUTH_LENGTH = 9
#: ... and the sound side's, written after them when the row has room.
SOUND_TRUTH_LENGTH = 2
cdef Py_ssize_t _TRUTH_LENGTH = TRUTH_LENGTH
cdef Py_ssize_t _SOUND_TRUTH_LENGTH = SOUND_TRUTH_LENGTH
# Copper's temperature coefficient of resistance, and the temperature the winding resistance
# setting is given at.
cdef double COPPER_ALPHA_PER_K = 0.00393
cdef double COPPER_REFERENCE_C = 25.0

# AK-series reply error codes the driver raises by itself (hal.ak.AK_ERROR_CODES).
cdef enum:
    AK_ERROR_NONE = 0
    AK_ERROR_OVER_TEMPERATURE = 1
    AK_ERROR_UNDER_VOLTAGE = 4

# Fault modes of the setters (published below as Python ints).
cdef enum:
    _ENCODER_OK = 0         # the encoder reads the true position
    _ENCODER_OFFSET = 1     # it reads the true position plus a fixed offset (a jump)
    _ENCODER_STUCK = 2      # it reads the position it had when the fault was set; velocity 0
    _IMU_OK = 0
    _IMU_STUCK = 1          # every frame repeats the first sample taken after the fault was set
    _IMU_GYRO_CONSTANT = 2  # the gyro reads a constant (range fault); the accelerometers are fine
    _LOAD_OK = 0
    _LOAD_CONSTANT = 1      # the load reads a constant (stuck bridge, saturation)

#: Modes of :meth:`AnklePlant.set_encoder_fault`.
ENCODER_OK, ENCODER_OFFSET, ENCODER_STUCK = _ENCODER_OK, _ENCODER_OFFSET, _ENCODER_STUCK
#: Modes of :meth:`AnklePlant.set_imu_fault`.
IMU_OK, IMU_STUCK, IMU_GYRO_CONSTANT = _IMU_OK, _IMU_STUCK, _IMU_GYRO_CONSTANT
#: Modes of :meth:`AnklePlant.set_load_fault`.
LOAD_OK, LOAD_CONSTANT = _LOAD_OK, _LOAD_CONSTANT

# Stride profile channels (rows of the profile buffers).
cdef enum:
    CH_ANKLE_ANGLE = 0      # rad, + dorsiflexion
    CH_ANKLE_VEL = 1        # rad/s
    CH_MOMENT = 2           # N*m, biological plantar-flexor moment (already x mass)
    CH_LOAD = 3             # N, axial pylon load
    CH_SHANK_ANGLE = 4      # rad from vertical
    CH_SHANK_OMEGA = 5      # rad/s
    N_CHANNELS = 6
    CH_SOUND_LOAD = 6       # N, sound foot's vertical force (optional rows)
    CH_SOUND_OMEGA = 7      # rad/s, sound shank
    N_ROWS = 8

#: Channel order of the arrays passed to :meth:`AnklePlant.queue_stride`.
PROFILE_CHANNELS = ("ankle_angle_rad", "ankle_vel_rad_s", "moment_Nm", "load_N",
                    "shank_angle_rad", "shank_omega_rad_s")
#: Optional rows after them: the sound side (zeros when a profile has only PROFILE_CHANNELS).
SOUND_CHANNELS = ("sound_load_N", "sound_omega_rad_s")




cdef inline double _uniform(uint64_t* state) noexcept nogil:
    """xorshift64*: deterministic from the seed, no allocation; a double in [0, 1)."""
    state[0] ^= state[0] >> 12
    state[0] ^= state[0] << 25
    state[0] ^= state[0] >> 27
    return ((state[0] * 0x2545F4914F6CDD1DULL) >> 11) * (1.0 / 9007199254740992.0)


cdef inline double _gauss(uint64_t* state) noexcept nogil:
    """A standard normal draw (Box-Muller) from the xorshift64* stream ``state``."""
    cdef double u1 = _uniform(state)
    cdef double u2 = _uniform(state)
    if u1 < 1e-300:
        u1 = 1e-300
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2)

cdef class AnklePlant:
    """The simulated ankle and driver.  Build it with :func:`sim.plant.build_plant`."""

    def __cinit__(self):
        self.profile = None
        self.next_profile = None

    def configure(self, dict c):
        """Set every plant constant from ``c`` (see :func:`sim.plant.DEFAULTS`)."""
        self.J_kgm2 = c["foot_inertia_kgm2"] + c["ratio"] ** 2 * c["rotor_inertia_kgm2"]
        self.ratio = c["ratio"]
        self.efficiency = c["efficiency"]
        self.direction = c["direction"]
        self.k_wearer = c["wearer_stiffness_Nm_rad_kg"] * c["mass_kg"]
        self.b_wearer = c["wearer_damping_Nms_rad_kg"] * c["mass_kg"]
        self.stop_dorsi_rad = c["stop_dorsi_rad"]
        self.stop_plantar_rad = c["stop_plantar_rad"]
        self.k_stop = c["stop_stiffness_Nm_rad"]
        self.b_stop = c["stop_damping_Nms_rad"]
        self.fric_coulomb_Nm = c["friction_coulomb_Nm"]
        self.fric_viscous_Nms = c["friction_viscous_Nms_rad"]
        self.substep_s = 1.0 / c["driver_rate_Hz"]
        self.rng = c["mit_range"]      # dict -> MitRange struct (every field required)
        self.torque_limit_Nm = min(c["motor_torque_limit_Nm"], self.rng.t_max)
        self.watchdog_s = c["watchdog_s"]
        self.limp_kd = c["limp_damping_Nms_rad"]
        self.driver_id = c["driver_id"]
        self.ambient_C = c["ambient_degC"]
        self.kt_Nm_A = c["torque_constant_Nm_A"]
        self.winding_ohm_25C = c["winding_resistance_ohm"]
        self.c_winding_J_K = c["winding_capacity_J_K"]
        self.r_winding_case_K_W = c["winding_to_case_K_W"]
        self.c_case_J_K = c["case_capacity_J_K"]
        self.r_case_ambient_K_W = c["case_to_ambient_K_W"]
        if min(self.c_winding_J_K, self.r_winding_case_K_W, self.c_case_J_K,
               self.r_case_ambient_K_W) <= 0.0:
            raise ValueError("thermal capacities and resistances must be > 0")
        # None: start at ambient
        self.winding_C = self.ambient_C if c["initial_winding_degC"] is None else c["initial_winding_degC"]
        self.case_C = self.ambient_C if c["initial_case_degC"] is None else c["initial_case_degC"]
        self.overtemp_C = c["driver_overtemp_degC"]
        self.undervoltage_V = c["driver_undervoltage_V"]
        self.supply_V = c["supply_V"]
        self.gyro_noise = c["gyro_noise_rad_s"]
        self.gyro_bias = c["gyro_bias_rad_s"]
        self.accel_noise = c["accel_noise_m_s2"]
        self.load_noise = c["load_noise_N"]
        self.load_offset = c["load_offset_N"]
        self.gyro_bias_drift = c["gyro_bias_drift_rad_s2"]
        self.load_offset_drift = c["load_offset_drift_N_s"]
        self.rng_state = <uint64_t>(c["seed"]) * 0x9E3779B97F4A7C15ULL + 0x2545F4914F6CDD1DULL
        if self.rng_state == 0:
            self.rng_state = 1
        self.sound_load_noise = c["sound_load_noise_N"]
        self.sound_gyro_noise = c["sound_gyro_noise_rad_s"]
        self.sound_rng_state = (<uint64_t>(c["seed"]) + 0x51D) * 0xBF58476D1CE4E5B9ULL + 0x94D049BB133111EBULL
        if self.sound_rng_state == 0:
            self.sound_rng_state = 1
        self.sound_seq = 0
        self.stance_work_J = 0.0
        self.profile = None
        self.next_profile = None
        self.next_queued = False
        self.walking = True
        self.next_walking = True
        self.started = False
        self.stride_index = -1
        self.theta = c["initial_angle_rad"]
        self.omega = 0.0
        self.t_s = 0.0
        self.tau_pf_Nm = 0.0
        self.tau_motor_Nm = 0.0
        self.driver_active = False
        self.watchdog_tripped = False
        self.watchdog_trip_s = -1.0
        self.last_cmd_s = -1.0
        self.zero_offset_rad = 0.0
        self.error_code = 0
        self.extra_heat_W = 0.0
        self.extra_case_heat_W = 0.0
        self.encoder_mode = _ENCODER_OK
        self.encoder_offset_motor_rad = 0.0
        self.encoder_frozen_raw_rad = 0.0
        self.imu_mode = _IMU_OK
        self.imu_held_valid = False
        self.imu_gyro_rad_s = 0.0
        self.load_mode = _LOAD_OK
        self.load_constant_N = 0.0
        self.imu_seq = 0
        self.load_seq = 0
        self.status_seq = 0
        self.cmd = MitCommand(p_rad=0.0, v_rad_s=0.0, kp_Nm_rad=0.0, kd_Nms_rad=0.0, t_Nm=0.0)

    # ---------------------------------------------------------------- strides (Python side)
    def queue_stride(self, double[:, ::1] profile, double stride_s, double stance_frac,
                     bint walking=True):
        """Queue the next segment: ``profile`` is (6, 1001) over it, channels ``PROFILE_CHANNELS``,
        or (8, 1001) with ``SOUND_CHANNELS`` after them (with 6 rows the sound side reads 0).

        ``walking`` True: a walking stride from heel strike to heel strike (``stance_frac``
        is its toe-off).  False: a standing segment of ``stride_s`` seconds; ``stance_frac``
        (the loaded share, 0..1) is only recorded.
        """
        if profile.shape[0] not in (N_CHANNELS, N_ROWS) or profile.shape[1] != PROFILE_POINTS:
            raise ValueError(f"profile must have shape ({N_CHANNELS} or {N_ROWS}, {PROFILE_POINTS})")
        if walking and not (0.2 < stride_s < MAX_WALKING_STRIDE_S and 0.3 < stance_frac < 0.9):
            raise ValueError("implausible stride time or stance fraction")
        if not walking and not (0.2 < stride_s <= MAX_STANDING_SEGMENT_S and 0.0 <= stance_frac <= 1.0):
            raise ValueError("implausible standing segment duration or loaded share")
        cdef double[:, ::1] rows = np.zeros((N_ROWS, PROFILE_POINTS))
        rows[:profile.shape[0], :] = profile
        self.next_profile = rows
        self.next_stride_s = stride_s
        self.next_stance_frac = stance_frac
        self.next_walking = walking
        self.next_queued = True

    def start(self, double t_s):
        """Begin walking the queued stride at ``t_s`` (its heel strike)."""
        if not self.next_queued:
            raise RuntimeError("queue a stride before start()")
        self.t_s = t_s
        self._take_next(t_s)
        self.started = True

    cdef void _take_next(self, double t0) noexcept nogil:
        self.profile = self.next_profile
        self.stride_s = self.next_stride_s
        self.stance_frac = self.next_stance_frac
        self.walking = self.next_walking
        self.t0_s = t0
        self.next_queued = False
        self.stride_index += 1
        self.stance_work_J = 0.0

    # ---------------------------------------------------------------- reference lookup
    cdef double ref(self, int channel, double phase) noexcept nogil:
        cdef double x = phase * (PROFILE_POINTS - 1)
        cdef int i = <int>floor(x)
        if i < 0:
            return self.profile[channel, 0]
        if i >= PROFILE_POINTS - 1:
            return self.profile[channel, PROFILE_POINTS - 1]
        x -= i
        return self.profile[channel, i] * (1.0 - x) + self.profile[channel, i + 1] * x

    cdef double phase_at(self, double t) noexcept nogil:
        return (t - self.t0_s) / self.stride_s

    # ---------------------------------------------------------------- driver frames
    def driver_frame(self, const unsigned char[::1] data, double now_s):
        """Handle one host->driver payload; returns its MIT_FRAME_* kind (0 = ignored)."""
        if data.shape[0] == 0:
            return 0
        return self._driver_frame(&data[0], data.shape[0], now_s)

    cdef int _driver_frame(self, const unsigned char* data, int dlc, double now_s) noexcept nogil:
        # the AK firmware's MIT frames (sim._simdrive.AkMitSimDrive hands them here)
        cdef int kind
        cdef MitCommand c
        if dlc <= 0:
            return 0
        kind = mit_frame_kind(data, dlc)
        if kind == MIT_FRAME_ENTER:
            self.drive_enable(now_s)
        elif kind == MIT_FRAME_EXIT:
            self.drive_disable()
        elif kind == MIT_FRAME_ZERO:
            self.drive_zero()
        elif kind == MIT_FRAME_COMMAND:
            if mit_unpack_command(data, dlc, &self.rng, &c) != 0:
                return 0
            self.drive_command(&c, now_s)
        return kind

    # ---------------------------------------------------------------- the drive API
    cdef void drive_enable(self, double now_s) noexcept nogil:
        """Torque allowed from ``now_s``, commanding nothing yet (the watchdog counts from now)."""
        self.driver_active = True
        self.watchdog_tripped = False
        self.last_cmd_s = now_s
        self.cmd = MitCommand(p_rad=0.0, v_rad_s=0.0, kp_Nm_rad=0.0, kd_Nms_rad=0.0, t_Nm=0.0)

    cdef void drive_disable(self) noexcept nogil:
        """No torque (the drive's output stage is off)."""
        self.driver_active = False

    cdef void drive_zero(self) noexcept nogil:
        """The present encoder reading becomes the drive's zero (only while disabled)."""
        if not self.driver_active:
            self.zero_offset_rad += self.motor_position()

    cdef bint drive_command(self, const MitCommand* c, double now_s) noexcept nogil:
        """The drive's inner loop runs ``c`` (motor side) from ``now_s``: torque
        t + kp (p - position) + kd (v - velocity), clamped to its rating; a torque-only drive
        sets kp = kd = 0.  Feeds the watchdog.  Ignored (False) while disabled."""
        if not self.driver_active:
            return False
        self.cmd = c[0]
        self.last_cmd_s = now_s
        self.watchdog_tripped = False
        return True

    cdef void drive_protection(self, double watchdog_s, double limp_kd) noexcept nogil:
        """After ``watchdog_s`` without a command the drive applies -limp_kd * velocity (0: free)."""
        self.watchdog_s = watchdog_s
        self.limp_kd = limp_kd

    def settle_driver(self):
        """The driver's inner loop on the last command at the present state, without moving the
        plant: what its current loop reaches within a millisecond.  For commissioning
        (:meth:`sim.devices.SimAnkle.answer`), where the plant stands still, so a reply carries the
        torque of the command it answers; the lock-step and real-time paths never call it."""
        self._settle_driver()

    cdef void _settle_driver(self) noexcept nogil:
        cdef double tau_m = 0.0
        if self.driver_active and self.t_s - self.last_cmd_s <= self.watchdog_s:
            tau_m = (self.cmd.kp_Nm_rad * (self.cmd.p_rad - self.motor_position())
                     + self.cmd.kd_Nms_rad * (self.cmd.v_rad_s - self.motor_velocity()) + self.cmd.t_Nm)
        tau_m = clamp(tau_m, -self.torque_limit_Nm, self.torque_limit_Nm)
        self.tau_motor_Nm = tau_m
        self.tau_pf_Nm = -self.direction * self.ratio * self.efficiency * tau_m

    cdef double encoder_raw(self) noexcept nogil:
        # what the driver's encoder reads before the zero frame's offset (motor side, rad)
        if self.encoder_mode == _ENCODER_STUCK:
            return self.encoder_frozen_raw_rad
        if self.encoder_mode == _ENCODER_OFFSET:
            return self.direction * self.ratio * self.theta + self.encoder_offset_motor_rad
        return self.direction * self.ratio * self.theta

    cdef double motor_position(self) noexcept nogil:
        # the driver's position reading: its MIT law and its replies both use it
        return self.encoder_raw() - self.zero_offset_rad

    cdef double motor_velocity(self) noexcept nogil:
        # the driver's velocity reading (a stuck encoder reads no motion)
        if self.encoder_mode == _ENCODER_STUCK:
            return 0.0
        return self.direction * self.ratio * self.omega

    # ---------------------------------------------------------------- physics
    cdef void substep(self, double h) noexcept nogil:
        cdef double p = self.motor_position()
        cdef double v = self.motor_velocity()
        cdef double tau_m, phase = 2.0, load, m_ext, accel, current, r_ohm, q_wc_W, q_ca_W
        cdef double theta_before
        # driver inner loop
        if self.driver_active and self.t_s - self.last_cmd_s <= self.watchdog_s:
            tau_m = (self.cmd.kp_Nm_rad * (self.cmd.p_rad - p) + self.cmd.kd_Nms_rad * (self.cmd.v_rad_s - v)
                     + self.cmd.t_Nm)
        elif self.driver_active:
            if not self.watchdog_tripped:
                self.watchdog_trip_s = self.t_s
            self.watchdog_tripped = True
            tau_m = -self.limp_kd * v
        else:
            tau_m = 0.0
        tau_m = clamp(tau_m, -self.torque_limit_Nm, self.torque_limit_Nm)
        self.tau_motor_Nm = tau_m
        self.tau_pf_Nm = -self.direction * self.ratio * self.efficiency * tau_m
        # heat, two nodes: copper loss (resistance rising with the winding's temperature) and
        # injected heat into the winding, winding -> case -> ambient.  Explicit Euler is fine
        # while the shortest time constant (C_w * R_wc, a minute by default) >> h (0.1 ms).
        current = tau_m / self.kt_Nm_A
        r_ohm = self.winding_ohm_25C * (1.0 + COPPER_ALPHA_PER_K * (self.winding_C - COPPER_REFERENCE_C))
        q_wc_W = (self.winding_C - self.case_C) / self.r_winding_case_K_W
        q_ca_W = (self.case_C - self.ambient_C) / self.r_case_ambient_K_W
        self.winding_C += (current * current * r_ohm + self.extra_heat_W - q_wc_W) / self.c_winding_J_K * h
        self.case_C += (q_wc_W - q_ca_W + self.extra_case_heat_W) / self.c_case_J_K * h
        # the wearer's load whenever the foot bears weight: stance, and standing (the ankle is
        # held foot-flat by the same spring-damper, so standing needs no special case here)
        m_ext = 0.0
        if self.started:
            phase = self.phase_at(self.t_s)
            if phase < 1.0 and self.ref(CH_LOAD, phase) > 0.0:
                m_ext = (self.ref(CH_MOMENT, phase)
                         + self.k_wearer * (self.ref(CH_ANKLE_ANGLE, phase) - self.theta)
                         + self.b_wearer * (self.ref(CH_ANKLE_VEL, phase) - self.omega))
        accel = m_ext - self.tau_pf_Nm - self.fric_coulomb_Nm * tanh(self.omega / 0.05) \
            - self.fric_viscous_Nms * self.omega
        if self.theta > self.stop_dorsi_rad:
            accel -= self.k_stop * (self.theta - self.stop_dorsi_rad) + self.b_stop * self.omega
        elif self.theta < self.stop_plantar_rad:
            accel -= self.k_stop * (self.theta - self.stop_plantar_rad) + self.b_stop * self.omega
        accel /= self.J_kgm2
        # semi-implicit Euler: stable for the stiff wearer spring at 10 kHz
        self.omega += accel * h
        theta_before = self.theta
        self.theta += self.omega * h
        self.t_s += h
        if self.walking and phase < self.stance_frac:
            # power = -torque * d(angle)/dt (+ plantar-flexor torque, + dorsiflexion): + generated
            self.stance_work_J -= self.tau_pf_Nm * (self.theta - theta_before)

    def advance(self, double t_end_s):
        """Integrate to ``t_end_s`` at the driver's internal rate.

        Returns True when a new stride began (the next one must then be queued).
        """
        cdef bint new_stride
        with nogil:
            new_stride = self._advance(t_end_s)
        return new_stride

    cdef bint _advance(self, double t_end_s) noexcept nogil:
        cdef bint new_stride = False
        cdef double h
        while self.t_s < t_end_s - 1e-12:
            h = t_end_s - self.t_s
            if h > self.substep_s:
                h = self.substep_s
            if self.started and self.phase_at(self.t_s + h) >= 1.0 and self.next_queued:
                # land exactly on the heel strike, then switch strides
                h = self.t0_s + self.stride_s - self.t_s
                if h > 0.0:
                    self.substep(h)
                self._take_next(self.t0_s + self.stride_s)
                new_stride = True
                continue
            self.substep(h)
        return new_stride

    # ---------------------------------------------------------------- noise
    cdef double uniform(self) noexcept nogil:
        return _uniform(&self.rng_state)

    cdef double gauss(self) noexcept nogil:
        return _gauss(&self.rng_state)

    cdef double sound_gauss(self) noexcept nogil:
        # the sound node's own stream: turning it on changes no other sensor's noise
        return _gauss(&self.sound_rng_state)

    # ---------------------------------------------------------------- frames out
    cdef int reply_error(self) noexcept nogil:
        # one code per reply: an injected hardware error first, then the driver's own checks
        if self.error_code != AK_ERROR_NONE:
            return self.error_code
        if self.case_C > self.overtemp_C:
            return AK_ERROR_OVER_TEMPERATURE
        if self.supply_V < self.undervoltage_V:
            return AK_ERROR_UNDER_VOLTAGE
        return AK_ERROR_NONE

    def reply_payload(self, unsigned char[::1] out):
        """The driver's reply to the last command (motor side), 8 bytes; returns the DLC.

        Position and velocity as its encoder reads them; temperature: the CASE node, rounded
        (the driver's sensor is on the housing/board); error: :attr:`error_code` if set, else
        1 when the case is over ``driver_overtemp_degC``, else 4 when the supply is under
        ``driver_undervoltage_V``, else 0.
        """
        return self._reply_payload(&out[0])

    cdef int _reply_payload(self, unsigned char* out) noexcept nogil:
        cdef MitReply rep
        rep.driver_id = self.driver_id
        rep.p_rad = self.motor_position()
        rep.v_rad_s = self.motor_velocity()
        rep.t_Nm = self.tau_motor_Nm
        rep.temperature_C = <int>floor(self.case_C + 0.5)
        rep.error_code = self.reply_error()
        return mit_pack_reply(out, &self.rng, &rep)

    def imu_payload(self, unsigned char[::1] out):
        """One shank IMU sample at the present time, with noise and bias; returns the DLC.

        An IMU fault (:meth:`set_imu_fault`) replaces the sample after it is drawn.
        """
        return self._imu_payload(&out[0])

    cdef int _imu_payload(self, unsigned char* out) noexcept nogil:
        cdef ImuFrame f
        cdef double phase, shank_angle = 0.0, omega = 0.0
        if self.started:
            phase = self.phase_at(self.t_s)
            shank_angle = self.ref(CH_SHANK_ANGLE, phase)
            omega = self.ref(CH_SHANK_OMEGA, phase)
        f.gyro_z_rad_s = (omega + self.gyro_bias + self.gyro_bias_drift * self.t_s
                          + self.gyro_noise * self.gauss())
        # gravity seen by a shank-fixed accelerometer (x along walking, y up the shank)
        f.accel_x_m_s2 = STANDARD_GRAVITY * sin(shank_angle) + self.accel_noise * self.gauss()
        f.accel_y_m_s2 = STANDARD_GRAVITY * cos(shank_angle) + self.accel_noise * self.gauss()
        if self.imu_mode == _IMU_STUCK:
            if not self.imu_held_valid:          # the first sample since the fault was set
                self.imu_held_gyro = f.gyro_z_rad_s
                self.imu_held_ax = f.accel_x_m_s2
                self.imu_held_ay = f.accel_y_m_s2
                self.imu_held_valid = True
            f.gyro_z_rad_s = self.imu_held_gyro
            f.accel_x_m_s2 = self.imu_held_ax
            f.accel_y_m_s2 = self.imu_held_ay
        elif self.imu_mode == _IMU_GYRO_CONSTANT:
            f.gyro_z_rad_s = self.imu_gyro_rad_s
        f.seq = self.imu_seq
        f.status = 0
        self.imu_seq = (self.imu_seq + 1) & 0xFF
        return encode_imu(out, &f)

    def load_payload(self, unsigned char[::1] out):
        """One pylon-load and joint-encoder sample; returns the DLC.

        A load fault (:meth:`set_load_fault`) replaces the load after it is drawn; the joint
        encoder is a separate sensor and stays true.
        """
        return self._load_payload(&out[0])

    cdef int _load_payload(self, unsigned char* out) noexcept nogil:
        cdef LoadFrame f
        cdef double load = 0.0
        if self.started:
            load = self.ref(CH_LOAD, self.phase_at(self.t_s))
        f.load_N = (load + self.load_offset + self.load_offset_drift * self.t_s
                    + self.load_noise * self.gauss())
        if self.load_mode == _LOAD_CONSTANT:
            f.load_N = self.load_constant_N
        f.ankle_angle_rad = self.theta
        f.seq = self.load_seq
        f.status = 0
        self.load_seq = (self.load_seq + 1) & 0xFF
        return encode_load(out, &f)

    def sound_payload(self, unsigned char[::1] out):
        """One sample of the sound-side node (SOUND_SIDE frame): the sound foot's vertical force and
        the sound shank's rate at the present time, with noise; returns the DLC."""
        return self._sound_payload(&out[0])

    cdef int _sound_payload(self, unsigned char* out) noexcept nogil:
        cdef SoundFrame f
        cdef double load = 0.0, omega = 0.0, phase
        if self.started:
            phase = self.phase_at(self.t_s)
            load = self.ref(CH_SOUND_LOAD, phase)
            omega = self.ref(CH_SOUND_OMEGA, phase)
        f.load_N = load + self.sound_load_noise * self.sound_gauss()
        f.gyro_z_rad_s = omega + self.sound_gyro_noise * self.sound_gauss()
        f.seq = self.sound_seq
        f.status = 0
        self.sound_seq = (self.sound_seq + 1) & 0xFF
        return encode_sound(out, &f)

    def status_payload(self, unsigned char[::1] out):
        """The node's status frame, with the supply voltage (:meth:`set_supply_V`); returns the DLC."""
        return self._status_payload(&out[0])

    cdef int _status_payload(self, unsigned char* out) noexcept nogil:
        cdef StatusFrame f
        f.seq = self.status_seq
        f.flags = 0
        f.supply_V = self.supply_V
        f.board_temp_C = <int>self.ambient_C
        f.uptime_ms = <long>(self.t_s * 1000.0)
        self.status_seq = (self.status_seq + 1) & 0xFF
        return encode_status(out, &f)

    # ---------------------------------------------------------------- ground truth
    def truth(self, double[::1] row):
        """Write ground truth at the present time.

        t, phase (-1 when not walking), stance (foot loaded), angle, torque, winding
        temperature, stride index, walking (1 in a walking stride, 0 in a standing segment or
        before the start), case temperature; then, if ``row`` holds TRUTH_LENGTH +
        SOUND_TRUTH_LENGTH values, the sound foot's true vertical force [N] and its contact
        (1 while that force is > 0).
        """
        if row.shape[0] < TRUTH_LENGTH:
            raise ValueError(f"row must hold {TRUTH_LENGTH} values")
        self._truth(&row[0], row.shape[0])

    cdef void _truth(self, double* row, Py_ssize_t n) noexcept nogil:
        cdef double phase = -1.0, stance = 0.0, walking = 0.0, sound_load = 0.0
        if self.started:
            phase = self.phase_at(self.t_s)
            if phase >= 1.0:
                phase = 0.0 if phase - 1.0 < 1e-9 else phase - floor(phase)
            stance = 1.0 if self.ref(CH_LOAD, phase) > 0.0 else 0.0
            sound_load = self.ref(CH_SOUND_LOAD, phase)
            if self.walking:
                walking = 1.0
            else:
                phase = -1.0          # a standing segment has no gait phase
        row[0] = self.t_s
        row[1] = phase
        row[2] = stance
        row[3] = self.theta
        row[4] = self.tau_pf_Nm
        row[5] = self.winding_C
        row[6] = self.stride_index
        row[7] = walking
        row[8] = self.case_C
        if n >= _TRUTH_LENGTH + _SOUND_TRUTH_LENGTH:
            row[9] = sound_load
            row[10] = 1.0 if sound_load > 0.0 else 0.0

    # ---------------------------------------------------------------- fault injection (Python side)
    def set_encoder_fault(self, int mode, double offset_ankle_rad=0.0):
        """Make the driver's encoder fail from now on (its replies and its own MIT law).

        ``ENCODER_OFFSET``: it reads ``offset_ankle_rad`` [rad, at the ankle, + dorsiflexion]
        away from the truth, i.e. ``direction * ratio * offset_ankle_rad`` at the motor.
        ``ENCODER_STUCK``: it keeps reading the position it reads now, and velocity 0.
        ``ENCODER_OK``: it reads the truth again.  ValueError on an unknown mode or a
        non-finite offset.
        """
        if mode not in (_ENCODER_OK, _ENCODER_OFFSET, _ENCODER_STUCK):
            raise ValueError(f"unknown encoder fault mode {mode}")
        if not isfinite(offset_ankle_rad):
            raise ValueError("encoder offset must be finite")
        if mode == _ENCODER_STUCK:
            self.encoder_frozen_raw_rad = self.encoder_raw()     # the reading now, faulty or not
        self.encoder_offset_motor_rad = self.direction * self.ratio * offset_ankle_rad
        self.encoder_mode = mode

    def set_imu_fault(self, int mode, double gyro_rad_s=0.0):
        """Make the IMU's samples fail from now on.

        ``IMU_STUCK``: every frame repeats the next sample drawn (gyro and both accelerometers,
        exactly).  ``IMU_GYRO_CONSTANT``: the gyro reads ``gyro_rad_s`` (the frame saturates
        it).  ``IMU_OK``: true samples again.  ValueError on an unknown mode or a non-finite rate.
        """
        if mode not in (_IMU_OK, _IMU_STUCK, _IMU_GYRO_CONSTANT):
            raise ValueError(f"unknown IMU fault mode {mode}")
        if not isfinite(gyro_rad_s):
            raise ValueError("gyro value must be finite")
        self.imu_mode = mode
        self.imu_gyro_rad_s = gyro_rad_s
        self.imu_held_valid = False

    def set_load_fault(self, int mode, double load_N=0.0):
        """``LOAD_CONSTANT``: the load reads ``load_N`` [N] from now on (the frame saturates it);
        ``LOAD_OK``: the true load again.  ValueError on an unknown mode or a non-finite load."""
        if mode not in (_LOAD_OK, _LOAD_CONSTANT):
            raise ValueError(f"unknown load fault mode {mode}")
        if not isfinite(load_N):
            raise ValueError("load value must be finite")
        self.load_mode = mode
        self.load_constant_N = load_N

    def set_extra_heat_W(self, double heat_W, double case_heat_W=0.0):
        """Heat [W, >= 0] added from now on to the winding node and to the case node (0: none).

        Winding heat is an internal fault the host cannot see except through the case (a
        shorted turn); case heat is hot surroundings or blocked cooling.  ValueError otherwise.
        """
        if not (isfinite(heat_W) and heat_W >= 0.0 and isfinite(case_heat_W) and case_heat_W >= 0.0):
            raise ValueError(f"extra heat must be finite and >= 0 W, got {heat_W}, {case_heat_W}")
        self.extra_heat_W = heat_W
        self.extra_case_heat_W = case_heat_W

    def set_supply_V(self, double supply_V):
        """The supply voltage [V, >= 0] from now on: reported by the sensor node's status frame,
        and under ``driver_undervoltage_V`` the driver reports error 4.  ValueError otherwise."""
        if not (isfinite(supply_V) and supply_V >= 0.0):
            raise ValueError(f"supply voltage must be finite and >= 0 V, got {supply_V}")
        self.supply_V = supply_V

    @property
    def temperatures_C(self):
        """(winding, case) temperatures [degC] now."""
        return (self.winding_C, self.case_C)

    @property
    def command(self):
        """The last command the driver accepted (motor side), as a dict."""
        return self.cmd

    @property
    def state(self):
        """(t_s, ankle angle rad, ankle velocity rad/s, actuator torque N*m) for tools and tests."""
        return (self.t_s, self.theta, self.omega, self.tau_pf_Nm)
