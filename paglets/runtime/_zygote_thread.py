"""Start the host's zygote in the background, so that the host serves before its template process is ready.

The zygote imports the runtime (and the ``--preload`` modules) before it can fork anything: hundreds of
milliseconds on a busy machine, most of a host's start. A host needs it only for requests that run a
paglet process, so :class:`ZygoteThread` launches it on a thread of its own while the host goes on to
bind its socket; whatever needs a child awaits :meth:`ZygoteThread.get`.

The thread stays alive, idle, for as long as the zygote lives: the kernel's parent-death signal the
zygote arms fires when the *thread* that forked it ends (``paglets.runtime._zygote``), so the launching
thread must outlive it. :meth:`ZygoteThread.close` closes the zygote and then lets the thread end.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import sys
import threading
from collections.abc import Mapping, Sequence
from typing import Final

from paglets.core.errors import HostError

assert sys.platform == "linux", "the zygote needs Linux; other systems use the portable backend"

from paglets.runtime._zygote import START_TIMEOUT, Zygote  # noqa: E402  # after the platform check

__all__ = ["ZygoteThread"]

#: Seconds :meth:`ZygoteThread.close` waits for the launching thread to end after the zygote closed.
JOIN_TIMEOUT: Final = 5.0


class ZygoteThread:
    """One zygote, launched on a dedicated thread at construction."""

    def __init__(self, *, name: str, preload: Sequence[str], env: Mapping[str, str]) -> None:
        self._future: concurrent.futures.Future[Zygote] = concurrent.futures.Future()
        self._release = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(tuple(preload), dict(env)), name=f"paglets-zygote-{name}", daemon=True
        )
        self._thread.start()

    def _run(self, preload: tuple[str, ...], env: dict[str, str]) -> None:
        self._future.set_running_or_notify_cancel()  # from now on nobody can cancel it
        try:
            zygote = Zygote.start(preload=preload, env=env)
        except BaseException as exc:
            self._future.set_exception(exc)
            return
        self._future.set_result(zygote)
        self._release.wait()  # the zygote's death signal is tied to this thread: outlive it

    @property
    def ready(self) -> Zygote | None:
        """The zygote once it is ready, else ``None`` (never waits)."""
        future = self._future
        if future.done() and future.exception() is None:
            return future.result()
        return None

    async def get(self) -> Zygote:
        """The zygote, once it is ready (``Zygote.start`` bounds the wait); ``HostError`` if it failed."""
        try:
            return await asyncio.shield(asyncio.wrap_future(self._future))
        except HostError:
            raise
        except Exception as exc:
            raise HostError(f"the template process for paglet processes did not start: {exc}") from exc

    def close(self) -> None:
        """Close the zygote (waiting for its start to end first) and end the thread; blocking, idempotent."""
        try:
            zygote = self._future.result(START_TIMEOUT + JOIN_TIMEOUT)
        except BaseException:
            zygote = None
        if zygote is not None:
            zygote.close()
        self._release.set()
        self._thread.join(JOIN_TIMEOUT)
