"""The audit log behind the running ankle's console (`ankle sim --console`, a real pseudo-terminal):
a damaged log never keeps the ankle from walking and is kept aside unchanged; a change that cannot
be recorded is not made; the simulator's console keeps the PIN and the parameter file it finds."""
from __future__ import annotations

import re
import resource
import subprocess
import sys
import time

import pytest

from controller.params import store as paramstore
from controller.console.access import PinFile
from controller.console.audit import read as read_audit
from controller.params.registry import ParamSet
from conftest import ROOT, sim_console
from test_audit import DAMAGE, HEADER, snapshot

PIN = "97531"
REFUSED = "refused: the audit log cannot record it ("


def _walked(proc) -> int:
    """The strides of a finished ``ankle sim`` (it must have ended normally)."""
    assert proc.wait(timeout=90) == 0
    time.sleep(0.2)                                     # the drain thread takes the last lines
    out = "".join(proc.output)
    m = re.search(r"summary: (\d+) strides", out)
    assert m, out
    return int(m.group(1))


# realtime: "never stops the ankle" is judged by strides walked in an 8 s real-time run (>= 3 of
# about 7); start-up on a busy machine eats into those 8 s.
@pytest.mark.realtime
@pytest.mark.parametrize("damage", ["torn header", "garbage", "a directory", "a symlink loop"])
def test_a_damaged_audit_log_never_stops_the_ankle_and_is_kept(tmp_path, damage):
    PinFile(tmp_path / "pin").set(PIN)
    DAMAGE[damage](tmp_path / "audit.log")
    before = snapshot(tmp_path / "audit.log")
    with sim_console(tmp_path, None, "--duration", "8") as (term, proc):
        assert term.cmd(f"login {PIN}").startswith("prosthetist")
        assert "takes effect" in term.cmd("set swing.target_rad 0.06")
        assert _walked(proc) >= 3
    kept = sorted(tmp_path.glob("audit.log.damaged-*"))
    assert "console: audit log: audit.log was damaged" in "".join(proc.output)
    assert len(kept) == 1 and snapshot(kept[0]) == before, kept
    records = read_audit(tmp_path / "audit.log")
    assert [r["action"] for r in records] == ["audit log replaced", "login", "set"]
    assert records[0]["parameter"] == kept[0].name


@pytest.fixture
def small_fs(tmp_path):
    """A 64 KiB tmpfs (needs root; skipped otherwise), unmounted afterwards."""
    mnt = tmp_path / "fs"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)], capture_output=True,
                          text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs: {done.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


@pytest.mark.realtime      # strides walked in an 8 s real-time run, as above
def test_with_no_audit_log_possible_the_console_is_read_only_and_says_why(small_fs):
    state = small_fs
    PinFile(state / "pin").set(PIN)
    _garbage = b"not an audit log\n"
    (state / "audit.log").write_bytes(_garbage)
    try:                                                # a full disk: the new log cannot be started
        with open(state / "filler", "wb") as f:
            while True:
                f.write(b"\0" * 4096)
                f.flush()
    except OSError:                                     # ENOSPC: the filesystem is full, as wanted
        assert (state / "filler").stat().st_size > 0
    (state / "sim.stderr").touch()                      # the fixture's, made while there is an inode
    with sim_console(state, None, "--duration", "8") as (term, proc):
        status = term.cmd("status").replace("\r\n  ", " ")     # its rows wrapped at 80 columns, joined
        assert re.search(r"^read-only: .*cannot write the header \(No space left on device\)", status, re.M), status
        out = term.cmd(f"login {PIN}")
        assert out.startswith(REFUSED) and out.endswith("nothing was changed") and "\n" not in out, out
        assert term.cmd("set swing.target_rad 0.06").startswith("read-only")
        assert _walked(proc) >= 3
    assert "console: read-only: " in "".join(proc.output)
    kept = sorted(state.glob("audit.log.damaged-*"))
    assert len(kept) == 1 and kept[0].read_bytes() == _garbage


def _files(state, skip=("sim.stderr",)):
    return {p.name: p.read_bytes() for p in sorted(state.rglob("*")) if p.is_file() and p.name not in skip}


@pytest.mark.realtime      # waits (40 s at most) for the real-time wearer to walk, then to stand
def test_a_change_that_cannot_be_recorded_is_not_made(tmp_path):
    """Every append to the audit log fails (a full disk, as RLIMIT_FSIZE on the console's process at
    the log's size: other files, all smaller, can still be written): each change is refused with one
    line and nothing changes."""
    state = tmp_path
    # a log of 64 KiB of padding (blank lines, which hold no record): larger than any other file
    (state / "audit.log").write_bytes(HEADER + (b" " * 4095 + b"\n") * 16)
    paramstore.save(ParamSet({"wearer.mass_kg": 80.0, "swing.target_rad": 0.05}), state / "ankle.params")
    with sim_console(state, PIN, "--scenario", "stand", "--duration", "120") as (term, proc):
        assert term.cmd(f"login {PIN}").startswith("prosthetist")
        deadline = time.monotonic() + 40
        for state_now in (r"\nwalking", r"\n(standing|not walking)"):        # walks, then stops
            while not re.search(state_now + "; cadence", term.cmd("status")):
                assert time.monotonic() < deadline, f"never {state_now[2:]}: {term.cmd('status')}"
                time.sleep(0.2)
        time.sleep(1.0)
        size = (state / "audit.log").stat().st_size
        resource.prlimit(proc.pid, resource.RLIMIT_FSIZE, (size, resource.prlimit(proc.pid, resource.RLIMIT_FSIZE)[1]))
        files = _files(state)
        values = {name: term.cmd(f"get {name}").split("\n")[0]
                  for name in ("swing.target_rad", "pushoff.torque_Nm_kg", "calibration.gyro_bias_rad_s")}
        mode = term.cmd("faults").splitlines()[-1]     # walk (or safe, if a stall of this VM latched a fault)
        replies = {line: term.cmd(line, timeout_s=15)
                   for line in ("set swing.target_rad 0.06", "set pushoff.torque_Nm_kg 0.6", "save",
                                "profile save slow", "mode passive", "clear", "calibrate imu", "log start")}
        wrong = {line: out for line, out in replies.items()
                 if not (out.startswith(REFUSED) and out.endswith("nothing was changed") and "\n" not in out
                         and "File too large" in out)}
        assert not wrong, wrong
        after = term.cmd("faults").splitlines()
        # the refused `mode passive` and `clear` changed nothing; a stall of a loaded machine may
        # still latch a fault meanwhile, whose response (safe, or passive) is the tick's, not the console's
        assert after[-1] == mode or after[0] != "faults: none", (mode, after)
        assert {name: term.cmd(f"get {name}").split("\n")[0] for name in values} == values
        assert term.cmd("log").startswith("not logging")
        out = term.cmd("logout")                        # giving up the right needs no record
        assert out.startswith("read-only (the audit log could not record it"), out
        out = term.cmd(f"login {PIN}")
        assert out.startswith(REFUSED), out
        term.port.write(b"set swing.target_rad 0.06\r")
        out = term.read_until_prompt(after=b"set swing.target_rad 0.06\r\n")
        assert out.rstrip().endswith("ankle>") and "read-only" in out, out
        assert _files(state) == files                  # no file written, created or appended to
        assert not (state / "profiles").exists() and not list(state.glob("logs/*.csv"))
    assert _files(state) == files


def test_the_simulators_console_keeps_the_installed_pin_and_the_saved_mass(tmp_path):
    cli = [sys.executable, "-m", "controller.cli"]
    done = subprocess.run(cli + ["pin", "set", "--state-dir", str(tmp_path)], input=PIN + "\n", cwd=ROOT,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    paramstore.save(ParamSet({"wearer.mass_kg": 62.0}), tmp_path / "ankle.params")
    files = _files(tmp_path)                           # the PIN and both copies of the parameter file
    with sim_console(tmp_path, None, "--duration", "30") as (term, proc):
        assert "(PIN: the one installed with `ankle pin set`;" in proc.output[0], proc.output
        assert term.cmd("login 1234").startswith("wrong PIN")
        assert term.cmd(f"login {PIN}").startswith("prosthetist")
        assert term.cmd("get wearer.mass_kg").startswith("wearer.mass_kg (body mass) = 62 kg (factory 80 kg, saved 62 kg)")
    assert _files(tmp_path, skip=("sim.stderr", "audit.log")) == files
    # a --pin does not replace it either
    with sim_console(tmp_path, "5555", "--duration", "5") as (term, proc):
        assert "--pin ignored" in proc.output[0], proc.output
        assert term.cmd("login 5555").startswith("wrong PIN")
    assert _files(tmp_path, skip=("sim.stderr", "audit.log")) == files


def test_a_new_state_directory_gets_the_demo_pin_and_says_so(tmp_path):
    with sim_console(tmp_path, None, "--duration", "5") as (term, proc):
        assert "(demo PIN 1234 (new state directory);" in proc.output[0], proc.output
        assert term.cmd("login 1234").startswith("prosthetist")
        assert term.cmd("get wearer.mass_kg").startswith("wearer.mass_kg (body mass) = 80 kg")
