"""Pinning a job to the CPUs its lease reserved (Linux ``sched_setaffinity``; elsewhere unsupported)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = ["CpuAffinityResult", "apply_current_thread_cpu_affinity"]


@dataclass(frozen=True, slots=True)
class CpuAffinityResult:
    requested_cpu_ids: list[int] = field(default_factory=list)
    supported: bool = False
    enforced: bool = False
    error: str = ""


def apply_current_thread_cpu_affinity(cpu_ids: Sequence[int]) -> CpuAffinityResult:
    """Pin the calling thread (and the threads and processes it starts later) to ``cpu_ids``."""
    requested = sorted({int(i) for i in cpu_ids if int(i) >= 0})
    if not requested:
        return CpuAffinityResult([], supported=hasattr(os, "sched_setaffinity"))
    setter = getattr(os, "sched_setaffinity", None)
    if setter is None:
        return CpuAffinityResult(requested, error="CPU affinity is not supported on this platform")
    try:
        setter(0, requested)
    except OSError as exc:
        return CpuAffinityResult(requested, supported=True, error=str(exc.strerror or exc))
    return CpuAffinityResult(requested, supported=True, enforced=True)
