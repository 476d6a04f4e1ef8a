"""Exceptions of the hardware abstraction layer.

These belong to set-up, tools and tests.  The control tick never raises: it reports OK / error
codes and leaves exceptions to the code around it.

    HalError
    ├── ConfigError      bad configuration (the message names the field)
    ├── DriverTimeout    no matching reply in time
    ├── DriverFault      the driver reported an error code
    └── LifecycleError   operation not allowed in the current state
"""
from __future__ import annotations

__all__ = ["HalError", "ConfigError", "DriverTimeout", "DriverFault", "LifecycleError"]


class HalError(Exception):
    """Base class of every HAL error.

    Also raised as-is, with the python-can error kept as ``__cause__``, when the CAN interface
    itself fails: e.g. ``bus.send`` raises because the adapter was unplugged during set-up.
    """


class ConfigError(HalError):
    """Bad configuration; the message starts with the field at fault.

    Example: a config file says ``bus: {interface: virtual, chanel: ankle}``; ``BusConfig.from_mapping``
    raises ``ConfigError("bus.chanel: unknown field ...")``.  Or an AK70-10 is commissioned with
    ``t_min = 25``: ``mit_range`` raises ``ConfigError("t_min: ...")``.
    """


class DriverTimeout(HalError):
    """A motor driver did not answer a set-up request within its timeout.

    Example: ``AKDriver(bus, 1).activate()`` sends the enter-motor-mode frame, but the driver is
    unpowered (or has another CAN id), so no reply with D0 = 1 arrives within 0.1 s.
    """


class DriverFault(HalError):
    """A motor driver answered a set-up request with a non-zero error code.

    Example: ``activate()`` gets a reply with error code 2; the exception carries
    ``code == 2`` and ``text == "over-current"``.
    """

    def __init__(self, message: str, code: int, text: str):
        super().__init__(message)
        self.code = code
        self.text = text


class LifecycleError(HalError):
    """The operation is not allowed in the driver's current lifecycle state.

    Example: ``set_zero()`` while the driver is ACTIVE (re-zeroing under torque), or
    ``command_message()`` before ``activate()``.
    """
