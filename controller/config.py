"""The board's run configuration: ``ankle run --config FILE``.

The file is TOML, one table per part of the system (see ``deploy/ankle.toml`` for a complete,
commented example)::

    [bus]          CAN bus (hal.bus.BusConfig)          required: interface, channel
    [driver]       the ankle's motor drive (type: hal.drives)   required: id
    [loop]         run time
    [realtime]     SCHED_FIFO priority, CPU pinning, mlockall, timer slack, GC
    [params]       the saved parameter file
    [console]      the prosthetists' serial console
    [log]          the session record, its rotation and the log directory's budget
    [live]         the live view in Foxglove (off by default)

Every key is checked for type and range when the file is loaded, and unknown sections and keys
are refused (a typo must not silently fall back to a default).  Every key it accepts changes what
``ankle run`` runs with (``tests/test_config_consumed.py``); a key that would not is not a key.  The
loop rate is not one: it is the parameter ``loop.rate_Hz`` (the ``[params]`` file), the one place
it is declared, and an old file's ``[loop] rate_Hz`` is refused with a line saying so.  Errors are
:class:`hal.errors.ConfigError`:

- about a value, the message starts with the dotted field, then what was given and what is
  allowed: ``realtime.priority: must be an integer in 1..99 (SCHED_FIFO), or 0 to leave the
  scheduling alone, got 120``;
- about the file itself (missing, unreadable, not UTF-8, TOML syntax), the message starts with
  the file's path; a syntax error carries tomllib's line and column.

Loading touches nothing but the config file: the parameter file, the console port and the log
directory are only named here (relative paths resolved against the config file's directory);
the caller opens them and reports what it finds.  This is set-up code; nothing here runs in the
tick.
"""
from __future__ import annotations

import difflib
import json
import math
import os
import re
import sys
from dataclasses import MISSING, dataclass, field, fields, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Dict, Mapping, Optional, Tuple, Union

from controller.cliio import MAX_CONFIG_BYTES, InputFileError, InputFileMissing, read_input
from controller.runtime.process import RealtimeSpec
from hal._sensor_frames import IMU_ID, LOAD_ID, SOUND_ID, STATUS_ID
from hal.ak import DRIVER_ID_MAX, DRIVER_ID_MIN, RANGE_KEYS, mit_range
from hal.bus import BusConfig
from hal.drives import DEFAULT_DRIVE, check_name as _check_drive_name
from hal.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python < 3.11 only
    import tomli as tomllib

__all__ = ["RunConfig", "DriverConfig", "LoopConfig", "RealtimeConfig",
           "ParamsConfig", "ConsoleConfig", "LogConfig", "LiveConfig", "BAUDRATES", "LOG_CAN_FORMATS", "LOG_FORMATS",
           "load_config", "parse_config"]

PathLike = Union[str, "os.PathLike[str]"]

#: Baud rates the console accepts: the standard termios rates from 9600 to 921600.
BAUDRATES = (9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600)
#: ``log.can`` values: "" (no CAN log), or a python-can log format.
LOG_CAN_FORMATS = ("", "blf", "asc")
#: ``log.format`` values: the session record's file format.
LOG_FORMATS = ("mcap", "csv")

_SENSOR_IDS = (IMU_ID, LOAD_ID, STATUS_ID, SOUND_ID)
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
#: The tick's real-time settings when [realtime] leaves a key out: RealtimeSpec's defaults, the one
#: place they are declared.
_RT = RealtimeSpec()

#: Keys an older configuration had, and where what they set lives now: refused with that line
#: rather than "unknown key", so an old file says how to move on.
_RETIRED = {
    ("loop", "rate_Hz"): "no longer set in the run configuration: the loop rate is the parameter "
                         "loop.rate_Hz in the [params] file (ankle console --config FILE: set loop.rate_Hz, "
                         "then save); remove this key",
}


# --- value checkers: (dotted name, raw TOML value, config directory) -> checked value -----------

Check = Callable[[str, Any, Path], Any]


def _show(value: Any) -> str:
    """The given value for an error message, shortened: a config error is one line."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _key(key: str) -> str:
    """A key as TOML would write it: bare if it can be, else quoted (so a message stays one line)."""
    return key if _BARE_KEY.fullmatch(key) else json.dumps(key)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _integer(lo: int, hi: int, what: str = "", also_zero: str = "") -> Check:
    """An integer in lo..hi; ``also_zero`` (its meaning) additionally allows 0."""
    allowed = f"an integer in {lo}..{hi}{what}" + (f", or 0 {also_zero}" if also_zero else "")

    def check(name: str, value: Any, base: Path) -> int:
        if not _is_int(value) or not (lo <= value <= hi or (also_zero and value == 0)):
            raise ConfigError(f"{name}: must be {allowed}, got {_show(value)}")
        return value
    return check


def _number(lo: float, hi: float, unit: str) -> Check:
    """A finite number in lo..hi [unit]; TOML integers are accepted and become floats."""
    def check(name: str, value: Any, base: Path) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or (isinstance(value, float) and not math.isfinite(value)) or not lo <= value <= hi:
            raise ConfigError(f"{name}: must be a number in {lo:g}..{hi:g} {unit}, got {_show(value)}")
        return float(value)
    return check


def _positive_duration(name: str, value: Any, base: Path) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or (isinstance(value, float) and not math.isfinite(value)) or not value > 0:
        raise ConfigError(f"{name}: must be a number of seconds > 0 (leave it out to run until "
                          f"stopped), got {_show(value)}")
    return float(value)


def _boolean(name: str, value: Any, base: Path) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{name}: must be true or false, got {_show(value)}")
    return value


def _choice(options: Tuple[Any, ...]) -> Check:
    def check(name: str, value: Any, base: Path) -> Any:
        if type(value) is not type(options[0]) or value not in options:
            raise ConfigError(f"{name}: must be one of {', '.join(repr(o) for o in options)}, "
                              f"got {_show(value)}")
        return value
    return check


def _string(name: str, value: Any, base: Path) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{name}: must be a string, got {_show(value)}")
    if "\x00" in value:
        raise ConfigError(f"{name}: must not contain a NUL character, got {_show(value)}")
    return value


def _path(name: str, value: Any, base: Path) -> Optional[Path]:
    """A file or directory path; "" = none; relative paths are taken from the config's directory.

    Purely lexical: nothing is opened, created or required to exist.
    """
    value = _string(name, value, base)
    if not value.strip():
        if value:
            raise ConfigError(f"{name}: must be a path, or \"\" for none, got {_show(value)}")
        return None
    return Path(os.path.normpath(os.path.join(base, value)))


def _serial_port(name: str, value: Any, base: Path) -> Optional[str]:
    """An absolute device path (/dev/ttyGS0), a pyserial URL (socket://host:port), or "" = none."""
    value = _string(name, value, base)
    if value == "":
        return None
    if not (value.startswith("/") or "://" in value) or value != value.strip():
        raise ConfigError(f"{name}: must be the absolute path of a serial device (e.g. /dev/ttyGS0 "
                          f"or /dev/ttyAMA0), a pyserial URL, or \"\" for no console, "
                          f"got {_show(value)}")
    return value


def _cpus(name: str, value: Any, base: Path) -> Tuple[int, ...]:
    """CPU numbers to pin the loop to; each must exist on this machine (os.cpu_count())."""
    if not isinstance(value, list) or not all(_is_int(c) and c >= 0 for c in value):
        raise ConfigError(f"{name}: must be a list of CPU numbers (integers >= 0), or [] not to "
                          f"pin, got {_show(value)}")
    count = os.cpu_count()
    seen = set()
    for cpu in value:
        if count is not None and cpu >= count:
            raise ConfigError(f"{name}: CPU {cpu} does not exist; this machine has {count} "
                              f"(0..{count - 1}), got {_show(value)}")
        if cpu in seen:
            raise ConfigError(f"{name}: CPU {cpu} is listed twice, got {_show(value)}")
        seen.add(cpu)
    return tuple(sorted(value))


def _drive_type(name: str, value: Any, base: Path) -> str:
    """A drive of the table (hal.drives.DRIVES); unknown: one line listing the known ones."""
    return _check_drive_name(value, name)


def _model(name: str, value: Any, base: Path) -> str:
    """A model name; which names the drive has is checked with its type (:func:`_check_driver`)."""
    if not isinstance(value, str):
        raise ConfigError(f"{name}: must be a model name (a string), got {_show(value)}")
    return value


def _driver_options(name: str, value: Any, base: Path) -> Mapping[str, Any]:
    """The drive's own options (a table of plain values); each is checked by its set-up class."""
    if not isinstance(value, dict):
        raise ConfigError(f"{name}: must be a table of the drive's options, got {_show(value)}")
    for key, v in value.items():
        if not isinstance(v, (str, int, float, bool)) or (isinstance(v, float) and not math.isfinite(v)):
            raise ConfigError(f"{name}.{_key(key)}: must be a string, a finite number or a boolean, "
                              f"got {_show(v)}")
    return MappingProxyType(dict(value))


def _range_overrides(name: str, value: Any, base: Path) -> Mapping[str, float]:
    """Per-motor MIT range corrections; keys and values are checked with the model in
    :func:`_check_driver` (the check needs the model's row)."""
    if not isinstance(value, dict):
        raise ConfigError(f"{name}: must be a table of range fields (e.g. t_max = 25.0), "
                          f"got {_show(value)}")
    for key, v in value.items():
        if key not in RANGE_KEYS:
            raise _unknown(f"{name}.{_key(key)}", "key", RANGE_KEYS, key=key)
        if isinstance(v, bool) or not isinstance(v, (int, float)) \
                or (isinstance(v, int) and abs(v) > 1e15) or not math.isfinite(v):
            raise ConfigError(f"{name}.{_key(key)}: must be a finite number, got {_show(v)}")
    return MappingProxyType({key: float(v) for key, v in value.items()})


def _checked(check: Check, **kw: Any) -> Any:
    """A dataclass field whose TOML value is checked by ``check``."""
    return field(metadata={"check": check}, **kw)


# --- the sections ------------------------------------------------------------------------------

@dataclass(frozen=True)
class DriverConfig:
    """``[driver]``: the ankle's motor drive.

    type: the drive, a name of ``hal.drives.DRIVES`` ("ak_mit": the AK series in MIT mode,
    ``hal.ak.AKDriver``, the default; "odrive": ODrive, CAN Simple; "cia402": a CiA 402 drive
    over CANopen).
    model: a row of the drive's model table (``hal.drives`` part ``models``; AK80-9 by default,
    so any other type names its model).
    id: the driver's CAN node id, ``hal.ak.DRIVER_ID_MIN..DRIVER_ID_MAX`` (1..127; commands go out on
    this standard id).  Required.
    reply_id: CAN id the driver replies on, 0..0x7FF (0x000 by default); not the driver's own
    id and not one of the sensor nodes' frame ids (0x110..0x113).
    timeout_s: how long a set-up request (enter motor mode, zero, exit) waits for its reply [s].
    range_overrides: per-motor corrections of the model's MIT ranges (firmware-dependent), keys of
    ``hal.ak.RANGE_KEYS``; checked with ``hal.ak.mit_range``.  Empty: the model's row as is.
    reply_id and range_overrides are the AK drive's; other drives refuse them.
    options: ``[driver.options]``, the set-up options of a drive other than ak_mit (see
    docs/drivers.md), checked by its set-up class.
    """

    id: int = _checked(_integer(DRIVER_ID_MIN, DRIVER_ID_MAX, " (the driver's CAN node id)"))
    type: str = _checked(_drive_type, default=DEFAULT_DRIVE)
    model: str = _checked(_model, default="AK80-9")
    reply_id: int = _checked(_integer(0, 0x7FF, " (a standard CAN id, 0x000..0x7FF)"), default=0)
    timeout_s: float = _checked(_number(0.01, 5.0, "s"), default=0.5)
    range_overrides: Mapping[str, float] = _checked(
        _range_overrides, default_factory=lambda: MappingProxyType({}), hash=False)
    options: Mapping[str, Any] = _checked(
        _driver_options, default_factory=lambda: MappingProxyType({}), hash=False)

    def mit_range(self) -> Dict[str, float]:
        """The checked MIT range of this motor: the model's row with ``range_overrides`` applied."""
        return mit_range(self.model, self.range_overrides)


@dataclass(frozen=True)
class LoopConfig:
    """``[loop]``: the control loop.

    duration_s: stop after this long [s]; ``None`` (key left out) runs until stopped.

    The rate is not here: it is the parameter ``loop.rate_Hz`` (set when the controller starts),
    read from the ``[params]`` file like every other parameter.  The sensor node's frame ids and
    periods are fixed by ``hal/sensor_node.dbc`` and are not configured either.
    """

    duration_s: Optional[float] = _checked(_positive_duration, default=None)


@dataclass(frozen=True)
class RealtimeConfig:
    """``[realtime]``: what the loop asks of the operating system.

    Each setting that the system refuses is reported as a warning and the program runs without
    it (``warning: realtime.<field>: <what was refused> (<errno text>); running without it``).

    priority: SCHED_FIFO priority 1..99 for the loop thread; 0 leaves the scheduling alone.
    cpus: CPU numbers to pin the loop to (e.g. an isolated core); () does not pin.
    lock_memory: mlockall(MCL_CURRENT | MCL_FUTURE), so the loop never waits for a page fault.
    timer_slack_ns: the loop thread's timer slack [ns] (PR_SET_TIMERSLACK); 0 leaves the default
    (50 us on Linux).  The kernel gives SCHED_FIFO threads no slack anyway, so this matters when
    priority is 0 or SCHED_FIFO was refused.
    freeze_gc: once set-up is done, collect, freeze what exists and switch the cyclic garbage
    collector off, so no collection starts inside the loop.
    spin_ns: sleep until this long before each deadline, then poll the clock up to it [ns]:
    buys back a kernel's wake-up latency for that much CPU per period; 0 (the default, right on
    a PREEMPT_RT kernel) only sleeps.  Must be shorter than one period.
    cpu_latency_us: while running, hold /dev/cpu_dma_latency at this (PM QoS): no CPU enters an
    idle state slower to leave; 0 keeps idle CPUs polling (what cyclictest does); -1 leaves it.

    A key left out takes :class:`controller.runtime.process.RealtimeSpec`'s default (priority 80, no
    pinning, mlockall, 1 ns slack, GC frozen, no spin, cpu_dma_latency left).  ``spin_ns`` is
    checked against the period when the parameter set (and so ``loop.rate_Hz``) is known.
    """

    priority: int = _checked(_integer(1, 99, " (SCHED_FIFO)", "to leave the scheduling alone"),
                             default=_RT.priority)
    cpus: Tuple[int, ...] = _checked(_cpus, default=_RT.cpus)
    lock_memory: bool = _checked(_boolean, default=_RT.lock_memory)
    timer_slack_ns: int = _checked(_integer(1, 1_000_000_000, " ns", "to leave the default"),
                                   default=_RT.timer_slack_ns)
    freeze_gc: bool = _checked(_boolean, default=_RT.freeze_gc)
    spin_ns: int = _checked(_integer(1, 9_000_000, " ns", "to sleep only"), default=_RT.spin_ns)
    cpu_latency_us: int = _checked(_integer(-1, 100_000, " us (-1 leaves it)"), default=_RT.cpu_latency_us)


@dataclass(frozen=True)
class ParamsConfig:
    """``[params]``: the saved parameter file (``controller/params/store.py``, two copies).

    file: its path, absolute after loading (relative paths are taken from the config file's
    directory); it need not exist yet, then the defaults are used (the caller reports it).
    ``None`` ("" in the file): no parameter file, the registry's defaults, nothing can be saved.
    """

    file: Optional[Path] = _checked(_path, default=None)


@dataclass(frozen=True)
class ConsoleConfig:
    """``[console]``: the prosthetists' serial console.

    port: the serial device (``/dev/ttyGS0`` for a USB gadget, ``/dev/ttyAMA0`` for a UART), or a
    pyserial URL; ``None`` ("" in the file): no console.  A console needs a ``[params] file``
    (where ``save`` writes).
    baudrate: [bit/s], one of :data:`BAUDRATES` (ignored by a USB gadget port).
    state_directory: where the PIN (``pin``, set with ``ankle pin set``), the audit log
    (``audit.log``) and the profiles (``profiles/``) live; absolute after loading.  Left out:
    the directory of the ``[params] file``.  The symmetry adaptation records its changes in that
    audit log with or without a console port (``controller.board.state_directory``).
    """

    port: Optional[str] = _checked(_serial_port, default=None)
    baudrate: int = _checked(_choice(BAUDRATES), default=115200)
    state_directory: Optional[Path] = _checked(_path, default=None)


@dataclass(frozen=True)
class LogConfig:
    """``[log]``: the session record and the log directory's budget.

    directory: where logs are written, absolute after loading (relative paths are taken from the
    config file's directory); ``None`` ("" in the file): no logging.
    csv: write the session's telemetry record (the key's name is from when it was always CSV;
    ``format`` says which file it is).
    format: "mcap" (one session file with every channel: telemetry, events, CAN, audit, strides;
    ``controller.records.mcaplog``) or "csv" (the telemetry CSV, the ``ankle replay`` columns).
    can: also record the raw CAN traffic to a file of its own: "" no, "blf" or "asc" (python-can
    formats).  With format "mcap" the traffic is in the session file's /can channel anyway.
    rotate_mb, rotate_min: an MCAP session continues in a new part (``-part002.mcap``) once its
    file exceeds this size [MB] or has run this long [min].
    budget_gb: the most the log directory may hold [GB]: the oldest whole sessions are deleted to
    keep it (never the one being written); a warning at 90 %.
    reserve_mb: always leave this much free on the filesystem [MB]: old sessions are deleted for
    it, and when the current one alone fills the disk it stops recording (the controller runs on).
    """

    directory: Optional[Path] = _checked(_path, default=None)
    csv: bool = _checked(_boolean, default=True)
    format: str = _checked(_choice(LOG_FORMATS), default="mcap")
    can: str = _checked(_choice(LOG_CAN_FORMATS), default="")
    rotate_mb: float = _checked(_number(1, 1_000_000, "MB"), default=1000.0)
    rotate_min: float = _checked(_number(1, 10_080, "min"), default=60.0)
    budget_gb: float = _checked(_number(0.01, 1_000_000, "GB"), default=8.0)
    reserve_mb: float = _checked(_number(0, 1_000_000, "MB"), default=500.0)


_HOST_NAME = re.compile(r"(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                        r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*")


def _listen_host(name: str, value: Any, base: Path) -> str:
    """An address to listen on: an IPv4 or IPv6 address, or a host name."""
    import ipaddress
    if isinstance(value, str):
        try:
            ipaddress.ip_address(value)
            return value
        except ValueError:
            if _HOST_NAME.fullmatch(value):
                return value
    raise ConfigError(f"{name}: must be an IP address or a host name to listen on (\"127.0.0.1\", "
                      f"the default, serves this machine only), got {_show(value)}")


@dataclass(frozen=True)
class LiveConfig:
    """``[live]``: the live view in Foxglove (``controller.records.live``; needs the extra ``live``).

    port: the TCP port of its WebSocket server, 1..65535 (Foxglove's default is 8765); 0, the
    default: no live view.
    host: the address it listens on; "127.0.0.1" (the default) serves this machine only (reach
    it over an SSH tunnel); "0.0.0.0" serves every network the board is on, unauthenticated.
    rate_Hz: telemetry rows served per second, every column kept [Hz], 1..1000 (default 200).
    """

    port: int = _checked(_integer(1, 65535, " (a TCP port)", "for no live view (the default)"), default=0)
    host: str = _checked(_listen_host, default="127.0.0.1")
    rate_Hz: float = _checked(_number(1.0, 1000.0, "Hz"), default=200.0)


@dataclass(frozen=True)
class RunConfig:
    """Everything ``ankle run`` needs, checked: one frozen record per config section.

    source: the config file's path as given (or the ``source`` label of :func:`parse_config`).
    """

    source: str
    bus: BusConfig
    driver: DriverConfig
    loop: LoopConfig = field(default_factory=LoopConfig)
    realtime: RealtimeConfig = field(default_factory=RealtimeConfig)
    params: ParamsConfig = field(default_factory=ParamsConfig)
    console: ConsoleConfig = field(default_factory=ConsoleConfig)
    log: LogConfig = field(default_factory=LogConfig)
    live: LiveConfig = field(default_factory=LiveConfig)

    def to_dict(self) -> Dict[str, Any]:
        """Plain data for printing (``ankle run --check-config``): sections as dicts, paths as
        strings, tuples as lists, unset optional values as ``None``."""
        out: Dict[str, Any] = {"source": self.source}
        for f in fields(self):
            if f.name != "source":
                section = getattr(self, f.name)
                out[f.name] = {g.name: _plain(getattr(section, g.name)) for g in fields(section)}
        return out


def _plain(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, Mapping):
        return dict(value)
    return value


# Section name -> its dataclass, in file order.  [bus] is hal.bus.BusConfig, checked by its own
# from_mapping.
_SECTIONS: Dict[str, type] = {
    "bus": BusConfig, "driver": DriverConfig, "loop": LoopConfig,
    "realtime": RealtimeConfig, "params": ParamsConfig, "console": ConsoleConfig, "log": LogConfig,
    "live": LiveConfig,
}


# --- loading -----------------------------------------------------------------------------------

def load_config(path: PathLike) -> RunConfig:
    """Read and check the config file ``path``.

    ConfigError if the file is missing or unreadable (the message names the path), is not UTF-8
    or not valid TOML (path, line and column), or has a bad value (the dotted field).
    """
    shown = os.fspath(path)
    try:
        # bounded, and refusing directories, devices and FIFOs (``--config /dev/zero``)
        data = read_input(path, MAX_CONFIG_BYTES, "run configuration")
    except InputFileMissing:
        raise ConfigError(f"{shown}: config file not found") from None
    except InputFileError as e:
        raise ConfigError(str(e)) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        raise ConfigError(f"{shown}: not UTF-8 text (line {line}, byte {e.start})") from None
    return parse_config(text, source=shown)


def parse_config(text: str, source: str = "<config>") -> RunConfig:
    """Check the TOML document ``text``; ``source`` names it in messages and in the result.

    Relative paths are resolved against the directory of ``source`` when it is a file path, or
    against the current directory when it is a label in angle brackets (``"<config>"``).
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be str, got {type(text).__name__}")
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{source}: invalid TOML: {e}") from None
    except RecursionError:
        raise ConfigError(f"{source}: invalid TOML: arrays or tables nested too deeply") from None
    if not source or (source.startswith("<") and source.endswith(">")):
        base = Path(os.getcwd())
    else:
        base = Path(os.path.dirname(os.path.abspath(source)))
    return _build(doc, source, base)


def _unknown(name: str, kind: str, known: Any, key: Optional[str] = None) -> ConfigError:
    """``name`` (dotted, already quoted where needed) is not one of ``known``."""
    key = name.rsplit(".", 1)[-1] if key is None else key
    close = difflib.get_close_matches(key, list(known), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return ConfigError(f"{name}: unknown {kind} (known: {', '.join(known)}){hint}")


def _table(doc: Mapping[str, Any], name: str) -> Dict[str, Any]:
    value = doc.get(name, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{name}: must be a table ([{name}]), got {_show(value)}")
    return value


def _build(doc: Mapping[str, Any], source: str, base: Path) -> RunConfig:
    for name in doc:
        if name not in _SECTIONS:
            raise _unknown(_key(name), "section", list(_SECTIONS), key=name)
    bus = _check_bus(_table(doc, "bus"))
    sections: Dict[str, Any] = {}
    for name, cls in _SECTIONS.items():
        if name != "bus":
            sections[name] = _section(cls, name, _table(doc, name), base)
    _check_driver(sections["driver"])
    console = sections["console"]
    if console.port is not None:
        if sections["params"].file is None:
            raise ConfigError("console.port: the console needs a parameter file to save to; set [params] file")
        if console.state_directory is None:
            sections["console"] = replace(console, state_directory=sections["params"].file.parent)
    return RunConfig(source=source, bus=bus, **sections)


def _section(cls: type, name: str, table: Mapping[str, Any], base: Path) -> Any:
    """Build the dataclass ``cls`` from ``table`` with every field's checker."""
    known = [f.name for f in fields(cls)]
    for key in table:
        if (name, key) in _RETIRED:
            raise ConfigError(f"{name}.{key}: {_RETIRED[name, key]}")
        if key not in known:
            raise _unknown(f"{name}.{_key(key)}", "key", known, key=key)
    values = {}
    for f in fields(cls):
        dotted = f"{name}.{f.name}"
        if f.name in table:
            values[f.name] = f.metadata["check"](dotted, table[f.name], base)
        elif f.default is MISSING and f.default_factory is MISSING:
            raise ConfigError(f"{dotted}: missing")
    return cls(**values)


def _check_bus(table: Dict[str, Any]) -> BusConfig:
    """[bus] through BusConfig.from_mapping, plus the types of host and port, which it checks
    only for socketcand.  Unknown keys are caught here first, as in every other section."""
    known = [f.name for f in fields(BusConfig)]
    for key in table:
        if key not in known:
            raise _unknown(f"bus.{_key(key)}", "key", known, key=key)
    bus = BusConfig.from_mapping(table, prefix="bus")
    if not isinstance(bus.host, str) or "\x00" in bus.host:
        raise ConfigError(f"bus.host: must be a host name or address, got {_show(bus.host)}")
    if not _is_int(bus.port) or not 0 <= bus.port <= 65535:
        raise ConfigError(f"bus.port: must be a TCP port in 0..65535, got {_show(bus.port)}")
    return bus


def _check_driver(driver: DriverConfig) -> None:
    """Rules between [driver] fields."""
    from hal.drives import load
    models = load(driver.type, "models")
    if driver.model not in models:
        raise ConfigError(f"driver.model: must be one of {', '.join(models)} (the {driver.type} "
                          f"drive's models), got {_show(driver.model)}")
    if driver.type != "ak_mit":
        if driver.reply_id != 0 or driver.range_overrides:
            which = "reply_id" if driver.reply_id != 0 else "range_overrides"
            raise ConfigError(f"driver.{which}: only for type ak_mit (the AK series), not {driver.type}")
        try:
            load(driver.type, "setup").torque_limit_for(driver.model, **driver.options)
        except TypeError as e:
            raise ConfigError(f"driver.options: {e}") from None
        except ConfigError as e:
            raise ConfigError(f"driver.options.{e}" if not str(e).startswith("driver.") else str(e)) from None
        return
    if driver.options:
        raise ConfigError(f"driver.options: the ak_mit drive has none (its reply_id and "
                          f"range_overrides are keys of [driver])")
    if driver.reply_id == driver.id:
        raise ConfigError(f"driver.reply_id: must differ from driver.id ({driver.id:#05x}), "
                          f"got {driver.reply_id:#05x}")
    if driver.reply_id in _SENSOR_IDS:
        raise ConfigError(f"driver.reply_id: {driver.reply_id:#05x} is a sensor node frame id "
                          f"(0x110..0x113, hal/sensor_node.dbc), got {driver.reply_id}")
    try:
        driver.mit_range()
    except ConfigError as e:
        msg = str(e)
        prefix = "driver." if msg.startswith("range_overrides.") else "driver.range_overrides."
        raise ConfigError(prefix + msg) from None
