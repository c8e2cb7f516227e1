"""A host's compute capacity on real hosts: jobs pinned to the CPUs their lease reserved where the host
offers the machine's own CPUs, capacity declared in ``launch.toml`` (no pinning then), and the bounded
history of finished jobs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from _compute_paglets import PinProbeJob, PinState
from conftest import wait_until

from paglets.core.errors import PagletError
from paglets.runtime.host import Host
from paglets.services.builtin.compute_slots import (
    COMPUTE_SLOTS_AGENT_ID,
    SCHEDULER_STATUS,
    SchedulerStatusRequest,
)

GiB = 1 << 30
MiB = 1 << 20
LAUNCH = """
[launch]
sync_demo_config = false

[[resident_services]]
class = "paglets.services.builtin.compute_slots:ComputeSlotsAgent"
state = {{ loop_interval = 0.2, usage_sample_interval = 0.2, {extra} }}
"""


def launch(directory: Path, extra: str) -> Path:
    path = directory / "launch.toml"
    path.write_text(LAUNCH.format(extra=extra))
    return path


def status(host: Host, **request: bool) -> Any:
    proxy = host.get_proxy(COMPUTE_SLOTS_AGENT_ID)
    assert proxy is not None
    message = SCHEDULER_STATUS.to_message(SchedulerStatusRequest(**request))
    return SCHEDULER_STATUS.decode_reply(proxy.send(message, timeout=10))


def probe(seconds: float = 0.3) -> PinState:
    return PinState(
        seconds=seconds, memory_bytes=64 * MiB, estimated_runtime_seconds=0.5, allow_home_compute=True
    )


def completed(host: Host, agent_id: str) -> PinState | None:
    try:
        state = host.get_state(agent_id, PinState)
    except PagletError:
        return None
    return state if state.compute_status in ("COMPLETED", "FAILED_FINAL") else None


def test_jobs_are_pinned_to_the_cpus_their_lease_reserved(
    make_host: Callable[..., Host], tmp_path: Path
) -> None:
    host = make_host("pin", launch_config=launch(tmp_path, "usage_history_limit = 2"))
    reported = status(host).status
    assert reported.cpu_affinity_supported
    assert not reported.declared_capacity
    machine = set(reported.eligible_cpu_ids)
    assert reported.cpu_slots == len(machine) >= 1
    proxies = [host.create(PinProbeJob, probe()) for _ in range(3)]
    states: list[PinState] = []
    for proxy in proxies:
        wait_until(lambda p=proxy: completed(host, p.agent_id) is not None, timeout=60, interval=0.1)
        states.append(completed(host, proxy.agent_id))  # type: ignore[arg-type]
    for state in states:
        assert state.compute_status == "COMPLETED", state.compute_error
        assert (state.cpu_affinity_supported, state.cpu_affinity_enforced, state.cpu_affinity_error) == (
            True,
            True,
            "",
        )
        assert len(state.cpu_core_ids) == 1
        assert set(state.cpu_core_ids) <= machine
        assert state.affinity == state.cpu_core_ids  # the work ran on the reserved CPU only
    # the history of finished jobs keeps the latest usage_history_limit records
    history = status(host, include_usage_history=True).finished_usage
    assert len(history) == 2
    assert {r.agent_id for r in history} < {p.agent_id for p in proxies}


def test_capacity_declared_in_launch_toml_replaces_the_machines(
    make_host: Callable[..., Host], tmp_path: Path
) -> None:
    extra = f"cpu_slots = 3, memory_limit_bytes = {2 * GiB}, scratch_limit_bytes = {GiB}"
    host = make_host("declared", launch_config=launch(tmp_path, extra))
    reported = status(host).status
    assert reported.declared_capacity
    assert (reported.cpu_slots, reported.free_cpu_cores) == (3, 3)
    assert (reported.memory_total_bytes, reported.work_total_bytes) == (2 * GiB, GiB)
    proxy = host.create(PinProbeJob, probe(0.1))
    wait_until(lambda: completed(host, proxy.agent_id) is not None, timeout=60, interval=0.1)
    state = completed(host, proxy.agent_id)
    assert state is not None
    assert state.compute_status == "COMPLETED", state.compute_error
    # declared slots do not name CPUs: the job is not pinned, and says so
    assert (state.cpu_affinity_supported, state.cpu_affinity_enforced) == (False, False)
    assert state.cpu_affinity_error.startswith("not pinned")
    # the host option wins over launch.toml
    other = make_host("override", launch_config=launch(tmp_path, extra), compute_capacity={"cpu_slots": 1})
    assert status(other).status.cpu_slots == 1
