"""Durable references to paglets on any host."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from paglets.remote.proxy import PagletProxy

__all__ = ["PagletProxyRef"]


@dataclass(frozen=True, slots=True)
class PagletProxyRef:
    """A (host URL, agent id) pair naming a paglet; allowed as a state field.

    A reference is not updated when the paglet moves: use the proxy returned by the move.
    """

    host_url: str
    agent_id: str

    def to_wire(self) -> dict[str, str]:
        return {"host_url": self.host_url, "agent_id": self.agent_id}

    @classmethod
    def from_wire(cls, payload: dict[str, Any]) -> PagletProxyRef:
        return cls(host_url=str(payload["host_url"]), agent_id=str(payload["agent_id"]))

    @classmethod
    def from_proxy(cls, proxy: Any) -> PagletProxyRef:
        """A reference to the paglet a ``PagletProxy`` (or anything with the same fields) names."""
        return cls(host_url=str(proxy.host_url), agent_id=str(proxy.agent_id))

    def resolve(self, context_or_client: Any = None) -> PagletProxy:
        """A proxy to the paglet: through a ``PagletContext``'s host (same-host calls skip HTTP), through
        the given ``HostClient``, or else through the shared default client, which takes its API key
        from ``PAGLETS_API_KEY``."""
        from paglets.core.agent import PagletContext
        from paglets.remote.client import HostClient
        from paglets.remote.proxy import PagletProxy

        if isinstance(context_or_client, PagletContext):
            proxy: PagletProxy = context_or_client.host.remote_proxy(self.host_url, self.agent_id)
            return proxy
        client = context_or_client if isinstance(context_or_client, HostClient) else None
        return PagletProxy(self.host_url, self.agent_id, client)
