# cython: language_level=3
"""A simulated CiA 402 servo drive on the bus, over the plant's motor (declared in _cia402_sim.pxd).

Built from an EDS (default hal/data/ankle_drive.eds; parsed once at construction with the
``canopen`` library's EDS import, so the simulated drive has exactly the objects the set-up
reads), it answers at frame level, without the GIL:

- NMT (0x000): start / stop / pre-operational / reset node (object dictionary back to the EDS
  defaults, boot-up frame 0x700 + node [0x00]) / reset communication.  PDOs only in Operational.
- SDO server (0x600 + node -> 0x580 + node): expedited upload and download, segmented upload
  (the EDS's strings, 0x1008..0x100A), with the CiA 301 abort codes (object / sub-index does not exist, read-only, length, PDO mapping rules).
- PDOs as mapped over SDO (CiA 301 7.2.2): a mapping changes only while its PDO is invalid
  (COB-ID bit 31).  Synchronous RPDOs take effect at the next SYNC; synchronous TPDOs (type
  1..240) answer every n-th SYNC with the readings at that moment.
- The CiA 402 state machine (6.2): shutdown / switch on / enable operation / disable voltage /
  quick stop / fault reset (rising edge of bit 7, only when the cause is gone); Operation
  Enabled in mode 10 applies the target torque (0x6071 per mille of 0x6076 x gear ratio,
  clamped to 0x6072) to the motor; leaving it turns torque off.
- Heartbeat producer (0x1017) and consumer (0x1016): the host's heartbeat missing for the
  consumer time -> EMCY 0x8130 and the reaction of 0x6007 (1 fault, 2 disable voltage,
  3 quick stop: all three end with torque off here).  The drive has no command watchdog of its
  own: its loss-of-host protection is the consumer (the plant's watchdog is marked tripped then).
- EMCY (0x080 + node) on over-temperature 0x4310, under-voltage 0x3220, and the injected
  ``plant.error_code`` (AK codes mapped: 2 over-current 0x2310, 5 encoder 0x7305, ...), each
  with the Fault state; EMCY 0x0000 when a fault reset succeeds.
"""
from libc.math cimport round as c_round, M_PI
from hal._link cimport LINK_REMOTE
from sim._plant cimport AnklePlant
from hal._mit cimport MitCommand

cdef enum:
    F_READ = 1
    F_WRITE = 2
    F_MAP = 4
    F_SIGNED = 8
    F_STRING = 16
    # CiA 402 states
    DS_SWITCH_ON_DISABLED = 1
    DS_READY = 2
    DS_SWITCHED_ON = 3
    DS_OPERATION_ENABLED = 4
    DS_FAULT = 5
    # NMT
    NMT_OPERATIONAL = 0x05
    NMT_STOPPED = 0x04
    NMT_PRE_OPERATIONAL = 0x7F

STATES = {1: "switch on disabled", 2: "ready to switch on", 3: "switched on",
          4: "operation enabled", 5: "fault"}

# CiA 301 SDO abort codes (7.2.4.3.17)
cdef long long PDO_INVALID = 0x80000000LL     # COB-ID bit 31: the PDO does not exist (CiA 301 7.2.2.3)
cdef unsigned int ABORT_COMMAND = 0x05040001
cdef unsigned int ABORT_TOGGLE = 0x05030000
cdef unsigned int ABORT_NO_DATA = 0x08000024
cdef unsigned int ABORT_WRITE_ONLY = 0x06010001
cdef unsigned int ABORT_READ_ONLY = 0x06010002
cdef unsigned int ABORT_NO_OBJECT = 0x06020000
cdef unsigned int ABORT_NOT_MAPPABLE = 0x06040041
cdef unsigned int ABORT_PDO_LENGTH = 0x06040042
cdef unsigned int ABORT_LENGTH = 0x06070010
cdef unsigned int ABORT_NO_SUB = 0x06090011
cdef unsigned int ABORT_RANGE = 0x06090030
cdef unsigned int ABORT_STATE = 0x08000022

# EMCY codes (CiA 301 table 21, CiA 402)
cdef unsigned int EMCY_HEARTBEAT = 0x8130
cdef unsigned int EMCY_OVERTEMP = 0x4310
cdef unsigned int EMCY_UNDERVOLTAGE = 0x3220


cdef unsigned int _emcy_of_ak(int code) noexcept nogil:
    # the plant's injected error (an AK code, hal.ak.AK_ERROR_CODES) as the EMCY a CiA 402 drive sends
    if code == 1:
        return EMCY_OVERTEMP
    if code == 2:
        return 0x2310
    if code == 3:
        return 0x3210
    if code == 4:
        return EMCY_UNDERVOLTAGE
    if code == 5:
        return 0x7305
    if code == 6:
        return 0x2320
    return 0xFF00 | (code & 0xFF)


cdef unsigned int _error_register(unsigned int code) noexcept nogil:
    # 0x1001 bits: 0 generic, 1 current, 2 voltage, 3 temperature, 4 communication (CiA 301 7.5.2.2)
    cdef unsigned int hi = code >> 12
    if code == 0:
        return 0
    if hi == 2:
        return 0x03
    if hi == 3:
        return 0x05
    if hi == 4:
        return 0x09
    if hi == 8:
        return 0x11
    return 0x01


cdef class Cia402SimDrive(SimDrive):
    """The simulated CiA 402 drive on ``plant`` (node id ``plant.driver_id``).  ``eds``: the EDS
    its object dictionary comes from (default: hal/data/ankle_drive.eds)."""

    def __init__(self, AnklePlant plant not None, eds=None):
        SimDrive.__init__(self, plant)
        import canopen
        from hal.cia402 import DEFAULT_EDS
        self.name = "cia402"
        self.node_id = plant.driver_id
        if not 1 <= self.node_id <= 127:
            raise ValueError(f"node id {self.node_id}: a CANopen node id is 1..127")
        od = canopen.import_od(DEFAULT_EDS if eds is None else str(eds), node_id=self.node_id)
        self.n_od = 0
        used = 0
        for obj in od.values():
            subs = [obj] if isinstance(obj, canopen.objectdictionary.ODVariable) else list(obj.values())
            for var in subs:
                if self.n_od >= SIM402_MAX_OD:
                    raise ValueError(f"EDS: more than {SIM402_MAX_OD} objects")
                i = self.n_od
                self.od_key[i] = (var.index << 8) | var.subindex
                if not var.fixed_size:
                    if var.data_type != canopen.objectdictionary.VISIBLE_STRING:
                        continue    # domains, octet strings: not served
                    text = (var.default or "").encode("ascii")
                    if used + len(text) > 512:
                        raise ValueError("EDS: its strings exceed 512 bytes")
                    for j, ch in enumerate(text):
                        self.strings[used + j] = ch
                    self.od_size[i] = 0
                    self.od_flags[i] = F_STRING | (F_READ if var.readable else 0)
                    self.od_value[i] = self.od_default[i] = used
                    self.od_default[i] = len(text)
                    used += len(text)
                    self.n_od += 1
                    continue
                self.od_size[i] = len(var) // 8
                self.od_flags[i] = ((F_READ if var.readable else 0) | (F_WRITE if var.writable else 0)
                                    | (F_MAP if var.pdo_mappable else 0)
                                    | (F_SIGNED if var.data_type in (2, 3, 4) else 0))
                self.od_default[i] = int(var.default or 0)
                self.n_od += 1
        S = lambda index, sub=0: self._find(index, sub)
        self.s_controlword, self.s_statusword = S(0x6040), S(0x6041)
        self.s_mode, self.s_mode_display = S(0x6060), S(0x6061)
        self.s_position, self.s_velocity = S(0x6064), S(0x606C)
        self.s_target, self.s_max_torque, self.s_rated = S(0x6071), S(0x6072), S(0x6076)
        self.s_torque_actual, self.s_dc_link, self.s_temperature = S(0x6077), S(0x6079), S(0x2000)
        self.s_error_code, self.s_error_register = S(0x603F), S(0x1001)
        self.s_consumer, self.s_producer, self.s_abort_option = S(0x1016, 1), S(0x1017), S(0x6007)
        self.s_gear_motor, self.s_gear_shaft = S(0x6091, 1), S(0x6091, 2)
        self.s_enc_inc, self.s_enc_rev = S(0x608F, 1), S(0x608F, 2)
        for name, slot in (("controlword", self.s_controlword), ("statusword", self.s_statusword),
                           ("modes of operation", self.s_mode), ("target torque", self.s_target),
                           ("max torque", self.s_max_torque), ("motor rated torque", self.s_rated),
                           ("torque actual", self.s_torque_actual), ("position actual", self.s_position),
                           ("velocity actual", self.s_velocity), ("consumer heartbeat time", self.s_consumer),
                           ("producer heartbeat time", self.s_producer)):
            if slot < 0:
                raise ValueError(f"EDS: no {name} object: not a CiA 402 cyclic synchronous torque drive")
        self.n_rpdo = self.n_tpdo = 0
        for k in range(SIM402_MAX_PDO):
            if S(0x1400 + k, 1) >= 0 and S(0x1600 + k, 0) >= 0:
                self.rpdo_comm[self.n_rpdo], self.rpdo_map[self.n_rpdo] = S(0x1400 + k, 1), S(0x1600 + k, 0)
                self.n_rpdo += 1
            if S(0x1800 + k, 1) >= 0 and S(0x1A00 + k, 0) >= 0:
                self.tpdo_comm[self.n_tpdo], self.tpdo_map[self.n_tpdo] = S(0x1800 + k, 1), S(0x1A00 + k, 0)
                self.n_tpdo += 1
        # no command watchdog: the heartbeat consumer is this drive's loss-of-host protection
        plant.drive_protection(1e9, 0.0)
        self._reset(False)

    # ---- tools and tests ----
    def od_read(self, unsigned int index, unsigned int sub=0):
        """The value of an object now (tests)."""
        cdef int s = self._find(index, sub)
        if s < 0:
            raise KeyError(f"{index:#06x}:{sub}")
        return self.od_value[s]

    def od_write(self, unsigned int index, unsigned int sub, long long value):
        """Set an object as the vendor's tool (or a previous session) left it, bypassing the SDO
        rules (tests: a drive configured otherwise than the model)."""
        cdef int s = self._find(index, sub)
        if s < 0:
            raise KeyError(f"{index:#06x}:{sub}")
        self.od_value[s] = value

    @property
    def state_name(self):
        return STATES.get(self.state, "?")

    # ---- the object dictionary ----
    cdef int _find(self, unsigned int index, unsigned int sub) noexcept nogil:
        cdef unsigned int key = (index << 8) | sub
        cdef int i
        for i in range(self.n_od):
            if self.od_key[i] == key:
                return i
        return -1

    cdef void _reset(self, bint communication_only) noexcept nogil:
        cdef int i
        cdef unsigned int index
        for i in range(self.n_od):
            index = self.od_key[i] >> 8
            if (not communication_only or 0x1000 <= index < 0x2000) and not self.od_flags[i] & F_STRING:
                self.od_value[i] = self.od_default[i]
        for i in range(self.n_rpdo):
            self._remap(False, i)
            self.rpdo_new[i] = False
        for i in range(self.n_tpdo):
            self._remap(True, i)
            self.tpdo_count[i] = 0
        self.nmt_state = NMT_PRE_OPERATIONAL
        self.consumer_started = False
        self.hb_next_s = -1.0
        self.syncs_pending = 0
        self.n_pending = 0
        self.seg_slot = -1
        if not communication_only:
            self.last_cw = 0
            self.active_error = 0
            self.plant.drive_disable()
            self.state = DS_SWITCH_ON_DISABLED
            self._set_state(DS_SWITCH_ON_DISABLED, 0.0)

    cdef void _queue(self, unsigned int can_id, const unsigned char* data, int dlc) noexcept nogil:
        cdef int i
        if self.n_pending >= 16:
            return
        self.pending[self.n_pending].can_id = can_id
        self.pending[self.n_pending].dlc = dlc
        self.pending[self.n_pending].flags = 0
        for i in range(dlc):
            self.pending[self.n_pending].data[i] = data[i]
        self.n_pending += 1

    cdef void _emcy(self, unsigned int code) noexcept nogil:
        cdef unsigned char d[8]
        cdef unsigned int reg = _error_register(code)
        cdef int i
        for i in range(8):
            d[i] = 0
        d[0], d[1], d[2] = code & 0xFF, (code >> 8) & 0xFF, reg
        if self.s_error_register >= 0:
            self.od_value[self.s_error_register] = reg
        if self.nmt_state != NMT_STOPPED:
            self._queue(0x080 + self.node_id, d, 8)
            self.emcys_sent += 1

    # ---- the CiA 402 state machine ----
    cdef void _set_state(self, int state, double now_s) noexcept nogil:
        cdef unsigned int sw
        cdef int prev = self.state
        self.state = state
        if state == DS_OPERATION_ENABLED and prev != DS_OPERATION_ENABLED:
            self.plant.drive_enable(now_s)
        elif state != DS_OPERATION_ENABLED and prev == DS_OPERATION_ENABLED:
            self.plant.drive_disable()
        # statusword (6.2.2): bit 9 remote, bit 5 quick stop off, bit 4 voltage enabled
        if state == DS_SWITCH_ON_DISABLED:
            sw = 0x0240
        elif state == DS_READY:
            sw = 0x0231
        elif state == DS_SWITCHED_ON:
            sw = 0x0233
        elif state == DS_OPERATION_ENABLED:
            sw = 0x0237
            if self.s_mode >= 0 and self.od_value[self.s_mode] == 10:
                sw |= 0x1000            # CST: the drive follows the command value
        else:
            sw = 0x0208
        self.od_value[self.s_statusword] = sw
        if self.s_mode_display >= 0 and self.s_mode >= 0:
            self.od_value[self.s_mode_display] = self.od_value[self.s_mode]

    cdef void _fault(self, unsigned int code, double now_s) noexcept nogil:
        self.active_error = code
        if self.s_error_code >= 0:
            self.od_value[self.s_error_code] = code
        self._emcy(code)
        self._set_state(DS_FAULT, now_s)

    cdef void _controlword(self, unsigned int cw, double now_s) noexcept nogil:
        cdef unsigned int prev = self.last_cw
        cdef int s = self.state
        self.last_cw = cw
        self.od_value[self.s_controlword] = cw
        if s == DS_FAULT:
            if cw & 0x80 and not prev & 0x80:
                self._check(now_s)          # the cause must be gone
                if self.state == DS_FAULT and self._fault_cause() == 0:
                    self.active_error = 0
                    if self.s_error_code >= 0:
                        self.od_value[self.s_error_code] = 0
                    self._emcy(0)           # error reset
                    self._set_state(DS_SWITCH_ON_DISABLED, now_s)
            return
        if not cw & 0x02 or not cw & 0x04:         # disable voltage / quick stop
            self._set_state(DS_SWITCH_ON_DISABLED, now_s)
        elif cw & 0x8F == 0x0F:                    # enable operation (from ready: 3 + 4)
            if s == DS_SWITCHED_ON or s == DS_READY or s == DS_OPERATION_ENABLED:
                self._set_state(DS_OPERATION_ENABLED, now_s)
        elif cw & 0x8F == 0x07:                    # switch on / disable operation
            if s == DS_READY or s == DS_OPERATION_ENABLED or s == DS_SWITCHED_ON:
                self._set_state(DS_SWITCHED_ON, now_s)
        elif cw & 0x87 == 0x06:                    # shutdown
            self._set_state(DS_READY, now_s)

    cdef unsigned int _fault_cause(self) noexcept nogil:
        if self.plant.error_code != 0:
            return _emcy_of_ak(self.plant.error_code)
        if self.plant.case_C > self.plant.overtemp_C:
            return EMCY_OVERTEMP
        if self.plant.supply_V < self.plant.undervoltage_V:
            return EMCY_UNDERVOLTAGE
        return 0

    cdef void _check(self, double now_s) noexcept nogil:
        """The drive's monitoring at ``now_s``: its hardware, and the heartbeat consumer."""
        cdef unsigned int cause = self._fault_cause()
        cdef long long consumer
        cdef double limit_s
        cdef int reaction
        if cause != 0 and self.state != DS_FAULT:
            self._fault(cause, now_s)
        consumer = self.od_value[self.s_consumer]
        limit_s = (consumer & 0xFFFF) * 1e-3
        if self.consumer_started and limit_s > 0 and now_s - self.consumer_last_s > limit_s:
            self.consumer_started = False       # one event; monitoring resumes with the next heartbeat
            if not self.plant.watchdog_tripped:
                self.plant.watchdog_trip_s = now_s
            self.plant.watchdog_tripped = True
            reaction = <int>self.od_value[self.s_abort_option] if self.s_abort_option >= 0 else 1
            if reaction == 1:
                if self.state != DS_FAULT:
                    self._fault(EMCY_HEARTBEAT, now_s)
                else:
                    self._emcy(EMCY_HEARTBEAT)
            else:
                self._emcy(EMCY_HEARTBEAT)
                if reaction >= 2 and self.state != DS_FAULT:
                    self._set_state(DS_SWITCH_ON_DISABLED, now_s)

    # ---- PDOs ----
    cdef bint _remap(self, bint tx, int k) noexcept nogil:
        """Take the mapping record of PDO k into force; False (nothing changed) if an entry is not
        a mappable object of its size or the PDO would exceed 8 bytes."""
        cdef int base = self.tpdo_map[k] if tx else self.rpdo_map[k]
        cdef int n = <int>self.od_value[base], i, s, length = 0
        cdef unsigned long long entry
        cdef int slots[SIM402_MAX_MAPPED]
        if n > SIM402_MAX_MAPPED:
            return False
        for i in range(n):
            entry = <unsigned long long>self.od_value[base + 1 + i]
            s = self._find(<unsigned int>(entry >> 16), <unsigned int>((entry >> 8) & 0xFF))
            if s < 0 or not self.od_flags[s] & F_MAP or (entry & 0xFF) != 8 * self.od_size[s]:
                return False
            slots[i] = s
            length += self.od_size[s]
        if length > 8:
            return False
        for i in range(n):
            if tx:
                self.tpdo_slots[k * SIM402_MAX_MAPPED + i] = slots[i]
            else:
                self.rpdo_slots[k * SIM402_MAX_MAPPED + i] = slots[i]
        if tx:
            self.tpdo_n[k], self.tpdo_len[k] = n, length
        else:
            self.rpdo_n[k], self.rpdo_len[k] = n, length
        return True

    cdef void _apply_rpdo(self, int k, double now_s) noexcept nogil:
        cdef int i, j, s, off = 0
        cdef unsigned long long u
        cdef long long v
        cdef MitCommand c
        cdef double rated_Nm, gear = 1.0, t_Nm, pm, lim
        cdef bint cw_mapped = False
        cdef long long cw = 0
        for i in range(self.rpdo_n[k]):
            s = self.rpdo_slots[k * SIM402_MAX_MAPPED + i]
            u = 0
            for j in range(self.od_size[s]):
                u |= (<unsigned long long>self.rpdo_buf[k * 8 + off + j]) << (8 * j)
            v = <long long>u
            if self.od_flags[s] & F_SIGNED and u & (1ULL << (8 * self.od_size[s] - 1)):
                v = <long long>u - (1LL << (8 * self.od_size[s]))
            off += self.od_size[s]
            if s == self.s_controlword:
                cw_mapped, cw = True, v
            else:
                self.od_value[s] = v
        if cw_mapped:
            self._controlword(<unsigned int>cw, now_s)
        if self.state != DS_OPERATION_ENABLED or self.od_value[self.s_mode] != 10:
            return
        if self.s_gear_motor >= 0 and self.s_gear_shaft >= 0 and self.od_value[self.s_gear_shaft] > 0:
            gear = <double>self.od_value[self.s_gear_motor] / <double>self.od_value[self.s_gear_shaft]
        rated_Nm = self.od_value[self.s_rated] * 1e-3 * gear
        pm = <double>self.od_value[self.s_target]
        lim = <double>self.od_value[self.s_max_torque]
        if pm > lim:
            pm = lim
        elif pm < -lim:
            pm = -lim
        c.p_rad = c.v_rad_s = c.kp_Nm_rad = c.kd_Nms_rad = 0.0
        c.t_Nm = pm * 1e-3 * rated_Nm
        self.plant.drive_command(&c, now_s)

    cdef void _update_readings(self) noexcept nogil:
        cdef double counts_per_rad = 16384.0 / (2.0 * M_PI), gear = 1.0, rated_Nm
        if self.s_enc_inc >= 0 and self.s_enc_rev >= 0 and self.od_value[self.s_enc_rev] > 0:
            counts_per_rad = <double>self.od_value[self.s_enc_inc] / <double>self.od_value[self.s_enc_rev] / (2.0 * M_PI)
        if self.s_gear_motor >= 0 and self.s_gear_shaft >= 0 and self.od_value[self.s_gear_shaft] > 0:
            gear = <double>self.od_value[self.s_gear_motor] / <double>self.od_value[self.s_gear_shaft]
        # the plant's motor is the drive's output shaft: the motor turns gear x as far
        self.od_value[self.s_position] = <long long>c_round(self.plant.motor_position() * gear * counts_per_rad)
        self.od_value[self.s_velocity] = <long long>c_round(self.plant.motor_velocity() * gear * counts_per_rad)
        rated_Nm = self.od_value[self.s_rated] * 1e-3 * gear
        if rated_Nm > 0:
            self.od_value[self.s_torque_actual] = <long long>c_round(self.plant.tau_motor_Nm / rated_Nm * 1000.0)
        if self.s_dc_link >= 0:
            self.od_value[self.s_dc_link] = <long long>c_round(self.plant.supply_V * 1000.0)
        if self.s_temperature >= 0:
            self.od_value[self.s_temperature] = <long long>c_round(self.plant.case_C * 10.0)

    cdef int _tpdo(self, int k, CanFrame* f) noexcept nogil:
        cdef int i, j, s, off = 0
        cdef unsigned long long u
        cdef long long cob = self.od_value[self.tpdo_comm[k]]
        if cob & PDO_INVALID or self.tpdo_n[k] == 0:
            return 0
        for i in range(self.tpdo_n[k]):
            s = self.tpdo_slots[k * SIM402_MAX_MAPPED + i]
            u = <unsigned long long>self.od_value[s]
            for j in range(self.od_size[s]):
                f.data[off + j] = (u >> (8 * j)) & 0xFF
            off += self.od_size[s]
        f.can_id = <unsigned int>(cob & 0x7FF)
        f.dlc = off
        f.flags = 0
        return 1

    # ---- NMT and SDO ----
    cdef void _nmt(self, int cs, double now_s) noexcept nogil:
        cdef unsigned char boot = 0
        if cs == 0x01:
            self.nmt_state = NMT_OPERATIONAL
        elif cs == 0x02:
            self.nmt_state = NMT_STOPPED
        elif cs == 0x80:
            self.nmt_state = NMT_PRE_OPERATIONAL
        elif cs == 0x81 or cs == 0x82:
            self._reset(cs == 0x82)
            self._queue(0x700 + self.node_id, &boot, 1)     # boot-up, then pre-operational

    cdef unsigned int _sdo_write(self, int slot, unsigned int index, unsigned int sub, long long v,
                                 int n, double now_s) noexcept nogil:
        """Write ``v`` to ``slot``; 0 or the SDO abort code."""
        cdef int k
        cdef long long old
        if n != 0 and n != self.od_size[slot]:
            return ABORT_LENGTH
        if self.od_flags[slot] & F_SIGNED and v & (1LL << (8 * self.od_size[slot] - 1)):
            v = v - (1LL << (8 * self.od_size[slot]))
        for k in range(self.n_rpdo + self.n_tpdo):
            # a mapping record: only while its PDO is invalid (CiA 301 7.2.2.4)
            if k < self.n_rpdo and self.rpdo_map[k] <= slot <= self.rpdo_map[k] + SIM402_MAX_MAPPED \
                    and self.od_key[slot] >> 8 == self.od_key[self.rpdo_map[k]] >> 8:
                if not self.od_value[self.rpdo_comm[k]] & PDO_INVALID:
                    return ABORT_STATE
                old = self.od_value[slot]
                self.od_value[slot] = v
                if sub == 0 and not self._remap(False, k):
                    self.od_value[slot] = old
                    return ABORT_PDO_LENGTH if v <= SIM402_MAX_MAPPED else ABORT_RANGE
                return 0
            if k >= self.n_rpdo and self.tpdo_map[k - self.n_rpdo] <= slot <= self.tpdo_map[k - self.n_rpdo] + SIM402_MAX_MAPPED \
                    and self.od_key[slot] >> 8 == self.od_key[self.tpdo_map[k - self.n_rpdo]] >> 8:
                if not self.od_value[self.tpdo_comm[k - self.n_rpdo]] & PDO_INVALID:
                    return ABORT_STATE
                old = self.od_value[slot]
                self.od_value[slot] = v
                if sub == 0 and not self._remap(True, k - self.n_rpdo):
                    self.od_value[slot] = old
                    return ABORT_PDO_LENGTH if v <= SIM402_MAX_MAPPED else ABORT_RANGE
                return 0
        if slot == self.s_abort_option and not 0 <= v <= 3:
            return ABORT_RANGE
        if slot == self.s_mode and v != 10 and v != 0:
            return ABORT_RANGE          # this drive: cyclic synchronous torque only
        if slot == self.s_controlword:
            self._controlword(<unsigned int>v, now_s)
            return 0
        self.od_value[slot] = v
        if slot == self.s_mode and self.s_mode_display >= 0:
            self.od_value[self.s_mode_display] = v
        elif slot == self.s_producer:
            self.hb_next_s = now_s + v * 1e-3 if v > 0 else -1.0
        elif slot == self.s_consumer:
            self.consumer_started = False   # starts with the next heartbeat of the node
        return 0

    cdef void _sdo(self, const unsigned char* d, int dlc, double now_s) noexcept nogil:
        cdef unsigned char r[8]
        cdef int ccs, slot, i, n, size
        cdef unsigned int index, sub, abort = 0
        cdef long long v = 0
        cdef unsigned long long u
        if dlc != 8:
            return
        ccs = d[0] >> 5
        index = d[1] | (<unsigned int>d[2] << 8)
        sub = d[3]
        for i in range(8):
            r[i] = 0
        r[1], r[2], r[3] = d[1], d[2], d[3]
        slot = self._find(index, sub)
        if ccs == 1 or ccs == 2:
            if slot < 0:
                abort = ABORT_NO_SUB if self._find(index, 0) >= 0 or self._find(index, 1) >= 0 else ABORT_NO_OBJECT
        if abort == 0 and ccs == 1:                     # initiate download
            if not d[0] & 0x02:
                abort = ABORT_COMMAND                   # segmented download: not served
            elif not self.od_flags[slot] & F_WRITE:
                abort = ABORT_READ_ONLY
            else:
                n = 4 - ((d[0] >> 2) & 0x03) if d[0] & 0x01 else 0
                for i in range(4):
                    v |= (<long long>d[4 + i]) << (8 * i)
                if n:
                    v &= (1LL << (8 * n)) - 1
                abort = self._sdo_write(slot, index, sub, v, n, now_s)
                if abort == 0:
                    r[0] = 0x60
        elif abort == 0 and ccs == 2:                   # initiate upload
            if not self.od_flags[slot] & F_READ:
                abort = ABORT_WRITE_ONLY
            elif self.od_flags[slot] & F_STRING:
                size = <int>self.od_default[slot]
                if size == 0:
                    abort = ABORT_NO_DATA
                elif size <= 4:                         # expedited, size indicated
                    r[0] = 0x43 | ((4 - size) << 2)
                    for i in range(size):
                        r[4 + i] = self.strings[self.od_value[slot] + i]
                else:                                   # segmented: the size, then 7 bytes a segment
                    r[0] = 0x41
                    r[4], r[5], r[6], r[7] = size & 0xFF, (size >> 8) & 0xFF, 0, 0
                    self.seg_slot, self.seg_pos, self.seg_toggle = slot, 0, 0
            else:
                if slot == self.s_position or slot == self.s_velocity or slot == self.s_torque_actual \
                        or slot == self.s_dc_link or slot == self.s_temperature:
                    self._update_readings()
                size = self.od_size[slot]
                u = <unsigned long long>self.od_value[slot]
                r[0] = 0x43 | ((4 - size) << 2)
                for i in range(size):
                    r[4 + i] = (u >> (8 * i)) & 0xFF
        elif ccs == 3:                                  # upload segment (7.2.4.3.7)
            if self.seg_slot < 0:
                abort = ABORT_COMMAND
            elif (d[0] & 0x10) != self.seg_toggle:
                abort = ABORT_TOGGLE
                self.seg_slot = -1
            else:
                n = <int>self.od_default[self.seg_slot] - self.seg_pos
                if n > 7:
                    n = 7
                for i in range(8):
                    r[i] = 0
                for i in range(n):
                    r[1 + i] = self.strings[self.od_value[self.seg_slot] + self.seg_pos + i]
                self.seg_pos += n
                r[0] = self.seg_toggle | ((7 - n) << 1)
                self.seg_toggle ^= 0x10
                if self.seg_pos >= self.od_default[self.seg_slot]:
                    r[0] |= 0x01                        # c: the last segment
                    self.seg_slot = -1
        elif ccs == 4:                                  # abort from the client
            self.seg_slot = -1
            return
        elif abort == 0:
            abort = ABORT_COMMAND
        if abort:
            r[0] = 0x80
            r[4], r[5], r[6], r[7] = abort & 0xFF, (abort >> 8) & 0xFF, (abort >> 16) & 0xFF, (abort >> 24) & 0xFF
        self._queue(0x580 + self.node_id, r, 8)

    # ---- the frame interface (sim._simdrive.SimDrive) ----
    cdef int receive(self, const CanFrame* f, double now_s) noexcept nogil:
        cdef unsigned int id = f.can_id
        cdef int k, i, before = self.n_pending
        cdef long long cob, consumer
        if f.flags & LINK_REMOTE:
            return 0
        self._check(now_s)
        if id == 0x000:
            if f.dlc == 2 and (f.data[1] == 0 or f.data[1] == self.node_id):
                self._nmt(f.data[0], now_s)
        elif id == 0x080:
            if self.nmt_state == NMT_OPERATIONAL:
                self.syncs += 1
                for k in range(self.n_rpdo):
                    cob = self.od_value[self.rpdo_comm[k]]
                    if self.rpdo_new[k] and not cob & PDO_INVALID:
                        self.rpdo_new[k] = False
                        self._apply_rpdo(k, now_s)
                self.syncs_pending += 1
                return self.n_pending - before + 1
        elif id == 0x600 + <unsigned int>self.node_id:
            if self.nmt_state != NMT_STOPPED:
                self._sdo(f.data, f.dlc, now_s)
        elif 0x701 <= id <= 0x77F:
            consumer = self.od_value[self.s_consumer]
            if (consumer >> 16) & 0x7F == id - 0x700 and consumer & 0xFFFF and f.dlc >= 1:
                self.consumer_started = True
                self.consumer_last_s = now_s
        elif self.nmt_state == NMT_OPERATIONAL:
            for k in range(self.n_rpdo):
                cob = self.od_value[self.rpdo_comm[k]]
                if not cob & PDO_INVALID and id == <unsigned int>(cob & 0x7FF):
                    if f.dlc >= self.rpdo_len[k]:       # shorter: CiA 301 EMCY 0x8210, not processed
                        for i in range(f.dlc):
                            self.rpdo_buf[k * 8 + i] = f.data[i]
                        self.rpdo_new[k] = True
                        if self.od_value[self.rpdo_comm[k] + 1] >= 254:
                            self.rpdo_new[k] = False    # event-driven RPDO: at once
                            self._apply_rpdo(k, now_s)
                    else:
                        self._emcy(0x8210)
        return self.n_pending - before

    cdef int respond(self, int due, double now_s, bint cyclic, CanFrame* out, int max_out) noexcept nogil:
        cdef int i, k, n = 0
        cdef long long ttype
        cdef unsigned char state
        self._check(now_s)
        for i in range(self.n_pending):
            if n < max_out:
                out[n] = self.pending[i]
                n += 1
        self.n_pending = 0
        if self.syncs_pending > 0:
            self._update_readings()
            while self.syncs_pending > 0:
                self.syncs_pending -= 1
                for k in range(self.n_tpdo):
                    ttype = self.od_value[self.tpdo_comm[k] + 1]
                    if not 1 <= ttype <= 240:
                        continue
                    self.tpdo_count[k] += 1
                    if self.tpdo_count[k] >= ttype:
                        self.tpdo_count[k] = 0
                        if n < max_out and self.nmt_state == NMT_OPERATIONAL:
                            n += self._tpdo(k, &out[n])
        if cyclic and self.hb_next_s >= 0 and now_s >= self.hb_next_s - 1e-9 and n < max_out:
            state = self.nmt_state
            out[n].can_id = 0x700 + self.node_id
            out[n].dlc = 1
            out[n].flags = 0
            out[n].data[0] = state
            n += 1
            self.hb_next_s += self.od_value[self.s_producer] * 1e-3
            if self.hb_next_s < now_s:
                self.hb_next_s = now_s + self.od_value[self.s_producer] * 1e-3
        return n
