"""Shared bits of the benchmarks: argument parsing, timing, output."""
from __future__ import annotations

import argparse
import json
import platform
import time
from typing import Callable, Dict

import numpy as np


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    return p


def per_call_ns(fn: Callable[[], object], calls: int, repeats: int = 5) -> Dict[str, float]:
    """Median and best of ``repeats`` timings of ``calls`` calls, in ns per call."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter_ns()
        for _ in range(calls):
            fn()
        times.append((time.perf_counter_ns() - t0) / calls)
    return {"median_ns": round(float(np.median(times)), 1), "best_ns": round(float(min(times)), 1)}


def emit(result: Dict, as_json: bool) -> None:
    result.setdefault("machine", {"python": platform.python_version(), "cpu": platform.processor() or platform.machine()})
    if as_json:
        print(json.dumps(result))
        return
    for key, value in result.items():
        print(f"{key:<34} {value}")
