"""The server connection fed from bytes (no sockets): routing, errors, limits, auth, keep-alive rules."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import msgspec
import pytest

from paglets.http import HttpServer, Router, ServerLimits, ServerStatistics, new_event_loop
from paglets.http.testing import FeedResult, ParsedResponse, feed, parse_responses

from .conftest import WAIT, build_router


def run_feed(
    pieces: list[bytes], *, router: Router | None = None, eof: bool = True, parse: bool = True, **kwargs: Any
) -> tuple[FeedResult, list[ParsedResponse], ServerStatistics]:
    async def main() -> tuple[FeedResult, ServerStatistics]:
        server = HttpServer(router if router is not None else build_router(), **kwargs)
        async with asyncio.timeout(WAIT):
            result = await feed(server, pieces, eof=eof)
        return result, server.statistics()

    loop = new_event_loop()
    try:
        result, stats = loop.run_until_complete(main())
    finally:
        loop.close()
    return result, parse_responses(result.output, result.methods) if parse else [], stats


def req(method: str, target: str, body: bytes = b"", headers: dict[str, str] | None = None) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", "Host: test"]
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    if body and not any(k.lower() in ("content-length", "transfer-encoding") for k in headers or {}):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def json_of(response: ParsedResponse) -> Any:
    return msgspec.json.decode(response.body)


# --- basics -----------------------------------------------------------------------------------------------


def test_get_json_and_keep_alive_until_eof() -> None:
    _result, responses, stats = run_feed([req("GET", "/health?a=1&a=2&b=")], eof=False)
    assert [r.status for r in responses] == [200]
    assert json_of(responses[0]) == {"ok": True, "query": {"a": "1", "b": ""}}
    assert responses[0].header("content-type") == "application/json"
    assert responses[0].header("connection") is None
    assert stats.requests_served == 1


def test_pipelined_requests_are_answered_in_order() -> None:
    data = b"".join(req("POST", "/echo", msgspec.json.encode({"n": i})) for i in range(20))
    _, responses, stats = run_feed([data])
    assert [json_of(r)["payload"] for r in responses] == [{"n": i} for i in range(20)]
    assert stats.requests_served == 20
    assert stats.connections_accepted == 1


def test_path_params_are_decoded_and_tail_params_stay_raw() -> None:
    _, responses, _ = run_feed(
        [req("POST", "/agents/a%20b/messages?x=1", b"{}"), req("GET", "/describe/x/y%2Fz?q=1")]
    )
    first, second = (json_of(r) for r in responses)
    assert first["params"] == {"agent_id": "a b"}
    assert first["query"] == "x=1"
    assert second["params"] == {"rest": "x/y%2Fz"}


def test_empty_json_body_is_an_empty_object() -> None:
    _, responses, _ = run_feed([req("POST", "/echo", headers={"Content-Length": "0"})])
    assert json_of(responses[0])["payload"] == {}


def test_path_prefix_is_stripped_when_present() -> None:
    pieces = [
        req("GET", "/paglets/health"),
        req("GET", "/health"),
        req("GET", "/paglets"),
        req("GET", "/pagletsX"),
    ]
    _, responses, _ = run_feed(pieces, path_prefix="/paglets/")
    assert [r.status for r in responses] == [200, 200, 404, 404]


# --- error mapping ------------------------------------------------------------------------------------------


def test_unknown_route_is_404_and_wrong_method_is_405_with_allow() -> None:
    _, responses, stats = run_feed([req("GET", "/nope"), req("DELETE", "/health"), req("GET", "/echo")])
    assert [r.status for r in responses] == [404, 405, 405]
    assert json_of(responses[0])["error_type"] == "RouteNotFoundError"
    assert json_of(responses[1])["error_type"] == "MethodNotAllowedError"
    assert responses[1].header("allow") == "GET"
    assert responses[2].header("allow") == "POST"
    assert stats.client_errors == 3


@pytest.mark.parametrize(
    ("kind", "status", "error_type", "extra"),
    [
        ("invalid", 404, "InvalidAgentError", {"code": "invalid_agent"}),
        ("nothandled", 422, "NotHandledError", {"code": "not_handled"}),
        ("remote", 404, "InvalidAgentError", {"remote_type": "KeyError"}),
        ("other", 500, "RemoteHostError", {"remote_type": "RuntimeError", "error": "handler exploded"}),
    ],
)
def test_handler_errors_map_to_status_and_json_body(
    kind: str, status: int, error_type: str, extra: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    _, responses, stats = run_feed([req("GET", f"/fail/{kind}"), req("GET", "/health")])
    assert [r.status for r in responses] == [status, 200]  # the connection keeps serving
    body = json_of(responses[0])
    assert body["error_type"] == error_type
    assert isinstance(body["error"], str)
    for key, value in extra.items():
        assert body[key] == value
    assert "remote_traceback" not in body  # never sent unless the server exposes tracebacks
    assert stats.internal_errors == (1 if kind == "other" else 0)
    if kind == "other":
        assert "handler exploded" in caplog.text


def test_remote_tracebacks_are_logged_unless_exposed(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="paglets.http"):
        _, responses, _ = run_feed([req("GET", "/fail/remote")])
    assert "remote_traceback" not in json_of(responses[0])
    assert "Traceback: ..." in caplog.text  # the operator finds it in the host's log
    caplog.clear()
    _, responses, _ = run_feed([req("GET", "/fail/remote")], expose_tracebacks=True)
    assert json_of(responses[0])["remote_traceback"] == "Traceback: ..."


def test_handler_returning_garbage_or_invalid_status_is_a_500() -> None:
    router = Router()

    async def garbage(request: Any) -> Any:
        return {"not": "a response"}

    async def bad_status(request: Any) -> Any:
        from paglets.http import Response

        return Response(42, b"")

    router.get("/garbage", garbage)
    router.get("/bad-status", bad_status)
    _, responses, stats = run_feed([req("GET", "/garbage"), req("GET", "/bad-status")], router=router)
    assert [r.status for r in responses] == [500, 500]
    assert stats.internal_errors == 2


def test_bad_json_is_a_400_serialization_error_and_keeps_the_connection() -> None:
    _, responses, _ = run_feed([req("POST", "/echo", b"{nope"), req("GET", "/health")])
    assert [r.status for r in responses] == [400, 200]
    assert json_of(responses[0])["error_type"] == "SerializationError"


# --- malformed and oversized input --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "garbage",
    [
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # a TLS ClientHello
        b"GET\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nBad Header\r\n\r\n",
        b"GET / HTTP/1.1\r\n\r\n",  # HTTP/1.1 without Host
        b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
    ],
)
def test_malformed_requests_get_400_and_close(garbage: bytes) -> None:
    result, responses, stats = run_feed([garbage], eof=False)
    assert [r.status for r in responses] == [400]
    assert json_of(responses[0])["error_type"] == "ProtocolError"
    assert result.closed
    assert stats.protocol_errors == 1


def test_unsupported_http_version_is_505() -> None:
    result, responses, _ = run_feed([b"GET / HTTP/9.9\r\nHost: a\r\n\r\n"], eof=False)
    assert [r.status for r in responses] == [505]
    assert result.closed


def test_unsupported_transfer_encoding_is_refused() -> None:
    result, responses, _ = run_feed(
        [b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n"], eof=False
    )
    assert responses[0].status == 501
    assert result.closed


def test_content_length_and_transfer_encoding_together_are_refused() -> None:
    data = (
        b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    )
    result, responses, _ = run_feed([data], eof=False)
    assert [r.status for r in responses] == [400]
    assert result.closed


def test_oversized_head_is_431() -> None:
    limits = ServerLimits(max_header_bytes=1024)
    data = req("GET", "/health", headers={"X-Big": "a" * 2000})
    result, responses, _ = run_feed([data], eof=False, limits=limits)
    assert [r.status for r in responses] == [431]
    assert json_of(responses[0])["error_type"] == "HeadersTooLargeError"
    assert result.closed


def test_too_many_headers_is_431() -> None:
    limits = ServerLimits(max_header_count=5)
    data = req("GET", "/health", headers={f"X-{i}": "v" for i in range(10)})
    _, responses, _ = run_feed([data], eof=False, limits=limits)
    assert [r.status for r in responses] == [431]


def test_long_request_line_is_414_even_before_the_line_ends() -> None:
    limits = ServerLimits(max_request_line=100)
    _, responses, _ = run_feed([b"GET /" + b"a" * 200], eof=False, limits=limits)
    assert [r.status for r in responses] == [414]
    assert json_of(responses[0])["error_type"] == "LimitExceededError"


def test_declared_body_over_the_limit_is_413_without_reading_it() -> None:
    limits = ServerLimits(max_json_body=10)
    head = b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 1000000\r\n\r\n"
    result, responses, _ = run_feed([head], eof=False, limits=limits)
    assert [r.status for r in responses] == [413]
    assert json_of(responses[0])["error_type"] == "BodyTooLargeError"
    assert responses[0].header("connection") == "close"
    assert result.closed


def test_chunked_body_over_the_limit_is_413() -> None:
    limits = ServerLimits(max_json_body=10)
    head = b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    _, responses, _ = run_feed([head, b"8\r\n12345678\r\n", b"8\r\n12345678\r\n"], eof=False, limits=limits)
    assert [r.status for r in responses] == [413]


def test_streamed_body_over_the_limit_is_413_even_if_the_handler_swallows_it() -> None:
    router = Router()

    async def swallow(request: Any) -> Any:
        from paglets.http import json_response

        try:
            async for _ in request.stream(limit=5):
                pass
        except Exception:
            pass
        return json_response({"ok": True})

    router.post("/swallow", swallow)
    data = (
        b"POST /swallow HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n8\r\n12345678\r\n0\r\n\r\n"
    )
    _, responses, _ = run_feed([data], router=router)
    assert [r.status for r in responses] == [413]


@pytest.mark.parametrize(
    "body",
    [b"zz\r\nab\r\n0\r\n\r\n", b"2\r\nabXX0\r\n\r\n", b"2\nab\r\n0\r\n\r\n", b"11111111111111111\r\n"],
)
def test_malformed_chunked_body_is_400(body: bytes) -> None:
    head = b"POST /raw HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    result, responses, _ = run_feed([head + body], eof=False)
    assert [r.status for r in responses] == [400]
    assert json_of(responses[0])["error_type"] == "FrameError"
    assert result.closed


def test_truncated_body_at_eof_is_a_400() -> None:
    _, responses, stats = run_feed([b"POST /raw HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc"])
    assert [r.status for r in responses] == [400]
    assert stats.protocol_errors == 1


# --- bodies -------------------------------------------------------------------------------------------------


def test_chunked_request_with_extensions_and_trailers() -> None:
    data = (
        b"POST /raw HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3;name=value\r\nabc\r\n"
        b"A \r\n0123456789\r\n"
        b"0\r\nX-Trailer: yes\r\n\r\n"
    )
    _, responses, _ = run_feed([data, req("GET", "/health")])
    assert [r.status for r in responses] == [200, 200]
    assert responses[0].body == b"abc0123456789"


def test_small_unread_body_is_drained_and_the_connection_kept() -> None:
    result, responses, _ = run_feed([req("POST", "/ignore", b"x" * 100) + req("GET", "/health")], eof=False)
    assert [r.status for r in responses] == [200, 200]
    assert responses[0].header("connection") is None
    assert not result.closed


def test_large_unread_body_closes_the_connection() -> None:
    limits = ServerLimits(drain_limit=10)
    result, responses, _ = run_feed([req("POST", "/ignore", b"x" * 100)], eof=False, limits=limits)
    assert [r.status for r in responses] == [200]
    assert responses[0].header("connection") == "close"
    assert result.closed


def test_expect_100_continue_is_answered_when_the_body_is_read() -> None:
    head = b"POST /raw HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n"
    result, _, _ = run_feed([head, b"abc"])
    assert result.output.startswith(b"HTTP/1.1 100 ")
    assert b"HTTP/1.1 200 " in result.output
    assert result.output.endswith(b"abc")


@pytest.mark.parametrize("chunked", ["0", "1"])
def test_stream_response_with_and_without_length(chunked: str) -> None:
    _, responses, _ = run_feed([req("GET", f"/download?size=100000&piece=4096&chunked={chunked}")])
    assert responses[0].status == 200
    assert responses[0].body == (bytes(range(256)) * 16 * 25)[:100000]
    if chunked == "1":
        assert responses[0].header("transfer-encoding") == "chunked"
    else:
        assert responses[0].header("content-length") == "100000"


def test_stream_response_with_wrong_length_drops_the_connection(caplog: pytest.LogCaptureFixture) -> None:
    router = Router()

    async def short(request: Any) -> Any:
        from paglets.http import StreamResponse

        return StreamResponse(200, [b"abc"], content_length=10)

    router.get("/short", short)
    result, _, _ = run_feed([req("GET", "/short")], router=router, eof=False, parse=False)
    assert result.aborted
    assert result.output.endswith(b"\r\n\r\nabc")
    assert "streaming response body failed" in caplog.text


# --- keep-alive rules ---------------------------------------------------------------------------------------


def test_connection_close_and_http10_close_after_the_response() -> None:
    result, responses, _ = run_feed([req("GET", "/health", headers={"Connection": "close"})], eof=False)
    assert responses[0].header("connection") == "close"
    assert result.closed
    result, responses, _ = run_feed([b"GET /health HTTP/1.0\r\n\r\n"], eof=False)
    assert responses[0].status == 200
    assert result.closed


# --- auth ---------------------------------------------------------------------------------------------------


def test_auth_required_on_every_route_with_the_contract_body() -> None:
    pieces = [req("GET", "/health"), req("GET", "/nope")]
    result, responses, _ = run_feed(pieces, api_key="s3cret", eof=False)
    assert [r.status for r in responses] == [401, 401]
    assert responses[0].header("www-authenticate") == "Bearer"
    assert json_of(responses[0]) == {
        "error_type": "AuthenticationError",
        "error": "Authentication required: the request has no API key (Authorization: Bearer <key>)",
    }
    assert not result.closed  # no body announced: keep-alive


@pytest.mark.parametrize("value", ["Bearer s3cret", "bearer s3cret", "BEARER  s3cret "])
def test_auth_accepts_the_key_with_any_scheme_case(value: str) -> None:
    _, responses, _ = run_feed([req("GET", "/health", headers={"Authorization": value})], api_key="s3cret")
    assert [r.status for r in responses] == [200]


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("Bearer wrong", "the API key is wrong"),
        ("Bearer", "the API key is wrong"),
        ("Basic s3cret", "is not 'Bearer <key>'"),
        ("s3cret", "is not 'Bearer <key>'"),
    ],
)
def test_auth_rejects_wrong_keys_and_says_why(value: str, says: str) -> None:
    _, responses, _ = run_feed([req("GET", "/health", headers={"Authorization": value})], api_key="s3cret")
    assert [r.status for r in responses] == [401]
    body = json_of(responses[0])
    assert body["error_type"] == "AuthenticationError"
    assert body["error"].startswith("Authentication required: ")  # 2.0's text first
    assert says in body["error"]


def test_auth_answers_before_reading_an_announced_body_and_closes() -> None:
    head = b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 1000000\r\n\r\n"
    result, responses, _ = run_feed([head], api_key="s3cret", eof=False)
    assert [r.status for r in responses] == [401]
    assert responses[0].header("connection") == "close"
    assert result.closed


# --- HEAD and 100-continue corner cases ------------------------------------------------------------------


def test_head_requests_get_heads_only() -> None:
    router = build_router()

    async def head(request: Any) -> Any:
        from paglets.http import json_response

        return json_response({"would": "be the body"})

    router.add("HEAD", "/health", head)
    data = b"HEAD /health HTTP/1.1\r\nHost: a\r\n\r\nHEAD /echo HTTP/1.1\r\nHost: a\r\n\r\n"
    result, _, _ = run_feed([data, req("GET", "/health")], router=router, parse=False)
    assert result.methods == ["HEAD", "HEAD", "GET"]
    responses = parse_responses(result.output, result.methods)
    assert [r.status for r in responses] == [200, 405, 200]
    assert responses[0].body == b""
    assert responses[0].header("content-length") == str(len(b'{"would":"be the body"}'))
    assert responses[1].header("allow") == "POST"


def test_unread_body_of_a_client_waiting_for_100_continue_closes_the_connection() -> None:
    head = b"POST /ignore HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\nExpect: 100-continue\r\n\r\n"
    result, responses, _ = run_feed([head], eof=False)
    assert [r.status for r in responses] == [200]
    assert b" 100 " not in result.output
    assert responses[0].header("connection") == "close"
    assert result.closed


def test_invalid_utf8_in_json_is_a_400() -> None:
    # msgspec raises UnicodeDecodeError (not DecodeError) here; found by fuzz/fuzz_http.py
    _, responses, stats = run_feed([req("POST", "/echo", b'{"\x9f": 1}')])
    assert [r.status for r in responses] == [400]
    assert json_of(responses[0])["error_type"] == "SerializationError"
    assert stats.internal_errors == 0


def test_handlers_may_not_set_framing_headers() -> None:
    router = Router()

    async def sneaky(request: Any) -> Any:
        from paglets.http import Response

        return Response(200, b"x", headers=[("Content-Length", "100")])

    async def injecting(request: Any) -> Any:
        from paglets.http import Response

        return Response(200, b"x", headers=[("X-A", "1\r\nSet-Cookie: evil")])

    router.get("/sneaky", sneaky)
    router.get("/inject", injecting)
    _, responses, stats = run_feed([req("GET", "/sneaky"), req("GET", "/inject")], router=router)
    assert [r.status for r in responses] == [500]  # the invalid response closes the connection
    assert stats.internal_errors == 1
    _, responses, _ = run_feed([req("GET", "/inject")], router=router)
    assert [r.status for r in responses] == [500]
    assert all(name != b"set-cookie" for name, _ in responses[0].headers)


def test_http10_client_gets_a_close_delimited_stream() -> None:
    result, _, _ = run_feed([b"GET /download?size=5000&chunked=1 HTTP/1.0\r\n\r\n"], eof=False, parse=False)
    head, _, body = result.output.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK")
    assert b"transfer-encoding" not in head.lower()
    assert b"connection: close" in head.lower()
    assert len(body) == 5000
    assert result.closed


def test_reason_phrases() -> None:
    result, _, _ = run_feed([req("GET", "/health"), req("GET", "/nope")], parse=False)
    assert result.output.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"HTTP/1.1 404 Not Found\r\n" in result.output
