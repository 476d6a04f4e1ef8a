"""Names of the C constants the tick reports: fault bits, modes, phase sources (mirror ``_types.pxd``)."""
from __future__ import annotations

from typing import List

__all__ = ["FAULT_BITS", "WARNING_BITS", "DEGRADING", "MODES", "GAIT_SOURCES", "fault_names", "warning_names", "fault_bit", "warning_bit"]

#: bit -> (name, what it means); the order and values are those of ANKLE_FAULT_* in _types.pxd.
FAULT_BITS = {
    1 << 0: ("motor_stale", "driver replies missing or late (about 3 missed), or commands failing to send"),
    1 << 1: ("driver_error", "the driver reported an error code"),
    1 << 2: ("imu", "shank IMU lost, stuck, out of range, NaN, or frames too many (> 30 in 20 ms: a "
                    "second sender) or out of sequence (> 2 in 20 ms: duplicated, reordered)"),
    1 << 3: ("load", "load cell lost, saturated, loaded in swing, NaN, or frames too many (> 30 in "
                     "20 ms: a second sender) or out of sequence (> 2 in 20 ms)"),
    1 << 4: ("nonfinite_input", "NaN or Inf in a driver value"),
    1 << 5: ("nonfinite_command", "the controller produced NaN or Inf"),
    1 << 6: ("over_temperature", "motor winding (model), I^2 t or driver temperature at thermal.limit_degC"),
    1 << 7: ("encoder", "motor encoder jumped, stuck, or disagrees with the joint encoder"),
    1 << 8: ("overrun", "control ticks late 3 times running, or one gap above safety.overrun_gap_s"),
    1 << 9: ("low_voltage", "supply below safety.supply_min_V"),
    1 << 10: ("params", "parameter file corrupt at boot: running on a backup or defaults, powered mode refused"),
    1 << 11: ("sensor_node", "the sensor node reports its own fault (status flags non-zero) or a supply "
                             "it cannot see (outside 0..60 V), 2 status frames running: none of its "
                             "readings is trusted"),
}

#: Faults that only take powered push-off away (mode passive); all others give the safe state.
DEGRADING = (1 << 2) | (1 << 3)

#: bit -> (name, what it means) of the warning word (recomputed every tick, never latched).
WARNING_BITS = {
    1 << 0: ("thermal_derate", "torque limit derated for motor temperature"),
    1 << 1: ("thermal_alert", "motor winding above thermal.alert_degC"),
    1 << 2: ("supply_low", "supply below safety.supply_warn_V: push-off scaled down"),
    1 << 3: ("supply_unknown", "no supply reading from the sensor node: no push-off"),
    1 << 4: ("supply_implausible", "the supply reading is outside 0..60 V: counts as unknown, no push-off"),
    1 << 5: ("frames_lost", "an IMU or load stream lost over 25 % of its frames in 20 ms"),
}

#: mode value -> name (ANKLE_MODE_*).
MODES = {0: "standby", 1: "walk", 2: "safe", 3: "passive"}

#: GaitState.source value -> name (GAIT_SOURCE_*): what the phase comes from.
GAIT_SOURCES = {0: "none", 1: "shank", 2: "time", 3: "imu"}


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
