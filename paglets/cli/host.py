"""``paglets-host`` (and ``paglets host``): run one host from the command line (docs/operations/hosts.md).

Prints one line on stdout once it serves (``paglets host NAME serving on URL (code ...; peers: ...)``,
for people and scripts) and reports what it does on stderr, one short line per event (see
``paglets.cli._console``; ``-q``, ``-v``, ``--log-level``). Serves until SIGTERM or SIGINT, which shut
the host down keeping every paglet (they are saved and come back at the next start). The working
directory is importable by paglet processes, as with ``python -m``.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import re
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, NoReturn

from paglets import __version__
from paglets.cli._relay_options import CA_FILE_ENV, add_relay_options, relay_options_problem
from paglets.core.errors import PagletError

if TYPE_CHECKING:
    from paglets.cli._autoupdate import StartupUpdate

__all__ = ["build_parser", "main", "parse_size"]

# ``--help`` stays light: the console, the mesh and the runtime are imported once a host starts, so these
# two names are spelled out here (a test checks them against paglets.cli._console and paglets.remote.mesh)
LOGGER_NAME: Final = "paglets.console"
MESH_VERSION_ENV: Final = "PAGLETS_MESH_VERSION"

_log = logging.getLogger(LOGGER_NAME)

API_KEY_ENV: Final = "PAGLETS_API_KEY"
DEFAULT_PORT: Final = 8765

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*$", re.IGNORECASE)
_UNITS: Final = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


class CliError(Exception):
    """A usage problem, reported as one line and exit code 2."""


class RestartRequested(Exception):
    """Git auto-update moved the checkout: re-execute the command line (``paglets.cli._autoupdate``);
    ``status`` is the update's status (a ``GitUpdateStatus``), handed to the new process."""

    def __init__(self, status: object) -> None:
        super().__init__("restart requested by git auto-update")
        self.status = status


def parse_size(text: str) -> int | None:
    """``10M``, ``1G``, ``512K``, ``4096``, ``100B`` (binary units) or ``none`` for no limit."""
    if text.strip().lower() in ("none", "unlimited"):
        return None
    match = _SIZE.match(text)
    if not match:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (use e.g. 10M, 1G, 4096 or none)")
    return int(float(match.group(1)) * _UNITS[match.group(2).upper()])


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if not 0 <= value <= 65536:
        raise argparse.ArgumentTypeError(f"must be between 0 and 65536, got {value}")
    return value


def _property(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"--property needs KEY=VALUE, got {text!r}")
    return key.strip(), value


class _HelpFormatter(argparse.HelpFormatter):
    """Adds ``(default: X)`` to an option's help only when X says something (not None, False, []) and
    the help does not state it already."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if "(default" in text or not action.option_strings or default is argparse.SUPPRESS:
            return text
        if isinstance(action, argparse.BooleanOptionalAction):
            return f"{text} (default: {'on' if default else 'off'})"
        if default is None or default is False or default == []:
            return text
        return f"{text} (default: %(default)s)"


class _Parser(argparse.ArgumentParser):
    """A usage error is one line that points at ``--help``, not the whole usage text."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


#: Options that are parsed (so that using them gets a clear refusal) but not shown by ``--help``, because
#: Options parsed but left out of ``--help`` (none at the moment: every option works).
HIDDEN_OPTIONS: Final[tuple[str, ...]] = ()

LOG_LEVELS: Final = ("debug", "info", "warning", "error")


def build_parser(prog: str = "paglets-host") -> argparse.ArgumentParser:
    p = _Parser(
        prog=prog,
        description="Run a paglets host: an HTTP endpoint that runs paglets and joins a mesh of hosts.",
        epilog=(
            "The working directory is importable by paglet processes, as with python -m: run the host "
            "where your paglet modules are (or set PYTHONPATH). Environment: PAGLETS_API_KEY (the API "
            "key), PAGLETS_MESH_VERSION (the code version when --mesh-version is not given)."
        ),
        formatter_class=_HelpFormatter,
    )
    p.add_argument("--name", required=True, help="this host's name in the mesh (required)")
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
    p.add_argument(
        "--public-url",
        metavar="URL",
        help="the URL others reach this host at, e.g. behind a reverse proxy (needs an API key)",
    )
    p.add_argument(
        "--api-key-env",
        default=None,
        metavar="NAME",
        help=f"read the API key from this environment variable instead of {API_KEY_ENV}",
    )
    p.add_argument(
        "--expose-tracebacks",
        action="store_true",
        help="send the traceback of a failed request (this host's file paths and code) to the client; "
        "without it the traceback only goes to this host's log",
    )
    p.add_argument("--version", action="version", version=f"paglets {__version__}")

    mesh = p.add_argument_group("mesh")
    mesh.add_argument(
        "--peer",
        action="append",
        default=[],
        metavar="URL",
        help="a host to join, e.g. http://127.0.0.1:8765 (repeatable)",
    )
    mesh.add_argument(
        "--mesh-version",
        metavar="VERSION",
        help="code version; hosts join only hosts with the same one "
        f"(default: ${MESH_VERSION_ENV}, else the git commit, with a warning)",
    )
    mesh.add_argument(
        "--mesh", action=argparse.BooleanOptionalAction, default=True, help="take part in a mesh"
    )
    mesh.add_argument(
        "--mesh-multicast",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="announce and discover hosts by UDP multicast on the LAN (never scans subnets)",
    )
    mesh.add_argument(
        "--mesh-lan-discovery",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="accepted for paglets 2.0 compatibility; discovery is by multicast beacon only",
    )
    mesh.add_argument(
        "--mesh-gossip-interval", type=float, default=1.0, metavar="SECONDS", help="heartbeat period"
    )
    mesh.add_argument(
        "--mesh-offline-after",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="silence after which a peer counts as offline",
    )
    mesh.add_argument("--tag", action="append", default=[], help="a tag for this host (repeatable)")
    mesh.add_argument(
        "--property",
        action="append",
        default=[],
        type=_property,
        metavar="KEY=VALUE",
        help="a property of this host, shown to the mesh (repeatable)",
    )

    storage = p.add_argument_group("storage")
    storage.add_argument(
        "--persistence-dir",
        type=Path,
        metavar="DIR",
        help="where inactive paglets, artifacts and storage live (default: ~/.paglets/hosts/NAME)",
    )
    storage.add_argument(
        "--persistent-storage-quota",
        type=parse_size,
        default=10 << 20,
        metavar="SIZE|none",
        help="managed storage per paglet class, in bytes or with K/M/G (default: 10M)",
    )
    storage.add_argument(
        "--artifact-max-size",
        type=parse_size,
        default=1 << 30,
        metavar="SIZE|none",
        help="largest single artifact (default: 1G)",
    )
    storage.add_argument(
        "--artifact-storage-quota",
        type=parse_size,
        default=10 << 30,
        metavar="SIZE|none",
        help="all artifacts together (default: 10G)",
    )
    storage.add_argument(
        "--artifact-spool-ttl",
        type=float,
        default=86400.0,
        metavar="SECONDS",
        help="how long unfinished uploads are kept (default: 86400, one day)",
    )

    compute = p.add_argument_group(
        "compute capacity", "what this host offers compute jobs (default: what the machine has)"
    )
    compute.add_argument(
        "--cpu-slots", type=_count, metavar="N", help="compute slots (logical CPUs) this host offers"
    )
    compute.add_argument("--memory-limit", type=parse_size, metavar="SIZE", help="memory it offers, e.g. 4G")
    compute.add_argument(
        "--scratch-limit", type=parse_size, metavar="SIZE", help="scratch (work directory) space it offers"
    )
    compute.add_argument("--gpu-slots", type=_count, metavar="N", help="GPUs it offers to compute jobs")

    launch = p.add_argument_group("start-up")
    launch.add_argument(
        "--launch-config",
        type=Path,
        metavar="FILE",
        help="launch.toml with startup agents and resident services (default: ~/.paglets/launch.toml)",
    )
    launch.add_argument(
        "--no-launch-config",
        action="store_true",
        help="start without a launch config: no resident services, no startup agents",
    )
    launch.add_argument(
        "--sync-launch-config",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="copy or update the launch config from the bundled template at start",
    )
    launch.add_argument("--yes", action="store_true", help="answer yes to launch-config updates")
    launch.add_argument(
        "--auto-update-from-git",
        action="store_true",
        help="at start, fast-forward the git checkout this host runs from to its upstream branch (syncing "
        "dependencies, restarting on the new commit), and accept update requests from the mesh "
        "(paglets mesh update; needs an API key); the mesh version is the commit (docs: auto-update)",
    )
    launch.add_argument(
        "--preload",
        action="append",
        default=[],
        metavar="MODULE",
        help="import this module into the template process of paglet processes (repeatable)",
    )

    console = p.add_argument_group("console")
    console.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="print only warnings and errors (same as --log-level warning)",
    )
    console.add_argument(
        "-v", "--verbose", action="store_true", help="also print every host event (same as --log-level debug)"
    )
    console.add_argument(
        "--log-level",
        choices=LOG_LEVELS,
        type=str.lower,
        metavar="LEVEL",
        help="debug, info, warning or error (default: info)",
    )

    add_relay_options(p)
    return p


def log_level(args: argparse.Namespace) -> int:
    """The console level from ``--log-level``, ``-q`` and ``-v`` (``CliError`` when they disagree)."""
    chosen = [name for name, on in (("-q", args.quiet), ("-v", args.verbose)) if on]
    if args.log_level is not None:
        chosen.append("--log-level")
    if len(chosen) > 1:
        raise CliError(f"{' and '.join(chosen)} contradict each other; use one")
    if args.quiet:
        return logging.WARNING
    if args.verbose:
        return logging.DEBUG
    return int(getattr(logging, (args.log_level or "info").upper()))


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
    problem = relay_options_problem(args)
    if problem is not None:
        raise CliError(problem)
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
        "connect_to": args.connect_to,
        "relay_offline_after": args.relay_offline_after,
        "relay_delivery_timeout": args.relay_delivery_timeout,
        "relay_queue_limit": args.relay_queue_limit,
        "tls_cert": args.tls_cert,
        "tls_key": args.tls_key,
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
        "tags": args.tag,
        "properties": dict(args.property),
        "launch_config": args.launch_config,
        "preload_modules": args.preload,
        "compute_capacity": {
            key: value
            for key, value in (
                ("cpu_slots", args.cpu_slots),
                ("memory_bytes", args.memory_limit),
                ("scratch_bytes", args.scratch_limit),
                ("gpu_count", args.gpu_slots),
            )
            if value
        },
        "expose_tracebacks": args.expose_tracebacks,
    }


def _prepare_launch_config(args: argparse.Namespace, options: dict[str, Any]) -> None:
    """Sync the launch config with the bundled template (unless told not to) and load it."""
    from paglets.config.startup import (
        default_launch_config_path,
        load_launch_config,
        sync_launch_config_result,
    )
    from paglets.core.runtime_values import LaunchConfigSyncAction

    if args.no_launch_config:
        options["launch_config"] = None
        return
    path = args.launch_config or default_launch_config_path()
    if args.sync_launch_config:
        result = sync_launch_config_result(path, assume_yes=args.yes, interactive=sys.stdin.isatty())
        quiet = result.action is LaunchConfigSyncAction.UNCHANGED
        _log.log(logging.DEBUG if quiet else logging.INFO, "%s", result.describe())
        options["launch_config_sync_result"] = result
    options["launch_config"] = load_launch_config(path) if path.exists() else None


def importable_cwd() -> str | None:
    """Put the working directory first on ``sys.path``, as ``python -m`` does, so that paglet modules
    beside the place the host was started from import in the host and in its paglet processes (which
    get the host's ``sys.path``). Returns the directory added, ``None`` when it was already there."""
    cwd = os.getcwd()
    if "" in sys.path or cwd in sys.path:
        return None
    sys.path.insert(0, cwd)
    return cwd


def mesh_version_warning(explicit: str | None, resolved: str) -> str | None:
    """The start-up warning for a code version nobody chose (no ``--mesh-version``, no environment)."""
    if (explicit and explicit.strip()) or os.environ.get(MESH_VERSION_ENV, "").strip():
        return None
    from paglets.remote.mesh import NO_GIT_SUFFIX

    source = "(no git checkout found)" if resolved.endswith(NO_GIT_SUFFIX) else "(the git commit)"
    return (
        f"no --mesh-version given: this host uses code version {resolved!r} {source} and joins only "
        f"hosts with the same version; start every host of the mesh with the same --mesh-version "
        f"(or {MESH_VERSION_ENV})"
    )


def main(argv: Sequence[str] | None = None, *, prog: str = "paglets-host") -> int:
    raw = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(prog)
    args = parser.parse_args(raw)
    try:
        options = host_options(args)
        level = log_level(args)
    except CliError as exc:
        parser.error(str(exc))
    from paglets.cli._console import configure_console

    stop_console = configure_console(level)
    try:
        return _serve(args, options)
    except RestartRequested as restart:
        from paglets.cli._autoupdate import reexec

        stop_console()
        reexec(raw, restart.status)
    finally:
        stop_console()


def _serve(args: argparse.Namespace, options: dict[str, Any]) -> int:
    from paglets.cli._console import ConsoleReporter
    from paglets.remote.mesh import resolve_code_version
    from paglets.runtime.host import Host

    importable_cwd()
    try:
        _prepare_launch_config(args, options)
    except PagletError as exc:
        _log.error("%s", exc)
        return 1
    if args.ca_file is not None:
        os.environ[CA_FILE_ENV] = str(args.ca_file.resolve())  # for the host and its paglet processes
    restart = threading.Event()
    stopping = threading.Event()
    signalled = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        signalled.set()
        stopping.set()

    # Installed before the host starts: a SIGTERM while it starts (it may already serve and be listed by
    # its peers) stops it with its paglets saved once the start is done, instead of killing it.
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if sys.platform == "win32":  # Ctrl-Break in a Windows console (Ctrl-C is SIGINT there too)
        signal.signal(signal.SIGBREAK, on_signal)
    update = _startup_update(args, options, restart, stopping)
    chosen = (args.mesh_version or "").strip() or os.environ.get(MESH_VERSION_ENV, "").strip()
    if update is not None and update.process_start_head and not chosen:
        options["mesh_version"] = update.process_start_head  # the commit is the mesh version
    else:
        options["mesh_version"] = resolve_code_version(args.mesh_version)
        warning = mesh_version_warning(args.mesh_version, options["mesh_version"])
        if warning is not None:
            _log.warning("%s", warning)
    name = options.pop("name")
    try:
        host = Host(name, **options)
    except PagletError as exc:
        _log.error("cannot start: %s", exc)
        return 1
    if update is not None:
        host.parts.updater.record(update.status)
    host.add_listener(ConsoleReporter(code_version=host.code_version))
    try:
        host.start_background()
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            _log.error("port %s is already in use (choose another with --port)", args.port)
        else:
            _log.error("cannot start: %s", exc)
        return 1
    except PagletError as exc:
        _log.error("cannot start: %s", exc)
        return 1
    peers = ", ".join(options["peers"]) or "none"
    if args.connect_to:
        print(
            f"paglets host {host.name} connected via {args.connect_to} as {host.address} "
            f"(code {host.code_version}; no inbound port)",
            flush=True,
        )
    else:
        print(
            f"paglets host {host.name} serving on {host.address} (code {host.code_version}; peers: {peers})",
            flush=True,
        )

    while not stopping.wait(3600):
        pass
    if host.parts.updater.restart_scheduled:  # the restart thread saves the paglets, then sets restart
        restart.wait(RESTART_WAIT)
    if restart.is_set() and not signalled.is_set():
        raise RestartRequested(host.parts.updater.last)
    _log.info("host %s shutting down (saving paglets)", host.name)
    host.shutdown()
    return 0


#: Seconds the main thread waits for a restart in progress to save the paglets (its shutdown is bounded).
RESTART_WAIT: Final = 120.0


def _startup_update(
    args: argparse.Namespace, options: dict[str, Any], restart: threading.Event, stopping: threading.Event
) -> StartupUpdate | None:
    """With ``--auto-update-from-git``: update the checkout before the host starts (raises
    ``RestartRequested`` when it moved) and set the host's auto-update options."""
    if not args.auto_update_from_git:
        return None
    from paglets.cli._autoupdate import startup_update
    from paglets.runtime._autoupdate import describe

    update = startup_update(Path.cwd())
    if update.restarted:
        _log.info(
            "auto-update: restarted on %s (%s)", update.process_start_head[:12], describe(update.status)
        )
    elif update.status.ok:
        _log.info("auto-update: %s", describe(update.status))
    else:
        _log.warning("auto-update: %s; starting on the current code", describe(update.status))
    if update.restart:
        raise RestartRequested(update.status)
    if not options.get("api_key"):
        _log.warning("auto-update: no API key, so this host accepts no update requests (set %s)", API_KEY_ENV)

    def restart_now() -> None:
        restart.set()
        stopping.set()

    options.update(
        auto_update_from_git=True,
        git_repo_root=update.repo_root,
        git_process_start_head=update.process_start_head or None,
        auto_update_restart_callback=restart_now,
        auto_update_reporter=lambda line: _log.info("auto-update: %s", line),
    )
    return update


if __name__ == "__main__":
    raise SystemExit(main())
