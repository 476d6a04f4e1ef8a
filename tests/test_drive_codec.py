"""The per-tick drive codec (hal/_codec.pyx) and the drive table (hal/drives.py), issue 16 step 1.

The AK MIT codec is checked against the protocol's one definition, hal._mit (its own byte
vectors are in test_hal_mit.py): what AkMitCodec encodes for an ankle command is byte for byte
what ``_mit.pack_command`` packs for the same command taken to the driver shaft, and what it
decodes from a ``_mit.pack_reply`` frame is that reply's fields taken back to the ankle.  The
whole stack's frames are unchanged: the telemetry and every command frame of lock-step runs
hash as they did before the tick went through a codec (recorded on the code before, x86-64).
"""
import hashlib
import math
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import example, given, settings, strategies as st

from controller.params.registry import ParamSet
from controller.runtime.loop import build_tick
from hal import _mit
from hal._codec import AkMitCodec, DriveCodec
from hal.ak import AK_MODELS, ak_mit_codec_from, mit_range

ROOT = Path(__file__).resolve().parent.parent
MODELS = sorted(AK_MODELS)
DRIVER_ID, REPLY_ID = 1, 0

finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)
bad = st.sampled_from([math.nan, math.inf, -math.inf])
# transmissions the parameter registry allows, roughly (ratio, efficiency, direction, zero)
transmissions = st.tuples(st.floats(1.0, 100.0), st.floats(0.3, 1.0), st.sampled_from([-1.0, 1.0]),
                          st.floats(-3.0, 3.0))


def _codec(model="AK80-9", transmission=(1.0, 1.0, 1.0, 0.0)):
    codec = ak_mit_codec_from(mit_range(model), DRIVER_ID, REPLY_ID)
    codec.configure_transmission(*transmission)
    return codec


def _motor_side(cmd, transmission):
    """The ankle command on the driver shaft: the tick's own expressions, written out."""
    ratio, eff, direction, zero = transmission
    per = direction * ratio
    g = 1.0 / (eff * ratio * ratio)
    torque_ff, p_des, v_des, kp, kd = cmd
    return ((p_des + zero) * per, v_des * per, kp * g, kd * g, -torque_ff / (direction * ratio * eff))


# --- encode ---------------------------------------------------------------------------------------

@settings(max_examples=300)
@given(st.sampled_from(MODELS), st.tuples(finite, st.floats(-20, 20), st.floats(-100, 100),
                                          st.floats(0, 1e4), st.floats(0, 100)), transmissions)
@example("AK80-9", (0.0, 0.0, 0.0, 0.0, 0.0), (1.0, 1.0, 1.0, 0.0))
@example("AK80-9", (-18.0, 12.5, -50.0, 500.0, 5.0), (1.0, 1.0, -1.0, 0.0))   # the special-frame corner
def test_ak_codec_encodes_what_pack_command_packs(model, cmd, transmission):
    codec = _codec(model, transmission)
    frames = codec.encode_command(*cmd)
    assert frames == [(DRIVER_ID, _mit.pack_command(mit_range(model), *_motor_side(cmd, transmission)))]


@given(st.integers(0, 4), bad, st.tuples(finite, finite, finite, finite, finite))
def test_a_non_finite_command_is_refused_before_encoding(field, value, cmd):
    cmd = list(cmd)
    cmd[field] = value
    assert _codec().encode_command(*cmd) == []
    with pytest.raises(ValueError):     # the protocol's own wrapper refuses the same values
        _mit.pack_command(mit_range("AK80-9"), *_motor_side(cmd, (1.0, 1.0, 1.0, 0.0)))


def test_no_transmission_encodes_nothing():
    codec = ak_mit_codec_from(mit_range("AK80-9"), DRIVER_ID, REPLY_ID)
    assert codec.encode_command(0.0, 0.0, 0.0, 0.0, 0.0) == []


# --- decode ---------------------------------------------------------------------------------------

@settings(max_examples=300)
@given(st.sampled_from(MODELS), finite, finite, finite, st.integers(0, 255), st.integers(0, 255),
       transmissions, st.floats(0, 1e4))
def test_ak_codec_decodes_what_pack_reply_packs(model, p, v, t, temp, err, transmission, now_s):
    rng = mit_range(model)
    data = _mit.pack_reply(rng, DRIVER_ID, p, v, t, temp, err)
    r = _mit.unpack_reply(rng, data)
    ratio, eff, direction, zero = transmission
    got = _codec(model, transmission).decode_frame(REPLY_ID, data, now_s)
    assert math.isnan(got.pop("drive_supply_V"))          # the AK reply carries no supply reading
    assert got == {"motor_angle_rad": r["p_rad"] / (direction * ratio) - zero,
                   "motor_vel_rad_s": r["v_rad_s"] / (direction * ratio),
                   "motor_torque_Nm": -direction * ratio * eff * r["t_Nm"],
                   "motor_temp_C": float(temp), "motor_error": err, "motor_rx_s": now_s}


def test_a_short_reply_leaves_temperature_and_error_alone():
    data = _mit.pack_reply(mit_range("AK80-9"), DRIVER_ID, 0.1, 0.2, 0.3, 40, 5)[:6]
    got = _codec().decode_frame(REPLY_ID, data, 1.0)
    assert math.isnan(got["motor_temp_C"]) and got["motor_error"] == 0 and got["motor_rx_s"] == 1.0


def test_another_drivers_reply_or_id_or_length_is_not_used():
    rng = mit_range("AK80-9")
    codec = _codec()
    assert codec.decode_frame(REPLY_ID, _mit.pack_reply(rng, DRIVER_ID + 1, 0.1, 0.2, 0.3)) is None
    assert codec.decode_frame(0x7F, _mit.pack_reply(rng, DRIVER_ID, 0.1, 0.2, 0.3)) is None
    assert codec.decode_frame(REPLY_ID, b"\x01\x02\x03") is None
    assert codec.listens_to(REPLY_ID) and not codec.listens_to(DRIVER_ID)


def test_the_ak_codec_declares_its_capabilities():
    codec = _codec()
    assert isinstance(codec, DriveCodec)
    caps = codec.capabilities()
    assert caps["name"] == "ak_mit" and caps["impedance"] is True
    assert caps["readings"] == ["angle", "velocity", "torque", "temperature", "error"]
    assert not codec.reads("supply") and codec.reads("torque")
    assert (caps["tx_id"], caps["rx_ids"]) == (DRIVER_ID, [REPLY_ID]) and codec.rx_ids == (REPLY_ID,)
    assert caps["torque_limit_Nm"] == mit_range("AK80-9")["t_max"]
    assert caps["velocity_limit_rad_s"] == 50.0 and 0.02 <= caps["watchdog_s"] <= 0.05


def test_a_bad_range_never_reaches_the_codec():
    from hal.errors import ConfigError
    rng = dict(mit_range("AK80-9"), t_min=25.0)
    with pytest.raises(ConfigError, match="^t_min"):
        ak_mit_codec_from(rng, DRIVER_ID, REPLY_ID)


# --- the tick through the codec -------------------------------------------------------------------

def test_the_tick_sends_what_its_codec_encodes():
    params = ParamSet()
    codec = ak_mit_codec_from(mit_range("AK80-9"), DRIVER_ID, REPLY_ID)
    tick = build_tick(params, codec)
    assert tick.codec is codec
    tick.start(0.0)
    tick.update(0.001)
    c = tick.command
    transmission = (params["actuator.ratio"], params["actuator.efficiency"], params["actuator.direction"],
                    params["calibration.motor_zero_rad"])
    expected = codec.encode_command(c["torque_ff_Nm"], c["p_des_rad"], c["v_des_rad_s"], c["kp_Nm_rad"],
                                    c["kd_Nms_rad"])
    assert tick.command_frames() == expected == [
        (DRIVER_ID, _mit.pack_command(mit_range("AK80-9"), *_motor_side(
            (c["torque_ff_Nm"], c["p_des_rad"], c["v_des_rad_s"], c["kp_Nm_rad"], c["kd_Nms_rad"]),
            transmission)))]
    out = np.zeros(8, np.uint8)
    assert tick.command_payload(out) == 8 and bytes(out) == expected[0][1]


def test_the_tick_builds_the_same_codec_from_a_range():
    a = build_tick(ParamSet(), mit_range("AK80-9"), DRIVER_ID, REPLY_ID)
    b = build_tick(ParamSet(), ak_mit_codec_from(mit_range("AK80-9"), DRIVER_ID, REPLY_ID))
    for t in (a, b):
        t.start(0.0)
        t.update(0.001)
    assert a.command_frames() == b.command_frames()
    assert a.codec.capabilities() == b.codec.capabilities()


def test_the_tick_no_longer_knows_the_mit_protocol():
    # \bmit_ and not "mit": "torque_limit_Nm" has "mit_" in it
    pattern = re.compile(r"\bmit_|\bMIT\b|hal\._mit|\bMit[A-Z]|driver_id|reply_id")
    for name in ("_tick.pyx", "_tick.pxd"):
        text = (ROOT / "controller" / "kernels" / name).read_text()
        hits = [line for line in text.splitlines() if pattern.search(line)]
        assert hits == [], f"{name} still names the MIT protocol: {hits}"


# --- the whole stack: every frame as before -------------------------------------------------------

class _FrameRecorder:
    """A harness supervisor: after every tick, the frames the tick sent (its codec's, again)."""

    def bind(self, tick, telemetry, params, publisher=None):
        self.tick, self.hash, self.frames = tick, hashlib.sha256(), 0

    def __call__(self, k, now_s):
        out = np.zeros(8, np.uint8)
        if self.tick.command_payload(out) == 8:
            self.hash.update(out.tobytes())
            self.frames += 1
        else:
            self.hash.update(b"-")


# Recorded on the tick before the codec existed (commit c2784b2), lock-step, memory bus:
# sha256 of run.telemetry.tobytes() and of the 8-byte command payloads, tick by tick.  Re-recorded
# with the same codec and tick when issue 18 changed the simulated wearer (its gait shape by speed and
# per stride) and the estimator (a loaded start is no heel strike, the armed heel-strike threshold,
# toe-off at zero load, the stride-time search): the inputs and the gait estimate changed, so the
# frames did; the codec did not (the earlier hashes held on the commit before those changes).
_BEFORE = {
    "steady_seed1": ("a466799954d485c706e6c6e418e88978b3db78092d04adccfc6fc1847f1f030e",
                     "061cadee4a9613fdd42ce07b11e2de8e5e03fb91d907cc89c122f4848bbd1f15"),
    "stand": ("8d7f4c77bc7e5b8659d0d6901e12af75ad44d81f6130abe5bf88f03b0000fa20",
              "a65da67a7f80e6f42890631daeef609c92983f09a62386160b22f9410308a554"),
    "encoder_jump": ("a323debf827ecf8020a342232994ef4451f7681b65b8ed393cb64f0892f0f1e8",
                     "280cd5aa836b6c6bbc45fe4afa7e7a7608051a68628c5efabb673ba87d275fb3"),
}


def _case(name):
    from sim.faults import Injection
    return {"steady_seed1": dict(duration_s=5.0, seed=1),
            "stand": dict(scenario="stand", duration_s=10.0, seed=6),
            "encoder_jump": dict(duration_s=4.0, seed=4, faults=[Injection("encoder_jump", 2.0, value=0.3)]),
            }[name]


@pytest.mark.parametrize("name", sorted(_BEFORE))
def test_a_lockstep_run_is_bit_for_bit_what_it_was_before_the_codec(name):
    from sim import harness
    rec = _FrameRecorder()
    run = harness.run(supervisor=rec, **_case(name))
    telemetry, frames = _BEFORE[name]
    assert rec.frames == run.frames_sent == len(run.telemetry)
    assert rec.hash.hexdigest() == frames
    assert hashlib.sha256(harness.run(**_case(name)).telemetry.tobytes()).hexdigest() == telemetry


# --- the drive table ------------------------------------------------------------------------------

def test_the_table_holds_the_ak_drive_and_its_parts():
    from hal import drives
    from hal.ak import AKDriver
    from sim._simdrive import AkMitSimDrive
    assert drives.DRIVE_NAMES[0] == "ak_mit" and drives.DEFAULT_DRIVE == "ak_mit"
    assert drives.load("ak_mit", "setup") is AKDriver
    assert drives.load("ak_mit", "models") is AK_MODELS
    assert drives.load("ak_mit", "sim") is AkMitSimDrive
    assert drives.drive("ak_mit").sim_model in AK_MODELS
    assert drives.load("ak_mit", "codec") is drives.load("ak_mit", "codec")      # imported once


def test_an_unknown_drive_is_refused_in_one_line_listing_the_known_ones():
    from hal import drives
    from hal.errors import ConfigError
    for name in ("moteus", "ODRIVE", "AK_MIT", "", None):
        with pytest.raises(ConfigError) as info:
            drives.load(name, "codec")
        assert str(info.value) == f"driver: unknown drive {name!r} (known: {', '.join(drives.DRIVE_NAMES)})"
    with pytest.raises(ValueError, match="unknown drive part 'firmware'"):
        drives.load("ak_mit", "firmware")


def test_the_table_imports_a_part_only_when_it_is_asked_for():
    import subprocess
    import sys
    code = ("import sys, hal.drives as d\n"
            "lazy = ('sim._simdrive', 'hal._codec')\n"
            "assert not [m for m in lazy if m in sys.modules], [m for m in lazy if m in sys.modules]\n"
            "d.load('ak_mit', 'sim')\n"
            "assert 'sim._simdrive' in sys.modules and 'hal._codec' not in sys.modules\n"
            "d.load('ak_mit', 'codec')\n"
            "print('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_the_harness_and_the_spec_take_a_drive_by_name():
    from hal.bus import BusConfig
    from hal.errors import ConfigError
    from controller.runtime.process import RuntimeSpec
    from sim import harness
    from hal.drives import DRIVE_NAMES
    known = re.escape(", ".join(DRIVE_NAMES))
    with pytest.raises(ConfigError, match=rf"^driver: unknown drive 'moteus' \(known: {known}\)$"):
        harness.run(duration_s=0.1, driver="moteus")
    with pytest.raises(ConfigError, match=r"^driver: unknown drive 'moteus'"):
        RuntimeSpec(bus=BusConfig("virtual", "x"), driver_id=1, driver="moteus")
    assert RuntimeSpec(bus=BusConfig("virtual", "x"), driver_id=1).driver == "ak_mit"


def test_ankle_sim_takes_driver_from_the_table():
    import subprocess
    import sys
    cli = [sys.executable, "-m", "controller.cli"]
    from hal.drives import DRIVE_NAMES
    bad = subprocess.run(cli + ["sim", "--driver", "moteus", "--duration", "1"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    choices = ", ".join(repr(n) for n in DRIVE_NAMES)
    assert bad.returncode != 0 and f"invalid choice: 'moteus' (choose from {choices})" in bad.stderr
    a, b = (subprocess.run(cli + ["sim", "--json", "--duration", "3", "--seed", "1"] + extra, cwd=ROOT,
                           capture_output=True, text=True, timeout=120) for extra in ([], ["--driver", "ak_mit"]))
    assert a.returncode == b.returncode == 0, a.stderr + b.stderr
    import json
    ja, jb = json.loads(a.stdout), json.loads(b.stdout)
    for wall in ("wall_seconds", "realtime_factor"):
        ja.pop(wall), jb.pop(wall)
    assert ja == jb


def test_docs_drivers_lists_every_drive_of_the_table_and_no_other():
    from hal import drives
    text = (ROOT / "docs" / "drivers.md").read_text()
    table = re.findall(r"^\| `([a-z0-9_]+)`", text, re.M)
    assert sorted(table) == sorted(drives.DRIVE_NAMES) and len(table) == len(set(table)), table
    for name in drives.DRIVE_NAMES:
        for part in ("setup", "codec", "sim"):
            module = getattr(drives.drive(name), part).split(":")[0]
            path = module.replace(".", "/")
            assert f"{path}.py" in text or f"{path}.pyx" in text, (name, part, path)
