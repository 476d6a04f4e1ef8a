"""How fast the whole stack runs in lock-step with the simulated ankle.

Every tick moves real CAN frames (driver command and reply, IMU and load frames)
through the lock-step bus: ``--bus memory`` (the default, what ``ankle sim`` uses),
the in-process GIL-free link, or ``--bus python-can``, python-can's virtual bus.
Prints the real-time factor and the wall time per tick for a walk of
``--duration`` simulated seconds, and which bus carried the frames (``bus``).
"""
from __future__ import annotations

import numpy as np

from bench._common import emit, parser
from sim import evaluation, harness


def main(argv=None) -> None:
    p = parser(__doc__)
    p.add_argument("--duration", type=float, default=60.0, help="simulated seconds (default 60)")
    p.add_argument("--speed", type=float, default=1.25)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--bus", choices=harness.BUSES, default=harness.BUSES[0],
                   help="the lock-step bus (default: memory, the in-process link)")
    args = p.parse_args(argv)
    factors, summaries = [], []
    for seed in range(args.repeats):
        run = harness.run(speed_m_s=args.speed, duration_s=args.duration, seed=seed, bus=args.bus)
        factors.append(run.sim_seconds / run.wall_seconds)
        summaries.append(evaluation.summary(run, scenario="steady", speed_m_s=args.speed, seed=seed))
    emit({
        "bench": "sim_speed",
        "bus": args.bus,
        "sim_seconds": args.duration,
        "repeats": args.repeats,
        "realtime_factor_median": round(float(np.median(factors)), 1),
        "realtime_factor_min": round(float(min(factors)), 1),
        "wall_us_per_tick_median": round(1e6 / (float(np.median(factors)) * 1000.0), 1),
        "frames_per_tick": 4,
        "strides": [s["strides"] for s in summaries],
        "missed_heel_strikes": [s["missed_heel_strikes"] for s in summaries],
        "torque_limit_violations": [s["torque_limit_violations"] for s in summaries],
        "phase_rmse_pct": [s["phase_rmse_pct"] for s in summaries],
        "net_work_J_per_kg": [s["net_work_J_per_kg"] for s in summaries],
        "peak_power_W_per_kg": [s["peak_power_W_per_kg"] for s in summaries],
    }, args.json)


if __name__ == "__main__":
    main()
