"""Gait symmetry, stride by stride, from the telemetry: stance and step times of both legs, and the
prosthesis's push-off.

:class:`StrideAnalyzer` is fed telemetry rows in order (``TELEMETRY_COLUMNS``; a live stream, or a
session log read back) and returns a :class:`StrideSymmetry` for each whole walking stride, about
half a stride after it ends (the sound leg's stance ends in the next stride's double support).
It runs off the tick: in the symmetry adaptation (:mod:`controller.symmetry.adaptation`), the
console and ``ankle report``.

The prosthetic side's contact comes from its pylon load.  The sound side's comes from

- the optional sound-side node (an insole, ``sound_load``): contact while its force is above the
  contact threshold, the same rule as the prosthetic side, so both stance times carry the same
  small threshold bias and the symmetry index none; or, without one,
- the prosthetic load profile alone.  The sound leg's toe-off ends the first double support and its
  heel strike begins the second, and the prosthetic load changes fastest exactly then: weight is
  taken onto the prosthesis, and given back.  The estimate assumes that each double-support edge
  of the prosthetic load has the shape of the able-bodied reference (Winter 2009), stretched in
  time: two crossings of the edge (40 % and 80 % of the first peak on the rise, 60 % and 20 % of
  the last peak on the fall) fix the stretch and the shift, which give the edge's start and end:
  heel strike and the sound toe-off on the rise, the sound heel strike and toe-off on the fall.
  A third crossing (60 %, 40 %) checks the shape: its misfit, as a share of a double support, sets
  the stride's ``confidence`` (1 = the edge has the reference shape, 0 = nothing like it).

Symmetry indices: SI = 100 * (P - S) / (0.5 * (P + S)), prosthetic minus sound, in % (negative:
the prosthetic side's is shorter).  Stance times P, S; step times: the prosthetic step runs from the
sound heel strike to the prosthetic heel strike, the sound step from the prosthetic heel strike to
the sound heel strike.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from controller.kernels._tick import TELEMETRY_COLUMNS
from controller.kernels.telemetry import COLUMN as _COL

__all__ = ["StrideSymmetry", "StrideAnalyzer", "symmetry_index", "trend", "FIELDS"]

STANDARD_GRAVITY = 9.80665

# The reference stride's vertical ground reaction (sim/data/reference_stride.csv, Winter 2009): its
# contralateral toe-off and heel strike and its own toe-off [fraction of the stride], and where
# its double-support edges cross fractions of their peaks (tests/test_symmetry.py derives these from
# the table again).
REF_SOUND_TOE_OFF = 0.109
REF_SOUND_HEEL_STRIKE = 0.5
REF_TOE_OFF = 0.609
REF_RISE = {0.4: 0.02089, 0.6: 0.03746, 0.8: 0.06018}     # of the first peak, rising
REF_FALL = {0.6: 0.53770, 0.4: 0.55666, 0.2: 0.57770}     # of the last peak, falling
#: A misfit of the shape check this large (share of a double support) gives confidence 0.
MISFIT_FOR_ZERO = 0.25
CONTACT_BW = 0.05                # contact threshold, either foot [share of body weight]
MIN_CONTACT_N = 30.0
MIN_STRIDE_S, MAX_STRIDE_S = 0.4, 3.0


@dataclass(frozen=True)
class StrideSymmetry:
    """One stride's figures (times in s, from the prosthetic heel strike at ``t_heel_strike_s``).

    The sound-side fields, the step times and the indices are NaN when the sound side could not be
    told (``sound_source`` "none").  ``confidence`` is 1 with the sound-side node, the shape check
    (see the module) without it.
    """

    t_heel_strike_s: float
    stride_s: float
    cadence_steps_min: float
    stance_s: float
    stance_pct: float
    swing_s: float
    pushoff_work_J_kg: float        # net ankle work over the prosthetic stance, + generated
    peak_power_W_kg: float          # peak ankle power generated in that stance
    peak_torque_Nm: float           # peak plantar-flexor torque measured
    sound_heel_strike_s: float      # the sound side's heel strike in this stride (absolute time)
    sound_toe_off_s: float          # ... and the toe-off that ends that stance (in the next stride)
    sound_stance_s: float
    prosthetic_step_s: float
    sound_step_s: float
    si_stance_pct: float
    si_step_pct: float
    sound_source: str               # "insole", "load profile" or "none"
    confidence: float
    faults: int                     # fault word seen during the stride (OR of the rows)

    def as_dict(self) -> Dict[str, object]:
        return asdict(self)


FIELDS = tuple(StrideSymmetry.__dataclass_fields__)


def symmetry_index(prosthetic: float, sound: float) -> float:
    """SI = 100 * (P - S) / (0.5 * (P + S)) [%]; NaN unless both are positive."""
    if not (prosthetic > 0.0 and sound > 0.0):
        return math.nan
    return 100.0 * (prosthetic - sound) / (0.5 * (prosthetic + sound))


def trend(values: Sequence[float], times_s: Sequence[float]) -> float:
    """Least-squares slope of ``values`` per minute (NaN for fewer than 3 finite points)."""
    v, t = np.asarray(values, dtype=float), np.asarray(times_s, dtype=float)
    keep = np.isfinite(v) & np.isfinite(t)
    if keep.sum() < 3 or np.ptp(t[keep]) <= 0.0:
        return math.nan
    return float(np.polyfit(t[keep] / 60.0, v[keep], 1)[0])


def _crossing(t: np.ndarray, x: np.ndarray, level: float, start: int, stop: int, rising: bool,
              last: bool = False) -> float:
    """The time ``x`` crosses ``level`` (up if ``rising``) between rows ``start`` and ``stop``,
    interpolated; the first such crossing, or the last with ``last``; NaN if none."""
    seg = x[max(start, 1) - 1:stop]
    if len(seg) < 2:
        return math.nan
    above = seg >= level
    hits = np.flatnonzero(~above[:-1] & above[1:]) if rising else np.flatnonzero(above[:-1] & ~above[1:])
    if not len(hits):
        return math.nan
    i = hits[-1] if last else hits[0]
    j = max(start, 1) - 1 + i
    x0, x1, t0, t1 = x[j], x[j + 1], t[j], t[j + 1]
    return float(t0 + (level - x0) / (x1 - x0) * (t1 - t0)) if x1 != x0 else float(t1)


class StrideAnalyzer:
    """Per-stride symmetry from telemetry rows fed in time order (see the module docstring)."""

    def __init__(self, mass_kg: float):
        self.mass_kg = mass_kg
        self._rows = np.empty((0, len(TELEMETRY_COLUMNS)))
        self._hs: List[float] = []          # estimator heel strikes while walking (times)
        self._to: List[float] = []          # estimator toe-offs

    @property
    def mass_kg(self) -> float:
        """The wearer's body mass [kg]: work and power are per kg, the contact threshold scales."""
        return self._mass_kg

    @mass_kg.setter
    def mass_kg(self, value: float) -> None:
        if not (isinstance(value, (int, float)) and 0.0 < value < math.inf):
            raise ValueError(f"mass_kg must be a finite number > 0, got {value!r}")
        self._mass_kg = float(value)
        self.contact_N = max(MIN_CONTACT_N, CONTACT_BW * self._mass_kg * STANDARD_GRAVITY)

    def feed(self, rows: np.ndarray) -> List[StrideSymmetry]:
        """Take the next telemetry rows; returns the strides completed by them (oldest first)."""
        rows = np.asarray(rows, dtype=float)
        if rows.ndim != 2 or rows.shape[1] != len(TELEMETRY_COLUMNS):
            raise ValueError(f"rows must have shape (n, {len(TELEMETRY_COLUMNS)}), got {rows.shape}")
        # a deadline the loop skipped is a row of NaN on a host-time table (sim.realtime.as_sim_run):
        # it holds no sample, and would break the time search and the faults' bitwise or
        rows = rows[np.isfinite(rows[:, _COL["t"]])]
        if not len(rows):
            return []
        t = rows[:, _COL["t"]]
        walking = rows[:, _COL["walking"]] == 1
        self._hs += t[(rows[:, _COL["heel_strike"]] == 1) & walking].tolist()
        self._to += t[rows[:, _COL["toe_off"]] == 1].tolist()
        self._rows = np.concatenate([self._rows, rows]) if len(self._rows) else rows.copy()
        out: List[StrideSymmetry] = []
        while len(self._hs) >= 2:
            h0, h1 = self._hs[0], self._hs[1]
            after = [x for x in self._to if x > h1]
            if not after:
                break                           # the next stance's loading is not all here yet
            if MIN_STRIDE_S <= h1 - h0 <= MAX_STRIDE_S and any(h0 < x < h1 for x in self._to):
                result = self._analyse(h0, h1, after[0])
                if result is not None:
                    out.append(result)
            self._hs.pop(0)
        # A heel strike that can no longer begin a stride (the next one is too far, or none came
        # within the longest stride) is dropped with the rows it held: standing for an hour after
        # the last step keeps no more than a few seconds here.
        latest = float(t[-1])
        while self._hs and ((len(self._hs) >= 2 and self._hs[1] - self._hs[0] > MAX_STRIDE_S)
                            or (len(self._hs) == 1 and latest - self._hs[0] > MAX_STRIDE_S + 1.0)):
            self._hs.pop(0)
        keep_from = self._hs[0] if self._hs else latest - MAX_STRIDE_S - 1.0
        self._to = [x for x in self._to if x > keep_from]
        self._trim(keep_from - 0.5)
        return out

    @property
    def buffered_s(self) -> float:
        """How much telemetry is held for strides not yet complete [s]."""
        if len(self._rows) < 2:
            return 0.0
        return float(self._rows[-1, _COL["t"]] - self._rows[0, _COL["t"]])

    def _trim(self, t_keep_s: float) -> None:
        keep = self._rows[:, _COL["t"]] >= t_keep_s
        if not keep.all():
            self._rows = self._rows[keep]

    # ---------------------------------------------------------------------------------------------
    def _analyse(self, h0: float, h1: float, to_next: float) -> Optional[StrideSymmetry]:
        r = self._rows
        t = r[:, _COL["t"]]
        load = r[:, _COL["load"]]
        lo = int(np.searchsorted(t, h0 - 0.15))
        mid = int(np.searchsorted(t, h1 - 0.15))
        hi = int(np.searchsorted(t, to_next + 0.05))
        th = self.contact_N
        # prosthetic contact: heel strikes and toe-off from the load, near the estimator's events
        hs0 = _crossing(t, load, th, lo, int(np.searchsorted(t, h0 + 0.1)), rising=True, last=True)
        hs1 = _crossing(t, load, th, mid, int(np.searchsorted(t, h1 + 0.1)), rising=True, last=True)
        i0 = int(np.searchsorted(t, hs0)) if math.isfinite(hs0) else lo
        i1 = int(np.searchsorted(t, hs1)) if math.isfinite(hs1) else mid
        to0 = _crossing(t, load, th, i0, i1, rising=False)
        if not (math.isfinite(hs0) and math.isfinite(hs1) and math.isfinite(to0)):
            return None
        stride = hs1 - hs0
        stance = to0 - hs0
        if not (MIN_STRIDE_S <= stride <= MAX_STRIDE_S and 0.0 < stance < stride):
            return None
        work, peak_power, peak_torque = self._pushoff(i0, int(np.searchsorted(t, to0)))
        faults = int(np.bitwise_or.reduce(r[lo:hi, _COL["faults"]].astype(np.int64))) if hi > lo else 0

        sound = r[:, _COL["sound_load"]]
        source, confidence = "none", 0.0
        p_stance = s_stance = s_hs = s_to = math.nan
        window = sound[i0:hi]
        if len(window) and np.mean(np.isfinite(window)) >= 0.9:
            # the sound heel strike falls in the middle of the prosthetic stride (its toe-off of
            # the previous stance comes first, in the initial double support)
            sound0 = np.nan_to_num(sound, nan=0.0)
            s_hs = _crossing(t, sound0, th, int(np.searchsorted(t, hs0 + 0.25 * stride)), i1, rising=True)
            s_to = _crossing(t, sound0, th, int(np.searchsorted(t, s_hs))
                             if math.isfinite(s_hs) else i1, hi, rising=False)
            if math.isfinite(s_hs) and math.isfinite(s_to) and 0.2 * stride < s_to - s_hs < stride:
                source, confidence = "insole", 1.0
                p_stance, s_stance = stance, s_to - s_hs
                start, end = hs0, hs1
        else:
            rise0 = self._rise(i0, hs0, stride)
            rise1 = self._rise(i1, hs1, stride)
            fall = self._fall(i0, int(np.searchsorted(t, to0)) + 1, to0)
            if rise0 is not None and rise1 is not None and fall is not None:
                (true_hs0, _, m0), (true_hs1, s_to, m1), (s_hs, true_to0, m2) = rise0, rise1, fall
                source = "load profile"
                confidence = max(0.0, 1.0 - max(m0, m1, m2) / MISFIT_FOR_ZERO)
                p_stance, s_stance = true_to0 - true_hs0, s_to - s_hs
                start, end = true_hs0, true_hs1
        if source == "none":
            s_hs = s_to = math.nan
            p_step = s_step = math.nan
        else:
            s_step, p_step = s_hs - start, end - s_hs
        return StrideSymmetry(
            t_heel_strike_s=hs0, stride_s=stride, cadence_steps_min=120.0 / stride, stance_s=stance,
            stance_pct=100.0 * stance / stride, swing_s=stride - stance, pushoff_work_J_kg=work,
            peak_power_W_kg=peak_power, peak_torque_Nm=peak_torque, sound_heel_strike_s=s_hs,
            sound_toe_off_s=s_to, sound_stance_s=s_stance,
            prosthetic_step_s=p_step, sound_step_s=s_step,
            si_stance_pct=symmetry_index(p_stance, s_stance), si_step_pct=symmetry_index(p_step, s_step),
            sound_source=source, confidence=confidence, faults=faults)

    def _pushoff(self, i0: int, i1: int) -> Tuple[float, float, float]:
        """Net ankle work [J/kg], peak power generated [W/kg] and peak torque [N*m] over rows i0..i1."""
        r = self._rows[i0:i1 + 1]
        if len(r) < 3:
            return math.nan, math.nan, math.nan
        t, angle, torque = r[:, _COL["t"]], r[:, _COL["ankle_angle"]], r[:, _COL["torque_Nm"]]
        d_angle, dt = np.diff(angle), np.diff(t)
        mid = 0.5 * (torque[1:] + torque[:-1])
        ok = np.isfinite(d_angle) & np.isfinite(mid) & (dt > 0)
        if not ok.any():
            return math.nan, math.nan, math.nan
        work = float(-np.sum(mid[ok] * d_angle[ok])) / self.mass_kg
        power = -mid[ok] * d_angle[ok] / dt[ok] / self.mass_kg
        return work, float(np.max(power)), float(np.nanmax(torque))

    def _rise(self, i: int, hs: float, stride: float):
        """The loading edge after a heel strike at row ``i``: (true heel strike, sound toe-off,
        misfit) from the reference's shape, or None."""
        r = self._rows
        t, load = r[:, _COL["t"]], r[:, _COL["load"]]
        j = int(np.searchsorted(t, hs + 0.3 * stride))
        if j <= i + 2:
            return None
        seg = load[i:j]
        peak = float(np.nanmax(seg)) if np.isfinite(seg).any() else math.nan
        if not peak > 2.0 * self.contact_N:
            return None
        top = i + int(np.nanargmax(seg))
        times = {f: _crossing(t, load, f * peak, i, top + 1, rising=True) for f in REF_RISE}
        if not all(math.isfinite(x) for x in times.values()):
            return None
        b = (times[0.8] - times[0.4]) / (REF_RISE[0.8] - REF_RISE[0.4])
        if not b > 0.0:
            return None
        a = times[0.4] - b * REF_RISE[0.4]
        misfit = abs(times[0.6] - (a + b * REF_RISE[0.6])) / (b * REF_SOUND_TOE_OFF)
        return a, a + b * REF_SOUND_TOE_OFF, misfit

    def _fall(self, i0: int, i_to: int, to: float):
        """The unloading edge before toe-off: (sound heel strike, true toe-off, misfit), or None."""
        r = self._rows
        t, load = r[:, _COL["t"]], r[:, _COL["load"]]
        stance = to - t[i0]
        k = int(np.searchsorted(t, t[i0] + 0.6 * stance))
        if i_to <= k + 2:
            return None
        seg = load[k:i_to]
        if not np.isfinite(seg).any():
            return None
        peak = float(np.nanmax(seg))
        top = k + int(np.nanargmax(seg))
        times = {f: _crossing(t, load, f * peak, top, i_to + 1, rising=False) for f in REF_FALL}
        if not all(math.isfinite(x) for x in times.values()):
            return None
        d = (times[0.2] - times[0.6]) / (REF_FALL[0.2] - REF_FALL[0.6])
        if not d > 0.0:
            return None
        c = times[0.6] - d * REF_FALL[0.6]
        misfit = abs(times[0.4] - (c + d * REF_FALL[0.4])) / (d * (REF_TOE_OFF - REF_SOUND_HEEL_STRIKE))
        return c + d * REF_SOUND_HEEL_STRIKE, c + d * REF_TOE_OFF, misfit

