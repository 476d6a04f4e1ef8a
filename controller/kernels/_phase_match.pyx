# cython: language_level=3
"""Shank-gyro template matching: which stride time best explains the stride so far.

Why: phase = time since heel strike / stride time is exact only if this
stride lasts as long as the last one.  When the wearer speeds up or slows
down, the shank says so long before the next heel strike: its angular
velocity follows the same shape every stride, stretched in time (the stride
time ``T``) and in size (the speed).  So for each of ``N_CANDIDATES`` stride
times around the prior (x0.67..x1.49 of the last stride, log-spaced), this
kernel keeps running sums for a least-squares fit of the gyro samples since
heel strike to ``a * template(tau / T_j) + c`` (free gain ``a``: speed and
wearer; free offset ``c``: gyro bias), and the candidate with the smallest
normalised residual plus a small prior cost wins.  Early in stance all
candidates fit alike and the prior (the last stride) decides; as the stride
unfolds, its shape decides.

The template is learned, not shipped: at each heel strike the completed
stride's samples are resampled to ``TEMPLATE_BINS`` bins of phase (its
duration is known then, in hindsight), normalised to zero mean and unit RMS,
and blended into the template.  Costs per sample: ``N_CANDIDATES``
interpolations and sums (about 0.2 us); per stride: one pass over its samples.
Fixed arrays only, no allocation, no Python objects in the per-sample path.
"""
from libc.math cimport log, exp, sqrt, floor, NAN

cdef double MIN_FACTOR_LN = -0.40       # x0.67: 0.75 -> 1.5 m/s shortens the stride ~29 %
cdef double MAX_FACTOR_LN = 0.40        # x1.49


cdef class PhaseMatcher:
    """Stride-time estimator by template matching (see the module docstring)."""

    def __cinit__(self, learn_rate=None, prior_weight=None):
        """``learn_rate`` (estimator.template_rate) and ``prior_weight`` (estimator.prior_weight):
        no defaults of its own; the estimator sets them from the registry (configure_rates).
        Unset, the Python entry points refuse to run it."""
        cdef int j
        self.learn_rate = NAN
        self.prior_weight = NAN
        if learn_rate is not None or prior_weight is not None:
            if learn_rate is None or prior_weight is None or not (0.0 < learn_rate <= 1.0 and prior_weight >= 0.0):
                raise ValueError("learn_rate must be in (0, 1] and prior_weight >= 0")
            self.configure_rates(learn_rate, prior_weight)
        for j in range(N_CANDIDATES):
            self.ln_factor[j] = MIN_FACTOR_LN + (MAX_FACTOR_LN - MIN_FACTOR_LN) * j / (N_CANDIDATES - 1)
        self.clear()

    cdef void configure_rates(self, double learn_rate, double prior_weight) noexcept nogil:
        """The template's learning rate and the prior's weight (validated by the registry)."""
        self.learn_rate = learn_rate
        self.prior_weight = prior_weight

    def _require(self):
        if not (self.learn_rate > 0.0 and self.prior_weight >= 0.0):
            raise RuntimeError("PhaseMatcher is not configured: give learn_rate and prior_weight "
                               "(estimator.template_rate, estimator.prior_weight)")

    cdef void clear(self) noexcept nogil:
        """Forget the template and the stride in progress."""
        cdef int i
        for i in range(TEMPLATE_BINS):
            self.template[i] = 0.0
        self.strides_learned = 0
        self.gain = 0.0
        self.offset_rad_s = 0.0
        self.n_buf = 0
        self.begin_stride(0.0)

    cdef bint ready(self) noexcept nogil:
        return self.strides_learned > 0 and self.prior_stride_s > 0.0

    cdef void begin_stride(self, double prior_stride_s) noexcept nogil:
        """Start matching a new stride (heel strike); ``prior_stride_s`` <= 0 means no prior."""
        cdef int j
        self.prior_stride_s = prior_stride_s
        self.best_stride_s = prior_stride_s
        self.fit_r2 = 0.0
        for j in range(N_CANDIDATES):
            self.s_og[j] = 0.0
            self.s_gg[j] = 0.0
            self.s_g[j] = 0.0
            self.inv_stride_s[j] = 1.0 / (prior_stride_s * exp(self.ln_factor[j])) if prior_stride_s > 0.0 else 0.0
        self.s_o = 0.0
        self.s_oo = 0.0
        self.n = 0.0
        self.n_buf = 0

    cdef double template_at(self, double phase) noexcept nogil:
        # periodic linear interpolation: a candidate shorter than tau has wrapped into its next stride
        cdef double x = phase * TEMPLATE_BINS
        cdef double fl = floor(x)
        cdef int i = (<int>fl) % TEMPLATE_BINS
        if i < 0:
            i += TEMPLATE_BINS
        cdef double f = x - fl
        cdef int k = i + 1 if i + 1 < TEMPLATE_BINS else 0
        return self.template[i] * (1.0 - f) + self.template[k] * f

    cdef void add(self, double tau_s, double omega_rad_s) noexcept nogil:
        """One gyro sample, ``tau_s`` after the heel strike: keep it, update every hypothesis."""
        cdef int j, best = -1
        cdef double g, det, a, c, res, var, cost, best_cost = 1e300
        cdef double costs[N_CANDIDATES]
        cdef double cm, cp, denom, shift
        if self.n_buf < STRIDE_BUFFER:
            self.buf_tau_s[self.n_buf] = tau_s
            self.buf_omega[self.n_buf] = omega_rad_s
            self.n_buf += 1
        if not self.ready():
            return
        self.s_o += omega_rad_s
        self.s_oo += omega_rad_s * omega_rad_s
        self.n += 1.0
        var = self.s_oo - self.s_o * self.s_o / self.n
        for j in range(N_CANDIDATES):
            g = self.template_at(tau_s * self.inv_stride_s[j])
            self.s_og[j] += omega_rad_s * g
            self.s_gg[j] += g * g
            self.s_g[j] += g
            # least squares o = a*g + c; residual = var - (explained by a)
            det = self.s_gg[j] * self.n - self.s_g[j] * self.s_g[j]
            if det > 1e-12 and var > 1e-12:
                a = (self.s_og[j] * self.n - self.s_g[j] * self.s_o) / det
                if a > 0.0:     # a mirrored template is no match
                    res = var - a * (self.s_og[j] - self.s_g[j] * self.s_o / self.n)
                    cost = res / var
                else:
                    cost = 1.0
            else:
                cost = 1.0
            cost += self.prior_weight * self.ln_factor[j] * self.ln_factor[j]
            costs[j] = cost
            if cost < best_cost:
                best_cost = cost
                best = j
        # parabolic refinement between neighbouring hypotheses: a continuous stride time
        shift = 0.0
        if 0 < best < N_CANDIDATES - 1:
            cm = costs[best - 1]
            cp = costs[best + 1]
            denom = cm - 2.0 * best_cost + cp
            if denom > 1e-12:
                shift = 0.5 * (cm - cp) / denom
        self.best_stride_s = self.prior_stride_s * exp(
            self.ln_factor[best] + shift * (MAX_FACTOR_LN - MIN_FACTOR_LN) / (N_CANDIDATES - 1))
        res = best_cost - self.prior_weight * self.ln_factor[best] * self.ln_factor[best]
        self.fit_r2 = 1.0 - res if res < 1.0 else 0.0


    cdef double expected_motion(self, double phase) noexcept nogil:
        """Shank angular velocity expected at ``phase`` (template at the last stride's size), less its mean."""
        return self.gain * self.template_at(phase)

    cdef bint learn(self, double stride_s) noexcept nogil:
        """Blend the completed stride (``stride_s`` long) into the template; False if unusable."""
        cdef double resampled[TEMPLATE_BINS]
        cdef int b, i = 0
        cdef double tau, f, mean = 0.0, power = 0.0, scale, w
        if stride_s <= 0.0 or self.n_buf < 2 * 20:
            return False
        if self.buf_tau_s[self.n_buf - 1] < stride_s * (1.0 - 1.0 / TEMPLATE_BINS):
            return False        # samples missing at the end (buffer full, or a gap)
        for b in range(TEMPLATE_BINS):
            tau = stride_s * b / TEMPLATE_BINS
            while i < self.n_buf - 2 and self.buf_tau_s[i + 1] < tau:
                i += 1
            f = (tau - self.buf_tau_s[i]) / (self.buf_tau_s[i + 1] - self.buf_tau_s[i]) \
                if self.buf_tau_s[i + 1] > self.buf_tau_s[i] else 0.0
            f = 0.0 if f < 0.0 else (1.0 if f > 1.0 else f)
            resampled[b] = self.buf_omega[i] * (1.0 - f) + self.buf_omega[i + 1] * f
            mean += resampled[b]
        mean /= TEMPLATE_BINS
        for b in range(TEMPLATE_BINS):
            resampled[b] -= mean
            power += resampled[b] * resampled[b]
        if power <= 1e-9:
            return False        # a still shank is no stride
        self.gain = sqrt(power / TEMPLATE_BINS)
        self.offset_rad_s = mean
        scale = 1.0 / self.gain
        w = 1.0 if self.strides_learned == 0 else self.learn_rate
        for b in range(TEMPLATE_BINS):
            self.template[b] = (1.0 - w) * self.template[b] + w * resampled[b] * scale
        self.strides_learned += 1
        return True

    # ---- Python-facing helpers (tests, tools) ----
    def template_array(self):
        """The learned template as a list of ``TEMPLATE_BINS`` floats."""
        return [self.template[i] for i in range(TEMPLATE_BINS)]

    def py_begin_stride(self, double prior_stride_s):
        self.begin_stride(prior_stride_s)

    def py_add(self, double tau_s, double omega_rad_s):
        self._require()
        self.add(tau_s, omega_rad_s)

    def py_learn(self, double stride_s):
        self._require()
        return self.learn(stride_s)
