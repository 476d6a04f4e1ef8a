cimport cython
from controller.kernels._types cimport Inputs, GaitState
from controller.kernels._phase_match cimport PhaseMatcher


@cython.final   # no subclasses: method calls in the tick are direct, not virtual
cdef class Estimator:
    # parameters (set by configure, outside the tick)
    cdef double weight_N
    cdef double hs_load_N
    cdef double to_load_N
    cdef double hold_s
    cdef double min_stride_s
    cdef double max_stride_s
    cdef double quiet_gyro_rad_s
    cdef double standing_after_s
    cdef double swing_gyro_rad_s
    cdef bint use_shank
    cdef readonly bint configured     # configure() has set every parameter
    # shank template matcher
    cdef readonly PhaseMatcher matcher
    # state
    cdef GaitState state
    cdef double last_now_s
    cdef double motion_phase      # phase advanced only as fast as the shank moves
    cdef double cond_since_s      # when the pending load condition first held (-1 = none)
    cdef double prev_stride_s     # stride before the last one (for confidence)
    cdef double time_stride_s     # the recent strides' time, smoothed (the time-based phase's divisor)
    cdef double stance_fraction   # learned stance share of the stride (for IMU-only toe-off)
    cdef double gyro_bias_rad_s   # learned while standing and from whole strides
    cdef double load_offset_N     # learned in swing (load-cell offset drift)
    cdef double swing_noise_N2    # learned in swing: mean square of the load about that offset [N^2]
    cdef double swing_learned_s   # how long the offset and noise were learned in the present swing
    cdef double load_fast_N       # the load low-passed fast and slow: their difference is its slope
    cdef double load_slow_N
    cdef double to_due_s          # toe-off confirmed: reported when the falling load reaches 0 (-1 = none)
    cdef double quiet_lp_rad_s    # low-passed |shank angular velocity|
    cdef double quiet_for_s       # how long the loaded shank has been still
    cdef double swing_peak_rad_s  # largest shank velocity since the foot left the ground
    cdef double gyro_sum, gyro_n  # mean gyro over the stride in progress (bias)
    cdef double t_zero_cross_s    # last forward-swing -> backward zero crossing of the gyro
    cdef double hs_after_cross_s  # learned: heel strike comes this long after that crossing
    cdef double imu_hs_due_s      # IMU-only: heel strike expected at this time (-1 = none)
    cdef bint swing_armed         # the shank has swung forward; waiting for its zero crossing
    cdef bint stride_clean        # the stride in progress had the IMU all along and no standing
    cdef bint contact_counted     # the present contact began with a real heel strike
    cdef bint was_walking         # walking before standing (resume on the first heel strike)
    cdef bint seen_unloaded       # the foot has been seen off the ground since the start
    cdef bint stood_still         # the present contact was a stand (the shank seen still on it)

    cdef void configure_from(self, const double* p, bint keep_state) noexcept nogil
    cdef void reset(self) noexcept nogil
    cdef void step(self, const Inputs* inp, double now_s) noexcept nogil
    cdef void _heel_strike(self, double t_event_s, bint imu_ok) noexcept nogil
    cdef void _toe_off(self, double t_event_s) noexcept nogil
