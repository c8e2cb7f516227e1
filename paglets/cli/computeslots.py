"""``paglets-compute-slots`` and ``paglets-compute-groups``: the 2.0 command shapes of ``paglets jobs``.

``paglets-compute-slots status [--queue] [--jobs] [--blocked] [--usage]`` (also ``paglets compute-slots
...``; = ``jobs status/queue/why/top``),
``cancel`` (needs a filter, and ``--confirm`` unless ``--dry-run``), ``jobs list|clear|history``
(= ``jobs ps``, ``rm`` of waiting jobs, ``history``) and ``candidates`` (= ``jobs hosts``, with the 2.0
option names). ``paglets-compute-groups [--group ID]`` (:mod:`paglets.cli.computegroups`) is ``paglets jobs
groups``. Options such as
``--entry`` and ``--json`` may come before or after the subcommand. The output is the tables of
``paglets jobs``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from paglets.cli._common import CommandError, Parser, add_network_options, dispatch
from paglets.cli._slots import DEFAULT_TIMEOUT

__all__ = ["DESCRIPTION", "add_commands", "add_options", "build_parser", "main"]


def add_options(parser: argparse.ArgumentParser) -> None:
    from paglets.cli.jobs import host_option

    host_option(parser)
    add_network_options(parser, timeout=DEFAULT_TIMEOUT)


DESCRIPTION = "compute-slot schedulers and compute jobs, in the command shapes of paglets 2.0"


def build_parser(prog: str = "paglets-compute-slots") -> Parser:
    parser = Parser(prog=prog, description=DESCRIPTION)
    add_options(parser)
    add_commands(parser.add_subparsers(title="commands", metavar="COMMAND"), prog)
    return parser


def add_commands(sub: Any, prog: str) -> None:
    """Add ``status``, ``cancel``, ``jobs list|clear|history`` and ``candidates`` to ``sub``."""
    from paglets.cli import jobs

    leaf: Parser = sub.add_parser("status", help="each host's scheduler", description="each host's scheduler")
    leaf.add_argument("--queue", action="store_true", help="also the queued requests")
    leaf.add_argument("--jobs", action="store_true", help="also the running jobs")
    leaf.add_argument("--blocked", action="store_true", help="also what keeps queued requests waiting")
    leaf.add_argument("--usage", action="store_true", help="also process and disk usage of running jobs")
    add_options(leaf)
    leaf.set_defaults(func=_status, prog=prog)

    text = "cancel queued slot requests (and, with --include-leases, running jobs)"
    leaf = sub.add_parser("cancel", help=text, description=text)
    leaf.add_argument("--request-id", action="append", default=[], metavar="ID", help="repeatable")
    leaf.add_argument("--agent-id", action="append", default=[], metavar="ID", help="repeatable")
    leaf.add_argument("--job-id", action="append", default=[], metavar="ID", help="repeatable")
    leaf.add_argument("--all", action="store_true", help="every queued request")
    leaf.add_argument("--include-leases", action="store_true", help="also stop matching running jobs")
    leaf.add_argument("--dry-run", action="store_true", help="show what would be cancelled")
    leaf.add_argument("--confirm", action="store_true", help="needed to really cancel")
    add_options(leaf)
    leaf.set_defaults(func=_cancel, prog=prog)

    group = sub.add_parser("jobs", help="list or clear compute jobs, or show finished ones")
    group.set_defaults(group_parser=group)
    jobs_sub = group.add_subparsers(title="commands", metavar="COMMAND")
    leaf = jobs_sub.add_parser("list", help="the compute jobs every home tracks")
    _legacy_filters(leaf)
    leaf.add_argument("--active", action="store_true", help="only placing or running jobs")
    leaf.add_argument("--inactive", action="store_true", help="only waiting jobs")
    add_options(leaf)
    leaf.set_defaults(func=_list, prog=prog)
    leaf = jobs_sub.add_parser("clear", help="cancel waiting jobs (default status WAITING_FOR_SLOT)")
    _legacy_filters(leaf)
    leaf.add_argument("--dry-run", action="store_true", help="show what would be cancelled")
    leaf.add_argument("--confirm", action="store_true", help="needed to really cancel")
    add_options(leaf)
    leaf.set_defaults(func=_clear, prog=prog)
    leaf = jobs_sub.add_parser("history", help="finished jobs with their peak usage")
    leaf.add_argument("--limit", type=int, default=20, metavar="N", help="latest N per host (0: all)")
    add_options(leaf)
    leaf.set_defaults(func=jobs.history, prog=prog)

    leaf = sub.add_parser("candidates", help="hosts that could run a job of the given size")
    jobs.add_request_options(leaf)
    add_options(leaf)
    leaf.set_defaults(func=jobs.hosts, prog=prog)


def _legacy_filters(leaf: argparse.ArgumentParser) -> None:
    leaf.add_argument("--agent-id", dest="agent", action="append", default=[], metavar="ID")
    leaf.add_argument("--job-id", dest="job", action="append", default=[], metavar="ID")
    leaf.add_argument("--status", dest="state", action="append", default=[], metavar="STATUS")
    leaf.add_argument("--class-name", dest="class_name", action="append", default=[], metavar="NAME")
    leaf.set_defaults(group_id="")


def main(argv: Sequence[str] | None = None) -> int:
    """``paglets-compute-slots``."""
    return dispatch(build_parser(), argv, "paglets-compute-slots")


def _status(args: argparse.Namespace) -> int:
    from paglets.cli.jobs import show_status

    return show_status(args, queue=args.queue, blockers=args.blocked, jobs=args.jobs, usage=args.usage)


def _list(args: argparse.Namespace) -> int:
    from paglets.cli.jobs import ps

    args.finished = True
    return ps(args)


def _clear(args: argparse.Namespace) -> int:
    from paglets.cli._slots import tracked_jobs
    from paglets.cli.jobs import FINISHED, cancel_jobs, matching_jobs

    if not args.state:
        args.state = ["WAITING_FOR_SLOT"]
    if not args.dry_run and not args.confirm:
        raise CommandError("jobs clear needs --confirm (or --dry-run to see what it would cancel)")
    answers = tracked_jobs(args)
    matched = [(h, j) for h, j in matching_jobs(args, answers) if j.status not in FINISHED]
    return cancel_jobs(args, answers, matched, dry_run=args.dry_run, confirmed=True)


def _cancel(args: argparse.Namespace) -> int:
    from paglets.cli import _render
    from paglets.cli._common import EXIT_INCOMPLETE, EXIT_OK, option
    from paglets.cli._slots import collect
    from paglets.services.builtin.compute_slots import (
        CANCEL_SLOT_REQUESTS,
        SCHEDULER_STATUS,
        CancelSlotRequestsRequest,
        SchedulerStatusRequest,
    )

    request = CancelSlotRequestsRequest(
        request_ids=tuple(args.request_id),
        agent_ids=tuple(args.agent_id),
        job_ids=tuple(args.job_id),
        all=bool(args.all),
        include_leases=bool(args.include_leases),
    )
    if not (request.all or request.request_ids or request.agent_ids or request.job_ids):
        raise CommandError("cancel needs --request-id, --agent-id, --job-id or --all")
    if args.dry_run:
        from paglets.services.builtin._scheduler import matches_cancel

        answers = collect(args, SCHEDULER_STATUS, SchedulerStatusRequest(include_queue=True), "status")
        queued = sum(
            1 for r in answers.results.values() for q in r.queued_requests if matches_cancel(q, request)
        )
        leases = sum(
            1
            for r in answers.results.values()
            for lease in r.leases
            if matches_cancel(lease.request, request)
        )
        leases = leases if request.include_leases else 0
        if option(args, "json", False):
            _render.print_json({"dry_run": True, "queued_requests": queued, "leases": leases})
        else:
            _render.print_line(f"matched queued_requests={queued} leases={leases}")
        return EXIT_INCOMPLETE if answers.errors else EXIT_OK
    if not args.confirm:
        raise CommandError("cancel needs --confirm (or --dry-run to see what it would cancel)")
    answers = collect(args, CANCEL_SLOT_REQUESTS, request, "cancel")
    queued = sum(r.cancelled_requests for r in answers.results.values())
    leases = sum(r.cancelled_leases for r in answers.results.values())
    if option(args, "json", False):
        out: dict[str, Any] = {
            "cancelled_requests": queued,
            "cancelled_leases": leases,
            "errors": answers.errors,
        }
        _render.print_json(out)
    else:
        _render.print_line(f"cancelled queued_requests={queued} leases={leases}")
        _render.print_section("Errors", answers.errors, style="bold red")
    return EXIT_INCOMPLETE if answers.errors else EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
