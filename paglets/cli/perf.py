"""``paglets examples perf`` (and ``paglets-perf-test``): a benchmark paglet cloned to every host.

The command creates the benchmark paglet on the entry host; it clones itself to every online host of
the mesh (or the ``--host`` ones), each clone measures its host (CPU on one core and on ``--workers``
processes, memory copy and scan, writing, syncing and reading a temporary file of ``--disk-size`` in
each ``--path``, creating and deleting small files) and reports back. Benchmarks on one machine take
turns (a lock in the temporary directory). A line per host is printed on stderr as its result comes
in; at the end one table per kind of measurement, and the hosts that did not report under *Errors*.
``--output FILE`` also writes the JSON summary to FILE.

Exit codes: 0 every host reported; 1 a host is missing or failed; 2 bad options or no entry host.
"""

from __future__ import annotations

import argparse
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
    from paglets.examples.performance.agent import BenchmarkProgress

__all__ = ["DESCRIPTION", "add_arguments", "build_parser", "main"]

DEFAULT_TIMEOUT: Final = 120.0
DESCRIPTION: Final = "benchmark CPU, memory and disk of every host with a paglet cloned to each"


def build_parser(prog: str = "paglets-perf-test") -> Parser:
    parser = Parser(prog=prog, description=__doc__)
    add_arguments(parser)
    parser.set_defaults(func=_run, prog=prog)
    return parser


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from paglets.cli._jobs import parse_size

    parser.add_argument("--duration", type=float, default=1.0, metavar="SECONDS", help="seconds per kernel")
    parser.add_argument(
        "--disk-size", type=parse_size, default=128 << 20, metavar="SIZE", help="temporary file size (128M)"
    )
    parser.add_argument("--workers", type=int, default=0, metavar="N", help="multi-core processes (0: CPUs)")
    parser.add_argument(
        "--path",
        action="append",
        default=[],
        metavar="DIR",
        help="disk to test (repeatable; default: temp dir)",
    )
    for name in ("cpu", "memory", "disk"):
        parser.add_argument(
            f"--{name}", action=argparse.BooleanOptionalAction, default=True, help=f"{name} kernels"
        )
    parser.add_argument("--lock-timeout", type=float, default=60.0, metavar="SECONDS", help=argparse.SUPPRESS)
    parser.add_argument(
        "--host", action="append", default=[], metavar="NAME", help="only this host (repeatable)"
    )
    parser.add_argument("--output", default="", metavar="FILE", help="also write the JSON summary to FILE")
    parser.add_argument("--verbose", "--debug", action="store_true", help="also list skipped disk targets")
    add_network_options(parser, timeout=DEFAULT_TIMEOUT)


def main(argv: Sequence[str] | None = None) -> int:
    """``paglets-perf-test``."""
    return dispatch(build_parser(), argv, "paglets-perf-test")


def _run(args: argparse.Namespace) -> int:
    from paglets.cli._jobs import create_paglet, dispose_quietly, poll, remote_host
    from paglets.cli._services import connect
    from paglets.examples.performance.agent import (
        CANCEL_BENCHMARK,
        MAX_DISK_SIZE,
        PERF_CLASS,
        READ_BENCHMARK,
        START_BENCHMARK,
        BenchmarkRequest,
    )
    from paglets.patterns import OperationClient

    if not 0.01 <= args.duration <= 60:
        raise CommandError(f"--duration must be between 0.01 and 60 seconds, got {args.duration:g}")
    if not 0 < args.disk_size <= MAX_DISK_SIZE:
        raise CommandError(f"--disk-size must be between 1 byte and 4G, got {args.disk_size} bytes")
    if args.workers < 0:
        raise CommandError("--workers must be 0 or more")
    timeout = float(option(args, "timeout", DEFAULT_TIMEOUT))
    deadline = time.monotonic() + timeout
    client, entry = connect(args, timeout)
    hosts = [remote_host(entry, name)[0] for name in args.host]
    proxy = create_paglet(client, entry.url, PERF_CLASS, timeout=min(30.0, timeout))
    job = OperationClient(proxy)
    announced: set[str] = set()

    def show(progress: BenchmarkProgress) -> None:
        for host, result in sorted(progress.results.items()):
            if host not in announced:
                announced.add(host)
                print(f"perf: {host} measured in {result.seconds:.1f}s", file=sys.stderr, flush=True)
        for host, error in sorted(progress.errors.items()):
            if host not in announced:
                announced.add(host)
                print(f"perf: {host} missing: {error}", file=sys.stderr, flush=True)

    try:
        request = BenchmarkRequest(
            duration=args.duration,
            disk_size=args.disk_size,
            workers=args.workers,
            paths=list(args.path),
            cpu=args.cpu,
            memory=args.memory,
            disk=args.disk,
            lock_timeout=args.lock_timeout,
            hosts=hosts,
            timeout=max(1.0, timeout - 2.0),
        )
        job.call(START_BENCHMARK, request, timeout=min(30.0, timeout))
        try:
            final = poll(
                lambda limit: job.call(READ_BENCHMARK, timeout=limit),
                lambda p: p.status != "running",
                deadline=deadline,
                on_reply=show,
            )
        except (TimeoutError, KeyboardInterrupt) as exc:
            try:
                final = job.call(CANCEL_BENCHMARK, timeout=5.0)
            except Exception:
                raise CommandError(f"timed out after {timeout:g} s", EXIT_INCOMPLETE) from None
            if isinstance(exc, KeyboardInterrupt):
                raise
    finally:
        dispose_quietly(proxy)
    return _report(args, final)


def _report(args: argparse.Namespace, final: BenchmarkProgress) -> int:
    from paglets.cli import _render
    from paglets.serialization.codec import dataclass_to_wire

    payload = dataclass_to_wire(final)
    if args.output:
        import json

        from paglets.cli.pi import _write

        _write(args.output, json.dumps(payload, indent=2, sort_keys=True) + "\n")
    if option(args, "json", False):
        _render.print_json(payload)
    else:
        _tables(args, final)
    incomplete = bool(final.errors) or final.status != "done" or not final.results
    incomplete = incomplete or any(r.errors for r in final.results.values())
    return EXIT_INCOMPLETE if incomplete else EXIT_OK


def _rate(value: float, unit: str = "") -> str:
    for suffix, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if value >= scale:
            return f"{value / scale:.1f}{suffix}{unit}"
    return f"{value:.0f}{unit}"


def _tables(args: argparse.Namespace, final: BenchmarkProgress) -> None:
    from paglets.cli import _render

    results = sorted(final.results.items())

    def kernel(items: list[Any], name: str) -> Any:
        return next((k for k in items if k.name == name), None)

    if results and args.cpu:
        rows = []
        for host, r in results:
            cells: list[object] = [host, f"{r.cpus}"]
            for items, name in ((r.single_core, "integer"), (r.single_core, "float")):
                k = kernel(items, name)
                cells.append(_rate(k.operations_per_second, " op/s") if k else None)
            k = kernel(r.single_core, "sha256")
            cells.append(f"{_render.bytes_text(k.bytes_per_second)}/s" if k else None)
            cells.append(f"{r.workers}")
            k = kernel(r.multi_core, "integer-multi")
            cells.append(_rate(k.operations_per_second, " op/s") if k else None)
            k = kernel(r.multi_core, "sha256-multi")
            cells.append(f"{_render.bytes_text(k.bytes_per_second)}/s" if k else None)
            rows.append(cells)
        columns = ["host", "cpus", "integer", "float", "sha256", "processes", "integer (all)", "sha256 (all)"]
        _render.print_table(f"CPU ({args.duration:g}s per kernel)", columns, rows, right=set(columns[1:]))
    if results and args.memory:
        rows = []
        for host, r in results:
            copy, scan = kernel(r.memory, "memory-copy"), kernel(r.memory, "memory-scan")
            rows.append(
                [
                    host,
                    f"{_render.bytes_text(copy.bytes_per_second)}/s" if copy else None,
                    f"{_render.bytes_text(scan.bytes_per_second)}/s" if scan else None,
                ]
            )
        _render.print_table("Memory", ["host", "copy", "scan"], rows, right={"copy", "scan"})
    if results and args.disk:
        rows = [
            [
                host,
                d.path,
                _render.bytes_text(d.size_bytes),
                f"{_render.bytes_text(d.write_bytes_per_second)}/s",
                f"{d.fsync_seconds * 1000:.1f} ms",
                f"{_render.bytes_text(d.read_bytes_per_second)}/s",
                f"{d.metadata_files_per_second:.0f}/s",
            ]
            for host, r in results
            for d in r.disks
        ]
        columns = ["host", "path", "size", "write", "fsync", "read", "files"]
        _render.print_table("Disk", columns, rows, right=set(columns[2:]), wrap={"path"})
    notes: dict[str, str] = {}
    for host, r in results:
        if r.lock_wait_seconds >= 0.5:
            notes[f"{host} waited"] = f"{r.lock_wait_seconds:.1f}s for another benchmark on its machine"
        if args.verbose:
            for path, reason in r.skipped.items():
                notes[f"{host} {path}"] = f"skipped: {reason}"
    errors = dict(final.errors)
    for host, r in results:
        for index, error in enumerate(r.errors):
            errors[f"{host} #{index + 1}"] = error
    for host, error in final.cleanup_errors.items():
        errors[f"{host} cleanup"] = error
    if final.status not in ("done", "running"):
        errors["benchmark"] = f"{final.status}: {final.error}"
    _render.print_line(
        f"{len(results)} of {len(final.hosts) or len(results)} hosts measured in {final.elapsed_seconds:.1f}s"
    )
    _render.print_section("Notes", notes)
    _render.print_section("Errors", errors, style="bold red")


if __name__ == "__main__":
    raise SystemExit(main())
