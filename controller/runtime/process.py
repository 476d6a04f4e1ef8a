"""The real-time runtime: the tick in its own process, on absolute deadlines.

The tick's process does nothing but the loop: it sets its real-time settings,
commissions the driver, freezes the garbage collector, then ticks on
``start + k * period`` (:class:`controller.runtime._rt.Cadence`): read the bus, update
the kernels (without the GIL), write the command, publish one telemetry row
into the shared ring, and only then, at a stride boundary, take a parameter change
if one was published (:meth:`controller.kernels._tick.Tick.take_params`, also without
the GIL: the change was validated and its ramp blended in the supervisor,
:mod:`controller.runtime.retune`).  Nothing else runs in that process, so no
Python thread, console, logger or collector can hold it up; the supervisor
(:class:`Runtime`, in the caller's process) reaches it only through shared
memory (:mod:`controller.runtime.shm`) and, outside the loop, a pipe for start-up and
shutdown.
"""
from __future__ import annotations

import logging
import multiprocessing as mp
import os
import signal
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Callable, List, Optional, Sequence

import numpy as np

from controller.runtime import _rt
from controller.runtime._ring import memory_fence
from controller.runtime._rtloop import run_loop
from controller.runtime.loop import build_tick
from controller.params.registry import ParamSet
from controller.runtime.retune import RAMP_STRIDES, ParamPublisher, pack, unpack_target  # noqa: F401 (RAMP_STRIDES: re-exported)
from controller.runtime.rtsettings import apply_realtime, current_settings, freeze_gc
from controller.runtime.shm import REQUESTS, STAT, SharedChannels
from hal.bus import BusConfig

__all__ = ["RealtimeSpec", "RuntimeSpec", "Runtime", "RuntimeFailure", "TelemetryPump", "TelemetryRecorder",
           "PUMP_PERIOD_S"]

#: The supervisor drains the telemetry ring this often [s] (:class:`TelemetryPump`); the lock-step
#: harness hands its sinks the same batches of simulated time.
PUMP_PERIOD_S = 0.01


class RuntimeFailure(RuntimeError):
    """The tick's process could not start or stopped with an error; the message says why."""


@dataclass(frozen=True)
class RealtimeSpec:
    """Real-time settings of one process (see :mod:`controller.runtime.rtsettings`).

    priority: SCHED_FIFO priority 1..99, 0 = leave the scheduler alone.
    cpus: CPUs to pin to, empty = leave.  lock_memory: mlockall.  timer_slack_ns: 0 = leave.
    spin_ns: poll the clock for this long before each deadline (0 on a PREEMPT_RT kernel).
    freeze_gc: freeze and disable the cyclic garbage collector before the loop.
    cpu_latency_us: hold /dev/cpu_dma_latency at this while running (0: idle CPUs poll), -1 = leave.

    The defaults are the tick's on the board, declared only here: the run configuration's
    ``[realtime]`` takes a key it leaves out from them, and ``ankle sim --realtime`` starts from
    them.  80 is above PREEMPT_RT's threaded IRQ handlers (50).  :meth:`none` asks nothing of the
    operating system: what a spec that says nothing about real time gets (``RuntimeSpec``'s
    default), so tests and tools never take SCHED_FIFO by accident.
    """

    priority: int = 80
    cpus: tuple = ()
    lock_memory: bool = True
    timer_slack_ns: int = 1
    spin_ns: int = 0
    freeze_gc: bool = True
    cpu_latency_us: int = -1

    @classmethod
    def none(cls) -> "RealtimeSpec":
        """No request to the operating system: scheduling, affinity, memory and slack left alone."""
        return cls(priority=0, cpus=(), lock_memory=False, timer_slack_ns=0, spin_ns=0, cpu_latency_us=-1)

    def apply(self) -> List[str]:
        return apply_realtime(priority=self.priority, cpus=self.cpus, lock_memory=self.lock_memory,
                              timer_slack_ns=self.timer_slack_ns, cpu_latency_us=self.cpu_latency_us)


@dataclass(frozen=True)
class RuntimeSpec:
    """Everything the tick's process needs (picklable: it crosses into a new process)."""

    bus: BusConfig
    driver_id: int
    driver_model: str = "AK80-9"
    reply_id: int = 0
    setup_timeout_s: float = 0.5
    range_overrides: dict = field(default_factory=dict)     # hal.ak.mit_range corrections
    realtime: RealtimeSpec = field(default_factory=RealtimeSpec.none)
    boot_faults: int = 0
    miss_ns: int = 500_000
    #: "auto": the GIL-free link where the interface has one (socketcan, socketcand), else python-can;
    #: "python-can": always python-can (to compare, or for an interface without a link).  Either
    #: way the same loop body runs (controller.runtime._rtloop.run_loop); python-can reaches it
    #: through hal._link.PyCanLink, which takes the GIL per frame and is not real-time safe
    io: str = "auto"
    #: the drive, a name of hal.drives.DRIVES: its set-up class and codec come from that table
    driver: str = "ak_mit"
    #: the options of a drive other than ak_mit for its set-up class (``[driver.options]``)
    driver_options: dict = field(default_factory=dict)

    def __post_init__(self):
        from hal.drives import check_name
        check_name(self.driver, "driver")
        if self.io not in ("auto", "python-can"):
            raise ValueError(f"io must be 'auto' or 'python-can', got {self.io!r}")

    def setup_options(self) -> dict:
        """The keyword options of the drive's set-up class (beyond bus, id and model)."""
        if self.driver == "ak_mit":
            return {"reply_id": self.reply_id, "range_overrides": self.range_overrides or None,
                    **self.driver_options}
        return dict(self.driver_options)

    def torque_limit_Nm(self) -> float:
        """The drive's torque limit [N*m, its output shaft] from its model table (no bus)."""
        from hal.drives import load
        return load(self.driver, "setup").torque_limit_for(self.driver_model, **self.setup_options())


# ----------------------------------------------------------------------------- tick's process
_ACTIVATE_LEAD_NS = 60_000_000      # the driver is switched on this long before the first tick
_HANDOVER_NS = 20_000_000           # the last set-up frame this long before it (the link's hand-over)
_HOLD_PERIOD_S = 0.005              # zero-torque commands this often between the range check and then
def _tick_process(spec: RuntimeSpec, shm_path: str, capacity: int, conn) -> None:
    """Entry point of the tick's process."""
    from hal.bus import open_bus
    from hal.drives import build_codec, load
    from hal._link import PyCanLink
    from hal.errors import HalError
    from hal.links import open_link, tick_rx_ids

    _rt.set_thread_name("ankle-tick")          # ps / top / journal show which process ticks
    # Ctrl-C reaches the whole process group and systemd's stop the whole cgroup: only the
    # supervisor decides, through shared memory, so the driver is always switched off in order
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    shared = SharedChannels(shm_path, capacity=capacity)
    bus = driver = None
    # python-can's socketcand client warns about every frame split across TCP reads, which
    # is how TCP works; its real errors still come through
    logging.getLogger("can.interfaces.socketcand").setLevel(logging.ERROR)
    try:
        warnings = spec.realtime.apply()
        published = np.zeros(shared.snapshot.n)
        if not shared.snapshot.poll(published):
            raise RuntimeFailure("no parameter snapshot was published before the start")
        values = unpack_target(published)
        params = ParamSet.from_vector(values)
        bus = open_bus(spec.bus)
        setup = load(spec.driver, "setup")        # the drive's set-up class (hal.drives)
        driver = setup(bus, driver_id=spec.driver_id, model=spec.driver_model, **spec.setup_options())
        driver.configure()
        tick = build_tick(params, build_codec(spec.driver, driver))
        shared.report_accepted(shared.snapshot.taken, values)        # the start-up set is in force
        shared.set_stat("params_applied", shared.snapshot.taken)
        # the kernel filters the bus on what the tick reads: the sensor node's ids and the drive's
        link = open_link(spec.bus, rx_ids=tick_rx_ids(tick.codec)) if spec.io == "auto" else None
        conn.send(("ready", {"warnings": warnings, "settings": current_settings(),
                             "io": "GIL-free link" if link is not None else "python-can",
                             "t_max_Nm": driver.torque_limit_Nm,
                             "activate_lead_ns": activate_lead_ns(driver)}))
        command = conn.recv()
        if command[0] != "start":               # aborted before the start: the driver was never on
            conn.send(("stopped", {"aborted": True}))
            return
        t0_ns = int(command[1])
        # power the driver just before the first tick, so its watchdog never sees a gap
        wait_until_ns(t0_ns - activate_lead_ns(driver))
        driver.activate(timeout_s=spec.setup_timeout_s)
        # the commissioning round trip before any torque of the controller's is sent: the AK
        # motor's own MIT law confirms the configured ranges, a torque-only drive shows its
        # watchdog armed and its readings at the loop rate (a mismatch disarms it and is refused)
        driver.verify(timeout_s=spec.setup_timeout_s)
        _hold_passive(driver, bus, t0_ns - _HANDOVER_NS)
        if link is not None:
            # the tick has its own connection; an unread python-can one would only fill up
            bus.shutdown()
            bus = None
            link.discard()                      # what came before the loop is history
        tick.start(0.0)
        if spec.boot_faults:
            tick.safety.latch(spec.boot_faults, 0.0)
        period_ns = int(round(1e9 / params["loop.rate_Hz"]))
        cadence = _rt.Cadence(period_ns, t0_ns, spec.miss_ns, spec.realtime.spin_ns)
        requests = Requests(tick, shared)
        if link is None:
            # an interface with no GIL-free link: python-can, through the same loop body (the GIL
            # is taken per frame inside the link; not real-time safe), on the set-up's bus
            link = PyCanLink(bus)
        if spec.realtime.freeze_gc:
            freeze_gc()
        shared.set_stat("start_ns", t0_ns)
        shared.set_stat("state", 1)
        run_loop(tick, link, cadence, shared.ring, shared.params, shared.stats, STAT["stop"], t0_ns,
                 requests, STAT["req_seq"], STAT["ack_seq"], STAT["link_down"])
        link.close()                    # a PyCanLink leaves its bus open: the shutdown uses it
        shared.set_stat("state", 2)
        summary = {"frames_sent": tick.frames_sent, "send_errors": tick.send_errors,
                   "error_frames": tick.error_frames, "frames_lost": tick.frames_lost,
                   "rate_Hz": cadence.rate_Hz(_rt.now_ns()), "shutdown_error": ""}
        try:
            if bus is None:             # the shutdown talks python-can, on a connection of its own
                bus = open_bus(spec.bus)
                driver.rebind(bus)
            driver.deactivate(timeout_s=spec.setup_timeout_s)
        except HalError as e:
            # a lost bus is a fault of the run, not a failure of the shutdown's code: say what
            # could not be done and what happens instead, and end as a stop
            summary["shutdown_error"] = (f"{e} (the driver's watchdog disarms it once commands stop)"
                                         if shared.stat("link_down") else str(e))
        conn.send(("stopped", summary))
    except BaseException as e:      # the supervisor must hear why, whatever it was
        shared.set_stat("state", 3)
        expected = isinstance(e, (RuntimeFailure, HalError, ValueError, OSError))
        detail = f"{type(e).__name__}: {e}" if expected else traceback.format_exc()
        try:
            conn.send(("error", detail))
        except OSError:
            pass                        # the supervisor is gone: there is nobody left to tell
    finally:
        if bus is not None:
            bus.shutdown()


def activate_lead_ns(driver) -> int:
    """How long before the first tick the drive is switched on: its commissioning (activate,
    verify; ``MotorDriver.commission_s``) and the hand-over fit in before tick 0."""
    return max(_ACTIVATE_LEAD_NS, int(driver.commission_s * 1e9) + 2 * _HANDOVER_NS)


#: The first tick is at least this long after the start command is sent (the drive's
#: commissioning comes on top, see Runtime.first_tick_ns).
START_DELAY_NS = 100_000_000


def _hold_passive(driver, bus, until_ns: int) -> None:
    """Zero-torque commands (no gains, no feed-forward) until ``until_ns``, so the driver's
    watchdog sees no longer gap before the loop's first command than it did before the range check
    (which finishes at a time of the bus's making); never past ``until_ns``, so tick 0 is on time."""
    messages = driver.hold_messages()
    while True:
        left_s = (until_ns - _rt.now_ns()) * 1e-9
        if left_s <= 0:
            return
        for msg in messages:
            bus.send(msg)
        time.sleep(min(left_s, _HOLD_PERIOD_S))


class Requests:
    """Answers the console's requests in the tick's process, between ticks.

    ``clear_faults`` and ``select_mode`` (arg: a mode number of ``controller.kernels.faults.MODES``)
    are tried at every tick for up to :data:`RETRY_WINDOW_S`: some need the wearer's foot
    off the ground, which in walking is each swing.  The answer is "" or the last reason it
    was refused.  Never raises (it runs inside the loop).
    """

    RETRY_WINDOW_S = 2.0

    def __init__(self, tick, shared: SharedChannels):
        self.tick, self.shared = tick, shared
        self._retry_until = None

    def __call__(self) -> None:
        shared = self.shared
        memory_fence()                                  # the number was seen: now read what it covers
        code, arg = shared.stat("req_code"), shared.stat("req_arg")
        try:
            if code == REQUESTS["clear_faults"]:
                reason = self.tick.clear_faults()
            elif code == REQUESTS["select_mode"]:
                reason = self.tick.select_mode(arg)
            else:
                self._answer(f"unknown request {code}")
                return
            now = self.tick.safety.last_now_s
            if self._retry_until is None:
                self._retry_until = now + self.RETRY_WINDOW_S
            if reason and now < self._retry_until:
                return                                  # try again next tick
            self._answer(reason)
        except Exception as e:       # the loop must go on; the console hears what went wrong
            self._answer(f"{type(e).__name__}: {e}")

    def _answer(self, text: str) -> None:
        self._retry_until = None
        self.shared.set_reply(text)
        memory_fence()                                  # the reply lands before the acknowledgement
        self.shared.set_stat("ack_seq", self.shared.stat("req_seq"))


# ----------------------------------------------------------------------------- supervisor
class Runtime:
    """The tick's process as the supervisor sees it: start, begin, drain, retune, stop.

    Also a :class:`controller.symmetry.adaptation.ParamPublisher` (:meth:`accepted`, :meth:`can_publish`,
    :meth:`publish`, :meth:`outcome`), for every component that changes parameters: the
    console's backend and the symmetry adaptation, on their own threads.
    """

    def __init__(self, spec: RuntimeSpec, params: ParamSet, *, ring_capacity: int = 8192):
        if not isinstance(params, ParamSet):
            raise TypeError("params must be a validated controller.params.registry.ParamSet")
        self.spec = spec
        self.params = params
        self.shared = SharedChannels.create(capacity=ring_capacity)
        self.shared.snapshot.publish(pack(params, [params]))         # the start-up set
        self.publisher = ParamPublisher(self.shared.params)
        ctx = mp.get_context("spawn")      # a fresh interpreter: no threads or locks inherited
        self._conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_tick_process, name="ankle-tick", daemon=True,
                                   args=(spec, self.shared.path, ring_capacity, child))
        self.ready: dict = {}
        self.summary: dict = {}
        self._in_force: Optional[np.ndarray] = None
        self._accepted = params         # the set the tick accepted last, as read back (accepted())
        # the set read back is a seqlock with one reader: readers (the console's thread, the
        # telemetry's) take turns; publishers take turns inside the publisher
        self._read_lock = threading.Lock()
        self._finished = False          # the process has said its last word (stopped or error)

    def _receive(self, timeout_s: float, expect: str) -> dict:
        if not self._conn.poll(timeout_s):
            raise RuntimeFailure(f"the tick's process did not answer within {timeout_s:g} s "
                                f"(waiting for {expect}; exit code {self.process.exitcode})")
        try:
            kind, payload = self._conn.recv()
        except EOFError:
            self._finished = True
            raise RuntimeFailure(f"the tick's process exited (code {self.process.exitcode}) "
                                f"while the supervisor waited for {expect}") from None
        if kind == "error":
            self._finished = True           # its last word: stop() must not wait for another
            raise RuntimeFailure(payload)
        if kind != expect:
            raise RuntimeFailure(f"the tick's process said {kind!r}, expected {expect!r}")
        return payload

    def start(self, timeout_s: float = 20.0) -> dict:
        """Start the process, wait until the driver is commissioned; returns its report
        (``warnings``: the real-time settings refused, ``settings``: what it runs with)."""
        self.process.start()
        try:
            self.ready = self._receive(timeout_s, "ready")
            self.publisher.t_max_Nm = self.ready.get("t_max_Nm")
        finally:
            self.shared.unlink()       # both sides have it mapped; nothing is left in /dev/shm
        return self.ready

    def isolate(self) -> List[str]:
        """Keep the calling thread, and the threads and processes it starts from now on, off the
        CPUs the tick is pinned to (what ``isolcpus`` does for the whole system on a board).
        Returns warnings (none if the tick is not pinned or there is no other CPU)."""
        tick_cpus = set(self.spec.realtime.cpus)
        others = set(os.sched_getaffinity(0)) - tick_cpus
        if not tick_cpus or not others:
            return []
        try:
            os.sched_setaffinity(0, others)
        except OSError as e:
            return [f"warning: realtime.cpus: keeping the supervisor off CPU {sorted(tick_cpus)} refused "
                    f"({e.strerror}); running without it"]
        return []

    def first_tick_ns(self, now_ns: int) -> int:
        """The earliest CLOCK_MONOTONIC time tick 0 may be at when :meth:`begin` is called at
        ``now_ns``: the drive's commissioning must fit in before it."""
        lead_ns = int(self.ready.get("activate_lead_ns", _ACTIVATE_LEAD_NS)) if self.ready else _ACTIVATE_LEAD_NS
        return now_ns + max(START_DELAY_NS, lead_ns + 40_000_000)

    def begin(self, t0_ns: int) -> None:
        """Tick from CLOCK_MONOTONIC ``t0_ns`` on (time 0 of the kernels)."""
        self._conn.send(("start", int(t0_ns)))

    def drain(self, out: np.ndarray) -> int:
        """Copy pending telemetry rows into ``out``; returns how many."""
        return self.shared.ring.drain(out)

    def retune(self, params: ParamSet, *, if_idle: bool = False) -> Optional[int]:
        """Check ``params`` here, blend its ramp from the set the tick reported in force and publish
        it for the tick to take at a stride boundary (:mod:`controller.runtime.retune`); returns
        the publication's generation.  ParamError (nothing published) beyond the driver's range.
        ``if_idle``: only if the tick has taken every set published, else None (checked under the
        same lock as every publication, so a set the console just sent is never superseded)."""
        return self.publisher.publish(params, if_idle=if_idle)

    publish = retune

    def params_outcome(self, generation: int):
        """What the tick did with snapshot ``generation`` (see SharedChannels.params_outcome)."""
        return self.shared.params_outcome(generation)

    outcome = params_outcome

    def can_publish(self) -> bool:
        """The tick runs and has taken every snapshot published (none is waiting for a boundary)."""
        return self.shared.state == "running" and self.publisher.can_publish()

    def accepted(self) -> ParamSet:
        """The set the tick accepted last (in force, or ramping in); the start-up set until the tick
        reports one."""
        self.in_force()
        return self._accepted

    def in_force(self) -> Optional[ParamSet]:
        """The set the tick accepted last (in force, or ramping in), if it changed since the last
        call of this or :meth:`accepted` (from any thread); None otherwise."""
        with self._read_lock:
            if self._in_force is None:
                self._in_force = np.zeros(self.shared.n_params)
            if not self.shared.read_in_force(self._in_force):
                return None
            self._accepted = ParamSet.from_vector(self._in_force)
            return self._accepted

    @property
    def state(self) -> str:
        """The tick's process: starting, running, stopped or failed."""
        return self.shared.state

    def request(self, name: str, arg: int = 0, timeout_s: float = 5.0) -> str:
        """Ask the tick to ``clear_faults`` or ``select_mode`` (arg: a mode number) between ticks; returns
        its answer ("" when done, else why not).  One request at a time (one console)."""
        if name not in REQUESTS:
            raise ValueError(f"unknown request {name!r}; known: {', '.join(REQUESTS)}")
        shared = self.shared
        if shared.state != "running":
            return f"the controller is not running ({shared.state})"
        seq = shared.stat("req_seq") + 1
        shared.set_stat("req_code", REQUESTS[name])
        shared.set_stat("req_arg", int(arg))
        memory_fence()                                  # code and argument land before the number
        shared.set_stat("req_seq", seq)
        end = time.monotonic() + timeout_s
        while shared.stat("ack_seq") != seq:
            if time.monotonic() > end or shared.state != "running":
                return "no answer from the controller"
            time.sleep(0.002)
        memory_fence()
        return shared.get_reply()

    def stats(self) -> dict:
        """The loop's counters now, and the ring's."""
        out = {name: self.shared.stat(name) for name in STAT
               if name not in ("stop", "req_seq", "req_code", "req_arg", "ack_seq")}
        out["state"] = self.shared.state
        out["ring_dropped"] = self.shared.ring.dropped
        out["driver"] = self.spec.driver
        out["rows_published"] = self.shared.ring.written
        return out

    def wait_until_ns(self, t_ns: int) -> None:
        """Sleep until CLOCK_MONOTONIC ``t_ns``, or until the loop has ended (stopped or failed)
        before it: a supervisor must not sit out a session whose controller is gone, and the
        stop() that follows says why."""
        while self.shared.state not in ("stopped", "failed") and _rt.now_ns() < t_ns:
            time.sleep(min(max(t_ns - _rt.now_ns(), 0) * 1e-9, 0.05))

    def stop(self, timeout_s: float = 10.0) -> dict:
        """Ask the loop to stop, wait for the driver's shutdown; returns the process's summary."""
        self.shared.set_stat("stop", 1)
        try:
            # a process that already ended may have left its last word in the pipe: read it
            if not self.summary and not self._finished and (self.process.is_alive() or self._conn.poll(0)):
                # asked once only, and not after the process said its last word (an error): a
                # caller's clean-up stop() must not wait for an answer that cannot come, and hide
                # the real failure behind "exited while the supervisor waited"
                self._finished = True
                if self.shared.stat("state") == 0 and self.process.is_alive():      # never began
                    self._conn.send(("abort", 0))
                self.summary = self._receive(timeout_s, "stopped")
        finally:
            self.process.join(timeout_s)
            if self.process.is_alive():
                self.process.kill()
        return self.summary


class TelemetryPump(threading.Thread):
    """Drains the telemetry ring every ``period_s`` and hands each batch to the sinks.

    A sink is any callable taking an (n x columns) float array; it runs on this
    thread, off the tick's process, so a slow disk or console delays only itself.
    """

    def __init__(self, runtime: Runtime, sinks: Sequence[Callable[[np.ndarray], None]],
                 period_s: float = PUMP_PERIOD_S, batch: int = 4096):
        super().__init__(name="telemetry-pump", daemon=True)
        self.runtime = runtime
        self.sinks = list(sinks)
        self.period_s = period_s
        self._buf = np.empty((batch, runtime.shared.width))
        self._halt = threading.Event()
        self.rows = 0
        self.error: Optional[BaseException] = None

    def _drain_all(self) -> None:
        while True:
            n = self.runtime.drain(self._buf)
            if n == 0:
                return
            self.rows += n
            for sink in self.sinks:
                sink(self._buf[:n])

    def run(self) -> None:
        try:
            while not self._halt.wait(self.period_s):
                self._drain_all()
            self._drain_all()
        except BaseException as e:       # reported by finish(); the tick goes on regardless
            self.error = e

    def finish(self) -> None:
        """Drain what is left and stop the thread; re-raises a sink's error."""
        self._halt.set()
        self.join()
        if self.error is not None:
            raise self.error


class TelemetryRecorder:
    """A sink that keeps every row in a preallocated table (``rows`` x columns)."""

    def __init__(self, rows: int, width: int):
        self.table = np.full((rows, width), np.nan)
        self.n = 0
        self.overflow = 0

    def __call__(self, batch: np.ndarray) -> None:
        room = len(self.table) - self.n
        take = min(room, len(batch))
        self.table[self.n:self.n + take] = batch[:take]
        self.n += take
        self.overflow += len(batch) - take

    @property
    def rows(self) -> np.ndarray:
        return self.table[:self.n]


def wait_until_ns(t_ns: int) -> None:
    """Sleep the calling thread until CLOCK_MONOTONIC ``t_ns`` (used by supervisors)."""
    while True:
        left = (t_ns - _rt.now_ns()) * 1e-9
        if left <= 0:
            return
        time.sleep(min(left, 0.1))
