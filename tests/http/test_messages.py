"""What handlers see and return, used directly (no server): Request.build, bodies, limits, responses."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import msgspec
import pytest

from paglets.core.errors import BodyTooLargeError, SerializationError
from paglets.http import Request, Response, StreamResponse, error_response, json_response

T = TypeVar("T")


def run(make: Callable[[], Awaitable[T]]) -> T:
    async def main() -> T:
        return await make()

    return asyncio.run(main())


def test_request_build_for_calling_handlers_directly() -> None:
    request = Request.build(
        "POST",
        "/agents/x/messages",
        body=b'{"a": [1, 2]}',
        headers={"Content-Type": "application/json", "X-Trace": "t1"},
        query_string="oneway=1&oneway=0&empty=",
        path_params={"agent_id": "x"},
    )
    assert request.header("content-type") == "application/json"
    assert request.header("X-TRACE") == "t1"
    assert request.header("missing") is None
    assert request.query == {"oneway": "1", "empty": ""}
    assert request.content_length == 13
    assert run(request.json) == {"a": [1, 2]}
    assert run(request.body) == b'{"a": [1, 2]}'  # cached: a second read gives the same bytes


def test_body_limits_and_bad_json() -> None:
    with pytest.raises(BodyTooLargeError):
        run(lambda: Request.build("POST", "/", body=b"x" * 11).body(limit=10))
    with pytest.raises(BodyTooLargeError):
        Request.build("POST", "/", body=b"x" * 11).stream(limit=10)
    with pytest.raises(SerializationError, match="not valid JSON"):
        run(Request.build("POST", "/", body=b"{").json)
    assert run(Request.build("GET", "/").json) == {}


def test_stream_yields_the_body() -> None:
    async def collect() -> bytes:
        request = Request.build("POST", "/", body=b"abcdef")
        return b"".join([bytes(piece) async for piece in request.stream()])

    assert run(collect) == b"abcdef"


def test_responses() -> None:
    response = json_response({"ok": True}, 201, headers=[("X-A", "1")])
    assert (response.status, msgspec.json.decode(response.body), response.content_type) == (
        201,
        {"ok": True},
        "application/json",
    )
    assert response.headers == [("X-A", "1")]
    assert Response().status == 200
    stream = StreamResponse(200, [b"a"])
    assert (stream.content_type, stream.content_length) == ("application/octet-stream", None)
    error = error_response(KeyError("k"), status=503, headers=[("Retry-After", "1")])
    assert error.status == 503
    assert msgspec.json.decode(error.body)["error_type"] == "RemoteHostError"


def test_server_limits_must_be_positive() -> None:
    from paglets.http import ServerLimits

    assert ServerLimits(idle_timeout=0.5).idle_timeout == 0.5
    with pytest.raises(ValueError, match="max_connections"):
        ServerLimits(max_connections=0)
