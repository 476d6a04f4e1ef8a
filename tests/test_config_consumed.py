"""Every key of the run configuration changes what ``ankle run`` runs with; nothing else is a key.

``ankle run --config FILE`` (``controller.board.run_board``) builds what it runs with from the loaded
configuration through these, and only these: ``runtime_spec`` (the tick's process: bus, driver,
real-time settings), ``run_duration_s``, ``load_params`` (the parameter set, from ``[params] file``),
``open_logs`` (the session log and the CAN log), ``_BoardConsole`` (the serial console) and
``live_spec`` (the live view it serves, ``controller.records.live``; tests/test_live.py serves one).  The test
walks every key the schema accepts, sets it to another valid value, and checks that what those build
differs: real files in a temporary directory, a real virtual CAN bus for the CAN log, a real pyserial
``loop://`` port for the console.  A key no consumer reads (the old ``[sensor_node] status_period_s``)
makes it fail; so does a key added to the schema without a row here.

It also holds the one-source rules: the loop rate is the parameter's, the real-time defaults are
``RealtimeSpec``'s, the driver-id bound is ``hal.ak``'s.
"""
import dataclasses
import math
from pathlib import Path

import can
import pytest

from controller.params import store as paramstore
from controller.board import (_BoardConsole, live_spec, load_params, open_logs, realtime_spec, run_duration_s,
                              runtime_spec)
from controller.config import RealtimeConfig, parse_config
from controller.params.registry import ParamSet, by_name
from controller.runtime.process import RealtimeSpec
from hal.ak import DRIVER_ID_MAX, DRIVER_ID_MIN, AKDriver
from hal.drives import DRIVE_NAMES, DRIVES
from hal.errors import ConfigError

from test_config import minimal, toml_document, with_field


def _config(changes, tmp):
    doc = minimal()
    for dotted, value in changes.items():
        if isinstance(value, str) and "{tmp}" in value:
            value = value.replace("{tmp}", str(tmp))
        with_field(dotted, value, doc)
    return parse_config(toml_document(doc), str(tmp / "ankle.toml"))


def what_ankle_run_runs_with(cfg, tmp):
    """What run_board builds from ``cfg``, as plain data (every resource it opened closed again)."""
    said = []
    params, boot_faults = load_params(cfg, said.append)
    out = {"spec": runtime_spec(cfg, boot_faults), "duration_s": run_duration_s(cfg),
           "params": tuple(params.vector()), "boot_faults": boot_faults, "live": live_spec(cfg)}
    sinks, closers = open_logs(cfg, cfg.bus, "STAMP", said.append)
    try:
        out["log_sinks"] = len(sinks)
        out["log_settings"] = [getattr(sink, "settings", None) for sink in sinks]
        out["log_files"] = (None if cfg.log.directory is None else
                            sorted(p.name for p in Path(cfg.log.directory).iterdir()))
    finally:
        for close in closers:
            close()
    console = _BoardConsole(cfg, said.append, params["wearer.mass_kg"])
    try:
        out["console"] = None if console.port is None else (
            console.port.port, console.port.baudrate, str(console.logs.directory), console.logs.fmt,
            str(console.cfg.console.state_directory), str(console.cfg.params.file))
    finally:
        console.close()
    return out


@pytest.fixture
def saved_params(tmp_path):
    """A real parameter file whose values differ from the defaults."""
    path = tmp_path / "other.params"
    paramstore.save(ParamSet({"pushoff.torque_Nm_kg": 1.0, "loop.rate_Hz": 500.0}), path)
    return path


SOCKETCAND = {"bus.interface": "socketcand", "bus.channel": "can0", "bus.host": "127.0.0.1", "bus.port": 29536}
CONSOLE = {"params.file": "{tmp}/ankle.params", "console.port": "loop://"}

# key -> (what both configurations have, the value the second one gives the key)
CASES = {
    "bus.interface": ({"bus.host": "127.0.0.1", "bus.port": 29536}, "socketcand"),
    "bus.channel": ({}, "another"),
    "bus.bitrate": ({}, 500_000),
    "bus.receive_own_messages": ({}, True),
    "bus.host": (SOCKETCAND, "localhost"),
    "bus.port": (SOCKETCAND, 29537),
    "driver.type": ({}, "ak_mit_copy"),     # a second row of the drive table, made by the test
    "driver.id": ({}, 2),
    "driver.model": ({}, "AK70-10"),
    "driver.reply_id": ({}, 2),
    "driver.timeout_s": ({}, 1.0),
    "driver.range_overrides": ({}, {"t_max": 20.0}),
    "driver.options": ({"driver.type": "cia402", "driver.model": "sim-cia402"}, {"host_node_id": 100}),
    "loop.duration_s": ({}, 5.0),
    "realtime.priority": ({}, 10),
    "realtime.cpus": ({}, [0]),
    "realtime.lock_memory": ({}, False),
    "realtime.timer_slack_ns": ({}, 1000),
    "realtime.freeze_gc": ({}, False),
    "realtime.spin_ns": ({}, 100_000),
    "realtime.cpu_latency_us": ({}, 0),
    "params.file": ({}, "{tmp}/other.params"),
    "console.port": ({"params.file": "{tmp}/ankle.params"}, "loop://"),
    "console.baudrate": (CONSOLE, 9600),
    "console.state_directory": (CONSOLE, "{tmp}/state"),
    "log.directory": ({}, "{tmp}/logs"),
    "log.csv": ({"log.directory": "{tmp}/logs"}, False),
    "log.can": ({"log.directory": "{tmp}/logs"}, "blf"),
    "log.format": ({"log.directory": "{tmp}/logs"}, "csv"),
    "log.rotate_mb": ({"log.directory": "{tmp}/logs"}, 10.0),
    "log.rotate_min": ({"log.directory": "{tmp}/logs"}, 5.0),
    "log.budget_gb": ({"log.directory": "{tmp}/logs"}, 1.0),
    "log.reserve_mb": ({"log.directory": "{tmp}/logs"}, 100.0),
    "live.port": ({}, 8765),
    "live.host": ({"live.port": 8765}, "0.0.0.0"),
    "live.rate_Hz": ({"live.port": 8765}, 100.0),
}


def _schema_keys(tmp):
    d = _config({}, tmp).to_dict()
    return {f"{section}.{key}" for section, table in d.items() if section != "source" for key in table}


def test_every_key_of_the_schema_has_a_case(tmp_path):
    assert set(CASES) == _schema_keys(tmp_path)


@pytest.mark.parametrize("key", sorted(CASES))
def test_every_key_changes_what_ankle_run_runs_with(tmp_path, monkeypatch, key):
    common, value = CASES[key]
    if key == "driver.type":
        # one drive so far: a second name for the same parts shows the name reaches the run
        monkeypatch.setitem(DRIVES, "ak_mit_copy", DRIVES["ak_mit"])
    first_dir, second_dir = tmp_path / "first", tmp_path / "second"
    for d in (first_dir, second_dir):
        d.mkdir()
        paramstore.save(ParamSet({"pushoff.torque_Nm_kg": 1.0, "loop.rate_Hz": 500.0}), d / "other.params")
    first = _config(common, first_dir)
    second = _config({**common, key: value}, second_dir)
    a = what_ankle_run_runs_with(first, first_dir)
    b = what_ankle_run_runs_with(second, second_dir)
    # the two temporary directories differ, so paths are compared relative to them
    a_text, b_text = repr(a).replace(str(first_dir), "T"), repr(b).replace(str(second_dir), "T")
    assert a_text != b_text, f"{key} = {value!r} changes nothing ankle run runs with"


# --- refused keys ----------------------------------------------------------------------------------

@pytest.mark.parametrize("section", ["bus", "driver", "loop", "realtime", "params", "console", "log", "live"])
def test_an_unknown_key_in_any_section_is_refused_in_one_line(tmp_path, section):
    with pytest.raises(ConfigError) as info:
        _config({f"{section}.no_such_key": 1}, tmp_path)
    msg = str(info.value)
    assert msg.startswith(f"{section}.no_such_key: unknown key (known: ") and "\n" not in msg, msg


def test_an_unknown_drive_is_refused_in_one_line_listing_the_known_ones(tmp_path):
    for value in ("moteus", "AK_MIT", "", 3):
        with pytest.raises(ConfigError) as info:
            _config({"driver.type": value}, tmp_path)
        msg = str(info.value)
        assert msg == f"driver.type: unknown drive {value!r} (known: {', '.join(DRIVE_NAMES)})", msg
    assert _config({}, tmp_path).driver.type == "ak_mit" == DRIVE_NAMES[0]


def test_an_old_loop_rate_is_refused_saying_where_the_rate_is_set(tmp_path):
    for value in (1000.0, 500.0):          # even the default: the file must not look as if it set it
        with pytest.raises(ConfigError) as info:
            _config({"loop.rate_Hz": value}, tmp_path)
        msg = str(info.value)
        assert msg.startswith("loop.rate_Hz: no longer set in the run configuration: the loop rate is "
                              "the parameter loop.rate_Hz in the [params] file"), msg
        assert "\n" not in msg


def test_an_old_sensor_node_status_period_is_refused_as_unknown(tmp_path):
    with pytest.raises(ConfigError) as info:
        _config({"sensor_node.status_period_s": 0.02}, tmp_path)
    msg = str(info.value)
    assert msg.startswith("sensor_node: unknown section (known: bus, driver, loop, realtime, params, "
                          "console, log, live)"), msg
    assert "\n" not in msg


# --- one source for each default and bound ---------------------------------------------------------

def test_the_loop_rate_is_the_parameter_files(tmp_path, saved_params):
    cfg = _config({"params.file": str(saved_params)}, tmp_path)
    params, _ = load_params(cfg, lambda line: None)
    assert params["loop.rate_Hz"] == 500.0
    cfg = _config({}, tmp_path)
    params, _ = load_params(cfg, lambda line: None)
    assert params["loop.rate_Hz"] == by_name("loop.rate_Hz").default


def test_spin_is_checked_against_the_period_of_the_parameter_set(tmp_path, saved_params):
    # 1.5 ms of spin: shorter than a period at 500 Hz (the file's), not at 1000 Hz (the default)
    cfg = _config({"params.file": str(saved_params), "realtime.spin_ns": 1_500_000}, tmp_path)
    load_params(cfg, lambda line: None)
    cfg = _config({"realtime.spin_ns": 1_500_000}, tmp_path)
    with pytest.raises(ConfigError) as info:
        load_params(cfg, lambda line: None)
    assert str(info.value) == ("realtime.spin_ns: must be shorter than one period (1000000 ns at "
                               "loop.rate_Hz = 1000, the parameter set's), got 1500000")


def test_realtime_defaults_are_realtime_specs(tmp_path):
    spec = RealtimeSpec()
    assert {f.name: f.default for f in dataclasses.fields(RealtimeConfig)} == \
        {f.name: getattr(spec, f.name) for f in dataclasses.fields(RealtimeConfig)}
    assert realtime_spec(_config({}, tmp_path)) == spec
    assert spec.priority == 80
    # what a spec that says nothing about real time asks of the operating system: nothing
    none = RealtimeSpec.none()
    assert (none.priority, none.cpus, none.lock_memory, none.timer_slack_ns, none.spin_ns,
            none.cpu_latency_us) == (0, (), False, 0, 0, -1)


@pytest.mark.parametrize("driver_id", [-1, 0, 1, 2, 126, 127, 128, 200, 255, 256, 0x7FF])
def test_the_driver_id_bound_is_the_same_in_the_config_and_the_driver(tmp_path, driver_id):
    try:
        _config({"driver.id": driver_id, "driver.reply_id": 0x7FE}, tmp_path)
        config_accepts = True
    except ConfigError as e:
        assert str(e).startswith(f"driver.id: must be an integer in {DRIVER_ID_MIN}..{DRIVER_ID_MAX}")
        config_accepts = False
    with can.Bus(interface="virtual", channel="driver-id-bound") as bus:
        try:
            AKDriver(bus, driver_id, reply_id=0x7FE)
            driver_accepts = True
        except ConfigError as e:
            assert str(e).startswith(f"driver_id: must be an integer in {DRIVER_ID_MIN}..{DRIVER_ID_MAX}")
            driver_accepts = False
    assert config_accepts == driver_accepts == (DRIVER_ID_MIN <= driver_id <= DRIVER_ID_MAX)
