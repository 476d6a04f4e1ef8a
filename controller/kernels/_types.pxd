# The fixed records of one tick.  Plain C structs in SI units, shared by the
# estimator, the push-off controller, the safety stage and the tick runner, so
# that nothing on the per-tick path touches a Python object.
#
# Sign conventions (DESIGN.md): ankle angle + = dorsiflexion; ankle torque + =
# plantar-flexor (toe pushed down); ankle power = -torque * d(angle)/dt.
# A timestamp of -1.0 means "never received".

from libc.stdint cimport uint32_t, int32_t
from libc.math cimport NAN


# The constants of these records (fault and warning bits, modes, GaitState.source values,
# telemetry indices) are declared in Python (controller/kernels/faults.py, telemetry.py) and
# generated into controller/kernels/_tables.pxd when the kernels are built: cimport them there.


ctypedef struct Inputs:
    # Sensor node (shank IMU, pylon load cell, joint encoder), decoded to SI.
    double shank_gyro_rad_s      # sagittal shank angular velocity, + ankle forward of knee
    double accel_x_m_s2          # shank-frame accelerations
    double accel_y_m_s2
    double load_N                # axial pylon compression, + compression
    double ankle_angle_rad       # joint encoder, + dorsiflexion
    double supply_V              # sensor-node supply voltage
    double imu_rx_s              # host time the last IMU frame arrived
    double load_rx_s             # host time the last load/encoder frame arrived
    double node_status_rx_s
    int32_t imu_seq
    int32_t load_seq
    int32_t node_flags
    # Stream bookkeeping of the tick (cumulative, wrapping): frames accepted, frames out of
    # sequence (same seq as the last, a step back, or a jump ahead the time since cannot
    # explain), frames really lost (gaps the time since does explain).
    uint32_t imu_frames
    uint32_t imu_disorder
    uint32_t imu_lost
    uint32_t load_frames
    uint32_t load_disorder
    uint32_t load_lost
    # Motor driver reply, converted to the ankle side of the transmission.
    double motor_angle_rad       # ankle angle from the motor encoder, + dorsiflexion
    double motor_vel_rad_s
    double motor_torque_Nm       # measured ankle torque, + plantar-flexor
    double motor_temp_C
    int32_t motor_error          # driver error code, 0 = none
    double motor_rx_s            # host time the last reply arrived
    double drive_supply_V        # the drive's own supply (DC bus) reading; NaN: it gives none
    # Link health, written by the runner.
    int32_t send_failures        # consecutive failed command sends
    int32_t bus_error_ticks      # consecutive ticks that brought CAN error frames
    # Written by the safety monitor before the estimator runs: 0 = do not use this sensor.
    int32_t imu_valid
    int32_t load_valid


ctypedef struct GaitState:
    double phase                 # 0..1 from heel strike; -1 when not walking
    int32_t heel_strike          # 1 on the tick a heel strike is detected
    int32_t toe_off              # 1 on the tick a toe-off is detected
    int32_t stance               # 1 while the foot is loaded
    int32_t walking              # 1 once two plausible strides were seen
    double stride_time_s         # last complete stride
    double stance_time_s         # last complete stance
    double cadence_steps_min     # 120 / stride_time_s while walking, else 0
    double t_heel_strike_s       # time of the last heel strike (-1 = none)
    double t_toe_off_s
    double confidence            # 0..1
    int32_t standing             # 1 while the wearer stands (loaded, shank still): no phase
    int32_t source               # GAIT_SOURCE_* (_tables.pxd): what the phase comes from this tick
    double stride_estimate_s     # the stride time the phase divides by this tick


ctypedef struct Command:
    # Ankle-side impedance command: torque = torque_ff + kp*(angle - p_des) + kd*(vel - v_des).
    # Plantar-flexor torque (+) lowers the angle, so this is a restoring spring-damper
    # about p_des in the ankle's own sign convention.  Normal walking sends
    # torque only (kp = kd = 0); the safe states hand a spring-damper to the driver,
    # which runs it on its own encoder even if the host stops.
    double torque_ff_Nm
    double p_des_rad
    double v_des_rad_s
    double kp_Nm_rad
    double kd_Nms_rad
    double torque_expected_Nm    # total torque the command asks for at the present state
    double pushoff_Nm            # the powered push-off share of torque_ff_Nm (the safety stage
                                 # scales it down first: low battery, sensor faults, passive mode)


cdef inline void reset_inputs(Inputs* inp) noexcept nogil:
    """The inputs before any frame has arrived: readings zero (NaN where a reading is unknown),
    every arrival time -1 (never), counters 0, neither sensor valid.  The tick starts from this,
    and so does ``ankle replay``'s kernel."""
    inp.shank_gyro_rad_s = 0.0
    inp.accel_x_m_s2 = 0.0
    inp.accel_y_m_s2 = 0.0
    inp.load_N = 0.0
    inp.ankle_angle_rad = 0.0
    inp.supply_V = NAN
    inp.imu_rx_s = -1.0
    inp.load_rx_s = -1.0
    inp.node_status_rx_s = -1.0
    inp.imu_seq = -1
    inp.load_seq = -1
    inp.node_flags = 0
    inp.imu_frames = inp.imu_disorder = inp.imu_lost = 0
    inp.load_frames = inp.load_disorder = inp.load_lost = 0
    inp.motor_angle_rad = 0.0
    inp.motor_vel_rad_s = 0.0
    inp.motor_torque_Nm = 0.0
    inp.motor_temp_C = NAN
    inp.motor_error = 0
    inp.motor_rx_s = -1.0
    inp.drive_supply_V = NAN
    inp.send_failures = 0
    inp.bus_error_ticks = 0
    inp.imu_valid = 0
    inp.load_valid = 0
