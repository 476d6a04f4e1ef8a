"""The one parameter registry: every tunable of the controller, declared as data.

The console, the configuration loader, the generated parameter reference
(``docs/parameters.md``), the kernels' ``configure`` and the tests all read
this table.  Names are dotted ``group.what_unit``; values are SI.  A
:class:`ParamSet` holds one validated set of values; it is the only way values
reach the kernels, so nothing unbounded can.
"""
from __future__ import annotations

import difflib
import math
from dataclasses import dataclass
from typing import Dict, Iterator, Mapping, Optional, Tuple

__all__ = ["Param", "ParamError", "ParamSet", "REGISTRY", "KNOWN_UNITS", "by_name", "lookup", "nearest", "groups", "markdown_reference"]

#: Units a parameter may carry.  "1" is a plain ratio; "BW" is a fraction of body weight;
#: "stride" is a fraction of the stride (0..1 from heel strike).
KNOWN_UNITS = frozenset({
    "kg", "s", "Hz", "N", "BW", "1", "stride", "rad", "rad/s",
    "N*m", "N*m/kg", "N*m/rad", "N*m/rad/kg", "N*m*s/rad", "N*m*s/rad/kg", "N*m/s", "degC",
    "stance", "m/s", "N*m*s/(kg*m)", "J/kg", "J*s/(kg*m)", "V", "m/s^2", "ohm", "J/K", "K/W", "A",
    "A^2*s", "N*m/A", "%", "J/kg/%",
})


class ParamError(ValueError):
    """A parameter name or value was refused; the message says what is allowed.

    Example: ``set pushoff.torque_Nm_kg 9`` on the console gives
    ``pushoff.torque_Nm_kg = 9 is out of range [0, 1.5] N*m/kg``.
    """


@dataclass(frozen=True)
class Param:
    """One tunable.  ``live`` says whether it may change while the wearer walks; ``startup``
    that it is set when the controller starts and may not change while it runs at all (the
    console and the tick refuse it, standing or walking)."""

    name: str
    unit: str
    default: float
    min: float
    max: float
    step: float
    description: str
    live: bool = True
    kind: type = float
    startup: bool = False
    #: The unit the console shows and takes it in (``deg`` for ``rad``, ``ms`` for a short time,
    #: ``%`` for a fraction; the pairs and their factors are
    #: :data:`controller.console.units.CONVERSIONS`); None: the SI unit itself.
    clinical: Optional[str] = None
    #: A few plain words for the clinician, shown beside the name ("push-off strength").
    label: str = ""

    @property
    def group(self) -> str:
        return self.name.split(".", 1)[0]

    def check(self, value: float) -> float:
        """Return ``value`` as this parameter's type, or raise :class:`ParamError`."""
        if isinstance(value, (bool, str, bytes)) or not isinstance(value, (int, float)):
            raise ParamError(f"{self.name} must be a number, got {value!r}")
        if isinstance(value, int) and not -2**53 <= value <= 2**53:
            raise ParamError(f"{self.name} = {value} is out of range [{self.min:g}, {self.max:g}] {self.unit}")
        if self.kind is int:
            if not float(value).is_integer():
                raise ParamError(f"{self.name} must be a whole number, got {value!r}")
            value = int(value)
        else:
            value = float(value)
        if not math.isfinite(value):
            raise ParamError(f"{self.name} must be a finite number, got {value!r}")
        if not (self.min <= value <= self.max):
            raise ParamError(
                f"{self.name} = {value:g} is out of range [{self.min:g}, {self.max:g}] {self.unit}"
            )
        return value


def _p(name, unit, default, lo, hi, step, description, live=True, kind=float, startup=False, *,
       clinical, label):
    # clinical and label have no default here: each entry states its console unit and its words
    return Param(name, unit, default, lo, hi, step, description, live and not startup, kind, startup,
                 clinical, label)


REGISTRY: Tuple[Param, ...] = (
    # --- wearer -------------------------------------------------------------------------
    _p("wearer.mass_kg", "kg", 80.0, 30.0, 150.0, 0.5,
       "Body mass of the wearer; scales event thresholds and push-off torque.", live=False,
       clinical="kg", label="body mass"),
    # --- estimator ----------------------------------------------------------------------
    _p("estimator.heel_strike_load_bw", "BW", 0.15, 0.05, 0.5, 0.01,
       "Pylon load above which the foot counts as loaded (heel strike).",
       clinical="% BW", label="load that counts as heel strike"),
    _p("estimator.toe_off_load_bw", "BW", 0.03, 0.01, 0.3, 0.01,
       "Pylon load below which the foot counts as unloaded (toe-off); below the heel-strike level. "
       "Keep it above about 3 standard deviations of the load cell's noise in swing.",
       clinical="% BW", label="load that counts as toe-off"),
    _p("estimator.event_hold_s", "s", 0.003, 0.0, 0.05, 0.001,
       "Time a load condition must hold before the event is accepted (debounce).",
       clinical="ms", label="debounce time of heel strike and toe-off"),
    _p("estimator.min_stride_s", "s", 0.6, 0.3, 1.5, 0.05,
       "Shortest stride accepted as walking.",
       clinical="s", label="shortest walking stride"),
    _p("estimator.max_stride_s", "s", 2.5, 1.2, 5.0, 0.1,
       "Longest stride accepted as walking; longer without a heel strike means not walking.",
       clinical="s", label="longest walking stride"),
    _p("estimator.swing_gyro_rad_s", "rad/s", 1.0, 0.3, 3.0, 0.1,
       "Forward shank swing speed that makes the next loading a heel strike (not a weight shift).",
       clinical="deg/s", label="shank swing speed before a heel strike"),
    _p("estimator.quiet_gyro_rad_s", "rad/s", 0.15, 0.03, 0.5, 0.01,
       "Shank speed below which a loaded shank counts as still (standing).",
       clinical="deg/s", label="shank speed that counts as still"),
    _p("estimator.standing_after_s", "s", 0.2, 0.05, 1.0, 0.05,
       "How long a loaded shank must stay still before the wearer counts as standing.",
       clinical="ms", label="stillness before standing"),
    _p("estimator.template_rate", "1", 0.3, 0.05, 1.0, 0.05,
       "Weight of each new stride in the learned shank-gyro template.", live=False,
       clinical="%", label="stride template learning rate"),
    _p("estimator.prior_weight", "1", 0.5, 0.0, 20.0, 0.5,
       "How strongly the stride-time match prefers the last stride's time (per ln^2 of the ratio).",
       live=False,
       clinical="", label="preference for the last stride time"),
    # --- walking speed (from stride time) ------------------------------------------------
    _p("speed.stride_time_at_1_m_s_s", "s", 1.218, 0.8, 2.0, 0.01,
       "The wearer's stride time at 1 m/s; speed = 1 m/s x (this / stride time)^(1/exponent). "
       "Default: adult GAITRite normal ranges.",
       clinical="s", label="stride time at 1 m/s"),
    _p("speed.exponent", "1", 0.486, 0.2, 1.0, 0.01,
       "How stride time shortens with speed: stride time ~ speed^-exponent.",
       clinical='', label="stride time's change with speed"),
    # --- stance and push-off --------------------------------------------------------------
    _p("stance.stiffness_Nm_rad_kg", "N*m/rad/kg", 3.0, 0.0, 8.0, 0.1,
       "Ankle stiffness against dorsiflexion through stance, per kg body mass.",
       clinical="N·m/rad/kg", label="stance stiffness (dorsiflexion)"),
    _p("stance.plantarflexion_stiffness_Nm_rad_kg", "N*m/rad/kg", 1.5, 0.0, 8.0, 0.1,
       "Ankle stiffness against plantarflexion in stance (controlled plantarflexion after heel "
       "strike), per kg body mass.",
       clinical="N·m/rad/kg", label="stance stiffness (plantarflexion)"),
    _p("stance.damping_Nms_rad_kg", "N*m*s/rad/kg", 0.02, 0.0, 0.1, 0.005,
       "Ankle damping through stance, per kg body mass.",
       clinical="N·m·s/rad/kg", label="stance damping"),
    _p("stance.equilibrium_rad", "rad", 0.0, -0.2, 0.2, 0.01,
       "Ankle angle at which the stance spring gives no torque (+ dorsiflexion).",
       clinical='deg', label="stance spring's neutral angle"),
    _p("pushoff.torque_Nm_kg", "N*m/kg", 0.54, 0.0, 1.5, 0.01,
       "Peak push-off torque at 1.25 m/s, per kg body mass (before the learned correction).",
       clinical="N·m/kg", label="push-off strength"),
    _p("pushoff.torque_slope_Nm_s_kg_m", "N*m*s/(kg*m)", 0.42, -1.0, 1.0, 0.01,
       "Change of the peak push-off torque per m/s of walking speed, per kg body mass.",
       clinical='N·m·s/(kg·m)', label="push-off strength's rise with speed"),
    _p("pushoff.rise_s", "s", 0.13, 0.05, 0.4, 0.01,
       "Time the push-off torque takes to rise to its peak (it starts no earlier than mid-stance).",
       clinical="ms", label="push-off rise time"),
    _p("pushoff.peak_stance", "stance", 0.90, 0.6, 0.98, 0.01,
       "Share of stance at which the push-off torque peaks.",
       clinical="% stance", label="push-off peak timing"),
    _p("pushoff.end_stance", "stance", 1.0, 0.5, 1.1, 0.01,
       "Share of stance by which the push-off torque is back to zero.",
       clinical="% stance", label="push-off end timing"),
    _p("pushoff.work_J_kg", "J/kg", 0.18, -0.1, 0.4, 0.01,
       "Target net ankle work over stance at 1.25 m/s, per kg (default: BiOM figures, "
       "Grabowski & D'Andrea 2013).",
       clinical="J/kg", label="push-off work target"),
    _p("pushoff.work_slope_J_s_kg_m", "J*s/(kg*m)", 0.136, 0.0, 0.4, 0.005,
       "Change of the work target per m/s of walking speed (default fits the BiOM's "
       "0.12-0.25 J/kg at 0.75-1.75 m/s within 0.01 J/kg).",
       clinical='J·s/(kg·m)', label="work target's rise with speed"),
    _p("pushoff.adapt_rate", "1", 0.3, 0.0, 1.0, 0.05,
       "Share of the work error corrected per stride (0 = no learning).",
       clinical="%", label="push-off learning rate"),
    _p("pushoff.adapt_limit", "1", 0.3, 0.0, 0.5, 0.05,
       "Largest learned change of the push-off torque, as a share of its scheduled value.",
       clinical="%", label="largest learned push-off change"),
    _p("pushoff.min_confidence", "1", 0.5, 0.0, 1.0, 0.05,
       "Phase-fit confidence below which no push-off is given.",
       clinical="%", label="gait confidence needed for push-off"),
    # --- symmetry-seeking adaptation (off by default; controller.symmetry.adaptation.SymmetryAdapter) -------
    _p("symmetry.adapt", "1", 0, 0, 1, 1,
       "1: adjust the push-off work target (pushoff.work_J_kg) slowly toward symmetry.target_si_pct, "
       "inside the bounds below; switches itself off (back to 0) on any fault.", kind=int,
       clinical="", label="symmetry adaptation (1 on, 0 off)"),
    _p("symmetry.target_si_pct", "%", 0.0, -15.0, 15.0, 0.5,
       "Stance-time symmetry index the adaptation seeks (0 = both legs' stance equally long).",
       clinical="%", label="symmetry target"),
    _p("symmetry.work_min_J_kg", "J/kg", 0.10, -0.1, 0.4, 0.01,
       "Lowest push-off work target the adaptation may set.",
       clinical="J/kg", label="lowest work the adaptation sets"),
    _p("symmetry.work_max_J_kg", "J/kg", 0.30, -0.1, 0.4, 0.01,
       "Highest push-off work target the adaptation may set.",
       clinical="J/kg", label="highest work the adaptation sets"),
    _p("symmetry.gain_J_kg_pct", "J/kg/%", 0.004, 0.0, 0.03, 0.001,
       "Work-target change per percentage point of symmetry error, once per window of strides.",
       clinical="J/kg/%", label="adaptation step size"),
    _p("symmetry.window_strides", "1", 10, 3, 50, 1,
       "Strides averaged between two adjustments (the wearer needs several to respond).", kind=int,
       clinical="strides", label="strides per adaptation step"),
    # --- swing --------------------------------------------------------------------------
    _p("swing.target_rad", "rad", 0.05, -0.1, 0.2, 0.01,
       "Ankle angle held in swing for toe clearance (+ dorsiflexion).",
       clinical="deg", label="toe clearance angle in swing"),
    _p("swing.neutral_phase", "stride", 0.85, 0.7, 0.95, 0.01,
       "Phase from which the swing target returns to the stance equilibrium before heel strike.",
       clinical="% stride", label="return to neutral before heel strike"),
    _p("swing.stiffness_Nm_rad", "N*m/rad", 40.0, 0.0, 200.0, 1.0,
       "Position-hold stiffness in swing.",
       clinical="N·m/rad", label="swing hold stiffness"),
    _p("swing.damping_Nms_rad", "N*m*s/rad", 1.5, 0.0, 10.0, 0.1,
       "Position-hold damping in swing.",
       clinical="N·m·s/rad", label="swing hold damping"),
    # --- safety -------------------------------------------------------------------------
    _p("safety.max_torque_Nm", "N*m", 110.0, 0.0, 120.0, 1.0,
       "Largest ankle torque ever commanded, either direction (before thermal derating).",
       live=False,
       clinical="N·m", label="ankle torque limit"),
    _p("safety.max_slew_Nm_s", "N*m/s", 3000.0, 100.0, 10000.0, 100.0,
       "Largest rate of change of the commanded torque.", live=False,
       clinical="N·m/s", label="torque change rate limit"),
    _p("safety.motor_timeout_s", "s", 0.0035, 0.001, 0.05, 0.0005,
       "Age of the last driver reply beyond which replies count as stale (about 3 missed).",
       live=False,
       clinical="ms", label="motor reply timeout"),
    _p("safety.imu_timeout_s", "s", 0.015, 0.005, 0.02, 0.001,
       "Age of the last IMU frame beyond which the IMU counts as lost (catalogue: 10-20 ms).",
       live=False,
       clinical="ms", label="IMU timeout"),
    _p("safety.load_timeout_s", "s", 0.008, 0.003, 0.01, 0.001,
       "Age of the last load frame beyond which the load cell counts as lost (catalogue: <= 10 ms).",
       live=False,
       clinical="ms", label="load cell timeout"),
    _p("safety.sensor_recover_s", "s", 1.0, 0.2, 10.0, 0.1,
       "A lost IMU or load cell must look healthy this long, with the foot off the ground, "
       "before push-off comes back.", live=False,
       clinical="s", label="sensor recovery time"),
    _p("safety.encoder_jump_rad", "rad", 0.05, 0.01, 0.3, 0.01,
       "Motor-encoder step between replies, beyond what its velocity explains, that counts as a jump.",
       live=False,
       clinical="deg", label="encoder jump threshold"),
    _p("safety.encoder_mismatch_rad", "rad", 0.06, 0.02, 0.3, 0.01,
       "Largest accepted difference between the motor encoder and the joint encoder.", live=False,
       clinical="deg", label="encoder disagreement limit"),
    _p("safety.imu_gyro_limit_rad_s", "rad/s", 30.0, 10.0, 32.0, 1.0,
       "Gyro reading treated as out of range (the frame's limit is 32.767 rad/s).", live=False,
       clinical="deg/s", label="gyro range limit"),
    _p("safety.imu_accel_limit_m_s2", "m/s^2", 150.0, 50.0, 160.0, 5.0,
       "Acceleration reading treated as out of range (the frame's limit is 163.8 m/s^2).",
       live=False,
       clinical="m/s²", label="accelerometer range limit"),
    _p("safety.load_limit_N", "N", 4000.0, 1000.0, 16000.0, 100.0,
       "Load reading treated as saturated (the load cell's rated range).", live=False,
       clinical="N", label="load cell range limit"),
    _p("safety.swing_check_gyro_rad_s", "rad/s", 3.0, 1.5, 8.0, 0.1,
       "Forward shank speed that only a swinging leg reaches: a loaded foot then means a load fault.",
       live=False,
       clinical="deg/s", label="shank speed only a swing reaches"),
    _p("safety.supply_warn_V", "V", 21.0, 10.0, 60.0, 0.1,
       "Supply voltage below which push-off is scaled down (to zero at safety.supply_min_V).",
       live=False,
       clinical="V", label="low battery: push-off reduced"),
    _p("safety.supply_min_V", "V", 19.0, 8.0, 58.0, 0.1,
       "Supply voltage below which the low-voltage fault latches (safe state).", live=False,
       clinical="V", label="low battery: safe state"),
    _p("safety.status_timeout_s", "s", 0.1, 0.04, 0.5, 0.01,
       "Age of the sensor node's last status frame (sent every 20 ms) beyond which the supply "
       "counts as unknown: no push-off until status frames come back.", live=False,
       clinical="ms", label="sensor node status timeout"),
    _p("safety.overrun_gap_s", "s", 0.005, 0.002, 0.05, 0.001,
       "A gap between ticks longer than this latches the overrun fault at once.", live=False,
       clinical="ms", label="control loop gap limit"),
    _p("safety.soft_dorsi_rad", "rad", 0.26, 0.1, 0.4, 0.01,
       "Soft end stop in dorsiflexion: beyond it a virtual spring pushes back.", live=False,
       clinical="deg", label="dorsiflexion soft end stop"),
    _p("safety.soft_plantar_rad", "rad", -0.42, -0.6, -0.2, 0.01,
       "Soft end stop in plantarflexion.", live=False,
       clinical="deg", label="plantarflexion soft end stop"),
    _p("safety.soft_stiffness_Nm_rad", "N*m/rad", 300.0, 0.0, 2000.0, 10.0,
       "Stiffness of the virtual springs at the soft end stops.", live=False,
       clinical="N·m/rad", label="end stop stiffness"),
    _p("safety.soft_damping_Nms_rad", "N*m*s/rad", 2.0, 0.0, 20.0, 0.5,
       "Damper of the virtual end stops, acting only while the ankle moves further past them.",
       live=False,
       clinical="N·m·s/rad", label="end stop damping"),
    _p("safety.passive_stiffness_Nm_rad", "N*m/rad", 250.0, 50.0, 600.0, 10.0,
       "Spring of the safe state in stance: behaves like a passive foot.", live=False,
       clinical="N·m/rad", label="safe state stiffness in stance"),
    _p("safety.passive_damping_Nms_rad", "N*m*s/rad", 3.0, 0.0, 20.0, 0.5,
       "Damper of the safe state in stance (and of the damped hold after an encoder fault).",
       live=False,
       clinical="N·m·s/rad", label="safe state damping in stance"),
    _p("safety.hold_stiffness_Nm_rad", "N*m/rad", 40.0, 5.0, 200.0, 1.0,
       "Spring of the safe state in swing: holds the foot near neutral.", live=False,
       clinical="N·m/rad", label="safe state stiffness in swing"),
    _p("safety.hold_damping_Nms_rad", "N*m*s/rad", 1.5, 0.0, 10.0, 0.1,
       "Damper of the safe state in swing.", live=False,
       clinical="N·m·s/rad", label="safe state damping in swing"),
    _p("safety.ramp_s", "s", 0.1, 0.01, 0.5, 0.01,
       "Time over which the safe state blends in, and push-off fades out or back.", live=False,
       clinical="ms", label="safe state blend time"),
    # --- motor thermal model (commissioning) ---------------------------------------------
    _p("thermal.winding_resistance_ohm", "ohm", 0.17, 0.01, 5.0, 0.01,
       "Winding resistance at 25 degC (phase-to-phase as the driver's current sees it).",
       live=False,
       clinical="ohm", label="motor winding resistance"),
    _p("thermal.winding_capacity_J_K", "J/K", 60.0, 1.0, 2000.0, 1.0,
       "Heat capacity of the winding.", live=False,
       clinical="J/K", label="winding heat capacity"),
    _p("thermal.winding_to_case_K_W", "K/W", 1.0, 0.05, 20.0, 0.05,
       "Thermal resistance from winding to case.", live=False,
       clinical="K/W", label="winding-to-case thermal resistance"),
    _p("thermal.case_capacity_J_K", "J/K", 400.0, 10.0, 10000.0, 10.0,
       "Heat capacity of the motor case and driver.", live=False,
       clinical="J/K", label="motor case heat capacity"),
    _p("thermal.case_to_ambient_K_W", "K/W", 2.0, 0.05, 20.0, 0.05,
       "Thermal resistance from case to ambient air.", live=False,
       clinical="K/W", label="case-to-air thermal resistance"),
    _p("thermal.ambient_degC", "degC", 25.0, -20.0, 50.0, 1.0,
       "Ambient temperature assumed by the model (set it for the climate; higher is safer).",
       live=False,
       clinical="°C", label="ambient temperature"),
    _p("thermal.continuous_current_A", "A", 11.0, 1.0, 100.0, 0.5,
       "Motor current the winding carries indefinitely (I^2 t counts only above it).", live=False,
       clinical="A", label="continuous motor current"),
    _p("thermal.i2t_limit_A2s", "A^2*s", 2000.0, 10.0, 100000.0, 10.0,
       "I^2 t budget above the continuous current; derating from 80 %, fault at 100 %.",
       live=False,
       clinical="A²·s", label="motor overload budget"),
    _p("thermal.derate_start_degC", "degC", 100.0, 40.0, 150.0, 1.0,
       "Modelled winding temperature at which the torque limit starts to fall.", live=False,
       clinical="°C", label="winding temperature: derating starts"),
    _p("thermal.alert_degC", "degC", 110.0, 40.0, 160.0, 1.0,
       "Modelled winding temperature that raises the thermal alert.", live=False,
       clinical="°C", label="winding temperature: alert"),
    _p("thermal.limit_degC", "degC", 120.0, 50.0, 170.0, 1.0,
       "Winding (model) or driver (reading) temperature at which the fault latches; the torque "
       "limit is down to 25 % there.", live=False,
       clinical="°C", label="winding temperature: fault"),
    # --- actuator (commissioning, never changed while walking) --------------------------
    _p("actuator.ratio", "1", 7.0, 1.0, 50.0, 0.01,
       "Transmission ratio from the driver's output shaft to the ankle.", live=False,
       clinical="", label="transmission ratio"),
    _p("actuator.efficiency", "1", 0.95, 0.5, 1.0, 0.01,
       "Transmission efficiency used to convert torque commands and readings.", live=False,
       clinical="%", label="transmission efficiency"),
    _p("actuator.torque_constant_Nm_A", "N*m/A", 0.8, 0.01, 10.0, 0.01,
       "Driver output torque per ampere of motor current (for the thermal model).", live=False,
       clinical="N·m/A", label="motor torque constant"),
    _p("actuator.direction", "1", -1, -1, 1, 2,
       "+1 if the driver turns positive with dorsiflexion, -1 if with plantarflexion.",
       live=False, kind=int,
       clinical="", label="drive direction (+1 or -1)"),
    _p("actuator.max_torque_Nm", "N*m", 18.0, 1.0, 200.0, 0.1,
       "Peak torque of the driver's output shaft (AK80-9: 18 N*m); safety.max_torque_Nm must fit "
       "within it x actuator.ratio x actuator.efficiency, and the driver's MIT range must cover it.",
       live=False,
       clinical="N·m", label="drive peak torque"),
    # --- sensor calibration (set by the console's `calibrate`, standing still) ------------------
    _p("calibration.ankle_zero_rad", "rad", 0.0, -0.35, 0.35, 0.001,
       "Joint-encoder reading at the neutral ankle (foot flat, shank upright); subtracted from it.",
       live=False,
       clinical="deg", label="ankle encoder zero"),
    _p("calibration.motor_zero_rad", "rad", 0.0, -0.35, 0.35, 0.001,
       "Driver angle (ankle side) at the neutral ankle; subtracted from readings, added to set-points.",
       live=False,
       clinical="deg", label="motor angle zero"),
    _p("calibration.gyro_bias_rad_s", "rad/s", 0.0, -0.3, 0.3, 0.0005,
       "Shank gyro reading at rest; subtracted from it.", live=False,
       clinical="deg/s", label="gyro bias"),
    _p("calibration.load_offset_N", "N", 0.0, -300.0, 300.0, 0.5,
       "Load-cell reading with the foot off the ground; subtracted from it.", live=False,
       clinical="N", label="load cell offset"),
    # --- loop ---------------------------------------------------------------------------
    _p("loop.rate_Hz", "Hz", 1000.0, 100.0, 2000.0, 100.0,
       "Control loop rate. Set when the controller starts: the loop's period is fixed then (on the "
       "device from the parameter file; the run configuration has no rate of its own), so a change "
       "is refused while the controller runs, standing or walking; change it offline with the "
       "service console (ankle console), save, and restart.", startup=True,
       clinical="Hz", label="control loop rate"),
)

_BY_NAME: Dict[str, Param] = {p.name: p for p in REGISTRY}
_BY_LOWER: Dict[str, Param] = {p.name.lower(): p for p in REGISTRY}


def nearest(word: str, candidates) -> Optional[str]:
    """The candidate most like ``word`` (difflib's ratio, case ignored; a dotted parameter name is
    also compared by the part after its dot), or None if there are none."""
    w = word.lower()
    def score(c: str) -> float:
        scores = [difflib.SequenceMatcher(None, w, c.lower()).ratio()]
        if "." in c:
            scores.append(difflib.SequenceMatcher(None, w.split(".")[-1], c.split(".", 1)[1].lower()).ratio())
        return max(scores)
    candidates = list(candidates)
    return max(candidates, key=score) if candidates else None


def by_name(name: str) -> Param:
    """The declared parameter ``name``, or :class:`ParamError` naming the nearest one."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise ParamError(f"unknown parameter {name!r}; did you mean {nearest(name, _BY_NAME)!r}? "
                         f"'params' lists them") from None


def lookup(name: str) -> Param:
    """The declared parameter ``name``, case ignored (what a prosthetist types), or
    :class:`ParamError` naming the nearest one."""
    p = _BY_LOWER.get(name.lower())
    return p if p is not None else by_name(name)


def groups() -> Tuple[str, ...]:
    """Parameter groups in declaration order."""
    seen: Dict[str, None] = {}
    for p in REGISTRY:
        seen.setdefault(p.group)
    return tuple(seen)


class ParamSet(Mapping[str, float]):
    """An immutable, fully validated set of parameter values.

    Cross-parameter rules are checked here too, so a ``ParamSet`` that exists is
    a set the controller may run with.
    """

    def __init__(self, values: Optional[Mapping[str, float]] = None):
        merged = {p.name: p.default for p in REGISTRY}
        for name, value in (values or {}).items():
            merged[name] = by_name(name).check(value)
        _check_cross(merged)
        self._values = merged

    def __getitem__(self, name: str) -> float:
        if name not in self._values:
            by_name(name)  # raises with the hint
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def vector(self) -> Tuple[float, ...]:
        """The values in registry order (what the runtime's shared snapshot carries)."""
        return tuple(float(self._values[p.name]) for p in REGISTRY)

    @classmethod
    def from_vector(cls, values) -> "ParamSet":
        """A validated set from values in registry order (the inverse of :meth:`vector`)."""
        values = list(values)
        if len(values) != len(REGISTRY):
            raise ParamError(f"expected {len(REGISTRY)} values in registry order, got {len(values)}")
        return cls({p.name: (int(v) if p.kind is int and float(v).is_integer() else float(v))
                    for p, v in zip(REGISTRY, values)})

    def with_values(self, changes: Mapping[str, float]) -> "ParamSet":
        """A new set with ``changes`` applied (dotted names)."""
        values = dict(self._values)
        values.update(changes)
        return ParamSet(values)


def _check_cross(v: Mapping[str, float]) -> None:
    if v["estimator.toe_off_load_bw"] >= v["estimator.heel_strike_load_bw"]:
        raise ParamError("estimator.toe_off_load_bw must be below estimator.heel_strike_load_bw "
                         "(the hysteresis band)")
    if v["estimator.min_stride_s"] >= v["estimator.max_stride_s"]:
        raise ParamError("estimator.min_stride_s must be below estimator.max_stride_s")
    if not v["pushoff.peak_stance"] < v["pushoff.end_stance"]:
        raise ParamError("push-off timing must satisfy peak_stance < end_stance")
    if not v["safety.supply_min_V"] < v["safety.supply_warn_V"]:
        raise ParamError("safety.supply_min_V must be below safety.supply_warn_V")
    if not v["thermal.derate_start_degC"] < v["thermal.alert_degC"] <= v["thermal.limit_degC"]:
        raise ParamError("thermal thresholds must satisfy derate_start_degC < alert_degC <= limit_degC")
    if v["actuator.direction"] not in (-1, 1):
        raise ParamError("actuator.direction must be -1 or +1")
    capacity = v["actuator.max_torque_Nm"] * v["actuator.ratio"] * v["actuator.efficiency"]
    if v["safety.max_torque_Nm"] > capacity:
        raise ParamError(
            f"safety.max_torque_Nm = {v['safety.max_torque_Nm']:.0f} N·m exceeds what the actuator can give: "
            f"{capacity:.1f} N·m (actuator.max_torque_Nm x actuator.ratio x actuator.efficiency)")
    if not v["symmetry.work_min_J_kg"] <= v["symmetry.work_max_J_kg"]:
        raise ParamError("symmetry.work_min_J_kg must not be above symmetry.work_max_J_kg")
    peak = v["pushoff.torque_Nm_kg"] * v["wearer.mass_kg"]
    if peak > v["safety.max_torque_Nm"]:
        raise ParamError(
            f"push-off peak {peak:.0f} N·m (pushoff.torque_Nm_kg x wearer.mass_kg) exceeds "
            f"safety.max_torque_Nm = {v['safety.max_torque_Nm']:.0f} N·m")


def markdown_reference() -> str:
    """The parameter reference in Markdown, generated from the registry."""
    lines = [
        "# Parameter reference",
        "",
        "Generated from `controller/params/registry.py` by `ankle params --markdown`; do not edit by hand.",
        "Live = may be changed while the wearer walks (takes effect at a stride boundary); no = only "
        "while the wearer stands still; at start = only when the controller starts (refused while "
        "it runs).",
        "Values (default, min, max, step) are SI, as in the parameter file and the audit log; the "
        "console shows and takes each in its console unit (angles in degrees, short times in ms, "
        "fractions in %; `controller/console/units.py`), and takes the SI unit too.",
        "",
    ]
    for group in groups():
        lines += [f"## {group}", "",
                  "| name | label | unit | console unit | default | min | max | step | live | description |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for p in REGISTRY:
            if p.group == group:
                lines.append(f"| `{p.name}` | {p.label} | {p.unit} | {_console_unit(p)} | {p.default:g} | "
                             f"{p.min:g} | {p.max:g} | {p.step:g} | "
                             f"{'at start' if p.startup else 'yes' if p.live else 'no'} | {p.description} |")
        lines.append("")
    return "\n".join(lines)


def _console_unit(p: Param) -> str:
    """The reference's "console unit" cell: the clinical unit, or "(none)" for a plain number."""
    unit = p.clinical if p.clinical is not None else p.unit
    return unit if unit not in ("", "1") else "(none)"
