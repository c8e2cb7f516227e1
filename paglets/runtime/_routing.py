"""Message routing: where a message for a paglet of this host goes, and how it gets there.

Every message enters a host in one of four ways and is checked there, once, against the ``MessageWire``
schema, then carried encoded (``EncodedMessage``) until the paglet's process decodes it:

- a ``Message`` built in the host's process (``Host.send``, an in-process proxy): checked and encoded in
  the caller's thread (:func:`encode_local_message`), never on the event loop;
- an HTTP request: decoded, checked and encoded in the HTTP server's decoder threads when it is large
  (:func:`encode_request_message`), so a large argument never reaches the event loop as objects;
- a paglet's ``DeliverMessage`` host call: its message arrives encoded and is checked by decoding it
  (:func:`admit_message`), off the loop when it is large;
- a message stored in an inactive paglet's record, or forwarded after a move (:func:`encode_message_dict`).

:class:`MessageRouter` then sends it where the paglet is: into an active paglet's mailbox (a user thread
feeds it directly, without a loop task), to an inactive paglet's record (activate and deliver, queue, or
refuse, by its policy), to a lazy resident service (started by its first message), or, for messages
that were waiting for a paglet that moved away, on to its new host over HTTP. The reserved deactivation
message deactivates the paglet instead.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import math
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Final, Protocol, TypeVar

import msgspec

from paglets.core.errors import HostError, PagletMovedError
from paglets.core.messages import DEACTIVATE_KIND, NORMAL_PRIORITY, Message
from paglets.persistence.persistency import DeactivationRequest
from paglets.runtime._deadlines import wait_reply
from paglets.runtime._tasks import MESSAGE_FORWARD_FAILED, report_failure
from paglets.wire.control import AgentRequest, ProxyRef
from paglets.wire.encoded import EncodedMessage, check_message
from paglets.wire.ipc import INT64_MAX, INT64_MIN, MessageWire
from paglets.wire.requests import MessageBody, check_message_dict
from paglets.wire.values import decode_value, encode_value, prepare_value

if TYPE_CHECKING:
    from paglets.artifacts import ArtifactRef
    from paglets.core.context_events import ContextEventLog
    from paglets.runtime._control import ControlTable
    from paglets.runtime._controller import MailboxItem, PagletController
    from paglets.runtime._loop import LoopThread
    from paglets.runtime._paglets import Timeouts

__all__ = [
    "LocalRoute",
    "MessageRouter",
    "admit_message",
    "encode_local_message",
    "encode_message_dict",
    "encode_request_message",
    "local_message_dict",
    "message_dict",
]

T = TypeVar("T")

#: Messages from a paglet up to this size are checked on the event loop; larger ones in a worker thread.
ADMIT_INLINE: Final = 256 * 1024

# --- where messages enter ------------------------------------------------------------------------------


def encode_request_message(body: MessageBody, *, may_hold_bytearray: bool = True) -> EncodedMessage:
    """The encoded form of a message that arrived in an HTTP request (already type-checked); missing
    fields get their defaults (priority 5, type 0, now, a new id). ``may_hold_bytearray=False`` (a JSON
    body without binary tags) skips the walk that marks ``bytearray`` values (``prepare_value``)."""
    args, arg = body.args or {}, body.arg
    if may_hold_bytearray:
        args, arg = prepare_value(args), prepare_value(arg)
    return EncodedMessage.of(
        MessageWire(
            kind=body.kind,
            args=args,
            arg=arg,
            sender=body.sender,
            reply_to=body.reply_to,
            priority=NORMAL_PRIORITY if body.priority is None else body.priority,
            message_type=body.message_type or 0,
            timestamp=body.timestamp or time.time(),
            message_id=body.message_id or uuid.uuid4().hex,
        )
    )


def encode_message_dict(wire: object) -> EncodedMessage:
    """The encoded form of a ``Message.to_wire()`` dict that did not come through the HTTP route (a stored
    or forwarded message), checked field by field: ``SerializationError`` names a wrong field."""
    return encode_request_message(check_message_dict(wire))


def encode_local_message(message: Message) -> EncodedMessage:
    """The encoded form of a ``Message`` built in this process, checked like any other (``to_wire`` would
    coerce a non-dict ``args``; the check refuses it and names the field).

    The common case (every field of the type the schema wants) is checked here field by field, without
    building the wire dict; anything else goes through ``check_message_dict``, which accepts what the
    schema converts (an ``int`` timestamp) and words the error for what it refuses."""
    kind, args, priority, message_type = message.kind, message.args, message.priority, message.message_type
    timestamp, message_id = message.timestamp, message.message_id
    sender, reply_to = message.sender, message.reply_to
    if (
        type(kind) is str
        and type(args) is dict
        and all(type(name) is str for name in args)
        and type(priority) is int
        and INT64_MIN <= priority <= INT64_MAX
        and type(message_type) is int
        and INT64_MIN <= message_type <= INT64_MAX
        and type(timestamp) is float
        and type(message_id) is str
        and (sender is None or type(sender) is str)
        and (reply_to is None or type(reply_to) is str)
    ):
        body = MessageBody(
            kind=kind,
            args=args,
            arg=message.arg,
            sender=sender,
            reply_to=reply_to,
            priority=priority,
            message_type=message_type,
            timestamp=timestamp,
            message_id=message_id,
        )
        return encode_request_message(body)
    return encode_message_dict(local_message_dict(message))


def local_message_dict(message: Message) -> dict[str, object]:
    """The wire dict of a ``Message`` exactly as its fields hold them (unlike ``to_wire``, which coerces
    a non-dict ``args``), for the schema check to judge."""
    return {
        "kind": message.kind,
        "args": message.args,
        "arg": message.arg,
        "sender": message.sender,
        "reply_to": message.reply_to,
        "priority": message.priority,
        "message_type": message.message_type,
        "timestamp": message.timestamp,
        "message_id": message.message_id,
    }


def _admit(raw: msgspec.Raw, sender: str) -> EncodedMessage:
    message = check_message(raw)
    if message.sender and message.message_id and message.timestamp:
        return EncodedMessage(message.kind, message.priority, message.message_id, raw)
    return (
        EncodedMessage.of(  # filled in as the HTTP route fills in a message (rare: paglets send whole ones)
            msgspec.structs.replace(
                message,
                sender=message.sender or sender,
                timestamp=message.timestamp or time.time(),
                message_id=message.message_id or uuid.uuid4().hex,
            )
        )
    )


async def admit_message(raw: msgspec.Raw, *, sender: str) -> EncodedMessage:
    """A message a paglet sent (``DeliverMessage.message``), checked (``SerializationError`` names a wrong
    field); a large one in a worker thread. An empty ``sender`` becomes ``sender``."""
    if len(raw) <= ADMIT_INLINE:
        return _admit(raw, sender)
    return await asyncio.get_running_loop().run_in_executor(None, _admit, raw, sender)


def message_dict(message: EncodedMessage) -> dict[str, object]:
    """The ``Message.to_wire()`` dict of an encoded message (extension values turned back into Python)."""
    wire = message.decode()
    data: dict[str, object] = decode_value(
        encode_value({f: getattr(wire, f) for f in wire.__struct_fields__})
    )
    return data


# --- what the router needs ------------------------------------------------------------------------------


class Agents(Protocol):
    """The active paglets (``PagletManager``)."""

    @property
    def controllers(self) -> dict[str, PagletController]: ...
    @property
    def timeouts(self) -> Timeouts: ...
    def submit_threadsafe(
        self,
        agent_id: str,
        message: EncodedMessage,
        *,
        oneway: bool,
        future: concurrent.futures.Future[object] | None,
    ) -> None: ...
    async def deliver(
        self, agent_id: str, message: EncodedMessage, *, oneway: bool, timeout: float | None = None
    ) -> object: ...


class Records(Protocol):
    """The inactive paglets (``Persistence``)."""

    def summary(self, agent_id: str) -> object | None: ...
    async def deliver(
        self,
        agent_id: str,
        message: EncodedMessage,
        *,
        oneway: bool,
        activate_if_inactive: bool,
        no_delay: bool,
        timeout: float | None = None,
    ) -> object: ...
    async def deactivate(self, agent_id: str, request: DeactivationRequest | None) -> ProxyRef: ...


class Residents(Protocol):
    """The resident services (``ResidentServices``)."""

    def is_resident(self, agent_id: str) -> bool: ...
    async def ensure_started(self, agent_id: str) -> None: ...


#: ``post(url, body)``: a JSON POST to another host (the host's ``AsyncHttpClient.request_json``).
Post = Callable[[str, dict[str, object]], Awaitable[object]]


class MessageRouter:
    """See the module docstring. ``deliver`` and ``forward_waiting`` run on the event loop, ``submit`` and
    ``send`` in any other thread."""

    def __init__(
        self,
        *,
        host_name: str,
        address: Callable[[], str],
        loop: LoopThread,
        started: Callable[[], bool],
        agents: Agents,
        records: Records,
        residents: Residents,
        post: Post,
        events: ContextEventLog,
        moved: Callable[[str], PagletMovedError | None] = lambda agent_id: None,
    ) -> None:
        self._moved = moved
        self._host_name = host_name
        self._address = address
        self._loop = loop
        self._started = started
        self._agents = agents
        self._records = records
        self._residents = residents
        self._post = post
        self._events = events

    @property
    def send_timeout(self) -> float | None:
        """Seconds a synchronous send waits for its reply when the caller gives no deadline."""
        return self._agents.timeouts.send

    # --- from user threads ---------------------------------------------------------------------------

    def send(
        self,
        agent_id: str,
        message: Message,
        *,
        oneway: bool,
        activate_if_inactive: bool,
        no_delay: bool,
        deadline: float | None,
    ) -> object:
        """Deliver ``message`` and wait for the reply at most ``deadline`` seconds (``None``: no limit)."""
        future = self.submit(
            agent_id,
            message,
            oneway=oneway,
            activate_if_inactive=activate_if_inactive,
            no_delay=no_delay,
            deadline=deadline,
        )
        return wait_reply(future, agent_id, message.kind, oneway=oneway, deadline=deadline)

    def submit(
        self,
        agent_id: str,
        message: Message,
        *,
        oneway: bool,
        activate_if_inactive: bool = True,
        no_delay: bool = False,
        deadline: float | None = None,
    ) -> concurrent.futures.Future[object]:
        """Queue ``message`` from a user thread; an active paglet's mailbox is fed directly (no task)."""
        if not self._started():
            raise HostError(f"host {self._host_name} is not started (call start_background())")
        if self._loop.in_loop_thread():
            raise HostError("a blocking host call was made from the host's event loop thread")
        encoded = encode_local_message(message)
        ctrl = self._agents.controllers.get(agent_id)
        if encoded.kind == DEACTIVATE_KIND or ctrl is None or ctrl.status != "ready":
            return asyncio.run_coroutine_threadsafe(
                self.deliver(
                    agent_id,
                    encoded,
                    oneway=oneway,
                    activate_if_inactive=activate_if_inactive,
                    no_delay=no_delay,
                    timeout=deadline if deadline is not None else math.inf,
                ),
                self._loop.loop,
            )
        result: concurrent.futures.Future[object] = concurrent.futures.Future()
        self._agents.submit_threadsafe(agent_id, encoded, oneway=oneway, future=None if oneway else result)
        if oneway:
            result.set_result(None)
        return result

    # --- on the loop ---------------------------------------------------------------------------------

    async def deliver(
        self,
        agent_id: str,
        message: EncodedMessage,
        *,
        oneway: bool,
        activate_if_inactive: bool = True,
        no_delay: bool = False,
        timeout: float | None = None,
    ) -> object:
        """Deliver a message. A synchronous send waits at most ``timeout`` seconds for the handler's reply
        once the message is in the mailbox (``None``: the host's ``send_timeout``; ``math.inf``: no
        limit), then raises ``SendTimeoutError``."""
        if timeout is None:
            timeout = self.send_timeout
        elif timeout == math.inf:
            timeout = None
        if message.kind == DEACTIVATE_KIND:  # the reserved message
            args = message.decode().args
            raw = args.get("request") if isinstance(args, dict) else None
            request = DeactivationRequest.from_wire(raw) if isinstance(raw, dict) else None
            proxy = await self._records.deactivate(agent_id, request)
            return None if oneway else {"deactivated": True, "proxy": msgspec.structs.asdict(proxy)}
        active = agent_id in self._agents.controllers
        if not active and self._records.summary(agent_id) is None and self._residents.is_resident(agent_id):
            await self._residents.ensure_started(
                agent_id
            )  # a lazy resident service starts on its first message
            active = agent_id in self._agents.controllers
        if not active and self._records.summary(agent_id) is not None:
            return await self._records.deliver(
                agent_id,
                message,
                oneway=oneway,
                activate_if_inactive=activate_if_inactive,
                no_delay=no_delay,
                timeout=timeout,
            )
        if not active:
            moved = self._moved(agent_id)
            if moved is not None:
                raise moved
        return await self._agents.deliver(agent_id, message, oneway=oneway, timeout=timeout)

    async def forward_waiting(self, items: Sequence[MailboxItem], where: ProxyRef) -> None:
        """Deliver messages that were waiting for a paglet that moved to its new place.

        A sender that waits gets the error of its message; the error of a message nobody waits for
        (oneway) is reported as a ``message-forward-failed`` event and a log line. If the host stops
        meanwhile, the senders still waiting get a ``HostError``."""
        url, agent_id = where.host_url.rstrip("/"), where.agent_id
        same_host = url == self._address().rstrip("/")
        for index, item in enumerate(items):
            future = item.future
            try:
                if same_host:
                    result = await self._agents.deliver(agent_id, item.message, oneway=item.oneway)
                else:
                    reply = await self._post(
                        f"{url}/agents/{agent_id}/messages",
                        {"message": message_dict(item.message), "oneway": item.oneway},
                    )
                    result = reply.get("result") if isinstance(reply, dict) else None
            except asyncio.CancelledError:
                stopped = HostError(f"host {self._host_name} stopped before forwarding the message to {url}")
                for rest in items[index:]:
                    if rest.future is not None and not rest.future.done():
                        rest.future.set_exception(stopped)
                raise
            except Exception as exc:
                if future is not None and not future.done():
                    future.set_exception(exc)
                elif future is None:
                    report_failure(
                        self._events,
                        MESSAGE_FORWARD_FAILED,
                        f"forwarding a oneway message to paglet {agent_id} at {url}",
                        exc,
                        agent_id=agent_id,
                        message_id=item.message.message_id,
                        target=url,
                        message_kind=item.message.kind,
                    )
                continue
            if future is not None and not future.done():
                future.set_result(result)


class Runner(Protocol):
    """Runs a coroutine on the host's loop from another thread and waits at most ``timeout`` seconds."""

    def __call__(self, coro: Coroutine[object, None, T], timeout: float | None, /) -> T: ...


class _Artifacts(Protocol):
    """This host's artifacts as its own process reaches them (``ArtifactAccess``)."""

    def upload_artifact(
        self,
        path: Path | str,
        *,
        host_url: str | None = None,
        owner_agent_id: str = "",
        name: str | None = None,
        compression: str = "",
        expires_at: float = 0.0,
        timeout: float | None = None,
    ) -> ArtifactRef: ...
    def delete_artifact(self, artifact: ArtifactRef, *, timeout: float | None = None) -> None: ...


class LocalRoute:
    """The ``ProxyRoute`` of proxies a host hands out in its own process: messages go straight to the
    router (a user thread feeds an active paglet's mailbox), control operations to the control table on
    the loop (``run`` crosses into it and waits), artifacts to the host's store; no HTTP."""

    def __init__(
        self,
        *,
        address: Callable[[], str],
        router: MessageRouter,
        control: ControlTable,
        run: Runner,
        artifacts: _Artifacts,
        default_timeout: float,
    ) -> None:
        self._address = address
        self._router = router
        self._control = control
        self._run = run
        self._artifacts = artifacts
        self._default_timeout = default_timeout

    @property
    def address(self) -> str:
        return self._address()

    def route_message(
        self,
        agent_id: str,
        message: Message,
        *,
        oneway: bool,
        activate_if_inactive: bool,
        no_delay: bool,
        timeout: float | None,
    ) -> object:
        """A proxy's send (``timeout=None``: the host's ``send_timeout``)."""
        router = self._router
        deadline = router.send_timeout if timeout is None else timeout
        return router.send(
            agent_id,
            message,
            oneway=oneway,
            activate_if_inactive=activate_if_inactive,
            no_delay=no_delay,
            deadline=deadline,
        )

    def route_message_future(
        self, agent_id: str, message: Message, *, activate_if_inactive: bool, no_delay: bool
    ) -> concurrent.futures.Future[object]:
        return self._router.submit(
            agent_id, message, oneway=False, activate_if_inactive=activate_if_inactive, no_delay=no_delay
        )

    def route_call(self, request: AgentRequest[T], timeout: float | None) -> T:
        """A proxy's control operation (info, dispose, deactivate, activate, dispatch, clone)."""
        return self._run(self._control.call(request), timeout or self._default_timeout)

    def upload_artifact(
        self,
        path: Path | str,
        *,
        host_url: str | None = None,
        owner_agent_id: str = "",
        name: str | None = None,
        compression: str = "",
        expires_at: float = 0.0,
        timeout: float | None = None,
    ) -> ArtifactRef:
        return self._artifacts.upload_artifact(
            path,
            host_url=host_url,
            owner_agent_id=owner_agent_id,
            name=name,
            compression=compression,
            expires_at=expires_at,
            timeout=timeout,
        )

    def delete_artifact(self, artifact: ArtifactRef, *, timeout: float | None = None) -> None:
        self._artifacts.delete_artifact(artifact, timeout=timeout)
