"""Job groups: many compute jobs whose results one ``ResultCollectorPaglet`` gathers.

:func:`submit_compute_job_group` creates the collector (on the submitting host, or ``collector_host_url``)
and one :class:`CollectingComputeJobPaglet` per state; each job reports its result (``job_result``, a
JSON-sized dict, or an artifact reference for large results: :meth:`report_compute_artifact`) or its
failure (``job_failure``) to the collector and then disposes itself. The collector records the first
report of each job (later ones are kept as duplicates, never overwrite), knows which jobs are pending,
and when every job has reported it is ``COMPLETE`` and sends one ``compute-group.done`` notification to
``user-info`` on its home host. With ``return_home_when_complete`` a collector created elsewhere goes home
(or, while home is offline, sleeps and checks again every ``home_check_seconds``).

A job that is lost with its host is restarted by its home or, out of restarts, reported to the collector
as failed by its home's scheduler, so a group always completes.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from paglets.compute._job_steps import proxy_to
from paglets.compute.job import ComputeJobPaglet, ComputeJobState
from paglets.core.agent import Paglet, PagletState
from paglets.core.events import CreationEvent, PersistencyEvent
from paglets.core.messages import Message
from paglets.persistence.persistency import DeactivationPolicy
from paglets.serialization.codec import dataclass_to_wire

__all__ = [
    "GROUP_STATUS_ACTIVE",
    "GROUP_STATUS_COMPLETE",
    "GROUP_STATUS_RETURNING_HOME",
    "GROUP_STATUS_WAITING_FOR_HOME",
    "CollectingComputeJobPaglet",
    "CollectingComputeJobState",
    "ComputeJobGroupSubmission",
    "ResultCollectorPaglet",
    "ResultCollectorState",
    "prepare_group_jobs",
    "submit_compute_job_group",
]

GROUP_STATUS_ACTIVE: Final = "ACTIVE"
GROUP_STATUS_COMPLETE: Final = "COMPLETE"
GROUP_STATUS_WAITING_FOR_HOME: Final = "WAITING_FOR_HOME"
GROUP_STATUS_RETURNING_HOME: Final = "RETURNING_HOME"
#: Jobs one group may hold.
MAX_GROUP_JOBS: Final = 10_000
#: Duplicate reports kept (the oldest go first).
MAX_DUPLICATES: Final = 100
#: Longest text kept of an error in a failure report.
MAX_ERROR_CHARS: Final = 2000


@dataclass
class ResultCollectorState(PagletState):
    group_id: str = ""
    home_host_name: str = ""
    home_host_url: str = ""
    status: str = GROUP_STATUS_ACTIVE
    return_home_when_complete: bool = False
    home_check_seconds: float = 300.0
    expected_jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    failures: dict[str, dict[str, Any]] = field(default_factory=dict)
    duplicate_reports: list[dict[str, Any]] = field(default_factory=list)
    created_at: float = field(default_factory=time.time)
    completed_at: float = 0.0
    last_report_at: float = 0.0
    notified: bool = False


@dataclass
class CollectingComputeJobState(ComputeJobState):
    job_key: str = ""
    collector_agent_id: str = ""
    collector_host_url: str = ""
    report_timeout_seconds: float = 5.0
    dispose_after_report: bool = True
    report_sent: bool = False
    report_error: str = ""


@dataclass(frozen=True, slots=True)
class ComputeJobGroupSubmission:
    group_id: str
    collector: Any
    jobs: list[Any] = field(default_factory=list)
    creation_errors: dict[str, str] = field(default_factory=dict)


class ResultCollectorPaglet(Paglet[ResultCollectorState]):
    """Gathers the reports of a job group (see the module docstring)."""

    State = ResultCollectorState

    def on_creation(self, event: CreationEvent) -> None:
        with self.locked_state() as state:
            state.home_host_name = state.home_host_name or self.context.name
            state.home_host_url = state.home_host_url or self.context.address.rstrip("/")
            state.group_id = state.group_id or f"group-{uuid.uuid4().hex}"

    def on_activation(self, event: PersistencyEvent) -> None:
        if self.state.status in (GROUP_STATUS_WAITING_FOR_HOME, GROUP_STATUS_RETURNING_HOME):
            self._try_return_home()

    def handle_message(self, message: Message) -> Any:
        kind, args = message.kind, dict(message.args or {})
        if kind == "register_jobs":
            return self.register_jobs(list(args.get("jobs") or []))
        if kind == "job_result":
            return self.record_job_result(args)
        if kind == "job_failure":
            return self.record_job_failure(args)
        if kind in ("summary", "status"):
            return self.summary()
        if kind == "return_home":
            self._try_return_home()
            return self.summary()
        return self.not_handled()

    def register_jobs(self, jobs: list[dict[str, Any]]) -> dict[str, Any]:
        with self.locked_state() as state:
            for job in jobs[:MAX_GROUP_JOBS]:
                key = str(job.get("job_key") or job.get("job_id") or "").strip()
                if not key or (key not in state.expected_jobs and len(state.expected_jobs) >= MAX_GROUP_JOBS):
                    continue
                current = dict(state.expected_jobs.get(key) or {})
                current.update({str(k): v for k, v in job.items()})
                current["job_key"] = key
                state.expected_jobs[key] = current
        self.notify_all_state_changed()
        return self.summary()

    def record_job_result(self, payload: dict[str, Any]) -> dict[str, Any]:
        return self._record(payload, success=True)

    def record_job_failure(self, payload: dict[str, Any]) -> dict[str, Any]:
        if "error" in payload:
            payload["error"] = str(payload["error"])[:MAX_ERROR_CHARS]
        return self._record(payload, success=False)

    def summary(self) -> dict[str, Any]:
        with self.locked_state() as state:
            expected, done, failed = set(state.expected_jobs), set(state.results), set(state.failures)
            pending = sorted(expected - done - failed)
            return {
                "group_id": state.group_id,
                "status": state.status,
                "collector": {
                    "host_name": self.context.name,
                    "host_url": self.context.address,
                    "agent_id": self.agent_id,
                },
                "home": {"host_name": state.home_host_name, "host_url": state.home_host_url},
                "return_home_when_complete": state.return_home_when_complete,
                "waiting_for_home": state.status == GROUP_STATUS_WAITING_FOR_HOME,
                "expected_count": len(expected),
                "completed_count": len(done),
                "failed_count": len(failed),
                "pending_count": len(pending),
                "pending_jobs": pending,
                "expected_jobs": dict(state.expected_jobs),
                "results": dict(state.results),
                "failures": dict(state.failures),
                "duplicate_reports": list(state.duplicate_reports),
                "created_at": state.created_at,
                "completed_at": state.completed_at,
                "last_report_at": state.last_report_at,
            }

    def on_group_complete(self) -> None:
        """Called once when the last job reported (default: notify the user on the home host)."""
        summary = self.summary()
        text = (
            f"group {summary['group_id']}: {summary['completed_count']} of {summary['expected_count']} "
            f"jobs succeeded, {summary['failed_count']} failed"
        )
        self._notify("warning" if summary["failed_count"] else "info", "compute-group.done", text)

    def _notify(self, severity: str, title: str, text: str) -> None:
        from paglets.services.builtin.user_info import NOTIFY_USER, USER_INFO_AGENT_ID, UserInfoRequest

        request = UserInfoRequest(
            severity=severity,
            title=title,
            message=text,
            source_agent_id=self.agent_id,
            job_id=self.state.group_id,
            timestamp=time.time(),
            metadata={"group_id": self.state.group_id},
        )
        try:
            proxy = proxy_to(
                self.context, USER_INFO_AGENT_ID, self.state.home_host_url or self.context.address
            )
            proxy.send_oneway(NOTIFY_USER.to_message(request), timeout=5.0)
        except Exception:
            pass

    def _record(self, payload: dict[str, Any], *, success: bool) -> dict[str, Any]:
        key = str(payload.get("job_key") or payload.get("job_id") or "").strip()
        if not key:
            return {"ok": False, "error": "job report missing job_key"}
        with self.locked_state() as state:
            if key in state.results or key in state.failures:
                state.duplicate_reports.append({**payload, "success": success, "reported_at": time.time()})
                state.duplicate_reports = state.duplicate_reports[-MAX_DUPLICATES:]
                return {"ok": True, "duplicate": True}
            if key not in state.expected_jobs:
                if len(state.expected_jobs) >= MAX_GROUP_JOBS:
                    return {"ok": False, "error": f"group holds {MAX_GROUP_JOBS} jobs already"}
                state.expected_jobs[key] = {"job_key": key}
            record = {**payload, "job_key": key, "reported_at": time.time()}
            (state.results if success else state.failures)[key] = record
            state.last_report_at = record["reported_at"]
            complete = self._complete(state)
            first_completion = complete and state.completed_at <= 0
            if first_completion:
                state.completed_at = time.time()
                if not state.return_home_when_complete:
                    state.status = GROUP_STATUS_COMPLETE
        self.notify_all_state_changed()
        if first_completion:
            if not self.state.notified:
                self.state.notified = True
                self.on_group_complete()
            if self.state.return_home_when_complete:
                self._try_return_home()
        return {"ok": True}

    @staticmethod
    def _complete(state: ResultCollectorState) -> bool:
        expected = set(state.expected_jobs)
        return bool(expected) and expected <= set(state.results) | set(state.failures)

    def _try_return_home(self) -> None:
        with self.locked_state() as state:
            home = state.home_host_url
            interval = max(1.0, float(state.home_check_seconds))
        if not home or home.rstrip("/") == self.context.address.rstrip("/"):
            with self.locked_state() as state:
                state.status = GROUP_STATUS_COMPLETE
            return
        if not self.context.is_host_online(home):
            with self.locked_state() as state:
                state.status = GROUP_STATUS_WAITING_FOR_HOME
            policy = DeactivationPolicy.after(
                interval,
                activate_on_message=True,
                queue_messages_when_inactive=True,
                activate_on_startup=True,
            )
            self.deactivate(reason="waiting-for-home", policy=policy)
            return
        with self.locked_state() as state:
            state.status = GROUP_STATUS_RETURNING_HOME
        self.dispatch(home)


class CollectingComputeJobPaglet(ComputeJobPaglet[CollectingComputeJobState]):
    """A compute job that reports to its group's collector and then disposes itself."""

    State = CollectingComputeJobState

    def handle_compute_job_message(self, message: Message) -> Any | None:
        if message.kind == "status":
            with self.locked_state() as state:
                return dataclass_to_wire(state)
        return None

    def build_result_payload(self) -> dict[str, Any]:
        """The result reported to the collector after ``run_compute_job`` succeeded (JSON-sized)."""
        return {}

    def after_compute_success(self) -> None:
        if not self.state.report_sent:
            self.report_compute_success(self.build_result_payload())
        if self.state.dispose_after_report:
            self._dispose_self()

    def after_compute_failure(self, message: str) -> None:
        self.report_compute_failure(message)

    def report_compute_success(self, result: dict[str, Any] | None = None) -> bool:
        return self._report("job_result", {"result": dict(result or {})})

    def report_compute_artifact(
        self,
        path: str | Path,
        *,
        result: dict[str, Any] | None = None,
        move: bool = False,
        name: str | None = None,
    ) -> bool:
        """Upload ``path`` to the collector's host (owned by the collector) and report its reference."""
        state = self.state
        artifact = self.upload_artifact(
            path, host_url=state.collector_host_url, owner_agent_id=state.collector_agent_id, name=name
        )
        ok = self.report_compute_success({**(result or {}), "artifact": artifact.to_wire()})
        if ok and move:
            Path(path).unlink(missing_ok=True)
        return ok

    def report_compute_failure(self, error: str, *, details: dict[str, Any] | None = None) -> bool:
        payload: dict[str, Any] = {"error": error[:MAX_ERROR_CHARS]}
        if details:
            payload["details"] = dict(details)
        return self._report("job_failure", payload)

    def _collector_fields(self) -> dict[str, str]:
        state = self.state
        return {
            "collector_agent_id": state.collector_agent_id,
            "collector_host_url": state.collector_host_url,
            "job_key": state.job_key or self.compute_job_id(),
        }

    def _report(self, kind: str, payload: dict[str, Any]) -> bool:
        with self.locked_state() as state:
            report = {
                "group_id": state.group_id,
                "job_key": state.job_key or self.compute_job_id(),
                "agent_id": self.agent_id,
                "host_name": self.context.name,
                "host_url": self.context.address,
                "attempt": state.compute_attempt,
                **payload,
            }
            collector, url = state.collector_agent_id, state.collector_host_url
            timeout = max(0.1, float(state.report_timeout_seconds))
        if not collector or not url:
            with self.locked_state() as state:
                state.report_error = "no collector configured"
            return False
        try:
            proxy_to(self.context, collector, url).send(Message(kind, report), timeout=timeout)
        except Exception as exc:
            with self.locked_state() as state:
                state.report_error = str(exc)[:500]
            return False
        with self.locked_state() as state:
            state.report_sent, state.report_error = True, ""
        return True

    def _dispose_self(self) -> None:
        try:
            self.context.host.dispose(self.agent_id)  # type: ignore[attr-defined]
        except Exception:
            pass


def submit_compute_job_group(
    context_or_host: Any,
    job_cls: type[ComputeJobPaglet[Any]],
    job_states: list[CollectingComputeJobState],
    *,
    collector_cls: type[ResultCollectorPaglet] = ResultCollectorPaglet,
    collector_state: ResultCollectorState | None = None,
    collector_host_url: str | None = None,
    group_id: str | None = None,
    return_home_when_complete: bool = False,
    job_metadata: list[dict[str, Any]] | None = None,
) -> ComputeJobGroupSubmission:
    """Create a collector and the jobs of one group (``context_or_host``: a ``PagletContext`` or a
    ``Host``). A job that cannot be created is reported to the collector as failed at once."""
    if len(job_states) > MAX_GROUP_JOBS:
        raise ValueError(f"a group holds at most {MAX_GROUP_JOBS} jobs, got {len(job_states)}")
    create, name, address = _creator(context_or_host)
    group_id = group_id or f"group-{uuid.uuid4().hex}"
    collector_state = collector_state or collector_cls.state_class()()
    collector_state.group_id = group_id
    collector_state.home_host_name = collector_state.home_host_name or name
    collector_state.home_host_url = collector_state.home_host_url or address.rstrip("/")
    collector_state.return_home_when_complete = return_home_when_complete
    collector = create(collector_cls, collector_state, collector_host_url)
    expected = prepare_group_jobs(job_states, group_id, collector.agent_id, collector.host_url, job_metadata)
    collector.send(Message("register_jobs", {"jobs": expected}))
    jobs, errors, updates = [], {}, []
    for state in job_states:
        try:
            proxy = create(job_cls, state, None)
        except Exception as exc:
            errors[state.job_key] = str(exc)
            failure = {"group_id": group_id, "job_key": state.job_key, "error": str(exc), "stage": "create"}
            collector.send(Message("job_failure", failure))
            continue
        jobs.append(proxy)
        updates.append({"job_key": state.job_key, "agent_id": proxy.agent_id, "host_url": proxy.host_url})
    if updates:
        collector.send(Message("register_jobs", {"jobs": updates}))
    return ComputeJobGroupSubmission(group_id, collector, jobs, errors)


def prepare_group_jobs(
    job_states: Sequence[CollectingComputeJobState],
    group_id: str,
    collector_agent_id: str,
    collector_host_url: str,
    job_metadata: list[dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """Point ``job_states`` at their group and collector (job keys ``<group>-0000`` ... unless set); the
    ``register_jobs`` entries for the collector."""
    metadata = job_metadata or []
    expected = []
    for index, state in enumerate(job_states):
        state.group_id = group_id
        state.job_key = state.job_key or f"{group_id}-{index:04d}"
        state.compute_job_key = state.compute_job_key or state.job_key
        state.collector_agent_id = collector_agent_id
        state.collector_host_url = collector_host_url.rstrip("/")
        expected.append({"job_key": state.job_key, **(metadata[index] if index < len(metadata) else {})})
    return expected


def _creator(context_or_host: Any) -> tuple[Any, str, str]:
    """A ``create(cls, state, host_url)`` function and the name and address of where it runs."""
    target = context_or_host
    if hasattr(target, "create_paglet"):

        def create(cls: Any, state: Any, host_url: str | None) -> Any:
            return target.create_paglet(cls, state, host_url=host_url)

    else:

        def create(cls: Any, state: Any, host_url: str | None) -> Any:
            if host_url and host_url.rstrip("/") != str(target.address).rstrip("/"):
                return target.create_remote(host_url, cls, state)
            return target.create(cls, state)

    return create, str(target.name), str(target.address)
