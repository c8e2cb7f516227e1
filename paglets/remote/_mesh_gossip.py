"""The heartbeat driver of the mesh: rounds, the join exchange, answers into the peer table.

The rules (what a round contacts, how answers and ages count, backoff) are stated in
:mod:`paglets.remote.mesh` and :mod:`paglets.remote._mesh_table`; this module only drives them on the
event loop:

- :meth:`Gossip.run` — the background task: open the beacon if asked, then forever: wait for the
  minimum spacing, run a round, sleep ``interval`` ±20 % or until woken (news, a new seed, a waiter);
- :meth:`Gossip.round` — contact every due peer in parallel (bounded by a semaphore), each with one
  ``POST <peer>/hosts/join`` under ``request_timeout``; then sweep the table and send a beacon;
- :meth:`Gossip.contact` — one exchange; a malformed answer counts as a failure of that peer.

Answers: ``{"hosts": [...], "host": <responder>}`` (ours), ``{"hosts": [...]}`` (paglets 2.0: the
responder is the entry at the URL we called), or an error body (``error_type``...) for a 409 refusal.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, fields
from typing import Any, Final

from paglets.core.errors import HostError, PagletError
from paglets.remote._mesh_beacon import BeaconChannel, decode_beacon, encode_beacon
from paglets.remote._mesh_ref import HostRef, normalize_host_url
from paglets.remote._mesh_table import PeerTable

__all__ = [
    "JITTER",
    "MAX_GOSSIP_REFS",
    "MAX_MESH_HOSTS",
    "MAX_PARALLEL_HEARTBEATS",
    "MIN_ROUND_SPACING",
    "SKIP_WINDOW_INTERVALS",
    "Counters",
    "Gossip",
    "PostJson",
    "same_url",
]

#: Relative jitter of round delays and backoff delays, so hosts started together do not stay in step.
JITTER: Final = 0.2
#: Heartbeats in flight at once; bounds sockets and memory whatever the mesh size.
MAX_PARALLEL_HEARTBEATS: Final = 32
#: Peers one registry keeps (a few MiB of bookkeeping at most); see ``_mesh_table`` for eviction.
MAX_MESH_HOSTS: Final = 4096
#: Refs pushed in one join body; bounds the body (real refs are a few hundred bytes).
MAX_GOSSIP_REFS: Final = 1024
#: A peer that joined us within this many intervals is not sent a heartbeat of ours (unless forced).
SKIP_WINDOW_INTERVALS: Final = 1.5
#: Minimum spacing of consecutive rounds, as a fraction of the interval (bounds news-driven rounds).
MIN_ROUND_SPACING: Final = 0.1

#: ``post_json(url, payload, timeout)``: POST ``payload`` as JSON; return the decoded body of a 2xx or a
#: 409 answer; raise a ``PagletError`` for anything else (connection failures included).
PostJson = Callable[[str, dict[str, Any], float], Awaitable[Any]]


def same_url(a: str, b: str) -> bool:
    """Whether two URLs normalize to the same host URL (``False`` if either is not a URL)."""
    try:
        return normalize_host_url(a) == normalize_host_url(b)
    except HostError:
        return False


@dataclass(slots=True)
class Counters:
    """Thread-safe counters of one registry (see ``MeshStatistics`` for their meaning)."""

    rounds: int = 0
    requests_sent: int = 0
    requests_failed: int = 0
    refusals: int = 0
    joins_received: int = 0
    joins_refused: int = 0
    invalid_refs: int = 0
    beacons_sent: int = 0
    beacons_received: int = 0
    event_failures: int = 0
    round_failures: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def bump(self, name: str, amount: int = 1) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + amount)

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return {f.name: getattr(self, f.name) for f in fields(self) if not f.name.startswith("_")}


class Gossip:
    """See the module docstring. Owned by a ``MeshRegistry``; all methods run on its loop."""

    def __init__(
        self,
        table: PeerTable,
        *,
        self_ref: Callable[[], HostRef],
        post: PostJson,
        counters: Counters,
        after_change: Callable[[], None],
        code_version: str,
        interval: float,
        offline_after: float,
        request_timeout: float,
        rng: random.Random,
        clock: Callable[[], float],
        wall: Callable[[], float],
        beacon: tuple[str, int, str] | None = None,
    ) -> None:
        self._table = table
        self._self_ref = self_ref
        self._post = post
        self._counters = counters
        self._after_change = after_change
        self._code_version = code_version
        self._interval = interval
        self._offline_after = offline_after
        self._request_timeout = request_timeout
        self._rng = rng
        self._clock = clock
        self._wall = wall
        self._beacon_address = beacon
        #: The open beacon channel (``None`` when multicast is off or unavailable).
        self.beacon: BeaconChannel | None = None
        #: Set (from any thread) to make the next round ignore skips.
        self.force = False
        self._semaphore: asyncio.Semaphore | None = None

    def rebind(self) -> None:
        """Forget loop-bound state (the owner moved to a new event loop)."""
        self._semaphore = None

    def jittered(self, delay: float) -> float:
        return delay * self._rng.uniform(1.0 - JITTER, 1.0 + JITTER)

    # --- the task --------------------------------------------------------------------------------------

    async def run(self, wake: asyncio.Event, on_beacon_error: Callable[[str], None]) -> None:
        """The heartbeat task (cancel it to stop); ``on_beacon_error`` hears why multicast is off."""
        if self._beacon_address is not None:
            group, port, interface = self._beacon_address
            channel = BeaconChannel(self.on_datagram, group=group, port=port, interface=interface)
            try:
                await channel.open()
            except HostError as exc:
                on_beacon_error(str(exc))
            else:
                self.beacon = channel
        loop = asyncio.get_running_loop()
        last_round = -math.inf
        try:
            while True:
                gap = loop.time() - last_round
                spacing = self._interval * MIN_ROUND_SPACING
                if gap < spacing:
                    await asyncio.sleep(spacing - gap)  # rate limit of forced rounds, not a poll
                last_round = loop.time()
                force, self.force = self.force, False
                wake.clear()
                try:
                    await self.round(force)
                except Exception:  # pragma: no cover - a bug in a round must not end membership
                    self._counters.bump("round_failures")
                if self.force:
                    continue
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.jittered(self._interval)):
                        await wake.wait()
        finally:
            beacon, self.beacon = self.beacon, None
            if beacon is not None:
                beacon.close()

    async def round(self, force: bool) -> None:
        """Contact every due peer (all of them, skips ignored, with ``force``), then sweep."""
        me = self._self_ref()
        now = self._clock()
        skip_window = min(self._interval * SKIP_WINDOW_INTERVALS, self._offline_after / 2)
        targets = self._table.due(now, skip_window=skip_window, force=force)
        if targets:
            payload = self.join_payload(me)
            await asyncio.gather(*(self.contact(url, payload) for url in targets))
        self._counters.bump("rounds")
        self._table.sweep(self._clock())
        self._after_change()
        beacon = self.beacon
        if beacon is not None:
            data = encode_beacon(me)
            if data is not None and beacon.send(data):
                self._counters.bump("beacons_sent")

    def join_payload(self, me: HostRef) -> dict[str, Any]:
        """Our join body: our ref plus ``known_hosts``, the online members we know."""
        payload = me.to_wire()
        payload["known_hosts"] = self._table.gossip(self._clock(), self._wall(), MAX_GOSSIP_REFS)
        return payload

    # --- one exchange ------------------------------------------------------------------------------------

    async def contact(self, url: str, payload: dict[str, Any], *, admit: bool = False) -> None:
        """One join exchange with ``url``; ``admit`` records a failure even for an unknown URL."""
        if self._semaphore is None:
            self._semaphore = asyncio.Semaphore(MAX_PARALLEL_HEARTBEATS)
        async with self._semaphore:
            sent = self._clock()
            self._counters.bump("requests_sent")
            timeout = self._request_timeout
            try:
                async with asyncio.timeout(timeout):
                    answer = await self._post(f"{url}/hosts/join", payload, timeout)
            except TimeoutError:
                error = f"no answer within {timeout:g} s"
            except PagletError as exc:
                error = str(exc) or type(exc).__name__
            except Exception as exc:  # an injected transport failing in its own way
                error = f"{type(exc).__name__}: {exc}"
            else:
                problem = self._absorb_answer(url, answer, sent)
                if problem is None:
                    return
                error = problem
            self._counters.bump("requests_failed")
            if admit:
                self._table.mark_offline(url, error, self._clock())
            self._table.contact_failed(url, error, self._clock())

    def _absorb_answer(self, url: str, answer: Any, sent: float) -> str | None:
        """Record a peer's answer; the error text when it is malformed."""
        now = self._clock()
        if not isinstance(answer, dict):
            return f"malformed answer from {url}: not a JSON object"
        responder: HostRef | None = None
        if answer.get("host") is not None:
            try:
                responder = HostRef.from_wire(answer["host"])
            except HostError as exc:
                return f"malformed answer from {url}: {exc}"
        items = answer.get("hosts")
        if items is None and "error_type" in answer:
            self._counters.bump("refusals")
            self._table.contact_refused(url, responder, str(answer.get("error") or "join refused"), now)
            return None
        if not isinstance(items, list):
            return f"malformed answer from {url}: 'hosts' is not a list"
        if responder is None:  # a paglets 2.0 host: its own entry is the one at the URL we called
            for item in items:
                if isinstance(item, dict) and same_url(str(item.get("url", "")), url):
                    with contextlib.suppress(HostError):
                        responder = HostRef.from_wire(item)
                    break
        self._table.contact_succeeded(url, responder, now)
        if responder is None or responder.code_version == self._code_version:
            skip = responder.url if responder is not None else url
            self.absorb_reports(items[:MAX_MESH_HOSTS], base=sent, skip=skip)
        return None

    def absorb_reports(self, items: list[Any], *, base: float, skip: str) -> None:
        """Refs reported by a third host (``skip``: the reporter itself); garbage is counted and skipped."""
        invalid = 0
        now = self._clock()
        for item in items:
            try:
                ref = HostRef.from_wire(item)
            except HostError:
                invalid += 1
                continue
            if ref.url != skip:
                self._table.report(ref, base, now)
        if invalid:
            self._counters.bump("invalid_refs", invalid)

    # --- beacons -----------------------------------------------------------------------------------------

    def on_datagram(self, data: bytes) -> None:
        """A multicast datagram arrived: a same-version beacon introduces its host."""
        ref = decode_beacon(data)
        if ref is None or ref.url == self._self_ref().url:
            return
        self._counters.bump("beacons_received")
        self._table.discovered(ref, self._clock())
        self._after_change()
