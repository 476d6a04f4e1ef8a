# cython: language_level=3
"""Safety stage, independent of the controller law: fault latch, modes, safe states, limits.

Each tick calls ``check`` first (before the estimator) and ``step`` last
(between the controller and the driver frame).

``check``: the :class:`~controller.kernels._monitor.Monitor` finds fault conditions;
they latch here.  IMU and load-cell faults only take the powered push-off away
(mode PASSIVE: the impedance law goes on with events from the other sensor)
and clear by themselves once the sensor has been healthy for
``safety.sensor_recover_s`` and the foot is off the ground.  Every other fault
puts the ankle in the SAFE state and stays until :meth:`Safety.clear_faults`
is called with the foot unloaded and the cause gone: it never clears under load.
``check`` also tells the estimator which sensors to trust (``imu_valid``,
``load_valid``).

``step``:
1. the safe state, chosen by the gait: loaded, a passive spring-damper like a
   passive foot; unloaded, a gentle hold near neutral; after an encoder fault a
   damped hold (no spring on a position that cannot be trusted).  It is handed
   to the driver as its own kp/kd, so it acts on the driver's encoder even if
   this host stops, and it blends in over ``safety.ramp_s``: torque never
   steps to zero under load.
2. the push-off share of the command (``Command.pushoff_Nm``) is let through
   only in WALK mode, scaled by the supply (low battery drops push-off first),
   and ramps back only while the foot is unloaded.
3. limits, in every mode: soft angle limits as virtual springs; the torque
   limit, derated by the motor's thermal model; slew; gains; the driver's
   spring set-point so the total torque stays inside the limit; NaN/Inf never
   reaches a driver.
"""
from libc.math cimport isfinite, fabs, NAN
from controller.kernels._params cimport *
from controller.kernels._numeric cimport clamp
from libc.stdint cimport uint32_t
from controller.kernels._types cimport Inputs, GaitState, Command
from controller.kernels._tables cimport (tables_as_compiled,
    ANKLE_FAULT_IMU, ANKLE_FAULT_LOAD, ANKLE_FAULT_NONFINITE_COMMAND, ANKLE_FAULT_OVER_TEMPERATURE,
    ANKLE_FAULT_ENCODER, ANKLE_FAULTS_DEGRADING, ANKLE_FAULT_MOTOR_STALE, ANKLE_FAULT_NONFINITE_INPUT,
    ANKLE_WARN_THERMAL_DERATE, ANKLE_WARN_THERMAL_ALERT,
    ANKLE_MODE_STANDBY, ANKLE_MODE_WALK, ANKLE_MODE_SAFE, ANKLE_MODE_PASSIVE)
from controller.kernels._monitor cimport Monitor
from controller.kernels._thermal cimport ThermalModel

cdef double STANDARD_GRAVITY = 9.80665   # m/s^2
cdef double _DRIVER_LAG_S = 0.002       # the reply's age plus one period: how far the driver's angle runs ahead
#: The driver's spring keeps kp x |motor velocity| x this [s] of the limit free (see update).
DRIVER_LAG_S = _DRIVER_LAG_S
cdef double MAX_DT_S = 0.05              # a longer gap (host stall) is integrated as this
# Safety.angle_source: which ankle angle the limits and the safe state use this tick.
cdef enum:
    ANGLE_NONE = 0       # none trusted: damper only, no spring, no soft end stops
    ANGLE_MOTOR = 1      # the driver's encoder (spring-damper on the driver)
    ANGLE_JOINT = 2      # the sensor node's joint encoder (spring computed on the host)
#: Safety.angle_source value -> name.
ANGLE_SOURCES = {ANGLE_NONE: "none", ANGLE_MOTOR: "motor", ANGLE_JOINT: "joint"}


def compiled_tables():
    """The generated constants (``_tables.pxd``: fault and warning bits, modes, phase sources,
    telemetry indices) as this module was compiled with them, name -> value."""
    return tables_as_compiled()


# A module compiled from other tables would report faults and columns under the wrong names.
from controller.kernels.codegen import check_compiled as _check_compiled
_check_compiled(compiled_tables(), __name__)


cdef class Safety:
    """Per-tick fault latch, modes, phase-aware safe state and limits."""

    def __cinit__(self):
        self.host_impedance = False
        # No parameter value of its own: every one comes from configure() (the registry and the
        # driver's range).  NaN until then; the Python entry points refuse to run it unconfigured.
        self.configured = False
        self.monitor = Monitor()
        self.thermal = ThermalModel()
        self.max_torque_Nm = self.max_slew_Nm_s = self.stance_load_N = NAN
        self.passive_k = self.passive_b = self.hold_k = self.hold_b = self.ramp_s = NAN
        self.kp_max = self.kd_max = self.recover_s = NAN
        self.soft_dorsi_rad = self.soft_plantar_rad = self.soft_k = self.soft_b = NAN
        self.ratio_eff = NAN
        self.driver_v_max_rad_s = NAN
        self.max_speed_rad_s = NAN
        self.angle_source = ANGLE_MOTOR
        self.faults = 0
        self.warnings = 0
        self.mode = ANKLE_MODE_STANDBY
        self.chosen_mode = ANKLE_MODE_WALK
        self.assist = 0.0
        self.torque_limit_Nm = NAN
        self.present = 0
        self.t_safe_s = 0.0
        self.torque_at_safe_Nm = 0.0
        self.loaded_share = 1.0
        self.last_torque_Nm = 0.0
        self.last_now_s = 0.0
        self.last_load_N = 0.0
        self.started = False

    def configure(self, params, bint keep_state=False, driver_v_max_rad_s=None):
        """Take limits from a validated :class:`controller.params.registry.ParamSet` (not in the tick).

        ``keep_state``: a live retune; the monitor's and the thermal model's state stay.
        ``driver_v_max_rad_s``: the fastest velocity the driver's reply can carry, on its own
        shaft (its MIT range's larger |v| bound); None: the range of the runtime's default driver
        (hal.ak's AK80-9).  The tick passes its driver's.
        """
        cdef double p[N_PARAMS]
        cdef double v_max
        fill_vector(params, p)
        if driver_v_max_rad_s is None:
            from hal.ak import mit_range
            rng = mit_range("AK80-9")
            driver_v_max_rad_s = max(abs(rng["v_min"]), abs(rng["v_max"]))
        v_max = driver_v_max_rad_s
        if not v_max > 0.0:
            raise ValueError(f"driver_v_max_rad_s must be positive, got {driver_v_max_rad_s!r}")
        with nogil:
            self.configure_from(p, keep_state, v_max)

    cdef void configure_from(self, const double* p, bint keep_state, double driver_v_max_rad_s) noexcept nogil:
        """Take limits from a parameter vector (registry order, validated by its publisher) and
        the driver's velocity range (motor side).  No allocation, no GIL."""
        self.monitor.configure_from(p, keep_state)
        self.thermal.configure_from(p, keep_state)
        self.max_torque_Nm = p[P_SAFETY_MAX_TORQUE_NM]
        self.torque_limit_Nm = self.max_torque_Nm
        self.max_slew_Nm_s = p[P_SAFETY_MAX_SLEW_NM_S]
        self.stance_load_N = p[P_ESTIMATOR_HEEL_STRIKE_LOAD_BW] * p[P_WEARER_MASS_KG] * STANDARD_GRAVITY
        self.passive_k = p[P_SAFETY_PASSIVE_STIFFNESS_NM_RAD]
        self.passive_b = p[P_SAFETY_PASSIVE_DAMPING_NMS_RAD]
        self.hold_k = p[P_SAFETY_HOLD_STIFFNESS_NM_RAD]
        self.hold_b = p[P_SAFETY_HOLD_DAMPING_NMS_RAD]
        self.ramp_s = p[P_SAFETY_RAMP_S]
        self.recover_s = p[P_SAFETY_SENSOR_RECOVER_S]
        self.soft_dorsi_rad = p[P_SAFETY_SOFT_DORSI_RAD]
        self.soft_plantar_rad = p[P_SAFETY_SOFT_PLANTAR_RAD]
        self.soft_k = p[P_SAFETY_SOFT_STIFFNESS_NM_RAD]
        self.soft_b = p[P_SAFETY_SOFT_DAMPING_NMS_RAD]
        self.ratio_eff = p[P_ACTUATOR_RATIO] * p[P_ACTUATOR_EFFICIENCY]
        self.kp_max = self.passive_k if self.passive_k > self.hold_k else self.hold_k
        self.kd_max = self.passive_b if self.passive_b > self.hold_b else self.hold_b
        if self.soft_b > self.kd_max:
            self.kd_max = self.soft_b
        # the fastest ankle velocity the driver's reply can carry: what a damper on an untrusted
        # encoder must be bounded for
        self.driver_v_max_rad_s = driver_v_max_rad_s
        self.max_speed_rad_s = driver_v_max_rad_s / p[P_ACTUATOR_RATIO]
        self.configured = True

    def settings(self):
        """The values configure() set, by field name, with the monitor's and the thermal model's
        (prefixed ``monitor.`` and ``thermal.``; tools and tests)."""
        out = {"max_torque_Nm": self.max_torque_Nm, "max_slew_Nm_s": self.max_slew_Nm_s,
               "stance_load_N": self.stance_load_N, "passive_k": self.passive_k, "passive_b": self.passive_b,
               "hold_k": self.hold_k, "hold_b": self.hold_b, "ramp_s": self.ramp_s, "kp_max": self.kp_max,
               "kd_max": self.kd_max, "recover_s": self.recover_s, "soft_dorsi_rad": self.soft_dorsi_rad,
               "soft_plantar_rad": self.soft_plantar_rad, "soft_k": self.soft_k, "soft_b": self.soft_b,
               "ratio_eff": self.ratio_eff, "max_speed_rad_s": self.max_speed_rad_s}
        out.update({"monitor." + k: v for k, v in self.monitor.settings().items()})
        out.update({"thermal." + k: v for k, v in self.thermal.settings().items()})
        return out

    cdef void arm(self, double now_s) noexcept nogil:
        """Start supervising at ``now_s`` (after the driver is active)."""
        self.started = True
        self.last_now_s = now_s
        self.last_torque_Nm = 0.0
        self.assist = 0.0
        self.monitor.begin(now_s)
        self._set_mode(now_s)

    cdef void _set_mode(self, double now_s) noexcept nogil:
        cdef int mode
        if self.faults & ~ANKLE_FAULTS_DEGRADING:
            mode = ANKLE_MODE_SAFE
        elif not self.started or self.chosen_mode == ANKLE_MODE_STANDBY:
            mode = ANKLE_MODE_STANDBY
        elif self.faults or self.chosen_mode == ANKLE_MODE_PASSIVE:
            mode = ANKLE_MODE_PASSIVE
        else:
            mode = ANKLE_MODE_WALK
        # entering a held state (safe, or standby chosen while running): the feed-forward torque
        # in force is ramped out from here, never dropped
        if (mode == ANKLE_MODE_SAFE or (mode == ANKLE_MODE_STANDBY and self.started)) and mode != self.mode:
            self.t_safe_s = now_s
            self.torque_at_safe_Nm = self.last_torque_Nm
            self.loaded_share = 1.0      # until known otherwise, the wearer may be standing on it
        self.mode = mode

    cdef void check(self, Inputs* inp, double now_s) noexcept nogil:
        """Detect and latch; auto-clear sensor faults when safe; mark the sensors to trust."""
        cdef uint32_t found = self.monitor.check(inp, now_s)
        cdef bint unloaded
        self.last_load_N = inp.load_N
        self.present = found
        self.faults |= found
        # A sensor fault clears by itself only with the sensor healthy for a while and the foot
        # off the ground (known from the load cell, or from the IMU when the load cell is out).
        if self.faults & ANKLE_FAULTS_DEGRADING:
            unloaded = self.monitor.load_fresh and not (inp.load_N >= self.stance_load_N)
            if (self.faults & ANKLE_FAULT_IMU and unloaded
                    and now_s - self.monitor.imu_bad_s >= self.recover_s):
                self.faults &= ~ANKLE_FAULT_IMU
            if (self.faults & ANKLE_FAULT_LOAD and unloaded
                    and now_s - self.monitor.load_bad_s >= self.recover_s):
                self.faults &= ~ANKLE_FAULT_LOAD
        inp.imu_valid = self.monitor.imu_fresh and not (self.faults & ANKLE_FAULT_IMU)
        inp.load_valid = self.monitor.load_fresh and not (self.faults & ANKLE_FAULT_LOAD)
        self._set_mode(now_s)

    cdef void step(self, Command* cmd, const Inputs* inp, const GaitState* gait, double now_s) noexcept nogil:
        cdef double dt = now_s - self.last_now_s
        cdef double alpha, k, b, step_max, impedance, scale, target, limit, current_A
        cdef bint loaded
        cdef int src
        cdef double reserve
        if not self.started or not (dt > 0.0):
            dt = self.monitor.period_s       # one period of the loop (1 / loop.rate_Hz)
        elif dt > MAX_DT_S:
            dt = MAX_DT_S

        # ---- thermal model: the measured torque is the motor current ---------------------
        current_A = fabs(inp.motor_torque_Nm) / (self.ratio_eff * self.thermal.kt_Nm_A)
        self.thermal.step(current_A, inp.motor_temp_C, dt)
        self.warnings = self.monitor.warnings
        if self.thermal.derate < 1.0:
            self.warnings |= ANKLE_WARN_THERMAL_DERATE
        if self.thermal.winding_C >= self.thermal.alert_C:
            self.warnings |= ANKLE_WARN_THERMAL_ALERT
        if self.thermal.heat_fraction() >= 1.0 or inp.motor_temp_C >= self.thermal.limit_C:
            self.present |= ANKLE_FAULT_OVER_TEMPERATURE
        if not (isfinite(cmd.torque_ff_Nm) and isfinite(cmd.p_des_rad) and isfinite(cmd.v_des_rad_s)
                and isfinite(cmd.kp_Nm_rad) and isfinite(cmd.kd_Nms_rad) and isfinite(cmd.pushoff_Nm)):
            self.present |= ANKLE_FAULT_NONFINITE_COMMAND
        self.faults |= self.present
        self._set_mode(now_s)
        # Which ankle angle the limits and the safe state may use this tick.  The motor encoder,
        # unless it is the one just found faulty (encoder fault latched), its replies are stale or
        # not finite.  Then the joint encoder of the sensor node, which is an independent sensor --
        # except after an encoder fault: a motor/joint mismatch cannot tell which of the two lies,
        # so neither is used and the safe state is the catalogue's damped hold.
        src = ANGLE_NONE
        if (isfinite(inp.motor_angle_rad) and isfinite(inp.motor_vel_rad_s)
                and not (self.faults & ANKLE_FAULT_ENCODER)
                and not (self.present & (ANKLE_FAULT_MOTOR_STALE | ANKLE_FAULT_NONFINITE_INPUT))):
            src = ANGLE_MOTOR
        elif (inp.load_valid and isfinite(inp.ankle_angle_rad)
                and not (self.faults & ANKLE_FAULT_ENCODER)):
            src = ANGLE_JOINT
        self.angle_source = src

        # ---- 1. safe state / standby --------------------------------------------------------
        if self.mode == ANKLE_MODE_SAFE or (self.mode == ANKLE_MODE_STANDBY and self.started):
            alpha = clamp((now_s - self.t_safe_s) / self.ramp_s, 0.0, 1.0)
            # Unknown load (lost or NaN) counts as loaded: the stiffer passive foot is the
            # safe guess when the wearer might be standing on it.
            loaded = gait.stance or not (inp.load_N <= self.stance_load_N) or not inp.load_valid
            # between the passive foot and the unloaded behaviour the gains move over
            # safety.ramp_s, so lifting or loading the foot never steps the torque (k x angle can
            # be tens of N*m)
            if loaded:
                self.loaded_share = min(1.0, self.loaded_share + dt / self.ramp_s)
            else:
                self.loaded_share = max(0.0, self.loaded_share - dt / self.ramp_s)
            if self.mode == ANKLE_MODE_SAFE:
                # unloaded: a gentle hold near neutral for toe clearance
                k = self.hold_k + (self.passive_k - self.hold_k) * self.loaded_share
                b = self.hold_b + (self.passive_b - self.hold_b) * self.loaded_share
            else:
                # standby: free when unloaded (donning, sitting), a passive foot when loaded
                k = self.passive_k * self.loaded_share
                b = self.passive_b * self.loaded_share
            if self.faults & ANKLE_FAULT_ENCODER:
                k = 0.0
                b = self.passive_b
            cmd.torque_ff_Nm = (1.0 - alpha) * self.torque_at_safe_Nm
            cmd.pushoff_Nm = 0.0
            cmd.p_des_rad = 0.0
            cmd.v_des_rad_s = 0.0
            if src == ANGLE_MOTOR:
                # the spring-damper runs on the driver, on its own encoder, even if this host stops
                cmd.kp_Nm_rad = alpha * k
            else:
                # the driver's encoder is not to be trusted (or not heard): no spring on it.  With
                # the joint encoder the spring is computed here, every tick; without, none.
                cmd.kp_Nm_rad = 0.0
                if src == ANGLE_JOINT:
                    cmd.torque_ff_Nm += alpha * k * inp.ankle_angle_rad
            cmd.kd_Nms_rad = alpha * b
        elif self.mode == ANKLE_MODE_STANDBY:
            # before arming: nothing at all (the driver is not yet active)
            cmd.torque_ff_Nm = 0.0
            cmd.pushoff_Nm = 0.0
            cmd.p_des_rad = 0.0
            cmd.v_des_rad_s = 0.0
            cmd.kp_Nm_rad = 0.0
            cmd.kd_Nms_rad = 0.0

        # ---- 2. push-off share: WALK only, supply-scaled, back only in swing -----------------
        target = self.monitor.supply_scale if self.mode == ANKLE_MODE_WALK else 0.0
        if target < self.assist:
            self.assist = max(target, self.assist - dt / self.ramp_s)
        elif target > self.assist and not gait.stance:
            self.assist = min(target, self.assist + dt / self.ramp_s)
        if self.mode != ANKLE_MODE_SAFE and self.mode != ANKLE_MODE_STANDBY:
            cmd.torque_ff_Nm -= (1.0 - self.assist) * cmd.pushoff_Nm
            cmd.pushoff_Nm *= self.assist

        # ---- 3. limits (every mode) ---------------------------------------------------------
        limit = self.max_torque_Nm * self.thermal.derate
        self.torque_limit_Nm = limit
        if self.started and src == ANGLE_MOTOR:
            # soft end stops: a virtual spring (and a damper while moving further in)
            if inp.motor_angle_rad > self.soft_dorsi_rad:
                cmd.torque_ff_Nm += (self.soft_k * (inp.motor_angle_rad - self.soft_dorsi_rad)
                                     + (self.soft_b * inp.motor_vel_rad_s if inp.motor_vel_rad_s > 0.0 else 0.0))
            elif inp.motor_angle_rad < self.soft_plantar_rad:
                cmd.torque_ff_Nm += (self.soft_k * (inp.motor_angle_rad - self.soft_plantar_rad)
                                     + (self.soft_b * inp.motor_vel_rad_s if inp.motor_vel_rad_s < 0.0 else 0.0))
        elif self.started and src == ANGLE_JOINT:
            # the same stops on the joint encoder: the spring only (it gives no velocity)
            if inp.ankle_angle_rad > self.soft_dorsi_rad:
                cmd.torque_ff_Nm += self.soft_k * (inp.ankle_angle_rad - self.soft_dorsi_rad)
            elif inp.ankle_angle_rad < self.soft_plantar_rad:
                cmd.torque_ff_Nm += self.soft_k * (inp.ankle_angle_rad - self.soft_plantar_rad)
        cmd.torque_ff_Nm = clamp(cmd.torque_ff_Nm, -limit, limit)
        step_max = self.max_slew_Nm_s * dt
        cmd.torque_ff_Nm = clamp(cmd.torque_ff_Nm, self.last_torque_Nm - step_max,
                                 self.last_torque_Nm + step_max)
        cmd.kp_Nm_rad = clamp(cmd.kp_Nm_rad, 0.0, self.kp_max)
        cmd.kd_Nms_rad = clamp(cmd.kd_Nms_rad, 0.0, self.kd_max)
        cmd.v_des_rad_s = 0.0
        if src == ANGLE_MOTOR and not self.host_impedance:
            # The driver runs its spring on the angle of the moment, which moves on from the one
            # this command was computed with until the next command lands: keep that much of the
            # limit free (found by bench.campaign: 1 N*m over a derated limit in the safe state).
            limit = max(0.0, limit - cmd.kp_Nm_rad * fabs(inp.motor_vel_rad_s) * _DRIVER_LAG_S)
        if src == ANGLE_MOTOR:
            # The spring-damper first (the driver's, or the host's for a torque-only drive): scale it into the limit (an absurd
            # velocity must not let the damper exceed it) ...
            if cmd.kp_Nm_rad > 0.0:
                cmd.p_des_rad = clamp(cmd.p_des_rad, inp.motor_angle_rad - limit / cmd.kp_Nm_rad,
                                      inp.motor_angle_rad + limit / cmd.kp_Nm_rad)
            impedance = (cmd.kp_Nm_rad * (inp.motor_angle_rad - cmd.p_des_rad)
                         + cmd.kd_Nms_rad * inp.motor_vel_rad_s)
            if fabs(impedance) > limit:
                scale = limit / fabs(impedance)
                cmd.kd_Nms_rad *= scale
                cmd.p_des_rad = inp.motor_angle_rad - (inp.motor_angle_rad - cmd.p_des_rad) * scale
                impedance *= scale
            # ... then the feed-forward gets what is left: the torque limit takes precedence
            # over the slew limit.
            cmd.torque_ff_Nm = clamp(cmd.torque_ff_Nm, -limit - impedance, limit - impedance)
            cmd.torque_expected_Nm = cmd.torque_ff_Nm + impedance
        else:
            # No trustworthy motor angle: no spring on the driver at all, and a damper no larger
            # than the limit allows at the fastest velocity the driver can report (its reading
            # may be the faulty one); the feed-forward gets what that leaves.
            cmd.kp_Nm_rad = 0.0
            cmd.p_des_rad = 0.0
            cmd.kd_Nms_rad = min(cmd.kd_Nms_rad, 0.5 * limit / self.max_speed_rad_s)
            reserve = cmd.kd_Nms_rad * self.max_speed_rad_s
            cmd.torque_ff_Nm = clamp(cmd.torque_ff_Nm, -limit + reserve, limit - reserve)
            if isfinite(inp.motor_vel_rad_s):
                cmd.torque_expected_Nm = cmd.torque_ff_Nm + cmd.kd_Nms_rad * clamp(
                    inp.motor_vel_rad_s, -self.max_speed_rad_s, self.max_speed_rad_s)
            else:
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
        if not isfinite(cmd.pushoff_Nm):
            cmd.pushoff_Nm = 0.0
        if not isfinite(cmd.torque_expected_Nm):
            cmd.torque_expected_Nm = cmd.torque_ff_Nm
        self.last_torque_Nm = cmd.torque_ff_Nm
        self.last_now_s = now_s
        if self.host_impedance:
            # A torque-only drive: the whole torque goes as feed-forward, the spring-damper computed
            # here on this tick's angle (it holds for one period, so no driver-lag reserve).  Off
            # the motor encoder there is no damper at all: its velocity would be the drive's own
            # reading, the one not trusted or not heard (the joint encoder's spring is in the
            # feed-forward already).  The drive's watchdog stops torque if this host stops.
            if src != ANGLE_MOTOR:
                cmd.torque_expected_Nm = cmd.torque_ff_Nm
            cmd.torque_ff_Nm = cmd.torque_expected_Nm
            cmd.p_des_rad = 0.0
            cmd.v_des_rad_s = 0.0
            cmd.kp_Nm_rad = 0.0
            cmd.kd_Nms_rad = 0.0

    # ---- outside the tick ----------------------------------------------------------------------

    def clear_faults(self):
        """Clear the latch if it is safe; returns "" on success, else the reason nothing changed.

        Safe means: the foot is unloaded (a valid load reading below the heel-strike
        level) and no fault condition is present now.  Never under load.
        """
        if self.faults == 0:
            return ""
        if not self.unloaded():
            return "refused: the foot is loaded or the load is unknown; clear with the foot off the ground"
        if self.present:
            from controller.kernels.faults import fault_names
            return "refused: still present: " + ", ".join(fault_names(self.present))
        self.faults = 0
        self._set_mode(self.last_now_s)
        return ""

    def unloaded(self):
        """Whether the foot is known to be off the ground: a fresh load reading below the
        heel-strike level (a lost or NaN reading is not known to be unloaded)."""
        return bool(self.monitor.load_fresh and self.last_load_N < self.stance_load_N)

    def latch(self, unsigned int bits, double now_s):
        """Latch fault ``bits`` from outside the tick (e.g. a corrupt parameter file at boot)."""
        self.faults |= bits
        self._set_mode(now_s)

    def select_mode(self, int mode):
        """Choose walk (powered push-off), passive (a passive foot that tracks the gait) or
        standby (free while unloaded, a passive foot while loaded; no powered action).
        Faults still take precedence.  The caller checks when a choice is allowed
        (:meth:`controller.kernels._tick.Tick.select_mode`)."""
        if mode not in (ANKLE_MODE_WALK, ANKLE_MODE_PASSIVE, ANKLE_MODE_STANDBY):
            raise ValueError(f"mode {mode}: choose walk ({ANKLE_MODE_WALK}), passive "
                             f"({ANKLE_MODE_PASSIVE}) or standby ({ANKLE_MODE_STANDBY})")
        self.chosen_mode = mode
        self._set_mode(self.last_now_s)

    def apply(self, dict command, dict inputs, dict gait, double now_s):
        """One safety step (check, then step) on plain dicts (tools and tests).

        The dicts need every field of Command, Inputs and GaitState; returns
        the bounded command as a dict.
        """
        cdef Command c = command
        cdef Inputs i = inputs
        cdef GaitState g = gait
        require_configured(self.configured, "Safety")
        with nogil:
            self.check(&i, now_s)
            self.step(&c, &i, &g, now_s)
        return c

    def start(self, double now_s):
        """Begin supervising at ``now_s`` (tools and tests; the tick calls ``arm``)."""
        require_configured(self.configured, "Safety")
        self.arm(now_s)
