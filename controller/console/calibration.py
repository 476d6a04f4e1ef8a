"""Sensor calibration from telemetry: the ankle's zero angle, the gyro's bias, the load cell's tare.

:func:`measure` takes :data:`WINDOW_S` of telemetry rows recorded while the
wearer holds still and returns the new ``calibration.*`` values, or the reason
it refuses.  The rows carry the readings already corrected by the offsets in
force, so each new offset is the old one plus the mean of what is left.  The
console (``calibrate``) records the window and sends the result like any other
parameter change: checked against its bounds, audited, undoable, and applied
only while the wearer is not walking (the offsets are not ``live``).
"""
from __future__ import annotations

import math

from dataclasses import dataclass
from typing import Dict, Optional

import numpy as np

from controller.kernels._tick import TELEMETRY_COLUMNS
from controller.kernels.telemetry import COLUMN as _COL
from controller.params.registry import ParamSet, by_name

__all__ = ["KINDS", "WINDOW_S", "Calibration", "measure", "describe"]

STANDARD_GRAVITY = 9.80665       # m/s^2
WINDOW_S = 2.0                   # averaged window: several sway periods of quiet standing
#: Holding still: quiet standing sways the shank a few hundredths of a radian below 1 Hz, so
#: its gyro stays well inside 0.3 rad/s; a step, a shuffle or a knee bend goes far above.
STILL_GYRO_RAD_S = 0.3
STILL_ANKLE_RAD_S = 0.3          # ankle (driver) velocity
STILL_ANKLE_SPAN_RAD = 0.08      # range of the ankle angle over the window

#: kind -> (what the prosthetist does, the parameters it sets)
KINDS: Dict[str, tuple] = {
    "angle": ("the wearer stands still, weight on the prosthesis, foot flat and shank upright "
              "(the neutral the ankle should hold)",
              ("calibration.ankle_zero_rad", "calibration.motor_zero_rad")),
    "imu": ("the shank held still (standing or sitting)", ("calibration.gyro_bias_rad_s",)),
    "load": ("the foot off the ground and still (the wearer sitting, the foot lifted)",
             ("calibration.load_offset_N",)),
}


@dataclass(frozen=True)
class Calibration:
    """The outcome of :func:`measure`: ``values`` to set (empty when refused) and a reply line."""

    values: Dict[str, float]
    message: str

    @property
    def refused(self) -> bool:
        return not self.values


def _refuse(message: str) -> Calibration:
    return Calibration({}, message)


def measure(kind: str, rows: np.ndarray, params: ParamSet, window_s: float = WINDOW_S) -> Calibration:
    """New calibration values of ``kind`` (see :data:`KINDS`) from telemetry ``rows`` (n x
    ``TELEMETRY_COLUMNS``) covering ``window_s`` of holding still; refuses with the reason when
    the rows show walking, movement, the wrong load, or too little data."""
    if kind not in KINDS:
        return _refuse(f"calibrate what? one of {', '.join(KINDS)}")
    rows = np.asarray(rows, dtype=float)
    if rows.ndim != 2 or rows.shape[1] != len(TELEMETRY_COLUMNS) or len(rows) < 2:
        return _refuse("no telemetry recorded: is the controller running?")

    def col(name: str) -> np.ndarray:
        return rows[:, _COL[name]]

    span_s = col("t")[-1] - col("t")[0]
    if not span_s >= 0.9 * window_s:
        return _refuse(f"only {span_s:.2f} s of telemetry in the window, {window_s:g} s needed")
    if np.any(col("walking") != 0):
        return _refuse("the wearer walked during the measurement: calibrate only while standing still")
    gyro, ankle_vel, ankle = col("shank_gyro"), col("motor_vel"), col("ankle_angle")
    if not (np.all(np.isfinite(gyro)) and np.all(np.isfinite(ankle_vel)) and np.all(np.isfinite(ankle))):
        return _refuse("a sensor gave no reading during the measurement (see 'faults')")
    moving = []
    if np.max(np.abs(gyro - np.median(gyro))) > STILL_GYRO_RAD_S:
        moving.append(f"shank turned up to {math.degrees(np.max(np.abs(gyro - np.median(gyro)))):.1f} deg/s "
                      f"(still: below {math.degrees(STILL_GYRO_RAD_S):.1f})")
    if np.max(np.abs(ankle_vel)) > STILL_ANKLE_RAD_S:
        moving.append(f"ankle moved at up to {math.degrees(np.max(np.abs(ankle_vel))):.1f} deg/s "
                      f"(still: below {math.degrees(STILL_ANKLE_RAD_S):.1f})")
    if np.ptp(ankle) > STILL_ANKLE_SPAN_RAD:
        moving.append(f"ankle angle spanned {math.degrees(np.ptp(ankle)):.2f} deg "
                      f"(still: below {math.degrees(STILL_ANKLE_SPAN_RAD):.2f})")
    if moving:
        return _refuse("not still: " + "; ".join(moving) + "; nothing changed")
    load = col("load")
    threshold_N = params["estimator.heel_strike_load_bw"] * params["wearer.mass_kg"] * STANDARD_GRAVITY
    if kind == "angle":
        if not np.all(load >= threshold_N):
            return _refuse(f"angle zero needs weight on the prosthesis: load fell to {np.min(load):.0f} N "
                           f"(at least {threshold_N:.0f} N all through); nothing changed")
        motor = col("motor_angle")
        values = {"calibration.ankle_zero_rad": params["calibration.ankle_zero_rad"] + float(np.mean(ankle)),
                  "calibration.motor_zero_rad": params["calibration.motor_zero_rad"] + float(np.mean(motor))}
        spread = f"ankle angle spread {math.degrees(np.std(ankle)):.2f} deg"
    elif kind == "imu":
        values = {"calibration.gyro_bias_rad_s": params["calibration.gyro_bias_rad_s"] + float(np.mean(gyro))}
        spread = f"gyro spread {math.degrees(np.std(gyro)):.2f} deg/s"
    else:
        if not (np.all(np.isfinite(load)) and np.all(load < threshold_N)):
            return _refuse(f"load tare needs the foot off the ground: load up to {np.nanmax(load):.0f} N "
                           f"(below {threshold_N:.0f} N all through); nothing changed")
        values = {"calibration.load_offset_N": params["calibration.load_offset_N"] + float(np.mean(load))}
        spread = f"load spread {np.std(load):.1f} N"
    return Calibration(values, f"measured over {span_s:.2f} s, {spread}")


def describe(params: ParamSet, names: Optional[tuple] = None) -> str:
    """The calibration values in force, one per line with units."""
    names = names or tuple(n for _, ns in KINDS.values() for n in ns)
    return "\n".join(f"{n} = {params[n]:+.4g} {by_name(n).unit}" for n in names)
