"""Who may change the ankle from the console: the prosthetist's PIN and the console's role.

The console is read-only (role ``"viewer"``) until the prosthetist's PIN is entered (role
``"prosthetist"``).  The PIN is set at install and stored salted and hashed with scrypt, one line
in a file only its owner can read.  After ``max_attempts`` wrong PINs in a row the console refuses
every PIN, the right one too, for ``lockout_s``.

Stored form, one text line::

    scrypt$<n>$<r>$<p>$<salt: 32 lowercase hex digits>$<hash: 64 lowercase hex digits>

Why the file mode matters as much as the hash: a PIN of 4 digits has only 10**4 values, so anyone
who can read the stored line can find the PIN by trying them all (scrypt makes each try cost tens
of milliseconds, not forever).  The lock-out protects the console; mode 0600 protects the file.
"""
from __future__ import annotations

import hashlib
import hmac
import math
import os
import re
import secrets
import time
from pathlib import Path
from typing import Callable, Optional, Tuple, Union

from controller.records.csvlog import atomic_write_text

__all__ = ["PinError", "PinFile", "Access", "hash_pin", "verify_pin", "check_pin", "parse_stored",
           "VIEWER", "PROSTHETIST", "MIN_DIGITS", "MAX_DIGITS", "SCRYPT_N", "SCRYPT_R", "SCRYPT_P",
           "SALT_BYTES", "HASH_BYTES", "SET_PIN_HINT"]

#: Read-only: look at values and telemetry, change nothing.
VIEWER = "viewer"
#: May change and save parameters (after the PIN).
PROSTHETIST = "prosthetist"

MIN_DIGITS = 4
MAX_DIGITS = 12

#: scrypt cost: 2**14 x 8 x 128 B = 16 MiB and some tens of ms per try on a Pi-class board.
SCRYPT_N = 2 ** 14
SCRYPT_R = 8
SCRYPT_P = 1
SALT_BYTES = 16
HASH_BYTES = 32

#: How a PIN is set; shown when none is.
SET_PIN_HINT = "set one at install with `ankle pin set`"

_PIN = re.compile(r"[0-9]{%d,%d}" % (MIN_DIGITS, MAX_DIGITS))
# Decimal fields without sign, spaces or leading zeros, so one stored line has one spelling.
_STORED = re.compile(r"scrypt\$([1-9][0-9]{0,7})\$([1-9][0-9]{0,2})\$([1-9][0-9]{0,2})"
                     r"\$([0-9a-f]{%d})\$([0-9a-f]{%d})" % (2 * SALT_BYTES, 2 * HASH_BYTES))
# Bounds on the cost fields read from a file, so a damaged or hostile file cannot make a login
# take the board's memory or minutes of CPU: at most 64 MiB and a few seconds.
_MAX_N, _MAX_R, _MAX_P = 2 ** 16, 16, 4
_MAX_MEM = 64 * 1024 * 1024
# A stored PIN line is about 120 bytes; anything much larger is not one.
_MAX_FILE_BYTES = 4096

PathLike = Union[str, "os.PathLike[str]"]


class PinError(ValueError):
    """A PIN was refused; the message says what a PIN must be.

    Example: ``hash_pin("12a4")`` gives ``a PIN is 4 to 12 digits (0-9), got 4 characters with
    something other than a digit``.
    """


def check_pin(pin: str) -> str:
    """Return ``pin`` if it is 4 to 12 ASCII digits, else raise :class:`PinError` saying why.

    The message never repeats the PIN itself (it may be shown or logged)."""
    if not isinstance(pin, str):
        raise PinError(f"a PIN is {MIN_DIGITS} to {MAX_DIGITS} digits (0-9), got {type(pin).__name__}")
    if _PIN.fullmatch(pin):
        return pin
    if pin and all("0" <= c <= "9" for c in pin):
        raise PinError(f"a PIN is {MIN_DIGITS} to {MAX_DIGITS} digits (0-9), got {len(pin)} digits")
    if not pin:
        raise PinError(f"a PIN is {MIN_DIGITS} to {MAX_DIGITS} digits (0-9), got nothing")
    raise PinError(f"a PIN is {MIN_DIGITS} to {MAX_DIGITS} digits (0-9), got {len(pin)} characters "
                   f"with something other than a digit")


def _scrypt(pin: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(pin.encode("ascii"), salt=salt, n=n, r=r, p=p, maxmem=_MAX_MEM,
                          dklen=HASH_BYTES)


def hash_pin(pin: str, salt: Optional[bytes] = None) -> str:
    """The stored line for ``pin``: ``scrypt$16384$8$1$<salt hex>$<hash hex>`` (no newline).

    ``salt`` defaults to 16 fresh random bytes (give one only to reproduce a line in a test).
    Raises :class:`PinError` if ``pin`` is not 4 to 12 digits.
    """
    check_pin(pin)
    if salt is None:
        salt = secrets.token_bytes(SALT_BYTES)
    elif not isinstance(salt, (bytes, bytearray)) or len(salt) != SALT_BYTES:
        raise ValueError(f"salt must be {SALT_BYTES} bytes")
    digest = _scrypt(pin, bytes(salt), SCRYPT_N, SCRYPT_R, SCRYPT_P)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${bytes(salt).hex()}${digest.hex()}"


def parse_stored(stored: str) -> Tuple[int, int, int, bytes, bytes]:
    """(n, r, p, salt, hash) from a stored line, or :class:`ValueError` saying what is wrong."""
    if not isinstance(stored, str):
        raise ValueError("not text")
    m = _STORED.fullmatch(stored)
    if m is None:
        raise ValueError("not a stored PIN (expected scrypt$<n>$<r>$<p>$<salt hex>$<hash hex>)")
    n, r, p = (int(g) for g in m.group(1, 2, 3))
    if n < 2 or n & (n - 1) or n > _MAX_N or r > _MAX_R or p > _MAX_P:
        raise ValueError(f"scrypt cost n={n} r={r} p={p} is outside what this device accepts "
                         f"(n a power of 2 up to {_MAX_N}, r up to {_MAX_R}, p up to {_MAX_P})")
    return n, r, p, bytes.fromhex(m.group(4)), bytes.fromhex(m.group(5))


def verify_pin(pin: str, stored: str) -> bool:
    """True if ``pin`` is the PIN ``stored`` (a :func:`hash_pin` line) was made from.

    Never raises: a PIN that is not 4 to 12 digits, or a stored line that is not exactly in the
    format, gives False.  The hashes are compared in constant time.
    """
    try:
        check_pin(pin)
        n, r, p, salt, expected = parse_stored(stored)
        return hmac.compare_digest(_scrypt(pin, salt, n, r, p), expected)
    except (ValueError, MemoryError):       # PinError is a ValueError; scrypt refuses with one too
        return False


class PinFile:
    """The device's stored PIN: one :func:`hash_pin` line in a file of mode 0600.

    Reading never raises: a missing, unreadable or damaged file makes :meth:`verify` False and
    :attr:`problem` says why.
    """

    def __init__(self, path: PathLike):
        self.path = Path(path)

    def set(self, pin: str) -> None:
        """Store ``pin`` (replacing any old one) atomically: a crash leaves the old or the new PIN.

        Raises :class:`PinError` for a PIN that is not 4 to 12 digits, ``OSError`` if the file
        cannot be written."""
        line = hash_pin(pin)
        # atomic_write_text writes through mkstemp, which creates the file 0600 whatever the umask,
        # and the rename keeps that mode; the chmod states the requirement (and covers a platform
        # where mkstemp differs).
        atomic_write_text(self.path, line + "\n")
        os.chmod(self.path, 0o600)

    def exists(self) -> bool:
        """True if the PIN file is there (usable or not: see :attr:`problem`)."""
        return self.path.exists()

    def read_stored(self) -> Tuple[Optional[str], Optional[str]]:
        """(the stored line, None), or (None, what is wrong in plain words).  Never raises."""
        try:
            with open(self.path, "rb") as f:
                data = f.read(_MAX_FILE_BYTES + 1)
        except FileNotFoundError:
            return None, f"no PIN is set on this device: {SET_PIN_HINT}"
        except OSError as e:
            return None, f"the PIN file {self.path} cannot be read ({e.strerror or e})"
        if len(data) > _MAX_FILE_BYTES:
            return None, f"the PIN file {self.path} is damaged (too large); {SET_PIN_HINT}"
        try:
            text = data.decode("ascii")
        except UnicodeDecodeError:
            return None, f"the PIN file {self.path} is damaged (not text); {SET_PIN_HINT}"
        if text.endswith("\n"):
            text = text[:-1]
        try:
            parse_stored(text)
        except ValueError as e:
            return None, f"the PIN file {self.path} is damaged ({e}); {SET_PIN_HINT}"
        return text, None

    @property
    def problem(self) -> Optional[str]:
        """None if a usable PIN is stored, else one line saying what is wrong (read afresh)."""
        return self.read_stored()[1]

    def verify(self, pin: str) -> bool:
        """True if ``pin`` is the stored PIN; False for a wrong PIN or a missing/damaged file."""
        stored, _ = self.read_stored()
        return stored is not None and verify_pin(pin, stored)


class Access:
    """The console session's role, with PIN login, lock-out and an optional idle log-out.

    ``clock`` [s] is injected (monotonic by default) so tests step time instead of sleeping.
    ``auto_logout_s``: a prosthetist who sends no command for this long is back to viewer
    (``None``: never).  Call :meth:`touch` on every command.
    """

    def __init__(self, pin_file: Union[PinFile, PathLike], *, max_attempts: int = 5, lockout_s: float = 300.0,
                 clock: Callable[[], float] = time.monotonic, auto_logout_s: Optional[float] = None):
        if isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1:
            raise ValueError(f"max_attempts must be a whole number >= 1, got {max_attempts!r}")
        if not (isinstance(lockout_s, (int, float)) and math.isfinite(lockout_s) and lockout_s > 0):
            raise ValueError(f"lockout_s must be a finite number > 0 [s], got {lockout_s!r}")
        if auto_logout_s is not None and not (isinstance(auto_logout_s, (int, float))
                                              and math.isfinite(auto_logout_s) and auto_logout_s > 0):
            raise ValueError(f"auto_logout_s must be None or a finite number > 0 [s], got {auto_logout_s!r}")
        self.pin_file = pin_file if isinstance(pin_file, PinFile) else PinFile(pin_file)
        self.max_attempts = max_attempts
        self.lockout_s = float(lockout_s)
        self.auto_logout_s = None if auto_logout_s is None else float(auto_logout_s)
        self._clock = clock
        self._role = VIEWER
        self._failures = 0                  # consecutive wrong PINs
        self._locked_until: Optional[float] = None
        self._last_activity = clock()

    # --- state ----------------------------------------------------------------------------

    @property
    def role(self) -> str:
        """``"viewer"`` or ``"prosthetist"`` (an idle session has already been logged out)."""
        self._expire_idle(self._clock())
        return self._role

    @property
    def can_change(self) -> bool:
        """True if parameters may be changed now."""
        return self.role == PROSTHETIST

    @property
    def locked(self) -> bool:
        """True while every PIN is refused after too many wrong ones."""
        return self._lock_remaining(self._clock()) > 0

    @property
    def lock_remaining_s(self) -> float:
        """Seconds until PINs are accepted again (0 when not locked)."""
        return self._lock_remaining(self._clock())

    @property
    def attempts_left(self) -> int:
        """Wrong PINs still allowed before the lock-out."""
        self._lock_remaining(self._clock())     # a lock that has run out resets the count
        return self.max_attempts - self._failures

    # --- actions --------------------------------------------------------------------------

    def login(self, pin: str, grant: Optional[Callable[[str], None]] = None) -> str:
        """Try ``pin``; return one line for the user saying what happened.

        ``grant(message)``, if given, is called with the success message before the role becomes
        prosthetist (the console records the login there): if it raises, the session stays
        read-only and the exception propagates, so no right is given that was not recorded.

        Right PIN: ``"prosthetist: changes allowed"``.  Wrong PIN: ``"wrong PIN (4 attempts
        left)"``, the session becomes viewer, and the attempt that uses up ``max_attempts`` locks:
        ``"locked: too many wrong PINs; try again in 300 s"`` (also the answer to any PIN while
        locked).  Something that is not 4 to 12 digits cannot be the PIN and is not counted.  No
        usable PIN file: the file's problem, e.g. ``"no PIN is set on this device: set one at
        install with `ankle pin set`"``, and nobody can log in.
        """
        now = self._clock()
        if self._lock_remaining(now) > 0:
            self._role = VIEWER
            return self._locked_message(now)
        try:
            check_pin(pin)
        except PinError as e:
            return f"not a PIN: {e}; nothing changed"
        stored, problem = self.pin_file.read_stored()
        if stored is None:
            self._role = VIEWER
            return problem
        if verify_pin(pin, stored):
            self._role = VIEWER
            if grant is not None:
                grant("prosthetist: changes allowed")
            self._role = PROSTHETIST
            self._failures = 0
            self._last_activity = now
            return "prosthetist: changes allowed"
        # Any failed login leaves the session read-only: the role is what the last PIN proved.
        self._role = VIEWER
        self._failures += 1
        if self._failures >= self.max_attempts:
            self._locked_until = now + self.lockout_s
            return self._locked_message(now)
        left = self.max_attempts - self._failures
        return f"wrong PIN ({left} attempt{'s' if left != 1 else ''} left)"

    def logout(self) -> str:
        """Back to read-only; returns the line to show."""
        self._role = VIEWER
        return "viewer: read-only"

    def touch(self) -> Optional[str]:
        """Note a command; call it first on every command.

        Returns None, or, if the prosthetist had been idle longer than ``auto_logout_s``, the line
        saying they were logged out (the command then runs as viewer).
        """
        now = self._clock()
        message = self._expire_idle(now)
        self._last_activity = now
        return message

    # --- internals ------------------------------------------------------------------------

    def _expire_idle(self, now: float) -> Optional[str]:
        if (self._role == PROSTHETIST and self.auto_logout_s is not None
                and now - self._last_activity >= self.auto_logout_s):
            self._role = VIEWER
            return (f"logged out after {self.auto_logout_s:g} s without a command: read-only; "
                    f"log in again to make changes")
        return None

    def _lock_remaining(self, now: float) -> float:
        if self._locked_until is None:
            return 0.0
        remaining = self._locked_until - now
        if remaining > 0:
            return remaining
        # The lock has run out: a fresh set of attempts.
        self._locked_until = None
        self._failures = 0
        return 0.0

    def _locked_message(self, now: float) -> str:
        seconds = max(1, math.ceil(self._lock_remaining(now)))
        return f"locked: too many wrong PINs; try again in {seconds} s"
