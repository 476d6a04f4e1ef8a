"""The supervisor's gait-symmetry work in the lock-step simulator: stride analysis and adaptation.

On the device the supervisor process analyses the telemetry stream (``controller.symmetry.strides``) and
the console runs the symmetry-seeking adaptation, whose changes reach the tick through the
parameter snapshot at a stride boundary, ramped over 3 strides (``controller.runtime.process``).  In
lock-step there is no supervisor process: :class:`SymmetrySupervisor` does the same between ticks
(``harness.run(supervisor=...)``), with two differences: the telemetry is analysed every
:data:`SymmetrySupervisor.BATCH` ticks (the device's telemetry pump drains every 10 ms), and a
change is applied whole at the next stride boundary, not ramped (an adjustment is at most
0.03 J/kg of the work target, once per window of strides).
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
        self.changes: List[Tuple[float, float]] = []      # (time s, work target J/kg) as applied
        self.switched_off: Optional[str] = None
        self.adapter = SymmetryAdapter()
        self._tick = self._telemetry = self._params = self._pending = None
        self._fed = 0

    def bind(self, tick, telemetry: np.ndarray, params: ParamSet) -> None:
        self._tick, self._telemetry, self._params = tick, telemetry, params
        self.analyzer = StrideAnalyzer(params["wearer.mass_kg"])

    def __call__(self, k: int, now_s: float) -> None:
        if self._pending is not None and self._tick.stride_boundary():
            self._tick.retune(self._pending)
            self._params, self._pending = self._pending, None
            self.changes.append((now_s, self._params["pushoff.work_J_kg"]))
        if (k + 1) % self.BATCH:
            return
        rows = self._telemetry[self._fed:k + 1]
        self._fed = k + 1
        for stride in self.analyzer.feed(rows):
            self.strides.append(stride)
            decided = self.adapter.on_stride(stride, self._pending or self._params)
            if decided is None:
                continue
            changes, why = decided
            if changes.get("symmetry.adapt") == 0:
                self.switched_off = why
            self._pending = (self._pending or self._params).with_values(changes)
