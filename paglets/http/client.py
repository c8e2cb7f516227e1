"""Blocking HTTP/1.1 client for user threads and child processes.

``HttpClient`` keeps a keep-alive pool per (scheme, host, port) and is safe to share between threads:
the pool is guarded by a lock and every request uses a connection of its own (checked out, then put back
when its response was read completely). Requests and responses are framed by the socket-free
:class:`~paglets.http._clientcore.ClientExchange` that the async client shares.

Timeouts: ``connect_timeout`` bounds the TCP connect; ``timeout`` (per client, overridable per request)
bounds every send and every receive — no call waits forever. A timeout or a connection failure raises
:class:`~paglets.core.errors.RemoteHostError` naming the URL (chained to the ``OSError``).

Bodies: ``bytes`` are sent with ``Content-Length``; any other iterable of bytes-like pieces is streamed
chunked (or with a ``Content-Length`` header you pass yourself), straight from your buffers
(``sendmsg``, no joins). Downloads stream with :meth:`HttpClient.stream` and
:meth:`StreamingClientResponse.iter_chunks`.

Fork safety: a child process forked while a client holds idle connections drops them (an at-fork
hook), so parent and child never interleave requests on one socket.

Retry: see :mod:`paglets.http._clientcore` (stale reused connection, before any response byte, bytes
bodies only). If the server answers before the upload finished (401, 413) and closes, the client still
returns (or raises) that answer rather than the broken pipe.
"""

from __future__ import annotations

import os
import socket
import ssl
import struct
import sys
import threading
import time
import weakref
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Final

from paglets._errors import BodyTooLargeError, PagletError, RemoteHostError
from paglets.http._body import END, ByteQueue, Piece, Signal
from paglets.http._clientcore import (
    BodyArg,
    ClientExchange,
    ResponseHead,
    Target,
    decode_json,
    encode_json,
    header_value,
    parse_url,
    raise_for_status,
)
from paglets.http.limits import (
    CLIENT_CONNECT_TIMEOUT,
    CLIENT_IDLE_TIMEOUT,
    CLIENT_MAX_IDLE_PER_HOST,
    CLIENT_TIMEOUT,
    DOWNLOAD_CHUNK,
    MAX_RESPONSE_BODY,
)
from paglets.http.tls import TLS_WRITE_PIECE, client_context

__all__ = ["ClientResponse", "HttpClient", "StreamingClientResponse"]

#: Bytes read per ``recv`` while waiting for a response head or a small body.
_RECV_SIZE = 256 * 1024
#: Largest error body read by ``raise_for_status`` on a streaming response.
_MAX_ERROR_BODY = 1024 * 1024
#: Heads and bodies up to this size are joined into one ``send``.
_COALESCE_LIMIT = 64 * 1024


if sys.platform == "win32":
    _MSG_DONTWAIT: Final = 0  # the socket is switched to non-blocking mode around the peek instead

    def _send_gathered(sock: socket.socket, views: list[memoryview]) -> int:
        """Send what fits of the first view (no ``sendmsg`` on Windows)."""
        return sock.send(views[0])

else:
    _MSG_DONTWAIT: Final = socket.MSG_DONTWAIT

    def _send_gathered(sock: socket.socket, views: list[memoryview]) -> int:
        return sock.sendmsg(views)


class ClientResponse:
    """A response read whole."""

    __slots__ = ("body", "headers", "status", "url")

    def __init__(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes, url: str) -> None:
        self.status = status
        #: Lower-cased names, raw values.
        self.headers = headers
        self.body = body
        self.url = url

    def __repr__(self) -> str:
        return f"<ClientResponse {self.status} {self.url} {len(self.body)} bytes>"

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def header(self, name: str) -> str | None:
        return header_value(self.headers, name)

    def json(self) -> Any:
        """The body decoded as JSON (``None`` when empty)."""
        return decode_json(self.body, self.url)

    def raise_for_status(self) -> None:
        """Raise the mapped ``PagletError`` for a non-2xx status (401 hints at ``PAGLETS_API_KEY``)."""
        raise_for_status(self.status, self.body, self.url)


class _Connection:
    """One pooled socket and the bytes received on it but not consumed yet.

    The socket is in blocking mode with kernel send/receive timeouts (``SO_SNDTIMEO``/``SO_RCVTIMEO``):
    each send or receive is one system call, where Python's own timeout mode polls before every call.
    """

    __slots__ = ("eof", "idle_since", "inbox", "io_timeout", "reused", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.inbox = ByteQueue()
        self.eof = False
        self.reused = False
        self.idle_since = 0.0
        self.io_timeout: float | None = None

    def set_timeout(self, seconds: float) -> None:
        if seconds == self.io_timeout:
            return
        self.io_timeout = seconds
        whole, fraction = divmod(max(seconds, 1e-6), 1.0)  # a zero timeval would mean "wait forever"
        timeval = struct.pack("@ll", int(whole), max(int(fraction * 1e6), 0 if whole else 1))
        try:
            self.sock.settimeout(None)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeval)
        except OSError:  # pragma: no cover - platforms without timeval socket options
            self.sock.settimeout(seconds)

    def receive(self, size: int = _RECV_SIZE) -> None:
        try:
            data = self.sock.recv(size)
        except BlockingIOError as exc:  # SO_RCVTIMEO expired
            raise TimeoutError("receive timed out") from exc
        if data:
            self.inbox.append(data)
        else:
            self.eof = True

    def send(self, parts: list[Piece]) -> None:
        """Send every part, in order, without joining large ones (``sendmsg`` gathers them)."""
        sock = self.sock
        views = [memoryview(p) for p in parts if len(p)]
        while views:
            try:
                sent = _send_gathered(sock, views)
            except BlockingIOError as exc:  # SO_SNDTIMEO expired
                raise TimeoutError("send timed out") from exc
            while sent:
                first = views[0]
                if sent >= first.nbytes:
                    sent -= first.nbytes
                    views.pop(0)
                else:
                    views[0] = first[sent:]
                    sent = 0

    def looks_alive(self) -> bool:
        """No EOF, error or stray bytes waiting on an idle connection (one non-blocking peek)."""
        if self.inbox or self.eof:
            return False
        sock = self.sock
        python_timeout = sock.gettimeout()  # only set on platforms without SO_RCVTIMEO
        try:
            if python_timeout is not None:
                sock.settimeout(0.0)  # in timeout mode Python would poll first, for the whole timeout
            sock.recv(1, socket.MSG_PEEK | _MSG_DONTWAIT)
        except BlockingIOError:
            return True
        except OSError:
            return False
        finally:
            if python_timeout is not None:
                sock.settimeout(python_timeout)
        return False  # b"": the server closed it; anything else: stray bytes we cannot attribute

    def close(self) -> None:
        self.sock.close()


class _TlsConnection(_Connection):
    """A connection over an ``ssl.SSLSocket`` (in Python's timeout mode: TLS records need several system
    calls, so the kernel timeouts of plain connections do not apply)."""

    __slots__ = ()

    def set_timeout(self, seconds: float) -> None:
        if seconds != self.io_timeout:
            self.io_timeout = seconds
            self.sock.settimeout(max(seconds, 1e-6))

    def receive(self, size: int = _RECV_SIZE) -> None:
        try:
            data = self.sock.recv(size)
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
            data = b""
        if data:
            self.inbox.append(data)
        else:
            self.eof = True

    def send(self, parts: list[Piece]) -> None:
        for part in parts:
            view = memoryview(part)
            for start in range(0, view.nbytes, TLS_WRITE_PIECE):
                self.sock.sendall(view[start : start + TLS_WRITE_PIECE])

    def looks_alive(self) -> bool:
        """Idle and in step: TLS housekeeping waiting on the socket (session tickets) is fine, plaintext
        or a close is not."""
        sock = self.sock
        if self.inbox or self.eof or (isinstance(sock, ssl.SSLSocket) and sock.pending()):
            return False
        timeout = sock.gettimeout()
        try:
            sock.settimeout(0.0)
            data = sock.recv(1)
        except (ssl.SSLWantReadError, BlockingIOError):
            return True
        except OSError:
            return False
        finally:
            sock.settimeout(timeout)
        if data:
            self.inbox.append(data)  # stray bytes: the connection is out of step
        return False


class _Pool:
    """Idle keep-alive connections per (scheme, host, port), shared by threads, never across a fork."""

    def __init__(self, max_idle_per_host: int) -> None:
        self._lock = threading.Lock()
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}
        self._max_idle = max_idle_per_host
        self._closed = False
        _POOLS.add(self)

    def _after_fork_in_child(self) -> None:
        """A forked child must not talk on its parent's sockets: drop (and close our copies of) them."""
        self._lock = threading.Lock()  # another parent thread may have held it at the fork
        idle, self._idle = self._idle, {}
        for conns in idle.values():
            for conn in conns:
                conn.close()

    def take(self, key: tuple[str, str, int]) -> _Connection | None:
        stale: list[_Connection] = []
        found: _Connection | None = None
        now = time.monotonic()
        with self._lock:
            idle = self._idle.get(key)
            while idle:
                conn = idle.pop()
                if now - conn.idle_since < CLIENT_IDLE_TIMEOUT and conn.looks_alive():
                    found = conn
                    break
                stale.append(conn)
        for conn in stale:
            conn.close()
        if found is not None:
            found.reused = True
        return found

    def put(self, key: tuple[str, str, int], conn: _Connection) -> None:
        conn.idle_since = time.monotonic()
        with self._lock:
            if not self._closed:
                idle = self._idle.setdefault(key, [])
                if len(idle) < self._max_idle:
                    idle.append(conn)
                    return
        conn.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, {}
        for conns in idle.values():
            for conn in conns:
                conn.close()


#: Every live pool, so that a forked child can drop the connections it inherited.
_POOLS: weakref.WeakSet[_Pool] = weakref.WeakSet()


def _forget_pools_in_child() -> None:
    for pool in list(_POOLS):
        pool._after_fork_in_child()


if sys.platform != "win32":  # Windows has no fork
    os.register_at_fork(after_in_child=_forget_pools_in_child)


class StreamingClientResponse:
    """A response whose body is read on demand; use it inside ``HttpClient.stream(...)``."""

    def __init__(
        self,
        client: HttpClient,
        target: Target,
        conn: _Connection,
        exchange: ClientExchange,
        head: ResponseHead,
        url: str,
    ) -> None:
        self._client = client
        self._target = target
        self._conn: _Connection | None = conn
        self._exchange = exchange
        self.status = head.status
        #: Lower-cased names, raw values.
        self.headers = head.headers
        self.url = url

    def __repr__(self) -> str:
        return f"<StreamingClientResponse {self.status} {self.url}>"

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def header(self, name: str) -> str | None:
        return header_value(self.headers, name)

    def iter_chunks(self, size: int = DOWNLOAD_CHUNK) -> Iterator[Piece]:
        """Body pieces as they arrive (each at most ``size`` bytes received at a time)."""
        conn = self._conn
        if conn is None:
            return
        exchange = self._exchange
        try:
            while True:
                piece = exchange.next_piece(conn.inbox, conn.eof)
                if isinstance(piece, Signal):
                    if piece is END:
                        return
                    conn.receive(size)
                    continue
                yield piece
        except OSError as exc:
            self.close()
            raise _translate(exc, self.url) from exc

    def read(self, limit: int = MAX_RESPONSE_BODY) -> bytes:
        """The rest of the body (``BodyTooLargeError`` beyond ``limit`` bytes)."""
        parts: list[Piece] = []
        total = 0
        for piece in self.iter_chunks():
            total += len(piece)
            if total > limit:
                self.close()
                raise BodyTooLargeError(f"response body from {self.url} exceeds {limit} bytes")
            parts.append(piece)
        if len(parts) == 1 and isinstance(parts[0], bytes):
            return parts[0]
        return b"".join(parts)

    def json(self) -> Any:
        return decode_json(self.read(), self.url)

    def raise_for_status(self) -> None:
        if not self.ok:
            raise_for_status(self.status, self.read(_MAX_ERROR_BODY), self.url)

    def close(self) -> None:
        """Release the connection: back to the pool when the body was read completely, else closed."""
        conn, self._conn = self._conn, None
        if conn is not None:
            self._client._release(self._target, conn, self._exchange.reusable)


class HttpClient:
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
        self._pool = _Pool(max_idle_per_host)
        self._closed = False

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close idle connections; connections in use close when their response is released."""
        self._closed = True
        self._pool.close()

    # --- requests ---------------------------------------------------------------------------------------

    def request(
        self,
        method: str,
        url: str,
        *,
        body: BodyArg = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        content_type: str | None = None,
    ) -> ClientResponse:
        """Send a request and read the whole response (any status; see ``raise_for_status``)."""
        if self._closed:
            raise RuntimeError("HttpClient is closed")
        response = self._open(method, parse_url(url), url, body, headers, timeout, content_type)
        try:
            data = response.read(self.max_response_body)
        finally:
            response.close()
        return ClientResponse(response.status, response.headers, data, url)

    def request_json(
        self,
        method: str,
        url: str,
        payload: Any = None,
        *,
        timeout: float | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        """Send ``payload`` as JSON (none when ``None``) and return the decoded JSON answer.

        A non-2xx answer raises the ``PagletError`` its body names (unknown → ``RemoteHostError``).
        """
        body = None if payload is None else encode_json(payload)
        response = self.request(
            method,
            url,
            body=body,
            headers=headers,
            timeout=timeout,
            content_type="application/json" if body is not None else None,
        )
        response.raise_for_status()
        return response.json()

    @contextmanager
    def stream(
        self,
        method: str,
        url: str,
        *,
        body: BodyArg = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        content_type: str | None = None,
    ) -> Iterator[StreamingClientResponse]:
        """Send a request; yield the response with its body unread (released on exit)."""
        if self._closed:
            raise RuntimeError("HttpClient is closed")
        target = parse_url(url)
        response = self._open(method, target, url, body, headers, timeout, content_type)
        try:
            yield response
        finally:
            response.close()

    def _open(
        self,
        method: str,
        target: Target,
        url: str,
        body: BodyArg,
        headers: Mapping[str, str] | None,
        timeout: float | None,
        content_type: str | None,
    ) -> StreamingClientResponse:
        timeout = self.timeout if timeout is None else timeout
        replayable = body is None or isinstance(body, (bytes, bytearray, memoryview))
        for attempt in (0, 1):
            exchange = ClientExchange(method)
            # Built (and validated) before a connection is touched: a bad header costs no connection.
            head_bytes = exchange.head(
                target, headers=headers, api_key=self.api_key, body=body, content_type=content_type
            )
            conn = self._pool.take(target.key) if attempt == 0 else None
            if conn is None:
                conn = self._connect(target, url)
            try:
                conn.set_timeout(timeout)
                head = self._exchange(conn, exchange, head_bytes, body)
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
            return StreamingClientResponse(self, target, conn, exchange, head, url)
        raise AssertionError("unreachable")  # pragma: no cover

    def _exchange(
        self, conn: _Connection, exchange: ClientExchange, head: bytes, body: BodyArg
    ) -> ResponseHead:
        try:
            if body is None:
                conn.send([head, exchange.end()])
            elif isinstance(body, (bytes, bytearray, memoryview)):
                data = memoryview(body)
                parts = exchange.body_parts(data) if data.nbytes else []
                tail = exchange.end()
                if data.nbytes <= _COALESCE_LIMIT:
                    conn.send([b"".join([head, *parts, tail])])
                else:
                    conn.send([head, *parts, tail])
            else:
                conn.send([head])
                for piece in body:
                    if len(piece):
                        conn.send(exchange.body_parts(piece))
                conn.send([exchange.end()])
        except (BrokenPipeError, ConnectionResetError) as send_error:
            # The server may have answered early (401, 413) and closed: prefer its answer.
            try:
                return self._read_head(conn, exchange)
            except (OSError, PagletError):
                raise send_error from None
        return self._read_head(conn, exchange)

    @staticmethod
    def _read_head(conn: _Connection, exchange: ClientExchange) -> ResponseHead:
        while True:
            head = exchange.receive_head(conn.inbox, conn.eof)
            if head is not None:
                return head
            conn.receive()

    def _connect(self, target: Target, url: str) -> _Connection:
        try:
            sock = socket.create_connection((target.host, target.port), timeout=self.connect_timeout)
        except OSError as exc:
            raise RemoteHostError(f"cannot connect to {url}: {exc}") from exc
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if not target.tls:
            return _Connection(sock)
        context = self.ssl_context if self.ssl_context is not None else client_context()
        try:
            tls = context.wrap_socket(sock, server_hostname=target.host)
        except ssl.SSLError as exc:
            sock.close()
            raise RemoteHostError(f"TLS handshake with {url} failed: {exc}") from exc
        except OSError as exc:
            sock.close()
            raise RemoteHostError(f"cannot connect to {url}: {exc}") from exc
        return _TlsConnection(tls)

    def _release(self, target: Target, conn: _Connection, reusable: bool) -> None:
        if reusable and not self._closed:
            conn.reused = False
            self._pool.put(target.key, conn)
        else:
            conn.close()


def _translate(exc: OSError, url: str) -> RemoteHostError:
    if isinstance(exc, TimeoutError):
        return RemoteHostError(f"timed out talking to {url}")
    return RemoteHostError(f"connection to {url} failed: {exc}")
