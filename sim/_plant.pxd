# The simulated ankle (implemented in _plant.pyx), declared here so that a simulated drive
# (sim/_simdrive.pxd and its subclasses) can reach the motor from its own module.
#
# The drive API (motor side of the transmission, SI; every method noexcept nogil):
# drive_enable / drive_disable / drive_zero / drive_command / drive_protection, the readings
# motor_position() / motor_velocity() (as the drive's encoder reads them, faults included),
# tau_motor_Nm, case_C, winding_C, supply_V, and the injected hardware error error_code.
cimport cython
from libc.stdint cimport uint64_t
from hal._mit cimport MitRange, MitCommand


@cython.final
cdef class AnklePlant:
    # stride being walked and the one queued after it
    cdef double[:, ::1] profile
    cdef double[:, ::1] next_profile
    cdef double t0_s, stride_s, stance_frac
    cdef double next_stride_s, next_stance_frac
    cdef bint walking, next_walking         # False for a standing segment
    cdef public bint next_queued
    cdef public long stride_index
    cdef public bint started
    # mechanics
    cdef double J_kgm2, ratio, efficiency, direction
    cdef double k_wearer, b_wearer
    cdef double stop_dorsi_rad, stop_plantar_rad, k_stop, b_stop
    cdef double fric_coulomb_Nm, fric_viscous_Nms
    cdef double theta, omega, t_s, substep_s
    cdef double tau_pf_Nm                   # torque the actuator applies at the ankle, + plantar-flexor
    # driver
    cdef MitRange rng
    cdef MitCommand cmd
    cdef public bint driver_active
    cdef public bint watchdog_tripped
    cdef public double watchdog_trip_s      # when the watchdog last tripped (-1 = never)
    cdef double last_cmd_s, watchdog_s, limp_kd
    cdef double zero_offset_rad             # motor-side encoder offset set by the zero frame
    cdef double tau_motor_Nm, torque_limit_Nm
    cdef double kt_Nm_A, winding_ohm_25C
    cdef public int driver_id
    #: A hardware error the driver reports in every reply (0 none; fault injection).  The
    #: driver's own over-temperature and under-voltage codes come on top (see reply_payload).
    cdef public int error_code
    cdef double overtemp_C, undervoltage_V
    #: Supply voltage [V] (set with :meth:`set_supply_V`).
    cdef readonly double supply_V
    # heat: two nodes, winding and case
    cdef double winding_C, case_C, ambient_C
    cdef double c_winding_J_K, r_winding_case_K_W, c_case_J_K, r_case_ambient_K_W
    cdef double extra_heat_W                # injected heat into the winding
    cdef double extra_case_heat_W           # injected heat into the case (hot surroundings)
    # injected sensor faults (see the set_*_fault methods)
    cdef int encoder_mode, imu_mode, load_mode
    cdef double encoder_offset_motor_rad, encoder_frozen_raw_rad
    cdef double imu_gyro_rad_s, load_constant_N
    cdef bint imu_held_valid
    cdef double imu_held_gyro, imu_held_ax, imu_held_ay
    # sensor node
    cdef double gyro_noise, gyro_bias, accel_noise, load_noise, load_offset
    cdef double gyro_bias_drift, load_offset_drift   # per second of simulated time
    cdef int imu_seq, load_seq, status_seq
    cdef uint64_t rng_state
    # sound-side node: its own noise stream
    cdef double sound_load_noise, sound_gyro_noise
    cdef int sound_seq
    cdef uint64_t sound_rng_state
    #: Net ankle work [J] of the present stride's stance so far (walking strides: from the heel
    #: strike to the toe-off, -torque * d(angle) of the true torque and angle; 0 when standing).
    cdef readonly double stance_work_J

    # ---- methods (bodies in _plant.pyx) ----
    cdef void _take_next(self, double t0) noexcept nogil
    cdef double ref(self, int channel, double phase) noexcept nogil
    cdef double phase_at(self, double t) noexcept nogil
    cdef int _driver_frame(self, const unsigned char* data, int dlc, double now_s) noexcept nogil
    cdef void _settle_driver(self) noexcept nogil
    cdef double encoder_raw(self) noexcept nogil
    cdef double motor_position(self) noexcept nogil
    cdef double motor_velocity(self) noexcept nogil
    cdef void substep(self, double h) noexcept nogil
    cdef bint _advance(self, double t_end_s) noexcept nogil
    cdef double uniform(self) noexcept nogil
    cdef double gauss(self) noexcept nogil
    cdef double sound_gauss(self) noexcept nogil
    cdef int reply_error(self) noexcept nogil
    cdef int _reply_payload(self, unsigned char* out) noexcept nogil
    cdef int _imu_payload(self, unsigned char* out) noexcept nogil
    cdef int _load_payload(self, unsigned char* out) noexcept nogil
    cdef int _sound_payload(self, unsigned char* out) noexcept nogil
    cdef int _status_payload(self, unsigned char* out) noexcept nogil
    cdef void _truth(self, double* row, Py_ssize_t n) noexcept nogil
    # the drive API of a simulated drive (sim/_simdrive.pxd)
    cdef void drive_enable(self, double now_s) noexcept nogil
    cdef void drive_disable(self) noexcept nogil
    cdef void drive_zero(self) noexcept nogil
    cdef bint drive_command(self, const MitCommand* c, double now_s) noexcept nogil
    cdef void drive_protection(self, double watchdog_s, double limp_kd) noexcept nogil
