# cython: language_level=3
"""Shank-gyro template matching: which stride time best explains the stride so far.

Why: phase = time since heel strike / stride time is exact only if this
stride lasts as long as the last one.  When the wearer speeds up or slows
down, the shank says so long before the next heel strike: its angular
velocity follows a typical shape every stride, stretched in time (the stride
time ``T``) and in size (the speed).  So for each of ``N_CANDIDATES`` stride
times around the prior (x0.47..x2.12 of the last stride, log-spaced: a walker
may halve or double the stride time from one stride to the next), this kernel
keeps running sums for a least-squares fit of the gyro samples since heel
strike to ``a * template(tau / T_j) + c`` (gain ``a``: speed and wearer;
offset ``c``: gyro bias), and the candidate with the smallest cost wins: the
normalised residual, a small prior cost for departing from the last stride,
and a cost for a gain that does not fit the candidate's stride time.

Why more than one template: the shape is not one stride stretched.  Slow
walking has a longer stance share and a smaller, flatter shank swing than
fast walking (Winter 2009; Lelas et al. 2003, Gait Posture 17:106), so a
template learned at 0.9 s strides misplaces a 1.8 s stride.  Templates are
kept per stride-time band (``N_BANDS``, x1.3 apart); a hypothesis uses the
template of its own band, or the nearest band learned so far.

Why the gain cost: early in the stride of a change the residual alone cannot
tell a slow stride from a fast one (both fit a short piece of template), but
the shank's size can: the shank turns faster the faster one walks.  Each band
learns the RMS gain of its strides; a hypothesis expects the gain of its band
scaled to its stride time by ``(T / T_band) ** slope``, the slope measured
between the two nearest learned bands, or ``DEFAULT_GAIN_SLOPE`` while only
one is learned.  That default is assumed: were the shank's angular velocity
proportional to walking speed, with stride time proportional to v^-0.486 (the
GAITRite fit, docs/reference.md section 4), the slope would be -2.1; the
shank's excursion grows less than speed at slow speeds, which makes it less
steep, so -1.5; it is measured as soon as two bands are learned.  The cost
is ``GAIN_WEIGHT * (2 (r-1)/(r+1))**2`` for the ratio ``r`` of fitted to
expected gain, ramped in over ``GAIN_RAMP_S``: it is about ``ln(r)**2`` near
1 and needs no logarithm per sample.

The templates are learned, not shipped: at each heel strike the completed
stride's samples are resampled to ``TEMPLATE_BINS`` bins of phase (its
duration is known then, in hindsight), normalised to zero mean and unit RMS,
and blended into its band's template; a band's first stride replaces it.
Costs per sample: ``N_CANDIDATES`` interpolations and sums; per stride: one
pass over its samples.  Fixed arrays only, no allocation, no Python objects
in the per-sample path.
"""
from libc.math cimport log, exp, sqrt, floor, pow, fabs, NAN

cdef double MIN_FACTOR_LN = -0.75       # x0.47: the stride time may halve from one stride to the next
cdef double MAX_FACTOR_LN = 0.75        # x2.12: ... or double
cdef double BAND0_S = 0.75              # the first band's stride time [s]
cdef double BAND_RATIO_LN = 0.26236     # ln 1.3: bands x1.3 apart (0.75, 0.98, 1.27, 1.65, 2.14, 2.78 s)
cdef double DEFAULT_GAIN_SLOPE = -1.5   # d ln(gain) / d ln(T) until two bands are learned (assumed, see above)
cdef double MIN_GAIN_SLOPE = -3.0       # a measured slope is kept within these
cdef double MAX_GAIN_SLOPE = 0.0
cdef double GAIN_WEIGHT = 0.5
cdef double GAIN_RAMP_S = 0.05


cdef inline int band_of_ln(double ln_stride) noexcept nogil:
    """The band of a stride time given as its natural log (ln of seconds)."""
    cdef int b = <int>floor((ln_stride - log(BAND0_S)) / BAND_RATIO_LN + 0.5)
    return 0 if b < 0 else (N_BANDS - 1 if b > N_BANDS - 1 else b)


cdef inline int band_of(double stride_s) noexcept nogil:
    return band_of_ln(log(stride_s))


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
        """Forget the templates and the stride in progress."""
        cdef int i, b
        for b in range(N_BANDS):
            for i in range(TEMPLATE_BINS):
                self.template[b][i] = 0.0
            self.band_strides[b] = 0
            self.band_gain[b] = 0.0
            self.band_offset[b] = 0.0
            self.band_stride_s[b] = 0.0
        self.strides_learned = 0
        self.gain = 0.0
        self.offset_rad_s = 0.0
        self.best_band = 0
        self.n_buf = 0
        self.begin_stride(0.0)

    cdef bint ready(self) noexcept nogil:
        return self.strides_learned > 0 and self.prior_stride_s > 0.0

    cdef int _nearest_learned(self, int band, int skip) noexcept nogil:
        """The learned band nearest ``band`` other than ``skip`` (-1: none)."""
        cdef int d, b
        for d in range(N_BANDS):
            b = band - d
            if 0 <= b < N_BANDS and b != skip and self.band_strides[b] > 0:
                return b
            b = band + d
            if 0 <= b < N_BANDS and b != skip and self.band_strides[b] > 0:
                return b
        return -1

    cdef void begin_stride(self, double prior_stride_s) noexcept nogil:
        """Start matching a new stride (heel strike); ``prior_stride_s`` <= 0 means no prior."""
        cdef int j, b, other
        cdef int use_band[N_BANDS]
        cdef double slope[N_BANDS]
        cdef double ln_stride, ln_prior
        cdef bint ready = prior_stride_s > 0.0 and self.strides_learned > 0
        self.prior_stride_s = prior_stride_s
        self.best_stride_s = prior_stride_s
        self.fit_r2 = 0.0
        if ready:
            # per band: the learned band a hypothesis there uses, and the gain's slope from it
            for b in range(N_BANDS):
                use_band[b] = self._nearest_learned(b, -1)
                other = self._nearest_learned(use_band[b], use_band[b])
                slope[b] = DEFAULT_GAIN_SLOPE
                if other >= 0 and fabs(log(self.band_stride_s[other] / self.band_stride_s[use_band[b]])) > 0.1:
                    slope[b] = (log(self.band_gain[other] / self.band_gain[use_band[b]])
                                / log(self.band_stride_s[other] / self.band_stride_s[use_band[b]]))
                    slope[b] = MIN_GAIN_SLOPE if slope[b] < MIN_GAIN_SLOPE else (
                        MAX_GAIN_SLOPE if slope[b] > MAX_GAIN_SLOPE else slope[b])
            ln_prior = log(prior_stride_s)
        for j in range(N_CANDIDATES):
            self.s_og[j] = 0.0
            self.s_gg[j] = 0.0
            self.s_g[j] = 0.0
            self.cand_band[j] = 0
            self.cand_gain[j] = 0.0
            self.inv_stride_s[j] = 0.0
            if ready:
                ln_stride = ln_prior + self.ln_factor[j]
                b = band_of_ln(ln_stride)
                self.inv_stride_s[j] = exp(-ln_stride)
                self.cand_band[j] = use_band[b]
                self.cand_gain[j] = self.band_gain[use_band[b]] * exp(
                    slope[b] * (ln_stride - log(self.band_stride_s[use_band[b]])))
        if ready:
            self.best_band = self.cand_band[(N_CANDIDATES - 1) // 2]
            self.gain = self.cand_gain[(N_CANDIDATES - 1) // 2]
            self.offset_rad_s = self.band_offset[self.best_band]
        self.s_o = 0.0
        self.s_oo = 0.0
        self.n = 0.0
        self.n_buf = 0

    cdef double template_at(self, int band, double phase) noexcept nogil:
        # periodic linear interpolation: a candidate shorter than tau has wrapped into its next stride
        cdef double x = phase * TEMPLATE_BINS
        cdef double fl = floor(x)
        cdef int i = (<int>fl) % TEMPLATE_BINS
        if i < 0:
            i += TEMPLATE_BINS
        cdef double f = x - fl
        cdef int k = i + 1 if i + 1 < TEMPLATE_BINS else 0
        return self.template[band][i] * (1.0 - f) + self.template[band][k] * f

    cdef void add(self, double tau_s, double omega_rad_s) noexcept nogil:
        """One gyro sample, ``tau_s`` after the heel strike: keep it, update every hypothesis."""
        cdef int j, best = -1
        cdef double g, det, a, res, var, cost, best_cost = 1e300, r, d
        cdef double costs[N_CANDIDATES]
        cdef double cm, cp, denom, shift
        cdef double gain_w = GAIN_WEIGHT * (tau_s / GAIN_RAMP_S if tau_s < GAIN_RAMP_S else 1.0)
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
            g = self.template_at(self.cand_band[j], tau_s * self.inv_stride_s[j])
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
                    r = a / self.cand_gain[j]
                    d = (r - 1.0) / (r + 1.0)
                    cost += gain_w * 4.0 * d * d
                else:
                    cost = 1.0 + gain_w * 4.0
            else:
                cost = 1.0 + gain_w * 4.0
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
        self.best_band = self.cand_band[best]
        self.gain = self.cand_gain[best]
        self.offset_rad_s = self.band_offset[self.best_band]
        det = self.s_gg[best] * self.n - self.s_g[best] * self.s_g[best]
        res = 1.0
        if det > 1e-12 and var > 1e-12:
            a = (self.s_og[best] * self.n - self.s_g[best] * self.s_o) / det
            if a > 0.0:
                res = (var - a * (self.s_og[best] - self.s_g[best] * self.s_o / self.n)) / var
        self.fit_r2 = 1.0 - res if res < 1.0 else 0.0


    cdef double expected_motion(self, double phase) noexcept nogil:
        """Shank angular velocity expected at ``phase`` (the winning hypothesis' template and gain), less its mean."""
        return self.gain * self.template_at(self.best_band, phase)

    cdef bint learn(self, double stride_s) noexcept nogil:
        """Blend the completed stride (``stride_s`` long) into its band's template; False if unusable."""
        cdef double resampled[TEMPLATE_BINS]
        cdef int b, i = 0, band
        cdef double tau, f, mean = 0.0, power = 0.0, scale, w, gain
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
        gain = sqrt(power / TEMPLATE_BINS)
        scale = 1.0 / gain
        band = band_of(stride_s)
        w = 1.0 if self.band_strides[band] == 0 else self.learn_rate
        for b in range(TEMPLATE_BINS):
            self.template[band][b] = (1.0 - w) * self.template[band][b] + w * resampled[b] * scale
        self.band_gain[band] = (1.0 - w) * self.band_gain[band] + w * gain
        self.band_offset[band] = (1.0 - w) * self.band_offset[band] + w * mean
        self.band_stride_s[band] = (1.0 - w) * self.band_stride_s[band] + w * stride_s
        self.band_strides[band] += 1
        self.strides_learned += 1
        return True

    # ---- Python-facing helpers (tests, tools) ----
    def template_array(self, stride_s=None):
        """The learned template (of the band of ``stride_s``, or the last winning hypothesis')
        as a list of ``TEMPLATE_BINS`` floats."""
        cdef int band = self.best_band if stride_s is None else band_of(stride_s)
        return [self.template[band][i] for i in range(TEMPLATE_BINS)]

    def band_figures(self):
        """Per stride-time band: strides learned, mean stride time [s], gain [rad/s] (tools, tests)."""
        return [(self.band_strides[b], self.band_stride_s[b], self.band_gain[b]) for b in range(N_BANDS)]

    def py_begin_stride(self, double prior_stride_s):
        self.begin_stride(prior_stride_s)

    def py_add(self, double tau_s, double omega_rad_s):
        self._require()
        self.add(tau_s, omega_rad_s)

    def py_learn(self, double stride_s):
        self._require()
        return self.learn(stride_s)
