"""The ``compute-slots`` service at work: operations, the background loop and delivery to jobs.

:class:`ComputeSlotsService` runs inside the service's paglet process. Operations run one at a time (the
paglet's mailbox) and the background loop (the paglet's ``run`` thread) runs beside them; both take
``self._lock`` around the :class:`~paglets.services.builtin._scheduler.Scheduler` (the policy) and the
:class:`~paglets.services.builtin._compute_home.HomeRegistry` (the jobs this host is home of), write the
journal (:mod:`~paglets.services.builtin._compute_journal`) after each change, and do their I/O
(messages to jobs and peers) outside it. Peers' statuses and placement: :mod:`._compute_peers`.

**Loop.** Every ``loop_interval`` seconds, and at once when something was released: leases past their
time or whose job vanished, a grant pass (grants are one-way messages that wake the job), a redirect
pass, timed-out jobs that did not stop, usage samples (every ``usage_sample_interval``), lost tracked
jobs, gossip (every ``gossip_interval`` +-10 %, and soon after the status changed).
"""

from __future__ import annotations

import math
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from paglets.core.agent import ACTIVE
from paglets.core.messages import Message
from paglets.serialization.codec import dataclass_to_wire
from paglets.services.builtin import _compute_report as report
from paglets.services.builtin._compute_home import LOST, HomeRegistry, Lost
from paglets.services.builtin._compute_journal import (
    STORAGE_QUOTA,
    Journal,
    clamp,
    load_journal,
    restart_file,
    save_journal,
    settings_of,
)
from paglets.services.builtin._compute_peers import Peers
from paglets.services.builtin._compute_probes import Declared, UsageSampler, capacity
from paglets.services.builtin._scheduler import Capacity, Ended, Scheduler
from paglets.services.builtin.compute_slots import (
    COMPUTE_SLOTS_AGENT_ID,
    DECISION_SLEEP,
    GRANTED_MESSAGE,
    JOB_FAILED,
    JOB_UPDATE,
    REDIRECT_MESSAGE,
    STOP_MESSAGE,
    TIMEOUT_MESSAGE,
    CancelSlotRequestsReply,
    CancelSlotRequestsRequest,
    CandidateHostsReply,
    CandidateHostsRequest,
    ComputeSlotRequest,
    FinishedJobUsage,
    JobUpdateReply,
    JobUpdateRequest,
    LeaseUpdateRequest,
    ListJobsReply,
    ListJobsRequest,
    SchedulerHostStatus,
    SchedulerStatusReply,
    SchedulerStatusRequest,
    SchedulerStatusSyncReply,
    SchedulerStatusSyncRequest,
    SlotDecisionReply,
    SlotLease,
    SlotReleaseReply,
    SlotReleaseRequest,
    TrackedJob,
    TrackJobReply,
    TrackJobRequest,
)

if TYPE_CHECKING:
    from paglets.services.builtin.compute_slots import ComputeSlotsAgent

__all__ = ["ComputeSlotsService"]

#: Seconds a message to a local job (grant, redirect, stop) may take to be accepted.
DELIVERY_TIMEOUT: Final = 10.0
#: Seconds a report to a job's home may take.
HOME_TIMEOUT: Final = 5.0
#: Seconds a capacity probe is reused.
PROBE_TTL: Final = 0.5
#: Gossip rounds start within +-this fraction of the interval.
JITTER: Final = 0.1
#: Problems kept for the status (the oldest go first).
MAX_ERRORS: Final = 64
#: Seconds a reported problem (a peer that did not answer, a delivery that failed) stays in the status.
ERROR_TTL: Final = 60.0


class ComputeSlotsService:
    """See the module docstring."""

    def __init__(self, paglet: ComputeSlotsAgent) -> None:
        self.paglet = paglet
        self.context = paglet.context
        state = paglet.state
        self.settings = settings_of(state)
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._push = threading.Event()
        self.scheduler = Scheduler(self.settings)
        self.home = HomeRegistry()
        self.history: list[FinishedJobUsage] = []
        self.usage = report.UsageBook()
        self.sampler = UsageSampler()
        #: Problems to report: key -> (message, monotonic time noted); kept ERROR_TTL seconds.
        self.errors: dict[str, tuple[str, float]] = {}
        self.pending_kills: dict[str, float] = {}
        self._capacity: tuple[float, Capacity] | None = None
        self._storage: Any = None
        self.self_url = self.context.address.rstrip("/")
        self.work_base = str(Path(paglet.work_dir()).parent)
        self.peers = Peers(self.context, self.self_url, note=self._note, clear=self._clear)
        self._load_journal()

    # --- settings, capacity, journal -------------------------------------------------------------

    def _declared(self) -> Declared:
        state = self.paglet.state
        declared = Declared(
            cpu_slots=int(clamp(state, "cpu_slots")),
            memory_bytes=int(clamp(state, "memory_limit_bytes")),
            scratch_bytes=int(clamp(state, "scratch_limit_bytes")),
            gpu_count=int(clamp(state, "gpu_count")),
        )
        host_declared = self._health().get("compute_capacity") or {}
        return Declared(
            cpu_slots=int(host_declared.get("cpu_slots") or declared.cpu_slots),
            memory_bytes=int(host_declared.get("memory_bytes") or declared.memory_bytes),
            scratch_bytes=int(host_declared.get("scratch_bytes") or declared.scratch_bytes),
            gpu_count=int(host_declared.get("gpu_count") or declared.gpu_count),
        )

    def _health(self) -> dict[str, Any]:
        try:
            return dict(self.context.host.health())  # type: ignore[attr-defined]
        except Exception:
            return {}

    def capacity(self) -> Capacity:
        now = time.monotonic()
        cached = self._capacity
        if cached is not None and now - cached[0] < PROBE_TTL:
            return cached[1]
        cap = capacity(
            host_name=self.context.name,
            host_url=self.self_url,
            work_dir_base=self.work_base,
            declared=self._declared(),
            pin=bool(self.paglet.state.cpu_affinity),
            health=self._health(),
        )
        self._capacity = (now, cap)
        return cap

    def _store(self) -> Any:
        if self._storage is None:
            self._storage = self.paglet.persistent_storage(quota_bytes=STORAGE_QUOTA)
        return self._storage

    def _load_journal(self) -> None:
        journal, problem = load_journal(self._store())
        if problem:
            self._note("journal", problem, ttl=None)
        if journal is None:
            return
        self.scheduler.restore(journal.queue, journal.leases, journal.last_grant_at)
        limit = self._history_limit()
        self.history = journal.history[-limit:] if limit else []
        self.home.jobs = {job.job_id: job for job in journal.tracked}

    def _history_limit(self) -> int:
        return int(clamp(self.paglet.state, "usage_history_limit"))

    def save(self) -> None:
        """Write the journal (the caller holds the lock)."""
        journal = Journal(
            queue=self.scheduler.queue,
            leases=list(self.scheduler.leases.values()),
            last_grant_at=self.scheduler.last_grant_at,
            history=self.history,
            tracked=list(self.home.jobs.values()),
        )
        try:
            save_journal(self._store(), journal)
            self._clear("journal-write")
        except Exception as exc:
            self._note("journal-write", f"cannot write the journal: {exc}")

    def status(self) -> SchedulerHostStatus:
        with self._lock:
            return self.scheduler.status(self.capacity())

    def _fresh_peers(self, max_age: float) -> list[SchedulerHostStatus]:
        return self.peers.fresh(max_age)

    # --- operations ------------------------------------------------------------------------------

    def candidate_hosts(self, request: CandidateHostsRequest) -> CandidateHostsReply:
        slot = self.scheduler.normalize(request.slot, self.self_url)
        with self._lock:
            errors = self._error_map()
        return self.peers.candidates(request, slot, self.status(), errors)

    def request_slot(self, request: ComputeSlotRequest) -> SlotDecisionReply:
        self.peers.drop_shadow(request)
        with self._lock:
            normalized = self.scheduler.normalize(request, self.self_url)
            reply = self.scheduler.request(normalized, self.capacity(), self._fresh_peers(20.0))
            if reply.decision == DECISION_SLEEP:
                reply = replace(reply, recheck_seconds=clamp(self.paglet.state, "waiting_recheck_seconds"))
            self.save()
        self._push.set()
        return reply

    def release_slot(self, request: SlotReleaseRequest) -> SlotReleaseReply:
        with self._lock:
            lease = self.scheduler.leases.get(request.lease_id)
        if lease is None or (request.agent_id and request.agent_id != lease.request.agent_id):
            return SlotReleaseReply(True)
        final = self._sample(lease)  # a last sample, so short jobs are not reported as idle
        with self._lock:
            ended = self.scheduler.release(request.lease_id, request.agent_id)
            if ended is not None:
                self.usage.add(ended, final)
                self._finish(ended, "released")
            self.save()
        self._wake.set()
        return SlotReleaseReply(True)

    def lease_update(self, request: LeaseUpdateRequest) -> SlotReleaseReply:
        with self._lock:
            ok = self.scheduler.lease_update(request)
            if ok:
                self.save()
        return SlotReleaseReply(ok)

    def scheduler_status(self, request: SchedulerStatusRequest) -> SchedulerStatusReply:
        status = self.status()
        with self._lock:
            queue = list(self.scheduler.queue) if request.include_queue or request.include_jobs else []
            leases = list(self.scheduler.leases.values())
            history = list(self.history) if request.include_usage_history else []
            errors = self._error_map()
        jobs = []
        if request.include_jobs:
            active = self._active_agents()
            for lease in sorted(leases, key=lambda item: (item.request.job_id, item.lease_id)):
                sample = self._sample(lease) if request.include_usage else None
                with self._lock:
                    if sample is not None:
                        self.usage.add(lease, sample)
                    jobs.append(report.runtime_info(lease, self.usage.get(lease.lease_id), sample, active))
        return SchedulerStatusReply(
            status,
            queue if request.include_queue else [],
            leases if request.include_queue or request.include_jobs else [],
            jobs,
            history,
            errors,
        )

    def sync_scheduler_status(self, request: SchedulerStatusSyncRequest) -> SchedulerStatusSyncReply:
        return self.peers.sync(request, self.status())

    def cancel_slot_requests(self, request: CancelSlotRequestsRequest) -> CancelSlotRequestsReply:
        with self._lock:
            removed, ended = self.scheduler.cancel(request)
            for lease in ended:
                self._finish(lease, "cancelled")
            jobs = (
                self.home.cancel(request.job_ids, request.agent_ids, request.all)
                if (request.all or request.job_ids or request.agent_ids)
                else []
            )
            self.save()
        for queued in removed:
            self._deliver(queued.agent_id, Message(STOP_MESSAGE, {"reason": "cancelled"}), wake=True)
        for lease in ended:
            agent = lease.request.agent_id
            self._deliver(agent, Message(STOP_MESSAGE, {"reason": "cancelled"}), wake=False)
            with self._lock:
                self.pending_kills[agent] = time.monotonic() + self.settings.kill_grace
        for job in jobs:
            if job.host_url and job.host_url != self.self_url and job.agent_id:
                self._deliver_remote(
                    job.host_url, job.agent_id, Message(STOP_MESSAGE, {"reason": "cancelled"})
                )
        self._wake.set()
        return CancelSlotRequestsReply(len(removed), len(ended), len(jobs))

    def track_job(self, request: TrackJobRequest) -> TrackJobReply:
        with self._lock:
            reply = self.home.track(request, self.context.name, self.self_url)
            job = self.home.jobs.get(request.job_id)
            if reply.ok and job is not None and job.restartable:
                try:
                    self._store().write_bytes(restart_file(request.job_id), request.restart_state)
                except Exception as exc:
                    self.home.jobs[request.job_id] = replace(
                        job, restartable=False, error=f"not restartable: {exc}"
                    )
            self.save()
        return reply

    def job_update(self, request: JobUpdateRequest) -> JobUpdateReply:
        with self._lock:
            reply, lost = self.home.update(request)
            self.save()
        if lost is not None:
            self._handle_lost(lost)
        return reply

    def list_jobs(self, request: ListJobsRequest) -> ListJobsReply:
        with self._lock:
            return self.home.listing(request)

    # --- the loop --------------------------------------------------------------------------------

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def run(self) -> None:
        peers = int(clamp(self.paglet.state, "peer_batch_size"))
        next_gossip = 0.0
        next_sample = 0.0
        with ThreadPoolExecutor(max_workers=peers, thread_name_prefix="paglets-compute-slots") as pool:
            self._pool = pool
            while not self._stop.is_set():
                try:
                    self.tick()
                    now = time.monotonic()
                    if now >= next_sample:
                        self._sample_all()
                        next_sample = now + clamp(self.paglet.state, "usage_sample_interval")
                    if now >= next_gossip or self._push.is_set():
                        self._push.clear()
                        self.peers.gossip(pool, self.status(), peers)
                        gossip = clamp(self.paglet.state, "gossip_interval")
                        next_gossip = now + gossip * random.uniform(1.0 - JITTER, 1.0 + JITTER)
                except Exception as exc:  # the loop must survive anything one pass runs into
                    self._note("compute-slots-loop", f"loop pass failed: {exc}")
                else:
                    self._clear("compute-slots-loop")
                self._wake.wait(clamp(self.paglet.state, "loop_interval"))
                self._wake.clear()

    def _idle(self) -> bool:
        with self._lock:
            return not (
                self.scheduler.queue
                or self.scheduler.leases
                or self.pending_kills
                or any(job.finished_at == 0.0 for job in self.home.jobs.values())
            )

    def tick(self) -> None:
        """One pass of the loop's scheduling work (see the module docstring)."""
        if self._idle():
            return
        active = self._active_agents()
        with self._lock:
            ended = self.scheduler.expire(active)
            cap = self.capacity()
            grants = self.scheduler.grant_pass(cap)
            redirects = self.scheduler.redirect_pass(cap, self._fresh_peers(20.0))
            for item in ended:
                if item.action not in ("stop", "resend"):
                    self._finish(item.lease, item.reason)
            if ended or grants or redirects:
                self.save()
        for item in ended:
            self._act(item)
        for lease in grants:
            reply = self.scheduler.reply_for(lease, "compute slot granted")
            if not self._deliver(lease.request.agent_id, Message(GRANTED_MESSAGE, _wire(reply)), wake=True):
                with self._lock:
                    if self.scheduler.release(lease.lease_id) is not None:
                        self._finish(lease, "undelivered")
                        self.save()
        for request, reply in redirects:
            if not self._deliver(request.agent_id, Message(REDIRECT_MESSAGE, _wire(reply)), wake=True):
                self._note(request.agent_id, "redirect could not be delivered; its job re-asks later")
        self._kill_overdue(active)
        self._check_lost_jobs()
        if grants or ended:
            self._push.set()

    def _act(self, item: Ended) -> None:
        lease, agent = item.lease, item.lease.request.agent_id
        if item.action == "stop":
            limit = lease.expires_at - lease.granted_at
            self._deliver(agent, Message(TIMEOUT_MESSAGE, {"timeout_seconds": limit}), wake=False)
            return
        if item.action == "resend":
            reply = self.scheduler.reply_for(lease, "compute slot granted")
            self._deliver(agent, Message(GRANTED_MESSAGE, _wire(reply)), wake=True)
            return
        if item.action == "kill":
            self._dispose(agent)
        error = {
            "timeout": f"timed out after {lease.expires_at - lease.granted_at:.0f} s on {lease.host_name}",
            "lost": f"its process on {lease.host_name} vanished",
            "expired": f"its lease on {lease.host_name} expired before it started",
        }.get(item.reason, item.reason)
        status = JOB_FAILED if item.reason == "timeout" else LOST
        self._tell_home(lease.request, status, error)

    def _kill_overdue(self, active: set[str] | None) -> None:
        now = time.monotonic()
        with self._lock:
            due = [a for a, at in self.pending_kills.items() if at <= now]
            for agent in due:
                del self.pending_kills[agent]
        for agent in due:
            if active is None or agent in active:
                self._dispose(agent)

    def _finish(self, lease: SlotLease, reason: str) -> None:
        """Move ``lease`` to the history (caller holds the lock)."""
        self.history.append(self.usage.finish(lease, reason, time.time()))
        limit = self._history_limit()
        self.history = self.history[-limit:] if limit else []
        if lease.pid:
            self.sampler.forget(lease.pid)

    # --- usage -----------------------------------------------------------------------------------

    def _sample(self, lease: SlotLease) -> Any:
        return report.sample_job(self.context, self.sampler, lease)

    def _sample_all(self) -> None:
        with self._lock:
            leases = [lease for lease in self.scheduler.leases.values() if lease.pid]
        for lease in leases:
            sample = self._sample(lease)
            with self._lock:
                if lease.lease_id in self.scheduler.leases:
                    self.usage.add(lease, sample)

    # --- delivery --------------------------------------------------------------------------------

    def _active_agents(self) -> set[str] | None:
        try:
            return {p.agent_id for p in self.context.get_proxies(ACTIVE)}
        except Exception:
            return None

    def _deliver(self, agent_id: str, message: Message, *, wake: bool) -> bool:
        try:
            proxy = self.context.get_proxy(agent_id)
            if proxy is None:
                return False
            proxy.send_oneway(message, activate_if_inactive=wake, timeout=DELIVERY_TIMEOUT)
            return True
        except Exception as exc:
            self._note(agent_id, f"{message.kind} not delivered: {exc}")
            return False

    def _deliver_remote(self, host_url: str, agent_id: str, message: Message) -> None:
        try:
            report.proxy_to(self.context, agent_id, host_url).send_oneway(message, timeout=DELIVERY_TIMEOUT)
        except Exception as exc:
            self._note(agent_id, f"{message.kind} not delivered to {host_url}: {exc}")

    def _dispose(self, agent_id: str) -> None:
        try:
            proxy = self.context.get_proxy(agent_id)
            if proxy is not None:
                proxy.dispose()
        except Exception as exc:
            self._note(agent_id, f"could not end the job's process: {exc}")

    def _note(self, key: str, error: str, *, ttl: float | None = ERROR_TTL) -> None:
        """Report ``error`` under ``key`` for ``ttl`` seconds (None: until cleared)."""
        until = math.inf if ttl is None else time.monotonic() + ttl
        with self._lock:
            self.errors.pop(key[:80], None)
            self.errors[key[:80]] = (error[:300], until)
            while len(self.errors) > MAX_ERRORS:
                self.errors.pop(next(iter(self.errors)))

    def _clear(self, key: str) -> None:
        with self._lock:
            self.errors.pop(key[:80], None)

    def _error_map(self) -> dict[str, str]:
        now = time.monotonic()
        with self._lock:
            for key in [k for k, (_, until) in self.errors.items() if until <= now]:
                del self.errors[key]
            return {key: text for key, (text, _) in sorted(self.errors.items())}

    def _tell_home(self, request: ComputeSlotRequest, status: str, error: str) -> None:
        home = (request.home_host_url or "").rstrip("/")
        if not home or not request.job_id:
            return
        update = JobUpdateRequest(
            job_id=request.job_id,
            agent_id=request.agent_id,
            attempt=request.attempt,
            status=status,
            host_name=self.context.name,
            host_url=self.self_url,
            error=error,
        )
        if home == self.self_url:
            self.job_update(update)
            return
        try:
            proxy = report.proxy_to(self.context, COMPUTE_SLOTS_AGENT_ID, home)
            proxy.send_oneway(JOB_UPDATE.to_message(update), timeout=HOME_TIMEOUT)
        except Exception as exc:
            self._note(f"home {home}", f"could not report job {request.job_id}: {exc}")

    # --- lost jobs (this host as their home) ------------------------------------------------------

    def _check_lost_jobs(self) -> None:
        lost_after = clamp(self.paglet.state, "lost_after_seconds")
        with self._lock:
            found = self.home.check_hosts(self._online, self.context.name, self.self_url, lost_after)
            if found:
                self.save()
        for item in found:
            self._handle_lost(item)

    def _online(self, url: str) -> bool:
        try:
            return bool(self.context.is_host_online(url))
        except Exception:
            return True

    def _handle_lost(self, lost: Lost) -> None:
        job = lost.job
        if lost.restart:
            try:
                proxy = self._restart(job)
            except Exception as exc:
                with self._lock:
                    self.home.restart_failed(job.job_id, f"restart failed: {exc}")
                    self.save()
                self._report_failure(job, f"restart failed: {exc}")
                return
            with self._lock:
                self.home.restarted(job.job_id, proxy.agent_id, self.context.name, self.self_url)
                self.save()
            report.notify_user(
                self.context,
                "warning",
                "compute job restarted",
                f"attempt {job.attempt - 1} was lost ({lost.reason}); attempt {job.attempt} started",
                job.job_id,
            )
            return
        self._report_failure(job, job.error)

    def _restart(self, job: TrackedJob) -> Any:
        from paglets.serialization.codec import codec_for, resolve_qualified_name

        data = self._store().read_bytes(restart_file(job.job_id))
        agent_cls: Any = resolve_qualified_name(job.class_name)
        state_cls = agent_cls.state_class()
        state = codec_for(state_cls).decode(data)
        for name, value in (("compute_attempt", job.attempt), ("excluded_host_urls", job.excluded_host_urls)):
            if hasattr(state, name):
                setattr(state, name, value)
        return self.context.create_paglet(agent_cls, state)

    def _report_failure(self, job: TrackedJob, error: str) -> None:
        report.notify_user(self.context, "error", "compute job failed", error, job.job_id)
        if job.collector_agent_id and job.collector_host_url:
            payload = {
                "group_id": job.group_id,
                "job_key": job.job_key or job.job_id,
                "agent_id": job.agent_id,
                "error": error,
                "stage": "lost",
            }
            self._deliver_remote(
                job.collector_host_url, job.collector_agent_id, Message("job_failure", payload)
            )


def _wire(reply: SlotDecisionReply) -> dict[str, Any]:
    return dataclass_to_wire(reply)
