"""The real-time primitives: the tick cadence, absolute sleeps, timer slack and the shared-memory channels.

The cadence's bookkeeping is driven with an injected clock and checked against a small model of
its documented rules; the real sleeps are checked only for what is a correctness property (a wait
never returns before its deadline).  The channels run across real processes over a real block in
/dev/shm.  Nothing here asserts a duration, a latency or a rate: timeouts only stop a hang.
"""
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import deque
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.runtime._ring import ParamSnapshot, TelemetryRing, ring_bytes, snapshot_bytes
from controller.runtime._rt import Cadence, now_ns, sleep_until
from controller.runtime.shm import STAT, SharedChannels

ROOT = Path(__file__).resolve().parents[1]
WAIT_S = 60.0          # generous: only so that a broken child cannot hang the suite
MS = 1_000_000         # [ns]
SPAWN = multiprocessing.get_context("spawn")


# ---------------------------------------------------------------------------------------------
# Cadence with an injected clock
# ---------------------------------------------------------------------------------------------

class CadenceModel:
    """The documented rules, written independently of the kernel: deadline k is start + k * period.

    A tick whose work ends after the next deadline is an overrun; the next tick is the last
    deadline at or before the end (run at once, late), the ones entirely passed before it are
    skipped, and each skipped deadline is also missed.  A wake more than ``miss`` late is missed.
    """

    def __init__(self, period, start, miss=500_000):
        self.period, self.start, self.miss = period, start, miss
        self.k = 0
        self.ticks = self.missed = self.skipped = self.overruns = self.max_late = 0

    @property
    def deadline(self):
        return self.start + self.k * self.period

    def wake(self, now):
        late = now - self.deadline
        self.ticks += 1
        self.max_late = max(self.max_late, late)
        self.missed += late > self.miss
        return late

    def finish(self, end):
        nxt = self.k + 1
        if end > self.start + nxt * self.period:
            self.overruns += 1
            last = (end - self.start) // self.period      # the last deadline at or before the end
            self.skipped += last - nxt
            self.missed += last - nxt
            nxt = last
        self.k = nxt

    def counters(self):
        return [self.ticks, self.missed, self.skipped, self.overruns, self.max_late]


def exported(cad):
    out = np.full(5, -1, dtype=np.int64)
    cad.export(out)
    return out.tolist()


def test_deadlines_stay_on_the_grid_over_100k_ticks_with_jitter_and_overruns():
    period, start, n = 1 * MS, 987_654_321_012_345, 100_000
    cad, model = Cadence(period, start), CadenceModel(period, start)
    rng = np.random.default_rng(1)
    jitter = rng.integers(0, 700_000, n)            # some wakes beyond the 0.5 ms miss threshold
    work = rng.integers(0, 600_000, n)
    long = rng.random(n) < 0.003                     # some ticks run for up to 5 periods
    work[long] = rng.integers(period, 5 * period, int(long.sum()))
    end = start
    for i in range(n):
        deadline = cad.next_ns
        assert deadline == model.deadline
        assert (deadline - start) % period == 0
        now = max(deadline, end) + int(jitter[i])
        late = cad.on_wake(now)
        assert late == now - deadline == model.wake(now)
        assert cad.late_ns == late
        end = now + int(work[i])
        cad.finish(end)
        model.finish(end)
        assert end - cad.next_ns < period          # after finish, never a whole period behind
    assert exported(cad) == model.counters()
    assert cad.ticks == n
    assert cad.overruns > 0 and cad.skipped > 0      # the long ticks did happen


def test_no_drift_without_overruns_over_100k_ticks():
    period, start, miss, n = 1 * MS, 5 * 10**15, 300_000, 100_000
    cad = Cadence(period, start, miss_ns=miss)
    rng = np.random.default_rng(2)
    jitter = rng.integers(0, period // 2, n)
    work = rng.integers(0, period // 2 + 1, n)      # wake + work never passes the next deadline
    for i in range(n):
        now = cad.next_ns + int(jitter[i])
        cad.on_wake(now)
        cad.finish(now + int(work[i]))
    assert cad.next_ns == start + n * period         # exactly: no drift
    assert exported(cad) == [n, int((jitter > miss).sum()), 0, 0, int(jitter.max())]


def test_overrun_counts_one_and_the_next_tick_runs_at_once():
    period, start = 1 * MS, 10**12
    cad = Cadence(period, start)
    cad.on_wake(start)
    end = start + period + period // 4              # passes the next deadline by a quarter period
    cad.finish(end)
    assert cad.overruns == 1 and cad.skipped == 0 and cad.missed == 0
    assert cad.next_ns == start + period             # that deadline is still due: run at once
    assert cad.on_wake(end) == period // 4           # late by the quarter period
    cad.finish(end + 1000)
    assert cad.next_ns == start + 2 * period
    assert cad.overruns == 1


def test_ending_exactly_on_the_next_deadline_is_not_an_overrun():
    cad = Cadence(1 * MS, 0)
    cad.on_wake(0)
    cad.finish(1 * MS)
    assert cad.overruns == 0 and cad.skipped == 0 and cad.next_ns == 1 * MS


@pytest.mark.parametrize("periods_past, skipped", [(0.5, 0), (1.0, 1), (3.5, 3), (10.25, 10)])
def test_deadlines_entirely_passed_are_skipped_not_caught_up(periods_past, skipped):
    period, start = 1 * MS, 7 * 10**12
    cad = Cadence(period, start)
    cad.on_wake(start)
    end = start + period + int(periods_past * period)   # this far past the next deadline
    cad.finish(end)
    assert cad.overruns == 1
    assert cad.skipped == skipped
    assert cad.missed == skipped
    assert cad.next_ns == start + (1 + skipped) * period
    assert cad.next_ns <= end < cad.next_ns + period


def test_lateness_above_the_miss_threshold_is_missed_equal_is_not():
    period, start, miss = 1 * MS, 0, 200_000
    cad = Cadence(period, start, miss_ns=miss)
    cad.on_wake(start + miss)                        # exactly the threshold: not missed
    assert cad.missed == 0
    cad.finish(start + miss + 1)
    cad.on_wake(cad.next_ns + miss + 1)              # one ns beyond: missed
    assert cad.missed == 1
    assert cad.max_late_ns == miss + 1


def test_ending_three_and_a_half_periods_late_skips_three_and_misses_them():
    period, start = 1 * MS, 0
    cad = Cadence(period, start)                     # default miss threshold: 0.5 ms = half a period
    cad.on_wake(start)
    end = start + period + 3 * period + period // 2
    cad.finish(end)
    assert (cad.skipped, cad.missed, cad.overruns) == (3, 3, 1)
    late = cad.on_wake(end)                          # the deadline due now, half a period late
    assert late == period // 2 == cad.miss_ns        # equal to the threshold: not one more miss
    assert cad.missed == 3


def test_max_late_is_the_largest_lateness_and_never_negative():
    cad = Cadence(1 * MS, 10 * MS)
    assert cad.on_wake(10 * MS - 5000) == -5000      # an early wake (only an injected clock can)
    assert cad.late_ns == -5000 and cad.max_late_ns == 0
    lates = [30_000, 900_000, 10_000]
    for late in lates:
        cad.finish(cad.next_ns - 1)
        cad.on_wake(cad.next_ns + late)
    assert cad.max_late_ns == max(lates)
    assert cad.ticks == 4 and cad.missed == 1


def test_export_writes_the_five_words_and_nothing_else():
    cad = Cadence(1 * MS, 0, miss_ns=100_000)
    cad.on_wake(250_000)
    cad.finish(4 * MS + 10)
    cad.on_wake(4 * MS + 10)
    out = np.full(8, -7, dtype=np.int64)
    cad.export(out)
    assert out[:5].tolist() == [cad.ticks, cad.missed, cad.skipped, cad.overruns, cad.max_late_ns]
    assert out[:5].tolist() == [2, 1 + 3, 3, 1, 250_000]   # 1 late wake + 3 skipped
    assert out[5:].tolist() == [-7, -7, -7]
    with pytest.raises(ValueError):
        cad.export(np.zeros(4, dtype=np.int64))


def test_rate_is_ticks_per_second_since_start():
    cad = Cadence(1 * MS, 10**9)
    assert cad.rate_Hz(10**9) == 0.0 and cad.rate_Hz(0) == 0.0
    for _ in range(5):
        cad.on_wake(cad.next_ns)
        cad.finish(cad.next_ns)
    assert cad.rate_Hz(10**9 + 2 * 10**9) == pytest.approx(2.5)


@pytest.mark.parametrize("kwargs", [
    dict(period_ns=0, start_ns=0), dict(period_ns=-1, start_ns=0),
    dict(period_ns=1000, start_ns=0, spin_ns=1000), dict(period_ns=1000, start_ns=0, spin_ns=5000),
    dict(period_ns=1000, start_ns=0, spin_ns=-1),
    dict(period_ns=1000, start_ns=0, miss_ns=0), dict(period_ns=1000, start_ns=0, miss_ns=-3),
], ids=["period0", "period-neg", "spin=period", "spin>period", "spin-neg", "miss0", "miss-neg"])
def test_bad_arguments_raise_value_error(kwargs):
    with pytest.raises(ValueError):
        Cadence(**kwargs)


def test_counters_are_read_only():
    cad = Cadence(1000, 0)
    with pytest.raises(AttributeError):
        cad.next_ns = 5
    with pytest.raises(AttributeError):
        cad.missed = 0


def _offsets(period):
    """Offsets [ns] from 0 to 6 periods, with the exact multiples of the period (and ±1) well covered."""
    near_multiple = st.tuples(st.integers(0, 6), st.integers(-1, 1)).map(
        lambda t: max(0, t[0] * period + t[1]))
    return st.integers(0, 6 * period) | near_multiple


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_cadence_matches_the_model_over_random_wakes_and_work(data):
    period = data.draw(st.integers(1, 10**9), label="period")
    start = data.draw(st.integers(0, 2**60), label="start")
    miss = data.draw(st.integers(1, 2 * period) | st.just(period // 2 or 1), label="miss")
    steps = data.draw(st.lists(st.tuples(_offsets(period), _offsets(period)), max_size=40),
                      label="(wake offset, work)")
    cad, model = Cadence(period, start, miss_ns=miss), CadenceModel(period, start, miss)
    end = start
    for offset, work in steps:
        now = max(cad.next_ns, end) + offset
        assert cad.on_wake(now) == model.wake(now) == now - cad.next_ns
        end = now + work
        cad.finish(end)
        model.finish(end)
        assert cad.next_ns == model.deadline
        assert exported(cad) == model.counters()


# ---------------------------------------------------------------------------------------------
# Real sleeps: correctness only (never before the deadline), no timing claims
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("spin_ns", [0, 400_000], ids=["sleep", "sleep+spin"])
def test_wait_never_returns_before_its_deadline(spin_ns):
    period = 2 * MS
    cad = Cadence(period, now_ns() + period, spin_ns=spin_ns)
    for i in range(25):
        deadline = cad.next_ns
        t = cad.wait()
        assert t >= deadline
        assert now_ns() >= t
        assert cad.ticks == i + 1
        assert cad.late_ns == t - deadline
        cad.finish(now_ns())
        assert (cad.next_ns - cad.start_ns) % period == 0


def test_wait_for_a_passed_deadline_returns_and_counts_it_missed():
    cad = Cadence(1 * MS, now_ns() - 10 * 10**9)      # the first deadline was 10 s ago
    t = cad.wait()
    assert t - cad.start_ns >= 10 * 10**9
    assert cad.late_ns == t - cad.start_ns
    assert cad.missed == 1 and cad.max_late_ns == cad.late_ns


def test_sleep_until_holds_its_deadline_through_signals():
    calls = []
    old = signal.signal(signal.SIGALRM, lambda *_: calls.append(1))
    try:
        target = now_ns() + 300 * MS
        signal.setitimer(signal.ITIMER_REAL, 0.01, 0.01)   # SIGALRM every 10 ms during the sleep
        sleep_until(target)
        after = now_ns()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0, 0)
        signal.signal(signal.SIGALRM, old)
    assert after >= target                # an interrupted sleep resumes toward the same deadline
    assert calls                          # the timer did fire while it slept (it started 300 ms ago)
    sleep_until(now_ns() - 10**9)         # a past deadline returns at once (would hang otherwise)


# ---------------------------------------------------------------------------------------------
# Timer slack and memory locking, in a child process (they change process-wide settings)
# ---------------------------------------------------------------------------------------------

_SETTINGS_CHILD = textwrap.dedent("""
    import json, os, sys
    os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))   # the kernel reports 0 under FIFO
    from controller.runtime._rt import lock_memory, set_timer_slack_ns, timer_slack_ns, unlock_memory

    def locked_kB():
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmLck:"))

    out = {"policy": os.sched_getscheduler(0), "initial": timer_slack_ns()}
    out["zero"] = set_timer_slack_ns(0)
    out["after_zero"] = timer_slack_ns()
    out["set"] = [[ns, set_timer_slack_ns(ns), timer_slack_ns()] for ns in json.loads(sys.argv[1])]
    out["lock"] = lock_memory()
    out["locked_kB"] = locked_kB()
    unlock_memory()
    out["unlocked_kB"] = locked_kB()
    print(json.dumps(out))
""")


def test_timer_slack_is_set_and_read_back_and_zero_refused_in_a_child():
    values = [1, 1000, 50_001, 123_457, 2_000_000, 99_999_999]
    proc = subprocess.run([sys.executable, "-c", _SETTINGS_CHILD, json.dumps(values)], cwd=ROOT,
                          capture_output=True, text=True, timeout=WAIT_S)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["policy"] == os.SCHED_OTHER
    assert isinstance(out["zero"], str) and "1 ns" in out["zero"]     # refused, with the reason
    assert out["after_zero"] == out["initial"]                          # ... and nothing changed
    for ns, result, read_back in out["set"]:
        assert result == ""
        assert read_back == ns
    # mlockall: either it worked (some memory locked, all given back) or it says why not
    if out["lock"] == "":
        assert out["locked_kB"] > 0
    else:
        assert isinstance(out["lock"], str) and out["locked_kB"] == 0
    assert out["unlocked_kB"] == 0


# ---------------------------------------------------------------------------------------------
# TelemetryRing
# ---------------------------------------------------------------------------------------------

def aligned(nbytes, misalign=0):
    """A zeroed writable buffer of ``nbytes`` starting ``misalign`` bytes after a 64-byte boundary."""
    raw = np.zeros(nbytes + 128, dtype=np.uint8)
    off = (-raw.ctypes.data) % 64 + misalign
    return raw[off:off + nbytes]


def row_of(counter, width):
    return counter * 16 + np.arange(width, dtype=np.float64)


ring_ops = st.lists(st.tuples(st.sampled_from(["push", "slot", "drain"]), st.integers(0, 40)),
                    max_size=60)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(log2cap=st.integers(0, 5), width=st.integers(1, 6), ops=ring_ops)
def test_ring_matches_a_deque_model(log2cap, width, ops):
    cap = 1 << log2cap
    buf = aligned(ring_bytes(cap, width))
    producer = TelemetryRing(buf, cap, width, reset=True)
    consumer = TelemetryRing(buf, cap, width)        # the other side's own object over the same bytes
    model, written, dropped, counter = deque(), 0, 0, 0
    for op, k in ops:
        if op == "drain":
            out = np.full((k, width), np.nan)
            n = consumer.drain(out)
            expect = [model.popleft() for _ in range(min(k, len(model)))]
            assert n == len(expect)
            np.testing.assert_array_equal(out[:n], np.array(expect).reshape(n, width))
            assert np.isnan(out[n:]).all()
        else:
            for _ in range(k):
                row = row_of(counter, width)
                counter += 1
                if op == "push":
                    ok = producer.push(row)
                else:
                    i = producer.slot()
                    ok = i >= 0
                    if ok:
                        assert i == written % cap
                        producer.rows[i] = row
                        producer.commit()
                if len(model) < cap:
                    assert ok
                    model.append(row)
                    written += 1
                else:
                    assert not ok
                    dropped += 1
        assert consumer.pending == producer.pending == len(model)
        assert consumer.written == written
        assert consumer.dropped == dropped


def test_ring_wraps_around_many_times():
    cap, width = 8, 3
    buf = aligned(ring_bytes(cap, width))
    producer = TelemetryRing(buf, cap, width, reset=True)
    consumer = TelemetryRing(buf, cap, width)
    out = np.empty((cap, width))
    pushed = got = 0
    rng = np.random.default_rng(3)
    for _ in range(3000):
        for _ in range(int(rng.integers(1, cap + 1))):
            if producer.push(row_of(pushed, width)):
                pushed += 1
        n = consumer.drain(out[:int(rng.integers(1, cap + 1))])
        for r in out[:n]:
            np.testing.assert_array_equal(r, row_of(got, width))
            got += 1
    while n := consumer.drain(out):
        for r in out[:n]:
            np.testing.assert_array_equal(r, row_of(got, width))
            got += 1
    assert got == pushed == consumer.written
    assert pushed > 100 * cap                         # many laps
    assert consumer.pending == 0


def test_ring_rejects_bad_geometry_and_buffers():
    width = 4
    for cap in (0, -4, 3, 6, 12, 1000):
        with pytest.raises(ValueError, match="power of two"):
            TelemetryRing(aligned(ring_bytes(1024, width)), cap, width)
    with pytest.raises(ValueError):
        TelemetryRing(aligned(ring_bytes(8, 1)), 8, 0)
    with pytest.raises(ValueError, match="needs"):
        TelemetryRing(aligned(ring_bytes(8, width) - 1), 8, width)
    for misalign in (1, 8, 32):
        with pytest.raises(ValueError, match="aligned"):
            TelemetryRing(aligned(ring_bytes(8, width), misalign), 8, width)
    ring = TelemetryRing(aligned(ring_bytes(8, width)), 8, width, reset=True)
    with pytest.raises(ValueError):
        ring.push(np.zeros(width + 1))
    with pytest.raises(ValueError):
        ring.drain(np.zeros((4, width - 1)))
    assert ring.written == 0 and ring.dropped == 0   # refused calls changed nothing


# ---------------------------------------------------------------------------------------------
# ParamSnapshot
# ---------------------------------------------------------------------------------------------

def test_snapshot_poll_takes_each_publication_once():
    n = 5
    buf = aligned(snapshot_bytes(n))
    writer = ParamSnapshot(buf, n, reset=True)
    reader = ParamSnapshot(buf, n)
    out = np.full(n, np.nan)
    assert not reader.poll(out) and np.isnan(out).all()          # nothing published yet
    assert writer.generation == 0
    assert writer.publish(np.arange(n, dtype=float)) == 1
    assert reader.poll(out) and out.tolist() == list(range(n))
    assert not reader.poll(out)                                  # nothing new
    writer.publish(np.full(n, 2.0))
    assert writer.publish(np.full(n, 3.0)) == 3                  # two before the reader looks
    assert reader.poll(out) and out.tolist() == [3.0] * n        # the latest, once
    assert not reader.poll(out)
    late = ParamSnapshot(buf, n)                                 # attached after the publications
    fresh = np.zeros(n)
    assert late.poll(fresh) and fresh.tolist() == [3.0] * n
    assert not late.poll(fresh)
    assert reader.generation == late.generation == 3


def test_snapshot_rejects_bad_sizes():
    n = 4
    with pytest.raises(ValueError):
        ParamSnapshot(aligned(snapshot_bytes(n)), 0)
    with pytest.raises(ValueError, match="needs"):
        ParamSnapshot(aligned(snapshot_bytes(n) - 1), n)
    with pytest.raises(ValueError, match="aligned"):
        ParamSnapshot(aligned(snapshot_bytes(n), 8), n)
    snap = ParamSnapshot(aligned(snapshot_bytes(n)), n, reset=True)
    with pytest.raises(ValueError):
        snap.publish(np.zeros(n - 1))
    with pytest.raises(ValueError):
        snap.poll(np.zeros(n + 1))
    assert snap.generation == 0


# ---------------------------------------------------------------------------------------------
# Across real processes, over the shared block in /dev/shm
# ---------------------------------------------------------------------------------------------

def _ring_producer(path, capacity, n_rows, attached):
    """Child: push ``n_rows`` rows whose every value is the row's counter (half via slot/commit)."""
    ch = SharedChannels(path, capacity=capacity)
    attached.set()
    ring, row = ch.ring, np.empty(ch.width)
    for i in range(n_rows):
        if i % 2:
            k = ring.slot()
            if k >= 0:
                ring.rows[k] = i
                ring.commit()
        else:
            row.fill(i)
            ring.push(row)
    ring = None
    ch.close()


def _snapshot_writer(path, capacity, duration_s, attached):
    """Child: publish vectors whose every element is the generation number, for ``duration_s``."""
    ch = SharedChannels(path, capacity=capacity)
    attached.set()
    snap = ch.snapshot
    values = np.empty(snap.n)
    gen = snap.generation
    end = time.monotonic() + duration_s
    while time.monotonic() < end:
        gen += 1
        values.fill(gen)
        if snap.publish(values) != gen:
            raise SystemExit(3)
    snap = None
    ch.close()


def _stop(proc):
    if proc.is_alive():
        proc.kill()
    proc.join(WAIT_S)


def test_ring_across_processes_delivers_every_row_not_dropped_in_order():
    capacity, n_rows = 1024, 200_000
    ch = SharedChannels.create(capacity=capacity)
    attached = SPAWN.Event()
    proc = SPAWN.Process(target=_ring_producer, args=(ch.path, capacity, n_rows, attached))
    chunks = []
    try:
        proc.start()
        assert attached.wait(WAIT_S), "the producer never attached"
        ch.unlink()                                   # as the supervisor does once the runtime mapped it
        ring, out = ch.ring, np.empty((256, ch.width))
        give_up = time.monotonic() + 4 * WAIT_S
        while True:
            alive = proc.is_alive()                   # sampled before the drain: a dead producer is done
            n = ring.drain(out)
            if n:
                rows = out[:n]
                assert (rows == rows[:, :1]).all(), "a torn row"
                chunks.append(rows[:, 0].copy())
            elif not alive:
                break
            else:
                time.sleep(0.0002)
            assert time.monotonic() < give_up, "the producer never finished"
        proc.join(WAIT_S)
        assert proc.exitcode == 0
        got = np.concatenate(chunks)
        assert (got == np.round(got)).all()
        assert (np.diff(got) > 0).all(), "rows out of order or repeated"
        assert got[0] >= 0 and got[-1] < n_rows
        assert len(got) + ring.dropped == n_rows
        assert ring.written == len(got) and ring.pending == 0
        assert len(got) >= capacity                   # the ring starts empty: the first lap fits
        ring = None
    finally:
        _stop(proc)
        ch.unlink()
        ch.close()


def test_snapshot_across_processes_is_never_torn_and_generations_increase():
    ch = SharedChannels.create(capacity=64)
    attached = SPAWN.Event()
    proc = SPAWN.Process(target=_snapshot_writer, args=(ch.path, 64, 1.0, attached))
    try:
        proc.start()
        assert attached.wait(WAIT_S), "the writer never attached"
        ch.unlink()
        snap = ch.snapshot
        out = np.empty(snap.n)
        last, taken = 0.0, 0
        give_up = time.monotonic() + 4 * WAIT_S
        while True:
            alive = proc.is_alive()
            if snap.poll(out):
                assert (out == out[0]).all(), f"a torn snapshot: {np.unique(out)}"
                assert out[0] > last, "generations must strictly increase"
                assert out[0] <= snap.generation
                last, taken = out[0], taken + 1
            elif not alive:
                break
            assert time.monotonic() < give_up, "the writer never finished"
        proc.join(WAIT_S)
        assert proc.exitcode == 0
        assert taken >= 1
        assert last == snap.generation                # the final publication was taken
        assert not snap.poll(out)
        snap = None
    finally:
        _stop(proc)
        ch.unlink()
        ch.close()


# ---------------------------------------------------------------------------------------------
# The shared block itself
# ---------------------------------------------------------------------------------------------

SHM_DIR = Path("/dev/shm") if Path("/dev/shm").is_dir() else Path(os.environ.get("TMPDIR", "/tmp"))


def _blocks():
    """This process's shared blocks on disk."""
    return {p.name for p in SHM_DIR.glob(f"ankle-rt-{os.getpid()}-*")}


def test_create_attach_unlink_leaves_nothing_behind():
    before = _blocks()
    ch = SharedChannels.create(capacity=64)
    other = None
    try:
        assert Path(ch.path).exists()
        assert Path(ch.path).name in _blocks()
        other = SharedChannels(ch.path, capacity=64)
        ch.set_stat("stop", 1)
        assert other.stat("stop") == other.stats[STAT["stop"]] == 1    # one block, two mappings
        cad = Cadence(1 * MS, 0)
        cad.on_wake(123)
        cad.finish(2 * MS + 5)
        cad.export(other.stats)
        assert [ch.stat(k) for k in ("ticks", "missed", "skipped", "overruns", "max_late_ns")] == \
            [1, 1, 1, 1, 123]
        assert other.ring.push(np.arange(other.width, dtype=float))
        assert ch.ring.pending == 1
        ch.unlink()
        assert not Path(ch.path).exists()
        ch.unlink()                                   # again: no error
        assert other.ring.pending == 1                # the mappings outlive the name
    finally:
        ch.unlink()
        ch.close()
        if other is not None:
            other.close()
    assert _blocks() == before


def test_attaching_a_too_small_block_raises_value_error():
    ch = SharedChannels.create(capacity=64)
    try:
        with pytest.raises(ValueError, match="expected"):
            SharedChannels(ch.path, capacity=4096)    # bigger than the block that exists
        with open(ch.path, "r+b") as f:
            f.truncate(100)
        with pytest.raises(ValueError, match="expected"):
            SharedChannels(ch.path, capacity=64)
    finally:
        ch.unlink()
        ch.close()
    assert not Path(ch.path).exists()


def test_attaching_a_missing_block_raises_and_creating_twice_refuses():
    ch = SharedChannels.create(capacity=64)
    path = ch.path
    try:
        with pytest.raises(FileExistsError):
            SharedChannels(path, capacity=64, create=True)
    finally:
        ch.unlink()
        ch.close()
    with pytest.raises(FileNotFoundError):
        SharedChannels(path, capacity=64)
