"""How a host is put together: the composition root of its collaborators, and their start and stop order.

:class:`HostParts` builds every collaborator of one ``Host`` in dependency order and gives each only
what it declares it needs (its narrow protocols, or plain callables): no collaborator receives the host,
the parts, or a sibling it does not use. ``Host`` (``paglets.runtime.host``) holds the parts and is the
public facade over them. Where two collaborators need each other, the cycle is broken explicitly:

- the paglet manager reports paglets that go away or come live to the service directory, which needs the
  manager to know who lives here: the manager is built first and told whom to report to (``observe``);
- the service directory's mesh lookups need the mesh's peers and an HTTP client, both of which exist
  only while the host runs: they are bound at start (``bind_client``).

Start order: the zygote, the records and the transfer records, then the HTTP server (so that nothing is
served before they are loaded), the ``auto`` bind watcher, the artifact cleanup, the mesh, resident
services (every record first, then the eager ones), ``activate_on_startup`` records, startup agents. Stop
order: the server first (no new requests), then, for ``shutdown()``, every paglet is saved, then
background work, the mesh, resident services, movement, the artifact store, the records and last the
paglet processes.
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
from paglets.remote.client import HostClient
from paglets.remote.mesh import NO_GIT_SUFFIX, MeshRegistry, resolve_code_version
from paglets.runtime._adapters import HostNames, HostSite, Leftovers, MovementPort, PeerHttp
from paglets.runtime._agent_ops import AgentOps
from paglets.runtime._artifact_access import ArtifactAccess, StoreArtifacts
from paglets.runtime._backend import choose_backend, make_backend
from paglets.runtime._binding import AUTO, BindingWatcher, HostAddress, resolve_bind_hosts
from paglets.runtime._config import HostConfig
from paglets.runtime._control import ControlTable
from paglets.runtime._creation import Creator
from paglets.runtime._directory import AgentDirectory
from paglets.runtime._files import FileRegistry
from paglets.runtime._launch import LaunchRunner
from paglets.runtime._loop import LoopThread
from paglets.runtime._movement import MovementEngine
from paglets.runtime._paglet_ops import HostProperties, PagletOps
from paglets.runtime._paglets import PagletManager, Timeouts
from paglets.runtime._persistence import Persistence
from paglets.runtime._resident import ResidentServices
from paglets.runtime._routing import LocalRoute, MessageRouter
from paglets.runtime._services import HostServices
from paglets.runtime._storage import StorageShelf
from paglets.runtime._tasks import BackgroundTasks

if TYPE_CHECKING:
    from paglets.http.routing import Router
    from paglets.http.server import HttpServer

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
        self.binding = HostAddress(resolve_bind_hosts(cfg.bind_hosts), cfg.port, cfg.public_url)
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
        manager.observe(gone=self.services.forget_agent, live=self.services.publish)
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
            compute_capacity=cfg.compute_capacity,
        )
        self.mesh = MeshRegistry(
            self.directory.self_ref,
            code_version=code_version,
            seeds=cfg.peers,
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
        self.movement = MovementEngine(
            HostSite(
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
            )
        )
        #: The movement engine in the control plane's types.
        self.moves = moves = MovementPort(self.movement)
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
        self.code_version = code_version

    def run(self, coro: Coroutine[object, None, T], timeout: float | None = DEFAULT_TIMEOUT) -> T:
        """Run ``coro`` on the host's loop from another thread and wait (``HostError`` when stopped)."""
        if not self.running.is_set():
            coro.close()
            raise HostError(f"host {self.config.name} is not started (call start_background())")
        return self.loop.run(coro, timeout)

    def http_router(self) -> Router:
        """The host's route table (``paglets.runtime._routes``)."""
        from paglets.runtime._routes import build_router

        return build_router(
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
        )

    # --- start and stop (on the loop; see the module docstring for the order) -----------------------

    async def start(self) -> None:
        from paglets.http.server import HttpServer

        cfg = self.config
        # scratch space starts empty at every start
        shutil.rmtree(self.manager.work_root, ignore_errors=True)
        self.manager.work_root.mkdir(parents=True, exist_ok=True)
        self.services.bind_client(self.peers.open(), peers=self.names.peer_urls)
        self.manager.start(asyncio.get_running_loop())
        await self.persistence.start()
        await self.movement.start()  # transfer records are back before anyone can ask about them
        prefix = urlsplit(cfg.public_url).path.rstrip("/") if cfg.public_url else ""
        server = HttpServer(
            self.http_router(),
            api_key=cfg.api_key,
            path_prefix=prefix,
            limits=cfg.http_limits,
            expose_tracebacks=cfg.expose_tracebacks,
        )
        try:
            self.binding.port = await server.start(self.binding.bind_hosts, self.binding.port)
        except BaseException:
            await self.movement.stop()
            await self.manager.stop_all(STOP_GRACE)
            await self.persistence.close()
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
                "inactive": len(self.persistence.summaries()),
            },
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
        if deactivate_active:
            saved, unsaved = await self.persistence.deactivate_all(SHUTDOWN_BUDGET)
            shutdown = {"saved": saved, "unsaved": unsaved}
        self.tasks.cancel_all()
        await self.mesh.stop()
        await self.resident.stop()
        await self.movement.stop()
        await self.services.aclose()
        await asyncio.get_running_loop().run_in_executor(None, self.artifacts.close)
        await self.persistence.close()
        await self.manager.stop_all(STOP_GRACE)
        await self.peers.close()
        self.events.emit("context-shutdown", data=shutdown)


def _mesh_event(events: ContextEventLog, kind: str, data: dict[str, Any]) -> None:
    events.emit(kind, data=dict(data))
