"""Named walking scenarios: what speed the simulated wearer walks at, and when.

A scenario is a speed profile over time; the wearer takes the speed at each
heel strike.  A speed of 0.0 means "the wearer stands now": the wearer stops at
the next heel strike and stands until the speed is positive again, then
initiates gait (see :mod:`sim.wearer`).  ``ankle sim --scenario NAME``.

``fitting`` is the one scenario that is not a schedule: it stands until told to
walk (the simulator console's ``wearer walk``) and walks until told to stand
(``wearer stand``), as a prosthetist asks a wearer during a fitting.  Its own
speed is 0.0 at all times; the wearer's command (:meth:`sim.wearer.Wearer.command`)
overrides it.  Nothing but the console can tell the wearer to walk, so
``ankle sim`` accepts it only with ``--console``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict

__all__ = ["Scenario", "SCENARIOS", "get"]


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    speed_at: Callable[[float, float], float]   # (t_s, nominal speed m/s) -> speed m/s, 0.0 = stand


def _steady(t_s: float, v: float) -> float:
    return v


def _speed_steps(t_s: float, v: float) -> float:
    # nominal, then 30 % slower, then 30 % faster, every 15 s
    return v * (1.0, 0.7, 1.3)[int(t_s // 15.0) % 3]


def _ramp(t_s: float, v: float) -> float:
    # from 60 % to 140 % of nominal and back over 40 s
    x = (t_s % 40.0) / 20.0
    return v * (0.6 + 0.8 * (x if x <= 1.0 else 2.0 - x))


def _slow_fast(t_s: float, v: float) -> float:
    # abrupt steps between slow and fast every 15 s: the estimator's cadence must follow
    # a doubling of speed within a stride or two (0.75 <-> 1.5 m/s at 1.25 nominal)
    return v * (0.6, 1.2)[int(t_s // 15.0) % 2]


def _stop_start(t_s: float, v: float) -> float:
    # walk 15 s, stand 8 s, repeating: stopping and gait initiation, again and again
    return v if t_s % 23.0 < 15.0 else 0.0


def _stand(t_s: float, v: float) -> float:
    # walk 6 s, then stand for good: long quiet standing with sway and weight shifts
    return v if t_s < 6.0 else 0.0


def _fitting(t_s: float, v: float) -> float:
    # stands until told otherwise: Wearer.command (the console's `wearer walk`) overrides this
    return 0.0


SCENARIOS: Dict[str, Scenario] = {s.name: s for s in (
    Scenario("steady", "constant speed", _steady),
    Scenario("speed-steps", "speed steps every 15 s: nominal, -30 %, +30 %", _speed_steps),
    Scenario("ramp", "speed ramps 60 % -> 140 % -> 60 % of nominal over 40 s", _ramp),
    Scenario("slow-fast", "abrupt steps every 15 s between 60 % and 120 % of nominal", _slow_fast),
    Scenario("stop-start", "walk 15 s, stand 8 s, repeating", _stop_start),
    Scenario("stand", "walk 6 s, then stand for the rest of the run", _stand),
    Scenario("fitting", "stand until told to walk (the console's `wearer walk`), walk until told to "
                        "stand (`wearer stand`)", _fitting),
)}


def get(name: str) -> Scenario:
    """The scenario ``name``, or ValueError listing the known ones."""
    try:
        return SCENARIOS[name]
    except KeyError:
        raise ValueError(f"unknown scenario {name!r}; known: {', '.join(SCENARIOS)}") from None
