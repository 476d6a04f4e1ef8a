"""Push-off at each walking speed on the simulated ankle, beside the published figures.

For each speed of Grabowski & D'Andrea 2013 (0.75-1.75 m/s) the simulated
wearer walks on the full stack (real CAN frames, default parameters, the
push-off learning on) for ``--seconds``; the figures come from the strides
after the first third (learning settled).  Per speed: peak ankle power beside
the able-bodied figure, net stance work beside the work target (the BiOM's
figures by default) and the able-bodied figure, peak torque against its limit,
torque tracking RMSE, and the ankle angle at mid-swing (toe clearance).
Prints figures, never pass/fail.
"""
from __future__ import annotations

import time

from bench._common import emit, parser
from controller.params.registry import ParamSet
from sim import evaluation, harness

#: speed m/s -> (peak ankle power W/kg able-bodied, net stance work J/kg able-bodied, BiOM)
#: Grabowski & D'Andrea 2013, J NeuroEng Rehabil 10:49, Table 2 (docs/reference.md).
REFERENCE = {
    0.75: (1.4, -0.03, 0.12),
    1.00: (2.2, 0.02, 0.14),
    1.25: (2.8, 0.07, 0.17),
    1.50: (3.4, 0.12, 0.22),
    1.75: (4.2, 0.16, 0.25),
}


def work_target_J_kg(params: ParamSet, speed_m_s: float) -> float:
    """The controller's work target at ``speed_m_s`` (pushoff.work_J_kg + slope x (v - 1.25))."""
    return params["pushoff.work_J_kg"] + params["pushoff.work_slope_J_s_kg_m"] * (speed_m_s - 1.25)


def run_speed(speed_m_s: float, seconds: float, mass_kg: float, seed: int) -> dict:
    run = harness.run(speed_m_s=speed_m_s, duration_s=seconds, mass_kg=mass_kg, seed=seed)
    fig = evaluation.pushoff_figures(run, from_s=seconds / 3.0)
    power_ref, work_able, work_biom = REFERENCE[speed_m_s]
    target = work_target_J_kg(run.params, speed_m_s)
    return {
        "speed_m_s": speed_m_s,
        **fig,
        "peak_power_able_bodied_W_kg": power_ref,
        "peak_power_error_pct": round(100.0 * (fig["peak_power_W_kg"] / power_ref - 1.0), 1),
        "net_work_target_J_kg": round(target, 4),
        "net_work_error_J_kg": round(fig["net_work_J_kg"] - target, 4),
        "net_work_biom_J_kg": work_biom,
        "net_work_able_bodied_J_kg": work_able,
        "wall_s": round(run.wall_seconds, 2),
    }


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=60.0, help="simulated seconds per speed (default 60)")
    p.add_argument("--mass", type=float, default=80.0, help="wearer mass kg (default 80)")
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args()
    t0 = time.perf_counter()
    rows = [run_speed(v, args.seconds, args.mass, args.seed) for v in REFERENCE]
    result = {"benchmark": "pushoff", "seconds_per_speed": args.seconds, "mass_kg": args.mass,
              "speeds": rows, "wall_s": round(time.perf_counter() - t0, 1)}
    if args.json:
        emit(result, True)
        return
    print(f"push-off on the simulated ankle, {args.seconds:g} s per speed, {args.mass:g} kg, "
          f"figures from the last two thirds")
    print(f"{'speed':>6} {'peak power W/kg':>22} {'net work J/kg':>26} {'peak torque':>14} "
          f"{'tracking':>16} {'mid-swing':>10}")
    print(f"{'m/s':>6} {'sim / able (err)':>22} {'sim / target (err)':>26} {'N*m (limit)':>14} "
          f"{'RMSE N*m (% pk)':>16} {'deg':>10}")
    for r in rows:
        print(f"{r['speed_m_s']:6.2f} {r['peak_power_W_kg']:7.2f} / {r['peak_power_able_bodied_W_kg']:3.1f} "
              f"({r['peak_power_error_pct']:+5.1f} %) {r['net_work_J_kg']:+8.3f} / {r['net_work_target_J_kg']:5.3f} "
              f"({r['net_work_error_J_kg']:+6.3f}) {r['peak_torque_Nm']:7.1f} ({r['torque_limit_Nm']:3.0f}) "
              f"{r['tracking_rmse_Nm']:7.3f} ({r['tracking_rmse_pct_of_peak']:4.2f}) {r['midswing_angle_min_deg']:+10.1f}")
    print(f"wall time {result['wall_s']} s")


if __name__ == "__main__":
    main()
