"""The control loop: read -> update -> write, with time passed in.

:class:`HostLoop` is the host side of one tick: drain the bus into the
:class:`~controller._tick.Tick`, run the kernels, send the driver frame, write
the telemetry row.  Who decides *when* a tick happens is the caller's business:
the simulator's lock-step harness (:mod:`sim.harness`) or, on the board, the
real-time runner.  Nothing here reads a clock.
"""
from __future__ import annotations

from typing import Mapping

import can
import numpy as np

from controller._tick import TELEMETRY_COLUMNS, Tick
from controller.params import ParamSet
from hal.ak import check_mit_range

__all__ = ["HostLoop", "build_tick", "TELEMETRY_COLUMNS", "telemetry_table"]


def build_tick(params: ParamSet, mit_range: Mapping[str, float], driver_id: int,
               reply_id: int = 0x000) -> Tick:
    """A configured tick kernel for one AK driver in MIT mode.

    ``mit_range`` is checked again here (hal.errors.ConfigError naming the field): the
    codec divides by each range's width, so a bad range must never reach the tick.
    """
    if not isinstance(params, ParamSet):
        raise TypeError("params must be a validated controller.params.ParamSet")
    tick = Tick()
    tick.configure(params, check_mit_range(mit_range), driver_id, reply_id)
    return tick


def telemetry_table(rows: int) -> np.ndarray:
    """A preallocated telemetry table (rows x ``TELEMETRY_COLUMNS``), NaN-filled."""
    return np.full((rows, len(TELEMETRY_COLUMNS)), np.nan)


class HostLoop:
    """One host tick per :meth:`tick`: read, update, write, publish."""

    def __init__(self, tick: Tick, bus: can.BusABC, telemetry: np.ndarray):
        if telemetry.ndim != 2 or telemetry.shape[1] != len(TELEMETRY_COLUMNS):
            raise ValueError("telemetry table has the wrong shape; use telemetry_table()")
        self.kernel = tick
        self.bus = bus
        self.telemetry = telemetry
        self.frames_sent = 0
        self.send_errors = 0
        self.error_frames = 0
        self._send_failures = 0      # consecutive
        self._error_ticks = 0        # consecutive ticks that brought error frames
        self._payload = bytearray(8)

    def tick(self, now_s: float, row: int) -> None:
        """Run the tick at ``now_s`` and record it in telemetry row ``row``."""
        recv, ingest = self.bus.recv, self.kernel.ingest
        # read: everything that arrived since the last tick
        error_frames = 0
        while True:
            msg = recv(0.0)
            if msg is None:
                break
            if msg.is_error_frame:
                error_frames += 1
            elif not (msg.is_extended_id or msg.is_remote_frame):
                ingest(msg.arbitration_id, msg.data, now_s)
        self.error_frames += error_frames
        self._error_ticks = self._error_ticks + 1 if error_frames else 0
        self.kernel.note_link(self._send_failures, self._error_ticks)
        # update: estimator -> controller -> safety, without the GIL
        self.kernel.update(now_s)
        # write: one command frame; a frame that cannot be encoded is not sent (the driver's
        # watchdog then makes the ankle limp), and a failed send is counted, never raised
        if self.kernel.command_payload(self._payload) == 8:
            try:
                self.bus.send(can.Message(arbitration_id=self.kernel.driver_id,
                                          data=bytes(self._payload), is_extended_id=False))
                self.frames_sent += 1
                self._send_failures = 0
            except can.CanError:
                self.send_errors += 1
                self._send_failures += 1
        self.kernel.publish(self.telemetry, row)
