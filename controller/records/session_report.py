"""``ankle report LOG.csv``: a session's gait symmetry and push-off, from its log, for the prosthetist.

Reads a session log (the device's, ``log start`` on the console, or ``ankle sim --log``), runs
:class:`controller.symmetry.strides.StrideAnalyzer` over it as if live, and gives

- a text summary: strides, stance-time and step-time symmetry (mean ± SD, first and last minute
  -- first and second half for a session under two minutes -- and trend), push-off work and peak
  power per stride, where the sound side's timing came from, and the parameter changes (from the
  audit log) and faults (from the log's ``faults`` word) with their times;
- a figure (``--out report.png``, matplotlib; :func:`figure` builds it): stance-time SI over the
  session with its target (0 %), push-off work per stride with its target, both with the changes
  and faults marked where they happened, and the ankle torque and power normalised to the
  stride (mean ± SD) beside the able-bodied reference (Winter 2009, the simulator's reference
  stride).  Every legend is outside its panel's data area.
"""
from __future__ import annotations

import contextlib
import math
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from controller.kernels._tick import TELEMETRY_COLUMNS
from controller.kernels.faults import fault_names
from controller.kernels.telemetry import COLUMN as _COL
from controller.params.registry import ParamError, ParamSet
from controller.records.csvlog import BLOCK_ROWS, CsvError
from controller.records.inputs import open_input
from controller.symmetry.strides import StrideAnalyzer, StrideSymmetry, trend

__all__ = ["REQUIRED_COLUMNS", "load_log", "iter_log_blocks", "StreamAnalysis", "analyse", "summary_text", "figure", "plot", "report", "compare_windows",
           "fault_onsets", "audit_events", "default_audit_path", "SessionEvents"]

#: What a log must have; every other telemetry column is optional (NaN when absent).
REQUIRED_COLUMNS = ("t", "load", "ankle_angle", "heel_strike", "toe_off", "walking", "torque_Nm")
PHASE_POINTS = 101
TREND_MIN_S = 30.0
#: The first-against-last comparison's window [s]; a session under twice this is split in halves.
COMPARE_WINDOW_S = 60.0
#: The speed the work target is given at (``pushoff.work_J_kg``) [m/s]: the push-off kernel's.
REF_SPEED_M_S = 1.25
#: Rows per batch fed to the stride analyser (as the report always fed it: the strides found do
#: not depend on how the log is read).
ANALYSER_BATCH = 2000


def iter_log_blocks(path: Path, rows: int = BLOCK_ROWS, torn: Optional[List[str]] = None) -> Iterator[np.ndarray]:
    """The log's rows as telemetry (n x ``TELEMETRY_COLUMNS``), a block of ``rows`` at a time
    (memory bounded whatever the log's length); absent columns are NaN, an empty event or
    ``faults`` cell 0.  A CSV log or an MCAP session record, by suffix
    (:func:`controller.records.inputs.open_input`).  CsvError naming the problem for a missing
    file or column, or a bad cell; "fewer than 2 rows" once the end shows there were."""
    source = open_input(path)
    if source.kind == "csv":
        optional = [c for c in TELEMETRY_COLUMNS if c != "t"]
        blocks = source.iter_blocks(REQUIRED_COLUMNS[:1], rows, optional=optional, torn=torn)
    else:
        blocks = source.iter_blocks(REQUIRED_COLUMNS[:1], rows, optional=TELEMETRY_COLUMNS[1:], torn=torn)
    n = 0
    for block in blocks:
        if n == 0:
            missing = [c for c in REQUIRED_COLUMNS if c not in block.header]
            if missing:
                raise CsvError(f"{path}: missing column(s) {', '.join(missing)}; a session log has them")
        out = np.empty((len(block), len(TELEMETRY_COLUMNS)))
        for j, name in enumerate(TELEMETRY_COLUMNS):
            out[:, j] = block.values[name]
        # an empty event cell is "no event"
        for name in ("heel_strike", "toe_off", "walking", "faults"):
            j = _COL[name]
            out[np.isnan(out[:, j]), j] = 0.0
        n += len(out)
        yield out
    if n < 2:
        raise CsvError(f"{path}: fewer than 2 rows: nothing to report")


def load_log(path: Path) -> np.ndarray:
    """The log's rows as telemetry (n x ``TELEMETRY_COLUMNS``), whole: :func:`iter_log_blocks`
    gathered (for a short log; the report itself streams)."""
    return np.concatenate(list(iter_log_blocks(path)))


class StreamAnalysis:
    """The report's figures accumulated block by block (:meth:`feed`), memory bounded whatever
    the session's length but for one small record per stride; :meth:`finish` gives what
    :func:`analyse` gives.

    The rows go to the :class:`StrideAnalyzer` in batches of :data:`ANALYSER_BATCH` counted
    from the first row, whatever the blocks, as ``analyse`` always fed it, so the strides are
    the same.  What is needed of the rows beyond the strides is taken as each stride comes out:
    the mean speed over it (its work target) from the analyser's own window (every row it
    analysed the stride on is still there), the torque and power curves (``curves``: for the
    figure; mean and SD accumulated per phase point, Welford), the fault onsets (the word of
    the row before carried across blocks)."""

    def __init__(self, mass_kg: float, curves: bool = False):
        self.mass_kg = mass_kg
        self.analyzer = StrideAnalyzer(mass_kg)
        self.strides: List[StrideSymmetry] = []
        self.speeds: List[float] = []
        self.faults: List[Dict[str, object]] = []
        self.rows = 0
        self.t_start_s = self.t_end_s = math.nan
        self._held = np.empty((0, len(TELEMETRY_COLUMNS)))
        self._word = 0
        self._curves = curves
        self._count = np.zeros((2, PHASE_POINTS))
        self._mean = np.zeros((2, PHASE_POINTS))
        self._m2 = np.zeros((2, PHASE_POINTS))

    def feed(self, rows: np.ndarray) -> None:
        """Take the next telemetry rows (n x ``TELEMETRY_COLUMNS``, in time order)."""
        if not len(rows):
            return
        if self.rows == 0:
            self.t_start_s = float(rows[0, _COL["t"]])
        self.t_end_s = float(rows[-1, _COL["t"]])
        self.rows += len(rows)
        self.faults += fault_onsets(rows, self._word)
        self._word = int(np.nan_to_num(rows[-1, _COL["faults"]]))
        if len(self._held):
            rows = np.concatenate([self._held, rows])
        whole = len(rows) - len(rows) % ANALYSER_BATCH
        for i in range(0, whole, ANALYSER_BATCH):
            self._batch(rows[i:i + ANALYSER_BATCH])
        self._held = rows[whole:].copy()

    def _batch(self, batch: np.ndarray) -> None:
        before = self.analyzer._rows          # what the analyser holds: the strides it finds are in it and the batch
        window = np.concatenate([before, batch]) if len(before) else batch
        found = self.analyzer.feed(batch)
        if not found:
            return
        t, speed = window[:, _COL["t"]], window[:, _COL["speed_m_s"]]
        for st in found:
            inside = (t >= st.t_heel_strike_s) & (t < st.t_heel_strike_s + st.stride_s) & np.isfinite(speed)
            self.speeds.append(float(np.mean(speed[inside])) if inside.any() else REF_SPEED_M_S)
        if self._curves:
            _, torques, powers = _phase_curves(window, found, self.mass_kg)
            for k, curves in enumerate((torques, powers)):
                for c in curves:                    # Welford, per phase point, NaN skipped
                    ok = np.isfinite(c)
                    self._count[k, ok] += 1
                    d = c[ok] - self._mean[k, ok]
                    self._mean[k, ok] += d / self._count[k, ok]
                    self._m2[k, ok] += d * (c[ok] - self._mean[k, ok])
        self.strides += found

    def curves(self) -> Dict[str, np.ndarray]:
        """The torque [N*m/kg] and power [W/kg] over the stride: mean and SD per phase point."""
        with np.errstate(invalid="ignore", divide="ignore"):
            sd = np.sqrt(self._m2 / self._count)
        mean = np.where(self._count > 0, self._mean, np.nan)
        return {"phase": np.linspace(0.0, 1.0, PHASE_POINTS), "torque_mean": mean[0], "torque_sd": sd[0],
                "power_mean": mean[1], "power_sd": sd[1]}

    def finish(self, events: Optional["SessionEvents"] = None,
               work_target_J_kg: Optional[float] = None) -> Dict[str, object]:
        """The session's figures, as :func:`analyse` (the last rows fed first)."""
        if len(self._held):
            self._batch(self._held)
            self._held = self._held[:0]
        return _result(self, events, work_target_J_kg)


def analyse(rows: np.ndarray, mass_kg: float, events: Optional["SessionEvents"] = None,
            work_target_J_kg: Optional[float] = None) -> Dict[str, object]:
    """Strides and the session's figures from telemetry ``rows``.

    ``events``: the parameter changes recorded while the log ran (:func:`audit_events`); the
    faults are read from the log's ``faults`` column.  ``work_target_J_kg``: the push-off work
    target to show; None: each stride's target from the parameters in force then (the audit log's
    changes over its saved or default set) at the controller's speed estimate.
    :class:`StreamAnalysis` over the rows at once (the report streams them)."""
    analysis = StreamAnalysis(mass_kg)
    analysis.feed(np.asarray(rows, dtype=float))
    return analysis.finish(events, work_target_J_kg)


def _result(a: StreamAnalysis, events: Optional["SessionEvents"], work_target_J_kg: Optional[float]):
    strides = a.strides
    mass_kg = a.mass_kg
    events = events if events is not None else SessionEvents()
    out: Dict[str, object] = {"strides": len(strides), "mass_kg": mass_kg,
                              "duration_s": float(a.t_end_s - a.t_start_s),
                              "t_start_s": a.t_start_s, "t_end_s": a.t_end_s}
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
        out["windows"] = windows = compare_windows(t0, t1)
        first, last = windows["first"], windows["last"]
        out["si_stance_first"] = stats("si_stance_pct", [s for s in strides
                                                         if first["t0_s"] <= s.t_heel_strike_s < first["t1_s"]])
        out["si_stance_last"] = stats("si_stance_pct", [s for s in strides
                                                        if last["t0_s"] <= s.t_heel_strike_s <= last["t1_s"]])
        # a trend over less than half a minute of walking says little
        out["si_stance_trend_pct_per_min"] = trend([s.si_stance_pct for s in strides],
                                                   [s.t_heel_strike_s for s in strides]) \
            if t1 - t0 >= TREND_MIN_S else math.nan
        out["sound_sources"] = sorted({s.sound_source for s in strides})
        out["strides_with_faults"] = sum(1 for s in strides if s.faults)
    out["work_target_J_kg"] = _work_targets(strides, a.speeds, events, work_target_J_kg)
    out["work_target_source"] = ("as given (--work-target)" if work_target_J_kg is not None
                                 else events.params_source)
    out["changes"] = events.changes
    out["audit"] = {"path": events.path, "note": events.note}
    out["faults"] = a.faults
    out["per_stride"] = [s.as_dict() for s in strides]
    out["_strides"] = strides
    return out


def compare_windows(t0_s: float, t1_s: float) -> Dict[str, Dict[str, object]]:
    """The two windows of the first-against-last comparison, which never overlap: the first and
    the last minute of walking from heel strike ``t0_s`` to heel strike ``t1_s``, or, when that is
    under two minutes (two minutes would overlap), its first and second half, and said so."""
    if t1_s - t0_s >= 2 * COMPARE_WINDOW_S:
        return {"halves": False,
                "first": {"label": "first minute", "t0_s": t0_s, "t1_s": t0_s + COMPARE_WINDOW_S},
                "last": {"label": "last minute", "t0_s": t1_s - COMPARE_WINDOW_S, "t1_s": t1_s}}
    mid = 0.5 * (t0_s + t1_s)
    return {"halves": True,
            "first": {"label": "first half", "t0_s": t0_s, "t1_s": mid},
            "last": {"label": "second half", "t0_s": mid, "t1_s": t1_s}}


def fault_onsets(rows: np.ndarray, word_before: int = 0) -> List[Dict[str, object]]:
    """Where each fault began in the log's ``faults`` word: ``{"t_s", "names"}``, one per row where
    a bit went from clear to set (a latched fault is reported once, not on every row).
    ``word_before``: the word of the row before the first (streaming: the last block's last)."""
    t = rows[:, _COL["t"]]
    word = np.nan_to_num(rows[:, _COL["faults"]]).astype(np.int64)
    before = np.concatenate(([word_before], word[:-1]))
    new = word & ~before
    return [{"t_s": float(t[i]), "names": fault_names(int(new[i]))} for i in np.flatnonzero(new)]


def _work_targets(strides: List[StrideSymmetry], speeds: Sequence[float], events: "SessionEvents",
                  given: Optional[float]) -> List[float]:
    """Each stride's push-off work target [J/kg]: ``given``, or the controller's (the reference
    at 1.25 m/s plus the slope per m/s, the parameters in force at the stride's heel strike,
    at ``speeds``: the mean of the log's ``speed_m_s`` over each stride, 1.25 m/s where it has
    none, taken by :class:`StreamAnalysis`)."""
    if given is not None:
        return [float(given)] * len(strides)
    targets = []
    for s, v in zip(strides, speeds):
        p = events.params_at(s.t_heel_strike_s)
        targets.append(p["pushoff.work_J_kg"] + p["pushoff.work_slope_J_s_kg_m"] * (v - REF_SPEED_M_S))
    return targets


class SessionEvents:
    """The audit log's records placed on a session log's time axis, and the parameter values in
    force over it (for the targets).

    ``changes``: ``{"t_s", "time_utc", "role", "action", "parameter", "old", "new", "made", "label"}``
    for each record made while the log ran (``made`` False for a change the controller refused);
    ``note``: why there are none, if the audit log could not be placed; ``params_source``: where
    the parameter values in force came from.
    """

    def __init__(self, changes: Sequence[Dict[str, object]] = (), base: Optional[ParamSet] = None,
                 path: Optional[str] = None, note: str = "", params_source: str = "the parameter defaults"):
        self.changes = list(changes)
        self.base = base if base is not None else ParamSet()
        self.path, self.note, self.params_source = path, note, params_source

    def params_at(self, t_s: float) -> ParamSet:
        """The parameter set in force at log time ``t_s``: the base set and every change made by then."""
        params = self.base
        for c in self.changes:
            if c["made"] and c["t_s"] <= t_s and c["parameter"] in _NAMES:
                # one by one: a value the registry refuses (edited by hand) leaves the others standing
                with contextlib.suppress(ValueError, ParamError):
                    params = params.with_values({c["parameter"]: float(c["new"])})
        return params


#: The registry's parameter names (``name in ParamSet()`` raises for an unknown name).
_NAMES = frozenset(ParamSet())
#: Console and adaptation records that are no change of the ankle's (not marked on the plot).
_NOT_CHANGES = ("log start", "log stop", "login", "logout", "save", "profile save")
_OUTCOMES = (" refused", " pending")


def _utc(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc).timestamp()


DEFAULTS = "the parameter defaults"


def saved_params(folder: Path) -> Tuple[ParamSet, str]:
    """The parameter set saved in ``folder`` (its ``ankle.params``, as the console saves it) and
    where it came from; the defaults if there is none or it cannot be read."""
    from controller.params import store as paramstore
    saved = Path(folder) / "ankle.params"
    if saved.is_file():
        with contextlib.suppress(OSError, ValueError):
            loaded = paramstore.load(saved)
            if loaded.source != "defaults":
                return loaded.params, str(saved)
    return ParamSet(), DEFAULTS


def default_audit_path(log_path: Path) -> Optional[Path]:
    """The audit log of a session log: ``audit.log`` beside it, or in the folder above (the
    console's state directory keeps ``audit.log`` and ``logs/``); None if neither exists."""
    log_path = Path(log_path).absolute()
    for folder in (log_path.parent, log_path.parent.parent):
        if (folder / "audit.log").is_file():
            return folder / "audit.log"
    return None


def audit_events(audit_path: Path, log_path: Path, duration_s: float, t_start_s: float = 0.0) -> SessionEvents:
    """The records of ``audit_path`` made while ``log_path`` ran, on the log's time axis.

    The audit log's times are UTC; the session log's ``t`` is the controller's.  The console
    records ``log start`` (with the log's path) just before it creates the file, so that record is
    the log's first row (``t_start_s``); a log with no such record (an ``ankle sim --log``) cannot
    be placed and gives no changes, with a note saying why.  AuditError for a file that is not an
    audit log."""
    from controller.console import audit
    problems: List[str] = []
    records = audit.read(audit_path, problems=problems)
    base, source = saved_params(Path(audit_path).parent)
    name = Path(log_path).name
    starts = [r for r in records if r["action"] == "log start" and Path(r["detail"]).name == name]
    if not starts:
        return SessionEvents(base=base, path=str(audit_path), params_source=source,
                             note=f"{audit_path} has no 'log start' of {name}: its changes cannot be placed "
                                  f"on this log's time")
    source += " and the audit log's changes"
    anchor = _utc(starts[-1]["time_utc"])
    end = anchor + duration_s
    for r in records:
        if r["action"] == "log stop" and Path(r["detail"]).name == name and _utc(r["time_utc"]) >= anchor:
            end = _utc(r["time_utc"])
            break
    # the refusals, by what they refused: a change is refused by one recorded at or after it
    refusals: Dict[Tuple[str, str, str, str], List[float]] = {}
    for o in records:
        if o["action"].endswith(" refused"):
            key = (o["action"][:-len(" refused")], o["parameter"], o["old"], o["new"])
            refusals.setdefault(key, []).append(_utc(o["time_utc"]))
    changes: List[Dict[str, object]] = []
    for r in records:
        when = _utc(r["time_utc"])
        action = r["action"]
        if action in _NOT_CHANGES or action.endswith(_OUTCOMES):
            continue
        refused = any(t >= when for t in refusals.get((action, r["parameter"], r["old"], r["new"]), ()))
        if when < anchor:
            if not refused and r["parameter"] in _NAMES:       # in force when the log started
                try:
                    base = base.with_values({r["parameter"]: float(r["new"])})
                except (ValueError, ParamError):   # a record the registry would refuse was never in force:
                    pass                           # the values before it stand
            continue
        if when > end:
            continue
        what = (f"{r['parameter']} {r['old']} -> {r['new']}" if r["parameter"]
                else f"{action} {r['detail'] or r['new']}".strip())
        changes.append({"t_s": t_start_s + when - anchor, "time_utc": r["time_utc"], "role": r["role"],
                        "action": action, "parameter": r["parameter"], "old": r["old"], "new": r["new"],
                        "made": not refused,
                        "label": f"{what} ({r['role']}{', refused' if refused else ''})"})
    return SessionEvents(changes, base, str(audit_path), "; ".join(problems), source)


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
        return "\n".join(lines + _event_lines(result))
    windows = result["windows"]
    first, last = windows["first"], windows["last"]
    targets = [x for x in result["work_target_J_kg"] if math.isfinite(x)]
    lines += [
        f"stance-time SI   {ms(result['si_stance_pct'], '+.1f', '%')}  (- = prosthetic stance shorter)",
        f"  {first['label']:<14} {ms(result['si_stance_first'], '+.1f', '%')}; {last['label']} "
        f"{ms(result['si_stance_last'], '+.1f', '%')}; trend "
        + (f"{result['si_stance_trend_pct_per_min']:+.2f} % per minute"
           if math.isfinite(result["si_stance_trend_pct_per_min"]) else "-- (under 30 s of walking)"),
    ] + (["                 (under two minutes of walking: its halves, not its first and last minute)"]
         if windows["halves"] else []) + [
        f"step-time SI     {ms(result['si_step_pct'], '+.1f', '%')}",
        f"stride           {ms(result['stride_s'], '.3f', 's')}; prosthetic stance {ms(result['stance_pct'], '.1f', '%')}",
        f"push-off work    {ms(result['pushoff_work_J_kg'], '+.3f', 'J/kg')} per stride; target "
        + (f"{min(targets):+.3f}" + (f" .. {max(targets):+.3f}" if max(targets) - min(targets) >= 5e-4 else "")
           + f" J/kg ({result['work_target_source']})" if targets else "--"),
        f"peak power       {ms(result['peak_power_W_kg'], '.2f', 'W/kg')}; peak torque "
        f"{ms(result['peak_torque_Nm'], '.0f', 'N*m')}",
        f"sound side from  the {' and '.join(result['sound_sources'])}"
        + (f" (confidence {result['confidence']['mean']:.2f} on average)" if "load profile" in result["sound_sources"]
           else ""),
        f"strides with a fault: {result['strides_with_faults']}",
    ]
    return "\n".join(lines + _event_lines(result))


def _event_lines(result: Dict[str, object]) -> List[str]:
    """The changes and faults, with their times on the log's axis (its ``t``, as the figure)."""
    t0 = 0.0
    audit = result["audit"]
    lines = []
    if audit["path"] is None:
        lines.append("changes          -- (no audit log: --audit FILE)")
    elif not result["changes"]:
        lines.append(f"changes          none recorded during the session ({audit['path']})"
                     if not audit["note"] else f"changes          -- ({audit['note']})")
    else:
        lines.append(f"changes          {len(result['changes'])} ({audit['path']})")
        lines += [f"  {c['t_s'] - t0:8.1f} s  {c['time_utc']}  {c['label']}" for c in result["changes"]]
        if audit["note"]:
            lines.append(f"  note: {audit['note']}")
    if not result["faults"]:
        lines.append("faults           none")
    else:
        lines.append(f"faults           {len(result['faults'])} onset(s)")
        lines += [f"  {f['t_s'] - t0:8.1f} s  {', '.join(f['names'])}" for f in result["faults"]]
    return lines


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


#: Legend entries of markers shown at most per panel (the text summary lists every one).
MAX_MARKER_LABELS = 10


def _legend_below(ax, ncol: int = 2) -> None:
    """The panel's legend below its axes, so it hides no data."""
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=ncol, fontsize="small", frameon=False)


def _mark_events(ax, result: Dict[str, object]) -> None:
    """Vertical lines where each change (dash-dot, blue; refused: dotted, grey) and each fault
    (solid, red) happened,
    tagged C1.. / F1.. above the axes and named in full in the legend."""
    from matplotlib.transforms import blended_transform_factory
    above = blended_transform_factory(ax.transData, ax.transAxes)
    # a change the controller refused changed nothing: grey and dotted, beside the blue ones made
    marks = [(f"C{i + 1}", c["t_s"], c["label"],
              dict(color="C0", ls="-.", lw=1.0) if c["made"] else dict(color="0.5", ls=":", lw=1.0))
             for i, c in enumerate(result["changes"])]
    marks += [(f"F{i + 1}", f["t_s"], "fault: " + ", ".join(f["names"]), dict(color="C3", ls="-", lw=1.2))
              for i, f in enumerate(result["faults"])]
    for k, (tag, t, label, style) in enumerate(marks):
        shown = k < MAX_MARKER_LABELS
        ax.axvline(t, alpha=0.8, label=f"{tag} {t:.1f} s: {label}" if shown else "_" + label, **style)
        ax.text(t, 1.0, tag, transform=above, fontsize="x-small", ha="center", va="bottom", color=style["color"],
                clip_on=False)
    if len(marks) > MAX_MARKER_LABELS:
        ax.plot([], [], " ", label=f"... {len(marks) - MAX_MARKER_LABELS} more in the text summary")


#: Pixel columns of a time panel (a 13-inch figure at 100 dpi, two panels a row): above twice
#: as many strides, a panel shows each column's min..max instead of every stride.
ENVELOPE_COLUMNS = 500


def envelope(x: Sequence[float], y: Sequence[float], columns: int = ENVELOPE_COLUMNS):
    """``y`` over ``x`` reduced to ``columns`` equal spans of ``x``: for each span with data, its
    minimum and its maximum (NaN skipped), at the span's middle, as a line drawn down and up
    each column (x repeated twice).  What a plot of every point would show at that width."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if not len(x):
        return np.empty(0), np.empty(0)
    lo, hi = float(x.min()), float(x.max())
    k = np.minimum(((x - lo) / ((hi - lo) or 1.0) * columns).astype(np.int64), columns - 1)
    order = np.argsort(k, kind="stable")
    k, y = k[order], y[order]
    starts = np.flatnonzero(np.r_[True, k[1:] != k[:-1]])
    ymin, ymax = np.minimum.reduceat(y, starts), np.maximum.reduceat(y, starts)
    mid = lo + (k[starts] + 0.5) * (hi - lo) / columns
    return np.repeat(mid, 2), np.column_stack([ymin, ymax]).ravel()


def _series(ax, x, y, decimate: bool, style: str, **kw) -> None:
    """One per-stride series: every point, or (``decimate``) its min..max envelope."""
    if decimate:
        ex, ey = envelope(x, y)
        ax.plot(ex, ey, "-" if "-" in style else ",", lw=kw.pop("lw", 0.8), **kw)
    else:
        ax.plot(x, y, style, **kw)


def figure(rows: Optional[np.ndarray], result: Dict[str, object], title: str = ""):
    """The four-panel report as a matplotlib Figure (not drawn, not saved): stance-time and
    step-time SI per stride with the target (0 %) and the two compared windows, push-off work per
    stride from 0 J/kg with its target, both with the changes and faults marked; the ankle torque
    and power over the stride beside the able-bodied reference.  ``rows``: the telemetry the
    torque and power curves come from; None: ``result["_curves"]`` (the streamed report's mean and
    SD).  RuntimeError without matplotlib."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise RuntimeError("--out needs matplotlib: pip install 'ankle-controller[plot]'") from None
    from sim import reference
    strides: List[StrideSymmetry] = result["_strides"]
    mass = float(result["mass_kg"])
    fig = Figure(figsize=(13, 10), layout="constrained")
    ax = fig.subplots(2, 2)
    t = [s.t_heel_strike_s for s in strides]
    si_ax, work_ax = ax[0, 0], ax[0, 1]
    # a long session has more strides than the panel has pixel columns: each column's min..max
    many = len(strides) > 2 * ENVELOPE_COLUMNS
    _series(si_ax, t, [s.si_stance_pct for s in strides], many, ".-", color="C1", label="stance time")
    _series(si_ax, t, [s.si_step_pct for s in strides], many, ".", color="C2", alpha=0.5, label="step time")
    si_ax.axhline(0.0, color="k", lw=1.0, ls="--", label="target 0 % (symmetric)")
    if strides:
        for key, shade in (("first", "0.85"), ("last", "0.7")):
            w = result["windows"][key]
            si_ax.axvspan(w["t0_s"], w["t1_s"], color=shade, alpha=0.35, lw=0,
                          label=f"{w['label']}: {result['si_stance_' + key]['mean']:+.1f} % mean stance SI")
    si_ax.set(xlabel="time in the log [s]", ylabel="symmetry index [%]")
    # room above the axes for the markers' tags
    si_ax.set_title("symmetry per stride (- = prosthetic shorter)", pad=14)
    work = [s.pushoff_work_J_kg for s in strides]
    _series(work_ax, t, work, many, ".-", color="C1", label="push-off work (net over stance)")
    targets = result["work_target_J_kg"]
    if strides and many:
        _series(work_ax, t, targets, True, "--", color="k", lw=1.0,
                label=f"work target ({result['work_target_source']})")
    elif strides:
        # each stride's target held over the stride, the last one to its end
        work_ax.step(t + [t[-1] + strides[-1].stride_s], list(targets) + [targets[-1]], where="post", color="k",
                     lw=1.0, ls="--", label=f"work target ({result['work_target_source']})")
    for a in (si_ax, work_ax):
        _mark_events(a, result)
    finite = [x for x in list(work) + list(targets) if math.isfinite(x)]
    top = max(finite) if finite else 0.3
    # the work axis starts at zero (negative work, if any, stays in view)
    work_ax.set_ylim(min(0.0, min(finite)) if finite else 0.0, max(top * 1.15, 0.05))
    work_ax.set(xlabel="time in the log [s]", ylabel="net stance work [J/kg]")
    work_ax.set_title("push-off work per stride", pad=14)
    _legend_below(si_ax)
    _legend_below(work_ax, ncol=1)
    if strides:                          # the whole log on both time axes
        for a in (si_ax, work_ax):
            a.set_xlim(result["t_start_s"], result["t_end_s"])
    ref = reference.load_reference()
    if strides:
        if rows is not None:
            phases, torques, powers = _phase_curves(rows, strides, mass)
            with np.errstate(invalid="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)      # a phase point NaN in every stride
                stats = {"torque": (np.nanmean(torques, axis=0), np.nanstd(torques, axis=0)),
                         "power": (np.nanmean(powers, axis=0), np.nanstd(powers, axis=0))}
        else:                            # streamed: the mean and SD accumulated per phase point
            c = result["_curves"]
            phases = c["phase"]
            stats = {"torque": (c["torque_mean"], c["torque_sd"]), "power": (c["power_mean"], c["power_sd"])}
        for a, key, ref_curve, label in ((ax[1, 0], "torque", ref.ankle_moment_Nm_kg, "torque [N*m/kg]"),
                                         (ax[1, 1], "power", ref.ankle_power_W_kg, "power [W/kg]")):
            mean, sd = stats[key]
            a.fill_between(100 * phases, mean - sd, mean + sd, alpha=0.3, label="this session, mean ± SD")
            a.plot(100 * phases, mean)
            a.plot(100 * np.asarray(ref.phase), ref_curve, "k--", label="able-bodied reference (Winter 2009)")
            a.set(xlabel="stride [% from prosthetic heel strike]", ylabel=label)
            _legend_below(a)
        ax[1, 0].set_title("ankle torque (+ plantar-flexor)")
        ax[1, 1].set_title("ankle power (+ generated)")
    fig.suptitle(title)
    return fig


def plot(rows: Optional[np.ndarray], result: Dict[str, object], path: Path, title: str = "",
         fmt: Optional[str] = None) -> None:
    """The report figure (:func:`figure`) written to ``path`` in ``fmt`` (None: from the suffix)."""
    figure(rows, result, title).savefig(path, dpi=100, format=fmt)


def report(path: Path, mass_kg: float, out: Optional[Path] = None, fmt: Optional[str] = None,
           audit: Optional[Path] = None, work_target_J_kg: Optional[float] = None,
           rows: int = BLOCK_ROWS) -> Dict[str, object]:
    """Read (streamed, ``rows`` at a time), analyse and (with ``out``) plot in ``fmt`` (None: from
    the suffix); returns the figures (JSON-ready but for ``_strides`` and ``_curves``).
    ``audit``: the audit log whose changes to mark (None: :func:`default_audit_path`);
    ``work_target_J_kg``: the work target to show (None: from the parameters in force).  ``path``:
    a CSV log or an MCAP session record.  CsvError / AuditError name a file that cannot be used."""
    analysis = StreamAnalysis(mass_kg, curves=out is not None)
    torn: List[str] = []
    for block in iter_log_blocks(path, rows, torn=torn):
        analysis.feed(block)
    if audit is None:
        audit = default_audit_path(path)
    if audit is None:                    # no changes known: the saved set beside it, or the defaults
        folder = Path(path).absolute().parent
        base, source = saved_params(folder)
        if source == DEFAULTS and folder.name == "logs":
            base, source = saved_params(folder.parent)
        events = SessionEvents(base=base, params_source=source)
    else:
        events = audit_events(audit, path, float(analysis.t_end_s - analysis.t_start_s), analysis.t_start_s)
    result = analysis.finish(events, work_target_J_kg)
    result["_curves"] = analysis.curves()
    if out is not None:
        plot(None, result, out, title=f"{Path(path).name}: {result['strides']} strides", fmt=fmt)
        result["plot"] = str(out)
    return result
