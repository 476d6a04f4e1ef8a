# The host's per-tick kernel (implemented in _tick.pyx); the real-time loop (_rtloop.pyx) drives it.
from libc.stdint cimport uint32_t, uint64_t
from controller.kernels._params cimport N_PARAMS
from controller.runtime._ring cimport ParamChannel, PARAM_MAX_STEPS, SNAP_BASE
from controller.kernels._types cimport Inputs, Command
from controller.kernels._estimator cimport Estimator
from controller.kernels._pushoff cimport PushoffController
from controller.kernels._safety cimport Safety
from hal._codec cimport DriveCodec
from hal._link cimport FrameLink

cdef class Tick:
    cdef Inputs inp
    cdef Command cmd
    cdef readonly Estimator estimator
    cdef readonly PushoffController controller
    cdef readonly Safety safety
    cdef readonly DriveCodec codec  # the drive: its frames and readings (hal/_codec.pxd)
    cdef readonly bint configured   # configure() has set every parameter
    cdef double applied[N_PARAMS]   # the parameter vector in force (registry order)
    cdef double staged[SNAP_BASE + (PARAM_MAX_STEPS + 1) * N_PARAMS]   # a publication, as taken
    cdef double ramp[PARAM_MAX_STEPS * N_PARAMS]    # an accepted change's steps, one per boundary
    cdef int ramp_next, ramp_count
    cdef uint64_t ramp_generation
    cdef readonly long long params_version          # counts vectors applied
    cdef long long _params_seen
    cdef object _params             # ParamSet of ``applied`` (built when asked, outside the tick)
    cdef double ratio
    cdef double efficiency
    cdef double direction
    cdef double motor_per_ankle_rad          # direction * ratio
    cdef double motor_gain_per_ankle_gain    # 1 / (efficiency * ratio^2)
    cdef double ankle_zero_rad               # calibration offsets, subtracted from the readings
    cdef double motor_zero_rad
    cdef double gyro_bias_rad_s
    cdef double load_offset_N
    cdef public long frames_lost
    cdef int last_imu_seq
    cdef int last_load_seq
    cdef double last_imu_seq_s      # when the frame that set last_*_seq arrived
    cdef double last_load_seq_s
    cdef bint poison_command        # fault injection: the controller's output becomes NaN
    cdef double timing[4]           # late, read, update, write [s] of this tick (note_timing)
    cdef public long long frames_sent, send_errors, error_frames
    cdef int send_failures_run      # consecutive failed sends
    cdef int error_ticks_run        # consecutive ticks that brought error frames
    cdef double moved_s             # last tick at which the wearer walked or the shank turned
    cdef double sound_load_N        # optional sound-side node (0x113): insole force, shank gyro
    cdef double sound_gyro_rad_s
    cdef double sound_rx_s          # when its last good frame arrived (-1: never)

    cdef bint ingest_frame(self, unsigned int can_id, const unsigned char* data, int dlc,
                           double now_s) noexcept nogil
    cdef void note_read(self, int error_frames) noexcept nogil
    cdef void note_send(self, bint ok) noexcept nogil
    cdef void read_link(self, FrameLink link, double now_s) noexcept nogil
    cdef void write_link(self, FrameLink link) noexcept nogil
    cdef int pack_command(self, unsigned char* out) noexcept nogil
    cdef void _update(self, double now_s) noexcept nogil
    cdef void _apply(self, const double* p, int how) noexcept nogil
    cdef void _set_transmission(self, const double* p) noexcept nogil
    cdef void take_params(self, ParamChannel ch) noexcept nogil
    cdef void _consider(self, ParamChannel ch, uint64_t generation) noexcept nogil
    cdef bint at_stride_boundary(self) noexcept nogil
    cdef void publish_row(self, double* r) noexcept nogil
    cdef void _count_seq(self, int* last, double* last_s, int seq, double now_s,
                         uint32_t* frames, uint32_t* disorder, uint32_t* lost) noexcept nogil
