"""The estimator on walking it was not tuned on (issue 18): strides that halve or double from one
stride to the next, slow load rises, a load offset that crept while the wearer stood, toe-off
where the load reaches zero, and the IMU lost.

The traces are built here, sample by sample, from the simulator's strides (``sim.traces``) and
from plain shapes with known event times; each test names what the estimator used to do.
"""
import numpy as np
import pytest

from controller.params.registry import ParamSet
from controller.records.replay import estimate
from sim.traces import walking_trace

G = 9.80665
MASS_KG = 80.0
PARAMS = ParamSet({"wearer.mass_kg": MASS_KG})


def _bouts(speeds, strides_per_bout=6, seed=0):
    """Bouts of walking at each speed in turn, joined at heel strikes: the stride time halves or
    doubles from one stride to the next where the speed changes (0.45 <-> 2.0 m/s: x2.07)."""
    parts, t0, hs, phase_true = [], 0.0, [], []
    for i, v in enumerate(speeds):
        tr = walking_trace("steady", v, 6.0 * strides_per_bout, stride_cv=0.02, seed=seed + i)
        end = tr["heel_strike_s"][strides_per_bout]
        keep = tr["t"] < end - 1e-9
        parts.append({k: tr[k][keep] for k in ("shank_gyro", "load", "ankle_angle", "phase_true")}
                     | {"t": tr["t"][keep] + t0})
        hs.extend(tr["heel_strike_s"][:strides_per_bout] + t0)
        t0 += end
    out = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    out["heel_strike_s"] = np.array(hs)
    return out


def _stride_rmse_pct(tr, out):
    """(stride time, its previous stride time, phase RMSE %) of every stride the estimator walked."""
    hs, t = tr["heel_strike_s"], tr["t"]
    rows = []
    for k in range(1, len(hs) - 1):
        sel = (t >= hs[k]) & (t < hs[k + 1]) & (out["walking"] == 1)
        if sel.sum() < 20:
            continue
        d = out["phase"][sel] - tr["phase_true"][sel]
        d -= np.round(d)
        rows.append((hs[k + 1] - hs[k], hs[k] - hs[k - 1], 100.0 * float(np.sqrt(np.mean(d ** 2)))))
    return rows


def test_the_stride_time_halving_or_doubling_from_one_stride_to_the_next_is_followed_within_it():
    """It was off by about 20 % of a stride there: the search spanned x0.67..x1.49 of the last
    stride, one template served every speed, and the prior held the last stride's time."""
    tr = _bouts([2.0, 0.45, 2.0, 0.45, 2.0, 0.45])
    out = estimate(tr["t"], tr["shank_gyro"], tr["load"], tr["ankle_angle"], PARAMS)
    rows = _stride_rmse_pct(tr, out)
    changes = [r for T, prev, r in rows if max(T / prev, prev / T) >= 1.6]
    assert len(changes) == 5                      # every switch of speed is a stride of a change
    assert max(changes) <= 6.0, changes
    later = [r for T, prev, r in rows[3:]]
    assert float(np.sqrt(np.mean(np.square(later)))) <= 1.5


def _slow_load_trace(stride_s=2.2, stance=0.68, rise_s=0.2, fall_s=0.12, strides=8, noise_N=8.0, seed=1):
    """A very slow walker: the load rises linearly to body weight over ``rise_s`` after contact
    (3.9 kN/s: 0.15 BW only 30 ms after contact) and falls linearly over ``fall_s`` to zero at
    toe-off; the shank swings forward in swing (a half sine of 3 rad/s) and turns back just
    before contact."""
    rate = 1000.0
    lead = 0.5 * (1.0 - stance) * stride_s
    t = np.arange(0.0, strides * stride_s, 1.0 / rate)
    tau = (t - lead) % stride_s
    stance_s = stance * stride_s
    rise = np.clip(tau / rise_s, 0.0, 1.0)
    fall = np.clip((stance_s - tau) / fall_s, 0.0, 1.0)
    load = np.where((tau < stance_s) & (t >= lead), MASS_KG * G * np.minimum(rise, fall), 0.0)
    swing = np.clip((tau - stance_s) / (stride_s - stance_s), 0.0, 1.0)
    gyro = np.where(tau < stance_s, -0.6, 3.0 * np.sin(np.pi * swing * 1.08) - 0.2)
    rng = np.random.default_rng(seed)
    load += noise_N * rng.standard_normal(t.size)
    gyro += 0.02 * rng.standard_normal(t.size)
    hs = lead + np.arange(strides) * stride_s
    return t, gyro, load, hs, hs + stance_s


def _latencies(true_s, detected_s):
    return np.array([detected_s[np.argmin(np.abs(detected_s - e))] - e for e in true_s])


def test_a_slow_load_rise_is_a_heel_strike_within_a_few_ms_once_a_real_swing_has_ended():
    """It came 30-35 ms late at 1.8 s strides and more: the fixed 0.15 BW threshold with its hold
    waited for the slow rise.  After a real swing that has turned back, a load clear of the
    swing's own noise is contact."""
    t, gyro, load, hs, _ = _slow_load_trace()
    out = estimate(t, gyro, load, np.zeros_like(t), PARAMS)
    det = t[out["heel_strike"] == 1]
    assert len(det) == len(hs)
    lat = _latencies(hs, det)[1:]       # the record begins in a swing it did not see from toe-off
    assert np.median(lat) <= 0.012 and lat.max() <= 0.02 and lat.min() >= 0.0
    # without the shank (the IMU lost) every contact after a learned swing is armed the same way
    # (every contact after an unloading counts there anyway): as quick
    plain = estimate(t, np.full_like(t, np.nan), load, np.zeros_like(t), PARAMS)
    lat_plain = _latencies(hs, t[plain["heel_strike"] == 1])[1:]
    assert np.median(lat_plain) <= 0.012 and lat_plain.max() <= 0.02


def test_toe_off_is_where_the_falling_load_reaches_zero():
    """It came where the load crossed 0.03 BW, 10-25 ms before the foot left at slow walking
    (here the toe unloads over 0.5 s: the threshold is crossed 15 ms before zero)."""
    t, gyro, load, _, to = _slow_load_trace(noise_N=4.0, fall_s=0.5)
    out = estimate(t, gyro, load, np.zeros_like(t), PARAMS)
    lat = _latencies(to, t[out["toe_off"] == 1])
    assert len(lat) == len(to)
    assert np.all(np.abs(lat) <= 0.008), lat


def test_a_load_offset_that_crept_while_standing_does_not_hide_the_first_step():
    """Standing loaded, an insole or load cell creeps: the foot off the ground then reads more
    than the toe-off threshold, so the first toe-off (and the whole first stride) was lost.  The
    shank swinging forward over a low, flat load is the foot off, and its reading the offset."""
    t, gyro, load, hs, to = _slow_load_trace(stride_s=1.2, stance=0.62, rise_s=0.08, strides=10)
    creep = np.where(t > hs[5] + 0.2, 45.0, 0.0)       # +45 N (0.057 BW), crept in the 6th stance
    out = estimate(t, gyro, load + creep, np.zeros_like(t), PARAMS)
    det_to = t[out["toe_off"] == 1]
    det_hs = t[out["heel_strike"] == 1]
    assert len(det_hs) == len(hs) and len(det_to) == len(to)
    # found by the fallback once the shank swings faster than swing_gyro_rad_s: up to ~60 ms late
    assert np.all(np.abs(_latencies(to, det_to)) <= 0.08)
    assert np.all(np.abs(_latencies(hs, det_hs)) <= 0.02)


def test_with_the_imu_lost_the_time_based_phase_takes_the_recent_strides_and_the_stance():
    """The time-based phase divided by the last stride alone (2.5 % jitter each stride)."""
    tr = walking_trace("steady", 1.25, 60.0, stride_cv=0.025, seed=7)
    lost = np.full_like(tr["t"], np.nan)
    out = estimate(tr["t"], lost, tr["load"], tr["ankle_angle"], PARAMS)
    sel = (tr["t"] >= tr["heel_strike_s"][4]) & (out["walking"] == 1)
    assert sel.mean() > 0.8
    d = out["phase"][sel] - tr["phase_true"][sel]
    d -= np.round(d)
    assert 100.0 * float(np.sqrt(np.mean(d ** 2))) <= 1.3


@pytest.mark.parametrize("shift_N", [60.0, 150.0])
def test_weight_shifts_while_standing_make_no_heel_strike(shift_N):
    """The armed threshold is low, so it must stay disarmed without a real swing."""
    t = np.arange(0.0, 20.0, 1e-3)
    load = 0.5 * MASS_KG * G + shift_N * np.sin(2 * np.pi * t / 3.0)
    load[(t % 5.0) < 0.3] = 10.0                          # the foot lifted briefly, no swing
    gyro = 0.05 * np.sin(2 * np.pi * t * 0.4)
    out = estimate(t, gyro, load, np.zeros_like(t), PARAMS)
    assert out["heel_strike"].sum() == 0 and out["walking"].sum() == 0


def test_after_stands_of_1_to_60_s_the_first_step_is_found_and_gets_its_push_off():
    """The whole stack, lock-step, scenario long-stands (stands of 1, 5, 20 and 60 s).  The first
    push-off after a stand was lost: the stand's long contact was taken as the stance time, and
    the push-off planned on it came after the stance had ended."""
    from controller.kernels.telemetry import COLUMN
    from sim import harness
    run = harness.run(scenario="long-stands", speed_m_s=1.25, duration_s=140.0, seed=2)
    tel, t = run.telemetry, run.telemetry[:, COLUMN["t"]]
    restarts = [i for i, s in enumerate(run.strides[:-1])
                if i and s.walking and not run.strides[i - 1].walking and run.strides[i + 1].t_end_s < t[-1]]
    assert len(restarts) == 4
    for i in restarts:
        first, second = run.strides[i], run.strides[i + 1]
        in_first = (t >= first.t_heel_strike_s) & (t < first.t_end_s)
        in_second = (t >= second.t_heel_strike_s) & (t < second.t_end_s)
        assert tel[in_first & (t < first.t_heel_strike_s + 0.02), COLUMN["heel_strike"]].sum() == 1
        assert tel[in_first, COLUMN["walking"]].mean() > 0.99
        assert np.nanmax(tel[in_first, COLUMN["pushoff_cmd_Nm"]]) >= 0.8 * np.nanmax(tel[in_second, COLUMN["pushoff_cmd_Nm"]])


def test_a_boot_with_the_foot_loaded_reports_standing_and_no_heel_strike():
    """The device boots while worn (scenario boot-loaded: standing from t = 0 for 4 s): it used
    to report a heel strike on its first samples."""
    from controller.kernels.telemetry import COLUMN
    from sim import harness
    run = harness.run(scenario="boot-loaded", speed_m_s=1.25, duration_s=8.0, seed=2)
    tel, t = run.telemetry, run.telemetry[:, COLUMN["t"]]
    first_step = run.strides[1].t_heel_strike_s
    assert not run.strides[0].walking and first_step > 4.0
    assert tel[t < first_step, COLUMN["heel_strike"]].sum() == 0
    assert tel[(t > 0.01) & (t < first_step - 0.5), COLUMN["standing"]].all()
    assert tel[(t > first_step) & (t < first_step + 0.02), COLUMN["heel_strike"]].sum() == 1
