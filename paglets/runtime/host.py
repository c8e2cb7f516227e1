"""``Host``: a paglets host, embedded in a program or run by ``paglets-host`` (docs/operations/hosts.md).

The host is a small facade over its collaborators, each owning one concern:

- ``LoopThread`` — the asyncio loop (uvloop) that everything below runs on;
- ``PagletManager`` — paglet processes (zygote forks), controllers, mailboxes;
- ``HostCalls`` — what paglet processes may ask the host;
- ``HttpServer`` + ``routes`` — the HTTP control plane;
- ``ContextEventLog`` — the host's event log and listeners.

Synchronous methods may be called from any thread except the loop's own; they cross into the loop and
wait with a timeout. A proxy obtained from a host in this process talks to it directly (no HTTP).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import math
import shutil
import signal
import threading
import time
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TypeVar

from paglets.artifacts import ArtifactRef, ArtifactStore, PagletFileRef
from paglets.core.agent import ACTIVE, INACTIVE, Paglet
from paglets.core.context_events import ContextEvent, ContextEventLog, ContextListener
from paglets.core.errors import HostError, InvalidAgentError, RequestError, SerializationError
from paglets.core.messages import DEACTIVATE_KIND, FutureReply, Message, ReplySet
from paglets.core.runtime_values import ServiceScope
from paglets.persistence.persistency import DeactivationRequest
from paglets.persistence.storage import ManagedStorage, class_storage_name, path_component
from paglets.remote.client import HostClient
from paglets.remote.mesh import NO_GIT_SUFFIX, HostRef, MeshRegistry, resolve_code_version
from paglets.remote.proxy import PagletProxy
from paglets.remote.transfer import TransferTicket
from paglets.runtime._artifact_access import ArtifactAccess, StoreArtifacts
from paglets.runtime._binding import AUTO, resolve_auto_address, resolve_bind_hosts
from paglets.runtime._config import HostConfig
from paglets.runtime._deadlines import wait_reply
from paglets.runtime._files import FileRegistry
from paglets.runtime._hostcalls import HostCalls
from paglets.runtime._launch import LaunchRunner
from paglets.runtime._loop import LoopThread
from paglets.runtime._movement import MoveKind, MovementEngine
from paglets.runtime._paglets import PagletManager, Timeouts, mailbox_counts, message_wire_of
from paglets.runtime._persistence import Persistence
from paglets.runtime._resident import ResidentDeclaration, ResidentServices
from paglets.runtime._services import HostServices
from paglets.runtime._tasks import MESSAGE_FORWARD_FAILED, BackgroundTasks, report_failure
from paglets.serialization._from_wire import unknown_wire_fields
from paglets.serialization.codec import codec_for, dataclass_from_wire, qualified_name, resolve_qualified_name
from paglets.services.contracts import ServiceRecord
from paglets.wire.ipc import MessageWire

if TYPE_CHECKING:
    from paglets.http.server import ServerStatistics

__all__ = ["HOST_CAPABILITIES", "Host"]

_log = logging.getLogger("paglets.runtime")

T = TypeVar("T")

#: What this host advertises in ``/health`` (a subset of paglets 2.0's list until every feature lands).
HOST_CAPABILITIES: Final[tuple[str, ...]] = (
    "agents:list",
    "agents:state",
    "agents:create",
    "agents:message",
    "agents:dispatch",
    "agents:activate",
    "agents:deactivate",
    "agents:clone",
    "agents:retract",
    "agents:dispose",
    "events:list",
    "hosts:list",
    "hosts:join",
    "messages:mailbox",
    "artifacts:upload",
    "artifacts:download",
    "artifacts:list",
    "artifacts:delete",
    "services:list",
    "services:mesh",
    "transfer:tickets",
)

#: Seconds a synchronous host operation waits by default (``None`` passed explicitly means no limit).
DEFAULT_TIMEOUT: Final = 300.0
#: Seconds ``start_background`` and ``stop`` may take.
START_TIMEOUT: Final = 60.0
STOP_TIMEOUT: Final = 30.0
#: Seconds paglet processes get to exit after ``stop()`` asked them before they are killed (a handler
#: still running then is interrupted; ``shutdown()`` saves such paglets first).
STOP_GRACE: Final = 1.0
#: Seconds ``shutdown()`` gives all paglets together to be saved (they are saved in parallel).
SHUTDOWN_BUDGET: Final = 30.0

_UNSET: Any = object()


def _check_paglet_class(agent_cls: Any) -> tuple[str, str]:
    """The qualified names of a paglet class and its state class, after checking both can be imported."""
    if not isinstance(agent_cls, type) or not issubclass(agent_cls, Paglet):
        raise HostError(f"{agent_cls!r} is not a Paglet subclass")
    if agent_cls.__module__ == "__main__":
        raise HostError(
            f"{agent_cls.__qualname__} is defined in __main__; paglet processes import classes by name, "
            "so move it into a module (e.g. mypaglets.py) and import it from there"
        )
    try:
        agent_name = qualified_name(agent_cls)
    except SerializationError as exc:
        raise HostError(f"{agent_cls.__qualname__}: {exc}") from exc
    state_cls = agent_cls.state_class()
    try:
        state_name = qualified_name(state_cls)
    except SerializationError as exc:
        raise HostError(f"{state_cls.__qualname__}: {exc}") from exc
    if state_cls.__module__ == "__main__":
        raise HostError(f"{state_cls.__qualname__} is defined in __main__; move it into an importable module")
    return agent_name, state_name


class Host:
    """A paglets host. See the module docstring, and docs/operations/hosts.md for its options."""

    def __init__(
        self,
        name: str,
        host: str | Sequence[str] = "127.0.0.1",
        port: int = 0,
        *,
        client: HostClient | None = None,
        **options: Any,
    ) -> None:
        self.config = HostConfig.build(name, host, port, **options)
        cfg = self.config
        self.name = cfg.name
        self.bind_hosts = resolve_bind_hosts(cfg.bind_hosts)
        self.port = cfg.port
        self.public_url = cfg.public_url
        self.connect_to = cfg.connect_to
        self.relay_mode = cfg.relay_mode
        self.api_key = cfg.api_key
        self.tags = cfg.tags
        self.host_properties = dict(cfg.properties)
        self.persistence_dir = cfg.persistence_dir
        # the host's own key only ("": none); a bare HostClient() would read PAGLETS_API_KEY
        self.client = client if client is not None else HostClient(api_key=cfg.api_key or "")
        self.code_version = resolve_code_version(cfg.mesh_version)
        if self.code_version.endswith(NO_GIT_SUFFIX):
            _log.warning(
                "host %s: no mesh version given and no git checkout found; using %s (set --mesh-version or "
                "PAGLETS_MESH_VERSION so that hosts of different code never mix)",
                cfg.name,
                self.code_version,
            )
        self.mesh = MeshRegistry(
            self._mesh_self_ref,
            code_version=self.code_version,
            seeds=cfg.peers,
            interval=cfg.mesh_gossip_interval,
            offline_after=cfg.mesh_offline_after,
            api_key=cfg.api_key,
            on_event=self._mesh_event,
            multicast=cfg.mesh_multicast,
        )
        self.events = ContextEventLog(host_name=self.name, host_address=self.address)
        self._properties: dict[str, Any] = {}
        self._properties_lock = threading.Lock()
        self._storages: dict[tuple[str, int | None], ManagedStorage] = {}
        self._loop = LoopThread(self.name)
        self._server: Any = None
        self._started = False
        self._stopped = threading.Event()
        self.aclient: Any = None
        self.artifacts = ArtifactStore(
            self.persistence_dir / "artifacts",
            host_url=lambda: self.address,
            max_artifact_bytes=cfg.artifact_max_bytes,  # 2.0's rules: None or 0 means unlimited
            quota_bytes=cfg.artifact_storage_quota_bytes,
            spool_ttl_seconds=cfg.artifact_spool_ttl_seconds,
        )
        self._artifact_cleanup: asyncio.Task[None] | None = None
        self._artifact_access = ArtifactAccess(
            address=lambda: self.address,
            resolve=self.resolve_host_url,
            client=lambda: self.client,
            local=StoreArtifacts(self.artifacts),
        )
        #: Fire-and-forget tasks of the host; a failure becomes a ``task-failed`` event and a log line.
        self.tasks = BackgroundTasks(self.events)
        self.files = FileRegistry(
            host_name=lambda: self.name,
            host_url=lambda: self.address,
            work_root=self.persistence_dir / "work",
            events=self.events,
        )
        self.movement = MovementEngine(self)
        self.persistence = Persistence(self)
        self.resident = ResidentServices(self)
        self.launch = LaunchRunner(self, cfg.launch_config, cfg.launch_config_sync_result)
        self.services = HostServices(
            host_name=lambda: self.name,
            host_address=lambda: self.address,
            is_active=self._is_active,
            peers=self._peer_urls,
            emit=self.events.emit,
        )
        self.manager = PagletManager(
            host_name=self.name,
            address=lambda: self.address,
            events=self.events,
            work_root=self.persistence_dir / "work",
            api_key=cfg.api_key,
            host_calls=HostCalls(self),
            preload=cfg.preload_modules,
            on_agent_gone=self.services.forget_agent,
            on_agent_live=self.services.publish,
            spawn=self.tasks.spawn,
            timeouts=Timeouts(dispose=cfg.dispose_grace, send=cfg.send_timeout),
        )

    def __repr__(self) -> str:
        return f"Host(name={self.name!r}, address={self.address!r})"

    # --- addresses -------------------------------------------------------------------------------

    @property
    def address(self) -> str:
        if self.public_url:
            return self.public_url
        bind = self.bind_hosts[0]
        shown = resolve_auto_address() if bind in ("0.0.0.0", "") else bind
        if ":" in shown and not shown.startswith("["):
            shown = f"[{shown}]"
        return f"http://{shown}:{self.port}"

    def _same_host(self, url: str) -> bool:
        return url.rstrip("/") == self.address.rstrip("/")

    # --- lifecycle -------------------------------------------------------------------------------

    def start_background(self) -> Host:
        """Start the loop thread, the zygote and the HTTP server; returns when the host serves."""
        if self._started:
            return self
        self._loop.start()
        try:
            self._loop.run(self._start_async(), START_TIMEOUT)
        except BaseException:
            self._loop.stop()
            raise
        self._started = True
        return self

    async def _start_async(self) -> None:
        from paglets.http.aclient import AsyncHttpClient

        # scratch space starts empty at every start
        shutil.rmtree(self.manager.work_root, ignore_errors=True)
        self.manager.work_root.mkdir(parents=True, exist_ok=True)
        self.aclient = AsyncHttpClient(api_key=self.api_key)
        self.services.bind_client(self.aclient)
        self.manager.start(asyncio.get_running_loop())
        await self.persistence.start()
        await self.movement.start()  # transfer records are back before anyone can ask about them
        server = self._new_server()
        try:
            self.port = await server.start(self.bind_hosts, self.port)
        except BaseException:
            await self.movement.stop()
            await self.manager.stop_all(STOP_GRACE)
            await self.persistence.close()
            raise
        self._server = server
        self.events.host_address = self.address
        if AUTO in self.config.bind_hosts and not self.public_url:
            self.spawn_task(self._watch_binding())
        self._artifact_cleanup = self.tasks.spawn(self._clean_artifacts())
        if self.config.mesh:
            self.mesh.start()
        self.launch.report_sync()
        await self.launch.declare_resident_services()
        restored = await self.persistence.activate_startup()
        await self.launch.start_startup_agents()
        self.events.emit(
            "context-start",
            data={
                "address": self.address,
                "code_version": self.code_version,
                "resident_services": sorted({d.contract.name for d in self.resident.declarations()}),
                "restored": restored,
                "inactive": len(self.persistence.summaries()),
            },
        )

    def _new_server(self) -> Any:
        from paglets.http.server import HttpServer
        from paglets.runtime._routes import build_router

        return HttpServer(
            build_router(self),
            api_key=self.api_key,
            path_prefix=_prefix(self.public_url),
            limits=self.config.http_limits,
            expose_tracebacks=self.config.expose_tracebacks,
        )

    async def _watch_binding(self) -> None:
        """``--bind-public auto``: follow the LAN address (see ``paglets.runtime._binding``)."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.config.bind_watch_interval)
            wanted = await loop.run_in_executor(None, resolve_bind_hosts, self.config.bind_hosts)
            if wanted == self.bind_hosts or self._server is None:
                continue
            old_address, old_server = self.address, self._server
            new_server = self._new_server()
            try:
                await old_server.close(deadline=0.5)  # the port must be free to rebind it
                await new_server.start(wanted, self.port)
            except OSError as exc:
                _log.error(
                    "host %s cannot rebind to %s: %s; keeping %s", self.name, wanted, exc, self.bind_hosts
                )
                restored = self._new_server()
                await restored.start(self.bind_hosts, self.port)
                self._server = restored
                continue
            self._server, self.bind_hosts = new_server, wanted
            self.events.host_address = self.address
            self.mesh.address_changed(old_address)
            self.events.emit(
                "context-rebind",
                data={"old_address": old_address, "new_address": self.address, "bind_hosts": list(wanted)},
            )

    def spawn_task(self, coro: Any) -> None:
        """Run ``coro`` in the background on the loop; the host cancels it when it stops, and reports it
        (``task-failed`` event, log line) if it fails (``paglets.runtime._tasks``)."""
        self.tasks.spawn(coro)

    async def _clean_artifacts(self) -> None:
        """Drop expired artifacts and stale partial uploads, every ``cleanup_interval`` seconds."""
        while True:
            await asyncio.sleep(self.artifacts.cleanup_interval)
            try:
                await self.artifacts.cleanup_async()
            except Exception:
                _log.exception("artifact cleanup failed on host %s", self.name)

    def serve_forever(self) -> None:
        """Start (if needed) and block until ``stop()``; SIGINT/SIGTERM in the main thread shut down."""
        self.start_background()
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, lambda *_: threading.Thread(target=self.shutdown, daemon=True).start())
        while not self._stopped.wait(3600):
            pass

    def stop(self, *, deactivate_active: bool = False) -> None:
        """Stop serving and end every paglet process; with ``deactivate_active`` every active paglet is
        saved first (``shutdown()``). A host that never started does nothing."""
        if not self._started:
            return
        self._started = False
        try:
            self._loop.run(self._stop_async(deactivate_active), STOP_TIMEOUT + SHUTDOWN_BUDGET + 10)
        finally:
            self._loop.stop()
            self.client.close()
            self._stopped.set()

    def shutdown(self) -> None:
        """Stop the host (``stop(deactivate_active=True)``)."""
        self.stop(deactivate_active=True)

    async def _stop_async(self, deactivate_active: bool = False) -> None:
        server, self._server = self._server, None
        if server is not None:
            await server.close(deadline=5.0)
        shutdown: dict[str, Any] = {}
        if deactivate_active:
            saved, unsaved = await self.persistence.deactivate_all(SHUTDOWN_BUDGET)
            shutdown = {"saved": saved, "unsaved": unsaved}
        self.tasks.cancel_all()
        await self.mesh.stop()
        await self.resident.stop()
        await self.movement.stop()
        await self.services.aclose()
        if self._artifact_cleanup is not None:
            self._artifact_cleanup.cancel()
            self._artifact_cleanup = None
        await asyncio.get_running_loop().run_in_executor(None, self.artifacts.close)
        await self.persistence.close()
        await self.manager.stop_all(STOP_GRACE)
        if self.aclient is not None:
            await self.aclient.aclose()
        self.events.emit("context-shutdown", data=shutdown)

    def __enter__(self) -> Host:
        return self.start_background()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self, coro: Any, timeout: float | None = DEFAULT_TIMEOUT) -> Any:
        if not self._started:
            coro.close()
            raise HostError(f"host {self.name} is not started (call start_background())")
        return self._loop.run(coro, timeout)

    # --- creating and disposing ------------------------------------------------------------------

    def create(
        self,
        agent_cls: type[Paglet[Any]],
        state: Any = None,
        *,
        init: Any = None,
        agent_id: str | None = None,
    ) -> PagletProxy:
        """Start a new paglet on this host; returns once ``on_creation`` ran (``run()`` may still run)."""
        agent_name, state_name = _check_paglet_class(agent_cls)
        state_bytes = self._encode_state(agent_cls, state)
        new_id = self._run(
            self.create_async(
                agent_class=agent_name,
                state_class=state_name,
                state=state_bytes,
                init=init,
                agent_id=agent_id,
            )
        )
        return self._proxy(new_id)

    @staticmethod
    def _encode_state(agent_cls: type[Paglet[Any]], state: Any) -> bytes | None:
        if state is None:
            return None
        state_cls = agent_cls.state_class()
        if not isinstance(state, state_cls):
            raise HostError(
                f"state for {agent_cls.__qualname__} must be a {state_cls.__qualname__}, got {state!r}"
            )
        return codec_for(state_cls).encode(state)

    async def create_async(
        self, *, agent_class: str, state_class: str, state: bytes | None, init: Any, agent_id: str | None
    ) -> str:
        return await self.manager.create(
            agent_class=agent_class,
            state_class=state_class,
            state=state,
            init=init,
            agent_id=agent_id,
            exists=lambda aid: self.persistence.summary(aid) is not None,
        )

    def create_remote(
        self,
        target: str,
        agent_cls: type[Paglet[Any]],
        state: Any = None,
        *,
        init: Any = None,
        agent_id: str | None = None,
    ) -> PagletProxy:
        url = self.resolve_host_url(target)
        if self._same_host(url):
            return self.create(agent_cls, state, init=init, agent_id=agent_id)
        agent_name, state_name = _check_paglet_class(agent_cls)
        payload = {
            "agent_class_name": agent_name,
            "state_class_name": state_name,
            "state": None if state is None else _state_wire(state),
            "init": init,
            "agent_id": agent_id,
        }
        reply = self.client.post_json(url + "/agents", payload)
        return PagletProxy.from_wire(reply["proxy"], client=self.client)

    async def create_remote_async(self, target_url: str, **creation: Any) -> Any:
        url = self.resolve_host_url(target_url)
        if self._same_host(url):
            agent_id = await self.create_async(**creation)
            return {"host_url": self.address, "agent_id": agent_id}
        state_cls = resolve_qualified_name(creation["state_class"])
        state = creation["state"]
        payload = {
            "agent_class_name": creation["agent_class"],
            "state_class_name": creation["state_class"],
            "state": None if state is None else _state_wire(codec_for(state_cls).decode(state)),
            "init": creation["init"],
            "agent_id": creation["agent_id"],
        }
        loop = asyncio.get_running_loop()
        reply = await loop.run_in_executor(None, lambda: self.client.post_json(url + "/agents", payload))
        return reply["proxy"]

    def dispose(self, agent_id: str) -> None:
        """Run ``on_disposing`` and the cleanup, end the paglet's process, delete the artifacts it owns."""
        self._run(self.agent_call_async(agent_id, "dispose", {}))

    # --- movement ------------------------------------------------------------------------------------

    def dispatch(self, agent_id: str, target: str | TransferTicket) -> PagletProxy:
        """Move a paglet to ``target`` (URL, mesh name or ticket); returns the proxy of where it is once
        its ``run()`` returned there or it moved on."""
        return self._proxy_for(self._run(self.movement.move(agent_id, target, kind="dispatch"), None))

    def clone(self, agent_id: str, *, target: str | TransferTicket | None = None) -> PagletProxy:
        """Copy a paglet to ``target`` (default: this host); returns the clone's proxy."""
        return self._proxy_for(self._run(self.movement.move(agent_id, target, kind="clone"), None))

    def retract(self, remote_host_url: str, agent_id: str) -> PagletProxy:
        """Pull ``agent_id`` from the host at ``remote_host_url`` (a URL or a mesh name) to this one."""
        url = self.resolve_host_url(remote_host_url)
        if self._same_host(url):
            return self._proxy_for(
                self._run(self.movement.move(agent_id, self.address, kind="retract"), None)
            )
        reply = self.client.post_json(
            f"{url}/agents/{agent_id}/retract", {"target": self.address}, timeout=DEFAULT_TIMEOUT
        )
        return self._proxy_for(reply["proxy"])

    # --- persistence ---------------------------------------------------------------------------------

    def deactivate(self, agent_id: str, request: DeactivationRequest | None = None) -> PagletProxy:
        """Save a paglet to disk and end its process; returns its (inactive) proxy."""
        return self._proxy_for(self._run(self.persistence.deactivate(agent_id, request)))

    def activate(self, agent_id: str) -> PagletProxy:
        """Start an inactive paglet from its record; ``InvalidAgentError`` when there is
        no inactive paglet of that id (also when it is active already, as in 2.0)."""
        return self._proxy_for(self._run(self.agent_call_async(agent_id, "activate", {})))

    def _proxy_for(self, data: Any) -> PagletProxy:
        if isinstance(data, dict) and "proxy" in data:
            data = data["proxy"]
        if not isinstance(data, dict):
            raise HostError(f"unexpected answer {data!r}")
        url, agent_id = str(data["host_url"]), str(data["agent_id"])
        if self._same_host(url):
            return self._proxy(agent_id)
        return PagletProxy(url.rstrip("/"), agent_id, self.client)

    async def forward_waiting(self, items: list[Any], where: dict[str, Any]) -> None:
        """Deliver messages that were waiting for a paglet that moved to its new place.

        A sender that waits gets the error of its message; the error of a message nobody waits for
        (oneway) is reported as a ``message-forward-failed`` event and a log line. If the host stops
        meanwhile, the senders still waiting get a ``HostError``."""
        if not items:
            return
        url, agent_id = str(where["host_url"]), str(where["agent_id"])
        for index, item in enumerate(items):
            future = item.future
            try:
                if self._same_host(url):
                    result = await self.manager.deliver(agent_id, item.message, oneway=item.oneway)
                else:
                    reply = await self.aclient.request_json(
                        "POST",
                        f"{url.rstrip('/')}/agents/{agent_id}/messages",
                        {"message": message_dict(item.message), "oneway": item.oneway},
                    )
                    result = reply.get("result") if isinstance(reply, dict) else None
            except asyncio.CancelledError:
                stopped = HostError(f"host {self.name} stopped before forwarding the message to {url}")
                for rest in items[index:]:
                    if rest.future is not None and not rest.future.done():
                        rest.future.set_exception(stopped)
                raise
            except Exception as exc:
                if future is not None and not future.done():
                    future.set_exception(exc)
                elif future is None:
                    report_failure(
                        self.events,
                        MESSAGE_FORWARD_FAILED,
                        f"forwarding a oneway message to paglet {agent_id} at {url}",
                        exc,
                        agent_id=agent_id,
                        message_id=item.message.message_id,
                        target=url,
                        message_kind=item.message.kind,
                    )
                continue
            if future is not None and not future.done():
                future.set_result(result)

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
        future = self._submit(
            agent_id,
            message,
            oneway=oneway,
            activate_if_inactive=activate_if_inactive,
            no_delay=no_delay,
            deadline=deadline,
        )
        return wait_reply(future, agent_id, message.kind, oneway=oneway, deadline=deadline)

    @property
    def send_timeout(self) -> float | None:
        """Seconds a synchronous send waits for its reply when the caller gives no deadline
        (``Host(send_timeout=...)``; ``None``: no limit)."""
        return self.manager.timeouts.send

    def _submit(
        self,
        agent_id: str,
        message: Message,
        *,
        oneway: bool,
        activate_if_inactive: bool = True,
        no_delay: bool = False,
        deadline: float | None = None,
    ) -> concurrent.futures.Future[Any]:
        """Queue ``message`` from a user thread; an active paglet's mailbox is fed directly (no task)."""
        if not self._started:
            raise HostError(f"host {self.name} is not started (call start_background())")
        if self._loop.in_loop_thread():
            raise HostError("a blocking host call was made from the host's event loop thread")
        wire = message_wire_of(message)
        ctrl = self.manager.controllers.get(agent_id)
        if message.kind == DEACTIVATE_KIND or ctrl is None or ctrl.status != "ready":
            return asyncio.run_coroutine_threadsafe(
                self.deliver_async(
                    agent_id,
                    wire,
                    oneway=oneway,
                    activate_if_inactive=activate_if_inactive,
                    no_delay=no_delay,
                    timeout=deadline if deadline is not None else math.inf,
                ),
                self._loop.loop,
            )
        result: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self.manager.submit_threadsafe(agent_id, wire, oneway=oneway, future=None if oneway else result)
        if oneway:
            result.set_result(None)
        return result

    async def deliver_async(
        self,
        agent_id: str,
        wire: MessageWire,
        *,
        oneway: bool,
        activate_if_inactive: bool = True,
        no_delay: bool = False,
        timeout: float | None = None,
    ) -> Any:
        """Deliver a message on the loop. A synchronous send waits at most ``timeout`` seconds for the
        handler's reply once the message is in the mailbox (``None``: the host's ``send_timeout``;
        ``math.inf``: no limit), then raises ``SendTimeoutError``."""
        if timeout is None:
            timeout = self.send_timeout
        elif timeout == math.inf:
            timeout = None
        if wire.kind == DEACTIVATE_KIND:  # the reserved message
            raw = wire.args.get("request") if isinstance(wire.args, dict) else None
            request = DeactivationRequest.from_wire(raw) if isinstance(raw, dict) else None
            proxy = await self.persistence.deactivate(agent_id, request)
            return None if oneway else {"deactivated": True, "proxy": proxy}
        if (
            agent_id not in self.manager.controllers
            and self.persistence.summary(agent_id) is None
            and self.resident.is_resident(agent_id)
        ):
            await self.resident.ensure_started(
                agent_id
            )  # a lazy resident service starts on its first message
        if agent_id not in self.manager.controllers and self.persistence.summary(agent_id) is not None:
            return await self.persistence.deliver(
                agent_id,
                wire,
                oneway=oneway,
                activate_if_inactive=activate_if_inactive,
                no_delay=no_delay,
                timeout=timeout,
            )
        return await self.manager.deliver(agent_id, wire, oneway=oneway, timeout=timeout)

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
                replies.add_future_reply(FutureReply(self._submit(agent_id, copy, oneway=False)))
        return replies

    def wait_message(self, agent_id: str, timeout: float | None = None) -> bool:
        limit = None if timeout is None else timeout + 5.0
        return bool(self._run(self.manager.wait_message(agent_id, timeout), limit))

    def notify_message(self, agent_id: str) -> None:
        self._run(_value(lambda: self.manager.notify_message(agent_id, all_waiters=False)))

    def notify_all_messages(self, agent_id: str) -> None:
        self._run(_value(lambda: self.manager.notify_message(agent_id, all_waiters=True)))

    def mailbox_status(self, agent_id: str) -> dict[str, Any]:
        counts: dict[str, Any] = self._run(_value(lambda: mailbox_counts(self.manager.get(agent_id))))
        return counts

    # --- ProxyRoute: proxies from this process ---------------------------------------------------

    def route_message(
        self,
        agent_id: str,
        message: Message,
        *,
        oneway: bool,
        activate_if_inactive: bool,
        no_delay: bool,
        timeout: float | None,
    ) -> Any:
        """A proxy's send (``timeout=None``: the host's ``send_timeout``)."""
        deadline = self.send_timeout if timeout is None else timeout
        future = self._submit(
            agent_id,
            message,
            oneway=oneway,
            activate_if_inactive=activate_if_inactive,
            no_delay=no_delay,
            deadline=deadline,
        )
        return wait_reply(future, agent_id, message.kind, oneway=oneway, deadline=deadline)

    def route_message_future(
        self, agent_id: str, message: Message, *, activate_if_inactive: bool, no_delay: bool
    ) -> concurrent.futures.Future[Any]:
        return self._submit(
            agent_id, message, oneway=False, activate_if_inactive=activate_if_inactive, no_delay=no_delay
        )

    def route_call(self, agent_id: str, op: str, args: dict[str, Any], timeout: float | None) -> Any:
        result = self._run(self.agent_call_async(agent_id, op, args), timeout or DEFAULT_TIMEOUT)
        if isinstance(result, dict) and isinstance(result.get("proxy"), dict):
            return self._proxy_for(result["proxy"])
        return result

    async def agent_call_async(self, agent_id: str, op: str, args: dict[str, Any]) -> Any:
        """Control operations on one paglet (shared by proxies, host calls and routes)."""
        if op == "info":
            if agent_id not in self.manager.controllers:
                summary = self.persistence.summary(agent_id)
                if summary is not None:
                    return self.persistence.describe(summary)
            return (await self.manager.describe([agent_id]))[0]
        if op == "dispose":
            if not await self.persistence.dispose(agent_id):
                await self.manager.dispose(agent_id)
            self.files.forget(agent_id, remove_work_dir=True)
            await self.artifacts.delete_owned_by_async(agent_id)
            return {"ok": True}
        if op == "deactivate":
            raw = args.get("request")
            request = DeactivationRequest.from_wire(raw) if isinstance(raw, dict) else None
            return {"proxy": await self.persistence.deactivate(agent_id, request), "ok": True}
        if op == "activate":
            if (
                agent_id in self.manager.controllers
                and self.persistence.summary(agent_id) is None
                and not self.persistence.activating(agent_id)
            ):
                raise InvalidAgentError(f"paglet {agent_id} is already active on host {self.name}")
            return {"proxy": await self.persistence.activate(agent_id)}
        kinds: dict[str, MoveKind] = {"dispatch": "dispatch", "clone": "clone", "retract": "retract"}
        if op in kinds:
            target: Any = args.get("target")
            if isinstance(args.get("ticket"), dict):
                target = TransferTicket.from_wire(args["ticket"])
            if op != "clone" and target is None:
                raise HostError(f"{op} needs a target")
            return {"proxy": await self.movement.move(agent_id, target, kind=kinds[op])}
        raise HostError(f"{op!r} is not available on this host yet")

    def _proxy(self, agent_id: str) -> PagletProxy:
        return PagletProxy(self.address, agent_id, self.client, self)

    # --- queries ---------------------------------------------------------------------------------

    def get_proxy(self, agent_id: str, *, include_inactive: bool = False) -> PagletProxy | None:
        ctrl = self.manager.controllers.get(agent_id)
        if ctrl is not None and ctrl.status in ("ready", "moving"):  # "moving": paused, messages wait
            return self._proxy(agent_id)
        if include_inactive and ctrl is None and self._record_summary(agent_id) is not None:
            return self._proxy(agent_id)
        if include_inactive and ctrl is None and self.resident.is_resident(agent_id):
            return self._proxy(agent_id)  # a lazy resident service not started yet: a message starts it
        return None

    def _record_summary(self, agent_id: str) -> Any:
        """An inactive paglet's summary; a host that is not started reads its records (read-only)."""
        if self._started:
            return self.persistence.summary(agent_id)
        return self.persistence.inspected().summary(agent_id)

    def _record_summaries(self) -> list[Any]:
        if self._started:
            return self.persistence.summaries()
        return self.persistence.inspected().summaries()

    def remote_proxy(self, host_url: str, agent_id: str) -> PagletProxy:
        if self._same_host(host_url):
            return self._proxy(agent_id)
        return PagletProxy(host_url.rstrip("/"), agent_id, self.client)

    def get_proxies(self, state: int = ACTIVE) -> list[PagletProxy]:
        proxies = [self._proxy(aid) for aid in list(self.manager.ready_ids())] if state & ACTIVE else []
        if state & INACTIVE:
            proxies.extend(self._proxy(s.agent_id) for s in self._record_summaries())
        return proxies

    def get_state(self, agent_id: str, state_cls: type[T]) -> T:
        """A fresh snapshot of a paglet's state (active or inactive), decoded as ``state_cls``. A host that
        is not started reads the state of an inactive paglet from its record."""
        if not self._started:
            data = bytes(self.persistence.inspected().read(agent_id).state)
        else:
            data = self._run(self._state_bytes(agent_id))
        return codec_for(state_cls).decode(data)

    async def _state_bytes(self, agent_id: str) -> bytes:
        if agent_id not in self.manager.controllers and self.persistence.summary(agent_id) is not None:
            return bytes((await self.persistence.read(agent_id)).state)
        return await self.manager.state_bytes(agent_id)

    def list_agents(
        self, *, active: bool = True, inactive: bool = False, include_state: bool = False
    ) -> list[Any]:
        """Summaries of the active paglets, then of the inactive ones (``GET /agents``). A
        host that is not started lists its inactive paglets from their records."""
        if not self._started:
            return self._list_records(include_state) if inactive else []
        return list(
            self._run(self.list_agents_async(active=active, inactive=inactive, include_state=include_state))
        )

    def _list_records(self, include_state: bool) -> list[dict[str, Any]]:
        store = self.persistence.inspected()
        out: list[dict[str, Any]] = []
        for summary in store.summaries():
            item = self.persistence.describe(summary)
            if include_state:
                try:
                    item.update(self.persistence.state_fields(store.read(summary.agent_id)))
                except Exception as exc:
                    item["state_error"] = str(exc)
            out.append(item)
        return out

    async def list_agents_async(
        self, *, active: bool, inactive: bool, include_state: bool
    ) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        if active:
            ids = [aid for aid, ctrl in list(self.manager.controllers.items()) if ctrl.status != "starting"]
            out.extend(await self.manager.describe(ids))
            if include_state:
                for item in out:
                    item.update(await self._state_item(item["agent_id"]))
        if inactive:
            for summary in self.persistence.summaries():
                item = self.persistence.describe(summary)
                if include_state:
                    item.update(await self._state_item(summary.agent_id))
                out.append(item)
        return out

    async def _state_item(self, agent_id: str) -> dict[str, Any]:
        from paglets.serialization.codec import dataclass_to_wire

        try:
            ctrl = self.manager.controllers.get(agent_id)
            if ctrl is None:
                return self.persistence.state_fields(await self.persistence.read(agent_id))
            data = await self.manager.state_bytes(agent_id)
            state_cls = resolve_qualified_name(ctrl.state_class)
            return {"state": dataclass_to_wire(codec_for(state_cls).decode(data))}
        except Exception as exc:
            return {"state_error": str(exc)}

    def http_statistics(self) -> ServerStatistics | None:
        """Counters of the host's HTTP server (connections, rejections, timeouts); ``None`` before start."""
        server = self._server
        return None if server is None else server.statistics()

    def health(self) -> dict[str, Any]:
        """``GET /health``; a host that is not started counts its records."""
        controllers = list(self.manager.controllers.values())
        return {
            "name": self.name,
            "address": self.address,
            "active_count": sum(1 for c in controllers if c.status == "ready"),
            "inactive_count": len(self._record_summaries()),
            "code_version": self.code_version,
            "capabilities": list(HOST_CAPABILITIES),
            "tags": list(self.tags),
            "properties": dict(self.host_properties),
            "compute_capacity": dict(self.config.compute_capacity),
            "auto_update_from_git": False,
            "auto_update_restart_scheduled": False,
        }

    def _mesh_event(self, kind: str, data: dict[str, Any]) -> None:
        self.events.emit(kind, data=dict(data))

    def _mesh_self_ref(self) -> HostRef:
        """This host as the mesh sees it (called from any thread)."""
        controllers = list(self.manager.controllers.values())
        store = self.persistence.store if self._started else self.persistence.inspected()
        return HostRef(
            name=self.name,
            url=self.address,
            code_version=self.code_version,
            online=True,
            last_seen=time.time(),
            active_count=sum(1 for c in controllers if c.status == "ready"),
            inactive_count=len(store) if store is not None else 0,
            tags=tuple(self.tags),
            properties=dict(self.host_properties),
        )

    def list_hosts(self, *, online_only: bool = False, include_self: bool = True) -> list[HostRef]:
        """Known hosts of the mesh (sorted by name), this one included unless told not to. ``GET /hosts``
        answers the same refs as JSON."""
        return self.mesh.hosts(online_only=online_only, include_self=include_self)

    def available_hosts(self, *, online_only: bool = True, include_self: bool = True) -> list[HostRef]:
        return self.mesh.hosts(online_only=online_only, include_self=include_self)

    def join_mesh(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Handle another host's join request (``POST /hosts/join``)."""
        reply = self.mesh.accept_join(payload)
        return dict(reply.body)

    def host_status(self, name_or_url: str) -> HostRef | None:
        return self.mesh.lookup(name_or_url)

    def is_host_online(self, name_or_url: str) -> bool:
        return self.mesh.is_online(name_or_url)

    def wait_for_host(self, name_or_url: str, *, timeout: float = 10.0, interval: float = 0.25) -> HostRef:
        """Wait until a host is online in the mesh (woken by membership changes, no polling)."""
        ref: HostRef = self._run(self.mesh.wait_for_host_async(name_or_url, timeout=timeout), timeout + 5.0)
        return ref

    def resolve_host_url(self, name_or_url: str) -> str:
        """The URL of a mesh host name, or an ``http(s)://`` URL itself (normalized);
        ``UnknownHostError`` for a name no member has: names are never looked up outside the mesh."""
        if name_or_url == self.name:
            return self.address
        return self.mesh.resolve_url(name_or_url).rstrip("/")

    # --- services ----------------------------------------------------------------------------------

    def _is_active(self, agent_id: str) -> bool:
        """Whether ``agent_id`` lives on this host for its services: from the moment its process exists
        and its starting hook runs (``on_creation``, ``on_activation``) until it leaves or stops."""
        ctrl = self.manager.controllers.get(agent_id)
        return ctrl is not None and ctrl.status in ("starting", "ready", "moving")

    def _peer_urls(self) -> list[str]:
        return [ref.url for ref in self.mesh.hosts(online_only=True, include_self=False)]

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
        record: ServiceRecord = self._run(self.resident.declare(declaration))
        return record

    def acquire_resident_service_lease(
        self, agent_id: str, service_name: str, *, ttl: float = 60.0
    ) -> dict[str, Any]:
        """Pin a (resident) service paglet for ``ttl`` seconds; starts it if needed."""
        lease: dict[str, Any] = self._run(self.resident.acquire_lease(agent_id, service_name, ttl))
        return lease

    def release_resident_service_lease(self, lease_id: str) -> bool:
        return bool(self._run(_value(lambda: self.resident.release_lease(lease_id))))

    def lease_service_handle(self, handle: Any, *, ttl: float = 60.0) -> Any:
        """A ``ServiceLease`` on the paglet behind ``handle`` (released by a context manager)."""
        from paglets.services.resident import ServiceLease

        return ServiceLease.acquire(handle, ttl=ttl, client=self.client)

    # --- events, listeners, properties -----------------------------------------------------------

    def list_events(self, *, since: int = 0, limit: int = 100) -> list[ContextEvent]:
        return self.events.events_since(since, limit)

    def add_listener(self, listener: ContextListener) -> None:
        self.events.add_listener(listener)

    def remove_listener(self, listener: ContextListener) -> None:
        self.events.remove_listener(listener)

    def get_property(self, key: str, default: Any = None) -> Any:
        with self._properties_lock:
            return self._properties.get(key, default)

    def set_property(self, key: str, value: Any) -> None:
        with self._properties_lock:
            if value is None:
                self._properties.pop(key, None)
            else:
                self._properties[key] = value

    # --- storage ---------------------------------------------------------------------------------

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

    # --- artifacts (same as in a paglet process; see paglets.runtime._artifact_access) -----------

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
        return self._artifact_access.upload_artifact(
            path,
            host_url=host_url,
            owner_agent_id=owner_agent_id,
            name=name,
            compression=compression,
            expires_at=expires_at,
            timeout=timeout,
        )

    def download_artifact(
        self, artifact: Any, target: str | Path, *, move: bool = False, timeout: float | None = None
    ) -> ArtifactRef:
        return self._artifact_access.download_artifact(artifact, target, move=move, timeout=timeout)

    def delete_artifact(self, artifact: Any, *, timeout: float | None = None) -> None:
        self._artifact_access.delete_artifact(artifact, timeout=timeout)

    def resources_for(self, agent_id: str) -> _ResourceView:
        """The resource registry of an active paglet, operated from the host (``status``, ``remove``,
        ``cleanup``); each call is answered by the paglet's process."""
        self.manager.get(agent_id)
        return _ResourceView(self, agent_id)

    async def resource_call_async(self, agent_id: str, op: str, *, name: str = "", reason: str = "") -> Any:
        ctrl = self.manager.ready(agent_id)
        return await ctrl.resources(op, name=name, reason=reason, timeout=self.manager.timeouts.resources)

    def persistent_storage_for(self, agent_id: str, *, quota_bytes: int | None = None) -> ManagedStorage:
        ctrl = self.manager.controllers.get(agent_id)
        if ctrl is None:
            raise InvalidAgentError(f"no paglet {agent_id} on host {self.name}")
        return self._storage(ctrl.agent_class, quota_bytes)

    def _storage(self, agent_class: str, quota_bytes: int | None) -> ManagedStorage:
        quota = quota_bytes if quota_bytes is not None else self.config.persistent_storage_quota_bytes
        key = (agent_class, quota)
        with self._properties_lock:
            storage = self._storages.get(key)
            if storage is None:
                root = self.persistence_dir / "storage" / class_storage_name(agent_class)
                storage = ManagedStorage(root, quota_bytes=quota)
                self._storages[key] = storage
            return storage

    async def storage_call_async(self, agent_class: str, args: dict[str, Any]) -> Any:
        storage = self._storage(agent_class, args.get("quota_bytes"))
        op = args.get("op")
        loop = asyncio.get_running_loop()
        if op == "read_bytes":
            return await loop.run_in_executor(None, storage.read_bytes, str(args["path"]))
        if op == "write_bytes":
            data = args["data"]
            return str(await loop.run_in_executor(None, storage.write_bytes, str(args["path"]), data))
        if op == "delete":
            await loop.run_in_executor(None, storage.delete, str(args["path"]))
            return None
        if op == "clear":
            await loop.run_in_executor(None, storage.clear)
            return None
        if op == "status":
            status = storage.status()
            return {
                "root": str(status.root),
                "used_bytes": status.used_bytes,
                "quota_bytes": status.quota_bytes,
                "available_bytes": status.available_bytes,
            }
        raise HostError(f"unknown storage operation {op!r}")

    def server_statistics(self) -> Any:
        """Counters of the host's HTTP server (``None`` before start)."""
        return None if self._server is None else self._server.statistics()

    def statistics(self) -> dict[str, Any]:
        return {"created_total": self.manager.created_total, "paglets": len(self.manager.controllers)}


# --- helpers ------------------------------------------------------------------------------------


class _ResourceView:
    """``Host.resources_for``: 2.0's host-side view of a paglet's ``ResourceRegistry``."""

    def __init__(self, host: Host, agent_id: str) -> None:
        self._host = host
        self._agent_id = agent_id

    def status(self) -> dict[str, bool]:
        return dict(self._host._run(self._host.resource_call_async(self._agent_id, "status")))

    def remove(self, name: str) -> None:
        self._host._run(self._host.resource_call_async(self._agent_id, "remove", name=name))

    def cleanup(self, *, reason: str = "lifecycle") -> None:
        self._host._run(self._host.resource_call_async(self._agent_id, "cleanup", reason=reason))


def message_dict(wire: MessageWire) -> dict[str, Any]:
    """A ``Message.to_wire()`` dict of an IPC message (extension values turned back into Python)."""
    from paglets.wire.values import decode_value, encode_value

    data: dict[str, Any] = decode_value(encode_value({f: getattr(wire, f) for f in wire.__struct_fields__}))
    return data


def _prefix(public_url: str | None) -> str:
    if not public_url:
        return ""
    from urllib.parse import urlsplit

    return urlsplit(public_url).path.rstrip("/")


def _state_wire(state: Any) -> Any:
    from paglets.serialization.codec import dataclass_to_wire

    return dataclass_to_wire(state)


def _copy_outcome(source: asyncio.Future[Any], target: concurrent.futures.Future[Any]) -> None:
    if target.done():
        return
    if source.cancelled():
        target.cancel()
    elif (exc := source.exception()) is not None:
        target.set_exception(exc)
    else:
        target.set_result(source.result())


async def _value(fn: Any) -> Any:
    """Run a plain function on the loop thread (for reads of loop-owned state)."""
    return fn()


def decode_creation_state(state_class: str, state: Any) -> bytes | None:
    """Binary state for a creation request whose state arrived as a wire dict (HTTP)."""
    if state is None:
        return None
    cls = resolve_qualified_name(state_class)
    if not isinstance(state, dict):
        raise SerializationError(f"state for {state_class} must be an object")
    unknown = unknown_wire_fields(cls, state)
    if unknown:
        names = ", ".join(repr(f"state.{path}") for path in unknown)
        raise RequestError(f"invalid request: unknown field {names} ({cls.__qualname__} has no such field)")
    return codec_for(cls).encode(dataclass_from_wire(cls, state))
