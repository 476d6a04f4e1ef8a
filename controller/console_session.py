"""The console on a serial line: bytes in, line editing, replies out, and the live ``watch`` line.

:class:`ConsoleSession` runs one :class:`controller.console.Console` on a port
with pyserial's ``read(n)`` / ``write(b)`` (a UART or USB-gadget tty on the
board, a pseudo-terminal in ``ankle sim --console``).  It runs in the
supervisor's process, never in the tick's: a slow terminal delays only itself.
:class:`RuntimeBackend` connects a console to the running controller.
"""
from __future__ import annotations

import math
import os
import select
import threading
import time
from typing import Dict, Optional

import numpy as np

from controller._tick import TELEMETRY_COLUMNS
from controller.lineedit import LineEditor
from controller.params import ParamSet

__all__ = ["ConsoleSession", "RuntimeBackend", "GaitWatch", "FdPort"]

_COL = {c: i for i, c in enumerate(TELEMETRY_COLUMNS)}
WATCH_PERIOD_S = 0.2           # the live line: about 5 times a second
_CLEAR_TO_EOL = "\x1b[K"


class GaitWatch:
    """A telemetry sink: the newest row, and the stance share of the last whole stride."""

    def __init__(self):
        self._row: Optional[np.ndarray] = None
        self._hs_s = self._to_s = math.nan
        self.stance_pct = math.nan
        self._lock = threading.Lock()

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

    def latest(self) -> Optional[Dict[str, float]]:
        with self._lock:
            if self._row is None:
                return None
            row = dict(zip(TELEMETRY_COLUMNS, self._row.tolist()))
            row["stance_pct"] = self.stance_pct
            return row


class RuntimeBackend:
    """The console's view of a :class:`controller.runtime.Runtime` (see console.Backend)."""

    def __init__(self, runtime, watch: GaitWatch):
        self.runtime = runtime
        self.watch = watch
        self._params: ParamSet = runtime.params

    def params(self) -> ParamSet:
        return self._params

    def send(self, params: ParamSet) -> None:
        self.runtime.retune(params)
        self._params = params

    def walking(self) -> bool:
        row = self.watch.latest()
        return bool(row and row["walking"] == 1)

    def latest(self):
        return self.watch.latest()

    def stats(self):
        return self.runtime.stats()

    def request(self, name: str, arg: int = 0) -> str:
        return self.runtime.request(name, arg)


class FdPort:
    """pyserial's read/write on a file descriptor (the master side of a pseudo-terminal)."""

    def __init__(self, fd: int, timeout: float = 0.05):
        self.fd = fd
        self.timeout = timeout

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

    def __init__(self, port, console, banner: str = ""):
        self.port = port
        self.console = console
        self.editor = LineEditor()
        self.banner = banner
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
            events = self.editor.feed(data)
            echo = self.editor.take_echo()
            if echo:
                self.port.write(echo)
            for event in events:
                if event.kind == "line":
                    if event.text.strip().lower() == "watch":
                        self._watch()
                    else:
                        self._send(self.console.handle(event.text))
                    self._send(self._prompt())
                elif event.kind == "error":
                    self._send(event.text + "\r\n" + self._prompt())
                elif event.kind == "cancel":
                    self._send("^C\r\n" + self._prompt())

    def start(self) -> "ConsoleSession":
        self.thread = threading.Thread(target=self.serve, name="console", daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self._halt.set()
        if self.thread is not None:
            self.thread.join(5)
