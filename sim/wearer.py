"""The simulated wearer: which stride comes next, and the ground truth of every stride.

At each heel strike the wearer takes the scenario's speed, draws the stride
time around the speed's typical value (stride-to-stride variability, a
coefficient of variation of ``stride_cv``), and hands the plant that stride's
reference trajectories scaled to body mass: the gait of that speed
(:mod:`sim.reference`: the load's double hump, its loading over the double
support, the shank's swing all change with speed as published), with the
stride's own small departures of shape (:func:`sim.reference.draw_shape`:
hump amplitudes, valley and swing timing, shank excursion), drawn from a
random stream of the wearer's own (seeded ``shape/<seed>``), so that two
strides at one speed are never one template stretched, and the stride times
are those the wearer of a seed always had.  Every stride is recorded
(``strides``) so evaluation can compare the controller's estimates with what
really happened.

When the scenario's speed at a heel strike is 0.0, the wearer stands instead:
it hands the plant *standing segments* (same mechanism, ``walking`` False) of
a few seconds each until the scenario walks again.  A standing spell begins at
that heel strike (weight comes onto the foot, the foot goes flat, the shank
comes upright), then sways quietly and shifts weight from leg to leg; the
segment in which the scenario restarts ends with gait initiation: the foot
unloads and swings forward like the reference swing at the new speed, so the
next walking stride begins with an ordinary heel strike.  The wearer looks
ahead in the scenario to cut the segments so that this works out.

Told what to do (:meth:`Wearer.command`, the simulator console's ``wearer``):
a command overrides the scenario's speed until it is withdrawn, as a
prosthetist asks a wearer to stand or to walk.  It has no look-ahead, so a
standing wearer told to walk initiates gait at the start of the first
standing segment planned after the command (:meth:`Wearer.replan_last` plans
a queued one again); see :meth:`Wearer.command` for the delays.

The sound side.  Every walking stride also times the other leg (its heel
strike and toe-off, :class:`Stride`): symmetric by default, or, with an
:class:`sim.asymmetry.AsymmetryModel`, with a prosthetic stance share that
follows the push-off the wearer has received (the plant's devices report the
net ankle work of each stance with :meth:`Wearer.record_stance_work`; see
:mod:`sim.asymmetry` for the model and its assumptions).  The prosthetic load
profile is warped so that its double-support shape sits at the sound side's
events.  Each profile carries two more rows, ``SOUND_CHANNELS``: the sound
foot's vertical force (the reference ground reaction on the sound stance,
exactly 0 in its swing; body weight minus the prosthetic load while standing)
and the sound shank's angular velocity (the reference on the sound side's
timeline; the quiet-standing sway while standing).
"""
from __future__ import annotations

import copy
import math
import random
from dataclasses import dataclass
from functools import lru_cache
from typing import List, Optional, Tuple

import numpy as np

from sim import reference, scenarios
from sim.asymmetry import (Adaptation, AsymmetryModel, REF_STANCE_EVENTS, StrideTiming, load_warp_phase,
                           sound_stance_ref_phase, stride_timing)
from sim.plant import PROFILE_CHANNELS, SOUND_CHANNELS

__all__ = ["Stride", "Wearer", "STANDARD_GRAVITY", "ALL_CHANNELS"]

#: Rows of the profiles :meth:`Wearer.next_stride` hands out: the prosthetic side, then the sound side.
ALL_CHANNELS = PROFILE_CHANNELS + SOUND_CHANNELS
_LOAD_ROW = PROFILE_CHANNELS.index("load_N")
_SHANK_ANGLE_ROW = PROFILE_CHANNELS.index("shank_angle_rad")
_SHANK_OMEGA_ROW = PROFILE_CHANNELS.index("shank_omega_rad_s")
_SOUND_LOAD_ROW = ALL_CHANNELS.index("sound_load_N")
_SOUND_OMEGA_ROW = ALL_CHANNELS.index("sound_omega_rad_s")
_REF_TOE_OFF = REF_STANCE_EVENTS[3]

STANDARD_GRAVITY = 9.80665
PROFILE_POINTS = 1001
#: Walking speeds the speed model covers (m/s); a scenario's walking speed is clamped to them.
#: 0.3 m/s: the slowest walking simulated (the speed model is extrapolated below 0.9 m/s, sim.reference).
MIN_SPEED_M_S, MAX_SPEED_M_S = 0.3, 2.15

# Standing (all times in seconds).  Sizes are those of quiet standing in adults: sway of a few
# hundredths of a radian below 1 Hz, weight shifted between the legs over several seconds.
LOAD_RISE_S = 0.1              # heel strike to weight on the foot
FOOT_FLAT_S = 0.1              # the foot rotates flat after heel strike (as in loading response)
SETTLE_S = 0.5                 # the shank comes from its heel-strike angle to upright
UNLOAD_S = 0.1                 # gait initiation: the weight comes off the foot
MIN_QUIET_S = 1.0              # shortest stand, heel strike to unloading (settle first)
SEGMENT_S = (2.0, 4.0)         # standing segment lengths: 1001 points keep 4 ms resolution
CROSSFADE_S = 1.5              # a segment's new sway and weight shift fade in over this
SWAY_AMPLITUDE_RAD = (0.02, 0.04)
SWAY_FREQUENCY_HZ = (0.2, 0.6)
WEIGHT_MEAN_BW = 0.525         # weight on the prosthesis swings 0.25..0.8 body weight
WEIGHT_SWING_BW = 0.275
WEIGHT_PERIOD_S = ((5.0, 10.0), (3.0, 5.0))   # slow main shift, quicker smaller one
COP_MEAN_M = 0.01              # centre of pressure ahead of the ankle: small plantar-flexor moment
COP_PER_RAD = 0.2              # ... moving forward as the body sways forward
MAX_STANDING_MOMENT_NM_KG = 0.15
# The initiation swing starts from an upright, still shank instead of the trailing shank of
# toe-off; it joins the reference swing by this share of the swing (an initial knee-flexion
# dip, then the reference's forward swing and terminal swing unchanged, so the heel strike
# that follows is the reference's).
SWING_JOIN = 0.7
RESTART_LOOKAHEAD_S = 8.0      # > SEGMENT_S[1] + SEGMENT_S[0]: see Wearer._standing_segment
RESTART_SCAN_S = 0.02


@dataclass(frozen=True)
class Stride:
    """Ground truth of one stride: heel strike at ``t_heel_strike_s``, toe-off at ``t_toe_off_s``.

    ``walking`` False marks a standing segment: it starts at ``t_heel_strike_s``
    (a real heel strike only for the first segment of a standing spell) and
    lasts ``stride_s``; its ``speed_m_s`` is 0 and ``stance_fraction`` is the
    share of it with the foot loaded (below 1 only for the segment that ends
    with gait initiation), not a gait-cycle toe-off.  Its sound-side fields
    are NaN.

    The sound side of a walking stride (:mod:`sim.asymmetry`): its heel strike
    ``sound_heel_strike_s`` and the toe-off *within* this stride,
    ``sound_toe_off_s`` (absolute times; the toe-off ends the sound stance that
    began in the previous stride).  This stride's sound stance runs from its
    ``sound_heel_strike_s`` for ``sound_stance_s`` seconds, to the next walking
    stride's ``sound_toe_off_s``.  ``si_stance_pct`` is the stance-time SI of
    the prosthetic stance (``t_heel_strike_s`` .. ``t_toe_off_s``) against that
    sound stance; ``si_step_pct`` the step-time SI of the sound step
    (heel strike -> sound heel strike) and the prosthetic step (sound heel
    strike -> ``t_end_s``).  Both are 0 for the symmetric wearer.
    ``work_received_J_kg`` is the net ankle work of the last stance reported to
    the wearer before this stride was planned (NaN if none yet);
    ``work_effective_J_kg`` the asymmetry model's lagged work the stride's SI
    came from (NaN for the symmetric wearer).
    """

    index: int
    t_heel_strike_s: float
    stride_s: float
    stance_fraction: float
    speed_m_s: float
    walking: bool = True
    sound_heel_strike_s: float = math.nan
    sound_toe_off_s: float = math.nan
    si_stance_pct: float = math.nan
    si_step_pct: float = math.nan
    work_received_J_kg: float = math.nan
    work_effective_J_kg: float = math.nan
    sound_stance_s: float = math.nan
    #: the stride's own departures from its speed's shape (sim.reference.StrideShape; None standing)
    shape: Optional[reference.StrideShape] = None

    @property
    def t_toe_off_s(self) -> float:
        return self.t_heel_strike_s + self.stance_fraction * self.stride_s

    @property
    def t_end_s(self) -> float:
        return self.t_heel_strike_s + self.stride_s

    @property
    def sound_stance_end_s(self) -> float:
        """When this stride's sound stance ends (in the next stride): NaN for standing."""
        return self.sound_heel_strike_s + self.sound_stance_s


@lru_cache(maxsize=256)
def _unit_profile(speed_cm_s: int) -> Tuple[np.ndarray, float, float]:
    """Per-kg profile at a speed (cached per cm/s): rows in ``PROFILE_CHANNELS`` order."""
    return _unit_table(speed_cm_s, None)


def _stance_profile(speed_cm_s: int, stance_fraction: float,
                    shape: Optional[reference.StrideShape] = None) -> np.ndarray:
    """Per-kg profile at a speed with the stance share ``stance_fraction`` and the stride's ``shape``
    (cached only for the speed model's own share and shape: a walking stride's shape changes every
    stride, 0.3 ms to compute)."""
    unit, _, sf = _unit_profile(speed_cm_s)
    if stance_fraction == sf and (shape is None or shape == reference.NOMINAL_SHAPE):
        return unit
    return _unit_table(speed_cm_s, stance_fraction, shape)[0]


def _unit_table(speed_cm_s: int, stance_fraction: Optional[float],
                shape: Optional[reference.StrideShape] = None) -> Tuple[np.ndarray, float, float]:
    """Per-kg profile (rows ``PROFILE_CHANNELS``), stride time and the speed model's stance share.

    ``stance_fraction`` None: the speed model's.  The load row uses the plain stance warp.
    """
    v = speed_cm_s / 100.0
    p = reference.stride_profile(v, PROFILE_POINTS, stance_fraction, shape)
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


_PHASE_GRID = np.linspace(0.0, 1.0, PROFILE_POINTS)
_PHASE_GRID.setflags(write=False)


def _sound_rows(timing: StrideTiming, speed_m_s: float, weight_N: float) -> Tuple[np.ndarray, np.ndarray]:
    """The sound foot's load [N] and shank rate [rad/s] over one prosthetic stride.

    On the stride's time line: the end of the sound stance that began in the previous stride
    (up to ``sound_toe_off_s``), the sound swing, then the start of this stride's sound stance
    (from ``sound_heel_strike_s``).  The load is the reference ground reaction warped onto each
    sound stance with its double support at both ends (``sim.asymmetry.sound_stance_ref_phase``),
    exactly 0 in the swing; the rate is the reference shank rate with the plain stance warp
    (stance onto the reference stance, swing onto the reference swing).
    """
    t = _PHASE_GRID * timing.stride_s
    t_to, t_hs = timing.sound_toe_off_s, timing.sound_heel_strike_s
    s_before, s_now = timing.previous_sound_stance_s, timing.sound_stance_s
    tail, head = t <= t_to, t >= t_hs
    swing = ~(tail | head)
    tau_tail = t + (s_before - t_to)             # since the previous sound heel strike
    tau_head = t - t_hs                          # since this stride's sound heel strike
    load_ref = np.where(tail, sound_stance_ref_phase(tau_tail, s_before, t_to),
                        sound_stance_ref_phase(tau_head, s_now, timing.double_support_s))
    load = weight_N * reference.grf_bw_at(load_ref, speed_m_s)
    load[swing] = 0.0
    swing_s = t_hs - t_to
    ref = np.where(tail, _REF_TOE_OFF * tau_tail / s_before,
                   np.where(head, _REF_TOE_OFF * tau_head / s_now,
                            _REF_TOE_OFF + (1.0 - _REF_TOE_OFF) * (t - t_to) / swing_s))
    rate = np.where(tail, _REF_TOE_OFF / s_before,
                    np.where(head, _REF_TOE_OFF / s_now, (1.0 - _REF_TOE_OFF) / swing_s))
    return load, reference.shank_omega_at(ref, rate, speed_m_s)


def _hermite_to_rest(t_s: np.ndarray, tau_s: float, x0: float, v0: float) -> Tuple[np.ndarray, np.ndarray]:
    """A cubic from value ``x0`` and slope ``v0`` at t=0 to 0 with slope 0 at ``tau_s``; 0 after.

    Returns (value, d/dt).  Added to a signal, it joins that signal smoothly to a
    given start state: the way every transition here keeps gyro = d(angle)/dt.
    """
    s = np.clip(np.asarray(t_s, dtype=float) / tau_s, 0.0, 1.0)
    value = x0 * (1.0 - 3.0 * s**2 + 2.0 * s**3) + v0 * tau_s * s * (1.0 - s) ** 2
    slope = x0 * (6.0 * s**2 - 6.0 * s) / tau_s + v0 * (3.0 * s**2 - 4.0 * s + 1.0)
    return value, slope


def _smoothstep(x: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """0 -> 1 over x in 0..1 with zero slope at both ends: (value, d/dx)."""
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x), 6.0 * x * (1.0 - x)


@dataclass(frozen=True)
class _Sines:
    """A sum of sines: ``sum(a * sin(2 pi f t + phi))``, t in seconds of the standing spell."""

    amplitude: Tuple[float, ...]
    frequency_Hz: Tuple[float, ...]
    phase_rad: Tuple[float, ...]

    def __call__(self, t_s: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        value = np.zeros_like(t_s)
        slope = np.zeros_like(t_s)
        for a, f, phi in zip(self.amplitude, self.frequency_Hz, self.phase_rad):
            w = 2.0 * math.pi * f
            value += a * np.sin(w * t_s + phi)
            slope += a * w * np.cos(w * t_s + phi)
        return value, slope


@dataclass(frozen=True)
class _Posture:
    """One segment's random quiet-standing pattern: shank sway (rad) and weight shift (BW about the mean)."""

    sway: _Sines
    weight: _Sines

    @staticmethod
    def draw(rnd: random.Random, first: bool) -> "_Posture":
        """Draw a pattern; the spell's first starts its weight shift at the mean (about half BW)."""
        amplitude = rnd.uniform(*SWAY_AMPLITUDE_RAD)
        share = rnd.uniform(0.5, 0.8)
        sway = _Sines((amplitude * share, amplitude * (1.0 - share)),
                      (rnd.uniform(*SWAY_FREQUENCY_HZ), rnd.uniform(*SWAY_FREQUENCY_HZ)),
                      (rnd.uniform(0.0, 2.0 * math.pi), rnd.uniform(0.0, 2.0 * math.pi)))
        share = rnd.uniform(0.6, 0.8)
        periods = [rnd.uniform(*WEIGHT_PERIOD_S[0]), rnd.uniform(*WEIGHT_PERIOD_S[1])]
        if first:
            phases = [rnd.choice((0.0, math.pi)), rnd.choice((0.0, math.pi))]
        else:
            phases = [rnd.uniform(0.0, 2.0 * math.pi), rnd.uniform(0.0, 2.0 * math.pi)]
        weight = _Sines((WEIGHT_SWING_BW * share, WEIGHT_SWING_BW * (1.0 - share)),
                        (1.0 / periods[0], 1.0 / periods[1]), tuple(phases))
        return _Posture(sway, weight)


@dataclass(frozen=True)
class _Entry:
    """The state a standing spell starts from: the end of the stride whose heel strike begins it."""

    shank_rad: float
    shank_omega_rad_s: float
    ankle_rad: float
    ankle_vel_rad_s: float
    sound_omega_rad_s: float = 0.0


class _StandingSpell:
    """One spell of standing, from the heel strike that ends walking to the gait initiation.

    Its signals are functions of time since the spell began (``t`` below), so
    the segments cut from it join without jumps.  Each segment brings a new
    random posture (:class:`_Posture`), cross-faded in from the previous one.
    """

    def __init__(self, t_start_s: float, entry: Optional[_Entry], mass_kg: float):
        self.t_start_s = t_start_s
        self.entry = entry                    # None: the run starts standing (no heel strike)
        self.mass_kg = mass_kg
        self.previous: Optional[_Posture] = None
        self.current: Optional[_Posture] = None
        self.current_from_s = 0.0
        self.unload_at_s: Optional[float] = None     # gait initiation planned: unloading begins
        self.swing: Optional[Tuple[np.ndarray, np.ndarray, float]] = None
        self.settle = (0.0, 0.0)              # shank offset and rate at heel strike, relative to sway
        self.sound_settle_rad_s = 0.0         # sound shank rate at heel strike, relative to sway
        self.swing_speed_m_s = 0.0

    def new_segment(self, t: float, posture: _Posture) -> None:
        """A segment starts at spell time ``t`` with ``posture`` fading in."""
        first = self.current is None
        self.previous, self.current, self.current_from_s = self.current, posture, t
        if first and self.entry is not None:
            angle, omega = self._posture(np.zeros(1), "sway")
            self.settle = (self.entry.shank_rad - angle[0], self.entry.shank_omega_rad_s - omega[0])
            self.sound_settle_rad_s = self.entry.sound_omega_rad_s - omega[0]

    def plan_initiation(self, unload_at_s: float, speed_m_s: float) -> float:
        """Unload at spell time ``unload_at_s`` and swing into walking at ``speed_m_s``.

        Returns the spell time of the heel strike that ends the swing.
        """
        unit, stride_s, stance_fraction = _unit_profile(int(round(speed_m_s * 100)))
        phase = np.linspace(0.0, 1.0, PROFILE_POINTS)
        self.unload_at_s = unload_at_s
        self.swing_speed_m_s = int(round(speed_m_s * 100)) / 100.0
        self.swing = (unit, phase * stride_s - stance_fraction * stride_s, (1.0 - stance_fraction) * stride_s)
        return unload_at_s + UNLOAD_S + self.swing[2]

    # ------------------------------------------------------------------ signals
    def _posture(self, t: np.ndarray, part: str) -> Tuple[np.ndarray, np.ndarray]:
        """Sway or weight shift (``part``) at spell times ``t``: the current posture faded in."""
        value, slope = getattr(self.current, part)(t)
        if self.previous is None:
            return value, slope
        old_value, old_slope = getattr(self.previous, part)(t)
        w, dw = _smoothstep((t - self.current_from_s) / CROSSFADE_S)
        dw = dw / CROSSFADE_S
        # a convex blend stays within both patterns' bounds
        return (w * value + (1.0 - w) * old_value,
                w * slope + (1.0 - w) * old_slope + dw * (value - old_value))

    def _shank_standing(self, t: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Shank angle and rate while the foot is down: sway, joined from the heel strike."""
        angle, omega = self._posture(t, "sway")
        d, dd = _hermite_to_rest(t, SETTLE_S, *self.settle)
        return angle + d, omega + dd

    def _foot_standing(self, t: np.ndarray, shank: np.ndarray, omega: np.ndarray):
        """Ankle angle and rate with the foot down: foot flat (ankle = -shank) after heel strike."""
        ankle, ankle_vel = -shank, -omega
        if self.entry is not None:
            # the foot's own angle to the ground, toe up at heel strike, goes flat
            d, dd = _hermite_to_rest(t, FOOT_FLAT_S, self.entry.ankle_rad + self.entry.shank_rad,
                                     self.entry.ankle_vel_rad_s + self.entry.shank_omega_rad_s)
            ankle, ankle_vel = ankle + d, ankle_vel + dd
        return ankle, ankle_vel

    def sample(self, t: np.ndarray) -> np.ndarray:
        """The profile (PROFILE_CHANNELS rows, SI units for this body mass) at spell times ``t``."""
        shank, omega = self._shank_standing(t)
        ankle, ankle_vel = self._foot_standing(t, shank, omega)
        sway, _ = self._posture(t, "sway")
        shift, _ = self._posture(t, "weight")
        load_bw = WEIGHT_MEAN_BW + shift
        if self.entry is not None:
            # quarter sine: steepest at contact, as the impact of a heel strike
            load_bw = load_bw * np.sin(0.5 * math.pi * np.clip(t / LOAD_RISE_S, 0.0, 1.0))
        if self.unload_at_s is not None:
            load_bw = load_bw * (1.0 - _smoothstep((t - self.unload_at_s) / UNLOAD_S)[0])
            swing = t >= self.unload_at_s + UNLOAD_S
            load_bw[swing] = 0.0
            if swing.any():
                shank[swing], omega[swing], ankle[swing], ankle_vel[swing] = self._swing(
                    t[swing] - (self.unload_at_s + UNLOAD_S))
        load_N = load_bw * self.mass_kg * STANDARD_GRAVITY
        limit = MAX_STANDING_MOMENT_NM_KG * self.mass_kg
        moment = np.clip(load_N * (COP_MEAN_M + COP_PER_RAD * sway), -limit, limit)
        rows = {"ankle_angle_rad": ankle, "ankle_vel_rad_s": ankle_vel, "moment_Nm": moment,
                "load_N": load_N, "shank_angle_rad": shank, "shank_omega_rad_s": omega,
                # both feet carry the body: the sound foot what the prosthesis does not
                "sound_load_N": self.mass_kg * STANDARD_GRAVITY - load_N,
                "sound_omega_rad_s": self._sound_omega(t)}
        return np.ascontiguousarray(np.vstack([rows[name] for name in ALL_CHANNELS]))

    def _sound_omega(self, t: np.ndarray) -> np.ndarray:
        """The sound shank's rate while standing: the sway, joined from the last stride's rate
        after the heel strike and, in gait initiation, blended into the sound stance that the
        first stride's heel strike finds (the symmetric wearer's, at the speed model's timing)."""
        _, rate = self._posture(t, "sway")
        if self.entry is not None:
            rate = rate + self.sound_settle_rad_s * (1.0 - _smoothstep(t / SETTLE_S)[0])
        if self.unload_at_s is not None:
            _, stride_s, sf = _unit_profile(int(round(self.swing_speed_m_s * 100)))
            stance_s, double_s = sf * stride_s, (sf - 0.5) * stride_s
            t_next = self.unload_at_s + UNLOAD_S + self.swing[2]          # the first heel strike
            tau = np.maximum(t - t_next + stance_s - double_s, 0.0)        # since the sound heel strike
            stance_rate = reference.shank_omega_at(_REF_TOE_OFF * tau / stance_s, _REF_TOE_OFF / stance_s,
                                                   self.swing_speed_m_s)
            w, _ = _smoothstep((t - self.unload_at_s) / (t_next - self.unload_at_s))
            rate = (1.0 - w) * rate + w * stance_rate
        return rate

    def _swing(self, t_swing: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The initiation swing at times since it began: the reference swing, joined from standing.

        Returns shank angle, shank rate, ankle angle, ankle rate.
        """
        unit, t_in_swing, swing_s = self.swing
        t0 = self.unload_at_s + UNLOAD_S
        # the standing state at the swing's start (foot still flat, shank upright)
        start = np.array([t0])
        s0, w0 = self._shank_standing(start)
        a0, v0 = self._foot_standing(start, s0, w0)
        join_s = SWING_JOIN * swing_s
        out = []
        for angle_ch, rate_ch, x0, r0 in (("shank_angle_rad", "shank_omega_rad_s", s0[0], w0[0]),
                                          ("ankle_angle_rad", "ankle_vel_rad_s", a0[0], v0[0])):
            ref_angle = unit[PROFILE_CHANNELS.index(angle_ch)]
            ref_rate = unit[PROFILE_CHANNELS.index(rate_ch)]
            angle = np.interp(t_swing, t_in_swing, ref_angle)
            rate = np.interp(t_swing, t_in_swing, ref_rate)
            d, dd = _hermite_to_rest(t_swing, join_s, x0 - np.interp(0.0, t_in_swing, ref_angle),
                                     r0 - np.interp(0.0, t_in_swing, ref_rate))
            out += [angle + d, rate + dd]
        return out[0], out[1], out[2], out[3]


class Wearer:
    """Chooses strides and standing segments for a scenario; deterministic for a given ``seed``."""

    def __init__(self, scenario: str = "steady", speed_m_s: float = 1.25, mass_kg: float = 80.0,
                 stride_cv: float = 0.02, seed: int = 0, asymmetry: Optional[AsymmetryModel] = None):
        """``asymmetry``: None for a symmetric wearer (SI 0 on every stride), or the model of a
        wearer whose prosthetic stance share follows the push-off received (:mod:`sim.asymmetry`)."""
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
        # the strides' shapes come from a stream of their own, so that the stride times (and every
        # other draw of self._random) are those a wearer of this seed has always had
        self._shape_random = random.Random(f"shape/{seed}")
        self._shank_gain = 1.0                    # the last stride's shank gain at its end
        self.strides: List[Stride] = []
        self._last_profile: Optional[np.ndarray] = None
        self._spell: Optional[_StandingSpell] = None
        self.asymmetry = asymmetry
        self._adaptation = None if asymmetry is None else Adaptation(asymmetry, seed)
        self._previous_timing: Optional[StrideTiming] = None    # the last segment, if a walking stride
        self._last_work_J_kg = math.nan
        self._command: Optional[float] = None     # None: the scenario's speed; else the speed told
        self._before_last = None                  # next_stride's state before the last plan: replan_last

    @property
    def commanded_speed_m_s(self) -> Optional[float]:
        """What :meth:`command` last said (clamped): None while the wearer follows the scenario."""
        return self._command

    def command(self, speed_m_s: Optional[float]) -> None:
        """Tell the wearer what to do, overriding the scenario until told otherwise.

        ``None``: follow the scenario again.  ``0.0``: stand: the wearer stops at the heel strike
        of the first stride planned after the command, as for a scenario speed of 0 (walking
        strides are planned at the present stride's toe-off, so the next heel strike or the one
        after: within about two strides), and stands with the usual sway and weight shifts.
        ``> 0``: walk at that speed, clamped to MIN_SPEED_M_S..MAX_SPEED_M_S as every walking
        speed is (not refused: the console refuses speeds outside them before they get here).
        A walking wearer changes speed from the first stride planned after the command.

        A standing wearer told to walk initiates gait (unloading, then the initiation swing into
        an ordinary heel strike) at the start of the first standing segment planned after the
        command: there is no look-ahead, so a segment that has begun is not cut short.  The
        plant is fed one segment ahead (:class:`sim.devices.SimAnkle` plans the segment after the
        present one as soon as the present one begins); the devices' process (:mod:`sim.realtime`)
        therefore plans that queued segment again under the command (:meth:`replan_last`), and
        the wearer initiates at the end of the present segment.  Worst delay from the command to
        the first walking heel strike: SEGMENT_S[1] (4 s) + UNLOAD_S + the initiation swing
        (0.40 s at 1.25 m/s, about 0.35..0.7 s over the speeds): 4.5 s at 1.25 m/s (4.49 s the
        worst measured, tests/test_wearer_command.py).  Without the re-plan (a caller that feeds
        the plant one segment ahead and does not re-plan) it is one segment more: up to 8.5 s.

        No command, no change: a wearer never told anything is the one it always was (runs stay
        byte-identical).  ValueError for a negative or non-finite speed (nothing changes).
        """
        if speed_m_s is None:
            self._command = None
            return
        v = float(speed_m_s)
        if not math.isfinite(v) or v < 0.0:
            raise ValueError(f"wearer speed {speed_m_s!r}: must be 0 (stand) or a positive walking speed in m/s")
        self._command = 0.0 if v == 0.0 else min(max(v, MIN_SPEED_M_S), MAX_SPEED_M_S)

    def _speed_at(self, t_s: float) -> float:
        """The speed the wearer walks at at ``t_s`` (0.0: stands): the command's, else the scenario's."""
        if self._command is not None:
            return self._command
        return self.scenario.speed_at(t_s, self.speed_m_s)

    def record_stance_work(self, work_J_kg: float) -> None:
        """The net ankle work [J/kg, + generated] the prosthesis delivered over the stance that
        just ended (a walking stride's; the devices call this at its toe-off, before the next
        stride is planned).  An asymmetric wearer adapts to it; non-finite values are ignored."""
        if math.isfinite(work_J_kg):
            self._last_work_J_kg = float(work_J_kg)
            if self._adaptation is not None:
                self._adaptation.observe(work_J_kg)

    def next_stride(self, t_heel_strike_s: float) -> Tuple[np.ndarray, float, float, bool]:
        """The segment starting at ``t_heel_strike_s``, as :meth:`AnklePlant.queue_stride` takes it.

        (profile (8, 1001): rows ``ALL_CHANNELS``, duration s, stance fraction, walking).  A walking stride
        when the scenario walks at that time, otherwise a standing segment.
        """
        # what planning this segment changes, so that replan_last can plan it again (cheap: the
        # generator's state is read, not advanced, and the spell's fields are a shallow copy)
        self._before_last = (t_heel_strike_s, self._random.getstate(), copy.copy(self._spell),
                             self._last_profile, self._previous_timing, len(self.strides),
                             self._shape_random.getstate(), self._shank_gain)
        if self._spell is None:
            v = self._speed_at(t_heel_strike_s)
            if v > 0.0:
                return self._walking_stride(t_heel_strike_s, v)
            self._spell = _StandingSpell(t_heel_strike_s, self._entry(), self.mass_kg)
        return self._standing_segment(t_heel_strike_s)

    def replan_last(self) -> Optional[Tuple[np.ndarray, float, float, bool]]:
        """Plan the last segment handed out again, under the command now in force, if it was a
        standing segment; None (nothing changes) if it was a walking stride or there is none.

        For a segment that is queued and has not begun: the caller (the devices' process, told to
        command the wearer) queues the new one in its place, so a standing wearer told to walk
        initiates at the end of the present segment instead of the one after.  The wearer is put
        back as it was before planning that segment (its random draws, its standing spell), so the
        new segment joins the present one as the old one would have.  A walking stride is not
        planned again: its planning moved the sound side's timing and the asymmetric wearer's
        adaptation on.
        """
        before = getattr(self, "_before_last", None)
        if before is None or not self.strides or self.strides[-1].walking:
            return None
        t_s, state, spell, last_profile, previous_timing, n, shape_state, shank_gain = before
        if len(self.strides) != n + 1:
            return None                  # planned since (cannot happen through next_stride)
        self._random.setstate(state)
        self._shape_random.setstate(shape_state)
        self._shank_gain = shank_gain
        self._spell, self._last_profile, self._previous_timing = spell, last_profile, previous_timing
        del self.strides[n:]
        return self.next_stride(t_s)

    def _walking_stride(self, t_heel_strike_s: float, v: float) -> Tuple[np.ndarray, float, float, bool]:
        """One walking stride at speed ``v`` (clamped to the speed model), with stride-time variability
        and its own shape (:func:`sim.reference.draw_shape`: hump amplitudes, valley and swing timing,
        shank excursion; the shank's gain is blended from the last stride's across this one)."""
        v = min(max(v, MIN_SPEED_M_S), MAX_SPEED_M_S)
        speed_cm_s = int(round(v * 100))
        _, nominal_s, sf = _unit_profile(speed_cm_s)
        factor = 1.0 + self.stride_cv * max(-3.0, min(3.0, self._random.gauss(0.0, 1.0)))
        stride_s = nominal_s * factor
        adaptation = self._adaptation
        si_pct = 0.0 if adaptation is None else adaptation.next_si_pct()
        timing = stride_timing(stride_s, sf, si_pct, self._previous_timing)
        stance_share = timing.stance_share
        shape = reference.draw_shape(self._shape_random)
        unit = _stance_profile(speed_cm_s, stance_share, shape)
        profile = np.empty((len(ALL_CHANNELS), PROFILE_POINTS))
        profile[:len(PROFILE_CHANNELS)] = unit
        scale = {"moment_Nm": self.mass_kg, "ankle_vel_rad_s": 1.0 / factor, "shank_omega_rad_s": 1.0 / factor}
        for row, name in enumerate(PROFILE_CHANNELS):
            if name in scale:
                profile[row] *= scale[name]
        weight_N = self.mass_kg * STANDARD_GRAVITY
        phase = _PHASE_GRID
        self._apply_shank_gain(profile, shape.shank_gain, stride_s)
        # the prosthetic load's double support at the sound side's events
        profile[_LOAD_ROW] = weight_N * reference.grf_bw_at(load_warp_phase(
            phase, timing.sound_toe_off_s / stride_s, timing.sound_heel_strike_s / stride_s, stance_share),
            speed_cm_s / 100.0, shape)
        profile[_SOUND_LOAD_ROW], profile[_SOUND_OMEGA_ROW] = _sound_rows(timing, speed_cm_s / 100.0, weight_N)
        self.strides.append(Stride(
            len(self.strides), t_heel_strike_s, stride_s, stance_share, v,
            sound_heel_strike_s=t_heel_strike_s + timing.sound_heel_strike_s,
            sound_toe_off_s=t_heel_strike_s + timing.sound_toe_off_s,
            si_stance_pct=timing.si_stance_pct, si_step_pct=timing.si_step_pct,
            work_received_J_kg=self._last_work_J_kg,
            work_effective_J_kg=math.nan if adaptation is None else adaptation.w_eff_J_kg,
            sound_stance_s=timing.sound_stance_s, shape=shape))
        self._previous_timing = timing
        self._last_profile = np.ascontiguousarray(profile)
        return self._last_profile, stride_s, stance_share, True

    def _apply_shank_gain(self, profile: np.ndarray, gain: float, stride_s: float) -> None:
        """Scale the shank's excursion about its stride mean by a gain going smoothly from the last
        stride's (at heel strike) to ``gain`` (at the next heel strike), in place; the rate row gets
        the exact time derivative, so the gyro still integrates to the angle and the angle joins the
        last stride's without a jump."""
        g0 = self._shank_gain
        s, ds = _smoothstep(_PHASE_GRID)
        g = g0 + (gain - g0) * s
        dg_dt = (gain - g0) * ds / stride_s
        mean = reference.shank_mean_rad()
        excursion = profile[_SHANK_ANGLE_ROW] - mean
        profile[_SHANK_OMEGA_ROW] = g * profile[_SHANK_OMEGA_ROW] + dg_dt * excursion
        profile[_SHANK_ANGLE_ROW] = mean + g * excursion
        self._shank_gain = gain

    def _entry(self) -> Optional[_Entry]:
        """Where a standing spell starts from: the end of the previous segment (None at the start)."""
        if self._last_profile is None:
            return None
        end = {name: self._last_profile[row, -1] for row, name in enumerate(ALL_CHANNELS)}
        return _Entry(end["shank_angle_rad"], end["shank_omega_rad_s"], end["ankle_angle_rad"],
                      end["ankle_vel_rad_s"], end["sound_omega_rad_s"])

    def _restart_time(self, t_s: float) -> Optional[float]:
        """The first time from ``t_s`` on (within the look-ahead) at which the scenario walks.

        A command has no look-ahead: it holds from now on (walk: ``t_s``; stand: None).
        """
        if self._command is not None:
            return t_s if self._command > 0.0 else None
        speed_at = self._speed_at
        if speed_at(t_s) > 0.0:
            return t_s
        steps = int(RESTART_LOOKAHEAD_S / RESTART_SCAN_S)
        for k in range(1, steps + 1):
            hi = t_s + k * RESTART_SCAN_S
            if speed_at(hi) > 0.0:
                lo = hi - RESTART_SCAN_S
                for _ in range(30):          # bisect to well below a microsecond
                    mid = 0.5 * (lo + hi)
                    lo, hi = (lo, mid) if speed_at(mid) > 0.0 else (mid, hi)
                return hi
        return None

    def _standing_segment(self, t_s: float) -> Tuple[np.ndarray, float, float, bool]:
        """The next standing segment of the current spell, starting at ``t_s``.

        Segments last SEGMENT_S; when the scenario's restart is in sight they are
        cut so that the one containing it ends with gait initiation (unloading at
        the restart, then the swing), and is never shorter than the first.
        """
        spell = self._spell
        t_rel = t_s - spell.t_start_s
        spell.new_segment(t_rel, _Posture.draw(self._random, first=spell.current is None))
        restart_s = self._restart_time(t_s)
        quiet_s = None if restart_s is None else max(restart_s - t_s, MIN_QUIET_S - t_rel, 0.0)
        loaded_share = 1.0
        if quiet_s is not None and quiet_s <= SEGMENT_S[1]:
            v = self._speed_at(max(restart_s, t_s + quiet_s))
            v = min(max(v, MIN_SPEED_M_S), MAX_SPEED_M_S)
            duration_s = spell.plan_initiation(t_rel + quiet_s, v) - t_rel
            loaded_share = (quiet_s + UNLOAD_S) / duration_s
        elif quiet_s is not None and quiet_s <= SEGMENT_S[1] + SEGMENT_S[0]:
            # leave at least one whole segment before the restart
            duration_s = self._random.uniform(SEGMENT_S[0], quiet_s - SEGMENT_S[0])
        else:
            duration_s = self._random.uniform(*SEGMENT_S)
        profile = spell.sample(t_rel + np.linspace(0.0, duration_s, PROFILE_POINTS))
        self.strides.append(Stride(len(self.strides), t_s, duration_s, loaded_share, 0.0, walking=False))
        self._last_profile = profile
        self._previous_timing = None         # the next walking stride starts its sound side afresh
        self._shank_gain = 1.0               # ... and its shank from the initiation swing's (gain 1)
        if spell.unload_at_s is not None:
            self._spell = None               # the next segment begins with a heel strike
        return profile, duration_s, loaded_share, False
