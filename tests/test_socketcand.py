"""The socketcand server bus against python-can's own socketcand client, over real TCP sockets."""
import contextlib
import os
import random
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import can
import pytest
from can.interfaces.socketcand.socketcand import (convert_ascii_message_to_can_message,
                                                  convert_can_message_to_ascii_message)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hal.bus import BusConfig, open_bus
from hal.errors import HalError
from sim.socketcand import MAX_COMMAND, SocketcandServerBus, format_frame, parse_send

WAIT_S = 5.0   # generous: every wait below ends as soon as its condition holds

std_frames = st.builds(lambda i, d: can.Message(arbitration_id=i, data=d, is_extended_id=False),
                       st.integers(0, 0x7FF), st.binary(max_size=8))
ext_frames = st.builds(lambda i, d: can.Message(arbitration_id=i, data=d, is_extended_id=True),
                       st.integers(0, 0x1FFFFFFF), st.binary(max_size=8))
frames = std_frames | ext_frames


def key(msg):
    return msg.arbitration_id, msg.is_extended_id, bytes(msg.data)


def random_frames(n, seed=0):
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        ext = rng.random() < 0.5
        out.append(can.Message(arbitration_id=rng.randrange(0x20000000 if ext else 0x800),
                               is_extended_id=ext, data=rng.randbytes(rng.randrange(9))))
    return out


@pytest.fixture
def server():
    bus = SocketcandServerBus(channel="can0")
    yield bus
    bus.shutdown()


def pump_until(server, cond, got=None):
    """Run the server until cond() holds; frames it receives go to ``got``."""
    end = time.monotonic() + WAIT_S
    while not cond():
        assert time.monotonic() < end, "timed out"
        msg = server.recv(0.001)
        if msg is not None and got is not None:
            got.append(msg)


def connect(server, channel="can0"):
    """python-can's client, opened while this thread runs the server (its constructor blocks)."""
    result = {}

    def opener():
        try:
            result["bus"] = open_bus(BusConfig(interface="socketcand", channel=channel,
                                               host="127.0.0.1", port=server.port))
        except Exception as e:   # handed to the test thread
            result["error"] = e

    t = threading.Thread(target=opener, daemon=True)
    t.start()
    pump_until(server, lambda: not t.is_alive())
    if "error" in result:
        raise result["error"]
    return result["bus"]


def client_recv(client, server, n):
    """n frames from a client, running the server meanwhile (it writes only when called)."""
    got = []
    end = time.monotonic() + WAIT_S
    while len(got) < n:
        assert time.monotonic() < end, f"timed out with {len(got)} of {n} frames"
        server.recv(0)
        msg = client.recv(0.001)
        if msg is not None:
            got.append(msg)
    return got


def server_recv(server, n):
    got = []
    pump_until(server, lambda: len(got) >= n, got)
    return got


def raw_client(server, handshake=True, rcvbuf=None):
    """A plain TCP client after '< hi >' (and, with handshake, in raw mode)."""
    sock = socket.socket()
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.connect(("127.0.0.1", server.port))
    sock.setblocking(False)
    assert read_until(sock, server, lambda b: b == b"< hi >") == b"< hi >"
    if handshake:
        for cmd in (b"< open can0 >", b"< rawmode >"):
            sock.sendall(cmd)
            assert read_until(sock, server, lambda b: b == b"< ok >") == b"< ok >"
    return sock


def read_until(sock, server, cond):
    """Bytes from ``sock``, running the server, until cond(bytes) holds or the server closes."""
    buf = b""
    end = time.monotonic() + WAIT_S
    while not cond(buf):
        assert time.monotonic() < end, f"timed out; got {buf[:200]!r}"
        server.recv(0.001)
        try:
            data = sock.recv(65536)
        except BlockingIOError:
            continue
        except ConnectionResetError:
            return buf
        if not data:
            return buf
        buf += data
    return buf


# ---------------------------------------------------------------- the pure functions

@settings(max_examples=300)
@given(frames, st.floats(1e-3, 4e9))   # 0 would mean "now"
def test_format_frame_round_trips_through_python_can(msg, t_s):
    msg.timestamp = t_s
    text = format_frame(msg)
    back = convert_ascii_message_to_can_message(text)
    assert key(back) == key(msg)
    assert back.timestamp == pytest.approx(t_s, abs=2e-6)   # [s] to the µs


@settings(max_examples=300)
@given(frames)
def test_python_can_send_command_round_trips_through_parse_send(msg):
    back = parse_send(convert_can_message_to_ascii_message(msg))
    assert back is not None and key(back) == key(msg) and back.is_rx


@settings(max_examples=500)
@given(st.text() | st.lists(st.sampled_from(
    ["<", ">", " ", "  ", "send", "open", "123", "12345678", "1234", "800", "0", "8", "9", "ff",
     "1ff", "zz", "-1", "0x1", "\x00", "é", "\t"])).map("".join))
def test_parse_send_never_raises(text):
    msg = parse_send(text)
    assert msg is None or (msg.dlc <= 8 and len(msg.data) == msg.dlc)


@pytest.mark.parametrize("text", [
    "< send 123 3 1 2 >", "< send 123 1 1 2 >", "< send 123 9 1 2 3 4 5 6 7 8 9 >",
    "< send 800 0 >", "< send 1234 0 >", "< send 123456789 0 >", "< send 20000000 0 >",
    "< send 12g 0 >", "< send 123 1 100 >", "< send 123 1 0x1 >", "< send 123 >", "< frame 123 0 >",
    "<send 123 0 >", "< send 123 0", "send 123 0 >", ""])
def test_parse_send_rejects_malformed(text):
    assert parse_send(text) is None


def test_parse_send_reads_what_socketcand_reads():
    assert key(parse_send("< send 7ff 2 a BB >")) == (0x7FF, False, b"\x0a\xbb")
    assert key(parse_send("< send 00000001 0  >")) == (1, True, b"")
    assert key(parse_send("<  send 1 1   ff   >")) == (1, False, b"\xff")


def test_format_frame_rejects_what_classic_can_cannot_carry():
    for bad in (can.Message(arbitration_id=0x800, is_extended_id=False),
                can.Message(arbitration_id=0x20000000, is_extended_id=True),
                can.Message(arbitration_id=1, data=bytes(12), is_fd=True),
                can.Message(arbitration_id=1, data=bytes(9), check=False)):
        with pytest.raises(ValueError):
            format_frame(bad)
    assert format_frame(can.Message(arbitration_id=1, is_remote_frame=True, dlc=2)) is None
    err = format_frame(can.Message(arbitration_id=4, is_error_frame=True, timestamp=1.5))
    assert err == "< error 004 1.500000 >"
    assert convert_ascii_message_to_can_message(err).is_error_frame


# ---------------------------------------------------------------- python-can's client

def test_frames_both_ways_in_order(server):
    client = connect(server)
    try:
        assert server.clients == 1
        sent = random_frames(1000, seed=1)
        assert len({(m.is_extended_id, m.dlc) for m in sent}) == 18   # both id kinds, dlc 0..8
        for msg in sent:      # at once: held back until the handshake is surely read, not lost
            server.send(msg)
        got = client_recv(client, server, len(sent))
        assert [key(m) for m in got] == [key(m) for m in sent]
        assert server.frames_out == 1000

        sent = random_frames(1000, seed=2)
        for msg in sent:
            client.send(msg)
        got = server_recv(server, len(sent))
        assert [key(m) for m in got] == [key(m) for m in sent]
        assert all(m.is_rx and m.channel == "can0" for m in got)
        assert server.frames_in == 1000 and server.bad_commands == 0
    finally:
        client.shutdown()


def test_a_clients_frame_reaches_the_server_and_the_other_clients_not_itself(server):
    a, b = connect(server), connect(server)
    try:
        frame = can.Message(arbitration_id=0x1ABCDEF0, data=b"\x01\x02\x03", is_extended_id=True)
        a.send(frame)
        assert [key(m) for m in server_recv(server, 1)] == [key(frame)]
        assert [key(m) for m in client_recv(b, server, 1)] == [key(frame)]
        marker = can.Message(arbitration_id=0x7FF, data=b"\xff", is_extended_id=False)
        server.send(marker)   # A's next frame is the marker, not its own frame echoed
        assert [key(m) for m in client_recv(a, server, 1)] == [key(marker)]
        assert [key(m) for m in client_recv(b, server, 1)] == [key(marker)]
    finally:
        a.shutdown()
        b.shutdown()


def test_no_frame_arrives_with_the_rawmode_ok(server):
    server.handshake_holdoff_s = 1.0    # long, so this test cannot race the hold-off
    sock = raw_client(server, handshake=False)
    try:
        sock.sendall(b"< open can0 >")
        assert read_until(sock, server, lambda b: b) == b"< ok >"
        sock.sendall(b"< rawmode >")
        pump_until(server, lambda: peek(sock))    # the '< ok >' waits in our socket, unread
        server.send(can.Message(arbitration_id=0x123, data=b"\x01", is_extended_id=False))
        assert sock.recv(256) == b"< ok >"
        frame = read_until(sock, server, lambda b: b.endswith(b" >"))   # after the hold-off
        assert frame.startswith(b"< frame 123 ") and frame.endswith(b" 01 >")
    finally:
        sock.close()


def peek(sock):
    try:
        return sock.recv(256, socket.MSG_PEEK)
    except BlockingIOError:
        return b""


def test_round_trips_with_the_server_in_another_process():
    script = textwrap.dedent("""
        import time, can
        from sim.socketcand import SocketcandServerBus
        bus = SocketcandServerBus(channel="can0")
        print(bus.port, flush=True)
        seen, end = False, time.monotonic() + 20
        while time.monotonic() < end and not (seen and bus.clients == 0):
            msg = bus.recv(0.05)
            seen = seen or bus.clients > 0
            if msg is not None:
                mask = 0x1FFFFFFF if msg.is_extended_id else 0x7FF
                bus.send(can.Message(arbitration_id=(msg.arbitration_id + 1) & mask,
                                     is_extended_id=msg.is_extended_id, data=msg.data))
        bus.shutdown()
        print("served", bus.frames_in, flush=True)
    """)
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=root, stdout=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONPATH": str(root)})
    try:
        port = int(proc.stdout.readline())
        client = open_bus(BusConfig(interface="socketcand", channel="can0", host="127.0.0.1",
                                    port=port))
        try:
            for msg in random_frames(200, seed=3):
                client.send(msg)
                reply = client.recv(WAIT_S)
                mask = 0x1FFFFFFF if msg.is_extended_id else 0x7FF
                assert reply is not None
                assert key(reply) == ((msg.arbitration_id + 1) & mask, msg.is_extended_id,
                                      bytes(msg.data))
        finally:
            client.shutdown()
        assert proc.stdout.readline().split() == ["served", "200"]
        assert proc.wait(WAIT_S) == 0
    finally:
        proc.kill()
        proc.stdout.close()
        proc.wait()


def test_wrong_channel_is_refused_as_socketcand_does(server):
    good = connect(server)
    try:
        with pytest.raises(HalError) as e:
            connect(server, channel="can1")
        assert isinstance(e.value.__cause__, can.CanError)
        assert "could not open bus" in str(e.value)
        pump_until(server, lambda: server.clients == 1)   # the refused one is closed
        good.send(can.Message(arbitration_id=5, data=b"\x05", is_extended_id=False))
        assert [key(m) for m in server_recv(server, 1)] == [(5, False, b"\x05")]
    finally:
        good.shutdown()


# ---------------------------------------------------------------- robustness

def send_garbage(server, data):
    """Send ``data`` from a fresh client, close its side, run the server until it hangs up."""
    sock = raw_client(server, handshake=False)
    try:
        with contextlib.suppress(OSError):    # '< open can1 >' in the garbage: the server hangs up
            for i in range(0, len(data), 4096):   # in chunks, running the server: no full buffers
                sock.sendall(data[i:i + 4096])
                server.recv(0)
            sock.shutdown(socket.SHUT_WR)
        read_until(sock, server, lambda b: False)     # returns at the server's close
        pump_until(server, lambda: server.clients == 0)
    finally:
        sock.close()


def check_still_serves(server):
    client = connect(server)
    try:
        client.send(can.Message(arbitration_id=0x42, data=b"ok", is_extended_id=False))
        assert [key(m) for m in server_recv(server, 1)] == [(0x42, False, b"ok")]
        server.send(can.Message(arbitration_id=0x43, data=b"", is_extended_id=False))
        assert [key(m) for m in client_recv(client, server, 1)] == [(0x43, False, b"")]
    finally:
        client.shutdown()
    pump_until(server, lambda: server.clients == 0)


def test_garbage_never_breaks_the_server(server):
    fragments = st.lists(st.sampled_from(
        [b"<", b">", b" ", b"< send ", b"< open ", b"can0", b"can1", b"< rawmode >", b"123 ",
         b"12345678 ", b"8 ", b"ff ", b"\x00", b"\xff", b"\n"])).map(b"".join)

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.binary(max_size=600) | fragments)
    def run(data):
        before = server.bad_commands
        send_garbage(server, data)
        assert server.bad_commands >= before

    run()
    send_garbage(server, random.Random(4).randbytes(100_000))
    assert server.bad_commands > 0
    check_still_serves(server)


def test_bad_commands_in_raw_mode_are_counted_and_skipped(server):
    sock = raw_client(server)
    try:
        good = [b"< send 123 1 aa >", b"< send 1FFFFFFF 0  >"]
        bad = [b"< send 123 2 aa >", b"< send 800 0 >", b"< bogus >", b"junk outside",
               b"<" + b"x" * (MAX_COMMAND + 10)]
        got = []
        sock.sendall(good[0] + b"".join(bad[:-1]))
        pump_until(server, lambda: server.bad_commands >= 4, got)
        sock.sendall(bad[-1])
        pump_until(server, lambda: server.bad_commands >= 5, got)
        sock.sendall(good[1])
        pump_until(server, lambda: len(got) >= 2, got)
        assert [key(m) for m in got] == [(0x123, False, b"\xaa"), (0x1FFFFFFF, True, b"")]
        assert server.bad_commands == 5 and server.frames_in == 2
    finally:
        sock.close()


@settings(max_examples=50, deadline=None)
@given(st.text(st.characters(exclude_characters="<>", codec="ascii"), min_size=1)
       .filter(str.strip))
def test_garbage_between_commands_loses_no_frame(garbage):
    with SocketcandServerBus() as server:
        sock = raw_client(server)
        try:
            sock.sendall(b"< send 001 1 01 >" + garbage.encode() + b"< send 002 1 02 >")
            got = server_recv(server, 2)
            assert [key(m) for m in got] == [(1, False, b"\x01"), (2, False, b"\x02")]
            assert server.bad_commands >= 1
        finally:
            sock.close()


def test_client_leaving_mid_stream_is_dropped_cleanly(server):
    client = connect(server)
    for msg in random_frames(200, seed=5):
        server.send(msg)
    client.shutdown()     # with frames unread: the server's next writes fail
    end = time.monotonic() + WAIT_S
    while server.clients:
        assert time.monotonic() < end
        server.send(can.Message(arbitration_id=1, is_extended_id=False))   # never raises
        server.recv(0.001)
    sock = raw_client(server)
    sock.sendall(b"< send 12")    # half a command, then gone
    sock.close()
    pump_until(server, lambda: server.clients == 0)
    assert server.frames_in == 0
    check_still_serves(server)


def test_a_client_that_does_not_read_is_dropped_without_blocking(server, caplog):
    sock = raw_client(server, rcvbuf=4096)   # a small window: the server's queue grows soon
    try:
        msg = can.Message(arbitration_id=0x123, data=bytes(8), is_extended_id=False)
        n = 0   # a blocking send would hang here for good: the client never reads
        while server.clients and n < 1_000_000:
            server.send(msg)
            n += 1
        assert server.clients == 0, "never dropped"
        assert "is not reading" in caplog.text
    finally:
        sock.close()


def test_shutdown_is_idempotent_and_final(server):
    client = connect(server)
    try:
        server.shutdown()
        server.shutdown()
        assert client.recv(0.1) is None    # EOF: python-can's client just sees no frame
        with pytest.raises(can.CanOperationError):
            server.send(can.Message(arbitration_id=1))
        with pytest.raises(can.CanOperationError):
            server.recv(0)
    finally:
        client.shutdown()
    SocketcandServerBus(port=server.port).shutdown()    # the port is free again
