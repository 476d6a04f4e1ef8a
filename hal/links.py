"""Opening the GIL-free CAN link of the real-time tick (:mod:`hal._link`) from a bus configuration.

The tick's own reads and writes go through a link when the interface has one
(``socketcan`` on the board, ``socketcand`` for the simulator's gateway); set-up
(driver commissioning, shutdown) and every other tool use python-can
(:func:`hal.bus.open_bus`).  Each opens its own socket on the same bus, as
``candump`` does beside an application.
"""
from __future__ import annotations

import socket
from typing import Optional

from hal._link import FrameLink, SocketCanLink, SocketcandLink
from hal.bus import BusConfig, socketcan_available
from hal.errors import ConfigError, HalError

__all__ = ["open_link", "LINK_INTERFACES", "FrameLink"]

_CAN_RAW_ERR_FILTER = 2
_CAN_ERR_MASK = 0x1FFFFFFF

#: Interfaces with a GIL-free link; others run the tick's I/O through python-can.
LINK_INTERFACES = ("socketcan", "socketcand")


def open_link(cfg: BusConfig, timeout_s: float = 2.0) -> Optional[FrameLink]:
    """A connected, non-blocking link for ``cfg``, or None if the interface has none."""
    if cfg.interface == "socketcan":
        return _open_socketcan(cfg)
    if cfg.interface == "socketcand":
        return _open_socketcand(cfg, timeout_s)
    return None


def _open_socketcan(cfg: BusConfig) -> SocketCanLink:
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
