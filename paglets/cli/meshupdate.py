"""``paglets mesh update``: move every host of a mesh to one git commit (docs/auto-update.md).

The command asks the entry host (``POST /admin/git-update`` with ``broadcast``): the entry host updates
its own checkout first (to ``--commit``, or to its upstream branch's newest commit), then asks every
other host of its mesh to move to the commit it reached, and answers with everyone's status. Hosts whose
checkout moved restart on the new commit (their paglets are saved first and come back).

Prints one line per host: its status, the commits, and what to do when it could not update. Exit code 0
when every host is updated or unchanged, 1 when one of them is not, 2 when the entry host refuses or
cannot be reached.
"""

from __future__ import annotations

import argparse
import re
from typing import Any, Final

from paglets.cli._common import EXIT_INCOMPLETE, EXIT_OK, CommandError, Parser, add_network_options, option

__all__ = ["DEFAULT_TIMEOUT", "add_command"]

#: Seconds the command waits for the whole update (hosts fetch and may sync dependencies).
DEFAULT_TIMEOUT: Final = 900.0
DESCRIPTION: Final = "move every host of the mesh to one git commit and restart them on it"
_HASH: Final = re.compile(r"^[0-9a-fA-F]{4,64}\Z")


def add_command(sub: Any, prog: str) -> None:
    """Add ``update`` to the subparsers of ``paglets mesh``."""
    leaf: Parser = sub.add_parser("update", help=DESCRIPTION, description=__doc__)
    leaf.add_argument(
        "--commit",
        metavar="HASH",
        default="",
        help="the commit to move to (default: the newest commit of the entry host's upstream branch)",
    )
    add_network_options(leaf, timeout=DEFAULT_TIMEOUT)
    leaf.set_defaults(func=_update, prog=prog)


def _update(args: argparse.Namespace) -> int:
    from paglets.cli import _render
    from paglets.cli._services import connect

    commit = str(args.commit or "").strip()
    if commit and not _HASH.match(commit):
        raise CommandError(f"--commit {commit}: not a commit hash (4 to 64 hex digits)")
    timeout = float(option(args, "timeout", DEFAULT_TIMEOUT))
    client, entry = connect(args, timeout)
    try:
        reply = client.post_json(
            f"{entry.url}/admin/git-update",
            {"target_hash": commit, "broadcast": True, "source_name": "paglets mesh update"},
            timeout=timeout,
        )
    except Exception as exc:
        raise CommandError(f"{entry.name}: {exc}") from None
    if not isinstance(reply, dict):
        raise CommandError(f"{entry.name}: unexpected answer {reply!r}")
    statuses = [dict(reply, host=reply.get("host") or entry.name), *(reply.get("hosts") or [])]
    if option(args, "json", False):
        _render.print_json({"entry": entry.url, "hosts": statuses})
    else:
        for status in statuses:
            print(line(status))
    return EXIT_OK if all(s.get("ok") for s in statuses) else EXIT_INCOMPLETE


def line(status: dict[str, Any]) -> str:
    """``NAME: STATUS FROM -> TO (advice)`` for one host's answer."""
    name = status.get("host") or status.get("url") or "?"
    state = str(status.get("status") or "failed")
    start = str(status.get("process_start_head") or "")[:12]
    after = str(status.get("after_head") or "")[:12]
    if state == "updated":
        text = f"updated {start} -> {after}"
        if status.get("synced"):
            text += f", dependencies synced with {status['synced']}"
        text += ", restarting" if status.get("restart_scheduled") else ", restart it to run the new commit"
    elif state == "unchanged":
        text = f"unchanged at {after or start}"
    else:
        error = "; ".join(
            part.strip() for part in str(status.get("error") or "").splitlines() if part.strip()
        )
        text = f"{state}: {error or 'no reason given'}"
        if status.get("advice"):
            text += f" ({status['advice']})"
    return f"{name}: {text}"
