"""An asyncio web application that embeds a paglets host (run as its own process by test_aio_app.py).

``app`` is a plain ASGI application (``scope, receive, send``); ``serve`` is a minimal HTTP/1.1 server for
it on ``asyncio.start_server`` (one request per connection), so the test needs no web framework. The
application holds an ``AsyncHost`` and answers:

    POST /counters              -> {"agent_id"}             create a Counter
    POST /counters/{id}/add?n=  -> {"count"}                await proxy.send(...)
    POST /counters/{id}/block?s=-> {"result"}               a handler that blocks s seconds
    POST /counters/{id}/move    -> {"host_url"}             dispatch to the second host
    GET  /counters/{id}/cancel  -> {"cancelled", "elapsed"} a blocking send under asyncio.timeout(0.2)
    GET  /ping                  -> {"pong"}                  answered while sends wait
    GET  /events?kind=&n=       -> {"kinds"}                first n events of a kind, via async for

Prints ``READY <port>`` once it serves; ends on stdin EOF.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _paglets import Counter

from paglets.core.messages import Message
from paglets.runtime.aio import AsyncHost

Send = Any


class App:
    def __init__(self, host: AsyncHost, other: AsyncHost) -> None:
        self.host, self.other = host, other
        self.proxies: dict[str, Any] = {}
        self.event_ids: list[int] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Send) -> None:
        path, method = scope["path"], scope["method"]
        query = {k: v[0] for k, v in parse_qs(scope["query_string"].decode()).items()}
        parts = path.strip("/").split("/")
        status, body = 200, {}
        try:
            if path == "/ping":
                body = {"pong": True}
            elif path == "/counters" and method == "POST":
                proxy = await self.host.create(Counter)
                self.proxies[proxy.agent_id] = proxy
                body = {"agent_id": proxy.agent_id}
            elif parts[0] == "counters" and len(parts) == 3:
                proxy = self.proxies[parts[1]]
                action = parts[2]
                if action == "add":
                    body = {"count": await proxy.send("add", {"n": int(query.get("n", "1"))})}
                elif action == "block":
                    body = {"result": await proxy.send(Message("block", arg=float(query["s"])))}
                elif action == "move":
                    moved = await self.host.dispatch(proxy.agent_id, self.other.address)
                    body = {"host_url": moved.host_url}  # the old proxy is kept: it follows
                elif action == "cancel":
                    started = time.monotonic()
                    try:
                        async with asyncio.timeout(0.2):
                            await proxy.send(Message("block", arg=2.0))
                        cancelled = False
                    except TimeoutError:
                        cancelled = True
                    body = {"cancelled": cancelled, "elapsed": time.monotonic() - started}
            elif path == "/events":
                wanted, count = query["kind"], int(query.get("n", "1"))
                kinds: list[str] = []
                async with self.host.events(since=0) as events:
                    async with asyncio.timeout(10):
                        async for event in events:
                            if event.kind == wanted:
                                kinds.append(event.kind)
                                if len(kinds) >= count:
                                    break
                body = {"kinds": kinds}
            else:
                status, body = 404, {"error": path}
        except Exception as exc:  # the test reads it
            status, body = 500, {"error": f"{type(exc).__name__}: {exc}"}
        data = json.dumps(body).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": data})


async def serve(app: App) -> None:
    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            method, target, _ = head.split(b"\r\n", 1)[0].decode().split(" ", 2)
            path, _, query = target.partition("?")
            scope = {"type": "http", "method": method, "path": path, "query_string": query.encode()}
            out: list[dict[str, Any]] = []

            async def receive() -> dict[str, Any]:
                return {"type": "http.request", "body": b"", "more_body": False}

            async def send(message: dict[str, Any]) -> None:
                out.append(message)

            await app(scope, receive, send)
            start, body = out[0], out[1]["body"]
            writer.write(
                f"HTTP/1.1 {start['status']} X\r\ncontent-length: {len(body)}\r\nconnection: close\r\n"
                "content-type: application/json\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        finally:
            writer.close()

    server = await asyncio.start_server(connection, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    print(f"READY {port}", flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)  # until the test closes our stdin
    server.close()


async def main(root: str) -> None:
    options = {"mesh_lan_discovery": False, "mesh_multicast": False}
    web = AsyncHost("web", persistence_dir=Path(root) / "web", **options)
    worker = AsyncHost("worker", persistence_dir=Path(root) / "worker", **options)
    async with web as host, worker as other:
        await serve(App(host, other))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
