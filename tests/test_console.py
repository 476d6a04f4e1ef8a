"""The prosthetists' console as a prosthetist meets it: `ankle sim --realtime --console`, a real
pseudo-terminal, pyserial on the other end, the simulated wearer walking in real time."""
from __future__ import annotations

import random
import re
import time

import pytest

from controller.params import store as paramstore
from controller.console.audit import read as read_audit
from controller.console import units
from controller.console.commands import SYMMETRY_HEADER
from controller.params.registry import REGISTRY
from conftest import CONSOLE_PROMPT, sim_console

PIN = "2468"
PROMPT = CONSOLE_PROMPT


@pytest.fixture(scope="module")
def console(tmp_path_factory):
    state = tmp_path_factory.mktemp("console")
    with sim_console(state, PIN, "--duration", "300") as (term, _):
        yield term, state


def _walking(term) -> bool:
    return "\nwalking; cadence" in "\n" + term.cmd("status")


def _logged_in_and_walking(term) -> None:
    term.cmd(f"login {PIN}")
    deadline = time.monotonic() + 20
    while not _walking(term):
        assert time.monotonic() < deadline, "the simulated wearer never walked"
        time.sleep(0.5)


def _switch_the_adaptation_on(term, tries: int = 5) -> None:
    """``set symmetry.adapt 1``, clearing first what a stall of a busy machine latched.

    The console refuses the adaptation while faults are latched (issue 17); on a loaded 2-core
    machine the real-time simulator's drive can miss its 3.5 ms reply bound and latch
    ``motor_stale``, which is the simulator's machine, not what this test is about.
    """
    out = ""
    for _ in range(tries):
        term.cmd("clear")
        out = term.cmd("set symmetry.adapt 1")
        if "takes effect" in out:
            return
        assert "cannot be switched on while faults are latched" in out, out
    raise AssertionError(f"faults latched again after each of {tries} clears: {out}")


def test_help_lists_every_command_and_explains_one(console):
    term, _ = console
    out = term.cmd("help")
    for name in ("params", "get", "set", "diff", "undo", "save", "load", "default", "profile", "status",
                 "watch", "faults", "clear", "mode", "calibrate", "log", "login", "logout"):
        assert re.search(rf"^{name}\b", out, re.M), name
    assert term.cmd("help set").startswith("set NAME VALUE")


def test_read_only_until_the_pin_then_changes_are_audited(console):
    term, state = console
    term.cmd("logout")
    assert "read-only" in term.cmd("set pushoff.torque_Nm_kg 0.6")
    assert "wrong PIN" in term.cmd("login 9999")
    assert term.cmd(f"login {PIN}").startswith("prosthetist")
    out = term.cmd("set pushoff.torque_Nm_kg 0.6")
    assert "pushoff.torque_Nm_kg = 0.6 N·m/kg (was 0.54 N·m/kg)" in out
    records = [r for r in read_audit(state / "audit.log") if r["action"] == "set"]
    assert records[-1]["parameter"] == "pushoff.torque_Nm_kg"
    assert (records[-1]["old"], records[-1]["new"], records[-1]["role"]) == ("0.54", "0.6", "prosthetist")
    assert "pushoff.torque_Nm_kg" in term.cmd("undo")


@pytest.mark.parametrize("line, expected", [
    ("set pushoff.torque_Nm_kg 9", "is out of range [0, 1.5] N·m/kg"),
    ("set pushoff.torque_Nm_kg abc", "needs a number in [0, 1.5] N·m/kg"),
    ("set pushoff.torque_Nm_kg nan", "needs a finite number"),
    ("set pushoff.torque_Nm_kg 0_6", "needs a number in [0, 1.5] N·m/kg"),
    ("set pushoff.torque_Nm_kg ０.６", "needs a number in [0, 1.5] N·m/kg"),
    ("set pushoff.torque_Nm_kg 0x1", "needs a number in [0, 1.5] N·m/kg"),
    ("set pushoff.torque_Nm_kg 0.6 rad", "is in N·m/kg, got unit 'rad'"),
    ("set pushoff.torque_Nm_kg 0,6", "use a decimal point: 0.6"),
    ("set swing.target_rad 1 rad", "swing.target_rad = 1 rad is out of range [-5.73, 11.46] deg"),
    ("set no.such_thing 1", "unknown parameter 'no.such_thing'"),
    ("set pushoff.torque_Nm_kg", "usage: set NAME VALUE"),
    ("frobnicate", "unknown command 'frobnicate'; did you mean "),
    ("stauts", "did you mean 'status'?"),
    ("params nogroup", "no group 'nogroup'"),
    ("params pushof", "did you mean 'pushoff'?"),
    ("profile load ../../etc/passwd", "usage: profile"),
])
def test_bad_input_gets_one_clear_line_and_changes_nothing(console, line, expected):
    term, _ = console
    term.cmd(f"login {PIN}")
    before = term.cmd("diff")
    out = term.cmd(line)
    assert expected in out and out.count("\n") == 0, out
    assert term.cmd("diff") == before


# Marked realtime: these wait (20-30 s) for the simulated wearer to walk in real time, or for strides
# and an adaptation to happen; on a machine too busy to keep time the wearer may not walk in time.
@pytest.mark.realtime
def test_a_fixed_parameter_is_refused_while_walking(console):
    term, _ = console
    _logged_in_and_walking(term)
    out = term.cmd("set wearer.mass_kg 70")
    assert "only change while the wearer stands still" in out and "nothing was changed" in out


@pytest.mark.realtime
def test_calibration_and_standby_are_refused_while_walking(console):
    term, _ = console
    _logged_in_and_walking(term)
    before = term.cmd("calibrate")
    assert "calibrate only while the wearer stands still" in term.cmd("calibrate imu")
    assert term.cmd("calibrate") == before
    assert term.cmd("mode standby", timeout_s=15) == \
        "refused: standby only while the wearer stands still; nothing changed"
    assert "no calibration 'knee'" in term.cmd("calibrate knee")


@pytest.mark.realtime
def test_symmetry_lists_the_last_strides_and_status_gives_the_index(console):
    term, _ = console
    _logged_in_and_walking(term)
    deadline = time.monotonic() + 20
    while "no whole walking stride" in term.cmd("symmetry"):
        assert time.monotonic() < deadline, "no stride was analysed"
        time.sleep(0.5)
    while len(term.cmd("symmetry 3").splitlines()) < 8:
        assert time.monotonic() < deadline, term.cmd("symmetry 3")
        time.sleep(0.5)
    lines = term.cmd("symmetry 3").splitlines()
    # three header lines (names, then units; the reply's leading spaces are stripped), 3 strides
    assert [line.strip() for line in lines[:3]] == [h.strip() for h in SYMMETRY_HEADER] and len(lines) == 8, lines
    assert all("load profile (" in line and len(line) <= 80 for line in lines[3:6])   # no sound-side node here
    assert lines[6].startswith("stance-time SI over the last ") and "% per minute" in lines[6]
    assert lines[7].startswith("adaptation: off (target +0.0 %, push-off ")
    assert re.search(r"^symmetry: stance-time SI [+-]\d+\.\d % \(mean of the last \d+ strides",
                     term.cmd("status"), re.M)
    assert term.cmd("symmetry 0").startswith("usage: symmetry [N]")


@pytest.mark.realtime
def test_the_symmetry_adaptation_changes_pushoff_within_its_bounds_and_is_audited(console):
    term, state = console
    _logged_in_and_walking(term)
    for line in ("set symmetry.window_strides 3", "set symmetry.work_min_J_kg 0.15",
                 "set symmetry.work_max_J_kg 0.22"):
        assert "takes effect" in term.cmd(line), line
    _switch_the_adaptation_on(term)
    deadline = time.monotonic() + 30
    while not [r for r in read_audit(state / "audit.log") if r["role"] == "adaptation"]:
        assert time.monotonic() < deadline, term.cmd("symmetry 1")
        time.sleep(0.5)
    term.cmd("set symmetry.adapt 0")
    records = [r for r in read_audit(state / "audit.log") if r["role"] == "adaptation"]
    # what became of a change not taken (refused: superseded by the console's set just above, or
    # pending) changed nothing; every change made stays inside the bounds
    made = [r for r in records if r["action"] == "adapt"]
    assert made, records
    assert all(r["action"] in ("adapt", "adapt refused", "adapt pending") for r in records), records
    for r in made:            # push-off moved inside the bounds, or a fault switched it off
        assert (r["parameter"] == "pushoff.work_J_kg" and 0.15 <= float(r["new"]) <= 0.22) or \
            (r["parameter"] == "symmetry.adapt" and r["new"] == "0" and "fault" in r["detail"]), r
    assert "adaptation: off" in term.cmd("symmetry 1")


def test_a_cross_parameter_rule_is_checked(console):
    term, _ = console
    term.cmd(f"login {PIN}")
    out = term.cmd("set safety.max_torque_Nm 120")
    assert "exceeds what the actuator can give: 119.7 N·m" in out and out.count("\n") == 0
    out = term.cmd("set pushoff.torque_Nm_kg 1.5")
    assert "exceeds safety.max_torque_Nm" in out


def test_undo_takes_back_the_last_change_only(console):
    term, _ = console
    term.cmd(f"login {PIN}")
    term.cmd("set swing.stiffness_Nm_rad 25")
    term.cmd("set swing.stiffness_Nm_rad 30")
    assert "(was 30 N·m/rad)" in term.cmd("undo")
    assert term.cmd("get swing.stiffness_Nm_rad").startswith("swing.stiffness_Nm_rad (swing hold stiffness) = 25 N·m/rad ")
    assert "(was 25 N·m/rad)" in term.cmd("undo")


def test_save_writes_both_checksummed_copies_and_diff_shows_it(console):
    term, state = console
    term.cmd(f"login {PIN}")
    term.cmd("set swing.target_rad 0.06 rad")
    assert "saved to" in term.cmd("save")
    loaded = paramstore.load(state / "ankle.params")
    assert loaded.source == "primary" and not loaded.problems
    assert loaded.params["swing.target_rad"] == 0.06
    assert re.search(r"swing\.target_rad\s+3\.44 deg\s+3\.44 deg\s+2\.86 deg", term.cmd("diff"))      # 0.06, 0.05 rad


def test_profiles_save_list_load(console):
    term, state = console
    term.cmd(f"login {PIN}")
    assert "saved" in term.cmd("profile save slow-walking")
    assert "slow-walking" in term.cmd("profile list")
    assert (state / "profiles" / "slow-walking.params").exists()
    out = term.cmd("profile load no-such")
    assert "no profile 'no-such'" in out


@pytest.mark.parametrize("end", [b"\r", b"\n", b"\r\n"])
def test_cr_lf_and_crlf_all_end_a_line(console, end):
    term, _ = console
    assert term.cmd("get swing.target_rad", end=end).startswith("swing.target_rad (toe clearance angle in swing) = ")


def test_backspace_edits_the_line(console):
    term, _ = console
    out = term.send(b"get swing.taXY\x7f\x08rget_rad\r")      # two typos erased, DEL and BS
    assert "swing.target_rad (toe clearance angle in swing) = " in out


def test_ctrl_c_drops_the_line_once_and_typed_ahead_lines_are_answered_in_order(console):
    term, _ = console
    out = term.send(b"get swing\x03")
    assert out.count("^C") == 1 and out.endswith(("^C\r\nankle> ", "^C\r\nankle# ")), out
    term.port.write(b"get swing.target_rad\rget wearer.mass_kg\r")       # pasted: both in one read
    out = term.read_until(lambda b: b.count(b"\r\nankle") >= 2 and CONSOLE_PROMPT.search(b) is not None
                          and b.rstrip().endswith((b"ankle>", b"ankle#")) and b"wearer.mass_kg (body mass) = " in b)
    first, second = out.index(b"swing.target_rad (toe clearance angle in swing) = "), out.index(b"get wearer.mass_kg\r\n")
    assert first < second < out.index(b"wearer.mass_kg (body mass) = "), out      # echo 2 after reply 1


def test_non_utf8_and_overlong_lines_are_refused(console):
    term, _ = console
    assert "not text" in term.send(b"get \xff\xfe\r")
    assert "line too long" in term.send(b"x" * 500 + b"\r")
    assert term.cmd("get swing.target_rad").startswith("swing.target_rad")


def test_status_has_units(console):
    term, _ = console
    out = term.cmd("status")
    for unit in ("°C", " V", "N·m", "steps/min", "m/s", "J/kg", "%"):
        assert unit in out, unit
    assert "N*m" not in out and "degC" not in out            # the clinician's spellings (issue 17)
    assert all(len(row) <= 80 for row in out.split("\r\n")), out


def test_status_names_the_drive(console):
    term, _ = console
    deadline = time.monotonic() + 20          # a hang guard: the controller's first row
    while "\nloop: " not in (out := term.cmd("status")):
        assert time.monotonic() < deadline, out
        time.sleep(0.5)
    # the drive (hal.drives) ends the loop line
    assert re.search(r"^loop: \d+ ticks, \d+ missed deadlines; drive ak_mit\r?$", out, re.M), out


def test_watch_refreshes_until_a_key(console):
    term, _ = console
    term.port.write(b"watch\r")
    # several refreshes of the live line, however long a busy machine takes for them (the wait is a
    # hang guard, not a rate: how often it refreshes is no claim of this test)
    seen = term.read_until(lambda out: out.count(b"\r") >= 5 and b" s  " in out, timeout_s=30)
    out = term.send(b"q")
    assert seen.count(b"\r") >= 5 and b" s  " in seen
    assert PROMPT.search(out.encode())


def test_a_random_byte_stream_breaks_nothing(console):
    term, state = console
    rng = random.Random(5)
    stream = bytes(rng.getrandbits(8) for _ in range(100_000))
    for i in range(0, len(stream), 4096):
        term.port.write(stream[i:i + 4096])
        term.port.read(65536)
    term.port.write(b"\x03\r")                 # end whatever line the noise left open
    term.read_until_prompt()
    out = term.cmd("params")                   # still answering, and every value inside its range
    values = dict(re.findall(r"^(\S+)  .*?  = (.+?)\s{2,}\[", out, re.M))     # name, label, value and unit
    assert len(values) == len(REGISTRY)
    for p in REGISTRY:                          # shown in the clinical unit: read back to SI
        assert p.min <= units.parse(p, values[p.name]) <= p.max, (p.name, values[p.name])


# realtime: `clear` is tried through the next swing, so it needs the wearer walking on the wall clock
@pytest.mark.realtime
def test_mode_passive_and_walk_and_clear(console):
    term, state = console
    term.cmd(f"login {PIN}")
    assert term.cmd("mode passive").startswith("mode passive selected")
    deadline = time.monotonic() + 5
    while "mode passive" not in term.cmd("faults") and "mode safe" not in term.cmd("faults"):
        assert time.monotonic() < deadline, "the ankle never went passive"
        time.sleep(0.1)
    assert term.cmd("mode walk").startswith("mode walk selected")
    out = term.cmd("clear")                        # tried through the next swing
    assert out.startswith("cleared") or out.startswith("refused: still present"), out
    assert "usage: mode walk|passive|standby" in term.cmd("mode fly")
    actions = [r["action"] for r in read_audit(state / "audit.log")]
    assert actions.count("mode") >= 2 and "clear" in actions
