"""The host's event loop, run in a background thread for the embedded ``Host``.

Every host-side operation (HTTP routes, child channels, mailboxes, movement) runs on one asyncio loop
(uvloop when installed). An embedded ``Host`` starts that loop in a daemon thread; its synchronous
methods cross into the loop with :meth:`LoopThread.run`, which waits with a timeout and never forever.

A call made *from* the loop thread itself cannot block on the loop; :meth:`LoopThread.run` detects it
and raises instead of deadlocking.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from paglets.core.errors import HostError
from paglets.http.server import new_event_loop

__all__ = ["LoopThread"]

T = TypeVar("T")

#: How long starting or stopping the loop thread may take before the host reports an error.
LOOP_START_TIMEOUT = 10.0


class LoopThread:
    """An asyncio loop running in its own daemon thread."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._stopped = threading.Event()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise HostError("the host's event loop is not running")
        return self._loop

    @property
    def running(self) -> bool:
        return self._loop is not None and not self._stopped.is_set()

    def in_loop_thread(self) -> bool:
        return self._thread is not None and threading.current_thread() is self._thread

    def start(self) -> asyncio.AbstractEventLoop:
        if self._thread is not None:
            return self.loop
        self._thread = threading.Thread(target=self._main, name=f"paglets-loop-{self._name}", daemon=True)
        self._thread.start()
        if not self._started.wait(LOOP_START_TIMEOUT):  # pragma: no cover - defensive
            raise HostError("the host's event loop did not start")
        return self.loop

    def _main(self) -> None:
        loop = new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        self._started.set()
        try:
            loop.run_forever()
        finally:
            try:
                pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
                for task in pending:
                    task.cancel()
                if pending:
                    loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()
                self._stopped.set()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None) -> T:
        """Run ``coro`` on the loop and wait for its result (``timeout`` seconds; ``None`` = no limit).

        Raises ``HostError`` when called from the loop thread (it would deadlock) or on timeout.
        """
        if self.in_loop_thread():
            coro.close()
            raise HostError("a blocking host call was made from the host's event loop thread")
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise HostError(f"host operation did not finish within {timeout} s") from None

    def call_soon(self, fn: Callable[..., object], *args: object) -> None:
        """Schedule ``fn(*args)`` on the loop from any thread."""
        self.loop.call_soon_threadsafe(fn, *args)

    def stop(self, timeout: float = LOOP_START_TIMEOUT) -> None:
        if self._thread is None or self._loop is None:
            return
        if not self._stopped.is_set():
            self._loop.call_soon_threadsafe(self._loop.stop)
        if not self.in_loop_thread():
            self._thread.join(timeout)
