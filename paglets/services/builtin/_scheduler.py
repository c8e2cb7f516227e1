"""The compute-slot policy: one host's queue and leases, and every rule that changes them. No I/O.

:class:`Scheduler` is driven by the ``compute-slots`` service with a :class:`Capacity` (what the host
offers now: a probe with the declared capacity applied) and the peers' statuses; it reads time only from
the clock it was given, so the unit tests run it with a fake clock and fake probes.

**Admission** is accounting: a request fits when its cores, memory and scratch space fit what the host
offers minus what its leases reserve (free memory is also capped by what the machine has available).
Requests are granted in queue order; a later, smaller request may overtake one that does not fit
(backfill) until that one has waited ``backfill_limit`` seconds, after which nothing overtakes it.

**Grants** happen when they can: at once for a request that fits, and in a grant pass after every
release, cancellation or expiry (the service runs one at once) and every loop tick. One pass grants at
most ``max_grants_per_tick`` (waking many sleeping paglets at once only spikes the host). Optional, off
by default: ``grant_interval`` spaces grants, and a grant within that interval of the previous one
needs *burst headroom* (``burst_resource_headroom_factor`` times the request free, external load per CPU
below ``burst_load_per_cpu``); ``max_load_per_cpu`` holds grants while the load of everything *except*
this host's leased jobs is at or above it. paglets 2.0 spaced grants 15 s apart and gated on the raw
load average; see ``docs/compute.md`` for why that is not the default here.

**Redirects** send queued requests that cannot run here to a peer that can run them now: at most
min(queue - 1 (1 for a queue of one), ceil(queue x ``max_redirect_fraction``), ``max_redirects_per_tick``)
per pass, never a request redirected within ``redirect_cooldown`` seconds, never straight back to the
host that redirected it, never more than ``max_redirects`` times; each redirect reserves its request on
the projected capacity of its target so one pass does not send everything to one peer.

**Leases** end by release, cancellation or their job's timeout (``expires_at``): a job past it is told to
stop, and ended ``kill_grace`` seconds later if it did not. A lease whose job has not reported its process
yet (it is waking) or that was restored from the journal waits ``lease_reclaim`` seconds for it; a lease
whose job is gone is dropped (``lost``).

**One owner per request**: a request with the request id, agent id or job id of a queued request
replaces it in place (its queue position is kept); one whose owner holds a lease gets that lease back.
A request of an older attempt of a job than the one queued or leased is refused.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any, Final

from paglets.services.builtin._scheduler_rules import (
    blockers,
    can_ever_satisfy,
    can_run_now,
    candidate_score,
    load_blocked,
    matches_cancel,
    norm_tags,
    redirect_budget,
    reserve_projected,
    same_owner,
)
from paglets.services.builtin.compute_slots import (
    DECISION_REDIRECT,
    DECISION_REJECTED,
    DECISION_RUN_NOW,
    DECISION_SLEEP,
    CancelSlotRequestsRequest,
    ComputeSlotRequest,
    LeaseUpdateRequest,
    SchedulerHostStatus,
    SlotDecisionReply,
    SlotLease,
)

__all__ = [
    "MAX_QUEUE",
    "Capacity",
    "Ended",
    "Scheduler",
    "Settings",
    "blockers",
    "can_ever_satisfy",
    "can_run_now",
    "candidate_score",
    "load_blocked",
    "matches_cancel",
    "redirect_budget",
    "reserve_projected",
    "same_owner",
]

#: Requests one host queues at most; beyond that a request is refused (the journal stays small).
MAX_QUEUE: Final = 4096
#: Leases one host holds at most (a host has at most a few hundred CPUs).
MAX_LEASES: Final = 4096
#: Seconds a lease whose job vanished is kept before it is dropped (the job may be moving its process).
LOST_GRACE: Final = 5.0
#: Times a grant is sent again to a job that did not start within ``lease_reclaim`` (a grant that
#: reached a job while it was going to sleep is lost with that process).
MAX_GRANT_RESENDS: Final = 2


@dataclass(frozen=True, slots=True)
class Capacity:
    """What the host offers right now (a probe, with the declared capacity applied)."""

    host_name: str
    host_url: str
    work_dir_base: str = ""
    #: The slot ids: real CPU ids when ``pin`` is true, else ``0 .. slots-1``.
    cpu_ids: tuple[int, ...] = ()
    cpu_count_logical: int = 0
    pin: bool = False
    declared: bool = False
    memory_total: int = 0
    memory_available: int = 0
    work_total: int = 0
    work_free: int = 0
    load_average: tuple[float, ...] = ()
    cpu_percent: float = 0.0
    gpu_count: int = 0
    tags: tuple[str, ...] = ()
    properties: dict[str, str] = field(default_factory=dict)
    errors: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Settings:
    grant_interval: float = 0.0
    max_grants_per_tick: int = 8
    max_load_per_cpu: float = 0.0
    max_active_leases: int = 0
    max_redirects_per_tick: int = 4
    max_redirect_fraction: float = 0.5
    redirect_cooldown: float = 30.0
    max_redirects: int = 3
    burst_load_per_cpu: float = 0.5
    burst_resource_headroom_factor: float = 2.0
    backfill_limit: float = 60.0
    supports_gpu_jobs: bool = False
    timeout_factor: float = 3.0
    timeout_floor: float = 60.0
    kill_grace: float = 5.0
    lease_reclaim: float = 30.0


@dataclass(frozen=True, slots=True)
class Ended:
    """A lease that ended (or must be acted on) in :meth:`Scheduler.expire`.

    ``action``: ``"stop"`` (tell the job its time is up), ``"kill"`` (end the job's process),
    ``"resend"`` (send the grant again: the job has not started), or ``"dropped"`` (the lease is gone;
    ``reason`` says why: ``timeout``, ``lost``, ``expired``).
    """

    lease: SlotLease
    action: str
    reason: str


class Scheduler:
    """One host's queue and leases (see the module docstring). Not thread-safe: the caller locks."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.time,
        new_id: Callable[[], str] = lambda: uuid.uuid4().hex,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.new_id = new_id
        self.queue: list[ComputeSlotRequest] = []
        self.leases: dict[str, SlotLease] = {}
        self.last_grant_at = 0.0

    # --- views ------------------------------------------------------------------------------------

    def reserved(self) -> tuple[int, int, int]:
        leases = self.leases.values()
        return (
            sum(max(1, lease.request.cpu_cores) for lease in leases),
            sum(lease.request.memory_bytes for lease in leases),
            sum(lease.request.temp_storage_bytes for lease in leases),
        )

    def status(self, cap: Capacity) -> SchedulerHostStatus:
        """The host's scheduler status under ``cap`` (what ``scheduler_status`` and gossip carry)."""
        s = self.settings
        cores, memory, temp = self.reserved()
        slots = len(cap.cpu_ids)
        free_cores = max(0, slots - cores)
        if s.max_active_leases > 0 and len(self.leases) >= s.max_active_leases:
            free_cores = 0
        free_memory = max(0, min(cap.memory_available, cap.memory_total - memory))
        free_temp = max(0, cap.work_free - temp)
        cpus = max(1, cap.cpu_count_logical)
        load1 = cap.load_average[0] if cap.load_average else 0.0
        # the load our own leased jobs cause is accounted for by their reservations: only the rest gates
        running = sum(max(1, lease.request.cpu_cores) for lease in self.leases.values() if lease.pid)
        external = max(0.0, load1 - running) / cpus
        return SchedulerHostStatus(
            host_name=cap.host_name,
            host_url=cap.host_url.rstrip("/"),
            observed_at=self.clock(),
            supports_gpu_jobs=s.supports_gpu_jobs or cap.gpu_count > 0,
            cpu_count_logical=cap.cpu_count_logical,
            cpu_affinity_supported=cap.pin,
            eligible_cpu_ids=list(cap.cpu_ids) if cap.pin else [],
            cpu_percent=cap.cpu_percent,
            load_average=list(cap.load_average),
            load_per_cpu=round(load1 / cpus, 4),
            max_load_per_cpu=s.max_load_per_cpu,
            memory_total_bytes=cap.memory_total,
            memory_available_bytes=cap.memory_available,
            work_dir_base=cap.work_dir_base,
            work_total_bytes=cap.work_total,
            work_free_bytes=cap.work_free,
            queue_length=len(self.queue),
            active_leases=len(self.leases),
            host_tags=tuple(cap.tags),
            host_properties=dict(cap.properties),
            reserved_cpu_cores=cores,
            reserved_memory_bytes=memory,
            reserved_temp_storage_bytes=temp,
            free_cpu_cores=free_cores,
            free_memory_bytes=free_memory,
            free_temp_storage_bytes=free_temp,
            errors=list(cap.errors),
            cpu_slots=slots,
            declared_capacity=cap.declared,
            gpu_count=cap.gpu_count,
            reserved_gpus=sum(1 for lease in self.leases.values() if lease.request.requires_gpu),
            queued_cpu_cores=sum(max(1, r.cpu_cores) for r in self.queue),
            external_load_per_cpu=round(external, 4),
        )

    def lease_of(self, request: ComputeSlotRequest) -> SlotLease | None:
        return next((lease for lease in self.leases.values() if same_owner(lease.request, request)), None)

    def position(self, request_id: str) -> int:
        return next((i + 1 for i, r in enumerate(self.queue) if r.request_id == request_id), 0)

    # --- requests ---------------------------------------------------------------------------------

    def normalize(self, request: ComputeSlotRequest, default_host_url: str) -> ComputeSlotRequest:
        return replace(
            request,
            request_id=request.request_id or f"slot-request-{self.new_id()}",
            agent_host_url=(request.agent_host_url or default_host_url).rstrip("/"),
            cpu_cores=max(1, int(request.cpu_cores)),
            memory_bytes=max(0, int(request.memory_bytes)),
            temp_storage_bytes=max(0, int(request.temp_storage_bytes)),
            estimated_runtime_seconds=max(0.0, float(request.estimated_runtime_seconds)),
            gpu_memory_mb=max(0, int(request.gpu_memory_mb)),
            required_host_tags=norm_tags(request.required_host_tags),
            excluded_host_tags=norm_tags(request.excluded_host_tags),
            preferred_host_tags=norm_tags(request.preferred_host_tags),
            excluded_host_names=tuple(sorted({n.strip() for n in request.excluded_host_names if n.strip()})),
            excluded_host_urls=tuple(
                sorted({u.strip().rstrip("/") for u in request.excluded_host_urls if u.strip()})
            ),
            submitted_at=self.clock(),  # queued since (this host's clock)
            redirect_count=max(0, int(request.redirect_count)),
            timeout_seconds=max(0.0, float(request.timeout_seconds)),
            attempt=max(1, int(request.attempt)),
        )

    def request(
        self, request: ComputeSlotRequest, cap: Capacity, peers: Iterable[SchedulerHostStatus] = ()
    ) -> SlotDecisionReply:
        """Decide on a normalized request: run now (a new or the owner's lease), sleep (queued), redirect
        or reject."""
        status = self.status(cap)
        superseded = self._superseded(request)
        if superseded:
            return SlotDecisionReply(DECISION_REJECTED, request.request_id, message=superseded)
        existing = self.lease_of(request)
        if existing is not None:
            if existing.request.attempt < request.attempt:
                self.leases.pop(existing.lease_id)
            else:
                if existing.reclaim_by > 0 and not existing.pid:  # its job came back (woke, or restarted)
                    existing = replace(
                        existing, reclaim_by=0.0, expires_at=self.clock() + self._timeout(request)
                    )
                    self.leases[existing.lease_id] = existing
                return self.reply_for(existing, "existing compute slot lease")
        rejection = can_ever_satisfy(status, request)
        if rejection:
            target = self._redirect_target(request, peers, cap.host_url, ignore_cooldown=True)
            if target is not None:
                return self._redirect_reply(request, target, cap.host_url, f"this host cannot: {rejection}")
            self._drop_queued(request)
            return SlotDecisionReply(DECISION_REJECTED, request.request_id, message=rejection)
        queued_at = next((i for i, r in enumerate(self.queue) if same_owner(r, request)), None)
        ahead = self.queue if queued_at is None else self.queue[:queued_at]
        if self._fits_now(request, status, ahead, burst=True):
            self._drop_queued(request)
            return self.reply_for(self._grant(request, cap), "compute slot granted")
        target = self._redirect_target(request, peers, cap.host_url)
        if target is not None and can_run_now(target, request):
            self._drop_queued(request)
            return self._redirect_reply(request, target, cap.host_url, "peer host has capacity now")
        if queued_at is not None:  # the owner asks again: same place, same waiting time
            self.queue[queued_at] = replace(request, submitted_at=self.queue[queued_at].submitted_at)
        elif len(self.queue) >= MAX_QUEUE:
            return SlotDecisionReply(
                DECISION_REJECTED, request.request_id, message=f"queue full ({MAX_QUEUE} requests)"
            )
        else:
            self.queue.append(request)
        return SlotDecisionReply(
            DECISION_SLEEP,
            request.request_id,
            host_name=cap.host_name,
            host_url=cap.host_url,
            work_dir_base=cap.work_dir_base,
            message="queued for a compute slot",
            queue_position=self.position(request.request_id),
        )

    def _superseded(self, request: ComputeSlotRequest) -> str:
        if not request.job_id:
            return ""
        known = [r.attempt for r in self.queue if r.job_id == request.job_id]
        known += [
            lease.request.attempt for lease in self.leases.values() if lease.request.job_id == request.job_id
        ]
        newest = max(known, default=0)
        if newest > request.attempt:
            return f"superseded by attempt {newest} of job {request.job_id}"
        return ""

    def _drop_queued(self, request: ComputeSlotRequest) -> None:
        self.queue = [r for r in self.queue if not same_owner(r, request)]

    def _fits_now(
        self,
        request: ComputeSlotRequest,
        status: SchedulerHostStatus,
        ahead: list[ComputeSlotRequest],
        *,
        burst: bool,
    ) -> bool:
        """Whether ``request`` may be granted now, with ``ahead`` the queued requests before it."""
        s = self.settings
        if not can_run_now(status, request) or len(self.leases) >= MAX_LEASES:
            return False
        now = self.clock()
        for earlier in ahead:  # backfill only past requests that have not waited too long
            if now - earlier.submitted_at >= s.backfill_limit and not can_ever_satisfy(status, earlier):
                return False
        if s.grant_interval > 0 and now - self.last_grant_at < s.grant_interval:
            return burst and self._burst_headroom(status, request)
        return True

    def _burst_headroom(self, status: SchedulerHostStatus, request: ComputeSlotRequest) -> bool:
        s = self.settings
        factor = max(1.0, s.burst_resource_headroom_factor)
        return (
            status.free_cpu_cores >= math.ceil(max(1, request.cpu_cores) * factor)
            and status.free_memory_bytes >= math.ceil(request.memory_bytes * factor)
            and status.free_temp_storage_bytes >= math.ceil(request.temp_storage_bytes * factor)
            and status.external_load_per_cpu < max(0.0, s.burst_load_per_cpu)
        )

    def _timeout(self, request: ComputeSlotRequest) -> float:
        if request.timeout_seconds > 0:
            return request.timeout_seconds
        s = self.settings
        return max(s.timeout_floor, s.timeout_factor * request.estimated_runtime_seconds + s.timeout_floor)

    def _grant(self, request: ComputeSlotRequest, cap: Capacity) -> SlotLease:
        reserved_ids = {i for lease in self.leases.values() for i in lease.reserved_cpu_core_ids}
        free_ids = [i for i in cap.cpu_ids if i not in reserved_ids]
        ids = free_ids[: max(1, request.cpu_cores)]
        now = self.clock()
        lease_id = f"slot-{self.new_id()}"
        while lease_id in self.leases:  # never replace a lease (ids restored from a journal included)
            lease_id = f"slot-{self.new_id()}"
        lease = SlotLease(
            lease_id=lease_id,
            request=request,
            host_name=cap.host_name,
            host_url=cap.host_url.rstrip("/"),
            work_dir_base=cap.work_dir_base,
            granted_at=now,
            expires_at=now + self._timeout(request),
            cpu_core_ids=ids if cap.pin else [],
            reserved_cpu_core_ids=ids,
            cpu_affinity_supported=cap.pin,
            reclaim_by=now + self.settings.lease_reclaim,
        )
        self.leases[lease.lease_id] = lease
        self.last_grant_at = now
        return lease

    def reply_for(self, lease: SlotLease, message: str = "compute slot granted") -> SlotDecisionReply:
        return SlotDecisionReply(
            DECISION_RUN_NOW,
            lease.request.request_id,
            lease_id=lease.lease_id,
            host_name=lease.host_name,
            host_url=lease.host_url,
            work_dir_base=lease.work_dir_base,
            message=message,
            redirect_count=lease.request.redirect_count,
            cpu_core_ids=list(lease.cpu_core_ids),
            cpu_affinity_supported=lease.cpu_affinity_supported,
            cpu_affinity_enforced=lease.cpu_affinity_enforced,
            cpu_affinity_error=lease.cpu_affinity_error,
            expires_at=lease.expires_at,
        )

    def _redirect_reply(
        self, request: ComputeSlotRequest, target: SchedulerHostStatus, self_url: str, message: str
    ) -> SlotDecisionReply:
        return SlotDecisionReply(
            DECISION_REDIRECT,
            request.request_id,
            host_name=target.host_name,
            host_url=target.host_url.rstrip("/"),
            message=message,
            redirect_count=request.redirect_count + 1,
            redirected_from_host_url=self_url.rstrip("/"),
        )

    def _redirect_target(
        self,
        request: ComputeSlotRequest,
        peers: Iterable[SchedulerHostStatus],
        self_url: str,
        *,
        ignore_cooldown: bool = False,
    ) -> SchedulerHostStatus | None:
        s = self.settings
        if request.redirect_count >= s.max_redirects:
            return None
        recent = (
            request.last_redirect_at > 0 and self.clock() - request.last_redirect_at < s.redirect_cooldown
        )
        if recent and not ignore_cooldown:
            return None
        own = self_url.rstrip("/")
        back = request.last_redirect_from_host_url.rstrip("/")
        usable = [
            p for p in peers if p.host_url.rstrip("/") not in (own, back) and not can_ever_satisfy(p, request)
        ]
        now_ok = [p for p in usable if can_run_now(p, request)]
        pool = now_ok or (usable if ignore_cooldown else [])
        if not pool:
            return None
        return min(
            pool,
            key=lambda p: (p.queue_length, -p.free_cpu_cores, candidate_score(p, request), p.host_name),
        )

    # --- passes -----------------------------------------------------------------------------------

    def grant_pass(self, cap: Capacity) -> list[SlotLease]:
        """Grant queued requests that fit, in queue order (see the module docstring)."""
        granted: list[SlotLease] = []
        index = 0
        while index < len(self.queue) and len(granted) < max(1, self.settings.max_grants_per_tick):
            request = self.queue[index]
            if self.lease_of(request) is not None:  # its owner holds a lease already: a stale entry
                del self.queue[index]
                continue
            # the first grant of a pass waits for the spacing; later ones need burst headroom
            if self._fits_now(request, self.status(cap), self.queue[:index], burst=bool(granted)):
                del self.queue[index]
                granted.append(self._grant(request, cap))
            else:
                index += 1
        return granted

    def redirect_pass(
        self, cap: Capacity, peers: Iterable[SchedulerHostStatus]
    ) -> list[tuple[ComputeSlotRequest, SlotDecisionReply]]:
        """Queued requests to move to peers that can run them now (removed from the queue)."""
        s = self.settings
        budget = redirect_budget(len(self.queue), s.max_redirect_fraction, s.max_redirects_per_tick)
        if budget <= 0:
            return []
        projected = {p.host_url.rstrip("/"): p for p in peers}
        status = self.status(cap)
        moves: list[tuple[ComputeSlotRequest, SlotDecisionReply]] = []
        for request in list(self.queue):
            if len(moves) >= budget:
                break
            if can_run_now(status, request):
                continue
            target = self._redirect_target(request, projected.values(), cap.host_url)
            if target is None:
                continue
            reply = self._redirect_reply(request, target, cap.host_url, "peer scheduler has free capacity")
            self._drop_queued(request)
            projected[target.host_url.rstrip("/")] = reserve_projected(target, request)
            moves.append((request, reply))
        return moves

    # --- ending leases ----------------------------------------------------------------------------

    def release(self, lease_id: str, agent_id: str = "") -> SlotLease | None:
        lease = self.leases.get(lease_id)
        if lease is None or (agent_id and agent_id != lease.request.agent_id):
            return None
        return self.leases.pop(lease_id)

    def cancel(self, cancel: CancelSlotRequestsRequest) -> tuple[list[ComputeSlotRequest], list[SlotLease]]:
        """Remove matching queued requests (and leases with ``include_leases``); a request without any
        filter matches nothing."""
        if not (cancel.all or cancel.request_ids or cancel.agent_ids or cancel.job_ids):
            return [], []
        removed = [r for r in self.queue if matches_cancel(r, cancel)]
        self.queue = [r for r in self.queue if not matches_cancel(r, cancel)]
        ended: list[SlotLease] = []
        if cancel.include_leases:
            for lease_id, lease in list(self.leases.items()):
                if matches_cancel(lease.request, cancel):
                    ended.append(self.leases.pop(lease_id))
        return removed, ended

    def lease_update(self, update: LeaseUpdateRequest) -> bool:
        """The lease's job started: its process, its work directory and how pinning went."""
        lease = self.leases.get(update.lease_id)
        if lease is None or (update.agent_id and update.agent_id != lease.request.agent_id):
            return False
        started = not lease.pid and lease.timed_out_at == 0  # its run time counts from now
        self.leases[update.lease_id] = replace(
            lease,
            pid=max(0, update.pid),
            reclaim_by=0.0,
            expires_at=self.clock() + self._timeout(lease.request) if started else lease.expires_at,
            cpu_affinity_enforced=update.cpu_affinity_enforced,
            cpu_affinity_error=update.cpu_affinity_error[:300],
            work_dir=update.work_dir[:4096],
        )
        return True

    def expire(self, active_agents: set[str] | None) -> list[Ended]:
        """Leases to act on now. ``active_agents``: the agent ids active on this host (None: unknown,
        nothing is judged lost)."""
        now = self.clock()
        out: list[Ended] = []
        for lease_id, lease in list(self.leases.items()):
            present = active_agents is None or lease.request.agent_id in active_agents
            if lease.timed_out_at > 0:
                if not present:
                    out.append(Ended(self.leases.pop(lease_id), "dropped", "timeout"))
                elif now - lease.timed_out_at >= self.settings.kill_grace:
                    out.append(Ended(self.leases.pop(lease_id), "kill", "timeout"))
                continue
            if lease.reclaim_by > 0:  # its job has not (re)started yet, or vanished
                if now < lease.reclaim_by:
                    continue
                if present:  # running without saying so: its time counts from now
                    self.leases[lease_id] = replace(
                        lease, reclaim_by=0.0, expires_at=now + self._timeout(lease.request)
                    )
                elif not lease.pid and lease.grant_resends < MAX_GRANT_RESENDS:
                    resent = replace(
                        lease,
                        grant_resends=lease.grant_resends + 1,
                        reclaim_by=now + self.settings.lease_reclaim,
                    )
                    self.leases[lease_id] = resent
                    out.append(Ended(resent, "resend", "not started"))
                else:
                    out.append(Ended(self.leases.pop(lease_id), "dropped", "lost"))
                continue
            if lease.expires_at <= now:
                if present:
                    self.leases[lease_id] = replace(lease, timed_out_at=now)
                    out.append(Ended(lease, "stop", "timeout"))
                else:
                    out.append(Ended(self.leases.pop(lease_id), "dropped", "expired"))
                continue
            if not present:  # the job's process is gone without a release: wait a moment, then drop
                self.leases[lease_id] = replace(lease, reclaim_by=now + LOST_GRACE)
        return out

    # --- durability -------------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        return {
            "queue": list(self.queue),
            "leases": list(self.leases.values()),
            "last_grant_at": self.last_grant_at,
        }

    def restore(self, queue: list[ComputeSlotRequest], leases: list[SlotLease], last_grant_at: float) -> None:
        """Load a journal: the queue keeps its order; every lease waits ``lease_reclaim`` seconds for its
        job to come back (a job that ran here before the restart re-requests its slot)."""
        now = self.clock()
        self.queue = list(queue)[:MAX_QUEUE]
        self.leases = {}
        reclaim = now + self.settings.lease_reclaim
        for lease in leases[:MAX_LEASES]:
            self.leases[lease.lease_id] = replace(lease, pid=0, reclaim_by=reclaim)
        self.last_grant_at = last_grant_at
