"""Finishing transfers in the background: after an in-doubt answer, after an abort, and after a restart.

- ``resolve``: a source whose commit was not confirmed keeps asking the target (the commit request is
  idempotent) with a growing pause; *executed* releases the paused copy, *unknown* resumes it.
- ``tell_abort``: a source that decided abort tells the target until it acknowledges, then drops its
  record.
- ``load``: at start, the durable records come back as machines (``SourceTransfer.recovered``,
  ``TargetTransfer.recovered``) before the host serves: a source with a ``committed`` decision keeps
  answering ``committed`` and pushes the commit (its held copy, if a graceful stop saved one, is restored
  or dropped by the answer, ``_move_held.py``); one with ``aborted`` tells the target; a target with an
  ``executed`` record answers ``executed`` and asks the source whether it may forget.

Nothing here decides a transition: every answer goes into the machine (``paglets/runtime/_transfer.py``).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Final

from paglets.core.errors import PagletError
from paglets.persistence._transfers import TransferRecord
from paglets.runtime._deadlines import RUN_SETTLE_WAIT
from paglets.runtime._move_source import SourceRun
from paglets.runtime._move_target import TargetRun
from paglets.runtime._transfer import Event, MoveKind, SourceState, SourceTransfer, TargetTransfer
from paglets.wire.requests import MAX_FORGET_BATCH

if TYPE_CHECKING:
    from paglets.runtime._movement import MovementEngine

__all__ = ["Recovery"]

_log = logging.getLogger("paglets.runtime")

#: First and longest pause between two background attempts at reaching the peer of a transfer.
FIRST_BACKOFF: Final = 0.2
MAX_BACKOFF: Final = 60.0
#: Seconds one background request may take.
REQUEST_TIMEOUT: Final = 10.0
#: Seconds ``forget`` requests for one peer are gathered before they go out in one request.
FORGET_BATCH_DELAY: Final = 0.25

E, S = Event, SourceState


class Recovery:
    def __init__(self, engine: MovementEngine) -> None:
        self._engine = engine
        self._host = engine.host
        #: Transfer ids waiting to be forgotten by each peer (see ``tell_forget``).
        self._forgets: dict[str, list[str]] = {}

    def load(self, records: list[TransferRecord], held: set[str] | frozenset[str] = frozenset()) -> None:
        """Turn the records found at start into machines and start finishing them (``held``: the transfer
        ids with a held copy saved at a graceful stop)."""
        engine = self._engine
        for record in records:
            kind: MoveKind = record.kind if record.kind in ("dispatch", "clone", "retract") else "dispatch"  # type: ignore[assignment]
            if record.role == "source":
                machine = SourceTransfer.recovered(
                    record.transfer_id,
                    record.agent_id,
                    record.peer,
                    kind,
                    record.outcome,
                    held=record.transfer_id in held,
                )
                run = SourceRun(machine, local=False)
                engine.remember_source(run)
                if machine.state is S.ABORTING:
                    engine.spawn(self.tell_abort(run))
                else:
                    engine.spawn(self.resolve(run))
            else:
                target = TargetRun(
                    TargetTransfer.recovered(record.transfer_id, record.agent_id, record.peer, kind),
                    local=False,
                )
                target.settled.set()
                target.decided.set()
                engine.remember_target(target)
                engine.spawn(engine.target.await_commit(target))

    async def resolve(self, run: SourceRun) -> None:
        """Ask the target until the commit is settled (executed, or the target holds nothing)."""
        backoff = FIRST_BACKOFF
        source = self._engine.source
        while run.machine.at(S.COMMITTING, S.IN_DOUBT):
            await source._feed(run, await source.send_commit(run, REQUEST_TIMEOUT + RUN_SETTLE_WAIT))
            if not run.machine.at(S.COMMITTING, S.IN_DOUBT):
                break
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF)
            run.machine.handle(E.TIMEOUT)
        _log.info("transfer %s settled: %s", run.transfer_id, run.machine.state.value)

    async def tell_abort(self, run: SourceRun) -> None:
        """Tell the target the transfer is aborted until it acknowledges."""
        backoff = FIRST_BACKOFF
        while run.machine.at(S.ABORTING):
            event = E.NO_ANSWER
            try:
                reply = await self._host.aclient.request_json(
                    "POST",
                    f"{run.machine.peer}/transfers/{run.transfer_id}/abort",
                    {},
                    timeout=REQUEST_TIMEOUT,
                )
            except (PagletError, OSError, TimeoutError) as exc:
                _log.info("abort of transfer %s not delivered yet: %s", run.transfer_id, exc)
            else:
                status = reply.get("status") if isinstance(reply, dict) else None
                if status in ("aborted", "unknown"):
                    event = E.ABORT_ACKED
            await self._engine.source._feed(run, event)
            if not run.machine.at(S.ABORTING):
                return
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF)
            run.machine.handle(E.TIMEOUT)

    def tell_forget(self, run: SourceRun) -> None:
        """Best effort, batched: the target may drop its record (it asks us later otherwise). Forgets for
        one peer are gathered for ``FORGET_BATCH_DELAY`` and sent in one request, so a burst of moves (a
        clone fan-out) costs one request, not one each."""
        peer = run.machine.peer
        pending = self._forgets.setdefault(peer, [])
        pending.append(run.transfer_id)
        if len(pending) == 1:
            self._engine.spawn(self._flush_forgets(peer))

    async def _flush_forgets(self, peer: str) -> None:
        await asyncio.sleep(FORGET_BATCH_DELAY)
        while self._forgets.get(peer):
            batch = self._forgets[peer][:MAX_FORGET_BATCH]
            del self._forgets[peer][: len(batch)]
            try:
                await self._host.aclient.request_json(
                    "POST", f"{peer}/transfers/forget", {"transfer_ids": batch}, timeout=REQUEST_TIMEOUT
                )
            except (PagletError, OSError, TimeoutError) as exc:
                _log.info("forget of %d transfer(s) at %s not delivered: %s", len(batch), peer, exc)
        self._forgets.pop(peer, None)
