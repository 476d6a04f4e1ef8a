# cython: language_level=3
"""Push-off controller: stance impedance, speed-adaptive powered push-off, swing clearance.

Stance, as a fraction ``s`` of the expected stance (phase / last stance share):

- a spring-damper about ``stance.equilibrium_rad``, soft on the plantarflexed
  side (``stance.plantarflexion_stiffness``: controlled plantarflexion after heel
  strike, the foot lowered rather than slapped) and stiff on the dorsiflexed
  side (``stance.stiffness``: dorsiflexion stiffness as the body rolls over);
- a raised-cosine push-off torque that rises for ``pushoff.rise_s`` seconds to
  its peak at ``pushoff.peak_stance`` and falls to zero at ``pushoff.end_stance``;
  from its start the spring may only push, never brake the push-off.  The rise
  is a time, not a share of stance: a constant rise time (about 0.13 s) puts
  the peak power where it belongs at every speed, as stance shortens.

The push-off peak scales with body mass and walking speed, as the BiOM's does:
speed comes from the stride time (``speed.*``: stride time ~ speed^-exponent,
adult GAITRite normals by default), the peak is ``pushoff.torque_Nm_kg`` at
1.25 m/s plus ``pushoff.torque_slope`` per m/s.  A per-speed learned correction
(7 bins, 0.5..2.0 m/s) trims it stride by stride so that the net ankle work of
stance, measured from the motor's torque and angle, meets the work target
(``pushoff.work_J_kg`` at 1.25 m/s plus ``pushoff.work_slope`` per m/s); each
correction is bounded to ``1 +- pushoff.adapt_limit`` and learns only from
clean strides (the whole push-off given as planned and let through in full, no standing).  No push-off is
planned while the phase comes from time or IMU alone, or with fit confidence
below ``pushoff.min_confidence``.

Swing: a spring-damper holds the foot dorsiflexed at ``swing.target_rad`` for
toe clearance, and returns it to the stance equilibrium from
``swing.neutral_phase`` on, before heel strike.  Loaded but not walking
(standing, or no phase yet): the stance spring alone, a passive foot.

The output is a torque command with its powered share in ``pushoff_Nm``; the
safety stage scales that share and bounds everything before a driver sees it.
"""
from libc.math cimport cos, M_PI, pow, isfinite, NAN
from controller.kernels._numeric cimport clamp
from controller.kernels._types cimport Inputs, GaitState, Command
from controller.kernels._tables cimport GAIT_SOURCE_SHANK, tables_as_compiled
from controller.kernels._params cimport *

cdef double SPEED_BIN0_M_S = 0.5
cdef double SPEED_BIN_M_S = 0.25
cdef double REF_SPEED_M_S = 1.25
cdef double MIN_SPEED_M_S = 0.3
cdef double MAX_SPEED_M_S = 2.5
cdef double SPEED_SMOOTHING = 0.5        # weight of each new stride in the speed estimate
cdef double MIN_WORK_SCALE_J_KG = 0.05   # floor of the work used to normalise the learning step
cdef double NEUTRAL_BLEND = 0.1          # share of the stride over which swing returns to neutral
cdef double MIN_START_STANCE = 0.5        # push-off never begins before mid-stance
cdef double TORQUE_HEADROOM = 0.95       # push-off peak kept under this share of the limit
# Where push-off starts before the first stance time is known (then pushoff.rise_s sets it
# every stride): state of the planner, not tuning; no push-off is planned before a stride anyway.
cdef double INITIAL_START_STANCE = 0.7


def compiled_tables():
    """The generated constants (``_tables.pxd``: fault and warning bits, modes, phase sources,
    telemetry indices) as this module was compiled with them, name -> value."""
    return tables_as_compiled()


# A module compiled from other tables would report faults and columns under the wrong names.
from controller.kernels.codegen import check_compiled as _check_compiled
_check_compiled(compiled_tables(), __name__)


cdef class PushoffController:
    """Per-tick controller law.  ``step`` is called every tick: no allocation, no blocking."""

    def __cinit__(self):
        # No parameter value of its own: every one comes from configure() (the registry).  NaN
        # until then, and the Python entry points refuse to run an unconfigured controller.
        self.configured = False
        self.mass_kg = NAN
        self.k_cp_Nm_rad = self.k_cd_Nm_rad = self.b_stance_Nms_rad = self.stance_eq_rad = NAN
        self.t_at_1_m_s = self.speed_exponent = NAN
        self.torque_ref_Nm_kg = self.torque_slope_Nm_kg_per_m_s = NAN
        self.rise_s = self.peak_s = self.end_s = NAN
        self.work_ref_J_kg = self.work_slope_J_kg_per_m_s = NAN
        self.adapt_rate = self.adapt_limit = self.min_confidence = self.max_torque_Nm = NAN
        self.swing_target_rad = self.swing_neutral_phase = self.swing_k_Nm_rad = self.swing_b_Nms_rad = NAN
        self.start_s = INITIAL_START_STANCE
        self.reset()

    def configure(self, params):
        """Take gains from a validated :class:`controller.params.registry.ParamSet` (not in the tick)."""
        cdef double p[N_PARAMS]
        fill_vector(params, p)
        with nogil:
            self.configure_from(p)

    cdef void configure_from(self, const double* p) noexcept nogil:
        """Take gains from a parameter vector (registry order, validated by its publisher);
        the learned corrections and the stride in progress stay.  No allocation, no GIL."""
        cdef double m = p[P_WEARER_MASS_KG]
        self.mass_kg = m
        self.k_cp_Nm_rad = p[P_STANCE_PLANTARFLEXION_STIFFNESS_NM_RAD_KG] * m
        self.k_cd_Nm_rad = p[P_STANCE_STIFFNESS_NM_RAD_KG] * m
        self.b_stance_Nms_rad = p[P_STANCE_DAMPING_NMS_RAD_KG] * m
        self.stance_eq_rad = p[P_STANCE_EQUILIBRIUM_RAD]
        self.t_at_1_m_s = p[P_SPEED_STRIDE_TIME_AT_1_M_S_S]
        self.speed_exponent = p[P_SPEED_EXPONENT]
        self.torque_ref_Nm_kg = p[P_PUSHOFF_TORQUE_NM_KG]
        self.torque_slope_Nm_kg_per_m_s = p[P_PUSHOFF_TORQUE_SLOPE_NM_S_KG_M]
        self.rise_s = p[P_PUSHOFF_RISE_S]
        self.peak_s = p[P_PUSHOFF_PEAK_STANCE]
        self.end_s = p[P_PUSHOFF_END_STANCE]
        self.work_ref_J_kg = p[P_PUSHOFF_WORK_J_KG]
        self.work_slope_J_kg_per_m_s = p[P_PUSHOFF_WORK_SLOPE_J_S_KG_M]
        self.adapt_rate = p[P_PUSHOFF_ADAPT_RATE]
        self.adapt_limit = p[P_PUSHOFF_ADAPT_LIMIT]
        self.min_confidence = p[P_PUSHOFF_MIN_CONFIDENCE]
        self.max_torque_Nm = p[P_SAFETY_MAX_TORQUE_NM]
        self.swing_target_rad = p[P_SWING_TARGET_RAD]
        self.swing_neutral_phase = p[P_SWING_NEUTRAL_PHASE]
        self.swing_k_Nm_rad = p[P_SWING_STIFFNESS_NM_RAD]
        self.swing_b_Nms_rad = p[P_SWING_DAMPING_NMS_RAD]
        self.configured = True

    def settings(self):
        """The values configure() set, by field name (tools and tests: what the law runs with)."""
        return {"mass_kg": self.mass_kg, "k_cp_Nm_rad": self.k_cp_Nm_rad, "k_cd_Nm_rad": self.k_cd_Nm_rad,
                "b_stance_Nms_rad": self.b_stance_Nms_rad, "stance_eq_rad": self.stance_eq_rad,
                "t_at_1_m_s": self.t_at_1_m_s, "speed_exponent": self.speed_exponent,
                "torque_ref_Nm_kg": self.torque_ref_Nm_kg,
                "torque_slope_Nm_kg_per_m_s": self.torque_slope_Nm_kg_per_m_s, "rise_s": self.rise_s,
                "peak_s": self.peak_s, "end_s": self.end_s, "work_ref_J_kg": self.work_ref_J_kg,
                "work_slope_J_kg_per_m_s": self.work_slope_J_kg_per_m_s, "adapt_rate": self.adapt_rate,
                "adapt_limit": self.adapt_limit, "min_confidence": self.min_confidence,
                "max_torque_Nm": self.max_torque_Nm, "swing_target_rad": self.swing_target_rad,
                "swing_neutral_phase": self.swing_neutral_phase, "swing_k_Nm_rad": self.swing_k_Nm_rad,
                "swing_b_Nms_rad": self.swing_b_Nms_rad}

    def reset(self):
        """Forget the learned corrections and the stride in progress."""
        cdef int i
        for i in range(N_SPEED_BINS):
            self.correction[i] = 1.0
        self.speed_m_s = 0.0
        self.pushoff_peak_Nm = 0.0
        self.stance_work_J = 0.0
        self.last_work_J_kg = NAN
        self.work_target_J_kg = NAN
        self.strides_adapted = 0
        self.last_angle_rad = NAN
        self.stride_clean = False
        self.in_stride = False

    cdef double _bin_position(self, double v) noexcept nogil:
        return clamp((v - SPEED_BIN0_M_S) / SPEED_BIN_M_S, 0.0, N_SPEED_BINS - 1.0)

    cdef double _correction_at(self, double v) noexcept nogil:
        cdef double x = self._bin_position(v)
        cdef int i = <int>x
        if i >= N_SPEED_BINS - 1:
            return self.correction[N_SPEED_BINS - 1]
        x -= i
        return self.correction[i] * (1.0 - x) + self.correction[i + 1] * x

    cdef double pushoff_torque_Nm(self, double s) noexcept nogil:
        """Push-off torque at stance fraction ``s`` for the stride in progress."""
        cdef double x
        if s <= self.start_s or s >= self.end_s:
            return 0.0
        if s < self.peak_s:
            x = (s - self.start_s) / (self.peak_s - self.start_s)
        else:
            x = (self.end_s - s) / (self.end_s - self.peak_s)
        return self.pushoff_peak_Nm * 0.5 * (1.0 - cos(M_PI * x))

    cdef void _new_stride(self, const GaitState* gait) noexcept nogil:
        """At a heel strike: learn from the stride that ended, plan the push-off of the next."""
        cdef double v, e, step, scale, x, w
        cdef int i
        # learn: the stride that just ended, if it was clean and had a target
        if self.in_stride and self.stride_clean and isfinite(self.work_target_J_kg):
            self.last_work_J_kg = self.stance_work_J / self.mass_kg
            e = self.work_target_J_kg - self.last_work_J_kg
            scale = self.work_target_J_kg if self.work_target_J_kg > MIN_WORK_SCALE_J_KG else MIN_WORK_SCALE_J_KG
            step = clamp(self.adapt_rate * e / scale, -0.1, 0.1)
            x = self._bin_position(self.speed_m_s)
            i = <int>x
            x -= i
            w = 1.0 - x
            self.correction[i] = clamp(self.correction[i] * (1.0 + w * step),
                                       1.0 - self.adapt_limit, 1.0 + self.adapt_limit)
            if i + 1 < N_SPEED_BINS:
                self.correction[i + 1] = clamp(self.correction[i + 1] * (1.0 + x * step),
                                               1.0 - self.adapt_limit, 1.0 + self.adapt_limit)
            self.strides_adapted += 1
        elif self.in_stride:
            self.last_work_J_kg = self.stance_work_J / self.mass_kg
        # plan: speed from the last stride time
        self.stance_work_J = 0.0
        self.stride_clean = True
        self.in_stride = True
        if gait.walking and gait.stride_time_s > 0.0:
            v = pow(self.t_at_1_m_s / gait.stride_time_s, 1.0 / self.speed_exponent)
            v = clamp(v, MIN_SPEED_M_S, MAX_SPEED_M_S)
            self.speed_m_s = v if self.speed_m_s <= 0.0 else self.speed_m_s + SPEED_SMOOTHING * (v - self.speed_m_s)
            if gait.stance_time_s > 0.0:
                self.start_s = clamp(self.peak_s - self.rise_s / gait.stance_time_s,
                                     MIN_START_STANCE, self.peak_s - 0.05)
            self.work_target_J_kg = self.work_ref_J_kg + self.work_slope_J_kg_per_m_s * (self.speed_m_s - REF_SPEED_M_S)
            self.pushoff_peak_Nm = clamp(
                self.mass_kg * (self.torque_ref_Nm_kg + self.torque_slope_Nm_kg_per_m_s * (self.speed_m_s - REF_SPEED_M_S))
                * self._correction_at(self.speed_m_s),
                0.0, TORQUE_HEADROOM * self.max_torque_Nm)
        else:
            self.pushoff_peak_Nm = 0.0
            self.work_target_J_kg = NAN

    cdef void step(self, const GaitState* gait, const Inputs* inp, double assist, Command* out) noexcept nogil:
        cdef double angle = inp.motor_angle_rad
        cdef double vel = inp.motor_vel_rad_s
        cdef double torque, pushoff = 0.0, s, stance_share, k, target, x
        cdef bint powered
        if gait.heel_strike:
            self._new_stride(gait)
        # net ankle work of stance, from the driver's own torque and angle
        if gait.stance and isfinite(self.last_angle_rad) and isfinite(angle) and isfinite(inp.motor_torque_Nm):
            self.stance_work_J -= inp.motor_torque_Nm * (angle - self.last_angle_rad)
        self.last_angle_rad = angle
        powered = (gait.walking and not gait.standing and gait.source == GAIT_SOURCE_SHANK
                   and gait.confidence >= self.min_confidence)
        if gait.standing or not gait.walking:
            self.stride_clean = False
        if gait.stance:
            k = self.k_cp_Nm_rad if angle < self.stance_eq_rad else self.k_cd_Nm_rad
            torque = k * (angle - self.stance_eq_rad) + self.b_stance_Nms_rad * vel
            if gait.walking and gait.phase >= 0.0 and gait.stride_time_s > 0.0:
                stance_share = gait.stance_time_s / gait.stride_time_s
                s = gait.phase / stance_share if stance_share > 0.2 else gait.phase / 0.6
                if s >= self.start_s:
                    # From push-off on the spring may only push: a dorsiflexor pull while the
                    # ankle plantarflexes would brake the push-off.
                    if torque < 0.0:
                        torque = 0.0
                    if powered:
                        pushoff = self.pushoff_torque_Nm(s)
                    # learn only from strides whose whole push-off went out as planned
                    if not powered or assist < 1.0:
                        self.stride_clean = False
        else:
            target = self.swing_target_rad
            if gait.walking and gait.phase >= self.swing_neutral_phase:
                x = clamp((gait.phase - self.swing_neutral_phase) / NEUTRAL_BLEND, 0.0, 1.0)
                target += (self.stance_eq_rad - self.swing_target_rad) * x
            torque = self.swing_k_Nm_rad * (angle - target) + self.swing_b_Nms_rad * vel
        out.torque_ff_Nm = torque + pushoff
        out.pushoff_Nm = pushoff
        out.p_des_rad = 0.0
        out.v_des_rad_s = 0.0
        out.kp_Nm_rad = 0.0
        out.kd_Nms_rad = 0.0
        out.torque_expected_Nm = torque + pushoff

    # ---- tools and tests ----------------------------------------------------------------------

    def pushoff_profile(self, double s):
        """Push-off torque [N*m] at stance fraction ``s`` for the planned stride (tools and tests)."""
        require_configured(self.configured, "PushoffController")
        return self.pushoff_torque_Nm(s)

    def plan_stride(self, dict gait):
        """Run the heel-strike planning on a plain-dict gait state (tools and tests)."""
        cdef GaitState g = gait
        require_configured(self.configured, "PushoffController")
        self._new_stride(&g)

    @property
    def corrections(self):
        """The learned push-off scale per speed bin, as ((speed m/s, scale), ...)."""
        return tuple((SPEED_BIN0_M_S + i * SPEED_BIN_M_S, self.correction[i]) for i in range(N_SPEED_BINS))

    def command_for(self, dict gait, dict inputs, double assist=1.0):
        """The controller's command for plain-dict gait state and inputs (tools and tests)."""
        cdef GaitState g = gait
        cdef Inputs i = inputs
        cdef Command c
        require_configured(self.configured, "PushoffController")
        with nogil:
            self.step(&g, &i, assist, &c)
        return c
