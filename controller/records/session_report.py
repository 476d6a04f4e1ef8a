"""``ankle report LOG.csv``: a session's gait symmetry and push-off, from its log, for the prosthetist.

Reads a session log (the device's, ``log start`` on the console, or ``ankle sim --log``), runs
:class:`controller.symmetry.strides.StrideAnalyzer` over it as if live, and gives

- a text summary: strides, stance-time and step-time symmetry (mean ± SD, first and last minute,
  trend), push-off work and peak power per stride, where the sound side's timing came from;
- a figure (``--out report.png``, matplotlib): stance-time SI over the session, push-off work per
  stride, and the ankle torque and power normalised to the stride (mean ± SD) beside the
  able-bodied reference (Winter 2009, the simulator's reference stride).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from controller.kernels._tick import TELEMETRY_COLUMNS
from controller.kernels.telemetry import COLUMN as _COL
from controller.records.csvlog import CsvError, read_columns
from controller.symmetry.strides import StrideAnalyzer, StrideSymmetry, trend

__all__ = ["REQUIRED_COLUMNS", "load_log", "analyse", "summary_text", "plot"]

#: What a log must have; every other telemetry column is optional (NaN when absent).
REQUIRED_COLUMNS = ("t", "load", "ankle_angle", "heel_strike", "toe_off", "walking", "torque_Nm")
PHASE_POINTS = 101
TREND_MIN_S = 30.0


def load_log(path: Path) -> np.ndarray:
    """The log's rows as telemetry (n x ``TELEMETRY_COLUMNS``); absent columns are NaN (faults 0).
    CsvError naming the problem for a missing file or column, or a bad cell."""
    header, cells, _ = read_columns(Path(path), REQUIRED_COLUMNS[:1])
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise CsvError(f"{path}: missing column(s) {', '.join(missing)}; a session log has them")
    n = len(cells)
    rows = np.full((n, len(TELEMETRY_COLUMNS)), np.nan)
    for j, name in enumerate(TELEMETRY_COLUMNS):
        if name not in header:
            continue
        i = header.index(name)
        for k, row in enumerate(cells):            # an empty cell is "no value" (NaN)
            text = row[i].strip()
            if text:
                try:
                    rows[k, j] = float(text)
                except ValueError:
                    raise CsvError(f"{path}: row {k + 2}, column {name}: {text!r} is not a number") from None
    # an empty event cell is "no event"
    for name in ("heel_strike", "toe_off", "walking", "faults"):
        j = _COL[name]
        rows[np.isnan(rows[:, j]), j] = 0.0
    if n < 2:
        raise CsvError(f"{path}: fewer than 2 rows: nothing to report")
    return rows


def analyse(rows: np.ndarray, mass_kg: float) -> Dict[str, object]:
    """Strides and the session's figures from telemetry ``rows``."""
    analyzer = StrideAnalyzer(mass_kg)
    strides: List[StrideSymmetry] = []
    for i in range(0, len(rows), 2000):                    # as it would arrive, in batches
        strides += analyzer.feed(rows[i:i + 2000])
    out: Dict[str, object] = {"strides": len(strides), "mass_kg": mass_kg,
                              "duration_s": float(rows[-1, _COL["t"]] - rows[0, _COL["t"]])}

    def stats(name: str, subset=None) -> Dict[str, float]:
        v = np.array([getattr(s, name) for s in (strides if subset is None else subset)], dtype=float)
        v = v[np.isfinite(v)]
        return {"mean": float(np.mean(v)) if len(v) else math.nan, "sd": float(np.std(v)) if len(v) else math.nan,
                "n": int(len(v))}

    for name in ("si_stance_pct", "si_step_pct", "pushoff_work_J_kg", "peak_power_W_kg", "peak_torque_Nm",
                 "stride_s", "stance_pct", "confidence"):
        out[name] = stats(name)
    if strides:
        t0, t1 = strides[0].t_heel_strike_s, strides[-1].t_heel_strike_s
        out["si_stance_first_minute"] = stats("si_stance_pct", [s for s in strides if s.t_heel_strike_s < t0 + 60])
        out["si_stance_last_minute"] = stats("si_stance_pct", [s for s in strides if s.t_heel_strike_s > t1 - 60])
        # a trend over less than half a minute of walking says little
        out["si_stance_trend_pct_per_min"] = trend([s.si_stance_pct for s in strides],
                                                   [s.t_heel_strike_s for s in strides]) \
            if t1 - t0 >= TREND_MIN_S else math.nan
        out["sound_sources"] = sorted({s.sound_source for s in strides})
        out["strides_with_faults"] = sum(1 for s in strides if s.faults)
    out["per_stride"] = [s.as_dict() for s in strides]
    out["_strides"] = strides
    return out


def summary_text(result: Dict[str, object], source: str) -> str:
    """The report in words and units."""
    def ms(d: Dict[str, float], spec: str, unit: str) -> str:
        if not d["n"]:
            return "--"
        return f"{d['mean']:{spec}} ± {d['sd']:{spec[1:] if spec.startswith('+') else spec}} {unit} (n {d['n']})"

    n = result["strides"]
    lines = [f"session {source}: {result['duration_s']:.0f} s, {n} whole walking strides, body mass "
             f"{result['mass_kg']:g} kg"]
    if not n:
        lines.append("no whole walking stride: nothing to report on symmetry")
        return "\n".join(lines)
    lines += [
        f"stance-time SI   {ms(result['si_stance_pct'], '+.1f', '%')}  (- = prosthetic stance shorter)",
        f"  first minute   {ms(result['si_stance_first_minute'], '+.1f', '%')}; last minute "
        f"{ms(result['si_stance_last_minute'], '+.1f', '%')}; trend "
        + (f"{result['si_stance_trend_pct_per_min']:+.2f} % per minute"
           if math.isfinite(result["si_stance_trend_pct_per_min"]) else "-- (under 30 s of walking)"),
        f"step-time SI     {ms(result['si_step_pct'], '+.1f', '%')}",
        f"stride           {ms(result['stride_s'], '.3f', 's')}; prosthetic stance {ms(result['stance_pct'], '.1f', '%')}",
        f"push-off work    {ms(result['pushoff_work_J_kg'], '+.3f', 'J/kg')} per stride",
        f"peak power       {ms(result['peak_power_W_kg'], '.2f', 'W/kg')}; peak torque "
        f"{ms(result['peak_torque_Nm'], '.0f', 'N*m')}",
        f"sound side from  the {' and '.join(result['sound_sources'])}"
        + (f" (confidence {result['confidence']['mean']:.2f} on average)" if "load profile" in result["sound_sources"]
           else ""),
        f"strides with a fault: {result['strides_with_faults']}",
    ]
    return "\n".join(lines)


def _phase_curves(rows: np.ndarray, strides: List[StrideSymmetry], mass_kg: float):
    """Torque [N*m/kg] and power [W/kg] of each stride on PHASE_POINTS phases (rows: strides)."""
    t, torque, angle = rows[:, _COL["t"]], rows[:, _COL["torque_Nm"]], rows[:, _COL["ankle_angle"]]
    power = -torque * np.gradient(angle, t)
    phases = np.linspace(0.0, 1.0, PHASE_POINTS)
    torques, powers = [], []
    for s in strides:
        at = s.t_heel_strike_s + phases * s.stride_s
        torques.append(np.interp(at, t, torque) / mass_kg)
        powers.append(np.interp(at, t, power) / mass_kg)
    return phases, np.array(torques), np.array(powers)


def plot(rows: np.ndarray, result: Dict[str, object], path: Path, title: str = "", fmt: Optional[str] = None) -> None:
    """The four-panel report figure as a PNG."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise RuntimeError("--out needs matplotlib: pip install 'ankle-controller[plot]'") from None
    from sim import reference
    strides: List[StrideSymmetry] = result["_strides"]
    mass = float(result["mass_kg"])
    fig, ax = plt.subplots(2, 2, figsize=(12, 8))
    t = [s.t_heel_strike_s for s in strides]
    ax[0, 0].plot(t, [s.si_stance_pct for s in strides], ".-", label="stance time")
    ax[0, 0].plot(t, [s.si_step_pct for s in strides], ".", alpha=0.5, label="step time")
    ax[0, 0].axhline(0.0, color="k", lw=0.8)
    ax[0, 0].set(xlabel="time [s]", ylabel="symmetry index [%]", title="symmetry per stride (- = prosthetic shorter)")
    ax[0, 0].legend()
    ax[0, 1].plot(t, [s.pushoff_work_J_kg for s in strides], ".-")
    ax[0, 1].set(xlabel="time [s]", ylabel="net stance work [J/kg]", title="push-off work per stride")
    ref = reference.load_reference()
    if strides:
        phases, torques, powers = _phase_curves(rows, strides, mass)
        for a, curves, ref_curve, label in ((ax[1, 0], torques, ref.ankle_moment_Nm_kg, "torque [N*m/kg]"),
                                            (ax[1, 1], powers, ref.ankle_power_W_kg, "power [W/kg]")):
            mean, sd = np.nanmean(curves, axis=0), np.nanstd(curves, axis=0)
            a.fill_between(100 * phases, mean - sd, mean + sd, alpha=0.3, label="this session, mean ± SD")
            a.plot(100 * phases, mean)
            a.plot(100 * np.asarray(ref.phase), ref_curve, "k--", label="able-bodied reference (Winter 2009)")
            a.set(xlabel="stride [% from prosthetic heel strike]", ylabel=label)
            a.legend()
        ax[1, 0].set_title("ankle torque (+ plantar-flexor)")
        ax[1, 1].set_title("ankle power (+ generated)")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100, format=fmt)
    plt.close(fig)


def report(path: Path, mass_kg: float, out: Optional[Path] = None, fmt: Optional[str] = None) -> Dict[str, object]:
    """Load, analyse and (with ``out``) plot in ``fmt`` (None: from the suffix); returns the
    figures (JSON-ready but for ``_strides``)."""
    rows = load_log(path)
    result = analyse(rows, mass_kg)
    if out is not None:
        plot(rows, result, out, title=f"{Path(path).name}: {result['strides']} strides", fmt=fmt)
        result["plot"] = str(out)
    return result
