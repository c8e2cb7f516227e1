"""Idle passivation: a paglet with nothing to do is saved and its process ended, until its next message.

A paglet class opts in with a class attribute ``idle_deactivate_after = <seconds>`` (``None`` opts out of
the host's default); the host's default is ``Host(idle_deactivate_after=<seconds>)`` (off when not given).
A paglet that is ready, has no message waiting or running and finished its last message (or started) that
long ago is deactivated with reason ``idle`` (its ``on_deactivating`` hook runs, its record always
activates on a message and queues); its next message activates it transparently: the sender gets the
handler's reply, never ``queued`` (``Persistence.deactivate(passivate=True)``), and messages keep their
order (those that came while it was being saved run first, from the record). So a host holds far more
paglets than processes. Resident services keep their own idle rule (``_resident.py``). Moves and
passivation exclude each other through the paglet's status (a paglet moving is not ``ready``; a move of a
paglet being saved fails with the usual "not ready" error and can be retried, and moves it from its
record once inactive).

One loop task checks the paglets every ``min(TICK, shortest / 2)`` seconds (at least ``MIN_TICK``).
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import sys
import time
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Final, Protocol

from paglets.core.errors import PagletError
from paglets.persistence.persistency import DeactivationPolicy, DeactivationRequest
from paglets.wire.control import ProxyRef

if TYPE_CHECKING:
    from paglets.core.context_events import ContextEventLog
    from paglets.runtime._controller import PagletController

__all__ = ["IDLE_ATTRIBUTE", "IdlePassivation"]

_log = logging.getLogger("paglets.runtime")

#: The class attribute a paglet class sets to its idle timeout in seconds (``None``: never passivated).
IDLE_ATTRIBUTE: Final = "idle_deactivate_after"
#: Longest pause between two checks, and the shortest.
TICK: Final = 1.0
MIN_TICK: Final = 0.05

_UNSET: Final = object()


class _Agents(Protocol):
    @property
    def controllers(self) -> dict[str, PagletController]: ...


class _Records(Protocol):
    async def deactivate(
        self, agent_id: str, request: DeactivationRequest | None, *, passivate: bool = False
    ) -> ProxyRef: ...
    def stored(self, agent_id: str) -> bool: ...
    async def activate(self, agent_id: str) -> ProxyRef: ...


class IdlePassivation:
    """See the module docstring."""

    def __init__(
        self,
        *,
        default: float | None,
        agents: _Agents,
        records: _Records,
        is_resident: Callable[[str], bool],
        events: ContextEventLog,
        spawn: Callable[[Coroutine[Any, Any, None]], object],
    ) -> None:
        self._default = default
        self._agents = agents
        self._records = records
        self._is_resident = is_resident
        self._events = events
        self._spawn = spawn
        self._by_class: dict[str, float | None] = {}
        self._passivating: dict[str, asyncio.Event] = {}
        self._importing: set[str] = set()
        #: Paglets this host passivated (and not activated since, as far as it knows).
        self.passivated: set[str] = set()
        self.passivated_total = 0

    def start(self) -> None:
        self._spawn(self._tick())

    def timeout_for(self, agent_class: str) -> float | None:
        """Seconds of idleness after which paglets of ``agent_class`` are passivated (``None``: never).
        A class whose module this process has not imported yet is imported once in a worker thread (the
        paglet processes import it from the same ``sys.path`` anyway); until then the default applies."""
        if agent_class in self._by_class:
            return self._by_class[agent_class]
        module_name = agent_class.partition(":")[0]
        if module_name in sys.modules:
            self._by_class[agent_class] = self._read_class(agent_class)
            return self._by_class[agent_class]
        if agent_class not in self._importing:
            self._importing.add(agent_class)
            self._spawn(self._import(agent_class, module_name))
        return self._default

    async def _import(self, agent_class: str, module_name: str) -> None:
        try:
            await asyncio.get_running_loop().run_in_executor(None, importlib.import_module, module_name)
        except Exception:  # a class this process cannot import: the host's default applies
            self._by_class[agent_class] = self._default
        else:
            self._by_class[agent_class] = self._read_class(agent_class)
        finally:
            self._importing.discard(agent_class)

    def _read_class(self, agent_class: str) -> float | None:
        module_name, _, qualname = agent_class.partition(":")
        module = sys.modules.get(module_name)
        if module is None:
            return self._default
        cls: object = module
        for part in qualname.split("."):
            cls = getattr(cls, part, None)
        value = getattr(cls, IDLE_ATTRIBUTE, _UNSET) if cls is not None else _UNSET
        if value is _UNSET:
            return self._default
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            _log.warning("%s.%s must be a positive number of seconds or None", agent_class, IDLE_ATTRIBUTE)
            return self._default
        return float(value)

    async def wake(self, agent_id: str) -> None:
        """Activate ``agent_id`` if this host passivated it (before a move: a passivated paglet moves as if
        it had stayed active)."""
        passivating = self._passivating.get(agent_id)
        if passivating is not None:  # a passivation under way finishes first
            await passivating.wait()
        if agent_id in self.passivated and agent_id not in self._agents.controllers:
            if self._records.stored(agent_id):
                await self._records.activate(agent_id)
            self.passivated.discard(agent_id)

    def _next_wait(self) -> float:
        known = [t for t in self._by_class.values() if t is not None]
        if self._default is not None:
            known.append(self._default)
        shortest = min(known, default=TICK * 2)
        return max(MIN_TICK, min(TICK, shortest / 2))

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self._next_wait())
            now = time.monotonic()
            for agent_id, ctrl in list(self._agents.controllers.items()):
                if agent_id in self._passivating or self._is_resident(agent_id):
                    continue
                limit = self.timeout_for(ctrl.agent_class)
                if limit is not None and _idle(ctrl, now, limit):
                    self._passivating[agent_id] = asyncio.Event()
                    self._spawn(self._passivate(ctrl, limit))

    async def _passivate(self, ctrl: PagletController, limit: float) -> None:
        agent_id = ctrl.agent_id
        try:
            if not _idle(ctrl, time.monotonic(), limit):
                return
            request = DeactivationRequest(
                reason="idle",
                source="idle-passivation",
                policy=DeactivationPolicy(
                    activate_on_message=True, queue_messages_when_inactive=True, activate_on_startup=False
                ),
            )
            self.passivated.add(agent_id)
            try:
                await self._records.deactivate(agent_id, request, passivate=True)
            except PagletError as exc:  # it became busy, moved or ended meanwhile: try again later
                self.passivated.discard(agent_id)
                _log.info("idle passivation of %s did not happen: %s", agent_id, exc)
                return
            self.passivated_total += 1
            self._events.emit(
                "paglet-passivated",
                agent_id=agent_id,
                class_name=ctrl.agent_class,
                data={"idle_after": limit},
            )
        finally:
            done = self._passivating.pop(agent_id, None)
            if done is not None:
                done.set()


def _idle(ctrl: PagletController, now: float, limit: float) -> bool:
    if ctrl.status != "ready":
        return False
    with ctrl.lock:
        if ctrl.mailbox.in_flight or len(ctrl.mailbox):
            return False
    return now - ctrl.last_activity >= limit
