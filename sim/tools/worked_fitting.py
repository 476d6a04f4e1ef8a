"""A guided fitting on the simulated wearer, as a prosthetist would do it: the worked example of
``docs/console.md``, and the end-to-end test of ``fit`` (``tests/test_console_fitting_sim.py``).

    python -m sim.tools.worked_fitting [--duration 600] [--state-dir DIR]

starts ``ankle sim --console --scenario fitting --asymmetric --sound-node --mass 72`` (the wearer
stands until told to walk), attaches to its console over the pseudo-terminal, does the whole
fitting (``fit``: the body mass, the zeros while standing, the learning walk, push-off from gentle to
the target, the symmetry check, the profile) and prints the session as it ran, the PIN as stars.
:func:`drive` is the prosthetist: it reads each reply and does what it says (waits for strides,
clears a fault a busy machine latched, asks for ``more`` until the target).
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, List, Optional, Tuple

from controller.console.fitting import LEVELS, STEPS

__all__ = ["MASS_KG", "PIN", "SIM_ARGS", "drive", "Session", "main"]

PIN = "1234"
MASS_KG = 72.0                  # the simulated wearer's mass; the ankle starts at its factory 80 kg
#: The simulator's arguments for the fitting (the wearer, not the controller).
SIM_ARGS = ("--scenario", "fitting", "--asymmetric", "--sound-node", "--mass", f"{MASS_KG:g}")
STRIDE_S = 1.2                  # about a comfortable stride: how long to let the wearer walk per stride
_STEP = re.compile(r"step (\d) of \d, ([a-z -]+):")

Cmd = Callable[[str, float], str]


def _prompt(reply: str, before: str) -> str:
    """The prompt after ``reply``, from what it says (the step it moves to, or the fitting's end)."""
    steps = _STEP.findall(reply)
    if steps:
        n, title = steps[-1]
        return f"ankle fit {n}/{len(STEPS)} {STEPS[int(n) - 1][0]}# "
    if reply.startswith("fitting ") or "\nfitting " in reply:
        return "ankle# "
    return before


class Session:
    """The transcript of a console session: each line typed with its prompt, then the reply."""

    def __init__(self, cmd: Cmd, log: Optional[Callable[[str], None]] = None):
        self._cmd = cmd
        self.prompt = "ankle> "
        self.lines: List[str] = []
        self._log = log

    def __call__(self, line: str, timeout_s: float = 20.0, shown: Optional[str] = None) -> str:
        reply = self._cmd(line, timeout_s)
        text = [self.prompt + (line if shown is None else shown)] + ([reply] if reply else [])
        self.lines += text
        if self._log is not None:
            for t in text:
                self._log(t)
        if line.startswith("login") and reply.startswith("prosthetist"):
            self.prompt = "ankle# "
        elif line == "logout":
            self.prompt = "ankle> "
        else:
            self.prompt = _prompt(reply, self.prompt)
        return reply


def _until(say: Session, line: str, done: Callable[[str], bool], wait_s: Callable[[str], float],
           sleep: Callable[[float], None], deadline_s: float, what: str) -> str:
    """Say ``line`` until its reply is ``done``, sleeping ``wait_s(reply)`` between; AssertionError
    (with the last reply) when ``deadline_s`` of the monotonic clock has passed."""
    end = time.monotonic() + deadline_s
    while True:
        reply = say(line)
        if done(reply):
            return reply
        if "faults are latched" in reply:        # see what it is (a busy machine's stall), then clear
            say("faults")
            say("clear", timeout_s=10.0)
        if time.monotonic() > end:
            raise AssertionError(f"{what}: not done within {deadline_s:g} s; last reply: {reply}")
        sleep(wait_s(reply))


def _strides_left(reply: str, default: int = 3) -> int:
    m = re.search(r"(\d+) of (\d+)", reply)
    return int(m.group(2)) - int(m.group(1)) if m else default


def drive(say: Session, sleep: Callable[[float], None] = time.sleep, deadline_s: float = 120.0) -> str:
    """Do a whole fitting on the simulated wearer through ``say``; returns the summary."""
    say(f"login {PIN}", shown="login " + "*" * len(PIN))
    say("fit")
    say(f"{MASS_KG:g} kg")
    _until(say, "", lambda r: "step 2 done" in r, lambda r: 1.0, sleep, deadline_s, "the zeros")
    say("wearer walk")
    sleep(8.0)                                   # the wearer sets off (within 8 s) and walks
    _until(say, "", lambda r: "step 3 done" in r, lambda r: STRIDE_S * max(1, _strides_left(r)), sleep,
           deadline_s, "the learning walk")
    _until(say, "", lambda r: "push-off at level 1" in r, lambda r: 2.0, sleep, deadline_s, "push-off on")
    for level in range(2, len(LEVELS) + 1):
        sleep(3.5 * STRIDE_S)                    # 3 strides at the level: then the wearer says more
        _until(say, "more", lambda r: f"push-off at level {level} of" in r,
               lambda r: STRIDE_S * max(1, _strides_left(r)), sleep, deadline_s, f"level {level}")
    sleep(3.5 * STRIDE_S)
    _until(say, "good", lambda r: "step 4 done" in r, lambda r: STRIDE_S * max(1, _strides_left(r)), sleep,
           deadline_s, "push-off chosen")
    sleep(10 * STRIDE_S)
    _until(say, "", lambda r: "step 5 done" in r, lambda r: STRIDE_S * max(1, _strides_left(r)), sleep,
           deadline_s, "the symmetry check")
    say("wearer stand")
    summary = say("level-walking")
    say("symmetry 5")
    say("logout")
    return summary


#: The console's prompt: ``ankle``, or the fitting's step, then ``#`` or ``>``.
PROMPT = re.compile(rb"ankle(?: fit \d/\d [a-z-]+)?[>#] $")


class _Terminal:
    """A serial terminal on the console's pty (pyserial): type a line, read its reply."""

    def __init__(self, path: str):
        import serial
        self.port = serial.Serial(path, timeout=0.05)

    def _read_until(self, done, timeout_s: float) -> bytes:
        out, end = b"", time.monotonic() + timeout_s
        while not done(out):
            if time.monotonic() > end:
                raise AssertionError(f"no prompt within {timeout_s:g} s; got {out[-300:]!r}")
            out += self.port.read(self.port.in_waiting or 1)
        return out

    def greeting(self, timeout_s: float = 10.0) -> None:
        self._read_until(lambda out: PROMPT.search(out) is not None, timeout_s)

    def cmd(self, line: str, timeout_s: float) -> str:
        from controller.console.lineedit import LineEditor
        editor = LineEditor()                    # the echo as the console shows it: a PIN as stars
        editor.feed(line.encode())
        echo = editor.shown.encode() + b"\r\n"
        self.port.write(line.encode() + b"\r")

        def done(out: bytes) -> bool:
            at = out.find(echo)
            return at >= 0 and PROMPT.search(out, at + len(echo)) is not None
        out = self._read_until(done, timeout_s)
        body = out[out.find(echo) + len(echo):]
        # the reply's own leading spaces stay (a table's header is aligned with them)
        return PROMPT.sub(b"", body).decode("utf-8", "replace").rstrip().lstrip("\r\n")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sim.tools.worked_fitting", description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=600.0, help="the simulated session's length, s")
    ap.add_argument("--state-dir", help="the console's state folder (default: a new temporary one)")
    args = ap.parse_args(argv)
    state = Path(args.state_dir or tempfile.mkdtemp(prefix="ankle-fitting-"))
    proc = subprocess.Popen([sys.executable, "-m", "controller.cli", "sim", "--console", "--state-dir", str(state),
                             "--pin", PIN, "--duration", f"{args.duration:g}", *SIM_ARGS],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        path = None
        for line in proc.stdout:
            m = re.search(r"console on (\S+)", line)
            if m:
                path = m.group(1)
                break
        if path is None:
            print("the simulator did not open a console", file=sys.stderr)
            return 1
        term = _Terminal(path)
        term.greeting()
        say = Session(term.cmd)
        drive(say)
        print("\n".join(say.lines))
        return 0
    finally:
        proc.terminate()
        proc.wait(30)


if __name__ == "__main__":
    sys.exit(main())
