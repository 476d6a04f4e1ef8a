"""Hardware abstraction layer: CAN bus, motor drivers, sensor-node frames.

Set-up, tools and tests use the Python API below.  The control tick cimports the Cython codecs
directly (``hal/_mit.pxd`` for AK MIT-mode frames, ``hal/_sensor_frames.pxd`` for the sensor
node, whose layout is ``hal/sensor_node.dbc``) and never raises.
"""
from .ak import AK_ERROR_CODES, AK_MODELS, AKDriver, mit_range
from .bus import BusConfig, open_bus, socketcan_available, socketcan_channels
from .driver import DriverState, MotorDriver, MotorReply
from .errors import ConfigError, DriverFault, DriverTimeout, HalError, LifecycleError

__all__ = [
    "AK_ERROR_CODES", "AK_MODELS", "AKDriver", "mit_range",
    "BusConfig", "open_bus", "socketcan_available", "socketcan_channels",
    "DriverState", "MotorDriver", "MotorReply",
    "ConfigError", "DriverFault", "DriverTimeout", "HalError", "LifecycleError",
]
