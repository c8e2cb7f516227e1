"""The hub side of the relay (docs/relay.md, ``proto/PROTOCOL.md`` §8).

A connect-mode host opens no port; it keeps a session with a hub (``POST /relay/connect``) and long-polls
it (``GET /relay/poll/<name>``). Anyone may call it through the hub at ``<hub>/relay/hosts/<name>/<path>``:
the hub turns that request into a *delivery* (an id, a per-session sequence number, the method, path,
headers and body) and queues it for the host; the next poll answer carries it; the host runs it against
its own HTTP routes and streams the answer back (``POST /relay/deliveries/<id>/response``), which the
hub streams to the caller. Large request bodies (movement envelopes, artifacts) are not carried in the
poll answer: the host streams them from the hub (``GET /relay/deliveries/<id>/body``) straight out of
the caller's request as it arrives. Nothing is re-encoded or buffered whole.

**At most once.** A delivery runs only on the host session it was queued for, and only once:

- the host acknowledges deliveries cumulatively (the ``after`` of its next poll, sent at once: the
  highest sequence number of the last poll answer it received); a delivery sent in an answer that the
  host says it did not receive (a lost answer) is queued again, with the same id and number, and the
  host ignores ids it has seen;
- the hub alone decides whether a delivery runs: the answer to the acknowledging poll *grants* the
  acknowledged deliveries that are still within their delivery timeout, and the host runs granted
  deliveries only. One not granted by the end of its delivery timeout (still queued, or on its way) is
  withdrawn: the caller gets 504 :class:`RelayTimeoutError` and it can never run later, however late
  the host receives it (a host stopped with a poll answer in its socket buffer, for example);
- a host that stops polling for ``offline_after`` seconds is offline: its queued deliveries fail (they
  never ran) and so do those it took (they may have run: the caller learns it as from a broken
  connection); new requests for it fail at once (502 :class:`RelayError`). A host that connects with a
  new session (a restart) ends the old session the same way, so no request reaches a later process than
  the one it was queued for.

**Nothing durable.** Every queued delivery belongs to a caller whose HTTP request is open at the hub;
when the hub stops, every such request breaks, and its caller sees what a broken connection means for
it. A durable queue would run requests whose callers already gave up. Moves stay exactly-once through a
hub restart because the transfer records of source and target are durable (``proto/PROTOCOL.md`` §6.1).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import quote

import msgspec

from paglets.core.context_events import ContextEventLog
from paglets.core.errors import (
    HostBusyError,
    HostError,
    InvalidAgentError,
    RelayError,
    RelayTimeoutError,
    RequestError,
)
from paglets.http._body import Piece
from paglets.http.messages import Request, Response, StreamResponse, json_response
from paglets.http.routing import Router
from paglets.wire.limits import MAX_CONTROL_BODY
from paglets.wire.relay import (
    INLINE_BODY_LIMIT,
    MAX_BATCH_BYTES,
    MAX_BATCH_DELIVERIES,
    RELAY_CONTENT_TYPE,
    RelayBatch,
    RelayDelivery,
    encode_batch,
)

__all__ = ["POLL_TIMEOUT", "RelayHub", "relay_host_url"]

_log = logging.getLogger("paglets.relay")

#: Longest a poll waits for deliveries (seconds; at most half the offline window, so a healthy host's
#: polls keep it online).
POLL_TIMEOUT: Final = 25.0
#: Longest a hub waits for the answer of a delivery its host took (the drop-in's proxy_read_timeout).
ANSWER_LIMIT: Final = 3600.0
#: Connect-mode hosts one hub keeps sessions for.
MAX_RELAY_NODES: Final = 1024
#: Longest host name a hub accepts.
MAX_NODE_NAME: Final = 256
#: Response bytes buffered between the host's answer upload and the caller's download.
PIPE_HIGH_WATER: Final = 1024 * 1024
#: Headers a relayed answer may carry (besides Content-Type and the framing).
MAX_ANSWER_HEADERS: Final = 32
#: An offline host stays listed in the diagnostics this many offline windows, then is forgotten.
FORGET_AFTER_WINDOWS: Final = 10

#: Request headers passed on to the connect-mode host (besides ``x-paglets-*``).
_PASSED_REQUEST_HEADERS: Final = frozenset({b"content-type", b"accept"})
#: Answer headers passed back to the caller (besides ``x-paglets-*``).
_PASSED_ANSWER_HEADERS: Final = frozenset({"retry-after", "www-authenticate", "allow"})

_HEADERS_DECODER: Final = msgspec.json.Decoder(list[tuple[str, str]])
_CONNECT_DECODER: Final = msgspec.json.Decoder()


def relay_host_url(hub_url: str, name: str) -> str:
    """The address of connect-mode host ``name`` behind the hub at ``hub_url``."""
    return f"{hub_url.rstrip('/')}/relay/hosts/{quote(name, safe='')}"


class _Pipe:
    """Answer bytes from the host's upload to the caller's download, bounded (``PIPE_HIGH_WATER``)."""

    def __init__(self) -> None:
        self._items: deque[Piece] = deque()
        self._size = 0
        self._readable = asyncio.Event()
        self._writable = asyncio.Event()
        self._writable.set()
        self.finished = False
        self.error: BaseException | None = None
        self.reader_gone = False

    async def put(self, piece: Piece) -> None:
        while self._size >= PIPE_HIGH_WATER and not self.reader_gone:
            self._writable.clear()
            await self._writable.wait()
        if self.reader_gone:
            raise ConnectionResetError("the caller went away")
        self._items.append(bytes(piece))
        self._size += len(piece)
        self._readable.set()

    def finish(self, error: BaseException | None = None) -> None:
        self.finished = True
        self.error = error
        self._readable.set()

    async def get(self) -> Piece | None:
        while not self._items and not self.finished:
            self._readable.clear()
            await self._readable.wait()
        if self._items:
            piece = self._items.popleft()
            self._size -= len(piece)
            self._writable.set()
            return piece
        if self.error is not None:
            raise self.error
        return None

    def close_reader(self) -> None:
        self.reader_gone = True
        self._writable.set()


@dataclass(slots=True)
class _Answer:
    status: int
    content_type: str
    headers: list[tuple[str, str]]
    length: int | None
    pipe: _Pipe


@dataclass(slots=True, eq=False)
class _Delivery:
    delivery_id: str
    node: _Node
    session: str
    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes | None
    request: Request | None
    body_length: int | None
    deadline: float
    answer: asyncio.Future[_Answer]
    seq: int = 0
    #: queued → sent (in a poll answer) → taken (acknowledged, or its body or answer arrived) → done.
    stage: str = "queued"
    body_claimed: bool = False
    timer: asyncio.TimerHandle | None = None

    def wire(self, now: float) -> RelayDelivery:
        return RelayDelivery(
            seq=self.seq,
            delivery_id=self.delivery_id,
            method=self.method,
            target=self.target,
            headers=self.headers,
            body=self.body,
            streamed=self.request is not None,
            body_length=self.body_length,
            expires_in=max(0.0, round(self.deadline - now, 3)),
        )


@dataclass(slots=True, eq=False)
class _Node:
    name: str
    url: str
    session: str
    connected_at: float
    last_poll: float
    queue: deque[_Delivery] = field(default_factory=deque)
    sent: dict[int, _Delivery] = field(default_factory=dict)
    taken: dict[str, _Delivery] = field(default_factory=dict)
    waiter: asyncio.Future[None] | None = None
    next_seq: int = 1
    #: Counts the polls of the session; only the newest may take deliveries.
    polls: int = 0
    offline: bool = False
    delivered: int = 0
    failures: int = 0
    last_error: str | None = None


class RelayHub:
    """The relay routes of a hub and the sessions of its connect-mode hosts (see the module docstring)."""

    def __init__(
        self,
        *,
        public_url: Callable[[], str],
        events: ContextEventLog,
        offline_after: float,
        delivery_timeout: float,
        queue_limit: int,
        register: Callable[[str, str], None] | None = None,
    ) -> None:
        self._public_url = public_url
        self._events = events
        self.offline_after = float(offline_after)
        self.delivery_timeout = float(delivery_timeout)
        self.queue_limit = int(queue_limit)
        self._register = register
        #: Changes at every start of the hub: connect-mode hosts reset their sequence numbers then.
        self.incarnation = secrets.token_hex(8)
        self._nodes: dict[str, _Node] = {}
        self._deliveries: dict[str, _Delivery] = {}
        self._counters: dict[str, int] = dict.fromkeys(
            ("forwarded", "answered", "timed_out", "failed", "refused_offline", "refused_full", "polls"), 0
        )
        self._sweeper: asyncio.Task[None] | None = None

    @property
    def poll_timeout(self) -> float:
        return min(POLL_TIMEOUT, self.offline_after / 2)

    # --- lifecycle ---------------------------------------------------------------------------------------

    def start(self) -> None:
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep_forever())

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for node in list(self._nodes.values()):
            self._end_session(node, "the hub stopped")

    async def _sweep_forever(self) -> None:
        interval = min(1.0, self.offline_after / 4)
        while True:
            await asyncio.sleep(interval)
            try:
                self.sweep()
            except Exception:  # pragma: no cover - a bug here must not stop the sweeps
                _log.exception("relay sweep failed")

    def sweep(self) -> None:
        """Mark hosts that stopped polling offline (failing their deliveries); forget long-offline ones."""
        now = _now()
        for node in list(self._nodes.values()):
            silent = now - node.last_poll
            if not node.offline and silent > self.offline_after:
                node.offline = True
                error = f"host {node.name} stopped polling the relay {silent:.1f} s ago"
                node.last_error = error
                self._events.emit(
                    "relay-target-offline", data={"name": node.name, "url": node.url}, error=error
                )
                self._end_session(node, error, forget=False)
            elif node.offline and silent > self.offline_after * FORGET_AFTER_WINDOWS:
                del self._nodes[node.name]

    # --- routes ------------------------------------------------------------------------------------------

    def add_routes(self, router: Router) -> None:
        router.post("/relay/connect", self.connect)
        router.get("/relay/poll/{name}", self.poll)
        router.get("/relay/deliveries/{delivery_id}/body", self.body)
        router.post("/relay/deliveries/{delivery_id}/response", self.respond)
        router.get("/relay/diagnostics", self.diagnostics)
        router.add("*", "/relay/hosts/{name}/{rest:path}", self.forward)
        router.add("*", "/relay/hosts/{name}", self.forward)

    async def connect(self, request: Request) -> Response:
        payload = await request.json(MAX_CONTROL_BODY, decode=_CONNECT_DECODER.decode)
        if not isinstance(payload, dict):
            raise RequestError("invalid request: a relay connect body is a JSON object")
        name, session = payload.get("name"), payload.get("session")
        if not isinstance(name, str) or not name or len(name) > MAX_NODE_NAME:
            raise RequestError(
                f"invalid request: field 'name' must be a host name of 1-{MAX_NODE_NAME} characters"
            )
        if not isinstance(session, str) or not 16 <= len(session) <= 64 or not session.isalnum():
            raise RequestError("invalid request: field 'session' must be 16-64 letters or digits")
        now = _now()
        node = self._nodes.get(name)
        if node is not None and node.session != session:
            self._end_session(node, f"host {name} connected again as a new process")
            node = None
        if node is None:
            if len(self._nodes) >= MAX_RELAY_NODES:
                raise HostBusyError(
                    f"this hub serves {MAX_RELAY_NODES} connect-mode hosts already", retry_after=30
                )
            url = relay_host_url(self._public_url(), name)
            node = self._nodes[name] = _Node(name, url, session, connected_at=now, last_poll=now)
            self._events.emit("relay-host-connected", data={"name": name, "url": url})
        node.last_poll = now
        node.offline = False
        if self._register is not None:
            self._register(name, node.url)
        return json_response(
            {
                "hub": self.incarnation,
                "session": session,
                "address": node.url,
                "poll_timeout": self.poll_timeout,
                "offline_after": self.offline_after,
            }
        )

    def _session_node(self, request: Request, name: str | None = None) -> _Node:
        session = request.query.get("session", "")
        if name is None:
            name = request.path_params["name"]
        node = self._nodes.get(name)
        if node is None or node.session != session:
            raise RelayError(f"no relay session {session!r} for host {name!r} on this hub; connect first")
        return node

    async def poll(self, request: Request) -> Response:
        node = self._session_node(request)
        try:
            after = int(request.query.get("after", "0"))
        except ValueError as exc:
            raise RequestError("invalid request: 'after' must be an integer") from exc
        self._counters["polls"] += 1
        loop = asyncio.get_running_loop()
        now = loop.time()
        node.last_poll = now
        node.offline = False
        granted = self._acknowledge(node, after)
        node.polls += 1
        mine = node.polls
        if node.waiter is not None and not node.waiter.done():
            node.waiter.set_result(None)  # a newer poll of the session replaces a waiting one
        if not node.queue and not granted:
            waiter = node.waiter = loop.create_future()
            try:
                async with asyncio.timeout(self.poll_timeout):
                    await waiter
            except TimeoutError:
                pass
            finally:
                if node.waiter is waiter:
                    node.waiter = None
        newest = node.polls == mine and self._nodes.get(node.name) is node
        batch = self._take_batch(node, loop.time()) if newest else []
        body = encode_batch(
            RelayBatch(hub=self.incarnation, session=node.session, deliveries=batch, granted=granted)
        )
        return Response(
            200,
            body,
            RELAY_CONTENT_TYPE,
            headers=[("X-Accel-Buffering", "no"), ("Cache-Control", "no-store")],
        )

    def _acknowledge(self, node: _Node, after: int) -> list[str]:
        """The host received every delivery numbered up to ``after``: hand over those still within their
        delivery timeout (the ids returned), withdraw the others; later ones it was sent were lost and
        are queued again."""
        granted: list[str] = []
        lost: list[_Delivery] = []
        now = _now()
        for seq, delivery in sorted(node.sent.items()):
            del node.sent[seq]
            if seq > after:
                lost.append(delivery)
            elif delivery.stage == "sent" and not delivery.answer.done():
                if now < delivery.deadline:
                    self._take(delivery)
                    granted.append(delivery.delivery_id)
                else:
                    self._expire(delivery)
        for delivery in reversed(lost):
            delivery.stage = "queued"
            node.queue.appendleft(delivery)
        for delivery in lost:
            if delivery.timer is None:  # its deadline passed while it was (never) on its way
                self._expire(delivery)
        return granted

    def _take(self, delivery: _Delivery) -> None:
        if delivery.stage in ("queued", "sent"):
            delivery.stage = "taken"
            delivery.node.taken[delivery.delivery_id] = delivery
            if delivery.timer is not None:
                delivery.timer.cancel()
                delivery.timer = None

    def _take_batch(self, node: _Node, now: float) -> list[RelayDelivery]:
        batch: list[RelayDelivery] = []
        size = 0
        while node.queue and len(batch) < MAX_BATCH_DELIVERIES:
            delivery = node.queue[0]
            inline = len(delivery.body) if delivery.body is not None else 0
            if batch and size + inline > MAX_BATCH_BYTES:
                break
            node.queue.popleft()
            size += inline
            delivery.stage = "sent"
            node.sent[delivery.seq] = delivery
            batch.append(delivery.wire(now))
            self._events.emit(
                "relay-delivery-dispatched",
                data={"name": node.name, "delivery_id": delivery.delivery_id, "target": delivery.target},
            )
        return batch

    def _delivery(self, request: Request) -> _Delivery:
        delivery = self._deliveries.get(request.path_params["delivery_id"])
        session = request.query.get("session", "")
        if delivery is None or delivery.session != session or delivery.stage == "done":
            raise InvalidAgentError("no such relay delivery (it was answered, withdrawn or never existed)")
        return delivery

    async def body(self, request: Request) -> StreamResponse:
        delivery = self._delivery(request)
        source = delivery.request
        if source is None or delivery.body_claimed:
            raise RequestError("this delivery has no body to fetch (or it was fetched already)")
        if delivery.stage != "taken":
            raise RequestError("this delivery was not handed over (acknowledge it with a poll first)")
        delivery.body_claimed = True

        async def chunks() -> AsyncIterator[Piece]:
            async for piece in source.stream():
                yield piece

        return StreamResponse(200, chunks(), content_length=delivery.body_length)

    async def respond(self, request: Request) -> Response:
        delivery = self._delivery(request)
        if delivery.answer.done():
            return json_response({"ok": True, "duplicate": True})
        if delivery.stage != "taken":
            raise RequestError("this delivery was not handed over (acknowledge it with a poll first)")
        try:
            status = int(request.header("x-paglets-relay-status") or "")
            headers = _HEADERS_DECODER.decode(request.header("x-paglets-relay-headers") or "[]")
        except (ValueError, msgspec.DecodeError) as exc:
            raise RequestError(f"invalid relay answer head: {exc}") from exc
        if not 200 <= status <= 599:
            raise RequestError(f"invalid relay answer status {status}")
        kept = [(k, v) for k, v in headers[:MAX_ANSWER_HEADERS] if _passed_answer_header(k)]
        pipe = _Pipe()
        answer = _Answer(
            status, request.header("content-type") or "application/json", kept, request.content_length, pipe
        )
        delivery.answer.set_result(answer)
        node = delivery.node
        node.delivered += 1
        self._counters["answered"] += 1
        self._events.emit(
            "relay-delivery-ack",
            data={"name": node.name, "delivery_id": delivery.delivery_id, "status": status},
        )
        try:
            async for piece in request.stream():
                await pipe.put(piece)
        except ConnectionResetError:
            return json_response({"ok": False, "error": "the caller went away"})
        except BaseException as exc:
            pipe.finish(exc)
            raise
        pipe.finish()
        return json_response({"ok": True})

    async def forward(self, request: Request) -> Response | StreamResponse:
        name = request.path_params["name"]
        rest = request.path_params.get("rest", "")
        loop = asyncio.get_running_loop()
        node = self._nodes.get(name)
        if node is None or node.offline:
            self._counters["refused_offline"] += 1
            why = "is not connected to this hub" if node is None else "is offline (it stopped polling)"
            error = f"host {name!r} {why}; relay delivery refused"
            self._events.emit("relay-target-offline", data={"name": name, "target": "/" + rest}, error=error)
            raise RelayError(error)
        if len(node.queue) >= self.queue_limit:
            self._counters["refused_full"] += 1
            raise HostBusyError(
                f"the relay queue for host {name!r} is full ({self.queue_limit} deliveries waiting); "
                "retry later",
                retry_after=1,
            )
        declared = request.content_length
        has_body = declared != 0 and (declared is not None or request.header("transfer-encoding") is not None)
        body: bytes | None = None
        streamed: Request | None = None
        if has_body and declared is not None and declared <= INLINE_BODY_LIMIT:
            body = await request.body(INLINE_BODY_LIMIT)
        elif has_body:
            streamed = request
        target = "/" + rest + (f"?{request.query_string}" if request.query_string else "")
        headers = [
            (k.decode("latin-1"), v.decode("latin-1"))
            for k, v in request.headers
            if k in _PASSED_REQUEST_HEADERS
            or (k.startswith(b"x-paglets-") and not k.startswith(b"x-paglets-relay"))
        ]
        if node.offline or self._nodes.get(name) is not node:  # it went away while the body arrived
            raise RelayError(f"host {name!r} went offline; relay delivery refused")
        delivery = _Delivery(
            delivery_id=secrets.token_hex(16),
            node=node,
            session=node.session,
            method=request.method,
            target=target,
            headers=headers,
            body=body,
            request=streamed,
            body_length=declared if streamed is not None else None,
            deadline=loop.time() + self.delivery_timeout,
            answer=loop.create_future(),
        )
        delivery.seq = node.next_seq
        node.next_seq += 1
        delivery.timer = loop.call_at(delivery.deadline, self._expire, delivery)
        self._deliveries[delivery.delivery_id] = delivery
        node.queue.append(delivery)
        self._counters["forwarded"] += 1
        self._events.emit(
            "relay-delivery-enqueued",
            data={"name": name, "delivery_id": delivery.delivery_id, "target": target},
        )
        if node.waiter is not None and not node.waiter.done():
            node.waiter.set_result(None)
        try:
            async with asyncio.timeout(ANSWER_LIMIT):
                await asyncio.wait([delivery.answer])
        except TimeoutError:
            self._fail(delivery, RelayError(f"host {name!r} did not answer within {ANSWER_LIMIT:g} s"))
        answer = delivery.answer.result()  # raises the error the delivery failed with
        return StreamResponse(
            answer.status,
            self._relay_answer(delivery, answer.pipe),
            content_type=answer.content_type,
            content_length=answer.length,
            headers=answer.headers,
        )

    async def _relay_answer(self, delivery: _Delivery, pipe: _Pipe) -> AsyncIterator[Piece]:
        try:
            while (piece := await pipe.get()) is not None:
                yield piece
        finally:
            pipe.close_reader()
            self._done(delivery)

    # --- failures ----------------------------------------------------------------------------------------

    def _expire(self, delivery: _Delivery) -> None:
        """The delivery timeout ended: withdraw the delivery if its host did not take it."""
        delivery.timer = None
        if delivery.stage not in ("queued", "sent") or delivery.answer.done():
            return  # taken: it runs
        node = delivery.node
        if delivery.stage == "queued":
            try:
                node.queue.remove(delivery)
            except ValueError:
                pass
        else:
            node.sent.pop(delivery.seq, None)
        error = (
            f"relay delivery to host {node.name!r} timed out after {self.delivery_timeout:g} s before "
            "the host took it; it was withdrawn and will not run"
        )
        node.last_error = error
        self._counters["timed_out"] += 1
        self._events.emit(
            "relay-delivery-timeout",
            data={"name": node.name, "delivery_id": delivery.delivery_id, "target": delivery.target},
            error=error,
        )
        self._fail(delivery, RelayTimeoutError(error))

    def _fail(self, delivery: _Delivery, error: HostError | RelayError) -> None:
        if not delivery.answer.done():
            delivery.answer.set_exception(error)
            delivery.answer.exception()  # retrieved: a caller that went away leaves no warning
            delivery.node.failures += 1
            self._counters["failed"] += 1
        self._done(delivery)

    def _done(self, delivery: _Delivery) -> None:
        delivery.stage = "done"
        if delivery.timer is not None:
            delivery.timer.cancel()
            delivery.timer = None
        self._deliveries.pop(delivery.delivery_id, None)
        node = delivery.node
        node.taken.pop(delivery.delivery_id, None)
        node.sent.pop(delivery.seq, None)

    def _end_session(self, node: _Node, reason: str, *, forget: bool = True) -> None:
        """Fail every delivery of ``node``'s session: queued ones never ran, taken ones may have."""
        while node.queue:
            delivery = node.queue.popleft()
            self._fail(delivery, RelayError(f"{reason}; the relayed request to {node.name!r} did not run"))
        for delivery in [*node.sent.values(), *node.taken.values()]:
            self._fail(
                delivery,
                RelayError(
                    f"{reason} while it handled a relayed request; the request may or may not have run"
                ),
            )
        if node.waiter is not None and not node.waiter.done():
            node.waiter.set_result(None)
        if forget and self._nodes.get(node.name) is node:
            del self._nodes[node.name]

    # --- diagnostics -------------------------------------------------------------------------------------

    def diagnostics_payload(self) -> dict[str, Any]:
        now = _now()
        wall = time.time()
        nodes = []
        for node in sorted(self._nodes.values(), key=lambda n: n.name):
            age = now - node.last_poll
            nodes.append(
                {
                    "name": node.name,
                    "url": node.url,
                    "online": not node.offline,
                    "last_seen": round(wall - age, 3),
                    "last_seen_age": round(age, 3),
                    "active_polls": int(node.waiter is not None and not node.waiter.done()),
                    "queue_depth": len(node.queue),
                    "in_flight": len(node.sent) + len(node.taken),
                    "delivered": node.delivered,
                    "failures": node.failures,
                    "last_error": node.last_error,
                    "connected_for": round(now - node.connected_at, 3),
                }
            )
        return {
            "hub": self.incarnation,
            "nodes": nodes,
            "counters": dict(self._counters),
            "settings": {
                "offline_after": self.offline_after,
                "delivery_timeout": self.delivery_timeout,
                "queue_limit": self.queue_limit,
                "poll_timeout": self.poll_timeout,
            },
        }

    async def diagnostics(self, request: Request) -> Response:
        return json_response(self.diagnostics_payload())

    def node_names(self) -> list[str]:
        return sorted(n.name for n in self._nodes.values() if not n.offline)


def _passed_answer_header(name: str) -> bool:
    lowered = name.lower()
    return lowered in _PASSED_ANSWER_HEADERS or (
        lowered.startswith("x-paglets-") and not lowered.startswith("x-paglets-relay")
    )


def _now() -> float:
    return asyncio.get_running_loop().time()
