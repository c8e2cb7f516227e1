"""What the example coordinators share: job status values, a deadline and disposal when nobody collects.

A coordinator paglet runs on the host the command talked to; the command polls it and disposes it once
it printed the result. When the command goes away first (Ctrl-C, a closed terminal, a lost
connection), :func:`dispose_later` makes sure the coordinator and the paglets it started do not stay
forever: it disposes the paglet ``seconds`` after it was armed (re-arming moves the moment).
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any, Final

__all__ = [
    "CANCELLED",
    "DONE",
    "FAILED",
    "FINISHED",
    "LINGER_SECONDS",
    "NEW",
    "RUNNING",
    "dispose_later",
    "host_cpu_count",
]

NEW: Final = "new"
RUNNING: Final = "running"
DONE: Final = "done"
FAILED: Final = "failed"
CANCELLED: Final = "cancelled"
#: Statuses after which nothing changes any more.
FINISHED: Final = frozenset({DONE, FAILED, CANCELLED})

#: Seconds a finished coordinator waits for its command to collect the result before disposing itself.
LINGER_SECONDS: Final = 600.0

_timers: dict[str, threading.Timer] = {}
_timers_lock = threading.Lock()


def dispose_later(paglet: Any, seconds: float, cleanup: Any = None) -> None:
    """Dispose ``paglet`` (this process's paglet) in ``seconds``; ``cleanup()`` runs first, if given."""

    def fire() -> None:
        try:
            if cleanup is not None:
                cleanup()
        finally:
            try:
                paglet.context.host.dispose(paglet.agent_id)
            except Exception:
                pass

    timer = threading.Timer(max(0.0, seconds), fire)
    timer.daemon = True
    timer.name = f"paglets-dispose-{paglet.agent_id[:8]}"
    with _timers_lock:
        old = _timers.pop(paglet.agent_id, None)
        if old is not None:
            old.cancel()
        _timers[paglet.agent_id] = timer
    timer.start()


def watch_children(paglet: Any, *, finished: Any, interval: float = 0.5) -> None:
    """Watch a fan-out parent's pending children until ``finished()`` says the job ended.

    At the deadline every pending host becomes an error; a host whose child is gone (the host went
    offline, does not answer, or no longer has the paglet, or it crashed) becomes an error at once.
    ``paglet`` is a :class:`~paglets.patterns.MeshFanoutMixin` paglet.
    """
    from paglets.core.errors import InvalidAgentError
    from paglets.remote.proxy import PagletProxy

    client = paglet.context.host.client

    def gone(host: str, wire: dict[str, str]) -> str:
        if not paglet.context.is_host_online(host):
            return "the host went offline"
        if not wire:
            return ""
        try:
            info = PagletProxy(wire["host_url"], wire["agent_id"], client).info()
        except InvalidAgentError:
            return "its paglet there is gone"
        except Exception as exc:
            return f"the host does not answer ({exc})"
        return "its paglet there crashed" if info.get("crashed") else ""

    while not finished():
        paglet.fanout_expire_pending("no result before the deadline")
        if finished():
            return
        with paglet.locked_state() as state:
            pending = {h: dict(state.child_proxies.get(h, {})) for h in state.pending_hosts}
        for host, wire in pending.items():
            problem = gone(host, wire)
            if problem:
                with paglet.locked_state() as state:  # it may have reported while we looked
                    if host in state.pending_hosts:
                        paglet.fanout_record_error(host, problem)
        if finished():
            return
        time.sleep(interval)  # the pace of the liveness checks


def host_cpu_count() -> int:
    """CPUs this process may run on (its affinity), at least 1."""
    import os

    if sys.platform == "linux":
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except OSError:
            pass
    return max(1, os.cpu_count() or 1)
