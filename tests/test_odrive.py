"""The ODrive drive over CAN Simple (issue 16): frames, codec, set-up, simulated drive.

Frames are checked byte for byte against the DBCs ODrive Robotics publishes, as shipped in the
``odrive_can`` package (odrive-cansimple-0.5.6.dbc and 0.6.10.dbc), through cantools: an
independent definition, not our own tables.  The set-up runs against the simulated drive
(sim._odrive_sim) over a real in-process link (hal._link.memory_link_pair + hal.links.LinkBus):
either the commissioning way (plant still, every frame answered at once, as the harness does) or
in real time (a thread steps the plant to the wall clock and sends the cyclic frames), which
verify()'s behavioural checks need.  No timing assertions: the checks' outcomes only.
"""
import contextlib
import importlib.resources
import math
import struct
import threading
import time

import cantools
import pytest
from hypothesis import given, settings, strategies as st

from hal import _odrive
from hal._link import memory_link_pair
from hal.driver import DriverState
from hal.errors import ConfigError, DriverFault
from hal.links import LinkBus
from hal.odrive import ODRIVE_MODELS, DEFAULT_MODEL, OdriveDriver, odrive_codec
from sim._odrive_sim import OdriveSimDrive
from sim.plant import build_plant

_REMOTE = 2                     # hal._link LINK_REMOTE
F32_MAX = 3.4028234663852886e38


def _dbc(version):
    path = importlib.resources.files("odrive_can") / "dbc" / f"odrive-cansimple-{version}.dbc"
    with importlib.resources.as_file(path) as p:
        return cantools.database.load_file(str(p))


DBC = {"0.5": _dbc("0.5.6"), "0.6": _dbc("0.6.10")}
FIRMWARES = ("0.5", "0.6")


def _message(fw, node, name):
    return DBC[fw].get_message_by_name(f"Axis{node}_{name}")


nodes = st.integers(0, 7)              # the DBCs describe axes 0..7
f32 = st.floats(width=32, allow_nan=False, allow_infinity=False)
u32 = st.integers(0, 2**32 - 1)


# --- frames against the DBCs ----------------------------------------------------------------------

@pytest.mark.parametrize("fw", FIRMWARES)
@pytest.mark.parametrize("cmd, name", [("heartbeat", "Heartbeat"), ("set_axis_state", "Set_Axis_State"),
                                       ("get_encoder_estimates", "Get_Encoder_Estimates"),
                                       ("set_controller_mode", "Set_Controller_Mode"),
                                       ("set_input_torque", "Set_Input_Torque"), ("get_iq", "Get_Iq"),
                                       ("get_bus_voltage_current", "Get_Bus_Voltage_Current"),
                                       ("clear_errors", "Clear_Errors")])
def test_arbitration_ids_are_the_dbcs(fw, cmd, name):
    for node in range(8):
        assert _odrive.can_id(node, _odrive.CMD[cmd]) == _message(fw, node, name).frame_id


@pytest.mark.parametrize("cmd, name", [("get_error", "Get_Error"), ("get_temperature", "Get_Temperature"),
                                       ("get_torques", "Get_Torques")])
def test_the_06_only_ids_are_the_06_dbcs(cmd, name):
    assert _odrive.can_id(5, _odrive.CMD[cmd]) == _message("0.6", 5, name).frame_id
    # and on 0.5 those ids are other messages: the codec must not read them as 0.6's
    assert DBC["0.5"].get_message_by_frame_id(_odrive.can_id(5, _odrive.CMD[cmd])).name != f"Axis5_{name}"


@settings(max_examples=300)
@given(nodes, f32, st.sampled_from(FIRMWARES))
def test_set_input_torque_is_the_dbcs(node, torque, fw):
    msg = _message(fw, node, "Set_Input_Torque")
    assert _odrive.pack_set_input_torque(torque) == msg.encode({"Input_Torque": torque})


@settings(max_examples=100)
@given(st.integers(0, 14), st.integers(0, 3), st.integers(0, 8), st.sampled_from(FIRMWARES))
def test_set_axis_state_and_controller_mode_are_the_dbcs(state, control, inp, fw):
    assert _odrive.pack_set_axis_state(state) == _message(fw, 0, "Set_Axis_State").encode(
        {"Axis_Requested_State": state}, scaling=False)
    assert _odrive.pack_set_controller_mode(control, inp) == _message(fw, 0, "Set_Controller_Mode").encode(
        {"Control_Mode": control, "Input_Mode": inp}, scaling=False)


def test_clear_errors_length_per_firmware():
    assert _odrive.pack_clear_errors("0.6") == _message("0.6", 0, "Clear_Errors").encode({"Identify": 0})
    assert len(_odrive.pack_clear_errors("0.5")) == _message("0.5", 0, "Clear_Errors").length == 0
    with pytest.raises(ValueError, match="firmware"):
        _odrive.pack_clear_errors("0.4")


@settings(max_examples=300)
@given(u32, st.integers(0, 255), st.integers(0, 255), st.booleans())
def test_heartbeat_06_against_the_dbc(axis_error, state, result, done):
    data = _message("0.6", 0, "Heartbeat").encode(
        {"Axis_Error": axis_error, "Axis_State": state, "Procedure_Result": result,
         "Trajectory_Done_Flag": int(done)}, scaling=False)
    hb = _odrive.unpack_heartbeat(data, "0.6")
    assert (hb["axis_error"], hb["axis_state"], hb["procedure_result"], hb["trajectory_done"]) == \
        (axis_error, state, result, int(done))
    assert _odrive.pack_heartbeat("0.6", axis_error, state, result, trajectory_done=done) == data


@settings(max_examples=300)
@given(u32, st.integers(0, 255), st.booleans(), st.booleans(), st.booleans(), st.booleans())
def test_heartbeat_05_against_the_dbc(axis_error, state, motor, encoder, controller, done):
    data = _message("0.5", 0, "Heartbeat").encode(
        {"Axis_Error": axis_error, "Axis_State": state, "Motor_Error_Flag": int(motor),
         "Encoder_Error_Flag": int(encoder), "Controller_Error_Flag": int(controller),
         "Trajectory_Done_Flag": int(done)}, scaling=False)
    hb = _odrive.unpack_heartbeat(data, "0.5")
    assert (hb["axis_error"], hb["axis_state"], hb["motor_error_flag"], hb["encoder_error_flag"],
            hb["controller_error_flag"], hb["trajectory_done"]) == \
        (axis_error, state, int(motor), int(encoder), int(controller), int(done))
    assert _odrive.pack_heartbeat("0.5", axis_error, state, motor_error_flag=motor, encoder_error_flag=encoder,
                                  controller_error_flag=controller, trajectory_done=done) == data


@pytest.mark.parametrize("fw, name, lo, hi", [
    ("0.6", "Get_Encoder_Estimates", "Pos_Estimate", "Vel_Estimate"),
    ("0.5", "Get_Encoder_Estimates", "Pos_Estimate", "Vel_Estimate"),
    ("0.6", "Get_Torques", "Torque_Target", "Torque_Estimate"),
    ("0.6", "Get_Temperature", "FET_Temperature", "Motor_Temperature"),
    ("0.5", "Get_Iq", "Iq_Setpoint", "Iq_Measured"),
    ("0.6", "Get_Bus_Voltage_Current", "Bus_Voltage", "Bus_Current")])
@settings(max_examples=60)
@given(a=f32, b=f32)
def test_float_pairs_against_the_dbc(fw, name, lo, hi, a, b):
    msg = _message(fw, 2, name)
    data = msg.encode({lo: a, hi: b})
    assert _odrive.unpack_f32_pair(data) == (a, b)
    assert _odrive.pack_f32_pair(a, b) == data


def test_get_error_06_against_the_dbc():
    data = _message("0.6", 0, "Get_Error").encode({"Active_Errors": 0x200, "Disarm_Reason": 0x1000000},
                                                  scaling=False)
    assert _odrive.unpack_u32_pair(data) == (0x200, 0x1000000)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, 3.5e38, -1e300])
def test_non_finite_or_beyond_binary32_torque_is_refused(bad):
    with pytest.raises(ValueError, match="input_torque"):
        _odrive.pack_set_input_torque(bad)


def test_short_frames_are_refused():
    with pytest.raises(ValueError):
        _odrive.unpack_heartbeat(b"\x00" * 7, "0.6")
    with pytest.raises(ValueError):
        _odrive.unpack_f32_pair(b"\x00" * 4)


def test_error_names_are_the_dbcs_value_tables():
    for fw, sig_msg in (("0.5", "Heartbeat"), ("0.6", "Heartbeat")):
        choices = _message(fw, 0, sig_msg).get_signal_by_name("Axis_Error").choices
        table = {int(k): str(v) for k, v in choices.items() if int(k)}
        assert _odrive.AXIS_ERRORS[fw] == table


# --- the codec --------------------------------------------------------------------------------

TRANSMISSION = (7.0, 0.95, -1.0, 0.1)    # ratio, efficiency, direction, motor_zero_rad


def _codec(fw="0.6", node=3, limit=3.3, kt=0.0827):
    codec = _odrive.OdriveCodec(node, fw, limit, 250.0, 0.05, kt)
    codec.configure_transmission(*TRANSMISSION)
    return codec


def test_codec_capabilities():
    c6, c5 = _codec("0.6"), _codec("0.5")
    assert c6.name == "odrive" and not c6.impedance
    assert c6.reads("temperature") and not c5.reads("temperature")      # 0.5 has no temperature frame
    assert all(c.reads(r) for c in (c5, c6) for r in ("angle", "velocity", "torque", "error", "supply"))
    assert c6.tx_id == _message("0.6", 3, "Set_Input_Torque").frame_id
    assert set(c6.rx_ids) == {_message("0.6", 3, n).frame_id for n in (
        "Heartbeat", "Get_Error", "Get_Encoder_Estimates", "Get_Bus_Voltage_Current", "Get_Torques",
        "Get_Temperature")}
    assert _message("0.5", 3, "Get_Iq").frame_id in c5.rx_ids
    assert _odrive.can_id(3, 0x1C) not in c5.rx_ids     # 0.5's 0x1C is Get_ADC_Voltage


@settings(max_examples=300)
@given(st.floats(-1e4, 1e4, allow_nan=False), st.sampled_from(FIRMWARES))
def test_codec_encodes_the_whole_ankle_torque_clamped(torque_ff, fw):
    codec = _codec(fw)
    ratio, eff, direction, _ = TRANSMISSION
    frames = codec.encode_command(torque_ff, 0.0, 0.0, 0.0, 0.0)
    expected = max(-3.3, min(3.3, -torque_ff / (direction * ratio * eff)))
    assert frames == [(_message(fw, 3, "Set_Input_Torque").frame_id,
                       _message(fw, 3, "Set_Input_Torque").encode({"Input_Torque": expected}))]


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_codec_sends_nothing_for_a_non_finite_command(bad):
    assert _codec().encode_command(bad, 0.0, 0.0, 0.0, 0.0) == []


def test_codec_sends_nothing_before_a_transmission_is_set():
    codec = _odrive.OdriveCodec(3, "0.6", 3.3, 250.0, 0.05)
    assert codec.encode_command(1.0, 0.0, 0.0, 0.0, 0.0) == []


@settings(max_examples=200)
@given(f32.filter(lambda x: abs(x) < 1e6), f32.filter(lambda x: abs(x) < 1e6), st.sampled_from(FIRMWARES))
def test_codec_decodes_encoder_estimates_turns_exactly(pos, vel, fw):
    codec = _codec(fw)
    data = _message(fw, 3, "Get_Encoder_Estimates").encode({"Pos_Estimate": pos, "Vel_Estimate": vel})
    got = codec.decode_frame(_odrive.can_id(3, 0x09), data, 12.5)
    ratio, _, direction, zero = TRANSMISSION
    assert got["motor_angle_rad"] == pos * (2 * math.pi) / (direction * ratio) - zero
    assert got["motor_vel_rad_s"] == vel * (2 * math.pi) / (direction * ratio)
    assert got["motor_rx_s"] == 12.5


def test_only_the_encoder_frame_stamps_motor_rx_s():
    codec = _codec("0.6")
    for name, sig in (("Get_Torques", {"Torque_Target": 0.0, "Torque_Estimate": 1.0}),
                      ("Get_Temperature", {"FET_Temperature": 40.0, "Motor_Temperature": 50.0}),
                      ("Get_Bus_Voltage_Current", {"Bus_Voltage": 24.0, "Bus_Current": 1.0}),
                      ("Heartbeat", {"Axis_Error": 0, "Axis_State": 8, "Procedure_Result": 0,
                                     "Trajectory_Done_Flag": 0})):
        m = _message("0.6", 3, name)
        got = codec.decode_frame(m.frame_id, m.encode(sig, scaling=False), 9.0)
        assert got is not None and got["motor_rx_s"] == -1.0, name


def test_codec_torque_temperature_supply():
    ratio, eff, direction, _ = TRANSMISSION
    c6 = _codec("0.6")
    m = _message("0.6", 3, "Get_Torques")
    assert c6.decode_frame(m.frame_id, m.encode({"Torque_Target": 2.0, "Torque_Estimate": 1.5}))[
        "motor_torque_Nm"] == pytest.approx(-direction * ratio * eff * 1.5)
    m = _message("0.6", 3, "Get_Temperature")
    for fet, motor, want in ((40.0, 55.0, 55.0), (61.0, 55.0, 61.0), (40.0, math.nan, 40.0),
                             (math.nan, math.nan, math.nan)):
        got = c6.decode_frame(m.frame_id, _odrive.pack_f32_pair(fet, motor))["motor_temp_C"]
        assert got == want or (math.isnan(want) and math.isnan(got))
    m = _message("0.6", 3, "Get_Bus_Voltage_Current")
    assert c6.decode_supply(m.frame_id, m.encode({"Bus_Voltage": 23.5, "Bus_Current": 2.0})) == 23.5
    c5 = _codec("0.5", kt=0.0306)
    m = _message("0.5", 3, "Get_Iq")
    assert c5.decode_frame(m.frame_id, m.encode({"Iq_Setpoint": 0.0, "Iq_Measured": 10.0}))[
        "motor_torque_Nm"] == pytest.approx(-direction * ratio * eff * 0.306)


def test_0_5_needs_a_torque_constant():
    with pytest.raises(ValueError, match="torque_constant"):
        _odrive.OdriveCodec(3, "0.5", 2.0, 250.0, 0.05)


@pytest.mark.parametrize("fw, axis_error, state, flags, want", [
    ("0.6", 0, 8, {}, 0),
    ("0.6", 0, 1, {}, _odrive.CODE_NOT_RUNNING),
    ("0.6", 0x1000000, 1, {}, 0x1000000 | _odrive.CODE_NOT_RUNNING),
    ("0.6", 0x200, 8, {}, 0x200),
    ("0.6", 0x80000000, 8, {}, _odrive.CODE_NOT_RUNNING),        # bit 31 never reads as none
    ("0.5", 0x800, 1, {}, 0x800 | _odrive.CODE_NOT_RUNNING),
    ("0.5", 0, 8, {"motor_error_flag": True}, 0x40),
    ("0.5", 0, 8, {"encoder_error_flag": True}, 0x100)])
def test_heartbeat_error_codes(fw, axis_error, state, flags, want):
    codec = _codec(fw)
    got = codec.decode_frame(_odrive.can_id(3, 1), _odrive.pack_heartbeat(fw, axis_error, state, **flags))
    assert got["motor_error"] == want
    assert (codec.describe_error(want) == "none") == (want == 0)


def test_describe_error_names_bits_per_firmware():
    assert "WATCHDOG_TIMER_EXPIRED" in _odrive.describe_error(0x1000000 | _odrive.CODE_NOT_RUNNING, "0.6")
    assert "CLOSED_LOOP_CONTROL" in _odrive.describe_error(0x1000000 | _odrive.CODE_NOT_RUNNING, "0.6")
    assert "WATCHDOG_TIMER_EXPIRED" in _odrive.describe_error(0x800, "0.5")
    assert "WATCHDOG" not in _odrive.describe_error(0x800, "0.6")       # 0x800 is another bit on 0.6


def test_get_error_keeps_motor_error_until_the_drive_says_none():
    codec = _codec("0.6")
    err = _odrive.can_id(3, 0x03)
    assert codec.decode_frame(err, struct.pack("<II", 0x20, 0))["motor_error"] == 0x20
    # a clean heartbeat does not hide an error Get_Error still reports
    assert codec.decode_frame(_odrive.can_id(3, 1), _odrive.pack_heartbeat("0.6", 0, 8))["motor_error"] == 0x20
    assert codec.decode_frame(err, struct.pack("<II", 0, 0))["motor_error"] == 0


def test_codec_ignores_other_nodes_and_short_frames():
    codec = _codec("0.6", node=3)
    assert codec.decode_frame(_odrive.can_id(4, 9), _odrive.pack_f32_pair(1, 1)) is None
    assert codec.decode_frame(_odrive.can_id(3, 9), b"\x00" * 4) is None


# --- set-up against the simulated drive --------------------------------------------------------

class Bench:
    """A simulated ODrive on a plant, reached over an in-process link through LinkBus."""

    def __init__(self, **drive_options):
        self.plant = build_plant({})
        self.drive = OdriveSimDrive(self.plant, **drive_options)
        self.host_link, self.sim_link = memory_link_pair(4096)
        self.bus = LinkBus(self.host_link)
        self._stop = threading.Event()
        self._stop = threading.Event()

    def _take(self, now_s):
        due = 0
        while True:
            got = self.sim_link.receive()
            if got is None:
                return due
            can_id, data, flags = got
            due += self.drive.receive_frame(can_id, data, now_s, bool(flags & _REMOTE))

    def _commissioning(self):
        # as the harness: the plant does not move, every frame answered at once
        while not self._stop.is_set():
            due = self._take(self.plant.state[0])
            if due:
                self.plant.settle_driver()
                for can_id, data in self.drive.respond_frames(due, self.plant.state[0], False):
                    self.sim_link.transmit(can_id, data)
            time.sleep(0.0002)
        self._take(self.plant.state[0])     # what the host sent last (its way out) arrives too

    def _realtime(self):
        # the plant follows the wall clock; the drive's cyclic frames go out
        t0 = time.monotonic() - self.plant.state[0]
        while not self._stop.is_set():
            now = time.monotonic() - t0
            due = self._take(now)
            self.plant.advance(now)
            for can_id, data in self.drive.respond_frames(due, now, True):
                self.sim_link.transmit(can_id, data)
            time.sleep(0.0002)
        self._take(time.monotonic() - t0)

    @contextlib.contextmanager
    def serving(self, realtime):
        self._stop.clear()
        failed = []

        def serve():
            try:
                (self._realtime if realtime else self._commissioning)()
            except BaseException as e:          # the test must see it, not a timeout
                failed.append(e)
        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            thread.join()
            self.bus.shutdown()
        if failed:
            raise failed[0]

    def driver(self, model=None, **options):
        return OdriveDriver(self.bus, self.drive.node_id, model or DEFAULT_MODEL, **options)


def _model_of(fw):
    return next(name for name, row in ODRIVE_MODELS.items() if row.firmware == fw)


@pytest.mark.realtime      # the plant follows the wall clock; verify() times the frames it sends
@pytest.mark.parametrize("fw", FIRMWARES)
def test_set_up_activate_verify_deactivate_in_real_time(fw):
    model = _model_of(fw)
    bench = Bench(model=model)
    with bench.serving(realtime=True):
        driver = bench.driver(model)
        driver.configure()
        driver.activate(timeout_s=0.5)
        assert bench.drive.axis_state == _odrive.STATE_CLOSED_LOOP_CONTROL
        assert bench.drive.control_mode == _odrive.CONTROL_MODE_TORQUE
        result = driver.verify(timeout_s=1.0)
        # the watchdog did expire during verify, and closed loop was entered again
        assert bench.drive.watchdog_trips == 1
        assert bench.drive.axis_state == _odrive.STATE_CLOSED_LOOP_CONTROL and bench.drive.axis_error == 0
        assert result["encoder_period_s"] > 0
        assert driver.state is DriverState.ACTIVE
        for msg in driver.hold_messages():
            assert msg.arbitration_id == _odrive.can_id(bench.drive.node_id, 0x0E)
        driver.deactivate(timeout_s=0.5)
        assert bench.drive.axis_state == _odrive.STATE_IDLE and not bench.plant.driver_active
    codec = odrive_codec(driver)
    assert codec.firmware_name == fw and codec.torque_limit_Nm == ODRIVE_MODELS[model].torque_limit_Nm


def test_activate_in_commissioning_as_the_harness_does():
    bench = Bench()
    with bench.serving(realtime=False):
        driver = bench.driver()
        driver.configure()
        driver.activate(timeout_s=0.5)
        assert bench.plant.driver_active
        driver.deactivate(timeout_s=0.5)
    assert not bench.plant.driver_active


def test_wrong_control_mode_is_refused_in_one_line():
    bench = Bench(follows_controller_mode=False)
    with bench.serving(realtime=False):
        driver = bench.driver()
        driver.configure()
        with pytest.raises(ConfigError) as e:
            driver.activate(timeout_s=0.3)
    text = str(e.value)
    assert "\n" not in text and text.startswith("axis0.controller.config.control_mode:")
    assert driver.state is DriverState.INACTIVE
    assert bench.drive.axis_state == _odrive.STATE_IDLE           # left disarmed


@pytest.mark.realtime      # the plant follows the wall clock; verify() times the frames it sends
def test_wrong_torque_constant_on_0_5_is_refused():
    model = _model_of("0.5")
    bench = Bench(model=model, torque_constant_Nm_A=2 * ODRIVE_MODELS[model].torque_constant_Nm_A)
    with bench.serving(realtime=True):
        driver = bench.driver(model)
        driver.configure()
        with pytest.raises(ConfigError, match=r"^axis0.motor.config.torque_constant:"):
            driver.activate(timeout_s=0.3)


@pytest.mark.realtime      # the plant follows the wall clock; verify() times the frames it sends
def test_disabled_watchdog_is_refused_in_one_line():
    bench = Bench(watchdog_s=0.0)
    with bench.serving(realtime=True):
        driver = bench.driver()
        driver.configure()
        driver.activate(timeout_s=0.5)
        with pytest.raises(ConfigError) as e:
            driver.verify(timeout_s=1.0)
    text = str(e.value)
    assert "\n" not in text and text.startswith("axis0.config.watchdog_timeout:")
    assert driver.state is DriverState.INACTIVE and bench.drive.axis_state == _odrive.STATE_IDLE


@pytest.mark.realtime      # the plant follows the wall clock; verify() times the frames it sends
def test_a_watchdog_longer_than_expected_is_refused():
    bench = Bench(watchdog_s=0.2)            # the driver expects the model's 0.05 s
    with bench.serving(realtime=True):
        driver = bench.driver()
        driver.configure()
        driver.activate(timeout_s=0.5)
        with pytest.raises(ConfigError, match=r"^axis0.config.watchdog_timeout:"):
            driver.verify(timeout_s=1.0)


@pytest.mark.parametrize("fw, setting", [("0.6", "axis0.config.can.encoder_msg_rate_ms"),
                                         ("0.5", "axis0.config.can.encoder_rate_ms")])
def test_slow_encoder_rate_is_refused_in_one_line(fw, setting):
    model = _model_of(fw)
    bench = Bench(model=model, encoder_ms=10)      # the ODrive's default; the loop needs 1 ms
    with bench.serving(realtime=True):
        driver = bench.driver(model)
        driver.configure()
        driver.activate(timeout_s=0.5)
        with pytest.raises(ConfigError) as e:
            driver.verify(timeout_s=1.0)
    text = str(e.value)
    assert "\n" not in text and text.startswith(f"{setting}:")


def test_encoder_estimates_off_is_refused():
    bench = Bench(encoder_ms=0)
    with bench.serving(realtime=True):
        driver = bench.driver()
        driver.configure()
        driver.activate(timeout_s=0.5)
        with pytest.raises(ConfigError, match=r"^axis0.config.can.encoder_msg_rate_ms: 0 Get_Encoder"):
            driver.verify(timeout_s=0.3)


def test_an_axis_error_at_activation_is_a_driver_fault():
    bench = Bench()
    bench.plant.error_code = 4                      # under-voltage, injected
    with bench.serving(realtime=False):
        driver = bench.driver()
        driver.configure()
        with pytest.raises(DriverFault, match="DC_BUS_UNDER_VOLTAGE"):
            driver.activate(timeout_s=0.3)
    assert driver.state is DriverState.INACTIVE


@pytest.mark.parametrize("options, field", [
    ({"loop_period_s": 0.0}, "loop_period_s"), ({"torque_limit_Nm": 100.0}, "torque_limit_Nm"),
    ({"watchdog_s": math.nan}, "watchdog_s"), ({"encoder_frames": 2}, "encoder_frames"),
    ({"colour": "red"}, "colour")])
def test_bad_options_are_refused_naming_the_option(options, field):
    bench = Bench()
    with pytest.raises(ConfigError, match=rf"^{field}:"):
        bench.driver(**options)
    with pytest.raises(ConfigError, match=r"^model:"):
        bench.driver("ODrive Mini")
    with pytest.raises(ConfigError, match=r"^driver_id:"):
        OdriveDriver(bench.bus, 64)


def test_torque_limit_for_uses_the_table():
    for model, row in ODRIVE_MODELS.items():
        assert OdriveDriver.torque_limit_for(model) == row.torque_limit_Nm
    assert OdriveDriver.torque_limit_for(DEFAULT_MODEL, torque_limit_Nm=1.0) == 1.0


# --- the simulated drive's quirks --------------------------------------------------------------

def _arm(drive, t):
    node = drive.node_id
    drive.receive_frame(_odrive.can_id(node, 0x0B), _odrive.pack_set_controller_mode(1, 1), t)
    drive.receive_frame(_odrive.can_id(node, 0x07), _odrive.pack_set_axis_state(8), t)


@pytest.mark.parametrize("fw", FIRMWARES)
def test_watchdog_expiry_latches_until_clear_errors_and_closed_loop(fw):
    plant = build_plant({})
    drive = OdriveSimDrive(plant, model=_model_of(fw))
    node = drive.node_id
    _arm(drive, 0.0)
    assert drive.axis_state == 8 and plant.driver_active
    drive.check(0.04)
    assert drive.axis_state == 8
    drive.check(0.06)                              # 0.05 s without a frame
    bit = 0x800 if fw == "0.5" else 0x1000000
    assert drive.axis_state == 1 and drive.axis_error & bit and not plant.driver_active
    # commands do not re-arm it, nor does closed loop without Clear_Errors
    drive.receive_frame(_odrive.can_id(node, 0x0E), _odrive.pack_set_input_torque(1.0), 0.07)
    drive.receive_frame(_odrive.can_id(node, 0x07), _odrive.pack_set_axis_state(8), 0.07)
    assert drive.axis_state == 1
    drive.receive_frame(_odrive.can_id(node, 0x18), _odrive.pack_clear_errors(fw), 0.08)
    drive.receive_frame(_odrive.can_id(node, 0x07), _odrive.pack_set_axis_state(8), 0.08)
    assert drive.axis_state == 8 and drive.axis_error == 0


@pytest.mark.parametrize("fw, answered", [("0.6", True), ("0.5", False)])
def test_heartbeat_rtr_is_answered_on_0_6_only(fw, answered):
    drive = OdriveSimDrive(build_plant({}), model=_model_of(fw))
    hb_id = _odrive.can_id(drive.node_id, 0x01)
    due = drive.receive_frame(hb_id, b"", 0.0, remote=True)
    frames = drive.respond_frames(due, 0.0, cyclic=False)
    assert (frames != []) == answered
    enc_id = _odrive.can_id(drive.node_id, 0x09)
    due = drive.receive_frame(enc_id, b"", 0.0, remote=True)
    assert [i for i, _ in drive.respond_frames(due, 0.0, cyclic=False)] == [enc_id]


def test_cyclic_frames_at_their_periods_decode_through_the_codec():
    plant = build_plant({})
    drive = OdriveSimDrive(plant, encoder_ms=1, heartbeat_ms=100, torque_ms=5)
    codec = odrive_codec(OdriveDriver(LinkBus(memory_link_pair(16)[0]), drive.node_id))
    codec.configure_transmission(7.0, 0.95, 1.0, 0.0)
    counts = {}
    for k in range(200):                            # 0.2 s in 1 ms steps
        for can_id, data in drive.respond_frames(0, k * 1e-3, True):
            counts[can_id & 0x1F] = counts.get(can_id & 0x1F, 0) + 1
            assert codec.decode_frame(can_id, data, k * 1e-3) is not None, hex(can_id)
    assert counts[0x09] == 200 and counts[0x01] == 2 and counts[0x1C] == 40


def test_injected_error_disarms_and_reaches_motor_error():
    plant = build_plant({})
    drive = OdriveSimDrive(plant)
    _arm(drive, 0.0)
    plant.error_code = 5                             # encoder fault (catalogue code)
    (can_id, data), = drive.respond_frames(
        drive.receive_frame(_odrive.can_id(drive.node_id, 0x01), b"", 0.001, remote=True), 0.001, False)
    codec = _codec("0.6", node=drive.node_id)
    code = codec.decode_frame(can_id, data)["motor_error"]
    assert code > 0 and "MISSING_ESTIMATE" in codec.describe_error(code)
    assert drive.axis_state == 1 and not plant.driver_active


def test_torque_in_closed_loop_reaches_the_plant_clamped():
    plant = build_plant({})
    drive = OdriveSimDrive(plant)
    _arm(drive, 0.0)
    drive.receive_frame(_odrive.can_id(drive.node_id, 0x0E), _odrive.pack_set_input_torque(100.0), 0.0)
    plant.settle_driver()
    assert drive.input_torque_Nm == drive.torque_limit_Nm
    due = drive.receive_frame(_odrive.can_id(drive.node_id, 0x1C), b"", 0.0, remote=True)
    (_, data), = drive.respond_frames(due, 0.0, False)
    target, estimate = _odrive.unpack_f32_pair(data)
    assert target == pytest.approx(drive.torque_limit_Nm) and estimate == pytest.approx(drive.torque_limit_Nm)


def test_unknown_sim_option_is_refused():
    with pytest.raises(ValueError, match="colour"):
        OdriveSimDrive(build_plant({}), colour="red")


# --- lock-step on the whole stack (sim.harness) ------------------------------------------------

from sim._odrive_sim import SIM_PARAMS, SIM_PLANT_OVERRIDES   # noqa: E402


@pytest.fixture
def odrive_row(monkeypatch):
    """The drive table's "odrive" row (main adds it; until then the same row, for this test)."""
    from hal import drives
    if "odrive" not in drives.DRIVES:
        monkeypatch.setitem(drives.DRIVES, "odrive", drives.DriveEntry(
            setup="hal.odrive:OdriveDriver", codec="hal.odrive:odrive_codec",
            sim="sim._odrive_sim:OdriveSimDrive", models="hal.odrive:ODRIVE_MODELS",
            description="ODrive (S1, Pro, v3.6), CAN Simple, torque control", sim_model=DEFAULT_MODEL))
    return "odrive"


def _lockstep(duration_s, faults=()):
    from controller.params.registry import ParamSet
    from sim.harness import run
    from sim.evaluation import summary
    r = run(duration_s=duration_s, params=ParamSet().with_values(SIM_PARAMS), driver="odrive",
            plant_overrides=SIM_PLANT_OVERRIDES, faults=faults)
    return r, summary(r, scenario="steady", speed_m_s=1.25, seed=0)


def test_lockstep_walk_on_the_odrive(odrive_row):
    r, s = _lockstep(30.0)
    assert r.driver == "odrive" and not r.codec.impedance
    assert s["strides_walking"] >= 20 and s["missed_heel_strikes"] == 0 and s["false_heel_strikes"] == 0
    assert s["torque_limit_violations"] == 0 and s["final_mode"] == "walk"
    assert abs(s["net_work_J_per_kg"] - s["work_target_J_kg"]) <= 0.02, s
    assert not r.watchdog_tripped and r.shutdown_error == ""


def test_lockstep_host_hang_trips_the_axis_watchdog(odrive_row):
    from sim.faults import Injection
    r, _ = _lockstep(8.0, faults=(Injection("host_hang", 5.0),))
    assert r.watchdog_tripped
    # on simulated time: the last command went out at the tick before 5 s
    assert 5.0 < r.watchdog_trip_s <= 5.0 + ODRIVE_MODELS[DEFAULT_MODEL].watchdog_s + 0.002


def test_lockstep_drive_error_disarms_and_latches(odrive_row):
    from sim.faults import Injection
    r, s = _lockstep(8.0, faults=(Injection("driver_error", 5.0, value=2),))
    assert s["final_mode"] != "walk"
    assert "CURRENT_LIMIT_VIOLATION" in r.shutdown_error      # deactivate reports the axis error
