"""Fuzz target: the HTTP server's connection handling (``paglets.http``), fed from bytes without sockets.

Invariant: for any byte stream sent by a client (followed by EOF), the connection handler raises nothing
out of itself, never hits an unexpected internal error, always ends by closing the connection, writes only
well-formed responses, and gives the same responses however the stream is split (same statuses, bodies
and error types; ``100 Continue`` interim answers and the wording of h11's parse errors aside).

Run with atheris (see fuzz/README.md); without atheris, ``test_one_input`` is a plain function that
``tests/http/test_fuzz_http.py`` calls on the seeds and on random inputs.
"""

from __future__ import annotations

import asyncio
import sys
import zlib
from collections.abc import AsyncIterator
from pathlib import Path

_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, _ROOT)

import msgspec

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
from paglets.http.testing import ParsedResponse, feed, parse_responses

#: Seconds one input may take (a hang is a finding).
INPUT_TIMEOUT = 5.0

#: Small limits so that the fuzzer reaches every limit check with short inputs.
LIMITS = ServerLimits(
    max_request_line=512,
    max_header_bytes=2048,
    max_header_count=16,
    max_json_body=4096,
    max_stream_body=65536,
    receive_high_water=8192,
    drain_limit=256,
)

SEEDS: tuple[bytes, ...] = (
    b"GET /health HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET /p/health?x=1 HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer k\r\n\r\n",
    b'POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 8\r\n\r\n{"a": 1}GET /health HTTP/1.0\r\n\r\n',
    b"POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"3;x=y\r\nabc\r\n0\r\nT: 1\r\n\r\n",
    b"POST /raw HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\nabc",
    b"GET /download?size=5000 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    b"DELETE /x/a%20b/c/d HTTP/1.1\r\nHost: a\r\n\r\nGET /fail/invalid HTTP/1.1\r\nHost: a\r\n\r\n",
    b"POST /ignore HTTP/1.1\r\nHost: a\r\nContent-Length: 300\r\n\r\n" + b"x" * 300,
    b"HEAD /health HTTP/1.1\r\nHost: a\r\n\r\nGET /download?size=10 HTTP/1.1\r\nHost: a\r\n\r\n",
)


def _router() -> Router:
    router = Router()

    async def health(request: Request) -> Response:
        return json_response({"ok": True, "query": request.query})

    async def echo(request: Request) -> Response:
        return json_response({"payload": await request.json()})

    async def raw(request: Request) -> Response:
        return Response(200, await request.body(), "application/octet-stream")

    async def upload(request: Request) -> Response:
        size = 0
        async for piece in request.stream():
            size += len(piece)
        return json_response({"size": size})

    async def download(request: Request) -> StreamResponse:
        size = (
            min(int(request.query.get("size", "0") or 0), 1 << 20)
            if request.query.get("size", "").isdigit()
            else 0
        )

        async def pieces() -> AsyncIterator[bytes]:
            left = size
            while left > 0:
                part = b"d" * min(left, 4096)
                left -= len(part)
                yield part

        return StreamResponse(200, pieces())

    async def describe(request: Request) -> Response:
        return json_response({"method": request.method, "path": request.path, "params": request.path_params})

    async def ignore(request: Request) -> Response:
        return json_response({"ignored": True})

    async def fail(request: Request) -> Response:
        if request.path_params["kind"] == "invalid":
            raise InvalidAgentError("no such paglet")
        raise NotHandledError("nobody handles that")

    router.get("/health", health)
    router.post("/echo", echo)
    router.post("/raw", raw)
    router.post("/upload", upload)
    router.get("/download", download)
    router.add("*", "/x/{a}/{rest:path}", describe)
    router.post("/ignore", ignore)
    router.get("/fail/{kind}", fail)
    return router


_ROUTER = _router()


def _serve(data: bytes, pieces: list[bytes], with_key: bool) -> list[ParsedResponse]:
    async def main() -> list[ParsedResponse]:
        server = HttpServer(_ROUTER, api_key="k" if with_key else None, path_prefix="/p", limits=LIMITS)
        async with asyncio.timeout(INPUT_TIMEOUT):
            result = await feed(server, pieces)
        stats = server.statistics()
        assert stats.internal_errors == 0, stats
        assert result.closed, "the connection did not end"
        assert not result.aborted, "a response was cut off"
        assert stats.connections_open == 0
        return parse_responses(result.output, result.methods)

    loop = new_event_loop()
    try:
        return loop.run_until_complete(main())
    finally:
        loop.close()


def _key(response: ParsedResponse) -> tuple[int, object]:
    """What must not depend on the split: the status and the body, or for errors the error type.

    (The text of a malformed-request error comes from h11, whose wording may depend on how much of a
    broken head it had seen: a leading CR alone is "illegal", with its LF it is "no request line".)
    """
    if response.status >= 400 and response.body:
        return response.status, msgspec.json.decode(response.body)["error_type"]
    return response.status, (response.header("content-type"), response.body)


def test_one_input(data: bytes) -> None:
    with_key = zlib.crc32(data) % 3 == 0
    whole = _serve(data, [data], with_key)
    step = zlib.crc32(data) % 61 + 1  # the split depends on the input, reproducibly
    split = _serve(data, [data[i : i + step] for i in range(0, len(data), step)], with_key)
    assert [_key(r) for r in split] == [_key(r) for r in whole]


def main() -> None:
    import atheris

    atheris.instrument_all()
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
