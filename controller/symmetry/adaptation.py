"""The symmetry-seeking adaptation of push-off: a controller component beside the console.

:class:`SymmetryAdapter` is the policy: it decides, one stride at a time, how to move the push-off
work target.  :class:`SymmetryAdaptation` is the component that runs it: a telemetry sink (fed
every batch, as the session log and the console's watch are) that analyses the strides
(:class:`controller.symmetry.strides.StrideAnalyzer`), asks the policy, and sends what it decides to
the tick through a :class:`Publisher`: the :class:`controller.runtime.process.Runtime` on the
device, the run's :class:`controller.runtime.retune.ParamPublisher` in the lock-step simulator
(the Runtime hands its own to the tick's shared block).  So it runs in ``ankle run``
with or without a console port, and in the simulator, alike.  The console only shows its note
(``symmetry``) and switches it with ``set symmetry.adapt 0|1``: a registry parameter, so it is
saved with the others and a controller started from the saved file adapts, or not, the same
whether or not anyone attaches a console.

Its changes are made as a prosthetist's are: recorded in the audit log first (role
``adaptation``, action ``adapt``, one record per parameter, the policy's reason in the detail),
then published; the tick takes them at a stride boundary (and ramps them, see
:mod:`controller.runtime.process`), or refuses them, and what became of a change not taken is
recorded too (``adapt refused``, ``adapt pending``).  With no audit log that can be written it
changes nothing, and says so once.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, List, Optional, Protocol, Tuple

import numpy as np

from controller.kernels.faults import FAULTS, WARNINGS, advice, fault_names
from controller.kernels.telemetry import COLUMN
from controller.params.registry import REGISTRY, ParamError, ParamSet
from controller.symmetry.strides import StrideAnalyzer, StrideSymmetry

__all__ = ["SymmetryAdapter", "SymmetryAdaptation", "Publisher", "ROLE", "ACTION", "switch_on_refusal"]

#: The adapter's note when a fault in a stride switched it off (the names follow ": ").
_OFF_BY_FAULT = "switched off by a fault"
_ADVISED = {entry.name for entry in (*FAULTS, *WARNINGS)}


def switch_on_refusal(faults_word: int) -> Optional[str]:
    """Why ``set symmetry.adapt 1`` is refused with the latched fault word ``faults_word``, or None:
    with a fault latched the first stride would switch it off again (and push-off is not powered)."""
    if not faults_word:
        return None
    return (f"the adaptation cannot be switched on while faults are latched "
            f"({', '.join(fault_names(faults_word))}): it would switch itself off at the next stride; "
            f"see `faults`, put it right, `clear`, then switch it on")

ROLE = "adaptation"              # the audit log's role column for its changes
ACTION = "adapt"                 # ... and the action
_T = COLUMN["t"]


class SymmetryAdapter:
    """Symmetry-seeking push-off, off by default (``symmetry.adapt``).

    The wearer answers push-off *work* (the simulator's model, ``sim/asymmetry.py``, assumes so
    too), and the push-off controller already learns its torque to deliver the work target
    ``pushoff.work_J_kg``; so that target is what this moves.  Once per
    ``symmetry.window_strides`` strides it moves it by ``symmetry.gain_J_kg_pct`` per percentage
    point between ``symmetry.target_si_pct`` and the window's mean stance-time SI (more push-off
    lengthens the prosthetic stance: a negative index rises), at most :data:`MAX_STEP_J_KG` at a
    time, and never outside [``symmetry.work_min_J_kg``, ``symmetry.work_max_J_kg``].  Strides whose
    sound side is uncertain (confidence below :data:`MIN_CONFIDENCE`) do not count.  The torque
    stays within the push-off controller's own bounds (its learned correction is limited to
    ``pushoff.adapt_limit``) and the safety limits, whatever the target.

    Any fault in a stride switches it off: the change it returns then sets ``symmetry.adapt`` to 0,
    and the prosthetist turns it back on.  It decides; :class:`SymmetryAdaptation` sends what it
    returns the way a console edit is sent (audited, at a stride boundary, ramped).
    """

    MAX_STEP_J_KG = 0.03
    MIN_CONFIDENCE = 0.5

    def __init__(self):
        self._window: List[float] = []
        self.last_note = "off"

    def on_stride(self, stride: StrideSymmetry, params) -> Optional[Tuple[dict, str]]:
        """The parameter changes to make after ``stride`` under ``params`` and why, or None."""
        if not params["symmetry.adapt"]:
            self._window.clear()
            self.last_note = "off"
            return None
        if stride.faults:
            self._window.clear()
            self.last_note = f"{_OFF_BY_FAULT}: {', '.join(fault_names(stride.faults))}"
            return {"symmetry.adapt": 0}, self.last_note
        if not (math.isfinite(stride.si_stance_pct) and stride.confidence >= self.MIN_CONFIDENCE):
            return None
        self._window.append(stride.si_stance_pct)
        need = int(params["symmetry.window_strides"])
        if len(self._window) < need:
            self.last_note = f"collecting {len(self._window)}/{need} strides"
            return None
        mean_si = float(np.mean(self._window))
        self._window.clear()
        error = params["symmetry.target_si_pct"] - mean_si
        now = params["pushoff.work_J_kg"]
        step = max(-self.MAX_STEP_J_KG, min(self.MAX_STEP_J_KG, params["symmetry.gain_J_kg_pct"] * error))
        low, high = params["symmetry.work_min_J_kg"], params["symmetry.work_max_J_kg"]
        new = min(high, max(low, round(now + step, 4)))     # rounded for the audit log, then bounded
        self.last_note = (f"mean stance-time SI {mean_si:+.1f} % over {need} strides, target "
                          f"{params['symmetry.target_si_pct']:+.1f} %: push-off work target {now:.3f} -> "
                          f"{new:.3f} J/kg")
        if new == now:
            return None
        return {"pushoff.work_J_kg": new}, self.last_note


class Publisher(Protocol):
    """What a component off the tick needs to change its parameters: the calls of
    :class:`controller.runtime.retune.ParamPublisher`, the one path a change takes (validated and
    blended off the tick, taken at a stride boundary, ramped in).  The lock-step simulator hands
    the component that publisher itself; :class:`controller.runtime.process.Runtime` offers the
    same calls over the tick's shared block (and says whether the tick runs)."""

    def accepted(self) -> ParamSet:
        """The set the tick accepted last (in force, or ramping in)."""

    def can_publish(self) -> bool:
        """Whether the tick can be sent a change now: it runs, and no set sent is still waiting
        to be taken (one change at a time: a second would supersede the first)."""

    def publish(self, params: ParamSet, *, if_idle: bool = False) -> Optional[int]:
        """Hand ``params`` to the tick, to take at its next stride boundary; the generation.
        ``if_idle``: only if no set sent is still waiting to be taken (checked in the same step
        as the publication), else None: a set another component just sent is never superseded."""

    def outcome(self, generation: int) -> Optional[Tuple[str, str]]:
        """What the tick did with ``generation``: None while not taken, ("accepted", ""),
        ("refused", why) or ("superseded", "") (a later set reached it first)."""


#: ``audit`` of :class:`SymmetryAdaptation`: opens the audit log when first needed and returns
#: (the log, or a :class:`controller.console.audit.UnusableLog` saying why there is none; a note
#: of what was done to open it, e.g. a damaged log moved aside, or None).
AuditOpener = Callable[[], Tuple[object, Optional[str]]]


@dataclass
class _Sent:
    """A change published and not yet resolved."""

    generation: int
    before: ParamSet
    after: ParamSet
    changed: List[str]
    why: str
    wait_until_s: float              # telemetry time after which it is recorded as pending
    pending_recorded: bool = False


class SymmetryAdaptation:
    """The symmetry-seeking adaptation as a telemetry sink (see the module docstring).

    Call :meth:`bind` with the :class:`Publisher` before the first batch, then the object with
    each telemetry batch (rows of ``controller.kernels.telemetry.COLUMNS``, in time order), and
    :meth:`close` at the end.  ``audit`` opens the audit log when the adaptation is first seen switched on (so a
    controller that never adapts writes none); ``say`` reports, once each, what keeps it from
    changing anything.  Never raises from a batch: the telemetry must flow on to the other sinks.

    It waits for no one: a change is published only when :meth:`Publisher.can_publish`, and its
    outcome is read at the following batches.  While one is in flight the policy sees the set it
    sent, as the tick will hold it.  A change the tick has not taken within the longest stride
    (``estimator.max_stride_s``) and :data:`TAKE_MARGIN_S` of telemetry time is recorded as
    pending (it may still be taken, and is then in force).
    """

    TAKE_MARGIN_S = 0.5
    STRIDES_KEPT = 600               # the last strides analysed (about 11 min of walking)
    SENT_KEPT = 1000                 # the last changes sent (about 3 h of walking at one per window)

    def __init__(self, audit: AuditOpener, mass_kg: float, *, say: Callable[[str], None] = lambda line: None,
                 announce: Callable[[str], None] = lambda line: None):
        self.adapter = SymmetryAdapter()
        #: tells the clinician (the console's announcement) when it switched itself off and why
        self.announce = announce
        self.analyzer = StrideAnalyzer(mass_kg)
        self.strides: List[StrideSymmetry] = []
        #: What it sent, oldest first: (telemetry time s, {name: new value}, why, outcome), the
        #: outcome "accepted", "refused: ...", "superseded" or "" while not taken.
        self.sent: List[list] = []
        self._open_audit = audit
        self._audit = None
        self._say = say
        self._said: set = set()
        self._publisher: Optional[Publisher] = None
        self._decided: Optional[Tuple[dict, str]] = None      # decided, not yet sent
        self._sent: Optional[_Sent] = None                    # sent, not yet taken
        self._t_s = -math.inf                                  # the newest telemetry row's time
        self._stopped: Optional[str] = None

    @property
    def note(self) -> str:
        """What it did last, in words (the console's ``symmetry`` shows it)."""
        return self.adapter.last_note

    def bind(self, publisher: Publisher) -> None:
        self._publisher = publisher

    @property
    def publisher(self) -> Optional[Publisher]:
        """What it sends its changes through (None before :meth:`bind`)."""
        return self._publisher

    # ------------------------------------------------------------------ the sink
    def __call__(self, batch: np.ndarray) -> None:
        """A telemetry batch (called on the telemetry's thread, or between lock-step ticks)."""
        if self._publisher is None or self._stopped is not None or not len(batch):
            return
        try:
            self._t_s = float(batch[-1, _T])
            self._resolve()
            basis = self._basis()
            self.analyzer.mass_kg = basis["wearer.mass_kg"]      # changes only standing still
            for stride in self.analyzer.feed(batch):
                self.strides.append(stride)
                decided = self.adapter.on_stride(stride, self._basis())
                if decided is not None:
                    self._decided = decided
            del self.strides[:-self.STRIDES_KEPT]
            if self._basis()["symmetry.adapt"]:
                self._log()                  # opened (or found unusable, and said) when first switched on
            if self._decided is not None:
                self._send()
        except Exception as e:           # a defect here must not stop the telemetry (logs, console)
            self._stopped = f"the adaptation stopped: {type(e).__name__}: {e}"
            self.adapter.last_note = self._stopped
            self._say_once(f"symmetry adaptation: {self._stopped}; it changes nothing more this session")

    def close(self) -> None:
        """At the end: a change still not taken is recorded as such; closes the audit log."""
        if self._sent is not None and self._publisher is not None:
            self._resolve()
            if self._sent is not None and not self._sent.pending_recorded:
                self._record_outcome(self._sent, "pending", "the controller stopped before it took the change")
        if self._audit is not None:
            self._audit.close()

    # ------------------------------------------------------------------ helpers
    def _basis(self) -> ParamSet:
        """The set the tick holds, or will once it takes the change in flight."""
        return self._sent.after if self._sent is not None else self._publisher.accepted()

    def _say_once(self, line: str) -> None:
        if line not in self._said:
            self._said.add(line)
            self._say(line)

    def _log(self):
        """The audit log, or None (said once, and in the note) when no record can be written."""
        if self._audit is None:
            self._audit, opened = self._open_audit()
            if opened:
                self._say_once(f"symmetry adaptation: audit log: {opened}")
        problem = getattr(self._audit, "problem", None)
        if problem:
            self.adapter.last_note = f"changes nothing: its changes cannot be recorded ({problem})"
            self._say_once(f"symmetry adaptation: symmetry.adapt is 1 but its changes cannot be recorded "
                           f"({problem}), so it changes nothing")
            return None
        return self._audit

    def _send(self) -> None:
        """Send the change decided, if the tick can take one now (else it waits for the next batch)."""
        publisher = self._publisher
        if self._sent is not None or not publisher.can_publish():
            return
        changes, why = self._decided
        self._decided = None
        before = publisher.accepted()
        if not before["symmetry.adapt"]:
            return                       # switched off (by the console) since it decided
        try:
            after = before.with_values(changes)
        except ParamError as e:          # e.g. bounds edited since: the registry's rules hold
            self.adapter.last_note = f"{why}; not made: {e}"
            return
        changed = [p.name for p in REGISTRY if after[p.name] != before[p.name]]
        if not changed:
            return
        audit = self._log()
        if audit is None:
            return
        try:                             # recorded first: a change that cannot be recorded is not made
            for name in changed:
                audit.record(ROLE, ACTION, name, repr(before[name]), repr(after[name]), detail=why)
        except OSError as e:
            self.adapter.last_note = f"{why}; not made: the audit log cannot record it ({e})"
            self._say_once(f"symmetry adaptation: the audit log cannot record its changes ({e}); "
                           f"nothing is changed until it can")
            return
        sent = _Sent(0, before, after, changed, why,
                     self._t_s + before["estimator.max_stride_s"] + self.TAKE_MARGIN_S)
        self.sent.append([self._t_s, {name: after[name] for name in changed}, why, ""])
        del self.sent[:-self.SENT_KEPT]
        generation = publisher.publish(after, if_idle=True)
        if generation is None:           # another component's set arrived since can_publish()
            why_not = "another change was sent to the controller at the same moment"
            self.sent[-1][3] = f"refused: {why_not}"
            self._record_outcome(sent, "refused", why_not)
            self.adapter.last_note = f"{why}; not made: {why_not}"
            return
        sent.generation = generation
        self._sent = sent
        self.adapter.last_note = why

    def _resolve(self) -> None:
        """Read what the tick did with the change in flight; record it unless accepted."""
        sent = self._sent
        if sent is None:
            return
        outcome = self._publisher.outcome(sent.generation)
        if outcome is None:
            if self._t_s > sent.wait_until_s and not sent.pending_recorded:
                self._record_outcome(sent, "pending", "the controller has not taken it within "
                                     f"{sent.before['estimator.max_stride_s'] + self.TAKE_MARGIN_S:g} s; "
                                     f"it takes changes at a stride boundary")
                sent.pending_recorded = True
            return
        self._sent = None
        kind, why = outcome
        self.sent[-1][3] = kind if kind != "refused" else f"refused: {why}"
        if kind == "accepted":
            if sent.before["symmetry.adapt"] and not sent.after["symmetry.adapt"]:
                self._announce_off(sent.why)
            return
        if kind == "superseded":
            why = "a later set reached the controller first"
        self._record_outcome(sent, "refused", why)
        self.adapter.last_note = f"{sent.why}; not made: refused by the controller: {why}"

    def _announce_off(self, why: str) -> None:
        """The switch-off is in force: say so in the clinician's words (never raises)."""
        names = why.split(": ", 1)[1].split(", ") if why.startswith(_OFF_BY_FAULT) else []
        words = " ".join(advice(n) for n in names if n in _ADVISED)
        try:
            self.announce(f"the symmetry adaptation switched itself off: a fault ({', '.join(names)}). {words} "
                          f"Switch it on again with `set symmetry.adapt 1` once `faults` shows none.")
        except Exception:            # a console gone away must not stop the telemetry
            pass

    def _record_outcome(self, sent: _Sent, outcome: str, why: str) -> None:
        """Best effort: nothing was changed (refused), or the first record says what was sent."""
        try:
            for name in sent.changed:
                self._audit.record(ROLE, f"{ACTION} {outcome}", name, repr(sent.before[name]),
                                   repr(sent.after[name]), detail=why)
        except OSError as e:         # nothing was changed: the record of that is what is lost
            self._say_once(f"symmetry adaptation: the audit log could not record that a change was "
                           f"{outcome} ({e}); nothing was changed")
