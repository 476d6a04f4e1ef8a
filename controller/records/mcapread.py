"""Reading a session record (MCAP) as a stream: never the whole file in memory, and a file cut
short (a crash, a kill, a power cut: no summary, no footer, a torn last chunk) up to its last
complete chunk.

:class:`McapSession` walks the file record by record (the mcap library's ``StreamReader``,
chunks emitted whole and opened here one at a time, their CRC checked): a record cut by the end
of the file, or a chunk whose CRC does not match (a power cut can leave zeros where the last
write was), ends the walk there, and :attr:`McapSession.problems` says so in one line.  Nothing
past that point is read, so what is returned is exactly what was on the disk, whole.

- :attr:`~McapSession.columns`: ``TELEMETRY_COLUMNS`` (``file_columns``: the file's own list);
- :attr:`~McapSession.metadata`: {record name: {key: value}} (the run configuration, the
  parameter set, the software, the drive, the start time);
- :meth:`~McapSession.iter_blocks`: telemetry rows as float arrays of up to ``rows`` rows, in
  :data:`~controller.kernels.telemetry.TELEMETRY_COLUMNS` order;
- :meth:`~McapSession.iter_messages`: the decoded messages of one topic (events, audit, strides,
  can), as dicts, with ``log_time_ns`` added;
- :meth:`~McapSession.summary`: start, duration, rows, size, faults seen, the parameter set.
"""
from __future__ import annotations

import json
import os
import struct
import zlib
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import numpy as np
from mcap.exceptions import McapError
from mcap.records import Channel, Chunk, Footer, Metadata, Schema
from mcap.stream_reader import StreamReader, breakup_chunk

from controller.kernels import telemetry
from controller.records.channels import CHANNEL

__all__ = ["McapSession", "McapReadError"]

_NAMES = telemetry.TELEMETRY_COLUMNS
_MAGIC = b"\x89MCAP0\r\n"
_INDEX = {n: i for i, n in enumerate(_NAMES)}


class McapReadError(ValueError):
    """The file is not an MCAP file at all (cut inside its magic, or something else); a file cut
    anywhere after it opens, with whatever whole chunks it holds (perhaps none) and a problem line."""


class McapSession:
    """A session record opened for streaming (see the module docstring); ``path`` is opened
    anew for each pass, so passes may overlap and nothing stays open between them."""

    def __init__(self, path):
        self.path = Path(path)
        #: One line per problem met in the last pass (a torn end, a bad chunk): what was dropped.
        self.problems: List[str] = []
        self.metadata: Dict[str, Dict[str, str]] = {}
        self.complete = False            # the last whole walk met the footer (the file was closed properly)
        self._channels: Dict[int, str] = {}
        # The first records (header, metadata, the first chunk's channels) say what the file is.
        for _ in self._records(stop_at_first_chunk=True):
            pass                         # walking the records fills metadata and channels
        with open(self.path, "rb") as f:
            magic = f.read(len(_MAGIC))
        if magic != _MAGIC:
            raise McapReadError(f"{self.path}: not an MCAP file (it does not start with the MCAP magic)")
        session = self.metadata.get("session", {})
        try:
            cols = tuple(json.loads(session["columns"]))
        except (KeyError, ValueError, TypeError):
            cols = tuple(_NAMES)
        #: The telemetry columns the writer had (an older release may have fewer).
        self.file_columns: Tuple[str, ...] = tuple(c for c in cols if c in _INDEX) or tuple(_NAMES)
        #: What :meth:`iter_blocks` gives: every telemetry column (NaN where the file has none).
        self.columns: Tuple[str, ...] = tuple(_NAMES)
        self.start_ns = int(session.get("start_ns", 0) or 0)

    # ------------------------------------------------------------------ the walk
    def _records(self, *, stop_at_first_chunk: bool = False) -> Iterator[Any]:
        """Every record of the file in order, chunks opened (messages, schemas, channels), up to
        the first record that is cut or damaged."""
        self.problems = []
        try:
            f = open(self.path, "rb")
        except OSError as e:
            raise McapReadError(f"{self.path}: cannot open ({e.strerror or e})") from None
        with f:
            size = os.fstat(f.fileno()).st_size
            reader = StreamReader(f, emit_chunks=True, record_size_limit=max(size, 1))
            records = reader.records
            while True:
                try:
                    record = next(records)
                except StopIteration:
                    return
                except (McapError, EOFError, ValueError, OSError, zlib.error, struct.error) as e:
                    self.problems.append(f"{self.path}: the file ends in a record cut short or damaged "
                                         f"at about byte {f.tell()} of {size} ({type(e).__name__}: {e}); "
                                         f"read up to the last complete chunk")
                    return
                if isinstance(record, Chunk):
                    try:
                        inner = list(breakup_chunk(record, validate_crc=True))
                    except Exception as e:        # a torn or zero-filled chunk: the end of what is whole
                        self.problems.append(f"{self.path}: a damaged chunk at about byte {f.tell()} "
                                             f"({type(e).__name__}: {e}); read up to the chunk before it")
                        return
                    for r in inner:
                        if isinstance(r, Channel):
                            self._channels[r.id] = r.topic
                        yield r
                    if stop_at_first_chunk:
                        return
                    continue
                if isinstance(record, Metadata):
                    self.metadata[record.name] = dict(record.metadata)
                elif isinstance(record, Channel):
                    self._channels[record.id] = record.topic
                elif isinstance(record, Footer):
                    self.complete = True
                yield record

    def _messages(self, topics) -> Iterator[Tuple[str, Any]]:
        for r in self._records():
            if isinstance(r, (Schema, Channel, Metadata)):
                continue
            channel_id = getattr(r, "channel_id", None)
            if channel_id is None or getattr(r, "data", None) is None or not hasattr(r, "log_time"):
                continue
            topic = self._channels.get(channel_id)
            if topic in topics:
                yield topic, r

    # ------------------------------------------------------------------ what it offers
    def iter_blocks(self, rows: int = 4096) -> Iterator[np.ndarray]:
        """Telemetry rows, ``rows`` at a time (the last block shorter), as float arrays in
        ``TELEMETRY_COLUMNS`` order (a column the file lacks is NaN)."""
        if rows < 1:
            raise ValueError(f"rows must be >= 1, got {rows}")
        block = np.full((rows, len(_NAMES)), np.nan)
        n = 0
        loads = json.loads
        for _, r in self._messages(("/telemetry",)):
            obj = loads(r.data)
            out = block[n]
            out[:] = np.nan
            for k, v in obj.items():
                j = _INDEX.get(k)
                if j is not None and v is not None:
                    out[j] = v
            n += 1
            if n == rows:
                yield block.copy()
                n = 0
        if n:
            yield block[:n].copy()

    def iter_messages(self, topic: str) -> Iterator[Dict[str, Any]]:
        """The messages of ``topic`` (``/events``, ``/audit``, ``/strides``, ``/can``, or
        ``/telemetry`` as dicts), decoded, each with its ``log_time_ns``."""
        if topic not in CHANNEL:
            raise ValueError(f"unknown topic {topic!r}; the record has {', '.join(CHANNEL)}")
        for _, r in self._messages((topic,)):
            obj = json.loads(r.data)
            obj["log_time_ns"] = r.log_time
            yield obj

    def iter_can(self):
        """The ``/can`` frames as python-can Messages (timestamps epoch seconds)."""
        import can
        for m in self.iter_messages("/can"):
            data = bytes.fromhex(m["data"])
            yield can.Message(timestamp=m["log_time_ns"] / 1e9, arbitration_id=m["id"],
                              is_extended_id=m["extended"], is_rx=m["rx"], dlc=m["dlc"], data=data)

    def summary(self) -> Dict[str, Any]:
        """Start (UTC), duration [s], rows, file size [bytes], the faults seen (latched at any
        time), the modes, whether the file was closed properly, the wearer's profile last loaded over
        the console (``profile load NAME`` in /audit; None if none) and the parameter set."""
        rows = 0
        t_first = t_last = None
        faults: List[str] = []
        modes: List[str] = []
        counts = {topic: 0 for topic in CHANNEL}
        profile = None              # the wearer's profile last loaded in the session, if any
        for topic, r in self._messages(tuple(CHANNEL)):
            counts[topic] += 1
            if topic == "/telemetry":
                rows += 1
                t = (r.log_time - self.start_ns) / 1e9
                t_first = t if t_first is None else t_first
                t_last = t
            elif topic == "/events":
                e = json.loads(r.data)
                if e.get("kind") == "fault_on" and e.get("name") not in faults:
                    faults.append(e["name"])
                elif e.get("kind") == "mode" and e.get("name") not in modes:
                    modes.append(e["name"])
            elif topic == "/audit":
                a = json.loads(r.data)
                # the console's `profile load NAME` (its command text is the record's detail)
                words = str(a.get("outcome") or "").split()
                if a.get("action") == "profile load" and len(words) == 3 and words[:2] == ["profile", "load"]:
                    profile = words[2]
        params = self.metadata.get("params", {})
        return {"path": str(self.path), "start_utc": self.metadata.get("session", {}).get("start_utc"),
                "start_ns": self.start_ns,
                "duration_s": (t_last - t_first) if rows else 0.0, "rows": rows,
                "size_bytes": self.path.stat().st_size, "complete": self.complete,
                "messages": counts, "faults_seen": faults, "modes_seen": modes,
                "profile": profile,
                "params": params, "problems": list(self.problems)}
