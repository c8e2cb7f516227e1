"""An HTTP fault-injection proxy for movement tests: real sockets on 127.0.0.1, faults on chosen requests.

Every request is parsed with h11 (so chunked bodies are handled), forwarded to the target over a new
connection, and the response is relayed back, unless the request matches ``fault_on`` (method and path
prefix) and a fault is armed:

- ``stall``: read the request, never answer (the client times out);
- ``drop_after_response``: forward, read the whole answer, then close the client's connection unanswered;
- ``error_after_response``: forward, read the whole answer, answer the client 500 instead;
- ``duplicate``: forward the request twice (two connections) and relay the first answer;
- ``kill_mid_stream``: send the first half of the request to the target, call ``on_fault`` (which kills
  the target), then close both connections;
- ``call_and_drop``: read the request, call ``on_fault`` (which kills a host), close without forwarding;
- ``forward_call_and_drop``: forward, read the whole answer, call ``on_fault``, then close the client's
  connection unanswered.

Faults fire ``times`` times, then the proxy forwards normally.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import h11


@dataclass
class Fault:
    kind: str = "none"
    method: str = "POST"
    path_prefix: str = "/agents"
    times: int = 1
    fired: int = 0
    seen: list[str] = field(default_factory=list)


async def _read_message(
    reader: asyncio.StreamReader, conn: h11.Connection
) -> tuple[bytes, h11.Request | h11.Response | None]:
    """Read one whole HTTP message; returns its raw bytes and its head event (None on EOF)."""
    raw = bytearray()
    head: h11.Request | h11.Response | None = None
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            data = await reader.read(65536)
            raw += data
            conn.receive_data(data)
            if not data and head is None:
                return bytes(raw), None
            continue
        if isinstance(event, (h11.Request, h11.Response)):
            head = event
        elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
            return bytes(raw), head


class FaultProxy:
    """Runs its own event loop in a thread; ``url`` is where clients connect."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.fault = Fault()
        self.on_fault: Callable[[], None] = lambda: None
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.base_events.Server | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, daemon=True)
        self._thread.start()
        self._ready.wait(10)
        assert self._server is not None
        self.port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"

    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def start() -> None:
            self._server = await asyncio.start_server(self._client, "127.0.0.1", 0)
            self._ready.set()

        self._loop.run_until_complete(start())
        self._loop.run_forever()
        self._loop.close()

    def arm(self, kind: str, *, times: int = 1, method: str = "POST", path_prefix: str = "/agents") -> None:
        self.fault = Fault(kind=kind, method=method, path_prefix=path_prefix, times=times)

    async def _exchange(self, raw: bytes) -> bytes:
        reader, writer = await asyncio.open_connection(*self.target)
        try:
            writer.write(raw)
            await writer.drain()
            response, _ = await _read_message(reader, h11.Connection(h11.CLIENT))
            return response
        finally:
            writer.close()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                conn = h11.Connection(h11.SERVER)
                raw, head = await _read_message(reader, conn)
                if head is None:
                    return
                assert isinstance(head, h11.Request)
                method, path = head.method.decode(), head.target.decode()
                fault = self.fault
                fires = (
                    fault.kind != "none"
                    and fault.fired < fault.times
                    and method == fault.method
                    and path.startswith(fault.path_prefix)
                )
                fault.seen.append(f"{method} {path}")
                if not fires:
                    writer.write(await self._exchange(raw))
                    await writer.drain()
                    continue
                fault.fired += 1
                if fault.kind == "stall":
                    await asyncio.sleep(3600)
                if fault.kind == "kill_mid_stream":
                    _r, target_writer = await asyncio.open_connection(*self.target)
                    target_writer.write(raw[: len(raw) // 2])
                    await target_writer.drain()
                    await asyncio.get_running_loop().run_in_executor(None, self.on_fault)
                    target_writer.close()
                    return
                if fault.kind == "call_and_drop":
                    await asyncio.get_running_loop().run_in_executor(None, self.on_fault)
                    return
                if fault.kind == "forward_call_and_drop":
                    await self._exchange(raw)
                    await asyncio.get_running_loop().run_in_executor(None, self.on_fault)
                    return
                if fault.kind == "duplicate":
                    first, _second = await asyncio.gather(self._exchange(raw), self._exchange(raw))
                    writer.write(first)
                    await writer.drain()
                    continue
                await self._exchange(raw)
                if fault.kind == "drop_after_response":
                    return
                if fault.kind == "error_after_response":
                    body = b'{"error_type": "RemoteHostError", "error": "injected failure"}'
                    writer.write(
                        b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\n"
                        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
                    )
                    await writer.drain()
                    continue
        except (ConnectionError, asyncio.CancelledError, h11.RemoteProtocolError):
            return
        finally:
            writer.close()

    def close(self) -> None:
        async def stop() -> None:
            assert self._server is not None
            self._server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
