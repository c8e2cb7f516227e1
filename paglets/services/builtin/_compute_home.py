"""A job's home keeps track of it: where it is, how it is doing, and how to start it again.

Every compute job registers with the ``compute-slots`` service of the host it was submitted on (its
*home*) before it leaves, with the state to restart it from, and reports each step (placing on a host,
waiting there, running, finished). The home keeps these :class:`TrackedJob` records in its journal. When
a job is lost — its host has been offline for ``lost_after`` seconds, or that host's scheduler dropped
its lease because the job vanished — the home starts the job again from its restart state (a new
attempt, excluding the host that lost it) while it has restarts left, and otherwise marks it failed and
tells the user (``user-info`` on the home host) and the job's collector, if it has one. So a job is never
lost silently.

**Fencing.** Every restart counts the attempt up; a report of an older attempt is answered with
``proceed = False`` and that run stops, so a host that comes back after a partition does not run a job
twice for long. A cancelled job's reports get the same answer.

This module is the bookkeeping only (no I/O); the service calls it under its lock and does what the
returned :class:`Lost` items say.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Final

from paglets.services.builtin.compute_slots import (
    FINISHED_JOB_STATUSES,
    JOB_CANCELLED,
    JOB_COMPLETED,
    JOB_FAILED,
    JOB_PLACING,
    JobUpdateReply,
    JobUpdateRequest,
    ListJobsReply,
    ListJobsRequest,
    TrackedJob,
    TrackJobReply,
    TrackJobRequest,
)

__all__ = ["MAX_RESTART_STATE", "MAX_TRACKED", "HomeRegistry", "Lost"]

#: Jobs one home tracks; finished ones are forgotten first (oldest first) when the table is full.
MAX_TRACKED: Final = 10_000
#: Largest restart state a home keeps for one job (bigger jobs are tracked but not restarted).
MAX_RESTART_STATE: Final = 1 << 20
#: Most restarts a job may ask for.
MAX_RESTARTS: Final = 10
#: Status a host's scheduler reports for a job whose lease it dropped because the job vanished.
LOST: Final = "LOST"


@dataclass(frozen=True, slots=True)
class Lost:
    """A tracked job found lost: restart it (``restart`` true, as ``job`` says) or report its failure."""

    job: TrackedJob
    restart: bool
    reason: str


class HomeRegistry:
    """The tracked jobs of one home (see the module docstring). Not thread-safe: the caller locks."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.jobs: dict[str, TrackedJob] = {}
        self._offline_since: dict[str, float] = {}

    def track(self, request: TrackJobRequest, host_name: str, host_url: str) -> TrackJobReply:
        if not request.job_id:
            return TrackJobReply(False, error="track_job needs a job_id")
        now = self.clock()
        known = self.jobs.get(request.job_id)
        if known is not None:
            if known.agent_id != request.agent_id and known.status not in FINISHED_JOB_STATUSES:
                return TrackJobReply(True, attempt=known.attempt)
            attempt = known.attempt
        else:
            attempt = 1
            self._make_room()
        self.jobs[request.job_id] = TrackedJob(
            job_id=request.job_id,
            agent_id=request.agent_id,
            class_name=request.class_name,
            group_id=request.group_id,
            status=JOB_PLACING,
            attempt=attempt,
            host_name=host_name,
            host_url=host_url,
            submitted_at=known.submitted_at if known else now,
            updated_at=now,
            restarts=known.restarts if known else 0,
            max_restarts=max(0, min(MAX_RESTARTS, request.max_restarts)),
            excluded_host_urls=known.excluded_host_urls if known else (),
            restartable=0 < len(request.restart_state) <= MAX_RESTART_STATE and bool(request.state_class),
            collector_agent_id=request.collector_agent_id,
            collector_host_url=request.collector_host_url.rstrip("/"),
            job_key=request.job_key,
        )
        return TrackJobReply(True, attempt=attempt)

    def _make_room(self) -> None:
        if len(self.jobs) < MAX_TRACKED:
            return
        finished = sorted(
            (j for j in self.jobs.values() if j.status in FINISHED_JOB_STATUSES), key=lambda j: j.updated_at
        )
        for job in finished[: max(1, len(self.jobs) - MAX_TRACKED + 1)]:
            self.forget(job.job_id)

    def forget(self, job_id: str) -> None:
        self.jobs.pop(job_id, None)
        self._offline_since.pop(job_id, None)

    def update(self, request: JobUpdateRequest) -> tuple[JobUpdateReply, Lost | None]:
        job = self.jobs.get(request.job_id)
        if job is None:
            return JobUpdateReply(True, True, "not tracked here"), None
        if request.attempt < job.attempt:
            return JobUpdateReply(True, False, f"superseded by attempt {job.attempt}"), None
        if job.status == JOB_CANCELLED:
            return JobUpdateReply(True, False, "cancelled"), None
        if job.status in (JOB_COMPLETED, JOB_FAILED):
            return JobUpdateReply(True, request.status in FINISHED_JOB_STATUSES, "already finished"), None
        now = self.clock()
        if request.status == LOST:
            return JobUpdateReply(True, False, "lost"), self._lost(job, request.error or "its job vanished")
        changed = replace(
            job,
            agent_id=request.agent_id or job.agent_id,
            status=request.status or job.status,
            host_name=request.host_name or job.host_name,
            host_url=(request.host_url or job.host_url).rstrip("/"),
            updated_at=now,
            error=request.error[:500] if request.error else job.error,
            finished_at=now if request.status in FINISHED_JOB_STATUSES else 0.0,
        )
        self.jobs[job.job_id] = changed
        self._offline_since.pop(job.job_id, None)
        return JobUpdateReply(True, True, ""), None

    def cancel(
        self, job_ids: tuple[str, ...], agent_ids: tuple[str, ...], everything: bool
    ) -> list[TrackedJob]:
        now = self.clock()
        cancelled = []
        for job in list(self.jobs.values()):
            if job.status in FINISHED_JOB_STATUSES:
                continue
            if everything or job.job_id in job_ids or job.agent_id in agent_ids:
                job = replace(job, status=JOB_CANCELLED, updated_at=now, finished_at=now, error="cancelled")
                self.jobs[job.job_id] = job
                cancelled.append(job)
        return cancelled

    def listing(self, request: ListJobsRequest) -> ListJobsReply:
        limit = max(1, min(MAX_TRACKED, request.limit))
        jobs = [
            j
            for j in self.jobs.values()
            if (not request.group_id or j.group_id == request.group_id)
            and (not request.job_ids or j.job_id in request.job_ids)
            and (request.include_finished or j.status not in FINISHED_JOB_STATUSES)
        ]
        jobs.sort(key=lambda j: (j.submitted_at, j.job_id))
        return ListJobsReply(self.clock(), jobs[:limit], len(jobs) > limit)

    def check_hosts(
        self, is_online: Callable[[str], bool], self_name: str, self_url: str, lost_after: float
    ) -> list[Lost]:
        """Jobs whose host has been offline for ``lost_after`` seconds (judged lost now). Hosts are asked
        for by name when the job reported one (a host's URL may change when it restarts)."""
        now = self.clock()
        found: list[Lost] = []
        for job in list(self.jobs.values()):
            url = job.host_url.rstrip("/")
            here = (job.host_name and job.host_name == self_name) or url == self_url.rstrip("/")
            if job.status in FINISHED_JOB_STATUSES or not url or here:
                self._offline_since.pop(job.job_id, None)
                continue
            if is_online(job.host_name or url):
                self._offline_since.pop(job.job_id, None)
                continue
            since = self._offline_since.setdefault(job.job_id, now)
            if now - since >= lost_after:
                found.append(self._lost(job, f"its host {job.host_name or url} is offline"))
        return found

    def _lost(self, job: TrackedJob, reason: str) -> Lost:
        self._offline_since.pop(job.job_id, None)
        now = self.clock()
        excluded = tuple(sorted({*job.excluded_host_urls, job.host_url.rstrip("/")} - {""}))
        if job.restartable and job.restarts < job.max_restarts:
            restarted = replace(
                job,
                status=JOB_PLACING,
                attempt=job.attempt + 1,
                restarts=job.restarts + 1,
                updated_at=now,
                error=f"attempt {job.attempt} lost: {reason}",
                excluded_host_urls=excluded,
            )
            self.jobs[job.job_id] = restarted
            return Lost(restarted, True, reason)
        failed = replace(
            job,
            status=JOB_FAILED,
            updated_at=now,
            finished_at=now,
            error=f"lost: {reason}" + ("" if job.restartable else " (no restart state)"),
            excluded_host_urls=excluded,
        )
        self.jobs[job.job_id] = failed
        return Lost(failed, False, reason)

    def restarted(self, job_id: str, agent_id: str, host_name: str, host_url: str) -> None:
        job = self.jobs.get(job_id)
        if job is not None:
            self.jobs[job_id] = replace(job, agent_id=agent_id, host_name=host_name, host_url=host_url)

    def restart_failed(self, job_id: str, error: str) -> None:
        job = self.jobs.get(job_id)
        if job is not None:
            now = self.clock()
            self.jobs[job_id] = replace(job, status=JOB_FAILED, finished_at=now, updated_at=now, error=error)
