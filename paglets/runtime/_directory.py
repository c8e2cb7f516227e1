"""What lives on a host: its active and inactive paglets, their summaries and states, its health.

``AgentDirectory`` answers every read-only question about the paglets of one host, for the ``Host``
facade, the control table (``GET /agents``, ``GET /agents/{id}``, ``/state``, ``/health``, a paglet's
``get_proxy``) and the mesh (this host's ``HostRef``). Active paglets are asked through their
controllers, inactive ones read from their records; a host that is not started reads its records
(read-only) and has no active paglets.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping
from typing import TYPE_CHECKING, Any, Final, Protocol

from paglets.core.agent import ACTIVE, INACTIVE
from paglets.core.errors import InvalidAgentError
from paglets.persistence._recordformat import RecordSummary, StoredRecord
from paglets.persistence._records import RecordStore
from paglets.remote.mesh import HostRef
from paglets.serialization.codec import codec_for, dataclass_to_wire, resolve_qualified_name
from paglets.wire.control import AgentSummary, HealthReply

if TYPE_CHECKING:
    from paglets.runtime._controller import PagletController

__all__ = ["HOST_CAPABILITIES", "AgentDirectory"]

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

#: Controller states in which a paglet counts as living on this host for its services.
_LIVE: Final = frozenset({"starting", "ready", "moving"})


class Agents(Protocol):
    """The active paglets (``PagletManager``)."""

    @property
    def controllers(self) -> dict[str, PagletController]: ...
    def ready_ids(self) -> list[str]: ...
    async def describe(self, agent_ids: list[str]) -> list[AgentSummary]: ...
    async def state_bytes(self, agent_id: str) -> bytes: ...


class Records(Protocol):
    """The inactive paglets (``Persistence``)."""

    def summary(self, agent_id: str) -> RecordSummary | None: ...
    def summaries(self) -> list[RecordSummary]: ...
    def describe(self, summary: RecordSummary) -> AgentSummary: ...
    def state_fields(self, record: StoredRecord) -> AgentSummary: ...
    async def read(self, agent_id: str) -> StoredRecord: ...
    def inspected(self) -> RecordStore: ...


class AgentDirectory:
    """See the module docstring."""

    def __init__(
        self,
        *,
        name: str,
        address: Callable[[], str],
        code_version: str,
        tags: Collection[str],
        properties: Mapping[str, str],
        started: Callable[[], bool],
        agents: Agents,
        records: Records,
        is_resident: Callable[[str], bool],
        auto_update: Callable[[], Mapping[str, Any]] | None = None,
        compute_capacity: Mapping[str, int] | None = None,
    ) -> None:
        self._name = name
        self._address = address
        self._code_version = code_version
        self._tags = tags  # the host's own (the facade exposes them; read at every answer)
        self._properties = properties
        self._started = started
        self._agents = agents
        self._records = records
        self._is_resident = is_resident
        self._auto_update = auto_update
        self._compute_capacity = dict(compute_capacity or {})

    # --- which paglets ------------------------------------------------------------------------------

    def is_active(self, agent_id: str) -> bool:
        """Whether ``agent_id`` lives on this host for its services: from the moment its process exists
        and its starting hook runs (``on_creation``, ``on_activation``) until it leaves or stops."""
        ctrl = self._agents.controllers.get(agent_id)
        return ctrl is not None and ctrl.status in _LIVE

    def reachable(self, agent_id: str, *, include_inactive: bool) -> bool:
        """Whether ``get_proxy`` finds ``agent_id``: ready or paused by a move, or (``include_inactive``)
        stored or a lazy resident service not started yet (a message starts it)."""
        ctrl = self._agents.controllers.get(agent_id)
        if ctrl is not None:
            return ctrl.status in ("ready", "moving")  # "moving": paused, messages wait
        return include_inactive and (self._summary(agent_id) is not None or self._is_resident(agent_id))

    def agent_ids(self, state: int) -> list[str]:
        """The ready paglets (``ACTIVE``), then the inactive ones (``INACTIVE``)."""
        ids = list(self._agents.ready_ids()) if state & ACTIVE else []
        if state & INACTIVE:
            ids.extend(s.agent_id for s in self._summaries())
        return ids

    def _summary(self, agent_id: str) -> RecordSummary | None:
        """An inactive paglet's summary; a host that is not started reads its records (read-only)."""
        if self._started():
            return self._records.summary(agent_id)
        return self._records.inspected().summary(agent_id)

    def _summaries(self) -> list[RecordSummary]:
        if self._started():
            return self._records.summaries()
        return self._records.inspected().summaries()

    # --- summaries -----------------------------------------------------------------------------------

    async def info(self, agent_id: str) -> AgentSummary:
        """``GET /agents/{id}``: an active (or crashed) paglet's summary, else its record's."""
        if agent_id not in self._agents.controllers:
            summary = self._records.summary(agent_id)
            if summary is not None:
                return self._records.describe(summary)
        return (await self._agents.describe([agent_id]))[0]

    async def state_info(self, agent_id: str) -> AgentSummary:
        """``GET /agents/{id}/state``: the summary and the state (a crashed paglet's has no error)."""
        summary = await self.info(agent_id)
        summary.update(await self.state_item(agent_id))
        if "state_error" in summary and summary.get("crashed"):
            summary.pop("state_error")
        return summary

    async def list_agents(self, *, active: bool, inactive: bool, include_state: bool) -> list[AgentSummary]:
        """Summaries of the active paglets, then of the inactive ones (``GET /agents``)."""
        out: list[AgentSummary] = []
        if active:
            controllers = list(self._agents.controllers.items())
            out.extend(await self._agents.describe([aid for aid, c in controllers if c.status != "starting"]))
            if include_state:
                for item in out:
                    item.update(await self.state_item(str(item["agent_id"])))
        if inactive:
            for summary in self._records.summaries():
                item = self._records.describe(summary)
                if include_state:
                    item.update(await self.state_item(summary.agent_id))
                out.append(item)
        return out

    def list_records(self, include_state: bool) -> list[AgentSummary]:
        """The inactive paglets of a host that is not started, read from their records."""
        store = self._records.inspected()
        out: list[AgentSummary] = []
        for summary in store.summaries():
            item = self._records.describe(summary)
            if include_state:
                try:
                    item.update(self._records.state_fields(store.read(summary.agent_id)))
                except Exception as exc:
                    item["state_error"] = str(exc)
            out.append(item)
        return out

    # --- states --------------------------------------------------------------------------------------

    async def state_bytes(self, agent_id: str) -> bytes:
        """A fresh snapshot of an active paglet's state, or the state in an inactive one's record."""
        if agent_id not in self._agents.controllers and self._records.summary(agent_id) is not None:
            return bytes((await self._records.read(agent_id)).state)
        return await self._agents.state_bytes(agent_id)

    def stored_state(self, agent_id: str) -> bytes:
        """The state in an inactive paglet's record, for a host that is not started."""
        return bytes(self._records.inspected().read(agent_id).state)

    async def state_item(self, agent_id: str) -> AgentSummary:
        """What ``include_state`` adds to a summary: ``state`` (wire dict), or ``state_error``."""
        try:
            ctrl = self._agents.controllers.get(agent_id)
            if ctrl is None:
                return self._records.state_fields(await self._records.read(agent_id))
            data = await self._agents.state_bytes(agent_id)
            state_cls = resolve_qualified_name(ctrl.state_class)
            return {"state": dataclass_to_wire(codec_for(state_cls).decode(data))}
        except Exception as exc:
            return {"state_error": str(exc)}

    def require(self, agent_id: str) -> PagletController:
        """The controller of an active paglet (``InvalidAgentError`` for others, as in 2.0)."""
        ctrl = self._agents.controllers.get(agent_id)
        if ctrl is None:
            raise InvalidAgentError(f"no paglet {agent_id} on host {self._name}")
        return ctrl

    # --- the host ------------------------------------------------------------------------------------

    def _active_count(self) -> int:
        return sum(1 for c in list(self._agents.controllers.values()) if c.status == "ready")

    def health(self) -> HealthReply:
        """``GET /health``; a host that is not started counts its records."""
        extra = dict(self._auto_update()) if self._auto_update is not None else {}
        capabilities = list(HOST_CAPABILITIES)
        if not extra.pop("relay_mode", False):
            capabilities.append("admin:git-update")
        return HealthReply(
            name=self._name,
            address=self._address(),
            active_count=self._active_count(),
            inactive_count=len(self._summaries()),
            code_version=self._code_version,
            capabilities=capabilities,
            tags=list(self._tags),
            properties=dict(self._properties),
            **extra,
            compute_capacity=dict(self._compute_capacity),
        )

    def self_ref(self) -> HostRef:
        """This host as the mesh sees it (called from any thread)."""
        return HostRef(
            name=self._name,
            url=self._address(),
            code_version=self._code_version,
            online=True,
            last_seen=time.time(),
            active_count=self._active_count(),
            inactive_count=len(self._summaries()),
            tags=tuple(self._tags),
            properties=dict(self._properties),
        )
