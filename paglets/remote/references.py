"""Durable references to paglets on any host."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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
    def from_wire(cls, data: dict[str, Any]) -> PagletProxyRef:
        return cls(host_url=str(data["host_url"]), agent_id=str(data["agent_id"]))

    @classmethod
    def from_proxy(cls, proxy: Any) -> PagletProxyRef:
        """A reference to the paglet a ``PagletProxy`` (or anything with the same fields) names."""
        return cls(host_url=str(proxy.host_url), agent_id=str(proxy.agent_id))
