"""How long a host waits for its paglets: the dispose grace period and the send deadline.

A paglet's handlers run in its own process and may never return. Nothing on the host waits for one for
ever: ``dispose`` ends a paglet that does not finish its handler and ``on_disposing`` within the dispose
grace period, and a synchronous send fails with ``SendTimeoutError`` when its reply does not come within
its deadline (the caller's ``timeout=``, else the host's ``send_timeout``). Both are ``Host(...)``
options; ``docs/design.md`` ("Defaults against hostile input") gives the reasons for the defaults.
"""

from __future__ import annotations

import concurrent.futures
from typing import Any, Final

from paglets.core.errors import SendTimeoutError

__all__ = ["DEFAULT_SEND_TIMEOUT", "DISPOSE_GRACE", "RUN_SETTLE_WAIT", "send_timeout_error", "wait_reply"]

#: Seconds ``dispose`` waits for a paglet to finish the handler it is in and to run ``on_disposing`` and
#: its resource cleanup before its process is ended without them (``Host(dispose_grace=...)``). Those
#: hooks take milliseconds; 5 s also covers a hook that flushes a file or says goodbye over the network,
#: while a paglet whose handler never returns cannot keep a dispose (and its callers) waiting for long.
DISPOSE_GRACE: Final = 5.0

#: Seconds a synchronous send waits for the handler's reply when the caller gives no deadline
#: (``Host(send_timeout=...)``; ``None``: no default deadline). A minute covers handlers that do real work
#: while a caller stuck behind a handler that never returns learns it within a minute; handlers that
#: legitimately run longer get a longer deadline per call (``timeout=``) or per host.
DEFAULT_SEND_TIMEOUT: Final = 60.0

#: Seconds the answer to a move waits for the arrived paglet's ``run()`` to return or the paglet to move
#: on (where it settled is what a dispatch returns).
RUN_SETTLE_WAIT: Final = 30.0

#: Seconds a oneway send waits to be queued (it returns then; the handler's outcome is not waited for).
_QUEUED_WAIT: Final = 300.0


def send_timeout_error(agent_id: str, kind: str, timeout: float) -> SendTimeoutError:
    """The error of a synchronous send to ``agent_id`` that got no reply within ``timeout`` seconds."""
    return SendTimeoutError(
        f"paglet {agent_id} did not answer message {kind!r} within {timeout:g} s (its handler may still be "
        "running; a send may wait longer with timeout=..., every send with Host(send_timeout=...))"
    )


def wait_reply(
    future: concurrent.futures.Future[Any], agent_id: str, kind: str, *, oneway: bool, deadline: float | None
) -> Any:
    """Wait in the caller's thread for a send's outcome: a synchronous send's reply at most ``deadline``
    seconds (``None``: no limit), then ``SendTimeoutError``; a oneway send until it is queued. The message
    is not withdrawn when the deadline passes: a handler that started goes on, as it would for a caller
    that gave up."""
    if oneway:
        return future.result(_QUEUED_WAIT)
    try:
        return future.result(deadline)
    except SendTimeoutError:
        raise
    except TimeoutError:
        raise send_timeout_error(agent_id, kind, deadline or 0.0) from None
