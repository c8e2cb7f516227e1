"""One server connection: an ``asyncio.Protocol`` driving h11, one task per connection.

The protocol callbacks only buffer and wake: ``data_received`` appends to the connection's
:class:`~paglets.http._body.ByteQueue` (pausing the socket above ``receive_high_water``), and the
connection's task does the work, one request at a time, so pipelined requests are answered in order:

1. **Head.** A fresh ``h11.Connection`` per request parses and validates the request head. It is fed
   from the queue but never more than the limits allow (the request line plus its CRLF until that line
   is complete, then ``max_header_bytes + 1``), so what it decides does not depend on how the bytes
   were split; what it read past the head goes back to the front of the queue. Too long a request line
   is 414, too large a head or too many headers 431, anything h11 refuses 400 (or its 501/505).
2. **Auth**, before any body byte is read: 401 (and close when a body was announced).
3. **Route** (404 / 405 with ``Allow``), then the handler runs in this task (no task per request). Its
   body reads pull from the queue through ``_body``'s decoders (h11's body reader copies too much for
   the movement budget); ``Expect: 100-continue`` is answered on the first read.
4. **Response**, head written by ``_heads`` (validated; h11's writer is a tenth of a round trip), body
   with ``Content-Length``, chunked, or — for an HTTP/1.0 client and no length — close-delimited.
   Streaming bodies wait for the transport to drain.
5. **Keep-alive or close**: the connection closes when the client asks (``Connection: close``,
   HTTP/1.0), when the server is shutting down, after any body error, and when the handler left more
   than ``drain_limit`` body bytes unread or left a ``100-continue`` client waiting (small leftovers are
   read and discarded). Closing while the client may still be sending is a *lingering* close
   (half-close, discard input for ``close_linger`` seconds, at most ``LINGER_MAX_BYTES`` of it, then stop
   reading until the time is up) so the client reads our last response instead of a reset.

Admission (``connection_made``): a peer address at its ``max_connections_per_address`` share is
answered 503; a full server first closes the connection idle the longest (``ServerContext.make_room``)
and answers 503 only when none is idle. While the task waits for a request with nothing of it received,
the connection is listed as idle. The first request must be complete within ``first_request_timeout``
of the accept; later ones get ``idle_timeout`` to start and ``header_timeout`` to finish their head.

Timeouts use one lazily re-armed timer per connection (setting a later deadline costs an attribute
store); see :mod:`paglets.http.limits` for the rules. Nothing a peer sends can raise out of the task:
protocol errors become 4xx answers, unexpected failures are logged and close only this connection.
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
from collections.abc import AsyncIterable, Iterable
from typing import TYPE_CHECKING, Final, cast

import h11
import msgspec

from paglets._errors import (
    FrameError,
    HeadersTooLargeError,
    LimitExceededError,
    PagletError,
    ProtocolError,
    RemoteHostError,
)
from paglets.http._body import ByteQueue, ChunkedDecoder, FixedLengthDecoder, Piece
from paglets.http._heads import LAST_CHUNK, chunk_header, has_token, plan_response, response_head
from paglets.http._reqbody import RequestBody
from paglets.http.auth import authorization_problem, unauthorized_response
from paglets.http.limits import HEAD_FEED, ServerLimits
from paglets.http.messages import Request, Response, StreamResponse, error_response
from paglets.http.routing import RouteMiss, strip_prefix

if TYPE_CHECKING:
    from asyncio import TimerHandle

    from paglets.http._context import ServerContext

__all__ = ["ServerConnection"]

logger = logging.getLogger("paglets.http")

#: Bodies up to this size are concatenated with their head into one write.
_COALESCE_LIMIT: Final = 64 * 1024
_CRLF: Final = b"\r\n"

#: h11's messages may quote the offending input: we keep the reason only (never echo input back).
_QUOTED_INPUT: Final = re.compile(r":? *(?:bytearray\(|b['\"]|\{|\[|\().*$", re.S)


class _Gone(Exception):
    """The connection cannot continue (peer gone, write timed out); close it quietly.

    Also what a handler's body read raises (through ``ServerConnection.write``) once the peer is gone.
    """


class _TimedOut(Exception):
    pass


class ServerConnection(asyncio.Protocol):
    """See the module docstring."""

    def __init__(self, context: ServerContext) -> None:
        self.context = context
        self.inbox = ByteQueue()
        self.eof = False
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._task: asyncio.Task[None] | None = None
        self._peer: tuple[str, int] | None = None
        #: The peer's address while the connection holds a slot (the key of the per-address count).
        self.address: str | None = None
        self._accepted_at = self._loop.time()
        self._requests = 0
        self._lost = False
        self._reading_paused = False
        self._write_paused = False
        self._waiter: asyncio.Future[None] | None = None
        self._timer: TimerHandle | None = None
        self._timer_when = 0.0
        self._deadline: float | None = None
        self._lingering = False
        self._linger_timer: TimerHandle | None = None
        self._linger_bytes = 0
        self._body: RequestBody | None = None
        #: When a list (set by ``paglets.http.testing``), the method class of every final response
        #: written, in order ("HEAD" for head-only answers, else "GET"), so the output can be parsed.
        self.response_methods: list[str] | None = None

    @property
    def task(self) -> asyncio.Task[None] | None:
        """The connection's task (``None`` for a rejected connection)."""
        return self._task

    # --- protocol callbacks (buffer and wake only) --------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop's transports are not subclasses
        self._transport = transport
        context = self.context
        limits = context.limits
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except (OSError, AttributeError):  # not TCP (unix socket, memory transport)
                pass
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple) and len(peer) >= 2:
            self._peer = (str(peer[0]), int(peer[1]))
        address = self._peer[0] if self._peer is not None else None
        if context.closing:
            self._reject(_SERVICE_UNAVAILABLE)
            return
        if context.address_full(address):
            context.rejected_per_address += 1
            self._reject(_ADDRESS_BUSY)
            return
        if not context.make_room():
            self._reject(_SERVICE_UNAVAILABLE)
            return
        self.address = address
        self._accepted_at = self._loop.time()
        context.admit(self, address)
        transport.set_write_buffer_limits(high=limits.write_high_water)
        self._task = self._loop.create_task(self._run())

    def _reject(self, answer: bytes) -> None:
        context = self.context
        context.rejected += 1
        assert self._transport is not None
        if context.lingering >= context.limits.max_connections:
            self._transport.abort()
            return
        self._transport.write(answer)
        self._linger_close()

    def evict(self) -> bool:
        """Close this idle connection to make room for a new one; ``False`` when it is already gone."""
        if self._lost or self._transport is None:
            return False
        self.eof = True  # the task sees the end of input and finishes quietly
        self._transport.close()
        self.wake()
        return True

    def data_received(self, data: bytes) -> None:
        if self._lingering:
            self._linger_bytes += len(data)
            if self._linger_bytes > self.context.limits.linger_max_bytes and self._transport is not None:
                # discard no more: stop reading (the peer's sends stall) and leave the connection to the
                # linger timer, so that a peer still sending reads our response before the reset (a reset
                # now throws away what it has not read yet: a proxy in front then answers 502)
                self._transport.pause_reading()
            return
        self.inbox.append(data)
        if len(self.inbox) > self.context.limits.receive_high_water and not self._reading_paused:
            self._reading_paused = True
            assert self._transport is not None
            self._transport.pause_reading()
        self.wake()

    def eof_received(self) -> bool:
        self.eof = True
        self.wake()
        return not self._lingering  # keep the write side open to answer, unless we are done

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        self.eof = True
        if self._lingering:
            self.context.lingering -= 1
            self._lingering = False
        if self._linger_timer is not None:
            self._linger_timer.cancel()
            self._linger_timer = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._deadline = None
        self.context.forget(self)
        self.wake()

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        self.wake()

    # --- helpers used by the task and by RequestBody -----------------------------------------------------

    def wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def consumed(self) -> None:
        """Resume reading once the queue drained below a quarter of the high-water mark."""
        if self._reading_paused and len(self.inbox) <= self.context.limits.receive_high_water // 4:
            self._reading_paused = False
            if self._transport is not None and not self._lost:
                self._transport.resume_reading()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._lost or self._transport is None:
            raise _Gone
        self._transport.write(data)

    def alive(self) -> bool:
        return not self._lost

    def abort(self) -> asyncio.Task[None] | None:
        """Drop the connection now (end of a shutdown deadline)."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
        if self._transport is not None and not self._lost:
            self._transport.abort()
        return self._task

    async def _wait(self, deadline: float) -> None:
        """Wait for any wake-up (input, eof, drain, shutdown) until ``deadline``; raises ``_TimedOut``."""
        waiter = self._loop.create_future()
        self._waiter = waiter
        self._deadline = deadline
        if self._timer is None or self._timer_when > deadline:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = self._loop.call_at(deadline, self._on_timer)
            self._timer_when = deadline
        try:
            await waiter
        finally:
            self._waiter = None
            self._deadline = None

    def _on_timer(self) -> None:
        self._timer = None
        deadline = self._deadline
        if deadline is None:
            return
        if self._loop.time() < deadline:
            self._timer = self._loop.call_at(deadline, self._on_timer)
            self._timer_when = deadline
            return
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(_TimedOut())

    async def wait_body_data(self, body: RequestBody) -> None:
        """Wait for more body bytes under the stall and minimum-rate rules (sticky 408 on timeout)."""
        if self._lost:
            raise body.fail(ProtocolError("client disconnected during the request body"))
        limits = self.context.limits
        start = self._loop.time()
        budget = limits.body_rate_grace + body.received / limits.min_body_rate - body.waited
        try:
            await self._wait(start + min(limits.read_timeout, max(budget, 0.0)))
        except _TimedOut:
            self.context.timeouts += 1
            raise body.fail(ProtocolError("timed out waiting for the request body"), 408) from None
        finally:
            body.waited += self._loop.time() - start

    async def _drain(self) -> None:
        deadline = self._loop.time() + self.context.limits.write_timeout
        while self._write_paused and self.alive():
            try:
                await self._wait(deadline)
            except _TimedOut:
                self.context.timeouts += 1
                if self._transport is not None:
                    self._transport.abort()  # close() would wait for the unread bytes forever
                raise _Gone from None
        if not self.alive():
            raise _Gone

    def _linger_close(self) -> None:
        transport = self._transport
        if transport is None or self._lost or self._lingering:
            return
        self._lingering = True
        self.context.lingering += 1
        self.inbox.clear()
        if self._reading_paused:
            self._reading_paused = False
            transport.resume_reading()
        if self.eof or not transport.can_write_eof():
            transport.close()
            return
        transport.write_eof()
        self._linger_timer = self._loop.call_later(self.context.limits.close_linger, transport.abort)

    # --- the connection task ------------------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            while await self._serve_one():
                pass
        except (_Gone, ConnectionError):
            pass
        except Exception:
            self.context.internal_errors += 1
            logger.exception("unexpected error on HTTP connection from %s", self._peer)
            if self._transport is not None and not self._lost:
                self._transport.abort()
        finally:
            self._finish()

    def _finish(self) -> None:
        if self._lost or self._transport is None or self._lingering:
            return
        body = self._body
        if self.inbox or (body is not None and not body.done) or self._reading_paused:
            self._linger_close()
        else:
            self._transport.close()

    async def _serve_one(self) -> bool:
        """Serve one request; ``True`` keeps the connection for the next one."""
        context = self.context
        limits = context.limits
        self._body = None
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=limits.max_header_bytes)
        line_cap = limits.max_request_line + 2  # the line and its CRLF
        head_cap = limits.max_header_bytes + 1  # one byte over: h11 then reports the excess
        fed = 0
        line_end = -1  # offset of the request line's "\n", once fed
        head_deadline = 0.0
        first = self._requests == 0
        while True:
            try:
                event = conn.next_event() if fed else h11.NEED_DATA
            except h11.RemoteProtocolError as exc:
                return await self._refuse_head(exc)
            if event is h11.NEED_DATA:
                if line_end < 0 and fed >= line_cap:
                    return await self._refuse(
                        LimitExceededError(f"request line longer than {limits.max_request_line} bytes"), 414
                    )
                if fed >= head_cap:  # pragma: no cover - h11 raises first (max_incomplete_event_size)
                    return await self._refuse(_head_too_large(limits), 431)
                if self.inbox:
                    cap = (head_cap if line_end >= 0 else line_cap) - fed
                    data = self.inbox.take_bytes(min(HEAD_FEED, cap))
                    self.consumed()
                    if not fed:
                        head_deadline = self._loop.time() + limits.header_timeout
                        if first:
                            first_deadline = self._accepted_at + limits.first_request_timeout
                            head_deadline = min(head_deadline, first_deadline)
                    if line_end < 0:
                        newline = data.find(b"\n")
                        if newline >= 0:
                            line_end = fed + newline
                    fed += len(data)
                    conn.receive_data(data)
                    continue
                if self.eof:
                    if not fed:
                        return False
                    conn.receive_data(b"")
                    continue
                if context.closing and not fed:
                    return False
                if fed:
                    deadline = head_deadline
                elif first:
                    deadline = self._accepted_at + limits.first_request_timeout
                else:
                    deadline = self._loop.time() + limits.idle_timeout
                if not fed:
                    context.idle[self] = None
                try:
                    await self._wait(deadline)
                except _TimedOut:
                    if not fed:
                        if first:
                            context.first_request_timeouts += 1
                        return False  # a connection that never spoke, or idle keep-alive: close quietly
                    context.timeouts += 1
                    return await self._refuse(ProtocolError("timed out waiting for the request head"), 408)
                finally:
                    context.idle.pop(self, None)
                continue
            if type(event) is h11.Request:
                break
            return False  # ConnectionClosed
        self._requests += 1
        leftover = conn.trailing_data[0]
        if leftover:
            self.inbox.push_front(leftover)
        if fed - len(leftover) > limits.max_header_bytes:
            return await self._refuse(_head_too_large(limits), 431)
        context.in_flight += 1
        try:
            return await self._handle(event)
        finally:
            context.in_flight -= 1

    async def _handle(self, event: h11.Request) -> bool:
        context = self.context
        limits = context.limits
        if event.http_version not in (b"1.1", b"1.0"):
            return await self._refuse(ProtocolError("HTTP version not supported"), 505)
        # raw_items() is a plain list; iterating ``event.headers`` goes through Sequence.__getitem__.
        headers = [(name.lower(), value) for name, value in event.headers.raw_items()]
        if len(headers) > limits.max_header_count:
            return await self._refuse(
                HeadersTooLargeError(f"more than {limits.max_header_count} headers"), 431
            )
        chunked = False
        length = 0
        for name, value in headers:
            if name == b"transfer-encoding":
                chunked = True
            elif name == b"content-length":
                length = int(value)  # h11 validated it and merged duplicates
        if chunked and length:
            return await self._refuse(FrameError("both Transfer-Encoding and Content-Length"), 400)
        http11 = event.http_version == b"1.1"
        decoder: FixedLengthDecoder | ChunkedDecoder = (
            ChunkedDecoder(
                max_trailer_bytes=limits.max_header_bytes, max_trailer_lines=limits.max_header_count
            )
            if chunked
            else FixedLengthDecoder(length)
        )
        body = self._body = RequestBody(
            self, decoder, expect_continue=http11 and has_token(headers, b"expect", b"100-continue")
        )
        target = event.target
        if not target.startswith(b"/"):
            return await self._refuse(FrameError("request target must be an absolute path"), 400)
        method = event.method.decode("ascii")
        head_only = method == "HEAD"
        keep_alive = http11 and not has_token(headers, b"connection", b"close")
        path_bytes, _, query = target.partition(b"?")
        raw_path = path_bytes.decode("ascii")
        path = strip_prefix(raw_path, context.prefix)

        problem = None if context.api_key is None else authorization_problem(headers, context.api_key)
        if (
            problem is not None
            and context.open_request is not None
            and context.open_request(method, path, headers)
        ):
            problem = None
        if problem is not None:
            return await self._respond(
                unauthorized_response(problem),
                close=not body.done or not keep_alive,
                head_only=head_only,
                http11=http11,
            )

        response: Response | StreamResponse
        found = context.router.lookup(method, path)
        if isinstance(found, RouteMiss):
            extra = [("Allow", ", ".join(found.allow))] if found.allow else None
            response = error_response(found.error(method, path), headers=extra)
        else:
            request = Request(
                method,
                path,
                query_string=query.decode("ascii"),
                headers=headers,
                path_params=found.params,
                client=self._peer,
                raw_path=raw_path,
                http_version=event.http_version.decode("ascii"),
                source=body,
                json_limit=limits.max_json_body,
                stream_limit=limits.max_stream_body,
                offload=context.offload,
                offload_threshold=limits.json_offload_threshold,
            )
            try:
                response = await found.route.handler(request)
                if not isinstance(response, (Response, StreamResponse)):
                    raise TypeError(f"handler {found.route.pattern} returned {type(response).__name__}")
            except _Gone:
                raise
            except PagletError as exc:
                response = self._error(exc, method, path)
            except Exception as exc:
                context.internal_errors += 1
                logger.exception("handler for %s %s failed", method, path)
                response = error_response(exc)
            if body.error is not None:
                if isinstance(response, StreamResponse):
                    await _close_chunks(response.chunks)
                response = error_response(body.error, status=body.error_status)
        remaining = body.remaining
        close = (
            not keep_alive
            or context.closing
            or body.error is not None
            or (
                not body.done
                and (remaining is None or remaining > limits.drain_limit or body.client_waits_for_continue)
            )
        )
        if not await self._respond(response, close=close, head_only=head_only, http11=http11):
            return False
        if not body.done:
            try:
                while await body.read() is not None:
                    pass
            except PagletError:
                return False
        return True

    def _error(self, exc: PagletError, method: str, path: str) -> Response:
        """The response for a handler's error. Its traceback (from a paglet process or another host,
        with their file paths) is sent only when the server exposes tracebacks; otherwise it goes to the
        log, where the host's operator finds it."""
        expose = self.context.expose_tracebacks
        if exc.remote_traceback and not expose:
            logger.info(
                "%s %s answered %s %s: %s\n%s",
                method,
                path,
                exc.http_status,
                type(exc).__name__,
                exc,
                exc.remote_traceback.rstrip(),
            )
        return error_response(exc, traceback=expose)

    async def _refuse(self, exc: PagletError, status: int) -> bool:
        """Answer a request we will not serve (bad head, timeout) and close."""
        self.context.protocol_errors += 1
        await self._respond(error_response(exc, status=status), close=True)
        return False

    async def _refuse_head(self, exc: h11.RemoteProtocolError) -> bool:
        if exc.error_status_hint == 431:
            return await self._refuse(_head_too_large(self.context.limits), 431)
        reason = _QUOTED_INPUT.sub("", str(exc)) or "malformed request"
        return await self._refuse(ProtocolError(f"malformed request: {reason}"), exc.error_status_hint)

    # --- responses ----------------------------------------------------------------------------------------

    async def _respond(
        self,
        response: Response | StreamResponse,
        *,
        close: bool,
        head_only: bool = False,
        http11: bool = True,
    ) -> bool:
        """Send ``response`` (only its head for ``HEAD``); ``False`` when the connection must close."""
        if self._lost:
            if isinstance(response, StreamResponse):
                await _close_chunks(response.chunks)
            raise _Gone
        context = self.context
        status = response.status
        length = response.content_length if isinstance(response, StreamResponse) else len(response.body)
        try:
            plan = plan_response(
                status,
                response.content_type,
                length,
                [(name.encode("latin-1"), value.encode("latin-1")) for name, value in response.headers],
                close=close,
                http11=http11,
            )
        except (ProtocolError, UnicodeError) as exc:
            context.internal_errors += 1
            logger.error("handler produced an invalid response (status %r): %s", status, exc)
            if isinstance(response, StreamResponse):
                await _close_chunks(response.chunks)
            fallback = error_response(RemoteHostError(f"invalid response: {exc}"))
            return await self._respond(fallback, close=True, head_only=head_only, http11=http11)
        head, has_body = plan.head, plan.has_body
        if status >= 500:
            context.server_errors += 1
        elif status >= 400:
            context.client_errors += 1
        if self.response_methods is not None:
            self.response_methods.append("HEAD" if head_only else "GET")
        send_body = has_body and not head_only
        if isinstance(response, StreamResponse):
            self.write(head)
            if send_body:
                await self._stream(response.chunks, length, plan.chunked)
            else:
                await _close_chunks(response.chunks)
        else:
            body = response.body
            if send_body and body:
                if len(body) <= _COALESCE_LIMIT:
                    self.write(head + body)
                else:
                    self.write(head)
                    self.write(body)
            else:
                self.write(head)
        if self._write_paused:
            await self._drain()
        context.served += 1
        return not plan.close

    async def _stream(
        self, chunks: AsyncIterable[Piece] | Iterable[Piece], length: int | None, chunked: bool
    ) -> None:
        """Send a streaming body and its end; any failure aborts the connection (the head is out)."""
        sent = 0
        try:
            if isinstance(chunks, AsyncIterable):
                async for piece in chunks:
                    sent = await self._send_piece(piece, sent, length, chunked)
            else:
                for piece in chunks:
                    sent = await self._send_piece(piece, sent, length, chunked)
            if length is not None and sent != length:
                raise ProtocolError(f"response body of {sent} bytes, declared {length}", fault="local")
            if chunked:
                self.write(LAST_CHUNK)
        except _Gone:
            raise
        except Exception:
            self.context.internal_errors += 1
            logger.exception("streaming response body failed; dropping the connection")
            if self._transport is not None and not self._lost:
                self._transport.abort()
            raise _Gone from None
        finally:
            await _close_chunks(chunks)

    async def _send_piece(self, piece: Piece, sent: int, length: int | None, chunked: bool) -> int:
        size = len(piece)
        if not size:
            return sent
        sent += size
        if length is not None and sent > length:
            raise ProtocolError(f"response body longer than the declared {length} bytes", fault="local")
        if self._lost or self._transport is None:
            raise _Gone
        if chunked:
            self._transport.writelines([chunk_header(size), piece, _CRLF])
        else:
            self._transport.write(piece)
        if self._write_paused:
            await self._drain()
        return sent


async def _close_chunks(chunks: object) -> None:
    """Close a generator body we finished with or will not iterate (runs its ``finally`` blocks)."""
    aclose = getattr(chunks, "aclose", None)
    try:
        if aclose is not None:
            await aclose()
        else:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()
    except Exception:  # the body's own cleanup failed; the response is already decided
        logger.debug("closing a response body iterator failed", exc_info=True)


def _head_too_large(limits: ServerLimits) -> HeadersTooLargeError:
    return HeadersTooLargeError(f"request head larger than {limits.max_header_bytes} bytes")


def _standalone(status: int, payload: dict[str, str]) -> bytes:
    body = msgspec.json.encode(payload)
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", b"%d" % len(body)),
        (b"connection", b"close"),
    ]
    return response_head(status, headers) + body


_SERVICE_UNAVAILABLE: Final = _standalone(
    503,
    {
        "error_type": "RemoteHostError",
        "error": "server busy: too many open connections",
        "code": "remote_host",
    },
)

_ADDRESS_BUSY: Final = _standalone(
    503,
    {
        "error_type": "RemoteHostError",
        "error": "server busy: too many open connections from your address",
        "code": "remote_host",
    },
)
