"""The publisher's side of a parameter change: validate, blend the ramp, publish it whole.

One path applies a parameter change, in real time and in lock-step alike:

1. the publisher (:meth:`controller.runtime.process.Runtime.retune` in the supervisor, or a
   :class:`ParamPublisher` over a :meth:`~controller.runtime._ring.ParamChannel.local` channel in
   the lock-step simulator) checks the target -- a :class:`~controller.params.registry.ParamSet`
   (bounds and cross rules), and the drive's torque limit -- and builds the ramp: a live
   change reaches its target over :data:`RAMP_STRIDES` stride boundaries, each step a
   straight-line blend of the set in force and the target (whole-number parameters move at the
   last step); a change of a parameter that is not live is one step (the tick takes it at once,
   standing still, or refuses it).  Every step is itself a validated ParamSet: the cross rules
   are linear in the live values, so a blend of two valid sets is valid.  The steps go out as one
   publication of the channel (a seqlock: the tick never sees half of it);
2. the tick (:meth:`controller.kernels._tick.Tick.take_params`, without the GIL, at a stride
   boundary) accepts or refuses it from its own state, takes one step per boundary, and
   reports by generation with a reason code, which :func:`refusal_text` says in words.

Nothing here runs in the tick's process.
"""
from __future__ import annotations

import threading
from typing import List, Optional, Sequence, Tuple

import numpy as np

from controller.kernels._tick import REFUSAL_CODES, STILL_S
from controller.params.registry import REGISTRY, ParamError, ParamSet
from controller.runtime._ring import MAX_STEPS, ParamChannel, retune_length

__all__ = ["RAMP_STRIDES", "ParamPublisher", "blend", "ramp", "pack", "unpack_target", "refusal_text",
           "outcome", "lockstep_channel"]

#: A live parameter edit reaches its new value over this many stride boundaries (a third each).
RAMP_STRIDES = 3
assert RAMP_STRIDES <= MAX_STEPS
_N = len(REGISTRY)


def blend(a: ParamSet, b: ParamSet, share: float) -> ParamSet:
    """``a`` moved ``share`` of the way to ``b`` (whole-number parameters move at the end)."""
    return ParamSet({p.name: (a[p.name] + share * (b[p.name] - a[p.name]) if p.kind is float else a[p.name])
                     for p in REGISTRY})


def ramp(base: ParamSet, target: ParamSet, strides: int = RAMP_STRIDES) -> List[ParamSet]:
    """The steps from ``base`` (the set in force) to ``target``, one per stride boundary; the
    last is ``target``.  One step when a parameter that is not live changes (the tick applies
    such a change at once, standing still)."""
    if not 1 <= strides <= MAX_STEPS:
        raise ValueError(f"a ramp has 1..{MAX_STEPS} steps, got {strides}")
    if any(not p.live and base[p.name] != target[p.name] for p in REGISTRY):
        return [target]
    return [blend(base, target, i / strides) for i in range(1, strides)] + [target]


def pack(base: ParamSet, steps: Sequence[ParamSet]) -> np.ndarray:
    """One publication: the step count, a spare, ``base`` and the steps (registry order)."""
    if not 1 <= len(steps) <= MAX_STEPS:
        raise ValueError(f"a publication carries 1..{MAX_STEPS} steps, got {len(steps)}")
    out = np.zeros(retune_length(_N))
    out[0] = len(steps)
    out[2:2 + _N] = base.vector()
    for k, step in enumerate(steps):
        out[2 + (k + 1) * _N:2 + (k + 2) * _N] = step.vector()
    return out


def unpack_target(values: np.ndarray) -> np.ndarray:
    """The target (the last step) of publication ``values``."""
    count = int(values[0])
    if not 1 <= count <= MAX_STEPS:
        raise ParamError(f"a parameter publication with {values[0]!r} steps")
    return np.array(values[2 + count * _N:2 + (count + 1) * _N])


def _names(mask0: int, mask1: int) -> List[str]:
    bits = (mask0 & (2**64 - 1)) | ((mask1 & (2**64 - 1)) << 64)
    return [p.name for i, p in enumerate(REGISTRY) if bits >> i & 1]


def refusal_text(code: int, mask0: int = 0, mask1: int = 0) -> str:
    """The tick's refusal ``code`` (REFUSAL_CODES) in the words the console shows; the masks
    name the parameters (a bit per registry index)."""
    names = ", ".join(_names(mask0, mask1))
    if code == REFUSAL_CODES["startup"]:
        return (f"{names} is set when the controller starts (the loop's period is fixed "
                f"then), not while it runs")
    if code == REFUSAL_CODES["moving"]:
        return (f"{names} can only change while the wearer stands still, and the wearer "
                f"walked or moved within the last {STILL_S:g} s when the controller took the change")
    if code == REFUSAL_CODES["driver_range"]:
        return "actuator.max_torque_Nm is beyond the drive's torque limit"
    if code == REFUSAL_CODES["malformed"]:
        return "the parameter publication was damaged (step count or values); nothing changed"
    return f"refused by the controller (reason code {code})"


def outcome(channel: ParamChannel, generation: int) -> Optional[Tuple[str, str]]:
    """What the tick did with publication ``generation`` of ``channel``: None while it has not
    taken it, ("accepted", "") or ("refused", reason), or ("superseded", "") when the tick took a
    later one first (it takes the newest at each stride boundary)."""
    taken = channel.word("params_taken")
    if taken < generation:
        return None
    if taken > generation:
        return "superseded", ""
    if channel.word("params_refused") == generation:
        return "refused", refusal_text(channel.word("params_refusal_code"), channel.word("params_refusal_mask0"),
                                       channel.word("params_refusal_mask1"))
    return "accepted", ""


class ParamPublisher:
    """Validates and blends a change and publishes it on ``channel`` for the tick to take: the
    one way a change reaches the tick, for the console, the symmetry adaptation and the
    simulator's scripts alike.

    ``t_max_Nm``: the drive's torque limit [N*m] (None: unknown here; the tick still refuses
    beyond its own).  The ramp starts from the tick's own readback of the set it accepted last
    (``channel.in_force``); the tick moves the steps from where it is if that has moved on.
    Publications are serialised by a lock (the snapshot has one writer at a time; the console
    and the adaptation publish from different threads).
    """

    def __init__(self, channel: ParamChannel, t_max_Nm: Optional[float] = None, strides: int = RAMP_STRIDES):
        self.channel, self.t_max_Nm, self.strides = channel, t_max_Nm, strides
        self._base = np.zeros(channel.n)
        self._lock = threading.Lock()

    def check(self, params: ParamSet) -> None:
        """ParamError when ``params`` cannot go to the tick at all (its type, the driver's range)."""
        if not isinstance(params, ParamSet):
            raise TypeError("params must be a validated controller.params.registry.ParamSet")
        if self.t_max_Nm is not None and params["actuator.max_torque_Nm"] > self.t_max_Nm:
            raise ParamError(f"actuator.max_torque_Nm = {params['actuator.max_torque_Nm']:g} N*m is beyond the "
                             f"drive's torque limit t_max = {self.t_max_Nm:g} N*m")

    def in_force(self) -> Optional[ParamSet]:
        """The set the tick reported accepted last (its target), or None before any."""
        with self._lock:
            if not self.channel.in_force.read(self._base):
                return None
            return ParamSet.from_vector(self._base)

    def accepted(self) -> Optional[ParamSet]:
        """The set the tick accepted last (in force, or ramping in): :meth:`in_force`."""
        return self.in_force()

    def waiting(self) -> bool:
        """Whether a publication has not been taken by the tick yet."""
        return self.channel.word("params_taken") < self.channel.published.generation

    def can_publish(self) -> bool:
        """Whether nothing published is still waiting (one change at a time: a second would
        supersede the first before the tick saw it)."""
        return not self.waiting()

    def publish(self, target: ParamSet, base: Optional[ParamSet] = None, *,
                if_idle: bool = False) -> Optional[int]:
        """Check ``target``, build its ramp from ``base`` (default: :meth:`in_force`), publish it;
        returns the publication's generation.  ParamError (nothing published) if refused here.
        ``if_idle``: only if nothing published is still waiting (checked under the same lock as
        the publication), else None: a set another component just sent is never superseded."""
        self.check(target)
        base = base if base is not None else (self.in_force() or target)
        steps = pack(base, ramp(base, target, self.strides))
        with self._lock:
            if if_idle and self.waiting():
                return None
            return self.channel.published.publish(steps)

    def outcome(self, generation: int) -> Optional[Tuple[str, str]]:
        """None while the tick has not taken ``generation``; ("accepted", ""), ("refused", why)
        or ("superseded", "")."""
        return outcome(self.channel, generation)

    def applied(self, generation: int) -> bool:
        """Whether the ramp of ``generation`` (or a later one) reached its target at the tick."""
        return self.channel.word("params_applied") >= generation


def lockstep_channel(params: ParamSet) -> ParamChannel:
    """A channel in this process for a tick configured with ``params`` (lock-step simulator):
    the tick's readback starts at ``params``, as the runtime's start-up report does."""
    channel = ParamChannel.local(_N)
    channel.in_force.publish(np.array(params.vector()))
    return channel
