"""Cost of the per-tick pieces: frame codecs and the estimator -> controller -> safety update.

``drives``: every drive of the table (hal.drives), its per-tick codec timed inside compiled
code (``DriveCodec.time_encode`` / ``time_decode``, no Python call per frame): one encode of
this tick's command, and one decode of each kind of frame the drive sends, taken from a short
lock-step walk on its simulated drive (so the frames are what the drive really sends).
The other codec and update figures are per Python call (they include the call into the
compiled module).  The estimator step is timed alone, inside the compiled loop,
one ``clock_gettime`` pair per step, over 200 s of the simulated wearer's
sensor trace with speed steps (the shank template matcher at work): median,
p99 and the worst step (the heel-strike step that learns the stride).
"""
from __future__ import annotations

import struct

import numpy as np

from bench._common import emit, parser, per_call_ns
from controller.runtime.loop import build_tick
from controller.params.registry import ParamSet
from controller.kernels._estimator import Estimator
from hal import _mit, _sensor_frames
from hal.ak import mit_range
from sim.traces import walking_trace


def _python_pack(p, v, kp, kd, t, r):
    """The MIT command in plain Python, the baseline the Cython codec replaces."""
    def u(x, lo, hi, bits):
        x = min(max(x, lo), hi)
        return int(round((x - lo) * ((1 << bits) - 1) / (hi - lo)))
    pi, vi = u(p, r["p_min"], r["p_max"], 16), u(v, r["v_min"], r["v_max"], 12)
    kpi, kdi = u(kp, r["kp_min"], r["kp_max"], 12), u(kd, r["kd_min"], r["kd_max"], 12)
    ti = u(t, r["t_min"], r["t_max"], 12)
    return struct.pack(">HBBBBBB", pi, vi >> 4, ((vi & 0xF) << 4) | (kpi >> 8), kpi & 0xFF, kdi >> 4,
                       ((kdi & 0xF) << 4) | (ti >> 8), ti & 0xFF)


def drive_codecs(n: int = 200_000) -> dict:
    """Encode and decode [ns] of every drive's codec, on frames its simulated drive sent."""
    import tempfile
    from pathlib import Path

    import can

    from hal.drives import DRIVE_NAMES
    from sim import harness
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in DRIVE_NAMES:
            log = Path(tmp) / f"{name}.blf"
            run = harness.run(duration_s=0.3, driver=name, can_log=log)
            codec = run.codec
            last = {}
            for m in can.BLFReader(str(log)):
                if codec.listens_to(m.arbitration_id) and m.dlc > 0:
                    last[m.arbitration_id] = bytes(m.data)      # the last of each kind
            out[name] = {"encode_ns": round(codec.time_encode(n, 5.0), 1),
                         "frames_per_command": len(codec.encode_command(5.0, 0.0, 0.0, 0.0, 0.0)),
                         "decode_ns": {f"0x{i:03X}": round(codec.time_decode(i, d, n), 1)
                                       for i, d in sorted(last.items())}}
    return out


def main(argv=None) -> None:
    args = parser(__doc__).parse_args(argv)
    r = mit_range("AK80-9")
    params = ParamSet()
    tick = build_tick(params, r, 1, 0)
    reply = _mit.pack_reply(r, 1, 0.1, 0.2, 1.0)
    imu = _sensor_frames.encode_imu(1.0, 0.5, 9.8, 1, 0)
    payload = bytearray(8)
    assert _python_pack(0.1, 0.2, 0.0, 0.0, 1.0, r) == _mit.pack_command(r, 0.1, 0.2, 0.0, 0.0, 1.0)

    trace = walking_trace("slow-fast", 1.25, 200.0, stride_cv=0.025, seed=0)
    n = trace["t"].size
    est = Estimator()
    est.configure(params)
    step_ns = np.empty(n, np.int64)
    flags = [np.empty(n, np.int8) for _ in range(4)]
    est.run_arrays(trace["t"], trace["shank_gyro"], trace["load"], trace["ankle_angle"], np.empty(n), *flags,
                   step_ns=step_ns)
    hs_steps = step_ns[flags[0] == 1]

    tick.start(0.0)
    state = {"now": 0.0}

    def update():
        state["now"] += 1e-3
        tick.update(state["now"])

    emit({
        "bench": "codec",
        "mit_pack_python_ns": per_call_ns(lambda: _python_pack(0.1, 0.2, 0.0, 0.0, 1.0, r), 20000),
        "mit_pack_into_buffer_ns": per_call_ns(lambda: tick.command_payload(payload), 50000),
        "ingest_reply_frame_ns": per_call_ns(lambda: tick.ingest(0, reply, 0.0), 50000),
        "ingest_imu_frame_ns": per_call_ns(lambda: tick.ingest(0x110, imu, 0.0), 50000),
        "update_call_ns": per_call_ns(update, 50000),
        "drives": drive_codecs(),
        "estimator_step_ns": {"median": float(np.median(step_ns)), "p99": float(np.percentile(step_ns, 99)),
                              "max": int(step_ns.max()),
                              "heel_strike_step_median": float(np.median(hs_steps))},
    }, args.json)


if __name__ == "__main__":
    main()
