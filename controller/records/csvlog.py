"""Reading and writing the device's CSV logs (DESIGN.md's replay columns and more).

:class:`CsvRows` is the one writer of the logs' rows (the device's session log, the real-time
and the lock-step simulator's logs): a header, then one line per row of floats, formatted a
whole batch at a time.  Whole files are written atomically (temporary file, fsync, rename), so
a crash or power cut leaves either the previous file or the complete new one.  Floats are
written with ``repr``, which reads back bit for bit.  :func:`rows_to_csv` writes tables of
text cells (``ankle replay`` keeps its input's own cells).
"""
from __future__ import annotations

import contextlib
import csv
import io
import math
import os
import tempfile
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from controller.cliio import MAX_LOG_BYTES, InputFileError, read_input

__all__ = ["atomic_write_text", "fsync_directory", "read_columns", "format_value", "rows_to_csv", "CsvRows",
           "CsvError"]


class CsvError(ValueError):
    """A CSV file could not be used; the message names the file, row and column."""


def format_value(x: float, integer: bool = False, empty_below: float = None) -> str:
    """One cell, as :class:`CsvRows` writes it: NaN (or < ``empty_below``) empty; in an
    ``integer`` column a whole number (up to 2**53) as an integer; anything else with ``repr``,
    so an odd value in an integer column (1.5, 1e20, inf) is written as it is, never cut."""
    if x != x or (empty_below is not None and x < empty_below):
        return ""
    x = float(x)
    if integer and abs(x) <= 2.0 ** 53 and x == math.trunc(x):
        return str(int(x))
    return repr(x)


class CsvRows:
    """The one writer of log rows: ``columns`` in file order; cells as :func:`format_value`
    (``integer`` columns as integers, ``blank_negative`` columns empty below 0, NaN empty).

    :meth:`header` is the first line, :meth:`rows` the lines of a batch (bytes, LF ends, no
    quoting: names are checked to need none and numbers never do, so the bytes are what
    ``csv.writer`` would write).  One %-format call per batch over Python floats, column-wise
    numpy work, no Python loop per row: the device's logger formats 64 000 rows/s this way.
    """

    def __init__(self, columns: Sequence[str], *, integer: Iterable[str] = (), blank_negative: Iterable[str] = ()):
        self.columns = tuple(columns)
        if not self.columns:
            raise ValueError("csv log: no columns")
        if len(set(self.columns)) != len(self.columns) or any(set(c) & set(',"\r\n') for c in self.columns):
            raise ValueError("csv log: column names must be unique, with no comma, quote or newline")
        integer, blank_negative = set(integer), set(blank_negative)
        self._integer = [j for j, c in enumerate(self.columns) if c in integer]
        self._blank_negative = [j for j, c in enumerate(self.columns) if c in blank_negative]
        self._row_format = ",".join(["%r"] * len(self.columns)) + "\n"

    def header(self) -> bytes:
        return (",".join(self.columns) + "\n").encode("ascii")

    def rows(self, block: np.ndarray) -> bytes:
        """The lines of ``block`` (shape (n, len(columns)), in :attr:`columns` order)."""
        block = np.asarray(block, dtype=np.float64)
        if block.ndim != 2 or block.shape[1] != len(self.columns):
            raise ValueError(f"csv log: expected rows of shape (n, {len(self.columns)}), got {block.shape}")
        # floats print as repr, integral integer-column values as ints; blank cells are NaN,
        # whose "nan" is then cut (no other cell can contain it)
        cells = block.astype(object)
        blank = {j: block[:, j] < 0 for j in self._blank_negative}
        for j, below in blank.items():
            cells[below, j] = np.nan
        for j in self._integer:
            col = block[:, j]
            whole = (np.abs(col) <= 2.0 ** 53) & (col == np.trunc(col))       # NaN: False
            exact = np.flatnonzero(whole & ~blank[j] if j in blank else whole)
            cells[exact, j] = col[exact].astype(np.int64).tolist()
        text = (self._row_format * len(block)) % tuple(cells.ravel().tolist())
        return text.replace("nan", "").encode("ascii")


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
                 torn: Optional[List[str]] = None,
                 may_be_empty: Optional[Mapping[str, Optional[str]]] = None,
                 ) -> Tuple[List[str], List[List[str]], Dict[str, List[float]]]:
    """Read a CSV with a header row: (header, rows as text, the required columns as floats).

    Lines starting with ``#`` before the header are skipped.  Raises
    :class:`CsvError` naming what is wrong: a missing file or column, a path that is not a
    regular file or is over ``cliio.MAX_LOG_BYTES`` (read with a bound), a ragged
    row, a value that is not a number, or a ``t`` that does not increase.

    ``may_be_empty``: required columns whose empty (or blank) cells read as NaN instead of
    being an error; a name mapped to another column's name may be empty only on rows where that
    one is empty too (``{"ankle_angle": "load"}``), a name mapped to None anywhere.

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
    empty_ok = dict(may_be_empty or {})
    if any(name not in index or (other is not None and other not in index) for name, other in empty_ok.items()):
        raise ValueError("read_columns: may_be_empty names columns that are not required")
    rows: List[List[str]] = []
    values: Dict[str, List[float]] = {name: [] for name in required}
    for line_no, row in enumerate(reader, start=2):
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) != len(header):
            raise CsvError(f"{path}: row {line_no} has {len(row)} values, the header has {len(header)}")
        for name, i in index.items():
            if name in empty_ok and not row[i].strip():
                other = empty_ok[name]
                if other is not None and row[index[other]].strip():
                    raise CsvError(f"{path}: row {line_no}, column {name}: empty, but {other} is not; "
                                   f"{name} may be empty only where {other} is")
                values[name].append(math.nan)
                continue
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
