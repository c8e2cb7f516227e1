"""Large JSON bodies are decoded in the server's worker threads, so the loop keeps serving meanwhile."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import msgspec

from paglets.core.errors import HostError
from paglets.http import HttpClient, Request, Response, ServerLimits, json_response

from .conftest import WAIT, ServerThread, build_router


class Gate:
    """A decode that records its thread and, when armed, blocks until the test lets it go."""

    def __init__(self, *, block: bool) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.block = block
        self.threads: list[str] = []

    def decode(self, body: bytes) -> Any:
        self.threads.append(threading.current_thread().name)
        self.entered.set()
        if self.block and not self.release.wait(WAIT):
            raise HostError("the test never released the decode")
        return msgspec.json.decode(body)


def gated_server(make_server: Callable[..., ServerThread], gate: Gate, **limits: Any) -> ServerThread:
    router = build_router()

    async def decoded(request: Request) -> Response:
        value = await request.json(decode=gate.decode)
        return json_response({"items": len(value)})

    router.post("/decoded", decoded)
    return make_server(router, limits=ServerLimits(**limits))


def post(server: ServerThread, path: str, body: bytes) -> Any:
    with HttpClient() as client:
        response = client.request("POST", server.url(path), body=body, content_type="application/json")
        assert response.status == 200, response.body
        return msgspec.json.decode(response.body)


def test_a_large_body_is_decoded_while_the_loop_keeps_serving(
    make_server: Callable[..., ServerThread],
) -> None:
    gate = Gate(block=True)
    srv = gated_server(make_server, gate, json_offload_threshold=64 * 1024)
    body = msgspec.json.encode([{} for _ in range(40_000)])  # ~120 KiB of small objects
    with ThreadPoolExecutor(1) as pool:
        posted = pool.submit(post, srv, "/decoded", body)
        assert gate.entered.wait(WAIT)
        # the decode is parked in a worker thread: a loop-bound decode would block this request
        with HttpClient() as client:
            assert client.request_json("GET", srv.url("/health"))["ok"]
        gate.release.set()
        assert posted.result(WAIT) == {"items": 40_000}
    assert gate.threads[0].startswith("paglets-json")
    assert srv.stats().bodies_decoded_off_loop == 1


def test_a_small_body_is_decoded_on_the_loop(make_server: Callable[..., ServerThread]) -> None:
    gate = Gate(block=False)
    srv = gated_server(make_server, gate, json_offload_threshold=64 * 1024)
    assert post(srv, "/decoded", b"[1, 2, 3]") == {"items": 3}
    assert gate.threads == ["test-http-server"]
    assert srv.stats().bodies_decoded_off_loop == 0


def test_a_decode_error_in_the_worker_is_the_handlers_error(make_server: Callable[..., ServerThread]) -> None:
    router = build_router()

    def refuse(body: bytes) -> Any:
        raise HostError("request body must be a JSON object")

    async def decoded(request: Request) -> Response:
        return json_response(await request.json(decode=refuse))

    router.post("/refused", decoded)
    srv = make_server(router, limits=ServerLimits(json_offload_threshold=16))
    with HttpClient() as client:
        response = client.request("POST", srv.url("/refused"), body=b"[" + b"1," * 100 + b"1]")
        assert response.status == 400
        assert msgspec.json.decode(response.body)["error"] == "request body must be a JSON object"
        assert client.request_json("GET", srv.url("/health"))["ok"]
    assert srv.stats().bodies_decoded_off_loop == 1


def test_a_handler_limit_never_raises_the_configured_one(make_server: Callable[..., ServerThread]) -> None:
    router = build_router()

    async def generous(request: Request) -> Response:
        return json_response({"size": len(await request.body(limit=1000))})

    router.post("/generous", generous)
    srv = make_server(router, limits=ServerLimits(max_json_body=10))
    with HttpClient() as client:
        assert client.request("POST", srv.url("/generous"), body=b"x" * 10).status == 200
        assert client.request("POST", srv.url("/generous"), body=b"x" * 11).status == 413
