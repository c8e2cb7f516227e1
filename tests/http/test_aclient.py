"""The async client against a real server (same exchange code as the blocking client, asyncio driver)."""

from __future__ import annotations

import asyncio
import socket
import zlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from paglets.core.errors import (
    AuthenticationError,
    BodyTooLargeError,
    InvalidAgentError,
    RemoteHostError,
)
from paglets.http import AsyncHttpClient, Request, Response, json_response, new_event_loop

from .conftest import OK, ServerThread, build_router, run_async


def test_round_trips_errors_and_keep_alive(server: ServerThread) -> None:
    async def main() -> None:
        async with AsyncHttpClient() as client:
            for i in range(20):
                result = await client.request_json("POST", server.url("/agents/x/messages"), {"i": i})
                assert result["payload"] == {"i": i}
            response = await client.request("GET", server.url("/health?q=1"))
            assert response.status == 200
            assert response.json() == {"ok": True, "query": {"q": "1"}}
            with pytest.raises(InvalidAgentError, match="no such paglet"):
                await client.request_json("GET", server.url("/fail/invalid"))
            with pytest.raises(RemoteHostError, match="exploded") as caught:
                await client.request_json("GET", server.url("/fail/other"))
            assert caught.value.remote_type == "RuntimeError"

    run_async(main)
    stats = server.stats()
    assert stats.connections_accepted == 1
    assert stats.requests_served == 23


def test_auth_hint(make_server: Callable[..., ServerThread]) -> None:
    srv = make_server(api_key="k")

    async def main() -> None:
        async with AsyncHttpClient() as client:
            with pytest.raises(AuthenticationError, match="PAGLETS_API_KEY"):
                await client.request_json("GET", srv.url("/health"))
        async with AsyncHttpClient(api_key="k") as client:
            assert (await client.request_json("GET", srv.url("/health")))["ok"]

    run_async(main)


def test_streaming_upload_from_async_and_sync_iterables(server: ServerThread) -> None:
    pieces = [bytes([i]) * (50_000 + i) for i in range(40)]
    expected = {"size": sum(map(len, pieces)), "crc": zlib.crc32(b"".join(pieces))}

    async def agen() -> AsyncIterator[bytes]:
        for piece in pieces:
            yield piece

    async def main() -> None:
        async with AsyncHttpClient() as client:
            assert (await client.request("POST", server.url("/upload"), body=agen())).json() == expected
            assert (await client.request("POST", server.url("/upload"), body=iter(pieces))).json() == expected
            big = b"".join(pieces)
            assert (await client.request("POST", server.url("/upload"), body=big)).json() == expected

    run_async(main)
    assert server.stats().connections_accepted == 1


def test_streaming_download_and_early_exit(server: ServerThread) -> None:
    size = 2_000_000

    async def main() -> None:
        async with AsyncHttpClient() as client:
            async with client.stream("GET", server.url(f"/download?size={size}&chunked=1")) as response:
                assert response.status == 200
                total = 0
                async for piece in response.iter_chunks():
                    total += len(piece)
                assert total == size
            async with client.stream("GET", server.url(f"/download?size={size}")) as response:
                async for _ in response.iter_chunks():
                    break
            assert (await client.request_json("GET", server.url("/health")))["ok"]
            with pytest.raises(BodyTooLargeError):
                async with client.stream("GET", server.url("/download?size=5000")) as response:
                    await response.read(limit=100)

    run_async(main)
    assert server.stats().connections_accepted == 2  # the early exit dropped the first connection


def test_timeout_and_connection_refused(make_server: Callable[..., ServerThread]) -> None:
    router = build_router()
    hang_events: dict[str, asyncio.Event] = {}

    async def hang(request: Request) -> Response:
        await hang_events.setdefault("e", asyncio.Event()).wait()
        return json_response({})

    router.get("/hang", hang)
    srv = make_server(router)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]

    async def main() -> None:
        async with AsyncHttpClient(timeout=0.2, connect_timeout=1.0) as client:
            with pytest.raises(RemoteHostError, match="timed out"):
                await client.request_json("GET", srv.url("/hang"))
            with pytest.raises(RemoteHostError, match=f"127.0.0.1:{closed_port}"):
                await client.request_json("GET", f"http://127.0.0.1:{closed_port}/")

    run_async(main)
    srv.stop(deadline=0.05)


def test_stale_connection_retry(peer_factory: Any) -> None:
    def script(conn: socket.socket, index: int) -> None:
        peer.read_request(conn)
        conn.sendall(OK)
        if index == 0:
            peer.read_request(conn)
            conn.shutdown(socket.SHUT_RDWR)

    peer = peer_factory(script)
    url = f"http://127.0.0.1:{peer.port}/x"

    async def main() -> None:
        async with AsyncHttpClient() as client:
            assert await client.request_json("POST", url, {"n": 1}) == {"ok": True}
            assert await client.request_json("POST", url, {"n": 2}) == {"ok": True}

    run_async(main)
    assert peer.accepted == 2
    assert len(peer.requests) == 3


def test_a_client_is_bound_to_its_loop(server: ServerThread) -> None:
    client = AsyncHttpClient()

    async def use() -> Any:
        return await client.request_json("GET", server.url("/health"))

    assert run_async(use)["ok"]
    other = new_event_loop()
    try:
        with pytest.raises(RuntimeError, match="different event loop"):
            other.run_until_complete(use())
    finally:
        other.close()
        client.close()


def test_an_early_401_reaches_the_async_client(make_server: Callable[..., ServerThread]) -> None:
    srv = make_server(api_key="k")
    block = b"x" * (1 << 20)

    async def pieces() -> AsyncIterator[bytes]:
        for _ in range(64):
            yield block

    async def main() -> None:
        async with AsyncHttpClient() as client:
            response = await client.request("POST", srv.url("/upload"), body=pieces())
            assert response.status == 401
            with pytest.raises(AuthenticationError, match="PAGLETS_API_KEY"):
                response.raise_for_status()

    run_async(main)
