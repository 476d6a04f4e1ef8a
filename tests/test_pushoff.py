"""The push-off law through its dict wrappers (the tick's own code)."""
import math

import pytest

from controller.kernels._pushoff import PushoffController
from controller.params.registry import ParamSet
from conftest import gait, inputs

P = ParamSet()
M = P["wearer.mass_kg"]


def controller(params=P):
    c = PushoffController()
    c.configure(params)
    return c


def speed_for(stride_s, params=P):
    return (params["speed.stride_time_at_1_m_s_s"] / stride_s) ** (1.0 / params["speed.exponent"])


def stride_time_for(speed_m_s, params=P):
    return params["speed.stride_time_at_1_m_s_s"] * speed_m_s ** -params["speed.exponent"]


def planned(c, speed_m_s, stance_share=0.63):
    T = stride_time_for(speed_m_s)
    g = gait(heel_strike=1, phase=0.0, stride_time_s=T, stance_time_s=stance_share * T)
    c.plan_stride(g)
    return g


def test_stance_is_soft_in_plantarflexion_and_stiff_in_dorsiflexion():
    c = controller()
    out = c.command_for(gait(phase=0.05), inputs(motor_angle_rad=0.1))
    assert out["torque_ff_Nm"] == pytest.approx(P["stance.stiffness_Nm_rad_kg"] * M * 0.1)
    out = c.command_for(gait(phase=0.05), inputs(motor_angle_rad=-0.1))
    assert out["torque_ff_Nm"] == pytest.approx(-P["stance.plantarflexion_stiffness_Nm_rad_kg"] * M * 0.1)
    assert out["pushoff_Nm"] == 0.0


@pytest.mark.parametrize("speed", [0.75, 1.25, 1.75])
def test_pushoff_peak_scales_with_speed_and_mass_and_peaks_on_time(speed):
    for mass in (60.0, 100.0):
        params = P.with_values({"wearer.mass_kg": mass})
        c = controller(params)
        planned(c, speed)
        v = c.speed_m_s
        assert v == pytest.approx(speed, rel=1e-9)
        peak = mass * (P["pushoff.torque_Nm_kg"] + P["pushoff.torque_slope_Nm_s_kg_m"] * (v - 1.25))
        assert c.pushoff_profile(P["pushoff.peak_stance"]) == pytest.approx(peak)
        assert c.pushoff_profile(P["pushoff.end_stance"]) == 0.0
        assert c.pushoff_profile(0.3) == 0.0
        assert c.work_target_J_kg == pytest.approx(P["pushoff.work_J_kg"]
                                                   + P["pushoff.work_slope_J_s_kg_m"] * (v - 1.25))


def test_rise_time_is_a_time_so_it_spans_more_of_a_short_stance():
    starts = {}
    for speed in (0.75, 1.75):
        c = controller()
        g = planned(c, speed)
        s = [x / 1000 for x in range(1000)]
        starts[speed] = next(x for x in s if c.pushoff_profile(x) > 0.0)
        rise_s = (P["pushoff.peak_stance"] - starts[speed]) * g["stance_time_s"]
        assert rise_s == pytest.approx(P["pushoff.rise_s"], abs=0.002)
    assert starts[1.75] < starts[0.75]


def test_no_pushoff_without_a_trustworthy_phase():
    for bad in (dict(source=2), dict(source=3), dict(confidence=0.2), dict(standing=1), dict(walking=0)):
        c = controller()
        planned(c, 1.25)
        stance_share = 0.68 / 1.1
        g = gait(phase=P["pushoff.peak_stance"] * stance_share, **bad)
        out = c.command_for(g, inputs(motor_angle_rad=0.0))
        assert out["pushoff_Nm"] == 0.0, bad
    c = controller()
    planned(c, 1.25)
    out = c.command_for(gait(phase=P["pushoff.peak_stance"] * 0.68 / 1.1), inputs(motor_angle_rad=0.0))
    assert out["pushoff_Nm"] > 10.0


def test_spring_never_brakes_push_off():
    c = controller()
    planned(c, 1.25)
    out = c.command_for(gait(phase=0.58), inputs(motor_angle_rad=-0.3, motor_vel_rad_s=-4.0))
    assert out["torque_ff_Nm"] >= 0.0


def test_swing_holds_clearance_then_returns_to_neutral_before_heel_strike():
    c = controller()
    k = P["swing.stiffness_Nm_rad"]
    mid = c.command_for(gait(stance=0, phase=0.75), inputs(motor_angle_rad=0.0))
    assert mid["torque_ff_Nm"] == pytest.approx(-k * P["swing.target_rad"])    # pulls up (dorsiflexes)
    late = c.command_for(gait(stance=0, phase=0.97), inputs(motor_angle_rad=0.0))
    assert late["torque_ff_Nm"] == pytest.approx(0.0, abs=1e-9)                 # neutral is the target


def _walk_strides(c, n, speed, work_of_stride):
    """Feed ``n`` strides; each stance does the work ``work_of_stride(peak_Nm)`` [J/kg]."""
    T = stride_time_for(speed)
    for _ in range(n):
        g = gait(heel_strike=1, phase=0.0, stride_time_s=T, stance_time_s=0.63 * T)
        c.command_for(g, inputs(motor_angle_rad=0.0, motor_torque_Nm=0.0))
        # one stance of work: torque x angle change, in one step of the integrator
        w = work_of_stride(c.pushoff_peak_Nm) * M
        c.command_for(gait(phase=0.58, stride_time_s=T, stance_time_s=0.63 * T),
                      inputs(motor_angle_rad=-0.1, motor_torque_Nm=w / 0.1))
        c.command_for(gait(phase=0.59, stride_time_s=T, stance_time_s=0.63 * T),
                      inputs(motor_angle_rad=-0.1, motor_torque_Nm=0.0))


def test_learning_meets_the_work_target_and_stays_bounded():
    c = controller()
    # a wearer on whom the scheduled push-off gives 80 % of the target work (needs x1.25)
    target = P["pushoff.work_J_kg"]
    scheduled = M * P["pushoff.torque_Nm_kg"]
    _walk_strides(c, 40, 1.25, lambda peak: 0.8 * target * peak / scheduled)
    assert c.last_work_J_kg == pytest.approx(target, rel=0.02)
    assert c.strides_adapted >= 39
    # a wearer on whom nothing is enough: the correction stops at its bound
    c = controller()
    _walk_strides(c, 60, 1.25, lambda peak: 0.0)
    scale = dict(c.corrections)[1.25]
    assert scale == pytest.approx(1.0 + P["pushoff.adapt_limit"])
    assert c.pushoff_peak_Nm <= 0.95 * P["safety.max_torque_Nm"]


def test_learning_is_per_speed():
    c = controller()
    target = P["pushoff.work_J_kg"]
    _walk_strides(c, 30, 1.25, lambda peak: 0.8 * target * peak / (M * P["pushoff.torque_Nm_kg"]))
    bins = dict(c.corrections)
    assert bins[1.25] > 1.1 and bins[0.5] == 1.0 and bins[2.0] == 1.0


def test_no_learning_when_adaptation_is_off():
    c = controller(P.with_values({"pushoff.adapt_rate": 0.0}))
    _walk_strides(c, 10, 1.25, lambda peak: 0.0)
    assert all(scale == 1.0 for _, scale in c.corrections)
    assert math.isfinite(c.last_work_J_kg)
