"""HTTP/1.1 on h11: the host server and keep-alive clients.

Who does what: h11 parses and validates every message head we receive (the untrusted part); our
socket-free modules frame bodies (``_body``), write the heads we send (``_heads``) and hold the client
exchange (``_clientcore``); the drivers (``_connection`` for the server, ``client``/``aclient``) only
move bytes, wait and enforce timeouts.

- :mod:`paglets.http.server` — :class:`HttpServer` (asyncio protocol driving h11, limits, timeouts,
  graceful shutdown) and :class:`ServerLimits`;
- :mod:`paglets.http.routing` — :class:`Router` (routing is data);
- :mod:`paglets.http.messages` — :class:`Request`, :class:`Response`, :class:`StreamResponse`,
  :func:`json_response`, :func:`error_response`;
- :mod:`paglets.http.client` / :mod:`paglets.http.aclient` — :class:`HttpClient` (blocking, thread-safe)
  and :class:`AsyncHttpClient`, sharing one socket-free exchange;
- :mod:`paglets.http.auth` — API keys (:func:`default_api_key` reads ``PAGLETS_API_KEY``);
- :mod:`paglets.http.errormap` — errors ↔ JSON error bodies;
- :mod:`paglets.http.limits` — the HTTP-only limits and timeouts;
- :mod:`paglets.http.testing` — drive a server connection from bytes, without sockets.

The names below are loaded on first use (PEP 562), so that a process that needs one part (a paglet
process: the blocking client) does not import the others (the server, asyncio).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from paglets.http.aclient import AsyncHttpClient, AsyncStreamingClientResponse
    from paglets.http.auth import default_api_key
    from paglets.http.client import ClientResponse, HttpClient, StreamingClientResponse
    from paglets.http.limits import ServerLimits
    from paglets.http.messages import Request, Response, StreamResponse, error_response, json_response
    from paglets.http.routing import Handler, Router
    from paglets.http.server import HttpServer, ServerStatistics, new_event_loop

_HOMES = {
    "AsyncHttpClient": "aclient",
    "AsyncStreamingClientResponse": "aclient",
    "ClientResponse": "client",
    "Handler": "routing",
    "HttpClient": "client",
    "HttpServer": "server",
    "Request": "messages",
    "Response": "messages",
    "Router": "routing",
    "ServerLimits": "limits",
    "ServerStatistics": "server",
    "StreamResponse": "messages",
    "StreamingClientResponse": "client",
    "default_api_key": "auth",
    "error_response": "messages",
    "json_response": "messages",
    "new_event_loop": "server",
}

__all__ = [
    "AsyncHttpClient",
    "AsyncStreamingClientResponse",
    "ClientResponse",
    "Handler",
    "HttpClient",
    "HttpServer",
    "Request",
    "Response",
    "Router",
    "ServerLimits",
    "ServerStatistics",
    "StreamResponse",
    "StreamingClientResponse",
    "default_api_key",
    "error_response",
    "json_response",
    "new_event_loop",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_HOMES])
