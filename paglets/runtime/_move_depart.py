"""Before a paglet leaves: where to, whether the target can take it, the leaving hooks, its files.

Steps of the source side that come before the transfer exists (``_move_source.py`` drives them); none of
them decides anything about the transfer.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from paglets.core.errors import PagletError, TransferError
from paglets.core.events import CloneEvent, MobilityEvent
from paglets.remote.transfer import TransferTicket
from paglets.runtime._controller import PagletController
from paglets.runtime._transfer import MoveKind

if TYPE_CHECKING:
    from paglets.runtime._move_site import MovementSite
    from paglets.runtime._movement import MovementEngine

__all__ = [
    "PREFLIGHT_FRESH",
    "RecentHealth",
    "Target",
    "leaving_hooks",
    "preflight",
    "resolve",
    "stage_files",
    "unstage_files",
]

#: Seconds a target's ``/health`` answer serves the preflight of the next moves to it (a burst of moves,
#: a clone fan-out, an itinerary through the same hosts, ask once). The target checks the code version
#: and capabilities of every envelope itself, so a stale answer cannot let a paglet in where it would not
#: run; it only means a move to a host that died meanwhile fails after the leaving hook rather than before.
PREFLIGHT_FRESH: Final = 2.0
#: Targets remembered at most (the least recently asked go first).
MAX_RECENT_HEALTH: Final = 256


class RecentHealth:
    """The last ``/health`` answer of each recent target, for ``PREFLIGHT_FRESH`` seconds."""

    def __init__(self, fresh: float = PREFLIGHT_FRESH, limit: int = MAX_RECENT_HEALTH) -> None:
        self._fresh = fresh
        self._limit = limit
        self._seen: OrderedDict[str, tuple[float, dict[str, Any]]] = OrderedDict()

    def get(self, url: str) -> dict[str, Any] | None:
        found = self._seen.get(url)
        if found is None:
            return None
        if time.monotonic() - found[0] > self._fresh:
            del self._seen[url]
            return None
        return found[1]

    def put(self, url: str, health: dict[str, Any]) -> None:
        self._seen.pop(url, None)
        self._seen[url] = (time.monotonic(), health)
        while len(self._seen) > self._limit:
            self._seen.popitem(last=False)

    def drop(self, url: str) -> None:
        """A move to ``url`` failed: ask it again next time."""
        self._seen.pop(url, None)


@dataclass(frozen=True, slots=True)
class Target:
    url: str
    name: str
    same_host: bool


async def resolve(host: MovementSite, ticket: TransferTicket) -> Target:
    """The ticket's destination as a URL, and whether it is this host."""
    url = host.resolve_host_url(ticket.destination)
    same = url.rstrip("/") == host.address.rstrip("/")
    return Target(url=url.rstrip("/"), name=host.name if same else "", same_host=same)


async def preflight(
    engine: MovementEngine, ticket: TransferTicket, target: Target, *, agent_id: str | None = None
) -> dict[str, Any]:
    """Check the target can take the paglet (reachable, capabilities, code version)."""

    def failed(text: str) -> TransferError:
        engine.peer_health.drop(target.url)
        return engine.failed("preflight", text, agent_id=agent_id, destination=target.url)

    if target.same_host:
        health = engine.host.health()
    elif (recent := engine.peer_health.get(target.url)) is not None:
        health = recent
    else:
        try:
            health = await engine.host.aclient.request_json(
                "GET", target.url + "/health", timeout=ticket.timeout
            )
        except (PagletError, OSError) as exc:
            raise failed(f"target {target.url} is not reachable: {exc}") from exc
        if not isinstance(health, dict):
            raise failed(f"target {target.url} answered /health with {health!r}")
        engine.peer_health.put(target.url, health)
    capabilities = set(health.get("capabilities") or ())
    missing = [c for c in ticket.required_capabilities if c not in capabilities]
    if missing:
        raise failed(f"target {target.url} lacks capabilities {missing}")
    version = str(health.get("code_version") or "")
    if ticket.expected_code_version is not None:
        if version != ticket.expected_code_version:
            raise failed(
                f"target {target.url} runs code version {version!r}, "
                f"the ticket expects {ticket.expected_code_version!r}"
            )
    elif version != engine.host.code_version:
        raise failed(
            f"target {target.url} runs code version {version!r}, this host {engine.host.code_version!r}; "
            "set expected_code_version on the ticket to move anyway"
        )
    return {
        "name": str(health.get("name") or ""),
        "address": str(health.get("address") or target.url),
        "code_version": version,
        "capabilities": sorted(capabilities),
    }


async def stage_files(
    host: MovementSite, agent_id: str, new_id: str, destination: Target
) -> list[dict[str, Any]]:
    """Stage the paglet's registered files for the target (nothing when it has none)."""
    if not host.files.refs(agent_id):
        return []
    local = host.artifacts if destination.same_host else None
    return await asyncio.get_running_loop().run_in_executor(
        None,
        functools.partial(
            host.files.stage,
            agent_id,
            destination.url,
            host.client,
            new_agent_id=new_id,
            local_store=local,
        ),
    )


async def unstage_files(
    host: MovementSite, files: list[dict[str, Any]], same_host: bool, agent_id: str
) -> None:
    """Remove a staging whose move did not happen."""
    local = host.artifacts if same_host else None
    unstage = functools.partial(host.files.unstage, local_store=local, agent_id=agent_id)
    # a file that cannot be deleted is reported by unstage (file-unstage-failed)
    await asyncio.get_running_loop().run_in_executor(None, unstage, files, host.client)


async def leaving_hooks(
    host: MovementSite, ctrl: PagletController, kind: MoveKind, info: dict[str, Any], new_id: str
) -> None:
    """The leaving hook (``on_cloning``, ``on_dispatching`` or ``on_reverting``) and, for a move, the
    resource cleanup, in the paglet's process."""
    timeout = host.manager.timeouts.hook
    if kind == "clone":
        event: Any = CloneEvent(
            agent_id=ctrl.agent_id,
            host_name=host.name,
            host_address=host.address,
            source_agent_id=ctrl.agent_id,
            clone_agent_id=new_id,
            source_host_name=host.name,
            source_host_address=host.address,
            target_host_name=info["name"],
            target_host_address=info["address"],
        )
        await ctrl.lifecycle("cloning", event, timeout)
        return
    event = MobilityEvent(
        agent_id=ctrl.agent_id,
        host_name=host.name,
        host_address=host.address,
        source_host_name=host.name,
        source_host_address=host.address,
        target_host_name=info["name"],
        target_host_address=info["address"],
        reason="retract" if kind == "retract" else "dispatch",
    )
    await ctrl.lifecycle("reverting" if kind == "retract" else "dispatching", event, timeout)
    await ctrl.resources("cleanup", reason=kind, timeout=host.manager.timeouts.resources)
