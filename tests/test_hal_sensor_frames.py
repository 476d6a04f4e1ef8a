"""Sensor-node codec (hal/_sensor_frames.pyx) against cantools reading hal/sensor_node.dbc."""
import math
from pathlib import Path

import cantools
import pytest
from hypothesis import example, given, strategies as st

from hal import _sensor_frames as sf

DB = cantools.database.load_file(str(Path(__file__).resolve().parents[1] / "hal" / "sensor_node.dbc"))

# frame -> (message name, id, dlc, encoder, decoder, [(codec key, DBC signal), ...] in encoder order)
FRAMES = {
    "imu": ("SENSOR_IMU", sf.IMU_ID, sf.IMU_DLC, sf.encode_imu, sf.decode_imu,
            [("gyro_z_rad_s", "shank_gyro_z"), ("accel_x_m_s2", "shank_accel_x"),
             ("accel_y_m_s2", "shank_accel_y"), ("seq", "imu_seq"), ("status", "imu_status")]),
    "load": ("SENSOR_LOAD", sf.LOAD_ID, sf.LOAD_DLC, sf.encode_load, sf.decode_load,
             [("load_N", "pylon_load"), ("ankle_angle_rad", "ankle_angle"), ("seq", "load_seq"),
              ("status", "load_status")]),
    "status": ("SENSOR_STATUS", sf.STATUS_ID, sf.STATUS_DLC, sf.encode_status, sf.decode_status,
               [("seq", "node_seq"), ("flags", "node_flags"), ("supply_V", "supply_voltage"),
                ("board_temp_C", "board_temp"), ("uptime_ms", "uptime")]),
    "sound": ("SOUND_SIDE", sf.SOUND_ID, sf.SOUND_DLC, sf.encode_sound, sf.decode_sound,
              [("load_N", "sound_load"), ("gyro_z_rad_s", "sound_gyro_z"), ("seq", "sound_seq"),
               ("status", "sound_status")]),
}
WRAPPING = {"imu_seq", "load_seq", "node_seq", "uptime", "sound_seq"}
SENDERS = {"SOUND_SIDE": ["SOUND_NODE"]}


def sig(msg_name, name):
    return DB.get_message_by_name(msg_name).get_signal_by_name(name)


def raw_range(s):
    return (-(1 << (s.length - 1)), (1 << (s.length - 1)) - 1) if s.is_signed else (0, (1 << s.length) - 1)


def reference_encode(frame, values):
    """cantools' bytes for physical ``values`` after the codec's documented saturation/wrap."""
    msg_name, *_, pairs = FRAMES[frame]
    phys = {}
    for (_, name), x in zip(pairs, values):
        s = sig(msg_name, name)
        lo, hi = raw_range(s)
        if name in WRAPPING:
            x = x % (hi + 1)
        else:
            x = min(max(x, lo * s.scale), hi * s.scale)
        phys[name] = x
    return DB.encode_message(msg_name, phys, strict=False)


def physical(msg_name, name, slack=2.0):
    """Physical values of a signal: the raw range plus ``slack`` times beyond it (saturation)."""
    s = sig(msg_name, name)
    lo, hi = raw_range(s)
    if s.scale == 1:
        return st.integers(lo - 1000, hi + 1000)
    span = (hi - lo) * s.scale * slack
    return st.floats(lo * s.scale - span, hi * s.scale + span, allow_nan=False)


def test_dbc_matches_codec_constants_and_spec():
    assert {m.name for m in DB.messages} == {"SENSOR_IMU", "SENSOR_LOAD", "SENSOR_STATUS", "SOUND_SIDE"}
    for frame, (msg_name, frame_id, dlc, _, _, pairs) in FRAMES.items():
        m = DB.get_message_by_name(msg_name)
        assert (m.frame_id, m.length, m.is_extended_frame) == (frame_id, dlc, False)
        assert m.senders == SENDERS.get(msg_name, ["SENSOR_NODE"])
        assert sorted(s.name for s in m.signals) == sorted(n for _, n in pairs)
        for s in m.signals:
            assert s.byte_order == "little_endian" and s.offset == 0 and s.receivers == ["HOST"]
    assert (sf.IMU_ID, sf.LOAD_ID, sf.STATUS_ID, sf.SOUND_ID) == (0x110, 0x111, 0x112, 0x113)
    spec = {  # name: (start, length, signed, scale, unit)
        "shank_gyro_z": (0, 16, True, 0.001, "rad/s"), "shank_accel_x": (16, 16, True, 0.005, "m/s^2"),
        "shank_accel_y": (32, 16, True, 0.005, "m/s^2"), "imu_seq": (48, 8, False, 1, None),
        "imu_status": (56, 8, False, 1, None), "pylon_load": (0, 16, True, 0.5, "N"),
        "ankle_angle": (16, 16, True, 0.0001, "rad"), "load_seq": (32, 8, False, 1, None),
        "load_status": (40, 8, False, 1, None), "node_seq": (0, 8, False, 1, None),
        "node_flags": (8, 8, False, 1, None), "supply_voltage": (16, 16, False, 0.01, "V"),
        "board_temp": (32, 8, True, 1, "degC"), "uptime": (40, 24, False, 1, "ms"),
        "sound_load": (0, 16, True, 0.5, "N"), "sound_gyro_z": (16, 16, True, 0.001, "rad/s"),
        "sound_seq": (32, 8, False, 1, None), "sound_status": (40, 8, False, 1, None),
    }
    for m in DB.messages:
        for s in m.signals:
            assert (s.start, s.length, s.is_signed, s.scale, s.unit) == spec[s.name], s.name
    assert "forward" in sig("SENSOR_IMU", "shank_gyro_z").comment
    assert "compression" in sig("SENSOR_LOAD", "pylon_load").comment
    assert "dorsiflexion" in sig("SENSOR_LOAD", "ankle_angle").comment


def _check_encode(frame, values):
    _, _, dlc, enc, *_ = FRAMES[frame]
    data = enc(*values)
    assert len(data) == dlc
    assert data == reference_encode(frame, values)


def _check_decode(frame, data):
    msg_name, _, _, _, dec, pairs = FRAMES[frame]
    ours = dec(data)
    ref = DB.decode_message(msg_name, data, decode_choices=False)
    assert ours == {key: ref[name] for key, name in pairs}


imu_phys = [physical("SENSOR_IMU", n) for n in ("shank_gyro_z", "shank_accel_x", "shank_accel_y",
                                                 "imu_seq", "imu_status")]
load_phys = [physical("SENSOR_LOAD", n) for n in ("pylon_load", "ankle_angle", "load_seq", "load_status")]
status_phys = [physical("SENSOR_STATUS", n) for n in ("node_seq", "node_flags", "supply_voltage",
                                                       "board_temp", "uptime")]


@given(*imu_phys)
@example(32.767, -32.768, 0.0, 255, 0)            # raw edges
@example(32.7675, -32.7685, 1e9, 256, 256)        # just past the edges, seq wraps, status saturates
@example(0.0005, 0.0025, -0.0025, -1, -1)         # ties: round half to even, like cantools
def test_imu_encode_matches_cantools(gyro, ax, ay, seq, status):
    _check_encode("imu", (gyro, ax, ay, seq, status))


@given(*load_phys)
@example(16383.5, -16384.0, 255, 255)
@example(0.25, 0.00005, 511, 1000)                # ties; seq 511 -> 255
@example(-1e9, 1e9, 0, 0)
def test_load_encode_matches_cantools(load, angle, seq, status):
    _check_encode("load", (load, angle, seq, status))


sound_phys = [physical("SOUND_SIDE", n) for n in ("sound_load", "sound_gyro_z", "sound_seq", "sound_status")]


@given(*sound_phys)
@example(16383.5, -32.768, 255, 255)
@example(0.25, 0.0005, 511, 1000)                 # ties; seq 511 -> 255
@example(-1e9, 1e9, 0, 0)
def test_sound_encode_matches_cantools(load, gyro, seq, status):
    _check_encode("sound", (load, gyro, seq, status))


@given(*status_phys)
@example(255, 255, 655.35, 127, (1 << 24) - 1)
@example(256, -3, -5.0, -129, 1 << 24)            # wrap to 0, saturate to 0 / -128
@example(0, 0, 1e6, 1000, -1)                     # uptime -1 -> 0xFFFFFF
def test_status_encode_matches_cantools(seq, flags, supply, temp, uptime):
    _check_encode("status", (seq, flags, supply, temp, uptime))


@pytest.mark.parametrize("frame", sorted(FRAMES))
@given(data=st.data())
def test_raw_ints_round_trip_against_cantools(frame, data):
    msg_name, _, dlc, enc, dec, pairs = FRAMES[frame]
    raw = {}
    for _, name in pairs:
        lo, hi = raw_range(sig(msg_name, name))
        raw[name] = data.draw(st.sampled_from([lo, hi, 0]) | st.integers(lo, hi), label=name)
    ref = DB.encode_message(msg_name, raw, scaling=False)
    phys = [raw[n] * sig(msg_name, n).scale for _, n in pairs]
    phys = [int(x) if sig(msg_name, n).scale == 1 else x for x, (_, n) in zip(phys, pairs)]
    assert enc(*phys) == ref
    _check_decode(frame, ref)


@pytest.mark.parametrize("frame", sorted(FRAMES))
@given(data=st.data())
def test_decode_any_payload_matches_cantools(frame, data):
    dlc = FRAMES[frame][2]
    _check_decode(frame, data.draw(st.binary(min_size=dlc, max_size=dlc)))


@pytest.mark.parametrize("frame", sorted(FRAMES))
@pytest.mark.parametrize("delta", [-1, 1, -100])
def test_wrong_dlc_rejected(frame, delta):
    dlc, dec = FRAMES[frame][2], FRAMES[frame][4]
    with pytest.raises(ValueError):
        dec(bytes(max(dlc + delta, 0)))


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_rejected(bad):
    for i in range(3):
        args = [0.0, 0.0, 0.0, 0, 0]
        args[i] = bad
        with pytest.raises(ValueError):
            sf.encode_imu(*args)
    for i in range(2):
        args = [0.0, 0.0, 0, 0]
        args[i] = bad
        with pytest.raises(ValueError):
            sf.encode_load(*args)
    with pytest.raises(ValueError):
        sf.encode_status(0, 0, bad, 0, 0)
    for i in range(2):
        args = [0.0, 0.0, 0, 0]
        args[i] = bad
        with pytest.raises(ValueError):
            sf.encode_sound(*args)


def test_seq_and_uptime_wrap():
    assert sf.encode_imu(0, 0, 0, 256 + 7, 0) == sf.encode_imu(0, 0, 0, 7, 0)
    assert sf.decode_load(sf.encode_load(0, 0, -1, 0))["seq"] == 255
    assert sf.decode_status(sf.encode_status(0, 0, 0, 0, (1 << 24) + 3))["uptime_ms"] == 3
    # a status that does not fit saturates rather than wrapping to "OK"
    assert sf.decode_imu(sf.encode_imu(0, 0, 0, 0, 256))["status"] == 255
    # Python ints beyond C int keep their residue / saturate
    big = sf.decode_status(sf.encode_status(2**40 + 5, 2**40, 12.0, -2**40, 2**50 + 9))
    assert (big["seq"], big["flags"], big["board_temp_C"], big["uptime_ms"]) == (5, 255, -128, 9)
    assert sf.decode_load(sf.encode_load(0, 0, -2**40 - 1, -7))["seq"] == 255
    assert sf.decode_load(sf.encode_load(0, 0, 0, -7))["status"] == 0
