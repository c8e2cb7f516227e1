"""A graceful stop with moves still open, and the held copies it leaves (``paglets/persistence/_held.py``).

``settle_for_stop`` runs when the host stops (``Host.stop()``, ``shutdown()``, SIGTERM), before the active
paglets are saved and their processes end:

1. Every open transfer of which this host is the source gets a short, bounded chance to finish
   (``STOP_SETTLE_WAIT``): a commit not yet confirmed is asked once more; an envelope on its way may be
   answered.
2. Then the machine of each transfer still open is told ``SHUTDOWN`` and decides
   (``paglets/runtime/_transfer.py``): a source still sending the envelope decides abort (its copy runs on
   and is saved with the others); one that decided commit saves its paused copy as the transfer's *held
   copy* (``HOLD_COPY``): state, registered files and the messages waiting in its mailbox, durably, before
   its process ends.

After the restart the recovered machine decides with the target's answer: *executed* drops the held copy
(``DROP_HELD``); *unknown* makes it the paglet again (``RESTORE_HELD``): it becomes an inactive record that
activates at once (``on_activation``, then ``run()``, its waiting messages first), as a paglet saved at
shutdown does. A held copy without a decision left (a restore interrupted by a crash) is restored at start
unless the paglet is already here.

Nothing here decides a transition: every step goes through the machine.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Final

from paglets.core.errors import PagletError, TransferError
from paglets.persistence._recordformat import StoredMessage, StoredRecord
from paglets.persistence.persistency import DeactivationPolicy, DeactivationRequest
from paglets.runtime._routing import message_dict
from paglets.runtime._transfer import Event, SourceState

if TYPE_CHECKING:
    from paglets.runtime._move_source import SourceRun
    from paglets.runtime._movement import MovementEngine

__all__ = ["STOP_SETTLE_WAIT", "HeldDriver"]

_log = logging.getLogger("paglets.runtime")

#: Seconds a stopping host gives its open transfers to finish before it holds or aborts them (part of the
#: stop: a peer that answers at all answers within it).
STOP_SETTLE_WAIT: Final = 2.0
#: Seconds between two looks at the open transfers while a stop waits for them.
_POLL: Final = 0.02

E, S = Event, SourceState


class HeldDriver:
    def __init__(self, engine: MovementEngine) -> None:
        self._engine = engine
        self._host = engine.host
        #: Set once a stop settled the transfers: a late answer must not restore a copy into a host that
        #: is ending its paglets (the held copy and the decision stay for the next start).
        self.stopping = False

    # --- the stop -------------------------------------------------------------------------------------------

    def _open(self) -> list[SourceRun]:
        """Transfers whose paused copy is still here and undecided or unconfirmed (moves within this host
        finish at once and are left alone)."""
        return [
            run
            for run in self._engine.sources.values()
            if not run.local
            and run.machine.holds_copy
            and run.machine.at(S.PREPARING, S.DECIDING, S.ABORT_DECIDING, S.COMMITTING, S.IN_DOUBT)
        ]

    async def settle_for_stop(self, wait: float = STOP_SETTLE_WAIT) -> None:
        """See the module docstring; bounded by ``wait`` plus the durable writes it asks for."""
        engine = self._engine
        self.stopping = False
        runs = self._open()
        if not runs:
            self.stopping = True
            return
        deadline = time.monotonic() + wait
        asks = [
            asyncio.ensure_future(self._ask_once(run, wait))
            for run in runs
            if run.machine.at(S.COMMITTING, S.IN_DOUBT)
        ]
        # many paths move a machine on (answers, writes, the callers' loops): look, bounded, at a stop only
        while self._open() and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(_POLL)
        for ask in asks:
            ask.cancel()
        await asyncio.gather(*asks, return_exceptions=True)
        for run in self._open():
            if run.machine.at(S.DECIDING, S.ABORT_DECIDING):
                continue  # its write is on its way; the copy ends with the host as in a crash
            _log.warning(
                "host %s stops with transfer %s of %s %s: %s",
                self._host.name,
                run.transfer_id,
                run.machine.agent_id,
                run.machine.state.value,
                "holding its paused copy" if run.machine.at(S.COMMITTING, S.IN_DOUBT) else "aborting it",
            )
            if run.machine.at(S.PREPARING):
                run.info["failure"] = TransferError(
                    f"moving {run.machine.agent_id} failed: host {self._host.name} is stopping"
                )
            try:
                await engine.source._feed(run, E.SHUTDOWN)
            except Exception:  # one transfer's failure must not keep the others from being held
                _log.exception("transfer %s could not be settled at stop", run.transfer_id)
        self.stopping = True

    async def _ask_once(self, run: SourceRun, timeout: float) -> None:
        source = self._engine.source
        await source._feed(run, await source.send_commit(run, timeout))

    async def hold(self, run: SourceRun) -> None:
        """``HOLD_COPY``: write the paused copy as the transfer's held copy, then end its process; its
        waiting messages are in the held copy (their senders are told they were queued)."""
        host, engine, ctrl = self._host, self._engine, run.ctrl
        agent_id = run.machine.agent_id
        if ctrl is None:
            return
        manager = host.manager
        request = DeactivationRequest(
            reason="shutdown", source="host", policy=DeactivationPolicy(activate_on_startup=True)
        )
        try:
            snapshot = await ctrl.snapshot(manager.timeouts.state)
            try:
                now = time.time()
                with ctrl.lock:
                    waiting = [delivery.item for delivery in ctrl.mailbox]
                record = StoredRecord(
                    agent_id=agent_id,
                    agent_class=ctrl.agent_class,
                    state_class=ctrl.state_class,
                    state=snapshot.view,
                    policy=DeactivationPolicy(activate_on_startup=True).to_wire(),
                    request=request.to_wire(),
                    registered_files=[ref.to_wire() for ref in host.files.refs(agent_id)],
                    queued_messages=[
                        StoredMessage(message=message_dict(item.message), oneway=item.oneway, queued_at=now)
                        for item in waiting
                    ],
                )
                await engine.held_call("put", run.transfer_id, record)
            finally:
                snapshot.close()
        except (PagletError, OSError) as exc:
            engine.report(
                "hold",
                f"transfer {run.transfer_id}: the paused copy of {agent_id} could not be saved at stop "
                f"({exc}); it is lost unless the target runs it",
                agent_id=agent_id,
            )
            return
        saved = {id(item) for item in waiting}
        for item in manager.detach(ctrl):
            if item.future is not None and not item.future.done():
                if id(item) in saved:
                    item.future.set_result({"queued": True, "message_id": item.message.message_id})
                else:
                    item.future.set_exception(
                        PagletError(f"host {host.name} stopped while {agent_id} was moving")
                    )
        run.ctrl = None
        ctrl.kill()
        await manager.release_when_idle(ctrl)
        host.events.emit(
            "transfer-held",
            agent_id=agent_id,
            class_name=ctrl.agent_class,
            data={"transfer_id": run.transfer_id, "peer": run.machine.peer, "queued": len(waiting)},
        )

    # --- after the restart ----------------------------------------------------------------------------------

    async def restore(self, transfer_id: str) -> None:
        """``RESTORE_HELD`` (and a held copy left without a decision): the held copy becomes the paglet
        again, unless it is here already (a restore that a crash interrupted after the record was
        written); the decision is dropped durably before the held copy goes."""
        host, engine = self._host, self._engine
        if self.stopping:
            _log.info("transfer %s: held copy left for the next start (the host is stopping)", transfer_id)
            return
        try:
            record: StoredRecord = await engine.held_call("read", transfer_id)
        except (PagletError, OSError) as exc:
            engine.report("restore", f"held copy of transfer {transfer_id} unreadable: {exc}")
            return
        agent_id = record.agent_id
        here = agent_id in host.manager.controllers or host.persistence.summary(agent_id) is not None
        if not here:
            await host.persistence.write_arrival(record)
        await engine.drop_record_durably(transfer_id)
        await engine.held_call("drop", transfer_id)
        if here:
            return
        _log.warning(
            "transfer %s: the target never ran %s; its held copy is the paglet again", transfer_id, agent_id
        )
        host.events.emit(
            "transfer-restored",
            agent_id=agent_id,
            class_name=record.agent_class,
            data={"transfer_id": transfer_id, "queued": len(record.queued_messages)},
        )
        try:
            await host.persistence.activate(agent_id)
        except PagletError as exc:  # it stays an inactive paglet that activates on startup
            _log.error("held copy %s of transfer %s did not activate: %s", agent_id, transfer_id, exc)

    async def drop(self, run: SourceRun) -> None:
        """``DROP_HELD``: the target ran the paglet; the held copy goes."""
        try:
            await self._engine.held_call("drop", run.transfer_id)
        except (PagletError, OSError) as exc:
            self._engine.report("drop-held", f"held copy of transfer {run.transfer_id} not removed: {exc}")
            return
        _log.info(
            "transfer %s: the target ran %s; its held copy is dropped", run.transfer_id, run.machine.agent_id
        )

    def restore_orphans(self, held: set[str], decided: set[str]) -> None:
        """At start: restore held copies whose decision is gone (see ``restore``)."""
        for transfer_id in sorted(held - decided):
            self._engine.spawn(self.restore(transfer_id))
