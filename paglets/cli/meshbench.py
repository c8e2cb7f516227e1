"""``paglets examples mesh-benchmark`` (and ``paglets-mesh-benchmark``): how long a paglet takes to move.

The command starts a coordinator on the entry host; a traveller paglet, carrying ``--payload-size``
extra bytes of state, visits every directed pair of hosts (``--repeats`` times; also each host to
itself unless ``--exclude-self``), timing every move on the entry host's clock. A progress bar shows
the moves on a terminal. At the end it prints the Markdown report: the directional matrix (the mean
time from the row's host to the column's host), the totals, each host's clock offset and message round
trip to the entry host, payload speeds, and the overall time. ``--output FILE`` also writes the JSON
summary, ``--json`` prints it instead of the report.

A host that goes away is reported under ``errors:`` and its pairs print as ``-``; the rest is measured.
Exit codes: 0 every pair measured; 1 a pair is missing or the run failed; 2 bad options or no entry host.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

from paglets.cli._common import (
    EXIT_INCOMPLETE,
    EXIT_OK,
    CommandError,
    Parser,
    add_network_options,
    dispatch,
    option,
)

if TYPE_CHECKING:
    from paglets.examples.mesh_benchmark.agent import MeshBenchmarkProgress
    from paglets.examples.mesh_benchmark.analysis import MeshBenchmarkSummary, MeshTravelRecord

__all__ = ["DESCRIPTION", "add_arguments", "build_parser", "format_markdown", "main"]

DEFAULT_TIMEOUT: Final = 600.0
DESCRIPTION: Final = "time a traveller paglet moving between every pair of hosts (a Markdown matrix)"


def build_parser(prog: str = "paglets-mesh-benchmark") -> Parser:
    parser = Parser(prog=prog, description=__doc__)
    add_arguments(parser)
    parser.set_defaults(func=_run, prog=prog)
    return parser


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from paglets.cli._jobs import parse_size

    parser.add_argument("--repeats", type=int, default=1, metavar="N", help="times to travel the route")
    parser.add_argument(
        "--payload-size", type=parse_size, default=0, metavar="SIZE", help="extra state to carry (64K, 16M)"
    )
    parser.add_argument("--exclude-self", action="store_true", help="no moves from a host to itself")
    parser.add_argument("--digits", type=int, default=1, metavar="N", help="decimals in the matrix")
    parser.add_argument("--clock-probes", type=int, default=5, metavar="N", help="clock probes per arrival")
    parser.add_argument(
        "--host", action="append", default=[], metavar="NAME", help="only these hosts (repeatable)"
    )
    parser.add_argument("--output", default="", metavar="FILE", help="also write the JSON summary to FILE")
    add_network_options(parser, timeout=DEFAULT_TIMEOUT)


def main(argv: Sequence[str] | None = None) -> int:
    """``paglets-mesh-benchmark``."""
    return dispatch(build_parser(), argv, "paglets-mesh-benchmark")


def _check(args: argparse.Namespace) -> None:
    from paglets.examples.mesh_benchmark.agent import MAX_PAYLOAD, MAX_PROBES

    if args.payload_size > MAX_PAYLOAD:
        raise CommandError(
            f"--payload-size {args.payload_size} bytes is above the limit of {MAX_PAYLOAD >> 20} MiB "
            "(the traveller carries it in its state through every host)"
        )
    if not 1 <= args.repeats <= 1000:
        raise CommandError(f"--repeats must be between 1 and 1000, got {args.repeats}")
    if not 0 <= args.digits <= 9:
        raise CommandError(f"--digits must be between 0 and 9, got {args.digits}")
    if not 1 <= args.clock_probes <= MAX_PROBES:
        raise CommandError(f"--clock-probes must be between 1 and {MAX_PROBES}, got {args.clock_probes}")


def _run(args: argparse.Namespace) -> int:
    from paglets.cli._jobs import create_paglet, dispose_quietly, poll, remote_host
    from paglets.cli._services import connect
    from paglets.examples.mesh_benchmark.agent import (
        CANCEL_BENCHMARK,
        MESH_BENCHMARK_CLASS,
        READ_BENCHMARK,
        START_BENCHMARK,
        MeshBenchmarkRequest,
        MeshReadRequest,
    )
    from paglets.patterns import OperationClient

    _check(args)
    timeout = float(option(args, "timeout", DEFAULT_TIMEOUT))
    deadline = time.monotonic() + timeout
    client, entry = connect(args, timeout)
    hosts = [remote_host(entry, name)[0] for name in args.host]
    proxy = create_paglet(client, entry.url, MESH_BENCHMARK_CLASS, timeout=min(30.0, timeout))
    job = OperationClient(proxy)
    records: list[MeshTravelRecord] = []
    bar = _Bar()
    try:
        request = MeshBenchmarkRequest(
            repeats=args.repeats,
            payload_size=args.payload_size,
            exclude_self=args.exclude_self,
            clock_probes=args.clock_probes,
            hosts=hosts,
            timeout=max(1.0, timeout - 2.0),
        )
        try:
            job.call(START_BENCHMARK, request, timeout=min(30.0, timeout))
        except Exception as exc:
            raise CommandError(str(exc).splitlines()[0], EXIT_INCOMPLETE) from None

        def show(progress: MeshBenchmarkProgress) -> None:
            records.extend(progress.records)
            bar.update(len(records), progress)

        try:
            final = poll(
                lambda limit: job.call(READ_BENCHMARK, MeshReadRequest(len(records)), timeout=limit),
                lambda p: p.status != "running" and p.moves_done == len(records),
                deadline=deadline,
                on_reply=show,
            )
        except (TimeoutError, KeyboardInterrupt) as exc:
            bar.close()
            try:
                final = job.call(CANCEL_BENCHMARK, timeout=5.0)
            except Exception:
                raise CommandError(f"timed out after {timeout:g} s", EXIT_INCOMPLETE) from None
            if isinstance(exc, KeyboardInterrupt):
                raise
    finally:
        bar.close()
        dispose_quietly(proxy)
    return _report(args, final, records)


def _report(args: argparse.Namespace, final: MeshBenchmarkProgress, records: list[MeshTravelRecord]) -> int:
    from paglets.cli import _render
    from paglets.serialization.codec import dataclass_to_wire

    summary = final.summary
    payload = {
        "job_id": final.job_id,
        "status": final.status,
        "error": final.error,
        "hosts": final.hosts,
        "errors": final.errors,
        "summary": dataclass_to_wire(summary) if summary is not None else None,
        "records": [dataclass_to_wire(r) for r in records],
    }
    if args.output:
        import json

        from paglets.cli.pi import _write

        _write(args.output, json.dumps(payload, indent=2, sort_keys=True) + "\n")
    if option(args, "json", False):
        _render.print_json(payload)
    elif summary is not None:
        errors = dict(final.errors)
        if final.status != "done":
            errors.setdefault("benchmark", f"{final.status}: {final.error}")
        sys.stdout.write(
            format_markdown(summary, records, errors, digits=args.digits, exclude_self=args.exclude_self)
        )
        sys.stdout.flush()
    else:
        print(f"{args.prog}: the benchmark {final.status}: {final.error}", file=sys.stderr)
    complete = (
        final.status == "done" and summary is not None and not summary.missing_pairs and not final.errors
    )
    return EXIT_OK if complete else EXIT_INCOMPLETE


# --- the Markdown report --------------------------------------------------------------------------------

_UNITS: Final = (("us", 1e-6), ("ms", 1e-3), ("s", 1.0), ("min", 60.0), ("h", 3600.0))


def _unit_for(seconds: float) -> tuple[str, float]:
    if seconds < 1e-3:
        return _UNITS[0]
    if seconds < 1:
        return _UNITS[1]
    if seconds < 60:
        return _UNITS[2]
    if seconds < 3600:
        return _UNITS[3]
    return _UNITS[4]


def _duration(seconds: float, digits: int = 1) -> str:
    name, scale = _unit_for(abs(seconds))
    return f"{seconds / scale:.{digits}f} {name}"


def _offset(seconds: float) -> str:
    if abs(seconds) < 1:
        return f"{seconds * 1000:+.3f} ms"
    return f"{'+' if seconds >= 0 else '-'}{_duration(abs(seconds), 3)}"


def _table(header: list[str], rows: list[list[str]], *, left: int = 1) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]

    def line(cells: list[str]) -> str:
        parts = [
            c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "| " + " | ".join(parts) + " |"

    return [line(header), "| " + " | ".join("-" * w for w in widths) + " |", *(line(r) for r in rows)]


def _speed(value: float) -> str:
    from paglets.cli._render import bytes_text

    bits = value * 8
    for suffix, scale in (("Gbit/s", 1e9), ("Mbit/s", 1e6), ("kbit/s", 1e3)):
        if bits >= scale:
            return f"{bytes_text(value)}/s / {bits / scale:.1f} {suffix}"
    return f"{bytes_text(value)}/s / {bits:.0f} bit/s"


def format_markdown(
    summary: MeshBenchmarkSummary,
    records: list[MeshTravelRecord],
    errors: dict[str, str],
    *,
    digits: int = 1,
    exclude_self: bool = False,
) -> str:
    """The report (see the module docstring); ``-`` marks a pair without a sample."""
    unit, scale = _unit_for(summary.average_seconds)
    hosts = summary.hosts
    rows = []
    for source in hosts:
        cells = [source]
        for target in hosts:
            value = summary.matrix_seconds.get(source, {}).get(target)
            skip = exclude_self and source == target
            cells.append("-" if value is None or skip else f"{value / scale:.{digits}f}")
        rows.append(cells)
    out = [f"unit: {unit}", "", *_table(["from \\ to", *hosts], rows), ""]
    out += [
        f"average travel time: {summary.average_seconds / scale:.{digits}f} {unit}",
        f"sum measured travel time: {_duration(summary.sum_seconds)}",
        f"measured round trip time: {_duration(summary.round_trip_seconds)}",
        f"measured route overhead: {_duration(summary.overhead_seconds)}",
        f"setup time before first movement: {_duration(summary.setup_seconds)}",
        f"measured movements: {summary.movement_count}",
        "",
        "clock offsets vs entry:",
    ]
    clocks = [c for c in summary.clocks if c.samples]
    out += _table(
        ["host", "median offset", "samples", "best round trip"],
        [
            [c.host, _offset(c.median_offset_seconds), str(c.samples), _duration(c.best_rtt_seconds, 3)]
            for c in clocks
        ],
    )
    out += ["", "message passing times vs entry:"]
    out += _table(
        ["host", "samples", "median round trip", "average round trip", "best round trip", "worst round trip"],
        [
            [
                c.host,
                str(c.samples),
                _duration(c.median_rtt_seconds, 3),
                _duration(c.average_rtt_seconds, 3),
                _duration(c.best_rtt_seconds, 3),
                _duration(c.worst_rtt_seconds, 3),
            ]
            for c in clocks
        ],
    )
    if summary.missing_pairs or errors:
        out += ["", "errors:"]
        out += [f"- {host}: {error}" for host, error in sorted(errors.items())]
        if summary.missing_pairs:
            out.append(f"- not measured: {', '.join(summary.missing_pairs)}")
    if summary.payload_bytes:
        for kind, chosen in (
            ("other", [r for r in records if r.source != r.target]),
            ("self", [r for r in records if r.source == r.target]),
        ):
            by_target: dict[str, list[float]] = {}
            for r in chosen:
                if r.seconds > 0:
                    by_target.setdefault(r.target, []).append(r.payload_bytes / r.seconds)
            if by_target:
                parts = [
                    f"{host} ({_speed(statistics.fmean(v))}, {len(v)} sample{'s' if len(v) != 1 else ''})"
                    for host, v in sorted(by_target.items())
                ]
                out += ["", f"average payload transfer speed to {kind} hosts: {', '.join(parts)}"]
    out += ["", f"overall benchmark time: {_duration(summary.total_seconds)}", ""]
    return "\n".join(out)


class _Bar:
    """A progress bar on stderr while the traveller moves (only on a terminal)."""

    def __init__(self) -> None:
        self._progress: Any = None
        self._task: Any = None
        self._tty = sys.stderr.isatty()

    def update(self, done: int, progress: MeshBenchmarkProgress) -> None:
        if not self._tty or progress.planned_moves <= 0:
            return
        where = f"{progress.at_host} -> {progress.next_host}" if progress.next_host else progress.at_host
        if self._progress is None:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._progress = Progress(
                TextColumn("moving"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.description}"),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self._progress.start()
            self._task = self._progress.add_task(where, total=progress.planned_moves)
        self._progress.update(self._task, completed=done, description=where)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


if __name__ == "__main__":
    raise SystemExit(main())
