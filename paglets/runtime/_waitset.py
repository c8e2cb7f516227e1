"""Waiting on a few descriptors with a timeout, on every OS: ``poll`` where it exists, ``select`` on Windows.

The child side of a channel waits on its doorbell, its segment link and (portable backend) its own wake
socket; on Linux those are eventfds and a unix socket, on other systems sockets only, which ``select``
takes on Windows too. A ``WaitSet`` is built once per waiting thread (``poll`` objects must not be shared
by threads waiting at the same time) and reused.
"""

from __future__ import annotations

import select
import sys
from collections.abc import Iterable

__all__ = ["WaitSet"]

if sys.platform == "win32":

    class WaitSet:
        """Descriptors to wait on for reading (and some for writing)."""

        __slots__ = ("_read", "_write")

        def __init__(self, read: Iterable[int] = (), write: Iterable[int] = ()) -> None:
            self._read = list(read)
            self._write = list(write)

        def wait(self, timeout: float) -> list[int]:
            """The descriptors that are ready, waiting at most ``timeout`` seconds (``[]`` on timeout)."""
            readable, writable, _ = select.select(self._read, self._write, [], max(0.0, timeout))
            return [*readable, *writable]

else:

    class WaitSet:
        """Descriptors to wait on for reading (and some for writing)."""

        __slots__ = ("_poll",)

        def __init__(self, read: Iterable[int] = (), write: Iterable[int] = ()) -> None:
            self._poll = select.poll()
            for fd in read:
                self._poll.register(fd, select.POLLIN)
            for fd in write:
                self._poll.register(fd, select.POLLOUT)

        def wait(self, timeout: float) -> list[int]:
            """The descriptors that are ready, waiting at most ``timeout`` seconds (``[]`` on timeout)."""
            return [fd for fd, _events in self._poll.poll(max(0.0, timeout) * 1000)]
