"""Clinical units and forgiving names at the console, as a prosthetist meets them (issue 17):
`ankle sim --console`, a real pseudo-terminal, pyserial on the other end.

Angles are typed and shown in degrees, short times in ms, fractions in %; the parameter file and
the audit log keep SI (radians, seconds) as before.  A mistyped command or parameter gets its
nearest match; names are case-insensitive; every help line fits an 80-column terminal."""
from __future__ import annotations

import math
import re

import pytest

from controller.console.audit import read as read_audit
from controller.params import store as paramstore
from conftest import sim_console

PIN = "2468"


@pytest.fixture(scope="module")
def console(tmp_path_factory):
    state = tmp_path_factory.mktemp("console-units")
    with sim_console(state, PIN, "--duration", "300") as (term, _):
        assert term.cmd(f"login {PIN}").startswith("prosthetist")
        yield term, state


def _last_set(state, name):
    return [r for r in read_audit(state / "audit.log") if r["action"] == "set" and r["parameter"] == name][-1]


def test_an_angle_set_in_degrees_is_shown_in_degrees_and_stored_in_radians(console):
    term, state = console
    out = term.cmd("set swing.target_rad 3 deg")
    assert "swing.target_rad = 3 deg (was 2.86 deg)" in out, out
    assert term.cmd("get swing.target_rad").startswith("swing.target_rad (toe clearance angle in swing) = 3 deg")
    record = _last_set(state, "swing.target_rad")
    assert (float(record["old"]), float(record["new"])) == (0.05, math.radians(3)), record   # SI, as before
    assert "saved to" in term.cmd("save")
    assert paramstore.load(state / "ankle.params").params["swing.target_rad"] == math.radians(3)
    # the value shown, typed back, is the value stored: 2.86 deg is the step grid's 0.05 rad
    assert "swing.target_rad = 2.86 deg (was 3 deg)" in term.cmd("set swing.target_rad 2.86")
    assert _last_set(state, "swing.target_rad")["new"] == "0.05"
    assert "swing.target_rad = 3.44 deg (was 2.86 deg)" in term.cmd("set swing.target_rad 0.06 rad")   # SI still taken
    assert _last_set(state, "swing.target_rad")["new"] == "0.06"


@pytest.mark.parametrize("line, shown, stored", [
    ("set pushoff.torque_Nm_kg 0.62 Nm/kg", "0.62 N·m/kg", 0.62),
    ("set pushoff.torque_Nm_kg 0.6 N.m/kg", "0.6 N·m/kg", 0.6),
    ("set pushoff.torque_Nm_kg 0.61 N·m/kg", "0.61 N·m/kg", 0.61),
    ("set pushoff.torque_Nm_kg 0.63 N*m/kg", "0.63 N·m/kg", 0.63),
    ("set estimator.event_hold_s 5 ms", "5 ms", 0.005),
    ("set estimator.event_hold_s 4ms", "4 ms", 0.004),
    ("set pushoff.rise_s 150 ms", "150 ms", 0.15),
    ("set pushoff.adapt_rate 40 %", "40 %", 0.4),
    ("set pushoff.adapt_rate 45%", "45 %", 0.45),
    ("set swing.stiffness_Nm_rad 45Nm/rad", "45 N·m/rad", 45.0),        # the live ones: the wearer walks
    ("set swing.target_rad 2°", "2 deg", math.radians(2)),
    ("set swing.target_rad 4.5 degrees", "4.5 deg", math.radians(4.5)),
])
def test_clinical_spellings_are_taken(console, line, shown, stored):
    term, state = console
    out = term.cmd(line)
    name = line.split()[1]
    assert f"{name} = {shown} (was " in out, out
    assert float(_last_set(state, name)["new"]) == stored


@pytest.mark.parametrize("line, expected", [
    ("set pushoff.torque_Nm_kg 0,62", "use a decimal point: 0.62"),
    ("set swing.target_rad 30 deg", "is out of range [-5.73, 11.46] deg"),
    ("set pushoff.rise_s 2 kg", "pushoff.rise_s is in ms (or s), got unit 'kg'"),
    ("set pushoff.rise_s abc", "needs a number in [50, 400] ms"),
])
def test_bad_values_get_one_line_in_the_clinical_unit_and_change_nothing(console, line, expected):
    term, _ = console
    before = term.cmd("diff")
    out = term.cmd(line)
    assert expected in out and out.count("\n") == 0, out
    assert term.cmd("diff") == before


def test_a_mistyped_command_parameter_or_group_gets_its_nearest(console):
    term, _ = console
    assert term.cmd("stauts") == "unknown command 'stauts'; did you mean 'status'? 'help' lists all"
    assert "did you mean 'pushoff.torque_Nm_kg'?" in term.cmd("get pushoff.torque_nm_kgg")
    assert "did you mean 'pushoff'?" in term.cmd("params pushof")
    assert "did you mean 'symmetry'?" in term.cmd("help symetry")


def test_names_are_case_insensitive(console):
    term, _ = console
    assert term.cmd("get Pushoff.Torque_Nm_kg").startswith("pushoff.torque_Nm_kg (push-off strength) = ")
    assert term.cmd("STATUS").splitlines()[0].startswith("mode ")
    assert term.cmd("params SWING").startswith("swing.target_rad")


def test_every_line_shows_units_and_labels(console):
    term, _ = console
    out = term.cmd("params estimator")
    assert re.search(r"^estimator\.event_hold_s\s+debounce time of heel strike and toe-off\s+= \d+ ms\s+"
                     r"\[0 \.\. 50\] ms\r?$", out, re.M), out
    get = term.cmd("get stance.equilibrium_rad").splitlines()[0]
    assert get.startswith("stance.equilibrium_rad (stance spring's neutral angle) = 0 deg (factory 0 deg, ")
    assert "range [-11.46 .. 11.46] deg, step 0.57 deg" in get
    diff = term.cmd("diff")
    assert re.search(r"^swing\.target_rad\s+\S+ deg\s", diff, re.M), diff


def test_help_fits_80_columns_and_symmetry_has_readable_headers(console):
    term, _ = console
    lines = term.cmd("help").splitlines()
    for name in [w.split()[0] for w in lines if w and not w.startswith(" ")]:
        lines += term.cmd(f"help {name}").splitlines()
    assert len(lines) > 40
    assert all(len(line) <= 80 for line in lines), [line for line in lines if len(line) > 80]


# ------------------------------------------------------------------ controller/console/units.py alone
from decimal import Decimal  # noqa: E402

from hypothesis import given, settings, strategies as st  # noqa: E402

from controller.console import units  # noqa: E402
from controller.params.registry import KNOWN_UNITS, REGISTRY, ParamError, by_name  # noqa: E402

_GRID = [(p, v) for p in REGISTRY for v in units.grid(p)]


def test_every_parameter_has_a_deliberate_clinical_unit_and_a_label():
    for p in REGISTRY:
        assert p.clinical is not None and p.label.strip(), p.name
        assert (p.unit, p.clinical) in units.CONVERSIONS, (p.name, p.unit, p.clinical)
        assert p.unit in KNOWN_UNITS
    chosen = {p.name: p.clinical for p in REGISTRY}
    assert chosen["swing.target_rad"] == chosen["safety.soft_dorsi_rad"] == "deg"
    assert chosen["estimator.event_hold_s"] == chosen["pushoff.rise_s"] == "ms"
    assert chosen["estimator.min_stride_s"] == "s"                 # stride times stay in s
    assert chosen["actuator.efficiency"] == "%" and chosen["pushoff.torque_Nm_kg"] == "N·m/kg"
    assert not [p.name for p in REGISTRY if units.clinical_unit(p) == "1"]   # "1" is never shown


@settings(max_examples=3000, deadline=None)
@given(st.sampled_from(_GRID), st.booleans())
def test_what_is_shown_typed_back_is_the_value_stored_on_every_grid_point(point, with_unit):
    p, value = point
    shown = units.format_with_unit(p, value) if with_unit else units.format_value(p, value)
    back = units.parse(p, shown)
    assert back == value and type(back) is type(value), (p.name, value, shown, back)


def test_every_grid_point_of_every_parameter_round_trips():
    """The hypothesis test above samples; this walks all of them (a few thousand)."""
    bad = [(p.name, v, units.format_value(p, v)) for p, v in _GRID
           if units.parse(p, units.format_value(p, v)) != v]
    assert not bad, bad[:10]
    assert len(_GRID) > 5000


@given(st.sampled_from(REGISTRY).flatmap(lambda p: st.tuples(st.just(p), st.floats(p.min, p.max))))
def test_any_value_in_range_is_shown_within_its_last_digit(case):
    p, value = case
    if p.kind is int:
        value = int(round(value))
    back = units.parse(p, units.format_value(p, value))
    step_si = p.step * 10.0 ** -units.EXTRA_DECIMALS
    assert abs(back - value) <= step_si, (p.name, value, units.format_value(p, value), back)


@pytest.mark.parametrize("name, typed, stored", [
    ("pushoff.torque_Nm_kg", "0.62 Nm/kg", 0.62),
    ("pushoff.torque_Nm_kg", "0.62 N.m/kg", 0.62),
    ("pushoff.torque_Nm_kg", "0.62 N·m/kg", 0.62),
    ("pushoff.torque_Nm_kg", "0.62 N*m/kg", 0.62),
    ("pushoff.torque_Nm_kg", "0.62 [N*m/kg]", 0.62),
    ("pushoff.torque_Nm_kg", "0.62", 0.62),
    ("safety.max_torque_Nm", "100 Nm", 100.0),
    ("safety.max_torque_Nm", "100Nm", 100.0),
    ("swing.damping_Nms_rad", "1.2 Nms/rad", 1.2),
    ("swing.target_rad", "3 deg", math.radians(3)),
    ("swing.target_rad", "3deg", math.radians(3)),
    ("swing.target_rad", "3°", math.radians(3)),
    ("swing.target_rad", "3 °", math.radians(3)),
    ("swing.target_rad", "3 degrees", math.radians(3)),
    ("swing.target_rad", "3 Deg", math.radians(3)),
    ("swing.target_rad", "3", math.radians(3)),
    ("swing.target_rad", "0.05 rad", 0.05),
    ("swing.target_rad", "0.05 [rad]", 0.05),
    ("swing.target_rad", "2.86", 0.05),                   # shown for the grid's 0.05 rad
    ("swing.target_rad", "2.9", math.radians(2.9)),       # not how a grid point shows: as typed
    ("swing.target_rad", "4", math.radians(4.0)),         # 4 deg is 4 deg (0.07 rad shows as 4.01)
    ("estimator.quiet_gyro_rad_s", "10 deg/s", math.radians(10)),
    ("estimator.quiet_gyro_rad_s", "10 °/s", math.radians(10)),
    ("estimator.event_hold_s", "5 ms", 0.005),
    ("estimator.event_hold_s", "5ms", 0.005),
    ("estimator.event_hold_s", "0.005 s", 0.005),
    ("pushoff.rise_s", "150 ms", 0.15),
    ("pushoff.rise_s", "150", 0.15),
    ("pushoff.rise_s", "152.5", 0.1525),
    ("actuator.efficiency", "92 %", 0.92),
    ("actuator.efficiency", "92%", 0.92),
    ("actuator.efficiency", "0.92 1", 0.92),              # its SI "unit" still taken
    ("estimator.heel_strike_load_bw", "15 % BW", 0.15),
    ("estimator.heel_strike_load_bw", "15 %BW", 0.15),
    ("estimator.heel_strike_load_bw", "15 %", 0.15),
    ("estimator.heel_strike_load_bw", "15 % body weight", 0.15),
    ("estimator.heel_strike_load_bw", "0.15 BW", 0.15),
    ("pushoff.peak_stance", "90 % of stance", 0.9),
    ("pushoff.peak_stance", "0.9 stance", 0.9),
    ("wearer.mass_kg", "72kg", 72.0),
    ("wearer.mass_kg", "72 KG", 72.0),
    ("wearer.mass_kg", "72.3", 72.3),
    ("thermal.ambient_degC", "30 °C", 30.0),
    ("thermal.ambient_degC", "30 degC", 30.0),
    ("safety.imu_accel_limit_m_s2", "100 m/s^2", 100.0),
    ("safety.imu_accel_limit_m_s2", "100 m/s²", 100.0),
    ("symmetry.window_strides", "12 strides", 12),
    ("symmetry.window_strides", "12", 12),
    ("actuator.direction", "+1", 1),
])
def test_the_usual_spellings_are_taken(name, typed, stored):
    value = units.parse(by_name(name), typed)
    assert value == stored and type(value) is type(stored), value


@pytest.mark.parametrize("name, typed, message", [
    ("pushoff.torque_Nm_kg", "0,62", "pushoff.torque_Nm_kg: use a decimal point: 0.62"),
    ("pushoff.torque_Nm_kg", "0,62 Nm/kg", "pushoff.torque_Nm_kg: use a decimal point: 0.62"),
    ("wearer.mass_kg", ",5", "wearer.mass_kg: use a decimal point: 0.5"),
    ("pushoff.torque_Nm_kg", "9", "pushoff.torque_Nm_kg = 9 N·m/kg is out of range [0, 1.5] N·m/kg"),
    ("swing.target_rad", "30 deg", "swing.target_rad = 30 deg is out of range [-5.73, 11.46] deg"),
    ("swing.target_rad", "0.5 rad", "swing.target_rad = 0.5 rad is out of range [-5.73, 11.46] deg"),
    ("pushoff.rise_s", "2 kg", "pushoff.rise_s is in ms (or s), got unit 'kg'"),
    ("pushoff.torque_Nm_kg", "0.6 rad", "pushoff.torque_Nm_kg is in N·m/kg, got unit 'rad'"),
    ("estimator.prior_weight", "2 kg", "estimator.prior_weight has no unit, got unit 'kg'"),
    ("pushoff.rise_s", "abc", "pushoff.rise_s needs a number in [50, 400] ms, got 'abc'"),
    ("pushoff.rise_s", "0x10", "needs a number in [50, 400] ms, got '0x10'"),
    ("pushoff.rise_s", "1_00", "needs a number"),
    ("pushoff.rise_s", "１２", "needs a number"),
    ("pushoff.rise_s", "1.5.5", "needs a number"),
    ("pushoff.rise_s", "", "needs a number"),
    ("pushoff.rise_s", "nan", "needs a finite number"),
    ("pushoff.rise_s", "-inf ms", "needs a finite number"),
    ("pushoff.rise_s", "1e999", "needs a finite number"),
    ("pushoff.rise_s", "9" * 400, "needs a finite number"),
    ("actuator.direction", "0.5", "whole number"),
])
def test_bad_input_is_one_line_saying_why(name, typed, message):
    with pytest.raises(ParamError) as e:
        units.parse(by_name(name), typed)
    assert message in str(e.value) and "\n" not in str(e.value), str(e.value)


@given(st.sampled_from(REGISTRY), st.text(max_size=20))
def test_any_text_gives_a_value_in_range_or_one_line(p, text):
    try:
        value = units.parse(p, text)
    except ParamError as e:
        assert "\n" not in str(e) and str(e)
        return
    assert p.min <= value <= p.max and math.isfinite(value)


def test_ms_and_percent_convert_in_decimal():
    """150 ms stores what 0.15 s does: exact decimal, not 150 / 1000 in binary."""
    for p in REGISTRY:
        if p.clinical in ("ms", "%", "% BW", "% stance", "% stride"):
            for v in units.grid(p):
                shown = units.format_value(p, v)
                assert Decimal(shown) == Decimal(repr(v)) * units.CONVERSIONS[(p.unit, p.clinical)], (p.name, v)


# ------------------------------------------------------------------ the Console itself (no pty)
from controller.console.access import Access, PinFile  # noqa: E402
from controller.console.audit import AuditLog  # noqa: E402
from controller.console.commands import Console  # noqa: E402
from controller.console.session import OfflineBackend  # noqa: E402
from controller.params.registry import ParamSet  # noqa: E402
from controller.symmetry.strides import StrideSymmetry  # noqa: E402


class _Walked(OfflineBackend):
    """The service console's backend with strides walked (for `symmetry`)."""

    def __init__(self):
        super().__init__(ParamSet())
        nan = float("nan")
        self._strides = [StrideSymmetry(9999.9, 1.123, 107.0, 0.687, 61.2, 0.436, -0.183, 12.35, 80.0,
                                        0.5, 1.1, 0.612, 0.55, 0.57, -12.3, +4.5, "load profile", 0.95, 0),
                         StrideSymmetry(1.0, 1.1, 109.0, 0.68, 61.8, 0.42, 0.1, 2.0, 70.0, nan, nan, nan,
                                        nan, nan, nan, nan, "none", 0.0, 0)]

    def strides(self):
        return self._strides

    def latest(self):
        return {}


@pytest.fixture
def offline(tmp_path):
    pins = PinFile(tmp_path / "pin")
    pins.set(PIN)
    con = Console(_Walked(), Access(pins), AuditLog(tmp_path / "audit.log"), tmp_path / "ankle.params",
                  tmp_path / "profiles")
    assert con.handle(f"login {PIN}").startswith("prosthetist")
    return con


def test_every_help_line_of_every_command_fits_80_columns(offline):
    lines = offline.handle("help").split("\r\n")
    for name in offline.command_names():
        lines += offline.handle(f"help {name}").split("\r\n")
        assert offline.handle(f"help {name.upper()}").startswith(name)
    assert all(len(line) <= 80 for line in lines), [line for line in lines if len(line) > 80]
    listed = [line.split()[0] for line in offline.handle("help").split("\r\n") if line and line[0] != " "]
    assert listed == offline.command_names()          # continuation lines are indented, never a command


def test_symmetry_has_readable_headers_with_units_within_80_columns(offline):
    lines = offline.handle("symmetry").rstrip("\r\n").split("\r\n")
    assert "prosthetic" in lines[0] and "sound" in lines[0] and "sound side" in lines[0]
    assert lines[1].split()[:4] == ["time", "stride", "stance", "stance"]
    assert lines[2].split() == ["s", "s", "s", "s", "%", "%", "J/kg", "W/kg"]
    assert lines[3].split()[:2] == ["9999.9", "1.123"] and lines[3].endswith("load profile (0.95)")
    assert all(len(line) <= 80 for line in lines[:5]), [len(line) for line in lines]


def test_set_get_params_diff_default_and_undo_show_clinical_units(offline):
    out = offline.handle("set swing.target_rad 4.5 deg")
    assert out == ("swing.target_rad = 4.5 deg (was 2.86 deg)\r\ntakes effect when the controller next starts "
                   "from the saved file ('save' to keep it)\r\n"), out
    assert offline.backend.params()["swing.target_rad"] == math.radians(4.5)
    assert offline.handle("get SWING.TARGET_RAD").startswith(
        "swing.target_rad (toe clearance angle in swing) = 4.5 deg (factory 2.86 deg, saved -); "
        "range [-5.73 .. 11.46] deg, step 0.57 deg; may change while walking")
    assert re.search(r"^swing\.target_rad\s+toe clearance angle in swing\s+= 4\.5 deg\s+\[-5\.73 \.\. 11\.46\] deg\r$",
                     offline.handle("params swing"), re.M)
    diff = offline.handle("diff").split("\r\n")
    assert diff[0].split() == ["parameter", "now", "saved", "factory"]
    assert diff[1].split() == ["swing.target_rad", "4.5", "deg", "-", "2.86", "deg"], diff
    assert offline.handle("undo").startswith("undone: set swing.target_rad\r\nswing.target_rad = 2.86 deg (was 4.5 deg)")
    # 4 deg is 4 deg: the grid's 0.07 rad shows as 4.01 deg, so "4" is no grid point's text
    assert offline.handle("set swing.target_rad 4").startswith("swing.target_rad = 4 deg (was 2.86 deg)")
    assert offline.backend.params()["swing.target_rad"] == math.radians(4.0)
    offline.handle("set estimator.event_hold_s 7")
    assert offline.handle("default Estimator.Event_Hold_s").startswith("estimator.event_hold_s = 3 ms (was 7 ms)")
    assert offline.handle("set pushoff.torque_Nm_kg 0,62") == "pushoff.torque_Nm_kg: use a decimal point: 0.62\r\n"
    assert offline.backend.params()["pushoff.torque_Nm_kg"] == 0.54


def test_unknown_words_get_the_nearest_command_parameter_or_group(offline):
    assert offline.handle("stauts") == "unknown command 'stauts'; did you mean 'status'? 'help' lists all\r\n"
    assert "did you mean 'pushoff.torque_Nm_kg'?" in offline.handle("set pushoff.torque_nm_kgg 0.5")
    assert "did you mean 'pushoff.torque_Nm_kg'?" in offline.handle("get torque_Nm_kg")
    assert "did you mean 'pushoff.peak_stance'?" in offline.handle("default pushoff.peak")
    assert "no group 'pushof'; did you mean 'pushoff'?" in offline.handle("params pushof")
    assert "no command 'symetry'; did you mean 'symmetry'?" in offline.handle("help symetry")
    assert offline.handle("get Pushoff.Torque_Nm_kg").startswith("pushoff.torque_Nm_kg (push-off strength) = 0.54 N·m/kg")


def test_a_unit_glued_to_the_number_then_more_words_is_named_as_the_unit():
    with pytest.raises(ParamError, match=r"is in deg \(or rad\), got unit 'deg extra'"):
        units.parse(by_name("swing.target_rad"), "3deg extra")
    assert units.parse(by_name("pushoff.peak_stance"), "90% of stance") == 0.9


def test_calibrate_alone_shows_the_zeros_in_clinical_units(offline):
    out = offline.handle("calibrate").split("\r\n")
    assert out[0] == "calibration.ankle_zero_rad (ankle encoder zero) = 0 deg"
    assert out[2] == "calibration.gyro_bias_rad_s (gyro bias) = 0 deg/s"


def test_the_words_of_mode_profile_and_log_are_case_insensitive(offline):
    assert offline.handle("mode WALK").startswith("no controller is running")      # not the usage line
    assert offline.handle("profile LIST").startswith("profiles: ")
    assert offline.handle("Default ALL").startswith("nothing changes")
