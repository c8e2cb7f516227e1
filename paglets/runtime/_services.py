"""A host's service directory: the local registry and mesh lookups (docs/implementing/services.md).

``HostServices`` owns the host's ``ServiceRegistry`` and its ``MeshServiceLookup`` (parallel, cached
fan-out to online peers). The ``Host`` facade, the HTTP routes and the paglet host calls forward to it.

Who may advertise: a paglet that lives on this host, from the moment its process exists and its starting
hook runs (``on_creation``, ``on_activation``: the usual place to publish a service) until it leaves.
Records leave the registry when their paglet leaves the host, deactivates, crashes, is disposed, or fails
to start (resident service records stay: their paglet is started again on demand).

A paglet *prepared* on this host by a move that is not committed yet (its ``on_arrival``/``on_clone`` ran,
the source still has the live copy) advertises into a list held with its process (``held``): nothing is
published, so a lookup never finds a copy that may still be aborted, nor two copies of one paglet. The
commit publishes the held records (``publish``); an abort drops them with the process.

Every change of the registry is reported as a ``service-advertise`` or ``service-remove`` context event.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

from paglets.core.errors import InvalidAgentError, LimitExceededError
from paglets.core.runtime_values import ServiceScope
from paglets.services._mesh_lookup import MeshServiceLookup, http_fetch
from paglets.services.contracts import ServiceRecord
from paglets.services.registry import MAX_SERVICES_PER_AGENT, ServiceRegistry, new_record
from paglets.services.resident import RESIDENT_SERVICE_METADATA_KEY

__all__ = ["HostServices"]

#: ``emit(kind, *, agent_id, service_name, data)``: the host's context-event emitter.
Emit = Callable[..., Any]


def _scope(scope: ServiceScope | str) -> ServiceScope:
    return scope if isinstance(scope, ServiceScope) else ServiceScope(str(scope))


class HostServices:
    """See the module docstring."""

    def __init__(
        self,
        *,
        host_name: Callable[[], str],
        host_address: Callable[[], str],
        is_active: Callable[[str], bool],
        peers: Callable[[], list[str]],
        emit: Emit | None = None,
    ) -> None:
        self.registry = ServiceRegistry(on_change=self._changed)
        self.mesh = MeshServiceLookup()
        self._host_name = host_name
        self._host_address = host_address
        self._is_active = is_active
        self._peers = peers
        self._emit = emit
        self._fetch: Any = None

    def bind_client(self, client: Any) -> None:
        """Use ``client`` (the host's ``AsyncHttpClient``) for mesh lookups."""
        self._fetch = http_fetch(client)

    async def aclose(self) -> None:
        await self.mesh.aclose()

    def _changed(self, change: str, record: ServiceRecord) -> None:
        if self._emit is None:
            return
        if change == "advertise":
            self._emit(
                "service-advertise",
                agent_id=record.proxy.agent_id,
                service_name=record.name,
                data=record.to_wire(),
            )
        else:
            self._emit("service-remove", agent_id=record.proxy.agent_id, service_name=record.name)

    def advertise(
        self,
        agent_id: str,
        name: str,
        *,
        capabilities: Collection[str] | None = None,
        metadata: dict[str, Any] | None = None,
        scope: ServiceScope | str = ServiceScope.LOCAL,
        ttl: float | None = None,
        held: list[ServiceRecord] | None = None,
    ) -> ServiceRecord:
        """Advertise a service of ``agent_id`` (a paglet living here, ``InvalidAgentError`` otherwise);
        with ``held`` (a prepared paglet's list) the record waits there for ``publish``."""
        metadata = dict(metadata or {})
        existing = self.registry.get(name, agent_id)
        if existing is not None and RESIDENT_SERVICE_METADATA_KEY in existing.metadata:
            # a resident service re-advertising itself stays resident (its record survives deactivation)
            metadata[RESIDENT_SERVICE_METADATA_KEY] = existing.metadata[RESIDENT_SERVICE_METADATA_KEY]
        record = new_record(
            agent_id,
            name,
            host_name=self._host_name(),
            host_url=self._host_address(),
            capabilities=tuple(capabilities or ()),
            metadata=metadata,
            scope=_scope(scope),
            ttl=ttl,
            now=self.registry.clock(),
        )
        if held is not None:
            kept = [r for r in held if r.name != name]
            if len(kept) >= MAX_SERVICES_PER_AGENT:
                raise LimitExceededError(
                    f"paglet {agent_id} already advertises {MAX_SERVICES_PER_AGENT} services", fault="remote"
                )
            held[:] = [*kept, record]
            return record
        if not self._is_active(agent_id):
            raise InvalidAgentError(f"no active paglet {agent_id} on host {self._host_name()}")
        return self.registry.advertise(record)

    def publish(self, agent_id: str, held: list[ServiceRecord]) -> None:
        """A prepared paglet went live here: publish what it advertised while it was prepared."""
        for record in held:
            if record.proxy.agent_id == agent_id:
                self.registry.advertise(record)

    def unadvertise(
        self, name: str, *, agent_id: str | None = None, held: list[ServiceRecord] | None = None
    ) -> list[ServiceRecord]:
        if held is not None:
            removed = [r for r in held if r.name == name]
            held[:] = [r for r in held if r.name != name]
            return removed
        return self.registry.unadvertise(name, agent_id)

    def forget_agent(self, agent_id: str) -> None:
        """The paglet left or stopped: drop its records (resident service records stay)."""
        self.registry.remove_agent(agent_id, keep=lambda r: RESIDENT_SERVICE_METADATA_KEY in r.metadata)

    async def lookup(
        self,
        name: str | None = None,
        *,
        capability: str | None = None,
        scope: ServiceScope | str = ServiceScope.LOCAL,
    ) -> list[ServiceRecord]:
        local = self.registry.lookup(name, capability=capability)
        if _scope(scope) is not ServiceScope.MESH or self._fetch is None:
            return local
        peers = [url for url in self._peers() if url.rstrip("/") != self._host_address().rstrip("/")]
        if not peers:
            return local
        return await self.mesh.lookup(local, peers, self._fetch, name=name, capability=capability)
