"""CubeMars / T-Motor AK series in MIT mode: range table, error codes and ``AKDriver``.

Frames (docs/reference.md, "Motor driver"): host->driver on standard id = driver
id, DLC 8; replies on ``reply_id`` (0x000 by default) with D0 = driver id.  The per-tick codec is
``hal/_mit.pxd``; this module is for set-up, tools and tests.

Ranges differ between firmware versions, so they are per-motor configuration: start from the
model's row of ``AK_MODELS`` and override what the motor's firmware uses; ``configure()`` checks
the result (the commissioning check).
"""
from __future__ import annotations

import math
import statistics
from types import MappingProxyType
from typing import Any, Mapping

import can

from . import _mit
from .driver import DriverState, ExchangeDriver, MotorReply
from .errors import ConfigError, HalError

__all__ = ["check_mit_range", "AK_MODELS", "AK_ERROR_CODES", "RANGE_KEYS", "mit_range", "override_bounds",
           "OVERRIDE_FACTOR", "AKDriver", "RangeMismatch", "DRIVER_ID_MIN", "DRIVER_ID_MAX",
           "ak_mit_codec", "ak_mit_codec_from"]

#: The AK driver ids accepted, inclusive: the one bound, used by ``AKDriver`` and by the run
#: configuration's ``[driver] id``.  0 is refused because it is the replies' default id (commands and
#: replies would share an id).  The reply's D0 byte could carry up to 255, but the configuration has
#: always accepted only up to 127 (deploy/ankle.toml documents it) and nothing above has been tried
#: on a driver, so no layer accepts an id another refuses.
DRIVER_ID_MIN, DRIVER_ID_MAX = 1, 127

RANGE_KEYS = ("p_min", "p_max", "v_min", "v_max", "kp_min", "kp_max", "kd_min", "kd_max",
              "t_min", "t_max")
"""Keys of an MIT range: p [rad], v [rad/s], kp [N*m/rad], kd [N*m*s/rad], t [N*m]."""


def _row(p: float, v: float, t: float) -> Mapping[str, float]:
    return MappingProxyType({"p_min": -p, "p_max": p, "v_min": -v, "v_max": v,
                             "kp_min": 0.0, "kp_max": 500.0, "kd_min": 0.0, "kd_max": 5.0,
                             "t_min": -t, "t_max": t})


AK_MODELS: Mapping[str, Mapping[str, float]] = MappingProxyType({
    #                 p [rad]  v [rad/s]  t [N*m]   (docs/reference.md; firmware-dependent)
    "AK80-9": _row(12.5, 50.0, 18.0),
    "AK70-10": _row(12.5, 50.0, 25.0),
    "AK60-6": _row(12.5, 45.0, 15.0),
    "AK10-9": _row(12.5, 50.0, 65.0),
})
"""Default MIT-mode ranges per model (read-only)."""

#: How far a firmware's range may lie from the model's published one: every bound's magnitude
#: within this factor of the published bound, either way.  The documented variation between
#: firmwares and models sharing the MIT frame is within 1.5x (docs/reference.md: torque 18 / 25 N*m on
#: one frame; Ben Katz's original firmware +-65 rad/s against CubeMars' 45-50), so 2x admits every
#: known firmware with margin, and refuses what no firmware of the model means (t_max = 1e300 on
#: a 12-bit field would make one count 5e296 N*m: the frame would carry nothing).
OVERRIDE_FACTOR = 2.0


def override_bounds(model: str) -> dict[str, tuple[float, float]]:
    """Per field of ``RANGE_KEYS``, the closed interval a ``range_overrides`` value may lie in.

    p, v, t: min in [-2x, -x/2] and max in [x/2, 2x] of the published +-x (a range must span 0,
    or zero velocity and zero torque cannot be sent); kp, kd: min exactly 0 (every MIT firmware
    packs gains from 0), max within the factor of the published one.
    """
    row, f = AK_MODELS[model], OVERRIDE_FACTOR
    out = {}
    for q in ("p", "v", "t"):
        x = row[f"{q}_max"]
        out[f"{q}_min"], out[f"{q}_max"] = (-f * x, -x / f), (x / f, f * x)
    for q in ("kp", "kd"):
        x = row[f"{q}_max"]
        out[f"{q}_min"], out[f"{q}_max"] = (0.0, 0.0), (x / f, f * x)
    return out


AK_ERROR_CODES: Mapping[int, str] = MappingProxyType({
    0: "none", 1: "over-temperature", 2: "over-current", 3: "over-voltage",
    4: "under-voltage", 5: "encoder fault", 6: "phase imbalance",
})
"""Reply byte D7 -> meaning."""


def mit_range(model: str, overrides: Mapping[str, Any] | None = None) -> dict[str, float]:
    """The MIT range for ``model`` with ``overrides`` applied, checked.

    Returns a new dict with ``RANGE_KEYS``.  ConfigError (naming the field) for an unknown model
    or key, a non-number, a non-finite value, min >= max, a negative kp/kd minimum (negative
    gains would be encodable), or a value outside :func:`override_bounds` of the model.
    Within those bounds a wrong range still passes here: :meth:`AKDriver.verify_range` is the
    check against the motor itself.
    """
    if model not in AK_MODELS:
        raise ConfigError(f"model: unknown AK model {model!r} (known: {', '.join(AK_MODELS)})")
    rng = dict(AK_MODELS[model])
    if overrides is not None:
        if not isinstance(overrides, Mapping):
            raise ConfigError(f"range_overrides: expected a mapping, got {type(overrides).__name__}")
        for key, value in overrides.items():
            if key not in rng:
                raise ConfigError(f"range_overrides.{key}: unknown field "
                                  f"(known: {', '.join(RANGE_KEYS)})")
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"range_overrides.{key}: must be a number, got {value!r}")
            rng[key] = float(value)
    rng = check_mit_range(rng)
    for key, (lo, hi) in override_bounds(model).items():
        if lo == hi and rng[key] != lo:
            raise ConfigError(f"range_overrides.{key}: must be {lo:g} (MIT firmware packs gains "
                              f"from {lo:g}), got {rng[key]!r}")
        if not lo <= rng[key] <= hi:
            raise ConfigError(f"range_overrides.{key}: {rng[key]!r} is not a range any {model} firmware "
                              f"uses (allowed {lo:g}..{hi:g}: within {OVERRIDE_FACTOR:g}x of the "
                              f"published {AK_MODELS[model][key]:g})")
    return rng


def check_mit_range(rng: Mapping[str, Any]) -> dict[str, float]:
    """``rng`` as a new dict of floats if it is a usable MIT range, else ConfigError naming the field.

    Every key of ``RANGE_KEYS`` present (no others), finite, min < max, kp/kd minimum >= 0.
    The codec divides by (max - min), so nothing else may reach it.
    """
    missing = [k for k in RANGE_KEYS if k not in rng]
    extra = [k for k in rng if k not in RANGE_KEYS]
    if missing or extra:
        raise ConfigError(f"mit_range: missing {missing or 'none'}, unknown {extra or 'none'}")
    try:
        rng = {k: float(rng[k]) for k in RANGE_KEYS}
    except (TypeError, ValueError):
        raise ConfigError(f"mit_range: every field must be a number, got {dict(rng)!r}") from None
    for key in RANGE_KEYS:
        if not math.isfinite(rng[key]):
            raise ConfigError(f"{key}: must be finite, got {rng[key]!r}")
    for q in ("p", "v", "kp", "kd", "t"):
        lo, hi = rng[f"{q}_min"], rng[f"{q}_max"]
        if not lo < hi:
            raise ConfigError(f"{q}_min: must be below {q}_max, got {lo!r} >= {hi!r}")
    for q in ("kp", "kd"):
        if rng[f"{q}_min"] < 0:
            raise ConfigError(f"{q}_min: must be >= 0, got {rng[f'{q}_min']!r}")
    return rng


class RangeMismatch(ConfigError):
    """The motor's replies disagree with the configured MIT range (:meth:`AKDriver.verify_range`).

    Example: ``range_overrides = {t_min = -12, t_max = 12}`` on an AK80-9 whose firmware packs
    torque on +-18 N*m: every torque the host sends is applied 1.5 times as large.
    """


#: verify_range: the torque of each probe [N*m at the motor] (small: the wearer may be standing
#: on the foot), how many commands each probe is held for (the current loop settles within one),
#: and the agreement required between the torque the motor reports and the torque its MIT law
#: gives with the configured ranges (a wrong t range by the smallest factor between two
#: documented firmwares, 18 vs 25 N*m, is 1.39x).
PROBE_TORQUE_NM = 0.5
PROBE_COMMANDS = 9
PROBE_TOLERANCE = 1.2
_PROBE_KP = 10.0          # N*m/rad: 0.05 rad of set-point offset for the probe torque
_PROBE_KD = 0.5           # N*m*s/rad: 1 rad/s of velocity set-point for the probe torque


class AKDriver(ExchangeDriver):
    """One AK-series actuator in MIT mode.

    bus: python-can bus (the caller's).  driver_id: the driver's CAN id,
    ``DRIVER_ID_MIN..DRIVER_ID_MAX`` (1..127), not equal to reply_id.  model: row of ``AK_MODELS``.
    range_overrides: per-motor range corrections (firmware), checked by ``configure()``.
    reply_id: CAN id of the replies (0x000 by default).
    """

    def __init__(self, bus: can.BusABC, driver_id: int, model: str = "AK80-9",
                 range_overrides: Mapping[str, Any] | None = None, reply_id: int = 0x000):
        if isinstance(driver_id, bool) or not isinstance(driver_id, int) \
                or not DRIVER_ID_MIN <= driver_id <= DRIVER_ID_MAX:
            raise ConfigError(f"driver_id: must be an integer in {DRIVER_ID_MIN}..{DRIVER_ID_MAX} (the "
                              f"driver's CAN node id), got {driver_id!r}")
        super().__init__(bus, driver_id)
        if isinstance(reply_id, bool) or not isinstance(reply_id, int) or not 0 <= reply_id <= 0x7FF:
            raise ConfigError(f"reply_id: must be a standard CAN id 0..0x7FF, got {reply_id!r}")
        if reply_id == driver_id:
            raise ConfigError(f"reply_id: must differ from driver_id ({driver_id:#x})")
        self._model = model
        self._overrides = (dict(range_overrides) if isinstance(range_overrides, Mapping)
                           else range_overrides)   # checked in configure()
        self._reply_id = reply_id
        self._range: dict[str, float] | None = None

    name = "ak_mit"

    @property
    def model(self) -> str:
        """AK model name."""
        return self._model

    @classmethod
    def torque_limit_for(cls, model: str, range_overrides: Mapping[str, Any] | None = None,
                         reply_id: int = 0x000) -> float:
        """The MIT torque range t_max [N*m] of ``model`` with ``range_overrides`` (the options of
        the constructor; ``reply_id`` does not change it)."""
        return mit_range(model, range_overrides)["t_max"]

    @property
    def torque_limit_Nm(self) -> float:
        """The checked MIT torque range t_max [N*m] (after ``configure()``)."""
        return self.mit_range["t_max"]

    def verify(self, timeout_s: float = 0.1) -> dict[str, float]:
        """The commissioning round trip of the AK drive: :meth:`verify_range`."""
        return self.verify_range(timeout_s)

    @property
    def mit_range(self) -> dict[str, float]:
        """The checked MIT range (a copy); available after ``configure()``."""
        if self._range is None:
            raise ConfigError("mit_range: not checked yet; call configure() first")
        return dict(self._range)

    def verify_range(self, timeout_s: float = 0.1) -> dict[str, float]:
        """Commissioning round trip: do the motor's replies confirm the configured ranges?

        ACTIVE only, before the loop sends any torque.  The firmware unpacks a command and packs
        its reply with ITS ranges, so a plain echo cannot tell a wrong range (a set-point sent and
        read back with the same wrong scale comes back unchanged).  What can tell is the MIT law
        itself, computed by the firmware: with a position set-point just off the position the
        last reply gave and gain kp (no feed-forward), the motor applies ``kp * (p_des - p)`` in
        its own units and reports the torque it applies; decoded with the configured ranges that
        is ``kp * (p_des - p)`` only if the kp, p and t ranges agree with the firmware's.  A second
        probe does the same with kd and a velocity set-point just off the reported velocity
        (kd, v and t ranges).  Set-points relative to the reported state keep the probe torque
        small while the joint moves (a wearer may walk while the controller boots).  Each probe
        is a square wave of +-``PROBE_TORQUE_NM`` for ``PROBE_COMMANDS`` commands, judged on its
        swings between the replies after the first (which may still carry the torque from
        before): the error a moving joint adds to each sample (the torque and the encoder are
        sampled apart) cancels in a swing, a wrong range scales it.  More than half the swings
        must be usable (at least ``PROBE_TORQUE_NM``, no reading at its field's edge) and their
        median ratio of reported to expected swing within ``PROBE_TOLERANCE`` either way (one
        late reply, taken for the next command's, cannot refuse a good drive).  A zero command
        (no gains, no torque) ends it.

        What it cannot confirm: errors that cancel (e.g. the p and t ranges both wide by the same
        factor pass the kp probe), nor which of the three ranges of a failed probe is wrong.  Returns the two ratios (reported / expected torque).  On a mismatch,
        a timeout or a fault the exit frame is sent (best effort), the state is INACTIVE and
        RangeMismatch / DriverTimeout / DriverFault is raised.
        """
        self._require("verify_range", DriverState.ACTIVE)
        try:
            ratios = {"kp_p_t": self._probe(timeout_s, "kp"), "kd_v_t": self._probe(timeout_s, "kd")}
            self._command_exchange(timeout_s, 0.0, 0.0, 0.0, 0.0, 0.0)
        except HalError:
            self._send_best_effort(self._exit_payload())
            self._state = DriverState.INACTIVE
            raise
        return ratios

    def _probe(self, timeout_s: float, gain: str) -> float:
        reply = self._command_exchange(timeout_s, 0.0, 0.0, 0.0, 0.0, 0.0)   # where it is now
        samples = []
        for i in range(PROBE_COMMANDS):
            # a square wave about the reported state: +, -, +, ... (zero mean, so the probe does
            # not itself drive a free foot away, and it swings by twice its torque each command)
            offset = PROBE_TORQUE_NM * (1.0 if i % 2 == 0 else -1.0)
            if gain == "kp":
                p_des, v_des, kp, kd = reply.position_rad + offset / _PROBE_KP, 0.0, _PROBE_KP, 0.0
            else:
                p_des, v_des, kp, kd = 0.0, reply.velocity_rad_s + offset / _PROBE_KD, 0.0, _PROBE_KD
            # the expected torque is the law at the state the reply reports, with what the
            # command carries once encoded (the firmware sees the quantized values)
            sent = _mit.unpack_command(self._range, _mit.pack_command(self._range, p_des, v_des, kp, kd, 0.0))
            reply = self._command_exchange(timeout_s, p_des, v_des, kp, kd, 0.0)
            expected = (sent["kp_Nm_rad"] * (sent["p_rad"] - reply.position_rad)
                        + sent["kd_Nms_rad"] * (sent["v_rad_s"] - reply.velocity_rad_s))
            if i > 0:                   # the first reply may still carry the torque before the probe
                samples.append((expected, reply.torque_Nm, self._at_field_edge(reply, gain)))
        # Judged on the swings between consecutive samples, not on the samples: on a moving joint
        # the firmware's torque and its encoder reading are sampled apart, so each sample is off by
        # the joint's motion over that skew (CI, a free foot accelerating under the probe: 0.83x
        # on every sample, a good drive refused).  That error changes slowly from one command to
        # the next and cancels in the swing, while a wrong range scales the swing as it scales the
        # torque.  A reading at its field's edge (a joint faster than the field) is no state at
        # all, and judges nothing.  The median swing: a reply that arrives late is taken for the
        # next command's (a reply carries no request id) and spoils the two swings it is in.
        usable = [(r1 - r0) / (e1 - e0) for (e0, r0, edge0), (e1, r1, edge1) in zip(samples, samples[1:])
                  if not (edge0 or edge1) and abs(e1 - e0) >= PROBE_TORQUE_NM]
        swings = len(samples) - 1
        fields = "kp, p and t" if gain == "kp" else "kd, v and t"
        if len(usable) * 2 <= swings:
            raise RangeMismatch(f"range check: the {gain} probe could judge only {len(usable)} of its {swings} "
                                f"swings (the joint moved against it, or faster than a reply reads); hold "
                                f"the ankle still and commission again")
        ratio = statistics.median(usable)
        if not 1.0 / PROBE_TOLERANCE <= ratio <= PROBE_TOLERANCE:
            raise RangeMismatch(
                f"range check: the motor reports {ratio:.2f}x the torque for a {gain} probe of "
                f"{PROBE_TORQUE_NM:g} N*m (median of {len(usable)} swings): its firmware packs {fields} "
                f"with other ranges than the configured ones ({self._model}, [driver] range_overrides); "
                f"refused")
        return ratio

    def _at_field_edge(self, reply: MotorReply, gain: str) -> bool:
        """Does ``reply`` read the torque, or the state the ``gain`` probe's law uses (position for
        kp, velocity for kd), at its field's end (clipped when packed: the true value is unknown)?"""
        rng = self._range
        state = (reply.position_rad, "p", 16) if gain == "kp" else (reply.velocity_rad_s, "v", 12)
        for value, key, bits in (state, (reply.torque_Nm, "t", 12)):
            lsb = (rng[key + "_max"] - rng[key + "_min"]) / ((1 << bits) - 1)
            if value <= rng[key + "_min"] + lsb or value >= rng[key + "_max"] - lsb:
                return True
        return False

    def _command_exchange(self, timeout_s: float, p: float, v: float, kp: float, kd: float,
                          t: float) -> MotorReply:
        reply = self._exchange(self._encode_command(p, v, kp, kd, t), timeout_s, "range check")
        self._check_fault(reply, "range check")
        return reply

    # --- hooks ------------------------------------------------------------------------------------

    @property
    def reply_arbitration_id(self) -> int:
        return self._reply_id

    def _configure(self) -> None:
        self._range = mit_range(self._model, self._overrides)

    def _enter_payload(self) -> bytes:
        return _mit.ENTER_FRAME

    def _exit_payload(self) -> bytes:
        return _mit.EXIT_FRAME

    def _zero_payload(self) -> bytes:
        return _mit.ZERO_FRAME

    def _encode_command(self, p_rad: float, v_rad_s: float, kp_Nm_rad: float,
                        kd_Nms_rad: float, t_Nm: float) -> bytes:
        return _mit.pack_command(self._range, p_rad, v_rad_s, kp_Nm_rad, kd_Nms_rad, t_Nm)

    def _decode_reply(self, msg: can.Message) -> MotorReply | None:
        data = bytes(msg.data[:msg.dlc])
        if len(data) not in (6, 8) or data[0] != self._node_id or self._range is None:
            return None
        r = _mit.unpack_reply(self._range, data)
        short = r["error_code"] < 0
        code = None if short else r["error_code"]
        return MotorReply(
            driver_id=r["driver_id"], position_rad=r["p_rad"], velocity_rad_s=r["v_rad_s"],
            torque_Nm=r["t_Nm"], temperature_C=None if short else r["temperature_C"],
            error_code=code,
            error_text=None if short else AK_ERROR_CODES.get(code, f"unknown error {code}"),
        )


def ak_mit_codec(driver: "AKDriver"):
    """The per-tick codec (:class:`hal._codec.AkMitCodec`) of a configured :class:`AKDriver`:
    its checked MIT range, its node id and its reply id (the drive table's codec factory)."""
    return ak_mit_codec_from(driver.mit_range, driver.node_id, driver.reply_arbitration_id)


def ak_mit_codec_from(rng: Mapping[str, Any], driver_id: int, reply_id: int = 0x000):
    """:class:`hal._codec.AkMitCodec` from a MIT range (checked here again: the codec divides by
    each range's width, so a bad range must never reach the tick) and the two CAN ids."""
    from hal._codec import AkMitCodec
    return AkMitCodec(check_mit_range(rng), driver_id, reply_id)
