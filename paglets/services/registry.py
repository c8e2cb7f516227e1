"""The per-host service registry (docs/implementing/services.md).

:class:`ServiceRegistry` holds the :class:`~paglets.services.contracts.ServiceRecord` s
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

Service lookups across the mesh (``scope=MESH``) live in ``paglets.services._mesh_lookup``.
"""

from __future__ import annotations

import heapq
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final, TypeAlias

import msgspec

from paglets.core.errors import HostError, LimitExceededError
from paglets.core.runtime_values import ServiceScope, require_enum
from paglets.remote.references import PagletProxyRef
from paglets.services.contracts import ServiceRecord
from paglets.wire.jsonbin import encode_json
from paglets.wire.limits import KiB

__all__ = [
    "MAX_CAPABILITY_NAME",
    "MAX_SERVICES_PER_AGENT",
    "MAX_SERVICE_CAPABILITIES",
    "MAX_SERVICE_METADATA",
    "MAX_SERVICE_NAME",
    "MAX_SERVICE_RECORDS",
    "RegistryStatistics",
    "ServiceRegistry",
    "check_record",
    "new_record",
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

# --- statistics -----------------------------------------------------------------------------------------


class RegistryStatistics(msgspec.Struct, frozen=True):
    """Counters of a :class:`ServiceRegistry` (totals since it was created)."""

    records: int
    agents: int
    advertised: int
    removed: int
    expired: int
    lookups: int


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
