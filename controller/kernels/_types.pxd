# The fixed records of one tick.  Plain C structs in SI units, shared by the
# estimator, the push-off controller, the safety stage and the tick runner, so
# that nothing on the per-tick path touches a Python object.
#
# Sign conventions (DESIGN.md): ankle angle + = dorsiflexion; ankle torque + =
# plantar-flexor (toe pushed down); ankle power = -torque * d(angle)/dt.
# A timestamp of -1.0 means "never received".

from libc.stdint cimport uint32_t, int32_t


cdef extern from *:
    """
    /* Fault word bits (latched).  Mirrored in controller/kernels/faults.py, with their bounds. */
    #define ANKLE_FAULT_MOTOR_STALE     (1u << 0)   /* driver comms: reply age, send failures, error frames */
    #define ANKLE_FAULT_DRIVER_ERROR    (1u << 1)   /* error code in a driver reply */
    #define ANKLE_FAULT_IMU             (1u << 2)   /* IMU: no frames, stuck-at, out of range, NaN */
    #define ANKLE_FAULT_LOAD            (1u << 3)   /* load cell: no frames, saturated, loaded in swing, NaN */
    #define ANKLE_FAULT_NONFINITE_INPUT (1u << 4)   /* NaN/Inf in a driver value */
    #define ANKLE_FAULT_NONFINITE_CMD   (1u << 5)   /* the controller produced NaN/Inf */
    #define ANKLE_FAULT_OVER_TEMP       (1u << 6)   /* winding model, I2t or driver temperature at the limit */
    #define ANKLE_FAULT_ENCODER         (1u << 7)   /* motor encoder jump, stuck-at, or mismatch with the joint */
    #define ANKLE_FAULT_OVERRUN         (1u << 8)   /* ticks late 3 times running, or one gap > 5 ms */
    #define ANKLE_FAULT_LOW_VOLTAGE     (1u << 9)   /* supply below safety.supply_min_V */
    #define ANKLE_FAULT_PARAMS          (1u << 10)  /* parameter file corrupt at boot: powered mode refused */
    #define ANKLE_FAULT_SENSOR_NODE     (1u << 11)  /* node status flags set, or an impossible supply reading,
                                                       2 status frames running: no reading of that node is trusted */
    /* Faults that only take powered push-off away (the impedance law goes on, events from the
       other sensor); every other fault puts the ankle in the safe state. */
    #define ANKLE_FAULTS_DEGRADING (ANKLE_FAULT_IMU | ANKLE_FAULT_LOAD)

    /* Warning word bits (recomputed every tick, never latched). */
    #define ANKLE_WARN_THERMAL_DERATE  (1u << 0)   /* torque limit derated for temperature */
    #define ANKLE_WARN_THERMAL_ALERT   (1u << 1)   /* winding above thermal.alert_degC */
    #define ANKLE_WARN_SUPPLY_LOW      (1u << 2)   /* supply below safety.supply_warn_V: push-off scaled down */
    #define ANKLE_WARN_SUPPLY_UNKNOWN  (1u << 3)   /* no supply reading: no push-off */
    #define ANKLE_WARN_SUPPLY_IMPLAUSIBLE (1u << 4) /* supply reading the hardware cannot see: counts as unknown */
    #define ANKLE_WARN_FRAMES_LOST     (1u << 5)   /* an IMU or load stream lost over 25 % of its frames in 20 ms */

    /* Where the estimator's phase comes from (GaitState.source). */
    #define GAIT_SOURCE_NONE  0   /* not walking */
    #define GAIT_SOURCE_SHANK 1   /* load events + shank-gyro template match */
    #define GAIT_SOURCE_TIME  2   /* load events + last stride time (IMU lost, or no template yet) */
    #define GAIT_SOURCE_IMU   3   /* load lost: events and phase from the shank gyro alone */

    /* Controller modes. */
    #define ANKLE_MODE_STANDBY 0
    #define ANKLE_MODE_WALK    1
    #define ANKLE_MODE_SAFE    2   /* latched fault: passive spring-damper / hold / damped hold */
    #define ANKLE_MODE_PASSIVE 3   /* impedance law without powered push-off (sensor fault, or chosen) */
    """
    uint32_t ANKLE_FAULT_MOTOR_STALE
    uint32_t ANKLE_FAULT_DRIVER_ERROR
    uint32_t ANKLE_FAULT_IMU
    uint32_t ANKLE_FAULT_LOAD
    uint32_t ANKLE_FAULT_NONFINITE_INPUT
    uint32_t ANKLE_FAULT_NONFINITE_CMD
    uint32_t ANKLE_FAULT_OVER_TEMP
    uint32_t ANKLE_FAULT_ENCODER
    uint32_t ANKLE_FAULT_OVERRUN
    uint32_t ANKLE_FAULT_LOW_VOLTAGE
    uint32_t ANKLE_FAULT_PARAMS
    uint32_t ANKLE_FAULT_SENSOR_NODE
    uint32_t ANKLE_FAULTS_DEGRADING
    uint32_t ANKLE_WARN_THERMAL_DERATE
    uint32_t ANKLE_WARN_THERMAL_ALERT
    uint32_t ANKLE_WARN_SUPPLY_LOW
    uint32_t ANKLE_WARN_SUPPLY_UNKNOWN
    uint32_t ANKLE_WARN_SUPPLY_IMPLAUSIBLE
    uint32_t ANKLE_WARN_FRAMES_LOST
    int GAIT_SOURCE_NONE
    int GAIT_SOURCE_SHANK
    int GAIT_SOURCE_TIME
    int GAIT_SOURCE_IMU
    int ANKLE_MODE_STANDBY
    int ANKLE_MODE_WALK
    int ANKLE_MODE_SAFE
    int ANKLE_MODE_PASSIVE


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
    int32_t source               # GAIT_SOURCE_*: what the phase comes from this tick
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
