"""ODrive (S1, Pro, v3.6) over CAN Simple, torque control: model table, set-up class, codec factory.

Frames: :mod:`hal._odrive` (the protocol's one definition; arbitration id ``node_id << 5 | cmd``).
The per-tick codec is :class:`hal._odrive.OdriveCodec`; this module is for set-up, tools and tests.

Set-up (:class:`OdriveDriver`), nothing written to the drive's non-volatile memory (no
``save_configuration``); the volatile settings it writes are said in a log line each:

- ``configure()``: the axis is there (a heartbeat), its firmware family is the model's.
- ``activate()``: Clear_Errors, Set_Controller_Mode(TORQUE_CONTROL, PASSTHROUGH) (volatile:
  ``axis0.controller.config.control_mode`` / ``input_mode``), Set_Input_Torque(0),
  Set_Axis_State(CLOSED_LOOP_CONTROL), confirmed by the heartbeat; then a torque probe of 1 %
  of the limit, read back as the drive's torque target (0.6 Get_Torques) or Iq setpoint x
  torque constant (0.5 Get_Iq): a drive not in torque control is refused.
- ``verify()``: the axis watchdog, behaviourally (no command for 1.5 x ``watchdog_s`` must
  disarm the axis with WATCHDOG_TIMER_EXPIRED; then Clear_Errors and closed loop again), and the
  period of the cyclic Get_Encoder_Estimates (at most the loop period).

The axis watchdog (``axis0.config.enable_watchdog``, ``axis0.config.watchdog_timeout``) and the
cyclic rates (``axis0.config.can.*``) are the drive's own configuration, set with the vendor's
tool (odrivetool / the GUI) and checked here; CAN Simple cannot read them without the
firmware-specific endpoint table, so the checks are by behaviour.
"""
from __future__ import annotations

import contextlib
import logging
import math
import statistics
import time
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Callable, Dict, List, Mapping, Optional

import can

from . import _odrive
from .driver import DriverState, MotorDriver, MotorReply
from .errors import ConfigError, DriverFault, DriverTimeout, HalError

__all__ = ["OdriveModel", "ODRIVE_MODELS", "DEFAULT_MODEL", "OdriveDriver", "odrive_codec",
           "NODE_ID_MIN", "NODE_ID_MAX", "OPTIONS"]

log = logging.getLogger(__name__)

NODE_ID_MIN, NODE_ID_MAX = 0, _odrive.NODE_ID_MAX
_TWO_PI = 2.0 * math.pi


@dataclass(frozen=True)
class OdriveModel:
    """One ODrive with its motor (ratings at the motor shaft: the ODrive has no gearbox).

    torque_limit_Nm: the most torque a command may carry (torque constant x the current both the
    drive and the motor take).  torque_constant_Nm_A: 8.27 / Kv (ODrive's ``torque_constant``).
    velocity_limit_rad_s: the velocity limit the controller expects the drive to be set to.
    watchdog_s: ``axis0.config.watchdog_timeout`` the set-up expects (and checks, 1.5x).
    firmware: "0.5" (v3.6) or "0.6" (S1, Pro).  rated_torque_Nm: the motor's continuous torque.
    """

    drive: str
    motor: str
    firmware: str
    torque_limit_Nm: float
    rated_torque_Nm: float
    torque_constant_Nm_A: float
    velocity_limit_rad_s: float
    watchdog_s: float


def _kt(kv_rpm_V: float) -> float:
    # ODrive's own relation (its docs: torque_constant = 8.27 / motor Kv)
    return 8.27 / kv_rpm_V


ODRIVE_MODELS: Mapping[str, OdriveModel] = MappingProxyType({
    # sources and arithmetic: docs/drivers_odrive_facts.md, "Models"
    "S1-M8325s": OdriveModel("ODrive S1", "ODrive M8325s (Kv 100)", "0.6", torque_limit_Nm=3.3,
                             rated_torque_Nm=3.3, torque_constant_Nm_A=_kt(100.0),
                             velocity_limit_rad_s=_TWO_PI * 40.0, watchdog_s=0.05),
    "Pro-D6374-150KV": OdriveModel("ODrive Pro", "ODrive D6374-150KV", "0.6", torque_limit_Nm=3.86,
                                   rated_torque_Nm=3.86, torque_constant_Nm_A=_kt(150.0),
                                   velocity_limit_rad_s=_TWO_PI * 60.0, watchdog_s=0.05),
    "v3.6-D5065-270KV": OdriveModel("ODrive v3.6", "ODrive D5065-270KV", "0.5", torque_limit_Nm=1.99,
                                    rated_torque_Nm=1.99, torque_constant_Nm_A=_kt(270.0),
                                    velocity_limit_rad_s=_TWO_PI * 60.0, watchdog_s=0.05),
})
"""ODrive + motor combinations (read-only)."""
DEFAULT_MODEL = "S1-M8325s"

#: options of :class:`OdriveDriver` (name -> default)
OPTIONS: Mapping[str, Any] = MappingProxyType({
    "loop_period_s": 0.001,         # the control loop's period: the encoder estimates must keep up
    "torque_limit_Nm": None,        # at most the model's (None: the model's)
    "watchdog_s": None,             # the axis watchdog expected (None: the model's)
    "heartbeat_timeout_s": 0.35,    # how long a heartbeat may take (0.5 sends them every 100 ms
                                    # and answers no request for one)
    "encoder_frames": 8,            # Get_Encoder_Estimates observed by verify()
})

#: verify(): the watchdog must have disarmed the axis after this many watchdog_s of silence
WATCHDOG_MARGIN = 1.5
#: verify(): the encoder estimates' median period may be this much over the loop period
ENCODER_PERIOD_TOLERANCE = 1.5
#: activate(): how long after the first probe command its read-back is judged [s] (a late
#: cyclic frame from before it must not count)
PROBE_SETTLE_S = 0.01
#: activate(): the torque probe (fraction of the torque limit) and how close the drive's
#: reading of it must be (0.6: its torque target, exact; 0.5: Iq setpoint x the model's torque
#: constant, which also catches a drive configured with another motor's torque constant)
PROBE_FRACTION = 0.01
PROBE_TOLERANCE = 0.1
#: how often frames that feed the watchdog go out while the set-up waits for the drive [s]
_FEED_PERIOD_S = 0.005


def _encoder_rate_setting(firmware: str) -> str:
    # the setting's name differs: 0.5.x axis.config.can.encoder_rate_ms, 0.6.x encoder_msg_rate_ms
    return "axis0.config.can.encoder_rate_ms" if firmware == "0.5" else "axis0.config.can.encoder_msg_rate_ms"


class OdriveDriver(MotorDriver):
    """One ODrive axis on CAN Simple, torque control, as a :class:`hal.driver.MotorDriver`.

    bus: python-can bus (the caller's).  driver_id: the axis' ``axis0.config.can.node_id``
    (0..63, standard ids).  model: a row of :data:`ODRIVE_MODELS`.  options: :data:`OPTIONS`
    (an unknown one is a ConfigError naming it).
    """

    name = "odrive"

    def __init__(self, bus: can.BusABC, driver_id: int, model: str = DEFAULT_MODEL, **options: Any):
        if isinstance(driver_id, bool) or not isinstance(driver_id, int) \
                or not NODE_ID_MIN <= driver_id <= NODE_ID_MAX:
            raise ConfigError(f"driver_id: must be an integer in {NODE_ID_MIN}..{NODE_ID_MAX} "
                              f"(axis0.config.can.node_id, CAN Simple), got {driver_id!r}")
        super().__init__(bus, driver_id)
        o = self._options(model, options)
        self._model = model
        self._row = ODRIVE_MODELS[model]
        self._loop_period_s = o["loop_period_s"]
        self._heartbeat_timeout_s = o["heartbeat_timeout_s"]
        self._watchdog_s = o["watchdog_s"]
        self._torque_limit_Nm = o["torque_limit_Nm"]
        self._encoder_frames = o["encoder_frames"]
        self._last_heartbeat: Optional[dict] = None
        self._last_encoder: Optional[tuple] = None

    @classmethod
    def _options(cls, model: str, options: Mapping[str, Any]) -> Dict[str, Any]:
        """The options checked, defaults filled in from :data:`OPTIONS` and the model's row
        (ConfigError naming the option otherwise)."""
        if model not in ODRIVE_MODELS:
            raise ConfigError(f"model: unknown ODrive model {model!r} (known: {', '.join(ODRIVE_MODELS)})")
        for key in options:
            if key not in OPTIONS:
                raise ConfigError(f"{key}: unknown ODrive option (known: {', '.join(OPTIONS)})")
        row = ODRIVE_MODELS[model]
        o = {**OPTIONS, **options}
        n = o["encoder_frames"]
        if isinstance(n, bool) or not isinstance(n, int) or not 3 <= n <= 1000:
            raise ConfigError(f"encoder_frames: must be an integer in 3..1000, got {n!r}")
        return {
            "loop_period_s": cls._positive("loop_period_s", o["loop_period_s"], 0.0001, 0.1),
            "heartbeat_timeout_s": cls._positive("heartbeat_timeout_s", o["heartbeat_timeout_s"], 0.001, 10.0),
            "watchdog_s": (row.watchdog_s if o["watchdog_s"] is None
                           else cls._positive("watchdog_s", o["watchdog_s"], 0.005, 1.0)),
            "torque_limit_Nm": (row.torque_limit_Nm if o["torque_limit_Nm"] is None
                                else cls._positive("torque_limit_Nm", o["torque_limit_Nm"], 1e-3, row.torque_limit_Nm)),
            "encoder_frames": n,
        }

    @classmethod
    def torque_limit_for(cls, model: str, **options: Any) -> float:
        """The most torque [N*m, motor shaft] a command to ``model`` may carry (the model's, or
        the ``torque_limit_Nm`` option below it)."""
        return cls._options(model, options)["torque_limit_Nm"]

    @staticmethod
    def _positive(name: str, value: Any, lo: float, hi: float) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                or not lo <= value <= hi:
            raise ConfigError(f"{name}: must be a number in {lo:g}..{hi:g}, got {value!r}")
        return float(value)

    # --- properties ---------------------------------------------------------------------------

    @property
    def model(self) -> str:
        """The row of :data:`ODRIVE_MODELS`."""
        return self._model

    @property
    def ratings(self) -> OdriveModel:
        return self._row

    @property
    def firmware(self) -> str:
        return self._row.firmware

    @property
    def torque_limit_Nm(self) -> float:
        """The most torque a command may carry, at the motor shaft [N*m]."""
        return self._torque_limit_Nm

    @property
    def watchdog_s(self) -> float:
        """The axis watchdog the set-up expects and checks [s]."""
        return self._watchdog_s

    @property
    def loop_period_s(self) -> float:
        return self._loop_period_s

    @property
    def reply_arbitration_id(self) -> int:
        return _odrive.can_id(self._node_id, _odrive.CMD["heartbeat"])

    @property
    def command_arbitration_id(self) -> int:
        return _odrive.can_id(self._node_id, _odrive.CMD["set_input_torque"])

    def describe_error(self, code: int) -> str:
        return _odrive.describe_error(code, self.firmware)

    # --- frames -------------------------------------------------------------------------------

    def _msg(self, cmd: str, data: bytes = b"", remote: bool = False) -> can.Message:
        return can.Message(arbitration_id=_odrive.can_id(self._node_id, _odrive.CMD[cmd]),
                           is_extended_id=False, is_remote_frame=remote, dlc=8 if remote else len(data),
                           data=None if remote else data)

    def _torque_msg(self, torque_Nm: float) -> can.Message:
        return self._msg("set_input_torque", _odrive.pack_set_input_torque(torque_Nm))

    def hold_messages(self) -> List[can.Message]:
        """Frames commanding zero torque (ACTIVE), to send every 5 ms between verify() and the
        first tick, so the axis watchdog never starves."""
        self._require("hold_messages", DriverState.ACTIVE)
        return [self._torque_msg(0.0)]

    def _is(self, msg: can.Message, cmd: str) -> bool:
        return (not msg.is_error_frame and not msg.is_remote_frame and not msg.is_extended_id
                and msg.arbitration_id == _odrive.can_id(self._node_id, _odrive.CMD[cmd]))

    def _note(self, msg: can.Message) -> Optional[dict]:
        """Keep what a frame says; a heartbeat is returned decoded."""
        if self._is(msg, "heartbeat") and msg.dlc >= 8:
            hb = _odrive.unpack_heartbeat(bytes(msg.data[:8]), self.firmware)
            self._last_heartbeat = hb
            return hb
        if self._is(msg, "get_encoder_estimates") and msg.dlc >= 8:
            self._last_encoder = _odrive.unpack_f32_pair(bytes(msg.data[:8]))
        return None

    def _await(self, timeout_s: float, what: str, want: Callable[[can.Message], Any],
               feed: bool, request: Optional[str] = None) -> Any:
        """Frames until ``want(msg)`` returns non-None, within ``timeout_s``.  ``feed``: send
        Set_Input_Torque(0) every 5 ms meanwhile (ACTIVE: keep the watchdog fed).  ``request``:
        a message to ask for by RTR now and then (every 10 ms)."""
        deadline = time.monotonic() + timeout_s
        next_feed = next_request = 0.0
        while True:
            now = time.monotonic()
            if now >= deadline:
                raise DriverTimeout(f"driver {self._node_id:#x}: no {what} within {timeout_s} s")
            if feed and now >= next_feed:
                self._send_message(self._torque_msg(0.0))
                next_feed = now + _FEED_PERIOD_S
            if request is not None and now >= next_request:
                self._send_message(self._msg(request, remote=True))
                next_request = now + 0.01
            msg = self._recv(min(deadline - now, 0.001 if (feed or request) else deadline - now))
            if msg is None:
                continue
            self._note(msg)
            got = want(msg)
            if got is not None:
                return got

    def _heartbeat(self, timeout_s: float, feed: bool, what: str = "heartbeat",
                   accept: Callable[[dict], bool] = lambda hb: True) -> dict:
        """The next heartbeat ``accept`` takes.  0.6 answers an RTR for it; 0.5 only sends it
        cyclically (axis0.config.can.heartbeat_rate_ms, 100 ms by default), so there it is awaited."""
        def want(msg: can.Message):
            if self._is(msg, "heartbeat") and msg.dlc >= 8:
                hb = self._last_heartbeat
                return hb if accept(hb) else None
            return None
        return self._await(timeout_s, what, want, feed, "heartbeat" if self.firmware == "0.6" else None)

    def _state_text(self, hb: dict) -> str:
        state = _odrive.AXIS_STATES.get(hb["axis_state"], str(hb["axis_state"]))
        errors = _odrive.axis_error_names(hb["axis_error"], self.firmware) or ["none"]
        return f"state {state}, axis error {', '.join(errors)}"

    # --- lifecycle ----------------------------------------------------------------------------

    def _configure(self) -> None:
        """The axis answers (a heartbeat within ``heartbeat_timeout_s``).  Reads only."""
        self._drain()
        hb = self._heartbeat(self._heartbeat_timeout_s, feed=False)
        log.info("ODrive node %d (%s, firmware %s): %s", self._node_id, self._model, self.firmware,
                 self._state_text(hb))

    def _enter_closed_loop(self, timeout_s: float, what: str) -> dict:
        """Clear_Errors, torque control, zero torque, CLOSED_LOOP_CONTROL, confirmed by a heartbeat
        in that state without an axis error."""
        self._send_message(self._msg("clear_errors", _odrive.pack_clear_errors(self.firmware)))
        self._send_message(self._msg("set_controller_mode", _odrive.pack_set_controller_mode(
            _odrive.CONTROL_MODE_TORQUE, _odrive.INPUT_MODE_PASSTHROUGH)))
        self._send_message(self._torque_msg(0.0))
        self._send_message(self._msg("set_axis_state", _odrive.pack_set_axis_state(_odrive.STATE_CLOSED_LOOP_CONTROL)))
        self._drain()                   # heartbeats from before the request say nothing
        seen: List[dict] = []

        def accept(hb: dict) -> bool:
            seen.append(hb)
            if hb["axis_error"]:
                raise DriverFault(f"driver {self._node_id:#x}: {what}: {self._state_text(hb)}",
                                  hb["code"], self.describe_error(hb["code"]))
            return hb["axis_state"] == _odrive.STATE_CLOSED_LOOP_CONTROL
        try:
            return self._heartbeat(max(timeout_s, self._heartbeat_timeout_s), True,
                                   f"heartbeat in CLOSED_LOOP_CONTROL ({what})", accept)
        except DriverTimeout as e:
            if seen:
                raise DriverTimeout(f"{e}; last heartbeat: {self._state_text(seen[-1])}") from None
            raise

    def _disarm_best_effort(self) -> None:
        # on the way out of a failed set-up: the original error is what the caller must see, and
        # the axis watchdog disarms it anyway if these frames do not go out
        for msg in (self._torque_msg(0.0), self._msg("set_axis_state", _odrive.pack_set_axis_state(_odrive.STATE_IDLE))):
            with contextlib.suppress(HalError):
                self._send_message(msg)

    def _probe_torque(self, timeout_s: float) -> float:
        """Command 1 % of the torque limit and read back how the drive takes it: the ratio of its
        torque target (0.6) / Iq setpoint x torque constant (0.5) to the probe."""
        probe = PROBE_FRACTION * self._torque_limit_Nm
        cmd = "get_torques" if self.firmware == "0.6" else "get_iq"
        deadline = time.monotonic() + max(timeout_s, 0.05)
        self._send_message(self._torque_msg(probe))
        # a reply carries no request id: a cyclic Get_Torques sent before the drive took the
        # probe reads 0, so only what comes PROBE_SETTLE_S after the first probe is judged
        judge_from = time.monotonic() + PROBE_SETTLE_S
        self._drain()
        while True:
            self._send_message(self._torque_msg(probe))   # feeds the watchdog too
            self._send_message(self._msg(cmd, remote=True))
            end = time.monotonic() + 0.005
            while time.monotonic() < end:
                msg = self._recv(0.001)
                if msg is None:
                    continue
                self._note(msg)
                if self._is(msg, cmd) and msg.dlc >= 8 and time.monotonic() >= judge_from:
                    setpoint, _measured = _odrive.unpack_f32_pair(bytes(msg.data[:8]))
                    if cmd == "get_iq":
                        setpoint *= self._row.torque_constant_Nm_A
                    self._send_message(self._torque_msg(0.0))
                    return setpoint / probe
            if time.monotonic() >= deadline:
                self._send_message(self._torque_msg(0.0))
                raise DriverTimeout(f"driver {self._node_id:#x}: no {cmd} reply to the torque probe within "
                                    f"{timeout_s} s")

    def _activate(self, timeout_s: float) -> MotorReply:
        """Closed-loop torque control, confirmed by the heartbeat, and the torque probe.  On any
        failure the axis is sent to IDLE (best effort) and the error raised (state INACTIVE)."""
        try:
            hb = self._arm(timeout_s)
        except HalError:
            self._disarm_best_effort()
            raise
        return self._reply(hb)

    def _arm(self, timeout_s: float) -> dict:
        log.info("ODrive node %d: volatile settings: control_mode TORQUE_CONTROL, input_mode PASSTHROUGH, "
                 "requested_state CLOSED_LOOP_CONTROL (nothing saved)", self._node_id)
        hb = self._enter_closed_loop(timeout_s, "activate")
        ratio = self._probe_torque(timeout_s)
        if not abs(ratio - 1.0) <= PROBE_TOLERANCE:
            if self.firmware == "0.5" and ratio > 0:
                raise ConfigError(
                    f"axis0.motor.config.torque_constant: the drive takes a {PROBE_FRACTION * self._torque_limit_Nm:.3g} N*m "
                    f"probe as {ratio:.2f}x (Iq setpoint x {self._row.torque_constant_Nm_A:.4g} N*m/A), need "
                    f"the {self._model}'s torque constant; or axis0.controller.config.control_mode is not "
                    f"TORQUE_CONTROL")
            raise ConfigError(
                f"axis0.controller.config.control_mode: the axis does not follow Set_Input_Torque "
                f"(torque target {ratio:.2f}x a {PROBE_FRACTION * self._torque_limit_Nm:.3g} N*m probe); need "
                f"TORQUE_CONTROL with input_mode PASSTHROUGH (check it is not locked by the drive's configuration)")
        return hb

    def _deactivate(self, timeout_s: float) -> MotorReply:
        """Zero torque, IDLE, confirmed by the heartbeat.  On DriverTimeout the state stays ACTIVE
        (the axis may still be armed).  An axis error in the confirming heartbeat completes the
        transition, then raises DriverFault."""
        self._send_message(self._torque_msg(0.0))
        self._send_message(self._msg("set_axis_state", _odrive.pack_set_axis_state(_odrive.STATE_IDLE)))
        self._drain()
        hb = self._heartbeat(max(timeout_s, self._heartbeat_timeout_s), False, "heartbeat in IDLE",
                             lambda hb: hb["axis_state"] == _odrive.STATE_IDLE)
        if self._state is DriverState.ACTIVE:
            self._state = DriverState.INACTIVE
        if hb["axis_error"]:
            raise DriverFault(f"driver {self._node_id:#x}: deactivate: {self._state_text(hb)}",
                              hb["code"], self.describe_error(hb["code"]))
        return self._reply(hb)

    def set_zero(self, timeout_s: float = 0.1) -> MotorReply:
        """Not offered: the host keeps the zero (``calibration.motor_zero_rad``); CAN Simple's
        Set_Absolute_Position / Set_Linear_Count differ between firmwares and are not needed."""
        raise ConfigError("set_zero: not supported on the ODrive (calibrate calibration.motor_zero_rad instead)")

    # --- the commissioning check ------------------------------------------------------------

    @property
    def commission_s(self) -> float:
        """activate() then verify(): closed loop and the torque probe, the encoder-rate count,
        the watchdog's silence (1.5 x watchdog_s) and closed loop again, each confirmed by a
        heartbeat (0.5 sends it only every 100 ms; 0.6 answers an RTR)."""
        heartbeat_s = 0.25 if self.firmware == "0.5" else 0.12
        return 0.05 + WATCHDOG_MARGIN * self._watchdog_s + heartbeat_s

    def verify(self, timeout_s: float = 1.0) -> Dict[str, float]:
        """ACTIVE, after activate(), before the loop: is the axis' protection armed and do its
        encoder estimates arrive at the loop rate?

        1. The period of Get_Encoder_Estimates (median of ``encoder_frames`` arrivals, zero torque
           fed meanwhile) must be at most 1.5 x ``loop_period_s``, else ConfigError naming
           ``axis0.config.can.encoder_msg_rate_ms`` (0.5: ``encoder_rate_ms``).
        2. Nothing is sent for 1.5 x ``watchdog_s``; then the heartbeat must show
           WATCHDOG_TIMER_EXPIRED and IDLE, else ConfigError naming ``axis0.config.watchdog_timeout``
           / ``enable_watchdog``.  (Every frame to the axis feeds the 0.5 watchdog, RTRs included,
           so nothing at all goes out.)
        3. Clear_Errors and closed loop again (as activate), confirmed.

        Returns {"encoder_period_s", "watchdog_disarmed_within_s"}.  On a refusal or a timeout the
        axis is sent to IDLE and the state is INACTIVE.
        """
        self._require("verify", DriverState.ACTIVE)
        try:
            period_s = self._encoder_period(timeout_s)
            self._check_watchdog(timeout_s)
            self._enter_closed_loop(timeout_s, "verify: closed loop again after the watchdog check")
        except HalError:
            self._disarm_best_effort()
            self._state = DriverState.INACTIVE
            raise
        return {"encoder_period_s": period_s, "watchdog_disarmed_within_s": WATCHDOG_MARGIN * self._watchdog_s}

    def _encoder_period(self, timeout_s: float) -> float:
        setting = _encoder_rate_setting(self.firmware)
        need_ms = self._loop_period_s * 1e3
        arrivals: List[float] = []

        def want(msg: can.Message):
            if self._is(msg, "get_encoder_estimates"):
                arrivals.append(time.monotonic())
                if len(arrivals) >= self._encoder_frames:
                    return arrivals
            return None
        self._drain()
        try:
            self._await(timeout_s, "Get_Encoder_Estimates", want, feed=True)
        except DriverTimeout:
            if len(arrivals) < 2:
                raise ConfigError(f"{setting}: {len(arrivals)} Get_Encoder_Estimates in {timeout_s} s "
                                  f"(0 = off), need <= {need_ms:g} ms") from None
        period_s = statistics.median(b - a for a, b in zip(arrivals, arrivals[1:]))
        if period_s > ENCODER_PERIOD_TOLERANCE * self._loop_period_s:
            raise ConfigError(f"{setting}: Get_Encoder_Estimates every {period_s * 1e3:.1f} ms, need <= "
                              f"{need_ms:g} ms (the loop period)")
        return period_s

    def _check_watchdog(self, timeout_s: float) -> None:
        silence_s = WATCHDOG_MARGIN * self._watchdog_s
        bit = 0x800 if self.firmware == "0.5" else 0x1000000
        end = time.monotonic() + silence_s
        while True:                      # listen only: any frame to the axis would feed it
            left = end - time.monotonic()
            if left <= 0:
                break
            msg = self._recv(left)
            if msg is not None:
                self._note(msg)
        self._drain()
        hb = self._heartbeat(max(timeout_s, self._heartbeat_timeout_s), False,
                             "heartbeat after the watchdog check")
        if not (hb["axis_error"] & bit and hb["axis_state"] == _odrive.STATE_IDLE):
            raise ConfigError(
                f"axis0.config.watchdog_timeout: the axis is still {self._state_text(hb)} after "
                f"{silence_s * 1e3:.0f} ms without a command; need enable_watchdog = True and "
                f"watchdog_timeout <= {self._watchdog_s:g} s")

    # --- MotorReply (the base's reply type) -----------------------------------------------------

    def _reply(self, hb: dict) -> MotorReply:
        p, v = self._last_encoder if self._last_encoder is not None else (math.nan, math.nan)
        return MotorReply(driver_id=self._node_id, position_rad=p * _TWO_PI, velocity_rad_s=v * _TWO_PI,
                          torque_Nm=math.nan, temperature_C=None, error_code=hb["code"],
                          error_text=self.describe_error(hb["code"]))


def odrive_codec(driver: OdriveDriver):
    """The per-tick codec (:class:`hal._odrive.OdriveCodec`) of a configured :class:`OdriveDriver`:
    its node id, firmware, torque limit, the model's velocity limit and torque constant, and the
    watchdog the set-up checks (the drive table's codec factory)."""
    row = driver.ratings
    return _odrive.OdriveCodec(driver.node_id, row.firmware, driver.torque_limit_Nm,
                               row.velocity_limit_rad_s, driver.watchdog_s, row.torque_constant_Nm_A)
