# CubeMars / T-Motor AK series, MIT mode: frame codec.  Declarations and the frame layout are in
# _mit.pxd; the protocol is in docs/reference.md, "Motor driver".
#
# The cdef functions are the per-tick codec: noexcept nogil, no Python objects, no allocation.
# The def wrappers at the end are for set-up code, tools and tests; they validate and raise.
from libc.math cimport isfinite, round as c_round, fmin, fmax

# --- quantisation ---------------------------------------------------------------------------------

cdef inline unsigned int _to_uint(double x, double lo, double hi, int bits) noexcept nogil:
    # Clamp to [lo, hi], then u = round((x - lo) * (2^bits - 1) / (hi - lo)).  C round() rounds
    # halves away from zero; with (x - lo) >= 0 that is "half up".  Callers ensure finite x, lo < hi.
    cdef double span = <double>((1u << bits) - 1u)
    x = fmin(fmax(x, lo), hi)
    return <unsigned int>c_round((x - lo) * span / (hi - lo))


cdef inline double _to_float(unsigned int u, double lo, double hi, int bits) noexcept nogil:
    # x = u * (hi - lo) / (2^bits - 1) + lo
    return <double>u * (hi - lo) / <double>((1u << bits) - 1u) + lo


cdef inline bint _range_ok(double lo, double hi) noexcept nogil:
    # A range the codec can divide by: finite and lo < hi.  (False for NaN bounds too.)
    return isfinite(lo) and isfinite(hi) and lo < hi


cdef inline bint _is_special(const unsigned char* d) noexcept nogil:
    # FF FF FF FF FF FF FF {FC, FD, FE}
    cdef int i
    for i in range(7):
        if d[i] != 0xFF:
            return False
    return d[7] == 0xFC or d[7] == 0xFD or d[7] == 0xFE


# --- per-tick codec (declared in _mit.pxd) --------------------------------------------------------

cdef int mit_pack_command(unsigned char* out, const MitRange* r, const MitCommand* c) noexcept nogil:
    cdef unsigned int p, v, kp, kd, t
    cdef unsigned char buf[8]
    cdef int i
    if not (isfinite(c.p_rad) and isfinite(c.v_rad_s) and isfinite(c.kp_Nm_rad)
            and isfinite(c.kd_Nms_rad) and isfinite(c.t_Nm)):
        return -1
    if not (_range_ok(r.p_min, r.p_max) and _range_ok(r.v_min, r.v_max)
            and _range_ok(r.kp_min, r.kp_max) and _range_ok(r.kd_min, r.kd_max)
            and _range_ok(r.t_min, r.t_max)):
        return -1
    p = _to_uint(c.p_rad, r.p_min, r.p_max, 16)
    v = _to_uint(c.v_rad_s, r.v_min, r.v_max, 12)
    kp = _to_uint(c.kp_Nm_rad, r.kp_min, r.kp_max, 12)
    kd = _to_uint(c.kd_Nms_rad, r.kd_min, r.kd_max, 12)
    t = _to_uint(c.t_Nm, r.t_min, r.t_max, 12)
    buf[0] = (p >> 8) & 0xFF
    buf[1] = p & 0xFF
    buf[2] = (v >> 4) & 0xFF
    buf[3] = ((v & 0xF) << 4) | ((kp >> 8) & 0xF)
    buf[4] = kp & 0xFF
    buf[5] = (kd >> 4) & 0xFF
    buf[6] = ((kd & 0xF) << 4) | ((t >> 8) & 0xF)
    buf[7] = t & 0xFF
    if _is_special(buf):
        # p, v, kp, kd all at full scale and t within 3 LSB of it would put FF..FC/FD/FE on the
        # wire, which the driver reads as enter / exit / SET ZERO.  Take one LSB off kd
        # (5 / 4095 N*m*s/rad on the AK table) so a command can never be mistaken for one.
        kd -= 1
        buf[5] = (kd >> 4) & 0xFF
        buf[6] = ((kd & 0xF) << 4) | ((t >> 8) & 0xF)
    for i in range(8):
        out[i] = buf[i]
    return 8


cdef int mit_unpack_command(const unsigned char* data, int dlc, const MitRange* r,
                            MitCommand* out) noexcept nogil:
    cdef unsigned int p, v, kp, kd, t
    if dlc != 8:
        return -1
    p = (<unsigned int>data[0] << 8) | data[1]
    v = (<unsigned int>data[2] << 4) | (data[3] >> 4)
    kp = ((<unsigned int>data[3] & 0xF) << 8) | data[4]
    kd = (<unsigned int>data[5] << 4) | (data[6] >> 4)
    t = ((<unsigned int>data[6] & 0xF) << 8) | data[7]
    out.p_rad = _to_float(p, r.p_min, r.p_max, 16)
    out.v_rad_s = _to_float(v, r.v_min, r.v_max, 12)
    out.kp_Nm_rad = _to_float(kp, r.kp_min, r.kp_max, 12)
    out.kd_Nms_rad = _to_float(kd, r.kd_min, r.kd_max, 12)
    out.t_Nm = _to_float(t, r.t_min, r.t_max, 12)
    return 0


cdef int mit_pack_reply(unsigned char* out, const MitRange* r, const MitReply* rep) noexcept nogil:
    cdef unsigned int p, v, t
    if not (isfinite(rep.p_rad) and isfinite(rep.v_rad_s) and isfinite(rep.t_Nm)):
        return -1
    if not (_range_ok(r.p_min, r.p_max) and _range_ok(r.v_min, r.v_max)
            and _range_ok(r.t_min, r.t_max)):
        return -1
    p = _to_uint(rep.p_rad, r.p_min, r.p_max, 16)
    v = _to_uint(rep.v_rad_s, r.v_min, r.v_max, 12)
    t = _to_uint(rep.t_Nm, r.t_min, r.t_max, 12)
    out[0] = rep.driver_id & 0xFF
    out[1] = (p >> 8) & 0xFF
    out[2] = p & 0xFF
    out[3] = (v >> 4) & 0xFF
    out[4] = ((v & 0xF) << 4) | ((t >> 8) & 0xF)
    out[5] = t & 0xFF
    out[6] = <unsigned char>(0 if rep.temperature_C < 0 else (255 if rep.temperature_C > 255
                                                               else rep.temperature_C))
    out[7] = <unsigned char>(0 if rep.error_code < 0 else (255 if rep.error_code > 255
                                                            else rep.error_code))
    return 8


cdef int mit_unpack_reply(const unsigned char* data, int dlc, const MitRange* r,
                          MitReply* out) noexcept nogil:
    cdef unsigned int p, v, t
    if dlc != 8 and dlc != 6:
        return -1
    p = (<unsigned int>data[1] << 8) | data[2]
    v = (<unsigned int>data[3] << 4) | (data[4] >> 4)
    t = ((<unsigned int>data[4] & 0xF) << 8) | data[5]
    out.driver_id = data[0]
    out.p_rad = _to_float(p, r.p_min, r.p_max, 16)
    out.v_rad_s = _to_float(v, r.v_min, r.v_max, 12)
    out.t_Nm = _to_float(t, r.t_min, r.t_max, 12)
    if dlc == 8:
        out.temperature_C = data[6]
        out.error_code = data[7]
    else:
        out.temperature_C = -1000
        out.error_code = -1
    return 0


cdef int mit_frame_kind(const unsigned char* data, int dlc) noexcept nogil:
    if dlc != 8:
        return MIT_FRAME_NONE
    if _is_special(data):
        if data[7] == 0xFC:
            return MIT_FRAME_ENTER
        if data[7] == 0xFD:
            return MIT_FRAME_EXIT
        return MIT_FRAME_ZERO
    return MIT_FRAME_COMMAND


# --- Python wrappers: set-up code, tools, tests (not for the tick) --------------------------------

ENTER_FRAME = b"\xff\xff\xff\xff\xff\xff\xff\xfc"
EXIT_FRAME = b"\xff\xff\xff\xff\xff\xff\xff\xfd"
ZERO_FRAME = b"\xff\xff\xff\xff\xff\xff\xff\xfe"
FRAME_NONE = MIT_FRAME_NONE
FRAME_ENTER = MIT_FRAME_ENTER
FRAME_EXIT = MIT_FRAME_EXIT
FRAME_ZERO = MIT_FRAME_ZERO
FRAME_COMMAND = MIT_FRAME_COMMAND

_RANGE_KEYS = ("p_min", "p_max", "v_min", "v_max", "kp_min", "kp_max",
               "kd_min", "kd_max", "t_min", "t_max")


cdef MitRange _range(dict rng) except *:
    """Copy a range dict into a MitRange; ValueError on a missing key or an unusable range."""
    cdef MitRange r
    missing = [k for k in _RANGE_KEYS if k not in rng]
    if missing:
        raise ValueError(f"MIT range is missing {', '.join(missing)}")
    r.p_min, r.p_max = rng["p_min"], rng["p_max"]
    r.v_min, r.v_max = rng["v_min"], rng["v_max"]
    r.kp_min, r.kp_max = rng["kp_min"], rng["kp_max"]
    r.kd_min, r.kd_max = rng["kd_min"], rng["kd_max"]
    r.t_min, r.t_max = rng["t_min"], rng["t_max"]
    for lo, hi in ((r.p_min, r.p_max), (r.v_min, r.v_max), (r.kp_min, r.kp_max),
                   (r.kd_min, r.kd_max), (r.t_min, r.t_max)):
        if not _range_ok(lo, hi):
            raise ValueError(f"MIT range needs finite min < max, got {lo!r}..{hi!r}")
    return r


def pack_command(dict rng, double p, double v, double kp, double kd, double t):
    """Pack a command [rad, rad/s, N*m/rad, N*m*s/rad, N*m] into 8 bytes; values are clamped to
    ``rng``.  ValueError on NaN/Inf."""
    cdef MitRange r = _range(rng)
    cdef MitCommand c
    cdef unsigned char out[8]
    c.p_rad, c.v_rad_s, c.kp_Nm_rad, c.kd_Nms_rad, c.t_Nm = p, v, kp, kd, t
    if mit_pack_command(out, &r, &c) != 8:
        raise ValueError(f"non-finite MIT command: p={p!r} v={v!r} kp={kp!r} kd={kd!r} t={t!r}")
    return (<char*>out)[:8]


def unpack_command(dict rng, data):
    """Decode an 8-byte command (the driver's side) into a dict of p_rad, v_rad_s, kp_Nm_rad,
    kd_Nms_rad, t_Nm.  ValueError on a wrong length."""
    cdef MitRange r = _range(rng)
    cdef MitCommand c
    cdef bytes b = bytes(data)
    if mit_unpack_command(b, len(b), &r, &c) != 0:
        raise ValueError(f"MIT command must be 8 bytes, got {len(b)}")
    return {"p_rad": c.p_rad, "v_rad_s": c.v_rad_s, "kp_Nm_rad": c.kp_Nm_rad,
            "kd_Nms_rad": c.kd_Nms_rad, "t_Nm": c.t_Nm}


def pack_reply(dict rng, int driver_id, double p, double v, double t,
               int temperature_C=25, int error_code=0):
    """Pack a DLC-8 reply (the driver's side).  ``t`` [N*m] goes in the current field.  ValueError
    on NaN/Inf or a driver id / error code outside 0..255 (a fault to inject is never silently
    turned into another); temperature [degC] is clamped to 0..255."""
    cdef MitRange r = _range(rng)
    cdef MitReply rep
    cdef unsigned char out[8]
    if not 0 <= driver_id <= 255:
        raise ValueError(f"driver_id must fit in one byte, got {driver_id}")
    if not 0 <= error_code <= 255:
        raise ValueError(f"error_code must fit in one byte, got {error_code}")
    rep.driver_id, rep.p_rad, rep.v_rad_s, rep.t_Nm = driver_id, p, v, t
    rep.temperature_C, rep.error_code = temperature_C, error_code
    if mit_pack_reply(out, &r, &rep) != 8:
        raise ValueError(f"non-finite MIT reply: p={p!r} v={v!r} t={t!r}")
    return (<char*>out)[:8]


def unpack_reply(dict rng, data):
    """Decode a reply of DLC 8 or 6 into a dict of driver_id, p_rad, v_rad_s, t_Nm,
    temperature_C (-1000 for DLC 6), error_code (-1 for DLC 6).  ValueError on any other length."""
    cdef MitRange r = _range(rng)
    cdef MitReply rep
    cdef bytes b = bytes(data)
    if len(b) not in (6, 8) or mit_unpack_reply(b, len(b), &r, &rep) != 0:
        raise ValueError(f"MIT reply must be 8 or 6 bytes, got {len(b)}")
    return {"driver_id": rep.driver_id, "p_rad": rep.p_rad, "v_rad_s": rep.v_rad_s,
            "t_Nm": rep.t_Nm, "temperature_C": rep.temperature_C, "error_code": rep.error_code}


def frame_kind(data):
    """FRAME_ENTER / FRAME_EXIT / FRAME_ZERO / FRAME_COMMAND for a host->driver payload,
    FRAME_NONE for a wrong length."""
    cdef bytes b = bytes(data)
    if len(b) != 8:
        return FRAME_NONE
    return mit_frame_kind(b, 8)
