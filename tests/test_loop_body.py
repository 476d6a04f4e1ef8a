"""One loop body (issue 15): the real-time loop and the lock-step simulator run the same tick.

``controller.runtime._rtloop.tick_once`` is the tick; ``run_loop`` (a cadence sleeps to real
deadlines) and ``LockStep`` (the simulator steps time) both call it.  Here both run, on the
in-process link, against the same simulated devices, given the same tick times: their
telemetry rows must be equal bit for bit but for the timing columns, which only the real-time
loop measures.  Then the lock-step simulator on its two buses (the in-process link and
python-can's virtual bus) must carry the same frames and give the same run for a seed.
Nothing asserts a duration.
"""
from __future__ import annotations

import re
import uuid
from pathlib import Path

import numpy as np
import pytest

from controller.kernels.telemetry import COLUMN
from controller.kernels._tick import TELEMETRY_COLUMNS
from controller.params.registry import ParamSet
from controller.runtime import _rt
from controller.runtime._rtloop import LockStep, run_loop, ticks_run
from controller.runtime.retune import ParamPublisher, lockstep_channel
from controller.runtime.loop import build_tick, telemetry_table
from controller.runtime.shm import STAT, SharedChannels
from hal import _mit
from hal._link import memory_link_pair
from hal.ak import mit_range
from hal.bus import BusConfig, open_bus
from sim import harness
from sim.devices import SimAnkle
from sim.faults import Injection
from sim.plant import TRUTH_LENGTH, build_plant
from sim.wearer import Wearer

ROOT = Path(__file__).resolve().parent.parent
COL = COLUMN
TIMING = [COL[c] for c in ("late_s", "read_s", "update_s", "write_s")]
UNTIMED = [i for i in range(len(TELEMETRY_COLUMNS)) if i not in TIMING]
DT_S = 1e-3
DRIVER_ID = 1


def _devices(link, seed=4):
    plant = build_plant({"seed": seed})
    sim = SimAnkle(link, plant, Wearer("steady", 1.25, 80.0, seed=seed))
    sim.begin_walking(0.0)
    return sim


def _tick():
    tick = build_tick(ParamSet(), mit_range("AK80-9"), DRIVER_ID, 0)
    tick.start(0.0)
    return tick


def test_real_time_and_lock_step_give_the_same_rows_for_the_same_tick_times():
    n = 600                             # the ring's size bounds it (1024 rows)
    # real time: run_loop on deadlines; the devices step between ticks (the console-request hook
    # runs after every tick while a request waits: one always does here), and stop it after n
    host, dev = memory_link_pair(1024)
    sim_rt, tick_rt = _devices(dev), _tick()
    shared = SharedChannels.create(capacity=1024)
    try:
        stats = shared.stats
        stats[STAT["req_seq"]] = 1
        done = [0]

        def between_ticks():
            done[0] += 1
            if done[0] == n:
                stats[STAT["stop"]] = 1
            else:
                sim_rt.step_to(done[0] * DT_S)

        sim_rt.step_to(0.0)
        t0_ns = _rt.now_ns() + 2_000_000
        before = ticks_run()
        run_loop(tick_rt, host, _rt.Cadence(1_000_000, t0_ns), shared.ring, shared.params,
                 stats, STAT["stop"], t0_ns, between_ticks, STAT["req_seq"], STAT["ack_seq"])
        assert ticks_run() - before == n
        rt_rows = np.empty((n + 1, shared.width))
        assert shared.ring.drain(rt_rows) == n
        rt_rows = rt_rows[:n]
    finally:
        shared.close()
        shared.unlink()
    # lock-step: the same devices and tick, told the tick times the real-time loop woke at
    host, dev = memory_link_pair(1024)
    sim_ls, tick_ls = _devices(dev), _tick()
    table = telemetry_table(n)
    lock = LockStep(tick_ls, host, table)
    before = ticks_run()
    for k in range(n):
        sim_ls.step_to(k * DT_S)
        lock.step(rt_rows[k, COL["t"]], k)
    assert ticks_run() - before == n

    # the run starts with the foot loaded: the estimator ran on the devices' frames and saw it
    # as standing (a first heel strike comes only after 1 s, beyond the ring's 1024 rows)
    assert np.nansum(table[:, COL["standing"]]) >= 100 and np.nanmax(table[:, COL["load"]]) > 200.0
    assert np.array_equal(rt_rows[:, UNTIMED], table[:, UNTIMED], equal_nan=True)
    assert np.all(np.isfinite(rt_rows[:, TIMING]))                 # real time times its phases
    assert np.all(np.isnan(table[:, TIMING]))                      # lock-step does not
    assert tick_rt.frames_sent == tick_ls.frames_sent == n
    truth_rt, truth_ls = np.zeros(TRUTH_LENGTH), np.zeros(TRUTH_LENGTH)
    sim_rt.plant.truth(truth_rt)
    sim_ls.plant.truth(truth_ls)
    assert np.array_equal(truth_rt, truth_ls)                      # the same commands moved both


def _blocks(source: str):
    """Top-level definitions of a .pyx file: name -> text."""
    heads = list(re.finditer(r"^(?:cdef class|cdef [\w\*]+|def) (\w+)", source, re.M))
    return {m.group(1): source[m.start():(heads[i + 1].start() if i + 1 < len(heads) else len(source))]
            for i, m in enumerate(heads)}


def test_the_kernel_phases_are_called_by_tick_once_alone_and_both_loops_call_it():
    blocks = _blocks((ROOT / "controller/runtime/_rtloop.pyx").read_text())
    phases = ("read_link(", "_update(", "write_link(", "publish_row(")
    for name, text in blocks.items():
        for phase in phases:
            assert (phase in text) == (name == "tick_once"), (name, phase)
    assert "tick_once(" in blocks["run_loop"] and "tick_once(" in blocks["LockStep"]
    # and the one parameter step: Tick.take_params, called once in each loop
    calls = {name: len(re.findall(r"^\s+(?:self\.)?tick\.take_params\(", blocks[name], re.M))
             for name in ("run_loop", "LockStep")}
    assert calls == {"run_loop": 1, "LockStep": 1}, calls
    # no second loop body anywhere else (the old Python loops)
    for path in list(ROOT.glob("controller/**/*.py")) + list(ROOT.glob("sim/**/*.py")) + \
            list(ROOT.glob("controller/**/*.pyx")) + list(ROOT.glob("sim/**/*.pyx")):
        if path.name in ("_tick.pyx", "_rtloop.pyx"):
            continue
        text = path.read_text()
        for phase in ("read_link(", "write_link(", "publish_row(", "HostLoop", ".ingest(", "note_frames(",
                      "command_payload("):
            assert phase not in text, (path, phase)


def test_lock_step_checks_its_table_and_rows():
    tick = _tick()
    host, _ = memory_link_pair(8)
    with pytest.raises(ValueError, match="wrong shape"):
        LockStep(tick, host, np.zeros((4, 3)))
    lock = LockStep(tick, host, telemetry_table(4))
    for row in (-1, 4):
        with pytest.raises(IndexError):
            lock.step(0.0, row)
    lock.step(0.0, 3)
    assert lock.telemetry[3, COL["t"]] == 0.0 and np.isnan(lock.telemetry[0, COL["t"]])


def test_lock_step_takes_a_published_change_by_the_same_step_as_run_loop():
    # not walking: every tick is a boundary, so a published change ramps in over three ticks,
    # one step each, and is then in force whole
    tick = _tick()
    channel = lockstep_channel(ParamSet())
    host, _ = memory_link_pair(8)
    lock = LockStep(tick, host, telemetry_table(8), channel)
    lock.step(0.0, 0)
    assert tick.params["pushoff.work_J_kg"] == ParamSet()["pushoff.work_J_kg"]   # nothing published
    start, target = ParamSet()["pushoff.work_J_kg"], 0.2
    generation = ParamPublisher(channel).publish(ParamSet({"pushoff.work_J_kg": target}))
    seen = []
    for k in range(1, 6):
        lock.step(k * DT_S, k)
        seen.append(tick.params["pushoff.work_J_kg"])
    steps = [start + (target - start) * i / 3 for i in (1, 2, 3)]
    assert seen[:3] == pytest.approx(steps) and seen[3:] == pytest.approx([target, target])
    assert ParamPublisher(channel).applied(generation)


# ------------------------------------------------------------------------ the two buses
def _record(link_or_bus, host_recv, host_send, faults, n=1500):
    """The simulated devices alone, with a scripted host: every frame they send, per step."""
    plant = build_plant({"seed": 5})
    sim = SimAnkle(link_or_bus, plant, Wearer("steady", 1.25, 80.0, seed=5), faults=faults)
    sim.begin_walking(0.0)
    host_send(_mit.ENTER_FRAME)
    frames = []
    for k in range(n):
        sim.step_to(k * DT_S)
        frames.append(host_recv())
        host_send(_mit.pack_command(mit_range("AK80-9"), 0.0, 0.0, 0.0, 0.2, 1.0 + (k % 7) * 0.1))
    return frames, sim


DEVICE_FAULTS = [Injection("stale_replies", 0.1, 0.05), Injection("imu_loss", 0.2, 0.03),
                 Injection("duplicate_frames", 0.3, 0.05), Injection("reorder_frames", 0.4, 0.05),
                 Injection("spoof_imu", 0.5, 0.05, value=3000.0), Injection("spoof_load", 0.55, 0.05, value=700.0),
                 Injection("comms_loss", 0.7, 0.05), Injection("node_status_flags", 0.8, 0.1, value=2),
                 Injection("supply_reading", 0.9, 0.1, value=10.0), Injection("encoder_stuck", 1.0, 0.1),
                 Injection("load_loss", 1.2, 0.02), Injection("driver_error", 1.3, 0.05, value=1)]


@pytest.mark.parametrize("faults", [(), DEVICE_FAULTS], ids=["plain", "device-faults"])
def test_the_devices_send_the_same_frames_byte_for_byte_on_both_buses(faults):
    import can
    host, dev = memory_link_pair(1 << 14)

    def mem_recv():
        out = []
        while (got := host.receive()) is not None:
            out.append(got)
        return out

    mem, sim_mem = _record(dev, mem_recv, lambda data: host.transmit(DRIVER_ID, data), faults)
    config = BusConfig(interface="virtual", channel=f"loop-body-{uuid.uuid4().hex[:8]}")
    pc_host, pc_dev = open_bus(config), open_bus(config)
    try:
        def pc_recv():
            out = []
            while (m := pc_host.recv(0.0)) is not None:
                out.append((m.arbitration_id, bytes(m.data), 1 if m.is_extended_id else 0))
            return out

        pc, sim_pc = _record(pc_dev, pc_recv, lambda data: pc_host.send(
            can.Message(arbitration_id=DRIVER_ID, data=data, is_extended_id=False)), faults)
    finally:
        pc_host.shutdown()
        pc_dev.shutdown()
    assert sum(map(len, mem)) > 3 * 1500        # reply, IMU, load every step; status every 20
    assert mem == pc
    assert (sim_mem.frames_in, sim_mem.frames_out, sim_mem.frames_lost) == \
        (sim_pc.frames_in, sim_pc.frames_out, sim_pc.frames_lost)
    if faults:
        assert sim_mem.frames_lost > 0


@pytest.mark.parametrize("kwargs", [
    dict(duration_s=3.0, seed=11),
    dict(duration_s=3.0, seed=12, sound_node=True, faults=[
        Injection("host_hang", 1.0, 0.3), Injection("loop_overrun", 1.6, 0.2, value=3),
        Injection("nonfinite_command", 2.0, 0.05), Injection("imu_stuck", 2.2, 0.1),
        Injection("spoof_load", 2.4, 0.1, value=2000.0)]),
], ids=["plain", "host-and-device-faults"])
def test_a_sim_run_is_the_same_on_the_memory_link_and_on_python_can(kwargs):
    mem = harness.run(bus="memory", **kwargs)
    pc = harness.run(bus="python-can", **kwargs)
    assert (mem.bus, pc.bus) == ("memory", "python-can")
    assert mem.frames_refused == 0
    assert np.array_equal(mem.telemetry, pc.telemetry, equal_nan=True)
    assert np.array_equal(mem.truth, pc.truth, equal_nan=True)
    assert (mem.frames_sent, mem.send_errors, mem.watchdog_tripped, mem.watchdog_trip_s, mem.shutdown_error) == \
        (pc.frames_sent, pc.send_errors, pc.watchdog_tripped, pc.watchdog_trip_s, pc.shutdown_error)


def test_the_host_side_ring_holds_a_hang_and_its_spoofer():
    # sized for the longest silence of the host: nothing python-can's unbounded bus would deliver
    # is refused (a hang to the end of the run needs no room: nobody reads after it)
    base = harness._to_host_frames((), 10.0, DT_S)
    hang = harness._to_host_frames([Injection("host_hang", 1.0, 2.0)], 10.0, DT_S)
    spoofed = harness._to_host_frames([Injection("host_hang", 1.0, 2.0),
                                       Injection("spoof_imu", 1.0, 2.0, value=20000.0)], 10.0, DT_S)
    forever = harness._to_host_frames([Injection("host_hang", 1.0)], 10.0, DT_S)
    assert base == forever == harness._TO_HOST_MIN_FRAMES
    assert hang >= 2.0 * harness._TO_HOST_FRAMES_PER_S and spoofed >= 2.0 * 20000.0
    run = harness.run(duration_s=2.5, seed=1, faults=[Injection("host_hang", 0.5, 1.5),
                                                       Injection("duplicate_frames", 0.5, 1.5)])
    assert run.frames_refused == 0


def test_an_unknown_bus_is_refused():
    with pytest.raises(ValueError, match="memory, python-can"):
        harness.run(duration_s=1.0, bus="can0")


def _ankle(*args, cwd):
    import subprocess
    import sys
    return subprocess.run([sys.executable, "-m", "controller.cli", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=300,
                          env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})


def test_ankle_sim_gives_the_same_summary_on_either_bus_and_refuses_bus_in_real_time(tmp_path):
    import json
    args = ("sim", "--duration", 3, "--seed", 9, "--inject", "imu_loss@1.5", "--json")
    mem, pc = _ankle(*args, cwd=tmp_path), _ankle(*args, "--bus", "python-can", cwd=tmp_path)
    assert mem.returncode == pc.returncode == 0, mem.stderr + pc.stderr
    a, b = json.loads(mem.stdout), json.loads(pc.stdout)
    for wall in ("wall_seconds", "realtime_factor"):
        a.pop(wall), b.pop(wall)
    assert a == b and a["strides"] >= 1
    bad = _ankle("sim", "--realtime", "--bus", "memory", "--duration", 1, cwd=tmp_path)
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.strip().splitlines() == ["ankle sim: error: --bus is the lock-step bus; --realtime runs "
                                               "over socketcand on loopback"]
    assert list(tmp_path.iterdir()) == []
