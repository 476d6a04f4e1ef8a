"""The shared memory between the tick's process and the supervisor: one block, three parts.

``stats``: int64 words the runtime writes (its state, the cadence's counters)
and the supervisor writes (the stop request).  ``snapshot``: the parameter
vector (:class:`controller._ring.ParamSnapshot`).  ``ring``: the telemetry rows
(:class:`controller._ring.TelemetryRing`).  The block is a file in /dev/shm,
mapped by both processes; the creator unlinks it once the runtime has mapped it,
so nothing is left behind when either process dies.
"""
from __future__ import annotations

import contextlib
import mmap
import os
import uuid
from pathlib import Path

import numpy as np

from controller._ring import ParamSnapshot, TelemetryRing, ring_bytes, snapshot_bytes
from controller._tick import TELEMETRY_COLUMNS
from controller.params import REGISTRY

__all__ = ["SharedChannels", "STAT", "RUN_STATES", "REQUESTS"]

#: Index of each word in ``stats``.  ticks .. max_late_ns are Cadence.export's order.
STAT = {name: i for i, name in enumerate((
    "ticks", "missed", "skipped", "overruns", "max_late_ns",
    "state", "stop", "start_ns", "params_applied", "params_rejected", "ring_dropped",
    "req_seq", "req_code", "req_arg", "ack_seq", "link_down",
))}
#: Requests to the tick (``req_code``), answered between ticks (see controller.runtime.Requests).
REQUESTS = {"clear_faults": 1, "select_mode": 2}
#: Values of ``stats[STAT["state"]]``.
RUN_STATES = ("starting", "running", "stopped", "failed")
_STATS_BYTES = 256
_REPLY_BYTES = 256             # the tick's answer to the last request, UTF-8, NUL-padded
_ALIGN = 64
_SHM_DIR = Path("/dev/shm") if Path("/dev/shm").is_dir() else None


def _aligned(n: int) -> int:
    return (n + _ALIGN - 1) // _ALIGN * _ALIGN


class SharedChannels:
    """The runtime's shared block, created by the supervisor or attached by the runtime."""

    def __init__(self, path: str, *, capacity: int = 4096, create: bool = False):
        self.path = path
        self.capacity = capacity
        self.width = len(TELEMETRY_COLUMNS)
        self.n_params = len(REGISTRY)
        snap_at = _STATS_BYTES + _REPLY_BYTES
        ring_at = snap_at + _aligned(snapshot_bytes(self.n_params))
        size = ring_at + _aligned(ring_bytes(capacity, self.width))
        flags = os.O_RDWR | (os.O_CREAT | os.O_EXCL if create else 0)
        fd = os.open(path, flags, 0o600)
        try:
            if create:
                os.ftruncate(fd, size)
            elif os.fstat(fd).st_size < size:
                raise ValueError(f"{path}: shared block is {os.fstat(fd).st_size} bytes, expected {size}")
            self._map = mmap.mmap(fd, size)
        finally:
            os.close(fd)
        view = memoryview(self._map)
        self.stats = np.frombuffer(self._map, dtype=np.int64, count=_STATS_BYTES // 8)
        self.reply = np.frombuffer(self._map, dtype=np.uint8, count=_REPLY_BYTES, offset=_STATS_BYTES)
        self.snapshot = ParamSnapshot(view[snap_at:ring_at], self.n_params, reset=create)
        self.ring = TelemetryRing(view[ring_at:size], capacity, self.width, reset=create)
        if create:
            self.stats[:] = 0
            self.reply[:] = 0

    @classmethod
    def create(cls, capacity: int = 4096) -> "SharedChannels":
        """A new block under /dev/shm (or the temp directory where there is none)."""
        directory = _SHM_DIR or Path(os.environ.get("TMPDIR", "/tmp"))
        return cls(str(directory / f"ankle-rt-{os.getpid()}-{uuid.uuid4().hex[:8]}"),
                   capacity=capacity, create=True)

    def unlink(self) -> None:
        """Remove the file; the mappings stay valid until closed."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

    def stat(self, name: str) -> int:
        return int(self.stats[STAT[name]])

    def set_stat(self, name: str, value: int) -> None:
        self.stats[STAT[name]] = value

    def set_reply(self, text: str) -> None:
        """The tick's answer (cut to fit)."""
        raw = text.encode("utf-8")[:_REPLY_BYTES - 1]
        self.reply[:] = 0
        self.reply[:len(raw)] = np.frombuffer(raw, dtype=np.uint8)

    def get_reply(self) -> str:
        raw = self.reply.tobytes()
        return raw[:raw.index(0) if 0 in raw else len(raw)].decode("utf-8", "replace")

    @property
    def state(self) -> str:
        return RUN_STATES[self.stat("state")]

    def close(self) -> None:
        """Drop the views and unmap (views still held elsewhere keep the mapping alive)."""
        self.stats = self.reply = self.snapshot = self.ring = None
        with contextlib.suppress(BufferError):
            self._map.close()
