"""The mesh's peer table: who we know, whether they are alive, when to contact them next.

Pure bookkeeping: no I/O and no clock of its own. Every method takes ``now`` (seconds on the owner's
*monotonic* clock) and, where a ref is produced for the outside, ``wall`` (the owner's wall clock). One
lock guards every method, so queries may come from any thread while the event loop mutates. Each method
is O(1) except the listings, :meth:`PeerTable.due` and :meth:`PeerTable.sweep` (O(hosts)) and the
eviction scan when the table is full.

Per peer the table keeps four moments on our monotonic clock:

- ``heard_at`` — the latest evidence that the peer is alive: our request answered, its own join
  reaching us, or a report from a third host (moment = when we sent the request the report came back
  on, minus the report's ``age``; for reports inside an inbound join, arrival minus ``age``);
- ``success_at`` / ``failed_at`` — the last answered and the last failed request *we* sent to it;
- ``inbound_at`` — the last join the peer sent us (lets us skip a heartbeat, see :meth:`due`).

``online`` = heard within ``offline_after`` *and* reachable (no failed request of ours since our last
answered one). So a peer we cannot reach stays offline whatever others report until we reach it
ourselves, and a peer nobody hears from goes offline ``offline_after`` after the last time *anyone*
heard it directly: ages only grow along a chain of reports. Reports with ``online: false`` or without
``age`` (paglets 2.0 hosts) carry no evidence; they may still introduce a host (only when
``online: true``, so dead hosts do not circulate for ever) and fill in its data. The data of a peer
(name, version, counts, tags, properties) is replaced by a ref whose evidence moment is at least as
recent; answers from the peer itself always win.

Version gate: a ref whose ``code_version`` differs from ours never becomes a member. It is recorded in
a bounded ``rejected`` list (with the reason) and, when it was a seed, the seed stays (hidden) and is
retried with backoff, since the peer may be upgraded.

Scheduling: a failed request pushes the peer's next attempt back by the caller's backoff; any evidence
newer than the last failure resets it (a restarted host announced by anyone is probed at once).

Bounds: at most ``max_hosts`` entries (when full, the offline non-seed entry heard from least recently
is evicted; if there is none the newcomer is ignored and counted) and ``max_rejected`` rejections.
Non-seed entries offline for ``forget_after`` seconds are forgotten, as are rejections that old.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from paglets.core.errors import HostError
from paglets.remote._mesh_ref import HostRef, name_from_url, normalize_host_url

__all__ = ["STALE_ERROR", "MeshEvent", "PeerTable", "TableCounts"]

#: Error text of a peer nobody heard from for ``offline_after`` seconds (the contract's wording).
STALE_ERROR: Final = "stale mesh peer"
#: Error text of a peer we know of but have not reached yet.
NOT_CONTACTED_ERROR: Final = "not contacted yet"

#: ``(kind, data)`` of a context event to emit (``mesh-host-online``, ``-offline``, ``-rejected``,
#: ``mesh-peer-unreachable``).
MeshEvent = tuple[str, dict[str, Any]]


@dataclass(slots=True)
class _Peer:
    url: str
    created_at: float
    ref: HostRef | None = None
    data_at: float = -math.inf
    seed: bool = False
    heard_at: float | None = None
    success_at: float | None = None
    failed_at: float | None = None
    inbound_at: float | None = None
    error: str | None = None
    failures: int = 0
    next_attempt: float = -math.inf
    alias_of: str | None = None
    refused: bool = False
    announced: bool = False
    #: A ``mesh-peer-unreachable`` event was emitted since our last answered request.
    unreachable_told: bool = False


@dataclass(frozen=True, slots=True)
class TableCounts:
    known: int
    online: int
    seeds: int
    rejected: int
    dropped: int


class PeerTable:
    """See the module docstring."""

    def __init__(
        self,
        *,
        code_version: str,
        offline_after: float,
        forget_after: float,
        max_hosts: int,
        max_rejected: int,
        backoff: Callable[[int], float],
    ) -> None:
        self.code_version = code_version
        self.offline_after = offline_after
        self.forget_after = forget_after
        self.max_hosts = max_hosts
        self.max_rejected = max_rejected
        self._backoff = backoff
        self._lock = threading.Lock()
        self._peers: dict[str, _Peer] = {}
        self._rejected: OrderedDict[str, tuple[HostRef, float]] = OrderedDict()
        self._events: list[MeshEvent] = []
        self._news = False
        self._dropped = 0
        self.self_url = ""
        #: Contact seeds only (a connect-mode host reaches the mesh through its hub alone).
        self.seeds_only = False

    # --- rules ------------------------------------------------------------------------------------------

    @staticmethod
    def _reachable(p: _Peer) -> bool:
        return p.failed_at is None or (p.success_at is not None and p.success_at > p.failed_at)

    def _online(self, p: _Peer, now: float) -> bool:
        return (
            p.heard_at is not None
            and now - p.heard_at <= self.offline_after
            and not p.refused
            and self._reachable(p)
        )

    def _listed(self, p: _Peer, now: float) -> bool:
        if p.refused or p.alias_of is not None or p.url == self.self_url:
            return False
        return p.ref is not None or (p.seed and p.failed_at is not None and not self._online(p, now))

    def _error(self, p: _Peer, now: float) -> str:
        if not self._reachable(p):
            return p.error or "unreachable"
        if p.heard_at is None:
            return NOT_CONTACTED_ERROR
        return STALE_ERROR

    def _view(self, p: _Peer, now: float, wall: float) -> HostRef:
        ref = p.ref
        if ref is None:
            ref = HostRef(name_from_url(p.url), p.url, self.code_version, False, 0.0, 0, 0)
        online = self._online(p, now)
        age = None if p.heard_at is None else round(max(0.0, now - p.heard_at), 3)
        last_seen = ref.last_seen if age is None else round(wall - age, 3)
        return ref.replace(
            url=p.url,
            online=online,
            last_seen=last_seen,
            age=age,
            error=None if online else self._error(p, now),
        )

    # --- entries ----------------------------------------------------------------------------------------

    def _admit(self, url: str, now: float) -> _Peer | None:
        p = self._peers.get(url)
        if p is not None:
            return p
        if url == self.self_url:
            return None
        if len(self._peers) >= self.max_hosts and not self._evict(now):
            self._dropped += 1
            return None
        p = _Peer(url=url, created_at=now)
        self._peers[url] = p
        return p

    def _evict(self, now: float) -> bool:
        victim: _Peer | None = None
        for p in self._peers.values():
            if p.seed or self._online(p, now):
                continue
            if victim is None or _last_heard(p) < _last_heard(victim):
                victim = p
        if victim is None:
            return False
        del self._peers[victim.url]
        self._dropped += 1
        return True

    def _version_ok(self, ref: HostRef, now: float) -> bool:
        if ref.code_version == self.code_version:
            self._rejected.pop(ref.url, None)
            return True
        self._reject(ref, self._mismatch(ref), now)
        return False

    def _reject(self, ref: HostRef, error: str, now: float) -> None:
        previous = self._rejected.pop(ref.url, None)
        self._rejected[ref.url] = (ref.replace(online=False, error=error, age=None), now)
        while len(self._rejected) > self.max_rejected:
            self._rejected.popitem(last=False)
        p = self._peers.get(ref.url)
        if p is not None:
            if p.announced:
                self._event("mesh-host-offline", p, now, error)
            if p.seed:
                p.refused, p.ref, p.error, p.announced = True, None, error, False
            else:
                del self._peers[ref.url]
        if previous is None or previous[0].code_version != ref.code_version:
            data = {"name": ref.name, "url": ref.url, "code_version": ref.code_version, "error": error}
            self._events.append(("mesh-host-rejected", data))

    def _evidence(self, p: _Peer, moment: float, now: float) -> None:
        if p.heard_at is None or moment > p.heard_at:
            p.heard_at = moment
        if p.failed_at is not None and moment > p.failed_at and p.failures:
            p.failures = 0
            p.next_attempt = now

    def _absorb(self, p: _Peer, ref: HostRef, moment: float) -> None:
        if moment >= p.data_at or p.ref is None:
            p.ref = ref.replace(url=p.url, online=True, error=None, age=None)
            p.data_at = moment
        p.refused = False

    def _event(self, kind: str, p: _Peer, now: float, error: str | None = None) -> None:
        ref = p.ref
        data: dict[str, Any] = {
            "name": ref.name if ref is not None else name_from_url(p.url),
            "url": p.url,
            "code_version": ref.code_version if ref is not None else None,
        }
        if error is not None:
            data["error"] = error
        self._events.append((kind, data))

    def _announce(self, p: _Peer, now: float) -> None:
        online = self._online(p, now) and self._listed(p, now)
        if online == p.announced:
            return
        p.announced = online
        if online:
            self._news = True
            self._event("mesh-host-online", p, now)
        else:
            self._event("mesh-host-offline", p, now, self._error(p, now))

    # --- mutations ----------------------------------------------------------------------------------------

    def add_seed(self, url: str, now: float) -> bool:
        """Make ``url`` a seed (contacted until it answers, never forgotten); True when it is new."""
        with self._lock:
            existing = url in self._peers
            p = self._admit(url, now)
            if p is None:
                return False
            p.seed = True
            if not existing:
                self._news = True
            return not existing

    def remove(self, url: str) -> None:
        with self._lock:
            self._peers.pop(url, None)

    def contact_succeeded(self, url: str, responder: HostRef | None, now: float) -> None:
        """Our request to ``url`` was answered; ``responder`` is the peer's own ref when identified."""
        with self._lock:
            p = self._peers.get(url)
            if p is None:
                p = self._admit(url, now)
                if p is None:
                    return
            if responder is not None:
                if responder.code_version != self.code_version:
                    self._refuse(url, responder, self._mismatch(responder), now)
                    return
                self._rejected.pop(responder.url, None)
            p.success_at = p.heard_at = now
            p.failures = 0
            p.next_attempt = -math.inf
            p.error = None
            p.refused = False
            p.unreachable_told = False
            if responder is not None:
                if responder.url == url:
                    p.alias_of = None
                    self._absorb(p, responder, now)
                else:
                    p.alias_of = responder.url
                    canon = self._admit(responder.url, now)
                    if canon is not None:
                        canon.success_at = canon.heard_at = now
                        canon.failures = 0
                        canon.next_attempt = -math.inf
                        self._absorb(canon, responder, now)
                        self._announce(canon, now)
            self._announce(p, now)

    def contact_failed(self, url: str, error: str, now: float) -> None:
        """Our request to ``url`` failed: offline until answered again; back off.

        A peer that was not online (a ``--peer`` that never answered, one already offline) gets one
        ``mesh-peer-unreachable`` event, then none until one of our requests is answered again; a peer
        that was online gets ``mesh-host-offline`` instead.
        """
        with self._lock:
            p = self._peers.get(url)
            if p is not None:
                was_online = p.announced
                self._fail(p, error, now)
                self._announce(p, now)
                if not was_online and not p.unreachable_told:
                    p.unreachable_told = True
                    self._event("mesh-peer-unreachable", p, now, error)

    def contact_refused(self, url: str, responder: HostRef | None, error: str, now: float) -> None:
        """``url`` answered that it will not have us (another code version); ``responder`` if it said."""
        with self._lock:
            p = self._peers.get(url)
            if responder is None and p is not None:
                base = p.ref or HostRef(name_from_url(url), url, "", False, 0.0, 0, 0)
                responder = base.replace(code_version="")
            self._refuse(url, responder, error, now)

    def _fail(self, p: _Peer, error: str, now: float) -> None:
        p.failed_at = now
        p.error = error
        p.failures += 1
        p.next_attempt = now + self._backoff(p.failures)

    def _mismatch(self, ref: HostRef) -> str:
        return f"code version {ref.code_version!r} differs from ours ({self.code_version!r})"

    def _refuse(self, url: str, ref: HostRef | None, error: str, now: float) -> None:
        """Reject ``ref`` and hide the entry we contacted: a seed stays (retried with backoff)."""
        if ref is not None:
            self._reject(ref, error, now)
        p = self._peers.get(url)
        if p is None:
            return
        if p.announced:
            self._event("mesh-host-offline", p, now, error)
            p.announced = False
        if not p.seed:
            del self._peers[url]
            return
        p.refused, p.ref = True, None
        self._fail(p, error, now)

    def mark_offline(self, url: str, error: str, now: float) -> None:
        """Someone failed to reach ``url``: offline until our next answered request; probe it soon."""
        with self._lock:
            p = self._admit(url, now)
            if p is None:
                return
            p.failed_at = now
            p.error = error
            p.next_attempt = min(p.next_attempt, now)
            self._announce(p, now)

    def inbound(self, ref: HostRef, now: float) -> bool:
        """The peer ``ref`` joined us (direct evidence); False when its version is refused."""
        with self._lock:
            if ref.url == self.self_url:
                return True
            if not self._version_ok(ref, now):
                return False
            p = self._admit(ref.url, now)
            if p is None:
                return True
            p.inbound_at = now
            self._evidence(p, now, now)
            self._absorb(p, ref, now)
            self._announce(p, now)
            return True

    def report(self, ref: HostRef, base: float, now: float) -> None:
        """A third host reports ``ref``; ``base`` is the moment its ``age`` counts back from."""
        with self._lock:
            if ref.url == self.self_url or not self._version_ok(ref, now):
                return
            p = self._peers.get(ref.url)
            if p is None:
                if not ref.online:
                    return
                p = self._admit(ref.url, now)
                if p is None:
                    return
                self._news = True
            if ref.online and ref.age is not None:
                moment = min(base - ref.age, now)
                self._evidence(p, moment, now)
                self._absorb(p, ref, moment)
            else:
                self._absorb(p, ref, -math.inf)
            self._announce(p, now)

    def discovered(self, ref: HostRef, now: float) -> None:
        """``ref`` announced itself (multicast beacon): a candidate to contact, no evidence of reach."""
        with self._lock:
            if ref.url == self.self_url or not self._version_ok(ref, now):
                return
            if ref.url not in self._peers:
                p = self._admit(ref.url, now)
                if p is not None:
                    self._absorb(p, ref, -math.inf)
                    self._news = True

    def sweep(self, now: float) -> None:
        """Forget long-offline non-seeds and old rejections; announce online/offline changes."""
        with self._lock:
            for url, p in list(self._peers.items()):
                if url == self.self_url:
                    del self._peers[url]
                    continue
                if not p.seed and not self._online(p, now) and now - _last_heard(p) > self.forget_after:
                    if p.announced:
                        self._event("mesh-host-offline", p, now, self._error(p, now))
                    del self._peers[url]
                    self._dropped += 1
                    continue
                self._announce(p, now)
            while self._rejected:
                url, (_, at) = next(iter(self._rejected.items()))
                if now - at <= self.forget_after:
                    break
                del self._rejected[url]

    def drain(self) -> tuple[list[MeshEvent], bool]:
        """Events to emit since the last call, and whether anything became online (news to spread)."""
        with self._lock:
            events, self._events = self._events, []
            news, self._news = self._news, False
            return events, news

    def wake_peer(self, url: str, now: float) -> None:
        """Make ``url`` due at once (someone waits for it)."""
        with self._lock:
            p = self._peers.get(url)
            if p is not None:
                p.next_attempt = min(p.next_attempt, now)

    # --- queries ------------------------------------------------------------------------------------------

    def due(self, now: float, *, skip_window: float, force: bool) -> list[str]:
        """URLs to contact in this round.

        Skipped: peers in backoff; aliases whose canonical entry is online; and, unless ``force``,
        reachable peers that joined *us* less than ``skip_window`` ago — their join already told both
        sides everything a heartbeat would, so a pair exchanges one request per interval, not two.
        """
        with self._lock:
            out: list[str] = []
            for url, p in self._peers.items():
                if url == self.self_url or p.next_attempt > now or (self.seeds_only and not p.seed):
                    continue
                if p.alias_of is not None:
                    canon = self._peers.get(p.alias_of)
                    if canon is not None and self._online(canon, now):
                        continue
                if (
                    not force
                    and p.inbound_at is not None
                    and now - p.inbound_at < skip_window
                    and self._online(p, now)
                ):
                    continue
                out.append(url)
            return out

    def views(self, now: float, wall: float, *, online_only: bool = False) -> list[HostRef]:
        with self._lock:
            refs = [self._view(p, now, wall) for p in self._peers.values() if self._listed(p, now)]
        if online_only:
            refs = [ref for ref in refs if ref.online]
        return refs

    def gossip(self, now: float, wall: float, limit: int) -> list[dict[str, Any]]:
        """Wire refs of the online members (what we push with our own joins), at most ``limit``."""
        out: list[dict[str, Any]] = []
        with self._lock:
            for p in self._peers.values():
                if len(out) >= limit:
                    break
                if self._listed(p, now) and self._online(p, now):
                    out.append(self._view(p, now, wall).to_wire())
        return out

    def lookup(self, target: str, now: float, wall: float) -> HostRef | None:
        """The member named ``target`` (a name or a URL); aliases resolve to their canonical entry."""
        with self._lock:
            url: str | None
            try:
                url = normalize_host_url(target)
            except HostError:
                url = None
            p = self._peers.get(url) if url is not None else None
            if p is not None and p.alias_of is not None:
                p = self._peers.get(p.alias_of)
            if p is not None and self._listed(p, now):
                return self._view(p, now, wall)
            best: _Peer | None = None
            for candidate in self._peers.values():
                if candidate.ref is None or candidate.ref.name != target or not self._listed(candidate, now):
                    continue
                if best is None or self._better(candidate, best, now):
                    best = candidate
            return None if best is None else self._view(best, now, wall)

    def _better(self, a: _Peer, b: _Peer, now: float) -> bool:
        a_online, b_online = self._online(a, now), self._online(b, now)
        if a_online != b_online:
            return a_online
        return (a.heard_at or -math.inf) > (b.heard_at or -math.inf)

    def seeds(self) -> list[str]:
        with self._lock:
            return [url for url, p in self._peers.items() if p.seed]

    def urls(self) -> list[str]:
        with self._lock:
            return list(self._peers)

    def rejected(self) -> list[HostRef]:
        with self._lock:
            return [ref for ref, _ in self._rejected.values()]

    def counts(self, now: float) -> TableCounts:
        with self._lock:
            listed = [p for p in self._peers.values() if self._listed(p, now)]
            return TableCounts(
                known=len(listed),
                online=sum(1 for p in listed if self._online(p, now)),
                seeds=sum(1 for p in self._peers.values() if p.seed),
                rejected=len(self._rejected),
                dropped=self._dropped,
            )


def _last_heard(p: _Peer) -> float:
    """When we last heard from ``p`` (its creation when never): the age used to forget or evict it."""
    return p.heard_at if p.heard_at is not None else p.created_at
