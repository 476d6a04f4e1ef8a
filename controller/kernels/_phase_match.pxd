cimport cython
# Shank-gyro template matching: the stride time that best explains the stride so far.
# See controller/kernels/_phase_match.pyx.

cdef enum:
    TEMPLATE_BINS = 200          # template resolution, bins per stride
    N_CANDIDATES = 49            # stride-time hypotheses per stride (x0.47..x2.12 of the prior)
    N_BANDS = 6                  # stride-time bands with a template each (0.75 s .. 2.8 s, x1.3 apart)
    STRIDE_BUFFER = 8192         # samples kept per stride (2.5 s at 2 kHz fits)


@cython.final   # no subclasses: method calls in the tick are direct, not virtual
cdef class PhaseMatcher:
    # learned templates of the shank angular velocity over one stride (zero mean, unit RMS), one
    # per stride-time band, with the size (RMS gain) and mean of the strides learned into each
    cdef double template[N_BANDS][TEMPLATE_BINS]
    cdef int band_strides[N_BANDS]
    cdef double band_gain[N_BANDS]
    cdef double band_offset[N_BANDS]
    cdef double band_stride_s[N_BANDS]    # the mean stride time learned into each band
    cdef public int strides_learned
    cdef readonly double learn_rate     # weight of the newest stride in its band's template
    cdef readonly double prior_weight   # cost of departing from the prior stride time (per ln^2)
    # stride-time hypotheses for the stride in progress
    cdef double ln_factor[N_CANDIDATES]
    cdef double inv_stride_s[N_CANDIDATES]
    cdef int cand_band[N_CANDIDATES]        # the learned band whose template the hypothesis uses
    cdef double cand_gain[N_CANDIDATES]     # the shank gain expected at the hypothesis' stride time
    cdef double s_og[N_CANDIDATES]
    cdef double s_gg[N_CANDIDATES]
    cdef double s_g[N_CANDIDATES]
    cdef double s_o, s_oo, n
    cdef double prior_stride_s
    cdef int best_band
    cdef public double best_stride_s    # the winning hypothesis (interpolated)
    cdef public double fit_r2           # 1 - residual / variance of the best fit (0..1)
    cdef public double gain             # the winning hypothesis' band: RMS of its strides' gyro [rad/s]
    cdef public double offset_rad_s     # ... and their mean gyro (the bias) [rad/s]
    # samples of the stride in progress (for learning once it is complete)
    cdef double buf_tau_s[STRIDE_BUFFER]
    cdef double buf_omega[STRIDE_BUFFER]
    cdef int n_buf

    cdef void configure_rates(self, double learn_rate, double prior_weight) noexcept nogil
    cdef void clear(self) noexcept nogil
    cdef void begin_stride(self, double prior_stride_s) noexcept nogil
    cdef void add(self, double tau_s, double omega_rad_s) noexcept nogil
    cdef bint learn(self, double stride_s) noexcept nogil
    cdef bint ready(self) noexcept nogil
    cdef int _nearest_learned(self, int band, int skip) noexcept nogil
    cdef double expected_motion(self, double phase) noexcept nogil
    cdef double template_at(self, int band, double phase) noexcept nogil
