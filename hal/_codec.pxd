# The per-tick drive codec: what the tick knows of a motor drive (implemented in _codec.pyx).
#
# A codec turns the tick's bounded ankle Command into this tick's CAN frame(s) and a received
# frame into the drive readings of the tick's Inputs, ankle side of the transmission.  Every
# per-tick method is noexcept nogil over fixed records: no Python object, no allocation.  The
# protocol itself lives in the drive's own codec module (hal/_mit.pyx for the AK series); a
# DriveCodec subclass only calls it.
from controller.kernels._types cimport Inputs, Command
from hal._link cimport CanFrame
from hal._mit cimport MitRange

cdef enum:
    DRIVE_MAX_FRAMES = 4        # frames one tick's command may take (encode's max_frames)
    DRIVE_MAX_RX_IDS = 8        # arbitration ids one drive may send on
    # readings a drive gives (DriveCodec.readings, bits)
    DRIVE_READS_ANGLE = 1
    DRIVE_READS_VELOCITY = 2
    DRIVE_READS_TORQUE = 4
    DRIVE_READS_TEMPERATURE = 8
    DRIVE_READS_ERROR = 16
    DRIVE_READS_SUPPLY = 32

cdef class DriveCodec:
    cdef readonly str name                   # the drive table's name (hal.drives.DRIVES)
    cdef readonly bint impedance             # the drive runs kp/kd itself (else torque only)
    cdef readonly int readings               # DRIVE_READS_* bits
    cdef readonly double watchdog_s          # the drive stops torque after this long without a command
    cdef readonly double torque_limit_Nm     # the most torque its command can carry (driver side)
    cdef readonly double velocity_limit_rad_s  # the fastest velocity its reply can carry (driver side)
    cdef readonly str torque_range_name      # how its torque range is called in messages
    cdef readonly unsigned int tx_id         # where commands go
    cdef unsigned int _rx_ids[DRIVE_MAX_RX_IDS]
    cdef readonly int n_rx_ids
    # the transmission (set by the tick from its parameters): ankle <-> driver shaft
    cdef double ratio, efficiency, direction, motor_zero_rad
    cdef double motor_per_ankle_rad          # direction * ratio
    cdef double motor_gain_per_ankle_gain    # 1 / (efficiency * ratio^2)
    cdef readonly double period_s            # the loop's period (set by the tick; NaN before)

    cdef void set_transmission(self, double ratio, double efficiency, double direction,
                               double motor_zero_rad) noexcept nogil
    cdef double motor_torque_Nm(self, const Command* cmd) noexcept nogil
    cdef void set_period(self, double period_s) noexcept nogil
    cdef bint listens(self, unsigned int can_id) noexcept nogil
    cdef int encode(self, const Command* cmd, CanFrame* out, int max_frames) noexcept nogil
    cdef bint decode(self, unsigned int can_id, const unsigned char* data, int dlc, double now_s,
                     Inputs* inp) noexcept nogil

cdef class AkMitCodec(DriveCodec):
    cdef MitRange rng
    cdef readonly int driver_id
    cdef readonly int reply_id
