"""The table of motor drives: one name -> where its parts are, loaded on first use.

A drive is a set-up class (a :class:`hal.driver.MotorDriver`: bring-up, checks, lifecycle, run
before the tick starts), a per-tick codec (a :class:`hal._codec.DriveCodec`, built from the
configured set-up object), a simulated drive (``sim/``) and its model table.  The table holds
dotted paths, ``"module:attribute"``, imported only when a run asks for that part (as
python-can's ``BACKENDS``), so naming a drive costs nothing and a drive whose module is absent
fails only when chosen.  ``[driver] type`` in the run configuration and ``ankle sim --driver``
choose by name; an unknown name is refused in one line listing :data:`DRIVE_NAMES`.

Adding a drive: its set-up class under hal/, its codec class in hal/_codec.pyx (over the
protocol's own codec module), its simulated drive under sim/, and one row here.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Dict, Tuple

from hal.errors import ConfigError

__all__ = ["DriveEntry", "DRIVES", "DRIVE_NAMES", "DEFAULT_DRIVE", "drive", "load", "build_codec",
           "check_name"]


@dataclass(frozen=True)
class DriveEntry:
    """Where one drive's parts are (``"module:attribute"`` each).

    setup: the set-up class (``hal.driver.MotorDriver``).  codec: a factory taking the configured
    set-up object, returning its ``hal._codec.DriveCodec``.  sim: the simulated drive's class (a
    ``sim._simdrive.SimDrive``, called with the plant).  models: the table of models (name ->
    ratings) the set-up class accepts.  description: one line.  sim_model: the model the
    simulated drive plays.
    """

    setup: str
    codec: str
    sim: str
    models: str
    description: str
    #: the model the simulated drive plays (a row of ``models``)
    sim_model: str = ""
    #: parameters a simulated run of this drive starts from ("module:attribute" of a dict of
    #: registry values, e.g. its actuator's ratio and torque limit; "": the registry's defaults)
    sim_params: str = ""
    #: the simulated actuator's plant settings ("module:attribute" of a dict for sim.plant; "": none)
    sim_plant: str = ""


#: Every drive, by the name ``[driver] type`` and ``--driver`` take; the first is the default.
DRIVES: Dict[str, DriveEntry] = {
    "ak_mit": DriveEntry(setup="hal.ak:AKDriver", codec="hal.ak:ak_mit_codec",
                         sim="sim._simdrive:AkMitSimDrive", models="hal.ak:AK_MODELS",
                         description="CubeMars / T-Motor AK series, MIT mode (driver-side impedance)",
                         sim_model="AK80-9"),
    "cia402": DriveEntry(setup="hal.cia402:Cia402Driver", codec="hal.cia402:cia402_codec",
                         sim="sim._cia402_sim:Cia402SimDrive", models="hal.cia402:CIA402_MODELS",
                         description="CiA 402 servo drive over CANopen, cyclic synchronous torque (torque only)",
                         sim_model="sim-cia402"),
    "odrive": DriveEntry(setup="hal.odrive:OdriveDriver", codec="hal.odrive:odrive_codec",
                         sim="sim._odrive_sim:OdriveSimDrive", models="hal.odrive:ODRIVE_MODELS",
                         description="ODrive S1 / Pro / v3.6, CAN Simple 0.5/0.6 (torque only)",
                         sim_model="S1-M8325s", sim_params="sim._odrive_sim:SIM_PARAMS",
                         sim_plant="sim._odrive_sim:SIM_PLANT_OVERRIDES"),
}
DEFAULT_DRIVE = "ak_mit"
DRIVE_NAMES: Tuple[str, ...] = tuple(DRIVES)

_PARTS = ("setup", "codec", "sim", "models", "sim_params", "sim_plant")
_loaded: Dict[Tuple[str, str], Any] = {}


def check_name(name: Any, field: str = "driver.type") -> str:
    """``name`` if it is a drive of the table, else ConfigError (one line, the known names)."""
    if not isinstance(name, str) or name not in DRIVES:
        raise ConfigError(f"{field}: unknown drive {name!r} (known: {', '.join(DRIVES)})")
    return name


def drive(name: str) -> DriveEntry:
    """The table's row for ``name`` (ConfigError listing the known names otherwise)."""
    return DRIVES[check_name(name, "driver")]


def load(name: str, part: str) -> Any:
    """Part ``part`` (setup, codec, sim, models, sim_params, sim_plant) of drive ``name``, imported
    on first use (an empty sim_params / sim_plant is an empty dict)."""
    if part not in _PARTS:
        raise ValueError(f"unknown drive part {part!r} (known: {', '.join(_PARTS)})")
    entry = drive(name)
    key = (name, part)
    if not getattr(entry, part):
        return {}
    if key not in _loaded:
        module, _, attribute = getattr(entry, part).partition(":")
        _loaded[key] = getattr(importlib.import_module(module), attribute)
    return _loaded[key]


def build_codec(name: str, setup_object: Any):
    """The per-tick codec of drive ``name`` for its configured set-up object."""
    return load(name, "codec")(setup_object)
