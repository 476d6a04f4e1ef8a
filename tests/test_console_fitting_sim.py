"""The guided fitting end to end: `ankle sim --console --scenario fitting` (the simulated wearer
stands until the console's `wearer walk`), a pyserial terminal on its pty, and the prosthetist of
sim/tools/worked_fitting.py doing the whole fitting from the replies it reads.  The real tick, the
real CAN frames, the real audit log and parameter files."""
from __future__ import annotations

import re

import pytest

from controller.console.audit import read as read_audit
from controller.params import store as paramstore
from controller.params.registry import REGISTRY, by_name
from conftest import sim_console
from sim.tools.worked_fitting import MASS_KG, PIN, SIM_ARGS, Session, drive

#: A session of about two minutes whose wearer must walk and stand when told: the wall clock decides.
pytestmark = pytest.mark.realtime


def test_a_whole_guided_fitting_on_the_simulated_wearer_ends_well_and_is_recorded(tmp_path):
    with sim_console(tmp_path, PIN, "--duration", "400", *SIM_ARGS) as (term, _):
        say = Session(lambda line, timeout_s: term.cmd(line, timeout_s=timeout_s))
        summary = drive(say).replace("\r\n", "\n")
    transcript = "\n".join(say.lines)
    assert "\nfitting done after" in summary, transcript[-3000:]
    for title in ("body mass", "sensor zeros while standing", "learning walk", "push-off strength",
                  "symmetry check", "profile"):
        assert re.search(rf"^  {title} +\S", summary, re.M), title
    assert "not done" not in summary and "skipped" not in summary, summary
    # the simulator gives the controller the wearer's mass (--mass): the step confirms it
    assert re.search(rf"body mass +{MASS_KG:g} kg \(as it was\)", summary), summary
    # the ankle was passive (the fitting chose it) until push-off's checks passed, then walked
    records = read_audit(tmp_path / "audit.log")
    modes = [(r["old"], r["new"]) for r in records if r["action"] == "mode"]
    assert modes[0][1] == "passive" and modes[-1][1] == "walk", modes
    first_walk = next(i for i, r in enumerate(records) if r["action"] == "mode" and r["new"] == "walk")
    levels = [r for r in records if r["parameter"] == "pushoff.torque_Nm_kg"]
    assert levels and records.index(levels[0]) < first_walk      # the gentle level set before power
    strengths = [float(r["new"]) for r in levels if r["action"] == "set"]
    assert strengths == sorted(strengths) and strengths[-1] == 0.54 and strengths[0] == 0.14, strengths
    # every change within the registry's bounds and saved: the profile is the parameter file
    saved = paramstore.load(tmp_path / "profiles" / "level-walking.params")
    assert saved.source == "primary" and not saved.problems
    assert saved.params == paramstore.load(tmp_path / "ankle.params").params
    assert saved.params["wearer.mass_kg"] == MASS_KG and saved.params["pushoff.torque_Nm_kg"] == 0.54
    for p in REGISTRY:
        assert p.min <= saved.params[p.name] <= p.max, p.name
    assert saved.params["calibration.ankle_zero_rad"] != by_name("calibration.ankle_zero_rad").default
    steps = [r["detail"] for r in records if r["action"] == "fit"]
    assert steps[0] == "fit start" and steps[-1].startswith("fit end: done"), steps
