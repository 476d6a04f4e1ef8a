cimport cython
from libc.stdint cimport uint32_t
from controller.kernels._types cimport Inputs


ctypedef struct StreamWatch:
    # One sensor stream's window (Monitor._watch): counts at the window's start, when it began,
    # and until when the stream counts as implausible / lossy.
    double window_start_s
    uint32_t frames0, disorder0, lost0
    double bad_until_s
    double lossy_until_s


@cython.final
cdef class Monitor:
    # parameters
    cdef double period_s, overrun_gap_s
    cdef double motor_timeout_s, imu_timeout_s, load_timeout_s, status_timeout_s
    cdef double encoder_jump_rad, encoder_mismatch_rad
    cdef double gyro_limit_rad_s, accel_limit_m_s2
    cdef double load_limit_N, tension_limit_N, swing_gyro_rad_s, loaded_N
    cdef double supply_warn_V, supply_min_V
    # state
    cdef double last_now_s
    cdef int late_run
    cdef double last_motor_rx_s, last_motor_angle, last_motor_vel
    cdef int stuck_run, mismatch_run
    cdef double stuck_joint_start_rad
    cdef double last_imu_rx_s, last_gyro, last_ax, last_ay
    cdef int imu_repeat_run, imu_range_run
    cdef double last_load_rx_s
    cdef int load_range_run, loaded_swing_run
    cdef double last_status_rx_s
    cdef int supply_low_frames
    cdef int node_flag_frames, supply_implausible_frames
    cdef StreamWatch imu_stream, load_stream
    cdef readonly double imu_bad_s       # last time the IMU looked bad (-1 = never)
    cdef readonly double load_bad_s
    cdef readonly uint32_t active        # fault conditions present this tick (not latched)
    cdef readonly uint32_t warnings      # ANKLE_WARN_SUPPLY_* this tick
    cdef readonly double supply_scale    # 0..1 push-off allowed by the supply voltage
    cdef readonly bint imu_fresh, load_fresh
    cdef bint started
    cdef double armed_s              # when supervision began (the driver's activation)

    cdef readonly bint configured       # configure() has set every parameter

    cdef void configure_from(self, const double* p, bint keep_state) noexcept nogil
    cdef void begin(self, double now_s) noexcept nogil
    cdef void reset(self) noexcept nogil
    cdef uint32_t check(self, const Inputs* inp, double now_s) noexcept nogil
