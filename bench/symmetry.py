"""Gait symmetry against the simulator's ground truth, and the symmetry-seeking adaptation.

The asymmetric simulated wearer (``sim/asymmetry.py``: a passive foot gives a stance-time
symmetry index of -10 %; push-off work received shortens the gap, with a lag of a few strides)
walks on the full stack in lock-step.  :class:`controller.symmetry.strides.StrideAnalyzer` runs over the
telemetry as it would on the device, and each of its strides is matched to the true stride.

- ``accuracy``: the error of the per-stride stance-time and step-time symmetry index against the
  truth, in percentage points (mean, mean absolute, p95, max), with the simulated sound-side node
  (the insole) and without it (the prosthetic load profile alone), at several speeds.
- ``adaptation``: the same wearer with ``symmetry.adapt`` on (target 0 %), the adaptation the
  device runs (:class:`controller.symmetry.adaptation.SymmetryAdaptation`, its audit log in a
  temporary directory): strides until the stance-time index (5-stride mean) first comes within
  1 point of the target and stays within 2, the overshoot past the target after that, and the
  work target it settles on.

Prints figures, never pass/fail; ``--json`` prints one object.
"""
from __future__ import annotations

import math
import tempfile
from typing import Dict, List

import numpy as np

from bench._common import emit, parser
from controller.console.audit import SharedAuditLog
from controller.params.registry import ParamSet
from controller.symmetry.adaptation import SymmetryAdaptation
from controller.symmetry.strides import StrideAnalyzer
from sim import harness
from sim.asymmetry import AsymmetryModel

MATCH_S = 0.05           # an analysed stride belongs to the true stride whose heel strike is this close


def _matched(run, strides) -> List[tuple]:
    truth = [s for s in run.strides if s.walking and math.isfinite(s.si_stance_pct)]
    starts = np.array([s.t_heel_strike_s for s in truth])
    out = []
    for s in strides:
        if not len(starts):
            break
        i = int(np.argmin(np.abs(starts - s.t_heel_strike_s)))
        if abs(starts[i] - s.t_heel_strike_s) <= MATCH_S:
            out.append((s, truth[i]))
    return out


def _errors(pairs, field: str) -> Dict[str, float]:
    e = np.array([getattr(est, field) - getattr(true, field) for est, true in pairs], dtype=float)
    e = e[np.isfinite(e)]
    if not len(e):
        return {"n": 0}
    a = np.abs(e)
    return {"n": int(len(e)), "mean_pp": round(float(np.mean(e)), 3), "mae_pp": round(float(np.mean(a)), 3),
            "p95_pp": round(float(np.percentile(a, 95)), 3), "max_pp": round(float(np.max(a)), 3)}


def accuracy(seconds: float, speeds, seed: int) -> List[Dict[str, object]]:
    rows = []
    for speed in speeds:
        for sound in (True, False):
            run = harness.run(scenario="steady", speed_m_s=speed, duration_s=seconds, seed=seed,
                              asymmetry=AsymmetryModel(), sound_node=sound)
            analyzer = StrideAnalyzer(run.params["wearer.mass_kg"])
            strides = analyzer.feed(run.telemetry)
            pairs = _matched(run, strides)
            true_si = np.array([t.si_stance_pct for _, t in pairs])
            rows.append({"speed_m_s": speed, "sound_node": sound, "strides": len(pairs),
                         "true_si_stance_pct_range": [round(float(np.min(true_si)), 2), round(float(np.max(true_si)), 2)]
                         if len(true_si) else None,
                         "si_stance": _errors(pairs, "si_stance_pct"), "si_step": _errors(pairs, "si_step_pct"),
                         "confidence_min": round(min((s.confidence for s, _ in pairs), default=math.nan), 3)})
    return rows


def adaptation(seconds: float, seed: int, target_pct: float = 0.0) -> Dict[str, object]:
    params = ParamSet({"symmetry.adapt": 1, "symmetry.target_si_pct": target_pct})
    with tempfile.TemporaryDirectory(prefix="bench-symmetry-") as state:
        audit = SharedAuditLog(state)
        adaptation = SymmetryAdaptation(audit.open, params["wearer.mass_kg"])
        try:
            run = harness.run(scenario="steady", duration_s=seconds, seed=seed, params=params,
                              asymmetry=AsymmetryModel(), sound_node=True, adaptation=adaptation)
        finally:
            adaptation.close()
            audit.close()
    switched_off = [why for _, changes, why, _ in adaptation.sent if changes.get("symmetry.adapt") == 0]
    truth = [s for s in run.strides if s.walking and math.isfinite(s.si_stance_pct)]
    si = np.array([s.si_stance_pct for s in truth])
    smooth = np.convolve(si, np.ones(5) / 5, mode="valid") if len(si) >= 5 else si
    inside = np.flatnonzero(np.abs(smooth - target_pct) <= 1.0)
    reached = None
    for i in inside:
        if np.all(np.abs(smooth[i:] - target_pct) <= 2.0):
            reached = int(i) + 4            # the stride that completes the first such 5-stride mean
            break
    overshoot = None
    if reached is not None:
        beyond = (smooth[reached - 4:] - target_pct) * (1 if si[0] < target_pct else -1)
        overshoot = round(float(max(0.0, np.max(beyond))), 2)
    changes = [(t, p["pushoff.work_J_kg"]) for t, p in run.retunes]
    return {"seconds": seconds, "target_si_pct": target_pct, "strides": int(len(si)),
            "si_first_5_strides_pct": round(float(np.mean(si[:5])), 2) if len(si) >= 5 else None,
            "si_last_20_strides_pct": round(float(np.mean(si[-20:])), 2) if len(si) >= 20 else None,
            "strides_to_target": reached, "overshoot_pp": overshoot,
            "work_target_start_J_kg": params["pushoff.work_J_kg"],
            "work_target_end_J_kg": changes[-1][1] if changes else params["pushoff.work_J_kg"],
            "work_delivered_last_20_J_kg": round(float(np.mean([s.pushoff_work_J_kg for s in adaptation.strides[-20:]])), 3)
            if adaptation.strides else None,
            "adjustments": len(changes), "switched_off": switched_off[-1] if switched_off else None}


def main(argv=None) -> None:
    p = parser(__doc__)
    p.add_argument("--seconds", type=float, default=60.0, help="walking per accuracy run (default 60)")
    p.add_argument("--adapt-seconds", type=float, default=300.0, help="the adaptation run (default 300)")
    p.add_argument("--speeds", default="0.9,1.25,1.6", help="comma-separated speeds [m/s] for accuracy")
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args(argv)
    speeds = [float(x) for x in args.speeds.split(",")]
    result = {"accuracy": accuracy(args.seconds, speeds, args.seed),
              "adaptation": adaptation(args.adapt_seconds, args.seed)}

    def text(r):
        lines = ["stance-time SI error against the simulator's truth [percentage points]",
                 f"  {'speed':>6} {'sound side':<13} {'strides':>7} {'mean':>6} {'MAE':>6} {'p95':>6} {'max':>6}"
                 f"   step SI: {'MAE':>5} {'p95':>5}   true SI range"]
        for a in r["accuracy"]:
            e, f = a["si_stance"], a["si_step"]
            if not e.get("n"):
                lines.append(f"  {a['speed_m_s']:>6.2f} {'insole' if a['sound_node'] else 'load profile':<13} no strides")
                continue
            lines.append(f"  {a['speed_m_s']:>6.2f} {'insole' if a['sound_node'] else 'load profile':<13} "
                         f"{a['strides']:>7} {e['mean_pp']:>+6.2f} {e['mae_pp']:>6.2f} {e['p95_pp']:>6.2f} "
                         f"{e['max_pp']:>6.2f}   {f.get('mae_pp', math.nan):>13.2f} {f.get('p95_pp', math.nan):>5.2f}"
                         f"   {a['true_si_stance_pct_range']}")
        d = r["adaptation"]
        lines += ["adaptation (target 0 %, the asymmetric wearer, the insole):",
                  f"  SI {d['si_first_5_strides_pct']} % in the first 5 strides -> {d['si_last_20_strides_pct']} % "
                  f"in the last 20; within 1 point (5-stride mean, then within 2) after "
                  f"{d['strides_to_target']} strides; overshoot {d['overshoot_pp']} points",
                  f"  work target {d['work_target_start_J_kg']} -> {d['work_target_end_J_kg']} J/kg in "
                  f"{d['adjustments']} adjustments (delivered {d['work_delivered_last_20_J_kg']} J/kg over the last "
                  f"20 strides); switched off by a fault: {d['switched_off']}"]
        return "\n".join(lines)

    if args.json:
        emit(result, True)
    else:
        print(text(result))


if __name__ == "__main__":
    main()
