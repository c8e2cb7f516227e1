"""``paglets artifacts list|info|get|rm`` (and the ``paglets-artifacts`` script): hosts' artifact stores.

Commands act on the entry host's store, or on ``--host NAME|URL``; ``list --all-hosts`` lists every
online host. An artifact may be named by its id or by a unique prefix of it (``list`` shows ids in
full). ``get`` verifies size and SHA-256 and replaces the output file atomically; it refuses to replace
an existing file without ``--force``. ``rm`` asks before deleting unless ``--force``; without a terminal
to ask on it refuses. 2.0's verbs are accepted: ``metadata`` (info), ``download`` (get), ``delete``
(rm). Exit code 1 when an artifact does not exist.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path
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
    from paglets.artifacts import ArtifactRef
    from paglets.cli._entry import Entry
    from paglets.remote.client import HostClient

__all__ = ["add_commands", "build_parser", "main"]

DEFAULT_TIMEOUT: Final = 10.0
#: Shortest id prefix accepted (shorter ones match too much to be safe for ``rm``).
MIN_PREFIX: Final = 4
_HEX: Final = re.compile(r"^[0-9a-f]+$")


def build_parser(prog: str = "paglets-artifacts") -> Parser:
    parser = Parser(prog=prog, description="List, inspect, download and delete artifacts stored on hosts.")
    _host_option(parser)
    add_network_options(parser, timeout=DEFAULT_TIMEOUT)
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    add_commands(sub, prog)
    return parser


def _host_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--host",
        metavar="NAME|URL",
        default=argparse.SUPPRESS,
        help="the host whose store to use (default: the entry host)",
    )


def _leaf(sub: Any, name: str, prog: str, text: str, aliases: Sequence[str] = ()) -> Parser:
    leaf: Parser = sub.add_parser(name, help=text, description=text, aliases=list(aliases))
    _host_option(leaf)
    add_network_options(leaf, timeout=DEFAULT_TIMEOUT)
    leaf.set_defaults(prog=prog)
    return leaf


def add_commands(sub: Any, prog: str) -> None:
    """Add ``list``, ``info``, ``get`` and ``rm`` to the subparsers ``sub``."""
    leaf = _leaf(sub, "list", prog, "artifacts stored on a host (or on every host)", aliases=("ls",))
    leaf.add_argument("--owner", "--agent", metavar="AGENT_ID", help="only artifacts owned by this paglet")
    leaf.add_argument("--all-hosts", action="store_true", help="list the stores of every online host")
    leaf.set_defaults(func=_list)
    leaf = _leaf(sub, "info", prog, "an artifact's metadata", aliases=("metadata",))
    leaf.add_argument("artifact", metavar="ID", help="artifact id (or a unique prefix of it)")
    leaf.set_defaults(func=_info)
    leaf = _leaf(sub, "get", prog, "download an artifact (size and SHA-256 checked)", aliases=("download",))
    leaf.add_argument("artifact", metavar="ID", help="artifact id (or a unique prefix of it)")
    leaf.add_argument("output", nargs="?", type=Path, help="file to write (default: ./<artifact name>)")
    leaf.add_argument("--move", action="store_true", help="delete the artifact from the host once downloaded")
    leaf.add_argument("-f", "--force", action="store_true", help="replace OUTPUT if it exists")
    leaf.set_defaults(func=_get)
    leaf = _leaf(sub, "rm", prog, "delete artifacts", aliases=("delete",))
    leaf.add_argument("artifacts", nargs="+", metavar="ID", help="artifact ids (or unique prefixes)")
    leaf.add_argument("-f", "--force", action="store_true", help="do not ask")
    leaf.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    leaf.set_defaults(func=_rm)


def main(argv: Sequence[str] | None = None) -> int:
    """``paglets-artifacts``."""
    return dispatch(build_parser(), argv, "paglets-artifacts")


# --- helpers ----------------------------------------------------------------------------------------------


def _setup(args: argparse.Namespace) -> tuple[HostClient, Entry, str, str]:
    """Client, entry, and the chosen host's (name, URL)."""
    from paglets.cli._entry import normalize_entry
    from paglets.cli._services import connect

    client, entry = connect(args, float(option(args, "timeout", DEFAULT_TIMEOUT)))
    wanted = option(args, "host", None)
    if not wanted:
        return client, entry, entry.name, entry.url
    host = entry.lookup(wanted)
    if host is not None:
        return client, entry, str(host["name"]), str(host["url"]).rstrip("/")
    url = normalize_entry(wanted)
    if url is None:
        raise CommandError(f"unknown host {wanted!r} (known: {entry.names()})")
    return client, entry, url, url


def _missing(exc: BaseException) -> bool:
    text = str(exc).lower()
    return getattr(exc, "http_status", 0) == 404 or "unknown artifact" in text or "not found" in text


def _resolve_id(client: HostClient, url: str, given: str, timeout: float) -> str:
    """The full artifact id for ``given`` (an id or a unique prefix of one)."""
    value = given.strip().lower()
    if not _HEX.match(value) or len(value) > 32:
        raise CommandError(f"{given!r} is not an artifact id (32 hex digits, or a prefix of at least 4)")
    if len(value) == 32:
        return value
    if len(value) < MIN_PREFIX:
        raise CommandError(f"artifact id prefix {given!r} is too short (use at least {MIN_PREFIX} digits)")
    matches = [
        r.artifact_id for r in client.list_artifacts(url, timeout=timeout) if r.artifact_id.startswith(value)
    ]
    if not matches:
        raise CommandError(f"no artifact {given} on {url}", code=EXIT_INCOMPLETE)
    if len(matches) > 1:
        raise CommandError(f"artifact id prefix {given!r} matches {len(matches)} artifacts; give more digits")
    return matches[0]


def _metadata(client: HostClient, url: str, given: str, timeout: float) -> ArtifactRef:
    artifact_id = _resolve_id(client, url, given, timeout)
    try:
        return client.artifact_metadata(url, artifact_id, timeout=timeout)
    except Exception as exc:
        if _missing(exc):
            raise CommandError(f"no artifact {artifact_id} on {url}", code=EXIT_INCOMPLETE) from None
        raise


# --- commands ---------------------------------------------------------------------------------------------


def _list(args: argparse.Namespace) -> int:
    from paglets.cli import _render
    from paglets.cli._fanout import gather

    timeout = float(option(args, "timeout", DEFAULT_TIMEOUT))
    deadline = time.monotonic() + timeout
    client, entry, name, url = _setup(args)
    from paglets.cli._services import Targets, offline_note, target_hosts

    targets = target_hosts(entry, None) if args.all_hosts else Targets([(name, url)])
    errors = dict(targets.errors)

    def ask(host: str, host_url: str) -> list[ArtifactRef]:
        left = max(0.1, deadline - time.monotonic())
        return client.list_artifacts(host_url, owner_agent_id=args.owner, timeout=left)

    found, failed = gather(
        targets.hosts, ask, timeout=max(0.1, deadline - time.monotonic()), label="artifacts"
    )
    errors.update(failed)
    if not args.all_hosts and errors:
        raise CommandError(f"{name}: {errors[name]}")
    refs = [(host, ref) for host, items in sorted(found.items()) for ref in items]
    if option(args, "json", False):
        payload: dict[str, Any] = {"artifacts": [ref.to_wire() for _, ref in refs]}
        if args.all_hosts:
            payload["errors"] = errors
        _render.print_json(payload)
    elif refs:
        rows = [
            [
                host,
                ref.artifact_id,
                _render.bytes_text(ref.size_bytes),
                ref.owner_agent_id or "none",
                ref.name or "unnamed",
                _render.when_text(ref.created_at),
                _render.when_text(ref.expires_at) if ref.expires_at else "never",
            ]
            for host, ref in refs
        ]
        _render.print_table(
            "Artifacts",
            ["host", "artifact", "size", "owner", "name", "created", "expires"],
            rows,
            right={"size"},
            wrap={"name"},
        )
    else:
        _render.print_line("No artifacts.")
    if not option(args, "json", False):
        _render.print_section("Notes", offline_note(targets))
        _render.print_section("Errors", errors, style="bold red")
    return EXIT_INCOMPLETE if errors else EXIT_OK


def _info(args: argparse.Namespace) -> int:
    from paglets.cli import _render

    timeout = float(option(args, "timeout", DEFAULT_TIMEOUT))
    client, _, name, url = _setup(args)
    ref = _metadata(client, url, args.artifact, timeout)
    if option(args, "json", False):
        _render.print_json({"artifact": ref.to_wire()})
        return EXIT_OK
    rows = [
        ["artifact", ref.artifact_id],
        ["host", f"{name} ({ref.host_url})"],
        ["name", ref.name or "unnamed"],
        ["size", f"{_render.bytes_text(ref.size_bytes)} ({ref.size_bytes} bytes)"],
        ["sha256", ref.sha256],
        ["compression", ref.compression or "none"],
        ["owner", ref.owner_agent_id or "none"],
        ["created", _render.when_text(ref.created_at)],
        ["expires", _render.when_text(ref.expires_at) if ref.expires_at else "never"],
    ]
    _render.print_table("Artifact", ["field", "value"], rows, wrap={"value"})
    return EXIT_OK


def _get(args: argparse.Namespace) -> int:
    from paglets.cli import _render
    from paglets.cli._fanout import Progress

    timeout = float(option(args, "timeout", DEFAULT_TIMEOUT))
    client, _, _, url = _setup(args)
    ref = _metadata(client, url, args.artifact, timeout)
    default_name = (
        Path(ref.name).name if ref.name and Path(ref.name).name not in ("", ".", "..") else ref.artifact_id
    )
    output: Path = args.output if args.output is not None else Path(default_name)
    if output.is_dir():
        output = output / default_name
    if output.exists() and not args.force:
        raise CommandError(f"{output} exists (use --force to replace it)")
    with Progress(f"downloading {_render.bytes_text(ref.size_bytes)}"):
        try:
            client.download_artifact(ref, output, move=bool(args.move), timeout=timeout)
        except Exception as exc:
            if _missing(exc):
                raise CommandError(f"no artifact {ref.artifact_id} on {url}", code=EXIT_INCOMPLETE) from None
            raise
    path = output.absolute()
    if option(args, "json", False):
        _render.print_json({"path": str(path), "artifact": ref.to_wire(), "moved": bool(args.move)})
    else:
        print(path)
    return EXIT_OK


def _rm(args: argparse.Namespace) -> int:
    from paglets.cli import _render

    timeout = float(option(args, "timeout", DEFAULT_TIMEOUT))
    client, _, name, url = _setup(args)
    ids = [_resolve_id(client, url, given, timeout) for given in args.artifacts]
    if not args.force:
        if not sys.stdin.isatty():
            raise CommandError("refusing to delete without --force (no terminal to ask on)")
        answer = input(f"Delete {len(ids)} artifact(s) from {name}: {', '.join(ids)}? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("Nothing deleted.", file=sys.stderr)
            return EXIT_INCOMPLETE
    deleted: list[str] = []
    missing: list[str] = []
    for artifact_id in ids:
        try:
            client.delete_artifact(url, artifact_id, timeout=timeout)
        except Exception as exc:
            if not _missing(exc):
                raise
            missing.append(artifact_id)
            continue
        deleted.append(artifact_id)
    if option(args, "json", False):
        _render.print_json({"deleted": deleted, "missing": missing})
    elif not args.quiet:
        for artifact_id in deleted:
            print(f"Deleted {artifact_id}")
    for artifact_id in missing:
        print(f"{args.prog}: no artifact {artifact_id} on {name}", file=sys.stderr)
    return EXIT_INCOMPLETE if missing else EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
