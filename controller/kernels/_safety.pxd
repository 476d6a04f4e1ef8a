cimport cython
from libc.stdint cimport uint32_t
from controller.kernels._types cimport Inputs, GaitState, Command
from controller.kernels._monitor cimport Monitor
from controller.kernels._thermal cimport ThermalModel


@cython.final
cdef class Safety:
    cdef readonly Monitor monitor
    cdef readonly ThermalModel thermal
    cdef double max_torque_Nm
    cdef double max_slew_Nm_s
    cdef double stance_load_N
    cdef double passive_k
    cdef double passive_b
    cdef double hold_k
    cdef double hold_b
    cdef double ramp_s
    cdef double kp_max
    cdef double kd_max
    cdef double recover_s
    cdef double soft_dorsi_rad, soft_plantar_rad, soft_k, soft_b
    cdef double ratio_eff                 # ratio * efficiency (ankle torque -> motor torque)
    cdef double driver_v_max_rad_s        # the driver's MIT velocity range (larger |bound|), motor side
    cdef readonly double max_speed_rad_s  # fastest ankle velocity the driver can report (range / ratio)
    cdef readonly bint configured         # configure() has set every parameter
    cdef readonly int angle_source        # ANGLE_*: which angle the limits used this tick
    # state
    cdef public uint32_t faults           # latched fault word (ANKLE_FAULT_*)
    cdef readonly uint32_t warnings       # ANKLE_WARN_* this tick
    cdef readonly int mode                # ANKLE_MODE_*
    cdef public int chosen_mode           # what the prosthetist chose: ANKLE_MODE_WALK, _PASSIVE or _STANDBY
    cdef readonly double assist           # 0..1 share of the push-off torque let through
    cdef readonly double torque_limit_Nm  # limit in force this tick (after thermal derating)
    cdef readonly uint32_t present        # fault conditions present this tick (clear_faults)
    cdef readonly double t_safe_s         # when the safe state (or chosen standby) began
    cdef double torque_at_safe_Nm         # feed-forward torque being ramped out
    cdef double loaded_share              # safe state: 1 = passive foot (loaded), 0 = swing hold
    cdef readonly double last_torque_Nm   # last feed-forward torque sent (slew reference)
    cdef readonly double last_now_s
    cdef double last_load_N               # load seen by the last check (clear_faults)
    cdef bint started
    # The drive is torque only (hal._codec.DriveCodec.impedance False): the spring-damper of the
    # safe states is computed here every tick and sent as torque (set by the tick from its codec).
    cdef public bint host_impedance

    cdef void configure_from(self, const double* p, bint keep_state, double driver_v_max_rad_s) noexcept nogil
    cdef void arm(self, double now_s) noexcept nogil
    cdef void check(self, Inputs* inp, double now_s) noexcept nogil
    cdef void step(self, Command* cmd, const Inputs* inp, const GaitState* gait, double now_s) noexcept nogil
    cdef void _set_mode(self, double now_s) noexcept nogil
