"""``ankle run --config FILE``: the controller on the board, supervised from this process.

This process is the supervisor: it loads the configuration and the parameter
file, starts the tick's process (:class:`controller.runtime.process.Runtime`), drains
telemetry into the loggers and the symmetry adaptation
(:class:`controller.symmetry.adaptation.SymmetryAdaptation`, which runs with or without a
console), prints one status line a second, and on Ctrl-C or SIGTERM (systemd's stop) asks
the loop to stop, which switches the driver off before the process exits.
"""
from __future__ import annotations

import os
import signal
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Callable, List, Optional

import numpy as np

from controller.runtime import _rt
from controller.kernels._tick import TELEMETRY_COLUMNS
from controller.kernels.telemetry import COLUMN as _COL
from controller.config import RunConfig
from controller.kernels.faults import MODES, fault_bit, fault_names
from controller.params.registry import ParamSet
from controller.runtime.process import RealtimeSpec, Runtime, RuntimeSpec, TelemetryPump
from hal.errors import ConfigError

__all__ = ["realtime_spec", "runtime_spec", "run_duration_s", "load_params", "open_logs", "run_board",
           "LatestRow", "state_directory", "session_of", "StrideTap", "live_spec"]



def realtime_spec(cfg: RunConfig) -> RealtimeSpec:
    """The tick process's real-time settings from ``[realtime]``."""
    r = cfg.realtime
    return RealtimeSpec(priority=r.priority, cpus=tuple(r.cpus), lock_memory=r.lock_memory,
                        timer_slack_ns=r.timer_slack_ns, spin_ns=r.spin_ns, freeze_gc=r.freeze_gc,
                        cpu_latency_us=r.cpu_latency_us)


def runtime_spec(cfg: RunConfig, boot_faults: int = 0) -> RuntimeSpec:
    """What the tick's process is started with: ``[bus]``, ``[driver]`` and ``[realtime]``."""
    return RuntimeSpec(bus=cfg.bus, driver_id=cfg.driver.id, driver=cfg.driver.type, driver_model=cfg.driver.model,
                       reply_id=cfg.driver.reply_id, setup_timeout_s=cfg.driver.timeout_s,
                       range_overrides=dict(cfg.driver.range_overrides),
                       driver_options=dict(cfg.driver.options), realtime=realtime_spec(cfg),
                       boot_faults=boot_faults)


def run_duration_s(cfg: RunConfig, duration_s: Optional[float] = None) -> Optional[float]:
    """How long to run: ``--duration`` if given, else ``[loop] duration_s`` (None: until stopped)."""
    return duration_s if duration_s is not None else cfg.loop.duration_s


def load_params(cfg: RunConfig, say: Callable[[str], None]):
    """The parameter set to run with and the boot faults: ``[params] file`` if given (a corrupt
    file falls back to its backup or the defaults and latches the ``params`` fault), the
    registry's defaults otherwise.  The loop rate is the set's ``loop.rate_Hz``; ConfigError if
    ``[realtime] spin_ns`` is not shorter than the period it gives."""
    boot_faults = 0
    if cfg.params.file is None:
        params = ParamSet()
        say("parameters: registry defaults (no [params] file configured)")
    else:
        from controller.params import store as paramstore
        try:
            loaded = paramstore.load(cfg.params.file)
        except IsADirectoryError:
            raise ConfigError(f"params.file: {cfg.params.file}: is a directory, not a parameter file") from None
        params = loaded.params
        say(f"parameters: {loaded.source} ({cfg.params.file})")
        for line in loaded.problems:
            say(f"  {line}")
        if loaded.corrupt:
            boot_faults = fault_bit("params")
    rate_Hz = params["loop.rate_Hz"]
    period_ns = 1e9 / rate_Hz
    if cfg.realtime.spin_ns >= period_ns:
        raise ConfigError(f"realtime.spin_ns: must be shorter than one period ({period_ns:.0f} ns at "
                          f"loop.rate_Hz = {rate_Hz:g}, the parameter set's), got {cfg.realtime.spin_ns}")
    return params, boot_faults


def open_logs(cfg: RunConfig, bus_config, stamp: str, say: Callable[[str], None], params=None):
    """The session record (a telemetry sink) and the raw CAN log, as configured; (sinks, closers).

    ``[log] format`` "mcap": one session file (:class:`controller.records.retention.RotatingSession`:
    parts by ``rotate_mb``/``rotate_min``, the directory kept within ``budget_gb`` and
    ``reserve_mb``) with the CAN traffic in its /can channel (a bus connection of its own); the sink
    is the session itself, so the caller can hand it the audit records and strides.  "csv": the
    telemetry CSV.  ``[log] can`` adds a BLF/ASC file either way.  ``params``: the parameter set
    written into the session file's metadata."""
    sinks: List[Callable[[np.ndarray], None]] = []
    closers: List[Callable[[], None]] = []
    if cfg.log.directory is None:
        return sinks, closers
    from controller.records.logger import CanSessionTap, CanTrafficLog, CsvSessionLog, session_metadata
    try:
        Path(cfg.log.directory).mkdir(parents=True, exist_ok=True)
    except OSError as e:             # checked before the bus is touched: nothing has started yet
        raise ConfigError(f"log.directory: cannot create {cfg.log.directory}: "
                          f"{(e.strerror or str(e)).lower()}") from None
    if cfg.log.csv and cfg.log.format == "csv":
        from controller.records.retention import Retention
        path = Path(cfg.log.directory) / f"ankle-{stamp}.csv"
        # a CSV is one file (no parts): the budget and the reserve are kept when it starts
        state = Retention(cfg.log.directory, cfg.log.budget_gb * 1e9, cfg.log.reserve_mb * 1e6,
                          say=say).enforce(current=[f"ankle-{stamp}"])
        if state["warn"]:
            say(f"log: warning: the log directory holds {state['used'] / 1e9:.2f} GB of its "
                f"{cfg.log.budget_gb:g} GB budget: the oldest sessions are deleted from now on")
        csv_log = CsvSessionLog(path, TELEMETRY_COLUMNS)
        sinks.append(csv_log.write)
        closers.append(csv_log.close)
        say(f"log: {path}")
    elif cfg.log.csv:
        from controller.records.retention import Retention, RotatingSession
        path = Path(cfg.log.directory) / f"ankle-{stamp}.mcap"
        retention = Retention(cfg.log.directory, cfg.log.budget_gb * 1e9, cfg.log.reserve_mb * 1e6, say=say)
        metadata = session_metadata(run_config=cfg.to_dict(), params=params,
                                    drive={"type": cfg.driver.type, "model": cfg.driver.model,
                                           "id": str(cfg.driver.id)})
        try:
            session = RotatingSession(path, TELEMETRY_COLUMNS, metadata=metadata, retention=retention, say=say,
                                      rotate_bytes=cfg.log.rotate_mb * 1e6, rotate_s=cfg.log.rotate_min * 60.0)
        except OSError as e:         # a full disk: the controller runs without a record, and says so
            say(f"log: {path}: {e.strerror or e}; running without a session record")
        else:
            sinks.append(session)
            closers.append(session.close)
            tap = CanSessionTap(bus_config, session)
            tap.start()
            closers.insert(0, tap.stop)          # the tap first: no frame after its session closed
            say(f"log: {path} (MCAP: telemetry, events, CAN, audit, strides)")
    if cfg.log.can:
        path = Path(cfg.log.directory) / f"ankle-{stamp}.{cfg.log.can}"
        can_log = CanTrafficLog(bus_config, path, fmt=cfg.log.can)
        can_log.start()
        closers.append(can_log.stop)
        say(f"CAN log: {path}")
    return sinks, closers


def session_of(sinks) -> Optional[object]:
    """The session record among ``open_logs``' sinks that takes audit records and strides, if any."""
    return next((s for s in sinks if hasattr(s, "stride") and hasattr(s, "audit")), None)


class StrideTap:
    """A telemetry sink, after the symmetry adaptation: each stride its analyser finished is handed
    to ``targets`` (``stride(t, fields)``: the session record's /strides), once.  It reads what the
    adaptation already analysed (``adaptation.strides``): no second analyser runs."""

    def __init__(self, adaptation, targets):
        self.adaptation = adaptation
        self.targets = list(targets)
        self._last_t = -float("inf")

    def __call__(self, batch: np.ndarray) -> None:
        from dataclasses import asdict
        for stride in list(self.adaptation.strides[-16:]):
            if stride.t_heel_strike_s > self._last_t:
                self._last_t = stride.t_heel_strike_s
                fields = asdict(stride)
                for target in self.targets:
                    target.stride(stride.t_heel_strike_s, fields)


def live_spec(cfg: RunConfig):
    """The live view ``[live]`` asks for (:class:`controller.records.live.LiveSpec`), None when
    ``port`` is 0 (the default)."""
    if cfg.live.port == 0:
        return None
    from controller.records.live import LiveSpec
    return LiveSpec(port=cfg.live.port, host=cfg.live.host, rate_Hz=cfg.live.rate_Hz)


def state_directory(cfg: RunConfig) -> Optional[Path]:
    """Where the audit log (and the console's PIN and profiles) live: ``[console] state_directory``,
    else the ``[params] file``'s directory, with or without a console port (the symmetry
    adaptation records its changes there); None with neither."""
    if cfg.console.state_directory is not None:
        return cfg.console.state_directory
    return cfg.params.file.parent if cfg.params.file is not None else None


class _BoardConsole:
    """The prosthetists' console on ``[console] port``, if configured and it opens.

    A port that cannot be opened is reported and the controller runs without a console:
    the wearer's ankle matters more than the tuning session.
    """

    def __init__(self, cfg: RunConfig, say: Callable[[str], None], mass_kg: float):
        self.cfg, self.say = cfg, say
        self.port = self.session = None
        self.sinks: List[Callable[[np.ndarray], None]] = []
        if cfg.console.port is None:
            return
        import serial
        from controller.console.session import GaitWatch
        from controller.records.logger import LogSwitch
        try:
            self.port = serial.serial_for_url(cfg.console.port, baudrate=cfg.console.baudrate, timeout=0.05)
        except (serial.SerialException, ValueError, OSError) as e:
            say(f"console: cannot open {cfg.console.port} ({e}); running without a console")
            return
        self.watch = GaitWatch(mass_kg)
        log_dir = cfg.log.directory or cfg.console.state_directory / "logs"
        from controller.records.logger import session_metadata
        self.logs = LogSwitch(log_dir, TELEMETRY_COLUMNS, fmt=cfg.log.format,
                              metadata=session_metadata(run_config=cfg.to_dict()))
        self.sinks = [self.watch, self.logs]

    def start(self, runtime, audit, adaptation) -> None:
        """``audit``: the shared audit log's (log, note); ``adaptation``: the one running beside."""
        if self.port is None:
            return
        from controller.console.session import open_console
        state = self.cfg.console.state_directory
        try:                             # the ankle walks whatever the state directory holds
            state.mkdir(parents=True, exist_ok=True)
            self.session = open_console(runtime, self.watch, self.port, state, self.cfg.params.file,
                                        logs=self.logs, banner="ankle console", audit=audit,
                                        adaptation=adaptation)
        except OSError as e:
            self.say(f"console: cannot start it in {state} ({e.strerror or e}); running without a console")
            return
        self.say(f"console: {self.cfg.console.port} at {self.cfg.console.baudrate} bit/s; PIN, audit log and "
                 f"profiles in {state}")
        for line in self.session.banner.splitlines()[1:]:      # a damaged audit log, read-only and why
            self.say(f"console: {line}")

    def close(self) -> None:
        if self.session is not None:
            self.session.stop()
        if self.port is not None:
            self.logs.stop()
            self.port.close()


class LatestRow:
    """A telemetry sink keeping the newest row (for status lines)."""

    def __init__(self):
        self.row: Optional[np.ndarray] = None

    def __call__(self, batch: np.ndarray) -> None:
        if len(batch):
            self.row = batch[-1].copy()


def status_line(row: Optional[np.ndarray], stats: dict, missed_recent: int = 0) -> str:
    """One status line with units; ``missed_recent``: deadlines missed since the last line (said
    in words, so a fault that follows from them is not taken for a motor or bus problem)."""
    if row is None:
        return "waiting for the first tick"
    busy = (f"  this machine is not keeping time: {missed_recent} deadlines missed since the last line"
            if missed_recent else "")
    mode = MODES.get(int(row[_COL["mode"]]), "?")
    faults = ", ".join(fault_names(int(row[_COL["faults"]]))) or "none"
    if stats.get("link_down"):
        # nothing is heard or delivered: the driver's and the sensors' last values would only be
        # frozen numbers, so they are not shown
        return (f"t {row[_COL['t']]:8.1f} s  BUS LOST ({os.strerror(stats['link_down'])}): no frames to or "
                f"from the driver and sensors  mode {mode}  faults {faults}  ticks {stats['ticks']}  "
                f"missed {stats['missed']}{busy}")
    return (f"t {row[_COL['t']]:8.1f} s  mode {mode:<7}  faults {faults}  ticks {stats['ticks']}  "
            f"missed {stats['missed']}  max late {stats['max_late_ns'] / 1e3:.0f} us  "
            f"torque {row[_COL['torque_cmd_Nm']]:+6.1f} N*m  winding {row[_COL['winding_temp_C']]:5.1f} degC  "
            f"supply {row[_COL['supply_V']]:4.1f} V{busy}")


def run_board(cfg: RunConfig, *, duration_s: Optional[float] = None, say: Callable[[str], None] = print,
              stop: Optional[threading.Event] = None, status_period_s: float = 1.0) -> dict:
    """Run the controller as configured until ``duration_s`` (else ``loop.duration_s``), ``stop``
    is set, or SIGINT / SIGTERM arrives; returns the summary."""
    stop = stop or threading.Event()
    duration_s = run_duration_s(cfg, duration_s)
    params, boot_faults = load_params(cfg, say)
    spec = runtime_spec(cfg, boot_faults)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    sinks, closers = open_logs(cfg, cfg.bus, stamp, say, params=params)
    session = session_of(sinks)
    console = _BoardConsole(cfg, say, params["wearer.mass_kg"])
    sinks += console.sinks
    closers.append(console.close)
    from controller.console.audit import SharedAuditLog
    from controller.symmetry.adaptation import SymmetryAdaptation
    audit = SharedAuditLog(state_directory(cfg), missing="no [params] file or [console] state_directory "
                                                         "is configured, so there is no audit log")
    # the policy beside the console: fed like any sink, it opens the audit log when first switched on
    adaptation = SymmetryAdaptation(audit.open, params["wearer.mass_kg"], say=say)
    sinks.append(adaptation)
    # the session records (the board's, the console's `log start`) get the audit trail and the strides
    records = [r for r in (session, getattr(console, "logs", None)) if r is not None]
    audit.mirrors.extend(r.audit for r in records)
    if records:
        sinks.append(StrideTap(adaptation, records))
    closers += [adaptation.close, audit.close]       # after the console: it records into the same log
    latest = LatestRow()
    runtime = Runtime(spec, params)
    adaptation.bind(runtime)
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, lambda *_: stop.set())
    try:
        ready = runtime.start()
        for line in ready["warnings"] + runtime.isolate():
            say(line)
        if cfg.live.port:            # one more sink; after isolate(): its threads stay off the tick CPU
            from controller.records.live import open_live_view
            view = open_live_view(live_spec(cfg), say)
            if view is not None:
                sinks.append(view)
                closers.append(view.close)
        s = ready["settings"]
        say(f"tick process: {s['policy']} priority {s['priority']}, CPUs {s['cpus']}, "
            f"I/O {ready['io']}, {params['loop.rate_Hz']:g} Hz, drive {spec.driver}")
        console_audit = audit.open() if console.port is not None else None      # before any telemetry
        pump = TelemetryPump(runtime, [latest, *sinks])
        pump.start()
        console.start(runtime, console_audit, adaptation)
        t0_ns = runtime.first_tick_ns(_rt.now_ns())
        runtime.begin(t0_ns)
        end = None if duration_s is None else time.monotonic() + 0.1 + duration_s
        next_status = time.monotonic() + status_period_s
        missed_said = 0
        warnings = []          # the console says ahead when --duration will stop the controller
        if end is not None and console.session is not None:
            from controller.console.session import time_warnings
            warnings = time_warnings(duration_s, "the controller's run")
        started = time.monotonic()
        while not stop.is_set():
            now = time.monotonic()
            if end is not None and now >= end:
                break
            while warnings and now >= started + warnings[0][0]:
                console.session.announce(warnings.pop(0)[1])
            if now >= next_status:
                stats = runtime.stats()
                say(status_line(latest.row, stats, stats["missed"] - missed_said))
                missed_said = stats["missed"]
                next_status += status_period_s
            if runtime.shared.state in ("stopped", "failed"):
                break
            stop.wait(max(0.0, min(next_status, end if end is not None else next_status) - now))
        summary = runtime.stop()
        stats = runtime.stats()
        pump.finish()
    finally:
        if runtime.process.is_alive():
            runtime.stop()
        for close in closers:
            close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    faults = 0
    if latest.row is not None:
        faults = int(latest.row[_COL["faults"]])
    result = {"ticks": stats["ticks"], "missed": stats["missed"], "skipped": stats["skipped"],
              "overruns": stats["overruns"], "max_late_us": round(stats["max_late_ns"] / 1e3, 1),
              "ring_dropped": stats["ring_dropped"], "rows": pump.rows, "faults": fault_names(faults),
              **summary}
    say(f"stopped: {result['ticks']} ticks, {result['missed']} missed, max late {result['max_late_us']} us, "
        f"faults {', '.join(result['faults']) or 'none'}; driver "
        f"{'switched off' if not summary.get('shutdown_error') else 'did not confirm: ' + summary['shutdown_error']}")
    return result
