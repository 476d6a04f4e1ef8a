"""Every fault of the catalogue injected into the simulated ankle: detection, safe state, torque steps.

Each case walks the simulated wearer at 1.25 m/s on the full stack (real CAN
frames), injects one fault (sim.faults) mid-walk and reads the answer from the
telemetry and the simulator's truth (sim.evaluation.fault_response): time to
detect, time until the safe response is complete, the largest tick-to-tick
step of the commanded and of the true actuator torque in the second after the
injection, and, where the host stops talking, when the driver's watchdog
tripped.  The bound is the catalogue's (docs/reference.md).  For
over-temperature "detect" is from the tick the limit temperature was reached to
the latch; the heating itself takes tens of seconds (printed below the table).
Prints figures, never pass/fail.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Dict, Optional

from bench._common import emit, parser
from controller.kernels.faults import fault_bit
from sim import evaluation, harness
from sim.faults import Injection

@dataclass(frozen=True)
class Case:
    """One injected fault and what the catalogue asks of the answer."""

    label: str
    kind: str
    fault: str                      # fault name expected to latch (controller.kernels.faults.FAULT_BITS)
    mode: str                       # mode expected afterwards: "safe" or "passive"
    bound_s: float                  # detection bound (catalogue)
    value: float = float("nan")
    duration_s: float = float("inf")
    t_s: float = 6.0
    seconds: float = 8.0
    plant: Dict[str, float] = field(default_factory=dict)
    watchdog: bool = False          # the driver's watchdog must trip (host silent)
    from_end: bool = False          # detection counts from the end of the injection (host resumes)
    #: the drives the case applies to (hal.drives names; empty: every drive)
    drives: tuple = ()

    def applies_to(self, driver: str) -> bool:
        """Does this fault exist on ``driver``?"""
        return not self.drives or driver in self.drives


CASES = (
    Case("host->driver comms loss", "comms_loss", "motor_stale", "safe", 0.005, watchdog=True,
         drives=("ak_mit", "cia402")),
    # An ODrive keeps sending its cyclic frames when the host's commands stop reaching it, so the
    # host hears of the loss only from the drive: its axis watchdog stops torque (50 ms), and the
    # next heartbeat (100 ms period) carries WATCHDOG_TIMER_EXPIRED and IDLE
    Case("host->driver comms loss (ODrive: its watchdog, then its heartbeat)", "comms_loss", "driver_error",
         "safe", 0.155, watchdog=True, drives=("odrive",)),
    Case("stale driver replies", "stale_replies", "motor_stale", "safe", 0.005),
    Case("driver error: over-current", "driver_error", "driver_error", "safe", 0.002, value=2),
    Case("driver error: encoder", "driver_error", "driver_error", "safe", 0.002, value=5),
    Case("over-temperature (hot case, 400 W, no driver cut-off)", "over_temperature", "over_temperature",
         "safe", 0.002, value=400.0, t_s=3.0, seconds=40.0,
         plant={"initial_winding_degC": 95.0, "initial_case_degC": 95.0, "driver_overtemp_degC": 150.0}),
    # 60 s bound; the run goes on 10 s past it, so a cut-off just inside the bound is seen
    Case("shorted turn (300 W in the winding): driver cut-off", "winding_heat", "driver_error", "safe",
         60.0, value=300.0, t_s=3.0, seconds=73.0,
         plant={"initial_winding_degC": 90.0, "initial_case_degC": 90.0}),
    Case("encoder jump 0.3 rad", "encoder_jump", "encoder", "safe", 0.003),
    Case("encoder stuck", "encoder_stuck", "encoder", "safe", 0.03),
    Case("IMU loss", "imu_loss", "imu", "passive", 0.02),
    Case("IMU stuck-at", "imu_stuck", "imu", "passive", 0.02),
    Case("IMU out of range", "imu_range", "imu", "passive", 0.02),
    Case("load cell loss", "load_loss", "load", "passive", 0.01),
    Case("load cell saturated", "load_saturation", "load", "passive", 0.01),
    Case("load cell stuck loaded (seen in swing)", "load_stuck", "load", "passive", 1.2),
    Case("loop overrun: 3 late ticks", "loop_overrun", "overrun", "safe", 0.01, value=2, duration_s=0.02),
    Case("loop overrun: one 6 ms gap", "loop_overrun", "overrun", "safe", 0.01, value=6, duration_s=0.006),
    Case("host hang 0.2 s (driver watchdog; host latches on resume)", "host_hang", "overrun", "safe", 0.002,
         duration_s=0.2, watchdog=True, from_end=True),
    Case("low voltage 18 V", "low_voltage", "low_voltage", "safe", 0.05, value=18.0),
    Case("NaN command", "nonfinite_command", "nonfinite_command", "safe", 0.001, duration_s=0.01),
    Case("spoofed IMU frames at 2 kHz", "spoof_imu", "imu", "passive", 0.02, value=2000.0, duration_s=5.0),
    # the spoofed frames also carry a joint angle the motor encoder disagrees with: encoder, safe
    Case("spoofed load frames at 2 kHz", "spoof_load", "load", "safe", 0.02, value=2000.0, duration_s=5.0),
    Case("spoofed IMU frames at 200 Hz", "spoof_imu", "imu", "passive", 0.02, value=200.0, duration_s=5.0),
    Case("node status flags 0xFF", "node_status_flags", "sensor_node", "safe", 0.05, value=255),
    Case("supply reading 655.35 V", "supply_reading", "sensor_node", "safe", 0.05, value=655.35),
)


def run_case(case: Case, seed: int = 1, driver: str = "ak_mit") -> dict:
    """Run one case on ``driver`` (a name of hal.drives.DRIVES) and return its figures (also used
    by tests/test_faults.py)."""
    inj = Injection(case.kind, case.t_s, case.duration_s, case.value)
    run = harness.run(speed_m_s=1.25, duration_s=case.seconds, seed=seed, faults=[inj],
                      plant_overrides=case.plant or None, driver=driver)
    figures = evaluation.fault_response(run, case.t_s, fault_bit(case.fault))
    if case.kind == "over_temperature":
        # the fault condition is the limit temperature, reached long after the heat began
        figures.update(evaluation.thermal_response(run, case.t_s))
        figures["detect_s"] = figures["latch_after_limit_s"]
    if case.from_end and figures["detect_s"] is not None:
        figures["detect_s"] = round(figures["detect_s"] - case.duration_s, 4)
    return {"label": case.label, "kind": case.kind, "driver": driver, "expected_fault": case.fault,
            "expected_mode": case.mode, "bound_s": case.bound_s, "drive_watchdog_s": run.drive_watchdog_s,
            **figures, "run": run}


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    from hal.drives import DRIVE_NAMES
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--driver", choices=DRIVE_NAMES + ("all",), default="all",
                   help="the drive to inject on (default: every drive of hal.drives)")
    args = p.parse_args()
    t0 = time.perf_counter()
    rows = []
    for driver in (DRIVE_NAMES if args.driver == "all" else (args.driver,)):
        for case in CASES:
            if case.applies_to(driver):
                r = run_case(case, args.seed, driver)
                r.pop("run")
                rows.append(r)
    result = {"benchmark": "faults", "cases": rows, "wall_s": round(time.perf_counter() - t0, 1)}
    if args.json:
        emit(result, True)
        return
    print(f"{'drive':<7} {'fault':<44} {'detect ms':>9} {'bound':>6} {'safe ms':>8} {'mode':>8} "
          f"{'cmd step':>9} {'torque step':>11} {'watchdog ms':>11}")

    def ms(x: Optional[float]) -> str:
        return "-" if x is None else f"{1e3 * x:.1f}"

    for r in rows:
        print(f"{r['driver']:<7} {r['label']:<44} {ms(r['detect_s']):>9} {ms(r['bound_s']):>6} {ms(r['safe_s']):>8} "
              f"{r['mode']:>8} {r['largest_cmd_step_Nm']:>7.2f} N*m {r['largest_torque_step_Nm']:>7.2f} N*m "
              f"{ms(r['watchdog_s']):>11}")
    for r in rows:
        if "derate_from_s" in r:
            print(f"{r['label']}: derating from {ms(r['derate_from_s'])} ms, alert from {ms(r['alert_from_s'])} ms, "
                  f"limit reached at {ms(r['limit_reached_s'])} ms, latched {ms(r['latch_after_limit_s'])} ms "
                  f"after it; torque limit fell to {r['torque_limit_min_Nm']} N*m; peak torque per stride "
                  f"{r['peak_torque_first_Nm']} -> {r['peak_torque_last_Nm']} N*m while derated")
    print(f"wall time {result['wall_s']} s")


if __name__ == "__main__":
    main()
