"""Fixtures for the service tests: real HTTP servers on 127.0.0.1 serving the service routes."""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

import pytest

from paglets.http import HttpServer, Request, Response, Router, new_event_loop
from paglets.services._routes import build_service_routes
from paglets.services.registry import ServiceRegistry

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    # helper modules of these tests (_compute_fakes.py); appended, so that other test directories'
    # ``import conftest`` still finds their own
    sys.path.append(str(HERE))

T = TypeVar("T")

#: Seconds any single wait in these tests may take before the test fails (never reached when green).
WAIT = 10.0


class ServiceHost:
    """A service registry behind a real ``HttpServer`` whose loop runs in a background thread.

    ``active`` is the set of agent ids the routes treat as active. With ``stall=True`` the ``GET
    /services`` route waits for :meth:`unstall` before answering (a slow peer), without sleeping.
    """

    def __init__(self, name: str, *, stall: bool = False) -> None:
        self.name = name
        self.registry = ServiceRegistry()
        self.active: set[str] = set()
        self.requests = 0
        self.loop = new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=f"test-{name}", daemon=True)
        self._thread.start()
        self._gate = self.call(self._make_gate)
        router = Router()
        build_service_routes(
            router,
            self.registry,
            host_name=lambda: self.name,
            host_address=lambda: self.url,
            is_active=self.active.__contains__,
        )
        router = self._stalling(router) if stall else self._counting(router)
        self.server = HttpServer(router)
        self.port = self.call(lambda: self.server.start(["127.0.0.1"], 0))
        self.url = f"http://127.0.0.1:{self.port}"
        self._stopped = False

    @staticmethod
    async def _make_gate() -> asyncio.Event:
        return asyncio.Event()

    def _wrapped(self, inner: Router, before: Callable[[], Awaitable[None]]) -> Router:
        router = Router()
        for route in inner.routes:
            handler = route.handler
            if route.pattern == "/services":

                async def wrapped(request: Request, handler: Any = handler) -> Response:
                    await before()
                    result: Response = await handler(request)
                    return result

                router.add(route.method, route.pattern, wrapped)
            else:
                router.add(route.method, route.pattern, handler)
        return router

    def _counting(self, inner: Router) -> Router:
        async def count() -> None:
            self.requests += 1

        return self._wrapped(inner, count)

    def _stalling(self, inner: Router) -> Router:
        async def stall() -> None:
            self.requests += 1
            await self._gate.wait()

        return self._wrapped(inner, stall)

    def unstall(self) -> None:
        self.loop.call_soon_threadsafe(self._gate.set)

    def call(self, make: Callable[[], Awaitable[T]], timeout: float = WAIT) -> T:
        async def run() -> T:
            return await make()

        future: Future[T] = asyncio.run_coroutine_threadsafe(run(), self.loop)
        return future.result(timeout)

    def advertise(self, agent_id: str, name: str, **kwargs: Any) -> Any:
        return self.registry.advertise_service(
            agent_id, name, host_name=self.name, host_url=self.url, **kwargs
        )

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self.unstall()
        try:
            self.call(lambda: self.server.close(deadline=2.0))
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(WAIT)
            self.loop.close()


@pytest.fixture
def make_host() -> Iterator[Callable[..., ServiceHost]]:
    hosts: list[ServiceHost] = []

    def make(name: str, **kwargs: Any) -> ServiceHost:
        host = ServiceHost(name, **kwargs)
        hosts.append(host)
        return host

    yield make
    for host in hosts:
        host.stop()


def run_async(make: Callable[[], Awaitable[T]]) -> T:
    """Run ``make()`` on a fresh uvloop loop in this thread (and close the loop)."""

    async def main() -> T:
        async with asyncio.timeout(WAIT * 3):
            return await make()

    loop = new_event_loop()
    try:
        return loop.run_until_complete(main())
    finally:
        loop.close()
