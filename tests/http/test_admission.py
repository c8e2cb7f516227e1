"""Admission of connections: the per-address bound, the first-request deadline, making room when full.

The attacker connects from 127.0.0.2 (all of 127/8 is loopback on Linux) and the legitimate client from
127.0.0.1, so the server sees two peer addresses.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import msgspec

from paglets.http import HttpClient, ServerLimits
from paglets.http.testing import parse_responses

from .conftest import WAIT, ServerThread, wait_for

ATTACKER = "127.0.0.2"


def connect_from(source: str, port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=WAIT, source_address=(source, 0))


@contextmanager
def idle_sockets(port: int, count: int, source: str = ATTACKER) -> Iterator[list[socket.socket]]:
    """``count`` connections from ``source`` that send nothing; closed on exit."""
    held: list[socket.socket] = []
    try:
        held.extend(connect_from(source, port) for _ in range(count))
        yield held
    finally:
        for sock in held:
            sock.close()


def closed_by_server(sock: socket.socket) -> bool:
    """Block until the server closes ``sock`` (``True``) or sends data (``False``)."""
    try:
        return sock.recv(65536) == b""
    except ConnectionResetError:
        return True


def read_all(sock: socket.socket) -> bytes:
    out = bytearray()
    try:
        while data := sock.recv(65536):
            out += data
    except ConnectionResetError:
        pass
    return bytes(out)


def health(server: ServerThread) -> dict[str, object]:
    with HttpClient() as client:
        answer: dict[str, object] = client.request_json("GET", server.url("/health"))
        return answer


def test_one_address_gets_only_its_share_of_the_connections(make_server: Callable[..., ServerThread]) -> None:
    srv = make_server(limits=ServerLimits(max_connections=8, max_connections_per_address=3))
    with idle_sockets(srv.port, 5) as held:
        wait_for(lambda: srv.stats().connections_rejected == 2, "two refused connections")
        assert srv.stats().connections_open == 3
        assert srv.stats().connections_rejected_per_address == 2
        for sock in held[3:]:
            responses = parse_responses(read_all(sock))
            assert responses[0].status == 503
            assert "from your address" in msgspec.json.decode(responses[0].body)["error"]
        # the held connections are still open while another address is served
        assert health(srv)["ok"]
        assert srv.stats().connections_open >= 3
    wait_for(lambda: srv.stats().connections_open == 0, "the attacker's connections to go")
    with idle_sockets(srv.port, 3):  # the share is free again
        wait_for(lambda: srv.stats().connections_open == 3, "three new connections")
        assert srv.stats().connections_rejected == 2


def test_a_connection_that_never_speaks_is_closed_at_the_first_request_deadline(
    make_server: Callable[..., ServerThread],
) -> None:
    srv = make_server(limits=ServerLimits(first_request_timeout=0.3))
    with connect_from("127.0.0.1", srv.port) as busy:
        # a keep-alive connection that served a request is not bound by the first-request deadline
        busy.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
        assert busy.recv(65536).startswith(b"HTTP/1.1 200")
        with idle_sockets(srv.port, 3) as held:
            for sock in held:
                assert closed_by_server(sock)
        assert srv.stats().first_request_timeouts == 3
        assert srv.stats().timeouts == 0  # closed quietly, not answered 408
        # the deadline has passed for the keep-alive connection too, and it still serves
        busy.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
        assert busy.recv(65536).startswith(b"HTTP/1.1 200")


def test_a_first_request_head_must_be_complete_by_the_deadline(
    make_server: Callable[..., ServerThread],
) -> None:
    srv = make_server(limits=ServerLimits(first_request_timeout=0.3, header_timeout=WAIT * 10))
    with connect_from(ATTACKER, srv.port) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\n")  # and never the blank line
        responses = parse_responses(read_all(sock))
    assert responses[0].status == 408
    assert srv.stats().timeouts == 1


def test_a_full_server_closes_the_longest_idle_connection_for_a_new_one(
    make_server: Callable[..., ServerThread],
) -> None:
    srv = make_server(limits=ServerLimits(max_connections=4))
    with idle_sockets(srv.port, 4) as held:
        wait_for(lambda: srv.stats().connections_idle == 4, "four idle connections")
        assert health(srv)["ok"]
        assert closed_by_server(held[0])  # the oldest one made room
        assert srv.stats().connections_evicted == 1
        assert srv.stats().connections_rejected == 0
    # busy connections are never closed to make room: then a new one gets 503
    with idle_sockets(srv.port, 4) as held:
        for sock in held:
            sock.sendall(b"GET /health HTTP/1.1\r\n")
        wait_for(
            lambda: srv.stats().connections_open == 4 and srv.stats().connections_idle == 0,
            "four busy connections",
        )
        with connect_from("127.0.0.1", srv.port) as extra:
            extra.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
            assert parse_responses(read_all(extra))[0].status == 503


def test_an_address_at_its_share_cannot_push_out_other_clients(
    make_server: Callable[..., ServerThread],
) -> None:
    srv = make_server(limits=ServerLimits(max_connections=4, max_connections_per_address=2))
    with idle_sockets(srv.port, 2, source="127.0.0.1"), idle_sockets(srv.port, 2):
        wait_for(lambda: srv.stats().connections_idle == 4, "four idle connections")
        with connect_from(ATTACKER, srv.port) as extra:
            extra.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
            assert parse_responses(read_all(extra))[0].status == 503
        assert srv.stats().connections_evicted == 0
        assert srv.stats().connections_open == 4
