# cython: language_level=3
"""The simulated ODrive axis (CAN Simple, firmware 0.5 or 0.6) over the plant's motor.

Frames are :mod:`hal._odrive`'s (the protocol's one definition).  What the drive does, as the
vendor's firmware / manual say (docs/drivers_odrive_facts.md; not confirmed on a drive here):

- Set_Axis_State(CLOSED_LOOP_CONTROL) arms the axis (refused while an axis error is set),
  IDLE disarms it; Set_Controller_Mode sets control / input mode; Set_Input_Torque is applied
  in TORQUE_CONTROL (clamped to the torque limit), other modes hold zero torque here (the
  position / velocity loops are not simulated); Clear_Errors clears the axis error;
  Estop disarms with ESTOP_REQUESTED.
- The axis watchdog: every frame to the node feeds it (0.5's can_simple.cpp feeds it in
  ``do_command`` for any command, RTRs included); ``watchdog_s`` without one while armed sets
  WATCHDOG_TIMER_EXPIRED and goes to IDLE (no torque, free: ``drive_disable``), and stays so
  until Clear_Errors and Set_Axis_State(CLOSED_LOOP_CONTROL).  ``watchdog_s = 0``: disabled.
- Errors disarm: an injected ``plant.error_code`` (the AK codes of the fault catalogue mapped to
  this firmware's axis errors), over-temperature (case over ``plant.overtemp_C``) and
  under-voltage (supply under ``plant.undervoltage_V``); latched until Clear_Errors.
- Cyclic messages at their configured periods (heartbeat 100 ms, encoder estimates at the loop
  rate, ...; 0 = off); an RTR of a cyclic message is answered at once (0.5 does not answer one
  for the heartbeat: its firmware ignores that request).
"""
from libc.math cimport M_PI, NAN, floor, fabs
from hal._link cimport CanFrame, LINK_REMOTE
from hal._mit cimport MitCommand
from hal._odrive cimport (OdriveHeartbeat, odrive_can_id, odrive_pack_heartbeat, odrive_pack_f32_pair,
                          odrive_pack_u32_pair, odrive_unpack_u32, odrive_unpack_f32,
                          ODRIVE_CMD_BITS, ODRIVE_CMD_MASK, ODRIVE_FW_05, ODRIVE_FW_06,
                          ODRIVE_CMD_HEARTBEAT, ODRIVE_CMD_ESTOP, ODRIVE_CMD_GET_ERROR,
                          ODRIVE_CMD_SET_AXIS_STATE, ODRIVE_CMD_GET_ENCODER_ESTIMATES,
                          ODRIVE_CMD_SET_CONTROLLER_MODE, ODRIVE_CMD_SET_INPUT_TORQUE, ODRIVE_CMD_GET_IQ,
                          ODRIVE_CMD_GET_TEMPERATURE, ODRIVE_CMD_GET_BUS_VOLTAGE_CURRENT,
                          ODRIVE_CMD_CLEAR_ERRORS, ODRIVE_CMD_GET_TORQUES,
                          ODRIVE_STATE_IDLE, ODRIVE_STATE_CLOSED_LOOP_CONTROL, ODRIVE_CONTROL_MODE_TORQUE,
                          ODRIVE05_AXIS_ERROR_MOTOR_FAILED, ODRIVE05_AXIS_ERROR_ENCODER_FAILED,
                          ODRIVE05_AXIS_ERROR_CONTROLLER_FAILED, ODRIVE05_AXIS_ERROR_WATCHDOG_TIMER_EXPIRED,
                          ODRIVE05_AXIS_ERROR_ESTOP_REQUESTED, ODRIVE05_AXIS_ERROR_OVER_TEMP,
                          ODRIVE06_AXIS_ERROR_SYSTEM_LEVEL, ODRIVE06_AXIS_ERROR_MISSING_ESTIMATE,
                          ODRIVE06_AXIS_ERROR_DRV_FAULT, ODRIVE06_AXIS_ERROR_DC_BUS_OVER_VOLTAGE,
                          ODRIVE06_AXIS_ERROR_DC_BUS_UNDER_VOLTAGE,
                          ODRIVE06_AXIS_ERROR_CURRENT_LIMIT_VIOLATION, ODRIVE06_AXIS_ERROR_INVERTER_OVER_TEMP,
                          ODRIVE06_AXIS_ERROR_WATCHDOG_TIMER_EXPIRED, ODRIVE06_AXIS_ERROR_ESTOP_REQUESTED)
from sim._plant cimport AnklePlant
from sim._simdrive cimport SimDrive

cdef double _TWO_PI = 2.0 * M_PI

cdef enum:
    _N_CYCLIC = 7
    _MAX_PENDING = 16
    _CY_HEARTBEAT = 0
    _CY_ENCODER = 1
    _CY_TORQUE = 2          # 0.6 Get_Torques, 0.5 Get_Iq
    _CY_TEMPERATURE = 3     # 0.6 only
    _CY_BUS = 4
    _CY_ERROR = 5
    _CY_UNUSED = 6

#: options (name -> default).  Periods in ms as the drive's ``axis0.config.can.*_ms`` (0 = off).
OPTIONS = {"model": None, "firmware": None, "node_id": None, "watchdog_s": None,
           "heartbeat_ms": 100, "encoder_ms": 1, "torque_ms": 5, "temperature_ms": 100,
           "bus_voltage_ms": 100, "error_ms": 0, "torque_limit_Nm": None, "torque_constant_Nm_A": None,
           "motor_thermistor": False, "follows_controller_mode": True}


cdef class OdriveSimDrive(SimDrive):
    """An ODrive axis on CAN Simple over ``plant`` (see the module docstring).  Options:
    :data:`OPTIONS` (``model``: a row of :data:`hal.odrive.ODRIVE_MODELS`, default the table's
    default; ``firmware`` / ``watchdog_s`` / ``torque_limit_Nm`` / ``torque_constant_Nm_A``
    override the model's; ``node_id`` defaults to ``plant.driver_id``; ``motor_thermistor``:
    the motor temperature reads the winding, else NaN as with none configured;
    ``follows_controller_mode`` False: Set_Controller_Mode is ignored and the axis stays in
    POSITION_CONTROL, a drive whose configuration the host cannot change)."""
    cdef readonly int firmware, node_id
    cdef readonly int axis_state, control_mode, input_mode
    cdef readonly unsigned int axis_error
    cdef readonly double watchdog_s, torque_limit_Nm, torque_constant_Nm_A
    cdef readonly double input_torque_Nm, fed_s
    cdef readonly bint motor_thermistor, follows_controller_mode
    cdef readonly long long watchdog_trips
    cdef double period_s[_N_CYCLIC]
    cdef double next_s[_N_CYCLIC]
    cdef unsigned int cyclic_cmd[_N_CYCLIC]
    cdef unsigned int pending[_MAX_PENDING]
    cdef int n_pending

    def __init__(self, AnklePlant plant not None, **options):
        from hal.odrive import ODRIVE_MODELS, DEFAULT_MODEL
        unknown = sorted(set(options) - set(OPTIONS))
        if unknown:
            raise ValueError(f"unknown simulated ODrive option(s): {', '.join(unknown)} (known: {', '.join(OPTIONS)})")
        SimDrive.__init__(self, plant)
        o = {**OPTIONS, **options}
        model = DEFAULT_MODEL if o["model"] is None else o["model"]
        if model not in ODRIVE_MODELS:
            raise ValueError(f"model: unknown ODrive model {model!r} (known: {', '.join(ODRIVE_MODELS)})")
        row = ODRIVE_MODELS[model]
        fw = row.firmware if o["firmware"] is None else o["firmware"]
        if fw not in ("0.5", "0.6"):
            raise ValueError(f"firmware: must be 0.5 or 0.6, got {fw!r}")
        self.name = "odrive"
        self.firmware = ODRIVE_FW_05 if fw == "0.5" else ODRIVE_FW_06
        self.node_id = plant.driver_id if o["node_id"] is None else int(o["node_id"])
        if not 0 <= self.node_id <= 63:
            raise ValueError(f"node_id: must be 0..63, got {self.node_id}")
        self.watchdog_s = row.watchdog_s if o["watchdog_s"] is None else float(o["watchdog_s"])
        self.torque_limit_Nm = row.torque_limit_Nm if o["torque_limit_Nm"] is None else float(o["torque_limit_Nm"])
        self.torque_constant_Nm_A = (row.torque_constant_Nm_A if o["torque_constant_Nm_A"] is None
                                     else float(o["torque_constant_Nm_A"]))
        if not (self.watchdog_s >= 0 and self.torque_limit_Nm > 0 and self.torque_constant_Nm_A > 0):
            raise ValueError("watchdog_s must be >= 0 (0: off), torque_limit_Nm and torque_constant_Nm_A > 0")
        self.motor_thermistor = bool(o["motor_thermistor"])
        self.follows_controller_mode = bool(o["follows_controller_mode"])
        periods = {_CY_HEARTBEAT: (ODRIVE_CMD_HEARTBEAT, o["heartbeat_ms"]),
                   _CY_ENCODER: (ODRIVE_CMD_GET_ENCODER_ESTIMATES, o["encoder_ms"]),
                   _CY_TORQUE: (ODRIVE_CMD_GET_TORQUES if self.firmware == ODRIVE_FW_06 else ODRIVE_CMD_GET_IQ,
                                o["torque_ms"]),
                   _CY_TEMPERATURE: (ODRIVE_CMD_GET_TEMPERATURE,
                                     o["temperature_ms"] if self.firmware == ODRIVE_FW_06 else 0),
                   _CY_BUS: (ODRIVE_CMD_GET_BUS_VOLTAGE_CURRENT, o["bus_voltage_ms"]),
                   _CY_ERROR: (ODRIVE_CMD_GET_ERROR, o["error_ms"]),
                   _CY_UNUSED: (0, 0)}
        for i, (cmd, ms) in periods.items():
            if isinstance(ms, bool) or not isinstance(ms, int) or ms < 0:
                raise ValueError(f"cyclic periods are whole ms >= 0 (0: off), got {ms!r}")
            self.cyclic_cmd[i] = cmd
            self.period_s[i] = ms * 1e-3
            self.next_s[i] = 0.0
        self.axis_state = ODRIVE_STATE_IDLE
        self.axis_error = 0
        self.control_mode = 3           # POSITION_CONTROL: the ODrive's default
        self.input_mode = 1
        self.input_torque_Nm = 0.0
        self.fed_s = 0.0
        self.n_pending = 0
        self.watchdog_trips = 0
        # the plant's own loss-of-command timer agrees with the axis watchdog (fed by the same
        # frames, see _feed); an ODrive in IDLE is free, not damped
        plant.drive_protection(self.watchdog_s if self.watchdog_s > 0 else 1e300, 0.0)
        plant.drive_disable()

    # ---- the drive's state machine ----

    cdef inline bint _armed(self) noexcept nogil:
        return self.axis_state == ODRIVE_STATE_CLOSED_LOOP_CONTROL

    cdef void _apply(self, double now_s) noexcept nogil:
        # what the axis commands the motor now (and feeds the plant's timer)
        cdef MitCommand c
        c.p_rad = c.v_rad_s = c.kp_Nm_rad = c.kd_Nms_rad = 0.0
        c.t_Nm = self.input_torque_Nm if self.control_mode == ODRIVE_CONTROL_MODE_TORQUE else 0.0
        self.plant.drive_command(&c, now_s)

    cdef void _disarm(self, unsigned int error) noexcept nogil:
        self.axis_error |= error
        if self._armed():
            self.axis_state = ODRIVE_STATE_IDLE
            self.plant.drive_disable()

    cdef void _check(self, double now_s) noexcept nogil:
        # the watchdog and the drive's own protections, at simulated time now_s
        cdef unsigned int e = 0
        cdef int code = self.plant.error_code
        cdef bint v05 = self.firmware == ODRIVE_FW_05
        if self._armed() and self.watchdog_s > 0 and now_s - self.fed_s > self.watchdog_s:
            self.watchdog_trips += 1
            self._disarm(ODRIVE05_AXIS_ERROR_WATCHDOG_TIMER_EXPIRED if v05 else ODRIVE06_AXIS_ERROR_WATCHDOG_TIMER_EXPIRED)
        if code != 0:
            # the fault catalogue's (AK) codes as this firmware's axis errors
            if code == 1:
                e = ODRIVE05_AXIS_ERROR_OVER_TEMP if v05 else ODRIVE06_AXIS_ERROR_INVERTER_OVER_TEMP
            elif code == 2:
                e = ODRIVE05_AXIS_ERROR_MOTOR_FAILED if v05 else ODRIVE06_AXIS_ERROR_CURRENT_LIMIT_VIOLATION
            elif code == 3:
                e = ODRIVE05_AXIS_ERROR_MOTOR_FAILED if v05 else ODRIVE06_AXIS_ERROR_DC_BUS_OVER_VOLTAGE
            elif code == 4:
                e = ODRIVE05_AXIS_ERROR_MOTOR_FAILED if v05 else ODRIVE06_AXIS_ERROR_DC_BUS_UNDER_VOLTAGE
            elif code == 5:
                e = ODRIVE05_AXIS_ERROR_ENCODER_FAILED if v05 else ODRIVE06_AXIS_ERROR_MISSING_ESTIMATE
            elif code == 6:
                e = ODRIVE05_AXIS_ERROR_MOTOR_FAILED if v05 else ODRIVE06_AXIS_ERROR_DRV_FAULT
            else:
                e = ODRIVE05_AXIS_ERROR_MOTOR_FAILED if v05 else ODRIVE06_AXIS_ERROR_SYSTEM_LEVEL
        if self.plant.case_C > self.plant.overtemp_C:
            e |= ODRIVE05_AXIS_ERROR_OVER_TEMP if v05 else ODRIVE06_AXIS_ERROR_INVERTER_OVER_TEMP
        if self.plant.supply_V < self.plant.undervoltage_V:
            # 0.5: a system-level DC-bus error disarms the motor (MOTOR_FAILED on the axis)
            e |= ODRIVE05_AXIS_ERROR_MOTOR_FAILED if v05 else ODRIVE06_AXIS_ERROR_DC_BUS_UNDER_VOLTAGE
        if e:
            self._disarm(e)

    cdef bint _answers_rtr(self, unsigned int cmd) noexcept nogil:
        if cmd == ODRIVE_CMD_GET_ENCODER_ESTIMATES or cmd == ODRIVE_CMD_GET_IQ \
                or cmd == ODRIVE_CMD_GET_BUS_VOLTAGE_CURRENT or cmd == ODRIVE_CMD_GET_ERROR:
            return True
        if self.firmware == ODRIVE_FW_06:
            return (cmd == ODRIVE_CMD_HEARTBEAT or cmd == ODRIVE_CMD_GET_TEMPERATURE
                    or cmd == ODRIVE_CMD_GET_TORQUES)
        return False

    cdef int receive(self, const CanFrame* f, double now_s) noexcept nogil:
        cdef unsigned int cmd = f.can_id & ODRIVE_CMD_MASK
        cdef unsigned int u, m
        cdef double x
        if f.can_id > 0x7FF or (f.can_id >> ODRIVE_CMD_BITS) != <unsigned int>self.node_id:
            return 0
        self._check(now_s)              # a watchdog that expired before this frame stays expired
        self.fed_s = now_s              # every frame to the axis feeds its watchdog
        if self._armed():
            self._apply(now_s)
        if f.flags & LINK_REMOTE or (f.dlc == 0 and self._answers_rtr(cmd)):
            if self._answers_rtr(cmd) and self.n_pending < _MAX_PENDING:
                self.pending[self.n_pending] = cmd
                self.n_pending += 1
                return 1
            return 0
        if cmd == ODRIVE_CMD_SET_INPUT_TORQUE:
            if odrive_unpack_f32(f.data, f.dlc, &x) == 0 and x == x:
                self.input_torque_Nm = x if fabs(x) <= self.torque_limit_Nm else (
                    self.torque_limit_Nm if x > 0 else -self.torque_limit_Nm)
                if self._armed():
                    self._apply(now_s)
        elif cmd == ODRIVE_CMD_SET_AXIS_STATE:
            if odrive_unpack_u32(f.data, f.dlc, &u) == 0:
                if u == ODRIVE_STATE_IDLE:
                    self.axis_state = ODRIVE_STATE_IDLE
                    self.plant.drive_disable()
                elif u == ODRIVE_STATE_CLOSED_LOOP_CONTROL and self.axis_error == 0 and not self._armed():
                    self.axis_state = ODRIVE_STATE_CLOSED_LOOP_CONTROL
                    self.input_torque_Nm = 0.0
                    self.plant.drive_enable(now_s)
                    self._apply(now_s)
        elif cmd == ODRIVE_CMD_SET_CONTROLLER_MODE:
            if self.follows_controller_mode and odrive_unpack_u32(f.data, f.dlc, &u) == 0 and f.dlc >= 8:
                odrive_unpack_u32(f.data + 4, 4, &m)
                self.control_mode, self.input_mode = u, m
                if self._armed():
                    self._apply(now_s)
        elif cmd == ODRIVE_CMD_CLEAR_ERRORS:
            self.axis_error = 0
        elif cmd == ODRIVE_CMD_ESTOP:
            self._disarm(ODRIVE05_AXIS_ERROR_ESTOP_REQUESTED if self.firmware == ODRIVE_FW_05
                         else ODRIVE06_AXIS_ERROR_ESTOP_REQUESTED)
        return 0

    # ---- what the drive sends ----

    cdef int _frame(self, unsigned int cmd, CanFrame* out) noexcept nogil:
        # the payload of message ``cmd`` now; returns its DLC (0: none)
        cdef OdriveHeartbeat hb
        cdef double tau = self.plant.tau_motor_Nm, target, v
        cdef unsigned int e = self.axis_error
        cdef bint v05 = self.firmware == ODRIVE_FW_05
        target = self.input_torque_Nm if (self._armed() and self.control_mode == ODRIVE_CONTROL_MODE_TORQUE) else 0.0
        out.can_id = odrive_can_id(self.node_id, cmd)
        out.flags = 0
        out.dlc = 8
        if cmd == ODRIVE_CMD_HEARTBEAT:
            hb.axis_error = e
            hb.axis_state = self.axis_state
            hb.procedure_result = 0
            hb.motor_error_flag = 1 if (v05 and e & ODRIVE05_AXIS_ERROR_MOTOR_FAILED) else 0
            hb.encoder_error_flag = 1 if (v05 and e & ODRIVE05_AXIS_ERROR_ENCODER_FAILED) else 0
            hb.controller_error_flag = 1 if (v05 and e & ODRIVE05_AXIS_ERROR_CONTROLLER_FAILED) else 0
            hb.trajectory_done = 1
            return odrive_pack_heartbeat(out.data, self.firmware, &hb)
        if cmd == ODRIVE_CMD_GET_ENCODER_ESTIMATES:
            return odrive_pack_f32_pair(out.data, self.plant.motor_position() / _TWO_PI,
                                        self.plant.motor_velocity() / _TWO_PI)
        if cmd == ODRIVE_CMD_GET_TORQUES:
            return odrive_pack_f32_pair(out.data, target, tau)
        if cmd == ODRIVE_CMD_GET_IQ:
            return odrive_pack_f32_pair(out.data, target / self.torque_constant_Nm_A,
                                        tau / self.torque_constant_Nm_A)
        if cmd == ODRIVE_CMD_GET_TEMPERATURE:
            return odrive_pack_f32_pair(out.data, self.plant.case_C,
                                        self.plant.winding_C if self.motor_thermistor else NAN)
        if cmd == ODRIVE_CMD_GET_BUS_VOLTAGE_CURRENT:
            v = self.plant.supply_V
            return odrive_pack_f32_pair(out.data, v, tau * self.plant.motor_velocity() / v if v > 0 else 0.0)
        if cmd == ODRIVE_CMD_GET_ERROR:
            if v05:                     # Get_Motor_Error (u64): DRV_FAULT while the motor failed
                return odrive_pack_u32_pair(out.data, 0x8 if e & ODRIVE05_AXIS_ERROR_MOTOR_FAILED else 0, 0)
            return odrive_pack_u32_pair(out.data, e, e)
        return 0

    cdef int respond(self, int due, double now_s, bint cyclic, CanFrame* out, int max_out) noexcept nogil:
        cdef int i, k, n = 0, taken = 0
        self._check(now_s)
        while taken < self.n_pending and taken < due and n < max_out:
            if self._frame(self.pending[taken], &out[n]) > 0:
                n += 1
            taken += 1
        for k in range(taken, self.n_pending):        # what did not fit waits for the next call
            self.pending[k - taken] = self.pending[k]
        self.n_pending -= taken
        if not cyclic:
            return n
        for i in range(_N_CYCLIC):
            if self.period_s[i] <= 0.0 or now_s < self.next_s[i] - 1e-9:
                continue
            if n >= max_out:
                break
            if self._frame(self.cyclic_cmd[i], &out[n]) > 0:
                n += 1
            # on its own grid (no drift); a step longer than the period sends one, not a burst
            self.next_s[i] += self.period_s[i]
            if self.next_s[i] <= now_s - 1e-9:
                self.next_s[i] = (floor(now_s / self.period_s[i] + 1e-6) + 1.0) * self.period_s[i]
        return n

    # ---- tools and tests ----
    @property
    def firmware_name(self):
        return "0.5" if self.firmware == ODRIVE_FW_05 else "0.6"

    def check(self, double now_s):
        """Run the watchdog and protection checks at ``now_s`` (tests)."""
        self._check(now_s)


#: The simulated actuator an ODrive run walks with (the default model, S1 + M8325s, 3.3 N*m at the
#: motor): a 36:1 transmission (3.3 x 36 x 0.95 = 113 N*m at the ankle, over safety.max_torque_Nm)
#: and the plant's motor constants for a direct-drive outrunner instead of the AK80-9's geared
#: output.  ASSUMED, not from a datasheet: the rotor inertia (1.35e-4 kg*m^2, about an 83 mm
#: outrunner's; reflected x 36^2 = 0.175 kg*m^2 at the ankle, as the AK80-9's 0.0035 x 7^2) and the
#: phase resistance (0.05 ohm).  The torque constant is 8.27 / Kv 100.
SIM_PARAMS = {"actuator.ratio": 36.0, "actuator.max_torque_Nm": 3.3}
SIM_PLANT_OVERRIDES = {"rotor_inertia_kgm2": 1.35e-4, "torque_constant_Nm_A": 8.27 / 100.0,
                       "winding_resistance_ohm": 0.05}
