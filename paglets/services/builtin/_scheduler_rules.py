"""The rules behind the compute-slot policy, as functions of a host's status and a request (no state).

Used by the :class:`~paglets.services.builtin._scheduler.Scheduler`, by ``candidate_hosts`` and by the
command line (``jobs why`` explains a queue with :func:`blockers`). What each rule means is described in
:mod:`paglets.services.builtin._scheduler`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import replace

from paglets.services.builtin.compute_slots import (
    CancelSlotRequestsRequest,
    ComputeSlotRequest,
    SchedulerHostStatus,
)

__all__ = [
    "blockers",
    "can_ever_satisfy",
    "can_run_now",
    "candidate_score",
    "load_blocked",
    "matches_cancel",
    "norm_tags",
    "redirect_budget",
    "reserve_projected",
    "same_owner",
]


def _tags(status: SchedulerHostStatus) -> set[str]:
    return {t.strip().casefold() for t in status.host_tags if t.strip()}


def _host_policy_rejection(status: SchedulerHostStatus, request: ComputeSlotRequest) -> str:
    tags = _tags(status)
    missing = sorted(set(request.required_host_tags) - tags)
    if missing:
        return "missing required host tags: " + ", ".join(missing)
    excluded = sorted(set(request.excluded_host_tags) & tags)
    if excluded:
        return "excluded host tags present: " + ", ".join(excluded)
    if status.host_name.casefold() in {n.casefold() for n in request.excluded_host_names}:
        return "host name excluded"
    if status.host_url.rstrip("/") in {u.rstrip("/") for u in request.excluded_host_urls}:
        return "host URL excluded"
    return ""


def can_ever_satisfy(status: SchedulerHostStatus, request: ComputeSlotRequest) -> str:
    """Why ``status``'s host could never run ``request`` ("" when it could, once it is free)."""
    if not status.supports_cpu_jobs:
        return "CPU jobs unsupported"
    if request.requires_gpu and not status.supports_gpu_jobs:
        return "GPU jobs unsupported on this host"
    rejection = _host_policy_rejection(status, request)
    if rejection:
        return rejection
    slots = status.cpu_slots or len(status.eligible_cpu_ids) or status.cpu_count_logical
    if slots > 0 and request.cpu_cores > slots:
        return f"needs {request.cpu_cores} CPU cores, the host offers {slots}"
    if status.memory_total_bytes > 0 and request.memory_bytes > status.memory_total_bytes:
        return f"needs {_gib(request.memory_bytes)} memory, the host offers {_gib(status.memory_total_bytes)}"
    if status.work_total_bytes > 0 and request.temp_storage_bytes > status.work_total_bytes:
        return (
            f"needs {_gib(request.temp_storage_bytes)} scratch space, the host offers "
            f"{_gib(status.work_total_bytes)}"
        )
    return ""


def _gib(value: int) -> str:
    return f"{value / (1 << 30):.2f} GiB"


def load_blocked(status: SchedulerHostStatus) -> str:
    limit = status.max_load_per_cpu
    if limit > 0 and status.external_load_per_cpu >= limit:
        return f"external load per CPU {status.external_load_per_cpu:.2f} >= limit {limit:.2f}"
    return ""


def blockers(status: SchedulerHostStatus, request: ComputeSlotRequest) -> list[str]:
    """What keeps ``request`` from running on ``status``'s host now (empty: it could run)."""
    found: list[str] = []
    if status.errors:
        found.append("host-status")
    if load_blocked(status):
        found.append("load")
    if request.cpu_cores > status.free_cpu_cores:
        found.append("cpu")
    if request.memory_bytes > status.free_memory_bytes:
        found.append("memory")
    if request.temp_storage_bytes > status.free_temp_storage_bytes:
        found.append("temp-storage")
    if request.requires_gpu and status.gpu_count and status.reserved_gpus >= status.gpu_count:
        found.append("gpu")
    return found


def can_run_now(status: SchedulerHostStatus, request: ComputeSlotRequest) -> bool:
    return not can_ever_satisfy(status, request) and not blockers(status, request)


def candidate_score(status: SchedulerHostStatus, request: ComputeSlotRequest | None = None) -> float:
    """Lower is better: the backlog per slot (reserved and queued cores over the slots) + external load
    per CPU + memory and scratch pressure - 0.25 per preferred tag (at most 0.75)."""
    slots = status.cpu_slots or len(status.eligible_cpu_ids) or status.cpu_count_logical or 1
    backlog = (status.reserved_cpu_cores + status.queued_cpu_cores) / slots
    memory = 1.0 - status.free_memory_bytes / status.memory_total_bytes if status.memory_total_bytes else 1.0
    storage = (
        1.0 - status.free_temp_storage_bytes / status.work_total_bytes if status.work_total_bytes else 1.0
    )
    bonus = 0.0
    if request is not None and request.preferred_host_tags:
        bonus = min(0.75, 0.25 * len(set(request.preferred_host_tags) & _tags(status)))
    score = backlog + max(0.0, status.external_load_per_cpu) + max(0.0, memory) + max(0.0, storage)
    return round(max(0.0, score - bonus), 6)


def redirect_budget(queue_length: int, max_fraction: float, max_per_tick: int) -> int:
    if queue_length <= 0 or max_per_tick <= 0 or max_fraction <= 0:
        return 0
    anchor = 1 if queue_length == 1 else queue_length - 1
    return max(0, min(anchor, max(1, math.ceil(queue_length * max_fraction)), max_per_tick))


def reserve_projected(status: SchedulerHostStatus, request: ComputeSlotRequest) -> SchedulerHostStatus:
    """``status`` as it will be once ``request`` runs there (a shadow reservation)."""
    cores = max(1, request.cpu_cores)
    if cores > status.free_cpu_cores:  # it will wait there: one more in the queue
        return replace(
            status, queue_length=status.queue_length + 1, queued_cpu_cores=status.queued_cpu_cores + cores
        )
    return replace(
        status,
        active_leases=status.active_leases + 1,
        reserved_cpu_cores=status.reserved_cpu_cores + cores,
        reserved_memory_bytes=status.reserved_memory_bytes + request.memory_bytes,
        reserved_temp_storage_bytes=status.reserved_temp_storage_bytes + request.temp_storage_bytes,
        free_cpu_cores=max(0, status.free_cpu_cores - cores),
        free_memory_bytes=max(0, status.free_memory_bytes - request.memory_bytes),
        free_temp_storage_bytes=max(0, status.free_temp_storage_bytes - request.temp_storage_bytes),
    )


def same_owner(a: ComputeSlotRequest, b: ComputeSlotRequest) -> bool:
    return bool(
        (a.agent_id and a.agent_id == b.agent_id)
        or (a.request_id and a.request_id == b.request_id)
        or (a.job_id and a.job_id == b.job_id)
    )


def matches_cancel(request: ComputeSlotRequest, cancel: CancelSlotRequestsRequest) -> bool:
    return bool(
        cancel.all
        or (request.request_id and request.request_id in cancel.request_ids)
        or (request.agent_id and request.agent_id in cancel.agent_ids)
        or (request.job_id and request.job_id in cancel.job_ids)
    )


def norm_tags(tags: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted({str(t).strip().casefold() for t in tags if str(t).strip()}))
