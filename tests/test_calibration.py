"""Sensor calibration from telemetry windows (controller.console.calibration.measure), and the tick applying
the offsets to what it reads and sends."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from controller.kernels._tick import TELEMETRY_COLUMNS
from controller.kernels.telemetry import COLUMN as COL
from controller.console.calibration import KINDS, WINDOW_S, measure
from controller.runtime.loop import build_tick
from controller.params.registry import ParamError, ParamSet
from hal import _mit, _sensor_frames
from hal._sensor_frames import LOAD_ID, IMU_ID
from hal.ak import mit_range

P = ParamSet()
STANCE_N = P["estimator.heel_strike_load_bw"] * P["wearer.mass_kg"] * 9.80665


def window(n=2001, *, gyro=0.0, load=600.0, ankle=0.0, motor=None, vel=0.0, walking=0, sway=0.0, seconds=WINDOW_S):
    """Telemetry rows of a still wearer over ``seconds``: constant readings plus a slow sway."""
    rows = np.zeros((n, len(TELEMETRY_COLUMNS)))
    t = np.linspace(10.0, 10.0 + seconds, n)
    rows[:, COL["t"]] = t
    rows[:, COL["shank_gyro"]] = gyro + sway * np.cos(2 * np.pi * 0.4 * t)
    rows[:, COL["load"]] = load
    rows[:, COL["ankle_angle"]] = ankle
    rows[:, COL["motor_angle"]] = ankle if motor is None else motor
    rows[:, COL["motor_vel"]] = vel
    rows[:, COL["walking"]] = walking
    return rows


def test_each_kind_sets_old_plus_the_mean_of_what_is_left():
    p = P.with_values({"calibration.gyro_bias_rad_s": 0.01, "calibration.ankle_zero_rad": 0.02,
                       "calibration.motor_zero_rad": -0.01, "calibration.load_offset_N": 5.0})
    got = measure("imu", window(gyro=0.03), p)
    assert got.values == {"calibration.gyro_bias_rad_s": pytest.approx(0.04)}
    got = measure("angle", window(ankle=0.05, motor=0.04), p)
    assert got.values == {"calibration.ankle_zero_rad": pytest.approx(0.07),
                          "calibration.motor_zero_rad": pytest.approx(0.03)}
    got = measure("load", window(load=12.0), p)
    assert got.values == {"calibration.load_offset_N": pytest.approx(17.0)}
    assert "measured over 2.00 s" in got.message


@pytest.mark.parametrize("kind, rows, reason", [
    ("imu", window(walking=1), "the wearer walked during the measurement"),
    ("imu", window(gyro=0.0, sway=0.5), "not still: shank turned up to"),
    ("angle", window(vel=0.5), "not still: ankle moved at up to 28.6 deg/s"),
    ("angle", window(load=50.0), "angle zero needs weight on the prosthesis"),
    ("load", window(load=600.0), "load tare needs the foot off the ground"),
    ("imu", window(seconds=0.5), "only 0.50 s of telemetry"),
    ("imu", window()[:1], "no telemetry recorded"),
    ("knee", window(), "calibrate what?"),
])
def test_refusals_say_why_and_set_nothing(kind, rows, reason):
    got = measure(kind, rows, P)
    assert got.refused and got.values == {} and reason in got.message, got.message


def test_a_lost_sensor_is_refused():
    rows = window()
    rows[100, COL["shank_gyro"]] = math.nan
    assert "a sensor gave no reading" in measure("imu", rows, P).message


def test_a_zero_outside_its_bounds_is_refused_by_the_parameter_set():
    got = measure("angle", window(ankle=0.5), P)         # a sensor mounted 29 degrees off
    with pytest.raises(ParamError, match="calibration.ankle_zero_rad = 0.5 is out of range"):
        P.with_values(got.values)


@settings(max_examples=200, deadline=None)
@given(kind=st.sampled_from(sorted(KINDS)),
       level=st.floats(-1e3, 1e3), sway=st.floats(0.0, 1.0), walking=st.booleans(),
       load=st.floats(-500.0, 2000.0), n=st.integers(0, 300))
def test_any_window_gives_values_within_their_bounds_or_a_refusal(kind, level, sway, walking, load, n):
    rows = window(n=n, gyro=level * 1e-3, ankle=level * 1e-4, load=load, sway=sway, walking=int(walking))
    got = measure(kind, rows, P)
    if got.refused:
        assert got.message
        return
    assert not walking and set(got.values) == set(KINDS[kind][1])
    for value in got.values.values():
        assert math.isfinite(value)
    try:
        P.with_values(got.values)                         # bounded by the registry, or refused there
    except ParamError as e:
        assert "out of range" in str(e)


def test_the_tick_subtracts_the_offsets_and_adds_the_motor_zero_to_its_set_point():
    p = P.with_values({"calibration.gyro_bias_rad_s": 0.05, "calibration.ankle_zero_rad": 0.02,
                       "calibration.motor_zero_rad": 0.03, "calibration.load_offset_N": 20.0})
    rng = mit_range("AK80-9")
    plain, calibrated = build_tick(P, rng, 1), build_tick(p, rng, 1)
    frames = [(IMU_ID, _sensor_frames.encode_imu(1.0, 0.0, 9.8, 0, 0)),
              (LOAD_ID, _sensor_frames.encode_load(500.0, 0.1, 0, 0)),
              (0, _mit.pack_reply(dict(rng), 1, 0.1 * -7.0, 0.0, 0.0))]     # direction -1, ratio 7
    for tick in (plain, calibrated):
        for can_id, data in frames:
            assert tick.ingest(can_id, np.frombuffer(data, dtype=np.uint8).copy(), 1.0)
    a, b = plain.inputs, calibrated.inputs
    assert b["shank_gyro_rad_s"] == pytest.approx(a["shank_gyro_rad_s"] - 0.05, abs=1e-3)
    assert b["load_N"] == pytest.approx(a["load_N"] - 20.0, abs=0.1)
    assert b["ankle_angle_rad"] == pytest.approx(a["ankle_angle_rad"] - 0.02, abs=1e-3)
    assert b["motor_angle_rad"] == pytest.approx(a["motor_angle_rad"] - 0.03, abs=1e-3)
    # the set-point goes back into the driver's frame: the same driver angle for the same ankle command
    for tick in (plain, calibrated):
        tick.start(1.0)
        tick.update(1.001)
    out_a, out_b = np.zeros(8, dtype=np.uint8), np.zeros(8, dtype=np.uint8)
    assert plain.command_payload(out_a) == 8 and calibrated.command_payload(out_b) == 8
    p_a = _mit.unpack_command(dict(rng), bytes(out_a))["p_rad"]
    p_b = _mit.unpack_command(dict(rng), bytes(out_b))["p_rad"]
    want_b = (calibrated.command["p_des_rad"] + 0.03) * -7.0
    assert p_b == pytest.approx(want_b, abs=2e-3) and p_a == pytest.approx(plain.command["p_des_rad"] * -7.0, abs=2e-3)
