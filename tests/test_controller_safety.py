"""Push-off law and the safety stage, through their dict wrappers (the tick's own code)."""
import math

import pytest
from hypothesis import given, settings, strategies as st

from controller._pushoff import PushoffController
from controller._safety import Safety
from controller.faults import fault_names
from controller.params import ParamSet
from conftest import command, gait, inputs

P = ParamSet()
MAX = P["safety.max_torque_Nm"]
SLEW = P["safety.max_slew_Nm_s"]


def controller():
    c = PushoffController()
    c.configure(P)
    return c


def safety(now=1.0):
    s = Safety()
    s.configure(P)
    s.start(now)
    return s


def test_pushoff_profile_peaks_at_mass_scaled_torque():
    c = controller()
    peak = P["pushoff.peak_torque_Nm_kg"] * P["wearer.mass_kg"]
    assert c.pushoff_profile(P["pushoff.peak_phase"]) == pytest.approx(peak)
    assert c.pushoff_profile(P["pushoff.start_phase"]) == 0.0
    assert c.pushoff_profile(0.9) == 0.0


def test_stance_spring_resists_dorsiflexion_and_swing_holds_target():
    c = controller()
    k = P["stance.stiffness_Nm_rad_kg"] * P["wearer.mass_kg"]
    out = c.command_for(gait(phase=0.2), inputs(motor_angle_rad=0.1))
    assert out["torque_ff_Nm"] == pytest.approx(k * 0.1)
    out = c.command_for(gait(stance=0, phase=0.8), inputs(motor_angle_rad=P["swing.target_rad"] + 0.1))
    assert out["torque_ff_Nm"] == pytest.approx(P["swing.stiffness_Nm_rad"] * 0.1)


def test_spring_never_brakes_push_off():
    c = controller()
    out = c.command_for(gait(phase=0.58), inputs(motor_angle_rad=-0.3, motor_vel_rad_s=-4.0))
    assert out["torque_ff_Nm"] >= 0.0


def test_torque_is_clamped_and_slew_limited():
    s = safety()
    out = s.apply(command(torque_ff_Nm=1e6), inputs(motor_rx_s=1.001), gait(), 1.001)
    assert out["torque_ff_Nm"] == pytest.approx(SLEW * 0.001)
    for k in range(2, 200):
        now = 1.0 + k * 1e-3
        out = s.apply(command(torque_ff_Nm=1e6), inputs(motor_rx_s=now, imu_rx_s=now, load_rx_s=now),
                      gait(), now)
    assert out["torque_ff_Nm"] == pytest.approx(MAX)
    assert s.faults == 0


@pytest.mark.parametrize("field,value,fault", [
    ("motor_rx_s", 0.990, "motor_stale"),
    ("imu_rx_s", 0.950, "imu_stale"),
    ("load_rx_s", 0.950, "load_stale"),
    ("motor_error", 2, "driver_error"),
    ("motor_temp_C", 95.0, "over_temperature"),
    ("motor_vel_rad_s", float("nan"), "nonfinite_input"),
    ("load_N", float("inf"), "nonfinite_input"),
])
def test_each_fault_latches_and_enters_the_safe_state(field, value, fault):
    s = safety()
    now = 1.001
    out = s.apply(command(torque_ff_Nm=2.0), inputs(**{field: value, "motor_rx_s": now} if field != "motor_rx_s"
                                                   else {field: value}), gait(), now)
    assert fault in fault_names(s.faults)
    assert s.mode == 2
    # latched: a healthy tick afterwards does not clear it
    s.apply(command(), inputs(motor_rx_s=1.002, imu_rx_s=1.002, load_rx_s=1.002), gait(), 1.002)
    assert fault in fault_names(s.faults) and s.mode == 2


def test_nan_command_is_replaced_and_latched():
    s = safety()
    out = s.apply(command(torque_ff_Nm=float("nan")), inputs(motor_rx_s=1.001), gait(), 1.001)
    assert "nonfinite_command" in fault_names(s.faults)
    assert math.isfinite(out["torque_ff_Nm"])


def test_safe_state_ramps_to_a_passive_spring_in_stance_and_a_hold_in_swing():
    for stance, k_name in ((1, "safety.passive_stiffness_Nm_rad"), (0, "safety.hold_stiffness_Nm_rad")):
        s = safety()
        now = 1.0
        for k in range(1, 40):      # build up some push-off torque first
            now = 1.0 + k * 1e-3
            s.apply(command(torque_ff_Nm=60.0), inputs(motor_rx_s=now, imu_rx_s=now, load_rx_s=now,
                                                       load_N=700.0 if stance else 0.0),
                    gait(stance=stance), now)
        before = s.apply(command(torque_ff_Nm=60.0), inputs(motor_rx_s=now - 0.01, imu_rx_s=now,
                                                            load_rx_s=now, load_N=700.0 if stance else 0.0),
                         gait(stance=stance), now + 1e-3)
        assert s.mode == 2
        assert before["torque_ff_Nm"] > 50.0, "no torque drop on the fault tick"
        ramp = P["safety.ramp_s"]
        t_end = now + 1e-3 + ramp + 0.01
        out = s.apply(command(), inputs(motor_rx_s=0.0, load_N=700.0 if stance else 0.0,
                                        motor_angle_rad=0.05), gait(stance=stance), t_end)
        assert out["torque_ff_Nm"] == pytest.approx(0.0, abs=1e-9)
        assert out["kp_Nm_rad"] == pytest.approx(P[k_name])
        assert out["p_des_rad"] == 0.0


def test_lost_load_counts_as_loaded():
    s = safety()
    s.apply(command(), inputs(load_N=float("nan"), motor_rx_s=1.0), gait(stance=0), 1.5)   # latches
    out = s.apply(command(), inputs(load_N=float("nan"), motor_rx_s=1.0), gait(stance=0), 1.7)
    assert out["kp_Nm_rad"] == pytest.approx(P["safety.passive_stiffness_Nm_rad"])


def test_clear_is_refused_under_load():
    s = safety()
    s.apply(command(), inputs(motor_error=1, motor_rx_s=1.001), gait(), 1.001)
    assert not s.clear_faults(700.0) and s.faults
    assert s.clear_faults(0.0) and s.faults == 0 and s.mode == 1


finite = st.floats(min_value=-1e4, max_value=1e4)
wild = st.one_of(finite, st.sampled_from([float("nan"), float("inf"), -float("inf"), 1e300, -1e300]))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(wild, wild, wild, wild, wild, st.booleans(), st.booleans(), wild, wild),
                min_size=1, max_size=60))
def test_any_input_sequence_gives_a_finite_bounded_command(seq):
    """For any inputs (NaN, Inf, extremes, stale data) and any proposed command: finite and bounded."""
    s = safety()
    last_ff = 0.0
    for k, (tau, angle, vel, load, gyro, stale, stance, kp, p_des) in enumerate(seq):
        now = 1.0 + (k + 1) * 1e-3
        rx = now - 0.5 if stale else now
        out = s.apply(command(torque_ff_Nm=tau, kp_Nm_rad=kp, p_des_rad=p_des),
                      inputs(motor_angle_rad=angle, motor_vel_rad_s=vel, load_N=load, shank_gyro_rad_s=gyro,
                             motor_rx_s=rx, imu_rx_s=rx, load_rx_s=rx),
                      gait(stance=int(stance)), now)
        values = [out[f] for f in ("torque_ff_Nm", "p_des_rad", "v_des_rad_s", "kp_Nm_rad", "kd_Nms_rad",
                                   "torque_expected_Nm")]
        assert all(math.isfinite(v) for v in values), out
        assert abs(out["torque_ff_Nm"]) <= MAX + 1e-9
        assert 0.0 <= out["kp_Nm_rad"] <= P["safety.passive_stiffness_Nm_rad"] + 1e-9
        assert 0.0 <= out["kd_Nms_rad"] <= P["safety.passive_damping_Nms_rad"] + 1e-9
        if math.isfinite(angle) and math.isfinite(vel):
            assert abs(out["torque_expected_Nm"]) <= MAX + 1e-6
        # slew bound, unless the total-torque bound (which takes precedence) had to cut it
        step = abs(out["torque_ff_Nm"] - last_ff)
        assert step <= SLEW * 1e-3 + 1e-9 or abs(abs(out["torque_expected_Nm"]) - MAX) < 1e-6, (step, out)
        last_ff = out["torque_ff_Nm"]


@pytest.mark.parametrize("change,fragment", [
    ({"t_min": 18.0}, "t_min: must be below t_max"),
    ({"kd_max": float("nan")}, "kd_max: must be finite"),
    ({"p_max": None}, "must be a number"),
])
def test_a_bad_driver_range_never_reaches_the_tick(change, fragment):
    from controller.loop import build_tick
    from hal.ak import mit_range
    from hal.errors import ConfigError
    rng = dict(mit_range("AK80-9"), **change)
    with pytest.raises(ConfigError, match=fragment):
        build_tick(P, rng, 1)
    with pytest.raises(ConfigError, match="missing"):
        build_tick(P, {"p_min": -1.0}, 1)
