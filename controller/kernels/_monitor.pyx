# cython: language_level=3
"""Fault detection on the tick's inputs: every sensor, the driver link, the supply and the tick itself.

``check`` runs first in every tick, before the estimator, and returns the
fault conditions found this tick (ANKLE_FAULT_* bits; the safety stage latches
them).  Each detection is the fault catalogue's (docs/reference.md):

- driver link: reply older than ``safety.motor_timeout_s`` (about 3 missed), 3
  failed sends or 3 ticks running with CAN error frames; an error code; NaN/Inf.
- encoder: a jump the reported velocity cannot explain (1 sample); a motor
  position frozen while the joint encoder moves (3 samples); motor and joint
  encoders disagreeing by more than ``safety.encoder_mismatch_rad`` (3 samples).
- IMU: no frame for ``safety.imu_timeout_s``; the same gyro and accelerations
  10 frames running (a real MEMS sensor's noise never repeats so); a reading at
  the range limit 2 frames running; NaN.
- load cell: no frame for ``safety.load_timeout_s``; saturation or impossible
  tension 2 frames running; a loaded foot while the shank swings forward faster
  than ``safety.swing_check_gyro_rad_s`` (only a swinging foot does) for 5 frames; NaN.
- IMU and load streams (frames counted by the tick, per 20 ms window): more than 30 frames
  (1.5x the node's 1 kHz: a second sender), or more than 2 out of sequence (a duplicate, a
  step back, a jump ahead the time since cannot explain) make that sensor bad for the window
  and the next one; over 25 % of its frames lost in a window is the warning frames_lost.
- sensor node: status flags non-zero, or a supply reading outside 0..60 V (the node runs on
  24 V; 655.35 V is the raw maximum) in 2 status frames running: fault sensor_node.  One
  implausible reading: warning supply_implausible, the supply counts as unknown.
- supply: below ``safety.supply_min_V`` in 2 status frames running (fault);
  below ``safety.supply_warn_V`` a warning and a push-off scale falling to 0 at
  the minimum; no status for ``safety.status_timeout_s`` (0.1 s: 5 missed): unknown, push-off
  scale 0.
- tick: a gap above ``safety.overrun_gap_s``, or 3 intervals running longer
  than 1.5 nominal periods.
"""
from libc.math cimport isfinite, fabs, NAN
from controller.kernels._params cimport *
from controller.kernels._numeric cimport clamp
from libc.stdint cimport uint32_t
from controller.kernels._types cimport Inputs
from controller.kernels._tables cimport (tables_as_compiled,
    ANKLE_FAULT_MOTOR_STALE, ANKLE_FAULT_DRIVER_ERROR, ANKLE_FAULT_IMU, ANKLE_FAULT_LOAD,
    ANKLE_FAULT_NONFINITE_INPUT, ANKLE_FAULT_ENCODER, ANKLE_FAULT_OVERRUN, ANKLE_FAULT_LOW_VOLTAGE,
    ANKLE_FAULT_SENSOR_NODE, ANKLE_WARN_SUPPLY_LOW, ANKLE_WARN_SUPPLY_UNKNOWN,
    ANKLE_WARN_SUPPLY_IMPLAUSIBLE, ANKLE_WARN_FRAMES_LOST)
from controller.kernels._monitor cimport StreamWatch

cdef double STANDARD_GRAVITY = 9.80665
# Detection rules of the fault catalogue (docs/reference.md), not site tuning: each is a stated
# detection bound that the tests and bench.faults check, and the README's fault table promises;
# changing one changes the safety case, so it is a code change with its evidence, not a setting.
# The thresholds a site does set (timeouts, limits, supply levels) are registry parameters.
cdef int LINK_FAILURES = 3          # failed sends / error-frame ticks in a row
cdef int ENCODER_SAMPLES = 3        # stuck-at and mismatch
cdef double ENCODER_MOTION_RAD = 0.01   # joint motion that a frozen motor encoder must have seen
cdef double ENCODER_MAX_GAP_S = 0.02    # replies further apart are not compared for jumps
cdef int IMU_REPEATS = 10           # identical IMU frames in a row = stuck-at
cdef int RANGE_SAMPLES = 2          # readings at the range limit in a row
cdef int LOADED_SWING_SAMPLES = 5   # loaded while swinging, frames in a row
cdef int SUPPLY_FRAMES = 2          # status frames in a row below the minimum
cdef double LATE_FACTOR = 1.5       # a tick interval above this many periods is late
cdef int LATE_TICKS = 3
# Sensor streams: protocol facts of the node (hal/sensor_node.dbc), not tuning.
cdef double STREAM_WINDOW_S = 0.02      # one status period; 20 frames of a 1 kHz stream
cdef double STREAM_RATE_HZ = 1000.0     # SENSOR_IMU and SENSOR_LOAD cycle time 1 ms
cdef double STREAM_RATE_FACTOR = 1.5    # above this many nominal frames per window: a second sender
cdef uint32_t STREAM_DISORDER_MAX = 2   # a CAN bus neither repeats nor reorders one sender's frames
cdef double STREAM_LOST_FRACTION = 0.25 # lost frames per window for the frames_lost warning
cdef int NODE_FRAMES = 2                # status frames in a row with flags / an impossible supply
# The supply reading the node can plausibly report: a 24 V pack never reads above 60 V (above
# any charger), and the raw field's 0..655.35 V is far wider than the hardware.
cdef double SUPPLY_PLAUSIBLE_MAX_V = 60.0


cdef bint _watch(StreamWatch* w, uint32_t frames, uint32_t disorder, uint32_t lost,
                 double now_s) noexcept nogil:
    """Count one stream's frames in the present window; True while it looks implausible."""
    cdef uint32_t n, d, l
    if w.window_start_s < 0.0 or now_s < w.window_start_s or now_s - w.window_start_s >= STREAM_WINDOW_S:
        w.window_start_s = now_s
        w.frames0 = frames
        w.disorder0 = disorder
        w.lost0 = lost
    # unsigned differences: the counters wrap
    n = frames - w.frames0
    d = disorder - w.disorder0
    l = lost - w.lost0
    if n > STREAM_RATE_FACTOR * STREAM_RATE_HZ * STREAM_WINDOW_S or d > STREAM_DISORDER_MAX:
        w.bad_until_s = now_s + STREAM_WINDOW_S
    if l > STREAM_LOST_FRACTION * STREAM_RATE_HZ * STREAM_WINDOW_S:
        w.lossy_until_s = now_s + STREAM_WINDOW_S
    return now_s <= w.bad_until_s


cdef void _reset_watch(StreamWatch* w) noexcept nogil:
    w.window_start_s = -1.0
    w.frames0 = w.disorder0 = w.lost0 = 0
    w.bad_until_s = -1.0
    w.lossy_until_s = -1.0


def compiled_tables():
    """The generated constants (``_tables.pxd``: fault and warning bits, modes, phase sources,
    telemetry indices) as this module was compiled with them, name -> value."""
    return tables_as_compiled()


# A module compiled from other tables would report faults and columns under the wrong names.
from controller.kernels.codegen import check_compiled as _check_compiled
_check_compiled(compiled_tables(), __name__)


cdef class Monitor:
    """Per-tick fault detection.  Configure with a ParamSet; ``check`` runs in the tick."""

    def __cinit__(self):
        # No parameter value of its own: every one comes from configure() (the registry).  NaN
        # until then; the monitor runs only inside a configured Safety (see Safety.configured).
        self.configured = False
        self.period_s = self.overrun_gap_s = NAN
        self.motor_timeout_s = self.imu_timeout_s = self.load_timeout_s = self.status_timeout_s = NAN
        self.encoder_jump_rad = self.encoder_mismatch_rad = NAN
        self.gyro_limit_rad_s = self.accel_limit_m_s2 = NAN
        self.load_limit_N = self.tension_limit_N = self.loaded_N = self.swing_gyro_rad_s = NAN
        self.supply_warn_V = self.supply_min_V = NAN
        self.reset()

    def configure(self, params, bint keep_state=False):
        """Take thresholds from a validated :class:`controller.params.registry.ParamSet` (not in the tick).

        ``keep_state``: a live retune; what the monitor has seen so far stays.
        """
        cdef double p[N_PARAMS]
        fill_vector(params, p)
        with nogil:
            self.configure_from(p, keep_state)

    cdef void configure_from(self, const double* p, bint keep_state) noexcept nogil:
        """Take thresholds from a parameter vector (registry order, validated by its publisher).
        No allocation, no GIL."""
        cdef double weight_N = p[P_WEARER_MASS_KG] * STANDARD_GRAVITY
        self.period_s = 1.0 / p[P_LOOP_RATE_HZ]
        self.overrun_gap_s = p[P_SAFETY_OVERRUN_GAP_S]
        self.motor_timeout_s = p[P_SAFETY_MOTOR_TIMEOUT_S]
        self.imu_timeout_s = p[P_SAFETY_IMU_TIMEOUT_S]
        self.load_timeout_s = p[P_SAFETY_LOAD_TIMEOUT_S]
        self.status_timeout_s = p[P_SAFETY_STATUS_TIMEOUT_S]
        self.encoder_jump_rad = p[P_SAFETY_ENCODER_JUMP_RAD]
        self.encoder_mismatch_rad = p[P_SAFETY_ENCODER_MISMATCH_RAD]
        self.gyro_limit_rad_s = p[P_SAFETY_IMU_GYRO_LIMIT_RAD_S]
        self.accel_limit_m_s2 = p[P_SAFETY_IMU_ACCEL_LIMIT_M_S2]
        self.load_limit_N = p[P_SAFETY_LOAD_LIMIT_N]
        self.loaded_N = p[P_ESTIMATOR_HEEL_STRIKE_LOAD_BW] * weight_N
        # A strain-gauge pylon never sees tension beyond a fraction of body weight.
        self.tension_limit_N = self.loaded_N
        self.swing_gyro_rad_s = p[P_SAFETY_SWING_CHECK_GYRO_RAD_S]
        self.supply_warn_V = p[P_SAFETY_SUPPLY_WARN_V]
        self.supply_min_V = p[P_SAFETY_SUPPLY_MIN_V]
        self.configured = True
        if not keep_state:
            self.reset()

    def settings(self):
        """The values configure() set, by field name (tools and tests)."""
        return {"period_s": self.period_s, "overrun_gap_s": self.overrun_gap_s,
                "motor_timeout_s": self.motor_timeout_s, "imu_timeout_s": self.imu_timeout_s,
                "load_timeout_s": self.load_timeout_s, "status_timeout_s": self.status_timeout_s,
                "encoder_jump_rad": self.encoder_jump_rad, "encoder_mismatch_rad": self.encoder_mismatch_rad,
                "gyro_limit_rad_s": self.gyro_limit_rad_s, "accel_limit_m_s2": self.accel_limit_m_s2,
                "load_limit_N": self.load_limit_N, "tension_limit_N": self.tension_limit_N,
                "loaded_N": self.loaded_N, "swing_gyro_rad_s": self.swing_gyro_rad_s,
                "supply_warn_V": self.supply_warn_V, "supply_min_V": self.supply_min_V}

    cdef void reset(self) noexcept nogil:
        self.started = False
        self.armed_s = -1.0
        self.last_now_s = -1.0
        self.late_run = 0
        self.last_motor_rx_s = -1.0
        self.last_motor_angle = 0.0
        self.last_motor_vel = 0.0
        self.stuck_run = 0
        self.mismatch_run = 0
        self.stuck_joint_start_rad = 0.0
        self.last_imu_rx_s = -1.0
        self.last_gyro = 0.0
        self.last_ax = 0.0
        self.last_ay = 0.0
        self.imu_repeat_run = 0
        self.imu_range_run = 0
        self.last_load_rx_s = -1.0
        self.load_range_run = 0
        self.loaded_swing_run = 0
        self.last_status_rx_s = -1.0
        self.supply_low_frames = 0
        self.node_flag_frames = 0
        self.supply_implausible_frames = 0
        _reset_watch(&self.imu_stream)
        _reset_watch(&self.load_stream)
        self.imu_bad_s = -1.0
        self.load_bad_s = -1.0
        self.active = 0
        self.warnings = 0
        self.supply_scale = 0.0
        self.imu_fresh = False
        self.load_fresh = False

    def start(self, double now_s):
        """Begin watching the tick interval at ``now_s`` (the tick's ``start``)."""
        self.begin(now_s)

    cdef void begin(self, double now_s) noexcept nogil:
        self.started = True
        self.armed_s = now_s
        self.last_now_s = now_s
        self.late_run = 0

    cdef uint32_t check(self, const Inputs* inp, double now_s) noexcept nogil:
        cdef uint32_t found = 0
        cdef double dt, dtheta, expected, heard_s, supply_V
        cdef bint motor_new, imu_new, load_new, status_new, motor_finite, plausible
        cdef bint imu_bad = False, load_bad = False

        # ---- the tick itself ----------------------------------------------------------------
        if self.started and self.last_now_s >= 0.0:
            dt = now_s - self.last_now_s
            if dt > self.overrun_gap_s:
                found |= ANKLE_FAULT_OVERRUN
            if dt > LATE_FACTOR * self.period_s:
                self.late_run += 1
                if self.late_run >= LATE_TICKS:
                    found |= ANKLE_FAULT_OVERRUN
            else:
                self.late_run = 0
        self.last_now_s = now_s

        # ---- driver link and driver --------------------------------------------------------
        # before the first reply of the loop, the driver counts as heard when supervision began
        # (its activation reply); a made-up reading would only confuse the encoder checks
        heard_s = inp.motor_rx_s if inp.motor_rx_s >= 0.0 else self.armed_s
        if heard_s < 0.0 or now_s - heard_s > self.motor_timeout_s:
            found |= ANKLE_FAULT_MOTOR_STALE
        if inp.send_failures >= LINK_FAILURES or inp.bus_error_ticks >= LINK_FAILURES:
            found |= ANKLE_FAULT_MOTOR_STALE
        if inp.motor_error > 0:
            found |= ANKLE_FAULT_DRIVER_ERROR
        motor_finite = (isfinite(inp.motor_angle_rad) and isfinite(inp.motor_vel_rad_s)
                        and isfinite(inp.motor_torque_Nm))
        if not motor_finite:
            found |= ANKLE_FAULT_NONFINITE_INPUT

        self.load_fresh = (inp.load_rx_s >= 0.0 and now_s - inp.load_rx_s <= self.load_timeout_s
                           and isfinite(inp.load_N) and isfinite(inp.ankle_angle_rad))
        self.imu_fresh = (inp.imu_rx_s >= 0.0 and now_s - inp.imu_rx_s <= self.imu_timeout_s
                          and isfinite(inp.shank_gyro_rad_s) and isfinite(inp.accel_x_m_s2)
                          and isfinite(inp.accel_y_m_s2))

        # ---- encoder: only on a new reply ---------------------------------------------------
        motor_new = inp.motor_rx_s >= 0.0 and inp.motor_rx_s != self.last_motor_rx_s
        if motor_new and motor_finite:
            if self.last_motor_rx_s >= 0.0 and inp.motor_rx_s - self.last_motor_rx_s <= ENCODER_MAX_GAP_S:
                dtheta = inp.motor_angle_rad - self.last_motor_angle
                expected = 0.5 * (inp.motor_vel_rad_s + self.last_motor_vel) * (inp.motor_rx_s - self.last_motor_rx_s)
                if fabs(dtheta - expected) > self.encoder_jump_rad:
                    found |= ANKLE_FAULT_ENCODER
                if dtheta == 0.0 and self.load_fresh:
                    if self.stuck_run == 0:
                        self.stuck_joint_start_rad = inp.ankle_angle_rad
                    self.stuck_run += 1
                    if (self.stuck_run >= ENCODER_SAMPLES
                            and fabs(inp.ankle_angle_rad - self.stuck_joint_start_rad) > ENCODER_MOTION_RAD):
                        found |= ANKLE_FAULT_ENCODER
                else:
                    self.stuck_run = 0
            if self.load_fresh:
                if fabs(inp.motor_angle_rad - inp.ankle_angle_rad) > self.encoder_mismatch_rad:
                    self.mismatch_run += 1
                    if self.mismatch_run >= ENCODER_SAMPLES:
                        found |= ANKLE_FAULT_ENCODER
                else:
                    self.mismatch_run = 0
            self.last_motor_rx_s = inp.motor_rx_s
            self.last_motor_angle = inp.motor_angle_rad
            self.last_motor_vel = inp.motor_vel_rad_s

        # ---- IMU ----------------------------------------------------------------------------
        if not self.imu_fresh:
            imu_bad = True
        imu_new = inp.imu_rx_s >= 0.0 and inp.imu_rx_s != self.last_imu_rx_s
        if imu_new and self.imu_fresh:
            if (inp.shank_gyro_rad_s == self.last_gyro and inp.accel_x_m_s2 == self.last_ax
                    and inp.accel_y_m_s2 == self.last_ay):
                self.imu_repeat_run += 1
            else:
                self.imu_repeat_run = 0
            if (fabs(inp.shank_gyro_rad_s) >= self.gyro_limit_rad_s
                    or fabs(inp.accel_x_m_s2) >= self.accel_limit_m_s2
                    or fabs(inp.accel_y_m_s2) >= self.accel_limit_m_s2):
                self.imu_range_run += 1
            else:
                self.imu_range_run = 0
            self.last_gyro = inp.shank_gyro_rad_s
            self.last_ax = inp.accel_x_m_s2
            self.last_ay = inp.accel_y_m_s2
            self.last_imu_rx_s = inp.imu_rx_s
        if self.imu_repeat_run >= IMU_REPEATS or self.imu_range_run >= RANGE_SAMPLES:
            imu_bad = True

        # ---- load cell ----------------------------------------------------------------------
        if not self.load_fresh:
            load_bad = True
        load_new = inp.load_rx_s >= 0.0 and inp.load_rx_s != self.last_load_rx_s
        if load_new and self.load_fresh:
            if inp.load_N >= self.load_limit_N or inp.load_N <= -self.tension_limit_N:
                self.load_range_run += 1
            else:
                self.load_range_run = 0
            # Only a swinging shank turns forward this fast, and a swinging foot carries no load.
            if (self.imu_fresh and not imu_bad and inp.shank_gyro_rad_s > self.swing_gyro_rad_s
                    and inp.load_N > self.loaded_N):
                self.loaded_swing_run += 1
            else:
                self.loaded_swing_run = 0
            self.last_load_rx_s = inp.load_rx_s
        if self.load_range_run >= RANGE_SAMPLES or self.loaded_swing_run >= LOADED_SWING_SAMPLES:
            load_bad = True

        # ---- streams: a second sender, duplicates, reordering -------------------------------
        if _watch(&self.imu_stream, inp.imu_frames, inp.imu_disorder, inp.imu_lost, now_s):
            imu_bad = True
        if _watch(&self.load_stream, inp.load_frames, inp.load_disorder, inp.load_lost, now_s):
            load_bad = True

        if imu_bad:
            found |= ANKLE_FAULT_IMU
            self.imu_bad_s = now_s
        if load_bad:
            found |= ANKLE_FAULT_LOAD
            self.load_bad_s = now_s

        # ---- supply and the node's own status -------------------------------------------------
        self.warnings = 0
        if now_s <= self.imu_stream.lossy_until_s or now_s <= self.load_stream.lossy_until_s:
            self.warnings |= ANKLE_WARN_FRAMES_LOST
        if inp.node_status_rx_s >= 0.0 and now_s - inp.node_status_rx_s <= self.status_timeout_s:
            status_new = inp.node_status_rx_s != self.last_status_rx_s
            plausible = isfinite(inp.supply_V) and 0.0 <= inp.supply_V <= SUPPLY_PLAUSIBLE_MAX_V
            if status_new:
                self.node_flag_frames = self.node_flag_frames + 1 if inp.node_flags != 0 else 0
                self.supply_implausible_frames = 0 if plausible else self.supply_implausible_frames + 1
                if plausible and inp.supply_V < self.supply_min_V:
                    self.supply_low_frames += 1
                else:
                    self.supply_low_frames = 0
                self.last_status_rx_s = inp.node_status_rx_s
            if self.node_flag_frames >= NODE_FRAMES or self.supply_implausible_frames >= NODE_FRAMES:
                found |= ANKLE_FAULT_SENSOR_NODE
            if self.supply_low_frames >= SUPPLY_FRAMES:
                found |= ANKLE_FAULT_LOW_VOLTAGE
        else:
            plausible = False
        if plausible:
            # the lower of the node's reading and the drive's own (when it gives a plausible one):
            # the drive's bus is what the push-off draws from
            supply_V = inp.supply_V
            if isfinite(inp.drive_supply_V) and 0.0 <= inp.drive_supply_V < supply_V:
                supply_V = inp.drive_supply_V
            if supply_V < self.supply_warn_V:
                self.warnings |= ANKLE_WARN_SUPPLY_LOW
            self.supply_scale = clamp((supply_V - self.supply_min_V)
                                      / (self.supply_warn_V - self.supply_min_V), 0.0, 1.0)
        else:
            if inp.node_status_rx_s >= 0.0 and now_s - inp.node_status_rx_s <= self.status_timeout_s:
                self.warnings |= ANKLE_WARN_SUPPLY_IMPLAUSIBLE
            self.warnings |= ANKLE_WARN_SUPPLY_UNKNOWN
            self.supply_scale = 0.0
        self.active = found
        return found

    def healthy_for_s(self, str sensor, double now_s):
        """How long ``sensor`` ("imu" or "load") has looked healthy at ``now_s`` (tools and tests)."""
        bad = self.imu_bad_s if sensor == "imu" else self.load_bad_s
        return now_s - bad if bad >= 0.0 else float("inf")
