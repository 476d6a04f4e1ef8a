"""The prosthetist's PIN and the console's role: hashing, the PIN file, login and lock-out."""
import hashlib
import os
import random
import re
import stat
import sys
from pathlib import Path

import pytest
from conftest import kill_when_ready
from hypothesis import HealthCheck, given, settings, strategies as st

from controller.console.access import (PROSTHETIST, SET_PIN_HINT, VIEWER, Access, PinError, PinFile, check_pin,
                               hash_pin, parse_stored, verify_pin)

ROOT = Path(__file__).resolve().parents[1]
STORED = re.compile(r"scrypt\$16384\$8\$1\$[0-9a-f]{32}\$[0-9a-f]{64}")
NO_PIN = "no PIN is set on this device: set one at install with `ankle pin set`"


class Clock:
    """A clock the test moves by hand [s]."""

    def __init__(self, t=1000.0):
        self.t = t

    def __call__(self):
        return self.t


@pytest.fixture(scope="module")
def stored_1234():
    return hash_pin("1234")


@pytest.fixture
def pin_file(tmp_path):
    pins = PinFile(tmp_path / "pin")
    pins.set("2468")
    return pins


# --- hashing ---------------------------------------------------------------------------------

def test_hash_round_trip_and_format(stored_1234):
    assert STORED.fullmatch(stored_1234)
    assert verify_pin("1234", stored_1234) is True


@pytest.mark.parametrize("wrong", ["1235", "4321", "12345", "01234", "0000", "123456789012"])
def test_a_wrong_pin_does_not_verify(stored_1234, wrong):
    assert verify_pin(wrong, stored_1234) is False


def test_salts_differ_so_equal_pins_give_different_lines():
    a, b = hash_pin("1234"), hash_pin("1234")
    assert a != b
    assert a.split("$")[4] != b.split("$")[4]
    assert verify_pin("1234", a) and verify_pin("1234", b)


def test_a_given_salt_reproduces_scrypt_with_the_stated_cost():
    salt = bytes(range(16))
    line = hash_pin("987654", salt)
    assert line == hash_pin("987654", salt)
    expected = hashlib.scrypt(b"987654", salt=salt, n=2 ** 14, r=8, p=1, dklen=32)
    assert line == f"scrypt$16384$8$1${salt.hex()}${expected.hex()}"
    assert parse_stored(line) == (2 ** 14, 8, 1, salt, expected)


@pytest.mark.parametrize("salt", [b"", b"short", bytes(15), bytes(17), "0" * 16])
def test_a_salt_must_be_16_bytes(salt):
    with pytest.raises(ValueError, match="16 bytes"):
        hash_pin("1234", salt)


@pytest.mark.parametrize("pin", ["", "1", "123", "1234567890123", "12a4", "12 34", " 1234", "1234\n", "+1234",
                                 "-1234", "12.34", "١٢٣٤", "１２３４", "abcd", None, 1234, b"1234"])
def test_a_pin_is_4_to_12_ascii_digits(pin):
    with pytest.raises(PinError, match="a PIN is 4 to 12 digits") as e:
        hash_pin(pin)
    # the message may be shown or logged: it never repeats what was typed
    if isinstance(pin, str) and len(pin) >= 3:
        assert pin not in str(e.value)
    assert verify_pin(pin, hash_pin("1234", bytes(16))) is False


@pytest.mark.parametrize("pin", ["0000", "1234", "000000000000", "999999999999"])
def test_good_pins_are_accepted(pin):
    assert check_pin(pin) == pin


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=16))
def test_check_pin_accepts_exactly_4_to_12_ascii_digits(text):
    valid = 4 <= len(text) <= 12 and all(c in "0123456789" for c in text)
    if valid:
        assert check_pin(text) == text
    else:
        with pytest.raises(PinError):
            check_pin(text)


def test_the_stored_format_is_parsed_strictly(stored_1234):
    """Every variant of a right line is refused, even with the right PIN: one line, one spelling."""
    _, n, r, p, salt, digest = stored_1234.split("$")
    variants = [
        stored_1234 + "\n", stored_1234 + " ", " " + stored_1234, stored_1234.upper(),
        stored_1234.replace("scrypt", "SCRYPT"), "scrypt$016384$8$1$" + salt + "$" + digest,
        "scrypt$16384$08$1$" + salt + "$" + digest, "scrypt$+16384$8$1$" + salt + "$" + digest,
        "scrypt$16384$8$1$" + salt.upper() + "$" + digest, "scrypt$16384$8$1$" + salt + "$" + digest.upper(),
        "scrypt$16384$8$1$" + salt[:-2] + "$" + digest, "scrypt$16384$8$1$" + salt + "$" + digest[:-2],
        "scrypt$16384$8$1$" + salt + "00$" + digest, "scrypt$16384$8$1$" + salt + "$" + digest + "00",
        "scrypt$16384$8$1$" + salt + "$" + digest + "$", "scrypt$16384$8$" + salt + "$" + digest,
        "scrypt$16384$8$1$1$" + salt + "$" + digest, "bcrypt$16384$8$1$" + salt + "$" + digest,
        "scrypt$16384$8$1$" + salt + "$" + digest.replace(digest[0], "g", 1),
        "scrypt$16383$8$1$" + salt + "$" + digest,       # n not a power of 2
        "scrypt$0$8$1$" + salt + "$" + digest, "scrypt$16384$0$1$" + salt + "$" + digest,
        "scrypt$16384$8$0$" + salt + "$" + digest,
        "scrypt$1048576$8$1$" + salt + "$" + digest,     # 1 GiB of memory: refused unread
        "scrypt$16384$8$5$" + salt + "$" + digest, "scrypt$16384$17$1$" + salt + "$" + digest,
        "", "$", "scrypt", stored_1234.replace("$", ":"),
    ]
    for variant in variants:
        assert verify_pin("1234", variant) is False, variant
        with pytest.raises(ValueError):
            parse_stored(variant)


def test_a_cost_within_the_bounds_but_beyond_scrypts_memory_limit_is_false_not_an_error(stored_1234):
    _, _, _, _, salt, digest = stored_1234.split("$")
    # 2**16 * 16 * 128 B = 128 MiB: parsed, then refused by scrypt's memory cap, never raising
    assert verify_pin("1234", f"scrypt$65536$16$1${salt}${digest}") is False


def test_other_accepted_costs_verify():
    salt = bytes(16)
    digest = hashlib.scrypt(b"5555", salt=salt, n=2 ** 10, r=4, p=2, dklen=32)
    assert verify_pin("5555", f"scrypt$1024$4$2${salt.hex()}${digest.hex()}") is True
    assert verify_pin("5556", f"scrypt$1024$4$2${salt.hex()}${digest.hex()}") is False


@settings(max_examples=500, deadline=None)
@given(stored=st.one_of(st.text(max_size=200), st.binary(max_size=200), st.none(), st.integers()))
def test_arbitrary_stored_text_never_raises_in_verify(stored):
    assert verify_pin("1234", stored) is False


@settings(max_examples=25, deadline=None)
@given(index=st.integers(min_value=0), replacement=st.characters(codec="ascii"))
def test_one_changed_character_in_a_stored_line_refuses_the_right_pin(stored_1234, index, replacement):
    index %= len(stored_1234)
    changed = stored_1234[:index] + replacement + stored_1234[index + 1:]
    assert verify_pin("1234", changed) is (changed == stored_1234)


# --- the PIN file ----------------------------------------------------------------------------

def test_pin_file_set_verify_and_mode(tmp_path):
    pins = PinFile(tmp_path / "pin")
    assert not pins.exists()
    pins.set("2468")
    assert pins.exists() and pins.problem is None
    assert pins.verify("2468") and not pins.verify("2469")
    text = (tmp_path / "pin").read_text(encoding="ascii")
    assert text.endswith("\n") and text.count("\n") == 1 and STORED.fullmatch(text[:-1])
    assert stat.S_IMODE(os.stat(tmp_path / "pin").st_mode) == 0o600
    assert sorted(os.listdir(tmp_path)) == ["pin"]       # no temporary file left behind


def test_pin_file_is_0600_whatever_the_umask_and_replaces_the_old_pin(tmp_path):
    path = tmp_path / "pin"
    path.write_text("old\n")
    os.chmod(path, 0o666)
    old_umask = os.umask(0)
    try:
        PinFile(str(path)).set("13579")
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    pins = PinFile(path)
    pins.set("24680")
    assert pins.verify("24680") and not pins.verify("13579")


def test_pin_file_refuses_a_bad_pin_and_keeps_the_old_one(pin_file):
    before = pin_file.path.read_bytes()
    with pytest.raises(PinError):
        pin_file.set("12")
    assert pin_file.path.read_bytes() == before and pin_file.verify("2468")


def test_missing_pin_file(tmp_path):
    pins = PinFile(tmp_path / "nothing" / "pin")
    assert not pins.exists()
    assert pins.verify("2468") is False
    assert pins.problem == NO_PIN


@pytest.mark.parametrize("content", [
    b"", b"\n", b"garbage\n", b"\x00" * 64, b"\xff\xfe" + "scrypt".encode("utf-16-le"),
    b"scrypt$16384$8$1$00$00\n", b"x" * 5000,
], ids=["empty", "newline", "garbage", "zeros", "utf16", "short-fields", "huge"])
def test_a_corrupt_pin_file_never_raises(tmp_path, content):
    path = tmp_path / "pin"
    path.write_bytes(content)
    pins = PinFile(path)
    assert pins.exists()
    assert pins.verify("2468") is False
    assert "damaged" in pins.problem and SET_PIN_HINT in pins.problem


def test_cut_or_doubled_stored_lines_are_corrupt(pin_file):
    good = pin_file.path.read_bytes()
    for content in (good[:-1] + b"\r\n", good[:len(good) // 2], good + good, good[:-2] + b"\n", b" " + good):
        pin_file.path.write_bytes(content)
        assert pin_file.verify("2468") is False, content
        assert "damaged" in pin_file.problem
    pin_file.path.write_bytes(good[:-1])       # the newline itself is optional
    assert pin_file.verify("2468") and pin_file.problem is None


def test_an_unreadable_pin_file_is_a_problem_not_an_error(tmp_path):
    (tmp_path / "pin").mkdir()                 # a directory where the file should be
    pins = PinFile(tmp_path / "pin")
    assert pins.verify("2468") is False
    assert "cannot be read" in pins.problem


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(content=st.binary(max_size=300))
def test_arbitrary_pin_file_bytes_never_raise(tmp_path, content):
    path = tmp_path / "pin"
    path.write_bytes(content)
    pins = PinFile(path)
    assert pins.verify("2468") is False
    assert isinstance(pins.problem, str)


_SETTER = """
import sys
from controller.console.access import PinFile
pins = PinFile(sys.argv[1])
print("ready", flush=True)
while True:
    pins.set("1111")
    pins.set("2222")
"""


def test_killed_while_setting_the_pin_leaves_the_old_or_the_new_one(tmp_path):
    """A real process SIGKILLed while it replaces the PIN over and over: the file always holds
    one of the two PINs, complete, mode 0600."""
    path = tmp_path / "pin"
    PinFile(path).set("1111")
    seed = int.from_bytes(os.urandom(4), "little")
    rng = random.Random(seed)
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    for kill in range(6):
        kill_when_ready([sys.executable, "-c", _SETTER, str(path)], rng, 0.2, cwd=ROOT, env=env)
        pins = PinFile(path)
        assert pins.problem is None, (seed, kill, pins.problem)
        assert pins.verify("1111") != pins.verify("2222"), (seed, kill)
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


# --- roles, login and lock-out ----------------------------------------------------------------

def test_viewer_until_the_right_pin(pin_file):
    access = Access(pin_file, clock=Clock())
    assert access.role == VIEWER and not access.can_change
    assert access.login("2468") == "prosthetist: changes allowed"
    assert access.role == PROSTHETIST and access.can_change
    assert access.logout() == "viewer: read-only"
    assert access.role == VIEWER and not access.can_change


def test_access_takes_a_path_too(pin_file):
    access = Access(str(pin_file.path), clock=Clock())
    assert access.login("2468") == "prosthetist: changes allowed"


def test_lockout_sequence(pin_file):
    clock = Clock()
    access = Access(pin_file, clock=clock)
    replies = [access.login("1111") for _ in range(5)]
    assert replies == ["wrong PIN (4 attempts left)", "wrong PIN (3 attempts left)",
                       "wrong PIN (2 attempts left)", "wrong PIN (1 attempt left)",
                       "locked: too many wrong PINs; try again in 300 s"]
    assert access.locked and access.role == VIEWER
    # while locked, even the right PIN is refused, and the reply counts down
    assert access.login("2468") == "locked: too many wrong PINs; try again in 300 s"
    clock.t += 100.0
    assert access.login("2468") == "locked: too many wrong PINs; try again in 200 s"
    clock.t += 199.5
    assert access.login("2468") == "locked: too many wrong PINs; try again in 1 s"
    assert access.role == VIEWER and not access.can_change
    # attempts during the lock did not lengthen it
    clock.t += 0.5
    assert not access.locked and access.lock_remaining_s == 0.0
    assert access.attempts_left == 5
    assert access.login("2468") == "prosthetist: changes allowed"


def test_the_count_resets_when_the_lock_ends(pin_file):
    clock = Clock()
    access = Access(pin_file, clock=clock, max_attempts=2, lockout_s=60.0)
    assert access.login("1111") == "wrong PIN (1 attempt left)"
    assert access.login("1111") == "locked: too many wrong PINs; try again in 60 s"
    clock.t += 60.0
    assert access.login("1111") == "wrong PIN (1 attempt left)"
    assert access.login("1111") == "locked: too many wrong PINs; try again in 60 s"


def test_a_success_resets_the_count(pin_file):
    access = Access(pin_file, clock=Clock())
    for _ in range(4):
        access.login("1111")
    assert access.attempts_left == 1
    assert access.login("2468") == "prosthetist: changes allowed"
    assert access.attempts_left == 5
    assert access.login("1111") == "wrong PIN (4 attempts left)"


def test_a_wrong_pin_while_logged_in_leaves_read_only(pin_file):
    access = Access(pin_file, clock=Clock())
    access.login("2468")
    assert access.login("1357") == "wrong PIN (4 attempts left)"
    assert access.role == VIEWER and not access.can_change


def test_a_lock_while_logged_in_leaves_read_only(pin_file):
    access = Access(pin_file, clock=Clock(), max_attempts=1)
    access.login("2468")
    assert access.login("1357").startswith("locked:")
    assert not access.can_change


@pytest.mark.parametrize("typed", ["", "12", "abcd", "1234567890123", "12 34", "١٢٣٤"])
def test_something_that_is_not_a_pin_is_refused_but_not_counted(pin_file, typed):
    access = Access(pin_file, clock=Clock())
    reply = access.login(typed)
    assert reply.startswith("not a PIN: a PIN is 4 to 12 digits") and reply.endswith("nothing changed")
    assert access.attempts_left == 5 and access.role == VIEWER


def test_no_pin_set_means_nobody_logs_in(tmp_path):
    access = Access(PinFile(tmp_path / "pin"), clock=Clock())
    assert access.login("1234") == NO_PIN
    assert access.role == VIEWER and access.attempts_left == 5


def test_a_corrupt_pin_file_means_nobody_logs_in(pin_file):
    pin_file.path.write_bytes(b"\x00" * 40)
    access = Access(pin_file, clock=Clock())
    reply = access.login("2468")
    assert "damaged" in reply and SET_PIN_HINT in reply
    assert access.role == VIEWER and access.attempts_left == 5


def test_idle_logout(pin_file):
    clock = Clock()
    access = Access(pin_file, clock=clock, auto_logout_s=600.0)
    access.login("2468")
    clock.t += 599.0
    assert access.touch() is None and access.can_change
    clock.t += 599.0                           # 599 s after the last command
    assert access.touch() is None and access.can_change
    clock.t += 600.0
    assert access.touch() == ("logged out after 600 s without a command: read-only; "
                              "log in again to make changes")
    assert access.role == VIEWER
    assert access.touch() is None              # said once


def test_idle_logout_is_seen_without_touch(pin_file):
    clock = Clock()
    access = Access(pin_file, clock=clock, auto_logout_s=30.0)
    access.login("2468")
    clock.t += 30.0
    assert not access.can_change and access.role == VIEWER


def test_no_idle_logout_by_default(pin_file):
    clock = Clock()
    access = Access(pin_file, clock=clock)
    access.login("2468")
    clock.t += 10 ** 7
    assert access.can_change


@pytest.mark.parametrize("kwargs", [dict(max_attempts=0), dict(max_attempts=2.0), dict(max_attempts=True),
                                    dict(lockout_s=0.0), dict(lockout_s=-1.0), dict(lockout_s=float("inf")),
                                    dict(lockout_s="300"), dict(auto_logout_s=0.0),
                                    dict(auto_logout_s=float("nan"))])
def test_access_settings_are_checked(pin_file, kwargs):
    with pytest.raises(ValueError):
        Access(pin_file, **kwargs)
