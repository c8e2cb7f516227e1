"""The paglets of the analysis-jobs example.

:class:`AnalysisCampaignPaglet` lives on the host the user started the campaign from (its home): ``start``
creates the analysis jobs (a job group whose collector it is), each result that comes back is committed
to the SQLite database at home before it counts as done, and when every job has reported, the user gets
one ``compute-group.done`` notification (``user-info`` on the home host). ``summary`` answers with the
group's progress and every committed result.

:class:`AnalysisJobPaglet` is a compute job (1 core, the given memory and scratch space, an estimate of
``target_runtime`` seconds): it goes where a slot is free, builds its synthetic data set there, runs the
analysis (:mod:`paglets.examples.analysis_jobs.workload`) and reports the result to the campaign.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Final

from paglets.compute import CollectingComputeJobPaglet, CollectingComputeJobState
from paglets.compute.groups import ResultCollectorPaglet, ResultCollectorState, prepare_group_jobs
from paglets.core.messages import Message

__all__ = [
    "AnalysisCampaignPaglet",
    "AnalysisCampaignRequest",
    "AnalysisCampaignState",
    "AnalysisJobPaglet",
    "AnalysisJobState",
]

DEFAULT_TASK_COUNT: Final = 20
#: Rows per job: the analysis is pure Python, so fewer than paglets 2.0's 80,000 (pandas) rows.
DEFAULT_ROW_COUNT: Final = 20_000
DEFAULT_FEATURE_COUNT: Final = 16
DEFAULT_ESTIMATOR_TREES: Final = 4
DEFAULT_TARGET_RUNTIME_SECONDS: Final = 150.0
DEFAULT_DB_LOCK_TIMEOUT_SECONDS: Final = 60.0
DEFAULT_CPU_CORES: Final = 1
DEFAULT_MEMORY_BYTES: Final = 512 * 1024 * 1024
DEFAULT_TEMP_STORAGE_BYTES: Final = 256 * 1024 * 1024
#: Jobs one campaign may submit.
MAX_TASKS: Final = 10_000


@dataclass(frozen=True, slots=True)
class AnalysisCampaignRequest:
    task_count: int = DEFAULT_TASK_COUNT
    db_path: str = "paglets-analysis-results.sqlite"
    row_count: int = DEFAULT_ROW_COUNT
    feature_count: int = DEFAULT_FEATURE_COUNT
    estimator_trees: int = DEFAULT_ESTIMATOR_TREES
    target_runtime_seconds: float = DEFAULT_TARGET_RUNTIME_SECONDS
    cpu_cores: int = DEFAULT_CPU_CORES
    memory_bytes: int = DEFAULT_MEMORY_BYTES
    temp_storage_bytes: int = DEFAULT_TEMP_STORAGE_BYTES
    db_lock_timeout_seconds: float = DEFAULT_DB_LOCK_TIMEOUT_SECONDS
    allow_home_compute: bool = True


@dataclass
class AnalysisCampaignState(ResultCollectorState):
    campaign_id: str = ""
    request: dict[str, Any] = field(default_factory=dict)
    db_path: str = ""
    created_jobs: int = 0
    creating: bool = False
    committed: int = 0
    started_at: float = 0.0


@dataclass
class AnalysisJobState(CollectingComputeJobState):
    campaign_id: str = ""
    seed: int = 0
    row_count: int = DEFAULT_ROW_COUNT
    feature_count: int = DEFAULT_FEATURE_COUNT
    estimator_trees: int = DEFAULT_ESTIMATOR_TREES
    target_runtime_seconds: float = DEFAULT_TARGET_RUNTIME_SECONDS
    result: dict[str, Any] = field(default_factory=dict)


class AnalysisCampaignPaglet(ResultCollectorPaglet):
    """See the module docstring."""

    State = AnalysisCampaignState

    def __init__(self, state: Any = None, *, agent_id: str | None = None) -> None:
        super().__init__(state, agent_id=agent_id)
        self._seeder: threading.Thread | None = None

    @property
    def campaign(self) -> AnalysisCampaignState:
        state: AnalysisCampaignState = self.state  # type: ignore[assignment]
        return state

    def handle_message(self, message: Message) -> Any:
        if message.kind == "start":
            return self.start(dict(message.args.get("request") or {}))
        return super().handle_message(message)

    def start(self, wire: dict[str, Any]) -> dict[str, Any]:
        from paglets.serialization.codec import dataclass_from_wire

        request = dataclass_from_wire(AnalysisCampaignRequest, wire)
        if not 1 <= request.task_count <= MAX_TASKS:
            raise ValueError(f"task_count must be between 1 and {MAX_TASKS}, got {request.task_count}")
        with self.locked_state():
            state = self.campaign
            if not state.campaign_id:
                state.campaign_id = f"analysis-{uuid.uuid4().hex[:12]}"
                state.group_id = state.campaign_id
                state.request = dict(wire)
                state.db_path = request.db_path
                state.started_at = time.time()
                state.creating = True
                self._seeder = threading.Thread(target=self._seed, args=(request,), daemon=True)
                self._seeder.start()
            return {"campaign_id": state.campaign_id, "group_id": state.group_id, "db_path": state.db_path}

    def _seed(self, request: AnalysisCampaignRequest) -> None:
        campaign_id = self.campaign.campaign_id
        states = [
            AnalysisJobState(
                campaign_id=campaign_id,
                seed=10_000 + index,
                row_count=request.row_count,
                feature_count=request.feature_count,
                estimator_trees=request.estimator_trees,
                target_runtime_seconds=request.target_runtime_seconds,
                estimated_runtime_seconds=request.target_runtime_seconds,
                cpu_cores=request.cpu_cores,
                memory_bytes=request.memory_bytes,
                temp_storage_bytes=request.temp_storage_bytes,
                allow_home_compute=request.allow_home_compute,
                job_key=f"{campaign_id}-{index:04d}",
            )
            for index in range(request.task_count)
        ]
        expected = prepare_group_jobs(states, campaign_id, self.agent_id, self.context.address)
        self.register_jobs(expected)
        for state in states:
            try:
                self.context.create_paglet(AnalysisJobPaglet, state)
            except Exception as exc:
                self.record_job_failure({"job_key": state.job_key, "error": f"not created: {exc}"})
                continue
            with self.locked_state():
                self.campaign.created_jobs += 1
        with self.locked_state():
            self.campaign.creating = False

    def record_job_result(self, payload: dict[str, Any]) -> dict[str, Any]:
        from paglets.examples.analysis_jobs.workload import commit

        key = str(payload.get("job_key") or "")
        result = dict(payload.get("result") or {})
        state = self.campaign
        try:
            new = commit(
                state.db_path,
                state.campaign_id,
                key,
                {**result, "host_name": payload.get("host_name", "")},
                lock_timeout=float(
                    state.request.get("db_lock_timeout_seconds", DEFAULT_DB_LOCK_TIMEOUT_SECONDS)
                ),
            )
        except Exception as exc:
            return self.record_job_failure({**payload, "error": f"commit to {state.db_path} failed: {exc}"})
        if new:
            with self.locked_state():
                state.committed += 1
        brief = {k: result[k] for k in ("rounds", "model_score", "duration_seconds") if k in result}
        return super().record_job_result({**payload, "result": brief})

    def summary(self) -> dict[str, Any]:
        out = super().summary()
        state = self.campaign
        out.update(
            campaign_id=state.campaign_id,
            db_path=state.db_path,
            created_jobs=state.created_jobs,
            creating=state.creating,
            committed=state.committed,
            started_at=state.started_at,
        )
        return out


class AnalysisJobPaglet(CollectingComputeJobPaglet):
    """See the module docstring."""

    State = AnalysisJobState

    @property
    def job(self) -> AnalysisJobState:
        state: AnalysisJobState = self.state  # type: ignore[assignment]
        return state

    def run_compute_job(self) -> None:
        from paglets.examples.analysis_jobs.workload import analyse, make_dataset

        state = self.job
        xs, ys = make_dataset(state.seed, state.row_count, state.feature_count)
        result = analyse(
            xs,
            ys,
            seed=state.seed,
            target_runtime=state.target_runtime_seconds,
            min_rounds=state.estimator_trees,
        )
        with self.locked_state():
            state.result = {
                **result,
                "rows": len(xs),
                "feature_count": len(xs[0]),
                "cpu_core_ids": list(state.cpu_core_ids),
                "cpu_affinity_enforced": state.cpu_affinity_enforced,
            }

    def build_result_payload(self) -> dict[str, Any]:
        return dict(self.job.result)
