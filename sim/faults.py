"""Fault injection for the simulator: one vocabulary for every entry of the fault catalogue.

An :class:`Injection` says *what* goes wrong (``kind``, one of :data:`KINDS`), *when*
(``t_s`` on simulated time, for ``duration_s``) and *how much* (``value``, in the
kind's unit; NaN takes the kind's default).  A list of them is handed to
:func:`sim.harness.run` (``faults=``), which passes it on to whoever acts on each kind:

- the simulated devices (:class:`sim.devices.SimAnkle`): frames lost or not sent,
  and, through the plant's fault setters, wrong sensor data, driver error codes,
  extra winding heat and the supply voltage (:data:`DEVICE_KINDS`);
- the harness's tick loop: a hung or overrunning host, a poisoned command
  (:data:`HOST_KINDS`).

An injection is active at simulated time ``t`` when ``t_s <= t < t_s + duration_s``
(:meth:`Injection.active_at`).  Nothing acts before ``t_s``, so a run with an
injection is identical to one without it up to ``t_s``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Dict, FrozenSet, Tuple

__all__ = ["Injection", "KINDS", "HOST_KINDS", "DEVICE_KINDS", "resolved_value"]

_NO_VALUE = math.nan     # default of the kinds that take no value

#: kind -> (what it does, with the unit of ``value``; default value).  NaN default: no value.
KINDS: Dict[str, Tuple[str, float]] = {
    "comms_loss": ("host->driver frames are lost on the way; the driver's watchdog must act "
                   "(no value)", _NO_VALUE),
    "stale_replies": ("the driver acts on commands but sends no replies (no value)", _NO_VALUE),
    "driver_error": ("every driver reply carries error code `value` (integer 1..255; "
                     "hal.ak.AK_ERROR_CODES)", 2.0),
    "over_temperature": ("extra heat of `value` W into the motor case (hot surroundings, blocked "
                         "cooling): the driver's temperature reading rises", 100.0),
    "winding_heat": ("extra heat of `value` W into the motor winding alone (a shorted turn): "
                     "invisible to the host's current-based model until the case warms", 300.0),
    "encoder_jump": ("the motor encoder jumps by `value` rad at the ankle side and stays offset",
                     0.3),
    "encoder_stuck": ("the motor encoder freezes at its position at t_s; velocity reads 0 "
                      "(no value)", _NO_VALUE),
    "imu_loss": ("IMU frames are not sent (no value)", _NO_VALUE),
    "imu_stuck": ("IMU frames repeat the sample taken at t_s; the sequence counter still "
                  "increments (no value)", _NO_VALUE),
    "imu_range": ("the gyro reads `value` rad/s (the frame saturates at 32.767)", 40.0),
    "load_loss": ("load/encoder frames are not sent (no value)", _NO_VALUE),
    "load_stuck": ("the load reads a constant `value` N", 800.0),
    "load_saturation": ("the load reads `value` N (the frame saturates at 16383.5)", 20000.0),
    "host_hang": ("the host stops ticking: no reads, no commands (no value)", _NO_VALUE),
    "loop_overrun": ("the host ticks only every `value`-th period (integer >= 2)", 2.0),
    "low_voltage": ("the supply is `value` V (nominal 24): in the status frame, and driver "
                    "error 4 below the plant's driver_undervoltage_V", 18.0),
    "spoof_imu": ("a second sender puts plausible IMU frames (a still shank) on the bus at `value` "
                  "Hz with its own sequence counter", 2000.0),
    "spoof_load": ("a second sender puts plausible load frames (an unloaded foot) on the bus at "
                   "`value` Hz with its own sequence counter", 2000.0),
    "duplicate_frames": ("every IMU and load frame is sent twice (no value)", _NO_VALUE),
    "reorder_frames": ("IMU and load frames go out in swapped pairs: each one after its successor "
                       "(no value)", _NO_VALUE),
    "node_status_flags": ("the status frame carries flags `value` (integer 1..255)", 255.0),
    "supply_reading": ("the status frame reports a supply of `value` V (0..655.35, the field's "
                       "range); the real supply is unchanged", 655.35),
    "nonfinite_command": ("the controller's command is poisoned with NaN (no value)", _NO_VALUE),
}

#: Kinds the harness's tick loop handles (the host side); the others act in the simulated devices.
HOST_KINDS: FrozenSet[str] = frozenset({"host_hang", "loop_overrun", "nonfinite_command"})
DEVICE_KINDS: FrozenSet[str] = frozenset(KINDS) - HOST_KINDS


def _integer_in(lo: float, hi: float) -> Callable[[float], bool]:
    return lambda v: v == int(v) and lo <= v <= hi


# Kinds whose value must lie in a range (beyond "finite"), with the rule as said in messages.
_VALUE_RULES: Dict[str, Tuple[Callable[[float], bool], str]] = {
    "driver_error": (_integer_in(1, 255), "an integer error code 1..255 (0 would be no error)"),
    "over_temperature": (lambda v: v >= 0.0, ">= 0 W"),
    "winding_heat": (lambda v: v >= 0.0, ">= 0 W"),
    "loop_overrun": (_integer_in(2, math.inf), "an integer >= 2 (ticks every value-th period)"),
    "low_voltage": (lambda v: v >= 0.0, ">= 0 V"),
    "spoof_imu": (lambda v: 1.0 <= v <= 20000.0, "1..20000 Hz"),
    "spoof_load": (lambda v: 1.0 <= v <= 20000.0, "1..20000 Hz"),
    "node_status_flags": (_integer_in(1, 255), "an integer 1..255 (0 would be no flag)"),
    "supply_reading": (lambda v: 0.0 <= v <= 655.35, "0..655.35 V (the status field's range)"),
}


@dataclass(frozen=True)
class Injection:
    """One fault: ``kind`` (a key of :data:`KINDS`) from ``t_s`` [s] for ``duration_s`` [s].

    ``value`` is in the kind's unit (see :data:`KINDS`); NaN (the default) takes the kind's
    default, and kinds that take no value accept only NaN.  ValueError, naming the field, for
    an unknown kind, a non-finite or negative ``t_s``, a ``duration_s`` that is not > 0 (inf:
    for good) or too small to change ``t_s``, or a value that is non-finite (other than NaN)
    or outside the kind's rule.
    """

    kind: str
    t_s: float
    duration_s: float = math.inf
    value: float = math.nan

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; known kinds: {', '.join(KINDS)}")
        # stored as floats, so an int or numpy scalar compares and prints the same
        for name in ("t_s", "duration_s", "value"):
            object.__setattr__(self, name, float(getattr(self, name)))
        if not (math.isfinite(self.t_s) and self.t_s >= 0.0):
            raise ValueError(f"{self.kind}: t_s must be finite and >= 0 s, got {self.t_s!r}")
        if not self.duration_s > 0.0:          # also refuses NaN; inf means "for good"
            raise ValueError(f"{self.kind}: duration_s must be > 0 s (inf: for good), "
                             f"got {self.duration_s!r}")
        if not self.t_s + self.duration_s > self.t_s:
            # so tiny against t_s that it rounds away: the fault would never act
            raise ValueError(f"{self.kind}: duration_s {self.duration_s!r} is lost in rounding "
                             f"at t_s {self.t_s!r}")
        if math.isnan(self.value):
            return                              # the kind's default
        if math.isnan(KINDS[self.kind][1]):
            raise ValueError(f"{self.kind} takes no value (leave it NaN), got {self.value!r}")
        if not math.isfinite(self.value):
            raise ValueError(f"{self.kind}: value must be finite (NaN for the default "
                             f"{KINDS[self.kind][1]!r}), got {self.value!r}")
        rule = _VALUE_RULES.get(self.kind)
        if rule is not None and not rule[0](self.value):
            raise ValueError(f"{self.kind}: value must be {rule[1]}, got {self.value!r}")

    @property
    def end_s(self) -> float:
        """When the injection stops acting [s] (inf: never)."""
        return self.t_s + self.duration_s

    def active_at(self, now_s: float) -> bool:
        """True when the fault acts at simulated time ``now_s``: ``t_s <= now_s < end_s``."""
        return self.t_s <= now_s < self.end_s


def resolved_value(inj: Injection) -> float:
    """The injection's value in its kind's unit: ``inj.value``, or the kind's default when NaN
    (NaN for kinds that take no value)."""
    return KINDS[inj.kind][1] if math.isnan(inj.value) else inj.value
