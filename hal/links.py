"""Opening the GIL-free CAN link of the real-time tick (:mod:`hal._link`) from a bus configuration.

The tick's own reads and writes go through a link when the interface has one
(``socketcan`` on the board, ``socketcand`` for the simulator's gateway); set-up
(driver commissioning, shutdown) and every other tool use python-can
(:func:`hal.bus.open_bus`).  Each opens its own socket on the same bus, as
``candump`` does beside an application.  Other interfaces reach the tick through
:class:`hal._link.PyCanLink` (python-can, not real-time safe); :class:`LinkBus` is
the other way round, python-can's interface on a link (the lock-step simulator
commissions the driver through :mod:`hal.ak` on its in-process link).
"""
from __future__ import annotations

import socket
import struct
import time
from typing import Iterable, Optional, Sequence

import can

from hal._link import FrameLink, SocketCanLink, SocketcandLink
from hal.bus import BusConfig, socketcan_available
from hal.errors import ConfigError, HalError

__all__ = ["open_link", "LINK_INTERFACES", "FrameLink", "LinkBus", "can_filters", "tick_rx_ids"]

_EXTENDED, _REMOTE, _ERROR = 1, 2, 4       # hal._link's LINK_* flags

_CAN_RAW_ERR_FILTER = 2
_CAN_ERR_MASK = 0x1FFFFFFF

#: Interfaces with a GIL-free link; others run the tick's I/O through python-can.
LINK_INTERFACES = ("socketcan", "socketcand")


# linux/can.h: CAN_RAW_FILTER, and the bits of a filter's mask (exact id, standard, data frame)
_CAN_RAW_FILTER = 1
_CAN_SFF_MASK, _CAN_EFF_FLAG, _CAN_RTR_FLAG = 0x7FF, 0x80000000, 0x40000000
#: How many ids a receive filter may name (more: the tick reads everything, as without one).
MAX_FILTER_IDS = 64


def tick_rx_ids(codec) -> tuple:
    """Every standard id the tick reads: the sensor node's frames and the drive's (``codec.rx_ids``)."""
    from hal._sensor_frames import IMU_ID, LOAD_ID, SOUND_ID, STATUS_ID
    return tuple(sorted({IMU_ID, LOAD_ID, STATUS_ID, SOUND_ID, *codec.rx_ids}))


def can_filters(rx_ids: Iterable[int]) -> bytes:
    """The CAN_RAW_FILTER option for ``rx_ids``: one ``struct can_filter`` (can_id, can_mask) per id,
    each passing only standard data frames of exactly that id.  The kernel then wakes the tick
    for no other frame on the bus (another device's traffic never reaches its read phase).
    ValueError for an id that is not a standard CAN id, or more than :data:`MAX_FILTER_IDS`."""
    ids = sorted(set(rx_ids))
    if not ids or len(ids) > MAX_FILTER_IDS:
        raise ValueError(f"a receive filter names 1..{MAX_FILTER_IDS} ids, got {len(ids)}")
    for i in ids:
        if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i <= _CAN_SFF_MASK:
            raise ValueError(f"receive filter: {i!r} is not a standard CAN id (0..0x7FF)")
    mask = _CAN_SFF_MASK | _CAN_EFF_FLAG | _CAN_RTR_FLAG
    return b"".join(struct.pack("=II", i, mask) for i in ids)


def open_link(cfg: BusConfig, timeout_s: float = 2.0,
              rx_ids: Optional[Sequence[int]] = None) -> Optional[FrameLink]:
    """A connected, non-blocking link for ``cfg``, or None if the interface has none.

    ``rx_ids``: the ids the tick reads (:func:`tick_rx_ids`); on SocketCAN the kernel filters on
    them (error frames still pass: the tick counts them).  socketcand's raw mode has no filter
    command, so there the tick's own id check does it (the codec's ``listens``)."""
    if cfg.interface == "socketcan":
        return _open_socketcan(cfg, rx_ids)
    if cfg.interface == "socketcand":
        return _open_socketcand(cfg, timeout_s)
    return None


def _open_socketcan(cfg: BusConfig, rx_ids: Optional[Sequence[int]] = None) -> SocketCanLink:
    if not hasattr(socket, "AF_CAN"):
        raise ConfigError("bus.interface: this Python has no AF_CAN sockets (SocketCAN needs Linux)")
    if not socketcan_available(cfg.channel):
        raise ConfigError(f"bus.channel: SocketCAN interface {cfg.channel!r} is missing or down; bring it "
                          f"up with `sudo ip link set {cfg.channel} up type can bitrate {cfg.bitrate}`")
    try:
        sock = socket.socket(socket.AF_CAN, socket.SOCK_RAW, socket.CAN_RAW)
    except OSError as e:
        raise HalError(f"cannot open a CAN_RAW socket: {e} (is the kernel's can-raw module loaded?)") from e
    try:
        if cfg.receive_own_messages:
            sock.setsockopt(socket.SOL_CAN_RAW, socket.CAN_RAW_RECV_OWN_MSGS, 1)
        # error frames are reported to the tick, which counts bus errors (Python's socket module
        # does not name CAN_RAW_ERR_FILTER; linux/can/raw.h gives it 2, CAN_ERR_MASK 0x1FFFFFFF)
        sock.setsockopt(socket.SOL_CAN_RAW, getattr(socket, "CAN_RAW_ERR_FILTER", _CAN_RAW_ERR_FILTER),
                        _CAN_ERR_MASK)
        if rx_ids is not None:
            sock.setsockopt(socket.SOL_CAN_RAW, getattr(socket, "CAN_RAW_FILTER", _CAN_RAW_FILTER),
                            can_filters(rx_ids))
        sock.bind((cfg.channel,))
        sock.setblocking(False)
    except OSError as e:
        sock.close()
        raise HalError(f"cannot bind a CAN_RAW socket to {cfg.channel!r}: {e}") from e
    return SocketCanLink(sock.detach())


def _expect(sock: socket.socket, reply: bytes, what: str) -> None:
    got = b""
    while not got.endswith(b">"):
        chunk = sock.recv(256)
        if not chunk:
            raise HalError(f"socketcand server closed the connection during {what}")
        got += chunk
        if len(got) > 256:
            break
    if got.strip() != reply:
        raise HalError(f"socketcand {what}: expected {reply.decode()!r}, got {got.decode(errors='replace')!r}")


def _open_socketcand(cfg: BusConfig, timeout_s: float) -> SocketcandLink:
    try:
        sock = socket.create_connection((cfg.host, cfg.port), timeout=timeout_s)
    except OSError as e:
        raise HalError(f"cannot reach the socketcand server at {cfg.host}:{cfg.port}: {e}") from e
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)   # one frame, one segment, now
        _expect(sock, b"< hi >", "greeting")
        sock.sendall(f"< open {cfg.channel} >".encode())
        _expect(sock, b"< ok >", f"open {cfg.channel}")
        sock.sendall(b"< rawmode >")
        _expect(sock, b"< ok >", "rawmode")
        sock.setblocking(False)
    except (OSError, HalError) as e:
        sock.close()
        if isinstance(e, HalError):
            raise
        raise HalError(f"socketcand handshake with {cfg.host}:{cfg.port} failed: {e}") from e
    return SocketcandLink(sock.detach())


class LinkBus(can.BusABC):
    """python-can's bus interface on a :class:`~hal._link.FrameLink`, for set-up over the tick's link.

    The lock-step simulator commissions the driver through :mod:`hal.ak` (a python-can bus
    user) on the same in-process link its tick then runs on.  Set-up only, never the tick:
    ``recv`` with a timeout polls the link every ``poll_s`` (the links do not block).  A link
    error is python-can's ``CanOperationError``.  ``shutdown`` leaves the link open (it is the
    caller's).
    """

    def __init__(self, link: FrameLink, poll_s: float = 0.0002, **kwargs):
        if not isinstance(link, FrameLink):
            raise TypeError(f"LinkBus needs a hal._link.FrameLink, got {type(link).__name__}")
        self.link = link
        self.poll_s = poll_s
        self.channel_info = f"{type(link).__name__}"
        super().__init__(channel=None, **kwargs)

    def send(self, msg: can.Message, timeout: Optional[float] = None) -> None:
        flags = ((_EXTENDED if msg.is_extended_id else 0) | (_REMOTE if msg.is_remote_frame else 0)
                 | (_ERROR if msg.is_error_frame else 0))
        try:
            self.link.transmit(msg.arbitration_id, bytes(msg.data), flags)
        except (OSError, ValueError) as e:
            raise can.CanOperationError(f"{self.channel_info}: {e}") from e

    def _recv_internal(self, timeout: Optional[float]):
        end = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                got = self.link.receive()
            except OSError as e:
                raise can.CanOperationError(f"{self.channel_info}: {e}") from e
            if got is not None:
                can_id, data, flags = got
                return can.Message(arbitration_id=can_id, data=data, is_extended_id=bool(flags & _EXTENDED),
                                   is_remote_frame=bool(flags & _REMOTE), is_error_frame=bool(flags & _ERROR),
                                   timestamp=time.time()), False
            left_s = None if end is None else end - time.monotonic()
            if left_s is not None and left_s <= 0:
                return None, False
            time.sleep(self.poll_s if left_s is None else min(self.poll_s, left_s))
