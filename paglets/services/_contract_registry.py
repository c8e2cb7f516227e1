"""``paglets.services.contracts.ServiceRegistry``: paglets 2.0's per-host registry API.

2.0 code builds registries with keyword-only ``advertise(host_name=..., host_url=..., name=..., proxy=...)``,
looks one record up with ``lookup(name, capability)`` and several with ``lookup_all``. This class offers
exactly that API over the bounded, indexed registry the runtime uses
(:class:`paglets.services.registry.ServiceRegistry`), so both agree on keys, bounds and expiry.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from typing import Any

from paglets.core.errors import HostError
from paglets.core.runtime_values import ServiceScope, require_enum
from paglets.remote.references import PagletProxyRef
from paglets.services.contracts import ServiceRecord
from paglets.services.registry import ServiceRegistry as _Registry

__all__ = ["ServiceRegistry"]


class ServiceRegistry:
    """Records keyed by (service name, agent id); a record whose ``ttl`` passed is dropped on read."""

    def __init__(self) -> None:
        self._registry = _Registry()

    def advertise(
        self,
        *,
        host_name: str,
        host_url: str,
        name: str,
        proxy: PagletProxyRef,
        capabilities: Iterable[str] | None = None,
        metadata: dict[str, Any] | None = None,
        scope: ServiceScope = ServiceScope.LOCAL,
        ttl: float | None = None,
    ) -> ServiceRecord:
        """Add (or replace) the record of ``name`` offered by ``proxy``'s paglet; returns it."""
        require_enum(ServiceScope, scope, "scope")
        now = time.time()
        expires_at: float | None = None
        if ttl is not None:
            if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or not math.isfinite(ttl):
                raise HostError(f"ttl must be a finite number of seconds, got {ttl!r}")
            expires_at = now + float(ttl)
        record = ServiceRecord(
            name=name,
            proxy=proxy,
            capabilities=tuple(capabilities or ()),
            metadata=dict(metadata or {}),
            scope=scope,
            host_name=host_name,
            host_url=host_url,
            advertised_at=now,
            expires_at=expires_at,
        )
        return self._registry.advertise(record)

    def unadvertise(self, name: str, agent_id: str | None = None) -> list[ServiceRecord]:
        return self._registry.unadvertise(name, agent_id)

    def record(self, name: str, agent_id: str) -> ServiceRecord | None:
        return self._registry.get(name, agent_id)

    def remove_agent(
        self, agent_id: str, *, keep: Callable[[ServiceRecord], bool] | None = None
    ) -> list[ServiceRecord]:
        return self._registry.remove_agent(agent_id, keep=keep)

    def lookup(self, name: str, capability: str | None = None) -> ServiceRecord | None:
        """The first live record of ``name`` (offering ``capability``), or None."""
        return self._registry.lookup_one(name, capability=capability)

    def lookup_all(
        self, name: str | None = None, capability: str | None = None, scope: ServiceScope | None = None
    ) -> list[ServiceRecord]:
        """Every live record matching the filters (None: any), in advertisement order."""
        if scope is not None:
            require_enum(ServiceScope, scope, "scope")
        return self._registry.lookup(name, capability=capability, scope=scope)
