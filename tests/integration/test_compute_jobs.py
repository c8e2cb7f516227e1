"""Compute jobs on real hosts: placement, validation, refusals, timeouts, cancellation, a full disk, restarts.

Two embedded hosts (alpha, beta) share the module; each declares 2 compute slots and runs the
``compute-slots`` and ``user-info`` services with fast loops. Jobs are the paglets of
``_compute_paglets.py`` (real processes, real CPU work).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from _compute_paglets import (
    ArtifactGroupJob,
    ArtifactGroupState,
    DiskFullJob,
    DiskFullState,
    SpinJob,
    SpinState,
    artifact_content,
)
from conftest import wait_until

from paglets.compute import submit_compute_job_group
from paglets.core.errors import PagletError
from paglets.core.messages import Message
from paglets.runtime.host import Host
from paglets.services.builtin.compute_slots import (
    CANCEL_SLOT_REQUESTS,
    COMPUTE_SLOTS_AGENT_ID,
    LIST_JOBS,
    SCHEDULER_STATUS,
    CancelSlotRequestsRequest,
    ListJobsRequest,
    SchedulerStatusRequest,
)
from paglets.services.builtin.user_info import READ_USER_INFO, USER_INFO_AGENT_ID, UserInfoReadRequest

MiB = 1 << 20
LAUNCH = """
[launch]
sync_demo_config = false

[[resident_services]]
class = "paglets.services.builtin.compute_slots:ComputeSlotsAgent"
state = {{ loop_interval = 0.2, gossip_interval = 0.5, timeout_kill_grace = 2.0, \
lease_reclaim_seconds = {reclaim} }}

[[resident_services]]
class = "paglets.services.builtin.user_info:UserInfoAgent"
state = {{ echo = false }}
"""


def launch_file(directory: Path, *, reclaim: float = 5.0) -> Path:
    path = directory / "launch.toml"
    path.write_text(LAUNCH.format(reclaim=reclaim))
    return path


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Host]]:
    root = tmp_path_factory.mktemp("compute")
    config = launch_file(root)
    hosts: dict[str, Host] = {}
    try:
        for name in ("alpha", "beta"):
            options: dict[str, Any] = {
                "persistence_dir": root / name,
                "launch_config": config,
                "compute_capacity": {"cpu_slots": 2},
                "mesh_gossip_interval": 0.2,
                "mesh_offline_after": 2.0,
            }
            if hosts:
                options["peers"] = [hosts["alpha"].address]
            host = Host(name, **options)
            host.start_background()
            hosts[name] = host
        wait_until(lambda: all(len(h.list_hosts(online_only=True)) == 2 for h in hosts.values()), timeout=20)
        yield hosts
    finally:
        for host in hosts.values():
            host.stop()


def job_state(host: Host, agent_id: str, cls: type = SpinState) -> Any:
    """The job's state on ``host`` (active or asleep); None while it starts or moves."""
    try:
        return host.get_state(agent_id, cls)
    except PagletError:
        return None


def compute_status(host: Host, agent_id: str) -> str:
    state = job_state(host, agent_id)
    return "" if state is None else str(state.compute_status)


def where(mesh: dict[str, Host], agent_id: str) -> Host | None:
    for host in mesh.values():
        if any(a["agent_id"] == agent_id for a in host.list_agents(inactive=True)):
            return host
    return None


def status_of(mesh: dict[str, Host], agent_id: str, cls: type = SpinState) -> Any:
    host = where(mesh, agent_id)
    return None if host is None else job_state(host, agent_id, cls)


def service(host: Host, operation: Any, request: Any) -> Any:
    proxy = host.get_proxy(COMPUTE_SLOTS_AGENT_ID)
    assert proxy is not None
    return operation.decode_reply(proxy.send(operation.to_message(request), timeout=10))


def spin(seconds: float, **kw: Any) -> SpinState:
    kw.setdefault("memory_bytes", 64 * MiB)
    kw.setdefault("estimated_runtime_seconds", max(0.1, seconds))
    kw.setdefault("allow_home_compute", True)
    return SpinState(seconds=seconds, **kw)


def finished(mesh: dict[str, Host], agent_id: str) -> Callable[[], bool]:
    def check() -> bool:
        state = status_of(mesh, agent_id)
        return state is not None and state.compute_status in ("COMPLETED", "FAILED_FINAL")

    return check


def test_jobs_spread_over_the_hosts_and_complete(mesh: dict[str, Host]) -> None:
    alpha = mesh["alpha"]
    # long enough that no job ends before all four are placed, also where a paglet process starts slower
    proxies = [alpha.create(SpinJob, spin(3.0)) for _ in range(4)]
    for proxy in proxies:
        wait_until(finished(mesh, proxy.agent_id), timeout=60, interval=0.1)
    states = [status_of(mesh, p.agent_id) for p in proxies]
    assert [s.compute_status for s in states] == ["COMPLETED"] * 4, [s.compute_error for s in states]
    assert sorted(s.ran_on for s in states) == ["alpha", "alpha", "beta", "beta"]
    jobs = service(alpha, LIST_JOBS, ListJobsRequest()).jobs
    mine = {j.agent_id: j for j in jobs}
    assert all(mine[p.agent_id].status == "COMPLETED" for p in proxies)
    history = [
        record
        for host in mesh.values()
        for record in service(
            host, SCHEDULER_STATUS, SchedulerStatusRequest(include_usage_history=True)
        ).finished_usage
    ]
    ours = [r for r in history if r.agent_id in mine]
    assert len(ours) == 4
    assert all(
        r.finish_reason == "released" and r.sample_count >= 1 and r.max_memory_rss_bytes > 0 for r in ours
    )


def test_bad_estimates_fail_before_any_scheduler_call(mesh: dict[str, Host]) -> None:
    alpha = mesh["alpha"]
    proxy = alpha.create(SpinJob, spin(0.1, memory_bytes=0))
    wait_until(finished(mesh, proxy.agent_id), timeout=20)
    state = job_state(alpha, proxy.agent_id)
    assert state.compute_status == "FAILED_FINAL"
    assert state.compute_error == "memory_bytes must be greater than 0, got 0"
    tracked = service(alpha, LIST_JOBS, ListJobsRequest()).jobs
    assert proxy.agent_id not in {j.agent_id for j in tracked}  # never reached the scheduler


def test_a_job_no_host_could_ever_run_is_refused_at_once_with_reasons(mesh: dict[str, Host]) -> None:
    alpha = mesh["alpha"]
    started = time.monotonic()
    big = alpha.create(SpinJob, spin(0.1, cpu_cores=64))
    gpu = alpha.create(SpinJob, spin(0.1, requires_gpu=True))
    for proxy in (big, gpu):
        wait_until(finished(mesh, proxy.agent_id), timeout=20)
    assert time.monotonic() - started < 10
    big_state, gpu_state = job_state(alpha, big.agent_id), job_state(alpha, gpu.agent_id)
    assert big_state.compute_status == "FAILED_FINAL"
    assert big_state.compute_error == (
        "no host can run this job (alpha: needs 64 CPU cores, the host offers 2; "
        "beta: needs 64 CPU cores, the host offers 2)"
    )
    assert "GPU jobs unsupported on this host" in gpu_state.compute_error


def _pid(mesh: dict[str, Host], agent_id: str) -> tuple[Host, int]:
    for host in mesh.values():
        reply = service(host, SCHEDULER_STATUS, SchedulerStatusRequest(include_jobs=True))
        for job in reply.active_jobs:
            if job.agent_id == agent_id and job.pid:
                return host, job.pid
    raise AssertionError("not running")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _running(mesh: dict[str, Host], agent_id: str) -> bool:
    try:
        _pid(mesh, agent_id)
    except AssertionError:
        return False
    return True


def test_a_job_past_its_timeout_is_stopped_and_reported(mesh: dict[str, Host]) -> None:
    alpha = mesh["alpha"]
    proxy = alpha.create(SpinJob, spin(120.0, timeout_seconds=1.5))
    wait_until(lambda: _running(mesh, proxy.agent_id), timeout=20, interval=0.05)
    host, pid = _pid(mesh, proxy.agent_id)
    wait_until(lambda: not _alive(pid), timeout=20, interval=0.05)
    assert host.get_proxy(proxy.agent_id) is None  # the job ended itself
    (job,) = [j for j in service(alpha, LIST_JOBS, ListJobsRequest()).jobs if j.agent_id == proxy.agent_id]
    assert job.status == "FAILED_FINAL"
    assert job.error.startswith("timed out after 2 s on") or job.error.startswith("timed out after 1 s on")
    history = service(
        host, SCHEDULER_STATUS, SchedulerStatusRequest(include_usage_history=True)
    ).finished_usage
    assert any(r.agent_id == proxy.agent_id for r in history)
    wait_until(
        lambda: service(host, SCHEDULER_STATUS, SchedulerStatusRequest()).status.reserved_cpu_cores == 0
    )


def test_cancelling_a_running_job_stops_its_process(mesh: dict[str, Host]) -> None:
    alpha = mesh["alpha"]
    proxy = alpha.create(SpinJob, spin(120.0))
    wait_until(lambda: _running(mesh, proxy.agent_id), timeout=20, interval=0.05)
    _, pid = _pid(mesh, proxy.agent_id)
    job_id = f"compute-job-{proxy.agent_id}"
    replies = [
        service(h, CANCEL_SLOT_REQUESTS, CancelSlotRequestsRequest(job_ids=(job_id,), include_leases=True))
        for h in mesh.values()
    ]
    assert sum(r.cancelled_leases for r in replies) == 1
    assert sum(r.cancelled_jobs for r in replies) == 1  # at its home
    wait_until(lambda: not _alive(pid), timeout=20, interval=0.05)
    (job,) = [j for j in service(alpha, LIST_JOBS, ListJobsRequest()).jobs if j.agent_id == proxy.agent_id]
    assert job.status == "CANCELLED"


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_a_full_disk_fails_that_job_only(mesh: dict[str, Host]) -> None:
    alpha = mesh["alpha"]
    full = alpha.create(DiskFullJob, DiskFullState(memory_bytes=MiB, estimated_runtime_seconds=1))
    fine = alpha.create(SpinJob, spin(0.5))
    wait_until(finished(mesh, fine.agent_id), timeout=30)
    wait_until(
        lambda: (s := status_of(mesh, full.agent_id, DiskFullState)) and s.compute_status == "FAILED_FINAL"
    )
    state = status_of(mesh, full.agent_id, DiskFullState)
    assert state.compute_error == "OSError: [Errno 28] No space left on device"
    assert status_of(mesh, fine.agent_id).compute_status == "COMPLETED"


def test_queue_order_and_leases_survive_a_host_restart(
    make_host: Callable[..., Host], tmp_path: Path
) -> None:
    config = launch_file(tmp_path, reclaim=20.0)
    options = {
        "launch_config": config,
        "compute_capacity": {"cpu_slots": 1},
        "persistence_dir": tmp_path / "solo",
    }
    solo = make_host("solo", **options)
    running = solo.create(SpinJob, spin(3.0))
    wait_until(lambda: compute_status(solo, running.agent_id) == "RUNNING", timeout=20, interval=0.05)
    waiting = [solo.create(SpinJob, spin(0.5)).agent_id for _ in range(3)]

    def queue() -> list[str]:
        reply = service(solo, SCHEDULER_STATUS, SchedulerStatusRequest(include_queue=True))
        return [r.agent_id for r in reply.queued_requests]

    # the jobs reach the scheduler in whatever order their processes get there: that is the queue's order
    wait_until(lambda: sorted(queue()) == sorted(waiting), timeout=20, interval=0.05)
    order = queue()
    (lease_before,) = service(solo, SCHEDULER_STATUS, SchedulerStatusRequest(include_queue=True)).leases
    solo.shutdown()
    again = make_host("solo", **options)
    # the queue comes back in its order, and the running job gets its lease back when it restarts
    assert queue_of(again) == order
    wait_until(lambda: compute_status(again, running.agent_id) == "RUNNING", timeout=30, interval=0.05)
    (lease_after,) = service(again, SCHEDULER_STATUS, SchedulerStatusRequest(include_queue=True)).leases
    assert lease_after.lease_id == lease_before.lease_id

    def report() -> str:
        """What the host knows of the jobs (for a failure message)."""
        jobs = {
            a: (s.compute_status, s.compute_error) if (s := job_state(again, a)) else None
            for a in [running.agent_id, *waiting]
        }
        tracked = [
            (j.agent_id[:6], j.status, j.error) for j in service(again, LIST_JOBS, ListJobsRequest()).jobs
        ]
        status = service(again, SCHEDULER_STATUS, SchedulerStatusRequest(include_queue=True))
        return f"jobs={jobs} tracked={tracked} queue={status.queued_requests} leases={status.leases}"

    for agent_id in [running.agent_id, *waiting]:
        try:
            wait_until(lambda a=agent_id: compute_status(again, a) == "COMPLETED", timeout=60, interval=0.1)
        except AssertionError:
            raise AssertionError(report()) from None


def queue_of(host: Host) -> list[str]:
    reply = service(host, SCHEDULER_STATUS, SchedulerStatusRequest(include_queue=True))
    return [r.agent_id for r in reply.queued_requests]


def test_messages_reach_a_waiting_job(mesh: dict[str, Host]) -> None:
    """A message to a job asleep in the queue is kept for it; the job still runs when its slot comes."""
    beta = mesh["beta"]
    blockers = [
        beta.create(SpinJob, spin(4.0, allow_home_compute=True, excluded_host_names=("alpha",)))
        for _ in range(2)
    ]
    for proxy in blockers:
        wait_until(lambda p=proxy: _running(mesh, p.agent_id), timeout=20, interval=0.05)
    sleeper = beta.create(SpinJob, spin(0.2, excluded_host_names=("alpha",)))
    wait_until(lambda: queue_of(beta) == [sleeper.agent_id], timeout=20, interval=0.05)

    def asleep() -> bool:
        listed = beta.list_agents(active=True, inactive=True)
        return any(a["agent_id"] == sleeper.agent_id and a["active"] is False for a in listed)

    wait_until(asleep, timeout=20, interval=0.05)  # it waits as an inactive paglet, not a process
    assert status_of(mesh, sleeper.agent_id).compute_status == "WAITING_FOR_SLOT"
    reply = sleeper.send(Message("compute_usage_paths"), timeout=10)
    assert reply == {"paths": []} or reply.get("queued") is True, reply
    wait_until(finished(mesh, sleeper.agent_id), timeout=60)
    assert status_of(mesh, sleeper.agent_id).compute_status == "COMPLETED"


def test_a_job_group_gathers_results_and_artifacts_and_tells_the_user(
    mesh: dict[str, Host], tmp_path: Path
) -> None:
    alpha = mesh["alpha"]
    sizes = [300_000, 0, 0]
    states = [
        ArtifactGroupState(
            seconds=0.2,
            artifact_bytes=size,
            memory_bytes=64 * MiB,
            estimated_runtime_seconds=0.5,
            allow_home_compute=True,
        )
        for size in sizes
    ]
    states.append(ArtifactGroupState(memory_bytes=0, estimated_runtime_seconds=0.5))  # refused: fails
    submission = submit_compute_job_group(alpha, ArtifactGroupJob, states)
    group_id, collector = submission.group_id, submission.collector
    assert len(submission.jobs) == 4
    assert not submission.creation_errors

    def summary() -> dict[str, Any]:
        return dict(collector.send(Message("summary"), timeout=10))

    wait_until(lambda: summary()["status"] == "COMPLETE", timeout=60, interval=0.1)
    done = summary()
    assert (done["expected_count"], done["completed_count"], done["failed_count"]) == (4, 3, 1), done
    keys = [f"{group_id}-{i:04d}" for i in range(4)]
    assert done["failures"][keys[3]]["error"] == "memory_bytes must be greater than 0, got 0"
    results = done["results"]
    assert {results[k]["result"]["host"] for k in keys[:3]} <= {"alpha", "beta"}
    artifact = results[keys[0]]["result"]["artifact"]
    assert "artifact" not in results[keys[1]]["result"]
    out = tmp_path / "result.bin"
    alpha.download_artifact(artifact, out)
    assert out.read_bytes() == artifact_content(sizes[0])
    # a second report of a job is kept as a duplicate; the first one stays
    collector.send(Message("job_result", {"job_key": keys[1], "result": {"host": "elsewhere"}}), timeout=10)
    again = summary()
    assert again["results"][keys[1]]["result"]["host"] != "elsewhere"
    assert [d["result"]["host"] for d in again["duplicate_reports"]] == ["elsewhere"]

    def notices() -> list[Any]:
        proxy = alpha.get_proxy(USER_INFO_AGENT_ID)
        if proxy is None:
            return []
        message = READ_USER_INFO.to_message(UserInfoReadRequest(job_id=group_id))
        reply = READ_USER_INFO.decode_reply(proxy.send(message, timeout=10))
        return [e for e in reply.entries if e.title == "compute-group.done"]

    wait_until(lambda: len(notices()) == 1, timeout=20, interval=0.1)
    (notice,) = notices()
    assert notice.severity == "warning"  # one job failed
    assert notice.text == f"group {group_id}: 3 of 4 jobs succeeded, 1 failed"
