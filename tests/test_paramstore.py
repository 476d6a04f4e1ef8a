"""Saved parameter files: round trip, every kind of corruption, killed saves, arbitrary bytes."""
import json
import os
import random
import sys
from pathlib import Path

import pytest
from conftest import kill_when_ready
from hypothesis import HealthCheck, assume, given, settings, strategies as st

from controller.params.registry import REGISTRY, ParamSet, by_name
from controller.params.store import (MAX_FILE_BYTES, ParamFileError, backup_path, check, decode, encode,
                                   load, save)

ROOT = Path(__file__).resolve().parents[1]

A = ParamSet({"wearer.mass_kg": 62.5, "pushoff.torque_Nm_kg": 1.1, "swing.target_rad": 0.08})
B = ParamSet({"wearer.mass_kg": 95.0, "pushoff.torque_Nm_kg": 0.7, "actuator.direction": 1,
              "estimator.toe_off_load_bw": 0.05})


def exact(params):
    """Values compared bit for bit (repr tells -0.0 from 0.0 and 1 from 1.0)."""
    return {name: repr(value) for name, value in params.items()}


def rewrite_with_checksum(path, edit):
    """Apply ``edit`` to the parsed document and store it with a correct checksum again."""
    import hashlib
    doc = json.loads(path.read_text(encoding="utf-8"))
    edit(doc)
    doc.pop("sha256", None)
    doc["sha256"] = hashlib.sha256(json.dumps(doc, sort_keys=True, separators=(",", ":"),
                                              allow_nan=False).encode()).hexdigest()
    path.write_text(json.dumps(doc, indent=2), encoding="utf-8")


# --- round trip ------------------------------------------------------------------------------

def test_round_trip_and_identical_backup(tmp_path):
    path = tmp_path / "ankle.params"
    save(A, path)
    assert backup_path(path) == tmp_path / "ankle.params.bak"
    assert path.read_bytes() == backup_path(path).read_bytes()
    result = load(path)
    assert result.source == "primary"
    assert exact(result.params) == exact(A)
    assert result.problems == () and not result.corrupt
    assert result.saved_at.endswith("Z")
    assert check(path) == ()
    # the file is readable JSON holding every parameter
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert doc["format"] == "ankle-params" and doc["version"] == 1
    assert set(doc["values"]) == {p.name for p in REGISTRY}
    assert doc["values"]["actuator.direction"] == -1 and type(doc["values"]["actuator.direction"]) is int
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]


def test_save_overwrites_and_accepts_str_paths(tmp_path):
    path = tmp_path / "ankle.params"
    save(A, str(path))
    save(B, str(path))
    assert exact(load(str(path)).params) == exact(B)
    assert exact(decode(backup_path(path).read_bytes())) == exact(B)


def test_save_refuses_a_plain_dict(tmp_path):
    with pytest.raises(TypeError, match="ParamSet"):
        save({"wearer.mass_kg": 70.0}, tmp_path / "ankle.params")
    assert not os.listdir(tmp_path)


# --- missing copies --------------------------------------------------------------------------

def test_fresh_install_gives_defaults_and_is_not_corrupt(tmp_path):
    result = load(tmp_path / "ankle.params")
    assert result.source == "defaults"
    assert exact(result.params) == exact(ParamSet())
    assert not result.corrupt and result.saved_at is None
    assert result.problems == ("ankle.params: no such file", "ankle.params.bak: no such file")


def test_missing_directory_is_a_fresh_install(tmp_path):
    result = load(tmp_path / "no" / "such" / "ankle.params")
    assert result.source == "defaults" and not result.corrupt


def test_missing_primary_uses_the_backup_without_corruption(tmp_path):
    # what a first save killed between its two renames leaves behind
    path = tmp_path / "ankle.params"
    save(A, path)
    path.unlink()
    result = load(path)
    assert result.source == "backup" and exact(result.params) == exact(A)
    assert not result.corrupt
    assert result.problems == ("ankle.params: no such file",)


def test_missing_backup_is_reported_but_primary_used(tmp_path):
    path = tmp_path / "ankle.params"
    save(A, path)
    backup_path(path).unlink()
    result = load(path)
    assert result.source == "primary" and not result.corrupt
    assert result.problems == ("ankle.params.bak: no such file",)


# --- corruption ------------------------------------------------------------------------------

def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _flip_byte(path):
    data = bytearray(path.read_bytes())
    i = data.index(b'"wearer.mass_kg": ') + len(b'"wearer.mass_kg": ')
    data[i] ^= 0x01    # '6' -> '7' or '9' -> '8': still a number, so only the checksum catches it
    path.write_bytes(bytes(data))


def _edit_value(path):
    doc = json.loads(path.read_text(encoding="utf-8"))
    doc["values"]["pushoff.torque_Nm_kg"] = 0.5
    path.write_text(json.dumps(doc, indent=2), encoding="utf-8")


def _out_of_range(path):
    rewrite_with_checksum(path, lambda d: d["values"].__setitem__("wearer.mass_kg", 500.0))


def _unknown_name(path):
    rewrite_with_checksum(path, lambda d: d["values"].__setitem__("pushoff.gain_typo", 1.0))


def _cross_check(path):
    rewrite_with_checksum(path, lambda d: d["values"].update({"pushoff.peak_stance": 0.95,
                                                              "pushoff.end_stance": 0.9}))


def _wrong_type(path):
    rewrite_with_checksum(path, lambda d: d["values"].__setitem__("wearer.mass_kg", "80"))


def _wrong_version(path):
    rewrite_with_checksum(path, lambda d: d.__setitem__("version", 2))


def _wrong_format(path):
    rewrite_with_checksum(path, lambda d: d.__setitem__("format", "moteus-conf"))


def _nan(path):
    path.write_text(path.read_text(encoding="utf-8").replace("62.5", "NaN"), encoding="utf-8")


def _non_utf8(path):
    path.write_bytes(b"\xff\xfe" + path.read_bytes())


def _empty(path):
    path.write_bytes(b"")


def _not_json(path):
    path.write_bytes(b"wearer.mass_kg = 80\n")


CORRUPTIONS = [
    (_truncate, "not valid JSON (truncated or damaged"),
    (_flip_byte, "checksum mismatch (file altered or half-written)"),
    (_edit_value, "checksum mismatch (file altered or half-written)"),
    (_out_of_range, "wearer.mass_kg = 500 is out of range [30, 150] kg"),
    (_unknown_name, "unknown parameter 'pushoff.gain_typo'"),
    (_cross_check, "push-off timing must satisfy peak_stance < end_stance"),
    (_wrong_type, "wearer.mass_kg is text, expected a number"),
    (_wrong_version, "unsupported version 2 (this software reads version 1)"),
    (_wrong_format, "not an ankle parameter file (format 'moteus-conf'"),
    (_nan, "contains NaN, which is not a number"),
    (_non_utf8, "not UTF-8 text"),
    (_empty, "empty file (0 bytes)"),
    (_not_json, "not valid JSON"),
]


@pytest.mark.parametrize("corrupt,reason", CORRUPTIONS, ids=[c.__name__.strip("_") for c, _ in CORRUPTIONS])
def test_corrupt_primary_falls_back_to_the_backup(tmp_path, corrupt, reason):
    path = tmp_path / "ankle.params"
    save(A, path)
    corrupt(path)
    result = load(path)
    assert result.source == "backup"
    assert exact(result.params) == exact(A)
    assert result.corrupt and result.invalid_copies == (path,)
    assert len(result.problems) == 1 and result.problems[0].startswith(f"ankle.params: {reason}"), \
        result.problems


@pytest.mark.parametrize("corrupt,reason", CORRUPTIONS, ids=[c.__name__.strip("_") for c, _ in CORRUPTIONS])
def test_both_copies_corrupt_gives_defaults(tmp_path, corrupt, reason):
    path = tmp_path / "ankle.params"
    save(A, path)
    corrupt(path)
    corrupt(backup_path(path))
    result = load(path)
    assert result.source == "defaults"
    assert exact(result.params) == exact(ParamSet())
    assert result.corrupt and result.invalid_copies == (path, backup_path(path))
    assert [p.split(": ", 1)[0] for p in result.problems] == ["ankle.params", "ankle.params.bak"]
    assert all(reason in p for p in result.problems), result.problems
    # the next save repairs both
    save(B, path)
    assert load(path).problems == () and exact(load(path).params) == exact(B)


def test_corrupt_backup_behind_a_good_primary_is_still_a_fault(tmp_path):
    path = tmp_path / "ankle.params"
    save(A, path)
    _flip_byte(backup_path(path))
    result = load(path)
    assert result.source == "primary" and exact(result.params) == exact(A)
    assert result.corrupt
    assert result.problems == ("ankle.params.bak: checksum mismatch (file altered or half-written)",)
    assert check(path) == result.problems


def test_duplicate_keys_and_extra_fields_are_refused(tmp_path):
    path = tmp_path / "ankle.params"
    save(A, path)
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace('"format": "ankle-params",',
                                 '"format": "ankle-params", "format": "ankle-params",'), encoding="utf-8")
    assert load(path).problems[0] == "ankle.params: field 'format' appears twice"
    save(A, path)
    rewrite_with_checksum(path, lambda d: d.__setitem__("comment", "tuned by hand"))
    assert load(path).problems[0] == "ankle.params: unexpected field(s) comment"


def test_booleans_and_huge_numbers_are_refused(tmp_path):
    path = tmp_path / "ankle.params"
    for bad in (True, None, 10 ** 400):
        save(A, path)
        rewrite_with_checksum(path, lambda d: d["values"].__setitem__("wearer.mass_kg", bad))
        result = load(path)
        assert result.source == "backup" and result.corrupt, bad
    path.write_text('{"values": {"wearer.mass_kg": 1e999}}', encoding="utf-8")
    assert load(path).problems[0] == "ankle.params: number 1e999 is out of range"
    path.write_bytes(b"[" * (MAX_FILE_BYTES - 1))
    assert load(path).problems[0].startswith("ankle.params: not valid JSON")
    path.write_bytes(b" " * (MAX_FILE_BYTES + 1))
    assert load(path).problems[0].startswith("ankle.params: too large")


def test_missing_names_take_their_defaults(tmp_path):
    # a file written before a parameter existed
    path = tmp_path / "ankle.params"
    save(A, path)
    rewrite_with_checksum(path, lambda d: d["values"].pop("loop.rate_Hz"))
    result = load(path)
    assert result.source == "primary" and not result.corrupt
    assert result.params["loop.rate_Hz"] == by_name("loop.rate_Hz").default


def test_a_path_that_is_a_directory_is_a_programming_error(tmp_path):
    with pytest.raises(IsADirectoryError):
        load(tmp_path)


def test_a_directory_in_place_of_the_backup_is_a_corrupt_copy(tmp_path):
    path = tmp_path / "ankle.params"
    save(A, path)
    backup_path(path).unlink()
    backup_path(path).mkdir()
    result = load(path)
    assert result.source == "primary" and result.corrupt
    assert result.problems == ("ankle.params.bak: not a regular file",)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_primary_is_corrupt(tmp_path):
    path = tmp_path / "ankle.params"
    save(A, path)
    path.chmod(0)
    result = load(path)
    assert result.source == "backup" and result.corrupt
    assert result.problems[0].startswith("ankle.params: cannot be read")


def test_fifo_in_place_of_the_primary_does_not_hang(tmp_path):
    path = tmp_path / "ankle.params"
    save(A, path)
    path.unlink()
    os.mkfifo(path)
    result = load(path)
    assert result.source == "backup" and result.problems == ("ankle.params: not a regular file",)


# --- temporary files -------------------------------------------------------------------------

def test_stale_temporary_files_are_ignored_by_load_and_removed_by_save(tmp_path):
    path = tmp_path / "ankle.params"
    save(A, path)
    stale = [tmp_path / ".ankle.params.k3j_x9a2.tmp", tmp_path / ".ankle.params.bak.q0w9e8r7.tmp"]
    for f in stale:
        f.write_bytes(b'{"format": "ankle-pa')      # cut short by a kill
    others = [tmp_path / ".ankle.params.profile.k3j_x9a2.tmp", tmp_path / "ankle.params.tmp",
              tmp_path / ".other.params.abcdefgh.tmp"]
    for f in others:
        f.write_bytes(b"not ours")
    assert load(path).source == "primary" and not load(path).corrupt
    save(B, path)
    assert not any(f.exists() for f in stale)
    assert all(f.exists() for f in others)
    assert exact(load(path).params) == exact(B)


# --- killed while saving ---------------------------------------------------------------------

_SAVER = """
import sys
from pathlib import Path
from controller.params.registry import ParamSet
from controller.params.store import save
A = ParamSet({a!r})
B = ParamSet({b!r})
path = Path(sys.argv[1])
save(A, path)
save(B, path)
print("ready", flush=True)
while True:
    save(A, path)
    save(B, path)
"""


def test_kill_during_saves_leaves_the_old_or_the_new_set(tmp_path):
    path = tmp_path / "ankle.params"
    seed = int.from_bytes(os.urandom(4), "little")
    rng = random.Random(seed)
    code = _SAVER.format(a=dict(A), b=dict(B))
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    seen = set()
    for kill in range(12):
        kill_when_ready([sys.executable, "-c", code, str(path)], rng, 0.03, cwd=ROOT, env=env)
        result = load(path)
        got = exact(result.params)
        assert got in (exact(A), exact(B)), f"seed {seed}, kill {kill}: neither A nor B"
        assert result.source == "primary" and not result.corrupt, (seed, kill, result.problems)
        seen.add("A" if got == exact(A) else "B")
    # whatever temporary files the kills left, the next save works and removes them
    save(A, path)
    assert exact(load(path).params) == exact(A)
    assert sorted(os.listdir(tmp_path)) == ["ankle.params", "ankle.params.bak"]


# --- property tests --------------------------------------------------------------------------

@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=4096))
def test_arbitrary_bytes_as_primary_never_raise_and_give_the_backup(tmp_path, data):
    path = tmp_path / "ankle.params"
    if not backup_path(path).exists():
        save(B, path)
    path.write_bytes(data)
    result = load(path)
    assert result.source == "backup" and result.corrupt
    assert exact(result.params) == exact(B)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(bit=st.integers(min_value=0))
def test_one_flipped_bit_never_gives_other_values(tmp_path, bit):
    path = tmp_path / "ankle.params"
    if not backup_path(path).exists():
        save(B, path)
    good = bytearray(backup_path(path).read_bytes())
    bit %= 8 * len(good)
    good[bit // 8] ^= 1 << (bit % 8)
    path.write_bytes(bytes(good))
    result = load(path)
    # either the flip changed nothing the file means (e.g. 1e-05 -> 1E-05) or the copy is refused
    assert exact(result.params) == exact(B)
    assert result.source == "backup" or not result.corrupt


def _floats(name, lo=None, hi=None):
    p = by_name(name)
    return st.floats(min_value=p.min if lo is None else max(p.min, lo),
                     max_value=p.max if hi is None else min(p.max, hi), allow_nan=False)


@st.composite
def valid_values(draw):
    values = {}
    for p in REGISTRY:
        if p.kind is float:
            values[p.name] = draw(_floats(p.name))
    values["actuator.direction"] = draw(st.sampled_from([-1, 1]))
    # cross-parameter rules, drawn so that they mostly hold; assume() drops the rest
    hs = values["estimator.heel_strike_load_bw"]
    values["estimator.toe_off_load_bw"] = draw(_floats("estimator.toe_off_load_bw", hi=hs))
    values["estimator.max_stride_s"] = draw(_floats("estimator.max_stride_s", lo=values["estimator.min_stride_s"]))
    values["pushoff.end_stance"] = draw(_floats("pushoff.end_stance", lo=values["pushoff.peak_stance"]))
    values["safety.supply_warn_V"] = draw(_floats("safety.supply_warn_V", lo=values["safety.supply_min_V"]))
    values["thermal.alert_degC"] = draw(_floats("thermal.alert_degC", lo=values["thermal.derate_start_degC"]))
    values["thermal.limit_degC"] = draw(_floats("thermal.limit_degC", lo=values["thermal.alert_degC"]))
    limit = values["safety.max_torque_Nm"] / values["wearer.mass_kg"]
    values["pushoff.torque_Nm_kg"] = draw(_floats("pushoff.torque_Nm_kg", hi=limit))
    try:
        return ParamSet(values)
    except ValueError:
        assume(False)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(params=valid_values())
def test_valid_values_round_trip_exactly(tmp_path, params):
    path = tmp_path / "ankle.params"
    save(params, path)
    result = load(path)
    assert result.source == "primary" and not result.corrupt
    assert exact(result.params) == exact(params)
    assert exact(decode(encode(params).encode())) == exact(params)


def test_decode_says_why():
    with pytest.raises(ParamFileError, match="empty file"):
        decode(b"")
