"""Faults in the clinician's words at the console (issue 17): `faults` and `help faults` say what
happened, what the ankle does now and what to do; the symmetry adaptation may not be switched on
while faults are latched, and says on the console when a fault switched it off.

`ankle sim --console` over a real pseudo-terminal, with a fault injected into the simulated devices.
The waits are hang guards: what is checked is what the console says once the fault has latched."""
from __future__ import annotations

import time

from controller.console.audit import read as read_audit
from controller.kernels.faults import advice
from controller.params import store as paramstore
from controller.params.registry import ParamSet
from conftest import sim_console

PIN = "8642"


def _until_latched(term, name: str, timeout_s: float = 60.0) -> str:
    deadline = time.monotonic() + timeout_s
    while True:
        out = term.cmd("faults")
        if out.startswith("faults: ") and name in out.split("\n", 1)[0]:
            return out
        assert time.monotonic() < deadline, out
        time.sleep(0.5)


def test_faults_say_what_to_do_and_the_adaptation_is_not_switched_on_under_them(tmp_path):
    with sim_console(tmp_path, PIN, "--duration", "120", "--inject", "load_loss@3") as (term, _):
        term.cmd(f"login {PIN}")
        out = _until_latched(term, "load")
        # the fault's sentence, wrapped to the terminal, under the list of names
        assert " ".join(out.split()).count(advice("load")) == 1, out
        assert all(len(line) <= 80 for line in out.split("\r\n")), out
        glossary = " ".join(term.cmd("help faults").split())
        assert advice("motor_stale") in glossary and advice("frames_lost") in glossary
        out = term.cmd("set symmetry.adapt 1")
        assert out.startswith("refused: the adaptation cannot be switched on while faults are latched (")
        assert "load" in out and "`clear`" in out and out.endswith("nothing was changed"), out
        assert term.cmd("get symmetry.adapt").split(" = ", 1)[1].startswith("0")
        assert not [r for r in read_audit(tmp_path / "audit.log") if r["parameter"] == "symmetry.adapt"]


def test_the_console_announces_that_a_fault_switched_the_adaptation_off(tmp_path):
    params = tmp_path / "adapt.params"
    paramstore.save(ParamSet({"symmetry.adapt": 1}), params)
    (tmp_path / "state").mkdir()
    with sim_console(tmp_path / "state", PIN, "--duration", "120", "--params", str(params),
                     "--inject", "load_loss@8") as (term, _):
        # said unprompted, above whatever is being typed; the faults it names are those latched
        # (on a busy machine an overrun may come first: then that is what it names)
        said = term.read_until(lambda out: b"switched itself off" in out and out.endswith(b"> "),
                               timeout_s=90).decode(errors="replace")
        line = said[said.index("the symmetry adaptation switched itself off"):].split("\r\n")[0]
        assert "a fault (" in line and "`faults` shows none" in " ".join(said.split()), said[-600:]
        assert term.cmd("get symmetry.adapt").split(" = ", 1)[1].startswith("0")
