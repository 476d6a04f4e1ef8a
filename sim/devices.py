"""The simulated hardware on the CAN bus: an AK driver and the sensor node around one plant.

:class:`SimAnkle` owns one bus endpoint (its own python-can Bus object on the
host's channel), reads the host's frames and answers as the real devices do:
the driver replies to every frame addressed to it (MIT mode), the sensor node
sends its DBC frames every tick and its status every ``status_period_s``.

Two ways to run it: :meth:`SimAnkle.step_to` advances the plant in lock-step
with the host's loop (deterministic, as fast as the CPU allows);
:meth:`SimAnkle.serving` answers frames from a background thread in real time,
for commissioning (driver activation) before lock-step starts.
"""
from __future__ import annotations

import contextlib
import threading
from typing import Iterator

import can

from hal import _mit
from sim.plant import AnklePlant
from sim.wearer import Wearer
from hal._sensor_frames import IMU_ID, LOAD_ID, STATUS_ID

__all__ = ["SimAnkle"]


class SimAnkle:
    """Simulated driver + sensor node + plant on ``bus``."""

    def __init__(self, bus: can.BusABC, plant: AnklePlant, wearer: Wearer, *, reply_id: int = 0x000,
                 status_period_s: float = 0.02, supply_V: float = 24.0):
        self.bus = bus
        self.plant = plant
        self.wearer = wearer
        self.reply_id = reply_id
        self.status_period_s = status_period_s
        self.supply_V = supply_V
        self._next_status_s = 0.0
        self._buf = bytearray(8)
        self._lock = threading.Lock()
        self.frames_in = 0
        self.frames_out = 0
        #: Fault injection: source -> simulated time from which its frames are not sent
        #: ("driver" replies, "imu", "load").  Frames received are still acted on.
        self.mute_from_s = {}

    # ------------------------------------------------------------------ walking
    def begin_walking(self, t_s: float) -> None:
        """Queue the first segment and start the wearer at ``t_s`` (a heel strike when walking)."""
        self.plant.queue_stride(*self.wearer.next_stride(t_s))
        self.plant.start(t_s)
        self.plant.queue_stride(*self.wearer.next_stride(t_s + self.wearer.strides[-1].stride_s))

    def _handle(self, msg: can.Message, now_s: float) -> bool:
        """Apply one received frame; True if the driver must reply."""
        self.frames_in += 1
        if msg.is_extended_id or msg.is_error_frame or msg.is_remote_frame:
            return False
        if msg.arbitration_id != self.plant.driver_id:
            return False
        return self.plant.driver_frame(msg.data, now_s) != _mit.FRAME_NONE

    def _send(self, can_id: int, dlc: int) -> None:
        if dlc <= 0:
            return
        self.bus.send(can.Message(arbitration_id=can_id, data=self._buf[:dlc], is_extended_id=False))
        self.frames_out += 1

    def _reply(self) -> None:
        self._send(self.reply_id, self.plant.reply_payload(self._buf))

    def step_to(self, now_s: float) -> bool:
        """Lock-step: take the host's frames, advance the plant to ``now_s``, send replies and samples.

        Returns True when a stride began during this step.
        """
        reply_due = 0
        while True:
            msg = self.bus.recv(0.0)
            if msg is None:
                break
            reply_due += self._handle(msg, now_s)
        new_stride = self.plant.advance(now_s)
        if new_stride:
            last = self.wearer.strides[-1]
            self.plant.queue_stride(*self.wearer.next_stride(last.t_end_s))
        if now_s < self.mute_from_s.get("driver", float("inf")):
            for _ in range(reply_due):
                self._reply()
        imu_dlc = self.plant.imu_payload(self._buf)          # sampled even when muted, so the
        if now_s < self.mute_from_s.get("imu", float("inf")):  # noise sequence does not shift
            self._send(IMU_ID, imu_dlc)
        load_dlc = self.plant.load_payload(self._buf)
        if now_s < self.mute_from_s.get("load", float("inf")):
            self._send(LOAD_ID, load_dlc)
        if now_s >= self._next_status_s:
            self._send(STATUS_ID, self.plant.status_payload(self._buf, self.supply_V))
            self._next_status_s += self.status_period_s
        return new_stride

    # ------------------------------------------------------------------ real time (set-up)
    @contextlib.contextmanager
    def serving(self, poll_s: float = 0.001) -> Iterator["SimAnkle"]:
        """Answer the host's frames from a background thread (the plant does not move)."""
        stop = threading.Event()

        def serve() -> None:
            while not stop.is_set():
                msg = self.bus.recv(poll_s)
                if msg is not None and self._handle(msg, self.plant.state[0]):
                    self._reply()

        thread = threading.Thread(target=serve, name="sim-ankle", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            stop.set()
            thread.join()
