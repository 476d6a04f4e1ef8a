"""The prosthetists' console: one command line in, one reply out, over any serial terminal.

:class:`Console` interprets a line and answers in plain words with units; it
never raises on input and changes nothing unless the whole command is valid.
Everything about parameters comes from the registry (:mod:`controller.params.registry`):
names, labels, units, ranges, steps, groups, which may change while walking.  Values are shown
and typed in clinical units (degrees, ms, %: :mod:`controller.console.units`) and kept in SI;
names are case-insensitive, and an unknown word gets its nearest command, parameter or group.  Edits
need the prosthetist's PIN (:mod:`controller.console.access`), go to the running
controller through its :class:`Backend` (they take effect at the next stride
boundary and ramp in over 3 strides, see :mod:`controller.runtime.process`), and are
recorded in the append-only audit log (:mod:`controller.console.audit`).  ``save``
writes the checksummed two-copy parameter file (:mod:`controller.params.store`).
"""
from __future__ import annotations

import contextlib
import math
import re
import shlex
import textwrap
import threading
from pathlib import Path
from typing import Callable, Dict, List, Optional, Protocol, Tuple

import numpy as np

from controller.console import calibration, units
from controller.params import store as paramstore
from controller.kernels._tick import STILL_S
from controller.console.access import PROSTHETIST
from controller.console.audit import AuditError
from controller.console.fitting import WORDS, Fitting
from controller.symmetry.strides import StrideSymmetry, trend
from controller.kernels.faults import FAULTS, GAIT_SOURCES, MODES, WARNINGS, advice, fault_names, warning_names
from controller.symmetry.adaptation import switch_on_refusal
from controller.params.registry import REGISTRY, Param, ParamError, ParamSet, groups, lookup, nearest

__all__ = ["Backend", "Console", "PROFILE_NAME"]

#: Profile names: what a prosthetist would type (level-walking, slow_1), nothing a path could hide in.
PROFILE_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
_EOL = "\r\n"
#: The terminal's width: every line of `help` fits it.
WIDTH = 80
SYMMETRY_MEAN_STRIDES = 10       # `status`: the stance-time SI averaged over this many strides
TREND_STRIDES = 60               # `symmetry`: the trend over about the last minute of walking
TREND_MIN_S = 30.0               # ... once there is at least this much of it
#: `symmetry`'s table header: two lines of column names, one of units; a row is at most 80
#: columns wide (the widths: time 7, stride 6, prosthetic stance 10, sound stance 6, the two
#: indices 6, work 6, peak power 5, then the sound side's source, "load profile (0.97)" at most).
SYMMETRY_HEADER = (
    f"{'':>7} {'':>6} {'prosthetic':>10} {'sound':>6} {'SI':>6} {'SI':>6} {'work':>6} {'peak':>5}  sound side",
    f"{'time':>7} {'stride':>6} {'stance':>10} {'stance':>6} {'stance':>6} {'step':>6} {'':>6} {'power':>5}",
    f"{'s':>7} {'s':>6} {'s':>10} {'s':>6} {'%':>6} {'%':>6} {'J/kg':>6} {'W/kg':>5}",
)
#: The modes a prosthetist may choose (name -> mode number); "safe" is the controller's alone.
_CHOSEN_MODES = {name: next(n for n, known in MODES.items() if known == name)
                 for name in ("walk", "passive", "standby")}


class Backend(Protocol):
    """What the console needs from the running controller.

    ``running`` is False for :class:`controller.console.session.OfflineBackend` (no controller:
    edits only change what ``save`` writes)."""

    running: bool

    def params(self) -> ParamSet:
        """The set the controller holds (in force, or ramping in): what it accepted, never a
        set it refused or has not taken yet."""

    def check(self, params: ParamSet) -> None:
        """Raise ParamError if ``params`` does not suit the hardware behind this console (the
        driver's torque range); the registry's own rules are checked already."""

    def send(self, params: ParamSet) -> Tuple[str, str]:
        """Hand ``params`` to the controller and wait (bounded) until it took it at a stride
        boundary; returns ("accepted", "") (in force, or ramping in), ("refused", why: nothing
        changed) or ("pending", why: not taken yet, it may still be)."""

    def moving(self) -> bool:
        """Whether the wearer walks, or moved within ``controller.kernels._tick.STILL_S``: parameters that
        are not live, calibration and standby wait for standing still."""

    def latest(self) -> Optional[Dict[str, float]]:
        """The newest telemetry row, by column name; None before the first tick."""

    def stats(self) -> Dict[str, object]:
        """The loop's counters (ticks, missed, params_applied, ...)."""

    def strides(self) -> List["StrideSymmetry"]:
        """The gait-symmetry records of the last strides, oldest first (controller.symmetry.strides)."""

    def request(self, name: str, arg: int = 0) -> str:
        """Ask the controller to ``clear_faults`` or ``select_mode`` (arg: the mode's number in
        ``controller.kernels.faults.MODES``); "" when done, else why not."""

    def record(self, seconds: float) -> "np.ndarray":
        """The telemetry rows of the next ``seconds`` (waits for them)."""


def _num(value: float, spec: str) -> str:
    """``value`` formatted, or ``--`` when there is none yet (NaN)."""
    return format(value, spec) if math.isfinite(value) else "--"


def _when_words(p: Param, before: str = "", after: str = "") -> str:
    """When ``p`` may change, for the listings ("" for a live parameter)."""
    if p.live:
        return ""
    return before + ("only when the controller starts" if p.startup else "only while standing") + after


def _fmt(p: Param, value: float) -> str:
    """``value`` (SI) as the console shows it: in ``p``'s clinical unit, with the unit."""
    return units.format_with_unit(p, value)


def _wrap(text: str, first: str = "", indent: int = 2) -> List[str]:
    """``first`` + ``text`` wrapped to :data:`WIDTH` columns, later lines indented by ``indent``."""
    return textwrap.wrap(first + text, WIDTH, subsequent_indent=" " * indent, break_on_hyphens=False,
                         break_long_words=True)


def _quoted(word: str, most: int = 20) -> str:
    """``word`` quoted as typed, clipped to ``most`` characters (a reply stays one row)."""
    text = repr(word)
    return text if len(text) <= most else text[:most - 4] + "...'"


def _fit_lines(text: str) -> str:
    """``text`` with each line longer than :data:`WIDTH` wrapped at words (later rows indented)."""
    return "\n".join(row for line in text.split("\n")
                     for row in ([line] if len(line) <= WIDTH else _wrap(line, "", 2)))


def _profile_problem(path: Path):
    """(paramstore.load's result or None, why the profile at ``path`` is damaged or None): damaged
    when it exists but neither copy can be used (a directory in its place included)."""
    try:
        loaded = paramstore.load(path)
    except IsADirectoryError:
        return None, f"{path.name} is a directory"
    if loaded.source == "defaults" and loaded.invalid_copies:
        return loaded, "; ".join(p for p in loaded.problems if not p.endswith(": no such file"))
    return loaded, None


class Console:
    """Interprets console lines for one session (one serial port, one person at a time)."""

    def __init__(self, backend: Backend, access, audit, store: Path, profiles_dir: Path, logs=None,
                 adaptation=None, extra: Optional[Dict[str, Tuple[Callable[[List[str]], str], str, str]]] = None):
        """``extra``: commands of the caller's own, name -> (handler(words) -> reply, usage, what it
        does), listed by `help` after the console's (the simulator's ``wearer``); a name the console
        has already is a programming error."""
        self.backend = backend
        self.logs = logs                  # a controller.records.logger.LogSwitch, or None: no `log start`
        # the symmetry adaptation running beside the console (controller.symmetry.adaptation), or
        # None: the console shows its note and switches it with `set symmetry.adapt`, nothing more
        self.adaptation = adaptation
        self.access = access
        self.audit = audit
        self.store = Path(store)
        self.profiles_dir = Path(profiles_dir)
        self._undo: List[Tuple[str, ParamSet]] = []
        self._chosen = "walk"             # the mode last chosen here and taken by the controller
        self._lock = threading.RLock()
        self.fitting: Optional[Fitting] = None      # the guided fitting (`fit`), while it runs
        self._commands: Dict[str, Tuple[Callable[[List[str]], str], str, str]] = {
            "help": (self._help, "help [COMMAND]", "list the commands, or explain one"),
            "params": (self._params, "params [GROUP]", "every parameter (of one group) with unit and range; "
                       f"groups: {', '.join(groups())}"),
            "get": (self._get, "get NAME", "one parameter: value, unit, default, saved value, range, meaning"),
            "set": (self._set, "set NAME VALUE [UNIT]", "change a parameter (PIN needed); VALUE in the unit "
                    "`get` shows (deg, ms, %, N·m, kg), or with a unit: 3 deg, 150ms, 0.05 rad; it takes "
                    "effect at the next heel strike and ramps in over 3 strides"),
            "default": (self._default, "default NAME|all", "back to the factory value (PIN needed)"),
            "diff": (self._diff, "diff", "what differs from the saved file and from the factory values"),
            "undo": (self._undo_cmd, "undo", "take back the last change (PIN needed)"),
            "save": (self._save, "save", "save the running values to the parameter file (PIN needed)"),
            "load": (self._load, "load", "go back to the values in the parameter file (PIN needed)"),
            "profile": (self._profile, "profile save|load|list [NAME]",
                        "named sets, e.g. level-walking, slow-walking (save/load need the PIN)"),
            "status": (self._status, "status", "mode, faults, temperatures, battery, cadence, speed, "
                       "stance share, push-off work of the last stride"),
            "watch": (lambda args: self.status_line(), "watch",
                      "one live line (time, mode, phase, torque, load, speed, faults) refreshed 5 times a "
                      "second until any key"),
            "symmetry": (self._symmetry, "symmetry [N]",
                         "the last N strides (default 10): stance and step times of both legs, the "
                         "symmetry indices, push-off work; and the trend of the stance-time index"),
            "faults": (self._faults, "faults", "the faults and warnings now, in words"),
            "clear": (self._clear, "clear", "clear the latched faults (PIN needed); only with the foot off "
                      "the ground and the causes gone: tried for 2 s, i.e. through the next swing"),
            "mode": (self._mode, "mode walk|passive|standby", "walk: powered push-off; passive: the ankle "
                     "behaves like a passive foot; standby: no powered action, the ankle free with the foot "
                     "off the ground and a passive foot under load (only while the wearer stands; to leave "
                     "it, lift the foot); PIN needed"),
            "calibrate": (self._calibrate, "calibrate [angle|imu|load]",
                          f"hold still for {calibration.WINDOW_S:g} s and set a sensor zero: angle (standing, "
                          f"weight on the prosthesis, foot flat, shank upright), imu (the shank still), load "
                          f"(the foot off the ground); only while not walking; alone: the values in force "
                          f"(PIN needed to set)"),
            "log": (self._log, "log [start|stop]", "start or stop a session log (CSV) in the log folder; "
                    "alone: what is being logged (PIN needed to start or stop)"),
            "fit": (self._fit, "fit [stop|summary]",
                    "the guided first fitting, step by step: body mass, sensor zeros, a learning walk, "
                    "push-off from gentle to the target, a symmetry check, a profile, a summary; the "
                    "ankle stays passive until push-off's checks pass (PIN needed); alone while "
                    "fitting: the step's instructions again"),
            "login": (self._login, "login PIN", "enter the prosthetist PIN to allow changes"),
            "logout": (self._logout, "logout", "back to read-only"),
        }
        clash = set(extra or ()) & set(self._commands)
        if clash:
            raise ValueError(f"extra console commands clash with the console's own: {sorted(clash)}")
        self._commands.update(extra or {})
        self._extra = frozenset(extra or ())

    # ------------------------------------------------------------------ entry point
    def handle(self, line: str) -> str:
        """The reply to one line (ends with a line break; empty for an empty line, except during
        the guided fitting, where an empty line is Enter: the step's ``next``)."""
        try:
            words = shlex.split(line)
        except ValueError:
            words = line.split()
        fitting = self.fitting is not None and self.fitting.active
        if not words and not fitting:
            return ""
        name, args = (words[0].lower(), words[1:]) if words else ("", [])
        entry = self._commands.get(name)
        if entry is None and not fitting:       # while fitting, other words answer its step
            return (f"unknown command {_quoted(words[0])}; did you mean {nearest(name, self._commands)!r}? "
                    f"'help' lists all{_EOL}")
        note = self.access.touch()     # a prosthetist idle too long is back to read-only
        if note:
            if fitting:
                note += _EOL + self.fitting.end("ended: the PIN's time ran out (`login`, then `fit`)")
            return note + _EOL + "(the command was not run; type it again)" + _EOL
        with self._lock:                 # one command at a time
            try:
                reply = self.fitting.handle(words) if entry is None else entry[0](args)
            except ParamError as e:
                reply = str(e)
            except AuditError as e:      # not recorded, so not made (every handler records first)
                reply = f"refused: the audit log cannot record it ({e}); nothing was changed"
            except OSError as e:         # a full or read-only disk: say so, change nothing else
                reply = f"could not write: {e.strerror or e}"
        if entry is None or name == "fit" or name in self._extra:   # sentences, wrapped to the terminal
            reply = _fit_lines(reply)
        return reply.rstrip("\r\n").replace("\n", _EOL) + _EOL

    def command_names(self) -> List[str]:
        return list(self._commands)

    def usage(self, name: str) -> Tuple[str, str]:
        """(``name``'s usage line, what it does), as ``help`` shows them."""
        return self._commands[name][1], self._commands[name][2]

    def prompt(self) -> str:
        """The prompt: ``ankle`` (or the guided fitting's step), then ``#`` with the PIN's rights,
        ``>`` read-only, and a space."""
        where = self.fitting.prompt() if self.fitting is not None and self.fitting.active else "ankle"
        return where + ("# " if self.access.can_change else "> ")

    # ------------------------------------------------------------------ helpers
    def _mode_words(self, row) -> str:
        """The mode in force, and the one chosen when a fault overrides it."""
        mode = MODES.get(int(row["mode"]), "?")
        return f"mode {mode}" + (f" (chosen: {self._chosen}, once the faults are cleared)"
                                 if mode == "safe" and self._chosen != "walk" else "")

    def _no_telemetry(self) -> str:
        return "the controller has not ticked yet" if self.backend.running else \
            "no controller is running (service console): parameters and profiles only"

    def _need(self, args: List[str], low: int, high: int, usage: str) -> Optional[str]:
        if not low <= len(args) <= high:
            return f"usage: {usage}"
        return None

    def _may_change(self) -> Optional[str]:
        if not self.access.can_change:
            return "read-only: enter the prosthetist PIN first ('login PIN')"
        return None

    def _outcome(self, action: str, detail: str, **values) -> None:
        """Record what became of a change recorded before it was tried (refused, failed).  Best
        effort: nothing was changed, so a record that fails here hides nothing."""
        with contextlib.suppress(OSError):
            self.audit.record(self.access.role, action, detail=detail, **values)

    def _saved(self) -> Optional[ParamSet]:
        loaded = paramstore.load(self.store)
        return None if loaded.source == "defaults" else loaded.params

    def _apply(self, new: ParamSet, action: str, what: str) -> str:
        """Send ``new`` (already a valid set) if the wearer's state allows it; record it for undo."""
        sent, reply = self._send_set(new, action)
        if sent is not None:
            self._undo.append((what, sent))
        return reply

    def _send_set(self, new: ParamSet, action: str, role: Optional[str] = None,
                  detail: str = "") -> Tuple[Optional[ParamSet], str]:
        """(the set replaced, or None if nothing was changed; the reply).  ``role`` defaults to the
        session's.

        Every change is recorded before it is sent (a change that cannot be recorded is not made);
        the controller then says whether it took the set, and a refusal (or a change it has not
        taken yet) is recorded too, as ``<action> refused`` (``<action> pending``) per parameter.
        """
        running = self.backend.params()
        changed = [p for p in REGISTRY if new[p.name] != running[p.name]]
        if not changed:
            return None, "nothing changes"
        notes = []
        startup = [p for p in changed if p.startup]
        if startup and self.backend.running:
            why = (f"{', '.join(p.name for p in startup)} is set when the controller starts (the loop's "
                   f"period is fixed then), not while it runs; change it in the run configuration or with "
                   f"the service console ('ankle console'), and restart")
            changed = [p for p in changed if not p.startup]
            if not changed:
                return None, f"refused: {why}; nothing was changed"
            new = new.with_values({p.name: running[p.name] for p in startup})
            notes.append(f"kept {', '.join(f'{p.name} = {_fmt(p, running[p.name])}' for p in startup)}: {why}")
        fixed = [p.name for p in changed if not p.live]
        if fixed and self.backend.moving():
            return None, (f"{', '.join(fixed)} can only change while the wearer stands still; the wearer "
                          f"is walking or moved within the last {STILL_S:g} s, nothing was changed")
        self.backend.check(new)
        role = role or self.access.role
        for p in changed:              # recorded first: a change that cannot be recorded is not made
            self.audit.record(role, action, p.name, repr(running[p.name]), repr(new[p.name]), detail=detail)
        outcome, why = self.backend.send(new)
        if outcome != "accepted":
            try:
                for p in changed:
                    self.audit.record(role, f"{action} {outcome}", p.name, repr(running[p.name]),
                                      repr(new[p.name]), detail=why)
            except OSError as e:
                why += f" (and this could not be recorded: {e.strerror or e})"
            if outcome == "refused":
                now = self.backend.params()
                kept = ", ".join(f"{p.name} = {_fmt(p, now[p.name])}" for p in changed[:8])
                return None, f"refused by the controller: {why}; nothing was changed ({kept})"
            return running, (f"pending: {why}; 'get {changed[0].name}' shows the value in force"
                             + "".join(f"\nnote: {n}" for n in notes))
        if not self.backend.running:
            when = "when the controller next starts from the saved file ('save' to keep it)"
        elif self.backend.moving():
            when = "from this heel strike, ramped over 3 strides"
        else:
            when = "now (the wearer is not walking)"
        lines = [f"{p.name} = {_fmt(p, new[p.name])} (was {_fmt(p, running[p.name])})" for p in changed[:8]]
        if len(changed) > 8:
            lines.append(f"... and {len(changed) - 8} more")
        return running, "\n".join(lines + [f"takes effect {when}"] + [f"note: {n}" for n in notes])

    @staticmethod
    def _value(p: Param, args: List[str]) -> float:
        """The SI value of ``set``'s words after the name (a number, then an optional unit:
        clinical or SI), or ParamError in one line (controller.console.units.parse)."""
        return units.parse(p, args)

    def _group(self, word: str) -> Tuple[Optional[str], str]:
        """(the group ``word`` names, case ignored, or None; why not)."""
        if word.lower() in groups():
            return word.lower(), ""
        return None, f"no group {word!r}; did you mean {nearest(word, groups())!r}? groups: {', '.join(groups())}"

    # ------------------------------------------------------------------ commands
    def _help(self, args: List[str]) -> str:
        if args:
            entry = self._commands.get(args[0].lower())
            if entry is None:
                return (f"no command {args[0]!r}; did you mean {nearest(args[0], self._commands)!r}? "
                        f"'help' lists the commands")
            lines = _wrap(entry[2], f"{entry[1]}: ")
            if args[0].lower() == "faults":     # the glossary: every word `faults` can show
                for b in (*FAULTS, *WARNINGS):
                    lines += _wrap(b.advice, f"{b.name}{' (warning)' if b in WARNINGS else ''}: ")
            return "\n".join(lines)
        width = max(len(e[1]) for e in self._commands.values())
        lines = []
        for usage, text in (e[1:] for e in self._commands.values()):
            body = textwrap.wrap(text, WIDTH - width - 2, break_on_hyphens=False)
            lines += [f"{usage:<{width}}  {body[0]}"] + [" " * (width + 2) + rest for rest in body[1:]]
        return "\n".join(lines)

    def _params(self, args: List[str]) -> str:
        bad = self._need(args, 0, 1, "params [GROUP]")
        if bad:
            return bad
        group = None
        if args:
            group, why = self._group(args[0])
            if group is None:
                return why
        running = self.backend.params()
        rows = [p for p in REGISTRY if group is None or p.group == group]
        width = max(len(p.name) for p in rows)
        label = max(len(p.label) for p in rows)
        value = max(len(_fmt(p, running[p.name])) for p in rows)
        return "\n".join(f"{p.name:<{width}}  {p.label:<{label}}  = {_fmt(p, running[p.name]):<{value}}  "
                         f"{units.format_range(p, ' .. ')}{_when_words(p, '  (', ')')}" for p in rows)

    def _get(self, args: List[str]) -> str:
        bad = self._need(args, 1, 1, "get NAME")
        if bad:
            return bad
        p = lookup(args[0])
        saved = self._saved()
        step = units.format_step(p)
        return (f"{p.name} ({p.label}) = {_fmt(p, self.backend.params()[p.name])} (factory "
                f"{_fmt(p, p.default)}, saved {'-' if saved is None else _fmt(p, saved[p.name])}); range "
                f"{units.format_range(p, ' .. ')}, step {step}; "
                f"{_when_words(p) or 'may change while walking'}"
                f"\n{p.description}")

    def _set(self, args: List[str]) -> str:
        bad = self._need(args, 2, 5, "set NAME VALUE [UNIT]") or self._may_change()
        if bad:
            return bad
        p = lookup(args[0])
        value = self._value(p, args[1:])
        held = self.backend.params()
        new = held.with_values({p.name: value})   # cross-parameter rules checked here
        row = self.backend.latest() if self.backend.running else None
        if p.name == "symmetry.adapt" and value and not held[p.name] and row is not None:
            why = switch_on_refusal(int(row["faults"]))
            if why:
                return f"refused: {why}; nothing was changed"
        sent, reply = self._send_set(new, "set")
        if sent is None:
            return reply
        self._undo.append((f"set {p.name}", sent))
        if p.name == "pushoff.work_J_kg" and held["symmetry.adapt"]:
            reply += ("\nnote: the symmetry adaptation is on and moves this target itself, from this value "
                      "on ('set symmetry.adapt 0' to hold it)")
        return reply

    def _default(self, args: List[str]) -> str:
        bad = self._need(args, 1, 1, "default NAME|all") or self._may_change()
        if bad:
            return bad
        if args[0].lower() == "all":
            return self._apply(ParamSet({"wearer.mass_kg": self.backend.params()["wearer.mass_kg"]}),
                               "default", "default all (body mass kept)")
        p = lookup(args[0])
        return self._apply(self.backend.params().with_values({p.name: p.default}), "default",
                           f"default {p.name}")

    def _diff(self, args: List[str]) -> str:
        bad = self._need(args, 0, 0, "diff")
        if bad:
            return bad
        running, saved = self.backend.params(), self._saved()
        rows = [p for p in REGISTRY if running[p.name] != p.default
                or (saved is not None and running[p.name] != saved[p.name])]
        if not rows:
            return "no differences: running = saved = factory" if saved is not None else \
                "no differences from the factory values; nothing saved yet"
        width = max(len(p.name) for p in rows)
        out = [f"{'parameter':<{width}}  {'now':>16} {'saved':>16} {'factory':>16}"]
        for p in rows:
            out.append(f"{p.name:<{width}}  {_fmt(p, running[p.name]):>16} "
                       f"{('-' if saved is None else _fmt(p, saved[p.name])):>16} {_fmt(p, p.default):>16}")
        return "\n".join(out)

    def _undo_cmd(self, args: List[str]) -> str:
        bad = self._need(args, 0, 0, "undo") or self._may_change()
        if bad:
            return bad
        if not self._undo:
            return "nothing to undo"
        what, before = self._undo[-1]
        sent, reply = self._send_set(before, "undo")
        if sent is None:
            return reply
        self._undo.pop()
        return f"undone: {what}\n{reply}"

    def _save(self, args: List[str]) -> str:
        bad = self._need(args, 0, 0, "save") or self._may_change()
        if bad:
            return bad
        params = self.backend.params()
        # recorded (and fsynced) before the file is touched: a saved file always has its record
        self.audit.record(self.access.role, "save", detail=str(self.store))
        try:
            paramstore.save(params, self.store)
        except OSError as e:
            self._outcome("save failed", f"{self.store}: {e.strerror or e}")
            raise
        return f"saved to {self.store} (and its backup copy)"

    def _load(self, args: List[str]) -> str:
        bad = self._need(args, 0, 0, "load") or self._may_change()
        if bad:
            return bad
        loaded = paramstore.load(self.store)
        if loaded.source == "defaults":
            return f"nothing to load: {'; '.join(loaded.problems) or 'no saved file'}"
        note = "" if not loaded.corrupt else f"\nnote: {'; '.join(loaded.problems)}"
        return self._apply(loaded.params, "load", f"load ({loaded.source} copy)") + note

    def _profile(self, args: List[str]) -> str:
        usage = "profile save NAME | profile load NAME | profile list"
        args = [args[0].lower()] + args[1:] if args else args     # the action, case ignored
        if not args or args[0] not in ("save", "load", "list"):
            return f"usage: {usage}"
        if args[0] == "list":
            names = sorted(f.name[:-len(".params")] for f in self.profiles_dir.glob("*.params")) \
                if self.profiles_dir.is_dir() else []
            # a profile neither of whose copies can be used is listed, and said to be damaged
            names = [n if _profile_problem(self.profiles_dir / f"{n}.params")[1] is None
                     else f"{n} (damaged)" for n in names]
            return "profiles: " + (", ".join(names) if names else "none saved yet")
        if len(args) != 2 or not PROFILE_NAME.fullmatch(args[1]):
            return (f"usage: {usage}; NAME is 1-32 of a-z, 0-9, '-' and '_', starting with a letter or "
                    f"digit")
        bad = self._may_change()
        if bad:
            return bad
        path = self.profiles_dir / f"{args[1]}.params"
        if args[0] == "save":
            self.audit.record(self.access.role, "profile save", detail=args[1])   # before the file
            try:
                self.profiles_dir.mkdir(parents=True, exist_ok=True)
                paramstore.save(self.backend.params(), path)
            except OSError as e:
                self._outcome("profile save failed", f"{args[1]}: {e.strerror or e}")
                raise
            return f"profile {args[1]} saved"
        loaded, damage = _profile_problem(path)
        if damage is not None:
            # there, but neither copy usable: not "no profile", which would hide the damage
            return f"profile {args[1]} is damaged: {damage}; nothing loaded"
        if loaded.source == "defaults":
            return f"no profile {args[1]!r}; 'profile list' shows them"
        return self._apply(loaded.params, "profile load", f"profile load {args[1]}")

    def _status(self, args: List[str]) -> str:
        row = self.backend.latest()
        audit = [f"read-only: {self.audit.problem}"] if getattr(self.audit, "problem", None) else []
        if row is None:
            return "\n".join([self._no_telemetry()] + audit)
        stats = self.backend.stats()
        stride = row.get("stride_time_s", math.nan)
        stride = stride if stride > 0 else math.nan          # 0 before the first whole stride
        cadence = 120.0 / stride
        gait = ("walking" if row["walking"] == 1 else "standing" if row["standing"] == 1
                else "not walking")
        return _fit_lines("\n".join([
            f"{self._mode_words(row)}; faults: {', '.join(fault_names(int(row['faults']))) or 'none'}"
            f"; warnings: {', '.join(warning_names(int(row['warnings']))) or 'none'}",
            f"motor winding {_num(row['winding_temp_C'], '.1f')} °C (model), case "
            f"{_num(row['motor_temp_C'], '.1f')} °C; battery {_num(row['supply_V'], '.1f')} V; torque limit "
            f"{_num(row['torque_limit_Nm'], '.0f')} N·m",
            f"{gait}; cadence {_num(cadence, '.0f')} steps/min; stride {_num(stride, '.3f')} s; stance "
            f"{_num(row.get('stance_pct', math.nan), '.1f')} % of the last stride; speed "
            f"{_num(row['speed_m_s'], '.2f')} m/s; phase from {GAIT_SOURCES.get(int(row['gait_source']), '?')}",
            f"push-off work of the last stance {_num(row['stance_work_J_kg'], '+.3f')} J/kg; push-off share "
            f"{_num(100 * row['assist'], '.0f')} %",
            self._symmetry_line(),
            f"loop: {stats.get('ticks', 0)} ticks, {stats.get('missed', 0)} missed deadlines"
            + (f"; drive {stats['driver']}" if stats.get("driver") else ""),
        ] + audit))

    def _symmetry_line(self, last: int = SYMMETRY_MEAN_STRIDES) -> str:
        """Stance-time SI over the last strides, and where the sound side's timing came from."""
        recent = [s for s in self.backend.strides()[-last:] if math.isfinite(s.si_stance_pct)]
        if not recent:
            return "symmetry: -- (no whole walking stride yet)"
        si = [s.si_stance_pct for s in recent]
        sources = sorted({s.sound_source for s in recent})
        confidence = min(s.confidence for s in recent)
        return (f"symmetry: stance-time SI {np.mean(si):+.1f} % (mean of the last {len(recent)} strides; "
                f"- = prosthetic stance shorter); sound side from the {' and '.join(sources)}"
                + (f", confidence {confidence:.2f}" if "load profile" in sources else ""))

    def _symmetry(self, args: List[str]) -> str:
        bad = self._need(args, 0, 1, "symmetry [N]")
        if bad:
            return bad
        n = 10
        if args:
            if not args[0].isdigit() or not 1 <= int(args[0]) <= 100:
                return f"usage: symmetry [N], N a whole number of strides 1..100, got {args[0]!r}"
            n = int(args[0])
        strides = self.backend.strides()
        if not strides:
            return self._no_telemetry() if self.backend.latest() is None else \
                "no whole walking stride yet: symmetry needs walking"
        lines = list(SYMMETRY_HEADER)
        for s in strides[-n:]:
            lines.append(f"{s.t_heel_strike_s:7.1f} {s.stride_s:6.3f} {s.stance_s:10.3f} "
                         f"{_num(s.sound_stance_s, '6.3f')} {_num(s.si_stance_pct, '+6.1f')} "
                         f"{_num(s.si_step_pct, '+6.1f')} {_num(s.pushoff_work_J_kg, '+6.3f')} "
                         f"{_num(s.peak_power_W_kg, '5.2f')}  {s.sound_source}"
                         + (f" ({s.confidence:.2f})" if s.sound_source == "load profile" else ""))
        window = strides[-TREND_STRIDES:]
        slope = math.nan
        if window[-1].t_heel_strike_s - window[0].t_heel_strike_s >= TREND_MIN_S:
            slope = trend([s.si_stance_pct for s in window], [s.t_heel_strike_s for s in window])
        si = np.array([s.si_stance_pct for s in window], dtype=float)
        si = si[np.isfinite(si)]
        if len(si):
            lines.append(f"stance-time SI over the last {len(si)} strides: {np.mean(si):+.1f} ± {np.std(si):.1f} %; "
                         f"trend {_num(slope, '+.2f')} % per minute")
        params = self.backend.params()
        lines.append(f"adaptation: {'on' if params['symmetry.adapt'] else 'off'} (target "
                     f"{params['symmetry.target_si_pct']:+.1f} %, push-off work target {params['pushoff.work_J_kg']:.3f} J/kg "
                     f"in [{params['symmetry.work_min_J_kg']:.2f}, {params['symmetry.work_max_J_kg']:.2f}]); "
                     f"{self.adaptation.note if self.adaptation is not None else 'off'}")
        return "\n".join(lines)

    def status_line(self) -> str:
        """One short line for ``watch`` (refreshed in place)."""
        row = self.backend.latest()
        if row is None:
            return "waiting for the first tick" if self.backend.running else "no controller is running"
        phase = row["phase"]
        # within 79 columns (the session clips a longer line): phase, torque, load, speed by their units
        faults = fault_names(int(row["faults"]))
        return (f"t {row['t']:8.1f} s  {MODES.get(int(row['mode']), '?'):<7} "
                f"{('  --' if not phase >= 0 else f'{100 * phase:3.0f} %')}  "
                f"{_num(row['torque_cmd_Nm'], '+6.1f')} N·m  {_num(row['load'], '5.0f')} N  "
                f"{_num(row['speed_m_s'], '4.2f')} m/s  faults {','.join(faults) or 'none'}")

    def _faults(self, args: List[str]) -> str:
        row = self.backend.latest()
        if row is None:
            return self._no_telemetry()
        faults = fault_names(int(row["faults"]))
        warnings = warning_names(int(row["warnings"]))
        lines = [f"faults: {', '.join(faults) or 'none'}"]
        lines += [w for name in faults if not name.startswith("bit") for w in _wrap(advice(name), "  ", 4)]
        lines.append(f"warnings: {', '.join(warnings) or 'none'}")
        lines += [w for name in warnings if not name.startswith("bit") for w in _wrap(advice(name), "  ", 4)]
        return "\n".join(lines + [self._mode_words(row)])

    def _clear(self, args: List[str]) -> str:
        bad = self._need(args, 0, 0, "clear") or self._may_change()
        if bad:
            return bad
        before = self.backend.latest()
        faults = ", ".join(fault_names(int(before["faults"]))) if before else "?"
        self.audit.record(self.access.role, "clear", detail=f"faults: {faults or 'none'}")   # before asking
        reason = self.backend.request("clear_faults")
        if reason:
            self._outcome("clear refused", reason)
        return reason or f"cleared: {faults or 'there were none'}"

    def _mode(self, args: List[str]) -> str:
        args = [a.lower() for a in args]            # the mode's name, case ignored
        if len(args) != 1 or args[0] not in _CHOSEN_MODES:
            return f"usage: mode {'|'.join(_CHOSEN_MODES)}"
        bad = self._may_change()
        if bad:
            return bad
        self.audit.record(self.access.role, "mode", old=self._chosen, new=args[0])   # before asking
        reason = self.backend.request("select_mode", _CHOSEN_MODES[args[0]])
        if reason:
            self._outcome("mode refused", reason, new=args[0])
            return reason
        self._chosen = args[0]
        row = self.backend.latest()
        faults = fault_names(int(row["faults"])) if row else []
        return f"mode {args[0]} selected" + (f"; faults keep the ankle safe until cleared: {', '.join(faults)}"
                                             if faults else "")

    def _calibrate(self, args: List[str]) -> str:
        usage = f"usage: calibrate [{'|'.join(calibration.KINDS)}]"
        if not args:
            params = self.backend.params()       # the zeros in force, in the units the console shows
            return "\n".join([f"{p.name} ({p.label}) = {_fmt(p, params[p.name])}" for p in REGISTRY
                              if p.group == "calibration"] + [usage])
        bad = self._need(args, 1, 1, usage[7:]) or self._may_change()
        if bad:
            return bad
        kind = args[0].lower()
        if kind not in calibration.KINDS:
            return f"no calibration {args[0]!r}; {usage}"
        if self.backend.moving():
            return "refused: calibrate only while the wearer stands still; nothing changed"
        result = calibration.measure(kind, self.backend.record(calibration.WINDOW_S), self.backend.params())
        if result.refused:
            return result.message
        try:
            new = self.backend.params().with_values(result.values)
        except ParamError as e:
            return f"refused: {e}: check the sensor and its mounting; nothing changed"
        return self._apply(new, "calibrate", f"calibrate {kind}") + "\n" + result.message

    def _log(self, args: List[str]) -> str:
        if self.logs is None:
            return "session logs are not available here"
        bad = self._need(args, 0, 1, "log [start|stop]")
        if bad:
            return bad
        if not args:
            log = self.logs.log
            note = f"\nlast log stopped: {self.logs.error}" if self.logs.error else ""
            if log is None:
                return f"not logging; 'log start' writes one in {self.logs.directory}" + note
            return f"logging to {log.path}: {log.rows_written} rows" + note
        args = [args[0].lower()]                    # the action, case ignored
        if args[0] not in ("start", "stop"):
            return "usage: log [start|stop]"
        bad = self._may_change()
        if bad:
            return bad
        if args[0] == "start":
            role = self.access.role
            try:                         # recorded once the name is chosen, before the file is made
                path = self.logs.start(before=lambda chosen: self.audit.record(role, "log start",
                                                                               detail=str(chosen)))
            except FileExistsError as e:
                return str(e)
            return f"logging to {path}"
        running = self.logs.log
        if running is None:
            return "not logging"
        self.audit.record(self.access.role, "log stop", detail=str(running.path))
        log = self.logs.stop()
        if log is None:
            return "not logging"
        return f"log stopped: {log.path}, {log.rows_written} rows"

    def _fit(self, args: List[str]) -> str:
        word = args[0].lower() if args else ""
        fitting = self.fitting
        if fitting is not None and fitting.active:
            if not args:
                return fitting.instructions()
            if len(args) == 1 and word in WORDS:
                return fitting.handle([word])
            if word == "summary":
                return "the fitting runs: its summary comes at its end (`fit stop` ends it now)"
            return f"usage: fit [{'|'.join(WORDS)}] while fitting"
        if word == "summary":
            return fitting.summary if fitting is not None else "no fitting yet in this session: `fit`"
        if args:
            return "usage: fit (starts the guided fitting), or fit summary (the last one's)"
        fitting = Fitting(self)
        reply = fitting.start()
        if fitting.active:
            self.fitting = fitting
        return reply

    def _login(self, args: List[str]) -> str:
        bad = self._need(args, 1, 1, "login PIN")
        if bad:
            return bad
        # a granted login is recorded before the role changes (access.login calls grant first)
        reply = self.access.login(args[0], grant=lambda note: self.audit.record(PROSTHETIST, "login",
                                                                                 detail=note))
        if not self.access.can_change:   # refused: nothing was granted, the attempt is noted
            try:
                self.audit.record(self.access.role, "login", detail=reply)
            except AuditError as e:
                return f"{reply} (the audit log could not record it: {e})"
        return reply

    def detached(self) -> None:
        """The terminal went away: the PIN's rights go with it, so whoever attaches next starts
        read-only (recorded as a logout, as typed)."""
        if self.access.role == PROSTHETIST:
            self._logout([])

    def _logout(self, args: List[str]) -> str:
        ended = ""
        if self.fitting is not None and self.fitting.active:
            ended = "\n" + self.fitting.end("ended: logged out")
        self.access.logout()             # always: giving up the right to change needs no record
        try:
            self.audit.record("viewer", "logout")
        except AuditError as e:
            return f"read-only (the audit log could not record it: {e})" + ended
        return "read-only" + ended
