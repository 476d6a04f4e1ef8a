from controller._types cimport Inputs, GaitState, Command


cdef class PushoffController:
    cdef double mass_kg
    cdef double stance_k_Nm_rad
    cdef double stance_b_Nms_rad
    cdef double stance_eq_rad
    cdef double pushoff_peak_Nm
    cdef double pushoff_start
    cdef double pushoff_peak
    cdef double pushoff_end
    cdef double swing_target_rad
    cdef double swing_k_Nm_rad
    cdef double swing_b_Nms_rad

    cdef double pushoff_torque_Nm(self, double phase) noexcept nogil
    cdef void step(self, const GaitState* gait, const Inputs* inp, Command* out) noexcept nogil
