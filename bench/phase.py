"""Gait-phase estimator accuracy, scenario by scenario, against the plain time-based estimator.

Each scenario walks the simulated wearer on the full stack (real CAN frames)
with imperfect sensors: gyro noise, bias and bias drift, load noise, load-cell
offset and offset drift, and 2.5 % stride-time variability.  The online
estimator's outputs come from the loop's telemetry; the time-based
estimator (load events, phase = time since heel strike / last stride time;
what runs when the IMU is lost) is replayed over the very same samples.
Figures per scenario and estimator: phase RMSE (first 3 strides after each
start left out), heel-strike and toe-off latency, missed and false events,
standing recognition, push-off phase while standing, resumption.  Prints
figures, never pass/fail.  ``--quick`` runs 20 s per scenario.
"""
from __future__ import annotations

import time
from typing import Dict, List

from bench._common import emit, parser
from controller.loop import TELEMETRY_COLUMNS
from controller.replay import estimate
from sim import evaluation, harness

#: Sensor imperfections applied in every scenario (sim.plant settings).
IMPERFECT_SENSORS = {
    "gyro_noise_rad_s": 0.03,
    "gyro_bias_rad_s": 0.03,
    "gyro_bias_drift_rad_s2": 0.0005,   # +0.03 rad/s over a minute
    "load_noise_N": 8.0,
    "load_offset_N": 10.0,
    "load_offset_drift_N_s": 0.5,       # +30 N over a minute (0.04 BW at 80 kg)
}
STRIDE_CV = 0.025

#: (label, scenario, nominal speed m/s)
SCENARIOS = (
    ("steady 0.5 m/s", "steady", 0.5),
    ("steady 1.25 m/s", "steady", 1.25),
    ("steady 2.0 m/s", "steady", 2.0),
    ("speed steps +-30 %", "speed-steps", 1.25),
    ("slow<->fast 0.75/1.5", "slow-fast", 1.25),
    ("ramp 0.75..1.75", "ramp", 1.25),
    ("stop and restart", "stop-start", 1.25),
    ("standing, sway + weight shifts", "stand", 1.25),
)

_COL = {name: i for i, name in enumerate(TELEMETRY_COLUMNS)}


def run_scenario(label: str, scenario: str, speed_m_s: float, duration_s: float, seed: int) -> Dict:
    """Both estimators' figures for one scenario."""
    run = harness.run(scenario=scenario, speed_m_s=speed_m_s, duration_s=duration_s, seed=seed,
                      plant_overrides=IMPERFECT_SENSORS, stride_cv=STRIDE_CV)
    tel = run.telemetry
    t = tel[:, _COL["t"]]
    pushoff = run.params["pushoff.start_phase"]
    shank = evaluation.gait_figures(t, evaluation.estimator_arrays(tel), run.truth, run.strides,
                                    pushoff_start_phase=pushoff)
    plain = estimate(t, tel[:, _COL["shank_gyro"]], tel[:, _COL["load"]], tel[:, _COL["ankle_angle"]],
                     run.params, use_shank=False)
    timed = evaluation.gait_figures(t, plain, run.truth, run.strides, pushoff_start_phase=pushoff)
    return {"label": label, "scenario": scenario, "speed_m_s": speed_m_s,
            "walking_strides": sum(1 for s in run.strides if s.walking and s.t_end_s <= t[-1]),
            "shank": shank, "time_based": timed}


def _line(r: Dict, key: str, name: str) -> str:
    f = r[key]

    def v(x, fmt):
        return "  --" if x is None else format(x, fmt)

    stand = ""
    if f["standing_episodes"]:
        stand = (f"  stand@{v(f['standing_detect_s_max'], '.2f')}s pushoff-while-standing "
                 f"{f['pushoff_phase_while_standing_s']:.2f}s resume {v(f['resume_after_heel_strike_s_max'], '.3f')}s")
    return (f"  {name:<11} phase RMSE {v(f['phase_rmse_pct'], '5.2f')} %  "
            f"HS {v(f['hs_latency_ms_median'], '5.1f')}/{v(f['hs_latency_ms_p95'], '5.1f')} ms "
            f"miss {f['missed_heel_strikes']} false {f['false_heel_strikes']}  "
            f"TO {v(f['to_latency_ms_median'], '5.1f')}/{v(f['to_latency_ms_p95'], '5.1f')} ms "
            f"miss {f['missed_toe_offs']} false {f['false_toe_offs']}  "
            f"not-walking {f['walking_missed_s']:.2f}s{stand}")


def main(argv=None) -> None:
    p = parser(__doc__)
    p.add_argument("--duration", type=float, default=60.0, help="simulated seconds per scenario (default 60)")
    p.add_argument("--quick", action="store_true", help="20 s per scenario")
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args(argv)
    duration_s = 20.0 if args.quick else args.duration
    wall0 = time.perf_counter()
    results: List[Dict] = [run_scenario(label, sc, v, duration_s, args.seed) for label, sc, v in SCENARIOS]
    out = {"bench": "phase", "duration_s_per_scenario": duration_s, "seed": args.seed,
           "sensors": IMPERFECT_SENSORS, "stride_cv": STRIDE_CV, "scenarios": results,
           "wall_s": round(time.perf_counter() - wall0, 1)}
    if args.json:
        emit(out, True)
        return
    print(f"phase estimator, {duration_s:g} s per scenario, seed {args.seed}; sensors {IMPERFECT_SENSORS}, "
          f"stride CV {STRIDE_CV:g}")
    print("  (latencies median/p95; phase RMSE leaves out the first 3 strides after each start)")
    for r in results:
        print(f"{r['label']}  ({r['walking_strides']} walking strides)")
        print(_line(r, "shank", "shank"))
        print(_line(r, "time_based", "time-based"))
    print(f"wall {out['wall_s']} s")


if __name__ == "__main__":
    main()
