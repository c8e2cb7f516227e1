"""The membership protocol's driver: protocol periods, probes, indirect probes, gossip, full syncs.

The rules are stated in :mod:`paglets.remote.mesh` (the protocol and its parameters) and
:mod:`paglets.remote._mesh_table` (states and merging); this module drives them on the event loop:

- :meth:`Gossip.run` — the background task: every ``interval`` (±20 %) a protocol period
  (:meth:`Gossip.period`); while updates wait in the broadcast queue, a gossip tick every
  ``interval / GOSSIP_TICKS`` to ``GOSSIP_FANOUT`` random members; when woken (news, a new seed, a
  waiter) the reconnections that are due;
- :meth:`Gossip.period` — probe one member (:meth:`Gossip.probe`: a direct ping, then up to
  ``INDIRECT_PROBES`` members asked to ping it for us, then suspicion), reconnect the entries that are
  due, a full sync with one random member every ``SYNC_PERIODS`` periods, expire suspicions;
- :meth:`Gossip.contact` — one ``POST <peer>/hosts/join`` exchange carrying piggybacked updates both
  ways; a malformed answer counts as a failure of that peer.

Answers: ``{"host": <responder>, "hosts": [...], "updates": [...]}`` (ours; ``hosts`` is the full member
list when we asked for a sync, else empty), ``{"hosts": [...]}`` (paglets 2.0: the responder is the
entry at the URL we called), or an error body (``error_type``...) for a 409 refusal.
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
from paglets.remote._mesh_updates import (
    ALIVE,
    BroadcastQueue,
    Update,
    incarnation_from_wire,
    update_from_wire,
)

__all__ = [
    "GOSSIP_FANOUT",
    "GOSSIP_TICKS",
    "INDIRECT_PROBES",
    "JITTER",
    "MAX_GOSSIP_REFS",
    "MAX_MESH_HOSTS",
    "MAX_PARALLEL_HEARTBEATS",
    "MAX_PIGGYBACK",
    "MAX_RECONNECTS",
    "SYNC_PERIODS",
    "Counters",
    "Gossip",
    "PostJson",
    "same_url",
]

#: Relative jitter of period delays and backoff delays, so hosts started together do not stay in step.
JITTER: Final = 0.2
#: Requests of the protocol in flight at once; bounds sockets and memory whatever the mesh size.
MAX_PARALLEL_HEARTBEATS: Final = 32
#: Peers one registry keeps (a few MiB of bookkeeping at most); see ``_mesh_table`` for eviction.
MAX_MESH_HOSTS: Final = 4096
#: Refs in one full member list (a join body's ``known_hosts``, an answer's ``hosts``).
MAX_GOSSIP_REFS: Final = 1024
#: Updates piggybacked on one request or answer (bounds every protocol message).
MAX_PIGGYBACK: Final = 16
#: Members asked to probe a member that did not answer us (SWIM's k).
INDIRECT_PROBES: Final = 3
#: Members one gossip tick sends pending updates to, and gossip ticks per period while any wait.
GOSSIP_FANOUT: Final = 3
GOSSIP_TICKS: Final = 5
#: A full member-list exchange with one random member every this many periods (repairs anything lost).
SYNC_PERIODS: Final = 30
#: Entries that are not live members (unknown, dead, refused seeds) contacted in one period at most.
MAX_RECONNECTS: Final = 8
#: Minimum spacing of wake-ups, as a fraction of the interval (bounds news-driven work).
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
    probes: int = 0
    indirect_probes: int = 0
    suspicions: int = 0
    refutations: int = 0
    syncs: int = 0
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
        self._request_timeout = request_timeout
        self._rng = rng
        self._clock = clock
        self._wall = wall
        self._beacon_address = beacon
        #: Our incarnation: raised to announce new data or to refute a suspicion; starts at our wall
        #: clock in milliseconds, so a restarted host is newer than anything said about its last run.
        self.incarnation = max(0, int(wall() * 1000))
        self._announced: tuple[Any, ...] | None = None
        self.queue = BroadcastQueue(table.max_hosts + 1)
        #: The open beacon channel (``None`` when multicast is off or unavailable).
        self.beacon: BeaconChannel | None = None
        #: Set (from any thread) to make the next step contact every entry due or not.
        self.force = False
        self._periods = 0
        #: Members whose answer showed another member count than ours: a full sync with each is due.
        self._want_sync: set[str] = set()
        self._semaphore: asyncio.Semaphore | None = None

    def rebind(self) -> None:
        """Forget loop-bound state (the owner moved to a new event loop)."""
        self._semaphore = None

    def jittered(self, delay: float) -> float:
        return delay * self._rng.uniform(1.0 - JITTER, 1.0 + JITTER)

    # --- the task --------------------------------------------------------------------------------------

    async def run(self, wake: asyncio.Event, on_beacon_error: Callable[[str], None]) -> None:
        """The protocol task (cancel it to stop); ``on_beacon_error`` hears why multicast is off."""
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
        next_period = loop.time()
        last_step = -math.inf
        tick = self._interval / GOSSIP_TICKS
        try:
            while True:
                gap = loop.time() - last_step
                spacing = self._interval * MIN_ROUND_SPACING
                if gap < spacing:
                    await asyncio.sleep(spacing - gap)  # rate limit of woken steps, not a poll
                last_step = loop.time()
                force, self.force = self.force, False
                wake.clear()
                period = loop.time() >= next_period or force
                try:
                    await self.step(period=period, force=force)
                except Exception:  # pragma: no cover - a bug in a step must not end membership
                    self._counters.bump("round_failures")
                if period:
                    next_period = loop.time() + self.jittered(self._interval)
                if self.force:
                    continue
                delay = next_period - loop.time()
                if self.busy():
                    delay = min(delay, tick)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(max(0.0, delay)):
                        await wake.wait()
        finally:
            beacon, self.beacon = self.beacon, None
            if beacon is not None:
                beacon.close()

    async def step(self, *, period: bool, force: bool = False) -> None:
        """One step of the task: a protocol period (or only the reconnections due), then the syncs a
        member-count difference asked for, then a gossip tick while updates wait."""
        if period:
            await self.period(force)
        else:
            await self.reconnect(force=False)
        if self._want_sync:
            await self.repair()
        if len(self.queue):
            await self.gossip_tick()

    def busy(self) -> bool:
        """Whether the next step should come after a gossip tick rather than a period."""
        return bool(len(self.queue) or self._want_sync)

    async def period(self, force: bool = False) -> None:
        """One protocol period: probe a member, reconnect what is due, maybe sync, expire suspicions."""
        me = self._self_ref()
        self._check_self(me)
        self._periods += 1
        jobs: list[Awaitable[object]] = []
        target = self._table.next_probe_target(self._rng)
        reconnect = self._table.reconnects_due(self._clock(), force=force, limit=MAX_RECONNECTS)
        if target is not None and target not in reconnect:
            jobs.append(self.probe(target))
        jobs.extend(self.contact(url, sync=True) for url in reconnect)
        if self._periods % SYNC_PERIODS == 0:
            live = [url for url in self._table.contactable_urls() if url != target]
            if live:
                self._counters.bump("syncs")
                jobs.append(self.contact(self._rng.choice(live), sync=True))
        if jobs:
            await asyncio.gather(*jobs)
        self._counters.bump("rounds")
        for update in self._table.sweep(self._clock()):
            self.queue.put(update)
        self._after_change()
        beacon = self.beacon
        if beacon is not None:
            data = encode_beacon(me)
            if data is not None and beacon.send(data):
                self._counters.bump("beacons_sent")

    async def reconnect(self, *, force: bool) -> None:
        """Contact the entries that are due now (woken by news, a new seed or a waiter)."""
        urls = self._table.reconnects_due(self._clock(), force=force, limit=MAX_RECONNECTS)
        if urls:
            await asyncio.gather(*(self.contact(url, sync=True) for url in urls))
            self._after_change()

    async def repair(self) -> None:
        """Full syncs with the members whose member count differed from ours (at most
        ``MAX_RECONNECTS`` per step): what a lost update missed, either side learns at once."""
        urls = list(self._want_sync)[:MAX_RECONNECTS]
        self._want_sync.difference_update(urls)
        if self._table.seeds_only:  # connect mode: only the hub is reachable
            reachable = set(self._table.contactable_urls())
            urls = [url for url in urls if url in reachable]
        self._counters.bump("syncs", len(urls))
        await asyncio.gather(*(self.contact(url, sync=True) for url in urls))
        self._after_change()

    async def gossip_tick(self) -> None:
        """Send pending updates to ``GOSSIP_FANOUT`` random members (answers bring theirs back)."""
        live = self._table.contactable_urls()
        if not live:
            return
        targets = self._rng.sample(live, min(GOSSIP_FANOUT, len(live)))
        await asyncio.gather(*(self.contact(url) for url in targets))
        self._after_change()

    async def probe(self, url: str) -> None:
        """SWIM's failure detector for one member: direct ping, then indirect pings, then suspicion."""
        self._counters.bump("probes")
        if await self.contact(url):
            return
        helpers = [other for other in self._table.contactable_urls() if other != url]
        if helpers:
            chosen = self._rng.sample(helpers, min(INDIRECT_PROBES, len(helpers)))
            self._counters.bump("indirect_probes", len(chosen))
            results = await asyncio.gather(*(self._ask(helper, url) for helper in chosen))
            if any(results):
                self._table.indirect_ok(url, self._clock())
                return
        update = self._table.suspect(url, self._clock())
        if update is not None:
            self._counters.bump("suspicions")
            self.queue.put(update)
            self._after_change()

    async def _ask(self, helper: str, target: str) -> bool:
        """Ask ``helper`` to ping ``target`` for us (``POST /hosts/probe``); whether it got an answer."""
        timeout = self._request_timeout
        payload = {"target": target, "timeout": timeout}
        try:
            async with self._slot(), asyncio.timeout(2 * timeout + 0.5):
                self._counters.bump("requests_sent")
                answer = await self._post(f"{helper}/hosts/probe", payload, 2 * timeout + 0.5)
        except Exception:  # the helper failed us: that says nothing about the target
            self._counters.bump("requests_failed")
            return False
        return isinstance(answer, dict) and answer.get("ok") is True

    # --- our own state -----------------------------------------------------------------------------------

    def _check_self(self, me: HostRef) -> None:
        """Announce our data (counts, tags, properties, name) again, at a new incarnation, when it
        changed since we last announced it."""
        data = (me.name, me.active_count, me.inactive_count, me.tags, tuple(sorted(me.properties.items())))
        if self._announced is None:
            self._announced = data
            return
        if data != self._announced:
            self._announced = data
            self.incarnation += 1
            self.queue.put(Update(me, self.incarnation, ALIVE))

    def refute(self, incarnation: int) -> None:
        """Someone suspects us or declared us dead at ``incarnation``: outbid it and say we are alive."""
        self.incarnation = max(self.incarnation, incarnation)
        self._counters.bump("refutations")
        self.announce()

    def announce(self) -> None:
        """Raise our incarnation and spread our ref (new data, a new address, a refutation)."""
        self.incarnation += 1
        self.queue.put(Update(self._self_ref(), self.incarnation, ALIVE))

    def own_wire(self, me: HostRef) -> dict[str, Any]:
        wire = me.to_wire()
        wire["incarnation"] = self.incarnation
        wire["state"] = ALIVE
        return wire

    def piggyback(self, receiver: str | None) -> list[dict[str, Any]]:
        """Updates for a message to ``receiver``: what we hold against it first (so it can refute),
        then the queue's fewest-sent ones."""
        out: list[dict[str, Any]] = []
        if receiver is not None:
            about = self._table.about(receiver)
            if about is not None:
                out.append(about.to_wire())
        members = self._table.member_count()
        out.extend(self.queue.take(MAX_PIGGYBACK - len(out), members, first=receiver))
        return out

    def full_list(self, me: HostRef) -> list[dict[str, Any]]:
        """Ourselves and every listed entry, with membership fields (a push-pull exchange)."""
        members = self._table.member_wires(self._clock(), self._wall(), MAX_GOSSIP_REFS - 1)
        return [self.own_wire(me), *members]

    def join_payload(self, me: HostRef, *, sync: bool, receiver: str | None) -> dict[str, Any]:
        """A request body: our ref and incarnation, piggybacked updates; with ``sync`` every member we
        know (``known_hosts``) and a request for the receiver's full list."""
        payload = self.own_wire(me)
        payload["updates"] = self.piggyback(receiver)
        payload["members"] = self._table.member_count()
        if sync:
            payload["sync"] = True
            payload["known_hosts"] = self._table.member_wires(self._clock(), self._wall(), MAX_GOSSIP_REFS)
        return payload

    # --- one exchange ------------------------------------------------------------------------------------

    def _slot(self) -> asyncio.Semaphore:
        if self._semaphore is None:
            self._semaphore = asyncio.Semaphore(MAX_PARALLEL_HEARTBEATS)
        return self._semaphore

    async def contact(self, url: str, *, sync: bool = False, admit: bool = False) -> bool:
        """One exchange with ``url``; whether it answered. ``admit`` records a failure even for an
        unknown URL (marked unreachable)."""
        async with self._slot():
            payload = self.join_payload(self._self_ref(), sync=sync, receiver=url)
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
                    return True
                error = problem
            self._counters.bump("requests_failed")
            if admit:
                self._table.mark_offline(url, error, self._clock())
            self._table.failed(url, error, self._clock())
            return False

    def _absorb_answer(self, url: str, answer: Any, sent: float) -> str | None:
        """Record a peer's answer; the error text when it is malformed."""
        now = self._clock()
        if not isinstance(answer, dict):
            return f"malformed answer from {url}: not a JSON object"
        responder: HostRef | None = None
        incarnation: int | None = None
        raw = answer.get("host")
        if raw is not None:
            try:
                responder = HostRef.from_wire(raw)
                if raw.get("incarnation") is not None:
                    incarnation = incarnation_from_wire(raw["incarnation"])
            except HostError as exc:
                return f"malformed answer from {url}: {exc}"
        items = answer.get("hosts")
        if items is None and "error_type" in answer:
            self._counters.bump("refusals")
            self._table.refused(url, responder, str(answer.get("error") or "join refused"), now)
            return None
        if not isinstance(items, list):
            return f"malformed answer from {url}: 'hosts' is not a list"
        updates = answer.get("updates", [])
        if not isinstance(updates, list):
            return f"malformed answer from {url}: 'updates' is not a list"
        if responder is None:  # a paglets 2.0 host: its own entry is the one at the URL we called
            for item in items:
                if isinstance(item, dict) and same_url(str(item.get("url", "")), url):
                    with contextlib.suppress(HostError):
                        responder = HostRef.from_wire(item)
                    break
        spread = self._table.direct(url, responder, incarnation, now)
        if spread is not None:
            self.queue.put(spread)
        if responder is None or responder.code_version == self._code_version:
            skip = responder.url if responder is not None else url
            self.absorb(items[:MAX_GOSSIP_REFS], base=sent, skip=skip)
            self.absorb(updates[:MAX_PIGGYBACK], base=sent, skip=skip)
            self.compare(url, answer.get("members"), synced=bool(items))
        return None

    def compare(self, url: str, members: Any, *, synced: bool = False) -> None:
        """A peer told us how many members it counts: when that differs from our count, a full sync
        with it is due (unless this exchange was one). One integer per message instead of a full list:
        a missed update is repaired within a step, not at the next periodic sync."""
        if synced or isinstance(members, bool) or not isinstance(members, int):
            return
        if members != self._table.member_count() and len(self._want_sync) < MAX_RECONNECTS:
            self._want_sync.add(url)

    def absorb(self, items: list[Any], *, base: float, skip: str | None) -> None:
        """Updates or refs reported by a third host (``skip``: the reporter itself, whose own entry we
        already took first-hand); garbage is counted and skipped."""
        invalid = 0
        now = self._clock()
        me = self._table.self_url
        for item in items:
            try:
                update = update_from_wire(item)
            except HostError:
                invalid += 1
                continue
            if update.url == skip:
                continue
            if update.url == me:
                inc = update.incarnation
                if inc is not None and update.state != ALIVE and inc >= self.incarnation:
                    self.refute(inc)
                continue
            spread = self._table.apply(update, base, now)
            if spread is not None:
                self.queue.put(spread)
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
