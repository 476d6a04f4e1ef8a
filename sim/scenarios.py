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

Three scenarios test what a single stretched template hides (issue 18):

- ``halve-double``: bouts of about 8 strides alternate between 0.42 m/s and 1.8 m/s (absolute speeds;
  the nominal speed is not used), so the stride time doubles or halves from one stride to the next
  (the speed model's 1.86 s and 0.92 s: a ratio of 2.03, times the stride-time variability).  The
  wearer takes the speed at each heel strike, so a switch takes effect at a heel strike.
- ``long-stands``: walking bouts of about 10 strides at the nominal speed with stands of 1, 5, 20 and
  60 s between them, in that order, then again.  A stand begins at the first heel strike after its
  scheduled start and lasts (heel strike to the unloading of gait initiation) from its length to its
  length plus one stride: the schedule gives each stand one nominal stride more, so that even the
  1 s stand holds a heel strike.
- ``boot-loaded``: the session begins standing with the foot loaded, as a device boots while worn
  (the wearer's first segment is a standing one with weight on the prosthesis from t = 0, no heel
  strike), stands 4 s, then walks at the nominal speed.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict

from sim import reference

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


#: halve-double: (speed m/s, strides per bout) of its two bouts, slow first.  0.42 and 1.8 m/s: the
#: speed model's stride times 1.856 s and 0.915 s, a ratio of 2.03.
HALVE_DOUBLE_BOUTS = ((0.42, 8), (1.8, 8))


def _halve_double(t_s: float, v: float) -> float:
    # bouts timed by the speed model's nominal stride times (the wearer's own vary by stride_cv)
    bouts = [(speed, n * reference.stride_time_s(speed)) for speed, n in HALVE_DOUBLE_BOUTS]
    t = t_s % sum(length for _, length in bouts)
    for speed, length in bouts:
        if t < length:
            return speed
        t -= length
    return bouts[-1][0]


#: long-stands: the stands [s] between walking bouts, in order, and the strides of each bout.
LONG_STANDS_S = (1.0, 5.0, 20.0, 60.0)
LONG_STANDS_BOUT_STRIDES = 10


def _long_stands(t_s: float, v: float) -> float:
    # walk LONG_STANDS_BOUT_STRIDES nominal strides, stand, walk, stand longer, ... then again.  Each
    # stand is scheduled one nominal stride longer than it is meant to last: the wearer stops at the
    # first heel strike inside it (up to a stride late; a 1 s window alone could fall between two
    # heel strikes and never be seen) and so stands from stand_s to stand_s + one stride.
    stride_s = reference.stride_time_s(v)
    walk_s = LONG_STANDS_BOUT_STRIDES * stride_s
    t = t_s % (len(LONG_STANDS_S) * (walk_s + stride_s) + sum(LONG_STANDS_S))
    for stand_s in LONG_STANDS_S:
        if t < walk_s:
            return v
        if t < walk_s + stand_s + stride_s:
            return 0.0
        t -= walk_s + stand_s + stride_s
    return v


#: boot-loaded: how long the wearer stands, loaded, from t = 0 before walking.
BOOT_STAND_S = 4.0


def _boot_loaded(t_s: float, v: float) -> float:
    # standing with weight on the foot from the first instant, then walking
    return 0.0 if t_s < BOOT_STAND_S else v


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
    Scenario("halve-double", "bouts of 8 strides alternating 0.42 <-> 1.8 m/s: the stride time halves or "
                             "doubles from one stride to the next", _halve_double),
    Scenario("long-stands", "walking bouts of 10 strides with stands of 1, 5, 20 and 60 s between them",
             _long_stands),
    Scenario("boot-loaded", "starts standing with the foot loaded (a device booting while worn), stands 4 s, "
                            "then walks", _boot_loaded),
    Scenario("fitting", "stand until told to walk (the console's `wearer walk`), walk until told to "
                        "stand (`wearer stand`)", _fitting),
)}


def get(name: str) -> Scenario:
    """The scenario ``name``, or ValueError listing the known ones."""
    try:
        return SCENARIOS[name]
    except KeyError:
        raise ValueError(f"unknown scenario {name!r}; known: {', '.join(SCENARIOS)}") from None
