"""``ComputeJobPaglet``: a paglet that runs one CPU-heavy job on a host with a free compute slot.

Lifecycle (``compute_status``), driven by one worker thread per process and by the scheduler's messages::

    NEW ──▶ PLACING ──▶ WAITING_FOR_SLOT ──▶ RUNNING ──▶ COMPLETED
             │  ▲              │                 │
             │  └── redirect ──┘                 └──▶ FAILED_FINAL (error, timeout, cancelled)
             └──▶ FAILED_FINAL (bad estimates, no host could ever run it, refused)

1. **At home** (the host it was created on): the estimates are checked first (``validate_compute_estimates``:
   a clear error, before any scheduler call); the job registers with its home's ``compute-slots`` service
   (with the state to restart it from), asks it for ``candidate_hosts`` and moves to the selected host
   (or stays, when that is home and ``allow_home_compute`` is set). When no host of the mesh could ever
   run it (more cores than any host has, a GPU where none exists), it fails at once with each host's
   reason.
2. **On its host** it asks the local service for a slot: ``run_now`` runs it; ``sleep`` deactivates it
   (it wakes on the grant message, and every ``waiting_recheck_seconds`` to check its request is still
   queued); ``redirect`` moves it on; ``rejected`` fails it.
3. **Running**: the worker pins itself to the lease's CPUs (where the host pins), tells the scheduler its
   process, runs :meth:`run_compute_job`, releases the slot and calls :meth:`after_compute_success` (or
   :meth:`after_compute_failure`). A job past its timeout is told to stop: it fails with "timed out" and
   ends its process (the scheduler ends it ``timeout_kill_grace`` seconds later if it did not).

Each step is reported to the home, which restarts the job from its submission state when its host is
lost (``max_restarts`` times) and tells a run it replaced or cancelled to stop. A running job saved at a
host shutdown restarts from its submission state when the host is back, keeping its lease
(``restart_running_on_host_startup``). ``docs/compute.md`` lists the hooks.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final, Generic, TypeVar, final

from paglets.compute._job_steps import (
    COMPUTE_STATUS_COMPLETED,
    COMPUTE_STATUS_FAILED_FINAL,
    COMPUTE_STATUS_NEW,
    COMPUTE_STATUS_PLACING,
    COMPUTE_STATUS_RUNNING,
    COMPUTE_STATUS_WAITING_FOR_SLOT,
    FINISHED,
    estimate_error,
    notify,
    proxy_to,
    record_grant,
    record_redirect,
    restart_snapshot,
    restore_initial_state,
    slot_request,
)
from paglets.core.agent import Paglet, PagletState
from paglets.core.errors import PagletError
from paglets.core.events import PersistencyEvent
from paglets.core.messages import Message
from paglets.core.runtime_values import ServiceScope
from paglets.persistence.persistency import DeactivationPolicy, DeactivationRequest
from paglets.serialization.codec import dataclass_from_wire, dataclass_to_wire, qualified_name
from paglets.services.builtin import compute_slots as cs
from paglets.services.builtin.compute_slots import (
    CandidateHost,
    CandidateHostsReply,
    CandidateHostsRequest,
    ComputeSlotRequest,
    JobUpdateRequest,
    LeaseUpdateRequest,
    SlotDecisionReply,
    SlotReleaseRequest,
    TrackJobRequest,
)

__all__ = [
    "COMPUTE_STATUS_COMPLETED",
    "COMPUTE_STATUS_FAILED_FINAL",
    "COMPUTE_STATUS_NEW",
    "COMPUTE_STATUS_PLACING",
    "COMPUTE_STATUS_RUNNING",
    "COMPUTE_STATUS_WAITING_FOR_SLOT",
    "ComputeJobPaglet",
    "ComputeJobState",
]

#: Hosts a job tries to move to before it gives up (each failed move excludes its target).
MAX_PLACEMENT_TRIES: Final = 3
#: Seconds a woken waiting job waits for the message that woke it (a grant or a redirect) before it
#: asks its scheduler again (it was woken by its re-check timer then).
WAKE_GRACE: Final = 1.0
#: Seconds between re-checks of a waiting job when the scheduler does not say.
DEFAULT_RECHECK: Final = 600.0


@dataclass
class ComputeJobState(PagletState):
    home_host_name: str = ""
    home_host_url: str = ""
    compute_status: str = COMPUTE_STATUS_NEW
    compute_error: str = ""
    cpu_cores: int = 1
    memory_bytes: int = 0
    temp_storage_bytes: int = 0
    estimated_runtime_seconds: float = 0.0
    allow_zero_memory_bytes: bool = False
    allow_zero_runtime_seconds: bool = False
    allow_home_compute: bool = False
    required_host_tags: tuple[str, ...] = ()
    excluded_host_tags: tuple[str, ...] = ()
    preferred_host_tags: tuple[str, ...] = ()
    excluded_host_names: tuple[str, ...] = ()
    excluded_host_urls: tuple[str, ...] = ()
    candidate_limit: int = 8
    scheduler_timeout_seconds: float = 5.0
    release_timeout_seconds: float = 2.0
    selected_host_url: str = ""
    slot_request_id: str = ""
    slot_lease_id: str = ""
    redirect_count: int = 0
    last_redirect_at: float = 0.0
    last_redirect_from_host_url: str = ""
    cpu_core_ids: list[int] = field(default_factory=list)
    cpu_affinity_supported: bool = False
    cpu_affinity_enforced: bool = False
    cpu_affinity_error: str = ""
    restart_running_on_host_startup: bool = True
    restart_initial_state: dict[str, Any] = field(default_factory=dict)
    requires_gpu: bool = False
    gpu_memory_mb: int = 0
    #: Seconds the job may run once granted (0: the scheduler's default, 3 x estimate + 60 s).
    timeout_seconds: float = 0.0
    #: Times its home starts it again when its host is lost (then it fails).
    max_restarts: int = 2
    #: The job's id at the scheduler and at its home (``compute-job-<agent id>`` at submission).
    compute_job_key: str = ""
    #: Which run this is (its home counts restarts up).
    compute_attempt: int = 1
    #: The job group it belongs to ("" for none).
    group_id: str = ""
    started_running_at: float = 0.0


StateT = TypeVar("StateT", bound=ComputeJobState)


class _Stop(Exception):
    """This run must end (its home cancelled or replaced it)."""


class ComputeJobPaglet(Paglet[StateT], Generic[StateT]):
    """See the module docstring."""

    def __init__(self, state: StateT | None = None, *, agent_id: str | None = None) -> None:
        super().__init__(state, agent_id=agent_id)
        self._worker: threading.Thread | None = None
        self._stopping = False
        self._ending = False

    # --- hooks ------------------------------------------------------------------------------------------

    def run_compute_job(self) -> None:
        """The work itself (runs on the granted host, in the job's process). Raise to fail the job."""
        raise NotImplementedError(f"{type(self).__name__} must implement run_compute_job()")

    def after_compute_success(self) -> None:
        """Once, right after the work succeeded and the slot was released."""
        self.continue_after_compute_success()

    def continue_after_compute_success(self) -> None:
        """After success, and on every later activation of the completed job."""

    def after_compute_failure(self, message: str) -> None:
        """Once, when the job failed for good (``message`` says why)."""

    def compute_usage_paths(self) -> Iterable[str | Path] | None:
        """Extra scratch paths (besides the work directory) whose size the scheduler measures."""
        return ()

    def accept_compute_candidate(self, candidate: CandidateHost) -> bool:
        """Whether the job may go to ``candidate`` (default: anywhere but home, unless allowed)."""
        with self.locked_state() as state:
            if state.allow_home_compute:
                return True
            return candidate.status.host_url.rstrip("/") != state.home_host_url.rstrip("/")

    def handle_compute_job_message(self, message: Message) -> Any | None:
        """Messages of the subclass (return None for "not mine")."""
        return None

    def validate_compute_estimates(self) -> str:
        """Why the estimates cannot be scheduled ("" when they can)."""
        with self.locked_state() as state:
            return estimate_error(state)

    def notify_user(
        self,
        severity: str,
        title: str,
        message: str,
        *,
        job_id: str | None = None,
        timeout: float = 2.0,
        scope: ServiceScope = ServiceScope.MESH,
    ) -> bool:
        """Best effort: a notification to the ``user-info`` service of the job's home (False if it failed)."""
        job = job_id if job_id is not None else self.compute_job_id()
        return notify(self.context, self.home_url(), self.agent_id, job, severity, title, message, timeout)

    @final
    def compute_job_id(self) -> str:
        """The job's id at the scheduler and at its home."""
        return self.state.compute_job_key or f"compute-job-{self.agent_id}"

    def is_compute_home(self) -> bool:
        """Whether the job is on its home host (by URL, or by name: a host's URL may change)."""
        with self.locked_state() as state:
            home = state.home_host_url.rstrip("/")
            return (
                not home
                or home == self.context.address.rstrip("/")
                or state.home_host_name == self.context.name
            )

    def home_url(self) -> str:
        """Where the job's home is now."""
        state = self.state
        if not state.home_host_url or state.home_host_name == self.context.name:
            return self.context.address
        return state.home_host_url

    # --- lifecycle --------------------------------------------------------------------------------------

    def run(self) -> None:
        self.start_compute_worker()

    def on_activation(self, event: PersistencyEvent) -> None:
        with self.locked_state() as state:
            if state.compute_status == COMPUTE_STATUS_RUNNING and state.restart_running_on_host_startup:
                restore_initial_state(state)

    def deactivation_policy(self, request: DeactivationRequest) -> DeactivationPolicy:
        with self.locked_state() as state:
            running = state.compute_status == COMPUTE_STATUS_RUNNING
            if request.reason == "shutdown" and running and state.restart_running_on_host_startup:
                return DeactivationPolicy(
                    activate_on_message=True, activate_on_startup=True, queue_messages_when_inactive=True
                )
        return super().deactivation_policy(request)

    def on_deactivating(self, event: PersistencyEvent) -> None:
        with self.locked_state() as state:
            if state.compute_status == COMPUTE_STATUS_RUNNING and state.restart_running_on_host_startup:
                restore_initial_state(state)

    def handle_message(self, message: Message) -> Any:
        kind = message.kind
        if kind == cs.GRANTED_MESSAGE:
            reply = dataclass_from_wire(SlotDecisionReply, dict(message.args))
            with self.locked_state() as state:
                wanted = state.compute_status in (COMPUTE_STATUS_WAITING_FOR_SLOT, COMPUTE_STATUS_PLACING)
                if wanted:
                    record_grant(state, reply)
            if not wanted and reply.lease_id != self.state.slot_lease_id:  # not ours to keep: give it back
                release = SlotReleaseRequest(lease_id=reply.lease_id, agent_id=self.agent_id)
                threading.Thread(
                    target=self._scheduler_call, args=(cs.RELEASE_SLOT, release), daemon=True
                ).start()
            self.notify_all_state_changed()
            self.start_compute_worker()
            return {"ok": True}
        if kind == cs.REDIRECT_MESSAGE:
            reply = dataclass_from_wire(SlotDecisionReply, dict(message.args))
            with self.locked_state() as state:
                if state.compute_status in (COMPUTE_STATUS_WAITING_FOR_SLOT, COMPUTE_STATUS_PLACING):
                    record_redirect(state, reply)
            self.notify_all_state_changed()
            self.start_compute_worker()
            return {"ok": True}
        if kind in (cs.TIMEOUT_MESSAGE, cs.STOP_MESSAGE):
            if kind == cs.TIMEOUT_MESSAGE:
                limit = float(message.args.get("timeout_seconds") or 0.0)
                why = f"timed out after {limit:.0f} s on {self.context.name}"
            else:
                why = f"{message.args.get('reason') or 'stopped'} on {self.context.name}"
            threading.Thread(target=self._end, args=(why,), name="paglets-compute-stop", daemon=True).start()
            return {"ok": True}
        if kind == cs.COMPUTE_USAGE_PATHS_MESSAGE:
            return {"paths": [str(p) for p in (self.compute_usage_paths() or ()) if str(p)][:16]}
        custom = self.handle_compute_job_message(message)
        return self.not_handled() if custom is None else custom

    # --- the worker -------------------------------------------------------------------------------------

    def start_compute_worker(self) -> None:
        with self.locked():
            if self._stopping or (self._worker is not None and self._worker.is_alive()):
                return
            self._worker = threading.Thread(target=self._work, name="paglets-compute-job", daemon=True)
            self._worker.start()

    def _work(self) -> None:
        try:
            while not self._stopping:
                before = self.state.compute_status
                self.advance_compute_job()
                if self.state.compute_status == before or self._stopping:
                    return
        except _Stop as exc:
            self._end(str(exc), report=False)
        except Exception as exc:
            self._fail(f"{type(exc).__name__}: {exc}")

    def advance_compute_job(self) -> None:
        """One step of the lifecycle (see the module docstring)."""
        status = self.state.compute_status
        here = self.context.address.rstrip("/")
        target = self.state.selected_host_url.rstrip("/")
        if status == COMPUTE_STATUS_PLACING and target and target != here:
            self._move_on()  # redirected, or its move was interrupted
        elif (
            status in (COMPUTE_STATUS_NEW, COMPUTE_STATUS_PLACING)
            and self.is_compute_home()
            and target != here
        ):
            self._place_from_home()
        elif status in (COMPUTE_STATUS_NEW, COMPUTE_STATUS_PLACING):
            self._request_slot()  # it arrived where it was sent
        elif status == COMPUTE_STATUS_WAITING_FOR_SLOT:
            if self.wait_state(lambda s: s.compute_status != COMPUTE_STATUS_WAITING_FOR_SLOT, WAKE_GRACE):
                return  # the message that woke it moved it on
            self._request_slot()
        elif status == COMPUTE_STATUS_RUNNING:
            self._run_granted()
        elif status == COMPUTE_STATUS_COMPLETED:
            self.continue_after_compute_success()

    def _place_from_home(self) -> None:
        error = self.validate_compute_estimates()
        if error:
            self._fail(error)
            return
        with self.locked_state() as state:
            first = not state.home_host_url
            if first:
                state.home_host_name = self.context.name
                state.home_host_url = self.context.address.rstrip("/")
            state.compute_job_key = state.compute_job_key or f"compute-job-{self.agent_id}"
            state.slot_request_id = state.slot_request_id or f"compute-slot-{uuid.uuid4().hex}"
            if not state.restart_initial_state:
                snapshot = replace(state, restart_initial_state={})
                state.restart_initial_state = dataclass_to_wire(snapshot)
            state.compute_status = COMPUTE_STATUS_PLACING
        self._track()
        for _ in range(MAX_PLACEMENT_TRIES):
            reply = self._candidates()
            accepted = [c for c in reply.candidates if self.accept_compute_candidate(c)]
            if not accepted:
                reasons = "; ".join(f"{host}: {why}" for host, why in sorted(reply.rejected.items()))
                self._fail("no host can run this job" + (f" ({reasons})" if reasons else ""))
                return
            chosen = reply.selected if reply.selected in accepted else accepted[0]
            target = chosen.status.host_url.rstrip("/")
            if target == self.context.address.rstrip("/"):
                self._request_slot()
                return
            with self.locked_state() as state:
                state.selected_host_url = target
            self._tell_home(COMPUTE_STATUS_PLACING, chosen.status.host_name, target)
            try:
                self.dispatch(target)
                return
            except PagletError as exc:
                with self.locked_state() as state:
                    state.excluded_host_urls = (*state.excluded_host_urls, target)
                    state.compute_error = f"could not move to {target}: {exc}"
        self._fail(f"could not move to any host ({self.state.compute_error})")

    def _track(self) -> None:
        state = self.state
        data = restart_snapshot(state)
        request = TrackJobRequest(
            job_id=self.compute_job_id(),
            agent_id=self.agent_id,
            class_name=qualified_name(type(self)),
            state_class=qualified_name(type(state)),
            group_id=state.group_id,
            restart_state=data,
            max_restarts=max(0, int(state.max_restarts)),
            **self._collector_fields(),
        )
        reply = self._home_call(cs.TRACK_JOB, request)
        if reply is not None and reply.attempt > state.compute_attempt:
            raise _Stop(f"superseded by attempt {reply.attempt}")

    def _collector_fields(self) -> dict[str, str]:
        """Where the home reports this job's final failure besides user-info (groups set it)."""
        return {}

    def _candidates(self) -> CandidateHostsReply:
        state = self.state
        handle = self.require_contract(
            cs.COMPUTE_SLOTS, operation=cs.CANDIDATE_HOSTS, scope=ServiceScope.LOCAL
        )
        request = CandidateHostsRequest(
            slot=self._slot_request(),
            limit=max(1, int(state.candidate_limit)),
            include_self=bool(state.allow_home_compute),
        )
        reply: CandidateHostsReply = handle.call(
            cs.CANDIDATE_HOSTS, request, timeout=max(1.0, float(state.scheduler_timeout_seconds))
        )
        return reply

    def _slot_request(self) -> ComputeSlotRequest:
        return slot_request(
            self.state, self.agent_id, self.context.address, qualified_name(type(self)), self.home_url()
        )

    def _request_slot(self) -> None:
        state = self.state
        handle = self.require_contract(cs.COMPUTE_SLOTS, operation=cs.REQUEST_SLOT, scope=ServiceScope.LOCAL)
        reply: SlotDecisionReply = handle.call(
            cs.REQUEST_SLOT, self._slot_request(), timeout=max(1.0, float(state.scheduler_timeout_seconds))
        )
        if reply.decision == cs.DECISION_RUN_NOW:
            with self.locked_state() as s:
                record_grant(s, reply)
            return
        if reply.decision == cs.DECISION_REDIRECT and reply.host_url:
            with self.locked_state() as s:
                record_redirect(s, reply)
            self._move_on()
            return
        if reply.decision == cs.DECISION_SLEEP:
            self._sleep(reply)
            return
        if reply.message.startswith("superseded"):  # its home started a newer attempt: end quietly
            raise _Stop(reply.message)
        self._fail(reply.message or f"the scheduler on {self.context.name} refused the job")

    def _sleep(self, reply: SlotDecisionReply) -> None:
        self._tell_home(COMPUTE_STATUS_WAITING_FOR_SLOT, self.context.name, self.context.address)
        recheck = reply.recheck_seconds if reply.recheck_seconds > 0 else DEFAULT_RECHECK
        with self.locked_state() as state:
            if (
                state.compute_status != COMPUTE_STATUS_PLACING
                and state.compute_status != COMPUTE_STATUS_WAITING_FOR_SLOT
            ):
                return  # a grant came while it decided to sleep
            state.compute_status = COMPUTE_STATUS_WAITING_FOR_SLOT
            policy = DeactivationPolicy.after(
                recheck,
                activate_on_message=True,
                queue_messages_when_inactive=True,
                activate_on_startup=False,
            )
            self._stopping = True  # this process ends with the deactivation
            try:
                self.deactivate(reason="waiting-for-slot", policy=policy)
            except PagletError:  # e.g. the host is saving it for a shutdown: it waits active instead
                self._stopping = False

    def _move_on(self) -> None:
        target = self.state.selected_host_url
        self._tell_home(COMPUTE_STATUS_PLACING, "", target)
        with self.locked_state() as state:
            state.compute_status = COMPUTE_STATUS_PLACING
        try:
            self.dispatch(target)
        except PagletError as exc:  # the peer went away: ask this host again (no redirect for a while)
            with self.locked_state() as state:
                state.excluded_host_urls = (*state.excluded_host_urls, target)
                state.compute_error = f"could not move to {target}: {exc}"
            self._request_slot()

    def _run_granted(self) -> None:
        from paglets.compute._affinity import apply_current_thread_cpu_affinity

        with self.locked_state() as state:
            ids, pin = list(state.cpu_core_ids), state.cpu_affinity_supported
            lease_id = state.slot_lease_id
            state.started_running_at = time.time()
        result = apply_current_thread_cpu_affinity(ids) if pin and ids else None
        with self.locked_state() as state:
            state.cpu_affinity_enforced = bool(result and result.enforced)
            state.cpu_affinity_error = (result.error if result else "") or (
                "" if pin else "not pinned (the host does not pin jobs, or declares its capacity)"
            )
        self._scheduler_call(
            cs.LEASE_UPDATE,
            LeaseUpdateRequest(
                lease_id=lease_id,
                agent_id=self.agent_id,
                pid=os.getpid(),
                cpu_affinity_enforced=self.state.cpu_affinity_enforced,
                cpu_affinity_error=self.state.cpu_affinity_error,
                work_dir=str(self.work_dir()),
            ),
        )
        self._tell_home(COMPUTE_STATUS_RUNNING, self.context.name, self.context.address)
        try:
            self.run_compute_job()
        except _Stop:
            raise
        except Exception as exc:
            if not self._stopping:
                self._fail(f"{type(exc).__name__}: {exc}")
            return
        if self._stopping:
            return
        self._release()
        with self.locked_state() as state:
            state.compute_status = COMPUTE_STATUS_COMPLETED
            state.compute_error = ""
        self._tell_home(COMPUTE_STATUS_COMPLETED, self.context.name, self.context.address)
        self.after_compute_success()

    # --- ending -----------------------------------------------------------------------------------------

    def _fail(self, message: str) -> None:
        self._release()
        with self.locked_state() as state:
            if state.compute_status in FINISHED:
                return
            state.compute_status = COMPUTE_STATUS_FAILED_FINAL
            state.compute_error = message
        self._tell_home(COMPUTE_STATUS_FAILED_FINAL, self.context.name, self.context.address, message)
        self.after_compute_failure(message)

    def _end(self, why: str, *, report: bool = True) -> None:
        """Stop this run for good (timeout, cancellation, superseded) and end the process."""
        with self.locked():
            if self._ending:  # a second stop (its scheduler and its home both said so)
                return
            self._ending = self._stopping = True
        if report:
            self._fail(why)
        else:
            self._release()
            with self.locked_state() as state:
                state.compute_status = COMPUTE_STATUS_FAILED_FINAL
                state.compute_error = why
        try:
            self.context.host.dispose(self.agent_id)  # type: ignore[attr-defined]
        except Exception:
            pass

    def _release(self) -> None:
        with self.locked_state() as state:
            lease_id, state.slot_lease_id = state.slot_lease_id, ""
            timeout = max(0.1, float(state.release_timeout_seconds))
        if lease_id:
            self._scheduler_call(
                cs.RELEASE_SLOT, SlotReleaseRequest(lease_id=lease_id, agent_id=self.agent_id), timeout
            )

    # --- calls --------------------------------------------------------------------------------------

    def _scheduler_call(self, operation: Any, request: Any, timeout: float = 5.0) -> Any:
        try:
            handle = self.require_contract(cs.COMPUTE_SLOTS, operation=operation, scope=ServiceScope.LOCAL)
            return handle.call(operation, request, timeout=timeout)
        except Exception:
            return None

    def _home_call(self, operation: Any, request: Any, timeout: float = 5.0) -> Any:
        home = self.home_url()
        try:
            proxy = proxy_to(self.context, cs.COMPUTE_SLOTS_AGENT_ID, home)
            return operation.decode_reply(proxy.send(operation.to_message(request), timeout=timeout))
        except Exception:
            return None

    def _tell_home(self, status: str, host_name: str, host_url: str, error: str = "") -> None:
        """Report a step to the job's home; a "stop" answer ends this run."""
        request = JobUpdateRequest(
            job_id=self.compute_job_id(),
            agent_id=self.agent_id,
            attempt=max(1, int(self.state.compute_attempt)),
            status=status,
            host_name=host_name,
            host_url=host_url.rstrip("/"),
            error=error[:500],
        )
        reply = self._home_call(cs.JOB_UPDATE, request, timeout=2.0)
        if reply is not None and not reply.proceed and status not in FINISHED:
            raise _Stop(f"stopped by its home: {reply.reason}")
