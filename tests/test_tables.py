"""One table per concept: the fault, warning, mode, phase-source and telemetry tables are declared
once in Python (controller/kernels/faults.py, telemetry.py); the C constants (the generated
_tables.pxd), the compiled kernels, the README's fault table and every reader's column index
are derived from them.  Each test here fails if one copy could differ from the declaration."""
import importlib
import math
import re
from pathlib import Path

import numpy as np
import pytest

from controller.kernels import codegen, faults, telemetry
from controller.kernels.faults import FAULTS, GAIT_SOURCE_TABLE, MODE_TABLE, WARNINGS
from controller.kernels.telemetry import COLUMN, COLUMNS, TELEMETRY_COLUMNS
from controller.params.registry import ParamSet
from controller.runtime.loop import build_tick
from hal import _sensor_frames
from hal.ak import mit_range
from conftest import command, gait, inputs

ROOT = Path(__file__).resolve().parents[1]
KERNELS = ["controller.kernels._tick", "controller.kernels._safety", "controller.kernels._monitor",
           "controller.kernels._estimator", "controller.kernels._pushoff"]


# ---- the declarations themselves ---------------------------------------------------------------

@pytest.mark.parametrize("table", [FAULTS, WARNINGS], ids=["faults", "warnings"])
def test_bit_tables_have_unique_names_and_bits_that_fit_the_word(table):
    names = [b.name for b in table]
    bits = [b.bit for b in table]
    assert len(set(names)) == len(names) and len(set(bits)) == len(bits)
    assert all(0 <= b < 32 for b in bits)
    assert all(re.fullmatch(r"[a-z][a-z0-9_]*", n) for n in names)
    assert all(b.meaning and "\n" not in b.meaning and "|" not in b.meaning for b in table)


def test_each_fault_either_degrades_or_gives_the_safe_state_and_degrading_is_derived():
    assert {f.response for f in FAULTS} <= {faults.PASSIVE, faults.SAFE}
    passive = [f for f in FAULTS if f.response == faults.PASSIVE]
    assert faults.DEGRADING == sum(f.mask for f in passive)
    assert {f.name for f in passive} == {"imu", "load"}          # README: sensor faults only degrade
    assert faults.FAULT_BITS == {f.mask: (f.name, f.meaning) for f in FAULTS}
    assert faults.WARNING_BITS == {w.mask: (w.name, w.meaning) for w in WARNINGS}
    assert faults.MODES == {m.value: m.name for m in MODE_TABLE}
    assert faults.GAIT_SOURCES == {s.value: s.name for s in GAIT_SOURCE_TABLE}


def test_each_fault_tells_the_clinician_what_happened_what_the_ankle_does_and_what_to_do():
    """Issue 17: `faults` showed `motor_stale, overrun` and nothing a clinician could act on."""
    for f in FAULTS:
        said = f.advice
        assert said.endswith(".") and "\n" not in said and "|" not in said and "_" not in said, f.name
        # what the ankle does now agrees with the fault's response in the table
        if f.response == faults.PASSIVE:
            assert "without powered push-off" in said, f.name
        elif f.name == "encoder":                                # the damped hold, not a spring
            assert "holds its angle" in said, f.name
        else:
            assert "passive foot" in said, f.name
        # and what to do: a console command to type, or whom to call
        assert "`clear`" in said or "call service" in said or "restart" in said, f.name
        assert faults.advice(f.name) == said
    for w in WARNINGS:
        assert w.advice.endswith(".") and "\n" not in w.advice and "|" not in w.advice and "_" not in w.advice, w.name
    glossary = faults.markdown_glossary()
    assert all(f"| `{b.name}`" in glossary for b in (*FAULTS, *WARNINGS))
    with pytest.raises(KeyError):
        faults.advice("no_such_fault")


@pytest.mark.parametrize("table", [MODE_TABLE, GAIT_SOURCE_TABLE], ids=["modes", "gait_sources"])
def test_value_tables_have_unique_names_and_values(table):
    assert len({m.name for m in table}) == len(table) == len({m.value for m in table})
    assert all(m.meaning for m in table)


def test_telemetry_columns_are_unique_with_known_units_and_one_line_meanings():
    names = [c.name for c in COLUMNS]
    assert len(set(names)) == len(names)
    assert len({n.upper() for n in names}) == len(names)          # T_<NAME> must be unique too
    assert all(c.unit in telemetry.KNOWN_UNITS for c in COLUMNS), [c for c in COLUMNS if c.unit not in telemetry.KNOWN_UNITS]
    assert all(c.meaning and "\n" not in c.meaning for c in COLUMNS)
    assert TELEMETRY_COLUMNS[:8] == ("t", "shank_gyro", "load", "ankle_angle", "phase", "heel_strike",
                                     "toe_off", "walking")          # DESIGN.md's replay columns first
    assert dict(COLUMN) == {n: i for i, n in enumerate(names)}
    assert telemetry.column("load") == COLUMN["load"] == 2
    with pytest.raises(KeyError, match="no telemetry column 'lod'"):
        telemetry.column("lod")
    with pytest.raises(TypeError):
        COLUMN["load"] = 3                                          # one map, read-only for all


def test_telemetry_columns_are_the_same_object_wherever_imported():
    from controller.kernels import _tick
    from controller.records import logger
    from controller.runtime import loop
    assert _tick.TELEMETRY_COLUMNS is loop.TELEMETRY_COLUMNS is TELEMETRY_COLUMNS
    assert logger.INTEGER_COLUMNS == telemetry.INTEGER_COLUMNS


def test_the_numbers_logs_already_hold_keep_their_meaning():
    """The contract with every log written so far: a bit or a mode value never changes meaning."""
    assert {f.name: f.bit for f in FAULTS} == {
        "motor_stale": 0, "driver_error": 1, "imu": 2, "load": 3, "nonfinite_input": 4, "nonfinite_command": 5,
        "over_temperature": 6, "encoder": 7, "overrun": 8, "low_voltage": 9, "params": 10, "sensor_node": 11}
    assert {w.name: w.bit for w in WARNINGS} == {
        "thermal_derate": 0, "thermal_alert": 1, "supply_low": 2, "supply_unknown": 3, "supply_implausible": 4,
        "frames_lost": 5}
    assert faults.MODE_VALUES == {"standby": 0, "walk": 1, "safe": 2, "passive": 3}
    assert faults.GAIT_SOURCES == {0: "none", 1: "shank", 2: "time", 3: "imu"}


# ---- the generated file -----------------------------------------------------------------------

def test_the_generated_pxd_is_what_the_generator_makes_from_todays_tables():
    """Fails if _tables.pxd is stale (a table edited without a rebuild)."""
    assert codegen.PATH.read_text(encoding="utf-8") == codegen.render(), \
        "controller/kernels/_tables.pxd is stale: run python setup.py build_ext --inplace"
    assert codegen.is_current()


def test_the_generated_constants_cover_every_entry_of_every_table():
    want = codegen.constants()
    for f in FAULTS:
        assert want[f"ANKLE_FAULT_{f.name.upper()}"] == f.mask
    assert want["ANKLE_FAULTS_DEGRADING"] == faults.DEGRADING
    for w in WARNINGS:
        assert want[f"ANKLE_WARN_{w.name.upper()}"] == w.mask
    for m in MODE_TABLE:
        assert want[f"ANKLE_MODE_{m.name.upper()}"] == m.value
    for s in GAIT_SOURCE_TABLE:
        assert want[f"GAIT_SOURCE_{s.name.upper()}"] == s.value
    for i, c in enumerate(COLUMNS):
        assert want[f"T_{c.name.upper()}"] == i
    assert want["N_TELEMETRY"] == len(COLUMNS)
    ours = [c for make in (codegen.fault_constants, codegen.warning_constants, codegen.mode_constants,
                           codegen.gait_source_constants, codegen.telemetry_constants) for c in make().constants]
    assert len(ours) == len(FAULTS) + 1 + len(WARNINGS) + len(MODE_TABLE) + len(GAIT_SOURCE_TABLE) + len(COLUMNS) + 1
    assert all(make in codegen.SECTIONS for make in (codegen.fault_constants, codegen.telemetry_constants))


@pytest.mark.parametrize("table, bad", [
    ("FAULTS", lambda t: t + (faults.Fault("ghost", 2, faults.SAFE, "a second fault on the imu bit", ""),)),
    ("FAULTS", lambda t: t[:1] + (faults.Fault(t[1].name, t[1].bit, "pasive", t[1].meaning, t[1].advice),) + t[2:]),
    ("WARNINGS", lambda t: t + (faults.WarningBit("ghost", 32, "beyond the word", ""),)),
    ("MODE_TABLE", lambda t: t + (faults.Mode("again", 1, "a second walk"),)),
], ids=["shared-bit", "unknown-response", "bit-32", "shared-mode"])
def test_the_generator_refuses_a_table_it_cannot_compile_faithfully(monkeypatch, table, bad):
    monkeypatch.setattr(faults, table, bad(getattr(faults, table)))
    with pytest.raises(ValueError, match="codegen: "):
        codegen.render()


def test_write_rewrites_only_a_changed_file(tmp_path):
    path = tmp_path / "_tables.pxd"
    assert codegen.write(path)                       # new
    stamp = path.stat().st_mtime_ns
    assert not codegen.write(path)                   # unchanged: not touched, nothing recompiles
    assert path.stat().st_mtime_ns == stamp and path.read_text() == codegen.render()
    path.write_text(path.read_text().replace("(1u << 2)", "(1u << 9)"))
    assert not codegen.is_current(path)
    assert codegen.write(path) and path.read_text() == codegen.render()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["_tables.pxd"]     # no temporary left


def test_the_generator_imports_only_pure_python(tmp_path):
    """setup.py runs it before anything is compiled: it must not need a compiled module."""
    import subprocess
    import sys
    code = ("import sys, controller.kernels.codegen as c; c.render(); "
            "bad = [m for m, mod in sys.modules.items() if getattr(mod, '__file__', None) and "
            "mod.__file__.endswith(('.so', '.pyd')) and m.startswith(('controller', 'hal', 'sim'))]; "
            "print(bad); sys.exit(1 if bad else 0)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_the_generated_file_is_ignored_by_git_and_the_kernels_cimport_it():
    ignored = (ROOT / ".gitignore").read_text().split()
    assert "controller/kernels/_tables.pxd" in ignored
    types = (ROOT / "controller/kernels/_types.pxd").read_text()
    assert not re.search(r"\b(ANKLE_(FAULT|WARN|MODE)S?_\w+|GAIT_SOURCE_\w+)\b", types.split("ctypedef")[0].replace(
        "GAIT_SOURCE_*", "")), "_types.pxd must not declare the constants again"
    for name in ("_tick", "_safety", "_monitor", "_estimator", "_pushoff"):
        src = (ROOT / f"controller/kernels/{name}.pyx").read_text()
        assert "from controller.kernels._tables cimport" in src
    # nothing else defines them by hand
    for path in list((ROOT / "controller").rglob("*.pyx")) + list((ROOT / "controller").rglob("*.pxd")):
        if path.name == "_tables.pxd":
            continue
        text = path.read_text()
        assert not re.search(r"#define\s+(ANKLE_|GAIT_SOURCE_|T_[A-Z])", text), path
        assert not re.search(r"^\s*(cdef\s+\w+\s+)?(ANKLE_\w+|GAIT_SOURCE_\w+|N_TELEMETRY)\s*=", text, re.M), path


def test_publish_row_writes_by_generated_index_only():
    src = (ROOT / "controller/kernels/_tick.pyx").read_text()
    body = src[src.index("cdef void publish_row"):src.index("# ---- read-only views")]
    assert not re.search(r"r\[\d+\]", body), "publish_row must write r[T_<COLUMN>], not a literal index"
    assert set(re.findall(r"r\[(T_\w+)\]", body)) == {f"T_{c.name.upper()}" for c in COLUMNS}


def test_no_module_rebuilds_its_own_column_index():
    offenders = []
    for top in ("controller", "sim", "bench", "tests"):
        for path in (ROOT / top).rglob("*.py"):
            text = path.read_text()
            if re.search(r"\benumerate\(" + "TELEMETRY_COLUMNS" + r"\)\s*\}", text):   # split: not this file
                offenders.append(str(path.relative_to(ROOT)))
    assert offenders == [], "use controller.kernels.telemetry.COLUMN"


# ---- the compiled kernels agree with the tables -------------------------------------------------

@pytest.mark.parametrize("module", KERNELS)
def test_each_compiled_kernel_holds_the_declared_values(module):
    compiled = importlib.import_module(module).compiled_tables()
    assert compiled == codegen.constants()
    for f in FAULTS:
        assert compiled[f"ANKLE_FAULT_{f.name.upper()}"] == faults.fault_bit(f.name)
    for m in MODE_TABLE:
        assert faults.MODES[compiled[f"ANKLE_MODE_{m.name.upper()}"]] == m.name


def test_a_kernel_built_from_other_tables_is_refused_at_import():
    compiled = dict(codegen.constants())
    codegen.check_compiled(compiled, "x")
    compiled["ANKLE_FAULT_IMU"] = 1 << 9
    del compiled["T_SOUND_GYRO"]
    with pytest.raises(ImportError, match=r"x was built from other tables .*ANKLE_FAULT_IMU, T_SOUND_GYRO.*rebuild"):
        codegen.check_compiled(compiled, "x")


def _safety_after(mask):
    from controller.kernels._safety import Safety
    p = ParamSet()
    s = Safety()
    s.configure(p)
    s.start(1.0)
    now = 1.0
    for _ in range(20):
        now += 1e-3
        s.apply(command(), inputs(motor_rx_s=now, imu_rx_s=now, load_rx_s=now, node_status_rx_s=now,
                                  shank_gyro_rad_s=math.sin(now * 37.0) * 0.5, accel_x_m_s2=math.cos(now * 53.0)),
                gait(), now)
    assert s.faults == 0 and faults.MODES[s.mode] == "walk"
    s.faults = mask
    now += 1e-3
    s.apply(command(), inputs(motor_rx_s=now, imu_rx_s=now, load_rx_s=now, node_status_rx_s=now,
                              shank_gyro_rad_s=0.1, accel_x_m_s2=0.2), gait(), now)
    return s


@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
def test_each_latched_fault_gives_the_mode_its_declaration_says(fault):
    """The compiled safety stage's DEGRADING is the declaration's, fault by fault."""
    s = _safety_after(fault.mask)
    assert s.faults & fault.mask
    assert faults.MODES[s.mode] == ("passive" if fault.response == faults.PASSIVE else "safe")


def test_a_published_row_lands_at_the_declared_indices():
    tick = build_tick(ParamSet(), mit_range("AK80-9"), 1)
    tick.start(1.0)
    now = 1.25
    given = dict(shank_gyro_rad_s=0.125, load_N=654.25, ankle_angle_rad=0.0375, motor_angle_rad=0.03125,
                 motor_vel_rad_s=-0.75, motor_torque_Nm=12.5, motor_temp_C=41.5, supply_V=23.75)
    tick.set_inputs(inputs(motor_rx_s=now, imu_rx_s=now, load_rx_s=now, node_status_rx_s=now, **given))
    frame = np.frombuffer(_sensor_frames.encode_sound(612.5, -1.25, 3, 0), dtype=np.uint8).copy()
    assert tick.ingest(_sensor_frames.SOUND_ID, frame, now)
    tick.update(now)
    tick.note_timing(1e-5, 2e-5, 3e-5, 4e-5)
    sentinel = -12345.678
    table = np.full((2, len(COLUMNS)), sentinel)
    tick.publish(table, 1)
    row = table[1]
    assert not np.any(row == sentinel), [c for c, x in zip(TELEMETRY_COLUMNS, row) if x == sentinel]
    assert np.all(table[0] == sentinel)
    assert row[COLUMN["t"]] == now
    assert row[COLUMN["load"]] == given["load_N"]
    assert row[COLUMN["shank_gyro"]] == given["shank_gyro_rad_s"]
    assert row[COLUMN["ankle_angle"]] == given["ankle_angle_rad"]
    assert row[COLUMN["torque_Nm"]] == given["motor_torque_Nm"]
    assert row[COLUMN["motor_angle"]] == given["motor_angle_rad"]
    assert row[COLUMN["motor_vel"]] == given["motor_vel_rad_s"]
    assert row[COLUMN["motor_temp_C"]] == given["motor_temp_C"]
    assert row[COLUMN["supply_V"]] == given["supply_V"]
    assert row[COLUMN["torque_cmd_Nm"]] == tick.command["torque_expected_Nm"]
    assert row[COLUMN["mode"]] == tick.safety.mode and row[COLUMN["faults"]] == tick.safety.faults
    assert row[COLUMN["warnings"]] == tick.safety.warnings
    assert row[COLUMN["torque_limit_Nm"]] == tick.safety.torque_limit_Nm
    assert row[COLUMN["assist"]] == tick.safety.assist
    assert row[COLUMN["winding_temp_C"]] == tick.safety.thermal.winding_C
    assert row[COLUMN["speed_m_s"]] == tick.controller.speed_m_s
    assert row[COLUMN["gait_source"]] == tick.gait["source"] and row[COLUMN["phase"]] == tick.gait["phase"]
    assert [row[COLUMN[c]] for c in ("late_s", "read_s", "update_s", "write_s")] == [1e-5, 2e-5, 3e-5, 4e-5]
    assert (row[COLUMN["sound_load"]], row[COLUMN["sound_gyro"]]) == (612.5, -1.25)
    with pytest.raises(IndexError):
        tick.publish(np.zeros((1, len(COLUMNS) - 1)), 0)


# ---- the README's fault table -------------------------------------------------------------------

def test_the_readme_fault_table_is_the_generated_one():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert codegen.with_readme_table(text) == text, \
        "README.md's fault table differs from controller/kernels/faults.py: run make docs"
    for f in FAULTS:
        assert f"| fault | {f.bit} | {f.mask} | `{f.name}` | {f.response} | {f.meaning} |" in text


def test_the_readme_table_is_rewritten_between_its_markers_only():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    stale = text.replace("| `imu` | passive |", "| `imu` | safe |")
    assert stale != text and codegen.with_readme_table(stale) == text
    with pytest.raises(ValueError, match="BEGIN GENERATED"):
        codegen.with_readme_table(text.replace(codegen.README_END, ""))


def test_the_real_time_loop_refuses_a_ring_whose_rows_are_not_a_telemetry_row():
    """publish_row writes N_TELEMETRY values into each ring slot: a narrower ring would be written
    past its rows (its last slot past the buffer).  Refused before the first tick."""
    from controller.runtime._ring import TelemetryRing, ring_bytes
    from controller.runtime._rtloop import run_loop

    def aligned(nbytes):
        raw = np.zeros(nbytes + 128, dtype=np.uint8)
        off = (-raw.ctypes.data) % 64
        return raw[off:off + nbytes]

    tick = build_tick(ParamSet(), mit_range("AK80-9"), 1)
    for width in (3, len(COLUMNS) - 1, len(COLUMNS) + 1):
        ring = TelemetryRing(aligned(ring_bytes(8, width)), 8, width, reset=True)
        with pytest.raises(ValueError, match=rf"must hold {len(COLUMNS)} values .*got {width}"):
            run_loop(tick, None, None, ring, None, np.zeros(8, dtype=np.int64), 0, 0, None, 1, 2)
