"""The figures a clinician takes away (issue 17): `ankle report`'s and `ankle sim --plot`'s content,
checked on the matplotlib artists (not on pixels)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

pytest.importorskip("matplotlib")


from controller.console.audit import AuditLog                          # noqa: E402
from controller.kernels.faults import fault_bit                        # noqa: E402
from controller.kernels.telemetry import COLUMN                        # noqa: E402
from controller.records import session_report as sr                    # noqa: E402
from sim import harness                                                # noqa: E402
from sim import report as sim_report                                   # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
LOG_START_UTC = 1_780_000_000.0          # when the audit log says the log started [s since the epoch]
CHANGE_AT_S = 5.0                        # the change, seconds into the log
FAULT_AT_S = 9.0                         # the fault's onset in the log's t


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    """A 14 s simulated session's log, with an audit log beside it (a log start, a change of the
    work target 5 s in, a refused change, a log stop) and a fault latched at 9 s."""
    d = tmp_path_factory.mktemp("session")
    run = harness.run(duration_s=14.0, seed=3)
    log = d / "ankle-20260601-101500.csv"
    sim_report.write_log(run, log)
    text = log.read_text().splitlines()
    header = text[0].split(",")
    i_t, i_f = header.index("t"), header.index("faults")
    bit = fault_bit("over_temperature")
    lines = [text[0]]
    for line in text[1:]:
        cells = line.split(",")
        if float(cells[i_t]) >= FAULT_AT_S:
            cells[i_f] = str(bit)
        lines.append(",".join(cells))
    log.write_text("\n".join(lines) + "\n")
    clock = iter([LOG_START_UTC, LOG_START_UTC + CHANGE_AT_S, LOG_START_UTC + 7.0, LOG_START_UTC + 7.0,
                  LOG_START_UTC + 13.0])
    with AuditLog(d / "audit.log", clock=lambda: next(clock)) as audit:
        audit.record("prosthetist", "log start", detail=str(log))
        audit.record("prosthetist", "set", "pushoff.work_J_kg", "0.18", "0.22")
        audit.record("prosthetist", "set", "pushoff.rise_s", "0.13", "0.2")
        audit.record("prosthetist", "set refused", "pushoff.rise_s", "0.13", "0.2", detail="walking")
        audit.record("prosthetist", "log stop", detail=str(log))
    t0 = float(run.telemetry[0, COLUMN["t"]])
    return {"log": log, "dir": d, "fault_name": sr.fault_names(bit)[0], "t0": t0}


def _report(session, **kw):
    rows = sr.load_log(session["log"])
    result = sr.report(session["log"], 80.0, **kw)
    return rows, result, sr.figure(rows, result, "test")


def _axes(fig):
    by_title = {a.get_title(): a for a in fig.axes}
    return by_title["symmetry per stride (- = prosthetic shorter)"], by_title["push-off work per stride"]


def _vertical(ax):
    return [ln for ln in ax.get_lines() if len(set(np.atleast_1d(ln.get_xdata()))) == 1
            and len(np.atleast_1d(ln.get_xdata())) == 2 and tuple(ln.get_ydata()) == (0, 1)]


def _horizontal_at(ax, y):
    return [ln for ln in ax.get_lines() if tuple(ln.get_xdata()) == (0, 1) and tuple(ln.get_ydata()) == (y, y)]


def test_si_target_line_and_work_target_from_the_parameters_in_force(session):
    rows, result, fig = _report(session)
    si_ax, work_ax = _axes(fig)
    assert _horizontal_at(si_ax, 0.0), "no line at SI 0 %"
    assert any("target" in ln.get_label() for ln in _horizontal_at(si_ax, 0.0))
    target = [ln for ln in work_ax.get_lines() if ln.get_label().startswith("work target")]
    assert len(target) == 1
    ys = np.asarray(target[0].get_ydata(), dtype=float)
    xs = np.asarray(target[0].get_xdata(), dtype=float)
    # default target (0.18 J/kg at 1.25 m/s) before the change, 0.22 after (the simulated speed
    # estimate is about 1.25 m/s)
    assert ys[xs < CHANGE_AT_S + session["t0"]] == pytest.approx(0.18, abs=0.02)
    assert ys[xs > CHANGE_AT_S + session["t0"] + 1.5] == pytest.approx(0.22, abs=0.02)
    assert work_ax.get_ylim()[0] == 0.0
    # as given
    _, result, fig = _report(session, work_target_J_kg=0.25)
    _, work_ax = _axes(fig)
    target = [ln for ln in work_ax.get_lines() if ln.get_label().startswith("work target")][0]
    assert np.allclose(np.asarray(target.get_ydata(), float), 0.25)
    assert "--work-target" in target.get_label()


def test_work_target_from_the_saved_parameters_of_a_state_directory(session, tmp_path):
    from controller.params import store
    from controller.params.registry import ParamSet
    (tmp_path / "logs").mkdir()
    log = tmp_path / "logs" / session["log"].name          # the console's layout, no audit log
    log.write_bytes(session["log"].read_bytes())
    store.save(ParamSet({"pushoff.work_J_kg": 0.25, "pushoff.work_slope_J_s_kg_m": 0.0}), tmp_path / "ankle.params")
    result = sr.report(log, 80.0)
    assert result["work_target_J_kg"] == pytest.approx([0.25] * result["strides"])
    assert "ankle.params" in result["work_target_source"]
    assert "no audit log" in sr.summary_text(result, "x")


def test_changes_and_faults_are_marked_at_their_times_with_their_labels(session):
    rows, result, fig = _report(session)              # audit.log beside the log: found by default
    for ax in _axes(fig):
        marks = {round(float(ln.get_xdata()[0]), 2): ln.get_label() for ln in _vertical(ax)}
        t0 = session["t0"]
        change = [lbl for x, lbl in marks.items() if abs(x - (t0 + CHANGE_AT_S)) < 0.01]
        assert change and "pushoff.work_J_kg 0.18 -> 0.22" in change[0]
        refused = [lbl for x, lbl in marks.items() if abs(x - (t0 + 7.0)) < 0.01]
        assert refused and "pushoff.rise_s" in refused[0] and "refused" in refused[0]
        fault = [lbl for x, lbl in marks.items() if abs(x - FAULT_AT_S) < 0.01]
        assert fault and session["fault_name"] in fault[0]
        assert len(marks) == 3                       # no marker for the log's start and stop
        texts = {t.get_text() for t in ax.texts}
        assert {"C1", "C2", "F1"} <= texts
        legend = ax.get_legend()
        assert any("pushoff.work_J_kg" in t.get_text() for t in legend.get_texts())


def test_many_changes_all_marked_the_legend_names_the_first_and_counts_the_rest(session):
    rows = sr.load_log(session["log"])
    changes = [{"t_s": 1.0 + 0.5 * i, "time_utc": "2026-06-01T10:15:00.000Z", "role": "adaptation",
                "action": "adapt", "parameter": "pushoff.work_J_kg", "old": "0.18", "new": f"{0.18 + 0.001 * i:.3f}",
                "made": True, "label": f"change {i}"} for i in range(15)]
    result = sr.analyse(rows, 80.0, sr.SessionEvents(changes, path="a.log"))
    si_ax, _ = _axes(sr.figure(rows, result))
    assert len(_vertical(si_ax)) == 16                      # 15 changes and the fault
    texts = [t.get_text() for t in si_ax.get_legend().get_texts()]
    shown = [t for t in texts if t.startswith(("C", "F")) and " s: " in t]
    assert len(shown) == sr.MAX_MARKER_LABELS
    assert any(t.startswith(f"... {16 - sr.MAX_MARKER_LABELS} more") for t in texts)
    text = sr.summary_text(result, "x")
    assert all(f"change {i}" in text for i in range(15))    # the text lists every one


def test_text_summary_lists_changes_and_faults_with_times(session):
    _, result, _ = _report(session)
    text = sr.summary_text(result, "s.csv")
    t0 = session["t0"]
    assert f"{t0 + CHANGE_AT_S:8.1f} s" in text and "pushoff.work_J_kg 0.18 -> 0.22" in text
    assert f"{FAULT_AT_S:8.1f} s  {session['fault_name']}" in text
    assert "first half" in text and "second half" in text and "under two minutes" in text
    assert "first minute" not in text


def test_an_audit_log_without_this_logs_start_places_nothing_and_says_so(session, tmp_path):
    other = tmp_path / "audit.log"
    with AuditLog(other, clock=lambda: LOG_START_UTC) as audit:
        audit.record("prosthetist", "set", "pushoff.work_J_kg", "0.18", "0.22")
    _, result, fig = _report(session, audit=other)
    assert result["changes"] == []
    assert "no 'log start'" in sr.summary_text(result, "x")
    si_ax, _ = _axes(fig)
    assert len(_vertical(si_ax)) == 1               # the fault only


def _data_display_points(ax):
    pts = []
    for ln in ax.get_lines():
        if ln in _vertical(ax) or tuple(ln.get_xdata()) == (0, 1):
            continue
        xy = np.column_stack([np.asarray(ln.get_xdata(), float), np.asarray(ln.get_ydata(), float)])
        xy = xy[np.isfinite(xy).all(axis=1)]
        if len(xy):
            pts.append(ax.transData.transform(xy))
    return np.concatenate(pts) if pts else np.zeros((0, 2))


def test_legends_hide_no_data(session):
    _, _, fig = _report(session)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    canvas = FigureCanvasAgg(fig)
    canvas.draw()                                  # layout: the legends' places are known after it
    renderer = canvas.get_renderer()
    for ax in fig.axes:
        legend = ax.get_legend()
        assert legend is not None, ax.get_title()
        box = legend.get_window_extent(renderer)
        area = ax.get_window_extent(renderer)
        assert not box.overlaps(area), f"{ax.get_title()}: legend over the axes"
        pts = _data_display_points(ax)
        inside = ((pts[:, 0] >= box.x0) & (pts[:, 0] <= box.x1) & (pts[:, 1] >= box.y0) & (pts[:, 1] <= box.y1))
        assert not inside.any()


_PARAM_NAMES = ["pushoff.work_J_kg", "pushoff.work_slope_J_s_kg_m", "pushoff.rise_s", "no.such_param", ""]
_VALUES = st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(repr), st.text(max_size=12))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.floats(-30, 30), st.sampled_from(["set", "adapt", "set refused", "adapt pending",
                                                                "mode", "clear", "log start", "undo"]),
                          st.sampled_from(_PARAM_NAMES), _VALUES, _VALUES), max_size=12),
       st.booleans())
def test_any_audit_log_gives_a_report_and_a_figure(session, records, with_start):
    """Whatever the audit log holds (values the registry refuses, text, NaN, records before and
    after the log, outcomes with no change), the report is made and every change it places is inside
    the log's span and listed."""
    import tempfile
    if "rows" not in session:
        session["rows"] = sr.load_log(session["log"])
    rows = session["rows"]
    span = float(rows[-1, COLUMN["t"]] - rows[0, COLUMN["t"]])
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "audit.log"
        stamps = sorted(r[0] for r in records)
        clock = iter([LOG_START_UTC] + [LOG_START_UTC + x for x in stamps])
        with AuditLog(path, clock=lambda: next(clock)) as audit:
            audit.record("prosthetist", "log start" if with_start else "login",
                         detail=str(session["log"]) if with_start else "")
            for (_, action, name, old, new) in sorted(records, key=lambda r: r[0]):
                audit.record("prosthetist", action, name, old, new)
        events = sr.audit_events(path, session["log"], span, float(rows[0, COLUMN["t"]]))
        result = sr.analyse(rows, 80.0, events)
        sr.figure(rows, result)
        text = sr.summary_text(result, "x")
    assert all(float(rows[0, COLUMN["t"]]) <= c["t_s"] <= float(rows[-1, COLUMN["t"]]) + 1e-6
               for c in result["changes"])
    assert all(c["label"] in text for c in result["changes"])
    assert all(np.isfinite(result["work_target_J_kg"]))
    if not with_start:
        assert result["changes"] == []
    assert span > 0


@settings(max_examples=200, deadline=None)
@given(st.floats(0, 1e4), st.floats(0.5, 2000))
def test_first_and_last_windows_never_overlap(t0, span):
    w = sr.compare_windows(t0, t0 + span)
    first, last = w["first"], w["last"]
    assert first["t1_s"] <= last["t0_s"]
    assert first["t0_s"] == t0 and last["t1_s"] == pytest.approx(t0 + span)
    assert w["halves"] == (span < 120.0)
    if w["halves"]:
        assert (first["label"], last["label"]) == ("first half", "second half")
    else:
        assert (first["label"], last["label"]) == ("first minute", "last minute")
        assert first["t1_s"] - first["t0_s"] == pytest.approx(60.0)


def test_report_windows_shown_are_disjoint(session):
    _, result, fig = _report(session)
    si_ax, _ = _axes(fig)
    spans = [p for p in si_ax.patches if "half" in p.get_label()]
    assert len(spans) == 2
    def x_range(p):                  # a Rectangle (matplotlib >= 3.9) or a Polygon (before)
        if hasattr(p, "get_width"):
            return p.get_x(), p.get_x() + p.get_width()
        xy = np.asarray(p.get_xy())
        return xy[:, 0].min(), xy[:, 0].max()
    (a0, a1), (b0, b1) = sorted(x_range(p) for p in spans)
    assert a1 <= b0 + 1e-9             # [first) [last]: they may share only their boundary
    assert result["si_stance_first"]["n"] + result["si_stance_last"]["n"] == result["strides"]


def test_faults_onsets_once_per_rising_bit():
    rows = np.zeros((6, len(COLUMN)))
    rows[:, COLUMN["t"]] = np.arange(6.0)
    rows[:, COLUMN["faults"]] = [0, 1, 1, 3, 3, 0]
    onsets = sr.fault_onsets(rows)
    assert [o["t_s"] for o in onsets] == [1.0, 3.0]
    assert onsets[0]["names"] == sr.fault_names(1) and onsets[1]["names"] == sr.fault_names(2)


def test_cli_report_audit_option(session, tmp_path):
    cli = [sys.executable, "-m", "controller.cli", "report"]
    out = subprocess.run(cli + [str(session["log"]), "--audit", str(session["dir"] / "audit.log"), "--json"],
                         cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert [c["parameter"] for c in result["changes"]] == ["pushoff.work_J_kg", "pushoff.rise_s"]
    assert [c["made"] for c in result["changes"]] == [True, False]
    out = subprocess.run(cli + [str(session["log"]), "--audit", str(tmp_path / "none.log")], cwd=ROOT,
                         capture_output=True, text=True)
    assert out.returncode == 2 and "--audit" in out.stderr and "no such file" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


# --- ankle sim --plot --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def sim_run():
    return harness.run(scenario="steady", speed_m_s=1.1, duration_s=10.0, seed=1)


def test_sim_plot_covers_the_whole_run_and_names_scenario_and_speed(sim_run):
    fig = sim_report.figure(sim_run, "steady", 1.1)
    t = sim_run.telemetry[:, COLUMN["t"]]
    for ax in fig.axes:
        lo, hi = ax.get_xlim()
        assert lo <= t[0] + 1e-9 and hi >= t[-1] - 1e-9
        data = [ln for ln in ax.get_lines() if len(np.atleast_1d(ln.get_xdata())) > 2]
        assert all(np.asarray(ln.get_xdata())[0] <= t[0] + 1e-9 for ln in data)
    title = fig._suptitle.get_text()
    assert "steady" in title and "1.1 m/s" in title


def test_sim_plot_tells_commanded_from_measured_torque(sim_run):
    fig = sim_report.figure(sim_run, "steady", 1.1)
    ax = [a for a in fig.axes if "torque" in a.get_ylabel()][0]
    lines = {ln.get_label(): ln for ln in ax.get_lines()}
    cmd, meas = lines["commanded"], lines["measured"]
    assert (cmd.get_linestyle(), cmd.get_linewidth(), cmd.get_color()) != \
        (meas.get_linestyle(), meas.get_linewidth(), meas.get_color())
    assert cmd.get_linestyle() != meas.get_linestyle()
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "commanded" in labels and "measured" in labels
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    for a in fig.axes:                   # beside the panels, over none of them
        if a.get_legend() is not None:
            box = a.get_legend().get_window_extent(canvas.get_renderer())
            assert not any(box.overlaps(b.get_window_extent(canvas.get_renderer())) for b in fig.axes)


def test_sim_plot_saves(sim_run, tmp_path):
    sim_report.plot(sim_run, tmp_path / "p.png", scenario="steady", speed_m_s=1.1)
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --- the real flow: the console's log and audit log, in real time --------------------------------

@pytest.mark.realtime
def test_report_of_a_console_session_marks_its_change_where_it_was_made(tmp_path):
    """``log start``, a change, ``log stop`` on the simulated ankle's console: ``ankle report`` of
    the log finds the state directory's audit.log by itself and puts the change at its place."""
    import re
    import time
    from conftest import sim_console
    pin = "2580"
    with sim_console(tmp_path, pin, "--duration", "60") as (term, _):
        term.cmd(f"login {pin}")
        out = term.cmd("log start")
        assert out.startswith("logging to "), out
        started = time.monotonic()
        log = Path(out.split("logging to ", 1)[1].strip())
        time.sleep(8.0)
        before = time.monotonic()
        out = term.cmd("set pushoff.work_J_kg 0.22", timeout_s=15)
        after = time.monotonic()
        assert "pushoff.work_J_kg = 0.22" in out, out
        time.sleep(6.0)
        assert term.cmd("log stop").startswith("log stopped")
    assert log.parent == tmp_path / "logs"
    proc = subprocess.run([sys.executable, "-m", "controller.cli", "report", str(log), "--json"], cwd=ROOT,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["audit"]["path"] == str(tmp_path / "audit.log")
    changes = [c for c in result["changes"] if c["parameter"] == "pushoff.work_J_kg"]
    assert len(changes) == 1 and changes[0]["made"]
    into_log = changes[0]["t_s"] - result["t_start_s"]
    # within the command's round trip of where it was typed, and a batch of the logger's
    assert before - started - 0.5 <= into_log <= after - started + 0.5, (into_log, before - started)
    assert result["work_target_J_kg"][-1] == pytest.approx(0.22, abs=0.03)
    text = subprocess.run([sys.executable, "-m", "controller.cli", "report", str(log)], cwd=ROOT,
                          capture_output=True, text=True).stdout
    line = rf"{changes[0]['t_s']:8.1f} s  \S+Z  pushoff\.work_J_kg 0\.18 -> 0\.22 \(prosthetist\)"
    assert re.search(line, text), text
