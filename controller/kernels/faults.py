"""The one declaration of what the tick reports in words: fault bits, warning bits, modes and phase sources.

Everything else is derived from the tables here: the C constants the kernels compile with
(``ANKLE_FAULT_*``, ``ANKLE_WARN_*``, ``ANKLE_FAULTS_DEGRADING``, ``ANKLE_MODE_*``,
``GAIT_SOURCE_*``, written into ``_tables.pxd`` by :mod:`controller.kernels.codegen` when the
kernels are built), the name lookups below, the console's and the summaries' words, and the
README's table of the fault and warning words (``make docs``).  ``tests/test_tables.py`` fails if
any copy could differ.

Bits are fixed numbers, not positions in the list: logs store the words, so a bit keeps its
meaning for good; a fault that goes away leaves its bit unused.  This module is pure Python
(setup.py reads it before anything is compiled).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Tuple

__all__ = ["Fault", "WarningBit", "Mode", "GaitSource", "FAULTS", "WARNINGS", "MODE_TABLE",
           "GAIT_SOURCE_TABLE", "PASSIVE", "SAFE", "FAULT_BITS", "WARNING_BITS", "DEGRADING", "MODES", "MODE_VALUES",
           "GAIT_SOURCES", "fault_names", "warning_names", "fault_bit", "warning_bit",
           "markdown_fault_table"]

#: What a latched fault does to the ankle.  PASSIVE: it only takes powered push-off away (mode
#: passive: the impedance law goes on, events from the other sensor); SAFE: the safe state.
PASSIVE = "passive"
SAFE = "safe"


@dataclass(frozen=True)
class Fault:
    """One bit of the latched fault word."""

    name: str
    bit: int           # bit number in the word (0..31); the word's value is 1 << bit
    response: str      # PASSIVE or SAFE
    meaning: str

    @property
    def mask(self) -> int:
        return 1 << self.bit


@dataclass(frozen=True)
class WarningBit:
    """One bit of the warning word (recomputed every tick, never latched)."""

    name: str
    bit: int
    meaning: str

    @property
    def mask(self) -> int:
        return 1 << self.bit


@dataclass(frozen=True)
class Mode:
    """A value of the controller's mode (``Safety.mode``, telemetry column ``mode``)."""

    name: str
    value: int
    meaning: str


@dataclass(frozen=True)
class GaitSource:
    """A value of ``GaitState.source`` (telemetry column ``gait_source``): what the phase comes from."""

    name: str
    value: int
    meaning: str


FAULTS: Tuple[Fault, ...] = (
    Fault("motor_stale", 0, SAFE,
          "driver replies missing or late (about 3 missed), or commands failing to send"),
    Fault("driver_error", 1, SAFE, "the driver reported an error code"),
    Fault("imu", 2, PASSIVE,
          "shank IMU lost, stuck, out of range, NaN, or frames too many (> 30 in 20 ms: a "
          "second sender) or out of sequence (> 2 in 20 ms: duplicated, reordered)"),
    Fault("load", 3, PASSIVE,
          "load cell lost, saturated, loaded in swing, NaN, or frames too many (> 30 in "
          "20 ms: a second sender) or out of sequence (> 2 in 20 ms)"),
    Fault("nonfinite_input", 4, SAFE, "NaN or Inf in a driver value"),
    Fault("nonfinite_command", 5, SAFE, "the controller produced NaN or Inf"),
    Fault("over_temperature", 6, SAFE,
          "motor winding (model), I^2 t or driver temperature at thermal.limit_degC"),
    Fault("encoder", 7, SAFE, "motor encoder jumped, stuck, or disagrees with the joint encoder"),
    Fault("overrun", 8, SAFE, "control ticks late 3 times running, or one gap above safety.overrun_gap_s"),
    Fault("low_voltage", 9, SAFE, "supply below safety.supply_min_V"),
    Fault("params", 10, SAFE,
          "parameter file corrupt at boot: running on a backup or defaults, powered mode refused"),
    Fault("sensor_node", 11, SAFE,
          "the sensor node reports its own fault (status flags non-zero) or a supply "
          "it cannot see (outside 0..60 V), 2 status frames running: none of its "
          "readings is trusted"),
)

WARNINGS: Tuple[WarningBit, ...] = (
    WarningBit("thermal_derate", 0, "torque limit derated for motor temperature"),
    WarningBit("thermal_alert", 1, "motor winding above thermal.alert_degC"),
    WarningBit("supply_low", 2, "supply below safety.supply_warn_V: push-off scaled down"),
    WarningBit("supply_unknown", 3, "no supply reading from the sensor node: no push-off"),
    WarningBit("supply_implausible", 4,
             "the supply reading is outside 0..60 V: counts as unknown, no push-off"),
    WarningBit("frames_lost", 5, "an IMU or load stream lost over 25 % of its frames in 20 ms"),
)

MODE_TABLE: Tuple[Mode, ...] = (
    Mode("standby", 0, "no powered torque: the ankle free when unloaded, a passive spring on the driver"),
    Mode("walk", 1, "powered: the impedance law with push-off"),
    Mode("safe", 2, "a latched fault: passive spring-damper in stance, hold near neutral in swing, "
                    "damped hold after an encoder fault"),
    Mode("passive", 3, "the impedance law without powered push-off (a sensor fault, or chosen)"),
)

GAIT_SOURCE_TABLE: Tuple[GaitSource, ...] = (
    GaitSource("none", 0, "not walking"),
    GaitSource("shank", 1, "load events and the shank-gyro template match"),
    GaitSource("time", 2, "load events and the last stride time (IMU lost, or no template yet)"),
    GaitSource("imu", 3, "load lost: events and phase from the shank gyro alone"),
)

# ---- derived: the lookups the rest of the code uses ------------------------------------------

#: bit -> (name, what it means) of the latched fault word.
FAULT_BITS: Dict[int, Tuple[str, str]] = {f.mask: (f.name, f.meaning) for f in FAULTS}

#: Faults that only take powered push-off away (mode passive); all others give the safe state.
DEGRADING: int = sum(f.mask for f in FAULTS if f.response == PASSIVE)

#: bit -> (name, what it means) of the warning word (recomputed every tick, never latched).
WARNING_BITS: Dict[int, Tuple[str, str]] = {w.mask: (w.name, w.meaning) for w in WARNINGS}

#: mode value -> name.
MODES: Dict[int, str] = {m.value: m.name for m in MODE_TABLE}

#: mode name -> value.
MODE_VALUES: Dict[str, int] = {m.name: m.value for m in MODE_TABLE}

#: GaitState.source value -> name: what the phase comes from.
GAIT_SOURCES: Dict[int, str] = {s.value: s.name for s in GAIT_SOURCE_TABLE}


def fault_names(word: int, table=None) -> List[str]:
    """The names of the bits set in ``word`` (fault word by default); unknown bits as ``bit<N>``."""
    table = FAULT_BITS if table is None else table
    word = int(word)
    names = [name for bit, (name, _) in table.items() if word & bit]
    known = sum(table)
    extra = word & ~known
    names += [f"bit{i}" for i in range(32) if extra & (1 << i)]
    return names


def warning_names(word: int) -> List[str]:
    """The names of the bits set in a warning word."""
    return fault_names(word, WARNING_BITS)


def fault_bit(name: str, table=None) -> int:
    """The bit of the fault called ``name`` (warning word with ``table=WARNING_BITS``); KeyError if none."""
    for bit, (known, _) in (FAULT_BITS if table is None else table).items():
        if known == name:
            return bit
    raise KeyError(f"no fault or warning called {name!r}")


def warning_bit(name: str) -> int:
    """The bit of the warning called ``name``."""
    return fault_bit(name, WARNING_BITS)


def markdown_fault_table() -> str:
    """The README's table of the fault and warning words, generated from :data:`FAULTS` and
    :data:`WARNINGS` (``make docs`` writes it between the README's markers)."""
    lines = ["| word | bit | value | name | response | meaning |", "|---|---|---|---|---|---|"]
    for f in FAULTS:
        lines.append(f"| fault | {f.bit} | {f.mask} | `{f.name}` | {f.response} | {f.meaning} |")
    for w in WARNINGS:
        lines.append(f"| warning | {w.bit} | {w.mask} | `{w.name}` | warning only, never latched | {w.meaning} |")
    return "\n".join(lines) + "\n"
