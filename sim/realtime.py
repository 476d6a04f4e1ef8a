"""The simulated ankle in real time: its own process, reached over a CAN bus that crosses processes.

``ankle sim --realtime`` runs three processes: the supervisor (this module's
:func:`run`, with the telemetry pump and loggers), the tick's process
(:mod:`controller.runtime.process`) and the simulated devices (:func:`_device_process`).
The devices serve a socketcand-protocol bus on loopback
(:class:`sim.socketcand.SocketcandServerBus`); the tick's process connects to it
with python-can's own ``socketcand`` interface, exactly as it would to a
socketcand daemon in front of a board's SocketCAN interface.

Timing: the devices start at once, the wearer walking (as a real one may while
the controller boots; the driver stays passive until the host activates it).
Plant time 0 is CLOCK_MONOTONIC ``t0``; the devices step the plant to
``k * period`` at ``t0 + k * period - lead`` and send its samples.  The host's
time 0 is put on the same grid, so its tick finds the samples waiting (as in
lock-step), and the host's command reaches the plant at the devices' next step.

The supervisor talks to the devices over a pipe: "exit" ends the walk (and
brings back the record), and :meth:`DeviceProcess.command_wearer` tells the
simulated wearer to stand, walk or follow the scenario again (the simulator
console's ``wearer``, :mod:`sim.wearer_console`).
"""
from __future__ import annotations

import math
import multiprocessing as mp
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, List, Optional, Sequence, Tuple

import numpy as np

from controller.kernels.telemetry import COLUMN
from controller.runtime import _rt
from controller.params.registry import ParamSet
from controller.runtime.process import (RealtimeSpec, Runtime, RuntimeFailure, RuntimeSpec, TelemetryPump,
                                TelemetryRecorder)
from hal.bus import BusConfig
from sim.asymmetry import AsymmetryModel
from sim.faults import Injection

if TYPE_CHECKING:
    from sim.harness import SimRun

__all__ = ["DeviceSpec", "DeviceProcess", "RealtimeRun", "run", "as_sim_run", "timing_figures"]

_CHANNEL = "can0"


@dataclass(frozen=True)
class DeviceSpec:
    """The simulated wearer and devices (picklable: it crosses into the devices' process).

    ``asymmetry``: the asymmetric wearer's model (None: symmetric); ``sound_node``: simulate
    the sound-side sensor node (CAN 0x113 every 2 ms).
    """

    scenario: str = "steady"
    speed_m_s: float = 1.25
    mass_kg: float = 80.0
    seed: int = 0
    stride_cv: float = 0.02
    rate_Hz: float = 1000.0
    lead_ns: int = 400_000
    duration_s: float = 3600.0         # walking stops after this long (the process keeps answering)
    truth_s: float = 0.0               # ground truth is recorded for this long from the start
    faults: Tuple[Injection, ...] = ()
    plant_overrides: Tuple[Tuple[str, float], ...] = ()
    host: str = "127.0.0.1"
    port: int = 0
    realtime: RealtimeSpec = field(default_factory=RealtimeSpec.none)
    asymmetry: Optional[AsymmetryModel] = None
    sound_node: bool = False
    #: the simulated drive, a name of hal.drives.DRIVES (its ``sim`` part plays it)
    driver: str = "ak_mit"
    #: print a line (stderr) each second in which the devices missed deadlines: the machine is
    #: too busy to keep time, and the controller's replies come late because of it
    say_late: bool = False


def _build(spec: DeviceSpec, bus):
    from sim.devices import SimAnkle
    from sim.plant import build_plant
    from sim.wearer import Wearer
    from hal.drives import load
    params = ParamSet({**load(spec.driver, "sim_params"), "wearer.mass_kg": spec.mass_kg})
    overrides = {"mass_kg": spec.mass_kg, "seed": spec.seed, "ratio": params["actuator.ratio"],
                 "efficiency": params["actuator.efficiency"], "direction": params["actuator.direction"]}
    overrides.update(load(spec.driver, "sim_plant"))
    overrides.update(dict(spec.plant_overrides))
    plant = build_plant(overrides)
    wearer = Wearer(spec.scenario, spec.speed_m_s, spec.mass_kg, stride_cv=spec.stride_cv, seed=spec.seed,
                    asymmetry=spec.asymmetry)
    return plant, wearer, SimAnkle(bus, plant, wearer, faults=spec.faults, sound_node=spec.sound_node,
                                   drive=load(spec.driver, "sim")(plant))


def _device_process(spec: DeviceSpec, conn) -> None:
    """Entry point of the devices' process: the wearer walks from the start, as a real one would
    while the controller boots (the fitting scenario's stands until told to walk); the driver is
    passive until the host activates it."""
    from sim.harness import TRUTH_COLUMNS
    from sim.socketcand import SocketcandServerBus

    _rt.set_thread_name("ankle-sim")
    signal.signal(signal.SIGINT, signal.SIG_IGN)    # Ctrl-C is the supervisor's to act on
    bus = None
    try:
        bus = SocketcandServerBus(channel=_CHANNEL, host=spec.host, port=spec.port)
        plant, wearer, sim = _build(spec, bus)
        warnings = spec.realtime.apply()
        period_ns = int(round(1e9 / spec.rate_Hz))
        rows = int(math.ceil(spec.truth_s * spec.rate_Hz))
        steps = int(math.ceil(spec.duration_s * spec.rate_Hz)) if math.isfinite(spec.duration_s) else math.inf
        per_s = int(round(spec.rate_Hz))
        missed_before = 0
        truth = np.full((rows, len(TRUTH_COLUMNS)), np.nan)
        t0_ns = _rt.now_ns() + 100_000_000
        cadence = _rt.Cadence(period_ns, t0_ns - spec.lead_ns, spin_ns=spec.realtime.spin_ns)
        conn.send(("serving", {"port": bus.port, "t0_ns": t0_ns, "warnings": warnings}))
        sim.begin_walking(0.0)
        k = 0
        while True:
            # the supervisor's messages, every 16 steps, never waited for: ("exit", 0) ends the
            # walk; ("wearer", speed m/s or None) is Wearer.command (no answer)
            if k % 16 == 0 and conn.poll():
                kind, payload = conn.recv()
                if kind == "exit":
                    break
                if kind == "wearer":
                    try:
                        wearer.command(payload)
                    except (TypeError, ValueError):
                        continue        # DeviceProcess.command_wearer checked it: nothing to change
                    if plant.next_queued:
                        # the segment after the present one is planned but not begun: a standing
                        # one is planned again under the command (a walk starts a segment sooner)
                        again = wearer.replan_last()
                        if again is not None:
                            plant.queue_stride(*again)
                continue                # another may be waiting; else this same step goes on
            # plant time is the deadline's grid point: a late wake delays the frames, not the physics
            cadence.wait()
            k = (cadence.next_ns - cadence.start_ns) // period_ns
            if k < steps:
                sim.step_to(k * period_ns * 1e-9)   # also answers set-up frames (enter, exit, zero)
                if k < rows:
                    plant.truth(truth[k])
            else:
                sim.answer(0.0)                     # the walk is over; still answer the host
            cadence.finish(_rt.now_ns())
            if spec.say_late and k % per_s == 0 and cadence.missed > missed_before:
                print(f"simulated ankle: {cadence.missed - missed_before} steps of the last second more than "
                      f"0.5 ms late: this machine is too busy to keep time; replies reach the controller "
                      f"late, and a motor_stale there comes from that, not from the motor",
                      file=sys.stderr, flush=True)
                missed_before = cadence.missed
        conn.send(("record", {"truth": truth[:min(k + 1, rows)], "strides": list(wearer.strides),
                              "watchdog_tripped": bool(plant.watchdog_tripped),
                              "watchdog_trip_s": plant.watchdog_trip_s, "ticks": cadence.ticks,
                              "missed": cadence.missed, "max_late_ns": cadence.max_late_ns,
                              "frames_in": sim.frames_in, "frames_out": sim.frames_out, "t0_ns": t0_ns}))
    except BaseException as e:
        try:
            conn.send(("error", f"{type(e).__name__}: {e}"))
        except OSError:
            pass                        # the supervisor is gone: there is nobody left to tell
    finally:
        if bus is not None:
            bus.shutdown()


class DeviceProcess:
    """The simulated devices' process as the supervisor sees it.

    The pipe to it is shared between the supervisor (:meth:`finish`) and the console's thread
    (:meth:`command_wearer`): every send holds ``_lock``.
    """

    def __init__(self, spec: DeviceSpec):
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._lock = threading.Lock()
        self._finishing = False          # "exit" sent: nothing more goes to the devices
        self.process = ctx.Process(target=_device_process, args=(spec, child), name="ankle-sim", daemon=True)
        self.port = 0
        self.t0_ns = 0
        self.period_ns = int(round(1e9 / spec.rate_Hz))
        self.warnings: List[str] = []

    def _receive(self, timeout_s: float, expect: str):
        if not self._conn.poll(timeout_s):
            raise RuntimeFailure(f"the simulated devices did not answer within {timeout_s:g} s")
        try:
            kind, payload = self._conn.recv()
        except EOFError:
            raise RuntimeFailure(f"the simulated devices exited (code {self.process.exitcode})") from None
        if kind == "error":
            raise RuntimeFailure(f"simulated devices: {payload}")
        if kind != expect:
            raise RuntimeFailure(f"the simulated devices said {kind!r}, expected {expect!r}")
        return payload

    def start(self, timeout_s: float = 20.0) -> int:
        """Start the process; returns the port it serves on (``t0_ns``: its plant time 0)."""
        self.process.start()
        info = self._receive(timeout_s, "serving")
        self.port, self.t0_ns, self.warnings = info["port"], info["t0_ns"], info["warnings"]
        return self.port

    def command_wearer(self, speed_m_s: Optional[float]) -> None:
        """Tell the simulated wearer what to do (:meth:`sim.wearer.Wearer.command`): None to follow
        the scenario again, 0.0 to stand, a speed in m/s to walk.  Thread-safe and quick: the
        devices take it within 16 of their steps and answer nothing.  ValueError for a negative or
        non-finite speed; RuntimeFailure when the devices are not running (not started, ending,
        or exited): nothing was sent."""
        if speed_m_s is not None:
            speed_m_s = float(speed_m_s)
            if not math.isfinite(speed_m_s) or speed_m_s < 0.0:
                raise ValueError(f"wearer speed {speed_m_s!r}: 0 (stand) or a positive speed in m/s")
        with self._lock:
            if self._finishing or not self.process.is_alive():
                raise RuntimeFailure("the simulated devices are not running: the session has ended")
            try:
                self._conn.send(("wearer", speed_m_s))
            except OSError as e:         # the devices exited between the check and the send
                raise RuntimeFailure(f"the simulated devices did not take it ({e})") from None

    def finish(self, timeout_s: float = 10.0) -> dict:
        if not self.process.is_alive():
            raise RuntimeFailure(f"the simulated devices exited early (code {self.process.exitcode})")
        with self._lock:
            self._finishing = True
            self._conn.send(("exit", 0))
        record = self._receive(timeout_s, "record")
        self.process.join(timeout_s)
        return record

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
            self.process.join(5)


@dataclass
class RealtimeRun:
    """What a real-time simulated session produced."""

    telemetry: np.ndarray        # rows as published, in order
    truth: np.ndarray            # the devices' ground truth, one row per plant step
    strides: list
    stats: dict                  # the tick's process counters (Runtime.stats)
    summary: dict                # the tick's process summary at shutdown
    ready: dict                  # start-up report of the tick's process (warnings, settings)
    device: dict                 # the devices' counters
    wall_seconds: float
    rate_Hz: float


def run(*, duration_s: float, params: Optional[ParamSet] = None, device: DeviceSpec = DeviceSpec(),
        realtime: RealtimeSpec = RealtimeSpec.none(), sinks: Sequence[Callable[[np.ndarray], None]] = (),
        on_start: Optional[Callable[[Runtime, DeviceProcess], None]] = None,
        boot_faults: int = 0, can_log: Optional[str] = None, can_session=None, io: str = "auto",
        adaptation=None, live=None, say: Optional[Callable[[str], None]] = None) -> RealtimeRun:
    """Walk the simulated wearer in real time for ``duration_s`` on the three-process stack.

    ``sinks`` get every telemetry batch (:class:`controller.runtime.process.TelemetryPump`);
    ``on_start(runtime, devices)`` is called once the loop is about to begin (e.g. to start
    a load for a benchmark).  ``can_log``: record the raw CAN traffic there (BLF or ASC by
    suffix) through a connection of its own to the devices' bus.  ``io``: the tick's I/O
    (:attr:`controller.runtime.process.RuntimeSpec.io`).  ``adaptation``: a
    :class:`controller.symmetry.adaptation.SymmetryAdaptation`, bound to the runtime and fed as a
    sink from the first row, as ``ankle run`` does (the caller closes it).  ``live``: a
    :class:`controller.records.live.LiveSpec` to serve the session to Foxglove as one more sink
    (a port that will not open, or no foxglove-sdk: one line through ``say``, default stderr, the
    walk goes on).
    """
    from hal.drives import load
    params = (params or ParamSet(load(device.driver, "sim_params"))).with_values({"wearer.mass_kg": device.mass_kg})
    rate_Hz = params["loop.rate_Hz"]
    # the walk and its truth outlast the host's session by the start-up (a few seconds at most)
    device = DeviceSpec(**{**device.__dict__, "rate_Hz": rate_Hz, "duration_s": duration_s + 60.0,
                           "truth_s": duration_s + 30.0})
    devices = DeviceProcess(device)
    runtime = traffic = view = tap = None
    affinity = os.sched_getaffinity(0)      # Runtime.isolate narrows it for the session
    try:
        port = devices.start()
        from hal.drives import drive
        from sim.plant import build_plant
        driver_id = build_plant({"mass_kg": device.mass_kg}).driver_id
        spec = RuntimeSpec(bus=BusConfig(interface="socketcand", channel=_CHANNEL, host=device.host, port=port),
                           driver_id=driver_id, driver=device.driver, driver_model=drive(device.driver).sim_model,
                           realtime=realtime, boot_faults=boot_faults, io=io)
        if can_log is not None:
            from controller.records.logger import CanTrafficLog
            traffic = CanTrafficLog(BusConfig(interface="socketcand", channel=_CHANNEL, host=device.host,
                                              port=port), can_log)
            traffic.start()
        if can_session is not None:
            # the session record's /can: a bus connection of its own, as on the board
            from controller.records.logger import CanSessionTap
            tap = CanSessionTap(BusConfig(interface="socketcand", channel=_CHANNEL, host=device.host, port=port),
                                can_session)
            tap.start()
        runtime = Runtime(spec, params)
        ready = runtime.start()
        ready["warnings"] = ready["warnings"] + runtime.isolate()
        if live is not None:            # after isolate(): the view's threads stay off the tick's CPU
            from controller.records.live import open_live_view
            view = open_live_view(live, say or (lambda line: print(line, file=sys.stderr, flush=True)))
            if view is not None:
                sinks = [*sinks, view]
        recorder = TelemetryRecorder(int(duration_s * rate_Hz) + 1000, runtime.shared.width)
        if adaptation is not None:
            adaptation.bind(runtime)
        pump = TelemetryPump(runtime, [recorder, *sinks] + ([adaptation] if adaptation is not None else []))
        # the host's time 0 on the devices' grid, 0.1 s ahead: truth row k is the host's tick k
        periods = -(-(runtime.first_tick_ns(_rt.now_ns()) - devices.t0_ns) // devices.period_ns)
        t0_ns = devices.t0_ns + periods * devices.period_ns
        runtime.begin(t0_ns)
        pump.start()
        wall0 = time.perf_counter()
        if on_start is not None:
            on_start(runtime, devices)
        runtime.wait_until_ns(t0_ns + int(duration_s * 1e9))     # or the loop's end: stop() says why
        summary = runtime.stop()
        stats = runtime.stats()
        wall = time.perf_counter() - wall0
        pump.finish()
        record = devices.finish()
        record["warnings"] = devices.warnings
        if traffic is not None:
            traffic.stop()
            record["can_frames_logged"] = traffic.frames
        if tap is not None:
            tap.stop()
            record["can_frames_recorded"] = tap.frames
        record["host_offset_ticks"] = int(periods)
        if view is not None:
            record["live"] = view.stats()
        truth = record.pop("truth")[periods:]
        return RealtimeRun(recorder.rows.copy(), truth, record.pop("strides"), stats, summary,
                           ready, record, wall, rate_Hz)
    finally:
        os.sched_setaffinity(0, affinity)
        if traffic is not None:
            traffic.stop()
        if tap is not None:
            tap.stop()
        if view is not None:
            view.close()
        if runtime is not None and runtime.process.is_alive():
            runtime.process.kill()
        devices.kill()


def as_sim_run(rt: RealtimeRun, params: ParamSet) -> "SimRun":
    """The real-time session as a :class:`sim.harness.SimRun` on the host's time base, so the
    lock-step evaluation (:mod:`sim.evaluation`) applies: telemetry row ``k`` is the host's
    tick at ``k`` periods (NaN for a skipped deadline), truth row ``k`` the plant at that time,
    strides shifted to host time, their sound events too (those that ended before the host
    started are dropped)."""
    import dataclasses
    from sim.harness import SimRun
    period_s = 1.0 / rt.rate_Hz
    k = np.rint(rt.telemetry[:, COLUMN["t"]] / period_s).astype(np.int64)
    n = min(len(rt.truth), int(k.max()) + 1 if len(k) else 0)
    table = np.full((n, rt.telemetry.shape[1]), np.nan)
    keep = (k >= 0) & (k < n)
    table[k[keep]] = rt.telemetry[keep]
    shift_s = rt.device.get("host_offset_ticks", 0) * period_s
    strides = [dataclasses.replace(s, t_heel_strike_s=s.t_heel_strike_s - shift_s,
                                   sound_heel_strike_s=s.sound_heel_strike_s - shift_s,
                                   sound_toe_off_s=s.sound_toe_off_s - shift_s)
               for s in rt.strides if s.t_heel_strike_s + s.stride_s - shift_s > 0.0]
    trip = rt.device.get("watchdog_trip_s", -1.0)
    return SimRun(params=params, telemetry=table, truth=rt.truth[:n], strides=strides, rate_Hz=rt.rate_Hz,
                  sim_seconds=n * period_s, wall_seconds=rt.wall_seconds,
                  frames_sent=rt.summary.get("frames_sent", 0), send_errors=rt.summary.get("send_errors", 0),
                  watchdog_tripped=bool(rt.device.get("watchdog_tripped")),
                  watchdog_trip_s=trip - shift_s if trip >= 0 else -1.0,
                  shutdown_error=rt.summary.get("shutdown_error", ""))


def timing_figures(rt: RealtimeRun, miss_s: float = 500e-6) -> dict:
    """Rate, lateness and per-phase compute of a real-time session, from every tick's row."""
    tel = rt.telemetry

    def pct(x):
        x = x[np.isfinite(x)] * 1e6
        if not len(x):
            return {}
        p50, p99, p999 = np.percentile(x, [50, 99, 99.9])
        return {"p50_us": round(float(p50), 2), "p99_us": round(float(p99), 2),
                "p99.9_us": round(float(p999), 2), "max_us": round(float(x.max()), 2)}

    span = tel[-1, COLUMN["t"]] - tel[0, COLUMN["t"]] if len(tel) > 1 else 0.0
    achieved = (len(tel) - 1) / span if span > 0 else float("nan")
    late = tel[:, COLUMN["late_s"]]
    read, update, write = (tel[:, COLUMN[c]] for c in ("read_s", "update_s", "write_s"))
    deadlines = rt.stats.get("ticks", 0) + rt.stats.get("skipped", 0)
    missed = int(np.sum(late > miss_s)) + rt.stats.get("skipped", 0)
    return {"rate_target_Hz": rt.rate_Hz, "rate_achieved_Hz": round(float(achieved), 3),
            "rate_error_pct": round(float(100 * (achieved - rt.rate_Hz) / rt.rate_Hz), 4),
            "ticks": rt.stats.get("ticks", 0), "lateness": pct(late),
            "missed_gt_500us": missed, "missed_pct": round(100 * missed / max(deadlines, 1), 4),
            "skipped": rt.stats.get("skipped", 0), "overruns": rt.stats.get("overruns", 0),
            "read": pct(read), "update": pct(update), "write": pct(write),
            "tick_work": pct(read + update + write), "ring_dropped": rt.stats.get("ring_dropped", 0),
            "devices_missed": rt.device.get("missed", 0),
            "devices_max_late_us": round(rt.device.get("max_late_ns", 0) / 1e3, 1),
            "io": rt.ready.get("io"), "warnings": list(rt.ready.get("warnings", [])),
            "device_warnings": list(rt.device.get("warnings", []))}
