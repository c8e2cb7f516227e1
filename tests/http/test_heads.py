"""Heads we send: validation (no header injection), status lines, tokens."""

from __future__ import annotations

import pytest

from paglets.core.errors import ProtocolError
from paglets.http._heads import chunk_header, has_token, request_head, response_head


def test_request_head_layout() -> None:
    head = request_head(b"POST", b"/a?b=c", [(b"host", b"h:1"), (b"x-k", b"v v")])
    assert head == b"POST /a?b=c HTTP/1.1\r\nhost: h:1\r\nx-k: v v\r\n\r\n"


@pytest.mark.parametrize(
    ("method", "target", "headers"),
    [
        (b"GE T", b"/", []),
        (b"GET", b"/a b", []),
        (b"GET", b"/a\r\nX: y", []),
        (b"GET", b"", []),
        (b"GET", b"/", [(b"x\r\ny", b"v")]),
        (b"GET", b"/", [(b"x", b"v\r\nInjected: 1")]),
        (b"GET", b"/", [(b"x", b"v\x00")]),
        (b"GET", b"/", [(b"", b"v")]),
    ],
)
def test_request_head_refuses_injection(
    method: bytes, target: bytes, headers: list[tuple[bytes, bytes]]
) -> None:
    with pytest.raises(ProtocolError) as caught:
        request_head(method, target, headers)
    assert caught.value.fault == "local"


def test_response_head_status_and_trusted_headers() -> None:
    assert response_head(200, [(b"a", b"b")]) == b"HTTP/1.1 200 OK\r\na: b\r\n\r\n"
    assert response_head(299, []).startswith(b"HTTP/1.1 299 \r\n")
    for status in (99, 1000, -1):
        with pytest.raises(ProtocolError):
            response_head(status, [])
    # trusted headers are not validated again; the rest are
    response_head(200, [(b"ok", b"1")], trusted=1)
    with pytest.raises(ProtocolError):
        response_head(200, [(b"ok", b"1"), (b"bad", b"\n")], trusted=1)


def test_tokens_and_chunks() -> None:
    headers = [(b"connection", b"keep-alive, Close"), (b"expect", b"100-continue")]
    assert has_token(headers, b"connection", b"close")
    assert has_token(headers, b"expect", b"100-continue")
    assert not has_token(headers, b"connection", b"upgrade")
    assert chunk_header(255) == b"ff\r\n"
