"""``paglets sys summary|load|df|ps`` (and the ``paglets-sysinfo`` script): every host's ``server-info``.

The command asks the ``server-info`` service of every online host of the entry host's mesh (or the
``--host`` ones) in parallel, within ``--timeout`` seconds for the whole command, and prints one table.
Hosts that did not answer, or answered with an error, are listed under "Errors"; so are per-path
``df`` failures and failing probes. Exit code 1 when a host is missing from the answer or a requested
path failed. ``plist`` is accepted for ``ps`` (the 2.0 name).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from typing import Any, Final

from paglets.cli._common import (
    EXIT_INCOMPLETE,
    EXIT_OK,
    Parser,
    add_network_options,
    dispatch,
    option,
)

__all__ = ["add_commands", "build_parser", "main"]

DEFAULT_TIMEOUT: Final = 10.0


def build_parser(prog: str = "paglets-sysinfo") -> Parser:
    parser = Parser(
        prog=prog,
        description="Load, disk usage, processes and a summary of every host of a paglets mesh.",
    )
    _host_option(parser)
    add_network_options(parser, timeout=DEFAULT_TIMEOUT)
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    add_commands(sub, prog)
    return parser


def _host_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--host",
        action="append",
        metavar="NAME|URL",
        default=argparse.SUPPRESS,
        help="ask only this host (repeatable; default: every online host)",
    )


def _leaf(sub: Any, name: str, prog: str, help_text: str, aliases: Sequence[str] = ()) -> Parser:
    leaf: Parser = sub.add_parser(name, help=help_text, description=help_text, aliases=list(aliases))
    _host_option(leaf)
    add_network_options(leaf, timeout=DEFAULT_TIMEOUT)
    leaf.set_defaults(prog=prog)
    return leaf


def add_commands(sub: Any, prog: str) -> None:
    """Add ``summary``, ``load``, ``df`` and ``ps`` to the subparsers ``sub``."""
    leaf = _leaf(sub, "summary", prog, "platform, Python, CPUs, memory and boot time of every host")
    leaf.set_defaults(func=_summary)
    leaf = _leaf(sub, "load", prog, "CPU, load average, memory, swap and GPUs of every host")
    leaf.add_argument(
        "--interval", type=float, default=0.0, metavar="SECONDS", help="sample CPU use over this long (max 5)"
    )
    leaf.add_argument(
        "--gpu", action=argparse.BooleanOptionalAction, default=True, help="ask nvidia-smi about GPUs"
    )
    leaf.set_defaults(func=_load)
    leaf = _leaf(sub, "df", prog, "disk usage of every mounted volume, or of the given paths, on every host")
    leaf.add_argument("paths", nargs="*", metavar="PATH", help="paths to check on every host")
    leaf.set_defaults(func=_df)
    leaf = _leaf(
        sub,
        "ps",
        prog,
        "processes whose name or command line contains QUERY, largest memory first",
        aliases=("plist",),
    )
    leaf.add_argument("query", nargs="?", default="", help="text to look for (default: every process)")
    leaf.add_argument("--limit", type=int, default=25, metavar="N", help="processes per host (max 500)")
    leaf.add_argument("--args", action="store_true", help="show full command lines")
    leaf.set_defaults(func=_ps)


def main(argv: Sequence[str] | None = None) -> int:
    """``paglets-sysinfo``."""
    return dispatch(build_parser(), argv, "paglets-sysinfo")


# --- running ----------------------------------------------------------------------------------------------


def _collect(
    args: argparse.Namespace, operation: Any, request: Any, label: str
) -> tuple[dict[str, Any], dict[str, str], dict[str, str], dict[str, str]]:
    """``({host: reply}, {host: url}, {host: error}, notes)`` from every chosen host's server-info."""
    from paglets.cli._fanout import gather
    from paglets.cli._services import call_service, connect, offline_note, target_hosts
    from paglets.services.builtin.server_info import SERVER_INFO_AGENT_ID

    timeout = float(option(args, "timeout", DEFAULT_TIMEOUT))
    deadline = time.monotonic() + timeout
    client, entry = connect(args, timeout)
    targets = target_hosts(entry, getattr(args, "host", None))
    urls = dict(targets.hosts)

    def ask(name: str, url: str) -> Any:
        return call_service(
            client, url, SERVER_INFO_AGENT_ID, "server-info", operation, request, deadline=deadline
        )

    results, errors = gather(targets.hosts, ask, timeout=max(0.1, deadline - time.monotonic()), label=label)
    errors.update(targets.errors)
    return results, urls, errors, offline_note(targets)


def _finish(
    args: argparse.Namespace,
    operation: Any,
    results: dict[str, Any],
    urls: dict[str, str],
    errors: dict[str, str],
    notes: dict[str, str],
    render: Any,
) -> int:
    from paglets.cli import _render

    if option(args, "json", False):
        _render.print_json(
            {
                "operation": operation.name,
                "results": {
                    host: {"host_url": urls.get(host, ""), "result": operation.encode_reply(reply)}
                    for host, reply in sorted(results.items())
                },
                "errors": dict(sorted(errors.items())),
                "pending_hosts": [],
            }
        )
    else:
        if results:
            render(results)
        else:
            _render.print_line("No host answered.")
        _render.print_section("Notes", notes)
        _render.print_section("Errors", errors, style="bold red")
    return EXIT_INCOMPLETE if errors or not results else EXIT_OK


def _probe_notes(results: dict[str, Any]) -> dict[str, str]:
    return {
        f"{host} {probe}": error
        for host, reply in results.items()
        for probe, error in getattr(reply, "errors", {}).items()
    }


def _summary(args: argparse.Namespace) -> int:
    from paglets.cli import _render
    from paglets.services.builtin.server_info import GET_SUMMARY

    results, urls, errors, offline = _collect(args, GET_SUMMARY, None, "summary")

    def render(found: dict[str, Any]) -> None:
        rows = []
        for host, r in sorted(found.items()):
            physical = f" ({r.cpu_count_physical} cores)" if r.cpu_count_physical else ""
            rows.append(
                [
                    host,
                    f"{r.cpu_count_logical}{physical}",
                    _render.bytes_text(r.memory_total_bytes),
                    _render.when_text(r.boot_time),
                    r.platform,
                    r.python_version,
                    r.paglets_version,
                ]
            )
        _render.print_table(
            "Host Summary",
            ["host", "cpus", "memory", "booted", "platform", "python", "paglets"],
            rows,
            right={"memory"},
            wrap={"platform"},
        )

    return _finish(args, GET_SUMMARY, results, urls, errors, {**offline, **_probe_notes(results)}, render)


def _load(args: argparse.Namespace) -> int:
    from paglets.cli import _render
    from paglets.services.builtin.server_info import GET_LOAD, LoadRequest

    if not 0 <= args.interval <= 5:
        from paglets.cli._common import CommandError

        raise CommandError(f"--interval must be between 0 and 5 seconds, got {args.interval:g}")
    request = LoadRequest(interval=float(args.interval), include_gpu=bool(args.gpu))
    results, urls, errors, offline = _collect(args, GET_LOAD, request, "load")

    def render(found: dict[str, Any]) -> None:
        rows = []
        for host, r in sorted(found.items()):
            load = " ".join(f"{v:.2f}" for v in r.load_average) if r.load_average else None
            if r.gpus:
                gpu = ", ".join(f"{g.name}: {g.utilization_percent or 0:.0f}%" for g in r.gpus)
            else:
                gpu = f"none ({r.gpu_error})" if r.gpu_error else "none"
            rows.append(
                [
                    host,
                    _render.percent_text(r.cpu_percent),
                    load,
                    str(r.cpu_count_logical or "-"),
                    _render.percent_text(r.memory_percent),
                    _render.bytes_text(r.memory_available_bytes),
                    _render.percent_text(r.swap_percent) if r.swap_total_bytes else "no swap",
                    gpu,
                ]
            )
        _render.print_table(
            "Load",
            ["host", "cpu", "load 1/5/15m", "cpus", "memory used", "memory free", "swap used", "gpu"],
            rows,
            right={"cpu", "load 1/5/15m", "cpus", "memory used", "memory free", "swap used"},
            wrap={"gpu"},
        )

    return _finish(args, GET_LOAD, results, urls, errors, {**offline, **_probe_notes(results)}, render)


def _df(args: argparse.Namespace) -> int:
    from paglets.cli import _render
    from paglets.services.builtin.server_info import GET_DISK, DiskRequest

    paths = [str(p) for p in args.paths]
    results, urls, errors, offline = _collect(
        args, GET_DISK, DiskRequest(paths=paths, all_volumes=not paths), "df"
    )
    path_errors = {
        f"{host} {path}": error for host, r in results.items() for path, error in sorted(r.errors.items())
    }

    def render(found: dict[str, Any]) -> None:
        rows = [
            [
                host,
                v.path,
                _render.bytes_text(v.total_bytes),
                _render.bytes_text(v.used_bytes),
                _render.bytes_text(v.free_bytes),
                _render.percent_text(v.percent_used),
            ]
            for host, r in sorted(found.items())
            for v in r.volumes
        ]
        _render.print_table(
            "Disk",
            ["host", "path", "size", "used", "free", "use"],
            rows,
            right={"size", "used", "free", "use"},
            wrap={"path"},
        )

    if paths:  # a path the user named that cannot be reported makes the answer incomplete
        errors.update(path_errors)
        path_errors = {}
    return _finish(args, GET_DISK, results, urls, errors, {**offline, **path_errors}, render)


def _ps(args: argparse.Namespace) -> int:
    from paglets.cli import _render
    from paglets.cli._common import CommandError
    from paglets.services.builtin.server_info import LIST_PROCESSES, ProcessListRequest

    if not 1 <= args.limit <= 500:
        raise CommandError(f"--limit must be between 1 and 500, got {args.limit}")
    if len(args.query) > 256:
        raise CommandError("the query is longer than 256 characters")
    request = ProcessListRequest(query=args.query, limit=args.limit, include_args=bool(args.args))
    results, urls, errors, offline = _collect(args, LIST_PROCESSES, request, "ps")
    notes = {**offline, **_probe_notes(results)}
    for host, r in results.items():
        if r.truncated:
            notes[host] = f"{r.matched - len(r.processes)} more matching processes not shown (raise --limit)"

    def render(found: dict[str, Any]) -> None:
        rows = []
        for host, r in sorted(found.items()):
            for p in r.processes:
                name = " ".join(p.cmdline) if args.args and p.cmdline else p.name
                rows.append(
                    [
                        host,
                        p.pid,
                        _render.bytes_text(p.memory_rss_bytes),
                        _render.percent_text(p.memory_percent),
                        _render.percent_text(p.cpu_percent),
                        p.status,
                        p.username,
                        name,
                    ]
                )
        title = f"Processes matching {args.query!r}" if args.query else "Processes"
        _render.print_table(
            title,
            ["host", "pid", "rss", "memory", "cpu", "status", "user", "command" if args.args else "name"],
            rows,
            right={"pid", "rss", "memory", "cpu"},
            wrap={"command", "name"},
        )
        if found and not rows:
            _render.print_line("No matching processes.")

    code = _finish(args, LIST_PROCESSES, results, urls, errors, notes, render)
    if code == EXIT_OK and not any(r.processes for r in results.values()):
        return EXIT_INCOMPLETE  # nothing found
    return code


if __name__ == "__main__":
    raise SystemExit(main())
