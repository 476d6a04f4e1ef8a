# cython: language_level=3
"""Safety stage between update and write, independent of the controller law.

Every tick it (1) detects faults from the inputs and the proposed command
(stale or missing driver replies, lost sensors, driver error codes, driver
over-temperature, NaN/Inf anywhere) and latches them; (2) on any latched fault
switches to the safe state, which depends on the gait: loaded, a passive
spring-damper like a passive foot; unloaded, a gentle hold near neutral.  The
safe state is handed to the driver as its own spring-damper (kp, kd), so it
keeps acting on the driver's encoder even if this host stops; it blends in over
``safety.ramp_s`` so torque never steps to zero under load; (3) bounds every
command: feed-forward torque and its slew, gains, and the spring set-point so
that the total torque asked for stays within ``safety.max_torque_Nm``.
"""
from libc.math cimport isfinite, fabs
from libc.stdint cimport uint32_t
from controller._types cimport (Inputs, GaitState, Command,
    ANKLE_FAULT_MOTOR_STALE, ANKLE_FAULT_DRIVER_ERROR, ANKLE_FAULT_IMU_STALE,
    ANKLE_FAULT_LOAD_STALE, ANKLE_FAULT_NONFINITE_INPUT, ANKLE_FAULT_NONFINITE_CMD,
    ANKLE_FAULT_OVER_TEMP, ANKLE_MODE_STANDBY, ANKLE_MODE_WALK, ANKLE_MODE_SAFE)

cdef double STANDARD_GRAVITY = 9.80665   # m/s^2
cdef double NOMINAL_DT_S = 0.001


cdef inline double clamp(double x, double lo, double hi) noexcept nogil:
    return lo if x < lo else (hi if x > hi else x)


cdef class Safety:
    """Per-tick limits, fault latch and phase-aware safe state.  ``step`` is called every tick."""

    def __cinit__(self):
        self.max_torque_Nm = 110.0
        self.max_slew_Nm_s = 3000.0
        self.motor_timeout_s = 0.0035
        self.sensor_timeout_s = 0.02
        self.max_motor_temp_C = 90.0
        self.stance_load_N = 0.15 * 80.0 * STANDARD_GRAVITY
        self.passive_k = 250.0
        self.passive_b = 3.0
        self.hold_k = 40.0
        self.hold_b = 1.5
        self.ramp_s = 0.1
        self.kp_max = 250.0
        self.kd_max = 3.0
        self.faults = 0
        self.mode = ANKLE_MODE_STANDBY
        self.t_safe_s = 0.0
        self.torque_at_safe_Nm = 0.0
        self.last_torque_Nm = 0.0
        self.last_now_s = 0.0
        self.started = False

    def configure(self, params):
        """Take limits from a validated :class:`controller.params.ParamSet` (not in the tick)."""
        self.max_torque_Nm = params["safety.max_torque_Nm"]
        self.max_slew_Nm_s = params["safety.max_slew_Nm_s"]
        self.motor_timeout_s = params["safety.motor_timeout_s"]
        self.sensor_timeout_s = params["safety.sensor_timeout_s"]
        self.max_motor_temp_C = params["safety.max_motor_temp_degC"]
        self.stance_load_N = (params["estimator.heel_strike_load_bw"] * params["wearer.mass_kg"]
                              * STANDARD_GRAVITY)
        self.passive_k = params["safety.passive_stiffness_Nm_rad"]
        self.passive_b = params["safety.passive_damping_Nms_rad"]
        self.hold_k = params["safety.hold_stiffness_Nm_rad"]
        self.hold_b = params["safety.hold_damping_Nms_rad"]
        self.ramp_s = params["safety.ramp_s"]
        self.kp_max = max(self.passive_k, self.hold_k)
        self.kd_max = max(self.passive_b, self.hold_b)

    cdef void arm(self, double now_s) noexcept nogil:
        """Start supervising at ``now_s`` (after the driver is active)."""
        self.started = True
        self.last_now_s = now_s
        self.last_torque_Nm = 0.0
        if self.faults == 0:
            self.mode = ANKLE_MODE_WALK

    cdef void step(self, Command* cmd, const Inputs* inp, const GaitState* gait, double now_s) noexcept nogil:
        cdef double dt = now_s - self.last_now_s
        cdef uint32_t new = 0
        cdef double alpha, k, b, step_max, impedance, scale
        cdef bint loaded
        if not self.started or not (dt > 0.0):
            dt = NOMINAL_DT_S

        # ---- 1. detect and latch ---------------------------------------------------------
        if not (isfinite(inp.motor_angle_rad) and isfinite(inp.motor_vel_rad_s)
                and isfinite(inp.motor_torque_Nm) and isfinite(inp.load_N)
                and isfinite(inp.shank_gyro_rad_s) and isfinite(inp.ankle_angle_rad)):
            new |= ANKLE_FAULT_NONFINITE_INPUT
        if inp.motor_rx_s < 0.0 or now_s - inp.motor_rx_s > self.motor_timeout_s:
            new |= ANKLE_FAULT_MOTOR_STALE
        if inp.imu_rx_s < 0.0 or now_s - inp.imu_rx_s > self.sensor_timeout_s:
            new |= ANKLE_FAULT_IMU_STALE
        if inp.load_rx_s < 0.0 or now_s - inp.load_rx_s > self.sensor_timeout_s:
            new |= ANKLE_FAULT_LOAD_STALE
        if inp.motor_error > 0:
            new |= ANKLE_FAULT_DRIVER_ERROR
        if inp.motor_temp_C > self.max_motor_temp_C:
            new |= ANKLE_FAULT_OVER_TEMP
        if not (isfinite(cmd.torque_ff_Nm) and isfinite(cmd.p_des_rad) and isfinite(cmd.v_des_rad_s)
                and isfinite(cmd.kp_Nm_rad) and isfinite(cmd.kd_Nms_rad)):
            new |= ANKLE_FAULT_NONFINITE_CMD
        self.faults |= new
        if self.faults != 0 and self.mode != ANKLE_MODE_SAFE:
            self.mode = ANKLE_MODE_SAFE
            self.t_safe_s = now_s
            self.torque_at_safe_Nm = self.last_torque_Nm

        # ---- 2. phase-aware safe state ---------------------------------------------------
        if self.mode == ANKLE_MODE_SAFE:
            alpha = clamp((now_s - self.t_safe_s) / self.ramp_s, 0.0, 1.0)
            # Unknown load (lost or NaN) counts as loaded: the stiffer passive foot is the
            # safe guess when the wearer might be standing on it.
            loaded = gait.stance or not (inp.load_N <= self.stance_load_N)
            k = self.passive_k if loaded else self.hold_k
            b = self.passive_b if loaded else self.hold_b
            cmd.torque_ff_Nm = (1.0 - alpha) * self.torque_at_safe_Nm
            cmd.p_des_rad = 0.0
            cmd.v_des_rad_s = 0.0
            cmd.kp_Nm_rad = alpha * k
            cmd.kd_Nms_rad = alpha * b
        elif self.mode == ANKLE_MODE_STANDBY:
            cmd.torque_ff_Nm = 0.0
            cmd.p_des_rad = 0.0
            cmd.v_des_rad_s = 0.0
            cmd.kp_Nm_rad = 0.0
            cmd.kd_Nms_rad = 0.0

        # ---- 3. bounds (every mode) -------------------------------------------------------
        cmd.torque_ff_Nm = clamp(cmd.torque_ff_Nm, -self.max_torque_Nm, self.max_torque_Nm)
        step_max = self.max_slew_Nm_s * dt
        cmd.torque_ff_Nm = clamp(cmd.torque_ff_Nm, self.last_torque_Nm - step_max,
                                 self.last_torque_Nm + step_max)
        cmd.kp_Nm_rad = clamp(cmd.kp_Nm_rad, 0.0, self.kp_max)
        cmd.kd_Nms_rad = clamp(cmd.kd_Nms_rad, 0.0, self.kd_max)
        cmd.v_des_rad_s = 0.0
        if isfinite(inp.motor_angle_rad) and isfinite(inp.motor_vel_rad_s):
            # The driver-side spring-damper first: scale it into the limit (an absurd
            # velocity must not let the damper exceed it) ...
            if cmd.kp_Nm_rad > 0.0:
                cmd.p_des_rad = clamp(cmd.p_des_rad,
                                      inp.motor_angle_rad - self.max_torque_Nm / cmd.kp_Nm_rad,
                                      inp.motor_angle_rad + self.max_torque_Nm / cmd.kp_Nm_rad)
            impedance = (cmd.kp_Nm_rad * (inp.motor_angle_rad - cmd.p_des_rad)
                         + cmd.kd_Nms_rad * inp.motor_vel_rad_s)
            if fabs(impedance) > self.max_torque_Nm:
                scale = self.max_torque_Nm / fabs(impedance)
                cmd.kd_Nms_rad *= scale
                cmd.p_des_rad = inp.motor_angle_rad - (inp.motor_angle_rad - cmd.p_des_rad) * scale
                impedance *= scale
            # ... then the feed-forward gets what is left: the torque limit takes precedence
            # over the slew limit.
            cmd.torque_ff_Nm = clamp(cmd.torque_ff_Nm, -self.max_torque_Nm - impedance,
                                     self.max_torque_Nm - impedance)
            cmd.torque_expected_Nm = cmd.torque_ff_Nm + impedance
        else:
            # No trustworthy angle: the set-point is neutral and the driver's own torque limit
            # bounds the spring; report the feed-forward part.
            cmd.p_des_rad = clamp(cmd.p_des_rad, -0.35, 0.35)
            cmd.torque_expected_Nm = cmd.torque_ff_Nm
        # clamp() passes NaN through; the NaN command was already replaced by the safe state
        # above, but a driver must never see one, so guard once more.
        if not isfinite(cmd.torque_ff_Nm):
            cmd.torque_ff_Nm = self.last_torque_Nm
        if not isfinite(cmd.p_des_rad):
            cmd.p_des_rad = 0.0
        if not isfinite(cmd.kp_Nm_rad):
            cmd.kp_Nm_rad = 0.0
        if not isfinite(cmd.kd_Nms_rad):
            cmd.kd_Nms_rad = 0.0
        self.last_torque_Nm = cmd.torque_ff_Nm
        self.last_now_s = now_s

    def clear_faults(self, double load_N):
        """Clear the latch when the foot is unloaded; returns False (and clears nothing) under load."""
        if not (load_N < self.stance_load_N):
            return False
        self.faults = 0
        self.mode = ANKLE_MODE_WALK if self.started else ANKLE_MODE_STANDBY
        return True

    def apply(self, dict command, dict inputs, dict gait, double now_s):
        """One safety step on plain dicts (tools and tests; the tick calls ``step``).

        The dicts need every field of Command, Inputs and GaitState; returns
        the bounded command as a dict.
        """
        cdef Command c = command
        cdef Inputs i = inputs
        cdef GaitState g = gait
        with nogil:
            self.step(&c, &i, &g, now_s)
        return c

    def start(self, double now_s):
        """Begin supervising at ``now_s`` (tools and tests; the tick calls ``arm``)."""
        self.arm(now_s)
