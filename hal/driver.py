"""The base of every motor drive's set-up: lifecycle, bus I/O, one-line errors.

A drive's set-up class (``hal.ak.AKDriver``, ``hal.odrive.OdriveDriver``, ``hal.cia402.Cia402Driver``;
chosen by name from :mod:`hal.drives`) brings the drive up, checks its own configuration against
what the controller expects and arms its loss-of-host protection, all before the tick starts; the
tick then talks to the drive through its per-tick codec (``hal._codec.DriveCodec``) and never
raises.  Everything here is for set-up, tools and tests.

Lifecycle (after ros2_control hardware components)::

    UNCONFIGURED --configure()--> INACTIVE --activate()--> ACTIVE --verify()--> (loop)
                                  INACTIVE <--deactivate()-- ACTIVE
    any state --shutdown()--> FINALIZED

INACTIVE: link up, no torque.  ACTIVE: torque allowed.  A subclass gives the hooks
``_configure`` (bring-up and checks), ``_activate`` / ``_deactivate`` (torque on / off, confirmed
by the drive), ``verify`` (the commissioning round trip), ``hold_messages`` (zero-torque frames
between commissioning and the first tick), ``torque_limit_Nm`` and ``torque_limit_for``.
:class:`ExchangeDriver` is the base of drives that answer every command frame with one reply
(the AK series in MIT mode).
"""
from __future__ import annotations

import abc
import contextlib
import enum
import math
import time
from dataclasses import dataclass
from typing import Any, List

import can

from .errors import ConfigError, DriverFault, DriverTimeout, HalError, LifecycleError

__all__ = ["DriverState", "MotorReply", "MotorDriver", "ExchangeDriver"]

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
    """Base of every drive's set-up: owns the bus handle, node id, lifecycle state and timeouts.

    The bus is passed in and stays the caller's (``shutdown()`` does not close it).
    """

    #: The drive table's name of this drive (hal.drives.DRIVES).
    name: str = ""
    #: How long ``activate()`` then ``verify()`` may take [s]: the runtime switches the drive on
    #: this much (and a margin) before the first tick.
    commission_s: float = 0.04
    is_extended_id: bool = False
    """Whether this driver's frames use 29-bit ids."""

    def __init__(self, bus: can.BusABC, node_id: int):
        if not (hasattr(bus, "send") and hasattr(bus, "recv")):
            raise ConfigError(f"bus: expected a python-can bus, got {type(bus).__name__}")
        if isinstance(node_id, bool) or not isinstance(node_id, int) or not 0 <= node_id <= 0x7FF:
            raise ConfigError(f"node_id: must be an integer in 0..0x7FF, got {node_id!r}")
        self._bus = bus
        self._node_id = node_id
        self._state = DriverState.UNCONFIGURED

    # --- hooks ------------------------------------------------------------------------------------

    @classmethod
    @abc.abstractmethod
    def torque_limit_for(cls, model: str, **options: Any) -> float:
        """The most torque [N*m, drive output shaft] a command to ``model`` may carry, from the
        model table alone (no bus): what the console and the parameter checks hold changes to."""

    @property
    @abc.abstractmethod
    def torque_limit_Nm(self) -> float:
        """The most torque [N*m, drive output shaft] its commands may carry (after configure())."""

    @property
    def model(self) -> str:
        """The model (a row of the drive's model table)."""
        return getattr(self, "_model", "")

    def _configure(self) -> None:
        """Bring-up and the checks of the drive's own configuration, run by ``configure()``;
        raise ConfigError (one line naming the drive setting) to refuse."""

    @abc.abstractmethod
    def _activate(self, timeout_s: float) -> Any:
        """Torque on, confirmed by the drive, its loss-of-host protection armed; on failure
        leave it off (best effort) and raise."""

    @abc.abstractmethod
    def _deactivate(self, timeout_s: float) -> Any:
        """Torque off, confirmed by the drive."""

    def verify(self, timeout_s: float = 0.1) -> Any:
        """The commissioning round trip (ACTIVE, before the loop sends any torque): does the
        drive do what its configuration says?  The base checks nothing."""
        self._require("verify", DriverState.ACTIVE)
        return {}

    @abc.abstractmethod
    def hold_messages(self) -> List[can.Message]:
        """Frames that command zero torque (ACTIVE): sent every few ms between commissioning
        and the first tick, so the drive's watchdog sees no longer gap than the loop's."""

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

    def activate(self, timeout_s: float = 0.1) -> Any:
        """INACTIVE -> ACTIVE: torque on, confirmed by the drive (on an error: stays INACTIVE)."""
        self._require("activate", DriverState.INACTIVE)
        result = self._activate(_checked_timeout(timeout_s))
        self._state = DriverState.ACTIVE
        return result

    def deactivate(self, timeout_s: float = 0.1) -> Any:
        """ACTIVE -> INACTIVE: torque off, confirmed by the drive.

        On DriverTimeout the state stays ACTIVE (the driver may still be armed): retry, or cut
        power.  A DriverFault with the reply still completes the transition (see the subclass).
        """
        self._require("deactivate", DriverState.ACTIVE)
        result = self._deactivate(_checked_timeout(timeout_s))
        self._state = DriverState.INACTIVE
        return result

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
            self._deactivate(_checked_timeout(timeout_s))

    # --- internals --------------------------------------------------------------------------------

    def _require(self, op: str, *allowed: DriverState) -> None:
        if self._state not in allowed:
            need = " or ".join(s.name for s in allowed)
            raise LifecycleError(f"driver {self._node_id:#x}: {op}() needs state {need}, "
                                 f"state is {self._state.name}")

    def _send_message(self, msg: can.Message) -> None:
        try:
            self._bus.send(msg)
        except can.CanError as e:
            raise HalError(f"driver {self._node_id:#x}: send failed: {e}") from e

    def _recv(self, timeout_s: float) -> can.Message | None:
        try:
            return self._bus.recv(timeout_s)
        except can.CanError as e:
            raise HalError(f"driver {self._node_id:#x}: receive failed: {e}") from e

    def _drain(self) -> None:
        """Drop what is already queued (a late answer to an earlier request is not this one's)."""
        for _ in range(_MAX_STALE_FRAMES):
            if self._recv(0.0) is None:
                break


def _checked_timeout(timeout_s: Any) -> float:
    if isinstance(timeout_s, bool) or not isinstance(timeout_s, (int, float)) \
            or not math.isfinite(timeout_s) or timeout_s <= 0:
        raise ValueError(f"timeout_s must be a finite number > 0, got {timeout_s!r}")
    return float(timeout_s)


class ExchangeDriver(MotorDriver):
    """A drive that answers every frame of the host with one reply (the AK series in MIT mode).

    Subclasses provide ``_enter_payload``, ``_exit_payload``, ``_zero_payload``,
    ``_encode_command``, ``_decode_reply``, ``reply_arbitration_id`` and may extend
    ``_configure`` (the commissioning check) and ``command_arbitration_id``.  A command frame
    carries the MIT law (p, v, kp, kd, feed-forward): the drive runs the spring-damper itself.
    """

    # --- hooks ------------------------------------------------------------------------------------

    @property
    @abc.abstractmethod
    def reply_arbitration_id(self) -> int:
        """CAN id the driver's replies arrive on."""

    @property
    def command_arbitration_id(self) -> int:
        """CAN id of host->driver frames (default: the node id)."""
        return self._node_id

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

    # --- the lifecycle hooks of MotorDriver -----------------------------------------------------

    def _activate(self, timeout_s: float) -> MotorReply:
        """Send the enter frame and wait for this driver's reply.

        On DriverTimeout or DriverFault an exit frame is sent (best effort, in case the driver
        did arm) and the state stays INACTIVE.
        """
        try:
            reply = self._exchange(self._enter_payload(), timeout_s, "enter motor mode")
            self._check_fault(reply, "enter motor mode")
        except (DriverTimeout, DriverFault):
            self._send_best_effort(self._exit_payload())
            raise
        return reply

    def _deactivate(self, timeout_s: float) -> MotorReply:
        """Send the exit frame and wait for the reply.  On DriverTimeout the state stays ACTIVE
        (the driver may still be armed); a reply with an error code still completes the
        transition, then raises DriverFault."""
        what = "exit motor mode" if self._state is DriverState.ACTIVE else "exit motor mode (shutdown)"
        reply = self._exchange(self._exit_payload(), timeout_s, what)
        if self._state is DriverState.ACTIVE:
            self._state = DriverState.INACTIVE
        self._check_fault(reply, what)
        return reply

    def hold_messages(self) -> List[can.Message]:
        """One zero command (no gains, no feed-forward)."""
        return [self.command_message(0.0, 0.0, 0.0, 0.0, 0.0)]

    # --- public -----------------------------------------------------------------------------------

    def deactivate(self, timeout_s: float = 0.1) -> MotorReply:
        """ACTIVE -> INACTIVE: send the exit frame and wait for the reply (see ``_deactivate``)."""
        self._require("deactivate", DriverState.ACTIVE)
        return self._deactivate(_checked_timeout(timeout_s))

    def set_zero(self, timeout_s: float = 0.1) -> MotorReply:
        """Make the present position zero (INACTIVE only: never re-zero under torque)."""
        self._require("set_zero", DriverState.INACTIVE)
        reply = self._exchange(self._zero_payload(), timeout_s, "set zero")
        self._check_fault(reply, "set zero")
        return reply

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

    def _message(self, data: bytes) -> can.Message:
        return can.Message(arbitration_id=self.command_arbitration_id,
                           is_extended_id=self.is_extended_id, dlc=len(data), data=data)

    def _send(self, data: bytes) -> None:
        self._send_message(self._message(data))

    def _send_best_effort(self, data: bytes) -> None:
        # Used on the way out of a failed set-up (the exit frame): the original error is what
        # the caller must see, so a failure to send this one is not allowed to replace it.
        with contextlib.suppress(HalError):
            self._send(data)

    def _exchange(self, data: bytes, timeout_s: float, what: str) -> MotorReply:
        """Send ``data`` and wait up to ``timeout_s`` for this driver's reply."""
        timeout_s = _checked_timeout(timeout_s)
        # The reply carries no request id: drop what is already queued, so a late reply to an
        # earlier request is not taken for this one.
        self._drain()
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

    def _check_fault(self, reply: MotorReply, what: str) -> None:
        if reply.error_code:   # None (short reply) and 0 are fine
            raise DriverFault(f"driver {self._node_id:#x}: {what}: error {reply.error_code} "
                              f"({reply.error_text})", reply.error_code, reply.error_text or "")
