"""``paglets-analysis-jobs`` (and ``paglets examples analysis``): run an analysis campaign on the mesh.

Creates the campaign paglet on the entry host, starts it, and follows it: a progress table (on a
terminal; otherwise one line whenever the counts change) shows per host how many jobs are queued, running
and done, every :data:`POLL_INTERVAL` seconds, and at the end a summary table of the committed results.
The results are in the SQLite database ``--db`` on the entry host (a relative path is taken relative to
where this command runs). ``--wait SECONDS`` bounds the wait (the campaign goes on without it);
``--no-wait`` only starts the campaign. Exit code 0 when every job's result was committed, 1 when a job
failed or the wait ended first, 2 for usage and connection errors.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path
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

__all__ = ["add_arguments", "build_parser", "main", "run"]

DEFAULT_TIMEOUT: Final = 20.0
#: Seconds between two looks at the campaign.
POLL_INTERVAL: Final = 0.5
#: Longest default wait for a campaign (``--wait`` changes it).
DEFAULT_WAIT: Final = 3600.0
_STAGES: Final = ("placing", "queued", "running", "done", "failed")


def build_parser(prog: str = "paglets-analysis-jobs") -> Parser:
    parser = Parser(prog=prog, description="Run the synthetic analysis campaign on a paglets mesh.")
    add_arguments(parser)
    parser.set_defaults(func=run, prog=prog)
    return parser


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from paglets.cli.meshinfo import parse_size
    from paglets.examples.analysis_jobs import agent as a

    add_network_options(parser, timeout=DEFAULT_TIMEOUT)
    parser.add_argument("--tasks", type=int, default=a.DEFAULT_TASK_COUNT, metavar="N", help="analysis jobs")
    parser.add_argument(
        "--db",
        default=str(Path.home() / "paglets-analysis-results.sqlite"),
        metavar="PATH",
        help="SQLite database on the entry host (default: ~/paglets-analysis-results.sqlite)",
    )
    parser.add_argument(
        "--rows", type=int, default=a.DEFAULT_ROW_COUNT, metavar="N", help="rows per data set"
    )
    parser.add_argument("--features", type=int, default=a.DEFAULT_FEATURE_COUNT, metavar="N", help="features")
    parser.add_argument(
        "--trees",
        type=int,
        default=a.DEFAULT_ESTIMATOR_TREES,
        metavar="N",
        help="least bagging rounds per job",
    )
    parser.add_argument(
        "--target-runtime",
        type=float,
        default=a.DEFAULT_TARGET_RUNTIME_SECONDS,
        metavar="SECONDS",
        help="how long each job computes",
    )
    parser.add_argument(
        "--memory", type=parse_size, default=a.DEFAULT_MEMORY_BYTES, metavar="SIZE", help="per job"
    )
    parser.add_argument("--cpu-cores", type=int, default=a.DEFAULT_CPU_CORES, metavar="N", help="per job")
    parser.add_argument(
        "--temp-storage",
        type=parse_size,
        default=a.DEFAULT_TEMP_STORAGE_BYTES,
        metavar="SIZE",
        help="per job",
    )
    parser.add_argument(
        "--db-lock-timeout",
        type=float,
        default=a.DEFAULT_DB_LOCK_TIMEOUT_SECONDS,
        metavar="SECONDS",
        help="how long a commit waits for the database",
    )
    parser.add_argument(
        "--home-compute",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="let jobs run on the entry host too",
    )
    parser.add_argument("--wait", type=float, default=DEFAULT_WAIT, metavar="SECONDS", help="longest wait")
    parser.add_argument("--no-wait", action="store_true", help="start the campaign and return")


def main(argv: Sequence[str] | None = None) -> int:
    return dispatch(build_parser(), argv, "paglets-analysis-jobs")


def _request(args: argparse.Namespace) -> dict[str, Any]:
    from paglets.examples.analysis_jobs.agent import MAX_TASKS, AnalysisCampaignRequest
    from paglets.serialization.codec import dataclass_to_wire

    checks = (
        (1 <= args.tasks <= MAX_TASKS, f"--tasks must be between 1 and {MAX_TASKS}"),
        (args.rows >= 100, "--rows must be at least 100"),
        (args.features >= 4, "--features must be at least 4"),
        (args.trees >= 1, "--trees must be at least 1"),
        (args.target_runtime > 0, "--target-runtime must be more than 0 seconds"),
        (args.cpu_cores >= 1, "--cpu-cores must be at least 1"),
        (args.memory > 0, "--memory must be more than 0"),
        (args.db_lock_timeout > 0, "--db-lock-timeout must be more than 0 seconds"),
        (args.wait > 0, "--wait must be more than 0 seconds"),
    )
    for ok, message in checks:
        if not ok:
            raise CommandError(message)
    request = AnalysisCampaignRequest(
        task_count=args.tasks,
        db_path=str(Path(args.db).expanduser().resolve()),
        row_count=args.rows,
        feature_count=args.features,
        estimator_trees=args.trees,
        target_runtime_seconds=args.target_runtime,
        cpu_cores=args.cpu_cores,
        memory_bytes=args.memory,
        temp_storage_bytes=args.temp_storage,
        db_lock_timeout_seconds=args.db_lock_timeout,
        allow_home_compute=bool(args.home_compute),
    )
    return dataclass_to_wire(request)


def run(args: argparse.Namespace) -> int:
    from paglets.cli import _render
    from paglets.cli._services import connect
    from paglets.core.messages import Message
    from paglets.remote.proxy import PagletProxy

    request = _request(args)
    timeout = float(option(args, "timeout", DEFAULT_TIMEOUT))
    client, entry = connect(args, timeout)
    module = "paglets.examples.analysis_jobs.agent"
    created = client.post_json(
        f"{entry.url}/agents",
        {
            "agent_class_name": f"{module}:AnalysisCampaignPaglet",
            "state_class_name": f"{module}:AnalysisCampaignState",
        },
        timeout=timeout,
    )
    proxy = PagletProxy(entry.url, str(created["proxy"]["agent_id"]), client)
    started = proxy.send(Message("start", {"request": request}), timeout=timeout)
    campaign = str(started["campaign_id"])
    as_json = option(args, "json", False)
    if args.no_wait:
        if as_json:
            _render.print_json({**started, "agent_id": proxy.agent_id, "host_url": entry.url})
        else:
            _render.print_line(f"submitted {campaign} on {entry.url} output={started['db_path']}")
        return EXIT_OK
    if not as_json:
        _render.print_line(
            f"campaign {campaign}: {args.tasks} jobs of {args.target_runtime:g} s from {entry.name}, "
            f"results into {started['db_path']}"
        )
    summary, finished = _follow(args, client, entry, proxy, campaign, quiet=as_json)
    if as_json:
        _render.print_json({"summary": summary, "finished": finished})
    else:
        _final(summary, finished)
    complete = finished and not summary.get("failed_count")
    return EXIT_OK if complete else EXIT_INCOMPLETE


def _counts(summary: dict[str, Any], jobs: list[Any]) -> dict[str, dict[str, int]]:
    """Jobs per host and stage: placing, queued and running from the home's tracking, done and failed
    from the campaign's reports."""
    per_host: dict[str, dict[str, int]] = {}
    reported = {**summary.get("results", {}), **summary.get("failures", {})}
    for job in jobs:
        if job.job_id in reported:
            continue
        stage = {"WAITING_FOR_SLOT": "queued", "RUNNING": "running"}.get(job.status, "placing")
        if job.status in ("COMPLETED",):
            stage = "running"  # computed, its report is on its way
        per_host.setdefault(job.host_name or "?", dict.fromkeys(_STAGES, 0))[stage] += 1
    for kind, stage in (("results", "done"), ("failures", "failed")):
        for record in summary.get(kind, {}).values():
            host = str(record.get("host_name") or "?")
            per_host.setdefault(host, dict.fromkeys(_STAGES, 0))[stage] += 1
    return per_host


def _follow(
    args: argparse.Namespace, client: Any, entry: Any, proxy: Any, campaign: str, *, quiet: bool
) -> tuple[dict[str, Any], bool]:
    import sys

    from paglets.cli import _render
    from paglets.cli._services import call_service
    from paglets.core.messages import Message
    from paglets.services.builtin.compute_slots import COMPUTE_SLOTS_AGENT_ID, LIST_JOBS, ListJobsRequest

    began = time.monotonic()
    deadline = began + args.wait
    live: Any = None
    if not quiet and sys.stdout.isatty():
        from rich.live import Live

        live = Live(console=_render.console(), refresh_per_second=4, transient=True)
        live.start()
    last_line = ""
    summary: dict[str, Any] = {}
    try:
        while True:
            summary = proxy.send(Message("summary"), timeout=10.0)
            try:
                listing = call_service(
                    client,
                    entry.url,
                    COMPUTE_SLOTS_AGENT_ID,
                    "compute-slots",
                    LIST_JOBS,
                    ListJobsRequest(group_id=campaign),
                    deadline=time.monotonic() + 10.0,
                )
                jobs = list(listing.jobs)
            except Exception:
                jobs = []
            counts = _counts(summary, jobs)
            elapsed = time.monotonic() - began
            done = not summary.get("creating") and summary.get("status") == "COMPLETE"
            if live is not None:
                live.update(_progress_table(counts, elapsed))
            elif not quiet:
                line = _progress_line(counts)
                if line != last_line:
                    _render.print_line(f"[{elapsed:6.1f}s] {line}")
                    last_line = line
            if done:
                return summary, True
            if time.monotonic() >= deadline:
                return summary, False
            time.sleep(POLL_INTERVAL)
    finally:
        if live is not None:
            live.stop()


def _progress_line(counts: dict[str, dict[str, int]]) -> str:
    totals = {stage: sum(c[stage] for c in counts.values()) for stage in _STAGES}
    hosts = ", ".join(
        f"{host} {c['queued']}/{c['running']}/{c['done']}" for host, c in sorted(counts.items())
    )
    overall = " · ".join(f"{stage} {totals[stage]}" for stage in _STAGES)
    return f"{overall}   (queued/running/done: {hosts or 'none yet'})"


def _progress_table(counts: dict[str, dict[str, int]], elapsed: float) -> Any:
    from rich import box
    from rich.table import Table

    table = Table(title=f"Analysis campaign ({elapsed:.0f}s)", box=box.SIMPLE_HEAVY, title_justify="left")
    table.add_column("host")
    for stage in _STAGES:
        table.add_column(stage, justify="right")
    for host, c in sorted(counts.items()):
        table.add_row(host, *(str(c[stage]) for stage in _STAGES))
    return table


def _final(summary: dict[str, Any], finished: bool) -> None:
    from paglets.cli import _render

    results = summary.get("results", {})
    rows = [
        [
            key.rsplit("-", 1)[-1],
            r.get("host_name", "?"),
            (r.get("result") or {}).get("rounds", "-"),
            _render.duration_text((r.get("result") or {}).get("duration_seconds")),
            _render.percent_text(100.0 * float((r.get("result") or {}).get("model_score", 0.0))),
        ]
        for key, r in sorted(results.items())
    ]
    if rows:
        _render.print_table(
            f"Analysis Results ({summary.get('campaign_id')})",
            ["job", "host", "rounds", "compute", "accuracy"],
            rows,
            right={"rounds", "compute", "accuracy"},
        )
    per_host: dict[str, int] = {}
    for r in results.values():
        per_host[str(r.get("host_name", "?"))] = per_host.get(str(r.get("host_name", "?")), 0) + 1
    wall = time.time() - float(summary.get("started_at") or time.time())
    hosts = ", ".join(f"{h} {n}" for h, n in sorted(per_host.items())) or "none"
    _render.print_line(
        f"{summary.get('committed', 0)} of {summary.get('expected_count', 0)} results committed to "
        f"{summary.get('db_path')} in {wall:.1f}s (per host: {hosts}); "
        f"{summary.get('failed_count', 0)} failed"
    )
    failures = {
        k.rsplit("-", 1)[-1]: str(v.get("error", "?")) for k, v in summary.get("failures", {}).items()
    }
    _render.print_section("Failures", failures, style="bold red")
    if not finished:
        _render.print_line(
            f"Stopped waiting with {summary.get('pending_count', '?')} jobs pending; the campaign goes on "
            f"(paglets jobs groups --group {summary.get('group_id')})."
        )


if __name__ == "__main__":
    raise SystemExit(main())
