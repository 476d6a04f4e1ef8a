"""The asymmetric wearer and the sound side of the simulator (issue 7): the model's formulae, the
strides' sound-side truth, the piecewise load warp, the sound-side node's frames, and a lock-step
run in which the wearer's symmetry follows the push-off the controller delivers."""
import math
import pickle
import uuid

import numpy as np
import pytest

from hal._sensor_frames import SOUND_ID, decode_sound
from hal.bus import BusConfig, open_bus
from sim import harness, reference
from sim.asymmetry import (Adaptation, AsymmetryModel, REF_STANCE_EVENTS, lag_update, load_warp_phase,
                           si_from_work, sound_events, stance_times, step_si, stride_timing, symmetry_index)
from sim.devices import SOUND_PERIOD_S, SimAnkle
from sim.plant import SOUND_TRUTH_LENGTH, TRUTH_LENGTH, build_plant
from sim.wearer import ALL_CHANNELS, STANDARD_GRAVITY, Wearer

MASS_KG = 80.0
BW_N = MASS_KG * STANDARD_GRAVITY
G = {c: i for i, c in enumerate(harness.TRUTH_COLUMNS)}
LOAD, SOUND_LOAD = ALL_CHANNELS.index("load_N"), ALL_CHANNELS.index("sound_load_N")


def reference_crossing(level_bw, lo, hi, speed_m_s=None, shape=None):
    """Reference phase in [lo, hi] where the reference ground reaction (Winter's; with a speed and a
    stride's shape, that stride's: sim.reference.grf_bw_at) crosses ``level_bw``."""
    x = np.linspace(lo, hi, 20001)
    y = reference.grf_bw_at(x, speed_m_s, shape) - level_bw
    i = np.flatnonzero(np.diff(np.sign(y)) != 0)[0]
    return x[i] - y[i] * (x[i + 1] - x[i]) / (y[i + 1] - y[i])


def crossing_time(t, y, level, t_from, t_to, rising):
    """First time in [t_from, t_to] at which ``y`` crosses ``level`` (rising or falling), interpolated."""
    sel = np.flatnonzero((t >= t_from) & (t <= t_to))
    above = y[sel] > level
    edges = np.flatnonzero(~above[:-1] & above[1:]) if rising else np.flatnonzero(above[:-1] & ~above[1:])
    i = sel[edges[0]]
    return t[i] + (level - y[i]) * (t[i + 1] - t[i]) / (y[i + 1] - y[i])


# --- the model's formulae --------------------------------------------------------------------------

def test_si_from_work_is_linear_and_clamped():
    m = AsymmetryModel()
    assert m.si_pct(0.0) == -10.0                                 # a passive foot
    assert m.si_pct(0.25) == 0.0                                  # enough work: symmetric
    assert m.si_pct(0.18) == pytest.approx(-2.8)                  # the default work target at 1.25 m/s
    assert m.si_pct(0.5) == pytest.approx(10.0)                   # too much: the prosthetic stance is longer
    assert m.si_pct(1.0) == 15.0 and m.si_pct(-1.0) == -15.0      # clamped
    assert si_from_work(0.1, -8.0, 0.2, 15.0) == pytest.approx(-4.0)


def test_work_is_followed_with_a_first_order_lag():
    assert lag_update(0.0, 0.2, 5.0) == pytest.approx(0.04)
    state = Adaptation(AsymmetryModel(si_noise_pct=0.0), seed=0)
    assert state.w_eff_J_kg == 0.0 and state.next_si_pct() == -10.0
    for n in range(1, 21):
        state.observe(0.2)
        assert state.w_eff_J_kg == pytest.approx(0.2 * (1.0 - 0.8 ** n))
    state.observe(float("nan"))                                   # ignored
    assert state.w_eff_J_kg == pytest.approx(0.2 * (1.0 - 0.8 ** 20))
    assert Adaptation(AsymmetryModel(initial_work_J_kg=0.25, si_noise_pct=0.0)).next_si_pct() == 0.0


def test_the_noise_is_seeded_and_of_the_stated_size():
    a, b, c = (Adaptation(AsymmetryModel(), seed) for seed in (3, 3, 4))
    draws = [a.next_si_pct() for _ in range(4000)]
    assert draws[:50] == [b.next_si_pct() for _ in range(50)]
    assert draws[:50] != [c.next_si_pct() for _ in range(50)]
    assert np.mean(draws) == pytest.approx(-10.0, abs=0.05)
    assert np.std(draws) == pytest.approx(0.5, rel=0.05)


@pytest.mark.parametrize("bad", [dict(work_symmetric_J_kg=0.0), dict(adapt_strides=0.5), dict(si_noise_pct=-1.0),
                                 dict(si_max_pct=60.0), dict(si_passive_pct=float("nan"))])
def test_implausible_parameters_are_refused(bad):
    with pytest.raises(ValueError):
        AsymmetryModel(**bad)


@pytest.mark.parametrize("si", [-15.0, -10.0, -2.5, 0.0, 4.0, 15.0])
@pytest.mark.parametrize("T, sf", [(1.09, 0.631), (0.87, 0.594), (1.4, 0.655)])
def test_stance_and_event_identities(si, T, sf):
    P, S = stance_times(si, T, sf)
    assert P + S == pytest.approx(2 * sf * T)                     # the able-bodied sum
    assert symmetry_index(P, S) == pytest.approx(si)
    t_sto, t_shs = sound_events(P, S, T)
    assert 0.0 < t_sto < t_shs < P < T
    assert P - t_shs == pytest.approx(t_sto)                      # two equal double supports ...
    assert T - t_shs + t_sto == pytest.approx(S)                  # ... around the sound stance
    assert step_si(T, t_shs) == pytest.approx(-2.0 * sf * si)
    timing = stride_timing(T, sf, si)
    assert (timing.prosthetic_stance_s, timing.sound_stance_s) == pytest.approx((P, S))
    assert timing.sound_toe_off_s == timing.double_support_s == pytest.approx(t_sto)
    assert timing.stance_share == pytest.approx(P / T)
    assert timing.si_step_pct == pytest.approx(symmetry_index(T - t_shs, t_shs))
    if si == 0.0:
        assert t_shs == pytest.approx(T / 2) and t_sto == pytest.approx(sf * T - T / 2)
        assert timing.si_step_pct == 0.0


def test_the_sound_toe_off_ends_the_previous_strides_sound_stance():
    first = stride_timing(1.10, 0.63, -8.0)
    second = stride_timing(1.05, 0.63, -6.0, previous=first)
    assert second.sound_toe_off_s == first.double_support_s
    # the previous stride's sound stance, by the events, lasts exactly its S
    assert first.stride_s - first.sound_heel_strike_s + second.sound_toe_off_s == pytest.approx(first.sound_stance_s)
    assert second.previous_sound_stance_s == first.sound_stance_s


# --- the wearer's strides and profiles -------------------------------------------------------------

def walk(wearer, n):
    t, out = 0.0, []
    for _ in range(n):
        profile, T, sf, walking = wearer.next_stride(t)
        out.append(profile)
        t = wearer.strides[-1].t_end_s
    return out


def test_a_symmetric_wearer_has_sound_truth_and_si_zero():
    wearer = Wearer("steady", 1.25, MASS_KG, seed=2)
    walk(wearer, 12)
    sf = reference.stance_fraction(1.25)
    for s in wearer.strides:
        assert s.si_stance_pct == 0.0 and s.si_step_pct == 0.0
        assert s.stance_fraction == sf
        assert s.sound_heel_strike_s - s.t_heel_strike_s == pytest.approx(s.stride_s / 2)
        assert s.sound_stance_s == pytest.approx(sf * s.stride_s)
        assert math.isnan(s.work_effective_J_kg) and math.isnan(s.work_received_J_kg)


def test_an_asymmetric_wearers_events_give_its_truth_exactly():
    wearer = Wearer("steady", 1.25, MASS_KG, seed=5, asymmetry=AsymmetryModel())
    walk(wearer, 15)
    strides = wearer.strides
    for s, nxt in zip(strides, strides[1:]):
        P = s.t_toe_off_s - s.t_heel_strike_s
        S = nxt.sound_toe_off_s - s.sound_heel_strike_s
        assert S == pytest.approx(s.sound_stance_s, abs=1e-9)
        assert symmetry_index(P, S) == pytest.approx(s.si_stance_pct, abs=1e-6)
        sound_step = s.sound_heel_strike_s - s.t_heel_strike_s
        assert symmetry_index(s.t_end_s - s.sound_heel_strike_s, sound_step) == pytest.approx(s.si_step_pct)
        # the double supports around the sound stance are equal
        assert s.t_toe_off_s - s.sound_heel_strike_s == pytest.approx(nxt.sound_toe_off_s - nxt.t_heel_strike_s)
    si = [s.si_stance_pct for s in strides]
    assert np.mean(si) == pytest.approx(-10.0, abs=0.5)          # nobody told it of any push-off
    # the model has its own random stream: the stride times are the symmetric wearer's
    symmetric = Wearer("steady", 1.25, MASS_KG, seed=5)
    walk(symmetric, 15)
    assert [s.stride_s for s in strides] == [s.stride_s for s in symmetric.strides]


def test_the_wearer_adapts_to_the_work_it_is_told():
    wearer = Wearer("steady", 1.25, MASS_KG, seed=1, asymmetry=AsymmetryModel(si_noise_pct=0.0))
    t = 0.0
    for k in range(30):
        wearer.next_stride(t)
        t = wearer.strides[-1].t_end_s
        wearer.record_stance_work(0.25)
    s = wearer.strides
    assert s[0].si_stance_pct == -10.0
    assert s[1].work_received_J_kg == 0.25 and s[1].work_effective_J_kg == pytest.approx(0.05)
    assert s[1].si_stance_pct == pytest.approx(-8.0)
    assert abs(s[-1].si_stance_pct) < 0.02


@pytest.mark.parametrize("si", [-10.0, 8.0])
def test_the_prosthetic_load_has_its_double_support_at_the_sound_events(si):
    wearer = Wearer("steady", 1.25, MASS_KG, seed=0, asymmetry=AsymmetryModel(si_passive_pct=si, si_noise_pct=0.0))
    profiles = walk(wearer, 3)
    s, load = wearer.strides[1], profiles[1][LOAD]               # the second: its toe-off from the first
    t = np.linspace(0.0, s.stride_s, load.size)
    t_sto = s.sound_toe_off_s - s.t_heel_strike_s
    t_shs = s.sound_heel_strike_s - s.t_heel_strike_s
    P = s.t_toe_off_s - s.t_heel_strike_s
    r_rise = reference_crossing(0.6, 0.0, REF_STANCE_EVENTS[1], s.speed_m_s, s.shape)
    r_fall = reference_crossing(0.6, REF_STANCE_EVENTS[2], REF_STANCE_EVENTS[3], s.speed_m_s, s.shape)
    rise = crossing_time(t, load, 0.6 * BW_N, 0.0, t_sto, rising=True)
    fall = crossing_time(t, load, 0.6 * BW_N, t_shs, P, rising=False)
    assert rise == pytest.approx(r_rise / REF_STANCE_EVENTS[1] * t_sto, abs=2e-4)
    assert fall == pytest.approx(t_shs + (r_fall - 0.5) / 0.109 * (P - t_shs), abs=2e-4)
    # the plain stance warp would have put the falling edge elsewhere by far more
    plain = r_fall * s.stance_fraction / REF_STANCE_EVENTS[3] * s.stride_s
    assert abs(plain - fall) > 0.005
    # and the knots themselves
    assert np.interp(t_shs / s.stride_s, np.linspace(0, 1, load.size), load_warp_phase(
        np.linspace(0, 1, load.size), t_sto / s.stride_s, t_shs / s.stride_s, P / s.stride_s)) == pytest.approx(0.5, abs=1e-3)


def test_standing_shares_the_weight_and_walking_resumes_with_consistent_sound_events():
    wearer = Wearer("stop-start", 1.25, MASS_KG, seed=1, asymmetry=AsymmetryModel())
    profiles, t = [], 0.0
    while t < 50.0:
        profiles.append(wearer.next_stride(t)[0])
        t = wearer.strides[-1].t_end_s
    strides = wearer.strides
    assert any(not s.walking for s in strides)
    for p, s in zip(profiles, strides):
        if not s.walking:
            assert np.allclose(p[LOAD] + p[SOUND_LOAD], BW_N)
            assert math.isnan(s.sound_heel_strike_s) and math.isnan(s.si_stance_pct)
        else:
            assert p[SOUND_LOAD].min() == 0.0                     # a sound swing in every stride
    for a, b in zip(profiles, profiles[1:]):                       # the sound side joins without jumps
        assert abs(b[SOUND_LOAD, 0] - a[SOUND_LOAD, -1]) < 0.02 * BW_N
        assert abs(b[-1, 0] - a[-1, -1]) < 0.5
    for s, nxt in zip(strides, strides[1:]):
        if s.walking and nxt.walking:
            assert nxt.sound_toe_off_s - s.sound_heel_strike_s == pytest.approx(s.sound_stance_s)


# --- the sound-side node on the bus ----------------------------------------------------------------

def drive(duration_s, asymmetry=None, sound_node=True):
    """SimAnkle alone on a virtual bus at 1 kHz (no controller): every frame it sends, the truth."""
    config = BusConfig(interface="virtual", channel=f"sim-asym-{uuid.uuid4().hex[:8]}")
    host, sim_bus = open_bus(config), open_bus(config)
    try:
        plant = build_plant({"mass_kg": MASS_KG, "seed": 3})
        wearer = Wearer("steady", 1.25, MASS_KG, seed=3, asymmetry=asymmetry)
        sim = SimAnkle(sim_bus, plant, wearer, sound_node=sound_node)
        sim.begin_walking(0.0)
        n = int(round(duration_s * 1000))
        truth = np.zeros((n, len(harness.TRUTH_COLUMNS)))
        sound = []                                                  # (tick, decoded)
        for k in range(n):
            sim.step_to(k * 1e-3)
            plant.truth(truth[k])
            while (msg := host.recv(0.0)) is not None:
                if msg.arbitration_id == SOUND_ID:
                    sound.append((k, decode_sound(bytes(msg.data))))
        return truth, sound, wearer.strides
    finally:
        host.shutdown()
        sim_bus.shutdown()


@pytest.fixture(scope="module")
def node():
    return drive(16.0, asymmetry=AsymmetryModel())


def test_sound_frames_come_every_2_ms_with_a_running_sequence(node):
    _, sound, _ = node
    ticks = np.array([k for k, _ in sound])
    assert ticks[0] == 0 and np.all(np.diff(ticks) == round(SOUND_PERIOD_S * 1000))
    seq = np.array([f["seq"] for _, f in sound])
    assert np.all(np.diff(seq) % 256 == 1) and all(f["status"] == 0 for _, f in sound)


def test_sound_frames_decode_to_the_truth(node):
    truth, sound, strides = node
    ticks = np.array([k for k, _ in sound])
    load = np.array([f["load_N"] for _, f in sound])
    gyro = np.array([f["gyro_z_rad_s"] for _, f in sound])
    true = truth[ticks, G["sound_load_true_N"]]
    assert np.all(np.abs(load - true) < 6 * 5.0 + 0.5)             # 5 N noise, 0.5 N resolution
    assert np.std(load - true) == pytest.approx(5.0, rel=0.15)
    t = ticks * 1e-3
    walking = [s for s in strides if s.walking and s.t_end_s <= t[-1]]
    for s, nxt in zip(walking, walking[1:]):
        hs, to = s.sound_heel_strike_s, nxt.sound_toe_off_s
        # the sound foot loaded from its heel strike to its toe-off, give or take a frame (the
        # reference reaction is under 30 N in its last few milliseconds), and nowhere else
        assert np.all(load[(t >= hs + 0.002) & (t <= to - 0.015)] > 30.0)
        assert np.all(load[(t > to + 0.002) & (t < nxt.sound_heel_strike_s - 0.002)] < 30.0)
        # the sound shank swings forward in its swing, rolls back in its stance
        assert gyro[(t > to) & (t < nxt.sound_heel_strike_s)].max() > 3.0
        assert np.all(gyro[(t > hs + 0.05) & (t < to - 0.05)] < 0.0)


def test_the_truth_marks_the_sound_contact_at_the_strides_sound_events(node):
    truth, _, strides = node
    t, contact = truth[:, G["t"]], truth[:, G["sound_contact_true"]]
    on = t[1:][np.diff(contact) > 0]
    off = t[1:][np.diff(contact) < 0]
    walking = [s for s in strides if s.walking]
    hs = np.array([s.sound_heel_strike_s for s in walking if s.sound_heel_strike_s < t[-1] - 0.003])
    to = np.array([s.sound_toe_off_s for s in walking if s.sound_toe_off_s < t[-1] - 0.003])
    # to one profile sample (stride/1000) and one tick, and no other transition
    assert len(on) == len(hs) and len(off) == len(to)
    assert np.all(np.abs(on - hs) < 0.0025) and np.all(np.abs(off - to) < 0.0025)
    # with no sound node, no SOUND_SIDE frame, and the same truth
    truth2, sound2, _ = drive(2.0, asymmetry=AsymmetryModel(), sound_node=False)
    assert sound2 == []
    assert np.array_equal(truth2, truth[:len(truth2)])


# --- the whole stack in lock-step ------------------------------------------------------------------

@pytest.fixture(scope="module")
def asym_run():
    return harness.run(speed_m_s=1.25, duration_s=40.0, seed=1, asymmetry=AsymmetryModel(), sound_node=True)


def test_the_wearer_becomes_more_symmetric_with_push_off(asym_run):
    model = AsymmetryModel()
    strides = [s for s in asym_run.strides if s.t_end_s <= asym_run.sim_seconds]
    assert len(strides) >= 30
    si = np.array([s.si_stance_pct for s in strides])
    for s in strides[:2]:                                         # a passive foot's asymmetry at first
        assert model.si_pct(s.work_effective_J_kg) == pytest.approx(-10.0, abs=1.5)
        assert s.si_stance_pct == pytest.approx(model.si_pct(s.work_effective_J_kg), abs=4 * model.si_noise_pct)
    work = np.array([s.work_received_J_kg for s in strides])
    delivered = float(np.mean(work[-15:]))                        # the controller's steady push-off
    assert 0.12 < delivered < 0.25
    assert np.mean(si[-10:]) == pytest.approx(model.si_pct(delivered), abs=1.0)
    assert np.mean(si[-10:]) > np.mean(si[:3]) + 4.0
    steps = np.array([s.si_step_pct for s in strides])
    assert np.all(np.sign(steps) == -np.sign(si))


def test_the_wearer_is_told_the_true_stance_work(asym_run):
    truth = asym_run.truth
    t = truth[:, G["t"]]
    power = -truth[:, G["torque_true_Nm"]] * np.gradient(truth[:, G["ankle_angle_true"]], t)
    strides = [s for s in asym_run.strides if s.t_end_s <= asym_run.sim_seconds]
    for s, nxt in zip(strides, strides[1:]):
        sel = (t >= s.t_heel_strike_s) & (t < s.t_toe_off_s)
        work = np.trapezoid(power[sel], t[sel]) / MASS_KG
        assert nxt.work_received_J_kg == pytest.approx(work, abs=0.01)


def test_the_prosthetic_load_follows_the_sound_events_in_the_run(asym_run):
    from controller.runtime.loop import TELEMETRY_COLUMNS
    load = asym_run.telemetry[:, TELEMETRY_COLUMNS.index("load")]
    t = asym_run.truth[:, G["t"]]
    strides = [s for s in asym_run.strides if s.t_end_s <= asym_run.sim_seconds]
    for s in strides[1:]:
        r_rise = reference_crossing(0.6, 0.0, REF_STANCE_EVENTS[1], s.speed_m_s, s.shape)
        t_sto = s.sound_toe_off_s - s.t_heel_strike_s
        rise = crossing_time(t, load, 0.6 * BW_N, s.t_heel_strike_s, s.sound_toe_off_s + 0.01, rising=True)
        assert rise - s.t_heel_strike_s == pytest.approx(r_rise / REF_STANCE_EVENTS[1] * t_sto, abs=0.003)
    # the sound foot: loaded from its heel strike to its toe-off; both feet at once only in the
    # double supports
    sound = asym_run.truth[:, G["sound_contact_true"]] > 0
    prosthetic = asym_run.truth[:, G["stance_true"]] > 0
    both = sound & prosthetic & (t > strides[1].t_heel_strike_s) & (t < strides[-1].t_end_s)
    ds = sum(2 * (s.t_toe_off_s - s.sound_heel_strike_s) for s in strides[1:-1])
    assert np.sum(both) * 1e-3 == pytest.approx(ds, rel=0.05)


def test_a_default_run_is_symmetric_and_sends_no_sound_frames():
    # the frames on the bus: none from the sound-side node without one (its frames are sent from
    # Cython, sim._plant.DeviceIO, so they are counted where the host receives them)
    _, sound, _ = drive(2.0, sound_node=False)
    assert sound == []
    run = harness.run(duration_s=6.0, seed=2)
    from controller.runtime.loop import TELEMETRY_COLUMNS
    assert np.all(np.isnan(run.telemetry[:, TELEMETRY_COLUMNS.index("sound_load")]))
    walking = [s for s in run.strides if s.walking]
    assert all(s.si_stance_pct == 0.0 and s.si_step_pct == 0.0 for s in walking)
    assert all(np.isfinite(s.sound_heel_strike_s) and np.isfinite(s.sound_toe_off_s) for s in walking)
    contact = run.truth[:, G["sound_contact_true"]]
    assert 0.5 < contact.mean() < 0.75                              # a sound stance share, though unsensed


def test_the_real_time_devices_take_the_wearer_and_the_node():
    from sim.realtime import DeviceSpec, _build
    spec = DeviceSpec(asymmetry=AsymmetryModel(si_passive_pct=-6.0), sound_node=True)
    assert pickle.loads(pickle.dumps(spec)) == spec                # it crosses into the devices' process
    bus = open_bus(BusConfig(interface="virtual", channel=f"sim-asym-{uuid.uuid4().hex[:8]}"))
    try:
        _, wearer, sim = _build(spec, bus)
        assert sim.sound_node and wearer.asymmetry == spec.asymmetry
    finally:
        bus.shutdown()


def test_truth_rows_hold_the_sound_columns_after_the_old_ones():
    assert harness.TRUTH_COLUMNS[:TRUTH_LENGTH][-1] == "case_temp_true_C"
    assert harness.TRUTH_COLUMNS[TRUTH_LENGTH:] == ("sound_load_true_N", "sound_contact_true")
    assert SOUND_TRUTH_LENGTH == 2
