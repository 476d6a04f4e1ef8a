"""CubeMars / T-Motor AK series in MIT mode: range table, error codes and ``AKDriver``.

Frames (../shared/REFERENCE.md, "Motor-driver protocols"): host->driver on standard id = driver
id, DLC 8; replies on ``reply_id`` (0x000 by default) with D0 = driver id.  The per-tick codec is
``hal/_mit.pxd``; this module is for set-up, tools and tests.

Ranges differ between firmware versions, so they are per-motor configuration: start from the
model's row of ``AK_MODELS`` and override what the motor's firmware uses; ``configure()`` checks
the result (the commissioning check).
"""
from __future__ import annotations

import math
from types import MappingProxyType
from typing import Any, Mapping

import can

from . import _mit
from .driver import MotorDriver, MotorReply
from .errors import ConfigError

__all__ = ["check_mit_range", "AK_MODELS", "AK_ERROR_CODES", "RANGE_KEYS", "mit_range", "AKDriver"]

RANGE_KEYS = ("p_min", "p_max", "v_min", "v_max", "kp_min", "kp_max", "kd_min", "kd_max",
              "t_min", "t_max")
"""Keys of an MIT range: p [rad], v [rad/s], kp [N*m/rad], kd [N*m*s/rad], t [N*m]."""


def _row(p: float, v: float, t: float) -> Mapping[str, float]:
    return MappingProxyType({"p_min": -p, "p_max": p, "v_min": -v, "v_max": v,
                             "kp_min": 0.0, "kp_max": 500.0, "kd_min": 0.0, "kd_max": 5.0,
                             "t_min": -t, "t_max": t})


AK_MODELS: Mapping[str, Mapping[str, float]] = MappingProxyType({
    #                 p [rad]  v [rad/s]  t [N*m]   (REFERENCE.md; firmware-dependent)
    "AK80-9": _row(12.5, 50.0, 18.0),
    "AK70-10": _row(12.5, 50.0, 25.0),
    "AK60-6": _row(12.5, 45.0, 15.0),
    "AK10-9": _row(12.5, 50.0, 65.0),
})
"""Default MIT-mode ranges per model (read-only)."""

AK_ERROR_CODES: Mapping[int, str] = MappingProxyType({
    0: "none", 1: "over-temperature", 2: "over-current", 3: "over-voltage",
    4: "under-voltage", 5: "encoder fault", 6: "phase imbalance",
})
"""Reply byte D7 -> meaning."""


def mit_range(model: str, overrides: Mapping[str, Any] | None = None) -> dict[str, float]:
    """The MIT range for ``model`` with ``overrides`` applied, checked.

    Returns a new dict with ``RANGE_KEYS``.  ConfigError (naming the field) for an unknown model
    or key, a non-number, a non-finite value, min >= max, or a negative kp/kd minimum (negative
    gains would be encodable).
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
    return check_mit_range(rng)


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


class AKDriver(MotorDriver):
    """One AK-series actuator in MIT mode.

    bus: python-can bus (the caller's).  driver_id: the driver's CAN id, 0..0xFF (D0 of its
    replies is one byte) and not equal to reply_id.  model: row of ``AK_MODELS``.
    range_overrides: per-motor range corrections (firmware), checked by ``configure()``.
    reply_id: CAN id of the replies (0x000 by default).
    """

    def __init__(self, bus: can.BusABC, driver_id: int, model: str = "AK80-9",
                 range_overrides: Mapping[str, Any] | None = None, reply_id: int = 0x000):
        if isinstance(driver_id, bool) or not isinstance(driver_id, int) or not 0 <= driver_id <= 0xFF:
            raise ConfigError(f"driver_id: must be an integer in 0..255 (the reply's D0 byte), "
                              f"got {driver_id!r}")
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

    @property
    def model(self) -> str:
        """AK model name."""
        return self._model

    @property
    def mit_range(self) -> dict[str, float]:
        """The checked MIT range (a copy); available after ``configure()``."""
        if self._range is None:
            raise ConfigError("mit_range: not checked yet; call configure() first")
        return dict(self._range)

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
