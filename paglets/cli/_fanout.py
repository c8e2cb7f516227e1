"""Asking many hosts at once: parallel calls under one deadline, and a progress indicator.

:func:`gather` runs ``call(name, url)`` for every target in daemon threads (at most
:data:`MAX_PARALLEL` at once) and waits until all answered or the deadline passed. Hosts that failed or
did not answer by then are returned in ``errors`` with a short reason; the command never waits longer
than its deadline, and threads still blocked on a dead host do not keep the process alive.

When a wait lasts longer than :data:`PROGRESS_DELAY` seconds and stderr is a terminal, a spinner on
stderr says how many hosts are still outstanding.
"""

from __future__ import annotations

import queue
import sys
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, Final, TypeVar

__all__ = ["MAX_PARALLEL", "PROGRESS_DELAY", "Progress", "describe_error", "gather"]

#: Calls in flight at once (each is one HTTP request to one host).
MAX_PARALLEL: Final = 32
#: Seconds before a progress indicator appears.
PROGRESS_DELAY: Final = 1.0

T = TypeVar("T")


def describe_error(exc: BaseException) -> str:
    """A short, one-line reason for a failed call to a host."""
    text = (str(exc) or type(exc).__name__).strip().splitlines()[0]
    lowered = text.lower()
    if "refused" in lowered:
        return "not answering (connection refused)"
    if "reset" in lowered or ("closed" in lowered and "connection" in lowered):
        return "not answering (connection closed)"
    if "timed out" in lowered or "timeout" in lowered:
        return "not answering (timed out)"
    return text[:300]


class Progress:
    """A spinner on stderr that appears only when the work takes longer than :data:`PROGRESS_DELAY`."""

    def __init__(self, label: str, *, delay: float = PROGRESS_DELAY) -> None:
        self._label = label
        self._delay = delay
        self._status: Any = None
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()
        self._closed = False

    def __enter__(self) -> Progress:
        if sys.stderr.isatty():
            self._timer = threading.Timer(self._delay, self._show)
            self._timer.daemon = True
            self._timer.start()
        return self

    def _show(self) -> None:
        from rich.console import Console

        with self._lock:
            if self._closed:
                return
            self._status = Console(stderr=True).status(self._label, spinner="dots")
            self._status.start()

    def update(self, label: str) -> None:
        with self._lock:
            self._label = label
            if self._status is not None:
                self._status.update(label)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        with self._lock:
            self._closed = True
            if self._timer is not None:
                self._timer.cancel()
            if self._status is not None:
                self._status.stop()


def gather(
    targets: list[tuple[str, str]],
    call: Callable[[str, str], T],
    *,
    timeout: float,
    label: str = "asking",
) -> tuple[dict[str, T], dict[str, str]]:
    """``({name: result}, {name: error})`` for ``call(name, url)`` on every ``(name, url)`` target."""
    results: dict[str, T] = {}
    errors: dict[str, str] = {}
    if not targets:
        return results, errors
    done: queue.SimpleQueue[tuple[str, bool, Any]] = queue.SimpleQueue()
    work: queue.SimpleQueue[tuple[str, str]] = queue.SimpleQueue()
    for target in targets:
        work.put(target)

    def worker() -> None:
        while True:
            try:
                name, url = work.get_nowait()
            except queue.Empty:
                return
            try:
                done.put((name, True, call(name, url)))
            except BaseException as exc:
                done.put((name, False, exc))

    for _ in range(min(MAX_PARALLEL, len(targets))):
        threading.Thread(target=worker, name="paglets-cli-call", daemon=True).start()
    deadline = time.monotonic() + timeout
    pending = {name for name, _ in targets}
    with Progress(f"{label}: waiting for {len(pending)} of {len(targets)} hosts") as progress:
        while pending:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                name, ok, value = done.get(timeout=left)
            except queue.Empty:
                break
            pending.discard(name)
            if ok:
                results[name] = value
            else:
                errors[name] = describe_error(value)
            progress.update(f"{label}: waiting for {len(pending)} of {len(targets)} hosts")
    for name in pending:
        errors[name] = f"not answering (no answer within {timeout:g} s)"
    return results, errors
