"""The shared memory between the tick's process and the supervisor: one block, five parts.

``stats``: int64 words the runtime writes (its state, the cadence's counters)
and the supervisor writes (the stop request).  ``snapshot``: a parameter change
the supervisor publishes, its whole ramp (:class:`controller.runtime._ring.ParamSnapshot`
of :func:`~controller.runtime._ring.retune_length` values, built by
:mod:`controller.runtime.retune`).  ``in_force``: the vector the tick publishes back, the
set it accepted (in force, or ramping in), with the outcome of every change it took in
``stats`` (``params_taken``, ``params_accepted``, ``params_refused``, the refusal's code and
the parameters it names); ``params`` joins the three as the
:class:`~controller.runtime._ring.ParamChannel` the tick takes changes from, and
:meth:`SharedChannels.params_outcome` says a refusal in words.  ``ring``: the
telemetry rows (:class:`controller.runtime._ring.TelemetryRing`).  The block is a file in /dev/shm,
mapped by both processes; the creator unlinks it once the runtime has mapped it,
so nothing is left behind when either process dies.
"""
from __future__ import annotations

import contextlib
import mmap
import os
import uuid
from pathlib import Path
from typing import Optional, Tuple

import numpy as np

from controller.runtime._ring import (ParamChannel, ParamSnapshot, TelemetryRing, memory_fence, retune_length,
                                      ring_bytes, snapshot_bytes)
from controller.kernels._tick import TELEMETRY_COLUMNS
from controller.params.registry import REGISTRY

__all__ = ["SharedChannels", "STAT", "RUN_STATES", "REQUESTS"]

#: Index of each word in ``stats``.  ticks .. max_late_ns are Cadence.export's order.
STAT = {name: i for i, name in enumerate((
    "ticks", "missed", "skipped", "overruns", "max_late_ns",
    "state", "stop", "start_ns", "params_applied", "params_rejected", "ring_dropped",
    "req_seq", "req_code", "req_arg", "ack_seq", "link_down",
    # the outcome of each change the tick took (controller.kernels._tick.Tick.take_params), by
    # generation: the last one taken (written last), the last one accepted, the last one refused;
    # the last refusal's code and the parameters it names (controller.runtime.retune.refusal_text)
    "params_taken", "params_accepted", "params_refused",
    "params_refusal_code", "params_refusal_mask0", "params_refusal_mask1",
))}
#: Requests to the tick (``req_code``), answered between ticks (see controller.runtime.process.Requests).
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
        force_at = snap_at + _aligned(snapshot_bytes(retune_length(self.n_params)))
        ring_at = force_at + _aligned(snapshot_bytes(self.n_params))
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
        self.snapshot = ParamSnapshot(view[snap_at:force_at], retune_length(self.n_params), reset=create)
        self.in_force = ParamSnapshot(view[force_at:ring_at], self.n_params, reset=create)
        self.ring = TelemetryRing(view[ring_at:size], capacity, self.width, reset=create)
        if create:
            self.stats[:] = 0
            self.reply[:] = 0
        self.params = ParamChannel(self.snapshot, self.in_force, self.stats, STAT)

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
        _put_text(self.reply, text)

    def get_reply(self) -> str:
        return _get_text(self.reply)

    # ---- the outcome of parameter snapshots (the tick writes, the supervisor reads) ----
    def report_accepted(self, generation: int, values) -> None:
        """Tick's side: snapshot ``generation`` was accepted; ``values`` (registry order) is now the
        set in force or ramping in.  The vector lands before the words that announce it."""
        self.in_force.publish(np.asarray(values, dtype=float))
        self.set_stat("params_accepted", generation)
        memory_fence()
        self.set_stat("params_taken", generation)

    def params_outcome(self, generation: int) -> Optional[Tuple[str, str]]:
        """Supervisor's side: what became of change ``generation``: None while the tick has not
        taken it, ("accepted", "") or ("refused", reason), or ("superseded", "") when the tick took
        a later one first (it takes the newest at each stride boundary)."""
        from controller.runtime.retune import outcome
        return outcome(self.params, generation)

    def read_in_force(self, out: np.ndarray) -> bool:
        """Supervisor's side: copy the set the tick last accepted into ``out`` (registry order)
        if it is newer than the last one read; False if there is none newer.  A copy torn by a
        publication in progress is read again (the tick publishes rarely, between ticks)."""
        got = False
        for _ in range(1000):
            got = self.in_force.poll(out) or got
            if self.in_force.taken == self.in_force.generation:
                break
        return got

    @property
    def state(self) -> str:
        return RUN_STATES[self.stat("state")]

    def close(self) -> None:
        """Drop the views and unmap (views still held elsewhere keep the mapping alive)."""
        self.stats = self.reply = self.snapshot = self.in_force = self.ring = self.params = None
        with contextlib.suppress(BufferError):
            self._map.close()


def _put_text(buffer: np.ndarray, text: str) -> None:
    """``text`` as UTF-8 into the NUL-padded ``buffer`` (cut to fit, never mid-character)."""
    raw = text.encode("utf-8")[:len(buffer) - 1].decode("utf-8", "ignore").encode("utf-8")
    buffer[:] = 0
    buffer[:len(raw)] = np.frombuffer(raw, dtype=np.uint8)


def _get_text(buffer: np.ndarray) -> str:
    raw = buffer.tobytes()
    return raw[:raw.index(0) if 0 in raw else len(raw)].decode("utf-8", "replace")
