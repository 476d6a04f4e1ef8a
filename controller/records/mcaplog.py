"""The session record as one MCAP file: telemetry, events, CAN, audit and strides, chunked and
compressed, written off the tick.

:class:`McapSessionLog` has :class:`~controller.records.logger.CsvSessionLog`'s sink interface
(``write(rows)``, ``sync``, ``close``, a context manager; the file is created with O_EXCL, so a
log is never written over) and the channels of :mod:`controller.records.channels`:

- ``/telemetry``: every row given to :meth:`write`;
- ``/events``: derived from those rows: each fault bit latched and cleared, each warning on and
  off, each mode change, with the names and the clinician's words of
  :mod:`controller.kernels.faults`; and the record's own notes (:meth:`event`: a budget nearly
  spent, a new part);
- ``/can``, ``/audit``, ``/strides``: :meth:`can_frame`, :meth:`audit`, :meth:`stride`, called
  from other threads (the CAN listener, the console, the telemetry pump);
- metadata records: whatever ``metadata`` holds (the run configuration, the parameter set, the
  software version, the drive, the start time), each a name and a string map.

Log times are ``start_ns`` (the session's start, epoch ns) plus the row's ``t``.

Threads and time: every public method only puts its item on a queue and returns (microseconds);
one writer thread encodes, compresses and writes.  It closes the chunk in progress every
``chunk_s`` of wall time (and when it reaches ``chunk_bytes`` uncompressed) and fsyncs it, so a
crash, a kill or a power cut loses at most the last ``chunk_s`` of data plus the fsync's own time:
:mod:`controller.records.mcapread` reads a cut file up to its last complete chunk.  An fsync of
a big chunk on an SD card can take a long time; it stalls only the writer thread (the rows
queue up meanwhile, up to :attr:`MAX_PENDING_ROWS`; beyond that rows are dropped and counted in
:attr:`rows_dropped`, never the caller blocked).  :meth:`sync` and :meth:`close` wait for the
writer.  A write error (a full disk) stops the writer: the file is cut back to its last whole
chunk, the error is kept in :attr:`error` and raised by the next :meth:`write`, like the CSV log's.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import queue
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, Mapping, Optional, Sequence

import numpy as np
import mcap.writer as _mcap_writer
from mcap.writer import CompressionType, IndexType, Writer

from controller.kernels import telemetry
from controller.records.channels import CHANNELS, encode_json, encode_telemetry_block, events_of
from controller.records.csvlog import fsync_directory

__all__ = ["McapSessionLog", "PROFILE", "COMPRESSIONS", "ZSTD_LEVEL", "events_of"]

#: The MCAP header's profile: what the file is (readers check it).
PROFILE = "ankle.session"
#: Chunk compressions offered: the mcap library's (zstd level 3 by its default; lz4 is faster).
COMPRESSIONS = {"zstd": CompressionType.ZSTD, "lz4": CompressionType.LZ4, "none": CompressionType.NONE}

_TELEMETRY_NAMES = telemetry.TELEMETRY_COLUMNS
_T = telemetry.COLUMN["t"]


#: zstd level of the chunks: 9 keeps a minute of walking 20 % smaller than the library's level 3
#: for 0.2 s more CPU per minute (measured, bench/records.py).
ZSTD_LEVEL = 9


class _LevelledZstd:
    """mcap's Writer compresses a chunk with ``zstandard.compress(data)``: level 3, no option to
    choose.  This stands in for the module in ``mcap.writer``: the level is the calling thread's
    (a session record's writer thread sets it), level 3 for every other thread, as before."""

    def __init__(self, module):
        self._module = module
        self.local = threading.local()

    def compress(self, data, level=None):
        return self._module.compress(data, level if level is not None else getattr(self.local, "level", 3))

    def __getattr__(self, name):
        return getattr(self._module, name)


if getattr(_mcap_writer, "zstandard", None) is not None and not isinstance(_mcap_writer.zstandard, _LevelledZstd):
    _mcap_writer.zstandard = _LevelledZstd(_mcap_writer.zstandard)


_CAN_FORMAT = '{"t":%s,"id":%d,"extended":%s,"rx":%s,"dlc":%d,"data":"%s"}'
_JSON_BOOL = {True: "true", False: "false"}


def _log_ns(start_ns: int, t_s: np.ndarray) -> list:
    """Log times [epoch ns] of times ``t_s`` on the session's clock: the start where t is not
    finite, and clipped to what an MCAP log time holds (0..2**63) for an absurd t."""
    t = np.where(np.isfinite(t_s), t_s, 0.0)
    t = np.clip(t, -start_ns / 1e9, (2.0 ** 63 - 1e12 - start_ns) / 1e9)
    return (np.round(t * 1e9).astype(np.int64) + start_ns).clip(0).tolist()


class McapSessionLog:
    """One session's MCAP file (see the module docstring).

    ``columns``: the order of the rows given to :meth:`write`; every telemetry column must be
    among them (the file holds them all, by name).  ``metadata``: {record name: {key: value}};
    values that are not strings are written as JSON.  ``chunk_s`` [s]: the longest a chunk stays
    open (what a crash may lose); ``chunk_bytes``: a chunk is also closed at this uncompressed
    size; ``fsync_interval_s`` [s]: fsync after a chunk at most this often (0: every chunk);
    ``start_ns``: the session's start (epoch ns; the time of construction by default);
    ``compression``: a key of :data:`COMPRESSIONS`; ``zstd_level``: its level with zstd.
    """

    #: Rows allowed to wait for the writer (a minute at 2 kHz) before new ones are dropped.
    MAX_PENDING_ROWS = 120_000
    #: CAN frames allowed to wait for it (about a minute of a busy bus).
    MAX_PENDING_OTHER = 250_000

    def __init__(self, path, columns: Sequence[str], *, metadata: Optional[Mapping[str, Mapping[str, Any]]] = None,
                 chunk_s: float = 1.0, chunk_bytes: int = 1 << 20, fsync_interval_s: float = 1.0,
                 start_ns: Optional[int] = None, compression: str = "zstd", zstd_level: int = ZSTD_LEVEL):
        columns = list(columns)
        missing = [c for c in _TELEMETRY_NAMES if c not in columns]
        if missing:
            raise ValueError(f"session record: column(s) {', '.join(missing)} missing from the rows")
        if len(set(columns)) != len(columns):
            raise ValueError("session record: column names must be unique")
        if not 0.0 < chunk_s < float("inf"):
            raise ValueError(f"session record: chunk_s must be > 0 s, got {chunk_s!r}")
        if not 0.0 <= fsync_interval_s < float("inf"):
            raise ValueError(f"session record: fsync_interval_s must be >= 0 s, got {fsync_interval_s!r}")
        if compression not in COMPRESSIONS:
            raise ValueError(f"session record: compression must be one of {', '.join(COMPRESSIONS)}, "
                             f"got {compression!r}")
        from controller.records.logger import _create
        self.path = Path(path)
        self.columns = tuple(columns)
        self._width = len(columns)
        self._order = np.array([columns.index(c) for c in _TELEMETRY_NAMES])
        self.start_ns = time.time_ns() if start_ns is None else int(start_ns)
        self.chunk_s = float(chunk_s)
        self.zstd_level = int(zstd_level)
        self.fsync_interval_s = float(fsync_interval_s)
        self.rows_written = 0          # rows handed to the writer
        self.rows_dropped = 0          # rows refused because the writer was too far behind
        self.frames_dropped = 0        # CAN frames refused for the same reason
        self._pending_other = 0
        self.messages = {c.topic: 0 for c in CHANNELS}
        self.size_bytes = 0            # bytes on disk after the last closed chunk
        self.chunks = 0
        self.longest_fsync_s = 0.0     # the slowest chunk write + fsync so far (figures)
        self.error: Optional[OSError] = None
        self._fd = _create(self.path)
        self._file = os.fdopen(self._fd, "wb", buffering=1 << 20, closefd=True)
        self._writer = Writer(self._file, chunk_size=int(chunk_bytes), compression=COMPRESSIONS[compression],
                              index_types=IndexType.CHUNK | IndexType.METADATA, repeat_channels=True,
                              repeat_schemas=True)
        self._writer.start(profile=PROFILE, library="ankle-controller")
        self._ids: Dict[str, int] = {}
        for c in CHANNELS:
            sid = self._writer.register_schema(c.schema_name, "jsonschema", c.schema_bytes)
            self._ids[c.topic] = self._writer.register_channel(c.topic, "json", sid,
                                                               {"meaning": c.meaning})
        for name, record in (metadata or {}).items():
            self._writer.add_metadata(str(name), {str(k): v if isinstance(v, str) else json.dumps(v, default=str)
                                                  for k, v in record.items()})
        self._writer.add_metadata("session", {"start_ns": str(self.start_ns),
                                              "start_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                         time.gmtime(self.start_ns / 1e9)),
                                              "columns": json.dumps(list(_TELEMETRY_NAMES))})
        self._file.flush()
        os.fsync(self._fd)
        fsync_directory(self.path.parent)      # so the new file's name survives a power cut too
        self._good_size = self.size_bytes = self._file.tell()
        self._state: Dict[str, int] = {}
        self._queue: "queue.SimpleQueue" = queue.SimpleQueue()
        self._pending_rows = 0
        self._lock = threading.Lock()           # the counters shared with the callers
        self._room = threading.Condition(self._lock)    # the writer made room (write(wait=True))
        self._dropping = False                  # rows are being dropped (said once per episode)
        self._closed = False
        self._chunk_open_at: Optional[float] = None
        self._synced_at = time.monotonic()
        self._thread = threading.Thread(target=self._run, name=f"mcap-{self.path.name}", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ the sink
    def write(self, rows: np.ndarray, *, wait: bool = False) -> None:
        """Queue ``rows`` (shape (n, len(columns)), the constructor's column order); returns at once.
        Raises the writer's OSError (a full disk) once it has stopped.

        With the writer more than :attr:`MAX_PENDING_ROWS` behind (a stalled disk) the rows are
        dropped, counted in :attr:`rows_dropped` and said in ``/events`` (kind "log"), so that the
        device's telemetry pump never waits; ``wait=True`` (a writer of a finished run, a tool)
        waits for room instead, so nothing is dropped."""
        if self.error is not None:
            raise self.error
        if self._closed:
            raise ValueError(f"{self.path}: session record is closed")
        rows = np.asarray(rows, dtype=np.float64)
        if rows.ndim != 2 or rows.shape[1] != self._width:
            raise ValueError(f"session record: expected rows of shape (n, {self._width}), got {rows.shape}")
        if not len(rows):
            return
        with self._room:
            while wait and self._pending_rows and self._pending_rows + len(rows) > self.MAX_PENDING_ROWS:
                if self.error is not None:
                    raise self.error
                if self._closed:
                    raise ValueError(f"{self.path}: session record is closed")
                self._room.wait(0.1)
            drop = self._pending_rows + len(rows) > self.MAX_PENDING_ROWS
            first = drop and not self._dropping
            self._dropping = drop
            if drop:
                self.rows_dropped += len(rows)
            else:
                self._pending_rows += len(rows)
                self.rows_written += len(rows)
        if first:
            t = float(rows[0, self.columns.index("t")]) if "t" in self.columns else 0.0
            self.event(t, "log", "rows_dropped", "the record fell more than a minute behind (a stalled "
                       "disk?): telemetry rows from here on are dropped until it catches up")
        if not drop:
            self._queue.put(("rows", rows[:, self._order].copy()))

    __call__ = write

    def can_frame(self, msg, rx: bool = True, *, t_s: Optional[float] = None) -> None:
        """One CAN frame (a ``can.Message``) for ``/can``; ``t_s``: its time on the session's clock
        (lock-step), else ``msg.timestamp`` is taken as epoch seconds (python-can's, SocketCAN's).
        Only queues the frame's fields (a few us): the writer formats them."""
        if self._closed or self.error is not None:
            return
        if self._pending_other >= self.MAX_PENDING_OTHER:
            self.frames_dropped += 1       # the writer is far behind (a stalled disk): never the caller
            return
        self._pending_other += 1           # approximate (no lock): a bound, not a count
        self._queue.put(("can", msg.timestamp if t_s is None else None, t_s, msg.arbitration_id,
                         msg.is_extended_id, rx, msg.dlc, bytes(msg.data)))

    def audit(self, record: Mapping[str, Any]) -> None:
        """One audit record (as :meth:`controller.console.audit.AuditLog.record` returns it) for
        ``/audit``: stamped with its own UTC time."""
        if self._closed or self.error is not None:
            return
        body = {"time": record.get("time_utc", record.get("time", "")), "role": record.get("role", ""),
                "action": record.get("action", ""), "parameter": record.get("parameter") or None,
                "old": record.get("old") or None, "new": record.get("new") or None,
                "outcome": record.get("detail", record.get("outcome")) or None}
        self._queue.put(("/audit", time.time_ns(), body))

    def stride(self, t: float, fields: Mapping[str, Any]) -> None:
        """One stride's symmetry record (its heel strike ``t`` [s], its fields by name) for ``/strides``."""
        if self._closed or self.error is not None:
            return
        self._queue.put(("/strides", _log_ns(self.start_ns, np.array([float(t)]))[0],
                         {"t": float(t), "fields": dict(fields)}))

    def event(self, t: float, kind: str, name: str, text: str) -> None:
        """An ``/events`` message of the record's own (kind "log": its budget, a new part, ...)."""
        if self._closed or self.error is not None:
            return
        self._queue.put(("/events", _log_ns(self.start_ns, np.array([float(t)]))[0],
                         {"t": float(t), "kind": kind, "name": name, "text": text}))

    def sync(self) -> None:
        """Close the chunk in progress and fsync it now; waits for the writer."""
        if self._closed or self.error is not None:
            return
        done = threading.Event()
        self._queue.put(("sync", done))
        while not done.wait(0.1):
            if not self._thread.is_alive():
                break
        if self.error is not None:
            raise self.error

    def close(self) -> None:
        """Write what is queued, the summary and the footer, fsync and close; idempotent."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(("close", None))
        self._thread.join()
        if self.error is not None:
            with contextlib.suppress(OSError):
                self._file.close()
            raise self.error

    def __enter__(self) -> "McapSessionLog":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        return self._closed

    # ------------------------------------------------------------------ the writer thread
    def _run(self) -> None:
        if isinstance(_mcap_writer.zstandard, _LevelledZstd):
            _mcap_writer.zstandard.local.level = self.zstd_level
        try:
            while True:
                timeout = None
                if self._chunk_open_at is not None:
                    timeout = max(0.0, self._chunk_open_at + self.chunk_s - time.monotonic())
                try:
                    item = self._queue.get(timeout=timeout)
                except queue.Empty:
                    item = None
                if item is not None:
                    kind = item[0]
                    if kind == "rows":
                        self._rows(item[1])
                    elif kind == "sync":
                        self._end_chunk(force_fsync=True)
                        item[1].set()
                        continue
                    elif kind == "can":
                        self._pending_other -= 1
                        self._can(item)
                    elif kind == "close":
                        self._end_chunk(force_fsync=True)
                        self._writer.finish()
                        self._file.flush()
                        os.fsync(self._fd)
                        self.size_bytes = self._file.tell()
                        self._file.close()
                        return
                    else:
                        self._message(kind, item[1], item[2])
                if self._chunk_open_at is not None and time.monotonic() - self._chunk_open_at >= self.chunk_s:
                    # a chunk closed on time is fsynced too unless fsyncs were asked to be rarer:
                    # else one closed just short of the interval would wait for the next (2 s lost)
                    self._end_chunk(force_fsync=self.fsync_interval_s <= self.chunk_s)
        except OSError as e:
            self.error = e
            self._cut_back()
        except BaseException as e:      # a defect: kept and raised to the caller, never silent
            self.error = OSError(f"session record writer stopped: {type(e).__name__}: {e}")
            self._cut_back()
        finally:
            self._release_waiters()

    def _release_waiters(self) -> None:
        """After the writer stopped: wake any sync() waiting, drop what is queued."""
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item[0] == "sync":
                item[1].set()

    def _cut_back(self) -> None:
        """A failed write: cut the file back to its last whole chunk, so it stays readable."""
        with contextlib.suppress(OSError, ValueError):
            os.ftruncate(self._fd, self._good_size)
        with contextlib.suppress(OSError, ValueError):
            self._file.close()

    def _rows(self, rows: np.ndarray) -> None:
        with self._room:
            self._pending_rows -= len(rows)
            self._room.notify_all()
        if self._chunk_open_at is None:
            self._chunk_open_at = time.monotonic()
        cid, add = self._ids["/telemetry"], self._writer.add_message
        start, t = self.start_ns, rows[:, _T]
        log_ns = _log_ns(start, t)
        for data, ns in zip(encode_telemetry_block(rows), log_ns):
            add(cid, ns, data, ns)
        self.messages["/telemetry"] += len(rows)
        for t_ev, kind, name, text in events_of(rows, self._state):
            ns = int(_log_ns(start, np.array([t_ev]))[0])
            self._message("/events", ns, {"t": t_ev, "kind": kind, "name": name, "text": text})

    def _can(self, item) -> None:
        _, stamp_s, t_s, can_id, extended, rx, dlc, data = item
        if t_s is None:
            stamp_s = float(stamp_s) if stamp_s is not None else math.nan
            t_s = stamp_s - self.start_ns / 1e9
        t_s = float(t_s)
        log_ns = _log_ns(self.start_ns, np.array([t_s]))[0]
        if self._chunk_open_at is None:
            self._chunk_open_at = time.monotonic()
        # the schema's fields in one template (json.dumps per frame costs 3x more at 4000 frames/s)
        body = _CAN_FORMAT % ("%.6f" % t_s if math.isfinite(t_s) else "null", can_id, _JSON_BOOL[bool(extended)], _JSON_BOOL[bool(rx)], dlc, data.hex())
        self._writer.add_message(self._ids["/can"], log_ns, body.encode(), log_ns)
        self.messages["/can"] += 1

    def _message(self, topic: str, log_ns: int, body: Mapping[str, Any]) -> None:
        if self._chunk_open_at is None:
            self._chunk_open_at = time.monotonic()
        self._writer.add_message(self._ids[topic], log_ns, encode_json(body), log_ns)
        self.messages[topic] += 1

    def _end_chunk(self, force_fsync: bool = False) -> None:
        """Close the chunk in progress, write it and (when due) fsync it."""
        began = time.perf_counter()
        if self._chunk_open_at is not None:
            self._writer.flush()             # finalises the chunk, writes it, flushes the stream
            self.chunks += 1
            self._chunk_open_at = None
        now = time.monotonic()
        if force_fsync or now - self._synced_at >= self.fsync_interval_s:
            os.fsync(self._fd)
            self._synced_at = now
        self._good_size = self.size_bytes = self._file.tell()
        self.longest_fsync_s = max(self.longest_fsync_s, time.perf_counter() - began)
