"""The one declaration of the telemetry row: its columns in order, each with its unit and meaning.

The tick writes one row per tick (``Tick.publish``) at the indices generated from this table
(``T_<NAME>`` and ``N_TELEMETRY`` in ``_tables.pxd``, by :mod:`controller.kernels.codegen` when
the kernels are built); ``controller.kernels._tick.TELEMETRY_COLUMNS`` is :data:`TELEMETRY_COLUMNS`;
every reader finds a column through :data:`COLUMN` (``COLUMN["load"]``) or :func:`column`, and the
session logs write :data:`INTEGER_COLUMNS` as integers.  ``tests/test_tables.py`` fails if any copy
could differ.

The order is a contract: the first columns are DESIGN.md's replay columns, logs and the shared
telemetry ring are in this order, and a new column goes at the end.  Pure Python (setup.py reads
it before anything is compiled).

Units are SI; the others: ``stride`` a fraction of the stride from heel strike, ``1`` a plain
ratio, ``flag`` 0 or 1, ``code`` a number named in :mod:`controller.kernels.faults`, ``bits`` a
word of bits named there, ``count`` a whole number of things.
"""
from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Mapping, Tuple

__all__ = ["Column", "COLUMNS", "TELEMETRY_COLUMNS", "COLUMN", "column", "KNOWN_UNITS",
           "INTEGER_UNITS", "INTEGER_COLUMNS"]

#: Units a column may carry (see the module's docstring).
KNOWN_UNITS = frozenset({"s", "rad/s", "N", "rad", "N*m", "degC", "m/s", "J/kg", "V",
                         "stride", "1", "flag", "code", "bits", "count"})
#: Units whose values are whole numbers: the logs write them as integers.
INTEGER_UNITS = frozenset({"flag", "code", "bits", "count"})


@dataclass(frozen=True)
class Column:
    """One column of the telemetry row."""

    name: str
    unit: str
    meaning: str

    @property
    def integer(self) -> bool:
        return self.unit in INTEGER_UNITS


COLUMNS: Tuple[Column, ...] = (
    # DESIGN.md's replay columns
    Column("t", "s", "time of the tick (the time passed in, not a clock read)"),
    Column("shank_gyro", "rad/s", "sagittal shank angular velocity, bias removed; + when the ankle moves "
                                  "forward relative to the knee"),
    Column("load", "N", "axial pylon compression, offset removed; about body weight in single support"),
    Column("ankle_angle", "rad", "joint encoder of the sensor node, + dorsiflexion"),
    Column("phase", "stride", "0..1 from heel strike; -1 when not walking"),
    Column("heel_strike", "flag", "1 on the tick a heel strike is detected"),
    Column("toe_off", "flag", "1 on the tick a toe-off is detected"),
    Column("walking", "flag", "1 once two plausible strides were seen"),
    # the estimator, the driver and the safety stage
    Column("stance", "flag", "1 while the foot is loaded"),
    Column("torque_Nm", "N*m", "measured ankle torque (the driver's reply), + plantar-flexor"),
    Column("torque_cmd_Nm", "N*m", "total ankle torque the bounded command asks for at the present state"),
    Column("motor_angle", "rad", "ankle angle from the motor encoder, + dorsiflexion"),
    Column("motor_vel", "rad/s", "ankle velocity from the motor encoder"),
    Column("motor_temp_C", "degC", "the driver's temperature reading; NaN until one arrives"),
    Column("mode", "code", "the controller's mode (faults.MODE_TABLE)"),
    Column("faults", "bits", "the latched fault word (faults.FAULTS)"),
    Column("stride_time_s", "s", "last complete stride"),
    Column("frames_lost", "count", "IMU and load frames lost since the start (only gaps the time since explains)"),
    Column("standing", "flag", "1 while the wearer stands (loaded, shank still): no phase"),
    Column("gait_source", "code", "what the phase comes from this tick (faults.GAIT_SOURCE_TABLE)"),
    Column("confidence", "1", "the estimator's confidence in its phase, 0..1"),
    Column("warnings", "bits", "the warning word of this tick (faults.WARNINGS)"),
    Column("winding_temp_C", "degC", "the thermal model's winding temperature"),
    Column("torque_limit_Nm", "N*m", "the torque limit in force, after thermal derating"),
    Column("pushoff_cmd_Nm", "N*m", "the powered push-off share of the torque sent"),
    Column("assist", "1", "the share of push-off the safety stage lets through, 0..1"),
    Column("speed_m_s", "m/s", "the controller's walking-speed estimate"),
    Column("stance_work_J_kg", "J/kg", "net ankle work of the last completed stance, per kg body mass"),
    Column("supply_V", "V", "the sensor node's supply reading; NaN until one arrives"),
    # the runner's timing of the tick (Tick.note_timing); NaN where not measured (the lock-step
    # simulator has no deadline)
    Column("late_s", "s", "how late the tick woke after its deadline"),
    Column("read_s", "s", "time spent in the read phase"),
    Column("update_s", "s", "time spent in the update phase (monitor, estimator, controller, safety)"),
    Column("write_s", "s", "time spent in the write phase"),
    # the optional sound-side node, for the gait-symmetry analysis (controller.symmetry.strides);
    # the tick does not control with them.  NaN without the node, or when its last frame is older
    # than controller.kernels._tick.SOUND_TIMEOUT_S.
    Column("sound_load", "N", "insole force under the sound foot"),
    Column("sound_gyro", "rad/s", "sound-side shank angular velocity"),
)

#: Column names, in row order.
TELEMETRY_COLUMNS: Tuple[str, ...] = tuple(c.name for c in COLUMNS)

#: Column name -> index in a row (read-only): ``rows[:, COLUMN["load"]]``.
COLUMN: Mapping[str, int] = MappingProxyType({c.name: i for i, c in enumerate(COLUMNS)})

#: Columns with whole-number values (written as integers in the logs).
INTEGER_COLUMNS = frozenset(c.name for c in COLUMNS if c.integer)


def column(name: str) -> int:
    """The index of column ``name`` in a telemetry row; KeyError naming the columns if none."""
    try:
        return COLUMN[name]
    except KeyError:
        raise KeyError(f"no telemetry column {name!r}; the columns are {', '.join(TELEMETRY_COLUMNS)}") from None
