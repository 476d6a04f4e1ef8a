# cython: language_level=3
"""ODrive CAN Simple, firmware 0.5.x and 0.6.x: the frames (declared in _odrive.pxd) and the
per-tick codec :class:`OdriveCodec`.

The protocol: arbitration id ``node_id << 5 | cmd_id``, little-endian fields, binary32 floats;
positions in turns, velocities in turns/s, torque in N*m at the motor shaft (the ODrive's own
``torque_constant`` turns it into current).  The two firmware families share the command ids the
controller uses but not every layout: the heartbeat (0.5: axis error, state, three error flags;
0.6: axis error, state, procedure result), Clear_Errors (0.5 DLC 0, 0.6 DLC 1), and ids 0x03,
0x15, 0x1C (0.6 Get_Error / Get_Temperature / Get_Torques; 0.5 Get_Motor_Error /
Get_Sensorless_Estimates / Get_ADC_Voltage).  Sources: docs/drivers_odrive_facts.md.

The cdef functions are the per-tick codec: noexcept nogil, no Python objects, no allocation.
The def functions at the end are for set-up code, tools and tests; they validate and raise.
"""
from libc.math cimport isfinite, fabs, NAN, M_PI
from libc.string cimport memcpy
from libc.stdint cimport uint32_t
from hal._codec cimport (DRIVE_READS_ANGLE, DRIVE_READS_VELOCITY, DRIVE_READS_TORQUE,
                         DRIVE_READS_TEMPERATURE, DRIVE_READS_ERROR, DRIVE_READS_SUPPLY,
                         DRIVE_MAX_RX_IDS)

#: turns -> rad, exactly 2 pi (the ODrive's unit of angle is one turn of its encoder)
cdef double _TWO_PI = 2.0 * M_PI
#: the largest finite binary32: a torque beyond it would go on the wire as infinity
cdef double _F32_MAX = 3.4028234663852886e38


# --- field access ----------------------------------------------------------------------------

cdef inline void _put_u32(unsigned char* out, uint32_t v) noexcept nogil:
    out[0] = v & 0xFF
    out[1] = (v >> 8) & 0xFF
    out[2] = (v >> 16) & 0xFF
    out[3] = (v >> 24) & 0xFF


cdef inline uint32_t _get_u32(const unsigned char* d) noexcept nogil:
    return (<uint32_t>d[0] | (<uint32_t>d[1] << 8) | (<uint32_t>d[2] << 16)
            | (<uint32_t>d[3] << 24))


cdef inline void _put_f32(unsigned char* out, double x) noexcept nogil:
    # binary32 bit pattern as an integer, then little-endian bytes (host byte order free)
    cdef float f = <float>x
    cdef uint32_t u
    memcpy(&u, &f, 4)
    _put_u32(out, u)


cdef inline double _get_f32(const unsigned char* d) noexcept nogil:
    cdef uint32_t u = _get_u32(d)
    cdef float f
    memcpy(&f, &u, 4)
    return <double>f


cdef inline void _zero(unsigned char* out, int n) noexcept nogil:
    cdef int i
    for i in range(n):
        out[i] = 0


# --- the protocol (declared in _odrive.pxd) ----------------------------------------------------

cdef unsigned int odrive_can_id(unsigned int node_id, unsigned int cmd) noexcept nogil:
    return ((node_id & ODRIVE_NODE_ID_MAX) << ODRIVE_CMD_BITS) | (cmd & ODRIVE_CMD_MASK)


cdef int odrive_pack_set_input_torque(unsigned char* out, double torque_Nm) noexcept nogil:
    if not isfinite(torque_Nm) or fabs(torque_Nm) > _F32_MAX:
        return -1
    _put_f32(out, torque_Nm)
    _zero(out + 4, 4)
    return 8


cdef int odrive_pack_set_axis_state(unsigned char* out, unsigned int state) noexcept nogil:
    _put_u32(out, state)
    _zero(out + 4, 4)
    return 8


cdef int odrive_pack_set_controller_mode(unsigned char* out, unsigned int control_mode,
                                         unsigned int input_mode) noexcept nogil:
    _put_u32(out, control_mode)
    _put_u32(out + 4, input_mode)
    return 8


cdef int odrive_pack_clear_errors(unsigned char* out, int firmware, int identify) noexcept nogil:
    if firmware == ODRIVE_FW_05:
        return 0
    out[0] = 1 if identify else 0
    return 1


cdef int odrive_unpack_heartbeat(const unsigned char* data, int dlc, int firmware,
                                 OdriveHeartbeat* hb) noexcept nogil:
    if dlc < 8:
        return -1
    hb.axis_error = _get_u32(data)
    hb.axis_state = data[4]
    if firmware == ODRIVE_FW_05:
        hb.procedure_result = 0
        hb.motor_error_flag = data[5] & 1
        hb.encoder_error_flag = data[6] & 1
        hb.controller_error_flag = data[7] & 1
        hb.trajectory_done = (data[7] >> 7) & 1
    else:
        hb.procedure_result = data[5]
        hb.motor_error_flag = hb.encoder_error_flag = hb.controller_error_flag = 0
        hb.trajectory_done = data[6] & 1
    return 0


cdef int odrive_pack_heartbeat(unsigned char* out, int firmware, const OdriveHeartbeat* hb) noexcept nogil:
    _put_u32(out, hb.axis_error)
    out[4] = hb.axis_state & 0xFF
    if firmware == ODRIVE_FW_05:
        out[5] = 1 if hb.motor_error_flag else 0
        out[6] = 1 if hb.encoder_error_flag else 0
        out[7] = (1 if hb.controller_error_flag else 0) | (0x80 if hb.trajectory_done else 0)
    else:
        out[5] = hb.procedure_result & 0xFF
        out[6] = 1 if hb.trajectory_done else 0
        out[7] = 0
    return 8


cdef int odrive_unpack_f32_pair(const unsigned char* data, int dlc, double* lo, double* hi) noexcept nogil:
    if dlc < 8:
        return -1
    lo[0] = _get_f32(data)
    hi[0] = _get_f32(data + 4)
    return 0


cdef int odrive_pack_f32_pair(unsigned char* out, double lo, double hi) noexcept nogil:
    _put_f32(out, lo)
    _put_f32(out + 4, hi)
    return 8


cdef int odrive_unpack_u32_pair(const unsigned char* data, int dlc, unsigned int* lo,
                                unsigned int* hi) noexcept nogil:
    if dlc < 8:
        return -1
    lo[0] = _get_u32(data)
    hi[0] = _get_u32(data + 4)
    return 0


cdef int odrive_pack_u32_pair(unsigned char* out, unsigned int lo, unsigned int hi) noexcept nogil:
    _put_u32(out, lo)
    _put_u32(out + 4, hi)
    return 8


cdef int odrive_unpack_u32(const unsigned char* data, int dlc, unsigned int* v) noexcept nogil:
    if dlc < 4:
        return -1
    v[0] = _get_u32(data)
    return 0


cdef int odrive_unpack_f32(const unsigned char* data, int dlc, double* v) noexcept nogil:
    if dlc < 4:
        return -1
    v[0] = _get_f32(data)
    return 0


cdef inline int _error_code(unsigned int e) noexcept nogil:
    # the axis error as an int32 >= 0: bits 0..28 and 30 as sent; bits 29 and 31 (no meaning in
    # either firmware) fold into ODRIVE_CODE_NOT_RUNNING, so a set bit never reads as 0
    cdef int code = <int>(e & 0x5FFFFFFFu)
    if e & 0xA0000000u:
        code |= ODRIVE_CODE_NOT_RUNNING
    return code


cdef int odrive_heartbeat_code(const OdriveHeartbeat* hb, int firmware) noexcept nogil:
    cdef unsigned int e = hb.axis_error
    cdef int code
    if firmware == ODRIVE_FW_05:
        # a motor / encoder / controller error the axis has not (yet) disarmed for still counts
        if hb.motor_error_flag:
            e |= ODRIVE05_AXIS_ERROR_MOTOR_FAILED
        if hb.encoder_error_flag:
            e |= ODRIVE05_AXIS_ERROR_ENCODER_FAILED
        if hb.controller_error_flag:
            e |= ODRIVE05_AXIS_ERROR_CONTROLLER_FAILED
    code = _error_code(e)
    if hb.axis_state != ODRIVE_STATE_CLOSED_LOOP_CONTROL:
        code |= ODRIVE_CODE_NOT_RUNNING
    return code


# --- the per-tick codec ---------------------------------------------------------------------------

cdef class OdriveCodec(DriveCodec):
    """An ODrive axis over CAN Simple, torque only (``impedance`` False: the safe states'
    spring-damper is the host's, and the axis watchdog disarms the drive if the host stops).

    One Set_Input_Torque per tick on ``node_id << 5 | 0x0E``.  Decoded: Get_Encoder_Estimates
    (angle, velocity, ``motor_rx_s``), Get_Torques (0.6; torque estimate) or Get_Iq (0.5;
    Iq_measured x ``torque_constant_Nm_A``), Get_Temperature (0.6; the higher finite of FET and
    motor thermistor), Get_Bus_Voltage_Current (``drive_supply_V``), Heartbeat (axis error, and
    any state but CLOSED_LOOP_CONTROL) and Get_Error (0.6) / Get_Motor_Error (0.5) into
    ``motor_error``.  Build it with :func:`hal.odrive.odrive_codec` from a configured
    :class:`hal.odrive.OdriveDriver`.

    ``firmware``: "0.5" or "0.6".  ``torque_limit_Nm``: the most torque a command carries (motor
    shaft; commands beyond are clamped).  ``velocity_limit_rad_s``: the drive's velocity limit.
    ``watchdog_s``: the axis watchdog the set-up checked.  ``torque_constant_Nm_A``: the motor's
    (needed for firmware 0.5, whose torque reading is Iq).
    """

    def __init__(self, int node_id, str firmware, double torque_limit_Nm, double velocity_limit_rad_s,
                 double watchdog_s, double torque_constant_Nm_A=NAN):
        cdef int i, n = 0
        if not 0 <= node_id <= ODRIVE_NODE_ID_MAX:
            raise ValueError(f"node_id: must be 0..{ODRIVE_NODE_ID_MAX} (CAN Simple, standard ids), got {node_id}")
        if firmware not in FIRMWARES:
            raise ValueError(f"firmware: must be one of {', '.join(FIRMWARES)}, got {firmware!r}")
        if not (isfinite(torque_limit_Nm) and torque_limit_Nm > 0):
            raise ValueError(f"torque_limit_Nm: must be finite and > 0, got {torque_limit_Nm!r}")
        if not (isfinite(velocity_limit_rad_s) and velocity_limit_rad_s > 0):
            raise ValueError(f"velocity_limit_rad_s: must be finite and > 0, got {velocity_limit_rad_s!r}")
        if not (isfinite(watchdog_s) and watchdog_s > 0):
            raise ValueError(f"watchdog_s: must be finite and > 0, got {watchdog_s!r}")
        self.node_id = node_id
        self.firmware = FIRMWARES[firmware]
        self.torque_from_iq = self.firmware == ODRIVE_FW_05
        if self.torque_from_iq and not (isfinite(torque_constant_Nm_A) and torque_constant_Nm_A > 0):
            raise ValueError(f"torque_constant_Nm_A: firmware 0.5 reads torque as Iq, so it needs the "
                             f"motor's torque constant (finite, > 0), got {torque_constant_Nm_A!r}")
        self.torque_constant_Nm_A = torque_constant_Nm_A
        self.name = "odrive"
        self.impedance = False
        self.readings = (DRIVE_READS_ANGLE | DRIVE_READS_VELOCITY | DRIVE_READS_TORQUE
                         | DRIVE_READS_ERROR | DRIVE_READS_SUPPLY)
        if self.firmware == ODRIVE_FW_06:        # 0.5 CAN Simple has no temperature message
            self.readings |= DRIVE_READS_TEMPERATURE
        self.watchdog_s = watchdog_s
        self.torque_limit_Nm = torque_limit_Nm
        self.velocity_limit_rad_s = velocity_limit_rad_s
        self.torque_range_name = "ODrive torque limit"
        self.tx_id = odrive_can_id(node_id, ODRIVE_CMD_SET_INPUT_TORQUE)
        cmds = [ODRIVE_CMD_HEARTBEAT, ODRIVE_CMD_GET_ERROR, ODRIVE_CMD_GET_ENCODER_ESTIMATES,
                ODRIVE_CMD_GET_BUS_VOLTAGE_CURRENT]
        if self.firmware == ODRIVE_FW_06:
            cmds += [ODRIVE_CMD_GET_TORQUES, ODRIVE_CMD_GET_TEMPERATURE]
        else:
            cmds += [ODRIVE_CMD_GET_IQ]
        for i in range(len(cmds)):
            self._rx_ids[i] = odrive_can_id(node_id, cmds[i])
        self.n_rx_ids = len(cmds)
        self.heartbeat_code = 0
        self.error_code = 0

    @property
    def firmware_name(self):
        """"0.5" or "0.6"."""
        return "0.5" if self.firmware == ODRIVE_FW_05 else "0.6"

    cdef int encode(self, const Command* cmd, CanFrame* out, int max_frames) noexcept nogil:
        cdef double t
        if max_frames < 1:
            return 0
        # the whole ankle torque (torque only: kp = kd = 0 here) at the drive's shaft
        t = self.motor_torque_Nm(cmd)
        if not isfinite(t):
            return 0                    # send nothing: the axis watchdog takes over
        # the last line: the safety stage already bounds it
        if t > self.torque_limit_Nm:
            t = self.torque_limit_Nm
        elif t < -self.torque_limit_Nm:
            t = -self.torque_limit_Nm
        if odrive_pack_set_input_torque(out[0].data, t) != 8:
            return 0
        out[0].can_id = self.tx_id
        out[0].dlc = 8
        out[0].flags = 0
        return 1

    cdef bint decode(self, unsigned int can_id, const unsigned char* data, int dlc, double now_s,
                     Inputs* inp) noexcept nogil:
        cdef unsigned int cmd = can_id & ODRIVE_CMD_MASK
        cdef double a, b
        cdef unsigned int u, v
        cdef OdriveHeartbeat hb
        if (can_id >> ODRIVE_CMD_BITS) != <unsigned int>self.node_id or can_id > 0x7FF:
            return False
        if cmd == ODRIVE_CMD_GET_ENCODER_ESTIMATES:
            if odrive_unpack_f32_pair(data, dlc, &a, &b) != 0:
                return False
            inp.motor_angle_rad = a * _TWO_PI / self.motor_per_ankle_rad - self.motor_zero_rad
            inp.motor_vel_rad_s = b * _TWO_PI / self.motor_per_ankle_rad
            inp.motor_rx_s = now_s      # the one frame with position AND velocity
            return True
        if cmd == ODRIVE_CMD_HEARTBEAT:
            if odrive_unpack_heartbeat(data, dlc, self.firmware, &hb) != 0:
                return False
            self.heartbeat_code = odrive_heartbeat_code(&hb, self.firmware)
            inp.motor_error = self.heartbeat_code if self.heartbeat_code else self.error_code
            return True
        if cmd == ODRIVE_CMD_GET_ERROR:
            if odrive_unpack_u32_pair(data, dlc, &u, &v) != 0:
                return False
            # 0.6: active_errors | disarm_reason; 0.5: the motor error (u64), as MOTOR_FAILED
            if self.firmware == ODRIVE_FW_06:
                self.error_code = _error_code(u | v)
            else:
                self.error_code = ODRIVE05_AXIS_ERROR_MOTOR_FAILED if (u | v) else 0
            inp.motor_error = self.heartbeat_code if self.heartbeat_code else self.error_code
            return True
        if cmd == ODRIVE_CMD_GET_BUS_VOLTAGE_CURRENT:
            if odrive_unpack_f32_pair(data, dlc, &a, &b) != 0:
                return False
            inp.drive_supply_V = a if isfinite(a) else NAN
            return True
        if self.firmware == ODRIVE_FW_06:
            if cmd == ODRIVE_CMD_GET_TORQUES:
                if odrive_unpack_f32_pair(data, dlc, &a, &b) != 0 or not isfinite(b):
                    return False
                # + motor torque turns the drive positive; plantar-flexor torque is + at the ankle
                inp.motor_torque_Nm = -self.direction * self.ratio * self.efficiency * b
                return True
            if cmd == ODRIVE_CMD_GET_TEMPERATURE:
                if odrive_unpack_f32_pair(data, dlc, &a, &b) != 0:
                    return False
                # the hotter of the two sensors the drive has (NaN: thermistor not configured)
                if isfinite(a) and isfinite(b):
                    inp.motor_temp_C = a if a > b else b
                elif isfinite(a):
                    inp.motor_temp_C = a
                elif isfinite(b):
                    inp.motor_temp_C = b
                else:
                    inp.motor_temp_C = NAN
                return True
        elif cmd == ODRIVE_CMD_GET_IQ:
            if odrive_unpack_f32_pair(data, dlc, &a, &b) != 0 or not isfinite(b):
                return False
            inp.motor_torque_Nm = -self.direction * self.ratio * self.efficiency * (b * self.torque_constant_Nm_A)
            return True
        return False

    def describe_error(self, int code):
        """One line for ``inp.motor_error`` ``code`` (console, logs)."""
        return describe_error(code, self.firmware_name)

    def decode_supply(self, unsigned int can_id, data, double now_s=0.0):
        """The drive_supply_V a frame gives (NaN when none), for tools and tests (the base's
        ``decode_frame`` predates drive_supply_V)."""
        cdef bytes b = bytes(data)
        cdef Inputs inp
        inp.drive_supply_V = NAN
        if len(b) == 0 or len(b) > 8 or not self.listens(can_id):
            return NAN
        self.decode(can_id, b, len(b), now_s, &inp)
        return inp.drive_supply_V


# --- Python side: set-up code, tools, tests (not for the tick) ------------------------------------

FIRMWARES = {"0.5": ODRIVE_FW_05, "0.6": ODRIVE_FW_06}
NODE_ID_MAX = ODRIVE_NODE_ID_MAX
CODE_NOT_RUNNING = ODRIVE_CODE_NOT_RUNNING

CMD = {"heartbeat": ODRIVE_CMD_HEARTBEAT, "estop": ODRIVE_CMD_ESTOP, "get_error": ODRIVE_CMD_GET_ERROR,
       "set_axis_state": ODRIVE_CMD_SET_AXIS_STATE,
       "get_encoder_estimates": ODRIVE_CMD_GET_ENCODER_ESTIMATES,
       "set_controller_mode": ODRIVE_CMD_SET_CONTROLLER_MODE,
       "set_input_torque": ODRIVE_CMD_SET_INPUT_TORQUE, "get_iq": ODRIVE_CMD_GET_IQ,
       "get_temperature": ODRIVE_CMD_GET_TEMPERATURE,
       "get_bus_voltage_current": ODRIVE_CMD_GET_BUS_VOLTAGE_CURRENT,
       "clear_errors": ODRIVE_CMD_CLEAR_ERRORS, "get_torques": ODRIVE_CMD_GET_TORQUES}
STATE_IDLE = ODRIVE_STATE_IDLE
STATE_CLOSED_LOOP_CONTROL = ODRIVE_STATE_CLOSED_LOOP_CONTROL
CONTROL_MODE_TORQUE = ODRIVE_CONTROL_MODE_TORQUE
INPUT_MODE_PASSTHROUGH = ODRIVE_INPUT_MODE_PASSTHROUGH

#: Axis_Error bit -> name, per firmware (the DBCs' value tables)
AXIS_ERRORS = {
    "0.5": {0x1: "INVALID_STATE", 0x40: "MOTOR_FAILED", 0x80: "SENSORLESS_ESTIMATOR_FAILED",
            0x100: "ENCODER_FAILED", 0x200: "CONTROLLER_FAILED", 0x800: "WATCHDOG_TIMER_EXPIRED",
            0x1000: "MIN_ENDSTOP_PRESSED", 0x2000: "MAX_ENDSTOP_PRESSED", 0x4000: "ESTOP_REQUESTED",
            0x20000: "HOMING_WITHOUT_ENDSTOP", 0x40000: "OVER_TEMP", 0x80000: "UNKNOWN_POSITION"},
    "0.6": {0x1: "INITIALIZING", 0x2: "SYSTEM_LEVEL", 0x4: "TIMING_ERROR", 0x8: "MISSING_ESTIMATE",
            0x10: "BAD_CONFIG", 0x20: "DRV_FAULT", 0x40: "MISSING_INPUT", 0x100: "DC_BUS_OVER_VOLTAGE",
            0x200: "DC_BUS_UNDER_VOLTAGE", 0x400: "DC_BUS_OVER_CURRENT",
            0x800: "DC_BUS_OVER_REGEN_CURRENT", 0x1000: "CURRENT_LIMIT_VIOLATION",
            0x2000: "MOTOR_OVER_TEMP", 0x4000: "INVERTER_OVER_TEMP", 0x8000: "VELOCITY_LIMIT_VIOLATION",
            0x10000: "POSITION_LIMIT_VIOLATION", 0x1000000: "WATCHDOG_TIMER_EXPIRED",
            0x2000000: "ESTOP_REQUESTED", 0x4000000: "SPINOUT_DETECTED",
            0x8000000: "BRAKE_RESISTOR_DISARMED", 0x10000000: "THERMISTOR_DISCONNECTED",
            0x40000000: "CALIBRATION_ERROR"},
}
AXIS_STATES = {0: "UNDEFINED", 1: "IDLE", 2: "STARTUP_SEQUENCE", 3: "FULL_CALIBRATION_SEQUENCE",
               4: "MOTOR_CALIBRATION", 5: "SENSORLESS_CONTROL", 6: "ENCODER_INDEX_SEARCH",
               7: "ENCODER_OFFSET_CALIBRATION", 8: "CLOSED_LOOP_CONTROL", 9: "LOCKIN_SPIN",
               10: "ENCODER_DIR_FIND", 11: "HOMING", 12: "ENCODER_HALL_POLARITY_CALIBRATION",
               13: "ENCODER_HALL_PHASE_CALIBRATION", 14: "ANTICOGGING_CALIBRATION"}


def _fw(str firmware):
    if firmware not in FIRMWARES:
        raise ValueError(f"firmware: must be one of {', '.join(FIRMWARES)}, got {firmware!r}")
    return FIRMWARES[firmware]


def axis_error_names(unsigned int bits, str firmware):
    """The names of the Axis_Error bits set in ``bits`` (unknown bits as hex)."""
    table = AXIS_ERRORS[firmware] if firmware in AXIS_ERRORS else _fw(firmware)
    names = [name for bit, name in table.items() if bits & bit]
    rest = bits & ~sum(table)
    if rest:
        names.append(f"0x{rest:X}")
    return names


def describe_error(int code, str firmware):
    """One line for an ``inp.motor_error`` code of an ODrive on ``firmware``."""
    _fw(firmware)
    if code == 0:
        return "none"
    if code < 0:
        return f"invalid ODrive error code {code}"
    parts = axis_error_names(code & ~ODRIVE_CODE_NOT_RUNNING, firmware)
    if code & ODRIVE_CODE_NOT_RUNNING:
        parts.append("axis not in CLOSED_LOOP_CONTROL")
    return f"ODrive axis error: {', '.join(parts)}"


def can_id(int node_id, int cmd):
    """The arbitration id of ``cmd`` on node ``node_id`` (ValueError outside 0..63 / 0..31)."""
    if not 0 <= node_id <= ODRIVE_NODE_ID_MAX or not 0 <= cmd <= ODRIVE_CMD_MASK:
        raise ValueError(f"node_id must be 0..63 and cmd 0..31, got {node_id}, {cmd}")
    return odrive_can_id(node_id, cmd)


def pack_set_input_torque(double torque_Nm):
    """Set_Input_Torque payload (8 bytes).  ValueError for a non-finite value or one beyond
    binary32 (never put on the wire)."""
    cdef unsigned char out[8]
    if odrive_pack_set_input_torque(out, torque_Nm) != 8:
        raise ValueError(f"input_torque: must be a finite binary32 N*m, got {torque_Nm!r}")
    return (<char*>out)[:8]


def pack_set_axis_state(unsigned int state):
    """Set_Axis_State payload (8 bytes)."""
    cdef unsigned char out[8]
    odrive_pack_set_axis_state(out, state)
    return (<char*>out)[:8]


def pack_set_controller_mode(unsigned int control_mode, unsigned int input_mode):
    """Set_Controller_Mode payload (8 bytes)."""
    cdef unsigned char out[8]
    odrive_pack_set_controller_mode(out, control_mode, input_mode)
    return (<char*>out)[:8]


def pack_clear_errors(str firmware, bint identify=False):
    """Clear_Errors payload: empty on 0.5, one byte (Identify) on 0.6."""
    cdef unsigned char out[8]
    cdef int n = odrive_pack_clear_errors(out, _fw(firmware), identify)
    return (<char*>out)[:n] if n > 0 else b""


def unpack_heartbeat(data, str firmware):
    """A heartbeat as a dict (axis_error, axis_state, procedure_result, the 0.5 flags,
    trajectory_done); ValueError on a wrong length."""
    cdef bytes b = bytes(data)
    cdef OdriveHeartbeat hb
    cdef int fw = _fw(firmware)
    if odrive_unpack_heartbeat(b, len(b), fw, &hb) != 0:
        raise ValueError(f"heartbeat must be 8 bytes, got {len(b)}")
    return {"axis_error": hb.axis_error, "axis_state": hb.axis_state,
            "procedure_result": hb.procedure_result, "motor_error_flag": hb.motor_error_flag,
            "encoder_error_flag": hb.encoder_error_flag,
            "controller_error_flag": hb.controller_error_flag,
            "trajectory_done": hb.trajectory_done, "code": odrive_heartbeat_code(&hb, fw)}


def pack_heartbeat(str firmware, unsigned int axis_error, int axis_state, int procedure_result=0,
                   bint motor_error_flag=False, bint encoder_error_flag=False,
                   bint controller_error_flag=False, bint trajectory_done=False):
    """A heartbeat payload (8 bytes) as the drive sends it."""
    cdef OdriveHeartbeat hb
    cdef unsigned char out[8]
    if not 0 <= axis_state <= 255 or not 0 <= procedure_result <= 255:
        raise ValueError(f"axis_state and procedure_result are one byte each, got {axis_state}, {procedure_result}")
    hb.axis_error, hb.axis_state, hb.procedure_result = axis_error, axis_state, procedure_result
    hb.motor_error_flag, hb.encoder_error_flag = motor_error_flag, encoder_error_flag
    hb.controller_error_flag, hb.trajectory_done = controller_error_flag, trajectory_done
    odrive_pack_heartbeat(out, _fw(firmware), &hb)
    return (<char*>out)[:8]


def unpack_f32_pair(data):
    """(bytes 0..3, bytes 4..7) as binary32 -> float; ValueError on fewer than 8 bytes."""
    cdef bytes b = bytes(data)
    cdef double lo, hi
    if odrive_unpack_f32_pair(b, len(b), &lo, &hi) != 0:
        raise ValueError(f"a two-float ODrive frame is 8 bytes, got {len(b)}")
    return lo, hi


def pack_f32_pair(double lo, double hi):
    """Two binary32 fields (8 bytes), as the drive sends its readings (NaN passes)."""
    cdef unsigned char out[8]
    odrive_pack_f32_pair(out, lo, hi)
    return (<char*>out)[:8]


def unpack_u32_pair(data):
    """(bytes 0..3, bytes 4..7) as u32; ValueError on fewer than 8 bytes."""
    cdef bytes b = bytes(data)
    cdef unsigned int lo, hi
    if odrive_unpack_u32_pair(b, len(b), &lo, &hi) != 0:
        raise ValueError(f"a two-u32 ODrive frame is 8 bytes, got {len(b)}")
    return lo, hi


def turns_to_rad(double turns):
    """turns -> rad (x 2 pi, the codec's own constant)."""
    return turns * _TWO_PI
