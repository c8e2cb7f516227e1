"""Binding: addresses go straight to the socket, names through the resolver."""

from __future__ import annotations

import socket

import pytest

from paglets.http.server import _bind, _ip_literal


def test_address_literals_need_no_resolver() -> None:
    assert _ip_literal("127.0.0.1", 80) == (socket.AF_INET, ("127.0.0.1", 80))
    assert _ip_literal("::1", 80) == (socket.AF_INET6, ("::1", 80, 0, 0))
    assert _ip_literal("localhost", 80) is None
    assert _ip_literal("", 80) is None
    assert _ip_literal("fe80::1%lo", 80) is None  # a scope id: the resolver knows it


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_bind_listens_on_a_literal_and_on_a_name(host: str) -> None:
    sock = _bind(host, 0)
    try:
        port = sock.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
    finally:
        sock.close()
