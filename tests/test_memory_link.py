"""The in-process bus (hal._link.MemoryLink), the python-can adapter (PyCanLink) and LinkBus.

Real frames through real objects: two MemoryLink ends, python-can virtual buses.  The GIL test
holds the GIL in this thread (a switch interval far longer than the test) while another thread
drains the link inside its nogil loop: it can only make progress if recv never takes the GIL.
Nothing asserts a duration; deadlines only stop a hang.
"""
import errno
import sys
import threading
import time
import uuid

import can
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hal._link import FrameQueue, MemoryLink, PyCanLink, memory_link_pair
from hal.links import LinkBus

EXTENDED, REMOTE, ERROR = 1, 2, 4
WAIT_S = 20.0

frames = st.one_of(
    st.tuples(st.integers(0, 0x7FF), st.binary(max_size=8), st.just(0)),
    st.tuples(st.integers(0, 0x1FFFFFFF), st.binary(max_size=8), st.just(EXTENDED)))


def drain(link):
    out = []
    while (got := link.receive()) is not None:
        out.append(got)
    return out


@settings(max_examples=60, deadline=None)
@given(st.lists(frames, max_size=40), st.lists(frames, max_size=40))
def test_frames_cross_both_ways_whole_and_in_order(a_to_b, b_to_a):
    a, b = memory_link_pair(64)
    for f in a_to_b:
        a.transmit(*f)
    for f in b_to_a:
        b.transmit(*f)
    assert drain(b) == list(a_to_b)
    assert drain(a) == list(b_to_a)
    assert (a.frames_out, b.frames_in, b.frames_out, a.frames_in) == (len(a_to_b),) * 2 + (len(b_to_a),) * 2
    assert a.receive() is None and b.receive() is None


def test_a_full_ring_refuses_the_frame_keeps_what_it_holds_and_takes_more_once_read():
    a, b = memory_link_pair(4, 8)
    assert (a.tx.capacity, a.rx.capacity) == (4, 8)
    for i in range(4):
        a.transmit(0x100 + i, bytes([i]))
    with pytest.raises(OSError) as e:
        a.transmit(0x1FF, b"\xff")
    assert e.value.errno == errno.ENOBUFS
    assert (a.send_failures, a.frames_out, a.last_errno, a.down_errno) == (1, 4, errno.ENOBUFS, 0)
    assert b.receive() == (0x100, b"\x00", 0)           # the oldest first; nothing overwritten
    a.transmit(0x104, b"\x04")                          # one place free again
    assert [f[0] for f in drain(b)] == [0x101, 0x102, 0x103, 0x104]
    assert b.rx.pending == 0


@settings(max_examples=80, deadline=None)
@given(st.integers(0, 5), st.lists(st.one_of(frames, st.none()), max_size=200))
def test_a_ring_matches_a_bounded_queue_model(log2cap, ops):
    # None: the peer reads one frame; a frame: this end sends it (refused when the model is full)
    import collections
    capacity = 1 << log2cap
    a, b = memory_link_pair(capacity)
    model, refused = collections.deque(), 0
    for op in ops:
        if op is None:
            assert b.receive() == (model.popleft() if model else None)
        elif len(model) == capacity:
            with pytest.raises(OSError):
                a.transmit(*op)
            refused += 1
        else:
            a.transmit(*op)
            model.append(op)
        assert b.rx.pending == len(model)
    assert drain(b) == list(model)
    assert (a.send_failures, a.frames_out) == (refused, sum(op is not None for op in ops) - refused)


def test_the_ring_wraps_around_many_times():
    a, b = memory_link_pair(8)
    for i in range(1000):
        a.transmit(i & 0x7FF, i.to_bytes(2, "little"))
        if i % 3 == 2:
            got = drain(b)
            assert [int.from_bytes(d, "little") for _, d, _ in got] == list(range(i - 2, i + 1))


@pytest.mark.parametrize("capacity", [0, 3, 100, -1, 1 << 25])
def test_a_ring_is_a_power_of_two_in_range(capacity):
    with pytest.raises(ValueError, match="power of two"):
        FrameQueue(capacity)


def test_a_memory_link_refuses_what_a_classic_frame_cannot_carry():
    a, b = memory_link_pair(4)
    with pytest.raises(ValueError):
        a.transmit(0x800, b"")                          # an 11-bit id
    with pytest.raises(ValueError):
        a.transmit(0x1, bytes(9))
    assert b.receive() is None


def test_the_link_moves_frames_while_another_thread_holds_the_gil():
    # recv/send are nogil: discard() drains the ring without the GIL.  This thread keeps the GIL
    # (a switch interval of an hour: no forced hand-over) and watches the ring empty; a recv that
    # took the GIL would stall until this thread let go, and the ring would not empty
    n = 1 << 16
    a, b = memory_link_pair(n)
    for i in range(n):
        a.transmit(i & 0x7FF, b"\x01\x02")
    started = threading.Event()
    drained = []

    def consumer():
        started.set()
        drained.append(b.discard())

    old = sys.getswitchinterval()
    t = threading.Thread(target=consumer)
    sys.setswitchinterval(3600.0)
    try:
        t.start()
        started.wait()                          # releases the GIL until the consumer runs...
        end = time.monotonic() + WAIT_S          # ...which gives it back only at its nogil block
        while b.rx.pending and time.monotonic() < end:
            pass                                # pure Python: the GIL stays here
        left = b.rx.pending
    finally:
        sys.setswitchinterval(old)
        t.join(WAIT_S)
    assert left == 0
    assert drained == [n] and b.frames_in == n


# ------------------------------------------------------------------------ python-can adapter
@pytest.fixture
def virtual_pair():
    channel = f"pycanlink-{uuid.uuid4().hex[:8]}"
    mine, peer = can.Bus(interface="virtual", channel=channel), can.Bus(interface="virtual", channel=channel)
    yield mine, peer
    mine.shutdown()
    peer.shutdown()


@settings(max_examples=40, deadline=None)
@given(st.lists(frames, max_size=20))
def test_pycanlink_sends_and_receives_the_same_frames_as_python_can(msgs):
    channel = f"pycanlink-{uuid.uuid4().hex[:8]}"
    mine, peer = can.Bus(interface="virtual", channel=channel), can.Bus(interface="virtual", channel=channel)
    try:
        link = PyCanLink(mine)
        for can_id, data, flags in msgs:
            link.transmit(can_id, data, flags)
        got = []
        while (m := peer.recv(0.0)) is not None:
            got.append((m.arbitration_id, bytes(m.data), EXTENDED if m.is_extended_id else 0, m.dlc))
        assert got == [(i, d, f, len(d)) for i, d, f in msgs]
        for can_id, data, flags in msgs:
            peer.send(can.Message(arbitration_id=can_id, data=data, is_extended_id=bool(flags & EXTENDED)))
        assert drain(link) == list(msgs)
        assert (link.frames_out, link.frames_in) == (len(msgs), len(msgs))
    finally:
        mine.shutdown()
        peer.shutdown()


def test_pycanlink_flags_error_and_remote_frames(virtual_pair):
    mine, peer = virtual_pair
    link = PyCanLink(mine)
    peer.send(can.Message(is_error_frame=True, arbitration_id=0, data=b"", is_extended_id=False))
    peer.send(can.Message(arbitration_id=0x123, is_remote_frame=True, dlc=0, is_extended_id=False))
    assert drain(link) == [(0, b"", ERROR), (0x123, b"", REMOTE)]


def test_pycanlink_turns_a_failing_bus_into_eio_counted_never_raised_in_the_tick(virtual_pair):
    mine, peer = virtual_pair
    link = PyCanLink(mine)
    mine.shutdown()                             # python-can raises CanOperationError from now on
    with pytest.raises(OSError) as e:
        link.transmit(0x1, b"\x00")
    assert e.value.errno == errno.EIO
    assert link.send_failures == 1 and "CanOperationError" in link.last_error
    with pytest.raises(OSError) as e:
        link.receive()
    assert e.value.errno == errno.EIO
    link.close()                                # the bus is the caller's: close leaves it alone


def test_pycanlink_needs_a_bus():
    with pytest.raises(TypeError, match="python-can bus"):
        PyCanLink(object())


# ------------------------------------------------------------------------ LinkBus
def test_linkbus_is_python_can_on_a_link_both_ways():
    a, b = memory_link_pair(16)
    bus = LinkBus(a)
    bus.send(can.Message(arbitration_id=0x1ABCDE, data=b"\x01\x02\x03", is_extended_id=True))
    assert b.receive() == (0x1ABCDE, b"\x01\x02\x03", EXTENDED)
    b.transmit(0x7, b"\xaa")
    msg = bus.recv(WAIT_S)
    assert (msg.arbitration_id, bytes(msg.data), msg.is_extended_id) == (0x7, b"\xaa", False)
    assert bus.recv(0.0) is None                # nothing waiting: None at once
    assert bus.recv(0.002) is None              # nor after the timeout
    bus.shutdown()


def test_linkbus_reports_a_full_link_as_a_can_error():
    a, _ = memory_link_pair(1)
    bus = LinkBus(a)
    bus.send(can.Message(arbitration_id=1, data=b"", is_extended_id=False))
    with pytest.raises(can.CanOperationError, match="No buffer space|errno 105"):
        bus.send(can.Message(arbitration_id=1, data=b"", is_extended_id=False))
    with pytest.raises(TypeError):
        LinkBus(object())


def test_commissioning_through_hal_ak_over_the_memory_link():
    from hal.ak import AKDriver, DriverState
    from sim.devices import SimAnkle
    from sim.plant import build_plant
    from sim.wearer import Wearer
    host, dev = memory_link_pair(64)
    plant = build_plant({})
    sim = SimAnkle(dev, plant, Wearer("steady", 1.25, 80.0))
    driver = AKDriver(LinkBus(host), plant.driver_id)
    driver.configure()
    with sim.serving():
        driver.activate(timeout_s=WAIT_S)
        assert driver.state is DriverState.ACTIVE and plant.driver_active
        driver.deactivate(timeout_s=WAIT_S)
    assert not plant.driver_active
    assert sim.frames_in == host.frames_out and host.frames_in == sim.frames_out >= 2
