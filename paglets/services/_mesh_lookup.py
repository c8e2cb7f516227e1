"""Service lookups across the mesh (docs/implementing/services.md).

:class:`MeshServiceLookup` answers ``lookup_services(scope=MESH)``: this host's records
first (any scope), then the mesh-scoped records of every peer, fetched **in parallel** within one overall
``deadline`` (seconds). A peer that fails or does not answer in time is skipped. Answers are cached per
(name, capability, peer) for ``MESH_CACHE_TTL`` seconds and failures for ``MESH_FAILURE_TTL``, so a hot
lookup loop makes no requests and a hung peer costs at most one deadline per ``MESH_FAILURE_TTL``.
Concurrent lookups share in-flight requests (one request per peer and key at a time). A request outlives
the lookup that started it (up to ``MESH_PEER_TIMEOUT``) so that a slightly slow answer still fills the
cache; :meth:`MeshServiceLookup.aclose` cancels what is left. Results are de-duplicated by (host URL,
agent id, name), the first occurrence winning. Remote records are re-filtered (mesh scope, name,
capability) but not re-checked for expiry: the peer already dropped expired records and clocks of two
hosts need not agree; the cache TTL bounds how stale a remote record can be.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Collection, Iterable
from typing import TYPE_CHECKING, Any, Final, TypeAlias
from urllib.parse import urlencode

import msgspec

from paglets.core.errors import PagletError, SerializationError
from paglets.core.runtime_values import ServiceScope
from paglets.services.contracts import ServiceRecord
from paglets.services.registry import MAX_SERVICE_RECORDS
from paglets.wire.jsonbin import decode_json

if TYPE_CHECKING:
    from paglets.http.aclient import AsyncHttpClient

__all__ = [
    "MAX_MESH_CACHE_ENTRIES",
    "MAX_MESH_LOOKUP_PEERS",
    "MESH_CACHE_TTL",
    "MESH_FAILURE_TTL",
    "MESH_LOOKUP_DEADLINE",
    "MESH_PEER_TIMEOUT",
    "Fetch",
    "MeshLookupStatistics",
    "MeshServiceLookup",
    "http_fetch",
    "lookup_mesh",
    "services_url",
]

# --- limits ---------------------------------------------------------------------------------------------

#: Seconds a peer's answer to a mesh lookup is reused. Short: services come and go, and a lookup right
#: after an advertisement elsewhere should see it soon; long enough that a lookup loop costs no requests.
MESH_CACHE_TTL: Final = 2.0

#: Seconds a peer that failed or timed out is skipped by further mesh lookups of the same key.
MESH_FAILURE_TTL: Final = 1.0

#: Default overall budget (seconds) of one mesh lookup, for all peers together (the reference gave each
#: peer this much, one after the other).
MESH_LOOKUP_DEADLINE: Final = 1.0

#: Seconds a request to one peer may run, even after the lookup that started it returned (it still fills
#: the cache). A lookup with a longer deadline extends it.
MESH_PEER_TIMEOUT: Final = 2.0

#: Cached (name, capability, peer) answers kept; the oldest go first.
MAX_MESH_CACHE_ENTRIES: Final = 4096

#: Peers one mesh lookup asks (in the order given; further ones are skipped and counted). Bounds the
#: requests and tasks one call can start; meshes are far smaller.
MAX_MESH_LOOKUP_PEERS: Final = 1024


class MeshLookupStatistics(msgspec.Struct, frozen=True):
    """Counters of a :class:`MeshServiceLookup` (totals since it was created)."""

    lookups: int
    cache_hits: int
    requests: int
    shared_requests: int
    failures: int
    timeouts: int
    malformed_records: int
    skipped_peers: int
    cached_entries: int
    in_flight: int


# --- mesh lookups ---------------------------------------------------------------------------------------

#: ``fetch(url)``: GET ``url`` and return the decoded JSON body — either ``{"services": [...]}`` or the
#: list of record wire dicts itself. Any exception counts as a failed peer.
Fetch: TypeAlias = Callable[[str], Awaitable[Any]]

_CacheKey: TypeAlias = tuple[str | None, str | None, str]  # (name, capability, peer URL)


def services_url(
    peer_url: str,
    *,
    name: str | None = None,
    capability: str | None = None,
    scope: ServiceScope | None = ServiceScope.MESH,
) -> str:
    """``<peer>/services?name=&capability=&scope=`` with only the given parameters."""
    query = {
        key: value
        for key, value in (("name", name), ("capability", capability), ("scope", scope and scope.value))
        if value
    }
    base = f"{peer_url.rstrip('/')}/services"
    return f"{base}?{urlencode(query)}" if query else base


def http_fetch(client: AsyncHttpClient, *, timeout: float | None = None) -> Fetch:
    """A :data:`Fetch` over an ``AsyncHttpClient`` (binary tags in metadata are restored)."""

    async def fetch(url: str) -> Any:
        response = await client.request("GET", url, timeout=timeout)
        response.raise_for_status()
        return decode_json(response.body) if response.body else None

    return fetch


class _Entry:
    __slots__ = ("expires", "records")

    def __init__(self, expires: float, records: tuple[ServiceRecord, ...] | None) -> None:
        self.expires = expires
        self.records = records  # None: the peer failed


class MeshServiceLookup:
    """Cached, parallel mesh lookups (see the module docstring). Use it from one event loop only.

    ``clock`` (monotonic seconds) drives the cache TTLs; tests inject one to expire entries without
    waiting.
    """

    def __init__(
        self,
        *,
        ttl: float = MESH_CACHE_TTL,
        failure_ttl: float = MESH_FAILURE_TTL,
        peer_timeout: float = MESH_PEER_TIMEOUT,
        max_entries: int = MAX_MESH_CACHE_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if peer_timeout <= 0 or max_entries <= 0:
            raise ValueError("peer_timeout and max_entries must be positive")
        self._ttl = ttl
        self._failure_ttl = failure_ttl
        self._peer_timeout = peer_timeout
        self._max_entries = max_entries
        self._clock = clock
        self._cache: dict[_CacheKey, _Entry] = {}
        self._inflight: dict[_CacheKey, asyncio.Task[tuple[ServiceRecord, ...] | None]] = {}
        self._closed = False
        self._lookups = 0
        self._hits = 0
        self._requests = 0
        self._shared = 0
        self._failures = 0
        self._timeouts = 0
        self._malformed = 0
        self._skipped = 0

    async def lookup(
        self,
        local: Iterable[ServiceRecord],
        peers: Collection[str],
        fetch: Fetch,
        *,
        name: str | None = None,
        capability: str | None = None,
        deadline: float = MESH_LOOKUP_DEADLINE,
    ) -> list[ServiceRecord]:
        """``local`` followed by the peers' matching mesh-scoped records (see the module docstring).

        ``deadline`` is the overall budget in seconds; peers that did not answer by then are skipped.
        """
        if self._closed:
            raise RuntimeError("MeshServiceLookup is closed")
        self._lookups += 1
        now = self._clock()
        answers: dict[str, tuple[ServiceRecord, ...]] = {}
        waiting: dict[str, asyncio.Task[tuple[ServiceRecord, ...] | None]] = {}
        ordered = list(dict.fromkeys(peer.rstrip("/") for peer in peers if peer))
        if len(ordered) > MAX_MESH_LOOKUP_PEERS:
            self._skipped += len(ordered) - MAX_MESH_LOOKUP_PEERS
            del ordered[MAX_MESH_LOOKUP_PEERS:]
        for peer in ordered:
            key = (name, capability, peer)
            entry = self._cache.get(key)
            if entry is not None and entry.expires > now:
                self._hits += 1
                if entry.records is not None:
                    answers[peer] = entry.records
                continue
            task = self._inflight.get(key)
            if task is None:
                task = self._start(key, fetch, max(self._peer_timeout, deadline))
            else:
                self._shared += 1
            waiting[peer] = task
        if waiting:
            done, _ = await asyncio.wait(waiting.values(), timeout=max(0.0, deadline))
            for peer, task in waiting.items():
                if task in done and not task.cancelled():
                    records = task.result()  # _fetch_peer never raises
                    if records is not None:
                        answers[peer] = records
        return self._merge(local, ordered, answers, name, capability)

    def invalidate(self, peer: str | None = None) -> None:
        """Forget cached answers (of one peer, or all)."""
        if peer is None:
            self._cache.clear()
            return
        peer = peer.rstrip("/")
        for key in [k for k in self._cache if k[2] == peer]:
            del self._cache[key]

    async def wait_idle(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the requests in flight to finish (and fill the cache).

        Returns True when none is left. For a graceful stop; :meth:`aclose` cancels instead.
        """
        tasks = list(self._inflight.values())
        if tasks:
            await asyncio.wait(tasks, timeout=max(0.0, timeout))
        return not self._inflight

    async def aclose(self) -> None:
        """Cancel requests still in flight and wait for them; the lookup cannot be used afterwards."""
        self._closed = True
        tasks = list(self._inflight.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._cache.clear()

    def statistics(self) -> MeshLookupStatistics:
        return MeshLookupStatistics(
            lookups=self._lookups,
            cache_hits=self._hits,
            requests=self._requests,
            shared_requests=self._shared,
            failures=self._failures,
            timeouts=self._timeouts,
            malformed_records=self._malformed,
            skipped_peers=self._skipped,
            cached_entries=len(self._cache),
            in_flight=len(self._inflight),
        )

    # --- internals --------------------------------------------------------------------------------------

    def _start(
        self, key: _CacheKey, fetch: Fetch, timeout: float
    ) -> asyncio.Task[tuple[ServiceRecord, ...] | None]:
        self._requests += 1
        task = asyncio.get_running_loop().create_task(
            self._fetch_peer(key, fetch, timeout), name=f"paglets-mesh-lookup {key[2]}"
        )
        self._inflight[key] = task
        return task

    async def _fetch_peer(
        self, key: _CacheKey, fetch: Fetch, timeout: float
    ) -> tuple[ServiceRecord, ...] | None:
        name, capability, peer = key
        records: tuple[ServiceRecord, ...] | None = None
        try:
            async with asyncio.timeout(timeout):
                body = await fetch(services_url(peer, name=name, capability=capability))
            records = self._parse(body, name, capability)
        except TimeoutError:
            self._timeouts += 1
        except asyncio.CancelledError:
            raise
        except Exception:  # any failure of one peer only removes that peer from the answer
            self._failures += 1
        finally:
            self._inflight.pop(key, None)
        self._store(key, records)
        return records

    def _parse(self, body: object, name: str | None, capability: str | None) -> tuple[ServiceRecord, ...]:
        items = body.get("services") if isinstance(body, dict) else body
        if not isinstance(items, list):
            raise PagletError("a /services answer must hold a list of services")
        found: list[ServiceRecord] = []
        for item in items[:MAX_SERVICE_RECORDS]:
            try:
                record = ServiceRecord.from_wire(item)
            except SerializationError:
                self._malformed += 1
                continue
            if record.matches(name, capability, ServiceScope.MESH):
                found.append(record)
        return tuple(found)

    def _store(self, key: _CacheKey, records: tuple[ServiceRecord, ...] | None) -> None:
        if self._closed:
            return
        ttl = self._ttl if records is not None else self._failure_ttl
        if ttl <= 0:
            self._cache.pop(key, None)
            return
        cache = self._cache
        cache.pop(key, None)  # re-insert at the end: insertion order is age order
        cache[key] = _Entry(self._clock() + ttl, records)
        if len(cache) > self._max_entries:
            now = self._clock()
            for stale in [k for k, e in cache.items() if e.expires <= now]:
                del cache[stale]
            while len(cache) > self._max_entries:
                del cache[next(iter(cache))]

    @staticmethod
    def _merge(
        local: Iterable[ServiceRecord],
        peers: list[str],
        answers: dict[str, tuple[ServiceRecord, ...]],
        name: str | None,
        capability: str | None,
    ) -> list[ServiceRecord]:
        merged: list[ServiceRecord] = []
        seen: set[tuple[str, str, str]] = set()

        def add(record: ServiceRecord) -> None:
            identity = (
                (record.host_url or record.proxy.host_url).rstrip("/"),
                record.proxy.agent_id,
                record.name,
            )
            if identity not in seen:
                seen.add(identity)
                merged.append(record)

        for record in local:
            add(record)
        for peer in peers:
            for record in answers.get(peer, ()):
                add(record)
        return merged


async def lookup_mesh(
    local: Iterable[ServiceRecord],
    peers: Collection[str],
    fetch: Fetch,
    *,
    name: str | None = None,
    capability: str | None = None,
    deadline: float = MESH_LOOKUP_DEADLINE,
    cache: MeshServiceLookup | None = None,
) -> list[ServiceRecord]:
    """One mesh lookup (see the module docstring), through ``cache`` when given.

    Without ``cache`` nothing is cached and requests still running at the deadline are cancelled.
    """
    if cache is not None:
        return await cache.lookup(local, peers, fetch, name=name, capability=capability, deadline=deadline)
    one_shot = MeshServiceLookup(ttl=0.0, failure_ttl=0.0)
    try:
        return await one_shot.lookup(local, peers, fetch, name=name, capability=capability, deadline=deadline)
    finally:
        await one_shot.aclose()
