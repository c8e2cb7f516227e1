"""The zygote: a pre-imported template process that forks paglet children in milliseconds.

``Zygote.start`` launches ``python -m paglets.runtime.child.zygote`` with one end of a
``SOCK_SEQPACKET`` control socket. The zygote imports the runtime modules that exist
(``RUNTIME_MODULES``) and the caller's ``preload`` modules, calls ``gc.freeze()`` and answers requests
on the control socket from a single-threaded loop. ``Zygote.spawn`` sends a ``Spawn`` request with the
child's fds attached (``SCM_RIGHTS``); the zygote forks (or, in spawn mode, starts a fresh interpreter
that receives the same request), replies ``Spawned(pid)``, reaps its children and reports every exit as
``Exited(pid, returncode)`` (negative signal numbers for signal deaths, like ``subprocess``).

Nobody is orphaned
    The zygote sets ``PR_SET_PDEATHSIG=SIGKILL`` and also exits (killing its children) on EOF of the
    control socket, which the kernel produces however the host dies. Children set
    ``PR_SET_PDEATHSIG=SIGKILL`` against the zygote. Caveat of the kernel feature: the death signal
    fires when the *thread* that forked the process exits, so call ``Zygote.start`` from a thread that
    lives as long as the zygote (the main thread or the host's event-loop thread), never from a worker
    pool thread.

Child bootstrap (``paglets.runtime.child.zygote``)
    After the fork the child closes the zygote's sockets and every fd it was not given, resets signal
    handlers (SIGINT ignored, others default), sets its death signal, sets its process title (15-byte
    ``comm`` plus the full command line, see ``_procutil``), imports ``entry`` (``"module:function"``)
    and calls ``function(fds, config)``. Its return value (``None`` = 0) is the exit code; an exception
    prints its traceback to stderr and exits 1. The child leaves with ``os._exit`` so no zygote
    ``atexit`` handler or buffered state runs twice. The frozen heap stays frozen in children: the
    garbage collector then never writes to those pages, so they stay shared with the zygote
    (cycles among pre-imported objects are never collected, which is what a template wants).

Threads
    One daemon thread per zygote reads the control socket: it completes ``spawn`` calls and runs exit
    callbacks (``ChildProcess.add_exit_callback``). Everything else is thread-safe and every wait has a
    timeout.

Control messages are tagged msgspec Structs (``ZygoteMessage``); a message is at most
``MAX_CONTROL_MESSAGE`` bytes and carries at most ``MAX_SPAWN_FDS`` fds.
"""

from __future__ import annotations

import itertools
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeoutError
from typing import Final, Literal

import msgspec

from paglets.core.errors import FrameError, HostError, LimitExceededError
from paglets.runtime._channel_layout import IpcTimeoutError
from paglets.runtime._preload import RUNTIME_MODULES
from paglets.runtime._procutil import TITLE_ROOM
from paglets.wire.limits import KiB

# Linux only (fork, pidfds, fd passing, prctl): the Linux backend imports this module, no other
# (mypy checks what follows for Linux only).
assert sys.platform == "linux", "the zygote needs Linux; other systems use the portable backend"

__all__ = [
    "MAX_SPAWN_CONFIG",
    "MAX_SPAWN_FDS",
    "RUNTIME_MODULES",
    "ChildProcess",
    "Zygote",
    "ZygoteError",
    "ZygoteStatistics",
]

Mode = Literal["fork", "spawn"]

_log = logging.getLogger(__name__)

#: Largest ``config`` a spawn request carries. Configs are small (ids, class names, a handoff
#: reference); states travel through handoff segments.
MAX_SPAWN_CONFIG: Final = 64 * KiB
#: Largest control message (a spawn request: config, entry, title, sys.path).
MAX_CONTROL_MESSAGE: Final = MAX_SPAWN_CONFIG + 32 * KiB
#: Most fds one spawn passes (Linux accepts 253 per message; a channel needs 5).
MAX_SPAWN_FDS: Final = 32
#: Longest entry point string and process title.
MAX_ENTRY: Final = 512
#: Seconds ``Zygote.start`` waits for the zygote to import everything and say it is ready.
START_TIMEOUT: Final = 30.0
#: Seconds ``spawn`` waits for the zygote's reply (a fork takes a few milliseconds; spawn mode
#: starts an interpreter).
SPAWN_TIMEOUT: Final = 10.0
#: Seconds ``close`` lets children react to SIGTERM before SIGKILL, and waits for the zygote in total.
CLOSE_GRACE: Final = 1.0
CLOSE_TIMEOUT: Final = 10.0


class ZygoteError(HostError):
    """The zygote could not start, spawn, or went away."""


# --- control protocol ----------------------------------------------------------------------------------


class Boot(msgspec.Struct, frozen=True, tag="boot"):
    """First message to a new zygote: what to import, and the host's ``sys.path`` (put first, so the
    children import the same modules as the host)."""

    sys_path: list[str]
    preload: list[str]


class Ready(msgspec.Struct, frozen=True, tag="ready"):
    pid: int
    mode: str
    preloaded: list[str]
    failed: dict[str, str]


class Spawn(msgspec.Struct, frozen=True, tag="spawn"):
    request_id: int
    entry: str
    config: bytes
    title: str
    fd_count: int
    #: Spawn mode only: the zygote's ``sys.path``, so the fresh interpreter imports the same modules.
    sys_path: list[str] = []


class Spawned(msgspec.Struct, frozen=True, tag="spawned"):
    request_id: int
    pid: int


class SpawnFailed(msgspec.Struct, frozen=True, tag="spawn_failed"):
    request_id: int
    error: str


class Exited(msgspec.Struct, frozen=True, tag="exited"):
    pid: int
    returncode: int


class Shutdown(msgspec.Struct, frozen=True, tag="shutdown"):
    grace: float


class Preload(msgspec.Struct, frozen=True, tag="preload"):
    """Import more modules into the template (no answer): later children share them, already imported."""

    modules: list[str]


ZygoteMessage = Boot | Ready | Spawn | Spawned | SpawnFailed | Exited | Shutdown | Preload

ENCODER: Final = msgspec.msgpack.Encoder()
DECODER: Final[msgspec.msgpack.Decoder[ZygoteMessage]] = msgspec.msgpack.Decoder(ZygoteMessage)


def decode_message(data: bytes) -> ZygoteMessage:
    try:
        return DECODER.decode(data)
    except msgspec.DecodeError as exc:
        raise FrameError(f"bad zygote control message: {exc}") from exc


# --- host side -----------------------------------------------------------------------------------------


class ZygoteStatistics(msgspec.Struct, frozen=True):
    pid: int
    mode: str
    children_alive: int
    spawned_total: int
    exited_total: int
    spawn_failures: int
    closed: bool


class ChildProcess:
    """A child forked by the zygote. Exit codes come from the zygote (it is the parent)."""

    def __init__(self, pid: int, title: str) -> None:
        self.pid = pid
        self.title = title
        self._returncode: int | None = None
        self._exited = threading.Event()
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[int], object]] = []
        try:
            self._pidfd: int = os.pidfd_open(pid)
        except (ProcessLookupError, AttributeError):
            self._pidfd = -1

    @property
    def returncode(self) -> int | None:
        """None while running; then the exit code, or ``-signal`` for a signal death."""
        return self._returncode

    def is_alive(self) -> bool:
        return self._returncode is None

    def wait_exit(self, timeout: float) -> int | None:
        """The return code, waiting up to ``timeout`` seconds; None if still running."""
        self._exited.wait(timeout)
        return self._returncode

    def add_exit_callback(self, callback: Callable[[int], object]) -> None:
        """Call ``callback(returncode)`` once the child exited: at once if it already has, otherwise
        on the zygote reader thread (use ``loop.call_soon_threadsafe`` to get back to a loop)."""
        with self._lock:
            if self._returncode is None:
                self._callbacks.append(callback)
                return
            code = self._returncode
        callback(code)

    async def wait_exit_async(self) -> int:
        """Await the exit code from an asyncio loop (no timeout: wrap in ``asyncio.wait_for``)."""
        import asyncio  # here, not at the top: the zygote process imports this module for the protocol

        loop = asyncio.get_running_loop()
        future: asyncio.Future[int] = loop.create_future()

        def settle(code: int) -> None:
            if not future.done():
                future.set_result(code)

        def deliver(code: int) -> None:
            if not loop.is_closed():
                loop.call_soon_threadsafe(settle, code)

        self.add_exit_callback(deliver)
        return await future

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` unless the child is already gone (race-free through a pidfd)."""
        with self._lock:
            if self._returncode is not None:
                return
            try:
                if self._pidfd >= 0:
                    signal.pidfd_send_signal(self._pidfd, sig)
                else:  # pragma: no cover - kernels without pidfd
                    os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    def _set_exit(self, returncode: int) -> None:
        with self._lock:
            if self._returncode is not None:
                return
            self._returncode = returncode
            callbacks, self._callbacks = self._callbacks, []
            if self._pidfd >= 0:
                os.close(self._pidfd)
                self._pidfd = -1
        self._exited.set()
        for callback in callbacks:
            try:
                callback(returncode)
            except Exception:  # a callback must not kill the zygote reader thread
                _log.exception("exit callback of child %d failed", self.pid)

    def __repr__(self) -> str:
        return f"ChildProcess(pid={self.pid}, title={self.title!r}, returncode={self._returncode})"


def default_mode() -> Mode:
    return "fork" if hasattr(os, "fork") else "spawn"


class Zygote:
    """Host-side handle of the template process. Use ``Zygote.start``."""

    def __init__(self, process: subprocess.Popen[bytes], sock: socket.socket, ready: Ready) -> None:
        self._process = process
        self._sock = sock
        self.mode: str = ready.mode
        #: Modules the zygote imported, and the ones that failed (name -> error text).
        self.preloaded: tuple[str, ...] = tuple(ready.preloaded)
        self.failed: dict[str, str] = dict(ready.failed)
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._requests = itertools.count(1)
        self._pending: dict[int, tuple[Future[ChildProcess], str]] = {}
        self._children: dict[int, ChildProcess] = {}
        self._spawned = 0
        self._exited = 0
        self._failures = 0
        self._closed = False
        self._lost = False
        self._reader = threading.Thread(
            target=self._read_loop, name=f"paglets-zygote-{process.pid}", daemon=True
        )
        self._reader.start()

    @property
    def pid(self) -> int:
        return self._process.pid

    @classmethod
    def start(
        cls,
        *,
        preload: Sequence[str] = (),
        mode: Mode | None = None,
        timeout: float = START_TIMEOUT,
        env: Mapping[str, str] | None = None,
        python: str | None = None,
        sys_path: Sequence[str] | None = None,
    ) -> Zygote:
        """Launch a zygote and wait until it is ready. See the module docstring for the thread caveat.

        ``sys_path`` (default: this process's ``sys.path``) goes first in the zygote's ``sys.path``,
        followed by what its own interpreter found (e.g. from ``PYTHONPATH`` in ``env``).
        """
        chosen: Mode = mode or default_mode()
        boot = ENCODER.encode(
            Boot(sys_path=list(sys.path if sys_path is None else sys_path), preload=list(preload))
        )
        if len(boot) > MAX_CONTROL_MESSAGE:
            raise LimitExceededError("preload list and sys.path are too long", fault="local")
        parent_sock, child_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        argv = [
            python or sys.executable,
            "-m",
            "paglets.runtime.child.zygote",
            "--control-fd",
            str(child_sock.fileno()),
            "--host-pid",
            str(os.getpid()),
            "--mode",
            chosen,
            "--title-room",
            "." * TITLE_ROOM,
        ]
        try:
            process = subprocess.Popen(
                argv,
                pass_fds=[child_sock.fileno()],
                stdin=subprocess.DEVNULL,
                env=dict(env) if env is not None else None,
                # its own session: Ctrl-C in a terminal or a signal to the host's process group reaches
                # the host only, which saves its paglets before their processes end
                start_new_session=True,
            )
        except BaseException:
            parent_sock.close()
            child_sock.close()
            raise
        child_sock.close()
        try:
            parent_sock.settimeout(timeout)
            try:
                parent_sock.send(boot)
                data = parent_sock.recv(MAX_CONTROL_MESSAGE)
            except TimeoutError as exc:
                raise IpcTimeoutError(f"zygote not ready after {timeout}s") from exc
            except OSError:
                data = b""  # it died before reading its boot message
            if not data:
                raise ZygoteError(f"zygote exited during start (code {process.wait(timeout)})")
            ready = decode_message(data)
            if not isinstance(ready, Ready):
                raise ZygoteError(f"zygote sent {type(ready).__name__} instead of ready")
            parent_sock.settimeout(None)
        except BaseException:
            parent_sock.close()
            process.kill()
            process.wait(timeout)
            raise
        return cls(process, parent_sock, ready)

    # --- spawning -----------------------------------------------------------------------------------

    def spawn(
        self,
        entry: str,
        config: bytes,
        fds: Sequence[int],
        *,
        title: str,
        timeout: float = SPAWN_TIMEOUT,
    ) -> ChildProcess:
        """Start a child running ``entry(fds, config)`` (``entry`` is ``"module:function"``).

        The child gets its own copies of ``fds`` (the caller keeps and closes its own). Raises
        ``LimitExceededError`` for oversized requests, ``ZygoteError`` if the zygote cannot fork or is
        gone, ``IpcTimeoutError`` after ``timeout`` seconds (the child, if it appears later, is
        killed).
        """
        if ":" not in entry or len(entry) > MAX_ENTRY:
            raise ValueError(f"entry must be 'module:function' (at most {MAX_ENTRY} chars), got {entry!r}")
        if len(config) > MAX_SPAWN_CONFIG:
            raise LimitExceededError(
                f"spawn config of {len(config)} bytes exceeds {MAX_SPAWN_CONFIG}", fault="local"
            )
        if len(fds) > MAX_SPAWN_FDS:
            raise LimitExceededError(f"{len(fds)} fds exceed {MAX_SPAWN_FDS} per spawn", fault="local")
        title = title[:MAX_ENTRY]
        future: Future[ChildProcess] = Future()
        with self._lock:
            if self._closed or self._lost:
                raise ZygoteError("zygote is closed")
            request_id = next(self._requests)
            self._pending[request_id] = (future, title)
        message = ENCODER.encode(
            Spawn(
                request_id=request_id,
                entry=entry,
                config=bytes(config),
                title=title,
                fd_count=len(fds),
            )
        )
        try:
            with self._send_lock:
                socket.send_fds(self._sock, [message], list(fds))
        except OSError as exc:
            with self._lock:
                self._pending.pop(request_id, None)
            raise ZygoteError(f"zygote unreachable: {exc}") from exc
        try:
            return future.result(timeout)
        except FutureTimeoutError as exc:
            with self._lock:
                self._pending.pop(request_id, None)
            raise IpcTimeoutError(f"zygote did not answer a spawn within {timeout}s") from exc

    def preload(self, modules: Sequence[str]) -> None:
        """Ask the zygote to import ``modules`` (names the host already imported); fire and forget.

        Failures are ignored by the zygote: a child imports what it needs anyway.
        """
        names = [m for m in modules if m and "," not in m and len(m) <= MAX_ENTRY]
        if not names:
            return
        message = ENCODER.encode(Preload(modules=names[:MAX_SPAWN_FDS]))
        try:
            with self._send_lock:
                self._sock.send(message)
        except OSError:
            pass  # a lost zygote is reported by the reader thread

    def children(self) -> list[ChildProcess]:
        """Children not reported as exited yet."""
        with self._lock:
            return list(self._children.values())

    # --- reader thread ------------------------------------------------------------------------------

    def _read_loop(self) -> None:
        sock = self._sock
        while True:
            try:
                data = sock.recv(MAX_CONTROL_MESSAGE)
            except OSError:
                data = b""
            if not data:
                self._on_lost()
                return
            try:
                message = decode_message(data)
            except Exception:  # a broken zygote: treat as lost
                self._on_lost()
                return
            self._handle(message)

    def _handle(self, message: ZygoteMessage) -> None:
        match message:
            case Spawned(request_id=request_id, pid=pid):
                with self._lock:
                    waiter = self._pending.pop(request_id, None)
                    if waiter is not None:
                        child = ChildProcess(pid, waiter[1])
                        self._children[pid] = child
                        self._spawned += 1
                if waiter is None:  # the caller gave up: do not leave an unowned child running
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                else:
                    waiter[0].set_result(child)
            case SpawnFailed(request_id=request_id, error=error):
                with self._lock:
                    waiter = self._pending.pop(request_id, None)
                    self._failures += 1
                if waiter is not None:
                    waiter[0].set_exception(ZygoteError(f"spawn failed: {error}"))
            case Exited(pid=pid, returncode=returncode):
                with self._lock:
                    exited = self._children.pop(pid, None)
                    self._exited += exited is not None
                if exited is not None:
                    exited._set_exit(returncode)
            case _:
                pass

    def _on_lost(self) -> None:
        with self._lock:
            self._lost = True
            pending = list(self._pending.values())
            self._pending.clear()
            children = list(self._children.values())
            self._children.clear()
            self._exited += len(children)
        for future, _title in pending:
            future.set_exception(ZygoteError("zygote exited"))
        for child in children:  # PR_SET_PDEATHSIG kills them with the zygote
            child._set_exit(-signal.SIGKILL)

    # --- closing ------------------------------------------------------------------------------------

    def close(self, timeout: float = CLOSE_TIMEOUT, grace: float = CLOSE_GRACE) -> None:
        """Stop every child (SIGTERM, SIGKILL after ``grace``), stop the zygote and reap it. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        try:
            with self._send_lock:
                self._sock.send(ENCODER.encode(Shutdown(grace=grace)))
        except OSError:
            pass
        try:
            self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            self._process.kill()  # children die with it (PR_SET_PDEATHSIG)
            self._process.wait(timeout)
        self._reader.join(timeout)
        if self._reader.is_alive():  # pragma: no cover - the zygote is gone, so EOF is pending
            self._sock.shutdown(socket.SHUT_RDWR)
            self._reader.join(timeout)
        self._sock.close()

    def __enter__(self) -> Zygote:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def statistics(self) -> ZygoteStatistics:
        with self._lock:
            return ZygoteStatistics(
                pid=self.pid,
                mode=self.mode,
                children_alive=len(self._children),
                spawned_total=self._spawned,
                exited_total=self._exited,
                spawn_failures=self._failures,
                closed=self._closed or self._lost,
            )
