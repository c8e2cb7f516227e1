"""``Host``: a paglets host, embedded in a program or run by ``paglets-host`` (docs/operations/hosts.md).

``Host`` is the public facade of 2.0's API over the collaborators that ``HostParts``
(``paglets.runtime._assembly``, the composition root) builds and wires; each of its methods is a thin
delegation, and the module map is in ``docs/design.md``. Synchronous methods may be called from any
thread except the loop's own; they cross into the loop and wait with a timeout. A proxy obtained from a
host in this process talks to it directly (no HTTP).
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Callable, Collection, Coroutine, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TypeVar, cast

import msgspec

from paglets.artifacts import ArtifactRef, PagletFileRef
from paglets.core.agent import ACTIVE, Paglet
from paglets.core.context_events import ContextEvent, ContextListener
from paglets.core.errors import HostError
from paglets.core.messages import FutureReply, Message, ReplySet
from paglets.core.runtime_values import ServiceScope
from paglets.persistence.persistency import DeactivationRequest
from paglets.persistence.storage import ManagedStorage, path_component
from paglets.remote.client import HostClient
from paglets.remote.mesh import HostRef
from paglets.remote.proxy import PagletProxy
from paglets.remote.transfer import TransferTicket
from paglets.runtime._adapters import ResourceView
from paglets.runtime._assembly import DEFAULT_TIMEOUT, SHUTDOWN_BUDGET, HostParts
from paglets.runtime._config import HostConfig
from paglets.runtime._creation import creation_of
from paglets.runtime._directory import HOST_CAPABILITIES
from paglets.runtime._paglets import mailbox_counts
from paglets.runtime._resident import ResidentDeclaration
from paglets.serialization.codec import codec_for
from paglets.services.contracts import ServiceHandle, ServiceRecord
from paglets.services.resident import ServiceLease
from paglets.wire.control import (
    ActivateAgent,
    CheckpointAgent,
    DeactivateAgent,
    DisposeAgent,
    MoveAction,
    ProxyRef,
    ProxyReply,
)

if TYPE_CHECKING:
    from paglets.http.aclient import AsyncHttpClient
    from paglets.http.server import ServerStatistics
    from paglets.runtime._controller import MailboxItem

__all__ = ["HOST_CAPABILITIES", "Host"]

_log = logging.getLogger("paglets.runtime")

T = TypeVar("T")
R = TypeVar("R")

#: Seconds ``start_background`` and ``stop`` may take.
START_TIMEOUT: Final = 60.0
STOP_TIMEOUT: Final = 30.0

_UNSET: Final = cast(float, object())  # "no timeout given" (None means no limit)


class Host:
    """A paglets host. See the module docstring, and docs/operations/hosts.md for its options."""

    def __init__(
        self,
        name: str,
        host: str | Sequence[str] = "127.0.0.1",
        port: int = 0,
        *,
        client: HostClient | None = None,
        **options: object,
    ) -> None:
        self.config = cfg = HostConfig.build(name, host, port, **options)
        self.name, self.persistence_dir, self.tags = cfg.name, cfg.persistence_dir, cfg.tags
        self.connect_to, self.relay_mode, self.api_key = cfg.connect_to, cfg.relay_mode, cfg.api_key
        # the host's own key only ("": none); a bare HostClient() would read PAGLETS_API_KEY
        self.client = client if client is not None else HostClient(api_key=cfg.api_key or "")
        #: The collaborators, built and wired by the composition root (``paglets.runtime._assembly``).
        self.parts = parts = HostParts(cfg, self.client)
        self.code_version = parts.code_version
        self.binding, self.events, self.tasks = parts.binding, parts.events, parts.tasks
        self.manager, self.persistence, self.resident = parts.manager, parts.persistence, parts.resident
        self.mesh, self.services, self.launch = parts.mesh, parts.services, parts.launch
        self.files, self.artifacts, self.host_properties = parts.files, parts.artifacts, parts.host_properties
        self._loop, self._stopped = parts.loop, threading.Event()
        self.movement = parts.movement
        parts.updater.bind_restart(self.shutdown, self._run)

    def __repr__(self) -> str:
        return f"Host(name={self.name!r}, address={self.address!r})"

    # --- addresses -------------------------------------------------------------------------------

    @property
    def address(self) -> str:
        return self.binding.url

    @property
    def bind_hosts(self) -> list[str]:
        return self.binding.bind_hosts

    @property
    def port(self) -> int:
        return self.binding.port

    @property
    def public_url(self) -> str | None:
        return self.binding.public_url

    @property
    def aclient(self) -> AsyncHttpClient:
        """The host's HTTP client to other hosts (while it runs)."""
        if self.parts.peers.client is None:
            raise HostError(f"host {self.name} is not started")
        return self.parts.peers.client

    # --- lifecycle -------------------------------------------------------------------------------

    @property
    def _started(self) -> bool:
        return self.parts.running.is_set()

    def start_background(self) -> Host:
        """Start the loop thread, the zygote and the HTTP server; returns when the host serves."""
        if self._started:
            return self
        self._loop.start()
        try:
            self._loop.run(self.parts.start(), START_TIMEOUT)
        except BaseException:
            self._loop.stop()
            raise
        self.parts.running.set()
        return self

    def spawn_task(self, coro: Coroutine[object, None, object]) -> None:
        """Run ``coro`` in the background on the loop; the host cancels it when it stops, and reports it
        (``task-failed`` event, log line) if it fails (``paglets.runtime._tasks``)."""
        self.tasks.spawn(coro)

    def serve_forever(self) -> None:
        """Start (if needed) and block until ``stop()``; SIGINT/SIGTERM in the main thread shut down."""
        self.start_background()
        if threading.current_thread() is threading.main_thread():
            signals = [signal.SIGINT, signal.SIGTERM]
            if sys.platform == "win32":  # Ctrl-Break in a Windows console (Ctrl-C is SIGINT there too)
                signals.append(signal.SIGBREAK)
            for sig in signals:
                signal.signal(sig, lambda *_: threading.Thread(target=self.shutdown, daemon=True).start())
        while not self._stopped.wait(3600):
            pass

    def stop(self, *, deactivate_active: bool = False) -> None:
        """Stop serving and end every paglet process; with ``deactivate_active`` every active paglet is
        saved first (``shutdown()``). A host that never started does nothing."""
        if not self._started:
            return
        self.parts.running.clear()
        try:
            self._loop.run(self.parts.stop(deactivate_active), STOP_TIMEOUT + SHUTDOWN_BUDGET + 10)
        finally:
            self._loop.stop()
            self.client.close()
            self._stopped.set()

    def shutdown(self) -> None:
        """Stop the host (``stop(deactivate_active=True)``)."""
        self.stop(deactivate_active=True)

    def __enter__(self) -> Host:
        return self.start_background()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self, coro: Coroutine[object, None, T], timeout: float | None = DEFAULT_TIMEOUT) -> T:
        return self.parts.run(coro, timeout)

    # --- creating, disposing, moving, deactivating ----------------------------------------------

    def create(
        self,
        agent_cls: type[Paglet[Any]],
        state: object = None,
        *,
        init: Any = None,
        agent_id: str | None = None,
    ) -> PagletProxy:
        """Start a new paglet on this host; returns once ``on_creation`` ran (``run()`` may still run)."""
        creation = creation_of(agent_cls, state, init, agent_id)
        return self._proxy_for(self._run(self.parts.control.call(creation)))

    def create_remote(
        self,
        target: str,
        agent_cls: type[Paglet[Any]],
        state: object = None,
        *,
        init: Any = None,
        agent_id: str | None = None,
    ) -> PagletProxy:
        url = self.parts.names.resolve(target)
        if self.parts.names.same_host(url):
            return self.create(agent_cls, state, init=init, agent_id=agent_id)
        return self._proxy_for(
            self.parts.creator.create_remote_blocking(url, creation_of(agent_cls, state, init, agent_id))
        )

    def dispose(self, agent_id: str) -> None:
        """Run ``on_disposing`` and the cleanup, end the paglet's process, delete the artifacts it owns."""
        self._run(self.parts.control.call(DisposeAgent(agent_id)))

    def dispatch(self, agent_id: str, target: str | TransferTicket) -> PagletProxy:
        """Move a paglet to ``target`` (URL, mesh name or ticket); returns the proxy of where it is once
        its ``run()`` returned there or it moved on."""
        return self._moved(agent_id, target, "dispatch")

    def clone(self, agent_id: str, *, target: str | TransferTicket | None = None) -> PagletProxy:
        """Copy a paglet to ``target`` (default: this host); returns the clone's proxy."""
        return self._moved(agent_id, target, "clone")

    def retract(self, remote_host_url: str, agent_id: str) -> PagletProxy:
        """Pull ``agent_id`` from the host at ``remote_host_url`` (a URL or a mesh name) to this one."""
        url = self.parts.names.resolve(remote_host_url)
        if self.parts.names.same_host(url):
            return self._moved(agent_id, self.address, "retract")
        reply = self.client.post_json(
            f"{url}/agents/{agent_id}/retract", {"target": self.address}, timeout=DEFAULT_TIMEOUT
        )
        return self._proxy_for(msgspec.convert(reply, ProxyReply).proxy)

    def _moved(self, agent_id: str, target: str | TransferTicket | None, kind: MoveAction) -> PagletProxy:
        return self._proxy_for(self._run(self.parts.moves.move_agent(agent_id, target, kind), None))

    def deactivate(self, agent_id: str, request: DeactivationRequest | None = None) -> PagletProxy:
        """Save a paglet to disk and end its process; returns its (inactive) proxy."""
        wire = None if request is None else request.to_wire()
        return self._proxy_for(self._run(self.parts.control.call(DeactivateAgent(agent_id, wire))).proxy)

    def checkpoint(self, agent_id: str) -> dict[str, Any]:
        """Save an active paglet's state and waiting messages durably while it keeps running
        (``paglets.runtime._checkpoints``); returns ``checkpoint_at``, ``state_bytes`` and
        ``queued_message_count``."""
        reply = self._run(self.parts.control.call(CheckpointAgent(agent_id)))
        return msgspec.structs.asdict(reply)

    def activate(self, agent_id: str) -> PagletProxy:
        """Start an inactive paglet from its record; ``InvalidAgentError`` when there is
        no inactive paglet of that id (also when it is active already, as in 2.0)."""
        return self._proxy_for(self._run(self.parts.control.call(ActivateAgent(agent_id))).proxy)

    def _proxy_for(self, where: ProxyRef) -> PagletProxy:
        if self.parts.names.same_host(where.host_url):
            return self._proxy(where.agent_id)
        return PagletProxy(where.host_url.rstrip("/"), where.agent_id, self.client)

    def _proxy(self, agent_id: str) -> PagletProxy:
        return PagletProxy(self.address, agent_id, self.client, self.parts.route)

    async def forward_waiting(self, items: list[MailboxItem], where: dict[str, str]) -> None:
        """Deliver messages that were waiting for a paglet that moved (see ``MessageRouter``)."""
        await self.parts.router.forward_waiting(
            items, ProxyRef(str(where["host_url"]), str(where["agent_id"]))
        )

    # --- messages --------------------------------------------------------------------------------

    def deliver_message(
        self,
        agent_id: str,
        message: Message,
        *,
        oneway: bool = False,
        activate_if_inactive: bool = True,
        no_delay: bool = False,
        timeout: float | None = _UNSET,
    ) -> Any:
        """Deliver ``message`` to a paglet of this host and return the handler's reply (None if oneway).

        A synchronous send waits at most ``timeout`` seconds for the reply (default: the host's
        ``send_timeout``; ``None``: no limit), then raises ``SendTimeoutError``.
        """
        deadline = self.send_timeout if timeout is _UNSET else timeout
        return self.parts.router.send(
            agent_id,
            message,
            oneway=oneway,
            activate_if_inactive=activate_if_inactive,
            no_delay=no_delay,
            deadline=deadline,
        )

    @property
    def send_timeout(self) -> float | None:
        """Seconds a synchronous send waits for its reply when the caller gives no deadline
        (``Host(send_timeout=...)``; ``None``: no limit)."""
        return self.parts.router.send_timeout

    def multicast_message(
        self,
        kind: str | Message,
        args: dict[str, Any] | None = None,
        *,
        exclude: Collection[str] | None = None,
    ) -> ReplySet:
        """Send one message (same id) to every ready paglet of this host; replies arrive in a ``ReplySet``."""
        message = kind if isinstance(kind, Message) else Message(kind, args or {})
        skip = set(exclude or ())
        replies = ReplySet()
        for agent_id in self._run(_value(self.manager.ready_ids)):
            if agent_id not in skip:
                copy = Message.from_wire(message.to_wire())
                replies.add_future_reply(FutureReply(self.parts.router.submit(agent_id, copy, oneway=False)))
        return replies

    def wait_message(self, agent_id: str, timeout: float | None = None) -> bool:
        limit = None if timeout is None else timeout + 5.0
        return self._run(self.manager.wait_message(agent_id, timeout), limit)

    def notify_message(self, agent_id: str) -> None:
        self._run(_value(lambda: self.manager.notify_message(agent_id, all_waiters=False)))

    def notify_all_messages(self, agent_id: str) -> None:
        self._run(_value(lambda: self.manager.notify_message(agent_id, all_waiters=True)))

    def mailbox_status(self, agent_id: str) -> dict[str, int]:
        return dict(self._run(_value(lambda: mailbox_counts(self.manager.get(agent_id)))))

    # --- queries ---------------------------------------------------------------------------------

    def get_proxy(self, agent_id: str, *, include_inactive: bool = False) -> PagletProxy | None:
        found = self.parts.directory.reachable(agent_id, include_inactive=include_inactive)
        return self._proxy(agent_id) if found else None

    def remote_proxy(self, host_url: str, agent_id: str) -> PagletProxy:
        if self.parts.names.same_host(host_url):
            return self._proxy(agent_id)
        return PagletProxy(host_url.rstrip("/"), agent_id, self.client)

    def get_proxies(self, state: int = ACTIVE) -> list[PagletProxy]:
        return [self._proxy(agent_id) for agent_id in self.parts.directory.agent_ids(state)]

    def get_state(self, agent_id: str, state_cls: type[T]) -> T:
        """A fresh snapshot of a paglet's state (active or inactive), decoded as ``state_cls``. A host that
        is not started reads the state of an inactive paglet from its record."""
        if not self._started:
            data = self.parts.directory.stored_state(agent_id)
        else:
            data = self._run(self.parts.directory.state_bytes(agent_id))
        return codec_for(state_cls).decode(data)

    def list_agents(
        self, *, active: bool = True, inactive: bool = False, include_state: bool = False
    ) -> list[dict[str, Any]]:
        """Summaries of the active paglets, then of the inactive ones (``GET /agents``). A
        host that is not started lists its inactive paglets from their records."""
        if not self._started:
            return self.parts.directory.list_records(include_state) if inactive else []
        listing = self.parts.directory.list_agents(
            active=active, inactive=inactive, include_state=include_state
        )
        return list(self._run(listing))

    def http_statistics(self) -> ServerStatistics | None:
        """Counters of the host's HTTP server (connections, rejections, timeouts); ``None`` before start."""
        server = self.parts.server
        return None if server is None else server.statistics()

    server_statistics = http_statistics

    def health(self) -> dict[str, Any]:
        """``GET /health``; a host that is not started counts its records."""
        health: dict[str, Any] = msgspec.to_builtins(self.parts.directory.health())
        return health

    def statistics(self) -> dict[str, int]:
        return {"created_total": self.manager.created_total, "paglets": len(self.manager.controllers)}

    # --- the mesh --------------------------------------------------------------------------------

    def list_hosts(self, *, online_only: bool = False, include_self: bool = True) -> list[HostRef]:
        """Known hosts of the mesh (sorted by name), this one included unless told not to. ``GET /hosts``
        answers the same refs as JSON."""
        return self.mesh.hosts(online_only=online_only, include_self=include_self)

    def available_hosts(self, *, online_only: bool = True, include_self: bool = True) -> list[HostRef]:
        return self.mesh.hosts(online_only=online_only, include_self=include_self)

    def join_mesh(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Handle another host's join request (``POST /hosts/join``)."""
        return dict(self.mesh.accept_join(payload).body)

    def host_status(self, name_or_url: str) -> HostRef | None:
        return self.mesh.lookup(name_or_url)

    def is_host_online(self, name_or_url: str) -> bool:
        return self.mesh.is_online(name_or_url)

    def wait_for_host(self, name_or_url: str, *, timeout: float = 10.0, interval: float = 0.25) -> HostRef:
        """Wait until a host is online in the mesh (woken by membership changes, no polling)."""
        return self._run(self.mesh.wait_for_host_async(name_or_url, timeout=timeout), timeout + 5.0)

    def resolve_host_url(self, name_or_url: str) -> str:
        """The URL of a mesh host name, or an ``http(s)://`` URL itself (normalized);
        ``UnknownHostError`` for a name no member has: names are never looked up outside the mesh."""
        return self.parts.names.resolve(name_or_url)

    # --- services --------------------------------------------------------------------------------

    def advertise_service(
        self,
        agent_id: str,
        name: str,
        *,
        capabilities: Collection[str] | None = None,
        metadata: dict[str, Any] | None = None,
        scope: ServiceScope | str = ServiceScope.LOCAL,
        ttl: float | None = None,
    ) -> ServiceRecord:
        """Advertise a service offered by a paglet of this host (also while its starting hook runs)."""
        return self.services.advertise(
            agent_id, name, capabilities=capabilities, metadata=metadata, scope=scope, ttl=ttl
        )

    def unadvertise_service(self, name: str, *, agent_id: str | None = None) -> list[ServiceRecord]:
        return self.services.unadvertise(name, agent_id=agent_id)

    def lookup_services(
        self,
        name: str | None = None,
        *,
        capability: str | None = None,
        scope: ServiceScope | str = ServiceScope.LOCAL,
    ) -> list[ServiceRecord]:
        """Service records by name and capability; ``scope=MESH`` also asks the online peers."""
        return list(self._run(self.services.lookup(name, capability=capability, scope=scope)))

    def lookup_service(
        self, name: str, *, capability: str | None = None, scope: ServiceScope | str = ServiceScope.LOCAL
    ) -> ServiceRecord | None:
        found = self.lookup_services(name, capability=capability, scope=scope)
        return found[0] if found else None

    def declare_resident_service(self, declaration: ResidentDeclaration) -> ServiceRecord:
        """Keep a service available on this host: advertised now, started on demand."""
        return self._run(self.resident.declare(declaration))

    def acquire_resident_service_lease(
        self, agent_id: str, service_name: str, *, ttl: float = 60.0
    ) -> dict[str, Any]:
        """Pin a (resident) service paglet for ``ttl`` seconds; starts it if needed."""
        return msgspec.structs.asdict(self._run(self.resident.acquire_lease(agent_id, service_name, ttl)))

    def release_resident_service_lease(self, lease_id: str) -> bool:
        return self._run(_value(lambda: self.resident.release_lease(lease_id)))

    def lease_service_handle(self, handle: ServiceHandle, *, ttl: float = 60.0) -> ServiceLease:
        """A ``ServiceLease`` on the paglet behind ``handle`` (released by a context manager)."""
        return ServiceLease.acquire(handle, ttl=ttl, client=self.client)

    # --- events, listeners, properties -----------------------------------------------------------

    def list_events(self, *, since: int = 0, limit: int = 100) -> list[ContextEvent]:
        return self.events.events_since(since, limit)

    def add_listener(self, listener: ContextListener) -> None:
        self.events.add_listener(listener)

    def remove_listener(self, listener: ContextListener) -> None:
        self.events.remove_listener(listener)

    def get_property(self, key: str, default: Any = None) -> Any:
        return self.parts.properties.get(key, default)

    def set_property(self, key: str, value: Any) -> None:
        self.parts.properties.set(key, value)

    # --- storage, files, artifacts, resources ------------------------------------------------------

    def work_dir_for(self, agent_id: str, *, create: bool = True) -> Path:
        """The scratch directory of an active paglet (``InvalidAgentError`` for others, as in 2.0)."""
        self.manager.get(agent_id)
        path = self.manager.work_root / path_component(agent_id)
        if create:
            path.mkdir(parents=True, exist_ok=True)
        return path

    def register_file_for(
        self, agent_id: str, path: str | Path, *, name: str | None = None, mode: str = "copy"
    ) -> PagletFileRef:
        """Register a file to travel with a paglet (hashed now; see ``paglets.runtime._files``)."""
        self.manager.get(agent_id)
        return self.files.register(agent_id, path, name=name, mode=mode)

    def registered_files_for(self, agent_id: str) -> list[PagletFileRef]:
        return self.files.refs(agent_id)

    def unregister_file_for(self, agent_id: str, name_or_ref: str | PagletFileRef) -> None:
        self.files.unregister(agent_id, name_or_ref)

    def registered_file_path_for(self, agent_id: str, name_or_ref: str | PagletFileRef) -> Path:
        return self.files.path(agent_id, name_or_ref)

    def upload_artifact(
        self,
        path: str | Path,
        *,
        host_url: str | None = None,
        owner_agent_id: str = "",
        name: str | None = None,
        compression: str = "",
        expires_at: float = 0.0,
        timeout: float | None = None,
    ) -> ArtifactRef:
        """Store a file as an artifact here (no HTTP) or on ``host_url`` (a URL or a mesh name)."""
        return self.parts.artifact_access.upload_artifact(
            path,
            host_url=host_url,
            owner_agent_id=owner_agent_id,
            name=name,
            compression=compression,
            expires_at=expires_at,
            timeout=timeout,
        )

    def download_artifact(
        self,
        artifact: ArtifactRef | Mapping[str, object],
        target: str | Path,
        *,
        move: bool = False,
        timeout: float | None = None,
    ) -> ArtifactRef:
        return self.parts.artifact_access.download_artifact(artifact, target, move=move, timeout=timeout)

    def delete_artifact(
        self, artifact: ArtifactRef | Mapping[str, object], *, timeout: float | None = None
    ) -> None:
        self.parts.artifact_access.delete_artifact(artifact, timeout=timeout)

    def resources_for(self, agent_id: str) -> ResourceView:
        """The resource registry of an active paglet, operated from the host (``status``, ``remove``,
        ``cleanup``); each call is answered by the paglet's process."""
        self.manager.get(agent_id)
        return ResourceView(self.manager, self._run, agent_id)

    def persistent_storage_for(self, agent_id: str, *, quota_bytes: int | None = None) -> ManagedStorage:
        return self.parts.storages.storage(self.parts.directory.require(agent_id).agent_class, quota_bytes)


async def _value(fn: Callable[[], T]) -> T:
    """Run a plain function on the loop thread (for reads of loop-owned state)."""
    return fn()
