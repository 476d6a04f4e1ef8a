"""Clinical units at the console: what a prosthetist types and reads, converted to and from SI.

The controller, its files and the audit log keep SI (radians, seconds, fractions).  At the console
every parameter is shown in the *clinical* unit its registry entry names
(:attr:`controller.params.registry.Param.clinical`): angles in degrees, short times in ms,
fractions in %.  This module holds the conversions and the one parser and formatter of values:

* :func:`format_value` / :func:`format_with_unit` show an SI value in the clinical unit, to as
  many decimals as the parameter's step needs in that unit (:func:`decimals`);
* :func:`parse` reads what was typed after the parameter's name (``3 deg``, ``72kg``, ``150 ms``,
  ``0.05 rad``, ``92 %``, ``0.62 Nm/kg``) and returns the SI value, or raises
  :class:`~controller.params.registry.ParamError` with one line saying why (nothing is changed).

A number without a unit is in the clinical unit shown.  The SI unit itself is always accepted too.

The choices (each registry entry states its own; ``docs/parameters.md`` lists them):

* angles in degrees (``rad`` -> ``deg``), and angular speeds (the gyro's) in ``deg/s``;
  stiffness and damping stay per radian (``N·m/rad``): the impedance literature and the drive's
  gains use them, and per degree they would be 57 times smaller numbers;
* short times in ms: debounce, timeouts, rise and blend times, the stillness before standing
  (``s`` -> ``ms``); stride times and the sensor recovery stay in s;
* fractions in %: rates, shares, confidence, efficiency (``1`` -> ``%``); fractions of body
  weight in ``% BW``; shares of stance or stride in ``% stance`` / ``% stride``;
* a plain number (an exponent, a ratio, a sign, a 0/1 switch) shows no unit at all (never ``1``),
  a count of strides ``strides``;
* the rest as SI, spelled for reading: ``N·m``, ``N·m/kg``, ``m/s²``, ``°C``, ``kg``, ``V``.

Exactness.  Conversions by a power of ten (ms, %) are done in decimal, so ``150 ms`` stores exactly
what ``0.15 s`` does.  Degrees cannot be exact (pi), so a shown value stands for the value it was
shown for: a number typed with no more decimals than :func:`decimals` that is how a point of the
parameter's step grid (``min + k * step``, and ``min``, ``max``, ``default``) is shown, *is* that
point.  Hence ``set X <what get showed>`` stores the very value ``get`` showed, for every value on
the grid.  Any other number is converted as typed (``3 deg`` stores ``radians(3)``).  Degrees
show at least 2 decimals (0.05 rad is ``2.86 deg``), so a grid point's text stands within 0.005 deg
of it, and a whole number of degrees typed is that angle (0.07 rad shows as ``4.01``, not ``4``).  A value off
the grid (a calibration's measurement) is shown with up to :data:`EXTRA_DECIMALS` more decimals,
the fewest that give it back when typed.
"""
from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation
from typing import Dict, List, Optional, Sequence, Tuple, Union

from controller.params.registry import KNOWN_UNITS, Param, ParamError

__all__ = ["CONVERSIONS", "EXTRA_DECIMALS", "DEGREES", "clinical_unit", "pretty", "decimals",
           "grid", "format_value", "format_with_unit", "format_step", "format_range", "parse", "spellings"]

#: The factor of the degree conversions (clinical = SI x 180/pi): not a decimal, marked apart.
DEGREES = "180/pi"
Factor = Union[Decimal, str]

#: (SI unit, clinical unit) -> clinical value per SI value.  Every (unit, clinical) pair of the
#: registry must be here (tests/test_console_units.py checks it).
CONVERSIONS: Dict[Tuple[str, str], Factor] = {
    ("rad", "deg"): DEGREES,
    ("rad/s", "deg/s"): DEGREES,
    ("s", "ms"): Decimal(1000),
    ("1", "%"): Decimal(100),              # a fraction (a share, a rate, an efficiency)
    ("1", ""): Decimal(1),                 # a plain number: no unit shown
    ("1", "strides"): Decimal(1),          # a count of strides
    ("BW", "% BW"): Decimal(100),          # a fraction of body weight
    ("stance", "% stance"): Decimal(100),  # a share of the stance phase
    ("stride", "% stride"): Decimal(100),  # a share of the stride from heel strike
}

#: How many more decimals than the step needs a value off its step grid may be shown with.
EXTRA_DECIMALS = 4

_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_DECIMAL_COMMA = re.compile(r"([+-]?[0-9]*),([0-9]+)")
_NOT_FINITE = {"nan", "+nan", "-nan", "inf", "+inf", "-inf", "infinity", "+infinity", "-infinity"}


def pretty(si: str) -> str:
    """An SI unit as shown: ``N*m/kg`` -> ``N·m/kg``, ``m/s^2`` -> ``m/s²``, ``degC`` -> ``°C``,
    ``1`` (a plain number) -> ``""``."""
    if si == "1":
        return ""
    return si.replace("*", "·").replace("^2", "²").replace("degC", "°C")


# the SI units shown as themselves (prettier spelled): kg, N·m/kg, Hz, ...
for _si in KNOWN_UNITS:
    CONVERSIONS.setdefault((_si, pretty(_si)), Decimal(1))


def clinical_unit(p: Param) -> str:
    """The unit ``p`` is shown in at the console ("" for a plain number)."""
    return pretty(p.unit) if p.clinical is None else p.clinical


def _factor(p: Param) -> Factor:
    try:
        return CONVERSIONS[(p.unit, clinical_unit(p))]
    except KeyError:
        raise ValueError(f"{p.name}: no conversion from {p.unit} to {clinical_unit(p)!r}") from None


def _canon(unit: str) -> str:
    """A unit as typed, reduced so that its usual spellings meet: case, spaces, brackets and the
    multiplication sign do not matter (``Nm``, ``N.m``, ``N·m``, ``N*m``, ``n m``), nor ``°`` /
    ``degree(s)`` for ``deg``, ``²`` for ``^2``, ``body weight`` for ``BW`` or ``of`` in
    ``% of stance``.  Only the parameter's own units are compared, so no two of them meet."""
    u = unit.strip()
    if u.startswith("[") and u.endswith("]"):
        u = u[1:-1]
    u = u.lower().replace("°", "deg").replace("degrees", "deg").replace("degree", "deg")
    u = u.replace("²", "^2").replace("ω", "ohm").replace("body weight", "bw").replace("bodyweight", "bw")
    u = re.sub(r"\bof\b", "", u)
    return re.sub(r"[\s*·⋅.]", "", u)


def spellings(p: Param) -> Dict[str, bool]:
    """The reduced spellings of ``p``'s units -> whether the unit is the clinical one (True) or the
    SI one (False).  No unit means the clinical one; a bare ``%`` means the clinical unit when that is a percentage (``% BW``)."""
    out = {_canon(p.unit): False}
    clinical = clinical_unit(p)
    if clinical.startswith("%"):
        out["%"] = True
    out[_canon(clinical)] = True
    out[""] = True                   # a number alone is in the unit shown
    return out


def _step_clinical(p: Param) -> float:
    f = _factor(p)
    return p.step * 180.0 / math.pi if f == DEGREES else float(Decimal(repr(p.step)) * f)


def decimals(p: Param) -> int:
    """Decimals shown in the clinical unit: the fewest whose last digit is no coarser than the step
    there (1 ms: none; a whole-number parameter: none), and for degrees never fewer than 2: a grid in
    radians falls between whole degrees (0.07 rad is 4.01 deg), and a value shown as "4 deg" must
    be 4 deg, not the grid point nearest it."""
    if p.kind is int:
        return 0
    places = max(0, math.ceil(-math.log10(_step_clinical(p)) - 1e-9))
    return max(places, 2) if _factor(p) == DEGREES else places


def _clinical_decimal(p: Param, si: float) -> Decimal:
    """``si`` in the clinical unit, as an exact decimal (degrees: the float's own binary value)."""
    f = _factor(p)
    if f == DEGREES:
        return Decimal(math.degrees(si))
    return Decimal(repr(si)) * f


def _fixed(value: Decimal, places: int) -> str:
    """``value`` rounded to ``places`` decimals, trailing zeros dropped, no ``-0``."""
    text = format(value, f".{places}f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def grid(p: Param) -> List[float]:
    """The values of ``p``'s step grid in SI: ``min + k * step`` up to ``max`` (in decimal, so each
    is the float its decimal text gives), with ``max`` and ``default`` added if off it."""
    lo, step = Decimal(repr(p.min)), Decimal(repr(p.step))
    n = int((Decimal(repr(p.max)) - lo) / step)
    values = [lo + k * step for k in range(n + 1)]
    cast = int if p.kind is int else float
    out = [cast(v) for v in values]
    for extra in (p.max, p.default):
        if extra not in out:
            out.append(cast(extra))
    return out


def _grid_near(p: Param, si: float) -> List[float]:
    """The grid points nearest ``si`` (and min, max, default): the candidates a shown value may be."""
    k = round((si - p.min) / p.step) if math.isfinite(si) else 0
    lo, step = Decimal(repr(p.min)), Decimal(repr(p.step))
    n = int((Decimal(repr(p.max)) - lo) / step)
    near = [float(lo + j * step) for j in range(max(0, k - 1), min(n, k + 1) + 1)]
    return near + [float(p.min), float(p.max), float(p.default)]


def _si(p: Param, number: str) -> float:
    """The SI value of ``number`` (clinical unit) converted as typed."""
    f = _factor(p)
    if f == DEGREES:
        return math.radians(float(number))
    try:
        return float(Decimal(number) / f)
    except (InvalidOperation, OverflowError):
        return math.inf


def _from_clinical(p: Param, number: str) -> float:
    """The SI value of ``number`` in the clinical unit: the grid point shown as ``number`` if it is
    one (typed with no more decimals than shown), ``min`` or ``max`` if it is how that end shows to
    as many decimals as typed, else the exact conversion."""
    value = _si(p, number)
    typed = Decimal(number)
    d = decimals(p)
    places = max(0, -typed.as_tuple().exponent)
    if math.isfinite(value) and places <= d:
        for g in _grid_near(p, value):
            if Decimal(_fixed(_clinical_decimal(p, g), d)) == typed:
                return g
    if math.isfinite(value) and not p.min <= value <= p.max:
        # just past an end by the rounding of a longer text: the end shown to those decimals is the end
        for end in (p.min, p.max):
            if Decimal(_fixed(_clinical_decimal(p, end), places)) == typed:
                return float(end)
    return value


def format_value(p: Param, si: float) -> str:
    """``si`` shown in ``p``'s clinical unit, without the unit: to :func:`decimals` decimals, or
    up to :data:`EXTRA_DECIMALS` more for a value off the step grid (the fewest that type back to
    it).  NaN shows as ``--``."""
    if not math.isfinite(si):
        return "--"
    d = decimals(p)
    value = _clinical_decimal(p, si)
    for places in range(d, d + EXTRA_DECIMALS + 1):
        text = _fixed(value, places)
        if _from_clinical(p, text) == si:
            return text
    return _fixed(value, d + EXTRA_DECIMALS)


def format_with_unit(p: Param, si: float) -> str:
    """``si`` with ``p``'s clinical unit: ``3 deg``, ``150 ms``, ``92 %``, ``2`` (no unit)."""
    unit = clinical_unit(p)
    return f"{format_value(p, si)} {unit}" if unit else format_value(p, si)


def format_step(p: Param) -> str:
    """``p``'s step in the clinical unit, with the unit, to :func:`decimals` decimals (a step of
    0.01 rad shows as ``0.6 deg``: the grid's spacing, rounded as the values are)."""
    unit = clinical_unit(p)
    text = _fixed(_clinical_decimal(p, p.step), decimals(p))
    return f"{text} {unit}" if unit else text


def format_range(p: Param, sep: str = ", ") -> str:
    """``[min, max] unit`` in the clinical unit (``sep`` between the ends)."""
    unit = clinical_unit(p)
    return f"[{format_value(p, p.min)}{sep}{format_value(p, p.max)}]" + (f" {unit}" if unit else "")


def _units_words(p: Param) -> str:
    clinical = clinical_unit(p)
    if clinical == "":
        return "has no unit"
    return f"is in {clinical}" + (f" (or {p.unit})" if _canon(clinical) != _canon(p.unit) else "")


def parse(p: Param, words: Union[str, Sequence[str]]) -> Union[float, int]:
    """The SI value of what was typed after ``p``'s name: a number, then (with or without a space)
    an optional unit, clinical or SI.  Raises :class:`ParamError` (one line) for anything else:
    no number, a decimal comma, a unit ``p`` is not in, a value outside ``p``'s range (stated in
    the clinical unit), not a whole number where one is needed."""
    text = (words if isinstance(words, str) else " ".join(words)).strip()
    first = text.split()[0] if text.split() else ""
    unit_name = clinical_unit(p)
    if first.lower() in _NOT_FINITE:
        raise ParamError(f"{p.name} needs a finite number, got {first!r}")
    comma = _DECIMAL_COMMA.match(first)
    if comma:
        raise ParamError(f"{p.name}: use a decimal point: {comma.group(1) or '0'}.{comma.group(2)}")
    m = _NUMBER.match(text)
    rest = text[m.end():] if m else text
    known = spellings(p)
    glued = rest.split()[0] if rest and not rest[0].isspace() else ""     # 72kg, 3deg, 90%
    if m is None or (glued and _canon(glued) not in known and _canon(rest) not in known):
        # not a plain decimal number (1_0, 0x10, other scripts' digits, 1.5.5, ...)
        raise ParamError(f"{p.name} needs a number in {format_range(p)}, got {first!r}")
    number, unit = m.group(), rest.strip()
    if _canon(unit) not in known:
        raise ParamError(f"{p.name} {_units_words(p)}, got unit {unit!r}")
    if known[_canon(unit)]:
        value = _from_clinical(p, number)
        shown = f"{number} {unit_name}".rstrip()
    else:
        value = float(number)
        shown = f"{number} {pretty(p.unit)}".rstrip()
    if not math.isfinite(value):
        raise ParamError(f"{p.name} needs a finite number, got {number!r}")
    if not p.min <= value <= p.max:
        raise ParamError(f"{p.name} = {shown} is out of range {format_range(p)}")
    if p.kind is int and value.is_integer():
        value = int(value)
    return p.check(value)
