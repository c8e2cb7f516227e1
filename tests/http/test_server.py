"""A real server on 127.0.0.1: keep-alive, pipelining, binding, shutdown, slow and bad clients, limits."""

from __future__ import annotations

import asyncio
import select
import socket
import time
from collections.abc import Callable
from typing import Any

import msgspec
import pytest

from paglets.core.errors import HostError, RemoteHostError
from paglets.http import (
    AsyncHttpClient,
    HttpClient,
    HttpServer,
    Request,
    Response,
    Router,
    ServerLimits,
    json_response,
    new_event_loop,
)
from paglets.http.testing import parse_responses

from .conftest import WAIT, ServerThread, build_router, fast_limits, wait_for


def connect(port: int, host: str = "127.0.0.1") -> socket.socket:
    sock = socket.create_connection((host, port), timeout=WAIT)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes (or resets after its answer)."""
    out = bytearray()
    try:
        while data := sock.recv(65536):
            out += data
    except ConnectionResetError:
        pass
    return bytes(out)


def recv_response_or_close(sock: socket.socket, poll: float) -> bytes | None:
    """One ``recv`` with a short timeout: ``None`` if nothing came in time, else the bytes (b"" = closed)."""
    sock.settimeout(poll)
    try:
        return sock.recv(65536)
    except TimeoutError:
        return None
    except ConnectionResetError:
        return b""
    finally:
        sock.settimeout(WAIT)


# --- keep-alive and pipelining ---------------------------------------------------------------------------


def test_keep_alive_with_the_blocking_client(server: ServerThread) -> None:
    with HttpClient() as client:
        for i in range(50):
            assert client.request_json("POST", server.url("/echo"), {"i": i})["payload"] == {"i": i}
    stats = server.stats()
    assert stats.connections_accepted == 1
    assert stats.requests_served == 50


def test_keep_alive_with_the_async_client(server: ServerThread) -> None:
    async def main() -> None:
        async with AsyncHttpClient() as client:
            for i in range(50):
                assert (await client.request_json("POST", server.url("/echo"), {"i": i}))["payload"] == {
                    "i": i
                }

    loop = new_event_loop()
    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
    assert server.stats().connections_accepted == 1


def test_pipelined_requests_on_one_socket_are_answered_in_order(server: ServerThread) -> None:
    requests = b"".join(
        b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        for body in (msgspec.json.encode({"n": i}) for i in range(30))
    )
    with connect(server.port) as sock:
        sock.sendall(requests + b"GET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        responses = parse_responses(read_until_closed(sock))
    assert [msgspec.json.decode(r.body)["payload"]["n"] for r in responses[:30]] == list(range(30))
    assert responses[30].status == 200
    assert server.stats().connections_accepted == 1


# --- binding ---------------------------------------------------------------------------------------------


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


def test_several_bind_addresses_share_one_port(make_server: Callable[..., ServerThread]) -> None:
    hosts = ("127.0.0.1", "::1") if _ipv6_loopback() else ("127.0.0.1", "127.0.0.2")
    srv = make_server(bind=hosts)
    assert [port for _, port in srv.server.addresses] == [srv.port, srv.port]
    with HttpClient() as client:
        for host in hosts:
            authority = f"[{host}]" if ":" in host else host
            assert client.request_json("GET", f"http://{authority}:{srv.port}/health")["ok"] is True


def test_binding_a_used_port_is_a_host_error(server: ServerThread) -> None:
    async def main() -> None:
        other = HttpServer(Router())
        with pytest.raises(HostError, match="cannot bind"):
            await other.start(["127.0.0.1"], server.port)
        assert other.port is None

    loop = new_event_loop()
    try:
        loop.run_until_complete(main())
    finally:
        loop.close()


# --- graceful shutdown --------------------------------------------------------------------------------------


def _blocking_router() -> tuple[Router, dict[str, Any]]:
    """``/block`` waits for ``state["release"]`` (an asyncio.Event created on the server loop)."""
    router = build_router()
    state: dict[str, Any] = {"entered": 0}

    async def block(request: Request) -> Response:
        state["entered"] += 1
        await state["release"].wait()
        return json_response({"released": True})

    router.get("/block", block)
    return router, state


def test_close_finishes_in_flight_requests_and_refuses_new_ones(
    make_server: Callable[..., ServerThread],
) -> None:
    router, state = _blocking_router()
    srv = make_server(router)

    async def make_event() -> None:
        state["release"] = asyncio.Event()

    srv.call(make_event)
    idle = connect(srv.port)  # an idle keep-alive connection: closed at once
    idle.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
    assert idle.recv(65536).startswith(b"HTTP/1.1 200")
    busy = connect(srv.port)
    busy.sendall(b"GET /block HTTP/1.1\r\nHost: t\r\n\r\n")
    wait_for(lambda: state["entered"] == 1, "the handler to start")

    closing = srv.submit(lambda: srv.server.close(deadline=WAIT))
    assert idle.recv(65536) == b""  # idle connection closed by the shutdown
    with pytest.raises(ConnectionRefusedError):
        connect(srv.port).close()  # no longer accepting
    assert not closing.done()

    async def release() -> None:
        state["release"].set()

    srv.call(release)
    answer = parse_responses(read_until_closed(busy))
    assert answer[0].status == 200
    assert answer[0].header("connection") == "close"
    closing.result(WAIT)
    idle.close()
    busy.close()


def test_close_aborts_what_is_left_at_the_deadline(make_server: Callable[..., ServerThread]) -> None:
    router, state = _blocking_router()
    srv = make_server(router)

    async def make_event() -> None:
        state["release"] = asyncio.Event()

    srv.call(make_event)
    with connect(srv.port) as busy:
        busy.sendall(b"GET /block HTTP/1.1\r\nHost: t\r\n\r\n")
        wait_for(lambda: state["entered"] == 1, "the handler to start")
        started = time.monotonic()
        srv.call(lambda: srv.server.close(deadline=0.2))
        assert time.monotonic() - started < WAIT / 2
        assert read_until_closed(busy) == b""
    assert srv.stats().connections_open == 0


# --- bad and slow clients -----------------------------------------------------------------------------------


def test_garbage_gets_400_and_others_are_unaffected(server: ServerThread) -> None:
    with HttpClient() as client:
        assert client.request_json("GET", server.url("/health"))["ok"]
        for garbage in (b"\x00\xff" * 100, b"GET / HTTP/1.1\r\n\x01\r\n\r\n", b"\r\n\r\n\r\n"):
            with connect(server.port) as sock:
                sock.sendall(garbage)
                data = read_until_closed(sock)
                assert data.startswith(b"HTTP/1.1 400"), data
        assert client.request_json("GET", server.url("/health"))["ok"]
    stats = server.stats()
    assert stats.protocol_errors == 3
    assert stats.connections_accepted == 4


def test_idle_connections_are_closed_after_the_idle_timeout(make_server: Callable[..., ServerThread]) -> None:
    srv = make_server(limits=fast_limits(idle_timeout=0.2))
    with connect(srv.port) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
        answer = sock.recv(65536)
        assert answer.startswith(b"HTTP/1.1 200"), answer
        started = time.monotonic()
        assert sock.recv(100) == b""
        assert 0.15 < time.monotonic() - started < WAIT
    assert srv.stats().timeouts == 0  # an idle close is not a slow client
    assert srv.stats().first_request_timeouts == 0


def test_slowloris_headers_are_cut_by_the_header_deadline(make_server: Callable[..., ServerThread]) -> None:
    srv = make_server(limits=fast_limits(header_timeout=0.3))
    head = b"GET /health HTTP/1.1\r\nHost: t\r\n" + b"X-Slow: " + b"a" * 1000 + b"\r\n\r\n"
    with connect(srv.port) as sock:
        started = time.monotonic()
        answer = None
        for byte in head:
            sock.sendall(bytes([byte]))
            answer = recv_response_or_close(sock, 0.02)  # a client sending ~50 bytes per second
            if answer is not None:
                break
        assert answer is not None
        assert answer.startswith(b"HTTP/1.1 408"), answer
        assert time.monotonic() - started < 2.0
    assert srv.stats().timeouts == 1


def test_stalled_body_is_cut_by_the_read_timeout(make_server: Callable[..., ServerThread]) -> None:
    srv = make_server(limits=fast_limits(read_timeout=0.2, body_rate_grace=5.0))
    with connect(srv.port) as sock:
        sock.sendall(b"POST /raw HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n0123456789")
        responses = parse_responses(read_until_closed(sock))
    assert responses[0].status == 408
    assert msgspec.json.decode(responses[0].body)["error_type"] == "ProtocolError"


def test_trickling_body_is_cut_by_the_minimum_rate(make_server: Callable[..., ServerThread]) -> None:
    srv = make_server(limits=fast_limits(read_timeout=5.0, body_rate_grace=0.2, min_body_rate=1000))
    with connect(srv.port) as sock:
        sock.sendall(b"POST /raw HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n")
        started = time.monotonic()
        answer = None
        while answer is None and time.monotonic() - started < WAIT:
            try:
                sock.sendall(b"x")  # about 50 bytes per second, far below 1000
            except OSError:
                answer = b""
                break
            answer = recv_response_or_close(sock, 0.02)
        assert answer is not None
        assert answer.startswith(b"HTTP/1.1 408"), answer
        assert time.monotonic() - started < 3.0
    assert srv.stats().timeouts == 1


def test_a_client_that_never_reads_is_dropped_by_the_write_timeout(
    make_server: Callable[..., ServerThread],
) -> None:
    srv = make_server(limits=fast_limits(write_timeout=0.2))
    with connect(srv.port) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.sendall(b"GET /download?size=268435456&piece=1048576 HTTP/1.1\r\nHost: t\r\n\r\n")
        wait_for(lambda: srv.stats().timeouts == 1, "the write timeout")
        wait_for(lambda: srv.stats().connections_open == 0, "the connection to be dropped")


def test_connections_beyond_the_limit_get_503(make_server: Callable[..., ServerThread]) -> None:
    srv = make_server(limits=ServerLimits(max_connections=3))
    held = [connect(srv.port) for _ in range(3)]
    try:
        for sock in held:  # busy (a request head under way), so none can be closed to make room
            sock.sendall(b"GET /health HTTP/1.1\r\n")
        wait_for(
            lambda: srv.stats().connections_open == 3 and srv.stats().connections_idle == 0,
            "three busy connections",
        )
        with connect(srv.port) as extra:
            extra.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
            responses = parse_responses(read_until_closed(extra))
        assert responses[0].status == 503
        assert msgspec.json.decode(responses[0].body)["error_type"] == "RemoteHostError"
        held.pop().close()
        wait_for(lambda: srv.stats().connections_open == 2, "a free slot")
        with HttpClient() as client:
            assert client.request_json("GET", srv.url("/health"))["ok"]
        assert srv.stats().connections_rejected == 1
    finally:
        for sock in held:
            sock.close()


def test_two_hundred_concurrent_connections(make_server: Callable[..., ServerThread]) -> None:
    count = 200
    router = build_router()
    state: dict[str, Any] = {"inside": 0, "peak": 0}

    async def gather(request: Request) -> Response:
        state["inside"] += 1
        state["peak"] = max(state["peak"], state["inside"])
        if state["inside"] == count:
            state["all_in"].set()
        await state["all_in"].wait()
        state["inside"] -= 1
        return json_response({"n": request.path_params["n"]})

    router.get("/gather/{n}", gather)
    srv = make_server(router)

    async def make_event() -> None:
        state["all_in"] = asyncio.Event()

    srv.call(make_event)

    async def main() -> list[Any]:
        async with AsyncHttpClient(max_idle_per_host=count) as client:
            return await asyncio.gather(
                *(client.request_json("GET", srv.url(f"/gather/{i}")) for i in range(count))
            )

    loop = new_event_loop()
    try:
        results = loop.run_until_complete(main())
    finally:
        loop.close()
    assert sorted(int(r["n"]) for r in results) == list(range(count))
    assert state["peak"] == count
    stats = srv.stats()
    assert stats.connections_accepted == count
    assert stats.requests_served == count


# --- a background-thread loop serves blocking clients from many threads -------------------------------------


def test_many_threads_share_one_client(make_server: Callable[..., ServerThread]) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def hammer(client: HttpClient, url: str) -> None:
        def work(worker: int) -> int:
            for i in range(25):
                payload = {"w": worker, "i": i}
                assert client.request_json("POST", url, payload)["payload"] == payload
            return worker

        with ThreadPoolExecutor(8) as pool:
            assert sorted(pool.map(work, range(8))) == list(range(8))

    roomy = make_server()
    with HttpClient(max_idle_per_host=8) as client:
        hammer(client, roomy.url("/echo"))
    stats = roomy.stats()
    assert stats.requests_served == 200
    assert stats.connections_accepted <= 8  # never more connections than threads: all were reused

    tight = make_server()
    with HttpClient(max_idle_per_host=2) as client:
        hammer(client, tight.url("/echo"))
        assert len(client._pool._idle[("http", "127.0.0.1", tight.port)]) <= 2
    assert tight.stats().requests_served == 200


def test_connection_refused_names_the_url() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with HttpClient(connect_timeout=1.0) as client, pytest.raises(RemoteHostError, match=f"127.0.0.1:{port}"):
        client.request_json("GET", f"http://127.0.0.1:{port}/health")


def test_the_standard_asyncio_loop_works_too(make_server: Callable[..., ServerThread]) -> None:
    srv = make_server(loop_factory=asyncio.new_event_loop, limits=fast_limits(max_json_body=1000))
    assert not type(srv.loop).__module__.startswith("uvloop")
    with HttpClient() as client:
        for i in range(5):
            assert client.request_json("POST", srv.url("/echo"), {"i": i})["payload"] == {"i": i}
        pieces = [b"z" * 100_000] * 30
        assert client.request("POST", srv.url("/upload"), body=iter(pieces)).json()["size"] == 3_000_000
        with client.stream("GET", srv.url("/download?size=3000000&chunked=1")) as response:
            assert sum(len(p) for p in response.iter_chunks()) == 3_000_000
        big = client.request("POST", srv.url("/echo"), body=b"x" * 2000, content_type="application/json")
        assert big.status == 413
    with connect(srv.port) as sock:
        sock.sendall(
            b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n" * 3
            + b"GET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
        )
        assert [r.status for r in parse_responses(read_until_closed(sock))] == [200] * 4
    assert srv.stats().connections_accepted == 2  # the client's keep-alive one (closed by the 413), ours


def test_a_sender_that_keeps_sending_reads_the_early_413_before_any_reset(
    make_server: Callable[..., ServerThread],
) -> None:
    """A peer (a reverse proxy, say) that writes as long as it can and reads only when its writes would
    block gets the early 413: the lingering close stops reading after ``LINGER_MAX_BYTES`` instead of
    resetting the connection while the peer still sends (a proxy that sees the reset first answers 502)."""
    srv = make_server(limits=fast_limits(max_json_body=1000, close_linger=5.0))
    chunk = b"x" * 65536
    with connect(srv.port) as sock:
        sock.sendall(
            b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            b"Content-Length: 268435456\r\n\r\n"
        )
        sock.setblocking(False)
        received = bytearray()
        sent = 0
        deadline = time.monotonic() + WAIT
        while b"\r\n\r\n" not in received:
            assert time.monotonic() < deadline, "no answer"
            try:
                sent += sock.send(chunk)  # write while we can, as a proxy streaming a body does
                continue
            except BlockingIOError:
                pass
            except OSError as exc:
                raise AssertionError(
                    f"the connection broke after {sent} body bytes, unanswered: {exc!r}"
                ) from exc
            readable, _, _ = select.select([sock], [], [], 0.05)
            if readable:
                received += sock.recv(65536)
    assert received.startswith(b"HTTP/1.1 413 "), bytes(received[:200])
