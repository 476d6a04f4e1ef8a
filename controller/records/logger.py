"""Loggers that run off the real-time tick path: the session CSV and the raw CAN traffic.

Neither is ever called from the tick.  The supervisor thread hands :class:`CsvSessionLog` the
telemetry rows it drained from shared memory; :class:`CanTrafficLog` listens on a bus socket of
its own.  Both refuse to overwrite an existing file: a log is never lost to a reused name.
"""
from __future__ import annotations

import contextlib
import os
import threading
import time
from pathlib import Path
from typing import Callable, Optional, Sequence

import can
import numpy as np
from can.util import channel2int

from controller.kernels import telemetry
from controller.records.csvlog import CsvRows, fsync_directory
from hal.bus import BusConfig, open_bus

__all__ = ["FIRST_COLUMNS", "INTEGER_COLUMNS", "CsvSessionLog", "LogSwitch", "CanTrafficLog", "RecordedCanLog",
           "CanSessionTap", "session_metadata", "open_session_record"]

#: DESIGN.md's replay columns, then the torques, faults and mode; every other column follows.
FIRST_COLUMNS = ("t", "shank_gyro", "load", "ankle_angle", "phase", "heel_strike", "toe_off", "walking",
                 "torque_Nm", "torque_cmd_Nm", "faults", "mode")
#: Columns written as integers (when the value is integral; anything else keeps its float repr):
#: the telemetry columns whose unit is a flag, code, word of bits or count (controller.kernels.telemetry).
INTEGER_COLUMNS = telemetry.INTEGER_COLUMNS


def _exists(path: Path) -> FileExistsError:
    return FileExistsError(f"{path}: already exists; logs are never overwritten, choose a new file name")


def _create(path: Path, flags: int = 0) -> int:
    """A descriptor of the new file ``path``; O_EXCL, so an existing file is never overwritten."""
    try:
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | flags, 0o644)
    except FileExistsError:
        raise _exists(path) from None


class CsvSessionLog:
    """The session's CSV log, written incrementally as telemetry rows arrive.

    File columns: :data:`FIRST_COLUMNS`, then every other column of ``columns`` in its order.
    Cells, by :class:`~controller.records.csvlog.CsvRows` (the writer of ``sim/report.py`` too):
    floats with ``repr`` (read back bit for bit), :data:`INTEGER_COLUMNS` as integers, NaN and a
    negative ``phase`` (not walking) empty.

    Durability: every :meth:`write` goes straight to an O_APPEND descriptor (no Python buffer),
    as whole lines, so a crash of this process loses nothing already written.  The file is
    fsynced at most every ``fsync_interval_s`` [s] and on :meth:`close`, so a power cut loses at
    most that interval; a torn last line is dropped by ``csvlog.read_columns``.  fsync may block
    for a long time on an SD card, which is why this never runs on the tick path.

    Speed: 64 000 rows/s of CPU time for 33 columns (35 since the sound-side columns) in 1000-row batches (15 ms per second of
    ticks) on one core of an x86 development machine; not yet measured on a board.
    ``tests/test_logger.py`` prints the figure.  One writer thread only.
    """

    def __init__(self, path, columns: Sequence[str], *, fsync_interval_s: float = 1.0):
        columns = list(columns)
        missing = [c for c in FIRST_COLUMNS if c not in columns]
        if missing:
            raise ValueError(f"session log: column(s) {', '.join(missing)} missing from the telemetry")
        if len(set(columns)) != len(columns) or any(set(c) & set(',"\r\n') for c in columns):
            raise ValueError("session log: column names must be unique, with no comma, quote or newline")
        if not 0.0 <= fsync_interval_s < float("inf"):
            raise ValueError(f"session log: fsync_interval_s must be >= 0 s, got {fsync_interval_s!r}")
        self.path = Path(path)
        self.columns = tuple(FIRST_COLUMNS) + tuple(c for c in columns if c not in FIRST_COLUMNS)
        self.rows_written = 0
        self._width = len(columns)
        self._order = np.array([columns.index(c) for c in self.columns])
        self._csv = CsvRows(self.columns, integer=INTEGER_COLUMNS, blank_negative=("phase",))
        self._fsync_interval_s = float(fsync_interval_s)
        self._fd: Optional[int] = _create(self.path, os.O_APPEND)   # bare: no buffer to lose
        self._size = 0
        self._synced_at = time.monotonic()
        self._write_all(self._csv.header())
        self.sync()
        fsync_directory(self.path.parent)   # so the new file's name survives a power cut too

    def write(self, rows: np.ndarray) -> None:
        """Append ``rows`` (shape (n, len(columns)), in the constructor's column order)."""
        if self._fd is None:
            raise ValueError(f"{self.path}: session log is closed")
        rows = np.asarray(rows, dtype=np.float64)
        if rows.ndim != 2 or rows.shape[1] != self._width:
            raise ValueError(f"session log: expected rows of shape (n, {self._width}), got {rows.shape}")
        if len(rows):
            self._write_all(self._csv.rows(rows[:, self._order]))
            self.rows_written += len(rows)
        if time.monotonic() - self._synced_at >= self._fsync_interval_s:
            self.sync()

    def sync(self) -> None:
        """fsync now (:meth:`write` does it once the interval has passed)."""
        if self._fd is not None:
            os.fsync(self._fd)
            self._synced_at = time.monotonic()

    def close(self) -> None:
        """fsync and close; idempotent."""
        if self._fd is not None:
            try:
                self.sync()
            finally:
                os.close(self._fd)
                self._fd = None

    def __enter__(self) -> "CsvSessionLog":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _write_all(self, data: bytes) -> None:
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self._fd, view):]
        except OSError:
            # A full disk: cut the partial line off so the file stays readable and later rows
            # (once there is space) do not land after a ragged line.
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, self._size)
            raise
        self._size += len(data)


_CAN_WRITERS = {"blf": (can.BLFWriter, "wb"), "asc": (can.ASCWriter, "w")}


class LogSwitch:
    """A telemetry sink the console turns on and off: each ``start`` opens a new session record
    in ``directory``, named by the local time, and ``stop`` closes it.  ``fmt``: "mcap" (an
    :class:`~controller.records.mcaplog.McapSessionLog`, with the audit records and strides given
    to :meth:`audit` and :meth:`stride` while it runs) or "csv" (a :class:`CsvSessionLog`).

    The sink runs on the telemetry thread, ``start``/``stop`` on the console's; a lock keeps a
    batch from landing in a closing file.  A log that fails to write (a full disk) is closed
    and the error kept for :meth:`status`; the controller is never affected.
    """

    def __init__(self, directory, columns: Sequence[str], fmt: str = "csv",
                 metadata: Optional[dict] = None):
        if fmt not in ("csv", "mcap"):
            raise ValueError(f"log format must be csv or mcap, got {fmt!r}")
        self.directory = Path(directory)
        self.columns = tuple(columns)
        self.fmt = fmt
        self.metadata = dict(metadata or {})
        self.log = None
        self.error: Optional[str] = None
        self._lock = threading.Lock()

    def __call__(self, rows: np.ndarray) -> None:
        with self._lock:
            if self.log is None:
                return
            try:
                self.log.write(rows)
            except OSError as e:
                self.error = f"{self.log.path}: {e.strerror or e}; the log was stopped"
                self._close()

    def audit(self, record) -> None:
        """An audit record for the running MCAP log's /audit channel (nothing for CSV or none)."""
        log = self.log
        if log is not None and hasattr(log, "audit"):
            log.audit(record)

    def stride(self, t: float, fields) -> None:
        """A stride record for the running MCAP log's /strides channel."""
        log = self.log
        if log is not None and hasattr(log, "stride"):
            log.stride(t, fields)

    def can_frame(self, msg, rx: bool = True, *, t_s=None) -> None:
        """A CAN frame for the running MCAP log's /can channel."""
        log = self.log
        if log is not None and hasattr(log, "can_frame"):
            log.can_frame(msg, rx, t_s=t_s)

    def start(self, before: Optional[Callable[[Path], None]] = None) -> Path:
        """Open a new log; returns its path.  FileExistsError if one is already running.

        ``before(path)``, if given, is called with the chosen path before the file is created (the
        console records the start there); if it raises, no log is started."""
        with self._lock:
            if self.log is not None:
                raise FileExistsError(f"already logging to {self.log.path}")
            self.directory.mkdir(parents=True, exist_ok=True)
            stamp = time.strftime("%Y%m%d-%H%M%S")
            path = self.directory / f"ankle-{stamp}.{self.fmt}"
            for n in range(2, 100):              # two starts in one second: a new name, never reuse
                if not path.exists():
                    break
                path = self.directory / f"ankle-{stamp}-{n}.{self.fmt}"
            if before is not None:
                before(path)
            if self.fmt == "mcap":
                from controller.records.mcaplog import McapSessionLog
                self.log = McapSessionLog(path, self.columns, metadata=self.metadata)
            else:
                self.log = CsvSessionLog(path, self.columns)
            self.error = None
            return path

    def stop(self):
        """Close the running log (returned, for its path and row count); None if none ran."""
        with self._lock:
            log = self.log
            self._close()
            return log

    def _close(self) -> None:
        if self.log is not None:
            try:
                self.log.close()
            except OSError as e:
                self.error = f"{self.log.path}: {e.strerror or e}"
            self.log = None


class _CountingListener(can.Listener):
    """Passes each frame to the writer and counts it (runs in the notifier's thread)."""

    def __init__(self, writer: can.Listener):
        self.writer = writer
        self.frames = 0

    def on_message_received(self, msg: can.Message) -> None:
        # BLF keeps the channel as a 16-bit number taken from the channel's trailing digits
        # (python-can's channel2int): "can0" -> 0, but a name such as a virtual bus's
        # "bench-...82540" would overflow it and kill the recording thread.  Such a frame goes in
        # under the writer's default channel instead.
        number = channel2int(msg.channel)
        if number is not None and not 0 <= number <= 0xFFFF:
            msg.channel = None
        self.writer.on_message_received(msg)
        self.frames += 1

    def stop(self) -> None:
        self.writer.stop()


class _BusTap:
    """A bus connection of its own (``hal.bus.open_bus``, a second socket as candump's) with a
    python-can notifier handing every frame it sees to a listener, off the tick path.
    ``make_listener`` makes that listener (a ``can.Listener`` counting ``frames``) once, in
    :meth:`start`: a file log creates its file only then."""

    def __init__(self, bus_config: BusConfig, make_listener: Callable[[], can.Listener]):
        self.bus_config = bus_config
        self._make_listener = make_listener
        self._bus: Optional[can.BusABC] = None
        self._notifier: Optional[can.Notifier] = None
        self._listener = None

    @property
    def frames(self) -> int:
        """Frames recorded so far."""
        return self._listener.frames if self._listener is not None else 0

    @property
    def error(self) -> Optional[Exception]:
        """What stopped the recording thread (a full disk, a bus error), or None."""
        return self._notifier.exception if self._notifier is not None else None

    def start(self) -> None:
        """Open the bus and start recording; a second call does nothing."""
        if self._bus is not None:
            return
        bus = open_bus(self.bus_config)
        try:
            self._listener = self._make_listener()
            # timeout: how long stop() may wait for the notifier's recv() to return
            self._notifier = can.Notifier(bus, [self._listener], timeout=0.1)
        except BaseException:
            bus.shutdown()
            raise
        self._bus = bus

    def stop(self) -> None:
        """Stop recording (the listener is stopped after the notifier's thread), close the bus."""
        if self._bus is None:
            return
        try:
            self._notifier.stop()   # joins its thread, then stops the listener
        finally:
            self._bus.shutdown()
            self._bus = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


class CanTrafficLog(_BusTap):
    """Raw CAN traffic to a BLF or ASC file, with python-can's own writers, off the tick path.

    It opens its own connection to the bus (``hal.bus.open_bus``), a second socket as candump
    does: on SocketCAN a socket sees every frame on the bus, the loop's own sends included.
    ``fmt`` is "blf" or "asc"; by default the path's suffix decides.

    What a crash loses: BLF is written in compressed blocks of 128 KiB uncompressed (about 2700
    classic frames) and its header is completed by :meth:`stop`; after a crash ``can.BLFReader``
    still reads every complete block, so the last unflushed block is lost.  ASC is line text
    behind Python's file buffers: a crash loses those (some KiB) and may leave a torn line.
    A stopped log is complete; it cannot be started again (its file exists).
    """

    def __init__(self, bus_config: BusConfig, path, *, fmt: Optional[str] = None):
        self.path = Path(path)
        self.fmt = (fmt if fmt is not None else self.path.suffix.lstrip(".")).lower()
        if self.fmt not in _CAN_WRITERS:
            raise ValueError(f"{self.path}: CAN log format {self.fmt!r} unknown; "
                             f"allowed: {', '.join(sorted(_CAN_WRITERS))}")
        if self.path.exists():   # fail early; start() creates the file with O_EXCL anyway
            raise _exists(self.path)
        super().__init__(bus_config, self._file_listener)

    def _file_listener(self) -> can.Listener:
        writer_cls, mode = _CAN_WRITERS[self.fmt]
        file = os.fdopen(_create(self.path), mode, **({"encoding": "utf-8"} if mode == "w" else {}))
        return _CountingListener(writer_cls(file))      # stop() flushes, completes and closes the file


class RecordedCanLog:
    """Frames recorded on an in-process bus (:class:`hal._link.FrameRecorder`) to a BLF or ASC file.

    The lock-step simulator's CAN log: the frames carry the simulated time they were sent at, so
    the log lines up with the run's telemetry and opens in any CAN tool.  ``write`` takes what
    ``FrameRecorder.drain`` returns; ``close`` completes the file.  The file is created new (an
    existing one is never overwritten).
    """

    def __init__(self, path, *, fmt: Optional[str] = None):
        self.path = Path(path)
        self.fmt = (fmt if fmt is not None else self.path.suffix.lstrip(".")).lower()
        if self.fmt not in _CAN_WRITERS:
            raise ValueError(f"{self.path}: CAN log format {self.fmt!r} unknown; "
                             f"allowed: {', '.join(sorted(_CAN_WRITERS))}")
        writer_cls, mode = _CAN_WRITERS[self.fmt]
        file = os.fdopen(_create(self.path), mode, **({"encoding": "utf-8"} if mode == "w" else {}))
        self._writer = writer_cls(file)
        self.frames = 0

    def write(self, frames) -> None:
        """Frames as ``(t_s, can_id, flags, data)`` (flags: hal._link's 1 extended, 2 remote)."""
        for t_s, can_id, flags, data in frames:
            self._writer.on_message_received(can.Message(
                timestamp=t_s, arbitration_id=can_id, is_extended_id=bool(flags & 1),
                is_remote_frame=bool(flags & 2), dlc=len(data), data=data, channel=0))
        self.frames += len(frames)

    def close(self) -> None:
        """Flush and close the file (complete and readable); idempotent."""
        if self._writer is not None:
            self._writer.stop()
            self._writer = None



class _SessionListener(can.Listener):
    """Hands each frame to a session record's ``can_frame`` (runs in the notifier's thread)."""

    def __init__(self, session):
        self.session = session
        self.frames = 0

    def on_message_received(self, msg: can.Message) -> None:
        self.session.can_frame(msg, bool(getattr(msg, "is_rx", True)))
        self.frames += 1


class CanSessionTap(_BusTap):
    """The raw CAN traffic into a session record's ``/can`` channel: a bus connection of its own
    (as :class:`CanTrafficLog`), every frame it sees handed to ``session.can_frame`` on
    python-can's notifier thread (which only queues it: the session's writer thread encodes and
    writes)."""

    def __init__(self, bus_config: BusConfig, session):
        super().__init__(bus_config, lambda: _SessionListener(session))
        self.session = session


def session_metadata(*, run_config=None, params=None, drive=None, extra=None) -> dict:
    """The metadata records of a session file: ``software`` (version, Python, host), ``run``
    (the run configuration as plain data), ``params`` (every parameter, repr), ``drive``."""
    import platform
    import sys
    try:
        from importlib.metadata import version
        release = version("ankle-controller")
    except Exception:                    # not installed as a package (a source tree): no version to say
        release = "unknown"
    out = {"software": {"package": "ankle-controller", "version": release, "python": sys.version.split()[0],
                        "host": platform.node(), "profile": "ankle.session"}}
    if run_config is not None:
        out["run"] = {k: v for k, v in run_config.items()}
    if params is not None:
        out["params"] = {name: repr(value) for name, value in params.items()}
    if drive is not None:
        out["drive"] = dict(drive)
    out.update(extra or {})
    return out


def open_session_record(path, columns, *, metadata=None, say=lambda line: None, rotate_mb=None,
                        rotate_min=None, budget_gb=None, reserve_mb=None, **options):
    """A session record at ``path`` by its suffix: ``.mcap`` a
    :class:`controller.records.retention.RotatingSession` (parts, budget, reserve as given),
    anything else a :class:`CsvSessionLog`."""
    if Path(path).suffix.lower() != ".mcap":
        return CsvSessionLog(path, columns)
    from controller.records.retention import Retention, RotatingSession
    retention = None
    if budget_gb is not None or reserve_mb is not None:
        retention = Retention(Path(path).parent, (budget_gb if budget_gb is not None else float("inf")) * 1e9,
                              (reserve_mb or 0.0) * 1e6, say=say)
    return RotatingSession(path, columns, metadata=metadata, retention=retention, say=say,
                           rotate_bytes=(rotate_mb * 1e6) if rotate_mb is not None else float("inf"),
                           rotate_s=(rotate_min * 60.0) if rotate_min is not None else float("inf"), **options)
