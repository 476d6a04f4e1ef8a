"""``ankle replay``: the device's sensor side run offline over recorded sensor data.

Input: a CSV with a header row and at least ``t`` [s], ``shank_gyro`` [rad/s],
``load`` [N], ``ankle_angle`` [rad] (any order, extra columns kept).  Output:
the input columns plus ``phase`` (0..1 from heel strike, empty when not
walking), ``heel_strike``, ``toe_off`` (1 on the sample the event is detected)
and ``walking`` (0/1); input columns of those names are replaced.

Each row is one tick of the device: the gyro cell is an IMU frame arriving at ``t``, the load
cell a load frame (which carries the ankle angle too), and the same compiled code as the tick
runs on them (:class:`controller.kernels._replay.Replay`): the safety stage's sensor checks
(lost, stuck-at, out of range, NaN, loaded while swinging), their latch and recovery, which
decide whether the estimator may use each sensor, then the estimator.  So a device or simulator
log replays to the same estimates, and a record with a failing sensor gives what the device would
have done: the fault latched, the estimate from the other sensor.  An empty gyro or load cell is
that frame not arriving (a short gap is bridged by the last frame, as on the device; a long one is
the sensor lost); an empty ``ankle_angle`` is allowed only where ``load`` is empty too (one frame
carries both).  The sensor faults raised are in the summary, by the fault catalogue's names
(:mod:`controller.kernels.faults`), with when each first latched and how long it stayed latched.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional

import numpy as np

from controller.kernels._estimator import Estimator
from controller.kernels._replay import Replay
from controller.kernels.faults import FAULTS
from controller.records.csvlog import atomic_write_text, format_value, read_columns, rows_to_csv
from controller.params.registry import ParamSet

__all__ = ["INPUT_COLUMNS", "OUTPUT_COLUMNS", "EMPTY_CELLS", "replay_file", "estimate", "fault_summary"]

INPUT_COLUMNS = ("t", "shank_gyro", "load", "ankle_angle")
OUTPUT_COLUMNS = ("phase", "heel_strike", "toe_off", "walking")
#: Input columns whose cells may be empty: that sensor's frame did not arrive on the row.  The
#: ankle angle comes in the load cell's frame, so it may be empty only where the load is.
EMPTY_CELLS = {"shank_gyro": None, "load": None, "ankle_angle": "load"}


def estimate(t_s, shank_gyro_rad_s, load_N, ankle_angle_rad, params: ParamSet,
             use_shank: bool = True, monitor: bool = False) -> Dict[str, np.ndarray]:
    """Run the estimator over arrays, one sample at a time as on line.

    Returns phase (-1 = not walking), heel_strike, toe_off, walking, standing.  A NaN gyro
    or load sample counts as that sensor's frame missing.  ``use_shank=False`` runs the plain
    time-based estimator (load events only) for comparison.

    ``monitor=False`` (the estimator alone): a sensor is used on exactly the samples where it
    is finite.  ``monitor=True`` (what ``ankle replay`` runs): the tick's safety check decides
    that per sample (a missing frame is bridged up to the sensor's timeout, then the sensor is
    lost; stuck-at, range and NaN checks; faults latch and recover as on the device; see
    :mod:`controller.kernels._replay`), and the result adds ``faults`` (the latched fault word
    per sample, uint32), ``imu_valid`` and ``load_valid`` (0/1 per sample).
    """
    arrays = [np.ascontiguousarray(a, dtype=np.float64) for a in (t_s, shank_gyro_rad_s, load_N, ankle_angle_rad)]
    n = len(arrays[0])
    out = {"phase": np.empty(n), "heel_strike": np.empty(n, np.int8), "toe_off": np.empty(n, np.int8),
           "walking": np.empty(n, np.int8), "standing": np.empty(n, np.int8)}
    if not monitor:
        est = Estimator()
        est.configure(params, use_shank=use_shank)
        est.run_arrays(*arrays, out["phase"], out["heel_strike"], out["toe_off"], out["walking"], out["standing"])
        return out
    out.update(faults=np.empty(n, np.uint32), imu_valid=np.empty(n, np.int8), load_valid=np.empty(n, np.int8))
    kernel = Replay()
    kernel.configure(params, use_shank=use_shank)
    kernel.run(*arrays, out["phase"], out["heel_strike"], out["toe_off"], out["walking"], out["standing"],
               out["faults"], out["imu_valid"], out["load_valid"])
    return out


def fault_summary(t_s, faults) -> Dict[str, Dict[str, float]]:
    """The faults latched over a replay, by catalogue name, in bit order: ``first_s`` (the ``t``
    of the first row it was latched on), ``latched_s`` (the time it was latched: each latched
    row counts until the next row) and ``episodes`` (how many times it latched).  Faults never
    latched are left out, so a clean record gives {}."""
    t = np.asarray(t_s, dtype=np.float64)
    word = np.asarray(faults, dtype=np.uint32)
    held_s = np.diff(t)
    out: Dict[str, Dict[str, float]] = {}
    for fault in FAULTS:
        on = (word & np.uint32(fault.mask)) != 0
        if not on.any():
            continue
        out[fault.name] = {
            "first_s": float(t[int(np.argmax(on))]),
            "latched_s": round(float(held_s[on[:-1]].sum()), 6),
            "episodes": int(on[0]) + int(np.count_nonzero(on[1:] & ~on[:-1])),
        }
    return out


def replay_file(in_path: Path, out_path: Path, mass_kg: Optional[float] = None) -> Dict[str, object]:
    """Replay ``in_path`` into ``out_path`` (written atomically); returns a summary: the counts
    of samples and events, the share of the time each sensor was used (``imu_used_fraction``,
    ``load_used_fraction``) and the sensor faults latched (``faults``: :func:`fault_summary`)."""
    params = ParamSet() if mass_kg is None else ParamSet({"wearer.mass_kg": mass_kg})
    torn: list = []             # a last line cut short by a crash or power cut is dropped, and said
    header, rows, cols = read_columns(in_path, INPUT_COLUMNS, torn=torn, may_be_empty=EMPTY_CELLS)
    result = estimate(cols["t"], cols["shank_gyro"], cols["load"], cols["ankle_angle"], params, monitor=True)
    keep = [i for i, name in enumerate(header) if name not in OUTPUT_COLUMNS]
    out_header = [header[i] for i in keep] + list(OUTPUT_COLUMNS)
    out_rows = (
        [row[i] for i in keep] + [format_value(result["phase"][k], empty_below=0.0),
                                  str(int(result["heel_strike"][k])), str(int(result["toe_off"][k])),
                                  str(int(result["walking"][k]))]
        for k, row in enumerate(rows))
    atomic_write_text(Path(out_path), rows_to_csv(out_header, out_rows))
    t = np.asarray(cols["t"])
    hs = int(result["heel_strike"].sum())
    return {
        "input": str(in_path),
        "output": str(out_path),
        "samples": len(rows),
        "duration_s": round(float(t[-1] - t[0]), 6),
        "sample_rate_Hz": round(float((len(t) - 1) / (t[-1] - t[0])), 3) if len(t) > 1 else None,
        "mass_kg": params["wearer.mass_kg"],
        "heel_strikes": hs,
        "toe_offs": int(result["toe_off"].sum()),
        "walking_fraction": round(float(result["walking"].mean()), 4),
        "imu_used_fraction": round(float(result["imu_valid"].mean()), 4),
        "load_used_fraction": round(float(result["load_valid"].mean()), 4),
        "faults": fault_summary(t, result["faults"]),
        "dropped": torn,
    }
