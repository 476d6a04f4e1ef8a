"""Never fill the disk: the session record in parts, and a budget for the log directory.

:class:`RotatingSession` is the board's telemetry sink when ``[log] format = "mcap"``: one
session record (:class:`~controller.records.mcaplog.McapSessionLog`) that continues in a new
file, ``ankle-STAMP-part002.mcap``, ``-part003``, ... once the file in progress exceeds
``rotate_mb`` or has run ``rotate_min``.  Each part is a complete MCAP file with the session's
metadata (a viewer opens any one).  The old part is closed on a thread of its own, so the caller
never waits for it.

:class:`Retention` keeps the directory within ``budget_gb`` and the filesystem with at least
``reserve_mb`` free: it deletes whole sessions (every file ``ankle-STAMP*``: parts, CSV, BLF,
ASC), oldest first, never the one being written.  It warns once (``say`` and an ``/events``
message, kind "log") when the directory reaches :data:`WARN_SHARE` of the budget.  When even
that cannot keep the reserve free (the current session alone fills the disk), the session
stops recording and says so; the controller is never affected (as the CSV log's full disk:
:class:`controller.records.logger.LogSwitch`).
"""
from __future__ import annotations

import os
import re
import threading
import time
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from controller.records.mcaplog import McapSessionLog

__all__ = ["Retention", "RotatingSession", "WARN_SHARE", "session_key", "part_path"]

#: Share of the budget at which the directory is said to be nearly full.
WARN_SHARE = 0.9
#: How often (telemetry batches are ~10 ms) the budget and the free space are checked [s].
CHECK_PERIOD_S = 5.0
_SESSION = re.compile(r"^(ankle-.+?)(?:-part\d{3,})?\.(mcap|csv|blf|asc)$")


def session_key(name: str) -> Optional[str]:
    """The session a log file belongs to (``ankle-STAMP``), or None for a file that is no log."""
    m = _SESSION.match(name)
    return m.group(1) if m else None


def part_path(first: Path, part: int) -> Path:
    """The path of part ``part`` (1: ``first`` itself) of the session whose first file is ``first``."""
    return first if part == 1 else first.with_name(f"{first.stem}-part{part:03d}{first.suffix}")


class Retention:
    """The log directory's budget [bytes] and the filesystem's reserve [bytes] (see the module)."""

    def __init__(self, directory, budget_bytes: float, reserve_bytes: float,
                 say: Callable[[str], None] = lambda line: None):
        self.directory = Path(directory)
        self.budget_bytes = float(budget_bytes)
        self.reserve_bytes = float(reserve_bytes)
        self.say = say
        self.deleted: List[Path] = []
        self.warned = False

    def sessions(self) -> Dict[str, List[Tuple[Path, int, float]]]:
        """{session: [(file, size, mtime)]} of the directory's logs."""
        out: Dict[str, List[Tuple[Path, int, float]]] = {}
        try:
            entries = list(os.scandir(self.directory))
        except OSError:
            return out
        for e in entries:
            key = session_key(e.name)
            if key is None or not e.is_file(follow_symlinks=False):
                continue
            try:
                st = e.stat(follow_symlinks=False)
            except OSError:
                continue                          # deleted meanwhile
            out.setdefault(key, []).append((Path(e.path), st.st_size, st.st_mtime))
        return out

    def free_bytes(self) -> float:
        st = os.statvfs(self.directory)
        return float(st.f_bavail) * st.f_frsize

    def enforce(self, current: Sequence[str] = ()) -> Dict[str, object]:
        """Delete the oldest whole sessions (never those in ``current``) until the directory is
        within the budget and the reserve is free; returns {used, free, warn, short} (short: the
        reserve could not be kept even so)."""
        sessions = self.sessions()
        used = sum(size for files in sessions.values() for _, size, _ in files)
        free = self.free_bytes()
        # oldest first: by the newest file of each session (a session's name is its start)
        order = sorted((k for k in sessions if k not in current),
                       key=lambda k: (max(m for _, _, m in sessions[k]), k))
        for key in order:
            if used <= self.budget_bytes and free >= self.reserve_bytes:
                break
            for path, size, _ in sessions[key]:
                try:
                    path.unlink()
                except FileNotFoundError:
                    continue
                except OSError as e:
                    self.say(f"log: cannot delete the old session file {path} ({e.strerror or e})")
                    continue
                used -= size
                free += size
                self.deleted.append(path)
            self.say(f"log: deleted the oldest session {key} (log budget {self.budget_bytes / 1e9:g} GB, "
                     f"reserve {self.reserve_bytes / 1e6:g} MB free)")
        warn = used >= WARN_SHARE * self.budget_bytes
        return {"used": used, "free": free, "warn": warn, "short": free < self.reserve_bytes}


class RotatingSession:
    """The session record in parts, within the budget (see the module docstring).

    The sink interface of :class:`McapSessionLog` (``write``, ``sync``, ``close``, ``can_frame``,
    ``audit``, ``stride``, ``event``), for the part in progress.  ``first``: the first part's path
    (``DIR/ankle-STAMP.mcap``); ``retention``: a :class:`Retention` (None: neither budget nor
    reserve); ``say``: the status line.  A write error (a full disk) or a reserve that cannot be
    kept stops the recording (said once, kept in :attr:`error`); :meth:`write` never raises then.
    """

    def __init__(self, first, columns: Sequence[str], *, metadata: Optional[Mapping] = None,
                 rotate_bytes: float = float("inf"), rotate_s: float = float("inf"),
                 retention: Optional[Retention] = None, say: Callable[[str], None] = lambda line: None,
                 clock: Callable[[], float] = time.monotonic, **log_options):
        self.first = Path(first)
        self.key = session_key(self.first.name) or self.first.stem
        self.columns = tuple(columns)
        self.metadata = dict(metadata or {})
        self.rotate_bytes, self.rotate_s = float(rotate_bytes), float(rotate_s)
        self.retention = retention
        self.say = say
        self._clock = clock
        self._options = log_options
        self.error: Optional[str] = None
        self.parts: List[Path] = []
        self.rows_written = 0
        self._lock = threading.Lock()
        self._closing: List[threading.Thread] = []
        self._t_s = 0.0                      # the newest row's time (events of the record's own)
        self._checked_at = -float("inf")
        self.settings = {"rotate_bytes": self.rotate_bytes, "rotate_s": self.rotate_s,
                         "budget_bytes": retention.budget_bytes if retention else None,
                         "reserve_bytes": retention.reserve_bytes if retention else None}
        self.log: Optional[McapSessionLog] = None
        if retention is not None:
            state = retention.enforce(current=[self.key])
            if state["short"]:
                raise OSError(f"{self.first.parent}: less than the reserve of {retention.reserve_bytes / 1e6:g} MB "
                              f"free even with every older session deleted; not recording")
        self._open(1)

    @property
    def path(self) -> Path:
        """The part in progress."""
        return self.parts[-1]

    def _open(self, part: int) -> None:
        path = part_path(self.first, part)
        meta = dict(self.metadata)
        meta["part"] = {"part": str(part), "session": self.key, "first": self.first.name}
        self.log = McapSessionLog(path, self.columns, metadata=meta, **self._options)
        self.parts.append(path)
        self._opened_at = self._clock()

    def _stop(self, why: str) -> None:
        """Stop recording (under the lock): said once; the controller goes on."""
        if self.error is None:
            self.error = why
            self.say(f"log: {why}; the session record stopped, the controller runs on")
        log, self.log = self.log, None
        if log is not None:
            try:
                log.event(self._t_s, "log", "stopped", why)
                log.close()
            except OSError:
                pass                         # the disk is what failed: the file ends at its last whole chunk

    def write(self, rows: np.ndarray) -> None:
        """A telemetry batch (the columns' order); rotates and checks the budget when due."""
        with self._lock:
            if self.log is None:
                return
            if len(rows):
                self._t_s = float(rows[-1][self.columns.index("t")]) if "t" in self.columns else self._t_s
            try:
                self.log.write(rows)
            except OSError as e:
                self._stop(f"{self.log.path}: {e.strerror or e}")
                return
            self.rows_written += len(rows)
            now = self._clock()
            if now - self._checked_at >= CHECK_PERIOD_S:
                self._checked_at = now
                self._check()
            if self.log is not None and (self.log.size_bytes >= self.rotate_bytes
                                         or now - self._opened_at >= self.rotate_s):
                self._rotate()

    __call__ = write

    def _check(self) -> None:
        if self.retention is None:
            return
        try:
            state = self.retention.enforce(current=[self.key])
        except OSError as e:
            self.say(f"log: cannot check the log directory ({e.strerror or e})")
            return
        if state["warn"] and not self.retention.warned:
            self.retention.warned = True
            text = (f"the log directory holds {state['used'] / 1e9:.2f} GB of its {self.retention.budget_bytes / 1e9:g} GB "
                    f"budget: the oldest sessions are deleted from now on")
            self.say(f"log: warning: {text}")
            self.log.event(self._t_s, "log", "budget", text)
        if state["short"]:
            self._stop(f"{self.retention.directory}: less than the reserve of "
                       f"{self.retention.reserve_bytes / 1e6:g} MB free, with no older session left to delete")

    def _rotate(self) -> None:
        old = self.log
        try:
            self._open(len(self.parts) + 1)
        except OSError as e:
            self._stop(f"{part_path(self.first, len(self.parts) + 1)}: {e.strerror or e}")
            if old is not None:
                self.log = None
                self._close_later(old)
            return
        old.event(self._t_s, "log", "part", f"continued in {self.path.name}")
        self.log.event(self._t_s, "log", "part", f"part {len(self.parts)} of the session, after {old.path.name}")
        self.say(f"log: {self.path} (part {len(self.parts)})")
        self._close_later(old)
        self._check()

    def _close_later(self, log: McapSessionLog) -> None:
        def close():
            try:
                log.close()
            except OSError as e:
                self.say(f"log: {log.path}: {e.strerror or e} while closing it")
        t = threading.Thread(target=close, name=f"close-{log.path.name}", daemon=True)
        t.start()
        self._closing.append(t)

    # the other channels go to the part in progress
    def can_frame(self, msg, rx: bool = True, *, t_s: Optional[float] = None) -> None:
        log = self.log
        if log is not None:
            log.can_frame(msg, rx, t_s=t_s)

    def audit(self, record) -> None:
        log = self.log
        if log is not None:
            log.audit(record)

    def stride(self, t: float, fields) -> None:
        log = self.log
        if log is not None:
            log.stride(t, fields)

    def event(self, t: float, kind: str, name: str, text: str) -> None:
        log = self.log
        if log is not None:
            log.event(t, kind, name, text)

    def sync(self) -> None:
        with self._lock:
            if self.log is not None:
                try:
                    self.log.sync()
                except OSError as e:
                    self._stop(f"{self.log.path}: {e.strerror or e}")

    def close(self) -> None:
        """Close the part in progress (and wait for parts still closing); idempotent; never raises
        for a full disk (said instead)."""
        with self._lock:
            log, self.log = self.log, None
            if log is not None:
                try:
                    log.close()
                except OSError as e:
                    self.say(f"log: {log.path}: {e.strerror or e} while closing it")
        for t in self._closing:
            t.join()
        self._closing.clear()

    def __enter__(self) -> "RotatingSession":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
