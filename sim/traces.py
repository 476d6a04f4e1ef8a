"""Sensor traces of the simulated wearer without the plant or the bus: fast inputs for the estimator.

The full stack (``sim.harness``) is the honest test of the controller; this is
for the estimator alone, at any sample rate (``ankle replay`` takes 500 Hz to
2 kHz): the wearer's strides (the same ``sim.wearer`` model: reference gait
warped to each stride's speed and time, stride-to-stride variability) sampled
as the shank gyro and pylon load would see them, with noise and bias, and the
true phase beside them.
"""
from __future__ import annotations

from typing import Dict

import numpy as np

from sim.plant import PROFILE_CHANNELS
from sim.wearer import Wearer

__all__ = ["walking_trace"]

_OMEGA = PROFILE_CHANNELS.index("shank_omega_rad_s")
_LOAD = PROFILE_CHANNELS.index("load_N")
_ANGLE = PROFILE_CHANNELS.index("ankle_angle_rad")


def walking_trace(scenario: str = "steady", speed_m_s: float = 1.25, duration_s: float = 30.0,
                  rate_Hz: float = 1000.0, mass_kg: float = 80.0, stride_cv: float = 0.02, seed: int = 0,
                  gyro_noise_rad_s: float = 0.02, gyro_bias_rad_s: float = 0.0,
                  load_noise_N: float = 5.0) -> Dict[str, np.ndarray]:
    """Walking strides only (a scenario's standing is not modelled here; use the harness).

    Returns arrays ``t``, ``shank_gyro``, ``load``, ``ankle_angle``, ``phase_true`` and the
    true event times ``heel_strike_s``, ``toe_off_s``.
    """
    if not 100.0 <= rate_Hz <= 10000.0:
        raise ValueError(f"rate {rate_Hz} Hz is outside 100..10000 Hz")
    wearer = Wearer(scenario, speed_m_s, mass_kg, stride_cv=stride_cv, seed=seed)
    t = np.arange(int(round(duration_s * rate_Hz))) / rate_Hz
    columns = {name: np.zeros_like(t) for name in ("shank_gyro", "load", "ankle_angle", "phase_true")}
    grid = np.linspace(0.0, 1.0, 1001)
    hs, to = [], []
    t0 = 0.0
    while t0 < duration_s:
        profile, stride_s, stance_fraction, _ = wearer.next_stride(t0)
        if not wearer.strides[-1].walking:
            raise ValueError(f"scenario {scenario!r} stands; walking_trace models walking only")
        inside = (t >= t0) & (t < t0 + stride_s)
        phase = (t[inside] - t0) / stride_s
        columns["shank_gyro"][inside] = np.interp(phase, grid, profile[_OMEGA])
        columns["load"][inside] = np.interp(phase, grid, profile[_LOAD])
        columns["ankle_angle"][inside] = np.interp(phase, grid, profile[_ANGLE])
        columns["phase_true"][inside] = phase
        hs.append(t0)
        to.append(t0 + stance_fraction * stride_s)
        t0 += stride_s
    rng = np.random.default_rng(seed)
    columns["shank_gyro"] += gyro_bias_rad_s + gyro_noise_rad_s * rng.standard_normal(t.size)
    columns["load"] += load_noise_N * rng.standard_normal(t.size)
    return {"t": t, **columns, "heel_strike_s": np.array(hs), "toe_off_s": np.array(to)}
