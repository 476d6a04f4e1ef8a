"""What taking a parameter change costs the tick, per stride boundary.

A change goes through one path (:mod:`controller.runtime.retune`): the publisher validates it
and blends its ramp outside the tick's process; the tick takes it at a stride boundary without
the GIL (:meth:`controller.kernels._tick.Tick.take_params`).  This times, on one configured
tick over an in-process channel (the same class the shared block holds):

- ``take_new_us``: the boundary at which a new publication is taken: the seqlock copy of the
  whole ramp, the acceptance checks, the steps moved to where the tick is, and the first step
  applied to every kernel (``configure_from``);
- ``take_step_us``: a later boundary of the ramp: one step applied;
- ``take_idle_us``: a boundary with nothing published (every loop calls it every tick);
- ``publish_us``: the publisher's work, in the supervisor (validation and blending of the
  three steps as ParamSets, packing, the seqlock write): off the tick's process.

Each figure is the median (and p99) over ``--changes`` changes, timed around the Python call
(its overhead, about 0.1 us, included).  Before this path the tick's process validated and
blended each step under the GIL (about 150 us per step).
"""
from __future__ import annotations

import time

import numpy as np

from bench._common import emit, parser
from controller.params.registry import ParamSet
from controller.runtime.loop import build_tick
from controller.runtime.retune import ParamPublisher, lockstep_channel
from hal.ak import mit_range


def _stats(ns) -> dict:
    us = np.asarray(ns, dtype=float) / 1000.0
    return {"median": round(float(np.median(us)), 3), "p99": round(float(np.percentile(us, 99)), 3)}


def measure(changes: int = 2000) -> dict:
    rng = mit_range("AK80-9")
    tick = build_tick(ParamSet(), rng, 1, 0)
    channel = lockstep_channel(tick.params)
    publisher = ParamPublisher(channel, rng["t_max"])
    targets = [ParamSet({"pushoff.torque_Nm_kg": 0.3 + 0.6 * (i % 2), "swing.stiffness_Nm_rad": 30.0 + i % 20})
               for i in range(2)]
    clock, take = time.perf_counter_ns, tick.take
    new, step, idle, publish = [], [], [], []
    for i in range(changes):
        t0 = clock()
        publisher.publish(targets[i % 2])
        t1 = clock()
        take(channel)
        t2 = clock()
        take(channel)
        t3 = clock()
        take(channel)
        t4 = clock()
        take(channel)                       # nothing left, nothing new
        t5 = clock()
        publish.append(t1 - t0)
        new.append(t2 - t1)
        step += [t3 - t2, t4 - t3]
        idle.append(t5 - t4)
    assert tick.ramp_steps_left == 0 and channel.word("params_rejected") == 0
    return {"changes": changes, "take_new_us": _stats(new), "take_step_us": _stats(step),
            "take_idle_us": _stats(idle), "publish_us": _stats(publish)}


def main(argv=None) -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--changes", type=int, default=2000, help="changes to time (default 2000)")
    args = p.parse_args(argv)
    if args.changes < 1:
        p.error("--changes must be at least 1")
    emit(measure(args.changes), args.json)


if __name__ == "__main__":
    main()
