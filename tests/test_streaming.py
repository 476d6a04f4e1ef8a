"""Streaming session records (issue 19): replay, report and export a block at a time, with memory
bounded whatever the session's length, the same bytes and figures as reading the whole file, and
``ankle logs`` list/export/copy on real files.

The one-call reference replay here is the implementation replay_file had before it streamed
(read_columns, the kernel over the whole arrays, rows_to_csv): the streamed file must equal it byte
for byte at every block size.  The MCAP branch is tested with a small stand-in for the session
reader's ``open_records`` (the reader is another module's; a real MCAP file is tested with it).
"""
import csv
import hashlib
import io
import json
import os
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from controller import cli
from controller.kernels.telemetry import TELEMETRY_COLUMNS
from controller.params.registry import ParamSet
from controller.records import csvlog, inputs, logs_cli, session_report as sr
from controller.records.csvlog import CsvError, iter_column_blocks, read_columns, rows_to_csv, format_value
from controller.records.logger import CsvSessionLog
from controller.records.replay import EMPTY_CELLS, INPUT_COLUMNS, OUTPUT_COLUMNS, estimate, fault_summary, replay_file

ROOT = Path(__file__).resolve().parents[1]


def reference_replay(in_path, out_path):
    """replay_file as it was before streaming: the whole file, one kernel call, one write."""
    torn = []
    header, rows, cols = read_columns(in_path, INPUT_COLUMNS, torn=torn, may_be_empty=EMPTY_CELLS)
    result = estimate(cols["t"], cols["shank_gyro"], cols["load"], cols["ankle_angle"], ParamSet(), monitor=True)
    keep = [i for i, name in enumerate(header) if name not in OUTPUT_COLUMNS]
    out_rows = ([row[i] for i in keep] + [format_value(result["phase"][k], empty_below=0.0),
                                          str(int(result["heel_strike"][k])), str(int(result["toe_off"][k])),
                                          str(int(result["walking"][k]))] for k, row in enumerate(rows))
    Path(out_path).write_text(rows_to_csv([header[i] for i in keep] + list(OUTPUT_COLUMNS), out_rows), newline="")
    t = np.asarray(cols["t"])
    return {"samples": len(rows), "heel_strikes": int(result["heel_strike"].sum()),
            "toe_offs": int(result["toe_off"].sum()), "walking_fraction": round(float(result["walking"].mean()), 4),
            "imu_used_fraction": round(float(result["imu_valid"].mean()), 4),
            "load_used_fraction": round(float(result["load_valid"].mean()), 4),
            "faults": fault_summary(t, result["faults"])}


def _sim_log(path, *extra, duration_s=8):
    code = cli.main(["sim", "--duration", str(duration_s), "--log", str(path), "--json", *extra])
    assert code == 0 and path.exists()
    return path


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    """Real records: a simulated session log with the IMU lost (empty gyro cells, a latched fault);
    one with the load lost; a recording of the replay columns only, with extra text columns and
    quoted cells (the csv writer's path)."""
    d = tmp_path_factory.mktemp("records")
    import contextlib
    with contextlib.redirect_stdout(io.StringIO()):
        imu = _sim_log(d / "imu.csv", "--inject", "imu_loss@3")
        load = _sim_log(d / "load.csv", "--inject", "load_loss@4", "--seed", "2")
        clean = _sim_log(d / "clean.csv", "--seed", "5", duration_s=20)
    header, rows, _ = read_columns(imu, INPUT_COLUMNS, may_be_empty=EMPTY_CELLS)
    idx = [header.index(c) for c in INPUT_COLUMNS]
    quoted = d / "quoted.csv"
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["note", *INPUT_COLUMNS, "phase"])
    for k, row in enumerate(rows[:3000]):
        w.writerow([f"a,{k}" if k % 7 == 0 else ("q\"uote" if k % 11 == 0 else "x"), *(row[i] for i in idx), "0.5"])
    quoted.write_text(buf.getvalue())
    plain = d / "plain.csv"                     # no output column to replace: every line kept as it is
    plain.write_text("".join(",".join(row[i] for i in idx) + "\n" for row in [INPUT_COLUMNS] + rows[:2500]))
    return {"imu": imu, "load": load, "clean": clean, "quoted": quoted, "plain": plain}


def _replays_equal(src, tmp_path, rows):
    ref = tmp_path / "ref.csv"
    expected = reference_replay(src, ref)
    out = tmp_path / f"out-{rows}.csv"
    got = replay_file(src, out, rows=rows)
    assert out.read_bytes() == ref.read_bytes(), f"rows={rows}: the streamed output differs"
    assert {k: got[k] for k in expected} == expected
    return got


@pytest.mark.parametrize("name", ["imu", "load", "clean", "quoted", "plain"])
@pytest.mark.parametrize("rows", [1, 2, 999, 2000, 16384, 10**7])
def test_streamed_replay_is_the_one_call_replay_byte_for_byte(records, tmp_path, name, rows):
    if rows == 1 and name in ("imu", "load", "clean"):
        rows = 3                                 # every boundary is covered by the small files below
    got = _replays_equal(records[name], tmp_path, rows)
    if name == "imu":
        assert got["faults"]["imu"]["episodes"] == 1 and got["heel_strikes"] > 5


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.integers(1, 9000))
def test_block_size_never_changes_the_replay(records, tmp_path, rows):
    _replays_equal(records["imu"], tmp_path, rows)


def test_every_block_offset_of_a_small_file(records, tmp_path):
    """A small file with a fault and strides in it, cut at every block size (so a boundary falls at
    every row, inside strides and inside the fault's latch)."""
    header, rows, _ = read_columns(records["imu"], INPUT_COLUMNS, may_be_empty=EMPTY_CELLS)
    small = tmp_path / "small.csv"
    # rows 2700..3300: walking, then the IMU lost at 3 s (cells empty from there)
    small.write_text(",".join(header) + "\n" + "".join(",".join(r) + "\n" for r in rows[2700:3300]))
    ref = tmp_path / "ref.csv"
    expected = reference_replay(small, ref)
    assert expected["faults"], "the small file should hold the fault's onset"
    for k in range(1, 602):
        got = replay_file(small, tmp_path / "o.csv", rows=k)
        assert (tmp_path / "o.csv").read_bytes() == ref.read_bytes(), k
        assert {key: got[key] for key in expected} == expected, k


def test_report_is_the_same_whatever_the_blocks(records):
    texts = set()
    for rows in (7, 1999, 2000, 16384, 10**6):
        result = sr.report(records["clean"], 80.0, rows=rows)
        result.pop("_strides")
        result.pop("_curves")
        texts.add((sr.summary_text(result, "x"), json.dumps(result, sort_keys=True, default=str)))
    assert len(texts) == 1
    assert result["strides"] > 5
    whole = sr.analyse(sr.load_log(records["clean"]), 80.0)
    assert sr.summary_text(whole, "x") == next(iter(texts))[0]


def test_the_streamed_figure_decimates_a_long_session(records, tmp_path):
    pytest.importorskip("matplotlib")
    x = np.arange(100_000, dtype=float)
    y = np.sin(x / 50.0)
    ex, ey = sr.envelope(x, y, 100)
    assert len(ex) == 200 and ey.min() == y.min() and ey.max() == y.max()
    result = sr.report(records["clean"], 80.0, out=tmp_path / "r.png")
    assert (tmp_path / "r.png").stat().st_size > 10_000 and result["strides"] > 3
    # an 8-hour session's strides (30 000): each panel draws at most two points per pixel column
    import dataclasses
    strides = result["_strides"]
    span = strides[-1].t_heel_strike_s + 2.0
    many = [dataclasses.replace(st, t_heel_strike_s=st.t_heel_strike_s + k * span)
            for k in range(30_000 // len(strides) + 1) for st in strides]
    long = dict(result, _strides=many, strides=len(many), work_target_J_kg=[0.2] * len(many),
                t_end_s=many[-1].t_heel_strike_s + 2.0)
    fig = sr.figure(None, long)
    drawn = max(len(line.get_xdata()) for ax in fig.axes[:2] for line in ax.get_lines())
    assert drawn <= 2 * sr.ENVELOPE_COLUMNS
    fig.savefig(tmp_path / "long.png", dpi=50)


def test_a_torn_last_line_is_dropped_and_said_across_chunks(tmp_path, monkeypatch):
    monkeypatch.setattr(csvlog, "CHUNK_BYTES", 5)
    path = tmp_path / "torn.csv"
    path.write_bytes(b"t,shank_gyro,load,ankle_angle\n0.001,1,2,3\n0.002,1,2,3\n0.003,1,2")
    torn = []
    blocks = list(iter_column_blocks(path, INPUT_COLUMNS, 1, torn=torn))
    assert [b["t"].tolist() for b in blocks] == [[0.001], [0.002]]
    assert len(torn) == 1 and "dropped the torn last line 4" in torn[0]
    summary = replay_file(path, tmp_path / "o.csv", rows=1)
    assert summary["samples"] == 2 and len(summary["dropped"]) == 1


@pytest.mark.parametrize("body, message", [
    ("0.003,1,x,3\n", r"row 4, column load: 'x' is not a number"),
    ("0.003,1,2,\n", r"row 4, column ankle_angle: empty, but load is not"),
    ("0.003,1,2\n", r"row 4 has 3 values, the header has 4"),
    ("0.002,1,2,3\n", r"column t must increase; row 4 has t = 0.002 after 0.002"),
    ("inf,1,2,3\n", r"row 4, column t: 'inf' is not a finite time"),
])
def test_a_bad_cell_in_a_later_block_is_one_line_and_nothing_is_written(tmp_path, body, message):
    src = tmp_path / "bad.csv"
    src.write_text("t,shank_gyro,load,ankle_angle\n0.001,1,2,3\n0.002,1,2,3\n" + body + "0.004,1,2,3\n")
    out = tmp_path / "out.csv"
    out.write_text("the old output\n")
    with pytest.raises(CsvError, match=message):
        replay_file(src, out, rows=1)
    assert out.read_text() == "the old output\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv", "out.csv"]    # no temporary file left
    code = cli.main(["replay", str(src), "--out", str(tmp_path / "new.csv")])
    assert code == 2 and not (tmp_path / "new.csv").exists()


def test_a_long_record_replays_in_bounded_memory(tmp_path):
    """10^6 rows of a session log (233 MB of CSV) replayed in a child process: its peak resident
    memory stays under 300 MB (reading it whole took over 3 GB)."""
    from bench.stream import make_input, run_child
    src = tmp_path / "long.csv"
    make_input(src, 10**6, tmp_path)
    r = run_child([sys.executable, "-m", "controller.cli", "replay", str(src), "--out", str(tmp_path / "o.csv"),
                   "--json"], ROOT)
    assert r["exit"] == 0, r
    assert r["peak_MB"] < 300, r
    with open(tmp_path / "o.csv", "rb") as f:
        assert sum(1 for _ in f) == 10**6 + 1


# ---------------------------------------------------------------------------------------- MCAP branch
class FakeRecords:
    """Stands in for the session reader's object (controller.records.sources.open_records):
    ``columns``, ``iter_blocks(rows)`` (float arrays in TELEMETRY_COLUMNS order), ``metadata``,
    ``iter_can()``."""

    def __init__(self, rows, frames=()):
        self.columns = TELEMETRY_COLUMNS
        self._rows = rows
        self.metadata = {"session": {"start_utc": "2026-12-03T06:00:00Z"}, "software": {"profile": "walk"}}
        self._frames = list(frames)

    def iter_blocks(self, rows=4096):
        for i in range(0, len(self._rows), rows):
            yield self._rows[i:i + rows]

    def iter_can(self):
        return iter(self._frames)


@pytest.fixture
def fake_mcap(records, tmp_path, monkeypatch):
    import can
    telemetry = sr.load_log(records["imu"])
    frames = [can.Message(timestamp=1.0 + k * 0.001, arbitration_id=0x100 + k % 3, data=bytes([k % 256] * 8))
              for k in range(50)]
    module = types.ModuleType("controller.records.sources")
    opened = []

    def open_records(path):
        opened.append(Path(path))
        return FakeRecords(telemetry, frames)

    module.open_records = open_records
    monkeypatch.setitem(sys.modules, "controller.records.sources", module)
    path = tmp_path / "session.mcap"
    path.write_bytes(b"\x89MCAP0\r\n")           # the stand-in reads nothing of it
    return {"path": path, "telemetry": telemetry, "frames": frames, "opened": opened}


def test_replay_and_report_take_an_mcap_session(records, fake_mcap, tmp_path):
    got = replay_file(fake_mcap["path"], tmp_path / "m.csv", rows=777)
    ref = replay_file(records["imu"], tmp_path / "c.csv")
    for key in ("samples", "heel_strikes", "toe_offs", "walking_fraction", "faults", "imu_used_fraction"):
        assert got[key] == ref[key], key
    a = read_columns(tmp_path / "m.csv", ["t", *OUTPUT_COLUMNS], may_be_empty={"phase": None})[2]
    b = read_columns(tmp_path / "c.csv", ["t", *OUTPUT_COLUMNS], may_be_empty={"phase": None})[2]
    assert np.array_equal(np.array(a["phase"]), np.array(b["phase"]), equal_nan=True)
    assert a["heel_strike"] == b["heel_strike"] and a["walking"] == b["walking"]
    m = sr.report(fake_mcap["path"], 80.0, rows=999)
    c = sr.report(records["imu"], 80.0)
    assert sr.summary_text(m, "s") == sr.summary_text(c, "s")


def test_logs_on_an_mcap_session(fake_mcap, tmp_path, capsys):
    assert cli.main(["logs", "export", str(fake_mcap["path"]), "--can", str(tmp_path / "c.asc")]) == 0
    import can
    frames = list(can.ASCReader(str(tmp_path / "c.asc")))
    assert [f.arbitration_id for f in frames] == [f.arbitration_id for f in fake_mcap["frames"]]
    assert cli.main(["logs", "export", str(fake_mcap["path"]), "--csv", str(tmp_path / "e.csv")]) == 0
    rows = sr.load_log(tmp_path / "e.csv")
    assert np.array_equal(rows, fake_mcap["telemetry"], equal_nan=True)
    capsys.readouterr()
    assert cli.main(["logs", "list", str(tmp_path), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)["sessions"]
    mcap = [s for s in listed if s["kind"] == "mcap"][0]
    # the wearer's profile comes from the session's /audit (the real reader's summary():
    # tests/test_session_records.py); this stand-in has no summary, so none is named
    assert mcap["profile"] is None and mcap["faults_seen"] == ["imu"] and mcap["rows"] == len(rows)


def test_an_mcap_session_without_the_reader_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "controller.records.sources", None)       # import fails
    path = tmp_path / "s.mcap"
    path.write_bytes(b"\x89MCAP0\r\n")
    for argv in (["replay", str(path), "--out", str(tmp_path / "o.csv")], ["report", str(path)],
                 ["logs", "export", str(path), "--csv", str(tmp_path / "e.csv")]):
        assert cli.main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert "MCAP sessions need" in err and "\n" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.mcap"]


# ---------------------------------------------------------------------------------------- ankle logs
@pytest.fixture
def logdir(records, tmp_path):
    """A log directory as the device leaves it: a device CSV log (CsvSessionLog, every telemetry
    column), a simulator log, a file that is no log, and something else."""
    d = tmp_path / "logs"
    d.mkdir()
    telemetry = sr.load_log(records["load"])
    with CsvSessionLog(d / "ankle-20261203-091500.csv", TELEMETRY_COLUMNS) as log:
        log.write(telemetry)
    (d / "sim.csv").write_bytes(records["imu"].read_bytes())
    (d / "broken.csv").write_text("t,x\n0.1,1\n0.0,2\n")
    (d / "notes.txt").write_text("not a session")
    return d


def test_logs_list_one_line_each(logdir, capsys):
    assert cli.main(["logs", "list", str(logdir)]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[0] == f"{logdir}: 3 session(s)" and len(out) == 4
    device = [ln for ln in out if ln.startswith("ankle-20261203-091500.csv")][0]
    assert "start 2026-12-03 09:15:00" in device and "0:08" in device and "faults load" in device
    assert "faults imu" in [ln for ln in out if ln.startswith("sim.csv")][0]
    assert "must increase" in [ln for ln in out if ln.startswith("broken.csv")][0]
    assert cli.main(["logs", "list", str(logdir), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [s["name"] for s in listed["sessions"]] == ["ankle-20261203-091500.csv", "broken.csv", "sim.csv"]


def test_logs_list_from_the_config(logdir, tmp_path, capsys):
    config = tmp_path / "ankle.toml"
    text = (ROOT / "deploy" / "sim.toml").read_text()
    assert '[log]\ndirectory = ""' in text
    config.write_text(text.replace('[log]\ndirectory = ""', f'[log]\ndirectory = "{logdir}"'))
    assert cli.main(["logs", "list", "--config", str(config)]) == 0
    assert f"{logdir}: 3 session(s)" in capsys.readouterr().out
    assert cli.main(["logs", "list"]) == 2
    assert "which log directory" in capsys.readouterr().err


def test_logs_export_csv_of_a_device_log_is_the_log(logdir, tmp_path):
    src = logdir / "ankle-20261203-091500.csv"
    out = tmp_path / "export.csv"
    assert cli.main(["logs", "export", str(src), "--csv", str(out)]) == 0
    assert out.read_bytes() == src.read_bytes()
    header = out.read_text().split("\n", 1)[0].split(",")
    assert header[:8] == ["t", "shank_gyro", "load", "ankle_angle", "phase", "heel_strike", "toe_off", "walking"]
    replayed = replay_file(out, tmp_path / "r.csv")                    # the replay contract's input
    assert replayed["samples"] == 8000


def test_logs_export_refuses_bad_input_and_writes_nothing(logdir, tmp_path, capsys):
    cases = [["logs", "export", str(logdir / "sim.csv"), "--can", str(tmp_path / "o.blf")],
             ["logs", "export", str(logdir / "absent.csv"), "--csv", str(tmp_path / "o.csv")],
             ["logs", "export", str(logdir / "broken.csv"), "--csv", str(tmp_path / "o.csv")],
             ["logs", "export", str(logdir), "--csv", str(tmp_path / "o.csv")]]
    for argv in cases:
        assert cli.main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert err.startswith("ankle logs: error: ") and "\n" not in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["logs"]


def _sha(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_logs_copy_verifies_and_never_overwrites(logdir, tmp_path, capsys):
    to = tmp_path / "usb"
    assert cli.main(["logs", "copy", "--all", "--from", str(logdir), "--to", str(to)]) == 0
    out = capsys.readouterr().out
    assert out.count("copied and verified") == 3
    for p in logdir.glob("*.csv"):
        assert _sha(to / p.name) == _sha(p)
        assert not list(to.glob(".*"))                                  # no temporary file left
    # again: identical copies are left as they are, and said
    assert cli.main(["logs", "copy", str(logdir / "sim.csv"), "--to", str(to)]) == 0
    assert "already there, identical" in capsys.readouterr().out
    # a different file of that name: refused before anything is copied, nothing changed
    (to / "sim.csv").write_text("another file\n")
    new = tmp_path / "new"
    new.mkdir()
    (logdir / "later.csv").write_text("t,x\n0,1\n")
    assert cli.main(["logs", "copy", str(logdir / "later.csv"), str(logdir / "sim.csv"), "--to", str(to)]) == 2
    err = capsys.readouterr().err
    assert "never overwritten" in err and (to / "sim.csv").read_text() == "another file\n"
    assert not (to / "later.csv").exists()


def test_logs_copy_json_and_bad_input(logdir, tmp_path, capsys):
    to = tmp_path / "out"
    assert cli.main(["logs", "copy", str(logdir / "sim.csv"), "--to", str(to), "--json"]) == 0
    record = json.loads(capsys.readouterr().out)["copies"][0]
    assert record["copied"] and record["sha256"] == _sha(logdir / "sim.csv")
    assert record["bytes"] == (logdir / "sim.csv").stat().st_size
    for argv in (["logs", "copy", str(logdir / "absent.csv"), "--to", str(to)],
                 ["logs", "copy", str(logdir), "--to", str(to)],
                 ["logs", "copy", "--to", str(to)],
                 ["logs", "copy", str(logdir / "sim.csv"), "--to", str(logdir / "sim.csv")]):
        assert cli.main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert err.startswith("ankle logs: error: ") and "\n" not in err, err


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cuts=st.lists(st.integers(1, 7999), max_size=6))
def test_the_kernel_continues_across_calls(records, cuts):
    """Replay.run over consecutive slices of a record is one call over all of it (nothing reset)."""
    from controller.kernels._replay import Replay
    _, _, cols = read_columns(records["imu"], INPUT_COLUMNS, may_be_empty=EMPTY_CELLS)
    arrays = [np.asarray(cols[c]) for c in INPUT_COLUMNS]
    n = len(arrays[0])

    def outputs():
        return [np.empty(n), np.empty(n, np.int8), np.empty(n, np.int8), np.empty(n, np.int8),
                np.empty(n, np.int8), np.empty(n, np.uint32), np.empty(n, np.int8), np.empty(n, np.int8)]
    one, parts = outputs(), outputs()
    kernel = Replay()
    kernel.configure(ParamSet())
    kernel.run(*arrays, *one)
    kernel = Replay()
    kernel.configure(ParamSet())
    bounds = [0, *sorted(set(cuts)), n]
    for a, b in zip(bounds[:-1], bounds[1:]):
        kernel.run(*(x[a:b] for x in arrays), *(o[a:b] for o in parts))
    for x, y in zip(one, parts):
        assert np.array_equal(x, y)
