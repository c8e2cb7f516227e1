"""What one server's connections share: configuration, the connection set, counters, shutdown."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import msgspec

from paglets.http.limits import ServerLimits
from paglets.http.routing import Router

if TYPE_CHECKING:
    from paglets.http._connection import ServerConnection

__all__ = ["ServerContext", "ServerStatistics"]


class ServerStatistics(msgspec.Struct, frozen=True, kw_only=True):
    """Counters of one server since it started."""

    connections_open: int
    connections_accepted: int
    #: Connections answered 503 (or dropped) because ``max_connections`` were open.
    connections_rejected: int
    requests_served: int
    requests_in_flight: int
    #: Responses with a 4xx / 5xx status.
    client_errors: int
    server_errors: int
    #: Malformed or oversized input (the 400/413/414/431 answers and bad bodies).
    protocol_errors: int
    #: Slow clients cut by a header, body or write timeout (idle keep-alive closes not counted).
    timeouts: int
    #: Unexpected exceptions from handlers (answered 500) or from the connection machinery.
    internal_errors: int


class ServerContext:
    """What a server's connections share: configuration, the connection set, counters.

    Counters are plain integers updated by the connections on the loop thread (no locks needed);
    :meth:`statistics` copies them into a frozen :class:`ServerStatistics`.
    """

    def __init__(
        self, router: Router, *, api_key: str | None, path_prefix: str, limits: ServerLimits
    ) -> None:
        self.router = router
        self.api_key: bytes | None = api_key.encode("utf-8") if api_key else None
        self.prefix = path_prefix
        self.limits = limits
        self.connections: set[ServerConnection] = set()
        self.lingering = 0
        self.closing = False
        self._all_closed: asyncio.Event | None = None
        self.accepted = 0
        self.rejected = 0
        self.served = 0
        self.in_flight = 0
        self.client_errors = 0
        self.server_errors = 0
        self.protocol_errors = 0
        self.timeouts = 0
        self.internal_errors = 0

    def statistics(self) -> ServerStatistics:
        return ServerStatistics(
            connections_open=len(self.connections),
            connections_accepted=self.accepted,
            connections_rejected=self.rejected,
            requests_served=self.served,
            requests_in_flight=self.in_flight,
            client_errors=self.client_errors,
            server_errors=self.server_errors,
            protocol_errors=self.protocol_errors,
            timeouts=self.timeouts,
            internal_errors=self.internal_errors,
        )

    def forget(self, connection: ServerConnection) -> None:
        self.connections.discard(connection)
        if not self.connections and self._all_closed is not None:
            self._all_closed.set()

    #: Seconds ``shutdown`` waits for aborted connections' tasks to unwind.
    ABORT_GRACE = 1.0

    async def shutdown(self, deadline: float) -> None:
        """Close idle connections now, let busy ones finish until ``deadline`` (loop time), abort the rest."""
        self.closing = True
        self._all_closed = asyncio.Event()
        if not self.connections:
            self._all_closed.set()
        for connection in list(self.connections):
            connection.wake()
        remaining = deadline - asyncio.get_running_loop().time()
        if remaining > 0 and not self._all_closed.is_set():
            try:
                async with asyncio.timeout(remaining):
                    await self._all_closed.wait()
            except TimeoutError:
                pass
        tasks = [c.abort() for c in list(self.connections)]
        live = [t for t in tasks if t is not None]
        if live:
            await asyncio.wait(live, timeout=self.ABORT_GRACE)
