"""The paglet process: one paglet, its hooks, its handlers and its ``run()`` thread.

The zygote forks this process and calls :func:`child_main` with the channel's fds, a *service bell*
(an eventfd the host rings for urgent requests) and an encoded ``ChildConfig``.

Threads, and who reads the channel
    The **main** thread reads the channel itself and runs hooks and handlers strictly one at a time, in
    arrival order, so a message costs no thread hop inside the process. While a handler waits for one of
    its own host calls, the main thread keeps reading (answers complete their waiters; new work is kept
    for later, in order).

    The **service** thread sleeps on the service bell. The host rings it after sending a state snapshot
    or resource-status request, and after answering a host call made by a thread other than the main
    thread (those calls have odd ids). It then reads whatever is in the channel: it answers snapshots
    and status requests itself, so they are served even while a handler runs,
    completes waiting host calls, and queues any other work for the main thread, waking it.

    The **run** thread (``paglets-run-<id>``) runs ``Paglet.run()`` when the host sends ``Start``:
    after the creation, clone or activation hook has answered, and for a paglet that moved here only
    once the move is committed, so two copies never run at once.

    ``Start`` is answered once ``run()`` has been entered *and has run up to its first pause*, so that
    when the host's ``create``/``clone``/``activate``/... returns, a state read issued afterwards sees what
    ``run()`` did first. The main thread starts the run thread and answers only when it gets the
    interpreter lock back: the run thread keeps that lock from its start into ``run()`` until ``run()``
    first blocks (a wait, I/O), returns, or has computed for one switch interval (5 ms). If ``run()``
    calls its host before that, the run thread answers ``Start`` itself first (the host must see the
    answer before the call), and ``RunFinished`` always comes after the answer (``_StartGate``). A class
    that does not override ``run()`` gets no thread: ``Start`` is answered and ``RunFinished`` sent at once.

A frame whose body does not decode (its length is valid, so the next frame is read normally) never ends
the process: the request it carried is answered with a ``FrameError`` reply (an undecodable ``Deliver``
fails that one message), an undecodable answer to a host call makes that call raise, and a frame without
a readable ``call_id`` is dropped with a line on stderr (``PROTOCOL.md`` §1.1).

When the host disappears (channel EOF) the process exits at once: without a host nobody can reach the
paglet. ``sys.exit(n)`` or ``os._exit(n)`` in a handler ends the process with that code, which the host
reports as a crash.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Sequence
from typing import Any, Final, TypeVar, assert_never, cast

import msgspec

from paglets.core.agent import NOT_HANDLED, Paglet, PagletContext
from paglets.core.errors import (
    FrameError,
    HostError,
    NotHandledError,
    PagletError,
    RemoteHostError,
)
from paglets.core.events import CloneEvent, CreationEvent, MobilityEvent, PersistencyEvent
from paglets.core.messages import Message
from paglets.persistence.persistency import DeactivationPolicy, DeactivationRequest
from paglets.runtime import _handoff
from paglets.runtime._channel_layout import INLINE_THRESHOLD, Bell, ChannelClosedError, EventBell
from paglets.runtime._waitset import WaitSet
from paglets.runtime.child._channel import ChildChannel
from paglets.runtime.child._facade import ChildHost
from paglets.serialization.codec import codec_for, resolve_qualified_name
from paglets.wire.boot import ChildConfig, decode_child_config
from paglets.wire.control import Request, encode_control, reply_decoder
from paglets.wire.ipc import (
    NIL,
    Deliver,
    FrameBodyError,
    GetState,
    HandoffRef,
    Hello,
    HostCall,
    HostReply,
    Lifecycle,
    Reply,
    ResourceCall,
    RunFinished,
    Shutdown,
    Start,
    decode_body,
    decode_message,
    encode_body,
    message_tag,
)
from paglets.wire.messages import ErrorInfo, error_info_from_exception, exception_from_error_info
from paglets.wire.values import decode_value, encode_value

__all__ = ["ChildRuntime", "child_main", "run_paglet"]

R = TypeVar("R")

#: Seconds the reader waits on the channel per turn (it wakes at once when a frame arrives; the timeout
#: only bounds how long it takes to notice a local shutdown).
READER_TURN: Final = 1.0

#: Milliseconds the service thread sleeps on its bell per turn (it wakes at once when rung).
SERVICE_TURN_MS: Final = 1000

#: The event class of every hook.
_EVENT_CLASSES: Final[dict[str, Any]] = {
    "creation": CreationEvent,
    "arrival": MobilityEvent,
    "clone": CloneEvent,
    "activation": PersistencyEvent,
    "dispatching": MobilityEvent,
    "reverting": MobilityEvent,
    "cloning": CloneEvent,
    "cloned": CloneEvent,
    "deactivating": PersistencyEvent,
    "disposing": PersistencyEvent,
}
_HOOK_METHODS: Final = {
    "creation": "on_creation",
    "arrival": "on_arrival",
    "clone": "on_clone",
    "activation": "on_activation",
    "dispatching": "on_dispatching",
    "reverting": "on_reverting",
    "cloning": "on_cloning",
    "cloned": "on_cloned",
    "deactivating": "on_deactivating",
    "disposing": "on_disposing",
}


#: Host -> child frames that carry a ``call_id`` the host waits on (a frame of these types that does not
#: decode is answered with a failed ``Reply``, or completes the waiting host call with an error).
_ANSWERED_TAGS: Final = frozenset(
    message_tag(cls) for cls in (Lifecycle, Deliver, GetState, ResourceCall, Start, HostReply)
)
_TAG_NAMES: Final = {
    message_tag(cls): cls.__name__
    for cls in (Lifecycle, Deliver, GetState, ResourceCall, Shutdown, HostReply, Start)
}


class _StartGate:
    """The answer to ``Start``, sent once by whichever thread gets there first (see the module docstring)."""

    __slots__ = ("_call_id", "_lock", "_runtime", "run_thread")

    def __init__(self, runtime: ChildRuntime, call_id: int) -> None:
        self._runtime = runtime
        self._call_id: int | None = call_id
        self._lock = threading.Lock()
        self.run_thread: int | None = None

    def answer(self) -> None:
        with self._lock:
            call_id, self._call_id = self._call_id, None
            if call_id is not None:
                self._runtime.reply_ok(call_id, bytes(NIL))


class _Waiter:
    __slots__ = ("event", "reply")

    def __init__(self) -> None:
        self.event = threading.Event()
        self.reply: HostReply | None = None


def _user_error(exc: BaseException) -> ErrorInfo:
    """An exception raised by paglet code: contract errors keep their class, others become HostError."""
    return error_info_from_exception(exc, foreign_code=HostError.code)


class ChildRuntime:
    """Everything that runs in one paglet process (see the module docstring)."""

    def __init__(self, config: ChildConfig, channel: ChildChannel, service_bell: Bell) -> None:
        self.config = config
        self.channel = channel
        self._pending_work: deque[Any] = deque()
        self._main_ident = threading.get_ident()
        self._service_bell = service_bell
        self._service_lock = threading.Lock()
        self._main_poll = WaitSet(channel.filenos())
        self._waiters: dict[int, _Waiter] = {}
        self._waiters_lock = threading.Lock()
        self._call_ids = iter(range(1, 2**63))
        self._run_thread: threading.Thread | None = None
        self._start_gate: _StartGate | None = None
        self._stopping = False
        self.host = ChildHost(self)
        self.paglet: Paglet[Any] | None = None
        self.boot_error: BaseException | None = None
        try:
            self.paglet = self._build_paglet()
        except BaseException as exc:  # reported to the host as the answer to its first request
            self.boot_error = exc

    # --- boot ------------------------------------------------------------------------------------------

    def _build_paglet(self) -> Paglet[Any]:
        cfg = self.config
        if cfg.sys_path and sys.path != cfg.sys_path:
            sys.path[:] = cfg.sys_path
        cls = resolve_qualified_name(cfg.agent_class)
        if not isinstance(cls, type) or not issubclass(cls, Paglet):
            raise HostError(f"{cfg.agent_class} is not a Paglet subclass")
        state_cls = cls.state_class()
        if cfg.state_handoff is not None:
            ref = cfg.state_handoff
            with self.channel.open_handoff(_handoff.HandoffRef(ref.segment, ref.length)) as segment:
                state = codec_for(state_cls).decode(segment.view)
        elif cfg.state is not None:
            state = codec_for(state_cls).decode(cfg.state)
        else:
            state = state_cls()
        paglet = cls(state, agent_id=cfg.agent_id)
        paglet._attach(PagletContext(self.host, cfg.agent_id))
        return paglet

    # --- sending -------------------------------------------------------------------------------------

    def send(self, msg: Reply | HostCall | RunFinished | Hello) -> None:
        self.channel.send(encode_body(msg))

    def reply_ok(self, call_id: int, payload: bytes) -> None:
        if len(payload) > INLINE_THRESHOLD:
            ref = self.channel.send_large(payload)
            self.send(Reply(call_id, True, NIL, None, HandoffRef(ref.segment_id, ref.length, 0)))
        else:
            self.send(Reply(call_id, True, msgspec.Raw(payload)))

    def reply_error(self, call_id: int, error: ErrorInfo) -> None:
        self.send(Reply(call_id, False, NIL, error))

    def call_host(self, request: Request[R], timeout: float | None = None) -> R:
        """Ask the host to run ``request`` (``paglets.wire.control``); returns its reply, decoded as the
        type the request declares, or raises the host's error."""
        on_main = threading.get_ident() == self._main_ident
        gate = self._start_gate
        if gate is not None and gate.run_thread == threading.get_ident():
            gate.answer()  # run() calls its host before its first pause: Start is answered first
        # odd ids ask the host to ring the service bell with the answer (see the module docstring)
        call_id = next(self._call_ids) * 2 + (0 if on_main else 1)
        waiter = _Waiter()
        with self._waiters_lock:
            self._waiters[call_id] = waiter
        try:
            payload = encode_control(request)
            if len(payload) > INLINE_THRESHOLD:  # a large message to send, say: through a segment
                sent = self.channel.send_large(payload)
                self.send(HostCall(call_id, NIL, HandoffRef(sent.segment_id, sent.length, 0)))
            else:
                self.send(HostCall(call_id, msgspec.Raw(payload)))
            limit = self.config.host_call_timeout if timeout is None else timeout
            if not self._wait(waiter, limit, on_main):
                raise HostError(f"host did not answer {type(request).__name__} within {limit} s")
        finally:
            with self._waiters_lock:
                self._waiters.pop(call_id, None)
        reply = waiter.reply
        assert reply is not None
        if not reply.ok:
            error = reply.error or ErrorInfo("host", "HostError", "host call failed")
            if error.type_name == "ValueError" and error.code == RemoteHostError.code:
                raise ValueError(error.message)  # see _controller.host_call_error
            raise exception_from_error_info(error)
        decode = reply_decoder(type(request))
        if reply.handoff is not None:
            ref = reply.handoff
            with self.channel.open_handoff(_handoff.HandoffRef(ref.segment, ref.length)) as segment:
                return cast(R, decode(segment.view))
        return cast(R, decode(reply.result))

    def _wait(self, waiter: _Waiter, limit: float, on_main: bool) -> bool:
        if not on_main:
            return waiter.event.wait(limit)
        deadline = time.monotonic() + limit
        while not waiter.event.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self._read_or_wait(min(remaining, READER_TURN))
        return True

    # --- threads -------------------------------------------------------------------------------------

    def serve(self) -> int:
        service = threading.Thread(target=self._service_loop, name="paglets-service", daemon=True)
        service.start()
        self.send(Hello(os.getpid()))
        pending = self._pending_work
        try:
            while True:
                if pending:
                    item = pending.popleft()
                    if isinstance(item, Shutdown):
                        return 0
                    self._handle(item)
                else:
                    self._read_or_wait(READER_TURN)
        except ChannelClosedError:
            return 0

    def _read_or_wait(self, timeout: float) -> None:
        """Main thread: route every frame the channel holds; if there is none, sleep until the host
        rings (or the service thread handed over work), at most ``timeout`` seconds."""
        frames = self.channel.receive(0)
        if frames:
            for frame in frames:
                self._route_frame(frame)
            return
        for fd in self._main_poll.wait(timeout):
            self.channel.clear_ready(fd)

    def _read(self, timeout: float) -> None:
        """Service thread: route what the channel holds now."""
        for frame in self.channel.receive(timeout):
            self._route_frame(frame)

    def _route_frame(self, frame: bytes | memoryview) -> None:
        try:
            msg = decode_body(frame)
        except FrameBodyError as exc:
            self._refuse_frame(exc)
            return
        self._route(msg)

    def _refuse_frame(self, exc: FrameBodyError) -> None:
        """A frame whose body does not decode: the request it carried is answered with the error (its
        caller's message fails, the paglet keeps running); one without a readable ``call_id`` is dropped."""
        name = _TAG_NAMES.get(exc.tag, "frame") if exc.tag is not None else "frame"
        error = ErrorInfo(
            FrameError.code, FrameError.__name__, f"the paglet process could not decode {name}: {exc}"
        )
        call_id = exc.call_id
        if call_id is None or exc.tag not in _ANSWERED_TAGS:
            print(f"paglets: dropped an undecodable {name}: {exc}", file=sys.stderr, flush=True)
            return
        if exc.tag == message_tag(HostReply):
            self._route(HostReply(call_id, False, NIL, error))  # the waiting host call raises it
        else:
            self.reply_error(call_id, error)

    def _route(self, msg: Any) -> None:
        if isinstance(msg, HostReply):
            with self._waiters_lock:
                waiter = self._waiters.get(msg.call_id)
            if waiter is not None:
                waiter.reply = msg
                waiter.event.set()
                if msg.call_id % 2 == 0 and threading.get_ident() != self._main_ident:
                    self.channel.wake_main()  # the main thread waits for this answer
        elif isinstance(msg, GetState | ResourceCall) and _urgent(msg):
            self._serve_now(msg)
        else:
            self._pending_work.append(msg)
            if threading.get_ident() != self._main_ident:
                self.channel.wake_main()  # the main thread may be asleep on its doorbell

    def _serve_now(self, msg: GetState | ResourceCall) -> None:
        try:
            if isinstance(msg, GetState):
                self._reply_state(msg.call_id)
            else:
                self._reply_resources(msg.call_id)
        except ChannelClosedError:
            raise
        except BaseException as exc:
            self.reply_error(msg.call_id, _user_error(exc))

    def _service_loop(self) -> None:
        bell = self._service_bell
        poller = WaitSet((bell.fileno(),))
        try:
            while True:
                poller.wait(SERVICE_TURN_MS / 1000)
                if not bell.clear():
                    continue
                with self._service_lock:
                    self._read(0)
        except ChannelClosedError:
            os._exit(0)  # the host is gone: nobody can reach this paglet any more
        except BaseException:  # a corrupt frame from the host: nothing sane is left to do
            traceback.print_exc()
            os._exit(70)

    def _start_run(self, call_id: int) -> None:
        """Start ``run()`` and answer ``Start`` (see the module docstring)."""
        paglet = self.paglet
        if self._run_thread is not None or paglet is None:
            self.reply_ok(call_id, bytes(NIL))  # a repeated Start: run() was started already
            return
        if type(paglet).run is Paglet.run:  # nothing to run: no thread
            self._run_thread = threading.current_thread()
            self.reply_ok(call_id, bytes(NIL))
            self.send(RunFinished(None))
            return
        gate = self._start_gate = _StartGate(self, call_id)
        self._run_thread = threading.Thread(
            target=self._run_main, args=(gate,), name=f"paglets-run-{self.config.agent_id}", daemon=True
        )
        # start() returns once this thread has the interpreter lock again: after run()'s first pause
        self._run_thread.start()
        gate.answer()

    def _run_main(self, gate: _StartGate) -> None:
        assert self.paglet is not None
        gate.run_thread = threading.get_ident()
        error: ErrorInfo | None = None
        try:
            self.paglet.run()
        except SystemExit as exc:
            _exit_for(exc)
        except BaseException as exc:
            error = _user_error(exc)
        try:
            gate.answer()  # Start is answered before the host hears that run() finished
            self.send(RunFinished(error))
        except ChannelClosedError:
            pass

    # --- work on the main thread -----------------------------------------------------------------------

    def _handle(self, msg: Any) -> None:
        call_id = msg.call_id
        try:
            if self.boot_error is not None:
                raise self.boot_error
            match msg:
                case Deliver():
                    payload = self._deliver(msg)
                case Lifecycle():
                    payload = self._lifecycle(msg)
                case ResourceCall():
                    payload = self._resources(msg)
                case Start():
                    self._start_run(call_id)  # answered by the run thread once run() is entered
                    return
                case _:
                    raise HostError(f"unexpected request {type(msg).__name__}")
        except SystemExit as exc:
            _exit_for(exc)
        except BaseException as exc:
            self.reply_error(call_id, _user_error(exc))
            return
        self.reply_ok(call_id, payload)

    def _deliver(self, msg: Deliver) -> bytes:
        assert self.paglet is not None
        wire = msg.message
        if msg.message_segment is not None:  # too large for a frame: it came in a handoff segment
            ref = msg.message_segment
            with self.channel.open_handoff(_handoff.HandoffRef(ref.segment, ref.length)) as segment:
                wire = decode_message(segment.view)
        message = Message(
            kind=wire.kind,
            args=wire.args,
            arg=wire.arg,
            sender=wire.sender,
            reply_to=wire.reply_to,
            priority=wire.priority,
            message_type=wire.message_type,
            timestamp=wire.timestamp,
            message_id=wire.message_id,
        )
        result = self.paglet.handle_message(message)
        if result is NOT_HANDLED:
            raise NotHandledError(f"{type(self.paglet).__name__} did not handle message kind {wire.kind!r}")
        if msg.oneway:
            return bytes(NIL)
        return encode_value(result)

    def _lifecycle(self, msg: Lifecycle) -> bytes:
        paglet = self.paglet
        assert paglet is not None
        event_cls = _EVENT_CLASSES[msg.hook]
        event = event_cls.from_wire(decode_value(msg.event))
        if msg.hook == "deactivating":
            request = event.request if event.request is not None else DeactivationRequest()
            policy = paglet.deactivation_policy(request)
            if not isinstance(policy, DeactivationPolicy):
                raise HostError(f"deactivation_policy() returned {policy!r}, not a DeactivationPolicy")
            event = PersistencyEvent(
                agent_id=event.agent_id,
                host_name=event.host_name,
                host_address=event.host_address,
                reason=event.reason,
                request=request,
                policy=policy,
            )
            paglet.on_deactivating(event)
            return encode_value({"policy": policy.to_wire()})
        getattr(paglet, _HOOK_METHODS[msg.hook])(event)
        return bytes(NIL)

    def _resources(self, msg: ResourceCall) -> bytes:
        assert self.paglet is not None
        registry = self.paglet.resources
        match msg.op:  # a Literal the frame decoder checked (PROTOCOL.md §1.2)
            case "cleanup":
                registry.cleanup(reason=msg.reason or "lifecycle")
            case "remove":
                registry.remove(msg.name)
            case "status":
                pass
            case unknown:
                assert_never(unknown)
        return encode_value(registry.status())

    def _reply_state(self, call_id: int) -> None:
        if self.paglet is None:
            raise self.boot_error or HostError("paglet is not running")
        paglet = self.paglet
        codec = codec_for(type(paglet.state))
        with paglet.locked():
            data = codec.encode(paglet.state)
        self.reply_ok(call_id, data)

    def _reply_resources(self, call_id: int) -> None:
        if self.paglet is None:
            raise self.boot_error or HostError("paglet is not running")
        self.reply_ok(call_id, encode_value(self.paglet.resources.status()))


def _urgent(msg: GetState | ResourceCall) -> bool:
    """Requests the service thread answers even while a handler runs: snapshots and resource status."""
    match msg:
        case GetState() | ResourceCall(op="status"):
            return True
        case _:
            return False


def _exit_for(exc: SystemExit) -> None:
    """Leave the process as ``sys.exit(code)`` asked, at once (the host reports the exit code)."""
    code = exc.code
    if code is None:
        status = 0
    elif isinstance(code, int):
        status = code & 0xFF
    else:
        print(code, file=sys.stderr)
        status = 1
    sys.stderr.flush()
    os._exit(status)


def child_main(fds: Sequence[int], config: bytes) -> int:
    """Zygote entry point of a paglet process (Linux backend): the channel's fds, then the service bell."""
    return run_paglet(ChildChannel.from_fds(fds[:5]), EventBell(fds[5]), config)


def run_paglet(channel: ChildChannel, service_bell: Bell, config: bytes) -> int:
    """Run one paglet process on ``channel`` until the host stops it or goes away (both backends)."""
    runtime = ChildRuntime(decode_child_config(config), channel, service_bell)
    try:
        return runtime.serve()
    except ChannelClosedError:
        return 0
    except PagletError:
        traceback.print_exc()
        return 1
