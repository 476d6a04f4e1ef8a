# cython: language_level=3
"""Gait-event and phase estimator: load events fused with the shank's motion.

Events.  Heel strike and toe-off come from the pylon load with hysteresis
(loaded above ``heel_strike_load_bw`` of body weight, unloaded below
``toe_off_load_bw``, each held ``event_hold_s``), dated at the first sample of
the condition and reported when the hold completes.  The load-cell offset is
re-learned in every swing (the foot carries nothing then), so offset drift
does not move the thresholds.  A heel strike counts only after a real swing:
the shank must have swung forward faster than ``swing_gyro_rad_s`` since the
foot left the ground, so weight shifts while standing make no strides.

Phase.  Phase is the time since heel strike over the stride time, but the
stride time is not simply the last stride's: :class:`PhaseMatcher` fits the
shank gyro since heel strike to a learned template of one stride, stretched
over a bank of candidate stride times, and the best fit sets the divisor.
When the wearer speeds up or slows down the shank's motion changes shape in
time well before the next heel strike, so the phase follows within the
stride instead of one stride late.  The phase never runs backwards within a
stride and holds at 0.999 until the next heel strike.  ``confidence`` is the
fit's R^2 (0..1).

Standing.  Loaded and with the shank still (low-passed |gyro| below
``quiet_gyro_rad_s``) for ``standing_after_s``: the wearer stands; phase
is -1 and walking 0 until the next real heel strike, which resumes walking at
once with the last stride time as the prior.  The gyro bias is learned while
standing and from the mean over each whole stride.

Fallbacks (fault catalogue).  IMU lost (stale or non-finite): events from the
load alone, phase from time (``source`` TIME), standing from an overlong
stance.  Load lost: heel strike from the gyro (the forward swing's zero
crossing plus the learned delay to the load's heel strike), toe-off when the
phase reaches the learned stance share (``source`` IMU).  The safety stage
latches both as faults; this only keeps the estimate alive.

Only ``t``, ``shank_gyro``, ``load``, ``ankle_angle`` and their arrival times
are read, sample by sample, so ``ankle replay`` reproduces the online
estimates at any sample rate.
"""
from libc.math cimport isfinite, fabs, fmax, fmin, sqrt, log, NAN
from controller.kernels._numeric cimport clamp01
from controller.kernels._params cimport *
from posix.time cimport clock_gettime, timespec, CLOCK_MONOTONIC
from controller.kernels._types cimport Inputs, GaitState
from controller.kernels._tables cimport (GAIT_SOURCE_NONE, GAIT_SOURCE_SHANK, GAIT_SOURCE_TIME, GAIT_SOURCE_IMU,
    tables_as_compiled)
from controller.kernels._phase_match cimport PhaseMatcher

cdef double STANDARD_GRAVITY = 9.80665     # m/s^2
cdef double QUIET_TAU_S = 0.05             # low-pass of |gyro| for the stillness test
cdef double OFFSET_TAU_S = 0.2             # load-offset learning in swing
cdef double OFFSET_MAX_BW = 0.1            # larger offsets are not learned (a sensor fault)
cdef double BIAS_TAU_S = 2.0               # gyro-bias learning while standing
cdef double SWING_SETTLE_S = 0.1           # after toe-off, before the load offset is sampled
cdef double MAX_GAP_S = 0.1                # a longer gap between samples restarts the filters
cdef double MOTION_MIN_RAD_S = 0.3         # expected shank speeds below this say nothing of progress
cdef double MOTION_SLOW = 0.5              # a shank slower than this share of the expected motion slows the phase
cdef double MOTION_STANCE_MARGIN = 0.05    # stop gating this far (in stride) before the usual toe-off
cdef double MOTION_CATCH_UP = 0.1          # time constant of the catch-up, in strides
# Heel strike at the end of a real swing: once the shank has swung forward and turned back, the
# foot is about to land, so a load just clear of the swing's own noise is taken as contact (a
# slow walker's load rises too slowly for the fixed threshold: 30 ms late at 1.8 s strides).
cdef double ARMED_HS_BW = 0.025            # ... but never below this share of body weight
cdef double ARMED_HS_SIGMAS = 3.0          # ... nor below this many RMS of the swing's load noise
cdef double ARMED_LEARN_S = 0.05           # ... and only after this swing's offset and noise were learned this long
cdef double LEARN_GATE_BW = 0.03           # a swing sample this far from the offset is not learned ...
cdef double LEARN_GATE_SIGMAS = 4.0        # ... unless within this many RMS of the swing's noise
# Toe-off with a stale load offset (an insole or load cell that crept while it stood loaded):
# the shank swings forward, the load is low and has stopped falling: the foot is off, and what
# the cell reads is its new offset.
cdef double FAST_TAU_S = 0.005
cdef double SLOW_TAU_S = 0.03
cdef double FLAT_BW = 0.02                 # |fast - slow| low-pass below this share of body weight
cdef double FLAT_SIGMAS = 5.0              # ... and this many RMS of the swing's noise: flat
# Toe-off when the load reaches zero, not when it crosses the threshold: the toe unloads slowly
# (10-25 ms from the threshold to zero at slow walking), so the confirmed crossing is extrapolated
# along the load's slope (the two low-passes' difference), at most this far.
cdef double TO_WAIT_MAX_S = 0.03
# Time-based phase (the IMU lost): the divisor is the recent strides' time, smoothed (a single
# stride's 2-3 % jitter is not the next stride's), unless the last stride changed by more than
# TIME_STRIDE_STEP_LN (a real change of speed: follow it at once); after toe-off the stance just
# ended says how long this stride will be (its learned share of the stride), and is averaged in.
cdef double TIME_STRIDE_RATE = 0.5
cdef double TIME_STRIDE_STEP_LN = 0.15
cdef double TIME_STANCE_WEIGHT = 0.5


def compiled_tables():
    """The generated constants (``_tables.pxd``: fault and warning bits, modes, phase sources,
    telemetry indices) as this module was compiled with them, name -> value."""
    return tables_as_compiled()


# A module compiled from other tables would report faults and columns under the wrong names.
from controller.kernels.codegen import check_compiled as _check_compiled
_check_compiled(compiled_tables(), __name__)


cdef class Estimator:
    """Per-tick gait estimator.  ``step`` is called every tick: no allocation, no blocking."""

    def __cinit__(self):
        # No parameter value of its own: every one comes from configure() (the registry).  NaN
        # until then, and the Python entry points refuse to run an unconfigured estimator.
        self.configured = False
        self.weight_N = self.hs_load_N = self.to_load_N = self.hold_s = NAN
        self.min_stride_s = self.max_stride_s = NAN
        self.quiet_gyro_rad_s = self.standing_after_s = self.swing_gyro_rad_s = NAN
        self.use_shank = True
        self.matcher = PhaseMatcher()
        self.reset()

    def configure(self, params, bint use_shank=True, bint keep_state=False):
        """Take settings from a validated :class:`controller.params.registry.ParamSet` (not in the tick).

        Starts afresh: the learned template and stride time are forgotten, unless
        ``keep_state`` (a live retune; the template's own settings are not live).
        ``use_shank=False`` ignores the IMU altogether: the plain time-based
        estimator (load events, phase from the last stride time), which is also
        what runs when the IMU is lost; benchmarks compare the two.
        """
        cdef double p[N_PARAMS]
        fill_vector(params, p)
        self.use_shank = use_shank
        with nogil:
            self.configure_from(p, keep_state)

    cdef void configure_from(self, const double* p, bint keep_state) noexcept nogil:
        """Take settings from a parameter vector (registry order, validated by its publisher).
        ``keep_state``: a live retune, what was learned stays (the template's own settings are
        not live: they change only when starting afresh).  No allocation, no GIL."""
        self.weight_N = p[P_WEARER_MASS_KG] * STANDARD_GRAVITY
        self.hs_load_N = p[P_ESTIMATOR_HEEL_STRIKE_LOAD_BW] * self.weight_N
        self.to_load_N = p[P_ESTIMATOR_TOE_OFF_LOAD_BW] * self.weight_N
        self.hold_s = p[P_ESTIMATOR_EVENT_HOLD_S]
        self.min_stride_s = p[P_ESTIMATOR_MIN_STRIDE_S]
        self.max_stride_s = p[P_ESTIMATOR_MAX_STRIDE_S]
        self.quiet_gyro_rad_s = p[P_ESTIMATOR_QUIET_GYRO_RAD_S]
        self.standing_after_s = p[P_ESTIMATOR_STANDING_AFTER_S]
        self.swing_gyro_rad_s = p[P_ESTIMATOR_SWING_GYRO_RAD_S]
        if keep_state and self.configured:
            return
        self.matcher.configure_rates(p[P_ESTIMATOR_TEMPLATE_RATE], p[P_ESTIMATOR_PRIOR_WEIGHT])
        self.reset()
        self.configured = True

    def settings(self):
        """The values configure() set, by field name (tools and tests)."""
        return {"weight_N": self.weight_N, "hs_load_N": self.hs_load_N, "to_load_N": self.to_load_N,
                "hold_s": self.hold_s, "min_stride_s": self.min_stride_s, "max_stride_s": self.max_stride_s,
                "quiet_gyro_rad_s": self.quiet_gyro_rad_s, "standing_after_s": self.standing_after_s,
                "swing_gyro_rad_s": self.swing_gyro_rad_s, "template_rate": self.matcher.learn_rate,
                "prior_weight": self.matcher.prior_weight}

    cdef void reset(self) noexcept nogil:
        self.state.phase = -1.0
        self.state.heel_strike = 0
        self.state.toe_off = 0
        self.state.stance = 0
        self.state.walking = 0
        self.state.stride_time_s = 0.0
        self.state.stance_time_s = 0.0
        self.state.cadence_steps_min = 0.0
        self.state.t_heel_strike_s = -1.0
        self.state.t_toe_off_s = -1.0
        self.state.confidence = 0.0
        self.state.standing = 0
        self.state.source = GAIT_SOURCE_NONE
        self.state.stride_estimate_s = 0.0
        self.last_now_s = -1.0
        self.motion_phase = 0.0
        self.cond_since_s = -1.0
        self.prev_stride_s = 0.0
        self.time_stride_s = 0.0
        self.stance_fraction = 0.62
        self.gyro_bias_rad_s = 0.0
        self.load_offset_N = 0.0
        self.swing_noise_N2 = 0.0
        self.swing_learned_s = 0.0
        self.load_fast_N = NAN
        self.load_slow_N = NAN
        self.to_due_s = -1.0
        self.quiet_lp_rad_s = 0.0
        self.quiet_for_s = 0.0
        self.swing_peak_rad_s = 0.0
        self.gyro_sum = 0.0
        self.gyro_n = 0.0
        self.t_zero_cross_s = -1.0
        self.hs_after_cross_s = 0.03
        self.imu_hs_due_s = -1.0
        self.swing_armed = False
        self.stride_clean = False
        self.was_walking = False
        self.seen_unloaded = False
        self.stood_still = False
        self.contact_counted = False
        self.matcher.clear()

    cdef void step(self, const Inputs* inp, double now_s) noexcept nogil:
        cdef GaitState* g = &self.state
        cdef double dt, omega = 0.0, load, t_event, tau, stride_s, previous, expected, ratio
        cdef double noise_N, threshold, slope, level, wait
        cdef bint imu_ok, load_ok, condition, genuine
        g.heel_strike = 0
        g.toe_off = 0
        dt = now_s - self.last_now_s if self.last_now_s >= 0.0 else 0.0
        if dt < 0.0 or dt > MAX_GAP_S:
            dt = 0.0
        self.last_now_s = now_s
        # Which sensors to trust is the safety monitor's call (age, stuck-at, range, latched
        # faults); the finiteness test only keeps a NaN from entering the arithmetic.
        imu_ok = self.use_shank and inp.imu_valid and isfinite(inp.shank_gyro_rad_s)
        load_ok = inp.load_valid and isfinite(inp.load_N)

        # ---- shank motion ------------------------------------------------------------------
        if imu_ok:
            omega = inp.shank_gyro_rad_s - self.gyro_bias_rad_s
            self.quiet_lp_rad_s += (fabs(omega) - self.quiet_lp_rad_s) * clamp01(dt / QUIET_TAU_S)
            if omega > self.swing_peak_rad_s:
                self.swing_peak_rad_s = omega
            if omega > self.swing_gyro_rad_s:
                self.swing_armed = True
            elif self.swing_armed and omega < 0.0:
                # the forward swing has ended: heel strike follows by a learned delay
                self.swing_armed = False
                self.t_zero_cross_s = now_s
                if not load_ok:
                    self.imu_hs_due_s = now_s + self.hs_after_cross_s
            self.gyro_sum += inp.shank_gyro_rad_s
            self.gyro_n += 1.0
            if g.t_heel_strike_s >= 0.0 and not g.standing:
                self.matcher.add(now_s - g.t_heel_strike_s, inp.shank_gyro_rad_s)
            if g.standing and self.quiet_lp_rad_s < self.quiet_gyro_rad_s:
                # only a still shank shows the bias (a boot while loaded may be mid-step)
                self.gyro_bias_rad_s += omega * clamp01(dt / BIAS_TAU_S)
        else:
            self.stride_clean = False
            self.swing_armed = False
            self.quiet_for_s = 0.0

        # ---- events --------------------------------------------------------------------------
        if load_ok:
            self.imu_hs_due_s = -1.0
            if isfinite(self.load_fast_N) and dt > 0.0:
                self.load_fast_N += (inp.load_N - self.load_fast_N) * clamp01(dt / FAST_TAU_S)
                self.load_slow_N += (inp.load_N - self.load_slow_N) * clamp01(dt / SLOW_TAU_S)
            else:
                self.load_fast_N = self.load_slow_N = inp.load_N
            # The offset and the swing's noise are learned in mid-swing only: not once the shank
            # has turned back to land (the load may begin to rise before the heel strike is
            # confirmed), and not from a sample far outside the noise (a rising load, a knock).
            if (not g.stance and g.t_toe_off_s >= 0.0 and now_s - g.t_toe_off_s > SWING_SETTLE_S
                    and fabs(inp.load_N) < OFFSET_MAX_BW * self.weight_N
                    and not (imu_ok and not self.swing_armed and self.t_zero_cross_s > g.t_toe_off_s)
                    and fabs(inp.load_N - self.load_offset_N) < fmax(LEARN_GATE_BW * self.weight_N,
                                                                     LEARN_GATE_SIGMAS * sqrt(self.swing_noise_N2))):
                self.load_offset_N += (inp.load_N - self.load_offset_N) * clamp01(dt / OFFSET_TAU_S)
                self.swing_noise_N2 += ((inp.load_N - self.load_offset_N) ** 2 - self.swing_noise_N2) \
                    * clamp01(dt / OFFSET_TAU_S)
                self.swing_learned_s += dt
            load = inp.load_N - self.load_offset_N
            if load < self.to_load_N:
                self.seen_unloaded = True
            noise_N = sqrt(self.swing_noise_N2)
            if self.to_due_s >= 0.0 and (not g.stance or load > self.hs_load_N):
                self.to_due_s = -1.0            # loaded again (or already off): no toe-off pending
            if self.to_due_s >= 0.0:
                condition = False
                if now_s >= self.to_due_s - 1e-9:
                    self._toe_off(self.to_due_s)
                    self.to_due_s = -1.0
            elif g.stance:
                condition = load < self.to_load_N
                if (not condition and imu_ok and omega > self.swing_gyro_rad_s and load < self.hs_load_N
                        and fabs(self.load_fast_N - self.load_slow_N) < fmax(FLAT_BW * self.weight_N,
                                                                             FLAT_SIGMAS * noise_N)
                        and fabs(self.load_slow_N) < OFFSET_MAX_BW * self.weight_N):
                    # the foot is off with a stale offset: its reading now is the offset, and the
                    # foot left when the load stopped falling (about the slow low-pass' lag ago)
                    self.load_offset_N = self.load_slow_N
                    condition = True
                    if self.cond_since_s < 0.0:
                        self.cond_since_s = now_s - self.hold_s
            else:
                threshold = self.hs_load_N
                # Armed: after a real swing that has turned back (with the IMU), or after any
                # learned swing without it (then every contact after an unloading counts anyway).
                if self.swing_learned_s >= ARMED_LEARN_S and (not imu_ok or (
                        self.swing_peak_rad_s >= self.swing_gyro_rad_s and not self.swing_armed
                        and self.t_zero_cross_s > g.t_toe_off_s)):
                    threshold = fmin(self.hs_load_N, fmax(ARMED_HS_BW * self.weight_N, ARMED_HS_SIGMAS * noise_N))
                condition = load > threshold
            if not condition:
                self.cond_since_s = -1.0
            else:
                if self.cond_since_s < 0.0:
                    self.cond_since_s = now_s
                # 1 ns tolerance: sample times like k * 1e-3 are not exact in binary
                if now_s - self.cond_since_s >= self.hold_s - 1e-9:
                    t_event = self.cond_since_s
                    self.cond_since_s = -1.0
                    if g.stance and self.contact_counted:
                        slope = (self.load_slow_N - self.load_fast_N) / (SLOW_TAU_S - FAST_TAU_S)
                        # where the load is now: the fast low-pass less its lag on a ramp, or the
                        # sample itself if lower (a load that fell as a step is at 0 already)
                        level = fmin(load, self.load_fast_N - self.load_offset_N - slope * FAST_TAU_S)
                        wait = fmin(level / slope, TO_WAIT_MAX_S) if slope > 0.0 and level > 0.0 else 0.0
                        if wait > 0.5 * dt and wait > 1e-4:
                            self.to_due_s = now_s + wait
                        else:
                            self._toe_off(t_event)
                    elif g.stance:
                        g.stance = 0            # the end of a contact that was no step
                        g.standing = 0
                        g.t_toe_off_s = t_event     # the foot is off: its swing's offset is learned
                        self.swing_peak_rad_s = 0.0
                        self.swing_learned_s = 0.0
                    else:
                        g.stance = 1
                        # A real heel strike ends a swing (the first contact too: a foot put down
                        # without one is a weight shift), and only once the foot was seen off the
                        # ground: a boot (or a record) that starts with the foot loaded is someone
                        # standing, not a step.  Without the IMU no swing can be seen: every
                        # contact after an unloading counts.
                        genuine = self.seen_unloaded and (
                            not imu_ok or self.swing_peak_rad_s >= self.swing_gyro_rad_s)
                        if not self.seen_unloaded:
                            g.standing = 1
                        if genuine:
                            if imu_ok and self.t_zero_cross_s >= 0.0 and 0.0 <= t_event - self.t_zero_cross_s < 0.2:
                                self.hs_after_cross_s += 0.3 * (t_event - self.t_zero_cross_s - self.hs_after_cross_s)
                            self._heel_strike(t_event, imu_ok)
                        else:
                            self.contact_counted = False
        else:
            self.cond_since_s = -1.0
            self.to_due_s = -1.0
            if imu_ok and self.imu_hs_due_s >= 0.0 and now_s >= self.imu_hs_due_s:
                t_event = self.imu_hs_due_s
                self.imu_hs_due_s = -1.0
                g.stance = 1
                self._heel_strike(t_event, imu_ok)
            elif imu_ok and g.stance and g.walking and g.phase >= self.stance_fraction:
                self._toe_off(now_s)

        # ---- standing -----------------------------------------------------------------------
        if g.stance and not g.standing and g.t_heel_strike_s >= 0.0:
            if imu_ok:
                if self.quiet_lp_rad_s < self.quiet_gyro_rad_s:
                    self.quiet_for_s += dt
                else:
                    self.quiet_for_s = 0.0
                if self.quiet_for_s >= self.standing_after_s:
                    g.standing = 1
                    self.stood_still = True
            elif g.stance_time_s > 0.0 and now_s - g.t_heel_strike_s > 1.5 * g.stance_time_s + 0.1:
                g.standing = 1       # IMU lost: a stance far longer than the last one
            if g.standing:
                self.was_walking = self.was_walking or g.walking
                self.stride_clean = False
                g.walking = 0
        if not g.stance:
            self.quiet_for_s = 0.0

        # ---- phase ---------------------------------------------------------------------------
        if g.walking and now_s - g.t_heel_strike_s > self.max_stride_s:
            g.walking = 0
            self.was_walking = True
        if g.walking:
            tau = now_s - g.t_heel_strike_s
            if imu_ok and self.matcher.ready():
                stride_s = self.matcher.best_stride_s
                g.source = GAIT_SOURCE_SHANK if load_ok else GAIT_SOURCE_IMU
                g.confidence = clamp01(self.matcher.fit_r2)
            else:
                stride_s = self.time_stride_s if self.time_stride_s > 0.0 else g.stride_time_s
                if (not g.stance and g.t_toe_off_s > g.t_heel_strike_s and g.stance_time_s > 0.0
                        and self.stance_fraction > 0.0):
                    stride_s += TIME_STANCE_WEIGHT * (g.stance_time_s / self.stance_fraction - stride_s)
                g.source = GAIT_SOURCE_TIME
                g.confidence = clamp01(1.0 - 5.0 * fabs(g.stride_time_s - self.prev_stride_s) / self.prev_stride_s) \
                    if self.prev_stride_s > 0.0 else 0.5
            g.stride_estimate_s = stride_s
            previous = g.phase
            g.phase = tau / stride_s
            if g.source == GAIT_SOURCE_SHANK or g.source == GAIT_SOURCE_IMU:
                # The shank must keep up: where the shank moves clearly slower than the
                # template expects there (less than MOTION_SLOW of it), the phase slows
                # in proportion.  A wearer who stops (shank slowing to still) stops the
                # phase before push-off; a walking shank never trips it.
                # Only in stance, while the shank rolls forward over the foot (expected < 0).
                expected = self.matcher.expected_motion(self.motion_phase)
                ratio = 1.0
                if (g.stance and expected < -MOTION_MIN_RAD_S
                        and self.motion_phase < self.stance_fraction - MOTION_STANCE_MARGIN):
                    ratio = clamp01((inp.shank_gyro_rad_s - self.matcher.offset_rad_s) / expected / MOTION_SLOW)
                self.motion_phase += dt / stride_s * ratio
                if ratio >= 1.0 and self.motion_phase < g.phase:
                    # moving as expected: catch up with the time phase
                    self.motion_phase += (g.phase - self.motion_phase) * clamp01(dt / (MOTION_CATCH_UP * stride_s))
                if self.motion_phase < g.phase:
                    g.phase = self.motion_phase
            else:
                self.motion_phase = g.phase
            if g.phase > 0.999:
                g.phase = 0.999     # hold until the next heel strike; never wrap on time alone
            elif g.phase < 0.0:
                g.phase = 0.0
            if not g.heel_strike and previous > g.phase:
                g.phase = previous  # never backwards within a stride
            g.cadence_steps_min = 120.0 / g.stride_time_s
        else:
            g.phase = -1.0
            g.cadence_steps_min = 0.0
            g.confidence = 0.0
            g.source = GAIT_SOURCE_NONE
            g.stride_estimate_s = 0.0

    cdef void _heel_strike(self, double t_event_s, bint imu_ok) noexcept nogil:
        """A real heel strike dated ``t_event_s``: close the stride, learn from it, start the next."""
        cdef GaitState* g = &self.state
        cdef double stride_s = t_event_s - g.t_heel_strike_s if g.t_heel_strike_s >= 0.0 else -1.0
        cdef bint plausible = self.min_stride_s <= stride_s <= self.max_stride_s
        g.heel_strike = 1
        if plausible and not g.standing and not self.was_walking:
            if self.stride_clean and self.gyro_n > 0.0:
                if self.matcher.learn(stride_s):
                    self.gyro_bias_rad_s += 0.2 * (self.gyro_sum / self.gyro_n - self.gyro_bias_rad_s)
            self.prev_stride_s = g.stride_time_s if g.stride_time_s > 0.0 else stride_s
            g.stride_time_s = stride_s
            if self.time_stride_s <= 0.0 or fabs(log(stride_s / self.time_stride_s)) > TIME_STRIDE_STEP_LN:
                self.time_stride_s = stride_s
            else:
                self.time_stride_s += TIME_STRIDE_RATE * (stride_s - self.time_stride_s)
            g.walking = 1
        elif g.stride_time_s > 0.0:
            g.walking = 1           # resuming after a stop: the last stride time is the prior
        else:
            g.walking = 0
        g.standing = 0
        self.was_walking = False
        g.t_heel_strike_s = t_event_s
        g.phase = 0.0
        self.motion_phase = 0.0
        self.stride_clean = imu_ok
        self.gyro_sum = 0.0
        self.gyro_n = 0.0
        self.swing_peak_rad_s = 0.0
        self.quiet_for_s = 0.0
        self.contact_counted = True
        self.stood_still = False
        self.matcher.begin_stride(g.stride_time_s)

    cdef void _toe_off(self, double t_event_s) noexcept nogil:
        cdef GaitState* g = &self.state
        self.swing_learned_s = 0.0
        g.stance = 0
        g.toe_off = 1
        g.t_toe_off_s = t_event_s
        g.standing = 0
        if g.t_heel_strike_s >= 0.0 and (g.walking or not self.stood_still):
            # Not a stand's long contact (the shank seen still on it): the first stride after it
            # would plan its push-off on that stance time, too late in the stride (none at all).
            # An overlong stance taken for standing with the IMU lost is a slow stance as likely:
            # it is learned, or every slower stride after it would be taken for standing too.
            g.stance_time_s = t_event_s - g.t_heel_strike_s
        if g.t_heel_strike_s >= 0.0 and g.walking:
            if g.stride_time_s > 0.0:
                self.stance_fraction += 0.3 * (clamp01(g.stance_time_s / g.stride_time_s) - self.stance_fraction)
        self.swing_peak_rad_s = 0.0

    # ---- Python-facing helpers (tools, replay, tests); the tick uses step() directly ----

    def run_arrays(self, const double[::1] t_s, const double[::1] shank_gyro_rad_s,
                   const double[::1] load_N, const double[::1] ankle_angle_rad,
                   double[::1] phase, signed char[::1] heel_strike, signed char[::1] toe_off,
                   signed char[::1] walking, signed char[::1] standing=None, long long[::1] step_ns=None):
        """Run ``step`` over recorded samples (the same code as the tick), writing the outputs.

        A non-finite gyro or load sample is treated as that sensor's frame not arriving.
        ``step_ns``, if given, receives each step's duration in ns (benchmarks).
        """
        cdef Py_ssize_t n = t_s.shape[0], i
        cdef bint want_standing = standing is not None
        cdef bint want_ns = step_ns is not None
        cdef timespec before, after
        require_configured(self.configured, "Estimator")
        if want_ns and step_ns.shape[0] != n:
            raise ValueError("step_ns must have one entry per sample")
        if not (shank_gyro_rad_s.shape[0] == load_N.shape[0] == ankle_angle_rad.shape[0] == n
                and phase.shape[0] == heel_strike.shape[0] == toe_off.shape[0] == walking.shape[0] == n
                and (not want_standing or standing.shape[0] == n)):
            raise ValueError("all input and output arrays must have the same length")
        cdef Inputs inp
        inp.imu_rx_s = -1.0
        inp.load_rx_s = -1.0
        inp.imu_valid = 0
        inp.load_valid = 0
        with nogil:
            for i in range(n):
                inp.shank_gyro_rad_s = shank_gyro_rad_s[i]
                inp.load_N = load_N[i]
                inp.ankle_angle_rad = ankle_angle_rad[i]
                inp.imu_valid = isfinite(shank_gyro_rad_s[i])
                inp.load_valid = isfinite(load_N[i])
                if want_ns:
                    clock_gettime(CLOCK_MONOTONIC, &before)
                    self.step(&inp, t_s[i])
                    clock_gettime(CLOCK_MONOTONIC, &after)
                    step_ns[i] = (after.tv_sec - before.tv_sec) * 1000000000LL + (after.tv_nsec - before.tv_nsec)
                else:
                    self.step(&inp, t_s[i])
                phase[i] = self.state.phase
                heel_strike[i] = self.state.heel_strike
                toe_off[i] = self.state.toe_off
                walking[i] = self.state.walking
                if want_standing:
                    standing[i] = self.state.standing

    @property
    def gait(self):
        """The present :c:type:`GaitState` as a dict (for tools and tests)."""
        return self.state
