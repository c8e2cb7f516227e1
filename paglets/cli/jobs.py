"""``paglets jobs ...``: compute slots and compute jobs across the mesh.

``status``, ``queue``, ``why``, ``top`` and ``history`` ask the ``compute-slots`` service of every
online host (or the ``--host`` ones); ``hosts`` asks the entry host where a job of the given size would
go; ``ps`` lists the jobs every home tracks; ``groups`` asks the collectors of the job groups they know;
``rm`` cancels jobs (queued ones are removed, running ones are stopped) after a confirmation. Tables
never have blank cells; ``--json`` prints the replies. Exit codes: 0 success, 1 an incomplete answer (a
host did not answer) or nothing found where something was asked for (``hosts`` without a candidate,
``groups --group`` of an unknown group, ``rm`` that could not reach a job), 2 usage or connection error.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from typing import Any, Final

from paglets.cli._common import (
    EXIT_INCOMPLETE,
    EXIT_OK,
    CommandError,
    Parser,
    add_network_options,
    dispatch,
    option,
)
from paglets.cli._slots import DEFAULT_TIMEOUT

__all__ = ["DEFAULT_TIMEOUT", "DESCRIPTION", "add_commands", "build_parser", "main"]

DESCRIPTION: Final = "compute slots and compute jobs: capacity, queues, running and finished jobs, groups"
FINISHED: Final = ("COMPLETED", "FAILED_FINAL", "CANCELLED")


def build_parser(prog: str = "paglets jobs") -> Parser:
    parser = Parser(prog=prog, description=DESCRIPTION)
    host_option(parser)
    add_network_options(parser, timeout=DEFAULT_TIMEOUT)
    add_commands(parser.add_subparsers(title="commands", metavar="COMMAND"), prog)
    return parser


def host_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--host",
        action="append",
        metavar="NAME|URL",
        default=argparse.SUPPRESS,
        help="ask only this host (repeatable; default: every online host)",
    )


def _leaf(sub: Any, name: str, prog: str, text: str, func: Any, *, hosts: bool = True) -> Parser:
    leaf: Parser = sub.add_parser(name, help=text, description=text)
    if hosts:
        host_option(leaf)
    add_network_options(leaf, timeout=DEFAULT_TIMEOUT)
    leaf.set_defaults(func=func, prog=f"{prog} {name}")
    return leaf


def add_commands(sub: Any, prog: str) -> None:
    _leaf(sub, "status", prog, "capacity, reservations and queue length of every host's scheduler", status)
    _leaf(sub, "queue", prog, "the status and every queued slot request", queue)
    _leaf(sub, "why", prog, "the status, and what keeps each queued request waiting", why)
    _leaf(sub, "top", prog, "running jobs with their process and disk usage", top)
    leaf = _leaf(sub, "history", prog, "finished jobs with their peak usage", history)
    leaf.add_argument("--limit", type=int, default=20, metavar="N", help="latest N per host (0: all)")
    leaf = _leaf(sub, "hosts", prog, "hosts that could run a job of the given size", hosts, hosts=False)
    add_request_options(leaf)
    leaf = _leaf(sub, "ps", prog, "the compute jobs every home tracks", ps)
    add_job_filters(leaf)
    leaf.add_argument("--active", action="store_true", help="only jobs placing or running")
    leaf.add_argument("--inactive", action="store_true", help="only jobs asleep, waiting for a slot")
    leaf.add_argument("--finished", action=argparse.BooleanOptionalAction, default=True, help="finished jobs")
    leaf = _leaf(sub, "groups", prog, "job groups and how far each got", groups)
    leaf.add_argument("--group", default="", metavar="ID", help="only this group")
    leaf = _leaf(sub, "rm", prog, "cancel jobs: queued ones are removed, running ones stopped", rm)
    add_job_filters(leaf)
    leaf.add_argument("--all", action="store_true", help="every unfinished job")
    leaf.add_argument("--dry-run", "-n", action="store_true", help="show what would be cancelled")
    leaf.add_argument("--force", "-f", action="store_true", help="do not ask")


def add_job_filters(leaf: argparse.ArgumentParser) -> None:
    leaf.add_argument("--job", action="append", default=[], metavar="ID", help="a job id (repeatable)")
    leaf.add_argument("--agent", action="append", default=[], metavar="ID", help="an agent id (repeatable)")
    leaf.add_argument(
        "--state", action="append", default=[], metavar="STATUS", help="a job status (repeatable)"
    )
    leaf.add_argument(
        "--class", dest="class_name", action="append", default=[], help="a class name or suffix"
    )
    leaf.add_argument("--group-id", default="", metavar="ID", help="only jobs of this group")


def add_request_options(leaf: argparse.ArgumentParser) -> None:
    from paglets.cli.meshinfo import parse_size

    leaf.add_argument("--limit", type=int, default=5, metavar="N", help="candidates to show")
    leaf.add_argument("--cores", "--cpu-cores", type=int, default=1, metavar="N", help="CPU cores")
    leaf.add_argument("--mem", "--memory", type=parse_size, default=0, metavar="SIZE", help="memory")
    leaf.add_argument("--disk", "--temp-storage", type=parse_size, default=0, metavar="SIZE", help="scratch")
    leaf.add_argument("--gpu", action="store_true", help="needs a GPU")
    leaf.add_argument("--gpu-memory", type=int, default=0, metavar="MB", help="GPU memory")
    leaf.add_argument("--tag", "--require-tag", action="append", default=[], help="required host tag")
    leaf.add_argument("--prefer-tag", action="append", default=[], help="preferred host tag")
    leaf.add_argument("--exclude-tag", action="append", default=[], help="host tag to avoid")
    leaf.add_argument("--exclude-host", action="append", default=[], help="host name or URL to avoid")


def main(argv: Sequence[str] | None = None) -> int:
    return dispatch(build_parser(), argv, "paglets jobs")


# --- status views -----------------------------------------------------------------------------------------


def _status_request(
    *, queue: bool = False, jobs: bool = False, usage: bool = False, history: bool = False
) -> Any:
    from paglets.services.builtin.compute_slots import SchedulerStatusRequest

    return SchedulerStatusRequest(
        include_queue=queue, include_jobs=jobs, include_usage=usage, include_usage_history=history
    )


def _statuses(args: argparse.Namespace, request: Any, label: str) -> Any:
    from paglets.cli._slots import collect
    from paglets.services.builtin.compute_slots import SCHEDULER_STATUS

    answers = collect(args, SCHEDULER_STATUS, request, label)
    for host, reply in answers.results.items():
        for key, error in reply.errors.items():
            answers.notes[f"{host} {key}"] = error
    return answers


def _print_json(answers: Any, operation: Any, extra: dict[str, Any] | None = None) -> None:
    from paglets.cli import _render

    payload = {
        "operation": operation.name,
        "results": {
            host: {"host_url": answers.urls.get(host, ""), "result": operation.encode_reply(reply)}
            for host, reply in sorted(answers.results.items())
        },
        "errors": dict(sorted(answers.errors.items())),
        **(extra or {}),
    }
    _render.print_json(payload)


def _end(answers: Any, *, found: bool = True) -> int:
    from paglets.cli import _render

    if not answers.results:
        _render.print_line("No host answered.")
    _render.print_section("Notes", answers.notes)
    _render.print_section("Errors", answers.errors, style="bold red")
    return EXIT_INCOMPLETE if answers.errors or not answers.results or not found else EXIT_OK


def show_status(args: argparse.Namespace, *, queue: bool, blockers: bool, jobs: bool, usage: bool) -> int:
    """The status table, and the queue, blocked-queue, active-jobs and usage tables as asked."""
    from paglets.cli import _jobs_render as view
    from paglets.services.builtin.compute_slots import SCHEDULER_STATUS

    request = _status_request(queue=queue or blockers, jobs=jobs or usage, usage=usage)
    answers = _statuses(args, request, "status")
    if option(args, "json", False):
        extra: dict[str, Any] = {}
        if blockers:
            from paglets.cli._slots import blocked

            extra["blocked_requests"] = {
                host: [{"request_id": r.request_id, "job_id": r.job_id, "blockers": b} for r, b in found]
                for host, reply in answers.results.items()
                for found in [blocked(reply.status, reply.queued_requests)]
            }
        _print_json(answers, SCHEDULER_STATUS, extra)
        return EXIT_INCOMPLETE if answers.errors or not answers.results else EXIT_OK
    if answers.results:
        view.status_table(answers.results)
        if queue:
            view.queue_table(answers.results)
        if blockers:
            view.blocked_table(answers.results)
        if jobs or usage:
            view.active_tables(answers.results, usage=usage)
    return _end(answers)


def status(args: argparse.Namespace) -> int:
    return show_status(args, queue=False, blockers=False, jobs=False, usage=False)


def queue(args: argparse.Namespace) -> int:
    return show_status(args, queue=True, blockers=False, jobs=False, usage=False)


def why(args: argparse.Namespace) -> int:
    return show_status(args, queue=False, blockers=True, jobs=False, usage=False)


def top(args: argparse.Namespace) -> int:
    return show_status(args, queue=False, blockers=False, jobs=True, usage=True)


def history(args: argparse.Namespace) -> int:
    from paglets.cli import _jobs_render as view
    from paglets.services.builtin.compute_slots import SCHEDULER_STATUS

    if args.limit < 0:
        raise CommandError(f"--limit must be 0 or more, got {args.limit}")
    answers = _statuses(args, _status_request(history=True), "history")
    if args.limit:
        for host, reply in list(answers.results.items()):
            from dataclasses import replace

            answers.results[host] = replace(reply, finished_usage=reply.finished_usage[-args.limit :])
    if option(args, "json", False):
        _print_json(answers, SCHEDULER_STATUS)
        return EXIT_INCOMPLETE if answers.errors or not answers.results else EXIT_OK
    if answers.results:
        view.history_table(answers.results)
    return _end(answers)


# --- placement --------------------------------------------------------------------------------------------


def candidate_request(args: argparse.Namespace) -> Any:
    from paglets.services.builtin.compute_slots import CandidateHostsRequest, ComputeSlotRequest

    if args.cores < 1:
        raise CommandError(f"--cores must be at least 1, got {args.cores}")
    if args.limit < 1:
        raise CommandError(f"--limit must be at least 1, got {args.limit}")
    excluded = list(args.exclude_host)
    return CandidateHostsRequest(
        slot=ComputeSlotRequest(
            cpu_cores=args.cores,
            memory_bytes=args.mem,
            temp_storage_bytes=args.disk,
            requires_gpu=bool(args.gpu),
            gpu_memory_mb=max(0, args.gpu_memory),
            required_host_tags=tuple(args.tag),
            preferred_host_tags=tuple(args.prefer_tag),
            excluded_host_tags=tuple(args.exclude_tag),
            excluded_host_names=tuple(h for h in excluded if "://" not in h),
            excluded_host_urls=tuple(h for h in excluded if "://" in h),
        ),
        limit=args.limit,
    )


def hosts(args: argparse.Namespace) -> int:
    from paglets.cli import _jobs_render as view
    from paglets.cli import _render
    from paglets.cli._slots import entry_call
    from paglets.services.builtin.compute_slots import CANDIDATE_HOSTS

    reply, where = entry_call(args, CANDIDATE_HOSTS, candidate_request(args))
    if option(args, "json", False):
        _render.print_json(CANDIDATE_HOSTS.encode_reply(reply))
        return EXIT_OK if reply.candidates else EXIT_INCOMPLETE
    if reply.candidates:
        view.candidates_table(reply, where.entry_name)
    else:
        _render.print_line("No host could run such a job.")
    _render.print_section("Rejected", reply.rejected)
    _render.print_section("Errors", reply.errors, style="bold red")
    return EXIT_OK if reply.candidates else EXIT_INCOMPLETE


# --- jobs and groups --------------------------------------------------------------------------------------


def matching_jobs(args: argparse.Namespace, answers: Any) -> list[tuple[str, Any]]:
    """``(home, job)`` for every tracked job that passes the filters of ``args``."""
    found = []
    wanted_jobs, wanted_agents = set(args.job), set(args.agent)
    states = {s.upper() for s in args.state}
    for home, reply in sorted(answers.results.items()):
        for job in reply.jobs:
            if wanted_jobs and job.job_id not in wanted_jobs:
                continue
            if wanted_agents and job.agent_id not in wanted_agents:
                continue
            if states and job.status not in states:
                continue
            if args.class_name and not any(job.class_name.endswith(c) for c in args.class_name):
                continue
            if getattr(args, "group_id", "") and job.group_id != args.group_id:
                continue
            found.append((home, job))
    return found


def ps(args: argparse.Namespace) -> int:
    from paglets.cli import _jobs_render as view
    from paglets.cli import _render
    from paglets.cli._slots import tracked_jobs
    from paglets.serialization.codec import dataclass_to_wire

    answers = tracked_jobs(args)
    jobs = matching_jobs(args, answers)
    if args.active and not args.inactive:
        jobs = [(h, j) for h, j in jobs if j.status not in FINISHED and j.status != "WAITING_FOR_SLOT"]
    elif args.inactive and not args.active:
        jobs = [(h, j) for h, j in jobs if j.status == "WAITING_FOR_SLOT"]
    if not args.finished:
        jobs = [(h, j) for h, j in jobs if j.status not in FINISHED]
    if option(args, "json", False):
        payload = [{"home": home, **dataclass_to_wire(job)} for home, job in jobs]
        _render.print_json({"jobs": payload, "errors": dict(sorted(answers.errors.items()))})
        return EXIT_INCOMPLETE if answers.errors else EXIT_OK
    if jobs:
        view.jobs_table(jobs)
    elif answers.results:
        _render.print_line("No compute jobs.")
    return _end(answers)


def groups(args: argparse.Namespace) -> int:
    from paglets.cli import _jobs_render as view
    from paglets.cli import _render
    from paglets.cli._slots import group_summaries

    summaries, answers = group_summaries(args, args.group)
    if args.group:
        summaries = [s for s in summaries if s.get("group_id") == args.group]
    missing = bool(args.group) and not summaries
    if option(args, "json", False):
        _render.print_json({"groups": summaries, "errors": dict(sorted(answers.errors.items()))})
        return EXIT_INCOMPLETE if answers.errors or missing else EXIT_OK
    if summaries:
        view.groups_table(summaries)
    elif answers.results:
        _render.print_line(f"No job group {args.group}." if args.group else "No job groups.")
    return _end(answers, found=not missing)


def rm(args: argparse.Namespace) -> int:
    if not (args.all or args.job or args.agent or args.state or args.class_name or args.group_id):
        raise CommandError("say which jobs: --job, --agent, --state, --class, --group-id or --all")
    from paglets.cli._slots import tracked_jobs

    answers = tracked_jobs(args)
    jobs = [(h, j) for h, j in matching_jobs(args, answers) if j.status not in FINISHED]
    return cancel_jobs(args, answers, jobs, dry_run=args.dry_run, confirmed=args.force)


def cancel_jobs(
    args: argparse.Namespace, answers: Any, jobs: list[tuple[str, Any]], *, dry_run: bool, confirmed: bool
) -> int:
    """Cancel ``jobs`` on every host (their homes mark them cancelled, their hosts remove or stop them)."""
    from paglets.cli import _render
    from paglets.cli._fanout import gather
    from paglets.cli._services import call_service
    from paglets.serialization.codec import dataclass_to_wire
    from paglets.services.builtin.compute_slots import (
        CANCEL_SLOT_REQUESTS,
        COMPUTE_SLOTS_AGENT_ID,
        CancelSlotRequestsRequest,
    )

    as_json = option(args, "json", False)
    listed = [{"home": home, **dataclass_to_wire(job)} for home, job in jobs]
    if dry_run or not jobs:
        if as_json:
            _render.print_json({"dry_run": dry_run, "matched": listed, "errors": answers.errors})
        else:
            _render.print_line(f"Matched jobs: {len(jobs)}")
            for home, job in jobs:
                _render.print_line(f"- {job.job_id} ({job.status} on {job.host_name or home})")
        return EXIT_INCOMPLETE if answers.errors else EXIT_OK
    if not confirmed:
        if not sys.stdin.isatty():
            raise CommandError("refusing to cancel without --force (no terminal to ask on)")
        answer = input(f"Cancel {len(jobs)} compute job(s)? Running ones are stopped. [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("Nothing cancelled.", file=sys.stderr)
            return EXIT_INCOMPLETE
    request = CancelSlotRequestsRequest(
        job_ids=tuple(sorted({job.job_id for _, job in jobs})),
        agent_ids=tuple(sorted({job.agent_id for _, job in jobs if job.agent_id})),
        include_leases=True,
    )
    targets = sorted(answers.urls.items())

    def ask(name: str, url: str) -> Any:
        return call_service(
            answers.client,
            url,
            COMPUTE_SLOTS_AGENT_ID,
            "compute-slots",
            CANCEL_SLOT_REQUESTS,
            request,
            deadline=answers.deadline + 10.0,
        )

    replies, errors = gather(targets, ask, timeout=max(1.0, answers.deadline + 10.0 - time.monotonic()))
    queued = sum(r.cancelled_requests for r in replies.values())
    running = sum(r.cancelled_leases for r in replies.values())
    homes = sum(r.cancelled_jobs for r in replies.values())
    errors = {**answers.errors, **errors}
    if as_json:
        _render.print_json(
            {
                "cancelled_requests": queued,
                "stopped_running_jobs": running,
                "cancelled_jobs": homes,
                "matched": listed,
                "errors": dict(sorted(errors.items())),
            }
        )
    else:
        _render.print_line(
            f"Cancelled jobs={homes}; removed queued requests={queued}; stopped running jobs={running}"
        )
        _render.print_section("Errors", errors, style="bold red")
    return EXIT_INCOMPLETE if errors else EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
