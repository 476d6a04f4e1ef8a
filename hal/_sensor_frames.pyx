# Sensor node frames: codec for the tick.  Declarations in _sensor_frames.pxd; the frame layout is
# hal/sensor_node.dbc (little-endian signals, factor only, offset 0).
#
# Rounding matches cantools exactly: raw = round-half-even(physical / factor) (C rint in the
# default rounding mode = Python round), decode physical = raw * factor.  Encoders saturate to the
# raw range of the signal; sequence counters and uptime wrap modulo their width.
# The def wrappers at the end are for set-up code, the simulator and tests, not for the tick.
from libc.math cimport isfinite, rint
from operator import index as _index

# --- helpers --------------------------------------------------------------------------------------

cdef inline long _sat_scaled(double x, double factor, long lo, long hi) noexcept nogil:
    # Round x / factor to nearest (ties to even), saturate to [lo, hi].  x must be finite.
    cdef double r = rint(x / factor)
    if r <= lo:
        return lo
    if r >= hi:
        return hi
    return <long>r


cdef inline long _sat_int(long x, long lo, long hi) noexcept nogil:
    return lo if x < lo else (hi if x > hi else x)


cdef inline void _put16(unsigned char* out, long raw) noexcept nogil:
    # Little-endian, two's complement for negative raw values.
    out[0] = raw & 0xFF
    out[1] = (raw >> 8) & 0xFF


cdef inline long _get_u16(const unsigned char* d) noexcept nogil:
    return <long>d[0] | (<long>d[1] << 8)


cdef inline long _get_i16(const unsigned char* d) noexcept nogil:
    cdef long v = _get_u16(d)
    return v - 0x10000 if v >= 0x8000 else v


# --- per-tick codec (declared in _sensor_frames.pxd) ----------------------------------------------

cdef int encode_imu(unsigned char* out, const ImuFrame* f) noexcept nogil:
    if not (isfinite(f.gyro_z_rad_s) and isfinite(f.accel_x_m_s2) and isfinite(f.accel_y_m_s2)):
        return -1
    _put16(out, _sat_scaled(f.gyro_z_rad_s, 0.001, -32768, 32767))
    _put16(out + 2, _sat_scaled(f.accel_x_m_s2, 0.005, -32768, 32767))
    _put16(out + 4, _sat_scaled(f.accel_y_m_s2, 0.005, -32768, 32767))
    out[6] = f.seq & 0xFF
    out[7] = _sat_int(f.status, 0, 255)
    return SENSOR_IMU_DLC


cdef int decode_imu(const unsigned char* data, int dlc, ImuFrame* out) noexcept nogil:
    if dlc != SENSOR_IMU_DLC:
        return -1
    out.gyro_z_rad_s = _get_i16(data) * 0.001
    out.accel_x_m_s2 = _get_i16(data + 2) * 0.005
    out.accel_y_m_s2 = _get_i16(data + 4) * 0.005
    out.seq = data[6]
    out.status = data[7]
    return 0


cdef int encode_load(unsigned char* out, const LoadFrame* f) noexcept nogil:
    if not (isfinite(f.load_N) and isfinite(f.ankle_angle_rad)):
        return -1
    _put16(out, _sat_scaled(f.load_N, 0.5, -32768, 32767))
    _put16(out + 2, _sat_scaled(f.ankle_angle_rad, 0.0001, -32768, 32767))
    out[4] = f.seq & 0xFF
    out[5] = _sat_int(f.status, 0, 255)
    return SENSOR_LOAD_DLC


cdef int decode_load(const unsigned char* data, int dlc, LoadFrame* out) noexcept nogil:
    if dlc != SENSOR_LOAD_DLC:
        return -1
    out.load_N = _get_i16(data) * 0.5
    out.ankle_angle_rad = _get_i16(data + 2) * 0.0001
    out.seq = data[4]
    out.status = data[5]
    return 0


cdef int encode_status(unsigned char* out, const StatusFrame* f) noexcept nogil:
    cdef long up
    if not isfinite(f.supply_V):
        return -1
    out[0] = f.seq & 0xFF
    out[1] = _sat_int(f.flags, 0, 255)
    _put16(out + 2, _sat_scaled(f.supply_V, 0.01, 0, 65535))
    out[4] = _sat_int(f.board_temp_C, -128, 127) & 0xFF
    up = f.uptime_ms & 0xFFFFFF
    out[5] = up & 0xFF
    out[6] = (up >> 8) & 0xFF
    out[7] = (up >> 16) & 0xFF
    return SENSOR_STATUS_DLC


cdef int decode_status(const unsigned char* data, int dlc, StatusFrame* out) noexcept nogil:
    if dlc != SENSOR_STATUS_DLC:
        return -1
    out.seq = data[0]
    out.flags = data[1]
    out.supply_V = _get_u16(data + 2) * 0.01
    out.board_temp_C = data[4] - 256 if data[4] >= 0x80 else data[4]
    out.uptime_ms = <long>data[5] | (<long>data[6] << 8) | (<long>data[7] << 16)
    return 0


cdef int encode_sound(unsigned char* out, const SoundFrame* f) noexcept nogil:
    if not (isfinite(f.load_N) and isfinite(f.gyro_z_rad_s)):
        return -1
    _put16(out, _sat_scaled(f.load_N, 0.5, -32768, 32767))
    _put16(out + 2, _sat_scaled(f.gyro_z_rad_s, 0.001, -32768, 32767))
    out[4] = f.seq & 0xFF
    out[5] = _sat_int(f.status, 0, 255)
    return SENSOR_SOUND_DLC


cdef int decode_sound(const unsigned char* data, int dlc, SoundFrame* out) noexcept nogil:
    if dlc != SENSOR_SOUND_DLC:
        return -1
    out.load_N = _get_i16(data) * 0.5
    out.gyro_z_rad_s = _get_i16(data + 2) * 0.001
    out.seq = data[4]
    out.status = data[5]
    return 0


# --- Python wrappers: set-up code, simulator, tests (not for the tick) ----------------------------

IMU_ID = SENSOR_IMU_ID
LOAD_ID = SENSOR_LOAD_ID
STATUS_ID = SENSOR_STATUS_ID
SOUND_ID = SENSOR_SOUND_ID
IMU_DLC = SENSOR_IMU_DLC
LOAD_DLC = SENSOR_LOAD_DLC
STATUS_DLC = SENSOR_STATUS_DLC
SOUND_DLC = SENSOR_SOUND_DLC


def _c_sat(x):
    # Any Python int -> C int range, saturating (the codec then saturates to the signal's range).
    x = _index(x)
    return -0x80000000 if x < -0x80000000 else (0x7FFFFFFF if x > 0x7FFFFFFF else x)


def _c_wrap(x):
    # Any Python int -> C int range, keeping x mod 2^32 (so mod 2^8 and 2^24 for the codec's wrap).
    return ((_index(x) + 0x80000000) % 0x100000000) - 0x80000000


def _bytes_of(data, int dlc, str name):
    cdef bytes b = bytes(data)
    if len(b) != dlc:
        raise ValueError(f"{name} frame must be {dlc} bytes, got {len(b)}")
    return b


def _encode_imu_py(double gyro_z_rad_s, double accel_x_m_s2, double accel_y_m_s2, seq, status):
    """SENSOR_IMU payload (8 bytes).  Values saturate to the signal range, seq wraps mod 256,
    status saturates to 0..255.  ValueError on NaN/Inf."""
    cdef ImuFrame f
    cdef unsigned char out[8]
    f.gyro_z_rad_s, f.accel_x_m_s2, f.accel_y_m_s2 = gyro_z_rad_s, accel_x_m_s2, accel_y_m_s2
    f.seq = _c_wrap(seq)
    f.status = _c_sat(status)
    if encode_imu(out, &f) != SENSOR_IMU_DLC:
        raise ValueError("non-finite IMU value")
    return (<char*>out)[:SENSOR_IMU_DLC]


def _decode_imu_py(data):
    """Decode a SENSOR_IMU payload to a dict (gyro_z_rad_s, accel_x_m_s2, accel_y_m_s2, seq,
    status).  ValueError unless exactly 8 bytes."""
    cdef ImuFrame f
    cdef bytes b = _bytes_of(data, SENSOR_IMU_DLC, "SENSOR_IMU")
    decode_imu(b, len(b), &f)
    return {"gyro_z_rad_s": f.gyro_z_rad_s, "accel_x_m_s2": f.accel_x_m_s2,
            "accel_y_m_s2": f.accel_y_m_s2, "seq": f.seq, "status": f.status}


def _encode_load_py(double load_N, double ankle_angle_rad, seq, status):
    """SENSOR_LOAD payload (6 bytes).  Saturating, seq wraps mod 256.  ValueError on NaN/Inf."""
    cdef LoadFrame f
    cdef unsigned char out[8]
    f.load_N, f.ankle_angle_rad = load_N, ankle_angle_rad
    f.seq = _c_wrap(seq)
    f.status = _c_sat(status)
    if encode_load(out, &f) != SENSOR_LOAD_DLC:
        raise ValueError("non-finite load-cell value")
    return (<char*>out)[:SENSOR_LOAD_DLC]


def _decode_load_py(data):
    """Decode a SENSOR_LOAD payload to a dict (load_N, ankle_angle_rad, seq, status).
    ValueError unless exactly 6 bytes."""
    cdef LoadFrame f
    cdef bytes b = _bytes_of(data, SENSOR_LOAD_DLC, "SENSOR_LOAD")
    decode_load(b, len(b), &f)
    return {"load_N": f.load_N, "ankle_angle_rad": f.ankle_angle_rad, "seq": f.seq,
            "status": f.status}


def _encode_status_py(seq, flags, double supply_V, board_temp_C, uptime_ms):
    """SENSOR_STATUS payload (8 bytes).  seq wraps mod 256, uptime mod 2^24 ms; flags, supply and
    board temperature saturate.  ValueError on NaN/Inf supply voltage."""
    cdef StatusFrame f
    cdef unsigned char out[8]
    f.seq = _c_wrap(seq)
    f.flags = _c_sat(flags)
    f.supply_V = supply_V
    f.board_temp_C = _c_sat(board_temp_C)
    f.uptime_ms = _c_wrap(uptime_ms)
    if encode_status(out, &f) != SENSOR_STATUS_DLC:
        raise ValueError("non-finite supply voltage")
    return (<char*>out)[:SENSOR_STATUS_DLC]


def _decode_status_py(data):
    """Decode a SENSOR_STATUS payload to a dict (seq, flags, supply_V, board_temp_C, uptime_ms).
    ValueError unless exactly 8 bytes."""
    cdef StatusFrame f
    cdef bytes b = _bytes_of(data, SENSOR_STATUS_DLC, "SENSOR_STATUS")
    decode_status(b, len(b), &f)
    return {"seq": f.seq, "flags": f.flags, "supply_V": f.supply_V,
            "board_temp_C": f.board_temp_C, "uptime_ms": f.uptime_ms}


def _encode_sound_py(double load_N, double gyro_z_rad_s, seq, status):
    """SOUND_SIDE payload (6 bytes).  Saturating, seq wraps mod 256.  ValueError on NaN/Inf."""
    cdef SoundFrame f
    cdef unsigned char out[8]
    f.load_N, f.gyro_z_rad_s = load_N, gyro_z_rad_s
    f.seq = _c_wrap(seq)
    f.status = _c_sat(status)
    if encode_sound(out, &f) != SENSOR_SOUND_DLC:
        raise ValueError("non-finite sound-side value")
    return (<char*>out)[:SENSOR_SOUND_DLC]


def _decode_sound_py(data):
    """Decode a SOUND_SIDE payload to a dict (load_N, gyro_z_rad_s, seq, status).
    ValueError unless exactly 6 bytes."""
    cdef SoundFrame f
    cdef bytes b = _bytes_of(data, SENSOR_SOUND_DLC, "SOUND_SIDE")
    decode_sound(b, len(b), &f)
    return {"load_N": f.load_N, "gyro_z_rad_s": f.gyro_z_rad_s, "seq": f.seq, "status": f.status}


# The cdef codec above and these wrappers share their names, and Cython keeps one namespace for
# both; so the wrappers are defined as _*_py and published under the public names here.  Python
# code sees hal._sensor_frames.encode_imu etc.; cimporting code sees the cdef functions.
globals().update(
    encode_imu=_encode_imu_py, decode_imu=_decode_imu_py,
    encode_load=_encode_load_py, decode_load=_decode_load_py,
    encode_status=_encode_status_py, decode_status=_decode_status_py,
    encode_sound=_encode_sound_py, decode_sound=_decode_sound_py,
)
