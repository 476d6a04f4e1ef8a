"""Generic motor-driver base: lifecycle, blocking set-up exchanges, reply matching.

A concrete driver (e.g. ``hal.ak.AKDriver``) only says how to encode frames and decode a reply.
Everything here is for set-up, tools and tests; the control tick builds and parses frames with
the Cython codecs (``hal/_mit.pxd``) and never raises.

Lifecycle (after ros2_control hardware components)::

    UNCONFIGURED --configure()--> INACTIVE --activate()--> ACTIVE
                                  INACTIVE <--deactivate()-- ACTIVE
    any state --shutdown()--> FINALIZED

INACTIVE: link up, replies readable, no torque; ``set_zero()`` only here.
ACTIVE: torque allowed; ``command_message()`` only here.
"""
from __future__ import annotations

import abc
import contextlib
import enum
import math
import time
from dataclasses import dataclass

import can

from .errors import ConfigError, DriverFault, DriverTimeout, HalError, LifecycleError

__all__ = ["DriverState", "MotorReply", "MotorDriver"]

_MAX_STALE_FRAMES = 1000   # bound on frames discarded before a set-up request


class DriverState(enum.Enum):
    """Lifecycle state of a motor driver object."""

    UNCONFIGURED = "unconfigured"
    INACTIVE = "inactive"
    ACTIVE = "active"
    FINALIZED = "finalized"


@dataclass(frozen=True)
class MotorReply:
    """One decoded driver reply, output-shaft units.

    temperature_C and error_code are None for replies that do not carry them (AK firmware that
    replies with DLC 6).  error_text is "none" for code 0, None when error_code is None.
    """

    driver_id: int
    position_rad: float
    velocity_rad_s: float
    torque_Nm: float
    temperature_C: int | None
    error_code: int | None
    error_text: str | None


class MotorDriver(abc.ABC):
    """Base of every motor driver: owns the bus handle, node id, state checks and timeouts.

    The bus is passed in and stays the caller's (``shutdown()`` does not close it).
    Subclasses provide the hooks ``_enter_payload``, ``_exit_payload``, ``_zero_payload``,
    ``_encode_command``, ``_decode_reply``, ``reply_arbitration_id`` and may extend
    ``_configure`` (the commissioning check) and ``command_arbitration_id``.
    """

    def __init__(self, bus: can.BusABC, node_id: int):
        if not (hasattr(bus, "send") and hasattr(bus, "recv")):
            raise ConfigError(f"bus: expected a python-can bus, got {type(bus).__name__}")
        if isinstance(node_id, bool) or not isinstance(node_id, int) or not 0 <= node_id <= 0x7FF:
            raise ConfigError(f"node_id: must be an integer in 0..0x7FF, got {node_id!r}")
        self._bus = bus
        self._node_id = node_id
        self._state = DriverState.UNCONFIGURED

    # --- hooks ------------------------------------------------------------------------------------

    @property
    @abc.abstractmethod
    def reply_arbitration_id(self) -> int:
        """CAN id the driver's replies arrive on."""

    @property
    def command_arbitration_id(self) -> int:
        """CAN id of host->driver frames (default: the node id)."""
        return self._node_id

    is_extended_id: bool = False
    """Whether this driver's frames use 29-bit ids."""

    def _configure(self) -> None:
        """Commissioning check, run by ``configure()``; raise ConfigError to refuse."""

    @abc.abstractmethod
    def _enter_payload(self) -> bytes:
        """Payload that arms the driver (torque allowed)."""

    @abc.abstractmethod
    def _exit_payload(self) -> bytes:
        """Payload that disarms the driver."""

    @abc.abstractmethod
    def _zero_payload(self) -> bytes:
        """Payload that makes the current position the driver's zero."""

    @abc.abstractmethod
    def _encode_command(self, p_rad: float, v_rad_s: float, kp_Nm_rad: float,
                        kd_Nms_rad: float, t_Nm: float) -> bytes:
        """Payload of one command; ValueError on NaN/Inf."""

    @abc.abstractmethod
    def _decode_reply(self, msg: can.Message) -> MotorReply | None:
        """Decode ``msg`` (already on ``reply_arbitration_id``); None if not this driver's reply."""

    # --- public -----------------------------------------------------------------------------------

    @property
    def state(self) -> DriverState:
        """Current lifecycle state."""
        return self._state

    @property
    def node_id(self) -> int:
        """The driver's id on the bus."""
        return self._node_id

    @property
    def bus(self) -> can.BusABC:
        """The bus this driver talks on (owned by the caller)."""
        return self._bus

    def rebind(self, bus: can.BusABC) -> None:
        """Talk on ``bus`` from now on: another connection to the same CAN bus (state is kept).

        The real-time runtime commissions the driver through python-can, ticks on a
        GIL-free link of its own, and opens a fresh python-can connection for the shutdown.
        """
        if not (hasattr(bus, "send") and hasattr(bus, "recv")):
            raise ConfigError(f"bus: expected a python-can bus, got {type(bus).__name__}")
        self._bus = bus

    def configure(self) -> None:
        """UNCONFIGURED -> INACTIVE after the commissioning check (ConfigError: stays put)."""
        self._require("configure", DriverState.UNCONFIGURED)
        self._configure()
        self._state = DriverState.INACTIVE

    def activate(self, timeout_s: float = 0.1) -> MotorReply:
        """INACTIVE -> ACTIVE: send the enter frame and wait for this driver's reply.

        On DriverTimeout or DriverFault an exit frame is sent (best effort, in case the driver
        did arm) and the state stays INACTIVE.
        """
        self._require("activate", DriverState.INACTIVE)
        try:
            reply = self._exchange(self._enter_payload(), timeout_s, "enter motor mode")
            self._check_fault(reply, "enter motor mode")
        except (DriverTimeout, DriverFault):
            self._send_best_effort(self._exit_payload())
            raise
        self._state = DriverState.ACTIVE
        return reply

    def deactivate(self, timeout_s: float = 0.1) -> MotorReply:
        """ACTIVE -> INACTIVE: send the exit frame and wait for the reply.

        On DriverTimeout the state stays ACTIVE (the driver may still be armed): retry, or
        cut power.  A reply with an error code still completes the transition, then raises
        DriverFault.
        """
        self._require("deactivate", DriverState.ACTIVE)
        reply = self._exchange(self._exit_payload(), timeout_s, "exit motor mode")
        self._state = DriverState.INACTIVE
        self._check_fault(reply, "exit motor mode")
        return reply

    def set_zero(self, timeout_s: float = 0.1) -> MotorReply:
        """Make the present position zero (INACTIVE only: never re-zero under torque)."""
        self._require("set_zero", DriverState.INACTIVE)
        reply = self._exchange(self._zero_payload(), timeout_s, "set zero")
        self._check_fault(reply, "set zero")
        return reply

    def shutdown(self, timeout_s: float = 0.1) -> None:
        """Any state -> FINALIZED; disarms first if ACTIVE.  Idempotent.

        The state is FINALIZED even if disarming fails; the DriverTimeout / DriverFault is then
        re-raised so the caller knows the driver may still be armed.
        """
        if self._state is DriverState.FINALIZED:
            return
        was_active = self._state is DriverState.ACTIVE
        self._state = DriverState.FINALIZED
        if was_active:
            reply = self._exchange(self._exit_payload(), timeout_s, "exit motor mode (shutdown)")
            self._check_fault(reply, "exit motor mode (shutdown)")

    def command_message(self, p_rad: float, v_rad_s: float, kp_Nm_rad: float,
                        kd_Nms_rad: float, t_Nm: float) -> can.Message:
        """The command frame as plain data (no I/O); ACTIVE only.  ValueError on NaN/Inf.

        Values outside the driver's range are clamped by the encoding.
        """
        self._require("command_message", DriverState.ACTIVE)
        data = self._encode_command(p_rad, v_rad_s, kp_Nm_rad, kd_Nms_rad, t_Nm)
        return self._message(data)

    def decode_reply(self, msg: can.Message) -> MotorReply | None:
        """This driver's reply in ``msg``, or None if ``msg`` is anything else."""
        if (msg.is_error_frame or msg.is_remote_frame or msg.is_extended_id != self.is_extended_id
                or msg.arbitration_id != self.reply_arbitration_id):
            return None
        return self._decode_reply(msg)

    # --- internals --------------------------------------------------------------------------------

    def _require(self, op: str, *allowed: DriverState) -> None:
        if self._state not in allowed:
            need = " or ".join(s.name for s in allowed)
            raise LifecycleError(f"driver {self._node_id:#x}: {op}() needs state {need}, "
                                 f"state is {self._state.name}")

    def _message(self, data: bytes) -> can.Message:
        return can.Message(arbitration_id=self.command_arbitration_id,
                           is_extended_id=self.is_extended_id, dlc=len(data), data=data)

    def _send(self, data: bytes) -> None:
        try:
            self._bus.send(self._message(data))
        except can.CanError as e:
            raise HalError(f"driver {self._node_id:#x}: send failed: {e}") from e

    def _send_best_effort(self, data: bytes) -> None:
        # Used on the way out of a failed set-up (the exit frame): the original error is what
        # the caller must see, so a failure to send this one is not allowed to replace it.
        with contextlib.suppress(HalError):
            self._send(data)

    def _exchange(self, data: bytes, timeout_s: float, what: str) -> MotorReply:
        """Send ``data`` and wait up to ``timeout_s`` for this driver's reply."""
        if isinstance(timeout_s, bool) or not isinstance(timeout_s, (int, float)) \
                or not math.isfinite(timeout_s) or timeout_s <= 0:
            raise ValueError(f"timeout_s must be a finite number > 0, got {timeout_s!r}")
        # The reply carries no request id: drop what is already queued, so a late reply to an
        # earlier request is not taken for this one.
        for _ in range(_MAX_STALE_FRAMES):
            if self._recv(0.0) is None:
                break
        self._send(data)
        deadline = time.monotonic() + timeout_s
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            msg = self._recv(remaining)
            if msg is None:
                break
            reply = self.decode_reply(msg)
            if reply is not None:
                return reply
        raise DriverTimeout(f"driver {self._node_id:#x}: no reply to {what} within {timeout_s} s")

    def _recv(self, timeout_s: float) -> can.Message | None:
        try:
            return self._bus.recv(timeout_s)
        except can.CanError as e:
            raise HalError(f"driver {self._node_id:#x}: receive failed: {e}") from e

    def _check_fault(self, reply: MotorReply, what: str) -> None:
        if reply.error_code:   # None (short reply) and 0 are fine
            raise DriverFault(f"driver {self._node_id:#x}: {what}: error {reply.error_code} "
                              f"({reply.error_text})", reply.error_code, reply.error_text or "")
