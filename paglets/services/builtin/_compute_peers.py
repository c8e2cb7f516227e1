"""What one ``compute-slots`` service knows of its peers: their statuses (by gossip) and shadow reservations.

**Gossip.** A round sends this host's status to at most ``peer_batch_size`` random online peers and
merges what they answer: their own status and the fresh ones they know (at most
:data:`MAX_SYNC_STATUSES`). Every status is re-based to this host's clock on arrival (the sender's
``generated_at``/``sent_at`` against ours), so skewed clocks do not make statuses look fresh or stale;
a newer status of a host replaces an older one, never the other way round.

**Shadow reservations.** When this host recommends a host to a job (``candidate_hosts``), the job's
request is remembered for :data:`SHADOW_TTL` seconds and subtracted from that host's status: from a
peer's until a status of it observed :data:`SHADOW_TRANSIT` seconds after the recommendation arrives
(which includes the job), from
this host's own until the job asks it for a slot. So a burst of jobs placed from one home spreads over
the hosts instead of all choosing the same one.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass, replace
from typing import Any, Final

from paglets.core.errors import PagletInactiveError
from paglets.services.builtin._scheduler_rules import (
    blockers,
    can_ever_satisfy,
    can_run_now,
    candidate_score,
    load_blocked,
    reserve_projected,
    same_owner,
)
from paglets.services.builtin.compute_slots import (
    COMPUTE_SLOTS_AGENT_ID,
    SYNC_SCHEDULER_STATUS,
    CandidateHost,
    CandidateHostsReply,
    CandidateHostsRequest,
    ComputeSlotRequest,
    SchedulerHostStatus,
    SchedulerStatusSyncReply,
    SchedulerStatusSyncRequest,
)

__all__ = ["MAX_SYNC_STATUSES", "PEER_TIMEOUT", "SHADOW_TTL", "Peers"]

#: Seconds a peer may take to answer a gossip exchange.
PEER_TIMEOUT: Final = 1.5
#: Seconds a shadow reservation is remembered.
SHADOW_TTL: Final = 30.0
#: Seconds a job placed on a peer may take to arrive there: a status observed sooner after the placement
#: may not show the job yet (moving a job takes a fraction of a second; this leaves room for load).
SHADOW_TRANSIT: Final = 2.0
#: Peer statuses kept (a mesh has at most a few thousand hosts).
MAX_PEERS: Final = 4096
#: Statuses one gossip exchange carries.
MAX_SYNC_STATUSES: Final = 64
#: Peers asked at once when ``candidate_hosts`` lacks their status.
MAX_REFRESH: Final = 32
#: Shadow reservations kept.
MAX_SHADOWS: Final = 4096


@dataclass(frozen=True, slots=True)
class _Shadow:
    host_url: str
    placed_at: float
    request: ComputeSlotRequest


class Peers:
    """The peer table of one service (thread-safe)."""

    def __init__(
        self,
        context: Any,
        self_url: str,
        *,
        note: Callable[[str, str], None],
        clear: Callable[[str], None],
    ) -> None:
        self.context = context
        self.self_url = self_url.rstrip("/")
        self._note = note
        self._clear = clear
        self._lock = threading.Lock()
        self._statuses: dict[str, SchedulerHostStatus] = {}
        self._shadows: list[_Shadow] = []

    def fresh(self, max_age: float) -> list[SchedulerHostStatus]:
        now = time.time()
        with self._lock:
            return [s for s in self._statuses.values() if max_age <= 0 or now - s.observed_at <= max_age]

    def merge(self, status: SchedulerHostStatus, shift: float, now: float) -> bool:
        url = status.host_url.rstrip("/")
        if not url or url == self.self_url:
            return False
        status = replace(status, host_url=url, observed_at=min(now, status.observed_at + shift))
        with self._lock:
            current = self._statuses.get(url)
            if current is not None and current.observed_at >= status.observed_at:
                return False
            self._statuses[url] = status
            if len(self._statuses) > MAX_PEERS:
                oldest = min(self._statuses.values(), key=lambda s: s.observed_at)
                del self._statuses[oldest.host_url]
        return True

    def sync(self, request: SchedulerStatusSyncRequest, own: SchedulerHostStatus) -> SchedulerStatusSyncReply:
        now = time.time()
        shift = now - request.sent_at if request.sent_at > 0 else 0.0
        accepted = sum(self.merge(s, shift, now) for s in request.statuses[:MAX_SYNC_STATUSES])
        max_age = request.max_age_seconds if request.max_age_seconds > 0 else 20.0
        fresh = sorted(self.fresh(max_age), key=lambda s: s.observed_at, reverse=True)
        return SchedulerStatusSyncReply(now, accepted, [own, *fresh[: MAX_SYNC_STATUSES - 1]])

    # --- shadows ----------------------------------------------------------------------------------

    def add_shadow(self, host_url: str, request: ComputeSlotRequest) -> None:
        with self._lock:
            self._shadows.append(_Shadow(host_url.rstrip("/"), time.time(), request))
            del self._shadows[:-MAX_SHADOWS]

    def drop_shadow(self, request: ComputeSlotRequest) -> None:
        """The job of ``request`` arrived here: its status shows it from now on."""
        with self._lock:
            self._shadows = [
                s
                for s in self._shadows
                if not (s.host_url == self.self_url and same_owner(s.request, request))
            ]

    def projected(self, statuses: dict[str, SchedulerHostStatus]) -> dict[str, SchedulerHostStatus]:
        """``statuses`` (by URL, this host's included) minus the shadow reservations they cannot show."""
        now = time.time()
        out = dict(statuses)
        with self._lock:
            self._shadows = [s for s in self._shadows if now - s.placed_at < SHADOW_TTL]
            shadows = list(self._shadows)
        for shadow in shadows:
            target = out.get(shadow.host_url)
            if target is None:
                continue
            if shadow.host_url == self.self_url or target.observed_at < shadow.placed_at + SHADOW_TRANSIT:
                out[shadow.host_url] = reserve_projected(target, shadow.request)
        return out

    # --- placement --------------------------------------------------------------------------------

    def candidates(
        self,
        request: CandidateHostsRequest,
        slot: ComputeSlotRequest,
        own: SchedulerHostStatus,
        errors: dict[str, str],
    ) -> CandidateHostsReply:
        """Where ``slot`` could run: every host with a fresh status that could ever run it, the ones
        that can run it now first, then by score; the others under ``rejected`` with the reason. The
        selected host gets a shadow reservation."""
        max_age = request.max_age_seconds if request.max_age_seconds > 0 else 20.0
        self.refresh_missing(own, max_age)
        statuses = {s.host_url: s for s in self.fresh(max_age)}
        statuses[self.self_url] = own
        candidates: list[CandidateHost] = []
        rejected: dict[str, str] = {}
        for url, status in sorted(self.projected(statuses).items()):
            key = status.host_name or url
            reason = can_ever_satisfy(status, slot)
            if not request.include_self and url == self.self_url:
                rejected[key] = "self excluded"
            elif reason:
                rejected[key] = reason
            elif status.errors:
                rejected[key] = "host status unavailable: " + "; ".join(status.errors)
            elif load_blocked(status):
                rejected[key] = load_blocked(status)
            else:
                found = blockers(status, slot)
                why = ["can run now"] if not found else [f"would queue ({', '.join(found)})"]
                candidates.append(CandidateHost(status, candidate_score(status, slot), why))
        candidates.sort(key=lambda c: (not can_run_now(c.status, slot), c.score, c.status.host_name))
        if request.limit > 0:
            candidates = candidates[: request.limit]
        selected = candidates[0] if candidates else None
        if selected is not None:
            self.add_shadow(selected.status.host_url, slot)
        return CandidateHostsReply(time.time(), candidates, selected, rejected, errors)

    # --- gossip -----------------------------------------------------------------------------------

    def online(self) -> list[str]:
        urls = []
        for ref in self.context.available_hosts(online_only=True, include_self=False):
            url = str(getattr(ref, "url", "")).rstrip("/")
            if url and url != self.self_url:
                urls.append(url)
        return urls

    def _exchange(self, url: str, request: SchedulerStatusSyncRequest) -> SchedulerStatusSyncReply:
        from paglets.services.builtin._compute_report import proxy_to

        proxy = proxy_to(self.context, COMPUTE_SLOTS_AGENT_ID, url)
        reply = proxy.send(SYNC_SCHEDULER_STATUS.to_message(request), timeout=PEER_TIMEOUT)
        result: SchedulerStatusSyncReply = SYNC_SCHEDULER_STATUS.decode_reply(reply)
        return result

    def gossip(
        self, pool: ThreadPoolExecutor, own: SchedulerHostStatus, count: int, urls: list[str] | None = None
    ) -> None:
        """One round with ``count`` random online peers (or with ``urls``)."""
        if urls is None:
            online = self.online()
            urls = random.sample(online, min(count, len(online)))
        if not urls:
            return
        futures = {
            pool.submit(self._exchange, url, SchedulerStatusSyncRequest([own], 20.0, time.time())): url
            for url in urls
        }
        done, _ = wait_futures(futures, timeout=PEER_TIMEOUT + 0.5)
        for future, url in futures.items():
            try:
                if future not in done:
                    raise TimeoutError(f"no answer within {PEER_TIMEOUT:g} s")
                reply = future.result()
            except PagletInactiveError:  # its service is starting: ask again next round
                continue
            except Exception as exc:
                self._note(url, f"status exchange failed: {exc}")
                continue
            self._clear(url)
            received = time.time()
            shift = received - reply.generated_at if reply.generated_at > 0 else 0.0
            for status in reply.statuses[:MAX_SYNC_STATUSES]:
                self.merge(status, shift, received)

    def refresh_missing(self, own: SchedulerHostStatus, max_age: float) -> None:
        """Ask the online peers without a fresh status (a placement must not miss a host only because no
        gossip round reached it yet)."""
        fresh = {s.host_url for s in self.fresh(max_age)}
        missing = [url for url in self.online() if url not in fresh][:MAX_REFRESH]
        if missing:
            with ThreadPoolExecutor(max_workers=min(8, len(missing))) as pool:
                self.gossip(pool, own, len(missing), missing)
