"""Spoofed, duplicated, reordered and implausible sensor-node frames (issue 14, item 7).

Frames go through the real codec into Tick.ingest and the kernels run with Tick.update; the
simulator runs put real CAN frames on a python-can bus (sim.harness).
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from controller.kernels.faults import FAULT_BITS, WARNING_BITS, fault_bit, warning_bit
from controller.runtime.loop import build_tick
from controller.kernels.telemetry import COLUMN as T
from controller.params.registry import ParamSet
from hal._sensor_frames import (IMU_ID, LOAD_ID, STATUS_ID, _encode_imu_py, _encode_load_py,
                                _encode_status_py)
from hal.ak import mit_range
from sim import harness
from sim.faults import Injection

IMU, LOAD, NODE = fault_bit("imu"), fault_bit("load"), fault_bit("sensor_node")
NEW_FAULTS = IMU | LOAD | NODE
NEW_WARNINGS = warning_bit("supply_implausible") | warning_bit("frames_lost")
SENSOR_IDS = (IMU_ID, LOAD_ID, STATUS_ID)


def _tick():
    tick = build_tick(ParamSet(), mit_range("AK80-9"), 1, 0)
    tick.start(0.0)
    return tick


def _feed(tick, can_id, data, t):
    tick.ingest(can_id, np.frombuffer(bytes(data), dtype=np.uint8).copy(), t)


def _healthy(tick, k, t, imu=True, load=True, status=True):
    """The real node's frames of tick ``k`` (seq k), a still, loaded ankle."""
    if imu:
        _feed(tick, IMU_ID, _encode_imu_py(0.02 * math.sin(k), 0.0, 9.8, k & 0xFF, 0), t)
    if load:
        _feed(tick, LOAD_ID, _encode_load_py(700.0 + math.cos(k), 0.0, k & 0xFF, 0), t)
    if status and k % 20 == 0:
        _feed(tick, STATUS_ID, _encode_status_py(k // 20, 0, 24.0, 25, k), t)


def test_fault_and_warning_tables_mirror_the_c_bits():
    assert FAULT_BITS[1 << 11][0] == "sensor_node"
    assert WARNING_BITS[1 << 4][0] == "supply_implausible" and WARNING_BITS[1 << 5][0] == "frames_lost"


@pytest.mark.parametrize("copy_seq", [False, True])
def test_a_second_sender_is_an_imu_fault_even_with_the_real_counter(copy_seq):
    tick = _tick()
    for k in range(200):
        _healthy(tick, k, k * 1e-3)
        tick.update(k * 1e-3)
    assert tick.safety.monitor.active & NEW_FAULTS == 0
    for k in range(200, 240):
        t = k * 1e-3
        _healthy(tick, k, t)
        for j in range(2):              # 2 kHz of plausible frames besides the real 1 kHz
            seq = k if copy_seq else 77 + 2 * k + j
            _feed(tick, IMU_ID, _encode_imu_py(0.0, 0.0, 9.8, seq & 0xFF, 0), t)
        tick.update(t)
        if tick.safety.faults & IMU:
            break
    assert tick.safety.faults & IMU and k - 200 <= 20
    assert tick.frames_lost <= 2 * (k - 200 + 1) * 2


def test_frames_lost_counts_real_gaps_not_a_step_back():
    tick = _tick()
    seqs = [0, 1, 2, 5, 4, 6, 7]        # 3, 4 missing at 5; 4 then arrives late: out of sequence
    for i, s in enumerate(seqs):
        _feed(tick, IMU_ID, _encode_imu_py(0.0, 0.0, 9.8, s, 0), (s + 1) * 1e-3)
    assert tick.frames_lost == 2        # the unfixed tick counted the step back as 255 lost
    assert tick.inputs["imu_disorder"] == 1


@pytest.mark.parametrize("flags, supply_V, fault, warning", [
    (0xFF, 24.0, True, False), (0x01, 24.0, True, False), (0, 655.35, True, True), (0, 60.5, True, True),
    (0, 24.0, False, False), (0, 19.5, False, False)])
def test_node_flags_and_an_impossible_supply_are_a_sensor_node_fault(flags, supply_V, fault, warning):
    tick = _tick()
    for k in range(100):
        t = k * 1e-3
        _healthy(tick, k, t, status=False)
        if k % 20 == 0:
            _feed(tick, STATUS_ID, _encode_status_py(k // 20, flags, supply_V, 25, k), t)
        tick.update(t)
        if k == 0 and warning:
            assert tick.safety.warnings & warning_bit("supply_implausible")
            assert tick.safety.monitor.supply_scale == 0.0
    assert bool(tick.safety.faults & NODE) == fault
    assert bool(tick.safety.warnings & warning_bit("supply_implausible")) == warning


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(SENSOR_IDS), st.binary(min_size=8, max_size=8),
                          st.integers(0, 255), st.floats(0.0, 3e-3)),
                min_size=40, max_size=300))
def test_hostile_streams_never_give_a_nonfinite_command_and_bound_frames_lost(frames):
    tick = _tick()
    t = 0.0
    for k in range(50):                 # a healthy start
        _healthy(tick, k, k * 1e-3)
        tick.update(k * 1e-3)
    t = 0.05
    n = {IMU_ID: 0, LOAD_ID: 0}
    lost0 = tick.frames_lost
    t0 = t
    for can_id, payload, seq, dt in frames:
        t += dt
        data = bytearray(payload)
        if can_id == IMU_ID:
            data[6] = seq
        elif can_id == LOAD_ID:
            data = data[:6]
            data[4] = seq
        if can_id in n:
            n[can_id] += 1
        _feed(tick, can_id, data, t)
        tick.update(t)
        cmd = tick.command
        assert all(math.isfinite(cmd[f]) for f in ("torque_ff_Nm", "p_des_rad", "v_des_rad_s",
                                                   "kp_Nm_rad", "kd_Nms_rad"))
        if tick.safety.monitor.active & NEW_FAULTS or tick.safety.monitor.supply_scale == 0.0:
            assert cmd["pushoff_Nm"] == 0.0
    # at most what 1.5x the node's rate could have sent in the time, plus 2 per frame
    assert tick.frames_lost - lost0 <= 2 * (1.5 * 1000.0 * (t - t0) + 2 * sum(n.values()))


def test_frames_lost_is_exactly_what_went_missing():
    rng = np.random.default_rng(3)
    tick = _tick()
    dropped = 0
    for k in range(3000):
        t = k * 1e-3
        drop = rng.random() < 0.05
        dropped += drop and k > 0
        _healthy(tick, k, t, imu=not drop, load=True)
        tick.update(t)
    assert tick.frames_lost <= dropped and tick.frames_lost >= dropped - 1
    assert tick.safety.faults & NEW_FAULTS == 0


@pytest.mark.parametrize("kind, value, fault", [
    ("spoof_imu", 2000.0, IMU), ("spoof_load", 2000.0, LOAD), ("duplicate_frames", math.nan, IMU | LOAD),
    ("reorder_frames", math.nan, IMU | LOAD), ("node_status_flags", 255.0, NODE),
    ("supply_reading", 655.35, NODE)])
def test_injected_hostile_frames_latch_in_bound_and_withdraw_pushoff(kind, value, fault):
    t_s = 4.0
    run = harness.run(speed_m_s=1.25, duration_s=6.0, seed=2, faults=[Injection(kind, t_s, value=value)])
    tel = run.telemetry
    t = tel[:, T["t"]]
    ok = ~np.isnan(t)
    faults = np.nan_to_num(tel[:, T["faults"]]).astype(np.int64)
    assert np.all(faults[ok & (t < t_s)] == 0)
    latched = t[ok & (t >= t_s) & ((faults & fault) != 0)]
    assert latched.size and latched[0] - t_s <= (0.05 if fault == NODE else 0.02), latched[:1]
    later = ok & (t >= latched[0] + ParamSet()["safety.ramp_s"] + 0.01)
    assert np.all(tel[later, T["pushoff_cmd_Nm"]] == 0.0)
    assert np.all(np.abs(tel[ok, T["torque_cmd_Nm"]]) <= ParamSet()["safety.max_torque_Nm"] + 1e-9)


@pytest.mark.parametrize("speed, seed", [(0.8, 1), (1.25, 4), (1.6, 7)])
def test_clean_walks_raise_none_of_the_new_faults_or_warnings(speed, seed):
    run = harness.run(speed_m_s=speed, duration_s=60.0, seed=seed)
    tel = run.telemetry
    ok = ~np.isnan(tel[:, T["t"]])
    assert np.all(np.nan_to_num(tel[ok, T["faults"]]).astype(np.int64) & NEW_FAULTS == 0)
    assert np.all(np.nan_to_num(tel[ok, T["warnings"]]).astype(np.int64) & NEW_WARNINGS == 0)
