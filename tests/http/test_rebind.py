"""``HttpServer.rebind``: new addresses are bound before old ones close; a failed rebind changes nothing.

Loopback only: 127.0.0.2 and 127.0.0.3 are loopback addresses on Linux (all of 127/8 is).
"""

from __future__ import annotations

import socket
from collections.abc import Callable

import pytest

from paglets.core.errors import HostError

from .conftest import ServerThread


def _health(host: str, port: int) -> bytes:
    with socket.create_connection((host, port), timeout=5) as conn:
        conn.sendall(f"GET /health HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    return data


def _refused(host: str, port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(2)
        return probe.connect_ex((host, port)) != 0


def _free_on(host: str, port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def _server(make_server: Callable[..., ServerThread], bind: tuple[str, ...]) -> ServerThread:
    """A server on ``bind`` whose port is also free on 127.0.0.2 and 127.0.0.3, where the tests rebind it
    (its port comes from 127.0.0.1; other processes of the suite may hold the same number elsewhere)."""
    for _ in range(20):
        server = make_server(bind=bind)
        if all(_free_on(host, server.port) for host in ("127.0.0.2", "127.0.0.3") if host not in bind):
            return server
    raise AssertionError("no port free on 127.0.0.1-3 in 20 tries")


def test_rebind_moves_the_server_and_keeps_addresses_it_still_wants(
    make_server: Callable[..., ServerThread],
) -> None:
    server = _server(make_server, ("127.0.0.1", "127.0.0.2"))
    port = server.port
    server.call(lambda: server.server.rebind(["127.0.0.2", "127.0.0.3"]))
    assert sorted(host for host, _ in server.server.addresses) == ["127.0.0.2", "127.0.0.3"]
    assert _health("127.0.0.3", port).startswith(b"HTTP/1.1 200")
    assert _health("127.0.0.2", port).startswith(b"HTTP/1.1 200")
    assert _refused("127.0.0.1", port)


def test_a_rebind_that_cannot_bind_changes_nothing(make_server: Callable[..., ServerThread]) -> None:
    server = _server(make_server, ("127.0.0.1",))
    port = server.port
    with socket.socket() as blocker:  # the new address's port is taken
        blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        blocker.bind(("127.0.0.3", port))
        blocker.listen()
        with pytest.raises(HostError, match=r"cannot bind 127\.0\.0\.3"):
            server.call(lambda: server.server.rebind(["127.0.0.2", "127.0.0.3"]))
    assert server.server.addresses == [("127.0.0.1", port)]
    assert _health("127.0.0.1", port).startswith(b"HTTP/1.1 200")
    assert _refused("127.0.0.2", port)  # bound for the failed rebind, closed again
