"""The service console (``ankle console``, no controller running) and ``ankle pin set``; first of
all, a power cut during `save`: the console's process is SIGKILLed at a random moment while it
saves, 200 times, and every restart comes up with a whole parameter set, the old one or the new one,
and a file that was saved always has its `save` record in the audit log (recorded before the file
is replaced).

Each round forks a real process that runs the service console (``ankle console``: the same
commands, PIN, audit log and parameter file as on the running ankle) on a real pseudo-terminal.
pyserial on the other end checks what it booted with, logs in, changes two parameters to the
other set's values, types `save`, and kills the process somewhere between the keystroke and a
little after the save's measured duration.  Forking from this process (everything already
imported) keeps a round to tens of milliseconds, so 200 fit in a test run.
"""
from __future__ import annotations

import os
import random
import signal
import time
import tty

import pytest

from controller.params import store as paramstore
from controller.console.access import PinFile
from controller.console.audit import read as read_audit
from controller.console.session import FdPort, service_console
from controller.console import units
from controller.params.registry import ParamSet, by_name
from conftest import Terminal

PIN = "8642"
ROUNDS = 200
SETS = {"old": {"swing.target_rad": 0.05, "pushoff.torque_Nm_kg": 0.54},
        "new": {"swing.target_rad": 0.07, "pushoff.torque_Nm_kg": 0.6}}


def _which(values: dict) -> str:
    """"old" or "new": the whole set ``values`` is; AssertionError for a mixture or anything else."""
    for name, chosen in SETS.items():
        if all(values[k] == v for k, v in chosen.items()):
            return name
    raise AssertionError(f"neither the old nor the new set: {values}")


def _start(state):
    """Fork a service console on a new pty; returns (pid, Terminal at its first prompt)."""
    master, slave = os.openpty()
    tty.setraw(slave)
    path = os.ttyname(slave)
    pid = os.fork()
    if pid == 0:                                        # the console's process
        status = 1
        try:
            os.close(slave)
            service_console(FdPort(master), state, state / "ankle.params").serve()
            status = 0
        finally:
            os._exit(status)
    os.close(master)
    term = Terminal(path)
    os.close(slave)                                     # pyserial holds its own descriptor
    term.send(b"\r")
    return pid, term


# realtime: the kill lands at a random moment up to 1.5x the first round's save time, and the test
# asks for both outcomes (>= 5 each); a save that takes longer or shorter later (a machine whose load
# changes) puts every kill on one side.  That each file is the old or the new set holds regardless.
@pytest.mark.realtime
def test_sigkill_during_save_leaves_the_old_or_the_new_set_every_time(tmp_path):
    seed = int.from_bytes(os.urandom(4), "little")
    rng = random.Random(seed)
    PinFile(tmp_path / "pin").set(PIN)
    paramstore.save(ParamSet(SETS["old"]), tmp_path / "ankle.params")
    outcomes = {"old": 0, "new": 0}
    expected = "old"
    save_s = None
    saves = 0                      # `save` records so far
    for round_ in range(ROUNDS):
        pid, term = _start(tmp_path)
        try:
            replies = {name: term.cmd(f"get {name}") for name in SETS["old"]}
            # shown in the clinical unit (swing.target_rad in deg): read back to SI
            booted = {name: units.parse(by_name(name), r.split(" = ", 1)[1].split(" (factory")[0])
                      for name, r in replies.items()}
            assert _which(booted) == expected, f"seed {seed}, round {round_}: booted {booted}"
            assert term.cmd(f"login {PIN}").startswith("prosthetist")
            other = "new" if expected == "old" else "old"
            for name, value in SETS[other].items():
                assert f"{name} = " in term.cmd(f"set {name} {value} {by_name(name).unit}")      # in SI
            if save_s is None:                          # the first round measures a whole save
                t0 = time.perf_counter()
                assert "saved to" in term.cmd("save")
                save_s = time.perf_counter() - t0
            else:
                term.port.write(b"save\r")
                time.sleep(rng.uniform(0.0, 1.5 * save_s))
        finally:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            term.port.close()
        recorded = sum(r["action"] == "save" for r in read_audit(tmp_path / "audit.log"))
        if round_ == 0:
            expected = other
            saves = recorded
            continue
        loaded = paramstore.load(tmp_path / "ankle.params")
        assert loaded.source == "primary" and not loaded.corrupt, (seed, round_, loaded.problems)
        expected = _which({name: loaded.params[name] for name in SETS["old"]})
        outcomes["new" if expected == other else "old"] += 1
        if expected == other:      # the file was replaced in this round: its record is there
            assert recorded == saves + 1, f"seed {seed}, round {round_}: a saved file with no save record"
        saves = recorded
    # the kills landed on both sides of the moment the new set became the file's
    assert outcomes["old"] >= 5 and outcomes["new"] >= 5, (seed, outcomes, save_s)
    problems = []
    records = read_audit(tmp_path / "audit.log", problems=problems)
    assert sum(r["action"] == "login" for r in records) == ROUNDS
    assert not problems            # each record is one write of whole lines: a kill tears none
    print(f"seed {seed}: {ROUNDS} rounds, save took {1e3 * save_s:.1f} ms, kills left the file unchanged "
          f"{outcomes['old']} times and saved {outcomes['new']} times")


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_a_damaged_file_boots_the_service_console_from_the_backup_and_says_so(tmp_path, damage):
    PinFile(tmp_path / "pin").set(PIN)
    store = tmp_path / "ankle.params"
    paramstore.save(ParamSet(SETS["new"]), store)
    data = store.read_bytes()
    store.write_bytes(data[:len(data) // 2] if damage == "truncate" else data.replace(b"0.07", b"0.08"))
    master, slave = os.openpty()
    tty.setraw(slave)
    session = service_console(FdPort(master), tmp_path, store)
    term = Terminal(os.ttyname(slave))
    session.start()
    try:
        term.send(b"\r")
        assert term.cmd("get swing.target_rad").startswith("swing.target_rad (toe clearance angle in swing) = 4.01 deg")   # 0.07 rad
        assert "no controller is running" in term.cmd("status")
        banner = session.banner
        assert "parameters from backup" in banner, banner
    finally:
        session.stop()
        term.port.close()
        os.close(master)
        os.close(slave)


def test_ankle_console_and_ankle_pin_set_from_the_command_line(tmp_path):
    import subprocess
    import sys
    from conftest import ROOT
    cli = [sys.executable, "-m", "controller.cli"]
    for bad, why in (("12\n", "got 2 digits"), ("12ab\n", "something other than a digit"), ("\n", "got nothing")):
        out = subprocess.run(cli + ["pin", "set", "--state-dir", str(tmp_path)], input=bad, cwd=ROOT,
                             capture_output=True, text=True)
        assert out.returncode == 2 and why in out.stderr and "nothing was changed" in out.stderr, out.stderr
    assert not (tmp_path / "pin").exists()
    out = subprocess.run(cli + ["pin", "set", "--state-dir", str(tmp_path)], input=PIN + "\n", cwd=ROOT,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    master, slave = os.openpty()
    tty.setraw(slave)
    proc = subprocess.Popen(cli + ["console", "--state-dir", str(tmp_path), "--port", os.ttyname(slave)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        term = Terminal(FdPort(master))
        term.read_until_prompt(timeout_s=30)
        assert term.cmd(f"login {PIN}").startswith("prosthetist")
        assert "when the controller next starts from the saved file" in term.cmd("set swing.target_rad 0.08 rad")
        assert "saved to" in term.cmd("save")
        assert "no controller is running" in term.cmd("clear")
        assert "no telemetry recorded" in term.cmd("calibrate imu")
        term.port.write(b"quit\r")
        assert proc.wait(timeout=10) == 0, proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
        os.close(master)
        os.close(slave)
    assert paramstore.load(tmp_path / "ankle.params").params["swing.target_rad"] == 0.08


def test_the_service_console_starts_on_a_new_log_when_the_old_one_is_damaged_and_says_so(tmp_path):
    from controller.console.audit import read as read_log
    PinFile(tmp_path / "pin").set(PIN)
    (tmp_path / "audit.log").write_bytes(b"time_utc\trole\tac")          # a torn header
    master, slave = os.openpty()
    tty.setraw(slave)
    session = service_console(FdPort(master), tmp_path, tmp_path / "ankle.params")
    term = Terminal(os.ttyname(slave))
    session.start()
    try:
        term.send(b"\r")
        assert term.cmd(f"login {PIN}").startswith("prosthetist")
    finally:
        session.stop()
        term.port.close()
        os.close(master)
        os.close(slave)
    kept = sorted(tmp_path.glob("audit.log.damaged-*"))
    assert len(kept) == 1 and kept[0].read_bytes() == b"time_utc\trole\tac"
    assert "audit log: audit.log was damaged (not an audit log" in session.banner, session.banner
    assert kept[0].name in session.banner and "read-only" not in session.banner
    assert [r["action"] for r in read_log(tmp_path / "audit.log")] == ["audit log replaced", "login"]
