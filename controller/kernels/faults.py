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
           "markdown_fault_table", "markdown_glossary", "advice"]

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
    #: for the clinician at the console: what happened, what the ankle does now, what to do
    advice: str

    @property
    def mask(self) -> int:
        return 1 << self.bit


@dataclass(frozen=True)
class WarningBit:
    """One bit of the warning word (recomputed every tick, never latched)."""

    name: str
    bit: int
    meaning: str
    #: for the clinician at the console: what it means for the wearer, and what to do
    advice: str

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
          "driver replies missing or late (about 3 missed), or commands failing to send",
          "The motor stopped answering. The ankle is a passive foot now. Check the motor cable and its "
          "plugs, then type `clear`."),
    Fault("driver_error", 1, SAFE, "the driver reported an error code",
          "The motor drive reported a fault of its own. The ankle is a passive foot now. Check the "
          "battery and let the motor cool, then type `clear`; if it comes back, call service."),
    Fault("imu", 2, PASSIVE,
          "shank IMU lost, stuck, out of range, NaN, or frames too many (> 30 in 20 ms: a "
          "second sender) or out of sequence (> 2 in 20 ms: duplicated, reordered)",
          "The shank motion sensor stopped giving good readings. The ankle walks on without powered "
          "push-off. Check the sensor's cable, then type `clear`."),
    Fault("load", 3, PASSIVE,
          "load cell lost, saturated, loaded in swing, NaN, or frames too many (> 30 in "
          "20 ms: a second sender) or out of sequence (> 2 in 20 ms)",
          "The pylon's load sensor stopped giving good readings. The ankle walks on without powered "
          "push-off. Check its cable and that nothing presses on the pylon in swing, then type `clear`."),
    Fault("nonfinite_input", 4, SAFE, "NaN or Inf in a driver value",
          "The motor drive sent a reading that is not a number. The ankle is a passive foot now. Type "
          "`clear`; if it comes back, call service."),
    Fault("nonfinite_command", 5, SAFE, "the controller produced NaN or Inf",
          "The controller computed a torque that is not a number (a software fault). The ankle is a "
          "passive foot now. Copy the log with `log`, call service, then type `clear` to go on."),
    Fault("over_temperature", 6, SAFE,
          "motor winding (model), I^2 t or driver temperature at thermal.limit_degC",
          "The motor is too hot. The ankle is a passive foot now. Let the wearer rest a few minutes, "
          "then type `clear`; if it comes back, lower the push-off strength."),
    Fault("encoder", 7, SAFE, "motor encoder jumped, stuck, or disagrees with the joint encoder",
          "The motor's angle sensor jumped or disagrees with the joint's. The ankle holds its angle, "
          "damped. Do not walk on it: call service, and type `clear` only after it was checked."),
    Fault("overrun", 8, SAFE, "control ticks late 3 times running, or one gap above safety.overrun_gap_s",
          "The controller fell behind its timing. The ankle is a passive foot now. Type `clear`; if "
          "it comes back, call service."),
    Fault("low_voltage", 9, SAFE, "supply below safety.supply_min_V",
          "The battery is too low. The ankle is a passive foot now. Charge or change the battery, "
          "then type `clear`."),
    Fault("params", 10, SAFE,
          "parameter file corrupt at boot: running on a backup or defaults, powered mode refused",
          "The saved settings were damaged at start-up: the ankle runs on a backup or the factory "
          "settings, as a passive foot. Check them with `diff`, type `save`, then restart the ankle."),
    Fault("sensor_node", 11, SAFE,
          "the sensor node reports its own fault (status flags non-zero) or a supply "
          "it cannot see (outside 0..60 V), 2 status frames running: none of its "
          "readings is trusted",
          "The sensor board reports a fault of its own. The ankle is a passive foot now. Check the "
          "sensor board's cable and the battery, then type `clear`."),
)

WARNINGS: Tuple[WarningBit, ...] = (
    WarningBit("thermal_derate", 0, "torque limit derated for motor temperature",
               "The motor is warm, so push-off is reduced to protect it. A rest lets it cool."),
    WarningBit("thermal_alert", 1, "motor winding above thermal.alert_degC",
               "The motor is getting hot. Push-off goes on; a rest soon avoids a stop."),
    WarningBit("supply_low", 2, "supply below safety.supply_warn_V: push-off scaled down",
               "The battery is low, so push-off is reduced. Charge it soon."),
    WarningBit("supply_unknown", 3, "no supply reading from the sensor node: no push-off",
               "The battery cannot be read, so there is no push-off. Check the sensor board's cable."),
    WarningBit("supply_implausible", 4,
             "the supply reading is outside 0..60 V: counts as unknown, no push-off",
             "The battery reading is impossible, so there is no push-off. Check the sensor board."),
    WarningBit("frames_lost", 5, "an IMU or load stream lost over 25 % of its frames in 20 ms",
               "Sensor messages are being lost; walking goes on. Check the sensor cables."),
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


def advice(name: str) -> str:
    """The clinician's sentence for the fault or warning called ``name`` (KeyError if none)."""
    for entry in (*FAULTS, *WARNINGS):
        if entry.name == name:
            return entry.advice
    raise KeyError(f"no fault or warning called {name!r}")


def markdown_glossary() -> str:
    """The console guide's fault glossary for prosthetists (docs/console.md), from the tables."""
    lines = ["| `faults` shows | what it means and what to do |", "|---|---|"]
    lines += [f"| `{f.name}` | {f.advice} |" for f in FAULTS]
    lines += [f"| `{w.name}` (a warning) | {w.advice} |" for w in WARNINGS]
    return "\n".join(lines) + "\n"


def markdown_fault_table() -> str:
    """The README's table of the fault and warning words, generated from :data:`FAULTS` and
    :data:`WARNINGS` (``make docs`` writes it between the README's markers)."""
    lines = ["| word | bit | value | name | response | meaning |", "|---|---|---|---|---|---|"]
    for f in FAULTS:
        lines.append(f"| fault | {f.bit} | {f.mask} | `{f.name}` | {f.response} | {f.meaning} |")
    for w in WARNINGS:
        lines.append(f"| warning | {w.bit} | {w.mask} | `{w.name}` | warning only, never latched | {w.meaning} |")
    return "\n".join(lines) + "\n"
