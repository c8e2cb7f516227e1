"""Forwarding: a host answers for paglets that left it with where they went (docs/guide/asyncio.md).

When a paglet leaves this host for another (a dispatch, or a retract by another host), the movement
engine records where it settled (:meth:`Forwarding.record`, once the target executed the move). A request
that later names the paglet here (a message, a state read, a control operation, over HTTP, from a paglet
process or from a proxy in this process) and finds nothing is answered with ``PagletMovedError`` (a
subclass of ``InvalidAgentError``; HTTP 404 with ``moved_to``, ``proto/PROTOCOL.md`` §6.4), which
proxies follow. The entry is dropped when the paglet comes back (a move to this host goes live) or is
created or activated here again; its TTL and bound are those of the store
(``paglets.persistence._forwards``), and it survives restarts.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from paglets.core.errors import PagletMovedError
from paglets.persistence._forwards import FORWARD_TTL, MAX_FORWARDS, ForwardStore
from paglets.wire.control import ProxyRef

__all__ = ["Forwarding"]

_log = logging.getLogger("paglets.runtime")


class Forwarding:
    """See the module docstring. Lives on the host's loop; disk work runs in the default executor."""

    def __init__(
        self,
        root: Path | None,
        *,
        host_name: str,
        address: Callable[[], str],
        spawn: Callable[[Coroutine[Any, Any, None]], object],
        ttl: float = FORWARD_TTL,
        limit: int = MAX_FORWARDS,
    ) -> None:
        self.store = ForwardStore(root, ttl=ttl, limit=limit)
        self._host_name = host_name
        self._address = address
        self._spawn = spawn

    async def start(self) -> int:
        return await asyncio.get_running_loop().run_in_executor(None, self.store.load)

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self.store.close)

    def lookup(self, agent_id: str) -> ProxyRef | None:
        found = self.store.lookup(agent_id)
        return None if found is None else ProxyRef(found.host_url, found.agent_id)

    def moved_error(self, agent_id: str) -> PagletMovedError | None:
        """The error for a request naming ``agent_id`` that is not here, if it left with an entry."""
        where = self.lookup(agent_id)
        if where is None:
            return None
        return PagletMovedError(
            f"paglet {agent_id} is not on host {self._host_name}: it moved to {where.agent_id} at "
            f"{where.host_url}",
            host_url=where.host_url,
            moved_agent_id=where.agent_id,
        )

    async def record(self, agent_id: str, where: ProxyRef) -> None:
        """``agent_id`` left this host and settled at ``where`` (nothing for a move to this host)."""
        url = where.host_url.rstrip("/")
        if url == self._address().rstrip("/"):
            await self.forget(agent_id)
            return
        try:
            await asyncio.get_running_loop().run_in_executor(
                None, self.store.add, agent_id, url, where.agent_id
            )
        except OSError as exc:  # the move happened; only the answer for stale proxies is lost
            _log.warning("host %s: could not record where paglet %s went: %s", self._host_name, agent_id, exc)

    async def forget(self, agent_id: str) -> None:
        if self.store.lookup(agent_id) is None:
            return
        try:
            await asyncio.get_running_loop().run_in_executor(None, self.store.drop, agent_id)
        except OSError as exc:
            _log.warning(
                "host %s: could not drop the forwarding entry of %s: %s", self._host_name, agent_id, exc
            )

    def arrived(self, agent_id: str) -> None:
        """``agent_id`` lives here again (loop thread): its entry goes, in the background."""
        if self.store.lookup(agent_id) is not None:
            self._spawn(self.forget(agent_id))
