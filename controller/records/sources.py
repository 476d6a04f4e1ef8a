"""One way to read any session record: :func:`open_records` gives an object with

- ``.columns``: the telemetry columns the source has (a tuple of names);
- ``.iter_blocks(rows)``: its rows as float arrays of up to ``rows`` rows, in ``.columns`` order;
- ``.metadata``: a dict (may be empty);
- ``.iter_can()``: the raw CAN frames as python-can Messages (may be empty);

for an MCAP session record (:class:`controller.records.mcapread.McapSession`, rows in
``TELEMETRY_COLUMNS`` order) and for a CSV log (read a chunk of lines at a time, never whole;
empty cells NaN).  The CSV side is deliberately thin: a torn last line (no newline) is dropped,
nothing else is checked here.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Dict, Iterator, Tuple

import numpy as np

__all__ = ["open_records", "CsvSource"]


def open_records(path):
    """The source for ``path`` by its suffix: ``.mcap`` or ``.csv`` (ValueError otherwise)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".mcap":
        from controller.records.mcapread import McapSession
        return McapSession(path)
    if suffix == ".csv":
        return CsvSource(path)
    raise ValueError(f"{path}: unknown session record type {path.suffix!r}; .mcap or .csv")


class CsvSource:
    """A CSV log as a source (see the module docstring); ``#`` lines before the header are skipped."""

    def __init__(self, path):
        self.path = Path(path)
        self.metadata: Dict[str, Dict[str, str]] = {}
        with open(self.path, "rb") as f:
            for raw in f:
                if not raw.startswith(b"#"):
                    self.columns: Tuple[str, ...] = tuple(c.strip() for c in raw.decode("utf-8").rstrip("\r\n").split(","))
                    break
            else:
                raise ValueError(f"{self.path}: empty file, expected a header row")

    def iter_blocks(self, rows: int = 4096) -> Iterator[np.ndarray]:
        if rows < 1:
            raise ValueError(f"rows must be >= 1, got {rows}")
        width = len(self.columns)
        with open(self.path, "rb") as f:
            for raw in f:                      # up to the header
                if not raw.startswith(b"#"):
                    break
            lines = []
            for raw in f:
                if not raw.endswith(b"\n"):
                    break                      # a torn last line: a write cut short
                if raw.strip():
                    lines.append(raw)
                if len(lines) == rows:
                    yield self._parse(lines, width)
                    lines = []
            if lines:
                yield self._parse(lines, width)

    def _parse(self, lines, width: int) -> np.ndarray:
        text = b"".join(lines).decode("ascii", "replace")
        block = np.genfromtxt(io.StringIO(text), delimiter=",", dtype=np.float64, missing_values="",
                              filling_values=np.nan, invalid_raise=True)
        return block.reshape(-1, width)

    def iter_can(self):
        return iter(())
