"""Small adapters the ``Host`` wires between its collaborators, so that each depends on a narrow shape.

- :class:`HostNames`: mesh names and URLs to URLs (this host's own name included);
- :class:`PeerHttp`: the host's async HTTP client of the current run (made at start, closed at stop);
- :class:`HostSite`: the ``MovementSite`` the movement engine works with (``_move_site.py``);
- :class:`MovementPort`: the movement engine's operations in the control plane's types;
- :class:`Leftovers`: what a disposed paglet leaves behind (registered files, work dir, artifacts);
- :class:`ResourceView`: ``Host.resources_for``, 2.0's host-side view of a paglet's resources.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

import msgspec

from paglets.core.errors import HostError
from paglets.http.aclient import AsyncHttpClient
from paglets.remote.transfer import TransferTicket
from paglets.wire.control import HealthReply, MoveAction, MoveKind, ProxyRef, TargetInfo
from paglets.wire.ipc import ResourceOp

if TYPE_CHECKING:
    from paglets.artifacts import ArtifactStore
    from paglets.core.context_events import ContextEventLog
    from paglets.remote.client import HostClient
    from paglets.remote.mesh import HostRef
    from paglets.runtime._config import HostConfig
    from paglets.runtime._controller import MailboxItem, PagletController, Snapshot
    from paglets.runtime._files import FileRegistry
    from paglets.runtime._forwarding import Forwarding
    from paglets.runtime._move_site import MoveAgents, MoveRecords
    from paglets.runtime._movement import MovementEngine
    from paglets.runtime._paglets import Timeouts

    _StatusCall: TypeAlias = Coroutine[Any, Any, dict[str, bool]]

__all__ = ["HostNames", "HostSite", "Leftovers", "MovementPort", "PeerHttp", "ResourceView"]


class _Mesh(Protocol):
    def resolve_url(self, name_or_url: str) -> str: ...
    def hosts(self, *, online_only: bool, include_self: bool) -> list[HostRef]: ...


class HostNames:
    """``resolve``: the URL of a mesh host name, or an ``http(s)://`` URL itself (normalized);
    ``UnknownHostError`` for a name no member has (names are never looked up outside the mesh)."""

    def __init__(self, name: str, address: Callable[[], str], mesh: _Mesh) -> None:
        self._name = name
        self._address = address
        self._mesh = mesh

    def resolve(self, name_or_url: str) -> str:
        if name_or_url == self._name:
            return self._address()
        return self._mesh.resolve_url(name_or_url).rstrip("/")

    def same_host(self, url: str) -> bool:
        return url.rstrip("/") == self._address().rstrip("/")

    def peer_urls(self) -> list[str]:
        """The URLs of the online peers of the mesh."""
        return [ref.url for ref in self._mesh.hosts(online_only=True, include_self=False)]


class PeerHttp:
    """The host's ``AsyncHttpClient`` for talking to other hosts, one per run of the host's loop."""

    def __init__(self, api_key: str | None) -> None:
        self._api_key = api_key
        self.client: AsyncHttpClient | None = None

    def open(self) -> AsyncHttpClient:
        self.client = AsyncHttpClient(api_key=self._api_key)
        return self.client

    async def close(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            await client.aclose()

    async def post_json(self, url: str, body: dict[str, object]) -> object:
        if self.client is None:
            raise HostError("host is not started")
        reply: object = await self.client.request_json("POST", url, body)
        return reply


class _Directory(Protocol):
    def health(self) -> HealthReply: ...


class _Forwarder(Protocol):
    async def forward_waiting(self, items: Sequence[MailboxItem], where: ProxyRef) -> None: ...


class HostSite:
    """The host as the movement engine sees it (``MovementSite``), made of the host's collaborators."""

    def __init__(
        self,
        *,
        name: str,
        address: Callable[[], str],
        code_version: str,
        config: HostConfig,
        events: ContextEventLog,
        manager: MoveAgents,
        persistence: MoveRecords,
        files: FileRegistry,
        artifacts: ArtifactStore,
        client: HostClient,
        peers: PeerHttp,
        names: HostNames,
        directory: _Directory,
        router: _Forwarder,
        forwarding: Forwarding,
    ) -> None:
        self._forwarding = forwarding
        self.name = name
        self._address = address
        self.code_version = code_version
        self.config = config
        self.persistence_dir = config.persistence_dir
        self.events = events
        self.manager = manager
        self.persistence = persistence
        self.files = files
        self.artifacts = artifacts
        self.client = client
        self._peers = peers
        self._names = names
        self._directory = directory
        self._router = router
        #: Called before an active paglet leaves (its checkpoint is dropped: ``_checkpoints.py``).
        self.on_leaving: Callable[[str], Coroutine[Any, Any, None]] | None = None

    async def leaving(self, agent_id: str) -> None:
        if self.on_leaving is not None:
            await self.on_leaving(agent_id)

    @property
    def address(self) -> str:
        return self._address()

    @property
    def aclient(self) -> AsyncHttpClient:
        if self._peers.client is None:
            raise HostError(f"host {self.name} is not started")
        return self._peers.client

    def resolve_host_url(self, name_or_url: str) -> str:
        return self._names.resolve(name_or_url)

    def health(self) -> dict[str, Any]:
        return msgspec.structs.asdict(self._directory.health())

    async def forward_waiting(self, items: Sequence[MailboxItem], where: dict[str, str]) -> None:
        await self._router.forward_waiting(items, ProxyRef(str(where["host_url"]), str(where["agent_id"])))

    async def moved_away(self, agent_id: str, where: dict[str, str]) -> None:
        await self._forwarding.record(agent_id, ProxyRef(str(where["host_url"]), str(where["agent_id"])))


class MovementPort:
    """The movement engine in the control plane's types (replies as ``ProxyRef``/``TargetInfo``)."""

    def __init__(self, engine: MovementEngine) -> None:
        self._engine = engine
        #: Activates a paglet that idle passivation saved, so that it moves as if it had stayed active.
        self.wake: Callable[[str], Coroutine[Any, Any, None]] | None = None
        #: ``(kind, seconds, ok)`` of every move started here (the host's metrics).
        self.observe: Callable[[str, float, bool], None] = lambda kind, seconds, ok: None

    async def move_agent(
        self, agent_id: str, target: str | TransferTicket | None, kind: MoveAction
    ) -> ProxyRef:
        if self.wake is not None:
            await self.wake(agent_id)
        started = time.monotonic()
        try:
            where = await self._engine.move(agent_id, target, kind=kind)
        except BaseException:
            self.observe(kind, time.monotonic() - started, False)
            raise
        self.observe(kind, time.monotonic() - started, True)
        return ProxyRef(str(where["host_url"]), str(where["agent_id"]))

    async def preflight_self(self, agent_id: str, ticket: TransferTicket) -> TargetInfo:
        engine = self._engine
        info = await engine.preflight(ticket, await engine._resolve(ticket), agent_id=agent_id)
        return TargetInfo(
            name=str(info["name"]),
            address=str(info["address"]),
            code_version=str(info.get("code_version") or ""),
            capabilities=[str(c) for c in info.get("capabilities") or ()],
        )

    async def move_self(
        self,
        agent_id: str,
        ticket: TransferTicket,
        kind: MoveKind,
        clone_id: str | None,
        snapshot: Snapshot | None,
    ) -> ProxyRef:
        where = await self._engine.move(
            agent_id, ticket, kind=kind, hooks_in_child=False, clone_id=clone_id, snapshot=snapshot
        )
        return ProxyRef(str(where["host_url"]), str(where["agent_id"]))


class Leftovers:
    """Registered files (with the work dir) and owned artifacts of a disposed paglet."""

    def __init__(self, files: FileRegistry, artifacts: ArtifactStore) -> None:
        self._files = files
        self._artifacts = artifacts

    def forget_files(self, agent_id: str) -> None:
        self._files.forget(agent_id, remove_work_dir=True)

    async def delete_artifacts(self, agent_id: str) -> None:
        await self._artifacts.delete_owned_by_async(agent_id)


class _Ready(Protocol):
    """The active paglets (``PagletManager``)."""

    @property
    def timeouts(self) -> Timeouts: ...
    def ready(self, agent_id: str) -> PagletController: ...


class ResourceView:
    """2.0's host-side view of a paglet's ``ResourceRegistry`` (``status``, ``remove``, ``cleanup``); each
    call is answered by the paglet's process. ``run`` runs a coroutine on the host's loop and waits."""

    def __init__(
        self,
        agents: _Ready,
        run: Callable[[Coroutine[Any, Any, dict[str, bool]]], dict[str, bool]],
        agent_id: str,
    ) -> None:
        self._agents = agents
        self._run = run
        self._agent_id = agent_id

    def _call(self, op: ResourceOp, *, name: str = "", reason: str = "") -> dict[str, bool]:
        agents = self._agents

        async def call() -> dict[str, bool]:
            ctrl = agents.ready(self._agent_id)
            await ctrl.resources(op, name=name, reason=reason, timeout=agents.timeouts.resources)
            return dict(ctrl.resource_status)  # every resource call answers the registry's status

        return self._run(call())

    def status(self) -> dict[str, bool]:
        return self._call("status")

    def remove(self, name: str) -> None:
        self._call("remove", name=name)

    def cleanup(self, *, reason: str = "lifecycle") -> None:
        self._call("cleanup", reason=reason)
