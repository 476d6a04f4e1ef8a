"""The ``ankle`` command: ``sim``, ``replay``, ``report``, ``logs``, ``params``, ...

Bad arguments and bad input (a file that is a directory, a device or too large, an
unwritable output folder, a damaged log) get one line saying what is wrong and what is
allowed, and exit status 2, never a traceback; a traceback means a bug.  Files are read
through :func:`controller.cliio.read_input` (bounded); output files are reserved before any
work and put in place only when the command succeeded (:class:`controller.cliio.OutputTarget`),
so a failure leaves none.  ``--json`` prints exactly one strict JSON object on standard output
(NaN as null: :func:`controller.cliio.json_text`).
"""
from __future__ import annotations

import argparse
import math
import sys
import threading
import time
from pathlib import Path
from typing import List, Optional

from controller.cliio import InputFileError, OutputTarget, describe_os_error, figure_format, json_text
from controller.params.registry import REGISTRY, ParamError, ParamSet, groups, markdown_reference
from sim.faults import KINDS as FAULT_KINDS

__all__ = ["main"]

SPEED_RANGE_M_S = (0.3, 2.15)        # sim.wearer.MIN_SPEED_M_S, MAX_SPEED_M_S


class UsageError(ValueError):
    """Options that do not go together; one line says which."""


MASS_RANGE_KG = (30.0, 150.0)
DEFAULT_MASS_KG = 80.0
DEMO_PIN = "1234"                # ankle sim --console in a state directory with no PIN of its own
DURATION_RANGE_S = (0.5, 3600.0)


def _bounded(kind, lo, hi, unit):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a {'whole ' if kind is int else ''}number") from None
        if not (lo <= value <= hi):
            raise argparse.ArgumentTypeError(f"{text} is outside {lo:g}..{hi:g} {unit}")
        return value
    return parse


def _writable(text: str) -> OutputTarget:
    """An output file: its folder must exist and it must not be a directory or a device; main()
    reserves it before any work and puts it in place only when the command succeeded."""
    target = OutputTarget(text)
    try:
        target.check()
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return target


def _directory(text: str) -> Path:
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is a file, not a directory")
    if not path.exists() and not path.parent.is_dir():
        raise argparse.ArgumentTypeError(f"directory {str(path.parent)!r} does not exist")
    return path


def _figure_format(target: OutputTarget, option: str) -> str:
    """The figure's matplotlib format, checked before any work (UsageError naming the formats)."""
    try:
        return figure_format(target.path, option)
    except ValueError as e:
        raise UsageError(str(e)) from None


def _pin(text: str) -> str:
    from controller.console.access import PinError, check_pin
    try:
        return check_pin(text)
    except PinError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _injection(text: str):
    from sim.faults import Injection
    kind, at, rest = text.partition("@")
    t_text, _, value_text = rest.partition(":")
    if not at or kind not in FAULT_KINDS:
        raise argparse.ArgumentTypeError(f"{text!r}: expected KIND@T[:VALUE] with KIND one of "
                                         f"{', '.join(sorted(FAULT_KINDS))}")
    try:
        t_s = float(t_text)
        value = float(value_text) if value_text else float("nan")
        return Injection(kind, t_s, value=value)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"{text!r}: {e}") from None


class _Parser(argparse.ArgumentParser):
    """argparse, with a bad argument said in one line (``ankle sim: error: argument --speed: ...``)
    and no usage block; ``--help`` shows the usage.  Subcommands' parsers are of this class too."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _logs_parser(sub) -> None:
    """``ankle logs list|export|copy``."""
    g = sub.add_parser("logs", help="the sessions in the log directory: list, export (CSV, CAN), copy off the board",
                       description="The session records (.mcap) and CSV logs in the log directory: list them, "
                                   "export one as the replay contract's CSV or its CAN traffic as BLF/ASC, copy "
                                   "them elsewhere (verified, never overwriting).")
    gs = g.add_subparsers(dest="logs_command", required=True, metavar="ACTION")
    where = argparse.ArgumentParser(add_help=False)
    where.add_argument("--config", type=Path, metavar="FILE",
                       help="the run configuration whose [log] directory holds the sessions")
    ls = gs.add_parser("list", parents=[where], help="one line per session: start, duration, size, faults, profile",
                       description="One line per session in the log directory (DIR, else --config's [log] "
                                   "directory): start, duration, rows, size, the faults seen, the profile.")
    ls.add_argument("directory", nargs="?", type=Path, metavar="DIR", help="the log directory")
    ls.add_argument("--json", action="store_true", help="print one JSON object")
    ex = gs.add_parser("export", parents=[where], help="a session as the replay contract's CSV, or its CAN traffic",
                       description="Export a session (a path, or a name in --config's log directory): --csv "
                                   "OUT.csv, the telemetry as the device's CSV log (the replay columns first); "
                                   "--can OUT.blf|OUT.asc, the CAN channel (python-can BLF or ASC).  Streamed.")
    ex.add_argument("session", type=Path, metavar="SESSION")
    what = ex.add_mutually_exclusive_group(required=True)
    what.add_argument("--csv", type=_writable, metavar="OUT.csv", help="the telemetry as a CSV log")
    what.add_argument("--can", type=_writable, metavar="OUT.blf|OUT.asc", help="the CAN traffic")
    ex.add_argument("--json", action="store_true", help="print one JSON object")
    cp = gs.add_parser("copy", parents=[where], help="copy sessions into a directory, verified, never overwriting",
                       description="Copy sessions (paths, or names in --config's log directory; --all: every "
                                   "session there) into --to DIR: each copy fsynced, read back and checked "
                                   "against the source's size and SHA-256; a name already taken by a different "
                                   "file is refused before anything is copied.")
    cp.add_argument("sessions", nargs="*", type=Path, metavar="SESSION")
    cp.add_argument("--to", type=Path, required=True, metavar="DIR", help="where the copies go")
    cp.add_argument("--all", action="store_true", help="every session in the log directory (--config, or --from)")
    cp.add_argument("--from", dest="source_dir", type=Path, metavar="DIR", help="the log directory for --all")
    cp.add_argument("--json", action="store_true", help="print one JSON object")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="ankle", description="Powered ankle-foot prosthesis controller.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    from sim.scenarios import SCENARIOS
    s = sub.add_parser("sim", help="walk the simulated wearer on the full stack (real CAN frames)",
                       description="Walk the simulated wearer on the full stack in lock-step: controller, "
                                   "real CAN frames on an in-process bus (or python-can's virtual bus: "
                                   "--bus), simulated drive (--driver) and sensor node.  Prints one line per "
                                   "stride and a summary.")
    s.add_argument("--scenario", default="steady", choices=sorted(SCENARIOS),
                   help="walking scenario (default: steady)")
    s.add_argument("--speed", type=_bounded(float, *SPEED_RANGE_M_S, "m/s"), default=1.25, metavar="M_S",
                   help="walking speed in m/s (default 1.25)")
    s.add_argument("--duration", type=_bounded(float, *DURATION_RANGE_S, "s"), default=None, metavar="S",
                   help="simulated seconds (default 30; with --console 600, the real-time limit; with --serve "
                        "until stopped)")
    s.add_argument("--mass", type=_bounded(float, *MASS_RANGE_KG, "kg"), default=None, metavar="KG",
                   help=f"body mass in kg (default: wearer.mass_kg of the parameter file, else "
                        f"{DEFAULT_MASS_KG:g})")
    s.add_argument("--seed", type=_bounded(int, 0, 2**31 - 1, ""), default=0, metavar="N",
                   help="random seed for noise and stride variability (default 0)")
    s.add_argument("--params", type=Path, metavar="FILE",
                   help="parameter file (controller.params.store; a corrupt file falls back to its backup "
                        "or the defaults and refuses powered mode)")
    s.add_argument("--inject", type=_injection, action="append", default=[], metavar="KIND@T[:VALUE]",
                   help="inject a fault at T s (repeatable), e.g. imu_loss@10 or low_voltage@8:20; "
                        "kinds: " + ", ".join(sorted(FAULT_KINDS)))
    s.add_argument("--asymmetric", action="store_true",
                   help="the asymmetric wearer: a -10 %% stance-time symmetry index on a passive foot, "
                        "closing as push-off work is received (a model, sim/asymmetry.py)")
    s.add_argument("--sound-node", action="store_true",
                   help="simulate the optional sound-side node (an insole on the other foot, CAN 0x113)")
    from hal.drives import DEFAULT_DRIVE, DRIVE_NAMES
    s.add_argument("--driver", choices=DRIVE_NAMES, default=DEFAULT_DRIVE, metavar="NAME",
                   help=f"the motor drive, simulated at frame level (hal.drives: {', '.join(DRIVE_NAMES)}; "
                        f"default {DEFAULT_DRIVE})")
    s.add_argument("--bus", choices=("memory", "python-can"), default=None,
                   help="the lock-step bus: memory (default), an in-process link like the board's GIL-free "
                        "one; python-can, python-can's virtual bus (the same frames and results, over ten "
                        "times slower)")
    s.add_argument("--realtime", action="store_true",
                   help="run in real time: the tick in its own process on absolute deadlines, the simulated "
                        "devices in a third, real CAN frames over a socketcand bus on loopback "
                        "(--duration up to 600 s)")
    s.add_argument("--spin-us", type=_bounded(float, 0.0, 900.0, "us"), default=0.0, metavar="US",
                   help="with --realtime: poll the clock for this long before each deadline (buys back a "
                        "non-RT kernel's wake-up latency for that much CPU; default 0)")
    s.add_argument("--live", type=_bounded(int, 1, 65535, ""), default=None, metavar="PORT",
                   help="with --realtime: serve the session live to Foxglove on ws://127.0.0.1:PORT (Open "
                        "connection > Foxglove WebSocket; needs the extra 'live', foxglove-sdk)")
    s.add_argument("--can-log", type=_writable, metavar="F.blf|F.asc",
                   help="also record the raw CAN traffic (python-can BLF or ASC); in lock-step the frames "
                        "are stamped with the simulated time")
    s.add_argument("--console", action="store_true",
                   help="open the prosthetists' console on a new pseudo-terminal (its path is printed; attach "
                        "with `python -m serial.tools.miniterm PATH` or `screen PATH`) while the simulated "
                        "wearer walks in real time (implies --realtime)")
    s.add_argument("--state-dir", type=_directory, metavar="DIR",
                   help="with --console: where the parameter file, profiles, PIN and audit log live; with "
                        "symmetry.adapt on: where the adaptation's audit log lives (default: a new temporary "
                        "directory)")
    s.add_argument("--pin", type=_pin, default=None, metavar="PIN",
                   help=f"with --console: the prosthetist PIN to install when the state directory has none "
                        f"(default {DEMO_PIN}); a PIN installed with `ankle pin set` is never replaced")
    s.add_argument("--serve", action="store_true",
                   help="only serve the simulated devices on a socketcand bus (for `ankle run --config "
                        "deploy/sim.toml`); the wearer walks from the start until Ctrl-C (or --duration)")
    s.add_argument("--port", type=_bounded(int, 1, 65535, ""), default=29536, metavar="N",
                   help="with --serve: the TCP port (default 29536)")
    s.add_argument("--log", type=_writable, metavar="F.mcap|F.csv",
                   help="write the session record: F.mcap one MCAP file (telemetry, events, strides, metadata; "
                        "opens in Foxglove), F.csv the telemetry CSV (the `ankle replay` columns)")
    s.add_argument("--plot", type=_writable, metavar="F.png", help="plot phase, torque, power, load: the whole run")
    s.add_argument("--json", action="store_true", help="print one JSON object instead of text")

    r = sub.add_parser("replay", help="run the sensor checks and the estimator offline over a recorded CSV",
                       description="Run the device's sensor checks and gait estimator over recorded sensor data, "
                                   "row by row as the tick does.  Input columns: t (s), shank_gyro (rad/s), "
                                   "load (N), ankle_angle (rad); extra columns are kept.  An empty shank_gyro "
                                   "or load cell is that sensor's frame not arriving (ankle_angle may be empty "
                                   "only where load is).  Adds phase, heel_strike, toe_off, walking; the summary "
                                   "names the sensor faults the device would have latched.")
    r.add_argument("input", type=Path, metavar="IN.csv|IN.mcap",
                   help="a CSV recording or log, or an MCAP session record (by suffix); read a block at a "
                        "time, whatever its length")
    r.add_argument("--out", type=_writable, required=True, metavar="OUT.csv")
    r.add_argument("--mass", type=_bounded(float, *MASS_RANGE_KG, "kg"), metavar="KG",
                   help="body mass in kg (default: the parameter default)")
    r.add_argument("--json", action="store_true", help="print one JSON object")

    y = sub.add_parser("report", help="gait symmetry and push-off of a session, from its log",
                       description="Analyse a session log stride by stride (the device's, the console's "
                                   "`log start`, or ankle sim --log): stance-time and step-time symmetry "
                                   "indices, push-off work and peak power; a text summary, and with --out a "
                                   "figure with the ankle torque and power beside the able-bodied reference.")
    y.add_argument("log", type=Path, metavar="LOG.csv|LOG.mcap",
                   help="a session log (CSV) or session record (MCAP, by suffix); read a block at a time")
    y.add_argument("--out", type=_writable, metavar="REPORT.png", help="write the figure (needs matplotlib)")
    y.add_argument("--mass", type=_bounded(float, *MASS_RANGE_KG, "kg"), default=80.0, metavar="KG",
                   help="the wearer's body mass in kg (default 80): work and power per kg")
    y.add_argument("--audit", type=Path, metavar="AUDIT.log",
                   help="the audit log whose changes to mark (default: an audit.log beside LOG.csv or in "
                        "the folder above, the console's state directory)")
    y.add_argument("--work-target", type=_bounded(float, -0.1, 0.4, "J/kg"), metavar="J/KG",
                   help="the push-off work target to show, in J/kg (default: from the parameters in force "
                        "as the log was recorded, at the speed the controller estimated)")
    y.add_argument("--json", action="store_true", help="print one JSON object (with every stride)")

    _logs_parser(sub)

    b = sub.add_parser("run", help="run the controller on the device, from a TOML run configuration",
                       description="Run the controller as configured (bus, driver, loop rate, real-time "
                                   "settings, parameter file, logs): the tick in its own real-time process, "
                                   "one status line a second; Ctrl-C or SIGTERM switches the driver off "
                                   "and stops.  See docs/deployment.md and deploy/*.toml.")
    b.add_argument("--config", type=Path, required=True, metavar="FILE", help="the TOML run configuration")
    b.add_argument("--duration", type=_bounded(float, *DURATION_RANGE_S, "s"), metavar="S",
                   help="stop after S seconds (default: loop.duration_s, else until stopped)")
    b.add_argument("--check-config", action="store_true",
                   help="check the configuration, print it as JSON and exit")

    c = sub.add_parser("console", help="the service console, with no controller running",
                       description="The prosthetists' console without a running controller: check, edit, save "
                                   "and load the parameter file and the profiles (the same commands, PIN and "
                                   "audit log as on the running ankle).  On this terminal, or on --port.  "
                                   "'quit' ends it.")
    where = c.add_mutually_exclusive_group(required=True)
    where.add_argument("--config", type=Path, metavar="FILE",
                       help="the run configuration: its [params] file and [console] state_directory")
    where.add_argument("--state-dir", type=Path, metavar="DIR",
                       help="a state directory (ankle.params, pin, audit.log, profiles/), as ankle sim uses")
    c.add_argument("--port", metavar="PATH", help="a serial device or pseudo-terminal (default: this terminal)")
    c.add_argument("--baudrate", type=int, default=115200, metavar="BIT_S",
                   help="with --port on a UART (default 115200)")

    n = sub.add_parser("pin", help="set the prosthetist PIN of the console (at install)",
                       description="Store the prosthetist PIN (4 to 12 digits), salted and hashed with scrypt, "
                                   "in the file 'pin' of the console's state directory (mode 0600).  The PIN is "
                                   "asked for twice without echo; from a pipe, one line is read.")
    n.add_argument("action", choices=("set",), help="set (or replace) the PIN")
    where = n.add_mutually_exclusive_group(required=True)
    where.add_argument("--config", type=Path, metavar="FILE",
                       help="the run configuration: its [console] state_directory")
    where.add_argument("--state-dir", type=Path, metavar="DIR", help="the console's state directory")

    q = sub.add_parser("params", help="list every parameter with its unit, range and meaning")
    q.add_argument("group", nargs="?", choices=groups(), help="only this group")
    q.add_argument("--markdown", action="store_true", help="the generated parameter reference")
    q.add_argument("--json", action="store_true", help="as a JSON list")
    return p


REALTIME_MAX_S = 600.0


def _cmd_sim(args) -> int:
    from sim import evaluation, harness, report
    if args.console:
        args.realtime = True             # a console needs a wearer walking in real time
    if args.scenario == "fitting" and (args.serve or not args.console):
        # nothing else can tell that wearer to walk: it would stand for the whole run
        raise UsageError("scenario fitting waits for the console's `wearer walk`: use it with --console"
                         + (" (--serve has no console)" if args.serve else ""))
    if args.duration is None and not args.serve:      # --serve: until stopped
        args.duration = REALTIME_MAX_S if args.console else 30.0
    if not args.realtime:
        if args.spin_us:
            raise UsageError("--spin-us needs --realtime")
    if args.bus is not None and (args.realtime or args.serve):
        raise UsageError(f"--bus is the lock-step bus; {'--serve' if args.serve else '--realtime'} runs "
                         f"over socketcand on loopback")
    if args.live is not None:
        if not args.realtime or args.serve:
            raise UsageError("--live needs --realtime: a lock-step walk runs faster than a viewer can follow"
                             if not args.serve else "--live serves the controller's session: not with --serve")
        from controller.records.live import available, MISSING_MESSAGE
        if not available():
            raise UsageError(f"--live: {MISSING_MESSAGE.split(': ', 1)[1]}")
    if args.serve:
        return _cmd_serve(args)
    if args.realtime and args.duration > REALTIME_MAX_S:
        raise UsageError(f"--duration {args.duration:g} s: with --realtime at most {REALTIME_MAX_S:g} s")
    if args.realtime:
        from sim.faults import HOST_KINDS
        host_side = sorted({i.kind for i in args.inject if i.kind in HOST_KINDS})
        if host_side:
            raise UsageError(f"--inject {', '.join(host_side)}: host-side faults are simulated in lock-step "
                             f"only; in real time the host is real (stop it with SIGSTOP to see the "
                             f"driver's watchdog)")

    plot_format = _figure_format(args.plot, "--plot") if args.plot else None   # before the walk

    def per_stride(run, stride):
        if args.json:
            return
        if stride.walking:
            print(evaluation.stride_figures(run, stride).line(), flush=True)
        else:
            print(f"standing   {stride.t_heel_strike_s:8.2f} s .. {stride.t_end_s:8.2f} s", flush=True)

    params, boot_faults, param_problems = None, 0, ()
    if args.console and args.state_dir is not None and args.params is None:
        saved = Path(args.state_dir) / "ankle.params"        # what the console saved last time
        if saved.exists() or saved.with_name(saved.name + ".bak").exists():
            args.params = saved
    if args.params is not None:
        from controller.params import store as paramstore
        from controller.kernels.faults import fault_bit
        loaded = paramstore.load(args.params)
        params, param_problems = loaded.params, loaded.problems
        if loaded.corrupt:
            boot_faults = fault_bit("params")
        if not args.json:
            print(f"parameters: {loaded.source} ({args.params})", flush=True)
            for line in loaded.problems:
                print(f"  {line}", flush=True)
    if args.mass is None:                # the saved wearer, never the default over a saved mass
        args.mass = params["wearer.mass_kg"] if params is not None else DEFAULT_MASS_KG
    elif params is not None and params["wearer.mass_kg"] != args.mass and not args.json:
        print(f"  wearer.mass_kg {args.mass:g} kg from --mass for this session (the file has "
              f"{params['wearer.mass_kg']:g} kg and is not changed)", flush=True)
    if not args.json:
        print(f"walking the simulated wearer: scenario {args.scenario}, {args.speed:g} m/s, "
              f"{args.mass:g} kg, {args.duration:g} s, seed {args.seed}, drive {args.driver}", flush=True)
        for inj in args.inject:
            print(f"  injecting {inj.kind} at {inj.t_s:g} s", flush=True)
    timing = None
    adaptation = None
    if args.realtime:
        run, timing, adaptation = _realtime_run(args, params, boot_faults)
        if not args.json:
            for stride in run.strides:
                if stride.t_heel_strike_s + stride.stride_s <= run.sim_seconds:
                    per_stride(run, stride)
    else:
        # in lock-step nothing can switch the adaptation on during the walk (there is no console):
        # it runs when the parameter set starts with it on
        adapt = (params or ParamSet())["symmetry.adapt"]
        adaptation = _SimAdaptation(args, None) if adapt else None
        # an MCAP session record holds the raw CAN traffic too (its /can channel)
        can_frames = _FrameList() if args.log and args.log.path.suffix.lower() == ".mcap" else None
        try:
            run = harness.run(scenario=args.scenario, speed_m_s=args.speed, duration_s=args.duration,
                              mass_kg=args.mass, seed=args.seed, on_stride=per_stride, params=params,
                              faults=args.inject, boot_faults=boot_faults, asymmetry=_asymmetry(args),
                              sound_node=args.sound_node, bus=args.bus or "memory", driver=args.driver,
                              can_log=args.can_log.in_place() if args.can_log else None,
                              can_sink=can_frames,
                              adaptation=adaptation.component if adaptation is not None else None)
        finally:
            if adaptation is not None:
                adaptation.close()
    result = evaluation.summary(run, scenario=args.scenario, speed_m_s=args.speed, seed=args.seed)
    result["symmetry"] = _symmetry_summary(run)
    result["driver"] = args.driver
    if adaptation is not None:
        result["adaptation"] = adaptation.summary()
        if not args.realtime:            # lock-step: when the tick took each change
            result["adaptation"]["taken_s"] = [round(t, 3) for t, _ in run.retunes]
    if timing is not None:
        result["realtime"] = timing
    result["param_problems"] = list(param_problems)
    result["injected"] = [f"{i.kind}@{i.t_s:g}" for i in args.inject]
    if args.log and not args.realtime:           # in real time the logger streamed it already
        if args.log.path.suffix.lower() == ".mcap":
            _write_mcap(run, args, args.log.temp, can_frames)
        else:
            report.write_log(run, args.log.temp)
    if args.log:
        result["log"] = str(args.log)
    if args.can_log:
        result["can_log"] = str(args.can_log)
    if args.plot:
        report.plot(run, args.plot.temp, fmt=plot_format, scenario=args.scenario, speed_m_s=args.speed)
        result["plot"] = str(args.plot)
    if args.json:
        print(json_text(result))
    else:
        _print_summary(result)
    return 0


def _sim_metadata(args, params) -> dict:
    """The session file's metadata for a simulated session."""
    from controller.records.logger import session_metadata
    return session_metadata(params=params, drive={"type": args.driver, "model": "simulated"},
                            extra={"sim": {"scenario": args.scenario, "speed_m_s": repr(args.speed),
                                           "mass_kg": repr(args.mass), "seed": str(args.seed),
                                           "realtime": str(bool(args.realtime)),
                                           "injected": " ".join(f"{i.kind}@{i.t_s:g}" for i in args.inject)}})


def _strides_into(session, telemetry, mass_kg: float) -> None:
    """The run's per-stride symmetry records into the session file's /strides."""
    from dataclasses import asdict
    from controller.symmetry.strides import StrideAnalyzer
    for stride in StrideAnalyzer(mass_kg).feed(telemetry):
        session.stride(stride.t_heel_strike_s, asdict(stride))


class _FrameList(list):
    """The lock-step run's CAN frames, kept for the session record (``harness.run``'s ``can_sink``)."""

    def write(self, frames) -> None:
        self.extend(frames)


def _write_mcap(run, args, path: Path, can_frames=None) -> None:
    """``ankle sim --log F.mcap`` in lock-step: the run's telemetry, events, strides and CAN
    traffic (stamped with the simulated time; ``rx`` for the ids the tick reads), written at the
    reserved temporary name (put in place when the command succeeded)."""
    import os
    import can
    from controller.kernels._tick import TELEMETRY_COLUMNS
    from controller.records.mcaplog import McapSessionLog
    from hal.links import tick_rx_ids
    os.unlink(path)                      # reserved by OutputTarget; the record is created with O_EXCL
    rx_ids = frozenset(tick_rx_ids(run.codec))
    with McapSessionLog(path, TELEMETRY_COLUMNS, metadata=_sim_metadata(args, run.params)) as log:
        frames = can_frames or []
        f = 0
        for k in range(0, len(run.telemetry), 4096):
            log.write(run.telemetry[k:k + 4096], wait=True)     # a finished run: wait, drop nothing
            # the frames of these rows, so the writer's queue holds a few thousand at most
            t_end = run.telemetry[min(k + 4096, len(run.telemetry)) - 1, 0]
            while f < len(frames) and (frames[f][0] <= t_end or k + 4096 >= len(run.telemetry)):
                t_s, can_id, flags, data = frames[f]
                log.can_frame(can.Message(timestamp=t_s, arbitration_id=can_id, is_extended_id=bool(flags & 1),
                                          is_remote_frame=bool(flags & 2), dlc=len(data), data=data),
                              rx=can_id in rx_ids and not flags & 1, t_s=t_s)
                f += 1
        _strides_into(log, run.telemetry, run.params["wearer.mass_kg"])


def _asymmetry(args):
    """``--asymmetric``: the simulator's asymmetric wearer (sim/asymmetry.py), else None."""
    if not args.asymmetric:
        return None
    from sim.asymmetry import AsymmetryModel
    return AsymmetryModel()


class _SimAdaptation:
    """The symmetry adaptation of a simulated session, as ``ankle run`` runs it
    (:class:`controller.symmetry.adaptation.SymmetryAdaptation`), with its audit log in
    ``state`` (the console's), else ``--state-dir``, else a new temporary directory made when
    it is first switched on."""

    def __init__(self, args, state: Optional[Path]):
        from controller.console.audit import SharedAuditLog
        from controller.symmetry.adaptation import SymmetryAdaptation
        self.said: List[str] = []
        self.quiet = args.json
        self.audit = SharedAuditLog(state or args.state_dir)
        if self.audit.directory is None:
            self.audit = _LazyTempAudit()
        self.component = SymmetryAdaptation(self.audit.open, args.mass, say=self._say)

    def _say(self, line: str) -> None:
        self.said.append(line)
        if not self.quiet:
            print(line, flush=True)

    def close(self) -> None:
        self.component.close()
        self.audit.close()

    def summary(self) -> dict:
        """What it sent and what became of it, and where it is recorded."""
        directory = self.audit.directory
        return {"audit_log": str(directory / "audit.log") if directory is not None else None,
                "sent": [{"t_s": round(t, 3), "changes": changes, "outcome": outcome, "why": why}
                         for t, changes, why, outcome in self.component.sent],
                "note": self.component.note, "said": self.said}


class _LazyTempAudit:
    """A :class:`controller.console.audit.SharedAuditLog` in a temporary directory made when the
    log is first opened (a session that never adapts leaves nothing behind)."""

    def __init__(self):
        self.directory: Optional[Path] = None
        self._log = None

    def open(self):
        if self._log is None:
            import tempfile
            from controller.console.audit import SharedAuditLog
            self.directory = Path(tempfile.mkdtemp(prefix="ankle-sim-"))
            self._log = SharedAuditLog(self.directory)
        return self._log.open()

    def close(self) -> None:
        if self._log is not None:
            self._log.close()


def _symmetry_summary(run) -> dict:
    """Stance-time symmetry of the run: as the controller measured it, and the simulator's truth."""
    from controller.symmetry.strides import StrideAnalyzer
    strides = StrideAnalyzer(run.params["wearer.mass_kg"]).feed(run.telemetry)
    measured = [s.si_stance_pct for s in strides if math.isfinite(s.si_stance_pct)]
    true = [s.si_stance_pct for s in run.strides if s.walking and math.isfinite(getattr(s, "si_stance_pct", math.nan))]
    mean = (lambda v: round(sum(v) / len(v), 2) if v else None)
    return {"strides": len(measured), "si_stance_pct": mean(measured), "si_stance_true_pct": mean(true),
            "sound_side": sorted({s.sound_source for s in strides})}


def _live_spec(args):
    """``--live PORT``: the live view on loopback at the default rate (``[live]`` of ``ankle run``)."""
    if args.live is None:
        return None
    from controller.records.live import LiveSpec
    return LiveSpec(port=args.live)


def _realtime_run(args, params, boot_faults):
    """``ankle sim --realtime``: the three-process session, as a SimRun and its timing figures."""
    import os
    from controller.params.registry import ParamSet
    from controller.runtime.process import RealtimeSpec
    from sim import realtime
    cpus = sorted(os.sched_getaffinity(0))
    spin_ns = int(args.spin_us * 1000)
    # the tick on the last CPU, the simulated devices on the first, when there are two
    # the board's defaults (RealtimeSpec), pinned and with idle CPUs polling
    tick_rt = RealtimeSpec(cpus=(cpus[-1],) if len(cpus) > 1 else (), spin_ns=spin_ns, cpu_latency_us=0)
    device_rt = RealtimeSpec(priority=70, cpus=(cpus[0],) if len(cpus) > 1 else (), lock_memory=True,
                             timer_slack_ns=1, spin_ns=spin_ns)
    from hal.drives import load as load_drive_part
    # the simulated drive's actuator (ratio, torque limit) unless a parameter file was given
    params = (params or ParamSet(load_drive_part(args.driver, "sim_params"))).with_values(
        {"wearer.mass_kg": args.mass})
    sinks, csv_log = [], None
    if args.log:
        from controller.kernels._tick import TELEMETRY_COLUMNS
        from controller.records.logger import open_session_record
        # streamed: kept if the run fails; .mcap one session file, anything else CSV
        csv_log = open_session_record(args.log.in_place(), TELEMETRY_COLUMNS, metadata=_sim_metadata(args, params))
        sinks.append(csv_log.write)
    device = realtime.DeviceSpec(scenario=args.scenario, speed_m_s=args.speed, mass_kg=args.mass, seed=args.seed,
                                 faults=tuple(args.inject), realtime=device_rt, asymmetry=_asymmetry(args),
                                 sound_node=args.sound_node, driver=args.driver)
    console = _SimConsole(args) if args.console else None
    adaptation = None
    if console is not None or params["symmetry.adapt"]:       # else nothing can switch it on
        adaptation = _SimAdaptation(args, console.state if console is not None else None)
    if console is not None:
        sinks.extend(console.sinks)
        # the console and the adaptation share the log, opened before any telemetry arrives
        console.share(adaptation.audit.open(), adaptation.component)
    try:
        rt = realtime.run(duration_s=args.duration, params=params, device=device, realtime=tick_rt,
                          sinks=sinks, boot_faults=boot_faults,
                          can_log=str(args.can_log.in_place()) if args.can_log else None,
                          can_session=csv_log if hasattr(csv_log, "can_frame") else None,
                          on_start=console.start if console is not None else None,
                          adaptation=adaptation.component if adaptation is not None else None,
                          live=_live_spec(args), say=lambda line: print(line, file=sys.stderr, flush=True))
        if csv_log is not None and hasattr(csv_log, "stride"):
            _strides_into(csv_log, realtime.as_sim_run(rt, params).telemetry, args.mass)
    finally:
        if csv_log is not None:
            csv_log.close()
        if console is not None:
            console.close()
        if adaptation is not None:
            adaptation.close()
    timing = realtime.timing_figures(rt)
    if "live" in rt.device:
        timing["live"] = rt.device["live"]
    if args.can_log:
        timing["can_frames_logged"] = rt.device.get("can_frames_logged", 0)
    return realtime.as_sim_run(rt, params), timing, adaptation


class _SimConsole:
    """``ankle sim --realtime --console``: the console on a pseudo-terminal for the session; it
    announces the end of the session's duration 60 s and 10 s ahead, and when it has ended."""

    def __init__(self, args):
        import os
        import tempfile
        from controller.kernels._tick import TELEMETRY_COLUMNS
        from controller.console.session import GaitWatch
        from controller.records.logger import LogSwitch
        self.state = Path(args.state_dir) if args.state_dir else Path(tempfile.mkdtemp(prefix="ankle-console-"))
        self.state.mkdir(parents=True, exist_ok=True)
        self.pin = args.pin
        self.watch = GaitWatch(args.mass)
        self.logs = LogSwitch(self.state / "logs", TELEMETRY_COLUMNS)
        self.sinks = [self.watch, self.logs]
        self.master, slave = os.openpty()
        self.path = os.ttyname(slave)
        import tty
        tty.setraw(slave)                # bytes pass as typed: the console does its own line editing
        # not kept open here: then the master sees a hang-up until a terminal attaches, and the
        # console greets each terminal that does (the settings stay while the master is open)
        os.close(slave)
        self.duration_s = args.duration
        self.speed_m_s = args.speed          # what the console's `wearer walk` walks at
        self.scenario = args.scenario
        self.session = None
        self.audit = self.adaptation = None
        self._started = time.monotonic()
        self._closing = threading.Event()

    def share(self, audit, adaptation) -> None:
        """The audit log's (log, note) shared with ``adaptation``, which runs beside the console."""
        self.audit, self.adaptation = audit, adaptation

    def _pin_in_force(self) -> str:
        """Install a PIN only where there is none: never over one set with `ankle pin set`."""
        from controller.console.access import PinFile
        pins = PinFile(self.state / "pin")
        if pins.exists():
            problem = pins.problem
            words = ("PIN: the one installed with `ankle pin set`" if problem is None
                     else f"PIN: {problem}; read-only until then")
            return words + ("; --pin ignored, it does not replace an installed PIN" if self.pin else "")
        pins.set(self.pin or DEMO_PIN)
        return f"PIN {self.pin} (new state directory)" if self.pin else f"demo PIN {DEMO_PIN} (new state directory)"

    def start(self, runtime, devices) -> None:
        from controller.console.session import FdPort, open_console
        from sim.wearer_console import wearer_command
        try:                             # the wearer walks on whether or not the console opens
            pin = self._pin_in_force()
            self.session = open_console(runtime, self.watch, FdPort(self.master), self.state,
                                        self.state / "ankle.params", logs=self.logs,
                                        banner="ankle console (simulated wearer: see 'wearer')", audit=self.audit,
                                        adaptation=self.adaptation,
                                        extra=wearer_command(devices, self.speed_m_s, self.scenario))
        except OSError as e:
            print(f"console: cannot start it in {self.state} ({e.strerror or e}); walking without a console",
                  flush=True)
            return
        print(f"console on {self.path} ({pin}; files in {self.state}); attach with "
              f"`python -m serial.tools.miniterm {self.path}`", flush=True)
        for line in self.session.banner.splitlines()[1:]:      # a damaged audit log, read-only and why
            print(f"  console: {line}", flush=True)
        self._started = time.monotonic()
        threading.Thread(target=self._warn, name="console-time", daemon=True).start()

    def _warn(self) -> None:
        """Announce the end of the session's duration ahead of it (the wearer stops then)."""
        from controller.console.session import time_warnings
        for at_s, text in time_warnings(self.duration_s, "the simulated session"):
            if self._closing.wait(max(0.0, self._started + at_s - time.monotonic())):
                return
            self.session.announce(text)

    def close(self) -> None:
        import os
        self._closing.set()
        if self.session is not None:
            ran_s = time.monotonic() - self._started
            early = "" if ran_s >= self.duration_s - 1.0 else " (early: see the simulator's output)"
            self.session.announce(f"the simulated session has ended after {ran_s:.0f} s{early}; "
                                  f"the console closes")
            self.session.stop()          # shows what was announced, then ends
            self.session.port.drain(1.0)     # closing the master drops what the terminal has not read
        self.logs.stop()
        os.close(self.master)


def _cmd_serve(args) -> int:
    """``ankle sim --serve``: the simulated devices alone, until Ctrl-C or --duration."""
    import signal
    import threading
    from sim import realtime
    from sim.faults import HOST_KINDS
    if any(i.kind in HOST_KINDS for i in args.inject):
        raise UsageError("--inject with --serve takes device-side faults only")
    if args.mass is None:
        args.mass = DEFAULT_MASS_KG
    device = realtime.DeviceSpec(scenario=args.scenario, speed_m_s=args.speed, mass_kg=args.mass, seed=args.seed,
                                 faults=tuple(args.inject), port=args.port,
                                 duration_s=math.inf if args.duration is None else args.duration,
                                 asymmetry=_asymmetry(args), sound_node=args.sound_node, say_late=True,
                                 driver=args.driver)
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    devices = realtime.DeviceProcess(device)
    try:
        port = devices.start()
        type_hint = "" if args.driver == "ak_mit" else f' with [driver] type = "{args.driver}"'
        print(f"serving the simulated ankle on socketcand 127.0.0.1:{port}, channel can0: scenario "
              f"{args.scenario}, {args.speed:g} m/s, {args.mass:g} kg, "
              f"{'until stopped' if args.duration is None else f'for {args.duration:g} s'}; "
              f"drive {args.driver}; connect with `ankle run --config deploy/sim.toml`{type_hint}; "
              f"Ctrl-C stops", flush=True)
        for w in devices.warnings:
            print(w, flush=True)
        if not stop.wait(args.duration):
            print(f"the walk is over after {args.duration:g} s: stopping the simulated ankle (a connected "
                  f"`ankle run` reports the bus lost)", flush=True)
        record = devices.finish()
        print(f"stopped: {record['frames_in']} frames in, {record['frames_out']} frames out, driver watchdog "
              f"{'tripped' if record['watchdog_tripped'] else 'never tripped'}", flush=True)
    finally:
        devices.kill()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


def _cmd_run(args) -> int:
    from controller.board import run_board
    from controller.config import load_config
    cfg = load_config(args.config)
    if args.check_config:
        print(json_text(cfg.to_dict(), indent=2))
        return 0
    result = run_board(cfg, duration_s=args.duration, say=lambda line: print(line, flush=True))
    return 0 if not result.get("shutdown_error") else 1


def _print_summary(r) -> None:
    def f(x, fmt):                       # None, NaN, Inf: no figure
        return "n/a" if x is None or (isinstance(x, float) and not math.isfinite(x)) else format(x, fmt)

    print()
    print(f"summary: {r['strides']} strides ({r['strides_walking']} walking, {r['strides_pushoff']} with push-off) "
          f"in {r['sim_seconds']:g} s "
          f"simulated, {r['wall_seconds']:g} s wall ({f(r['realtime_factor'], '.1f')}x real time)")
    print(f"  phase error        {f(r['phase_rmse_pct'], '.2f')} % of stride (RMSE)")
    print(f"  heel strikes       median latency {f(r['hs_latency_ms_median'], '.1f')} ms, "
          f"{r['missed_heel_strikes']} missed, {r['false_heel_strikes']} false")
    print(f"  toe-offs           median latency {f(r['to_latency_ms_median'], '.1f')} ms, "
          f"{r['missed_toe_offs']} missed, {r['false_toe_offs']} false")
    if r["standing_episodes"]:
        print(f"  standing           {r['standing_episodes']} episode(s), recognised within "
              f"{r['standing_detect_s_max']:.2f} s, push-off phase while standing "
              f"{r['pushoff_phase_while_standing_s']:.2f} s, walking again "
              f"{f(r['resume_after_heel_strike_s_max'], '.3f')} s after the first heel strike")
    print(f"  peak torque        {f(r['peak_torque_Nm'], '.1f')} N*m (limit {r['torque_limit_Nm']:g} N*m, "
          f"{r['torque_limit_violations']} violations)")
    print(f"  net stance work    {f(r['net_work_J_per_kg'], '+.3f')} J/kg per stride")
    print(f"  peak ankle power   {f(r['peak_power_W_per_kg'], '.2f')} W/kg")
    print(f"  speed estimate     {f(r['speed_estimate_m_s'], '.2f')} m/s; work target "
          f"{f(r['work_target_J_kg'], '+.3f')} J/kg")
    sym = r.get("symmetry")
    if sym and sym["strides"]:
        print(f"  symmetry           stance-time SI {f(sym['si_stance_pct'], '+.1f')} % measured over "
              f"{sym['strides']} strides (sound side from the {' and '.join(sym['sound_side'])}); "
              f"true {f(sym['si_stance_true_pct'], '+.1f')} %")
    print(f"  faults             {', '.join(r['faults']) or 'none'}; final mode {r['final_mode']}")
    print(f"  warnings           {', '.join(r['warnings']) or 'none'}; motor winding (model) "
          f"{f(r['winding_temp_max_C'], '.1f')} degC max")
    if "realtime" in r:
        t = r["realtime"]
        lt = t["lateness"]
        print(f"  real time          {t['rate_achieved_Hz']:.3f} Hz ({t['rate_error_pct']:+.4f} %), lateness p50 "
              f"{lt.get('p50_us', float('nan')):.1f} / p99 {lt.get('p99_us', float('nan')):.1f} / max "
              f"{lt.get('max_us', float('nan')):.1f} us, {t['missed_gt_500us']} missed > 500 us")
        print(f"  tick work          p99 {t['tick_work'].get('p99_us', float('nan')):.1f} us (read "
              f"{t['read'].get('p99_us', float('nan')):.1f}, update {t['update'].get('p99_us', float('nan')):.1f}, "
              f"write {t['write'].get('p99_us', float('nan')):.1f}), I/O: {t['io']}")
        for w in t["warnings"] + t["device_warnings"]:
            print(f"  {w}")
    adapted = r.get("adaptation")
    if adapted is not None:
        taken = [s for s in adapted["sent"] if s["outcome"] == "accepted"]
        work = [s["changes"]["pushoff.work_J_kg"] for s in taken if "pushoff.work_J_kg" in s["changes"]]
        print(f"  adaptation         {len(taken)} change(s) taken"
              + (f", push-off work target {work[0]:.3f} .. {work[-1]:.3f} J/kg" if work else "")
              + (f"; recorded in {adapted['audit_log']}" if adapted["audit_log"] else "")
              + f"; {adapted['note']}")
    for key in ("log", "can_log", "plot"):
        if key in r:
            print(f"  {key:<18} {r[key]}")


def _cmd_replay(args) -> int:
    from controller.records.replay import replay_file
    result = replay_file(args.input, args.out.temp, mass_kg=args.mass)
    result["output"] = str(args.out)
    if args.json:
        print(json_text(result))
    else:
        rate = result["sample_rate_Hz"]                  # None for a single sample
        print(f"replayed {result['samples']} samples ({result['duration_s']:g} s at about "
              f"{'n/a' if rate is None else format(rate, 'g')} Hz, {result['mass_kg']:g} kg): {result['heel_strikes']} heel "
              f"strikes, {result['toe_offs']} toe-offs, walking {100 * result['walking_fraction']:.1f} % "
              f"of the time -> {result['output']}")
        print(_replay_faults_line(result))
        for line in result["dropped"]:
            print(f"note: {line}")
    return 0


def _replay_faults_line(result) -> str:
    """The replay's sensor faults in one line, by the catalogue's names, and how much of the
    time the estimator had each sensor."""
    faults = result["faults"]
    if not faults:
        return "sensor faults: none"
    parts = [f"{name} from t = {f['first_s']:g} s, latched {f['latched_s']:g} s in all"
             + (f" ({f['episodes']} times)" if f["episodes"] > 1 else "")
             for name, f in faults.items()]
    return (f"sensor faults: {'; '.join(parts)}; the estimator had the IMU "
            f"{100 * result['imu_used_fraction']:.1f} % and the load {100 * result['load_used_fraction']:.1f} % "
            f"of the time")


def _cmd_report(args) -> int:
    from controller.records.session_report import report, summary_text
    fmt = _figure_format(args.out, "--out") if args.out is not None else None   # before the analysis
    if args.audit is not None and not args.audit.is_file():
        raise UsageError(f"--audit {args.audit}: {'no such file' if not args.audit.exists() else 'not a file'}")
    result = report(args.log, args.mass, args.out.temp if args.out is not None else None, fmt=fmt,
                    audit=args.audit, work_target_J_kg=args.work_target)
    if args.json:
        result.pop("_strides")
        result.pop("_curves", None)
        if "plot" in result:
            result["plot"] = str(args.out)
        print(json_text(result))
    else:
        print(summary_text(result, str(args.log)))
        if args.out is not None:
            print(f"figure: {args.out}")
    return 0


def _log_directory(args, given: Optional[Path] = None) -> Optional[Path]:
    """The log directory: ``given``, else ``--config``'s ``[log] directory``, else None."""
    if given is not None:
        return given
    if getattr(args, "config", None) is None:
        return None
    from controller.config import load_config
    directory = load_config(args.config).log.directory
    if directory is None:
        raise UsageError(f"{args.config}: [log] directory is empty: no log directory is configured")
    return Path(directory)


def _session_path(args, session: Path) -> Path:
    """A session named on the command line: the path, else that name in the log directory."""
    if session.exists() or getattr(args, "config", None) is None:
        return session
    directory = _log_directory(args)
    return directory / session if directory is not None and (directory / session).exists() else session


def _cmd_logs(args) -> int:
    """``ankle logs list|export|copy``."""
    from controller.records import logs_cli
    if args.logs_command == "list":
        directory = _log_directory(args, args.directory)
        if directory is None:
            raise UsageError("which log directory? give DIR or --config FILE (its [log] directory)")
        sessions = logs_cli.list_sessions(directory)
        if args.json:
            print(json_text({"directory": str(directory), "sessions": sessions}))
        else:
            print(f"{directory}: {len(sessions)} session(s)")
            for info in sessions:
                print(logs_cli.session_line(info))
        return 0
    if args.logs_command == "export":
        session = _session_path(args, args.session)
        if args.csv is not None:
            result = logs_cli.export_csv(session, args.csv.temp)
            result["output"] = str(args.csv)
            line = f"exported {result['rows']} rows of {session} ({len(result['columns'])} columns) -> {args.csv}"
        else:
            result = logs_cli.export_can(session, args.can.temp, out_name=args.can.path)
            result["output"] = str(args.can)
            line = f"exported {result['frames']} CAN frames of {session} -> {args.can}"
        if args.json:
            print(json_text(result))
        else:
            print(line)
            for note in result.get("dropped", ()):
                print(f"note: {note}")
        return 0
    # copy
    sessions = [_session_path(args, s) for s in args.sessions]
    if args.all:
        if sessions:
            raise UsageError("--all copies every session: name none, or leave out --all")
        directory = _log_directory(args, args.source_dir)
        if directory is None:
            raise UsageError("--all needs the log directory: --config FILE or --from DIR")
        sessions = logs_cli.sessions_in(directory)
        if not sessions:
            raise UsageError(f"{directory}: no sessions to copy")
    elif not sessions:
        raise UsageError("name the sessions to copy, or --all")
    done = logs_cli.copy_sessions(sessions, args.to, say=(lambda line: None) if args.json else print)
    if args.json:
        print(json_text({"to": str(args.to), "copies": done}))
    else:
        copied = sum(1 for d in done if d["copied"])
        print(f"{copied} session(s) copied to {args.to}, {len(done) - copied} already there; every copy "
              f"checked against its source (size, sha256)")
    return 0


def _cmd_params(args) -> int:
    chosen = [p for p in REGISTRY if args.group in (None, p.group)]
    if args.markdown:
        sys.stdout.write(markdown_reference())
    elif args.json:
        print(json_text([{"name": p.name, "unit": p.unit, "default": p.default, "min": p.min, "max": p.max,
                           "step": p.step, "group": p.group, "live": p.live, "description": p.description}
                          for p in chosen]))
    else:
        width = max(len(p.name) for p in chosen)
        for p in chosen:
            print(f"{p.name:<{width}}  {p.default:>8g} {p.unit:<12} [{p.min:g} .. {p.max:g}]"
                  f"{'' if p.live else '  (not while walking)'}  {p.description}")
    return 0


def _console_state(args):
    """(state directory, parameter file) from ``--config`` or ``--state-dir``."""
    if args.config is None:
        return args.state_dir, args.state_dir / "ankle.params"
    from controller.config import load_config
    cfg = load_config(args.config)
    if cfg.console.port is None:
        raise UsageError(f"{args.config}: no [console] port is configured, so there is no console state")
    return cfg.console.state_directory, cfg.params.file


def _cmd_console(args) -> int:
    """``ankle console``: the service console on this terminal or ``--port``."""
    import os
    import termios
    import tty
    from controller.console.session import FdPort, service_console
    state, store = _console_state(args)
    if args.port is not None:
        import serial
        try:
            port = serial.serial_for_url(args.port, baudrate=args.baudrate, timeout=0.05)
        except (serial.SerialException, ValueError) as e:
            raise UsageError(f"--port {args.port}: cannot open it ({e})") from None
        try:
            service_console(port, state, store).serve()
        finally:
            port.close()
        return 0
    if not sys.stdin.isatty():
        raise UsageError("no terminal: run it in a terminal, or give --port PATH")
    fd = os.open(os.ttyname(sys.stdin.fileno()), os.O_RDWR | os.O_NOCTTY)
    saved = termios.tcgetattr(fd)
    try:
        tty.setraw(fd)                   # the console does its own line editing and echo
        service_console(FdPort(fd), state, store).serve()
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
        os.close(fd)
    return 0


def _cmd_pin(args) -> int:
    """``ankle pin set``: store the prosthetist PIN where the console will look for it."""
    import getpass
    from controller.console.access import PinError, PinFile, check_pin
    state, _ = _console_state(args)
    if sys.stdin.isatty():
        pin = getpass.getpass("new prosthetist PIN (4-12 digits): ")
        if getpass.getpass("the same PIN again: ") != pin:
            raise UsageError("the two PINs differ; nothing was changed")
    else:
        pin = sys.stdin.readline().rstrip("\r\n")
    try:
        check_pin(pin)
        state.mkdir(parents=True, exist_ok=True)
        PinFile(state / "pin").set(pin)
    except PinError as e:
        raise UsageError(f"{e}; nothing was changed") from None
    except OSError as e:
        raise UsageError(f"cannot write {state / 'pin'}: {e.strerror or e}; nothing was changed") from None
    print(f"PIN set in {state / 'pin'} (mode 0600); a console already running reads it at the next login")
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point of the ``ankle`` console script."""
    parser = _parser()
    args = parser.parse_args(argv)
    handlers = {"sim": _cmd_sim, "replay": _cmd_replay, "params": _cmd_params, "run": _cmd_run, "pin": _cmd_pin, "report": _cmd_report,
                "console": _cmd_console, "logs": _cmd_logs}
    from controller.records.csvlog import CsvError
    from controller.params.store import ParamFileError
    from hal.errors import HalError

    def error(message) -> int:
        print(f"ankle {args.command}: error: {message}", file=sys.stderr)
        return 2

    # Every output file is reserved (a temporary file beside it) before any work, and put in place
    # only when the whole command succeeded: a failure leaves no output file, and no old one changed.
    outputs = [v for v in vars(args).values() if isinstance(v, OutputTarget)]
    code = 2
    try:
        for target in outputs:
            try:
                target.reserve()
            except OSError as e:
                # e names the temporary file; the folder is what the user can act on
                return error(f"{target}: cannot create it in {target.directory}: {(e.strerror or str(e)).lower()}")
            except ValueError as e:
                return error(e)
        try:
            code = handlers[args.command](args)
        except UsageError as e:
            return error(e)
        except (CsvError, ParamError, ParamFileError, InputFileError, HalError, RuntimeError) as e:
            return error(e)
        except BrokenPipeError:
            code = 0                     # whoever read standard output went away; the work is done
        except OSError as e:             # a file the command reads or writes, named by the OS
            return error(describe_os_error(e))
        except KeyboardInterrupt:
            print(f"ankle {args.command}: interrupted", file=sys.stderr)
            return 130
        if code == 0:
            try:
                for target in outputs:
                    target.commit()
            except OSError as e:
                return error(f"cannot write {describe_os_error(e)}")
        return code
    finally:
        for target in outputs:           # what was not committed (a failure, an interrupt) goes
            target.discard()


if __name__ == "__main__":
    sys.exit(main())
