"""Apply the real-time settings of a process from configuration, warning where the system refuses.

Each setting is asked for on its own; one that is refused (no CAP_SYS_NICE for
SCHED_FIFO, RLIMIT_MEMLOCK too small for mlockall, a CPU that does not exist)
gives one warning line and the process runs without it, never a crash.  The
wording is the contract docs/deployment.md documents:
``warning: realtime.<field>: <what was refused> (<reason>); running without it``.
"""
from __future__ import annotations

import gc
import os
from typing import List, Sequence

from controller.runtime import _rt

__all__ = ["apply_realtime", "freeze_gc", "current_settings", "hold_cpu_latency"]

_CPU_LATENCY = "/dev/cpu_dma_latency"
_held_latency_fd = None     # the PM QoS request lasts while this stays open (the process's life)


def _warning(field: str, what: str, reason: str) -> str:
    return f"warning: realtime.{field}: {what} ({reason}); running without it"


def hold_cpu_latency(max_us: int) -> str:
    """Ask, for the life of this process, that no CPU enter an idle state slower than ``max_us``
    to leave (PM QoS, /dev/cpu_dma_latency; 0 keeps idle CPUs polling).  What cyclictest does:
    a deep idle state, or a virtual CPU that halts, adds its wake-up time to every tick.
    Returns "" or the reason it was refused."""
    global _held_latency_fd
    try:
        fd = os.open(_CPU_LATENCY, os.O_WRONLY)
        os.write(fd, int(max_us).to_bytes(4, "little", signed=True))
    except OSError as e:
        return f"{e.strerror or e}; needs root or write access to {_CPU_LATENCY}"
    if _held_latency_fd is not None:
        os.close(_held_latency_fd)
    _held_latency_fd = fd
    return ""


def apply_realtime(*, priority: int = 0, cpus: Sequence[int] = (), lock_memory: bool = False,
                   timer_slack_ns: int = 0, cpu_latency_us: int = -1) -> List[str]:
    """Set SCHED_FIFO ``priority`` (0: leave), pin to ``cpus`` (empty: leave), mlockall,
    timer slack (0: leave), the CPUs' idle-state latency (-1: leave) for the calling process.
    Returns the warnings (empty if all took)."""
    warnings: List[str] = []
    if cpu_latency_us >= 0:
        reason = hold_cpu_latency(cpu_latency_us)
        if reason:
            warnings.append(_warning("cpu_latency_us", f"idle-state latency {cpu_latency_us} us refused", reason))
    if cpus:
        try:
            os.sched_setaffinity(0, set(cpus))
        except (OSError, ValueError) as e:
            warnings.append(_warning("cpus", f"pinning to CPU {sorted(cpus)} refused",
                                     getattr(e, "strerror", None) or str(e)))
    if timer_slack_ns:
        reason = _rt.set_timer_slack_ns(timer_slack_ns)
        if reason:
            warnings.append(_warning("timer_slack_ns", f"timer slack {timer_slack_ns} ns refused", reason))
    if lock_memory:
        reason = _rt.lock_memory()
        if reason:
            warnings.append(_warning("lock_memory", "mlockall refused", reason + "; raise RLIMIT_MEMLOCK "
                                     "or grant CAP_IPC_LOCK"))
    if priority:
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
        except OSError as e:
            warnings.append(_warning("priority", f"SCHED_FIFO priority {priority} refused",
                                     (e.strerror or str(e)) + "; grant CAP_SYS_NICE or raise RLIMIT_RTPRIO"))
    return warnings


def freeze_gc() -> None:
    """Collect once, move every object made so far out of the collector's reach, and switch the
    cyclic collector off: no collection can start inside the loop.  Objects made per tick (the
    bus's received frames) are freed by reference counting, which needs no collection."""
    gc.collect()
    gc.freeze()
    gc.disable()


def current_settings() -> dict:
    """What the calling process runs with now (for the start-up report)."""
    policy = os.sched_getscheduler(0)
    return {
        "policy": {os.SCHED_FIFO: "SCHED_FIFO", os.SCHED_RR: "SCHED_RR"}.get(policy, "SCHED_OTHER"),
        "priority": os.sched_getparam(0).sched_priority,
        "cpus": sorted(os.sched_getaffinity(0)),
        "timer_slack_ns": _rt.timer_slack_ns(),
        "gc_enabled": gc.isenabled(),
    }
