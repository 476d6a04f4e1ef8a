"""The console's screen on a real pseudo-terminal, as miniterm, screen, picocom or PuTTY show it.

The console runs in this process (the service console: the same session, line editing and
commands as on the running ankle) on a pty's master, as ``ankle sim --console`` serves it; the
terminal is the pty's slave, opened the way a terminal program opens it (its input flushed), with
its line discipline either raw (``tty.setraw``, what terminal programs set) or left in the kernel's
default cooked mode.  Both must behave the same: a prompt as soon as a terminal attaches or on its
first key of any kind, the PIN echoed as stars, Up and Down in both encodings, a `watch` line
refreshed without escape sequences within 79 columns, and announcements printed above the line
being typed.  The last test is ``ankle sim --console`` itself announcing its time limit.
"""
from __future__ import annotations

import os
import re
import threading
import tty

import pytest

from controller.console.access import PinFile
from controller.console.session import FdPort, service_console
from conftest import CONSOLE_PROMPT, Terminal, attach, sim_console

PIN = "8642"
MODES = ["raw", "cooked"]
WIDTH = 79                       # the console's lines stay inside an 80-column terminal


class Harness:
    """A service console on a pty's master, and the pty's path for terminals to attach to.

    ``hold``: keep a descriptor of the slave open here, as a UART is always "attached": then the
    console cannot tell when a terminal attaches (only its first key says so)."""

    def __init__(self, state, hold: bool):
        PinFile(state / "pin").set(PIN)
        self.master, slave = os.openpty()
        tty.setraw(slave)
        self.path = os.ttyname(slave)
        self.held = slave if hold else None
        if not hold:
            os.close(slave)
        self.session = service_console(FdPort(self.master), state, state / "ankle.params")
        self.session.start()

    def close(self):
        self.session.stop()
        os.close(self.master)
        if self.held is not None:
            os.close(self.held)


@pytest.fixture
def pty_console(tmp_path):
    h = Harness(tmp_path, hold=False)
    yield h
    h.close()


@pytest.fixture(params=MODES)
def term(request, pty_console):
    """A terminal attached in raw or cooked mode, at the prompt the console showed by itself."""
    t = attach(pty_console.path, request.param)
    t.read_until_prompt()
    yield t
    t.close()


def wait_for(condition, timeout_s: float = 10.0):
    """Until ``condition()``; AssertionError (a hang) after ``timeout_s``."""
    import time
    end = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.01)


def lines_of(out: bytes):
    """What each terminal row ends up showing, CR-refreshes included: every CR or LF starts one."""
    return [seg for seg in re.split(rb"[\r\n]", out) if seg]


@pytest.mark.parametrize("mode", MODES)
def test_the_banner_and_prompt_show_as_a_terminal_attaches_without_enter(pty_console, mode):
    for _ in range(2):                       # and again for a terminal attaching later
        t = attach(pty_console.path, mode)
        out = t.read_until(lambda o: CONSOLE_PROMPT.search(o) is not None)
        assert b"ankle service console" in out and out.endswith(b"ankle> "), out
        assert all(len(row.decode()) <= WIDTH for row in lines_of(out)), out
        assert b"\x1b" not in out
        t.close()
        wait_for(lambda: not pty_console.session.attached)     # it saw the terminal go


def test_a_terminal_that_goes_takes_the_pins_rights_with_it(pty_console, tmp_path):
    """Whoever attaches next starts read-only: a prosthetist who unplugged without `logout` must not
    leave the ankle open to changes (the helper's note, issue 17)."""
    from controller.console.audit import read as read_audit
    t = attach(pty_console.path, "raw")
    t.read_until_prompt()
    assert t.cmd(f"login {PIN}").startswith("prosthetist")
    t.close()
    wait_for(lambda: not pty_console.session.attached)
    wait_for(lambda: any(r["action"] == "logout" for r in read_audit(tmp_path / "audit.log")))
    t = attach(pty_console.path, "raw")
    t.read_until_prompt()
    assert t.cmd("set swing.target_rad 3").startswith("read-only")
    t.close()


def test_a_terminal_that_goes_takes_its_history_with_it(pty_console):
    """The line history was shared by every terminal: whoever attached next could recall the last
    person's commands with Up (noted in issue 17's first session).  Now each terminal starts empty."""
    t = attach(pty_console.path, "raw")
    t.read_until_prompt()
    t.cmd("get swing.target_rad")
    t.port.write(b"\x1b[A")                     # Up recalls it while the same terminal is there
    assert t.read_until(lambda o: o.endswith(b"get swing.target_rad")).endswith(b"get swing.target_rad")
    t.port.write(b"\x15")                       # Ctrl-U: the line goes
    t.close()
    wait_for(lambda: not pty_console.session.attached)
    assert pty_console.session.editor.history == ()
    t = attach(pty_console.path, "raw")
    t.read_until_prompt()
    t.port.write(b"\x1b[A")                     # Up: nothing to recall, nothing shown
    t.port.write(b"\r")
    out = t.read_until(lambda o: o.count(b"ankle> ") >= 1 and o.endswith(b"ankle> "))
    assert b"swing" not in out, out
    t.close()


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("key", [b"x", b" ", b"\x1b[C", b"\x1bOB", b"\x7f"])
def test_the_first_key_of_any_kind_shows_the_prompt(tmp_path, mode, key):
    h = Harness(tmp_path, hold=True)         # always "attached": the banner went before the terminal came
    try:
        Terminal(FdPort(h.held)).read_until_prompt()      # (read by whoever held the line then)
        t = attach(h.path, mode)
        t.port.write(key)
        out = t.read_until(lambda o: b"ankle> " in o)
        assert out.startswith(b"\rankle> "), out
        t.port.write(b"\x15get swing.target_rad\r")
        assert t.read_until_prompt(after=b"\r\n").count("swing.target_rad (toe clearance angle in swing) = ") == 1
        t.close()
    finally:
        h.close()


def test_the_pin_is_echoed_as_stars(term):
    term.port.write(b"login " + PIN.encode()[:2])
    out = term.read_until(lambda o: o.endswith(b"login **"))
    term.port.write(b"\x7f")
    out += term.read_until(lambda o: o.endswith(b"\b \b"))
    term.port.write(PIN.encode()[1:] + b"\r")
    out += term.read_until(lambda o: CONSOLE_PROMPT.search(o) is not None)
    assert out.endswith(b"login **\b \b***\r\nprosthetist: changes allowed\r\nankle# "), out
    assert PIN.encode() not in out and PIN.encode()[:2] not in out


@pytest.mark.parametrize("up", [b"\x1b[A", b"\x1bOA"], ids=["CSI", "SS3"])
def test_up_recalls_the_last_lines_and_never_a_pin(term, up):
    assert term.cmd("get swing.target_rad").startswith("swing.target_rad (toe clearance angle in swing) = ")
    assert "prosthetist" in term.send(f"login {PIN}\r".encode())     # (its echo is masked)
    term.port.write(up)
    assert term.read_until(lambda o: o.endswith(b"login")) == b"login"
    term.port.write(up)
    out = term.read_until(lambda o: o.endswith(b"get swing.target_rad"))
    assert out == b"\b \b" * 5 + b"get swing.target_rad"
    term.port.write(b"\r")
    assert "swing.target_rad (toe clearance angle in swing) = " in term.read_until_prompt(after=b"\r\n")
    down = up[:-1] + b"B"
    term.port.write(up + up + down)
    out = term.read_until(lambda o: o.endswith(b"get swing.target_rad"))
    assert PIN.encode() not in out
    term.port.write(b"\x15")


def test_watch_refreshes_in_place_without_escape_sequences(term, pty_console):
    shown = iter(["x" * 120, "short", "medium line", "y" * 79] + ["z"] * 10 ** 6)
    pty_console.session.console.status_line = lambda: next(shown)
    term.port.write(b"watch\r")
    out = term.read_until(lambda o: o.count(b"\rz") >= 2, timeout_s=20)
    term.port.write(b"q")
    out += term.read_until(lambda o: CONSOLE_PROMPT.search(o) is not None)
    assert b"\x1b" not in out, out
    body = out.split(b"watching; press any key to stop\r\n", 1)[1]
    refreshes = body.split(b"\r")[1:]
    rows = [r for r in refreshes if not r.startswith(b"\n")]
    assert all(len(r) <= WIDTH for r in rows), rows
    assert rows[0] == b"x" * (WIDTH - 3) + b"..."            # clipped to the width, and says so
    assert rows[1] == b"short".ljust(WIDTH)                    # the longer line before it covered
    assert rows[2] == b"medium line".ljust(5)
    assert rows[3] == b"y" * WIDTH
    assert rows[4] == b"z".ljust(WIDTH)


def test_an_announcement_goes_above_the_line_being_typed(term, pty_console):
    term.port.write(b"get swi")
    term.read_until(lambda o: o.endswith(b"get swi"))
    pty_console.session.announce("hi")
    out = term.read_until(lambda o: o.endswith(b"ankle> get swi"))
    assert out == b"\rhi" + b" " * 12 + b"\r\nankle> get swi", out     # the typed line covered, then redrawn
    long = "the simulated session ends in 10 s; " * 4
    pty_console.session.announce(long + "\n\x1b[31mred\x1b[0m")
    out = term.read_until(lambda o: o.endswith(b"ankle> get swi"))
    rows = out.split(b"\r\n")
    assert all(len(r.lstrip(b"\r")) <= WIDTH for r in rows) and len(rows) >= 4, rows
    assert b"\x1b" not in out and b"red" in out
    term.port.write(b"ng.target_rad\r")
    assert "swing.target_rad (toe clearance angle in swing) = " in term.read_until_prompt(after=b"\r\n")


def test_announcements_from_many_threads_each_arrive_whole(term, pty_console):
    threads = [threading.Thread(target=pty_console.session.announce, args=(f"note {i:02d} " + "#" * 40,))
               for i in range(16)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    out = term.read_until(lambda o: o.count(b"#" * 40) == 16 and o.endswith(b"ankle> "))
    for i in range(16):
        assert re.search(rb"(^|[\r\n])note %02d #{40}\r\n" % i, out), out


def test_an_announcement_during_watch_goes_above_the_live_line(term, pty_console):
    pty_console.session.console.status_line = lambda: "live"
    term.port.write(b"watch\r")
    term.read_until(lambda o: o.count(b"\rlive") >= 2)
    pty_console.session.announce("session ends in 60 s")
    out = term.read_until(lambda o: b"session ends in 60 s" in o and o.endswith(b"\rlive"))
    assert b"\rsession ends in 60 s\r\n" in out and b"\x1b" not in out
    term.port.write(b"q")
    term.read_until(lambda o: CONSOLE_PROMPT.search(o) is not None)


def test_the_simulated_session_announces_its_time_limit(tmp_path):
    with sim_console(tmp_path, PIN, "--duration", "14") as (t, proc):
        out = t.read_until(lambda o: b"ends in 10 s" in o and o.endswith(b"ankle> "), timeout_s=60)
        assert b"\x1b" not in out
        out = t.read_until(lambda o: b"has ended" in o, timeout_s=60)
        assert re.search(rb"\r[^\r\n]*has ended[^\r\n]*\r\n", out), out
        proc.wait(timeout=60)


def test_the_time_warnings_of_a_session():
    from controller.console.session import time_warnings
    assert [at for at, _ in time_warnings(600.0, "the simulated session")] == [540.0, 590.0]
    assert [at for at, _ in time_warnings(30.0, "x")] == [20.0]           # no 60-s warning in a 30-s session
    assert time_warnings(10.0, "x") == []
    for what in ("the simulated session", "the controller's run"):
        assert all(len(text) <= 79 for _, text in time_warnings(600.0, what))
        assert time_warnings(600.0, what)[1][1].startswith(f"{what} ends in 10 s")