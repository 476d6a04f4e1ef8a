"""Cost of the per-tick pieces: frame codecs and the estimator -> controller -> safety update.

Codec and update figures are per Python call (they include the call into the
compiled module); ``estimator_ns_per_sample`` is the kernel alone, looping
over recorded samples without the GIL.
"""
from __future__ import annotations

import struct

import numpy as np

from bench._common import emit, parser, per_call_ns
from controller.loop import build_tick
from controller.params import ParamSet
from controller.replay import estimate
from hal import _mit, _sensor_frames
from hal.ak import mit_range


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


def main(argv=None) -> None:
    args = parser(__doc__).parse_args(argv)
    r = mit_range("AK80-9")
    params = ParamSet()
    tick = build_tick(params, r, 1, 0)
    reply = _mit.pack_reply(r, 1, 0.1, 0.2, 1.0)
    imu = _sensor_frames.encode_imu(1.0, 0.5, 9.8, 1, 0)
    payload = bytearray(8)
    assert _python_pack(0.1, 0.2, 0.0, 0.0, 1.0, r) == _mit.pack_command(r, 0.1, 0.2, 0.0, 0.0, 1.0)

    t = np.arange(200_000) * 1e-3
    load = np.where((t % 1.1) < 0.68, 800.0, 0.0)
    import time
    t0 = time.perf_counter_ns()
    estimate(t, np.zeros_like(t), load, np.zeros_like(t), params)
    est_ns = (time.perf_counter_ns() - t0) / t.size

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
        "estimator_ns_per_sample": round(est_ns, 1),
    }, args.json)


if __name__ == "__main__":
    main()
