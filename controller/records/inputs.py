"""The session records ``ankle replay``, ``ankle report`` and ``ankle logs`` read, chosen by suffix
in one place (:func:`open_input`), each read a block at a time: memory bounded whatever the
session's length.

- ``.csv``: a CSV log (the device's, the console's ``log start``, ``ankle sim --log``, or any
  recording with the replay columns), read by :func:`controller.records.csvlog.iter_column_blocks`
  with its validation and one-line errors.
- ``.mcap``: an MCAP session record, read through
  :func:`controller.records.sources.open_records` (the session reader:
  ``.columns``, ``.iter_blocks(rows)`` giving float arrays in ``TELEMETRY_COLUMNS`` order,
  ``.metadata``, ``.iter_can()``).  Without that module: one line saying so.

Both give :class:`~controller.records.csvlog.CsvBlock` blocks: ``values`` (float arrays by column
name), ``records`` / ``lines`` (each row's cells as text: a CSV's own cells; an MCAP record's as the
device's CSV logger writes them, so ``ankle replay`` of either writes the same kind of file).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence

import numpy as np

from controller.records.csvlog import BLOCK_ROWS, CsvBlock, CsvError, CsvRows, iter_column_blocks

__all__ = ["open_input", "CsvInput", "RecordInput", "SUFFIXES", "MCAP_NEEDS"]

SUFFIXES = (".csv", ".mcap")
#: What is said when an MCAP session is given to a build without the MCAP reader.
MCAP_NEEDS = ("MCAP sessions need the session reader controller.records.sources (and the mcap package: "
              "pip install mcap), which this installation lacks")


class CsvInput:
    """A CSV log: ``columns`` (its header), ``metadata`` ({}), :meth:`iter_blocks`."""

    kind = "csv"

    def __init__(self, path: Path):
        self.path = Path(path)
        self.metadata: Dict[str, Any] = {}

    def iter_blocks(self, columns: Sequence[str], rows: int = BLOCK_ROWS, *, optional: Sequence[str] = (),
                    torn: Optional[List[str]] = None,
                    may_be_empty: Optional[Mapping[str, Optional[str]]] = None) -> Iterator[CsvBlock]:
        """The rows in blocks (:func:`~controller.records.csvlog.iter_column_blocks`)."""
        return iter_column_blocks(self.path, columns, rows, optional=optional, torn=torn, may_be_empty=may_be_empty)

    def iter_can(self):
        """A CSV log holds no CAN frames."""
        return iter(())


class RecordInput:
    """A session record read through the session reader's protocol (``open_records``): blocks of
    float rows in its ``columns`` order, given as :class:`CsvBlock` (cells as the device's CSV
    logger writes them), ``t`` checked to be finite and increasing as a CSV's is."""

    kind = "mcap"

    def __init__(self, path: Path, source: Any):
        self.path = Path(path)
        self.source = source
        self.columns = tuple(source.columns)
        self.metadata: Dict[str, Any] = dict(getattr(source, "metadata", {}) or {})
        from controller.kernels.telemetry import INTEGER_COLUMNS
        self._csv = CsvRows(self.columns, integer=INTEGER_COLUMNS & set(self.columns), blank_negative=("phase",))

    def iter_blocks(self, columns: Sequence[str], rows: int = BLOCK_ROWS, *, optional: Sequence[str] = (),
                    torn: Optional[List[str]] = None,
                    may_be_empty: Optional[Mapping[str, Optional[str]]] = None) -> Iterator[CsvBlock]:
        """As :meth:`CsvInput.iter_blocks`; a column the record lacks: refused if required, NaN if
        optional.  ``torn``: the reader's own problems (a torn end) are appended to it."""
        missing = [c for c in columns if c not in self.columns]
        if missing:
            raise CsvError(f"{self.path}: missing column(s) {', '.join(missing)}; the record has "
                           f"{', '.join(self.columns)}")
        index = {c: i for i, c in enumerate(self.columns)}
        wanted = list(columns) + [c for c in optional if c not in columns]
        header = list(self.columns)
        first_row, last_t = 0, None
        try:
            for block in self.source.iter_blocks(rows):
                block = np.asarray(block, dtype=np.float64).reshape(-1, len(self.columns))
                n = len(block)
                if not n:
                    continue
                values = {c: (np.ascontiguousarray(block[:, index[c]]) if c in index else np.full(n, np.nan))
                          for c in wanted}
                if "t" in index:
                    t = block[:, index["t"]]
                    prev = np.concatenate(([last_t], t[:-1])) if last_t is not None else None
                    bad = ~np.isfinite(t)
                    if prev is not None:
                        bad |= ~(t > prev)
                    else:
                        bad[1:] |= ~(t[1:] > t[:-1])
                    if bad.any():
                        k = int(np.argmax(bad))
                        raise CsvError(f"{self.path}: telemetry row {first_row + k + 1} has t = {float(t[k])!r}: "
                                       f"not a finite time after the one before")
                    last_t = float(t[-1])
                text = self._csv.rows(block).decode("ascii")
                lines = text.split("\n")[:-1]
                records = [ln.split(",") for ln in lines]
                yield CsvBlock(header, records, lines, values, first_row, list(range(first_row + 2, first_row + 2 + n)))
                first_row += n
        except (ValueError, EOFError) as e:
            if isinstance(e, CsvError):
                raise
            raise CsvError(f"{self.path}: {e}") from None
        if torn is not None:
            torn += list(getattr(self.source, "problems", ()) or ())
        if first_row == 0:
            raise CsvError(f"{self.path}: no telemetry rows")

    def iter_can(self):
        """The record's CAN frames (python-can Messages)."""
        return self.source.iter_can()


def open_input(path: Path):
    """The reader of a session record, by suffix: :class:`CsvInput` for ``.csv`` (and any other
    suffix: a recording is a CSV unless it says otherwise), :class:`RecordInput` over
    ``controller.records.sources.open_records`` for ``.mcap``.  CsvError, one line, for an MCAP
    session without the reader, or one it refuses."""
    path = Path(path)
    if path.suffix.lower() != ".mcap":
        return CsvInput(path)
    try:
        from controller.records.sources import open_records
    except ImportError:
        raise CsvError(f"{path}: {MCAP_NEEDS}") from None
    if not path.exists():
        raise CsvError(f"{path}: no such file")
    if not path.is_file():
        raise CsvError(f"{path}: not a regular file")
    try:
        source = open_records(path)
    except (ValueError, EOFError) as e:
        raise CsvError(str(e) if str(path) in str(e) else f"{path}: {e}") from None
    except OSError as e:
        from controller.cliio import describe_os_error
        raise CsvError(describe_os_error(e, path)) from None
    return RecordInput(path, source)
