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

__all__ = ["LOG_COLUMNS", "write_log", "figure", "plot"]

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


def figure(run: SimRun, scenario: str = "", speed_m_s: Optional[float] = None):
    """Phase, torque, power and load over the whole run, as a matplotlib Figure (not saved).

    The title names the scenario, the speed, the wearer's mass and the run's length; commanded and
    measured torque are told apart by width, colour and style (a wide light line under a thin
    dashed dark one) and a legend, kept outside the panels.  RuntimeError without matplotlib."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise RuntimeError("--plot needs matplotlib: pip install 'ankle-controller[plot]'") from None
    tel, truth = run.telemetry, run.truth
    t = tel[:, COLUMN["t"]]
    mass = run.params["wearer.mass_kg"]
    power = -tel[:, COLUMN["torque_Nm"]] * np.gradient(tel[:, COLUMN["ankle_angle"]], t)
    phase = np.where(tel[:, COLUMN["phase"]] >= 0, tel[:, COLUMN["phase"]], np.nan)

    fig = Figure(figsize=(13, 9), layout="constrained")
    ax = fig.subplots(4, 1, sharex=True)
    ax[0].plot(t, truth[:, 1], color="0.6", lw=2, label="true")
    ax[0].plot(t, phase, color="C0", lw=1, label="estimated")
    ax[0].set_ylabel("phase (stride)")
    ax[1].plot(t, tel[:, COLUMN["torque_cmd_Nm"]], color="C1", lw=2.5, alpha=0.6, ls="-", label="commanded")
    ax[1].plot(t, tel[:, COLUMN["torque_Nm"]], color="k", lw=0.8, ls="--", label="measured")
    ax[1].axhline(run.params["safety.max_torque_Nm"], color="C3", lw=0.8, ls=":", label="limit")
    ax[1].set_ylabel("ankle torque (N*m, + plantar-flexor)")
    ax[2].plot(t, power / mass, color="C2", lw=1)
    ax[2].axhline(0, color="k", lw=0.5)
    ax[2].set_ylabel("ankle power (W/kg)")
    ax[3].plot(t, tel[:, COLUMN["load"]], color="C4", lw=1)
    ax[3].set_ylabel("pylon load (N)")
    ax[3].set_xlabel("time (s)")
    ax[3].set_xlim(t[0], t[-1])                # the whole run
    for a in ax:
        a.grid(alpha=0.3)
    for a in ax[:2]:                           # beside the panel: the legend hides no data
        a.legend(loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize="small")
    what = f"scenario {scenario}" if scenario else "simulated walk"
    speed = f", {speed_m_s:g} m/s" if speed_m_s is not None else ""
    fig.suptitle(f"{what}{speed}: {mass:g} kg, {t[-1] - t[0]:.0f} s, {len(run.strides)} strides "
                 f"(simulated)")
    return fig


def plot(run: SimRun, path: Path, fmt: Optional[str] = None, scenario: str = "",
         speed_m_s: Optional[float] = None) -> None:
    """The run's figure (:func:`figure`) written to ``path`` in ``fmt`` (a matplotlib format; None:
    from the suffix of ``path``)."""
    figure(run, scenario, speed_m_s).savefig(path, dpi=100, format=fmt)
