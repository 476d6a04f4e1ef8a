"""The asymmetric wearer: a model of how the prosthetic stance share follows the push-off received.

Unilateral transtibial amputees on a passive foot shorten the prosthetic stance and lengthen
the sound one.  This module is a *model* of that, for testing a controller's symmetry
measurement against ground truth; it is not fitted to any data set.  Every number below is an
assumption chosen to be of a plausible size, not a measured figure.

Definitions (per stride of the prosthetic side, heel strike to heel strike, ``T`` seconds)
-----------------------------------------------------------------------------------------
- Stance-time symmetry index ``SI = 100 * (P - S) / (0.5 * (P + S))`` [%], ``P`` the prosthetic
  stance time, ``S`` the sound-side stance time.  Negative: the prosthetic stance is shorter.
- Step-time symmetry index ``100 * (Pstep - Sstep) / (0.5 * (Pstep + Sstep))`` [%], with the
  sound step ``Sstep`` = prosthetic heel strike -> sound heel strike and the prosthetic step
  ``Pstep`` = sound heel strike -> next prosthetic heel strike.

The model (parameters of :class:`AsymmetryModel`, defaults in brackets)
----------------------------------------------------------------------
1. *What the wearer responds to*: the net ankle work the prosthesis delivered over a stance,
   ``w`` [J/kg], integrated from the plant's true ankle torque and angle
   (``-torque * d(angle)``, DESIGN.md's sign: + plantar-flexor torque, + dorsiflexion, so
   positive work is generated), per kg body mass.  Only walking strides count; standing does
   not change the wearer's state.
2. *Adaptation*: the wearer does not respond to one stride but to a running impression of the
   push-off, a first-order lag updated once per completed stance:
   ``w_eff <- w_eff + (w - w_eff) / adapt_strides`` [adapt_strides = 5 strides].  ``w_eff``
   starts at ``initial_work_J_kg`` [0 J/kg: the wearer comes off a passive foot].
3. *Symmetry from push-off*: linear in ``w_eff``:
   ``SI = si_passive_pct * (1 - w_eff / work_symmetric_J_kg)`` [si_passive_pct = -10 %,
   work_symmetric_J_kg = 0.25 J/kg], clamped to ``[-si_max_pct, +si_max_pct]`` [15 %].  So a
   passive foot (w_eff = 0) gives the passive SI, ``work_symmetric_J_kg`` gives symmetry, and
   more work than that overshoots to a longer prosthetic stance (positive SI).  The sign of the
   passive SI (prosthetic stance shorter) is the one reported for unilateral transtibial
   amputees; its size and the linear form are assumptions.  0.25 J/kg is at the top of the
   powered-ankle range (BiOM, 1.75 m/s); at the controller's default work target (0.18 J/kg at
   1.25 m/s) the model gives SI = -2.8 %.
4. *Variability*: each stride adds independent Gaussian noise of SD ``si_noise_pct`` [0.5 %]
   to the clamped SI (seeded from the wearer's seed; its own random stream, so the stride
   times are those of the symmetric wearer with the same seed).
5. *Timing*: the stride time ``T`` and the stance fraction ``sf`` are the speed model's
   (:mod:`sim.reference`, ``stance_fraction(v)``) as for a symmetric wearer, and the two
   stance times keep the able-bodied sum: ``P = sf*T*(1 + SI/200)``, ``S = sf*T*(1 - SI/200)``
   (then the SI of P and S is exactly SI).  The double support is split equally between the
   two double-support periods of the stride:
   sound toe-off ``t_sTO = (P + S - T)/2`` after the prosthetic heel strike, sound heel strike
   ``t_sHS = (T + P - S)/2`` after it.  The sound step is ``t_sHS``, the prosthetic step
   ``T - t_sHS``; so the step SI is ``-2 * sf * SI`` (for SI = 0: ``t_sHS = T/2``,
   ``t_sTO = sf*T - T/2``).
6. *Which stride a sound stance belongs to*: stride k's sound stance begins at its sound heel
   strike and ends at the sound toe-off early in stride k+1.  When strides differ (stride-time
   variability, speed changes, SI noise), that toe-off is placed ``t_sTO`` of *stride k*
   after the next prosthetic heel strike, so that the sound stance lasts exactly stride k's
   ``S`` and both double-support periods around it are equal.  (For equal strides this is the
   formula above; it differs from stride k+1's own ``t_sTO`` by a few milliseconds at most.)
   The first walking stride of a run or after standing uses its own ``t_sTO``.  So a stride's
   truth (:class:`sim.wearer.Stride`) is exactly what its events give:
   ``P = t_toe_off_s - t_heel_strike_s``, ``S`` = next stride's ``sound_toe_off_s`` minus this
   stride's ``sound_heel_strike_s``.
7. *The prosthetic load profile*: the reference vertical ground reaction is warped piecewise so
   that its double-support shape sits at these events: the reference stance phases
   ``(0, 0.109, 0.5, 0.609)`` (heel strike, contralateral toe-off, contralateral heel strike,
   toe-off of the symmetric reference) go to ``(0, t_sTO, t_sHS, P)``.  The sound foot's load is
   the same reference curve on its own stance (``(0, d, S - d, S)`` with ``d`` the double
   support), so its loading ends at the prosthetic toe-off and its unloading begins at the next
   prosthetic heel strike.  The other channels keep the plain stance warp with ``sf = P/T``.

The symmetric wearer (no model) is the special case SI = 0 on every stride.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Tuple

import numpy as np

__all__ = ["AsymmetryModel", "Adaptation", "StrideTiming", "REF_STANCE_EVENTS", "symmetry_index",
           "si_from_work", "lag_update", "stance_times", "sound_events", "step_si", "stride_timing",
           "load_warp_phase", "sound_stance_ref_phase"]

#: Stance events of the symmetric reference stride (Winter), as fractions of its stride: heel
#: strike, contralateral toe-off, contralateral heel strike, toe-off.
REF_STANCE_EVENTS = (0.0, 0.109, 0.5, 0.609)


@dataclass(frozen=True)
class AsymmetryModel:
    """Parameters of the asymmetric wearer (see the module docstring; all are model assumptions).

    ``si_passive_pct``: stance-time SI with no push-off [%] (negative: prosthetic stance shorter).
    ``work_symmetric_J_kg``: effective net stance work that gives symmetry [J/kg, > 0].
    ``adapt_strides``: time constant of the wearer's adaptation [strides, >= 1].
    ``si_noise_pct``: SD of the stride-to-stride SI noise [%, >= 0].
    ``si_max_pct``: the model SI is clamped to +-this [%, 0..40].
    ``initial_work_J_kg``: the effective work the wearer starts from [J/kg] (0: a passive foot).
    """

    si_passive_pct: float = -10.0
    work_symmetric_J_kg: float = 0.25
    adapt_strides: float = 5.0
    si_noise_pct: float = 0.5
    si_max_pct: float = 15.0
    initial_work_J_kg: float = 0.0

    def __post_init__(self) -> None:
        for name in ("si_passive_pct", "work_symmetric_J_kg", "adapt_strides", "si_noise_pct",
                     "si_max_pct", "initial_work_J_kg"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value)):
                raise ValueError(f"AsymmetryModel.{name} must be a finite number, got {value!r}")
        if self.work_symmetric_J_kg <= 0.0:
            raise ValueError(f"work_symmetric_J_kg must be > 0, got {self.work_symmetric_J_kg}")
        if self.adapt_strides < 1.0:
            raise ValueError(f"adapt_strides must be >= 1 (1: no lag), got {self.adapt_strides}")
        if self.si_noise_pct < 0.0:
            raise ValueError(f"si_noise_pct must be >= 0, got {self.si_noise_pct}")
        # |SI| up to 40 % keeps P/T = sf*(1 +- SI/200) inside the plant's plausible stance shares
        if not 0.0 <= self.si_max_pct <= 40.0:
            raise ValueError(f"si_max_pct must be in 0..40, got {self.si_max_pct}")

    def si_pct(self, w_eff_J_kg: float) -> float:
        """The model's stance-time SI [%] at effective work ``w_eff_J_kg``, clamped, no noise."""
        return si_from_work(w_eff_J_kg, self.si_passive_pct, self.work_symmetric_J_kg, self.si_max_pct)

    def adapted(self, w_eff_J_kg: float, work_J_kg: float) -> float:
        """``w_eff`` after one more stance that delivered ``work_J_kg``."""
        return lag_update(w_eff_J_kg, work_J_kg, self.adapt_strides)


# --- pure formulae ---------------------------------------------------------------------------------


def symmetry_index(prosthetic: float, sound: float) -> float:
    """``100 * (prosthetic - sound) / (0.5 * (prosthetic + sound))`` [%] (stance or step times)."""
    return 100.0 * (prosthetic - sound) / (0.5 * (prosthetic + sound))


def si_from_work(w_eff_J_kg: float, si_passive_pct: float, work_symmetric_J_kg: float,
                 si_max_pct: float) -> float:
    """``si_passive_pct * (1 - w_eff / work_symmetric)``, clamped to ``[-si_max_pct, si_max_pct]``."""
    si = si_passive_pct * (1.0 - w_eff_J_kg / work_symmetric_J_kg)
    return min(max(si, -si_max_pct), si_max_pct)


def lag_update(w_eff_J_kg: float, work_J_kg: float, adapt_strides: float) -> float:
    """One stride of the first-order lag: ``w_eff + (w - w_eff) / adapt_strides``."""
    return w_eff_J_kg + (work_J_kg - w_eff_J_kg) / adapt_strides


def stance_times(si_pct: float, stride_s: float, stance_fraction: float) -> Tuple[float, float]:
    """(P, S) [s]: ``sf*T*(1 + SI/200)`` and ``sf*T*(1 - SI/200)``; their SI is ``si_pct``."""
    base = stance_fraction * stride_s
    return base * (1.0 + si_pct / 200.0), base * (1.0 - si_pct / 200.0)


def sound_events(prosthetic_s: float, sound_s: float, stride_s: float) -> Tuple[float, float]:
    """(t_sTO, t_sHS) [s after the prosthetic heel strike]: ``(P+S-T)/2`` and ``(T+P-S)/2``."""
    # T/2 + (P - S)/2: exactly T/2 for a symmetric stride, so its step SI is exactly 0
    return 0.5 * (prosthetic_s + sound_s - stride_s), 0.5 * stride_s + 0.5 * (prosthetic_s - sound_s)


def step_si(stride_s: float, sound_heel_strike_s: float) -> float:
    """Step-time SI [%] of a stride whose sound heel strike is ``sound_heel_strike_s`` after its
    prosthetic heel strike: Pstep = T - t_sHS, Sstep = t_sHS."""
    return symmetry_index(stride_s - sound_heel_strike_s, sound_heel_strike_s)


@dataclass(frozen=True)
class StrideTiming:
    """One stride's timing by the model, times in seconds from its prosthetic heel strike.

    ``double_support_s`` (= ``(P+S-T)/2``) is each of the two double-support periods of the sound
    stance that begins in this stride; ``sound_toe_off_s`` is the sound toe-off *within* this
    stride, which ends the previous stride's sound stance (module docstring, point 6).
    """

    stride_s: float
    stance_fraction: float        # the speed model's sf (the symmetric wearer's stance share)
    si_stance_pct: float
    prosthetic_stance_s: float    # P
    sound_stance_s: float         # S
    double_support_s: float       # (P + S - T)/2
    sound_heel_strike_s: float    # (T + P - S)/2
    sound_toe_off_s: float        # this stride's own double support, or the previous stride's
    previous_sound_stance_s: float  # the sound stance that ends at sound_toe_off_s

    @property
    def stance_share(self) -> float:
        """P/T: the prosthetic toe-off as a fraction of the stride (``sf * (1 + SI/200)``)."""
        return self.stance_fraction * (1.0 + self.si_stance_pct / 200.0)

    @property
    def si_step_pct(self) -> float:
        return step_si(self.stride_s, self.sound_heel_strike_s)

    @property
    def sound_step_s(self) -> float:
        return self.sound_heel_strike_s

    @property
    def prosthetic_step_s(self) -> float:
        return self.stride_s - self.sound_heel_strike_s


def stride_timing(stride_s: float, stance_fraction: float, si_pct: float,
                  previous: "StrideTiming | None" = None) -> StrideTiming:
    """The timing of one stride (``T``, the speed model's ``sf``, stance-time SI).

    ``previous``: the walking stride just before (None at the start of walking): its double
    support places this stride's sound toe-off (module docstring, point 6).  Should it not fit
    before this stride's sound heel strike (never within the speed model's range), this
    stride's own double support is used.  ValueError for a timing with no double support.
    """
    if not (stride_s > 0.0 and 0.0 < stance_fraction < 1.0 and math.isfinite(si_pct)):
        raise ValueError(f"implausible stride: T={stride_s}, sf={stance_fraction}, SI={si_pct}")
    p, s = stance_times(si_pct, stride_s, stance_fraction)
    d, t_shs = sound_events(p, s, stride_s)
    if not (0.0 < d < t_shs < p < stride_s):
        raise ValueError(f"no double support: T={stride_s}, P={p}, S={s} (sf={stance_fraction}, SI={si_pct})")
    t_sto, s_before = d, s
    if previous is not None and 0.0 < previous.double_support_s < 0.8 * t_shs:
        t_sto, s_before = previous.double_support_s, previous.sound_stance_s
    return StrideTiming(stride_s, stance_fraction, si_pct, p, s, d, t_shs, t_sto, s_before)


def load_warp_phase(phase, t_sto_frac: float, t_shs_frac: float, stance_frac: float):
    """Reference phase for the prosthetic load at stride ``phase`` (0..1), piecewise linear.

    Stance knots ``(0, t_sTO, t_sHS, P)/T`` go to :data:`REF_STANCE_EVENTS`, swing
    ``[P/T, 1]`` to ``[0.609, 1]``.
    """
    return np.interp(phase, (0.0, t_sto_frac, t_shs_frac, stance_frac, 1.0), (*REF_STANCE_EVENTS, 1.0))


def sound_stance_ref_phase(tau_s, sound_stance_s: float, double_support_s: float):
    """Reference phase of the sound foot's load at ``tau_s`` seconds after the sound heel strike.

    Knots ``(0, d, S - d, S)`` go to :data:`REF_STANCE_EVENTS` (clamped outside the stance).
    """
    return np.interp(tau_s, (0.0, double_support_s, sound_stance_s - double_support_s, sound_stance_s),
                     REF_STANCE_EVENTS)


class Adaptation:
    """The state of one asymmetric wearer: effective work, last work received, the SI noise stream."""

    def __init__(self, model: AsymmetryModel, seed: int = 0):
        if not isinstance(model, AsymmetryModel):
            raise TypeError(f"asymmetry must be an AsymmetryModel, got {model!r}")
        self.model = model
        self.w_eff_J_kg = float(model.initial_work_J_kg)
        self.last_work_J_kg = math.nan
        # its own stream: the wearer's stride times do not change with the model
        self._random = random.Random(f"asymmetry/{seed}")

    def observe(self, work_J_kg: float) -> None:
        """One completed stance delivered ``work_J_kg`` (non-finite values are ignored)."""
        if math.isfinite(work_J_kg):
            self.last_work_J_kg = float(work_J_kg)
            self.w_eff_J_kg = self.model.adapted(self.w_eff_J_kg, work_J_kg)

    def next_si_pct(self) -> float:
        """The next stride's stance-time SI: the model at ``w_eff`` plus this stride's noise."""
        noise = self._random.gauss(0.0, 1.0) * self.model.si_noise_pct
        return self.model.si_pct(self.w_eff_J_kg) + noise
