"""Checkpoints: an active paglet's state and waiting messages saved durably while it keeps running.

A checkpoint is a record in the format of a deactivation's record (``RecordStore.write``: written to a
temporary file, fsynced, renamed), kept in its own directory (``<persistence_dir>/checkpoints``) so that
the paglet stays an *active* paglet for everyone else (it is not listed or addressed as inactive). It is
taken between handlers: when no message of the paglet is being handled, the paglet's mailbox is paused
(messages keep being accepted, none starts), its state is snapshotted in its process (as a deactivation
does) and the messages still waiting are copied, in order, as the record's queued messages; then the
mailbox resumes and the record is written while the paglet runs on. ``run()`` is not interrupted.

- **Policy**: a paglet class sets ``checkpoint_every = <seconds>`` (``None`` opts out of the host's
  default), the host's default is ``Host(checkpoint_interval=<seconds>)`` (off when not given); any
  active paglet can be checkpointed on request (``Host.checkpoint``, ``POST /agents/{id}/checkpoint``).
- **Restore**: at start, before ``activate_on_startup`` records are activated, each checkpoint becomes an
  inactive record that activates on startup (written to the inactive records first, then its checkpoint
  is deleted: a crash in between leaves both, and the inactive record wins at the next start). The
  activation's ``activate`` event carries ``restored_from_checkpoint`` and ``checkpoint_at``; the paglet's
  ``on_activation`` event carries the request ``reason="checkpoint"``.
- **Never a second copy**: a checkpoint is deleted before a paglet leaves (a move or retraction deletes it
  right after pausing the paglet, before anything is sent) and when the paglet stops being this host's
  (deactivated: its record replaces the checkpoint; disposed; crashed). A checkpoint of a paglet that a
  forwarding entry says moved away is dropped at start. Writes and deletions of one paglet's checkpoint
  are serialised, so a write under way finishes before the deletion that follows it.
- **Failure**: a checkpoint that cannot be written (disk full, read-only directory, the paglet busy too
  long) emits ``checkpoint-failed`` with the reason; the paglet keeps running untouched.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import sys
import time
import weakref
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Protocol

from paglets.core.errors import HostError, InvalidAgentError, PagletError, PagletInactiveError
from paglets.persistence._recordformat import StoredMessage, StoredRecord
from paglets.persistence._records import RecordStore
from paglets.persistence.persistency import DeactivationPolicy, DeactivationRequest
from paglets.runtime._control import Caller, ControlTable
from paglets.runtime._routing import message_dict
from paglets.wire.control import CheckpointAgent
from paglets.wire.replies import CheckpointReply

if TYPE_CHECKING:
    from paglets.artifacts import PagletFileRef
    from paglets.core.context_events import ContextEventLog
    from paglets.runtime._controller import PagletController

__all__ = ["CHECKPOINT_ATTRIBUTE", "CHECKPOINT_DIRECTORY", "Checkpoints", "checkpoint_mark"]

_log = logging.getLogger("paglets.runtime")

#: The class attribute a paglet class sets to its checkpoint interval in seconds (``None``: never).
CHECKPOINT_ATTRIBUTE: Final = "checkpoint_every"
#: The directory of the checkpoint records under the persistence directory.
CHECKPOINT_DIRECTORY: Final = "checkpoints"
#: The ``reason`` of the request stored in a checkpoint record.
CHECKPOINT_REASON: Final = "checkpoint"
#: Longest pause between two periodic checks, and the shortest.
TICK: Final = 1.0
MIN_TICK: Final = 0.05
#: Seconds a periodic checkpoint waits for a pause between two handlers before it tries again later.
PERIODIC_GAP_WAIT: Final = 1.0
#: Seconds an explicit checkpoint waits for that pause by default.
EXPLICIT_GAP_WAIT: Final = 10.0
#: Seconds the state snapshot may take.
SNAPSHOT_TIMEOUT: Final = 30.0

_UNSET: Final = object()


class _Agents(Protocol):
    @property
    def controllers(self) -> dict[str, PagletController]: ...


class _Records(Protocol):
    async def write_arrival(self, record: StoredRecord) -> None: ...
    def stored(self, agent_id: str) -> bool: ...


class _Files(Protocol):
    def refs(self, agent_id: str) -> list[PagletFileRef]: ...


class Checkpoints:
    """See the module docstring. Lives on the host's event loop."""

    def __init__(
        self,
        *,
        name: str,
        root: Path,
        default: float | None,
        agents: _Agents,
        files: _Files,
        is_resident: Callable[[str], bool],
        events: ContextEventLog,
        spawn: Callable[[Coroutine[Any, Any, None]], object],
    ) -> None:
        self._name = name
        self._root = root
        self._default = default
        self._agents = agents
        self._files = files
        self._is_resident = is_resident
        self._events = events
        self._spawn = spawn
        self.store: RecordStore | None = None
        self._by_class: dict[str, float | None] = {}
        self._importing: set[str] = set()
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        #: Paglets a checkpoint is being taken of (periodic ones are not started twice).
        self._taking: set[str] = set()
        #: Paglets whose checkpoint was dropped while one was being taken: that one is not written.
        self._cancelled: set[str] = set()
        #: Monotonic time of each active paglet's last checkpoint attempt (periodic policy).
        self._last: dict[str, float] = {}
        self.written_total = 0
        self.failed_total = 0

    # --- start and stop -----------------------------------------------------------------------------------

    async def start(self) -> None:
        def quarantined(name: str, reason: str) -> None:
            _log.error("host %s quarantined checkpoint %s: %s", self._name, name, reason)

        store = RecordStore(self._root, on_quarantine=quarantined, directory_name=CHECKPOINT_DIRECTORY)
        try:
            await asyncio.get_running_loop().run_in_executor(None, store.load)
        except BaseException:
            store.close()
            raise
        self.store = store

    def run_periodic(self) -> None:
        self._spawn(self._tick())

    async def close(self) -> None:
        store, self.store = self.store, None
        if store is not None:
            await asyncio.get_running_loop().run_in_executor(None, store.close)

    async def restore(self, records: _Records, moved_away: Callable[[str], bool]) -> int:
        """Turn every checkpoint left by a host that did not stop cleanly into an inactive record that
        activates on startup; returns how many. Call before the startup activations."""
        store = self.store
        if store is None:
            return 0
        loop = asyncio.get_running_loop()
        restored = 0
        for summary in store.summaries():
            agent_id = summary.agent_id
            if records.stored(agent_id) or moved_away(agent_id):
                # a deactivation's record replaced it, or the paglet lives elsewhere now
                await loop.run_in_executor(None, store.delete, agent_id)
                continue
            try:
                record = await loop.run_in_executor(None, store.read, agent_id)
                await records.write_arrival(record)
            except (PagletError, OSError) as exc:
                _log.error("host %s: checkpoint of %s could not be restored: %s", self._name, agent_id, exc)
                continue
            await loop.run_in_executor(None, store.delete, agent_id)
            restored += 1
        return restored

    # --- taking a checkpoint -------------------------------------------------------------------------------

    def _lock(self, agent_id: str) -> asyncio.Lock:
        lock = self._locks.get(agent_id)
        if lock is None:
            lock = self._locks[agent_id] = asyncio.Lock()
        return lock

    def has(self, agent_id: str) -> bool:
        return self.store is not None and self.store.contains(agent_id)

    async def checkpoint(self, agent_id: str, *, gap_wait: float = EXPLICIT_GAP_WAIT) -> dict[str, Any]:
        """Checkpoint the active paglet ``agent_id`` now; returns ``{"agent_id", "checkpoint_at",
        "state_bytes", "queued_message_count"}``. A failed write raises (and emits ``checkpoint-failed``)."""
        ctrl = self._agents.controllers.get(agent_id)
        if ctrl is None or ctrl.status not in ("ready", "moving", "starting"):
            raise InvalidAgentError(f"no active paglet {agent_id} on host {self._name}")
        self._taking.add(agent_id)
        try:
            return await self._take(ctrl, gap_wait)
        finally:
            self._taking.discard(agent_id)
            self._cancelled.discard(agent_id)

    async def _take(self, ctrl: PagletController, gap_wait: float) -> dict[str, Any]:
        store = self.store
        if store is None:
            raise HostError(f"host {self._name} is not started")
        agent_id = ctrl.agent_id
        try:
            await _quiet(ctrl, gap_wait)
            ctrl.pause()  # same loop step as the check: nothing starts in between
            try:
                snapshot = await ctrl.snapshot(SNAPSHOT_TIMEOUT)
                with ctrl.lock:
                    waiting = [delivery.item for delivery in ctrl.mailbox]
            finally:
                ctrl.resume()
        except (PagletError, TimeoutError) as exc:
            self._failed(ctrl, f"no snapshot: {exc or type(exc).__name__}")
            raise
        now = time.time()
        try:
            record = StoredRecord(
                agent_id=agent_id,
                agent_class=ctrl.agent_class,
                state_class=ctrl.state_class,
                state=snapshot.view,
                policy=DeactivationPolicy(activate_on_startup=True).to_wire(),
                request=DeactivationRequest(
                    reason=CHECKPOINT_REASON, source="checkpoint", metadata={"checkpoint_at": now}
                ).to_wire(),
                deactivated_at=now,
                registered_files=[ref.to_wire() for ref in self._files.refs(agent_id)],
                metadata={"checkpoint": True, "checkpoint_at": now},
                queued_messages=[
                    StoredMessage(message=message_dict(item.message), oneway=item.oneway, queued_at=now)
                    for item in waiting
                ],
            )
            state_bytes = len(snapshot.view)
            async with self._lock(agent_id):
                if agent_id in self._cancelled or self._agents.controllers.get(agent_id) is not ctrl:
                    raise InvalidAgentError(f"paglet {agent_id} left or stopped while it was checkpointed")
                await asyncio.get_running_loop().run_in_executor(None, store.write, record)
        except (PagletError, OSError) as exc:
            self._failed(ctrl, str(exc))
            raise
        finally:
            snapshot.close()
        self.written_total += 1
        self._events.emit(
            "checkpoint",
            agent_id=agent_id,
            class_name=ctrl.agent_class,
            data={"checkpoint_at": now, "state_bytes": state_bytes, "queued_message_count": len(waiting)},
        )
        return {
            "agent_id": agent_id,
            "checkpoint_at": now,
            "state_bytes": state_bytes,
            "queued_message_count": len(waiting),
        }

    def _failed(self, ctrl: PagletController, reason: str) -> None:
        self.failed_total += 1
        _log.warning("checkpoint of paglet %s failed: %s", ctrl.agent_id, reason)
        self._events.emit(
            "checkpoint-failed", agent_id=ctrl.agent_id, class_name=ctrl.agent_class, error=reason
        )

    def register(self, table: ControlTable, *, inactive: Callable[[str], bool]) -> None:
        """Serve ``CheckpointAgent`` (``POST /agents/{id}/checkpoint``, ``Host.checkpoint``)."""

        async def serve(request: CheckpointAgent, caller: Caller) -> CheckpointReply:
            if request.agent_id not in self._agents.controllers and inactive(request.agent_id):
                raise PagletInactiveError(
                    f"paglet {request.agent_id} is inactive: its record is durable already"
                )
            return CheckpointReply(**await self.checkpoint(request.agent_id))

        table.on(CheckpointAgent, serve)

    # --- dropping a checkpoint -----------------------------------------------------------------------------

    async def drop(self, agent_id: str) -> None:
        """Delete ``agent_id``'s checkpoint (after any write under way)."""
        self._last.pop(agent_id, None)
        store = self.store
        if agent_id in self._taking:
            self._cancelled.add(agent_id)  # a checkpoint under way must not be written after this
        elif store is None or not store.contains(agent_id):
            return
        async with self._lock(agent_id):
            store = self.store
            if store is not None and store.contains(agent_id):
                await asyncio.get_running_loop().run_in_executor(None, store.delete, agent_id)

    def forget(self, agent_id: str) -> None:
        """The paglet stopped being this host's (``PagletManager``'s ``gone``): drop its checkpoint."""
        if agent_id in self._taking or self.has(agent_id):
            self._spawn(self.drop(agent_id))
        else:
            self._last.pop(agent_id, None)

    # --- periodic policy ------------------------------------------------------------------------------------

    def interval_for(self, agent_class: str) -> float | None:
        """Seconds between two checkpoints of paglets of ``agent_class`` (``None``: never). A class this
        process has not imported yet is imported once in a worker thread; the default applies until then."""
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
        cls: object = sys.modules.get(module_name)
        for part in qualname.split("."):
            cls = getattr(cls, part, None)
        value = getattr(cls, CHECKPOINT_ATTRIBUTE, _UNSET) if cls is not None else _UNSET
        if value is _UNSET:
            return self._default
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            _log.warning(
                "%s.%s must be a positive number of seconds or None", agent_class, CHECKPOINT_ATTRIBUTE
            )
            return self._default
        return float(value)

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
                if agent_id in self._taking or ctrl.status != "ready" or self._is_resident(agent_id):
                    continue
                every = self.interval_for(ctrl.agent_class)
                if every is None:
                    continue
                last = self._last.setdefault(agent_id, now)
                if now - last >= every:
                    self._last[agent_id] = now
                    self._taking.add(agent_id)
                    self._spawn(self._periodic(ctrl))

    async def _periodic(self, ctrl: PagletController) -> None:
        try:
            await self._take(ctrl, PERIODIC_GAP_WAIT)
        except (PagletError, OSError, TimeoutError):
            pass  # reported as checkpoint-failed; the next period tries again
        finally:
            self._taking.discard(ctrl.agent_id)
            self._cancelled.discard(ctrl.agent_id)


def checkpoint_mark(record: StoredRecord) -> dict[str, Any]:
    """What the ``activate`` event of a paglet restored from a checkpoint adds to its data."""
    if record.metadata.get("checkpoint") is not True:
        return {}
    return {"restored_from_checkpoint": True, "checkpoint_at": record.metadata.get("checkpoint_at")}


async def _quiet(ctrl: PagletController, wait: float) -> None:
    """Wait (at most ``wait`` seconds) until the paglet is ready and handles no message."""
    async with asyncio.timeout(wait):
        while True:
            if ctrl.status not in ("ready", "starting", "moving"):
                raise InvalidAgentError(f"paglet {ctrl.agent_id} is {ctrl.status}")
            if ctrl.status == "ready":
                with ctrl.lock:
                    if not ctrl.mailbox.in_flight:
                        return
                waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                ctrl.message_waiters.append(waiter)
                await waiter
            else:  # starting or paused by a move or another save: look again shortly
                await asyncio.sleep(MIN_TICK)
