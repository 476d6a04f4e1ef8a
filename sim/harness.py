"""The whole stack on the simulated ankle, in lock-step: what ``ankle sim`` runs.

Commissioning is done as on the hardware (driver configured and activated over
the bus through :mod:`hal.ak`, the simulated devices answering from a background
thread); then host and simulator alternate every tick on simulated time: the
simulator advances the plant to ``t`` and sends the driver's reply and the sensor
samples, the host reads them, updates and sends its command.  Deterministic for a
seed, and as fast as the CPU allows.

The host's tick is the real-time loop's own body (:class:`controller.runtime._rtloop.LockStep`
runs :func:`~controller.runtime._rtloop.tick_once`); only who decides when the next tick
happens differs.  The bus (``bus=``): ``"memory"`` (the default), an in-process
:class:`hal._link.MemoryLink` pair, GIL-free like the board's SocketCAN link, one struct
copy per frame; or ``"python-can"``, python-can's virtual bus (a Python object and a deep
copy per frame: over ten times slower).  Both carry the same real CAN frames, byte for
byte, so a seed gives the same run on either.

Fault injection (``faults=``, :mod:`sim.faults`): the simulated devices act on
the device-side kinds; the host-side kinds act here, in the tick loop:
``host_hang`` (no tick at all: no reads, no command, no telemetry row),
``loop_overrun`` (a tick only every ``value``-th period from the first tick at
or after ``t_s``; the rows between stay NaN) and ``nonfinite_command`` (the
kernel's ``inject_nonfinite_command`` is switched on at the first tick at or
after ``t_s`` and off at the first one at or after its end).

The sound side (issue 7): ``asymmetry=`` makes the wearer asymmetric
(:class:`sim.asymmetry.AsymmetryModel`; None: symmetric), ``sound_node=True``
adds the simulated sound-side sensor node (CAN 0x113, 500 Hz).  Either way the
strides (:class:`sim.wearer.Stride`) carry the sound side's true events and
symmetry indices, and the truth table its load and contact.

Parameter changes (issue 15): ``adaptation=`` runs the symmetry adaptation
(:class:`controller.symmetry.adaptation.SymmetryAdaptation`) as on the device: fed the
telemetry in batches of :data:`controller.runtime.process.PUMP_PERIOD_S` of simulated time
(the device's telemetry pump), publishing through the run's
:class:`controller.runtime.retune.ParamPublisher`, which the tick takes at a stride boundary,
checked by the tick's own rules and ramped in, by ``Tick.take_params`` as on the device.
"""
from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Callable, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from controller.kernels._tick import Tick
from controller.runtime._rtloop import LockStep
from controller.runtime.loop import build_tick, telemetry_table
from controller.runtime.process import PUMP_PERIOD_S
from controller.params.registry import ParamSet
from controller.runtime.retune import ParamPublisher, lockstep_channel
from hal._link import FrameRecorder, PyCanLink, TapLink, memory_link_pair
from hal.drives import DEFAULT_DRIVE, build_codec, check_name, drive, load
from hal.errors import HalError
from hal.bus import BusConfig, open_bus
from hal.links import LinkBus
from sim.devices import SimAnkle
from sim.faults import Injection, resolved_value
from sim.asymmetry import AsymmetryModel
from sim.plant import SOUND_TRUTH_LENGTH, TRUTH_LENGTH, build_plant
from sim.wearer import Stride, Wearer

__all__ = ["SimRun", "run", "TRUTH_COLUMNS", "BUSES"]

#: The lock-step simulator's buses (``run(bus=...)``, ``ankle sim --bus``); the first is the default.
BUSES = ("memory", "python-can")

#: Columns of the ground-truth table (one row per tick), as written by AnklePlant.truth.
#: phase_true is -1 while the wearer stands; walking_true is 1 in walking strides, 0 in
#: standing segments; stride_index counts both (it indexes SimRun.strides).
#: motor_temp_true_C is the winding's temperature, case_temp_true_C the case's (the driver
#: reports the case's).  sound_load_true_N is the sound foot's vertical force [N] (no noise;
#: body weight minus the prosthetic load while standing), sound_contact_true 1 while it is > 0
#: (both exact to one profile sample, stride/1000, of the Stride's sound events).
TRUTH_COLUMNS = ("t", "phase_true", "stance_true", "ankle_angle_true", "torque_true_Nm",
                 "motor_temp_true_C", "stride_index", "walking_true", "case_temp_true_C",
                 "sound_load_true_N", "sound_contact_true")
if len(TRUTH_COLUMNS) != TRUTH_LENGTH + SOUND_TRUTH_LENGTH:   # the compiled plant is older or newer
    raise ImportError(f"sim._plant writes {TRUTH_LENGTH} + {SOUND_TRUTH_LENGTH} truth values, "
                      f"TRUTH_COLUMNS names {len(TRUTH_COLUMNS)}: rebuild the plant")


@dataclass
class SimRun:
    """Everything a simulated session produced."""

    params: ParamSet
    telemetry: np.ndarray          # ticks x controller.runtime.loop.TELEMETRY_COLUMNS
    truth: np.ndarray              # ticks x TRUTH_COLUMNS
    strides: List[Stride]          # ground truth of every stride and standing segment begun
    rate_Hz: float
    sim_seconds: float
    wall_seconds: float
    frames_sent: int = 0
    send_errors: int = 0
    watchdog_tripped: bool = False
    watchdog_trip_s: float = -1.0      # simulated time the driver's watchdog last tripped
    plant_settings: Mapping[str, float] = field(default_factory=dict)
    faults: Tuple[Injection, ...] = ()     # the injections the run was made with
    shutdown_error: str = ""               # what the driver said to the final exit frame, if not OK
    bus: str = "memory"                    # the lock-step bus (BUSES)
    #: frames the in-process bus refused because the receiver's ring was full (the host hung
    #: longer than its ring holds; python-can's virtual bus has no bound): 0 in every run whose
    #: results equal the python-can bus's
    frames_refused: int = 0
    can_log_frames: int = 0             # frames written to the CAN log (can_log=)
    driver: str = "ak_mit"              # the drive (hal.drives) the run commissioned
    drive_watchdog_s: float = float("nan")   # its declared loss-of-host time (DriveCodec.watchdog_s)
    codec: object = None                # the tick's codec of the drive (tools: bench/codec.py)
    #: the parameter sets the tick accepted from the run's publisher (the adaptation's, a
    #: supervisor's): (time s, the set), at the stride boundary it took each
    retunes: List[Tuple[float, ParamSet]] = field(default_factory=list)


def run(*, scenario: str = "steady", speed_m_s: float = 1.25, duration_s: float = 30.0,
        mass_kg: float = 80.0, seed: int = 0, stride_cv: float = 0.02,
        params: Optional[ParamSet] = None,
        plant_overrides: Optional[Mapping[str, float]] = None,
        on_stride: Optional[Callable[[SimRun, Stride], None]] = None,
        faults: Sequence[Injection] = (), boot_faults: int = 0,
        asymmetry: Optional[AsymmetryModel] = None, sound_node: bool = False,
        supervisor=None, bus: str = "memory", adaptation=None, driver: str = DEFAULT_DRIVE,
        can_log=None, can_sink=None) -> SimRun:
    """Walk the simulated wearer for ``duration_s`` on the full stack and return the record.

    ``on_stride(run_so_far, stride)`` is called as each stride completes (for live
    per-stride lines).  ``supervisor`` (e.g. the campaign's console, ``bench.campaign``) does
    work between ticks: ``supervisor.bind(tick, telemetry, params, publisher=...)`` once, then
    ``supervisor(k, now_s)`` after each tick.  ``adaptation``: a
    :class:`controller.symmetry.adaptation.SymmetryAdaptation`, bound to the run's publisher
    and fed the telemetry as the device's pump feeds it (the caller closes it).  Every
    parameter change goes through that one publisher (:class:`controller.runtime.retune.ParamPublisher`):
    validated and blended there, taken by the tick at a stride boundary and ramped in exactly
    as the real-time runtime does (the same ``Tick.take_params``); the sets the tick accepted
    are ``SimRun.retunes``.  ``params`` defaults to the registry's defaults with
    ``wearer.mass_kg = mass_kg``.  ``stride_cv`` is the wearer's stride-to-stride
    variability (coefficient of variation of stride time, 0..0.1).  ``faults``: the
    injections to make (:class:`sim.faults.Injection`; see the module docstring).
    ``boot_faults``: fault bits latched at start (e.g. a corrupt parameter file).
    Scenarios with standing (speed 0) add standing segments to ``strides``
    (``walking`` False), and ``on_stride`` is called for them too.
    ``asymmetry``: the asymmetric wearer's model (None: a symmetric wearer); ``sound_node``:
    simulate the sound-side sensor node (CAN 0x113 every 2 ms).  ``bus``: ``"memory"`` (the
    in-process link) or ``"python-can"`` (python-can's virtual bus); see the module docstring.
    ``driver``: the drive, a name of :data:`hal.drives.DRIVES` (its set-up class commissions it,
    its codec is the tick's).  ``can_log``: write every frame on the bus, stamped with the
    simulated time it was sent at, to this BLF or ASC file (by suffix; created new).
    ``can_sink``: hand the same frames to this object as well (``write(frames)`` with
    ``FrameRecorder.drain``'s ``(t_s, can_id, flags, data)`` tuples; ``ankle sim --log F.mcap``
    keeps them for the session file's /can channel).
    """
    drive_name = check_name(driver, "driver")
    if bus not in BUSES:
        raise ValueError(f"bus must be one of {', '.join(BUSES)}, got {bus!r}")
    if not 0.0 < duration_s <= 3600.0:
        raise ValueError(f"duration {duration_s} s is outside 0..3600 s")
    faults = tuple(faults)
    for inj in faults:
        if not isinstance(inj, Injection):
            raise TypeError(f"faults must be sim.faults.Injection, got {inj!r}")
    # a drive's simulated actuator (its ratio, torque limit) unless the caller gives a set
    params = (params or ParamSet(load(drive_name, "sim_params"))).with_values({"wearer.mass_kg": mass_kg})
    rate_Hz = params["loop.rate_Hz"]
    dt_s = 1.0 / rate_Hz
    n = int(round(duration_s * rate_Hz))

    overrides = {"mass_kg": mass_kg, "seed": seed, "ratio": params["actuator.ratio"],
                 "efficiency": params["actuator.efficiency"],
                 "direction": params["actuator.direction"]}
    overrides.update(load(drive_name, "sim_plant"))
    overrides.update(plant_overrides or {})
    plant = build_plant(overrides)
    wearer = Wearer(scenario, speed_m_s, mass_kg, stride_cv=stride_cv, seed=seed, asymmetry=asymmetry)

    recorder = traffic = None
    if bus == "memory":
        host_link, sim_link = memory_link_pair(_TO_DEVICES_FRAMES, _to_host_frames(faults, duration_s, dt_s))
        sim_bus = None
    else:
        config = BusConfig(interface="virtual", channel=f"ankle-sim-{uuid.uuid4().hex[:8]}")
        host_bus, sim_bus = open_bus(config), open_bus(config)
        host_link, sim_link = PyCanLink(host_bus), PyCanLink(sim_bus)
    if can_log is not None or can_sink is not None:
        # both ends record what they send: the bus's traffic once, in the order it was sent
        from controller.records.logger import RecordedCanLog
        traffic = _Traffic(RecordedCanLog(can_log) if can_log is not None else None, can_sink)
        recorder = FrameRecorder(_CAN_LOG_FRAMES)
        host_link, sim_link = TapLink(host_link, recorder), TapLink(sim_link, recorder)
    if bus == "memory":
        host_bus = LinkBus(host_link)             # commissioning on the same link as the tick's
    try:
        sim = SimAnkle(sim_link, plant, wearer, faults=faults,
                       sound_node=sound_node, drive=load(drive_name, "sim")(plant))
        driver = load(drive_name, "setup")(host_bus, driver_id=plant.driver_id,
                                           model=drive(drive_name).sim_model)
        with sim.serving():
            # the drive's set-up (bring-up, its configuration checked) and torque on
            driver.configure()
            driver.activate(timeout_s=1.0)
        tick = build_tick(params, build_codec(drive_name, driver))
        host_faults = _HostFaults(faults, tick)
        telemetry = telemetry_table(n)
        truth = np.full((n, len(TRUTH_COLUMNS)), np.nan)
        channel = lockstep_channel(params)
        publisher = ParamPublisher(channel, tick.codec.torque_limit_Nm)
        host = LockStep(tick, host_link, telemetry, channel)
        record = SimRun(params, telemetry, truth, wearer.strides, rate_Hz, 0.0, 0.0, faults=faults, bus=bus)

        sim.begin_walking(0.0)
        tick.start(0.0)
        if boot_faults:
            tick.safety.latch(boot_faults, 0.0)
        if supervisor is not None:
            supervisor.bind(tick, telemetry, params, publisher=publisher)
        pump = _Pump(telemetry, rate_Hz, adaptation)
        if adaptation is not None:
            adaptation.bind(publisher)
        watch = _Retunes(channel, publisher) if (adaptation is not None or supervisor is not None) else None
        feed = pump.after_tick if adaptation is not None else None
        wall0 = time.perf_counter()
        completed = 0
        k = 0
        step_to, step, truth_row = sim.step_to, host.step, plant.truth
        host_ticks = host_faults.host_ticks if host_faults.any else None
        strides = wearer.strides
        for k in range(n):
            now_s = k * dt_s
            if recorder is not None:
                recorder.now_s = now_s
                if recorder.count >= _CAN_LOG_FRAMES // 2:
                    traffic.write(recorder.drain())
            step_to(now_s)
            if host_ticks is None or host_ticks(k, now_s):
                step(now_s, k)
                if watch is not None:
                    watch(now_s)
                if supervisor is not None:
                    supervisor(k, now_s)
            if feed is not None:
                feed(k)
            truth_row(truth[k])
            if on_stride is not None:
                while completed < len(strides) and strides[completed].t_end_s <= now_s:
                    record.sim_seconds = now_s
                    on_stride(record, strides[completed])
                    completed += 1
        pump.drain(k)                   # as the device's pump does when it stops
        if recorder is not None:
            traffic.write(recorder.drain())
            record.can_log_frames = traffic.frames
        record.retunes = watch.retunes if watch is not None else []
        record.wall_seconds = time.perf_counter() - wall0
        record.sim_seconds = (k + 1) * dt_s
        record.frames_sent = tick.frames_sent
        record.driver = drive_name
        record.drive_watchdog_s = tick.codec.watchdog_s
        record.codec = tick.codec
        record.send_errors = tick.send_errors
        record.frames_refused = sim.link.send_failures if bus == "memory" else 0
        record.watchdog_tripped = plant.watchdog_tripped
        record.watchdog_trip_s = plant.watchdog_trip_s
        if not host_faults.hung(now_s):
            with sim.serving():
                try:
                    driver.deactivate(timeout_s=1.0)
                except HalError as exc:
                    # an injected driver fault or a lost link answers the exit frame with its
                    # error, or not at all: that is the fault, already in the record
                    record.shutdown_error = str(exc)
        return record
    finally:
        if traffic is not None:
            traffic.close()
        host_bus.shutdown()
        if sim_bus is not None:
            sim_bus.shutdown()


class _Traffic:
    """The recorded frames to the CAN log file and to the caller's sink, either or both."""

    def __init__(self, log, sink):
        self.log, self.sink, self.frames = log, sink, 0

    def write(self, frames) -> None:
        for target in (self.log, self.sink):
            if target is not None:
                target.write(frames)
        self.frames += len(frames)

    def close(self) -> None:
        if self.log is not None:
            self.log.close()


#: Frames the CAN log's recorder holds between two writes to the file (a few seconds of traffic).
_CAN_LOG_FRAMES = 1 << 15

#: Host -> devices ring of the in-process bus [frames]: the host sends one command per tick and
#: the devices read every step, so a few are ever waiting (commissioning's exchanges too).
_TO_DEVICES_FRAMES = 1024
#: Devices -> host: what the devices send per second at most (IMU, load and reply 1 kHz each,
#: a duplicate of each sensor frame, status 50 Hz, sound side 500 Hz), for the host's silences.
_TO_HOST_FRAMES_PER_S = 5600.0
_TO_HOST_MIN_FRAMES = 4096
_TO_HOST_MAX_FRAMES = 1 << 22            # 64 MiB: past that a full ring refuses (counted)


def _to_host_frames(faults: Sequence[Injection], duration_s: float, dt_s: float) -> int:
    """The devices -> host ring [frames, a power of two]: all the devices can send while the host
    does not read (a host_hang, a loop_overrun's skipped ticks; spoofers add theirs), so the
    in-process bus never refuses a frame python-can's unbounded virtual bus would deliver.  A
    hang that lasts to the end of the run needs no room: nobody reads after it."""
    silent_s, spoof_Hz = 0.0, 0.0
    for f in faults:
        if f.kind == "host_hang" and f.end_s < duration_s:
            silent_s = max(silent_s, f.end_s - f.t_s)
        elif f.kind == "loop_overrun":
            silent_s = max(silent_s, resolved_value(f) * dt_s)
        elif f.kind in ("spoof_imu", "spoof_load"):
            spoof_Hz += resolved_value(f)
    frames = (min(silent_s, duration_s) + 0.01) * (_TO_HOST_FRAMES_PER_S + spoof_Hz)
    capacity = _TO_HOST_MIN_FRAMES
    while capacity < frames and capacity < _TO_HOST_MAX_FRAMES:
        capacity *= 2
    return capacity


class _Pump:
    """The device's telemetry pump in simulated time: the rows of each
    :data:`controller.runtime.process.PUMP_PERIOD_S` to the sink, the rows the host did not tick
    (a hang, an overrun: never published on the device) left out."""

    def __init__(self, telemetry: np.ndarray, rate_Hz: float, sink):
        self.telemetry, self.sink = telemetry, sink
        self.every = max(1, int(round(PUMP_PERIOD_S * rate_Hz)))
        self.fed = 0

    def after_tick(self, k: int) -> None:
        if self.sink is not None and (k + 1) % self.every == 0:
            self.drain(k)

    def drain(self, k: int) -> None:
        if self.sink is None or k + 1 <= self.fed:
            return
        rows = self.telemetry[self.fed:k + 1]
        self.fed = k + 1
        rows = rows[~np.isnan(rows[:, 0])]
        if len(rows):
            self.sink(rows)


class _Retunes:
    """After each tick: the sets the tick accepted from the publisher, with the time it took each
    (its ``params_taken`` word moves on at the stride boundary that takes a publication)."""

    def __init__(self, channel, publisher: ParamPublisher):
        self.channel, self.publisher = channel, publisher
        self.taken = channel.word("params_taken")
        self.retunes: List[Tuple[float, ParamSet]] = []

    def __call__(self, now_s: float) -> None:
        taken = self.channel.word("params_taken")
        if taken == self.taken:
            return
        self.taken = taken
        if self.publisher.outcome(taken) == ("accepted", ""):
            self.retunes.append((now_s, self.publisher.in_force()))


class _HostFaults:
    """The host-side injections of one run: whether the host ticks, and the poisoned command."""

    def __init__(self, faults: Sequence[Injection], tick: Tick):
        self._hangs = [f for f in faults if f.kind == "host_hang"]
        self._overruns = [f for f in faults if f.kind == "loop_overrun"]
        # per overrun: index of its first tick (the one at or after t_s), set when reached
        self._overrun_first: List[Optional[int]] = [None] * len(self._overruns)
        self._poisons = [f for f in faults if f.kind == "nonfinite_command"]
        self._poisoned = False
        self._tick = tick
        #: whether any host-side injection was made (none: the host ticks every period)
        self.any = bool(self._hangs or self._overruns or self._poisons)

    def hung(self, now_s: float) -> bool:
        """True while a host_hang acts."""
        return any(f.active_at(now_s) for f in self._hangs)

    def host_ticks(self, k: int, now_s: float) -> bool:
        """Whether the host runs tick ``k`` (at ``now_s``); switches the poisoned command."""
        if self.hung(now_s):
            return False
        for i, f in enumerate(self._overruns):
            if not f.active_at(now_s):
                continue
            if self._overrun_first[i] is None:
                self._overrun_first[i] = k
            if (k - self._overrun_first[i]) % int(resolved_value(f)) != 0:
                return False
        poisoned = any(f.active_at(now_s) for f in self._poisons)
        if poisoned != self._poisoned:          # only on a change, at a tick the host runs
            self._tick.inject_nonfinite_command(poisoned)
            self._poisoned = poisoned
        return True
