"""``AsyncHost``: a host for asyncio applications (docs/guide/asyncio.md).

``AsyncHost`` wraps a ``Host`` (made from the same arguments, or an existing one with ``AsyncHost.of``)
and offers its API as coroutines; proxies it returns are ``AsyncPagletProxy``. The host keeps its own
event loop in its own thread, as always; the coroutines run the blocking calls in the shared worker
threads of ``paglets.remote.aproxy`` and await them from the caller's loop, so they can be awaited from
any running loop, the application's or the host's own (``host.spawn_task``), without blocking it.
Cancellation and timeouts behave as described there. ``events()`` is an async iterator over the host's
context events.

    async with AsyncHost("alpha", port=8080) as host:
        counter = await host.create(Counter)
        await counter.send("add", {"n": 1})
        async for event in host.events():
            ...
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Sequence
from typing import Any, Final, TypeVar

from paglets.core.agent import ACTIVE, Paglet
from paglets.core.context_events import ContextEvent
from paglets.core.messages import Message
from paglets.persistence.persistency import DeactivationRequest
from paglets.remote.aproxy import AsyncPagletProxy, run_blocking
from paglets.remote.mesh import HostRef
from paglets.remote.proxy import PagletProxy
from paglets.remote.transfer import TransferTicket
from paglets.runtime.host import Host

__all__ = ["EVENT_BUFFER", "AsyncHost"]

T = TypeVar("T")

#: Events one ``events()`` iterator holds for a slow reader; past it the oldest are dropped (counted in
#: the iterator's ``dropped``), so a reader that stops reading never holds the host's memory.
EVENT_BUFFER: Final = 10_000


class AsyncHost:
    """See the module docstring. ``AsyncHost(name, ...)`` takes ``Host``'s arguments."""

    def __init__(
        self, name: str, host: str | Sequence[str] = "127.0.0.1", port: int = 0, **options: Any
    ) -> None:
        self.host = Host(name, host, port, **options)

    @classmethod
    def of(cls, host: Host) -> AsyncHost:
        """An ``AsyncHost`` over an existing (started or not) ``Host``."""
        wrapper = cls.__new__(cls)
        wrapper.host = host
        return wrapper

    def __repr__(self) -> str:
        return f"AsyncHost({self.host.name!r}, address={self.host.address!r})"

    @property
    def name(self) -> str:
        return self.host.name

    @property
    def address(self) -> str:
        return self.host.address

    def _proxy(self, proxy: PagletProxy) -> AsyncPagletProxy:
        return AsyncPagletProxy(proxy)

    # --- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> AsyncHost:
        await run_blocking(self.host.start_background)
        return self

    async def stop(self, *, deactivate_active: bool = False) -> None:
        await run_blocking(self.host.stop, deactivate_active=deactivate_active)

    async def shutdown(self) -> None:
        await run_blocking(self.host.shutdown)

    async def __aenter__(self) -> AsyncHost:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # --- paglets ------------------------------------------------------------------------------------

    async def create(
        self,
        agent_cls: type[Paglet[Any]],
        state: object = None,
        *,
        init: Any = None,
        agent_id: str | None = None,
    ) -> AsyncPagletProxy:
        return self._proxy(
            await run_blocking(self.host.create, agent_cls, state, init=init, agent_id=agent_id)
        )

    async def create_remote(
        self,
        target: str,
        agent_cls: type[Paglet[Any]],
        state: object = None,
        *,
        init: Any = None,
        agent_id: str | None = None,
    ) -> AsyncPagletProxy:
        proxy = await run_blocking(
            self.host.create_remote, target, agent_cls, state, init=init, agent_id=agent_id
        )
        return self._proxy(proxy)

    def proxy(self, agent_id: str) -> AsyncPagletProxy:
        """A proxy of ``agent_id`` on this host (no check that it exists; it follows it if it moves)."""
        return self._proxy(self.host.remote_proxy(self.host.address, agent_id))

    async def get_proxy(self, agent_id: str, *, include_inactive: bool = False) -> AsyncPagletProxy | None:
        found = await run_blocking(self.host.get_proxy, agent_id, include_inactive=include_inactive)
        return None if found is None else self._proxy(found)

    async def get_proxies(self, state: int = ACTIVE) -> list[AsyncPagletProxy]:
        return [self._proxy(p) for p in await run_blocking(self.host.get_proxies, state)]

    async def dispatch(self, agent_id: str, target: str | TransferTicket) -> AsyncPagletProxy:
        return self._proxy(await run_blocking(self.host.dispatch, agent_id, target))

    async def clone(self, agent_id: str, *, target: str | TransferTicket | None = None) -> AsyncPagletProxy:
        return self._proxy(await run_blocking(self.host.clone, agent_id, target=target))

    async def retract(self, remote_host_url: str, agent_id: str) -> AsyncPagletProxy:
        return self._proxy(await run_blocking(self.host.retract, remote_host_url, agent_id))

    async def deactivate(self, agent_id: str, request: DeactivationRequest | None = None) -> AsyncPagletProxy:
        return self._proxy(await run_blocking(self.host.deactivate, agent_id, request))

    async def checkpoint(self, agent_id: str) -> dict[str, Any]:
        return await run_blocking(self.host.checkpoint, agent_id)

    async def activate(self, agent_id: str) -> AsyncPagletProxy:
        return self._proxy(await run_blocking(self.host.activate, agent_id))

    async def dispose(self, agent_id: str) -> None:
        await run_blocking(self.host.dispose, agent_id)

    async def send(
        self, agent_id: str, message: Message, *, oneway: bool = False, timeout: float | None = None
    ) -> Any:
        """``Host.deliver_message`` (``timeout=None``: the host's ``send_timeout``)."""
        if timeout is None:
            return await run_blocking(self.host.deliver_message, agent_id, message, oneway=oneway)
        return await run_blocking(
            self.host.deliver_message, agent_id, message, oneway=oneway, timeout=timeout
        )

    async def get_state(self, agent_id: str, state_cls: type[T]) -> T:
        return await run_blocking(self.host.get_state, agent_id, state_cls)

    async def list_agents(
        self, *, active: bool = True, inactive: bool = False, include_state: bool = False
    ) -> list[dict[str, Any]]:
        return await run_blocking(
            self.host.list_agents, active=active, inactive=inactive, include_state=include_state
        )

    async def list_hosts(self, *, online_only: bool = False) -> list[HostRef]:
        return await run_blocking(self.host.list_hosts, online_only=online_only)

    async def wait_for_host(self, name_or_url: str, *, timeout: float = 10.0) -> HostRef:
        return await run_blocking(self.host.wait_for_host, name_or_url, timeout=timeout)

    async def health(self) -> dict[str, Any]:
        return await run_blocking(self.host.health)

    # --- events -------------------------------------------------------------------------------------

    def events(self, *, since: int | None = None) -> EventStream:
        """An async iterator over the host's context events from now on (``since``: also the retained
        ones after that event id). Use it as ``async with host.events() as events: async for ...``, or
        call ``aclose()``: it stops listening then."""
        return EventStream(self.host, since)


class EventStream:
    """The async iterator of ``AsyncHost.events()``; ``dropped`` counts events a slow reader lost."""

    def __init__(self, host: Host, since: int | None) -> None:
        self._host = host
        self._since = since
        self._buffer: collections.deque[ContextEvent] = collections.deque()
        self._wakeup: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._last = 0
        self._closed = False
        self.dropped = 0

    def __aiter__(self) -> EventStream:
        return self

    def _listen(self, event: ContextEvent) -> None:  # any thread
        loop = self._loop
        if loop is None or self._closed:
            return
        try:
            loop.call_soon_threadsafe(self._push, event)
        except RuntimeError:  # the reader's loop is closed
            self._closed = True

    def _push(self, event: ContextEvent) -> None:
        if len(self._buffer) >= EVENT_BUFFER:
            self._buffer.popleft()
            self.dropped += 1
        self._buffer.append(event)
        if self._wakeup is not None:
            self._wakeup.set()

    def _open(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wakeup = asyncio.Event()
        self._host.add_listener(self._listen)
        if self._since is not None:
            for event in self._host.list_events(since=self._since, limit=EVENT_BUFFER):
                self._buffer.append(event)

    async def __anext__(self) -> ContextEvent:
        if self._closed:
            raise StopAsyncIteration
        if self._loop is None:
            self._open()
        assert self._wakeup is not None
        while True:
            while self._buffer:
                event = self._buffer.popleft()
                if event.event_id > self._last:  # the backlog and the listener may both hold one
                    self._last = event.event_id
                    return event
            self._wakeup.clear()
            await self._wakeup.wait()  # a cancelled wait leaves the stream open (asyncio.timeout per event)

    async def aclose(self) -> None:
        """Stop listening (also on leaving ``async with``, and when the stream is collected)."""
        self._closed = True
        self._host.remove_listener(self._listen)

    async def __aenter__(self) -> EventStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __del__(self) -> None:
        if not self._closed:
            self._host.remove_listener(self._listen)
