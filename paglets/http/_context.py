"""What one server's connections share: configuration, the connection set, counters, shutdown.

Admission bookkeeping lives here too: the open connections per peer address, and the connections that
are *idle* (waiting for a request with no byte of it received), oldest idle first, so that a full server
can close the one idle the longest instead of refusing a new client (see :mod:`paglets.http.server`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, TypeVar

import msgspec

from paglets.http.limits import ServerLimits
from paglets.http.routing import Router

if TYPE_CHECKING:
    from paglets.http._connection import ServerConnection

__all__ = ["ServerContext", "ServerStatistics"]

A = TypeVar("A")
T = TypeVar("T")


class ServerStatistics(msgspec.Struct, frozen=True, kw_only=True):
    """Counters of one server since it started."""

    connections_open: int
    connections_accepted: int
    #: Connections answered 503 (or dropped): ``max_connections`` were open and none was idle, or the
    #: peer's address already held ``max_connections_per_address``.
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
    #: Open connections waiting for a request with nothing of it received.
    connections_idle: int = 0
    #: Of ``connections_rejected``: refused because the peer's address held its share.
    connections_rejected_per_address: int = 0
    #: Idle connections closed to make room for a new one while every slot was taken.
    connections_evicted: int = 0
    #: Connections closed because they sent nothing within ``first_request_timeout``.
    first_request_timeouts: int = 0
    #: JSON bodies decoded in the worker threads instead of on the event loop.
    bodies_decoded_off_loop: int = 0


class ServerContext:
    """What a server's connections share: configuration, the connection set, counters.

    Counters are plain integers updated by the connections on the loop thread (no locks needed);
    :meth:`statistics` copies them into a frozen :class:`ServerStatistics`.
    """

    def __init__(
        self,
        router: Router,
        *,
        api_key: str | None,
        path_prefix: str,
        limits: ServerLimits,
        expose_tracebacks: bool = False,
    ) -> None:
        self.router = router
        #: Whether error bodies carry ``remote_traceback`` (otherwise it is logged, never sent).
        self.expose_tracebacks = expose_tracebacks
        self.api_key: bytes | None = api_key.encode("utf-8") if api_key else None
        #: Requests answered without the API key: ``open_request(method, path, headers)`` (pages that hold
        #: no data, such as a dashboard's static files; ``None``: none).
        self.open_request: Callable[[str, str, list[tuple[bytes, bytes]]], bool] | None = None
        self.prefix = path_prefix
        self.limits = limits
        self.connections: set[ServerConnection] = set()
        #: Open connections per peer address (only addresses with at least one).
        self.per_address: dict[str, int] = {}
        #: Connections waiting for a request with nothing of it received, oldest idle first.
        self.idle: dict[ServerConnection, None] = {}
        self.lingering = 0
        self.closing = False
        self._all_closed: asyncio.Event | None = None
        self._decoders: ThreadPoolExecutor | None = None
        self.accepted = 0
        self.rejected = 0
        self.rejected_per_address = 0
        self.evicted = 0
        self.first_request_timeouts = 0
        self.offloaded = 0
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
            connections_idle=len(self.idle),
            connections_rejected_per_address=self.rejected_per_address,
            connections_evicted=self.evicted,
            first_request_timeouts=self.first_request_timeouts,
            bodies_decoded_off_loop=self.offloaded,
        )

    # --- admission ----------------------------------------------------------------------------------------

    def address_full(self, address: str | None) -> bool:
        """Whether ``address`` already holds its share of the connections."""
        return (
            address is not None
            and self.per_address.get(address, 0) >= self.limits.max_connections_per_address
        )

    def make_room(self) -> bool:
        """Whether a new connection fits, closing the connection idle the longest when all slots are
        taken; ``False`` when the server is full and nothing is idle."""
        if len(self.connections) < self.limits.max_connections:
            return True
        while self.idle:
            victim = next(iter(self.idle))
            self.forget(victim)
            if victim.evict():
                self.evicted += 1
                return True
        return False

    def admit(self, connection: ServerConnection, address: str | None) -> None:
        self.accepted += 1
        self.connections.add(connection)
        if address is not None:
            self.per_address[address] = self.per_address.get(address, 0) + 1

    def forget(self, connection: ServerConnection) -> None:
        """Drop ``connection`` from the books (idempotent; also for rejected connections)."""
        self.idle.pop(connection, None)
        if connection not in self.connections:
            return
        self.connections.discard(connection)
        address = connection.address
        if address is not None:
            left = self.per_address.get(address, 1) - 1
            if left > 0:
                self.per_address[address] = left
            else:
                self.per_address.pop(address, None)
        if not self.connections and self._all_closed is not None:
            self._all_closed.set()

    # --- large bodies -----------------------------------------------------------------------------------

    async def offload(self, decode: Callable[[A], T], data: A) -> T:
        """``decode(data)`` in the server's decoder threads (for bodies too large to decode on the loop)."""
        if self._decoders is None:
            self._decoders = ThreadPoolExecutor(
                self.limits.json_decode_workers, thread_name_prefix="paglets-json"
            )
        self.offloaded += 1
        return await asyncio.get_running_loop().run_in_executor(self._decoders, decode, data)

    # --- shutdown -----------------------------------------------------------------------------------------

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
        decoders, self._decoders = self._decoders, None
        if decoders is not None:
            decoders.shutdown(wait=False, cancel_futures=True)
