"""The supervisor's gait-symmetry work in the lock-step simulator: stride analysis and adaptation.

On the device the supervisor process analyses the telemetry stream (``controller.symmetry.strides``) and
the console runs the symmetry-seeking adaptation, whose changes reach the tick through the
parameter snapshot at a stride boundary, ramped over 3 strides (``controller.runtime.retune``).  In
lock-step there is no supervisor process: :class:`SymmetrySupervisor` does the same between ticks
(``harness.run(supervisor=...)``), with one difference: the telemetry is analysed every
:data:`SymmetrySupervisor.BATCH` ticks (the device's telemetry pump drains every 10 ms).  A
change goes out through the harness's publisher (:class:`controller.runtime.retune.ParamPublisher`)
and the tick takes and ramps it as in real time.  One change at a time: the next decision waits
until the tick took the last one.
"""
from __future__ import annotations

from typing import List, Optional, Tuple

import numpy as np

from controller.params.registry import ParamSet
from controller.symmetry.strides import StrideAnalyzer, StrideSymmetry, SymmetryAdapter

__all__ = ["SymmetrySupervisor"]


class SymmetrySupervisor:
    """Call :meth:`bind` once, then the object after every tick (``harness.run`` does both)."""

    BATCH = 100

    def __init__(self):
        self.strides: List[StrideSymmetry] = []
        self.changes: List[Tuple[float, float]] = []      # (time s, work target J/kg) once ramped in
        self.switched_off: Optional[str] = None
        self.adapter = SymmetryAdapter()
        self._tick = self._telemetry = self._params = self._pending = self._publisher = None
        self._sent: Optional[Tuple[int, ParamSet]] = None     # (generation, set) not yet ramped in
        self._fed = 0
        self.refused: List[str] = []

    def bind(self, tick, telemetry: np.ndarray, params: ParamSet, publisher=None) -> None:
        if publisher is None:
            raise TypeError("SymmetrySupervisor needs the harness's parameter publisher")
        self._tick, self._telemetry, self._params, self._publisher = tick, telemetry, params, publisher
        self.analyzer = StrideAnalyzer(params["wearer.mass_kg"])

    def __call__(self, k: int, now_s: float) -> None:
        if self._sent is not None:
            generation, sent = self._sent
            outcome = self._publisher.outcome(generation)
            if outcome is not None and outcome[0] != "accepted":
                self.refused.append(outcome[1] or outcome[0])    # the set in force stays
                self._sent = None
            elif outcome is not None and self._publisher.applied(generation):
                self._params, self._sent = sent, None
                self.changes.append((now_s, sent["pushoff.work_J_kg"]))
        if self._pending is not None and self._sent is None:
            self._sent = (self._publisher.publish(self._pending, base=self._params), self._pending)
            self._pending = None
        if (k + 1) % self.BATCH:
            return
        rows = self._telemetry[self._fed:k + 1]
        self._fed = k + 1
        for stride in self.analyzer.feed(rows):
            self.strides.append(stride)
            decided = self.adapter.on_stride(stride, self._latest())
            if decided is None:
                continue
            changes, why = decided
            if changes.get("symmetry.adapt") == 0:
                self.switched_off = why
            self._pending = self._latest().with_values(changes)

    def _latest(self) -> ParamSet:
        """The set the next decision starts from: pending, else sent, else in force."""
        return self._pending or (self._sent[1] if self._sent is not None else self._params)
