"""What the movement engine needs from its host: ``MovementSite``, and the protocols it is made of.

The engine (``_movement.py``) and its drivers (``_move_source.py``, ``_move_target.py``,
``_move_recovery.py``, ``_move_depart.py``) reach the rest of the host only through these names. The
active collaborators they steer are narrow protocols (the paglet processes, the inactive records); the
leaf stores they hand data to are the stores themselves (registered files, artifacts, the event log, the
HTTP clients). The host's composition root (``paglets.runtime._assembly``) builds a ``MovementSite`` from
its collaborators (``paglets.runtime._adapters.HostSite``); a test builds one from fakes.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from paglets.artifacts import ArtifactStore
    from paglets.core.context_events import ContextEventLog
    from paglets.http.aclient import AsyncHttpClient
    from paglets.persistence._recordformat import RecordSummary, StoredRecord
    from paglets.remote.client import HostClient
    from paglets.runtime._controller import MailboxItem, PagletController
    from paglets.runtime._files import FileRegistry
    from paglets.runtime._handoff import SegmentFactory, WritableSegment
    from paglets.runtime._paglets import Timeouts

__all__ = ["MoveAgents", "MoveConfig", "MoveRecords", "MovementSite"]


class MoveAgents(Protocol):
    """The paglet processes a move pauses, prepares, commits and releases (``PagletManager``)."""

    @property
    def controllers(self) -> dict[str, PagletController]: ...
    @property
    def timeouts(self) -> Timeouts: ...
    @property
    def segments(self) -> SegmentFactory: ...
    def ready(self, agent_id: str) -> PagletController: ...
    def detach(self, ctrl: PagletController) -> list[MailboxItem]: ...
    async def release_when_idle(self, ctrl: PagletController) -> None: ...
    async def prepare(
        self,
        *,
        agent_id: str,
        agent_class: str,
        state_class: str,
        state_segment: WritableSegment,
        hook: str,
        event: Any,
    ) -> PagletController: ...
    async def commit_prepared(
        self, ctrl: PagletController, *, replacing: PagletController | None = None
    ) -> None: ...
    async def discard(self, ctrl: PagletController) -> None: ...


class MoveRecords(Protocol):
    """Inactive paglets (``Persistence``): an arrival must not shadow one, and may become one; a held copy
    becomes one, then activates."""

    def summary(self, agent_id: str) -> RecordSummary | None: ...
    async def write_arrival(self, record: StoredRecord) -> None: ...
    async def activate(self, agent_id: str) -> Any: ...


class MoveConfig(Protocol):
    """The host's options the engine reads (``HostConfig``)."""

    @property
    def inbound_move_budget(self) -> int: ...
    @property
    def inbound_budget_wait(self) -> float: ...


class MovementSite(Protocol):
    """Everything the movement engine uses of its host (see the module docstring)."""

    @property
    def name(self) -> str: ...
    @property
    def address(self) -> str: ...
    @property
    def code_version(self) -> str: ...
    @property
    def persistence_dir(self) -> Path: ...
    @property
    def config(self) -> MoveConfig: ...
    @property
    def events(self) -> ContextEventLog: ...
    @property
    def manager(self) -> MoveAgents: ...
    @property
    def persistence(self) -> MoveRecords: ...
    @property
    def files(self) -> FileRegistry: ...
    @property
    def artifacts(self) -> ArtifactStore: ...
    @property
    def client(self) -> HostClient: ...
    @property
    def aclient(self) -> AsyncHttpClient: ...

    def resolve_host_url(self, name_or_url: str) -> str:
        """A mesh name or URL as a URL (this host's own name included)."""
        ...

    def health(self) -> dict[str, Any]:
        """This host's ``GET /health`` (a move within the host checks it like another host's)."""
        ...

    async def leaving(self, agent_id: str) -> None:
        """An active paglet is about to leave (paused, nothing sent yet): drop what would bring it back
        here (its checkpoint, ``paglets.runtime._checkpoints``)."""
        ...

    async def forward_waiting(self, items: Sequence[MailboxItem], where: dict[str, str]) -> None:
        """Send messages that waited for a paglet that left on to where it is now."""
        ...

    async def moved_away(self, agent_id: str, where: dict[str, str]) -> None:
        """``agent_id`` left this host and settled at ``where`` (a forwarding entry for stale proxies)."""
        ...
