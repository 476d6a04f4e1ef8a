"""Reference able-bodied gait for the simulated wearer.

One stride of Winter's adult walking data (about 1.43 m/s, 0.987 s, toe-off at 60.9 % of stride) is
shipped as a derived 201-point table, ``data/reference_stride.csv``; stride time and stance share as
functions of walking speed come from a fit to adult GAITRite normal ranges, ``data/speed_model.csv``.
Both files are written by ``python -m sim.tools.derive_reference`` from the source tables in
``data/sources/`` and are the only source of these numbers at run time (sources: docs/reference.md).

The model for another speed ``v``: the stride lasts ``stride_time_s(v)``, toe-off falls at
``stance_fraction(v)`` of it, and the reference is warped in time piecewise linearly so that stance maps
onto the reference stance and swing onto the reference swing (``warp_phase``).  Ankle angle, vertical
ground reaction, ankle moment and ankle power keep their reference magnitudes (time warp only; how their
magnitudes scale with speed is future work).  The shank angle also has its excursion about its stride mean
scaled by the stride-length ratio ``v*T(v) / (v_ref*T_ref)``.  Velocities are the exact time derivatives of
the warped angles, so a simulated gyro integrates back to the simulated segment angle.
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

    Fitted to adult GAITRite normal ranges (see ``data/speed_model.csv``); valid 0.4..2.2 m/s, raises
    ``ValueError`` outside (or for NaN).  Scalar in, float out; arrays are evaluated element-wise.
    """
    return _evaluate("stride_time_s", speed_m_s)


def stance_fraction(speed_m_s):
    """Stance share of the stride (toe-off as a fraction of stride) at walking speed ``speed_m_s`` [m/s].

    Fitted to adult GAITRite normal ranges (see ``data/speed_model.csv``); valid 0.4..2.2 m/s, raises
    ``ValueError`` outside (or for NaN).  Scalar in, float out; arrays are evaluated element-wise.
    """
    return _evaluate("stance_fraction", speed_m_s)


_stance_fraction = stance_fraction


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


def stride_profile(speed_m_s: float, n: int = 1001, stance_fraction: float | None = None) -> dict[str, np.ndarray]:
    """The reference stride resampled onto ``n`` equally spaced instants of one stride at ``speed_m_s``.

    ``stance_fraction``: the stride's toe-off (fraction of the stride); None for the speed
    model's (an asymmetric wearer's prosthetic stance share differs from it, see
    :mod:`sim.asymmetry`).

    Returns arrays: ``t_s`` (0..stride time), ``phase`` (0..1), ``ref_phase`` (``warp_phase`` of it),
    ``ankle_angle_rad`` and ``ankle_vel_rad_s`` (its time derivative), ``shank_angle_rad`` and
    ``shank_omega_rad_s`` (its time derivative), ``grf_bw``, ``ankle_moment_Nm_kg``, ``ankle_power_W_kg``.

    Assumptions: ankle angle, grf, moment and power are warped in time only (their magnitudes do not
    change with speed).  The shank angle's excursion about its reference-stride mean is scaled by the
    stride-length ratio ``k = v*T(v) / (v_ref*T_ref)``.  Angles use a periodic cubic spline through the
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
    for name in ("grf_bw", "ankle_moment_Nm_kg", "ankle_power_W_kg"):
        profile[name] = np.interp(ref_phase, ref.phase, getattr(ref, name))
    # The table's grid straddles toe-off (0.605 / 0.610): keep grf exactly 0 over the whole swing.
    profile["grf_bw"] = np.where(ref_phase >= ref.toe_off, 0.0, profile["grf_bw"])
    return profile


def grf_bw_at(ref_phase):
    """The reference vertical ground reaction [body weights] at reference phases ``ref_phase``
    (linear interpolation; exactly 0 from the reference toe-off on)."""
    ref = load_reference()
    p = np.asarray(ref_phase, dtype=float)
    return np.where(p >= ref.toe_off, 0.0, np.interp(p, ref.phase, ref.grf_bw))


def shank_omega_at(ref_phase, ref_phase_rate, speed_m_s: float):
    """Shank angular velocity [rad/s] at reference phases ``ref_phase`` passed at
    ``ref_phase_rate`` [reference strides per second], with :func:`stride_profile`'s excursion
    scaling for ``speed_m_s`` (the stride-length ratio)."""
    ref = load_reference()
    _, d_shank = _splines()["shank_angle_rad"](ref_phase)
    k = (speed_m_s * stride_time_s(speed_m_s)) / (ref.speed_m_s * ref.stride_time_s)
    return k * d_shank * np.asarray(ref_phase_rate, dtype=float)
