"""The console on a serial line: bytes in, line editing, replies out, and the live ``watch`` line.

:class:`ConsoleSession` runs one :class:`controller.console.commands.Console` on a port
with pyserial's ``read(n)`` / ``write(b)`` (a UART or USB-gadget tty on the
board, a pseudo-terminal in ``ankle sim --console``).  It runs in the
supervisor's process, never in the tick's: a slow terminal delays only itself.
:class:`RuntimeBackend` connects a console to the running controller.
"""
from __future__ import annotations

import fcntl
import math
import os
import re
import select
import struct
import termios
import threading
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from controller.kernels._tick import STILL_GYRO_RAD_S, STILL_S, TELEMETRY_COLUMNS
from controller.kernels.telemetry import COLUMN as _COL
from controller.console.lineedit import LineEditor
from controller.params.registry import ParamError, ParamSet
from controller.symmetry.strides import StrideAnalyzer, StrideSymmetry

__all__ = ["ConsoleSession", "RuntimeBackend", "OfflineBackend", "GaitWatch", "FdPort", "open_console",
           "service_console"]

WATCH_PERIOD_S = 0.2           # the live line: about 5 times a second
AUTO_LOGOUT_S = 900.0          # a prosthetist idle this long is back to read-only (a laptop left open)
_CLEAR_TO_EOL = "\x1b[K"
_LINE_ENDS = re.compile(rb"(?<=[\r\n\x03])")     # split after CR, LF and Ctrl-C, keeping them


class GaitWatch:
    """A telemetry sink: the newest row, the stance share of the last whole stride, and the
    last :data:`HISTORY_ROWS` rows (``since``, for calibration)."""

    HISTORY_ROWS = 8192          # > 4 s at 2 kHz, the highest loop rate
    STRIDES_KEPT = 600           # gait-symmetry records of the last strides (about 11 min)

    def __init__(self, mass_kg: float = 80.0):
        self._row: Optional[np.ndarray] = None
        self._hs_s = self._to_s = math.nan
        self.stance_pct = math.nan
        self._lock = threading.Lock()
        self._history = np.full((self.HISTORY_ROWS, len(TELEMETRY_COLUMNS)), np.nan)
        self._written = 0
        self.moved_t = math.inf          # last row in which the wearer walked or the shank turned
        self.analyzer = StrideAnalyzer(mass_kg)
        self._strides: List[StrideSymmetry] = []

    def __call__(self, batch: np.ndarray) -> None:
        hs = np.flatnonzero(batch[:, _COL["heel_strike"]] == 1)
        to = np.flatnonzero(batch[:, _COL["toe_off"]] == 1)
        events = sorted([(batch[i, 0], "hs") for i in hs] + [(batch[i, 0], "to") for i in to])
        with self._lock:
            for t, kind in events:
                if kind == "to":
                    self._to_s = t
                else:
                    if self._hs_s < self._to_s < t:
                        self.stance_pct = 100.0 * (self._to_s - self._hs_s) / (t - self._hs_s)
                    self._hs_s = t
            if len(batch):
                self._row = batch[-1].copy()
                moving = np.flatnonzero((batch[:, _COL["walking"]] == 1)
                                        | ~(np.abs(batch[:, _COL["shank_gyro"]]) < STILL_GYRO_RAD_S))
                if len(moving) or self.moved_t == math.inf:
                    self.moved_t = batch[moving[-1] if len(moving) else 0, 0]
            done = self.analyzer.feed(batch)
            if done:
                self._strides = (self._strides + done)[-self.STRIDES_KEPT:]
            kept = batch[-self.HISTORY_ROWS:]
            self._history[(self._written + np.arange(len(kept))) % self.HISTORY_ROWS] = kept
            self._written += len(kept)

    def strides(self) -> List[StrideSymmetry]:
        """The symmetry records of the last strides, oldest first (a copy)."""
        with self._lock:
            return list(self._strides)

    def moving(self) -> bool:
        """Walking, or moved within ``STILL_S`` (the tick's own rule, seen from the telemetry);
        True before any telemetry."""
        with self._lock:
            if self._row is None:
                return True
            return bool(self._row[_COL["t"]] - self.moved_t < STILL_S)

    def since(self, t0_s: float) -> np.ndarray:
        """The kept rows with ``t`` after ``t0_s``, oldest first (a copy)."""
        with self._lock:
            n = min(self._written, self.HISTORY_ROWS)
            order = (np.arange(self._written - n, self._written)) % self.HISTORY_ROWS
            rows = self._history[order]
        return rows[rows[:, _COL["t"]] > t0_s]

    def latest(self) -> Optional[Dict[str, float]]:
        with self._lock:
            if self._row is None:
                return None
            row = dict(zip(TELEMETRY_COLUMNS, self._row.tolist()))
            row["stance_pct"] = self.stance_pct
            return row


class RuntimeBackend:
    """The console's view of a :class:`controller.runtime.process.Runtime` (see console.Backend).

    :meth:`params` is the set the tick itself reports it accepted (in force, or ramping in),
    read back from the shared block, never a set only sent: a snapshot the tick refused cannot
    stay in the console's view.  :meth:`send` publishes a set and waits for the tick to take it
    at a stride boundary: at most the longest stride (``estimator.max_stride_s``, after which
    the estimator no longer calls it walking and every tick is a boundary) and
    :data:`TAKE_MARGIN_S`.
    """

    running = True
    START_WAIT_S = 2.0    # how long a change waits for a controller that is still starting
    TAKE_MARGIN_S = 0.5
    POLL_S = 0.002

    def __init__(self, runtime, watch: GaitWatch):
        self.runtime = runtime
        self.watch = watch
        self._params: ParamSet = runtime.params
        self._pending: Optional[int] = None      # the generation sent and not yet taken (timed out)
        # params() and send() are called from the console's thread only (one set at a time, under
        # the console's lock); the symmetry adaptation publishes through the runtime on its own
        self._lock = threading.Lock()
        spec = runtime.spec
        self._t_max_Nm = spec.torque_limit_Nm()

    def check(self, params: ParamSet) -> None:
        """The tick would refuse an actuator torque its driver's MIT range cannot carry: say so here."""
        if params["actuator.max_torque_Nm"] > self._t_max_Nm:
            raise ParamError(f"actuator.max_torque_Nm = {params['actuator.max_torque_Nm']:g} N*m is beyond the "
                             f"drive's torque limit t_max = {self._t_max_Nm:g} N*m")

    def params(self) -> ParamSet:
        """The set the tick accepted last (in force, or ramping in)."""
        with self._lock:
            fresh = self.runtime.accepted()      # shared with the adaptation: never "changed since"
            if fresh is not self._params:
                self._params = fresh
                self.watch.analyzer.mass_kg = fresh["wearer.mass_kg"]
            return self._params

    def send(self, params: ParamSet) -> Tuple[str, str]:
        """Publish ``params`` and wait until the tick took it: ("accepted", ""), ("refused", why)
        or ("pending", why) when it did not take it in time (it may still: :meth:`params` will
        show it then, and until it has, further edits are refused)."""
        state = self.runtime.state
        start_by = time.monotonic() + self.START_WAIT_S
        while state == "starting" and time.monotonic() < start_by:
            time.sleep(self.POLL_S)       # the console is up before the driver is commissioned
            state = self.runtime.state
        if state != "running":
            return "refused", f"the controller is not running ({state})"
        if self._pending is not None:
            if self.runtime.params_outcome(self._pending) is None:
                return "refused", ("the controller has not yet taken the change sent before this one; "
                                   "'get NAME' shows the values in force")
            self._pending = None
        wait_s = self.params()["estimator.max_stride_s"] + self.TAKE_MARGIN_S
        generation = self.runtime.retune(params)
        end = time.monotonic() + wait_s
        outcome = self.runtime.params_outcome(generation)
        while outcome is None:
            state = self.runtime.state
            if state != "running":
                return "refused", f"the controller stopped ({state}) before it took the change"
            if time.monotonic() > end:
                self._pending = generation
                return "pending", (f"the controller has not taken it within {wait_s:g} s; it takes "
                                   f"changes at a stride boundary")
            time.sleep(self.POLL_S)
            outcome = self.runtime.params_outcome(generation)
        self.params()                     # the tick's own copy of what it now holds
        if outcome[0] == "superseded":    # another publisher's set reached the tick after it
            return "refused", "a later set reached the controller first"
        return outcome

    def strides(self):
        return self.watch.strides()

    def moving(self) -> bool:
        return self.watch.moving()

    def latest(self):
        return self.watch.latest()

    def stats(self):
        return self.runtime.stats()

    def request(self, name: str, arg: int = 0) -> str:
        return self.runtime.request(name, arg)

    def record(self, seconds: float) -> np.ndarray:
        """The telemetry of the next ``seconds`` (waits for it; fewer rows if the loop stalls)."""
        first = self.watch.latest()
        t0 = first["t"] if first else -math.inf
        end = time.monotonic() + seconds + 1.0
        while time.monotonic() < end:
            row = self.watch.latest()
            if row is not None and row["t"] >= t0 + seconds:
                break
            time.sleep(0.02)
        rows = self.watch.since(t0)
        return rows[rows[:, _COL["t"]] <= t0 + seconds]


class OfflineBackend:
    """No controller behind the console (``ankle console``, the service console): the parameter
    file and the profiles can be checked, edited and saved while the ankle is not running;
    requests, telemetry and calibration say that nothing runs."""

    running = False

    def __init__(self, params: ParamSet):
        self._params = params

    def params(self) -> ParamSet:
        return self._params

    def check(self, params: ParamSet) -> None:
        """No driver to ask: ``ankle run`` checks the driver's range when it starts."""

    def send(self, params: ParamSet) -> Tuple[str, str]:
        self._params = params
        return "accepted", ""

    def moving(self) -> bool:
        return False

    def latest(self):
        return None

    def strides(self):
        return []

    def stats(self):
        return {}

    def request(self, name: str, arg: int = 0) -> str:
        return "no controller is running (service console); nothing changed"

    def record(self, seconds: float) -> np.ndarray:
        return np.empty((0, len(TELEMETRY_COLUMNS)))


class FdPort:
    """pyserial's read/write on a file descriptor (the master side of a pseudo-terminal)."""

    def __init__(self, fd: int, timeout: float = 0.05):
        self.fd = fd
        self.timeout = timeout

    @property
    def in_waiting(self) -> int:
        """Bytes ready to read now (as pyserial's ``in_waiting``)."""
        try:
            return struct.unpack("i", fcntl.ioctl(self.fd, termios.FIONREAD, b"\0\0\0\0"))[0]
        except OSError:
            return 0

    def read(self, n: int) -> bytes:
        ready, _, _ = select.select([self.fd], [], [], self.timeout)
        if not ready:
            return b""
        try:
            return os.read(self.fd, n)
        except OSError:                  # the other side closed: nothing more to read now
            time.sleep(self.timeout)
            return b""

    def write(self, data: bytes) -> int:
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(self.fd, view):]
            except BlockingIOError:
                select.select([], [self.fd], [], self.timeout)
            except OSError:
                return 0                 # nobody attached: the output is dropped, not queued
        return len(data)


class ConsoleSession:
    """Runs a console on ``port`` until :meth:`stop`."""

    def __init__(self, port, console, banner: str = "", quit_allowed: bool = False):
        self.port = port
        self.console = console
        self.editor = LineEditor()
        self.banner = banner
        self.quit_allowed = quit_allowed       # `quit` ends the session (the service console only)
        self._halt = threading.Event()
        self.thread: Optional[threading.Thread] = None

    def _prompt(self) -> str:
        return "ankle# " if self.console.access.can_change else "ankle> "

    def _send(self, text: str) -> None:
        self.port.write(text.encode("utf-8", "replace"))

    def _watch(self) -> None:
        """The live line, refreshed in place until any key arrives."""
        self._send("watching; press any key to stop\r\n")
        while not self._halt.is_set():
            self._send("\r" + self.console.status_line() + _CLEAR_TO_EOL)
            end = time.monotonic() + WATCH_PERIOD_S
            while time.monotonic() < end:
                data = self.port.read(256)
                if data:
                    self._send("\r\n")
                    return
            if self._halt.is_set():
                return

    def serve(self) -> None:
        """The session loop (returns after :meth:`stop`)."""
        if self.banner:
            self._send(self.banner.replace("\n", "\r\n") + "\r\n")
        self._send(self._prompt())
        while not self._halt.is_set():
            data = self.port.read(256)
            if not data:
                continue
            # one line at a time: the echo of a line typed ahead (or pasted) must come after the
            # reply to the line before it, as on any terminal
            for segment in _LINE_ENDS.split(data):
                if segment and not self._take(segment):
                    return

    def _take(self, data: bytes) -> bool:
        """Feed ``data`` to the line editor, echo it and answer its lines; False after `quit`."""
        events = self.editor.feed(data)
        echo = self.editor.take_echo()
        if echo:
            self.port.write(echo)
        for event in events:
            if event.kind == "line":
                word = event.text.strip().lower()
                if word == "quit" and self.quit_allowed:
                    self._send("bye\r\n")
                    self._halt.set()
                    return False
                if word == "watch":
                    self._watch()
                else:
                    self._send(self.console.handle(event.text))
                self._send(self._prompt())
            elif event.kind == "error":
                self._send(event.text + "\r\n" + self._prompt())
            elif event.kind == "cancel":          # the editor echoed "^C" and the line end
                self._send(self._prompt())
        return True

    def start(self) -> "ConsoleSession":
        self.thread = threading.Thread(target=self.serve, name="console", daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self._halt.set()
        if self.thread is not None:
            self.thread.join(5)


def _console(backend, state_dir: Path, store: Path, logs, audit=None, adaptation=None):
    """(the console, its banner's lines about the PIN and the audit log).

    ``audit``: (the audit log, the note of opening it) when the caller opened it already (it
    shares it with the symmetry adaptation), else it is opened here.  A damaged audit log never
    stops start-up (the ankle must walk): it is moved aside and a new one started, and if no log
    can be written the console is read-only, and says why (every change needs its record first)."""
    from controller.console.access import Access, PinFile
    from controller.console.audit import open_or_replace
    from controller.console.commands import Console
    state_dir = Path(state_dir)
    pins = PinFile(state_dir / "pin")
    audit, note = audit if audit is not None else open_or_replace(state_dir / "audit.log")
    console = Console(backend, Access(pins, auto_logout_s=AUTO_LOGOUT_S), audit, Path(store),
                      state_dir / "profiles", logs=logs, adaptation=adaptation)
    lines = [f"audit log: {note}"] if note else []
    if audit.problem:
        lines.append(f"read-only: {audit.problem}; changes cannot be recorded, so none can be made")
    elif pins.problem:
        lines.append(f"read-only: {pins.problem}")
    return console, lines


def open_console(runtime, watch: GaitWatch, port, state_dir: Path, store: Path, *, logs=None,
                 banner: str = "ankle console", audit=None, adaptation=None) -> ConsoleSession:
    """Start the console for a running controller on ``port`` (pyserial's read/write).

    ``state_dir`` holds the PIN (``pin``, set with ``ankle pin set``), the audit log
    (``audit.log``) and the profiles (``profiles/``); ``store`` is the parameter file
    ``save`` writes; ``logs`` a :class:`controller.records.logger.LogSwitch` for ``log start|stop``.
    ``watch`` must be among the runtime's telemetry sinks.  Without a PIN the console is
    read-only, and says so.  ``audit``: (the audit log, the note of opening it), opened by the
    caller to share with ``adaptation`` (a :class:`controller.symmetry.adaptation.SymmetryAdaptation`
    running beside the console, whose note ``symmetry`` shows).
    """
    console, notes = _console(RuntimeBackend(runtime, watch), state_dir, store, logs, audit, adaptation)
    lines = [banner + "; 'help' lists the commands"] + notes
    return ConsoleSession(port, console, banner="\n".join(lines)).start()


def service_console(port, state_dir: Path, store: Path) -> ConsoleSession:
    """The console with no controller running (``ankle console``), on ``port``; not started
    (call :meth:`ConsoleSession.serve` or :meth:`ConsoleSession.start`).  It boots from ``store``
    as the controller would: a damaged file falls back to its backup or the defaults, and the
    banner says so."""
    from controller.params import store as paramstore
    loaded = paramstore.load(store)
    console, notes = _console(OfflineBackend(loaded.params), state_dir, store, None)
    lines = [f"ankle service console: no controller is running; parameters from {loaded.source} ({store})"]
    lines += [f"  {line}" for line in loaded.problems]
    lines += notes
    lines.append("'help' lists the commands; 'quit' ends")
    return ConsoleSession(port, console, banner="\n".join(lines), quit_allowed=True)
