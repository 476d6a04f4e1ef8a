"""``--can-log`` in lock-step: every frame on the simulated bus, stamped with simulated time."""
import subprocess
import sys
from pathlib import Path

import can
import cantools
import numpy as np
import pytest

from controller.kernels.telemetry import COLUMN
from hal._link import FrameRecorder, TapLink, memory_link_pair
from hal._sensor_frames import IMU_ID, LOAD_ID
from sim import harness

ROOT = Path(__file__).resolve().parent.parent
DBC = ROOT / "hal" / "sensor_node.dbc"


def test_a_tap_records_what_is_sent_once_with_the_time_it_was_sent():
    a, b = memory_link_pair(4, 4)
    rec = FrameRecorder(8)
    ta, tb = TapLink(a, rec), TapLink(b, rec)
    rec.now_s = 0.25
    ta.transmit(0x10, b"\x01\x02")
    rec.now_s = 0.5
    tb.transmit(0x20, b"\x03", 2)                 # a remote-flagged frame passes with its flag
    assert tb.receive() == (0x10, b"\x01\x02", 0) and ta.receive() == (0x20, b"\x03", 2)
    assert rec.drain() == [(0.25, 0x10, 0, b"\x01\x02"), (0.5, 0x20, 2, b"\x03")]
    assert rec.drain() == []
    # a send the link refuses (its peer's ring is full) was never on the bus: not recorded
    for _ in range(4):
        ta.transmit(0x11, b"")
    with pytest.raises(OSError):
        ta.transmit(0x12, b"")
    assert [f[1] for f in rec.drain()] == [0x11] * 4 and ta.send_failures == 1
    # a full recorder drops (counted), never overwrites
    small = FrameRecorder(1)
    tc = TapLink(memory_link_pair(4, 4)[0], small)
    tc.transmit(1, b"")
    tc.transmit(2, b"")
    assert small.dropped == 1 and [f[1] for f in small.drain()] == [1]


@pytest.mark.parametrize("fmt", ["blf", "asc"])
def test_a_lockstep_run_writes_its_bus_traffic_on_the_simulated_clock(tmp_path, fmt):
    path = tmp_path / f"walk.{fmt}"
    run = harness.run(duration_s=2.0, can_log=path)
    reader = can.BLFReader(str(path)) if fmt == "blf" else can.ASCReader(str(path))
    frames = list(reader)
    assert len(frames) == run.can_log_frames > 4 * 2000 * 0.9      # drive + IMU + load per ms, both ways
    stamps = np.array([m.timestamp for m in frames])
    assert np.all(np.diff(stamps) >= 0) and stamps[0] >= 0.0 and stamps[-1] < 2.0
    on_grid = np.abs(stamps * 1000.0 - np.round(stamps * 1000.0))
    assert on_grid.max() < 1e-6, "stamped with the simulated tick time, not the wall clock"
    # the logged load frames decode (independent DBC) to what the tick received at that time
    db = cantools.database.load_file(str(DBC))
    load_frames = [m for m in frames if m.arbitration_id == LOAD_ID]
    assert len(load_frames) >= 1900 and any(m.arbitration_id == IMU_ID for m in frames)
    t = run.telemetry[:, COLUMN["t"]]
    for m in load_frames[500:1500:250]:
        k = int(np.searchsorted(t, m.timestamp - 1e-9))     # the host reads it in the same step
        decoded = db.decode_message(LOAD_ID, bytes(m.data))
        load_N = next(v for name, v in decoded.items() if "load" in name.lower())
        assert run.telemetry[k, COLUMN["load"]] == pytest.approx(load_N, abs=0.5)
    # the drive's commands are there too, sent by the host
    assert sum(m.arbitration_id == 1 for m in frames) >= 1900


def test_ankle_sim_can_log_works_in_lockstep(tmp_path):
    path = tmp_path / "walk.blf"
    out = subprocess.run([sys.executable, "-m", "controller.cli", "sim", "--duration", "1", "--can-log",
                          str(path)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert f"can_log            {path}" in out.stdout
    assert sum(1 for _ in can.BLFReader(str(path))) > 3000
