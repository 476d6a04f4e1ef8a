"""The control loop: read -> update -> write, with time passed in.

:class:`HostLoop` is the host side of one tick: drain the bus into the
:class:`~controller.kernels._tick.Tick`, run the kernels, send the driver frame, write
the telemetry row.  Who decides *when* a tick happens is the caller's business:
the simulator's lock-step harness (:mod:`sim.harness`) or, on the board, the
real-time runner.  Nothing here reads a clock.
"""
from __future__ import annotations

from typing import Mapping

import can
import numpy as np

from controller.kernels._tick import PARAM_COUNT, TELEMETRY_COLUMNS, Tick
from controller.params.registry import REGISTRY, ParamSet
from controller.runtime._ring import ParamChannel
from hal.ak import check_mit_range
from hal.errors import ConfigError

__all__ = ["HostLoop", "build_tick", "TELEMETRY_COLUMNS", "telemetry_table"]


def build_tick(params: ParamSet, mit_range: Mapping[str, float], driver_id: int,
               reply_id: int = 0x000) -> Tick:
    """A configured tick kernel for one AK driver in MIT mode.

    ``mit_range`` is checked again here (hal.errors.ConfigError naming the field): the
    codec divides by each range's width, so a bad range must never reach the tick.
    """
    if not isinstance(params, ParamSet):
        raise TypeError("params must be a validated controller.params.registry.ParamSet")
    if PARAM_COUNT != len(REGISTRY):
        raise ImportError(f"the kernels were built for {PARAM_COUNT} parameters, the registry has "
                          f"{len(REGISTRY)}: rebuild them (python setup.py build_ext --inplace)")
    checked = check_mit_range(mit_range)
    if params["actuator.max_torque_Nm"] > checked["t_max"]:
        raise ConfigError(f"actuator.max_torque_Nm = {params['actuator.max_torque_Nm']:g} N*m is beyond the "
                          f"driver's MIT torque range t_max = {checked['t_max']:g} N*m")
    tick = Tick()
    tick.configure(params, checked, driver_id, reply_id)
    return tick


def telemetry_table(rows: int) -> np.ndarray:
    """A preallocated telemetry table (rows x ``TELEMETRY_COLUMNS``), NaN-filled."""
    return np.full((rows, len(TELEMETRY_COLUMNS)), np.nan)


class HostLoop:
    """One host tick: :meth:`read`, :meth:`update`, :meth:`write`, then :meth:`publish`, and a
    parameter change taken from ``params`` at a stride boundary (``Tick.take_params``).

    :meth:`tick` runs them all (the lock-step simulator); the real-time runtime
    (:mod:`controller.runtime.process`) calls them one by one to time each phase.
    """

    def __init__(self, tick: Tick, bus: can.BusABC, telemetry: np.ndarray | None = None,
                 params: ParamChannel | None = None):
        if telemetry is not None and (telemetry.ndim != 2 or telemetry.shape[1] != len(TELEMETRY_COLUMNS)):
            raise ValueError("telemetry table has the wrong shape; use telemetry_table()")
        self.kernel = tick
        self.bus = bus
        self.params = params
        self.telemetry = telemetry
        self._payload = bytearray(8)
        # one command frame, refilled in place each tick: nothing is built per tick to send it
        self._command = can.Message(arbitration_id=tick.driver_id, data=bytearray(8), is_extended_id=False)

    def read(self, now_s: float) -> None:
        """Drain the bus: decode every frame that arrived since the last tick into the inputs."""
        recv, ingest = self.bus.recv, self.kernel.ingest
        error_frames = 0
        while True:
            msg = recv(0.0)
            if msg is None:
                break
            if msg.is_error_frame:
                error_frames += 1
            elif not (msg.is_extended_id or msg.is_remote_frame):
                ingest(msg.arbitration_id, msg.data, now_s)
        self.kernel.note_frames(error_frames)

    def update(self, now_s: float) -> None:
        """Monitor -> estimator -> controller -> safety, without the GIL."""
        self.kernel.update(now_s)

    def write(self) -> None:
        """Send the driver's command frame.

        A frame that cannot be encoded is not sent (the driver's watchdog then makes
        the ankle limp), and a failed send is counted, never raised.
        """
        if self.kernel.command_payload(self._payload) != 8:
            return
        self._command.data[:] = self._payload
        try:
            self.bus.send(self._command)
        except can.CanError:
            self.kernel.note_sent(False)
        else:
            self.kernel.note_sent(True)

    @property
    def frames_sent(self) -> int:
        return self.kernel.frames_sent

    @property
    def send_errors(self) -> int:
        return self.kernel.send_errors

    @property
    def error_frames(self) -> int:
        return self.kernel.error_frames

    def publish(self, table: np.ndarray, row: int) -> None:
        """Write this tick's telemetry row into ``table[row]``."""
        self.kernel.publish(table, row)

    def tick(self, now_s: float, row: int) -> None:
        """Read, update, write, record the tick in telemetry row ``row``, then take a parameter
        change at a stride boundary (as the real-time loop does, by the same method).

        Lock-step ticks are not timed (their timing columns stay NaN), so a run is
        the same bit for bit for the same seed.
        """
        self.read(now_s)
        self.kernel.update(now_s)
        self.write()
        self.kernel.publish(self.telemetry, row)
        if self.params is not None:
            self.kernel.take(self.params)
