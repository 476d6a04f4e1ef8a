"""The MCAP session record: round trip, channels and schemas, derived events, metadata, O_EXCL,
rotation, retention and reserve, crash recovery (SIGKILL of a writing process, truncation at any
offset), and that the mcap library's own reader opens it."""
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import can
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from mcap.reader import make_reader

from controller.kernels import telemetry
from controller.kernels.faults import FAULTS, WARNINGS, fault_bit
from controller.kernels.telemetry import COLUMN, TELEMETRY_COLUMNS
from controller.records.channels import CHANNEL, CHANNELS, COLUMN_RESOLUTION, telemetry_digits
from controller.records.mcaplog import McapSessionLog
from controller.records.mcapread import McapSession
from controller.records.retention import Retention, RotatingSession, session_key
from controller.records.sources import open_records

ROOT = Path(__file__).resolve().parents[1]
N = len(TELEMETRY_COLUMNS)


def rows(n, seed=0):
    """n plausible rows: integral integer columns, physical values of gait size, t at 1 kHz."""
    rng = np.random.default_rng(seed)
    out = rng.normal(size=(n, N)) * 50
    out[:, COLUMN["t"]] = np.arange(n) / 1000.0
    for c in telemetry.COLUMNS:
        if c.integer:
            out[:, COLUMN[c.name]] = rng.integers(0, 3, n)
    out[:, COLUMN["faults"]] = 0
    out[:, COLUMN["warnings"]] = 0
    out[:, COLUMN["mode"]] = 1
    return out


def close_enough(a, b):
    for j, name in enumerate(TELEMETRY_COLUMNS):
        d = telemetry_digits(name)
        x, y = a[:, j], b[:, j]
        nan = ~np.isfinite(x)
        assert np.array_equal(nan, np.isnan(y)), name
        x, y = x[~nan], y[~nan]
        if name == "t":                 # to the nanosecond
            assert np.all(np.abs(x - y) <= np.maximum(0.5e-9, 1e-15 * np.abs(x)) * 1.0000001), name
        elif d is None:
            assert np.array_equal(x, y), name
        else:
            step = COLUMN_RESOLUTION.get(name, 0.0)
            small = np.abs(x) < 1e6
            ref = np.where(small, np.round(np.where(small, x, 0.0) / step) * step, x) if step else x
            assert np.all(np.abs(x - ref) <= 0.5 * step * 1.0000001 + 1e-300), name
            assert np.all(np.abs(ref - y) <= 0.5 * 10.0 ** (1 - d) * np.abs(ref) * 1.0000001 + 1e-12 * step), name


def test_every_column_round_trips_within_its_digits_and_the_order_is_the_given_one(tmp_path):
    data = rows(5000)
    order = list(reversed(TELEMETRY_COLUMNS))
    with McapSessionLog(tmp_path / "s.mcap", order, metadata={"run": {"a": {"b": 1}}}) as log:
        given_order = data[:, [COLUMN[c] for c in order]]
        for k in range(0, len(data), 333):
            log.write(given_order[k:k + 333])
    s = McapSession(tmp_path / "s.mcap")
    back = np.concatenate(list(s.iter_blocks(rows=1000)))
    assert back.shape == data.shape and s.complete and not s.problems
    close_enough(data, back)
    assert json.loads(s.metadata["run"]["a"]) == {"b": 1}
    assert s.summary()["rows"] == 5000


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.lists(st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.just(0.0),
                                   st.floats(min_value=-1e300, max_value=1e300)),
                         min_size=N, max_size=N), min_size=1, max_size=20))
def test_any_values_nan_inf_extremes_read_back(tmp_path_factory, values):
    path = tmp_path_factory.mktemp("h") / "h.mcap"
    data = np.array(values, dtype=np.float64)
    with McapSessionLog(path, TELEMETRY_COLUMNS) as log:
        log.write(data)
    back = np.concatenate(list(McapSession(path).iter_blocks()))
    expected = np.where(np.isfinite(data), data, np.nan)
    rounded = np.array([telemetry_digits(n) is not None for n in TELEMETRY_COLUMNS])
    # documented: a rounded value beyond +-1.7e308 is written as +-1.7e308 (it would read back as inf)
    expected = np.where(rounded & (np.abs(expected) > 1.7e308), np.sign(expected) * 1.7e308, expected)
    close_enough(expected, back)


def test_every_channel_with_its_schema_and_messages_valid_by_the_mcap_reader(tmp_path):
    path = tmp_path / "c.mcap"
    data = rows(3000)
    data[1500:, COLUMN["faults"]] = fault_bit(FAULTS[0].name)
    data[2000:, COLUMN["mode"]] = 2
    data[2200:2300, COLUMN["warnings"]] = WARNINGS[0].mask
    with McapSessionLog(path, TELEMETRY_COLUMNS) as log:
        log.write(data)
        log.can_frame(can.Message(arbitration_id=0x123, data=b"\x01\x02", is_extended_id=False), True, t_s=0.5)
        log.audit({"time_utc": "2026-01-01T00:00:00.000Z", "role": "prosthetist", "action": "set",
                   "parameter": "pushoff.torque_Nm_kg", "old": "0.9", "new": "1.1", "detail": ""})
        log.stride(1.0, {"stride_s": 1.1, "si_stance_pct": float("nan")})
    seen = {}
    with open(path, "rb") as f:
        reader = make_reader(f)
        for schema, channel, message in reader.iter_messages():
            assert channel.message_encoding == "json" and schema.encoding == "jsonschema"
            assert schema.name == CHANNEL[channel.topic].schema_name
            obj = json.loads(message.data)
            props = json.loads(schema.data)["properties"]
            for key, value in obj.items():         # types as the schema says (no jsonschema needed)
                kinds = props[key]["type"]
                kinds = [kinds] if isinstance(kinds, str) else kinds
                ok = {"number": (int, float), "integer": (int,), "string": (str,), "boolean": (bool,),
                      "null": (type(None),), "object": (dict,)}
                assert any(isinstance(value, ok[k]) for k in kinds), (channel.topic, key, value)
            seen.setdefault(channel.topic, []).append(obj)
    assert set(seen) == {c.topic for c in CHANNELS}
    events = [(e["t"], e["kind"], e["name"]) for e in seen["/events"]]
    assert events == [(0.0, "mode", "walk"), (1.5, "fault_on", FAULTS[0].name), (2.0, "mode", "safe"),
                      (2.2, "warning_on", WARNINGS[0].name), (2.3, "warning_off", WARNINGS[0].name)]
    assert seen["/events"][1]["text"] == FAULTS[0].advice
    assert seen["/can"][0] == {"t": 0.5, "id": 0x123, "extended": False, "rx": True, "dlc": 2, "data": "0102"}
    assert seen["/audit"][0]["parameter"] == "pushoff.torque_Nm_kg" and seen["/audit"][0]["new"] == "1.1"
    assert seen["/strides"][0]["fields"]["si_stance_pct"] is None
    s = McapSession(path)
    assert s.summary()["faults_seen"] == [FAULTS[0].name]
    assert [m.arbitration_id for m in s.iter_can()] == [0x123]


def test_a_fault_cleared_is_an_event_and_the_log_time_is_start_plus_t(tmp_path):
    data = rows(400)
    data[100:200, COLUMN["faults"]] = fault_bit(FAULTS[1].name) | fault_bit(FAULTS[2].name)
    data[150:200, COLUMN["faults"]] = fault_bit(FAULTS[2].name)
    with McapSessionLog(tmp_path / "e.mcap", TELEMETRY_COLUMNS, start_ns=10**18) as log:
        log.write(data[:120])
        log.write(data[120:])
    ev = list(McapSession(tmp_path / "e.mcap").iter_messages("/events"))
    got = [(round(e["t"], 3), e["kind"], e["name"]) for e in ev]
    assert got == [(0.0, "mode", "walk"), (0.1, "fault_on", FAULTS[1].name), (0.1, "fault_on", FAULTS[2].name),
                   (0.15, "fault_off", FAULTS[1].name), (0.2, "fault_off", FAULTS[2].name)]
    assert ev[1]["log_time_ns"] == 10**18 + 100_000_000


def test_an_existing_file_is_never_overwritten(tmp_path):
    path = tmp_path / "x.mcap"
    path.write_bytes(b"keep")
    with pytest.raises(FileExistsError):
        McapSessionLog(path, TELEMETRY_COLUMNS)
    assert path.read_bytes() == b"keep"


def test_chunks_close_on_time_so_an_open_file_reads_back_up_to_the_last_second(tmp_path):
    path = tmp_path / "open.mcap"
    log = McapSessionLog(path, TELEMETRY_COLUMNS, chunk_s=0.2)
    try:
        log.write(rows(100))
        time.sleep(0.6)                 # the writer closes and fsyncs the chunk by itself
        back = list(McapSession(path).iter_blocks())
        assert sum(len(b) for b in back) == 100
    finally:
        log.close()


CHILD = """
import sys, time
sys.path[:0] = [{root!r}, {tests!r}]
import numpy as np
from test_mcaplog import rows
from controller.records.mcaplog import McapSessionLog
from controller.kernels.telemetry import TELEMETRY_COLUMNS
log = McapSessionLog({path!r}, TELEMETRY_COLUMNS, chunk_s=0.25)
data = rows(200000, seed={seed})
sys.stdin.readline()
print("writing", flush=True)
t0 = time.monotonic()
for k in range(0, len(data), 10):          # 1 kHz in 10-row batches, in real time
    log.write(data[k:k + 10])
    time.sleep(max(0.0, t0 + (k + 10) / 1000 - time.monotonic()))
"""


def test_sigkill_of_a_writing_process_loses_at_most_the_last_chunk(tmp_path):
    rng = random.Random(3)
    lost = []
    for i in range(4):
        path = tmp_path / f"k{i}.mcap"
        code = CHILD.format(root=str(ROOT), tests=str(ROOT / "tests"), path=str(path), seed=i)
        proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        try:
            proc.stdin.write("go\n")
            proc.stdin.flush()
            assert proc.stdout.readline() == "writing\n", proc.stderr.read()
            ran = rng.uniform(1.0, 2.5)
            time.sleep(ran)
            proc.send_signal(signal.SIGKILL)
            assert proc.wait(timeout=10) == -signal.SIGKILL
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            for f in (proc.stdin, proc.stdout, proc.stderr):
                f.close()
        s = McapSession(path)
        back = np.concatenate(list(s.iter_blocks()))
        close_enough(rows(200000, seed=i)[:len(back)], back)     # a prefix, exactly the rows written
        lost.append(ran - len(back) / 1000.0)
    # what a kill lost: one chunk's time (0.25 s) and the scheduling of a loaded machine
    assert max(lost) < 1.0, lost
    print(f"SIGKILL lost {min(lost):.2f}..{max(lost):.2f} s of rows")


@pytest.fixture(scope="module")
def whole_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("t") / "whole.mcap"
    with McapSessionLog(path, TELEMETRY_COLUMNS, chunk_bytes=40_000) as log:
        for k in range(0, 3000, 100):
            log.write(rows(3000)[k:k + 100])
    return path


@settings(max_examples=60, deadline=None)
@given(st.floats(min_value=0.0, max_value=1.0))
def test_a_file_cut_at_any_offset_reads_up_to_its_last_complete_chunk(whole_file, tmp_path_factory, share):
    data = whole_file.read_bytes()
    cut = int(share * len(data))
    path = tmp_path_factory.mktemp("cut") / "cut.mcap"
    path.write_bytes(data[:cut])
    try:
        s = McapSession(path)
    except ValueError:
        assert cut < 8                  # cut inside the MCAP magic: not an MCAP file at all
        return
    back = [b for b in s.iter_blocks()]
    n = sum(len(b) for b in back)
    if n:
        close_enough(rows(3000)[:n], np.concatenate(back))
    assert n == 3000 or s.problems or cut < len(data)


def test_a_zero_filled_tail_after_a_power_cut_reads_up_to_the_last_whole_chunk(whole_file, tmp_path):
    data = bytearray(whole_file.read_bytes())
    data[len(data) // 2:] = bytes(len(data) - len(data) // 2)
    path = tmp_path / "z.mcap"
    path.write_bytes(bytes(data))
    s = McapSession(path)
    n = sum(len(b) for b in s.iter_blocks())
    assert 0 < n < 3000 and s.problems


def test_rotation_by_size_continues_in_parts_each_a_whole_file(tmp_path):
    said = []
    first = tmp_path / "ankle-20260101-000000.mcap"
    with RotatingSession(first, TELEMETRY_COLUMNS, rotate_bytes=50_000, say=said.append,
                         chunk_bytes=20_000) as session:
        data = rows(6000)
        for k in range(0, 6000, 200):
            session.write(data[k:k + 200])
            session.sync()
    parts = session.parts
    assert sorted(parts) == sorted(tmp_path.glob("ankle-*.mcap"))
    assert len(parts) >= 3 and parts[0] == first and parts[1].name == "ankle-20260101-000000-part002.mcap"
    back = np.concatenate([b for p in parts for b in McapSession(p).iter_blocks()])
    close_enough(data, back)
    assert all(McapSession(p).summary()["complete"] for p in parts)
    assert {session_key(p.name) for p in parts} == {"ankle-20260101-000000"}


def test_rotation_by_time(tmp_path):
    now = [0.0]
    first = tmp_path / "ankle-t.mcap"
    with RotatingSession(first, TELEMETRY_COLUMNS, rotate_s=60.0, clock=lambda: now[0]) as session:
        session.write(rows(10))
        now[0] = 61.0
        session.write(rows(10))
        session.write(rows(10))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ankle-t-part002.mcap", "ankle-t.mcap"]


def _old_session(directory, stamp, size, age_s):
    for suffix in (".mcap", "-part002.mcap", ".blf"):
        p = directory / f"ankle-{stamp}{suffix}"
        p.write_bytes(b"x" * size)
        os.utime(p, (time.time() - age_s, time.time() - age_s))


def test_the_budget_deletes_the_oldest_whole_sessions_never_the_current_and_warns(tmp_path):
    for i, stamp in enumerate(["20250101-000000", "20250102-000000", "20250103-000000"]):
        _old_session(tmp_path, stamp, 100_000, age_s=1000 - 100 * i)
    (tmp_path / "notes.txt").write_bytes(b"y" * 500_000)            # not a log: never touched
    said = []
    retention = Retention(tmp_path, budget_bytes=650_000, reserve_bytes=0, say=said.append)
    with RotatingSession(tmp_path / "ankle-20260101-000000.mcap", TELEMETRY_COLUMNS, retention=retention,
                         say=said.append) as session:
        session.write(rows(100))
        assert not (tmp_path / "ankle-20250101-000000.mcap").exists()
        assert not (tmp_path / "ankle-20250101-000000-part002.mcap").exists()
        assert (tmp_path / "ankle-20250102-000000.mcap").exists() and (tmp_path / "notes.txt").exists()
        session._check()
    assert any("warning" in line and "budget" in line for line in said), said
    names = [e["name"] for e in McapSession(tmp_path / "ankle-20260101-000000.mcap").iter_messages("/events")]
    assert "budget" in names


def test_the_reserve_deletes_old_sessions_and_stops_the_record_when_it_cannot(tmp_path):
    _old_session(tmp_path, "20250101-000000", 1000, age_s=100)
    said = []
    free = Retention(tmp_path, 1e12, 0).free_bytes()
    # a reserve larger than the free space: the old session goes, then the record stops (the
    # controller would run on: write never raises)
    retention = Retention(tmp_path, 1e12, free + 1e12, say=said.append)
    with pytest.raises(OSError, match="reserve"):
        RotatingSession(tmp_path / "ankle-20260101-000000.mcap", TELEMETRY_COLUMNS, retention=retention)
    assert not (tmp_path / "ankle-20250101-000000.mcap").exists()
    retention.reserve_bytes = 0
    session = RotatingSession(tmp_path / "ankle-20260101-000001.mcap", TELEMETRY_COLUMNS, retention=retention,
                              say=said.append)
    retention.reserve_bytes = free + 1e12
    session.write(rows(10))
    session._check()
    session.write(rows(10))                     # stopped: no error, nothing written
    session.close()
    assert session.error and "reserve" in session.error
    assert any("the controller runs on" in line for line in said)


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_a_full_disk_stops_the_record_and_write_raises_as_the_csv_log(tmp_path):
    log = McapSessionLog(tmp_path / "f.mcap", TELEMETRY_COLUMNS)
    full = os.open("/dev/full", os.O_WRONLY)
    os.dup2(full, log._fd)                      # every write from here on: ENOSPC, as a full disk
    os.close(full)
    log.write(rows(100))
    with pytest.raises(OSError):
        log.sync()
    with pytest.raises(OSError):
        log.write(rows(1))
    with pytest.raises(OSError):
        log.close()


def test_open_records_gives_the_same_protocol_for_mcap_and_csv(tmp_path):
    from controller.records.logger import CsvSessionLog
    data = rows(3000)
    with McapSessionLog(tmp_path / "a.mcap", TELEMETRY_COLUMNS, metadata={"x": {"y": "z"}}) as log:
        log.write(data)
    with CsvSessionLog(tmp_path / "a.csv", TELEMETRY_COLUMNS) as log:
        log.write(data)
    m, c = open_records(tmp_path / "a.mcap"), open_records(tmp_path / "a.csv")
    assert m.metadata["x"] == {"y": "z"} and c.metadata == {}
    mb = np.concatenate(list(m.iter_blocks(1000)))
    cb = np.concatenate(list(c.iter_blocks(1000)))
    for name in ("t", "load", "shank_gyro", "faults"):
        np.testing.assert_allclose(mb[:, list(m.columns).index(name)], cb[:, list(c.columns).index(name)],
                                   rtol=1e-3)
    assert list(m.iter_can()) == [] and list(c.iter_can()) == []
    with pytest.raises(ValueError):
        open_records(tmp_path / "a.txt")


def test_the_audit_trail_goes_to_the_session_record(tmp_path):
    from controller.console.audit import SharedAuditLog
    with McapSessionLog(tmp_path / "au.mcap", TELEMETRY_COLUMNS) as log:
        shared = SharedAuditLog(tmp_path / "state")
        shared.mirrors.append(log.audit)
        audit, _ = shared.open()
        audit.record("prosthetist", "set", "pushoff.torque_Nm_kg", "0.9", "1.1")
        shared.close()
    got = list(McapSession(tmp_path / "au.mcap").iter_messages("/audit"))
    assert [(g["role"], g["parameter"], g["old"], g["new"]) for g in got] == [
        ("prosthetist", "pushoff.torque_Nm_kg", "0.9", "1.1")]


def test_ankle_sim_log_mcap_writes_the_session_file(tmp_path):
    from controller.cli import main
    path = tmp_path / "sim.mcap"
    assert main(["sim", "--duration", "5", "--log", str(path), "--json"]) == 0
    s = McapSession(path)
    summary = s.summary()
    assert summary["rows"] == 5000 and summary["complete"] and summary["messages"]["/strides"] >= 1
    assert "params" in s.metadata and "sim" in s.metadata


@pytest.mark.realtime      # 6 s of `ankle run` on the wall clock against the served simulator
def test_ankle_run_writes_one_mcap_session_with_telemetry_can_events_strides_and_metadata(tmp_path):
    from test_runtime import _Served, _cli
    served = _Served()
    try:
        cfg = served.config(tmp_path, f"""
            [log]
            directory = "{tmp_path / 'logs'}"
        """)
        out = _cli("run", "--config", str(cfg), "--duration", "6")
        assert out.returncode == 0, out.stderr
    finally:
        served.stop()
    files = list((tmp_path / "logs").glob("ankle-*.mcap"))
    assert len(files) == 1, list((tmp_path / "logs").iterdir())
    s = McapSession(files[0])
    summary = s.summary()
    assert summary["complete"] and summary["rows"] > 3000, summary
    assert summary["messages"]["/can"] > 3000 and summary["messages"]["/events"] >= 1, summary
    assert summary["messages"]["/strides"] >= 1, summary
    assert {"software", "run", "params", "drive", "session"} <= set(s.metadata)
    frames = list(s.iter_can())
    assert {0x001, 0x000} <= {m.arbitration_id for m in frames}   # the host's commands, the driver's replies


@pytest.mark.realtime      # 5 s on the wall clock, three processes
def test_ankle_sim_realtime_log_mcap(tmp_path):
    from controller.cli import main
    path = tmp_path / "rt.mcap"
    assert main(["sim", "--realtime", "--duration", "5", "--log", str(path), "--json"]) == 0
    summary = McapSession(path).summary()
    assert summary["complete"] and summary["rows"] > 2500 and summary["messages"]["/strides"] >= 1, summary


def test_cuts_around_every_chunk_boundary_keep_exactly_the_whole_chunks_before_the_cut(whole_file, tmp_path):
    data = whole_file.read_bytes()
    with open(whole_file, "rb") as f:
        chunks = make_reader(f).get_summary().chunk_indexes
    assert len(chunks) >= 5
    start_ns = int(McapSession(whole_file).start_ns)
    t = rows(3000)[:, COLUMN["t"]]
    for c in chunks:
        end = c.chunk_start_offset + c.chunk_length
        for cut in (c.chunk_start_offset - 1, c.chunk_start_offset, c.chunk_start_offset + 1, end - 1, end, end + 1):
            path = tmp_path / f"cut{cut}.mcap"
            path.write_bytes(data[:cut])
            whole = [d for d in chunks if d.chunk_start_offset + d.chunk_length <= cut]
            last_ns = max((d.message_end_time for d in whole), default=-1)
            expected = int(np.sum(start_ns + np.round(t * 1e9).astype(np.int64) <= last_ns))
            n = sum(len(b) for b in McapSession(path).iter_blocks())
            assert n == expected, (cut, n, expected)
