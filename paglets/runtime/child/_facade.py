"""The host as a paglet process sees it: every call is a typed host call over the channel.

``ChildHost`` implements ``HostFacade`` (what ``PagletContext`` forwards to) and ``ProxyRoute`` (so
proxies to paglets on the same host travel over the channel, never over loopback HTTP). Each call builds
a request Struct of ``paglets.wire.control`` and reads the reply type that request declares (mypy checks
both against the host's handlers). Calls that act on a paglet accept only this process's own paglet for
movement and lifecycle operations, as in paglets 2.0.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Collection, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TypeVar

import msgspec

from paglets.artifacts import ArtifactRef, PagletFileRef
from paglets.core.agent import ACTIVE, Paglet, PagletState
from paglets.core.errors import HostError, InvalidAgentError
from paglets.core.events import CloneEvent, MobilityEvent, PersistencyEvent
from paglets.core.messages import FutureReply, Message, ReplySet
from paglets.core.runtime_values import ServiceScope
from paglets.persistence.persistency import DeactivationPolicy, DeactivationRequest
from paglets.persistence.storage import StorageStatus
from paglets.remote._mesh_ref import HostRef
from paglets.remote.proxy import REPLY_MARGIN, PagletProxy
from paglets.remote.transfer import TransferTicket
from paglets.runtime._artifact_access import ArtifactAccess, HostCallArtifacts
from paglets.runtime._deadlines import RUN_SETTLE_WAIT
from paglets.runtime._wireforms import file_ref_from, host_ref_from, service_record_from
from paglets.runtime.resources import ResourceRegistry
from paglets.serialization.codec import codec_for, qualified_name
from paglets.services.contracts import ServiceHandle, ServiceRecord
from paglets.services.resident import ServiceLease
from paglets.wire.control import (
    AdvertiseService,
    AgentRequest,
    AvailableHosts,
    CreateAgent,
    CreateRemote,
    DeactivateSelf,
    DeliverMessage,
    DisposeAgent,
    GetProperty,
    GetProxies,
    GetProxy,
    HealthReply,
    HostHealth,
    HostStatus,
    IsHostOnline,
    ListAgents,
    LookupService,
    LookupServices,
    MeshCodeVersion,
    MoveKind,
    MovePreflight,
    MoveSelf,
    ProxyRef,
    RegisteredFilePath,
    RegisteredFiles,
    RegisterFile,
    Request,
    ResolveHostUrl,
    SetProperty,
    StateSegment,
    StorageClear,
    StorageDelete,
    StorageRead,
    StorageStatusRequest,
    StorageWrite,
    TargetInfo,
    UnadvertiseService,
    UnregisterFile,
    WaitForHost,
)
from paglets.wire.ipc import MessageWire
from paglets.wire.limits import MAX_SEND_TIMEOUT
from paglets.wire.values import encode_value, prepare_value

if TYPE_CHECKING:
    from paglets.remote.client import HostClient
    from paglets.runtime.child.main import ChildRuntime

__all__ = ["ChildHost"]

R = TypeVar("R")

#: Threads that wait for ``send_future`` replies from this paglet process.
FUTURE_THREADS: Final = 8


def _file_name(name_or_ref: str | PagletFileRef) -> str:
    return name_or_ref.name if isinstance(name_or_ref, PagletFileRef) else str(name_or_ref)


def _move_timeout(ticket: TransferTicket) -> float:
    """How long a paglet waits for its host to move it: every attempt, then the arrival's run()."""
    attempts = ticket.retries + 1
    return ticket.timeout * attempts + ticket.retry_interval * ticket.retries + RUN_SETTLE_WAIT + 60.0


class _HostStorage:
    """``ManagedStorage`` of the paglet's class, run by the host (which tracks the quota)."""

    def __init__(self, host: ChildHost, quota_bytes: int | None) -> None:
        self._host = host
        self._quota = quota_bytes

    def read_bytes(self, path: str | Path) -> bytes:
        return bytes(self._host.call(StorageRead(str(path), self._quota)))

    def write_bytes(self, path: str | Path, data: bytes) -> Path:
        return Path(self._host.call(StorageWrite(str(path), bytes(data), self._quota)))

    def write_text(self, path: str | Path, text: str, *, encoding: str = "utf-8") -> Path:
        return self.write_bytes(path, text.encode(encoding))

    def delete(self, path: str | Path) -> None:
        self._host.call(StorageDelete(str(path), self._quota))

    def clear(self) -> None:
        self._host.call(StorageClear(self._quota))

    def status(self) -> StorageStatus:
        status = self._host.call(StorageStatusRequest(self._quota))
        return StorageStatus(status.root, status.used_bytes, status.quota_bytes, status.available_bytes)


class _ChildMesh:
    """``context.host.mesh`` inside a paglet: the query side of the host's ``MeshRegistry``, answered by
    the host (results are ``HostRef`` objects, as on the host itself)."""

    def __init__(self, host: ChildHost) -> None:
        self._host = host
        self._code_version: str | None = None

    @property
    def code_version(self) -> str:
        if self._code_version is None:  # a host's code version never changes while it runs
            self._code_version = self._host.call(MeshCodeVersion())
        return self._code_version

    def hosts(self, *, online_only: bool = True, include_self: bool = True) -> list[HostRef]:
        return self._host.available_hosts(online_only=online_only, include_self=include_self)

    def lookup(self, name_or_url: str) -> HostRef | None:
        return self._host.host_status(name_or_url)

    def is_online(self, name_or_url: str) -> bool:
        return self._host.is_host_online(name_or_url)

    def wait_for_host(self, name_or_url: str, *, timeout: float = 10.0, interval: float = 0.25) -> HostRef:
        return self._host.wait_for_host(name_or_url, timeout=timeout, interval=interval)

    def resolve_url(self, name_or_url: str) -> str:
        return self._host.resolve_host_url(name_or_url)


class ChildHost:
    """See the module docstring."""

    def __init__(self, runtime: ChildRuntime) -> None:
        self._runtime = runtime
        self._config = runtime.config
        self._client: HostClient | None = None
        self._client_lock = threading.Lock()
        self._artifacts = ArtifactAccess(
            address=lambda: self.address,
            resolve=self.resolve_host_url,
            client=lambda: self.client,
            local=HostCallArtifacts(self.call),
        )
        self.mesh = _ChildMesh(self)
        self._futures: ThreadPoolExecutor | None = None
        self._futures_lock = threading.Lock()

    @property
    def client(self) -> HostClient:
        """The HTTP client for other hosts, with the host's key (never the environment's), made on first
        use: a paglet that never talks HTTP itself does not load the HTTP stack."""
        with self._client_lock:
            if self._client is None:
                from paglets.remote.client import HostClient

                self._client = HostClient(api_key=self._config.api_key or "")
            return self._client

    # --- plumbing --------------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self._config.host_name

    @property
    def address(self) -> str:
        return self._config.host_address

    @property
    def agent_id(self) -> str:
        return self._config.agent_id

    def call(self, request: Request[R], timeout: float | None = None, /) -> R:
        """Ask the host (``paglets.wire.control``); its reply, of the type the request declares."""
        return self._runtime.call_host(request, timeout)

    def _sent_state(self, paglet: Paglet[PagletState]) -> StateSegment:
        """The paglet's state, snapshotted here in the calling thread (which may hold the paglet's lock)
        and sent ahead in a handoff segment; the host call names the segment."""
        with paglet.locked():
            data = codec_for(type(paglet.state)).encode(paglet.state)
        ref = self._runtime.channel.send_large(data)
        return StateSegment(ref.segment_id, ref.length)

    def _own(self, agent_id: str, operation: str) -> None:
        if agent_id != self._config.agent_id:
            raise InvalidAgentError(f"a paglet can only {operation} itself, not {agent_id}")

    def _proxy(self, where: ProxyRef) -> PagletProxy:
        return self.remote_proxy(where.host_url, where.agent_id)

    # --- ProxyRoute ------------------------------------------------------------------------------

    def route_message(
        self,
        agent_id: str,
        message: Message,
        *,
        oneway: bool,
        activate_if_inactive: bool,
        no_delay: bool,
        timeout: float | None,
    ) -> object:
        # the host bounds a synchronous send (``timeout``, or its send_timeout when None) and answers
        # SendTimeoutError; this process waits a little longer, so that it gets that answer
        deadline = timeout if timeout is not None else self._config.send_timeout
        wait = (deadline if deadline is not None else MAX_SEND_TIMEOUT) + REPLY_MARGIN
        request = DeliverMessage(
            agent_id,
            msgspec.Raw(encode_value(self._message_wire(message))),
            oneway=oneway,
            activate_if_inactive=activate_if_inactive,
            no_delay=no_delay,
            # a deadline outside (0, MAX_SEND_TIMEOUT] means the host's send_timeout, as it always did
            deadline=timeout if timeout is not None and 0 < timeout <= MAX_SEND_TIMEOUT else None,
        )
        return self.call(request, wait)

    def _message_wire(self, message: Message) -> MessageWire:
        """A message as the host gets it (the host checks it; an empty sender is this host)."""
        return MessageWire(
            kind=message.kind,
            args=prepare_value(message.args),
            arg=prepare_value(message.arg),
            sender=message.sender or self.address,
            reply_to=message.reply_to,
            priority=message.priority,
            message_type=message.message_type,
            timestamp=message.timestamp,
            message_id=message.message_id,
        )

    def route_message_future(
        self, agent_id: str, message: Message, *, activate_if_inactive: bool, no_delay: bool
    ) -> Future[object]:
        with self._futures_lock:
            if self._futures is None:
                self._futures = ThreadPoolExecutor(FUTURE_THREADS, thread_name_prefix="paglets-future")
            pool = self._futures
        return pool.submit(
            self.route_message,
            agent_id,
            message,
            oneway=False,
            activate_if_inactive=activate_if_inactive,
            no_delay=no_delay,
            timeout=None,
        )

    def route_call(self, request: AgentRequest[R], timeout: float | None) -> R:
        return self.call(request, timeout)

    # --- paglets ---------------------------------------------------------------------------------

    def get_proxy(self, agent_id: str, *, include_inactive: bool = False) -> PagletProxy | None:
        where = self.call(GetProxy(agent_id, include_inactive))
        return None if where is None else self._proxy(where)

    def remote_proxy(self, host_url: str, agent_id: str) -> PagletProxy:
        local = host_url.rstrip("/") == self.address.rstrip("/")
        return PagletProxy(host_url, agent_id, self.client, self if local else None)

    def get_proxies(self, state: int = ACTIVE) -> list[PagletProxy]:
        return [self._proxy(where) for where in self.call(GetProxies(state))]

    def list_agents(
        self, *, active: bool = True, inactive: bool = False, include_state: bool = False
    ) -> list[dict[str, object]]:
        return self.call(ListAgents(active, inactive, include_state))

    def health(self) -> dict[str, object]:
        reply: HealthReply = self.call(HostHealth())
        return msgspec.structs.asdict(reply)

    def _creation(
        self, agent_cls: type[Paglet[Any]], state: object, init: object, agent_id: str | None
    ) -> CreateAgent:
        state_cls = agent_cls.state_class()
        state_bytes = codec_for(state_cls).encode(state) if state is not None else None
        return CreateAgent(
            qualified_name(agent_cls), qualified_name(state_cls), state_bytes, prepare_value(init), agent_id
        )

    def create(
        self,
        agent_cls: type[Paglet[Any]],
        state: object = None,
        *,
        init: object = None,
        agent_id: str | None = None,
    ) -> PagletProxy:
        return self._proxy(self.call(self._creation(agent_cls, state, init, agent_id)))

    def create_remote(
        self,
        target: str,
        agent_cls: type[Paglet[Any]],
        state: object = None,
        *,
        init: object = None,
        agent_id: str | None = None,
    ) -> PagletProxy:
        return self._proxy(self.call(CreateRemote(target, self._creation(agent_cls, state, init, agent_id))))

    def dispose(self, agent_id: str) -> None:
        self.call(DisposeAgent(agent_id))

    def _preflight(self, kind: MoveKind, ticket: TransferTicket) -> TargetInfo:
        return self.call(MovePreflight(kind, ticket.to_wire()), ticket.timeout + 10.0)

    def dispatch(self, agent_id: str, target: str | TransferTicket) -> PagletProxy:
        """Self-dispatch: the host checks the target, ``on_dispatching`` and the resource
        cleanup run here in the calling thread, then the host moves the paglet; returns where it is."""
        self._own(agent_id, "dispatch")
        paglet = self._own_paglet(agent_id)
        ticket = TransferTicket.from_target(target)
        info = self._preflight("dispatch", ticket)
        paglet.on_dispatching(
            MobilityEvent(
                agent_id=agent_id,
                host_name=self.name,
                host_address=self.address,
                source_host_name=self.name,
                source_host_address=self.address,
                target_host_name=info.name,
                target_host_address=info.address,
                reason="dispatch",
            )
        )
        paglet.resources.cleanup(reason="dispatch")
        move = MoveSelf("dispatch", ticket.to_wire(), None, self._sent_state(paglet))
        return self._proxy(self.call(move, _move_timeout(ticket)))

    def clone(self, agent_id: str, *, target: str | TransferTicket | None = None) -> PagletProxy:
        """Self-clone: ``on_cloning`` here, the host copies the paglet, then ``on_cloned`` here."""
        self._own(agent_id, "clone")
        paglet = self._own_paglet(agent_id)
        ticket = TransferTicket.from_target(target if target is not None else self.address)
        info = self._preflight("clone", ticket)
        clone_id = uuid.uuid4().hex
        event = CloneEvent(
            agent_id=agent_id,
            host_name=self.name,
            host_address=self.address,
            source_agent_id=agent_id,
            clone_agent_id=clone_id,
            source_host_name=self.name,
            source_host_address=self.address,
            target_host_name=info.name,
            target_host_address=info.address,
        )
        paglet.on_cloning(event)
        move = MoveSelf("clone", ticket.to_wire(), clone_id, self._sent_state(paglet))
        where = self.call(move, _move_timeout(ticket))
        paglet.on_cloned(event)
        return self._proxy(where)

    def deactivate(self, agent_id: str, request: DeactivationRequest | None = None) -> PagletProxy:
        """Self-deactivation: policy, ``on_deactivating`` and the cleanup run here in the
        calling thread, then the host saves the state and ends this process once the handler returns."""
        self._own(agent_id, "deactivate")
        paglet = self._own_paglet(agent_id)
        request = request or DeactivationRequest(source="self")
        policy = paglet.deactivation_policy(request)
        if not isinstance(policy, DeactivationPolicy):
            raise HostError(f"deactivation_policy() returned {policy!r}, not a DeactivationPolicy")
        paglet.on_deactivating(
            PersistencyEvent(
                agent_id=agent_id,
                host_name=self.name,
                host_address=self.address,
                reason=request.reason,
                request=request,
                policy=policy,
            )
        )
        paglet.resources.cleanup(reason="deactivate")
        deactivation = DeactivateSelf(request.to_wire(), policy.to_wire(), self._sent_state(paglet))
        return self._proxy(self.call(deactivation))

    def multicast_message(
        self,
        kind: str | Message,
        args: dict[str, object] | None = None,
        *,
        exclude: Collection[str] | None = None,
    ) -> ReplySet:
        """Send to every active paglet on this host (unlike paglets 2.0, this works inside a paglet)."""
        message = kind if isinstance(kind, Message) else Message(kind, args or {})
        skip = set(exclude or ())
        replies = ReplySet()
        for proxy in self.get_proxies(ACTIVE):
            if proxy.agent_id in skip:
                continue
            copy = Message.from_wire(message.to_wire())
            if proxy.agent_id == self.agent_id:
                # this paglet's own handler is busy running the caller: answer with its reply later
                replies.add_future_reply(
                    FutureReply(
                        self.route_message_future(
                            proxy.agent_id, copy, activate_if_inactive=False, no_delay=False
                        )
                    )
                )
            else:
                replies.add_future_reply(proxy.send_future(copy))
        return replies

    def wait_message(self, agent_id: str, timeout: float | None = None) -> bool:
        paglet = self._own_paglet(agent_id)
        return paglet.wait_message(timeout)

    def notify_message(self, agent_id: str) -> None:
        self._own_paglet(agent_id).notify_message()

    def notify_all_messages(self, agent_id: str) -> None:
        self._own_paglet(agent_id).notify_all_messages()

    def _own_paglet(self, agent_id: str) -> Paglet[PagletState]:
        self._own(agent_id, "wait for messages of")
        paglet = self._runtime.paglet
        if paglet is None:
            raise HostError("paglet is not running")
        return paglet

    # --- properties, mesh ------------------------------------------------------------------------

    def get_property(self, key: str, default: object = None) -> object:
        return self.call(GetProperty(key, prepare_value(default)))

    def set_property(self, key: str, value: object) -> None:
        self.call(SetProperty(key, prepare_value(value)))

    def available_hosts(self, *, online_only: bool = True, include_self: bool = True) -> list[HostRef]:
        return [host_ref_from(ref) for ref in self.call(AvailableHosts(online_only, include_self))]

    def host_status(self, name_or_url: str) -> HostRef | None:
        ref = self.call(HostStatus(name_or_url))
        return None if ref is None else host_ref_from(ref)

    def is_host_online(self, name_or_url: str) -> bool:
        return self.call(IsHostOnline(name_or_url))

    def wait_for_host(self, name_or_url: str, *, timeout: float = 10.0, interval: float = 0.25) -> HostRef:
        return host_ref_from(self.call(WaitForHost(name_or_url, timeout), timeout + 5.0))

    def resolve_host_url(self, name_or_url: str) -> str:
        return self.call(ResolveHostUrl(name_or_url))

    # --- services (host-side registry) -----------------------------------------------------------

    def advertise_service(
        self,
        agent_id: str,
        name: str,
        *,
        capabilities: Collection[str] | None = None,
        metadata: Mapping[str, object] | None = None,
        scope: ServiceScope = ServiceScope.LOCAL,
        ttl: float | None = None,
    ) -> ServiceRecord:
        request = AdvertiseService(
            name,
            agent_id,
            list(capabilities or ()),
            prepare_value(metadata or {}),
            ServiceScope(scope).value,
            ttl,
        )
        return service_record_from(self.call(request))

    def unadvertise_service(self, name: str, *, agent_id: str | None = None) -> list[ServiceRecord]:
        removed = self.call(UnadvertiseService(name, agent_id or self.agent_id))
        return [service_record_from(r) for r in removed]

    def lookup_service(
        self, name: str, *, capability: str | None = None, scope: ServiceScope = ServiceScope.LOCAL
    ) -> ServiceRecord | None:
        found = self.call(LookupService(name, capability, ServiceScope(scope).value))
        return None if found is None else service_record_from(found)

    def lookup_services(
        self,
        name: str | None = None,
        *,
        capability: str | None = None,
        scope: ServiceScope = ServiceScope.LOCAL,
    ) -> list[ServiceRecord]:
        found = self.call(LookupServices(name, capability, ServiceScope(scope).value))
        return [service_record_from(r) for r in found]

    def lease_service_handle(self, handle: ServiceHandle, *, ttl: float = 60.0) -> ServiceLease:
        return ServiceLease.acquire(handle, ttl=ttl, client=self.client)

    # --- resources, storage, files ---------------------------------------------------------------

    def resources_for(self, agent_id: str) -> ResourceRegistry:
        return self._own_paglet(agent_id).resources

    def work_dir_for(self, agent_id: str, *, create: bool = True) -> Path:
        self._own(agent_id, "use the work directory of")
        path = Path(self._config.work_dir)
        if create:
            path.mkdir(parents=True, exist_ok=True)
        return path

    def persistent_storage_for(self, agent_id: str, *, quota_bytes: int | None = None) -> _HostStorage:
        self._own(agent_id, "use the storage of")
        return _HostStorage(self, quota_bytes)

    def register_file_for(
        self, agent_id: str, path: Path | str, *, name: str | None = None, mode: str = "copy"
    ) -> PagletFileRef:
        self._own(agent_id, "register files of")
        return file_ref_from(self.call(RegisterFile(str(path), name, mode)))

    def registered_files_for(self, agent_id: str) -> list[PagletFileRef]:
        self._own(agent_id, "list the files of")
        return [file_ref_from(ref) for ref in self.call(RegisteredFiles())]

    def unregister_file_for(self, agent_id: str, name_or_ref: str | PagletFileRef) -> None:
        self._own(agent_id, "unregister files of")
        self.call(UnregisterFile(_file_name(name_or_ref)))

    def registered_file_path_for(self, agent_id: str, name_or_ref: str | PagletFileRef) -> Path:
        self._own(agent_id, "read the files of")
        return Path(self.call(RegisteredFilePath(_file_name(name_or_ref))))

    # --- artifacts (this host's by path, others' over HTTP: paglets.runtime._artifact_access) ----------

    def upload_artifact(
        self,
        path: Path | str,
        *,
        host_url: str | None = None,
        owner_agent_id: str = "",
        name: str | None = None,
        compression: str = "",
        expires_at: float = 0.0,
        timeout: float | None = None,
    ) -> ArtifactRef:
        return self._artifacts.upload_artifact(
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
        target: Path | str,
        *,
        move: bool = False,
        timeout: float | None = None,
    ) -> ArtifactRef:
        return self._artifacts.download_artifact(artifact, target, move=move, timeout=timeout)

    def delete_artifact(
        self, artifact: ArtifactRef | Mapping[str, object], *, timeout: float | None = None
    ) -> None:
        self._artifacts.delete_artifact(artifact, timeout=timeout)
