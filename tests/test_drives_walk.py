"""Every drive of the table walks the simulated wearer on the whole stack (``ankle sim --driver``).

The issue's figures for each drive, from the command a user types: a 60 s walk with no missed
heel strike, no torque-limit violation and the net stance work within 0.02 J/kg of its target.
"""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from hal.drives import DRIVE_NAMES

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("driver", DRIVE_NAMES)
def test_ankle_sim_walks_a_minute_on_every_drive(driver):
    out = subprocess.run([sys.executable, "-m", "controller.cli", "sim", "--driver", driver,
                          "--duration", "60", "--json"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout)
    assert r["driver"] == driver
    assert r["strides_walking"] >= 50 and r["missed_heel_strikes"] == 0 and r["false_heel_strikes"] == 0
    assert r["torque_limit_violations"] == 0
    assert abs(r["net_work_J_per_kg"] - r["work_target_J_kg"]) <= 0.02, r
    assert r["faults"] == [] and r["final_mode"] == "walk"
