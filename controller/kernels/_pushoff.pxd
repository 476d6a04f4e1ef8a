cimport cython
from controller.kernels._types cimport Inputs, GaitState, Command

# Speed bins of the learned push-off correction: 0.5, 0.75, ... 2.0 m/s.
cdef enum:
    N_SPEED_BINS = 7


@cython.final
cdef class PushoffController:
    # parameters
    cdef double mass_kg
    cdef double k_cp_Nm_rad, k_cd_Nm_rad, b_stance_Nms_rad, stance_eq_rad
    cdef double t_at_1_m_s, speed_exponent
    cdef double torque_ref_Nm_kg, torque_slope_Nm_kg_per_m_s
    cdef double rise_s                           # push-off rise time
    cdef double start_s, peak_s, end_s           # push-off timing, fractions of stance (start from rise_s)
    cdef double work_ref_J_kg, work_slope_J_kg_per_m_s
    cdef double adapt_rate, adapt_limit
    cdef double min_confidence
    cdef double max_torque_Nm
    cdef double swing_target_rad, swing_neutral_phase, swing_k_Nm_rad, swing_b_Nms_rad
    # state
    cdef double correction[N_SPEED_BINS]         # learned push-off scale per speed bin
    cdef readonly double speed_m_s               # walking speed estimate from stride time
    cdef readonly double pushoff_peak_Nm         # push-off peak planned for this stride
    cdef readonly double stance_work_J           # net ankle work of the stance in progress
    cdef readonly double last_work_J_kg          # net stance work of the last stride, per kg
    cdef readonly double work_target_J_kg        # target for the stride in progress
    cdef readonly int strides_adapted
    cdef double last_angle_rad
    cdef bint stride_clean                       # full assist, shank phase, no standing
    cdef bint in_stride
    cdef readonly bint configured                # configure() has set every parameter

    cdef void configure_from(self, const double* p) noexcept nogil

    cdef double _bin_position(self, double v) noexcept nogil
    cdef double _correction_at(self, double v) noexcept nogil
    cdef double pushoff_torque_Nm(self, double s) noexcept nogil
    cdef void _new_stride(self, const GaitState* gait) noexcept nogil
    cdef void step(self, const GaitState* gait, const Inputs* inp, double assist, Command* out) noexcept nogil
