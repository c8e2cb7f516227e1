"""Handlers of the operations any caller may ask (request tags 1-31 of ``paglets.wire.control``).

These are the operations of the HTTP control plane on paglets and on the host (``GET /agents``,
``POST /agents/{id}/dispatch``, ``/messages``, ``/health``, leases, ...), which proxies and paglet
processes ask too. :class:`AgentOps` registers one handler per request type on the host's
``ControlTable``; each depends only on the narrow protocols below.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from paglets.core._ids import check_agent_id
from paglets.core.errors import HostError, InvalidAgentError
from paglets.persistence.persistency import DeactivationRequest
from paglets.remote.transfer import TransferTicket
from paglets.runtime._control import Caller, ControlTable
from paglets.runtime._routing import admit_message
from paglets.wire.control import (
    AcquireLease,
    ActivateAgent,
    AgentInfo,
    AgentStateInfo,
    AgentSummary,
    CloneAgent,
    CreateAgent,
    CreateRemote,
    DeactivateAgent,
    DeactivatedReply,
    DeliverMessage,
    DispatchAgent,
    DisposeAgent,
    HealthReply,
    HostHealth,
    LeaseReply,
    ListAgents,
    MoveAction,
    OkReply,
    ProxyRef,
    ProxyReply,
    ReleasedReply,
    ReleaseLease,
    RetractAgent,
    WireDict,
)
from paglets.wire.encoded import EncodedMessage, message_head

__all__ = ["AgentOps"]


# --- what the handlers need ----------------------------------------------------------------------------


class Directory(Protocol):
    async def info(self, agent_id: str) -> AgentSummary: ...
    async def state_info(self, agent_id: str) -> AgentSummary: ...
    async def list_agents(
        self, *, active: bool, inactive: bool, include_state: bool
    ) -> list[AgentSummary]: ...
    def health(self) -> HealthReply: ...


class Messages(Protocol):
    async def deliver(
        self,
        agent_id: str,
        message: EncodedMessage,
        *,
        oneway: bool,
        activate_if_inactive: bool = True,
        no_delay: bool = False,
        timeout: float | None = None,
    ) -> object: ...


class Creation(Protocol):
    async def create(self, creation: CreateAgent) -> ProxyRef: ...
    async def create_remote(self, url: str, creation: CreateAgent) -> ProxyRef: ...


class Lifecycle(Protocol):
    """Deactivation, activation and disposal of inactive paglets (``Persistence``)."""

    async def dispose(self, agent_id: str) -> bool: ...
    async def deactivate(self, agent_id: str, request: DeactivationRequest | None) -> ProxyRef: ...
    async def activate(self, agent_id: str) -> ProxyRef: ...
    def activating(self, agent_id: str) -> bool: ...
    def summary(self, agent_id: str) -> object | None: ...


class Active(Protocol):
    """The active paglets (``PagletManager``)."""

    def __contains__(self, agent_id: str) -> bool: ...
    async def dispose(self, agent_id: str) -> None: ...


class Leftovers(Protocol):
    """What a disposed paglet leaves: its registered files and work dir, and the artifacts it owns."""

    def forget_files(self, agent_id: str) -> None: ...
    async def delete_artifacts(self, agent_id: str) -> None: ...


class Mover(Protocol):
    async def move_agent(
        self, agent_id: str, target: str | TransferTicket | None, kind: MoveAction
    ) -> ProxyRef: ...


class Leases(Protocol):
    async def acquire_lease(self, agent_id: str, service_name: str, ttl: float) -> LeaseReply: ...
    def release_lease(self, lease_id: str) -> bool: ...


# --- the handlers ----------------------------------------------------------------------------------------


class AgentOps:
    """See the module docstring."""

    def __init__(
        self,
        *,
        host_name: str,
        address: Callable[[], str],
        directory: Directory,
        messages: Messages,
        creation: Creation,
        lifecycle: Lifecycle,
        active: Active,
        leftovers: Leftovers,
        mover: Mover,
        leases: Leases,
        resolve: Callable[[str], str],
    ) -> None:
        self._host_name = host_name
        self._address = address
        self._directory = directory
        self._messages = messages
        self._creation = creation
        self._lifecycle = lifecycle
        self._active = active
        self._leftovers = leftovers
        self._mover = mover
        self._leases = leases
        self._resolve = resolve

    def register(self, table: ControlTable) -> None:
        table.on(AgentInfo, self.info)
        table.on(AgentStateInfo, self.state_info)
        table.on(DisposeAgent, self.dispose)
        table.on(DeactivateAgent, self.deactivate)
        table.on(ActivateAgent, self.activate)
        table.on(DispatchAgent, self.dispatch)
        table.on(CloneAgent, self.clone)
        table.on(RetractAgent, self.retract)
        table.on(DeliverMessage, self.deliver)
        table.on(CreateAgent, self.create)
        table.on(CreateRemote, self.create_remote)
        table.on(ListAgents, self.list_agents)
        table.on(HostHealth, self.health)
        table.on(AcquireLease, self.acquire_lease)
        table.on(ReleaseLease, self.release_lease)

    async def info(self, request: AgentInfo, caller: Caller) -> AgentSummary:
        return await self._directory.info(request.agent_id)

    async def state_info(self, request: AgentStateInfo, caller: Caller) -> AgentSummary:
        return await self._directory.state_info(request.agent_id)

    async def dispose(self, request: DisposeAgent, caller: Caller) -> OkReply:
        """Dispose an inactive paglet's record, or an active paglet; then what it leaves behind."""
        agent_id = request.agent_id
        if not await self._lifecycle.dispose(agent_id):
            await self._active.dispose(agent_id)
        self._leftovers.forget_files(agent_id)
        await self._leftovers.delete_artifacts(agent_id)
        return OkReply()

    async def deactivate(self, request: DeactivateAgent, caller: Caller) -> DeactivatedReply:
        wire = request.request
        deactivation = DeactivationRequest.from_wire(wire) if wire is not None else None
        return DeactivatedReply(await self._lifecycle.deactivate(request.agent_id, deactivation))

    async def activate(self, request: ActivateAgent, caller: Caller) -> ProxyReply:
        """Activate an inactive paglet; ``InvalidAgentError`` when it is active already (as in 2.0)."""
        agent_id = request.agent_id
        lifecycle = self._lifecycle
        if (
            agent_id in self._active
            and lifecycle.summary(agent_id) is None
            and not lifecycle.activating(agent_id)
        ):
            raise InvalidAgentError(f"paglet {agent_id} is already active on host {self._host_name}")
        return ProxyReply(await lifecycle.activate(agent_id))

    async def _move(
        self, agent_id: str, target: str | None, ticket: WireDict | None, kind: MoveAction
    ) -> ProxyReply:
        where: str | TransferTicket | None = (
            TransferTicket.from_wire(ticket) if ticket is not None else target
        )
        if kind != "clone" and where is None:
            raise HostError(f"{kind} needs a target")
        return ProxyReply(await self._mover.move_agent(agent_id, where, kind))

    async def dispatch(self, request: DispatchAgent, caller: Caller) -> ProxyReply:
        return await self._move(request.agent_id, request.target, request.ticket, "dispatch")

    async def clone(self, request: CloneAgent, caller: Caller) -> ProxyReply:
        return await self._move(request.agent_id, request.target, request.ticket, "clone")

    async def retract(self, request: RetractAgent, caller: Caller) -> ProxyReply:
        return await self._move(request.agent_id, request.target, None, "retract")

    async def deliver(self, request: DeliverMessage, caller: Caller) -> object:
        """A message from a paglet is checked here; one from an HTTP route was checked while its JSON was
        decoded, so only its head (kind, priority, id) is read."""
        if caller is not None:
            message = await admit_message(request.message, sender=self._address())
        else:
            message = message_head(request.message)
        return await self._messages.deliver(
            request.agent_id,
            message,
            oneway=request.oneway,
            activate_if_inactive=request.activate_if_inactive,
            no_delay=request.no_delay,
            timeout=request.deadline,
        )

    async def create(self, request: CreateAgent, caller: Caller) -> ProxyRef:
        if request.agent_id is not None:
            check_agent_id(request.agent_id)
        return await self._creation.create(request)

    async def create_remote(self, request: CreateRemote, caller: Caller) -> ProxyRef:
        return await self._creation.create_remote(self._resolve(request.target), request.creation)

    async def list_agents(self, request: ListAgents, caller: Caller) -> list[AgentSummary]:
        return await self._directory.list_agents(
            active=request.active, inactive=request.inactive, include_state=request.include_state
        )

    async def health(self, request: HostHealth, caller: Caller) -> HealthReply:
        return self._directory.health()

    async def acquire_lease(self, request: AcquireLease, caller: Caller) -> LeaseReply:
        return await self._leases.acquire_lease(
            check_agent_id(request.agent_id), request.service_name, request.ttl
        )

    async def release_lease(self, request: ReleaseLease, caller: Caller) -> ReleasedReply:
        return ReleasedReply(self._leases.release_lease(request.lease_id))
