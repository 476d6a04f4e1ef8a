"""Run configuration (``controller/config.py``): shipped examples, one bad-value row per field,
unknown names, file errors, relative paths, and arbitrary documents that must never crash."""
import dataclasses
import datetime as dt
import json
import math
import os
import re
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from controller.config import (BAUDRATES, RunConfig, load_config, parse_config)
from hal.bus import BusConfig
from hal.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


# --- a tiny TOML writer (enough for these tests; not a general serialiser) ----------------------

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def toml_string(s):
    out = []
    for ch in s:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def toml_key(k):
    return k if _BARE_KEY.fullmatch(k) else toml_string(k)


def toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return toml_string(v)
    if isinstance(v, (dt.datetime, dt.date, dt.time)):
        return v.isoformat()
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{toml_key(k)} = {toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(type(v))


def toml_document(doc):
    """Top-level scalars first, then one [section] per table."""
    lines = [f"{toml_key(k)} = {toml_value(v)}" for k, v in doc.items() if not isinstance(v, dict)]
    for name, table in doc.items():
        if isinstance(table, dict):
            lines.append(f"\n[{toml_key(name)}]")
            lines += [f"{toml_key(k)} = {toml_value(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


def minimal():
    return {"bus": {"interface": "virtual", "channel": "ankle"}, "driver": {"id": 1}}


def parse(doc, source="<config>"):
    return parse_config(toml_document(doc), source)


MISSING = object()


def with_field(dotted, value, base=None):
    """``base`` (default: minimal()) with ``section.key`` set to ``value`` (MISSING: removed)."""
    doc = base if base is not None else minimal()
    section, key = dotted.split(".", 1)
    table = doc.setdefault(section, {})
    if value is MISSING:
        table.pop(key, None)
    else:
        table[key] = value
    return doc


# --- the shipped examples -------------------------------------------------------------------------

def test_board_example_parses(monkeypatch):
    # The example pins the loop to CPU 3: a Raspberry Pi 4/5 has 4 cores.
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    cfg = load_config(ROOT / "deploy" / "ankle.toml")
    assert cfg.bus == BusConfig("socketcan", "can0", 1_000_000, False)
    assert (cfg.driver.model, cfg.driver.id, cfg.driver.reply_id) == ("AK80-9", 1, 0)
    assert cfg.realtime.priority == 80 and cfg.realtime.cpus == (3,) and cfg.realtime.lock_memory
    assert cfg.params.file == Path("/var/lib/ankle/ankle.params")
    assert cfg.console.port == "/dev/ttyGS0" and cfg.console.baudrate == 115200
    assert cfg.console.state_directory == Path("/var/lib/ankle")        # beside the parameter file
    assert cfg.log.directory == Path("/var/log/ankle")
    assert cfg.loop.duration_s is None
    json.dumps(cfg.to_dict())


def test_board_example_refuses_a_cpu_this_machine_lacks(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    with pytest.raises(ConfigError, match=r"^realtime\.cpus: CPU 3 does not exist; this machine has 2"):
        load_config(ROOT / "deploy" / "ankle.toml")


def test_sim_example_parses():
    cfg = load_config(ROOT / "deploy" / "sim.toml")
    assert (cfg.bus.interface, cfg.bus.channel, cfg.bus.host, cfg.bus.port) == \
        ("socketcand", "can0", "127.0.0.1", 29536)
    assert cfg.realtime.priority == 0 and cfg.realtime.cpus == () and not cfg.realtime.lock_memory
    assert cfg.params.file is None and cfg.console.port is None and cfg.log.directory is None
    assert cfg.source == str(ROOT / "deploy" / "sim.toml")


# --- defaults and the result ----------------------------------------------------------------------

def test_minimal_config_gets_every_default():
    cfg = parse(minimal())
    assert cfg.bus == BusConfig("virtual", "ankle")
    d = cfg.driver
    assert (d.model, d.id, d.reply_id, d.timeout_s, dict(d.range_overrides)) == ("AK80-9", 1, 0, 0.5, {})
    assert cfg.loop.duration_s is None
    r = cfg.realtime
    assert (r.priority, r.cpus, r.lock_memory, r.timer_slack_ns, r.freeze_gc) == (80, (), True, 1, True)
    assert cfg.params.file is None
    assert (cfg.console.port, cfg.console.baudrate) == (None, 115200)
    assert (cfg.log.directory, cfg.log.csv, cfg.log.can) == (None, True, "")
    assert cfg.source == "<config>"


def test_result_is_frozen_and_prints_as_plain_data():
    cfg = parse(with_field("realtime.cpus", [1, 0], with_field("params.file", "/x/p.params")))
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.realtime.priority = 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.driver = None
    d = cfg.to_dict()
    assert json.loads(json.dumps(d)) == d
    assert list(d) == ["source", "bus", "driver", "loop", "realtime", "params", "console", "log", "live"]
    assert d["realtime"]["cpus"] == [0, 1]
    assert d["params"]["file"] == "/x/p.params"
    assert d["bus"]["interface"] == "virtual"


def test_integers_are_accepted_where_numbers_are_expected():
    cfg = parse(with_field("loop.duration_s", 500, with_field("driver.timeout_s", 1)))
    assert cfg.loop.duration_s == 500.0 and isinstance(cfg.loop.duration_s, float)
    assert cfg.driver.timeout_s == 1.0 and isinstance(cfg.driver.timeout_s, float)


def test_range_overrides_are_checked_with_the_model():
    cfg = parse(with_field("driver.range_overrides", {"t_min": -25.0, "t_max": 25}))
    assert cfg.driver.mit_range()["t_max"] == 25.0
    assert dict(cfg.driver.range_overrides) == {"t_min": -25.0, "t_max": 25.0}


def test_zero_means_leave_alone_for_priority_and_timer_slack():
    cfg = parse(with_field("realtime.priority", 0, with_field("realtime.timer_slack_ns", 0)))
    assert cfg.realtime.priority == 0 and cfg.realtime.timer_slack_ns == 0


def test_every_standard_baudrate_is_accepted():
    for baud in BAUDRATES:
        assert parse(with_field("console.baudrate", baud)).console.baudrate == baud


def test_socketcand_bus_needs_host_and_port():
    doc = minimal()
    doc["bus"] = {"interface": "socketcand", "channel": "can0", "host": "127.0.0.1", "port": 29536}
    assert parse(doc).bus.port == 29536


# --- one row per field: the message starts with the dotted field name -----------------------------

def socketcand(**over):
    d = {"interface": "socketcand", "channel": "can0", "host": "127.0.0.1", "port": 29536}
    d.update(over)
    return d


BAD = [
    # field, what is set (dotted: value, or "bus": whole table), expected message start
    ("bus.interface", {"bus": {"channel": "can0"}}, "bus.interface: missing"),
    ("bus.interface", {"bus.interface": 5}, "bus.interface: must be a non-empty string"),
    ("bus.interface", {"bus.interface": "nosuchbus"}, "bus.interface: unknown python-can interface"),
    ("bus.channel", {"bus": {"interface": "virtual"}}, "bus.channel: missing"),
    ("bus.channel", {"bus.channel": ""}, "bus.channel: must be a non-empty string"),
    ("bus.bitrate", {"bus.bitrate": 2_000_000}, "bus.bitrate: must be an integer in 1..1000000"),
    ("bus.bitrate", {"bus.bitrate": "1M"}, "bus.bitrate: must be an integer"),
    ("bus.receive_own_messages", {"bus.receive_own_messages": "no"}, "bus.receive_own_messages: must be true or false"),
    ("bus.host", {"bus": socketcand(host="")}, "bus.host: socketcand needs"),
    ("bus.host", {"bus.host": 5}, "bus.host: must be a host name or address, got 5"),
    ("bus.port", {"bus": socketcand(port=70000)}, "bus.port: socketcand needs a TCP port in 1..65535, got 70000"),
    ("bus.port", {"bus.port": "x"}, "bus.port: must be a TCP port in 0..65535, got 'x'"),
    ("driver.id", {"driver.id": MISSING}, "driver.id: missing"),
    ("driver.id", {"driver.id": 0}, "driver.id: must be an integer in 1..127"),
    ("driver.id", {"driver.id": 128}, "driver.id: must be an integer in 1..127"),
    ("driver.id", {"driver.id": 1.0}, "driver.id: must be an integer in 1..127"),
    ("driver.id", {"driver.id": True}, "driver.id: must be an integer in 1..127"),
    ("driver.type", {"driver.type": "moteus"}, "driver.type: unknown drive 'moteus' (known: ak_mit, cia402, odrive)"),
    ("driver.type", {"driver.type": 1}, "driver.type: unknown drive 1 (known: ak_mit, cia402, odrive)"),
    ("driver.model", {"driver.type": "odrive"}, "driver.model: must be one of S1-M8325s"),
    ("driver.reply_id", {"driver.type": "cia402", "driver.model": "sim-cia402", "driver.reply_id": 5},
     "driver.reply_id: only for type ak_mit"),
    ("driver.options", {"driver.type": "cia402", "driver.model": "sim-cia402", "driver.options": {"bogus": 1}},
     "driver.options.bogus: unknown option of the cia402 drive"),
    ("driver.model", {"driver.model": "AK99-1"}, "driver.model: must be one of AK80-9, AK70-10"),
    ("driver.model", {"driver.model": ["AK80-9"]}, "driver.model: must be a model name"),
    ("driver.options", {"driver.options": {"x": 1}}, "driver.options: the ak_mit drive has none"),
    ("driver.options", {"driver.options": [1]}, "driver.options: must be a table"),
    ("driver.reply_id", {"driver.reply_id": 0x800}, "driver.reply_id: must be an integer in 0..2047"),
    ("driver.reply_id", {"driver.reply_id": 1}, "driver.reply_id: must differ from driver.id"),
    ("driver.reply_id", {"driver.reply_id": 0x111}, "driver.reply_id: 0x111 is a sensor node frame id"),
    ("driver.timeout_s", {"driver.timeout_s": 0}, "driver.timeout_s: must be a number in 0.01..5 s, got 0"),
    ("driver.timeout_s", {"driver.timeout_s": math.nan}, "driver.timeout_s: must be a number in 0.01..5 s, got nan"),
    ("driver.timeout_s", {"driver.timeout_s": "0.5"}, "driver.timeout_s: must be a number"),
    ("driver.range_overrides", {"driver.range_overrides": 5}, "driver.range_overrides: must be a table"),
    ("driver.range_overrides", {"driver.range_overrides": {"t_max": "big"}},
     "driver.range_overrides.t_max: must be a finite number, got 'big'"),
    ("driver.range_overrides", {"driver.range_overrides": {"torque": 1.0}},
     "driver.range_overrides.torque: unknown key (known: p_min"),
    ("driver.range_overrides", {"driver.range_overrides": {"t_min": 20.0}},
     "driver.range_overrides.t_min: must be below t_max"),
    ("driver.range_overrides", {"driver.range_overrides": {"t_max": 1e300}},
     "driver.range_overrides.t_max: 1e+300 is not a range any AK80-9 firmware uses (allowed 9..36"),
    ("driver.range_overrides", {"driver.range_overrides": {"kp_min": 1.0}},
     "driver.range_overrides.kp_min: must be 0"),
    ("loop.duration_s", {"loop.duration_s": 0}, "loop.duration_s: must be a number of seconds > 0"),
    ("loop.duration_s", {"loop.duration_s": math.inf}, "loop.duration_s: must be a number of seconds > 0"),
    ("realtime.priority", {"realtime.priority": 120},
     "realtime.priority: must be an integer in 1..99 (SCHED_FIFO), or 0 to leave the scheduling "
     "alone, got 120"),
    ("realtime.priority", {"realtime.priority": -1}, "realtime.priority: must be an integer in 1..99"),
    ("realtime.priority", {"realtime.priority": 80.0}, "realtime.priority: must be an integer in 1..99"),
    ("realtime.cpus", {"realtime.cpus": 0}, "realtime.cpus: must be a list of CPU numbers"),
    ("realtime.cpus", {"realtime.cpus": [-1]}, "realtime.cpus: must be a list of CPU numbers"),
    ("realtime.cpus", {"realtime.cpus": [4096]}, "realtime.cpus: CPU 4096 does not exist"),
    ("realtime.cpus", {"realtime.cpus": [0, 0]}, "realtime.cpus: CPU 0 is listed twice"),
    ("realtime.lock_memory", {"realtime.lock_memory": 1}, "realtime.lock_memory: must be true or false, got 1"),
    ("realtime.timer_slack_ns", {"realtime.timer_slack_ns": 2_000_000_000},
     "realtime.timer_slack_ns: must be an integer in 1..1000000000 ns, or 0 to leave the default"),
    ("realtime.timer_slack_ns", {"realtime.timer_slack_ns": -5}, "realtime.timer_slack_ns: must be an integer"),
    ("realtime.freeze_gc", {"realtime.freeze_gc": "yes"}, "realtime.freeze_gc: must be true or false, got 'yes'"),
    ("realtime.spin_ns", {"realtime.spin_ns": -1}, "realtime.spin_ns: must be an integer in 1..9000000 ns"),
    ("realtime.cpu_latency_us", {"realtime.cpu_latency_us": -2},
     "realtime.cpu_latency_us: must be an integer in -1..100000 us (-1 leaves it), got -2"),
    ("params.file", {"params.file": 5}, "params.file: must be a string, got 5"),
    ("params.file", {"params.file": "  "}, "params.file: must be a path"),
    ("params.file", {"params.file": "a\x00b"}, "params.file: must not contain a NUL"),
    ("console.port", {"console.port": "ttyGS0"}, "console.port: must be the absolute path of a serial device"),
    ("console.port", {"console.port": 0}, "console.port: must be a string"),
    ("console.baudrate", {"console.baudrate": 12345}, "console.baudrate: must be one of 9600, 19200"),
    ("console.baudrate", {"console.baudrate": 115200.0}, "console.baudrate: must be one of"),
    ("console.state_directory", {"console.state_directory": 7}, "console.state_directory: must be a string"),
    ("log.directory", {"log.directory": []}, "log.directory: must be a string, got []"),
    ("log.csv", {"log.csv": "true"}, "log.csv: must be true or false"),
    ("log.can", {"log.can": "csv"}, "log.can: must be one of '', 'blf', 'asc', got 'csv'"),
    ("log.can", {"log.can": 1}, "log.can: must be one of"),
    ("log.format", {"log.format": "bin"}, "log.format: must be one of 'mcap', 'csv', got 'bin'"),
    ("log.rotate_mb", {"log.rotate_mb": 0}, "log.rotate_mb: must be a number in 1..1e+06 MB, got 0"),
    ("log.rotate_min", {"log.rotate_min": "60"}, "log.rotate_min: must be a number in 1..10080 min"),
    ("log.budget_gb", {"log.budget_gb": -1.0}, "log.budget_gb: must be a number in 0.01..1e+06 GB"),
    ("log.reserve_mb", {"log.reserve_mb": float("nan")}, "log.reserve_mb: must be a number in 0..1e+06 MB"),
    ("live.port", {"live.port": 70000}, "live.port: must be an integer in 1..65535 (a TCP port), or 0 for no "
                                        "live view (the default), got 70000"),
    ("live.port", {"live.port": "8765"}, "live.port: must be an integer in 1..65535"),
    ("live.port", {"live.port": -1}, "live.port: must be an integer in 1..65535"),
    ("live.host", {"live.host": ""}, "live.host: must be an IP address or a host name to listen on"),
    ("live.host", {"live.host": "local host"}, "live.host: must be an IP address or a host name"),
    ("live.host", {"live.host": 127}, "live.host: must be an IP address or a host name"),
    ("live.rate_Hz", {"live.rate_Hz": 0}, "live.rate_Hz: must be a number in 1..1000 Hz, got 0"),
    ("live.rate_Hz", {"live.rate_Hz": math.inf}, "live.rate_Hz: must be a number in 1..1000 Hz"),
]


def _apply(changes):
    doc = minimal()
    for key, value in changes.items():
        if "." in key:
            with_field(key, value, doc)
        else:
            doc[key] = value
    return doc


@pytest.mark.parametrize("field_name,changes,start", BAD, ids=[f"{r[0]}-{i}" for i, r in enumerate(BAD)])
def test_bad_field_is_named(field_name, changes, start):
    with pytest.raises(ConfigError) as info:
        parse(_apply(changes))
    msg = str(info.value)
    assert msg.startswith(field_name + ":") or msg.startswith(field_name + "."), msg
    assert msg.startswith(start), msg
    assert "\n" not in msg


def test_every_field_has_a_row():
    cfg = parse(minimal())
    names = {f"{section}.{key}" for section, table in cfg.to_dict().items() if section != "source"
             for key in table}
    assert names == {row[0] for row in BAD}


def test_a_console_needs_a_parameter_file_and_keeps_its_state_beside_it():
    with pytest.raises(ConfigError, match=r"^console\.port: the console needs a parameter file"):
        parse(_apply({"console.port": "/dev/ttyGS0"}))
    cfg = parse(_apply({"console.port": "/dev/ttyGS0", "params.file": "/data/ankle.params"}))
    assert cfg.console.state_directory == Path("/data")
    cfg = parse(_apply({"console.port": "/dev/ttyGS0", "params.file": "/data/ankle.params",
                        "console.state_directory": "/secure"}))
    assert cfg.console.state_directory == Path("/secure")


def test_missing_required_sections_name_their_first_field():
    with pytest.raises(ConfigError, match=r"^bus\.interface: missing"):
        parse({"driver": {"id": 1}})
    with pytest.raises(ConfigError, match=r"^driver\.id: missing"):
        parse({"bus": {"interface": "virtual", "channel": "x"}})
    with pytest.raises(ConfigError, match=r"^bus\.interface: missing"):
        parse_config("")


def test_section_that_is_not_a_table():
    with pytest.raises(ConfigError, match=r"^realtime: must be a table \(\[realtime\]\), got 5"):
        parse_config('realtime = 5\n[bus]\ninterface = "virtual"\nchannel = "x"\n[driver]\nid = 1\n')


# --- unknown names ------------------------------------------------------------------------------

def test_unknown_section_is_named_with_the_known_ones():
    doc = minimal()
    doc["realtme"] = {"priority": 50}
    with pytest.raises(ConfigError) as info:
        parse(doc)
    msg = str(info.value)
    assert msg.startswith("realtme: unknown section (known: bus, driver, loop, realtime, "
                          "params, console, log, live)"), msg
    assert "did you mean 'realtime'?" in msg


def test_unknown_key_is_named_with_the_known_ones():
    with pytest.raises(ConfigError) as info:
        parse(with_field("realtime.prority", 50))
    msg = str(info.value)
    assert msg.startswith("realtime.prority: unknown key (known: priority, cpus, lock_memory, "
                          "timer_slack_ns, freeze_gc, spin_ns, cpu_latency_us)"), msg
    assert "did you mean 'priority'?" in msg


def test_unknown_bus_key_is_named():
    with pytest.raises(ConfigError, match=r"^bus\.chanel: unknown key \(known: interface, channel, .*did you mean .channel.\?"):
        parse(with_field("bus.chanel", "can0"))


def test_unknown_names_that_need_quotes_are_quoted():
    doc = minimal()
    doc["driver"]["line\nbreak"] = 1
    with pytest.raises(ConfigError, match=r'^driver\."line\\nbreak": unknown key'):
        parse(doc)


def test_unknown_top_level_key_is_refused():
    with pytest.raises(ConfigError, match=r"^priority: unknown section"):
        parse_config("priority = 80\n" + toml_document(minimal()))


# --- the file ---------------------------------------------------------------------------------

def test_syntax_error_names_file_and_line(tmp_path):
    path = tmp_path / "ankle.toml"
    path.write_text('[bus]\ninterface = "virtual"\nchannel = can0\n', encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}: invalid TOML: "), msg
    assert "line 3" in msg and "column" in msg


def test_duplicate_key_is_a_syntax_error():
    with pytest.raises(ConfigError, match=r"line 3"):
        parse_config('[driver]\nid = 1\nid = 2\n')


def test_missing_file_is_named(tmp_path):
    path = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match=re.escape(f"{path}: config file not found")):
        load_config(path)


def test_directory_and_undecodable_file(tmp_path):
    with pytest.raises(ConfigError, match=r"is a directory"):
        load_config(tmp_path)
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'[bus]\ninterface = "virtual"\nchannel = "\xe9"\n')
    with pytest.raises(ConfigError, match=r"not UTF-8 text \(line 3"):
        load_config(path)


# --- relative paths ------------------------------------------------------------------------------

def test_relative_paths_resolve_against_the_config_directory(tmp_path, monkeypatch):
    conf_dir = tmp_path / "etc" / "ankle"
    conf_dir.mkdir(parents=True)
    doc = with_field("params.file", "state/ankle.params",
                     with_field("log.directory", "../../logs"))
    (conf_dir / "ankle.toml").write_text(toml_document(doc), encoding="utf-8")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    for given_path in (conf_dir / "ankle.toml", os.path.join("..", "etc", "ankle", "ankle.toml")):
        cfg = load_config(given_path)
        assert cfg.params.file == conf_dir / "state" / "ankle.params"
        assert cfg.log.directory == tmp_path / "logs"
        assert cfg.params.file.is_absolute() and cfg.log.directory.is_absolute()
        assert cfg.source == str(given_path)
    assert not (conf_dir / "state").exists()  # named, not created


def test_absolute_paths_are_kept_and_labels_resolve_against_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = parse(with_field("params.file", "/var/lib/ankle/ankle.params",
                           with_field("log.directory", "logs")))
    assert cfg.params.file == Path("/var/lib/ankle/ankle.params")
    assert cfg.log.directory == tmp_path / "logs"


# --- arbitrary documents: a ConfigError or a RunConfig, nothing else ------------------------------

SECTIONS = ["bus", "driver", "sensor_node", "loop", "realtime", "params", "console", "log", "live"]
KEYS = ["interface", "channel", "bitrate", "receive_own_messages", "host", "port", "model", "id", "type",
        "reply_id", "timeout_s", "range_overrides", "status_period_s", "rate_Hz", "duration_s",
        "priority", "cpus", "lock_memory", "timer_slack_ns", "freeze_gc", "spin_ns", "cpu_latency_us", "file",
        "baudrate",
        "directory", "csv", "can", "t_max", "t_min"]

names = st.one_of(st.sampled_from(SECTIONS + KEYS), st.text(min_size=1, max_size=12))
scalars = st.one_of(
    st.booleans(),
    st.integers(), st.integers(-3, 130), st.sampled_from([0, 1, 80, 99, 100, 1000, 115200, 0x110, 2**63]),
    st.floats(allow_nan=True, allow_infinity=True), st.floats(0, 3000),
    st.text(max_size=20),
    st.sampled_from(["virtual", "socketcan", "socketcand", "can0", "AK80-9", "AK10-9", "", "blf",
                     "/dev/ttyGS0", "rel/path", "socket://localhost:7777"]),
    st.datetimes(), st.dates(), st.times(),
)
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(names, inner, max_size=4)), max_leaves=8)
tables = st.dictionaries(names, values, max_size=6)


@st.composite
def documents(draw):
    """Random sections and keys, often on top of a valid document so the checks get deep."""
    doc = minimal() if draw(st.booleans()) else {}
    for _ in range(draw(st.integers(0, 6))):
        section = draw(names)
        if draw(st.integers(0, 4)) == 0:
            doc[section] = draw(values)  # a section that may not be a table
        else:
            table = doc.get(section)
            table = dict(table) if isinstance(table, dict) else {}
            table.update(draw(tables))
            for key in draw(st.lists(st.sampled_from(KEYS), max_size=2)):
                table.pop(key, None)
            doc[section] = table
    return doc


def _parse_or_config_error(text):
    try:
        cfg = parse_config(text, "/etc/ankle/ankle.toml")
    except ConfigError as e:
        assert str(e) and "\n" not in str(e)
        return None
    assert isinstance(cfg, RunConfig)
    json.dumps(cfg.to_dict(), allow_nan=False)
    return cfg


@settings(max_examples=300, deadline=None)
@given(documents())
def test_arbitrary_documents_load_or_raise_config_error(doc):
    _parse_or_config_error(toml_document(doc))


@settings(max_examples=300, deadline=None)
@given(st.one_of(
    st.text(max_size=200),
    st.text(alphabet=st.sampled_from('[]{}=."\'#\n ,-_0123456789abcdefinrstuvxyz'), max_size=120),
    st.builds(lambda text, at, junk: text[:at] + junk + text[at:],
              st.sampled_from([toml_document(minimal()), (ROOT / "deploy" / "sim.toml").read_text()]),
              st.integers(0, 400), st.text(max_size=8)),
))
def test_arbitrary_text_loads_or_raises_config_error(text):
    _parse_or_config_error(text)
