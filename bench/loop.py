"""The real-time loop on the full stack, three ways: idle, with a CPU hog, with a console streaming.

Each configuration walks the simulated wearer in real time (``sim.realtime``:
the tick in its own process on a GIL-free socketcand link, the simulated
driver and sensor node in a third process, real CAN frames over TCP loopback)
for ``--seconds`` and reports, from every tick's telemetry row: the achieved
rate, lateness after the deadline (p50 / p99 / p99.9 / max), deadlines missed
by more than 500 µs (late starts and skipped periods), and the compute of each
phase (read = drain the link and decode, update = estimator + controller +
safety, write = encode and send).

- ``idle``: nothing else runs.
- ``hog``: a CPU-bound Python thread spins in the supervisor's process (the one
  that also runs the telemetry pump, the loggers and the console).
- ``console``: every telemetry row is formatted as a text line and streamed over
  a real pseudo-terminal to a client process reading it with pyserial.

``--live PORT`` serves each run's live view (controller/records/live.py) on loopback, as
``ankle sim --realtime --live PORT`` does; ``python -m bench.live --watch PORT`` is a viewer for it.

Real-time settings: the tick SCHED_FIFO 80 on CPU 1, the simulated devices
SCHED_FIFO 70 on CPU 0, mlockall, 1 ns timer slack; ``--spin-us`` (default
200) polls the clock for that long before each deadline, which buys back the
wake-up latency of a kernel without PREEMPT_RT (``--spin-us 0`` shows it).
A refused setting is reported, and the run goes on without it.
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

from typing import Optional

import numpy as np

from bench._common import emit, parser
from controller.kernels.telemetry import COLUMN as COL
from controller.params.registry import ParamSet
from controller.runtime.process import RealtimeSpec

CONFIGS = ("idle", "hog", "console")
#: the simulated devices poll 200 µs before each step: enough to send on time, and CPU 0 keeps
#: most of its time for the supervisor and the kernel's network work (ksoftirqd is not real-time)
DEVICE_SPIN_NS = 200_000
_CLIENT = r"""
import sys, time, serial
port = serial.Serial(sys.argv[1], timeout=0.2)
lines, last = 0, time.monotonic() + 30.0      # up to 30 s for the stream to begin
while time.monotonic() - last < 2.0:           # then until 2 s of silence
    try:
        data = port.read(65536)
    except serial.SerialException:             # the supervisor closed its end
        break
    if data:
        lines += data.count(b"\n")
        last = time.monotonic()
print(lines)
"""


class _Hog(threading.Thread):
    """A CPU-bound pure-Python thread: it wants the GIL and a core all the time."""

    def __init__(self):
        super().__init__(name="cpu-hog", daemon=True)
        self.halt = threading.Event()
        self.loops = 0

    def run(self):
        x = 0
        while not self.halt.is_set():
            for i in range(10_000):
                x = (x * 31 + i) % 1_000_003
            self.loops += 1


class _ConsoleStream:
    """A telemetry sink writing one text line per row to a pty; a pyserial client reads it."""

    def __init__(self):
        self.master, slave = os.openpty()
        self.path = os.ttyname(slave)
        os.system(f"stty -F {self.path} raw -echo 2>/dev/null")
        self.client = subprocess.Popen([sys.executable, "-c", _CLIENT, self.path], stdout=subprocess.PIPE,
                                       text=True)
        os.close(slave)
        os.set_blocking(self.master, False)
        self.lines = 0
        self.lines_dropped = 0

    def __call__(self, rows: np.ndarray) -> None:
        out = []
        for r in rows:
            out.append(f"t {r[COL['t']]:9.3f} s  phase {r[COL['phase']]:5.2f}  torque "
                       f"{r[COL['torque_cmd_Nm']]:7.2f} N*m  load {r[COL['load']]:7.1f} N  "
                       f"late {r[COL['late_s']] * 1e6:7.1f} us  faults {int(r[COL['faults']])}\n")
        data = "".join(out).encode()
        try:
            # non-blocking: a console that cannot keep up loses lines, it never stalls the pump
            n = os.write(self.master, data)
        except BlockingIOError:
            n = 0
        self.lines += data[:n].count(b"\n")
        self.lines_dropped += len(rows) - data[:n].count(b"\n")

    def close(self) -> int:
        time.sleep(0.5)
        os.close(self.master)
        try:
            out, _ = self.client.communicate(timeout=10)
            return int(out.strip() or 0)
        except (subprocess.TimeoutExpired, ValueError):
            self.client.kill()
            return -1


def run_config(name: str, seconds: float, rate_Hz: float, spin_us: float, io: str = "auto",
               cpu_latency_us: int = 0, live_port: Optional[int] = None) -> dict:
    """One configuration: walk in real time for ``seconds``, return the figures."""
    from sim.realtime import DeviceSpec, run
    tick_rt = RealtimeSpec(priority=80, cpus=(1,), lock_memory=True, timer_slack_ns=1,
                           spin_ns=int(spin_us * 1000), cpu_latency_us=cpu_latency_us)
    device_rt = RealtimeSpec(priority=70, cpus=(0,), lock_memory=True, timer_slack_ns=1,
                             spin_ns=DEVICE_SPIN_NS)
    hog = _Hog() if name == "hog" else None
    console = _ConsoleStream() if name == "console" else None

    def on_start(runtime, devices):
        if console is not None:       # started before the supervisor kept off the tick's CPU
            os.sched_setaffinity(console.client.pid, os.sched_getaffinity(0))
        if hog is not None:
            hog.start()

    params = ParamSet({"loop.rate_Hz": rate_Hz})
    try:
        result = run(duration_s=seconds, params=params, realtime=tick_rt,
                     device=DeviceSpec(realtime=device_rt), sinks=[console] if console else (),
                     on_start=on_start, io=io, live=_live(live_port))
    finally:
        if hog is not None:
            hog.halt.set()
            hog.join()
    from controller.kernels.faults import fault_names
    from sim.realtime import timing_figures
    tel = result.telemetry
    faults = int(np.bitwise_or.reduce(tel[:, COL["faults"]].astype(np.int64))) if len(tel) else 0
    out = {"config": name, "seconds": seconds, **timing_figures(result), "faults": fault_names(faults)}
    if "live" in result.device:
        out["live"] = result.device["live"]
    if hog is not None:
        out["hog_loops"] = hog.loops
    if console is not None:
        out["console_lines_sent"] = console.lines
        out["console_lines_dropped"] = console.lines_dropped
        out["console_lines_received"] = console.close()
    return out


def _live(port: Optional[int]):
    """``--live PORT``: the live view served as in ``ankle sim --realtime --live PORT``."""
    if port is None:
        return None
    from controller.records.live import LiveSpec
    return LiveSpec(port=port)


def _kernel() -> str:
    """The kernel and its preemption model (the figures depend on it)."""
    import platform
    rt = os.path.exists("/sys/kernel/realtime")
    return f"{platform.release()} {'PREEMPT_RT' if rt else platform.version()}"


def main(argv=None) -> None:
    p = parser(__doc__)
    p.add_argument("--seconds", type=float, default=20.0, help="seconds per configuration (default 20)")
    p.add_argument("--rate", type=float, default=1000.0, help="loop rate in Hz (default 1000)")
    p.add_argument("--spin-us", type=float, default=200.0,
                   help="poll the clock this long before each deadline, µs (default 200; 0 = sleep only)")
    p.add_argument("--configs", default=",".join(CONFIGS), help="comma-separated subset of idle,hog,console")
    p.add_argument("--cpu-latency-us", type=int, default=0,
                   help="hold /dev/cpu_dma_latency at this while running (default 0: idle CPUs poll "
                        "instead of halting); -1 leaves it")
    p.add_argument("--io", choices=("auto", "python-can"), default="auto",
                   help="the tick's CAN I/O: the GIL-free link (auto) or python-can's socketcand client")
    p.add_argument("--live", type=int, default=None, metavar="PORT",
                   help="serve each run's live view on ws://127.0.0.1:PORT (controller/records/live.py)")
    args = p.parse_args(argv)
    chosen = [c.strip() for c in args.configs.split(",") if c.strip()]
    bad = [c for c in chosen if c not in CONFIGS]
    if bad or not chosen:
        p.error(f"--configs: unknown {', '.join(bad) or '(none)'}; choose from {', '.join(CONFIGS)}")
    if not 1.0 <= args.seconds <= 3600.0:
        p.error("--seconds must be in 1..3600")
    if not 100.0 <= args.rate <= 2000.0:
        p.error("--rate must be in 100..2000 Hz (the loop.rate_Hz parameter's range)")
    if not 0.0 <= args.spin_us < 1e6 / args.rate:
        p.error("--spin-us must be in 0..one period")
    results = [run_config(c, args.seconds, args.rate, args.spin_us, args.io, args.cpu_latency_us, args.live)
               for c in chosen]
    summary = {"benchmark": "loop", "spin_us": args.spin_us, "cpu_latency_us": args.cpu_latency_us,
               "io": args.io, "live_port": args.live, "kernel": _kernel(), "configs": results}
    by = {r["config"]: r for r in results}
    if "idle" in by and "hog" in by and by["idle"]["lateness"].get("p99_us"):
        summary["hog_over_idle_p99"] = round(by["hog"]["lateness"]["p99_us"] / by["idle"]["lateness"]["p99_us"], 2)
    if args.json:
        emit(summary, True)
        return
    for r in results:
        print(f"[{r['config']}] {r['seconds']:g} s, {r['ticks']} ticks, io: {r['io']}")
        print(f"  rate          {r['rate_achieved_Hz']:.3f} Hz ({r['rate_error_pct']:+.4f} % of "
              f"{r['rate_target_Hz']:g} Hz)")
        lt = r["lateness"]
        print(f"  lateness      p50 {lt['p50_us']:.1f}  p99 {lt['p99_us']:.1f}  p99.9 {lt['p99.9_us']:.1f}  "
              f"max {lt['max_us']:.1f} us")
        print(f"  missed >500us {r['missed_gt_500us']} ({r['missed_pct']:.4f} %), skipped {r['skipped']}, "
              f"overruns {r['overruns']}, ring dropped {r['ring_dropped']}")
        for phase in ("read", "update", "write", "tick_work"):
            f = r[phase]
            print(f"  {phase:<13} p50 {f['p50_us']:.1f}  p99 {f['p99_us']:.1f}  p99.9 {f['p99.9_us']:.1f}  "
                  f"max {f['max_us']:.1f} us")
        print(f"  faults        {', '.join(r['faults']) or 'none'}  (simulated devices: {r['devices_missed']} "
              f"steps missed, max late {r['devices_max_late_us']:.0f} us)")
        for w in r["warnings"] + r["device_warnings"]:
            print(f"  {w}")
        if "console_lines_sent" in r:
            print(f"  console       {r['console_lines_sent']} lines sent ({r['console_lines_dropped']} dropped: "
                  f"pty full), {r['console_lines_received']} received by the pyserial client")
    print(f"kernel {summary['kernel']}; spin {args.spin_us:g} us; cpu latency {args.cpu_latency_us} us; "
          f"io {args.io}")
    if "hog_over_idle_p99" in summary:
        print(f"hog p99 / idle p99 lateness: {summary['hog_over_idle_p99']}")


if __name__ == "__main__":
    main()
