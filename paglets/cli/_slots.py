"""What the job commands ask the mesh: every host's ``compute-slots`` service, and the job groups' collectors.

Each function asks every online host of the entry host's mesh (or the ``--host`` ones) in parallel,
within one deadline, and returns the answers by host name with the hosts that did not answer under
``errors`` (see :mod:`paglets.cli._fanout`). ``blocked`` explains a host's queue the way ``jobs why``
shows it. Nothing here prints.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field
from typing import Any, Final

from paglets.cli._common import option

__all__ = ["Answers", "blocked", "collect", "group_summaries", "tracked_jobs"]

DEFAULT_TIMEOUT: Final = 10.0
#: Job groups one command asks about.
MAX_GROUPS: Final = 256


@dataclass(slots=True)
class Answers:
    """Replies by host name, the hosts' URLs, the hosts that failed, and notes (offline hosts)."""

    results: dict[str, Any] = field(default_factory=dict)
    urls: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    entry_name: str = ""
    entry_url: str = ""
    client: Any = None
    deadline: float = 0.0


def collect(args: argparse.Namespace, operation: Any, request: Any, label: str) -> Answers:
    """``operation`` of ``compute-slots`` on every chosen host."""
    from paglets.cli._fanout import gather
    from paglets.cli._services import call_service, connect, offline_note, target_hosts
    from paglets.services.builtin.compute_slots import COMPUTE_SLOTS_AGENT_ID

    timeout = float(option(args, "timeout", DEFAULT_TIMEOUT))
    deadline = time.monotonic() + timeout
    client, entry = connect(args, timeout)
    targets = target_hosts(entry, option(args, "host", None))

    def ask(name: str, url: str) -> Any:
        return call_service(
            client, url, COMPUTE_SLOTS_AGENT_ID, "compute-slots", operation, request, deadline=deadline
        )

    results, errors = gather(targets.hosts, ask, timeout=max(0.1, deadline - time.monotonic()), label=label)
    errors.update(targets.errors)
    return Answers(
        results, dict(targets.hosts), errors, offline_note(targets), entry.name, entry.url, client, deadline
    )


def entry_call(args: argparse.Namespace, operation: Any, request: Any) -> tuple[Any, Answers]:
    """``operation`` of the entry host's ``compute-slots`` (its reply, and where it came from)."""
    from paglets.cli._common import CommandError
    from paglets.cli._fanout import Progress, describe_error
    from paglets.cli._services import call_service, connect
    from paglets.services.builtin.compute_slots import COMPUTE_SLOTS_AGENT_ID

    timeout = float(option(args, "timeout", DEFAULT_TIMEOUT))
    deadline = time.monotonic() + timeout
    client, entry = connect(args, timeout)
    with Progress(f"asking compute-slots on {entry.name}"):
        try:
            reply = call_service(
                client,
                entry.url,
                COMPUTE_SLOTS_AGENT_ID,
                "compute-slots",
                operation,
                request,
                deadline=deadline,
            )
        except CommandError:
            raise
        except Exception as exc:
            raise CommandError(f"compute-slots on {entry.name}: {describe_error(exc)}") from None
    return reply, Answers(entry_name=entry.name, entry_url=entry.url, client=client, deadline=deadline)


def tracked_jobs(args: argparse.Namespace, group_id: str = "") -> Answers:
    """The jobs every host tracks as their home (``list_jobs``)."""
    from paglets.services.builtin.compute_slots import LIST_JOBS, ListJobsRequest

    return collect(args, LIST_JOBS, ListJobsRequest(group_id=group_id, limit=10_000), "jobs")


def group_summaries(args: argparse.Namespace, group_id: str = "") -> tuple[list[dict[str, Any]], Answers]:
    """The summary of every job group the homes know of (asked of each group's collector)."""
    from paglets.cli._fanout import describe_error, gather
    from paglets.core.messages import Message
    from paglets.remote.proxy import PagletProxy

    answers = tracked_jobs(args, group_id)
    collectors: dict[tuple[str, str], str] = {}
    for reply in answers.results.values():
        for job in reply.jobs:
            if job.collector_agent_id and job.collector_host_url and job.group_id:
                collectors.setdefault((job.collector_host_url, job.collector_agent_id), job.group_id)
    targets = sorted(collectors)[:MAX_GROUPS]

    def ask(name: str, url: str) -> Any:
        agent = name.split("|", 1)[1]
        left = max(0.1, answers.deadline - time.monotonic())
        return PagletProxy(url, agent, answers.client).send(Message("summary"), timeout=left)

    named = [(f"{collectors[t]}|{t[1]}", t[0]) for t in targets]
    found, failed = gather(named, ask, timeout=max(0.1, answers.deadline - time.monotonic()), label="groups")
    summaries = [s for s in found.values() if isinstance(s, dict) and s.get("group_id")]
    for key, error in failed.items():
        answers.errors[f"group {key.split('|', 1)[0]}"] = describe_error(Exception(error))
    summaries.sort(key=lambda s: (str(s.get("group_id")), str((s.get("collector") or {}).get("host_name"))))
    return summaries, answers


def blocked(status: Any, queue: list[Any]) -> list[tuple[Any, list[str]]]:
    """Each queued request with what blocks it (``grantable`` when nothing does: it uses up the free
    capacity it would take, in queue order, like the scheduler)."""
    from dataclasses import replace

    from paglets.services.builtin._scheduler import blockers, can_ever_satisfy, reserve_projected

    out: list[tuple[Any, list[str]]] = []
    current = status
    for request in queue:
        never = can_ever_satisfy(current, request)
        found = [f"never: {never}"] if never else blockers(current, request)
        if not found:
            out.append((request, ["grantable"]))
            current = reserve_projected(current, request)
            current = replace(current, free_cpu_cores=max(0, current.free_cpu_cores))
        else:
            out.append((request, found))
    return out
