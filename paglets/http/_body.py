"""Message body framing without I/O: a byte queue and the Content-Length / chunked / until-close decoders.

h11 parses and validates every request and response *head* we receive; the message bodies we receive
are framed here instead. Measured on this machine, h11's body reader copies each byte
three times (its receive buffer, then two slices), which costs about 90 ms per 64 MiB — more than the
whole budget of a 64 MiB upload (half the speed of raw loopback TCP, about 70 ms). These decoders hand out
slices of the received ``bytes`` objects (``memoryview``) and copy nothing but chunk-size lines.

Rules:

- :class:`ByteQueue` holds received ``bytes`` objects in arrival order; ``take(n)`` returns the next at
  most ``n`` bytes *from the first object only* (zero copy: the object itself when it is taken whole,
  else a ``memoryview`` slice). Lines (``read_line``) may span objects; the pieces are joined (a line is
  bounded by its caller's limit).
- A decoder's ``next(queue, eof)`` returns one body piece, :data:`NEED_DATA` when the queue does not hold
  the next piece yet, or :data:`END` once the body is complete (and forever after). ``eof`` says that no
  more bytes will ever arrive: a fixed-length or chunked body that is not complete then raises
  :class:`~paglets.core.errors.FrameError`; a close-delimited body ends.
- A chunked body is strict: ``1*16HEXDIG [BWS] [";" extension] CRLF``, data, ``CRLF``; the last chunk
  ``0`` is followed by optional trailer lines (ignored, bounded like headers) and an empty line. Anything
  else raises ``FrameError`` (HTTP 400). Sizes above 16 hex digits are refused before conversion.
- Decoders never look past the end of their body: bytes of a pipelined next message stay in the queue.

Worst-case cost per call: O(1) for data pieces; O(line limit) for a line split over many objects.
"""

from __future__ import annotations

import enum
from collections import deque
from typing import Final

from paglets._errors import FrameError, LimitExceededError
from paglets.http.limits import MAX_CHUNK_LINE

__all__ = [
    "END",
    "NEED_DATA",
    "BodyDecoder",
    "ByteQueue",
    "ChunkedDecoder",
    "FixedLengthDecoder",
    "Piece",
    "Signal",
    "UntilCloseDecoder",
    "decoder_for",
]


class Signal(enum.Enum):
    """What a decoder returns instead of a piece."""

    #: The queue does not hold the next piece yet.
    NEED_DATA = "NEED_DATA"
    #: The body is complete.
    END = "END"


NEED_DATA: Final = Signal.NEED_DATA
END: Final = Signal.END

Piece = bytes | memoryview

#: Longest chunk size in hex digits (16 digits is 2**64 - 1).
_MAX_SIZE_DIGITS: Final = 16
_HEX: Final = frozenset(b"0123456789abcdefABCDEF")


class ByteQueue:
    """Received bytes in arrival order (see the module docstring for the rules)."""

    __slots__ = ("_chunks", "_nbytes", "_offset")

    def __init__(self) -> None:
        self._chunks: deque[bytes] = deque()
        self._offset = 0  # bytes of self._chunks[0] already taken
        self._nbytes = 0

    def __len__(self) -> int:
        return self._nbytes

    def __bool__(self) -> bool:
        return self._nbytes > 0

    def append(self, data: bytes) -> None:
        if data:
            self._chunks.append(data)
            self._nbytes += len(data)

    def push_front(self, data: bytes) -> None:
        """Put ``data`` back before everything queued (bytes a parser read too far)."""
        if not data:
            return
        if self._offset:
            self._chunks[0] = self._chunks[0][self._offset :]
            self._offset = 0
        self._chunks.appendleft(data)
        self._nbytes += len(data)

    def clear(self) -> None:
        self._chunks.clear()
        self._offset = 0
        self._nbytes = 0

    def take(self, limit: int) -> Piece | None:
        """The next at most ``limit`` bytes of the first queued object, or ``None`` when empty."""
        if not self._nbytes or limit <= 0:
            return None
        first = self._chunks[0]
        start = self._offset
        available = len(first) - start
        if available <= limit:
            self._chunks.popleft()
            self._offset = 0
            self._nbytes -= available
            return first if start == 0 else memoryview(first)[start:]
        self._offset = start + limit
        self._nbytes -= limit
        return memoryview(first)[start : start + limit]

    def take_bytes(self, limit: int) -> bytes:
        """Like :meth:`take` but always ``bytes`` (copies a slice; for small head feeds)."""
        piece = self.take(limit)
        if piece is None:
            return b""
        return piece if isinstance(piece, bytes) else bytes(piece)

    def read_line(self, limit: int) -> bytes | None:
        """Remove and return the next line including its ``\\n`` if it is queued.

        Returns ``None`` when no ``\\n`` is queued yet and fewer than ``limit`` bytes are queued; raises
        :class:`FrameError` when ``limit`` bytes are queued without a ``\\n``.
        """
        first = self._chunks[0] if self._chunks else b""
        end = first.find(b"\n", self._offset, self._offset + limit)
        if end >= 0:
            line = first[self._offset : end + 1]
            self._consume(len(line))
            return line
        # Slow path: the line spans several objects; join at most ``limit`` bytes.
        pieces: list[bytes] = []
        seen = 0
        for index, chunk in enumerate(self._chunks):
            start = self._offset if index == 0 else 0
            window = chunk[start : start + (limit - seen)]
            newline = window.find(b"\n")
            if newline >= 0:
                pieces.append(window[: newline + 1])
                line = b"".join(pieces)
                self._consume(len(line))
                return line
            pieces.append(window)
            seen += len(window)
            if seen >= limit:
                raise FrameError(f"line longer than {limit} bytes")
        return None

    def _consume(self, count: int) -> None:
        self._nbytes -= count
        while count:
            first = self._chunks[0]
            available = len(first) - self._offset
            if count < available:
                self._offset += count
                return
            count -= available
            self._chunks.popleft()
            self._offset = 0


class FixedLengthDecoder:
    """A body of exactly ``length`` bytes (``Content-Length``)."""

    __slots__ = ("length", "remaining")

    def __init__(self, length: int) -> None:
        self.length = length
        self.remaining = length

    @property
    def done(self) -> bool:
        return not self.remaining

    def next(self, queue: ByteQueue, eof: bool) -> Piece | Signal:
        if not self.remaining:
            return END
        piece = queue.take(self.remaining)
        if piece is None:
            if eof:
                raise FrameError(
                    f"connection closed after {self.length - self.remaining} of {self.length} body bytes"
                )
            return NEED_DATA
        self.remaining -= len(piece)
        return piece


class UntilCloseDecoder:
    """A response body delimited by the end of the connection (HTTP/1.0 style, responses only)."""

    __slots__ = ("_done",)

    def __init__(self) -> None:
        self._done = False

    @property
    def done(self) -> bool:
        return self._done

    def next(self, queue: ByteQueue, eof: bool) -> Piece | Signal:
        if self._done:
            return END
        piece = queue.take(len(queue))
        if piece is not None:
            return piece
        if eof:
            self._done = True
            return END
        return NEED_DATA


_SIZE, _DATA, _DATA_END, _TRAILER, _DONE = range(5)


class ChunkedDecoder:
    """A ``Transfer-Encoding: chunked`` body (see the module docstring for the accepted grammar)."""

    __slots__ = (
        "_max_trailer_bytes",
        "_max_trailer_lines",
        "_remaining",
        "_state",
        "_trailer_bytes",
        "_trailer_lines",
    )

    def __init__(self, *, max_trailer_bytes: int, max_trailer_lines: int) -> None:
        self._state = _SIZE
        self._remaining = 0
        self._trailer_bytes = 0
        self._trailer_lines = 0
        self._max_trailer_bytes = max_trailer_bytes
        self._max_trailer_lines = max_trailer_lines

    @property
    def done(self) -> bool:
        return self._state == _DONE

    def next(self, queue: ByteQueue, eof: bool) -> Piece | Signal:
        while True:
            state = self._state
            if state == _DATA:
                piece = queue.take(self._remaining)
                if piece is None:
                    return self._need(eof)
                self._remaining -= len(piece)
                if not self._remaining:
                    self._state = _DATA_END
                return piece
            if state == _SIZE:
                line = queue.read_line(MAX_CHUNK_LINE)
                if line is None:
                    return self._need(eof)
                size = _parse_chunk_size(line)
                if size:
                    self._remaining = size
                    self._state = _DATA
                else:
                    self._state = _TRAILER
            elif state == _DATA_END:
                line = queue.read_line(2)
                if line is None:
                    return self._need(eof)
                if line != b"\r\n":
                    raise FrameError("chunk data not followed by CRLF")
                self._state = _SIZE
            elif state == _TRAILER:
                line = queue.read_line(self._max_trailer_bytes - self._trailer_bytes + 2)
                if line is None:
                    return self._need(eof)
                if line == b"\r\n":
                    self._state = _DONE
                    return END
                if not line.endswith(b"\r\n"):
                    raise FrameError("trailer line not terminated by CRLF")
                self._trailer_bytes += len(line)
                self._trailer_lines += 1
                if (
                    self._trailer_bytes > self._max_trailer_bytes
                    or self._trailer_lines > self._max_trailer_lines
                ):
                    raise LimitExceededError("chunked body trailers too large")
            else:
                return END

    def _need(self, eof: bool) -> Signal:
        if eof:
            raise FrameError("connection closed inside a chunked body")
        return NEED_DATA


def _parse_chunk_size(line: bytes) -> int:
    if not line.endswith(b"\r\n"):
        raise FrameError("chunk size line not terminated by CRLF")
    digits = line[:-2].split(b";", 1)[0].rstrip(b" \t")
    if not digits or len(digits) > _MAX_SIZE_DIGITS or not _HEX.issuperset(digits):
        raise FrameError(f"malformed chunk size line {line[:40]!r}")
    return int(digits, 16)


BodyDecoder = FixedLengthDecoder | ChunkedDecoder | UntilCloseDecoder


def decoder_for(
    headers: list[tuple[bytes, bytes]],
    *,
    response_status: int | None = None,
    request_method: bytes = b"GET",
    max_trailer_bytes: int,
    max_trailer_lines: int,
) -> BodyDecoder:
    """The decoder for a message whose head h11 accepted (so framing headers are already validated).

    ``response_status`` is ``None`` for requests. Responses to ``HEAD`` and 1xx/204/304 responses have
    no body; a response with neither ``Transfer-Encoding`` nor ``Content-Length`` runs until close.
    """
    if response_status is not None and (
        response_status in (204, 304) or response_status < 200 or request_method == b"HEAD"
    ):
        return FixedLengthDecoder(0)
    length: int | None = None
    for name, value in headers:
        if name == b"transfer-encoding":
            # h11 only accepts exactly "chunked" (anything else is refused with 501 before we get here).
            return ChunkedDecoder(max_trailer_bytes=max_trailer_bytes, max_trailer_lines=max_trailer_lines)
        if name == b"content-length" and length is None:
            length = int(value)
    if length is not None:
        return FixedLengthDecoder(length)
    if response_status is None:
        return FixedLengthDecoder(0)
    return UntilCloseDecoder()
