"""The parameter registry: the table itself, validation, and the generated reference."""
import math
from pathlib import Path

import pytest
from hypothesis import given, strategies as st

from controller.params.registry import (KNOWN_UNITS, REGISTRY, ParamError, ParamSet, by_name, groups,
                               markdown_reference)

ROOT = Path(__file__).resolve().parents[1]


def test_registry_is_well_formed():
    names = [p.name for p in REGISTRY]
    assert len(names) == len(set(names)), "duplicate parameter names"
    for p in REGISTRY:
        assert p.unit in KNOWN_UNITS, f"{p.name}: unknown unit {p.unit}"
        assert p.min <= p.default <= p.max, p.name
        assert p.step > 0, p.name
        assert p.description.strip(), p.name
        assert "." in p.name and p.group in groups()
        p.check(p.default)  # the default itself passes its own check


def test_defaults_form_a_valid_set():
    s = ParamSet()
    assert len(s) == len(REGISTRY)
    assert s["wearer.mass_kg"] == 80.0


@pytest.mark.parametrize("name,value,fragment", [
    ("wearer.mass_kg", 500, "out of range [30, 150] kg"),
    ("safety.max_torque_Nm", float("nan"), "finite"),
    ("safety.max_torque_Nm", float("inf"), "finite"),
    ("actuator.direction", 0.5, "whole number"),
])
def test_bad_values_are_refused_with_the_reason(name, value, fragment):
    with pytest.raises(ParamError, match=fragment.replace("[", r"\[").replace("]", r"\]")):
        ParamSet({name: value})


def test_unknown_name_gets_a_hint():
    with pytest.raises(ParamError, match="unknown parameter 'pushoff.peak'.*did you mean"):
        by_name("pushoff.peak")


def test_cross_parameter_rules():
    with pytest.raises(ParamError, match="hysteresis"):
        ParamSet({"estimator.toe_off_load_bw": 0.2, "estimator.heel_strike_load_bw": 0.1})
    with pytest.raises(ParamError, match="exceeds safety.max_torque_Nm"):
        ParamSet({"pushoff.torque_Nm_kg": 1.5, "wearer.mass_kg": 120, "safety.max_torque_Nm": 110})
    with pytest.raises(ParamError, match="peak_stance < end_stance"):
        ParamSet({"pushoff.peak_stance": 0.95, "pushoff.end_stance": 0.9})
    with pytest.raises(ParamError, match="supply_min_V must be below"):
        ParamSet({"safety.supply_min_V": 22.0})
    with pytest.raises(ParamError, match="thermal thresholds"):
        ParamSet({"thermal.alert_degC": 95.0})


@pytest.mark.parametrize("value", ["80", True, b"1", None, [1.0], 10 ** 400])
def test_non_numbers_are_refused(value):
    with pytest.raises(ParamError, match="must be a number|out of range"):
        ParamSet({"wearer.mass_kg": value})


@given(st.sampled_from(REGISTRY), st.floats(allow_nan=True, allow_infinity=True))
def test_any_value_is_accepted_only_inside_its_bounds(param, value):
    try:
        s = ParamSet({param.name: value})
    except ParamError:
        inside = math.isfinite(value) and param.min <= value <= param.max
        if inside and (param.kind is float or float(value).is_integer()):
            # only a cross-parameter rule may refuse an in-range value
            with pytest.raises(ParamError, match="must|exceeds"):
                ParamSet({param.name: value})
        return
    assert param.min <= s[param.name] <= param.max


def test_with_values_leaves_the_original_unchanged():
    a = ParamSet()
    b = a.with_values({"wearer.mass_kg": 70})
    assert a["wearer.mass_kg"] == 80 and b["wearer.mass_kg"] == 70


def test_generated_reference_is_in_sync():
    committed = (ROOT / "docs" / "parameters.md").read_text(encoding="utf-8")
    assert committed == markdown_reference(), "regenerate with: make docs"
    for p in REGISTRY:
        assert f"`{p.name}`" in committed
        # each row names the label and the unit the console shows it in
        row = next(line for line in committed.splitlines() if line.startswith(f"| `{p.name}` |"))
        assert row.startswith(f"| `{p.name}` | {p.label} | {p.unit} | {p.clinical or '(none)'} | "), row
