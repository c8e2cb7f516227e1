"""The ``compute-slots`` service's settings (checked and clamped) and its durable journal.

**Settings** come from the service's state (``launch.toml``): :func:`check_settings` refuses a value
outside its range when the service is created, :func:`clamp` reads one within its range later, and
:func:`settings_of` gives the scheduler's :class:`~paglets.services.builtin._scheduler.Settings`.

**Journal.** The queue (in order), the leases, the history of finished jobs and the tracked jobs of this
home are one JSON document, ``scheduler-journal.json``, in the service's class storage, rewritten after
every change (the storage writes a temporary file, fsyncs it and renames it over the old one, so a crash
leaves the old or the new journal, never a mix). The restart state of a tracked job is a file of its own,
``restart/<sha256 of the job id>.bin``, written once. A journal that cannot be decoded is kept aside as
``scheduler-journal.json.corrupt`` and the service starts empty, saying so in its status errors.
"""

from __future__ import annotations

import hashlib
from typing import Any, Final

import msgspec

from paglets.core.errors import HostError
from paglets.services.builtin._scheduler import Settings
from paglets.services.builtin.compute_slots import (
    ComputeSlotRequest,
    ComputeSlotsState,
    FinishedJobUsage,
    SlotLease,
    TrackedJob,
)

__all__ = [
    "JOURNAL_FILE",
    "STORAGE_QUOTA",
    "Journal",
    "check_settings",
    "clamp",
    "load_journal",
    "restart_file",
    "save_journal",
    "settings_of",
]

JOURNAL_FILE: Final = "scheduler-journal.json"
JOURNAL_VERSION: Final = 1
#: Quota of the service's class storage (journal and restart states).
STORAGE_QUOTA: Final = 256 << 20

#: Bounds (low, high) of every numeric setting of ``ComputeSlotsState``.
BOUNDS: Final[dict[str, tuple[float, float]]] = {
    "loop_interval": (0.05, 60.0),
    "gossip_interval": (0.1, 600.0),
    "peer_batch_size": (1, 16),
    "grant_interval": (0.0, 3600.0),
    "max_grants_per_tick": (1, 1024),
    "max_load_per_cpu": (0.0, 1000.0),
    "max_active_leases": (0, 100_000),
    "max_redirects_per_tick": (0, 1024),
    "max_redirect_fraction": (0.0, 1.0),
    "redirect_cooldown_seconds": (0.0, 86400.0),
    "max_redirects": (0, 100),
    "burst_load_per_cpu": (0.0, 1000.0),
    "burst_resource_headroom_factor": (1.0, 100.0),
    "backfill_limit_seconds": (0.0, 86400.0 * 365),
    "gpu_count": (0, 1024),
    "cpu_slots": (0, 65536),
    "memory_limit_bytes": (0, 1 << 60),
    "scratch_limit_bytes": (0, 1 << 60),
    "usage_sample_interval": (0.1, 3600.0),
    "usage_history_limit": (0, 10_000),
    "lease_reclaim_seconds": (1.0, 86400.0),
    "timeout_factor": (1.0, 1000.0),
    "timeout_floor_seconds": (1.0, 86400.0 * 30),
    "timeout_kill_grace": (0.1, 3600.0),
    "lost_after_seconds": (1.0, 86400.0),
    "waiting_recheck_seconds": (1.0, 86400.0 * 30),
}


def clamp(state: ComputeSlotsState, name: str) -> float:
    low, high = BOUNDS[name]
    return min(high, max(low, float(getattr(state, name))))


def check_settings(state: ComputeSlotsState) -> None:
    """``HostError`` for a setting outside its range (a bad ``launch.toml`` fails at start)."""
    for name, (low, high) in BOUNDS.items():
        value = getattr(state, name)
        if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
            raise HostError(f"compute-slots setting {name} = {value!r} is outside [{low:g}, {high:g}]")


def settings_of(state: ComputeSlotsState) -> Settings:
    return Settings(
        grant_interval=clamp(state, "grant_interval"),
        max_grants_per_tick=int(clamp(state, "max_grants_per_tick")),
        max_load_per_cpu=clamp(state, "max_load_per_cpu"),
        max_active_leases=int(clamp(state, "max_active_leases")),
        max_redirects_per_tick=int(clamp(state, "max_redirects_per_tick")),
        max_redirect_fraction=clamp(state, "max_redirect_fraction"),
        redirect_cooldown=clamp(state, "redirect_cooldown_seconds"),
        max_redirects=int(clamp(state, "max_redirects")),
        burst_load_per_cpu=clamp(state, "burst_load_per_cpu"),
        burst_resource_headroom_factor=clamp(state, "burst_resource_headroom_factor"),
        backfill_limit=clamp(state, "backfill_limit_seconds"),
        supports_gpu_jobs=bool(state.supports_gpu_jobs),
        timeout_factor=clamp(state, "timeout_factor"),
        timeout_floor=clamp(state, "timeout_floor_seconds"),
        kill_grace=clamp(state, "timeout_kill_grace"),
        lease_reclaim=clamp(state, "lease_reclaim_seconds"),
    )


class Journal(msgspec.Struct, kw_only=True):
    version: int = JOURNAL_VERSION
    queue: list[ComputeSlotRequest] = []
    leases: list[SlotLease] = []
    last_grant_at: float = 0.0
    history: list[FinishedJobUsage] = []
    tracked: list[TrackedJob] = []


def restart_file(job_id: str) -> str:
    return f"restart/{hashlib.sha256(job_id.encode()).hexdigest()[:40]}.bin"


def load_journal(store: Any) -> tuple[Journal | None, str]:
    """The stored journal (None when there is none or it is unreadable) and a problem to report ("")."""
    try:
        data = store.read_bytes(JOURNAL_FILE)
    except Exception as exc:
        if missing_file(exc):
            return None, ""
        return None, f"cannot read the journal: {exc}"
    try:
        journal = msgspec.json.decode(data, type=Journal)
        if journal.version != JOURNAL_VERSION:
            raise ValueError(f"journal version {journal.version}, expected {JOURNAL_VERSION}")
    except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as exc:
        try:
            store.write_bytes(f"{JOURNAL_FILE}.corrupt", data)
            store.delete(JOURNAL_FILE)
        except Exception:
            pass
        return None, f"journal unreadable, kept aside as {JOURNAL_FILE}.corrupt: {exc}"
    return journal, ""


def missing_file(exc: BaseException) -> bool:
    """Whether ``exc`` says a file does not exist (also when it crossed from the host process)."""
    return isinstance(exc, FileNotFoundError) or getattr(exc, "remote_type", None) == "FileNotFoundError"


def save_journal(store: Any, journal: Journal) -> None:
    store.write_bytes(JOURNAL_FILE, msgspec.json.encode(journal))
