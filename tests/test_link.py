"""The GIL-free CAN links (hal._link) and opening them (hal.links), over real sockets.

SocketcandLink is driven through a real ``socket.socketpair()`` (the test holds the peer end and
writes or reads the socketcand text itself) and through a real TCP connection to the simulator's
``SocketcandServerBus``.  The peer's text comes from, and goes back through, ``sim.socketcand``'s
``format_frame`` / ``parse_send``: what a server sends and what a server accepts.  Nothing asserts
a duration; timeouts only stop a hang.
"""
import contextlib
import errno
import queue
import random
import re
import socket
import struct
import threading
import time

import can
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hal._link import SocketcandLink
from hal.bus import BusConfig, socketcan_available
from hal.errors import ConfigError, HalError
from hal.links import open_link
from sim.socketcand import SocketcandServerBus, format_frame, parse_send

WAIT_S = 10.0     # generous: every wait ends as soon as its condition holds
EXTENDED, REMOTE, ERROR = 1, 2, 4
SEND_RE = re.compile(rb"< send ([0-9A-F]{3}|[0-9A-F]{8}) [0-8]((?: [0-9A-F]{2})*) >")

std_frames = st.builds(lambda i, d, t: can.Message(arbitration_id=i, data=d, is_extended_id=False,
                                                   timestamp=t),
                       st.integers(0, 0x7FF), st.binary(max_size=8), st.floats(0, 4e9))
ext_frames = st.builds(lambda i, d, t: can.Message(arbitration_id=i, data=d, is_extended_id=True,
                                                   timestamp=t),
                       st.integers(0, 0x1FFFFFFF), st.binary(max_size=8), st.floats(0, 4e9))
frames = std_frames | ext_frames


def key(msg):
    """A python-can Message as the link reports a frame: (can_id, data, flags)."""
    return msg.arbitration_id, bytes(msg.data), EXTENDED if msg.is_extended_id else 0


def wire(msg):
    return format_frame(msg).encode("ascii")


def random_frame(rng):
    ext = rng.random() < 0.5
    return can.Message(arbitration_id=rng.randrange(0x20000000 if ext else 0x800), is_extended_id=ext,
                       data=rng.randbytes(rng.randrange(9)))


def link_pair():
    """A SocketcandLink on one end of a socketpair; the other (blocking, with a timeout) for the test."""
    mine, peer = socket.socketpair()
    mine.setblocking(False)
    peer.settimeout(WAIT_S)
    return SocketcandLink(mine.detach()), peer


@contextlib.contextmanager
def linked(make=None):
    """``make()`` (default link_pair) for a with-block: both ends closed afterwards."""
    link, peer = (make or link_pair)()
    try:
        yield link, peer
    finally:
        link.close()
        peer.close()


def send_in_pieces(link, peer, stream, cuts):
    """Send ``stream`` cut at ``cuts``, receiving after each piece; every frame received."""
    bounds = sorted({c for c in cuts if c < len(stream)} | {0, len(stream)})
    got = []
    for lo, hi in zip(bounds, bounds[1:]):
        peer.sendall(stream[lo:hi])
        got += receive_all(link)
    return got + receive_all(link)


def receive_all(link):
    got = []
    while (f := link.receive()) is not None:
        got.append(f)
    return got


def read_commands(peer, n):
    """Read from the peer until ``n`` whole '< ... >' commands arrived; returns them (bytes)."""
    buf = b""
    while buf.count(b">") < n:
        chunk = peer.recv(65536)
        assert chunk, "the link closed its end"
        buf += chunk
    return re.findall(rb"<[^>]*>", buf)


def sanitize(junk):
    """Random bytes that cannot spell a valid token: no 'frame', no 'err'."""
    return junk.replace(b"frame", b"fRame").replace(b"err", b"eRr")


# ---------------------------------------------------------------------------------------------
# Receiving
# ---------------------------------------------------------------------------------------------

@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(msgs=st.lists(frames, max_size=30), cuts=st.lists(st.integers(0, 2000), max_size=40))
def test_frames_arrive_whole_across_any_chunking(msgs, cuts):
    stream = b"".join(wire(m) for m in msgs)
    with linked() as (link, peer):
        assert send_in_pieces(link, peer, stream, cuts) == [key(m) for m in msgs]
        assert link.frames_in == len(msgs)
        assert link.bad_input == 0


def test_error_frames_arrive_flagged():
    with linked() as (link, peer):
        err = can.Message(arbitration_id=0x20, is_error_frame=True, data=b"")
        ok = can.Message(arbitration_id=0x123, is_extended_id=False, data=b"\x01\x02")
        peer.sendall(wire(err) + wire(ok))
        got = receive_all(link)
        assert [f[2] for f in got] == [ERROR, 0]
        assert got[1] == key(ok)


@pytest.mark.parametrize("token", [
    b"<>", b"< >", b"< hi >", b"< ok >", b"< send 123 1 AB >", b"< echo >",
    b"< frame >", b"< frame 123 >", b"< frame 123 1.0>X>",
    b"< frame XYZ 1.0 AB >", b"< frame 123 1.0 ABC >", b"< frame 123 1.0 AB CD >",
    b"< frame 123 1.0 A B >", b"< frame 123 1.0 001122334455667788 >",
    b"< frame 800 1.0 AB >", b"< frame 20000000 1.0 AB >", b"< frame 123456789 1.0 >",
    b"< frame  123 1.0 AB >", b"< frame 12G 1.0 AB >",
    b"< frame 12 1.0 AB >", b"< frame 0123 1.0 AB >", b"< frame 0000123 1.0 AB >",
    b"< errand >",
], ids=lambda t: t.decode())
def test_malformed_token_is_counted_and_skipped(token):
    """Only '< frame ID SEC.USEC HEX >' (3- or 8-digit ID) and '< error ... >' are frames."""
    good = can.Message(arbitration_id=0x1ABCDEF, is_extended_id=True, data=b"\xfe\xed")
    with linked() as (link, peer):
        peer.sendall(token + wire(good))
        assert receive_all(link) == [key(good)]
        assert link.bad_input == 1
        assert link.frames_in == 1


garbage = st.binary(max_size=600).map(sanitize)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(parts=st.lists(st.tuples(garbage, frames), max_size=12), tail=garbage,
       cuts=st.lists(st.integers(0, 8000), max_size=30))
def test_garbage_never_crashes_nor_invents_frames_and_frames_after_it_arrive(parts, tail, cuts):
    # each valid frame follows a '>', which ends any token the garbage left open
    stream = b"".join(junk + b">" + wire(m) for junk, m in parts) + tail
    with linked() as (link, peer):
        assert send_in_pieces(link, peer, stream, cuts) == [key(m) for _, m in parts]
        opened = b"<" in tail
        must_count = any(b"<" in junk for junk, _ in parts) or (opened and b">" in tail[tail.index(b"<"):])
        if must_count:
            assert link.bad_input > 0
        if not (must_count or opened):       # an open, overlong tail may or may not be counted yet
            assert link.bad_input == 0


def test_a_100kB_random_stream_interleaved_with_frames():
    rng = random.Random(7)
    stream, sent = bytearray(), []
    while len(stream) < 100_000:
        msg = random_frame(rng)
        stream += sanitize(rng.randbytes(rng.randrange(0, 700))) + b">" + wire(msg)
        sent.append(key(msg))
    stream += sanitize(rng.randbytes(300))
    with linked() as (link, peer):
        got, pos = [], 0
        while pos < len(stream):
            n = rng.randrange(1, 4096)
            peer.sendall(stream[pos:pos + n])
            pos += n
            got += receive_all(link)
        got += receive_all(link)
        assert got == sent
        assert link.frames_in == len(sent)
        assert link.bad_input > 0               # the junk had '<' in it


def test_an_unterminated_token_over_200_bytes_is_dropped_and_the_link_resyncs():
    good = can.Message(arbitration_id=0x7FF, data=b"\x00" * 8)
    with linked() as (link, peer):
        peer.sendall(b"< frame 123 " + b"A" * 300)       # no '>': held, then dropped as overlong
        assert receive_all(link) == []
        assert link.bad_input == 1
        peer.sendall(b" junk " + wire(good))
        assert receive_all(link) == [key(good)]
        assert link.bad_input == 1


# ---------------------------------------------------------------------------------------------
# Transmitting
# ---------------------------------------------------------------------------------------------

@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(msgs=st.lists(frames, min_size=1, max_size=20))
def test_transmit_writes_what_a_server_parses_back_to_the_same_frame(msgs):
    with linked() as (link, peer):
        for m in msgs:
            link.transmit(m.arbitration_id, m.data, EXTENDED if m.is_extended_id else 0)
        commands = read_commands(peer, len(msgs))
        assert len(commands) == len(msgs)
        for text, m in zip(commands, msgs):
            match = SEND_RE.fullmatch(text)
            assert match, text
            assert len(match.group(1)) == (8 if m.is_extended_id else 3)
            back = parse_send(text.decode("ascii"))
            assert back is not None, text
            assert key(back) == key(m)
        assert link.frames_out == len(msgs) and link.send_failures == 0


def test_transmit_refuses_what_socketcand_cannot_carry():
    with linked() as (link, peer):
        with pytest.raises(ValueError):
            link.transmit(0x123, bytes(9))
        with pytest.raises(ValueError):
            link.transmit(0x800, b"")
        with pytest.raises(ValueError):
            link.transmit(0x20000000, b"", EXTENDED)
        for flags in (REMOTE, ERROR):
            with pytest.raises(OSError) as e:
                link.transmit(0x123, b"", flags)
            assert e.value.errno == errno.EINVAL
        assert link.send_failures == 2 and link.frames_out == 0
        link.transmit(0x001, b"\x0a")
        assert read_commands(peer, 1) == [b"< send 001 1 0A >"]


def small_buffer_pair(kind):
    """(link side, peer side) with small kernel buffers: a socketpair, or a TCP loopback connection."""
    if kind == "socketpair":
        mine, peer = socket.socketpair()
        mine.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)     # the kernel's minimum, or near it
        peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        return mine, peer
    listener = socket.socket()
    try:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        mine = socket.socket()
        mine.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        mine.settimeout(WAIT_S)
        mine.connect(listener.getsockname())
        mine.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)     # as open_link sets it
        listener.settimeout(WAIT_S)
        peer, _ = listener.accept()
    finally:
        listener.close()
    peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    return mine, peer


@pytest.mark.parametrize("kind", ["socketpair", "tcp"])
def test_partial_writes_never_tear_a_command(kind):
    mine, peer = small_buffer_pair(kind)
    mine.setblocking(False)
    peer.setblocking(False)
    link = SocketcandLink(mine.detach())
    rng = random.Random(11)
    sent, stream = [], bytearray()

    def transmit_one():
        msg = random_frame(rng)
        try:
            link.transmit(msg.arbitration_id, msg.data, EXTENDED if msg.is_extended_id else 0)
        except OSError as e:
            assert e.errno == errno.ENOBUFS, e
            return False
        sent.append(key(msg))
        return True

    def read_peer(limit):
        try:
            chunk = peer.recv(limit)
        except (BlockingIOError, socket.timeout):
            return False
        assert chunk, "the link closed its end"
        stream.extend(chunk)
        return True

    try:
        attempts = 0
        while link.send_failures == 0:                 # the peer does not read: fill everything up
            transmit_one()
            attempts += 1
            assert attempts < 200_000, "transmit never reported a full buffer"
        for _ in range(20):                            # more tries while it is (about) full
            transmit_one()
        for _ in range(1500):                          # read a little at a time while sending: the
            read_peer(50)                              # kernel takes part of what the link holds
            transmit_one()
        # the end: read everything; each send first flushes what the link still holds
        peer.settimeout(0.05)                          # only how long to wait before sending again
        give_up = time.monotonic() + 3 * WAIT_S
        def arrived():
            """The whole commands read so far; each must be a valid '< send ... >' (none torn)."""
            commands = re.findall(rb"<[^>]*>", bytes(stream))
            bad = [c for c in commands if not SEND_RE.fullmatch(c)]
            assert not bad, f"torn or garbled commands: {bad[:3]}"
            return commands

        while True:
            while read_peer(65536):
                if len(arrived()) == len(sent):
                    break
            if len(arrived()) == len(sent) and stream.endswith(b">"):
                break
            transmit_one()                             # not all here yet: push the link's rest out
            assert time.monotonic() < give_up, "the link never flushed what it had accepted"
        commands = arrived()
        assert b"".join(commands) == bytes(stream)      # only whole commands, back to back
        assert [key(parse_send(c.decode("ascii"))) for c in commands] == sent
        assert link.frames_out == len(sent)
        assert link.send_failures >= 1
    finally:
        link.close()
        peer.close()


# ---------------------------------------------------------------------------------------------
# Peer closed, discard, close
# ---------------------------------------------------------------------------------------------

def test_peer_closed_delivers_what_was_sent_then_raises_connreset():
    with linked() as (link, peer):
        msgs = [can.Message(arbitration_id=i, data=bytes([i])) for i in range(3)]
        peer.sendall(b"".join(wire(m) for m in msgs))
        peer.close()
        assert receive_all_until_error(link) == [key(m) for m in msgs]
        with pytest.raises(OSError) as e:
            link.receive()
        assert e.value.errno == errno.ECONNRESET
        assert link.last_errno == errno.ECONNRESET


def receive_all_until_error(link):
    got = []
    while True:
        try:
            f = link.receive()
        except OSError as e:
            assert e.errno == errno.ECONNRESET
            return got
        assert f is not None, "peer closed but the link reports nothing waiting"
        got.append(f)


def test_discard_empties_the_input():
    with linked() as (link, peer):
        peer.sendall(b"".join(wire(can.Message(arbitration_id=0x100 + i, data=b"")) for i in range(7)))
        assert link.discard() == 7
        assert link.receive() is None
        last = can.Message(arbitration_id=0x42, data=b"\x42")
        peer.sendall(wire(last))
        assert link.receive() == key(last)


def test_close_is_idempotent_and_a_closed_link_raises():
    link, peer = link_pair()
    try:
        link.close()
        link.close()
        with pytest.raises(OSError):
            link.receive()
        with pytest.raises(OSError):
            link.transmit(0x1, b"")
        peer.settimeout(0)
        assert peer.recv(16) == b""                   # the descriptor really was closed
    finally:
        peer.close()


# ---------------------------------------------------------------------------------------------
# open_link with a real SocketcandServerBus
# ---------------------------------------------------------------------------------------------

class ServerThread:
    """The simulator's server, pumped by one thread (it is not thread-safe): frames in, frames out."""

    def __init__(self, channel="can0"):
        self.bus = SocketcandServerBus(channel=channel)
        self.port = self.bus.port
        self.outbox, self.inbox = queue.Queue(), queue.Queue()
        self.error = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        try:
            while not self._stop.is_set():
                while True:
                    try:
                        self.bus.send(self.outbox.get_nowait())
                    except queue.Empty:
                        break
                msg = self.bus.recv(0.002)
                if msg is not None:
                    self.inbox.put(msg)
        except Exception as e:        # handed to the test thread
            self.error = e

    def received(self, n):
        got, give_up = [], time.monotonic() + WAIT_S
        while len(got) < n:
            try:
                got.append(self.inbox.get(timeout=max(give_up - time.monotonic(), 0.01)))
            except queue.Empty:
                break
        return got

    def stop(self):
        self._stop.set()
        self._thread.join(WAIT_S)
        self.bus.shutdown()
        assert self.error is None, self.error


@pytest.fixture
def server():
    s = ServerThread("can0")
    yield s
    s.stop()


def receive_n(link, n):
    got, give_up = [], time.monotonic() + WAIT_S
    while len(got) < n and time.monotonic() < give_up:
        f = link.receive()
        if f is None:
            time.sleep(0.001)
        else:
            got.append(f)
    return got


def test_open_link_handshakes_and_carries_frames_both_ways(server):
    link = open_link(BusConfig(interface="socketcand", channel="can0", host="127.0.0.1",
                               port=server.port), timeout_s=WAIT_S)
    try:
        assert isinstance(link, SocketcandLink)
        rng = random.Random(5)
        out = [random_frame(rng) for _ in range(20)]
        for m in out:
            link.transmit(m.arbitration_id, m.data, EXTENDED if m.is_extended_id else 0)
        got = server.received(len(out))
        assert [key(m) for m in got] == [key(m) for m in out]
        back = [random_frame(rng) for _ in range(20)]
        for m in back:
            server.outbox.put(m)
        assert receive_n(link, len(back)) == [key(m) for m in back]
        assert link.frames_in == len(back) and link.frames_out == len(out)
        assert link.bad_input == 0 and link.send_failures == 0
    finally:
        link.close()


def test_open_link_to_a_closed_port_names_host_and_port():
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()                                     # bound, never listened: now nothing is there
    with pytest.raises(HalError) as e:
        open_link(BusConfig(interface="socketcand", channel="can0", host="127.0.0.1", port=port),
                  timeout_s=WAIT_S)
    assert f"127.0.0.1:{port}" in str(e.value)


def test_open_link_with_a_wrong_channel_raises(server):
    with pytest.raises(HalError) as e:
        open_link(BusConfig(interface="socketcand", channel="can1", host="127.0.0.1", port=server.port),
                  timeout_s=WAIT_S)
    assert "can1" in str(e.value)


def test_open_link_has_no_link_for_other_interfaces():
    assert open_link(BusConfig(interface="virtual", channel="ankle")) is None


# ---------------------------------------------------------------------------------------------
# SocketCAN
# ---------------------------------------------------------------------------------------------

def test_socketcan_without_the_interface_is_a_config_error_with_the_fix():
    if socketcan_available("can0"):
        pytest.skip("this machine has a can0 that is up")
    with pytest.raises(ConfigError) as e:
        open_link(BusConfig(interface="socketcan", channel="can0"))
    assert str(e.value).startswith("bus.channel")
    assert "ip link set can0 up" in str(e.value)


def _no_socketcan_reason():
    try:
        socket.socket(socket.AF_CAN, socket.SOCK_RAW, socket.CAN_RAW).close()
    except (AttributeError, OSError) as e:
        return f"socket(AF_CAN) fails: {e}"
    return "there is no vcan0 interface that is up (`ip link add vcan0 type vcan && ip link set vcan0 up`)"


def test_socketcan_link_frames_through_vcan():
    if not socketcan_available("vcan0"):
        pytest.skip(f"no SocketCAN in this kernel: {_no_socketcan_reason()}")
    cfg = BusConfig(interface="socketcan", channel="vcan0")
    a = open_link(cfg)
    b = open_link(cfg)
    try:
        b.discard()
        rng = random.Random(9)
        out = [random_frame(rng) for _ in range(50)]
        for m in out:
            a.transmit(m.arbitration_id, m.data, EXTENDED if m.is_extended_id else 0)
        assert receive_n(b, len(out)) == [key(m) for m in out]
        assert a.frames_out == len(out) and b.frames_in == len(out)
    finally:
        a.close()
        b.close()


# ---------------------------------------------------------------------------------- SocketCAN frames
# The kernel here has no AF_CAN, but SocketCanLink only reads and writes 16-byte struct can_frame
# records on a descriptor: a datagram socketpair carries them the same way, so the C conversion
# (id masks, EFF/RTR/ERR flags, dlc) is tested for real.
_CAN_EFF_FLAG, _CAN_RTR_FLAG, _CAN_ERR_FLAG = 0x80000000, 0x40000000, 0x20000000


def _socketcan_pair():
    from hal._link import SocketCanLink
    ours, peer = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    ours.setblocking(False)
    return SocketCanLink(ours.detach()), peer


@given(can_id=st.integers(0, 0x1FFFFFFF), extended=st.booleans(), data=st.binary(max_size=8),
       remote=st.booleans(), error=st.booleans())
@settings(max_examples=200, deadline=None)
def test_socketcan_link_decodes_struct_can_frame(can_id, extended, data, remote, error):
    if not extended:
        can_id &= 0x7FF
    with linked(_socketcan_pair) as (link, peer):
        raw_id = can_id | (_CAN_EFF_FLAG if extended else 0) | (_CAN_RTR_FLAG if remote else 0) \
            | (_CAN_ERR_FLAG if error else 0)
        peer.send(struct.pack("=IB3x8s", raw_id, len(data), data.ljust(8, b"\0")))
        got = link.receive()
        flags = (1 if extended else 0) | (2 if remote else 0) | (4 if error else 0)
        assert got == (can_id, data, flags)
        assert link.receive() is None and link.frames_in == 1


@given(can_id=st.integers(0, 0x1FFFFFFF), extended=st.booleans(), data=st.binary(max_size=8))
@settings(max_examples=200, deadline=None)
def test_socketcan_link_encodes_struct_can_frame(can_id, extended, data):
    if not extended:
        can_id &= 0x7FF
    with linked(_socketcan_pair) as (link, peer):
        link.transmit(can_id, data, 1 if extended else 0)
        raw_id, dlc, payload = struct.unpack("=IB3x8s", peer.recv(64))
        assert raw_id == can_id | (_CAN_EFF_FLAG if extended else 0)
        assert payload[:dlc] == data and dlc == len(data) and link.frames_out == 1


def test_socketcan_link_counts_a_short_record_as_bad_input():
    with linked(_socketcan_pair) as (link, peer):
        peer.send(b"\x01\x02\x03")
        assert link.receive() is None and link.bad_input == 1
        peer.send(struct.pack("=IB3x8s", 0x123, 9, b"\0" * 8))    # dlc 9: not classic CAN
        assert link.receive() is None and link.bad_input == 2


def test_a_closed_peer_marks_the_link_lost_for_receive_and_for_send():
    # issue 14 item 9: the tick must see a server that went away as a lost link, not as silence
    with linked() as (link, peer):
        assert link.down_errno == 0
        peer.close()
        with pytest.raises(OSError):
            link.receive()
        assert link.down_errno == errno.ECONNRESET
    with linked() as (link, peer):
        peer.close()
        for _ in range(3):          # the first write may still be taken; then the pipe is broken
            with contextlib.suppress(OSError):
                link.transmit(0x001, bytes(8))
        assert link.down_errno in (errno.EPIPE, errno.ECONNRESET)
        assert link.send_failures >= 1


# ---- receive filters from the drive's codec ------------------------------------------------------

def test_the_kernel_filter_passes_exactly_the_ids_the_tick_reads():
    import socket
    import struct
    from hal.ak import ak_mit_codec_from, mit_range
    from hal.links import can_filters, tick_rx_ids
    codec = ak_mit_codec_from(mit_range("AK80-9"), 1, 0x7F0)
    ids = tick_rx_ids(codec)
    assert ids == (0x110, 0x111, 0x112, 0x113, 0x7F0)
    raw = can_filters(ids)
    pairs = [struct.unpack_from("=II", raw, 8 * k) for k in range(len(raw) // 8)]
    assert [i for i, _ in pairs] == list(ids)
    # each mask compares all 11 id bits, the extended flag and the remote flag (linux/can.h)
    mask = socket.CAN_SFF_MASK | socket.CAN_EFF_FLAG | socket.CAN_RTR_FLAG
    assert all(m == mask for _, m in pairs)
    for bad in ([], [0x800], [-1], [True], list(range(65))):
        with pytest.raises(ValueError):
            can_filters(bad)
