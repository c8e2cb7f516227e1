"""The mesh's member table: who we know, what state the membership protocol gives them, whom to contact.

Pure bookkeeping: no I/O and no clock of its own. Every method takes ``now`` (seconds on the owner's
*monotonic* clock) and, where a ref is produced for the outside, ``wall`` (the owner's wall clock). One
lock guards every method, so queries may come from any thread while the event loop mutates.

**States** (``paglets.remote._mesh_updates``): ``alive``, ``suspect`` (a probe failed, directly and
through other members; the suspicion times out into ``dead`` unless the host refutes it), ``dead``, or
none yet (a seed never reached, a host introduced by a paglets 2.0 peer, a beacon, a ref registered
without evidence). A member is **online** when it is alive or suspect, not refused, and not marked
unreachable by us (``mark_offline``: someone here failed to reach it; cleared by our next answered
request). Updates from others are merged by incarnation, the rules of SWIM:

- ``alive(i)`` replaces what we have when ``i`` is higher, or when the host's state is unknown;
- ``suspect(i)`` replaces ``alive(j)``/``suspect(j)`` for ``i >= j`` (the same ``i`` again adds a
  confirmation) and starts our own suspicion timer;
- ``dead(i)`` replaces anything of incarnation ``<= i`` except dead; a dead host is never introduced;
- a direct exchange with the host itself (our request answered, its request to us) makes it alive with
  the larger of the two incarnations, whatever others said: it is the best evidence there is.

**Suspicion timeout** (Lifeguard): from ``suspicion_max`` down to ``suspicion_min`` as independent
members confirm: ``max - (max - min) * log(C + 1) / log(K + 1)`` with ``C`` confirmations (members
that suspect it too, beyond the first) of ``K = min(3, members - 2)`` expected, members counting us;
``suspicion_min`` when nobody else could confirm. Our own failed probe of a host someone else suspects
is such a confirmation, and is spread as one.

**Ages.** ``heard_at`` is the latest evidence the host is alive: a direct exchange, or an alive update
(the moment it carries: send time minus the reporter's ``age``). Views report ``age = now - heard_at``
and ``last_seen = wall - age`` (for paglets 2.0 clients); the state, never the age, decides online.

Version gate: a ref whose ``code_version`` differs from ours never becomes a member. It is recorded in
a bounded ``rejected`` list (with the reason) and, when it was a seed, the seed stays (hidden) and is
retried with backoff, since the peer may be upgraded.

Contacts: live members are probed one per protocol period in a shuffled round-robin
(:meth:`next_probe_target`); every other entry (unknown, dead, refused seed, unreachable) is
*reconnected* when its backoff allows (:meth:`reconnects_due`): a failed request pushes its next attempt
back by the caller's backoff, any news about it resets that.

Bounds: at most ``max_hosts`` entries (when full, the offline non-seed entry heard from least recently
is evicted; if there is none the newcomer is ignored and counted) and ``max_rejected`` rejections.
Non-seed entries offline for ``forget_after`` seconds are forgotten, as are rejections that old.
"""

from __future__ import annotations

import math
import random
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from paglets.core.errors import HostError
from paglets.remote._mesh_ref import HostRef, name_from_url, normalize_host_url
from paglets.remote._mesh_updates import ALIVE, DEAD, SUSPECT, Update

__all__ = ["NOT_CONTACTED_ERROR", "STALE_ERROR", "SUSPICION_K", "MeshEvent", "PeerTable", "TableCounts"]

#: Error text of a member declared dead (the contract's wording for a peer gone silent).
STALE_ERROR: Final = "stale mesh peer"
#: Error text of a peer we know of but have not reached yet.
NOT_CONTACTED_ERROR: Final = "not contacted yet"
#: Independent confirmations after which a suspicion runs for ``suspicion_min`` only.
SUSPICION_K: Final = 3
#: Confirming members remembered per suspicion (more cannot shorten it further).
MAX_CONFIRMATIONS: Final = 8

#: ``(kind, data)`` of a context event to emit (``mesh-host-online``, ``-offline``, ``-rejected``,
#: ``mesh-peer-unreachable``).
MeshEvent = tuple[str, dict[str, Any]]


@dataclass(slots=True)
class _Peer:
    url: str
    created_at: float
    ref: HostRef | None = None
    seed: bool = False
    state: str | None = None
    incarnation: int = 0
    heard_at: float | None = None
    changed_at: float = 0.0
    suspect_at: float = 0.0
    suspect_k: int = 0
    confirmations: set[str] = field(default_factory=set)
    error: str | None = None
    failures: int = 0
    next_attempt: float = -math.inf
    unreachable: bool = False
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
        suspicion_min: float,
        suspicion_max: float,
        forget_after: float,
        max_hosts: int,
        max_rejected: int,
        backoff: Callable[[int], float],
    ) -> None:
        self.code_version = code_version
        self.suspicion_min = suspicion_min
        self.suspicion_max = max(suspicion_min, suspicion_max)
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
        self._probe_order: list[str] = []
        self.self_url = ""
        #: Contact seeds only (a connect-mode host reaches the mesh through its hub alone).
        self.seeds_only = False

    # --- rules ------------------------------------------------------------------------------------------

    @staticmethod
    def _live(p: _Peer) -> bool:
        return p.state in (ALIVE, SUSPECT) and not p.refused and p.alias_of is None

    def _online(self, p: _Peer) -> bool:
        return self._live(p) and not p.unreachable

    def _listed(self, p: _Peer) -> bool:
        if p.refused or p.alias_of is not None or p.url == self.self_url:
            return False
        return p.ref is not None or (p.seed and p.error is not None and not self._online(p))

    def _error(self, p: _Peer) -> str:
        if p.unreachable or p.state is None:
            return p.error or NOT_CONTACTED_ERROR
        return p.error or STALE_ERROR

    def _view(self, p: _Peer, now: float, wall: float) -> HostRef:
        ref = p.ref
        if ref is None:
            ref = HostRef(name_from_url(p.url), p.url, self.code_version, False, 0.0, 0, 0)
        online = self._online(p)
        age = None if p.heard_at is None else round(max(0.0, now - p.heard_at), 3)
        last_seen = ref.last_seen if age is None else round(wall - age, 3)
        return ref.replace(
            url=p.url, online=online, last_seen=last_seen, age=age, error=None if online else self._error(p)
        )

    def _members(self) -> int:
        return sum(1 for p in self._peers.values() if self._live(p))

    def _suspicion_timeout(self, p: _Peer) -> float:
        low, high = self.suspicion_min, self.suspicion_max
        if p.suspect_k < 1:
            return low
        confirmed = min(max(0, len(p.confirmations) - 1), p.suspect_k)  # beyond the first suspicion
        return max(low, high - (high - low) * math.log(confirmed + 1) / math.log(p.suspect_k + 1))

    # --- entries ----------------------------------------------------------------------------------------

    def _admit(self, url: str, now: float) -> _Peer | None:
        p = self._peers.get(url)
        if p is not None:
            return p
        if url == self.self_url:
            return None
        if len(self._peers) >= self.max_hosts and not self._evict():
            self._dropped += 1
            return None
        p = _Peer(url=url, created_at=now, changed_at=now)
        self._peers[url] = p
        return p

    def _evict(self) -> bool:
        victim: _Peer | None = None
        for p in self._peers.values():
            if p.seed or self._online(p):
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
                self._event("mesh-host-offline", p, error)
            if p.seed:
                p.refused, p.ref, p.error, p.announced = True, None, error, False
            else:
                del self._peers[ref.url]
        if previous is None or previous[0].code_version != ref.code_version:
            data = {"name": ref.name, "url": ref.url, "code_version": ref.code_version, "error": error}
            self._events.append(("mesh-host-rejected", data))

    def _heard(self, p: _Peer, moment: float, now: float) -> None:
        if p.heard_at is None or moment > p.heard_at:
            p.heard_at = min(moment, now)

    def _absorb(self, p: _Peer, ref: HostRef) -> None:
        p.ref = ref.replace(url=p.url, online=True, error=None, age=None)
        p.refused = False

    def _set_state(self, p: _Peer, state: str, incarnation: int, now: float) -> None:
        if state != p.state:
            p.changed_at = now
        p.state = state
        p.incarnation = incarnation
        if state != SUSPECT:
            p.confirmations.clear()
        if state == ALIVE:
            p.error = None
            if p.failures:  # news of life: try it again at once if we were backing off
                p.failures = 0
                p.next_attempt = now

    def _suspect(self, p: _Peer, incarnation: int, by: str | None, now: float) -> None:
        if p.state != SUSPECT or incarnation != p.incarnation:
            self._set_state(p, SUSPECT, incarnation, now)
            p.suspect_at = now
            p.suspect_k = min(SUSPICION_K, self._members() - 1)  # members, us included, minus 2
            p.confirmations.clear()
        if by is not None and len(p.confirmations) < MAX_CONFIRMATIONS:
            p.confirmations.add(by)

    def _event(self, kind: str, p: _Peer, error: str | None = None) -> None:
        ref = p.ref
        data: dict[str, Any] = {
            "name": ref.name if ref is not None else name_from_url(p.url),
            "url": p.url,
            "code_version": ref.code_version if ref is not None else None,
        }
        if error is not None:
            data["error"] = error
        self._events.append((kind, data))

    def _announce(self, p: _Peer) -> None:
        online = self._online(p) and self._listed(p)
        if online == p.announced:
            return
        p.announced = online
        if online:
            self._news = True
            self._event("mesh-host-online", p)
        else:
            self._event("mesh-host-offline", p, self._error(p))

    def _update(self, p: _Peer) -> Update:
        ref = p.ref or HostRef(name_from_url(p.url), p.url, self.code_version, True, 0.0, 0, 0)
        state = p.state or ALIVE
        return Update(ref.replace(online=state != DEAD, age=0.0), p.incarnation, state)

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

    def direct(
        self, url: str, responder: HostRef | None, incarnation: int | None, now: float
    ) -> Update | None:
        """Our request to ``url`` was answered; ``responder`` is the peer's own ref when identified.

        Returns the alive update to spread when this changed what we knew, else ``None``."""
        with self._lock:
            p = self._peers.get(url)
            if p is None:
                p = self._admit(url, now)
                if p is None:
                    return None
            if responder is not None:
                if responder.code_version != self.code_version:
                    self._refuse(url, responder, self._mismatch(responder), now)
                    return None
                self._rejected.pop(responder.url, None)
            p.failures = 0
            p.next_attempt = -math.inf
            p.error = None
            p.refused = False
            p.unreachable = False
            p.unreachable_told = False
            if responder is None or responder.url == url:
                p.alias_of = None
                return self._alive_direct(p, responder, incarnation, now)
            p.alias_of = responder.url
            self._heard(p, now, now)
            self._announce(p)
            canon = self._admit(responder.url, now)
            if canon is None:
                return None
            canon.failures, canon.next_attempt, canon.unreachable = 0, -math.inf, False
            return self._alive_direct(canon, responder, incarnation, now)

    def _alive_direct(
        self, p: _Peer, responder: HostRef | None, incarnation: int | None, now: float
    ) -> Update | None:
        changed = p.state != ALIVE or (incarnation is not None and incarnation > p.incarnation)
        if responder is not None:
            self._absorb(p, responder)
        self._heard(p, now, now)
        if changed:
            self._news = True
        self._set_state(p, ALIVE, max(p.incarnation, incarnation or 0), now)
        self._announce(p)
        return self._update(p) if changed and p.ref is not None else None

    def failed(self, url: str, error: str, now: float) -> None:
        """Our request to ``url`` failed. A live member stays as it is (the protocol decides, through
        indirect probes and suspicion); any other entry backs off. A peer that was not online gets one
        ``mesh-peer-unreachable`` event, then none until one of our requests is answered again."""
        with self._lock:
            p = self._peers.get(url)
            if p is None:
                return
            p.error = error
            if self._online(p):
                return
            p.failures += 1
            p.next_attempt = now + self._backoff(p.failures)
            if not p.unreachable_told:
                p.unreachable_told = True
                self._event("mesh-peer-unreachable", p, error)
            self._announce(p)

    def suspect(self, url: str, now: float) -> Update | None:
        """Our probe of ``url`` failed, directly and indirectly: suspect it (the update to spread)."""
        with self._lock:
            p = self._peers.get(url)
            if p is None or not self._live(p):
                return None
            me = self.self_url or None
            if p.state == SUSPECT and (me is None or me in p.confirmations):
                return None  # we said so already
            # a suspicion of our own confirms one we heard of (Lifeguard): it shortens the timeout
            self._suspect(p, p.incarnation, None, now)
            if me is not None:
                p.confirmations.add(me)
            return Update(self._update(p).ref, p.incarnation, SUSPECT, me)

    def indirect_ok(self, url: str, now: float) -> None:
        """Another member reached ``url`` for us: it is alive (our own failure stays recorded)."""
        with self._lock:
            p = self._peers.get(url)
            if p is not None:
                self._heard(p, now, now)

    def refused(self, url: str, responder: HostRef | None, error: str, now: float) -> None:
        """``url`` answered that it will not have us (another code version); ``responder`` if it said."""
        with self._lock:
            p = self._peers.get(url)
            if responder is None and p is not None:
                base = p.ref or HostRef(name_from_url(url), url, "", False, 0.0, 0, 0)
                responder = base.replace(code_version="")
            self._refuse(url, responder, error, now)

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
            self._event("mesh-host-offline", p, error)
            p.announced = False
        if not p.seed:
            del self._peers[url]
            return
        p.refused, p.ref, p.error = True, None, error
        p.failures += 1
        p.next_attempt = now + self._backoff(p.failures)

    def mark_offline(self, url: str, error: str, now: float) -> None:
        """Someone failed to reach ``url``: offline until our next answered request; contact it soon."""
        with self._lock:
            p = self._admit(url, now)
            if p is None:
                return
            p.unreachable = True
            p.error = error
            p.next_attempt = min(p.next_attempt, now)
            self._announce(p)

    def inbound(self, ref: HostRef, incarnation: int | None, now: float) -> tuple[bool, Update | None]:
        """The peer ``ref`` contacted us (direct evidence): (False, None) when its version is refused,
        else (True, the alive update to spread when this is news)."""
        with self._lock:
            if ref.url == self.self_url:
                return True, None
            if not self._version_ok(ref, now):
                return False, None
            p = self._admit(ref.url, now)
            if p is None:
                return True, None
            return True, self._alive_direct(p, ref, incarnation, now)

    def apply(self, update: Update, base: float, now: float) -> Update | None:
        """Merge a third host's ``update`` (rules in the module docstring); ``base`` is the moment its
        ``age`` counts back from. Returns the update to pass on when it changed our view."""
        ref = update.ref
        with self._lock:
            if ref.url == self.self_url or not self._version_ok(ref, now):
                return None
            p = self._peers.get(ref.url)
            if update.incarnation is None:
                self._apply_legacy(p, ref, base, now)
                return None
            if p is None:
                if update.state == DEAD:
                    return None
                p = self._admit(ref.url, now)
                if p is None:
                    return None
                self._news = True
            if p.alias_of is not None:
                return None
            out = self._merge(p, update, base, now)
            self._announce(p)
            return out

    def _merge(self, p: _Peer, update: Update, base: float, now: float) -> Update | None:
        inc = update.incarnation
        assert inc is not None
        if update.state == ALIVE:
            if p.state is not None and inc <= p.incarnation:
                return None
            self._absorb(p, update.ref)
            if update.ref.age is not None:
                self._heard(p, base - update.ref.age, now)
            self._set_state(p, ALIVE, inc, now)
            return update
        if update.state == SUSPECT:
            if inc < p.incarnation or (p.state == DEAD and inc <= p.incarnation):
                return None
            if p.ref is None:
                self._absorb(p, update.ref)
            fresh = p.state != SUSPECT or inc != p.incarnation
            known = update.by in p.confirmations
            self._suspect(p, inc, update.by, now)
            return update if fresh or not known else None
        if p.state == DEAD or inc < p.incarnation:
            return None
        if p.ref is None:
            self._absorb(p, update.ref)
        self._set_state(p, DEAD, inc, now)
        p.error = STALE_ERROR
        p.failures = max(p.failures, 1)
        p.next_attempt = now + self._backoff(p.failures)
        return update

    def _apply_legacy(self, p: _Peer | None, ref: HostRef, base: float, now: float) -> None:
        """A ref without membership fields: introduces a host (only when ``online``); with an ``age``
        (our own ``register``) it is evidence of life for a host whose state is unknown."""
        if p is None:
            if not ref.online:
                return
            p = self._admit(ref.url, now)
            if p is None:
                return
            self._news = True
        if p.ref is None:
            self._absorb(p, ref)
        if ref.online and ref.age is not None and p.state is None:
            self._heard(p, base - ref.age, now)
            self._set_state(p, ALIVE, 0, now)
        self._announce(p)

    def discovered(self, ref: HostRef, now: float) -> None:
        """``ref`` announced itself (multicast beacon): a candidate to contact, no evidence of reach."""
        with self._lock:
            if ref.url == self.self_url or not self._version_ok(ref, now):
                return
            if ref.url not in self._peers:
                p = self._admit(ref.url, now)
                if p is not None:
                    self._absorb(p, ref)
                    self._news = True

    def sweep(self, now: float) -> list[Update]:
        """Expire suspicions (the dead updates to spread), forget long-offline non-seeds and old
        rejections; announce online/offline changes."""
        out: list[Update] = []
        with self._lock:
            for url, p in list(self._peers.items()):
                if url == self.self_url:
                    del self._peers[url]
                    continue
                if p.state == SUSPECT and now - p.suspect_at >= self._suspicion_timeout(p):
                    self._set_state(p, DEAD, p.incarnation, now)
                    p.error = p.error or STALE_ERROR
                    p.failures = max(p.failures, 1)
                    p.next_attempt = now + self._backoff(p.failures)
                    out.append(self._update(p))
                if not p.seed and not self._online(p) and now - _last_heard(p) > self.forget_after:
                    if p.announced:
                        self._event("mesh-host-offline", p, self._error(p))
                    del self._peers[url]
                    self._dropped += 1
                    continue
                self._announce(p)
            while self._rejected:
                url, (_, at) = next(iter(self._rejected.items()))
                if now - at <= self.forget_after:
                    break
                del self._rejected[url]
        return out

    def drain(self) -> tuple[list[MeshEvent], bool]:
        """Events to emit since the last call, and whether anything became online or new (news)."""
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

    def next_probe_target(self, rng: random.Random) -> str | None:
        """The next live member to probe: every member once per shuffled round (SWIM's round-robin)."""
        with self._lock:
            while True:
                if not self._probe_order:
                    self._probe_order = [
                        url
                        for url, p in self._peers.items()
                        if self._live(p) and (p.seed or not self.seeds_only)
                    ]
                    rng.shuffle(self._probe_order)
                    if not self._probe_order:
                        return None
                url = self._probe_order.pop()
                p = self._peers.get(url)
                if p is not None and self._live(p):
                    return url

    def reconnects_due(self, now: float, *, force: bool, limit: int) -> list[str]:
        """Entries that are not live members (unknown, dead, refused seeds) or that we marked
        unreachable, whose backoff has passed (all of them with ``force``); at most ``limit``,
        longest-waiting first. Aliases are skipped while their canonical entry is online."""
        with self._lock:
            due: list[_Peer] = []
            for url, p in self._peers.items():
                if url == self.self_url or (self._live(p) and not p.unreachable):
                    continue
                if not force and p.next_attempt > now:
                    continue
                if self.seeds_only and not p.seed:  # a connect-mode host reaches its hub only
                    continue
                if p.alias_of is not None:
                    canon = self._peers.get(p.alias_of)
                    if canon is not None and self._online(canon):
                        continue
                due.append(p)
            due.sort(key=lambda p: p.next_attempt)
            return [p.url for p in due[:limit]]

    def live_urls(self) -> list[str]:
        with self._lock:
            return [url for url, p in self._peers.items() if self._online(p)]

    def contactable_urls(self) -> list[str]:
        """The live members this host sends requests to: all of them, or only its seeds in connect mode
        (``seeds_only``: it has no route to the others, and must not suspect them for that)."""
        with self._lock:
            return [
                url for url, p in self._peers.items() if self._online(p) and (p.seed or not self.seeds_only)
            ]

    def member_count(self) -> int:
        """Live members, ourselves included."""
        with self._lock:
            return self._members() + 1

    def incarnation(self, url: str) -> int | None:
        with self._lock:
            p = self._peers.get(url)
            return None if p is None or p.state is None else p.incarnation

    def about(self, url: str) -> Update | None:
        """What we believe about ``url`` when it is suspect or dead (sent to it, so it may refute)."""
        with self._lock:
            p = self._peers.get(url)
            if p is None or p.state not in (SUSPECT, DEAD):
                return None
            update = self._update(p)
            by = self.self_url or None
            return Update(update.ref, update.incarnation, update.state, by if p.state == SUSPECT else None)

    def views(self, now: float, wall: float, *, online_only: bool = False) -> list[HostRef]:
        with self._lock:
            refs = [self._view(p, now, wall) for p in self._peers.values() if self._listed(p)]
        if online_only:
            refs = [ref for ref in refs if ref.online]
        return refs

    def member_wires(self, now: float, wall: float, limit: int) -> list[dict[str, Any]]:
        """Every listed entry as a wire ref, with ``incarnation`` and ``state`` when the protocol knows
        them (the full state of a push-pull exchange), at most ``limit``."""
        out: list[dict[str, Any]] = []
        with self._lock:
            for p in self._peers.values():
                if len(out) >= limit:
                    break
                if not self._listed(p):
                    continue
                wire = self._view(p, now, wall).to_wire()
                if p.state is not None:
                    wire["incarnation"] = p.incarnation
                    wire["state"] = p.state
                out.append(wire)
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
            if p is not None and self._listed(p):
                return self._view(p, now, wall)
            best: _Peer | None = None
            for candidate in self._peers.values():
                if candidate.ref is None or candidate.ref.name != target or not self._listed(candidate):
                    continue
                if best is None or self._better(candidate, best):
                    best = candidate
            return None if best is None else self._view(best, now, wall)

    def _better(self, a: _Peer, b: _Peer) -> bool:
        a_online, b_online = self._online(a), self._online(b)
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
            listed = [p for p in self._peers.values() if self._listed(p)]
            return TableCounts(
                known=len(listed),
                online=sum(1 for p in listed if self._online(p)),
                seeds=sum(1 for p in self._peers.values() if p.seed),
                rejected=len(self._rejected),
                dropped=self._dropped,
            )


def _last_heard(p: _Peer) -> float:
    """When we last heard from ``p`` (its last state change when later, its creation when never): the
    age used to forget or evict it."""
    heard = p.heard_at if p.heard_at is not None else p.created_at
    return max(heard, p.changed_at)
