"""The HTTP/1.1 server: bound sockets, connection admission, graceful shutdown.

``HttpServer`` is a thin driver: it binds listening sockets and hands each accepted socket to a
:class:`~paglets.http._connection.ServerConnection` (asyncio protocol + h11), which holds every HTTP rule.
It runs on whatever loop calls :meth:`HttpServer.start` — uvloop when the caller installed it (see
:func:`new_event_loop`), including a loop running in a background thread — and never starts threads.

Binding: ``start(["127.0.0.1", "::1"], port)`` binds every address on the same port; with port 0 the
first socket's random port is reused for the others. ``SO_REUSEADDR`` is set (restarts do not wait for
TIME_WAIT); IPv6 sockets are v6-only so that ``0.0.0.0`` and ``::`` can coexist. ``rebind(addresses)``
changes the addresses of a running server: it binds the new ones first and closes the ones no longer
wanted only once every new one is bound, so a failed rebind leaves the server as it was; connections
keep running throughout.

Shutdown (:meth:`HttpServer.close`): stop accepting at once; idle keep-alive connections close at once;
requests in flight finish (and their connections close) until ``deadline`` seconds; whatever is left is
aborted and its handler cancelled. Outside a shutdown a handler is never cancelled, not even when its
client disconnects (as in paglets 2.0): a handler that changes state always runs to its end.

Admission: a peer address that already holds ``ServerLimits.max_connections_per_address`` connections
gets ``503`` for a new one, so one address cannot take every slot. With ``max_connections`` open, the
connection idle the longest (waiting for a request with nothing of it received: one that never spoke,
or an idle keep-alive connection) is closed to make room; only when no connection is idle is a new one
answered ``503``. A connection must complete its first request head within ``first_request_timeout``
of the accept. The counters of :meth:`HttpServer.statistics` say how often each rule fired.

Usage::

    router = Router()
    router.get("/health", health)
    server = HttpServer(router, api_key=default_api_key(), path_prefix="/paglets")
    port = await server.start(["127.0.0.1"], 0)
    ...
    await server.close(deadline=5.0)
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

from paglets._errors import HostError
from paglets.http._connection import ServerConnection
from paglets.http._context import ServerContext, ServerStatistics
from paglets.http.limits import LISTEN_BACKLOG, SHUTDOWN_DEADLINE, TLS_HANDSHAKE_TIMEOUT, ServerLimits
from paglets.http.routing import Router, normalize_prefix

_uvloop: ModuleType | None
try:  # imported with the server rather than by a host's first start (~3 ms of an empty host's start)
    import uvloop
except ImportError:  # pragma: no cover - uvloop is a dependency on CPython/POSIX
    _uvloop = None
else:
    _uvloop = uvloop

__all__ = ["HttpServer", "ServerLimits", "ServerStatistics", "new_event_loop"]


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A uvloop loop when uvloop is installed, else the default asyncio loop."""
    if _uvloop is not None:
        loop: asyncio.AbstractEventLoop = _uvloop.new_event_loop()
        return loop
    return asyncio.new_event_loop()  # pragma: no cover - uvloop is a dependency on CPython/POSIX


class HttpServer:
    """See the module docstring."""

    def __init__(
        self,
        router: Router,
        *,
        api_key: str | None = None,
        path_prefix: str = "",
        limits: ServerLimits | None = None,
        expose_tracebacks: bool = False,
        ssl_context: ssl.SSLContext | None = None,
        open_request: Callable[[str, str, list[tuple[bytes, bytes]]], bool] | None = None,
    ) -> None:
        #: Serve HTTPS with this context (``paglets.http.tls.server_context``); ``None``: plain HTTP.
        self.ssl_context = ssl_context
        self._context = ServerContext(
            router,
            api_key=api_key,
            path_prefix=normalize_prefix(path_prefix),
            limits=limits if limits is not None else ServerLimits(),
            expose_tracebacks=expose_tracebacks,
        )
        #: Requests served without the API key (see ``ServerContext.open_request``).
        self._context.open_request = open_request
        self._servers: dict[str, asyncio.AbstractServer] = {}
        self._addresses: dict[str, tuple[str, int]] = {}
        self._port: int | None = None

    @property
    def router(self) -> Router:
        return self._context.router

    @property
    def limits(self) -> ServerLimits:
        return self._context.limits

    @property
    def port(self) -> int | None:
        """The bound port (``None`` before :meth:`start`)."""
        return self._port

    @property
    def addresses(self) -> list[tuple[str, int]]:
        """``(host, port)`` of every bound socket."""
        return list(self._addresses.values())

    async def start(self, bind_hosts: Sequence[str], port: int = 0) -> int:
        """Bind every host of ``bind_hosts`` on ``port`` and start accepting; returns the port.

        Raises :class:`HostError` (chained to the ``OSError``) when an address cannot be bound; sockets
        bound so far are closed again.
        """
        if self._servers:
            raise RuntimeError("server already started")
        if not bind_hosts:
            raise ValueError("bind_hosts is empty")
        self._context.closing = False
        self._port = await self._listen(bind_hosts, port)
        return self._port

    async def rebind(self, bind_hosts: Sequence[str]) -> None:
        """Listen on exactly ``bind_hosts`` (same port): bind the new addresses first, then close the
        listeners of addresses no longer wanted. If a new address cannot be bound (``HostError``), the
        ones bound for this call are closed again and the server keeps its old addresses."""
        if self._port is None or not self._servers:
            raise RuntimeError("server not started")
        if not bind_hosts:
            raise ValueError("bind_hosts is empty")
        added = [host for host in dict.fromkeys(bind_hosts) if host not in self._servers]
        await self._listen(added, self._port)
        await self._close_listeners([host for host in self._servers if host not in bind_hosts])

    async def _listen(self, bind_hosts: Sequence[str], port: int) -> int:
        """Bind and serve ``bind_hosts`` (all or none: on failure the new ones are closed again)."""
        loop = asyncio.get_running_loop()
        added: list[str] = []
        try:
            for host in bind_hosts:
                sock = _bind(host, port)
                try:
                    server = await loop.create_server(
                        self.protocol,
                        sock=sock,
                        backlog=LISTEN_BACKLOG,
                        ssl=self.ssl_context,
                        ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT if self.ssl_context else None,
                    )
                except BaseException:
                    sock.close()
                    raise
                self._servers[host] = server
                added.append(host)
                bound = sock.getsockname()
                self._addresses[host] = (str(bound[0]), int(bound[1]))
                port = int(bound[1])
        except BaseException:
            await self._close_listeners(added)
            raise
        return port

    async def close(self, *, deadline: float = SHUTDOWN_DEADLINE) -> None:
        """Graceful shutdown (see the module docstring); idempotent."""
        await self._close_listeners(list(self._servers))
        loop = asyncio.get_running_loop()
        await self._context.shutdown(loop.time() + deadline)

    async def _close_listeners(self, hosts: Sequence[str]) -> None:
        servers = [self._servers.pop(host) for host in hosts if host in self._servers]
        for host in hosts:
            self._addresses.pop(host, None)
        for server in servers:
            server.close()
        for server in servers:
            await server.wait_closed()

    def statistics(self) -> ServerStatistics:
        return self._context.statistics()

    def protocol(self) -> ServerConnection:
        """A new connection protocol for this server (also for feeding it without sockets)."""
        return ServerConnection(self._context)


def _bind(host: str, port: int) -> socket.socket:
    try:
        literal = _ip_literal(host, port)
        if literal is not None:  # no resolver call (nor its codec lookup) for an address
            family, address = literal
            kind, proto = socket.SOCK_STREAM, 0
        else:
            infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
            family, kind, proto, _, address = infos[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise HostError(f"cannot bind {host}:{port}: {exc}") from exc
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
        sock.listen(LISTEN_BACKLOG)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise HostError(f"cannot bind {host}:{port}: {exc}") from exc
    return sock


def _ip_literal(host: str, port: int) -> tuple[socket.AddressFamily, tuple[Any, ...]] | None:
    """The family and socket address of an IPv4 or IPv6 literal (``"127.0.0.1"``, ``"::1"``), else None."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if address.version == 4:
        return socket.AF_INET, (str(address), port)
    if address.is_link_local:
        return None  # a scope id is the resolver's business
    return socket.AF_INET6, (str(address), port, 0, 0)
