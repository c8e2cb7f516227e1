"""The host side of one paglet process: its channel, its mailbox and the requests in flight.

A controller lives on the host's event loop and is only touched there. It turns host operations into
IPC requests (``request``), answers the process's host calls (typed requests, through the host's control
table), feeds the mailbox to the process one queued message at a time (strictly serial,
highest priority first, FIFO within a priority, unqueued messages bypass the queue), and notices when
the process dies.

Message delivery uses callbacks, not tasks: a reply frame completes the delivery, frees the serial
slot and starts the next message within the same loop turn.

States: ``starting`` (spawned, hook not answered yet) → ``ready`` → ``stopping`` (being disposed or
moved) → ``gone``; or ``crashed`` from any state when the process dies unexpectedly or ``run()`` raises.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final, Literal

import msgspec

from paglets.core.errors import HostError, PagletCrashedError, PagletError, RemoteHostError
from paglets.runtime._channel import HostChannel
from paglets.runtime._mailbox import UNQUEUED_PRIORITY, Delivery, Mailbox
from paglets.wire.control import ControlRequest, StateSegment, decode_control, encode_reply
from paglets.wire.encoded import EncodedMessage, encode_deliver
from paglets.wire.ipc import (
    EMPTY_MESSAGE,
    NIL,
    Deliver,
    GetState,
    HandoffRef,
    Hello,
    HostCall,
    HostReply,
    HostToChild,
    Lifecycle,
    Reply,
    ResourceCall,
    RunFinished,
    Shutdown,
    Start,
    UntypedHostCall,
    decode_body,
    encode_body,
)
from paglets.wire.messages import ErrorInfo, error_info_from_exception, exception_from_error_info
from paglets.wire.values import decode_value, encode_value

if TYPE_CHECKING:
    from paglets.runtime._backend import PagletProcess
    from paglets.runtime._channel_layout import Bell

__all__ = [
    "STATUS_TRANSITIONS",
    "HostCalls",
    "MailboxItem",
    "PagletController",
    "Snapshot",
    "Status",
    "StatusTransitionError",
]

_log = logging.getLogger("paglets.runtime")

Status = Literal["starting", "ready", "moving", "stopping", "gone", "crashed"]

#: The lifecycle of a paglet process: ``status -> statuses it may change to``. Only
#: ``PagletController.transition`` changes a controller's status, and only along this table (a change to
#: the same status is no change); anything else raises ``StatusTransitionError``.
STATUS_TRANSITIONS: Final[dict[Status, frozenset[Status]]] = {
    "starting": frozenset({"ready", "stopping", "gone", "crashed"}),
    "ready": frozenset({"moving", "stopping", "gone", "crashed"}),
    "moving": frozenset({"ready", "stopping", "gone", "crashed"}),  # paused by a move or a deactivation
    "stopping": frozenset({"gone", "crashed"}),
    "crashed": frozenset({"gone"}),  # a crashed process that was released
    "gone": frozenset(),
}


class StatusTransitionError(HostError):
    """A status change that ``STATUS_TRANSITIONS`` does not allow (a runtime bug)."""


#: Seconds a dead process's exit code may take to arrive from the zygote before the crash is reported
#: without it.
EXIT_CODE_WAIT: Final = 2.0

#: Payloads above this size leave the loop thread for the copy into a handoff segment.
_INLINE_LIMIT: Final = 64 * 1024

#: How a controller has its paglet's host calls answered: the host's control table
#: (``paglets.runtime._control.ControlTable.serve``), given the calling controller and the request.
HostCalls = Callable[["PagletController", ControlRequest], Awaitable[object]]


class MailboxItem:
    """One message in a mailbox: what to deliver, and where its reply goes."""

    __slots__ = ("future", "message", "oneway")

    def __init__(
        self,
        message: EncodedMessage,
        oneway: bool,
        future: asyncio.Future[Any] | concurrent.futures.Future[Any] | None,
    ) -> None:
        self.message = message
        self.oneway = oneway
        self.future = future


class Snapshot:
    """An encoded state: ``view`` stays valid until ``close()``."""

    __slots__ = ("_release", "view")

    def __init__(self, view: memoryview, release: Callable[[], None] | None) -> None:
        self.view = view
        self._release = release

    def close(self) -> None:
        release, self._release = self._release, None
        if release is not None:
            release()


class PagletController:
    """See the module docstring."""

    def __init__(
        self,
        *,
        agent_id: str,
        agent_class: str,
        state_class: str,
        channel: HostChannel,
        service_bell: Bell | None,
        process: PagletProcess,
        loop: asyncio.AbstractEventLoop,
        host_calls: HostCalls,
        on_crash: Callable[[PagletController], None],
        on_message_done: Callable[[PagletController, EncodedMessage, ErrorInfo | None], None],
        mailbox_depth: int,
        spawn: Callable[..., object],
    ) -> None:
        self.agent_id = agent_id
        self.agent_class = agent_class
        self.state_class = state_class
        self.channel = channel
        self._service_bell = service_bell
        self.process = process
        self.loop = loop
        #: Starts a background task whose failure is reported (``paglets.runtime._tasks``).
        self._spawn = spawn
        self._status: Status = "starting"
        self.mailbox: Mailbox[MailboxItem] = Mailbox(mailbox_depth)
        #: Guards the mailbox, which user threads push to directly (``submit_threadsafe``).
        self.lock = threading.Lock()
        self._pump_scheduled = False
        self.exitcode: int | None = None
        self.error: str | None = None
        self.pid: int = process.pid
        self.run_finished = False
        self._host_calls = host_calls
        self._on_crash = on_crash
        self._on_message_done = on_message_done
        self._pending: dict[int, Callable[[Reply | BaseException], None]] = {}
        self._ids = itertools.count(1)
        self._hello: asyncio.Future[int] = loop.create_future()
        self._exited: asyncio.Future[int] = loop.create_future()
        self._channel_closed = False
        self.message_waiters: list[asyncio.Future[None]] = []
        #: Set once ``run()`` returned, the paglet crashed, or it moved on (then ``moved_to`` names where).
        self.settled = asyncio.Event()
        #: ``time.monotonic()`` of the last finished message (idle resident services are deactivated).
        self.last_activity = time.monotonic()
        #: Seconds the last finished message took, from its start in the paglet to its reply (metrics).
        self.last_duration = 0.0
        self.moved_to: dict[str, str] | None = None
        #: ``{name: suppress}`` of the paglet's resources as last reported by the process.
        self.resource_status: dict[str, bool] = {}
        #: Services advertised while prepared by an uncommitted move (published at the commit).
        self.held_services: list[Any] = []
        process.add_exit_callback(self._exit_from_thread)
        channel.attach(loop, self._on_frames, self._on_closed)

    # --- status ----------------------------------------------------------------------------------

    @property
    def status(self) -> Status:
        return self._status

    def transition(self, status: Status) -> None:
        """Change the status along ``STATUS_TRANSITIONS``; raises ``StatusTransitionError`` otherwise."""
        if status != self._status and status not in STATUS_TRANSITIONS[self._status]:
            raise StatusTransitionError(
                f"paglet {self.agent_id}: status {self._status} cannot become {status}"
            )
        self._status = status

    def pause(self) -> None:
        """``ready`` → ``moving``: the mailbox keeps accepting messages but starts none."""
        if self._status != "ready":
            raise StatusTransitionError(f"paglet {self.agent_id} is {self._status}, not ready")
        self.transition("moving")

    def resume(self) -> bool:
        """``moving`` → ``ready`` and start what waits; whether it was paused."""
        if self._status != "moving":
            return False
        self.transition("ready")
        self.pump()
        return True

    # --- incoming --------------------------------------------------------------------------------

    def _on_frames(self, frames: list[bytes]) -> None:
        for frame in frames:
            try:
                msg = decode_body(frame)
            except PagletError as exc:
                _log.error("paglet %s sent a bad frame: %s", self.agent_id, exc)
                self.kill()
                return
            if isinstance(msg, Reply):
                callback = self._pending.pop(msg.call_id, None)
                if callback is not None:
                    callback(msg)
            elif isinstance(msg, HostCall):
                self._spawn(self._serve_host_call(msg), agent_id=self.agent_id)
            elif isinstance(msg, UntypedHostCall):
                retired = HostError("untyped host calls (IPC tag 34) are retired; send a HostCall request")
                self._send_quietly(HostReply(msg.call_id, False, NIL, host_call_error(retired)))
            elif isinstance(msg, RunFinished):
                self.run_finished = True
                self.settled.set()
                if msg.error is not None:
                    self._crash(f"run() raised {msg.error.type_name}: {msg.error.message}", kill=True)
                self._wake_message_waiters()
            elif isinstance(msg, Hello) and not self._hello.done():
                self._hello.set_result(msg.pid)

    async def _serve_host_call(self, msg: HostCall) -> None:
        try:
            if msg.request_segment is not None:
                carried = msg.request_segment
                with self.channel.open_handoff(carried.segment, carried.length) as incoming:
                    request = decode_control(bytes(incoming.view))  # Raw fields must outlive the segment
            else:
                request = decode_control(msg.request)
            result = await self._host_calls(self, request)
            payload = encode_reply(result)
        except BaseException as exc:  # every failure goes back to the paglet as its error
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            self._send_quietly(HostReply(msg.call_id, False, NIL, host_call_error(exc)))
            return
        if len(payload) > _INLINE_LIMIT:
            segment = await self.loop.run_in_executor(None, self.channel.segment_maker.from_payload, payload)
            if self.channel.closed:
                segment.close()
                return
            ref = self.channel.send_segment(segment)
            self._send_quietly(
                HostReply(msg.call_id, True, NIL, None, HandoffRef(ref.segment_id, ref.length, 0))
            )
        else:
            self._send_quietly(HostReply(msg.call_id, True, msgspec.Raw(payload)))

    def sent_state(self, ref: StateSegment) -> Snapshot:
        """The state the paglet sent ahead of a self-initiated move or deactivation (a handoff segment);
        closed by its user, or with the channel."""
        segment = self.channel.open_handoff(ref.segment, ref.length)
        return Snapshot(segment.view, segment.close)

    def _send_quietly(self, msg: HostToChild) -> None:
        if not self.channel.closed:
            try:
                self.channel.send(encode_body(msg))
            except PagletError as exc:
                _log.warning("cannot answer paglet %s: %s", self.agent_id, exc)
                return
            if isinstance(msg, HostReply) and msg.call_id % 2:
                self.ring_service()  # answers to calls from threads other than the child's main thread

    def ring_service(self) -> None:
        """Wake the child's service thread (it serves snapshots even while a handler runs)."""
        if self._service_bell is not None:
            self._service_bell.ring()

    def _on_closed(self) -> None:
        self._channel_closed = True
        bell, self._service_bell = self._service_bell, None
        if bell is not None:  # nobody is left to wake
            bell.close()
        if self.status in ("stopping", "gone"):
            self._fail_pending(PagletCrashedError(f"paglet {self.agent_id} stopped"))
            return
        self._spawn(self._report_crash(), agent_id=self.agent_id)

    async def _report_crash(self) -> None:
        try:
            code = await asyncio.wait_for(asyncio.shield(self._exited), EXIT_CODE_WAIT)
        except TimeoutError:
            code = None
        self.exitcode = code
        self._crash(f"process exited with code {code}" if code is not None else "process exited", kill=False)

    def _exit_from_thread(self, code: int) -> None:
        if not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self._set_exit, code)

    def _set_exit(self, code: int) -> None:
        self.exitcode = code
        if not self._exited.done():
            self._exited.set_result(code)

    def _crash(self, reason: str, *, kill: bool) -> None:
        if self.status in ("crashed", "gone"):
            return
        was_stopping = self.status == "stopping"
        self.transition("crashed")
        self.settled.set()
        self.error = reason
        error = PagletCrashedError(f"paglet {self.agent_id} crashed: {reason}")
        self._fail_pending(error)
        if not self._hello.done():
            self._hello.set_exception(error)
            self._hello.exception()  # retrieved here: nobody may be waiting for it
        with self.lock:
            waiting = self.mailbox.close()
        for delivery in waiting:
            self._finish_item(delivery.item, error)
        self._wake_message_waiters()
        if kill:
            self.kill()
        if not was_stopping:
            self._on_crash(self)

    def fail_pending(self, error: PagletError) -> None:
        """Answer every request in flight to the process with ``error`` (it will not answer them)."""
        self._fail_pending(error)

    def _fail_pending(self, error: PagletError) -> None:
        pending, self._pending = self._pending, {}
        for callback in pending.values():
            callback(error)

    # --- requests --------------------------------------------------------------------------------

    def _check_usable(self) -> None:
        if self.status == "crashed":
            raise PagletCrashedError(f"paglet {self.agent_id} crashed: {self.error}")
        if self._channel_closed or self.status == "gone":
            raise PagletCrashedError(f"paglet {self.agent_id} is not running")

    def _send_request(
        self, build: Callable[[int], HostToChild], callback: Callable[[Reply | BaseException], None]
    ) -> None:
        self._send_body(lambda call_id: encode_body(build(call_id)), callback)

    def _send_body(
        self, build: Callable[[int], bytes], callback: Callable[[Reply | BaseException], None]
    ) -> None:
        self._check_usable()
        call_id = next(self._ids)
        self._pending[call_id] = callback
        try:
            self.channel.send(build(call_id))
        except BaseException:
            self._pending.pop(call_id, None)
            raise

    def _deliver_body(self, call_id: int, item: MailboxItem) -> bytes:
        """The ``Deliver`` frame of a mailbox item; a message too large for the ring goes into a handoff
        segment (one copy of its bytes, as a large reply's result does) and the frame names it."""
        message = item.message
        if len(message.body) <= _INLINE_LIMIT:
            return encode_deliver(call_id, message, item.oneway)
        segment = self.channel.segment_maker.from_payload(message.body)
        ref = self.channel.send_segment(segment)
        carried = HandoffRef(ref.segment_id, ref.length, 0)
        return encode_body(Deliver(call_id, EMPTY_MESSAGE, item.oneway, carried))

    async def _exchange(
        self, build: Callable[[int], HostToChild], timeout: float | None, urgent: bool
    ) -> Reply:
        """Send a request and wait for its reply; raises the reply's error (or the crash, or a timeout).

        ``urgent`` requests (snapshots, status) also ring the service bell, so that the child serves them
        even while a handler runs.
        """
        future: asyncio.Future[Reply | BaseException] = self.loop.create_future()

        def settle(outcome: Reply | BaseException) -> None:
            if not future.done():
                future.set_result(outcome)

        self._send_request(build, settle)
        if urgent:
            self.ring_service()
        try:
            async with asyncio.timeout(timeout):
                outcome = await future
        except TimeoutError:
            raise HostError(f"paglet {self.agent_id} did not answer within {timeout} s") from None
        if isinstance(outcome, BaseException):
            raise outcome
        if not outcome.ok:
            raise exception_from_error_info(outcome.error or _UNKNOWN)
        return outcome

    async def request(
        self, build: Callable[[int], HostToChild], timeout: float | None, *, urgent: bool = False
    ) -> Any:
        """Send a request and return the decoded result of its reply (or raise its error)."""
        return self.result_of(await self._exchange(build, timeout, urgent))

    async def request_raw(
        self, build: Callable[[int], HostToChild], timeout: float | None, *, urgent: bool = False
    ) -> bytes:
        """Like ``request`` but returns the undecoded payload (state snapshots)."""
        snapshot = self._snapshot_of(await self._exchange(build, timeout, urgent))
        try:
            return bytes(snapshot.view)
        finally:
            snapshot.close()

    async def snapshot(self, timeout: float | None) -> Snapshot:
        """The paglet's encoded state, without copying a large one (it stays in its handoff segment)."""
        return self._snapshot_of(await self._exchange(GetState, timeout, True))

    def _snapshot_of(self, reply: Reply) -> Snapshot:
        if reply.handoff is not None:
            segment = self.channel.open_handoff(reply.handoff.segment, reply.handoff.length)
            segment.detach()  # outlives the channel if the process goes away during a move
            return Snapshot(segment.view, segment.close)
        return Snapshot(memoryview(bytes(reply.result)), None)

    def result_of(self, outcome: Reply | BaseException) -> Any:
        if isinstance(outcome, BaseException):
            raise outcome
        if not outcome.ok:
            raise exception_from_error_info(outcome.error or _UNKNOWN)
        if outcome.handoff is not None:
            ref = outcome.handoff
            with self.channel.open_handoff(ref.segment, ref.length) as segment:
                return decode_value(segment.view)
        return decode_value(outcome.result)

    async def wait_hello(self, timeout: float) -> None:
        try:
            async with asyncio.timeout(timeout):
                await asyncio.shield(self._hello)
        except TimeoutError:
            raise HostError(f"paglet process for {self.agent_id} did not start within {timeout} s") from None

    async def lifecycle(self, hook: str, event: Any, timeout: float | None) -> Any:
        payload = msgspec.Raw(encode_value(event.to_wire()))
        return await self.request(lambda cid: Lifecycle(cid, hook, payload), timeout)  # type: ignore[arg-type]

    async def start_run(self, timeout: float | None) -> None:
        """Start the paglet's ``run()`` (see ``paglets.wire.ipc.Start``)."""
        await self.request(Start, timeout)

    async def state_bytes(self, timeout: float | None) -> bytes:
        return await self.request_raw(GetState, timeout, urgent=True)

    async def resources(self, op: str, *, name: str = "", reason: str = "", timeout: float | None) -> Any:
        status = await self.request(
            lambda cid: ResourceCall(cid, op, name, reason),  # type: ignore[arg-type]
            timeout,
            urgent=op == "status",
        )
        if isinstance(status, dict):  # every resource call answers the registry's status
            self.resource_status = {str(k): bool(v) for k, v in status.items()}
        return status

    async def refresh_resource_status(self, timeout: float) -> dict[str, bool]:
        """The resource status, asked of the process now (served even while a handler runs); the last
        known one if the process cannot answer in ``timeout`` seconds or is not running."""
        if self.status in ("ready", "moving", "starting") and not self._channel_closed:
            try:
                await self.resources("status", timeout=timeout)
            except PagletError:
                pass
        return dict(self.resource_status)

    # --- the mailbox -----------------------------------------------------------------------------

    def submit(self, message: EncodedMessage, *, oneway: bool) -> asyncio.Future[Any] | None:
        """Queue ``message`` (loop thread); returns a future for its result (``None`` if oneway).

        Raises ``MailboxFullError`` past the mailbox bound and ``PagletCrashedError`` for a dead paglet.
        """
        self._check_usable()
        future = None if oneway else self.loop.create_future()
        with self.lock:
            self.mailbox.push(MailboxItem(message, oneway, future), message.priority)
        self.pump()
        return future

    def accept_queued(self, messages: list[MailboxItem]) -> None:
        """Put messages queued while the paglet was inactive into its mailbox, in their order, before
        anything else can reach it: nothing sent later is handled before them (unless the mailbox's rule
        says so: a later message of a higher priority). Their results go to their futures (a sender that
        waits through an idle passivation), or are dropped."""
        with self.lock:
            for item in messages:
                self.mailbox.push_accepted(item, item.message.priority)

    def submit_threadsafe(
        self, message: EncodedMessage, *, oneway: bool, future: concurrent.futures.Future[Any] | None
    ) -> None:
        """Queue ``message`` from any thread; ``future`` (if given) receives the result.

        The mailbox bound and a dead paglet are reported at once to the caller, as with ``submit``.
        The loop is woken only when the message can start now; otherwise the reply that frees the
        serial slot starts it.
        """
        with self.lock:
            self._check_usable()
            mailbox = self.mailbox
            mailbox.push(MailboxItem(message, oneway, future), message.priority)
            if self._pump_scheduled or (mailbox.in_flight and message.priority != UNQUEUED_PRIORITY):
                return
            self._pump_scheduled = True
        self.loop.call_soon_threadsafe(self._scheduled_pump)

    def _scheduled_pump(self) -> None:
        self._pump_scheduled = False
        self.pump()

    def pump(self) -> None:
        """Start every delivery the mailbox allows now (loop thread)."""
        if self.status != "ready":
            return
        mailbox = self.mailbox
        while True:
            with self.lock:
                delivery = mailbox.take()
            if delivery is None:
                return
            self._start(delivery)

    def _start(self, delivery: Delivery[MailboxItem]) -> None:
        item = delivery.item
        started = time.monotonic()

        def done(outcome: Reply | BaseException) -> None:
            self.last_activity = time.monotonic()
            self.last_duration = self.last_activity - started
            with self.lock:
                self.mailbox.finish(delivery, ok=isinstance(outcome, Reply) and outcome.ok)
            self._finish_item(item, outcome)
            self._wake_message_waiters()
            self.pump()

        try:
            self._send_body(lambda cid: self._deliver_body(cid, item), done)
        except BaseException as exc:
            done(exc)

    def _finish_item(self, item: MailboxItem, outcome: Reply | BaseException) -> None:
        error: ErrorInfo | None = None
        if isinstance(outcome, BaseException):
            error = error_info_from_exception(outcome, with_traceback=False)
        elif not outcome.ok:
            error = outcome.error or _UNKNOWN
        self._on_message_done(self, item.message, error)
        future = item.future
        if future is None or future.done():
            return
        if error is not None:
            future.set_exception(
                outcome if isinstance(outcome, BaseException) else exception_from_error_info(error)
            )
            return
        assert isinstance(outcome, Reply)
        try:
            future.set_result(self.result_of(outcome))
        except BaseException as exc:
            future.set_exception(exc)

    def in_flight_item(self) -> MailboxItem | None:
        """The queued message being handled now, if any."""
        with self.lock:
            delivery = self.mailbox.queued_in_flight()
        return None if delivery is None else delivery.item

    def _wake_message_waiters(self) -> None:
        waiters, self.message_waiters = self.message_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    # --- ending ----------------------------------------------------------------------------------

    def mark_ready(self) -> None:
        if self.status == "starting":
            self.transition("ready")
            self.pump()

    def begin_stop(self) -> list[Delivery[MailboxItem]]:
        """Stop taking messages; returns the ones still waiting (the caller re-queues or fails them)."""
        if self.status not in ("crashed", "gone"):
            self.transition("stopping")
        with self.lock:
            return self.mailbox.close()

    def shutdown(self) -> None:
        """Ask the process to exit (no reply)."""
        self._send_quietly(Shutdown("stop"))

    async def wait_exit(self, timeout: float) -> int | None:
        try:
            async with asyncio.timeout(timeout):
                return await asyncio.shield(self._exited)
        except TimeoutError:
            return None

    def kill(self) -> None:
        self.process.kill()

    def close(self) -> None:
        """Release the channel; the process must be gone or going."""
        if self.status != "crashed":
            self.transition("gone")
        self._fail_pending(PagletCrashedError(f"paglet {self.agent_id} is gone"))
        self._wake_message_waiters()
        self.channel.close()
        bell, self._service_bell = self._service_bell, None
        if bell is not None:
            bell.close()

    @property
    def exited(self) -> bool:
        return self._exited.done()


_UNKNOWN: Final = ErrorInfo("remote_host", "RemoteHostError", "paglet process reported an unknown error")


def host_call_error(exc: BaseException) -> ErrorInfo:
    """How a failed host call reaches the paglet, as in paglets 2.0: paglets errors keep their class, a
    ``ValueError`` (bad arguments, e.g. a storage path escaping its root) is rebuilt as ``ValueError`` by
    the paglet process (code ``remote_host``, type ``ValueError``), anything else becomes ``HostError``."""
    if isinstance(exc, PagletError):
        return error_info_from_exception(exc)
    if type(exc) is ValueError:
        return error_info_from_exception(exc, foreign_code=RemoteHostError.code)
    return error_info_from_exception(exc, foreign_code=HostError.code)
