"""Fuzzing the prosthetists' console with hypothesis, on the real thing.

`ankle sim --realtime --console` walks the simulated wearer in real time and serves the console on a
pseudo-terminal; pyserial types into it, logged in with the PIN so that changes are really tried.
Each example is one console line: a command named by `help` (read at run time, so new commands are
fuzzed as soon as they exist) followed by 0-4 arguments mixed from parameter names, numbers of every
awkward kind, unit words and arbitrary text, or else a burst of arbitrary bytes.  After every
example the console must answer with a prompt in time, the process must still run, and a text line
must have had a non-empty UTF-8 reply.  At the end every running value must be inside its range, the
saved parameter files must load whole and in range, and every line of the audit log must parse.

(The 10^5-byte random stream is `tests/test_console.py::test_a_random_byte_stream_breaks_nothing`.)
"""
from __future__ import annotations

import math
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List

import pytest
import serial
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.params import store as paramstore
from controller.console import units
from controller.console.audit import read as read_audit
from controller.params.registry import KNOWN_UNITS, REGISTRY, ParamError
from conftest import CONSOLE_PROMPT, Terminal, sim_console

ROOT = Path(__file__).resolve().parent.parent
#: Lines typed here end with LF, not CR: a payload that starts with LF must not be taken for the
#: second half of a CR LF (the console rightly joins a CR and an LF across reads).
LF = b"\n"
PIN = "2468"
PROMPT = CONSOLE_PROMPT
#: an example's answer must start within this [s]; `clear` waits for the tick (2 s at most)
ANSWER_TIMEOUT_S = 10.0
#: commands the fuzzer leaves out: `watch` streams until a key (the session handles it apart)
EXCLUDED = {"watch"}


class Console:
    """The running `ankle sim --console` (conftest.sim_console) and a terminal on it."""

    def __init__(self, state: Path):
        self.state = state
        self.sync_count = 0
        self._session = sim_console(state, PIN, "--duration", "300")
        self.term, self.proc = self._session.__enter__()

    def stderr(self) -> str:
        return (self.state / "sim.stderr").read_text(errors="replace")[-3000:]

    def assert_alive(self) -> None:
        assert_alive(self.proc, self.stderr)

    def sync(self) -> bytes:
        """Everything the console still sends, up to the answer to a marker line typed now.

        Ctrl-C first drops any half-typed line a payload left behind.  The marker asks for help on
        a command that does not exist, named by a fresh token: the token comes back twice, in the
        echo and quoted in the reply, and the prompt after the second is the marker's own.  (The
        echo alone is not enough: when the marker arrives in the same read as a payload's last
        line, the console echoes both before it answers either.)
        """
        self.sync_count += 1
        token = b"zzsync%d" % self.sync_count
        self.term.port.write(b"\x03help " + token + LF)

        def done(out: bytes) -> bool:
            m = PROMPT.search(out)
            return m is not None and out.count(token) >= 2 and m.start() > out.rindex(token)
        return self.term.read_until(done)

    def stop(self) -> None:
        self.term.port.close()
        self._session.__exit__(None, None, None)


def assert_alive(proc: subprocess.Popen, stderr=lambda: "") -> None:
    """The console's process must still be running (a crash ends it)."""
    code = proc.poll()
    assert code is None, f"the console's process exited with {code}: {stderr()}"


def param_values(params_reply: str) -> dict:
    """name -> SI value from the `params` reply (name, label, value in the clinical unit, range)."""
    shown = dict(re.findall(r"^(\S+)  .*?  = (.+?)\s{2,}\[", params_reply, re.M))
    values = {}
    for p in REGISTRY:
        if p.name in shown:
            try:
                values[p.name] = units.parse(p, shown[p.name])
            except ParamError:           # out of its range (or no number): NaN fails the bounds
                values[p.name] = math.nan
    return values


def assert_in_bounds(values: dict, where: str) -> None:
    """Every registry parameter present in ``values`` (name -> number or text), inside [min, max]."""
    missing = [p.name for p in REGISTRY if p.name not in values]
    assert not missing, f"{where}: missing {missing}"
    for p in REGISTRY:
        v = float(values[p.name])
        assert p.min <= v <= p.max, f"{where}: {p.name} = {values[p.name]} outside [{p.min:g}, {p.max:g}]"


def help_commands(help_reply: str) -> Dict[str, List[str]]:
    """The commands of the `help` reply: name (the first word of each line's usage) -> the words its
    usage offers as choices (``mode walk|passive`` -> ``["walk", "passive"]``)."""
    commands: Dict[str, List[str]] = {}
    for line in help_reply.splitlines():
        m = re.match(r"([a-z][a-z0-9_-]*)\b(.*?)(?:\s{2,}|$)", line)
        if m and m.group(1) not in commands:
            choices = re.findall(r"[a-z][a-z0-9_-]*(?:\|[a-z][a-z0-9_-]*)+", m.group(2))
            commands[m.group(1)] = [w for group in choices for w in group.split("|")]
    return commands


@pytest.fixture(scope="module")
def console(tmp_path_factory):
    con = Console(tmp_path_factory.mktemp("console-fuzz"))
    try:
        # pyserial flushes what waited before it opened (the banner, perhaps not all of it): ask for a
        # prompt, then read up to a marker so that nothing of the start is left to be read
        con.term.port.write(b"\r")
        con.sync()
        reply = con.term.cmd(f"login {PIN}", end=LF)
        assert reply.startswith("prosthetist"), f"login with the PIN failed: {reply!r} {con.stderr()}"
        con.commands = {c: w for c, w in help_commands(con.term.cmd("help", end=LF)).items() if c not in EXCLUDED}
        assert {"get", "set", "save", "login"} <= set(con.commands), con.commands
        # fuzz while the wearer walks: the refusals of walking (fixed parameters, calibration,
        # standby) are the paths to cover
        deadline = time.monotonic() + 30
        while "\nwalking; cadence" not in con.term.cmd("status", end=LF):
            assert time.monotonic() < deadline, "the simulated wearer never walked"
            time.sleep(0.2)
        yield con
    finally:
        con.stop()


# ---------------------------------------------------------------------------------------------- lines
_NAMES = [p.name for p in REGISTRY]
_UNITS = sorted(KNOWN_UNITS) + [f"[{u}]" for u in sorted(KNOWN_UNITS)] + \
    sorted({units.clinical_unit(p) for p in REGISTRY}) + ["Nm", "N.m", "deg", "°", "degrees", "%", "% BW", "mm",
                                                         "kN", ""]
_ODD_NUMBERS = ["nan", "NaN", "-nan", "inf", "-inf", "+inf", "Infinity", "1e999", "-1e999", "1e308", "-1e308",
                "1e-400", "5e-324", "0x10", "0x1p3", "0X1F", "1_000", "1__0", "_1", ".", "-", "+", "1e", "e5",
                "--1", "1.5.5", "1,5", "0.5e-3", "٣", "１２", "¹", "00000000000000000000000000001", "9" * 400,
                "-0", "+0.0", "1e+06", "0b101", "0o17", "1j", "true", "None", "'0.6'", '"0.6"', "0.6'"]
_numbers = st.one_of(
    st.floats().map(repr),                                   # nan, inf, -0.0, 1.7976931348623157e+308, ...
    st.floats(allow_nan=False, allow_infinity=False).map(lambda x: format(x, "g")),
    st.integers().map(str),
    st.integers(-2 ** 70, 2 ** 70).map(hex),
    st.sampled_from(_ODD_NUMBERS),
)
_text = st.one_of(
    st.text(max_size=24),                                    # any Unicode, control characters included
    st.text(st.characters(max_codepoint=0x7F), max_size=24),  # ASCII, many controls
)
_argument = st.one_of(st.sampled_from(_NAMES), _numbers, st.sampled_from(_UNITS), _text,
                      st.sampled_from(["all", "save", "load", "list", "walk", "passive", "standby", "start",
                                       "stop", PIN, "0000", "level-walking", "../x", "-h", "--help"]))


@st.composite
def _well_formed(draw, commands: Dict[str, List[str]]):
    """A well-formed command, so that changes are accepted between the fuzz that is refused:
    ``set`` with an in-range value, ``get`` / ``default`` of a real parameter, or any command with
    none, or one, of the choices its usage offers (``mode passive``, ``profile save NAME``, ...)."""
    names = sorted(commands)
    name = draw(st.sampled_from([c for c in ["set"] * 6 + ["get", "default"] if c in commands] + names))
    if name not in ("set", "get", "default"):
        words = [name]
        if commands[name] and draw(st.integers(0, 3)):
            words.append(draw(st.sampled_from(commands[name])))
            if name == "profile":
                words.append(draw(st.sampled_from(["level-walking", "slow_1", "x"])))
        return " ".join(words)
    p = draw(st.sampled_from(REGISTRY))
    if name == "default":
        return f"default {draw(st.sampled_from([p.name, 'all']))}"
    if name == "get":
        return f"get {p.name}"
    value = draw(st.floats(p.min, p.max) | st.sampled_from([p.min, p.max, p.default]))
    if p.kind is int:
        value = round(value)
    text = format(value, "g") if draw(st.booleans()) else repr(value)
    unit = draw(st.sampled_from(["", p.unit, f"[{p.unit}]", units.clinical_unit(p)]))
    if unit in ("", units.clinical_unit(p)):       # a number alone, or with it, is in the clinical unit
        text = units.format_value(p, value)
    return " ".join(w for w in ("set", p.name, text, unit) if w)


@st.composite
def console_input(draw, commands: Dict[str, List[str]]):
    """(bytes to type, is_text_line): a console line with its line end, or random bytes."""
    kind = draw(st.sampled_from(["line"] * 5 + ["well-formed"] * 3 + ["bytes"]))
    end = draw(st.sampled_from([b"\r", b"\n", b"\r\n"]))
    if kind == "bytes":
        return draw(st.binary(max_size=300)) + end, False
    if kind == "well-formed":
        line = draw(_well_formed(commands))
    else:
        name = draw(st.sampled_from(sorted(commands)))
        if draw(st.integers(0, 9)) == 0:
            name = name.upper()
        args = draw(st.lists(_argument, max_size=4))
        sep = draw(st.sampled_from([" ", " ", "  ", "\t"]))
        line = sep.join([name] + args)
    return line.encode("utf-8") + end, line.replace("\t", " ").isprintable()


# ---------------------------------------------------------------------------------------------- tests
# realtime: the fixture waits (30 s at most) for the real-time wearer to walk, so that the refusals
# of walking are fuzzed; on a machine too busy to keep time it may not walk in time.
@pytest.mark.realtime
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(data=st.data())
def test_fuzzed_lines_get_an_answer_and_break_nothing(console, data):
    term = console.term
    payload, text_line = data.draw(console_input(console.commands), label="typed")

    def stop_a_watch(out: bytes) -> None:
        # a payload that happens to become `watch` streams until a key: send one
        if b"watching; press any key to stop\r\n" in out.rsplit(b"ankle", 1)[-1]:
            term.port.write(b"q")

    try:
        term.port.write(payload)
        first = term.read_until(lambda out: PROMPT.search(out) is not None, on_data=stop_a_watch)
        console.assert_alive()
        rest = console.sync()
    except (serial.SerialException, OSError) as e:      # the pty closed: most likely a crash
        console.assert_alive()
        raise AssertionError(f"the console's port failed: {e}") from None
    console.assert_alive()
    whole = first + rest
    try:
        whole.decode("utf-8")
    except UnicodeDecodeError as e:
        raise AssertionError(f"the console sent bytes that are not UTF-8: {e}; {whole[-300:]!r}") from None
    if text_line:
        # one printable line: its echo, then a reply of at least one line, then the prompt
        body = first.split(b"\r\n", 1)[1] if b"\r\n" in first else b""
        assert PROMPT.sub(b"", body).strip(), f"no reply to {payload!r}: {first!r}"
    if rest.rstrip().endswith(b"ankle>"):
        # a fuzzed login/logout (or a wrong PIN) left the console read-only: log in again so that
        # the next examples try real changes (a lock-out after wrong PINs is allowed to refuse)
        term.cmd(f"login {PIN}", end=LF)


@pytest.mark.realtime      # the same running console (the module's fixture)
def test_after_fuzzing_every_value_is_in_range_and_the_files_are_whole(console):
    term, state = console.term, console.state
    console.assert_alive()
    assert_in_bounds(param_values(term.cmd("params", end=LF)), "params")

    # the control loop behind the console still ticks (the tick runs in a process of its own)
    ticks = []
    for _ in range(2):
        m = re.search(r"(\d+) ticks", term.cmd("status", end=LF))
        assert m, "status no longer shows the loop's tick count"
        ticks.append(int(m.group(1)))
        time.sleep(0.3)
    assert ticks[1] > ticks[0], f"the loop stopped ticking: {ticks}"

    saved = [state / "ankle.params"] + sorted((state / "profiles").glob("*.params"))
    for path in saved:
        if path.exists() or paramstore.backup_path(path).exists():
            loaded = paramstore.load(path)
            assert not loaded.corrupt, f"{path}: {loaded.problems}"
            assert loaded.source == "primary", f"{path}: {loaded.source} {loaded.problems}"
            assert_in_bounds(dict(loaded.params), str(path))

    problems: List[str] = []
    records = read_audit(state / "audit.log", problems=problems)
    assert not problems, problems
    assert records, "nothing was audited (the login at least must be)"
    by_name = {p.name: p for p in REGISTRY}
    for r in records:
        assert r["role"] in ("viewer", "prosthetist"), r
        if r["action"] in ("set", "default", "undo", "load", "profile load"):
            assert r["parameter"] in by_name, f"audit record of an unknown parameter: {r}"
        if r["parameter"] in by_name and r["new"]:          # a parameter change, whatever made it
            p = by_name[r["parameter"]]
            assert p.min <= float(r["new"]) <= p.max, r
    # an exception in the console's thread would be printed there (and the console would stop)
    assert "Traceback" not in console.stderr(), console.stderr()


def test_the_checks_catch_a_crash_a_hang_and_a_value_out_of_range(tmp_path):
    """The fuzz test's own assertions fail when they should (no simulator needed)."""
    dead = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    dead.wait()
    with pytest.raises(AssertionError, match="exited with 3"):
        assert_alive(dead)

    master, slave = os.openpty()          # a terminal nobody answers on
    try:
        term = Terminal(os.ttyname(slave))
        t0 = time.monotonic()
        with pytest.raises(AssertionError, match="no prompt"):
            term.read_until_prompt(timeout_s=0.3)
        # it gave up rather than hanging: a generous bound, since a busy machine may take a while
        # to run this thread again after the 0.3 s (the claim is "returns", not "in 0.3 s")
        assert time.monotonic() - t0 < 10.0
        os.write(master, b"status\r\nankle# ")
        assert term.read_until_prompt(timeout_s=2.0).endswith("ankle# ")
        term.port.close()
    finally:
        os.close(master)
        os.close(slave)

    good = "\n".join(f"{p.name:<42}  {p.label:<40}  = {units.format_with_unit(p, p.default):<16}  "
                     f"{units.format_range(p, ' .. ')}" for p in REGISTRY)
    assert_in_bounds(param_values(good), "params")
    p = REGISTRY[0]
    bad = good.replace(f"= {units.format_value(p, p.default)} ", f"= {p.max * 2 + 1:g} ", 1)
    with pytest.raises(AssertionError, match="outside"):
        assert_in_bounds(param_values(bad), "params")
    with pytest.raises(AssertionError, match="missing"):
        assert_in_bounds(param_values(good.split("\n", 1)[1]), "params")

    assert help_commands("help [COMMAND]   list\nset NAME VALUE   change\nmode walk|passive  x|y\n"
                         "log [start|stop]   a|b\n") == \
        {"help": [], "set": [], "mode": ["walk", "passive"], "log": ["start", "stop"]}
