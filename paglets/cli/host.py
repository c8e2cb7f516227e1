"""``paglets-host`` (and ``paglets host``): run one host from the command line (contract §8.3).

Prints one startup line (name, address, code version, peers) and serves until SIGTERM or SIGINT, which
shut the host down keeping every paglet (they are saved and come back at the next start).
"""

from __future__ import annotations

import argparse
import errno
import os
import re
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from paglets import __version__
from paglets.core.errors import PagletError

__all__ = ["build_parser", "main", "parse_size"]

API_KEY_ENV: Final = "PAGLETS_API_KEY"
DEFAULT_PORT: Final = 8765

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*$", re.IGNORECASE)
_UNITS: Final = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


class CliError(Exception):
    """A usage problem, reported as one line and exit code 2."""


def parse_size(text: str) -> int | None:
    """``10M``, ``1G``, ``512K``, ``4096``, ``100B`` (binary units) or ``none`` for no limit."""
    if text.strip().lower() in ("none", "unlimited"):
        return None
    match = _SIZE.match(text)
    if not match:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (use e.g. 10M, 1G, 4096 or none)")
    return int(float(match.group(1)) * _UNITS[match.group(2).upper()])


def _property(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"--property needs KEY=VALUE, got {text!r}")
    return key.strip(), value


def build_parser(prog: str = "paglets-host") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Run a paglets host: an HTTP endpoint that runs paglets and joins a mesh of hosts.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--name", required=True, help="this host's name in the mesh")
    p.add_argument(
        "--host", default="127.0.0.1", help="address to bind (use --bind-public for LAN addresses)"
    )
    p.add_argument(
        "--bind-public",
        action="append",
        nargs="?",
        const="auto",
        metavar="HOST|auto",
        help="bind this address instead of --host (repeatable); 'auto' = the LAN address, re-checked",
    )
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help="TCP port (0 = any free port)")
    p.add_argument("--peer", action="append", default=[], metavar="URL", help="a host to join (repeatable)")
    p.add_argument("--mesh", action=argparse.BooleanOptionalAction, default=True, help="take part in a mesh")
    p.add_argument(
        "--mesh-multicast",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="announce and discover hosts by UDP multicast on the LAN (never scans subnets)",
    )
    p.add_argument(
        "--mesh-lan-discovery",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="accepted for paglets 2.0 compatibility; discovery is by multicast beacon only",
    )
    p.add_argument(
        "--mesh-version", help="code version to gate on (default: PAGLETS_MESH_VERSION or git HEAD)"
    )
    p.add_argument(
        "--mesh-gossip-interval", type=float, default=1.0, metavar="SECONDS", help="heartbeat period"
    )
    p.add_argument(
        "--mesh-offline-after", type=float, default=10.0, metavar="SECONDS", help="silence before offline"
    )
    p.add_argument("--public-url", help="the URL others reach this host at (e.g. behind a reverse proxy)")
    p.add_argument("--connect-to", help="relay mode: connect to this hub instead of listening")
    p.add_argument("--relay-offline-after", type=float, default=30.0)
    p.add_argument("--relay-delivery-timeout", type=float, default=10.0)
    p.add_argument("--relay-queue-limit", type=int, default=1024)
    p.add_argument(
        "--api-key-env",
        default=None,
        metavar="NAME",
        help=f"read the API key from this environment variable (default: {API_KEY_ENV} when set)",
    )
    p.add_argument("--tag", action="append", default=[], help="a tag for this host (repeatable)")
    p.add_argument(
        "--property", action="append", default=[], type=_property, metavar="KEY=VALUE", help="repeatable"
    )
    p.add_argument("--persistence-dir", type=Path, help="default: ~/.paglets/hosts/<name>")
    p.add_argument("--persistent-storage-quota", type=parse_size, default=10 << 20, metavar="SIZE|none")
    p.add_argument("--artifact-max-size", type=parse_size, default=1 << 30, metavar="SIZE|none")
    p.add_argument("--artifact-storage-quota", type=parse_size, default=10 << 30, metavar="SIZE|none")
    p.add_argument("--artifact-spool-ttl", type=float, default=86400.0, metavar="SECONDS")
    p.add_argument("--launch-config", type=Path, help="launch.toml with startup agents and resident services")
    p.add_argument(
        "--no-launch-config",
        action="store_true",
        help="start without a launch config: no resident services, no startup agents",
    )
    p.add_argument("--sync-launch-config", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--yes", action="store_true", help="answer yes to launch-config updates")
    p.add_argument("--auto-update-from-git", action="store_true", help="not supported by this version")
    p.add_argument(
        "--preload", action="append", default=[], metavar="MODULE", help="import into paglet processes"
    )
    p.add_argument("--version", action="version", version=f"paglets {__version__}")
    return p


def _api_key(args: argparse.Namespace) -> str | None:
    if args.api_key_env:
        value = os.environ.get(args.api_key_env, "")
        if not value:
            raise CliError(f"--api-key-env {args.api_key_env}: that environment variable is unset or empty")
        return value
    return os.environ.get(API_KEY_ENV) or None


def host_options(args: argparse.Namespace) -> dict[str, Any]:
    """``Host(...)`` keyword arguments for parsed command-line arguments (raises ``CliError``)."""
    from paglets.runtime._config import normalize_url

    api_key = _api_key(args)
    if (args.public_url or args.connect_to) and not api_key:
        raise CliError("--public-url and --connect-to need an API key (set PAGLETS_API_KEY or --api-key-env)")
    if args.connect_to and args.auto_update_from_git:
        raise CliError("--connect-to cannot be combined with --auto-update-from-git")
    if args.auto_update_from_git:
        raise CliError("--auto-update-from-git is not supported by this version of paglets")
    if args.connect_to:
        raise CliError("--connect-to (relay mode) is not supported by this version of paglets")
    if args.launch_config is not None and args.no_launch_config:
        raise CliError("--launch-config and --no-launch-config exclude each other")
    if not 0 <= args.port <= 65535:
        raise CliError(f"--port {args.port}: not a TCP port")
    peers = []
    for peer in args.peer:
        try:
            peers.append(normalize_url(peer))
        except PagletError as exc:
            raise CliError(f"--peer {peer}: {exc}") from None
    bind = args.bind_public if args.bind_public else [args.host]
    return {
        "name": args.name,
        "host": bind,
        "port": args.port,
        "api_key": api_key,
        "public_url": args.public_url,
        "mesh": args.mesh,
        "peers": peers,
        "mesh_multicast": args.mesh_multicast,
        "mesh_lan_discovery": args.mesh_lan_discovery,
        "mesh_version": args.mesh_version,
        "mesh_gossip_interval": args.mesh_gossip_interval,
        "mesh_offline_after": args.mesh_offline_after,
        "persistence_dir": args.persistence_dir,
        "persistent_storage_quota_bytes": args.persistent_storage_quota,
        "artifact_max_bytes": args.artifact_max_size,
        "artifact_storage_quota_bytes": args.artifact_storage_quota,
        "artifact_spool_ttl_seconds": args.artifact_spool_ttl,
        "relay_offline_after": args.relay_offline_after,
        "relay_delivery_timeout": args.relay_delivery_timeout,
        "relay_queue_limit": args.relay_queue_limit,
        "tags": args.tag,
        "properties": dict(args.property),
        "launch_config": args.launch_config,
        "preload_modules": args.preload,
    }


def _prepare_launch_config(args: argparse.Namespace, options: dict[str, Any]) -> None:
    """Sync the launch config with the bundled template (unless told not to) and load it."""
    from paglets.config.startup import (
        default_launch_config_path,
        load_launch_config,
        sync_launch_config_result,
    )

    if args.no_launch_config:
        options["launch_config"] = None
        return
    path = args.launch_config or default_launch_config_path()
    if args.sync_launch_config:
        result = sync_launch_config_result(path, assume_yes=args.yes, interactive=sys.stdin.isatty())
        print(f"paglets-host: {result.describe()}", file=sys.stderr)
        options["launch_config_sync_result"] = result
    options["launch_config"] = load_launch_config(path) if path.exists() else None


def main(argv: Sequence[str] | None = None, *, prog: str = "paglets-host") -> int:
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    try:
        options = host_options(args)
    except CliError as exc:
        parser.error(str(exc))
    from paglets.runtime.host import Host

    try:
        _prepare_launch_config(args, options)
    except PagletError as exc:
        print(f"paglets-host: {exc}", file=sys.stderr)
        return 1
    name = options.pop("name")
    try:
        host = Host(name, **options)
        host.start_background()
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            print(
                f"paglets-host: port {args.port} is already in use (choose another with --port)",
                file=sys.stderr,
            )
        else:
            print(f"paglets-host: cannot start: {exc}", file=sys.stderr)
        return 1
    except PagletError as exc:
        print(f"paglets-host: cannot start: {exc}", file=sys.stderr)
        return 1
    peers = ", ".join(options["peers"]) or "none"
    print(
        f"paglets host {host.name} serving on {host.address} (code {host.code_version}; peers: {peers})",
        flush=True,
    )

    stopping = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    while not stopping.wait(3600):
        pass
    print(f"paglets host {host.name} shutting down (saving paglets)", flush=True)
    host.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
