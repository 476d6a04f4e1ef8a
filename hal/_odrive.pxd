# ODrive CAN Simple (firmware 0.5.x and 0.6.x): the protocol's one definition (implemented in
# _odrive.pyx).  Arbitration id = node_id << 5 | cmd_id (standard 11-bit ids, node 0..63); every
# multi-byte field little-endian; floats IEEE-754 binary32.  Layouts: the DBCs ODrive Robotics
# publishes (odrive-cansimple-0.5.6.dbc, odrive-cansimple-0.6.10.dbc; docs/drivers_odrive_facts.md).
# The cdef functions are per-tick: noexcept nogil, no Python objects, no allocation.
from controller.kernels._types cimport Inputs, Command
from hal._link cimport CanFrame
from hal._codec cimport DriveCodec

cdef enum:
    ODRIVE_NODE_ID_MAX = 0x3F
    ODRIVE_CMD_BITS = 5
    ODRIVE_CMD_MASK = 0x1F
    # command ids (both firmwares unless noted)
    ODRIVE_CMD_HEARTBEAT = 0x01
    ODRIVE_CMD_ESTOP = 0x02
    ODRIVE_CMD_GET_ERROR = 0x03             # 0.6 Get_Error; 0.5 Get_Motor_Error
    ODRIVE_CMD_SET_AXIS_STATE = 0x07
    ODRIVE_CMD_GET_ENCODER_ESTIMATES = 0x09
    ODRIVE_CMD_SET_CONTROLLER_MODE = 0x0B
    ODRIVE_CMD_SET_INPUT_TORQUE = 0x0E
    ODRIVE_CMD_GET_IQ = 0x14
    ODRIVE_CMD_GET_TEMPERATURE = 0x15       # 0.6 only (0.5: Get_Sensorless_Estimates)
    ODRIVE_CMD_GET_BUS_VOLTAGE_CURRENT = 0x17
    ODRIVE_CMD_CLEAR_ERRORS = 0x18
    ODRIVE_CMD_GET_TORQUES = 0x1C           # 0.6 only (0.5: Get_ADC_Voltage)
    # firmware families
    ODRIVE_FW_05 = 5
    ODRIVE_FW_06 = 6
    # Axis states (both), control and input modes (both)
    ODRIVE_STATE_IDLE = 1
    ODRIVE_STATE_CLOSED_LOOP_CONTROL = 8
    ODRIVE_CONTROL_MODE_TORQUE = 1
    ODRIVE_INPUT_MODE_PASSTHROUGH = 1
    # Axis_Error bits the set-up and the simulated drive need (they differ between firmwares)
    ODRIVE05_AXIS_ERROR_MOTOR_FAILED = 0x40
    ODRIVE05_AXIS_ERROR_ENCODER_FAILED = 0x100
    ODRIVE05_AXIS_ERROR_CONTROLLER_FAILED = 0x200
    ODRIVE05_AXIS_ERROR_WATCHDOG_TIMER_EXPIRED = 0x800
    ODRIVE05_AXIS_ERROR_ESTOP_REQUESTED = 0x4000
    ODRIVE05_AXIS_ERROR_OVER_TEMP = 0x40000
    ODRIVE06_AXIS_ERROR_SYSTEM_LEVEL = 0x2
    ODRIVE06_AXIS_ERROR_MISSING_ESTIMATE = 0x8
    ODRIVE06_AXIS_ERROR_DRV_FAULT = 0x20
    ODRIVE06_AXIS_ERROR_DC_BUS_OVER_VOLTAGE = 0x100
    ODRIVE06_AXIS_ERROR_DC_BUS_UNDER_VOLTAGE = 0x200
    ODRIVE06_AXIS_ERROR_CURRENT_LIMIT_VIOLATION = 0x1000
    ODRIVE06_AXIS_ERROR_INVERTER_OVER_TEMP = 0x4000
    ODRIVE06_AXIS_ERROR_WATCHDOG_TIMER_EXPIRED = 0x1000000
    ODRIVE06_AXIS_ERROR_ESTOP_REQUESTED = 0x2000000
    # inp.motor_error: the axis error bits 0..28 and 30 as the drive sends them, and this bit
    # (unused by both firmwares' Axis_Error) when the axis is not in CLOSED_LOOP_CONTROL or an
    # undocumented bit 29 / 31 is set: so the code is an int32 > 0 whenever the drive is not running.
    ODRIVE_CODE_NOT_RUNNING = 0x20000000

ctypedef struct OdriveHeartbeat:
    unsigned int axis_error     # 0.6: active_errors | disarm_reason; 0.5: axis.error
    int axis_state              # ODRIVE_STATE_*
    int procedure_result        # 0.6 only (0 on 0.5)
    int motor_error_flag        # 0.5 only (bits 40 / 48 / 56; 0 on 0.6)
    int encoder_error_flag
    int controller_error_flag
    int trajectory_done         # 0.5: bit 63; 0.6: bit 48

# the arbitration id of command ``cmd`` of node ``node_id``
cdef unsigned int odrive_can_id(unsigned int node_id, unsigned int cmd) noexcept nogil

# --- host -> drive.  Each returns the DLC written into out (the DBC's), or -1 (out untouched)
cdef int odrive_pack_set_input_torque(unsigned char* out, double torque_Nm) noexcept nogil    # -1: non-finite or beyond binary32
cdef int odrive_pack_set_axis_state(unsigned char* out, unsigned int state) noexcept nogil
cdef int odrive_pack_set_controller_mode(unsigned char* out, unsigned int control_mode,
                                         unsigned int input_mode) noexcept nogil
cdef int odrive_pack_clear_errors(unsigned char* out, int firmware, int identify) noexcept nogil  # 0.5: DLC 0; 0.6: DLC 1
# --- drive -> host.  Each returns 0, or -1 on a wrong length
cdef int odrive_unpack_heartbeat(const unsigned char* data, int dlc, int firmware, OdriveHeartbeat* hb) noexcept nogil
# two binary32 fields, bytes 0..3 -> lo and 4..7 -> hi: Get_Encoder_Estimates (pos [turns], vel
# [turns/s]), Get_Iq (setpoint, measured [A]), Get_Temperature (FET, motor [degC]),
# Get_Bus_Voltage_Current (voltage [V], current [A]), Get_Torques (target, estimate [N*m])
cdef int odrive_unpack_f32_pair(const unsigned char* data, int dlc, double* lo, double* hi) noexcept nogil
# two u32 fields: 0.6 Get_Error (active_errors, disarm_reason); 0.5 Get_Motor_Error (u64: lo, hi)
cdef int odrive_unpack_u32_pair(const unsigned char* data, int dlc, unsigned int* lo, unsigned int* hi) noexcept nogil
# --- the drive's side (the simulated drive)
cdef int odrive_pack_heartbeat(unsigned char* out, int firmware, const OdriveHeartbeat* hb) noexcept nogil
cdef int odrive_pack_f32_pair(unsigned char* out, double lo, double hi) noexcept nogil      # NaN passes through (ODrive sends NaN)
cdef int odrive_pack_u32_pair(unsigned char* out, unsigned int lo, unsigned int hi) noexcept nogil
cdef int odrive_unpack_u32(const unsigned char* data, int dlc, unsigned int* v) noexcept nogil    # bytes 0..3; -1 if dlc < 4
cdef int odrive_unpack_f32(const unsigned char* data, int dlc, double* v) noexcept nogil
# inp.motor_error for a heartbeat (ODRIVE_CODE_NOT_RUNNING folded in)
cdef int odrive_heartbeat_code(const OdriveHeartbeat* hb, int firmware) noexcept nogil


cdef class OdriveCodec(DriveCodec):
    cdef readonly int node_id
    cdef readonly int firmware              # ODRIVE_FW_05 / ODRIVE_FW_06
    cdef readonly double torque_constant_Nm_A   # Iq -> torque (firmware 0.5: no Get_Torques)
    cdef readonly bint torque_from_iq
    cdef int heartbeat_code, error_code     # the last heartbeat's and Get_Error's motor_error
