# Sensor node frames (hal/sensor_node.dbc): a fast codec for the tick (no Python objects).
# Little-endian (Intel) signals, scaling exactly as in the DBC.  Implemented in _sensor_frames.pyx;
# tests check every byte against cantools reading the same DBC.

cdef enum:
    SENSOR_IMU_ID = 0x110       # 1 kHz: shank gyro + accel
    SENSOR_LOAD_ID = 0x111      # 1 kHz: pylon load + joint encoder
    SENSOR_STATUS_ID = 0x112    # 50 Hz: node status, supply, uptime
    SENSOR_SOUND_ID = 0x113     # 500 Hz, optional second node: sound-side insole load + shank gyro
    SENSOR_IMU_DLC = 8
    SENSOR_LOAD_DLC = 6
    SENSOR_STATUS_DLC = 8
    SENSOR_SOUND_DLC = 6

ctypedef struct ImuFrame:
    double gyro_z_rad_s         # int16, 0.001 rad/s
    double accel_x_m_s2         # int16, 0.005 m/s^2
    double accel_y_m_s2         # int16, 0.005 m/s^2
    int seq                     # uint8, wraps
    int status                  # uint8 bit flags, 0 = OK

ctypedef struct LoadFrame:
    double load_N               # int16, 0.5 N, + compression
    double ankle_angle_rad      # int16, 0.0001 rad, + dorsiflexion
    int seq                     # uint8
    int status                  # uint8 bit flags, 0 = OK

ctypedef struct StatusFrame:
    int seq                     # uint8
    int flags                   # uint8
    double supply_V             # uint16, 0.01 V
    int board_temp_C            # int8, 1 degC
    long uptime_ms              # uint24, 1 ms, wraps

ctypedef struct SoundFrame:
    double load_N               # int16, 0.5 N, + compression (insole vertical force)
    double gyro_z_rad_s         # int16, 0.001 rad/s (sound-side shank)
    int seq                     # uint8
    int status                  # uint8 bit flags, 0 = OK

# Encoders saturate each physical value to its signal range and return the DLC, or -1 (out
# untouched) on NaN/Inf.  Decoders return 0, or -1 on a wrong DLC (out untouched).
cdef int encode_imu(unsigned char* out, const ImuFrame* f) noexcept nogil
cdef int decode_imu(const unsigned char* data, int dlc, ImuFrame* out) noexcept nogil
cdef int encode_load(unsigned char* out, const LoadFrame* f) noexcept nogil
cdef int decode_load(const unsigned char* data, int dlc, LoadFrame* out) noexcept nogil
cdef int encode_status(unsigned char* out, const StatusFrame* f) noexcept nogil
cdef int decode_status(const unsigned char* data, int dlc, StatusFrame* out) noexcept nogil
cdef int encode_sound(unsigned char* out, const SoundFrame* f) noexcept nogil
cdef int decode_sound(const unsigned char* data, int dlc, SoundFrame* out) noexcept nogil
