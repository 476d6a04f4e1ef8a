"""Parameters reach the kernels by one path (issue 15).

Every kernel value comes from configure() (from the registry); the kernels' configure runs
without the GIL from a parameter vector indexed by constants generated from the registry; a
change is validated and blended by its publisher and taken by the tick at a stride boundary
(``Tick.take_params``, no GIL), the same in lock-step as in real time.
"""
from __future__ import annotations

import math
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from conftest import gait, inputs
from controller.kernels._estimator import Estimator
from controller.kernels._phase_match import PhaseMatcher
from controller.kernels._pushoff import PushoffController
from controller.kernels._safety import Safety
from controller.kernels._thermal import ThermalModel
from controller.kernels.telemetry import COLUMN
from controller.kernels._tick import PARAM_COUNT, REFUSAL_CODES, TELEMETRY_COLUMNS, Tick
from controller.params import codegen
from controller.params.registry import REGISTRY, ParamError, ParamSet
from controller.runtime.loop import build_tick
from controller.runtime.retune import ParamPublisher, lockstep_channel, pack, refusal_text
from hal.ak import mit_range
from hal.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
G = 9.80665
AK = mit_range("AK80-9")
V_MAX = max(abs(AK["v_min"]), abs(AK["v_max"]))
COL = COLUMN

# What each configured kernel field must hold, computed here from the registry's values: the
# formulas of the kernels' configure before it ran without the GIL.
REFERENCE = {
    "tick.ratio": lambda p: p["actuator.ratio"],
    "tick.efficiency": lambda p: p["actuator.efficiency"],
    "tick.direction": lambda p: p["actuator.direction"],
    "tick.motor_per_ankle_rad": lambda p: p["actuator.direction"] * p["actuator.ratio"],
    "tick.motor_gain_per_ankle_gain": lambda p: 1.0 / (p["actuator.efficiency"] * p["actuator.ratio"] ** 2),
    "tick.ankle_zero_rad": lambda p: p["calibration.ankle_zero_rad"],
    "tick.motor_zero_rad": lambda p: p["calibration.motor_zero_rad"],
    "tick.gyro_bias_rad_s": lambda p: p["calibration.gyro_bias_rad_s"],
    "tick.load_offset_N": lambda p: p["calibration.load_offset_N"],
    "estimator.weight_N": lambda p: p["wearer.mass_kg"] * G,
    "estimator.hs_load_N": lambda p: p["estimator.heel_strike_load_bw"] * p["wearer.mass_kg"] * G,
    "estimator.to_load_N": lambda p: p["estimator.toe_off_load_bw"] * p["wearer.mass_kg"] * G,
    "estimator.hold_s": lambda p: p["estimator.event_hold_s"],
    "estimator.min_stride_s": lambda p: p["estimator.min_stride_s"],
    "estimator.max_stride_s": lambda p: p["estimator.max_stride_s"],
    "estimator.quiet_gyro_rad_s": lambda p: p["estimator.quiet_gyro_rad_s"],
    "estimator.standing_after_s": lambda p: p["estimator.standing_after_s"],
    "estimator.swing_gyro_rad_s": lambda p: p["estimator.swing_gyro_rad_s"],
    "estimator.template_rate": lambda p: p["estimator.template_rate"],
    "estimator.prior_weight": lambda p: p["estimator.prior_weight"],
    "controller.mass_kg": lambda p: p["wearer.mass_kg"],
    "controller.k_cp_Nm_rad": lambda p: p["stance.plantarflexion_stiffness_Nm_rad_kg"] * p["wearer.mass_kg"],
    "controller.k_cd_Nm_rad": lambda p: p["stance.stiffness_Nm_rad_kg"] * p["wearer.mass_kg"],
    "controller.b_stance_Nms_rad": lambda p: p["stance.damping_Nms_rad_kg"] * p["wearer.mass_kg"],
    "controller.stance_eq_rad": lambda p: p["stance.equilibrium_rad"],
    "controller.t_at_1_m_s": lambda p: p["speed.stride_time_at_1_m_s_s"],
    "controller.speed_exponent": lambda p: p["speed.exponent"],
    "controller.torque_ref_Nm_kg": lambda p: p["pushoff.torque_Nm_kg"],
    "controller.torque_slope_Nm_kg_per_m_s": lambda p: p["pushoff.torque_slope_Nm_s_kg_m"],
    "controller.rise_s": lambda p: p["pushoff.rise_s"],
    "controller.peak_s": lambda p: p["pushoff.peak_stance"],
    "controller.end_s": lambda p: p["pushoff.end_stance"],
    "controller.work_ref_J_kg": lambda p: p["pushoff.work_J_kg"],
    "controller.work_slope_J_kg_per_m_s": lambda p: p["pushoff.work_slope_J_s_kg_m"],
    "controller.adapt_rate": lambda p: p["pushoff.adapt_rate"],
    "controller.adapt_limit": lambda p: p["pushoff.adapt_limit"],
    "controller.min_confidence": lambda p: p["pushoff.min_confidence"],
    "controller.max_torque_Nm": lambda p: p["safety.max_torque_Nm"],
    "controller.swing_target_rad": lambda p: p["swing.target_rad"],
    "controller.swing_neutral_phase": lambda p: p["swing.neutral_phase"],
    "controller.swing_k_Nm_rad": lambda p: p["swing.stiffness_Nm_rad"],
    "controller.swing_b_Nms_rad": lambda p: p["swing.damping_Nms_rad"],
    "safety.max_torque_Nm": lambda p: p["safety.max_torque_Nm"],
    "safety.max_slew_Nm_s": lambda p: p["safety.max_slew_Nm_s"],
    "safety.stance_load_N": lambda p: p["estimator.heel_strike_load_bw"] * p["wearer.mass_kg"] * G,
    "safety.passive_k": lambda p: p["safety.passive_stiffness_Nm_rad"],
    "safety.passive_b": lambda p: p["safety.passive_damping_Nms_rad"],
    "safety.hold_k": lambda p: p["safety.hold_stiffness_Nm_rad"],
    "safety.hold_b": lambda p: p["safety.hold_damping_Nms_rad"],
    "safety.ramp_s": lambda p: p["safety.ramp_s"],
    "safety.kp_max": lambda p: max(p["safety.passive_stiffness_Nm_rad"], p["safety.hold_stiffness_Nm_rad"]),
    "safety.kd_max": lambda p: max(p["safety.passive_damping_Nms_rad"], p["safety.hold_damping_Nms_rad"],
                                   p["safety.soft_damping_Nms_rad"]),
    "safety.recover_s": lambda p: p["safety.sensor_recover_s"],
    "safety.soft_dorsi_rad": lambda p: p["safety.soft_dorsi_rad"],
    "safety.soft_plantar_rad": lambda p: p["safety.soft_plantar_rad"],
    "safety.soft_k": lambda p: p["safety.soft_stiffness_Nm_rad"],
    "safety.soft_b": lambda p: p["safety.soft_damping_Nms_rad"],
    "safety.ratio_eff": lambda p: p["actuator.ratio"] * p["actuator.efficiency"],
    "safety.max_speed_rad_s": lambda p: V_MAX / p["actuator.ratio"],
    "safety.monitor.period_s": lambda p: 1.0 / p["loop.rate_Hz"],
    "safety.monitor.overrun_gap_s": lambda p: p["safety.overrun_gap_s"],
    "safety.monitor.motor_timeout_s": lambda p: p["safety.motor_timeout_s"],
    "safety.monitor.imu_timeout_s": lambda p: p["safety.imu_timeout_s"],
    "safety.monitor.load_timeout_s": lambda p: p["safety.load_timeout_s"],
    "safety.monitor.status_timeout_s": lambda p: p["safety.status_timeout_s"],
    "safety.monitor.encoder_jump_rad": lambda p: p["safety.encoder_jump_rad"],
    "safety.monitor.encoder_mismatch_rad": lambda p: p["safety.encoder_mismatch_rad"],
    "safety.monitor.gyro_limit_rad_s": lambda p: p["safety.imu_gyro_limit_rad_s"],
    "safety.monitor.accel_limit_m_s2": lambda p: p["safety.imu_accel_limit_m_s2"],
    "safety.monitor.load_limit_N": lambda p: p["safety.load_limit_N"],
    "safety.monitor.tension_limit_N": lambda p: p["estimator.heel_strike_load_bw"] * p["wearer.mass_kg"] * G,
    "safety.monitor.loaded_N": lambda p: p["estimator.heel_strike_load_bw"] * p["wearer.mass_kg"] * G,
    "safety.monitor.swing_gyro_rad_s": lambda p: p["safety.swing_check_gyro_rad_s"],
    "safety.monitor.supply_warn_V": lambda p: p["safety.supply_warn_V"],
    "safety.monitor.supply_min_V": lambda p: p["safety.supply_min_V"],
    "safety.thermal.r25_ohm": lambda p: p["thermal.winding_resistance_ohm"],
    "safety.thermal.kt_Nm_A": lambda p: p["actuator.torque_constant_Nm_A"],
    "safety.thermal.c_wind_J_K": lambda p: p["thermal.winding_capacity_J_K"],
    "safety.thermal.r_wind_case_K_W": lambda p: p["thermal.winding_to_case_K_W"],
    "safety.thermal.c_case_J_K": lambda p: p["thermal.case_capacity_J_K"],
    "safety.thermal.r_case_amb_K_W": lambda p: p["thermal.case_to_ambient_K_W"],
    "safety.thermal.ambient_C": lambda p: p["thermal.ambient_degC"],
    "safety.thermal.i_cont_A": lambda p: p["thermal.continuous_current_A"],
    "safety.thermal.i2t_limit_A2s": lambda p: p["thermal.i2t_limit_A2s"],
    "safety.thermal.derate_start_C": lambda p: p["thermal.derate_start_degC"],
    "safety.thermal.alert_C": lambda p: p["thermal.alert_degC"],
    "safety.thermal.limit_C": lambda p: p["thermal.limit_degC"],
}
#: Parameters no kernel field holds, and who uses them instead.
NOT_IN_KERNELS = {
    "symmetry.adapt": "controller.symmetry.strides.SymmetryAdapter (supervisor side)",
    "symmetry.target_si_pct": "SymmetryAdapter",
    "symmetry.work_min_J_kg": "SymmetryAdapter",
    "symmetry.work_max_J_kg": "SymmetryAdapter",
    "symmetry.gain_J_kg_pct": "SymmetryAdapter",
    "symmetry.window_strides": "SymmetryAdapter",
    "actuator.max_torque_Nm": "a cross rule and the driver-range check (publisher and Tick.take_params)",
}


def readback(tick: Tick) -> dict:
    """Every configured value of the tick and its kernels, by dotted field name."""
    out = {f"tick.{k}": v for k, v in tick.settings().items()}
    out.update({f"estimator.{k}": v for k, v in tick.estimator.settings().items()})
    out.update({f"controller.{k}": v for k, v in tick.controller.settings().items()})
    out.update({f"safety.{k}": v for k, v in tick.safety.settings().items()})
    return out


def expected(params: ParamSet) -> dict:
    return {field: float(f(params)) for field, f in REFERENCE.items()}


def _moved(p):
    """A ParamSet with ``p`` moved off its default inside its bounds (None if no valid one)."""
    for value in (p.default + p.step, p.default - p.step, p.max, p.min, 0.5 * (p.min + p.max)):
        value = int(value) if p.kind is int else value
        if value == p.default or not p.min <= value <= p.max:
            continue
        try:
            params = ParamSet({p.name: value})
            build_tick(params, AK, 1, 0)
        except (ParamError, ValueError, ConfigError):
            continue
        return params
    return None


# ---------------------------------------------------------------------------- generated indices
def test_the_generated_index_is_the_registrys_and_written_only_when_changed(tmp_path):
    assert (ROOT / codegen.PXI_PATH).read_text() == codegen.param_index_pxi()
    assert PARAM_COUNT == len(REGISTRY)
    text = codegen.param_index_pxi()
    for i, p in enumerate(REGISTRY):
        assert f"    {codegen.constant_name(p.name)} = {i}    # {p.name} " in text
    assert codegen.constant_name("pushoff.torque_Nm_kg") == "P_PUSHOFF_TORQUE_NM_KG"
    from controller.kernels import codegen as kernels_codegen       # the one writer of generated files
    assert tmp_path / codegen.PXI_PATH in kernels_codegen.write_all(tmp_path)
    stamp = (tmp_path / codegen.PXI_PATH).stat().st_mtime_ns
    assert kernels_codegen.write_all(tmp_path) == []               # unchanged: nothing rebuilds
    assert (tmp_path / codegen.PXI_PATH).stat().st_mtime_ns == stamp
    clash = (REGISTRY[0], REGISTRY[0].__class__(**{**REGISTRY[0].__dict__, "name": "wearer.mass.kg"}))
    with pytest.raises(ValueError, match="same Cython constant"):
        codegen.param_index_pxi(clash)


def test_setup_py_generates_the_index_before_any_extension_exists(tmp_path):
    # setup.py imports the generator by path, before the build: it must not need a compiled module
    import ast
    tree = ast.parse((ROOT / "controller" / "params" / "codegen.py").read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert imported <= {"__future__", "re", "pathlib", "typing", "controller.params.registry"}
    assert "codegen.write_all()" in (ROOT / "setup.py").read_text()
    from controller.kernels import codegen as kernels_codegen
    written = kernels_codegen.write_all(tmp_path)      # both generated files, from one call
    assert sorted(p.name for p in written) == ["_param_index.pxi", "_tables.pxd"]
    assert kernels_codegen.write_all(tmp_path) == []


# ---------------------------------------------------------------------------- no defaults of their own
def test_an_unconfigured_kernel_refuses_to_run():
    """Before the fix a bare PushoffController planned push-off with its own 0.9 N*m/kg (the
    registry says 0.54): a kernel must not run on values that are not the registry's."""
    with pytest.raises(RuntimeError, match="not configured"):
        PushoffController().plan_stride(gait(heel_strike=1, phase=0.0))
    with pytest.raises(RuntimeError, match="not configured"):
        PushoffController().command_for(gait(), inputs())
    n = 4
    with pytest.raises(RuntimeError, match="not configured"):
        Estimator().run_arrays(*(np.zeros(n) for _ in range(4)), np.zeros(n),
                               *(np.zeros(n, np.int8) for _ in range(3)))
    with pytest.raises(RuntimeError, match="not configured"):
        Safety().start(0.0)
    with pytest.raises(RuntimeError, match="not configured"):
        ThermalModel().advance(1.0, 30.0, 0.001)
    with pytest.raises(RuntimeError, match="not configured"):
        PhaseMatcher().py_add(0.0, 1.0)
    tick = Tick()
    with pytest.raises(RuntimeError, match="not configured"):
        tick.update(0.0)
    with pytest.raises(RuntimeError, match="not configured"):
        tick.start(0.0)
    channel = lockstep_channel(ParamSet())
    ParamPublisher(channel).publish(ParamSet({"pushoff.torque_Nm_kg": 0.6}))
    tick.take(channel)                                 # nothing to take into: nothing taken
    assert channel.word("params_taken") == 0
    # and nothing of a bare kernel looks like a value: every tunable is NaN until configured
    assert all(math.isnan(v) for v in PushoffController().settings().values())
    assert all(math.isnan(v) for v in Safety().settings().values())
    assert all(math.isnan(v) for v in Tick().settings().values())


def test_configured_kernels_hold_the_registrys_defaults():
    """The kernel-default drift check: what the kernels run with is what the registry declares."""
    got = readback(build_tick(ParamSet(), AK, 1, 0))
    want = expected(ParamSet())
    assert set(got) == set(want), "a kernel field without a reference here, or the other way round"
    for field in want:
        assert got[field] == pytest.approx(want[field], rel=1e-12, abs=0.0), field
    c = PushoffController()
    c.configure(ParamSet())
    assert c.settings()["torque_ref_Nm_kg"] == ParamSet()["pushoff.torque_Nm_kg"] == 0.54


def test_every_configured_field_is_reached_by_a_registry_parameter():
    base = readback(build_tick(ParamSet(), AK, 1, 0))
    reached = {field: [] for field in base}
    unused = []
    for p in REGISTRY:
        params = _moved(p)
        assert params is not None, f"{p.name}: no valid value off its default"
        got = readback(build_tick(params, AK, 1, 0))
        changed = [f for f in base if got[f] != base[f]]
        for f in changed:
            reached[f].append(p.name)
        if not changed:
            unused.append(p.name)
        assert not any(math.isnan(v) for v in got.values()), p.name
    assert [f for f, by in reached.items() if not by] == [], "fields no parameter sets"
    assert sorted(unused) == sorted(NOT_IN_KERNELS), "parameters no kernel holds"


_VALUE = {p.name: (st.integers(int(p.min), int(p.max)) if p.kind is int
                   else st.floats(p.min, p.max, allow_nan=False)) for p in REGISTRY}


@st.composite
def param_sets(draw):
    names = draw(st.lists(st.sampled_from([p.name for p in REGISTRY]), max_size=12, unique=True))
    values = {n: draw(_VALUE[n]) for n in names}
    if "actuator.direction" in values:
        values["actuator.direction"] = 1 if values["actuator.direction"] >= 0 else -1
    try:
        params = ParamSet(values)
    except ParamError:
        assume(False)
    assume(params["actuator.max_torque_Nm"] <= AK["t_max"])
    return params


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])
@given(param_sets())
def test_configure_from_any_vector_gives_the_reference_state(params):
    got = readback(build_tick(params, AK, 1, 0))
    want = expected(params)
    for field in want:
        assert got[field] == pytest.approx(want[field], rel=1e-12, abs=1e-300), field


# ---------------------------------------------------------------------------- the take path
def _tick_and_channel(params=ParamSet()):
    tick = build_tick(params, AK, 1, 0)
    channel = lockstep_channel(params)
    return tick, channel, ParamPublisher(channel, AK["t_max"])


def test_refusals_are_said_in_the_words_of_before_and_change_nothing():
    tick, channel, publisher = _tick_and_channel()
    tick.start(0.0)                                    # just started: counts as moving
    gen = publisher.publish(ParamSet({"loop.rate_Hz": 2000.0}))
    tick.take(channel)
    assert publisher.outcome(gen) == ("refused", "loop.rate_Hz is set when the controller starts (the loop's "
                                                 "period is fixed then), not while it runs")
    gen = publisher.publish(ParamSet({"wearer.mass_kg": 60.0, "safety.max_slew_Nm_s": 2000.0}))
    tick.take(channel)
    assert publisher.outcome(gen) == ("refused", "wearer.mass_kg, safety.max_slew_Nm_s can only change while "
                                                 "the wearer stands still, and the wearer walked or moved "
                                                 "within the last 1 s when the controller took the change")
    # beyond the driver's torque range: the publisher refuses when it knows the range, the tick anyway
    beyond = ParamSet({"actuator.max_torque_Nm": 19.0})
    with pytest.raises(ParamError, match="torque limit"):
        publisher.publish(beyond)
    gen = ParamPublisher(channel).publish(beyond)
    tick.take(channel)
    assert publisher.outcome(gen)[0] == "refused" and "torque limit" in publisher.outcome(gen)[1]
    assert channel.word("params_refusal_code") == REFUSAL_CODES["driver_range"]
    assert channel.word("params_rejected") == 3
    assert dict(tick.params) == dict(ParamSet()) and tick.params_version == 1
    assert refusal_text(99) == "refused by the controller (reason code 99)"


def test_a_damaged_publication_is_refused_whole():
    tick, channel, _ = _tick_and_channel()
    for count in (0.0, 5.0, 1.5, np.nan):
        raw = pack(ParamSet(), [ParamSet({"pushoff.torque_Nm_kg": 0.6})])
        raw[0] = count
        channel.published.publish(raw)
        tick.take(channel)
        assert channel.word("params_refusal_code") == REFUSAL_CODES["malformed"]
    assert channel.word("params_rejected") == 4 and tick.params_version == 1


def test_a_change_taken_during_a_ramp_moves_on_from_where_the_tick_is():
    """The publisher blends from the set the tick reported (the last target); the tick, still
    ramping the change before, moves from its own step: never a jump of more than a third of
    what is left."""
    tick, channel, publisher = _tick_and_channel()
    publisher.publish(ParamSet({"pushoff.torque_Nm_kg": 0.9}))
    tick.take(channel)
    first = tick.params["pushoff.torque_Nm_kg"]
    assert first == pytest.approx(0.54 + 0.36 / 3)
    publisher.publish(ParamSet({"pushoff.torque_Nm_kg": 0.3}))        # blended from 0.9
    seen = []
    for _ in range(3):
        tick.take(channel)
        seen.append(tick.params["pushoff.torque_Nm_kg"])
    assert seen == pytest.approx([first + (0.3 - first) / 3, first + 2 * (0.3 - first) / 3, 0.3])
    assert seen[-1] == 0.3


def test_whole_numbers_move_at_the_last_step_and_learning_stays():
    tick, channel, publisher = _tick_and_channel()
    matcher = tick.estimator.matcher
    target = ParamSet({"symmetry.window_strides": 20, "swing.stiffness_Nm_rad": 70.0})
    publisher.publish(target)
    windows, stiffness = [], []
    for _ in range(3):
        tick.take(channel)
        windows.append(tick.params["symmetry.window_strides"])
        stiffness.append(tick.controller.settings()["swing_k_Nm_rad"])
    assert windows == [10, 10, 20]
    assert stiffness == pytest.approx([50.0, 60.0, 70.0])
    assert tick.estimator.matcher is matcher
    assert readback(tick) == pytest.approx(expected(target))


def test_a_change_while_walking_waits_for_the_heel_strike():
    """Between heel strikes of a walking wearer nothing is taken: drive the real estimator with
    the reference gait's loads and gyro until it walks, then publish mid-stride."""
    from sim.traces import walking_trace
    tr = walking_trace("steady", 1.25, 12.0, stride_cv=0.0, seed=0)
    tick, channel, publisher = _tick_and_channel()
    tick.start(0.0)
    gen, taken_at, hs_at = None, None, []
    for t, g, load in zip(tr["t"], tr["shank_gyro"], tr["load"]):
        tick.set_inputs(inputs(shank_gyro_rad_s=g, load_N=load, imu_rx_s=t, load_rx_s=t, node_status_rx_s=t,
                               motor_rx_s=t))
        tick.update(t)
        if tick.gait["heel_strike"]:
            hs_at.append(t)
        if gen is None and tick.gait["walking"] and t > 6.0 and not tick.gait["heel_strike"]:
            gen = publisher.publish(ParamSet({"pushoff.torque_Nm_kg": 0.6}))
        tick.take(channel)
        if gen is not None and taken_at is None and channel.word("params_taken") == gen:
            taken_at = t
    assert taken_at is not None and taken_at in hs_at and taken_at > 6.0
    assert tick.params["pushoff.torque_Nm_kg"] == pytest.approx(0.6)


# ---------------------------------------------------------------------------- lock-step = real time
def _speed_params_per_heel_strike(telemetry: np.ndarray, exponent: float) -> list:
    """The speed.stride_time_at_1_m_s_s the controller planned each heel strike with, recovered
    from what the wearer got: speed = previous + 0.5 (v - previous), v = (t1 / stride)^(1/e)."""
    out = []
    speed, stride, hs, walking = (telemetry[:, COL[c]] for c in ("speed_m_s", "stride_time_s", "heel_strike",
                                                                  "walking"))
    for k in np.flatnonzero((hs == 1) & (walking == 1) & (stride > 0)):
        prev = speed[k - 1]
        if not prev > 0.0:
            continue
        v = prev + (speed[k] - prev) / 0.5
        out.append(stride[k] * v ** exponent)
    return out


def _steps(values: list) -> list:
    """Consecutive repeats (to 1e-9) dropped: one entry per value the ramp went through."""
    out = []
    for v in values:
        if not out or abs(v - out[-1]) > 1e-9 * abs(v):
            out.append(v)
    return out


class _PublishAt:
    """A lock-step supervisor that publishes one change at tick ``k``, as a console would."""

    def __init__(self, k: int, params: ParamSet):
        self.k, self.params, self.generation = k, params, None

    def bind(self, tick, telemetry, params, publisher=None):
        self.publisher = publisher

    def __call__(self, k, now_s):
        if k == self.k:
            self.generation = self.publisher.publish(self.params)


@pytest.mark.realtime      # an 11 s real-time session: a loaded machine's missed deadlines end it early
def test_a_change_ramps_in_alike_in_lock_step_and_in_real_time():
    from sim import harness, realtime
    before = ParamSet()
    target = before.with_values({"speed.stride_time_at_1_m_s_s": 1.5})
    e = before["speed.exponent"]
    old, new = before["speed.stride_time_at_1_m_s_s"], 1.5
    want = [old, old + (new - old) / 3, old + 2 * (new - old) / 3, new]

    lock = _PublishAt(5000, target)
    run = harness.run(duration_s=11.0, seed=1, supervisor=lock)
    lockstep = _steps(_speed_params_per_heel_strike(run.telemetry, e))

    published = {}

    def on_start(runtime, devices):
        def edit():
            end = time.monotonic() + 30
            while runtime.stats()["ticks"] < 5000 and time.monotonic() < end:
                time.sleep(0.01)
            published["generation"] = runtime.retune(target)
        threading.Thread(target=edit, daemon=True).start()

    rt = realtime.run(duration_s=11.0, on_start=on_start)
    real = _steps(_speed_params_per_heel_strike(rt.telemetry, e))
    assert lock.generation is not None and published.get("generation") is not None
    assert lockstep == pytest.approx(want, rel=1e-9)
    assert real == pytest.approx(lockstep, rel=1e-9)


@settings(max_examples=200, deadline=None)
@given(st.floats(0.0, 1.5), st.floats(0.0, 1.5), st.sampled_from([0.0, 1.5, 0.54]))
def test_steps_moved_from_where_the_tick_is_stay_between_it_and_the_target(stale, now, target):
    """A publisher's base that is not where the tick is (a ramp before still going) moves the
    steps; rounding must never take one a hair past a bound that both the tick's value and the
    target respect (the ParamSet of the step in force would not exist)."""
    mass = 80.0
    assume(max(stale, now, target) * mass <= 110.0)
    tick, channel, publisher = _tick_and_channel(ParamSet({"pushoff.torque_Nm_kg": now}))
    publisher.publish(ParamSet({"pushoff.torque_Nm_kg": target}), base=ParamSet({"pushoff.torque_Nm_kg": stale}))
    lo, hi = min(now, target), max(now, target)
    for _ in range(3):
        tick.take(channel)
        value = tick.params["pushoff.torque_Nm_kg"]           # a ParamSet: inside the bounds
        assert lo <= value <= hi
    assert tick.params["pushoff.torque_Nm_kg"] == target
