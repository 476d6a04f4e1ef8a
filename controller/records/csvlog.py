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
from typing import Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from controller.cliio import MAX_LOG_BYTES, InputFileError, read_input

__all__ = ["atomic_write_text", "AtomicWriter", "fsync_directory", "read_columns", "iter_column_blocks", "CsvBlock", "open_log",
           "BLOCK_ROWS", "format_value", "rows_to_csv", "CsvRows",
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


class AtomicWriter:
    """A file written a piece at a time that readers see whole or not at all: the pieces go to a
    temporary file in the target's directory; :meth:`commit` fsyncs it, renames it over the
    target and fsyncs the directory (what :func:`atomic_write_text` does, streamed).  Leaving the
    ``with`` block on an exception, or without :meth:`commit`, removes the temporary file and
    leaves the target as it was.  ``exclusive``: the target must not exist at the commit (never
    overwritten: the rename is a hard link, which fails if the name is taken)."""

    def __init__(self, path: Path, *, exclusive: bool = False):
        self.path = Path(path)
        self.directory = self.path.parent if str(self.path.parent) else Path(".")
        self.exclusive = exclusive
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.directory)
        self.temp = Path(tmp)
        self._file = os.fdopen(fd, "wb")
        self.bytes_written = 0

    def write(self, data: bytes) -> None:
        self._file.write(data)
        self.bytes_written += len(data)

    def commit(self) -> None:
        """fsync, then put the file in place (FileExistsError if ``exclusive`` and it exists)."""
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        # mkstemp makes the file 0600: give it what a plain create would
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(self.temp, 0o666 & ~umask)
        if self.exclusive:
            os.link(self.temp, self.path)           # fails if the target exists: never overwritten
            os.unlink(self.temp)
        else:
            os.replace(self.temp, self.path)
        self.temp = None
        fsync_directory(self.directory)

    def discard(self) -> None:
        """Remove the temporary file (if not committed)."""
        if not self._file.closed:
            self._file.close()
        if self.temp is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.temp)
            self.temp = None

    def __enter__(self) -> "AtomicWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.discard()


def fsync_directory(directory: Path) -> None:
    """fsync a directory, so a file created or renamed in it survives a power cut (where the file
    system allows it; not possible everywhere, so a refusal is ignored)."""
    with contextlib.suppress(OSError):
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


#: Rows per block of :func:`iter_column_blocks` by default: about 4 MB of a 26-column log's
#: cells in memory at a time, and few enough Python calls per block that the per-block cost
#: (a kernel call, a write) is lost in the per-row work.
BLOCK_ROWS = 16384
#: Bytes read from the file at a time (cut after the last line end in them).
CHUNK_BYTES = 1 << 20


class CsvBlock:
    """One block of a CSV read by :func:`iter_column_blocks`.

    ``header``: the file's column names (stripped); ``records``: the block's rows as lists of
    text cells; ``lines``: the same rows as the text lines they were read from (without line
    end; None for a row of a chunk with quoted cells, which only a csv writer reproduces); ``values``: the columns asked for, as float64 arrays (an empty cell that may be empty:
    NaN; an optional column the file lacks: all NaN); ``first_row``: the index of the block's
    first data row in the file (0 for the first data row); ``line_numbers``: each row's number
    in the error messages' sense (the header is row 1).  ``block[name]`` is ``values[name]``.
    """

    __slots__ = ("header", "records", "lines", "values", "first_row", "line_numbers")

    def __init__(self, header, records, lines, values, first_row, line_numbers):
        self.header, self.records, self.lines = header, records, lines
        self.values, self.first_row, self.line_numbers = values, first_row, line_numbers

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, name: str) -> np.ndarray:
        return self.values[name]


def open_log(path: Path, limit_bytes: Optional[int] = None, what: str = "session log"):
    """The regular file ``path`` opened for reading in binary (a file object).  CsvError
    (``<path>: <reason>``) for a missing or unreadable path, a directory, a device, FIFO or
    socket, as :func:`controller.cliio.read_input`; and for a file over ``limit_bytes`` if given
    (the streaming readers need no limit: they hold one block at a time)."""
    from controller.cliio import InputFileError, open_regular
    try:
        fd = open_regular(path, limit_bytes, what)
    except InputFileError as e:
        raise CsvError(str(e)) from None
    return os.fdopen(fd, "rb", buffering=0)


def _chunks(path: Path, f, torn: Optional[List[str]], limit_bytes: Optional[int], what: str):
    """(text, byte offset) of the file's complete lines, a chunk at a time, each chunk cut after a
    line end (so no UTF-8 sequence and no CR LF pair is split); the torn tail as read_columns
    always treated it (module docstring of :func:`read_columns`)."""
    from controller.cliio import _mib
    pending = b""
    offset = 0                   # byte offset of ``pending`` in the file
    newlines = 0                 # b"\n" in the bytes handed out so far (the torn line's number)
    seen_end = False             # any line end so far (a file with none is used whole)
    size = 0
    while True:
        try:
            chunk = f.read(CHUNK_BYTES)
        except OSError as e:
            from controller.cliio import describe_os_error
            raise CsvError(describe_os_error(e, os.fspath(path))) from None
        size += len(chunk or b"")
        if limit_bytes is not None and size > limit_bytes:
            raise CsvError(f"{os.fspath(path)}: grew over the {_mib(limit_bytes)} limit for a {what} while it was read")
        if not chunk:
            break
        data = pending + chunk
        cut = data.rfind(b"\n") + 1
        if cut == 0:
            r = data.rfind(b"\r")
            # a CR as the last byte may be the first half of CR LF: wait for the next byte
            cut = r + 1 if 0 <= r < len(data) - 1 else 0
        if cut == 0:
            pending = data
            continue
        seen_end = True
        head, pending = data[:cut], data[cut:]
        newlines += head.count(b"\n")
        yield _decode(path, head, offset), offset
        offset += len(head)
    if pending.endswith(b"\r"):            # a last CR: a line end after all
        seen_end = True
        yield _decode(path, pending, offset), offset
        return
    if pending and not seen_end:            # no line end at all: the whole file is its text
        yield _decode(path, pending, offset), offset
        return
    if pending:
        # Every complete line of a log ends in a newline, so the tail is a write cut short: even
        # with the right number of values its last one may be cut (1.2345 -> 1.2).  Split before
        # decoding, as a power cut may leave any bytes there.
        if pending.strip() and not pending.startswith(b"#") and torn is not None:
            torn.append(f"{path}: dropped the torn last line {newlines + 1} ({len(pending)} bytes with no "
                        f"terminating newline: a write cut short): {pending[:40].decode('utf-8', 'replace')!r}")


def _decode(path: Path, data: bytes, offset: int) -> str:
    try:
        return data.decode("utf-8", errors="strict")
    except UnicodeDecodeError as e:
        raise CsvError(f"{path}: not UTF-8 text ({e.reason} at byte {offset + e.start})") from None


def _records(text: str):
    """The CSV records of a chunk of complete lines: (cells, line) per line that is no comment."""
    lines = [ln for ln in text.splitlines() if not ln.startswith("#")]
    if '"' not in text:
        # no quoting anywhere (every log: CsvRows never quotes): the cells are the comma-separated
        # pieces, as csv.reader would split them, at a fraction of its cost
        return [ln.split(",") if ln else [] for ln in lines], lines
    records = list(csv.reader(io.StringIO("\n".join(lines))))
    # quoted cells: the lines are not the cells joined by commas (None: a writer must quote them)
    return records, [None] * len(records)


def iter_column_blocks(path: Path, columns: Sequence[str], rows: int = BLOCK_ROWS, *,
                       optional: Sequence[str] = (),
                       torn: Optional[List[str]] = None,
                       may_be_empty: Optional[Mapping[str, Optional[str]]] = None,
                       limit_bytes: Optional[int] = None,
                       ) -> Iterator[CsvBlock]:
    """Read a CSV with a header row in blocks of ``rows`` data rows (the last may be shorter),
    holding one block at a time: memory bounded whatever the file's length.

    ``columns``: required (a file without one is refused), read as floats; ``optional``: read as
    floats where the file has them (any cell may be empty: NaN), all NaN where it has not.
    Validation and messages are :func:`read_columns`'s (it is this reader, gathered): a missing
    file or column, a path that is not a regular file (or over ``limit_bytes``, if given), a
    ragged row, a value that is not a number, a ``t`` that does not increase (checked across
    blocks too, and raised after the last block, so a cell that is not a number anywhere is said
    first, as read_columns always did: a consumer must not commit what it made of the blocks
    until the iteration has ended), ``may_be_empty``, the torn last line dropped (and said in ``torn``), lines
    starting with ``#`` skipped, blank rows skipped.  Any other problem is raised when its block is
    read (the blocks before it have been yielded).  A quoted cell with a line end in it (no log has one) must not cross
    a 1 MiB chunk boundary.
    """
    if rows < 1:
        raise ValueError("iter_column_blocks: rows must be >= 1")
    path = Path(path)
    required = list(columns)
    empty_ok = dict(may_be_empty or {})
    if any(name not in required or (other is not None and other not in required)
           for name, other in empty_ok.items()):
        raise ValueError("read_columns: may_be_empty names columns that are not required")
    f = open_log(path, limit_bytes)
    with f:
        header: Optional[List[str]] = None
        index: Dict[str, int] = {}
        wanted: List[str] = []
        line_no = 1                       # the record number of the last record (header = 1)
        pending_records: List[List[str]] = []
        pending_lines: List[str] = []
        pending_numbers: List[int] = []
        first_row = 0
        last_t = [None, None]             # the previous block's last t; the first t out of order
        for text, _ in _chunks(path, f, torn, limit_bytes, "session log"):
            records, lines = _records(text)
            start = 0
            if header is None:
                if not records:
                    continue
                header = [h.strip() for h in records[0]]
                line_no = 1
                start = 1
                missing = [c for c in required if c not in header]
                if missing:
                    raise CsvError(f"{path}: missing column(s) {', '.join(missing)}; the header has "
                                   f"{', '.join(header)}")
                if len(set(header)) != len(header):
                    raise CsvError(f"{path}: duplicate column names in the header")
                wanted = required + [c for c in optional if c not in required]
                index = {name: header.index(name) for name in wanted if name in header}
            width = len(header)
            for k in range(start, len(records)):
                row = records[k]
                line_no += 1
                if not row or (not row[0].strip() and all(not c.strip() for c in row)):
                    continue
                if len(row) != width:
                    if pending_records:     # a bad cell in a row before it is the first problem
                        _block(path, header, index, wanted, required, empty_ok, pending_records, pending_lines,
                               pending_numbers, first_row, last_t, check_order=False)
                    raise CsvError(f"{path}: row {line_no} has {len(row)} values, the header has {width}")
                pending_records.append(row)
                pending_lines.append(lines[k])
                pending_numbers.append(line_no)
            while len(pending_records) >= rows:
                block = _block(path, header, index, wanted, required, empty_ok, pending_records[:rows],
                               pending_lines[:rows], pending_numbers[:rows], first_row, last_t)
                del pending_records[:rows], pending_lines[:rows], pending_numbers[:rows]
                first_row += rows
                yield block
        if header is None:
            raise CsvError(f"{path}: empty file, expected a header row")
        if pending_records:
            yield _block(path, header, index, wanted, required, empty_ok, pending_records, pending_lines,
                         pending_numbers, first_row, last_t)
            first_row += len(pending_records)
        if first_row == 0:
            raise CsvError(f"{path}: no data rows")
        if last_t[1] is not None:
            raise CsvError(last_t[1])


def _block(path, header, index, wanted, required, empty_ok, records, lines, numbers, first_row, last_t,
           check_order: bool = True) -> CsvBlock:
    """The block's columns as floats, checked as read_columns checks them: vectorised, and on
    any problem the block scanned row by row as read_columns did, so the first one is said."""
    n = len(records)
    values: Dict[str, np.ndarray] = {}
    for name in wanted:
        i = index.get(name)
        if i is None:                     # an optional column the file has not
            values[name] = np.full(n, np.nan)
            continue
        cells = [r[i] for r in records]
        try:
            if name in empty_ok or name not in required:
                values[name] = np.array([float(c) if c.strip() else math.nan for c in cells], dtype=np.float64)
            else:
                values[name] = np.array(list(map(float, cells)), dtype=np.float64)
        except ValueError:
            _scan_rows(path, index, wanted, required, empty_ok, records, numbers)
            raise AssertionError("unreachable: a cell failed to convert, then converted") from None
    for name, other in empty_ok.items():
        if other is None:
            continue
        i, j = index[name], index[other]
        for k in np.flatnonzero(np.isnan(values[name])):       # the empty cells are among the NaN ones
            if not records[k][i].strip() and records[k][j].strip():
                _scan_rows(path, index, wanted, required, empty_ok, records, numbers)
    if "t" in required:
        t = values["t"]
        if not np.isfinite(t).all():
            _scan_rows(path, index, wanted, required, empty_ok, records, numbers)
        # t out of order is said once the whole file has been read (as read_columns always did:
        # a cell that is not a number anywhere is said first); the first such row is kept
        if check_order and last_t[1] is None:
            if last_t[0] is not None and not t[0] > last_t[0]:
                last_t[1] = (f"{path}: column t must increase; row {first_row + 2} has t = {float(t[0])!r} "
                             f"after {last_t[0]!r}")
            else:
                down = np.flatnonzero(~(t[1:] > t[:-1]))
                if len(down):
                    k = int(down[0]) + 1
                    last_t[1] = (f"{path}: column t must increase; row {first_row + k + 2} has t = "
                                 f"{float(t[k])!r} after {float(t[k - 1])!r}")
        if check_order:
            last_t[0] = float(t[-1])
    return CsvBlock(header, records, lines, values, first_row, numbers)


def _scan_rows(path, index, wanted, required, empty_ok, records, numbers) -> None:
    """read_columns' own row-by-row checks over a block: raises the first problem in row order
    (then column order: the required columns as given, then the optional ones)."""
    for row, line_no in zip(records, numbers):
        for name in wanted:
            i = index.get(name)
            if i is None:
                continue
            cell = row[i]
            if (name in empty_ok or name not in required) and not cell.strip():
                other = empty_ok.get(name)
                if other is not None and row[index[other]].strip():
                    raise CsvError(f"{path}: row {line_no}, column {name}: empty, but {other} is not; "
                                   f"{name} may be empty only where {other} is")
                continue
            try:
                x = float(cell)
            except ValueError:
                raise CsvError(f"{path}: row {line_no}, column {name}: {cell!r} is not a number") from None
            if not math.isfinite(x) and name == "t" and name in required:
                raise CsvError(f"{path}: row {line_no}, column t: {cell!r} is not a finite time")


def read_columns(path: Path, required: Sequence[str], *,
                 torn: Optional[List[str]] = None,
                 may_be_empty: Optional[Mapping[str, Optional[str]]] = None,
                 ) -> Tuple[List[str], List[List[str]], Dict[str, List[float]]]:
    """Read a CSV with a header row whole: (header, rows as text, the required columns as floats).

    :func:`iter_column_blocks` gathered (its validation and messages), for callers that want the
    whole file; so a file over ``cliio.MAX_LOG_BYTES`` is refused here (the streaming readers
    have no limit).  Lines starting with ``#`` are skipped.  Raises :class:`CsvError` naming
    what is wrong: a missing file or column, a path that is not a regular file, a ragged row, a
    value that is not a number, or a ``t`` that does not increase.

    ``may_be_empty``: required columns whose empty (or blank) cells read as NaN instead of
    being an error; a name mapped to another column's name may be empty only on rows where that
    one is empty too (``{"ankle_angle": "load"}``), a name mapped to None anywhere.

    A last line with no terminating newline after the header is a torn write
    (a crash or power cut while a log was appended) and is dropped; if ``torn``
    is a list, one line describing what was dropped is appended to it.
    """
    header: List[str] = []
    rows: List[List[str]] = []
    values: Dict[str, List[float]] = {name: [] for name in required}
    for block in iter_column_blocks(path, required, BLOCK_ROWS, torn=torn, may_be_empty=may_be_empty,
                                    limit_bytes=MAX_LOG_BYTES):
        header = block.header
        rows += block.records
        for name in required:
            values[name] += block.values[name].tolist()
    return header, rows, values


def rows_to_csv(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """CSV text (LF line ends) for a header and rows of cells."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()
