"""What a compute job's lifecycle does to its state (``paglets.compute.job`` uses these).

The statuses, the fields that say where a job is in its lifecycle (kept when it restarts from its
submission state), and the steps that change them: recording a grant or a redirect, going back to the
submission state, the slot request a state asks for, and the restart state its home keeps.
"""

from __future__ import annotations

import time
from dataclasses import fields, replace
from typing import Any, Final

from paglets.core.errors import InvalidAgentError
from paglets.serialization.codec import codec_for, dataclass_from_wire
from paglets.services.builtin.compute_slots import ComputeSlotRequest, SlotDecisionReply

__all__ = [
    "COMPUTE_STATUS_COMPLETED",
    "COMPUTE_STATUS_FAILED_FINAL",
    "COMPUTE_STATUS_NEW",
    "COMPUTE_STATUS_PLACING",
    "COMPUTE_STATUS_RUNNING",
    "COMPUTE_STATUS_WAITING_FOR_SLOT",
    "FINISHED",
    "estimate_error",
    "notify",
    "proxy_to",
    "record_grant",
    "record_redirect",
    "restart_snapshot",
    "restore_initial_state",
    "slot_request",
]

COMPUTE_STATUS_NEW: Final = "NEW"
COMPUTE_STATUS_PLACING: Final = "PLACING"
COMPUTE_STATUS_WAITING_FOR_SLOT: Final = "WAITING_FOR_SLOT"
COMPUTE_STATUS_RUNNING: Final = "RUNNING"
COMPUTE_STATUS_COMPLETED: Final = "COMPLETED"
COMPUTE_STATUS_FAILED_FINAL: Final = "FAILED_FINAL"
FINISHED: Final = frozenset({COMPUTE_STATUS_COMPLETED, COMPUTE_STATUS_FAILED_FINAL})
#: Fields that describe where a job is in its lifecycle; a restart from the submission state keeps them.
_BOOKKEEPING: Final = (
    "home_host_name",
    "home_host_url",
    "compute_job_key",
    "compute_attempt",
    "slot_request_id",
    "slot_lease_id",
    "restart_initial_state",
    "restart_running_on_host_startup",
)


def proxy_to(context: Any, agent_id: str, host_url: str | None = None) -> Any:
    """A proxy to ``agent_id`` (here, or on ``host_url``); ``InvalidAgentError`` when there is none."""
    proxy = context.get_proxy(agent_id, host_url)
    if proxy is None:
        raise InvalidAgentError(f"no paglet {agent_id} on {host_url or context.address}")
    return proxy


def notify(
    context: Any,
    home_url: str,
    agent_id: str,
    job_id: str,
    severity: str,
    title: str,
    text: str,
    timeout: float,
) -> bool:
    """Best effort: one notification to the ``user-info`` service at ``home_url``."""
    from paglets.services.builtin.user_info import NOTIFY_USER, USER_INFO_AGENT_ID, UserInfoRequest

    request = UserInfoRequest(
        severity=severity,
        title=title,
        message=text,
        source_agent_id=agent_id,
        job_id=job_id,
        timestamp=time.time(),
    )
    try:
        proxy = proxy_to(context, USER_INFO_AGENT_ID, home_url)
        proxy.send(NOTIFY_USER.to_message(request), timeout=max(0.1, timeout))
        return True
    except Exception:
        return False


def estimate_error(s: Any) -> str:
    """Why a job's estimates cannot be scheduled ("" when they can); checked before any scheduler call."""
    if int(s.cpu_cores) < 1:
        return f"cpu_cores must be at least 1, got {s.cpu_cores}"
    if float(s.estimated_runtime_seconds) <= 0.0 and not s.allow_zero_runtime_seconds:
        return f"estimated_runtime_seconds must be greater than 0, got {s.estimated_runtime_seconds}"
    if int(s.memory_bytes) <= 0 and not s.allow_zero_memory_bytes:
        return f"memory_bytes must be greater than 0, got {s.memory_bytes}"
    if int(s.temp_storage_bytes) < 0:
        return f"temp_storage_bytes must be 0 or more, got {s.temp_storage_bytes}"
    if float(s.timeout_seconds) < 0:
        return f"timeout_seconds must be 0 or more, got {s.timeout_seconds}"
    if s.requires_gpu and int(s.gpu_memory_mb) < 0:
        return f"gpu_memory_mb must be 0 or more, got {s.gpu_memory_mb}"
    return ""


def slot_request(
    state: Any, agent_id: str, address: str, class_name: str, home_url: str
) -> ComputeSlotRequest:
    """The slot request of a job in ``state`` (agent ``agent_id`` at ``address``)."""
    s = state
    return ComputeSlotRequest(
        request_id=s.slot_request_id,
        agent_id=agent_id,
        agent_host_url=address.rstrip("/"),
        job_id=s.compute_job_key or f"compute-job-{agent_id}",
        cpu_cores=max(1, int(s.cpu_cores)),
        memory_bytes=max(0, int(s.memory_bytes)),
        temp_storage_bytes=max(0, int(s.temp_storage_bytes)),
        estimated_runtime_seconds=max(0.0, float(s.estimated_runtime_seconds)),
        requires_gpu=bool(s.requires_gpu),
        gpu_memory_mb=max(0, int(s.gpu_memory_mb)),
        required_host_tags=tuple(s.required_host_tags),
        excluded_host_tags=tuple(s.excluded_host_tags),
        preferred_host_tags=tuple(s.preferred_host_tags),
        excluded_host_names=tuple(s.excluded_host_names),
        # a job that may not run at home must not be redirected there either
        excluded_host_urls=tuple(s.excluded_host_urls)
        + (() if s.allow_home_compute or not s.home_host_url else (s.home_host_url.rstrip("/"),)),
        redirect_count=s.redirect_count,
        last_redirect_at=s.last_redirect_at,
        last_redirect_from_host_url=s.last_redirect_from_host_url,
        timeout_seconds=max(0.0, float(s.timeout_seconds)),
        home_host_url=home_url.rstrip("/"),
        class_name=class_name,
        attempt=max(1, int(s.compute_attempt)),
    )


def restart_snapshot(state: Any) -> bytes:
    """The state a job's home restarts it from: this one, as it was submitted (status NEW)."""
    snapshot = replace(state, restart_initial_state={}, compute_status=COMPUTE_STATUS_NEW)
    return codec_for(type(state)).encode(snapshot)


def restore_initial_state(state: Any) -> None:
    """Back to the submission state for a fresh run, keeping where the job is in its lifecycle."""
    keep = {name: getattr(state, name) for name in _BOOKKEEPING}
    if state.restart_initial_state:
        restored = dataclass_from_wire(type(state), state.restart_initial_state)
        for item in fields(state):
            setattr(state, item.name, getattr(restored, item.name))
    for name, value in keep.items():
        setattr(state, name, value)
    state.compute_status = COMPUTE_STATUS_NEW
    state.compute_error = ""


def record_grant(state: Any, reply: SlotDecisionReply) -> None:
    state.slot_lease_id = reply.lease_id
    state.cpu_core_ids = list(reply.cpu_core_ids)
    state.cpu_affinity_supported = bool(reply.cpu_affinity_supported)
    state.cpu_affinity_enforced = bool(reply.cpu_affinity_enforced)
    state.cpu_affinity_error = reply.cpu_affinity_error
    state.compute_status = COMPUTE_STATUS_RUNNING


def record_redirect(state: Any, reply: SlotDecisionReply) -> None:
    state.selected_host_url = reply.host_url.rstrip("/")
    state.redirect_count = max(state.redirect_count, int(reply.redirect_count))
    state.last_redirect_at = time.time()
    state.last_redirect_from_host_url = reply.redirected_from_host_url.rstrip("/")
    state.compute_status = COMPUTE_STATUS_PLACING
