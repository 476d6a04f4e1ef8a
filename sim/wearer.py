"""The simulated wearer: which stride comes next, and the ground truth of every stride.

At each heel strike the wearer takes the scenario's speed, draws the stride
time around the speed's typical value (stride-to-stride variability, a
coefficient of variation of ``stride_cv``), and hands the plant that stride's
reference trajectories scaled to body mass.  Every stride is recorded
(``strides``) so evaluation can compare the controller's estimates with what
really happened.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from functools import lru_cache
from typing import List, Tuple

import numpy as np

from sim import reference, scenarios
from sim.plant import PROFILE_CHANNELS

__all__ = ["Stride", "Wearer", "STANDARD_GRAVITY"]

STANDARD_GRAVITY = 9.80665
PROFILE_POINTS = 1001


@dataclass(frozen=True)
class Stride:
    """Ground truth of one stride: heel strike at ``t_heel_strike_s``, toe-off at ``t_toe_off_s``."""

    index: int
    t_heel_strike_s: float
    stride_s: float
    stance_fraction: float
    speed_m_s: float

    @property
    def t_toe_off_s(self) -> float:
        return self.t_heel_strike_s + self.stance_fraction * self.stride_s

    @property
    def t_end_s(self) -> float:
        return self.t_heel_strike_s + self.stride_s


@lru_cache(maxsize=256)
def _unit_profile(speed_cm_s: int) -> Tuple[np.ndarray, float, float]:
    """Per-kg profile at a speed (cached per cm/s): rows in ``PROFILE_CHANNELS`` order."""
    v = speed_cm_s / 100.0
    p = reference.stride_profile(v, PROFILE_POINTS)
    rows = {
        "ankle_angle_rad": p["ankle_angle_rad"],
        "ankle_vel_rad_s": p["ankle_vel_rad_s"],
        "moment_Nm": p["ankle_moment_Nm_kg"],
        "load_N": p["grf_bw"] * STANDARD_GRAVITY,
        "shank_angle_rad": p["shank_angle_rad"],
        "shank_omega_rad_s": p["shank_omega_rad_s"],
    }
    table = np.vstack([rows[name] for name in PROFILE_CHANNELS])
    table.setflags(write=False)
    return table, reference.stride_time_s(v), reference.stance_fraction(v)


class Wearer:
    """Chooses strides for a scenario; deterministic for a given ``seed``."""

    def __init__(self, scenario: str = "steady", speed_m_s: float = 1.25, mass_kg: float = 80.0,
                 stride_cv: float = 0.02, seed: int = 0):
        self.scenario = scenarios.get(scenario)
        reference.stride_time_s(speed_m_s)        # raises for a speed outside the model
        if not 30.0 <= mass_kg <= 150.0:
            raise ValueError(f"mass {mass_kg} kg is outside 30..150 kg")
        if not 0.0 <= stride_cv <= 0.1:
            raise ValueError(f"stride_cv {stride_cv} is outside 0..0.1")
        self.speed_m_s = speed_m_s
        self.mass_kg = mass_kg
        self.stride_cv = stride_cv
        self._random = random.Random(seed)
        self.strides: List[Stride] = []

    def next_stride(self, t_heel_strike_s: float) -> Tuple[np.ndarray, float, float]:
        """The stride starting at ``t_heel_strike_s``: (profile (6, 1001), stride s, stance fraction)."""
        v = self.scenario.speed_at(t_heel_strike_s, self.speed_m_s)
        v = min(max(v, 0.45), 2.15)
        unit, nominal_s, stance_fraction = _unit_profile(int(round(v * 100)))
        factor = 1.0 + self.stride_cv * max(-3.0, min(3.0, self._random.gauss(0.0, 1.0)))
        stride_s = nominal_s * factor
        profile = unit.copy()
        scale = {"moment_Nm": self.mass_kg, "load_N": self.mass_kg,
                 "ankle_vel_rad_s": 1.0 / factor, "shank_omega_rad_s": 1.0 / factor}
        for row, name in enumerate(PROFILE_CHANNELS):
            profile[row] *= scale.get(name, 1.0)
        self.strides.append(Stride(len(self.strides), t_heel_strike_s, stride_s, stance_fraction, v))
        return np.ascontiguousarray(profile), stride_s, stance_fraction
