"""Every fault of the catalogue, injected into the simulated ankle on the full stack (bench.faults).

Each case asserts: the fault latches within the catalogue's bound, the ankle ends in the
catalogue's response (safe state or passive: no powered push-off), the commanded torque never
steps (no torque drop under load), and, where the host goes silent, the driver's watchdog acts
within its 50 ms.
"""
import numpy as np
import pytest

from bench.faults import CASES, run_case
from controller.kernels.telemetry import COLUMN as T
from controller.params.registry import ParamSet

P = ParamSet()
#: Largest tick-to-tick step of the commanded torque accepted during a fault: the slew limit
#: (3 N*m per ms) plus what the driver-side damper adds when an encoder reading jumps.
MAX_STEP_NM = 10.0


from hal.drives import DRIVE_NAMES

DRIVE_CASES = [(d, c) for d in DRIVE_NAMES for c in CASES if c.applies_to(d)]


@pytest.mark.parametrize("driver, case", DRIVE_CASES,
                         ids=[d + ":" + c.kind + ":" + c.label.split(" (")[0] for d, c in DRIVE_CASES])
def test_fault_is_detected_in_bound_and_answered_safely(driver, case):
    r = run_case(case, driver=driver)
    assert r["detect_s"] is not None, f"{case.label}: never detected"
    assert r["detect_s"] <= case.bound_s + 1e-9, (case.label, r["detect_s"])
    assert case.fault in r["faults"] and r["mode"] == case.mode, (r["faults"], r["mode"])
    assert r["largest_cmd_step_Nm"] <= MAX_STEP_NM, r
    if case.watchdog:
        # the drive's own loss-of-host protection, within the time it declares (plus a tick)
        assert r["watchdog_s"] is not None and r["watchdog_s"] <= r["drive_watchdog_s"] + 0.002, r
    run = r["run"]
    tel = run.telemetry
    t = tel[:, T["t"]]
    latched = t[~np.isnan(t) & (t >= case.t_s) & (np.nan_to_num(tel[:, T["faults"]]) > 0)][0]
    later = ~np.isnan(t) & (t >= latched + P["safety.ramp_s"] + 0.01)
    assert np.all(tel[later, T["pushoff_cmd_Nm"]] == 0.0), "no powered push-off after the response"
    if case.mode == "passive":
        # events go on from the other sensor: heel strikes keep being detected
        true_hs = [s.t_heel_strike_s for s in run.strides if s.walking and case.t_s + 0.5 < s.t_heel_strike_s < t[-1] - 0.1]
        detected = t[tel[:, T["heel_strike"]] == 1]
        assert true_hs and all(np.min(np.abs(detected - hs)) <= 0.03 for hs in true_hs)


def test_thermal_derating_is_applied_before_the_latch():
    case = next(c for c in CASES if c.kind == "over_temperature")
    r = run_case(case)
    assert r["derate_from_s"] < r["alert_from_s"] < r["limit_reached_s"]
    assert r["latch_after_limit_s"] <= 0.001
    assert r["torque_limit_min_Nm"] <= 0.3 * P["safety.max_torque_Nm"]
    assert r["peak_torque_last_Nm"] < 0.85 * r["peak_torque_first_Nm"], "derating must reduce the torque given"


def test_low_voltage_warning_drops_pushoff_first_without_a_fault():
    from sim import harness
    from sim.faults import Injection
    v = 0.5 * (P["safety.supply_warn_V"] + P["safety.supply_min_V"])
    run = harness.run(duration_s=10.0, seed=1, faults=[Injection("low_voltage", 5.0, value=v)])
    tel = run.telemetry
    t = tel[:, T["t"]]
    before = (t > 3.0) & (t < 5.0)
    after = t > 6.0
    assert int(np.max(tel[:, T["faults"]])) == 0 and tel[-1, T["mode"]] == 1
    assert np.all(tel[after, T["assist"]] == pytest.approx(0.5))
    assert np.max(tel[after, T["pushoff_cmd_Nm"]]) < 0.6 * np.max(tel[before, T["pushoff_cmd_Nm"]])
