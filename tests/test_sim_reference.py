"""Reference gait for the simulator: shipped tables, figures from docs/reference.md, speed model, time warp."""
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sim.reference import (
    grf_bw_at,
    load_reference,
    stance_fraction,
    stride_profile,
    stride_time_s,
    warp_phase,
)

SHIPPED = Path(__file__).resolve().parents[1] / "sim" / "data"
#: the derivation's inputs, shipped beside its outputs (their sources: docs/reference.md)
SOURCES = SHIPPED / "sources"

WINTER_SPEED_M_S = 1.43
WINTER_STRIDE_TIME_S = 0.987
WINTER_TOE_OFF = 0.609


def _cumtrapz(y, x):
    return np.concatenate([[0.0], np.cumsum(0.5 * (y[1:] + y[:-1]) * np.diff(x))])


# --- shipped tables ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["reference_stride.csv", "speed_model.csv"])
def test_shipped_table_equals_fresh_derivation(tmp_path, name):
    from sim.tools.derive_reference import derive

    derive(SOURCES, tmp_path)
    fresh = (tmp_path / name).read_text(encoding="utf-8")
    shipped = (SHIPPED / name).read_text(encoding="utf-8")
    assert shipped == fresh, f"sim/data/{name} is stale: run python -m sim.tools.derive_reference"


def test_reference_constants_and_grid():
    ref = load_reference()
    assert (ref.speed_m_s, ref.stride_time_s, ref.toe_off, ref.mass_kg) == (1.43, 0.987, 0.609, 56.7)
    np.testing.assert_allclose(ref.phase, np.linspace(0.0, 1.0, 201), atol=1e-12)
    assert load_reference() is ref  # cached
    with pytest.raises(ValueError):
        ref.grf_bw[0] = 2.0  # read-only: a cached table must not be corrupted by a caller


def test_grf_is_zero_in_swing_and_never_negative():
    ref = load_reference()
    assert np.all(ref.grf_bw >= 0.0)
    assert np.all(ref.grf_bw[ref.phase >= ref.toe_off] == 0.0)
    assert np.all(ref.grf_bw[(ref.phase > 0.02) & (ref.phase < 0.59)] > 0.1)  # loaded through stance


def test_kinematic_channels_are_periodic():
    ref = load_reference()
    for name in ("ankle_angle_rad", "shank_angle_rad", "shank_omega_rad_s"):
        assert getattr(ref, name)[-1] == getattr(ref, name)[0], name


# (column, phase window, max/min, expected value, tolerance, expected phase, phase tolerance); degrees for angles.
REFERENCE_FIGURES = [
    ("ankle_moment_Nm_kg", (0.0, 0.609), "max", 1.58, 0.02, 0.48, 0.015),
    ("ankle_power_W_kg", (0.0, 0.609), "max", 4.80, 0.05, 0.52, 0.01),
    ("shank_omega_rad_s", (0.609, 1.0), "max", 6.0, 0.1, 0.84, 0.015),
    ("shank_omega_rad_s", (0.4, 0.7), "min", -3.4, 0.1, 0.54, 0.015),
    ("grf_bw", (0.0, 0.2), "max", 1.09, 0.01, 0.13, 0.01),
    ("grf_bw", (0.2, 0.35), "min", 0.65, 0.01, 0.26, 0.01),
    ("grf_bw", (0.35, 0.609), "max", 1.10, 0.01, 0.46, 0.01),
    ("shank_angle_deg", (0.0, 1.0), "min", -53.0, 0.5, 0.64, 0.015),
    ("shank_angle_deg", (0.8, 1.0), "max", 22.0, 0.5, 0.96, 0.015),
    ("shank_angle_deg", (0.0, 0.0), "max", 18.0, 1.1, 0.0, 0.0),  # Winter 18.4; 19.0 after the periodic closure
    ("ankle_angle_deg", (0.0, 0.2), "min", -7.8, 0.1, 0.07, 0.01),
    ("ankle_angle_deg", (0.2, 0.5), "max", 6.9, 0.1, 0.36, 0.03),
    ("ankle_angle_deg", (0.5, 0.8), "min", -20.5, 0.3, 0.62, 0.01),
]


@pytest.mark.parametrize("column, window, kind, value, tol, at, at_tol", REFERENCE_FIGURES)
def test_reference_figures_match_reference_md(column, window, kind, value, tol, at, at_tol):
    ref = load_reference()
    if column.endswith("_deg"):
        y = np.degrees(getattr(ref, column.replace("_deg", "_rad")))
    else:
        y = getattr(ref, column)
    inside = (ref.phase >= window[0] - 1e-9) & (ref.phase <= window[1] + 1e-9)
    i = np.argmax(y[inside]) if kind == "max" else np.argmin(y[inside])
    assert y[inside][i] == pytest.approx(value, abs=tol)
    assert ref.phase[inside][i] == pytest.approx(at, abs=at_tol)


def test_toe_off_is_where_the_load_ends():
    ref = load_reference()
    assert ref.toe_off == WINTER_TOE_OFF
    first_unloaded = ref.phase[np.argmax(ref.grf_bw == 0.0)]
    assert ref.toe_off <= first_unloaded <= ref.toe_off + 0.005


# --- speed model ---------------------------------------------------------------------------------------


def test_speed_model_decreases_with_speed():
    v = np.linspace(0.3, 2.2, 191)
    assert np.all(np.diff(stride_time_s(v)) < 0.0)
    assert np.all(np.diff(stance_fraction(v)) < 0.0)


def test_speed_model_agrees_with_winter_at_his_speed():
    # Winter's 0.987 s and 60.9 % agree with the GAITRite fit, so we compare to Winter directly
    # (the fit gives about 1.02 s and 62 % at 1.43 m/s).
    assert stride_time_s(WINTER_SPEED_M_S) == pytest.approx(WINTER_STRIDE_TIME_S, rel=0.10)
    assert stance_fraction(WINTER_SPEED_M_S) == pytest.approx(WINTER_TOE_OFF, abs=0.02)


def test_speed_model_stays_physical_over_its_range():
    v = np.linspace(0.3, 2.2, 191)
    assert np.all((stride_time_s(v) > 0.7) & (stride_time_s(v) < 2.5))
    assert np.all((stance_fraction(v) > 0.55) & (stance_fraction(v) < 0.70))


def test_speed_model_scalar_in_float_out():
    assert isinstance(stride_time_s(1.0), float)
    assert isinstance(stance_fraction(1.0), float)
    assert stride_time_s(np.array([1.0, 1.5])).shape == (2,)


@pytest.mark.parametrize("speed", [0.29, 2.21, -1.0, math.nan, math.inf, [1.0, 2.3]])
@pytest.mark.parametrize("model", [stride_time_s, stance_fraction])
def test_speed_outside_the_model_range_raises(model, speed):
    with pytest.raises(ValueError, match=r"0\.3\.\.2\.2 m/s"):
        model(speed)


# --- time warp -----------------------------------------------------------------------------------------


@given(st.floats(min_value=0.5, max_value=0.7))
def test_warp_phase_fixed_points_and_monotonic(sf):
    assert warp_phase(0.0, sf) == 0.0
    assert warp_phase(sf, sf) == pytest.approx(WINTER_TOE_OFF, abs=1e-12)
    assert warp_phase(1.0, sf) == pytest.approx(1.0, abs=1e-12)
    assert warp_phase(0.5 * sf, sf) == pytest.approx(0.5 * WINTER_TOE_OFF, abs=1e-12)
    warped = warp_phase(np.linspace(0.0, 1.0, 1001), sf)
    assert isinstance(warped, np.ndarray) and warped.shape == (1001,)
    assert np.all(np.diff(warped) > 0.0)


@given(st.floats(0.5, 0.7), st.floats(0.0, 1.0), st.floats(0.0, 1.0))
def test_warp_phase_preserves_order(sf, a, b):
    lo, hi = min(a, b), max(a, b)
    assert warp_phase(lo, sf) <= warp_phase(hi, sf)


@pytest.mark.parametrize("phase, sf", [(-0.01, 0.6), (1.01, 0.6), (0.5, 0.0), (0.5, 1.0)])
def test_warp_phase_rejects_bad_input(phase, sf):
    with pytest.raises(ValueError):
        warp_phase(phase, sf)


# --- stride profile ------------------------------------------------------------------------------------

SPEEDS = [0.3, 0.4, 0.75, 1.0, WINTER_SPEED_M_S, 1.75, 2.2]


@pytest.mark.parametrize("speed", SPEEDS)
def test_profile_timing(speed):
    p = stride_profile(speed, n=501)
    assert p["t_s"].shape == (501,)
    assert p["t_s"][0] == 0.0 and p["t_s"][-1] == pytest.approx(stride_time_s(speed))
    swing = p["phase"] >= stance_fraction(speed)
    assert np.all(p["grf_bw"][swing] == 0.0)
    assert np.all(p["grf_bw"][~swing][1:-1] > 0.0)
    # the moment peak keeps the reference magnitude (time warp only); the load's double hump scales
    # with speed (sim.reference.grf_bw_at, tests/test_sim_gait_speed.py)
    stance = np.linspace(0.0, load_reference().toe_off, 2001)
    assert p["grf_bw"].max() == pytest.approx(grf_bw_at(stance, speed).max(), abs=0.01)
    assert p["ankle_moment_Nm_kg"].max() == pytest.approx(load_reference().ankle_moment_Nm_kg.max(), abs=0.01)


@pytest.mark.parametrize("speed", SPEEDS)
@pytest.mark.parametrize("angle, velocity", [("shank_angle_rad", "shank_omega_rad_s"), ("ankle_angle_rad", "ankle_vel_rad_s")])
def test_profile_velocity_integrates_back_to_angle(speed, angle, velocity):
    p = stride_profile(speed)
    integrated = p[angle][0] + _cumtrapz(p[velocity], p["t_s"])
    error = np.max(np.abs(integrated - p[angle]))
    assert error <= 0.01 * np.ptp(p[angle])
    assert p[angle][-1] == pytest.approx(p[angle][0], abs=1e-12)  # periodic: the next stride joins on


@pytest.mark.parametrize("speed", SPEEDS)
def test_profile_shank_excursion_scales_with_stride_length(speed):
    ref = load_reference()
    k = speed * stride_time_s(speed) / (ref.speed_m_s * ref.stride_time_s)
    p = stride_profile(speed)
    assert np.ptp(p["shank_angle_rad"]) == pytest.approx(k * np.ptp(ref.shank_angle_rad), rel=0.01)
    assert np.ptp(p["ankle_angle_rad"]) == pytest.approx(np.ptp(ref.ankle_angle_rad), rel=0.01)


def test_profile_omega_agrees_with_winters_measured_omega():
    # The derived omega (derivative of the warped angle) against Winter's own measured leg omega,
    # warped and scaled the same way: checks units, sign and time scale of the derivation.
    ref = load_reference()
    v = WINTER_SPEED_M_S
    period, sf = stride_time_s(v), stance_fraction(v)
    p = stride_profile(v)
    k = v * period / (ref.speed_m_s * ref.stride_time_s)
    slope = np.where(p["phase"] < sf, ref.toe_off / sf, (1 - ref.toe_off) / (1 - sf))
    winter = k * slope * ref.stride_time_s / period * np.interp(p["ref_phase"], ref.phase, ref.shank_omega_rad_s)
    rms = np.sqrt(np.mean((p["shank_omega_rad_s"] - winter) ** 2))
    assert rms < 0.25
    assert p["shank_omega_rad_s"].max() == pytest.approx(winter.max(), rel=0.03)


def test_profile_rejects_bad_input():
    with pytest.raises(ValueError):
        stride_profile(2.5)
    with pytest.raises(ValueError):
        stride_profile(1.0, n=1)
