"""The live view's cost on the supervisor and what it serves (controller/records/live.py).

A real foxglove-sdk server on loopback, real viewers: a reading one (a WebSocket client on a
thread of this process, as Foxglove would read it) and a stalled one (a raw socket that
subscribes and never reads, its receive buffer a few kB).  Figures:

- ``batch``: the sink's cost per 1000-row batch on the caller's thread (the telemetry pump's),
  back to back (``--batches`` of them, 1 kHz rows), with no viewer, a reading viewer, and a
  stalled one beside a reading one: p50 / p99 / max in µs.  Back to back the publisher cannot
  keep up (1000 rows of 1 kHz is 1 s of session per call), so the buffer drops and counts.
- ``paced``: ``--seconds`` of rows at the tick's pace in the pump's batches (1 kHz, every
  ``PUMP_PERIOD_S``), a reading viewer and a stalled one: rows served per second, rows the
  reading viewer received, drops, and the sink's per-call cost.
- ``publish_us_per_row``: the publishing thread's CPU per row served (encode + log to the
  server with a viewer subscribed); times the rate, its share of a core.

The machine is shared and not idle: the figures are what this run saw, not bounds.
"""
from __future__ import annotations

import json
import socket
import struct
import threading
import time

import numpy as np

from bench._common import emit, parser
from controller.kernels.telemetry import COLUMN, TELEMETRY_COLUMNS
from controller.records import channels, live
from controller.runtime.process import PUMP_PERIOD_S

SUBPROTOCOLS = ["foxglove.sdk.v1", "foxglove.websocket.v1"]


def _rows(t0_s: float, n: int, rate_Hz: float = 1000.0) -> np.ndarray:
    rng = np.random.default_rng(0)
    rows = rng.normal(0.0, 10.0, (n, len(TELEMETRY_COLUMNS)))
    rows[:, COLUMN["t"]] = t0_s + np.arange(n) / rate_Hz
    for c in ("mode", "faults", "warnings"):
        rows[:, COLUMN[c]] = 0.0
    return rows


class _Reader(threading.Thread):
    """A viewer reading /telemetry as fast as it comes (websockets' sync client)."""

    def __init__(self, url: str):
        super().__init__(daemon=True)
        from websockets.sync.client import connect
        self._cm = connect(url, subprotocols=SUBPROTOCOLS, max_queue=None, close_timeout=2)
        self.ws = self._cm.__enter__()
        self.ids = {}
        while len(self.ids) < 2:
            m = json.loads(self.ws.recv(timeout=10))
            if m["op"] == "advertise":
                self.ids.update({c["topic"]: c["id"] for c in m["channels"]})
        self.ws.send(json.dumps({"op": "subscribe", "subscriptions": [{"id": 1, "channelId": self.ids["/telemetry"]}]}))
        self.received = 0
        self.last_t = float("nan")
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            try:
                m = self.ws.recv(timeout=0.2)
            except TimeoutError:
                continue
            except Exception:              # the server closed: the run is over
                return
            if isinstance(m, bytes) and m[0] == 1:
                self.received += 1
                self.last_t = float(channels.decode_telemetry(m[13:])[COLUMN["t"]])

    def close(self) -> None:
        self.halt.set()
        self.join(5)
        self._cm.__exit__(None, None, None)


def stalled_client(port: int, channel_ids) -> socket.socket:
    """A raw-socket viewer that completes the handshake, subscribes to ``channel_ids`` and never
    reads again: its receive buffer is a few kB, so the server's sends to it back up at once
    (tests/test_live.py uses it too)."""
    import base64
    import os
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall((f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
               f"Sec-WebSocket-Protocol: {', '.join(SUBPROTOCOLS)}\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1)
    if not head.startswith(b"HTTP/1.1 101"):
        raise ConnectionError(f"the live view refused the viewer: {head[:80]!r}")
    payload = json.dumps({"op": "subscribe", "subscriptions": [
        {"id": i + 1, "channelId": cid} for i, cid in enumerate(channel_ids)]}).encode()
    mask = os.urandom(4)
    s.sendall(bytes([0x81, 0x80 | 126]) + struct.pack(">H", len(payload)) + mask +
              bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))
    return s


def _us(durations) -> dict:
    d = np.asarray(durations) * 1e6
    return {"p50_us": round(float(np.percentile(d, 50)), 1), "p99_us": round(float(np.percentile(d, 99)), 1),
            "max_us": round(float(d.max()), 1), "calls": len(d)}


def _viewers(view, reading: bool, stalled: bool):
    reader = _Reader(view.url) if reading else None
    stall = None
    if stalled:
        probe = reader or _Reader(view.url)
        stall = stalled_client(view.port, [probe.ids["/telemetry"]])
        if reader is None:
            probe.close()
    if reader is not None:
        reader.start()
    deadline = time.monotonic() + 10
    while (reading or stalled) and not view._telemetry.has_sinks() and time.monotonic() < deadline:
        time.sleep(0.01)
    return reader, stall


def batch_cost(batches: int, reading: bool, stalled: bool) -> dict:
    with live.LiveView("127.0.0.1", 0) as view:
        reader, stall = _viewers(view, reading, stalled)
        rows = _rows(0.0, 1000 * batches)
        durations = []
        for i in range(batches):
            b = rows[i * 1000:(i + 1) * 1000]
            t0 = time.perf_counter()
            view(b)
            durations.append(time.perf_counter() - t0)
        time.sleep(0.2)
        if reader is not None:
            reader.close()
        if stall is not None:
            stall.close()
        stats = view.stats()
    return {"viewers": ("reading " if reading else "") + ("stalled" if stalled else "") or "none",
            **_us(durations), "dropped": stats["dropped"], "published": stats["published"],
            "rows_kept": stats["rows_kept"]}


def paced(seconds: float) -> dict:
    with live.LiveView("127.0.0.1", 0) as view:
        reader, stall = _viewers(view, True, True)
        per = int(round(1000 * PUMP_PERIOD_S))
        rows = _rows(0.0, int(seconds * 1000))
        durations = []
        start = time.perf_counter()
        for k, i in enumerate(range(0, len(rows), per)):
            wake = start + k * PUMP_PERIOD_S
            time.sleep(max(0.0, wake - time.perf_counter()))
            t0 = time.perf_counter()
            view(rows[i:i + per])
            durations.append(time.perf_counter() - t0)
        time.sleep(0.5)
        received, last_t = reader.received, reader.last_t
        reader.close()
        stall.close()
        stats = view.stats()
    return {"seconds": seconds, "batch_rows": per, **_us(durations), "rows_served_per_s": round(stats["published"] / seconds, 1),
            "reader_received": received, "reader_last_t_s": round(last_t, 3),
            "last_t_s": round(float(rows[-1, COLUMN["t"]]), 3), "dropped": stats["dropped"],
            "rows_kept": stats["rows_kept"]}


def publish_cost(rows: int = 4000) -> dict:
    """The publishing thread's work per row, timed on this thread with a viewer subscribed."""
    with live.LiveView("127.0.0.1", 0) as view:
        reader, _ = _viewers(view, True, False)
        data = _rows(0.0, rows).tolist()
        t0 = time.thread_time()
        for r in data:
            view._telemetry.log(channels.encode_telemetry(r), log_time=int(r[COLUMN["t"]] * 1e9) + 1)
        cpu = (time.thread_time() - t0) / rows
        reader.close()
    return {"publish_us_per_row": round(cpu * 1e6, 2),
            "core_share_at_200Hz_pct": round(100 * cpu * live.DEFAULT_RATE_HZ, 3)}


def watch(port: int, wait_s: float = 60.0) -> dict:
    """Be a viewer of the live views on loopback (``ankle sim --realtime --live PORT``, ``python -m
    bench.loop --live PORT``: one server per configuration), in a process of its own as Foxglove
    would be: for each session, wait for its server, read /telemetry until it closes; rows
    received and their rate on the session's time.  Ends when no server comes within ``wait_s``."""
    sessions = []
    while True:
        one = _watch_one(port, wait_s if not sessions else 30.0)
        if one is None:
            break
        sessions.append(one)
    return {"port": port, "sessions": sessions}


def _watch_one(port: int, wait_s: float):
    deadline = time.monotonic() + wait_s
    reader = None
    while reader is None:
        try:
            reader = _Reader(f"ws://127.0.0.1:{port}")
        except OSError:
            if time.monotonic() > deadline:
                return None
            time.sleep(0.2)
    first_t = None
    counted = 0
    while True:
        try:
            m = reader.ws.recv(timeout=10)
        except Exception:               # closed (the run ended) or 10 s of silence
            break
        if isinstance(m, bytes) and m[0] == 1:
            counted += 1
            t = float(channels.decode_telemetry(m[13:])[COLUMN["t"]])
            first_t = t if first_t is None else first_t
            last_t = t
    span = (last_t - first_t) if counted > 1 else float("nan")
    return {"rows_received": counted,
            "rate_Hz": round((counted - 1) / span, 2) if counted > 1 and span > 0 else None}


def main(argv=None) -> None:
    p = parser(__doc__)
    p.add_argument("--watch", type=int, default=None, metavar="PORT",
                   help="only be a viewer of the live view on 127.0.0.1:PORT until it closes")
    p.add_argument("--batches", type=int, default=300, help="1000-row batches back to back (default 300)")
    p.add_argument("--seconds", type=float, default=5.0, help="seconds of the paced run (default 5)")
    args = p.parse_args(argv)
    if args.watch is not None:
        emit(watch(args.watch), args.json)
        return
    if not 1 <= args.batches <= 10_000:
        p.error("--batches must be in 1..10000")
    if not 1.0 <= args.seconds <= 600.0:
        p.error("--seconds must be in 1..600")
    result = {"benchmark": "live", "rate_Hz": live.DEFAULT_RATE_HZ, "buffer_rows": live.DEFAULT_BUFFER_ROWS,
              "batch_1000_rows": [batch_cost(args.batches, r, s) for r, s in ((False, False), (True, False),
                                                                              (True, True))],
              "paced": paced(args.seconds), **publish_cost()}
    if args.json:
        emit(result, True)
        return
    print(f"live view: /telemetry at {result['rate_Hz']:g} Hz, buffer {result['buffer_rows']} rows")
    for b in result["batch_1000_rows"]:
        print(f"  1000-row batch, viewers {b['viewers']:<16} p50 {b['p50_us']:7.1f} us  p99 {b['p99_us']:7.1f} us  "
              f"max {b['max_us']:7.1f} us  ({b['calls']} calls; dropped {b['dropped']} of {b['rows_kept']})")
    pc = result["paced"]
    print(f"  paced {pc['seconds']:g} s in {pc['batch_rows']}-row batches, a reading and a stalled viewer: "
          f"p50 {pc['p50_us']:.1f} us  p99 {pc['p99_us']:.1f} us  max {pc['max_us']:.1f} us; "
          f"served {pc['rows_served_per_s']:g} rows/s, reader got {pc['reader_received']} "
          f"(last t {pc['reader_last_t_s']} of {pc['last_t_s']} s), dropped {pc['dropped']}")
    print(f"  publishing: {result['publish_us_per_row']} us of CPU a row, "
          f"{result['core_share_at_200Hz_pct']} % of a core at {result['rate_Hz']:g} Hz")


if __name__ == "__main__":
    main()
