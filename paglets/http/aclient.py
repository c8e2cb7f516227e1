"""Async HTTP/1.1 client for the host's outbound calls, on the running event loop.

Same surface and rules as :mod:`paglets.http.client` (pool per (scheme, host, port), timeouts, retry of a
replayable request that failed on a stale reused connection before any response byte, early answers
preferred over broken pipes) and the same socket-free exchange
(:class:`~paglets.http._clientcore.ClientExchange`); only the socket driver differs: non-blocking sockets
driven with ``loop.sock_*`` under ``asyncio.timeout``.

A client belongs to the loop it was first used on (its pooled sockets are registered there); using it
from another loop raises ``RuntimeError``. Close it with ``await client.aclose()``.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from typing import Any

from paglets._errors import BodyTooLargeError, PagletError, RemoteHostError
from paglets.http._body import END, ByteQueue, Piece, Signal
from paglets.http._clientcore import (
    ClientExchange,
    ResponseHead,
    Target,
    decode_json,
    encode_json,
    header_value,
    parse_url,
    raise_for_status,
)
from paglets.http.client import ClientResponse
from paglets.http.limits import (
    CLIENT_CONNECT_TIMEOUT,
    CLIENT_IDLE_TIMEOUT,
    CLIENT_MAX_IDLE_PER_HOST,
    CLIENT_TIMEOUT,
    DOWNLOAD_CHUNK,
    MAX_RESPONSE_BODY,
)
from paglets.http.tls import TLS_WRITE_PIECE, TlsSession, client_context

__all__ = ["AsyncBodyArg", "AsyncHttpClient", "AsyncStreamingClientResponse", "ClientResponse"]

#: Request bodies of the async client: like the blocking client's, plus async iterables.
AsyncBodyArg = bytes | bytearray | memoryview | Iterable[Piece] | AsyncIterable[Piece] | None

_RECV_SIZE = 256 * 1024
_MAX_ERROR_BODY = 1024 * 1024
_COALESCE_LIMIT = 64 * 1024


class _Connection:
    __slots__ = ("eof", "idle_since", "inbox", "reused", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.inbox = ByteQueue()
        self.eof = False
        self.reused = False
        self.idle_since = 0.0

    async def receive(
        self, loop: asyncio.AbstractEventLoop, io_timeout: float, size: int = _RECV_SIZE
    ) -> None:
        async with asyncio.timeout(io_timeout):
            data = await loop.sock_recv(self.sock, size)
        if data:
            self.inbox.append(data)
        else:
            self.eof = True

    async def send(self, loop: asyncio.AbstractEventLoop, io_timeout: float, parts: list[Piece]) -> None:
        async with asyncio.timeout(io_timeout):
            for part in parts:
                if len(part):
                    await loop.sock_sendall(self.sock, part)

    def looks_alive(self) -> bool:
        if self.inbox or self.eof:
            return False
        try:
            self.sock.recv(1, socket.MSG_PEEK)
        except BlockingIOError:
            return True
        except OSError:
            return False
        return False

    def close(self) -> None:
        self.sock.close()


class _TlsConnection(_Connection):
    """A connection whose bytes go through a :class:`~paglets.http.tls.TlsSession` (same surface)."""

    __slots__ = ("session",)

    def __init__(self, sock: socket.socket, session: TlsSession) -> None:
        super().__init__(sock)
        self.session = session

    async def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        data = self.session.outgoing()
        if data:
            await loop.sock_sendall(self.sock, data)

    async def handshake(self, loop: asyncio.AbstractEventLoop) -> None:
        while not self.session.handshake():
            await self._flush(loop)
            data = await loop.sock_recv(self.sock, _RECV_SIZE)
            if not data:
                raise ConnectionResetError("connection closed during the TLS handshake")
            self.session.feed(data)
        await self._flush(loop)

    async def receive(
        self, loop: asyncio.AbstractEventLoop, io_timeout: float, size: int = _RECV_SIZE
    ) -> None:
        async with asyncio.timeout(io_timeout):
            while True:
                data = self.session.read(size)
                if data is not None:
                    break
                await self._flush(loop)  # post-handshake messages may need an answer
                self.session.feed(await loop.sock_recv(self.sock, _RECV_SIZE))
        if data:
            self.inbox.append(data)
        else:
            self.eof = True

    async def send(self, loop: asyncio.AbstractEventLoop, io_timeout: float, parts: list[Piece]) -> None:
        async with asyncio.timeout(io_timeout):
            for part in parts:
                view = memoryview(part)
                for start in range(0, view.nbytes, TLS_WRITE_PIECE):
                    self.session.write(view[start : start + TLS_WRITE_PIECE])
                    await self._flush(loop)

    def looks_alive(self) -> bool:
        """Idle and in step: ciphertext waiting on the socket is read; TLS housekeeping (session tickets)
        is fine, plaintext or a close is not."""
        if self.inbox or self.eof or self.session.pending():
            return False
        while True:
            try:
                data = self.sock.recv(_RECV_SIZE)
            except BlockingIOError:
                return True
            except OSError:
                return False
            if not data:
                return False
            self.session.feed(data)
            try:
                plain = self.session.read(_RECV_SIZE)
            except ssl.SSLError:
                return False
            if plain is not None:
                return False


class AsyncStreamingClientResponse:
    """A response whose body is read on demand; use it inside ``AsyncHttpClient.stream(...)``."""

    def __init__(
        self,
        client: AsyncHttpClient,
        target: Target,
        conn: _Connection,
        exchange: ClientExchange,
        head: ResponseHead,
        url: str,
        timeout: float,
    ) -> None:
        self._client = client
        self._target = target
        self._conn: _Connection | None = conn
        self._exchange = exchange
        self._timeout = timeout
        self.status = head.status
        self.headers = head.headers
        self.url = url

    def __repr__(self) -> str:
        return f"<AsyncStreamingClientResponse {self.status} {self.url}>"

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def header(self, name: str) -> str | None:
        return header_value(self.headers, name)

    async def iter_chunks(self, size: int = DOWNLOAD_CHUNK) -> AsyncGenerator[Piece, None]:
        """Body pieces as they arrive."""
        conn = self._conn
        if conn is None:
            return
        loop = asyncio.get_running_loop()
        exchange = self._exchange
        try:
            while True:
                piece = exchange.next_piece(conn.inbox, conn.eof)
                if isinstance(piece, Signal):
                    if piece is END:
                        return
                    await conn.receive(loop, self._timeout, size)
                    continue
                yield piece
        except OSError as exc:
            self.close()
            raise _translate(exc, self.url) from exc

    async def read(self, limit: int = MAX_RESPONSE_BODY) -> bytes:
        parts: list[Piece] = []
        total = 0
        chunks = self.iter_chunks()
        try:
            async for piece in chunks:
                total += len(piece)
                if total > limit:
                    self.close()
                    raise BodyTooLargeError(f"response body from {self.url} exceeds {limit} bytes")
                parts.append(piece)
        finally:
            await chunks.aclose()
        if len(parts) == 1 and isinstance(parts[0], bytes):
            return parts[0]
        return b"".join(parts)

    async def json(self) -> Any:
        return decode_json(await self.read(), self.url)

    async def raise_for_status(self) -> None:
        if not self.ok:
            raise_for_status(self.status, await self.read(_MAX_ERROR_BODY), self.url)

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            self._client._release(self._target, conn, self._exchange.reusable)


class AsyncHttpClient:
    """See the module docstring."""

    def __init__(
        self,
        *,
        api_key: str | None = None,
        timeout: float = CLIENT_TIMEOUT,
        connect_timeout: float = CLIENT_CONNECT_TIMEOUT,
        max_idle_per_host: int = CLIENT_MAX_IDLE_PER_HOST,
        max_response_body: int = MAX_RESPONSE_BODY,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.api_key = api_key
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.max_response_body = max_response_body
        #: Context for ``https://`` URLs (``None``: :func:`paglets.http.tls.client_context`).
        self.ssl_context = ssl_context
        self._max_idle = max_idle_per_host
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    async def __aenter__(self) -> AsyncHttpClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close idle connections; connections in use close when their response is released."""
        self.close()

    def close(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, {}
        for conns in idle.values():
            for conn in conns:
                conn.close()

    def _bind_loop(self) -> asyncio.AbstractEventLoop:
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
        elif self._loop is not loop:
            raise RuntimeError("AsyncHttpClient used from a different event loop than its first use")
        return loop

    # --- requests ---------------------------------------------------------------------------------------

    async def request(
        self,
        method: str,
        url: str,
        *,
        body: AsyncBodyArg = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        content_type: str | None = None,
    ) -> ClientResponse:
        async with self.stream(
            method, url, body=body, headers=headers, timeout=timeout, content_type=content_type
        ) as response:
            data = await response.read(self.max_response_body)
        return ClientResponse(response.status, response.headers, data, url)

    async def request_json(
        self,
        method: str,
        url: str,
        payload: Any = None,
        *,
        timeout: float | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        body = None if payload is None else encode_json(payload)
        response = await self.request(
            method,
            url,
            body=body,
            headers=headers,
            timeout=timeout,
            content_type="application/json" if body is not None else None,
        )
        response.raise_for_status()
        return response.json()

    @asynccontextmanager
    async def stream(
        self,
        method: str,
        url: str,
        *,
        body: AsyncBodyArg = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        content_type: str | None = None,
    ) -> AsyncIterator[AsyncStreamingClientResponse]:
        if self._closed:
            raise RuntimeError("AsyncHttpClient is closed")
        loop = self._bind_loop()
        target = parse_url(url)
        response = await self._open(loop, method, target, url, body, headers, timeout, content_type)
        try:
            yield response
        finally:
            response.close()

    async def _open(
        self,
        loop: asyncio.AbstractEventLoop,
        method: str,
        target: Target,
        url: str,
        body: AsyncBodyArg,
        headers: Mapping[str, str] | None,
        request_timeout: float | None,
        content_type: str | None,
    ) -> AsyncStreamingClientResponse:
        timeout = self.timeout if request_timeout is None else request_timeout
        replayable = body is None or isinstance(body, (bytes, bytearray, memoryview))
        for attempt in (0, 1):
            exchange = ClientExchange(method)
            # Built (and validated) before a connection is touched: a bad header costs no connection.
            head_bytes = exchange.head(
                target, headers=headers, api_key=self.api_key, body=body, content_type=content_type
            )
            conn = self._take(target.key) if attempt == 0 else None
            if conn is None:
                conn = await self._connect(loop, target, url)
            try:
                head = await self._exchange(loop, conn, exchange, head_bytes, body, timeout)
            except TimeoutError as exc:
                conn.close()
                raise RemoteHostError(f"timed out after {timeout:g} s: {method} {url}") from exc
            except OSError as exc:
                conn.close()
                if attempt == 0 and conn.reused and replayable and not exchange.response_started:
                    continue
                raise _translate(exc, url) from exc
            except BaseException:
                conn.close()
                raise
            return AsyncStreamingClientResponse(self, target, conn, exchange, head, url, timeout)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _exchange(
        self,
        loop: asyncio.AbstractEventLoop,
        conn: _Connection,
        exchange: ClientExchange,
        head: bytes,
        body: AsyncBodyArg,
        io_timeout: float,
    ) -> ResponseHead:
        try:
            if body is None:
                await conn.send(loop, io_timeout, [head + exchange.end()])
            elif isinstance(body, (bytes, bytearray, memoryview)):
                data = memoryview(body)
                parts = exchange.body_parts(data) if data.nbytes else []
                tail = exchange.end()
                if data.nbytes <= _COALESCE_LIMIT:
                    await conn.send(loop, io_timeout, [b"".join([head, *parts, tail])])
                else:
                    await conn.send(loop, io_timeout, [head, *parts, tail])
            else:
                await conn.send(loop, io_timeout, [head])
                if isinstance(body, AsyncIterable):
                    async for piece in body:
                        if len(piece):
                            await conn.send(loop, io_timeout, exchange.body_parts(piece))
                else:
                    for piece in body:
                        if len(piece):
                            await conn.send(loop, io_timeout, exchange.body_parts(piece))
                await conn.send(loop, io_timeout, [exchange.end()])
        except (BrokenPipeError, ConnectionResetError) as send_error:
            try:
                return await self._read_head(loop, conn, exchange, io_timeout)
            except (OSError, PagletError):
                raise send_error from None
        return await self._read_head(loop, conn, exchange, io_timeout)

    @staticmethod
    async def _read_head(
        loop: asyncio.AbstractEventLoop, conn: _Connection, exchange: ClientExchange, io_timeout: float
    ) -> ResponseHead:
        while True:
            head = exchange.receive_head(conn.inbox, conn.eof)
            if head is not None:
                return head
            await conn.receive(loop, io_timeout)

    async def _connect(self, loop: asyncio.AbstractEventLoop, target: Target, url: str) -> _Connection:
        try:
            try:
                infos = socket.getaddrinfo(
                    target.host, target.port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST
                )
            except socket.gaierror:
                infos = await loop.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
            family, kind, proto, _, address = infos[0]
            sock = socket.socket(family, kind, proto)
        except OSError as exc:
            raise RemoteHostError(f"cannot connect to {url}: {exc}") from exc
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            async with asyncio.timeout(self.connect_timeout):
                await loop.sock_connect(sock, address)
                if target.tls:
                    context = self.ssl_context if self.ssl_context is not None else client_context()
                    conn = _TlsConnection(sock, TlsSession(context, target.host))
                    await conn.handshake(loop)
                    return conn
        except ssl.SSLError as exc:
            sock.close()
            raise RemoteHostError(f"TLS handshake with {url} failed: {exc}") from exc
        except (OSError, TimeoutError) as exc:
            sock.close()
            raise RemoteHostError(f"cannot connect to {url}: {exc or 'timed out'}") from exc
        except BaseException:
            sock.close()
            raise
        return _Connection(sock)

    def _take(self, key: tuple[str, str, int]) -> _Connection | None:
        idle = self._idle.get(key)
        now = asyncio.get_running_loop().time()
        while idle:
            conn = idle.pop()
            if now - conn.idle_since < CLIENT_IDLE_TIMEOUT and conn.looks_alive():
                conn.reused = True
                return conn
            conn.close()
        return None

    def _release(self, target: Target, conn: _Connection, reusable: bool) -> None:
        if reusable and not self._closed and self._loop is not None:
            idle = self._idle.setdefault(target.key, [])
            if len(idle) < self._max_idle:
                conn.reused = False
                conn.idle_since = self._loop.time()
                idle.append(conn)
                return
        conn.close()


def _translate(exc: OSError, url: str) -> RemoteHostError:
    if isinstance(exc, TimeoutError):
        return RemoteHostError(f"timed out talking to {url}")
    return RemoteHostError(f"connection to {url} failed: {exc}")
