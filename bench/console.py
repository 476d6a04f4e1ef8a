"""Round trip of a console command on the pseudo-terminal while the simulated wearer walks.

Starts ``ankle sim --realtime --console`` (the real-time loop in its own
process, the simulated driver and sensor node in a third, the console in the
supervisor's process on a new pseudo-terminal) and attaches pyserial to the
pty as a prosthetist's terminal program would.  After logging in it waits
until the wearer counts as walking (and 2 s more), then times, interleaved in a shuffled
order and spread evenly over ``--seconds``:

- ``get NAME`` (the first parameter of the registry that may change while
  walking; ``--samples`` of them, 300 by default),
- ``status`` (reads the newest telemetry row and the loop's counters),
- ``params`` (every parameter, about 90 lines and 7 kB back),
- ``set NAME VALUE`` alternating between two valid values of a live parameter
  (each one is checked, recorded in the audit log with an fsync, and handed
  to the running loop; the reply must say it changed).

One round trip is the time from just before ``port.write(line + CR)`` until
the prompt (``ankle# ``) of that command has been read back, on
``time.perf_counter_ns``.  It includes both directions of the pty, the
console's reader thread waking up, the line editor and its echo, the command
itself, the reply and the prompt.  The client does not use pyserial's read
timeout (that would quantise every figure to it): the port is opened with
``timeout=0``, the client blocks in ``select`` on its descriptor and reads
whatever has arrived, so the figure ends when the prompt's last byte is
readable.  The time to the first byte back (the echo) is given too.

Also reported: whether the wearer was walking (``status``'s cadence) before
and after, the loop's ticks and missed deadlines before and after, the mode
and faults, and the filesystem of the state directory (``set`` waits for an
fsync there).  Prints figures, never pass/fail; ``--json`` prints one object.
"""
from __future__ import annotations

import os
import random
import re
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import serial

from bench._common import emit, parser
from controller.console import units
from controller.params.registry import REGISTRY, by_name

ROOT = Path(__file__).resolve().parent.parent
PIN = "2468"
PROMPT = re.compile(rb"ankle(?: fit \d/\d [a-z-]+)?[>#] $")
TARGET_MS = 5.0
#: the live parameter `set` alternates, if the registry has it (the README's example); else the first live one
SET_PREFERRED = "swing.target_rad"
#: measuring starts this long after the wearer first counts as walking [s]
SETTLE_S = 2.0


class _Sim:
    """``ankle sim --realtime --console`` as a subprocess; stops it with SIGINT."""

    def __init__(self, state: Path, duration_s: float):
        self.stderr_path = state / "sim.stderr"
        self._stderr = open(self.stderr_path, "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "controller.cli", "sim", "--realtime", "--console",
             "--duration", f"{duration_s:.0f}", "--state-dir", str(state), "--pin", PIN],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=self._stderr, text=True)
        self.stdout: List[str] = []
        self.path: Optional[str] = None
        for line in self.proc.stdout:
            self.stdout.append(line)
            m = re.search(r"console on (\S+)", line)
            if m:
                self.path = m.group(1)
                break
        if self.path is None:
            self.stop()
            raise RuntimeError(f"the console did not start: {''.join(self.stdout)}{self.stderr()}")
        # keep reading its stdout so that it never blocks on a full pipe
        threading.Thread(target=lambda: self.stdout.extend(self.proc.stdout), daemon=True).start()

    def stderr(self) -> str:
        if not self._stderr.closed:
            self._stderr.flush()
        return self.stderr_path.read_text(errors="replace")

    def stop(self) -> Optional[int]:
        """SIGINT, and up to 30 s for a clean stop; SIGKILL after that, or if the wait is interrupted."""
        try:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGINT)
            self.proc.wait(timeout=30)
        except BaseException:            # TimeoutExpired, or a Ctrl-C while waiting
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            if not isinstance(sys.exc_info()[1], subprocess.TimeoutExpired):
                raise
        finally:
            self._stderr.close()
        return self.proc.returncode


class _Client:
    """pyserial on the pty, non-blocking: select on the descriptor, read what is there."""

    def __init__(self, path: str):
        self.port = serial.Serial(path, timeout=0)
        self.fd = self.port.fileno()

    def drain(self) -> bytes:
        out = b""
        while select.select([self.fd], [], [], 0)[0]:
            data = self.port.read(65536)
            if not data:
                break
            out += data
        return out

    def round_trip(self, line: bytes, timeout_s: float = 10.0):
        """(reply bytes, ns to the prompt, ns to the first byte back) for one command line."""
        self.drain()
        out = b""
        first_ns = None
        t0 = time.perf_counter_ns()
        self.port.write(line + b"\r")
        end = t0 + int(timeout_s * 1e9)
        while True:
            left = (end - time.perf_counter_ns()) / 1e9
            if left <= 0:
                raise RuntimeError(f"no prompt within {timeout_s} s after {line!r}; got {out[-300:]!r}")
            if select.select([self.fd], [], [], left)[0]:
                data = self.port.read(65536)
                if data:
                    if first_ns is None:
                        first_ns = time.perf_counter_ns() - t0
                    out += data
                    if PROMPT.search(out):
                        return out, time.perf_counter_ns() - t0, first_ns

    def cmd(self, line: str) -> str:
        out, _, _ = self.round_trip(line.encode())
        body = out.split(b"\r\n", 1)[1] if b"\r\n" in out else out
        return PROMPT.sub(b"", body).decode("utf-8", "replace").strip()


def _status(client: _Client) -> Dict[str, object]:
    text = client.cmd("status")
    out: Dict[str, object] = {}
    m = re.search(r"cadence (\S+) steps/min", text)
    out["cadence_steps_min"] = m.group(1) if m else "?"
    gait = re.search(r"^(walking|standing|not walking); cadence", text, re.M)
    out["walking"] = bool(gait) and gait.group(1) == "walking"
    m = re.search(r"(\d+) ticks, (\d+) missed", text)
    if m:
        out["ticks"], out["missed_deadlines"] = int(m.group(1)), int(m.group(2))
    m = re.search(r"mode (\S+); faults: ([^;]*);", text)
    if m:
        out["mode"], out["faults"] = m.group(1), m.group(2)
    return out


def _figures(ns: List[int]) -> Dict[str, float]:
    a = np.asarray(ns, dtype=float) / 1e6
    if not a.size:
        return {"n": 0}
    return {"n": int(a.size), "p50_ms": round(float(np.percentile(a, 50)), 3),
            "p90_ms": round(float(np.percentile(a, 90)), 3), "p99_ms": round(float(np.percentile(a, 99)), 3),
            "max_ms": round(float(a.max()), 3), "mean_ms": round(float(a.mean()), 3)}


def _filesystem(path: Path) -> str:
    """The type of the filesystem holding ``path`` (from /proc/mounts; '?' if unknown)."""
    best, kind = "", "?"
    try:
        real = os.path.realpath(path)
        for line in Path("/proc/mounts").read_text().splitlines():
            parts = line.split()
            if len(parts) >= 3 and (real == parts[1] or real.startswith(parts[1].rstrip("/") + "/")) \
                    and len(parts[1]) > len(best):
                best, kind = parts[1], parts[2]
    except OSError:              # no /proc (not Linux): the figure is printed without it
        kind = "unknown (/proc/mounts unreadable)"
    return kind


def _set_values(name: str):
    p = next(p for p in REGISTRY if p.name == name)
    a = p.default
    b = a + p.step if a + p.step <= p.max else a - p.step
    return p, a, b


def run(samples: int, seconds: float, walk_timeout_s: float = 30.0) -> Dict[str, object]:
    live = [p for p in REGISTRY if p.live]
    get_name = live[0].name
    set_name = SET_PREFERRED if any(p.name == SET_PREFERRED for p in live) else live[0].name
    p_set, value_a, value_b = _set_values(set_name)
    others = max(10, samples // 3)
    schedule = ["get"] * samples + ["status"] * others + ["params"] * others + ["set"] * others
    random.Random(0).shuffle(schedule)
    lines = {"get": f"get {get_name}".encode(), "status": b"status", "params": b"params"}

    with tempfile.TemporaryDirectory(prefix="bench-console-") as tmp:
        state = Path(tmp)
        # a set waits for the next stride boundary (about a stride while walking): the session must
        # outlast one stride per set, or the last sets find the controller stopped
        stride_s = by_name("estimator.max_stride_s").default
        sim = _Sim(state, duration_s=walk_timeout_s + seconds + 60 + others * stride_s)
        try:
            client = _Client(sim.path)
            client.round_trip(b"")                    # pyserial flushed on open: ask for a prompt
            time.sleep(0.2)                           # and let any rest of the banner arrive
            client.drain()
            if not client.cmd(f"login {PIN}").startswith("prosthetist"):
                raise RuntimeError("login with the PIN failed")
            t_walk = time.monotonic()
            before = _status(client)
            while not before["walking"] and time.monotonic() - t_walk < walk_timeout_s:
                time.sleep(0.25)
                before = _status(client)
            time.sleep(SETTLE_S)                      # past the first, partial strides
            before = _status(client)
            waited_s = time.monotonic() - t_walk

            times: Dict[str, List[int]] = {k: [] for k in ("get", "status", "params", "set")}
            first: Dict[str, List[int]] = {k: [] for k in times}
            reply_bytes: Dict[str, int] = {}
            set_changed = set_refused = 0
            value_now = value_a
            gap_ns = int(seconds * 1e9 / len(schedule))
            t_next = time.perf_counter_ns()
            for kind in schedule:
                delay = (t_next - time.perf_counter_ns()) / 1e9
                if delay > 0:
                    time.sleep(delay)
                t_next += gap_ns
                if kind == "set":
                    value_now = value_b if value_now == value_a else value_a
                    line = f"set {set_name} {value_now!r} {p_set.unit}".encode()     # SI, with its unit
                else:
                    line = lines[kind]
                out, ns, first_ns = client.round_trip(line)
                times[kind].append(ns)
                first[kind].append(first_ns)
                reply_bytes[kind] = len(out)
                if kind == "set":
                    if f"{set_name} = {units.format_with_unit(p_set, value_now)} (was".encode() in out:
                        set_changed += 1
                    else:
                        set_refused += 1
                elif kind == "get" and f"{get_name} (".encode() not in out:    # name (label) = value
                    raise RuntimeError(f"unexpected reply to {line!r}: {out[-300:]!r}")
            after = _status(client)
            client.cmd(f"default {set_name}")
            client.port.close()
        finally:
            code = sim.stop()
        warnings = [w for w in sim.stderr().splitlines() if w.startswith("warning")]
        fs = _filesystem(state)

    commands = {}
    for kind, line in (("get", lines["get"].decode()), ("status", "status"), ("params", "params"),
                       ("set", f"set {set_name} {value_a:g}|{value_b:g}")):
        commands[kind] = {"line": line, **_figures(times[kind]),
                          "first_byte_p50_ms": _figures(first[kind]).get("p50_ms"),
                          "reply_bytes": reply_bytes.get(kind, 0)}
    commands["set"].update(changed=set_changed, refused=set_refused)
    return {"benchmark": "console", "seconds": seconds, "target_ms": TARGET_MS,
            "p99_under_target": {k: bool(v.get("p99_ms", 1e9) < TARGET_MS) for k, v in commands.items()},
            "commands": commands, "waited_for_walking_s": round(waited_s, 2),
            "status_before": before, "status_after": after, "state_dir_fs": fs,
            "sim_exit_code": code, "sim_warnings": warnings, "set_parameter": p_set.name}


def main(argv=None) -> None:
    p = parser(__doc__)
    p.add_argument("--seconds", type=float, default=6.0,
                   help="spread the timed commands over this many seconds of walking (default 6)")
    p.add_argument("--samples", type=int, default=300,
                   help="round trips of `get` (default 300); status, params and set get a third as many each")
    args = p.parse_args(argv)
    if not 1.0 <= args.seconds <= 600.0:
        p.error("--seconds must be in 1..600")
    if not 10 <= args.samples <= 100_000:
        p.error("--samples must be in 10..100000")
    result = run(args.samples, args.seconds)
    if args.json:
        emit(result, True)
        return
    b, a = result["status_before"], result["status_after"]
    print(f"console round trip on the pty, {args.seconds:g} s, logged in; target {TARGET_MS:g} ms")
    print(f"  {'command':<40} {'n':>5} {'p50':>7} {'p90':>7} {'p99':>7} {'max':>7}  ms   (echo p50, reply bytes)")
    for kind, c in result["commands"].items():
        print(f"  {c['line']:<40} {c['n']:>5} {c['p50_ms']:>7.3f} {c['p90_ms']:>7.3f} {c['p99_ms']:>7.3f} "
              f"{c['max_ms']:>7.3f}       ({c['first_byte_p50_ms']:.3f}, {c['reply_bytes']})")
    s = result["commands"]["set"]
    print(f"  set: {s['changed']} changed, {s['refused']} not changed")
    for label, st in (("before", b), ("after", a)):
        print(f"  {label:<7} walking {st.get('walking')} (cadence {st.get('cadence_steps_min')} steps/min); "
              f"loop {st.get('ticks', '?')} ticks, {st.get('missed_deadlines', '?')} missed deadlines; "
              f"mode {st.get('mode', '?')}, faults {st.get('faults', '?')}")
    print(f"  waited {result['waited_for_walking_s']} s for walking; state dir on {result['state_dir_fs']}; "
          f"sim exit code {result['sim_exit_code']}")
    for w in result["sim_warnings"]:
        print(f"  {w}")


if __name__ == "__main__":
    main()
