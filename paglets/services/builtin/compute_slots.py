"""``compute-slots``: admission control for CPU-heavy paglets, on every host, as a resident service.

Each host's ``compute-slots`` service (eager, mesh-scoped, agent id ``service.compute-slots``) hands out
*slots*: a lease on a number of logical CPUs, memory and scratch space of its host. A compute job
(:class:`paglets.compute.ComputeJobPaglet`) picks a host from ``candidate_hosts`` on its home host, moves
there and asks that host's service for a slot: it runs at once (``run_now``), sleeps as an inactive
paglet until the service wakes it with a grant (``sleep``), moves on to a peer with free capacity now
(``redirect``), or is refused with the reason (``rejected``: more than the host could ever give).

What the service keeps, durably (a journal in its class storage, written atomically on each change):
the queue in order, the leases, the bounded history of finished jobs and the *tracked jobs* of the jobs
whose home this host is (what they are, where they are, and the state they restart from). A host restart
keeps the queue order and the leases of the jobs that come back; a job whose host died is restarted
from its home (or reported failed, by its policy); a job that outlives its timeout is stopped.

The policy (grant, redirect, expiry) lives in :mod:`paglets.services.builtin._scheduler`, the I/O (probes,
journal, gossip, delivery, usage sampling) in :mod:`paglets.services.builtin._compute_service`; this
module holds the contract and the paglet. ``docs/compute.md`` describes the policy and why it differs
from paglets 2.0's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from paglets.core.agent import Paglet, PagletState
from paglets.core.events import CreationEvent, MobilityEvent, PersistencyEvent
from paglets.core.messages import Message
from paglets.core.runtime_values import ResidentLifecycle, ServiceScope
from paglets.services.contracts import ServiceContract, ServiceOperation
from paglets.services.resident import ResidentServiceSpec

if TYPE_CHECKING:
    from paglets.services.builtin._compute_service import ComputeSlotsService

__all__ = [
    "CANCEL_SLOT_REQUESTS",
    "CANDIDATE_HOSTS",
    "COMPUTE_SLOTS",
    "COMPUTE_SLOTS_AGENT_ID",
    "COMPUTE_USAGE_PATHS_MESSAGE",
    "DECISION_REDIRECT",
    "DECISION_REJECTED",
    "DECISION_RUN_NOW",
    "DECISION_SLEEP",
    "JOB_UPDATE",
    "LEASE_UPDATE",
    "LIST_JOBS",
    "RELEASE_SLOT",
    "REQUEST_SLOT",
    "SCHEDULER_STATUS",
    "SYNC_SCHEDULER_STATUS",
    "TRACK_JOB",
    "CancelSlotRequestsReply",
    "CancelSlotRequestsRequest",
    "CandidateHost",
    "CandidateHostsReply",
    "CandidateHostsRequest",
    "ComputeJobRuntimeInfo",
    "ComputeSlotRequest",
    "ComputeSlotsAgent",
    "ComputeSlotsState",
    "FinishedJobUsage",
    "JobUpdateReply",
    "JobUpdateRequest",
    "LeaseUpdateRequest",
    "ListJobsReply",
    "ListJobsRequest",
    "SchedulerHostStatus",
    "SchedulerStatusReply",
    "SchedulerStatusRequest",
    "SchedulerStatusSyncReply",
    "SchedulerStatusSyncRequest",
    "SlotDecisionReply",
    "SlotLease",
    "SlotReleaseReply",
    "SlotReleaseRequest",
    "TrackJobReply",
    "TrackJobRequest",
    "TrackedJob",
]

COMPUTE_SLOTS_AGENT_ID: Final = "service.compute-slots"
#: The message a scheduler sends a job to learn extra scratch paths to measure (reply ``{"paths": [...]}``).
COMPUTE_USAGE_PATHS_MESSAGE: Final = "compute_usage_paths"
#: Messages the scheduler sends to a job (one-way; the first two wake a sleeping job).
GRANTED_MESSAGE: Final = "compute_slot_granted"
REDIRECT_MESSAGE: Final = "compute_slot_redirect"
TIMEOUT_MESSAGE: Final = "compute_slot_timeout"
#: The message a job's home sends when the job was cancelled or replaced there (stop now).
STOP_MESSAGE: Final = "compute_job_stop"

DECISION_RUN_NOW: Final = "run_now"
DECISION_SLEEP: Final = "sleep"
DECISION_REDIRECT: Final = "redirect"
DECISION_REJECTED: Final = "rejected"

#: Statuses of a tracked job at its home (the job's own ``compute_status`` plus the home's verdicts).
JOB_PLACING: Final = "PLACING"
JOB_WAITING: Final = "WAITING_FOR_SLOT"
JOB_RUNNING: Final = "RUNNING"
JOB_COMPLETED: Final = "COMPLETED"
JOB_FAILED: Final = "FAILED_FINAL"
JOB_CANCELLED: Final = "CANCELLED"
FINISHED_JOB_STATUSES: Final = frozenset({JOB_COMPLETED, JOB_FAILED, JOB_CANCELLED})


# --- requests, leases, status ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ComputeSlotRequest:
    """What a job asks a host for. Sizes in bytes; 0 means none. ``request_id``, ``agent_id`` and
    ``job_id`` each identify the request's owner: a new request of the same owner replaces the queued one
    or gets the owner's lease back."""

    request_id: str = ""
    agent_id: str = ""
    agent_host_url: str = ""
    job_id: str = ""
    cpu_cores: int = 1
    memory_bytes: int = 0
    temp_storage_bytes: int = 0
    estimated_runtime_seconds: float = 0.0
    requires_gpu: bool = False
    gpu_memory_mb: int = 0
    required_host_tags: tuple[str, ...] = ()
    excluded_host_tags: tuple[str, ...] = ()
    preferred_host_tags: tuple[str, ...] = ()
    excluded_host_names: tuple[str, ...] = ()
    excluded_host_urls: tuple[str, ...] = ()
    submitted_at: float = 0.0
    redirect_count: int = 0
    last_redirect_at: float = 0.0
    last_redirect_from_host_url: str = ""
    #: Seconds the job may run once granted (0: the scheduler derives it from the estimate).
    timeout_seconds: float = 0.0
    #: The job's home (where it was submitted and is tracked).
    home_host_url: str = ""
    #: The job's paglet class (``module:Qualname``), for the operator's views.
    class_name: str = ""
    #: Which run of the job this is (a job restarted by its home counts up).
    attempt: int = 1


@dataclass(frozen=True, slots=True)
class SchedulerHostStatus:
    host_name: str
    host_url: str
    observed_at: float
    supports_cpu_jobs: bool = True
    supports_gpu_jobs: bool = False
    cpu_count_logical: int = 0
    cpu_affinity_supported: bool = False
    eligible_cpu_ids: list[int] = field(default_factory=list)
    cpu_percent: float = 0.0
    load_average: list[float] = field(default_factory=list)
    load_per_cpu: float = 0.0
    #: 0: the load does not gate grants (the default; see docs/compute.md).
    max_load_per_cpu: float = 0.0
    memory_total_bytes: int = 0
    memory_available_bytes: int = 0
    work_dir_base: str = ""
    work_total_bytes: int = 0
    work_free_bytes: int = 0
    queue_length: int = 0
    active_leases: int = 0
    host_tags: tuple[str, ...] = ()
    host_properties: dict[str, str] = field(default_factory=dict)
    reserved_cpu_cores: int = 0
    reserved_memory_bytes: int = 0
    reserved_temp_storage_bytes: int = 0
    free_cpu_cores: int = 0
    free_memory_bytes: int = 0
    free_temp_storage_bytes: int = 0
    errors: list[str] = field(default_factory=list)
    #: Slots this host offers: its logical CPUs, or what it declares (``--cpu-slots``).
    cpu_slots: int = 0
    #: True when cores, memory or scratch space come from a declaration rather than the machine.
    declared_capacity: bool = False
    gpu_count: int = 0
    reserved_gpus: int = 0
    #: Cores the queued requests ask for (with the reserved ones: the host's backlog).
    queued_cpu_cores: int = 0
    #: The load of everything but this host's leased jobs, per CPU (what the load gate looks at).
    external_load_per_cpu: float = 0.0


@dataclass(frozen=True, slots=True)
class SlotLease:
    lease_id: str
    request: ComputeSlotRequest
    host_name: str
    host_url: str
    work_dir_base: str
    granted_at: float
    #: When the job's time is up (granted_at + its timeout); it is stopped then.
    expires_at: float
    cpu_core_ids: list[int] = field(default_factory=list)
    reserved_cpu_core_ids: list[int] = field(default_factory=list)
    cpu_affinity_supported: bool = False
    cpu_affinity_enforced: bool = False
    cpu_affinity_error: str = ""
    #: The job's process, once it reported it.
    pid: int = 0
    #: Wall-clock time after which a lease whose job is not running is dropped (0: none pending).
    reclaim_by: float = 0.0
    #: Set when the job's time ran out and it was told to stop.
    timed_out_at: float = 0.0
    #: Times the grant was sent again to a job that did not start (it may have missed the first one).
    grant_resends: int = 0
    #: The job's work directory on this host (reported by the job; measured by usage samples).
    work_dir: str = ""


@dataclass(frozen=True, slots=True)
class SlotDecisionReply:
    decision: str
    request_id: str = ""
    lease_id: str = ""
    host_name: str = ""
    host_url: str = ""
    work_dir_base: str = ""
    message: str = ""
    redirect_count: int = 0
    redirected_from_host_url: str = ""
    cpu_core_ids: list[int] = field(default_factory=list)
    cpu_affinity_supported: bool = False
    cpu_affinity_enforced: bool = False
    cpu_affinity_error: str = ""
    #: Place in the queue (1 = next) when the decision is ``sleep``.
    queue_position: int = 0
    #: The lease's deadline when the decision is ``run_now``.
    expires_at: float = 0.0
    #: Seconds a sleeping job waits before it checks its request once more (``sleep``).
    recheck_seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class CandidateHostsRequest:
    slot: ComputeSlotRequest = field(default_factory=ComputeSlotRequest)
    limit: int = 0
    include_self: bool = True
    max_age_seconds: float = 20.0
    placement_sample_size: int = 3


@dataclass(frozen=True, slots=True)
class CandidateHost:
    status: SchedulerHostStatus
    score: float
    reasons: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class CandidateHostsReply:
    generated_at: float
    candidates: list[CandidateHost] = field(default_factory=list)
    selected: CandidateHost | None = None
    rejected: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SlotReleaseRequest:
    lease_id: str = ""
    agent_id: str = ""


@dataclass(frozen=True, slots=True)
class SlotReleaseReply:
    ok: bool = True


@dataclass(frozen=True, slots=True)
class LeaseUpdateRequest:
    """A granted job tells its scheduler its process and how pinning went."""

    lease_id: str = ""
    agent_id: str = ""
    pid: int = 0
    cpu_affinity_enforced: bool = False
    cpu_affinity_error: str = ""
    work_dir: str = ""


@dataclass(frozen=True, slots=True)
class ComputeJobRuntimeInfo:
    lease_id: str
    request_id: str
    job_id: str
    agent_id: str
    class_name: str = ""
    granted_at: float = 0.0
    active: bool = False
    pid: int = 0
    declared_cpu_cores: int = 0
    reserved_cpu_core_ids: list[int] = field(default_factory=list)
    assigned_cpu_core_ids: list[int] = field(default_factory=list)
    cpu_affinity_supported: bool = False
    cpu_affinity_enforced: bool = False
    cpu_affinity_error: str = ""
    declared_memory_bytes: int = 0
    declared_temp_storage_bytes: int = 0
    current_cpu_percent: float = 0.0
    current_memory_rss_bytes: int = 0
    current_memory_percent: float = 0.0
    process_tree_count: int = 0
    process_tree_memory_rss_bytes: int = 0
    work_dir_path: str = ""
    work_dir_bytes: int = 0
    work_dir_file_count: int = 0
    extra_work_paths: list[str] = field(default_factory=list)
    extra_work_bytes: int = 0
    extra_work_file_count: int = 0
    sample_count: int = 0
    last_sampled_at: float = 0.0
    max_cpu_percent: float = 0.0
    max_memory_rss_bytes: int = 0
    max_process_tree_memory_rss_bytes: int = 0
    max_work_dir_bytes: int = 0
    max_extra_work_bytes: int = 0
    max_total_work_bytes: int = 0
    usage_error: str = ""
    process_status: str = ""
    error: str = ""
    runtime_seconds: float = 0.0
    expires_at: float = 0.0


@dataclass(frozen=True, slots=True)
class FinishedJobUsage:
    """One finished lease with its peak usage (``jobs history``)."""

    lease_id: str
    request_id: str
    job_id: str
    agent_id: str
    class_name: str = ""
    granted_at: float = 0.0
    finished_at: float = 0.0
    #: released, cancelled, timeout, lost (its job vanished), expired (never started) or inactive.
    finish_reason: str = "released"
    runtime_seconds: float = 0.0
    declared_cpu_cores: int = 0
    sample_count: int = 0
    max_cpu_percent: float = 0.0
    max_memory_rss_bytes: int = 0
    max_process_tree_memory_rss_bytes: int = 0
    max_work_dir_bytes: int = 0
    max_extra_work_bytes: int = 0
    max_total_work_bytes: int = 0
    usage_error: str = ""


@dataclass(frozen=True, slots=True)
class SchedulerStatusRequest:
    include_queue: bool = False
    include_jobs: bool = False
    include_usage: bool = False
    include_usage_history: bool = False


@dataclass(frozen=True, slots=True)
class SchedulerStatusReply:
    status: SchedulerHostStatus
    queued_requests: list[ComputeSlotRequest] = field(default_factory=list)
    leases: list[SlotLease] = field(default_factory=list)
    active_jobs: list[ComputeJobRuntimeInfo] = field(default_factory=list)
    finished_usage: list[FinishedJobUsage] = field(default_factory=list)
    #: Problems of this service (peer name or loop → message).
    errors: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SchedulerStatusSyncRequest:
    statuses: list[SchedulerHostStatus] = field(default_factory=list)
    max_age_seconds: float = 20.0
    #: The sender's wall clock when it sent the request (re-bases ``observed_at``).
    sent_at: float = 0.0


@dataclass(frozen=True, slots=True)
class SchedulerStatusSyncReply:
    generated_at: float
    accepted: int = 0
    statuses: list[SchedulerHostStatus] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class CancelSlotRequestsRequest:
    request_ids: tuple[str, ...] = ()
    agent_ids: tuple[str, ...] = ()
    job_ids: tuple[str, ...] = ()
    all: bool = False
    #: Also end matching leases: their jobs' processes are stopped.
    include_leases: bool = False


@dataclass(frozen=True, slots=True)
class CancelSlotRequestsReply:
    cancelled_requests: int = 0
    cancelled_leases: int = 0
    #: Tracked jobs (of this home) marked cancelled.
    cancelled_jobs: int = 0


# --- tracked jobs (a job's home keeps track of it) ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TrackedJob:
    job_id: str
    agent_id: str
    class_name: str = ""
    group_id: str = ""
    status: str = JOB_PLACING
    attempt: int = 1
    host_name: str = ""
    host_url: str = ""
    submitted_at: float = 0.0
    updated_at: float = 0.0
    finished_at: float = 0.0
    error: str = ""
    restarts: int = 0
    max_restarts: int = 0
    #: Hosts the job must not go to again (where an earlier attempt was lost).
    excluded_host_urls: tuple[str, ...] = ()
    #: Whether the home holds a state to restart the job from.
    restartable: bool = False
    #: Where a final failure is reported besides user-info (a group's collector), and the job's key there.
    collector_agent_id: str = ""
    collector_host_url: str = ""
    job_key: str = ""


@dataclass(frozen=True, slots=True)
class TrackJobRequest:
    job_id: str = ""
    agent_id: str = ""
    class_name: str = ""
    state_class: str = ""
    group_id: str = ""
    #: The job's state to restart it from (binary state codec), at most ``MAX_RESTART_STATE`` bytes.
    restart_state: bytes = b""
    max_restarts: int = 0
    collector_agent_id: str = ""
    collector_host_url: str = ""
    job_key: str = ""


@dataclass(frozen=True, slots=True)
class TrackJobReply:
    ok: bool = True
    attempt: int = 1
    error: str = ""


@dataclass(frozen=True, slots=True)
class JobUpdateRequest:
    job_id: str = ""
    agent_id: str = ""
    attempt: int = 1
    status: str = ""
    host_name: str = ""
    host_url: str = ""
    error: str = ""


@dataclass(frozen=True, slots=True)
class JobUpdateReply:
    ok: bool = True
    #: False when the home no longer wants this run (cancelled, or replaced by a later attempt).
    proceed: bool = True
    reason: str = ""


@dataclass(frozen=True, slots=True)
class ListJobsRequest:
    group_id: str = ""
    job_ids: tuple[str, ...] = ()
    include_finished: bool = True
    limit: int = 1000


@dataclass(frozen=True, slots=True)
class ListJobsReply:
    generated_at: float
    jobs: list[TrackedJob] = field(default_factory=list)
    truncated: bool = False


CANDIDATE_HOSTS = ServiceOperation("candidate_hosts", CandidateHostsRequest, CandidateHostsReply)
REQUEST_SLOT = ServiceOperation("request_slot", ComputeSlotRequest, SlotDecisionReply)
RELEASE_SLOT = ServiceOperation("release_slot", SlotReleaseRequest, SlotReleaseReply)
SCHEDULER_STATUS = ServiceOperation("scheduler_status", SchedulerStatusRequest, SchedulerStatusReply)
SYNC_SCHEDULER_STATUS = ServiceOperation(
    "sync_scheduler_status", SchedulerStatusSyncRequest, SchedulerStatusSyncReply
)
CANCEL_SLOT_REQUESTS = ServiceOperation(
    "cancel_slot_requests", CancelSlotRequestsRequest, CancelSlotRequestsReply
)
LEASE_UPDATE = ServiceOperation("lease_update", LeaseUpdateRequest, SlotReleaseReply)
TRACK_JOB = ServiceOperation("track_job", TrackJobRequest, TrackJobReply)
JOB_UPDATE = ServiceOperation("job_update", JobUpdateRequest, JobUpdateReply)
LIST_JOBS = ServiceOperation("list_jobs", ListJobsRequest, ListJobsReply)

COMPUTE_SLOTS = ServiceContract(
    "compute-slots",
    operations=(
        CANDIDATE_HOSTS,
        REQUEST_SLOT,
        RELEASE_SLOT,
        SCHEDULER_STATUS,
        SYNC_SCHEDULER_STATUS,
        CANCEL_SLOT_REQUESTS,
        LEASE_UPDATE,
        TRACK_JOB,
        JOB_UPDATE,
        LIST_JOBS,
    ),
)


@dataclass
class ComputeSlotsState(PagletState):
    """Settings of the service (``state = {...}`` in ``launch.toml``); the queue, leases and tracked jobs
    live in the service's journal, not here. Every value is clamped to a sane range when read."""

    service_scope: ServiceScope = ServiceScope.MESH
    #: Seconds between two passes of the background loop (grants also happen at once on request and
    #: release; the loop handles expiry, timeouts, redirects and lost jobs).
    loop_interval: float = 1.0
    gossip_interval: float = 5.0
    peer_batch_size: int = 3
    #: Least seconds between two grants (0: no spacing; 2.0 spaced grants by 15 s).
    grant_interval: float = 0.0
    max_grants_per_tick: int = 8
    #: External load per CPU at or above which nothing is granted (0: off, the default).
    max_load_per_cpu: float = 0.0
    max_active_leases: int = 0
    max_redirects_per_tick: int = 4
    max_redirect_fraction: float = 0.5
    redirect_cooldown_seconds: float = 30.0
    max_redirects: int = 3
    burst_load_per_cpu: float = 0.5
    burst_resource_headroom_factor: float = 2.0
    #: Seconds after which a queued request stops being overtaken by smaller ones.
    backfill_limit_seconds: float = 60.0
    supports_gpu_jobs: bool = False
    gpu_count: int = 0
    #: Declared capacity (0: what the machine has). ``paglets host --cpu-slots`` etc. override these.
    cpu_slots: int = 0
    memory_limit_bytes: int = 0
    scratch_limit_bytes: int = 0
    #: Pin granted jobs to their reserved CPUs (Linux; only when the capacity is the machine's).
    cpu_affinity: bool = True
    usage_sample_interval: float = 5.0
    usage_history_limit: int = 100
    #: Seconds a lease waits for its job to come back after a host restart before it is dropped.
    lease_reclaim_seconds: float = 30.0
    #: A job without a timeout of its own may run ``timeout_factor`` x its estimate + ``timeout_floor``.
    timeout_factor: float = 3.0
    timeout_floor_seconds: float = 60.0
    #: Seconds a timed-out job gets to stop by itself before its process is ended.
    timeout_kill_grace: float = 5.0
    #: Seconds a tracked job's host may be offline before the home treats the job as lost.
    lost_after_seconds: float = 20.0
    #: Seconds a waiting job sleeps before it checks its request once more (a safety net).
    waiting_recheck_seconds: float = 600.0


class ComputeSlotsAgent(Paglet[ComputeSlotsState]):
    """The ``compute-slots`` resident service (see the module docstring)."""

    State = ComputeSlotsState
    RESIDENT_SERVICES = (
        ResidentServiceSpec(
            contract=COMPUTE_SLOTS,
            scope=ServiceScope.MESH,
            lifecycle=ResidentLifecycle.EAGER,
            idle_timeout=0.0,
            agent_id=COMPUTE_SLOTS_AGENT_ID,
            singleton=True,
            state={"service_scope": ServiceScope.MESH.value},
        ),
    )

    def __init__(self, state: ComputeSlotsState | None = None, *, agent_id: str | None = None) -> None:
        super().__init__(state, agent_id=agent_id)
        self._service: ComputeSlotsService | None = None

    @property
    def service(self) -> ComputeSlotsService:
        """The running scheduler (made on first use, once the paglet is attached to its host)."""
        with self.locked():
            if self._service is None:
                from paglets.services.builtin._compute_service import ComputeSlotsService

                self._service = ComputeSlotsService(self)
            return self._service

    def on_creation(self, event: CreationEvent) -> None:
        from paglets.services.builtin._compute_journal import check_settings

        check_settings(self.state)  # fail creation early on unusable settings

    def on_deactivating(self, event: PersistencyEvent) -> None:
        self._stop()

    def on_disposing(self, event: PersistencyEvent) -> None:
        self._stop()

    def on_dispatching(self, event: MobilityEvent) -> None:
        self._stop()

    def _stop(self) -> None:
        if self._service is not None:
            self._service.stop()

    def run(self) -> None:
        self.service.run()

    def handle_message(self, message: Message) -> Any:
        service = self.service
        return COMPUTE_SLOTS.route(
            message,
            {
                CANDIDATE_HOSTS: service.candidate_hosts,
                REQUEST_SLOT: service.request_slot,
                RELEASE_SLOT: service.release_slot,
                SCHEDULER_STATUS: service.scheduler_status,
                SYNC_SCHEDULER_STATUS: service.sync_scheduler_status,
                CANCEL_SLOT_REQUESTS: service.cancel_slot_requests,
                LEASE_UPDATE: service.lease_update,
                TRACK_JOB: service.track_job,
                JOB_UPDATE: service.job_update,
                LIST_JOBS: service.list_jobs,
            },
            default=self.not_handled(),
        )
