# CubeMars / T-Motor AK series, MIT mode: frame codec for the tick (no Python objects).
# Layout and scaling: docs/reference.md, "Motor driver".  All values are on the
# driver's output shaft (after its internal gearbox): rad, rad/s, N*m.  Implemented in _mit.pyx.

cdef enum:
    MIT_FRAME_NONE = 0
    MIT_FRAME_ENTER = 1     # FF FF FF FF FF FF FF FC
    MIT_FRAME_EXIT = 2      # ... FD
    MIT_FRAME_ZERO = 3      # ... FE
    MIT_FRAME_COMMAND = 4   # any other DLC-8 frame

ctypedef struct MitRange:
    double p_min
    double p_max
    double v_min
    double v_max
    double kp_min
    double kp_max
    double kd_min
    double kd_max
    double t_min
    double t_max

ctypedef struct MitCommand:
    double p_rad
    double v_rad_s
    double kp_Nm_rad
    double kd_Nms_rad
    double t_Nm

ctypedef struct MitReply:
    int driver_id
    double p_rad
    double v_rad_s
    double t_Nm             # the reply's current field, scaled with the torque range
    int temperature_C       # -1000 when the reply is the short (DLC 6) form
    int error_code          # 0 none; -1 when the reply is the short form

# Clamp each field to its range and pack 8 bytes into out.  Returns 8, or -1 (out untouched)
# when any value is NaN/Inf.
cdef int mit_pack_command(unsigned char* out, const MitRange* r, const MitCommand* c) noexcept nogil
# Decode an 8-byte command (the simulated driver's side).  Returns 0, or -1 on a wrong length.
cdef int mit_unpack_command(const unsigned char* data, int dlc, const MitRange* r, MitCommand* out) noexcept nogil
# Pack a reply (DLC 8: temperature and error included).  Returns 8, or -1 on NaN/Inf.
cdef int mit_pack_reply(unsigned char* out, const MitRange* r, const MitReply* rep) noexcept nogil
# Decode a reply of DLC 8 or 6.  Returns 0, or -1 on any other length.
cdef int mit_unpack_reply(const unsigned char* data, int dlc, const MitRange* r, MitReply* out) noexcept nogil
# Which kind of frame a host->driver payload is (MIT_FRAME_*); MIT_FRAME_NONE for a wrong length.
cdef int mit_frame_kind(const unsigned char* data, int dlc) noexcept nogil
