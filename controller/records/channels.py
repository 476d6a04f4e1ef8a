"""The session record's channels: one table, used by the MCAP session file, the live view and the
readers alike.

Each :class:`Channel` is a topic with a JSON schema a viewer understands without a plug-in
(Foxglove plots any numeric field of a JSON message; the schema's descriptions carry the units)
and the one function that encodes its messages.  Messages are JSON objects, UTF-8, one per
record: a telemetry row per tick, a CAN frame per frame, an event per fault or mode change, an
audit record per change, a stride record per analysed stride.  Log times are nanoseconds since
the Unix epoch: the session's start (wall clock) plus the tick's own time ``t``, so a viewer's
time axis shows when it happened and the ``t`` field is what the controller saw.

Telemetry values are written with the digits they carry, not more: the number of significant
digits of :data:`TELEMETRY_DIGITS` for physical values (the sensors' own resolution is coarser:
gyro 0.001 rad/s, load 0.5 N, torque ~0.01 N·m), ``t`` exactly (``repr``), whole-number columns
as integers, NaN as ``null``.  That keeps a minute of 1 kHz telemetry under 3 MB once the MCAP
chunks are compressed (``bench/records.py`` measures it).  ``decode_telemetry`` reads a message
back into a row in :data:`~controller.kernels.telemetry.TELEMETRY_COLUMNS` order.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Dict, Mapping, Sequence, Tuple

import numpy as np

from controller.kernels import telemetry

__all__ = ["Channel", "CHANNELS", "CHANNEL", "TELEMETRY_DIGITS", "UNIT_TEXT", "encode_telemetry",
           "decode_telemetry", "encode_json", "telemetry_schema"]

#: Significant digits of a physical telemetry value in the record.
TELEMETRY_DIGITS = 7

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
        "kind": (["string"], "fault_on, fault_off, mode, warning_on, warning_off"),
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


def _value(x: float, integer: bool) -> str:
    if not math.isfinite(x):
        return "null"
    if integer and x == int(x):
        return str(int(x))
    return format(x, f".{TELEMETRY_DIGITS}g")


def encode_telemetry(row: Sequence[float]) -> bytes:
    """One telemetry row (``TELEMETRY_COLUMNS`` order) as a JSON message (see the module docstring)."""
    if len(row) != len(_NAMES):
        raise ValueError(f"telemetry row: {len(row)} values, the row has {len(_NAMES)} columns")
    cells = []
    for i, (name, x) in enumerate(zip(_NAMES, row)):
        x = float(x)
        text = repr(x) if (i == _T and math.isfinite(x)) else _value(x, _INTEGER[i])
        cells.append(f'"{name}":{text}')
    return ("{" + ",".join(cells) + "}").encode()


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
