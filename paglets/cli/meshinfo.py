"""``paglets mesh summary|targets`` (and the ``paglets-mesh-info`` script): the entry host's ``mesh-info``.

``summary`` prints the fresh resource snapshot of every host the entry host's ``mesh-info`` service
knows (exit 1 when it knows none); ``targets`` ranks placement targets under the given limits and lists
every rejected host with its reason (exit 1 when no host qualifies). Ages are computed on the entry
host's clock. ``--min-memory`` and ``--min-work-free`` are accepted for ``--mem`` and ``--disk`` (the
2.0 names).
"""

from __future__ import annotations

import argparse
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

__all__ = ["add_commands", "build_parser", "main", "parse_size"]

DEFAULT_TIMEOUT: Final = 10.0
_UNITS: Final = {"": 1, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40, "P": 1 << 50}


def parse_size(text: str) -> int:
    """``512M``, ``1G``, ``1.5GB``, ``4096`` → bytes (powers of 1024)."""
    value = text.strip().upper().removesuffix("IB").removesuffix("B")
    unit = value[-1:] if value[-1:] in _UNITS else ""
    number = value[: len(value) - len(unit)].strip()
    try:
        amount = float(number)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (use e.g. 512M, 2G or 4096)") from None
    if amount < 0 or amount != amount or amount > 1 << 60:
        raise argparse.ArgumentTypeError(f"not a size: {text!r}")
    return int(amount * _UNITS[unit])


def build_parser(prog: str = "paglets-mesh-info") -> Parser:
    parser = Parser(
        prog=prog,
        description="Resource snapshots of every host of a paglets mesh, and where to place work.",
    )
    add_network_options(parser, timeout=DEFAULT_TIMEOUT)
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    add_commands(sub, prog)
    return parser


def add_commands(sub: Any, prog: str) -> None:
    """Add ``summary``, ``targets`` and ``update`` (``paglets.cli.meshupdate``) to the subparsers ``sub``."""
    from paglets.cli import meshupdate

    text = "the latest resource snapshot of every host the entry host knows"
    leaf: Parser = sub.add_parser("summary", help=text, description=text)
    leaf.add_argument(
        "--max-age",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="hide older snapshots (0: service default)",
    )
    leaf.add_argument("--limit", type=int, default=0, metavar="N", help="show at most N hosts (0: all)")
    add_network_options(leaf, timeout=DEFAULT_TIMEOUT)
    leaf.set_defaults(func=_summary, prog=prog)

    text = "hosts ranked as placement targets, and why the others do not qualify"
    leaf = sub.add_parser("targets", help=text, description=text)
    leaf.add_argument("--limit", type=int, default=5, metavar="N", help="targets to show")
    leaf.add_argument(
        "--max-age", type=float, default=0.0, metavar="SECONDS", help="ignore older snapshots (0: default)"
    )
    leaf.add_argument(
        "--max-load-per-cpu", type=float, default=1.0, metavar="X", help="1-minute load divided by CPUs"
    )
    leaf.add_argument("--max-cpu-percent", type=float, default=100.0, metavar="PCT", help="sampled CPU use")
    leaf.add_argument(
        "--mem", "--min-memory", type=parse_size, default=0, metavar="SIZE", help="minimum available memory"
    )
    leaf.add_argument(
        "--disk",
        "--min-work-free",
        type=parse_size,
        default=0,
        metavar="SIZE",
        help="minimum free work storage",
    )
    leaf.add_argument(
        "--include-self",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="consider the entry host itself",
    )
    leaf.add_argument("--exclude-self", dest="include_self", action="store_false", help=argparse.SUPPRESS)
    add_network_options(leaf, timeout=DEFAULT_TIMEOUT)
    leaf.set_defaults(func=_targets, prog=prog)
    meshupdate.add_command(sub, f"{prog} update")


def main(argv: Sequence[str] | None = None) -> int:
    """``paglets-mesh-info``."""
    return dispatch(build_parser(), argv, "paglets-mesh-info")


def _call(args: argparse.Namespace, operation: Any, request: Any) -> tuple[Any, str]:
    from paglets.cli._fanout import Progress
    from paglets.cli._services import call_service, connect
    from paglets.services.builtin.mesh_info import MESH_INFO_AGENT_ID

    timeout = float(option(args, "timeout", DEFAULT_TIMEOUT))
    deadline = time.monotonic() + timeout
    client, entry = connect(args, timeout)
    with Progress(f"asking mesh-info on {entry.name}"):
        try:
            reply = call_service(
                client, entry.url, MESH_INFO_AGENT_ID, "mesh-info", operation, request, deadline=deadline
            )
        except CommandError:
            raise
        except Exception as exc:
            from paglets.cli._fanout import describe_error

            raise CommandError(f"mesh-info on {entry.name}: {describe_error(exc)}") from None
    return reply, entry.name


def _check(args: argparse.Namespace) -> None:
    if args.max_age < 0:
        raise CommandError(f"--max-age must be 0 or more seconds, got {args.max_age:g}")
    if args.limit < 0:
        raise CommandError(f"--limit must be 0 or more, got {args.limit}")


_NUMBERS: Final = ("age", "cpu", "load/cpu", "memory used", "memory free", "work free", "active", "inactive")


def _summary(args: argparse.Namespace) -> int:
    from paglets.cli import _render
    from paglets.services.builtin.mesh_info import GET_LANDSCAPE, LandscapeRequest

    _check(args)
    request = LandscapeRequest(fresh_only=True, max_age_seconds=float(args.max_age), limit=int(args.limit))
    reply, entry_name = _call(args, GET_LANDSCAPE, request)
    if option(args, "json", False):
        _render.print_json(GET_LANDSCAPE.encode_reply(reply))
        return EXIT_OK if reply.hosts else EXIT_INCOMPLETE
    if reply.hosts:
        rows = [
            [
                s.host_name,
                _render.duration_text(reply.generated_at - s.observed_at),
                _render.percent_text(s.cpu_percent),
                f"{s.load_per_cpu:.3f}",
                _render.percent_text(s.memory_percent),
                _render.bytes_text(s.memory_available_bytes),
                _render.bytes_text(s.work_free_bytes),
                s.active_count,
                s.inactive_count,
                "; ".join(s.errors) or "none",
            ]
            for s in reply.hosts
        ]
        _render.print_table(
            f"Mesh Summary (from {entry_name})",
            ["host", *_NUMBERS, "problems"],
            rows,
            right=_NUMBERS,
            wrap={"problems"},
        )
    else:
        _render.print_line(f"mesh-info on {entry_name} knows no fresh host snapshot yet.")
    if reply.stale:
        _render.print_section("Stale (not shown)", reply.stale)
    _render.print_section("Errors", reply.errors, style="bold red")
    return EXIT_OK if reply.hosts else EXIT_INCOMPLETE


def _targets(args: argparse.Namespace) -> int:
    from paglets.cli import _render
    from paglets.services.builtin.mesh_info import SELECT_TARGETS, TargetSelectionRequest

    _check(args)
    if args.limit < 1:
        raise CommandError(f"--limit must be at least 1, got {args.limit}")
    if args.max_load_per_cpu < 0 or args.max_cpu_percent < 0:
        raise CommandError("--max-load-per-cpu and --max-cpu-percent must not be negative")
    request = TargetSelectionRequest(
        limit=int(args.limit),
        max_age_seconds=float(args.max_age),
        max_load_per_cpu=float(args.max_load_per_cpu),
        max_cpu_percent=float(args.max_cpu_percent),
        min_memory_available_bytes=int(args.mem),
        min_work_free_bytes=int(args.disk),
        include_self=bool(args.include_self),
    )
    reply, entry_name = _call(args, SELECT_TARGETS, request)
    if option(args, "json", False):
        _render.print_json(SELECT_TARGETS.encode_reply(reply))
        return EXIT_OK if reply.targets else EXIT_INCOMPLETE
    if reply.targets:
        rows = [
            [
                t.snapshot.host_name,
                f"{t.score:.3f}",
                _render.percent_text(t.snapshot.cpu_percent),
                f"{t.snapshot.load_per_cpu:.3f}",
                _render.bytes_text(t.snapshot.memory_available_bytes),
                _render.bytes_text(t.snapshot.work_free_bytes),
                t.snapshot.active_count,
                t.snapshot.inactive_count,
            ]
            for t in reply.targets
        ]
        _render.print_table(
            f"Mesh Targets (from {entry_name}; lower score is better)",
            ["host", "score", "cpu", "load/cpu", "memory free", "work free", "active", "inactive"],
            rows,
            right={"score", "cpu", "load/cpu", "memory free", "work free", "active", "inactive"},
        )
    else:
        _render.print_line("No host qualifies as a target.")
    _render.print_section("Rejected", reply.rejected)
    _render.print_section("Errors", reply.errors, style="bold red")
    return EXIT_OK if reply.targets else EXIT_INCOMPLETE


if __name__ == "__main__":
    raise SystemExit(main())
