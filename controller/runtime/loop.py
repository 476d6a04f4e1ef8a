"""The control loop's set-up: the configured tick kernel and its telemetry table.

The loop itself has one body, :func:`controller.runtime._rtloop.tick_once` (read the link
into the :class:`~controller.kernels._tick.Tick`, run the kernels, send the driver frame,
write the telemetry row), on any :class:`hal._link.FrameLink`.  Who decides *when* a tick
happens is the only difference between its two drivers: :class:`LockStep` (the
simulator steps time: :mod:`sim.harness`) and :func:`run_loop` (a cadence sleeps to
absolute deadlines: the board's runtime, :mod:`controller.runtime.process`).  Nothing here
reads a clock.
"""
from __future__ import annotations

from typing import Mapping, Optional, Union

import numpy as np

from controller.kernels._tick import PARAM_COUNT, TELEMETRY_COLUMNS, Tick
from controller.params.registry import REGISTRY, ParamSet
from controller.runtime._rtloop import LockStep, run_loop
from hal._codec import DriveCodec
from hal.ak import ak_mit_codec_from
from hal.errors import ConfigError

__all__ = ["LockStep", "run_loop", "build_tick", "TELEMETRY_COLUMNS", "telemetry_table"]


def build_tick(params: ParamSet, drive: Union[DriveCodec, Mapping[str, float]], driver_id: Optional[int] = None,
               reply_id: int = 0x000) -> Tick:
    """A configured tick kernel for one drive.

    ``drive``: the drive's per-tick codec (:func:`hal.drives.build_codec`), or, for the AK drive
    in MIT mode, its MIT range with ``driver_id`` and ``reply_id`` (the codec is built from
    them).  The range is checked again here (hal.errors.ConfigError naming the field): the
    codec divides by each range's width, so a bad range must never reach the tick.
    """
    if not isinstance(params, ParamSet):
        raise TypeError("params must be a validated controller.params.registry.ParamSet")
    if PARAM_COUNT != len(REGISTRY):
        raise ImportError(f"the kernels were built for {PARAM_COUNT} parameters, the registry has "
                          f"{len(REGISTRY)}: rebuild them (python setup.py build_ext --inplace)")
    if isinstance(drive, DriveCodec):
        codec = drive
    else:
        if driver_id is None:
            raise TypeError("build_tick: a MIT range needs the driver_id")
        codec = ak_mit_codec_from(drive, driver_id, reply_id)
    if params["actuator.max_torque_Nm"] > codec.torque_limit_Nm:
        raise ConfigError(f"actuator.max_torque_Nm = {params['actuator.max_torque_Nm']:g} N*m is beyond the "
                          f"driver's {codec.torque_range_name} t_max = {codec.torque_limit_Nm:g} N*m")
    tick = Tick()
    tick.configure(params, codec)
    return tick


def telemetry_table(rows: int) -> np.ndarray:
    """A preallocated telemetry table (rows x ``TELEMETRY_COLUMNS``), NaN-filled."""
    return np.full((rows, len(TELEMETRY_COLUMNS)), np.nan)
