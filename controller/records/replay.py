"""``ankle replay``: the device's sensor side run offline over recorded sensor data.

Input: a CSV with a header row and at least ``t`` [s], ``shank_gyro`` [rad/s],
``load`` [N], ``ankle_angle`` [rad] (any order, extra columns kept).  Output:
the input columns plus ``phase`` (0..1 from heel strike, empty when not
walking), ``heel_strike``, ``toe_off`` (1 on the sample the event is detected)
and ``walking`` (0/1); input columns of those names are replaced.

Each row is one tick of the device: the gyro cell is an IMU frame arriving at ``t``, the load
cell a load frame (which carries the ankle angle too), and the same compiled code as the tick
runs on them (:class:`controller.kernels._replay.Replay`): the safety stage's sensor checks
(lost, stuck-at, out of range, NaN, loaded while swinging), their latch and recovery, which
decide whether the estimator may use each sensor, then the estimator.  So a device or simulator
log replays to the same estimates, and a record with a failing sensor gives what the device would
have done: the fault latched, the estimate from the other sensor.  An empty gyro or load cell is
that frame not arriving (a short gap is bridged by the last frame, as on the device; a long one is
the sensor lost); an empty ``ankle_angle`` is allowed only where ``load`` is empty too (one frame
carries both).  The sensor faults raised are in the summary, by the fault catalogue's names
(:mod:`controller.kernels.faults`), with when each first latched and how long it stayed latched.
"""
from __future__ import annotations

import csv
import io
import math
import operator
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from controller.kernels._estimator import Estimator
from controller.kernels._replay import Replay
from controller.kernels.faults import FAULTS
from controller.records.csvlog import BLOCK_ROWS, AtomicWriter, rows_to_csv
from controller.records.inputs import open_input
from controller.params.registry import ParamSet

__all__ = ["INPUT_COLUMNS", "OUTPUT_COLUMNS", "EMPTY_CELLS", "replay_file", "estimate", "fault_summary"]

INPUT_COLUMNS = ("t", "shank_gyro", "load", "ankle_angle")
OUTPUT_COLUMNS = ("phase", "heel_strike", "toe_off", "walking")
#: Input columns whose cells may be empty: that sensor's frame did not arrive on the row.  The
#: ankle angle comes in the load cell's frame, so it may be empty only where the load is.
EMPTY_CELLS = {"shank_gyro": None, "load": None, "ankle_angle": "load"}


def estimate(t_s, shank_gyro_rad_s, load_N, ankle_angle_rad, params: ParamSet,
             use_shank: bool = True, monitor: bool = False) -> Dict[str, np.ndarray]:
    """Run the estimator over arrays, one sample at a time as on line.

    Returns phase (-1 = not walking), heel_strike, toe_off, walking, standing.  A NaN gyro
    or load sample counts as that sensor's frame missing.  ``use_shank=False`` runs the plain
    time-based estimator (load events only) for comparison.

    ``monitor=False`` (the estimator alone): a sensor is used on exactly the samples where it
    is finite.  ``monitor=True`` (what ``ankle replay`` runs): the tick's safety check decides
    that per sample (a missing frame is bridged up to the sensor's timeout, then the sensor is
    lost; stuck-at, range and NaN checks; faults latch and recover as on the device; see
    :mod:`controller.kernels._replay`), and the result adds ``faults`` (the latched fault word
    per sample, uint32), ``imu_valid`` and ``load_valid`` (0/1 per sample).
    """
    arrays = [np.ascontiguousarray(a, dtype=np.float64) for a in (t_s, shank_gyro_rad_s, load_N, ankle_angle_rad)]
    n = len(arrays[0])
    out = {"phase": np.empty(n), "heel_strike": np.empty(n, np.int8), "toe_off": np.empty(n, np.int8),
           "walking": np.empty(n, np.int8), "standing": np.empty(n, np.int8)}
    if not monitor:
        est = Estimator()
        est.configure(params, use_shank=use_shank)
        est.run_arrays(*arrays, out["phase"], out["heel_strike"], out["toe_off"], out["walking"], out["standing"])
        return out
    out.update(faults=np.empty(n, np.uint32), imu_valid=np.empty(n, np.int8), load_valid=np.empty(n, np.int8))
    kernel = Replay()
    kernel.configure(params, use_shank=use_shank)
    kernel.run(*arrays, out["phase"], out["heel_strike"], out["toe_off"], out["walking"], out["standing"],
               out["faults"], out["imu_valid"], out["load_valid"])
    return out


def fault_summary(t_s, faults) -> Dict[str, Dict[str, float]]:
    """The faults latched over a replay, by catalogue name, in bit order: ``first_s`` (the ``t``
    of the first row it was latched on), ``latched_s`` (the time it was latched: each latched
    row counts until the next row) and ``episodes`` (how many times it latched).  Faults never
    latched are left out, so a clean record gives {}."""
    t = np.asarray(t_s, dtype=np.float64)
    word = np.asarray(faults, dtype=np.uint32)
    held_s = np.diff(t)
    out: Dict[str, Dict[str, float]] = {}
    for fault in FAULTS:
        on = (word & np.uint32(fault.mask)) != 0
        if not on.any():
            continue
        out[fault.name] = {
            "first_s": float(t[int(np.argmax(on))]),
            "latched_s": round(float(held_s[on[:-1]].sum()), 6),
            "episodes": int(on[0]) + int(np.count_nonzero(on[1:] & ~on[:-1])),
        }
    return out


class _FaultRuns:
    """:func:`fault_summary` accumulated block by block (the same figures; ``latched_s`` summed
    exactly, with math.fsum, over the blocks)."""

    def __init__(self):
        self.first_s: Dict[str, float] = {}
        self.held: Dict[str, List[float]] = {}
        self.episodes: Dict[str, int] = {}
        self.prev_on: Dict[str, bool] = {}
        self.prev_t: Optional[float] = None

    def add(self, t: np.ndarray, word: np.ndarray) -> None:
        # each row's hold: until the next row (the last row's is known with the next block)
        held_s = np.diff(t) if self.prev_t is None else np.diff(np.concatenate(([self.prev_t], t)))
        for fault in FAULTS:
            on = (word & np.uint32(fault.mask)) != 0
            name = fault.name
            before = self.prev_on.get(name, False)
            if self.prev_t is not None and before:
                self.held.setdefault(name, []).append(float(held_s[0]))     # the last row before
            if on.any():
                if name not in self.first_s:
                    self.first_s[name] = float(t[int(np.argmax(on))])
                inner = held_s[1:] if self.prev_t is not None else held_s
                self.held.setdefault(name, []).append(float(inner[on[:-1]].sum()))
                self.episodes[name] = (self.episodes.get(name, 0) + int(on[0] and not before)
                                       + int(np.count_nonzero(on[1:] & ~on[:-1])))
            self.prev_on[name] = bool(on[-1])
        self.prev_t = float(t[-1])

    def summary(self) -> Dict[str, Dict[str, float]]:
        return {f.name: {"first_s": self.first_s[f.name], "latched_s": round(math.fsum(self.held.get(f.name, ())), 6),
                         "episodes": self.episodes[f.name]}
                for f in FAULTS if f.name in self.first_s}


def replay_file(in_path: Path, out_path: Path, mass_kg: Optional[float] = None,
                rows: int = BLOCK_ROWS) -> Dict[str, object]:
    """Replay ``in_path`` into ``out_path``; returns a summary: the counts of samples and events,
    the share of the time each sensor was used (``imu_used_fraction``, ``load_used_fraction``)
    and the sensor faults latched (``faults``: :func:`fault_summary`).

    Streamed: ``rows`` rows at a time are read, run through the kernel (its estimator and
    safety latch carry on from the block before, so the result is the one-call result, byte for
    byte, whatever ``rows``), and written; memory is bounded whatever the record's length.  The
    output is written to a temporary file beside ``out_path``, fsynced and renamed over it only
    once the whole input was read without a problem: a bad row anywhere leaves no output (and
    the old one untouched).  ``in_path``: a CSV, or an MCAP session record (by its suffix:
    :func:`controller.records.inputs.open_input`)."""
    params = ParamSet() if mass_kg is None else ParamSet({"wearer.mass_kg": mass_kg})
    torn: list = []             # a last line cut short by a crash or power cut is dropped, and said
    source = open_input(in_path)
    kernel = Replay()
    kernel.configure(params, use_shank=True)
    faults = _FaultRuns()
    n_total = hs = to = walking = imu = load = 0
    t_first = t_last = None
    keep = out_header = getter = None
    out = {"phase": np.empty(rows), "heel_strike": np.empty(rows, np.int8), "toe_off": np.empty(rows, np.int8),
           "walking": np.empty(rows, np.int8), "faults": np.empty(rows, np.uint32),
           "imu_valid": np.empty(rows, np.int8), "load_valid": np.empty(rows, np.int8)}
    with AtomicWriter(Path(out_path)) as writer:
        for block in source.iter_blocks(INPUT_COLUMNS, rows, torn=torn, may_be_empty=EMPTY_CELLS):
            n = len(block)
            if keep is None:
                header = block.header
                keep = [i for i, name in enumerate(header) if name not in OUTPUT_COLUMNS]
                getter = operator.itemgetter(*keep)
                out_header = [header[i] for i in keep] + list(OUTPUT_COLUMNS)
                writer.write(rows_to_csv(out_header, ()).encode("utf-8"))
            o = {k: v[:n] for k, v in out.items()}
            kernel.run(*(np.ascontiguousarray(block.values[c]) for c in INPUT_COLUMNS),
                       o["phase"], o["heel_strike"], o["toe_off"], o["walking"], None, o["faults"],
                       o["imu_valid"], o["load_valid"])
            writer.write(_output_lines(block, keep, getter, o).encode("utf-8"))
            t = block.values["t"]
            t_first = float(t[0]) if t_first is None else t_first
            t_last = float(t[-1])
            n_total += n
            hs += int(o["heel_strike"].sum(dtype=np.int64))
            to += int(o["toe_off"].sum(dtype=np.int64))
            walking += int(o["walking"].sum(dtype=np.int64))
            imu += int(o["imu_valid"].sum(dtype=np.int64))
            load += int(o["load_valid"].sum(dtype=np.int64))
            faults.add(t, o["faults"])
        writer.commit()
    duration = t_last - t_first
    return {
        "input": str(in_path),
        "output": str(out_path),
        "samples": n_total,
        "duration_s": round(float(duration), 6),
        "sample_rate_Hz": round(float((n_total - 1) / duration), 3) if n_total > 1 else None,
        "mass_kg": params["wearer.mass_kg"],
        "heel_strikes": hs,
        "toe_offs": to,
        "walking_fraction": round(walking / n_total, 4),
        "imu_used_fraction": round(imu / n_total, 4),
        "load_used_fraction": round(load / n_total, 4),
        "faults": faults.summary(),
        "dropped": torn,
    }


def _output_lines(block, keep, getter, o) -> str:
    """The block's output rows: the kept input cells, then phase (empty when not walking, else
    ``repr``), heel_strike, toe_off, walking: as ``rows_to_csv`` writes them."""
    phase = [repr(x) if x >= 0.0 else "" for x in o["phase"].tolist()]      # NaN, < 0: empty
    new = [f"{p},{h},{t},{w}" for p, h, t, w in zip(phase, o["heel_strike"].tolist(), o["toe_off"].tolist(),
                                                      o["walking"].tolist())]
    lines = block.lines
    if len(keep) == len(block.header) and None not in lines:
        # quote-free lines keeping every cell: csv.writer would write the line as it is
        return "".join([f"{line},{s}\n" for line, s in zip(lines, new)])
    if None not in lines:
        return "".join([f"{','.join(getter(cells))},{s}\n" for cells, s in zip(block.records, new)])
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerows([cells[i] for i in keep] + s.split(",") for cells, s in zip(block.records, new))
    return buf.getvalue()
