"""Messages between paglets, and handles for replies that arrive later.

``Message`` is the public, mutable value the contract defines (nine fields). It travels as a *wire
dict* (``to_wire``/``from_wire``): the runtime encodes that dict with msgspec, so every value in
``args``/``arg`` must be a wire value (dataclass codec types, bytes stay bytes).

Priorities: the mailbox serves the highest ``priority`` first and is FIFO within one priority.
``increase_priority``/``decrease_priority`` step by one and never leave ``MIN_PRIORITY..MAX_PRIORITY``
from inside that range. ``UNQUEUED_PRIORITY`` (0) bypasses the host's queue. ``message_type`` is
informational (``SYNCHRONOUS``/``FUTURE``/``ONEWAY``); the runtime never reads it.

Reserved kinds: only ``DEACTIVATE_KIND`` (``"_deactivate"``) is interpreted by a host; the others reach
``handle_message`` like any kind.

``FutureReply`` is a ``concurrent.futures.Future`` with the Aglets-style accessors; ``ReplySet`` collects
several of them and hands them out in *completion* order, each exactly once. Every wait takes a
``timeout`` in seconds; ``None`` waits without a deadline.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Final

from paglets.core.errors import SerializationError

__all__ = [
    "CLONE_KIND",
    "DEACTIVATE_KIND",
    "DISPATCH_KIND",
    "DISPOSE_KIND",
    "FUTURE",
    "MAX_PRIORITY",
    "MIN_PRIORITY",
    "NORMAL_PRIORITY",
    "ONEWAY",
    "REENTRANT_PRIORITY",
    "REQUEST_PRIORITY",
    "RESERVED_KINDS",
    "REVERT_KIND",
    "SYNCHRONOUS",
    "SYSTEM_PRIORITY",
    "UNQUEUED_PRIORITY",
    "FutureReply",
    "Message",
    "ReplySet",
    "new_message_id",
]

# --- message types (informational) ---------------------------------------------------------------------

SYNCHRONOUS: Final = 0
FUTURE: Final = 1
ONEWAY: Final = 2

# --- priorities ------------------------------------------------------------------------------------------

MIN_PRIORITY: Final = 1
NORMAL_PRIORITY: Final = 5
MAX_PRIORITY: Final = 10
REENTRANT_PRIORITY: Final = 0xFFFFFFFF
SYSTEM_PRIORITY: Final = REENTRANT_PRIORITY - 1
REQUEST_PRIORITY: Final = SYSTEM_PRIORITY - 1
#: Messages with this priority skip the host's priority queue (still handled one at a time).
UNQUEUED_PRIORITY: Final = 0

# --- reserved kinds --------------------------------------------------------------------------------------

CLONE_KIND: Final = "_clone"
DISPATCH_KIND: Final = "_dispatch"
DISPOSE_KIND: Final = "_dispose"
#: The only reserved kind a host interprets: it deactivates the target.
DEACTIVATE_KIND: Final = "_deactivate"
REVERT_KIND: Final = "_revert"
RESERVED_KINDS: Final = frozenset({CLONE_KIND, DISPATCH_KIND, DISPOSE_KIND, DEACTIVATE_KIND, REVERT_KIND})

# paglets 2.0 spells the reserved kinds without the suffix.
CLONE: Final = CLONE_KIND
DISPATCH: Final = DISPATCH_KIND
DISPOSE: Final = DISPOSE_KIND
DEACTIVATE: Final = DEACTIVATE_KIND
REVERT: Final = REVERT_KIND


def new_message_id() -> str:
    """A fresh message id: a uuid4 as 32 lowercase hex characters."""
    return uuid.uuid4().hex


@dataclass(slots=True)
class Message:
    """A message delivered to a paglet's ``handle_message``; the reply is the handler's return value."""

    kind: str
    args: dict[str, Any] = field(default_factory=dict)
    arg: Any = None
    sender: str | None = None
    reply_to: str | None = None
    priority: int = NORMAL_PRIORITY
    message_type: int = SYNCHRONOUS
    timestamp: float = field(default_factory=time.time)
    message_id: str = field(default_factory=new_message_id)

    def get_arg(self, name: str | None = None, default: Any = None) -> Any:
        """The named argument (``default`` when absent), or the single ``arg`` when no name is given."""
        if name is None:
            return self.arg
        return self.args.get(name, default)

    def set_arg(self, name: str, value: Any) -> Message:
        """Set a named argument; returns ``self`` so calls chain."""
        self.args[name] = value
        return self

    def same_kind(self, kind: str | Message) -> bool:
        other = kind.kind if isinstance(kind, Message) else kind
        return self.kind == other

    def increase_priority(self) -> None:
        """One step up, never past ``MAX_PRIORITY``."""
        if self.priority < MAX_PRIORITY:
            self.priority += 1

    def decrease_priority(self) -> None:
        """One step down, never below ``MIN_PRIORITY``."""
        if self.priority > MIN_PRIORITY:
            self.priority -= 1

    def to_wire(self) -> dict[str, Any]:
        """All nine fields as a wire dict (``args`` is a shallow copy)."""
        return {
            "kind": self.kind,
            "args": dict(self.args),
            "arg": self.arg,
            "sender": self.sender,
            "reply_to": self.reply_to,
            "priority": self.priority,
            "message_type": self.message_type,
            "timestamp": self.timestamp,
            "message_id": self.message_id,
        }

    @classmethod
    def from_wire(cls, payload: Any) -> Message:
        """Rebuild a message; missing fields take their defaults and a missing id is regenerated.

        Malformed input (not a dict, no ``kind``, wrong field types) raises ``SerializationError``.
        """
        if not isinstance(payload, dict):
            raise SerializationError(f"message must be a dict, got {type(payload).__name__}")
        kind = payload.get("kind")
        if not isinstance(kind, str):
            raise SerializationError("message.kind must be a string")
        args = payload.get("args")
        if args is None:
            args = {}
        elif not isinstance(args, dict):
            raise SerializationError("message.args must be a dict")
        try:
            return cls(
                kind=kind,
                args=dict(args),
                arg=payload.get("arg"),
                sender=_optional_str(payload, "sender"),
                reply_to=_optional_str(payload, "reply_to"),
                priority=_int(payload, "priority", NORMAL_PRIORITY),
                message_type=_int(payload, "message_type", SYNCHRONOUS),
                timestamp=_float(payload, "timestamp", None),
                message_id=_optional_str(payload, "message_id") or new_message_id(),
            )
        except (TypeError, ValueError) as exc:
            raise SerializationError(f"malformed message: {exc}") from exc


def _optional_str(data: dict[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is None or isinstance(value, str):
        return value
    raise TypeError(f"{key} must be a string or null")


def _int(data: dict[str, Any], key: str, default: int) -> int:
    value = data.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{key} must be a number")
    return int(value)


def _float(data: dict[str, Any], key: str, default: float | None) -> float:
    value = data.get(key)
    if value is None:
        return time.time() if default is None else default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{key} must be a number")
    return float(value)


class FutureReply(Future[Any]):
    """The reply to a message sent with ``send_future``: a ``concurrent.futures.Future``.

    ``FutureReply(future)`` mirrors another future's outcome (paglets 2.0 wrapped one); without an
    argument it is completed by the runtime with ``set_result``/``set_exception``. A handler error is
    re-raised, with its remote class, by ``get_reply`` and ``wait_for_reply``.
    """

    def __init__(self, future: Future[Any] | None = None) -> None:
        super().__init__()
        if future is not None:
            future.add_done_callback(self._copy_outcome)

    def _copy_outcome(self, source: Future[Any]) -> None:
        if self.done():  # cancelled by its owner meanwhile
            return
        if source.cancelled():
            self.cancel()
            return
        exc = source.exception()
        if exc is not None:
            self.set_exception(exc)
        else:
            self.set_result(source.result())

    def added_to(self, reply_set: ReplySet) -> None:
        """Report this reply to ``reply_set`` when it completes (at once if it already has)."""
        self.add_done_callback(reply_set._reply_done)

    def is_available(self) -> bool:
        return self.done()

    def wait_for_reply(self, timeout: float | None = None) -> bool:
        """True once the reply arrived, False if ``timeout`` passed first; a handler error is raised."""
        try:
            self.result(timeout=timeout)
        except TimeoutError:
            return False
        return True

    def get_reply(self, timeout: float | None = None) -> Any:
        """The handler's return value; raises its error, or ``TimeoutError`` after ``timeout``."""
        return self.result(timeout=timeout)

    def get_boolean_reply(self, timeout: float | None = None) -> bool:
        return bool(self.get_reply(timeout))

    def get_int_reply(self, timeout: float | None = None) -> int:
        return int(self.get_reply(timeout))

    def get_float_reply(self, timeout: float | None = None) -> float:
        return float(self.get_reply(timeout))

    def get_string_reply(self, timeout: float | None = None) -> str:
        return str(self.get_reply(timeout))


class ReplySet:
    """Several ``FutureReply`` objects, handed out in the order they complete.

    ``get_next_future_reply`` and iteration *consume* the replies they return; the counters describe
    the replies not consumed yet. Thread-safe: replies may complete on any thread.
    """

    def __init__(self, replies: Iterable[FutureReply] | None = None) -> None:
        self._condition = threading.Condition(threading.Lock())
        self._pending: set[Future[Any]] = set()
        self._done: deque[FutureReply] = deque()
        self._done_set: set[Future[Any]] = set()
        for reply in replies or ():
            self.add_future_reply(reply)

    def add_future_reply(self, reply: FutureReply) -> None:
        """Track ``reply``; adding a reply that is already tracked has no effect."""
        with self._condition:
            if reply in self._pending or reply in self._done_set:
                return
            self._pending.add(reply)
        # Outside the lock: the callback runs at once, on this thread, when the reply is already done.
        reply.added_to(self)

    def _reply_done(self, reply: Future[Any]) -> None:
        if isinstance(reply, FutureReply):
            self.done(reply)

    def done(self, reply: FutureReply) -> None:
        """Mark ``reply`` completed: it can be taken now (its own callback does this; a reply not
        tracked yet is added as completed, as in paglets 2.0)."""
        with self._condition:
            if reply in self._done_set:
                return
            self._pending.discard(reply)
            self._done.append(reply)
            self._done_set.add(reply)
            self._condition.notify_all()

    def are_all_available(self) -> bool:
        with self._condition:
            return not self._pending

    def count_available(self) -> int:
        with self._condition:
            return len(self._done)

    def count_unavailable(self) -> int:
        with self._condition:
            return len(self._pending)

    def is_any_available(self) -> bool:
        with self._condition:
            return bool(self._done)

    def has_more_future_replies(self) -> bool:
        """True while some reply has not been handed out yet (completed or not)."""
        with self._condition:
            return bool(self._done or self._pending)

    def wait_for_all_replies(self, timeout: float | None = None) -> bool:
        """Wait until every tracked reply completed; False if ``timeout`` passed first."""
        with self._condition:
            return self._condition.wait_for(lambda: not self._pending, timeout)

    def wait_for_next_future_reply(self, timeout: float | None = None) -> bool:
        """Wait until a completed reply can be taken; False on timeout or when none is left."""
        with self._condition:
            return self._condition.wait_for(lambda: bool(self._done) or not self._pending, timeout) and bool(
                self._done
            )

    def get_next_future_reply(self, timeout: float | None = None) -> FutureReply | None:
        """Take the earliest completed reply not handed out yet; None on timeout or when none is left."""
        with self._condition:
            if not self._condition.wait_for(lambda: bool(self._done) or not self._pending, timeout):
                return None
            if not self._done:
                return None
            reply = self._done.popleft()
            self._done_set.discard(reply)
            return reply

    def __iter__(self) -> Iterator[FutureReply]:
        """Every remaining reply in completion order, waiting for each (consumes them)."""
        while True:
            reply = self.get_next_future_reply()
            if reply is None:
                return
            yield reply

    def __len__(self) -> int:
        """Replies not handed out yet."""
        with self._condition:
            return len(self._done) + len(self._pending)
