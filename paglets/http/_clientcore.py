"""What the blocking and the async client share: URLs, the request/response exchange, error mapping.

Everything here is free of sockets; the drivers (``client.py`` threads, ``aclient.py`` asyncio) only
connect, send the byte pieces this module produces, and feed what they receive into a
:class:`~paglets.http._body.ByteQueue`.

One :class:`ClientExchange` is one request/response on one connection:

1. ``head()`` — the request head (written and validated by ``_heads``), with ``Host``,
   ``Authorization: Bearer`` when the client has a key, and the body framing: ``Content-Length`` for a
   bytes body (or an iterable whose length the caller declared; the count is checked),
   ``Transfer-Encoding: chunked`` for other iterables;
2. ``body_parts(piece)`` / ``end()`` — framed body pieces (no copies: the caller's buffers go out as
   they are, between chunk headers);
3. ``receive_head(queue, eof)`` — feeds h11 (which parses and validates the response head; ``1xx`` are
   skipped) until the final response, puts back what h11 read past it, and chooses the body decoder;
4. ``next_piece(queue, eof)`` — body pieces, then ``END``;
5. ``reusable`` — whether the connection may go back to the pool: we sent the whole request, the body is
   complete, the body was not close-delimited and neither side asked to close.

Retry rule (drivers): a request that failed on a *reused* pooled connection before any byte of the
response arrived is sent once more on a fresh connection — only when its body can be replayed
(``bytes``); a streaming body is never replayed. Idle connections are also checked for a peer close
before reuse.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from typing import Any, Final, NamedTuple
from urllib.parse import urlsplit

import h11
import msgspec

from paglets._errors import HeadersTooLargeError, ProtocolError, RemoteHostError
from paglets.http._body import (
    BodyDecoder,
    ByteQueue,
    Piece,
    Signal,
    UntilCloseDecoder,
    decoder_for,
)
from paglets.http._heads import LAST_CHUNK, chunk_header, has_token, request_head
from paglets.http.errormap import error_from_response
from paglets.http.limits import HEAD_FEED, MAX_RESPONSE_HEAD
from paglets.wire.limits import MAX_HEADER_BYTES, MAX_HEADER_COUNT

__all__ = [
    "BodyArg",
    "ClientExchange",
    "ResponseHead",
    "Target",
    "decode_json",
    "encode_json",
    "header_value",
    "parse_url",
    "raise_for_status",
]

#: What a request body may be: nothing, bytes, or an iterable of pieces (streamed chunked).
BodyArg = bytes | bytearray | memoryview | Iterable[Piece] | None

_ENCODER: Final = msgspec.json.Encoder()
_DECODER: Final = msgspec.json.Decoder()

#: Parsed URLs kept (clients call the same few URLs over and over).
_URL_CACHE: Final = 512

#: Methods that get ``Content-Length: 0`` when sent without a body (some servers insist on it).
_BODY_METHODS: Final = frozenset({"POST", "PUT", "PATCH"})


class Target(NamedTuple):
    """A parsed ``http://`` or ``https://`` URL."""

    host: str
    port: int
    #: ``Host`` header value (``host:port``, IPv6 in brackets).
    authority: str
    #: Origin-form request target (path and query).
    path: str
    #: ``http`` or ``https``.
    scheme: str = "http"

    @property
    def key(self) -> tuple[str, str, int]:
        """Pool key: (scheme, host, port)."""
        return (self.scheme, self.host, self.port)

    @property
    def tls(self) -> bool:
        return self.scheme == "https"


@functools.lru_cache(maxsize=_URL_CACHE)
def parse_url(url: str) -> Target:
    """Split an ``http(s)://host[:port]/path?query`` URL; other schemes raise ``ValueError`` (cached)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise ValueError(f"only http:// and https:// URLs are supported, got {url!r}")
    host = parts.hostname
    if not host:
        raise ValueError(f"URL has no host: {url!r}")
    port = parts.port or (443 if scheme == "https" else 80)
    authority = parts.netloc.rpartition("@")[2]
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return Target(host, port, authority, path, scheme)


def encode_json(payload: Any) -> bytes:
    return _ENCODER.encode(payload)


def decode_json(body: bytes, url: str) -> Any:
    """A JSON response body (``None`` when empty); bad JSON raises ``RemoteHostError``."""
    if not body:
        return None
    try:
        return _DECODER.decode(body)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:  # msgspec raises the latter for bad UTF-8
        raise RemoteHostError(f"invalid JSON from {url}: {exc}") from exc


def raise_for_status(status: int, body: bytes, url: str) -> None:
    if not 200 <= status < 300:
        raise error_from_response(status, body, url)


class ResponseHead(NamedTuple):
    status: int
    headers: list[tuple[bytes, bytes]]
    http_version: bytes


#: h11 follows each exchange from the client side to parse the response. We write request heads
#: ourselves (``_heads``), so h11 is handed this stand-in, validated once: a plain GET. Framing of the
#: response body (HEAD, 204, 304) is decided by ``decoder_for`` with the real method.
_STAND_IN: Final = h11.Request(method="GET", target="/", headers=[(b"host", b"paglets")])


class ClientExchange:
    """One request and its response (see the module docstring)."""

    __slots__ = (
        "_chunked",
        "_close",
        "_conn",
        "_declared",
        "_decoder",
        "_fed",
        "_sent",
        "method",
        "request_complete",
        "response",
    )

    def __init__(self, method: str) -> None:
        self.method = method.upper()
        conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_RESPONSE_HEAD)
        conn.send(_STAND_IN)
        conn.send(h11.EndOfMessage())
        self._conn = conn
        self._decoder: BodyDecoder | None = None
        self._fed = 0
        self._chunked = False
        self._declared: int | None = None
        self._sent = 0
        self._close = False
        self.request_complete = False
        self.response: ResponseHead | None = None

    @property
    def response_started(self) -> bool:
        """Whether any byte of the response was received (no transparent retry after that)."""
        return self._fed > 0 or self.response is not None

    def head(
        self,
        target: Target,
        *,
        headers: Mapping[str, str] | None,
        api_key: str | None,
        body: object,
        content_type: str | None = None,
    ) -> bytes:
        """The request head; body framing follows ``body`` (see the module docstring).

        Raises ``ValueError`` for a non-ASCII target and ``ProtocolError(fault="local")`` for an
        invalid method, target, header or framing header.
        """
        out: list[tuple[bytes, bytes]] = [(b"host", target.authority.encode("idna"))]
        given: set[bytes] = set()
        if headers:
            for name, value in headers.items():
                lname = name.lower().encode("latin-1")
                given.add(lname)
                encoded = value.encode("latin-1")
                if lname == b"host":
                    out[0] = (b"host", encoded)
                    continue
                if lname == b"content-length":
                    if not encoded.isdigit():
                        raise ProtocolError(f"invalid Content-Length {value!r}", fault="local")
                    self._declared = int(encoded)
                elif lname == b"transfer-encoding":
                    if encoded.strip().lower() != b"chunked":
                        raise ProtocolError("only Transfer-Encoding: chunked is supported", fault="local")
                    self._chunked = True
                out.append((lname, encoded))
        if api_key and b"authorization" not in given:
            out.append((b"authorization", b"Bearer " + api_key.encode("latin-1")))
        if content_type and b"content-type" not in given:
            out.append((b"content-type", content_type.encode("latin-1")))
        if self._declared is None and not self._chunked:
            if isinstance(body, (bytes, bytearray, memoryview)):
                self._declared = memoryview(body).nbytes
                out.append((b"content-length", b"%d" % self._declared))
            elif body is not None:
                self._chunked = True
                out.append((b"transfer-encoding", b"chunked"))
            elif self.method in _BODY_METHODS:
                self._declared = 0
                out.append((b"content-length", b"0"))
        self._close = has_token(out, b"connection", b"close")
        try:
            method, path = self.method.encode("ascii"), target.path.encode("ascii")
        except UnicodeEncodeError as exc:
            raise ValueError(
                f"method and URL path must be ASCII (percent-encode the path): {target.path!r}"
            ) from exc
        return request_head(method, path, out)

    def body_parts(self, piece: Piece) -> list[Piece]:
        """``piece`` framed for the wire (a chunk header and CRLF around it when chunked)."""
        size = len(piece)
        if self._chunked:
            return [chunk_header(size), piece, b"\r\n"] if size else []
        self._sent += size
        if self._declared is None or self._sent > self._declared:
            raise ProtocolError(
                f"request body longer than its Content-Length {self._declared}", fault="local"
            )
        return [piece]

    def end(self) -> bytes:
        """The end of the request body (``0\\r\\n\\r\\n`` when chunked, else nothing)."""
        if not self._chunked and self._sent != (self._declared or 0):
            raise ProtocolError(
                f"request body of {self._sent} bytes, its Content-Length says {self._declared}", fault="local"
            )
        self.request_complete = True
        return LAST_CHUNK if self._chunked else b""

    def receive_head(self, queue: ByteQueue, eof: bool) -> ResponseHead | None:
        """The final response head once received, else ``None`` (needs more bytes).

        Raises :class:`~paglets.core.errors.ProtocolError` for a malformed or oversized head, and
        ``ConnectionResetError`` when the peer closed before sending any byte of a response.
        """
        conn = self._conn
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                if exc.error_status_hint == 431:
                    raise HeadersTooLargeError(
                        f"response head larger than {MAX_RESPONSE_HEAD} bytes"
                    ) from exc
                raise ProtocolError(f"malformed response: {exc}") from exc
            if event is h11.NEED_DATA:
                if queue:
                    data = queue.take_bytes(HEAD_FEED)
                    self._fed += len(data)
                    conn.receive_data(data)
                    continue
                if eof:
                    if not self._fed:
                        raise ConnectionResetError("connection closed before the response")
                    conn.receive_data(b"")
                    continue
                return None
            if type(event) is h11.Response:
                leftover = conn.trailing_data[0]
                if leftover:
                    queue.push_front(leftover)
                headers: list[tuple[bytes, bytes]] = list(event.headers)
                self.response = ResponseHead(event.status_code, headers, event.http_version)
                self._decoder = decoder_for(
                    headers,
                    response_status=event.status_code,
                    request_method=self.method.encode("ascii"),
                    max_trailer_bytes=MAX_HEADER_BYTES,
                    max_trailer_lines=MAX_HEADER_COUNT,
                )
                return self.response
            if type(event) is h11.InformationalResponse:
                continue
            raise ConnectionResetError("connection closed before the response")

    def next_piece(self, queue: ByteQueue, eof: bool) -> Piece | Signal:
        assert self._decoder is not None, "receive_head first"
        return self._decoder.next(queue, eof)

    @property
    def body_done(self) -> bool:
        return self._decoder is not None and self._decoder.done

    @property
    def reusable(self) -> bool:
        decoder = self._decoder
        return (
            self.request_complete
            and not self._close
            and decoder is not None
            and decoder.done
            and type(decoder) is not UntilCloseDecoder
            and self._conn.our_state is h11.DONE
        )


def header_value(headers: list[tuple[bytes, bytes]], name: str) -> str | None:
    key = name.lower().encode("latin-1")
    for header_name, value in headers:
        if header_name == key:
            return value.decode("latin-1")
    return None
