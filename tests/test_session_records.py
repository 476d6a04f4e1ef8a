"""An MCAP session end to end (issue 19): written by the session log from a walk on the whole stack,
then replayed, reported, listed, exported and copied by the real CLI, and read back cut short.

The pieces have their own tests (tests/test_mcaplog.py, tests/test_streaming.py); this one checks
that they fit: what ``ankle replay`` and ``ankle report`` make of a session is the same whether it
comes as the MCAP file or as its CSV export, and what ``ankle logs`` says of it is what was written.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from controller.kernels.telemetry import TELEMETRY_COLUMNS
from controller.records.mcaplog import McapSessionLog
from controller.records.mcapread import McapSession
from sim import harness
from sim.faults import Injection

ROOT = Path(__file__).resolve().parent.parent


def ankle(*args, cwd):
    return subprocess.run([sys.executable, "-m", "controller.cli", *args], cwd=cwd, capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})


def _table(path):
    """A CSV as {column: its cells}."""
    import csv
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return {name: [r[i] for r in rows[1:]] for i, name in enumerate(rows[0])}


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    """20 s of walking with an IMU fault at 12 s, a profile loaded over the console at 5 s."""
    d = tmp_path_factory.mktemp("sessions")
    run = harness.run(duration_s=20.0, seed=4, faults=[Injection("imu_loss", 12.0, 1.0)])
    path = d / "ankle-20261203-101500.mcap"
    with McapSessionLog(path, TELEMETRY_COLUMNS, metadata={"sim": {"seed": "4"}}) as log:
        for k in range(0, len(run.telemetry), 1000):
            log.write(run.telemetry[k:k + 1000])
        log.audit({"time_utc": "2026-12-03T10:15:05Z", "role": "clinician", "action": "profile load",
                   "detail": "profile load brisk"})
    return d, path, run


def test_replay_of_the_mcap_session_is_the_replay_of_its_csv_export(session):
    d, path, _ = session
    out = ankle("logs", "export", path.name, "--csv", "export.csv", cwd=d)
    assert out.returncode == 0, out.stderr
    a = ankle("replay", path.name, "--out", "from_mcap.csv", "--json", cwd=d)
    b = ankle("replay", "export.csv", "--out", "from_csv.csv", "--json", cwd=d)
    assert a.returncode == 0 and b.returncode == 0, a.stderr + b.stderr
    # the same rows, cell for cell (the input columns come in each file's own order)
    assert _table(d / "from_mcap.csv") == _table(d / "from_csv.csv")
    ja, jb = json.loads(a.stdout), json.loads(b.stdout)
    assert ja["heel_strikes"] == jb["heel_strikes"] > 10
    assert set(ja["faults"]) == set(jb["faults"]) == {"imu"}            # the IMU was lost at 12 s
    assert 12.0 <= ja["faults"]["imu"]["first_s"] < 12.05


def test_report_of_the_mcap_session_is_the_report_of_its_csv_export(session):
    d, path, _ = session
    assert ankle("logs", "export", path.name, "--csv", "export2.csv", cwd=d).returncode == 0
    a = ankle("report", path.name, "--json", cwd=d)
    b = ankle("report", "export2.csv", "--json", cwd=d)
    assert a.returncode == 0 and b.returncode == 0, a.stderr + b.stderr
    ja, jb = json.loads(a.stdout), json.loads(b.stdout)
    ja.pop("log", None), jb.pop("log", None)
    assert ja == jb


def test_logs_list_names_the_session_its_faults_and_profile(session):
    d, path, run = session
    out = ankle("logs", "list", str(d), "--json", cwd=d)
    assert out.returncode == 0, out.stderr
    rows = {r["name"]: r for r in json.loads(out.stdout)["sessions"]}
    mine = rows[path.name]
    assert mine["rows"] == len(run.telemetry) and mine["faults_seen"] == ["imu"]
    assert mine["profile"] == "brisk" and mine["problem"] is None
    assert abs(mine["duration_s"] - 19.999) < 0.01


def test_a_session_cut_short_replays_up_to_its_last_whole_chunk(session, tmp_path):
    d, path, run = session
    data = path.read_bytes()
    cut = tmp_path / "cut.mcap"
    cut.write_bytes(data[: int(len(data) * 0.6)])            # a power cut: no footer, half a chunk
    s = McapSession(cut)
    rows = np.concatenate(list(s.iter_blocks(4096)))
    assert 0.3 * len(run.telemetry) < len(rows) < 0.65 * len(run.telemetry)
    # the rows kept are the first ones (t to the nanosecond, as the record writes it)
    np.testing.assert_allclose(rows[:, 0], run.telemetry[: len(rows), 0], rtol=0, atol=1e-9)
    out = ankle("replay", str(cut), "--out", str(tmp_path / "r.csv"), cwd=tmp_path)
    assert out.returncode == 0, out.stderr


def test_copy_off_the_board_verifies_and_never_overwrites(session, tmp_path):
    d, path, _ = session
    out = ankle("logs", "copy", str(path), "--to", str(tmp_path), cwd=d)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / path.name).read_bytes() == path.read_bytes()
    (tmp_path / "other.mcap").write_bytes(b"not this one")
    clash = tmp_path / "clash"
    clash.mkdir()
    (clash / path.name).write_bytes(b"a different file of the same name")
    again = ankle("logs", "copy", str(path), "--to", str(clash), cwd=d)
    assert again.returncode == 2 and len(again.stderr.strip().splitlines()) == 1
    assert (clash / path.name).read_bytes() == b"a different file of the same name"


def test_ankle_sim_log_mcap_holds_the_can_traffic_as_the_blf_log_does(tmp_path):
    """Lock-step ``ankle sim --log F.mcap`` records the bus in /can, the same frames the simulator's
    ``--can-log F.blf`` writes, with the direction seen from the controller."""
    import can
    out = ankle("sim", "--duration", "3", "--log", "s.mcap", "--can-log", "s.blf", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert ankle("logs", "export", "s.mcap", "--can", "back.asc", cwd=tmp_path).returncode == 0
    blf = [(round(m.timestamp, 6), m.arbitration_id, bytes(m.data)) for m in can.BLFReader(str(tmp_path / "s.blf"))]
    # the session's own times (the simulated clock) with the frames the export wrote, in order
    times = [f["t"] for f in McapSession(tmp_path / "s.mcap").iter_messages("/can")]
    exported = list(can.ASCReader(str(tmp_path / "back.asc")))
    back = [(round(t, 6), m.arbitration_id, bytes(m.data)) for t, m in zip(times, exported)]
    assert len(blf) > 10000 and len(exported) == len(times) and back == blf
    sent = {f["id"] for f in McapSession(tmp_path / "s.mcap").iter_messages("/can") if not f["rx"]}
    assert sent == {1}                 # the AK drive's command id: the one id the controller sends


@pytest.mark.realtime      # three processes on the wall clock
def test_ankle_sim_realtime_log_mcap_holds_the_can_traffic(tmp_path):
    out = ankle("sim", "--realtime", "--duration", "3", "--log", "rt.mcap", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    counts = McapSession(tmp_path / "rt.mcap").summary()["messages"]
    # about 4 frames a tick on the bus; the share is generous for a busy machine
    assert counts["/telemetry"] > 1500 and counts["/can"] > 2 * counts["/telemetry"]


class _SmallBacklog(McapSessionLog):
    MAX_PENDING_ROWS = 3000         # a writer this far behind drops: made small to get there


class _StalledDisk(_SmallBacklog):
    """The writer thread holds at its first rows until ``disk`` is set: a stalled SD card, made
    certain (the verdict does not depend on how the threads happen to be scheduled)."""

    disk = None

    def _rows(self, rows):
        self.disk.wait(30)
        super()._rows(rows)


def test_a_writer_too_far_behind_drops_and_says_so_or_waits_when_asked(tmp_path):
    """The device's pump never waits for the record (a stalled disk must not back up the
    telemetry ring): past the backlog rows are dropped, counted and said in /events.  A finished
    run written at once (``ankle sim --log F.mcap``) waits instead: nothing is lost.  (The old
    writer dropped silently: 132 288 of 10^6 rows written at once reached the file.)"""
    rows = np.zeros((60_000, len(TELEMETRY_COLUMNS)))
    rows[:, 0] = np.arange(len(rows)) * 1e-3
    with _SmallBacklog(tmp_path / "wait.mcap", TELEMETRY_COLUMNS) as log:
        for k in range(0, len(rows), 1000):
            log.write(rows[k:k + 1000], wait=True)
    back = np.concatenate(list(McapSession(tmp_path / "wait.mcap").iter_blocks(8192)))
    assert len(back) == len(rows) and log.rows_dropped == 0
    import threading
    _StalledDisk.disk = threading.Event()
    with _StalledDisk(tmp_path / "drop.mcap", TELEMETRY_COLUMNS) as log:
        for k in range(0, len(rows), 1000):
            log.write(rows[k:k + 1000])
        _StalledDisk.disk.set()         # the disk comes back: what was queued is written
    s = McapSession(tmp_path / "drop.mcap")
    kept = sum(len(b) for b in s.iter_blocks(8192))
    said = [e for e in s.iter_messages("/events") if e["name"] == "rows_dropped"]
    assert log.rows_dropped == len(rows) - 3000 and kept == 3000 and len(said) == 1
