"""Opening a CAN bus from configuration.

The bus is always an object the caller owns and passes on (to drivers, to the loop); there is no
global bus.  Any python-can interface works ('virtual', 'socketcan', 'udp_multicast', 'slcan', ...).
"""
from __future__ import annotations

import os
import socket
from dataclasses import dataclass, fields
from typing import Any, Mapping

import can

from .errors import ConfigError, HalError

__all__ = ["BusConfig", "open_bus", "socketcan_available", "socketcan_channels"]

_SYS_NET = "/sys/class/net"
_ARPHRD_CAN = "280"     # /sys/class/net/<if>/type of CAN and vcan interfaces
_IFF_UP = 0x1
_MAX_BITRATE = 1_000_000  # classic CAN


@dataclass(frozen=True)
class BusConfig:
    """Where the CAN bus is.

    interface: python-can interface name, e.g. 'socketcan', 'virtual'.
    channel: interface channel, e.g. 'can0'.
    bitrate: [bit/s]; for SocketCAN it is set with ``ip link``, not here.
    receive_own_messages: whether frames this process sends are also received by it.
    host, port: the server of a network bus ('socketcand': the daemon's TCP address; the
    simulator's gateway in ``ankle sim --realtime``); unused by other interfaces.
    """

    interface: str
    channel: str
    bitrate: int = 1_000_000
    receive_own_messages: bool = False
    host: str = ""
    port: int = 0

    @classmethod
    def from_mapping(cls, d: Mapping[str, Any], prefix: str = "bus") -> "BusConfig":
        """Build from a mapping (e.g. a parsed config file section), checking every field.

        Raises ConfigError naming the missing, unknown or bad field as ``<prefix>.<field>``.
        """
        if not isinstance(d, Mapping):
            raise ConfigError(f"{prefix}: expected a mapping, got {type(d).__name__}")
        known = {f.name for f in fields(cls)}
        for key in d:
            if key not in known:
                raise ConfigError(f"{prefix}.{key}: unknown field (known: {', '.join(sorted(known))})")
        for key in ("interface", "channel"):
            if key not in d:
                raise ConfigError(f"{prefix}.{key}: missing")
            if not isinstance(d[key], str) or not d[key].strip():
                raise ConfigError(f"{prefix}.{key}: must be a non-empty string, got {d[key]!r}")
        if d["interface"] not in can.interfaces.VALID_INTERFACES:
            raise ConfigError(f"{prefix}.interface: unknown python-can interface {d['interface']!r}")
        bitrate = d.get("bitrate", 1_000_000)
        if isinstance(bitrate, bool) or not isinstance(bitrate, int) or not 0 < bitrate <= _MAX_BITRATE:
            raise ConfigError(f"{prefix}.bitrate: must be an integer in 1..{_MAX_BITRATE} bit/s, "
                              f"got {bitrate!r}")
        own = d.get("receive_own_messages", False)
        if not isinstance(own, bool):
            raise ConfigError(f"{prefix}.receive_own_messages: must be true or false, got {own!r}")
        host, port = d.get("host", ""), d.get("port", 0)
        if d["interface"] == "socketcand":
            if not isinstance(host, str) or not host.strip():
                raise ConfigError(f"{prefix}.host: socketcand needs the server's host name or address, "
                                  f"got {host!r}")
            if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
                raise ConfigError(f"{prefix}.port: socketcand needs a TCP port in 1..65535, got {port!r}")
        return cls(d["interface"], d["channel"], bitrate, own, host, port)


def socketcan_channels() -> list[str]:
    """Names of the CAN network interfaces (can*, vcan*, ...) in this kernel, up or down."""
    try:
        names = os.listdir(_SYS_NET)
    except OSError:
        return []
    return sorted(n for n in names if _read_sys(n, "type") == _ARPHRD_CAN)


def socketcan_available(channel: str) -> bool:
    """True if ``channel`` is a CAN network interface that is administratively up."""
    if not channel or "/" in channel or channel in (".", ".."):
        return False
    if _read_sys(channel, "type") != _ARPHRD_CAN:
        return False
    flags = _read_sys(channel, "flags")
    try:
        return bool(int(flags, 16) & _IFF_UP)
    except (TypeError, ValueError):
        return False


def _read_sys(ifname: str, attr: str) -> str | None:
    try:
        with open(os.path.join(_SYS_NET, ifname, attr)) as f:
            return f.read().strip()
    except OSError:
        return None


def open_bus(cfg: BusConfig) -> can.BusABC:
    """Open the bus described by ``cfg``; the caller owns it and must ``shutdown()`` it.

    For SocketCAN the channel is checked first: ConfigError with the ``ip link`` command to run
    if it is missing, not a CAN interface, or down.  An interface python-can cannot load raises
    ConfigError; other failures to open raise HalError; both keep python-can's error as cause.
    """
    if cfg.interface == "socketcan" and not socketcan_available(cfg.channel):
        state = "down" if _read_sys(cfg.channel, "type") == _ARPHRD_CAN else "not found"
        raise ConfigError(
            f"bus.channel: SocketCAN interface {cfg.channel!r} {state}; bring it up with "
            f"`sudo ip link set {cfg.channel} up type can bitrate {cfg.bitrate}`")
    extra = {}
    if cfg.interface == "socketcand":
        # python-can's client retries for 10 s and then names neither host nor port: ask first
        try:
            socket.create_connection((cfg.host, cfg.port), timeout=2.0).close()
        except OSError as e:
            raise HalError(f"cannot reach the socketcand server at {cfg.host}:{cfg.port}: "
                           f"{e.strerror or e}") from e
        # tcp_tune: TCP_NODELAY and QUICKACK, or Nagle holds each frame back up to 40 ms
        extra = {"host": cfg.host, "port": cfg.port, "tcp_tune": True}
    try:
        return can.Bus(interface=cfg.interface, channel=cfg.channel, bitrate=cfg.bitrate,
                       receive_own_messages=cfg.receive_own_messages, **extra)
    except can.CanInterfaceNotImplementedError as e:
        raise ConfigError(f"bus.interface: {cfg.interface!r} is not usable here: {e}") from e
    except (can.CanError, OSError) as e:
        raise HalError(f"cannot open {cfg.interface} bus on {cfg.channel!r}: {e}") from e
