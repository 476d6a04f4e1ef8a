"""The ``ankle`` command as a user runs it: real processes, real files."""
import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from controller.params.registry import REGISTRY

ROOT = Path(__file__).resolve().parents[1]
SIM_KEYS = {"strides", "phase_rmse_pct", "hs_latency_ms_median", "missed_heel_strikes", "false_heel_strikes",
            "peak_torque_Nm", "net_work_J_per_kg", "peak_power_W_per_kg", "torque_limit_violations", "faults",
            "sim_seconds", "wall_seconds"}


def ankle(*args, check=True):
    proc = subprocess.run([sys.executable, "-m", "controller.cli", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"ankle {' '.join(map(str, args))} exited {proc.returncode}: {proc.stderr}")
    return proc


@pytest.fixture(scope="module")
def sim_log(tmp_path_factory):
    d = tmp_path_factory.mktemp("sim")
    proc = ankle("sim", "--duration", 8, "--seed", 2, "--log", d / "log.csv", "--plot", d / "plot.png", "--json")
    return d, json.loads(proc.stdout)


def test_sim_json_is_one_object_with_the_contract_keys(sim_log):
    d, result = sim_log
    assert SIM_KEYS <= set(result)
    assert result["strides"] >= 6 and result["missed_heel_strikes"] == 0
    assert (d / "plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_sim_text_prints_a_line_per_stride_and_a_summary():
    out = ankle("sim", "--duration", 5, "--speed", 1.0, "--mass", 70).stdout
    lines = out.splitlines()
    strides = [ln for ln in lines if ln.startswith("stride ")]
    assert len(strides) >= 3
    for ln in strides:
        for unit in ("m/s", " s ", "%", "N*m", "J/kg"):
            assert unit in ln
    assert any(ln.startswith("summary:") for ln in lines)


def test_log_has_the_design_columns(sim_log):
    d, _ = sim_log
    with open(d / "log.csv") as f:
        header = next(csv.reader(f))
    assert header[:8] == ["t", "shank_gyro", "load", "ankle_angle", "phase", "heel_strike", "toe_off", "walking"]
    assert "torque_Nm" in header and "torque_cmd_Nm" in header


def test_replay_accepts_only_the_four_input_columns_in_any_order_at_500_Hz(sim_log, tmp_path):
    d, _ = sim_log
    with open(d / "log.csv") as f:
        rows = list(csv.DictReader(f))[::2]          # 500 Hz
    src = tmp_path / "four.csv"
    with open(src, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["load", "t", "ankle_angle", "shank_gyro", "note"])
        for r in rows:
            w.writerow([r["load"], r["t"], r["ankle_angle"], r["shank_gyro"], "x"])
    out = tmp_path / "out.csv"
    result = json.loads(ankle("replay", src, "--out", out, "--mass", 80, "--json").stdout)
    assert result["samples"] == len(rows) and abs(result["sample_rate_Hz"] - 500) < 1
    assert result["heel_strikes"] >= 6
    with open(out) as f:
        header = next(csv.reader(f))
    assert header == ["load", "t", "ankle_angle", "shank_gyro", "note", "phase", "heel_strike", "toe_off", "walking"]


@pytest.mark.parametrize("content,message", [
    ("t,load,shank_gyro\n0,1,2\n", "missing column(s) ankle_angle"),
    ("t,shank_gyro,load,ankle_angle\n0,0,abc,0\n", "row 2, column load: 'abc' is not a number"),
    ("t,shank_gyro,load,ankle_angle\n0,0,0,0\n0,0,0,0\n", "column t must increase"),
    ("t,shank_gyro,load,ankle_angle\n0,0,0\n", "row 2 has 3 values"),
    ("", "empty file"),
])
def test_replay_bad_input_gets_one_clear_line_and_writes_nothing(tmp_path, content, message):
    src = tmp_path / "in.csv"
    src.write_text(content)
    out = tmp_path / "out.csv"
    proc = ankle("replay", src, "--out", out, check=False)
    assert proc.returncode == 2
    assert message in proc.stderr and proc.stderr.count("\n") == 1
    assert not out.exists()


def test_replay_of_a_log_cut_short_drops_the_torn_line_and_says_so(tmp_path):
    src = tmp_path / "in.csv"
    src.write_text("t,shank_gyro,load,ankle_angle\n0,0,0,0\n0.001,0,0,0\n0.002,0,0,0\n0.003,0,0")
    out = tmp_path / "out.csv"
    text = ankle("replay", src, "--out", out).stdout
    assert "replayed 3 samples" in text and "note: " in text and "torn last line" in text
    result = json.loads(ankle("replay", src, "--out", tmp_path / "out2.csv", "--json").stdout)
    assert result["samples"] == 3 and len(result["dropped"]) == 1


def test_replay_does_not_touch_an_existing_output_on_error(tmp_path):
    src = tmp_path / "in.csv"
    src.write_text("t,shank_gyro,load,ankle_angle\n0,0,nan?,0\n")
    out = tmp_path / "out.csv"
    out.write_text("precious")
    assert ankle("replay", src, "--out", out, check=False).returncode == 2
    assert out.read_text() == "precious"


@pytest.mark.parametrize("args,message", [
    (("sim", "--speed", "3"), "outside 0.3..2.15 m/s"),
    (("sim", "--mass", "abc"), "'abc' is not a number"),
    (("sim", "--duration", "0"), "outside 0.5..3600 s"),
    (("sim", "--log", "/nonexistent-dir/x.csv"), "does not exist"),
    (("sim", "--scenario", "moonwalk"), "invalid choice"),
    (("sim", "--inject", "meteor@3"), "expected KIND@T[:VALUE]"),
    (("sim", "--inject", "imu_loss@-1"), "t_s"),
    (("sim", "--inject", "low_voltage@2:abc"), "could not convert"),
])
def test_sim_bad_arguments_are_refused(args, message):
    proc = ankle(*args, check=False)
    assert proc.returncode == 2 and message in proc.stderr


def test_params_lists_every_parameter_with_its_unit():
    out = ankle("params").stdout
    for p in REGISTRY:
        line = next(ln for ln in out.splitlines() if ln.startswith(p.name + " "))
        assert p.unit in line
    data = json.loads(ankle("params", "safety", "--json").stdout)
    assert data and all(d["group"] == "safety" for d in data)


def test_sim_with_a_saved_parameter_file_and_with_a_corrupt_one(tmp_path):
    from controller.params import store as paramstore
    from controller.params.registry import ParamSet
    path = tmp_path / "ankle.params"
    paramstore.save(ParamSet({"pushoff.work_J_kg": 0.15}), path)
    good = json.loads(ankle("sim", "--duration", "3", "--params", path, "--json").stdout)
    assert good["faults"] == [] and good["final_mode"] == "walk" and good["param_problems"] == []
    # both copies damaged: defaults, the fault shown, powered mode refused
    for copy in (path, paramstore.backup_path(path)):
        copy.write_bytes(copy.read_bytes()[:40])
    bad = json.loads(ankle("sim", "--duration", "3", "--params", path, "--json").stdout)
    assert "params" in bad["faults"] and bad["final_mode"] == "safe"
    assert len(bad["param_problems"]) == 2


def test_sim_inject_reports_the_fault():
    out = json.loads(ankle("sim", "--duration", "4", "--inject", "load_loss@3", "--json").stdout)
    assert out["faults"] == ["load"] and out["final_mode"] == "passive" and out["injected"] == ["load_loss@3"]
