"""Everyday administration: ``paglets hosts`` and ``paglets agents list|info|state|send|dispatch|...``.

- ``paglets hosts``: the mesh as the entry host sees it.
- ``paglets agents list``: the paglets of every online host (or of ``--host``), active and inactive.
- ``paglets agents info|state|send|dispatch|deactivate|activate|dispose ID``: one paglet. Without
  ``--host`` the paglet is looked for on every online host at once.

``send`` delivers a message (``KIND`` plus ``--args JSON``) and prints the reply; ``dispatch`` moves the
paglet to another host of the mesh (by name or URL); ``dispose`` asks before it ends a paglet, unless
``--force``, and refuses without a terminal to ask on. Exit code 1 when the paglet is not found.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import quote

from paglets.cli._common import (
    EXIT_INCOMPLETE,
    EXIT_OK,
    CommandError,
    Parser,
    add_network_options,
    option,
)

if TYPE_CHECKING:
    from paglets.cli._entry import Entry
    from paglets.remote.client import HostClient

__all__ = ["add_agents_commands", "add_hosts_command"]

DEFAULT_TIMEOUT: Final = 10.0
DESCRIPTION: Final = (
    "List and manage paglets across the mesh. Commands on one paglet (info, state, send, dispatch,\n"
    "deactivate, activate, dispose) look for it on every online host unless --host says where."
)
#: Longest ``--args`` JSON accepted on the command line.
MAX_ARGS_JSON: Final = 1024 * 1024


def _host_option(parser: argparse.ArgumentParser, text: str) -> None:
    parser.add_argument("--host", action="append", metavar="NAME|URL", default=argparse.SUPPRESS, help=text)


def add_hosts_command(sub: Any, prog: str) -> None:
    text = "the hosts of the mesh, as the entry host sees them"
    leaf: Parser = sub.add_parser("hosts", help=text, description=text)
    leaf.add_argument("--online", action="store_true", help="only hosts that are online")
    add_network_options(leaf, timeout=DEFAULT_TIMEOUT)
    leaf.set_defaults(func=_hosts, prog=f"{prog} hosts")


def add_agents_commands(parser: Parser, prog: str) -> None:
    """Add the ``agents`` subcommands to ``parser`` (the ``paglets agents`` parser)."""
    _host_option(parser, "the host(s) to look on (repeatable; default: every online host)")
    add_network_options(parser, timeout=DEFAULT_TIMEOUT)
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")

    def leaf(
        name: str, text: str, func: Callable[[argparse.Namespace], int], *, needs_id: bool = True
    ) -> Parser:
        p: Parser = sub.add_parser(name, help=text, description=text)
        if needs_id:
            p.add_argument("agent_id", metavar="ID", help="the paglet's agent id")
        _host_option(p, "the host(s) to look on (repeatable; default: every online host)")
        add_network_options(p, timeout=DEFAULT_TIMEOUT)
        p.set_defaults(func=func, prog=prog)
        return p

    p = leaf("list", "paglets on every online host (or on --host)", _list, needs_id=False)
    p.add_argument(
        "--state",
        choices=("active", "inactive", "all"),
        default="all",
        help="which paglets to list (default: all)",
    )
    p.add_argument("--class", dest="class_name", metavar="TEXT", help="only classes whose name contains TEXT")
    leaf("info", "where a paglet is and how it is doing", _info)
    leaf("state", "a paglet's state (its dataclass fields)", _state)
    p = leaf("send", "send a message to a paglet and print its reply", _send)
    p.add_argument("kind", metavar="KIND", help="the message kind")
    p.add_argument("--args", metavar="JSON", default=None, help="the message arguments as JSON")
    p.add_argument("--oneway", action="store_true", help="do not wait for the reply")
    p = leaf("dispatch", "move a paglet to another host", _dispatch)
    p.add_argument("target", metavar="HOST", help="host name (from the mesh) or URL")
    leaf("deactivate", "save a paglet to disk and end its process", _deactivate)
    leaf("activate", "start an inactive paglet again", _activate)
    p = leaf("dispose", "end a paglet for good (its state is discarded)", _dispose)
    p.add_argument("-f", "--force", action="store_true", help="do not ask")


# --- helpers ----------------------------------------------------------------------------------------------


def _connect(args: argparse.Namespace) -> tuple[HostClient, Entry, float]:
    from paglets.cli._services import connect

    timeout = float(option(args, "timeout", DEFAULT_TIMEOUT))
    deadline = time.monotonic() + timeout
    client, entry = connect(args, timeout)
    return client, entry, deadline


def _left(deadline: float) -> float:
    return max(0.1, deadline - time.monotonic())


def _locate(
    client: HostClient, entry: Entry, args: argparse.Namespace, deadline: float
) -> tuple[str, str, dict[str, Any]]:
    """``(host name, host URL, GET /agents/{id} answer)`` of the paglet ``args.agent_id``."""
    from paglets.cli._fanout import gather
    from paglets.cli._services import target_hosts
    from paglets.core.errors import InvalidAgentError

    agent_id = args.agent_id
    targets = target_hosts(entry, option(args, "host", None))

    def ask(name: str, url: str) -> dict[str, Any] | None:
        try:
            reply = client.get_json(f"{url}/agents/{quote(agent_id, safe='')}", timeout=_left(deadline))
        except InvalidAgentError:
            return None
        return reply if isinstance(reply, dict) else None

    found, errors = gather(targets.hosts, ask, timeout=_left(deadline), label=f"looking for {agent_id}")
    hits = [(name, info) for name, info in sorted(found.items()) if info is not None]
    if not hits:
        checked = ", ".join(sorted(found)) or "none"
        unanswered = {**errors, **targets.errors, **dict.fromkeys(targets.offline, "offline")}
        extra = f"; no answer from {', '.join(sorted(unanswered))}" if unanswered else ""
        raise CommandError(
            f"no paglet {agent_id} on any host (checked {checked}{extra})", code=EXIT_INCOMPLETE
        )
    active = [hit for hit in hits if hit[1].get("active")]
    name, info = (active or hits)[0]
    return name, dict(targets.hosts)[name], info


def _proxy(client: HostClient, url: str, agent_id: str) -> Any:
    from paglets.remote.proxy import PagletProxy

    return PagletProxy(url, agent_id, client)


def _status(info: dict[str, Any]) -> str:
    if info.get("crashed"):
        return "crashed"
    if info.get("active"):
        return str(info.get("status") or "active")
    return "inactive"


def _short_class(name: object) -> str:
    text = str(name or "")
    return text.rpartition(":")[2] or text or "?"


# --- commands ---------------------------------------------------------------------------------------------


_COMMIT = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?\Z")


def _commits(
    client: HostClient, entry: Entry, hosts: list[dict[str, Any]], deadline: float
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """The hosts refused by the entry host for another code version, and the git commit every host runs
    (``{url: commit}``: ``git_process_start_head`` of its ``/health``, else a code version that is a
    commit hash)."""
    from paglets.cli._fanout import gather

    try:
        refused = list(client.get_json(f"{entry.url}/hosts?rejected=1", timeout=_left(deadline))["rejected"])
    except Exception:  # a host of an older version: no such list
        refused = []
    commits = {
        str(h.get("url")): str(h.get("code_version"))
        for h in [*hosts, *refused]
        if _COMMIT.match(str(h.get("code_version", "")))
    }
    asked = [(str(h.get("url")), str(h.get("url"))) for h in [*hosts, *refused] if h.get("online", True)]

    def commit_of(name: str, url: str) -> str:
        return str(
            client.get_json(f"{url}/health", timeout=_left(deadline)).get("git_process_start_head") or ""
        )

    found, _ = gather(asked, commit_of, timeout=_left(deadline), label="asking hosts for their commit")
    commits.update({url: commit for url, commit in found.items() if commit})
    return refused, commits


def _hosts(args: argparse.Namespace) -> int:
    from paglets.cli import _render

    client, entry, deadline = _connect(args)
    hosts = sorted(entry.hosts, key=lambda h: str(h.get("name")))
    if args.online:
        hosts = [h for h in hosts if h.get("online")]
    refused, commits = _commits(client, entry, hosts, deadline)
    mine = commits.get(entry.url, "")
    for h in [*hosts, *refused]:
        h["commit"] = commits.get(str(h.get("url")), "")
        h["commit_differs"] = bool(mine and h["commit"] and h["commit"] != mine)
    if option(args, "json", False):
        _render.print_json({"entry": entry.url, "hosts": hosts, "refused": refused})
        return EXIT_OK
    rows = []
    for h in refused:
        h["error"] = f"refused: {h.get('error') or 'another code version'}"
    for h in [*hosts, *refused]:
        age = h.get("age")
        seen = (
            "now" if str(h.get("url", "")).rstrip("/") == entry.url else _render.duration_text(age) + " ago"
        )
        if age is None and seen != "now":
            seen = "never"
        rows.append(
            [
                h.get("name"),
                h.get("url"),
                "online" if h.get("online") else f"offline ({h.get('error') or 'no answer'})",
                str(h.get("code_version", ""))[:12],
                (str(h["commit"])[:12] + (" *" if h["commit_differs"] else "")) or "-",
                h.get("active_count", 0),
                h.get("inactive_count", 0),
                seen,
                ", ".join(h.get("tags") or ()) or "none",
            ]
        )
    _render.print_table(
        f"Hosts (from {entry.name})",
        ["host", "url", "state", "version", "commit", "active", "inactive", "last heard", "tags"],
        rows,
        right={"active", "inactive", "last heard"},
        wrap={"state", "tags"},
    )
    if any(h["commit_differs"] for h in [*hosts, *refused]):
        print(
            f"* runs another commit than {entry.name} ({mine[:12]}); hosts of different commits do not "
            "join each other: paglets mesh update moves them all to one"
        )
    return EXIT_OK


def _list(args: argparse.Namespace) -> int:
    from paglets.cli import _render
    from paglets.cli._fanout import gather
    from paglets.cli._services import offline_note, target_hosts

    client, entry, deadline = _connect(args)
    targets = target_hosts(entry, option(args, "host", None))
    errors = dict(targets.errors)

    def ask(name: str, url: str) -> list[dict[str, Any]]:
        reply = client.get_json(f"{url}/agents?state={args.state}", timeout=_left(deadline))
        agents = reply.get("agents") if isinstance(reply, dict) else None
        return [a for a in agents or [] if isinstance(a, dict)]

    found, failed = gather(targets.hosts, ask, timeout=_left(deadline), label="listing paglets")
    errors.update(failed)
    items = [
        {**agent, "host": host}
        for host, agents in sorted(found.items())
        for agent in sorted(agents, key=lambda a: str(a.get("agent_id")))
        if not args.class_name or args.class_name.lower() in str(agent.get("class_name", "")).lower()
    ]
    if option(args, "json", False):
        _render.print_json({"agents": items, "errors": errors})
    elif items:
        rows = [
            [
                a["host"],
                a.get("agent_id"),
                _short_class(a.get("class_name")),
                _status(a),
                (a.get("mailbox") or {}).get("queued_count", a.get("queued_message_count", 0)),
                a.get("pid") or "-",
            ]
            for a in items
        ]
        _render.print_table(
            "Paglets",
            ["host", "agent", "class", "state", "queued", "pid"],
            rows,
            right={"queued", "pid"},
            wrap={"agent"},
        )
    else:
        _render.print_line("No paglets.")
    if not option(args, "json", False):
        _render.print_section("Notes", offline_note(targets))
        _render.print_section("Errors", errors, style="bold red")
    return EXIT_INCOMPLETE if errors else EXIT_OK


def _info(args: argparse.Namespace) -> int:
    from paglets.cli import _render

    client, entry, deadline = _connect(args)
    name, url, info = _locate(client, entry, args, deadline)
    if option(args, "json", False):
        _render.print_json({"host": name, "agent": info})
        return EXIT_OK
    rows: list[list[object]] = [
        ["agent", info.get("agent_id")],
        ["host", f"{name} ({url})"],
        ["class", info.get("class_name")],
        ["state class", info.get("state_class_name")],
        ["status", _status(info)],
    ]
    if info.get("pid"):
        rows.append(["pid", info.get("pid")])
    if info.get("error"):
        rows.append(["error", info.get("error")])
    mailbox = info.get("mailbox") or {}
    keys = ("queued_count", "in_flight_count", "delivered_count", "failed_count")
    rows.extend(
        [f"messages {key.removesuffix('_count').replace('_', ' ')}", mailbox[key]]
        for key in keys
        if key in mailbox
    )
    if "queued_message_count" in info:
        rows.append(["messages queued", info["queued_message_count"]])
    if info.get("deactivated_at"):
        rows.append(["deactivated", _render.when_text(info["deactivated_at"])])
    _render.print_table("Paglet", ["field", "value"], rows, wrap={"value"})
    return EXIT_OK


def _state(args: argparse.Namespace) -> int:
    from paglets.cli import _render

    client, entry, deadline = _connect(args)
    name, url, _ = _locate(client, entry, args, deadline)
    reply = client.get_json(f"{url}/agents/{quote(args.agent_id, safe='')}/state", timeout=_left(deadline))
    state = reply.get("state") if isinstance(reply, dict) else None
    if state is None:
        error = reply.get("state_error") if isinstance(reply, dict) else None
        raise CommandError(f"cannot read the state of {args.agent_id} on {name}: {error or 'no state'}")
    if option(args, "json", False):
        _render.print_json({"host": name, "agent_id": args.agent_id, "state": state})
        return EXIT_OK
    rows = [[key, json.dumps(value, sort_keys=True, default=str)] for key, value in sorted(state.items())]
    _render.print_table(f"State of {args.agent_id} on {name}", ["field", "value"], rows, wrap={"value"})
    return EXIT_OK


def _send(args: argparse.Namespace) -> int:
    from paglets.cli import _render
    from paglets.core.messages import Message

    if args.args is not None and len(args.args) > MAX_ARGS_JSON:
        raise CommandError(f"--args is longer than {MAX_ARGS_JSON} characters")
    try:
        message_args = json.loads(args.args) if args.args is not None else {}
    except json.JSONDecodeError as exc:
        raise CommandError(f"--args is not valid JSON: {exc}") from None
    if not isinstance(message_args, dict):
        raise CommandError("--args must be a JSON object, e.g. '{\"n\": 3}'")
    client, entry, deadline = _connect(args)
    name, url, _ = _locate(client, entry, args, deadline)
    proxy = _proxy(client, url, args.agent_id)
    message = Message(args.kind, message_args)
    if args.oneway:
        proxy.send_oneway(message, timeout=_left(deadline))
        result: Any = None
    else:
        result = proxy.send(message, timeout=_left(deadline))
    if option(args, "json", False):
        _render.print_json({"host": name, "agent_id": args.agent_id, "result": result, "oneway": args.oneway})
    elif args.oneway:
        print(f"queued {args.kind!r} for {args.agent_id} on {name}")
    else:
        print(json.dumps(result, indent=2, sort_keys=True, default=str))
    return EXIT_OK


def _dispatch(args: argparse.Namespace) -> int:
    from paglets.cli import _render
    from paglets.cli._entry import normalize_entry

    client, entry, deadline = _connect(args)
    target = entry.lookup(args.target)
    if target is not None:
        target_name, target_url = str(target["name"]), str(target["url"]).rstrip("/")
    else:
        url = normalize_entry(args.target)
        if url is None:
            raise CommandError(f"unknown host {args.target!r} (known: {entry.names()})")
        target_name, target_url = url, url
    name, url, info = _locate(client, entry, args, deadline)
    if not info.get("active"):
        raise CommandError(f"{args.agent_id} on {name} is inactive; activate it before dispatching it")
    moved = _proxy(client, url, args.agent_id).dispatch(target_url)
    if option(args, "json", False):
        _render.print_json({"agent_id": args.agent_id, "from": url, "to": moved.host_url})
    else:
        print(f"dispatched {args.agent_id} from {name} to {target_name} ({moved.host_url})")
    return EXIT_OK


def _lifecycle(args: argparse.Namespace, verb: str, op: Callable[[Any], Any], past: str) -> int:
    from paglets.cli import _render

    client, entry, deadline = _connect(args)
    name, url, info = _locate(client, entry, args, deadline)
    if verb == "deactivate" and not info.get("active"):
        raise CommandError(f"{args.agent_id} on {name} is already inactive", code=EXIT_INCOMPLETE)
    if verb == "activate" and info.get("active"):
        raise CommandError(f"{args.agent_id} on {name} is already active", code=EXIT_INCOMPLETE)
    op(_proxy(client, url, args.agent_id))
    if option(args, "json", False):
        _render.print_json({"agent_id": args.agent_id, "host": name, "done": verb})
    else:
        print(f"{past} {args.agent_id} on {name}")
    return EXIT_OK


def _deactivate(args: argparse.Namespace) -> int:
    return _lifecycle(args, "deactivate", lambda proxy: proxy.deactivate(), "deactivated")


def _activate(args: argparse.Namespace) -> int:
    return _lifecycle(args, "activate", lambda proxy: proxy.activate(), "activated")


def _dispose(args: argparse.Namespace) -> int:
    if not args.force:
        if not sys.stdin.isatty():
            raise CommandError("refusing to dispose without --force (no terminal to ask on)")
        if input(f"Dispose {args.agent_id} for good? [y/N] ").strip().lower() not in ("y", "yes"):
            print("Nothing disposed.", file=sys.stderr)
            return EXIT_INCOMPLETE
    return _lifecycle(args, "dispose", lambda proxy: proxy.dispose(), "disposed")
