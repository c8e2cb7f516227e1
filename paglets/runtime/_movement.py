"""Moving paglets: dispatch, clone and retract with an exactly-once hand-over (docs/implementing/movement.md).

A move is a two-phase hand-over under a transfer id (32 hex digits, chosen by the source):

1. **Prepare.** The source pauses the paglet (its mailbox keeps accepting messages but starts none),
   runs the leaving hook and the resource cleanup, snapshots the state and streams the envelope
   (``paglets/wire/envelope.py``) to the target: ``POST /agents`` with ``Content-Type:
   application/x-paglets-envelope``. The target verifies every checksum while the bytes arrive (the state
   goes straight into a memfd segment), starts a process, runs the arrival hook, and answers
   ``{"status": "prepared"}``. Nothing runs ``run()`` yet and nothing is registered: the paglet is not
   live on the target.
2. **Commit.** Only after that answer does the source drop its copy (it records the transfer as
   committed and ends its process), then it sends ``POST /transfers/{id}/commit``. The target registers
   the paglet, starts ``run()`` and answers once ``run()`` returned or the paglet moved on (bounded wait),
   with the proxy of where the paglet now is. The commit does not depend on how long ``run()`` takes.

Failures: anything before the prepared answer leaves the source copy active (the source resumes it and
tells the target to abort, best effort); a failing arrival hook, an unimportable class or a crash on the
target roll back completely there. A retried envelope with a known transfer id is answered from the
record of that transfer and never creates a second copy. A target that does not hear the commit asks the
source (``GET /transfers/{id}``) and commits, aborts, or keeps asking; the prepared copy is never dropped
on a guess.

Moves to this host's own address never use HTTP: the same two phases run in-process.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Literal

from paglets.core._ids import check_agent_id
from paglets.core.errors import (
    InvalidAgentError,
    InvalidAgentIdError,
    PagletError,
    TransferError,
)
from paglets.core.events import CloneEvent, MobilityEvent
from paglets.core.runtime_values import ArrivalMode
from paglets.persistence._recordformat import StoredRecord
from paglets.persistence.persistency import DeactivationPolicy, DeactivationRequest
from paglets.remote.transfer import TransferTicket
from paglets.runtime._controller import PagletController, Snapshot
from paglets.runtime._handoff import OutgoingSegment
from paglets.runtime._inbound import INBOUND_DECODE_WORKERS, InboundBudget, InboundMove
from paglets.runtime._tasks import BackgroundTasks
from paglets.wire.envelope import EnvelopeEncoder, EnvelopeMetadata

if TYPE_CHECKING:
    from paglets.runtime.host import Host

__all__ = ["ENVELOPE_CONTENT_TYPE", "MovementEngine"]

_log = logging.getLogger("paglets.runtime")

#: Content type of a movement envelope request body.
ENVELOPE_CONTENT_TYPE: Final = "application/x-paglets-envelope"

#: Seconds a commit answer waits for the arrived paglet's ``run()`` to return or the paglet to move on.
RUN_SETTLE_WAIT: Final = 30.0
#: Seconds a target waits for the source's commit before asking the source what happened.
COMMIT_WAIT: Final = 30.0
#: Longest pause between two questions to an unreachable source about an unfinished transfer.
MAX_RECOVERY_BACKOFF: Final = 60.0
#: Transfers remembered (by either side) to answer retries and questions; the oldest finished go first.
MAX_TRANSFER_RECORDS: Final = 4096
#: Seconds a finished transfer is remembered.
TRANSFER_RECORD_TTL: Final = 3600.0
#: Attempts at delivering a commit before leaving it to the target's own recovery.
COMMIT_ATTEMPTS: Final = 5
#: Longest wait a target's ``Retry-After`` may ask of a retrying source (a peer's number, so bounded).
MAX_RETRY_AFTER: Final = 30.0

Outcome = Literal["preparing", "prepared", "committed", "aborted"]
MoveKind = Literal["dispatch", "clone", "retract"]


@dataclass(slots=True)
class _Transfer:
    """What a host remembers about one transfer (as source or as target)."""

    transfer_id: str
    role: Literal["source", "target"]
    outcome: Outcome
    agent_id: str
    peer: str  # the other host's address
    created: float = field(default_factory=time.monotonic)
    ctrl: PagletController | None = None  # target: the prepared process
    committed: asyncio.Event | None = None
    ready: asyncio.Event | None = None  # target: set once preparing ended (prepared or aborted)
    #: target, ``ArrivalMode.INACTIVE``: the arrived state, stored as an inactive record at the commit
    inactive: tuple[EnvelopeMetadata, bytes] | None = None
    result: dict[str, Any] | None = None
    error: str = ""


@dataclass(frozen=True, slots=True)
class _Target:
    url: str
    name: str
    same_host: bool


class MovementEngine:
    """See the module docstring. Lives on the host's event loop."""

    def __init__(self, host: Host) -> None:
        self._host = host
        self._transfers: dict[str, _Transfer] = {}
        self._tasks = BackgroundTasks(host.events)
        #: Bytes of decoded state that unfinished inbound moves may hold (``Host(inbound_move_budget=...)``).
        self.budget = InboundBudget(host.config.inbound_move_budget)
        #: Seconds an inbound move waits for budget before it is refused with 503.
        self.budget_wait = host.config.inbound_budget_wait
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None

    # --- bookkeeping ------------------------------------------------------------------------------------

    def _remember(self, transfer: _Transfer) -> None:
        self._transfers[transfer.transfer_id] = transfer
        if len(self._transfers) > MAX_TRANSFER_RECORDS:
            now = time.monotonic()
            for tid, record in list(self._transfers.items()):
                if len(self._transfers) <= MAX_TRANSFER_RECORDS:
                    break
                if record.outcome != "prepared" or now - record.created > TRANSFER_RECORD_TTL:
                    del self._transfers[tid]

    def _spawn_task(self, coro: Any) -> None:
        self._tasks.spawn(coro)  # a failure is reported (task-failed), never lost

    def status(self, transfer_id: str) -> dict[str, Any]:
        record = self._transfers.get(transfer_id)
        return {
            "transfer_id": transfer_id,
            "status": "unknown" if record is None else record.outcome,
            "role": None if record is None else record.role,
        }

    async def stop(self) -> None:
        self._tasks.cancel_all()
        for record in list(self._transfers.values()):
            if record.ctrl is not None and record.outcome == "prepared":
                await self._host.manager.discard(record.ctrl)
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    # --- the source side ---------------------------------------------------------------------------------

    async def _resolve(self, ticket: TransferTicket) -> _Target:
        url = self._host.resolve_host_url(ticket.destination)
        same = url.rstrip("/") == self._host.address.rstrip("/")
        return _Target(url=url.rstrip("/"), name=self._host.name if same else "", same_host=same)

    async def preflight(
        self, ticket: TransferTicket, target: _Target, *, agent_id: str | None = None
    ) -> dict[str, Any]:
        """Check the target can take the paglet (reachable, capabilities, code version)."""

        def failed(text: str) -> TransferError:
            return self._failed("preflight", text, agent_id=agent_id, destination=target.url)

        if target.same_host:
            health = self._host.health()
        else:
            try:
                health = await self._host.aclient.request_json(
                    "GET", target.url + "/health", timeout=ticket.timeout
                )
            except (PagletError, OSError) as exc:
                raise failed(f"target {target.url} is not reachable: {exc}") from exc
            if not isinstance(health, dict):
                raise failed(f"target {target.url} answered /health with {health!r}")
        capabilities = set(health.get("capabilities") or ())
        missing = [c for c in ticket.required_capabilities if c not in capabilities]
        if missing:
            raise failed(f"target {target.url} lacks capabilities {missing}")
        version = str(health.get("code_version") or "")
        if ticket.expected_code_version is not None:
            if version != ticket.expected_code_version:
                raise failed(
                    f"target {target.url} runs code version {version!r}, "
                    f"the ticket expects {ticket.expected_code_version!r}"
                )
        elif version != self._host.code_version:
            raise failed(
                f"target {target.url} runs code version {version!r}, this host {self._host.code_version!r}; "
                "set expected_code_version on the ticket to move anyway"
            )
        return {
            "name": str(health.get("name") or ""),
            "address": str(health.get("address") or target.url),
            "code_version": version,
            "capabilities": sorted(capabilities),
        }

    def _failed(self, stage: str, text: str, *, agent_id: str | None = None, **data: Any) -> TransferError:
        """Report a failure (``_report``) and return the error to raise."""
        self._report(stage, text, agent_id=agent_id, **data)
        return TransferError(text)

    def _report(self, stage: str, text: str, *, agent_id: str | None = None, **data: Any) -> None:
        """A ``transfer-failed`` event, which the host console shows (``data``: ``stage`` and, as 2.0 has
        them, ``destination``, ``attempt``, ``attempts`` where they apply)."""
        ctrl = self._host.manager.controllers.get(agent_id) if agent_id is not None else None
        self._host.events.emit(
            "transfer-failed",
            agent_id=agent_id,
            class_name=None if ctrl is None else ctrl.agent_class,
            error=text,
            data={"stage": stage, **data},
        )

    def _paused(self, agent_id: str) -> PagletController:
        ctrl = self._host.manager.ready(agent_id)
        ctrl.status = "moving"
        return ctrl

    def _resume(self, ctrl: PagletController) -> None:
        if ctrl.status == "moving":
            ctrl.status = "ready"
            ctrl.pump()

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
        host = self._host
        ticket = TransferTicket.from_target(target if target is not None else host.address)
        if clone_id is not None:
            check_agent_id(clone_id)  # a paglet chose its clone's id
        try:
            destination = await self._resolve(ticket)
        except PagletError as exc:
            self._report("resolve", str(exc), agent_id=agent_id)
            raise
        ctrl = host.manager.ready(agent_id)
        info = await self.preflight(ticket, destination, agent_id=agent_id)
        ctrl = self._paused(agent_id)
        files: list[dict[str, Any]] = []
        try:
            new_id = (clone_id or uuid.uuid4().hex) if kind == "clone" else agent_id
            if hooks_in_child:
                await self._leaving_hooks(ctrl, kind, info, new_id)
            if snapshot is None:
                snapshot = await ctrl.snapshot(host.manager.timeouts.state)
            if not destination.same_host or kind == "clone":
                files = await self._stage_files(agent_id, new_id, destination)
            metadata = EnvelopeMetadata(
                kind=kind,
                agent_id=new_id,
                agent_class_name=ctrl.agent_class,
                state_class_name=ctrl.state_class,
                transfer_id=uuid.uuid4().hex,
                source_host_name=host.name,
                source_host_address=host.address,
                target_host_name=info["name"],
                target_host_address=info["address"],
                clone_of=agent_id if kind == "clone" else None,
                ticket=ticket.to_wire(),
                registered_files=files,
            )
            if destination.same_host:
                prepared = await self._prepare_local(metadata, snapshot)
            else:
                await self._post_envelope(destination.url, metadata, snapshot, ticket)
                prepared = None
        except BaseException as exc:
            self._resume(ctrl)
            if files:
                self._spawn_task(self._unstage_files(files, destination, agent_id))
            if isinstance(exc, PagletError) and not isinstance(exc, TransferError):
                raise
            if isinstance(exc, TransferError):
                raise
            raise TransferError(f"moving {agent_id} failed: {exc}") from exc
        finally:
            if snapshot is not None:
                snapshot.close()
        if kind == "clone":
            return await self._finish_clone(ctrl, metadata, destination, prepared, hooks_in_child, info)
        return await self._commit_source(ctrl, metadata, destination, prepared, kind, info)

    async def _stage_files(self, agent_id: str, new_id: str, destination: _Target) -> list[dict[str, Any]]:
        host = self._host
        if not host.files.refs(agent_id):
            return []
        local = host.artifacts if destination.same_host else None
        return await asyncio.get_running_loop().run_in_executor(
            None,
            functools.partial(
                host.files.stage,
                agent_id,
                destination.url,
                host.client,
                new_agent_id=new_id,
                local_store=local,
            ),
        )

    async def _unstage_files(self, files: list[dict[str, Any]], destination: _Target, agent_id: str) -> None:
        host = self._host
        local = host.artifacts if destination.same_host else None
        unstage = functools.partial(host.files.unstage, local_store=local, agent_id=agent_id)
        # a file that cannot be deleted is reported by unstage (file-unstage-failed)
        await asyncio.get_running_loop().run_in_executor(None, unstage, files, host.client)

    async def _leaving_hooks(
        self, ctrl: PagletController, kind: MoveKind, info: dict[str, Any], new_id: str
    ) -> None:
        host = self._host
        timeout = host.manager.timeouts.hook
        if kind == "clone":
            event: Any = CloneEvent(
                agent_id=ctrl.agent_id,
                host_name=host.name,
                host_address=host.address,
                source_agent_id=ctrl.agent_id,
                clone_agent_id=new_id,
                source_host_name=host.name,
                source_host_address=host.address,
                target_host_name=info["name"],
                target_host_address=info["address"],
            )
            await ctrl.lifecycle("cloning", event, timeout)
            return
        event = MobilityEvent(
            agent_id=ctrl.agent_id,
            host_name=host.name,
            host_address=host.address,
            source_host_name=host.name,
            source_host_address=host.address,
            target_host_name=info["name"],
            target_host_address=info["address"],
            reason="retract" if kind == "retract" else "dispatch",
        )
        await ctrl.lifecycle("reverting" if kind == "retract" else "dispatching", event, timeout)
        await ctrl.resources("cleanup", reason=kind, timeout=host.manager.timeouts.resources)

    async def _post_envelope(
        self, url: str, metadata: EnvelopeMetadata, snapshot: Snapshot, ticket: TransferTicket
    ) -> dict[str, Any]:
        """Send the envelope (with retries under the same transfer id) until the target prepared it."""
        attempts = ticket.retries + 1
        last: BaseException | None = None
        owner = metadata.clone_of or metadata.agent_id
        busy_wait = 0.0
        for attempt in range(attempts):
            if attempt:
                await asyncio.sleep(max(ticket.retry_interval, busy_wait))
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
                self._failed(
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
                return data
            from paglets.remote.client import error_from_response

            error = error_from_response(url, response.status, data)
            if response.status == 503 and attempt + 1 < attempts:
                # busy (its inbound move budget is taken): it kept nothing of this attempt, so retry
                # under the same transfer id after its Retry-After
                last = error
                busy_wait = _retry_after(response.header("retry-after"))
                self._failed(
                    "post",
                    f"attempt {attempt + 1} to {url} found it busy: {error}",
                    agent_id=owner,
                    destination=url,
                    attempt=attempt + 1,
                    attempts=attempts,
                )
                continue
            self._failed(
                "post",
                f"{url} refused the paglet: {error}",
                agent_id=owner,
                destination=url,
                attempt=attempt + 1,
                attempts=attempts,
            )
            self._spawn_task(self._tell_abort(url, metadata.transfer_id))
            raise TransferError(f"{url} refused {metadata.agent_id}: {error}") from error
        self._spawn_task(self._tell_abort(url, metadata.transfer_id))
        raise TransferError(
            f"could not move {metadata.agent_id} to {url} after {attempts} attempt(s): {last}"
        ) from last

    async def _tell_abort(self, url: str, transfer_id: str) -> None:
        self._remember(_Transfer(transfer_id, "source", "aborted", "", url))
        try:
            await self._host.aclient.request_json(
                "POST", f"{url}/transfers/{transfer_id}/abort", {}, timeout=5.0
            )
        except (PagletError, OSError, TimeoutError):
            pass  # the target asks us later and learns the transfer was aborted

    async def _commit_source(
        self,
        ctrl: PagletController,
        metadata: EnvelopeMetadata,
        destination: _Target,
        prepared: _Transfer | None,
        kind: MoveKind,
        info: dict[str, Any],
    ) -> dict[str, Any]:
        """The target prepared the paglet: drop the copy here, then commit there."""
        host = self._host
        self._remember(_Transfer(metadata.transfer_id, "source", "committed", ctrl.agent_id, destination.url))
        waiting = host.manager.detach(ctrl)
        host.events.emit(
            "retract" if kind == "retract" else "dispatch",
            agent_id=ctrl.agent_id,
            class_name=ctrl.agent_class,
            data={"target": dict(info), "transfer_id": metadata.transfer_id},
        )
        self._spawn_task(host.manager.release_when_idle(ctrl))
        if not destination.same_host:
            host.files.finish_source(list(metadata.registered_files), kind=kind)
            host.files.forget(ctrl.agent_id, remove_work_dir=True)
        if prepared is not None:
            committed = await self._commit_local(prepared, wait_run=True)
            result: dict[str, Any] = committed["proxy"]
        else:
            result = await self._send_commit(destination.url, metadata)
        ctrl.moved_to = result
        ctrl.settled.set()  # a commit on this host waiting for this paglet's run() learns where it went
        self._spawn_task(host.forward_waiting(waiting, result))
        return result

    async def _send_commit(self, url: str, metadata: EnvelopeMetadata) -> dict[str, Any]:
        fallback = {"host_url": url, "agent_id": metadata.agent_id}
        for attempt in range(COMMIT_ATTEMPTS):
            try:
                reply = await self._host.aclient.request_json(
                    "POST",
                    f"{url}/transfers/{metadata.transfer_id}/commit",
                    {},
                    timeout=RUN_SETTLE_WAIT + 10.0,
                )
            except (PagletError, OSError, TimeoutError) as exc:
                _log.warning(
                    "commit of transfer %s to %s failed (attempt %d): %s",
                    metadata.transfer_id,
                    url,
                    attempt + 1,
                    exc,
                )
                await asyncio.sleep(min(2.0**attempt * 0.1, 5.0))
                continue
            proxy = reply.get("proxy") if isinstance(reply, dict) else None
            return proxy if isinstance(proxy, dict) else fallback
        return fallback  # the target asks us and commits on its own

    async def _finish_clone(
        self,
        ctrl: PagletController,
        metadata: EnvelopeMetadata,
        destination: _Target,
        prepared: _Transfer | None,
        hooks_in_child: bool,
        info: dict[str, Any],
    ) -> dict[str, Any]:
        host = self._host
        self._remember(_Transfer(metadata.transfer_id, "source", "committed", ctrl.agent_id, destination.url))
        try:
            if prepared is not None:
                result: dict[str, Any] = (await self._commit_local(prepared, wait_run=False))["proxy"]
            else:
                result = await self._send_commit(destination.url, metadata)
            if hooks_in_child:
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
        finally:
            self._resume(ctrl)
        host.events.emit(
            "clone",
            agent_id=ctrl.agent_id,
            class_name=ctrl.agent_class,
            data={
                "clone_agent_id": metadata.agent_id,
                "target": dict(info),
                "transfer_id": metadata.transfer_id,
            },
        )
        return result

    # --- the target side ---------------------------------------------------------------------------------

    async def receive(self, chunks: AsyncIterator[Any], *, max_state_bytes: int) -> dict[str, Any]:
        """An envelope arrives over HTTP: verify it while it streams, under the host's inbound move budget
        and off the event loop (``paglets/runtime/_inbound.py``), then prepare the paglet."""
        move = InboundMove(
            self.budget, self._decode_pool(), max_state_bytes=max_state_bytes, wait=self.budget_wait
        )
        seen: list[_Transfer] = []

        def known(metadata: EnvelopeMetadata) -> bool:
            record = self._transfers.get(metadata.transfer_id)
            if record is not None and record.role == "target":
                seen.append(record)
                return True
            return False

        try:
            decoded = await move.run(chunks, known)
            if decoded is None:
                return await self._answer_when_ready(seen[0])
            segment = move.take_segment()
            return await self._prepare(decoded.metadata, segment, length=decoded.state_length)
        finally:
            move.release()

    def _decode_pool(self) -> concurrent.futures.ThreadPoolExecutor:
        if self._pool is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(
                max_workers=INBOUND_DECODE_WORKERS, thread_name_prefix=f"paglets-inbound-{self._host.name}"
            )
        return self._pool

    async def _answer_when_ready(self, record: _Transfer) -> dict[str, Any]:
        """Answer a retried or duplicated envelope with the outcome of the first one."""
        if record.ready is not None:
            await record.ready.wait()
        return self._answer(record)

    def _answer(self, record: _Transfer) -> dict[str, Any]:
        if record.outcome == "aborted":
            raise TransferError(f"transfer {record.transfer_id} was aborted {record.error}".rstrip())
        return {
            "status": "prepared",
            "transfer_id": record.transfer_id,
            "proxy": {"host_url": self._host.address, "agent_id": record.agent_id},
        }

    async def _prepare(
        self, metadata: EnvelopeMetadata, segment: OutgoingSegment, *, length: int
    ) -> dict[str, Any]:
        known = self._transfers.get(metadata.transfer_id)
        if known is not None and known.role == "target":
            segment.close()
            return self._answer(known)
        try:
            check_agent_id(metadata.agent_id)  # ids from the network: never a paglet named "", "/tmp/x", ...
            if metadata.clone_of is not None:
                check_agent_id(metadata.clone_of)
        except InvalidAgentIdError:
            segment.close()
            raise
        record = await self._prepare_record(metadata, segment, length)
        self._spawn_task(self._await_commit(record, metadata.source_host_address))
        return self._answer(record)

    async def _prepare_record(
        self, metadata: EnvelopeMetadata, segment: OutgoingSegment, length: int
    ) -> _Transfer:
        host = self._host
        if metadata.kind != "clone" and not self._same_host_source(metadata):
            existing = host.manager.controllers.get(metadata.agent_id)
            if existing is not None and existing.status not in ("gone", "crashed"):
                segment.close()
                raise TransferError(f"paglet {metadata.agent_id} is already active on host {host.name}")
        inactive_state: bytes | None = None
        if (metadata.ticket or {}).get("arrival_mode") == ArrivalMode.INACTIVE.value:
            if host.persistence.summary(metadata.agent_id) is not None:
                segment.close()
                raise TransferError(f"paglet {metadata.agent_id} is already stored on host {host.name}")
            try:
                inactive_state = segment.read(length)
            finally:
                segment.close()
        else:
            try:
                segment.seal(length)
            except BaseException:
                segment.close()
                raise
        hook, event = self._arrival_event(metadata)
        record = _Transfer(
            metadata.transfer_id,
            "target",
            "preparing",
            metadata.agent_id,
            metadata.source_host_address,
            committed=asyncio.Event(),
            ready=asyncio.Event(),
        )
        record.result = {
            "kind": metadata.kind,
            "class_name": metadata.agent_class_name,
            "clone_of": metadata.clone_of,
        }
        self._remember(record)  # from here on, a duplicate of this envelope waits for this outcome
        assert record.ready is not None
        try:
            if metadata.registered_files and not (
                self._same_host_source(metadata) and metadata.kind != "clone"
            ):
                imported = await asyncio.get_running_loop().run_in_executor(
                    None,
                    host.files.import_files,
                    metadata.agent_id,
                    list(metadata.registered_files),
                    host.artifacts,
                )
                host.files.restore(metadata.agent_id, imported)
            if inactive_state is not None:
                record.inactive = (metadata, inactive_state)
            else:
                record.ctrl = await host.manager.prepare(
                    agent_id=metadata.agent_id,
                    agent_class=metadata.agent_class_name,
                    state_class=metadata.state_class_name,
                    state_segment=segment,
                    hook=hook,
                    event=event,
                )
        except PagletError as exc:
            record.outcome, record.error = "aborted", f"({exc})"
            self._forget_imports(metadata)
            self._failed(
                "arrival", f"arrival of {metadata.agent_id} failed: {exc}", agent_id=metadata.agent_id
            )
            raise TransferError(f"arrival of {metadata.agent_id} on {host.name} failed: {exc}") from exc
        except BaseException:
            record.outcome = "aborted"
            self._forget_imports(metadata)
            raise
        finally:
            record.ready.set()
        if record.outcome == "preparing":
            record.outcome = "prepared"
        else:  # aborted while the hook ran
            if record.ctrl is not None:
                await host.manager.discard(record.ctrl)
            raise TransferError(f"transfer {metadata.transfer_id} was aborted")
        return record

    def _forget_imports(self, metadata: EnvelopeMetadata) -> None:
        """An arrival failed: remove the files it imported (only if this host is not also the source)."""
        if metadata.registered_files and not (self._same_host_source(metadata) and metadata.kind != "clone"):
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

    async def _prepare_local(self, metadata: EnvelopeMetadata, snapshot: Snapshot) -> _Transfer:
        loop = asyncio.get_running_loop()
        segment = await loop.run_in_executor(None, OutgoingSegment.from_payload, snapshot.view)
        return await self._prepare_record(metadata, segment, snapshot.view.nbytes)

    async def commit(self, transfer_id: str) -> dict[str, Any]:
        """``POST /transfers/{id}/commit``: the source dropped its copy; this one goes live."""
        record = self._transfers.get(transfer_id)
        if record is None or record.role != "target":
            raise InvalidAgentError(f"no transfer {transfer_id} on host {self._host.name}")
        if record.outcome == "aborted":
            raise TransferError(f"transfer {transfer_id} was aborted")
        wait_run = bool(record.result and record.result.get("kind") != "clone")
        return await self._commit_local(record, wait_run=wait_run)

    async def _commit_local(self, record: _Transfer, *, wait_run: bool) -> dict[str, Any]:
        host = self._host
        if record.inactive is not None:
            return await self._commit_inactive(record)
        ctrl = record.ctrl
        assert ctrl is not None
        if record.outcome == "prepared":
            record.outcome = "committed"
            try:
                await host.manager.commit_prepared(ctrl)
            except BaseException:
                record.outcome = "aborted"
                raise
            finally:
                if record.committed is not None:
                    record.committed.set()
            kind = (record.result or {}).get("kind", "dispatch")
            host.events.emit(
                "clone" if kind == "clone" else "arrival",
                agent_id=ctrl.agent_id,
                class_name=ctrl.agent_class,
                data=_arrival_data(record, active=True),
            )
        proxy = {"host_url": host.address, "agent_id": ctrl.agent_id}
        if wait_run:
            try:
                async with asyncio.timeout(RUN_SETTLE_WAIT):
                    await ctrl.settled.wait()
            except TimeoutError:
                pass
            if ctrl.moved_to is not None:
                proxy = ctrl.moved_to
        return {"proxy": proxy, "transfer_id": record.transfer_id}

    async def _commit_inactive(self, record: _Transfer) -> dict[str, Any]:
        """``ArrivalMode.INACTIVE``: store the paglet as an inactive record; no hook runs."""
        host = self._host
        assert record.inactive is not None
        metadata, state = record.inactive
        if record.outcome == "prepared":
            record.outcome = "committed"
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
            except BaseException:
                record.outcome = "aborted"
                raise
            finally:
                if record.committed is not None:
                    record.committed.set()
            host.files.forget(metadata.agent_id, remove_work_dir=False)
            host.events.emit(
                "arrival",
                agent_id=metadata.agent_id,
                class_name=metadata.agent_class_name,
                data=_arrival_data(record, active=False),
            )
        return {
            "proxy": {"host_url": host.address, "agent_id": metadata.agent_id},
            "transfer_id": record.transfer_id,
        }

    async def abort(self, transfer_id: str) -> None:
        record = self._transfers.get(transfer_id)
        if record is None:
            self._remember(_Transfer(transfer_id, "target", "aborted", "", ""))
            return
        if record.role == "target" and record.outcome in ("preparing", "prepared"):
            preparing = record.outcome == "preparing"
            record.outcome = "aborted"
            if record.ctrl is not None and not preparing:
                await self._host.manager.discard(record.ctrl)
            if record.committed is not None:
                record.committed.set()

    async def _await_commit(self, record: _Transfer, source: str) -> None:
        """Target: if the commit does not come, ask the source what happened (never guess)."""
        assert record.committed is not None
        try:
            async with asyncio.timeout(COMMIT_WAIT):
                await record.committed.wait()
            return
        except TimeoutError:
            pass
        backoff = 1.0
        while record.outcome == "prepared":
            try:
                answer = await self._host.aclient.request_json(
                    "GET", f"{source.rstrip('/')}/transfers/{record.transfer_id}", timeout=5.0
                )
                status = answer.get("status") if isinstance(answer, dict) else None
            except (PagletError, OSError, TimeoutError) as exc:
                _log.warning("source %s of transfer %s is unreachable: %s", source, record.transfer_id, exc)
                status = None
            if not _still_prepared(record):
                return
            if status in ("committed", "unknown"):
                # "unknown": the source restarted, so its copy is gone; keep this one
                await self._commit_local(record, wait_run=False)
                return
            if status == "aborted":
                await self.abort(record.transfer_id)
                return
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, MAX_RECOVERY_BACKOFF)


def _arrival_data(record: _Transfer, *, active: bool) -> dict[str, Any]:
    """``data`` of a target's ``arrival``/``clone`` event: 2.0's fields (``kind``, ``source_agent_id`` of a
    clone, ``active: false`` for an inactive arrival) and ours (``source`` host, ``transfer_id``)."""
    result = record.result or {}
    kind = str(result.get("kind") or "dispatch")
    data: dict[str, Any] = {
        "kind": kind,
        "source": record.peer,
        "transfer_id": record.transfer_id,
        "active": active,
    }
    if kind == "clone":
        data["source_agent_id"] = result.get("clone_of") or ""
    return data


def _retry_after(value: str | None) -> float:
    """Seconds from a ``Retry-After`` header (delta-seconds only), within ``[0, MAX_RETRY_AFTER]``."""
    try:
        seconds = float(value) if value is not None else 0.0
    except ValueError:
        return 0.0
    return min(max(seconds, 0.0), MAX_RETRY_AFTER) if seconds == seconds else 0.0


def _still_prepared(record: _Transfer) -> bool:
    """Whether a transfer is still undecided (another task may have decided it during an await)."""
    return record.outcome == "prepared"
