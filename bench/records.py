"""How much disk and CPU the session record takes: MB per minute of walking, CSV against MCAP.

- ``lockstep``: 60 s of steady walking in lock-step (``sim.harness.run``, every telemetry column;
  the timing columns are empty there), written by :class:`~controller.records.logger.CsvSessionLog`
  and :class:`~controller.records.mcaplog.McapSessionLog` in 10-row batches (what the pump hands
  over every 10 ms), telemetry alone and with the raw CAN traffic (the run's frames, recorded on
  the bus, given to ``can_frame`` one message per frame): MB per minute, the writer's CPU share
  (process CPU time of writing the minute, every thread, / 60 s), the longest a ``write`` call
  kept its caller, the longest chunk write + fsync on the writer thread.
- ``realtime`` (``--realtime-s``, 0 skips): the three-process real-time session
  (``sim.realtime.run``), the MCAP record as its telemetry sink: real timing columns
  (``late_s``, ``read_s``, ``update_s``, ``write_s``), so the size with their noise.

Prints figures, never pass/fail.  A day of use is taken as 8 h (480 min) of walking.
"""
from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np

from bench._common import emit, parser
from controller.kernels.telemetry import TELEMETRY_COLUMNS

BATCH = 10


def _write(log, rows: np.ndarray) -> dict:
    cpu0 = time.process_time()
    worst = 0.0
    for k in range(0, len(rows), BATCH):
        t0 = time.perf_counter()
        log.write(rows[k:k + BATCH])
        worst = max(worst, time.perf_counter() - t0)
    log.close()
    return {"cpu_s": time.process_time() - cpu0, "worst_write_call_ms": round(worst * 1e3, 3)}


def _mb_min(path: Path, seconds: float) -> float:
    return round(os.path.getsize(path) / 1e6 * 60.0 / seconds, 3)


def lockstep(directory: Path, seconds: float = 60.0) -> dict:
    import can
    from controller.records.logger import CsvSessionLog
    from controller.records.mcaplog import McapSessionLog
    from sim import harness
    blf = directory / "traffic.blf"
    run = harness.run(duration_s=seconds, seed=1, can_log=blf)
    rows = run.telemetry
    frames = list(can.BLFReader(str(blf)))
    out = {"seconds": seconds, "rows": len(rows), "can_frames_per_s": round(len(frames) / seconds, 1)}
    csv = CsvSessionLog(directory / "t.csv", TELEMETRY_COLUMNS)
    c = _write(csv, rows)
    out["csv_MB_min"] = _mb_min(directory / "t.csv", seconds)
    out["csv_cpu_share_pct"] = round(100 * c["cpu_s"] / seconds, 2)
    out["blf_can_MB_min"] = _mb_min(blf, seconds)
    mcap = McapSessionLog(directory / "t.mcap", TELEMETRY_COLUMNS)
    m = _write(mcap, rows)
    out["mcap_MB_min"] = _mb_min(directory / "t.mcap", seconds)
    out["mcap_cpu_share_pct"] = round(100 * m["cpu_s"] / seconds, 2)
    out["mcap_worst_write_call_ms"] = m["worst_write_call_ms"]
    out["mcap_longest_chunk_write_fsync_ms"] = round(mcap.longest_fsync_s * 1e3, 2)
    # with the CAN traffic: frames interleaved with the rows by time, as the listener hands them over
    both = McapSessionLog(directory / "tc.mcap", TELEMETRY_COLUMNS)
    cpu0 = time.process_time()
    t_frames = np.array([f.timestamp for f in frames])
    j = 0
    for k in range(0, len(rows), BATCH):
        both.write(rows[k:k + BATCH])
        t_end = rows[min(k + BATCH, len(rows)) - 1, 0]
        while j < len(frames) and t_frames[j] <= t_end:
            both.can_frame(frames[j], True, t_s=float(t_frames[j]))
            j += 1
    both.close()
    out["mcap_with_can_MB_min"] = _mb_min(directory / "tc.mcap", seconds)
    out["mcap_can_only_MB_min"] = round(out["mcap_with_can_MB_min"] - out["mcap_MB_min"], 3)
    out["mcap_with_can_cpu_share_pct"] = round(100 * (time.process_time() - cpu0) / seconds, 2)
    out["day_480min_mcap_MB"] = round(out["mcap_MB_min"] * 480, 0)
    out["day_480min_mcap_with_can_MB"] = round(out["mcap_with_can_MB_min"] * 480, 0)
    out["day_480min_csv_MB"] = round(out["csv_MB_min"] * 480, 0)
    return out


def realtime(directory: Path, seconds: float) -> dict:
    from controller.records.mcaplog import McapSessionLog
    from sim import realtime as rt
    log = McapSessionLog(directory / "rt.mcap", TELEMETRY_COLUMNS)
    calls = []

    def sink(rows):
        t0 = time.perf_counter()
        log.write(rows)
        calls.append(time.perf_counter() - t0)
    result = rt.run(duration_s=seconds, sinks=[sink])
    log.close()
    rows = log.rows_written
    return {"seconds": seconds, "rows": rows, "mcap_MB_min": round(os.path.getsize(directory / "rt.mcap") / 1e6
                                                                     * 60.0 * 1000.0 / max(rows, 1), 3),
            "worst_write_call_ms": round(max(calls) * 1e3, 3) if calls else None,
            "longest_chunk_write_fsync_ms": round(log.longest_fsync_s * 1e3, 2),
            "ticks": getattr(result, "ticks", None)}


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=60.0, help="lock-step seconds (default 60)")
    p.add_argument("--realtime-s", type=float, default=20.0, help="real-time seconds (default 20; 0 skips)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-records-") as d:
        result = {"lockstep": lockstep(Path(d), args.seconds)}
        if args.realtime_s > 0:
            result["realtime"] = realtime(Path(d), args.realtime_s)
    emit(result, args.json)


if __name__ == "__main__":
    main()
