"""Property: any split of a valid request byte stream gives the same parsed requests (and responses).

The server's connection handler is fed without sockets (``paglets.http.testing.feed``); the route
``/describe/{rest:path}`` answers with everything the server parsed (method, paths, query, parameters,
headers, body length and checksum), so equal responses mean equal parsed requests.
"""

from __future__ import annotations

import asyncio
import itertools
import zlib

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from paglets.http import HttpServer, new_event_loop
from paglets.http.testing import feed, parse_responses

from .conftest import WAIT, build_router

_token = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_", min_size=1, max_size=8)
_segment = st.one_of(_token, _token.map(lambda t: t + "%20x"))
_header_value = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ;=/,.", max_size=30
)


@st.composite
def requests(draw: st.DrawFn) -> tuple[bytes, dict[str, object]]:
    method = draw(st.sampled_from(["GET", "POST", "PUT", "DELETE"]))
    segments = draw(st.lists(_segment, min_size=1, max_size=4))
    prefix = draw(st.sampled_from(["", "/paglets"]))
    query = draw(st.one_of(st.just(""), st.lists(_token, min_size=1, max_size=3).map("&".join)))
    path = prefix + "/describe/" + "/".join(segments)
    target = path + (f"?{query}" if query else "")
    headers = draw(st.lists(st.tuples(_token.map(lambda t: "X-" + t), _header_value), max_size=5))
    body = draw(st.binary(max_size=200)) if method in ("POST", "PUT") else b""
    chunked = bool(body) and draw(st.booleans())
    lines = [f"{method} {target} HTTP/1.1", "Host: example"]
    lines += [f"{name}: {value.strip()}" for name, value in headers]
    if chunked:
        lines.append("Transfer-Encoding: chunked")
        sizes = draw(st.lists(st.integers(1, 64), min_size=1, max_size=5))
        wire_body = b""
        position = 0
        for size in sizes:
            part = body[position : position + size]
            if part:
                wire_body += b"%x\r\n" % len(part) + part + b"\r\n"
                position += len(part)
        if position < len(body):
            wire_body += b"%x\r\n" % (len(body) - position) + body[position:] + b"\r\n"
        wire_body += b"0\r\n\r\n"
    else:
        if body or method in ("POST", "PUT"):
            lines.append(f"Content-Length: {len(body)}")
        wire_body = body
    wire = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + wire_body
    expected = {"method": method, "query": query, "body_len": len(body), "body_crc": zlib.crc32(body)}
    return wire, expected


def run(pieces: list[bytes]) -> bytes:
    async def main() -> bytes:
        server = HttpServer(build_router(), path_prefix="/paglets")
        async with asyncio.timeout(WAIT):
            result = await feed(server, pieces)
        assert server.statistics().internal_errors == 0
        return result.output

    loop = new_event_loop()
    try:
        return loop.run_until_complete(main())
    finally:
        loop.close()


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    edges = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges) if b > a]


@settings(max_examples=60)
@given(st.lists(requests(), min_size=1, max_size=4), st.lists(st.integers(0, 10_000), max_size=30))
def test_any_split_of_pipelined_requests_parses_the_same(
    reqs: list[tuple[bytes, dict[str, object]]], cuts: list[int]
) -> None:
    stream = b"".join(wire for wire, _ in reqs)
    whole = run([stream])
    pieces = split(stream, cuts)
    assert run(pieces) == whole
    byte_by_byte = [stream[i : i + 1] for i in range(min(len(stream), 400))]
    assert run([*byte_by_byte, stream[400:]]) == whole
    responses = parse_responses(whole)
    assert len(responses) == len(reqs)
    for response, (_, expected) in zip(responses, reqs, strict=True):
        assert response.status == 200, response.body
        parsed = msgspec.json.decode(response.body)
        for key, value in expected.items():
            assert parsed[key] == value
        assert parsed["path"].startswith("/describe/")
