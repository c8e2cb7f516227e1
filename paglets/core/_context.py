"""``PagletContext`` and ``HostFacade``: the boundary between paglets and the runtime.

For authors: docs/implementing/index.md.

Public names are re-exported by ``paglets.core.agent`` (their contract home); import them from there.

A ``PagletContext`` is a capability boundary: a paglet reaches its host only through it, and it forwards
every call to an object implementing :class:`HostFacade` — the in-process ``Host``, or, inside a paglet's
child process, a facade that turns each call into a request to the parent host. ``HostFacade`` is
therefore *the* contract between the authoring API and the runtime; the runtime implements it twice.

Rules the context adds on top of plain forwarding:

- methods acting on "a paglet" take an ``agent_id`` keyword defaulting to the attached paglet (neither
  → ``HostError``);
- ``get_proxy(id, host_url)`` looks locally (inactive paglets included) unless ``host_url`` names another
  host, in which case it builds an unchecked remote proxy (URLs compare without trailing ``/``);
- ``send`` fills an empty ``message.sender`` with this host's address;
- ``dispatch_to``/``clone_to`` resolve a mesh name with ``resolve_host_url`` first;
- ``lease_contract`` registers the lease's release as the suppressed resource ``service-lease:<id>``.

Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Protocol, TypeAlias

from paglets.core._artifact_refs import ARTIFACT_COPY, ArtifactRef, PagletFileRef
from paglets.core._persistency import DeactivationRequest
from paglets.core._resources import ResourceRegistry
from paglets.core._transfer import TransferTicket
from paglets.core.errors import HostError, ServiceContractError, ServiceNotFoundError
from paglets.core.messages import Message, ReplySet
from paglets.core.runtime_values import ServiceScope

if TYPE_CHECKING:
    from paglets.core.agent import Paglet

__all__ = ["ACTIVE", "INACTIVE", "HostFacade", "PagletContext", "Proxy", "ServiceValue", "Target"]

#: ``get_proxies`` state bits.
ACTIVE: Final = 0x1
INACTIVE: Final = 0x2

#: A ``PagletProxy`` (``paglets.remote.proxy``); typed loosely so that this layer does not import the
#: remote layer.
Proxy: TypeAlias = Any
#: Service and mesh values (``ServiceRecord``, ``ServiceContract``, ``ServiceOperation``,
#: ``ServiceHandle``, ``ServiceLease``, ``HostRef``) live in layers above this one; typed loosely.
ServiceValue: TypeAlias = Any
#: Where a paglet moves: a host URL, a mesh host name, or a ticket.
Target: TypeAlias = str | TransferTicket


# --- the runtime boundary ---------------------------------------------------------------------------------


class HostFacade(Protocol):
    """What a ``PagletContext`` needs from its host: the contract between this layer and the runtime.

    Implemented twice by the runtime: by the in-process ``Host`` and by the child-process facade (where
    movement calls accept only the paglet's own id and raise ``InvalidAgentError`` otherwise). Names and
    signatures follow ``Host``. Additions to ``Host``'s own list: the mesh queries
    (``Host.mesh.*`` in paglets 2.0) flattened onto the facade, ``resolve_host_url``, ``remote_proxy``
    and the three artifact calls (2.0 went through ``host.artifacts``/``host.client``).
    """

    @property
    def name(self) -> str: ...
    @property
    def address(self) -> str: ...

    # paglets
    def get_proxy(self, agent_id: str, *, include_inactive: bool = False) -> Proxy | None: ...
    def remote_proxy(self, host_url: str, agent_id: str) -> Proxy:
        """An unchecked proxy to ``agent_id`` on another host (no request is made)."""
        ...

    def get_proxies(self, state: int = ACTIVE) -> list[Proxy]: ...
    def create(
        self,
        agent_cls: type[Paglet[Any]],
        state: Any = None,
        *,
        init: Any = None,
        agent_id: str | None = None,
    ) -> Proxy: ...
    def create_remote(
        self,
        target: str,
        agent_cls: type[Paglet[Any]],
        state: Any = None,
        *,
        init: Any = None,
        agent_id: str | None = None,
    ) -> Proxy: ...
    def dispatch(self, agent_id: str, target: Target) -> Proxy: ...
    def clone(self, agent_id: str, *, target: Target | None = None) -> Proxy: ...
    def deactivate(self, agent_id: str, request: DeactivationRequest | None = None) -> Proxy: ...
    def multicast_message(
        self,
        kind: str | Message,
        args: dict[str, Any] | None = None,
        *,
        exclude: Collection[str] | None = None,
    ) -> ReplySet: ...
    def wait_message(self, agent_id: str, timeout: float | None = None) -> bool: ...
    def notify_message(self, agent_id: str) -> None: ...
    def notify_all_messages(self, agent_id: str) -> None: ...

    # host properties (in memory, host-wide; setting None deletes)
    def get_property(self, key: str, default: Any = None) -> Any: ...
    def set_property(self, key: str, value: Any) -> None: ...

    # mesh
    def available_hosts(
        self, *, online_only: bool = True, include_self: bool = True
    ) -> list[ServiceValue]: ...
    def host_status(self, name_or_url: str) -> ServiceValue | None: ...
    def is_host_online(self, name_or_url: str) -> bool: ...
    def wait_for_host(
        self, name_or_url: str, *, timeout: float = 10.0, interval: float = 0.25
    ) -> ServiceValue: ...
    def resolve_host_url(self, name_or_url: str) -> str:
        """An ``http(s)://`` URL (normalized), or the URL of the mesh member with that name;
        ``UnknownHostError`` when no member has it (names are never looked up in DNS)."""
        ...

    # services
    def advertise_service(
        self,
        agent_id: str,
        name: str,
        *,
        capabilities: Collection[str] | None = None,
        metadata: dict[str, Any] | None = None,
        scope: ServiceScope = ServiceScope.LOCAL,
        ttl: float | None = None,
    ) -> ServiceValue: ...
    def unadvertise_service(self, name: str, *, agent_id: str | None = None) -> list[ServiceValue]: ...
    def lookup_service(
        self, name: str, *, capability: str | None = None, scope: ServiceScope = ServiceScope.LOCAL
    ) -> ServiceValue | None: ...
    def lookup_services(
        self,
        name: str | None = None,
        *,
        capability: str | None = None,
        scope: ServiceScope = ServiceScope.LOCAL,
    ) -> list[ServiceValue]: ...
    def lease_service_handle(self, handle: ServiceValue, *, ttl: float = 60.0) -> ServiceValue: ...

    # resources, storage and registered files of one paglet
    def resources_for(self, agent_id: str) -> Any:
        """The paglet's ``ResourceRegistry`` (in a child: the paglet's own registry)."""
        ...

    def work_dir_for(self, agent_id: str, *, create: bool = True) -> Path: ...
    def persistent_storage_for(self, agent_id: str, *, quota_bytes: int | None = None) -> Any:
        """A ``ManagedStorage`` (in a child: an object with the same methods, run by the host)."""
        ...

    def register_file_for(
        self, agent_id: str, path: Path | str, *, name: str | None = None, mode: str = ARTIFACT_COPY
    ) -> PagletFileRef: ...
    def registered_files_for(self, agent_id: str) -> list[PagletFileRef]: ...
    def unregister_file_for(self, agent_id: str, name_or_ref: str | PagletFileRef) -> None: ...
    def registered_file_path_for(self, agent_id: str, name_or_ref: str | PagletFileRef) -> Path: ...

    # artifacts
    def upload_artifact(
        self,
        path: Path | str,
        *,
        host_url: str | None = None,
        owner_agent_id: str = "",
        name: str | None = None,
        compression: str = "",
        expires_at: float = 0.0,
    ) -> ArtifactRef:
        """Store a file as an artifact on ``host_url`` (None: this host)."""
        ...

    def download_artifact(
        self, artifact: ArtifactRef, target: Path | str, *, move: bool = False
    ) -> ArtifactRef: ...
    def delete_artifact(self, artifact: ArtifactRef) -> None: ...


def _same_url(a: str, b: str) -> bool:
    return a.rstrip("/") == b.rstrip("/")


def _operation_name(operation: ServiceValue | str) -> str:
    name = operation if isinstance(operation, str) else getattr(operation, "name", None)
    if not isinstance(name, str):
        raise ServiceContractError(f"not a service operation: {operation!r}")
    return name


# --- the context ------------------------------------------------------------------------------------------


class PagletContext:
    """A paglet's view of its host: a capability boundary that forwards to a :class:`HostFacade`.

    Methods that act on "a paglet" take an ``agent_id`` keyword that defaults to the attached paglet;
    without either, they raise ``HostError``.
    """

    def __init__(self, host: HostFacade, agent_id: str | None = None) -> None:
        self._host = host
        self._agent_id = agent_id

    def __repr__(self) -> str:
        return f"PagletContext(host={self._host.name!r}, agent_id={self._agent_id!r})"

    @property
    def name(self) -> str:
        """The host's name."""
        return self._host.name

    @property
    def address(self) -> str:
        """The host's URL."""
        return self._host.address

    @property
    def host(self) -> HostFacade:
        """The host (or, in a child process, the host facade)."""
        return self._host

    @property
    def agent_id(self) -> str | None:
        return self._agent_id

    def _owner(self, agent_id: str | None, operation: str) -> str:
        owner = agent_id or self._agent_id
        if owner is None:
            raise HostError(f"{operation} requires an attached paglet or an explicit agent_id")
        return owner

    # --- paglets ------------------------------------------------------------------------------------------

    def get_proxy(self, agent_id: str, host_url: str | None = None) -> Proxy | None:
        """A proxy to a paglet of this host (active or inactive), or an unchecked one on ``host_url``."""
        if host_url is None or _same_url(host_url, self.address):
            return self._host.get_proxy(agent_id, include_inactive=True)
        return self._host.remote_proxy(host_url, agent_id)

    def get_proxies(self, state: int = ACTIVE) -> list[Proxy]:
        """Proxies to this host's paglets; ``state`` is a mask of ``ACTIVE``/``INACTIVE``."""
        return self._host.get_proxies(state)

    def get_property(self, key: str, default: Any = None) -> Any:
        return self._host.get_property(key, default)

    def set_property(self, key: str, value: Any) -> None:
        """Set a host-wide in-memory property (``None`` deletes it)."""
        self._host.set_property(key, value)

    def create_paglet(
        self,
        agent_cls: type[Paglet[Any]],
        state: Any = None,
        *,
        init: Any = None,
        host_url: str | None = None,
    ) -> Proxy:
        """Create a paglet here, or on ``host_url`` when that is another host."""
        if host_url is not None and not _same_url(host_url, self.address):
            return self._host.create_remote(host_url, agent_cls, state, init=init)
        return self._host.create(agent_cls, state, init=init)

    def dispatch(self, agent_id: str, target: Target) -> Proxy:
        return self._host.dispatch(agent_id, target)

    def clone(self, agent_id: str, target: Target | None = None) -> Proxy:
        return self._host.clone(agent_id, target=target)

    def deactivate(self, agent_id: str, request: DeactivationRequest | None = None) -> Proxy:
        return self._host.deactivate(agent_id, request)

    def dispatch_to(self, agent_id: str, name_or_url: str) -> Proxy:
        """Dispatch to a mesh host name or URL."""
        return self.dispatch(agent_id, self._host.resolve_host_url(name_or_url))

    def clone_to(self, agent_id: str, name_or_url: str) -> Proxy:
        """Clone to a mesh host name or URL."""
        return self.clone(agent_id, self._host.resolve_host_url(name_or_url))

    # --- mesh ---------------------------------------------------------------------------------------------

    def available_hosts(self, *, online_only: bool = True, include_self: bool = True) -> list[ServiceValue]:
        return self._host.available_hosts(online_only=online_only, include_self=include_self)

    def host_status(self, name_or_url: str) -> ServiceValue | None:
        return self._host.host_status(name_or_url)

    def is_host_online(self, name_or_url: str) -> bool:
        return self._host.is_host_online(name_or_url)

    def wait_for_host(
        self, name_or_url: str, *, timeout: float = 10.0, interval: float = 0.25
    ) -> ServiceValue:
        """The host's ``HostRef`` once it is online; ``HostError`` after ``timeout`` seconds."""
        return self._host.wait_for_host(name_or_url, timeout=timeout, interval=interval)

    # --- messages -----------------------------------------------------------------------------------------

    def send(self, target_agent_id: str, message: Message, *, host_url: str | None = None) -> Any:
        """Send ``message`` synchronously and return the reply; ``sender`` defaults to this host."""
        proxy = self.get_proxy(target_agent_id, host_url)
        if proxy is None:
            raise HostError(f"no such local paglet: {target_agent_id}")
        if not message.sender:
            message.sender = self.address
        return proxy.send(message)

    def multicast(
        self,
        kind: str | Message,
        args: dict[str, Any] | None = None,
        *,
        exclude: Collection[str] | None = None,
    ) -> ReplySet:
        """Send to every ready paglet of this host (except ``exclude``); replies arrive in a ``ReplySet``."""
        return self._host.multicast_message(kind, args, exclude=exclude)

    def wait_message(self, timeout: float | None = None, *, agent_id: str | None = None) -> bool:
        """Wait on the host-side mailbox condition of a paglet (notified when a message finishes)."""
        return self._host.wait_message(self._owner(agent_id, "wait_message"), timeout)

    def notify_message(self, *, agent_id: str | None = None) -> None:
        self._host.notify_message(self._owner(agent_id, "notify_message"))

    def notify_all_messages(self, *, agent_id: str | None = None) -> None:
        self._host.notify_all_messages(self._owner(agent_id, "notify_all_messages"))

    # --- services -----------------------------------------------------------------------------------------

    def advertise_service(
        self,
        name: str,
        *,
        capabilities: Collection[str] | None = None,
        metadata: dict[str, Any] | None = None,
        scope: ServiceScope = ServiceScope.LOCAL,
        ttl: float | None = None,
        agent_id: str | None = None,
    ) -> ServiceValue:
        return self._host.advertise_service(
            self._owner(agent_id, "advertise_service"),
            name,
            capabilities=capabilities,
            metadata=metadata,
            scope=scope,
            ttl=ttl,
        )

    def unadvertise_service(self, name: str, *, agent_id: str | None = None) -> list[ServiceValue]:
        return self._host.unadvertise_service(name, agent_id=self._owner(agent_id, "unadvertise_service"))

    def lookup_service(
        self, name: str, *, capability: str | None = None, scope: ServiceScope = ServiceScope.LOCAL
    ) -> ServiceValue | None:
        """The proxy reference of the first matching service record, or None."""
        record = self._host.lookup_service(name, capability=capability, scope=scope)
        return None if record is None else record.proxy

    def lookup_services(
        self,
        name: str | None = None,
        *,
        capability: str | None = None,
        scope: ServiceScope = ServiceScope.LOCAL,
    ) -> list[ServiceValue]:
        return self._host.lookup_services(name, capability=capability, scope=scope)

    def advertise_contract(
        self,
        contract: ServiceValue,
        *,
        scope: ServiceScope = ServiceScope.LOCAL,
        ttl: float | None = None,
        metadata: dict[str, Any] | None = None,
        agent_id: str | None = None,
    ) -> ServiceValue:
        """Advertise a typed ``ServiceContract``: its operations become the record's capabilities."""
        return self.advertise_service(
            contract.name,
            capabilities=contract.capabilities,
            metadata=contract.advertise_metadata(metadata),
            scope=scope,
            ttl=ttl,
            agent_id=self._owner(agent_id, "advertise_contract"),
        )

    def lookup_contracts(
        self,
        contract: ServiceValue,
        *,
        operation: ServiceValue | str | None = None,
        scope: ServiceScope = ServiceScope.LOCAL,
    ) -> list[ServiceValue]:
        """``ServiceHandle``s for every record that matches ``contract`` (and offers ``operation``)."""
        capability = None
        if operation is not None:
            capability = _operation_name(operation)
            if capability not in tuple(contract.capabilities):
                raise ServiceContractError(f"contract {contract.name!r} has no operation {capability!r}")
        # The contract builds the ``ServiceHandle``: the services layer sits above this one.
        return [
            contract._handle_for(record, self)
            for record in self.lookup_services(contract.name, capability=capability, scope=scope)
            if contract.matches_record(record)
        ]

    def lookup_contract(
        self,
        contract: ServiceValue,
        *,
        operation: ServiceValue | str | None = None,
        scope: ServiceScope = ServiceScope.LOCAL,
    ) -> ServiceValue | None:
        handles = self.lookup_contracts(contract, operation=operation, scope=scope)
        return handles[0] if handles else None

    def require_contract(
        self,
        contract: ServiceValue,
        *,
        operation: ServiceValue | str | None = None,
        scope: ServiceScope = ServiceScope.LOCAL,
    ) -> ServiceValue:
        """Like ``lookup_contract`` but raises ``ServiceNotFoundError`` when nothing matches."""
        handle = self.lookup_contract(contract, operation=operation, scope=scope)
        if handle is None:
            wanted = f"contract {contract.name!r} version {getattr(contract, 'version', '?')!r}"
            if operation is not None:
                wanted += f" operation {_operation_name(operation)!r}"
            raise ServiceNotFoundError(f"no service {wanted} found in {ServiceScope(scope).value} scope")
        return handle

    def lease_contract(
        self,
        contract: ServiceValue,
        *,
        operation: ServiceValue | str | None = None,
        scope: ServiceScope = ServiceScope.LOCAL,
        ttl: float = 60.0,
    ) -> ServiceValue:
        """Lease a matching service for ``ttl`` seconds.

        The lease's release is registered as the suppressed resource ``service-lease:<lease_id>`` of the
        attached paglet, so the next lifecycle cleanup releases it.
        """
        handle = self.require_contract(contract, operation=operation, scope=scope)
        lease = self._host.lease_service_handle(handle, ttl=ttl)
        if self._agent_id is not None:
            self._host.resources_for(self._agent_id).register(
                f"service-lease:{lease.lease_id}", lease.release, suppress=True
            )
        return lease

    # --- resources, storage, files ------------------------------------------------------------------------

    def resources(self, agent_id: str | None = None) -> ResourceRegistry:
        return self._host.resources_for(self._owner(agent_id, "resources"))  # type: ignore[no-any-return]

    def work_dir(self, *, create: bool = True, agent_id: str | None = None) -> Path:
        """Scratch directory of one paglet instance (wiped when it leaves or is disposed)."""
        return self._host.work_dir_for(self._owner(agent_id, "work_dir"), create=create)

    def persistent_storage(self, *, quota_bytes: int | None = None, agent_id: str | None = None) -> Any:
        """The ``ManagedStorage`` shared by the paglet's class on this host."""
        return self._host.persistent_storage_for(
            self._owner(agent_id, "persistent_storage"), quota_bytes=quota_bytes
        )

    def register_file(
        self,
        path: Path | str,
        *,
        name: str | None = None,
        mode: str = ARTIFACT_COPY,
        agent_id: str | None = None,
    ) -> PagletFileRef:
        """Register a file to travel with the paglet (``mode`` ``"copy"`` or ``"move"``)."""
        return self._host.register_file_for(
            self._owner(agent_id, "register_file"), path, name=name, mode=mode
        )

    def registered_files(self, *, agent_id: str | None = None) -> list[PagletFileRef]:
        return self._host.registered_files_for(self._owner(agent_id, "registered_files"))

    def unregister_file(self, name_or_ref: str | PagletFileRef, *, agent_id: str | None = None) -> None:
        self._host.unregister_file_for(self._owner(agent_id, "unregister_file"), name_or_ref)

    def file_path(self, name_or_ref: str | PagletFileRef, *, agent_id: str | None = None) -> Path:
        """Where a registered file is now (after arrival: inside the work directory)."""
        return self._host.registered_file_path_for(self._owner(agent_id, "file_path"), name_or_ref)

    # --- artifacts ----------------------------------------------------------------------------------------

    def upload_artifact(
        self,
        path: Path | str,
        *,
        host_url: str | None = None,
        owner_agent_id: str | None = None,
        name: str | None = None,
        compression: str = "",
        expires_at: float = 0.0,
    ) -> ArtifactRef:
        """Store a file as an artifact on ``host_url`` (default: this host), owned by the paglet."""
        owner = owner_agent_id if owner_agent_id is not None else (self._agent_id or "")
        return self._host.upload_artifact(
            path,
            host_url=host_url,
            owner_agent_id=owner,
            name=name,
            compression=compression,
            expires_at=expires_at,
        )

    def download_artifact(
        self, artifact: ArtifactRef, target: Path | str, *, move: bool = False
    ) -> ArtifactRef:
        return self._host.download_artifact(artifact, target, move=move)

    def delete_artifact(self, artifact: ArtifactRef) -> None:
        self._host.delete_artifact(artifact)
