"""A host's service directory: the local registry and mesh lookups (contract §1.16, §7.4).

``HostServices`` owns the host's ``ServiceRegistry`` and its ``MeshServiceLookup`` (parallel, cached
fan-out to online peers). The ``Host`` facade and the paglet host calls forward to it; records leave the
registry when their paglet leaves the host, deactivates, crashes or is disposed (resident service records
stay: their paglet is started again on demand).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

from paglets.core.errors import InvalidAgentError
from paglets.core.runtime_values import ServiceScope
from paglets.services.contracts import ServiceRecord
from paglets.services.registry import MeshServiceLookup, ServiceRegistry, http_fetch
from paglets.services.resident import RESIDENT_SERVICE_METADATA_KEY

__all__ = ["HostServices"]


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
    ) -> None:
        self.registry = ServiceRegistry()
        self.mesh = MeshServiceLookup()
        self._host_name = host_name
        self._host_address = host_address
        self._is_active = is_active
        self._peers = peers
        self._fetch: Any = None

    def bind_client(self, client: Any) -> None:
        """Use ``client`` (the host's ``AsyncHttpClient``) for mesh lookups."""
        self._fetch = http_fetch(client)

    async def aclose(self) -> None:
        await self.mesh.aclose()

    def advertise(
        self,
        agent_id: str,
        name: str,
        *,
        capabilities: Collection[str] | None = None,
        metadata: dict[str, Any] | None = None,
        scope: ServiceScope | str = ServiceScope.LOCAL,
        ttl: float | None = None,
    ) -> ServiceRecord:
        if not self._is_active(agent_id):
            raise InvalidAgentError(f"no active paglet {agent_id} on host {self._host_name()}")
        return self.registry.advertise_service(
            agent_id,
            name,
            host_name=self._host_name(),
            host_url=self._host_address(),
            capabilities=tuple(capabilities or ()),
            metadata=dict(metadata or {}),
            scope=_scope(scope),
            ttl=ttl,
        )

    def unadvertise(self, name: str, *, agent_id: str | None = None) -> list[ServiceRecord]:
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
