"""The simulated wearer told what to do (:meth:`sim.wearer.Wearer.command`), the scenario that
waits for it (``fitting``), the simulator console's ``wearer`` command that tells it
(:mod:`sim.wearer_console`), and the whole chain in real time (console -> supervisor -> the
devices' process -> the wearer).

The lock-step tests drive :meth:`Wearer.next_stride` with no clock, two ways: directly (each call
plans the segment that starts where the last ended) and as :class:`sim.devices.SimAnkle` does (the
segment after the present one is planned at the present walking stride's toe-off, or as soon as
the present standing segment begins), which is what decides how long a command waits in a run.
"""
from __future__ import annotations

import math
import re
import time
from typing import List, Optional, Sequence, Tuple

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from hal._sensor_frames import decode_imu, decode_load
from conftest import sim_console
from sim import harness, reference
from sim.plant import build_plant
from sim.wearer import MAX_SPEED_M_S, MIN_SPEED_M_S, SEGMENT_S, STANDARD_GRAVITY, UNLOAD_S, Wearer

MASS_KG = 80.0
BW_N = MASS_KG * STANDARD_GRAVITY
G = {c: i for i, c in enumerate(harness.TRUTH_COLUMNS)}


def initiation_s(speed_m_s: float) -> float:
    """Unloading and the initiation swing at ``speed_m_s``: the reference swing's duration."""
    v = int(round(speed_m_s * 100)) / 100.0
    return UNLOAD_S + (1.0 - reference.stance_fraction(v)) * reference.stride_time_s(v)


def plan_directly(wearer: Wearer, until_s: float, commands: Sequence[Tuple[float, Optional[float]]] = ()):
    """next_stride the way sim/plant is fed: each segment starts where the last ended (t += duration),
    from 0 or the end of what the wearer planned already.  A command at ``t_s`` is given before planning the first segment that starts at or after it."""
    pending = sorted(commands, key=lambda c: c[0])
    t = wearer.strides[-1].t_end_s if wearer.strides else 0.0     # on from where it was left
    while t < until_s:
        while pending and pending[0][0] <= t:
            wearer.command(pending.pop(0)[1])
        wearer.next_stride(t)
        t = wearer.strides[-1].t_end_s
    return wearer.strides


def plan_as_the_devices_do(wearer: Wearer, until_s: float,
                           commands: Sequence[Tuple[float, Optional[float]]] = ()):
    """next_stride when :class:`sim.devices.SimAnkle` calls it: the successor of a walking stride
    at its toe-off, of a standing segment as it begins (plant time).  A command at ``t_s`` comes
    before every plan made at or after ``t_s``; as in the devices' process (sim.realtime), the
    segment planned last is planned again (replan_last) when it has not begun by then."""
    pending = sorted(commands, key=lambda c: c[0])
    wearer.next_stride(0.0)
    while True:
        last = wearer.strides[-1]
        if last.t_end_s >= until_s:
            return wearer.strides
        due_s = last.t_toe_off_s if last.walking else last.t_heel_strike_s
        if pending and pending[0][0] <= due_s:
            t_s, speed = pending.pop(0)
            wearer.command(speed)
            if last.t_heel_strike_s > t_s:          # queued, not begun (the plant's next_queued)
                wearer.replan_last()
            continue
        wearer.next_stride(last.t_end_s)


def contiguous(strides) -> bool:
    return all(b.t_heel_strike_s == pytest.approx(a.t_end_s, abs=1e-9) for a, b in zip(strides, strides[1:]))


def first_walking_after(strides, t_s: float):
    return next(i for i, s in enumerate(strides) if s.walking and s.t_heel_strike_s >= t_s)


# --------------------------------------------------------------------------- the wearer, lock-step
def test_a_fitting_wearer_stands_until_told():
    strides = plan_directly(Wearer("fitting", 1.25, MASS_KG, seed=3), 60.0)
    assert strides[-1].t_end_s >= 60.0 and contiguous(strides)
    assert not any(s.walking for s in strides)
    assert all(s.stance_fraction == 1.0 for s in strides)              # no gait initiation planned
    assert all(SEGMENT_S[0] <= s.stride_s <= SEGMENT_S[1] for s in strides)
    assert all(s.speed_m_s == 0.0 for s in strides)


def check_initiation_then_walking(strides, t_command_s: float, speed_m_s: float, bound_s: float) -> float:
    """The standing wearer told to walk at ``t_command_s``: one segment that ends with gait initiation,
    then ordinary walking strides at ``speed_m_s``; returns the delay to the first walking heel strike."""
    assert contiguous(strides)
    first = first_walking_after(strides, 0.0)
    initiation = strides[first - 1]
    assert not any(s.walking for s in strides[:first])
    assert all(s.stance_fraction == 1.0 for s in strides[:first - 1])      # quiet standing before it
    assert initiation.stance_fraction < 1.0                                 # it unloads, then swings
    swing_s = (1.0 - initiation.stance_fraction) * initiation.stride_s
    assert swing_s == pytest.approx(initiation_s(speed_m_s) - UNLOAD_S, abs=1e-6)
    walking = strides[first:]
    assert len(walking) >= 3 and all(s.walking for s in walking)
    assert all(s.speed_m_s == pytest.approx(speed_m_s) for s in walking)
    nominal_s = reference.stride_time_s(speed_m_s)
    assert all(abs(s.stride_s / nominal_s - 1.0) < 0.07 for s in walking)   # stride_cv 0.02, within 3.5 sd
    delay_s = strides[first].t_heel_strike_s - t_command_s
    assert 0.0 < delay_s <= bound_s, (delay_s, bound_s)
    return delay_s


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(t_command_s=st.floats(0.01, 40.0), seed=st.integers(0, 1000),
       speed_m_s=st.sampled_from([0.8, 1.25, 1.7]))
def test_told_to_walk_it_initiates_within_a_segment_then_walks(t_command_s, seed, speed_m_s):
    wearer = Wearer("fitting", 1.25, MASS_KG, seed=seed)
    strides = plan_directly(wearer, t_command_s + 30.0, [(t_command_s, speed_m_s)])
    check_initiation_then_walking(strides, t_command_s, speed_m_s, SEGMENT_S[1] + initiation_s(speed_m_s))


def test_as_the_devices_plan_a_walk_command_waits_at_most_the_present_segment():
    """The delay a console user sees: the segment after the present one is planned already; the
    devices plan it again, so the wearer initiates gait at the end of the present segment
    (measured over a grid of command times: 0.5 s past SEGMENT_S[1] at worst)."""
    bound_s = SEGMENT_S[1] + initiation_s(1.25)
    worst = 0.0
    for seed in range(6):
        for t_command_s in np.arange(0.01, 30.0, 0.37):
            strides = plan_as_the_devices_do(Wearer("fitting", 1.25, MASS_KG, seed=seed), t_command_s + 25.0,
                                             [(t_command_s, 1.25)])
            worst = max(worst, check_initiation_then_walking(strides, t_command_s, 1.25, bound_s))
    assert SEGMENT_S[0] < worst <= bound_s                  # a long segment can be in the way
    print(f"worst walk-start delay as the devices plan: {worst:.2f} s (bound {bound_s:.2f} s)")


def test_planned_again_a_queued_initiation_told_to_stand_stands_and_a_stride_is_never_planned_again():
    wearer = Wearer("stop-start", 1.25, MASS_KG, seed=7)
    strides = plan_as_the_devices_do(wearer, 22.0)
    assert not strides[-1].walking and strides[-1].stance_fraction < 1.0    # the initiation is queued
    queued = strides[-1]
    wearer.command(0.0)
    profile, duration_s, loaded_share, walking = wearer.replan_last()
    again = wearer.strides[-1]
    assert len(wearer.strides) == len(strides) and again.index == queued.index
    assert again.t_heel_strike_s == queued.t_heel_strike_s and loaded_share == 1.0 and not walking
    assert profile.shape == (8, 1001) and again.stride_s == duration_s
    plan_as_the_devices_do(wearer, 60.0)
    assert not any(s.walking for s in wearer.strides[queued.index:])
    walking = Wearer("steady", 1.25, MASS_KG, seed=7)
    plan_directly(walking, 5.0)
    before = list(walking.strides)
    walking.command(0.0)
    assert walking.replan_last() is None and walking.strides == before


def test_planned_again_a_queued_segment_joins_as_the_first_plan_would_have():
    """replan_last with no change of command plans the very same segment (the state is put back)."""
    wearer = Wearer("fitting", 1.25, MASS_KG, seed=8)
    plan_directly(wearer, 12.0)
    first = wearer.next_stride(wearer.strides[-1].t_end_s)
    planned = wearer.strides[-1]
    again = wearer.replan_last()
    assert wearer.strides[-1] == planned and np.array_equal(first[0], again[0]) and first[1:] == again[1:]
    plan_directly(wearer, 30.0)
    twin = Wearer("fitting", 1.25, MASS_KG, seed=8)
    plan_directly(twin, 30.0)
    assert wearer.strides == twin.strides


@pytest.mark.parametrize("plan", [plan_directly, plan_as_the_devices_do])
def test_told_to_stand_it_stops_at_a_heel_strike_and_stands(plan):
    t_command_s = 10.0
    strides = plan(Wearer("steady", 1.25, MASS_KG, seed=1), 40.0, [(t_command_s, 0.0)])
    assert contiguous(strides)
    stop = next(i for i, s in enumerate(strides) if not s.walking)
    assert all(s.walking for s in strides[:stop]) and not any(s.walking for s in strides[stop:])
    assert all(s.stance_fraction == 1.0 for s in strides[stop:])       # stands for good: no initiation
    # the first stride planned after the command: the next heel strike, or (as the devices plan, at
    # toe-off) the one after
    strides_late = 0 if plan is plan_directly else 1
    before = [s for s in strides[:stop] if s.t_heel_strike_s < t_command_s]
    assert stop - len(before) <= strides_late
    assert strides[stop].t_heel_strike_s - t_command_s < (strides_late + 1) * reference.stride_time_s(1.25) * 1.1


def test_a_walking_fitting_wearer_told_to_stand_stands_from_the_next_segment():
    strides = plan_directly(Wearer("fitting", 1.25, MASS_KG, seed=2), 60.0, [(5.0, 1.0), (25.0, 0.0)])
    walking = [s for s in strides if s.walking]
    assert walking and all(s.speed_m_s == pytest.approx(1.0) for s in walking)
    assert walking[0].t_heel_strike_s < 5.0 + SEGMENT_S[1] + initiation_s(1.0)
    assert walking[-1].t_heel_strike_s < 25.0 <= walking[-1].t_end_s
    stop = strides.index(walking[-1]) + 1
    assert strides[stop].t_heel_strike_s == pytest.approx(walking[-1].t_end_s)
    assert not any(s.walking for s in strides[stop:]) and strides[-1].t_end_s >= 60.0


def test_follow_again_after_a_stand_command_walks_the_scenario():
    strides = plan_directly(Wearer("steady", 1.25, MASS_KG, seed=5), 45.0, [(8.0, 0.0), (20.0, None)])
    stop = next(i for i, s in enumerate(strides) if not s.walking)
    resume = next(i for i in range(stop, len(strides)) if strides[i].walking)
    assert 20.0 < strides[resume].t_heel_strike_s <= 20.0 + SEGMENT_S[1] + initiation_s(1.25)
    assert strides[resume - 1].stance_fraction < 1.0                 # through gait initiation
    assert all(s.walking and s.speed_m_s == pytest.approx(1.25) for s in strides[resume:])


@pytest.mark.parametrize("told, walks_at", [(5.0, MAX_SPEED_M_S), (0.1, MIN_SPEED_M_S), (1e300, MAX_SPEED_M_S)])
def test_a_walking_speed_outside_the_model_is_clamped(told, walks_at):
    wearer = Wearer("fitting", 1.25, MASS_KG, seed=0)
    wearer.command(told)
    assert wearer.commanded_speed_m_s == walks_at
    walking = [s for s in plan_directly(wearer, 30.0) if s.walking]
    assert walking and all(s.speed_m_s == pytest.approx(walks_at) for s in walking)


@pytest.mark.parametrize("bad", [-0.5, math.nan, math.inf, -math.inf, "fast"])
def test_a_negative_or_non_finite_speed_is_refused_and_changes_nothing(bad):
    wearer = Wearer("fitting", 1.25, MASS_KG, seed=0)
    wearer.command(1.0)
    with pytest.raises(ValueError):
        wearer.command(bad)
    assert wearer.commanded_speed_m_s == 1.0


@pytest.mark.parametrize("scenario", ["steady", "stop-start", "fitting"])
def test_no_command_no_change(scenario):
    """Following the scenario (command None, as often as you like) is the wearer never told anything:
    the same strides and the same profiles, bit for bit."""
    def run(told: bool):
        wearer = Wearer(scenario, 1.25, MASS_KG, seed=11)
        profiles, t = [], 0.0
        while t < 40.0:
            if told:
                wearer.command(None)
            profiles.append(wearer.next_stride(t)[0].copy())
            t = wearer.strides[-1].t_end_s
        return wearer.strides, profiles
    (a, pa), (b, pb) = run(False), run(True)
    assert a == b and len(pa) == len(pb)
    assert all(np.array_equal(x, y) for x, y in zip(pa, pb))


def test_on_the_plant_the_commanded_initiation_swings_into_an_ordinary_heel_strike():
    """Driven into the real plant as the devices drive it: quiet standing, then unloading, a swing
    with the foot off the ground, and a heel strike like any walking stride's."""
    plant = build_plant(dict(seed=4, mass_kg=MASS_KG))
    wearer = Wearer("fitting", 1.25, MASS_KG, seed=4)
    t_command_s = 9.0
    plant.queue_stride(*wearer.next_stride(0.0))
    plant.start(0.0)
    n = 30_000
    out = np.zeros((n, len(harness.TRUTH_COLUMNS) + 1))
    buf = bytearray(8)
    for k in range(n):
        now = k * 1e-3
        if now >= t_command_s and wearer.commanded_speed_m_s is None:     # as sim.realtime takes it
            wearer.command(1.25)
            again = wearer.replan_last() if plant.next_queued else None
            if again is not None:
                plant.queue_stride(*again)
        plant.advance(now)
        if not plant.next_queued:                       # sim.devices.SimAnkle._plan_next
            present = wearer.strides[-1]
            if not present.walking or now >= present.t_toe_off_s:
                plant.queue_stride(*wearer.next_stride(present.t_end_s))
        plant.truth(out[k, :-1])
        out[k, -1] = decode_load(bytes(buf[:plant.load_payload(buf)]))["load_N"]
    strides = wearer.strides
    first = first_walking_after(strides, 0.0)
    initiation, hs = strides[first - 1], strides[first]
    t, load = out[:, G["t"]], out[:, -1]
    assert t_command_s < hs.t_heel_strike_s <= t_command_s + SEGMENT_S[1] + initiation_s(1.25)
    before = (t > 1.0) & (t < initiation.t_toe_off_s - UNLOAD_S)
    assert load[before].min() > 0.2 * BW_N and np.all(out[before, G["walking_true"]] == 0.0)
    swing = (t > initiation.t_toe_off_s + 0.005) & (t < hs.t_heel_strike_s - 0.002)
    assert swing.sum() > 300 and np.abs(load[swing]).max() < 0.03 * BW_N
    walking = t > hs.t_heel_strike_s + 0.002
    assert np.all(out[walking, G["walking_true"]] == 1.0) and np.all(out[walking, G["phase_true"]] >= 0.0)
    # the first heel strike's load is that of the next walking stride's
    after = (t >= hs.t_heel_strike_s + 0.02) & (t < hs.t_heel_strike_s + 0.1)
    later = (t >= strides[first + 1].t_heel_strike_s + 0.02) & (t < strides[first + 1].t_heel_strike_s + 0.1)
    m = min(after.sum(), later.sum())
    assert np.abs(load[after][:m] - load[later][:m]).max() < 0.1 * BW_N


# --------------------------------------------------------------------------- the console's `wearer`
from sim.wearer_console import USAGE, wearer_command  # noqa: E402


class RecordingDevices:
    """A stand-in for sim.realtime.DeviceProcess that records what it was told (the real one is
    exercised end to end below); ``fail`` makes it refuse, as devices that have ended do."""

    def __init__(self, fail: Optional[Exception] = None):
        self.calls: List[Optional[float]] = []
        self.fail = fail

    def command_wearer(self, speed_m_s: Optional[float]) -> None:
        if self.fail is not None:
            raise self.fail
        self.calls.append(speed_m_s)


def console_wearer(devices, speed_m_s: float = 1.25, scenario: Optional[str] = "fitting"):
    entry = wearer_command(devices, speed_m_s, scenario)
    assert set(entry) == {"wearer"} and entry["wearer"][1] == "wearer [walk|stand|follow]"
    return entry["wearer"][0]


@pytest.mark.parametrize("words, sent", [
    (["walk"], 1.1),
    (["WALK"], 1.1),
    (["walk", "0.8"], 0.8),
    (["Walk", "0.8", "M/S"], 0.8),
    (["walk", "0.8m/s"], 0.8),
    (["walk", ".45"], 0.45),
    (["walk", "2.15", "m/s"], 2.15),
    (["stand"], 0.0),
    (["STAND"], 0.0),
    (["follow"], None),
])
def test_wearer_words_that_tell_it_something(words, sent):
    devices = RecordingDevices()
    handler = console_wearer(devices, 1.1)
    reply = handler(words)
    assert devices.calls == [sent] and "\n" not in reply
    if sent is None:
        assert reply.startswith("told to follow the scenario fitting again")
    elif sent == 0.0:
        assert reply.startswith("told to stand: ") and "next heel strike" in reply
        assert handler([]).startswith("the wearer was told to stand")
    else:
        assert reply.startswith(f"told to walk at {sent:.2f} m/s: ")
        assert "within about 5 s (at the end of the current standing sway)" in reply
        assert handler([]).startswith(f"the wearer was told to walk at {sent:.2f} m/s")


@pytest.mark.parametrize("words, says", [
    (["walk", "3"], "refused: 3 m/s is outside the walking speeds 0.30 .. 2.15 m/s; nothing changed"),
    (["walk", "0.29"], "outside the walking speeds"),
    (["walk", "2.16", "m/s"], "outside the walking speeds"),
    (["walk", "0"], "'wearer stand' to stand; nothing changed"),
    (["walk", "80", "cm/s"], "speeds are in m/s"),
    (["walk", "0.8", "km/h"], "speeds are in m/s"),
    (["walk", "nan"], "is not a speed"),
    (["walk", "inf"], "is not a speed"),
    (["walk", "1e3"], "is not a speed"),
    (["walk", "-1"], "is not a speed"),
    (["walk", "1_0"], "is not a speed"),
    (["walk", "0,8"], "is not a speed"),
    (["walk", "1", "m/s", "please"], "usage: "),
    (["stand", "still"], "usage: "),
    (["follow", "me"], "usage: "),
    (["run"], "usage: "),
    (["m/s"], f"usage: {USAGE}"),
])
def test_wearer_bad_words_get_one_line_and_change_nothing(words, says):
    devices = RecordingDevices()
    handler = console_wearer(devices)
    before = handler([])
    reply = handler(words)
    assert says in reply and "\n" not in reply and "\r" not in reply
    assert devices.calls == [] and handler([]) == before


def test_wearer_alone_says_what_it_was_last_told():
    devices = RecordingDevices()
    handler = console_wearer(devices, scenario="stop-start")
    assert handler([]) == "the wearer follows the scenario stop-start: walk 15 s, stand 8 s, repeating"
    handler(["walk", "1.5"])
    assert handler([]).startswith("the wearer was told to walk at 1.50 m/s")
    handler(["stand"])
    assert handler([]).startswith("the wearer was told to stand")
    handler(["follow"])
    assert handler([]).startswith("the wearer follows the scenario stop-start")
    assert devices.calls == [1.5, 0.0, None]


def test_wearer_devices_that_have_ended_get_one_line_and_the_state_stays():
    from controller.runtime.process import RuntimeFailure
    handler = console_wearer(RecordingDevices(RuntimeFailure("the simulated devices are not running:\nended")))
    reply = handler(["walk"])
    assert reply.startswith("the simulated wearer did not get it (the simulated devices are not running: ended)")
    assert "\n" not in reply and handler([]).startswith("the wearer follows")


_WORD = st.one_of(st.sampled_from(["walk", "WALK", "stand", "follow", "m/s", "M/S", "cm/s", "0.8", "1.25",
                                   "3", "0", "-1", "nan", "1e9", "0.45", "2.15", ""]),
                  st.text(max_size=12))


@settings(max_examples=400, deadline=None)
@given(words=st.lists(_WORD, max_size=5))
def test_wearer_any_words_one_line_never_raises_and_sends_only_what_is_valid(words):
    devices = RecordingDevices()
    reply = console_wearer(devices, 1.25)(words)
    assert isinstance(reply, str) and reply and "\n" not in reply and "\r" not in reply
    low = [w.lower() for w in words]
    if not devices.calls:
        return
    (sent,) = devices.calls
    assert low[0] in ("walk", "stand", "follow") and not reply.startswith("usage")
    if low[0] == "stand":
        assert low == ["stand"] and sent == 0.0
    elif low[0] == "follow":
        assert low == ["follow"] and sent is None
    else:
        assert len(low) <= 3 and MIN_SPEED_M_S <= sent <= MAX_SPEED_M_S
        assert sent == (1.25 if len(low) == 1 else float(low[1].replace("m/s", "")))


def test_the_devices_process_checks_a_wearer_command_before_sending_it():
    from controller.runtime.process import RuntimeFailure
    from sim.realtime import DeviceProcess, DeviceSpec
    devices = DeviceProcess(DeviceSpec(scenario="fitting"))
    for bad in (-1.0, math.nan, math.inf):
        with pytest.raises(ValueError):
            devices.command_wearer(bad)
    with pytest.raises(RuntimeFailure, match="not running"):       # not started: nothing to tell
        devices.command_wearer(1.25)
    reply = console_wearer(devices)(["walk"])
    assert reply.startswith("the simulated wearer did not get it (the simulated devices are not running")


# --------------------------------------------------------------------------- the command line
def _ankle(*args):
    import subprocess
    import sys
    from conftest import ROOT
    return subprocess.run([sys.executable, "-m", "controller.cli", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)


@pytest.mark.parametrize("args, also", [(("sim", "--scenario", "fitting"), ""),
                                        (("sim", "--realtime", "--scenario", "fitting"), ""),
                                        (("sim", "--serve", "--scenario", "fitting"), " (--serve has no console)")])
def test_fitting_without_a_console_is_refused_in_one_line(args, also):
    proc = _ankle(*args)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr == ("ankle sim: error: scenario fitting waits for the console's `wearer walk`: use it "
                           f"with --console{also}\n")


# --------------------------------------------------------------------------- end to end, real time
PIN = "2468"
_WALKING = re.compile(r"(^|\n)walking; cadence")
_STANDING = re.compile(r"(^|\n)(standing|not walking); cadence")


@pytest.mark.realtime
def test_the_console_tells_the_simulated_wearer_to_walk_and_to_stand(tmp_path):
    """`ankle sim --console --scenario fitting`: it stands; `wearer walk` walks it, `wearer stand`
    stops it (the console -> the supervisor -> the devices' process -> the wearer)."""
    def wait_for(pattern, within_s: float, what: str) -> float:
        start = time.monotonic()
        while not pattern.search(out := term.cmd("status")):
            assert time.monotonic() - start < within_s, f"not {what} within {within_s:g} s: {out}"
            time.sleep(0.25)
        return time.monotonic() - start

    with sim_console(tmp_path, PIN, "--scenario", "fitting", "--duration", "90") as (term, proc):
        assert term.cmd("wearer").startswith("the wearer follows the scenario fitting: stand until told")
        end = time.monotonic() + 6.0
        while time.monotonic() < end:                       # the fitting wearer stands, untold
            out = term.cmd("status")
            assert not _WALKING.search(out), out
            time.sleep(0.25)
        assert _STANDING.search(term.cmd("status"))
        # no PIN needed: the session is read-only and the wearer still listens
        assert term.cmd("wearer walk").startswith("told to walk at 1.25 m/s")
        walked_s = wait_for(_WALKING, 15.0, "walking")
        assert term.cmd("wearer").startswith("the wearer was told to walk at 1.25 m/s")
        assert term.cmd("wearer walk 5 m/s").startswith("refused: 5 m/s is outside")
        assert term.cmd("wearer stand").startswith("told to stand")
        stood_s = wait_for(_STANDING, 15.0, "standing")
        print(f"walking after {walked_s:.1f} s, standing after {stood_s:.1f} s")
    assert not (tmp_path / "audit.log").exists() or "wearer" not in (tmp_path / "audit.log").read_text()
