"""Figures of a simulated session, measured against the simulator's ground truth.

Events: each true heel strike (toe-off) is matched to the first detection from
``EARLY_S`` before to ``LATE_S`` after it; unmatched true events are missed,
unmatched detections are false.  Phase error is the circular difference of
estimated and true phase over the ticks where the estimator reports walking.
Work and power use the log's own columns as DESIGN.md defines them: ankle power
= -torque_Nm * d(ankle_angle)/dt, integrated over each true stance.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Dict, List, Sequence, Tuple

import numpy as np

from controller.kernels.faults import MODE_VALUES, MODES, fault_bit, fault_names, warning_bit, warning_names
from controller.kernels.telemetry import COLUMN as _T
from sim.harness import TRUTH_COLUMNS, SimRun
from sim.wearer import Stride

__all__ = ["PUSHOFF_EARLIEST_PHASE", "StrideFigures", "match_events", "stride_figures", "gait_figures", "estimator_arrays", "summary",
           "EARLY_S", "LATE_S", "SKIP_STRIDES"]

EARLY_S = 0.05
LATE_S = 0.20
#: Tolerance on the measured torque before a tick counts as a limit violation: one
#: quantisation step of the reply's torque field is 0.06 N*m at the ankle.
TORQUE_TOLERANCE_NM = 0.5

#: A stride counts as "with push-off" when the powered push-off share of the command
#: (``pushoff_cmd_Nm``: after the safety stage's assist scaling, so a latched fault or a passive
#: mode gives 0) reached this: about 10 % of the default peak for an 80 kg wearer (0.54 N*m/kg).
#: The estimator calling the stride walking is not enough (under imu_loss it still walks, and the
#: safety stage has taken push-off away).
PUSHOFF_DELIVERED_NM = 5.0

#: Push-off never begins before mid-stance (controller.kernels._pushoff), i.e. about 30 % of the stride:
#: a phase at or beyond this while the wearer stands could have pushed.
PUSHOFF_EARLIEST_PHASE = 0.30


_G = {name: i for i, name in enumerate(TRUTH_COLUMNS)}


@dataclass(frozen=True)
class StrideFigures:
    """One stride as the per-stride line prints it."""

    stride: int
    speed_m_s: float
    stride_s: float
    stance_pct: float            # estimator's stance share of this stride
    peak_torque_Nm: float
    net_work_J_per_kg: float     # over the true stance
    peak_power_W_per_kg: float
    phase_error_pct: float       # RMSE over the ticks the estimator was walking; NaN if none
    walking: bool                # the estimator reported walking for most of the stride
    pushoff_peak_Nm: float = 0.0  # the largest powered push-off command of the stride
    pushoff: bool = False        # push-off was delivered: pushoff_peak_Nm >= PUSHOFF_DELIVERED_NM

    def line(self) -> str:
        def f(x, fmt, width):
            return f"{x:{fmt}}" if np.isfinite(x) else "--".rjust(width)
        return (f"stride {self.stride:4d}  speed {self.speed_m_s:4.2f} m/s  stride {self.stride_s:5.3f} s  "
                f"stance {f(self.stance_pct, '5.1f', 5)} %  peak torque {f(self.peak_torque_Nm, '6.1f', 6)} N*m  "
                f"net work {f(self.net_work_J_per_kg, '+6.3f', 6)} J/kg  phase error "
                f"{f(self.phase_error_pct, '5.2f', 5)} %  "
                + (f"push-off {self.pushoff_peak_Nm:5.1f} N*m" if self.pushoff else "no push-off"))


def _finite_max(values: np.ndarray, default: float = float("nan")) -> float:
    """The largest finite value (rows of a hung or late host are NaN), else ``default``."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    return float(np.max(values)) if values.size else default


def match_events(true_s: Sequence[float], detected_s: Sequence[float], end_s: float = float("inf"),
                 early_s: float = EARLY_S, late_s: float = LATE_S) -> Tuple[np.ndarray, int, int]:
    """Latencies [s] of matched events, number missed, number false.

    A true event whose window runs past ``end_s`` (the end of the record) and
    found no detection is not counted as missed: it could not have been seen.
    """
    detected = list(np.asarray(detected_s, dtype=float))
    used = [False] * len(detected)
    latencies = []
    missed = 0
    for t in np.asarray(true_s, dtype=float):
        for j, d in enumerate(detected):
            if not used[j] and t - early_s <= d <= t + late_s:
                used[j] = True
                latencies.append(d - t)
                break
        else:
            missed += t + late_s <= end_s
    return np.asarray(latencies), int(missed), used.count(False)


def _circular_error(est: np.ndarray, true: np.ndarray) -> np.ndarray:
    d = est - true
    return d - np.round(d)


#: Walking strides excluded from the phase error after each start (session start, or a restart
#: after standing): the estimator has no stride time yet, or only the one from before the stop.
SKIP_STRIDES = 3
#: A stride this many times longer or shorter than the one before is a stride of a change.
CHANGE_RATIO = 1.6


def _runs(mask: np.ndarray) -> List[Tuple[int, int]]:
    """[start, end) index pairs of the True runs in ``mask``."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)))


def estimator_arrays(telemetry: np.ndarray) -> Dict[str, np.ndarray]:
    """The estimator's outputs from a telemetry table, as :func:`gait_figures` takes them."""
    return {name: telemetry[:, _T[name]] for name in ("phase", "heel_strike", "toe_off", "walking", "standing")}


def gait_figures(t: np.ndarray, est: Dict[str, np.ndarray], truth: np.ndarray, strides: Sequence[Stride],
                 *, pushoff_start_phase: float = PUSHOFF_EARLIEST_PHASE, skip_strides: int = SKIP_STRIDES) -> Dict[str, object]:
    """How well an estimator's outputs (``est``: phase, heel_strike, toe_off, walking, standing
    arrays, one value per tick) match the simulator's truth.

    - Phase RMSE over the ticks the wearer truly walks, leaving out the first ``skip_strides``
      walking strides after each start; ticks there that the estimator did not call walking are
      counted (``walking_missed_s``), not silently dropped.
    - Heel strikes and toe-offs: every loading and unloading of the foot in the truth, matched
      as :func:`match_events` does.
    - Standing: for each standing episode, how long after it began (the last heel strike) the
      estimator stopped walking; how long it reported a push-off phase while the wearer stood;
      how long after the first heel strike of the restart it walked again.
    """
    t = np.asarray(t, dtype=float)
    t_end = float(t[-1])
    walking_true = truth[:, _G["walking_true"]] > 0.5
    phase_true = truth[:, _G["phase_true"]]
    stance_true = truth[:, _G["stance_true"]] > 0.5
    walking = est["walking"] > 0.5
    phase = est["phase"]

    # ticks scored for phase: truly walking, past the first strides of each start
    scored = walking_true.copy()
    run_index = 0
    previous_walking = False
    for s in strides:
        if getattr(s, "walking", True):
            run_index = run_index + 1 if previous_walking else 1
            if run_index <= skip_strides:
                scored &= ~((t >= s.t_heel_strike_s) & (t < s.t_end_s))
        previous_walking = getattr(s, "walking", True)
    both = scored & walking
    err = _circular_error(phase[both], phase_true[both])

    # events: every loading / unloading of the foot in the truth
    edges = np.diff(stance_true.astype(np.int8))
    true_hs = t[1:][edges == 1]
    true_to = t[1:][edges == -1]
    # A record that starts with the foot loaded has no heel strike at its start: nobody saw the
    # foot come down, and the estimator must report standing there, not a step (issue 18); the
    # end of that first contact is the end of no step, not a toe-off to find.
    if stance_true[0] and true_to.size:
        true_to = true_to[1:]
    hs_lat, hs_missed, hs_false = match_events(true_hs, t[est["heel_strike"] > 0.5], t_end)
    to_lat, to_missed, to_false = match_events(true_to, t[est["toe_off"] > 0.5], t_end)

    # standing episodes
    detect_s, pushoff_s, phase_s, resume_s = [], 0.0, 0.0, []
    dt = float(np.median(np.diff(t))) if len(t) > 1 else 0.0
    for a, b in _runs(~walking_true):
        if a == 0:
            continue                     # the session did not begin walking
        stopped = np.flatnonzero(~walking[a:b])
        detect_s.append(float(t[a + stopped[0]] - t[a]) if stopped.size else float(t[b - 1] - t[a]))
        ph = phase[a:b]
        phase_s += float(np.sum(ph >= 0.0)) * dt
        pushoff_s += float(np.sum(ph >= pushoff_start_phase)) * dt
        if b < len(t):                   # walking resumed in the truth: from its first heel strike
            back = np.flatnonzero(walking[b:])
            resume_s.append(float(t[b + back[0]] - t[b]) if back.size else float("inf"))

    # per stride: the worst scored stride, and the strides whose time halved or doubled (x1.6 or
    # more from the stride before): the stride of a change is where a phase estimate breaks
    worst_pct, worst_at, change_pct = None, None, []
    previous = None
    for s in strides:
        walking_stride = getattr(s, "walking", True)
        if walking_stride and s.t_end_s <= t_end:
            sel = both & (t >= s.t_heel_strike_s) & (t < s.t_end_s)
            if sel.sum() >= 10:
                e = _circular_error(phase[sel], phase_true[sel])
                pct = 100.0 * float(np.sqrt(np.mean(e ** 2)))
                if worst_pct is None or pct > worst_pct:
                    worst_pct, worst_at = pct, s.t_heel_strike_s
                if previous is not None and max(s.stride_s / previous, previous / s.stride_s) >= CHANGE_RATIO:
                    change_pct.append(pct)
        previous = s.stride_s if walking_stride else None

    # the first step after each stand: found, and how much of its stride was walked (push-off
    # needs the estimator walking)
    first_missed, first_walked = 0, []
    for i, s in enumerate(strides):
        if i == 0 or not getattr(s, "walking", True) or getattr(strides[i - 1], "walking", True):
            continue
        if s.t_end_s > t_end:
            continue
        found = np.any((t[est["heel_strike"] > 0.5] >= s.t_heel_strike_s - EARLY_S)
                       & (t[est["heel_strike"] > 0.5] <= s.t_heel_strike_s + LATE_S))
        first_missed += not found
        inside = (t >= s.t_heel_strike_s) & (t < s.t_end_s)
        first_walked.append(float(np.mean(walking[inside])) if inside.any() else 0.0)

    def ms(x, q):
        return round(float(np.percentile(x, q)) * 1e3, 2) if len(x) else None

    return {
        "phase_rmse_pct": round(100.0 * float(np.sqrt(np.mean(err ** 2))), 3) if err.size else None,
        "phase_p95_abs_pct": round(100.0 * float(np.percentile(np.abs(err), 95)), 3) if err.size else None,
        "walking_missed_s": round(float(np.sum(scored & ~walking)) * dt, 3),
        "hs_latency_ms_median": ms(hs_lat, 50),
        "hs_latency_ms_p95": ms(hs_lat, 95),
        "missed_heel_strikes": hs_missed,
        "false_heel_strikes": hs_false,
        "to_latency_ms_median": ms(to_lat, 50),
        "to_latency_ms_p95": ms(to_lat, 95),
        "missed_toe_offs": to_missed,
        "false_toe_offs": to_false,
        "standing_episodes": len(detect_s),
        "standing_detect_s_max": round(max(detect_s), 3) if detect_s else None,
        "phase_while_standing_s": round(phase_s, 3),
        "pushoff_phase_while_standing_s": round(pushoff_s, 3),
        "resume_after_heel_strike_s_max": round(max(resume_s), 3) if resume_s else None,
        "worst_stride_rmse_pct": round(worst_pct, 3) if worst_pct is not None else None,
        "worst_stride_at_s": round(worst_at, 3) if worst_at is not None else None,
        "change_strides": len(change_pct),
        "change_stride_rmse_pct_max": round(max(change_pct), 3) if change_pct else None,
        "first_steps_after_standing": len(first_walked),
        "first_steps_missed": first_missed,
        "first_stride_walking_min": round(min(first_walked), 3) if first_walked else None,
    }


def _power_W(telemetry: np.ndarray) -> np.ndarray:
    t = telemetry[:, _T["t"]]
    angle = telemetry[:, _T["ankle_angle"]]
    return -telemetry[:, _T["torque_Nm"]] * np.gradient(angle, t)


def stride_figures(run: SimRun, stride: Stride, power_W: np.ndarray = None) -> StrideFigures:
    """Figures of one completed stride."""
    tel = run.telemetry
    t = tel[:, _T["t"]]
    dt = 1.0 / run.rate_Hz
    mass = run.params["wearer.mass_kg"]
    if power_W is None:
        power_W = _power_W(tel)
    in_stride = (t >= stride.t_heel_strike_s) & (t < stride.t_end_s)
    in_stance = (t >= stride.t_heel_strike_s) & (t < stride.t_toe_off_s)
    walking = tel[in_stride, _T["walking"]] > 0.5
    phase_err = _circular_error(tel[in_stride, _T["phase"]], run.truth[in_stride, _G["phase_true"]])[walking]
    pushoff_peak = _finite_max(tel[in_stride, _T["pushoff_cmd_Nm"]], 0.0)
    return StrideFigures(
        stride=stride.index,
        speed_m_s=stride.speed_m_s,
        stride_s=stride.stride_s,
        stance_pct=100.0 * float(np.mean(tel[in_stride, _T["stance"]])) if in_stride.any() else float("nan"),
        peak_torque_Nm=_finite_max(np.abs(tel[in_stride, _T["torque_Nm"]])),      # NaN: never ticked
        net_work_J_per_kg=float(np.sum(power_W[in_stance]) * dt / mass) if in_stance.any() else float("nan"),
        peak_power_W_per_kg=_finite_max(power_W[in_stance]) / mass,
        phase_error_pct=100.0 * float(np.sqrt(np.mean(phase_err ** 2))) if phase_err.size else float("nan"),
        walking=bool(walking.mean() > 0.5) if walking.size else False,
        pushoff_peak_Nm=pushoff_peak,
        pushoff=pushoff_peak >= PUSHOFF_DELIVERED_NM,
    )


def summary(run: SimRun, *, scenario: str, speed_m_s: float, seed: int) -> Dict[str, object]:
    """The ``ankle sim --json`` object."""
    tel, truth = run.telemetry, run.truth
    # Rows the host did not tick (host_hang, a late real-time tick) are NaN, the last one too;
    # row k is the tick at k periods, so the time axis is known even there.
    t = tel[:, _T["t"]]
    ticked = np.isfinite(t)
    t = np.where(ticked, t, np.arange(len(t)) / run.rate_Hz)
    t_last = float(t[-1])
    last = tel[np.flatnonzero(ticked)[-1]] if ticked.any() else np.full(tel.shape[1], np.nan)
    mass = run.params["wearer.mass_kg"]
    power = _power_W(tel)
    done = [s for s in run.strides if s.t_end_s <= t_last and s.walking]
    figures = [stride_figures(run, s, power) for s in done]
    walked = [f for f in figures if f.walking]

    gait = gait_figures(t, estimator_arrays(tel), truth, run.strides)
    limit = run.params["safety.max_torque_Nm"]
    violations = int(np.sum((np.abs(tel[:, _T["torque_cmd_Nm"]]) > limit + 1e-9)
                            | (np.abs(tel[:, _T["torque_Nm"]]) > limit + TORQUE_TOLERANCE_NM)))

    def mean(values):
        values = [v for v in values if np.isfinite(v)]     # a stride with a hung host has no work figure
        return round(float(np.mean(values)), 4) if values else None

    speed = float(last[_T["speed_m_s"]])

    return {
        "scenario": scenario,
        "speed_m_s": speed_m_s,
        "mass_kg": mass,
        "seed": seed,
        "strides": len(done),
        "strides_walking": len(walked),
        "strides_pushoff": sum(f.pushoff for f in figures),
        **gait,
        "peak_torque_Nm": round(_finite_max(np.abs(tel[:, _T["torque_Nm"]]), 0.0), 2),
        "net_work_J_per_kg": mean([f.net_work_J_per_kg for f in walked]),
        "peak_power_W_per_kg": mean([f.peak_power_W_per_kg for f in walked]),
        "torque_limit_Nm": limit,
        "torque_limit_violations": violations,
        "faults": fault_names(int(np.bitwise_or.reduce(np.nan_to_num(tel[:, _T["faults"]]).astype(np.int64)))),
        "warnings": warning_names(int(np.bitwise_or.reduce(np.nan_to_num(tel[:, _T["warnings"]]).astype(np.int64)))),
        "winding_temp_max_C": round(_finite_max(tel[:, _T["winding_temp_C"]]), 1),
        "speed_estimate_m_s": round(speed, 3) if np.isfinite(speed) else None,
        "work_target_J_kg": (round(run.params["pushoff.work_J_kg"] + run.params["pushoff.work_slope_J_s_kg_m"]
                                   * (speed - 1.25), 4)
                             if np.isfinite(speed) and speed > 0 else None),
        "final_mode": MODES.get(int(last[_T["mode"]]), "unknown") if np.isfinite(last[_T["mode"]]) else "unknown",
        "frames_lost": int(last[_T["frames_lost"]]) if np.isfinite(last[_T["frames_lost"]]) else None,
        "sim_seconds": round(run.sim_seconds, 3),
        "wall_seconds": round(run.wall_seconds, 3),
        "realtime_factor": round(run.sim_seconds / run.wall_seconds, 1) if run.wall_seconds > 0 else None,
        "per_stride": [asdict(f) for f in figures],
    }


def pushoff_figures(run: SimRun, *, from_s: float = 0.0) -> Dict[str, object]:
    """Push-off figures of the walking strides that begin at or after ``from_s`` (learning done).

    - peak power and net stance work: mean over strides (power from the log's own columns);
    - peak torque: largest measured ankle torque; tracking: RMSE of the commanded torque of
      each tick against the torque the driver reported for it on the next tick, over the
      walking ticks (the driver's reply reflects the command one tick later);
    - toe clearance: the ankle angle at mid-swing (halfway from true toe-off to the next heel
      strike), smallest over strides (+ dorsiflexion).
    """
    tel = run.telemetry
    t = tel[:, _T["t"]]
    mass = run.params["wearer.mass_kg"]
    power = _power_W(tel)
    strides = [s for s in run.strides if s.walking and s.t_heel_strike_s >= from_s and s.t_end_s <= t[-1]]
    figures = [stride_figures(run, s, power) for s in strides]
    walking = tel[:-1, _T["walking"]] > 0.5
    walking &= t[:-1] >= from_s
    err = tel[:-1, _T["torque_cmd_Nm"]][walking] - tel[1:, _T["torque_Nm"]][walking]
    peak_torque = float(np.max(np.abs(tel[t >= from_s, _T["torque_Nm"]]))) if np.any(t >= from_s) else 0.0
    mid_swing = [0.5 * (s.t_toe_off_s + s.t_end_s) for s in strides]
    mid_angles = np.interp(mid_swing, t, tel[:, _T["ankle_angle"]]) if mid_swing else np.array([])
    rmse = float(np.sqrt(np.mean(err ** 2))) if err.size else float("nan")
    return {
        "strides": len(figures),
        "peak_power_W_kg": round(float(np.mean([f.peak_power_W_per_kg for f in figures])), 3) if figures else None,
        "net_work_J_kg": round(float(np.mean([f.net_work_J_per_kg for f in figures])), 4) if figures else None,
        "net_work_sd_J_kg": round(float(np.std([f.net_work_J_per_kg for f in figures])), 4) if figures else None,
        "peak_torque_Nm": round(peak_torque, 2),
        "torque_limit_Nm": run.params["safety.max_torque_Nm"],
        "tracking_rmse_Nm": round(rmse, 3),
        "tracking_rmse_pct_of_peak": round(100.0 * rmse / peak_torque, 2) if peak_torque > 0 else None,
        "midswing_angle_min_deg": round(float(np.degrees(np.min(mid_angles))), 2) if mid_angles.size else None,
        "mass_kg": mass,
    }


def fault_response(run: SimRun, t_fault_s: float, fault_bit: int, *, window_s: float = 1.0) -> Dict[str, object]:
    """How the stack answered a fault injected at ``t_fault_s`` (telemetry and truth only).

    - ``detect_s``: from the injection to the first tick with ``fault_bit`` latched (None: never);
    - ``mode``: the mode at the end of the run; ``faults``: the fault names then;
    - ``safe_s``: from the injection until the response is complete: in the safe state, the
      mode entered plus the blend-in (``safety.ramp_s``); in passive mode, the push-off share
      sent reaching zero;
    - ``largest_cmd_step_Nm``: largest tick-to-tick change of the commanded total torque, and
      ``largest_torque_step_Nm`` of the true actuator torque, within ``window_s`` after the injection;
    - ``watchdog_s``: from the injection to the driver's watchdog tripping (None: it did not).
    """
    tel = run.telemetry
    t = tel[:, _T["t"]]
    ticked = ~np.isnan(t)
    faults = np.where(ticked, tel[:, _T["faults"]], 0).astype(np.int64)
    after = ticked & (t >= t_fault_s)
    hit = np.flatnonzero(after & ((faults & fault_bit) != 0))
    detect_s = float(t[hit[0]] - t_fault_s) if hit.size else None
    last = np.flatnonzero(ticked)[-1]
    mode = int(tel[last, _T["mode"]])
    safe_s = None
    if hit.size:
        if mode == MODE_VALUES["safe"]:
            entered = np.flatnonzero(after & (tel[:, _T["mode"]] == MODE_VALUES["safe"]))
            safe_s = float(t[entered[0]] - t_fault_s + run.params["safety.ramp_s"])
        else:
            gone = np.flatnonzero(after & (np.arange(len(t)) >= hit[0]) & (np.abs(tel[:, _T["pushoff_cmd_Nm"]]) < 1e-9))
            safe_s = float(t[gone[0]] - t_fault_s) if gone.size else None
    truth_t = run.truth[:, _G["t"]]
    win_truth = (truth_t >= t_fault_s) & (truth_t <= t_fault_s + window_s)
    win_tel = after & (t <= t_fault_s + window_s)
    cmd = tel[win_tel, _T["torque_cmd_Nm"]]
    true_torque = run.truth[win_truth, _G["torque_true_Nm"]]
    return {
        "detect_s": round(detect_s, 4) if detect_s is not None else None,
        "safe_s": round(safe_s, 4) if safe_s is not None else None,
        "mode": MODES.get(mode, str(mode)),
        "faults": fault_names(int(faults[last])),
        "largest_cmd_step_Nm": round(float(np.max(np.abs(np.diff(cmd)))), 2) if cmd.size > 1 else 0.0,
        "largest_torque_step_Nm": round(float(np.max(np.abs(np.diff(true_torque)))), 2) if true_torque.size > 1 else 0.0,
        "watchdog_s": round(run.watchdog_trip_s - t_fault_s, 4) if run.watchdog_trip_s >= t_fault_s else None,
    }


def thermal_response(run: SimRun, t_fault_s: float) -> Dict[str, object]:
    """When derating, the alert and the latch came after ``t_fault_s``, and whether derating bit.

    ``latch_after_limit_s`` is from the first tick at which the modelled winding or the driver's
    reading reached ``thermal.limit_degC`` to the over-temperature latch (the catalogue: every
    tick).  Peak measured torque of the first and last walking stride while derated shows the
    limit is applied, not only computed.
    """
    tel = run.telemetry
    t = tel[:, _T["t"]]
    after = ~np.isnan(t) & (t >= t_fault_s)
    warnings = np.where(after, tel[:, _T["warnings"]], 0).astype(np.int64)
    faults = np.where(after, tel[:, _T["faults"]], 0).astype(np.int64)
    limit_C = run.params["thermal.limit_degC"]
    hot = after & ((tel[:, _T["winding_temp_C"]] >= limit_C) | (tel[:, _T["motor_temp_C"]] >= limit_C))

    def first(mask):
        idx = np.flatnonzero(mask)
        return float(t[idx[0]] - t_fault_s) if idx.size else None

    derate, alert, over_temp = warning_bit("thermal_derate"), warning_bit("thermal_alert"), fault_bit("over_temperature")
    derate_s, alert_s = first((warnings & derate) != 0), first((warnings & alert) != 0)
    limit_s, latch_s = first(hot), first((faults & over_temp) != 0)
    derated = after & ((warnings & derate) != 0) & ((faults & over_temp) == 0) & (tel[:, _T["walking"]] > 0.5)
    strides = [s for s in run.strides if s.walking and np.any(derated & (t >= s.t_heel_strike_s) & (t < s.t_end_s))]
    peaks = [float(np.max(np.abs(tel[(t >= s.t_heel_strike_s) & (t < s.t_end_s), _T["torque_Nm"]]))) for s in strides]
    return {
        "derate_from_s": round(derate_s, 3) if derate_s is not None else None,
        "alert_from_s": round(alert_s, 3) if alert_s is not None else None,
        "limit_reached_s": round(limit_s, 3) if limit_s is not None else None,
        "latch_after_limit_s": round(latch_s - limit_s, 4) if latch_s is not None and limit_s is not None else None,
        "torque_limit_min_Nm": round(float(np.nanmin(np.where(after, tel[:, _T["torque_limit_Nm"]], np.nan))), 1),
        "peak_torque_first_Nm": round(peaks[0], 1) if peaks else None,
        "peak_torque_last_Nm": round(peaks[-1], 1) if len(peaks) > 1 else None,
    }
