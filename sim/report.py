"""Output of a simulated session: the CSV log and the plot.

The log has DESIGN.md's replay columns first (``t, shank_gyro, load,
ankle_angle, phase, heel_strike, toe_off, walking``), then ``torque_Nm`` and
``torque_cmd_Nm``, then diagnostics and the simulator's ground truth.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from controller.kernels.telemetry import COLUMN, INTEGER_COLUMNS
from controller.records.csvlog import CsvRows, atomic_write_text
from sim.harness import TRUTH_COLUMNS, SimRun

__all__ = ["LOG_COLUMNS", "write_log", "plot"]

#: (column name in the file, source table, source column)
_LAYOUT = (
    [(c, "tel", c) for c in ("t", "shank_gyro", "load", "ankle_angle", "phase", "heel_strike", "toe_off",
                             "walking", "torque_Nm", "torque_cmd_Nm", "stance", "motor_angle", "motor_vel",
                             "motor_temp_C", "mode", "faults", "frames_lost", "standing", "gait_source",
                             "confidence", "sound_load", "sound_gyro")]
    + [(c, "truth", c) for c in ("phase_true", "stance_true", "ankle_angle_true", "torque_true_Nm")]
)
LOG_COLUMNS = tuple(name for name, _, _ in _LAYOUT)
#: The log's writer: the telemetry's integer columns as integers; no phase (true or estimated) below 0.
_CSV = CsvRows(LOG_COLUMNS, integer=INTEGER_COLUMNS & set(LOG_COLUMNS), blank_negative=("phase", "phase_true"))


def write_log(run: SimRun, path: Path) -> None:
    """Write the session's CSV log to ``path`` (atomically)."""
    truth_i = {c: i for i, c in enumerate(TRUTH_COLUMNS)}
    block = np.column_stack([run.telemetry[:, COLUMN[col]] if src == "tel" else run.truth[:, truth_i[col]]
                             for _, src, col in _LAYOUT])
    text = (_CSV.header() + _CSV.rows(block)).decode("ascii")
    atomic_write_text(Path(path), text)


def plot(run: SimRun, path: Path, strides: int = 4, fmt: Optional[str] = None) -> None:
    """Phase, torque, power and load over the last ``strides`` complete strides, as a figure in
    ``fmt`` (a matplotlib format; None: from the suffix of ``path``)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise RuntimeError("--plot needs matplotlib: pip install 'ankle-controller[plot]'") from None
    tel, truth = run.telemetry, run.truth
    t = tel[:, COLUMN["t"]]
    done = [s for s in run.strides if s.t_end_s <= t[-1]]
    t0 = done[-strides].t_heel_strike_s if len(done) >= strides else t[0]
    sel = t >= t0
    mass = run.params["wearer.mass_kg"]
    power = -tel[:, COLUMN["torque_Nm"]] * np.gradient(tel[:, COLUMN["ankle_angle"]], t)
    phase = np.where(tel[:, COLUMN["phase"]] >= 0, tel[:, COLUMN["phase"]], np.nan)

    fig, ax = plt.subplots(4, 1, figsize=(10, 9), sharex=True)
    ax[0].plot(t[sel], truth[sel, 1], color="0.6", lw=2, label="true")
    ax[0].plot(t[sel], phase[sel], color="C0", lw=1, label="estimated")
    ax[0].set_ylabel("phase (stride)")
    ax[1].plot(t[sel], tel[sel, COLUMN["torque_cmd_Nm"]], color="C1", lw=1, label="commanded")
    ax[1].plot(t[sel], tel[sel, COLUMN["torque_Nm"]], color="C3", lw=1, ls="--", label="measured")
    ax[1].axhline(run.params["safety.max_torque_Nm"], color="k", lw=0.8, ls=":", label="limit")
    ax[1].set_ylabel("ankle torque (N*m, + plantar-flexor)")
    ax[2].plot(t[sel], power[sel] / mass, color="C2", lw=1)
    ax[2].axhline(0, color="k", lw=0.5)
    ax[2].set_ylabel("ankle power (W/kg)")
    ax[3].plot(t[sel], tel[sel, COLUMN["load"]], color="C4", lw=1)
    ax[3].set_ylabel("pylon load (N)")
    ax[3].set_xlabel("time (s)")
    for a in ax:
        a.grid(alpha=0.3)
    ax[0].legend(loc="upper right")
    ax[1].legend(loc="upper right")
    fig.suptitle(f"simulated walk: {mass:g} kg, last {min(strides, len(done))} strides")
    fig.tight_layout()
    fig.savefig(path, dpi=100, format=fmt)
    plt.close(fig)
