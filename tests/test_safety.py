"""The safety stage (monitor, latch, modes, safe states, limits) through its dict wrappers."""
import math

import pytest
from hypothesis import example, given, settings, strategies as st

from controller.kernels._safety import ANGLE_SOURCES, DRIVER_LAG_S, Safety
from controller.kernels.faults import DEGRADING, fault_bit, fault_names, warning_names
from controller.runtime.loop import build_tick
from controller.params.registry import ParamSet
from hal.ak import mit_range
from conftest import command, gait, inputs

P = ParamSet()
MAX = P["safety.max_torque_Nm"]
SLEW = P["safety.max_slew_Nm_s"]
DT = 1e-3
STANDBY, WALK, SAFE, PASSIVE = 0, 1, 2, 3


def safety(now=1.0):
    s = Safety()
    s.configure(P)
    s.start(now)
    return s


def fresh(now, **over):
    """Inputs as a healthy ankle sends them at ``now`` (every frame just arrived)."""
    d = dict(motor_rx_s=now, imu_rx_s=now, load_rx_s=now, node_status_rx_s=now,
             shank_gyro_rad_s=math.sin(now * 37.0) * 0.5, accel_x_m_s2=math.cos(now * 53.0))
    d.update(over)
    return inputs(**d)


def ticks(s, n, t0=1.0, cmd=None, g=None, **over):
    """``n`` ticks at 1 kHz after ``t0``; ``over`` values may be functions of time.  Returns (t, out)."""
    out, now = None, t0
    for k in range(1, n + 1):
        now = t0 + k * DT
        values = {key: (v(now) if callable(v) else v) for key, v in over.items()}
        out = s.apply(command(**(cmd or {})), fresh(now, **values), gait(**(g or {})), now)
    return now, out


def test_healthy_ticks_stay_in_walk_mode():
    s = safety()
    ticks(s, 50)
    assert s.faults == 0 and s.mode == WALK and s.warnings == 0


def test_torque_is_clamped_and_slew_limited():
    s = safety()
    _, out = ticks(s, 1, cmd=dict(torque_ff_Nm=1e6))
    assert out["torque_ff_Nm"] == pytest.approx(SLEW * DT)
    _, out = ticks(s, 200, t0=1.001, cmd=dict(torque_ff_Nm=1e6))
    assert out["torque_ff_Nm"] == pytest.approx(MAX)
    assert s.faults == 0


def test_soft_end_stops_push_back():
    s = safety()
    _, out = ticks(s, 100, motor_angle_rad=0.36, ankle_angle_rad=0.36)
    beyond = 0.36 - P["safety.soft_dorsi_rad"]
    assert out["torque_ff_Nm"] == pytest.approx(P["safety.soft_stiffness_Nm_rad"] * beyond)
    s = safety()
    _, out = ticks(s, 100, motor_angle_rad=-0.5, ankle_angle_rad=-0.5)
    assert out["torque_ff_Nm"] < 0.0


# (what is wrong, from 1.0 s on; the fault; the mode; ticks within which it must latch)
FAULTS = [
    (dict(motor_rx_s=lambda t: 1.0), "motor_stale", SAFE, 5),
    (dict(send_failures=3), "motor_stale", SAFE, 1),
    (dict(bus_error_ticks=3), "motor_stale", SAFE, 1),
    (dict(motor_error=2), "driver_error", SAFE, 1),
    (dict(motor_error=4), "driver_error", SAFE, 1),
    (dict(motor_vel_rad_s=float("nan")), "nonfinite_input", SAFE, 1),
    (dict(imu_rx_s=lambda t: 1.0), "imu", PASSIVE, 17),
    (dict(shank_gyro_rad_s=0.25, accel_x_m_s2=1.0), "imu", PASSIVE, 12),     # stuck-at
    (dict(shank_gyro_rad_s=31.0), "imu", PASSIVE, 3),                        # range
    (dict(shank_gyro_rad_s=float("nan")), "imu", PASSIVE, 1),
    (dict(load_rx_s=lambda t: 1.0), "load", PASSIVE, 10),
    (dict(load_N=5000.0), "load", PASSIVE, 3),                               # saturation
    (dict(load_N=700.0, shank_gyro_rad_s=lambda t: 5.0 + math.sin(t * 99.0)), "load", PASSIVE, 7),
    (dict(load_N=float("inf")), "load", PASSIVE, 1),
    (dict(motor_angle_rad=lambda t: 0.2 if t > 1.0005 else 0.0), "encoder", SAFE, 2),   # jump
    (dict(motor_angle_rad=0.0, ankle_angle_rad=lambda t: (t - 1.0) * 10.0), "encoder", SAFE, 8),  # stuck
    (dict(supply_V=18.0, node_status_rx_s=lambda t: round(t, 2)), "low_voltage", SAFE, 45),
    (dict(motor_temp_C=125.0), "over_temperature", SAFE, 1),
]


@pytest.mark.parametrize("wrong,fault,mode,bound", FAULTS, ids=[f"{f}-{i}" for i, (_, f, _, _) in enumerate(FAULTS)])
def test_each_fault_latches_within_its_bound_and_gives_its_mode(wrong, fault, mode, bound):
    s = safety()
    ticks(s, 20, t0=0.98)                     # healthy first
    assert s.faults == 0
    t_found = None
    now = 1.0
    for k in range(1, 200):
        now, _ = ticks(s, 1, t0=1.0 + (k - 1) * DT, **wrong)
        if s.faults:
            t_found = now
            break
    assert t_found is not None, "never detected"
    assert fault in fault_names(s.faults)
    assert (t_found - 1.0) <= bound * DT + 1e-9, (t_found - 1.0)
    assert s.mode == mode
    # latched while the foot is loaded, even with healthy inputs again
    ticks(s, 50, t0=now, load_N=700.0)
    assert fault in fault_names(s.faults) and s.mode == mode


def test_overrun_one_long_gap_or_three_late_ticks():
    s = safety()
    ticks(s, 10)
    s.apply(command(), fresh(1.0 + 10 * DT + 0.006), gait(), 1.0 + 10 * DT + 0.006)
    assert "overrun" in fault_names(s.faults) and s.mode == SAFE
    s = safety()
    now = 1.0
    for k in range(3):
        now += 1.6 * DT
        s.apply(command(), fresh(now), gait(), now)
        assert (s.faults != 0) == (k == 2)
    assert "overrun" in fault_names(s.faults)


def test_nan_command_is_replaced_and_latched():
    s = safety()
    _, out = ticks(s, 1, cmd=dict(torque_ff_Nm=float("nan")))
    assert "nonfinite_command" in fault_names(s.faults) and s.mode == SAFE
    assert math.isfinite(out["torque_ff_Nm"])


def test_safe_state_ramps_to_a_passive_spring_in_stance_a_hold_in_swing_and_damps_after_encoder_faults():
    for stance, k_expected, b_expected, wrong in (
            (1, P["safety.passive_stiffness_Nm_rad"], P["safety.passive_damping_Nms_rad"], dict(motor_error=1)),
            (0, P["safety.hold_stiffness_Nm_rad"], P["safety.hold_damping_Nms_rad"], dict(motor_error=1)),
            (1, 0.0, P["safety.passive_damping_Nms_rad"],
             dict(motor_angle_rad=0.2, ankle_angle_rad=0.0))):
        load = 700.0 if stance else 0.0
        s = safety()
        now, out = ticks(s, 40, cmd=dict(torque_ff_Nm=60.0), g=dict(stance=stance), load_N=load)
        assert out["torque_ff_Nm"] == pytest.approx(60.0)
        now, first = ticks(s, 1, t0=now, cmd=dict(torque_ff_Nm=60.0), g=dict(stance=stance), load_N=load, **wrong)
        if not s.faults:      # the encoder mismatch needs 3 samples
            now, first = ticks(s, 2, t0=now, cmd=dict(torque_ff_Nm=60.0), g=dict(stance=stance), load_N=load, **wrong)
        assert s.mode == SAFE
        assert first["torque_ff_Nm"] > 55.0, "no torque drop on the fault tick"
        _, out = ticks(s, int(P["safety.ramp_s"] / DT) + 5, t0=now, g=dict(stance=stance), load_N=load, **wrong)
        assert out["torque_ff_Nm"] == pytest.approx(0.0, abs=1e-9)
        assert out["kp_Nm_rad"] == pytest.approx(k_expected)
        assert out["kd_Nms_rad"] == pytest.approx(b_expected)


def test_lost_load_counts_as_loaded_in_the_safe_state():
    s = safety()
    now, _ = ticks(s, 5, motor_error=1, load_N=0.0)
    _, out = ticks(s, 150, t0=now, motor_error=1, load_rx_s=lambda t: 1.0, g=dict(stance=0))
    assert out["kp_Nm_rad"] == pytest.approx(P["safety.passive_stiffness_Nm_rad"])


def test_sensor_fault_takes_pushoff_away_then_comes_back_only_unloaded_and_healthy():
    s = safety()
    push = dict(torque_ff_Nm=50.0, pushoff_Nm=50.0)
    now, out = ticks(s, 150, cmd=push, g=dict(stance=0), load_N=0.0)
    assert s.assist == pytest.approx(1.0) and out["torque_ff_Nm"] == pytest.approx(50.0)
    now, _ = ticks(s, 30, t0=now, cmd=push, imu_rx_s=lambda t: now, load_N=700.0, g=dict(stance=1))
    assert "imu" in fault_names(s.faults) and s.mode == PASSIVE
    now, out = ticks(s, 120, t0=now, cmd=push, imu_rx_s=lambda t: now, load_N=700.0, g=dict(stance=1))
    assert out["pushoff_Nm"] == 0.0 and out["torque_ff_Nm"] == pytest.approx(0.0, abs=1e-9)
    # IMU back, but the foot stays loaded: no clearing
    now, _ = ticks(s, 1500, t0=now, cmd=push, load_N=700.0, g=dict(stance=1))
    assert s.faults != 0
    # off the ground after 1 s of health: cleared, push-off ramps back in swing
    now, out = ticks(s, 150, t0=now, cmd=push, load_N=0.0, g=dict(stance=0))
    assert s.faults == 0 and s.mode == WALK and out["pushoff_Nm"] == pytest.approx(50.0)


def test_low_supply_scales_pushoff_first():
    s = safety()
    push = dict(torque_ff_Nm=60.0, pushoff_Nm=50.0)
    warn, low = P["safety.supply_warn_V"], P["safety.supply_min_V"]
    v = 0.5 * (warn + low)
    _, out = ticks(s, 300, cmd=push, supply_V=v, g=dict(stance=0))
    assert "supply_low" in warning_names(s.warnings) and s.faults == 0
    assert out["pushoff_Nm"] == pytest.approx(25.0) and out["torque_ff_Nm"] == pytest.approx(35.0)
    s = safety()
    _, out = ticks(s, 300, cmd=push, node_status_rx_s=lambda t: 0.5, g=dict(stance=0))
    assert "supply_unknown" in warning_names(s.warnings) and out["pushoff_Nm"] == 0.0


def test_thermal_derating_is_applied_with_alert_then_latches():
    s = safety()
    _, out = ticks(s, 300, cmd=dict(torque_ff_Nm=100.0), motor_temp_C=112.0)
    limit = MAX * (1.0 - 0.75 * (112.0 - 100.0) / (120.0 - 100.0))
    assert out["torque_ff_Nm"] == pytest.approx(limit, rel=1e-3)   # the model moves a little
    assert {"thermal_derate", "thermal_alert"} <= set(warning_names(s.warnings)) and s.faults == 0
    _, out = ticks(s, 5, t0=1.3, cmd=dict(torque_ff_Nm=100.0), motor_temp_C=121.0)
    assert "over_temperature" in fault_names(s.faults) and s.mode == SAFE


def test_clear_is_refused_under_load_and_while_the_cause_persists():
    s = safety()
    now, _ = ticks(s, 3, motor_error=1, load_N=700.0)
    assert s.clear_faults().startswith("refused: the foot is loaded") and s.faults
    now, _ = ticks(s, 3, t0=now, motor_error=1, load_N=0.0)
    assert "driver_error" in s.clear_faults() and s.faults
    now, _ = ticks(s, 3, t0=now, load_N=0.0)
    assert s.clear_faults() == "" and s.faults == 0 and s.mode == WALK


def test_clear_is_refused_while_the_motor_is_still_at_its_limit_temperature():
    s = safety()
    now, _ = ticks(s, 3, motor_temp_C=125.0, load_N=0.0)
    assert "over_temperature" in fault_names(s.faults)
    assert "over_temperature" in s.clear_faults() and s.faults
    # the reading drops at once, but the modelled winding cools over seconds: still refused
    now, _ = ticks(s, 500, t0=now, motor_temp_C=60.0, load_N=0.0)
    assert "over_temperature" in s.clear_faults() and s.faults
    now, _ = ticks(s, 8000, t0=now, motor_temp_C=60.0, load_N=0.0)
    assert s.thermal.winding_C < P["thermal.limit_degC"]
    assert s.clear_faults() == "" and s.mode == WALK


def test_a_corrupt_parameter_file_refuses_powered_mode():
    s = safety()
    s.latch(1 << 10, 1.0)
    _, out = ticks(s, 200, cmd=dict(torque_ff_Nm=50.0, pushoff_Nm=50.0))
    assert s.mode == SAFE and "params" in fault_names(s.faults)
    assert out["torque_ff_Nm"] == pytest.approx(0.0, abs=1e-9)


def test_passive_mode_chosen_gives_no_pushoff():
    s = safety()
    s.select_mode(PASSIVE)
    _, out = ticks(s, 200, cmd=dict(torque_ff_Nm=50.0, pushoff_Nm=40.0), g=dict(stance=0))
    assert s.mode == PASSIVE and out["torque_ff_Nm"] == pytest.approx(10.0) and out["pushoff_Nm"] == 0.0
    assert DEGRADING & s.faults == 0


def test_standby_ramps_the_torque_out_is_free_unloaded_and_a_passive_foot_loaded():
    s = safety()
    now, out = ticks(s, 40, cmd=dict(torque_ff_Nm=30.0), g=dict(stance=1), load_N=700.0)
    assert out["torque_ff_Nm"] == pytest.approx(30.0)
    s.select_mode(STANDBY)
    now, first = ticks(s, 1, t0=now, cmd=dict(torque_ff_Nm=30.0), g=dict(stance=1), load_N=700.0)
    assert s.mode == STANDBY and first["torque_ff_Nm"] > 25.0, "the torque stepped on entering standby"
    now, out = ticks(s, int(P["safety.ramp_s"] / DT) + 5, t0=now, cmd=dict(torque_ff_Nm=30.0),
                     g=dict(stance=1), load_N=700.0)
    assert out["torque_ff_Nm"] == pytest.approx(0.0, abs=1e-9) and out["pushoff_Nm"] == 0.0
    assert out["kp_Nm_rad"] == pytest.approx(P["safety.passive_stiffness_Nm_rad"])
    # the foot lifted: the spring fades out over safety.ramp_s, never a step
    previous = out["kp_Nm_rad"]
    for _ in range(int(P["safety.ramp_s"] / DT) + 5):
        now, out = ticks(s, 1, t0=now, g=dict(stance=0), load_N=0.0)
        assert previous - out["kp_Nm_rad"] <= P["safety.passive_stiffness_Nm_rad"] * DT / P["safety.ramp_s"] + 1e-6
        previous = out["kp_Nm_rad"]
    assert out["kp_Nm_rad"] == 0.0 and out["kd_Nms_rad"] == 0.0 and out["torque_ff_Nm"] == 0.0
    # a fault still takes precedence over the choice
    ticks(s, 1, t0=now, motor_error=1)
    assert s.mode == SAFE


def test_standby_is_left_only_with_the_foot_off_the_ground():
    tick = build_tick(P, mit_range("AK80-9"), 1)
    tick.start(1.0)
    now = 1.0

    def step(load_N):
        nonlocal now
        now += DT
        tick.set_inputs(fresh(now, load_N=load_N, supply_V=24.0))
        tick.update(now)

    step(700.0)
    assert not tick.gait["walking"]
    assert tick.select_mode(STANDBY) == ""          # standing: allowed, even loaded
    step(700.0)
    assert tick.safety.mode == STANDBY
    reason = tick.select_mode(WALK)
    assert reason.startswith("refused: standby ends only with the foot off the ground")
    step(700.0)
    assert tick.safety.mode == STANDBY
    step(0.0)
    assert tick.select_mode(WALK) == "" and tick.select_mode(WALK) == ""
    step(0.0)
    assert tick.safety.mode == WALK


def test_select_mode_refuses_an_unknown_mode_and_changes_nothing():
    s = safety()
    with pytest.raises(ValueError, match="walk"):
        s.select_mode(SAFE)
    assert s.mode == WALK


finite = st.floats(min_value=-1e4, max_value=1e4)
wild = st.one_of(finite, st.sampled_from([float("nan"), float("inf"), -float("inf"), 1e300, -1e300]))


@settings(max_examples=150, deadline=None)
# a fast motor cut by the bound less the driver-side spring's reserve (the exemption used the bare limit)
@example([(0.0, math.nan, 0.0, 0.0, 0.0, 0.0, False, False, 0, 0.0, 1),
          (1.0, 0.0, 0.0, 0.0, math.nan, 0.0, False, True, 0, 0.0, 1),
          (0.0, 874.0, math.nan, 0.0, 0.0, 0.0, False, False, 0, 0.0, 1)])
@given(st.lists(st.tuples(wild, wild, wild, wild, wild, wild, st.booleans(), st.booleans(),
                          st.integers(-5, 300), wild, st.sampled_from([WALK, WALK, WALK, PASSIVE, STANDBY])),
                min_size=1, max_size=80))
def test_any_input_sequence_through_the_whole_kernel_gives_a_finite_bounded_command(seq):
    """Monitor, estimator, controller and safety on any inputs (NaN, Inf, extremes, stale data)
    and any mode the prosthetist may choose, refused or not."""
    tick = build_tick(P, mit_range("AK80-9"), 1)
    tick.start(1.0)
    last_ff = 0.0
    now = 1.0
    for angle, vel, load, gyro, torque, supply, stale, late, error, temp, mode in seq:
        answer = tick.select_mode(mode)
        assert answer == "" or answer.startswith("refused"), answer
        now += 2.5 * DT if late else DT
        rx = now - 0.5 if stale else now
        tick.set_inputs(inputs(motor_angle_rad=angle, motor_vel_rad_s=vel, load_N=load, shank_gyro_rad_s=gyro,
                               motor_torque_Nm=torque, supply_V=supply, motor_error=error, motor_temp_C=temp,
                               ankle_angle_rad=angle, motor_rx_s=rx, imu_rx_s=rx, load_rx_s=rx,
                               node_status_rx_s=rx))
        tick.update(now)
        out = tick.command
        values = [out[f] for f in ("torque_ff_Nm", "p_des_rad", "v_des_rad_s", "kp_Nm_rad", "kd_Nms_rad",
                                   "torque_expected_Nm", "pushoff_Nm")]
        assert all(math.isfinite(v) for v in values), out
        assert abs(out["torque_ff_Nm"]) <= MAX + 1e-9
        assert 0.0 <= out["kp_Nm_rad"] <= P["safety.passive_stiffness_Nm_rad"] + 1e-9
        assert 0.0 <= out["kd_Nms_rad"] <= P["safety.passive_damping_Nms_rad"] + 1e-9
        if math.isfinite(angle) and math.isfinite(vel):
            assert abs(out["torque_expected_Nm"]) <= MAX + 1e-6
        # slew bound (over the real interval), unless the total-torque bound in force (which takes
        # precedence; thermal derating may have lowered it, and with the motor's angle trusted the
        # driver's spring keeps kp x |v| x DRIVER_LAG_S of it free) had to cut it
        limit = tick.safety.torque_limit_Nm
        assert limit <= MAX
        bound = limit
        if ANGLE_SOURCES[tick.safety.angle_source] == "motor" and math.isfinite(vel):
            bound = max(0.0, limit - out["kp_Nm_rad"] * abs(vel) * DRIVER_LAG_S)
        dt = min(2.5 * DT if late else DT, 0.05)
        step = abs(out["torque_ff_Nm"] - last_ff)
        assert step <= SLEW * dt + 1e-9 or abs(abs(out["torque_expected_Nm"]) - bound) < 1e-6, (step, out)
        last_ff = out["torque_ff_Nm"]


@pytest.mark.parametrize("change,fragment", [
    ({"t_min": 18.0}, "t_min: must be below t_max"),
    ({"kd_max": float("nan")}, "kd_max: must be finite"),
    ({"p_max": None}, "must be a number"),
])
def test_a_bad_driver_range_never_reaches_the_tick(change, fragment):
    from hal.errors import ConfigError
    rng = dict(mit_range("AK80-9"), **change)
    with pytest.raises(ConfigError, match=fragment):
        build_tick(P, rng, 1)
    with pytest.raises(ConfigError, match="missing"):
        build_tick(P, {"p_min": -1.0}, 1)


# ---- issue 14, item 1: a safe state never uses the encoder it has just found faulty ---------------

def _encoder_fault(s, stance=1, load=700.0):
    """Walk healthy, then make the motor encoder jump by +0.9 rad (it stays offset)."""
    now, _ = ticks(s, 40, cmd=dict(torque_ff_Nm=50.0), g=dict(stance=stance), load_N=load)
    now, _ = ticks(s, 3, t0=now, cmd=dict(torque_ff_Nm=50.0), g=dict(stance=stance), load_N=load,
                   motor_angle_rad=0.9)
    assert "encoder" in fault_names(s.faults) and s.mode == SAFE
    return now


@settings(max_examples=60, deadline=None)
@given(angle=st.floats(-12.0, 12.0), vel=st.floats(-50.0, 50.0), joint=st.floats(-0.6, 0.6),
       stance=st.booleans())
def test_after_an_encoder_fault_no_torque_depends_on_any_ankle_angle(angle, vel, joint, stance):
    """The soft end stops and the driver-side spring read the motor encoder; after it is found
    faulty (a jump to 0.9 rad drove the soft stop to the full 110 N*m limit, toe held down in swing)
    neither may act on it, nor on the joint encoder (a mismatch cannot tell which of the two lies)."""
    s = safety()
    load = 700.0 if stance else 0.0
    now = _encoder_fault(s, int(stance), load)
    now, out = ticks(s, int(P["safety.ramp_s"] / DT) + 5, t0=now, g=dict(stance=int(stance)), load_N=load,
                     motor_angle_rad=angle, motor_vel_rad_s=vel, ankle_angle_rad=joint)
    assert out["kp_Nm_rad"] == 0.0
    assert out["torque_ff_Nm"] == pytest.approx(0.0, abs=1e-9), "feed-forward from a faulty angle"
    # the damper is bounded for the fastest velocity the driver can report (its reading may lie)
    v_max = s.max_speed_rad_s
    assert out["kd_Nms_rad"] * v_max <= MAX + 1e-9
    assert abs(out["torque_expected_Nm"]) <= MAX + 1e-9


def test_stale_driver_replies_put_the_safe_spring_on_the_joint_encoder_not_the_stale_reading():
    """Replies stop: the last motor angle is stale, so no spring about it on the driver; the
    joint encoder (an independent sensor) gives the passive foot's spring, computed every tick."""
    s = safety()
    now, _ = ticks(s, 20, g=dict(stance=1), load_N=700.0)
    frozen = now
    now, out = ticks(s, 200, t0=now, g=dict(stance=1), load_N=700.0, motor_rx_s=lambda t: frozen,
                     motor_angle_rad=0.9, ankle_angle_rad=0.1)
    assert "motor_stale" in fault_names(s.faults) and s.mode == SAFE
    assert out["kp_Nm_rad"] == 0.0
    assert out["torque_ff_Nm"] == pytest.approx(P["safety.passive_stiffness_Nm_rad"] * 0.1, rel=1e-6)
    # the soft end stop acts on the joint angle too, never on the stale 0.9 rad
    _, out = ticks(s, 50, t0=now, g=dict(stance=1), load_N=700.0, motor_rx_s=lambda t: frozen,
                   motor_angle_rad=0.9, ankle_angle_rad=0.3)
    spring = P["safety.passive_stiffness_Nm_rad"] * 0.3
    stop = P["safety.soft_stiffness_Nm_rad"] * (0.3 - P["safety.soft_dorsi_rad"])
    assert out["torque_ff_Nm"] == pytest.approx(spring + stop, rel=1e-6)


# ---- a torque-only drive: the safe state's spring-damper runs on the host -------------------------

def _twin_safe_states(angle_rad, vel_rad_s, **over):
    """The same fault on two safety stages, one for a driver-side impedance drive, one torque-only:
    the motor moving at vel_rad_s, both encoders agreeing, about angle_rad at the last tick."""
    over.setdefault("motor_angle_rad", lambda t: angle_rad + vel_rad_s * (t - 1.405))
    over.setdefault("ankle_angle_rad", lambda t: angle_rad + vel_rad_s * (t - 1.405))
    over.setdefault("motor_vel_rad_s", vel_rad_s)
    pair, outs = [], []
    for host in (False, True):
        s = safety()
        s.host_impedance = host
        ticks(s, 5, **over)
        s.latch(fault_bit("overrun"), 1.005)    # a fault of neither sensor: the safe state
        outs.append(ticks(s, 400, t0=1.005, **over)[1])
        pair.append(s)
    return pair, outs


@settings(max_examples=60, deadline=None)
@given(angle=st.floats(-0.35, 0.35), vel=st.floats(-3.0, 3.0))
def test_a_torque_only_drive_gets_the_safe_state_spring_damper_as_torque(angle, vel):
    (imp, host), (out_imp, out_host) = _twin_safe_states(angle, vel)
    assert imp.mode == SAFE and host.mode == SAFE
    # the impedance drive gets gains; the torque-only one none, and the whole torque as feed-forward
    assert out_imp["kp_Nm_rad"] > 0.0
    assert out_host["kp_Nm_rad"] == out_host["kd_Nms_rad"] == out_host["p_des_rad"] == 0.0
    assert out_host["torque_ff_Nm"] == out_host["torque_expected_Nm"]
    # what it applies is the law the other drive runs: ff + kp (angle - p_des) + kd vel, bounded
    assert abs(out_host["torque_ff_Nm"]) <= MAX + 1e-9
    law = (out_imp["torque_ff_Nm"] + out_imp["kp_Nm_rad"] * (angle - out_imp["p_des_rad"])
           + out_imp["kd_Nms_rad"] * vel)
    if abs(law) < MAX - DRIVER_LAG_S * out_imp["kp_Nm_rad"] * abs(vel) - 1e-6:
        assert out_host["torque_ff_Nm"] == pytest.approx(law, abs=1e-6)


def test_a_torque_only_drive_gets_no_damper_on_a_drive_velocity_it_cannot_trust():
    # stale replies: the angle comes from the joint encoder; the drive's velocity reading is old
    (imp, host), (out_imp, out_host) = _twin_safe_states(0.1, 2.0, motor_rx_s=lambda t: 1.0)
    assert host.angle_source == 2 and imp.angle_source == 2          # the joint encoder
    assert out_imp["kd_Nms_rad"] > 0.0                                # the driver damps on its own
    assert out_host["kd_Nms_rad"] == 0.0
    # the joint-encoder spring only: no term of the stale 2 rad/s
    assert out_host["torque_ff_Nm"] == out_host["torque_expected_Nm"] == pytest.approx(out_imp["torque_ff_Nm"])
