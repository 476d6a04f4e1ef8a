"""Attack campaign: many simulated walks with random wearers, scenarios and faults, every tick checked.

Each walk (one seed, :func:`plan_walk`) draws a wearer (mass, speed, stride variability), a
scenario, a length, a start temperature, several faults of the catalogue (every kind in
``sim.faults.KINDS``, whatever it holds, at random times, for random durations, with random
values) and a few console edits, some of them hostile.  The walk runs on the full stack in
lock-step (:func:`sim.harness.run`, real CAN frames); the console edits go through the real
console (``controller.console.commands.Console``) with a real PIN file and a real audit log in a
temporary folder.  Then every tick is checked against what a wearer relies on (:data:`INVARIANTS`):

- ``torque_limit``: the commanded torque never beyond the limit in force (``torque_limit_Nm``,
  derated), the true actuator torque never beyond it by more than the reply's resolution;
- ``finite``: the commanded torque, the limit and the push-off share finite on every tick the host
  ran; the true torque finite on every tick;
- ``fault_bound``: after each injection, the response the catalogue asks for within its bound
  (:data:`BOUNDS`): the safe mode, or for the sensor faults no push-off;
- ``latched``: once safe, safe to the end of the walk (nothing here clears faults);
- ``pushoff``: no push-off in the safe mode, nor once an IMU or load-cell fault has been latched
  for the push-off's ramp (``safety.ramp_s``);
- ``overtemp``: the over-temperature fault latched within a tick of the modelled winding or the
  driver's reading reaching ``thermal.limit_degC``;
- ``overrun``: the overrun fault latched on the tick that ends a gap above ``safety.overrun_gap_s``
  or the third interval running above 1.5 periods (the host's schedule as the harness ran it);
- ``watchdog``: a host hang longer than the driver's watchdog trips it within the watchdog's time;
- ``audit``: every change of the parameter set in force (read from the tick after every tick)
  matches an audit record (parameter, old, new) written before it; refused input changes nothing.

Prints the simulated hours, walks, faults injected by kind, ticks checked, CPU seconds, and each
broken invariant with its seed, the walk and the first tick, and a command that reproduces it.
Deterministic per seed; ``--jobs`` spreads walks over processes.  Figures, never pass/fail.
"""
from __future__ import annotations

import math
import multiprocessing
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from bench._common import emit, parser
from controller.kernels.faults import DEGRADING, fault_bit
from controller.kernels.telemetry import COLUMN as _T
from controller.params.registry import REGISTRY, ParamSet
from sim import harness, scenarios
from sim.faults import KINDS, Injection, resolved_value
from sim.plant import DEFAULTS as PLANT_DEFAULTS

__all__ = ["BOUNDS", "INVARIANTS", "Walk", "Violation", "plan_walk", "run_walk", "check_walk", "campaign"]

_G = {name: i for i, name in enumerate(harness.TRUTH_COLUMNS)}

INVARIANTS = ("torque_limit", "finite", "fault_bound", "latched", "pushoff", "overtemp", "overrun",
              "watchdog", "audit")

#: The true torque may exceed the limit by one quantisation step of the reply's torque field and
#: the driver's 10 kHz law between host ticks (as sim.evaluation.TORQUE_TOLERANCE_NM).
TORQUE_TOLERANCE_NM = 0.5
MODE_SAFE, MODE_PASSIVE = 2, 3
STATUS_PERIOD_S = 0.02           # the sensor node's status frame (sim.devices.SimAnkle default)
PIN = "4711"


# ---------------------------------------------------------------------------------------- bounds
@dataclass(frozen=True)
class Bound:
    """What the catalogue asks after an injection of one kind.

    ``response``: "safe" (the safe mode by the bound) or "no_pushoff" (push-off share 0 and the
    mode passive or safe by the bound; the sensor faults, controller.kernels.faults.DEGRADING).
    ``bound_s(params, inj)`` [s] from ``t_s`` (or from the end, ``from_end``); None when the
    injection need not give a response (too short, a value the detection rightly ignores).
    ``walking``: the bound holds only if the wearer truly walks through it (detection needs
    motion).  ``source``: where the bound comes from.
    """

    response: str
    bound_s: Callable[[ParamSet, Injection], Optional[float]]
    source: str
    walking: bool = False
    from_end: bool = False


def _ticks(params: ParamSet, n: float) -> float:
    return n / params["loop.rate_Hz"]


def _lasting(need_s: Callable[[ParamSet, Injection], float], extra_s=lambda p, i: 0.0):
    """The bound ``need_s + extra_s`` when the injection lasts longer than ``need_s``, else None."""
    def bound(p: ParamSet, inj: Injection) -> Optional[float]:
        need = need_s(p, inj)
        return need + extra_s(p, inj) if inj.duration_s > need else None
    return bound


def _ramp(p: ParamSet, inj: Injection) -> float:
    # the push-off share ramps out over safety.ramp_s once the mode is passive (controller/kernels/_safety.pyx)
    return p["safety.ramp_s"] + _ticks(p, 1)


def _overrun_bound(p: ParamSet, inj: Injection) -> Optional[float]:
    # the host ticks every value-th period from the first tick at or after t_s (sim/harness.py)
    gap_s = _ticks(p, resolved_value(inj))
    if gap_s > p["safety.overrun_gap_s"]:
        need = gap_s                                  # one gap above overrun_gap_s
    elif resolved_value(inj) > 1.5:
        need = 3 * gap_s                              # 3 intervals running above 1.5 periods
    else:
        return None
    return need + _ticks(p, 1) if inj.duration_s >= need else None


def _encoder_jump_bound(p: ParamSet, inj: Injection) -> Optional[float]:
    threshold = max(p["safety.encoder_jump_rad"], p["safety.encoder_mismatch_rad"])
    return _ticks(p, 3 + 1) if abs(resolved_value(inj)) > threshold and inj.duration_s > _ticks(p, 4) else None


def _low_voltage_bound(p: ParamSet, inj: Injection) -> Optional[float]:
    need = 2 * STATUS_PERIOD_S + _ticks(p, 2)        # 2 status frames below safety.supply_min_V
    return need if resolved_value(inj) < p["safety.supply_min_V"] and inj.duration_s > need else None


def _imu_range_bound(p: ParamSet, inj: Injection) -> Optional[float]:
    if min(abs(resolved_value(inj)), 32.767) < p["safety.imu_gyro_limit_rad_s"]:
        return None
    return _lasting(lambda p, i: _ticks(p, 3), _ramp)(p, inj)


def _load_value_bound(p: ParamSet, inj: Injection) -> Optional[float]:
    v = min(resolved_value(inj), 16383.5)
    tension_N = p["estimator.heel_strike_load_bw"] * p["wearer.mass_kg"] * 9.80665
    if not (v >= p["safety.load_limit_N"] or v <= -tension_N):
        return None
    return _lasting(lambda p, i: _ticks(p, 3), _ramp)(p, inj)


def _load_stuck_bound(p: ParamSet, inj: Injection) -> Optional[float]:
    if resolved_value(inj) <= p["estimator.heel_strike_load_bw"] * p["wearer.mass_kg"] * 9.80665 * 1.2:
        return None                                   # reads as unloaded: nothing to see in swing
    return _lasting(lambda p, i: 2.0, _ramp)(p, inj)


#: kind -> Bound.  A kind of sim.faults.KINDS missing here is still injected and checked by every
#: other invariant; the campaign lists it under ``kinds_without_bound``.
BOUNDS: Dict[str, Bound] = {
    "comms_loss": Bound("safe", _lasting(lambda p, i: p["safety.motor_timeout_s"] + _ticks(p, 2)),
                        "README catalogue: no reply, 3 ms; safety.motor_timeout_s + 2 ticks"),
    "stale_replies": Bound("safe", _lasting(lambda p, i: p["safety.motor_timeout_s"] + _ticks(p, 2)),
                           "README catalogue: reply age > safety.motor_timeout_s (3.5 ms); + 2 ticks"),
    "driver_error": Bound("safe", _lasting(lambda p, i: _ticks(p, 2)),
                          "README catalogue: error field of every reply, 1 tick; + 1 tick for the reply"),
    "encoder_jump": Bound("safe", _encoder_jump_bound,
                          "README catalogue: jump 1 sample, mismatch > safety.encoder_mismatch_rad 3 "
                          "samples; + 1 tick; only beyond max(encoder_jump_rad, encoder_mismatch_rad)"),
    "encoder_stuck": Bound("safe", _lasting(lambda p, i: 0.1),
                           "README catalogue: frozen while the joint encoder moves 0.01 rad (3 samples); "
                           "0.1 s for the joint to move that far while walking (bench.faults: 30 ms)",
                           walking=True),
    "imu_loss": Bound("no_pushoff", _lasting(lambda p, i: p["safety.imu_timeout_s"] + _ticks(p, 2), _ramp),
                      "README catalogue: no frame for safety.imu_timeout_s; + 2 ticks + safety.ramp_s"),
    "imu_stuck": Bound("no_pushoff", _lasting(lambda p, i: _ticks(p, 11), _ramp),
                       "README catalogue: 10 identical frames; + 1 tick + safety.ramp_s"),
    "imu_range": Bound("no_pushoff", _imu_range_bound,
                       "README catalogue: at the range limit 2 frames; + 1 tick + safety.ramp_s; only "
                       "beyond safety.imu_gyro_limit_rad_s"),
    "load_loss": Bound("no_pushoff", _lasting(lambda p, i: p["safety.load_timeout_s"] + _ticks(p, 2), _ramp),
                       "README catalogue: no frame for safety.load_timeout_s; + 2 ticks + safety.ramp_s"),
    "load_saturation": Bound("no_pushoff", _load_value_bound,
                             "README catalogue: saturated or in tension 2 frames; + 1 tick + "
                             "safety.ramp_s; only beyond safety.load_limit_N or the tension limit"),
    "load_stuck": Bound("no_pushoff", _load_stuck_bound,
                        "README catalogue: loaded while the shank swings forward (in the next swing); "
                        "2 s covers a stride at 0.6 m/s; + safety.ramp_s; only above 1.2 x the "
                        "heel-strike load", walking=True),
    "loop_overrun": Bound("safe", _overrun_bound,
                          "README catalogue: one gap > safety.overrun_gap_s or 3 intervals > 1.5 "
                          "periods, from the host's schedule (sim/harness.py); + 1 tick"),
    "host_hang": Bound("safe", lambda p, i: (_ticks(p, 2) if i.duration_s > p["safety.overrun_gap_s"]
                                              and math.isfinite(i.duration_s) else None),
                       "README catalogue: one gap > safety.overrun_gap_s, latched on the first tick "
                       "after the hang; + 1 tick; counted from the end", from_end=True),
    "low_voltage": Bound("safe", _low_voltage_bound,
                         "README catalogue: < safety.supply_min_V in 2 status frames (20 ms apart); "
                         "+ 2 ticks; only below safety.supply_min_V"),
    "nonfinite_command": Bound("safe", _lasting(lambda p, i: _ticks(p, 1)),
                               "README catalogue: isfinite on every field, same tick; + 1 tick"),
    # over_temperature and winding_heat: no time from the injection (the heating takes tens of
    # seconds and depends on the walk); the `overtemp` invariant checks the latch every tick.
}
_STATE_CHECKED = {"over_temperature": "overtemp invariant (latch within a tick of thermal.limit_degC)",
                  "winding_heat": "overtemp invariant (latch within a tick of thermal.limit_degC)"}


# ---------------------------------------------------------------------------------------- walks
@dataclass(frozen=True)
class Walk:
    """One planned walk: everything :func:`run_walk` needs, drawn from ``seed``."""

    seed: int
    scenario: str
    speed_m_s: float
    mass_kg: float
    duration_s: float
    stride_cv: float
    plant: Dict[str, float] = field(default_factory=dict)
    faults: Tuple[Injection, ...] = ()
    edits: Tuple[Tuple[float, str], ...] = ()      # (simulated time s, console line)

    def describe(self) -> Dict[str, object]:
        return {"seed": self.seed, "scenario": self.scenario, "speed_m_s": self.speed_m_s,
                "mass_kg": self.mass_kg, "duration_s": self.duration_s, "stride_cv": self.stride_cv,
                "plant": dict(self.plant),
                "faults": [f"{f.kind}@{f.t_s:g}+{f.duration_s:g}" + ("" if math.isnan(f.value) else f":{f.value:g}")
                           for f in self.faults],
                "edits": [f"{t:g}s {line}" for t, line in self.edits]}


def _value(kind: str, rng: np.random.Generator, mass_kg: float) -> float:
    """A value for ``kind``: across the range that matters, both sides of the detection thresholds."""
    sign = 1.0 if rng.random() < 0.5 else -1.0
    if kind == "driver_error":
        return float(rng.choice([1, 2, 3, 4, 5, 6, 7, int(rng.integers(1, 256))]))
    if kind in ("over_temperature", "winding_heat"):
        return float(rng.uniform(0.0, 600.0))
    if kind == "encoder_jump":
        return sign * float(rng.uniform(0.005, 1.2))
    if kind == "imu_range":
        return sign * float(rng.uniform(5.0, 60.0))
    if kind == "load_stuck":
        return float(rng.uniform(0.0, 2.0) * mass_kg * 9.80665)
    if kind == "load_saturation":
        return float(rng.uniform(3000.0, 25000.0)) if rng.random() < 0.8 else -float(rng.uniform(50.0, 3000.0))
    if kind == "loop_overrun":
        return float(rng.integers(2, 12))
    if kind == "low_voltage":
        return float(rng.uniform(10.0, 24.0))
    default = KINDS[kind][1]
    if math.isnan(default):
        return math.nan
    # a kind this table does not know yet (the catalogue grows): around its default
    return float(default * rng.uniform(0.3, 3.0))


def _injection(kind: str, t_s: float, duration_s: float, value: float) -> Injection:
    try:
        return Injection(kind, t_s, duration_s, value)
    except ValueError:
        return Injection(kind, t_s, duration_s)     # the drawn value is not one the kind takes


#: Console lines of the campaign: {v} is a drawn value.  Some are refused by design (out of range,
#: not a number, a parameter that is not live while walking, a parameter that does not exist).
_EDITS = (
    ("set pushoff.torque_Nm_kg {v}", lambda r: round(float(r.uniform(0.2, 1.0)), 2)),
    ("set pushoff.work_J_kg {v}", lambda r: round(float(r.uniform(0.0, 0.3)), 2)),
    ("set pushoff.rise_s {v} s", lambda r: round(float(r.uniform(0.08, 0.2)), 2)),
    ("set swing.stiffness_Nm_rad {v}", lambda r: float(r.integers(10, 100))),
    ("set safety.max_torque_Nm {v}", lambda r: float(r.integers(60, 121))),
    ("set pushoff.torque_Nm_kg {v}", lambda r: float(r.choice([9.0, -1.0, 1e300]))),
    ("set pushoff.torque_Nm_kg {v}", lambda r: str(r.choice(["nan", "inf", "0x10", "1,5", "''"]))),
    ("set no.such_param {v}", lambda r: 1.0),
    ("undo", None),
    ("default pushoff.torque_Nm_kg", None),
)


def plan_walk(seed: int) -> Walk:
    """The walk of ``seed`` (deterministic)."""
    rng = np.random.default_rng(seed)
    # fitting waits for a console's `wearer walk`: a campaign walk would only stand
    names = sorted(n for n in scenarios.SCENARIOS if n != "fitting")
    scenario = names[int(rng.integers(len(names)))]
    speed = round(float(rng.uniform(0.6, 1.8)), 2)
    mass = round(float(rng.uniform(50.0, 130.0)), 1)
    duration = round(float(rng.uniform(20.0, 90.0)), 1)
    stride_cv = round(float(rng.uniform(0.0, 0.05)), 3)
    kinds = sorted(KINDS)
    faults = []
    for _ in range(int(rng.integers(1, 5))):
        kind = kinds[int(rng.integers(len(kinds)))]
        t_s = round(float(rng.uniform(2.0, duration - 0.5)), 3)
        roll = rng.random()
        if roll < 0.4:
            length = math.inf
        else:                              # 1 ms .. 10 s, log-uniform
            length = round(float(10.0 ** rng.uniform(-3.0, 1.0)), 4)
        faults.append(_injection(kind, t_s, length, _value(kind, rng, mass)))
    faults.sort(key=lambda f: f.t_s)
    plant: Dict[str, float] = {}
    if any(f.kind in ("over_temperature", "winding_heat") for f in faults) and rng.random() < 0.7:
        hot = round(float(rng.uniform(70.0, 99.0)), 1)          # start hot, so the heat shows in the walk
        plant = {"initial_winding_degC": hot, "initial_case_degC": hot}
        if rng.random() < 0.5:
            plant["driver_overtemp_degC"] = 150.0                # the host's latch, not the driver's, acts
    edits = []
    for _ in range(int(rng.integers(0, 4))):
        line, draw = _EDITS[int(rng.integers(len(_EDITS)))]
        edits.append((round(float(rng.uniform(1.0, duration - 0.5)), 3),
                      line.format(v=draw(rng)) if draw else line))
    edits.sort()
    return Walk(seed, scenario, speed, mass, duration, stride_cv, plant, tuple(faults), tuple(edits))


# ---------------------------------------------------------------------------------------- console
class _LockstepBackend:
    """The console's view of the lock-step tick (controller.console.commands.Backend): a set sent is taken at
    the next stride boundary, as the runtime does, but whole (the runtime ramps live changes over 3
    strides); one that is not live only while the wearer stands (the tick refuses it otherwise)."""

    running = True

    def __init__(self, tick, telemetry: np.ndarray, t_max_Nm: float):
        self.tick, self.telemetry = tick, telemetry
        self.pending: Optional[ParamSet] = None
        self.row = -1
        self.refused = 0
        self._t_max_Nm = t_max_Nm

    def params(self) -> ParamSet:
        return self.tick.params              # the set in force, as the runtime's backend shows it

    def check(self, params: ParamSet) -> None:
        from controller.params.registry import ParamError
        if params["actuator.max_torque_Nm"] > self._t_max_Nm:
            raise ParamError(f"actuator.max_torque_Nm beyond the driver's t_max {self._t_max_Nm:g} N*m")

    def send(self, params: ParamSet) -> Tuple[str, str]:
        """As controller.console.session.RuntimeBackend.send: taken now at a stride boundary
        (accepted or refused), else pending until the next one; a second edit waits for the first."""
        if self.pending is not None:
            return "refused", "the controller has not yet taken the change sent before this one"
        self.pending = params
        if not self.tick.stride_boundary():
            return "pending", "it takes changes at a stride boundary"
        why = self.take()
        return ("refused", why) if why else ("accepted", "")

    def moving(self) -> bool:
        from controller.kernels._tick import STILL_S
        return self.tick.still_for_s() < STILL_S

    def latest(self):
        if self.row < 0:
            return None
        return {name: float(self.telemetry[self.row, i]) for name, i in _T.items()}

    def stats(self):
        return {}

    def strides(self):
        return []

    def request(self, name: str, arg: int = 0) -> str:
        return "not in the campaign"

    def record(self, seconds: float):
        return self.telemetry[:0]

    def take(self) -> str:
        """Between ticks: hand a pending set to the tick at a stride boundary; "" or why refused."""
        if self.pending is None or not self.tick.stride_boundary():
            return ""
        params, self.pending = self.pending, None
        try:
            self.tick.retune(params, allow_fixed=not self.moving())
        except ValueError as e:
            self.refused += 1                 # counted as the runtime does; the set in force stays
            return str(e)
        return ""


class CampaignConsole:
    """The campaign's console edits during a lock-step walk (``harness.run(supervisor=...)``), and
    the watch on the parameter set in force: after every tick, a change of ``tick.params`` is
    noted as (time, name, old, new)."""

    def __init__(self, edits: Sequence[Tuple[float, str]], state_dir: Path):
        self.edits = list(edits)
        self.state_dir = Path(state_dir)
        self.changes: List[Tuple[float, str, float, float]] = []
        self.replies: List[Tuple[float, str, str]] = []
        self.audit_path = self.state_dir / "audit.log"

    def bind(self, tick, telemetry: np.ndarray, params: ParamSet, publisher=None) -> None:
        from controller.console.access import Access, PinFile
        from controller.console.audit import AuditLog
        from controller.console.commands import Console
        self.tick = tick
        self._in_force = tick.params
        pins = PinFile(self.state_dir / "pin")
        pins.set(PIN)
        from hal.ak import mit_range
        # the harness's driver (sim.harness.run: an AK80-9); the tick refuses beyond it anyway
        self.backend = _LockstepBackend(tick, telemetry, mit_range("AK80-9")["t_max"])
        self.audit = AuditLog(self.audit_path)
        self.console = Console(self.backend, Access(pins), self.audit, self.state_dir / "params.json",
                               self.state_dir / "profiles")
        self.console.handle(f"login {PIN}")

    def __call__(self, k: int, now_s: float) -> None:
        self.backend.row = k
        while self.edits and self.edits[0][0] <= now_s:
            _, line = self.edits.pop(0)
            self.replies.append((now_s, line, self.console.handle(line).strip()))
        self.backend.take()
        self.note(now_s)

    def note(self, now_s: float) -> None:
        params = self.tick.params
        if params is self._in_force:
            return
        for p in REGISTRY:
            if params[p.name] != self._in_force[p.name]:
                self.changes.append((now_s, p.name, self._in_force[p.name], params[p.name]))
        self._in_force = params

    def close(self) -> None:
        if hasattr(self, "audit"):
            self.audit.close()


# ---------------------------------------------------------------------------------------- checks
@dataclass(frozen=True)
class Violation:
    invariant: str
    t_s: float              # the first tick that broke it
    ticks: int              # how many ticks broke it
    detail: str


def _first(mask: np.ndarray, t: np.ndarray, invariant: str, detail: str) -> List[Violation]:
    idx = np.flatnonzero(mask)
    if not idx.size:
        return []
    return [Violation(invariant, round(float(t[idx[0]]), 4), int(idx.size), detail)]


def _forward_fill(values: np.ndarray, first: float) -> np.ndarray:
    """``values`` with each NaN replaced by the last non-NaN before it (``first`` before any)."""
    idx = np.where(np.isnan(values), -1, np.arange(len(values)))
    idx = np.maximum.accumulate(idx)
    return np.where(idx >= 0, values[np.maximum(idx, 0)], first)


def check_torque(tel: np.ndarray, truth: np.ndarray, params: ParamSet,
                 faults: Sequence[Injection] = ()) -> List[Violation]:
    """Commanded and true torque within the limit in force.  ``faults``: only to say, in the
    detail, which injection silencing the host (the driver's watchdog then acts) was active."""
    t_all = truth[:, _G["t"]]
    ticked = ~np.isnan(tel[:, _T["t"]])
    limit = tel[:, _T["torque_limit_Nm"]]
    cmd = tel[:, _T["torque_cmd_Nm"]]
    out = []
    over = ticked & np.isfinite(cmd) & np.isfinite(limit) & (np.abs(cmd) > limit + 1e-9)
    if over.any():
        i = int(np.argmax(np.where(over, np.abs(cmd) - limit, -np.inf)))
        out += _first(over, t_all, "torque_limit",
                      f"commanded {cmd[i]:.1f} N*m vs limit {limit[i]:.1f} N*m at {t_all[i]:.3f} s")
    # the limit in force at each truth row: the last published one (a row the host did not tick
    # keeps it), and at a change the larger of this tick's and the one before (the plant acted on
    # the previous command)
    in_force = np.where(ticked & np.isfinite(limit), limit, np.nan)
    fill = params["safety.max_torque_Nm"]
    for_rows = _forward_fill(in_force, fill)
    lenient = np.maximum(for_rows, np.concatenate([[fill], for_rows[:-1]]))
    true = truth[:, _G["torque_true_Nm"]]
    over = np.isfinite(true) & (np.abs(true) > lenient + TORQUE_TOLERANCE_NM)
    if over.any():
        i = int(np.argmax(np.where(over, np.abs(true) - lenient, -np.inf)))
        j = int(np.flatnonzero(over)[0])
        before = np.flatnonzero(ticked[:j + 1])
        silent_s = (j - before[-1]) / params["loop.rate_Hz"] if before.size else math.inf
        host = f"; the host silent for {silent_s:.3f} s then" if silent_s > 0.01 else ""
        silencing = [f for f in faults if f.kind in ("comms_loss", "host_hang") and f.active_at(t_all[j])]
        if silencing:
            host += f"; during {silencing[0].kind}@{silencing[0].t_s:g} (the driver's watchdog acts)"
        out += _first(over, t_all, "torque_limit",
                      f"true torque {true[i]:.1f} N*m vs limit {lenient[i]:.1f} N*m at {t_all[i]:.3f} s{host}")
    return out


def check_finite(tel: np.ndarray, truth: np.ndarray) -> List[Violation]:
    ticked = ~np.isnan(tel[:, _T["t"]])
    t_all = truth[:, _G["t"]]
    out = []
    for col in ("torque_cmd_Nm", "torque_limit_Nm", "pushoff_cmd_Nm"):
        out += _first(ticked & ~np.isfinite(tel[:, _T[col]]), t_all, "finite", f"{col} not finite")
    out += _first(~np.isfinite(truth[:, _G["torque_true_Nm"]]), t_all, "finite", "true torque not finite")
    return out


def _walking_through(truth: np.ndarray, t0: float, t1: float) -> bool:
    t = truth[:, _G["t"]]
    sel = (t >= t0) & (t <= t1)
    return bool(sel.any() and np.all(truth[sel, _G["walking_true"]] > 0.5)
                and np.all(truth[sel, _G["phase_true"]] >= 0.0))


def check_fault_bounds(faults: Sequence[Injection], tel: np.ndarray, truth: np.ndarray,
                       params: ParamSet, checked: Optional[List[str]] = None) -> List[Violation]:
    """Each injection with a bound: the response it asks for by the bound.  ``checked`` collects
    the kinds whose bound applied (the others: too short, a value below detection, the walk ended
    or the wearer stood)."""
    out = []
    t = tel[:, _T["t"]]
    ticked = ~np.isnan(t)
    t_end = float(np.nanmax(t)) if ticked.any() else 0.0
    mode = tel[:, _T["mode"]]
    pushoff = tel[:, _T["pushoff_cmd_Nm"]]
    for inj in faults:
        b = BOUNDS.get(inj.kind)
        if b is None:
            continue
        bound = b.bound_s(params, inj)
        if bound is None:
            continue
        start = inj.end_s if b.from_end else inj.t_s
        deadline = start + bound
        if deadline > t_end:
            continue                          # the walk ended first
        if b.walking and not _walking_through(truth, inj.t_s, deadline):
            continue
        # the first tick the host ran at or after the deadline
        at = np.flatnonzero(ticked & (t >= deadline - 1e-9))
        if not at.size:
            continue
        i = int(at[0])
        if checked is not None:
            checked.append(inj.kind)
        label = f"{inj.kind}@{inj.t_s:g}" + ("" if math.isnan(inj.value) else f":{inj.value:g}")
        if b.response == "safe":
            if mode[i] != MODE_SAFE:
                out.append(Violation("fault_bound", round(float(t[i]), 4), 1,
                                     f"{label}: mode {int(mode[i])} not safe {1e3 * bound:.1f} ms after "
                                     f"{'its end' if b.from_end else 'it began'}"))
        else:
            window = ticked & (t >= deadline - 1e-9) & (t < min(inj.end_s, t_end + 1.0))
            bad = window & ((np.abs(pushoff) > 1e-9) | ~np.isin(mode, (MODE_SAFE, MODE_PASSIVE)))
            if bad.any():
                j = int(np.flatnonzero(bad)[0])
                out.append(Violation("fault_bound", round(float(t[j]), 4), int(bad.sum()),
                                     f"{label}: push-off {pushoff[j]:.2f} N*m, mode {int(mode[j])} "
                                     f"{1e3 * bound:.1f} ms after it began, while it acts"))
    return out


def check_latched(tel: np.ndarray) -> List[Violation]:
    t = tel[:, _T["t"]]
    ticked = ~np.isnan(t)
    mode = tel[ticked, _T["mode"]]
    safe = np.flatnonzero(mode == MODE_SAFE)
    if not safe.size:
        return []
    left = np.flatnonzero(mode[safe[0]:] != MODE_SAFE)
    if not left.size:
        return []
    tt = t[ticked]
    return [Violation("latched", round(float(tt[safe[0] + left[0]]), 4), int(left.size),
                      f"safe from {tt[safe[0]]:.3f} s, mode {int(mode[safe[0] + left[0]])} later")]


def check_pushoff(tel: np.ndarray, params: ParamSet) -> List[Violation]:
    """No push-off in safe mode; none once a sensor fault has been latched for the ramp."""
    t = tel[:, _T["t"]]
    ticked = ~np.isnan(t)
    faults = np.where(ticked, tel[:, _T["faults"]], 0).astype(np.int64)
    pushoff = np.abs(np.nan_to_num(tel[:, _T["pushoff_cmd_Nm"]]))
    out = _first(ticked & (tel[:, _T["mode"]] == MODE_SAFE) & (pushoff > 1e-9), t, "pushoff",
                 "push-off in the safe mode")
    sensor = (faults & DEGRADING) != 0
    # when the current run of a latched sensor fault began (rows the host did not tick carry on)
    row_t = np.where(ticked, t, np.nan)
    starts = ticked & sensor & ~np.concatenate([[False], _forward_fill(np.where(ticked, sensor, np.nan), 0.0)[:-1] > 0.5])
    since = _forward_fill(np.where(starts, row_t, np.where(ticked & ~sensor, np.inf, np.nan)), np.inf)
    ramp_s = params["safety.ramp_s"] + 1.5 / params["loop.rate_Hz"]
    held = ticked & sensor & (t - since >= ramp_s)
    out += _first(held & (pushoff > 1e-9), t, "pushoff",
                  f"push-off with a sensor fault latched for more than {1e3 * ramp_s:.0f} ms")
    return out


def check_overtemp(tel: np.ndarray, params: ParamSet) -> List[Violation]:
    t = tel[:, _T["t"]]
    ticked = np.flatnonzero(~np.isnan(t))
    limit_C = params["thermal.limit_degC"]
    hot = (tel[ticked, _T["winding_temp_C"]] >= limit_C) | (tel[ticked, _T["motor_temp_C"]] >= limit_C)
    latched = (tel[ticked, _T["faults"]].astype(np.int64) & fault_bit("over_temperature")) != 0
    # the tick after the one that saw the limit must carry the latch
    bad = hot[:-1] & ~latched[1:]
    idx = np.flatnonzero(bad)
    if not idx.size:
        return []
    return [Violation("overtemp", round(float(t[ticked[idx[0] + 1]]), 4), int(idx.size),
                      f"winding/driver at or above {limit_C:g} degC, over-temperature not latched a tick later")]


def check_overrun(tel: np.ndarray, params: ParamSet) -> List[Violation]:
    t = tel[:, _T["t"]]
    ticked = np.flatnonzero(~np.isnan(t))
    if ticked.size < 2:
        return []
    period = 1.0 / params["loop.rate_Hz"]
    interval = np.diff(ticked) * period
    late = interval > 1.5 * period
    # length of the run of late intervals ending at each interval
    idx = np.arange(len(late))
    last_on_time = np.maximum.accumulate(np.where(~late, idx, -1))
    run = np.where(late, idx - last_on_time, 0)
    due = (interval > params["safety.overrun_gap_s"] + 1e-9) | (run >= 3)
    latched = (tel[ticked[1:], _T["faults"]].astype(np.int64) & fault_bit("overrun")) != 0
    idx = np.flatnonzero(due & ~latched)
    if not idx.size:
        return []
    return [Violation("overrun", round(float(t[ticked[idx[0] + 1]]), 4), int(idx.size),
                      f"interval {1e3 * interval[idx[0]]:.1f} ms (late run {run[idx[0]]}), overrun not latched")]


def check_watchdog(faults: Sequence[Injection], watchdog_trip_s: float, watchdog_s: float,
                   t_end: float) -> List[Violation]:
    """A host hang longer than the driver's watchdog trips it within the watchdog's time.

    The plant keeps only its last trip (``SimRun.watchdog_trip_s``, -1: never), so the last long
    hang is checked: the trip lies within ``watchdog_s`` + 5 ms of its start, or after a later
    injection that silences the host (comms_loss, host_hang) began."""
    long = [f for f in faults if f.kind == "host_hang" and min(f.end_s, t_end) - f.t_s > watchdog_s + 0.005]
    if not long:
        return []
    hang = long[-1]
    silencing = [f for f in faults if f.kind in ("comms_loss", "host_hang")]
    later = [f.t_s for f in silencing if f.t_s > hang.t_s]
    # a hang that begins while the driver already hears nothing (an earlier hang or comms loss still
    # acting) sends no command in between: the watchdog trips once, from the start of that silence
    start = hang.t_s
    while True:
        earlier = [f.t_s for f in silencing if f.t_s < start < f.end_s]
        if not earlier:
            break
        start = min(earlier)
    if start <= watchdog_trip_s <= start + watchdog_s + 0.005:
        return []
    if later and watchdog_trip_s >= min(later):
        return []
    return [Violation("watchdog", round(hang.t_s, 4), 1,
                      f"host hung {min(hang.end_s, t_end) - hang.t_s:.3f} s from {hang.t_s:g} s, driver "
                      f"watchdog last tripped at {watchdog_trip_s:g} s")]


def check_audit(changes: Sequence[Tuple[float, str, float, float]],
                records: Sequence[Dict[str, str]]) -> List[Violation]:
    """Every change in force matches an unused audit record (parameter, old, new).  A refused edit
    writes no record, so a refused edit that changed anything breaks this too."""
    out = []
    pool = [r for r in records if r.get("parameter")]
    used = [False] * len(pool)
    for t_s, name, old, new in changes:
        for j, r in enumerate(pool):
            if not used[j] and r["parameter"] == name and r["old"] == repr(old) and r["new"] == repr(new):
                used[j] = True
                break
        else:
            out.append(Violation("audit", round(t_s, 4), 1, f"{name} {old!r} -> {new!r} in force with no audit record"))
    return out


def check_walk(walk: Walk, run, console: Optional[CampaignConsole] = None,
               bounds_checked: Optional[List[str]] = None) -> List[Violation]:
    tel, truth, params = run.telemetry, run.truth, run.params
    out = check_torque(tel, truth, params, walk.faults) + check_finite(tel, truth)
    out += check_fault_bounds(walk.faults, tel, truth, params, bounds_checked)
    out += check_latched(tel) + check_pushoff(tel, params) + check_overtemp(tel, params)
    out += check_overrun(tel, params)
    out += check_watchdog(walk.faults, run.watchdog_trip_s, PLANT_DEFAULTS["watchdog_s"], run.sim_seconds)
    if console is not None:
        from controller.console import audit
        out += check_audit(console.changes, audit.read(console.audit_path))
    return out


# ---------------------------------------------------------------------------------------- runs
def run_walk(walk: Walk) -> Dict[str, object]:
    """Run and check one walk; a plain dict (picklable) with its figures and violations."""
    cpu0 = time.process_time()
    with tempfile.TemporaryDirectory(prefix="ankle-campaign-") as state:
        console = CampaignConsole(walk.edits, Path(state))
        try:
            run = harness.run(scenario=walk.scenario, speed_m_s=walk.speed_m_s, duration_s=walk.duration_s,
                              mass_kg=walk.mass_kg, seed=walk.seed, stride_cv=walk.stride_cv,
                              plant_overrides=walk.plant or None, faults=walk.faults, supervisor=console)
            bounds_checked: List[str] = []
            violations = check_walk(walk, run, console, bounds_checked)
        finally:
            console.close()
    ticks = int(np.sum(~np.isnan(run.telemetry[:, _T["t"]])))
    return {"walk": walk.describe(), "sim_s": run.sim_seconds, "ticks": ticks,
            "truth_rows": int(run.truth.shape[0]),
            "faults": Counter(f.kind for f in walk.faults),
            "bounds_checked": Counter(bounds_checked),
            "edits_applied": len(console.changes), "edits_refused_by_tick": console.backend.refused,
            "cpu_s": time.process_time() - cpu0,
            "violations": [asdict(v) for v in violations]}


def campaign(seed: int = 0, walks: Optional[int] = None, minutes: Optional[float] = None,
             jobs: int = 1) -> Dict[str, object]:
    """Walks ``seed``, ``seed + 1``, ... until ``walks`` are done or ``minutes`` of wall time have
    passed (walks begun then are finished); the aggregate figures."""
    if walks is None and minutes is None:
        raise ValueError("give walks or minutes")
    deadline = None if minutes is None else time.monotonic() + 60.0 * minutes
    wall0 = time.monotonic()
    results: List[Dict[str, object]] = []

    def more(i: int) -> bool:
        return (walks is None or i < walks) and (deadline is None or time.monotonic() < deadline)

    if jobs <= 1:
        i = 0
        while more(i):
            results.append(run_walk(plan_walk(seed + i)))
            i += 1
    else:
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(jobs) as pool:
            pending = []
            i = 0
            while True:
                while more(i) and len(pending) < 2 * jobs:
                    pending.append(pool.apply_async(run_walk, (plan_walk(seed + i),)))
                    i += 1
                if not pending:
                    break
                results.append(pending.pop(0).get())
    results.sort(key=lambda r: r["walk"]["seed"])
    injected: Counter = Counter()
    bounded: Counter = Counter()
    for r in results:
        injected.update(r["faults"])
        bounded.update(r["bounds_checked"])
    broken = []
    for r in results:
        for v in r["violations"]:
            broken.append({**v, "walk": r["walk"],
                           "reproduce": f"python -m bench.campaign --seed {r['walk']['seed']} --walks 1"})
    by_invariant = Counter(v["invariant"] for v in broken)
    return {
        "benchmark": "campaign",
        "seed_base": seed,
        "walks": len(results),
        "simulated_hours": round(sum(r["sim_s"] for r in results) / 3600.0, 3),
        "ticks_checked": int(sum(r["ticks"] for r in results)),
        "truth_rows_checked": int(sum(r["truth_rows"] for r in results)),
        "faults_injected": int(sum(injected.values())),
        "faults_by_kind": {k: injected.get(k, 0) for k in sorted(KINDS)},
        "fault_bounds_checked": int(sum(bounded.values())),
        "fault_bounds_checked_by_kind": {k: bounded.get(k, 0) for k in sorted(BOUNDS)},
        "kinds_without_bound": sorted(k for k in KINDS if k not in BOUNDS and k not in _STATE_CHECKED),
        "console_changes_applied": int(sum(r["edits_applied"] for r in results)),
        "cpu_s": round(sum(r["cpu_s"] for r in results), 1),
        "wall_s": round(time.monotonic() - wall0, 1),
        "jobs": jobs,
        "invariants_broken": len(broken),
        "broken_by_invariant": {k: by_invariant.get(k, 0) for k in INVARIANTS},
        "walks_with_broken_invariants": len({v["walk"]["seed"] for v in broken}),
        "broken": broken,
    }


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--seed", type=int, default=0, help="first walk's seed (walk i has seed + i)")
    p.add_argument("--walks", type=int, default=None, help="number of walks (default: until --minutes)")
    p.add_argument("--minutes", type=float, default=None,
                   help="wall-clock minutes to start walks in (default 30 unless --walks)")
    p.add_argument("--jobs", type=int, default=1, help="processes (default 1)")
    args = p.parse_args()
    if args.walks is not None and args.walks < 1:
        p.error("--walks must be >= 1")
    if args.minutes is not None and not args.minutes > 0:
        p.error("--minutes must be > 0")
    if args.jobs < 1:
        p.error("--jobs must be >= 1")
    minutes = args.minutes if args.minutes is not None or args.walks is not None else 30.0
    result = campaign(args.seed, args.walks, minutes, args.jobs)
    if args.json:
        emit(result, True)
        return
    print(f"walks {result['walks']} (seeds {args.seed}..{args.seed + result['walks'] - 1}), "
          f"simulated {result['simulated_hours']} h, ticks checked {result['ticks_checked']}, "
          f"CPU {result['cpu_s']} s, wall {result['wall_s']} s on {args.jobs} job(s)")
    print(f"faults injected {result['faults_injected']}: "
          + ", ".join(f"{k} {n}" for k, n in result["faults_by_kind"].items()))
    print(f"fault bounds checked {result['fault_bounds_checked']} (the others: too short, a value the "
          f"detection rightly ignores, the walk ended first, or the wearer stood): "
          + ", ".join(f"{k} {n}" for k, n in result["fault_bounds_checked_by_kind"].items()))
    if result["kinds_without_bound"]:
        print(f"kinds with no time bound in bench.campaign.BOUNDS (other invariants still checked): "
              f"{', '.join(result['kinds_without_bound'])}")
    print(f"console changes applied {result['console_changes_applied']}")
    print(f"invariants broken {result['invariants_broken']} in {result['walks_with_broken_invariants']} walk(s): "
          + ", ".join(f"{k} {n}" for k, n in result["broken_by_invariant"].items()))
    for v in result["broken"]:
        w = v["walk"]
        print(f"  seed {w['seed']}: {v['invariant']} from {v['t_s']:.3f} s ({v['ticks']} ticks): {v['detail']}")
        print(f"    walk: {w['scenario']} {w['speed_m_s']} m/s {w['mass_kg']} kg {w['duration_s']} s, "
              f"faults {', '.join(w['faults'])}" + (f", edits {'; '.join(w['edits'])}" if w['edits'] else "")
              + (f", plant {w['plant']}" if w['plant'] else ""))
        print(f"    reproduce: {v['reproduce']}")


if __name__ == "__main__":
    main()
