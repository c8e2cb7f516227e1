"""What the ``compute-slots`` service reports about jobs: running usage, finished records, notifications.

:class:`UsageBook` keeps, per lease, the number of samples and the peak of each measure; a lease that
ends becomes a :class:`FinishedJobUsage` record with every field filled (a job that was never sampled
reports its declared cores and zero usage, not blanks). :func:`runtime_info` builds the
``ComputeJobRuntimeInfo`` rows of ``jobs top``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from paglets.core.messages import Message
from paglets.services.builtin._compute_probes import Usage, UsageSampler
from paglets.services.builtin.compute_slots import ComputeJobRuntimeInfo, FinishedJobUsage, SlotLease

__all__ = ["UsageBook", "notify_user", "proxy_to", "runtime_info", "sample_job"]


@dataclass(slots=True)
class Peaks:
    samples: int = 0
    last_sampled_at: float = 0.0
    max_cpu_percent: float = 0.0
    max_rss: int = 0
    max_tree_rss: int = 0
    max_work: int = 0
    max_extra: int = 0
    max_total_work: int = 0
    error: str = ""


class UsageBook:
    """Peaks per lease id (not durable: a restart starts counting again)."""

    def __init__(self) -> None:
        self._peaks: dict[str, Peaks] = {}

    def get(self, lease_id: str) -> Peaks:
        return self._peaks.get(lease_id) or Peaks()

    def add(self, lease: SlotLease, usage: Usage) -> None:
        peaks = self._peaks.setdefault(lease.lease_id, Peaks())
        peaks.samples += 1
        peaks.last_sampled_at = time.time()
        peaks.max_cpu_percent = max(peaks.max_cpu_percent, usage.cpu_percent)
        peaks.max_rss = max(peaks.max_rss, usage.memory_rss_bytes)
        peaks.max_tree_rss = max(peaks.max_tree_rss, usage.tree_rss_bytes)
        peaks.max_work = max(peaks.max_work, usage.work_dir_bytes)
        peaks.max_extra = max(peaks.max_extra, usage.extra_bytes)
        peaks.max_total_work = max(peaks.max_total_work, usage.work_dir_bytes + usage.extra_bytes)
        peaks.error = usage.error or peaks.error

    def finish(self, lease: SlotLease, reason: str, now: float) -> FinishedJobUsage:
        peaks = self._peaks.pop(lease.lease_id, None) or Peaks()
        request = lease.request
        return FinishedJobUsage(
            lease_id=lease.lease_id,
            request_id=request.request_id,
            job_id=request.job_id or request.request_id,
            agent_id=request.agent_id,
            class_name=request.class_name or "unknown",
            granted_at=lease.granted_at,
            finished_at=now,
            finish_reason=reason,
            runtime_seconds=max(0.0, now - lease.granted_at),
            declared_cpu_cores=max(1, request.cpu_cores),
            sample_count=peaks.samples,
            max_cpu_percent=round(peaks.max_cpu_percent, 2),
            max_memory_rss_bytes=peaks.max_rss,
            max_process_tree_memory_rss_bytes=max(peaks.max_tree_rss, peaks.max_rss),
            max_work_dir_bytes=peaks.max_work,
            max_extra_work_bytes=peaks.max_extra,
            max_total_work_bytes=peaks.max_total_work,
            usage_error=peaks.error,
        )


def runtime_info(
    lease: SlotLease, peaks: Peaks, sample: Usage | None, active: set[str] | None
) -> ComputeJobRuntimeInfo:
    request = lease.request
    usage = sample or Usage(pid=lease.pid)
    is_active = active is None or request.agent_id in active
    if not usage.process_status:
        usage.process_status = ("running" if lease.pid else "starting") if is_active else "inactive"
    if lease.timed_out_at:
        usage.process_status = "timed-out"
    return ComputeJobRuntimeInfo(
        lease_id=lease.lease_id,
        request_id=request.request_id,
        job_id=request.job_id or request.request_id,
        agent_id=request.agent_id,
        class_name=request.class_name or "unknown",
        granted_at=lease.granted_at,
        active=is_active,
        pid=lease.pid,
        declared_cpu_cores=max(1, request.cpu_cores),
        reserved_cpu_core_ids=list(lease.reserved_cpu_core_ids),
        assigned_cpu_core_ids=list(lease.cpu_core_ids),
        cpu_affinity_supported=lease.cpu_affinity_supported,
        cpu_affinity_enforced=lease.cpu_affinity_enforced,
        cpu_affinity_error=lease.cpu_affinity_error,
        declared_memory_bytes=request.memory_bytes,
        declared_temp_storage_bytes=request.temp_storage_bytes,
        current_cpu_percent=usage.cpu_percent,
        current_memory_rss_bytes=usage.memory_rss_bytes,
        current_memory_percent=usage.memory_percent,
        process_tree_count=usage.tree_count,
        process_tree_memory_rss_bytes=usage.tree_rss_bytes,
        work_dir_path=str(lease.work_dir_base),
        work_dir_bytes=usage.work_dir_bytes,
        work_dir_file_count=usage.work_dir_files,
        extra_work_bytes=usage.extra_bytes,
        extra_work_file_count=usage.extra_files,
        sample_count=peaks.samples,
        last_sampled_at=peaks.last_sampled_at,
        max_cpu_percent=peaks.max_cpu_percent,
        max_memory_rss_bytes=peaks.max_rss,
        max_process_tree_memory_rss_bytes=max(peaks.max_tree_rss, peaks.max_rss),
        max_work_dir_bytes=peaks.max_work,
        max_extra_work_bytes=peaks.max_extra,
        max_total_work_bytes=peaks.max_total_work,
        usage_error=usage.error or peaks.error,
        process_status=usage.process_status,
        runtime_seconds=max(0.0, time.time() - lease.granted_at),
        expires_at=lease.expires_at,
    )


def sample_job(context: Any, sampler: UsageSampler, lease: SlotLease) -> Usage:
    """One usage sample of ``lease``'s job: its process tree, its work directory and the extra paths it
    names when asked (``compute_usage_paths``, answered within a second or not at all)."""
    extra: list[str] = []
    if lease.pid:
        from paglets.services.builtin.compute_slots import COMPUTE_USAGE_PATHS_MESSAGE

        try:
            proxy = proxy_to(context, lease.request.agent_id)
            reply = proxy.send(Message(COMPUTE_USAGE_PATHS_MESSAGE), activate_if_inactive=False, timeout=1.0)
        except Exception:
            reply = None
        paths = reply.get("paths") if isinstance(reply, dict) else None
        extra = [str(p) for p in paths[:16]] if isinstance(paths, list) else []
    return sampler.sample(lease.pid, lease.work_dir, extra)


def proxy_to(context: Any, agent_id: str, host_url: str | None = None) -> Any:
    """A proxy to ``agent_id`` (on this host, or on ``host_url``); ``InvalidAgentError`` if there is none."""
    from paglets.core.errors import InvalidAgentError

    proxy = context.get_proxy(agent_id, host_url)
    if proxy is None:
        raise InvalidAgentError(f"no paglet {agent_id} on {host_url or context.address}")
    return proxy


def notify_user(context: Any, severity: str, title: str, message: str, job_id: str) -> bool:
    """Best effort: one notification to this host's ``user-info`` service."""
    from paglets.services.builtin.user_info import NOTIFY_USER, USER_INFO_AGENT_ID, UserInfoRequest

    try:
        proxy = proxy_to(context, USER_INFO_AGENT_ID)
        request = UserInfoRequest(
            severity=severity, title=title, message=message, job_id=job_id, timestamp=time.time()
        )
        proxy.send_oneway(NOTIFY_USER.to_message(request), timeout=5.0)
        return True
    except Exception:
        return False
