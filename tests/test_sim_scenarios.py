"""Scenarios with standing, speed steps and sensor drift, on the real plant and wearer.

The stop-start and drift checks run the whole stack over the virtual CAN bus
(``sim.harness.run``) and read what the host received; the longer and repeated
runs drive the plant directly from the wearer (no bus, no controller), which
is enough for what only the simulated wearer decides.
"""
import numpy as np
import pytest

from controller.kernels.telemetry import COLUMN as T
from hal._sensor_frames import decode_imu, decode_load
from sim import harness, scenarios
from sim.plant import build_plant
from sim.wearer import STANDARD_GRAVITY, UNLOAD_S, Wearer

G = {c: i for i, c in enumerate(harness.TRUTH_COLUMNS)}
MASS_KG = 80.0
BW_N = MASS_KG * STANDARD_GRAVITY
SETTLED_S = 0.6          # after a stop's heel strike: load on, foot flat, shank upright


def walk_plant(scenario, duration_s, seed=0, **overrides):
    """Drive the plant from the wearer at 1 kHz with no bus or controller.

    Returns (ticks x [truth..., gyro frame, load frame], wearer).
    """
    plant = build_plant(dict(seed=seed, mass_kg=MASS_KG, **overrides))
    wearer = Wearer(scenario, 1.25, MASS_KG, seed=seed)
    plant.queue_stride(*wearer.next_stride(0.0))
    plant.start(0.0)
    plant.queue_stride(*wearer.next_stride(wearer.strides[-1].t_end_s))
    n = int(round(duration_s * 1000))
    out = np.zeros((n, len(harness.TRUTH_COLUMNS) + 2))
    buf = bytearray(8)
    for k in range(n):
        if plant.advance(k * 1e-3):
            plant.queue_stride(*wearer.next_stride(wearer.strides[-1].t_end_s))
        plant.truth(out[k, :-2])
        out[k, -2] = decode_imu(bytes(buf[:plant.imu_payload(buf)]))["gyro_z_rad_s"]
        out[k, -1] = decode_load(bytes(buf[:plant.load_payload(buf)]))["load_N"]
    return out, wearer


def quiet_windows(strides):
    """(start, end) of each standing segment's quiet part: settled after a stop, before unloading."""
    windows = []
    for i, s in enumerate(strides):
        if s.walking:
            continue
        start = s.t_heel_strike_s + (SETTLED_S if i == 0 or strides[i - 1].walking else 0.0)
        end = s.t_heel_strike_s + s.stance_fraction * s.stride_s - (UNLOAD_S if s.stance_fraction < 1 else 0)
        windows.append((start, end))
    return windows


@pytest.fixture(scope="module")
def stop_start():
    """Walk 15 s, stand 8 s, walk again: 27 s over the bus."""
    return harness.run(scenario="stop-start", duration_s=27.0, seed=2)


def test_segments_are_contiguous_and_flagged(stop_start):
    strides = stop_start.strides
    for a, b in zip(strides, strides[1:]):
        assert b.t_heel_strike_s == pytest.approx(a.t_end_s, abs=1e-9)
    flags = [s.walking for s in strides]
    first_stand = flags.index(False)
    resume = flags.index(True, first_stand)
    assert all(flags[:first_stand]) and not any(flags[first_stand:resume]) and all(flags[resume:])
    # standing begins at the first heel strike the scenario says to stand, and ends after 23 s
    assert strides[first_stand - 1].t_heel_strike_s < 15.0 <= strides[first_stand].t_heel_strike_s
    assert 23.0 < strides[resume].t_heel_strike_s < 23.0 + 1.0
    assert all(2.0 <= s.stride_s <= 5.0 for s in strides[first_stand:resume])
    assert all(s.speed_m_s == 0.0 for s in strides[first_stand:resume])
    assert len(strides) - resume >= 2


def test_standing_truth_has_no_phase(stop_start):
    truth = stop_start.truth
    walking = truth[:, G["walking_true"]]
    standing = walking == 0.0
    assert standing.sum() > 7000
    assert np.all(truth[standing, G["phase_true"]] == -1.0)
    assert np.all(truth[~standing, G["phase_true"]] >= 0.0)
    for s in stop_start.strides:            # walking_true follows the strides' flags
        t = truth[:, G["t"]]
        inside = (t > s.t_heel_strike_s + 1e-6) & (t < s.t_end_s - 1e-6)
        assert np.all(walking[inside] == float(s.walking))


def test_standing_is_loaded_and_still(stop_start):
    tel, truth = stop_start.telemetry, stop_start.truth
    t = tel[:, T["t"]]
    windows = quiet_windows(stop_start.strides)
    assert sum(b - a for a, b in windows) > 6.5
    for a, b in windows:
        sel = (t >= a) & (t < b)
        assert tel[sel, T["load"]].min() >= 0.2 * BW_N
        assert tel[sel, T["load"]].max() <= 0.85 * BW_N
        assert np.abs(tel[sel, T["shank_gyro"]]).max() < 0.3
        assert np.all(truth[sel, G["stance_true"]] == 1.0)
        # the ankle is held near foot-flat: the shank stays near vertical, so does the ankle
        assert np.abs(truth[sel, G["ankle_angle_true"]]).max() < 0.1
    # the weight really shifts while standing
    sel = (t >= windows[0][0]) & (t < windows[-1][1])
    assert np.ptp(tel[sel, T["load"]]) > 0.15 * BW_N


def test_walking_resumes_with_a_swing_then_a_normal_heel_strike(stop_start):
    tel = stop_start.telemetry
    t = tel[:, T["t"]]
    strides = stop_start.strides
    resume = next(i for i, s in enumerate(strides) if s.walking and i > 0 and not strides[i - 1].walking)
    initiation, first = strides[resume - 1], strides[resume]
    swing_s = (1.0 - initiation.stance_fraction) * initiation.stride_s
    assert 0.3 < swing_s < 0.6                                  # a swing's duration at 1.25 m/s
    swing = (t > first.t_heel_strike_s - swing_s + 0.005) & (t < first.t_heel_strike_s - 0.002)
    assert np.abs(tel[swing, T["load"]]).max() < 0.03 * BW_N    # foot off the ground (noise only)
    assert tel[swing, T["shank_gyro"]].max() > 2.0              # the shank swings forward
    after = (t >= first.t_heel_strike_s + 0.02) & (t < first.t_heel_strike_s + 0.1)
    assert tel[after, T["load"]].min() > 0.1 * BW_N             # weight comes on at heel strike
    # the heel strike is the same as any walking stride's: same load profile shortly after
    other = strides[resume + 1]
    later = (t >= other.t_heel_strike_s + 0.02) & (t < other.t_heel_strike_s + 0.1)
    n = min(after.sum(), later.sum())
    assert np.abs(tel[after, T["load"]][:n] - tel[later, T["load"]][:n]).max() < 0.1 * BW_N


def test_bias_and_offset_drift_reach_the_host():
    quiet = {"gyro_noise_rad_s": 0.0, "load_noise_N": 0.0}
    plain = harness.run(duration_s=4.0, seed=6, plant_overrides=quiet)
    drifting = harness.run(duration_s=4.0, seed=6, plant_overrides=dict(
        quiet, gyro_bias_rad_s=0.02, gyro_bias_drift_rad_s2=0.01, load_offset_N=-4.0,
        load_offset_drift_N_s=5.0))
    t = plain.telemetry[:, T["t"]]
    # the host reads each tick's samples in the same tick: the row's t is the sample time
    d_gyro = drifting.telemetry[:, T["shank_gyro"]] - plain.telemetry[:, T["shank_gyro"]]
    d_load = drifting.telemetry[:, T["load"]] - plain.telemetry[:, T["load"]]
    ok = np.isfinite(d_gyro) & np.isfinite(d_load) & (t > 0.01)
    np.testing.assert_allclose(d_gyro[ok], 0.02 + 0.01 * t[ok], atol=0.0015)
    np.testing.assert_allclose(d_load[ok], -4.0 + 5.0 * t[ok], atol=0.75)


def test_stand_scenario_stands_for_good():
    out, wearer = walk_plant("stand", 30.0, seed=4)
    flags = [s.walking for s in wearer.strides]
    first_stand = flags.index(False)
    assert all(flags[:first_stand]) and not any(flags[first_stand:])
    assert all(s.stance_fraction == 1.0 for s in wearer.strides[first_stand:])   # no gait initiation
    t, load, gyro = out[:, G["t"]], out[:, -1], out[:, -2]
    settled = t > wearer.strides[first_stand].t_heel_strike_s + SETTLED_S
    assert load[settled].min() >= 0.2 * BW_N and load[settled].max() <= 0.85 * BW_N
    assert np.abs(gyro[settled]).max() < 0.3
    assert np.all(out[settled, G["phase_true"]] == -1.0) and np.all(out[settled, G["walking_true"]] == 0.0)
    # postural sway: the integrated gyro (shank angle) moves a few hundredths of a radian
    shank = np.cumsum(gyro[settled]) * 1e-3
    assert 0.01 < np.ptp(shank) < 0.1


def test_same_seed_same_standing_other_seed_other():
    a, wa = walk_plant("stop-start", 26.0, seed=9)
    b, wb = walk_plant("stop-start", 26.0, seed=9)
    c, wc = walk_plant("stop-start", 26.0, seed=10)
    np.testing.assert_array_equal(a, b)
    assert wa.strides == wb.strides
    standing = a[:, G["walking_true"]] == 0.0
    assert standing.any()
    assert [s.stride_s for s in wa.strides if not s.walking] != [s.stride_s for s in wc.strides if not s.walking]


def test_slow_fast_steps_between_sixty_and_one_twenty_percent():
    wearer = Wearer("slow-fast", 1.25, MASS_KG, seed=0)
    t = 0.0
    while t < 45.0:
        wearer.next_stride(t)
        t = wearer.strides[-1].t_end_s
    for s in wearer.strides:
        expected = 0.75 if int(s.t_heel_strike_s // 15.0) % 2 == 0 else 1.5
        assert s.speed_m_s == pytest.approx(expected) and s.walking


def test_scenarios_keep_walking_speeds_in_the_model_and_stand_on_zero():
    assert {"steady", "speed-steps", "ramp", "slow-fast", "stop-start", "stand"} <= set(scenarios.SCENARIOS)
    stop_start = scenarios.get("stop-start").speed_at
    assert [stop_start(t, 1.25) for t in (0.0, 14.9, 15.0, 22.9, 23.0, 38.0)] == [1.25, 1.25, 0.0, 0.0, 1.25, 0.0]
    stand = scenarios.get("stand").speed_at
    assert stand(5.9, 1.25) == 1.25 and stand(6.0, 1.25) == 0.0 and stand(3000.0, 1.25) == 0.0
    wearer = Wearer("ramp", 2.1, MASS_KG, seed=0)               # 140 % of 2.1 m/s is beyond the model
    t = 0.0
    while t < 40.0:
        wearer.next_stride(t)
        t = wearer.strides[-1].t_end_s
    assert max(s.speed_m_s for s in wearer.strides) <= 2.15


def test_stride_cv_reaches_the_wearer():
    steady = harness.run(duration_s=3.5, seed=1, stride_cv=0.0)
    assert len({round(s.stride_s, 9) for s in steady.strides}) == 1
    with pytest.raises(ValueError, match="stride_cv"):
        harness.run(duration_s=1.0, stride_cv=0.5)
