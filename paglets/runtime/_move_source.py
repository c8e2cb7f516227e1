"""The source side of a move: pause, send the envelope, decide, commit, then release or resume.

``SourceDriver`` performs what the ``SourceTransfer`` machine (``paglets/runtime/_transfer.py``) asks and
feeds it what happened; the machine alone decides. The paused copy (process and mailbox) stays here until
the target confirmed the commit; the decision is written durably before it is announced. A commit that
cannot be confirmed within the ticket's attempts is answered with ``TransferInDoubtError`` and resolved in
the background (``paglets/runtime/_move_recovery.py``).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from paglets.core._ids import check_agent_id
from paglets.core.errors import PagletError, TransferError, TransferInDoubtError
from paglets.core.events import CloneEvent
from paglets.persistence._transfers import TransferRecord
from paglets.remote.transfer import TransferTicket
from paglets.runtime._controller import PagletController, Snapshot
from paglets.runtime._deadlines import RUN_SETTLE_WAIT
from paglets.runtime._move_depart import (
    Target,
    leaving_hooks,
    preflight,
    resolve,
    stage_files,
    unstage_files,
)
from paglets.runtime._transfer import (
    Action,
    Event,
    MoveKind,
    SourceState,
    SourceTransfer,
    new_transfer_id,
    target_answer_event,
)
from paglets.wire.envelope import EnvelopeEncoder, EnvelopeMetadata

if TYPE_CHECKING:
    from paglets.runtime._movement import MovementEngine

__all__ = ["ENVELOPE_CONTENT_TYPE", "SourceDriver", "SourceRun", "Target"]

_log = logging.getLogger("paglets.runtime")

#: Content type of a movement envelope request body.
ENVELOPE_CONTENT_TYPE: Final = "application/x-paglets-envelope"
#: Fewest attempts at a commit before the caller is told the move is in doubt (the ticket may allow more).
COMMIT_ATTEMPTS: Final = 5
#: Seconds the commit attempts may take at least before the move is in doubt (a restarting target
#: usually answers within them); the ticket's ``timeout * (retries + 1)`` when longer.
MIN_COMMIT_WINDOW: Final = 3.0
#: Longest wait a target's ``Retry-After`` may ask of a retrying source (a peer's number, so bounded).
MAX_RETRY_AFTER: Final = 30.0
#: First and longest pause between two commit attempts.
COMMIT_BACKOFF: Final = 0.05
MAX_COMMIT_BACKOFF: Final = 1.0

A, E, S = Action, Event, SourceState


@dataclass(slots=True)
class SourceRun:
    """This host's side of one leaving transfer: the machine and what its actions work on."""

    machine: SourceTransfer
    local: bool  # the target is this host: no durable writes, no HTTP
    ctrl: PagletController | None = None
    metadata: EnvelopeMetadata | None = None
    info: dict[str, Any] = field(default_factory=dict)
    files: list[dict[str, Any]] = field(default_factory=list)
    hooks_in_child: bool = True
    ticket: TransferTicket | None = None
    answer: asyncio.Future[dict[str, Any]] | None = None
    proxy: dict[str, Any] | None = None  # where the target says the paglet is
    waiting: list[Any] = field(default_factory=list)  # messages of the released copy, to forward
    resumed: bool = False  # the paused copy runs on (a clone in doubt, an abort)
    #: Set once the paused copy here was released or resumed (or the caller got its answer).
    copy_decided: asyncio.Event = field(default_factory=asyncio.Event)
    created: float = field(default_factory=time.monotonic)

    @property
    def transfer_id(self) -> str:
        return self.machine.transfer_id


class SourceDriver:
    def __init__(self, engine: MovementEngine) -> None:
        self._engine = engine
        self._host = engine.host

    # --- before the envelope ------------------------------------------------------------------------------

    async def resolve(self, ticket: TransferTicket) -> Target:
        return await resolve(self._host, ticket)

    async def preflight(
        self, ticket: TransferTicket, target: Target, *, agent_id: str | None = None
    ) -> dict[str, Any]:
        return await preflight(self._engine, ticket, target, agent_id=agent_id)

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
        """Host-initiated dispatch, clone or retract of ``agent_id``; returns the resulting proxy dict.

        ``hooks_in_child=False`` is the self-initiated form: the paglet ran its leaving hook and cleanup
        itself, in the calling thread, before asking its host to move it.
        """
        host, engine = self._host, self._engine
        ticket = TransferTicket.from_target(target if target is not None else host.address)
        try:
            destination = await self.resolve(ticket)
        except PagletError as exc:
            engine.report("resolve", str(exc), agent_id=agent_id)
            raise
        if clone_id is not None:
            check_agent_id(clone_id)  # a paglet chose its clone's id
        ctrl = host.manager.ready(agent_id)
        info = await self.preflight(ticket, destination, agent_id=agent_id)
        ctrl = host.manager.ready(agent_id)
        ctrl.pause()
        files: list[dict[str, Any]] = []
        try:
            if kind != "clone":
                await host.leaving(agent_id)
            engine.check_capacity()
            new_id = (clone_id or uuid.uuid4().hex) if kind == "clone" else agent_id
            if hooks_in_child:
                await leaving_hooks(host, ctrl, kind, info, new_id)
            if snapshot is None:
                snapshot = await ctrl.snapshot(host.manager.timeouts.state)
            if not destination.same_host or kind == "clone":
                files = await stage_files(host, agent_id, new_id, destination)
        except BaseException as exc:
            if snapshot is not None:
                snapshot.close()
            ctrl.resume()
            if files:
                engine.spawn(unstage_files(host, files, destination.same_host, agent_id))
            if isinstance(exc, PagletError):
                raise
            raise TransferError(f"moving {agent_id} failed: {exc}") from exc
        metadata = EnvelopeMetadata(
            kind=kind,
            agent_id=new_id,
            agent_class_name=ctrl.agent_class,
            state_class_name=ctrl.state_class,
            transfer_id=new_transfer_id(engine.incarnation),
            source_host_name=host.name,
            source_host_address=host.address,
            target_host_name=info["name"],
            target_host_address=info["address"],
            clone_of=agent_id if kind == "clone" else None,
            # the target checks the code version itself (the preflight may have used a recent answer)
            ticket={**ticket.to_wire(), "expected_code_version": info["code_version"]},
            registered_files=files,
        )
        run = SourceRun(
            SourceTransfer(metadata.transfer_id, agent_id, destination.url, kind),
            local=destination.same_host,
            ctrl=ctrl,
            metadata=metadata,
            info=info,
            files=files,
            hooks_in_child=hooks_in_child,
            ticket=ticket,
            answer=asyncio.get_running_loop().create_future(),
        )
        engine.remember_source(run)
        try:
            event = await self._send_envelope(run, snapshot)
        except Exception as exc:  # an unexpected failure: the target may hold a copy, decide abort
            self._fail(run, TransferError(f"moving {agent_id} failed: {exc}"))
            event = E.PREPARE_FAILED
        finally:
            snapshot.close()
        if event is not E.PREPARED:
            engine.peer_health.drop(destination.url)  # the next move asks it again
        if event is not E.PREPARE_FAILED or run.machine.at(S.PREPARING):  # a stop may have decided already
            await self._feed(run, event)
        assert run.answer is not None
        return await run.answer

    # --- prepare: the envelope ----------------------------------------------------------------------------

    async def _send_envelope(self, run: SourceRun, snapshot: Snapshot) -> Event:
        """Send the envelope (retries under the same transfer id) until the target prepared or refused it;
        ``PREPARE_FAILED`` when no attempt got an answer (the target may hold a prepared copy)."""
        metadata, ticket = run.metadata, run.ticket
        assert metadata is not None
        assert ticket is not None
        if run.local:
            try:
                await self._engine.target.prepare_local(metadata, snapshot)
            except PagletError as exc:
                self._fail(run, exc)
                return E.REFUSED
            return E.PREPARED
        url = run.machine.peer
        attempts = ticket.retries + 1
        last: BaseException | None = None
        owner = metadata.clone_of or metadata.agent_id
        busy_wait = 0.0
        for attempt in range(attempts):
            if attempt:
                await asyncio.sleep(max(ticket.retry_interval, busy_wait))
                if not run.machine.at(S.PREPARING):  # decided meanwhile (the host is stopping)
                    return E.PREPARE_FAILED
            busy_wait = 0.0
            try:
                response = await self._host.aclient.request(
                    "POST",
                    url + "/agents",
                    body=iter(EnvelopeEncoder(metadata, snapshot.view)),
                    content_type=ENVELOPE_CONTENT_TYPE,
                    timeout=ticket.timeout,
                )
            except (PagletError, OSError, TimeoutError) as exc:
                last = exc
                self._engine.failed(
                    "post",
                    f"attempt {attempt + 1} to {url} failed: {exc}",
                    agent_id=owner,
                    destination=url,
                    attempt=attempt + 1,
                    attempts=attempts,
                )
                continue
            data = response.json() if response.body else None
            if response.status == 200 and isinstance(data, dict) and data.get("status") == "prepared":
                return E.PREPARED
            from paglets.remote.client import error_from_response

            error = error_from_response(url, response.status, data)
            if response.status == 503 and attempt + 1 < attempts:
                # busy (its inbound move budget is taken): it kept nothing of this attempt, so retry
                # under the same transfer id after its Retry-After
                last = error
                busy_wait = _retry_after(response.header("retry-after"))
                self._engine.failed(
                    "post",
                    f"attempt {attempt + 1} to {url} found it busy: {error}",
                    agent_id=owner,
                    destination=url,
                    attempt=attempt + 1,
                    attempts=attempts,
                )
                continue
            if response.status >= 500:  # the target failed while answering: it may hold a copy
                last = error
                self._engine.failed(
                    "post",
                    f"attempt {attempt + 1} to {url} failed: {error}",
                    agent_id=owner,
                    destination=url,
                    attempt=attempt + 1,
                    attempts=attempts,
                )
                continue
            self._engine.failed(
                "post",
                f"{url} refused the paglet: {error}",
                agent_id=owner,
                destination=url,
                attempt=attempt + 1,
                attempts=attempts,
            )
            failure = TransferError(f"{url} refused {metadata.agent_id}: {error}")
            failure.__cause__ = error
            self._fail(run, failure)
            return E.REFUSED
        failure = TransferError(
            f"could not move {metadata.agent_id} to {url} after {attempts} attempt(s): {last}"
        )
        failure.__cause__ = last
        self._fail(run, failure)
        return E.PREPARE_FAILED

    def _fail(self, run: SourceRun, error: BaseException) -> None:
        """Remember the failure that an ``ANSWER_FAILURE`` will raise."""
        run.info["failure"] = error

    # --- the machine's actions ----------------------------------------------------------------------------

    async def _feed(self, run: SourceRun, event: Event) -> None:
        for action in run.machine.handle(event):
            await self._perform(run, action)

    async def _perform(self, run: SourceRun, action: Action) -> None:
        engine = self._engine
        if action in (A.WRITE_COMMIT, A.WRITE_ABORT):
            await self._feed(run, await self._write_decision(run, action is A.WRITE_COMMIT))
        elif action is A.SEND_COMMIT:
            await self._commit(run)
        elif action is A.SEND_ABORT:
            if run.local:
                await engine.target.abort(run.transfer_id)
                await self._feed(run, E.ABORT_ACKED)
            else:
                engine.spawn(engine.recovery.tell_abort(run))
        elif action is A.SEND_FORGET:
            await self._forget(run)
        elif action is A.RELEASE_COPY:
            self._release(run)
        elif action is A.FINISH_CLONE:
            await self._finish_clone(run)
        elif action is A.RESUME_COPY:
            self._resume(run)
        elif action is A.HOLD_COPY:
            await engine.holding.hold(run)
        elif action is A.RESTORE_HELD:
            await engine.holding.restore(run.transfer_id)
        elif action is A.DROP_HELD:
            await engine.holding.drop(run)
        elif action is A.LOST:
            engine.report(
                "lost",
                f"transfer {run.transfer_id}: the target has no copy of {run.machine.agent_id}, and this "
                "host's copy ended with its previous run",
                agent_id=run.machine.agent_id,
            )
        elif action is A.ANSWER_SUCCESS:
            self._answer(run, result=run.proxy or self._fallback_proxy(run))
        elif action is A.ANSWER_FAILURE:
            failure = run.info.get("failure")
            if not isinstance(failure, BaseException):
                failure = TransferError(
                    f"moving {run.machine.agent_id} failed: the target {run.machine.peer} lost the "
                    f"prepared copy (transfer {run.transfer_id}); it runs on here"
                )
            self._answer(run, error=failure)
        elif action is A.ANSWER_IN_DOUBT:
            self._answer(
                run,
                error=TransferInDoubtError(
                    f"move of {run.machine.agent_id} to {run.machine.peer} is in doubt: transfer "
                    f"{run.transfer_id} was committed but the target did not confirm it; the paglet stays "
                    "paused here and runs exactly once, on one of the two hosts, once they reach each other",
                    transfer_id=run.transfer_id,
                ),
            )
            engine.spawn(engine.recovery.resolve(run))
        elif action is A.DROP_RECORD:
            if not run.local:
                engine.drop_record(run.transfer_id, "source")
        elif action is A.SEND_ENVELOPE:
            pass  # the attempts of ``_send_envelope``
        else:  # pragma: no cover - the table has no other source action
            raise AssertionError(f"unexpected source action {action}")

    def _fallback_proxy(self, run: SourceRun) -> dict[str, Any]:
        agent_id = run.metadata.agent_id if run.metadata is not None else run.machine.agent_id
        return {"host_url": run.machine.peer, "agent_id": agent_id}

    def _answer(
        self, run: SourceRun, *, result: dict[str, Any] | None = None, error: BaseException | None = None
    ) -> None:
        future = run.answer
        run.copy_decided.set()
        if future is None or future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result or {})

    async def _write_decision(self, run: SourceRun, commit: bool) -> Event:
        """Write #1: the decision is durable before it is announced (none for a move within this host)."""
        if run.local:
            return E.WRITTEN
        machine = run.machine
        record = TransferRecord(
            transfer_id=run.transfer_id,
            role="source",
            outcome="committed" if commit else "aborted",
            agent_id=run.metadata.agent_id if run.metadata is not None else machine.agent_id,
            peer=machine.peer,
            kind=machine.kind,
            written_at=time.time(),
        )
        try:
            await self._engine.write_record(record)
        except (OSError, PagletError) as exc:
            _log.error("transfer %s: cannot record the decision: %s", run.transfer_id, exc)
            return E.WRITE_FAILED
        return E.WRITTEN

    async def _commit(self, run: SourceRun) -> None:
        """Commit attempts within the caller's window; then ``GIVE_UP`` (in doubt) if still undecided."""
        if run.local:
            answer = await self._engine.target.commit(run.transfer_id)
            self._take_proxy(run, answer)
            await self._feed(run, target_answer_event(str(answer.get("status"))))
            return
        ticket = run.ticket or TransferTicket.from_target(run.machine.peer)
        window = max(MIN_COMMIT_WINDOW, ticket.timeout * (ticket.retries + 1))
        deadline = time.monotonic() + window
        backoff = COMMIT_BACKOFF
        attempt = 0
        while run.machine.at(S.COMMITTING):
            attempt += 1
            await self._feed(run, await self.send_commit(run, ticket.timeout + RUN_SETTLE_WAIT))
            if not run.machine.at(S.COMMITTING):
                return
            if attempt >= COMMIT_ATTEMPTS and time.monotonic() >= deadline:
                await self._feed(run, E.GIVE_UP)
                return
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, MAX_COMMIT_BACKOFF)
            run.machine.handle(E.TIMEOUT)  # asks for the next SEND_COMMIT, which this loop does

    async def send_commit(self, run: SourceRun, timeout: float) -> Event:
        """One commit request; the machine's event for its answer."""
        try:
            reply = await self._host.aclient.request_json(
                "POST", f"{run.machine.peer}/transfers/{run.transfer_id}/commit", {}, timeout=timeout
            )
        except (PagletError, OSError, TimeoutError) as exc:
            _log.warning("commit of transfer %s to %s failed: %s", run.transfer_id, run.machine.peer, exc)
            return E.NO_ANSWER
        if not isinstance(reply, dict):
            return E.NO_ANSWER
        self._take_proxy(run, reply)
        return target_answer_event(str(reply.get("status") or ""))

    def _take_proxy(self, run: SourceRun, reply: dict[str, Any]) -> None:
        proxy = reply.get("proxy")
        if isinstance(proxy, dict):
            run.proxy = {str(k): str(v) for k, v in proxy.items()}

    # --- release and resume -------------------------------------------------------------------------------

    def _release(self, run: SourceRun) -> None:
        """The target executed: the paused copy here ends; its waiting messages follow the paglet."""
        host, ctrl, metadata = self._host, run.ctrl, run.metadata
        if ctrl is None or metadata is None:
            return
        kind = run.machine.kind
        waiting = host.manager.detach(ctrl)
        run.copy_decided.set()
        host.events.emit(
            "retract" if kind == "retract" else "dispatch",
            agent_id=ctrl.agent_id,
            class_name=ctrl.agent_class,
            data={
                "target": {k: v for k, v in run.info.items() if k != "failure"},
                "transfer_id": run.transfer_id,
            },
        )
        self._engine.spawn(host.manager.release_when_idle(ctrl))
        if not run.local:
            host.files.finish_source(list(metadata.registered_files), kind=kind)
            host.files.forget(ctrl.agent_id, remove_work_dir=True)
        run.waiting = waiting  # forwarded once the target said where the paglet settled (``_forget``)

    async def _forget(self, run: SourceRun) -> None:
        """Tell the target it may drop its record; a dispatch whose caller waits also learns there where the
        paglet settled (``run()`` returned or it moved on, bounded wait), which the caller gets."""
        engine, ctrl = self._engine, run.ctrl
        settle = run.machine.kind != "clone" and run.answer is not None and not run.answer.done()
        if run.local:
            answer = await engine.target.forget(run.transfer_id, settle=settle)
            self._take_proxy(run, answer)
        elif not settle:
            engine.recovery.tell_forget(run)
        else:
            timeout = (run.ticket.timeout if run.ticket is not None else 30.0) + RUN_SETTLE_WAIT
            try:
                answer = await self._host.aclient.request_json(
                    "POST",
                    f"{run.machine.peer}/transfers/{run.transfer_id}/forget",
                    {"settle": True},
                    timeout=timeout,
                )
            except (PagletError, OSError, TimeoutError) as exc:
                _log.info("forget of transfer %s not delivered: %s", run.transfer_id, exc)
            else:
                if isinstance(answer, dict):
                    self._take_proxy(run, answer)
        if run.machine.kind != "clone" and not run.local:
            await self._host.moved_away(run.machine.agent_id, run.proxy or self._fallback_proxy(run))
        if ctrl is not None and run.machine.kind != "clone":
            ctrl.moved_to = run.proxy or self._fallback_proxy(run)
            ctrl.settled.set()  # a commit on this host waiting for this paglet's run() learns where it went
        waiting, run.waiting = run.waiting, []
        if waiting:
            engine.spawn(self._host.forward_waiting(waiting, run.proxy or self._fallback_proxy(run)))
        run.ctrl = None  # released: the remembered transfer holds nothing of the process

    def _resume(self, run: SourceRun) -> None:
        ctrl = run.ctrl
        run.copy_decided.set()
        if ctrl is not None:
            ctrl.resume()
            run.resumed = True
        if run.files and not run.machine.at(S.IN_DOUBT):
            self._engine.spawn(unstage_files(self._host, run.files, run.local, run.machine.agent_id))

    async def _finish_clone(self, run: SourceRun) -> None:
        """The clone exists: the ``cloned`` hook runs, then the source copy resumes (if still paused) and
        the ``clone`` event is emitted, as in paglets 2.0.

        The machine asks this once per clone, in the run of the host that cloned: right away while the
        caller waits, or when a clone answered *in doubt* is confirmed in the background (its source copy
        ran on meanwhile; the hook then runs in it if it is still active here). A self-initiated clone
        whose caller waits runs ``on_cloned`` itself once its call returns."""
        host, ctrl, metadata = self._host, run.ctrl, run.metadata
        if ctrl is None or metadata is None:
            return
        waiting = run.answer is not None and not run.answer.done()
        live = host.manager.controllers.get(ctrl.agent_id) is ctrl and ctrl.status in ("ready", "moving")
        try:
            if live and (run.hooks_in_child or not waiting):
                event = CloneEvent(
                    agent_id=ctrl.agent_id,
                    host_name=host.name,
                    host_address=host.address,
                    source_agent_id=ctrl.agent_id,
                    clone_agent_id=metadata.agent_id,
                    source_host_name=host.name,
                    source_host_address=host.address,
                    target_host_name=metadata.target_host_name,
                    target_host_address=metadata.target_host_address,
                )
                await ctrl.lifecycle("cloned", event, host.manager.timeouts.hook)
        except PagletError as exc:
            _log.warning("cloned hook of %s failed: %s", ctrl.agent_id, exc)
        finally:
            if not run.resumed:
                ctrl.resume()
                run.resumed = True
        host.events.emit(
            "clone",
            agent_id=ctrl.agent_id,
            class_name=ctrl.agent_class,
            data={
                "clone_agent_id": metadata.agent_id,
                "target": {k: v for k, v in run.info.items() if k != "failure"},
                "transfer_id": run.transfer_id,
            },
        )


def _retry_after(value: str | None) -> float:
    """Seconds from a ``Retry-After`` header (delta-seconds only), within ``[0, MAX_RETRY_AFTER]``."""
    try:
        seconds = float(value) if value is not None else 0.0
    except ValueError:
        return 0.0
    return min(max(seconds, 0.0), MAX_RETRY_AFTER) if seconds == seconds else 0.0
