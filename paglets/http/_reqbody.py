"""The body of the request a server connection is serving, read on demand by the handler.

``RequestBody`` implements :class:`paglets.http.messages.BodySource` over the connection's byte queue:
each ``read`` returns the next piece the ``_body`` decoder finds in the queue, and otherwise waits for
the client under the connection's stall and minimum-rate rules. Errors are *sticky*: the first one
(malformed framing, timeout, client gone, too large) is recorded so that the server answers with it
even if the handler caught it. ``Expect: 100-continue`` is answered on the first read that has to wait.
"""

from __future__ import annotations

from typing import Protocol

from paglets._errors import PagletError, ProtocolError
from paglets.http._body import END, ByteQueue, ChunkedDecoder, FixedLengthDecoder, Piece, Signal
from paglets.http._context import ServerContext
from paglets.http._heads import CONTINUE

__all__ = ["BodyConnection", "RequestBody"]


class BodyConnection(Protocol):
    """What a ``RequestBody`` needs from its connection."""

    inbox: ByteQueue
    eof: bool
    context: ServerContext

    def write(self, data: bytes) -> None: ...

    def consumed(self) -> None: ...

    async def wait_body_data(self, body: RequestBody) -> None: ...


class RequestBody:
    """The body of the current request, read on demand (``messages.BodySource``)."""

    __slots__ = (
        "_conn",
        "_decoder",
        "continue_sent",
        "declared_length",
        "error",
        "error_status",
        "expect_continue",
        "received",
        "waited",
    )

    def __init__(
        self, conn: BodyConnection, decoder: FixedLengthDecoder | ChunkedDecoder, expect_continue: bool
    ) -> None:
        self._conn = conn
        self._decoder = decoder
        self.declared_length: int | None = decoder.length if type(decoder) is FixedLengthDecoder else None
        self.expect_continue = expect_continue
        self.continue_sent = False
        self.received = 0
        self.waited = 0.0
        self.error: PagletError | None = None
        self.error_status: int | None = None

    @property
    def done(self) -> bool:
        return self._decoder.done

    @property
    def remaining(self) -> int | None:
        """Bytes still to come for a fixed-length body, ``None`` when chunked."""
        decoder = self._decoder
        return decoder.remaining if type(decoder) is FixedLengthDecoder else None

    @property
    def client_waits_for_continue(self) -> bool:
        return self.expect_continue and not self.continue_sent and not self.done

    def fail(self, exc: PagletError, status: int | None = None) -> PagletError:
        if self.error is None:
            self.error = exc
            self.error_status = status
        return exc

    async def read(self) -> Piece | None:
        if self.error is not None:
            raise self.error
        conn = self._conn
        while True:
            try:
                piece = self._decoder.next(conn.inbox, conn.eof)
            except ProtocolError as exc:
                conn.context.protocol_errors += 1
                raise self.fail(exc) from None
            if isinstance(piece, Signal):
                if piece is END:
                    return None
                if self.client_waits_for_continue:
                    self.continue_sent = True
                    conn.write(CONTINUE)
                await conn.wait_body_data(self)
                continue
            self.received += len(piece)
            conn.consumed()
            return piece
