"""The blocking client against a real server: JSON, errors, auth, timeouts, streaming, pool and retry."""

from __future__ import annotations

import asyncio
import socket
import zlib
from collections.abc import Callable
from typing import Any

import pytest

from paglets.core.errors import (
    AuthenticationError,
    BodyTooLargeError,
    InvalidAgentError,
    NotHandledError,
    ProtocolError,
    RemoteHostError,
    RouteNotFoundError,
)
from paglets.http import HttpClient, Request, Response, ServerLimits, default_api_key, json_response

from .conftest import OK, ServerThread, build_router, wait_for

# --- JSON and errors ----------------------------------------------------------------------------------------


def test_request_json_round_trip_and_raw_response(server: ServerThread) -> None:
    with HttpClient() as client:
        result = client.request_json("POST", server.url("/agents/a%20b/messages?x=1"), {"k": [1, 2]})
        assert result == {
            "method": "POST",
            "path": "/agents/a%20b/messages",
            "params": {"agent_id": "a b"},
            "query": "x=1",
            "payload": {"k": [1, 2]},
        }
        response = client.request("GET", server.url("/health?a=1"))
        assert response.ok
        assert response.status == 200
        assert response.header("Content-Type") == "application/json"
        assert response.json() == {"ok": True, "query": {"a": "1"}}
        raw = client.request("POST", server.url("/raw"), body=b"\x00\x01binary")
        assert raw.body == b"\x00\x01binary"


@pytest.mark.parametrize(
    ("path", "error", "message"),
    [
        ("/fail/invalid", InvalidAgentError, "no such paglet"),
        ("/fail/nothandled", NotHandledError, "nobody handles that"),
        ("/fail/other", RemoteHostError, "handler exploded"),
        ("/nope", RouteNotFoundError, "No route for GET /nope"),
    ],
)
def test_error_responses_raise_the_mapped_error(
    server: ServerThread, path: str, error: type[Exception], message: str
) -> None:
    with HttpClient() as client, pytest.raises(error, match=message) as caught:
        client.request_json("GET", server.url(path))
    if path == "/fail/other":
        assert caught.value.remote_type == "RuntimeError"  # type: ignore[attr-defined]


def test_remote_fields_survive(make_server: Callable[..., ServerThread]) -> None:
    server = make_server(expose_tracebacks=True)
    with HttpClient() as client, pytest.raises(InvalidAgentError) as caught:
        client.request_json("GET", server.url("/fail/remote"))
    assert caught.value.remote_type == "KeyError"
    assert caught.value.remote_traceback == "Traceback: ..."


def test_remote_tracebacks_stay_on_the_server_by_default(server: ServerThread) -> None:
    with HttpClient() as client, pytest.raises(InvalidAgentError) as caught:
        client.request_json("GET", server.url("/fail/remote"))
    assert caught.value.remote_type == "KeyError"
    assert caught.value.remote_traceback is None


# --- auth ---------------------------------------------------------------------------------------------------


def test_missing_key_raises_authentication_error_with_a_hint(
    make_server: Callable[..., ServerThread],
) -> None:
    srv = make_server(api_key="s3cret")
    with HttpClient() as client, pytest.raises(AuthenticationError, match="PAGLETS_API_KEY"):
        client.request_json("GET", srv.url("/health"))
    with HttpClient(api_key="wrong") as client, pytest.raises(AuthenticationError, match="PAGLETS_API_KEY"):
        client.request_json("GET", srv.url("/health"))
    with HttpClient(api_key="s3cret") as client:
        assert client.request_json("GET", srv.url("/health"))["ok"]


def test_default_api_key_reads_the_environment(
    make_server: Callable[..., ServerThread], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PAGLETS_API_KEY", raising=False)
    assert default_api_key() is None
    monkeypatch.setenv("PAGLETS_API_KEY", "")
    assert default_api_key() is None
    monkeypatch.setenv("PAGLETS_API_KEY", "from-env")
    srv = make_server(api_key=default_api_key())
    with HttpClient(api_key=default_api_key()) as client:
        assert client.request_json("GET", srv.url("/health"))["ok"]


def test_a_big_upload_without_key_gets_the_401_not_a_broken_pipe(
    make_server: Callable[..., ServerThread],
) -> None:
    srv = make_server(api_key="s3cret")
    block = b"x" * (1 << 20)
    with HttpClient() as client:
        response = client.request("POST", srv.url("/upload"), body=(block for _ in range(64)))
        assert response.status == 401
        with pytest.raises(AuthenticationError):
            response.raise_for_status()
    assert srv.stats().requests_served == 1


def test_an_early_413_reaches_the_client(make_server: Callable[..., ServerThread]) -> None:
    srv = make_server(limits=ServerLimits(max_stream_body=1 << 20))
    block = b"x" * (1 << 20)
    with HttpClient() as client:
        response = client.request("POST", srv.url("/upload"), body=(block for _ in range(32)))
        assert response.status == 413
        with pytest.raises(BodyTooLargeError):
            response.raise_for_status()
        assert client.request_json("GET", srv.url("/health"))["ok"]  # the client recovers


# --- timeouts -----------------------------------------------------------------------------------------------


def test_read_timeout_raises_remote_host_error(make_server: Callable[..., ServerThread]) -> None:
    router = build_router()
    never = {}

    async def hang(request: Request) -> Response:
        never.setdefault("event", asyncio.Event())
        await never["event"].wait()
        return json_response({})

    router.get("/hang", hang)
    srv = make_server(router)
    with HttpClient(timeout=0.2) as client, pytest.raises(RemoteHostError, match="timed out"):
        client.request_json("GET", srv.url("/hang"))
    srv.stop(deadline=0.05)  # the handler never ends: abort it


def test_unsupported_scheme() -> None:
    with HttpClient() as client, pytest.raises(ValueError, match="http://"):
        client.request("GET", "ftp://127.0.0.1/")


# --- streaming ----------------------------------------------------------------------------------------------


def test_streaming_upload_chunked_and_with_declared_length(server: ServerThread) -> None:
    pieces = [bytes([i]) * (10_000 + i) for i in range(50)]
    expected = {"size": sum(map(len, pieces)), "crc": zlib.crc32(b"".join(pieces))}
    with HttpClient() as client:
        chunked = client.request("POST", server.url("/upload"), body=iter(pieces))
        assert chunked.json() == expected
        sized = client.request(
            "POST",
            server.url("/upload"),
            body=(memoryview(p) for p in pieces),
            headers={"Content-Length": str(expected["size"])},
        )
        assert sized.json() == expected
    assert server.stats().connections_accepted == 1


@pytest.mark.parametrize("chunked", ["0", "1"])
def test_streaming_download(server: ServerThread, chunked: str) -> None:
    size = 3_000_000
    with HttpClient() as client:
        with client.stream("GET", server.url(f"/download?size={size}&chunked={chunked}")) as response:
            assert response.status == 200
            crc = 0
            total = 0
            for piece in response.iter_chunks(100_000):
                assert len(piece) <= 100_000 or chunked == "1"
                total += len(piece)
                crc = zlib.crc32(piece, crc)
        block = (bytes(range(256)) * 256)[:65536]
        expected = b"".join([block] * (size // len(block))) + block[: size % len(block)]
        assert (total, crc) == (size, zlib.crc32(expected))
        assert client.request_json("GET", server.url("/health"))["ok"]
    assert server.stats().connections_accepted == 1  # fully read: the connection was reused


def test_leaving_a_stream_early_closes_its_connection(server: ServerThread) -> None:
    with HttpClient() as client:
        with client.stream("GET", server.url("/download?size=10000000")) as response:
            next(iter(response.iter_chunks()))
        assert client.request_json("GET", server.url("/health"))["ok"]
    assert server.stats().connections_accepted == 2


def test_response_body_limit(server: ServerThread) -> None:
    with HttpClient(max_response_body=1000) as client, pytest.raises(BodyTooLargeError):
        client.request("GET", server.url("/download?size=5000"))


# --- pool and retry -----------------------------------------------------------------------------------------


def test_a_stale_pooled_connection_is_retried_transparently(peer_factory: Any) -> None:
    def script(conn: socket.socket, index: int) -> None:
        peer.read_request(conn)
        conn.sendall(OK)
        if index == 0:
            peer.read_request(conn)  # the next request arrives on the kept-alive connection...
            conn.shutdown(socket.SHUT_RDWR)  # ...and the server drops it without a byte of answer

    peer = peer_factory(script)
    url = f"http://127.0.0.1:{peer.port}/x"
    with HttpClient() as client:
        assert client.request_json("POST", url, {"n": 1}) == {"ok": True}
        assert client.request_json("POST", url, {"n": 2}) == {"ok": True}
    assert peer.accepted == 2
    assert len(peer.requests) == 3


def test_a_streaming_body_is_never_replayed(peer_factory: Any) -> None:
    def script(conn: socket.socket, index: int) -> None:
        peer.read_request(conn)
        conn.sendall(OK)
        if index == 0:
            conn.recv(65536)
            conn.shutdown(socket.SHUT_RDWR)

    peer = peer_factory(script)
    url = f"http://127.0.0.1:{peer.port}/x"
    with HttpClient() as client:
        assert client.request_json("GET", url) == {"ok": True}
        with pytest.raises(RemoteHostError, match="failed"):
            client.request("POST", url, body=iter([b"a" * 10, b"b" * 10]))
    assert peer.accepted == 1


def test_no_retry_once_the_response_started(peer_factory: Any) -> None:
    def script(conn: socket.socket, index: int) -> None:
        peer.read_request(conn)
        conn.sendall(OK)
        if index == 0:
            peer.read_request(conn)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Len")
            conn.shutdown(socket.SHUT_RDWR)

    peer = peer_factory(script)
    url = f"http://127.0.0.1:{peer.port}/x"
    with HttpClient() as client:
        client.request_json("GET", url)
        with pytest.raises(ProtocolError):
            client.request_json("GET", url)
    assert peer.accepted == 1


def test_a_connection_the_server_closed_while_idle_is_not_reused(
    make_server: Callable[..., ServerThread],
) -> None:
    srv = make_server(limits=ServerLimits(idle_timeout=0.1))
    with HttpClient() as client:
        assert client.request_json("GET", srv.url("/health"))["ok"]
        wait_for(lambda: srv.stats().connections_open == 0, "the server to close the idle connection")
        assert client.request_json("GET", srv.url("/health"))["ok"]
    assert srv.stats().connections_accepted == 2


def test_client_refuses_header_injection_and_bad_framing(server: ServerThread) -> None:
    with HttpClient() as client:
        with pytest.raises(ProtocolError):
            client.request("GET", server.url("/health"), headers={"X-A": "1\r\nX-B: 2"})
        with pytest.raises(ProtocolError):
            client.request("POST", server.url("/raw"), body=iter([b"abc"]), headers={"Content-Length": "2"})
        with pytest.raises(ValueError, match="ASCII"):
            client.request("GET", server.url("/héllo"))
        assert client.request_json("GET", server.url("/health"))["ok"]


@pytest.mark.linux_only(reason="forks the test process (what the pool must survive on POSIX)")
def test_a_forked_child_does_not_reuse_its_parents_connections(server: ServerThread) -> None:
    import os

    with HttpClient() as client:
        assert client.request_json("GET", server.url("/health"))["ok"]  # one pooled connection
        pid = os.fork()
        if pid == 0:  # child: must open its own connection
            code = 1
            try:
                code = (
                    0
                    if client.request_json("POST", server.url("/echo"), {"c": 1})["payload"] == {"c": 1}
                    else 1
                )
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert client.request_json("GET", server.url("/health"))["ok"]  # the parent's one still works
    stats = server.stats()
    assert stats.connections_accepted == 2
    assert stats.requests_served == 3
