"""Fixtures for the HTTP tests: a demo route table and real servers on 127.0.0.1 in a background loop."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import Future
from typing import Any, TypeVar

import pytest

from paglets.core.errors import InvalidAgentError, NotHandledError
from paglets.http import (
    HttpServer,
    Request,
    Response,
    Router,
    ServerLimits,
    StreamResponse,
    json_response,
    new_event_loop,
)

T = TypeVar("T")

#: Seconds any single wait in these tests may take before the test fails (never reached when green).
WAIT = 10.0


def build_router() -> Router:
    """A route table exercising every feature the tests need."""
    router = Router()

    async def health(request: Request) -> Response:
        return json_response({"ok": True, "query": request.query})

    async def echo(request: Request) -> Response:
        payload = await request.json()
        return json_response(
            {
                "method": request.method,
                "path": request.path,
                "params": request.path_params,
                "query": request.query_string,
                "payload": payload,
            }
        )

    async def raw_echo(request: Request) -> Response:
        body = await request.body()
        return Response(200, body, "application/octet-stream")

    async def describe(request: Request) -> Response:
        """Everything the server parsed, for the split property."""
        body = await request.body()
        return json_response(
            {
                "method": request.method,
                "path": request.path,
                "raw_path": request.raw_path,
                "query": request.query_string,
                "params": request.path_params,
                "headers": [[n.decode("latin-1"), v.decode("latin-1")] for n, v in request.headers],
                "body_len": len(body),
                "body_crc": zlib.crc32(body),
            }
        )

    async def upload(request: Request) -> Response:
        total = 0
        crc = 0
        async for piece in request.stream():
            total += len(piece)
            crc = zlib.crc32(piece, crc)
        return json_response({"size": total, "crc": crc})

    async def download(request: Request) -> StreamResponse:
        size = int(request.query.get("size", "0"))
        piece = int(request.query.get("piece", str(64 * 1024)))
        chunked = request.query.get("chunked") == "1"
        block = bytes(range(256)) * (piece // 256)

        async def chunks() -> AsyncIterator[bytes]:
            left = size
            while left > 0:
                part = block[:left] if left < len(block) else block
                left -= len(part)
                yield part

        return StreamResponse(200, chunks(), content_length=None if chunked else size)

    async def ignore_body(request: Request) -> Response:
        return json_response({"ignored": True})

    async def fail(request: Request) -> Response:
        kind = request.path_params["kind"]
        if kind == "invalid":
            raise InvalidAgentError("no such paglet")
        if kind == "nothandled":
            raise NotHandledError("nobody handles that")
        if kind == "remote":
            raise InvalidAgentError("gone", remote_type="KeyError", remote_traceback="Traceback: ...")
        raise RuntimeError("handler exploded")

    router.get("/health", health)
    router.post("/echo", echo)
    router.post("/agents/{agent_id}/messages", echo)
    router.post("/raw", raw_echo)
    router.add("*", "/describe/{rest:path}", describe)
    router.post("/upload", upload)
    router.get("/download", download)
    router.post("/ignore", ignore_body)
    router.get("/fail/{kind}", fail)
    return router


class ServerThread:
    """An ``HttpServer`` on a uvloop loop running in a background thread (as the embedded Host does)."""

    def __init__(
        self,
        router: Router,
        *,
        bind: tuple[str, ...] = ("127.0.0.1",),
        loop_factory: Callable[[], asyncio.AbstractEventLoop] = new_event_loop,
        **kwargs: Any,
    ) -> None:
        self.loop = loop_factory()
        self._thread = threading.Thread(target=self.loop.run_forever, name="test-http-server", daemon=True)
        self._thread.start()
        self.server = HttpServer(router, **kwargs)
        self.port = self.call(lambda: self.server.start(list(bind), 0))
        self._stopped = False

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def call(self, make: Callable[[], Awaitable[T]], timeout: float = WAIT) -> T:
        async def run() -> T:
            return await make()

        future: Future[T] = asyncio.run_coroutine_threadsafe(run(), self.loop)
        return future.result(timeout)

    def submit(self, make: Callable[[], Awaitable[T]]) -> Future[T]:
        async def run() -> T:
            return await make()

        return asyncio.run_coroutine_threadsafe(run(), self.loop)

    def stats(self) -> Any:
        async def get() -> Any:
            return self.server.statistics()

        return self.call(get)

    def stop(self, deadline: float = 2.0) -> None:
        if self._stopped:
            return
        self._stopped = True
        try:
            self.call(lambda: self.server.close(deadline=deadline), timeout=deadline + WAIT)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(WAIT)
            self.loop.close()


@pytest.fixture
def router() -> Router:
    return build_router()


@pytest.fixture
def make_server() -> Iterator[Callable[..., ServerThread]]:
    started: list[ServerThread] = []

    def make(router: Router | None = None, **kwargs: Any) -> ServerThread:
        server = ServerThread(router if router is not None else build_router(), **kwargs)
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def server(make_server: Callable[..., ServerThread]) -> ServerThread:
    return make_server()


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


def wait_for(condition: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    """Poll ``condition`` until it holds (fails after ``timeout`` seconds)."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()  # never set: ``wait`` is the polling interval
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        pause.wait(0.005)


def fast_limits(**overrides: Any) -> ServerLimits:
    """Limits with timeouts short enough for tests."""
    values: dict[str, Any] = {
        "idle_timeout": 0.5,
        "header_timeout": 0.5,
        "read_timeout": 0.5,
        "write_timeout": 0.5,
        "body_rate_grace": 0.5,
        "close_linger": 0.5,
    }
    values.update(overrides)
    return ServerLimits(**values)


# --- a scripted raw TCP peer (to produce stale connections deterministically) -------------------------------


class ScriptedPeer:
    """Accepts connections and runs ``script(conn, index)`` for each, in a thread."""

    def __init__(self, script: Callable[[socket.socket, int], None]) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._script = script
        self.accepted = 0
        self.requests: list[bytes] = []
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            index = self.accepted
            self.accepted += 1
            with conn:
                conn.settimeout(WAIT)
                self._script(conn, index)

    def read_request(self, conn: socket.socket) -> bytes:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return data
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(rest) < length:
            rest += conn.recv(65536)
        self.requests.append(head)
        return head

    def close(self) -> None:
        self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        self._listener.close()
        self._thread.join(WAIT)


OK = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"ok":true}'


@pytest.fixture
def peer_factory() -> Iterator[Callable[[Callable[[socket.socket, int], None]], ScriptedPeer]]:
    peers: list[ScriptedPeer] = []

    def make(script: Callable[[socket.socket, int], None]) -> ScriptedPeer:
        peer = ScriptedPeer(script)
        peers.append(peer)
        return peer

    yield make
    for peer in peers:
        peer.close()
