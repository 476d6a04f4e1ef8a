"""AK MIT-mode codec (hal/_mit.pyx): hand-computed byte vectors and hypothesis properties.

Formula (docs/reference.md, "Motor driver"): clamp x to [min, max], then
u = round((x - min) * (2^n - 1) / (max - min)); decode x = u * (max - min) / (2^n - 1) + min.
"""
import math

import pytest
from hypothesis import example, given, settings, strategies as st

from hal import _mit
from hal.ak import AK_MODELS, mit_range

AK80 = mit_range("AK80-9")
MODELS = sorted(AK_MODELS)
BITS = {"p": 16, "v": 12, "kp": 12, "kd": 12, "t": 12}
CMD_KEYS = {"p": "p_rad", "v": "v_rad_s", "kp": "kp_Nm_rad", "kd": "kd_Nms_rad", "t": "t_Nm"}


def step(rng, q):
    """One quantisation step of field q."""
    return (rng[f"{q}_max"] - rng[f"{q}_min"]) / (2 ** BITS[q] - 1)


def decoded(rng, q, u):
    """The spec's decode formula, written out independently of the codec."""
    return u * (rng[f"{q}_max"] - rng[f"{q}_min"]) / (2 ** BITS[q] - 1) + rng[f"{q}_min"]


# --- byte vectors computed by hand ----------------------------------------------------------------

def test_zero_command_ak80_9():
    # p:  (0 + 12.5) * 65535 / 25  = 32767.5 -> round -> 32768 = 0x8000 -> D0 80, D1 00
    # v:  (0 + 50)   * 4095  / 100 = 2047.5  -> round -> 2048  = 0x800  -> D2 80, D3 high nibble 0
    # kp: 0 -> 0x000 -> D3 low nibble 0, D4 00;  kd: 0 -> 0x000 -> D5 00, D6 high nibble 0
    # t:  (0 + 18)   * 4095  / 36  = 2047.5  -> round -> 2048  = 0x800  -> D6 low nibble 8, D7 00
    # Truncating instead would give 7F FF 7F F0 00 00 07 FF (t = -0.0044 N*m).  Neither code is
    # exactly 0: with 2^n codes the middle of the range falls between two of them, so 0 N*m goes
    # out as +0.0044 N*m (half a step) on the AK80-9.
    data = _mit.pack_command(AK80, 0.0, 0.0, 0.0, 0.0, 0.0)
    assert data == bytes.fromhex("80 00 80 00 00 00 08 00")
    back = _mit.unpack_command(AK80, data)
    assert back["t_Nm"] == pytest.approx(18 / 4095, abs=1e-12)        # +0.0044 N*m
    assert back["kp_Nm_rad"] == 0.0 and back["kd_Nms_rad"] == 0.0


def test_general_command_ak80_9():
    # p  = 1.0:  13.5 * 65535 / 25  = 35388.9 -> 35389 = 0x8A3D
    # v  = -2.0: 48   * 4095  / 100 = 1965.6  -> 1966  = 0x7AE
    # kp = 50:   50   * 4095  / 500 = 409.5   -> 410   = 0x19A
    # kd = 1.0:  1    * 4095  / 5   = 819     -> 819   = 0x333
    # t  = 3.0:  21   * 4095  / 36  = 2388.75 -> 2389  = 0x955
    # D0..1 = 8A 3D, D2 = 7A, D3 = E<<4|1 = E1, D4 = 9A, D5 = 33, D6 = 3<<4|9 = 39, D7 = 55
    assert _mit.pack_command(AK80, 1.0, -2.0, 50.0, 1.0, 3.0) == bytes.fromhex("8A3D7AE19A333955")


def test_command_clamps_to_range():
    # Everything beyond max -> all-ones codes except t at min -> 0x000:
    # p FFFF, v FFF, kp FFF, kd FFF, t 000 -> FF FF FF FF FF FF F0 00
    assert _mit.pack_command(AK80, 100.0, 1e9, 1e6, 99.0, -1e3) == bytes.fromhex("FFFFFFFFFFFFF000")
    # Everything below min -> all zero codes, t beyond max -> FFF.
    assert _mit.pack_command(AK80, -100.0, -1e9, -5.0, -1.0, 1e3) == bytes.fromhex("0000000000000FFF")


def test_special_frames():
    assert _mit.ENTER_FRAME == bytes.fromhex("FFFFFFFFFFFFFFFC")
    assert _mit.EXIT_FRAME == bytes.fromhex("FFFFFFFFFFFFFFFD")
    assert _mit.ZERO_FRAME == bytes.fromhex("FFFFFFFFFFFFFFFE")
    assert _mit.frame_kind(_mit.ENTER_FRAME) == _mit.FRAME_ENTER
    assert _mit.frame_kind(_mit.EXIT_FRAME) == _mit.FRAME_EXIT
    assert _mit.frame_kind(_mit.ZERO_FRAME) == _mit.FRAME_ZERO
    assert _mit.frame_kind(bytes.fromhex("FFFFFFFFFFFFFFFB")) == _mit.FRAME_COMMAND
    assert _mit.frame_kind(bytes.fromhex("FFFFFFFFFFFFFFFF")) == _mit.FRAME_COMMAND
    assert _mit.frame_kind(bytes.fromhex("FFFFFFFFFFFFFEFC")) == _mit.FRAME_COMMAND
    assert _mit.frame_kind(bytes.fromhex("7FFFFFFFFFFFFFFE")) == _mit.FRAME_COMMAND
    assert _mit.frame_kind(bytes.fromhex("FFFFFFFFFFFFFF")) == _mit.FRAME_NONE     # DLC 7
    assert _mit.frame_kind(b"") == _mit.FRAME_NONE
    assert len({_mit.FRAME_NONE, _mit.FRAME_ENTER, _mit.FRAME_EXIT, _mit.FRAME_ZERO,
                _mit.FRAME_COMMAND}) == 5


@pytest.mark.parametrize("t_code", [0xFFC, 0xFFD, 0xFFE])
def test_full_scale_command_is_never_a_special_frame(t_code):
    # p, v, kp, kd at full scale and t with code FFC/FFD/FFE would be FF..FC/FD/FE on the wire:
    # the driver would read enter / exit / set zero.  The codec takes one LSB off kd instead.
    t = decoded(AK80, "t", t_code)
    data = _mit.pack_command(AK80, 12.5, 50.0, 500.0, 5.0, t)
    assert _mit.frame_kind(data) == _mit.FRAME_COMMAND
    assert data == bytes.fromhex("FFFFFFFFFFFF") + bytes([0xE0 | (t_code >> 8), t_code & 0xFF])
    back = _mit.unpack_command(AK80, data)
    assert back["kd_Nms_rad"] == pytest.approx(5.0 - step(AK80, "kd"))
    assert back["t_Nm"] == pytest.approx(t) and back["kp_Nm_rad"] == 500.0


def test_reply_vectors_dlc8_and_dlc6():
    # driver 0x01; p code 0x8A3D, v code 0x7AE, i code 0x955, 40 degC, error 0:
    # D0 01, D1..2 8A 3D, D3 = v>>4 = 7A, D4 = E<<4 | 9 = E9, D5 55, D6 28, D7 00
    data8 = bytes.fromhex("018A3D7AE9552800")
    r = _mit.unpack_reply(AK80, data8)
    assert r["driver_id"] == 1
    assert r["p_rad"] == pytest.approx(35389 * 25 / 65535 - 12.5, abs=1e-12)     # 1.000019
    assert r["v_rad_s"] == pytest.approx(1966 * 100 / 4095 - 50, abs=1e-12)      # -1.990232
    assert r["t_Nm"] == pytest.approx(2389 * 36 / 4095 - 18, abs=1e-12)          # 3.002198
    assert (r["temperature_C"], r["error_code"]) == (40, 0)
    assert _mit.pack_reply(AK80, 1, 1.0, -2.0, 3.0, temperature_C=40, error_code=0) == data8

    r6 = _mit.unpack_reply(AK80, data8[:6])                  # old firmware: no D6/D7
    assert (r6["temperature_C"], r6["error_code"]) == (-1000, -1)
    assert (r6["driver_id"], r6["p_rad"], r6["v_rad_s"], r6["t_Nm"]) == \
        (r["driver_id"], r["p_rad"], r["v_rad_s"], r["t_Nm"])


def test_reply_error_byte_and_temperature_are_raw():
    r = _mit.unpack_reply(AK80, bytes.fromhex("7F0000000000FF06"))
    assert (r["driver_id"], r["temperature_C"], r["error_code"]) == (0x7F, 255, 6)
    assert r["p_rad"] == -12.5 and r["v_rad_s"] == -50.0 and r["t_Nm"] == -18.0
    # pack clamps temperature to one byte; an error code that does not fit is refused
    assert _mit.pack_reply(AK80, 3, 0, 0, 0, temperature_C=300, error_code=6)[6:] == b"\xff\x06"
    assert _mit.pack_reply(AK80, 3, 0, 0, 0, temperature_C=-20, error_code=255)[6:] == b"\x00\xff"
    for code in (-1, 256):
        with pytest.raises(ValueError, match="error_code"):
            _mit.pack_reply(AK80, 3, 0, 0, 0, error_code=code)


@pytest.mark.parametrize("n", [0, 1, 5, 7, 9, 16])
def test_reply_bad_length_rejected(n):
    with pytest.raises(ValueError):
        _mit.unpack_reply(AK80, bytes(n))


@pytest.mark.parametrize("n", [0, 6, 7, 9])
def test_command_bad_length_rejected(n):
    with pytest.raises(ValueError):
        _mit.unpack_command(AK80, bytes(n))


def test_bad_range_rejected_by_wrappers():
    with pytest.raises(ValueError, match="t_max"):
        _mit.pack_command({k: v for k, v in AK80.items() if k != "t_max"}, 0, 0, 0, 0, 0)
    with pytest.raises(ValueError):
        _mit.pack_command({**AK80, "v_min": 50.0}, 0, 0, 0, 0, 0)        # min == max
    with pytest.raises(ValueError):
        _mit.pack_reply({**AK80, "p_max": math.nan}, 1, 0, 0, 0)
    with pytest.raises(ValueError):
        _mit.pack_reply(AK80, 256, 0, 0, 0)                                # id > one byte


# --- properties -----------------------------------------------------------------------------------

models = st.sampled_from(MODELS)
bad = st.sampled_from([math.nan, math.inf, -math.inf])


def in_range(rng, q):
    return st.floats(rng[f"{q}_min"], rng[f"{q}_max"], allow_nan=False)


@st.composite
def model_and_command(draw):
    rng = mit_range(draw(models))
    return rng, {q: draw(in_range(rng, q)) for q in BITS}


@given(model_and_command())
@example((AK80, {"p": 0.0, "v": 0.0, "kp": 0.0, "kd": 0.0, "t": 0.0}))
@example((AK80, {"p": 12.5, "v": -50.0, "kp": 500.0, "kd": 5.0, "t": -18.0}))
def test_command_round_trip_within_half_a_step(mc):
    rng, c = mc
    back = _mit.unpack_command(rng, _mit.pack_command(rng, c["p"], c["v"], c["kp"], c["kd"], c["t"]))
    for q in BITS:
        # rounding: half a step (one LSB more for kd in the special-frame corner case)
        tol = step(rng, q) * (1.0 if q == "kd" else 0.5) + 1e-9
        assert abs(back[CMD_KEYS[q]] - c[q]) <= tol, q


finite = st.floats(allow_nan=False, allow_infinity=False)


@given(models, finite, finite, finite)
def test_reply_round_trip_and_clamping(model, p, v, t):
    rng = mit_range(model)
    r = _mit.unpack_reply(rng, _mit.pack_reply(rng, 9, p, v, t, 33, 0))
    for q, x, key in (("p", p, "p_rad"), ("v", v, "v_rad_s"), ("t", t, "t_Nm")):
        clamped = min(max(x, rng[f"{q}_min"]), rng[f"{q}_max"])
        assert abs(r[key] - clamped) <= step(rng, q) / 2 + 1e-9, q
    assert (r["driver_id"], r["temperature_C"], r["error_code"]) == (9, 33, 0)


@given(model_and_command(), st.sampled_from(list(BITS)), st.floats(1e-6, 1e12))
def test_out_of_range_packs_like_the_bound(mc, q, excess):
    rng, c = mc
    args = [c[k] for k in BITS]
    i = list(BITS).index(q)
    for bound, sign in ((rng[f"{q}_max"], 1.0), (rng[f"{q}_min"], -1.0)):
        outside = list(args)
        outside[i] = bound + sign * excess
        at_bound = list(args)
        at_bound[i] = bound
        assert _mit.pack_command(rng, *outside) == _mit.pack_command(rng, *at_bound)


@given(model_and_command(), st.integers(0, 4), bad)
def test_non_finite_command_rejected(mc, i, value):
    rng, c = mc
    args = [c[k] for k in BITS]
    args[i] = value
    with pytest.raises(ValueError):
        _mit.pack_command(rng, *args)


@given(models, st.integers(0, 2), bad)
def test_non_finite_reply_rejected(model, i, value):
    args = [0.0, 0.0, 0.0]
    args[i] = value
    with pytest.raises(ValueError):
        _mit.pack_reply(mit_range(model), 1, *args)


@given(models, st.binary(min_size=8, max_size=8))
def test_unpack_any_payload_stays_in_range(model, data):
    rng = mit_range(model)
    c = _mit.unpack_command(rng, data)
    for q in BITS:
        assert rng[f"{q}_min"] <= c[CMD_KEYS[q]] <= rng[f"{q}_max"], q
    if _mit.frame_kind(data) == _mit.FRAME_COMMAND:
        # decode -> encode gives the same codes back (the grid is hit exactly)
        assert _mit.pack_command(rng, *(c[CMD_KEYS[q]] for q in BITS)) == data
    for n in (8, 6):
        r = _mit.unpack_reply(rng, data[:n])
        assert r["driver_id"] == data[0]
        for q, key in (("p", "p_rad"), ("v", "v_rad_s"), ("t", "t_Nm")):
            assert rng[f"{q}_min"] <= r[key] <= rng[f"{q}_max"], q
        assert (r["temperature_C"], r["error_code"]) == ((data[6], data[7]) if n == 8 else (-1000, -1))


@settings(max_examples=50)
@given(models, st.integers(0, 0xFFFF), st.integers(0, 0xFFF), st.integers(0, 0xFFF))
def test_reply_codes_decode_per_formula(model, pu, vu, tu):
    rng = mit_range(model)
    data = bytes([5, pu >> 8, pu & 0xFF, vu >> 4, ((vu & 0xF) << 4) | (tu >> 8), tu & 0xFF, 20, 1])
    r = _mit.unpack_reply(rng, data)
    assert r["p_rad"] == pytest.approx(decoded(rng, "p", pu), abs=1e-12)
    assert r["v_rad_s"] == pytest.approx(decoded(rng, "v", vu), abs=1e-12)
    assert r["t_Nm"] == pytest.approx(decoded(rng, "t", tu), abs=1e-12)
