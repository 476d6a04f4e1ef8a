"""The live view (controller/records/live.py): a real foxglove-sdk server on loopback, read by
a real WebSocket client speaking the Foxglove WebSocket protocol (``websockets``), and a client
that connects, subscribes and then never reads (a raw socket with a tiny receive buffer).

What is checked: the schemas advertised are the session record's (controller/records/channels.py);
the rows that arrive decode with ``channels.decode_telemetry`` to what was fed, decimated to the
rate asked for, every column kept; fault and mode changes arrive on /events; a stalled viewer
blocks neither the sink nor the other viewers, and what could not be served is counted; a port in
use and a missing foxglove-sdk are one line each and the caller goes on; the CLI's ``--live``.
"""
import json
import os
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from controller.kernels import faults
from controller.kernels.telemetry import COLUMN, TELEMETRY_COLUMNS
from bench.live import SUBPROTOCOLS, stalled_client   # the viewer's subprotocols, a stalled viewer
from controller.records import channels, live

foxglove = pytest.importorskip("foxglove", reason="foxglove-sdk (the extra 'live') is not installed")
ws_client = pytest.importorskip("websockets.sync.client", reason="the websockets package is not installed")

ROOT = Path(__file__).resolve().parent.parent
WIDTH = len(TELEMETRY_COLUMNS)


def rows_at(t0_s, n, rate_Hz=1000.0, seed=0):
    """``n`` telemetry rows from ``t0_s`` at ``rate_Hz``, every column a different value."""
    rng = np.random.default_rng(seed)
    rows = rng.normal(0.0, 10.0, (n, WIDTH))
    rows[:, COLUMN["t"]] = t0_s + np.arange(n) / rate_Hz
    for c in ("mode", "faults", "warnings", "heel_strike", "toe_off", "walking", "stance", "standing",
              "gait_source", "frames_lost"):
        rows[:, COLUMN[c]] = 0.0
    return rows


class Viewer:
    """A Foxglove WebSocket client: the advertised channels, subscribe, messages by topic."""

    def __init__(self, url):
        self._connection = ws_client.connect(url, subprotocols=SUBPROTOCOLS, open_timeout=10, max_queue=None,
                                             close_timeout=2)
        self.ws = self._connection.__enter__()       # websockets wants connect() as a context
        self.channels = {}
        self.server_info = None
        self.by_sub = {}
        deadline = time.monotonic() + 10
        while len(self.channels) < 2 and time.monotonic() < deadline:
            self._handle(self.ws.recv(timeout=10))

    def _handle(self, m):
        if isinstance(m, str):
            d = json.loads(m)
            if d["op"] == "serverInfo":
                self.server_info = d
            elif d["op"] == "advertise":
                self.channels.update({c["topic"]: c for c in d["channels"]})
            return None
        opcode, sub, log_ns = struct.unpack_from("<BIQ", m)
        assert opcode == 1               # Message Data
        return self.by_sub[sub], log_ns, m[13:]

    def subscribe(self, *topics):
        subs = []
        for topic in topics:
            sid = len(self.by_sub) + 1
            self.by_sub[sid] = topic
            subs.append({"id": sid, "channelId": self.channels[topic]["id"]})
        self.ws.send(json.dumps({"op": "subscribe", "subscriptions": subs}))

    def messages(self, until, timeout_s=10.0):
        """(topic, log_ns, payload) until ``until(list so far)`` or ``timeout_s`` of silence."""
        got = []
        while not until(got):
            try:
                m = self._handle(self.ws.recv(timeout=timeout_s))
            except TimeoutError:
                break
            if m is not None:
                got.append(m)
        return got

    def close(self):
        self._connection.__exit__(None, None, None)


def wait_subscribed(view, topic="/telemetry", timeout_s=10.0):
    """Until the server has a subscriber on ``topic`` (a subscription is asynchronous)."""
    ch = view._telemetry if topic == "/telemetry" else view._events
    deadline = time.monotonic() + timeout_s
    while not ch.has_sinks():
        assert time.monotonic() < deadline, f"no subscriber on {topic}"
        time.sleep(0.01)


@pytest.fixture
def view():
    v = live.LiveView("127.0.0.1", 0)
    yield v
    v.close()


# --- what is served ----------------------------------------------------------------------------

def test_the_schemas_advertised_are_the_session_records(view):
    viewer = Viewer(view.url)
    try:
        assert set(viewer.channels) == {"/telemetry", "/events"}
        assert viewer.server_info["capabilities"] == []      # read-only: no parameters, services, publish
        for topic, ch in viewer.channels.items():
            ours = channels.CHANNEL[topic]
            assert ch["schemaName"] == ours.schema_name
            assert ch["encoding"] == "json" and ch["schemaEncoding"] == "jsonschema"
            assert json.loads(ch["schema"]) == ours.schema
        # the units are in the descriptions a viewer shows
        props = json.loads(viewer.channels["/telemetry"]["schema"])["properties"]
        assert props["torque_Nm"]["description"].startswith("[N·m]")
    finally:
        viewer.close()


def test_rows_arrive_decimated_every_column_decoding_to_what_was_fed(view):
    viewer = Viewer(view.url)
    try:
        viewer.subscribe("/telemetry")
        wait_subscribed(view)
        rows = rows_at(10.0, 1000)                          # 1 s at 1 kHz
        view(rows[:333])
        view(rows[333:])                                     # the split changes nothing
        got = viewer.messages(lambda g: len(g) >= 200)
        assert len(got) == 200, len(got)                     # 200 Hz of 1 kHz: every 5th row
        decoded = np.array([channels.decode_telemetry(p) for _, _, p in got])
        expect = np.array([channels.decode_telemetry(channels.encode_telemetry(r)) for r in rows[::5]])
        np.testing.assert_array_equal(decoded, expect)
        # log times: the session's start on the wall clock plus t
        log_ns = np.array([ns for _, ns, _ in got], dtype=np.int64)
        assert np.all(np.abs(np.diff(log_ns) - 5_000_000) <= 1)
        assert log_ns[0] - view.start_ns == 10_000_000_000
        assert abs((view.start_ns + 10_000_000_000) * 1e-9 - time.time()) < 60
        s = view.stats()
        assert (s["rows_in"], s["rows_kept"], s["published"], s["dropped"]) == (1000, 200, 200, 0)
    finally:
        viewer.close()


def test_the_rate_is_configurable(tmp_path):
    with live.LiveView("127.0.0.1", 0, rate_Hz=50.0) as v:
        viewer = Viewer(v.url)
        viewer.subscribe("/telemetry")
        wait_subscribed(v)
        v(rows_at(0.0, 2000))
        got = viewer.messages(lambda g: len(g) >= 100, timeout_s=3)
        viewer.close()
    assert len(got) == 100                                   # 2 s at 50 Hz


def test_fault_and_mode_changes_arrive_on_events_even_between_kept_rows(view):
    viewer = Viewer(view.url)
    try:
        viewer.subscribe("/events", "/telemetry")
        wait_subscribed(view, "/events")
        rows = rows_at(0.0, 100)
        imu, low = faults.fault_bit("imu"), faults.fault_bit("low_voltage")
        rows[51:, COLUMN["faults"]] = imu                    # t = 0.051 s: between two kept rows
        rows[52:, COLUMN["faults"]] = imu | low
        rows[52:, COLUMN["mode"]] = faults.MODE_VALUES["safe"]
        rows[53, COLUMN["warnings"]] = faults.warning_bit("supply_low")   # on for one tick
        view(rows)
        got = viewer.messages(lambda g: sum(t == "/events" for t, _, _ in g) >= 6, timeout_s=3)
        events = [json.loads(p) for t, _, p in got if t == "/events"]
        said = [(e["kind"], e["name"], round(e["t"], 3)) for e in events]
        assert said == [("mode", "standby", 0.0), ("fault_on", "imu", 0.051), ("fault_on", "low_voltage", 0.052),
                        ("mode", "safe", 0.052), ("warning_on", "supply_low", 0.053),
                        ("warning_off", "supply_low", 0.054)], said
        assert events[1]["text"] == faults.advice("imu")
    finally:
        viewer.close()


def test_transition_events_name_every_bit_cleared_and_latched():
    a = rows_at(0.0, 2)
    a[1, COLUMN["faults"]] = faults.fault_bit("imu") | faults.fault_bit("load")
    b = a[1].copy()
    b[COLUMN["faults"]] = faults.fault_bit("load") | faults.fault_bit("overrun")
    state = {}
    channels.events_of(a[1:2], state)
    kinds = [(kind, name) for _, kind, name, _ in channels.events_of(b[None, :], state)]
    assert kinds == [("fault_on", "overrun"), ("fault_off", "imu")]
    assert channels.events_of(b[None, :], state) == []


@settings(max_examples=200, deadline=None)
@given(n=st.integers(1, 3000), rate=st.sampled_from([1.0, 50.0, 200.0, 333.0, 1000.0]),
       cuts=st.lists(st.integers(0, 3000), max_size=8), period=st.sampled_from([0.001, 0.002, 0.0005]))
def test_decimation_keeps_the_same_rows_wherever_a_batch_is_split(n, rate, cuts, period):
    t = 3.0 + np.arange(n) * period
    whole, _ = live.decimate(t, rate)
    parts, last = [], -np.inf
    edges = sorted({0, n, *[c for c in cuts if c <= n]})
    for lo, hi in zip(edges[:-1], edges[1:]):
        keep, last = live.decimate(t[lo:hi], rate, last)
        parts.append(keep)
    np.testing.assert_array_equal(np.concatenate(parts), whole)
    kept = t[whole]
    assert kept[0] == t[0]
    # one row per 1/rate bucket at most, and none missed where rows were there
    assert len(np.unique(np.floor(kept * rate + 1e-6))) == len(kept) == len(np.unique(np.floor(t * rate + 1e-6)))


@settings(max_examples=200, deadline=None)
@given(capacity=st.integers(1, 50), sizes=st.lists(st.integers(0, 80), max_size=12),
       take_after=st.lists(st.booleans(), max_size=12))
def test_the_buffer_keeps_the_newest_rows_and_counts_every_one_it_drops(capacity, sizes, take_after):
    buf = live._Bounded(capacity)
    fed, taken, start = [], [], 0
    for i, n in enumerate(sizes):
        rows = np.arange(start, start + n, dtype=float)[:, None]
        start += n
        fed.append(rows)
        buf.put(rows)
        assert buf.rows == sum(len(p) for p in buf.parts) <= capacity
        if i < len(take_after) and take_after[i]:
            taken += buf.take()
    taken += buf.take()
    got = np.concatenate([p[:, 0] for p in taken]) if taken else np.array([])
    assert len(got) + buf.dropped == start                  # every row served or counted
    assert np.all(np.diff(got) > 0)                         # in order, none twice
    if not any(take_after):                                 # one take at the end: the newest
        np.testing.assert_array_equal(got, np.arange(max(0, start - capacity), start))


def test_a_nan_time_is_never_kept():
    t = np.array([0.0, np.nan, 0.006, np.nan, 0.011])
    keep, last = live.decimate(t, 200.0)
    assert keep.tolist() == [True, False, True, False, True] and last == 2.0


# --- a stalled viewer --------------------------------------------------------------------------

def _feed(view, batches):
    durations = []
    for rows in batches:
        t0 = time.perf_counter()
        view(rows)
        durations.append(time.perf_counter() - t0)
    return durations


def test_a_stalled_viewer_blocks_neither_the_sink_nor_the_other_viewers():
    view = live.LiveView("127.0.0.1", 0, client_backlog=64)
    stalled = viewer = None
    try:
        viewer = Viewer(view.url)
        ids = [viewer.channels[t]["id"] for t in ("/telemetry", "/events")]
        stalled = stalled_client(view.port, ids)
        viewer.subscribe("/telemetry")
        wait_subscribed(view)
        # 10^5 rows (100 s at 1 kHz) in one batch: 20 000 decimated rows for a 400-row buffer
        rows = rows_at(0.0, 100_000)
        durations = _feed(view, [rows])
        assert view.dropped >= 20_000 - live.DEFAULT_BUFFER_ROWS
        # and 10^5 more in the pump's 1000-row batches, while the stalled client still stalls
        more = rows_at(100.0, 100_000, seed=1)
        durations += _feed(view, [more[i:i + 1000] for i in range(0, len(more), 1000)])
        last_t = more[-1, COLUMN["t"]]
        # the reading viewer still gets the newest rows: the stalled one held up nobody
        got = viewer.messages(lambda g: bool(g) and channels.decode_telemetry(g[-1][2])[COLUMN["t"]] >= last_t - 0.01,
                              timeout_s=10)
        assert got and channels.decode_telemetry(got[-1][2])[COLUMN["t"]] >= last_t - 0.01
        view.close()                              # the last take published: nothing pending
        s = view.stats()
        assert s["rows_in"] == 200_000 and s["rows_kept"] == 40_000
        assert s["published"] + s["dropped"] + s["unwatched"] == s["rows_kept"]
        assert s["published"] > 0 and s["publish_errors"] == 0
        print(f"\n10^5 + 10^5 rows with a stalled viewer: longest call {max(durations) * 1e3:.2f} ms, "
              f"total {sum(durations) * 1e3:.1f} ms; dropped {view.dropped} of {view.rows_kept} decimated rows, "
              f"published {view.published}")
        assert sum(durations) < 30.0              # returned at all (no wait on the viewer); figures above
    finally:
        if viewer is not None:
            viewer.close()
        if stalled is not None:
            stalled.close()
        view.close()


@pytest.mark.realtime
def test_the_sink_stays_within_milliseconds_a_batch_with_a_stalled_viewer():
    view = live.LiveView("127.0.0.1", 0)
    try:
        probe = Viewer(view.url)
        stalled = stalled_client(view.port, [probe.channels["/telemetry"]["id"]])
        probe.close()
        wait_subscribed(view)
        rows = rows_at(0.0, 300_000)
        durations = _feed(view, [rows[i:i + 1000] for i in range(0, len(rows), 1000)])
        stalled.close()
        assert np.percentile(durations, 99) < 5e-3, np.percentile(durations, 99)
        assert max(durations) < 0.1, max(durations)
    finally:
        view.close()


# --- start, stop, the port, the package ---------------------------------------------------------

def test_close_stops_the_server():
    v = live.LiveView("127.0.0.1", 0)
    viewer = Viewer(v.url)
    v.close()
    v.close()                                      # idempotent
    from websockets.exceptions import ConnectionClosed
    with pytest.raises(ConnectionClosed):          # after the channels' unadvertise, the close
        for _ in range(100):
            viewer.ws.recv(timeout=5)
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", v.port), timeout=2).close()
    v(rows_at(0.0, 10))                            # a late batch after close is ignored


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs to keep one free")
def test_the_views_threads_and_the_sdks_stay_off_the_cpus_the_starter_left(view):
    # the supervisor starts the view after Runtime.isolate(): none of its threads may run on the
    # tick's CPU, not even the SDK's runtime threads that an earlier server made elsewhere
    before = os.sched_getaffinity(0)
    keep = {min(before)}
    os.sched_setaffinity(0, keep)
    try:
        with live.LiveView("127.0.0.1", 0) as v:
            tids = {int(t) for t in os.listdir("/proc/self/task")}
            comm = {t: Path(f"/proc/self/task/{t}/comm").read_text().strip() for t in tids}
            ours = [t for t in tids if comm[t].startswith("tokio-rt") or t == v._thread.native_id]
            assert v._thread.native_id in ours and any(comm[t].startswith("tokio-rt") for t in ours)
            assert {t: os.sched_getaffinity(t) for t in ours} == {t: keep for t in ours}
    finally:
        os.sched_setaffinity(0, before)


def test_a_port_in_use_is_one_line_and_the_caller_runs_on():
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    port = busy.getsockname()[1]
    try:
        with pytest.raises(live.LiveViewError) as info:
            live.LiveView("127.0.0.1", port)
        assert str(info.value) == f"live view: cannot serve on 127.0.0.1:{port} (address already in use)"
        said = []
        assert live.open_live_view(live.LiveSpec(port=port), said.append) is None
        assert said == [f"live view: cannot serve on 127.0.0.1:{port} (address already in use); running without it"]
    finally:
        busy.close()


def test_open_live_view_says_where_to_connect():
    said = []
    v = live.open_live_view(live.LiveSpec(port=0, rate_Hz=100.0), said.append)
    try:
        assert v is not None and v.rate_Hz == 100.0
        assert said == [f"live view: ws://127.0.0.1:{v.port} (Foxglove > Open connection > Foxglove WebSocket), "
                        f"/telemetry at 100 Hz and /events"]
    finally:
        v.close()
    assert live.open_live_view(None, said.append) is None and len(said) == 1


def test_a_missing_foxglove_sdk_is_one_line_naming_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "foxglove", None)        # what import finds when it is not installed
    with pytest.raises(live.LiveViewUnavailable) as info:
        live.import_foxglove()
    assert str(info.value) == live.MISSING_MESSAGE and "'live'" in live.MISSING_MESSAGE
    assert "\n" not in live.MISSING_MESSAGE and "foxglove-sdk" in live.MISSING_MESSAGE
    assert not live.available()
    with pytest.raises(live.LiveViewUnavailable):
        live.LiveView("127.0.0.1", 0)
    said = []
    assert live.open_live_view(live.LiveSpec(port=0), said.append) is None
    assert said == [live.MISSING_MESSAGE + "; running without it"]


def test_bad_arguments_are_refused():
    for rate in (0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="rate_Hz"):
            live.LiveView("127.0.0.1", 0, rate_Hz=rate)
    with live.LiveView("127.0.0.1", 0) as v:
        with pytest.raises(ValueError, match="rows must be n x"):
            v(np.zeros((3, WIDTH - 1)))


# --- the board's [live] and the CLI's --live ---------------------------------------------------

def test_the_board_serves_what_live_asks_for():
    from controller.board import live_spec
    from controller.config import parse_config
    base = '[bus]\ninterface = "virtual"\nchannel = "x"\n[driver]\nid = 1\n'
    assert live_spec(parse_config(base)) is None                       # off by default
    spec = live_spec(parse_config(base + '[live]\nport = 8765\n'))
    assert spec == live.LiveSpec(port=8765, host="127.0.0.1", rate_Hz=200.0)
    spec = live_spec(parse_config(base + '[live]\nport = 9000\nhost = "0.0.0.0"\nrate_Hz = 100\n'))
    assert spec == live.LiveSpec(port=9000, host="0.0.0.0", rate_Hz=100.0)


def _ankle(*args, stub_missing=False, timeout=60):
    code = ("import sys\n" + ("sys.modules['foxglove'] = None\n" if stub_missing else "") +
            "from controller.cli import main\nsys.exit(main(sys.argv[1:]))\n")
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=timeout)


def test_sim_live_without_the_package_is_one_line_naming_the_extra():
    out = _ankle("sim", "--realtime", "--duration", "1", "--live", "8765", stub_missing=True)
    assert out.returncode == 2
    assert out.stderr.strip() == ("ankle sim: error: --live: needs the optional package foxglove-sdk "
                                  "(pip install 'ankle-controller[live]', the extra 'live')"), out.stderr


def test_sim_live_needs_realtime():
    out = _ankle("sim", "--duration", "1", "--live", "8765")
    assert out.returncode == 2 and "--live needs --realtime" in out.stderr and "\n" not in out.stderr.strip()
    out = _ankle("sim", "--realtime", "--duration", "1", "--live", "70000")
    assert out.returncode == 2 and "--live" in out.stderr


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _viewer_of(proc, port):
    """A viewer connected to the live view ``proc`` serves on ``port``, once it is up (60 s at
    most; the process must not have ended meanwhile)."""
    deadline = time.monotonic() + 60
    while True:
        try:
            return Viewer(f"ws://127.0.0.1:{port}")
        except OSError:
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.1)


@pytest.mark.realtime
def test_ankle_sim_realtime_live_serves_the_walk(tmp_path):
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "controller.cli", "sim", "--realtime", "--duration", "5",
                             "--live", str(port), "--json"], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    viewer = None
    try:
        viewer = _viewer_of(proc, port)
        viewer.subscribe("/telemetry", "/events")
        got = viewer.messages(lambda g: sum(t == "/telemetry" for t, _, _ in g) >= 400, timeout_s=20)
        rows = np.array([channels.decode_telemetry(p) for t, _, p in got if t == "/telemetry"])
        assert len(rows) >= 400, len(rows)
        dt = np.diff(rows[:, COLUMN["t"]])
        assert np.median(dt) == pytest.approx(0.005, abs=1e-4)            # 200 Hz of the 1 kHz tick
        assert np.all(np.isfinite(rows[:, COLUMN["load"]]))
        out, err = proc.communicate(timeout=120)
    finally:
        if viewer is not None:
            viewer.close()
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert f"live view: ws://127.0.0.1:{port}" in err
    result = json.loads(out)
    assert result["realtime"]["live"]["published"] >= 400
    assert result["realtime"]["live"]["rows_kept"] >= 900              # ~5 s at 200 Hz


@pytest.mark.realtime
def test_ankle_run_serves_the_live_view_its_config_asks_for_and_runs_on_when_the_port_is_taken(tmp_path):
    from test_runtime import _Served
    served = _Served()
    try:
        port = _free_port()
        cfg = served.config(tmp_path, f"""
            [live]
            port = {port}
            rate_Hz = 100
        """)
        proc = subprocess.Popen([sys.executable, "-m", "controller.cli", "run", "--config", str(cfg),
                                 "--duration", "4"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        viewer = None
        try:
            viewer = _viewer_of(proc, port)
            viewer.subscribe("/telemetry")
            got = viewer.messages(lambda g: len(g) >= 150, timeout_s=20)
            rows = np.array([channels.decode_telemetry(p) for _, _, p in got])
            assert len(rows) >= 150 and np.median(np.diff(rows[:, COLUMN["t"]])) == pytest.approx(0.01, abs=1e-4)
            out, err = proc.communicate(timeout=60)
        finally:
            if viewer is not None:
                viewer.close()
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        assert proc.returncode == 0, err
        assert f"live view: ws://127.0.0.1:{port} (Foxglove > Open connection > Foxglove WebSocket), " \
               f"/telemetry at 100 Hz and /events" in out
        # the same port taken: one line, and the controller runs its 2 s all the same
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", port))
            busy.listen(1)
            out = subprocess.run([sys.executable, "-m", "controller.cli", "run", "--config", str(cfg),
                                  "--duration", "2"], cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        assert f"live view: cannot serve on 127.0.0.1:{port} (address already in use); running without it" \
            in out.stdout.splitlines()
        assert "driver switched off" in out.stdout
    finally:
        served.stop()
