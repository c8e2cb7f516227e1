"""The per-host service registry, and service lookups across the mesh (contract §1.16, §7.4).

**Registry.** :class:`ServiceRegistry` holds the :class:`~paglets.services.contracts.ServiceRecord` s
advertised by the paglets of one host, keyed by (service name, agent id): advertising the same name again
from the same paglet replaces its record (keeping its place in the order). Rules:

- *Order.* Lookups return records in the order their keys were first advertised.
- *Expiry.* A record with ``expires_at`` is gone once ``expires_at <= clock()``. Expired records are
  dropped on every read and by :meth:`ServiceRegistry.purge_expired` (the host calls it from a timer so
  memory is returned even when nobody reads). Expiry deadlines sit in a min-heap, so a read costs
  O(expired · log n), not a scan; stale heap entries (replaced records) are skipped and the heap is
  rebuilt when they outnumber the live ones.
- *Scope filter.* ``lookup(scope=None)`` returns every record of the host; ``scope=MESH`` only the
  mesh-scoped ones (what peers see), ``scope=LOCAL`` only the local-scoped ones.
- *Bounds.* At most ``MAX_SERVICE_RECORDS`` records per host and ``MAX_SERVICES_PER_AGENT`` per paglet;
  names, capabilities and metadata are bounded too (constants below). Exceeding one raises
  ``LimitExceededError``; a malformed advertisement raises ``HostError``.
- *Threads.* Every method takes one lock; the registry may be used from the host's loop and from any
  thread.
- *Changes.* An ``on_change(change, record)`` listener hears ``"advertise"`` for every record added or
  replaced and ``"remove"`` for every record unadvertised or removed with its paglet (not for expiry),
  after the change, outside the lock (the host turns them into ``service-advertise`` and
  ``service-remove`` events, as paglets 2.0 does).

**Mesh lookups.** :class:`MeshServiceLookup` answers ``lookup_services(scope=MESH)``: this host's records
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
import heapq
import logging
import math
import threading
import time
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Final, TypeAlias
from urllib.parse import urlencode

import msgspec

from paglets.core.errors import HostError, LimitExceededError, PagletError, SerializationError
from paglets.core.runtime_values import ServiceScope, require_enum
from paglets.remote.references import PagletProxyRef
from paglets.services.contracts import ServiceRecord
from paglets.wire.jsonbin import decode_json, encode_json
from paglets.wire.limits import KiB

if TYPE_CHECKING:
    from paglets.http.aclient import AsyncHttpClient

__all__ = [
    "MAX_CAPABILITY_NAME",
    "MAX_MESH_CACHE_ENTRIES",
    "MAX_MESH_LOOKUP_PEERS",
    "MAX_SERVICES_PER_AGENT",
    "MAX_SERVICE_CAPABILITIES",
    "MAX_SERVICE_METADATA",
    "MAX_SERVICE_NAME",
    "MAX_SERVICE_RECORDS",
    "MESH_CACHE_TTL",
    "MESH_FAILURE_TTL",
    "MESH_LOOKUP_DEADLINE",
    "MESH_PEER_TIMEOUT",
    "Fetch",
    "MeshLookupStatistics",
    "MeshServiceLookup",
    "RegistryStatistics",
    "ServiceRegistry",
    "check_record",
    "http_fetch",
    "lookup_mesh",
    "new_record",
    "services_url",
]

_log = logging.getLogger("paglets.services")

# --- limits ---------------------------------------------------------------------------------------------

#: Records one host holds. Each costs well under a few KiB; the bound keeps a misbehaving paglet (or a
#: flood of HTTP advertisements) from exhausting the host's memory, and bounds what a peer sends us.
MAX_SERVICE_RECORDS: Final = 10_000

#: Records one paglet may hold on its host (so one paglet cannot take the whole registry).
MAX_SERVICES_PER_AGENT: Final = 256

#: Longest service name (characters). Names are identifiers such as ``"compute-slots"``.
MAX_SERVICE_NAME: Final = 256

#: Capabilities one record may list. A contract's operations become capabilities, and contracts are
#: bounded to the same number of operations.
MAX_SERVICE_CAPABILITIES: Final = 256

#: Longest capability (characters).
MAX_CAPABILITY_NAME: Final = 256

#: Largest metadata of one record, measured as its JSON encoding. Metadata describes a service (contract
#: schema, resident-service facts); it travels in every lookup answer, so it must stay small.
MAX_SERVICE_METADATA: Final = 64 * KiB

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

# --- statistics -----------------------------------------------------------------------------------------


class RegistryStatistics(msgspec.Struct, frozen=True):
    """Counters of a :class:`ServiceRegistry` (totals since it was created)."""

    records: int
    agents: int
    advertised: int
    removed: int
    expired: int
    lookups: int


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


# --- records --------------------------------------------------------------------------------------------


def _check_text(value: object, what: str, limit: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise HostError(f"{what} must be a non-empty string")
    if len(value) > limit:
        raise LimitExceededError(f"{what} longer than {limit} characters", fault="remote")
    return value


def check_record(record: ServiceRecord) -> None:
    """Check a record against the registry's rules (see the module docstring); raises on violation."""
    _check_text(record.name, "service name", MAX_SERVICE_NAME)
    _check_text(record.proxy.agent_id, "agent id", MAX_SERVICE_NAME)
    if len(record.capabilities) > MAX_SERVICE_CAPABILITIES:
        raise LimitExceededError(f"more than {MAX_SERVICE_CAPABILITIES} capabilities")
    for capability in record.capabilities:
        _check_text(capability, "capability", MAX_CAPABILITY_NAME)
    if not isinstance(record.metadata, dict):
        raise HostError("service metadata must be a dict")
    if record.metadata:
        if not all(isinstance(key, str) for key in record.metadata):
            raise HostError("service metadata keys must be strings")
        size = len(encode_json(record.metadata))
        if size > MAX_SERVICE_METADATA:
            raise LimitExceededError(f"service metadata of {size} bytes exceeds {MAX_SERVICE_METADATA}")


def new_record(
    agent_id: str,
    name: str,
    *,
    host_name: str,
    host_url: str,
    capabilities: Iterable[str] | None = None,
    metadata: Mapping[str, Any] | None = None,
    scope: ServiceScope = ServiceScope.LOCAL,
    ttl: float | None = None,
    now: float,
) -> ServiceRecord:
    """A checked record advertised at ``now`` (wall clock) by ``agent_id`` on the given host.

    ``ttl`` (seconds, positive and finite) sets ``expires_at = now + ttl``; None never expires.
    """
    require_enum(ServiceScope, scope, "scope")
    expires_at: float | None = None
    if ttl is not None:
        if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or not math.isfinite(ttl) or ttl <= 0:
            raise HostError(f"ttl must be a positive number of seconds, got {ttl!r}")
        expires_at = now + float(ttl)
    if isinstance(capabilities, str):
        raise HostError("capabilities must be a list of strings, not a string")
    record = ServiceRecord(
        name=name,
        proxy=PagletProxyRef(host_url, agent_id),
        capabilities=tuple(capabilities or ()),
        metadata=dict(metadata or {}),
        scope=scope,
        host_name=host_name,
        host_url=host_url,
        advertised_at=now,
        expires_at=expires_at,
    )
    check_record(record)
    return record


# --- the registry ---------------------------------------------------------------------------------------

_Key: TypeAlias = tuple[str, str]  # (service name, agent id)


class ServiceRegistry:
    """See the module docstring. ``clock`` is the wall clock (``time.time``) unless a test injects one."""

    def __init__(
        self,
        *,
        max_records: int = MAX_SERVICE_RECORDS,
        max_per_agent: int = MAX_SERVICES_PER_AGENT,
        clock: Callable[[], float] = time.time,
        on_change: Callable[[str, ServiceRecord], None] | None = None,
    ) -> None:
        if max_records <= 0 or max_per_agent <= 0:
            raise ValueError("registry bounds must be positive")
        self.clock = clock
        self._on_change = on_change
        self._max_records = max_records
        self._max_per_agent = max_per_agent
        self._lock = threading.Lock()
        self._records: dict[_Key, ServiceRecord] = {}
        self._by_name: dict[str, dict[str, None]] = {}  # name -> agent ids, in advertisement order
        self._by_agent: dict[str, dict[str, None]] = {}  # agent id -> names
        self._expiry: list[tuple[float, int, _Key, ServiceRecord]] = []
        self._sequence = 0
        self._advertised = 0
        self._removed = 0
        self._expired = 0
        self._lookups = 0

    def __len__(self) -> int:
        with self._lock:
            self._expire(self.clock())
            return len(self._records)

    # --- changes ----------------------------------------------------------------------------------------

    def advertise(self, record: ServiceRecord) -> ServiceRecord:
        """Add ``record``, replacing the record of the same (name, agent id); returns it."""
        check_record(record)
        key = (record.name, record.proxy.agent_id)
        with self._lock:
            self._expire(self.clock())
            if key not in self._records:
                if len(self._records) >= self._max_records:
                    raise LimitExceededError(
                        f"service registry full ({self._max_records} records)", fault="remote"
                    )
                names = self._by_agent.get(key[1])
                if names is not None and len(names) >= self._max_per_agent:
                    raise LimitExceededError(
                        f"paglet {key[1]} already advertises {self._max_per_agent} services", fault="remote"
                    )
                self._by_name.setdefault(key[0], {})[key[1]] = None
                self._by_agent.setdefault(key[1], {})[key[0]] = None
            self._records[key] = record
            self._advertised += 1
            if record.expires_at is not None:
                self._sequence += 1
                heapq.heappush(self._expiry, (record.expires_at, self._sequence, key, record))
                if len(self._expiry) > 2 * len(self._records) + 64:
                    self._rebuild_expiry()
        self._changed("advertise", [record])
        return record

    def advertise_service(
        self,
        agent_id: str,
        name: str,
        *,
        host_name: str,
        host_url: str,
        capabilities: Iterable[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        scope: ServiceScope = ServiceScope.LOCAL,
        ttl: float | None = None,
    ) -> ServiceRecord:
        """Build a record with :func:`new_record` at ``clock()`` and advertise it."""
        return self.advertise(
            new_record(
                agent_id,
                name,
                host_name=host_name,
                host_url=host_url,
                capabilities=capabilities,
                metadata=metadata,
                scope=scope,
                ttl=ttl,
                now=self.clock(),
            )
        )

    def unadvertise(self, name: str, agent_id: str | None = None) -> list[ServiceRecord]:
        """Remove ``name`` as advertised by ``agent_id`` (None: by every paglet); returns what was removed."""
        with self._lock:
            self._expire(self.clock())
            agents = self._by_name.get(name)
            if not agents:
                return []
            ids = list(agents) if agent_id is None else ([agent_id] if agent_id in agents else [])
            removed = [self._pop((name, aid)) for aid in ids]
            self._removed += len(removed)
        self._changed("remove", removed)
        return removed

    def remove_agent(
        self, agent_id: str, *, keep: Callable[[ServiceRecord], bool] | None = None
    ) -> list[ServiceRecord]:
        """Remove every record of ``agent_id`` (it left, was deactivated or crashed) except those ``keep``
        accepts (resident services keep theirs); returns what was removed."""
        with self._lock:
            self._expire(self.clock())
            names = self._by_agent.get(agent_id)
            if not names:
                return []
            removed: list[ServiceRecord] = []
            for name in list(names):
                if keep is not None and keep(self._records[(name, agent_id)]):
                    continue
                removed.append(self._pop((name, agent_id)))
            self._removed += len(removed)
        self._changed("remove", removed)
        return removed

    def purge_expired(self, now: float | None = None) -> list[ServiceRecord]:
        """Drop every record expired at ``now`` (default: ``clock()``); returns them."""
        with self._lock:
            return self._expire(self.clock() if now is None else now)

    def clear(self) -> None:
        with self._lock:
            self._removed += len(self._records)
            self._records.clear()
            self._by_name.clear()
            self._by_agent.clear()
            self._expiry.clear()

    # --- queries ----------------------------------------------------------------------------------------

    def lookup(
        self,
        name: str | None = None,
        *,
        capability: str | None = None,
        scope: ServiceScope | None = None,
    ) -> list[ServiceRecord]:
        """Live records with ``name``, offering ``capability``, of ``scope`` (None: any), in order."""
        with self._lock:
            self._expire(self.clock())
            self._lookups += 1
            if name is None:
                candidates: Iterable[ServiceRecord] = self._records.values()
            else:
                agents = self._by_name.get(name)
                if not agents:
                    return []
                candidates = [self._records[(name, aid)] for aid in agents]
            if capability is None and scope is None:
                return list(candidates)
            return [r for r in candidates if r.matches(None, capability, scope)]

    def lookup_one(
        self,
        name: str,
        *,
        capability: str | None = None,
        scope: ServiceScope | None = None,
    ) -> ServiceRecord | None:
        """The first record :meth:`lookup` would return, or None."""
        found = self.lookup(name, capability=capability, scope=scope)
        return found[0] if found else None

    def get(self, name: str, agent_id: str) -> ServiceRecord | None:
        """The live record of ``name`` advertised by ``agent_id``."""
        with self._lock:
            self._expire(self.clock())
            return self._records.get((name, agent_id))

    def records_of(self, agent_id: str) -> list[ServiceRecord]:
        """The live records of one paglet."""
        with self._lock:
            self._expire(self.clock())
            return [self._records[(name, agent_id)] for name in self._by_agent.get(agent_id, ())]

    def statistics(self) -> RegistryStatistics:
        with self._lock:
            self._expire(self.clock())
            return RegistryStatistics(
                records=len(self._records),
                agents=len(self._by_agent),
                advertised=self._advertised,
                removed=self._removed,
                expired=self._expired,
                lookups=self._lookups,
            )

    def _changed(self, change: str, records: list[ServiceRecord]) -> None:
        """Tell the listener (lock not held); a failing listener never breaks the registry."""
        listener = self._on_change
        if listener is None:
            return
        for record in records:
            try:
                listener(change, record)
            except Exception:
                _log.exception("service registry listener failed on %s of %s", change, record.name)

    # --- internals (lock held) ----------------------------------------------------------------------------

    def _pop(self, key: _Key) -> ServiceRecord:
        record = self._records.pop(key)
        name, agent_id = key
        agents = self._by_name[name]
        del agents[agent_id]
        if not agents:
            del self._by_name[name]
        names = self._by_agent[agent_id]
        del names[name]
        if not names:
            del self._by_agent[agent_id]
        return record

    def _expire(self, now: float) -> list[ServiceRecord]:
        heap = self._expiry
        expired: list[ServiceRecord] = []
        while heap and heap[0][0] <= now:
            _, _, key, record = heapq.heappop(heap)
            if self._records.get(key) is record:  # not replaced or removed since
                expired.append(self._pop(key))
        self._expired += len(expired)
        return expired

    def _rebuild_expiry(self) -> None:
        live = [
            (record.expires_at, index, key, record)
            for index, (key, record) in enumerate(self._records.items())
            if record.expires_at is not None
        ]
        heapq.heapify(live)
        self._expiry = live
        self._sequence = len(self._records)


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
