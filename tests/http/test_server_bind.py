"""Binding (addresses go straight to the socket, names through the resolver) and the limits a host
gives its server."""

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


def test_a_host_behind_a_proxy_lingers_longer_unless_told_otherwise() -> None:
    from paglets.http.limits import LINGER_MAX_BYTES, PROXIED_LINGER_MAX_BYTES, ServerLimits
    from paglets.runtime._assembly import _server_limits

    assert _server_limits(None, proxied=False) is None
    behind = _server_limits(None, proxied=True)
    assert behind is not None
    assert behind.linger_max_bytes == PROXIED_LINGER_MAX_BYTES
    assert ServerLimits().linger_max_bytes == LINGER_MAX_BYTES
    chosen = ServerLimits(linger_max_bytes=4096)
    assert _server_limits(chosen, proxied=True) is chosen  # a bound the host was given is kept
