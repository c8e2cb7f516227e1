"""Resident services: the value types (docs/implementing/services.md, docs/operations/launch.md).

A paglet class declares the services its host should keep available with ``RESIDENT_SERVICES`` (a tuple
of :class:`ResidentServiceSpec`); the host advertises their records before any process exists and starts
the paglet eagerly or on first use (``ResidentLifecycle``), and stops an idle lazy one after
``idle_timeout`` seconds. That lifecycle management lives in the runtime; this module holds only the
values:

- :class:`ResidentServiceSpec` — frozen, validated on construction (``TypeError`` for a value of the wrong
  type or a raw string where an enum member is expected, ``ValueError`` for a bad number or id).
- :class:`ServiceLease` — a lease that pins a lazy service for a while (``POST /services/leases``). Used
  as a context manager it returns its :class:`~paglets.services.contracts.ServiceHandle` and releases the
  lease on exit. :meth:`ServiceLease.release` posts ``/services/leases/{id}/release`` at most once (a
  second call, or a call racing with the first, does nothing); a lease that is never released simply
  expires on its host at ``expires_at``.

The metadata key ``"paglets.resident_service"`` (``RESIDENT_SERVICE_METADATA_KEY``) marks the record of a
resident service: ``{agent_id, agent_class_name, lifecycle, idle_timeout}``.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import quote

from paglets.core.errors import SerializationError
from paglets.core.runtime_values import ResidentLifecycle, ServiceScope, require_enum
from paglets.services.contracts import ServiceContract, ServiceHandle

if TYPE_CHECKING:
    from paglets.remote.client import HostClient

__all__ = [
    "DEFAULT_IDLE_TIMEOUT",
    "DEFAULT_LEASE_TTL",
    "MAX_LEASE_TTL",
    "RESIDENT_SERVICE_METADATA_KEY",
    "ResidentServiceSpec",
    "ServiceLease",
]

#: Record metadata key describing a resident service.
RESIDENT_SERVICE_METADATA_KEY: Final = "paglets.resident_service"

#: Seconds a lazy resident service may sit idle (nothing in flight, no lease) before it is deactivated.
DEFAULT_IDLE_TIMEOUT: Final = 30.0

#: Seconds a lease pins a service unless the caller asks for another duration.
DEFAULT_LEASE_TTL: Final = 60.0

#: Longest lease (seconds). A lease pins a paglet in memory; a day is far beyond any real call sequence,
#: and a forgotten lease must still end.
MAX_LEASE_TTL: Final = 24 * 3600.0


@dataclass(frozen=True, slots=True)
class ResidentServiceSpec:
    """A service the host keeps available for a paglet class (see the module docstring).

    ``agent_id`` fixes the paglet's id (None: the host derives one); ``singleton`` asks for one paglet per
    host; ``state`` is the wire dict of the initial state used when the host creates the paglet.
    """

    contract: ServiceContract
    scope: ServiceScope = ServiceScope.LOCAL
    lifecycle: ResidentLifecycle = ResidentLifecycle.LAZY
    agent_id: str | None = None
    singleton: bool = True
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT
    state: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.contract, ServiceContract):
            raise TypeError(f"contract must be a ServiceContract, got {type(self.contract).__qualname__}")
        require_enum(ServiceScope, self.scope, "scope")
        require_enum(ResidentLifecycle, self.lifecycle, "lifecycle")
        if self.agent_id is not None and (not isinstance(self.agent_id, str) or not self.agent_id.strip()):
            raise ValueError("agent_id must be None or a non-empty string")
        if not isinstance(self.singleton, bool):
            raise TypeError("singleton must be a bool")
        timeout = self.idle_timeout
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
            raise TypeError("idle_timeout must be a number of seconds")
        if not math.isfinite(timeout) or timeout < 0:
            raise ValueError(f"idle_timeout must be a finite, non-negative number, got {timeout!r}")
        if not isinstance(self.state, dict) or not all(isinstance(k, str) for k in self.state):
            raise TypeError("state must be a dict with string keys (a state wire dict)")
        object.__setattr__(self, "idle_timeout", float(timeout))

    @property
    def service_name(self) -> str:
        return self.contract.name


def _lease_ttl(ttl: float) -> float:
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or not math.isfinite(ttl) or ttl <= 0:
        raise ValueError(f"lease ttl must be a positive number of seconds, got {ttl!r}")
    if ttl > MAX_LEASE_TTL:
        raise ValueError(f"lease ttl above MAX_LEASE_TTL ({MAX_LEASE_TTL:g} s)")
    return float(ttl)


@dataclass(slots=True)
class ServiceLease:
    """A lease on the service behind ``handle``, held on ``host_url`` until ``expires_at`` (wall clock).

    ``client`` posts the release (None: a client made for that call and closed after it).
    """

    handle: ServiceHandle
    lease_id: str
    host_url: str
    expires_at: float
    client: HostClient | None = None
    _released: bool = field(default=False, init=False, repr=False, compare=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False, compare=False)

    @classmethod
    def acquire(
        cls,
        handle: ServiceHandle,
        *,
        ttl: float = DEFAULT_LEASE_TTL,
        client: HostClient | None = None,
        timeout: float | None = None,
    ) -> ServiceLease:
        """Ask the service's host for a lease (``POST /services/leases``) and return it."""
        host_url = handle.host_url.rstrip("/")
        body = {"agent_id": handle.agent_id, "service_name": handle.record.name, "ttl": _lease_ttl(ttl)}
        reply = _post(client, f"{host_url}/services/leases", body, timeout)
        lease_id = reply.get("lease_id") if isinstance(reply, dict) else None
        expires_at = reply.get("expires_at") if isinstance(reply, dict) else None
        if (
            not isinstance(lease_id, str)
            or not lease_id
            or isinstance(expires_at, bool)
            or not isinstance(expires_at, (int, float))
        ):
            raise SerializationError(f"malformed lease answer from {host_url}: {reply!r}")
        return cls(handle, lease_id, host_url, float(expires_at), client)

    @property
    def expired(self) -> bool:
        return self.expires_at <= time.time()

    @property
    def released(self) -> bool:
        return self._released

    def release(self, *, timeout: float | None = None) -> bool:
        """Release the lease on its host; True if this call did, False if it was released before.

        The lease counts as released even when the request fails (the error is raised): it expires on
        its host anyway.
        """
        with self._lock:
            if self._released:
                return False
            self._released = True
        url = f"{self.host_url.rstrip('/')}/services/leases/{quote(self.lease_id, safe='')}/release"
        _post(self.client, url, {}, timeout)
        return True

    def __enter__(self) -> ServiceHandle:
        return self.handle

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def _post(client: HostClient | None, url: str, body: dict[str, Any], timeout: float | None) -> Any:
    if client is not None:
        return client.post_json(url, body, timeout=timeout)
    from paglets.remote.client import HostClient

    own = HostClient()
    try:
        return own.post_json(url, body, timeout=timeout)
    finally:
        own.close()
