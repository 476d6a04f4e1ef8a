"""Reading and writing the device's CSV logs (DESIGN.md's replay columns and more).

Files are written atomically (temporary file, fsync, rename), so a crash or
power cut leaves either the previous file or the complete new one.  Floats are
written with ``repr``, which reads back bit for bit.
"""
from __future__ import annotations

import contextlib
import csv
import io
import math
import os
import tempfile
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from controller.cliio import MAX_LOG_BYTES, InputFileError, read_input

__all__ = ["atomic_write_text", "fsync_directory", "read_columns", "format_value", "rows_to_csv", "CsvError"]


class CsvError(ValueError):
    """A CSV file could not be used; the message names the file, row and column."""


def format_value(x: float, integer: bool = False, empty_below: float = None) -> str:
    """One cell: integers as integers, floats with ``repr``, NaN (or < ``empty_below``) as empty."""
    if x != x or (empty_below is not None and x < empty_below):
        return ""
    if integer:
        return str(int(x))
    return repr(float(x))


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old file or the whole new one."""
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_directory(directory)


def fsync_directory(directory: Path) -> None:
    """fsync a directory, so a file created or renamed in it survives a power cut (where the file
    system allows it; not possible everywhere, so a refusal is ignored)."""
    with contextlib.suppress(OSError):
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def read_columns(path: Path, required: Sequence[str], *,
                 torn: Optional[List[str]] = None) -> Tuple[List[str], List[List[str]], Dict[str, List[float]]]:
    """Read a CSV with a header row: (header, rows as text, the required columns as floats).

    Lines starting with ``#`` before the header are skipped.  Raises
    :class:`CsvError` naming what is wrong: a missing file or column, a path that is not a
    regular file or is over ``cliio.MAX_LOG_BYTES`` (read with a bound), a ragged
    row, a value that is not a number, or a ``t`` that does not increase.

    A last line with no terminating newline after the header is a torn write
    (a crash or power cut while a log was appended) and is dropped; if ``torn``
    is a list, one line describing what was dropped is appended to it.
    """
    path = Path(path)
    try:
        data = read_input(path, MAX_LOG_BYTES, "session log")
    except InputFileError as e:      # a directory, a device, too large, missing, unreadable
        raise CsvError(str(e)) from None
    end = max(data.rfind(b"\n"), data.rfind(b"\r")) + 1
    if 0 < end < len(data):
        # Every complete line of a log ends in a newline, so the tail is a write cut short: even
        # with the right number of values its last one may be cut (1.2345 -> 1.2).  Split before
        # decoding, as a power cut may leave any bytes there.
        data, tail = data[:end], data[end:]
        if tail.strip() and not tail.startswith(b"#") and torn is not None:
            line_no = data.count(b"\n") + 1
            torn.append(f"{path}: dropped the torn last line {line_no} ({len(tail)} bytes with no "
                        f"terminating newline: a write cut short): {tail[:40].decode('utf-8', 'replace')!r}")
    try:
        text = data.decode("utf-8", errors="strict")
    except UnicodeDecodeError as e:
        raise CsvError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    lines = [ln for ln in text.splitlines() if not ln.startswith("#")]
    reader = csv.reader(io.StringIO("\n".join(lines)))
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise CsvError(f"{path}: empty file, expected a header row") from None
    missing = [c for c in required if c not in header]
    if missing:
        raise CsvError(f"{path}: missing column(s) {', '.join(missing)}; the header has {', '.join(header)}")
    if len(set(header)) != len(header):
        raise CsvError(f"{path}: duplicate column names in the header")
    index = {name: header.index(name) for name in required}
    rows: List[List[str]] = []
    values: Dict[str, List[float]] = {name: [] for name in required}
    for line_no, row in enumerate(reader, start=2):
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) != len(header):
            raise CsvError(f"{path}: row {line_no} has {len(row)} values, the header has {len(header)}")
        for name, i in index.items():
            try:
                x = float(row[i])
            except ValueError:
                raise CsvError(f"{path}: row {line_no}, column {name}: {row[i]!r} is not a number") from None
            if not math.isfinite(x) and name == "t":
                raise CsvError(f"{path}: row {line_no}, column t: {row[i]!r} is not a finite time")
            values[name].append(x)
        rows.append(row)
    if not rows:
        raise CsvError(f"{path}: no data rows")
    t = values.get("t")
    if t is not None:
        for k in range(1, len(t)):
            if not t[k] > t[k - 1]:
                raise CsvError(f"{path}: column t must increase; row {k + 2} has t = {t[k]!r} "
                               f"after {t[k - 1]!r}")
    return header, rows, values


def rows_to_csv(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """CSV text (LF line ends) for a header and rows of cells."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()
