"""Streaming session records: rows per second and peak memory of ``ankle replay``, ``ankle report``
(text only) and ``ankle logs export --csv`` at 10^5, 10^6 and 10^7 rows.

The input is a simulated walk (``ankle sim --duration 60`` on the full stack: its CSV session log,
the device's columns) repeated with ``t`` carried on at 1 kHz to the length wanted, written to a
temporary directory (10^7 rows is about 2.3 GB of CSV: the free space is checked first, and a size
that does not fit is skipped with the reason).  Each command runs in its own child process; its
peak memory is the child's own peak resident set (its ``VmHWM`` at exit: ``ru_maxrss`` would carry
the parent's peak over fork and exec), its rate the rows over the child's wall time (process start
and imports included).

``--code DIR`` runs the commands from another checkout (e.g. the code before streaming:
``git worktree add /tmp/before 2b1866e`` and its extensions built or copied), so before and after
are measured on the same input and machine.  A command that refuses the input (the old readers
refused a log over 256 MiB) or fails is reported with its one-line error, not as a figure.

Prints figures, never pass/fail.  ``--json``: one JSON object.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

ROOT = Path(__file__).resolve().parents[1]
SIZES = (10**5, 10**6, 10**7)
TASKS = ("replay", "report", "export")
SIM_SECONDS = 60


def make_input(path: Path, rows: int, tmp: Path) -> None:
    """``rows`` rows of a simulated walk's session log, repeated, ``t`` continuing at 1 kHz."""
    base = tmp / "walk.csv"
    if not base.exists():
        subprocess.run([sys.executable, "-m", "controller.cli", "sim", "--duration", str(SIM_SECONDS),
                        "--log", str(base)], check=True, capture_output=True, cwd=ROOT,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    lines = base.read_text().splitlines()
    header, body = lines[0], lines[1:]
    if not header.startswith("t,"):
        raise SystemExit("bench.stream: the simulated log's first column is not t")
    rest = [ln.split(",", 1)[1] for ln in body]
    m = len(rest)
    with open(path, "w", newline="") as f:
        f.write(header + "\n")
        batch = 100_000
        for start in range(0, rows, batch):
            stop = min(rows, start + batch)
            f.write("".join([f"{k / 1000!r},{rest[k % m]}\n" for k in range(start, stop)]))


#: Run a module as ``python -m`` does, and write the process's own peak resident set (VmHWM, kB) to
#: the file named by BENCH_PEAK_FILE at exit.  ru_maxrss is not enough: Linux keeps the parent's
#: peak across fork and exec in it, so a child of a large process (pytest) would report that.
_PEAK_WRAPPER = """
import atexit, os, runpy, sys
def _peak():
    with open('/proc/self/status') as f:
        kb = [line.split()[1] for line in f if line.startswith('VmHWM:')]
    with open(os.environ['BENCH_PEAK_FILE'], 'w') as f:
        f.write(kb[0] if kb else '')
atexit.register(_peak)
module = sys.argv[1]
sys.argv = sys.argv[1:]
runpy.run_module(module, run_name='__main__', alter_sys=True)
"""


def run_child(argv: List[str], code: Path) -> Dict[str, object]:
    """Run ``argv`` (``python -m MODULE ...``) in a child: wall seconds, the child's own peak resident
    memory [MB] (its VmHWM; ru_maxrss where /proc has none), exit code, last error line."""
    fd, peak_file = tempfile.mkstemp(prefix="bench-peak-")
    os.close(fd)
    env = {**os.environ, "PYTHONPATH": str(code), "MPLBACKEND": "Agg", "BENCH_PEAK_FILE": peak_file}
    if len(argv) > 2 and argv[1] == "-m":
        argv = [argv[0], "-c", _PEAK_WRAPPER, *argv[2:]]
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=code, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    try:
        peak_kB = float(Path(peak_file).read_text() or "nan")
    except (OSError, ValueError):
        peak_kB = float("nan")
    finally:
        with contextlib.suppress(OSError):
            os.unlink(peak_file)
    if peak_kB != peak_kB:
        peak_kB = usage.ru_maxrss
    lines = err.decode("utf-8", "replace").strip().splitlines()
    return {"wall_s": round(wall, 3), "peak_MB": round(peak_kB / 1024.0, 1), "exit": proc.returncode,
            "error": lines[-1][:300] if proc.returncode and lines else None}


def command(task: str, src: Path, out: Path) -> List[str]:
    cli = [sys.executable, "-m", "controller.cli"]
    if task == "replay":
        return cli + ["replay", str(src), "--out", str(out), "--json"]
    if task == "report":
        return cli + ["report", str(src), "--json"]
    return cli + ["logs", "export", str(src), "--csv", str(out)]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default=",".join(str(s) for s in SIZES), help="rows, comma-separated")
    ap.add_argument("--tasks", default=",".join(TASKS), help=f"of {', '.join(TASKS)}")
    ap.add_argument("--code", type=Path, default=ROOT, help="the checkout whose commands to run (default: this one)")
    ap.add_argument("--dir", type=Path, default=None, help="where the inputs go (default: a new temporary directory)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    sizes = [int(float(s)) for s in args.sizes.split(",") if s]
    tasks = [t for t in args.tasks.split(",") if t]
    tmp = Path(tempfile.mkdtemp(prefix="bench-stream-", dir=args.dir))
    results = {"code": str(args.code), "input": f"ankle sim --duration {SIM_SECONDS} log, repeated", "sizes": {}}
    try:
        for rows in sizes:
            entry: Dict[str, object] = {}
            results["sizes"][str(rows)] = entry
            src = tmp / f"in-{rows}.csv"
            need = rows * 240 * 2.2           # input, one output, and room
            free = shutil.disk_usage(tmp).free
            if free < need:
                entry["skipped"] = f"{free / 1e9:.1f} GB free in {tmp}, about {need / 1e9:.1f} GB needed"
                continue
            t0 = time.perf_counter()
            make_input(src, rows, tmp)
            entry["input_MB"] = round(src.stat().st_size / 1e6, 1)
            entry["generate_s"] = round(time.perf_counter() - t0, 1)
            for task in tasks:
                out = tmp / f"out-{rows}-{task}.csv"
                r = run_child(command(task, src, out), args.code)
                if r["exit"] == 0:
                    r["rows_per_s"] = round(rows / r["wall_s"])
                entry[task] = r
                with_out = out.exists()
                if with_out:
                    out.unlink()
                if not args.json:
                    figure = (f"{r['rows_per_s']:>10,} rows/s, peak {r['peak_MB']:7.1f} MB" if r["exit"] == 0
                              else f"failed (exit {r['exit']}): {r['error']}")
                    print(f"{rows:>10,} rows  {task:<7} {r['wall_s']:8.2f} s  {figure}", flush=True)
            src.unlink()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
