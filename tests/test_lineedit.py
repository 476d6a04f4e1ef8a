"""The console's line discipline: every editing rule by table, then wide inputs by hypothesis."""
import random

import pytest
from hypothesis import given, settings, strategies as st

from controller.console.lineedit import CANCEL, ERROR, KEY, KINDS, LINE, Event, LineEditor

ERASE = b"\b \b"


def run(chunks, max_chars=200):
    """Feed ``chunks`` one by one: (events without the per-feed "key", all echo)."""
    ed = LineEditor(max_chars)
    events, echo = [], b""
    for chunk in chunks:
        events += [e for e in ed.feed(chunk) if e.kind != KEY]
        echo += ed.take_echo()
    return events, echo


def line(text):
    return Event(LINE, text)


def too_long(n):
    return Event(ERROR, f"line too long: at most {n} characters; the line was ignored")


def not_text(byte):
    return Event(ERROR, f"not text: byte 0x{byte:02x} in the line is not UTF-8; the line was ignored")


E_ACUTE = "é".encode()          # 2 bytes
HAN = "中".encode()             # 3 bytes, two terminal cells
SMILE = "🙂".encode()           # 4 bytes, two terminal cells

# (name, chunks as they arrive, max_chars, events without "key", echo)
CASES = [
    # line ends
    ("CR ends a line", [b"status\r"], 200, [line("status")], b"status\r\n"),
    ("LF ends a line", [b"status\n"], 200, [line("status")], b"status\r\n"),
    ("CR LF is one line end", [b"status\r\n"], 200, [line("status")], b"status\r\n"),
    ("CR LF split across reads", [b"status\r", b"\nparams\r"], 200, [line("status"), line("params")],
     b"status\r\nparams\r\n"),
    ("CR LF split with an empty read between", [b"a\r", b"", b"\nb\n"], 200, [line("a"), line("b")],
     b"a\r\nb\r\n"),
    ("LF CR is two line ends", [b"a\n\rb\n"], 200, [line("a"), line(""), line("b")], b"a\r\n\r\nb\r\n"),
    ("CR CR is two line ends", [b"\r\r"], 200, [line(""), line("")], b"\r\n\r\n"),
    ("CR LF LF is two line ends", [b"\r\n\n"], 200, [line(""), line("")], b"\r\n\r\n"),
    ("an empty line is a line", [b"\n"], 200, [line("")], b"\r\n"),
    ("spaces are kept", [b"  set  x \r"], 200, [line("  set  x ")], b"  set  x \r\n"),
    ("no line end, no line", [b"status"], 200, [], b"status"),
    # erasing
    ("BS erases a character", [b"ab\x08c\r"], 200, [line("ac")], b"ab" + ERASE + b"c\r\n"),
    ("DEL erases a character", [b"ab\x7fc\r"], 200, [line("ac")], b"ab" + ERASE + b"c\r\n"),
    ("BS on an empty line echoes nothing", [b"\x08\x7f\x08a\r"], 200, [line("a")], b"a\r\n"),
    ("BS erases a whole 2-byte character", [E_ACUTE + b"\x7fe\r"], 200, [line("e")],
     E_ACUTE + ERASE + b"e\r\n"),
    ("BS erases a wide character (two cells)", [b"a" + HAN + b"\x7f\r"], 200, [line("a")],
     b"a" + HAN + ERASE * 2 + b"\r\n"),
    ("BS erases a 4-byte character", [SMILE + b"\x08x\r"], 200, [line("x")], SMILE + ERASE * 2 + b"x\r\n"),
    ("more BS than characters", [b"ab\x7f\x7f\x7f\x7fc\r"], 200, [line("c")], b"ab" + ERASE * 2 + b"c\r\n"),
    ("Ctrl-U erases the line", [b"abc\x15d\r"], 200, [line("d")], b"abc" + ERASE * 3 + b"d\r\n"),
    ("Ctrl-U erases wide characters cell by cell", [HAN + b"a\x15\r"], 200, [line("")],
     HAN + b"a" + ERASE * 3 + b"\r\n"),
    ("Ctrl-U on an empty line echoes nothing", [b"\x15\r"], 200, [line("")], b"\r\n"),
    # Ctrl-C
    ("Ctrl-C cancels the line", [b"abc\x03d\r"], 200, [Event(CANCEL), line("d")], b"abc^C\r\nd\r\n"),
    ("Ctrl-C on an empty line still cancels", [b"\x03"], 200, [Event(CANCEL)], b"^C\r\n"),
    ("Ctrl-C forgets a bad byte", [b"\xff\x03ok\r"], 200, [Event(CANCEL), line("ok")], b"^C\r\nok\r\n"),
    ("Ctrl-C forgets an over-long line", [b"abcdef\x03ok\r"], 3, [Event(CANCEL), line("ok")],
     b"abc^C\r\nok\r\n"),
    # escape sequences
    ("arrow keys are swallowed", [b"ab\x1b[D\x1b[Ac\r"], 200, [line("abc")], b"abc\r\n"),
    ("CSI with parameters (Ctrl-right, Delete)", [b"a\x1b[1;5Cb\x1b[3~\r"], 200, [line("ab")], b"ab\r\n"),
    ("bracketed paste markers are swallowed", [b"\x1b[200~set\x1b[201~\r"], 200, [line("set")],
     b"set\r\n"),
    ("SS3 keys (F1, keypad) are swallowed", [b"a\x1bOPb\x1bOA\r"], 200, [line("ab")], b"ab\r\n"),
    ("an escape sequence split across reads", [b"a\x1b", b"[", b"1", b"~b\r"], 200, [line("ab")],
     b"ab\r\n"),
    ("a lone ESC is dropped, the text after it kept", [b"\x1bstatus\r"], 200, [line("status")],
     b"status\r\n"),
    ("ESC ESC [ A is one dropped ESC and one arrow", [b"x\x1b\x1b[Ay\r"], 200, [line("xy")], b"xy\r\n"),
    ("ESC then Enter still ends the line", [b"a\x1b\r"], 200, [line("a")], b"a\r\n"),
    ("a CSI cut off by Enter still ends the line", [b"a\x1b[12\rb\r"], 200, [line("a"), line("b")],
     b"a\r\nb\r\n"),
    ("SS3 cut off by Enter still ends the line", [b"a\x1bO\r"], 200, [line("a")], b"a\r\n"),
    ("a CSI cut off by DEL: DEL still erases", [b"ab\x1b[\x7f\r"], 200, [line("a")], b"ab" + ERASE + b"\r\n"),
    ("a CSI cut off by a non-ASCII byte", [b"a\x1b[" + E_ACUTE + b"\r"], 200, [line("aé")],
     b"a" + E_ACUTE + b"\r\n"),
    # other control bytes
    ("TAB becomes a space", [b"set\tx\r"], 200, [line("set x")], b"set x\r\n"),
    ("other control bytes are ignored", [b"a\x00\x01\x02\x04\x07\x0b\x0c\x1a\x1c\x1fb\r"], 200,
     [line("ab")], b"ab\r\n"),
    ("a C1 control in UTF-8 (U+0085) is ignored", [b"a\xc2\x85b\r"], 200, [line("ab")], b"ab\r\n"),
    ("U+2028 line separator is ignored", ["a\u2028b\r".encode()], 200, [line("ab")], b"ab\r\n"),
    ("a bidi override (U+202E) is ignored", ["a\u202eb\r".encode()], 200, [line("ab")], b"ab\r\n"),
    # UTF-8
    ("UTF-8 text is kept", ["café 中\r".encode()], 200, [line("café 中")], "café 中\r\n".encode()),
    ("a character split across reads", [b"\xc3", b"\xa9\r"], 200, [line("é")], E_ACUTE + b"\r\n"),
    ("a 4-byte character split byte by byte", [SMILE[:1], SMILE[1:2], SMILE[2:3], SMILE[3:], b"\n"], 200,
     [line("🙂")], SMILE + b"\r\n"),
    ("a byte that is never UTF-8", [b"a\xffb\r"], 200, [not_text(0xFF)], b"ab\r\n"),
    ("Latin-1 e-acute cut off by Enter", [b"caf\xe9\r"], 200, [not_text(0xE9)], b"caf\r\n"),
    ("Latin-1 e-acute then a letter: the letter is kept", [b"\xe9x\r"], 200, [not_text(0xE9)], b"x\r\n"),
    ("the first bad byte is named", [b"\xc0\xff\xfe\r"], 200, [not_text(0xC0)], b"\r\n"),
    ("a stray continuation byte", [b"a\x80\r"], 200, [not_text(0x80)], b"a\r\n"),
    ("an overlong encoding (C0 AF)", [b"\xc0\xaf\r"], 200, [not_text(0xC0)], b"\r\n"),
    ("an overlong 3-byte encoding (E0 80 AF)", [b"\xe0\x80\xaf\r"], 200, [not_text(0xE0)], b"\r\n"),
    ("an encoded surrogate (ED A0 80)", [b"\xed\xa0\x80\r"], 200, [not_text(0xED)], b"\r\n"),
    ("beyond U+10FFFF (F4 90 80 80)", [b"\xf4\x90\x80\x80\r"], 200, [not_text(0xF4)], b"\r\n"),
    ("a bad line does not spoil the next", [b"\xff\r", b"ok\r"], 200, [not_text(0xFF), line("ok")],
     b"\r\nok\r\n"),
    ("an unfinished character does not carry into the next line", [b"\xc3\r\xa9\r"], 200,
     [not_text(0xC3), not_text(0xA9)], b"\r\n\r\n"),
    ("BS does not remove a bad byte", [b"a\xff\x7f\r"], 200, [not_text(0xFF)], b"a" + ERASE + b"\r\n"),
    ("Ctrl-U forgets a bad byte", [b"\xff\x15ok\r"], 200, [line("ok")], b"ok\r\n"),
    # length
    ("exactly max_chars is fine", [b"abcde\r"], 5, [line("abcde")], b"abcde\r\n"),
    ("max_chars counts characters, not bytes", [HAN * 5 + b"\r"], 5, [line("中" * 5)], HAN * 5 + b"\r\n"),
    ("one more than max_chars is an error", [b"abcdef\r"], 5, [too_long(5)], b"abcde\r\n"),
    ("the extra is neither stored nor echoed", [b"abc", b"defgh", b"\r"], 3, [too_long(3)], b"abc\r\n"),
    ("BS after overflowing does not make the line good", [b"abcd\x7f\r"], 3, [too_long(3)],
     b"abc" + ERASE + b"\r\n"),
    ("a control byte past the limit is not an overflow", [b"abc\x00\x1b[A\r"], 3, [line("abc")],
     b"abc\r\n"),
    ("the line after an over-long one is fine", [b"abcd\rab\r"], 3, [too_long(3), line("ab")],
     b"abc\r\nab\r\n"),
    ("Ctrl-U forgets an overflow", [b"abcd\x15ab\r"], 3, [line("ab")], b"abc" + ERASE * 3 + b"ab\r\n"),
    ("the first problem is the one reported (too long)", [b"abcd\xff\r"], 3, [too_long(3)], b"abc\r\n"),
    ("the first problem is the one reported (not text)", [b"\xffabcd\r"], 3, [not_text(0xFF)], b"abc\r\n"),
]


@pytest.mark.parametrize("name, chunks, max_chars, events, echo", CASES, ids=[c[0] for c in CASES])
def test_rules(name, chunks, max_chars, events, echo):
    got_events, got_echo = run(chunks, max_chars)
    assert got_events == events
    assert got_echo == echo


# --- the "key" event, echo handling and the small API -------------------------------------------

def test_key_event_once_per_feed_with_input_and_first():
    ed = LineEditor()
    assert ed.feed(b"") == []
    assert ed.feed(b"\x00") == [Event(KEY)]
    assert ed.feed(b"\x1b[A") == [Event(KEY)]
    assert ed.feed(b"a\rb\r") == [Event(KEY), line("a"), line("b")]
    assert ed.feed(bytearray(b"\x03")) == [Event(KEY), Event(CANCEL)]
    assert ed.feed(memoryview(b"x\n")) == [Event(KEY), line("x")]


def test_echo_accumulates_until_taken():
    ed = LineEditor()
    ed.feed(b"ab")
    ed.feed(b"c")
    assert ed.echo == b"abc"
    assert ed.take_echo() == b"abc"
    assert ed.echo == b"" and ed.take_echo() == b""


def test_partial_and_reset():
    ed = LineEditor()
    ed.feed(b"set x" + E_ACUTE + b"\x1b[")
    assert ed.partial == "set xé"
    ed.reset()
    assert ed.partial == ""
    # the half-received escape sequence was forgotten too: "A" is text again
    assert [e for e in ed.feed(b"A\r") if e.kind != KEY] == [line("A")]


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "200", None])
def test_max_chars_must_be_a_positive_whole_number(bad):
    with pytest.raises(ValueError, match="max_chars"):
        LineEditor(bad)


def test_feed_refuses_text_instead_of_bytes():
    # a programming error, not input: str has no bytes to decide on
    with pytest.raises(TypeError):
        LineEditor().feed("status\r")


def test_memory_is_bounded_for_a_megabyte_without_a_line_end():
    ed = LineEditor(200)
    for chunk in (b"x" * 10 ** 6, SMILE * (10 ** 6 // 4), b"\xff" * 10 ** 6, b"\x1b[" + b"1" * 10 ** 6):
        ed.feed(chunk)
        ed.take_echo()
        assert ed.buffered_bytes <= 200 * 4
    ed.reset()
    ed.feed(SMILE * (10 ** 6 // 4))
    assert ed.buffered_bytes == 200 * 4
    assert len(ed.take_echo()) == 200 * 4     # only what was kept is echoed
    assert [e.kind for e in ed.feed(b"\r")] == [KEY, ERROR]


def test_a_million_random_bytes_finish_with_only_valid_events():
    rng = random.Random(20240501)
    data = rng.randbytes(10 ** 6)
    ed = LineEditor()
    kinds = set()
    position = 0
    while position < len(data):
        size = rng.randint(1, 4096)
        events = ed.feed(data[position:position + size])
        position += size
        assert events[0] == Event(KEY)
        for event in events:
            assert event.kind in KINDS
            kinds.add(event.kind)
            if event.kind == LINE:
                assert len(event.text) <= 200 and (event.text == "" or event.text.isprintable())
        assert ed.buffered_bytes <= 200 * 4 + 3
        check_echo(ed.take_echo())
    # random bytes hold CR, LF and Ctrl-C often enough to see every kind
    assert kinds == set(KINDS)


# --- properties ----------------------------------------------------------------------------------

# Bytes with structure: the keys and sequences terminals really send, mixed with raw bytes.
TOKENS = [b"\r", b"\n", b"\r\n", b"\x08", b"\x7f", b"\x15", b"\x03", b"\t", b"\x1b", b"\x1b[", b"\x1b[A",
          b"\x1b[1;5C", b"\x1b[3~", b"\x1bO", b"\x1bOP", b"\x00", b"\xff", b"\xe9", b"\xc3", b"\xa9", b"\xed",
          E_ACUTE, HAN, SMILE, "\u2028".encode(), b"\xc2\x85", b"set pushoff.torque_Nm_kg 1.1", b"a", b" "]
streams = st.lists(st.one_of(st.sampled_from(TOKENS), st.binary(max_size=12)), max_size=60).map(b"".join)


def check_echo(echo):
    """Only text, backspace, CR LF and "^C" ever go back: never an escape sequence or a control."""
    text = echo.decode("utf-8")      # raises if the echo is not UTF-8
    for ch in text:
        assert ch.isprintable() or ch in "\b\r\n", repr(ch)


def valid_error(text, max_chars):
    if text == f"line too long: at most {max_chars} characters; the line was ignored":
        return True
    prefix, suffix = "not text: byte 0x", " in the line is not UTF-8; the line was ignored"
    return text.startswith(prefix) and text.endswith(suffix) and len(text) == len(prefix) + 2 + len(suffix)


def line_ends(stream):
    """How many line ends a stream holds: every CR, and every LF not right after a CR."""
    return sum(1 for i, b in enumerate(stream)
               if b == 0x0D or (b == 0x0A and not (i > 0 and stream[i - 1] == 0x0D)))


@settings(max_examples=400, deadline=None)
@given(chunks=st.lists(st.one_of(streams, st.binary(max_size=64)), max_size=8),
       max_chars=st.integers(min_value=1, max_value=40))
def test_any_bytes_give_only_valid_events_and_never_raise(chunks, max_chars):
    ed = LineEditor(max_chars)
    ends = 0
    for chunk in chunks:
        events = ed.feed(chunk)
        if chunk:
            assert events[0] == Event(KEY) and sum(e.kind == KEY for e in events) == 1
        else:
            assert events == []
        for e in events:
            assert e.kind in KINDS and isinstance(e.text, str)
            if e.kind == LINE:
                assert len(e.text) <= max_chars
                assert all(ch.isprintable() for ch in e.text)
                ends += 1
            elif e.kind == ERROR:
                assert valid_error(e.text, max_chars), e.text
                ends += 1
            else:
                assert e.text == ""
        check_echo(ed.take_echo())
        assert ed.buffered_bytes <= max_chars * 4 + 3
    # every line end gives exactly one line or error, whatever surrounds it
    assert ends == line_ends(b"".join(chunks))


@settings(max_examples=400, deadline=None)
@given(stream=streams, cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=10),
       max_chars=st.integers(min_value=1, max_value=40))
def test_chunking_does_not_change_events_or_echo(stream, cuts, max_chars):
    whole = run([stream], max_chars)
    points = sorted({c % (len(stream) + 1) for c in cuts})
    bounds = [0] + points + [len(stream)]
    pieces = [stream[a:b] for a, b in zip(bounds, bounds[1:])]
    assert run(pieces, max_chars) == whole
    assert run([bytes([b]) for b in stream], max_chars) == whole


def model(stream, max_chars):
    """The rules for plain ASCII, written as simply as possible: the oracle for the editor."""
    events, chars, too_long_, prev_cr = [], [], False, False
    for c in stream.decode("ascii"):
        if prev_cr and c == "\n":
            prev_cr = False
            continue
        prev_cr = c == "\r"
        if c in "\r\n":
            events.append(too_long(max_chars) if too_long_ else line("".join(chars)))
            chars, too_long_ = [], False
        elif c in "\b\x7f":
            if chars:
                chars.pop()
        elif c == "\x15":
            chars, too_long_ = [], False
        elif c == "\x03":
            events.append(Event(CANCEL))
            chars, too_long_ = [], False
        elif len(chars) < max_chars:
            chars.append(" " if c == "\t" else c)
        else:
            too_long_ = True
    return events


@settings(max_examples=400, deadline=None)
@given(stream=st.lists(st.sampled_from([b"a", b"b", b" ", b"\t", b"\r", b"\n", b"\x08", b"\x7f", b"\x15",
                                         b"\x03"]), max_size=80).map(b"".join),
       max_chars=st.integers(min_value=1, max_value=6))
def test_ascii_editing_matches_the_simple_model(stream, max_chars):
    assert run([stream], max_chars)[0] == model(stream, max_chars)


@settings(max_examples=200, deadline=None)
@given(text=st.text(st.characters(blacklist_categories=("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp", "Zs")),
                    max_size=30))
def test_printable_unicode_round_trips(text):
    events, echo = run([text.encode("utf-8") + b"\r\n"], max_chars=30)
    assert events == [line(text)]
    assert echo == text.encode("utf-8") + b"\r\n"


# --- history (Up / Down) and the masked PIN ------------------------------------------------------

UP, DOWN, UP3, DOWN3 = b"\x1b[A", b"\x1b[B", b"\x1bOA", b"\x1bOB"


def recall(ed, keys):
    """Feed ``keys`` (no line end): the line the editor now holds and the echo they gave."""
    ed.take_echo()
    ed.feed(keys)
    return ed.partial, ed.take_echo()


@pytest.mark.parametrize("up, down", [(UP, DOWN), (UP3, DOWN3)], ids=["CSI", "SS3"])
def test_up_and_down_recall_earlier_lines_and_redraw_them(up, down):
    ed = LineEditor()
    ed.feed(b"status\rget x\r")
    assert ed.history == ("status", "get x")
    assert recall(ed, up) == ("get x", b"get x")
    assert recall(ed, up) == ("status", ERASE * 5 + b"status")
    assert recall(ed, up) == ("status", b"")               # the oldest: nothing further
    assert recall(ed, down) == ("get x", ERASE * 6 + b"get x")
    assert recall(ed, down) == ("", ERASE * 5)             # back to the (empty) line being typed
    assert recall(ed, down) == ("", b"")
    ed.take_echo()
    assert [e for e in ed.feed(up + b"\r") if e.kind != KEY] == [line("get x")]


def test_the_line_being_typed_comes_back_after_browsing():
    ed = LineEditor()
    ed.feed(b"status\r")
    ed.feed(b"pa")
    assert recall(ed, UP) == ("status", ERASE * 2 + b"status")
    assert recall(ed, DOWN) == ("pa", ERASE * 6 + b"pa")


def test_a_recalled_line_can_be_edited_and_the_history_keeps_the_original():
    ed = LineEditor()
    ed.feed(b"get swing.target_rad\r")
    ed.feed(UP + b"\x7f\x7f\x7fdeg\r")
    assert ed.history == ("get swing.target_rad", "get swing.target_deg")


def test_history_skips_empty_and_repeated_lines_and_is_bounded():
    ed = LineEditor(history_size=3)
    ed.feed(b"a\r\r  \ra\rb\rc\rd\r")
    assert ed.history == ("b", "c", "d")
    ed = LineEditor()
    for i in range(200):
        ed.feed(b"x%d\r" % i)
    assert len(ed.history) == 50 and ed.history[-1] == "x199"


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, None])
def test_history_size_must_be_a_positive_whole_number(bad):
    with pytest.raises(ValueError, match="history_size"):
        LineEditor(history_size=bad)


def test_arrows_with_parameters_and_other_keys_stay_swallowed():
    ed = LineEditor()
    ed.feed(b"status\r")
    assert recall(ed, b"\x1b[1;5A\x1b[C\x1b[D\x1bOP") == ("", b"")


def test_spoiled_and_cancelled_lines_are_not_recalled():
    ed = LineEditor(max_chars=3)
    ed.feed(b"ok\r\xff\rabcd\rxy\x03")
    assert ed.history == ("ok",)


@pytest.mark.parametrize("typed", [b"login 2468", b"LOGIN 2468", b"  Login 2468", b"login  2468", b"login\t2468",
                                   b'"login" 2468'])
def test_the_pin_is_echoed_as_stars_and_the_line_keeps_the_real_text(typed):
    ed = LineEditor()
    events = [e for e in ed.feed(typed + b"\r") if e.kind != KEY]
    assert events == [line(typed.decode().replace("\t", " "))]
    echo = ed.take_echo()
    assert b"2468" not in echo and echo.endswith(b"****\r\n"), echo


def test_backspace_erases_one_star_and_the_shown_line_is_masked():
    ed = LineEditor()
    ed.feed(b"login 24")
    assert ed.take_echo() == b"login **"
    assert ed.shown == "login **" and ed.partial == "login 24" and ed.shown_cells == 8
    ed.feed(b"\x7f")
    assert ed.take_echo() == ERASE
    ed.feed(b"\x7f\x7f\x7fx")                # back into the word: no longer a login line
    assert ed.partial == "logix" and ed.take_echo() == ERASE * 3 + b"x"


def test_only_a_line_that_starts_with_login_is_masked():
    for text in (b"loginx 12", b"get login 12", b"help login"):
        ed = LineEditor()
        ed.feed(text)
        assert ed.take_echo() == text


def test_a_login_line_is_never_recalled_with_its_pin():
    ed = LineEditor()
    ed.feed(b"status\rlogin 2468\rLOGIN 1357\r'login' 9999\r")
    assert all(not any(d in h for d in ("2468", "1357", "9999")) for h in ed.history), ed.history
    partial, echo = recall(ed, UP)
    assert partial.strip().lower().strip("'\"") == "login" and b"9999" not in echo


def test_the_pin_never_reaches_the_echo_whatever_keys_are_pressed():
    ed = LineEditor()
    echo = b""
    for keys in (b"login 97531\r", UP, UP, DOWN, b"\x7f" * 3, UP3, b" 97531", DOWN3, b"\x15", UP, b" 97531\r",
                 UP, b"\r", UP, UP, UP):
        ed.feed(keys)
        echo += ed.take_echo()
    assert b"97531" not in echo and b"9" not in echo, echo


PIN_TOKENS = [UP, DOWN, UP3, DOWN3, b"login ", b"LOGIN 13579", b"13579", b"\x1b[1;5A"]


@settings(max_examples=400, deadline=None)
@given(stream=st.lists(st.one_of(st.sampled_from(TOKENS + PIN_TOKENS), st.binary(max_size=12)),
                       max_size=60).map(b"".join),
       cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=10),
       max_chars=st.integers(min_value=1, max_value=40))
def test_chunking_does_not_change_history_or_masking(stream, cuts, max_chars):
    whole = run([stream], max_chars)
    points = sorted({c % (len(stream) + 1) for c in cuts})
    bounds = [0] + points + [len(stream)]
    assert run([stream[a:b] for a, b in zip(bounds, bounds[1:])], max_chars) == whole
    assert run([bytes([b]) for b in stream], max_chars) == whole
    check_echo(whole[1])


@settings(max_examples=300, deadline=None)
@given(stream=st.lists(st.sampled_from([UP, DOWN, UP3, DOWN3, b"\r", b"\x7f", b"\x15", b"\x03",
                                         b"\x15login 13579", b"\x15LOGIN 13579", b"a", b" "]),
                       max_size=60).map(b"".join))
def test_no_pin_digit_is_ever_echoed_after_login(stream):
    """Only the PIN has digits here, always typed on a fresh line after "login ": no digit is ever
    echoed, whatever editing and browsing comes between, and none is kept in the history."""
    ed = LineEditor()
    ed.feed(stream)
    echo = ed.take_echo()
    assert not any(d in echo for d in b"13579"), echo
    assert all("1" not in h for h in ed.history)
