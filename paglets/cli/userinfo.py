"""``paglets user-info``: what paglets told the user through the entry host's ``user-info`` service.

Prints the notifications and streamed output the service kept (optionally of one ``--job``) after
``--since`` (a sequence number); ``--follow`` keeps polling for new entries every
:data:`FOLLOW_INTERVAL` seconds until interrupted. Commands that start work on the mesh use
:func:`read_entries` the same way to print results where the user ran them.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import TYPE_CHECKING, Any, Final

from paglets.cli._common import EXIT_OK, CommandError, Parser, add_network_options, option

if TYPE_CHECKING:
    from paglets.remote.client import HostClient
    from paglets.services.builtin.user_info import UserInfoEntry, UserInfoReadReply

__all__ = ["FOLLOW_INTERVAL", "add_command", "format_entry", "read_entries"]

DEFAULT_TIMEOUT: Final = 10.0
#: Seconds between two reads while following.
FOLLOW_INTERVAL: Final = 0.5


def add_command(sub: Any, prog: str) -> None:
    text = "notifications and output that paglets sent to the entry host's user-info service"
    leaf: Parser = sub.add_parser("user-info", help=text, description=text)
    leaf.add_argument("--job", default="", metavar="ID", help="only entries of this job")
    leaf.add_argument("--since", type=int, default=0, metavar="SEQ", help="only entries after this number")
    leaf.add_argument("--limit", type=int, default=200, metavar="N", help="entries per read (max 1000)")
    leaf.add_argument("--follow", "-f", action="store_true", help="keep printing new entries until Ctrl-C")
    add_network_options(leaf, timeout=DEFAULT_TIMEOUT)
    leaf.set_defaults(func=_run, prog=f"{prog} user-info")


def read_entries(
    client: HostClient, url: str, *, since: int = 0, job_id: str = "", limit: int = 200, timeout: float = 10.0
) -> UserInfoReadReply:
    """One ``read`` of the ``user-info`` service on the host at ``url``."""
    from paglets.cli._services import call_service
    from paglets.services.builtin.user_info import READ_USER_INFO, USER_INFO_AGENT_ID, UserInfoReadRequest

    request = UserInfoReadRequest(since=since, job_id=job_id, limit=limit)
    reply: UserInfoReadReply = call_service(
        client,
        url,
        USER_INFO_AGENT_ID,
        "user-info",
        READ_USER_INFO,
        request,
        deadline=time.monotonic() + timeout,
    )
    return reply


def format_entry(entry: UserInfoEntry) -> str:
    """A notification as one line (``[time] SEVERITY: title job=... source=...: text``), or streamed text."""
    if entry.kind == "stream":
        return entry.text
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(entry.timestamp))
    where = (f" job={entry.job_id}" if entry.job_id else "") + (
        f" source={entry.source_agent_id}" if entry.source_agent_id else ""
    )
    return f"[{stamp}] {entry.severity.upper() or 'INFO'}: {entry.title}{where}: {entry.text}\n"


def _run(args: argparse.Namespace) -> int:
    from paglets.cli._services import connect
    from paglets.serialization.codec import dataclass_to_wire

    if not 1 <= args.limit <= 1000:
        raise CommandError(f"--limit must be between 1 and 1000, got {args.limit}")
    if args.since < 0:
        raise CommandError(f"--since must be 0 or more, got {args.since}")
    timeout = float(option(args, "timeout", DEFAULT_TIMEOUT))
    client, entry = connect(args, timeout)
    as_json = bool(option(args, "json", False))
    since = args.since
    while True:
        reply = read_entries(
            client, entry.url, since=since, job_id=args.job, limit=args.limit, timeout=timeout
        )
        if as_json and not args.follow:
            payload = dataclass_to_wire(reply)
            payload["host"] = entry.name
            sys.stdout.write(json.dumps(payload, indent=2, sort_keys=True) + "\n")
            return EXIT_OK
        if reply.dropped:
            print(f"{args.prog}: some entries were dropped before they were read", file=sys.stderr)
        for item in reply.entries:
            text = (
                json.dumps(dataclass_to_wire(item), sort_keys=True) + "\n" if as_json else format_entry(item)
            )
            sys.stdout.write(text)
        sys.stdout.flush()
        more = reply.next_seq > since and len(reply.entries) >= args.limit
        since = max(since, reply.next_seq)
        if more:
            continue
        if not args.follow:
            if since == args.since and not reply.entries:
                print("No entries.", file=sys.stderr)
            return EXIT_OK
        try:
            time.sleep(FOLLOW_INTERVAL)
        except KeyboardInterrupt:  # the usual way to stop following
            return EXIT_OK
