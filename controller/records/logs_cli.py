"""``ankle logs``: the sessions in the log directory; a session exported as the replay contract's CSV
or its CAN traffic as BLF/ASC; sessions copied off the board, verified.

- :func:`list_sessions`: each ``.mcap`` session record and ``.csv`` log in a directory with its
  start, duration, rows, size, the faults seen (latched at any time) and the profile; a file that
  cannot be read is listed with the reason.  A CSV log is read a block at a time (``t`` and
  ``faults`` only converted); an MCAP record through its reader's summary.
- :func:`export_csv`: the session's telemetry as the device's CSV log writes it (DESIGN.md's replay
  columns first: ``t``, ``shank_gyro``, ``load``, ``ankle_angle``, ``phase``, ``heel_strike``,
  ``toe_off``, ``walking``, ``torque_Nm``, ``torque_cmd_Nm``, ``faults``, ``mode``, then every
  other telemetry column the session has; :class:`~controller.records.csvlog.CsvRows` cells), streamed.
- :func:`export_can`: the session's CAN channel through python-can's ``BLFWriter`` / ``ASCWriter``
  (by the output's suffix).  A CSV log has no CAN channel: refused.
- :func:`copy_sessions`: each session copied into a directory: every source checked and no
  destination name taken before the first byte is copied (a name taken by a different file is
  refused: never overwritten; by an identical one, skipped and said); each copy written to a
  temporary file there, fsynced, read back and compared with the source's size and SHA-256, then
  linked into place under its name (a link, which fails rather than replace a file that appeared
  meanwhile) and the directory fsynced.

Bad input raises :class:`~controller.records.csvlog.CsvError` (one line; the CLI exits 2 with
nothing written).  MCAP sessions need the session reader (:mod:`controller.records.inputs`).
"""
from __future__ import annotations

import hashlib
import os
import re
import time
from datetime import datetime
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence

import numpy as np

from controller.kernels.faults import fault_names
from controller.kernels.telemetry import INTEGER_COLUMNS, TELEMETRY_COLUMNS
from controller.records.csvlog import BLOCK_ROWS, AtomicWriter, CsvError, CsvRows, fsync_directory, open_log
from controller.records.inputs import SUFFIXES, open_input
from controller.records.logger import FIRST_COLUMNS

__all__ = ["list_sessions", "session_info", "session_line", "export_csv", "export_can", "copy_sessions",
           "sessions_in", "CAN_FORMATS"]

CAN_FORMATS = (".blf", ".asc")
#: A console log's name: ``ankle-YYYYmmdd-HHMMSS[-n].csv``, the local time it was started.
_STAMP = re.compile(r"(\d{8}-\d{6})")
_COPY_BYTES = 1 << 20


def sessions_in(directory: Path) -> List[Path]:
    """The session records (``.mcap``) and CSV logs in ``directory`` (not its subfolders), by name;
    hidden files (a temporary file being written) left out.  CsvError if it is no directory."""
    directory = Path(directory)
    if not directory.is_dir():
        raise CsvError(f"{directory}: {'no such directory' if not directory.exists() else 'not a directory'}")
    return sorted(p for p in directory.iterdir()
                  if p.suffix.lower() in SUFFIXES and not p.name.startswith(".") and p.is_file())


def _start_from_name(path: Path) -> Optional[str]:
    m = _STAMP.search(path.stem)
    if not m:
        return None
    try:
        return datetime.strptime(m.group(1), "%Y%m%d-%H%M%S").strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return None


def session_info(path: Path, rows: int = BLOCK_ROWS) -> Dict[str, object]:
    """One session's start, duration [s], rows, size [bytes], faults seen and profile; ``problem``
    (None, or why it could not be read to the end: the figures are then what was read)."""
    path = Path(path)
    info: Dict[str, object] = {"path": str(path), "name": path.name,
                               "kind": "mcap" if path.suffix.lower() == ".mcap" else "csv",
                               "start": None, "duration_s": None, "rows": 0, "size_bytes": None,
                               "faults_seen": [], "profile": None, "problem": None}
    try:
        info["size_bytes"] = path.stat().st_size
    except OSError as e:
        info["problem"] = e.strerror or str(e)
        return info
    try:
        source = open_input(path)
        summary = getattr(getattr(source, "source", None), "summary", None)
        if source.kind == "mcap" and callable(summary):
            s = summary()
            info.update(start=s.get("start_utc"), duration_s=s.get("duration_s"), rows=s.get("rows", 0),
                        faults_seen=list(s.get("faults_seen", [])), profile=s.get("profile"))
            if s.get("problems"):
                info["problem"] = "; ".join(s["problems"])
            return info
        word = 0
        t0 = t1 = None
        n = 0
        torn: List[str] = []
        for block in source.iter_blocks(("t",), rows, optional=("faults",), torn=torn):
            t = block.values["t"]
            t0 = float(t[0]) if t0 is None else t0
            t1 = float(t[-1])
            n += len(block)
            f = block.values["faults"]
            f = f[np.isfinite(f)]
            if len(f):
                word |= int(np.bitwise_or.reduce(f.astype(np.int64)))
        info.update(duration_s=round(t1 - t0, 6), rows=n, faults_seen=fault_names(word))
        if source.kind == "mcap":
            meta = source.metadata
            info["start"] = (meta.get("session") or {}).get("start_utc")
            info["profile"] = None      # the summary (above) reads it from /audit
        else:
            info["start"] = _start_from_name(path)
        if torn:
            info["problem"] = "the torn last line was dropped"
    except CsvError as e:
        info["problem"] = str(e)
    return info


def list_sessions(directory: Path) -> List[Dict[str, object]]:
    """:func:`session_info` of each session in ``directory`` (:func:`sessions_in`)."""
    return [session_info(p) for p in sessions_in(directory)]


def _size(n: Optional[int]) -> str:
    if n is None:
        return "?"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def _duration(s: Optional[float]) -> str:
    if s is None:
        return "?"
    s = float(s)
    h, rest = divmod(int(round(s)), 3600)
    m, sec = divmod(rest, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


def session_line(info: Dict[str, object]) -> str:
    """One line of ``ankle logs list``."""
    faults = ", ".join(info["faults_seen"]) or "none"
    line = (f"{info['name']}  {info['kind']}  start {info['start'] or '--'}  {_duration(info['duration_s'])}  "
            f"{info['rows']} rows  {_size(info['size_bytes'])}  faults {faults}  profile {info['profile'] or '--'}")
    if info["problem"]:
        line += f"  ({info['problem']})"
    return line


def export_csv(session: Path, out: Path, rows: int = BLOCK_ROWS) -> Dict[str, object]:
    """Write ``session``'s telemetry to ``out`` as the device's CSV log (module docstring),
    a block at a time.  ``out`` is written in place: the caller makes it atomic (the CLI writes
    a reserved temporary file and renames it only on success)."""
    source = open_input(session)
    if source.kind == "csv":
        present_probe = next(iter(source.iter_blocks(("t",), 1)), None)
        have = set(present_probe.header) if present_probe is not None else set()
    else:
        have = set(getattr(source.source, "file_columns", source.columns))
    missing = [c for c in ("t", "shank_gyro", "load", "ankle_angle") if c not in have]
    if missing:
        raise CsvError(f"{session}: missing column(s) {', '.join(missing)}: not a session log")
    columns = [c for c in FIRST_COLUMNS if c in have] + [c for c in TELEMETRY_COLUMNS
                                                         if c in have and c not in FIRST_COLUMNS]
    writer = CsvRows(columns, integer=INTEGER_COLUMNS & set(columns), blank_negative=("phase",))
    n = 0
    torn: List[str] = []
    with open(out, "wb") as f:
        f.write(writer.header())
        for block in source.iter_blocks(("t",), rows, optional=columns[1:], torn=torn):
            f.write(writer.rows(np.column_stack([block.values[c] for c in columns])))
            n += len(block)
        f.flush()
        os.fsync(f.fileno())
    return {"session": str(session), "rows": n, "columns": columns, "dropped": torn}


def export_can(session: Path, out: Path, out_name: Optional[Path] = None) -> Dict[str, object]:
    """Write ``session``'s CAN channel to ``out`` with python-can's BLFWriter or ASCWriter, by the
    suffix of ``out_name`` (default ``out``).  CsvError for a CSV log (no CAN channel) or another
    suffix."""
    suffix = Path(out_name or out).suffix.lower()
    if suffix not in CAN_FORMATS:
        raise CsvError(f"{out_name or out}: a CAN log is .blf or .asc (python-can's BLF and ASC writers)")
    source = open_input(session)
    if source.kind == "csv":
        raise CsvError(f"{session}: a CSV log has no CAN channel (the device records CAN traffic in the "
                       f"session record, .mcap, or beside the CSV with [log] can)")
    import can
    writer = can.BLFWriter(str(out)) if suffix == ".blf" else can.ASCWriter(str(out))
    frames = 0
    try:
        for msg in source.iter_can():
            writer.on_message_received(msg)
            frames += 1
    finally:
        writer.stop()
    return {"session": str(session), "frames": frames}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            chunk = f.read(_COPY_BYTES)
            if not chunk:
                return h.hexdigest()
            h.update(chunk)


def copy_sessions(sessions: Sequence[Path], to: Path, say=print) -> List[Dict[str, object]]:
    """Copy ``sessions`` into the directory ``to`` (created if its parent exists), verified
    (module docstring).  Everything is checked before anything is copied: CsvError naming the
    first problem (a source that is not a readable regular file, two sources of one name, a
    destination name taken by a different file).  Returns one record per session:
    ``{"source", "copy", "bytes", "sha256", "copied"}`` (``copied`` False: an identical copy was
    already there)."""
    to = Path(to)
    if to.exists() and not to.is_dir():
        raise CsvError(f"--to {to}: not a directory")
    if not to.exists() and not (to.parent if str(to.parent) else Path(".")).is_dir():
        raise CsvError(f"--to {to}: its folder {to.parent} does not exist")
    if not sessions:
        raise CsvError("no sessions to copy")
    plan = []
    names: Dict[str, Path] = {}
    for src in map(Path, sessions):
        open_log(src, what="session").close()          # exists, regular, readable
        if src.name in names:
            raise CsvError(f"{src} and {names[src.name]}: two sessions of one name would be one copy")
        names[src.name] = src
        dst = to / src.name
        same = False
        if dst.exists() or dst.is_symlink():
            if not dst.is_file() or dst.stat().st_size != src.stat().st_size or _sha256(dst) != _sha256(src):
                raise CsvError(f"{dst}: already exists and differs from {src}; never overwritten (nothing was copied)")
            same = True
        plan.append((src, dst, same))
    to.mkdir(exist_ok=True)
    done = []
    for src, dst, same in plan:
        if same:
            size = dst.stat().st_size
            rec = {"source": str(src), "copy": str(dst), "bytes": size, "sha256": _sha256(dst), "copied": False}
            say(f"{src} -> {dst}: already there, identical ({_size(size)}, sha256 {rec['sha256'][:16]}...)")
            done.append(rec)
            continue
        h = hashlib.sha256()
        size = 0
        with AtomicWriter(dst, exclusive=True) as w:
            with open(src, "rb") as f:
                while True:
                    chunk = f.read(_COPY_BYTES)
                    if not chunk:
                        break
                    h.update(chunk)
                    size += len(chunk)
                    w.write(chunk)
            w._file.flush()
            os.fsync(w._file.fileno())
            # the copy as the disk has it, read back: the bytes read from the source, all of them
            if w.temp.stat().st_size != size or _sha256(w.temp) != h.hexdigest():
                raise CsvError(f"{dst}: the copy read back differs from {src}; it was removed")
            try:
                w.commit()
            except FileExistsError:
                raise CsvError(f"{dst}: appeared while {src} was copied; never overwritten") from None
        rec = {"source": str(src), "copy": str(dst), "bytes": size, "sha256": h.hexdigest(), "copied": True}
        say(f"{src} -> {dst}: copied and verified ({_size(size)}, sha256 {rec['sha256'][:16]}...)")
        done.append(rec)
    fsync_directory(to)
    return done
