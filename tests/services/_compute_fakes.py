"""A fake clock, fake host capacities and request builders for the compute-slot policy tests."""

from __future__ import annotations

import itertools
from dataclasses import replace
from typing import Any

from paglets.services.builtin._scheduler import Capacity, Scheduler, Settings
from paglets.services.builtin.compute_slots import ComputeSlotRequest, SchedulerHostStatus

GiB = 1 << 30
URL = "http://127.0.0.1:9001"


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def capacity(
    slots: int = 4, *, memory: int = 16 * GiB, scratch: int = 100 * GiB, load: float = 0.0, **kw: Any
) -> Capacity:
    values: dict[str, Any] = dict(
        host_name="alpha",
        host_url=URL,
        work_dir_base="/tmp/work",
        cpu_ids=tuple(range(slots)),
        cpu_count_logical=slots,
        pin=True,
        memory_total=memory,
        memory_available=memory,
        work_total=scratch,
        work_free=scratch,
        load_average=(load, load, load),
    )
    values.update(kw)
    return Capacity(**values)


def scheduler(clock: Clock, **settings: Any) -> Scheduler:
    counter = itertools.count(1)
    return Scheduler(Settings(**settings), clock=clock, new_id=lambda: f"{next(counter):04d}")


def request(sched: Scheduler, owner: str, cores: int = 1, memory: int = GiB, **kw: Any) -> ComputeSlotRequest:
    """A normalized request of agent ``owner`` (job ``job-<owner>``)."""
    kw.setdefault("job_id", f"job-{owner}")
    raw = ComputeSlotRequest(
        request_id=f"req-{owner}",
        agent_id=owner,
        cpu_cores=cores,
        memory_bytes=memory,
        estimated_runtime_seconds=10.0,
        home_host_url="http://127.0.0.1:9000",
        **kw,
    )
    return sched.normalize(raw, URL)


def peer(
    name: str, port: int, free: int, *, queue: int = 0, slots: int = 4, observed_at: float = 0.0
) -> SchedulerHostStatus:
    return SchedulerHostStatus(
        host_name=name,
        host_url=f"http://127.0.0.1:{port}",
        observed_at=observed_at,
        cpu_count_logical=slots,
        cpu_slots=slots,
        memory_total_bytes=16 * GiB,
        memory_available_bytes=16 * GiB,
        work_total_bytes=100 * GiB,
        work_free_bytes=100 * GiB,
        reserved_cpu_cores=slots - free,
        free_cpu_cores=free,
        free_memory_bytes=16 * GiB,
        free_temp_storage_bytes=100 * GiB,
        queue_length=queue,
    )


def with_free(status: SchedulerHostStatus, free: int) -> SchedulerHostStatus:
    return replace(status, free_cpu_cores=free)
