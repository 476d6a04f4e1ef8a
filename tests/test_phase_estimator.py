"""The shank-motion phase estimator: accuracy, speed changes, standing, sensor loss, rate, causality.

Inputs are the simulated wearer's sensor traces (``sim.traces``: the reference gait
warped per stride, 2.5 % stride-time CV, gyro noise and bias, load noise) fed one
sample at a time through the compiled estimator, as ``ankle replay`` and the loop do.
"""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from controller.kernels._phase_match import PhaseMatcher
from controller.params.registry import ParamSet
from controller.records.replay import estimate
from sim.traces import walking_trace

PARAMS = ParamSet()


def run(tr, use_shank=True, params=PARAMS):
    return estimate(tr["t"], tr["shank_gyro"], tr["load"], tr["ankle_angle"], params, use_shank=use_shank)


def phase_rmse_pct(tr, out, skip_strides=3):
    """RMSE of the phase over the ticks after the first ``skip_strides`` strides where it walks."""
    t = tr["t"]
    sel = (t >= tr["heel_strike_s"][skip_strides]) & (out["walking"] == 1)
    assert sel.mean() > 0.8, "the estimator stopped walking while the wearer walked"
    d = out["phase"][sel] - tr["phase_true"][sel]
    d -= np.round(d)
    return 100.0 * float(np.sqrt(np.mean(d ** 2)))


def detected(tr, out, key):
    return tr["t"][out[key] == 1]


def latencies_s(true_s, det_s):
    """Latency of each true event to its detection (one each, in order)."""
    assert len(det_s) == len(true_s), (len(det_s), len(true_s))
    return np.asarray(det_s) - np.asarray(true_s)


@pytest.mark.parametrize("speed", [0.5, 1.25, 2.0])
def test_steady_walking_meets_the_target_and_beats_time(speed):
    tr = walking_trace("steady", speed, 40.0, stride_cv=0.025, gyro_bias_rad_s=0.05, seed=3)
    shank, plain = run(tr), run(tr, use_shank=False)
    assert phase_rmse_pct(tr, shank) <= 1.5
    assert phase_rmse_pct(tr, shank) < 0.6 * phase_rmse_pct(tr, plain)


@pytest.mark.parametrize("scenario", ["slow-fast", "speed-steps", "ramp"])
def test_speed_changes_meet_the_target(scenario):
    tr = walking_trace(scenario, 1.25, 60.0, stride_cv=0.025, gyro_bias_rad_s=-0.04, seed=5)
    shank, plain = run(tr), run(tr, use_shank=False)
    assert phase_rmse_pct(tr, shank) <= 2.0
    assert phase_rmse_pct(tr, shank) < 0.5 * phase_rmse_pct(tr, plain)


def test_events_have_short_latency_and_none_missed_or_false():
    tr = walking_trace("slow-fast", 1.25, 45.0, stride_cv=0.025, seed=2)
    out = run(tr)
    # the trace starts loaded at its first "heel strike" (t = 0): no estimator saw that step
    hs = latencies_s(tr["heel_strike_s"][1:], detected(tr, out, "heel_strike"))
    det_to = detected(tr, out, "toe_off")
    to = latencies_s(tr["toe_off_s"][1:][tr["toe_off_s"][1:] < det_to[-1] + 0.05], det_to)
    assert np.median(hs) <= 0.010 and np.percentile(hs, 95) <= 0.025 and hs.min() >= 0.0
    assert np.median(np.abs(to)) <= 0.010 and np.percentile(np.abs(to), 95) <= 0.025


@pytest.mark.parametrize("rate_Hz", [500.0, 2000.0])
def test_any_sample_rate_from_500_Hz_to_2_kHz(rate_Hz):
    tr = walking_trace("slow-fast", 1.25, 40.0, rate_Hz=rate_Hz, stride_cv=0.025, seed=4)
    out = run(tr)
    assert len(detected(tr, out, "heel_strike")) == len(tr["heel_strike_s"]) - 1     # not the loaded start
    assert phase_rmse_pct(tr, out) <= 2.0


def test_estimates_use_no_future_samples():
    tr = walking_trace("speed-steps", 1.25, 20.0, seed=6)
    full = run(tr)
    cut = 12_345
    head = run({k: (v[:cut] if k in ("t", "shank_gyro", "load", "ankle_angle") else v) for k, v in tr.items()})
    for key in ("phase", "heel_strike", "toe_off", "walking", "standing"):
        np.testing.assert_array_equal(head[key], full[key][:cut])


def test_imu_lost_falls_back_to_load_events_and_time():
    tr = walking_trace("steady", 1.25, 30.0, seed=7)
    lost_at = 15.0
    tr["shank_gyro"][tr["t"] >= lost_at] = np.nan
    out = run(tr)
    after = tr["t"] >= lost_at + 0.5
    assert out["walking"][after].mean() > 0.95               # still walking, on time
    true_hs = tr["heel_strike_s"][tr["heel_strike_s"] > lost_at]
    hs = latencies_s(true_hs, detected(tr, out, "heel_strike")[detected(tr, out, "heel_strike") > lost_at])
    assert np.all((hs >= 0.0) & (hs <= 0.025))


def test_load_lost_falls_back_to_imu_events():
    tr = walking_trace("steady", 1.25, 30.0, seed=8)
    lost_at = 15.0
    tr["load"][tr["t"] >= lost_at] = np.nan
    out = run(tr)
    later = tr["t"] >= lost_at
    assert out["walking"][later].mean() > 0.95
    true_hs = tr["heel_strike_s"][tr["heel_strike_s"] > lost_at + 0.05]
    det = detected(tr, out, "heel_strike")
    hs = latencies_s(true_hs, det[det > lost_at + 0.05])
    assert np.all(np.abs(hs) <= 0.025)
    true_to = tr["toe_off_s"][(tr["toe_off_s"] > lost_at + 0.05) & (tr["toe_off_s"] < tr["t"][-1] - 0.1)]
    det_to = detected(tr, out, "toe_off")
    to = latencies_s(true_to, det_to[(det_to > lost_at + 0.05) & (det_to < tr["t"][-1] - 0.05)])
    assert np.all(np.abs(to) <= 0.05)
    assert phase_rmse_pct(tr, out) <= 2.0


def _stand_after_walking(tr, stand_s=6.0, sway_rad_s=0.05, shift_N=250.0):
    """Append standing: the foot stays loaded with weight shifts, the shank sways; then walk again."""
    t = tr["t"]
    dt = t[1] - t[0]
    last_hs = tr["heel_strike_s"][-1]
    keep = t < last_hs + 0.08            # the final heel strike and its loading
    ts = np.arange(0.0, stand_s, dt)
    settle = np.exp(-ts / 0.15)
    gyro = tr["shank_gyro"][keep][-1] * settle + sway_rad_s * np.sin(2 * np.pi * 0.4 * ts)
    load = 600.0 + shift_N * np.sin(2 * np.pi * 0.15 * ts)
    t_stand = t[keep][-1] + dt + ts
    again = walking_trace("steady", 1.25, 8.0, rate_Hz=1.0 / dt, seed=11)
    # gait initiation: the walking trace from its first toe-off (swing, then heel strike)
    start = again["t"] >= again["toe_off_s"][0]
    t_again = t_stand[-1] + dt + again["t"][start] - again["t"][start][0]
    out = {
        "t": np.concatenate([t[keep], t_stand, t_again]),
        "shank_gyro": np.concatenate([tr["shank_gyro"][keep], gyro, again["shank_gyro"][start]]),
        "load": np.concatenate([tr["load"][keep], load, again["load"][start]]),
    }
    out["ankle_angle"] = np.zeros_like(out["t"])
    first_hs_again = t_again[0] + again["heel_strike_s"][1] - again["t"][start][0]
    return out, last_hs, t_stand[-1], first_hs_again


def test_standing_is_recognised_within_a_second_and_walking_resumes_at_the_first_heel_strike():
    tr = walking_trace("steady", 1.25, 12.0, seed=9)
    trace, last_hs, stand_end, first_hs = _stand_after_walking(tr)
    out = run(trace)
    t = trace["t"]
    standing = (t >= last_hs + 1.0) & (t < stand_end)
    assert np.all(out["walking"][standing] == 0) and np.all(out["phase"][standing] == -1.0)
    assert out["standing"][standing].all()
    hs_after = t[(out["heel_strike"] == 1) & (t > stand_end)]
    assert abs(hs_after[0] - first_hs) <= 0.025
    back = t[(out["walking"] == 1) & (t > stand_end)]
    assert back[0] - first_hs <= 0.025                    # walking again on that heel strike
    # no heel strike while standing, however the weight shifts
    assert not out["heel_strike"][(t > last_hs + 0.1) & (t < stand_end)].any()


def test_weight_shift_to_zero_without_a_swing_is_no_step():
    tr = walking_trace("steady", 1.25, 12.0, seed=10)
    trace, last_hs, stand_end, _ = _stand_after_walking(tr, shift_N=700.0)   # load dips to ~0
    out = run(trace)
    t = trace["t"]
    quiet = (t > last_hs + 0.1) & (t < stand_end)
    assert trace["load"][quiet].min() < 0.03 * 80 * 9.81            # it does unload
    assert not out["heel_strike"][quiet].any()
    assert not out["walking"][(t > last_hs + 1.0) & (t < stand_end)].any()


def test_matcher_finds_a_new_stride_time_within_the_stride():
    tr = walking_trace("steady", 1.25, 10.0, stride_cv=0.0, gyro_noise_rad_s=0.0, seed=0)
    m = PhaseMatcher(PARAMS["estimator.template_rate"], PARAMS["estimator.prior_weight"])   # no defaults of its own
    t, g = tr["t"], tr["shank_gyro"]
    hs = tr["heel_strike_s"]
    stride_s = hs[1] - hs[0]
    for k in range(3):                   # learn three strides
        m.py_begin_stride(stride_s)
        for ti, gi in zip(t[(t >= hs[k]) & (t < hs[k + 1] + 0.002)], g[(t >= hs[k]) & (t < hs[k + 1] + 0.002)]):
            m.py_add(ti - hs[k], gi)
        assert m.py_learn(stride_s)
    # a stride 20 % slower than the prior, same shape: replay stride 3 stretched in time
    sel = (t >= hs[3]) & (t < hs[4])
    m.py_begin_stride(stride_s)
    for ti, gi in zip(t[sel], g[sel]):
        m.py_add(1.2 * (ti - hs[3]), gi / 1.2)
        if 1.2 * (ti - hs[3]) > 0.65 * 1.2 * stride_s:      # by toe-off it knows
            break
    assert m.best_stride_s == pytest.approx(1.2 * stride_s, rel=0.03)
    assert m.fit_r2 > 0.95


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.one_of(st.floats(-20, 20), st.just(float("nan"))),
                          st.one_of(st.floats(-2000, 5000), st.just(float("nan")))),
                min_size=1, max_size=600))
def test_any_sensor_sequence_gives_sane_outputs(samples):
    gyro, load = (np.array(x, dtype=float) for x in zip(*samples))
    t = np.arange(len(samples)) * 2e-3
    out = estimate(t, gyro, load, np.zeros_like(t), PARAMS)
    ph = out["phase"]
    assert np.all((ph == -1.0) | ((ph >= 0.0) & (ph < 1.0)))
    assert np.all((out["walking"] == 0) | (out["standing"] == 0))      # never both
    ev = [1 if h else -1 for h, o in zip(out["heel_strike"], out["toe_off"]) if h or o]
    assert all(a != b for a, b in zip(ev, ev[1:]))


# ---- on the full stack: the fallbacks are reported as faults and keep the events coming ----

@pytest.mark.parametrize("source, fault, gait_source", [("imu", "imu", 2), ("load", "load", 3)])
def test_sensor_loss_on_the_stack_is_a_fault_and_events_continue(source, fault, gait_source):
    from controller.kernels.faults import fault_names
    from sim import harness
    from sim.faults import Injection

    lost_at = 9.0
    run = harness.run(duration_s=16.0, seed=2, faults=[Injection(f"{source}_loss", lost_at)])
    from controller.kernels.telemetry import COLUMN as col
    tel = run.telemetry
    t = tel[:, col["t"]]
    assert fault in fault_names(int(tel[-1, col["faults"]]))
    true_hs = [s.t_heel_strike_s for s in run.strides if lost_at + 0.1 < s.t_heel_strike_s < t[-1] - 0.05]
    detected = t[tel[:, col["heel_strike"]] == 1]
    for hs in true_hs:
        assert np.min(np.abs(detected - hs)) <= 0.025, f"heel strike at {hs:.3f} s not detected"
    after = t > lost_at + 0.5
    assert np.all(tel[after & (tel[:, col["walking"]] == 1), col["gait_source"]] == gait_source)
