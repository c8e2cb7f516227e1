"""Drive a server connection from bytes, without sockets (tests, fuzzing, property checks).

:func:`feed` builds one :class:`~paglets.http._connection.ServerConnection` of an :class:`HttpServer`,
attaches a :class:`MemoryTransport`, delivers the given pieces one by one (yielding to the loop between
pieces so that the connection's task sees every split, and honouring ``pause_reading``), signals EOF,
and waits for the connection to finish. :func:`parse_responses` splits what the server wrote back into
responses with the same exchange code the clients use, so malformed output is caught too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from paglets.http._body import END, ByteQueue, Piece, Signal
from paglets.http._clientcore import ClientExchange, Target
from paglets.http.server import HttpServer

__all__ = ["FeedResult", "MemoryTransport", "ParsedResponse", "feed", "parse_responses"]

#: Loop turns ``feed(eof=False)`` gives the connection to process its input.
_SETTLE_TURNS = 20


class MemoryTransport(asyncio.Transport):
    """A transport that records writes and closes; reading is driven by the caller."""

    def __init__(self, protocol: asyncio.Protocol, peer: tuple[str, int] = ("127.0.0.1", 40000)) -> None:
        super().__init__()
        self._protocol = protocol
        self._peer = peer
        self.output = bytearray()
        self.closed = False
        self.aborted = False
        self.eof_written = False
        self.reading_paused = False
        self._readable = asyncio.Event()
        self._readable.set()

    async def wait_readable(self) -> None:
        """Until the protocol resumes reading (or the transport closes)."""
        await self._readable.wait()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._peer if name == "peername" else default

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self.closed and not self.eof_written:
            self.output += data

    def writelines(self, list_of_data: Iterable[bytes | bytearray | memoryview]) -> None:
        for data in list_of_data:
            self.write(data)

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.eof_written = True

    def pause_reading(self) -> None:
        self.reading_paused = True
        self._readable.clear()

    def resume_reading(self) -> None:
        self.reading_paused = False
        self._readable.set()

    def is_reading(self) -> bool:
        return not self.reading_paused

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._readable.set()
            asyncio.get_running_loop().call_soon(self._protocol.connection_lost, None)

    def abort(self) -> None:
        self.aborted = True
        self.close()


@dataclass(frozen=True, slots=True)
class FeedResult:
    output: bytes
    #: The server closed the connection, or half-closed it (lingering close).
    closed: bool
    aborted: bool
    #: Per final response, the method to parse it with (``parse_responses(output, methods)``).
    methods: list[str]


async def feed(server: HttpServer, pieces: Iterable[bytes], *, eof: bool = True) -> FeedResult:
    """Deliver ``pieces`` to a fresh connection of ``server`` and wait until it is done with them.

    With ``eof`` the connection ends (the server closes after answering); without it, ``feed`` returns
    after the connection had a few loop turns to process the input. Wrap it in ``asyncio.timeout``.
    """
    protocol = server.protocol()
    transport = MemoryTransport(protocol)
    methods: list[str] = []
    protocol.response_methods = methods
    protocol.connection_made(transport)
    for piece in pieces:
        await transport.wait_readable()
        if transport.closed or transport.eof_written:
            break
        protocol.data_received(piece)
        await asyncio.sleep(0)  # one loop turn: the connection's task sees this split
    if eof and not transport.closed:
        await transport.wait_readable()
        if not protocol.eof_received():
            transport.close()
    task = protocol.task
    if not eof:
        for _ in range(_SETTLE_TURNS):
            await asyncio.sleep(0)
        closed = transport.closed or transport.eof_written
        if not transport.closed:
            transport.close()  # the peer goes away; the connection's task ends
    if task is not None:
        await asyncio.shield(task)
    if eof:
        closed = transport.closed or transport.eof_written
    if not transport.closed:
        transport.close()
    await asyncio.sleep(0)  # deliver connection_lost
    return FeedResult(bytes(transport.output), closed, transport.aborted, methods)


@dataclass(frozen=True, slots=True)
class ParsedResponse:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes

    def header(self, name: str) -> str | None:
        key = name.lower().encode("latin-1")
        for header_name, value in self.headers:
            if header_name == key:
                return value.decode("latin-1")
        return None


def parse_responses(data: bytes, methods: Iterable[str] = ()) -> list[ParsedResponse]:
    """Every complete response in ``data`` (``methods`` of the requests, for ``HEAD``; default GET).

    Raises :class:`~paglets.core.errors.ProtocolError` (or ``FrameError``) for malformed output; a
    trailing incomplete response is an error too.
    """
    queue = ByteQueue()
    queue.append(data)
    method_list = list(methods)
    out: list[ParsedResponse] = []
    index = 0
    while queue:
        method = method_list[index] if index < len(method_list) else "GET"
        index += 1
        exchange = ClientExchange(method)
        exchange.head(Target("test", 80, "test", "/"), headers=None, api_key=None, body=None)
        exchange.end()
        head = exchange.receive_head(queue, True)
        assert head is not None  # eof=True: a head or an exception
        parts: list[Piece] = []
        while True:
            piece = exchange.next_piece(queue, True)
            if isinstance(piece, Signal):
                assert piece is END
                break
            parts.append(piece)
        out.append(ParsedResponse(head.status, head.headers, b"".join(parts)))
    return out
