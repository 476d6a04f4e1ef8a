"""Shared helpers: full records for the kernels' dict wrappers."""
def inputs(**over):
    """An Inputs record with fresh, plausible values at t = 1.0 s (fields overridable)."""
    d = dict(shank_gyro_rad_s=0.0, accel_x_m_s2=0.0, accel_y_m_s2=9.8, load_N=700.0,
             ankle_angle_rad=0.0, supply_V=24.0, imu_rx_s=1.0, load_rx_s=1.0, node_status_rx_s=1.0,
             imu_seq=0, load_seq=0, node_flags=0, imu_frames=0, imu_disorder=0, imu_lost=0,
             load_frames=0, load_disorder=0, load_lost=0, motor_angle_rad=0.0, motor_vel_rad_s=0.0,
             motor_torque_Nm=0.0, motor_temp_C=30.0, motor_error=0, motor_rx_s=1.0, drive_supply_V=float("nan"),
             send_failures=0, bus_error_ticks=0, imu_valid=1, load_valid=1)
    d.update(over)
    return d


def gait(**over):
    d = dict(phase=0.3, heel_strike=0, toe_off=0, stance=1, walking=1, stride_time_s=1.1,
             stance_time_s=0.68, cadence_steps_min=109.0, t_heel_strike_s=0.7, t_toe_off_s=0.4,
             confidence=1.0, standing=0, source=1, stride_estimate_s=1.1)
    d.update(over)
    return d


def command(**over):
    d = dict(torque_ff_Nm=0.0, p_des_rad=0.0, v_des_rad_s=0.0, kp_Nm_rad=0.0, kd_Nms_rad=0.0,
             torque_expected_Nm=0.0, pushoff_Nm=0.0)
    d.update(over)
    return d


def kill_when_ready(args, rng, max_delay_s, **popen):
    """Start ``args`` (a child that prints "ready" when it has begun its work), SIGKILL it after a
    random delay up to ``max_delay_s``, and wait for it; a real crash at a random moment."""
    import signal
    import subprocess
    import time
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **popen)
    try:
        assert proc.stdout.readline() == b"ready\n", proc.stderr.read().decode()
        time.sleep(rng.uniform(0.0, max_delay_s))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()


# --- the console over a real pseudo-terminal ---------------------------------------------------

import contextlib  # noqa: E402
import re  # noqa: E402
from pathlib import Path  # noqa: E402

CONSOLE_PROMPT = re.compile(rb"ankle(?: fit \d/\d [a-z-]+)?[>#] $")
ROOT = Path(__file__).resolve().parent.parent


class Terminal:
    """pyserial on the console's pty: type a line, read until the next prompt."""

    def __init__(self, path):
        """``path``: a tty's path (opened with pyserial), or a port object with pyserial's
        read/write/in_waiting (controller.console.session.FdPort on a pty's master)."""
        import serial
        self.port = serial.Serial(path, timeout=0.05) if isinstance(path, str) else path

    def read_until(self, done, timeout_s: float = 10.0, on_data=None) -> bytes:
        """Bytes until ``done(bytes so far)``; AssertionError (a hang) if not within ``timeout_s``.
        ``on_data(bytes so far)`` sees every arrival (e.g. to answer a `watch` with a key)."""
        import time
        out = b""
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            out += self.port.read(self.port.in_waiting or 1)    # back as soon as anything arrives
            if on_data is not None:
                on_data(out)
            if done(out):
                return out
        raise AssertionError(f"no prompt within {timeout_s} s (a hang); got {out[-500:]!r}")

    def read_until_prompt(self, timeout_s: float = 10.0, after: bytes = b"") -> str:
        """What arrives up to a prompt that follows ``after`` (an earlier prompt still queued,
        e.g. the banner's, is read past)."""
        def done(out: bytes) -> bool:
            start = out.find(after)
            return start >= 0 and CONSOLE_PROMPT.search(out, start + len(after)) is not None
        out = self.read_until(done, timeout_s)
        return out[out.find(after):].decode("utf-8", "replace")

    def send(self, data: bytes, timeout_s: float = 10.0) -> str:
        self.port.write(data)
        return self.read_until_prompt(timeout_s)

    def cmd(self, line: str, end: bytes = b"\r", timeout_s: float = 10.0) -> str:
        """The reply to ``line`` (without the echo and the prompt)."""
        from controller.console.lineedit import LineEditor
        editor = LineEditor()           # the echo as the console shows it: a PIN as stars
        editor.feed(line.encode())
        self.port.write(line.encode() + end)
        out = self.read_until_prompt(timeout_s, after=editor.shown.encode() + b"\r\n")
        body = out.split("\r\n", 1)[1]
        return CONSOLE_PROMPT.sub(b"", body.encode()).decode().strip()

    def close(self) -> None:
        """Detach from the tty (pyserial's port, or the descriptor :func:`attach` opened)."""
        close = getattr(self.port, "close", None)
        if close is not None:
            close()
        else:
            import os
            os.close(self.port.fd)


def cooked_mode():
    """The termios attributes of a fresh pseudo-terminal: the kernel's default, cooked line
    discipline (canonical input, echo, CR to NL, signals)."""
    import os
    import termios
    master, slave = os.openpty()
    try:
        return termios.tcgetattr(slave)
    finally:
        os.close(master)
        os.close(slave)


def attach(path: str, mode: str = "raw") -> Terminal:
    """A Terminal on the tty ``path``, opened as a terminal program does: in ``mode`` "raw"
    (tty.setraw, as miniterm, screen and picocom set it) or "cooked" (the kernel's default line
    discipline, as a plain shell leaves a tty), and its input flushed as pyserial does on open (what
    was sent before it attached is gone)."""
    import os
    import termios
    import tty
    from controller.console.session import FdPort
    if mode not in ("raw", "cooked"):
        raise ValueError(f"mode must be 'raw' or 'cooked', got {mode!r}")
    fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
    if mode == "raw":
        tty.setraw(fd, termios.TCSANOW)
    else:
        termios.tcsetattr(fd, termios.TCSANOW, cooked_mode())
    termios.tcflush(fd, termios.TCIFLUSH)
    return Terminal(FdPort(fd))


def finish(proc, timeout_s: float):
    """(the rest of ``proc``'s stdout, its stderr) once it has exited; kills it after ``timeout_s``.

    Use this, not ``communicate``, once a test has read lines from ``proc.stdout``: communicate
    reads the pipes' descriptors directly, so lines the file object had already buffered
    (two lines that arrived in one read) were silently lost: the flake of CI stop 20."""
    import subprocess
    import threading
    got = {}
    def read(name, stream):
        got[name] = stream.read() if stream is not None else ""
    readers = [threading.Thread(target=read, args=item, daemon=True)
               for item in (("out", proc.stdout), ("err", proc.stderr))]
    for r in readers:
        r.start()
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    for r in readers:
        r.join()
    return got["out"], got["err"]


@contextlib.contextmanager
def sim_console(state, pin, *args: str):
    """``ankle sim --console`` (real time implied) in ``state`` (extra ``args``: scenario, duration, ...):
    yields (a Terminal at the first prompt, the process).  ``pin``: given as ``--pin``, or None for
    none.  Its stderr goes to ``state/sim.stderr`` and its stdout is drained into ``proc.output`` (a
    list of lines, the "console on ..." line first), so the simulator never blocks on a full pipe.
    Stopped afterwards with SIGINT, and SIGKILL if that takes more than 30 s."""
    import signal
    import subprocess
    import sys
    import threading
    stderr = open(Path(state) / "sim.stderr", "w")
    proc = subprocess.Popen([sys.executable, "-m", "controller.cli", "sim", "--console",
                             "--state-dir", str(state), *(["--pin", pin] if pin else []), *args],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=stderr, text=True)
    try:
        path = None
        proc.output = []
        for line in proc.stdout:
            m = re.search(r"console on (\S+)", line)
            if m:
                path = m.group(1)
                proc.output.append(line)
                break
        assert path, (Path(state) / "sim.stderr").read_text()
        def drain():
            for rest in proc.stdout:
                proc.output.append(rest)
        threading.Thread(target=drain, daemon=True).start()
        term = Terminal(path)
        try:                        # the console prompts as a terminal attaches, without Enter
            term.read_until_prompt(timeout_s=10)
        except AssertionError:      # its prompt came before pyserial's flush on open (a loaded machine)
            term.send(b"\r")
        yield term, proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:    # a console that will not stop is killed, and says so below
            proc.kill()
            proc.wait()
        # what it said, after its stderr in the one file a test's state holds for it: why a
        # controller failed shows there
        try:
            stderr.write("--- its stdout ---\n" + "".join(getattr(proc, "output", [])))
            stderr.close()
        except OSError:         # a test that fills the file system on purpose: no room for it
            pass
