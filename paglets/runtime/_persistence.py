"""Deactivation, activation and messages to inactive paglets (docs/implementing/persistence.md).

``Persistence`` sits between the host and its ``RecordStore`` (``paglets/persistence/_records.py``):

- **Deactivate**: the paglet is paused, ``deactivation_policy`` and ``on_deactivating`` run in its process
  (or, self-initiated, in the calling thread), its resources are cleaned up, its state is snapshotted and
  written as a durable record *before* its process ends; messages still waiting in its mailbox are
  appended to the record's queue, in order, so nothing is lost.
- **Activate**: a process is started from the record, ``on_activation`` runs, then ``run()``; only then
  is the record deleted (a crash in between leaves the record, and the active copy died with the host:
  never two copies, never none). The messages queued in the record enter the paglet's mailbox in one
  step as soon as its process exists, so they come before anything sent later (the message that
  activated it, messages sent while its activation hook runs, which are accepted and wait); from there
  the mailbox's rule orders them (priority, then arrival). Their results are dropped.
- **Messages to inactive paglets** follow the record's policy: activate and deliver, queue (an O(message)
  append) and answer ``{"queued": true, "message_id": ...}``, or refuse with ``PagletInactiveError``.
- **Timed activation** uses one loop timer for the earliest ``activate_at`` (no polling).
- **Shutdown** deactivates every paglet in parallel within a budget; a paglet busy in a handler still
  gets its state saved (snapshot under the paglet lock) with the interrupted message re-queued first,
  reported as a ``message-requeued`` event.

Blocking disk work runs in the default executor; the store serialises per record.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
import time
import weakref
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Protocol

from paglets.artifacts import PagletFileRef
from paglets.core.errors import (
    HostError,
    InvalidAgentError,
    PagletError,
    PagletInactiveError,
)
from paglets.core.events import PersistencyEvent
from paglets.persistence._recordformat import RecordSummary, StoredMessage, StoredRecord
from paglets.persistence._records import RecordStore
from paglets.persistence.persistency import DeactivationPolicy, DeactivationRequest
from paglets.runtime._checkpoints import checkpoint_mark
from paglets.runtime._controller import MailboxItem, PagletController, Snapshot
from paglets.runtime._routing import encode_message_dict, message_dict
from paglets.wire.control import ProxyRef

if TYPE_CHECKING:
    from paglets.core.context_events import ContextEventLog
    from paglets.runtime._paglets import Timeouts
    from paglets.wire.encoded import EncodedMessage

__all__ = ["Persistence"]

_log = logging.getLogger("paglets.runtime")

#: Activations of ``activate_on_startup`` records run at most this many at a time.
STARTUP_ACTIVATIONS: Final = 8
#: Seconds a busy paglet's state snapshot may take at shutdown before the paglet is stopped unsaved.
SHUTDOWN_SNAPSHOT_WAIT: Final = 2.0


class Agents(Protocol):
    """The active paglets (``PagletManager``)."""

    @property
    def controllers(self) -> dict[str, PagletController]: ...
    @property
    def timeouts(self) -> Timeouts: ...
    def ready(self, agent_id: str) -> PagletController: ...
    def detach(self, ctrl: PagletController) -> list[MailboxItem]: ...
    async def release_when_idle(self, ctrl: PagletController) -> None: ...
    async def start_from_state(
        self,
        *,
        agent_id: str,
        agent_class: str,
        state_class: str,
        state: bytes,
        hook: str,
        event: PersistencyEvent,
        queued: Sequence[MailboxItem] = (),
    ) -> PagletController: ...
    async def deliver(
        self, agent_id: str, message: EncodedMessage, *, oneway: bool, timeout: float | None = None
    ) -> object: ...


class Files(Protocol):
    """Registered files (``FileRegistry``)."""

    def refs(self, agent_id: str) -> list[PagletFileRef]: ...
    def forget(self, agent_id: str, *, remove_work_dir: bool) -> None: ...
    def restore(self, agent_id: str, refs: list[PagletFileRef]) -> None: ...


class Persistence:
    """See the module docstring. Lives on the host's event loop."""

    def __init__(
        self,
        *,
        name: str,
        address: Callable[[], str],
        root: Path,
        events: ContextEventLog,
        agents: Agents,
        files: Files,
        spawn: Callable[[Coroutine[Any, Any, None]], object],
    ) -> None:
        self._name = name
        self._address = address
        self._root = root
        self._events = events
        self._agents = agents
        self._files = files
        self._spawn = spawn
        self.store: RecordStore | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._activating: dict[str, asyncio.Future[ProxyRef]] = {}
        #: Per inactive paglet: held while a message is appended to its record's queue, and by an
        #: activation from reading the record until it is deleted, so that no message is appended to a
        #: record that an activation has already read (it would be deleted with it).
        self._record_locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        #: A read-only view of the records while the host is not running (see ``inspected``).
        self._view: RecordStore | None = None
        self._view_lock = threading.Lock()
        #: Per paglet passivated while senders waited for replies: message id -> the sender's future,
        #: answered by the activation that follows (see ``deactivate(passivate=True)``).
        self._held: dict[str, dict[str, Any]] = {}

    # --- start and stop -----------------------------------------------------------------------------------

    async def start(self) -> None:
        loop = asyncio.get_running_loop()

        def quarantined(name: str, reason: str) -> None:
            _log.error("host %s quarantined inactive record %s: %s", self._name, name, reason)
            loop.call_soon_threadsafe(
                lambda: self._events.emit("record-quarantined", data={"record": name, "reason": reason})
            )

        self._drop_view()
        store = RecordStore(self._root, on_quarantine=quarantined)
        try:
            await loop.run_in_executor(None, store.load)
        except BaseException:
            store.close()
            raise
        self.store = store
        self._schedule()

    async def activate_startup(self) -> int:
        """Activate every record whose policy says ``activate_on_startup``; returns how
        many were activated."""
        due = [s.agent_id for s in self.summaries() if s.activate_on_startup]
        gate = asyncio.Semaphore(STARTUP_ACTIVATIONS)

        async def one(agent_id: str) -> bool:
            async with gate:
                try:
                    await self.activate(agent_id)
                except PagletError as exc:
                    _log.error("startup activation of %s failed: %s", agent_id, exc)
                    return False
                return True

        return sum(await asyncio.gather(*(one(a) for a in due)))

    async def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        store, self.store = self.store, None
        if store is not None:
            await asyncio.get_running_loop().run_in_executor(None, store.close)
        self._drop_view()

    def inspected(self) -> RecordStore:
        """The records as a host that is not running sees them: the running store if there is one, else a
        read-only view of the directory, loaded on first use (it takes no lock and changes nothing, so the
        store opened at start is unaffected; that start drops the view). Call from any thread."""
        with self._view_lock:
            if self.store is not None:
                return self.store
            if self._view is None:
                view = RecordStore(self._root, read_only=True)
                try:
                    view.load()
                except BaseException:
                    view.close()
                    raise
                self._view = view
            return self._view

    def _drop_view(self) -> None:
        with self._view_lock:
            view, self._view = self._view, None
        if view is not None:
            view.close()

    def _store(self) -> RecordStore:
        if self.store is None:
            raise HostError(f"host {self._name} is not started")
        return self.store

    # --- queries -------------------------------------------------------------------------------------------

    def summaries(self) -> list[RecordSummary]:
        return [] if self.store is None else self.store.summaries()

    def summary(self, agent_id: str) -> RecordSummary | None:
        return None if self.store is None else self.store.summary(agent_id)

    def stored(self, agent_id: str) -> bool:
        """Whether ``agent_id`` is an inactive paglet of this host."""
        return self.summary(agent_id) is not None

    def describe(self, summary: RecordSummary) -> dict[str, Any]:
        """The ``GET /agents/{id}`` form of an inactive paglet."""
        return {
            "agent_id": summary.agent_id,
            "class_name": summary.agent_class,
            "state_class_name": summary.state_class,
            "host": self._name,
            "address": self._address(),
            "active": False,
            "crashed": False,
            "deactivated_at": summary.deactivated_at,
            "queued_message_count": summary.queued_count,
        }

    def state_fields(self, record: StoredRecord) -> dict[str, Any]:
        """What ``include_state`` adds to an inactive paglet's summary: its state (wire dict), its
        deactivation policy and its number of queued messages (paglets 2.0's fields)."""
        from paglets.serialization.codec import codec_for, dataclass_to_wire, resolve_qualified_name

        state_cls = resolve_qualified_name(record.state_class)
        policy = DeactivationPolicy.from_wire(record.policy) if record.policy else DeactivationPolicy()
        return {
            "state": dataclass_to_wire(codec_for(state_cls).decode(bytes(record.state))),
            "deactivation_policy": policy.to_wire(),
            "queued_message_count": len(record.queued_messages),
        }

    async def read(self, agent_id: str) -> StoredRecord:
        return await asyncio.get_running_loop().run_in_executor(None, self._store().read, agent_id)

    # --- deactivation -------------------------------------------------------------------------------------

    async def deactivate(
        self,
        agent_id: str,
        request: DeactivationRequest | None,
        *,
        decided_policy: DeactivationPolicy | None = None,
        snapshot: Snapshot | None = None,
        passivate: bool = False,
    ) -> ProxyRef:
        """Deactivate an active paglet; ``decided_policy`` means the paglet already ran its
        ``deactivation_policy`` and ``on_deactivating`` itself (self-initiated).

        ``passivate``: an idle passivation (``paglets.runtime._idle``), transparent to senders. The record
        always activates on a message and queues; a sender waiting for a message that arrived while the
        paglet was being saved keeps waiting, and the paglet is activated at once to answer it (the
        message runs first, in its order, from the record) instead of being told ``queued``."""
        request = request or DeactivationRequest()
        ctrl = self._agents.ready(agent_id)
        ctrl.pause()
        try:
            if decided_policy is None:
                event = PersistencyEvent(
                    agent_id=agent_id,
                    host_name=self._name,
                    host_address=self._address(),
                    reason=request.reason,
                    request=request,
                )
                answer = await ctrl.lifecycle("deactivating", event, self._agents.timeouts.hook)
                policy = DeactivationPolicy.from_wire(answer["policy"])
                if passivate:
                    policy = dataclasses.replace(
                        policy, activate_on_message=True, queue_messages_when_inactive=True
                    )
                await ctrl.resources("cleanup", reason="deactivate", timeout=self._agents.timeouts.resources)
            else:
                policy = decided_policy
            saved = await self._save(ctrl, policy, request, snapshot=snapshot)
        except BaseException:
            ctrl.resume()
            raise
        owed = await self._retire(ctrl, saved=saved, wait=decided_policy is None, passivate=passivate)
        self._events.emit(
            "deactivate", agent_id=agent_id, class_name=ctrl.agent_class, data={"reason": request.reason}
        )
        self._schedule()
        if owed:  # messages came while it was saved: they wake it at once
            self._spawn(self._activate_owed(agent_id))
        return ProxyRef(self._address(), agent_id)

    async def _activate_owed(self, agent_id: str) -> None:
        try:
            await self.activate(agent_id)
        except PagletError as exc:
            for future in self._held.pop(agent_id, {}).values():
                if not future.done():
                    future.set_exception(exc)
            raise

    async def _save(
        self,
        ctrl: PagletController,
        policy: DeactivationPolicy,
        request: DeactivationRequest,
        *,
        snapshot: Snapshot | None = None,
        requeue_first: Any | None = None,
    ) -> set[int]:
        """Write the record: the state and, in the same atomic write, every message still owed to the
        paglet (``requeue_first``, the undelivered queued messages of its activation, its mailbox).
        Returns the ids of the mailbox items it included (``_retire`` appends any that came later)."""
        if snapshot is None:
            snapshot = await ctrl.snapshot(self._agents.timeouts.state)
        now = time.time()
        with ctrl.lock:
            waiting = [delivery.item for delivery in ctrl.mailbox]
        items = ([requeue_first] if requeue_first is not None else []) + waiting
        pending = [
            StoredMessage(message=message_dict(item.message), oneway=item.oneway, queued_at=now)
            for item in items
        ]
        try:
            record = StoredRecord(
                agent_id=ctrl.agent_id,
                agent_class=ctrl.agent_class,
                state_class=ctrl.state_class,
                state=snapshot.view,
                policy=policy.to_wire(),
                request=request.to_wire(),
                registered_files=[ref.to_wire() for ref in self._files.refs(ctrl.agent_id)],
                queued_messages=pending,
            )
            await asyncio.get_running_loop().run_in_executor(None, self._store().write, record)
        finally:
            snapshot.close()
        return {id(item) for item in items}

    async def _retire(
        self, ctrl: PagletController, *, saved: set[int], wait: bool = True, passivate: bool = False
    ) -> bool:
        """The record is durable: answer the messages it holds, queue those that came since, end the
        process. Passivating, senders that wait are held for the activation that follows instead of being
        answered ``queued``; returns whether the record holds messages (so, whether to activate now)."""
        items = self._agents.detach(ctrl)
        held = self._held.setdefault(ctrl.agent_id, {}) if passivate else None
        for item in items:
            if held is not None and item.future is not None:
                held[item.message.message_id] = item.future
        for item in items:
            if id(item) not in saved:
                try:
                    await self._append(ctrl.agent_id, item.message, oneway=item.oneway)
                except PagletError as exc:
                    if item.future is not None and not item.future.done():
                        item.future.set_exception(exc)
                    continue
            if held is None and item.future is not None and not item.future.done():
                item.future.set_result({"queued": True, "message_id": item.message.message_id})
        if held is not None and not held:
            del self._held[ctrl.agent_id]
        self._files.forget(ctrl.agent_id, remove_work_dir=False)
        if wait:
            await self._agents.release_when_idle(ctrl)
        else:  # self-initiated: the handler that asked is waiting for this answer
            self._spawn(self._agents.release_when_idle(ctrl))
        return passivate and bool(items)

    async def _append(self, agent_id: str, message: EncodedMessage, *, oneway: bool) -> int:
        wire = message_dict(message)
        store = self._store()
        return await asyncio.get_running_loop().run_in_executor(
            None, lambda: store.append_message(agent_id, wire, oneway=oneway)
        )

    # --- activation ---------------------------------------------------------------------------------------

    def activating(self, agent_id: str) -> bool:
        """Whether an activation of ``agent_id`` is under way."""
        return agent_id in self._activating

    def _record_lock(self, agent_id: str) -> asyncio.Lock:
        lock = self._record_locks.get(agent_id)
        if lock is None:
            lock = self._record_locks[agent_id] = asyncio.Lock()
        return lock

    async def activate(self, agent_id: str) -> ProxyRef:
        """Start an inactive paglet from its record (concurrent calls share one activation; a paglet that
        is active already is answered with its proxy: the host's public ``activate`` refuses that)."""
        running = self._activating.get(agent_id)
        if running is not None:
            return await asyncio.shield(running)
        future: asyncio.Future[ProxyRef] = asyncio.get_running_loop().create_future()
        self._activating[agent_id] = future
        try:
            result = await self._activate(agent_id)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters get it from their own await
            raise
        else:
            future.set_result(result)
            return result
        finally:
            del self._activating[agent_id]

    async def _activate(self, agent_id: str) -> ProxyRef:
        async with self._record_lock(agent_id):
            return await self._activate_locked(agent_id)

    def _owed(self, agent_id: str, agent_class: str, queued: Sequence[StoredMessage]) -> list[MailboxItem]:
        """The record's queued messages that still check, as mailbox items; those whose senders wait
        through a passivation get their futures back."""
        held = self._held.pop(agent_id, {})
        items = []
        for message, oneway in self._admit_queued(agent_id, agent_class, queued):
            future = held.pop(message.message_id, None) if not oneway else None
            items.append(MailboxItem(message, oneway, future))
        for future in held.values():  # dropped as invalid: never leave a sender hanging
            if not future.done():
                future.set_exception(HostError(f"a message to {agent_id} was dropped at its activation"))
        return items

    async def _activate_locked(self, agent_id: str) -> ProxyRef:
        summary = self.summary(agent_id)
        if summary is None:
            if agent_id in self._agents.controllers:
                return ProxyRef(self._address(), agent_id)
            raise InvalidAgentError(f"no inactive paglet {agent_id} on host {self._name}")
        record = await self.read(agent_id)
        policy = DeactivationPolicy.from_wire(record.policy) if record.policy else DeactivationPolicy()
        request = DeactivationRequest.from_wire(record.request) if record.request else DeactivationRequest()
        files = [PagletFileRef.from_wire(f) for f in record.registered_files]
        self._files.restore(agent_id, files)
        event = PersistencyEvent(
            agent_id=agent_id,
            host_name=self._name,
            host_address=self._address(),
            reason="activate",
            request=request,
            policy=policy,
        )
        queued = record.queued_messages
        try:
            await self._agents.start_from_state(
                agent_id=agent_id,
                agent_class=record.agent_class,
                state_class=record.state_class,
                state=bytes(record.state),
                hook="activation",
                event=event,
                queued=self._owed(agent_id, record.agent_class, queued),
            )
        except BaseException:
            self._files.forget(agent_id, remove_work_dir=False)
            raise
        store = self._store()
        await asyncio.get_running_loop().run_in_executor(None, store.delete, agent_id)
        self._events.emit(
            "activate",
            agent_id=agent_id,
            class_name=record.agent_class,
            data={"queued_message_count": len(queued), **checkpoint_mark(record)},
        )
        self._schedule()
        return ProxyRef(self._address(), agent_id)

    def _admit_queued(
        self, agent_id: str, agent_class: str, queued: Sequence[StoredMessage]
    ) -> list[tuple[EncodedMessage, bool]]:
        """The queued messages that still check, in order; one that does not (written by another build) is
        dropped with a warning and a ``message-dropped`` event, and never keeps the paglet from activating
        (its sender was answered ``queued`` long ago: no reply waits for it)."""
        admitted: list[tuple[EncodedMessage, bool]] = []
        for index, stored in enumerate(queued):
            try:
                admitted.append((encode_message_dict(stored.message), stored.oneway))
            except PagletError as exc:
                raw_id = stored.message.get("message_id") if isinstance(stored.message, dict) else None
                message_id = raw_id if isinstance(raw_id, str) and len(raw_id) <= 200 else None
                _log.warning("paglet %s: queued message %d dropped at activation: %s", agent_id, index, exc)
                self._events.emit(
                    "message-dropped",
                    agent_id=agent_id,
                    class_name=agent_class,
                    message_id=message_id,
                    error=str(exc),
                    data={"reason": "invalid-queued-message", "index": index, "queued_at": stored.queued_at},
                )
        return admitted

    # --- messages to inactive paglets ----------------------------------------------------------------------

    async def deliver(
        self,
        agent_id: str,
        message: EncodedMessage,
        *,
        oneway: bool,
        activate_if_inactive: bool,
        no_delay: bool,
        timeout: float | None = None,
    ) -> Any:
        """A message to an inactive paglet; ``timeout`` bounds the wait for the reply of a
        synchronous message once it is in the mailbox of the activated paglet."""
        summary = self.summary(agent_id)
        if summary is None:
            raise InvalidAgentError(f"no paglet {agent_id} on host {self._name}")
        if activate_if_inactive and summary.activate_on_message:
            await self.activate(agent_id)
            return await self._agents.deliver(agent_id, message, oneway=oneway, timeout=timeout)
        if no_delay or not summary.queue_messages_when_inactive:
            raise PagletInactiveError(f"paglet {agent_id} is inactive and does not take queued messages")
        async with self._record_lock(agent_id):
            if self.summary(agent_id) is None:  # activated (or gone) while we waited: deliver, or fail
                return await self._agents.deliver(agent_id, message, oneway=oneway, timeout=timeout)
            await self._append(agent_id, message, oneway=oneway)
        self._events.emit(
            "message-queued", agent_id=agent_id, class_name=summary.agent_class, message_id=message.message_id
        )
        return None if oneway else {"queued": True, "message_id": message.message_id}

    async def dispose(self, agent_id: str) -> bool:
        summary = self.summary(agent_id)
        if summary is None:
            return False
        await asyncio.get_running_loop().run_in_executor(None, self._store().delete, agent_id)
        self._files.forget(agent_id, remove_work_dir=True)
        self._schedule()
        self._events.emit(
            "dispose", agent_id=agent_id, class_name=summary.agent_class, data={"active": False}
        )
        return True

    async def write_arrival(self, record: StoredRecord) -> None:
        """An inactive arrival (``ArrivalMode.INACTIVE``): store the paglet without starting it."""
        await asyncio.get_running_loop().run_in_executor(None, self._store().write, record)
        self._schedule()

    # --- timed activation ----------------------------------------------------------------------------------

    def _schedule(self) -> None:
        """Arm one timer for the earliest ``activate_at`` among the records."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        due = [s.activate_at for s in self.summaries() if s.activate_at is not None]
        if not due:
            return
        loop = asyncio.get_running_loop()
        delay = max(0.0, min(due) - time.time())
        self._timer = loop.call_later(delay, lambda: self._spawn(self._activate_due()))

    async def _activate_due(self) -> None:
        self._timer = None
        now = time.time()
        for summary in self.summaries():
            if summary.activate_at is not None and summary.activate_at <= now:
                try:
                    await self.activate(summary.agent_id)
                except PagletError as exc:
                    _log.error("timed activation of %s failed: %s", summary.agent_id, exc)
        self._schedule()

    # --- shutdown -------------------------------------------------------------------------------------------

    async def deactivate_all(self, budget: float) -> tuple[int, int]:
        """Shutdown: keep every active paglet (unlike paglets 2.0, without losing any); returns how many
        paglets were saved and how many could not be."""
        request = DeactivationRequest(
            reason="shutdown", source="host", policy=DeactivationPolicy(activate_on_startup=True)
        )
        saved = 0

        async def one(ctrl: PagletController) -> None:
            nonlocal saved
            try:
                if ctrl.mailbox.in_flight == 0:
                    await self.deactivate(ctrl.agent_id, request)
                    saved += 1
                    return
            except PagletError as exc:
                _log.warning(
                    "shutdown deactivation of %s failed (%s): saving its state as is", ctrl.agent_id, exc
                )
                if ctrl.status not in ("ready", "moving"):
                    return
            if await self._save_busy(ctrl, request):
                saved += 1

        ready = [c for c in self._agents.controllers.values() if c.status == "ready"]
        try:
            async with asyncio.timeout(budget):
                await asyncio.gather(*(one(c) for c in ready), return_exceptions=True)
        except TimeoutError:
            _log.error("host %s: shutdown budget of %.1f s ran out while saving paglets", self._name, budget)
        return saved, len(ready) - saved

    async def _save_busy(self, ctrl: PagletController, request: DeactivationRequest) -> bool:
        """A paglet busy in a handler: save its state now and re-queue the message it was handling;
        whether it was saved."""
        if ctrl.status not in ("ready", "moving"):
            return False  # it crashed or left meanwhile
        ctrl.transition("moving")
        in_flight = ctrl.in_flight_item()
        try:
            async with asyncio.timeout(SHUTDOWN_SNAPSHOT_WAIT):
                saved = await self._save(
                    ctrl,
                    request.policy or DeactivationPolicy(activate_on_startup=True),
                    request,
                    requeue_first=in_flight,
                )
        except (TimeoutError, PagletError) as exc:
            _log.error("paglet %s could not be saved at shutdown: %s", ctrl.agent_id, exc)
            return False
        if in_flight is not None:
            self._events.emit(
                "message-requeued",
                agent_id=ctrl.agent_id,
                class_name=ctrl.agent_class,
                message_id=in_flight.message.message_id,
                data={"reason": "shutdown"},
            )
        if in_flight is not None and in_flight.future is not None and not in_flight.future.done():
            in_flight.future.set_result({"queued": True, "message_id": in_flight.message.message_id})
        ctrl.kill()
        await self._retire(ctrl, saved=saved)
        return True
