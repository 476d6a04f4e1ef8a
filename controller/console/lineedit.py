"""The console's line discipline: raw bytes from a serial terminal in, complete lines out.

A prosthetist types into whatever terminal program is at hand (miniterm, screen, PuTTY), so the
device does the line editing itself, the way a Unix tty in canonical mode would, and echoes what
the user should see.  :class:`LineEditor` is a byte-at-a-time state machine with no I/O and no
clock: it never raises on any input, its memory is bounded whatever arrives, and splitting the
same bytes into different chunks gives the same lines and the same echo.

Rules, as seen from the keyboard:

- Enter ends a line whether the terminal sends CR, LF or CR LF (a CR then an LF is one line end,
  even when they arrive in different reads; LF then CR is two).  An empty line is a line too.
- Backspace (BS 0x08) and Delete (DEL 0x7F) erase the last character (a whole UTF-8 character);
  Ctrl-U erases the line; Ctrl-C drops the line and says so (a ``"cancel"`` event).
- Up and Down (``ESC [ A`` / ``ESC [ B``, and ``ESC O A`` / ``ESC O B`` from a terminal in
  application-cursor mode, PuTTY's) browse the last ``history_size`` lines: the line on screen is
  erased with backspaces and the recalled one echoed, so it works on any terminal.  Down past the
  newest brings back the line that was being typed.  Empty lines, spoiled lines and a repeat of
  the line before are not kept; a ``login`` line is kept as ``login`` alone, never with its PIN.
- A line that starts with ``login `` (any case, leading spaces allowed) echoes ``*`` for every
  character after it: the PIN never appears on the screen; the line event still has the real text.
- Every other escape sequence (arrow and function keys: ESC [ ... final byte, ESC O x) is
  swallowed, so it never puts garbage into a line.  An ESC that starts neither is dropped on its own.
- TAB is a space; every other control character is ignored.
- More than ``max_chars`` characters, or bytes that are not UTF-8, spoil the line: the rest is
  still edited and echoed normally, but at Enter the line comes out as one ``"error"`` event
  saying what was wrong, never as a command.
"""
from __future__ import annotations

import re
import shlex
import unicodedata
from collections import deque
from typing import List, NamedTuple, Optional, Tuple

__all__ = ["LineEditor", "Event", "LINE", "ERROR", "CANCEL", "KEY", "KINDS", "DEFAULT_MAX_CHARS",
           "DEFAULT_HISTORY"]

#: A complete line; ``text`` is the line without its terminator.
LINE = "line"
#: A spoiled line was ended; ``text`` is one sentence for the user saying why it was ignored.
ERROR = "error"
#: Ctrl-C: the line being typed was dropped.
CANCEL = "cancel"
#: Some input arrived (once per :meth:`LineEditor.feed` call that had bytes): ``watch`` stops on it.
KEY = "key"
#: Every event kind.
KINDS = (LINE, ERROR, CANCEL, KEY)

#: Longest line kept by default [characters]; the longest console command is far shorter.
DEFAULT_MAX_CHARS = 200
#: Lines Up and Down can recall by default.
DEFAULT_HISTORY = 50

# What makes the rest of a line a PIN: `login` (as the console's shlex would read it, also quoted)
# and a space, at the start of the line.  Everything typed after it is echoed as '*'.
_LOGIN_PREFIX = re.compile(r" *[\"']?login[\"']? ", re.IGNORECASE)
_MASK = b"*"

_NUL, _CTRL_C, _BS, _TAB, _LF, _CR, _CTRL_U, _ESC, _DEL = 0x00, 0x03, 0x08, 0x09, 0x0A, 0x0D, 0x15, 0x1B, 0x7F

# Escape-sequence states (a CSI that has had a parameter byte is no plain arrow key).
_ESC_NONE, _ESC_START, _ESC_CSI, _ESC_SS3, _ESC_CSI_PARAMS = 0, 1, 2, 3, 4
_UP, _DOWN = 0x41, 0x42                     # the final byte of the arrows: 'A', 'B'


def _secret(text: str) -> bool:
    """Does ``text`` carry a PIN (a `login` line, however the console would read its first word)?"""
    if _LOGIN_PREFIX.match(text):
        return True
    try:
        words = shlex.split(text)
    except ValueError:
        words = text.split()
    return bool(words) and words[0].lower() == "login"

# What erases one terminal cell: back, overwrite with a space, back again.
_ERASE = b"\b \b"


class Event(NamedTuple):
    """One thing that happened on the console's input: ``kind`` is one of :data:`KINDS`.

    ``text`` is the line for ``"line"``, the user-facing sentence for ``"error"``, else ``""``.
    """

    kind: str
    text: str = ""


def _cells(ch: str) -> int:
    """Terminal cells a printable character takes, so Backspace echoes the right number of erases."""
    if ch < "\u0300":                       # ASCII and Latin: the common case, no table lookup
        return 1
    if unicodedata.combining(ch) or unicodedata.category(ch) in ("Mn", "Me"):
        return 0
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def _utf8_lead(b: int):
    """For a UTF-8 lead byte: (continuation bytes needed, allowed range of the first one), or None.

    The ranges are Unicode's table of well-formed sequences (Table 3-7), so overlong forms,
    surrogates and code points above U+10FFFF are refused exactly as Python's strict decoder does.
    """
    if 0xC2 <= b <= 0xDF:
        return 1, 0x80, 0xBF
    if b == 0xE0:
        return 2, 0xA0, 0xBF
    if b == 0xED:
        return 2, 0x80, 0x9F
    if 0xE1 <= b <= 0xEF:
        return 2, 0x80, 0xBF
    if b == 0xF0:
        return 3, 0x90, 0xBF
    if 0xF1 <= b <= 0xF3:
        return 3, 0x80, 0xBF
    if b == 0xF4:
        return 3, 0x80, 0x8F
    return None                             # 0x80..0xC1 and 0xF5..0xFF never start a character


class LineEditor:
    """Terminal line editing for the serial console: bytes in, :class:`Event` s and echo out.

    >>> ed = LineEditor()
    >>> ed.feed(b"stax\\x7ftus\\r\\n")
    [Event(kind='key', text=''), Event(kind='line', text='status')]
    >>> ed.take_echo()
    b'stax\\x08 \\x08tus\\r\\n'

    Send :meth:`take_echo` back to the terminal after every :meth:`feed`.  Only printable text,
    ``\\b``, space, ``\\r\\n`` and ``^C`` are ever echoed: nothing the user sends can make the
    device emit an escape sequence to their terminal.
    """

    def __init__(self, max_chars: int = DEFAULT_MAX_CHARS, history_size: int = DEFAULT_HISTORY):
        """``max_chars``: the longest line kept [characters, >= 1]; ``history_size``: the lines
        Up can recall [>= 1] (so the history holds at most ``history_size * max_chars`` characters)."""
        if isinstance(max_chars, bool) or not isinstance(max_chars, int) or max_chars < 1:
            raise ValueError(f"max_chars must be a whole number >= 1, got {max_chars!r}")
        if isinstance(history_size, bool) or not isinstance(history_size, int) or history_size < 1:
            raise ValueError(f"history_size must be a whole number >= 1, got {history_size!r}")
        self.max_chars = max_chars
        self._history: deque = deque(maxlen=history_size)
        self._browse = 0                    # how far back Up went: 0 is the line being typed
        self._draft: Optional[Tuple] = None     # the line being typed, kept while browsing
        self._echo = bytearray()
        self._after_cr = False              # the last byte was a CR: a following LF is part of it
        self._esc = _ESC_NONE
        self._clear_line()

    # --- public ---------------------------------------------------------------------------

    def feed(self, data: bytes) -> List[Event]:
        """Take bytes as they arrived from the port; return what they completed, in order.

        The first event is ``"key"`` whenever ``data`` is not empty.  Never raises for any bytes
        (a ``TypeError`` for something that is not bytes-like is a programming error).
        """
        data = bytes(memoryview(data).cast("B"))
        if not data:
            return []
        events = [Event(KEY)]
        for b in data:
            self._byte(b, events)
        return events

    def take_echo(self) -> bytes:
        """The bytes to send back to the terminal since the last call (then forgotten)."""
        out = bytes(self._echo)
        self._echo.clear()
        return out

    @property
    def echo(self) -> bytes:
        """The echo not yet taken (a copy; :meth:`take_echo` takes it)."""
        return bytes(self._echo)

    @property
    def partial(self) -> str:
        """The line typed so far (what the user sees after the prompt), e.g. to redraw it after
        the console printed something unprompted."""
        return self._line.decode("utf-8")

    @property
    def shown(self) -> str:
        """The line typed so far as the terminal shows it (a PIN as ``*``): what to redraw."""
        return self._shown().decode("utf-8")

    @property
    def shown_cells(self) -> int:
        """Terminal cells :attr:`shown` takes."""
        return sum(self._cells)

    @property
    def history(self) -> Tuple[str, ...]:
        """The lines Up can recall, oldest first (a copy)."""
        return tuple(self._history)

    @property
    def buffered_bytes(self) -> int:
        """Bytes held for the line being typed: at most ``max_chars * 4`` plus a partly received
        character (at most 3), whatever arrives."""
        return len(self._line) + len(self._u8)

    def reset(self) -> None:
        """Forget the line being typed and any half-received key sequence (no echo, no event)."""
        self._after_cr = False
        self._esc = _ESC_NONE
        self._browse, self._draft = 0, None
        self._clear_line()

    def forget_history(self) -> None:
        """Forget the lines Up could recall (a new person at the terminal recalls none of the last one's)."""
        self._history.clear()
        self._browse, self._draft = 0, None

    # --- the state machine ----------------------------------------------------------------

    def _clear_line(self) -> None:
        self._line = bytearray()            # the line's characters, UTF-8 encoded (valid by construction)
        self._lens = bytearray()            # bytes of each character, to erase one character
        self._cells = bytearray()           # terminal cells of each character, to echo the erase
        self._u8 = bytearray()              # a multi-byte character being received
        self._u8_need = 0
        self._u8_lo, self._u8_hi = 0x80, 0xBF
        self._problem: Optional[str] = None     # the first thing that spoiled the line
        self._mask_from: Optional[int] = None   # characters from this one on are a PIN (echoed '*')

    def _shown(self) -> bytes:
        """The line's echo: its text, with the characters of a PIN as '*'."""
        if self._mask_from is None:
            return bytes(self._line)
        head = sum(self._lens[:self._mask_from])
        return bytes(self._line[:head]) + _MASK * (len(self._lens) - self._mask_from)
    def _byte(self, b: int, events: List[Event]) -> None:
        if self._after_cr:
            self._after_cr = False
            if b == _LF:
                return
        if self._esc != _ESC_NONE and self._escape_byte(b):
            return
        if self._u8_need:
            if self._u8_lo <= b <= self._u8_hi:
                self._u8.append(b)
                self._u8_need -= 1
                self._u8_lo, self._u8_hi = 0x80, 0xBF
                if not self._u8_need:
                    ch = self._u8.decode("utf-8")       # well-formed by construction
                    self._u8.clear()
                    self._char(ch)
                return
            # The character was cut off: its lead byte is what the user's terminal got wrong
            # (a Latin-1 'é' is 0xE9 then the next key).  The byte that cut it off still counts:
            # it may be the Enter that ends the line.
            self._spoil_not_text(self._u8[0])
            self._u8.clear()
            self._u8_need = 0
            self._u8_lo, self._u8_hi = 0x80, 0xBF
        if 0x20 <= b < _DEL:
            self._char(chr(b))
        elif b == _CR:
            self._end_line(events)
            self._after_cr = True
        elif b == _LF:
            self._end_line(events)
        elif b == _BS or b == _DEL:
            self._erase_last()
        elif b == _TAB:
            self._char(" ")
        elif b == _CTRL_U:
            self._echo += _ERASE * sum(self._cells)
            self._clear_line()
        elif b == _CTRL_C:
            self._echo += b"^C\r\n"
            self._clear_line()
            self._browse, self._draft = 0, None
            events.append(Event(CANCEL))
        elif b == _ESC:
            self._esc = _ESC_START
        elif b >= 0x80:
            lead = _utf8_lead(b)
            if lead is None:
                self._spoil_not_text(b)
            else:
                self._u8.append(b)
                self._u8_need, self._u8_lo, self._u8_hi = lead
        # any other control byte (NUL, Ctrl-D, BEL, ...) is ignored

    def _escape_byte(self, b: int) -> bool:
        """Advance an escape sequence; True if ``b`` belonged to it (swallowed).  A byte that
        cannot belong to one ends it and is handled as ordinary input, so a CR is never lost."""
        state = self._esc
        if state == _ESC_START:
            if b == 0x5B:                   # '[': CSI, e.g. ESC [ A (up) or ESC [ 3 ~ (delete)
                self._esc = _ESC_CSI
                return True
            if b == 0x4F:                   # 'O': SS3, e.g. ESC O P (F1), ESC O A in application mode
                self._esc = _ESC_SS3
                return True
            # A lone ESC: dropped.  The next byte is typed text, not part of a sequence (a user
            # who presses Esc and then types must not lose a letter).
            self._esc = _ESC_NONE
            return False
        if state == _ESC_CSI:
            if 0x20 <= b <= 0x3F:           # parameter and intermediate bytes
                self._esc = _ESC_CSI_PARAMS
                return True
            self._esc = _ESC_NONE
            if b in (_UP, _DOWN):           # a plain ESC [ A / ESC [ B
                self._recall(1 if b == _UP else -1)
            return 0x40 <= b <= 0x7E        # the final byte ends it
        if state == _ESC_CSI_PARAMS:        # ESC [ 1 ; 5 A and the like: swallowed, no recall
            if 0x20 <= b <= 0x3F:
                return True
            self._esc = _ESC_NONE
            return 0x40 <= b <= 0x7E
        self._esc = _ESC_NONE               # SS3: exactly one more byte
        if b in (_UP, _DOWN):               # ESC O A / ESC O B: the arrows in application mode
            self._recall(1 if b == _UP else -1)
        return 0x20 <= b <= 0x7E

    def _recall(self, step: int) -> None:
        """Up (``step`` 1) or Down (-1) through the history: erase the line on screen, show the other."""
        target = self._browse + step
        if not 0 <= target <= len(self._history):
            return                          # past either end: nothing happens, nothing is echoed
        if self._browse == 0:               # leaving the line being typed: keep it for Down
            self._draft = (bytes(self._line), bytes(self._lens), bytes(self._cells), self._problem,
                           self._mask_from)
        self._echo += _ERASE * sum(self._cells)
        self._clear_line()
        self._browse = target
        if target == 0:
            line, lens, cells, problem, mask_from = self._draft
            self._draft = None
            self._line, self._lens, self._cells = bytearray(line), bytearray(lens), bytearray(cells)
            self._problem, self._mask_from = problem, mask_from
            self._echo += self._shown()
        else:
            for ch in self._history[-target]:
                self._char(ch)

    def _char(self, ch: str) -> None:
        if not ch.isprintable():            # C1 controls, format and separator characters
            return
        if len(self._lens) >= self.max_chars:
            if self._problem is None:
                self._problem = (f"line too long: at most {self.max_chars} characters; "
                                 f"the line was ignored")
            return
        if self._mask_from is None and _LOGIN_PREFIX.fullmatch(self._line.decode("utf-8")):
            self._mask_from = len(self._lens)
        encoded = ch.encode("utf-8")
        masked = self._mask_from is not None
        cells = 1 if masked else _cells(ch)
        self._line += encoded
        self._lens.append(len(encoded))
        self._cells.append(cells)
        self._echo += _MASK if masked else encoded

    def _erase_last(self) -> None:
        if not self._lens:
            return                          # nothing to erase: no echo either
        del self._line[len(self._line) - self._lens.pop():]
        self._echo += _ERASE * self._cells.pop()
        if self._mask_from is not None and len(self._lens) < self._mask_from:
            self._mask_from = None          # the word `login` itself was erased: no longer a PIN

    def _spoil_not_text(self, b: int) -> None:
        if self._problem is None:
            self._problem = f"not text: byte 0x{b:02x} in the line is not UTF-8; the line was ignored"

    def _end_line(self, events: List[Event]) -> None:
        if self._problem is not None:
            events.append(Event(ERROR, self._problem))
        else:
            text = self._line.decode("utf-8")
            events.append(Event(LINE, text))
            self._remember(text)
        self._echo += b"\r\n"
        self._clear_line()
        self._browse, self._draft = 0, None

    def _remember(self, text: str) -> None:
        """Keep a line for Up: not an empty one, not a repeat, and a `login` line without its PIN."""
        if not text.strip():
            return
        if _secret(text):
            text = "login"
        if not self._history or self._history[-1] != text:
            self._history.append(text)
