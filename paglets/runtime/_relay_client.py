"""The connect-mode side of the relay (docs/relay.md, ``proto/PROTOCOL.md`` §8).

A connect-mode host opens no port. :class:`RelayClient` keeps a session with its hub and long-polls it;
each delivery in a poll answer is run against the host's own HTTP routes through an
:class:`~paglets.http.inprocess.InProcessClient` (socket pairs into the host's server, which never
listens), and the answer is streamed back to the hub. The poll loop never waits for a delivery: each runs
in a task of its own, and the next poll (which acknowledges the deliveries received) goes out at once.

Rules that make a delivery run at most once: deliveries are numbered per session; the client
acknowledges what it received with its next poll (sent at once) and runs a delivery only when that
poll's answer *grants* it (the hub withdraws deliveries whose timeout ended first, and those never run);
it skips ids it has seen (a hub sends a delivery again only when the client's poll says the answer
carrying it was lost). Requests
the host makes itself (moves, messages) go out through the hub like any other HTTP request.

Connection trouble (the hub restarting, the reverse proxy restarting, the network) ends the poll; the
client connects again with exponential backoff (0.25 s doubling to ``RECONNECT_MAX``, ±20 % jitter) and
keeps its session, so the hub keeps what it queued meanwhile. A hub that restarted has a new incarnation
and starts numbering again.
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from typing import Any, Final
from urllib.parse import quote

import msgspec

from paglets.core.context_events import ContextEventLog
from paglets.core.errors import PagletError, RelayError
from paglets.http._body import Piece
from paglets.http.aclient import AsyncHttpClient
from paglets.http.errormap import error_payload
from paglets.http.inprocess import LOCAL_BASE, InProcessClient
from paglets.wire.relay import RelayBatch, RelayDelivery, decode_batch

__all__ = ["RECONNECT_MAX", "RelayClient"]

_log = logging.getLogger("paglets.relay")

#: Longest pause between two attempts to reach the hub.
RECONNECT_MAX: Final = 5.0
#: Seconds a connect request and an answer upload may take per send or receive.
HUB_TIMEOUT: Final = 30.0
#: Longest a relayed request may run on this host (the reverse proxy's read timeout of the drop-in).
RUN_LIMIT: Final = 3600.0
#: Delivery ids remembered per session (far more than can be in flight).
SEEN_IDS: Final = 65536
#: Answer headers passed back through the hub.
_PASSED: Final = ("retry-after", "www-authenticate", "allow")

_ENCODER: Final = msgspec.json.Encoder()


class RelayClient:
    """See the module docstring. ``run()`` until cancelled; ``connected`` is set while a session works."""

    def __init__(
        self,
        *,
        name: str,
        hub_url: str,
        api_key: str | None,
        local: InProcessClient,
        events: ContextEventLog,
        spawn: Callable[..., Any],
    ) -> None:
        self.name = name
        self.hub_url = hub_url.rstrip("/")
        self.session = secrets.token_hex(16)
        self._http = AsyncHttpClient(api_key=api_key, timeout=HUB_TIMEOUT)
        self._local = local
        self._events = events
        self._spawn = spawn
        self._hub: str | None = None  # the hub's incarnation
        self._highest = 0
        self._seen: OrderedDict[str, None] = OrderedDict()
        #: Deliveries received, waiting for the hub to grant them.
        self._pending: dict[str, RelayDelivery] = {}
        self._poll_timeout = 25.0
        self._failures = 0
        self.connected = asyncio.Event()
        self.address: str | None = None
        self.counters: dict[str, int] = dict.fromkeys(("deliveries", "expired", "reconnects", "polls"), 0)

    async def aclose(self) -> None:
        await self._http.aclose()
        await self._local.aclose()

    # --- the session -------------------------------------------------------------------------------------

    async def run(self) -> None:
        backoff = 0.25
        while True:
            try:
                await self._connect()
                backoff = 0.25
                self._failures = 0
                await self._poll_forever()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.connected.clear()
                self._failures += 1
                self.counters["reconnects"] += 1
                if self._failures in (1, 10) or self._failures % 100 == 0:
                    self._events.emit(
                        "relay-client-error",
                        data={"hub": self.hub_url, "attempts": self._failures, "retry_in": round(backoff, 2)},
                        error=_describe(exc),
                    )
                    _log.warning("relay hub %s: %s (retrying)", self.hub_url, _describe(exc))
                await asyncio.sleep(backoff * random.uniform(0.8, 1.2))
                backoff = min(backoff * 2, RECONNECT_MAX)

    async def _connect(self) -> None:
        reply = await self._http.request_json(
            "POST", f"{self.hub_url}/relay/connect", {"name": self.name, "session": self.session}
        )
        if not isinstance(reply, dict) or reply.get("session") != self.session:
            raise RelayError(f"unexpected answer from relay hub {self.hub_url}: {reply!r}")
        hub = str(reply.get("hub"))
        if hub != self._hub:
            # a new hub process numbers deliveries from 1 again and knows nothing of the old ones
            self._hub, self._highest = hub, 0
            self._pending.clear()
        self._poll_timeout = float(reply.get("poll_timeout", 25.0))
        self.address = str(reply.get("address", "")) or None
        if self._failures:
            self._events.emit(
                "relay-client-connected", data={"hub": self.hub_url, "attempts": self._failures}
            )
        self.connected.set()

    async def _poll_forever(self) -> None:
        base = f"{self.hub_url}/relay/poll/{quote(self.name, safe='')}?session={self.session}"
        while True:
            acknowledged = self._highest
            response = await self._http.request(
                "GET", f"{base}&after={acknowledged}", timeout=self._poll_timeout + 15.0
            )
            response.raise_for_status()
            self.counters["polls"] += 1
            try:
                batch: RelayBatch = decode_batch(response.body)
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                raise RelayError(f"relay hub {self.hub_url} sent an invalid poll answer: {exc}") from exc
            if batch.hub != self._hub or batch.session != self.session:
                raise RelayError(f"relay hub {self.hub_url} restarted")
            for delivery_id in batch.granted:
                granted = self._pending.pop(delivery_id, None)
                if granted is not None:
                    self.counters["deliveries"] += 1
                    self._spawn(self._run(granted), name="relay-delivery")
            for delivery_id, waiting in list(self._pending.items()):
                if waiting.seq <= acknowledged:  # acknowledged but not granted: withdrawn, never run
                    del self._pending[delivery_id]
                    self.counters["expired"] += 1
            for delivery in batch.deliveries:
                if delivery.seq > self._highest:
                    self._highest = delivery.seq
                if delivery.delivery_id in self._seen:
                    continue
                self._seen[delivery.delivery_id] = None
                if len(self._seen) > SEEN_IDS:
                    self._seen.popitem(last=False)
                self._pending[delivery.delivery_id] = delivery

    # --- one delivery ------------------------------------------------------------------------------------

    def _delivery_url(self, delivery: RelayDelivery, what: str) -> str:
        return f"{self.hub_url}/relay/deliveries/{delivery.delivery_id}/{what}?session={self.session}"

    async def _run(self, delivery: RelayDelivery) -> None:
        headers = dict(delivery.headers)
        body: bytes | AsyncIterator[Piece] | None = delivery.body
        if delivery.streamed:
            body = self._body(delivery)
            if delivery.body_length is not None:
                headers["Content-Length"] = str(delivery.body_length)
        try:
            async with self._local.stream(
                delivery.method, LOCAL_BASE + delivery.target, body=body, headers=headers, timeout=RUN_LIMIT
            ) as response:
                passed = [(k, response.header(k) or "") for k in _PASSED if response.header(k) is not None]
                passed += [
                    (k.decode("latin-1"), v.decode("latin-1"))
                    for k, v in response.headers
                    if k.startswith(b"x-paglets-") and not k.startswith(b"x-paglets-relay")
                ]
                answer_headers = {
                    "X-Paglets-Relay-Status": str(response.status),
                    "X-Paglets-Relay-Headers": _ENCODER.encode(passed).decode(),
                    "Content-Type": response.header("content-type") or "application/octet-stream",
                }
                length = response.header("content-length")
                if length is not None:
                    answer_headers["Content-Length"] = length
                await self._post_answer(delivery, response.iter_chunks(), answer_headers)
        except PagletError as exc:
            await self._answer_error(delivery, exc)

    async def _body(self, delivery: RelayDelivery) -> AsyncIterator[Piece]:
        async with self._http.stream(
            "GET", self._delivery_url(delivery, "body"), timeout=HUB_TIMEOUT
        ) as source:
            await source.raise_for_status()
            async for piece in source.iter_chunks():
                yield piece

    async def _post_answer(self, delivery: RelayDelivery, body: Any, headers: dict[str, str]) -> None:
        try:
            response = await self._http.request(
                "POST",
                self._delivery_url(delivery, "response"),
                body=body,
                headers=headers,
                timeout=HUB_TIMEOUT,
            )
            response.raise_for_status()
        except PagletError as exc:
            # the caller learns it from the hub (the delivery fails when our session ends, or its own
            # request broke); nothing more to do here
            _log.info("relay answer for delivery %s not delivered: %s", delivery.delivery_id, exc)

    async def _answer_error(self, delivery: RelayDelivery, exc: PagletError) -> None:
        status = getattr(type(exc), "http_status", 502)
        body = _ENCODER.encode(error_payload(exc))
        headers = {
            "X-Paglets-Relay-Status": str(status),
            "X-Paglets-Relay-Headers": "[]",
            "Content-Type": "application/json",
        }
        await self._post_answer(delivery, body, headers)


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if isinstance(exc, PagletError) else f"{type(exc).__name__}: {text}"
