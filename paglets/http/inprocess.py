"""An async client whose connections lead into an :class:`~paglets.http.server.HttpServer` of the same
process through socket pairs: no listening socket, no port, yet every request passes through the
server's full rules (authentication, limits, routing, streaming) exactly as one from the network.

A connect-mode host serves the requests its relay hub hands it this way: its server never listens.
Connections are pooled and kept alive like any other (the URL's host part is only a pool key).
"""

from __future__ import annotations

import asyncio
import socket

from paglets._errors import RemoteHostError
from paglets.http._clientcore import Target
from paglets.http.aclient import AsyncHttpClient, _Connection
from paglets.http.limits import CLIENT_TIMEOUT
from paglets.http.server import HttpServer

__all__ = ["LOCAL_BASE", "InProcessClient"]

#: Base URL of requests sent with an :class:`InProcessClient` (never resolved, never connected to).
LOCAL_BASE = "http://in-process.invalid"


class InProcessClient(AsyncHttpClient):
    """See the module docstring; ``server`` need not be started (it must not be closed)."""

    def __init__(
        self, server: HttpServer, *, api_key: str | None = None, timeout: float = CLIENT_TIMEOUT
    ) -> None:
        super().__init__(api_key=api_key, timeout=timeout)
        self._server = server

    async def _connect(self, loop: asyncio.AbstractEventLoop, target: Target, url: str) -> _Connection:
        ours, theirs = socket.socketpair()
        try:
            ours.setblocking(False)
            theirs.setblocking(False)
            await loop.connect_accepted_socket(self._server.protocol, theirs)
        except OSError as exc:
            ours.close()
            theirs.close()
            raise RemoteHostError(f"cannot reach the host's own server: {exc}") from exc
        return _Connection(ours)
