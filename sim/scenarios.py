"""Named walking scenarios: what speed the simulated wearer walks at, and when.

A scenario is a speed profile over time; the wearer takes the speed at each
heel strike.  ``ankle sim --scenario NAME``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict

__all__ = ["Scenario", "SCENARIOS", "get"]


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    speed_at: Callable[[float, float], float]   # (t_s, nominal speed m/s) -> speed m/s


def _steady(t_s: float, v: float) -> float:
    return v


def _speed_steps(t_s: float, v: float) -> float:
    # nominal, then 30 % slower, then 30 % faster, every 15 s
    return v * (1.0, 0.7, 1.3)[int(t_s // 15.0) % 3]


def _ramp(t_s: float, v: float) -> float:
    # from 60 % to 140 % of nominal and back over 40 s
    x = (t_s % 40.0) / 20.0
    return v * (0.6 + 0.8 * (x if x <= 1.0 else 2.0 - x))


SCENARIOS: Dict[str, Scenario] = {s.name: s for s in (
    Scenario("steady", "constant speed", _steady),
    Scenario("speed-steps", "speed steps every 15 s: nominal, -30 %, +30 %", _speed_steps),
    Scenario("ramp", "speed ramps 60 % -> 140 % -> 60 % of nominal over 40 s", _ramp),
)}


def get(name: str) -> Scenario:
    """The scenario ``name``, or ValueError listing the known ones."""
    try:
        return SCENARIOS[name]
    except KeyError:
        raise ValueError(f"unknown scenario {name!r}; known: {', '.join(SCENARIOS)}") from None
