"""Handlers of a paglet process's host calls (request tags 32-127 of ``paglets.wire.control``).

What a paglet asks its host that is not an HTTP operation: proxies of its neighbours, host properties,
mesh queries, its own move or deactivation (after it ran its leaving hook in its own thread), its
class's managed storage, its registered files, the host's artifact store, and the service registry.
Operations on the calling paglet take its identity from the caller, never from the request.

Artifacts travel by path, never inline: ``UploadArtifact`` names a file the host copies into its store
(the paglet process and its host share the filesystem), ``LocateArtifact`` answers where a blob is so
that the paglet process copies it itself (``paglets.runtime._artifact_access``).
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable, Collection
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypeVar

from paglets.artifacts import ArtifactRef, PagletFileRef, require_artifact_id
from paglets.core.errors import HostError
from paglets.persistence.persistency import DeactivationPolicy, DeactivationRequest
from paglets.persistence.storage import ManagedStorage
from paglets.remote.mesh import HostRef
from paglets.remote.transfer import TransferTicket
from paglets.runtime._control import Caller, ControlTable, PagletCaller, paglet_caller
from paglets.runtime._wireforms import (
    to_artifact_ref_wire,
    to_file_ref_wire,
    to_host_ref_wire,
    to_service_record_wire,
)
from paglets.services.contracts import ServiceRecord
from paglets.wire.control import (
    AdvertiseService,
    ArtifactLocation,
    ArtifactRefWire,
    AvailableHosts,
    DeactivateSelf,
    DeleteArtifact,
    FileRefWire,
    GetProperty,
    GetProxies,
    GetProxy,
    HostRefWire,
    HostStatus,
    IsHostOnline,
    LocateArtifact,
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
    ResolveHostUrl,
    ServiceRecordWire,
    SetProperty,
    StorageClear,
    StorageDelete,
    StorageRead,
    StorageStatusReply,
    StorageStatusRequest,
    StorageWrite,
    TargetInfo,
    UnadvertiseService,
    UnregisterFile,
    UploadArtifact,
    WaitForHost,
)

if TYPE_CHECKING:
    from paglets.runtime._controller import Snapshot

__all__ = ["HostProperties", "PagletOps"]

T = TypeVar("T")


class HostProperties:
    """Host properties: in memory, host-wide, shared by the host's process and its paglets (setting
    ``None`` deletes a key). Usable from any thread."""

    def __init__(self) -> None:
        self._values: dict[str, object] = {}
        self._lock = threading.Lock()

    def get(self, key: str, default: object = None) -> object:
        with self._lock:
            return self._values.get(key, default)

    def set(self, key: str, value: object) -> None:
        with self._lock:
            if value is None:
                self._values.pop(key, None)
            else:
                self._values[key] = value


# --- what the handlers need ----------------------------------------------------------------------------


class Directory(Protocol):
    def reachable(self, agent_id: str, *, include_inactive: bool) -> bool: ...
    def agent_ids(self, state: int) -> list[str]: ...


class Mesh(Protocol):
    """The mesh queries (``MeshRegistry``) and the host's name resolution (``Host.resolve_host_url``)."""

    def hosts(self, *, online_only: bool, include_self: bool) -> list[HostRef]: ...
    def lookup(self, name_or_url: str) -> HostRef | None: ...
    def is_online(self, name_or_url: str) -> bool: ...
    async def wait_for_host_async(self, name_or_url: str, *, timeout: float) -> HostRef: ...


class SelfMover(Protocol):
    """A paglet's own move (``MovementEngine``)."""

    async def preflight_self(self, agent_id: str, ticket: TransferTicket) -> TargetInfo: ...
    async def move_self(
        self,
        agent_id: str,
        ticket: TransferTicket,
        kind: MoveKind,
        clone_id: str | None,
        snapshot: Snapshot | None,
    ) -> ProxyRef: ...


class SelfDeactivation(Protocol):
    """A paglet's own deactivation (``Persistence.deactivate``)."""

    async def deactivate(
        self,
        agent_id: str,
        request: DeactivationRequest | None,
        *,
        decided_policy: DeactivationPolicy | None = None,
        snapshot: Snapshot | None = None,
    ) -> ProxyRef: ...


class Storages(Protocol):
    def storage(self, agent_class: str, quota_bytes: int | None = None) -> ManagedStorage: ...


class Files(Protocol):
    """Registered files (``FileRegistry``)."""

    def register(
        self, agent_id: str, path: str | Path, *, name: str | None = None, mode: str = "copy"
    ) -> PagletFileRef: ...
    def refs(self, agent_id: str) -> list[PagletFileRef]: ...
    def unregister(self, agent_id: str, name_or_ref: str) -> None: ...
    def path(self, agent_id: str, name_or_ref: str) -> Path: ...


class Artifacts(Protocol):
    """The host's artifact store (``ArtifactStore``)."""

    async def create_from_file_async(
        self,
        path: Path | str,
        *,
        owner_agent_id: str = "",
        name: str | None = None,
        compression: str = "",
        expires_at: float = 0.0,
    ) -> ArtifactRef: ...
    def metadata(self, artifact_id: str) -> ArtifactRef: ...
    def blob_path(self, artifact_id: str) -> Path: ...
    async def delete_async(self, artifact_id: str) -> bool: ...


class Services(Protocol):
    """The service directory (``HostServices``)."""

    def advertise(
        self,
        agent_id: str,
        name: str,
        *,
        capabilities: Collection[str] | None = None,
        metadata: dict[str, object] | None = None,
        scope: str = "local",
        ttl: float | None = None,
        held: list[ServiceRecord] | None = None,
    ) -> ServiceRecord: ...
    def unadvertise(
        self, name: str, *, agent_id: str | None = None, held: list[ServiceRecord] | None = None
    ) -> list[ServiceRecord]: ...
    async def lookup(
        self, name: str | None = None, *, capability: str | None = None, scope: str = "local"
    ) -> list[ServiceRecord]: ...


async def _blocking(fn: Callable[[], T]) -> T:
    return await asyncio.get_running_loop().run_in_executor(None, fn)


# --- the handlers ----------------------------------------------------------------------------------------


class PagletOps:
    """See the module docstring."""

    def __init__(
        self,
        *,
        address: Callable[[], str],
        code_version: str,
        resolve: Callable[[str], str],
        directory: Directory,
        properties: HostProperties,
        mesh: Mesh,
        mover: SelfMover,
        deactivation: SelfDeactivation,
        storages: Storages,
        files: Files,
        artifacts: Artifacts,
        services: Services,
        is_prepared: Callable[[PagletCaller], bool],
    ) -> None:
        self._address = address
        self._code_version = code_version
        self._resolve = resolve
        self._directory = directory
        self._properties = properties
        self._mesh = mesh
        self._mover = mover
        self._deactivation = deactivation
        self._storages = storages
        self._files = files
        self._artifacts = artifacts
        self._services = services
        self._is_prepared = is_prepared

    def register(self, table: ControlTable) -> None:
        table.on(GetProxy, self.get_proxy)
        table.on(GetProxies, self.get_proxies)
        table.on(GetProperty, self.get_property)
        table.on(SetProperty, self.set_property)
        table.on(AvailableHosts, self.available_hosts)
        table.on(MeshCodeVersion, self.mesh_code_version)
        table.on(HostStatus, self.host_status)
        table.on(IsHostOnline, self.is_host_online)
        table.on(WaitForHost, self.wait_for_host)
        table.on(ResolveHostUrl, self.resolve_host_url)
        table.on(MovePreflight, self.move_preflight)
        table.on(MoveSelf, self.move_self)
        table.on(DeactivateSelf, self.deactivate_self)
        table.on(StorageRead, self.storage_read)
        table.on(StorageWrite, self.storage_write)
        table.on(StorageDelete, self.storage_delete)
        table.on(StorageClear, self.storage_clear)
        table.on(StorageStatusRequest, self.storage_status)
        table.on(RegisterFile, self.register_file)
        table.on(RegisteredFiles, self.registered_files)
        table.on(UnregisterFile, self.unregister_file)
        table.on(RegisteredFilePath, self.registered_file_path)
        table.on(UploadArtifact, self.upload_artifact)
        table.on(LocateArtifact, self.locate_artifact)
        table.on(DeleteArtifact, self.delete_artifact)
        table.on(AdvertiseService, self.advertise_service)
        table.on(UnadvertiseService, self.unadvertise_service)
        table.on(LookupServices, self.lookup_services)
        table.on(LookupService, self.lookup_service)

    # --- paglets and properties ----------------------------------------------------------------------

    async def get_proxy(self, request: GetProxy, caller: Caller) -> ProxyRef | None:
        if self._directory.reachable(request.agent_id, include_inactive=request.include_inactive):
            return ProxyRef(self._address(), request.agent_id)
        return None

    async def get_proxies(self, request: GetProxies, caller: Caller) -> list[ProxyRef]:
        address = self._address()
        return [ProxyRef(address, agent_id) for agent_id in self._directory.agent_ids(request.state)]

    async def get_property(self, request: GetProperty, caller: Caller) -> object:
        return self._properties.get(request.key, request.default)

    async def set_property(self, request: SetProperty, caller: Caller) -> None:
        self._properties.set(request.key, request.value)

    # --- the mesh ------------------------------------------------------------------------------------

    async def available_hosts(self, request: AvailableHosts, caller: Caller) -> list[HostRefWire]:
        refs = self._mesh.hosts(online_only=request.online_only, include_self=request.include_self)
        return [to_host_ref_wire(ref) for ref in refs]

    async def mesh_code_version(self, request: MeshCodeVersion, caller: Caller) -> str:
        return self._code_version

    async def host_status(self, request: HostStatus, caller: Caller) -> HostRefWire | None:
        ref = self._mesh.lookup(request.name_or_url)
        return None if ref is None else to_host_ref_wire(ref)

    async def is_host_online(self, request: IsHostOnline, caller: Caller) -> bool:
        return self._mesh.is_online(request.name_or_url)

    async def wait_for_host(self, request: WaitForHost, caller: Caller) -> HostRefWire:
        return to_host_ref_wire(
            await self._mesh.wait_for_host_async(request.name_or_url, timeout=request.timeout)
        )

    async def resolve_host_url(self, request: ResolveHostUrl, caller: Caller) -> str:
        return self._resolve(request.name_or_url)

    # --- the calling paglet's own move and deactivation ----------------------------------------------

    async def move_preflight(self, request: MovePreflight, caller: Caller) -> TargetInfo:
        """Self-initiated dispatch or clone, step 1; the paglet runs its leaving hook next."""
        paglet = paglet_caller(caller, request)
        return await self._mover.preflight_self(paglet.agent_id, TransferTicket.from_wire(request.ticket))

    async def move_self(self, request: MoveSelf, caller: Caller) -> ProxyRef:
        """Step 2: the paglet ran its leaving hook and cleanup in its calling thread; move it."""
        paglet = paglet_caller(caller, request)
        snapshot = None if request.state_segment is None else paglet.sent_state(request.state_segment)
        ticket = TransferTicket.from_wire(request.ticket)
        return await self._mover.move_self(paglet.agent_id, ticket, request.kind, request.clone_id, snapshot)

    async def deactivate_self(self, request: DeactivateSelf, caller: Caller) -> ProxyRef:
        """The paglet ran ``deactivation_policy``, ``on_deactivating`` and its cleanup."""
        paglet = paglet_caller(caller, request)
        deactivation = DeactivationRequest.from_wire(request.request)
        policy = DeactivationPolicy.from_wire(request.policy)
        snapshot = None if request.state_segment is None else paglet.sent_state(request.state_segment)
        return await self._deactivation.deactivate(
            paglet.agent_id, deactivation, decided_policy=policy, snapshot=snapshot
        )

    # --- managed storage of the calling paglet's class ----------------------------------------------

    def _storage(
        self,
        caller: Caller,
        request: StorageRead | StorageWrite | StorageDelete | StorageClear | StorageStatusRequest,
    ) -> ManagedStorage:
        return self._storages.storage(paglet_caller(caller, request).agent_class, request.quota_bytes)

    async def storage_read(self, request: StorageRead, caller: Caller) -> bytes:
        storage = self._storage(caller, request)
        return await _blocking(lambda: storage.read_bytes(request.path))

    async def storage_write(self, request: StorageWrite, caller: Caller) -> str:
        storage = self._storage(caller, request)
        return str(await _blocking(lambda: storage.write_bytes(request.path, request.data)))

    async def storage_delete(self, request: StorageDelete, caller: Caller) -> None:
        storage = self._storage(caller, request)
        await _blocking(lambda: storage.delete(request.path))

    async def storage_clear(self, request: StorageClear, caller: Caller) -> None:
        await _blocking(self._storage(caller, request).clear)

    async def storage_status(self, request: StorageStatusRequest, caller: Caller) -> StorageStatusReply:
        status = self._storage(caller, request).status()
        return StorageStatusReply(
            str(status.root), status.used_bytes, status.quota_bytes, status.available_bytes
        )

    # --- registered files of the calling paglet ------------------------------------------------------

    async def register_file(self, request: RegisterFile, caller: Caller) -> FileRefWire:
        agent_id = paglet_caller(caller, request).agent_id
        ref = await _blocking(
            lambda: self._files.register(agent_id, request.path, name=request.name, mode=request.mode)
        )
        return to_file_ref_wire(ref)

    async def registered_files(self, request: RegisteredFiles, caller: Caller) -> list[FileRefWire]:
        agent_id = paglet_caller(caller, request).agent_id
        return [to_file_ref_wire(ref) for ref in self._files.refs(agent_id)]

    async def unregister_file(self, request: UnregisterFile, caller: Caller) -> None:
        agent_id = paglet_caller(caller, request).agent_id
        self._files.unregister(agent_id, request.name)

    async def registered_file_path(self, request: RegisteredFilePath, caller: Caller) -> str:
        agent_id = paglet_caller(caller, request).agent_id
        return str(self._files.path(agent_id, request.name))

    # --- the host's artifact store (by path; see the module docstring) ---------------------------------

    async def upload_artifact(self, request: UploadArtifact, caller: Caller) -> ArtifactRefWire:
        paglet = paglet_caller(caller, request)
        if not os.path.isabs(request.path):
            raise HostError("upload_artifact needs the absolute path of a file")
        ref = await self._artifacts.create_from_file_async(
            Path(request.path),
            owner_agent_id=paglet.agent_id if request.owner_agent_id is None else request.owner_agent_id,
            name=request.name,
            compression=request.compression,
            expires_at=request.expires_at,
        )
        return to_artifact_ref_wire(ref)

    async def locate_artifact(self, request: LocateArtifact, caller: Caller) -> ArtifactLocation:
        ref = self._artifacts.metadata(require_artifact_id(request.artifact_id))  # TransferError: unknown
        return ArtifactLocation(to_artifact_ref_wire(ref), str(self._artifacts.blob_path(ref.artifact_id)))

    async def delete_artifact(self, request: DeleteArtifact, caller: Caller) -> None:
        await self._artifacts.delete_async(require_artifact_id(request.artifact_id))

    # --- services ------------------------------------------------------------------------------------

    def _held(self, caller: Caller, agent_id: str) -> list[ServiceRecord] | None:
        """The held-services list of a paglet prepared by an uncommitted move (see ``_services``)."""
        if caller is not None and agent_id == caller.agent_id and self._is_prepared(caller):
            return caller.held_services
        return None

    async def advertise_service(self, request: AdvertiseService, caller: Caller) -> ServiceRecordWire:
        agent_id = request.agent_id or paglet_caller(caller, request).agent_id
        record = self._services.advertise(
            agent_id,
            request.name,
            capabilities=request.capabilities,
            metadata=request.metadata,
            scope=request.scope or "local",
            ttl=request.ttl,
            held=self._held(caller, agent_id),
        )
        return to_service_record_wire(record)

    async def unadvertise_service(
        self, request: UnadvertiseService, caller: Caller
    ) -> list[ServiceRecordWire]:
        agent_id = request.agent_id or None
        held_id = agent_id or (caller.agent_id if caller is not None else "")
        removed = self._services.unadvertise(
            request.name, agent_id=agent_id, held=self._held(caller, held_id)
        )
        return [to_service_record_wire(r) for r in removed]

    async def lookup_services(self, request: LookupServices, caller: Caller) -> list[ServiceRecordWire]:
        found = await self._services.lookup(
            request.name, capability=request.capability, scope=request.scope or "local"
        )
        return [to_service_record_wire(r) for r in found]

    async def lookup_service(self, request: LookupService, caller: Caller) -> ServiceRecordWire | None:
        found = await self._services.lookup(
            request.name, capability=request.capability, scope=request.scope or "local"
        )
        return to_service_record_wire(found[0]) if found else None
