"""How a host is put together: the composition root of its collaborators, and their start and stop order.

:class:`HostParts` builds every collaborator of one ``Host`` in dependency order and gives each only
what it declares it needs (its narrow protocols, or plain callables): no collaborator receives the host,
the parts, or a sibling it does not use. ``Host`` (``paglets.runtime.host``) holds the parts and is the
public facade over them. Where two collaborators need each other, the cycle is broken explicitly:

- the paglet manager reports paglets that go away or come live to the service directory, which needs the
  manager to know who lives here: the manager is built first and told whom to report to (``observe``);
- the service directory's mesh lookups need the mesh's peers and an HTTP client, both of which exist
  only while the host runs: they are bound at start (``bind_client``).

Start order: the inactive records are loaded first (their store locks the persistence directory, so a
second host on the same directory stops before it reads anything else), then the checkpoints, the
forwarding entries and the transfer records at once; then the HTTP server starts (so that nothing is
served before they are loaded), the ``auto`` bind watcher, the artifact cleanup, the mesh, resident
services (every record first, then the eager ones), ``activate_on_startup`` records, startup agents;
last, once the start returned, the process backend is launched in the background (the zygote on its own
thread, ``_zygote_thread``, or the spare processes; creating a paglet process waits for it, and launches
it if that comes first). Stop order: the server first (no new requests), then open moves get a short
chance to finish and the paused copies of those still in doubt are held (``_move_held.py``), then, for
``shutdown()``, every paglet is saved, then background work, the mesh, resident services, movement, the
artifact store, the records and last the paglet processes.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import threading
from collections.abc import Coroutine
from functools import partial
from typing import TYPE_CHECKING, Any, Final, TypeVar
from urllib.parse import urlsplit

from paglets.artifacts import ArtifactStore
from paglets.core.context_events import ContextEventLog
from paglets.core.errors import HostError
from paglets.http.inprocess import InProcessClient
from paglets.http.server import HttpServer
from paglets.http.tls import server_context
from paglets.remote.client import HostClient
from paglets.remote.mesh import NO_GIT_SUFFIX, MeshRegistry, resolve_code_version
from paglets.runtime._adapters import HostNames, HostSite, Leftovers, MovementPort, PeerHttp
from paglets.runtime._agent_ops import AgentOps
from paglets.runtime._artifact_access import ArtifactAccess, StoreArtifacts
from paglets.runtime._autoupdate import AutoUpdater, build_admin_routes
from paglets.runtime._backend import choose_backend, make_backend
from paglets.runtime._binding import AUTO, BindingWatcher, HostAddress, resolve_bind_hosts
from paglets.runtime._checkpoints import Checkpoints
from paglets.runtime._config import HostConfig
from paglets.runtime._control import ControlTable
from paglets.runtime._creation import Creator
from paglets.runtime._dashboard import open_request
from paglets.runtime._directory import AgentDirectory
from paglets.runtime._files import FileRegistry
from paglets.runtime._forwarding import Forwarding
from paglets.runtime._idle import IdlePassivation
from paglets.runtime._launch import LaunchRunner
from paglets.runtime._loop import LoopThread
from paglets.runtime._metrics import HostMetrics
from paglets.runtime._movement import MovementEngine
from paglets.runtime._paglet_ops import HostProperties, PagletOps
from paglets.runtime._paglets import PagletManager, Timeouts
from paglets.runtime._persistence import Persistence
from paglets.runtime._relay_client import RelayClient
from paglets.runtime._relay_hub import RelayHub, relay_host_url
from paglets.runtime._resident import ResidentServices
from paglets.runtime._routes import build_router
from paglets.runtime._routing import LocalRoute, MessageRouter
from paglets.runtime._services import HostServices
from paglets.runtime._storage import StorageShelf
from paglets.runtime._tasks import BackgroundTasks

if TYPE_CHECKING:
    from paglets.http.routing import Router

__all__ = ["HostParts"]

_log = logging.getLogger("paglets.runtime")

T = TypeVar("T")

#: Seconds a synchronous host operation waits by default (``None`` passed explicitly means no limit).
DEFAULT_TIMEOUT: Final = 300.0
#: Seconds paglet processes get to exit after ``stop()`` asked them before they are killed (a handler
#: still running then is interrupted; ``shutdown()`` saves such paglets first).
STOP_GRACE: Final = 1.0
#: Seconds ``shutdown()`` gives all paglets together to be saved (they are saved in parallel).
SHUTDOWN_BUDGET: Final = 30.0
#: Seconds requests in flight get to finish when the host stops.
SERVER_CLOSE_DEADLINE: Final = 5.0
#: Seconds a connect-mode host's start waits for its first relay session (it keeps trying afterwards).
RELAY_CONNECT_WAIT: Final = 10.0


class HostParts:
    """The collaborators of one host, wired (see the module docstring)."""

    def __init__(self, cfg: HostConfig, client: HostClient) -> None:
        code_version = resolve_code_version(cfg.mesh_version)
        if code_version.endswith(NO_GIT_SUFFIX):
            _log.warning(
                "host %s: no mesh version given and no git checkout found; using %s (set --mesh-version or "
                "PAGLETS_MESH_VERSION so that hosts of different code never mix)",
                cfg.name,
                code_version,
            )
        self.code_version = code_version
        self.config = cfg
        self.host_properties = dict(cfg.properties)
        relay_url = relay_host_url(cfg.connect_to, cfg.name) if cfg.connect_to else None
        self.binding = HostAddress(resolve_bind_hosts(cfg.bind_hosts), cfg.port, cfg.public_url, relay_url)
        address = self.binding.current
        name, root = cfg.name, cfg.persistence_dir
        self.events = events = ContextEventLog(host_name=name, host_address=address())
        self.loop = LoopThread(name)
        #: Set while the host runs (from the end of its start to the beginning of its stop).
        self.running = threading.Event()
        self.server: HttpServer | None = None
        self.peers = PeerHttp(cfg.api_key)
        #: Fire-and-forget tasks of the host; a failure becomes a ``task-failed`` event and a log line.
        self.tasks = tasks = BackgroundTasks(events)
        self.artifacts = ArtifactStore(
            root / "artifacts",
            host_url=address,
            max_artifact_bytes=cfg.artifact_max_bytes,  # 2.0's rules: None or 0 means unlimited
            quota_bytes=cfg.artifact_storage_quota_bytes,
            spool_ttl_seconds=cfg.artifact_spool_ttl_seconds,
        )
        self.files = FileRegistry(
            host_name=lambda: name, host_url=address, work_root=root / "work", events=events
        )
        self.properties = HostProperties()
        self.storages = StorageShelf(root / "storage", cfg.persistent_storage_quota_bytes)
        self.control = ControlTable()
        #: Where paglets that left this host went (answers for stale proxies; survives restarts).
        self.forwarding = forwarding = Forwarding(
            root / "forwards", host_name=name, address=address, spawn=tasks.spawn
        )
        self.control.moved = forwarding.moved_error
        self.manager = manager = PagletManager(
            backend=make_backend(choose_backend(cfg.process_backend), host_name=name),
            host_name=name,
            address=address,
            events=events,
            work_root=root / "work",
            api_key=cfg.api_key,
            host_calls=self.control.serve,
            preload=cfg.preload_modules,
            spawn=tasks.spawn,
            timeouts=Timeouts(dispose=cfg.dispose_grace, send=cfg.send_timeout),
        )
        self.persistence = records = Persistence(
            name=name,
            address=address,
            root=root,
            events=events,
            agents=manager,
            files=self.files,
            spawn=tasks.spawn,
        )
        self.services = HostServices(
            host_name=lambda: name, host_address=address, is_active=manager.is_live, emit=events.emit
        )
        publish = self.services.publish

        def live(agent_id: str, held: list[Any]) -> None:
            forwarding.arrived(agent_id)
            publish(agent_id, held)

        def gone(agent_id: str) -> None:
            self.services.forget_agent(agent_id)
            self.checkpoints.forget(agent_id)

        manager.observe(gone=gone, live=live)
        self.creator = Creator(address=address, agents=manager, stored=records.stored, client=client)
        self.resident = ResidentServices(
            name=name,
            address=address,
            events=events,
            spawn=tasks.spawn,
            registry=self.services.registry,
            agents=manager,
            records=records,
            create=self.creator.create,
        )
        #: Git auto-update: ``POST /admin/git-update``, the ``/health`` fields, the restart.
        self.updater = AutoUpdater(
            cfg,
            address=address,
            events=events,
            mesh=_LateMesh(self),
            post=self._post_peer,
            settle_moves=self._settle_moves,
            spawn=tasks.spawn,
        )
        events.add_listener(self.updater.on_event)
        #: Idle passivation of any paglet (per class, or the host's default).
        self.idle = IdlePassivation(
            default=cfg.idle_deactivate_after,
            agents=manager,
            records=records,
            is_resident=self.resident.is_resident,
            events=events,
            spawn=tasks.spawn,
        )
        #: Checkpoints of active paglets (per class, the host's default, or on request).
        self.checkpoints = Checkpoints(
            name=name,
            root=root,
            default=cfg.checkpoint_interval,
            agents=manager,
            files=self.files,
            is_resident=self.resident.is_resident,
            events=events,
            spawn=tasks.spawn,
        )
        self.directory = AgentDirectory(
            name=name,
            address=address,
            code_version=code_version,
            tags=cfg.tags,
            properties=self.host_properties,
            started=self.running.is_set,
            agents=manager,
            records=records,
            is_resident=self.resident.is_resident,
            auto_update=self.updater.health_fields,
            compute_capacity=cfg.compute_capacity,
        )
        self.mesh = MeshRegistry(
            self.directory.self_ref,
            code_version=code_version,
            # a connect-mode host reaches the mesh through its hub only (seeds_only: no other contacts)
            seeds=(*cfg.peers, cfg.connect_to) if cfg.connect_to else cfg.peers,
            seeds_only=cfg.connect_to is not None,
            interval=cfg.mesh_gossip_interval,
            offline_after=cfg.mesh_offline_after,
            api_key=cfg.api_key,
            on_event=partial(_mesh_event, events),
            multicast=cfg.mesh_multicast,
        )
        self.names = HostNames(name, address, self.mesh)
        self.artifact_access = ArtifactAccess(
            address=address,
            resolve=self.names.resolve,
            client=lambda: client,
            local=StoreArtifacts(self.artifacts),
        )
        self.router = MessageRouter(
            host_name=name,
            address=address,
            loop=self.loop,
            started=self.running.is_set,
            agents=manager,
            records=records,
            residents=self.resident,
            post=self.peers.post_json,
            events=events,
            moved=forwarding.moved_error,
        )
        self.launch = LaunchRunner(
            cfg.launch_config,
            cfg.launch_config_sync_result,
            name=name,
            events=events,
            resident=self.resident,
            agents=manager,
            records=records,
            create=self.creator.create,
        )
        #: The route of proxies this host hands out in its own process (no HTTP).
        self.route = LocalRoute(
            address=address,
            router=self.router,
            control=self.control,
            run=self.run,
            artifacts=self.artifact_access,
            default_timeout=DEFAULT_TIMEOUT,
        )
        site = HostSite(
            name=name,
            address=address,
            code_version=code_version,
            config=cfg,
            events=events,
            manager=manager,
            persistence=records,
            files=self.files,
            artifacts=self.artifacts,
            client=client,
            peers=self.peers,
            names=self.names,
            directory=self.directory,
            router=self.router,
            forwarding=forwarding,
        )
        self.movement = MovementEngine(site)
        site.on_leaving = self.checkpoints.drop
        #: The movement engine in the control plane's types.
        self.moves = moves = MovementPort(self.movement)
        moves.wake = self.idle.wake
        #: ``GET /metrics`` (``paglets.runtime._metrics``).
        self.metrics = HostMetrics(
            controllers=lambda: manager.controllers,
            inactive=lambda: len(records.summaries()) if records.store is not None else 0,
            forwards=lambda: len(forwarding.store),
            passivations=lambda: self.idle.passivated_total,
            http=lambda: None if self.server is None else self.server.statistics(),
        )
        manager.message_observer = self.metrics.observe_message
        moves.observe = self.metrics.observe_move
        events.add_listener(self.metrics.on_event)
        AgentOps(
            host_name=name,
            address=address,
            directory=self.directory,
            messages=self.router,
            creation=self.creator,
            lifecycle=records,
            active=manager,
            leftovers=Leftovers(self.files, self.artifacts),
            mover=moves,
            leases=self.resident,
            resolve=self.names.resolve,
        ).register(self.control)
        self.checkpoints.register(self.control, inactive=records.stored)
        PagletOps(
            address=address,
            code_version=code_version,
            resolve=self.names.resolve,
            directory=self.directory,
            properties=self.properties,
            mesh=self.mesh,
            mover=moves,
            deactivation=records,
            storages=self.storages,
            files=self.files,
            artifacts=self.artifacts,
            services=self.services,
            is_prepared=manager.is_prepared,
        ).register(self.control)
        #: The relay routes (hosts with an API key that are not themselves in connect mode).
        self.relay_hub = (
            RelayHub(
                public_url=address,
                events=events,
                offline_after=cfg.relay_offline_after,
                delivery_timeout=cfg.relay_delivery_timeout,
                queue_limit=cfg.relay_queue_limit,
            )
            if cfg.api_key and not cfg.connect_to
            else None
        )
        self.relay_client: RelayClient | None = None
        self.code_version = code_version

    def run(self, coro: Coroutine[object, None, T], timeout: float | None = DEFAULT_TIMEOUT) -> T:
        """Run ``coro`` on the host's loop from another thread and wait (``HostError`` when stopped)."""
        if not self.running.is_set():
            coro.close()
            raise HostError(f"host {self.config.name} is not started (call start_background())")
        return self.loop.run(coro, timeout)

    async def _post_peer(self, url: str, body: dict[str, object], timeout: float) -> object:
        client = self.peers.client
        if client is None:
            raise HostError(f"host {self.config.name} is not started")
        return await client.request_json("POST", url, body, timeout=timeout)

    async def _settle_moves(self, timeout: float) -> int:
        return await self.movement.settle(timeout)

    def http_router(self) -> Router:
        """The host's route table (``paglets.runtime._routes``)."""
        router = build_router(
            name=self.config.name,
            address=self.binding.current,
            code_version=self.code_version,
            control=self.control,
            events=self.events,
            movement=self.movement,
            mesh=self.mesh,
            services=self.services.registry,
            is_active=self.manager.is_live,
            artifacts=self.artifacts,
            metrics=self.metrics.render,
        )
        if self.relay_hub is not None:
            self.relay_hub.add_routes(router)
        build_admin_routes(router, self.updater)
        return router

    # --- start and stop (on the loop; see the module docstring for the order) -----------------------

    async def start(self) -> None:
        cfg = self.config
        # scratch space starts empty at every start
        shutil.rmtree(self.manager.work_root, ignore_errors=True)
        self.manager.work_root.mkdir(parents=True, exist_ok=True)
        self.services.bind_client(self.peers.open(), peers=self.names.peer_urls)
        self.manager.start(asyncio.get_running_loop())
        await self._load_records()  # transfer records are back before anyone can ask about them
        # checkpoints left by a crash become startup records (never one of a paglet that moved away)
        checkpointed = await self.checkpoints.restore(
            self.persistence, lambda agent_id: self.forwarding.lookup(agent_id) is not None
        )
        prefix = urlsplit(cfg.public_url).path.rstrip("/") if cfg.public_url else ""
        server = HttpServer(
            self.http_router(),
            api_key=cfg.api_key,
            path_prefix=prefix,
            limits=cfg.http_limits,
            expose_tracebacks=cfg.expose_tracebacks,
            ssl_context=server_context(cfg.tls_cert, cfg.tls_key) if cfg.tls_cert else None,
            open_request=open_request,
        )
        try:
            if cfg.connect_to:
                await self._connect_relay(server)  # listens nowhere: requests arrive through the hub
            else:
                self.binding.port = await server.start(self.binding.bind_hosts, self.binding.port)
        except BaseException:
            await self.movement.stop()
            await self.manager.stop_all(STOP_GRACE)
            await self.persistence.close()
            await self.checkpoints.close()
            await self.forwarding.close()
            raise
        self.server = server
        self.events.host_address = self.binding.url
        if AUTO in cfg.bind_hosts and not cfg.public_url:
            watcher = BindingWatcher(
                specs=cfg.bind_hosts,
                interval=cfg.bind_watch_interval,
                address=self.binding,
                server=server,
                changed=self._rebound,
                name=cfg.name,
            )
            self.tasks.spawn(watcher.run())
        self.tasks.spawn(self._clean_artifacts())
        if self.relay_hub is not None:
            self.relay_hub.start()
        self.idle.start()
        self.checkpoints.run_periodic()
        if cfg.mesh:
            self.mesh.start()
        self.launch.report_sync()
        await self.launch.declare_resident_services()
        restored = await self.persistence.activate_startup()
        await self.launch.start_startup_agents()
        self.events.emit(
            "context-start",
            data={
                "address": self.binding.url,
                "code_version": self.code_version,
                "resident_services": sorted({d.contract.name for d in self.resident.declarations()}),
                "restored": restored,
                "restored_from_checkpoints": checkpointed,
                "inactive": len(self.persistence.summaries()),
            },
        )
        # serving already: the zygote or the spares start once the host's start returned (a creation
        # that comes first launches them itself and waits)
        asyncio.get_running_loop().call_soon(self.manager.launch_processes)

    async def _load_records(self) -> None:
        """Load the inactive records first: their store locks the persistence directory, so a second host
        started on the same directory stops there, before it reads (and would compact or repair) files
        that the first one writes. Then the checkpoints, the forwarding entries and the transfer records
        at once (each store reads its directory on a thread of its own). If one fails, those that loaded
        are closed again and the first failure is raised."""
        await self.persistence.start()
        stores = (
            (self.checkpoints.start, self.checkpoints.close),
            (self.forwarding.start, self.forwarding.close),
            (self.movement.start, self.movement.stop),
        )
        results = await asyncio.gather(*(start() for start, _ in stores), return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        if not failures:
            return
        await self.persistence.close()
        for (_, close), result in zip(stores, results, strict=True):
            if not isinstance(result, BaseException):
                try:
                    await close()
                except Exception:
                    _log.exception("host %s: closing a record store after a failed start", self.config.name)
        raise failures[0]

    async def _connect_relay(self, server: HttpServer) -> None:
        """Connect mode: start the relay session and wait (at most ``RELAY_CONNECT_WAIT``) for it."""
        cfg = self.config
        assert cfg.connect_to is not None
        client = self.relay_client = RelayClient(
            name=cfg.name,
            hub_url=cfg.connect_to,
            api_key=cfg.api_key,
            local=InProcessClient(server, api_key=cfg.api_key),
            events=self.events,
            spawn=self.tasks.spawn,
        )
        self.tasks.spawn(client.run(), name="relay-session")
        try:
            async with asyncio.timeout(RELAY_CONNECT_WAIT):
                await client.connected.wait()
        except TimeoutError:
            _log.warning(
                "host %s: relay hub %s not reached within %g s; still trying",
                cfg.name,
                cfg.connect_to,
                RELAY_CONNECT_WAIT,
            )

    def _rebound(self, old_address: str) -> None:
        """The bind watcher moved the server to new addresses (``paglets.runtime._binding``)."""
        new_address = self.binding.url
        self.events.host_address = new_address
        self.mesh.address_changed(old_address)
        self.events.emit(
            "context-rebind",
            data={
                "old_address": old_address,
                "new_address": new_address,
                "bind_hosts": list(self.binding.bind_hosts),
            },
        )

    async def _clean_artifacts(self) -> None:
        """Drop expired artifacts and stale partial uploads, every ``cleanup_interval`` seconds."""
        while True:
            await asyncio.sleep(self.artifacts.cleanup_interval)
            try:
                await self.artifacts.cleanup_async()
            except Exception:
                _log.exception("artifact cleanup failed on host %s", self.config.name)

    async def stop(self, deactivate_active: bool) -> None:
        server, self.server = self.server, None
        if server is not None:
            await server.close(deadline=SERVER_CLOSE_DEADLINE)
        shutdown: dict[str, object] = {}
        await self.movement.settle_for_stop()  # in-doubt paused copies are held, not ended
        if deactivate_active:
            saved, unsaved = await self.persistence.deactivate_all(SHUTDOWN_BUDGET)
            shutdown = {"saved": saved, "unsaved": unsaved}
        self.tasks.cancel_all()
        if self.relay_hub is not None:
            await self.relay_hub.stop()
        if self.relay_client is not None:
            await self.relay_client.aclose()
        await self.mesh.stop()
        await self.resident.stop()
        await self.movement.stop()
        await self.services.aclose()
        await asyncio.get_running_loop().run_in_executor(None, self.artifacts.close)
        await self.persistence.close()
        await self.checkpoints.close()  # before the processes end: their checkpoints stay
        await self.forwarding.close()
        await self.manager.stop_all(STOP_GRACE)
        await self.peers.close()
        self.events.emit("context-shutdown", data=shutdown)


class _LateMesh:
    """The mesh for the updater, which is built before it (the directory needs the updater's health)."""

    def __init__(self, parts: HostParts) -> None:
        self._parts = parts

    def hosts(self, *, online_only: bool = False, include_self: bool = True) -> list[Any]:
        return list(self._parts.mesh.hosts(online_only=online_only, include_self=include_self))

    def rejected(self) -> list[Any]:
        return list(self._parts.mesh.rejected())


def _mesh_event(events: ContextEventLog, kind: str, data: dict[str, Any]) -> None:
    events.emit(kind, data=dict(data))
