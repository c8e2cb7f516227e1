"""Helper processes for ``test_memory.py`` (not a test module).

``python _memproc.py serve`` runs a server and prints its port; it answers ``/rss`` with its current
resident memory and the largest one sampled during transfers since the last ``/rss?reset=1``, and stops
when its stdin closes. ``python _memproc.py upload|download PORT SIZE`` runs one transfer with
``HttpClient`` and prints its resident memory before and the largest during the transfer (sampled at
every piece, from ``/proc/self/statm``) with the transfer result, as JSON.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import zlib
from collections.abc import AsyncIterator, Iterator

from paglets.http import HttpClient, HttpServer, Request, Response, Router, StreamResponse, json_response
from paglets.http.server import new_event_loop

PIECE = 1024 * 1024
_PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_now() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * _PAGE


def block() -> bytes:
    return bytes(range(256)) * (PIECE // 256)


def serve() -> None:
    router = Router()
    data = block()
    observed = {"max": 0}

    def sample() -> None:
        observed["max"] = max(observed["max"], rss_now())

    async def rss(request: Request) -> Response:
        if request.query.get("reset"):
            observed["max"] = 0
        return json_response({"rss": rss_now(), "observed": observed["max"]})

    async def upload(request: Request) -> Response:
        size = 0
        crc = 0
        async for piece in request.stream():
            size += len(piece)
            crc = zlib.crc32(piece, crc)
            sample()
        return json_response({"size": size, "crc": crc})

    async def download(request: Request) -> StreamResponse:
        size = int(request.query["size"])

        async def pieces() -> AsyncIterator[bytes]:
            for _ in range(size // PIECE):
                sample()
                yield data

        return StreamResponse(200, pieces(), content_length=size)

    router.get("/rss", rss)
    router.post("/upload", upload)
    router.get("/download", download)

    async def main() -> None:
        server = HttpServer(router)
        print(await server.start(["127.0.0.1"], 0), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        await server.close(deadline=1.0)

    loop = new_event_loop()
    try:
        loop.run_until_complete(main())
    finally:
        loop.close()


def transfer(kind: str, port: int, size: int) -> None:
    base = f"http://127.0.0.1:{port}"
    data = block()
    observed = 0
    with HttpClient(timeout=60) as client:
        client.request_json("GET", f"{base}/rss")  # warm up: imports, buffers, one connection
        baseline = rss_now()
        if kind == "upload":

            def pieces() -> Iterator[bytes]:
                nonlocal observed
                for _ in range(size // PIECE):
                    observed = max(observed, rss_now())
                    yield data

            response = client.request("POST", f"{base}/upload", body=pieces())
            response.raise_for_status()
            result = response.json()
        else:
            total = 0
            crc = 0
            with client.stream("GET", f"{base}/download?size={size}") as stream:
                stream.raise_for_status()
                for piece in stream.iter_chunks():
                    total += len(piece)
                    crc = zlib.crc32(piece, crc)
                    observed = max(observed, rss_now())
            result = {"size": total, "crc": crc}
    expected_crc = 0
    for _ in range(size // PIECE):
        expected_crc = zlib.crc32(data, expected_crc)
    observed = max(observed, rss_now())
    summary = {"baseline": baseline, "observed": observed, "result": result, "expected_crc": expected_crc}
    print(json.dumps(summary))


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve()
    else:
        transfer(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
