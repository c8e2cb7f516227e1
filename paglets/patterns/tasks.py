"""Request/result paglets: ``start`` a typed task, ask its ``status``, ``wait`` for its result.

A :class:`TaskPaglet` declares a ``Request`` and a ``Result`` dataclass and implements
:meth:`TaskPaglet.run_task`. Three operations come built in (message kinds of paglets 2.0):

- ``start`` (:class:`TaskStartRequest`, the request as a wire dict): decodes the typed request, marks the
  task ``RUNNING`` and calls ``run_task(request)`` in the message handler. A returned ``Result``
  completes the task; ``None`` leaves it running (finish later with :meth:`TaskPaglet.complete_task` or
  :meth:`TaskPaglet.fail_task`, e.g. from ``on_arrival``); a returned proxy (what ``self.dispatch``
  gives) is passed back to the caller, which follows the paglet there; an exception fails the task.
- ``status``: a :class:`TaskStatusReply` at once.
- ``wait`` (:class:`TaskWaitRequest`): blocks the handler until the task is done or ``wait_timeout``
  seconds passed (at most :data:`MAX_WAIT_TIMEOUT`), then replies like ``status``. While it waits, the
  paglet handles no other message (the mailbox is serial): a task that needs messages to finish should
  be polled with ``status`` instead.

:class:`TaskClient` drives one from outside (or from another paglet) and returns a
:class:`TaskSnapshot` with the typed result.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, is_dataclass
from enum import Enum
from typing import Any, Final, Generic, TypeVar, cast

from paglets.core.agent import Paglet, PagletState
from paglets.core.errors import HostError
from paglets.core.messages import Message
from paglets.remote.proxy import PagletProxy
from paglets.remote.references import PagletProxyRef
from paglets.serialization.codec import dataclass_from_wire, dataclass_to_wire
from paglets.services.contracts import EmptyPayload, ServiceOperation

__all__ = [
    "MAX_WAIT_TIMEOUT",
    "TASK_START",
    "TASK_STATUS",
    "TASK_WAIT",
    "TaskClient",
    "TaskPaglet",
    "TaskSnapshot",
    "TaskStartRequest",
    "TaskState",
    "TaskStatus",
    "TaskStatusReply",
    "TaskWaitRequest",
]

#: Longest a ``wait`` may hold the paglet's handler (seconds); longer requests are cut to this.
MAX_WAIT_TIMEOUT: Final = 300.0


class TaskStatus(Enum):
    NEW = "NEW"
    RUNNING = "RUNNING"
    WAITING_FOR_ARRIVAL = "WAITING_FOR_ARRIVAL"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"


@dataclass
class TaskState(PagletState):
    """The state every task paglet's state extends (add your own fields in a subclass)."""

    status: TaskStatus = TaskStatus.NEW
    done: bool = False
    #: The request of the last ``start``, as a wire dict.
    request: dict[str, Any] = field(default_factory=dict)
    #: The result, as a wire dict (empty until completed).
    result: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    started_at: float = 0.0
    completed_at: float = 0.0


@dataclass(frozen=True, slots=True)
class TaskStartRequest:
    request: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TaskWaitRequest:
    wait_timeout: float = 0.5


@dataclass(frozen=True, slots=True)
class TaskStatusReply:
    status: TaskStatus = TaskStatus.NEW
    done: bool = False
    request: dict[str, Any] = field(default_factory=dict)
    result: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    started_at: float = 0.0
    completed_at: float = 0.0
    agent_id: str = ""
    host_name: str = ""
    host_url: str = ""


TASK_START = ServiceOperation("start", TaskStartRequest, TaskStatusReply)
TASK_STATUS = ServiceOperation("status", EmptyPayload, TaskStatusReply)
TASK_WAIT = ServiceOperation("wait", TaskWaitRequest, TaskStatusReply)

RequestT = TypeVar("RequestT")
ResultT = TypeVar("ResultT")
StateT = TypeVar("StateT", bound=TaskState)


@dataclass(frozen=True, slots=True)
class TaskSnapshot(Generic[ResultT]):
    """Where a task stands, with its typed result once it completed."""

    status: TaskStatus
    done: bool
    result: ResultT | None = None
    error: str = ""
    started_at: float = 0.0
    completed_at: float = 0.0
    agent_id: str = ""
    host_name: str = ""
    host_url: str = ""

    def to_wire(self) -> dict[str, Any]:
        result = self.result
        return {
            "status": self.status.value,
            "done": self.done,
            "result": dataclass_to_wire(result) if _is_instance(result) else {},
            "error": self.error,
            "started_at": self.started_at,
            "completed_at": self.completed_at,
            "agent_id": self.agent_id,
            "host_name": self.host_name,
            "host_url": self.host_url,
        }


def _is_instance(value: object) -> bool:
    return value is not None and is_dataclass(value) and not isinstance(value, type)


def _clamped_wait(value: object) -> float:
    try:
        seconds = float(cast(Any, value))
    except (TypeError, ValueError):
        return 0.0
    if seconds != seconds:  # NaN
        return 0.0
    return min(MAX_WAIT_TIMEOUT, max(0.0, seconds))


class TaskPaglet(Paglet[StateT], Generic[RequestT, ResultT, StateT]):
    """A paglet that runs one typed task: ``start``, ``status`` and ``wait`` (see the module docstring).

    Subclasses set ``State`` (a :class:`TaskState` subclass), ``Request`` and ``Result`` (dataclasses)
    and implement :meth:`run_task`; other message kinds go to :meth:`handle_task_message`.
    """

    Request: type[Any]
    Result: type[Any]

    def handle_message(self, message: Message) -> Any:
        kind = message.kind
        if kind == TASK_START.name:
            return self._start_task(TASK_START.decode_request(message))
        if kind == TASK_STATUS.name:
            return dataclass_to_wire(self.task_status_reply())
        if kind == TASK_WAIT.name:
            wait = TASK_WAIT.decode_request(message)
            self.wait_state(lambda state: bool(state.done), timeout=_clamped_wait(wait.wait_timeout))
            return dataclass_to_wire(self.task_status_reply())
        reply = self.handle_task_message(message)
        return self.not_handled() if reply is None else reply

    def handle_task_message(self, message: Message) -> Any | None:
        """Messages other than ``start``/``status``/``wait``; None means not handled."""
        return None

    def run_task(self, request: RequestT) -> ResultT | PagletProxy | PagletProxyRef | None:
        """Do the task (see the module docstring for what the return value means)."""
        raise NotImplementedError(f"{type(self).__name__} must implement run_task(request)")

    def task_status_reply(self) -> TaskStatusReply:
        with self.locked_state() as state:
            return TaskStatusReply(
                status=state.status,
                done=state.done,
                request=dict(state.request),
                result=dict(state.result),
                error=state.error,
                started_at=state.started_at,
                completed_at=state.completed_at,
                agent_id=self.agent_id,
                host_name=self.context.name,
                host_url=self.context.address,
            )

    def complete_task(self, result: ResultT, *, status: TaskStatus = TaskStatus.COMPLETED) -> None:
        """Record ``result`` (a dataclass instance) and mark the task done with ``status``."""
        if not _is_instance(result):
            raise HostError(f"a task result must be a dataclass instance, got {type(result).__name__}")
        wire = dataclass_to_wire(result)
        with self.locked_state() as state:
            state.status = status
            state.done = True
            state.result = wire
            state.error = ""
            state.completed_at = time.time()
        self.notify_all_state_changed()

    def fail_task(self, error: str | BaseException) -> None:
        """Mark the task done and FAILED with ``error``'s text."""
        text = str(error) or (type(error).__name__ if isinstance(error, BaseException) else "failed")
        with self.locked_state() as state:
            state.status = TaskStatus.FAILED
            state.done = True
            state.error = text
            state.completed_at = time.time()
        self.notify_all_state_changed()

    def set_task_status(self, status: TaskStatus, *, done: bool | None = None) -> None:
        with self.locked_state() as state:
            state.status = status
            if done is not None:
                state.done = bool(done)
        self.notify_all_state_changed()

    def _start_task(self, start: TaskStartRequest) -> Any:
        request = dataclass_from_wire(self.request_class(), dict(start.request))
        with self.locked_state() as state:
            state.status = TaskStatus.RUNNING
            state.done = False
            state.request = dict(start.request)
            state.result = {}
            state.error = ""
            state.started_at = time.time()
            state.completed_at = 0.0
        self.notify_all_state_changed()
        try:
            outcome = self.run_task(request)
        except Exception as exc:
            self.fail_task(exc)
            return dataclass_to_wire(self.task_status_reply())
        if isinstance(outcome, PagletProxy | PagletProxyRef):
            return outcome.to_wire()
        if outcome is not None:
            self.complete_task(outcome)
        return dataclass_to_wire(self.task_status_reply())

    @classmethod
    def request_class(cls) -> type[RequestT]:
        found = getattr(cls, "Request", None)
        if found is None:
            raise HostError(f"{cls.__name__} must define Request")
        return cast(type[RequestT], found)

    @classmethod
    def result_class(cls) -> type[ResultT]:
        found = getattr(cls, "Result", None)
        if found is None:
            raise HostError(f"{cls.__name__} must define Result")
        return cast(type[ResultT], found)


@dataclass(slots=True)
class TaskClient(Generic[RequestT, ResultT]):
    """Drives a :class:`TaskPaglet` through a proxy; follows it when ``start`` moved it elsewhere."""

    proxy: PagletProxy
    request_type: type[RequestT]
    result_type: type[ResultT]

    @classmethod
    def for_paglet(
        cls, proxy: PagletProxy, paglet_cls: type[TaskPaglet[RequestT, ResultT, Any]]
    ) -> TaskClient[RequestT, ResultT]:
        return cls(proxy, paglet_cls.request_class(), paglet_cls.result_class())

    def start(self, request: RequestT, *, timeout: float | None = None) -> TaskSnapshot[ResultT]:
        message = TASK_START.to_message(TaskStartRequest(dataclass_to_wire(request)))
        reply = self.proxy.send(message, timeout=timeout)
        if _is_proxy_wire(reply):
            self.proxy = self._follow(reply)
            return self.status(timeout=timeout)
        return self._snapshot(reply)

    def status(self, *, timeout: float | None = None) -> TaskSnapshot[ResultT]:
        return self._snapshot(self.proxy.send(TASK_STATUS.to_message(), timeout=timeout))

    def wait(self, *, wait_timeout: float = 0.5, timeout: float | None = None) -> TaskSnapshot[ResultT]:
        seconds = _clamped_wait(wait_timeout)
        message = TASK_WAIT.to_message(TaskWaitRequest(wait_timeout=seconds))
        if timeout is None:
            base = self.proxy.client.timeout if self.proxy.client is not None else 10.0
            timeout = seconds + base  # the call outlives the wait it asks for
        return self._snapshot(self.proxy.send(message, timeout=timeout))

    def start_and_wait(
        self, request: RequestT, *, wait_timeout: float = 0.5, timeout: float | None = None
    ) -> TaskSnapshot[ResultT]:
        snapshot = self.start(request, timeout=timeout)
        if snapshot.done:
            return snapshot
        return self.wait(wait_timeout=wait_timeout, timeout=timeout)

    def _follow(self, wire: dict[str, Any]) -> PagletProxy:
        url, agent_id = str(wire["host_url"]), str(wire["agent_id"])
        route = self.proxy.route
        if route is not None and url.rstrip("/") != route.address.rstrip("/"):
            route = None  # a same-host shortcut only serves its own host
        return PagletProxy(url, agent_id, self.proxy.client, route)

    def _snapshot(self, reply: Any) -> TaskSnapshot[ResultT]:
        status = dataclass_from_wire(TaskStatusReply, dict(reply or {}))
        result = dataclass_from_wire(self.result_type, status.result) if status.result else None
        return TaskSnapshot(
            status=status.status,
            done=status.done,
            result=result,
            error=status.error,
            started_at=status.started_at,
            completed_at=status.completed_at,
            agent_id=status.agent_id,
            host_name=status.host_name,
            host_url=status.host_url,
        )


def _is_proxy_wire(reply: Any) -> bool:
    return isinstance(reply, dict) and set(reply) == {"host_url", "agent_id"}
