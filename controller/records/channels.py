"""The session record's channels: one table, used by the MCAP session file, the live view and the
readers alike.

Each :class:`Channel` is a topic with a JSON schema a viewer understands without a plug-in
(Foxglove plots any numeric field of a JSON message; the schema's descriptions carry the units)
and the one function that encodes its messages.  Messages are JSON objects, UTF-8, one per
record: a telemetry row per tick, a CAN frame per frame, an event per fault or mode change, an
audit record per change, a stride record per analysed stride.  Log times are nanoseconds since
the Unix epoch: the session's start (wall clock) plus the tick's own time ``t``, so a viewer's
time axis shows when it happened and the ``t`` field is what the controller saw.

Telemetry values are written with the digits they carry, not more: the significant digits of
:data:`UNIT_DIGITS` for the column's unit (:data:`TELEMETRY_DIGITS` for a unit not listed), chosen
at the sensors' own resolution (gyro 0.001 rad/s, load 0.5 N, torque ~0.01 N·m: four digits of a
gait's values keep that); the loop's timing columns (``late_s``, ``read_s``, ``update_s``,
``write_s``: microsecond jitter of a real-time run) rounded to 1 us (:data:`COLUMN_RESOLUTION`)
and to three digits, which is what a latency histogram shows; ``t`` rounded to the nanosecond
(the clock's own resolution, so a real-time t costs no noisy digits); whole-number columns as
integers; NaN and ±inf as ``null`` (and a rounded value beyond ±1.7e308, which would read back as
inf, as ±1.7e308).  That keeps a minute of 1 kHz telemetry under 3 MB once the MCAP chunks are
compressed (``bench/records.py`` measures it: 7 digits everywhere and ``t`` with ``repr`` gave
3.1 MB/min lock-step and 3.2 in real time).
``decode_telemetry`` reads a message back into a row in
:data:`~controller.kernels.telemetry.TELEMETRY_COLUMNS` order; :func:`telemetry_digits` says how
many digits a column keeps (the round-trip precision: relative 0.5 * 10**(1 - digits)).
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from controller.kernels import telemetry
from controller.kernels.faults import FAULTS, MODE_TABLE, WARNINGS

__all__ = ["Channel", "CHANNELS", "CHANNEL", "TELEMETRY_DIGITS", "UNIT_DIGITS", "COLUMN_DIGITS", "UNIT_TEXT",
           "encode_telemetry", "encode_telemetry_block", "decode_telemetry", "encode_json", "telemetry_schema",
           "telemetry_digits", "COLUMN_RESOLUTION", "events_of"]

#: Significant digits of a physical telemetry value whose unit :data:`UNIT_DIGITS` does not list.
TELEMETRY_DIGITS = 7
#: Significant digits by unit (see the module docstring for why these are enough).
UNIT_DIGITS = MappingProxyType({"rad/s": 4, "N": 4, "rad": 5, "N*m": 4, "degC": 4, "stride": 4, "1": 3,
                                "m/s": 4, "J/kg": 4, "V": 4, "s": 5})
#: Columns kept with other digits than their unit's: the loop's timing (jitter of a few us).
COLUMN_DIGITS = MappingProxyType({"late_s": 3, "read_s": 3, "update_s": 3, "write_s": 3})
#: ... and rounded to this step first [s]: 1 us (a deadline is missed at 500 us; a real-time run's
#: sub-microsecond digits are noise that cost 0.25 MB per minute compressed, measured).
COLUMN_RESOLUTION = MappingProxyType({"late_s": 1e-6, "read_s": 1e-6, "update_s": 1e-6, "write_s": 1e-6})

#: How a telemetry unit reads in a schema's description (the table's ASCII spelling otherwise).
UNIT_TEXT = MappingProxyType({"N*m": "N·m", "degC": "°C", "stride": "fraction of the stride (0..1)",
                              "1": "ratio", "flag": "0 or 1", "code": "code", "bits": "bit word",
                              "count": "count"})


def telemetry_schema() -> Dict[str, Any]:
    """The JSON schema of one telemetry row: every column a number, its unit and meaning in its
    description (whole-number columns ``integer``; NaN is written as null)."""
    props = {}
    for c in telemetry.COLUMNS:
        kind = "integer" if c.integer else "number"
        props[c.name] = {"type": [kind, "null"],
                         "description": f"[{UNIT_TEXT.get(c.unit, c.unit)}] {c.meaning}"}
    return {"title": "ankle.Telemetry", "type": "object", "properties": props,
            "required": [c.name for c in telemetry.COLUMNS]}


def _object_schema(title: str, fields: Mapping[str, Tuple[str, str]]) -> Dict[str, Any]:
    return {"title": title, "type": "object",
            "properties": {k: {"type": t, "description": d} for k, (t, d) in fields.items()}}


@dataclass(frozen=True)
class Channel:
    """A topic of the session record: its schema's name and JSON schema."""

    topic: str
    schema_name: str
    schema: Mapping[str, Any]
    meaning: str

    @property
    def schema_bytes(self) -> bytes:
        return json.dumps(self.schema, sort_keys=True).encode()


CHANNELS: Tuple[Channel, ...] = (
    Channel("/telemetry", "ankle.Telemetry", telemetry_schema(),
            "every telemetry row at the tick rate (controller.kernels.telemetry: every column with its unit)"),
    Channel("/can", "ankle.CanFrame", _object_schema("ankle.CanFrame", {
        "t": (["number"], "[s] the frame's time on the session's clock"),
        "id": (["integer"], "arbitration id"),
        "extended": (["boolean"], "29-bit id"),
        "rx": (["boolean"], "received (true) or sent by the controller (false)"),
        "dlc": (["integer"], "data length"),
        "data": (["string"], "payload bytes, hex"),
    }), "the raw CAN traffic, every frame"),
    Channel("/events", "ankle.Event", _object_schema("ankle.Event", {
        "t": (["number"], "[s] tick time of the event"),
        "kind": (["string"], "fault_on, fault_off, mode, warning_on, warning_off, or log (the record itself: "
                                "its budget, a new part, a full disk)"),
        "name": (["string"], "the fault, warning or mode (controller.kernels.faults)"),
        "text": (["string"], "what it means, in the clinician's words"),
    }), "faults latched and cleared, warnings, mode changes"),
    Channel("/audit", "ankle.Audit", _object_schema("ankle.Audit", {
        "time": (["string"], "UTC time of the record"),
        "role": (["string"], "who: clinician, engineer, adaptation, ..."),
        "action": (["string"], "set, undo, save, load, login, fit, ..."),
        "parameter": (["string", "null"], "the parameter changed, if any"),
        "old": (["string", "null"], "its value before (SI, as the audit log writes it)"),
        "new": (["string", "null"], "its value after"),
        "outcome": (["string", "null"], "accepted, refused: why"),
    }), "every parameter change and console command, as the audit trail records it"),
    Channel("/strides", "ankle.Stride", _object_schema("ankle.Stride", {
        "t": (["number"], "[s] the stride's heel strike"),
        "fields": (["object"], "controller.symmetry.strides.StrideSymmetry, its fields by name (SI)"),
    }), "per-stride gait symmetry records"),
)

#: Topic -> channel.
CHANNEL: Mapping[str, Channel] = MappingProxyType({c.topic: c for c in CHANNELS})

_INTEGER = tuple(c.integer for c in telemetry.COLUMNS)
_NAMES = telemetry.TELEMETRY_COLUMNS
_T = telemetry.COLUMN["t"]


def telemetry_digits(name: str) -> Optional[int]:
    """Significant digits the record keeps of column ``name``; None: exact (whole numbers; ``t``
    to the nanosecond).  :data:`COLUMN_RESOLUTION` rounds a column to its step first."""
    c = telemetry.COLUMNS[telemetry.COLUMN[name]]
    if c.name == "t" or c.integer:
        return None
    return COLUMN_DIGITS.get(c.name, UNIT_DIGITS.get(c.unit, TELEMETRY_DIGITS))


# One %-template per row: "%r" for t, "%s" for whole-number columns (an int, or the float's repr
# when a value there is not whole), "%.{d}g" for the rest; "nan"/"inf" are then replaced by null
# (no column name contains either: checked here, as the replacement would corrupt it).
assert not any("nan" in n or "inf" in n for n in _NAMES), "a column name contains nan or inf"
_CELL = ["%r" if i == _T else "%s" if _INTEGER[i] else f"%.{telemetry_digits(n)}g" for i, n in enumerate(_NAMES)]
_ROW = "{" + ",".join(f'"{n}":{cell}' for n, cell in zip(_NAMES, _CELL)) + "}"
_WHOLE = [i for i, integer in enumerate(_INTEGER) if integer]
_RESOLUTION = [(_NAMES.index(n), step) for n, step in COLUMN_RESOLUTION.items() if n in _NAMES]
_NULLS = re.compile(r"-?(?:nan|inf)")
_BIGGEST = 1.7e308


def _round_to(x: np.ndarray, step: float) -> np.ndarray:
    """``x`` to a multiple of ``step`` where that is exact enough (|x| < 1e6 s); anything else as is."""
    with np.errstate(invalid="ignore", over="ignore"):
        small = np.abs(x) < 1e6
        per = round(1.0 / step)          # divide by the whole number of steps per unit: its repr is short
        return np.where(small, np.round(np.where(small, x, 0.0) * per) / per, x)
_ROUNDED = np.array([c.startswith("%.") for c in _CELL])


def encode_telemetry_block(rows: np.ndarray) -> List[bytes]:
    """Rows (shape (n, len(TELEMETRY_COLUMNS)), that order) as n JSON messages, as
    :func:`encode_telemetry` writes each: one %-format call per block, no Python loop per cell."""
    rows = np.asarray(rows, dtype=np.float64)
    if rows.ndim != 2 or rows.shape[1] != len(_NAMES):
        raise ValueError(f"telemetry rows: expected shape (n, {len(_NAMES)}), got {rows.shape}")
    if not len(rows):
        return []
    # a value within a rounding of the largest float would print as one that reads back as inf:
    # beyond +-1.7e308 (nothing a sensor gives) it is written as +-1.7e308
    big = np.abs(rows) > _BIGGEST
    if big.any():
        rows = np.where(big & np.isfinite(rows) & _ROUNDED, np.sign(rows) * _BIGGEST, rows)
    rows = rows.copy()
    # t to the nanosecond (the clock's own resolution: a real-time run's t is ns / 1e9, whose repr
    # would carry 17 noisy digits), the timing columns to their resolution
    rows[:, _T] = _round_to(rows[:, _T], 1e-9)
    for j, step in _RESOLUTION:
        rows[:, j] = _round_to(rows[:, j], step)
    cells = rows.astype(object)
    for j in _WHOLE:
        col = rows[:, j]
        whole = np.flatnonzero((np.abs(col) <= 2.0 ** 53) & (col == np.trunc(col)))     # NaN: False
        cells[whole, j] = col[whole].astype(np.int64).tolist()
    text = ((_ROW + "\n") * len(rows)) % tuple(cells.ravel().tolist())
    if "nan" in text or "inf" in text:
        text = _NULLS.sub("null", text)
    return [line.encode() for line in text.split("\n")[:-1]]


def encode_telemetry(row: Sequence[float]) -> bytes:
    """One telemetry row (``TELEMETRY_COLUMNS`` order) as a JSON message (see the module docstring)."""
    if len(row) != len(_NAMES):
        raise ValueError(f"telemetry row: {len(row)} values, the row has {len(_NAMES)} columns")
    return encode_telemetry_block(np.asarray(row, dtype=np.float64).reshape(1, -1))[0]


def decode_telemetry(message: bytes) -> np.ndarray:
    """A telemetry message back to a row in ``TELEMETRY_COLUMNS`` order (null -> NaN; a column
    the message lacks -> NaN, so a record from an older release still reads)."""
    obj = json.loads(message)
    return np.array([np.nan if obj.get(n) is None else float(obj[n]) for n in _NAMES])


def encode_json(obj: Mapping[str, Any]) -> bytes:
    """Any other channel's message: compact JSON, NaN as null."""
    def clean(v):
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, Mapping):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        return v
    return json.dumps(clean(dict(obj)), separators=(",", ":"), allow_nan=False).encode()


# ---- /events: what changed in the fault, warning and mode words ---------------------------------

_FAULTS_COL = telemetry.COLUMN["faults"]
_WARNINGS_COL = telemetry.COLUMN["warnings"]
_MODE_COL = telemetry.COLUMN["mode"]
_FAULT_BY_BIT = {f.bit: f for f in FAULTS}
_WARNING_BY_BIT = {w.bit: w for w in WARNINGS}
_MODE_BY_VALUE = {m.value: m for m in MODE_TABLE}


def _bits(word: int):
    return [b for b in range(64) if word >> b & 1]


def events_of(rows: np.ndarray, state: Optional[Dict[str, int]] = None):
    """The events of telemetry ``rows`` (TELEMETRY_COLUMNS order) as (t, kind, name, text), in
    order; ``state`` (updated) carries the last faults, warnings and mode from the batch before
    (empty: the first row's faults and warnings are events, and its mode)."""
    state = {} if state is None else state
    out = []
    if not len(rows):
        return out
    cols = {"faults": _FAULTS_COL, "warnings": _WARNINGS_COL, "mode": _MODE_COL}
    values = {}
    for key, j in cols.items():
        col = rows[:, j]
        # a word that is no whole number in 0..2**62 (NaN, a damaged row): "unknown" (-1)
        good = np.isfinite(col) & (col >= 0) & (col <= 2.0 ** 62) & (col == np.trunc(np.where(np.isfinite(col), col, 0)))
        v = np.where(good, col, -1).astype(np.int64)
        values[key] = v
    changed = np.zeros(len(rows), dtype=bool)
    for key, v in values.items():
        prev = np.concatenate(([state.get(key, 0 if key != "mode" else -2)], v[:-1]))
        changed |= v != prev
    for i in np.flatnonzero(changed):
        t = float(rows[i, _T])
        for key in ("faults", "warnings"):
            new, old = int(values[key][i]), state.get(key, 0)
            if new == old:
                continue
            table = _FAULT_BY_BIT if key == "faults" else _WARNING_BY_BIT
            kind = "fault" if key == "faults" else "warning"
            new_bits = set(_bits(new)) if new >= 0 else set()
            old_bits = set(_bits(old)) if old >= 0 else set()
            for on, bits in ((True, sorted(new_bits - old_bits)), (False, sorted(old_bits - new_bits))):
                for b in bits:
                    entry = table.get(b)
                    name = entry.name if entry is not None else f"bit {b}"
                    text = entry.advice if entry is not None else f"an unknown {kind} bit {b} (a newer release?)"
                    out.append((t, f"{kind}_{'on' if on else 'off'}", name, text))
            state[key] = new
        new_mode = int(values["mode"][i])
        if new_mode != state.get("mode", -2):
            mode = _MODE_BY_VALUE.get(new_mode)
            out.append((t, "mode", mode.name if mode is not None else f"mode {new_mode}",
                        mode.meaning if mode is not None else "an unknown mode value"))
            state["mode"] = new_mode
    return out
