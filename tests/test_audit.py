"""The audit log: exact round trips, hostile values, reopening, torn lines, killed writers."""
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import kill_when_ready
from hypothesis import HealthCheck, given, settings, strategies as st

from controller.console.audit import FIELDS, HEADER_LINE, AuditError, AuditLog, escape, read, unescape

ROOT = Path(__file__).resolve().parents[1]
HEADER = b"time_utc\trole\taction\tparameter\told\tnew\tdetail\n"
T0 = 1714554843.25          # 2024-05-01T09:14:03.250Z


def fixed_clock(t=T0):
    return lambda: t


def checked_read(path):
    """Every record, asserting that no line had to be skipped."""
    problems = []
    records = read(path, problems=problems)
    assert problems == []
    return records


def physical_lines(path):
    """The file's lines as a text editor or spreadsheet would split them (every Unicode line break)."""
    return path.read_bytes().decode("utf-8").splitlines()


# --- round trips -----------------------------------------------------------------------------

def test_header_and_one_record_byte_for_byte(tmp_path):
    path = tmp_path / "audit.tsv"
    with AuditLog(path, clock=fixed_clock()) as log:
        assert path.read_bytes() == HEADER          # written on creation
        written = log.record("prosthetist", "set", "pushoff.torque_Nm_kg", 0.9, 1.1)
    assert HEADER_LINE.encode() == HEADER and FIELDS[0] == "time_utc"
    assert path.read_bytes() == HEADER + (b"2024-05-01T09:14:03.250Z\tprosthetist\tset\t"
                                          b"pushoff.torque_Nm_kg\t0.9\t1.1\t\n")
    assert written == {"time_utc": "2024-05-01T09:14:03.250Z", "role": "prosthetist", "action": "set",
                       "parameter": "pushoff.torque_Nm_kg", "old": "0.9", "new": "1.1", "detail": ""}
    assert checked_read(path) == [written]


def test_records_read_back_exactly_in_order(tmp_path):
    path = tmp_path / "audit.tsv"
    t = [0.0]
    with AuditLog(path, clock=lambda: t[0]) as log:
        expected = []
        for i in range(50):
            t[0] = 1.7e9 + i * 0.0015
            expected.append(log.record("prosthetist", "set", f"p.{i}", i, i + 0.5, f"note {i}"))
        expected.append(log.record("viewer", "login", detail="wrong PIN (4 attempts left)"))
        expected.append(log.record("prosthetist", "save", old=None, new=None, detail="/var/lib/ankle/params"))
    assert checked_read(path) == expected
    assert expected[0]["time_utc"] == "2023-11-14T22:13:20.000Z"
    assert expected[-2]["parameter"] == "" and expected[-1]["old"] == ""
    assert [r["time_utc"] for r in expected[:50]] == sorted(r["time_utc"] for r in expected[:50])


def test_milliseconds_are_truncated_not_rounded_past_the_second(tmp_path):
    with AuditLog(tmp_path / "a.tsv", clock=fixed_clock(59.9999)) as log:
        assert log.record("r", "a")["time_utc"] == "1970-01-01T00:00:59.999Z"


def test_reopening_appends_and_never_rewrites(tmp_path):
    path = tmp_path / "audit.tsv"
    with AuditLog(path, clock=fixed_clock()) as log:
        first = log.record("prosthetist", "set", "a.b", 1, 2)
    before = path.read_bytes()
    with AuditLog(str(path), clock=fixed_clock(T0 + 1)) as log:
        assert path.read_bytes() == before          # opening wrote nothing
        second = log.record("prosthetist", "set", "a.b", 2, 3)
    assert path.read_bytes().startswith(before)
    assert path.read_bytes().count(HEADER) == 1
    assert checked_read(path) == [first, second]


def test_two_open_logs_on_one_file_both_append(tmp_path):
    path = tmp_path / "audit.tsv"
    with AuditLog(path) as a, AuditLog(path) as b:
        ra = a.record("prosthetist", "set", "x", 1, 2)
        rb = b.record("viewer", "login", detail="wrong")
        ra2 = a.record("prosthetist", "set", "x", 2, 3)
    assert checked_read(path) == [ra, rb, ra2]


HOSTILE = [
    "line\nbreak", "cr\rhere", "crlf\r\n", "tab\there", "\t", "\n", "", "back\\slash", "\\n literal", "\\",
    "trailing\\", '"quoted"', "'single'", "comma,separated", "semi;colon", "#not a comment",
    "naïve café 中文 🙂", "\u2028line separator", "\u2029paragraph", "\x85next line", "\x0bvt\x0cff",
    "\x1c\x1d\x1e", "\x00nul", "\x1b[31mred\x1b[0m", "\x7fdel", "\ud800lone surrogate", "\udfff",
    "x" * 3000, " ", "   ",
]


def test_hostile_values_round_trip_and_never_split_a_record(tmp_path):
    path = tmp_path / "audit.tsv"
    expected = []
    with AuditLog(path) as log:
        for value in HOSTILE:
            expected.append(log.record("prosthetist", "set", value, value, value, value))
            expected.append(log.record(value or "r", value or "a", detail=value))
    assert checked_read(path) == expected
    lines = [ln for ln in physical_lines(path) if ln.strip(" ")]
    assert len(lines) == 1 + len(expected)          # one line per record, however it is split
    assert all(ln.count("\t") == len(FIELDS) - 1 for ln in lines)


def test_values_that_are_not_text(tmp_path):
    path = tmp_path / "audit.tsv"
    with AuditLog(path) as log:
        record = log.record("prosthetist", "set", "wearer.mass_kg", 62.5, 1e-7, 3)
    assert (record["old"], record["new"], record["detail"]) == ("62.5", "1e-07", "3")
    assert checked_read(path) == [record]


@pytest.mark.parametrize("role, action", [("", "set"), ("prosthetist", ""), (None, "set"), ("viewer", None)])
def test_a_record_needs_a_role_and_an_action(tmp_path, role, action):
    path = tmp_path / "audit.tsv"
    with AuditLog(path) as log:
        size = path.stat().st_size
        with pytest.raises(ValueError, match="role and an action"):
            log.record(role, action)
    assert path.stat().st_size == size


@settings(max_examples=300, deadline=None)
@given(text=st.text(st.characters(blacklist_categories=())))     # surrogates and controls included
def test_escape_round_trips_and_leaves_no_line_or_column_break(text):
    escaped = escape(text)
    assert unescape(escaped) == text
    assert "\t" not in escaped and len(escaped.splitlines()) <= 1
    escaped.encode("utf-8")                                      # always encodable


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.lists(st.text(st.characters(blacklist_categories=()), max_size=40), min_size=4, max_size=4),
       role=st.text(st.characters(blacklist_categories=()), min_size=1, max_size=12),
       action=st.text(st.characters(blacklist_categories=()), min_size=1, max_size=12))
def test_any_values_round_trip_through_the_file(tmp_path, values, role, action):
    path = tmp_path / "audit.tsv"
    with AuditLog(path) as log:
        written = log.record(role, action, *values)
    assert checked_read(path)[-1] == written


@pytest.mark.parametrize("bad", ["\\", "a\\", "\\q", "\\x4", "\\xZZ", "\\u12", "\\X41"])
def test_unescape_refuses_a_backslash_that_starts_no_escape(bad):
    with pytest.raises(ValueError):
        unescape(bad)


# --- damaged and foreign files ----------------------------------------------------------------

def test_a_torn_last_line_is_skipped_and_the_next_record_starts_on_a_new_line(tmp_path):
    path = tmp_path / "audit.tsv"
    with AuditLog(path, clock=fixed_clock()) as log:
        first = log.record("prosthetist", "set", "a.b", 1, 2)
    with open(path, "ab") as f:                     # a power cut in the middle of a record
        f.write(b"2024-05-01T09:14:04.000Z\tprosthetist\tse")
    problems = []
    assert read(path, problems=problems) == [first]
    assert len(problems) == 1 and "torn last line 3" in problems[0]
    size = path.stat().st_size
    with AuditLog(path, clock=fixed_clock()) as log:
        assert path.stat().st_size >= size
        second = log.record("prosthetist", "set", "a.b", 2, 3)
        third = log.record("prosthetist", "set", "a.b", 3, 4)
    problems = []
    assert read(path, problems=problems) == [first, second, third]
    # the torn line is kept as evidence, now ended, and reported instead of merged with a record
    assert len(problems) == 1 and "skipped line 3" in problems[0]


def test_a_zero_filled_tail_after_a_power_cut(tmp_path):
    path = tmp_path / "audit.tsv"
    with AuditLog(path) as log:
        first = log.record("prosthetist", "set", "a.b", 1, 2)
    with open(path, "ab") as f:
        f.write(b"\x00" * 300)
    problems = []
    assert read(path, problems=problems) == [first]
    assert len(problems) == 1
    with AuditLog(path) as log:
        second = log.record("prosthetist", "set", "a.b", 2, 3)
    problems = []
    assert read(path, problems=problems) == [first, second]
    assert len(problems) == 1 and "control character U+0000" in problems[0]


@pytest.mark.parametrize("line, why", [
    (b"2024-05-01T09:14:03.250Z\tprosthetist\tset\tx\t1\n", "has 5 columns"),
    (b"2024-05-01 09:14:03\tprosthetist\tset\tx\t1\t2\t\n", "not an ISO-8601"),
    (b"2024-05-01T09:14:03.250Z\tprosthetist\tset\tx\t1\t2\tbad \\q escape\n", "backslash"),
    (b"2024-05-01T09:14:03.250Z\tprosthetist\tset\tx\t1\t2\t\xff\n", "not UTF-8"),
    (b"2024-05-01T09:14:03.250Z\t\tset\tx\t1\t2\t\n", "no role"),
    (b"\t\n", "has 2 columns"),
    (HEADER, "not an ISO-8601"),
])
def test_malformed_complete_lines_are_skipped_and_named(tmp_path, line, why):
    path = tmp_path / "audit.tsv"
    with AuditLog(path) as log:
        first = log.record("prosthetist", "set", "a", 1, 2)
    with open(path, "ab") as f:
        f.write(line)
    with AuditLog(path) as log:
        second = log.record("prosthetist", "set", "a", 2, 3)
    problems = []
    assert read(path, problems=problems) == [first, second]
    assert len(problems) == 1 and "skipped line 3" in problems[0] and why in problems[0], problems


@pytest.mark.parametrize("content", [b"t,shank_gyro,load\n1,2,3\n", b"time_utc\trole\n", b"\x00" * 10,
                                     b"not a log"])
def test_a_file_that_is_not_an_audit_log_is_refused_and_untouched(tmp_path, content):
    path = tmp_path / "walk.csv"
    path.write_bytes(content)
    with pytest.raises(AuditError, match="not an audit log"):
        AuditLog(path)
    assert path.read_bytes() == content
    with pytest.raises(AuditError, match="not an audit log"):
        read(path)


def test_read_of_a_missing_or_new_log_has_no_records(tmp_path):
    assert read(tmp_path / "none.tsv") == []
    AuditLog(tmp_path / "new.tsv").close()
    assert checked_read(tmp_path / "new.tsv") == []
    (tmp_path / "torn-header.tsv").write_bytes(HEADER[:10])     # cut short while being created
    problems = []
    assert read(tmp_path / "torn-header.tsv", problems=problems) == [] and len(problems) == 1


def test_an_empty_existing_file_gets_the_header(tmp_path):
    path = tmp_path / "audit.tsv"
    path.touch()                                    # created, then a crash before the header
    with AuditLog(path) as log:
        record = log.record("prosthetist", "set")
    assert path.read_bytes().startswith(HEADER)
    assert checked_read(path) == [record]


def test_open_errors_are_audit_errors(tmp_path):
    with pytest.raises(AuditError, match="cannot open"):
        AuditLog(tmp_path / "missing-dir" / "audit.tsv")
    with pytest.raises(AuditError, match="cannot open"):
        AuditLog(tmp_path)                          # a directory


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_a_full_disk_is_an_audit_error():
    # /dev/full refuses every write with ENOSPC, as a full disk does
    with pytest.raises(AuditError, match="cannot write the header") as e:
        AuditLog("/dev/full")
    assert isinstance(e.value, OSError)


def test_a_closed_log_refuses_records(tmp_path):
    log = AuditLog(tmp_path / "audit.tsv")
    log.close()
    log.close()                                     # twice is harmless
    assert log.closed
    with pytest.raises(AuditError, match="closed"):
        log.record("prosthetist", "set")


# --- records never straddle a 4 KiB block (so a kill cannot tear one) --------------------------

def test_records_stay_inside_4k_blocks_and_padding_is_invisible(tmp_path):
    path = tmp_path / "audit.tsv"
    rng = random.Random(7)
    expected = []
    with AuditLog(path) as log:
        for i in range(400):
            expected.append(log.record("prosthetist", "set", "p", i, "v" * rng.randint(0, 300)))
    data = path.read_bytes()
    assert checked_read(path) == expected
    start = 0
    for raw in data.split(b"\n")[:-1]:
        end = start + len(raw) + 1
        if raw.strip(b" "):
            assert start // 4096 == (end - 1) // 4096, f"a record crosses a block at byte {start}"
        start = end
    # padding only where a record would have crossed: at most one line per block
    assert sum(1 for raw in data.split(b"\n")[:-1] if not raw.strip(b" ")) <= len(data) // 4096


# --- real processes ----------------------------------------------------------------------------

_RECORDER = """
import sys
from controller.console.audit import AuditLog
log = AuditLog(sys.argv[1])
child = sys.argv[2]
print("ready", flush=True)
i = 0
while True:
    hostile = "a\\tb\\nc\\\\d \\u00e9\\u2028" + "x" * (i % 97)
    log.record("prosthetist", "set", "pushoff.torque_Nm_kg", str(i), hostile, f"child {child} seq {i}")
    i += 1
"""


def child_env():
    return dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))


def sequences(records):
    """{child: [seq, ...]} from the detail column."""
    out = {}
    for r in records:
        _, child, _, seq = r["detail"].split()
        out.setdefault(child, []).append(int(seq))
    return out


def test_sigkill_while_recording_leaves_only_whole_records(tmp_path):
    """A real child SIGKILLed 20 times while it records in a loop: every line of the file parses,
    each child's records are consecutive, and the file only ever grows."""
    path = tmp_path / "audit.tsv"
    seed = int.from_bytes(os.urandom(4), "little")
    rng = random.Random(seed)
    size = 0
    for kill in range(20):
        kill_when_ready([sys.executable, "-c", _RECORDER, str(path), str(kill)], rng, 0.05, cwd=ROOT,
                        env=child_env())
        assert path.stat().st_size >= size, (seed, kill)
        size = path.stat().st_size
        problems = []
        records = read(path, problems=problems)
        assert problems == [], (seed, kill, problems)
        assert path.read_bytes().endswith(b"\n"), (seed, kill)
        for child, seqs in sequences(records).items():
            assert seqs == list(range(len(seqs))), (seed, kill, child)
    records = checked_read(path)
    assert len(records) > 0
    for r in records:
        assert r["new"].startswith("a\tb\nc\\d é\u2028") and r["old"] == r["detail"].split()[-1]


def test_concurrent_writers_never_interleave(tmp_path):
    path = tmp_path / "audit.tsv"
    code = ("import sys\nfrom controller.console.audit import AuditLog\nlog = AuditLog(sys.argv[1])\n"
            "for i in range(150):\n    log.record('prosthetist', 'set', 'p', i, 'x' * (i * 7 % 300), "
            "f'child {sys.argv[2]} seq {i}')\n")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(path), str(c)], cwd=ROOT, env=child_env(),
                              stderr=subprocess.PIPE) for c in range(3)]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()
    records = checked_read(path)
    assert path.read_bytes().count(HEADER) == 1
    assert {child: seqs for child, seqs in sequences(records).items()} == {
        str(c): list(range(150)) for c in range(3)}


# --- a damaged log never stops the console: moved aside, kept, a new one started -------------------

def _torn_header(path):
    path.write_bytes(HEADER[:11])                   # a power cut while the header was written


def _garbage(path):
    path.write_bytes(b"\x00\xff not a log at all\n" * 40)


def _directory(path):
    path.mkdir()
    (path / "inside").write_bytes(b"kept\n")


def _symlink_loop(path):
    os.symlink(path.name, path)                     # points at itself: cannot be opened, even by root


def _fifo(path):
    os.mkfifo(path)


DAMAGE = {"torn header": _torn_header, "garbage": _garbage, "a directory": _directory,
          "a symlink loop": _symlink_loop, "a fifo": _fifo}


def snapshot(path):
    """What is at ``path``, to compare byte for byte (a directory's files, a symlink's target)."""
    if path.is_symlink():
        return ("symlink", os.readlink(path))
    if path.is_dir():
        return ("dir", sorted((p.name, p.read_bytes()) for p in path.iterdir()))
    if path.is_fifo():
        return ("fifo",)
    return ("file", path.read_bytes())


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_damaged_log_is_moved_aside_unchanged_and_a_new_one_started(tmp_path, damage):
    from controller.console.audit import open_or_replace
    path = tmp_path / "audit.log"
    DAMAGE[damage](path)
    before = snapshot(path)
    log, note = open_or_replace(path, clock=fixed_clock())
    try:
        aside = tmp_path / "audit.log.damaged-20240501T091403Z"
        assert snapshot(aside) == before, damage    # kept, byte for byte
        assert note.startswith("audit.log was damaged (") and aside.name in note, note
        assert log.problem is None
        record = log.record("prosthetist", "set", "x", "1", "2")
        records = checked_read(path)
        assert records[0]["action"] == "audit log replaced" and records[0]["parameter"] == aside.name
        assert records[1:] == [record]
    finally:
        log.close()


def test_moving_aside_never_replaces_anything(tmp_path):
    from controller.console.audit import open_or_replace
    path = tmp_path / "audit.log"
    taken = tmp_path / "audit.log.damaged-20240501T091403Z"
    taken.mkdir()                                   # an empty directory: rename(2) would replace it
    (tmp_path / "audit.log.damaged-20240501T091403Z-2").write_bytes(b"an older damaged log\n")
    for n, content in enumerate([b"first damage\n", b"second damage\n"]):
        path.write_bytes(content)
        log, note = open_or_replace(path, clock=fixed_clock())
        log.close()
        assert (tmp_path / f"audit.log.damaged-20240501T091403Z-{n + 3}").read_bytes() == content, note
    assert taken.is_dir() and not any(taken.iterdir())
    assert (tmp_path / "audit.log.damaged-20240501T091403Z-2").read_bytes() == b"an older damaged log\n"


def test_a_good_log_is_opened_as_it_is(tmp_path):
    from controller.console.audit import open_or_replace
    path = tmp_path / "audit.log"
    with AuditLog(path, clock=fixed_clock()) as log:
        log.record("prosthetist", "set")
    before = path.read_bytes()
    log, note = open_or_replace(path, clock=fixed_clock())
    log.close()
    assert note is None and path.read_bytes() == before and os.listdir(tmp_path) == ["audit.log"]


def test_when_no_log_can_be_written_every_record_is_refused(tmp_path):
    from controller.console.audit import UnusableLog, open_or_replace
    log, note = open_or_replace(tmp_path / "missing" / "audit.log")
    assert isinstance(log, UnusableLog) and note is None and "cannot open its directory" in log.problem
    with pytest.raises(AuditError, match="no audit log: .*cannot open its directory"):
        log.record("prosthetist", "set", "x", "1", "2")
