"""The target side of a move: prepare the arriving paglet, execute the commit, answer the source.

``TargetDriver`` performs what the ``TargetTransfer`` machine (``paglets/runtime/_transfer.py``) asks and
feeds it what happened; it decides no transition itself. The prepared copy lives in memory only (a
process that ran its arrival hook, or the state of an ``ArrivalMode.INACTIVE`` arrival): the source keeps
its paused copy until this host confirmed the commit, and this host writes its durable ``executed`` record
before ``run()`` starts. A target that does not hear the commit asks the source (``QUERY_SOURCE``) and
never drops the prepared copy on a guess.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from paglets.core._ids import check_agent_id
from paglets.core.errors import InvalidAgentIdError, PagletError, TransferError
from paglets.core.events import CloneEvent, MobilityEvent
from paglets.core.runtime_values import ArrivalMode
from paglets.persistence._recordformat import StoredRecord
from paglets.persistence._transfers import TransferRecord
from paglets.persistence.persistency import DeactivationPolicy, DeactivationRequest
from paglets.runtime._controller import PagletController, Snapshot
from paglets.runtime._deadlines import RUN_SETTLE_WAIT
from paglets.runtime._handoff import WritableSegment
from paglets.runtime._transfer import Action, Event, TargetState, TargetTransfer, source_answer_event
from paglets.wire.envelope import EnvelopeMetadata

if TYPE_CHECKING:
    from paglets.runtime._movement import MovementEngine

__all__ = ["TargetDriver", "TargetRun"]

_log = logging.getLogger("paglets.runtime")

#: Longest an envelope of a paglet coming back waits for this host's own move of it to that host to end.
LEAVING_WAIT: Final = 10.0
#: Seconds a target waits for the source's commit before asking the source what happened.
COMMIT_WAIT: Final = 5.0
#: Seconds an ``executed`` record waits for the source's ``forget`` before the target asks instead.
FORGET_WAIT: Final = 60.0
#: First and longest pause between two questions to a source that does not answer.
FIRST_BACKOFF: Final = 0.5
MAX_RECOVERY_BACKOFF: Final = 60.0
#: Seconds a question to the source may take.
QUERY_TIMEOUT: Final = 5.0

A, E, T = Action, Event, TargetState


@dataclass(slots=True)
class TargetRun:
    """This host's side of one arriving transfer: the machine and what its actions work on."""

    machine: TargetTransfer
    local: bool  # the source is this host: no durable writes, no questions
    metadata: EnvelopeMetadata | None = None
    ctrl: PagletController | None = None
    #: ``ArrivalMode.INACTIVE``: the arrived state, stored as an inactive record when executed
    inactive: tuple[EnvelopeMetadata, bytes] | None = None
    settled: asyncio.Event = field(default_factory=asyncio.Event)  # preparing ended
    decided: asyncio.Event = field(default_factory=asyncio.Event)  # executed or aborted
    created: float = field(default_factory=time.monotonic)
    error: str = ""
    failure: PagletError | None = None  # why the arrival failed
    started_run: bool = False

    @property
    def transfer_id(self) -> str:
        return self.machine.transfer_id


class TargetDriver:
    def __init__(self, engine: MovementEngine) -> None:
        self._engine = engine
        self._host = engine.host

    # --- prepare -----------------------------------------------------------------------------------------

    async def prepare(
        self, metadata: EnvelopeMetadata, segment: WritableSegment, *, length: int
    ) -> TargetRun:
        """An envelope arrived (over HTTP or from this host): prepare its paglet once per transfer id."""
        engine = self._engine
        known = engine.targets.get(metadata.transfer_id)
        if known is not None:
            segment.close()
            await self._feed(known, E.ENVELOPE)
            return known
        try:
            check_agent_id(metadata.agent_id)  # ids from the network: never a paglet named "", "/tmp/x", ...
            if metadata.clone_of is not None:
                check_agent_id(metadata.clone_of)
        except InvalidAgentIdError:
            segment.close()
            raise
        machine = TargetTransfer(
            metadata.transfer_id,
            metadata.agent_id,
            metadata.source_host_address,
            "clone" if metadata.kind == "clone" else "retract" if metadata.kind == "retract" else "dispatch",
        )
        run = TargetRun(machine, local=self._same_host_source(metadata), metadata=metadata)
        engine.remember_target(run)  # from here on, a duplicate of this envelope waits for this outcome
        failure: BaseException | None = None
        try:
            await self._prepare_copy(run, metadata, segment, length)
        except BaseException as exc:
            failure = exc
        if isinstance(failure, PagletError):
            run.failure = failure
        await self._feed(run, E.FAILED if failure is not None else E.READY)
        run.settled.set()
        if failure is not None and not isinstance(failure, PagletError):
            raise failure
        if not run.local and run.machine.at(T.PREPARED):
            engine.spawn(self.await_commit(run))
        return run

    def envelope_answer(self, run: TargetRun) -> dict[str, Any]:
        """The answer to an envelope (once ``run.settled``): prepared, or the refusal as an error."""
        if run.machine.at(T.PREPARED, T.EXECUTING, T.EXECUTED):
            return {
                "status": "prepared",
                "transfer_id": run.transfer_id,
                "proxy": {"host_url": self._host.address, "agent_id": run.machine.agent_id},
            }
        if run.failure is not None:
            raise TransferError(str(run.failure))
        raise TransferError(f"transfer {run.transfer_id} was aborted {run.error}".rstrip())

    async def prepare_local(self, metadata: EnvelopeMetadata, snapshot: Snapshot) -> TargetRun:
        """A move within this host: the same preparation, from the snapshot (raises when refused)."""
        loop = asyncio.get_running_loop()
        segments = self._host.manager.segments
        segment = await loop.run_in_executor(None, segments.from_payload, snapshot.view)
        run = await self.prepare(metadata, segment, length=snapshot.view.nbytes)
        self.envelope_answer(run)
        return run

    async def answer_envelope(self, run: TargetRun) -> dict[str, Any]:
        await run.settled.wait()
        return self.envelope_answer(run)

    async def _prepare_copy(
        self, run: TargetRun, metadata: EnvelopeMetadata, segment: WritableSegment, length: int
    ) -> None:
        host = self._host
        try:
            self._check_ticket(metadata)
            if metadata.kind != "clone" and not run.local:
                existing = host.manager.controllers.get(metadata.agent_id)
                if existing is not None and existing.status == "moving":
                    await self._leaving_ends(metadata)
                    existing = host.manager.controllers.get(metadata.agent_id)
                if existing is not None and existing.status not in ("gone", "crashed"):
                    raise TransferError(f"paglet {metadata.agent_id} is already active on host {host.name}")
            inactive_state: bytes | None = None
            if (metadata.ticket or {}).get("arrival_mode") == ArrivalMode.INACTIVE.value:
                if host.persistence.summary(metadata.agent_id) is not None:
                    raise TransferError(f"paglet {metadata.agent_id} is already stored on host {host.name}")
                try:
                    inactive_state = segment.read(length)
                finally:
                    segment.close()
            else:
                segment.seal(length)
        except BaseException as exc:
            segment.close()
            run.error = f"({exc})"
            raise
        hook, event = self._arrival_event(metadata)
        try:
            if metadata.registered_files and not (run.local and metadata.kind != "clone"):
                imported = await asyncio.get_running_loop().run_in_executor(
                    None,
                    host.files.import_files,
                    metadata.agent_id,
                    list(metadata.registered_files),
                    host.artifacts,
                )
                host.files.restore(metadata.agent_id, imported)
            if inactive_state is not None:
                run.inactive = (metadata, inactive_state)
            else:
                run.ctrl = await host.manager.prepare(
                    agent_id=metadata.agent_id,
                    agent_class=metadata.agent_class_name,
                    state_class=metadata.state_class_name,
                    state_segment=segment,
                    hook=hook,
                    event=event,
                )
        except PagletError as exc:
            run.error = f"({exc})"
            self._forget_imports(run)
            self._engine.report(
                "arrival", f"arrival of {metadata.agent_id} failed: {exc}", agent_id=metadata.agent_id
            )
            raise TransferError(f"arrival of {metadata.agent_id} on {host.name} failed: {exc}") from exc
        except BaseException:
            self._forget_imports(run)
            raise

    async def _leaving_ends(self, metadata: EnvelopeMetadata) -> None:
        """The paglet comes back from the host it is leaving this host for (an itinerary there and back):
        that host executed the move, so this host's paused copy is released as soon as the commit's
        answer is here; wait for that (bounded) rather than refuse the paglet for a copy about to go."""
        sender = metadata.source_host_address.rstrip("/")
        for leaving in list(self._engine.sources.values()):
            if (
                leaving.machine.agent_id == metadata.agent_id
                and leaving.machine.kind != "clone"
                and leaving.machine.peer.rstrip("/") == sender
                and not leaving.copy_decided.is_set()
            ):
                try:
                    async with asyncio.timeout(LEAVING_WAIT):
                        await leaving.copy_decided.wait()
                except TimeoutError:
                    return

    def _check_ticket(self, metadata: EnvelopeMetadata) -> None:
        """What the source's preflight checked, checked again here (its answer may have been a recent
        one): the code version the paglet expects and the capabilities it requires."""
        ticket = metadata.ticket or {}
        host = self._host
        expected = ticket.get("expected_code_version")
        if isinstance(expected, str) and expected != host.code_version:
            raise TransferError(
                f"host {host.name} runs code version {host.code_version!r}, the paglet expects {expected!r}"
            )
        required = ticket.get("required_capabilities")
        if isinstance(required, list) and required:
            capabilities = set(host.health().get("capabilities") or ())
            missing = [c for c in required if c not in capabilities]
            if missing:
                raise TransferError(f"host {host.name} lacks capabilities {missing}")

    def _forget_imports(self, run: TargetRun) -> None:
        """An arrival failed or was aborted: remove the files it imported (unless the source is here)."""
        metadata = run.metadata
        if (
            metadata is not None
            and metadata.registered_files
            and not (run.local and metadata.kind != "clone")
        ):
            self._host.files.forget(metadata.agent_id, remove_work_dir=True)

    def _same_host_source(self, metadata: EnvelopeMetadata) -> bool:
        return metadata.source_host_address.rstrip("/") == self._host.address.rstrip("/")

    def _arrival_event(self, metadata: EnvelopeMetadata) -> tuple[str, Any]:
        host = self._host
        if metadata.kind == "clone":
            return "clone", CloneEvent(
                agent_id=metadata.agent_id,
                host_name=host.name,
                host_address=host.address,
                source_agent_id=metadata.clone_of or "",
                clone_agent_id=metadata.agent_id,
                source_host_name=metadata.source_host_name,
                source_host_address=metadata.source_host_address,
                target_host_name=host.name,
                target_host_address=host.address,
            )
        return "arrival", MobilityEvent(
            agent_id=metadata.agent_id,
            host_name=host.name,
            host_address=host.address,
            source_host_name=metadata.source_host_name,
            source_host_address=metadata.source_host_address,
            target_host_name=host.name,
            target_host_address=host.address,
            reason="retract" if metadata.kind == "retract" else "dispatch",
        )

    # --- requests from the source --------------------------------------------------------------------------

    async def commit(self, transfer_id: str) -> dict[str, Any]:
        """``POST /transfers/{id}/commit``: the source decided commit (durably); execute it once. The answer
        comes as soon as ``run()`` started (the source's ``forget`` asks where the paglet settled): the
        source's paused copy is released as early as possible, so a target that dies later takes the
        paglet with it rather than leaving the move in doubt."""
        run = self._engine.targets.get(transfer_id)
        if run is None:
            return {"transfer_id": transfer_id, "status": "unknown"}
        await self._feed(run, E.COMMIT)
        if run.machine.at(T.EXECUTING):  # another commit is executing it: wait for its outcome
            await run.decided.wait()
        answer: dict[str, Any] = {"transfer_id": transfer_id, "status": run.machine.status}
        if run.machine.at(T.EXECUTED, T.FORGOTTEN):
            answer["proxy"] = {"host_url": self._host.address, "agent_id": run.machine.agent_id}
        return answer

    async def settled_proxy(self, run: TargetRun) -> dict[str, Any]:
        """Where the arrived paglet is once its ``run()`` returned or it moved on (bounded wait)."""
        host = self._host
        proxy: dict[str, Any] = {"host_url": host.address, "agent_id": run.machine.agent_id}
        ctrl = run.ctrl
        if ctrl is not None and run.started_run:
            try:
                async with asyncio.timeout(RUN_SETTLE_WAIT):
                    await ctrl.settled.wait()
            except TimeoutError:
                pass
            if ctrl.moved_to is not None:
                proxy = ctrl.moved_to
        return proxy

    async def abort(self, transfer_id: str) -> dict[str, Any]:
        """``POST /transfers/{id}/abort``: the source decided abort (durably) and resumed its copy."""
        engine = self._engine
        run = engine.targets.get(transfer_id)
        if run is None:
            # a tombstone: an envelope of this transfer that arrives later is refused
            run = TargetRun(TargetTransfer(transfer_id, "", "", state=T.ABORTED), local=False)
            run.settled.set()
            run.decided.set()
            engine.remember_target(run)
        await self._feed(run, E.ABORT)
        return {"transfer_id": transfer_id, "status": run.machine.status}

    async def forget(self, transfer_id: str, *, settle: bool = False) -> dict[str, Any]:
        """``POST /transfers/{id}/forget``: the source released its copy; the record may go. With
        ``settle``, the answer waits (bounded) until the paglet's ``run()`` returned or it moved on, and
        says where it is (how an itinerary tells its first caller where it ended)."""
        run = self._engine.targets.get(transfer_id)
        if run is None:
            return {"transfer_id": transfer_id, "status": "unknown"}
        await self._feed(run, E.FORGET)
        answer: dict[str, Any] = {"transfer_id": transfer_id, "status": run.machine.status}
        if settle and run.machine.at(T.FORGOTTEN):
            answer["proxy"] = await self.settled_proxy(run)
        if run.machine.at(T.FORGOTTEN):
            run.ctrl = None  # the tombstone outlives the paglet's process: hold nothing of it
        return answer

    # --- waiting for the commit -----------------------------------------------------------------------------

    async def await_commit(self, run: TargetRun) -> None:
        """Ask the source when the commit does not come (``PREPARED``), or when ``forget`` does not come
        (``EXECUTED``); stops once the machine needs nothing more from the source."""
        try:
            async with asyncio.timeout(COMMIT_WAIT):
                await run.decided.wait()
        except TimeoutError:
            pass
        backoff = FIRST_BACKOFF
        while run.machine.at(T.PREPARED, T.EXECUTED):
            if run.machine.at(T.EXECUTED):
                await asyncio.sleep(FORGET_WAIT)
                if not run.machine.at(T.EXECUTED):
                    return
            actions = run.machine.handle(E.TIMEOUT)
            if A.QUERY_SOURCE in actions:
                await self._feed(run, await self._ask_source(run))
            if run.machine.at(T.PREPARED, T.EXECUTED):
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_RECOVERY_BACKOFF)

    async def _ask_source(self, run: TargetRun) -> Event:
        source = run.machine.peer.rstrip("/")
        try:
            answer = await self._host.aclient.request_json(
                "GET", f"{source}/transfers/{run.transfer_id}", timeout=QUERY_TIMEOUT
            )
        except (PagletError, OSError, TimeoutError) as exc:
            _log.warning("source %s of transfer %s does not answer: %s", source, run.transfer_id, exc)
            return E.NO_ANSWER
        if not isinstance(answer, dict):
            return E.NO_ANSWER
        return source_answer_event(
            run.transfer_id, str(answer.get("status") or ""), str(answer.get("incarnation") or "")
        )

    # --- performing the machine's actions -------------------------------------------------------------------

    async def _feed(self, run: TargetRun, event: Event) -> None:
        for action in run.machine.handle(event):
            await self._perform(run, action)

    async def _perform(self, run: TargetRun, action: Action) -> None:
        if action in (A.ANSWER_PREPARED, A.ANSWER_REFUSED):
            run.settled.set()
        elif action is A.WRITE_EXECUTED:
            await self._feed(run, await self._write_executed(run))
        elif action is A.START_RUN:
            await self._start_run(run)
        elif action is A.ANSWER_EXECUTED:
            run.decided.set()
        elif action is A.DISCARD_COPY:
            await self._discard(run)
        elif action is A.DROP_RECORD:
            if not run.local:
                self._engine.drop_record(run.transfer_id, "target")
        elif action is A.QUERY_SOURCE:
            pass  # asked by ``await_commit``, which feeds the answer
        else:  # pragma: no cover - the table has no other target action
            raise AssertionError(f"unexpected target action {action}")

    async def _write_executed(self, run: TargetRun) -> Event:
        """Write #2: ``executed`` is durable before ``run()`` starts (none for a move within this host)."""
        if run.local:
            return E.WRITTEN
        machine = run.machine
        record = TransferRecord(
            transfer_id=run.transfer_id,
            role="target",
            outcome="executed",
            agent_id=machine.agent_id,
            peer=machine.peer,
            kind=machine.kind,
            written_at=time.time(),
        )
        try:
            await self._engine.write_record(record)
        except (OSError, PagletError) as exc:
            _log.error("transfer %s: cannot record the commit: %s", run.transfer_id, exc)
            return E.WRITE_FAILED
        return E.WRITTEN

    async def _start_run(self, run: TargetRun) -> None:
        host = self._host
        if run.inactive is not None:
            await self._store_inactive(run)
            return
        ctrl = run.ctrl
        assert ctrl is not None
        run.started_run = True
        replacing = None
        if run.local and run.machine.kind != "clone":
            source = self._engine.sources.get(run.transfer_id)
            replacing = None if source is None else source.ctrl
        try:
            await host.manager.commit_prepared(ctrl, replacing=replacing)
        except PagletError as exc:
            # the paglet is this host's now (the record says so); it crashed at its start, as it could later
            self._engine.report(
                "commit",
                f"paglet {ctrl.agent_id} did not start after its move: {exc}",
                agent_id=ctrl.agent_id,
            )
            return
        host.events.emit(
            "clone" if run.machine.kind == "clone" else "arrival",
            agent_id=ctrl.agent_id,
            class_name=ctrl.agent_class,
            data=_arrival_data(run, active=True),
        )

    async def _store_inactive(self, run: TargetRun) -> None:
        """``ArrivalMode.INACTIVE``: store the paglet as an inactive record; no hook runs (§4.2.9)."""
        host = self._host
        assert run.inactive is not None
        metadata, state = run.inactive
        stored = StoredRecord(
            agent_id=metadata.agent_id,
            agent_class=metadata.agent_class_name,
            state_class=metadata.state_class_name,
            state=state,
            policy=DeactivationPolicy().to_wire(),
            request=DeactivationRequest(reason="dispatch-arrival", source="transfer").to_wire(),
            registered_files=[ref.to_wire() for ref in host.files.refs(metadata.agent_id)],
        )
        try:
            await host.persistence.write_arrival(stored)
        except (OSError, PagletError) as exc:
            self._engine.report("commit", f"cannot store arriving {metadata.agent_id}: {exc}")
            return
        host.files.forget(metadata.agent_id, remove_work_dir=False)
        host.events.emit(
            "arrival",
            agent_id=metadata.agent_id,
            class_name=metadata.agent_class_name,
            data=_arrival_data(run, active=False),
        )

    async def _discard(self, run: TargetRun) -> None:
        ctrl, run.ctrl, run.inactive = run.ctrl, None, None
        if ctrl is not None:
            await self._host.manager.discard(ctrl)
        self._forget_imports(run)
        run.decided.set()

    async def stop(self) -> None:
        """The host stops: prepared copies die with it (the source still holds its paused copy)."""
        for run in list(self._engine.targets.values()):
            if run.ctrl is not None and run.machine.at(T.PREPARED, T.CANCELLED, T.PREPARING):
                await self._host.manager.discard(run.ctrl)


def _arrival_data(run: TargetRun, *, active: bool) -> dict[str, Any]:
    """``data`` of a target's ``arrival``/``clone`` event: 2.0's fields (``kind``, ``source_agent_id`` of a
    clone, ``active: false`` for an inactive arrival) and ours (``source`` host, ``transfer_id``)."""
    kind = run.machine.kind
    data: dict[str, Any] = {
        "kind": kind,
        "source": run.machine.peer,
        "transfer_id": run.transfer_id,
        "active": active,
    }
    if kind == "clone":
        data["source_agent_id"] = (run.metadata.clone_of if run.metadata else None) or ""
    return data
