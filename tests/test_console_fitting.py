"""The guided fitting (`fit`, controller/console/fitting.py), step by step, on a console whose
controller is scripted: telemetry rows, strides and faults as a test sets them, so each branch
(refusals, skips, repeats, the levels) is reached on purpose and at once.  The fitting on the
simulated wearer in real time, end to end over a pty, is in tests/test_console_fitting_sim.py."""
from __future__ import annotations

import math
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from controller.console.access import Access, PinFile
from controller.console.audit import AuditLog, read as read_audit
from controller.console.commands import WIDTH, Console
from controller.console.fitting import LEARN_STRIDES, LEVEL_STRIDES, LEVELS, STEPS, SYMMETRY_STRIDES
from controller.console.session import OfflineBackend
from controller.kernels._tick import TELEMETRY_COLUMNS
from controller.kernels.faults import MODES, fault_bit
from controller.kernels.telemetry import COLUMN
from controller.params import store as paramstore
from controller.params.registry import REGISTRY, ParamSet
from controller.symmetry.strides import StrideSymmetry

PIN = "1357"
_MODE = {name: n for n, name in MODES.items()}


class Scripted(OfflineBackend):
    """A controller that is running, as far as the console can tell: its telemetry is what the test
    sets (``t``, ``faults``, ``walking``), its strides what :meth:`walk` adds, and it takes every
    valid set at once (the registry's rules are the console's own, checked before ``send``)."""

    running = True

    def __init__(self):
        super().__init__(ParamSet())
        self.t = 10.0
        self.faults = 0
        self.walking = False
        self.still = True                   # a calibration window of a wearer standing still
        self._strides = []
        self.requests = []
        self.requests_faults = []           # (name, arg, the fault word latched when asked)
        self.sets = []                      # every set taken, in order

    def walk(self, n: int, si: float = 8.0, stride_s: float = 1.1, work: float = 0.05) -> None:
        for _ in range(n):
            self._strides.append(StrideSymmetry(
                self.t, stride_s, 120.0 / stride_s, 0.66, 60.0, 0.44, work, 1.0, 40.0, self.t + 0.55,
                self.t + 1.2, 0.6, 0.55, 0.55, si, 0.0, "insole", 1.0, self.faults))
            self.t += stride_s

    def send(self, params):
        self.sets.append((params, self.faults, self.mode()))
        return super().send(params)

    def mode(self) -> str:
        modes = [arg for name, arg in self.requests if name == "select_mode"]
        return MODES[modes[-1]] if modes else "walk"

    def strides(self):
        return self._strides

    def moving(self):
        return self.walking

    def latest(self):
        row = dict.fromkeys(TELEMETRY_COLUMNS, math.nan)
        row.update({"t": self.t, "faults": self.faults, "mode": _MODE[self.mode()], "warnings": 0,
                    "walking": int(self.walking), "standing": int(not self.walking), "gait_source": 0})
        return row

    def request(self, name, arg=0):
        self.requests.append((name, arg))
        self.requests_faults.append((name, arg, self.faults))
        return ""

    def record(self, seconds):
        n = int(seconds * 1000)
        rows = np.zeros((n, len(TELEMETRY_COLUMNS)))
        rows[:, COLUMN["t"]] = self.t + np.arange(n) / 1000.0
        rows[:, COLUMN["load"]] = 700.0
        rows[:, COLUMN["ankle_angle"]] = 0.01
        rows[:, COLUMN["motor_angle"]] = 0.01
        rows[:, COLUMN["shank_gyro"]] = 0.002 + (0.0 if self.still else 0.8 * np.sin(np.arange(n) / 50.0))
        self.t += seconds
        return rows


@pytest.fixture
def fit(tmp_path):
    pins = PinFile(tmp_path / "pin")
    pins.set(PIN)
    backend = Scripted()
    con = Console(backend, Access(pins), AuditLog(tmp_path / "audit.log"), tmp_path / "ankle.params",
                  tmp_path / "profiles")
    assert con.handle(f"login {PIN}").startswith("prosthetist")
    return con, backend, tmp_path


def _say(con, line: str) -> str:
    reply = con.handle(line)
    assert all(len(row) <= WIDTH for row in reply.split("\r\n")), reply
    return reply.replace("\r\n  ", " ").replace("\r\n", "\n")     # the wrapped rows joined again


def _powered_sets(backend):
    """The push-off strengths taken while the chosen mode was walk (powered)."""
    return [p["pushoff.torque_Nm_kg"] for p, _, mode in backend.sets if mode == "walk"]


def test_a_whole_fitting_in_order_changes_only_what_it_says_and_records_each_step(fit):
    con, backend, state = fit
    out = _say(con, "fit")
    assert "7 steps" in out and "passive" in out and con.prompt() == "ankle fit 1/7 mass# "
    assert backend.mode() == "passive"                           # nothing powered from here on
    assert "72 kg (was 80 kg)" in _say(con, "72 kg") and con.prompt().startswith("ankle fit 2/7 calibration")
    out = _say(con, "")                                          # Enter measures
    assert "calibration.ankle_zero_rad = 0.57 deg" in out and "step 2 done" in out
    backend.walk(4)
    assert _say(con, "").startswith(f"4 of {LEARN_STRIDES} walking strides so far")
    backend.walk(LEARN_STRIDES)
    out = _say(con, "10 m in 8.33 s")                            # a timed walk: 1.20 m/s
    assert "speed.stride_time_at_1_m_s_s = 1.2 s (was 1.218 s)" in out, out
    assert "stance-time SI +8.0 % without push-off" in out
    assert backend.mode() == "passive" and con.prompt().startswith("ankle fit 4/7 push-off")
    assert "not on yet" in _say(con, "more")
    out = _say(con, "")                                          # the checks pass: gentle first
    assert "pushoff.torque_Nm_kg = 0.14 N·m/kg (was 0.54 N·m/kg)" in out and "mode walk selected" in out
    assert backend.params()["pushoff.work_J_kg"] == 0.04
    for level in range(1, len(LEVELS)):
        assert "strides at this level" in _say(con, "more")      # not before the wearer walked on it
        backend.walk(LEVEL_STRIDES)
        assert f"push-off at level {level + 1} of {len(LEVELS)}" in _say(con, "more")
    backend.walk(LEVEL_STRIDES)
    assert "the target the fitting started with" in _say(con, "more")
    assert backend.params()["pushoff.torque_Nm_kg"] == 0.54            # never above it
    out = _say(con, "good")
    assert "chosen: level 4 of 4: 0.54 N·m/kg" in out and "step 4 done" in out
    backend.faults = fault_bit("overrun")
    backend.walk(SYMMETRY_STRIDES, si=1.0)                       # under a fault: these do not count
    assert "0 of 10 strides so far, and faults are latched (overrun)" in _say(con, "")
    backend.faults = 0
    backend.walk(SYMMETRY_STRIDES, si=1.0)
    out = _say(con, "")
    assert re.search(r"stance-time SI \+1\.0 ± 0\.0 % over 10 strides \(target \+0\.0 %; \+8\.0 % "
                     r"without push-off\)", out), out
    out = _say(con, "Level-Walking")
    assert "profile level-walking saved" in out and "fitting done" in out and con.fitting.active is False
    assert con.prompt() == "ankle# "
    saved = paramstore.load(state / "profiles" / "level-walking.params").params
    assert saved == paramstore.load(state / "ankle.params").params == backend.params()
    assert saved["wearer.mass_kg"] == 72.0 and saved["pushoff.torque_Nm_kg"] == 0.54
    records = read_audit(state / "audit.log")
    steps = [r["detail"] for r in records if r["action"] == "fit"]
    assert steps[0] == "fit start" and steps[-1].startswith("fit end: done; mass done; calibration done")
    assert len(steps) == 2 + 6
    # every parameter the controller took was recorded before, with the fitting named
    changed = [r for r in records if r["parameter"]]
    assert len(changed) == sum(1 for _ in changed) and all(r["detail"].startswith("fit: ") for r in changed)
    assert _say(con, "fit summary").startswith("fitting done after")


def test_push_off_is_not_powered_while_a_fault_is_latched_or_before_a_stride_is_learned(fit):
    con, backend, _ = fit
    _say(con, "fit")
    for _ in range(3):
        _say(con, "skip")                                        # mass, calibration, walk skipped
    assert con.prompt().startswith("ankle fit 4/7 push-off")
    out = _say(con, "")
    assert out.startswith("not powered: no stride learned"), out
    backend.walk(LEVEL_STRIDES + 2)
    backend.faults = fault_bit("motor_stale")
    out = _say(con, "")
    assert out.startswith("not powered: faults are latched (motor_stale)"), out
    assert backend.mode() == "passive" and _powered_sets(backend) == []
    assert backend.params()["pushoff.torque_Nm_kg"] == 0.54      # untouched
    backend.faults = 0
    assert "mode walk selected" in _say(con, "")
    backend.faults = fault_bit("motor_stale")
    backend.walk(LEVEL_STRIDES)                                  # walked, but in the safe state
    backend.faults = 0
    assert "only 0 of 3 strides at this level with no fault" in _say(con, "more")
    assert "only 0 of 3" in _say(con, "good")
    backend.walk(LEVEL_STRIDES)
    backend.faults = fault_bit("overrun")                        # a fault meanwhile: no stronger
    assert _say(con, "more").startswith("no stronger while faults are latched (overrun)")
    assert "level 1 of 4" in _say(con, "less") or backend.params()["pushoff.torque_Nm_kg"] == 0.14


def test_skip_again_back_and_stop_do_what_they_say(fit):
    con, backend, state = fit
    _say(con, "fit")
    assert _say(con, "back").startswith("this is the first step")
    out = _say(con, "skip")
    assert "step 1 skipped" in out and con.prompt().startswith("ankle fit 2/7")
    assert _say(con, "back").startswith("step 1 of 7, body mass")
    assert "wearer.mass_kg = 71.5 kg (was 80 kg)" in _say(con, "71.5")     # kg when no unit is typed
    backend.still = False
    out = _say(con, "")
    assert out.startswith("not still: shank turned") and con.prompt().startswith("ankle fit 2/7")
    assert backend.params()["calibration.ankle_zero_rad"] == 0.0
    assert _say(con, "again").startswith("step 2 again")
    backend.walking = True
    assert _say(con, "").startswith("the wearer walks or moved")
    backend.walking, backend.still = False, True
    assert "step 2 done" in _say(con, "next")
    assert "status" not in _say(con, "fit")                      # `fit` alone: the step's words again
    assert _say(con, "fit").startswith("step 3 of 7, learning walk")
    assert "mode passive" in _say(con, "status")                 # console commands work meanwhile
    out = _say(con, "stop")
    assert out.startswith("fitting stopped after") and "learning walk" in out and "not done" in out
    assert "not saved: `save` keeps these values" in out and "mode passive (`mode walk`" in out
    assert con.fitting.active is False and con.prompt() == "ankle# "
    assert _say(con, "next").startswith("unknown command 'next'")   # the fitting's words end with it


def test_the_fitting_needs_the_pin_and_ends_with_it(fit):
    con, backend, state = fit
    _say(con, "logout")
    assert _say(con, "fit").startswith("read-only") and con.fitting is None
    _say(con, f"login {PIN}")
    _say(con, "fit")
    out = _say(con, "logout")
    assert out.startswith("read-only") and "fitting ended: logged out" in out
    assert [r["detail"] for r in read_audit(state / "audit.log") if r["action"] == "fit"][-1].startswith(
        "fit end: ended: logged out")


def test_bad_answers_get_one_line_and_change_nothing(fit):
    con, backend, _ = fit
    _say(con, "fit")
    before = backend.params()
    for line in ("72,5 kg", "300 kg", "seventy", "72 N·m"):
        out = _say(con, line)
        assert out.count("\n") == 1 and con.prompt().startswith("ankle fit 1/7"), (line, out)
    assert backend.params() == before
    _say(con, "skip")
    _say(con, "skip")
    backend.walk(LEARN_STRIDES)
    for line in ("1,2 m/s", "9 m/s", "10 m in 0 s", "fast"):
        assert _say(con, line).count("\n") == 1, line
    assert backend.params() == before and con.prompt().startswith("ankle fit 3/7")


def test_the_service_console_has_no_fitting(tmp_path):
    pins = PinFile(tmp_path / "pin")
    pins.set(PIN)
    con = Console(OfflineBackend(ParamSet()), Access(pins), AuditLog(tmp_path / "audit.log"),
                  tmp_path / "ankle.params", tmp_path / "profiles")
    con.handle(f"login {PIN}")
    assert con.handle("fit").startswith("fit needs the running controller")


_LINES = st.one_of(st.sampled_from(["", "next", "skip", "again", "back", "more", "less", "good",
                                    "72 kg", "1.2 m/s", "level-walking", "status", "fit", "fit stop",
                                    "undo", "set pushoff.torque_Nm_kg 1.2", "mode walk", "clear"]),
                   st.text(max_size=20))
_FIT_WORDS = st.sampled_from(["", "", "more", "more", "less", "good", "skip", "again", "back"])
_EVENTS = st.one_of(st.tuples(st.just("line"), _FIT_WORDS), st.tuples(st.just("line"), _LINES), st.tuples(st.just("walk"), st.integers(0, 12)),
                    st.tuples(st.just("fault"), st.booleans()), st.tuples(st.just("moving"), st.booleans()))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(skips=st.integers(0, 5), walked=st.integers(0, 12), faulted=st.booleans(),
       events=st.lists(_EVENTS, max_size=40))
def test_any_sequence_of_lines_and_gait_keeps_the_fitting_within_its_promises(tmp_path_factory, skips, walked,
                                                                              faulted, events):
    """Attack: whatever is typed and whatever the gait and the faults do, the fitting (1) never
    raises and answers within 80 columns, (2) powers push-off (a set taken in the walking mode,
    chosen by the fitting) only from the push-off step, never while a fault is latched, and never
    above the strength it started with, and (3) makes no change that the audit log lacks."""
    tmp = tmp_path_factory.mktemp("fit")
    pins = PinFile(tmp / "pin")
    pins.set(PIN)
    backend = Scripted()
    con = Console(backend, Access(pins), AuditLog(tmp / "audit.log"), tmp / "ankle.params", tmp / "profiles")
    con.handle(f"login {PIN}")
    con.handle("fit")
    target = backend.params()["pushoff.torque_Nm_kg"]
    # from any step (skipped to), with strides walked or not and a fault latched or not
    events = [("walk", walked), ("fault", faulted)] + [("line", "skip")] * skips + events
    for kind, value in events:
        if kind == "line":
            if value.startswith(("set ", "mode ", "undo")):
                continue                     # the prosthetist's own changes are not the fitting's
            fitting_before = con.fitting is not None and con.fitting.active
            sets_before = len(backend.sets)
            strength = backend.params()["pushoff.torque_Nm_kg"]
            reply = con.handle(value)
            assert all(len(row) <= WIDTH for row in reply.split("\r\n")), (value, reply)
            for params, faults, mode in backend.sets[sets_before:]:
                if fitting_before and mode == "walk":
                    assert params["pushoff.torque_Nm_kg"] <= target + 1e-12
                    if params["pushoff.torque_Nm_kg"] > strength:      # stronger: never under a fault
                        assert faults == 0, (value, faults)
                strength = params["pushoff.torque_Nm_kg"]
        elif kind == "walk":
            backend.walk(value)
        elif kind == "fault":
            backend.faults = fault_bit("motor_stale") if value else 0
        else:
            backend.walking = value
    # (2) the walking mode chosen with no fault latched, each time
    assert all(faults == 0 for name, arg, faults in backend.requests_faults if arg == _MODE["walk"])
    # (3) each value the controller took has its record (made before it was sent)
    recorded = {(r["parameter"], r["new"]) for r in read_audit(tmp / "audit.log") if r["parameter"]}
    previous = ParamSet()
    for params, _, _ in backend.sets:
        for p in REGISTRY:
            if params[p.name] != previous[p.name]:
                assert (p.name, repr(params[p.name])) in recorded, p.name
        previous = params
