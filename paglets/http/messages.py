"""What handlers see and return: :class:`Request`, :class:`Response`, :class:`StreamResponse`.

A handler is ``async def handler(request: Request) -> Response | StreamResponse``. It may raise any
exception; the server maps it with :mod:`paglets.http.errormap` (``PagletError`` → its status, anything
else → 500).

Request bodies are read on demand and never more than once:

- ``await request.body(limit)`` reads the whole body into ``bytes`` (413 ``BodyTooLargeError`` beyond
  ``limit``; a declared ``Content-Length`` above it is refused before anything is read);
- ``await request.json(limit)`` decodes it with msgspec (an empty body is ``{}``; bad JSON is 400
  ``SerializationError``), or with ``decode`` when given (``decode(body)`` may raise any ``PagletError``
  for a 4xx). A body of ``ServerLimits.json_offload_threshold`` bytes or more is decoded in the server's
  decoder threads, so the event loop keeps serving meanwhile: put every costly step of turning the body
  into what the handler needs into ``decode`` (only the C part of a decode still holds the interpreter
  lock, see ``docs/design.md``);
- ``async for piece in request.stream(limit)`` yields pieces (``bytes`` or ``memoryview`` slices of the
  received data, valid as long as you hold them) as they arrive. The server stops reading from the socket
  while the handler is behind, so memory stays bounded whatever the body size.

``limit=None`` means the server's configured limit (``ServerLimits.max_json_body`` or
``max_stream_body``); a handler's own ``limit`` for ``body``/``json`` never raises the configured one.
Errors raised while reading the body (too large, malformed, timed out, client gone) are *sticky*: the
server answers with them even if the handler catches them.

A :class:`StreamResponse` sends ``chunks`` (an async or plain iterable of bytes-like pieces) with
``Content-Length`` when ``content_length`` is given (the server checks the count) and chunked otherwise.
Plain iterables run on the event loop: they must not block.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import parse_qsl

import msgspec

from paglets._errors import BodyTooLargeError, PagletError, SerializationError
from paglets.http._body import Piece
from paglets.http.errormap import error_payload, error_status
from paglets.http.limits import JSON_OFFLOAD_THRESHOLD
from paglets.wire.limits import MAX_JSON_BODY, MAX_STREAM_BODY

__all__ = [
    "BodySource",
    "Request",
    "Response",
    "StreamResponse",
    "error_response",
    "json_response",
]

_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder()

#: Runs ``decode(body)`` away from the event loop (the server's decoder threads).
Offload = Callable[[Callable[[Any], Any], Any], Awaitable[Any]]


def _join(parts: list[Piece]) -> bytes:
    return parts[0] if len(parts) == 1 and isinstance(parts[0], bytes) else b"".join(parts)


class _JoinAndDecode:
    """Join a body's pieces and decode them, in one trip to a decoder thread."""

    __slots__ = ("_decode",)

    def __init__(self, decode: Callable[[bytes], Any]) -> None:
        self._decode = decode

    def __call__(self, parts: list[Piece]) -> tuple[bytes, Any]:
        body = _join(parts)
        return body, self._decode(body)


def _plain_json(body: bytes) -> Any:
    try:
        return _DECODER.decode(body)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:  # the latter: invalid UTF-8
        raise SerializationError(f"request body is not valid JSON: {exc}") from exc


class BodySource(Protocol):
    """Where a request's body comes from (the server connection, or bytes in tests)."""

    #: ``Content-Length`` of the body, ``None`` when chunked.
    declared_length: int | None

    async def read(self) -> Piece | None:
        """The next piece, or ``None`` at the end of the body."""

    def fail(self, exc: PagletError) -> PagletError:
        """Record a body error so the response reports it; returns ``exc`` for raising."""


class _BytesSource:
    """A body held in memory (for :meth:`Request.build`)."""

    def __init__(self, data: bytes) -> None:
        self.declared_length: int | None = len(data)
        self._data: bytes | None = data or None

    async def read(self) -> Piece | None:
        data, self._data = self._data, None
        return data

    def fail(self, exc: PagletError) -> PagletError:
        return exc


class Request:
    """One HTTP request as a handler sees it."""

    __slots__ = (
        "_body",
        "_json_limit",
        "_offload",
        "_offload_threshold",
        "_query",
        "_source",
        "_stream_limit",
        "client",
        "headers",
        "http_version",
        "method",
        "path",
        "path_params",
        "query_string",
        "raw_path",
    )

    def __init__(
        self,
        method: str,
        path: str,
        *,
        query_string: str = "",
        headers: list[tuple[bytes, bytes]] | None = None,
        path_params: dict[str, str] | None = None,
        client: tuple[str, int] | None = None,
        raw_path: str | None = None,
        http_version: str = "1.1",
        source: BodySource | None = None,
        json_limit: int = MAX_JSON_BODY,
        stream_limit: int = MAX_STREAM_BODY,
        offload: Offload | None = None,
        offload_threshold: int = JSON_OFFLOAD_THRESHOLD,
    ) -> None:
        self.method = method
        #: Path with the server's prefix stripped, still percent-encoded, no query string.
        self.path = path
        #: The path as the client sent it (before prefix stripping).
        self.raw_path = raw_path if raw_path is not None else path
        #: Raw query string (without ``?``).
        self.query_string = query_string
        #: Lower-cased header names with their raw values, in order.
        self.headers = headers if headers is not None else []
        #: Percent-decoded route parameters (``{name:path}`` values stay encoded).
        self.path_params = path_params if path_params is not None else {}
        #: ``(host, port)`` of the peer when known.
        self.client = client
        self.http_version = http_version
        self._source: BodySource = source if source is not None else _BytesSource(b"")
        self._json_limit = json_limit
        self._stream_limit = stream_limit
        self._offload = offload
        self._offload_threshold = offload_threshold
        self._query: dict[str, str] | None = None
        self._body: bytes | None = None

    @classmethod
    def build(
        cls,
        method: str,
        path: str,
        *,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        query_string: str = "",
        path_params: dict[str, str] | None = None,
    ) -> Request:
        """A request with an in-memory body (for calling handlers directly in tests)."""
        raw_headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]
        return cls(
            method,
            path,
            query_string=query_string,
            headers=raw_headers,
            path_params=path_params,
            source=_BytesSource(body),
        )

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.path}>"

    # --- head ---------------------------------------------------------------------------------------------

    @property
    def query(self) -> dict[str, str]:
        """Query parameters, first value of each key (blank values kept)."""
        if self._query is None:
            query: dict[str, str] = {}
            if self.query_string:
                for key, value in parse_qsl(self.query_string, keep_blank_values=True):
                    query.setdefault(key, value)
            self._query = query
        return self._query

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive), decoded as Latin-1."""
        key = name.lower().encode("latin-1")
        for header_name, value in self.headers:
            if header_name == key:
                return value.decode("latin-1")
        return None

    @property
    def content_length(self) -> int | None:
        """The declared body length (``None`` for a chunked body)."""
        return self._source.declared_length

    # --- body ---------------------------------------------------------------------------------------------

    async def body(self, limit: int | None = None) -> bytes:
        """The whole body (see the module docstring); later calls return the same bytes."""
        if self._body is None:
            self._body = _join(await self._read_all(limit))
        return self._body

    async def json(self, limit: int | None = None, *, decode: Callable[[bytes], Any] | None = None) -> Any:
        """The body decoded as JSON (``{}`` when empty), or ``decode(body)`` (see the module docstring)."""
        decoder: Callable[[bytes], Any] = _plain_json if decode is None else decode
        if self._body is None:
            parts = await self._read_all(limit)
            size = sum(map(len, parts))
            if self._offload is not None and size >= self._offload_threshold:
                # joining tens of MiB costs tens of milliseconds (copy and fresh pages): also off the loop
                self._body, value = await self._offload(_JoinAndDecode(decoder), parts)
                return value
            self._body = _join(parts)
        if decode is None and not self._body:
            return {}
        if self._offload is not None and len(self._body) >= self._offload_threshold:
            return await self._offload(decoder, self._body)
        return decoder(self._body)

    async def _read_all(self, limit: int | None) -> list[Piece]:
        limit = self._json_limit if limit is None else min(limit, self._json_limit)
        source = self._source
        declared = source.declared_length
        if declared is not None and declared > limit:
            raise source.fail(BodyTooLargeError(f"request body of {declared} bytes exceeds {limit} bytes"))
        parts: list[Piece] = []
        total = 0
        while (piece := await source.read()) is not None:
            total += len(piece)
            if total > limit:
                raise source.fail(BodyTooLargeError(f"request body exceeds {limit} bytes"))
            parts.append(piece)
        return parts

    def stream(self, limit: int | None = None) -> AsyncIterator[Piece]:
        """The body as pieces, with backpressure (see the module docstring)."""
        return _BodyStream(self._source, self._stream_limit if limit is None else limit)


class _BodyStream:
    __slots__ = ("_limit", "_source", "_total")

    def __init__(self, source: BodySource, limit: int) -> None:
        self._source = source
        self._limit = limit
        self._total = 0
        declared = source.declared_length
        if declared is not None and declared > limit:
            raise source.fail(BodyTooLargeError(f"request body of {declared} bytes exceeds {limit} bytes"))

    def __aiter__(self) -> _BodyStream:
        return self

    async def __anext__(self) -> Piece:
        piece = await self._source.read()
        if piece is None:
            raise StopAsyncIteration
        self._total += len(piece)
        if self._total > self._limit:
            raise self._source.fail(BodyTooLargeError(f"request body exceeds {self._limit} bytes"))
        return piece


@dataclass(slots=True)
class Response:
    """A response with its whole body (sent with ``Content-Length``)."""

    status: int = 200
    body: bytes | memoryview = b""
    content_type: str = "application/json"
    headers: list[tuple[str, str]] = field(default_factory=list)


@dataclass(slots=True)
class StreamResponse:
    """A response whose body is produced piece by piece (see the module docstring)."""

    status: int
    chunks: AsyncIterable[Piece] | Iterable[Piece]
    content_type: str = "application/octet-stream"
    #: ``None`` sends ``Transfer-Encoding: chunked``.
    content_length: int | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)


def json_response(obj: Any, status: int = 200, *, headers: list[tuple[str, str]] | None = None) -> Response:
    """``obj`` encoded with ``msgspec.json`` (plain JSON; binary tagging is the caller's business)."""
    return Response(status, _ENCODER.encode(obj), "application/json", headers if headers is not None else [])


def error_response(
    exc: BaseException,
    *,
    status: int | None = None,
    headers: list[tuple[str, str]] | None = None,
    traceback: bool = False,
) -> Response:
    """The JSON error response for ``exc`` (status from the error unless ``status`` overrides it); its
    ``remote_traceback`` only with ``traceback=True`` (see ``paglets.http.errormap.error_payload``). An
    error with a ``retry_after`` (seconds, e.g. ``HostBusyError``) adds a ``Retry-After`` header."""
    retry_after = getattr(exc, "retry_after", None)
    if isinstance(retry_after, int | float) and retry_after >= 0:
        headers = [*(headers or []), ("Retry-After", str(math.ceil(retry_after)))]
    payload = error_payload(exc, traceback=traceback)
    return json_response(payload, error_status(exc) if status is None else status, headers=headers)
