"""The console on a serial line: bytes in, line editing, replies out, and the live ``watch`` line.

:class:`ConsoleSession` runs one :class:`controller.console.commands.Console` on a port
with pyserial's ``read(n)`` / ``write(b)`` (a UART or USB-gadget tty on the
board, a pseudo-terminal in ``ankle sim --console``).  It runs in the
supervisor's process, never in the tick's: a slow terminal delays only itself.
:class:`RuntimeBackend` connects a console to the running controller.
"""
from __future__ import annotations

import collections
import fcntl
import math
import os
import re
import select
import struct
import termios
import textwrap
import threading
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from controller.kernels._tick import STILL_GYRO_RAD_S, STILL_S, TELEMETRY_COLUMNS
from controller.kernels.telemetry import COLUMN as _COL
from controller.console.lineedit import LineEditor, _cells
from controller.params.registry import ParamError, ParamSet
from controller.symmetry.strides import StrideAnalyzer, StrideSymmetry

__all__ = ["ConsoleSession", "RuntimeBackend", "OfflineBackend", "GaitWatch", "FdPort", "open_console",
           "service_console"]

WATCH_PERIOD_S = 0.2           # the live line: about 5 times a second
AUTO_LOGOUT_S = 900.0          # a prosthetist idle this long is back to read-only (a laptop left open)
#: The console's own lines (banner, prompt, `watch`, announcements) stay within this many columns:
#: an 80-column terminal, never its last column (where terminals disagree about wrapping).
WIDTH = 79
#: Input after this long a silence redraws the prompt first: a terminal that attached meanwhile
#: (a UART cannot tell) shows it on its first key.  On a terminal that had it, the redraw (CR,
#: prompt, line) changes nothing on screen.
REDRAW_AFTER_S = 5.0
#: After a terminal attaches to a pty, the banner waits this long: a terminal program flushes its
#: input just after it opens the tty (pyserial does), which would drop a banner sent at once.
ATTACH_SETTLE_S = 0.25
ANNOUNCE_QUEUE = 32            # announcements waiting for the console (the oldest dropped beyond)
ANNOUNCE_MAX_CHARS = 1000      # of one announcement; the rest is dropped
_TIOCGPTN = 0x80045430         # Linux: succeeds on a pty's master only
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
            raise ParamError(f"actuator.max_torque_Nm = {params['actuator.max_torque_Nm']:g} N·m is beyond the "
                             f"drive's torque limit t_max = {self._t_max_Nm:g} N·m")

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


def _fit(text: str, width: int = WIDTH) -> List[str]:
    """``text`` as terminal rows of at most ``width`` cells, control characters dropped (nothing
    sent may be an escape sequence); a line break in ``text`` starts a row."""
    rows: List[str] = []
    for part in text.split("\n"):
        part = "".join(ch if ch.isprintable() else " " if ch == "\t" else "" for ch in part)
        if sum(_cells(ch) for ch in part) <= width:
            rows.append(part)
            continue
        for row in textwrap.wrap(part, width, break_on_hyphens=False) or [""]:
            while sum(_cells(ch) for ch in row) > width:     # wide characters: wrap by cells
                cut, used = 0, 0
                while used + _cells(row[cut]) <= width:
                    used += _cells(row[cut])
                    cut += 1
                rows.append(row[:cut])
                row = row[cut:]
            rows.append(row)
    return rows


def _clip(text: str, width: int = WIDTH) -> str:
    """One row of at most ``width`` cells: ``text`` (control characters dropped), ending in "..."
    when it was cut."""
    text = "".join(ch for ch in text if ch.isprintable())
    if sum(_cells(ch) for ch in text) <= width:
        return text
    out, used = [], 0
    for ch in text:
        if used + _cells(ch) > width - 3:
            break
        out.append(ch)
        used += _cells(ch)
    return "".join(out) + "..."


class FdPort:
    """pyserial's read/write on a file descriptor (the master side of a pseudo-terminal).

    On a pty's master (the device end of ``ankle sim --console``'s simulated serial line) it
    also tells whether a terminal is attached (:attr:`attached`), drops output while none is (a
    terminal attaching later gets the banner and prompt, not stale lines; nothing blocks on a
    full queue nobody reads), and keeps the line discipline raw: a terminal that attaches in
    cooked mode (a shell's tty, `stty sane`) would otherwise echo the console's own output back
    to it as typing and hold its prompt until a line end."""

    def __init__(self, fd: int, timeout: float = 0.05):
        self.fd = fd
        self.timeout = timeout
        try:
            fcntl.ioctl(fd, _TIOCGPTN, b"\0\0\0\0")
            self.pty_master = True
        except OSError:
            self.pty_master = False
        if self.pty_master:
            # a master with no terminal is always "readable" (hang-up); one attaching between the
            # select and the read would leave a blocking read waiting for its first key
            os.set_blocking(fd, False)

    @property
    def attached(self) -> bool:
        """A terminal has the other end open (always True but on a pty's master)."""
        if not self.pty_master:
            return True
        poller = select.poll()
        poller.register(self.fd, select.POLLHUP)
        try:
            return not any(ev & select.POLLHUP for _, ev in poller.poll(0))
        except OSError:
            return False

    def keep_raw(self) -> None:
        """On a pty's master: make the terminal's line discipline pass bytes as they are (no echo,
        no canonical lines, no CR/NL mapping, no signal characters), if a terminal changed it.
        The terminal's output processing (its Enter as CR LF) is left alone: the console takes
        any line end."""
        if not self.pty_master:
            return
        try:
            attrs = termios.tcgetattr(self.fd)
        except termios.error:
            return
        iflag, lflag = attrs[0], attrs[3]
        in_bits = (termios.BRKINT | termios.ICRNL | termios.INLCR | termios.IGNCR | termios.ISTRIP
                   | termios.IXON | termios.INPCK | termios.PARMRK)
        l_bits = termios.ECHO | termios.ECHONL | termios.ICANON | termios.ISIG | termios.IEXTEN
        if not (iflag & in_bits or lflag & l_bits):
            return
        attrs[0] = iflag & ~in_bits
        attrs[3] = lflag & ~l_bits
        attrs[6] = list(attrs[6])
        attrs[6][termios.VMIN], attrs[6][termios.VTIME] = 1, 0
        try:
            termios.tcsetattr(self.fd, termios.TCSANOW, attrs)      # not TCSAFLUSH: keep what is queued
        except termios.error:           # the terminal closed between the two calls: nothing to keep raw
            pass

    @property
    def in_waiting(self) -> int:
        """Bytes ready to read now (as pyserial's ``in_waiting``)."""
        try:
            return struct.unpack("i", fcntl.ioctl(self.fd, termios.FIONREAD, b"\0\0\0\0"))[0]
        except OSError:
            return 0

    def drain(self, timeout_s: float = 1.0) -> None:
        """On a pty's master: wait (``timeout_s`` at most) until the terminal has read what was
        sent, e.g. a last announcement before the master is closed (closing it hangs the terminal
        up, and the kernel drops what it had not yet read)."""
        if not self.pty_master or not self.attached:
            return
        try:
            number = struct.unpack("I", fcntl.ioctl(self.fd, _TIOCGPTN, b"\0\0\0\0"))[0]
            slave = os.open(f"/dev/pts/{number}", os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        except OSError:
            return
        try:
            end = time.monotonic() + timeout_s
            while time.monotonic() < end:
                waiting = struct.unpack("i", fcntl.ioctl(slave, termios.FIONREAD, b"\0\0\0\0"))[0]
                if not waiting:
                    return
                time.sleep(0.01)
        except OSError:
            return
        finally:
            os.close(slave)

    def read(self, n: int) -> bytes:
        self.keep_raw()
        ready, _, _ = select.select([self.fd], [], [], self.timeout)
        if not ready:
            return b""
        try:
            return os.read(self.fd, n)
        except BlockingIOError:          # a hang-up that ended (a terminal attached): nothing yet
            return b""
        except OSError:                  # the other side closed: nothing more to read now
            time.sleep(self.timeout)
            return b""

    def write(self, data: bytes) -> int:
        if self.pty_master:
            if not self.attached:
                return len(data)         # nobody to see it: dropped, never queued for a later terminal
            self.keep_raw()
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
    """Runs a console on ``port`` until :meth:`stop`.

    The screen: the banner and a prompt when the session starts with a terminal attached, when a
    terminal attaches to a pty (``port.attached``), and a redraw of the prompt on the first key of
    any kind after :data:`REDRAW_AFTER_S` of silence (or the first key ever); the live ``watch``
    line refreshed with CR and spaces only; :meth:`announce` for lines from other threads.  Every
    line of its own fits :data:`WIDTH` columns.  Only the session's thread writes to the port.
    """

    def __init__(self, port, console, banner: str = "", quit_allowed: bool = False):
        self.port = port
        self.console = console
        self.editor = LineEditor()
        self.banner = banner
        self.quit_allowed = quit_allowed       # `quit` ends the session (the service console only)
        self._halt = threading.Event()
        self.thread: Optional[threading.Thread] = None
        self._notes: "collections.deque[str]" = collections.deque(maxlen=ANNOUNCE_QUEUE)
        self._watch_cells = 0                  # cells of the live line on screen during `watch`
        self._fresh = True                     # the terminal may not show the prompt: redraw on a key
        self._last_input = -math.inf
        self._seen_attached = False
        self._redraw = ""                      # prompt and line to send before the next echo

    @property
    def attached(self) -> bool:
        """Whether the session last saw a terminal attached (on a pty; a UART always is)."""
        return self._seen_attached

    # --- public ---------------------------------------------------------------------------

    def announce(self, text: str) -> None:
        """Show ``text`` on the console as soon as it can be: above the line being typed (which is
        then redrawn, prompt and partial line, so typing carries on), above the live ``watch``
        line, or, while a command runs, before its next prompt; also when :meth:`stop` ends the
        session.  Thread-safe, never blocks and never raises for any text: control characters
        are dropped, rows wrapped to :data:`WIDTH` columns, at most :data:`ANNOUNCE_MAX_CHARS`
        characters kept and :data:`ANNOUNCE_QUEUE` announcements waiting (the oldest dropped).
        With no terminal attached to a pty, it is not shown (nobody would see it)."""
        self._notes.append(str(text)[:ANNOUNCE_MAX_CHARS])

    def start(self) -> "ConsoleSession":
        self.thread = threading.Thread(target=self.serve, name="console", daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        """End the session (what was announced before is still shown) and wait for it (5 s at most)."""
        self._halt.set()
        if self.thread is not None:
            self.thread.join(5)

    # --- output ---------------------------------------------------------------------------

    def _prompt(self) -> str:
        return self.console.prompt()

    def _send(self, text: str) -> None:
        self.port.write(text.encode("utf-8", "replace"))

    def _attached(self) -> bool:
        return bool(getattr(self.port, "attached", True))

    def _row(self) -> str:
        """The prompt and the line typed so far, as the terminal shows it."""
        return self._prompt() + self.editor.shown

    def _hello(self) -> None:
        """The banner and the prompt (with anything typed ahead)."""
        if self.banner:
            self._send("".join(row + "\r\n" for line in self.banner.split("\n") for row in _fit(line)))
        self._show_prompt()

    def _show_prompt(self) -> None:
        """At the start of an empty row: what was announced meanwhile, then the prompt."""
        self._announce_over(0)
        self._send(self._row())

    def _announce_over(self, row_cells: int) -> bool:
        """Print waiting announcements over the current row (``row_cells`` cells of it, erased with
        spaces, or below it if it wrapped); True if there were any (the row is then empty)."""
        rows: List[str] = []
        while self._notes:
            rows += _fit(self._notes.popleft())
        if not rows:
            return False
        if not self._attached():
            return False
        first = "\r" if row_cells <= WIDTH else "\r\n"      # a wrapped row cannot be covered
        pad = max(0, min(row_cells, WIDTH) - sum(_cells(ch) for ch in rows[0]))
        self._send(first + rows[0] + " " * pad + "\r\n" + "".join(r + "\r\n" for r in rows[1:]))
        return True

    def _notes_at_prompt(self) -> None:
        """Announcements while the prompt is waiting: above it, then the prompt and line again."""
        if self._notes and self._announce_over(len(self._prompt()) + self.editor.shown_cells):
            self._send(self._row())

    # --- the session ----------------------------------------------------------------------

    def _watch(self) -> None:
        """The live line, refreshed in place until any key arrives: a CR, the line, and spaces
        over what is left of a longer line before it (no erase sequence: miniterm prints those
        raw), within :data:`WIDTH` columns."""
        self._send("watching; press any key to stop\r\n")
        self._watch_cells = 0
        while not self._halt.is_set() and self._attached():
            if self._announce_over(self._watch_cells):
                self._watch_cells = 0
            line = _clip(self.console.status_line())
            cells = sum(_cells(ch) for ch in line)
            self._send("\r" + line + " " * max(0, self._watch_cells - cells))
            self._watch_cells = cells
            end = time.monotonic() + WATCH_PERIOD_S
            while time.monotonic() < end:
                data = self.port.read(256)
                if data:
                    self._last_input = time.monotonic()
                    self._send("\r\n")
                    return
                if self._notes or self._halt.is_set():
                    break
        self._send("\r\n")

    def serve(self) -> None:
        """The session loop (returns after :meth:`stop`, once what was announced is shown)."""
        attached = self._seen_attached = self._attached()
        hello_at: Optional[float] = None
        if attached and hasattr(self.port, "attached"):     # a pty: it may be a terminal opening now
            hello_at = time.monotonic() + ATTACH_SETTLE_S
        elif attached:
            self._hello()
        while not self._halt.is_set():
            now_attached = self._attached()
            if now_attached != attached:
                attached = self._seen_attached = now_attached
                if attached:                      # a terminal came: greet it once it has settled
                    hello_at = time.monotonic() + ATTACH_SETTLE_S
                else:                             # it went: its half-typed line (a PIN?) goes too,
                    hello_at = None               # the rights of a PIN it logged in with, and the
                    self.editor.reset()           # lines it typed (the next person recalls none)
                    self.editor.forget_history()
                    self.console.detached()
            if hello_at is not None and time.monotonic() >= hello_at:
                hello_at = None
                self._hello()
                self._fresh = True
            self._notes_at_prompt()
            data = self.port.read(256)
            if not data:
                continue
            if hello_at is not None:              # it typed before the greeting: greet it first
                hello_at = None
                self._hello()
                self._fresh = True
            now = time.monotonic()
            redraw = self._fresh or now - self._last_input >= REDRAW_AFTER_S
            self._fresh = False
            self._last_input = now
            # an Enter on an empty line prompts anyway: no redraw before it (one prompt, not two)
            if redraw and not (data[:1] in (b"\r", b"\n") and not self.editor.partial):
                self._redraw = "\r" + self._row()
            # one line at a time: the echo of a line typed ahead (or pasted) must come after the
            # reply to the line before it, as on any terminal
            for segment in _LINE_ENDS.split(data):
                if segment and not self._take(segment):
                    return
        self._announce_over(len(self._prompt()) + self.editor.shown_cells)

    def _take(self, data: bytes) -> bool:
        """Feed ``data`` to the line editor, echo it and answer its lines; False after `quit`."""
        redraw, self._redraw = self._redraw, ""
        events = self.editor.feed(data)
        echo = redraw.encode("utf-8") + self.editor.take_echo()     # one write: prompt and key together
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
                self._show_prompt()
            elif event.kind == "error":
                self._send(event.text + "\r\n")
                self._show_prompt()
            elif event.kind == "cancel":          # the editor echoed "^C" and the line end
                self._show_prompt()
        return True


#: Before a session's ``--duration`` ends it, the console says how long is left [s].
TIME_WARNINGS_S = (60.0, 10.0)


def time_warnings(duration_s: float, what: str) -> List[Tuple[float, str]]:
    """[(seconds after the start, the announcement)] for ``what`` (the simulated session, the
    controller) ending after ``duration_s``: one for each of :data:`TIME_WARNINGS_S` that comes
    after the start."""
    return [(duration_s - left, f"{what} ends in {left:g} s (--duration {duration_s:g} s); 'save' keeps changes")
            for left in TIME_WARNINGS_S if left < duration_s]


def _console(backend, state_dir: Path, store: Path, logs, audit=None, adaptation=None, extra=None):
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
                      state_dir / "profiles", logs=logs, adaptation=adaptation, extra=extra)
    lines = [f"audit log: {note}"] if note else []
    if audit.problem:
        lines.append(f"read-only: {audit.problem}; changes cannot be recorded, so none can be made")
    elif pins.problem:
        lines.append(f"read-only: {pins.problem}")
    return console, lines


def open_console(runtime, watch: GaitWatch, port, state_dir: Path, store: Path, *, logs=None,
                 banner: str = "ankle console", audit=None, adaptation=None, extra=None) -> ConsoleSession:
    """Start the console for a running controller on ``port`` (pyserial's read/write).

    ``state_dir`` holds the PIN (``pin``, set with ``ankle pin set``), the audit log
    (``audit.log``) and the profiles (``profiles/``); ``store`` is the parameter file
    ``save`` writes; ``logs`` a :class:`controller.records.logger.LogSwitch` for ``log start|stop``.
    ``watch`` must be among the runtime's telemetry sinks.  Without a PIN the console is
    read-only, and says so.  ``audit``: (the audit log, the note of opening it), opened by the
    caller to share with ``adaptation`` (a :class:`controller.symmetry.adaptation.SymmetryAdaptation`
    running beside the console, whose note ``symmetry`` shows).  ``extra``: commands of the
    caller's own (see :class:`controller.console.commands.Console`), e.g. the simulator's ``wearer``.
    """
    console, notes = _console(RuntimeBackend(runtime, watch), state_dir, store, logs, audit, adaptation,
                              extra)
    lines = [banner + "; 'help' lists the commands"] + notes
    session = ConsoleSession(port, console, banner="\n".join(lines))
    if adaptation is not None:          # it says on the console when it switched itself off, and why
        adaptation.announce = session.announce
    return session.start()


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
