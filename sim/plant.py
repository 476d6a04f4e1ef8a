"""Constants of the simulated ankle and the factory for :class:`sim._plant.AnklePlant`.

The figures are assumptions chosen to be of the right size for an AK80-9 behind
a 7:1 transmission on an adult wearer; each says where it comes from.
"""
from __future__ import annotations

from typing import Any, Dict, Optional

from hal.ak import mit_range
from sim._plant import (AnklePlant, PROFILE_CHANNELS, SOUND_CHANNELS, TRUTH_LENGTH, SOUND_TRUTH_LENGTH,
                        ENCODER_OK, ENCODER_OFFSET, ENCODER_STUCK, IMU_OK, IMU_STUCK, IMU_GYRO_CONSTANT,
                        LOAD_OK, LOAD_CONSTANT)

__all__ = ["DEFAULTS", "build_plant", "AnklePlant", "PROFILE_CHANNELS", "SOUND_CHANNELS", "TRUTH_LENGTH",
           "SOUND_TRUTH_LENGTH",
           "ENCODER_OK", "ENCODER_OFFSET", "ENCODER_STUCK", "IMU_OK", "IMU_STUCK",
           "IMU_GYRO_CONSTANT", "LOAD_OK", "LOAD_CONSTANT"]

DEFAULTS: Dict[str, Any] = {
    "mass_kg": 80.0,
    # Mechanics.  7:1 gives 18 N*m x 7 x 0.95 = 120 N*m at the ankle from an AK80-9.
    "ratio": 7.0,
    "efficiency": 0.95,
    "direction": -1,                      # driver turns + with plantarflexion
    "foot_inertia_kgm2": 0.01,            # prosthetic foot and shell about the ankle
    "rotor_inertia_kgm2": 0.0035,         # AK80-9 at its output shaft (assumed); x ratio^2 at the ankle
    "friction_coulomb_Nm": 1.0,           # at the ankle
    "friction_viscous_Nms_rad": 0.3,
    "stop_dorsi_rad": 0.30,               # end of range, about +17 deg dorsiflexion
    "stop_plantar_rad": -0.50,            # about -29 deg plantarflexion
    "stop_stiffness_Nm_rad": 3000.0,
    "stop_damping_Nms_rad": 10.0,
    # The wearer rolling over the foot: a stiff spring-damper toward the reference angle
    # (per kg), on top of the reference moment.  15 N*m/rad/kg is about three times the
    # biological ankle's quasi-stiffness, so the body, not the ankle, sets the kinematics.
    "wearer_stiffness_Nm_rad_kg": 15.0,
    "wearer_damping_Nms_rad_kg": 0.25,
    # Driver (motor side, at its output shaft).
    "driver_id": 1,
    "model": "AK80-9",
    # The MIT ranges the simulated driver's FIRMWARE packs and unpacks with (hal.ak.mit_range
    # overrides of the model's row; None: the row).  Set it unlike the host's [driver]
    # range_overrides to play a motor whose firmware differs from its configuration.
    "firmware_range": None,
    "driver_rate_Hz": 10000.0,
    "motor_torque_limit_Nm": 18.0,
    "watchdog_s": 0.05,                   # catalogue: 20-50 ms
    # What the driver does when its watchdog expires: a damped stop, set at commissioning like the
    # host's passive damper (safety.passive_damping_Nms_rad, 3 N*m*s/rad at the ankle):
    # 0.06 x 7^2 x 0.95 = 2.8 N*m*s/rad, so even the fastest swing (about 7 rad/s at the ankle)
    # stays far inside the torque limit once the host is gone.  (0.5 here, 23 N*m*s/rad at the
    # ankle, reached 119.7 N*m against the 110 N*m limit in the attack campaign of issue 14.)
    "limp_damping_Nms_rad": 0.06,
    "torque_constant_Nm_A": 0.8,
    "winding_resistance_ohm": 0.17,       # at 25 degC; copper adds 0.393 %/K
    # Heat, two nodes (assumed for an AK80-9-class motor, 485 g, no data sheet figures):
    # winding: about 0.15 kg of copper and stator teeth at ~400 J/(kg*K) -> 60 J/K, coupled to
    # the housing through potting and the stator press fit, 1.0 K/W (time constant 1 min);
    # case: about 0.45 kg of aluminium and steel at ~900 J/(kg*K) -> 400 J/K, to still air and
    # the pylon mount 2.0 K/W (a 100 mm housing in free convection alone would be ~3 K/W).
    # So 1 W continuous heats the case 2 K and the winding 3 K above ambient in steady state.
    "winding_capacity_J_K": 60.0,
    "winding_to_case_K_W": 1.0,
    "case_capacity_J_K": 400.0,
    "case_to_ambient_K_W": 2.0,
    "ambient_degC": 25.0,
    "initial_winding_degC": None,         # None: ambient (set both to start a test hot)
    "initial_case_degC": None,
    # The driver's own protection, reported as reply error codes.  The sensor is on the case, so
    # 100 degC there means the winding (class H, 180 degC) may already be well above it.
    "driver_overtemp_degC": 100.0,        # case above this: error 1 (over-temperature)
    "supply_V": 24.0,                     # nominal 6S battery (fault injection lowers it)
    "driver_undervoltage_V": 16.0,        # supply below this: error 4 (under-voltage)
    # Sensor node.
    "gyro_noise_rad_s": 0.02,
    "gyro_bias_rad_s": 0.0,
    "gyro_bias_drift_rad_s2": 0.0,        # bias change per second (a warming MEMS gyro), linear in time
    "accel_noise_m_s2": 0.05,
    "load_noise_N": 5.0,
    "load_offset_N": 0.0,
    "load_offset_drift_N_s": 0.0,         # load-cell offset change per second (bridge drift), linear
    # The optional sound-side node (an instrumented insole and a shank gyro on the other leg):
    # noise of the same size as the prosthetic side's load cell and gyro (assumed).
    "sound_load_noise_N": 5.0,
    "sound_gyro_noise_rad_s": 0.02,
    "initial_angle_rad": 0.0,
    "seed": 0,
}


def build_plant(overrides: Optional[Dict[str, Any]] = None) -> AnklePlant:
    """A configured plant; ``overrides`` replace entries of :data:`DEFAULTS` (unknown keys refused)."""
    config = dict(DEFAULTS)
    for key, value in (overrides or {}).items():
        if key not in DEFAULTS:
            raise KeyError(f"unknown plant setting {key!r}")
        config[key] = value
    config["mit_range"] = mit_range(config["model"], config["firmware_range"])
    plant = AnklePlant()
    plant.configure(config)
    return plant
