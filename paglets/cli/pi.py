"""``paglets examples pi`` (and ``paglets-pi-compute``): digits of pi computed by worker paglets on the mesh.

The command starts a pi coordinator on the entry host, which spreads Chudnovsky term ranges over
worker paglets on the online hosts (or the ``--host`` ones, or those mesh-info accepts under the
placement limits ``--max-load-per-cpu``, ``--max-cpu-percent``, ``--mem``, ``--disk``). The digits are
printed on stdout as they become certain (``3.`` first when ``--start`` is 0), then checked: against
the known first 1000 decimals, or, beyond those, against Ramanujan's series computed here, by another
formula. ``--output FILE`` also writes them to FILE (replaced atomically). A summary line goes to
stderr; ``--json`` prints one JSON document instead of both.

Exit codes: 0 the digits are complete and verified; 1 the job failed, timed out or the check found a
wrong digit; 2 bad options or no entry host.
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
    from paglets.cli._entry import Entry
    from paglets.examples.compute.agent import PiProgress
    from paglets.remote.client import HostClient

__all__ = ["add_arguments", "build_parser", "main"]

DEFAULT_TIMEOUT: Final = 300.0


def build_parser(prog: str = "paglets-pi-compute") -> Parser:
    parser = Parser(prog=prog, description=_description())
    add_arguments(parser)
    parser.set_defaults(func=_run, prog=prog)
    return parser


def _description() -> str:
    return "Compute digits of pi with worker paglets on the mesh's hosts and print them as they come."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from paglets.cli._jobs import parse_size

    parser.add_argument("--start", type=int, default=0, metavar="N", help="decimals to skip after '3.'")
    parser.add_argument(
        "--digits", type=int, default=16, metavar="N", help="decimals to compute (default 16)"
    )
    parser.add_argument(
        "--batch-size", type=int, default=0, metavar="TERMS", help="terms per batch (0: auto)"
    )
    parser.add_argument(
        "--max-in-flight",
        type=int,
        default=0,
        metavar="N",
        help="batches computed at once (0: one per worker)",
    )
    parser.add_argument(
        "--max-workers-per-host",
        type=int,
        default=0,
        metavar="N",
        help="workers per host (0: its CPUs, max 8)",
    )
    parser.add_argument(
        "--host", action="append", default=[], metavar="NAME", help="compute only on this host (repeatable)"
    )
    limits = parser.add_argument_group("placement limits (hosts are chosen by the entry host's mesh-info)")
    limits.add_argument("--max-load-per-cpu", type=float, default=None, metavar="X")
    limits.add_argument("--max-cpu-percent", type=float, default=None, metavar="P")
    limits.add_argument("--mem", "--min-memory", dest="mem", type=parse_size, default=None, metavar="SIZE")
    limits.add_argument(
        "--disk", "--min-work-free", dest="disk", type=parse_size, default=None, metavar="SIZE"
    )
    parser.add_argument("--output", default="", metavar="FILE", help="also write the digits to FILE")
    parser.add_argument("--no-verify", action="store_true", help="skip the check of the digits")
    add_network_options(parser, timeout=DEFAULT_TIMEOUT)


def main(argv: Sequence[str] | None = None) -> int:
    """``paglets-pi-compute``."""
    return dispatch(build_parser(), argv, "paglets-pi-compute")


def _check(args: argparse.Namespace) -> None:
    from paglets.examples.compute.agent import MAX_DIGITS

    if args.digits < 1:
        raise CommandError(f"--digits must be 1 or more, got {args.digits}")
    if args.start < 0:
        raise CommandError(f"--start must be 0 or more, got {args.start}")
    if args.start + args.digits > MAX_DIGITS:
        raise CommandError(f"--start + --digits must be at most {MAX_DIGITS}, got {args.start + args.digits}")
    for name in ("batch_size", "max_in_flight", "max_workers_per_host"):
        if getattr(args, name) < 0:
            raise CommandError(f"--{name.replace('_', '-')} must be 0 or more")


def _placement(args: argparse.Namespace, client: HostClient, entry: Entry, timeout: float) -> list[str]:
    """Host names for the job: ``--host``, narrowed by mesh-info's placement limits when any is given."""
    from paglets.cli._jobs import remote_host

    chosen = [remote_host(entry, name)[0] for name in args.host]
    limited = any(v is not None for v in (args.max_load_per_cpu, args.max_cpu_percent, args.mem, args.disk))
    if not limited:
        return chosen
    from paglets.cli._services import call_service
    from paglets.services.builtin.mesh_info import MESH_INFO_AGENT_ID, SELECT_TARGETS, TargetSelectionRequest

    request = TargetSelectionRequest(
        limit=1000,
        max_load_per_cpu=args.max_load_per_cpu if args.max_load_per_cpu is not None else 1e9,
        max_cpu_percent=args.max_cpu_percent if args.max_cpu_percent is not None else 100.0,
        min_memory_available_bytes=args.mem or 0,
        min_work_free_bytes=args.disk or 0,
        include_self=True,
    )
    reply = call_service(
        client,
        entry.url,
        MESH_INFO_AGENT_ID,
        "mesh-info",
        SELECT_TARGETS,
        request,
        deadline=time.monotonic() + timeout,
    )
    accepted = [target.snapshot.host_name for target in reply.targets]
    for host, reason in sorted(reply.rejected.items()):
        print(f"note: {host} not used: {reason}", file=sys.stderr)
    names = [name for name in accepted if not chosen or name in chosen]
    if not names:
        raise CommandError("no host meets the placement limits", EXIT_INCOMPLETE)
    return names


def _run(args: argparse.Namespace) -> int:
    from paglets.cli._jobs import create_paglet, dispose_quietly, poll
    from paglets.cli._services import connect
    from paglets.examples.compute.agent import (
        CANCEL_PI,
        PI_JOB_CLASS,
        READ_PI,
        START_PI,
        PiComputeRequest,
        PiReadRequest,
    )
    from paglets.patterns import OperationClient

    _check(args)
    timeout = float(option(args, "timeout", DEFAULT_TIMEOUT))
    as_json = bool(option(args, "json", False))
    deadline = time.monotonic() + timeout
    client, entry = connect(args, timeout)
    hosts = _placement(args, client, entry, timeout)
    proxy = create_paglet(client, entry.url, PI_JOB_CLASS, timeout=min(30.0, timeout))
    job = OperationClient(proxy)
    out = _DigitPrinter(args.start, quiet=as_json)
    try:
        request = PiComputeRequest(
            start=args.start,
            digits=args.digits,
            batch_size=args.batch_size,
            max_in_flight=args.max_in_flight,
            max_workers_per_host=args.max_workers_per_host,
            hosts=hosts,
            timeout=timeout,
        )
        job.call(START_PI, request, timeout=min(30.0, timeout))

        def read(limit: float) -> PiProgress:
            return job.call(READ_PI, PiReadRequest(out.count), timeout=limit)

        try:
            final = poll(
                read,
                lambda p: p.status != "running" and p.available == out.count,
                deadline=deadline,
                on_reply=out.show,
            )
        except TimeoutError:
            job_cancel(job, CANCEL_PI)
            out.end()
            raise CommandError(
                f"timed out after {timeout:g} s ({out.count} of {args.digits} digits)", EXIT_INCOMPLETE
            ) from None
        except KeyboardInterrupt:
            job_cancel(job, CANCEL_PI)
            out.end()
            raise
    finally:
        dispose_quietly(proxy)
    out.end()
    return _report(args, final, out.digits(), as_json)


def job_cancel(job: Any, operation: Any) -> None:
    try:
        job.call(operation, timeout=5.0)
    except Exception:
        pass


def _report(args: argparse.Namespace, final: PiProgress, digits: str, as_json: bool) -> int:
    from paglets.cli import _render
    from paglets.examples.compute.chudnovsky import verify

    complete = final.status == "done" and len(digits) == args.digits
    verified, method, wrong = (False, "", 0)
    if complete and not args.no_verify:
        verified, method, wrong = verify(args.start, digits)
    text = ("3." if args.start == 0 else "") + digits
    if complete and args.output:
        _write(args.output, text + "\n")
    if as_json:
        _render.print_json(
            {
                "job_id": final.job_id,
                "status": final.status,
                "error": final.error,
                "start": args.start,
                "digits": len(digits),
                "pi": text,
                "verified": verified,
                "verification": method or ("skipped" if args.no_verify else ""),
                "first_wrong_digit": wrong,
                "workers": final.workers,
                "host_batches": final.host_batches,
                "errors": final.errors,
                "terms": final.terms,
                "batches": final.batches,
                "elapsed_seconds": round(final.elapsed_seconds, 3),
                "compute_seconds": round(final.compute_seconds, 3),
                "output": args.output,
            }
        )
    else:
        for host, error in sorted(final.errors.items()):
            print(f"note: {host}: {error}", file=sys.stderr)
        spread = ", ".join(f"{host} {n}" for host, n in sorted(final.host_batches.items())) or "none"
        where = f"{final.terms} terms in {final.batches} batches (by host: {spread})"
        where += f", {final.elapsed_seconds:.2f}s"
        if not complete:
            print(
                f"{args.prog}: the job {final.status}: {final.error or 'incomplete'} ({where})",
                file=sys.stderr,
            )
        elif args.no_verify:
            print(f"pi: {len(digits)} digits, not verified; {where}", file=sys.stderr)
        elif verified:
            print(f"pi: {len(digits)} digits verified against {method}; {where}", file=sys.stderr)
        else:
            print(
                f"{args.prog}: WRONG digit at decimal {wrong} (checked against {method}); {where}",
                file=sys.stderr,
            )
        if complete and args.output:
            print(f"written to {args.output}", file=sys.stderr)
    if not complete or not (verified or args.no_verify):
        return EXIT_INCOMPLETE
    return EXIT_OK


def _write(path: str, text: str) -> None:
    import os
    import tempfile

    target = os.path.abspath(os.path.expanduser(path))
    folder = os.path.dirname(target) or "."
    try:
        fd, temporary = tempfile.mkstemp(prefix=".pi-", suffix=".part", dir=folder)
    except OSError as exc:
        raise CommandError(f"cannot write {path}: {exc.strerror or exc}", EXIT_INCOMPLETE) from None
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    except OSError as exc:
        os.unlink(temporary)
        raise CommandError(f"cannot write {path}: {exc.strerror or exc}", EXIT_INCOMPLETE) from None


class _DigitPrinter:
    """Prints digits on stdout as they arrive (``3.`` first when the digits start after the point)."""

    def __init__(self, start: int, *, quiet: bool) -> None:
        self._parts: list[str] = []
        self.count = 0
        self._quiet = quiet
        self._started = False
        self._start = start

    def show(self, progress: PiProgress) -> None:
        if progress.offset != self.count or not progress.text:
            return
        self._parts.append(progress.text)
        self.count += len(progress.text)
        if self._quiet:
            return
        if not self._started:
            self._started = True
            if self._start == 0:
                sys.stdout.write("3.")
        sys.stdout.write(progress.text)
        sys.stdout.flush()

    def digits(self) -> str:
        return "".join(self._parts)

    def end(self) -> None:
        if self._started and not self._quiet:
            sys.stdout.write("\n")
            sys.stdout.flush()
            self._started = False


if __name__ == "__main__":
    raise SystemExit(main())
