"""The console's commands that need the wearer to stand still: calibration, standby, session
logs.  `ankle sim --realtime --console --scenario stand`: the simulated wearer walks for 6 s,
then stands (quiet sway, weight shifting between the legs) for the rest of the run."""
from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from controller.console import units
from controller.console.audit import read as read_audit
from controller.params.registry import by_name
from controller.records.csvlog import read_columns
from conftest import sim_console

PIN = "1357"
#: The whole module runs on one real-time session whose fixture waits (30 s at most) for the simulated
#: wearer to walk and then to stand: on a machine too busy to keep time that may not happen in time.
pytestmark = pytest.mark.realtime


@pytest.fixture(scope="module")
def standing(tmp_path_factory):
    state = tmp_path_factory.mktemp("standing")
    with sim_console(state, PIN, "--scenario", "stand", "--duration", "120") as (term, proc):
        term.cmd(f"login {PIN}")
        deadline = time.monotonic() + 30
        for state_now in (r"\nwalking", r"\n(standing|not walking)"):        # walks, then stops
            while not re.search(state_now + "; cadence", term.cmd("status")):
                assert time.monotonic() < deadline, f"never {state_now[2:]}: {term.cmd('status')}"
                time.sleep(0.2)
        time.sleep(1.0)                                                # and has settled
        yield term, state, proc


def _value(term, name: str) -> float:
    """``name``'s value in SI, read from `get` (which shows it in the clinical unit: deg, deg/s)."""
    return units.parse(by_name(name), term.cmd(f"get {name}").split(" = ", 1)[1].split(" (factory")[0])


def test_calibrate_imu_and_angle_while_standing_sets_the_zeros_and_audits_them(standing):
    term, state, _ = standing
    out = term.cmd("calibrate imu", timeout_s=15)
    assert "calibration.gyro_bias_rad_s = " in out and "takes effect now" in out, out
    bias = _value(term, "calibration.gyro_bias_rad_s")
    assert abs(bias) < 0.05            # the simulated gyro has no bias: only the sway is left
    out = term.cmd("calibrate angle", timeout_s=15)
    assert "calibration.ankle_zero_rad = " in out and "calibration.motor_zero_rad = " in out, out
    zero = _value(term, "calibration.ankle_zero_rad")
    assert abs(zero) < 0.05 and zero != 0.0
    records = [r for r in read_audit(state / "audit.log") if r["action"] == "calibrate"]
    assert {r["parameter"] for r in records} >= {"calibration.gyro_bias_rad_s", "calibration.ankle_zero_rad",
                                                  "calibration.motor_zero_rad"}
    # a second angle calibration measures what the first left: close to nothing
    term.cmd("calibrate angle", timeout_s=15)
    assert abs(_value(term, "calibration.ankle_zero_rad") - zero) < 0.02
    assert "undone: calibrate angle" in term.cmd("undo")


def test_load_tare_is_refused_with_weight_on_the_foot(standing):
    term, _, _ = standing
    before = _value(term, "calibration.load_offset_N")
    out = term.cmd("calibrate load", timeout_s=15)
    assert out.startswith("load tare needs the foot off the ground") and "nothing changed" in out, out
    assert _value(term, "calibration.load_offset_N") == before


def test_standby_is_chosen_while_standing_and_left_only_with_the_foot_lifted(standing):
    term, state, _ = standing
    assert term.cmd("mode standby").startswith("mode standby selected")
    # a kernel stall of this VM may have latched a fault: then the safe state holds, and says
    # what was chosen (tests/test_safety.py checks standby itself)
    in_standby = re.compile(r"mode standby$|mode safe \(chosen: standby, once the faults are cleared\)$", re.M)
    deadline = time.monotonic() + 5
    while not in_standby.search(term.cmd("faults")):
        assert time.monotonic() < deadline, term.cmd("status")
        time.sleep(0.1)
    out = term.cmd("mode walk", timeout_s=15)          # the wearer stands on it all along
    assert out.startswith("refused: standby ends only with the foot off the ground"), out
    assert in_standby.search(term.cmd("faults"))
    actions = [(r["action"], r["new"]) for r in read_audit(state / "audit.log")]
    assert ("mode", "standby") in actions


def test_log_start_and_stop_write_a_session_log_that_reads_back(standing):
    term, state, _ = standing
    term.cmd("logout")
    assert "read-only" in term.cmd("log start")
    term.cmd(f"login {PIN}")
    assert term.cmd("log").startswith("not logging")
    out = term.cmd("log start")
    assert out.startswith("logging to ")
    path = out.split("logging to ", 1)[1].strip()
    assert "already logging" in term.cmd("log start")
    time.sleep(1.0)
    assert term.cmd("log").startswith(f"logging to {path}: ")
    out = term.cmd("log stop")
    assert out.startswith(f"log stopped: {path}, ")
    rows = int(out.rsplit(", ", 1)[1].split()[0])
    header, lines, columns = read_columns(Path(path), ["t", "load", "ankle_angle", "torque_Nm", "mode"])
    assert len(lines) == rows and len(columns["t"]) == rows and header[:4] == ["t", "shank_gyro", "load",
                                                                              "ankle_angle"]
    # the log spans the 1 s between start and stop (the tick's own clock) and holds a row for most
    # ticks in it: judged as a share of the 1 kHz ticks of its own span, not a count per wall second,
    # because a busy machine skips deadlines (they are not caught up)
    span_s = float(columns["t"][-1]) - float(columns["t"][0])
    assert span_s >= 0.9, span_s
    assert rows >= 0.5 * span_s * 1000.0, (rows, span_s)
    assert all(m in (0, 2) for m in columns["mode"])     # logged in standby (or safe: see above)
    assert term.cmd("log stop") == "not logging"
    actions = [r["action"] for r in read_audit(state / "audit.log")]
    assert "log start" in actions and "log stop" in actions


def test_an_actuator_torque_beyond_the_drivers_range_is_refused(standing):
    term, _, _ = standing
    out = term.cmd("set actuator.max_torque_Nm 19")
    assert out == "actuator.max_torque_Nm = 19 N·m is beyond the drive's torque limit t_max = 18 N·m", out
    assert term.cmd("get actuator.max_torque_Nm").startswith("actuator.max_torque_Nm (drive peak torque) = 18 N·m")
