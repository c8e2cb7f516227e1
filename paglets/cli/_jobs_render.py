"""The tables of ``paglets jobs`` and ``paglets-compute-slots``: every row names its host, every cell has
a value with its unit (``-`` when there is none), ids are shortened to 12 characters (``--json`` has them
whole)."""

from __future__ import annotations

import time
from typing import Any, Final

from paglets.cli import _render

__all__ = [
    "active_tables",
    "blocked_table",
    "candidates_table",
    "cpu_list",
    "groups_table",
    "history_table",
    "jobs_table",
    "queue_table",
    "status_table",
]

#: Characters of an id shown in a table.
ID_CHARS: Final = 12


def short(value: str) -> str:
    """An id shortened for a table: its last characters (job keys end in their number), without the
    ``compute-job-``/``slot-`` prefixes."""
    text = str(value or "") or "-"
    for prefix in ("compute-job-", "slot-request-", "compute-slot-", "slot-"):
        if text.startswith(prefix) and len(text) > len(prefix) + 4:
            text = text[len(prefix) :]
            break
    return text if len(text) <= ID_CHARS + 1 else "…" + text[-ID_CHARS:]


def cpu_list(ids: list[int]) -> str:
    """``0-3,8`` (ranges); ``-`` for none."""
    values = sorted(set(ids))
    if not values:
        return "-"
    parts: list[str] = []
    start = previous = values[0]
    for value in [*values[1:], None]:
        if value is not None and value == previous + 1:
            previous = value
            continue
        parts.append(str(start) if start == previous else f"{start}-{previous}")
        if value is not None:
            start = previous = value
    return ",".join(parts)


def _class(name: str) -> str:
    return (name or "unknown").rsplit(":", 1)[-1].rsplit(".", 1)[-1]


def _load(status: Any) -> str:
    limit = f"{status.max_load_per_cpu:.2f}" if status.max_load_per_cpu > 0 else "off"
    return f"{status.external_load_per_cpu:.2f}/{limit}"


def _job_state(job: Any) -> str:
    if job.process_status == "timed-out":
        return "timed out"
    if not job.active:
        return "not running"
    return "running" if job.pid else "starting"


def status_table(results: dict[str, Any]) -> None:
    rows = []
    for host, reply in sorted(results.items()):
        s = reply.status
        rows.append(
            [
                host,
                f"{s.cpu_slots}" + (" (declared)" if s.declared_capacity else ""),
                s.free_cpu_cores,
                s.reserved_cpu_cores,
                _load(s),
                _render.bytes_text(s.free_memory_bytes),
                _render.bytes_text(s.free_temp_storage_bytes),
                s.queue_length,
                s.active_leases,
            ]
        )
    numbers = ("slots", "free", "reserved", "load/cpu", "memory free", "scratch free", "waiting", "leases")
    _render.print_table("Scheduler Status", ["host", *numbers], rows, right=numbers)


def queue_table(results: dict[str, Any]) -> None:
    now = time.time()
    rows = [
        [
            host,
            index,
            short(r.job_id or r.request_id),
            short(r.agent_id),
            r.cpu_cores,
            _render.bytes_text(r.memory_bytes),
            _render.bytes_text(r.temp_storage_bytes),
            _render.duration_text(now - r.submitted_at if r.submitted_at else None),
        ]
        for host, reply in sorted(results.items())
        for index, r in enumerate(reply.queued_requests, 1)
    ]
    if not rows:
        _render.print_line("Queue: empty.")
        return
    numbers = ("#", "cores", "memory", "scratch", "waiting")
    _render.print_table("Queue", ["host", "#", "job", "agent", *numbers[1:]], rows, right=numbers)


def blocked_table(results: dict[str, Any]) -> None:
    from paglets.cli._slots import blocked

    rows = []
    counts: dict[str, int] = {}
    for host, reply in sorted(results.items()):
        for index, (request, found) in enumerate(blocked(reply.status, reply.queued_requests), 1):
            for reason in found:
                key = reason.split(":", 1)[0]
                counts[key] = counts.get(key, 0) + 1
            rows.append([host, index, short(request.job_id or request.request_id), ", ".join(found)])
    if not rows:
        _render.print_line("Queue: empty, nothing is waiting.")
        return
    _render.print_table(
        "Blocked Queue", ["host", "#", "job", "blocked by"], rows, right={"#"}, wrap={"blocked by"}
    )
    _render.print_line("Blocked: " + ", ".join(f"{k}={v}" for k, v in sorted(counts.items())))


def active_tables(results: dict[str, Any], *, usage: bool) -> None:
    jobs = [(host, j) for host, reply in sorted(results.items()) for j in reply.active_jobs]
    if not jobs:
        _render.print_line("No job is running.")
        return
    now = time.time()
    rows = []
    for host, j in jobs:
        pinned = cpu_list(j.assigned_cpu_core_ids) if j.cpu_affinity_enforced else "not pinned"
        rows.append(
            [
                host,
                short(j.job_id),
                _class(j.class_name),
                j.pid or "-",
                j.declared_cpu_cores,
                pinned,
                _render.percent_text(j.current_cpu_percent),
                _render.bytes_text(j.current_memory_rss_bytes),
                _job_state(j),
                _render.duration_text(j.runtime_seconds),
                _render.duration_text(max(0.0, j.expires_at - now)) if j.expires_at else "-",
            ]
        )
    columns = ["host", "job", "class", "pid", "cores", "cpus", "cpu", "rss", "state", "runtime", "time left"]
    _render.print_table(
        "Active Jobs", columns, rows, right={"pid", "cores", "cpu", "rss", "runtime", "time left"}
    )
    if not usage:
        return
    rows = [
        [
            host,
            short(j.job_id),
            j.process_tree_count,
            _render.bytes_text(j.process_tree_memory_rss_bytes),
            _render.bytes_text(j.max_process_tree_memory_rss_bytes),
            _render.percent_text(j.max_cpu_percent),
            _render.bytes_text(j.work_dir_bytes),
            _render.bytes_text(j.extra_work_bytes),
            j.work_dir_file_count + j.extra_work_file_count,
            j.sample_count,
            j.usage_error or "none",
        ]
        for host, j in jobs
    ]
    numbers = ("procs", "tree rss", "max rss", "max cpu", "work", "extra", "files", "samples")
    _render.print_table(
        "Active Usage", ["host", "job", *numbers, "problems"], rows, right=numbers, wrap={"problems"}
    )


def history_table(results: dict[str, Any]) -> None:
    records = [(host, r) for host, reply in sorted(results.items()) for r in reply.finished_usage]
    if not records:
        _render.print_line("No finished jobs.")
        return
    records.sort(key=lambda item: item[1].finished_at)
    rows = [
        [
            host,
            _render.when_text(r.finished_at),
            _render.duration_text(r.runtime_seconds),
            r.finish_reason,
            short(r.job_id),
            _class(r.class_name),
            r.declared_cpu_cores,
            _render.percent_text(r.max_cpu_percent),
            _render.bytes_text(r.max_process_tree_memory_rss_bytes),
            _render.bytes_text(r.max_total_work_bytes),
            r.sample_count,
        ]
        for host, r in records
    ]
    numbers = ("runtime", "cores", "max cpu", "max rss", "max disk", "samples")
    columns = [
        "host",
        "finished",
        "runtime",
        "reason",
        "job",
        "class",
        "cores",
        "max cpu",
        "max rss",
        "max disk",
    ]
    _render.print_table("Finished Jobs", [*columns, "samples"], rows, right=numbers)


def candidates_table(reply: Any, entry_name: str) -> None:
    rows = [
        [
            c.status.host_name,
            f"{c.score:.3f}",
            c.status.free_cpu_cores,
            _render.bytes_text(c.status.free_memory_bytes),
            _render.bytes_text(c.status.free_temp_storage_bytes),
            c.status.queue_length,
            "; ".join(c.reasons) or "suitable",
        ]
        for c in reply.candidates
    ]
    numbers = ("score", "cores free", "memory free", "scratch free", "queue")
    title = f"Candidate Hosts (from {entry_name}; lower score is better)"
    _render.print_table(title, ["host", *numbers, "now"], rows, right=numbers)


def jobs_table(jobs: list[tuple[str, Any]]) -> None:
    now = time.time()
    rows = [
        [
            short(j.job_id),
            j.status,
            j.host_name or "-",
            home,
            j.attempt,
            short(j.group_id) if j.group_id else "none",
            _class(j.class_name),
            _render.duration_text(now - j.updated_at if j.updated_at else None),
            (j.error or "none")[:120],
        ]
        for home, j in jobs
    ]
    columns = ["job", "status", "host", "home", "attempt", "group", "class", "updated", "error"]
    _render.print_table("Compute Jobs", columns, rows, right={"attempt", "updated"}, wrap={"error"})


def groups_table(summaries: list[dict[str, Any]]) -> None:
    rows = [
        [
            s.get("group_id", "?"),
            s.get("status", "?"),
            s.get("expected_count", 0),
            s.get("completed_count", 0),
            s.get("failed_count", 0),
            s.get("pending_count", 0),
            (s.get("collector") or {}).get("host_name") or "?",
            str(bool(s.get("waiting_for_home"))).lower(),
        ]
        for s in summaries
    ]
    numbers = ("expected", "done", "failed", "pending")
    _render.print_table(
        "Job Groups", ["group", "status", *numbers, "collector", "waiting-home"], rows, right=numbers
    )
