"""``ankle replay``: the online estimator run offline over recorded sensor data.

Input: a CSV with a header row and at least ``t`` [s], ``shank_gyro`` [rad/s],
``load`` [N], ``ankle_angle`` [rad] (any order, extra columns kept).  Output:
the input columns plus ``phase`` (0..1 from heel strike, empty when not
walking), ``heel_strike``, ``toe_off`` (1 on the sample the event is detected)
and ``walking`` (0/1); input columns of those names are replaced.  The
estimator is the same compiled code the control loop runs, fed one sample at a
time, so a device or simulator log replays to the same estimates.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional

import numpy as np

from controller.kernels._estimator import Estimator
from controller.records.csvlog import atomic_write_text, format_value, read_columns, rows_to_csv
from controller.params.registry import ParamSet

__all__ = ["INPUT_COLUMNS", "OUTPUT_COLUMNS", "replay_file", "estimate"]

INPUT_COLUMNS = ("t", "shank_gyro", "load", "ankle_angle")
OUTPUT_COLUMNS = ("phase", "heel_strike", "toe_off", "walking")


def estimate(t_s, shank_gyro_rad_s, load_N, ankle_angle_rad, params: ParamSet,
             use_shank: bool = True) -> Dict[str, np.ndarray]:
    """Run the estimator over arrays, one sample at a time as on line.

    Returns phase (-1 = not walking), heel_strike, toe_off, walking, standing.  A NaN
    gyro or load sample counts as that sensor's frame missing.  ``use_shank=False``
    runs the plain time-based estimator (load events only) for comparison.
    """
    arrays = [np.ascontiguousarray(a, dtype=np.float64) for a in (t_s, shank_gyro_rad_s, load_N, ankle_angle_rad)]
    n = len(arrays[0])
    out = {"phase": np.empty(n), "heel_strike": np.empty(n, np.int8), "toe_off": np.empty(n, np.int8),
           "walking": np.empty(n, np.int8), "standing": np.empty(n, np.int8)}
    est = Estimator()
    est.configure(params, use_shank=use_shank)
    est.run_arrays(*arrays, out["phase"], out["heel_strike"], out["toe_off"], out["walking"], out["standing"])
    return out


def replay_file(in_path: Path, out_path: Path, mass_kg: Optional[float] = None) -> Dict[str, object]:
    """Replay ``in_path`` into ``out_path`` (written atomically); returns a summary."""
    params = ParamSet() if mass_kg is None else ParamSet({"wearer.mass_kg": mass_kg})
    torn: list = []             # a last line cut short by a crash or power cut is dropped, and said
    header, rows, cols = read_columns(in_path, INPUT_COLUMNS, torn=torn)
    result = estimate(cols["t"], cols["shank_gyro"], cols["load"], cols["ankle_angle"], params)
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
        "dropped": torn,
    }
