# cython: language_level=3
"""Gait-event and phase estimator (first version: load events, time-based phase).

Heel strike and toe-off come from the pylon load with hysteresis: the foot is
loaded when the load exceeds ``heel_strike_load_bw`` of body weight for
``event_hold_s``, unloaded when it falls below ``toe_off_load_bw`` for the
same time.  The event is *reported* on the tick the hold completes (that is
its detection latency) but *dated* at the first sample of the condition, which
is what the phase uses.  Phase is the time since heel strike over the last
stride time: simple on purpose; it degrades when the speed changes, which a
later estimator fixes.  Walking starts once one stride of plausible length has
been seen and stops when no heel strike comes within ``max_stride_s``.

Only ``t``, ``load_N`` (and, later, ``shank_gyro_rad_s`` / ``ankle_angle_rad``)
are read, so ``ankle replay`` on a recorded CSV reproduces the online
estimates sample for sample.
"""
from controller._types cimport Inputs, GaitState

cdef double STANDARD_GRAVITY = 9.80665   # m/s^2


cdef class Estimator:
    """Per-tick gait estimator.  ``step`` is called every tick: no allocation, no blocking."""

    def __cinit__(self):
        self.hs_load_N = 0.15 * 80.0 * STANDARD_GRAVITY
        self.to_load_N = 0.05 * 80.0 * STANDARD_GRAVITY
        self.hold_s = 0.003
        self.min_stride_s = 0.6
        self.max_stride_s = 2.5
        self.reset()

    def configure(self, params):
        """Take thresholds from a validated :class:`controller.params.ParamSet` (not in the tick)."""
        weight_N = params["wearer.mass_kg"] * STANDARD_GRAVITY
        self.hs_load_N = params["estimator.heel_strike_load_bw"] * weight_N
        self.to_load_N = params["estimator.toe_off_load_bw"] * weight_N
        self.hold_s = params["estimator.event_hold_s"]
        self.min_stride_s = params["estimator.min_stride_s"]
        self.max_stride_s = params["estimator.max_stride_s"]

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
        self.cond_since_s = -1.0
        self.prev_stride_s = 0.0

    cdef void step(self, const Inputs* inp, double now_s) noexcept nogil:
        cdef GaitState* g = &self.state
        cdef double load = inp.load_N
        cdef bint condition
        cdef double t_event, stride, change
        g.heel_strike = 0
        g.toe_off = 0

        # Raw condition: the opposite of the present contact state, with hysteresis.
        # A NaN load satisfies neither comparison, so it never makes an event.
        if g.stance:
            condition = load < self.to_load_N
        else:
            condition = load > self.hs_load_N
        if not condition:
            self.cond_since_s = -1.0
        else:
            if self.cond_since_s < 0.0:
                self.cond_since_s = now_s
            # 1 ns tolerance: sample times like k * 1e-3 are not exact in binary
            if now_s - self.cond_since_s >= self.hold_s - 1e-9:
                t_event = self.cond_since_s
                self.cond_since_s = -1.0
                if g.stance:
                    g.stance = 0
                    g.toe_off = 1
                    g.t_toe_off_s = t_event
                    if g.t_heel_strike_s >= 0.0:
                        g.stance_time_s = t_event - g.t_heel_strike_s
                else:
                    g.stance = 1
                    g.heel_strike = 1
                    if g.t_heel_strike_s >= 0.0:
                        stride = t_event - g.t_heel_strike_s
                        if self.min_stride_s <= stride <= self.max_stride_s:
                            self.prev_stride_s = g.stride_time_s if g.stride_time_s > 0.0 else stride
                            g.stride_time_s = stride
                            g.walking = 1
                        else:
                            g.walking = 0
                    g.t_heel_strike_s = t_event

        if g.walking and now_s - g.t_heel_strike_s > self.max_stride_s:
            g.walking = 0
        if g.walking:
            g.phase = (now_s - g.t_heel_strike_s) / g.stride_time_s
            if g.phase > 0.999:
                g.phase = 0.999     # hold until the next heel strike; never wrap on time alone
            elif g.phase < 0.0:
                g.phase = 0.0
            g.cadence_steps_min = 120.0 / g.stride_time_s
            change = (g.stride_time_s - self.prev_stride_s) / self.prev_stride_s
            if change < 0.0:
                change = -change
            g.confidence = 1.0 - 5.0 * change
            if g.confidence < 0.0:
                g.confidence = 0.0
        else:
            g.phase = -1.0
            g.cadence_steps_min = 0.0
            g.confidence = 0.0

    # ---- Python-facing helpers (tools, replay, tests); the tick uses step() directly ----

    def run_arrays(self, const double[::1] t_s, const double[::1] shank_gyro_rad_s,
                   const double[::1] load_N, const double[::1] ankle_angle_rad,
                   double[::1] phase, signed char[::1] heel_strike, signed char[::1] toe_off,
                   signed char[::1] walking):
        """Run ``step`` over recorded samples (the same code as the tick), writing the outputs."""
        cdef Py_ssize_t n = t_s.shape[0], i
        if not (shank_gyro_rad_s.shape[0] == load_N.shape[0] == ankle_angle_rad.shape[0] == n
                and phase.shape[0] == heel_strike.shape[0] == toe_off.shape[0] == walking.shape[0] == n):
            raise ValueError("all input and output arrays must have the same length")
        cdef Inputs inp
        with nogil:
            for i in range(n):
                inp.shank_gyro_rad_s = shank_gyro_rad_s[i]
                inp.load_N = load_N[i]
                inp.ankle_angle_rad = ankle_angle_rad[i]
                inp.imu_rx_s = t_s[i]
                inp.load_rx_s = t_s[i]
                self.step(&inp, t_s[i])
                phase[i] = self.state.phase
                heel_strike[i] = self.state.heel_strike
                toe_off[i] = self.state.toe_off
                walking[i] = self.state.walking

    @property
    def gait(self):
        """The present :c:type:`GaitState` as a dict (for tools and tests)."""
        return self.state
