"""Moving paglets: dispatch, clone and retract with an exactly-once hand-over (docs/implementing/movement.md).

A move is a two-phase hand-over under a transfer id chosen by the source (``proto/PROTOCOL.md`` §6.1):

1. **Prepare.** The source pauses the paglet (its mailbox keeps accepting messages but starts none),
   runs the leaving hook and the resource cleanup, snapshots the state and streams the envelope
   (``paglets/wire/envelope.py``) to the target: ``POST /agents`` with ``Content-Type:
   application/x-paglets-envelope``. The target verifies every checksum while the bytes arrive (the state
   goes straight into a memfd segment), starts a process, runs the arrival hook, and answers
   ``{"status": "prepared"}``. Nothing runs ``run()`` yet and nothing is registered.
2. **Commit.** The source writes its decision durably, then sends ``POST /transfers/{id}/commit``; its
   paused copy stays. The target writes ``executed`` durably, registers the paglet, starts ``run()`` and
   answers once ``run()`` returned or the paglet moved on (bounded wait), with the proxy of where the
   paglet now is. Only then does the source release its copy and forward the messages that waited.

Who does what: ``paglets/runtime/_transfer.py`` is the state machine (the only place that decides
transitions), ``_move_source.py`` and ``_move_target.py`` perform its actions for each role,
``_move_recovery.py`` finishes transfers in the background and after a restart, and
``paglets/persistence/_transfers.py`` holds the durable records. This module is the engine that owns the
transfers of one host and receives envelopes.

Moves to this host's own address never use HTTP and write nothing durable: the same two phases run
in-process (a crash ends both sides at once).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Coroutine
from typing import TYPE_CHECKING, Any, Final

from paglets.core.errors import TransferError
from paglets.persistence._held import HeldCopies
from paglets.persistence._transfers import MAX_OPEN_TRANSFERS, TransferRecord, TransferStore
from paglets.remote.transfer import TransferTicket
from paglets.runtime._controller import Snapshot
from paglets.runtime._deadlines import RUN_SETTLE_WAIT
from paglets.runtime._inbound import INBOUND_DECODE_WORKERS, InboundBudget, InboundMove
from paglets.runtime._move_depart import RecentHealth
from paglets.runtime._move_held import STOP_SETTLE_WAIT, HeldDriver
from paglets.runtime._move_recovery import Recovery
from paglets.runtime._move_source import ENVELOPE_CONTENT_TYPE, SourceDriver, SourceRun, Target
from paglets.runtime._move_target import TargetDriver, TargetRun
from paglets.runtime._tasks import BackgroundTasks
from paglets.runtime._transfer import MoveKind, new_incarnation
from paglets.wire.envelope import EnvelopeMetadata

if TYPE_CHECKING:
    from paglets.runtime._move_site import MovementSite

__all__ = ["ENVELOPE_CONTENT_TYPE", "RUN_SETTLE_WAIT", "MoveKind", "MovementEngine"]

_log = logging.getLogger("paglets.runtime")

#: Finished transfers remembered in memory (to answer late duplicates and questions); the oldest go first,
#: but none younger than ``TOMBSTONE_MIN_AGE`` unless there are ``4 *`` this many.
MAX_TRANSFER_RECORDS: Final = 4096
#: Seconds a finished transfer stays in memory at least: longer than any request may take on its way
#: (an envelope that arrives after its transfer was forgotten would otherwise be prepared again).
TOMBSTONE_MIN_AGE: Final = 600.0


class MovementEngine:
    """The transfers of one host, both roles. Lives on the host's event loop."""

    def __init__(self, host: MovementSite) -> None:
        #: What the engine uses of its host (``paglets.runtime._move_site``).
        self.host = host
        #: Drawn at every start: transfer ids begin with it (see ``paglets.runtime._transfer``).
        self.incarnation = new_incarnation()
        self.sources: OrderedDict[str, SourceRun] = OrderedDict()
        self.targets: OrderedDict[str, TargetRun] = OrderedDict()
        self.store: TransferStore | None = None
        #: Paused copies of in-doubt moves saved at a graceful stop (``paglets/runtime/_move_held.py``).
        self.held: HeldCopies | None = None
        self._io: concurrent.futures.ThreadPoolExecutor | None = None
        self._tasks = BackgroundTasks(host.events)
        #: Bytes of decoded state that unfinished inbound moves may hold (``Host(inbound_move_budget=...)``).
        self.budget = InboundBudget(host.config.inbound_move_budget)
        #: Seconds an inbound move waits for budget before it is refused with 503.
        self.budget_wait = host.config.inbound_budget_wait
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        #: Recent ``/health`` answers of targets, for preflights (``paglets/runtime/_move_depart.py``).
        self.peer_health = RecentHealth()
        self.source = SourceDriver(self)
        self.target = TargetDriver(self)
        self.recovery = Recovery(self)
        self.holding = HeldDriver(self)

    # --- start and stop -----------------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the transfer records and resume what they leave open (before the host serves)."""
        self.incarnation = new_incarnation()
        self.holding.stopping = False
        self._io = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="paglets-transfers")
        loop = asyncio.get_running_loop()

        def quarantined(name: str, reason: str) -> None:
            _log.error("host %s quarantined transfer record %s: %s", self.host.name, name, reason)

        store = TransferStore(self.host.persistence_dir, on_quarantine=quarantined)
        held = HeldCopies(self.host.persistence_dir, on_quarantine=quarantined)
        try:
            records = await loop.run_in_executor(self._io, store.load)
            held_ids = await loop.run_in_executor(self._io, held.load)
        except BaseException:
            held.close()
            store.close()
            raise
        self.store, self.held = store, held
        self.spawn(self._prepare(store))  # a first start creates the record file while the host serves
        self.recovery.load(records, held_ids)
        decided = {r.transfer_id for r in records if r.role == "source" and r.outcome == "committed"}
        self.holding.restore_orphans(held_ids, decided)

    async def _prepare(self, store: TransferStore) -> None:
        assert self._io is not None
        await asyncio.get_running_loop().run_in_executor(self._io, store.prepare)

    async def settle_for_stop(self, wait: float = STOP_SETTLE_WAIT) -> None:
        """A graceful stop: open transfers get ``wait`` seconds to finish, then those still in doubt keep
        their paused copy as a held copy (``paglets/runtime/_move_held.py``). Before the paglets are saved."""
        await self.holding.settle_for_stop(wait)

    def open_transfers(self) -> int:
        """Transfers of this host, either role, whose outcome is not settled yet."""
        leaving = sum(not run.machine.final for run in self.sources.values())
        return leaving + sum(not run.machine.final for run in self.targets.values())

    async def settle(self, timeout: float) -> int:
        """Wait up to ``timeout`` seconds until no transfer is open (before a planned restart: a move in
        flight completes or aborts first); returns how many are still open."""
        deadline = time.monotonic() + timeout
        # transfers end in many places and signal no one: a planned restart polls (20 times a second)
        while (left := self.open_transfers()) and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        return left

    async def stop(self) -> None:
        self._tasks.cancel_all()
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
        await self.target.stop()
        store, self.store = self.store, None
        held, self.held = self.held, None
        io, self._io = self._io, None
        if io is not None:
            if store is not None:
                await asyncio.get_running_loop().run_in_executor(io, store.close)
            if held is not None:
                await asyncio.get_running_loop().run_in_executor(io, held.close)
            io.shutdown(wait=False)

    # --- bookkeeping --------------------------------------------------------------------------------------

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        self._tasks.spawn(coro)  # a failure is reported (task-failed), never lost

    def remember_source(self, run: SourceRun) -> None:
        self.sources[run.transfer_id] = run
        _evict(self.sources, lambda r: r.machine.final)

    def remember_target(self, run: TargetRun) -> None:
        self.targets[run.transfer_id] = run
        _evict(self.targets, lambda r: r.machine.final)

    def check_capacity(self) -> None:
        if self.store is not None and len(self.store) >= MAX_OPEN_TRANSFERS:
            raise TransferError(
                f"host {self.host.name} has {len(self.store)} unresolved transfers (MAX_OPEN_TRANSFERS); "
                "their peers have been unreachable since"
            )

    async def write_record(self, record: TransferRecord) -> None:
        """A durable write (about 0.05 ms here: one 512-byte slot, one ``fdatasync``): in place while the
        storage is that fast (a worker thread's round trip costs more), on the record thread otherwise."""
        store, io = self.store, self._io
        if store is None or io is None:
            raise TransferError(f"host {self.host.name} is not started")
        if store.write_is_cheap:
            store.write(record)
        else:
            await asyncio.get_running_loop().run_in_executor(io, store.write, record)

    async def held_call(self, method: str, *args: Any) -> Any:
        """``HeldCopies.<method>(*args)`` on the transfer-record thread (blocking file work)."""
        held, io = self.held, self._io
        if held is None or io is None:
            raise TransferError(f"host {self.host.name} is not started")
        return await asyncio.get_running_loop().run_in_executor(io, getattr(held, method), *args)

    async def drop_record_durably(self, transfer_id: str) -> None:
        store, io = self.store, self._io
        if store is not None and io is not None:
            await asyncio.get_running_loop().run_in_executor(
                io, lambda: store.drop(transfer_id, "source", durable=True)
            )

    def drop_record(self, transfer_id: str, role: Any) -> None:
        """Drop a record without a sync: in place (one 512-byte write) unless the record thread holds the
        store, then on that thread."""
        store, io = self.store, self._io
        if store is not None and io is not None and not store.try_drop(transfer_id, role):
            io.submit(store.drop, transfer_id, role)

    def failed(self, stage: str, text: str, *, agent_id: str | None = None, **data: Any) -> TransferError:
        """Report a failure (``report``) and return the error to raise."""
        self.report(stage, text, agent_id=agent_id, **data)
        return TransferError(text)

    def report(self, stage: str, text: str, *, agent_id: str | None = None, **data: Any) -> None:
        """A ``transfer-failed`` event, which the host console shows (``data``: ``stage`` and, as 2.0 has
        them, ``destination``, ``attempt``, ``attempts`` where they apply)."""
        ctrl = self.host.manager.controllers.get(agent_id) if agent_id is not None else None
        self.host.events.emit(
            "transfer-failed",
            agent_id=agent_id,
            class_name=None if ctrl is None else ctrl.agent_class,
            error=text,
            data={"stage": stage, **data},
        )

    # --- entry points -------------------------------------------------------------------------------------

    async def _resolve(self, ticket: TransferTicket) -> Target:
        return await self.source.resolve(ticket)

    async def preflight(
        self, ticket: TransferTicket, target: Target, *, agent_id: str | None = None
    ) -> dict[str, Any]:
        return await self.source.preflight(ticket, target, agent_id=agent_id)

    async def move(
        self,
        agent_id: str,
        target: str | TransferTicket | None,
        *,
        kind: MoveKind,
        hooks_in_child: bool = True,
        clone_id: str | None = None,
        snapshot: Snapshot | None = None,
    ) -> dict[str, Any]:
        """Dispatch, clone or retract ``agent_id`` (see ``SourceDriver.move``)."""
        return await self.source.move(
            agent_id, target, kind=kind, hooks_in_child=hooks_in_child, clone_id=clone_id, snapshot=snapshot
        )

    def status(self, transfer_id: str) -> dict[str, Any]:
        """``GET /transfers/{id}``: what this host knows, with its incarnation (see ``_transfer``)."""
        source = self.sources.get(transfer_id)
        target = self.targets.get(transfer_id)
        if source is not None:
            status, role = source.machine.status, "source"
        elif target is not None:
            status, role = target.machine.status, "target"
        else:
            status, role = "unknown", None
        return {"transfer_id": transfer_id, "status": status, "role": role, "incarnation": self.incarnation}

    async def commit(self, transfer_id: str) -> dict[str, Any]:
        return await self.target.commit(transfer_id)

    async def abort(self, transfer_id: str) -> dict[str, Any]:
        return await self.target.abort(transfer_id)

    async def forget(self, transfer_id: str, *, settle: bool = False) -> dict[str, Any]:
        return await self.target.forget(transfer_id, settle=settle)

    # --- the target side: receiving an envelope -------------------------------------------------------------

    async def receive(self, chunks: AsyncIterator[Any], *, max_state_bytes: int) -> dict[str, Any]:
        """An envelope arrives over HTTP: verify it while it streams, under the host's inbound move budget
        and off the event loop (``paglets/runtime/_inbound.py``), then prepare the paglet."""
        move = InboundMove(
            self.budget,
            self._decode_pool(),
            max_state_bytes=max_state_bytes,
            wait=self.budget_wait,
            segments=self.host.manager.segments,
        )
        seen: list[TargetRun] = []

        def known(metadata: EnvelopeMetadata) -> bool:
            run = self.targets.get(metadata.transfer_id)
            if run is not None:
                seen.append(run)
                return True
            return False

        try:
            decoded = await move.run(chunks, known)
            if decoded is None:
                return await self.target.answer_envelope(seen[0])
            segment = move.take_segment()
            run = await self.target.prepare(decoded.metadata, segment, length=decoded.state_length)
            return self.target.envelope_answer(run)
        finally:
            move.release()

    def _decode_pool(self) -> concurrent.futures.ThreadPoolExecutor:
        if self._pool is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(
                max_workers=INBOUND_DECODE_WORKERS, thread_name_prefix=f"paglets-inbound-{self.host.name}"
            )
        return self._pool


def _evict(runs: OrderedDict[str, Any], final: Any) -> None:
    """Forget the oldest finished transfers past ``MAX_TRANSFER_RECORDS`` (see ``TOMBSTONE_MIN_AGE``)."""
    if len(runs) <= MAX_TRANSFER_RECORDS:
        return
    now = time.monotonic()
    hard = len(runs) > 4 * MAX_TRANSFER_RECORDS
    for tid, run in list(runs.items()):
        if len(runs) <= MAX_TRANSFER_RECORDS:
            break
        if final(run) and (hard or now - run.created > TOMBSTONE_MIN_AGE):
            del runs[tid]
