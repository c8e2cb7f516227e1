"""``AsyncPagletProxy``: a ``PagletProxy`` for asyncio code (docs/guide/asyncio.md).

Every method is a coroutine that runs the blocking call of the proxy it wraps in a bounded pool of
threads (``AIO_WORKERS``) and awaits the result from the caller's event loop, whichever loop that is (an
application's own, or a host's: a host's blocking calls cross into its loop from the worker thread, so
the caller's loop is never blocked). The wrapped proxy follows its paglet (``PagletProxy``), so this one
does too.

Cancellation: cancelling an awaiting call stops the wait at once. A call that no worker has started yet
is withdrawn and never reaches the host; one already sent runs to its end on the host (as after a
``SendTimeoutError``: a message the host accepted is handled), its result is dropped. ``timeout=`` keeps
the meaning of the blocking API (the host's deadline, ``SendTimeoutError``); ``asyncio.timeout()`` around
a call cancels it as above. A loop that is closed while calls are in flight loses nothing but their
results: the workers finish and drop them.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, TypeVar

from paglets.core.messages import Message
from paglets.remote.proxy import PagletProxy

if TYPE_CHECKING:
    from paglets.persistence.persistency import DeactivationPolicy
    from paglets.remote.transfer import TransferTicket

__all__ = ["AIO_WORKERS", "AsyncPagletProxy", "run_blocking"]

T = TypeVar("T")

#: Threads that run the blocking calls of asyncio callers (all proxies and hosts of a process share
#: them). A call beyond them waits for a free thread without blocking its loop.
AIO_WORKERS: Final = 64

_pool_lock = threading.Lock()
_pool: concurrent.futures.ThreadPoolExecutor | None = None


def _workers() -> concurrent.futures.ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = concurrent.futures.ThreadPoolExecutor(AIO_WORKERS, thread_name_prefix="paglets-aio")
        return _pool


def _hand_over(
    loop: asyncio.AbstractEventLoop, waiter: asyncio.Future[T], done: concurrent.futures.Future[T]
) -> None:
    """Complete ``waiter`` on its loop with ``done``'s outcome (a worker thread calls this)."""

    def settle() -> None:
        if waiter.done():
            return
        error = done.exception()
        if error is not None:
            waiter.set_exception(error)
        else:
            waiter.set_result(done.result())

    if done.cancelled() or loop.is_closed():
        return
    try:
        loop.call_soon_threadsafe(settle)
    except RuntimeError:  # the loop closed meanwhile: nobody waits for the result
        pass


async def run_blocking(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """Run the blocking ``fn(*args, **kwargs)`` in the shared worker threads and await its result (see the
    module docstring for cancellation)."""
    loop = asyncio.get_running_loop()
    waiter: asyncio.Future[T] = loop.create_future()
    work = _workers().submit(fn, *args, **kwargs)
    work.add_done_callback(lambda done: _hand_over(loop, waiter, done))
    try:
        return await waiter
    except asyncio.CancelledError:
        work.cancel()  # withdrawn if no worker took it yet; otherwise it finishes and is dropped
        raise


class AsyncPagletProxy:
    """See the module docstring. ``proxy``: the blocking proxy to wrap (``host.get_proxy``, a move's
    answer, ``PagletProxy(url, agent_id)``)."""

    __slots__ = ("proxy",)

    def __init__(self, proxy: PagletProxy) -> None:
        self.proxy = proxy

    def __repr__(self) -> str:
        return f"AsyncPagletProxy({self.proxy.host_url!r}, {self.proxy.agent_id!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AsyncPagletProxy) and other.proxy == self.proxy

    def __hash__(self) -> int:
        return hash(self.proxy)

    @property
    def agent_id(self) -> str:
        return self.proxy.agent_id

    @property
    def host_url(self) -> str:
        return self.proxy.host_url

    def where(self) -> tuple[str, str]:
        """Where the paglet was last reached (``PagletProxy.where``)."""
        return self.proxy.where()

    def _wrap(self, proxy: PagletProxy) -> AsyncPagletProxy:
        return AsyncPagletProxy(proxy)

    # --- messages -------------------------------------------------------------------------------

    async def send(
        self,
        message: Message | str,
        args: dict[str, Any] | None = None,
        *,
        activate_if_inactive: bool = True,
        no_delay: bool = False,
        timeout: float | None = None,
    ) -> Any:
        """Deliver ``message`` (a ``Message``, or a kind and its ``args``) and await the handler's reply."""
        msg = message if isinstance(message, Message) else Message(message, args or {})
        return await run_blocking(
            self.proxy.send,
            msg,
            activate_if_inactive=activate_if_inactive,
            no_delay=no_delay,
            timeout=timeout,
        )

    def send_future(
        self,
        message: Message | str,
        args: dict[str, Any] | None = None,
        *,
        activate_if_inactive: bool = True,
        no_delay: bool = False,
        timeout: float | None = None,
    ) -> asyncio.Task[Any]:
        """Start a send now and return a task for its reply (await it later, or cancel it)."""
        return asyncio.ensure_future(
            self.send(
                message, args, activate_if_inactive=activate_if_inactive, no_delay=no_delay, timeout=timeout
            )
        )

    async def send_oneway(
        self,
        message: Message | str,
        args: dict[str, Any] | None = None,
        *,
        activate_if_inactive: bool = True,
        no_delay: bool = False,
        timeout: float | None = None,
    ) -> None:
        """Queue ``message``; returns once the host accepted it."""
        msg = message if isinstance(message, Message) else Message(message, args or {})
        await run_blocking(
            self.proxy.send_oneway,
            msg,
            activate_if_inactive=activate_if_inactive,
            no_delay=no_delay,
            timeout=timeout,
        )

    # --- control -------------------------------------------------------------------------------------

    async def dispatch(self, target: str | TransferTicket) -> AsyncPagletProxy:
        return self._wrap(await run_blocking(self.proxy.dispatch, target))

    async def clone(self, target: str | TransferTicket | None = None) -> AsyncPagletProxy:
        return self._wrap(await run_blocking(self.proxy.clone, target))

    async def deactivate(
        self,
        *,
        reason: str = "deactivate",
        policy: DeactivationPolicy | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> AsyncPagletProxy:
        proxy = await run_blocking(self.proxy.deactivate, reason=reason, policy=policy, metadata=metadata)
        return self._wrap(proxy)

    async def activate(self) -> AsyncPagletProxy:
        return self._wrap(await run_blocking(self.proxy.activate))

    async def dispose(self) -> None:
        await run_blocking(self.proxy.dispose)

    # --- introspection -------------------------------------------------------------------------------

    async def info(self) -> dict[str, Any]:
        return await run_blocking(self.proxy.info)

    async def state(self) -> dict[str, Any]:
        """A fresh snapshot of the paglet's state as its JSON wire dict."""
        return await run_blocking(self.proxy.state)

    async def is_valid(self) -> bool:
        return await run_blocking(self.proxy.is_valid)

    async def is_active(self) -> bool:
        return await run_blocking(self.proxy.is_active)
