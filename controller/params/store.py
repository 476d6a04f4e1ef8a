"""Saved parameter files: two checksummed copies that survive crashes, power cuts and corruption.

Format: UTF-8 JSON ``{"format": "ankle-params", "version": 1, "saved_at": ISO-8601 UTC, "values":
{name: number}, "sha256": hex of the canonical JSON of the rest}``.  :func:`save` writes ``<name>.bak``
then ``<name>``, each atomically with fsync, so a power cut leaves the old or the new values, never a mix.
:func:`load` takes the primary, else the backup, else the defaults; it never raises for bad content.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import math
import os
import re
import stat
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

from controller.records.csvlog import atomic_write_text
from controller.params.registry import ParamError, ParamSet

__all__ = ["FORMAT", "VERSION", "MAX_FILE_BYTES", "ParamFileError", "LoadResult",
           "backup_path", "encode", "decode", "save", "load", "check"]

#: The ``format`` field of every parameter file.
FORMAT = "ankle-params"
#: The only ``version`` this software reads and writes.
VERSION = 1
#: Larger files are refused unread (a full parameter file is about 2 kB).
MAX_FILE_BYTES = 64 * 1024

_FIELDS = ("format", "version", "saved_at", "values", "sha256")
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")

PathLike = Union[str, "os.PathLike[str]"]


class ParamFileError(ValueError):
    """A parameter file's content cannot be used; the message is the plain-English reason.

    Example: a file cut short by a crash gives ``not valid JSON (truncated or damaged:
    Expecting ',' delimiter at line 20, column 3)``.
    """


@dataclass(frozen=True)
class LoadResult:
    """What :func:`load` found.

    ``params`` is always a valid set.  ``source`` is ``"primary"``, ``"backup"`` or ``"defaults"``.
    ``problems`` has one plain-English line per copy that is missing or could not be used, e.g.
    ``ankle.params: checksum mismatch (file altered or half-written)``; it is empty when both copies
    are good.  ``saved_at`` is the used copy's save time (``None`` for defaults).
    ``invalid_copies`` lists the copies that exist but could not be used.
    """

    params: ParamSet
    source: str
    problems: Tuple[str, ...] = ()
    saved_at: Optional[str] = None
    invalid_copies: Tuple[Path, ...] = ()

    @property
    def corrupt(self) -> bool:
        """True when a copy that exists was unreadable or invalid.

        This is a fault to show, and powered mode must be refused, even when the other copy was
        good and is in use: the storage or the file was damaged.  A missing copy (fresh install,
        or a first save cut short) is not corruption.
        """
        return bool(self.invalid_copies)


def backup_path(path: PathLike) -> Path:
    """The second copy of the parameter file ``path``: the same name with ``.bak`` appended
    (``ankle.params`` -> ``ankle.params.bak``), in the same directory."""
    path = Path(path)
    return path.with_name(path.name + ".bak")


# ---------------------------------------------------------------------------------------------
# encoding and decoding (no I/O)

def _canonical(doc: Dict[str, Any]) -> bytes:
    """The bytes the checksum covers: everything except ``sha256``, canonical JSON, UTF-8."""
    rest = {k: v for k, v in doc.items() if k != "sha256"}
    return json.dumps(rest, sort_keys=True, separators=(",", ":"), allow_nan=False).encode("utf-8")


def encode(params: ParamSet, saved_at: Optional[datetime] = None) -> str:
    """The file text for ``params``: every registry parameter is stored, not only those that
    differ from the default, so the file reads on its own and a later change of a default never
    changes a fitted device.  ``saved_at`` defaults to now (UTC)."""
    if not isinstance(params, ParamSet):
        raise TypeError(f"encode() needs a ParamSet, got {type(params).__name__}")
    when = saved_at or datetime.now(timezone.utc)
    if when.tzinfo is None:
        raise ValueError("saved_at must be timezone-aware")
    doc: Dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "saved_at": when.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "values": {name: params[name] for name in params},
    }
    doc["sha256"] = hashlib.sha256(_canonical(doc)).hexdigest()
    return json.dumps(doc, sort_keys=True, indent=2, allow_nan=False) + "\n"


def _no_duplicate_keys(pairs: List[Tuple[str, Any]]) -> Dict[str, Any]:
    obj: Dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise ParamFileError(f"field {key!r} appears twice")
        obj[key] = value
    return obj


def _reject_constant(name: str) -> Any:
    raise ParamFileError(f"contains {name}, which is not a number")


def _finite_float(text: str) -> float:
    x = float(text)
    if not math.isfinite(x):
        raise ParamFileError(f"number {text} is out of range")
    return x


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "text", bool: "true/false",
            type(None): "null"}.get(type(value), type(value).__name__)


def _decode(data: bytes) -> Tuple[ParamSet, str]:
    """(values, saved_at) from a file's bytes, or :class:`ParamFileError` with the reason."""
    if len(data) == 0:
        raise ParamFileError("empty file (0 bytes)")
    if len(data) > MAX_FILE_BYTES:
        raise ParamFileError(f"too large ({len(data)} bytes; a parameter file is a few kB)")
    try:
        text = data.decode("utf-8", errors="strict")
    except UnicodeDecodeError as e:
        raise ParamFileError(f"not UTF-8 text ({e.reason} at byte {e.start})") from None
    try:
        doc = json.loads(text, object_pairs_hook=_no_duplicate_keys,
                         parse_constant=_reject_constant, parse_float=_finite_float)
    except ParamFileError:
        raise
    except json.JSONDecodeError as e:
        raise ParamFileError(f"not valid JSON (truncated or damaged: {e.msg} at line {e.lineno}, "
                             f"column {e.colno})") from None
    except (ValueError, RecursionError) as e:   # e.g. an integer with thousands of digits, deep nesting
        raise ParamFileError(f"not valid JSON ({type(e).__name__})") from None
    if not isinstance(doc, dict):
        raise ParamFileError(f"not an ankle parameter file (the document is {_kind(doc)})")
    if doc.get("format") != FORMAT:
        raise ParamFileError(f"not an ankle parameter file (format {doc.get('format')!r}, "
                             f"expected {FORMAT!r})")
    version = doc.get("version")
    if type(version) is not int or version != VERSION:
        raise ParamFileError(f"unsupported version {version!r} (this software reads version {VERSION})")
    missing = [k for k in _FIELDS if k not in doc]
    if missing:
        raise ParamFileError(f"missing field(s) {', '.join(missing)}")
    extra = sorted(k for k in doc if k not in _FIELDS)
    if extra:
        raise ParamFileError(f"unexpected field(s) {', '.join(extra)}")
    sha = doc["sha256"]
    if not isinstance(sha, str) or not _SHA256_HEX.fullmatch(sha):
        raise ParamFileError("sha256 is not 64 lower-case hex digits")
    if hashlib.sha256(_canonical(doc)).hexdigest() != sha:
        raise ParamFileError("checksum mismatch (file altered or half-written)")
    # The checksum only proves the file is as written; what was written must still pass the schema.
    saved_at, values = doc["saved_at"], doc["values"]
    if not isinstance(saved_at, str):
        raise ParamFileError(f"saved_at is {_kind(saved_at)}, expected text")
    if not isinstance(values, dict):
        raise ParamFileError(f"values is {_kind(values)}, expected an object")
    for name, value in values.items():
        if type(value) not in (int, float):   # not bool, text or null, which ParamSet might coerce
            raise ParamFileError(f"{name} is {_kind(value)}, expected a number")
    try:
        params = ParamSet(values)   # unknown names, range, whole numbers, cross-parameter rules
    except ParamError as e:
        raise ParamFileError(str(e)) from None
    except OverflowError:
        raise ParamFileError("a value is too large to be a number the controller can use") from None
    return params, saved_at


def decode(data: bytes) -> ParamSet:
    """The values in a parameter file's bytes, or :class:`ParamFileError` saying why not.

    Names missing from the file take their registry defaults (files from before they existed);
    unknown names, wrong types, out-of-range values and failed cross-parameter rules are refused.
    """
    return _decode(data)[0]


# ---------------------------------------------------------------------------------------------
# files

def _stale_temp_pattern(name: str) -> "re.Pattern[str]":
    # atomic_write_text names its temporary files ".<name>.<random>.tmp" (tempfile.mkstemp); the
    # random part has no dots, so other files' temporaries (".<name>.x.<random>.tmp") never match.
    return re.compile(r"\." + re.escape(name) + r"\.[A-Za-z0-9_]+\.tmp")


def _remove_stale_temps(path: Path) -> None:
    patterns = [_stale_temp_pattern(path.name), _stale_temp_pattern(backup_path(path).name)]
    directory = path.parent
    with contextlib.suppress(OSError):
        for entry in os.scandir(directory):
            if any(p.fullmatch(entry.name) for p in patterns):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)


def save(params: ParamSet, path: PathLike) -> None:
    """Write ``params`` to ``path`` and its second copy :func:`backup_path` (``path`` + ``.bak``).

    Both copies get the same text.  Each is written atomically (temporary file in the same
    directory, fsync, rename, fsync of the directory), the backup first.  Temporary files left by
    an earlier save that was killed are removed first; so there must be one writer per file at a
    time.  Raises ``TypeError`` if ``params`` is not a :class:`ParamSet` and ``OSError`` if the
    directory is missing or not writable (then the copies already on disk are unchanged, or
    hold the new values).
    """
    path = Path(path)
    text = encode(params)
    _decode(text.encode("utf-8"))   # never write a file that load would refuse
    _remove_stale_temps(path)
    # Ordering argument.  load() returns the first *valid* copy, primary before backup, and each
    # copy always holds one whole set (old or new), because each is replaced by one atomic rename.
    # atomic_write_text fsyncs the data before the rename and the directory after it, so the
    # backup's replacement is durable before the primary is touched: at most one copy is ever in
    # flight, and the other is valid.  The instants of a power cut:
    #   before the backup's rename:  primary old, backup old          -> old
    #   between the two renames:     primary old, backup new          -> old (primary)
    #   after the primary's rename:  primary new, backup new          -> new
    # Never defaults, never a mix.  Backup first (not primary first) because the primary is then
    # only replaced once the new values are already safe on disk in the backup: should the
    # primary's write go wrong anyway (a filesystem without atomic rename, a failing flash page),
    # load falls back to the new values, which the user asked for.
    atomic_write_text(backup_path(path), text)
    atomic_write_text(path, text)


def _read_copy(path: Path) -> bytes:
    """The bytes of one copy.  FileNotFoundError if it is not there; other OSError if unreadable."""
    # O_NONBLOCK: a FIFO put in the file's place must not hang the boot; regular files ignore it.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ParamFileError("not a regular file")
        chunks = []
        size = 0
        while size <= MAX_FILE_BYTES:
            chunk = os.read(fd, MAX_FILE_BYTES + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _try_copy(path: Path) -> Tuple[Optional[Tuple[ParamSet, str]], Optional[str], bool]:
    """(decoded or None, problem line or None, exists)."""
    try:
        data = _read_copy(path)
    except (FileNotFoundError, NotADirectoryError):
        return None, f"{path.name}: no such file", False
    except ParamFileError as e:
        return None, f"{path.name}: {e}", True
    except OSError as e:
        return None, f"{path.name}: cannot be read ({e.strerror or e})", True
    try:
        return _decode(data), None, True
    except ParamFileError as e:
        return None, f"{path.name}: {e}", True


def load(path: PathLike) -> LoadResult:
    """The saved parameters: the primary ``path`` if valid, else its backup, else the defaults.

    Both copies are always checked, so ``problems`` and ``corrupt`` also report a bad backup
    behind a good primary.  Never raises for anything in or about the files themselves (any
    bytes, a missing or unreadable copy, a directory or device in a copy's place); temporary
    files left by a killed save are ignored.  Raises ``IsADirectoryError`` when ``path`` itself
    is a directory: that is a wrong argument (the caller named the folder), not a damaged file.
    Never writes; the next :func:`save` repairs both copies.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a directory, not a parameter file", str(path))
    copies = (("primary", path), ("backup", backup_path(path)))
    found: Dict[str, Tuple[ParamSet, str]] = {}
    problems: List[str] = []
    invalid: List[Path] = []
    for source, copy in copies:
        decoded, problem, exists = _try_copy(copy)
        if decoded is not None:
            found[source] = decoded
        else:
            problems.append(problem)
            if exists:
                invalid.append(copy)
    for source, _ in copies:
        if source in found:
            params, saved_at = found[source]
            return LoadResult(params, source, tuple(problems), saved_at, tuple(invalid))
    return LoadResult(ParamSet(), "defaults", tuple(problems), None, tuple(invalid))


def check(path: PathLike) -> Tuple[str, ...]:
    """The problems :func:`load` would report for ``path`` and its backup (empty if both are good)."""
    return load(path).problems
