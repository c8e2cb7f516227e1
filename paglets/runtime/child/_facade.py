"""The host as a paglet process sees it: every call is a host call over the channel.

``ChildHost`` implements ``HostFacade`` (what ``PagletContext`` forwards to) and ``ProxyRoute`` (so
proxies to paglets on the same host travel over the channel, never over loopback HTTP). Calls that act
on a paglet accept only this process's own paglet for movement and lifecycle operations, as in
paglets 2.0. Host-call operations and their arguments are listed in ``paglets.runtime._hostcalls``.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Collection, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from paglets.artifacts import ArtifactRef, PagletFileRef
from paglets.core.agent import ACTIVE, Paglet
from paglets.core.errors import HostError, InvalidAgentError
from paglets.core.events import CloneEvent, MobilityEvent, PersistencyEvent
from paglets.core.messages import FutureReply, Message, ReplySet
from paglets.core.runtime_values import ServiceScope
from paglets.persistence.persistency import DeactivationPolicy, DeactivationRequest
from paglets.persistence.storage import StorageStatus
from paglets.remote.client import HostClient
from paglets.remote.mesh import HostRef
from paglets.remote.proxy import REPLY_MARGIN, PagletProxy
from paglets.remote.transfer import TransferTicket
from paglets.runtime._artifact_access import ArtifactAccess, HostCallArtifacts
from paglets.runtime._movement import RUN_SETTLE_WAIT
from paglets.serialization.codec import codec_for, qualified_name
from paglets.wire.limits import MAX_SEND_TIMEOUT

if TYPE_CHECKING:
    from paglets.runtime.child.main import ChildRuntime

__all__ = ["ChildHost"]

#: Threads that wait for ``send_future`` replies from this paglet process.
FUTURE_THREADS: Final = 8


def _file_name(name_or_ref: Any) -> str:
    return name_or_ref.name if isinstance(name_or_ref, PagletFileRef) else str(name_or_ref)


def _record(data: Any) -> Any:
    from paglets.services.contracts import ServiceRecord

    return ServiceRecord.from_wire(data)


def _move_timeout(ticket: TransferTicket) -> float:
    """How long a paglet waits for its host to move it: every attempt, then the arrival's run()."""
    attempts = ticket.retries + 1
    return ticket.timeout * attempts + ticket.retry_interval * ticket.retries + RUN_SETTLE_WAIT + 60.0


class _HostStorage:
    """``ManagedStorage`` of the paglet's class, run by the host (which tracks the quota)."""

    def __init__(self, host: ChildHost, quota_bytes: int | None) -> None:
        self._host = host
        self._quota = quota_bytes

    def _call(self, op: str, **args: Any) -> Any:
        return self._host.call("storage", op=op, quota_bytes=self._quota, **args)

    def read_bytes(self, path: str | Path) -> bytes:
        data = self._call("read_bytes", path=str(path))
        return bytes(data)

    def write_bytes(self, path: str | Path, data: bytes) -> Path:
        return Path(self._call("write_bytes", path=str(path), data=bytes(data)))

    def write_text(self, path: str | Path, text: str, *, encoding: str = "utf-8") -> Path:
        return self.write_bytes(path, text.encode(encoding))

    def delete(self, path: str | Path) -> None:
        self._call("delete", path=str(path))

    def clear(self) -> None:
        self._call("clear")

    def status(self) -> StorageStatus:
        data = self._call("status")
        return StorageStatus(
            root=str(data["root"]),
            used_bytes=data["used_bytes"],
            quota_bytes=data["quota_bytes"],
            available_bytes=data["available_bytes"],
        )


class _ChildMesh:
    """``context.host.mesh`` inside a paglet: the query side of the host's ``MeshRegistry``, answered by
    the host (results are ``HostRef`` objects, as on the host itself)."""

    def __init__(self, host: ChildHost) -> None:
        self._host = host
        self._code_version: str | None = None

    @property
    def code_version(self) -> str:
        if self._code_version is None:  # a host's code version never changes while it runs
            self._code_version = str(self._host.call("mesh_code_version"))
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
        self.client = HostClient(api_key=self._config.api_key or "")  # the host's key, never the env
        self._artifacts = ArtifactAccess(
            address=lambda: self.address,
            resolve=self.resolve_host_url,
            client=lambda: self.client,
            local=HostCallArtifacts(self.call),
        )
        self.mesh = _ChildMesh(self)
        self._futures: ThreadPoolExecutor | None = None
        self._futures_lock = threading.Lock()

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

    def call(self, op: str, timeout: float | None = None, /, **args: Any) -> Any:
        return self._runtime.call_host(op, args, timeout)

    def _state_args(self, paglet: Paglet[Any]) -> dict[str, Any]:
        """The paglet's state, snapshotted here in the calling thread (which may hold the paglet's lock)
        and sent ahead in a handoff segment; the host call names the segment."""
        with paglet.locked():
            data = codec_for(type(paglet.state)).encode(paglet.state)
        ref = self._runtime.channel.send_large(data)
        return {"state_segment": [ref.segment_id, ref.length]}

    def _own(self, agent_id: str, operation: str) -> None:
        if agent_id != self._config.agent_id:
            raise InvalidAgentError(f"a paglet can only {operation} itself, not {agent_id}")

    def _proxy(self, data: Any) -> PagletProxy | None:
        if data is None:
            return None
        url, agent_id = str(data["host_url"]), str(data["agent_id"])
        local = url.rstrip("/") == self.address.rstrip("/")
        return PagletProxy(url, agent_id, self.client, self if local else None)

    def _required_proxy(self, data: Any) -> PagletProxy:
        proxy = self._proxy(data)
        if proxy is None:
            raise HostError("host returned no proxy")
        return proxy

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
    ) -> Any:
        # the host bounds a synchronous send (``timeout``, or its send_timeout when None) and answers
        # SendTimeoutError; this process waits a little longer, so that it gets that answer
        deadline = timeout if timeout is not None else self._config.send_timeout
        wait = (deadline if deadline is not None else MAX_SEND_TIMEOUT) + REPLY_MARGIN
        return self.call(
            "deliver",
            wait,
            agent_id=agent_id,
            message=message.to_wire(),
            oneway=oneway,
            activate_if_inactive=activate_if_inactive,
            no_delay=no_delay,
            deadline=timeout,
        )

    def route_message_future(
        self, agent_id: str, message: Message, *, activate_if_inactive: bool, no_delay: bool
    ) -> Future[Any]:
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

    def route_call(self, agent_id: str, op: str, args: dict[str, Any], timeout: float | None) -> Any:
        result = self.call("agent_call", timeout, agent_id=agent_id, op=op, args=args)
        if isinstance(result, dict) and "proxy" in result and isinstance(result["proxy"], dict):
            return self._required_proxy(result["proxy"])
        return result

    # --- paglets ---------------------------------------------------------------------------------

    def get_proxy(self, agent_id: str, *, include_inactive: bool = False) -> PagletProxy | None:
        return self._proxy(self.call("get_proxy", agent_id=agent_id, include_inactive=include_inactive))

    def remote_proxy(self, host_url: str, agent_id: str) -> PagletProxy:
        local = host_url.rstrip("/") == self.address.rstrip("/")
        return PagletProxy(host_url, agent_id, self.client, self if local else None)

    def get_proxies(self, state: int = ACTIVE) -> list[PagletProxy]:
        return [self._required_proxy(p) for p in self.call("get_proxies", state=state)]

    def list_agents(self, *, active: bool = True, inactive: bool = False, include_state: bool = False) -> Any:
        return self.call("list_agents", active=active, inactive=inactive, include_state=include_state)

    def health(self) -> Any:
        return self.call("health")

    def _creation_args(
        self, agent_cls: type[Paglet[Any]], state: Any, init: Any, agent_id: str | None
    ) -> Any:
        state_cls = agent_cls.state_class()
        state_bytes = codec_for(state_cls).encode(state) if state is not None else None
        return {
            "agent_class": qualified_name(agent_cls),
            "state_class": qualified_name(state_cls),
            "state": state_bytes,
            "init": init,
            "agent_id": agent_id,
        }

    def create(
        self,
        agent_cls: type[Paglet[Any]],
        state: Any = None,
        *,
        init: Any = None,
        agent_id: str | None = None,
    ) -> PagletProxy:
        return self._required_proxy(
            self.call("create", **self._creation_args(agent_cls, state, init, agent_id))
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
        args = self._creation_args(agent_cls, state, init, agent_id)
        return self._required_proxy(self.call("create_remote", target_url=target, **args))

    def dispose(self, agent_id: str) -> None:
        self.call("agent_call", agent_id=agent_id, op="dispose", args={})

    def dispatch(self, agent_id: str, target: str | TransferTicket) -> PagletProxy:
        """Self-dispatch: the host checks the target, ``on_dispatching`` and the resource
        cleanup run here in the calling thread, then the host moves the paglet; returns where it is."""
        self._own(agent_id, "dispatch")
        paglet = self._own_paglet(agent_id)
        ticket = TransferTicket.from_target(target)
        info = self.call(
            "move", ticket.timeout + 10.0, kind="dispatch", phase="preflight", ticket=ticket.to_wire()
        )
        paglet.on_dispatching(
            MobilityEvent(
                agent_id=agent_id,
                host_name=self.name,
                host_address=self.address,
                source_host_name=self.name,
                source_host_address=self.address,
                target_host_name=str(info["name"]),
                target_host_address=str(info["address"]),
                reason="dispatch",
            )
        )
        paglet.resources.cleanup(reason="dispatch")
        result = self.call(
            "move",
            _move_timeout(ticket),
            kind="dispatch",
            phase="complete",
            ticket=ticket.to_wire(),
            **self._state_args(paglet),
        )
        return self._required_proxy(result)

    def clone(self, agent_id: str, *, target: str | TransferTicket | None = None) -> PagletProxy:
        """Self-clone: ``on_cloning`` here, the host copies the paglet, then ``on_cloned`` here."""
        self._own(agent_id, "clone")
        paglet = self._own_paglet(agent_id)
        ticket = TransferTicket.from_target(target if target is not None else self.address)
        info = self.call(
            "move", ticket.timeout + 10.0, kind="clone", phase="preflight", ticket=ticket.to_wire()
        )
        clone_id = uuid.uuid4().hex
        event = CloneEvent(
            agent_id=agent_id,
            host_name=self.name,
            host_address=self.address,
            source_agent_id=agent_id,
            clone_agent_id=clone_id,
            source_host_name=self.name,
            source_host_address=self.address,
            target_host_name=str(info["name"]),
            target_host_address=str(info["address"]),
        )
        paglet.on_cloning(event)
        result = self.call(
            "move",
            _move_timeout(ticket),
            kind="clone",
            phase="complete",
            ticket=ticket.to_wire(),
            clone_id=clone_id,
            **self._state_args(paglet),
        )
        paglet.on_cloned(event)
        return self._required_proxy(result)

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
        result = self.call(
            "deactivate_self", request=request.to_wire(), policy=policy.to_wire(), **self._state_args(paglet)
        )
        return self._required_proxy(result)

    def multicast_message(
        self,
        kind: str | Message,
        args: dict[str, Any] | None = None,
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

    def _own_paglet(self, agent_id: str) -> Paglet[Any]:
        self._own(agent_id, "wait for messages of")
        paglet = self._runtime.paglet
        if paglet is None:
            raise HostError("paglet is not running")
        return paglet

    # --- properties, mesh ------------------------------------------------------------------------

    def get_property(self, key: str, default: Any = None) -> Any:
        return self.call("get_property", key=key, default=default)

    def set_property(self, key: str, value: Any) -> None:
        self.call("set_property", key=key, value=value)

    def available_hosts(self, *, online_only: bool = True, include_self: bool = True) -> list[HostRef]:
        refs = self.call("available_hosts", online_only=online_only, include_self=include_self)
        return [HostRef.from_wire(r) for r in refs]

    def host_status(self, name_or_url: str) -> HostRef | None:
        ref = self.call("host_status", name_or_url=name_or_url)
        return None if ref is None else HostRef.from_wire(ref)

    def is_host_online(self, name_or_url: str) -> bool:
        return bool(self.call("is_host_online", name_or_url=name_or_url))

    def wait_for_host(self, name_or_url: str, *, timeout: float = 10.0, interval: float = 0.25) -> HostRef:
        return HostRef.from_wire(
            self.call("wait_for_host", timeout + 5.0, name_or_url=name_or_url, timeout=timeout)
        )

    def resolve_host_url(self, name_or_url: str) -> str:
        return str(self.call("resolve_host_url", name_or_url=name_or_url))

    # --- services (host-side registry) -----------------------------------------------------------

    def advertise_service(
        self,
        agent_id: str,
        name: str,
        *,
        capabilities: Collection[str] | None = None,
        metadata: dict[str, Any] | None = None,
        scope: ServiceScope = ServiceScope.LOCAL,
        ttl: float | None = None,
    ) -> Any:
        return _record(
            self.call(
                "advertise_service",
                agent_id=agent_id,
                name=name,
                capabilities=list(capabilities or ()),
                metadata=metadata or {},
                scope=ServiceScope(scope).value,
                ttl=ttl,
            )
        )

    def unadvertise_service(self, name: str, *, agent_id: str | None = None) -> list[Any]:
        removed = self.call("unadvertise_service", name=name, agent_id=agent_id or self.agent_id)
        return [_record(r) for r in removed]

    def lookup_service(
        self, name: str, *, capability: str | None = None, scope: ServiceScope = ServiceScope.LOCAL
    ) -> Any:
        found = self.call("lookup_service", name=name, capability=capability, scope=ServiceScope(scope).value)
        return None if found is None else _record(found)

    def lookup_services(
        self,
        name: str | None = None,
        *,
        capability: str | None = None,
        scope: ServiceScope = ServiceScope.LOCAL,
    ) -> list[Any]:
        found = self.call(
            "lookup_services", name=name, capability=capability, scope=ServiceScope(scope).value
        )
        return [_record(r) for r in found]

    def lease_service_handle(self, handle: Any, *, ttl: float = 60.0) -> Any:
        from paglets.services.resident import ServiceLease

        return ServiceLease.acquire(handle, ttl=ttl, client=self.client)

    # --- resources, storage, files ---------------------------------------------------------------

    def resources_for(self, agent_id: str) -> Any:
        return self._own_paglet(agent_id).resources

    def work_dir_for(self, agent_id: str, *, create: bool = True) -> Path:
        self._own(agent_id, "use the work directory of")
        path = Path(self._config.work_dir)
        if create:
            path.mkdir(parents=True, exist_ok=True)
        return path

    def persistent_storage_for(self, agent_id: str, *, quota_bytes: int | None = None) -> Any:
        self._own(agent_id, "use the storage of")
        return _HostStorage(self, quota_bytes)

    def register_file_for(
        self, agent_id: str, path: Path | str, *, name: str | None = None, mode: str = "copy"
    ) -> PagletFileRef:
        self._own(agent_id, "register files of")
        return PagletFileRef.from_wire(self.call("register_file", path=str(path), name=name, mode=mode))

    def registered_files_for(self, agent_id: str) -> list[PagletFileRef]:
        self._own(agent_id, "list the files of")
        return [PagletFileRef.from_wire(r) for r in self.call("registered_files")]

    def unregister_file_for(self, agent_id: str, name_or_ref: Any) -> None:
        self._own(agent_id, "unregister files of")
        self.call("unregister_file", name=_file_name(name_or_ref))

    def registered_file_path_for(self, agent_id: str, name_or_ref: Any) -> Path:
        self._own(agent_id, "read the files of")
        return Path(self.call("registered_file_path", name=_file_name(name_or_ref)))

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
        artifact: ArtifactRef | Mapping[str, Any],
        target: Path | str,
        *,
        move: bool = False,
        timeout: float | None = None,
    ) -> ArtifactRef:
        return self._artifacts.download_artifact(artifact, target, move=move, timeout=timeout)

    def delete_artifact(
        self, artifact: ArtifactRef | Mapping[str, Any], *, timeout: float | None = None
    ) -> None:
        self._artifacts.delete_artifact(artifact, timeout=timeout)
