"""The one parameter registry: every tunable of the controller, declared as data.

The console, the configuration loader, the generated parameter reference
(``docs/parameters.md``), the kernels' ``configure`` and the tests all read
this table.  Names are dotted ``group.what_unit``; values are SI.  A
:class:`ParamSet` holds one validated set of values; it is the only way values
reach the kernels, so nothing unbounded can.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, Iterator, Mapping, Optional, Tuple

__all__ = ["Param", "ParamError", "ParamSet", "REGISTRY", "KNOWN_UNITS", "by_name", "groups", "markdown_reference"]

#: Units a parameter may carry.  "1" is a plain ratio; "BW" is a fraction of body weight;
#: "stride" is a fraction of the stride (0..1 from heel strike).
KNOWN_UNITS = frozenset({
    "kg", "s", "Hz", "N", "BW", "1", "stride", "rad", "rad/s",
    "N*m", "N*m/kg", "N*m/rad", "N*m/rad/kg", "N*m*s/rad", "N*m*s/rad/kg", "N*m/s", "degC",
})


class ParamError(ValueError):
    """A parameter name or value was refused; the message says what is allowed.

    Example: ``set pushoff.peak_torque_Nm_kg 9`` on the console gives
    ``pushoff.peak_torque_Nm_kg = 9 is out of range [0, 1.6] N*m/kg``.
    """


@dataclass(frozen=True)
class Param:
    """One tunable.  ``live`` says whether it may change while the wearer walks."""

    name: str
    unit: str
    default: float
    min: float
    max: float
    step: float
    description: str
    live: bool = True
    kind: type = float

    @property
    def group(self) -> str:
        return self.name.split(".", 1)[0]

    def check(self, value: float) -> float:
        """Return ``value`` as this parameter's type, or raise :class:`ParamError`."""
        if self.kind is int:
            if isinstance(value, bool) or not float(value).is_integer():
                raise ParamError(f"{self.name} must be a whole number, got {value!r}")
            value = int(value)
        else:
            value = float(value)
        if not math.isfinite(value):
            raise ParamError(f"{self.name} must be a finite number, got {value!r}")
        if not (self.min <= value <= self.max):
            raise ParamError(
                f"{self.name} = {value:g} is out of range [{self.min:g}, {self.max:g}] {self.unit}"
            )
        return value


def _p(name, unit, default, lo, hi, step, description, live=True, kind=float):
    return Param(name, unit, default, lo, hi, step, description, live, kind)


REGISTRY: Tuple[Param, ...] = (
    # --- wearer -------------------------------------------------------------------------
    _p("wearer.mass_kg", "kg", 80.0, 30.0, 150.0, 0.5,
       "Body mass of the wearer; scales event thresholds and push-off torque.", live=False),
    # --- estimator ----------------------------------------------------------------------
    _p("estimator.heel_strike_load_bw", "BW", 0.15, 0.05, 0.5, 0.01,
       "Pylon load above which the foot counts as loaded (heel strike)."),
    _p("estimator.toe_off_load_bw", "BW", 0.03, 0.01, 0.3, 0.01,
       "Pylon load below which the foot counts as unloaded (toe-off); below the heel-strike level. "
       "Keep it above about 3 standard deviations of the load cell's noise in swing."),
    _p("estimator.event_hold_s", "s", 0.003, 0.0, 0.05, 0.001,
       "Time a load condition must hold before the event is accepted (debounce)."),
    _p("estimator.min_stride_s", "s", 0.6, 0.3, 1.5, 0.05,
       "Shortest stride accepted as walking."),
    _p("estimator.max_stride_s", "s", 2.5, 1.2, 5.0, 0.1,
       "Longest stride accepted as walking; longer without a heel strike means not walking."),
    _p("estimator.swing_gyro_rad_s", "rad/s", 1.0, 0.3, 3.0, 0.1,
       "Forward shank swing speed that makes the next loading a heel strike (not a weight shift)."),
    _p("estimator.quiet_gyro_rad_s", "rad/s", 0.15, 0.03, 0.5, 0.01,
       "Shank speed below which a loaded shank counts as still (standing)."),
    _p("estimator.standing_after_s", "s", 0.2, 0.05, 1.0, 0.05,
       "How long a loaded shank must stay still before the wearer counts as standing."),
    _p("estimator.template_rate", "1", 0.3, 0.05, 1.0, 0.05,
       "Weight of each new stride in the learned shank-gyro template.", live=False),
    _p("estimator.prior_weight", "1", 2.0, 0.0, 20.0, 0.5,
       "How strongly the stride-time match prefers the last stride's time (per ln^2 of the ratio).",
       live=False),
    # --- push-off controller ------------------------------------------------------------
    _p("stance.stiffness_Nm_rad_kg", "N*m/rad/kg", 3.0, 0.0, 8.0, 0.1,
       "Ankle stiffness through stance, per kg body mass (dorsiflexion resistance)."),
    _p("stance.damping_Nms_rad_kg", "N*m*s/rad/kg", 0.02, 0.0, 0.1, 0.005,
       "Ankle damping through stance, per kg body mass."),
    _p("stance.equilibrium_rad", "rad", 0.0, -0.2, 0.2, 0.01,
       "Ankle angle at which the stance spring gives no torque (+ dorsiflexion)."),
    _p("pushoff.peak_torque_Nm_kg", "N*m/kg", 0.9, 0.0, 1.6, 0.05,
       "Peak push-off torque added in late stance, per kg body mass."),
    _p("pushoff.start_phase", "stride", 0.30, 0.1, 0.55, 0.01,
       "Phase at which the push-off torque starts to rise."),
    _p("pushoff.peak_phase", "stride", 0.50, 0.2, 0.65, 0.01,
       "Phase of the push-off torque peak."),
    _p("pushoff.end_phase", "stride", 0.62, 0.4, 0.75, 0.01,
       "Phase by which the push-off torque has returned to zero."),
    _p("swing.target_rad", "rad", 0.05, -0.1, 0.2, 0.01,
       "Ankle angle held in swing for toe clearance (+ dorsiflexion)."),
    _p("swing.stiffness_Nm_rad", "N*m/rad", 40.0, 0.0, 200.0, 1.0,
       "Position-hold stiffness in swing."),
    _p("swing.damping_Nms_rad", "N*m*s/rad", 1.5, 0.0, 10.0, 0.1,
       "Position-hold damping in swing."),
    # --- safety -------------------------------------------------------------------------
    _p("safety.max_torque_Nm", "N*m", 110.0, 0.0, 120.0, 1.0,
       "Largest ankle torque ever commanded, either direction.", live=False),
    _p("safety.max_slew_Nm_s", "N*m/s", 3000.0, 100.0, 10000.0, 100.0,
       "Largest rate of change of the commanded torque.", live=False),
    _p("safety.motor_timeout_s", "s", 0.0035, 0.001, 0.05, 0.0005,
       "Age of the last driver reply beyond which replies count as stale (about 3 missed).",
       live=False),
    _p("safety.sensor_timeout_s", "s", 0.02, 0.005, 0.1, 0.005,
       "Age of the last IMU or load frame beyond which that sensor counts as lost.", live=False),
    _p("safety.max_motor_temp_degC", "degC", 90.0, 40.0, 110.0, 1.0,
       "Driver temperature at which the fault latches.", live=False),
    _p("safety.passive_stiffness_Nm_rad", "N*m/rad", 250.0, 50.0, 600.0, 10.0,
       "Spring of the safe state in stance: behaves like a passive foot.", live=False),
    _p("safety.passive_damping_Nms_rad", "N*m*s/rad", 3.0, 0.0, 20.0, 0.5,
       "Damper of the safe state in stance.", live=False),
    _p("safety.hold_stiffness_Nm_rad", "N*m/rad", 40.0, 5.0, 200.0, 1.0,
       "Spring of the safe state in swing: holds the foot near neutral.", live=False),
    _p("safety.hold_damping_Nms_rad", "N*m*s/rad", 1.5, 0.0, 10.0, 0.1,
       "Damper of the safe state in swing.", live=False),
    _p("safety.ramp_s", "s", 0.1, 0.01, 0.5, 0.01,
       "Time over which the safe state blends in (no torque step under load).", live=False),
    # --- actuator (commissioning, never changed while walking) --------------------------
    _p("actuator.ratio", "1", 7.0, 1.0, 50.0, 0.01,
       "Transmission ratio from the driver's output shaft to the ankle.", live=False),
    _p("actuator.efficiency", "1", 0.95, 0.5, 1.0, 0.01,
       "Transmission efficiency used to convert torque commands and readings.", live=False),
    _p("actuator.direction", "1", -1, -1, 1, 2,
       "+1 if the driver turns positive with dorsiflexion, -1 if with plantarflexion.",
       live=False, kind=int),
    # --- loop ---------------------------------------------------------------------------
    _p("loop.rate_Hz", "Hz", 1000.0, 100.0, 2000.0, 100.0,
       "Control loop rate.", live=False),
)

_BY_NAME: Dict[str, Param] = {p.name: p for p in REGISTRY}


def by_name(name: str) -> Param:
    """The declared parameter ``name``, or :class:`ParamError` naming close matches."""
    try:
        return _BY_NAME[name]
    except KeyError:
        close = [n for n in _BY_NAME if name.split(".")[-1] in n or n.startswith(name)]
        hint = f"; did you mean {', '.join(close[:3])}?" if close else "; 'params' lists them"
        raise ParamError(f"unknown parameter {name!r}{hint}") from None


def groups() -> Tuple[str, ...]:
    """Parameter groups in declaration order."""
    seen: Dict[str, None] = {}
    for p in REGISTRY:
        seen.setdefault(p.group)
    return tuple(seen)


class ParamSet(Mapping[str, float]):
    """An immutable, fully validated set of parameter values.

    Cross-parameter rules are checked here too, so a ``ParamSet`` that exists is
    a set the controller may run with.
    """

    def __init__(self, values: Optional[Mapping[str, float]] = None):
        merged = {p.name: p.default for p in REGISTRY}
        for name, value in (values or {}).items():
            merged[name] = by_name(name).check(value)
        _check_cross(merged)
        self._values = merged

    def __getitem__(self, name: str) -> float:
        if name not in self._values:
            by_name(name)  # raises with the hint
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def with_values(self, changes: Mapping[str, float]) -> "ParamSet":
        """A new set with ``changes`` applied (dotted names)."""
        values = dict(self._values)
        values.update(changes)
        return ParamSet(values)


def _check_cross(v: Mapping[str, float]) -> None:
    if v["estimator.toe_off_load_bw"] >= v["estimator.heel_strike_load_bw"]:
        raise ParamError("estimator.toe_off_load_bw must be below estimator.heel_strike_load_bw "
                         "(the hysteresis band)")
    if v["estimator.min_stride_s"] >= v["estimator.max_stride_s"]:
        raise ParamError("estimator.min_stride_s must be below estimator.max_stride_s")
    if not v["pushoff.start_phase"] < v["pushoff.peak_phase"] < v["pushoff.end_phase"]:
        raise ParamError("push-off phases must satisfy start_phase < peak_phase < end_phase")
    if v["actuator.direction"] not in (-1, 1):
        raise ParamError("actuator.direction must be -1 or +1")
    peak = v["pushoff.peak_torque_Nm_kg"] * v["wearer.mass_kg"]
    if peak > v["safety.max_torque_Nm"]:
        raise ParamError(
            f"push-off peak {peak:.0f} N*m (pushoff.peak_torque_Nm_kg x wearer.mass_kg) exceeds "
            f"safety.max_torque_Nm = {v['safety.max_torque_Nm']:.0f} N*m")


def markdown_reference() -> str:
    """The parameter reference in Markdown, generated from the registry."""
    lines = [
        "# Parameter reference",
        "",
        "Generated from `controller/params.py` by `ankle params --markdown`; do not edit by hand.",
        "Live = may be changed while the wearer walks (takes effect at a stride boundary).",
        "",
    ]
    for group in groups():
        lines += [f"## {group}", "",
                  "| name | unit | default | min | max | step | live | description |",
                  "|---|---|---|---|---|---|---|---|"]
        for p in REGISTRY:
            if p.group == group:
                lines.append(f"| `{p.name}` | {p.unit} | {p.default:g} | {p.min:g} | {p.max:g} | "
                             f"{p.step:g} | {'yes' if p.live else 'no'} | {p.description} |")
        lines.append("")
    return "\n".join(lines)
