"""The off-tick loggers (controller/records/logger.py) and csvlog's torn-tail reading: real files, real
child processes killed with SIGKILL, a real python-can virtual bus."""
import os
import random
import signal
import struct
import subprocess
import sys
import time
import uuid
from pathlib import Path

import can
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from controller.kernels._tick import TELEMETRY_COLUMNS
from controller.records.csvlog import CsvError, format_value, read_columns
from controller.records.logger import FIRST_COLUMNS, INTEGER_COLUMNS, CanTrafficLog, CsvSessionLog
from controller.records.replay import INPUT_COLUMNS, replay_file
from hal.bus import BusConfig

ROOT = Path(__file__).resolve().parents[1]
COLUMNS = tuple(TELEMETRY_COLUMNS)


def telemetry(n, seed=0, t0=0.0):
    """n plausible-looking rows in COLUMNS order: full-precision floats, integral integer columns,
    NaN and "not walking" (phase -1) here and there, but never in the replay's input columns."""
    rng = np.random.default_rng(seed)
    rows = rng.normal(0.0, 3.0, (n, len(COLUMNS))) * 10.0 ** rng.integers(-6, 4, (n, len(COLUMNS)))
    idx = {c: i for i, c in enumerate(COLUMNS)}
    rows[:, idx["t"]] = t0 + np.arange(n) * 1e-3 + rng.uniform(0, 1e-4, n)
    for c in sorted(INTEGER_COLUMNS & set(COLUMNS)):   # sorted: the same in every process
        rows[:, idx[c]] = rng.integers(0, 3 if c != "faults" else 1 << 20, n)
    optional = [i for c, i in idx.items() if c not in INPUT_COLUMNS]
    rows[rng.integers(0, n, n // 10), rng.choice(optional, n // 10)] = np.nan
    rows[rng.integers(0, n, n // 5), idx["phase"]] = -1.0
    rows[0, idx["torque_Nm"]] = -0.0
    return rows


def expected_lines(rows):
    """The file's data lines by the reference cell formatter, csvlog.format_value."""
    order = [COLUMNS.index(c) for c in file_columns()]
    return [[format_value(r[j], c in INTEGER_COLUMNS, 0.0 if c == "phase" else None)
             for j, c in zip(order, file_columns())] for r in rows]


def file_columns():
    return list(FIRST_COLUMNS) + [c for c in COLUMNS if c not in FIRST_COLUMNS]


def test_csv_batches_read_back_bit_exact_in_the_specified_column_order_and_replay(tmp_path):
    rows = telemetry(3000)
    path = tmp_path / "session.csv"
    with CsvSessionLog(path, COLUMNS) as log:
        for batch in np.array_split(rows, [700, 701]):      # 700, 1 and 2299 rows
            log.write(batch)
        log.write(rows[:0])
        assert log.rows_written == 3000
    assert log.columns == tuple(file_columns())
    torn = []
    header, cells, _ = read_columns(path, INPUT_COLUMNS, torn=torn)
    assert torn == [] and header == file_columns()
    assert header[:12] == ["t", "shank_gyro", "load", "ankle_angle", "phase", "heel_strike", "toe_off",
                           "walking", "torque_Nm", "torque_cmd_Nm", "faults", "mode"]
    assert header[-6:] == ["late_s", "read_s", "update_s", "write_s", "sound_load", "sound_gyro"]
    assert cells == expected_lines(rows)
    for j, name in enumerate(header):
        src = rows[:, COLUMNS.index(name)]
        col = [r[j] for r in cells]
        blank = np.isnan(src) | ((src < 0) if name == "phase" else False)
        assert all(c == "" for c, b in zip(col, blank) if b) and all(c != "" for c, b in zip(col, blank) if not b)
        if name in INTEGER_COLUMNS:
            assert all(c == str(int(x)) for c, x, b in zip(col, src, blank) if not b)
        else:
            back = np.array([float(c) for c, b in zip(col, blank) if not b])
            assert back.tobytes() == src[~blank].tobytes()          # bit for bit, -0.0 included
    summary = replay_file(path, tmp_path / "replayed.csv")
    assert summary["samples"] == 3000


def test_csv_refuses_an_existing_file_and_leaves_it_untouched(tmp_path):
    path = tmp_path / "session.csv"
    path.write_text("precious")
    with pytest.raises(FileExistsError, match="session.csv: already exists"):
        CsvSessionLog(path, COLUMNS)
    assert path.read_text() == "precious"


def test_csv_refuses_bad_columns_and_rows(tmp_path):
    with pytest.raises(ValueError, match="faults, mode"):
        CsvSessionLog(tmp_path / "a.csv", [c for c in COLUMNS if c not in ("faults", "mode")])
    assert not (tmp_path / "a.csv").exists()
    with CsvSessionLog(tmp_path / "b.csv", COLUMNS) as log:
        with pytest.raises(ValueError, match=rf"shape \(n, {len(COLUMNS)}\)"):
            log.write(np.zeros((2, 5)))
    with pytest.raises(ValueError, match="closed"):
        log.write(telemetry(1))
    with pytest.raises(ValueError, match="fsync_interval_s"):
        CsvSessionLog(tmp_path / "c.csv", COLUMNS, fsync_interval_s=float("nan"))
    with pytest.raises(ValueError, match="unique"):
        CsvSessionLog(tmp_path / "d.csv", COLUMNS + ("t",))
    assert not (tmp_path / "c.csv").exists() and not (tmp_path / "d.csv").exists()


def test_csv_never_loses_an_odd_value_in_an_integer_column(tmp_path):
    rows = telemetry(4)
    j = COLUMNS.index("faults")
    rows[:, j] = [1.5, 1e20, np.inf, np.nan]
    with CsvSessionLog(tmp_path / "odd.csv", COLUMNS) as log:
        log.write(rows)
    cells = read_columns(log.path, INPUT_COLUMNS)[1]
    assert [r[log.columns.index("faults")] for r in cells] == ["1.5", "1e+20", "inf", ""]


CHILD = r"""
import sys, time, numpy as np
sys.path.insert(0, {root!r}); sys.path.insert(0, {tests!r})
from test_logger import COLUMNS, telemetry
from controller.records.logger import CsvSessionLog
rows = telemetry(30000, seed={seed})
rng = np.random.default_rng({seed})
sys.stdin.readline()
log = CsvSessionLog({path!r}, COLUMNS, fsync_interval_s=0.01)
k = 0
while k < len(rows):
    n = int(rng.integers(1, 2000))
    log.write(rows[k:k + n])
    k += n
    if k == n:
        print("writing", flush=True)
time.sleep(60)
"""


def test_csv_sigkill_at_random_moments_leaves_a_readable_prefix(tmp_path):
    rng = random.Random(1)
    children = []
    for i in range(20):      # started at once, so their imports overlap; each writes only when told
        path = tmp_path / f"crash{i}.csv"
        code = CHILD.format(root=str(ROOT), tests=str(ROOT / "tests"), seed=i, path=str(path))
        children.append((i, path, subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)))
    torn_tails, lengths = 0, []
    try:
        for seed, path, proc in children:
            proc.stdin.write("go\n")
            proc.stdin.flush()
            assert proc.stdout.readline() == "writing\n", proc.stderr.read()
            time.sleep(rng.uniform(0.0, 0.05))
            proc.send_signal(signal.SIGKILL)
            assert proc.wait(timeout=10) == -signal.SIGKILL
            torn = []
            header, cells, _ = read_columns(path, INPUT_COLUMNS, torn=torn)
            torn_tails += len(torn)
            lengths.append(len(cells))
            assert header == file_columns() and len(cells) >= 1
            # the same rows written in one go by an undisturbed log: the same bytes, line for line
            with CsvSessionLog(tmp_path / f"ref{seed}.csv", COLUMNS) as ref:
                ref.write(telemetry(30000, seed=seed)[:len(cells)])
            data = path.read_bytes()
            assert data[:data.rfind(b"\n") + 1] == ref.path.read_bytes()
    finally:
        for _, _, proc in children:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            for f in (proc.stdin, proc.stdout, proc.stderr):
                f.close()
    print(f"20 SIGKILLs after {min(lengths)}..{max(lengths)} rows; {torn_tails} torn last lines dropped")


def test_csv_formatting_throughput(tmp_path, capsys):
    """Prints the figure (CPU time of this process, then wall time); asserts only correctness."""
    rows = telemetry(20000)
    with CsvSessionLog(tmp_path / "speed.csv", COLUMNS, fsync_interval_s=1e9) as log:
        cpu, wall = time.process_time(), time.perf_counter()
        for batch in np.array_split(rows, 20):          # 1000-row batches, one second of ticks each
            log.write(batch)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    assert log.rows_written == 20000
    assert read_columns(log.path, INPUT_COLUMNS)[1] == expected_lines(rows)
    with capsys.disabled():
        print(f"\nCsvSessionLog, {len(COLUMNS)} columns in 1000-row batches: {len(rows) / cpu:,.0f} rows/s "
              f"of CPU time ({1000 * cpu / 20:.1f} ms per batch), {len(rows) / wall:,.0f} rows/s wall "
              f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")


HEADER = "t,shank_gyro,load,ankle_angle,note\n"


@pytest.mark.parametrize("tail", ["0.003,1.5,7", "0.003,1.5,700.0,0.1,x", "\x00\x00\x00", "0.003,\xff\xfe"])
def test_a_last_line_without_newline_is_a_torn_write_and_is_dropped(tmp_path, tail):
    path = tmp_path / "torn.csv"
    path.write_bytes((HEADER + "0.001,1,2,3,a\n0.002,1,2,3,b\n").encode() + tail.encode("latin-1"))
    torn = []
    header, rows, cols = read_columns(path, INPUT_COLUMNS, torn=torn)
    assert rows == [["0.001", "1", "2", "3", "a"], ["0.002", "1", "2", "3", "b"]]
    assert cols["t"] == [0.001, 0.002]
    assert len(torn) == 1 and "torn.csv: dropped the torn last line 4" in torn[0]
    assert read_columns(path, INPUT_COLUMNS)[1] == rows          # without ``torn``: dropped quietly


def test_a_complete_file_is_unaffected_and_other_errors_stay(tmp_path):
    path = tmp_path / "ok.csv"
    path.write_text(HEADER + "0.001,1,2,3,a\n0.002,1,2,3,b\n")
    torn = []
    assert read_columns(path, INPUT_COLUMNS, torn=torn)[1][-1] == ["0.002", "1", "2", "3", "b"]
    assert torn == []
    path.write_text(HEADER + "0.001,1,2\n0.002,1,2,3,b\n")      # ragged inside: still an error
    with pytest.raises(CsvError, match="row 2 has 3 values, the header has 5"):
        read_columns(path, INPUT_COLUMNS, torn=torn)
    path.write_text(HEADER + "0.001,1,2,3,a\n0.002,1,2\n")       # ragged but terminated: an error
    with pytest.raises(CsvError, match="row 3 has 3 values"):
        read_columns(path, INPUT_COLUMNS, torn=torn)
    assert torn == []
    path.write_text(HEADER + "0.001,1,2,3,a")                    # the only row torn: no data rows
    with pytest.raises(CsvError, match="no data rows"):
        read_columns(path, INPUT_COLUMNS, torn=torn)
    assert len(torn) == 1
    path.write_text(HEADER.rstrip("\n"))                         # a header alone: as before
    with pytest.raises(CsvError, match="no data rows"):
        read_columns(path, INPUT_COLUMNS, torn=torn)
    assert len(torn) == 1


FRAMES = [can.Message(arbitration_id=0x001 + k % 7, data=bytes((k + j) % 256 for j in range(k % 9)),
                      is_extended_id=False) for k in range(150)] + \
         [can.Message(arbitration_id=0x18FF_0000 + k, data=struct.pack("<Q", k * 0x0101_0101), is_extended_id=True)
          for k in range(50)]


@pytest.mark.parametrize("fmt", ["blf", "asc"])
@pytest.mark.parametrize("suffix", ["", "-82540"])      # a channel name ending in a number too big for BLF
def test_can_traffic_is_recorded_and_reads_back_in_order(tmp_path, fmt, suffix):
    cfg = BusConfig(interface="virtual", channel=f"logger-{uuid.uuid4().hex}x{suffix}")
    path = tmp_path / f"traffic.{fmt}"
    log = CanTrafficLog(cfg, path)
    log.start()
    log.start()
    sender = can.Bus(interface="virtual", channel=cfg.channel)
    try:
        for msg in FRAMES:
            sender.send(msg)
        deadline = time.monotonic() + 10
        while log.frames < len(FRAMES) and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        sender.shutdown()
        log.stop()
        log.stop()
    assert log.frames == len(FRAMES)
    reader = can.BLFReader(path) if fmt == "blf" else can.ASCReader(path)
    back = [(m.arbitration_id, m.is_extended_id, bytes(m.data)) for m in reader if not m.is_error_frame]
    assert back == [(m.arbitration_id, m.is_extended_id, bytes(m.data)) for m in FRAMES]


def test_can_log_refuses_a_bad_format_and_an_existing_file(tmp_path):
    cfg = BusConfig(interface="virtual", channel=f"logger-{uuid.uuid4()}")
    for path, fmt in ((tmp_path / "x.csv", None), (tmp_path / "x.blf", "mf4"), (tmp_path / "x", None)):
        with pytest.raises(ValueError, match="allowed: asc, blf"):
            CanTrafficLog(cfg, path, fmt=fmt)
    path = tmp_path / "old.blf"
    path.write_bytes(b"precious")
    with pytest.raises(FileExistsError, match="old.blf: already exists"):
        CanTrafficLog(cfg, path)
    late = CanTrafficLog(cfg, tmp_path / "late.asc")      # the file appears between check and start
    (tmp_path / "late.asc").write_text("precious")
    with pytest.raises(FileExistsError, match="late.asc: already exists"):
        late.start()
    late.stop()
    assert path.read_bytes() == b"precious" and (tmp_path / "late.asc").read_text() == "precious"
    assert CanTrafficLog(cfg, tmp_path / "upper.ASC", fmt=None).fmt == "asc"


# ---- one writer for every log: the device's session log and the simulator's ---------------------

def _reference_csv(header, rows, integer, blank_negative):
    """A log as the writers wrote it before they were one: format_value per cell, csv.writer."""
    import csv
    import io
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([format_value(x, c in integer, 0.0 if c in blank_negative else None)
                      for x, c in zip(r, header)] for r in rows)
    return buf.getvalue().encode("ascii")


wide = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-2 ** 60, 2 ** 60).map(float),
                 st.sampled_from([0.0, -0.0, 1.0, -1.0, 0.5, 1.5, 2.0 ** 53, 2.0 ** 53 + 2, -3.0]))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(wide, wide, wide, wide), min_size=1, max_size=20))
def test_the_log_writer_cells_are_format_value_cells_whatever_the_value(tmp_path_factory, rows):
    """The session log (CsvSessionLog) and format_value, the cell rule of the replay's output and of
    the old simulator log, write every cell alike: an odd value in an integer column (1.5, 1e20,
    inf) as it is.  Before they were one writer, format_value cut 1.5 to "1" and raised on inf."""
    columns = ("t", "shank_gyro", "load", "ankle_angle", "phase", "heel_strike", "toe_off", "walking",
               "torque_Nm", "torque_cmd_Nm", "faults", "mode")
    data = np.zeros((len(rows), len(columns)))
    data[:, 0] = np.arange(len(rows))
    for j, name in enumerate(("phase", "heel_strike", "faults", "torque_Nm")):
        data[:, columns.index(name)] = [r[j] for r in rows]
    path = tmp_path_factory.mktemp("w") / "session.csv"
    with CsvSessionLog(path, columns) as log:
        log.write(data)
    assert path.read_bytes() == _reference_csv(log.columns, data[:, [columns.index(c) for c in log.columns]],
                                               INTEGER_COLUMNS, ("phase",))


def test_the_simulator_log_is_the_one_writers_with_the_declared_columns_and_reads_back(tmp_path):
    from controller.kernels.telemetry import COLUMN
    from controller.records.csvlog import CsvRows
    from sim import harness, report
    from sim.harness import TRUTH_COLUMNS
    run = harness.run(scenario="steady", speed_m_s=1.25, duration_s=3.0, mass_kg=80.0, seed=3)
    path = tmp_path / "sim.csv"
    report.write_log(run, path)
    assert isinstance(report._CSV, CsvRows)
    header, cells, _ = read_columns(path, INPUT_COLUMNS)
    assert tuple(header) == report.LOG_COLUMNS
    assert header[:10] == ["t", "shank_gyro", "load", "ankle_angle", "phase", "heel_strike", "toe_off",
                           "walking", "torque_Nm", "torque_cmd_Nm"]
    assert len(cells) == len(run.telemetry)
    truth_i = {c: i for i, c in enumerate(TRUTH_COLUMNS)}
    source = np.column_stack([run.telemetry[:, COLUMN[c]] if src == "tel" else run.truth[:, truth_i[c]]
                              for _, src, c in report._LAYOUT])
    # the same bytes as the writer it replaced (format_value per cell, csv.writer)
    integer = {"heel_strike", "toe_off", "walking", "stance", "mode", "faults", "frames_lost", "standing",
               "gait_source"}
    assert path.read_bytes() == _reference_csv(report.LOG_COLUMNS, source, integer, ("phase", "phase_true"))
    for j, name in enumerate(header):
        back = np.array([float(r[j]) if r[j] else np.nan for r in cells])
        want = source[:, j].copy()
        if name in ("phase", "phase_true"):
            want[want < 0] = np.nan
        assert np.array_equal(back, want, equal_nan=True), name
    summary = replay_file(path, tmp_path / "replayed.csv")
    assert summary["samples"] == len(run.telemetry)


def test_the_session_log_header_is_the_declared_column_list(tmp_path):
    from controller.kernels.telemetry import COLUMNS as DECLARED
    with CsvSessionLog(tmp_path / "s.csv", TELEMETRY_COLUMNS) as log:
        log.write(telemetry(5))
    header = (tmp_path / "s.csv").read_text().splitlines()[0].split(",")
    assert header == list(FIRST_COLUMNS) + [c.name for c in DECLARED if c.name not in FIRST_COLUMNS]
    assert sorted(header) == sorted(c.name for c in DECLARED)
