"""A socketcand server as a python-can bus: real CAN frames between processes over TCP.

This machine has no SocketCAN, so the simulator plays the CAN bus itself: it owns a
:class:`SocketcandServerBus`, and the host connects with python-can's own socketcand client
(``BusConfig(interface="socketcand", host=..., port=...)``).  The server speaks the subset of the
socketcand protocol (linux-can/socketcand, ``doc/protocol.md``) that client uses: ``< hi >``,
``< open CH >``, ``< rawmode >``, then ``< send ... >`` from clients and ``< frame ... >`` to them.

There is no background thread: all socket work happens inside :meth:`~SocketcandServerBus.recv`
and :meth:`~SocketcandServerBus.send`, on the owner's schedule.  The bus is not thread-safe: call
it from one thread at a time.
"""
from __future__ import annotations

import logging
import re
import select
import socket
import time
from collections import deque
from typing import Optional

import can

__all__ = ["SocketcandServerBus", "format_frame", "parse_send"]

log = logging.getLogger(__name__)

MAX_COMMAND = 200           # chars after '<' with no '>': garbage (python-can's client uses 200 too)
MAX_PENDING = 64 * 1024     # bytes queued for one client beyond its kernel buffer: it is not reading
HANDSHAKE_HOLDOFF_S = 0.05  # [s] see _Client.hold_until
_SFF_MASK, _EFF_MASK = 0x7FF, 0x1FFFFFFF
# '< send ID DLC B0 .. B7 >': socketcand reads it with sscanf (DLC decimal, bytes hex, any spaces);
# python-can writes DLC in hex, the same digits for 0..8.  An 8-digit ID is an extended one.
_SEND_RE = re.compile(r"< +send +([0-9A-Fa-f]{1,8}) +([0-9]{1,2})((?: +[0-9A-Fa-f]{1,2})*) *>")
_OPEN_RE = re.compile(r"< +open +(\S+) *>")
_RAWMODE_RE = re.compile(r"< +rawmode *>")

# Replies of the real socketcand (src/state_nobus.c, src/state_raw.c).
_HI, _OK = b"< hi >", b"< ok >"
_NO_BUS = b"< error could not open bus >"
_UNKNOWN = b"< error unknown command >"


def format_frame(msg: can.Message) -> Optional[str]:
    """``msg`` as socketcand sends a received frame: ``< frame ID SEC.USEC HEXDATA >``.

    The ID has 3 hex digits (standard) or 8 (extended); the data is contiguous hex.  The timestamp
    is ``msg.timestamp``, or now if it is 0.  Error frames become ``< error CLASS SEC.USEC >``.
    Remote frames return None: socketcand does not carry them.  Raises ValueError for a frame no
    classic CAN bus can carry (ID out of range, more than 8 bytes, CAN FD).
    """
    if msg.is_remote_frame:
        return None
    data = bytes(msg.data[:msg.dlc])
    if msg.is_fd or msg.dlc > 8 or len(data) != msg.dlc:
        raise ValueError(f"not a classic CAN frame (dlc {msg.dlc}, {len(msg.data)} data bytes)")
    usec = int(round(max(msg.timestamp or time.time(), 0.0) * 1e6))
    stamp = "%d.%06d" % divmod(usec, 1_000_000)
    if msg.is_error_frame:
        return f"< error {msg.arbitration_id & _EFF_MASK:03X} {stamp} >"
    mask, width = (_EFF_MASK, 8) if msg.is_extended_id else (_SFF_MASK, 3)
    if not 0 <= msg.arbitration_id <= mask:
        raise ValueError(f"arbitration id 0x{msg.arbitration_id:X} out of range")
    return f"< frame {msg.arbitration_id:0{width}X} {stamp} {data.hex().upper()} >"


def parse_send(text: str) -> Optional[can.Message]:
    """The frame of one ``< send ID DLC B0 B1 ... >`` command, or None if it is not a valid one.

    Never raises.  As in socketcand, DLC must equal the number of data bytes and be at most 8,
    and an 8-digit ID is extended; IDs of 1-3 digits are standard, other lengths are invalid.
    """
    m = _SEND_RE.fullmatch(text)
    if m is None:
        return None
    id_text, dlc, data = m.group(1), int(m.group(2)), m.group(3).split()
    if dlc > 8 or len(data) != dlc or len(id_text) not in (1, 2, 3, 8):
        return None
    extended, can_id = len(id_text) == 8, int(id_text, 16)
    if can_id > (_EFF_MASK if extended else _SFF_MASK):
        return None
    return can.Message(timestamp=time.time(), arbitration_id=can_id, is_extended_id=extended,
                       data=bytes(int(b, 16) for b in data), is_rx=True)


class _Client:
    """One TCP connection: handshake state, unparsed input, output not yet taken by the kernel."""
    __slots__ = ("sock", "name", "state", "inbuf", "out", "hold_until")

    def __init__(self, sock: socket.socket, name: str):
        self.sock, self.name, self.state = sock, name, "nobus"   # nobus -> open -> raw
        self.inbuf, self.out = "", bytearray()
        # python-can's client reads each handshake reply with ONE recv and compares it exactly, so
        # a frame that reaches it in the same recv as the rawmode '< ok >' fails its constructor.
        # Frames for a new raw client are therefore queued, not written, until this time.
        self.hold_until = 0.0


class SocketcandServerBus(can.BusABC):
    """A CAN bus whose other nodes are socketcand clients connected over TCP.

    A frame a raw-mode client sends is returned by :meth:`recv` and forwarded to every other
    raw-mode client (as SocketCAN shows one socket's frame to the others, so a logger sees the
    host's commands); :meth:`send` delivers a frame to every raw-mode client.

    Writes never block: each client has an output queue, written with non-blocking sends in every
    :meth:`send` and :meth:`recv` (so frames flow only while the owner calls them).  A client
    with more than ``MAX_PENDING`` bytes queued is not reading: it is dropped with a warning.
    Bad input (garbage, a malformed or unknown command, more than ``MAX_COMMAND`` chars without
    '>') is counted in ``bad_commands`` and discarded; a client that hangs up is dropped.

    Counters: ``frames_in`` (valid frames from clients), ``frames_out`` (frames accepted by
    :meth:`send`, once each whatever the number of clients), ``bad_commands``.
    """

    def __init__(self, channel: str = "can0", host: str = "127.0.0.1", port: int = 0,
                 handshake_holdoff_s: float = HANDSHAKE_HOLDOFF_S, **kwargs):
        """Listen on ``host:port`` (port 0: a free one, see :attr:`port`) for bus ``channel``.

        handshake_holdoff_s [s]: how long frames for a client that has just entered raw mode are
        held back (queued, not lost), so they cannot arrive together with its rawmode '< ok >'.
        """
        self.handshake_holdoff_s = handshake_holdoff_s
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._listener.bind((host, port))
            self._listener.listen(8)
            self._listener.setblocking(False)
            self._port = self._listener.getsockname()[1]
        except OSError as e:
            self._listener.close()
            raise can.CanInitializationError(f"cannot listen on {host}:{port}: {e}") from e
        self._clients: dict[socket.socket, _Client] = {}
        self._rx: deque[can.Message] = deque()   # parsed frames beyond the one recv returns
        self.frames_in = self.frames_out = self.bad_commands = 0
        self.channel = channel
        self.channel_info = f"socketcand server for {channel} on {host}:{self.port}"
        super().__init__(channel=channel, **kwargs)

    @property
    def port(self) -> int:
        """The TCP port the server listens on."""
        return self._port

    @property
    def clients(self) -> int:
        """Number of connected clients, in any handshake state."""
        return len(self._clients)

    def _recv_internal(self, timeout: Optional[float]) -> tuple[Optional[can.Message], bool]:
        if self._is_shutdown:
            raise can.CanOperationError("socketcand server is shut down")
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._rx:
            now, writers = time.monotonic(), []
            wait = None if deadline is None else max(deadline - now, 0.0)
            for c in list(self._clients.values()):
                if c.out and c.hold_until > now:   # wake up in time to write held frames
                    wait = c.hold_until - now if wait is None else min(wait, c.hold_until - now)
                elif c.out:
                    self._queue(c, b"")
                    if c.out and c.sock in self._clients:
                        writers.append(c.sock)      # the rest when the kernel takes more
            readable, _, _ = select.select([self._listener, *self._clients], writers, [], wait)
            for sock in readable:
                if sock is self._listener:
                    self._accept()
                elif sock in self._clients:
                    self._read(self._clients[sock])
            if deadline is not None and time.monotonic() >= deadline:
                break
        return (self._rx.popleft() if self._rx else None), False

    def send(self, msg: can.Message, timeout: Optional[float] = None) -> None:
        """Deliver ``msg`` to every raw-mode client; never blocks (``timeout`` is ignored).

        Raises ValueError for a frame classic CAN cannot carry; remote frames are skipped, as
        socketcand does.  Raises CanOperationError after :meth:`shutdown`.
        """
        if self._is_shutdown:
            raise can.CanOperationError("socketcand server is shut down")
        text = format_frame(msg)
        if text is not None:
            self.frames_out += 1
            self._forward(text.encode("ascii"), None)

    def shutdown(self) -> None:
        """Close the listening socket and every client connection; safe to call again."""
        if self._is_shutdown:
            return
        super().shutdown()
        for client in list(self._clients.values()):
            self._drop(client)
        self._listener.close()

    def _accept(self) -> None:
        try:
            sock, addr = self._listener.accept()
        except OSError:   # the peer gave up between select and accept
            return
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)   # no 40 ms Nagle delay per frame
        client = self._clients[sock] = _Client(sock, "%s:%d" % addr[:2])
        self._queue(client, _HI)

    def _read(self, client: _Client) -> None:
        try:
            data = client.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError as e:
            data = b""
            log.info("socketcand client %s: %s", client.name, e)
        if not data:   # hung up
            return self._drop(client)
        # latin-1 maps every byte to a char, so garbage cannot raise; valid commands are ASCII
        buf, pos = client.inbuf + data.decode("latin-1"), 0
        while client.sock in self._clients:
            start = buf.find("<", pos)
            if (buf[pos:] if start < 0 else buf[pos:start]).strip():
                self.bad_commands += 1        # text outside '< >'
            if start < 0:
                buf = ""
                break
            end = buf.find(">", start)
            if end < 0:
                if len(buf) - start > MAX_COMMAND:
                    self.bad_commands += 1
                    start = len(buf)
                buf = buf[start:]
                break
            self._command(client, buf[start:end + 1])
            pos = end + 1
        client.inbuf = buf

    def _command(self, client: _Client, text: str) -> None:
        opened = _OPEN_RE.fullmatch(text) if client.state == "nobus" else None
        if client.state == "raw":
            msg = parse_send(text)
            if msg is None:
                if text == "< echo >":   # socketcand's keep-alive probe
                    return self._queue(client, text.encode("ascii"))
                # silently, as socketcand treats a bad '< send >': python-can's client would
                # fail to parse an '< error unknown command >' reply
                self.bad_commands += 1
                return
            msg.channel = self.channel
            self.frames_in += 1
            self._rx.append(msg)
            self._forward(format_frame(msg).encode("ascii"), client)
        elif opened and opened.group(1) == self.channel:
            client.state = "open"
            self._queue(client, _OK)
        elif opened:   # socketcand answers this and closes the connection
            self._queue(client, _NO_BUS)
            self._drop(client)
        elif client.state == "open" and _RAWMODE_RE.fullmatch(text):
            client.state = "raw"
            self._queue(client, _OK)
            client.hold_until = time.monotonic() + self.handshake_holdoff_s   # after the ok
        else:
            self.bad_commands += 1
            self._queue(client, _UNKNOWN)

    def _forward(self, data: bytes, source: Optional[_Client]) -> None:
        for client in list(self._clients.values()):
            if client.state == "raw" and client is not source:
                self._queue(client, data)

    def _queue(self, client: _Client, data: bytes) -> None:
        """Queue ``data`` for ``client``, write what the kernel takes, drop a client not reading."""
        client.out += data
        if client.hold_until > time.monotonic():
            return    # held frames are bounded by the hold-off time, not by MAX_PENDING
        try:
            del client.out[:client.sock.send(client.out)]   # a partial write keeps the rest, in order
        except BlockingIOError:
            pass
        except OSError as e:
            log.info("socketcand client %s: %s; dropped", client.name, e)
            return self._drop(client)
        if len(client.out) > MAX_PENDING:
            log.warning("socketcand client %s is not reading (%d bytes queued); dropped",
                        client.name, len(client.out))
            self._drop(client)

    def _drop(self, client: _Client) -> None:
        self._clients.pop(client.sock, None)
        client.sock.close()
