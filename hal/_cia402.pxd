# CiA 402 servo drive over CANopen (CiA 301), cyclic synchronous torque: frame codec for the tick.
# Implemented in _cia402.pyx.  The PDO layout is not fixed here: set-up (hal/cia402.py) maps the
# PDOs over SDO from the EDS and hands the byte offsets to the codec at construction, so every
# per-tick function below reads a Cia402Layout.  CANopen data is little-endian (CiA 301 7.1).
from controller.kernels._types cimport Inputs, Command
from hal._link cimport CanFrame
from hal._codec cimport DriveCodec

cdef enum:
    CIA402_MAX_TPDOS = 3
    # CiA 301 pre-defined connection set (function code << 7 | node id)
    CIA402_NMT_ID = 0x000
    CIA402_SYNC_ID = 0x080
    CIA402_EMCY_BASE = 0x080
    CIA402_TPDO1_BASE = 0x180
    CIA402_RPDO1_BASE = 0x200
    CIA402_SDO_TX_BASE = 0x580       # drive -> host
    CIA402_SDO_RX_BASE = 0x600       # host -> drive
    CIA402_HEARTBEAT_BASE = 0x700
    # NMT states in a heartbeat (CiA 301 7.2.8.3.2.2)
    CIA402_NMT_BOOTUP = 0x00
    CIA402_NMT_STOPPED = 0x04
    CIA402_NMT_OPERATIONAL = 0x05
    CIA402_NMT_PRE_OPERATIONAL = 0x7F
    # controlword commands (CiA 402 6.2.1)
    CIA402_CW_SHUTDOWN = 0x0006
    CIA402_CW_SWITCH_ON = 0x0007
    CIA402_CW_ENABLE_OPERATION = 0x000F
    CIA402_CW_DISABLE_VOLTAGE = 0x0000
    CIA402_CW_FAULT_RESET = 0x0080
    # statusword bits (CiA 402 6.2.2)
    CIA402_SW_FAULT = 0x0008
    # motor_error of a statusword / NMT state with no EMCY code: above every 16-bit EMCY code
    CIA402_ERROR_STATE = 0x10000      # | statusword: the drive is not Operation Enabled
    CIA402_ERROR_NMT = 0x20000        # | NMT state: the drive left Operational

# One mapped object: which PDO (0..) it is in, where, how wide, signed or not; pdo < 0 = unmapped.
ctypedef struct Cia402Field:
    int pdo
    int offset          # byte offset in the PDO
    int size            # bytes: 1, 2 or 4
    bint signed

ctypedef struct Cia402Layout:
    unsigned int rpdo_id
    int rpdo_dlc
    Cia402Field controlword         # in the RPDO (pdo 0)
    Cia402Field target_torque       # in the RPDO (pdo 0)
    int n_tpdos
    unsigned int tpdo_ids[CIA402_MAX_TPDOS]
    int tpdo_dlc[CIA402_MAX_TPDOS]
    Cia402Field statusword
    Cia402Field torque_actual
    Cia402Field position
    Cia402Field velocity
    Cia402Field dc_link             # 0x6079, mV
    Cia402Field temperature         # vendor object, 0.1 degC

ctypedef struct Cia402Emcy:
    unsigned int code               # emergency error code (CiA 301 7.2.7.3.1), 0 = error reset
    unsigned int error_register     # 0x1001 at the time
    unsigned char vendor[5]

# Per-tick functions (noexcept nogil, no allocation)
cdef bint cia402_field_get(const unsigned char* data, int dlc, const Cia402Field* f, long long* out) noexcept nogil
cdef void cia402_field_put(unsigned char* data, const Cia402Field* f, long long v) noexcept nogil
# RPDO of the layout: controlword + target torque [per mille].  Returns its DLC.
cdef int cia402_pack_rpdo(unsigned char* out, const Cia402Layout* lay, unsigned int controlword,
                          int torque_permille) noexcept nogil
# Motor torque [N*m] -> per mille of rated, rounded, clamped to +-limit_permille (and int16).
# Returns 0 and leaves out untouched for a non-finite torque or a rated torque <= 0.
cdef bint cia402_torque_permille(double torque_Nm, double rated_Nm, int limit_permille, int* out) noexcept nogil
cdef void cia402_sync_frame(CanFrame* f) noexcept nogil
cdef void cia402_heartbeat_frame(CanFrame* f, int node_id, int state) noexcept nogil
cdef bint cia402_unpack_emcy(const unsigned char* data, int dlc, Cia402Emcy* out) noexcept nogil
cdef bint cia402_operation_enabled(unsigned int statusword) noexcept nogil
cdef bint cia402_fault(unsigned int statusword) noexcept nogil

cdef class Cia402Codec(DriveCodec):
    cdef Cia402Layout lay
    cdef readonly int node_id
    cdef readonly int host_node_id
    cdef readonly double rated_torque_Nm      # 0x6076 at the drive's output shaft (x gear ratio)
    cdef readonly int limit_permille          # the most a target torque carries (the torque limit)
    cdef readonly double rad_per_count        # 0x6064 -> rad at the output shaft
    cdef readonly double rad_s_per_unit       # 0x606C -> rad/s at the output shaft
    cdef readonly double heartbeat_period_s   # the host's heartbeat producer period
    cdef readonly long heartbeat_every        # encode calls between two host heartbeats
    cdef readonly long long encodes
    cdef readonly unsigned int statusword     # last decoded (0x10000: none yet)
    cdef readonly unsigned int emcy_code      # last EMCY's code (0: reset / none)
    cdef readonly int nmt_state               # last heartbeat's state (-1: none yet)
    cdef double temp_scale, volt_scale          # temperature [degC], DC link [V] per unit
    cdef unsigned int emcy_id, heartbeat_id
    cdef int _error(self) noexcept nogil
