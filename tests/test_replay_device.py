"""``ankle replay`` is the device (issue 18): the tick's sensor checks, latch and fallbacks run
over the record, row by row, before the estimator.

Records come from :func:`sim.traces.walking_trace` (the estimator's walking signals with their
true events) and from :func:`sim.harness.run` (the whole stack: its telemetry is what the
device's tick did, row for row).
"""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from controller.cli import main as cli_main
from controller.kernels._replay import Replay
from controller.kernels.faults import fault_bit
from controller.kernels.telemetry import COLUMN as T
from controller.params.registry import ParamSet
from controller.records.csvlog import CsvError, rows_to_csv
from controller.records.replay import estimate, fault_summary, replay_file
from sim import harness
from sim.faults import Injection
from sim.traces import walking_trace

ROOT = Path(__file__).resolve().parent.parent
PARAMS = ParamSet()
IMU = fault_bit("imu")
LOAD = fault_bit("load")
SENSOR_FAULTS = IMU | LOAD
IMU_TIMEOUT_S = PARAMS["safety.imu_timeout_s"]
LOAD_TIMEOUT_S = PARAMS["safety.load_timeout_s"]


@pytest.fixture(scope="module")
def walk():
    """30 s of walking at 1 kHz with its true heel strikes."""
    return walking_trace(duration_s=30.0, seed=3)


def steps(trace):
    """The heel strikes an estimator can see: the trace starts at a heel strike with the foot
    loaded, and that first "step" is no step to find (a record that starts loaded reports
    standing), so the truth drops it."""
    return trace["heel_strike_s"][trace["heel_strike_s"] > 0.0]


def cells(x):
    """A column as CSV cells: NaN as an empty cell, numbers as repr (read back bit for bit)."""
    return ["" if v != v else repr(float(v)) for v in x]


def write_record(path, t, gyro, load, angle):
    path.write_text(rows_to_csv(["t", "shank_gyro", "load", "ankle_angle"],
                                zip(cells(t), cells(gyro), cells(load), cells(angle))))
    return path


def replay_arrays(t, gyro, load, angle, **kw):
    return estimate(t, gyro, load, angle, PARAMS, monitor=True, **kw)


def nearest_ms(detected_s, truth_s):
    """For each detected event, the distance to the nearest true one, ms."""
    truth_s = np.asarray(truth_s)
    return np.array([1000.0 * np.min(np.abs(truth_s - x)) for x in detected_s])


# ---- the outside tester's report: an empty shank_gyro cell ----------------------------------

def test_an_empty_shank_gyro_cell_is_a_missing_frame_not_an_error(tmp_path):
    src = tmp_path / "in.csv"
    src.write_text("t,shank_gyro,load,ankle_angle\n0,0.1,700,0\n0.001,,700,0\n0.002,0.1,700,0\n")
    out = tmp_path / "out.csv"
    summary = replay_file(src, out)
    assert summary["samples"] == 3 and summary["faults"] == {}
    lines = out.read_text().splitlines()
    assert lines[2].startswith("0.001,,700,0,")        # the empty cell is kept as it was


def test_an_empty_load_row_may_leave_the_ankle_angle_empty_too(tmp_path):
    src = tmp_path / "in.csv"
    src.write_text("t,shank_gyro,load,ankle_angle\n0,0.1,700,0\n0.001,0.2,,\n0.002,0.1,700,0\n")
    assert replay_file(src, tmp_path / "out.csv")["faults"] == {}


@pytest.mark.parametrize("content,message", [
    ("t,shank_gyro,load,ankle_angle\n0,0.1,700,0\n,0.1,700,0\n", "row 3, column t: '' is not a number"),
    ("t,shank_gyro,load,ankle_angle\n0,0.1,700,0\n0.001,0.1,700,\n",
     "row 3, column ankle_angle: empty, but load is not"),
    ("t,shank_gyro,load,ankle_angle\n0,0.1,700,0\n0.001,fast,700,0\n", "row 3, column shank_gyro: 'fast' is not a number"),
])
def test_an_empty_time_or_lone_ankle_angle_or_text_is_one_line_and_nothing_written(tmp_path, content, message):
    src = tmp_path / "in.csv"
    src.write_text(content)
    out = tmp_path / "out.csv"
    proc = subprocess.run([sys.executable, "-m", "controller.cli", "replay", str(src), "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and message in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
    assert not out.exists()


# ---- gaps: bridged as the device bridges them, or the sensor lost ---------------------------

def test_short_gaps_in_either_sensor_are_bridged_with_no_fault(walk):
    t = walk["t"]
    k = np.arange(t.size)
    gyro, load, angle = walk["shank_gyro"].copy(), walk["load"].copy(), walk["ankle_angle"].copy()
    gyro[k % 200 >= 195] = np.nan                   # 5 frames missing every 0.2 s (timeout 15 ms)
    load[k % 150 >= 147] = np.nan                   # 3 every 0.15 s (timeout 8 ms)
    angle[k % 150 >= 147] = np.nan
    gappy = replay_arrays(t, gyro, load, angle)
    clean = replay_arrays(t, walk["shank_gyro"], walk["load"], walk["ankle_angle"])
    assert fault_summary(t, gappy["faults"]) == {}
    assert gappy["imu_valid"].all() and gappy["load_valid"].all()
    hs, hs_clean = t[gappy["heel_strike"] == 1], t[clean["heel_strike"] == 1]
    assert hs.size == hs_clean.size == steps(walk).size
    assert np.max(np.abs(hs - hs_clean)) <= 0.0011          # a held load sample: 1 ms at most


@pytest.mark.parametrize("sensor,fault,timeout_s", [("shank_gyro", "imu", IMU_TIMEOUT_S),
                                                    ("load", "load", LOAD_TIMEOUT_S)])
def test_a_long_gap_is_the_sensor_lost_and_the_other_sensor_finds_the_steps(walk, sensor, fault, timeout_s):
    t = walk["t"]
    cols = {c: walk[c].copy() for c in ("shank_gyro", "load", "ankle_angle")}
    gap = (t >= 10.0) & (t < 20.0)
    cols[sensor][gap] = np.nan
    if sensor == "load":
        cols["ankle_angle"][gap] = np.nan
    out = replay_arrays(t, cols["shank_gyro"], cols["load"], cols["ankle_angle"])
    faults = fault_summary(t, out["faults"])
    assert list(faults) == [fault]
    # found at the first row past the timeout after the last frame (9.999 s)
    assert 9.999 + timeout_s - 1e-9 <= faults[fault]["first_s"] <= 9.999 + timeout_s + 0.0011
    # latched over the gap, then cleared after safety.sensor_recover_s healthy and a swing
    recover_s = PARAMS["safety.sensor_recover_s"]
    assert 10.0 + recover_s <= faults[fault]["latched_s"] <= 10.0 + recover_s + 1.5
    valid = out["imu_valid" if fault == "imu" else "load_valid"]
    assert valid[gap & (t < 10.0 + timeout_s - 0.002)].all()       # bridged up to the timeout
    assert not valid[gap & (t > 10.0 + timeout_s)].any()
    truth = steps(walk)
    in_gap = t[(out["heel_strike"] == 1) & gap]
    assert in_gap.size == np.count_nonzero((truth >= 10.0) & (truth < 20.0))
    assert np.max(nearest_ms(in_gap, truth)) <= 10.0
    assert out["walking"][gap].mean() > 0.95
    assert out["heel_strike"].sum() == truth.size


def test_a_record_that_starts_without_the_imu_latches_it_as_the_device_does(walk):
    t = walk["t"]
    out = replay_arrays(t, np.full_like(t, np.nan), walk["load"], walk["ankle_angle"])
    assert fault_summary(t, out["faults"]) == {"imu": {"first_s": 0.0, "latched_s": round(t[-1], 6),
                                                       "episodes": 1}}
    assert out["heel_strike"].sum() == steps(walk).size       # load events throughout


@pytest.mark.parametrize("rate_Hz", [100.0, 500.0, 2000.0])
def test_at_any_rate_a_clean_record_raises_no_fault_and_replays_as_the_estimator_alone(rate_Hz):
    """No check counts rows as frames of the node's 1 kHz stream (a 2 kHz record is no second
    sender), and rows 10 ms apart are no sensor lost: each row brings its frames."""
    tr = walking_trace(duration_s=15.0, rate_Hz=rate_Hz, seed=4)
    args = (tr["t"], tr["shank_gyro"], tr["load"], tr["ankle_angle"])
    out, plain = replay_arrays(*args), estimate(*args, PARAMS)
    assert not out["faults"].any() and out["imu_valid"].all() and out["load_valid"].all()
    for name in ("heel_strike", "toe_off", "walking", "phase"):
        np.testing.assert_array_equal(out[name], plain[name], err_msg=name)
    assert out["heel_strike"].sum() == steps(tr).size


# ---- a stuck gyro: the flat line -----------------------------------------------------

def test_a_flat_lined_gyro_latches_the_imu_fault_and_the_load_carries_the_steps(walk):
    t, truth = walk["t"], steps(walk)
    gyro = walk["shank_gyro"].copy()
    frozen = t >= 12.3                              # the sensor freezes in a stance, at 12.3 s
    gyro[frozen] = gyro[frozen][0]
    out = replay_arrays(t, gyro, walk["load"], walk["ankle_angle"])
    faults = fault_summary(t, out["faults"])
    assert list(faults) == ["imu"]
    # stuck-at: the 10th identical frame after the one it froze at
    assert faults["imu"]["first_s"] == pytest.approx(12.310, abs=1e-9)
    assert faults["imu"]["latched_s"] == pytest.approx(t[-1] - 12.310, abs=1e-6)
    after = t[(out["heel_strike"] == 1) & frozen]
    assert after.size == np.count_nonzero(truth >= 12.3) and np.max(nearest_ms(after, truth)) <= 5.0
    assert out["walking"][t > 14.0].all()
    # the estimator alone, as replay ran it before: a still shank never swings, so no heel
    # strike counts as a step
    plain = estimate(t, gyro, walk["load"], walk["ankle_angle"], PARAMS)
    assert plain["heel_strike"][frozen].sum() == 0


# ---- out of range ----------------------------------------------------------------------------

@pytest.mark.parametrize("sensor,value,fault", [
    ("shank_gyro", PARAMS["safety.imu_gyro_limit_rad_s"], "imu"),
    ("shank_gyro", -31.5, "imu"),
    ("load", PARAMS["safety.load_limit_N"], "load"),
    ("load", -0.5 * PARAMS["wearer.mass_kg"] * 9.80665, "load"),     # tension a pylon never sees
])
def test_readings_out_of_range_two_rows_running_latch_the_fault(walk, sensor, value, fault):
    t = walk["t"]
    cols = {c: walk[c].copy() for c in ("shank_gyro", "load", "ankle_angle")}
    i = int(np.searchsorted(t, 8.0))
    cols[sensor][i] = value                         # one row at the limit: not yet a fault
    one = replay_arrays(t, cols["shank_gyro"], cols["load"], cols["ankle_angle"])
    assert fault_summary(t, one["faults"]) == {}
    cols[sensor][i + 1] = value                     # two running: the fault, on the second
    two = replay_arrays(t, cols["shank_gyro"], cols["load"], cols["ankle_angle"])
    faults = fault_summary(t, two["faults"])
    assert list(faults) == [fault] and faults[fault]["first_s"] == t[i + 1]
    assert two["heel_strike"].sum() == steps(walk).size


def test_a_load_while_the_shank_swings_forward_is_a_load_fault(walk):
    t = walk["t"]
    load = walk["load"].copy()
    swing = np.flatnonzero(walk["shank_gyro"] > PARAMS["safety.swing_check_gyro_rad_s"] + 0.5)
    swing = swing[t[swing] > 8.0][:5]
    assert np.all(np.diff(swing) == 1)
    load[swing] = 600.0                             # 5 frames loaded in mid-swing
    faults = fault_summary(t, replay_arrays(t, walk["shank_gyro"], load, walk["ankle_angle"])["faults"])
    assert list(faults) == ["load"] and faults["load"]["first_s"] == t[swing[-1]]


# ---- the CLI's summary and --json ------------------------------------------------------------

def test_ankle_replay_json_and_summary_name_the_faults(walk, tmp_path, capsys):
    t = walk["t"]
    gyro = walk["shank_gyro"].copy()
    gyro[t >= 12.0] = gyro[t >= 12.0][0]
    load = walk["load"].copy()
    load[(t >= 20.0) & (t < 25.0)] = np.nan
    angle = np.where(np.isnan(load), np.nan, walk["ankle_angle"])
    src = write_record(tmp_path / "in.csv", t, gyro, load, angle)
    proc = subprocess.run([sys.executable, "-m", "controller.cli", "replay", str(src), "--out",
                           str(tmp_path / "out.csv"), "--json"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert list(result["faults"]) == ["imu", "load"]
    assert result["faults"]["imu"]["first_s"] == pytest.approx(12.010)
    assert 19.999 + LOAD_TIMEOUT_S - 1e-9 <= result["faults"]["load"]["first_s"] <= 19.999 + LOAD_TIMEOUT_S + 0.0011
    assert result["imu_used_fraction"] < 0.45 and result["load_used_fraction"] < 0.85
    assert result["heel_strikes"] >= steps(walk).size - 5     # no sensor at all 20..25 s
    # the text summary, through the same entry point
    assert cli_main(["replay", str(src), "--out", str(tmp_path / "out2.csv")]) == 0
    text = capsys.readouterr().out
    imu, load = result["faults"]["imu"], result["faults"]["load"]
    assert (f"sensor faults: imu from t = {imu['first_s']:g} s, latched {imu['latched_s']:g} s in all; "
            f"load from t = {load['first_s']:g} s" in text)
    assert f"the estimator had the IMU {100 * result['imu_used_fraction']:.1f} %" in text


def test_a_clean_replay_says_no_sensor_fault(walk, tmp_path, capsys):
    src = write_record(tmp_path / "in.csv", walk["t"], walk["shank_gyro"], walk["load"], walk["ankle_angle"])
    assert cli_main(["replay", str(src), "--out", str(tmp_path / "out.csv")]) == 0
    assert "sensor faults: none" in capsys.readouterr().out


# ---- the tick's own record -------------------------------------------------------------------

def _replay_telemetry(run):
    tel = run.telemetry
    return tel, replay_arrays(*(tel[:, T[c]] for c in ("t", "shank_gyro", "load", "ankle_angle")))


@pytest.mark.parametrize("scenario", ["steady", "stop-start", "stand"])
def test_a_clean_simulated_record_replays_to_the_ticks_estimates_exactly(scenario):
    run = harness.run(scenario=scenario, duration_s=15.0, seed=6)
    tel, out = _replay_telemetry(run)
    assert not tel[:, T["faults"]].any() and not out["faults"].any()
    for name in ("heel_strike", "toe_off", "walking", "standing", "phase"):
        np.testing.assert_array_equal(out[name], tel[:, T[name]], err_msg=name)
    if scenario != "stand":
        assert out["heel_strike"].sum() >= 8


@pytest.mark.parametrize("kind,fault", [("imu_stuck", "imu"), ("imu_range", "imu"), ("load_stuck", "load"),
                                        ("load_saturation", "load")])
def test_a_sensor_fault_in_the_tick_is_found_on_the_same_row_in_its_record(kind, fault):
    run = harness.run(duration_s=10.0, seed=2, faults=[Injection(kind, 4.3)])
    tel, out = _replay_telemetry(run)
    t = tel[:, T["t"]]
    tick = fault_summary(t, tel[:, T["faults"]].astype(np.uint32) & np.uint32(SENSOR_FAULTS))
    assert list(tick) == [fault] and fault_summary(t, out["faults"]) == tick
    for name in ("heel_strike", "toe_off", "walking"):
        np.testing.assert_array_equal(out[name], tel[:, T[name]], err_msg=name)


def test_a_lost_imu_in_the_tick_is_found_in_its_record_as_the_held_value_repeating():
    """The log holds the last frame's values while none arrive (the tick's inputs do), so the
    record cannot show the frames missing: the replay finds the 10 identical readings (stuck-at)
    where the tick found the timeout, up to imu_timeout_s earlier.  The events are the same."""
    run = harness.run(duration_s=10.0, seed=2, faults=[Injection("imu_loss", 4.3)])
    tel, out = _replay_telemetry(run)
    t = tel[:, T["t"]]
    tick = fault_summary(t, tel[:, T["faults"]].astype(np.uint32))["imu"]
    replay = fault_summary(t, out["faults"])["imu"]
    assert 0.0 <= tick["first_s"] - replay["first_s"] <= IMU_TIMEOUT_S
    for name in ("heel_strike", "toe_off", "walking"):
        np.testing.assert_array_equal(out[name], tel[:, T[name]], err_msg=name)


# ---- anything a record may hold -------------------------------------------------------------

_BASE = walking_trace(duration_s=6.0, rate_Hz=500.0, seed=5)
_N = _BASE["t"].size
_value = st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=64),
                   st.sampled_from([0.0, 1e308, -1e308, 35.0, -35.0, 5000.0, -5000.0]))


@settings(max_examples=80, deadline=None)
@given(gaps=st.lists(st.tuples(st.sampled_from(["shank_gyro", "load", "both"]), st.integers(0, _N - 1),
                               st.integers(1, 800)), max_size=8),
       edits=st.lists(st.tuples(st.sampled_from(["shank_gyro", "load", "ankle_angle"]), st.integers(0, _N - 1),
                                _value), max_size=12))
def test_replay_never_crashes_and_finds_no_step_without_a_sensor(gaps, edits):
    cols = {c: _BASE[c].copy() for c in ("shank_gyro", "load", "ankle_angle")}
    for sensor, start, length in gaps:
        for c in (("shank_gyro", "load") if sensor == "both" else (sensor,)):
            cols[c][start:start + length] = np.nan
    for c, i, v in edits:
        cols[c][i] = v
    out = replay_arrays(_BASE["t"], cols["shank_gyro"], cols["load"], cols["ankle_angle"])
    blind = (out["imu_valid"] == 0) & (out["load_valid"] == 0)
    assert not out["heel_strike"][blind].any() and not out["toe_off"][blind].any()
    # only sensor faults: the record has no driver, supply or tick timing to find fault with
    assert not (out["faults"] & np.uint32(~SENSOR_FAULTS & 0xFFFFFFFF)).any()
    # a sensor is used only while it is not latched as faulty
    assert not (out["imu_valid"].astype(bool) & ((out["faults"] & IMU) != 0)).any()
    assert not (out["load_valid"].astype(bool) & ((out["faults"] & LOAD) != 0)).any()
    phase = out["phase"]
    assert np.all((phase == -1.0) | ((phase >= 0.0) & (phase < 1.0)))


_cell = st.sampled_from(["", " ", "0", "0.5", "-3", "40", "1e308", "-inf", "inf", "nan", "abc", "700", "5000"])


@settings(max_examples=60, deadline=None)
@given(rows=st.lists(st.tuples(_cell, _cell, _cell), min_size=1, max_size=30))
def test_any_csv_of_cells_replays_or_is_refused_in_one_line(tmp_path_factory, rows):
    d = tmp_path_factory.mktemp("cells")
    text = "t,shank_gyro,load,ankle_angle\n" + "".join(
        f"{0.001 * k!r},{g},{l},{a}\n" for k, (g, l, a) in enumerate(rows))
    (d / "in.csv").write_text(text)
    try:
        result = replay_file(d / "in.csv", d / "out.csv")
    except CsvError as e:
        assert "\n" not in str(e) and "row " in str(e)
        assert not (d / "out.csv").exists()
        return
    assert result["samples"] == len(rows)
    assert set(result["faults"]) <= {"imu", "load"}
    assert len((d / "out.csv").read_text().splitlines()) == len(rows) + 1
    json.dumps(result, allow_nan=False)             # --json's strict JSON


def test_the_kernel_refuses_to_run_unconfigured_and_arrays_of_unequal_length():
    z = np.zeros(3)
    outs = (np.empty(3), np.empty(3, np.int8), np.empty(3, np.int8), np.empty(3, np.int8))
    with pytest.raises(RuntimeError, match="not configured"):
        Replay().run(z, z, z, z, *outs)
    kernel = Replay()
    kernel.configure(PARAMS)
    with pytest.raises(ValueError, match="same length"):
        kernel.run(z, z, np.zeros(2), z, *outs)
