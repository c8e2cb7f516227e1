"""Failures nobody waits for: background tasks that report how they ended, and the one way to report.

A task that nobody awaits keeps its exception to itself: asyncio at best logs "Task exception was never
retrieved" when the task is collected, and a task only the loop references may be collected while it
runs. Every fire-and-forget task of a host (its own, the movement engine's, a paglet process's host calls
and crash reports, the resident services' timer, the artifact clean-up) is started with
:meth:`BackgroundTasks.spawn`, which

- keeps a reference until the task ends;
- retrieves its outcome when it ends, and reports an exception with :func:`report_failure` as a
  ``task-failed`` context event (``data.task`` names the coroutine) plus an error log line with the
  traceback; cancellation (the host stopping) is not a failure;
- cancels what is still running in :meth:`BackgroundTasks.cancel_all`.

:func:`report_failure` is also how other best-effort work reports an error it does not raise: a
forwarded oneway message that could not be delivered (``message-forward-failed``), a staged registered
file that could not be removed again (``file-unstage-failed``). The event kinds are listed in
``docs/design.md`` ("Context events").
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, Final

from paglets.core.context_events import ContextEventLog
from paglets.wire.limits import MAX_ERROR_MESSAGE

__all__ = [
    "FILE_UNSTAGE_FAILED",
    "MESSAGE_FORWARD_FAILED",
    "TASK_FAILED",
    "BackgroundTasks",
    "report_failure",
]

_log = logging.getLogger("paglets.runtime")

#: A background task ended with an exception.
TASK_FAILED: Final = "task-failed"
#: A message waiting for a paglet that moved could not be forwarded, and nobody waited for its answer.
MESSAGE_FORWARD_FAILED: Final = "message-forward-failed"
#: A registered file staged on a target for a move that did not happen could not be deleted there.
FILE_UNSTAGE_FAILED: Final = "file-unstage-failed"


def report_failure(
    events: ContextEventLog,
    kind: str,
    what: str,
    exc: BaseException,
    *,
    agent_id: str | None = None,
    message_id: str | None = None,
    **data: Any,
) -> None:
    """Report ``exc``, which nobody else will see, as a ``kind`` context event and an error log line.

    ``what`` says in a few words what failed (it starts the log line and is the event's ``data.what``);
    the event's ``error`` is ``"<type>: <message>"`` and ``data.error_type`` the exception's type name.
    Safe from any thread (the event log is thread-safe).
    """
    text = f"{type(exc).__name__}: {exc}"[:MAX_ERROR_MESSAGE]
    _log.error("%s failed: %s", what, text, exc_info=(type(exc), exc, exc.__traceback__))
    events.emit(
        kind,
        agent_id=agent_id,
        message_id=message_id,
        error=text,
        data={"what": what, "error_type": type(exc).__name__, **data},
    )


class BackgroundTasks:
    """The fire-and-forget tasks of one owner (see the module docstring). Use it on the loop's thread."""

    def __init__(self, events: ContextEventLog) -> None:
        self._events = events
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(
        self, coro: Coroutine[Any, Any, Any], *, name: str | None = None, agent_id: str | None = None
    ) -> asyncio.Task[Any]:
        """Run ``coro`` on the running loop; a failure is reported as ``task-failed`` (with ``agent_id``
        when the task works for one paglet). ``name`` defaults to the coroutine's qualified name."""
        label = name or getattr(coro, "__qualname__", None) or type(coro).__name__
        task = asyncio.get_running_loop().create_task(coro, name=label)
        self._tasks.add(task)
        task.add_done_callback(lambda done: self._finished(done, agent_id))
        return task

    def _finished(self, task: asyncio.Task[Any], agent_id: str | None) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()  # retrieved: asyncio will not complain about it later
        if exc is not None:
            report_failure(
                self._events,
                TASK_FAILED,
                f"background task {task.get_name()}",
                exc,
                agent_id=agent_id,
                task=task.get_name(),
            )

    def cancel_all(self) -> None:
        """Cancel every task still running (the owner is stopping)."""
        for task in list(self._tasks):
            task.cancel()

    def __len__(self) -> int:
        return len(self._tasks)
