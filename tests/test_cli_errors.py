"""Bad input to the ``ankle`` command gets one line and a non-zero exit, never a traceback, and
leaves no output file behind; its JSON is strict JSON (no NaN).  Real processes, real files,
real devices (/dev/zero), a real FIFO and pseudo-terminal."""
from __future__ import annotations

import io
import json
import os
import resource
import stat
import subprocess
import sys
import tempfile
import tty
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from controller import cli
from controller.params import store as paramstore
from controller.cliio import InputFileError, OutputTarget, json_text, read_input
from controller.params.registry import ParamSet

ROOT = Path(__file__).resolve().parents[1]
MEMORY_LIMIT_BYTES = 3 << 30     # so a command that reads /dev/zero unbounded fails instead of eating the machine


def _limit_memory():
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT_BYTES, MEMORY_LIMIT_BYTES))


def ankle(*args, cwd, timeout=120):
    return subprocess.run([sys.executable, "-m", "controller.cli", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, preexec_fn=_limit_memory,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


def strict_json(text: str):
    def refuse(name):
        raise ValueError(f"not strict JSON: {name}")
    return json.loads(text, parse_constant=refuse)


def _config(tmp_path: Path, params_file: str = "", log_directory: str = "") -> Path:
    """deploy/sim.toml (a socketcand bus on loopback, nothing listening) with [params] and [log] set."""
    text = (ROOT / "deploy" / "sim.toml").read_text()
    text = text.replace('[params]\n# "" = the registry\'s defaults, nothing saved.  A relative path would be taken '
                        'from deploy/.\nfile = ""', f'[params]\nfile = "{params_file}"')
    text = text.replace('[log]\ndirectory = ""', f'[log]\ndirectory = "{log_directory}"')
    assert f'file = "{params_file}"' in text and f'directory = "{log_directory}"' in text
    path = tmp_path / "run.toml"
    path.write_text(text.replace("port = 29536", "port = 9"))
    return path


GOOD_CSV = "t,shank_gyro,load,ankle_angle\n" + "".join(f"{k / 100},0.1,700,0.01\n" for k in range(50))

# (case id, set-up(tmp) -> argv, what stderr must say)
CASES = [
    ("sim --params DIR", lambda d: ["sim", "--duration", 2, "--params", d / "dir"], "dir: is a directory"),
    ("[params] file is a directory", lambda d: ["run", "--config", _config(d, params_file=str(d / "dir"))],
     "params.file: "),
    ("replay DIR", lambda d: ["replay", d / "dir", "--out", d / "out.csv"], "dir: is a directory"),
    ("report DIR", lambda d: ["report", d / "dir"], "dir: is a directory"),
    ("[log] directory in /proc", lambda d: ["run", "--config", _config(d, log_directory="/proc/x/y")],
     "log.directory: cannot create /proc/x/y"),
    ("run --config /dev/zero", lambda d: ["run", "--config", "/dev/zero"], "/dev/zero: not a regular file"),
    ("replay /dev/zero", lambda d: ["replay", "/dev/zero", "--out", d / "out.csv"], "/dev/zero: not a regular file"),
    ("report /dev/zero", lambda d: ["report", "/dev/zero"], "/dev/zero: not a regular file"),
    ("replay FIFO", lambda d: ["replay", d / "fifo", "--out", d / "out.csv"], "fifo: not a regular file (a FIFO)"),
    ("report FIFO", lambda d: ["report", d / "fifo"], "fifo: not a regular file (a FIFO)"),
    ("run --config FIFO", lambda d: ["run", "--config", d / "fifo"], "fifo: not a regular file (a FIFO)"),
    ("replay --out into an unwritable folder", lambda d: ["replay", d / "good.csv", "--out", "/sys/out.csv"],
     "/sys/out.csv: cannot create it in /sys: permission denied"),
    # a special file is never renamed over (as root, --out /dev/null used to replace the device node
    # with a regular file); a FIFO of our own stands for it, so the unfixed code harms nothing
    ("replay --out a special file", lambda d: ["replay", d / "good.csv", "--out", d / "fifo"],
     "fifo: not a regular file (a FIFO)"),
    ("sim --plot p.nosuchformat", lambda d: ["sim", "--duration", 2, "--plot", d / "p.nosuchformat"],
     "matplotlib cannot write '.nosuchformat' figures"),
    ("sim --log with a bad --plot leaves no log", lambda d: ["sim", "--duration", 2, "--log", d / "log.csv",
                                                             "--plot", d / "p.nosuchformat"], "--plot"),
    ("report --out p.nosuchformat", lambda d: ["report", d / "good.csv", "--out", d / "p.nosuchformat"],
     "matplotlib cannot write"),
    ("replay a CSV with a bad cell", lambda d: ["replay", d / "bad.csv", "--out", d / "out.csv"],
     "row 3, column load"),
]


@pytest.fixture
def files(tmp_path):
    (tmp_path / "dir").mkdir()
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "good.csv").write_text(GOOD_CSV)
    (tmp_path / "bad.csv").write_text("t,shank_gyro,load,ankle_angle\n0,0,0,0\n0.01,0,x,0\n")
    return tmp_path


@pytest.mark.parametrize("argv, message", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_gets_one_line_and_leaves_no_output(files, argv, message):
    args = argv(files)
    before = sorted(os.listdir(files))
    proc = ankle(*args, cwd=files, timeout=60)
    lines = proc.stderr.splitlines()
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert len(lines) == 1 and lines[0].startswith("ankle "), proc.stderr
    assert message in lines[0], lines[0]
    assert sorted(os.listdir(files)) == before              # no output file, no temporary left
    assert stat.S_ISFIFO(os.stat(files / "fifo").st_mode)   # still the FIFO it was


def test_a_failed_command_leaves_the_previous_output_untouched(files):
    (files / "out.csv").write_text("previous\n")
    proc = ankle("replay", files / "bad.csv", "--out", files / "out.csv", cwd=files)
    assert proc.returncode == 2 and (files / "out.csv").read_text() == "previous\n"
    assert sorted(os.listdir(files)) == ["bad.csv", "dir", "fifo", "good.csv", "out.csv"]


def test_replay_of_one_row_succeeds_and_says_there_is_no_rate(tmp_path):
    (tmp_path / "one.csv").write_text("t,shank_gyro,load,ankle_angle\n0,0,0,0\n")
    proc = ankle("replay", "one.csv", "--out", "o.csv", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "at about n/a Hz" in proc.stdout and proc.stderr == ""
    assert (tmp_path / "o.csv").read_text().splitlines()[0].endswith("phase,heel_strike,toe_off,walking")
    assert sorted(os.listdir(tmp_path)) == ["o.csv", "one.csv"]
    assert (tmp_path / "o.csv").stat().st_mode & 0o044          # not mkstemp's 0600: as a plain create


def test_host_hang_without_a_value_works_and_its_json_is_strict(tmp_path):
    proc = ankle("sim", "--duration", 3, "--inject", "host_hang@1", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    result = strict_json(proc.stdout)
    assert result["injected"] == ["host_hang@1"]
    assert isinstance(result["peak_torque_Nm"], float) and result["peak_torque_Nm"] > 0   # rows after the hang are NaN
    text = ankle("sim", "--duration", 3, "--inject", "host_hang@1", cwd=tmp_path)
    assert text.returncode == 0 and "nan" not in text.stdout.lower(), text.stdout + text.stderr


def test_sim_json_with_a_fault_is_strict_json(tmp_path):
    proc = ankle("sim", "--duration", 3, "--inject", "imu_loss@1", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    result = strict_json(proc.stdout)
    assert "imu" in result["faults"]
    assert result["per_stride"][0]["phase_error_pct"] is None         # NaN in Python: null in JSON


def test_replay_and_report_json_are_strict(tmp_path):
    log = tmp_path / "log.csv"
    assert ankle("sim", "--duration", 4, "--log", log, cwd=tmp_path).returncode == 0
    replay = ankle("replay", log, "--out", tmp_path / "out.csv", "--json", cwd=tmp_path)
    assert replay.returncode == 0 and strict_json(replay.stdout)["samples"] > 1000
    report = ankle("report", log, "--json", cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    strict_json(report.stdout)


def test_strides_with_push_off_are_those_that_had_push_off(tmp_path):
    # imu_loss latches the imu fault: the estimator still walks (on the load), the safety stage
    # takes push-off away, so strides after it walk with no push-off
    proc = ankle("sim", "--duration", 7, "--inject", "imu_loss@3", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    strides = [ln for ln in proc.stdout.splitlines() if ln.startswith("stride ")]
    pushed = [ln for ln in strides if ln.rstrip().endswith("N*m") and " push-off " in ln
              and "no push-off" not in ln]
    summary = next(ln for ln in proc.stdout.splitlines() if ln.startswith("summary:"))
    assert f"{len(pushed)} with push-off" in summary, summary
    assert all(ln.endswith("no push-off") for ln in strides[4:]), strides
    result = strict_json(ankle("sim", "--duration", 7, "--inject", "imu_loss@3", "--json", cwd=tmp_path).stdout)
    assert result["strides_pushoff"] == len(pushed) < result["strides_walking"]
    for s in result["per_stride"]:
        assert s["pushoff"] == (s["pushoff_peak_Nm"] >= 5.0)


# --- the damaged profile -------------------------------------------------------------------------

def test_a_damaged_profile_is_said_to_be_damaged(tmp_path):
    from conftest import Terminal
    from controller.console.access import PinFile
    from controller.console.session import FdPort
    PinFile(tmp_path / "pin").set("2468")
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    paramstore.save(ParamSet(), profiles / "fast.params")
    (profiles / "fast.params").write_text('{"format": "ankle-params", "version": 1, "values": {')   # cut short
    paramstore.backup_path(profiles / "fast.params").unlink()
    (profiles / "odd.params").mkdir()                       # a directory in a profile's place
    master, slave = os.openpty()
    tty.setraw(slave)
    console = subprocess.Popen([sys.executable, "-m", "controller.cli", "console", "--state-dir", str(tmp_path),
                                "--port", os.ttyname(slave)], cwd=tmp_path, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        term = Terminal(FdPort(master))
        term.send(b"\r", timeout_s=30)
        term.cmd("login 2468")
        out = term.cmd("profile load fast")
        assert out.startswith("profile fast is damaged: fast.params: not valid JSON"), out
        assert out.endswith("; nothing loaded") and "no profile" not in out
        assert term.cmd("profile list") == "profiles: fast (damaged), odd (damaged)"
        assert term.cmd("profile load odd") == "profile odd is damaged: odd.params is a directory; nothing loaded"
        assert "no profile 'slow'" in term.cmd("profile load slow")
        term.port.write(b"quit\r")
        console.wait(timeout=20)
    finally:
        if console.poll() is None:
            console.kill()
            console.wait()
        os.close(master)
        os.close(slave)


# --- the one reader and the one writer -----------------------------------------------------------

def test_read_input_is_bounded_and_names_the_path(tmp_path):
    big = tmp_path / "big.csv"
    big.write_bytes(b"x" * 2048)
    with pytest.raises(InputFileError, match=r"big.csv: 2048 bytes, over the 1024 bytes limit for a log"):
        read_input(big, 1024, "log")
    assert read_input(big, 2048) == b"x" * 2048
    with pytest.raises(InputFileError, match=r"nope: no such file"):
        read_input(tmp_path / "nope", 10)


def test_output_target_commits_only_when_asked(tmp_path):
    target = OutputTarget(tmp_path / "o.txt")
    target.reserve()
    target.temp.write_text("half")
    target.discard()
    assert os.listdir(tmp_path) == []
    target.reserve()
    target.temp.write_text("whole")
    target.commit()
    assert os.listdir(tmp_path) == ["o.txt"] and (tmp_path / "o.txt").read_text() == "whole"


def test_json_text_maps_every_non_finite_float_to_null():
    import numpy as np
    value = {"a": float("nan"), "b": [float("inf"), -float("inf"), np.float64("nan"), np.float32(1.5)],
             "c": (np.int64(3), True, None, "x")}
    assert strict_json(json_text(value)) == {"a": None, "b": [None, None, None, 1.5], "c": [3, True, None, "x"]}


# --- any bytes as a CSV: one line or success -----------------------------------------------------

def _main(argv):
    """The CLI's main() in this process (as the console script calls it), output captured."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = cli.main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


_finite = st.floats(-1e4, 1e4, allow_nan=False).map(repr)
# mostly numbers (so the deeper paths are reached: one row, two rows, a t that does not increase),
# sometimes anything
_cells = st.one_of(_finite, _finite, _finite, st.sampled_from(["", "x", "nan", "inf", "1e999", "-0"]))
_COLUMNS = ["t", "shank_gyro", "load", "ankle_angle", "heel_strike", "toe_off", "walking", "torque_Nm"]
_csv_like = st.builds(
    lambda header, rows, tail: (",".join(header) + "\n" + "".join(",".join(r) + "\n" for r in rows)).encode() + tail,
    st.permutations(_COLUMNS),
    st.lists(st.one_of(st.lists(_cells, min_size=8, max_size=8), st.lists(_cells, min_size=7, max_size=9)),
             max_size=4),
    st.one_of(st.just(b""), st.binary(max_size=8)))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.one_of(st.binary(max_size=300), _csv_like), command=st.sampled_from(["replay", "report"]),
       as_json=st.booleans())
def test_any_bytes_as_a_log_give_one_line_or_a_result(data, command, as_json):
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        (d / "in.csv").write_bytes(data)
        argv = [command, d / "in.csv"] + (["--out", d / "out.csv"] if command == "replay" else [])
        argv += ["--json"] if as_json else []
        code, out, err = _main(argv)
        if code == 0:
            assert err == "" or all(ln.startswith("note:") for ln in err.splitlines())
            if as_json:
                strict_json(out)
            assert sorted(os.listdir(d)) == (["in.csv", "out.csv"] if command == "replay" else ["in.csv"])
        else:
            assert code == 2 and len(err.splitlines()) == 1 and err.startswith(f"ankle {command}: error: "), err
            assert sorted(os.listdir(d)) == ["in.csv"]


# --- the summary over rows the host did not tick ------------------------------------------------

@pytest.fixture(scope="module")
def imu_loss_run():
    from sim import harness
    from sim.faults import Injection
    return harness.run(scenario="steady", speed_m_s=1.25, duration_s=4.0, mass_kg=80.0, seed=0,
                       faults=[Injection("imu_loss", 1.5)])


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(holes=st.lists(st.tuples(st.integers(0, 3999), st.integers(1, 300)), min_size=1, max_size=6))
def test_summary_skips_the_rows_a_late_or_hung_host_left_nan(imu_loss_run, holes):
    # as ankle sim --realtime's table has them: a row per period, NaN where no tick ran
    import dataclasses
    import numpy as np
    from controller.runtime.loop import TELEMETRY_COLUMNS
    from sim import evaluation
    tel = imu_loss_run.telemetry.copy()
    for start, length in holes:
        tel[start:start + length] = np.nan
    run = dataclasses.replace(imu_loss_run, telemetry=tel)
    result = evaluation.summary(run, scenario="steady", speed_m_s=1.25, seed=0)
    torque = np.abs(tel[:, TELEMETRY_COLUMNS.index("torque_Nm")])
    assert result["peak_torque_Nm"] == round(float(np.max(torque[np.isfinite(torque)])), 2)
    strict_json(json_text(result))
    out = io.StringIO()
    with redirect_stdout(out):
        cli._print_summary({**result, "symmetry": None, "param_problems": [], "injected": []})
    assert "nan" not in out.getvalue().lower(), out.getvalue()
