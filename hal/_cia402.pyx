# cython: language_level=3
"""CiA 402 servo drive over CANopen, cyclic synchronous torque (0x6060 = 10): the protocol's one
definition for the tick (declared in _cia402.pxd) and its per-tick codec, :class:`Cia402Codec`.

Per tick the host sends RPDO1 (controlword 0x000F + target torque 0x6071, per mille of the rated
torque 0x6076), then SYNC (0x080): a synchronous RPDO takes effect at the next SYNC and the
drive's synchronous TPDOs answer that SYNC (CiA 301 7.2.2.2).  Every ``heartbeat_every``-th tick
the host's heartbeat (0x700 + host node id, state Operational) goes too: the drive's heartbeat
consumer (0x1016) is then fed by the tick itself, so a hung tick starves it.  Received: the TPDOs
(statusword 0x6041, torque actual 0x6077, DC link voltage 0x6079, position 0x6064, velocity
0x606C, temperature), EMCY (0x080 + node) and the drive's heartbeat (0x700 + node).

The PDO layout comes from set-up (hal/cia402.py: the mapping it wrote over SDO), as a dict per
field; the cdef functions never look anything up.  Facts and their sources:
docs/drivers_cia402_facts.md.
"""
from libc.math cimport isfinite, round as c_round, NAN
from hal._codec cimport (DRIVE_READS_ANGLE, DRIVE_READS_VELOCITY, DRIVE_READS_TORQUE,
                         DRIVE_READS_TEMPERATURE, DRIVE_READS_ERROR, DRIVE_READS_SUPPLY,
                         DRIVE_MAX_RX_IDS)

# --- the protocol ---------------------------------------------------------------------------------

cdef bint cia402_field_get(const unsigned char* data, int dlc, const Cia402Field* f,
                           long long* out) noexcept nogil:
    """Little-endian field ``f`` of a PDO's data; False when it lies beyond ``dlc``."""
    cdef unsigned long long u = 0
    cdef int i
    if f.pdo < 0 or f.offset < 0 or f.offset + f.size > dlc or f.size < 1 or f.size > 4:
        return False
    for i in range(f.size):
        u |= (<unsigned long long>data[f.offset + i]) << (8 * i)
    if f.signed and u & (1ULL << (8 * f.size - 1)):
        out[0] = <long long>u - (1LL << (8 * f.size))
    else:
        out[0] = <long long>u
    return True


cdef void cia402_field_put(unsigned char* data, const Cia402Field* f, long long v) noexcept nogil:
    """Write ``v`` (two's complement, truncated to the field) little-endian at ``f``."""
    cdef unsigned long long u = <unsigned long long>v
    cdef int i
    if f.offset < 0 or f.size < 1 or f.size > 4 or f.offset + f.size > 8:
        return
    for i in range(f.size):
        data[f.offset + i] = (u >> (8 * i)) & 0xFF


cdef int cia402_pack_rpdo(unsigned char* out, const Cia402Layout* lay, unsigned int controlword,
                          int torque_permille) noexcept nogil:
    cdef int i
    for i in range(lay.rpdo_dlc):
        out[i] = 0
    cia402_field_put(out, &lay.controlword, controlword)
    cia402_field_put(out, &lay.target_torque, torque_permille)
    return lay.rpdo_dlc


cdef bint cia402_torque_permille(double torque_Nm, double rated_Nm, int limit_permille,
                                 int* out) noexcept nogil:
    cdef double pm
    cdef int lim = limit_permille
    if not isfinite(torque_Nm) or not (rated_Nm > 0.0) or not isfinite(rated_Nm):
        return False
    if lim > 32767:
        lim = 32767
    if lim < 0:
        lim = 0
    pm = torque_Nm / rated_Nm * 1000.0
    # clamp before rounding: a huge torque must not overflow the int conversion
    if pm > lim:
        pm = lim
    elif pm < -lim:
        pm = -lim
    out[0] = <int>c_round(pm)
    return True


cdef void cia402_sync_frame(CanFrame* f) noexcept nogil:
    # SYNC without the counter (0x1019 = 0): DLC 0 (CiA 301 7.2.5.3)
    f.can_id = CIA402_SYNC_ID
    f.dlc = 0
    f.flags = 0


cdef void cia402_heartbeat_frame(CanFrame* f, int node_id, int state) noexcept nogil:
    # heartbeat: one byte, the NMT state, bit 7 reserved 0 (CiA 301 7.2.8.3.2.2)
    f.can_id = CIA402_HEARTBEAT_BASE + (node_id & 0x7F)
    f.dlc = 1
    f.flags = 0
    f.data[0] = state & 0x7F


cdef bint cia402_unpack_emcy(const unsigned char* data, int dlc, Cia402Emcy* out) noexcept nogil:
    # EMCY: error code u16 LE, error register u8, 5 bytes manufacturer-specific (CiA 301 7.2.7.3.1)
    cdef int i
    if dlc != 8:
        return False
    out.code = data[0] | (<unsigned int>data[1] << 8)
    out.error_register = data[2]
    for i in range(5):
        out.vendor[i] = data[3 + i]
    return True


cdef bint cia402_operation_enabled(unsigned int statusword) noexcept nogil:
    # xxxx xxxx x01x 0111 (CiA 402 6.2.2, table: state coding)
    return (statusword & 0x6F) == 0x27


cdef bint cia402_fault(unsigned int statusword) noexcept nogil:
    # Fault (xxxx xxxx x0xx 1000) or Fault reaction active (x0xx 1111): bit 3 set
    return (statusword & CIA402_SW_FAULT) != 0


# --- the standard EMCY codes (CiA 301 7.2.7.3.1 table 21; CiA 402 table of error codes) ---------

#: EMCY error code -> meaning.  The exact codes first, then the classes (high byte), for a code
#: a vendor refines (e.g. 0x4310 over 0x4300).
EMCY_CODES = {
    0x0000: "error reset / no error",
    0x1000: "generic error",
    0x2310: "continuous over-current",
    0x2320: "short circuit / earth leakage",
    0x3210: "DC link over-voltage",
    0x3220: "DC link under-voltage",
    0x4210: "excess temperature device",
    0x4310: "excess temperature drive",
    0x5000: "device hardware",
    0x5530: "EEPROM / data storage",
    0x6000: "device software",
    0x6320: "parameter error",
    0x7121: "motor blocked",
    0x7300: "sensor",
    0x7305: "incremental sensor 1 fault",
    0x7500: "communication",
    0x8110: "CAN overrun (objects lost)",
    0x8120: "CAN in error passive mode",
    0x8130: "life guard error or heartbeat error",
    0x8140: "recovered from bus off",
    0x8210: "PDO not processed due to length error",
    0x8611: "following error",
    0xFF00: "device specific",
}
EMCY_CLASSES = {
    0x10: "generic error", 0x20: "current", 0x21: "current, device input side",
    0x22: "current inside the device", 0x23: "current, device output side", 0x30: "voltage",
    0x31: "mains voltage", 0x32: "voltage inside the device", 0x33: "output voltage",
    0x40: "temperature", 0x41: "ambient temperature", 0x42: "device temperature",
    0x43: "drive temperature", 0x50: "device hardware", 0x60: "device software", 0x70: "additional modules",
    0x73: "sensor", 0x75: "communication", 0x80: "monitoring", 0x81: "communication (CAN)",
    0x82: "protocol error", 0x84: "velocity / speed controller", 0x86: "position controller",
    0x90: "external error", 0xF0: "additional functions", 0xFF: "device specific",
}
NMT_STATES = {0x00: "boot-up", 0x04: "stopped", 0x05: "operational", 0x7F: "pre-operational"}


def statusword_state(unsigned int sw):
    """The CiA 402 state a statusword codes (CiA 402 6.2.2)."""
    if sw & 0x4F == 0x00:
        return "not ready to switch on"
    if sw & 0x4F == 0x40:
        return "switch on disabled"
    if sw & 0x6F == 0x21:
        return "ready to switch on"
    if sw & 0x6F == 0x23:
        return "switched on"
    if sw & 0x6F == 0x27:
        return "operation enabled"
    if sw & 0x6F == 0x07:
        return "quick stop active"
    if sw & 0x4F == 0x0F:
        return "fault reaction active"
    if sw & 0x4F == 0x08:
        return "fault"
    return f"unknown state (statusword {sw:#06x})"


def describe_emcy(unsigned int code):
    """One line for an EMCY error code."""
    if code in EMCY_CODES:
        return f"EMCY {code:#06x}: {EMCY_CODES[code]}"
    cls = EMCY_CLASSES.get(code >> 8) or EMCY_CLASSES.get((code >> 12) << 4)
    return f"EMCY {code:#06x}: {cls or 'unknown'}" + (" (class)" if cls else "")


def describe_error(long code):
    """One line for a :class:`Cia402Codec` motor_error: an EMCY code, a drive not in Operation
    Enabled (its statusword), or a drive out of NMT Operational (its state)."""
    if code == 0:
        return "none"
    if code & CIA402_ERROR_NMT and code < CIA402_ERROR_NMT * 2:
        state = code & 0xFF
        return f"drive NMT state {NMT_STATES.get(state, hex(state))}, not operational"
    if code & CIA402_ERROR_STATE and code < CIA402_ERROR_STATE * 2:
        return f"drive {statusword_state(code & 0xFFFF)}, not operation enabled"
    if 0 < code <= 0xFFFF:
        return describe_emcy(code)
    return f"unknown drive error {code}"


# --- def helpers (tests, tools): the cdef functions from Python -----------------------------------

cdef Cia402Field _field(object spec) except *:
    cdef Cia402Field f
    if spec is None:
        f.pdo, f.offset, f.size, f.signed = -1, -1, 0, False
        return f
    f.pdo, f.offset, f.size, f.signed = int(spec["pdo"]), int(spec["offset"]), int(spec["size"]), bool(spec["signed"])
    if f.size not in (1, 2, 4) or f.offset < 0 or f.offset + f.size > 8 or f.pdo < 0:
        raise ValueError(f"PDO field {dict(spec)!r}: size 1/2/4 bytes within 8, pdo >= 0")
    return f


#: Keys of a layout dict (each a field dict {pdo, offset, size, signed} or None = unmapped).
RPDO_FIELDS = ("controlword", "target_torque")
TPDO_FIELDS = ("statusword", "torque_actual", "position", "velocity", "dc_link", "temperature")


cdef Cia402Layout _layout(dict layout) except *:
    cdef Cia402Layout lay
    cdef int i
    tpdos = list(layout["tpdos"])
    if not 1 <= len(tpdos) <= CIA402_MAX_TPDOS:
        raise ValueError(f"layout: 1..{CIA402_MAX_TPDOS} TPDOs, got {len(tpdos)}")
    lay.rpdo_id, lay.rpdo_dlc = int(layout["rpdo"][0]), int(layout["rpdo"][1])
    lay.n_tpdos = len(tpdos)
    for i in range(CIA402_MAX_TPDOS):
        lay.tpdo_ids[i], lay.tpdo_dlc[i] = (int(tpdos[i][0]), int(tpdos[i][1])) if i < lay.n_tpdos else (0, 0)
    lay.controlword = _field(layout["controlword"])
    lay.target_torque = _field(layout["target_torque"])
    lay.statusword = _field(layout.get("statusword"))
    lay.torque_actual = _field(layout.get("torque_actual"))
    lay.position = _field(layout.get("position"))
    lay.velocity = _field(layout.get("velocity"))
    lay.dc_link = _field(layout.get("dc_link"))
    lay.temperature = _field(layout.get("temperature"))
    if lay.controlword.pdo != 0 or lay.target_torque.pdo != 0 or lay.controlword.size != 2 \
            or lay.target_torque.size != 2 or not 4 <= lay.rpdo_dlc <= 8:
        raise ValueError("layout: the RPDO must carry the controlword and the target torque (2 bytes each)")
    for name in TPDO_FIELDS:
        spec = layout.get(name)
        if spec is not None and (int(spec["pdo"]) >= lay.n_tpdos
                                 or int(spec["offset"]) + int(spec["size"]) > lay.tpdo_dlc[int(spec["pdo"])]):
            raise ValueError(f"layout: {name} lies outside its TPDO")
    return lay


def pack_rpdo(dict layout, unsigned int controlword, int torque_permille):
    """The RPDO's bytes for one controlword and target torque [per mille]."""
    cdef Cia402Layout lay = _layout(layout)
    cdef unsigned char buf[8]
    cdef int n = cia402_pack_rpdo(buf, &lay, controlword, torque_permille)
    return bytes(buf[:n])


def torque_permille(double torque_Nm, double rated_Nm, int limit_permille):
    """Per mille of rated for a torque [N*m], or None when it cannot be encoded (non-finite)."""
    cdef int out
    if not cia402_torque_permille(torque_Nm, rated_Nm, limit_permille, &out):
        return None
    return out


def unpack_emcy(data):
    """(code, error_register, vendor bytes) of an EMCY payload, or None for a wrong length."""
    cdef bytes b = bytes(data)
    cdef Cia402Emcy e
    if not cia402_unpack_emcy(b, len(b), &e):
        return None
    return e.code, e.error_register, bytes(e.vendor[:5])


def sync_frame():
    cdef CanFrame f
    cia402_sync_frame(&f)
    return f.can_id, b""


def heartbeat_frame(int node_id, int state=CIA402_NMT_OPERATIONAL):
    cdef CanFrame f
    cia402_heartbeat_frame(&f, node_id, state)
    return f.can_id, bytes(f.data[:1])


# --- the per-tick codec ---------------------------------------------------------------------------

cdef class Cia402Codec(DriveCodec):
    """A CiA 402 drive in cyclic synchronous torque mode (torque only): per tick RPDO1 + SYNC (+ the
    host's heartbeat every ``heartbeat_every``-th tick); decodes its TPDOs, EMCY and heartbeat.

    ``layout``: the PDO layout set-up wrote (hal.cia402.Cia402Driver.layout).  ``node_id``: the
    drive's.  ``host_node_id``: the id the host's heartbeat carries (the drive's 0x1016 consumes
    it).  ``rated_torque_Nm``: 0x6076 at the output shaft (x the gear ratio).  ``torque_limit_Nm``:
    the most a command carries (output shaft).  ``rad_per_count`` / ``rad_s_per_unit``: 0x6064 /
    0x606C to the output shaft.  ``watchdog_s``: the drive's heartbeat consumer time.
    ``heartbeat_period_s``: the host's heartbeat producer period.  ``temperature_C_per_unit``,
    ``volt_per_unit``: scales of the temperature and DC link readings (when mapped).
    """

    def __init__(self, dict layout, int node_id, int host_node_id, double rated_torque_Nm,
                 double torque_limit_Nm, double rad_per_count, double rad_s_per_unit,
                 double velocity_limit_rad_s, double watchdog_s, double heartbeat_period_s,
                 double temperature_C_per_unit=0.1, double volt_per_unit=0.001):
        cdef int i
        if not 1 <= node_id <= 127 or not 1 <= host_node_id <= 127 or node_id == host_node_id:
            raise ValueError(f"node ids: two different CANopen ids 1..127, got {node_id}, {host_node_id}")
        for name, v in (("rated_torque_Nm", rated_torque_Nm), ("torque_limit_Nm", torque_limit_Nm),
                        ("rad_per_count", rad_per_count), ("rad_s_per_unit", rad_s_per_unit),
                        ("watchdog_s", watchdog_s), ("heartbeat_period_s", heartbeat_period_s),
                        ("velocity_limit_rad_s", velocity_limit_rad_s)):
            if not (isfinite(v) and v > 0):
                raise ValueError(f"{name}: must be finite and > 0, got {v!r}")
        self.lay = _layout(layout)
        self.node_id, self.host_node_id = node_id, host_node_id
        self.rated_torque_Nm = rated_torque_Nm
        self.limit_permille = <int>c_round(torque_limit_Nm / rated_torque_Nm * 1000.0)
        if not 0 < self.limit_permille <= 32767:
            raise ValueError(f"torque_limit_Nm: {torque_limit_Nm} N*m is {self.limit_permille} per mille of "
                             f"the rated {rated_torque_Nm} N*m, need 1..32767")
        self.rad_per_count, self.rad_s_per_unit = rad_per_count, rad_s_per_unit
        self.temp_scale, self.volt_scale = temperature_C_per_unit, volt_per_unit
        self.heartbeat_period_s = heartbeat_period_s
        self.heartbeat_every = 1
        self.encodes = 0
        self.statusword = 0x10000
        self.emcy_code = 0
        self.nmt_state = -1
        self.name = "cia402"
        self.impedance = False
        self.readings = DRIVE_READS_ERROR
        if self.lay.position.pdo >= 0:
            self.readings |= DRIVE_READS_ANGLE
        if self.lay.velocity.pdo >= 0:
            self.readings |= DRIVE_READS_VELOCITY
        if self.lay.torque_actual.pdo >= 0:
            self.readings |= DRIVE_READS_TORQUE
        if self.lay.temperature.pdo >= 0:
            self.readings |= DRIVE_READS_TEMPERATURE
        if self.lay.dc_link.pdo >= 0:
            self.readings |= DRIVE_READS_SUPPLY
        self.watchdog_s = watchdog_s
        self.torque_limit_Nm = torque_limit_Nm
        self.velocity_limit_rad_s = velocity_limit_rad_s
        self.torque_range_name = "torque limit (0x6072)"
        self.tx_id = self.lay.rpdo_id
        self.emcy_id = CIA402_EMCY_BASE + node_id
        self.heartbeat_id = CIA402_HEARTBEAT_BASE + node_id
        self.n_rx_ids = 0
        for i in range(self.lay.n_tpdos):
            self._rx_ids[self.n_rx_ids] = self.lay.tpdo_ids[i]
            self.n_rx_ids += 1
        self._rx_ids[self.n_rx_ids] = self.emcy_id
        self._rx_ids[self.n_rx_ids + 1] = self.heartbeat_id
        self.n_rx_ids += 2

    @property
    def layout(self):
        """The PDO layout in force (tools, tests)."""
        return self.lay

    cdef void set_period(self, double period_s) noexcept nogil:
        """The loop's period: the host's heartbeat goes every round(heartbeat period / period)-th
        tick (at least every tick)."""
        cdef double n
        self.period_s = period_s
        if isfinite(period_s) and period_s > 0:
            n = c_round(self.heartbeat_period_s / period_s)
            self.heartbeat_every = <long>n if n >= 1 else 1
        else:
            self.heartbeat_every = 1

    cdef int encode(self, const Command* cmd, CanFrame* out, int max_frames) noexcept nogil:
        cdef double t_Nm
        cdef int pm, n = 0
        cdef bint beat
        if max_frames < 3:
            return 0
        t_Nm = self.motor_torque_Nm(cmd)
        # non-finite (or no transmission yet): nothing this tick; the drive's consumer times out
        if not cia402_torque_permille(t_Nm, self.rated_torque_Nm, self.limit_permille, &pm):
            return 0
        out[0].can_id = self.lay.rpdo_id
        out[0].flags = 0
        out[0].dlc = cia402_pack_rpdo(out[0].data, &self.lay, CIA402_CW_ENABLE_OPERATION, pm)
        cia402_sync_frame(&out[1])
        n = 2
        beat = self.encodes % self.heartbeat_every == 0
        self.encodes += 1
        if beat:
            cia402_heartbeat_frame(&out[2], self.host_node_id, CIA402_NMT_OPERATIONAL)
            n = 3
        return n

    cdef int _error(self) noexcept nogil:
        # an EMCY code first (the drive's own reason), then its state machine, then its NMT state
        if self.emcy_code != 0:
            return <int>self.emcy_code
        if self.statusword <= 0xFFFF and (cia402_fault(self.statusword)
                                          or not cia402_operation_enabled(self.statusword)):
            return CIA402_ERROR_STATE | <int>self.statusword
        if self.nmt_state >= 0 and self.nmt_state != CIA402_NMT_OPERATIONAL:
            return CIA402_ERROR_NMT | self.nmt_state
        return 0

    cdef bint decode(self, unsigned int can_id, const unsigned char* data, int dlc, double now_s,
                     Inputs* inp) noexcept nogil:
        cdef int i, pdo = -1
        cdef long long v, p
        cdef Cia402Emcy e
        cdef bint have_p, have_v
        if can_id == self.emcy_id:
            if not cia402_unpack_emcy(data, dlc, &e):
                return False
            self.emcy_code = e.code
            inp.motor_error = self._error()
            return True
        if can_id == self.heartbeat_id:
            if dlc != 1:
                return False
            self.nmt_state = data[0] & 0x7F
            inp.motor_error = self._error()
            return True
        for i in range(self.lay.n_tpdos):
            if self.lay.tpdo_ids[i] == can_id:
                pdo = i
                break
        if pdo < 0 or dlc < self.lay.tpdo_dlc[pdo]:
            return False
        if self.lay.statusword.pdo == pdo and cia402_field_get(data, dlc, &self.lay.statusword, &v):
            self.statusword = <unsigned int>v
            inp.motor_error = self._error()
        if self.lay.torque_actual.pdo == pdo and cia402_field_get(data, dlc, &self.lay.torque_actual, &v):
            # + motor torque turns the drive positive; plantar-flexor torque is + at the ankle
            inp.motor_torque_Nm = (-self.direction * self.ratio * self.efficiency
                                   * (<double>v * 0.001 * self.rated_torque_Nm))
        if self.lay.dc_link.pdo == pdo and cia402_field_get(data, dlc, &self.lay.dc_link, &v):
            inp.drive_supply_V = <double>v * self.volt_scale
        if self.lay.temperature.pdo == pdo and cia402_field_get(data, dlc, &self.lay.temperature, &v):
            inp.motor_temp_C = <double>v * self.temp_scale
        have_p = self.lay.position.pdo == pdo and cia402_field_get(data, dlc, &self.lay.position, &p)
        have_v = self.lay.velocity.pdo == pdo and cia402_field_get(data, dlc, &self.lay.velocity, &v)
        if have_p:
            inp.motor_angle_rad = <double>p * self.rad_per_count / self.motor_per_ankle_rad - self.motor_zero_rad
        if have_v:
            inp.motor_vel_rad_s = <double>v * self.rad_s_per_unit / self.motor_per_ankle_rad
        if have_p and have_v:
            inp.motor_rx_s = now_s      # the frame the monitor's encoder checks pair with
        return True

    def describe_error(self, long code):
        """One line for a motor_error this codec wrote (:func:`describe_error`)."""
        return describe_error(code)
