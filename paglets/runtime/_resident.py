"""Resident services: paglets the host keeps available by name (docs/operations/launch.md).

A resident service is declared (from ``launch.toml`` or directly) with its contract, agent id, lifecycle
and idle timeout. Its service record is advertised at declaration, *before* any process exists, with the
metadata key ``paglets.resident_service``. ``eager`` services start at once; ``lazy`` ones on the first
message to their id, on a lease, or on ``ensure_started``. Starting activates the paglet's inactive record
if there is one, else creates it with the configured state (one start at a time per service). A lazy
service with nothing in flight, no live lease and no activity for ``idle_timeout`` seconds is deactivated
(it activates again on the next message); its record stays advertised throughout.

Leases (``POST /services/leases``) pin a lazy service for their TTL; expired leases are dropped by the
same timer that checks idleness (one loop task per host, waking at most once a second).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from paglets.core.errors import HostError, InvalidAgentError, PagletError
from paglets.core.runtime_values import ResidentLifecycle, ServiceScope
from paglets.persistence.persistency import DeactivationPolicy, DeactivationRequest
from paglets.services.contracts import ServiceContract, ServiceRecord
from paglets.services.resident import MAX_LEASE_TTL, RESIDENT_SERVICE_METADATA_KEY

if TYPE_CHECKING:
    from paglets.runtime.host import Host

__all__ = ["ResidentDeclaration", "ResidentServices"]

_log = logging.getLogger("paglets.runtime")

#: Longest pause of the idle and lease timer.
TICK: Final = 1.0
#: Leases one host keeps at once.
MAX_LEASES: Final = 10_000


@dataclass(frozen=True, slots=True)
class ResidentDeclaration:
    """One resident service as the host runs it (names are ``module:QualName``)."""

    agent_id: str
    agent_class: str
    state_class: str
    contract: ServiceContract
    scope: ServiceScope = ServiceScope.LOCAL
    lifecycle: ResidentLifecycle = ResidentLifecycle.LAZY
    idle_timeout: float = 30.0
    state: dict[str, Any] = field(default_factory=dict)
    init: Any = None


@dataclass(slots=True)
class _Lease:
    lease_id: str
    agent_id: str
    service_name: str
    expires_at: float


class ResidentServices:
    """See the module docstring. Lives on the host's event loop."""

    def __init__(self, host: Host) -> None:
        self._host = host
        self._declared: dict[str, ResidentDeclaration] = {}
        self._starting: dict[str, asyncio.Lock] = {}
        self._leases: dict[str, _Lease] = {}
        self._task: asyncio.Task[None] | None = None

    def is_resident(self, agent_id: str) -> bool:
        return agent_id in self._declared

    def declarations(self) -> list[ResidentDeclaration]:
        return list(self._declared.values())

    # --- declaration ---------------------------------------------------------------------------------

    async def declare(self, declaration: ResidentDeclaration, *, start: bool = True) -> ServiceRecord:
        """Advertise a resident service now; start it if it is eager (unless ``start`` is false: the
        caller then starts it with :meth:`start_eager` once every service is declared)."""
        host = self._host
        self._declared[declaration.agent_id] = declaration
        metadata = declaration.contract.advertise_metadata(
            {
                RESIDENT_SERVICE_METADATA_KEY: {
                    "agent_id": declaration.agent_id,
                    "agent_class_name": declaration.agent_class,
                    "lifecycle": declaration.lifecycle.value,
                    "idle_timeout": declaration.idle_timeout,
                }
            }
        )
        record = host.services.registry.advertise_service(
            declaration.agent_id,
            declaration.contract.name,
            host_name=host.name,
            host_url=host.address,
            capabilities=declaration.contract.capabilities,
            metadata=metadata,
            scope=declaration.scope,
            ttl=None,
        )
        host.events.emit(
            "resident-service-declare",
            agent_id=declaration.agent_id,
            class_name=declaration.agent_class,
            service_name=declaration.contract.name,
            data={"lifecycle": declaration.lifecycle.value},
        )
        if start:
            await self.start_eager(declaration.agent_id)
        if self._task is None:
            self._task = self._host.tasks.spawn(self._tick())  # a failure is reported, never lost
        return record

    async def start_eager(self, agent_id: str) -> None:
        """Start the declared service ``agent_id`` if it is eager (a failure is logged and reported)."""
        declaration = self._declared.get(agent_id)
        if declaration is None or declaration.lifecycle is not ResidentLifecycle.EAGER:
            return
        try:
            await self.ensure_started(agent_id)
        except PagletError:
            pass  # logged and reported as an event by ensure_started; the host starts without it

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    # --- starting ------------------------------------------------------------------------------------

    async def ensure_started(self, agent_id: str) -> None:
        """Make a resident service's paglet active (activate its record or create it)."""
        declaration = self._declared.get(agent_id)
        if declaration is None:
            raise InvalidAgentError(f"{agent_id} is not a resident service of host {self._host.name}")
        lock = self._starting.setdefault(agent_id, asyncio.Lock())
        async with lock:
            host = self._host
            ctrl = host.manager.controllers.get(agent_id)
            if ctrl is not None and ctrl.status in ("ready", "moving", "starting"):
                return
            if ctrl is not None and ctrl.status == "crashed":
                await host.manager.dispose(agent_id)
            try:
                if host.persistence.summary(agent_id) is not None:
                    await host.persistence.activate(agent_id)
                    kind = "resident-service-activate"
                else:
                    from paglets.runtime.host import decode_creation_state

                    state = decode_creation_state(declaration.state_class, declaration.state or None)
                    await host.create_async(
                        agent_class=declaration.agent_class,
                        state_class=declaration.state_class,
                        state=state,
                        init=declaration.init,
                        agent_id=agent_id,
                    )
                    kind = "resident-service-create"
            except PagletError as exc:
                _log.error("resident service %s failed to start: %s", agent_id, exc)
                host.events.emit(
                    "resident-service-failed",
                    agent_id=agent_id,
                    class_name=declaration.agent_class,
                    service_name=declaration.contract.name,
                    error=str(exc),
                )
                raise
            host.events.emit(
                kind,
                agent_id=agent_id,
                class_name=declaration.agent_class,
                service_name=declaration.contract.name,
            )

    # --- leases --------------------------------------------------------------------------------------

    async def acquire_lease(self, agent_id: str, service_name: str, ttl: float) -> dict[str, Any]:
        if not 0 < ttl <= MAX_LEASE_TTL:
            raise HostError(f"lease ttl must be in (0, {MAX_LEASE_TTL}] seconds, got {ttl}")
        if len(self._leases) >= MAX_LEASES:
            raise HostError(f"host {self._host.name} holds {MAX_LEASES} leases already")
        if not self.is_resident(agent_id) and agent_id not in self._host.manager.controllers:
            raise InvalidAgentError(f"no service paglet {agent_id} on host {self._host.name}")
        lease = _Lease(uuid.uuid4().hex, agent_id, service_name, time.time() + ttl)
        self._leases[lease.lease_id] = lease  # recorded first: an idle check running now sees it
        if self.is_resident(agent_id):
            try:
                await self.ensure_started(agent_id)
            except BaseException:
                self._leases.pop(lease.lease_id, None)
                raise
        self._host.events.emit(
            "service-lease-acquire",
            agent_id=agent_id,
            service_name=service_name,
            data={"lease_id": lease.lease_id},
        )
        return {"lease_id": lease.lease_id, "expires_at": lease.expires_at}

    def release_lease(self, lease_id: str) -> bool:
        lease = self._leases.pop(lease_id, None)
        if lease is None:
            return False
        self._host.events.emit(
            "service-lease-release",
            agent_id=lease.agent_id,
            service_name=lease.service_name,
            data={"lease_id": lease_id},
        )
        return True

    # --- idleness ------------------------------------------------------------------------------------

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self._next_wait())
            now = time.time()
            for lease_id, lease in list(self._leases.items()):
                if lease.expires_at <= now:
                    del self._leases[lease_id]
                    self._host.events.emit(
                        "service-lease-expire",
                        agent_id=lease.agent_id,
                        service_name=lease.service_name,
                        data={"lease_id": lease_id},
                    )
            for declaration in list(self._declared.values()):
                if declaration.lifecycle is ResidentLifecycle.LAZY and self._idle(declaration):
                    await self._deactivate_idle(declaration)

    def _next_wait(self) -> float:
        timeouts = [d.idle_timeout for d in self._declared.values() if d.lifecycle is ResidentLifecycle.LAZY]
        shortest = min(timeouts, default=TICK)
        return max(0.05, min(TICK, shortest / 2 if shortest > 0 else TICK))

    def _idle(self, declaration: ResidentDeclaration) -> bool:
        ctrl = self._host.manager.controllers.get(declaration.agent_id)
        if ctrl is None or ctrl.status != "ready":
            return False
        if ctrl.mailbox.in_flight or len(ctrl.mailbox):
            return False
        if any(lease.agent_id == declaration.agent_id for lease in self._leases.values()):
            return False
        return time.monotonic() - ctrl.last_activity >= declaration.idle_timeout

    async def _deactivate_idle(self, declaration: ResidentDeclaration) -> None:
        lock = self._starting.setdefault(declaration.agent_id, asyncio.Lock())
        async with lock:  # not while the service is being started (or leased meanwhile)
            if self._idle(declaration):
                await self._deactivate(declaration)

    async def _deactivate(self, declaration: ResidentDeclaration) -> None:
        request = DeactivationRequest(
            reason="idle",
            source="resident-service-manager",
            policy=DeactivationPolicy(
                activate_on_message=True, queue_messages_when_inactive=True, activate_on_startup=False
            ),
        )
        try:
            await self._host.persistence.deactivate(declaration.agent_id, request)
        except PagletError as exc:
            _log.warning("idle deactivation of %s failed: %s", declaration.agent_id, exc)
            return
        self._host.events.emit(
            "resident-service-idle-deactivate",
            agent_id=declaration.agent_id,
            class_name=declaration.agent_class,
            service_name=declaration.contract.name,
        )
