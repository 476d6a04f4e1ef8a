"""The console's audit log: one line per change, appended, never rewritten.

Format: UTF-8 text, one record per line, columns separated by a TAB, and a header line written
when the file is created (shown here with the tabs as wide gaps)::

    time_utc                  role         action  parameter             old  new  detail
    2024-05-01T09:14:03.250Z  prosthetist  set     pushoff.torque_Nm_kg  0.9  1.1

``time_utc`` is ISO-8601 UTC with milliseconds.  Values are escaped so that no value can break a
line or shift a column: backslash as ``\\\\``, tab ``\\t``, newline ``\\n``, CR ``\\r``, other
control characters ``\\xHH``, and the Unicode line separators and lone surrogates ``\\uHHHH``;
everything else (any language, any symbol) is written as it is.  :func:`read` undoes the escapes
exactly.  A line of spaces is padding (below) and holds no record.

Each record is one ``os.write`` on an ``O_APPEND`` descriptor followed by ``os.fsync``: a tuning
change is rare and losing one is not acceptable, so a record is on the disk before
:meth:`AuditLog.record` returns.  A record of up to 4 KiB never crosses a 4 KiB boundary of the
file (a line of spaces fills up to it first), so a process killed at any moment leaves whole lines
only.  A power cut can still leave a torn last line: :func:`read` skips it (and says so), and the
next :class:`AuditLog` ends it with a newline before appending, so it never merges with a record.

A file that is not an audit log (a torn header, garbage, a directory in its place) is never
written to.  :func:`open_or_replace`, which the console uses, moves it aside unchanged, to
``audit.log.damaged-<UTC time>`` (``-2``, ``-3``, ... if taken; never over anything), and starts a
new log, so a damaged log never stops the ankle; when no log can be written at all it gives an
:class:`UnusableLog` whose every record is refused, so nothing can be changed unrecorded.
"""
from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import re
import stat
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

from controller.records.csvlog import fsync_directory

__all__ = ["AuditLog", "AuditError", "NotAnAuditLog", "UnusableLog", "SharedAuditLog", "open_or_replace", "FIELDS",
           "HEADER_LINE", "read", "escape", "unescape"]

#: The columns, in order.
FIELDS = ("time_utc", "role", "action", "parameter", "old", "new", "detail")
#: The first line of every audit log.
HEADER_LINE = "\t".join(FIELDS) + "\n"

_HEADER = HEADER_LINE.encode("ascii")
# What a value may not contain as itself: the escape character, every C0/C1 control (tab and
# newline among them), DEL, the characters str.splitlines() also breaks at (U+2028/9, and
# U+001C-1E and U+0085 which are controls anyway), and lone surrogates (not encodable as UTF-8).
_UNSAFE = re.compile("[\\\\\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_NAMED = {"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"}
_ESCAPE_SEQ = re.compile(r"\\(?:([\\tnr])|x([0-9a-f]{2})|u([0-9a-f]{4}))|\\")
_UNNAMED = {"\\": "\\", "t": "\t", "n": "\n", "r": "\r"}
# Raw characters a well-formed line never holds (tab is the separator, so it is allowed here).
_RAW_BAD = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")
# Records are kept inside aligned blocks of this size [bytes]: the smallest page size.
_BLOCK = 4096
_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z")

PathLike = Union[str, "os.PathLike[str]"]


class AuditError(OSError):
    """The audit log cannot be used; the message names the file and says why.

    An ``OSError``, so a caller that already handles a full or read-only disk handles this too.

    Examples: ``audit.tsv: not an audit log (its first line is not the header ...)`` when opening a
    file that is something else; ``audit.tsv: could not write the record (No space left on
    device)``.  A change whose record raised this was not recorded, so it must not be made.
    """


class NotAnAuditLog(AuditError):
    """The file exists but is not an audit log (its first line is not the header), or cannot be
    opened at all; nothing was written to it.  :func:`open_or_replace` moves it aside."""


def escape(value: str) -> str:
    """``value`` as it is stored in one column: nothing in it can end the line or the column."""
    return _UNSAFE.sub(_escape_one, value)


def _escape_one(m: "re.Match[str]") -> str:
    c = m.group()
    named = _NAMED.get(c)
    if named is not None:
        return named
    code = ord(c)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def unescape(text: str) -> str:
    """The value stored as ``text`` (the inverse of :func:`escape`); ``ValueError`` for a
    backslash that starts no escape."""
    return _ESCAPE_SEQ.sub(_unescape_one, text)


def _unescape_one(m: "re.Match[str]") -> str:
    if m.group(1) is not None:
        return _UNNAMED[m.group(1)]
    hex_digits = m.group(2) or m.group(3)
    if hex_digits is None:
        raise ValueError(f"a backslash that starts no escape at {m.string[m.start():m.start() + 6]!r}")
    return chr(int(hex_digits, 16))


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else str(value)


def _utc_stamp(t: float) -> str:
    dt = datetime.fromtimestamp(t, timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


class AuditLog:
    """An open audit log: :meth:`record` appends one durable line.

    Opening a missing file creates it with the header; opening an existing log appends to it (it
    is never truncated or rewritten).  A file that does not start with the header is refused with
    :class:`AuditError`, so nothing is ever appended to a file that is something else.
    ``clock`` [s since the epoch] is injected for tests.  Use as a context manager or call
    :meth:`close`.
    """

    def __init__(self, path: PathLike, *, clock: Callable[[], float] = time.time):
        self.path = Path(path)
        self._clock = clock
        # one log is shared by the console's thread and the symmetry adaptation's (the telemetry's):
        # a record's block padding and torn-line check must not interleave with another's
        self._lock = threading.Lock()
        try:
            self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as e:
            # something there that cannot be opened (a directory, a symlink loop) is damage; a
            # missing directory or a read-only disk is not
            kind = NotAnAuditLog if os.path.lexists(self.path) else AuditError
            raise kind(f"{self.path}: cannot open the audit log ({e.strerror or e})") from e
        try:
            # Serialise the header check with any other process opening the same log, so two
            # first openers cannot both write a header.
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                self._torn = self._check_or_create()
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        except BaseException:
            os.close(self._fd)
            self._fd = -1
            raise

    def _check_or_create(self) -> bool:
        """Write the header into an empty file, or check an existing one's; return whether the
        file's last line is unterminated (a torn write to be ended before the next record)."""
        size = os.fstat(self._fd).st_size
        if size == 0:
            try:
                self._write_all(_HEADER)
                os.fsync(self._fd)
            except OSError as e:
                raise AuditError(f"{self.path}: cannot write the header ({e.strerror or e})") from e
            fsync_directory(self.path.parent if str(self.path.parent) else Path("."))
            return False
        head = os.pread(self._fd, len(_HEADER), 0)
        if head != _HEADER:
            raise NotAnAuditLog(f"{self.path}: not an audit log (its first line is not the header "
                                f"{HEADER_LINE.strip()!r}); nothing was written to it")
        return os.pread(self._fd, 1, size - 1) != b"\n"

    def _write_all(self, data: bytes) -> None:
        # One os.write: O_APPEND puts it at the end in one piece, so concurrent writers cannot
        # interleave (and, inside one 4 KiB block, a kill cannot split it: see record).  A short
        # write (disk full) is continued so a line is not left half done when the rest fits; if
        # it is, _torn makes the next record start on a new line.
        view = memoryview(data)
        written = 0
        try:
            while written < len(data):
                written += os.write(self._fd, view[written:])
        finally:
            if written:
                self._torn = data[written - 1] != 0x0A

    #: Why no record can be written (None: records can be; see :class:`UnusableLog`).
    problem: Optional[str] = None
    #: Called with each record (a dict, as :meth:`record` returns it) once it is durable: the open
    #: session record's /audit channel (:class:`SharedAuditLog` shares its list).  Never raises.
    mirrors: List[Callable[[Dict[str, str]], None]] = ()

    @property
    def closed(self) -> bool:
        """True after :meth:`close`."""
        return self._fd < 0

    def record(self, role: str, action: str, parameter: Any = "", old: Any = "", new: Any = "",
               detail: Any = "") -> Dict[str, str]:
        """Append one record and fsync it; return it as :func:`read` will give it back.

        ``role`` and ``action`` must not be empty (e.g. ``"prosthetist"``, ``"set"``); values
        that are not text are written with ``str`` (``None`` as empty).  Raises
        :class:`AuditError` if the record could not be written and synced: then the change it
        describes must not be made.
        """
        if self._fd < 0:
            raise AuditError(f"{self.path}: the audit log is closed")
        values = {"time_utc": _utc_stamp(self._clock()), "role": _text(role), "action": _text(action),
                  "parameter": _text(parameter), "old": _text(old), "new": _text(new),
                  "detail": _text(detail)}
        if not values["role"] or not values["action"]:
            raise ValueError("an audit record needs a role and an action")
        line = "\t".join(escape(values[f]) for f in FIELDS) + "\n"
        with self._lock:
            self._append(line.encode("utf-8"))
        for mirror in self.mirrors:
            # a copy for the session record's /audit channel: the record is already on the disk
            # here, and a mirror that fails must not make the change it describes fail
            with contextlib.suppress(Exception):
                mirror(dict(values))
        return values

    def _append(self, encoded: bytes) -> None:
        """Write one encoded record inside one block and fsync it (under the lock)."""
        data = (b"\n" if self._torn else b"") + encoded
        try:
            if len(data) <= _BLOCK:
                room = _BLOCK - os.fstat(self._fd).st_size % _BLOCK
                if len(data) > room:
                    # Linux copies a write into the page cache one page at a time and gives up
                    # between pages when the process is being killed, so a record that crosses a
                    # 4 KiB boundary can be torn by a kill (measured: about 1 kill in 150 of a
                    # process recording in a loop).  A blank line up to the boundary keeps each record
                    # inside one page, where the copy is all or nothing.
                    self._write_all(b" " * (room - 1) + b"\n")
            self._write_all(data)
            os.fsync(self._fd)
        except OSError as e:
            raise AuditError(f"{self.path}: could not write the record ({e.strerror or e})") from e

    def close(self) -> None:
        """Close the file (records are already on disk); closing twice is harmless."""
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> "AuditLog":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class UnusableLog:
    """Stands in for an :class:`AuditLog` that could not be opened: every :meth:`record` raises
    :class:`AuditError` with :attr:`problem`, so every change is refused (a console with it is
    read-only, and says why)."""

    closed = True

    def __init__(self, path: PathLike, problem: str):
        self.path = Path(path)
        self.problem = problem

    def record(self, role: str, action: str, *values: Any, **named: Any) -> Dict[str, str]:
        raise AuditError(f"no audit log: {self.problem}")

    def close(self) -> None:
        """Nothing to close."""


_AT_FDCWD = -100
_RENAME_NOREPLACE = 1


def _rename_noreplace(src: Path, dst: Path) -> None:
    """Rename ``src`` to ``dst``; ``FileExistsError`` if ``dst`` exists (nothing is replaced).

    Linux's renameat2(RENAME_NOREPLACE) makes that one atomic step.  Where the C library or the
    file system lacks it, ``dst`` is checked first (a rename could then replace a name another
    process created in between: the lock in :func:`open_or_replace` keeps our own openers out).
    """
    libc = ctypes.CDLL(None, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is not None:
        if renameat2(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), _RENAME_NOREPLACE) == 0:
            return
        err = ctypes.get_errno()
        if err not in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
            raise OSError(err, os.strerror(err), str(dst))
    if os.path.lexists(dst):
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(dst))
    os.rename(src, dst)


def _move_aside(path: Path, t: float) -> Path:
    """Move ``path`` (whatever it is) to ``<name>.damaged-<UTC time>[-n]``, never over anything."""
    stamp = datetime.fromtimestamp(t, timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    for n in range(1, 1000):
        aside = path.with_name(f"{path.name}.damaged-{stamp}" + (f"-{n}" if n > 1 else ""))
        try:
            _rename_noreplace(path, aside)
        except FileExistsError:
            continue
        fsync_directory(path.parent)
        return aside
    raise FileExistsError(errno.EEXIST, "every name for the damaged file is taken", str(path))


def _not_a_file(path: Path) -> Optional[str]:
    """Why what is at ``path`` cannot be a log (a directory, a FIFO, a dangling or looping
    symlink), or None (a regular file, or nothing).  A symlink to a regular file is followed."""
    if not os.path.lexists(path):
        return None
    try:
        mode = os.stat(path).st_mode
    except OSError as e:
        return f"{path}: not an audit log (it cannot be opened: {e.strerror or e})"
    return None if stat.S_ISREG(mode) else f"{path}: not an audit log (not a regular file)"


def open_or_replace(path: PathLike, *, clock: Callable[[], float] = time.time
                    ) -> Tuple[Union[AuditLog, UnusableLog], Optional[str]]:
    """(the audit log at ``path``, or an :class:`UnusableLog` saying why there is none; a note of
    what was done, or None).  Never raises for the file's state: a damaged log must not keep the
    controller from starting.

    A file that is not an audit log (:class:`NotAnAuditLog`) or not a regular file is moved
    aside unchanged (see :func:`_move_aside`) and a new log started, whose first record says
    where the old one went.  A log that cannot be created (a read-only or full disk) gives the
    :class:`UnusableLog`.
    """
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    try:
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as e:
        return UnusableLog(path, f"{path}: cannot open its directory ({e.strerror or e})"), None
    try:
        # one opener at a time may decide that the log is damaged and replace it: a second one
        # waiting here then finds the new log, and never moves that aside
        fcntl.flock(dir_fd, fcntl.LOCK_EX)
        try:
            damage = _not_a_file(path)
            if damage is None:
                return AuditLog(path, clock=clock), None
        except NotAnAuditLog as e:
            damage = str(e)
        except (AuditError, OSError) as e:
            return UnusableLog(path, str(e)), None
        try:
            aside = _move_aside(path, clock())
        except OSError as e:
            return UnusableLog(path, f"{damage}; it could not be moved aside ({e.strerror or e})"), None
        why = damage[len(f"{path}: "):] if damage.startswith(f"{path}: ") else damage
        note = (f"{path.name} was damaged ({why}); it was kept unchanged as "
                f"{aside.name} and a new audit log was started")
        try:
            log = AuditLog(path, clock=clock)
        except OSError as e:
            return UnusableLog(path, f"{note}, but {e}"), note
        try:
            log.record("system", "audit log replaced", parameter=aside.name, detail=damage)
        except AuditError as e:
            log.close()
            return UnusableLog(path, f"{note}, but {e}"), note
        return log, note
    finally:
        os.close(dir_fd)                # releases the lock


def _parse_line(raw: bytes) -> Dict[str, str]:
    """One record from one line (without its newline); ``ValueError`` completes "the line ..."."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"is not UTF-8 text ({e.reason} at byte {e.start})") from None
    bad = _RAW_BAD.search(text)
    if bad is not None:
        raise ValueError(f"holds the control character U+{ord(bad.group()):04X}")
    cells = text.split("\t")
    if len(cells) != len(FIELDS):
        raise ValueError(f"has {len(cells)} columns, the header has {len(FIELDS)}")
    if not _TIME.fullmatch(cells[0]):
        raise ValueError(f"has the time {cells[0][:40]!r}, not an ISO-8601 UTC time with milliseconds")
    try:
        values = {name: unescape(cell) for name, cell in zip(FIELDS, cells)}
    except ValueError as e:
        raise ValueError(f"has {e}") from None
    if not values["role"] or not values["action"]:
        raise ValueError("has no role or no action")
    return values


def read(path: PathLike, *, problems: Optional[List[str]] = None) -> List[Dict[str, str]]:
    """Every record of the audit log at ``path``, oldest first, each a dict keyed by :data:`FIELDS`.

    A missing file has no records (``[]``).  A last line with no newline is a write cut short by a
    power cut and is skipped; so is any complete line that does not parse (it cannot come from
    :class:`AuditLog`).  If ``problems`` is a list, one line per skipped line is appended to it.
    Raises :class:`AuditError` if the file is not an audit log.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    except OSError as e:
        raise AuditError(f"{path}: cannot read the audit log ({e.strerror or e})") from e
    notes: List[str] = [] if problems is None else problems
    end = data.rfind(b"\n") + 1
    complete, tail = data[:end], data[end:]
    if tail:
        line_number = complete.count(b"\n") + 1
        notes.append(f"{path}: skipped the torn last line {line_number} ({len(tail)} bytes with no "
                     f"newline: a write cut short)")
    if not complete:
        if tail and not _HEADER.startswith(tail):
            raise AuditError(f"{path}: not an audit log (its first line is not the header)")
        return []
    lines = complete.split(b"\n")[:-1]
    if lines[0] + b"\n" != _HEADER:
        raise AuditError(f"{path}: not an audit log (its first line is not the header "
                         f"{HEADER_LINE.strip()!r})")
    records: List[Dict[str, str]] = []
    for number, raw in enumerate(lines[1:], start=2):
        if not raw.strip(b" "):
            continue                        # padding that keeps the next record inside one block
        try:
            records.append(_parse_line(raw))
        except ValueError as e:
            notes.append(f"{path}: skipped line {number}: the line {e}")
    return records


class SharedAuditLog:
    """``audit.log`` in ``directory``, opened (:func:`open_or_replace`, the directory made if need
    be) when first asked for, then the same log for every caller: the console and the symmetry
    adaptation record into one file, from their own threads.  ``directory`` None: there is none
    to write, and ``missing`` says why.  :meth:`open` never raises."""

    def __init__(self, directory: Optional[PathLike], missing: str = "no state directory is configured"):
        self.directory = None if directory is None else Path(directory)
        self.missing = missing
        #: Copies of every record go to these (``AuditLog.mirrors``), e.g. the session record's /audit.
        self.mirrors: List[Callable[[Dict[str, str]], None]] = []
        self._opened: Optional[Tuple[Union[AuditLog, UnusableLog], Optional[str]]] = None
        self._lock = threading.Lock()

    def open(self) -> Tuple[Union[AuditLog, UnusableLog], Optional[str]]:
        """(the log, or an :class:`UnusableLog` saying why there is none; the note of opening it,
        given to the first caller only)."""
        with self._lock:
            if self._opened is not None:
                return self._opened[0], None
            if self.directory is None:
                self._opened = UnusableLog("audit.log", self.missing), None
            else:
                try:
                    self.directory.mkdir(parents=True, exist_ok=True)
                except OSError as e:
                    self._opened = (UnusableLog(self.directory / "audit.log",
                                                f"{self.directory}: cannot create it ({e.strerror or e})"), None)
                else:
                    self._opened = open_or_replace(self.directory / "audit.log")
                    if isinstance(self._opened[0], AuditLog):
                        self._opened[0].mirrors = self.mirrors
            return self._opened

    def close(self) -> None:
        with self._lock:
            if self._opened is not None:
                self._opened[0].close()
