"""Names of the C constants the tick reports: fault bits, modes, phase sources (mirror ``_types.pxd``)."""
from __future__ import annotations

from typing import List

__all__ = ["FAULT_BITS", "MODES", "GAIT_SOURCES", "fault_names"]

#: bit -> (name, what it means); the order and values are those of ANKLE_FAULT_* in _types.pxd.
FAULT_BITS = {
    1 << 0: ("motor_stale", "driver replies missing or late (about 3 missed)"),
    1 << 1: ("driver_error", "the driver reported an error code"),
    1 << 2: ("imu_stale", "no valid shank IMU frame within the sensor timeout"),
    1 << 3: ("load_stale", "no valid load/encoder frame within the sensor timeout"),
    1 << 4: ("nonfinite_input", "NaN or Inf in a sensor or driver value"),
    1 << 5: ("nonfinite_command", "the controller produced NaN or Inf"),
    1 << 6: ("over_temperature", "driver temperature above safety.max_motor_temp_degC"),
}

#: mode value -> name (ANKLE_MODE_*).
MODES = {0: "standby", 1: "walk", 2: "safe"}

#: GaitState.source value -> name (GAIT_SOURCE_*): what the phase comes from.
GAIT_SOURCES = {0: "none", 1: "shank", 2: "time", 3: "imu"}


def fault_names(word: int) -> List[str]:
    """The names of the bits set in ``word``; unknown bits as ``bit<N>``."""
    word = int(word)
    names = [name for bit, (name, _) in FAULT_BITS.items() if word & bit]
    known = sum(FAULT_BITS)
    extra = word & ~known
    names += [f"bit{i}" for i in range(32) if extra & (1 << i)]
    return names
