"""The paglets of one host: creating their processes, delivering messages, reading state, disposing.

``PagletManager`` runs on the host's event loop and owns every ``PagletController``. The ``Host``
facade (synchronous user API), the HTTP routes and the host calls of paglet processes all call it; it
never blocks the loop (starting a process waits on the process backend in an executor thread).

Creation (as in paglets 2.0, without its costs): the host checks the classes, encodes the initial state
once, and has the process backend start a paglet process (a fork of the zygote, or a warm spare); the new
process decodes the state, builds the paglet and says hello; the host sends the ``creation`` lifecycle
request; once the hook has answered, the paglet is ready and its ``run()`` starts in the child. A failing
hook or a process that dies while starting rolls back completely: the process is killed, nothing stays
registered.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from paglets.core._ids import check_agent_id
from paglets.core.context_events import ContextEventLog
from paglets.core.errors import (
    HostError,
    InvalidAgentError,
    PagletCrashedError,
)
from paglets.core.events import CreationEvent, PersistencyEvent
from paglets.core.messages import UNQUEUED_PRIORITY
from paglets.persistence.storage import path_component
from paglets.runtime._backend import ProcessBackend
from paglets.runtime._controller import HostCalls, MailboxItem, PagletController
from paglets.runtime._deadlines import DEFAULT_SEND_TIMEOUT, DISPOSE_GRACE, send_timeout_error
from paglets.runtime._handoff import SegmentFactory, WritableSegment
from paglets.runtime._procutil import scrubbed_environment
from paglets.runtime._tasks import BackgroundTasks
from paglets.wire.boot import ChildConfig, encode_child_config

if TYPE_CHECKING:
    from paglets.runtime._control import PagletCaller
    from paglets.services.contracts import ServiceRecord
from paglets.wire.encoded import EncodedMessage
from paglets.wire.ipc import HandoffRef
from paglets.wire.limits import MAILBOX_DEPTH
from paglets.wire.messages import ErrorInfo

__all__ = ["PagletManager", "Timeouts", "mailbox_counts"]

_log = logging.getLogger("paglets.runtime")


#: Initial states up to this size travel inside the spawn request; larger ones through a handoff segment.
INLINE_STATE: Final = 32 * 1024

#: Most paglet-class modules the host asks its zygote to import (each stays loaded in the template).
MAX_PRELOADED_MODULES: Final = 256


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds the host waits for each kind of step (none of them waits forever)."""

    spawn: float = 30.0
    hook: float = 60.0
    state: float = 30.0
    resources: float = 30.0
    #: for listings: a process that does not answer in time is shown with its last known resources
    resource_status: float = 2.0
    exit: float = 2.0
    #: dispose: the handler in progress, ``on_disposing`` and the cleanup, together (``DISPOSE_GRACE``)
    dispose: float = DISPOSE_GRACE
    #: a synchronous send's reply when the caller gives no deadline (``DEFAULT_SEND_TIMEOUT``; ``None``:
    #: no limit)
    send: float | None = DEFAULT_SEND_TIMEOUT


class PagletManager:
    """See the module docstring."""

    def __init__(
        self,
        *,
        host_name: str,
        address: Callable[[], str],
        events: ContextEventLog,
        work_root: Path,
        api_key: str | None,
        host_calls: HostCalls,
        preload: tuple[str, ...] = (),
        on_agent_gone: Callable[[str], None] = lambda agent_id: None,
        on_agent_live: Callable[[str, list[ServiceRecord]], None] = lambda agent_id, held: None,
        timeouts: Timeouts = Timeouts(),
        mailbox_depth: int = MAILBOX_DEPTH,
        spawn: Callable[..., object] | None = None,
        backend: ProcessBackend | None = None,
    ) -> None:
        self.host_name = host_name
        if backend is None:
            from paglets.runtime._backend import choose_backend, make_backend

            backend = make_backend(choose_backend(), host_name=host_name)
        #: How this host's paglet processes start and talk to it (``paglets.runtime._backend``).
        self.backend = backend
        #: How controllers start their background tasks (``BackgroundTasks.spawn``: failures reported).
        self._spawn_task = spawn if spawn is not None else BackgroundTasks(events).spawn
        self._address = address
        self.events = events
        self.work_root = work_root
        self.api_key = api_key
        self.timeouts = timeouts
        self._host_calls = host_calls
        self._preload = preload
        self._on_agent_gone = on_agent_gone
        self._on_agent_live = on_agent_live
        self._mailbox_depth = mailbox_depth
        self.controllers: dict[str, PagletController] = {}
        self._launched = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self.created_total = 0
        #: ``(seconds, ok)`` of every finished message (the host's metrics).
        self.message_observer: Callable[[float, bool], None] = lambda seconds, ok: None
        self._preloaded: set[str] = set(preload)

    def observe(
        self, *, gone: Callable[[str], None], live: Callable[[str, list[ServiceRecord]], None]
    ) -> None:
        """Have ``gone(agent_id)`` called when a paglet stops being one of this host's (it left, stopped,
        crashed or failed to start), and ``live(agent_id, held)`` when a paglet prepared by a move goes
        live here (``held``: the services it advertised meanwhile)."""
        self._on_agent_gone = gone
        self._on_agent_live = live

    # --- start and stop --------------------------------------------------------------------------

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Bind to the host's loop. The process backend (the zygote, or the spare processes) is launched
        by :meth:`launch_processes` (the host calls it once its socket is bound), or by the first paglet
        process or handoff segment needed before that."""
        self._loop = loop

    def launch_processes(self) -> None:
        """Launch the process backend in the background, once; creating a paglet process waits until it
        is ready."""
        if self._launched or self._loop is None:
            return
        # the template and every paglet process start without the host's secrets in their environment;
        # a paglet process gets the key it needs through its ChildConfig
        env = scrubbed_environment(os.environ, secrets=[self.api_key] if self.api_key else [])
        self.backend.start(preload=self._preload, env=env)
        self._launched = True

    @property
    def segments(self) -> SegmentFactory:
        """Makes handoff segments for states that arrive before their process exists."""
        self.launch_processes()  # the portable backend keeps segments in its runtime directory
        return self.backend.segments

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise HostError("host is not started")
        return self._loop

    async def stop_all(self, timeout: float) -> None:
        """Stop every paglet process (their state is not kept) and the process backend."""
        controllers = list(self.controllers.values())
        for ctrl in controllers:
            ctrl.begin_stop()
            ctrl.shutdown()
        deadline = time.monotonic() + timeout
        for ctrl in controllers:
            remaining = max(0.05, deadline - time.monotonic())
            if await ctrl.wait_exit(remaining) is None:
                ctrl.kill()
        for ctrl in controllers:
            await ctrl.wait_exit(self.timeouts.exit)
            ctrl.close()
        self.controllers.clear()
        if self._launched:
            self._launched = False
            await asyncio.get_running_loop().run_in_executor(None, self.backend.close)

    # --- lookups ---------------------------------------------------------------------------------

    def get(self, agent_id: str) -> PagletController:
        ctrl = self.controllers.get(agent_id)
        if ctrl is None:
            raise InvalidAgentError(f"no paglet {agent_id} on host {self.host_name}")
        return ctrl

    def ready(self, agent_id: str) -> PagletController:
        ctrl = self.get(agent_id)
        if ctrl.status == "crashed":
            raise PagletCrashedError(f"paglet {agent_id} crashed: {ctrl.error}")
        if ctrl.status != "ready":
            raise InvalidAgentError(f"paglet {agent_id} is not ready ({ctrl.status})")
        return ctrl

    def __contains__(self, agent_id: object) -> bool:
        return agent_id in self.controllers

    def is_live(self, agent_id: str) -> bool:
        """Whether ``agent_id`` lives on this host for its services: from the moment its process exists
        and its starting hook runs (``on_creation``, ``on_activation``) until it leaves or stops."""
        ctrl = self.controllers.get(agent_id)
        return ctrl is not None and ctrl.status in ("starting", "ready", "moving")

    def ready_ids(self) -> list[str]:
        return [aid for aid, ctrl in self.controllers.items() if ctrl.status == "ready"]

    def is_prepared(self, ctrl: PagletCaller) -> bool:
        """Whether ``ctrl`` is a paglet prepared by a move that is not committed yet (see ``prepare``)."""
        return ctrl.status == "starting" and self.controllers.get(ctrl.agent_id) is not ctrl

    def _gone(self, ctrl: PagletController) -> None:
        """``ctrl`` stopped being a paglet of this host: drop what was registered for its id, unless its id
        now belongs to another copy (the live source of a move within this host)."""
        ctrl.held_services.clear()
        if self.controllers.get(ctrl.agent_id) in (None, ctrl):
            self._on_agent_gone(ctrl.agent_id)

    # --- creation --------------------------------------------------------------------------------

    async def start_from_state(
        self,
        *,
        agent_id: str,
        agent_class: str,
        state_class: str,
        state: bytes,
        hook: str,
        event: Any,
        queued: Sequence[MailboxItem] = (),
    ) -> PagletController:
        """Start a paglet process from a stored state and run ``hook`` then ``run()`` (activation).

        ``queued`` (messages queued while it was inactive, with their futures if a sender waits) enter its
        mailbox in one step as soon as its process exists, before anyone can send it anything, so they come
        before any message sent later; they are handled once it is ready.
        """
        if agent_id in self.controllers:
            raise HostError(f"paglet {agent_id} is already active on host {self.host_name}")
        ctrl = await self._spawn(agent_id, agent_class, state_class, state)
        if queued:
            ctrl.accept_queued(list(queued))
            for message in (item.message for item in queued):
                if message.priority != UNQUEUED_PRIORITY:
                    self.events.emit(
                        "message-queued",
                        agent_id=agent_id,
                        class_name=agent_class,
                        message_id=message.message_id,
                    )
        await self._start_hook(ctrl, hook, event)
        self._preload_class_modules(agent_class, state_class)
        return ctrl

    async def create(
        self,
        *,
        agent_class: str,
        state_class: str,
        state: bytes | None,
        init: Any = None,
        agent_id: str | None = None,
        exists: Callable[[str], bool] = lambda agent_id: False,
    ) -> str:
        """Start a paglet process and run ``on_creation``; returns the agent id. ``exists`` tells about
        paglets this manager does not hold (inactive ones), so no id is used twice."""
        agent_id = check_agent_id(agent_id) if agent_id is not None else uuid.uuid4().hex
        if agent_id in self.controllers or exists(agent_id):
            raise HostError(f"paglet {agent_id} already exists on host {self.host_name}")
        ctrl = await self._spawn(agent_id, agent_class, state_class, state)
        event = CreationEvent(
            agent_id=agent_id, host_name=self.host_name, host_address=self._address(), init=init
        )
        await self._start_hook(ctrl, "creation", event)
        self._preload_class_modules(agent_class, state_class)
        self.created_total += 1
        self.events.emit("create", agent_id=agent_id, class_name=agent_class)
        return agent_id

    def _preload_class_modules(self, *class_names: str) -> None:
        """Have the zygote (or the spares) import the modules of classes in use, so later paglet processes
        start with them loaded."""
        if not self._launched or len(self._preloaded) >= MAX_PRELOADED_MODULES:
            return
        modules = [n.partition(":")[0] for n in class_names]
        new = [m for m in dict.fromkeys(modules) if m not in self._preloaded]
        if new:
            self._preloaded.update(new)
            self.backend.preload(new)

    async def _spawn(
        self,
        agent_id: str,
        agent_class: str,
        state_class: str,
        state: bytes | None,
        *,
        state_segment: WritableSegment | None = None,
        register: bool = True,
    ) -> PagletController:
        check_agent_id(agent_id)  # every live paglet passes here: created, arrived, activated, cloned
        self.launch_processes()
        if not self._launched:
            raise HostError(f"host {self.host_name} is not started")
        loop = self.loop
        backend = self.backend
        pending = await backend.new_child(self.timeouts.spawn)
        channel = pending.channel
        try:
            inline: bytes | None = state
            handoff: HandoffRef | None = None
            if state_segment is not None:
                ref = channel.send_segment(state_segment)
                inline, handoff = None, HandoffRef(ref.segment_id, ref.length, 0)
            elif state is not None and len(state) > INLINE_STATE:
                ref = channel.send_large(state)
                inline, handoff = None, HandoffRef(ref.segment_id, ref.length, 0)
            config = ChildConfig(
                agent_id=agent_id,
                agent_class=agent_class,
                state_class=state_class,
                host_name=self.host_name,
                host_address=self._address(),
                state=inline,
                state_handoff=handoff,
                api_key=self.api_key,
                work_dir=str(self.work_root / path_component(agent_id)),
                sys_path=list(sys.path),
                send_timeout=self.timeouts.send,
            )
            title = f"paglet:{self.host_name}:{agent_class.rpartition(':')[2]}:{agent_id}"
            encoded = encode_child_config(config)
            process = await loop.run_in_executor(
                None,
                lambda: backend.launch(pending, encoded, title=title, timeout=self.timeouts.spawn),
            )
        except BaseException:
            backend.abandon(pending)
            raise
        service_bell = pending.service_bell
        ctrl = PagletController(
            agent_id=agent_id,
            agent_class=agent_class,
            state_class=state_class,
            channel=channel,
            service_bell=service_bell,
            process=process,
            loop=loop,
            host_calls=self._host_calls,
            on_crash=self._crashed,
            on_message_done=self._message_done,
            mailbox_depth=self._mailbox_depth,
            spawn=self._spawn_task,
        )
        if register:
            self.controllers[agent_id] = ctrl
        return ctrl

    async def prepare(
        self,
        *,
        agent_id: str,
        agent_class: str,
        state_class: str,
        state_segment: WritableSegment,
        hook: str,
        event: Any,
    ) -> PagletController:
        """Start a process for an arriving paglet and run its arrival hook, but do not register it or
        start ``run()``: the move is not committed yet (see ``commit_prepared``). Rolls back on failure."""
        ctrl = await self._spawn(
            agent_id, agent_class, state_class, None, state_segment=state_segment, register=False
        )
        await self._start_hook(ctrl, hook, event, start=False)
        self._preload_class_modules(agent_class, state_class)
        return ctrl

    async def commit_prepared(
        self, ctrl: PagletController, *, replacing: PagletController | None = None
    ) -> None:
        """Make a prepared paglet the one live copy here: register it, start ``run()``, deliver.
        ``replacing``: the paused copy it replaces (a move within this host; it is released afterwards)."""
        previous = self.controllers.get(ctrl.agent_id)
        if previous is not None and previous not in (ctrl, replacing) and previous.status not in ("gone",):
            raise HostError(f"paglet {ctrl.agent_id} is already active on host {self.host_name}")
        self.controllers[ctrl.agent_id] = ctrl
        held, ctrl.held_services = ctrl.held_services, []
        self._on_agent_live(ctrl.agent_id, held)
        try:
            await ctrl.start_run(self.timeouts.hook)
        except BaseException:
            await self._discard(ctrl)
            raise
        ctrl.mark_ready()

    def detach(self, ctrl: PagletController) -> list[Any]:
        """Forget a paglet that left this host (its process ends later, see ``release_when_idle``);
        returns the messages that were still waiting for it, for forwarding."""
        self._gone(ctrl)
        if self.controllers.get(ctrl.agent_id) is ctrl:
            del self.controllers[ctrl.agent_id]
        return [delivery.item for delivery in ctrl.begin_stop()]

    async def release_when_idle(self, ctrl: PagletController) -> None:
        """End the process of a departed paglet once the handler that moved it (if any) has replied."""
        deadline = time.monotonic() + self.timeouts.hook
        while ctrl.mailbox.in_flight and not ctrl.exited and time.monotonic() < deadline:
            waiter: asyncio.Future[None] = self.loop.create_future()
            ctrl.message_waiters.append(waiter)
            try:
                async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                    await waiter
            except TimeoutError:
                break
        ctrl.transition("gone")
        ctrl.shutdown()
        if await ctrl.wait_exit(self.timeouts.exit) is None:
            ctrl.kill()
            await ctrl.wait_exit(self.timeouts.exit)
        ctrl.close()

    async def discard(self, ctrl: PagletController) -> None:
        """Kill a prepared (uncommitted) or departing process and forget it."""
        await self._discard(ctrl)

    async def release(self, ctrl: PagletController, *, wait_reply: bool = False) -> None:
        """Let the process of a paglet that left this host end: stop it and forget it."""
        if self.controllers.get(ctrl.agent_id) is ctrl:
            del self.controllers[ctrl.agent_id]
        ctrl.begin_stop()
        ctrl.shutdown()
        if await ctrl.wait_exit(self.timeouts.exit) is None:
            ctrl.kill()
            await ctrl.wait_exit(self.timeouts.exit)
        ctrl.close()

    async def _start_hook(self, ctrl: PagletController, hook: str, event: Any, *, start: bool = True) -> None:
        """Run a starting hook (and, with ``start``, ``run()``); on any failure remove the process
        completely and re-raise."""
        try:
            # no wait for the process's hello: the request waits in the ring until the process reads it
            await ctrl.lifecycle(hook, event, self.timeouts.spawn + self.timeouts.hook)
            if start:
                await ctrl.start_run(self.timeouts.hook)
        except BaseException:
            await self._discard(ctrl)
            raise
        if start:
            ctrl.mark_ready()

    async def _discard(self, ctrl: PagletController) -> None:
        """Kill a process that must not live on (a start that failed, an aborted move) and forget it,
        with every service it advertised; messages sent to it while it was starting fail."""
        for delivery in ctrl.begin_stop():
            future = delivery.item.future
            if future is not None and not future.done():
                future.set_exception(InvalidAgentError(f"paglet {ctrl.agent_id} did not start"))
        ctrl.kill()
        await ctrl.wait_exit(self.timeouts.exit)
        ctrl.close()
        self._gone(ctrl)
        if self.controllers.get(ctrl.agent_id) is ctrl:
            del self.controllers[ctrl.agent_id]

    # --- messages --------------------------------------------------------------------------------

    def submit(self, agent_id: str, message: EncodedMessage, *, oneway: bool) -> asyncio.Future[Any] | None:
        """Queue a message for an active paglet (see ``PagletController.submit``). A paglet still starting
        (its creation or activation hook runs) takes it too: it is handled once the paglet is ready, after
        the messages its activation brought from its record; if the start fails, it fails with it."""
        ctrl = self.get(agent_id)
        future = ctrl.submit(message, oneway=oneway)
        if message.priority != UNQUEUED_PRIORITY:
            self.events.emit(
                "message-queued",
                agent_id=agent_id,
                class_name=ctrl.agent_class,
                message_id=message.message_id,
            )
        return future

    def submit_threadsafe(
        self,
        agent_id: str,
        message: EncodedMessage,
        *,
        oneway: bool,
        future: concurrent.futures.Future[Any] | None,
    ) -> None:
        """``submit`` from a thread other than the loop's (the embedded fast path)."""
        ctrl = self.get(agent_id)
        ctrl.submit_threadsafe(message, oneway=oneway, future=future)
        if message.priority != UNQUEUED_PRIORITY:
            self.events.emit(
                "message-queued",
                agent_id=agent_id,
                class_name=ctrl.agent_class,
                message_id=message.message_id,
            )

    async def deliver(
        self, agent_id: str, message: EncodedMessage, *, oneway: bool, timeout: float | None = None
    ) -> Any:
        """Queue ``message`` and, unless oneway, wait for the reply at most ``timeout`` seconds (``None``:
        no limit); then ``SendTimeoutError``, while the handler, if it started, goes on."""
        future = self.submit(agent_id, message, oneway=oneway)
        if future is None:
            return None
        if timeout is None:
            return await future
        try:
            async with asyncio.timeout(timeout):
                return await future
        except TimeoutError:
            raise send_timeout_error(agent_id, message.kind, timeout) from None

    def _message_done(self, ctrl: PagletController, message: EncodedMessage, error: ErrorInfo | None) -> None:
        self.message_observer(ctrl.last_duration, error is None)
        if error is None:
            self.events.emit(
                "message-delivered",
                agent_id=ctrl.agent_id,
                class_name=ctrl.agent_class,
                message_id=message.message_id,
            )
        else:
            self.events.emit(
                "message-failed",
                agent_id=ctrl.agent_id,
                class_name=ctrl.agent_class,
                message_id=message.message_id,
                error=error.message,
                data={"error_type": error.type_name, "message_kind": message.kind},
            )

    # --- state and introspection -----------------------------------------------------------------

    async def state_bytes(self, agent_id: str) -> bytes:
        return await self.ready(agent_id).state_bytes(self.timeouts.state)

    async def resource_status(self, agent_id: str) -> dict[str, bool]:
        ctrl = self.ready(agent_id)
        status = await ctrl.resources("status", timeout=self.timeouts.resources)
        return dict(status) if isinstance(status, dict) else {}

    async def wait_message(self, agent_id: str, timeout: float | None) -> bool:
        """Wait until a message of ``agent_id`` finishes (or a notify); False on timeout."""
        ctrl = self.get(agent_id)
        waiter: asyncio.Future[None] = self.loop.create_future()
        ctrl.message_waiters.append(waiter)
        try:
            async with asyncio.timeout(timeout):
                await waiter
        except TimeoutError:
            return False
        return True

    def notify_message(self, agent_id: str, *, all_waiters: bool) -> None:
        ctrl = self.get(agent_id)
        if all_waiters:
            waiters, ctrl.message_waiters = ctrl.message_waiters, []
        else:
            waiters = ctrl.message_waiters[:1]
            del ctrl.message_waiters[:1]
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def summary(self, agent_id: str) -> dict[str, Any]:
        """``GET /agents/{id}`` of an active (or crashed) paglet, with paglets 2.0's keys and types:
        ``error`` is ``""`` when there is none, ``mailbox`` is ``None`` once the paglet crashed,
        ``resources`` is the last known ``{name: suppress}`` (``describe`` asks the process first).
        ``status`` is ours (``ready``, ``moving``, ``stopping``, ``crashed``)."""
        ctrl = self.get(agent_id)
        crashed = ctrl.status == "crashed"
        return {
            "agent_id": agent_id,
            "class_name": ctrl.agent_class,
            "state_class_name": ctrl.state_class,
            "host": self.host_name,
            "address": self._address(),
            "active": ctrl.status in ("ready", "moving", "stopping"),
            "pid": ctrl.pid,
            "crashed": crashed,
            "exitcode": ctrl.exitcode,
            "error": ctrl.error or "",
            "mailbox": None if crashed else mailbox_counts(ctrl),
            "resources": dict(ctrl.resource_status),
            "status": ctrl.status,
        }

    async def describe(self, agent_ids: list[str]) -> list[dict[str, Any]]:
        """Summaries of several paglets, each with a fresh resource status (asked concurrently, at most
        ``timeouts.resource_status`` seconds; 2.0 asked each process in turn)."""
        ctrls = [self.get(agent_id) for agent_id in agent_ids]
        wait = self.timeouts.resource_status
        await asyncio.gather(*(ctrl.refresh_resource_status(wait) for ctrl in ctrls))
        return [self.summary(ctrl.agent_id) for ctrl in ctrls if self.controllers.get(ctrl.agent_id) is ctrl]

    # --- crashes and disposal --------------------------------------------------------------------

    def _crashed(self, ctrl: PagletController) -> None:
        self._gone(ctrl)
        self.events.emit(
            "paglet-crashed",
            agent_id=ctrl.agent_id,
            class_name=ctrl.agent_class,
            error=ctrl.error,
            data={"exitcode": ctrl.exitcode, "pid": ctrl.pid},
        )

    async def dispose(self, agent_id: str) -> None:
        """Run ``on_disposing`` and the resource cleanup, then end the process.

        A crashed paglet is simply removed. A failing non-suppressed cleanup aborts the disposal and the
        paglet stays active (``LifecycleError``). A paglet that does not finish the handler it is in, its
        ``on_disposing`` and its cleanup within ``timeouts.dispose`` seconds (``DISPOSE_GRACE``) is ended
        without them: its process is killed, which frees what the process held. Callers waiting for it get
        ``PagletCrashedError`` (the message in progress) or ``InvalidAgentError`` (messages still queued).
        """
        ctrl = self.get(agent_id)
        forced = False
        if ctrl.status == "ready":
            event = PersistencyEvent(
                agent_id=agent_id, host_name=self.host_name, host_address=self._address(), reason="dispose"
            )
            try:
                async with asyncio.timeout(self.timeouts.dispose):
                    await ctrl.lifecycle("disposing", event, None)
                    await ctrl.resources("cleanup", reason="dispose", timeout=None)
            except TimeoutError:
                forced = True
        elif ctrl.status not in ("crashed", "starting"):
            raise InvalidAgentError(f"paglet {agent_id} is {ctrl.status}")
        for delivery in ctrl.begin_stop():
            future = delivery.item.future
            if future is not None and not future.done():
                future.set_exception(InvalidAgentError(f"paglet {agent_id} was disposed"))
        if forced:
            _log.warning(
                "paglet %s did not finish its handler and on_disposing within %g s: its process is ended",
                agent_id,
                self.timeouts.dispose,
            )
            ctrl.fail_pending(
                PagletCrashedError(
                    f"paglet {agent_id} was disposed while it handled this message (it did not return "
                    f"within the dispose grace period of {self.timeouts.dispose:g} s)"
                )
            )
            ctrl.kill()
        else:
            ctrl.shutdown()
        if await ctrl.wait_exit(self.timeouts.exit) is None:
            ctrl.kill()
            await ctrl.wait_exit(self.timeouts.exit)
        ctrl.close()
        ctrl.settled.set()  # a commit waiting for its run() (it disposed itself there) is answered now
        self.controllers.pop(agent_id, None)
        self._on_agent_gone(agent_id)
        data: dict[str, Any] = {"active": True}
        if forced:
            data["forced"] = True
        self.events.emit("dispose", agent_id=agent_id, class_name=ctrl.agent_class, data=data)


def mailbox_counts(ctrl: PagletController) -> dict[str, int]:
    """The ``mailbox`` field of a paglet's summary (``Host.mailbox_status``)."""
    stats = ctrl.mailbox.statistics()
    return {
        "queued_count": stats.queued_count,
        "in_flight_count": stats.in_flight_count,
        "delivered_count": stats.delivered_count,
        "failed_count": stats.failed_count,
    }
