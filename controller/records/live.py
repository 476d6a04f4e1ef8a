"""The live view: the session's channels served to Foxglove over its WebSocket protocol.

:class:`LiveView` is one more telemetry sink of the supervisor (``ankle run``, ``ankle sim
--realtime``): the telemetry pump hands it every batch, as it does the CSV log.  It never
blocks its caller and never touches the tick, which runs in its own process:

- the call only decimates the batch (numpy, no per-row Python), notes the rows where the
  fault, warning or mode word changed, copies those rows into a bounded buffer (the oldest
  dropped and counted when it is full) and returns;
- a thread of its own takes the buffer every :data:`PUBLISH_PERIOD_S`, encodes the rows with
  :mod:`controller.records.channels` (the session record's own schemas and encoding) and logs
  them to a ``foxglove-sdk`` WebSocket server (``foxglove.start_server``), whose own per-client
  queue drops the oldest message for a client that does not read (``message_backlog_size``):
  a slow or stalled viewer delays nobody, neither the supervisor nor the other viewers.

What is served: ``/telemetry`` (every column of every kept row, ``channels.encode_telemetry``),
decimated to ``rate_Hz`` (:data:`DEFAULT_RATE_HZ`, 200 Hz: every 5th tick at 1 kHz, enough to
plot a 1 Hz stride and its 0.1 s push-off; every row of the tick is in the session log, not
here), and ``/events`` (``fault_on``/``fault_off``, ``warning_on``/``warning_off``, ``mode``),
taken from every row, decimated or not, so no transition is missed.  Log times are the
session's start on the wall clock plus the row's ``t``, as in the session file.

The server is a ``foxglove.Context`` of its own, so it serves only these channels, whatever
else in the process logs to the SDK's global context.  ``foxglove-sdk`` is optional (the extra
``live``): without it :func:`open_live_view` says one line and the controller runs on, as it
does when the port will not open.
"""
from __future__ import annotations

import collections
import math
import re
import threading
import time
from dataclasses import dataclass
from typing import Callable, Deque, Dict, List, Optional

import numpy as np

from controller.kernels.telemetry import COLUMN as _COL, TELEMETRY_COLUMNS
from controller.records import channels

__all__ = ["LiveView", "LiveSpec", "LiveViewError", "LiveViewUnavailable", "open_live_view",
           "import_foxglove", "available", "decimate", "DEFAULT_RATE_HZ", "DEFAULT_HOST",
           "DEFAULT_PORT", "MISSING_MESSAGE"]

#: Telemetry rows served per second of the session's time (every column of each kept row).
DEFAULT_RATE_HZ = 200.0
#: Loopback: only this machine's viewers (see the README, "Live view in Foxglove").
DEFAULT_HOST = "127.0.0.1"
#: Foxglove's own default port.
DEFAULT_PORT = 8765
#: How often the publishing thread takes the buffer [s]: the view's added latency.
PUBLISH_PERIOD_S = 0.02
#: Decimated rows the buffer holds (2 s at 200 Hz); beyond, the oldest are dropped and counted.
DEFAULT_BUFFER_ROWS = 400
#: The publisher hands the GIL over every this many rows (~20 us each), so the supervisor's
#: threads wait at most about a millisecond for it, not the interpreter's 5 ms switch interval.
YIELD_ROWS = 32
#: Change rows (a fault, warning or mode word changed) the buffer holds; beyond, the oldest go.
DEFAULT_EVENT_ROWS = 256
#: Messages the server queues per client before it drops that client's oldest (foxglove-sdk's
#: ``message_backlog_size``): 5 s of telemetry at 200 Hz.
CLIENT_BACKLOG = 1024

MISSING_MESSAGE = ("live view: needs the optional package foxglove-sdk (pip install "
                   "'ankle-controller[live]', the extra 'live')")

_T, _MODE, _FAULTS, _WARNINGS = _COL["t"], _COL["mode"], _COL["faults"], _COL["warnings"]
_STATE = [_MODE, _FAULTS, _WARNINGS]
_WIDTH = len(TELEMETRY_COLUMNS)
_TELEMETRY = channels.CHANNEL["/telemetry"]
_EVENTS = channels.CHANNEL["/events"]


class LiveViewError(RuntimeError):
    """The live view cannot be served (its port will not open); the message is one line."""


class LiveViewUnavailable(LiveViewError):
    """``foxglove-sdk`` is not installed: :data:`MISSING_MESSAGE`."""


def import_foxglove():
    """The ``foxglove`` module (foxglove-sdk), or LiveViewUnavailable saying which extra brings it."""
    try:
        import foxglove
        foxglove.start_server        # an unrelated package of that name has none
    except (ImportError, AttributeError):
        raise LiveViewUnavailable(MISSING_MESSAGE) from None
    return foxglove


def available() -> bool:
    """Whether foxglove-sdk can be imported (the live view can be served)."""
    try:
        import_foxglove()
    except LiveViewUnavailable:
        return False
    return True


@dataclass(frozen=True)
class LiveSpec:
    """Where and how fast to serve: ``[live]`` of the run configuration, or ``--live PORT``."""

    port: int
    host: str = DEFAULT_HOST
    rate_Hz: float = DEFAULT_RATE_HZ


def decimate(t: np.ndarray, rate_Hz: float, last_bucket: float = -math.inf):
    """Which rows of times ``t`` [s] to keep at ``rate_Hz``: the first of each ``1/rate_Hz`` bucket
    of the session's time not seen yet (``last_bucket``: the bucket of the last kept row, from the
    previous batch).  Returns (mask, the new last bucket).  A batch split anywhere keeps the same
    rows; a NaN time is never kept and changes nothing."""
    # a tick time on a bucket's edge (10.03 s at 200 Hz) may be a rounding below it: 1e-6 of a
    # bucket (5 ns at 200 Hz) of tolerance puts it in the bucket it begins
    bucket = np.floor(t * rate_Hz + 1e-6)
    running = np.fmax.accumulate(np.concatenate(([last_bucket], bucket)))
    return bucket > running[:-1], float(running[-1])


def _bind_error(e: BaseException) -> str:
    """foxglove-sdk's bind error as the errno's words ("address already in use")."""
    text = str(e)
    m = re.search(r"\(os error (\d+)\)", text)
    if m:
        import os
        return os.strerror(int(m.group(1))).lower()
    return text.replace("FoxgloveError: ", "").strip() or type(e).__name__


def _keep_sdk_threads_here() -> None:
    """Give foxglove-sdk's runtime threads (``tokio-rt-worker``, made at the process's first
    server, with the affinity of the thread that made it) the calling thread's CPUs: started
    after ``Runtime.isolate()``, they stay off the tick's CPU even if an earlier server made them."""
    import os
    try:
        cpus = os.sched_getaffinity(0)
        for tid in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{tid}/comm") as f:
                if f.read().startswith("tokio-rt"):
                    os.sched_setaffinity(int(tid), cpus)
    except OSError:
        pass                          # not Linux, or refused: the threads keep the CPUs they had


class _Bounded:
    """A FIFO of row arrays holding at most ``capacity`` rows; the oldest beyond are dropped."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self.parts: Deque[np.ndarray] = collections.deque()
        self.rows = 0
        self.dropped = 0

    def put(self, rows: np.ndarray) -> None:
        if len(rows) > self.capacity:                 # only the newest can stay
            self.dropped += len(rows) - self.capacity
            rows = rows[-self.capacity:]
        self.parts.append(rows)
        self.rows += len(rows)
        while self.rows > self.capacity:
            excess = self.rows - self.capacity
            head = self.parts[0]
            if len(head) <= excess:
                self.parts.popleft()
                self.rows -= len(head)
                self.dropped += len(head)
            else:
                self.parts[0] = head[excess:]
                self.rows -= excess
                self.dropped += excess

    def take(self) -> List[np.ndarray]:
        parts, self.parts, self.rows = list(self.parts), collections.deque(), 0
        return parts


class LiveView:
    """A telemetry sink serving the session live to Foxglove (see the module docstring).

    ``LiveView(host, port)`` starts the server at once: LiveViewUnavailable without foxglove-sdk,
    LiveViewError (one line: host, port, why) when the port will not open.  ``port`` 0 takes a
    free port (:attr:`port` says which).  ``rate_Hz``: telemetry rows served per second of the
    session's time, every column kept; ``buffer_rows``: decimated rows waiting at most;
    ``start_ns``: the session's start on the wall clock [ns since the epoch] (default: set from
    the first row, now minus its ``t``).  Call it (or :meth:`write`) with each batch of rows in
    ``TELEMETRY_COLUMNS`` order, from one thread; :meth:`close` stops the server.  Start it
    after ``Runtime.isolate()``: its thread and the SDK's take the starting thread's CPUs.
    """

    def __init__(self, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, *, rate_Hz: float = DEFAULT_RATE_HZ,
                 buffer_rows: int = DEFAULT_BUFFER_ROWS, event_rows: int = DEFAULT_EVENT_ROWS,
                 start_ns: Optional[int] = None, name: str = "ankle controller",
                 client_backlog: int = CLIENT_BACKLOG):
        if not (isinstance(rate_Hz, (int, float)) and math.isfinite(rate_Hz) and rate_Hz > 0):
            raise ValueError(f"live view: rate_Hz must be a number > 0, got {rate_Hz!r}")
        if buffer_rows < 1 or event_rows < 1:
            raise ValueError("live view: buffer_rows and event_rows must be at least 1")
        foxglove = import_foxglove()
        self.host, self.rate_Hz = host, float(rate_Hz)
        self._context = foxglove.Context()
        try:
            self._server = foxglove.start_server(name=name, host=host, port=port, context=self._context,
                                                 message_backlog_size=client_backlog)
        except Exception as e:           # the SDK raises RuntimeError("FoxgloveError: ...") for a bind
            raise LiveViewError(f"live view: cannot serve on {host}:{port} ({_bind_error(e)})") from None
        _keep_sdk_threads_here()
        self.port = int(self._server.port)
        self._telemetry = foxglove.Channel(_TELEMETRY.topic, schema=dict(_TELEMETRY.schema), context=self._context)
        self._events = foxglove.Channel(_EVENTS.topic, schema=dict(_EVENTS.schema), context=self._context)
        self.start_ns = start_ns
        # caller's side (one thread: the pump)
        self._last_bucket = -math.inf        # the decimation bucket of the last kept row
        self._last_state = np.full(len(_STATE), np.nan)   # NaN: the first row is a change
        self.rows_in = 0
        self.rows_kept = 0
        # shared with the publisher, under _lock (held only to append or swap lists)
        self._lock = threading.Lock()
        self._rows = _Bounded(buffer_rows)
        self._changes = _Bounded(event_rows)
        # publisher's side
        self.published = 0                   # telemetry messages logged to the server
        self.events_published = 0
        self.unwatched = 0                   # rows taken while no viewer subscribed (not encoded)
        self.publish_errors = 0
        self._event_state: dict = {}       # channels.events_of's memory of the words last seen
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._run, name="live-view", daemon=True)
        self._thread.start()
        self.closed = False

    @property
    def url(self) -> str:
        """What to type into Foxglove's "Open connection > Foxglove WebSocket"."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"ws://{host}:{self.port}"

    @property
    def dropped(self) -> int:
        """Decimated telemetry rows dropped from the buffer before they were published."""
        return self._rows.dropped

    @property
    def events_dropped(self) -> int:
        """Change rows dropped from their buffer (the next one published still says the net change)."""
        return self._changes.dropped

    def stats(self) -> Dict[str, int]:
        """The counters, as plain data."""
        return {"rows_in": self.rows_in, "rows_kept": self.rows_kept, "published": self.published,
                "dropped": self.dropped, "unwatched": self.unwatched, "events_published": self.events_published,
                "events_dropped": self.events_dropped, "publish_errors": self.publish_errors}

    # --- the caller's side: never blocks --------------------------------------------------------

    def __call__(self, rows: np.ndarray) -> None:
        """Take a batch (n x columns, ``TELEMETRY_COLUMNS`` order); returns at once."""
        if len(rows) == 0 or self.closed:
            return
        if rows.ndim != 2 or rows.shape[1] != _WIDTH:
            raise ValueError(f"live view: rows must be n x {_WIDTH} (TELEMETRY_COLUMNS), got {rows.shape}")
        self.rows_in += len(rows)
        t = rows[:, _T]
        if self.start_ns is None and math.isfinite(t[0]):
            self.start_ns = time.time_ns() - int(round(float(t[0]) * 1e9))
        keep, self._last_bucket = decimate(t, self.rate_Hz, self._last_bucket)
        state = rows[:, _STATE]
        prev = np.concatenate((self._last_state[None, :], state))
        changed = np.any(prev[1:] != prev[:-1], axis=1)
        self._last_state = state[-1].copy()
        kept = rows[keep]                    # fancy indexing copies: the pump reuses its buffer
        self.rows_kept += len(kept)
        change_rows = rows[changed] if changed.any() else None
        with self._lock:
            if len(kept):
                self._rows.put(kept)
            if change_rows is not None:
                self._changes.put(change_rows)

    write = __call__

    # --- the publisher's side: its own thread ---------------------------------------------------

    def _run(self) -> None:
        while not self._halt.wait(PUBLISH_PERIOD_S):
            self._publish()
        self._publish()

    def _publish(self) -> None:
        with self._lock:
            rows, changes = self._rows.take(), self._changes.take()
        start_ns = self.start_ns or 0
        try:
            for part in changes:
                # the one derivation of /events, the session file's too
                for t, kind, name, text in channels.events_of(part, self._event_state):
                    if self._events.has_sinks():
                        log_ns = start_ns + int(round(t * 1e9))
                        self._events.log(channels.encode_json({"t": t, "kind": kind, "name": name, "text": text}),
                                         log_time=log_ns)
                        self.events_published += 1
            watched = self._telemetry.has_sinks()
            for part in rows:
                if not watched:                  # nobody subscribed: do not spend the CPU encoding
                    self.unwatched += len(part)
                    continue
                for i, row in enumerate(part.tolist()):
                    if i % YIELD_ROWS == YIELD_ROWS - 1:
                        time.sleep(0)            # hand the GIL over: the pump waits for no batch of ours
                    t = row[_T]
                    log_ns = start_ns + int(round(t * 1e9)) if math.isfinite(t) else time.time_ns()
                    self._telemetry.log(channels.encode_telemetry(row), log_time=max(log_ns, 0))
                    self.published += 1
        except Exception:                         # a view's hiccup must not end the view
            self.publish_errors += 1

    def close(self) -> None:
        """Stop the thread and the server (each client's connection closes); idempotent."""
        if self.closed:
            return
        self.closed = True
        self._halt.set()
        self._thread.join(timeout=5.0)
        for ch in (self._telemetry, self._events):
            ch.close()
        self._server.stop()

    def __enter__(self) -> "LiveView":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_live_view(spec: Optional[LiveSpec], say: Callable[[str], None]) -> Optional[LiveView]:
    """The live view as ``spec`` asks (None: none), started; if foxglove-sdk is missing or the port
    will not open, one line through ``say`` and None: the controller runs on without it."""
    if spec is None:
        return None
    try:
        view = LiveView(spec.host, spec.port, rate_Hz=spec.rate_Hz)
    except LiveViewError as e:           # LiveViewUnavailable too
        say(f"{e}; running without it")
        return None
    say(f"live view: {view.url} (Foxglove > Open connection > Foxglove WebSocket), /telemetry at "
        f"{view.rate_Hz:g} Hz and /events")
    return view
