from libc.stdint cimport uint32_t
from controller._types cimport Inputs, GaitState, Command


cdef class Safety:
    cdef double max_torque_Nm
    cdef double max_slew_Nm_s
    cdef double motor_timeout_s
    cdef double sensor_timeout_s
    cdef double max_motor_temp_C
    cdef double stance_load_N
    cdef double passive_k
    cdef double passive_b
    cdef double hold_k
    cdef double hold_b
    cdef double ramp_s
    cdef double kp_max
    cdef double kd_max
    # state
    cdef public uint32_t faults       # latched fault word (ANKLE_FAULT_*)
    cdef public int mode              # ANKLE_MODE_*
    cdef double t_safe_s              # when the safe state began
    cdef double torque_at_safe_Nm     # feed-forward torque being ramped out
    cdef double last_torque_Nm        # last feed-forward torque sent (slew reference)
    cdef double last_now_s
    cdef bint started

    cdef void arm(self, double now_s) noexcept nogil
    cdef void step(self, Command* cmd, const Inputs* inp, const GaitState* gait, double now_s) noexcept nogil
