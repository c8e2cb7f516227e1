"""A host's configuration: the ``Host(...)`` constructor arguments, checked and normalised once.

The parameter names and defaults are those of paglets 2.0, so that existing embedding
code keeps working. Parameters for features that a host does not use yet are accepted and stored.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from paglets.core.errors import HostError
from paglets.http.limits import ServerLimits
from paglets.persistence.storage import path_component, sanitize_name
from paglets.remote._mesh_ref import peer_url
from paglets.runtime._deadlines import DEFAULT_SEND_TIMEOUT, DISPOSE_GRACE
from paglets.runtime._inbound import INBOUND_BUDGET_WAIT, INBOUND_MOVE_BUDGET
from paglets.wire.limits import GiB, MiB

__all__ = ["HostConfig", "default_persistence_dir", "normalize_tags", "normalize_url", "sanitize_name"]


def default_persistence_dir(name: str) -> Path:
    return Path.home() / ".paglets" / "hosts" / path_component(name)


def normalize_url(url: str) -> str:
    """A URL for an argument that only takes URLs (``peers``, ``public_url``, ``connect_to``): an
    explicit ``http(s)://`` URL or ``host:port`` (``http://`` added, as paglets 2.0 did); a bare word is
    a ``HostError`` (see ``paglets.remote._mesh_ref.peer_url``)."""
    return peer_url(url)


def _check_seconds(options: Mapping[str, Any], name: str, default: float | None, *, allow_none: bool) -> None:
    value = options.get(name, default)
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < float("inf"):
        wanted = "a positive number of seconds" + (" or None" if allow_none else "")
        raise HostError(f"{name} must be {wanted}, not {value!r}")


def normalize_tags(tags: Sequence[str] | None) -> tuple[str, ...]:
    """Trimmed, case-folded, de-duplicated and sorted tags."""
    if not tags:
        return ()
    return tuple(sorted({t.strip().casefold() for t in tags if t and t.strip()}))


#: Keys of ``compute_capacity``.
COMPUTE_CAPACITY_KEYS = ("cpu_slots", "memory_bytes", "scratch_bytes", "gpu_count")


def _compute_capacity(value: object) -> dict[str, int]:
    if not value:
        return {}
    if not isinstance(value, Mapping):
        raise HostError(f"compute_capacity must be a mapping, not {type(value).__name__}")
    out: dict[str, int] = {}
    for key, amount in value.items():
        if key not in COMPUTE_CAPACITY_KEYS:
            raise HostError(
                f"compute_capacity: unknown key {key!r} (known: {', '.join(COMPUTE_CAPACITY_KEYS)})"
            )
        if amount is None:
            continue
        if isinstance(amount, bool) or not isinstance(amount, int) or amount < 0:
            raise HostError(f"compute_capacity: {key} must be a whole number of 0 or more, got {amount!r}")
        if amount:
            out[key] = amount
    return out


@dataclass(frozen=True, slots=True)
class HostConfig:
    """Every ``Host`` constructor argument after validation."""

    name: str
    bind_hosts: tuple[str, ...]
    port: int
    api_key: str | None = None
    public_url: str | None = None
    connect_to: str | None = None
    mesh: bool = True
    peers: tuple[str, ...] = ()
    #: UDP multicast beacon discovery (opt-in here; paglets 2.0 had it on).
    mesh_multicast: bool = False
    #: Accepted for paglets 2.0 compatibility and ignored: hosts never scan subnets.
    mesh_lan_discovery: bool = False
    mesh_version: str | None = None
    mesh_gossip_interval: float = 1.0
    mesh_offline_after: float = 10.0
    persistence_dir: Path = field(default_factory=Path)
    persistent_storage_quota_bytes: int | None = 10 * MiB
    artifact_max_bytes: int | None = 1 * GiB
    artifact_storage_quota_bytes: int | None = 10 * GiB
    artifact_spool_ttl_seconds: float = 86400.0
    launch_config: Any = None
    launch_config_sync_result: Any = None
    auto_update_from_git: bool = False
    git_repo_root: Path | None = None
    git_process_start_head: str | None = None
    auto_update_restart_callback: Callable[..., Any] | None = None
    auto_update_reporter: Callable[..., Any] | None = None
    auto_update_restart_delay: float = 0.2
    bind_watch_interval: float = 5.0
    relay_offline_after: float = 30.0
    relay_delivery_timeout: float = 10.0
    relay_queue_limit: int = 1024
    #: Serve HTTPS with this PEM certificate chain and key (``None``: plain HTTP).
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tags: tuple[str, ...] = ()
    properties: Mapping[str, str] = field(default_factory=dict)
    preload_modules: tuple[str, ...] = ()
    #: How paglet processes start and talk to the host: ``"linux"`` (zygote, memfd rings, eventfds) or
    #: ``"portable"`` (spare processes, file rings, socket doorbells); ``None``: ``PAGLETS_BACKEND``, else
    #: the platform's default (``paglets.runtime._backend``).
    process_backend: str | None = None
    #: Limits and timeouts of the host's HTTP server (``None``: the defaults of ``ServerLimits``).
    http_limits: ServerLimits | None = None
    #: The compute capacity this host declares to its ``compute-slots`` service (``cpu_slots``,
    #: ``memory_bytes``, ``scratch_bytes``, ``gpu_count``; absent or 0: what the machine has).
    compute_capacity: Mapping[str, int] = field(default_factory=dict)
    #: Send ``remote_traceback`` (file paths and code of this host) in HTTP error bodies. Off by default
    #: (``proto/PROTOCOL.md`` §3.1): the traceback goes to the host's log instead.
    expose_tracebacks: bool = False
    #: Bytes of decoded state unfinished inbound moves may hold together (``paglets.runtime._inbound``).
    inbound_move_budget: int = INBOUND_MOVE_BUDGET
    #: Seconds an inbound move waits for that budget before it is refused with 503.
    inbound_budget_wait: float = INBOUND_BUDGET_WAIT
    #: Seconds ``dispose`` gives a busy paglet before ending its process (``paglets.runtime._paglets``).
    dispose_grace: float = DISPOSE_GRACE
    #: Seconds a synchronous send waits for its reply when the caller gives none (``None``: no limit).
    send_timeout: float | None = DEFAULT_SEND_TIMEOUT
    #: Seconds of idleness after which any paglet is passivated (``paglets.runtime._idle``; ``None``: off;
    #: a class's ``idle_deactivate_after`` attribute overrides it).
    idle_deactivate_after: float | None = None
    #: Seconds between two checkpoints of any active paglet (``paglets.runtime._checkpoints``; ``None``:
    #: off; a class's ``checkpoint_every`` attribute overrides it).
    checkpoint_interval: float | None = None

    @property
    def relay_mode(self) -> bool:
        return self.public_url is not None or self.connect_to is not None

    @classmethod
    def build(
        cls,
        name: str,
        host: str | Sequence[str] = "127.0.0.1",
        port: int = 0,
        **options: Any,
    ) -> HostConfig:
        if not isinstance(name, str) or not name.strip():
            raise HostError("a host needs a non-empty name")
        bind_hosts = (host,) if isinstance(host, str) else tuple(host)
        if not bind_hosts or not all(isinstance(h, str) and h for h in bind_hosts):
            raise HostError(f"invalid bind address(es): {host!r}")
        if not isinstance(port, int) or not 0 <= port <= 65535:
            raise HostError(f"invalid port: {port!r}")
        persistence_dir = options.pop("persistence_dir", None)
        options["persistence_dir"] = (
            Path(persistence_dir).expanduser() if persistence_dir else default_persistence_dir(name)
        )
        options["peers"] = tuple(normalize_url(p) for p in options.get("peers") or ())
        options["tags"] = normalize_tags(options.get("tags"))
        props = options.get("properties") or {}
        options["properties"] = {str(k): str(v) for k, v in dict(props).items()}
        for key in ("public_url", "connect_to"):
            if options.get(key):
                options[key] = normalize_url(options[key])
        if options.get("relay_delivery_timeout") is None:
            options.pop("relay_delivery_timeout", None)
        if options.get("preload_modules") is not None:
            options["preload_modules"] = tuple(options["preload_modules"])
        options["compute_capacity"] = _compute_capacity(options.get("compute_capacity"))
        limits = options.get("http_limits")
        if limits is not None and not isinstance(limits, ServerLimits):
            raise HostError(f"http_limits must be a ServerLimits, not {type(limits).__name__}")
        budget = options.get("inbound_move_budget", INBOUND_MOVE_BUDGET)
        if isinstance(budget, bool) or not isinstance(budget, int) or budget <= 0:
            raise HostError(f"inbound_move_budget must be a positive number of bytes, not {budget!r}")
        _check_seconds(options, "dispose_grace", DISPOSE_GRACE, allow_none=False)
        _check_seconds(options, "send_timeout", DEFAULT_SEND_TIMEOUT, allow_none=True)
        _check_seconds(options, "idle_deactivate_after", None, allow_none=True)
        _check_seconds(options, "checkpoint_interval", None, allow_none=True)
        wait = options.get("inbound_budget_wait", INBOUND_BUDGET_WAIT)
        if isinstance(wait, bool) or not isinstance(wait, int | float) or not 0 <= wait < float("inf"):
            raise HostError(f"inbound_budget_wait must be a number of seconds >= 0, not {wait!r}")
        for key in ("tls_cert", "tls_key"):
            if options.get(key) is not None:
                options[key] = Path(options[key]).expanduser()
        if options.get("tls_key") is not None and options.get("tls_cert") is None:
            raise HostError("tls_key needs tls_cert")
        if options.get("connect_to") and options.get("public_url"):
            raise HostError("a host is either a hub (public_url) or in connect mode (connect_to), not both")
        _check_seconds(options, "relay_offline_after", 30.0, allow_none=False)
        _check_seconds(options, "relay_delivery_timeout", 10.0, allow_none=False)
        limit = options.get("relay_queue_limit", 1024)
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise HostError(f"relay_queue_limit must be a positive number of deliveries, not {limit!r}")
        if options.get("git_repo_root") is not None:
            options["git_repo_root"] = Path(options["git_repo_root"])
        unknown = set(options) - set(cls.__dataclass_fields__)
        if unknown:
            raise TypeError(f"Host() got unexpected keyword argument(s): {', '.join(sorted(unknown))}")
        return cls(name=name.strip(), bind_hosts=bind_hosts, port=port, **options)
