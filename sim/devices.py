"""The simulated hardware on the CAN bus: an AK driver and the sensor node around one plant.

:class:`SimAnkle` owns one bus endpoint, reads the host's frames and answers as
the real devices do: the driver replies to every frame addressed to it (MIT
mode), the sensor node sends its DBC frames every tick and its status every
``status_period_s``.  The endpoint is a :class:`hal._link.FrameLink`: the
lock-step simulator's in-process :class:`~hal._link.MemoryLink`, or a python-can
bus (wrapped in a :class:`~hal._link.PyCanLink`: a virtual bus, the real-time
simulator's socketcand server).  The frames are encoded and decoded in Cython
(:class:`sim._device_io.DeviceIO`, with the simulated drive of the run and
hal._sensor_frames); they are
the same real CAN frames, byte for byte, on either.

The optional sound-side node (``sound_node=True``) sends the SOUND_SIDE
frame (0x113) every ``SOUND_PERIOD_S`` (2 ms, 500 Hz) from the first step on:
the sound foot's vertical force and the sound shank's rate (see
:mod:`sim.wearer` and :mod:`sim.asymmetry`).

The wearer plans each walking stride's successor at its toe-off, once the
plant has integrated the net ankle work of that stance
(:attr:`~sim._plant.AnklePlant.stance_work_J`), which it is told first
(:meth:`sim.wearer.Wearer.record_stance_work`); a standing segment's successor
is planned as the segment begins.

Two ways to run it: :meth:`SimAnkle.step_to` advances the plant in lock-step
with the host's loop (deterministic, as fast as the CPU allows);
:meth:`SimAnkle.serving` answers frames from a background thread in real time,
for commissioning (driver activation) before lock-step starts.

Fault injection (:mod:`sim.faults`): the device-side kinds of the injections
handed in act in :meth:`SimAnkle.step_to` at the simulated time of the step.
Frame-level kinds drop or withhold frames here; the others are set on the
plant (:meth:`~sim._plant.AnklePlant.set_encoder_fault` and friends) when they
begin and cleared when they end.  When several injections act on the same
sensor at once, the one that began last wins; extra heat adds up.
Commissioning (:meth:`SimAnkle.serving`) happens before simulated time starts
and sees no injection.
"""
from __future__ import annotations

import contextlib
import math
import threading
import time
from typing import Callable, Collection, Dict, Iterator, List, Optional, Sequence, Tuple

from hal._link import FrameLink, PyCanLink
from hal._sensor_frames import (IMU_ID, LOAD_ID, STATUS_ID, _encode_imu_py,
                                _encode_load_py)
from sim import plant as _plant
from sim._device_io import DeviceIO, SOUND_PERIOD_S
from sim._simdrive import AkMitSimDrive, SimDrive
from sim.faults import DEVICE_KINDS, Injection, resolved_value
from sim.plant import AnklePlant
from sim.wearer import Wearer

__all__ = ["SimAnkle", "SOUND_PERIOD_S"]

# Plant-level sensor kinds, per sensor: kind -> the plant's fault mode (value from the injection).
_ENCODER_MODES = {"encoder_jump": _plant.ENCODER_OFFSET, "encoder_stuck": _plant.ENCODER_STUCK}
_IMU_MODES = {"imu_stuck": _plant.IMU_STUCK, "imu_range": _plant.IMU_GYRO_CONSTANT}
_LOAD_MODES = {"load_stuck": _plant.LOAD_CONSTANT, "load_saturation": _plant.LOAD_CONSTANT}


def _value_or_zero(inj: Injection) -> float:
    # the plant setters take a number; kinds with no value pass 0
    value = resolved_value(inj)
    return 0.0 if math.isnan(value) else value


class SimAnkle:
    """Simulated driver + sensor node + plant on ``bus`` (a FrameLink, or a python-can bus)."""

    def __init__(self, bus, plant: AnklePlant, wearer: Wearer, *, reply_id: int = 0x000,
                 status_period_s: float = 0.02, faults: Sequence[Injection] = (),
                 sound_node: bool = False, drive: Optional[SimDrive] = None):
        """``faults``: injections to act on (host-side kinds are left to the harness).  The
        supply voltage is the plant's (``supply_V`` setting, lowered by ``low_voltage``).
        ``sound_node``: also send the sound-side node's frames (0x113, every 2 ms).
        ``drive``: the simulated drive on ``plant`` (a :class:`sim._simdrive.SimDrive`, from the
        drive table's ``sim`` part); None: the AK driver in MIT mode, replying on ``reply_id``."""
        self.bus = bus
        self.link: FrameLink = bus if isinstance(bus, FrameLink) else PyCanLink(bus)
        self.drive: SimDrive = AkMitSimDrive(plant, reply_id) if drive is None else drive
        self.io = DeviceIO(plant, self.drive, self.link, status_period_s, bool(sound_node))
        self.plant = plant
        self.wearer = wearer
        self.reply_id = reply_id
        self.status_period_s = status_period_s
        for inj in faults:
            if not isinstance(inj, Injection):
                raise TypeError(f"faults must be sim.faults.Injection, got {inj!r}")
        #: The device-side injections, in the order given.
        self.faults: Tuple[Injection, ...] = tuple(f for f in faults if f.kind in DEVICE_KINDS)
        self._nominal_supply_V = plant.supply_V
        self._plant_faults: Dict[str, tuple] = {}     # what is set on the plant now, per sensor
        self._faulted = False         # an injection acted on the last step (the next clears it)
        self.sound_node = bool(sound_node)
        self._buf = bytearray(8)
        self._spoof_sent: Dict[Injection, int] = {}   # frames each spoofer has sent so far
        self._held: Dict[int, bytes] = {}              # reorder_frames: the frame sent after the next

    # ------------------------------------------------------------------ walking
    def begin_walking(self, t_s: float) -> None:
        """Queue the first segment and start the wearer at ``t_s`` (a heel strike when walking)."""
        self.plant.queue_stride(*self.wearer.next_stride(t_s))
        self.plant.start(t_s)
        self._plan_next(t_s)

    def _plan_next(self, now_s: float) -> None:
        """Queue the segment after the present one once it is due: a walking stride's at its
        toe-off (after telling the wearer the stance's net ankle work), a standing segment's at
        once.  The plant must be at ``now_s``."""
        if self.plant.next_queued or not self.plant.started:
            return
        present = self.wearer.strides[-1]           # the plant walks the last segment planned
        if present.walking:
            if now_s < present.t_toe_off_s:
                return
            self.wearer.record_stance_work(self.plant.stance_work_J / self.wearer.mass_kg)
        self.plant.queue_stride(*self.wearer.next_stride(present.t_end_s))

    @property
    def frames_in(self) -> int:
        """Host frames the devices received (not those comms_loss dropped)."""
        return self.io.frames_in

    @property
    def frames_out(self) -> int:
        """Frames the devices put on the bus."""
        return self.io.frames_out

    @property
    def frames_lost(self) -> int:
        """Host frames dropped by comms_loss."""
        return self.io.frames_lost

    def _send(self, can_id: int, dlc: int) -> None:
        if dlc > 0:
            self.io.send(can_id, self._buf, dlc)

    # ------------------------------------------------------------------ fault injection
    @staticmethod
    def _latest(active: List[Injection], kinds: Collection[str]) -> Optional[Injection]:
        """The active injection among ``kinds`` that began last (ties: the later in the list)."""
        chosen = None
        for inj in active:
            if inj.kind in kinds and (chosen is None or inj.t_s >= chosen.t_s):
                chosen = inj
        return chosen

    def _set_plant(self, sensor: str, state: tuple, setter: Callable[..., None]) -> None:
        # only on a change: a stuck encoder or IMU captures its reading when set
        if self._plant_faults.get(sensor) != state:
            setter(*state)
            self._plant_faults[sensor] = state

    def _apply_plant_faults(self, active: List[Injection]) -> None:
        """Set on the plant what the active injections ask for; clear what ended."""
        for sensor, modes, healthy, setter in (
                ("encoder", _ENCODER_MODES, _plant.ENCODER_OK, self.plant.set_encoder_fault),
                ("imu", _IMU_MODES, _plant.IMU_OK, self.plant.set_imu_fault),
                ("load", _LOAD_MODES, _plant.LOAD_OK, self.plant.set_load_fault)):
            inj = self._latest(active, modes)
            self._set_plant(sensor, (healthy, 0.0) if inj is None
                            else (modes[inj.kind], _value_or_zero(inj)), setter)
        winding_W = sum(resolved_value(i) for i in active if i.kind == "winding_heat")
        case_W = sum(resolved_value(i) for i in active if i.kind == "over_temperature")
        self._set_plant("heat", (winding_W, case_W), self.plant.set_extra_heat_W)
        inj = self._latest(active, ("low_voltage",))
        self._set_plant("supply", (self._nominal_supply_V if inj is None else resolved_value(inj),),
                        self.plant.set_supply_V)
        inj = self._latest(active, ("driver_error",))
        code = 0 if inj is None else int(resolved_value(inj))
        if self._plant_faults.get("error") != code:
            self.plant.error_code = code
            self._plant_faults["error"] = code

    # ------------------------------------------------------------------ lock-step
    def step_to(self, now_s: float) -> bool:
        """Lock-step: take the host's frames, advance the plant to ``now_s``, send replies and samples.

        Injections active at ``now_s`` act on this step: host frames arriving now are lost
        (``comms_loss``), plant faults are set after the plant reaches ``now_s`` (so a stuck
        sensor holds its reading at ``now_s``, extra heat flows from ``now_s`` on), and
        replies / IMU / load frames are withheld.  Returns True when a stride began.
        """
        active = [inj for inj in self.faults if inj.active_at(now_s)] if self.faults else None
        if not (active or self._faulted):
            # nothing acts now, nor did on the last step: the whole step in Cython.  The plan
            # comes after the samples here, before them below: it only queues the NEXT segment,
            # which no sample of this step reads
            new_stride = self.io.step(now_s)
            if not self.plant.next_queued:
                self._plan_next(now_s)
            return new_stride
        # the steps with injections (and the one after, which clears what ended): the same
        # parts as DeviceIO.step, each injection acting between them
        self._faulted = bool(active)
        active_kinds = {inj.kind for inj in active}
        io = self.io
        reply_due = io.receive(now_s, "comms_loss" in active_kinds)
        new_stride = self.plant.advance(now_s)
        self._plan_next(now_s)
        self._apply_plant_faults(active)
        io.reply(reply_due, now_s, "stale_replies" not in active_kinds)
        # sampled even when not sent, so the noise sequence (and every later sample) is the
        # same as in a run without the fault
        imu_dlc = self.plant.imu_payload(self._buf)
        if "imu_loss" not in active_kinds:
            self._send_sensor(IMU_ID, imu_dlc, active_kinds)
        load_dlc = self.plant.load_payload(self._buf)
        if "load_loss" not in active_kinds:
            self._send_sensor(LOAD_ID, load_dlc, active_kinds)
        self._spoof(active, now_s)
        if io.status_due(now_s):
            dlc = self.plant.status_payload(self._buf)
            inj = self._latest(active, ("node_status_flags",))
            if inj is not None:
                self._buf[1] = int(resolved_value(inj))
            inj = self._latest(active, ("supply_reading",))
            if inj is not None:
                raw = min(65535, int(round(resolved_value(inj) / 0.01)))
                self._buf[2:4] = raw.to_bytes(2, "little")
            self._send(STATUS_ID, dlc)
            io.status_sent()
        io.send_sound_if_due(now_s)
        return new_stride

    def _send_sensor(self, can_id: int, dlc: int, active_kinds: Collection[str]) -> None:
        """One IMU or load frame from ``self._buf``, as the frame-level injections have it."""
        if "reorder_frames" in active_kinds:
            held = self._held.pop(can_id, None)
            if held is None:                    # keep this one; it goes out after the next
                self._held[can_id] = bytes(self._buf[:dlc])
                return
            self._send(can_id, dlc)
            self._buf[:len(held)] = held
            self._send(can_id, len(held))
            return
        self._send(can_id, dlc)
        if "duplicate_frames" in active_kinds:
            self._send(can_id, dlc)

    def _spoof(self, active: List[Injection], now_s: float) -> None:
        """The frames of every active spoofer due by ``now_s`` (``value`` Hz since its ``t_s``)."""
        for inj in active:
            if inj.kind not in ("spoof_imu", "spoof_load"):
                continue
            due = int(math.floor((now_s - inj.t_s) * resolved_value(inj) + 1e-9)) + 1
            sent = self._spoof_sent.get(inj, 0)
            for k in range(sent, due):
                if inj.kind == "spoof_imu":     # a still shank, upright
                    data = _encode_imu_py(0.01 * math.sin(k), 0.0, 9.81, k & 0xFF, 0)
                    can_id = IMU_ID
                else:                           # an unloaded foot at neutral
                    data = _encode_load_py(5.0 + math.sin(k), 0.0, k & 0xFF, 0)
                    can_id = LOAD_ID
                self.io.send(can_id, data)
            self._spoof_sent[inj] = max(sent, due)

    # ------------------------------------------------------------------ real time (set-up)
    def answer(self, timeout_s: float, poll_s: float = 0.0002) -> bool:
        """Answer one host frame if one arrives within ``timeout_s`` (the plant does not move).

        Commissioning before walking starts; returns whether a frame came.  The link does not
        block: it is looked at every ``poll_s`` until then.
        """
        end = time.monotonic() + timeout_s
        while not self.io.answer():
            left_s = end - time.monotonic()
            if left_s <= 0:
                return False
            time.sleep(min(poll_s, left_s))
        return True

    @contextlib.contextmanager
    def serving(self, poll_s: float = 0.001) -> Iterator["SimAnkle"]:
        """Answer the host's frames from a background thread (the plant does not move)."""
        stop = threading.Event()

        def serve() -> None:
            while not stop.is_set():
                self.answer(poll_s)

        thread = threading.Thread(target=serve, name="sim-ankle", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            stop.set()
            thread.join()
