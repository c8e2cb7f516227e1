"""The process and IPC backend of a host: how paglet processes start and how a host talks to them.

A host picks one backend when it is built (``Host(process_backend=...)``, else ``PAGLETS_BACKEND``, else
the platform's default) and keeps it. Everything the rest of the runtime needs from it is
``ProcessBackend`` below; the channel it makes is always a ``HostChannel`` (the same rings, rules and
frames) whose doorbells, segment link and segment factory differ.

``linux`` (``LinuxBackend``, the default on Linux)
    A zygote forks paglet processes (``_zygote``); a channel is a memfd holding two rings, eventfd
    doorbells and a unix socket passing sealed memfd handoff segments (``_channel``, ``_handoff``).
``portable`` (``paglets.runtime._spares.PortableBackend``, the default elsewhere; ``PAGLETS_BACKEND=
portable`` forces it on Linux)
    Warm, pre-imported spare processes started with ``subprocess`` (never forked) connect back to the
    host over loopback TCP; a channel is a file-backed mmap of the same two rings, socket doorbells and
    file handoff segments (``_portable_ipc``). See ``docs/platforms.md``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, Literal, Protocol

from paglets.core.errors import HostError
from paglets.runtime._channel import Channel, HostChannel
from paglets.runtime._channel_layout import Bell, ChildFds, EventBell, new_eventfd
from paglets.runtime._handoff import MEMFD_SEGMENTS, SegmentFactory

if sys.platform == "linux":  # with the host's modules, not by the first Host() (~1.5 ms of its start)
    from paglets.runtime import _zygote_thread

__all__ = [
    "BACKEND_ENV",
    "BACKEND_NAMES",
    "LinuxBackend",
    "PagletProcess",
    "PendingChild",
    "ProcessBackend",
    "choose_backend",
    "default_backend_name",
    "make_backend",
]

#: The environment variable that picks a host's backend when ``Host(process_backend=...)`` does not.
BACKEND_ENV: Final = "PAGLETS_BACKEND"
BackendName = Literal["linux", "portable"]
BACKEND_NAMES: Final[tuple[BackendName, ...]] = ("linux", "portable")

#: The paglet process entry of the Linux backend (``paglets.runtime.child.main.child_main``).
LINUX_CHILD_ENTRY: Final = "paglets.runtime.child.main:child_main"


class PagletProcess(Protocol):
    """A paglet process as the host sees it (``_zygote.ChildProcess``, ``_spares.SpareProcess``)."""

    pid: int
    title: str

    @property
    def returncode(self) -> int | None: ...
    def is_alive(self) -> bool: ...
    def wait_exit(self, timeout: float) -> int | None: ...
    def add_exit_callback(self, callback: Callable[[int], object]) -> None: ...
    async def wait_exit_async(self) -> int: ...
    def kill(self) -> None: ...


class PendingChild:
    """A channel made for a process that is not started yet; ``launch`` or ``abandon`` it."""

    __slots__ = ("channel", "private", "service_bell")

    def __init__(self, channel: HostChannel, service_bell: Bell, private: Any) -> None:
        self.channel = channel
        #: Rung by the host for urgent requests (the child's service thread waits on it).
        self.service_bell = service_bell
        #: What the backend needs to start the process (the child's fds, the spare it took).
        self.private = private


class ProcessBackend(Protocol):
    """What a host needs to run paglet processes. One instance per host, used on its loop thread except
    where a method says it blocks (those run in an executor)."""

    name: BackendName
    #: Makes handoff segments before a channel exists (an arriving move's state).
    segments: SegmentFactory

    def start(self, *, preload: Sequence[str], env: Mapping[str, str]) -> None:
        """Launch the process machinery in the background, once (call on the host's loop thread; returns
        at once: the zygote or the first spares get ready meanwhile, and ``new_child`` waits for them)."""
        ...

    async def new_child(self, timeout: float) -> PendingChild:
        """A channel for the next paglet process (waits for the machinery to be ready, then at most
        ``timeout`` for a spare process)."""
        ...

    def launch(self, pending: PendingChild, config: bytes, *, title: str, timeout: float) -> PagletProcess:
        """Start the paglet process on ``pending`` with its encoded ``ChildConfig`` (blocks: executor)."""
        ...

    def abandon(self, pending: PendingChild) -> None:
        """Free a pending child that will not be launched (its channel, its bell, its spare)."""
        ...

    def preload(self, modules: Sequence[str]) -> None:
        """Import ``modules`` into later paglet processes ahead of time (best effort)."""
        ...

    def close(self) -> None:
        """Stop the machinery and every process it still has (blocks: executor)."""
        ...

    def statistics(self) -> dict[str, Any]:
        """Counters for ``/health`` and tests."""
        ...

    @property
    def process_parent(self) -> int | None:
        """The pid whose children the paglet processes are (the zygote; the host itself with spares)."""
        ...


class LinuxBackend:
    """Fork from the zygote; memfd rings, eventfd doorbells, memfd handoff segments. The zygote is launched
    on a thread of its own (``_zygote_thread``); the first paglet process waits for it to be ready."""

    name: BackendName = "linux"
    segments: SegmentFactory = MEMFD_SEGMENTS

    def __init__(self, *, host_name: str = "") -> None:
        self.host_name = host_name
        self._starter: Any = None
        self._starter_class: Any = None
        if sys.platform == "linux":
            self._starter_class = _zygote_thread.ZygoteThread
        else:
            raise HostError("the linux process backend needs Linux; use 'portable'")

    def start(self, *, preload: Sequence[str], env: Mapping[str, str]) -> None:
        if self._starter is None:
            self._starter = self._starter_class(name=self.host_name, preload=preload, env=env)

    @property
    def _zygote(self) -> Any:
        """The zygote once it is ready, else ``None`` (never waits)."""
        return self._starter.ready if self._starter is not None else None

    async def new_child(self, timeout: float) -> PendingChild:
        starter = self._starter
        if starter is None:
            raise HostError("the host's process backend is not started")
        await starter.get()  # bounded by the zygote's start timeout; HostError if it failed
        channel, child_fds = Channel.create()
        try:
            bell = EventBell(new_eventfd())
        except BaseException:
            child_fds.close()
            channel.close()
            raise
        return PendingChild(channel, bell, child_fds)

    def launch(self, pending: PendingChild, config: bytes, *, title: str, timeout: float) -> PagletProcess:
        zygote = self._zygote
        if zygote is None:
            raise HostError("the host's process backend is not started")
        child_fds: ChildFds = pending.private
        assert isinstance(pending.service_bell, EventBell)
        process: PagletProcess = zygote.spawn(
            LINUX_CHILD_ENTRY,
            config,
            (*child_fds.fds, pending.service_bell.fd),
            title=title,
            timeout=timeout,
        )
        child_fds.close()  # the child has its copies; the host must not hold the child's socket end
        return process

    def abandon(self, pending: PendingChild) -> None:
        child_fds: ChildFds = pending.private
        child_fds.close()
        pending.channel.close()
        pending.service_bell.close()

    def preload(self, modules: Sequence[str]) -> None:
        zygote = self._zygote
        if zygote is not None:
            zygote.preload(modules)

    def close(self) -> None:
        starter, self._starter = self._starter, None
        if starter is not None:
            starter.close()

    @property
    def process_parent(self) -> int | None:
        zygote = self._zygote
        return zygote.pid if zygote is not None else None

    def statistics(self) -> dict[str, Any]:
        zygote = self._zygote
        stats: dict[str, Any] = {"backend": self.name}
        if zygote is not None:
            stats["zygote_pid"] = zygote.pid
            stats["children"] = len(zygote.children())
        return stats


def default_backend_name() -> BackendName:
    """``linux`` where memfds, eventfds and fork exist (Linux), ``portable`` everywhere else."""
    if sys.platform == "linux" and all(hasattr(os, name) for name in ("memfd_create", "eventfd", "fork")):
        return "linux"
    return "portable"


def choose_backend(requested: str | None = None) -> BackendName:
    """The backend a host uses: ``requested``, else ``PAGLETS_BACKEND``, else the platform default.
    ``HostError`` for an unknown name or ``linux`` where it cannot run."""
    name = requested or os.environ.get(BACKEND_ENV, "").strip().lower() or default_backend_name()
    if name not in BACKEND_NAMES:
        raise HostError(f"unknown process backend {name!r}; choose one of {', '.join(BACKEND_NAMES)}")
    if name == "linux" and default_backend_name() != "linux":
        raise HostError("the linux process backend needs Linux (memfd, eventfd, fork); use 'portable'")
    return "linux" if name == "linux" else "portable"


def make_backend(name: BackendName, *, host_name: str) -> ProcessBackend:
    """A new, unstarted backend of that name for the host ``host_name``."""
    if name == "linux":
        return LinuxBackend(host_name=host_name)
    from paglets.runtime._spares import PortableBackend

    return PortableBackend(host_name=host_name)
