"""``paglets examples file push|pull`` (``paglets-file-grabber``): a paglet carries one file between hosts.

``push SOURCE --remote HOST``: from the entry host to HOST; ``pull SOURCE --remote HOST``: from HOST to
the entry host. The command creates a file grabber paglet on the host that has the file; the paglet
registers the file, moves to the other host and saves it there through a temporary file and a rename,
then the command prints what happened and disposes the paglet.

Paths on the entry host (the source of a push, the destination of a pull) are taken relative to the
directory the command runs in; paths on the remote host relative to that host's working directory.
``--dest`` defaults to the source's file name; a ``--dest`` ending in ``/`` or naming a directory gets
the source's file name. ``--dry`` checks the source and prints the plan without moving anything;
``--mode move`` deletes the source once the file is saved; an existing destination is replaced only
with ``--overwrite``.

Output (as in paglets 2.0): ``COMPLETED: alpha:/src (1.0 KB) -> beta:/dst`` and ``saved with
mode=copy``; for a dry run ``DRY_RUN: ...`` and ``would save with mode=copy``; ``FAILED: reason`` and
exit code 1 when the transfer failed.
"""

from __future__ import annotations

import argparse
import os
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

__all__ = ["add_commands", "build_parser", "main"]

DEFAULT_TIMEOUT: Final = 60.0


def build_parser(prog: str = "paglets-file-grabber") -> Parser:
    parser = Parser(
        prog=prog, description="Copy or move one file between hosts with a paglet that carries it."
    )
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    add_commands(sub, prog)
    return parser


def add_commands(sub: Any, prog: str) -> None:
    """Add ``push`` and ``pull`` to the subparsers ``sub``."""
    for name, text in (
        ("push", "copy or move a file from the entry host to the remote host"),
        ("pull", "copy or move a file from the remote host to the entry host"),
    ):
        leaf: Parser = sub.add_parser(name, help=text, description=text)
        leaf.add_argument(
            "source", help="the file to transfer (on the entry host for push, the remote for pull)"
        )
        leaf.add_argument("--remote", required=True, metavar="NAME|URL", help="the other host")
        leaf.add_argument(
            "--dest", default="", metavar="PATH", help="where to save it (default: the file name)"
        )
        leaf.add_argument("--mode", choices=("copy", "move"), default="copy", help="move deletes the source")
        leaf.add_argument("--dry", action="store_true", help="check the source and show the plan only")
        leaf.add_argument("--overwrite", action="store_true", help="replace an existing destination")
        add_network_options(leaf, timeout=DEFAULT_TIMEOUT)
        leaf.add_argument(
            "--request-timeout", dest="timeout", type=float, default=argparse.SUPPRESS, help=argparse.SUPPRESS
        )
        leaf.set_defaults(func=_run, prog=prog, direction=name)


def main(argv: Sequence[str] | None = None) -> int:
    """``paglets-file-grabber``."""
    return dispatch(build_parser(), argv, "paglets-file-grabber")


def _run(args: argparse.Namespace) -> int:
    from paglets.cli import _render
    from paglets.cli._jobs import create_paglet, dispose_quietly, remote_host
    from paglets.cli._services import connect
    from paglets.examples.file_grabber.agent import FILE_GRABBER_CLASS, FileGrabberPaglet
    from paglets.patterns import FileTransferMode, FileTransferRequest, TaskClient, TaskStatus

    timeout = float(option(args, "timeout", DEFAULT_TIMEOUT))
    if not 0 < timeout <= 86400:
        raise CommandError(f"--timeout must be between 0 and 86400 seconds, got {timeout:g}")
    if not args.source.strip():
        raise CommandError("the source path is empty")
    deadline = time.monotonic() + timeout
    client, entry = connect(args, timeout)
    remote_name, remote_url = remote_host(entry, args.remote)
    push = args.direction == "push"
    source_name, source_url = (entry.name, entry.url) if push else (remote_name, remote_url)
    target_name, target_url = (remote_name, remote_url) if push else (entry.name, entry.url)
    source = _local(args.source) if push else args.source
    destination = args.dest if push else _local(args.dest or os.path.basename(args.source.rstrip("/")))
    request = FileTransferRequest(
        source_path=source,
        destination_path=destination,
        target_host=target_url,
        mode=FileTransferMode(args.mode),
        dry_run=bool(args.dry),
        overwrite=bool(args.overwrite),
        source_label=source_name,
        destination_label=target_name,
    )
    created = create_paglet(
        client, source_url, FILE_GRABBER_CLASS, state={"home_url": entry.url}, timeout=_left(deadline)
    )
    task = TaskClient.for_paglet(created, FileGrabberPaglet)
    try:
        snapshot = task.start(request, timeout=_left(deadline))
        while not snapshot.done:
            snapshot = task.wait(wait_timeout=min(5.0, _left(deadline)), timeout=_left(deadline) + 5)
            if not snapshot.done and time.monotonic() >= deadline:
                raise CommandError(f"the transfer did not finish within {timeout:g} s", EXIT_INCOMPLETE)
    except TimeoutError:
        raise CommandError(f"the transfer did not finish within {timeout:g} s", EXIT_INCOMPLETE) from None
    finally:
        dispose_quietly(created, task.proxy)
    result = snapshot.result
    if option(args, "json", False):
        _render.print_json({**snapshot.to_wire(), "direction": args.direction})
        return EXIT_OK if snapshot.status is TaskStatus.COMPLETED else EXIT_INCOMPLETE
    if snapshot.status is not TaskStatus.COMPLETED or result is None:
        error = _reason(snapshot.error or "the transfer failed")
        if "already exists" in error:
            error += " (pass --overwrite to replace it)"
        print(f"FAILED: {error}", flush=True)
        return EXIT_INCOMPLETE
    line = (
        f"{result.source.host_name}:{result.source.path} ({result.size}) -> "
        f"{result.destination.host_name}:{result.destination.path}"
    )
    if result.dry_run:
        print(f"DRY_RUN: {line}")
        print(f"would save with mode={result.mode.value}")
    else:
        print(f"COMPLETED: {line}")
        replaced = ", replaced the existing file" if result.replaced else ""
        print(f"saved with mode={result.mode.value}, sha256 {result.sha256} verified{replaced}")
    return EXIT_OK


def _reason(error: str) -> str:
    """The reason of a failed arrival without the runtime's wrapping (``on beta: destination exists``)."""
    import re

    found = re.search(r"arrival of \S+ on (\S+) failed: (.*)", error)
    return f"on {found.group(1)}: {found.group(2)}" if found else error


def _left(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("timed out")
    return left


def _local(path: str) -> str:
    """A path on the entry host, made absolute against the directory the command runs in."""
    if not path:
        return path
    expanded = os.path.expanduser(path)
    absolute = os.path.abspath(expanded)
    return absolute + os.sep if path.endswith(("/", os.sep)) else absolute


if __name__ == "__main__":
    raise SystemExit(main())
