"""Fault injection in the simulator: what the simulated hardware emits, frame by frame.

Real plant, real wearer, real CAN frames on a python-can virtual bus, decoded with hal's
codecs.  Every device-side kind is compared with a run without it: identical before its
t_s, faulty (as the kind says) from t_s on.  How the controller reacts is not tested here.
"""
from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from typing import List, Tuple

import can
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from hal import _mit
from hal._sensor_frames import IMU_ID, LOAD_ID, STATUS_ID, decode_imu, decode_load, decode_status
from hal.ak import mit_range
from hal.bus import BusConfig, open_bus
from sim.devices import SimAnkle
from sim.faults import DEVICE_KINDS, HOST_KINDS, KINDS, Injection, resolved_value
from sim.plant import DEFAULTS, TRUTH_LENGTH, build_plant
from sim.wearer import Wearer

RNG = mit_range("AK80-9")
DRIVER_ID = DEFAULTS["driver_id"]
REPLY_ID = 0x000
DT_S = 1e-3
T_FAULT_S = 0.5                 # injections in the frame-level tests begin here
RECORD_S = 1.2                  # long enough to reach swing (toe-off near 0.68 s)
MOTOR_PER_ANKLE = DEFAULTS["direction"] * DEFAULTS["ratio"]
V_LSB = (RNG["v_max"] - RNG["v_min"]) / 4095        # reply velocity resolution, rad/s
P_LSB = (RNG["p_max"] - RNG["p_min"]) / 65535       # reply position resolution, rad


def feed_forward(t_s: float) -> bytes:
    """The host's command at ``t_s``: a slowly varying feed-forward torque and no gains, so the
    driver's law does not read its encoder and an encoder fault leaves the physics unchanged."""
    return _mit.pack_command(RNG, 0.0, 0.0, 0.0, 0.0, 2.0 * math.sin(2.0 * math.pi * t_s))


@dataclass
class Recording:
    """What the host received, per step, and the plant's ground truth."""

    t: np.ndarray                                  # step times, s
    frames: List[List[Tuple[int, bytes]]]          # per step: (arbitration id, data)
    truth: np.ndarray                              # per step: AnklePlant.truth
    watchdog: np.ndarray                           # per step: driver watchdog tripped

    def of(self, can_id: int) -> List[Tuple[float, bytes]]:
        """(step time, data) of every frame with ``can_id``."""
        return [(t, data) for t, step in zip(self.t, self.frames) for i, data in step if i == can_id]

    def replies(self):
        """(step time, decoded reply) of every driver reply."""
        return [(t, _mit.unpack_reply(RNG, d)) for t, d in self.of(REPLY_ID)]


def record(faults=(), *, duration_s=RECORD_S, step_s=DT_S, command=feed_forward, walking=True,
           **overrides) -> Recording:
    """Lock-step the simulated devices as the harness does, with a scripted host.

    The host enters motor mode before the first step, then after every step reads what came
    and sends ``command(t)``.
    """
    config = BusConfig(interface="virtual", channel=f"sim-faults-{uuid.uuid4().hex[:8]}")
    host, sim_bus = open_bus(config), open_bus(config)
    try:
        plant = build_plant(overrides)
        sim = SimAnkle(sim_bus, plant, Wearer("steady", 1.25, 80.0, seed=0), faults=faults)
        if walking:
            sim.begin_walking(0.0)
        host.send(can.Message(arbitration_id=DRIVER_ID, data=_mit.ENTER_FRAME, is_extended_id=False))
        n = int(round(duration_s / step_s))
        t = np.arange(n) * step_s
        frames, truth, watchdog = [], np.zeros((n, TRUTH_LENGTH)), np.zeros(n, dtype=bool)
        for k in range(n):
            sim.step_to(t[k])
            got = []
            while (msg := host.recv(0.0)) is not None:
                got.append((msg.arbitration_id, bytes(msg.data)))
            frames.append(got)
            plant.truth(truth[k])
            watchdog[k] = plant.watchdog_tripped
            host.send(can.Message(arbitration_id=DRIVER_ID, data=command(t[k]), is_extended_id=False))
        return Recording(t, frames, truth, watchdog)
    finally:
        host.shutdown()
        sim_bus.shutdown()


@pytest.fixture(scope="module")
def baseline() -> Recording:
    return record()


def before(rec: Recording, t_s: float):
    sel = rec.t < t_s
    return [f for f, s in zip(rec.frames, sel) if s], rec.truth[sel]


# ------------------------------------------------------------------ the vocabulary

def test_kinds_are_the_catalogue_and_split_between_host_and_devices():
    assert set(KINDS) == {
        "comms_loss", "stale_replies", "driver_error", "over_temperature", "encoder_jump",
        "encoder_stuck", "imu_loss", "imu_stuck", "imu_range", "load_loss", "load_stuck",
        "load_saturation", "host_hang", "loop_overrun", "low_voltage", "nonfinite_command", "winding_heat",
        "spoof_imu", "spoof_load", "duplicate_frames", "reorder_frames", "node_status_flags", "supply_reading"}
    assert HOST_KINDS == {"host_hang", "loop_overrun", "nonfinite_command"}
    assert DEVICE_KINDS == set(KINDS) - HOST_KINDS
    defaults = {k: v for k, (_, v) in KINDS.items() if not math.isnan(v)}
    assert defaults == {"driver_error": 2.0, "over_temperature": 100.0, "winding_heat": 300.0, "encoder_jump": 0.3,
                        "imu_range": 40.0, "load_stuck": 800.0, "load_saturation": 20000.0,
                        "loop_overrun": 2.0, "low_voltage": 18.0, "spoof_imu": 2000.0, "spoof_load": 2000.0,
                        "node_status_flags": 255.0, "supply_reading": 655.35}
    assert resolved_value(Injection("imu_range", 1.0)) == 40.0
    assert resolved_value(Injection("imu_range", 1.0, value=-3.0)) == -3.0
    assert math.isnan(resolved_value(Injection("imu_loss", 1.0)))


@pytest.mark.parametrize("kwargs, message", [
    (dict(kind="imu_lost", t_s=1.0), "unknown fault kind 'imu_lost'; known kinds: comms_loss, "),
    (dict(kind="imu_loss", t_s=-0.1), "t_s must be finite and >= 0"),
    (dict(kind="imu_loss", t_s=math.inf), "t_s must be finite"),
    (dict(kind="imu_loss", t_s=1.0, duration_s=0.0), "duration_s must be > 0"),
    (dict(kind="imu_loss", t_s=1.0, duration_s=math.nan), "duration_s must be > 0"),
    (dict(kind="imu_loss", t_s=1e9, duration_s=1e-9), "duration_s 1e-09 is lost in rounding"),
    (dict(kind="imu_loss", t_s=1.0, value=1.0), "imu_loss takes no value"),
    (dict(kind="imu_range", t_s=1.0, value=math.inf), "value must be finite"),
    (dict(kind="driver_error", t_s=1.0, value=0.0), "integer error code 1..255"),
    (dict(kind="driver_error", t_s=1.0, value=2.5), "integer error code 1..255"),
    (dict(kind="loop_overrun", t_s=1.0, value=1.0), "integer >= 2"),
    (dict(kind="over_temperature", t_s=1.0, value=-1.0), ">= 0 W"),
    (dict(kind="low_voltage", t_s=1.0, value=-1.0), ">= 0 V"),
])
def test_bad_injections_are_refused_with_the_reason(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(".", r"\.")):
        Injection(**kwargs)


def _valid(kind, t_s, duration_s, value) -> bool:
    """The validation rules, written out independently of sim.faults."""
    if kind not in KINDS or not (math.isfinite(t_s) and t_s >= 0) or not duration_s > 0:
        return False
    if t_s + duration_s == t_s:          # a window that rounds to nothing would never act
        return False
    if math.isnan(value):
        return True
    if math.isnan(KINDS[kind][1]) or not math.isfinite(value):
        return False
    return {"driver_error": value == int(value) and 1 <= value <= 255,
            "loop_overrun": value == int(value) and value >= 2,
            "over_temperature": value >= 0, "winding_heat": value >= 0,
            "low_voltage": value >= 0,
            "spoof_imu": 1 <= value <= 20000, "spoof_load": 1 <= value <= 20000,
            "node_status_flags": value == int(value) and 1 <= value <= 255,
            "supply_reading": 0 <= value <= 655.35}.get(kind, True)


@settings(max_examples=400, deadline=None)
@given(kind=st.one_of(st.sampled_from(sorted(KINDS)), st.text(max_size=12)),
       t_s=st.floats(), duration_s=st.floats(),
       value=st.one_of(st.floats(), st.integers(-300, 300).map(float)))
def test_injection_is_accepted_exactly_when_valid(kind, t_s, duration_s, value):
    try:
        inj = Injection(kind, t_s, duration_s, value)
    except ValueError:
        assert not _valid(kind, t_s, duration_s, value)
    else:
        assert _valid(kind, t_s, duration_s, value)
        assert inj.active_at(t_s) and not inj.active_at(inj.end_s)


# ------------------------------------------------------------------ device-side kinds, frame by frame

@pytest.mark.parametrize("kind", sorted(DEVICE_KINDS))
def test_nothing_changes_before_t_s_and_something_does_after(baseline, kind):
    rec = record([Injection(kind, T_FAULT_S)])
    frames_before, truth_before = before(rec, T_FAULT_S)
    base_frames, base_truth = before(baseline, T_FAULT_S)
    assert frames_before == base_frames
    np.testing.assert_array_equal(truth_before, base_truth)
    assert rec.frames != baseline.frames or not np.array_equal(rec.truth, baseline.truth)


def test_comms_loss_silences_the_driver_and_its_watchdog_makes_it_limp(baseline):
    rec = record([Injection("comms_loss", T_FAULT_S)])
    assert all(t < T_FAULT_S for t, _ in rec.replies()), "the driver hears nothing, so replies nothing"
    assert len(rec.of(IMU_ID)) == len(baseline.of(IMU_ID)), "the sensor node is not affected"
    tripped = rec.t[rec.watchdog]
    # the last command arrived at the step before t_s; the watchdog acts once it is older than 50 ms
    assert tripped.size and T_FAULT_S - DT_S + DEFAULTS["watchdog_s"] < tripped[0] \
        <= T_FAULT_S + DEFAULTS["watchdog_s"] + DT_S
    assert not baseline.watchdog.any()


def test_stale_replies_withhold_the_replies_but_the_driver_still_acts(baseline):
    rec = record([Injection("stale_replies", T_FAULT_S)])
    assert [t for t, _ in rec.replies()] == [t for t, _ in baseline.replies() if t < T_FAULT_S]
    np.testing.assert_array_equal(rec.truth, baseline.truth)     # same torque: commands obeyed
    assert not rec.watchdog.any()
    assert rec.of(IMU_ID) == baseline.of(IMU_ID) and rec.of(LOAD_ID) == baseline.of(LOAD_ID)


@pytest.mark.parametrize("value, code", [(math.nan, 2), (5.0, 5), (200.0, 200)])
def test_driver_error_is_in_every_reply_from_t_s(baseline, value, code):
    rec = record([Injection("driver_error", T_FAULT_S, value=value)])
    base = dict(baseline.of(REPLY_ID))
    for t, data in rec.of(REPLY_ID):
        assert data[7] == (code if t >= T_FAULT_S else 0)
        assert data[:7] == base[t][:7], "everything else as without the fault"


def test_encoder_jump_offsets_the_reply_by_the_jump_times_the_ratio(baseline):
    jump = 0.3
    rec = record([Injection("encoder_jump", T_FAULT_S, value=jump)])
    np.testing.assert_array_equal(rec.truth, baseline.truth)     # no gains: physics unchanged
    base = dict(baseline.replies())
    after = [(t, r) for t, r in rec.replies() if t >= T_FAULT_S]
    assert len(after) > 500
    for t, r in after:
        assert r["p_rad"] - base[t]["p_rad"] == pytest.approx(MOTOR_PER_ANKLE * jump, abs=2 * P_LSB)
        assert r["v_rad_s"] == base[t]["v_rad_s"]
    assert rec.of(LOAD_ID) == baseline.of(LOAD_ID), "the joint encoder is another sensor"


def test_encoder_stuck_freezes_the_reply_position_and_reads_no_velocity(baseline):
    rec = record([Injection("encoder_stuck", T_FAULT_S)])
    base = dict(baseline.replies())
    after = [(t, r) for t, r in rec.replies() if t >= T_FAULT_S]
    frozen = base[after[0][0]]["p_rad"]                        # the reading at t_s
    assert all(r["p_rad"] == frozen and abs(r["v_rad_s"]) <= V_LSB for _, r in after)
    moving = [base[t]["p_rad"] for t, _ in after]
    assert max(moving) - min(moving) > 0.5, "the motor did move meanwhile"


def test_driver_law_runs_on_its_own_faulty_encoder():
    """A jump moves the spring's set point: a position hold then pushes with kp * jump."""
    kp = 2.0
    hold = lambda t: _mit.pack_command(RNG, 0.0, 0.0, kp, 0.0, 0.0)   # noqa: E731
    quiet = dict(walking=False, duration_s=0.3, command=hold)
    ok = record(**quiet)
    jumped = record([Injection("encoder_jump", 0.1, value=0.05)], **quiet)
    assert abs(ok.replies()[-1][1]["t_Nm"]) < 0.05
    # the driver pulls toward its zero, now 0.05 rad (ankle) away from where the ankle is
    torque = [r["t_Nm"] for t, r in jumped.replies() if 0.1 < t < 0.102]
    assert torque[0] == pytest.approx(-kp * MOTOR_PER_ANKLE * 0.05, rel=0.05)


def test_imu_loss_stops_only_the_imu_frames(baseline):
    rec = record([Injection("imu_loss", T_FAULT_S)])
    assert [t for t, _ in rec.of(IMU_ID)] == [t for t, _ in baseline.of(IMU_ID) if t < T_FAULT_S]
    assert rec.of(LOAD_ID) == baseline.of(LOAD_ID)
    assert rec.of(STATUS_ID) == baseline.of(STATUS_ID)


def test_imu_stuck_repeats_the_sample_at_t_s_while_the_sequence_counts_on(baseline):
    rec = record([Injection("imu_stuck", T_FAULT_S)])
    base = dict(baseline.of(IMU_ID))
    after = [(t, d) for t, d in rec.of(IMU_ID) if t >= T_FAULT_S]
    first = after[0][1]
    assert first == base[after[0][0]], "the sample taken at t_s"
    for t, data in after:
        assert data[:6] == first[:6], "gyro and both accelerations repeat, bit for bit"
        assert data[6:] == base[t][6:], "sequence and status as without the fault"
    seqs = [decode_imu(d)["seq"] for _, d in after]
    assert all((b - a) % 256 == 1 for a, b in zip(seqs, seqs[1:]))
    assert len({d[:2] for t, d in baseline.of(IMU_ID) if t >= T_FAULT_S}) > 100, "the true gyro moves"


@pytest.mark.parametrize("value, reads", [(math.nan, 32.767), (-50.0, -32.768), (5.0, 5.0)])
def test_imu_range_fault_reads_a_constant_rate_saturated_by_the_frame(baseline, value, reads):
    rec = record([Injection("imu_range", T_FAULT_S, value=value)])
    base = dict(baseline.of(IMU_ID))
    for t, data in rec.of(IMU_ID):
        if t >= T_FAULT_S:
            assert decode_imu(data)["gyro_z_rad_s"] == pytest.approx(reads, abs=1e-9)
            assert data[2:] == base[t][2:], "accelerations, sequence, status unchanged"


def test_load_loss_stops_only_the_load_frames(baseline):
    rec = record([Injection("load_loss", T_FAULT_S)])
    assert [t for t, _ in rec.of(LOAD_ID)] == [t for t, _ in baseline.of(LOAD_ID) if t < T_FAULT_S]
    assert rec.of(IMU_ID) == baseline.of(IMU_ID)


@pytest.mark.parametrize("kind, value, reads", [("load_stuck", math.nan, 800.0),
                                                ("load_stuck", 250.0, 250.0),
                                                ("load_saturation", math.nan, 16383.5)])
def test_stuck_or_saturated_load_reads_constant_even_in_swing(baseline, kind, value, reads):
    rec = record([Injection(kind, T_FAULT_S, value=value)])
    base = dict(baseline.of(LOAD_ID))
    stance = dict(zip(baseline.t, baseline.truth[:, 2]))
    after = [(t, d) for t, d in rec.of(LOAD_ID) if t >= T_FAULT_S]
    assert any(stance[t] == 0.0 for t, _ in after), "the window reaches swing"
    for t, data in after:
        assert decode_load(data)["load_N"] == reads
        assert data[2:] == base[t][2:], "joint encoder, sequence, status unchanged"


@pytest.mark.parametrize("value, supply, error", [(math.nan, 18.0, 0), (15.0, 15.0, 4)])
def test_low_voltage_is_in_the_status_frame_and_under_16_v_in_the_replies(baseline, value, supply, error):
    rec = record([Injection("low_voltage", T_FAULT_S, value=value)])
    status = [(t, decode_status(d)["supply_V"]) for t, d in rec.of(STATUS_ID)]
    assert all(v == pytest.approx(24.0 if t < T_FAULT_S else supply) for t, v in status)
    assert len([1 for t, _ in status if t >= T_FAULT_S]) >= 30          # 50 Hz
    assert {r["error_code"] for t, r in rec.replies() if t >= T_FAULT_S} == {error}
    assert {r["error_code"] for t, r in rec.replies() if t < T_FAULT_S} == {0}


@pytest.mark.parametrize("kind, value", [
    ("stale_replies", math.nan), ("driver_error", math.nan), ("encoder_jump", math.nan),
    ("imu_loss", math.nan), ("imu_stuck", math.nan), ("imu_range", math.nan),
    ("load_loss", math.nan), ("load_stuck", math.nan), ("low_voltage", 12.0)])
def test_a_sensor_or_frame_fault_that_ends_leaves_the_frames_as_without_it(baseline, kind, value):
    """These faults do not change the physics, and the noise was drawn all along, so once
    they end every frame is again the one sent without them."""
    end_s = T_FAULT_S + 0.2
    rec = record([Injection(kind, T_FAULT_S, duration_s=0.2, value=value)])
    after_end = [f for f, t in zip(rec.frames, rec.t) if t >= end_s]
    assert after_end == [f for f, t in zip(baseline.frames, baseline.t) if t >= end_s]
    assert rec.frames != baseline.frames


def test_the_injection_that_began_last_wins_on_one_sensor(baseline):
    rec = record([Injection("load_stuck", 0.3, value=100.0), Injection("load_saturation", 0.6),
                  Injection("load_stuck", 0.2, value=300.0, duration_s=0.2)])
    reads = {round(t, 3): decode_load(d)["load_N"] for t, d in rec.of(LOAD_ID)}
    assert (reads[0.25], reads[0.35], reads[0.45], reads[0.65]) == (300.0, 100.0, 100.0, 16383.5)


# ------------------------------------------------------------------ heat

def reported_temperature(rec: Recording) -> int:
    return rec.replies()[-1][1]["temperature_C"]


def test_two_node_model_reaches_the_analytic_steady_state_and_reports_the_case():
    """Constant motor current; small capacities only to reach steady state sooner."""
    over = dict(winding_capacity_J_K=1.0, case_capacity_J_K=5.0)
    torque_cmd = _mit.pack_command(RNG, 0.0, 0.0, 0.0, 0.0, 8.0)
    rec = record(walking=False, duration_s=200.0, step_s=0.04, command=lambda t: torque_cmd, **over)
    assert not rec.watchdog.any()
    current_A = _mit.unpack_command(RNG, torque_cmd)["t_Nm"] / DEFAULTS["torque_constant_Nm_A"]
    alpha, r25 = 0.00393, DEFAULTS["winding_resistance_ohm"]
    r_wc, r_ca, ambient = (DEFAULTS[k] for k in ("winding_to_case_K_W", "case_to_ambient_K_W", "ambient_degC"))
    # P = I^2 R25 (1 + alpha (T_w - 25)) with T_w = T_amb + P (R_ca + R_wc), solved for P
    i2r = current_A ** 2 * r25
    power_W = i2r * (1 + alpha * (ambient - 25.0)) / (1 - i2r * alpha * (r_ca + r_wc))
    case_C = ambient + power_W * r_ca
    winding_C = case_C + power_W * r_wc
    assert rec.truth[-1, 8] == pytest.approx(case_C, abs=0.05)
    assert rec.truth[-1, 5] == pytest.approx(winding_C, abs=0.05)
    assert winding_C - case_C > 15.0
    assert reported_temperature(rec) == math.floor(rec.truth[-1, 8] + 0.5), "the driver reports the case"


def test_extra_heat_raises_the_winding_much_faster_than_the_case():
    idle = lambda t: _mit.pack_command(RNG, 0.0, 0.0, 0.0, 0.0, 0.0)   # noqa: E731  no current
    rec = record([Injection("winding_heat", 0.2, duration_s=2.0)], walking=False,
                 duration_s=4.0, step_s=0.02, command=idle)
    t, winding, case = rec.t, rec.truth[:, 5], rec.truth[:, 8]
    at_end = np.searchsorted(t, 2.2 - 1e-9)
    rise_w, rise_c = winding[at_end] - 25.0, case[at_end] - 25.0
    assert rise_w == pytest.approx(300.0 * 2.0 / DEFAULTS["winding_capacity_J_K"], rel=0.05)
    assert 0.0 < rise_c < rise_w / 20
    assert reported_temperature(rec) == 25, "the driver's sensor on the case barely notices"
    assert np.all(np.diff(winding[at_end + 1:]) < 0), "after the fault the winding cools"
    assert np.all(np.abs(winding[t < 0.2] - 25.0) < 1e-3), "no heat before t_s (the idle command's 4 mN*m aside)"


@pytest.mark.parametrize("case_C, error", [(99.0, 0), (101.0, 1)])
def test_driver_reports_over_temperature_from_its_case_sensor(case_C, error):
    rec = record(walking=False, duration_s=0.05, initial_winding_degC=150.0, initial_case_degC=case_C)
    replies = [r for _, r in rec.replies()]
    assert {r["temperature_C"] for r in replies} == {round(case_C)}
    assert {r["error_code"] for r in replies} == {error}


# ------------------------------------------------------------------ host-side kinds, on the stack

@pytest.fixture(scope="module")
def stack_baseline():
    from sim import harness
    return harness.run(duration_s=1.0, seed=3)


def ticked(run) -> np.ndarray:
    """Which telemetry rows the host wrote (the others stay NaN)."""
    from controller.runtime.loop import TELEMETRY_COLUMNS
    return ~np.isnan(run.telemetry[:, TELEMETRY_COLUMNS.index("t")])


def test_host_hang_leaves_no_telemetry_rows_while_the_plant_goes_on(stack_baseline):
    from sim import harness
    hang = Injection("host_hang", 0.4, duration_s=0.3)
    run = harness.run(duration_s=1.0, seed=3, faults=[hang])
    assert run.faults == (hang,)
    t = np.arange(len(run.telemetry)) * 1e-3
    rows = ticked(run)
    assert np.array_equal(rows, ~np.array([hang.active_at(x) for x in t]))
    assert not np.isnan(run.truth).any()
    np.testing.assert_array_equal(run.telemetry[t < 0.4], stack_baseline.telemetry[t < 0.4])
    np.testing.assert_array_equal(run.truth[t < 0.4], stack_baseline.truth[t < 0.4])


@pytest.mark.parametrize("value, every", [(math.nan, 2), (3.0, 3)])
def test_loop_overrun_spaces_the_ticks_by_value_periods(stack_baseline, value, every):
    from sim import harness
    overrun = Injection("loop_overrun", 0.4, duration_s=0.1, value=value)
    run = harness.run(duration_s=1.0, seed=3, faults=[overrun])
    t = np.arange(len(run.telemetry)) * 1e-3
    inside = np.array([overrun.active_at(x) for x in t])
    rows = ticked(run)
    assert rows[~inside].all(), "every tick outside the window"
    k_inside = np.flatnonzero(inside)
    assert np.array_equal(np.flatnonzero(rows & inside), k_inside[::every])
    np.testing.assert_array_equal(run.telemetry[t < 0.4], stack_baseline.telemetry[t < 0.4])


def test_plant_fault_setters_refuse_bad_arguments():
    from sim import plant as p
    plant = build_plant()
    for call in (lambda: plant.set_encoder_fault(7), lambda: plant.set_imu_fault(-1),
                 lambda: plant.set_load_fault(2), lambda: plant.set_encoder_fault(p.ENCODER_OFFSET, math.nan),
                 lambda: plant.set_imu_fault(p.IMU_GYRO_CONSTANT, math.inf),
                 lambda: plant.set_load_fault(p.LOAD_CONSTANT, math.nan),
                 lambda: plant.set_extra_heat_W(-1.0), lambda: plant.set_supply_V(math.nan)):
        with pytest.raises(ValueError):
            call()
    with pytest.raises(ValueError, match="thermal"):
        build_plant({"case_capacity_J_K": 0.0})


def test_nonfinite_command_reaches_the_kernel_only_inside_its_window(stack_baseline):
    """The harness switches the kernel's poisoned command on at t_s and off at the end; what the
    controller then does is tested with the controller.  Here: nothing changes before t_s."""
    from controller.runtime.loop import TELEMETRY_COLUMNS
    from sim import harness
    poison = Injection("nonfinite_command", 0.4, duration_s=0.05)
    run = harness.run(duration_s=1.0, seed=3, faults=[poison])
    t = np.arange(len(run.telemetry)) * 1e-3
    assert ticked(run).all()
    np.testing.assert_array_equal(run.telemetry[t < 0.4], stack_baseline.telemetry[t < 0.4])
    np.testing.assert_array_equal(run.truth[t < 0.4], stack_baseline.truth[t < 0.4])
    window = (t >= 0.4) & (t < 0.45)
    cmd = TELEMETRY_COLUMNS.index("torque_cmd_Nm")
    assert not np.array_equal(run.telemetry[window, cmd], stack_baseline.telemetry[window, cmd],
                              equal_nan=True), "the poisoned command reached the kernel"
