"""The guided first fitting (``fit``): the console walks the prosthetist through it, step by step.

Seven steps, in the order a first fitting takes them (:data:`STEPS`): the wearer's body mass, the
sensor zeros while standing, a learning walk at a comfortable speed, push-off from gentle to the
target with the wearer's feedback, a symmetry check, a named profile, and a printed summary.  At
every step Enter (or ``next``) does it, ``skip`` passes it, ``again`` starts it over, ``back``
returns to the step before and ``stop`` ends the fitting; every other console command works as
usual meanwhile (``status``, ``symmetry``, ``faults``, ``set`` ...).

Safety.  The fitting changes nothing the console could not: each change goes through the
console's own path (:meth:`controller.console.commands.Console._send_set`): checked against the
registry's bounds, recorded in the audit log before it is sent, taken by the tick at a stride
boundary and ramped in, undoable.  The ankle is *passive* (no powered push-off) from the start
of the fitting until the push-off step's checks pass: no fault latched, a stride learned from
walking, the symmetry adaptation off; push-off then starts at a quarter of the target and goes
one level stronger only after :data:`LEVEL_STRIDES` strides at the level before (strides with no
fault: the ones the wearer felt it on) and a ``more``
from the prosthetist.  Nothing goes above the target the fitting started with.  Faults latched
meanwhile stop any step that would add power, with the reason.

The fitting is the prosthetist's (it needs the PIN, and ends when the PIN's rights do), and is
recorded: ``fit start``, each step done or skipped, ``fit end``, beside the changes it made.
"""
from __future__ import annotations

import contextlib
import math
import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Dict, List, Optional, Tuple

import numpy as np

from controller.console import calibration, units
from controller.kernels.faults import fault_names
from controller.params.registry import ParamError, ParamSet, by_name

if TYPE_CHECKING:
    from controller.console.commands import Console

__all__ = ["STEPS", "WORDS", "LEARN_STRIDES", "LEVEL_STRIDES", "SYMMETRY_STRIDES", "LEVELS", "Fitting"]

#: The steps, in order: (name shown in the prompt, title).
STEPS: Tuple[Tuple[str, str], ...] = (
    ("mass", "body mass"),
    ("calibration", "sensor zeros while standing"),
    ("walk", "learning walk"),
    ("push-off", "push-off strength"),
    ("symmetry", "symmetry check"),
    ("profile", "profile"),
    ("summary", "summary"),
)
#: The words the fitting itself takes at every step (an empty line is ``next``).
WORDS = ("next", "skip", "again", "back", "stop")
LEARN_STRIDES = 10        # strides of the learning walk: about 20 steps, enough for the template
LEARN_CV_MAX = 0.15       # stride-time variation above which the walk was not a steady pace
LEVEL_STRIDES = 3         # strides at a push-off level before it may go stronger (or be judged)
SYMMETRY_STRIDES = 10     # strides of the symmetry check
#: Push-off levels, as shares of the target strength and work (the first is the gentle start).
LEVELS = (0.25, 0.5, 0.75, 1.0)
SYMMETRY_NEAR_PCT = 5.0   # a stance-time SI this close to the target needs no further word
#: The speed a prosthetist may type for the learning walk (m/s): a 10 m walk test's range.
SPEED_RANGE_M_S = (0.2, 2.5)
_SPEED = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*m\s*(?:in\s*)?(\d+(?:\.\d+)?)\s*s\s*$"     # 10 m in 8.5 s
                    r"|^\s*(\d+(?:\.\d+)?)\s*(?:m/s)?\s*$")                            # 1.2 m/s


def _on_grid(name: str, value: float) -> float:
    """``value`` rounded to ``name``'s step (the levels are shares of the target)."""
    step = by_name(name).step
    return round(round(value / step) * step, 10)


def _speed_m_s(text: str) -> float:
    """The walking speed typed (``1.2``, ``1.2 m/s``, ``10 m in 8.5 s``), or ParamError in one line."""
    if "," in text:
        raise ParamError("use a decimal point, e.g. 1.2 m/s")
    m = _SPEED.match(text.lower())
    if m is None:
        raise ParamError(f"the walking speed as `1.2 m/s` or `10 m in 8.5 s`, got {text!r}")
    if m.group(3) is not None:
        speed = float(m.group(3))
    else:
        distance, seconds = float(m.group(1)), float(m.group(2))
        if seconds <= 0.0:
            raise ParamError(f"a walk of {seconds:g} s? the time over the distance, e.g. 10 m in 8.5 s")
        speed = distance / seconds
    lo, hi = SPEED_RANGE_M_S
    if not lo <= speed <= hi:
        raise ParamError(f"{speed:.2f} m/s is outside {lo:g}..{hi:g} m/s: check the distance and the time")
    return speed


@dataclass
class _Step:
    """What became of one step: '' (not yet), 'done' or 'skipped', and its summary line."""

    state: str = ""
    line: str = ""
    since_t: float = math.nan          # telemetry time the step (or its level) began
    figures: Dict[str, float] = field(default_factory=dict)


class Fitting:
    """One guided fitting on one console (see the module).  Made by the console's ``fit``.

    :meth:`handle` takes the words of a line while the fitting runs and returns the reply, or None
    for words that are not the fitting's (a console command): the console runs those itself.
    """

    def __init__(self, console: "Console", clock: Callable[[], float] = time.time):
        self.console = console
        self.backend = console.backend
        self.index = 0
        self.steps = [_Step() for _ in STEPS]
        self.active = False
        self.level = -1                # the push-off level in force (index into LEVELS), -1: none
        self.target: Dict[str, float] = {}
        self.changes = 0
        self.faults_seen = 0
        self.started_wall = clock()
        self._clock = clock
        self.summary = ""

    # ------------------------------------------------------------------ state
    @property
    def name(self) -> str:
        return STEPS[self.index][0]

    def prompt(self) -> str:
        """The console's prompt while fitting: the step's number and name."""
        return f"ankle fit {self.index + 1}/{len(STEPS)} {self.name}"

    def _now_t(self) -> float:
        row = self.backend.latest()
        return float(row["t"]) if row else math.nan

    def _faults(self) -> int:
        row = self.backend.latest()
        word = int(row["faults"]) if row else 0
        self.faults_seen |= word
        return word

    def _strides_since(self, t: float) -> list:
        out = [s for s in self.backend.strides() if s.t_heel_strike_s >= t and math.isfinite(s.stride_s)]
        for s in out:
            self.faults_seen |= int(s.faults)
        return out

    def _record(self, detail: str) -> None:
        """The fitting's own records (start, steps, end): best effort, as the changes it made were
        each recorded before they were sent."""
        with contextlib.suppress(OSError):
            self.console.audit.record(self.console.access.role, "fit", detail=detail)

    def _change(self, values: Dict[str, float], action: str, detail: str) -> Tuple[bool, str]:
        """(taken, the reply) for a change made by the fitting, through the console's own path."""
        con = self.console
        new = self.backend.params().with_values(values)      # ParamError: one line, nothing changed
        sent, reply = con._send_set(new, action, detail=f"fit: {detail}")
        if sent is None:
            return reply == "nothing changes", reply
        if reply.startswith("pending"):
            return False, reply
        con._undo.append((f"fit: {detail}", sent))
        self.changes += 1
        return True, reply

    def _passive(self) -> str:
        """Select the passive mode (no powered push-off): ``""`` or why not."""
        if self.console._chosen == "passive":
            return ""
        reply = self.console._mode(["passive"])
        return "" if reply.startswith("mode passive selected") else reply

    # ------------------------------------------------------------------ entry
    def start(self) -> str:
        """Begin: the checks, the ankle passive, the first step's words."""
        con = self.console
        if not self.backend.running:
            return "fit needs the running controller: not on the service console (`ankle console`)"
        bad = con._may_change()
        if bad:
            return bad
        self._record("fit start")
        passive = self._passive()
        if passive:
            self._record("fit end: the passive mode was refused")
            return f"refused: the fitting starts with the ankle passive, and that was refused ({passive})"
        params = self.backend.params()
        self.target = {"pushoff.torque_Nm_kg": params["pushoff.torque_Nm_kg"],
                       "pushoff.work_J_kg": params["pushoff.work_J_kg"],
                       "wearer.mass_kg": params["wearer.mass_kg"]}
        self.active = True
        faults = fault_names(self._faults())
        lines = [f"guided fitting, {len(STEPS)} steps: "
                 + ", ".join(f"{i + 1} {title}" for i, (_, title) in enumerate(STEPS)) + ".",
                 "At each step: Enter (or `next`) does it, `skip` passes it, `again` starts it over, "
                 "`back` returns to the step before, `stop` ends the fitting (what was done stays). "
                 "Other commands work as usual meanwhile.",
                 "The ankle is passive now (no powered push-off) until step 4's checks pass."]
        if faults:
            lines.append(f"note: faults are latched ({', '.join(faults)}): push-off stays off until they "
                         f"are put right and cleared (`faults`, `clear`)")
        return "\n".join(lines + [self._enter()])

    def handle(self, words: List[str]) -> Optional[str]:
        """The reply to a line's ``words`` while fitting, or None if they are not the fitting's."""
        word = words[0].lower() if words else "next"
        if words and word in self.console.command_names():
            return None
        if not self.console.access.can_change:
            return self.end("the PIN's rights have ended (`login`, then `fit` to start again)")
        if word == "stop":
            return self.end("stopped")
        if word == "skip":
            return self._skip()
        if word == "again":
            self.steps[self.index] = _Step()
            return f"step {self.index + 1} again\n" + self._enter()
        if word == "back":
            if self.index == 0:
                return "this is the first step; `again` starts it over"
            self.index -= 1
            self.steps[self.index] = _Step()
            return self._enter()
        step = getattr(self, "_do_" + self.name.replace("-", "_"))
        return step(words if word != "next" else [])

    # ------------------------------------------------------------------ moving on
    def _skip(self) -> str:
        step = self.steps[self.index]
        step.state = "skipped"
        step.line = step.line or "skipped"
        self._record(f"step {self.name}: skipped")
        return self._advance("skipped")

    def _done(self, line: str, reply: str) -> str:
        step = self.steps[self.index]
        step.state, step.line = "done", line
        self._record(f"step {self.name}: {line}")
        return reply + "\n" + self._advance("done")

    def _advance(self, how: str) -> str:
        self.index += 1
        if STEPS[self.index][0] == "summary":
            return self.end("done")
        return f"step {self.index} {how}.\n" + self._enter()

    def _enter(self) -> str:
        """Arrive at the current step: its clock starts, the walk makes the ankle passive, push-off
        starts from no level; then its instructions."""
        self.steps[self.index].since_t = self._now_t()
        note = ""
        if self.name == "walk":
            passive = self._passive()
            note = f"\nnote: the passive mode was refused ({passive})" if passive else ""
        if self.name == "push-off":
            self.level = -1
        return self.instructions() + note

    def instructions(self) -> str:
        """What the current step asks for."""
        n = f"step {self.index + 1} of {len(STEPS)}, {STEPS[self.index][1]}: "
        params = self.backend.params()
        if self.name == "mass":
            p = by_name("wearer.mass_kg")
            return (n + f"type the wearer's body mass with the prosthesis on, e.g. `72 kg` (now "
                    f"{units.format_with_unit(p, params[p.name])}; `skip` keeps it). The wearer stands still.")
        if self.name == "calibration":
            return (n + "the wearer stands still, weight on the prosthesis, foot flat, shank upright. "
                    f"Enter measures for {calibration.WINDOW_S:g} s and sets the ankle's neutral angle "
                    f"and the shank gyro's zero. (The load cell's tare needs the foot off the ground: "
                    f"`calibrate load`, at any time.)")
        if self.name == "walk":
            return (n + f"ask the wearer to walk at a comfortable speed, about {2 * LEARN_STRIDES} steps, "
                    f"the ankle passive. Then Enter; or, if you timed the walk, type its speed "
                    f"(`1.2 m/s`, `10 m in 8.5 s`) to fit the speed estimate to this wearer.")
        if self.name == "push-off":
            if self.level >= 0:
                return (n + f"push-off is at level {self.level + 1} of {len(LEVELS)}; after {LEVEL_STRIDES} "
                        f"strides ask the wearer: `more`, `less` or `good` (Enter: the strides so far)")
            torque = by_name("pushoff.torque_Nm_kg")
            return (n + f"Enter checks that push-off may be powered (no fault, a stride learned), then "
                    f"switches it on at the gentlest of {len(LEVELS)} levels, a quarter of the target "
                    f"{units.format_with_unit(torque, self.target['pushoff.torque_Nm_kg'])}. The wearer "
                    f"walks; after {LEVEL_STRIDES} strides at a level, ask how it feels and type `more`, "
                    f"`less` or `good`.")
        if self.name == "symmetry":
            return (n + f"the wearer walks on at the comfortable speed, about {SYMMETRY_STRIDES} strides; "
                    f"then Enter shows the stance-time symmetry.")
        if self.name == "profile":
            return (n + "type a name for these settings (e.g. level-walking): saved as that profile, "
                    "and as the parameter file the ankle starts with.")
        return n

    # ------------------------------------------------------------------ the steps
    def _do_mass(self, words: List[str]) -> str:
        p = by_name("wearer.mass_kg")
        if not words:
            return (f"type the body mass, e.g. `72 kg` (now {units.format_with_unit(p, self.backend.params()[p.name])};"
                    f" `skip` keeps it)")
        mass = units.parse(p, words)
        was = self.backend.params()[p.name]
        taken, reply = self._change({p.name: mass}, "set", "body mass")
        if not taken:
            return reply + "\nthe mass is not set: when the wearer stands still, type it again (or `skip`)"
        line = (f"{units.format_with_unit(p, mass)}" +
                (f" (was {units.format_with_unit(p, was)})" if mass != was else " (as it was)"))
        return self._done(line, reply)

    def _do_calibration(self, words: List[str]) -> str:
        if words:
            return "calibration takes no value: Enter measures (or `skip`)"
        if self.backend.moving():
            return "the wearer walks or moved in the last second: stand still, then Enter"
        params = self.backend.params()
        rows = self.backend.record(calibration.WINDOW_S)
        values, messages = {}, []
        for kind in ("angle", "imu"):
            result = calibration.measure(kind, rows, params)
            if result.refused:
                return f"{result.message}\nEnter to measure again when the wearer is still, or `skip`"
            values.update(result.values)
            messages.append(result.message)
        taken, reply = self._change(values, "calibrate", "calibration angle and imu")
        if not taken:
            return reply + "\nnot calibrated: Enter to try again, or `skip`"
        new = self.backend.params()
        shown = ", ".join(f"{by_name(n).label} {units.format_with_unit(by_name(n), new[n])}" for n in
                          ("calibration.ankle_zero_rad", "calibration.gyro_bias_rad_s"))
        return self._done(shown, reply + "\n" + "; ".join(messages))

    def _do_walk(self, words: List[str]) -> str:
        speed = _speed_m_s(" ".join(words)) if words else math.nan
        step = self.steps[self.index]
        strides = self._strides_since(step.since_t)
        if len(strides) < LEARN_STRIDES:
            return (f"{len(strides)} of {LEARN_STRIDES} walking strides so far: the wearer walks on, then "
                    f"Enter{' (and the speed again)' if words else ''}")
        strides = strides[-2 * LEARN_STRIDES:]
        times = np.array([s.stride_s for s in strides])
        cv = float(np.std(times) / np.mean(times))
        if cv > LEARN_CV_MAX:
            return (f"the strides varied by {100 * cv:.0f} % (more than {100 * LEARN_CV_MAX:.0f} %): ask for a steady, "
                    f"comfortable pace, then `again`")
        stride_s = float(np.mean(times))
        params = self.backend.params()
        exponent = params["speed.exponent"]
        reply = ""
        if math.isfinite(speed):          # stride time ~ speed^-exponent: the wearer's own curve
            taken, reply = self._change({"speed.stride_time_at_1_m_s_s":
                                         _on_grid("speed.stride_time_at_1_m_s_s", stride_s * speed ** exponent)},
                                        "set", f"learning walk, {len(strides)} strides at {speed:.2f} m/s")
            if not taken:
                return reply + "\nthe speed estimate is unchanged: Enter (or the speed) to try again"
        else:
            speed = 1.0 * (params["speed.stride_time_at_1_m_s_s"] / stride_s) ** (1.0 / exponent)
        si = [s.si_stance_pct for s in strides if math.isfinite(s.si_stance_pct)]
        work = [s.pushoff_work_J_kg for s in strides if math.isfinite(s.pushoff_work_J_kg)]
        step.figures = {"stride_s": stride_s, "si_pct": float(np.mean(si)) if si else math.nan,
                        "work_J_kg": float(np.mean(work)) if work else math.nan, "speed_m_s": speed}
        line = (f"{len(strides)} strides of {stride_s:.2f} s ± {100 * cv:.0f} %, "
                f"{float(np.mean([s.cadence_steps_min for s in strides])):.0f} steps/min, stance "
                f"{float(np.mean([s.stance_pct for s in strides])):.0f} %, {speed:.2f} m/s"
                + ("" if words else " (estimated)")
                + (f"; stance-time SI {step.figures['si_pct']:+.1f} % without push-off" if si else ""))
        return self._done(line, (reply + "\n" if reply else "") + "learned: " + line)

    # --- push-off
    def _level_values(self, level: int) -> Dict[str, float]:
        share = LEVELS[level]
        values = {n: _on_grid(n, share * v) for n, v in self.target.items() if n.startswith("pushoff.")}
        if self.backend.params()["symmetry.adapt"]:
            values["symmetry.adapt"] = 0       # it would move the work target under the levels
        return values

    def _set_level(self, level: int) -> Tuple[bool, str]:
        torque = by_name("pushoff.torque_Nm_kg")
        taken, reply = self._change(self._level_values(level), "set",
                                    f"push-off level {level + 1} of {len(LEVELS)}")
        if taken:
            self.level = level
            self.steps[self.index].since_t = self._now_t()
            reply += (f"\npush-off at level {level + 1} of {len(LEVELS)}: "
                      f"{units.format_with_unit(torque, self.backend.params()[torque.name])}; after "
                      f"{LEVEL_STRIDES} strides ask the wearer: `more`, `less` or `good`")
        return taken, reply

    def _checks(self) -> List[str]:
        """Why push-off may not be powered now (empty: it may)."""
        why = []
        faults = fault_names(self._faults())
        if faults:
            why.append(f"faults are latched ({', '.join(faults)}): see `faults`, put it right, `clear`")
        walk = self.steps[2]
        if walk.state != "done":
            t = self._now_t()
            recent = self._strides_since(t - 60.0) if math.isfinite(t) else []
            if len(recent) < LEVEL_STRIDES + 2:
                why.append("no stride learned: the learning walk (`back`) or a walk of a few strides first")
        if not math.isfinite(self._now_t()):
            why.append("the controller has not ticked yet")
        return why

    def _do_push_off(self, words: List[str]) -> str:
        word = words[0].lower() if words else ""
        if len(words) > 1 or word not in ("", "more", "less", "good"):
            return "push-off takes `more`, `less` or `good` (or Enter for the strides at this level)"
        if self.level < 0:
            if word:
                return "push-off is not on yet: Enter checks and switches it on, gently"
            why = self._checks()
            if why:
                return "not powered: " + "; ".join(why) + "\nEnter checks again, or `skip`"
            taken, reply = self._set_level(0)
            if not taken:
                return reply + "\nnot powered: Enter to try again, or `skip`"
            mode = self.console._mode(["walk"])
            if not mode.startswith("mode walk selected"):
                return reply + f"\nthe walking mode was refused ({mode}): push-off stays off"
            return reply + "\n" + mode
        # a stride the wearer felt: one with no fault (under a fault the ankle gave no push-off)
        strides = [s for s in self._strides_since(self.steps[self.index].since_t) if not s.faults]
        work = [s.pushoff_work_J_kg for s in strides if math.isfinite(s.pushoff_work_J_kg)]
        power = [s.peak_power_W_kg for s in strides if math.isfinite(s.peak_power_W_kg)]
        figures = (f"{len(strides)} strides at level {self.level + 1}: work "
                   + (f"{np.mean(work):+.3f} J/kg (target {self.backend.params()['pushoff.work_J_kg']:.3f}), "
                      f"peak power {np.mean(power):.2f} W/kg" if work else "--"))
        if word == "":
            return figures
        if word == "less":
            if self.level == 0:
                return "this is the gentlest level: `skip` goes on with it, `stop` ends the fitting"
            return self._set_level(self.level - 1)[1]
        faults = fault_names(self._faults())
        if faults:          # under a fault the ankle gives no push-off: nothing to go on from
            return (f"{'no stronger' if word == 'more' else 'not judged'} while faults are latched "
                    f"({', '.join(faults)}): see `faults`, put it right, `clear`")
        if len(strides) < LEVEL_STRIDES:
            return (f"only {len(strides)} of {LEVEL_STRIDES} strides at this level with no fault: the wearer "
                    f"walks on, then `{word}`")
        if word == "more":
            if self.level == len(LEVELS) - 1:
                return ("this is the target the fitting started with; stronger only by hand "
                        "(`set pushoff.torque_Nm_kg`, within its range), or `good`")
            return self._set_level(self.level + 1)[1]
        params = self.backend.params()
        torque = by_name("pushoff.torque_Nm_kg")
        line = (f"level {self.level + 1} of {len(LEVELS)}: {units.format_with_unit(torque, params[torque.name])}, "
                f"work target {params['pushoff.work_J_kg']:.3f} J/kg; measured {np.mean(work):+.3f} J/kg"
                if work else f"level {self.level + 1} of {len(LEVELS)}")
        self.steps[self.index].figures = {"work_J_kg": float(np.mean(work)) if work else math.nan}
        return self._done(line, f"{figures}\nchosen: {line}")

    def _do_symmetry(self, words: List[str]) -> str:
        if words:
            return "the symmetry check takes no value: Enter shows it (or `skip`)"
        strides = [s for s in self._strides_since(self.steps[self.index].since_t) if not s.faults]
        si = np.array([s.si_stance_pct for s in strides], dtype=float)
        si = si[np.isfinite(si)]
        faults = fault_names(self._faults())
        if len(si) < SYMMETRY_STRIDES and faults:
            return (f"{len(si)} of {SYMMETRY_STRIDES} strides so far, and faults are latched "
                    f"({', '.join(faults)}): strides under them have no push-off and do not count; see "
                    f"`faults`, put it right, `clear`")
        if len(si) < SYMMETRY_STRIDES:
            return (f"{len(si)} of {SYMMETRY_STRIDES} strides with both sides told and no fault so far: walk "
                    f"on, then Enter")
        target = self.backend.params()["symmetry.target_si_pct"]
        before = self.steps[2].figures.get("si_pct", math.nan)
        line = (f"stance-time SI {np.mean(si):+.1f} ± {np.std(si):.1f} % over {len(si)} strides (target "
                f"{target:+.1f} %" + (f"; {before:+.1f} % without push-off)" if math.isfinite(before) else ")"))
        advice = ""
        if abs(np.mean(si) - target) > SYMMETRY_NEAR_PCT:
            advice = ("\nnote: more than 5 points from the target: `back` to change push-off, or later the "
                      "symmetry adaptation (`set symmetry.adapt 1`)")
        return self._done(line, line + advice)

    def _do_profile(self, words: List[str]) -> str:
        from controller.console.commands import PROFILE_NAME
        if len(words) != 1 or not PROFILE_NAME.fullmatch(words[0].lower()):
            return ("type the profile's name: 1-32 of a-z, 0-9, '-' and '_' (e.g. level-walking), "
                    "or `skip`")
        name = words[0].lower()
        existed = (self.console.profiles_dir / f"{name}.params").exists()
        reply = self.console._profile(["save", name])
        if not reply.endswith("saved"):
            return reply + "\nnot saved: type the name again, or `skip`"
        saved = self.console._save([])
        if not saved.startswith("saved"):
            return reply + f"\n{saved}\nthe parameter file was not written: `save` it by hand"
        line = f"{name}{' (replaced the one before)' if existed else ''}, and {self.console.store}"
        return self._done(line, f"{reply}; {saved}")

    # ------------------------------------------------------------------ the end
    def end(self, how: str) -> str:
        """End the fitting (``how``: done, stopped, or why) and give the summary."""
        self.active = False
        self._faults()
        minutes = (self._clock() - self.started_wall) / 60.0
        rows = [f"fitting {how} after {minutes:.0f} min; summary:"]
        width = max(len(title) for _, title in STEPS[:-1])
        for (name, title), step in zip(STEPS[:-1], self.steps):
            text = step.line if step.state else "not done"
            rows += _rows(f"  {title:<{width}}  ", text)
        faults = fault_names(self.faults_seen)
        rows += _rows("  ", f"faults during the fitting: {', '.join(faults) or 'none'}")
        mode = self.console._chosen
        rows += _rows("  ", f"{self.changes} changes made, each in the audit log (`undo` takes the last "
                            f"back); mode {mode}" + ("" if mode == "walk" else " (`mode walk` for powered push-off)"))
        if self.steps[5].state != "done":
            rows += _rows("  ", "not saved: `save` keeps these values for the next start")
        self.summary = "\n".join(rows)
        self._record(f"fit end: {how}; " + "; ".join(f"{n} {s.state or 'not done'}"
                                                      for (n, _), s in zip(STEPS[:-1], self.steps)))
        return self.summary


def _rows(first: str, text: str, width: int = 80) -> List[str]:
    import textwrap
    return textwrap.wrap(text, width, initial_indent=first, subsequent_indent=" " * len(first),
                         break_on_hyphens=False) or [first.rstrip()]
