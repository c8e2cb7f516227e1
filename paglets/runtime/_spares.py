"""The portable backend: paglet processes from a pool of warm spare processes, never forked.

A spare is ``python -m paglets.runtime.child.spare`` started with ``subprocess`` (``posix_spawn``/
``CreateProcess`` semantics: a fresh interpreter), in its own session (POSIX) or process group (Windows)
so that Ctrl-C and Ctrl-Break reach the host only, which saves its paglets first. It imports the runtime
(``SPARE_MODULES`` and the host's preload modules), connects back to the host's loopback listener and
waits (protocol: ``_spare_protocol``). Creating a paglet takes a ready spare, makes its channel from the
spare's connections and a new ring file (``_portable_ipc``), and sends it the ``ChildConfig``: no
interpreter start on the way, as long as a spare is ready.

Pool size
    ``PAGLETS_SPARES`` (default ``DEFAULT_SPARES``) spares are kept ready. A creation that finds none
    ready raises the target by one, up to ``MAX_SPARES`` (a burst of creations then finds more waiting
    next time); replacements start as soon as a spare is taken. A spare costs an idle interpreter with
    the runtime imported (about 30 MB resident here), and a cold start (0.1 to 0.5 s on this machine)
    when the pool is empty. ``start`` returns at once; a creation before the first spare is ready waits
    for it (at most ``START_TIMEOUT``), as one waits for the zygote's imports on Linux, without counting
    as a burst.

Exits
    One reaper thread watches every spare's control connection: EOF means the process ended, and its
    exit code is then collected with ``Popen.wait`` (negative signal numbers on POSIX, like the
    zygote's). A spare whose host dies sees EOF on its connections and exits; one that was waiting also
    removes the host's runtime directory if the host's pid is gone.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import secrets
import selectors
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from paglets.core.errors import HostError
from paglets.runtime._backend import BackendName, PagletProcess, PendingChild
from paglets.runtime._channel import HostChannel
from paglets.runtime._channel_layout import RING_CAPACITY, Ends, IpcTimeoutError
from paglets.runtime._handoff import SegmentFactory
from paglets.runtime._portable_ipc import (
    FileSegments,
    HostDirectory,
    SocketBell,
    StreamLink,
    create_ring_file,
    sweep_stale,
    tune,
)
from paglets.runtime._procutil import TITLE_ROOM
from paglets.runtime._spare_protocol import (
    HELLO,
    ROLE_CONTROL,
    ROLE_FRAMES,
    ROLE_LINK,
    ROLE_SERVICE,
    ROLE_SPACE,
    ROLES,
    SpareBoot,
    SparePreload,
    SpareSpawn,
    encode_spare_message,
)

__all__ = ["DEFAULT_SPARES", "MAX_SPARES", "SPARES_ENV", "PortableBackend", "SpareProcess"]

_log = logging.getLogger("paglets.runtime")

#: The environment variable that sets how many spare processes a host keeps ready.
SPARES_ENV: Final = "PAGLETS_SPARES"
DEFAULT_SPARES: Final = 2
#: Most spares the pool grows to under a burst of creations.
MAX_SPARES: Final = 8
#: Seconds a creation waits for the first spare after ``start`` (as one waits for the zygote's imports).
START_TIMEOUT: Final = 30.0
#: Seconds a new connection has to say its ``HELLO``.
HELLO_TIMEOUT: Final = 2.0
#: Seconds the reaper waits for the exit code of a process whose connection closed.
EXIT_WAIT: Final = 5.0
#: Seconds ``close`` lets spares and paglet processes leave before killing them.
CLOSE_GRACE: Final = 2.0
#: Spares in a row that die before they are ready, after which the pool stops starting more.
MAX_FAILED_STARTS: Final = 5
#: The module a spare runs.
SPARE_MODULE: Final = "paglets.runtime.child.spare"


class SpareProcess:
    """A spare process, and later the paglet process it became (``PagletProcess``)."""

    def __init__(self, popen: subprocess.Popen[bytes], spare_id: int) -> None:
        self.popen = popen
        self.pid = popen.pid
        self.spare_id = spare_id
        self.title = f"spare-{spare_id}"
        self.sockets: dict[int, socket.socket] = {}
        self.ready = False
        self.taken = False
        self._returncode: int | None = None
        self._exited = threading.Event()
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[int], object]] = []

    @property
    def returncode(self) -> int | None:
        return self._returncode

    def is_alive(self) -> bool:
        return self._returncode is None

    def wait_exit(self, timeout: float) -> int | None:
        self._exited.wait(timeout)
        return self._returncode

    def add_exit_callback(self, callback: Callable[[int], object]) -> None:
        with self._lock:
            if self._returncode is None:
                self._callbacks.append(callback)
                return
            code = self._returncode
        callback(code)

    async def wait_exit_async(self) -> int:
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

    def kill(self) -> None:
        """End the process at once (SIGKILL on POSIX, TerminateProcess on Windows)."""
        if self._returncode is None:
            try:
                self.popen.kill()
            except OSError:
                pass

    def set_exit(self, returncode: int) -> None:
        with self._lock:
            if self._returncode is not None:
                return
            self._returncode = returncode
            callbacks, self._callbacks = self._callbacks, []
        self._exited.set()
        for callback in callbacks:
            try:
                callback(returncode)
            except Exception:
                _log.exception("exit callback of process %d failed", self.pid)

    def close_sockets(self) -> None:
        """Close the connections this object owns: all of them while it is a spare, only the control
        connection once a channel took the others."""
        for role, sock in self.sockets.items():
            if role == ROLE_CONTROL or not self.taken:
                sock.close()

    def __repr__(self) -> str:
        return f"SpareProcess(pid={self.pid}, title={self.title!r}, returncode={self._returncode})"


def _spares_wanted() -> int:
    raw = os.environ.get(SPARES_ENV, "").strip()
    try:
        return max(1, min(MAX_SPARES, int(raw))) if raw else DEFAULT_SPARES
    except ValueError:
        return DEFAULT_SPARES


class PortableBackend:
    """Spare processes, file rings, socket doorbells, file segments (see the module docstring)."""

    name: BackendName = "portable"

    def __init__(self, *, host_name: str) -> None:
        self.host_name = host_name
        self._dir: HostDirectory | None = None
        self.segments: SegmentFactory = _UnstartedSegments()
        self._lock = threading.Condition()
        self._spares: dict[int, SpareProcess] = {}
        self._ready: deque[SpareProcess] = deque()
        self._next_id = 0
        self._target = _spares_wanted()
        self._token = secrets.token_bytes(16)
        self._listener: socket.socket | None = None
        self._preload: list[str] = []
        self._env: dict[str, str] = {}
        self._closed = False
        self._failed_starts = 0
        self._started_total = 0
        self._cold_waits = 0
        #: A spare has been ready once: from then on, a creation finding none ready is a burst.
        self._warm = False
        # made by start(): a host that is built but never started holds no socket or selector
        self._selector: selectors.BaseSelector | None = None
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None
        self._to_watch: deque[SpareProcess] = deque()
        self._threads: list[threading.Thread] = []

    # --- start and stop --------------------------------------------------------------------------

    def start(self, *, preload: Sequence[str], env: Mapping[str, str]) -> None:
        if self._dir is not None or self._closed:
            return
        sweep_stale()
        self._dir = HostDirectory()
        self.segments = FileSegments(self._dir.tmp)
        self._preload = list(preload)
        self._env = dict(env)
        listener = socket.create_server(("127.0.0.1", 0))
        listener.settimeout(0.5)
        self._listener = listener
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        for target, name in ((self._accept_loop, "accept"), (self._reap_loop, "reaper")):
            thread = threading.Thread(target=target, name=f"paglets-spares-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)
        with self._lock:
            self._fill()  # returns at once: the first creation waits for its spare (``new_child``)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            spares = list(self._spares.values())
            self._ready.clear()
            self._lock.notify_all()
        for spare in spares:
            spare.close_sockets()  # EOF: every spare and paglet process leaves
        deadline = time.monotonic() + CLOSE_GRACE
        for spare in spares:
            try:
                spare.popen.wait(max(0.05, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                spare.kill()
                try:
                    spare.popen.wait(EXIT_WAIT)
                except subprocess.TimeoutExpired:  # pragma: no cover - an unkillable process
                    continue
            spare.set_exit(spare.popen.returncode)
        self._wake()
        for thread in self._threads:
            thread.join(EXIT_WAIT)
        if self._listener is not None:
            self._listener.close()
        for closing in (self._wake_r, self._wake_w, self._selector):
            if closing is not None:
                closing.close()
        if self._dir is not None:
            self._dir.remove()

    # --- spares ----------------------------------------------------------------------------------

    def _fill(self) -> None:
        """Start spares until ready + starting reach the target (holding the lock)."""
        if self._closed or self._failed_starts >= MAX_FAILED_STARTS or self._listener is None:
            return
        starting = sum(1 for s in self._spares.values() if not s.ready and not s.taken)
        while len(self._ready) + starting < self._target:
            self._start_one()
            starting += 1

    def _start_one(self) -> None:
        assert self._dir is not None
        assert self._listener is not None
        self._next_id += 1
        spare_id = self._next_id
        host, port = self._listener.getsockname()[:2]
        boot = SpareBoot(
            token=self._token,
            spare_id=spare_id,
            address=host,
            port=port,
            host_pid=os.getpid(),
            host_dir=str(self._dir.path),
            sys_path=list(sys.path),
            preload=list(self._preload),
        )
        argv = [sys.executable, "-m", SPARE_MODULE, "--title-room", "." * TITLE_ROOM]
        options: dict[str, Any] = {}
        if sys.platform == "win32":
            options["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP
        else:
            options["start_new_session"] = True
        popen = subprocess.Popen(argv, stdin=subprocess.PIPE, env=self._env, **options)
        spare = SpareProcess(popen, spare_id)
        self._spares[spare_id] = spare
        self._started_total += 1
        try:
            assert popen.stdin is not None
            popen.stdin.write(encode_spare_message(boot))
            popen.stdin.close()
        except OSError:
            pass  # it died at once: the reaper notices
        self._to_watch.append(spare)
        self._wake()

    def _wake(self) -> None:
        if self._wake_w is None:
            return
        try:
            self._wake_w.send(b"\x01")
        except OSError:
            pass

    def _accept_loop(self) -> None:
        listener = self._listener
        assert listener is not None
        while not self._closed:
            try:
                conn, _addr = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                self._greet(conn)
            except Exception:
                conn.close()

    def _greet(self, conn: socket.socket) -> None:
        conn.settimeout(HELLO_TIMEOUT)
        data = b""
        while len(data) < HELLO.size:
            part = conn.recv(HELLO.size - len(data))
            if not part:
                raise ConnectionError("closed before its hello")
            data += part
        token, spare_id, role = HELLO.unpack(data)
        if not hmac.compare_digest(token, self._token) or role not in ROLES:
            raise ConnectionError("bad hello")
        with self._lock:
            spare = self._spares.get(spare_id)
            if spare is None or role in spare.sockets or spare.taken or self._closed:
                raise ConnectionError("unexpected connection")
            spare.sockets[role] = conn if role == ROLE_CONTROL else tune(conn)
            if role == ROLE_CONTROL:
                conn.settimeout(None)
            if len(spare.sockets) == len(ROLES):
                spare.ready = True
                self._warm = True
                self._failed_starts = 0
                self._ready.append(spare)
                self._to_watch.append(spare)
                self._lock.notify_all()
        self._wake()

    def _reap_loop(self) -> None:
        """Watch control connections (EOF: the process ended) and processes that are not ready yet."""
        selector, wake = self._selector, self._wake_r
        assert selector is not None
        assert wake is not None
        watched: set[int] = set()
        while not self._closed:
            with self._lock:
                while self._to_watch:
                    spare = self._to_watch.popleft()
                    control = spare.sockets.get(ROLE_CONTROL)
                    if control is not None and spare.spare_id not in watched and spare.ready:
                        watched.add(spare.spare_id)
                        selector.register(control, selectors.EVENT_READ, spare)
                starting = [s for s in self._spares.values() if not s.ready]
            for spare in starting:
                if spare.popen.poll() is not None:
                    self._gone(spare, spare.popen.returncode, failed=True)
            try:
                events = selector.select(0.2)
            except OSError:
                return
            for key, _mask in events:
                if key.data is None:
                    try:
                        while wake.recv(4096):
                            pass
                    except OSError:
                        pass
                    continue
                spare = key.data
                try:
                    data = key.fileobj.recv(4096)  # type: ignore[union-attr]
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if data:
                    continue  # a spare never writes on its control connection; ignore
                selector.unregister(key.fileobj)
                watched.discard(spare.spare_id)
                try:
                    code = spare.popen.wait(EXIT_WAIT)
                except subprocess.TimeoutExpired:
                    spare.kill()
                    code = spare.popen.wait(EXIT_WAIT)
                self._gone(spare, code, failed=False)

    def _gone(self, spare: SpareProcess, code: int, *, failed: bool) -> None:
        with self._lock:
            self._spares.pop(spare.spare_id, None)
            if spare in self._ready:
                self._ready.remove(spare)
            if failed:
                self._failed_starts += 1
                _log.warning("spare process %d exited with %d before it was ready", spare.pid, code)
            self._fill()
            self._lock.notify_all()
        spare.close_sockets()
        spare.set_exit(code)

    def _take(self) -> SpareProcess | None:
        with self._lock:
            if self._closed:
                raise HostError("the host's process backend is closed")
            spare = self._ready.popleft() if self._ready else None
            if spare is None and self._warm and self._target < MAX_SPARES:
                self._target += 1  # a burst: keep more ready from now on
                self._cold_waits += 1
            if spare is not None:
                spare.taken = True
            self._fill()
            return spare

    def _take_waiting(self, timeout: float) -> SpareProcess:
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                if self._closed:
                    raise HostError("the host's process backend is closed")
                if self._ready:
                    spare = self._ready.popleft()
                    spare.taken = True
                    self._fill()
                    return spare
                if self._failed_starts >= MAX_FAILED_STARTS:
                    raise HostError(
                        f"spare processes keep failing to start ({MAX_FAILED_STARTS} in a row); "
                        "see the host's stderr"
                    )
                self._fill()
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise IpcTimeoutError(f"no spare process ready within {timeout} s")
                self._lock.wait(remaining)

    # --- the backend interface -------------------------------------------------------------------

    async def new_child(self, timeout: float) -> PendingChild:
        if self._dir is None:
            raise HostError("the host's process backend is not started")
        spare = self._take()
        if spare is None:
            if not self._warm:  # the first spares are still importing the runtime
                timeout = max(timeout, START_TIMEOUT)
            loop = asyncio.get_running_loop()
            spare = await loop.run_in_executor(None, self._take_waiting, timeout)
        try:
            return self._channel_for(spare)
        except BaseException:
            spare.kill()
            raise

    def _channel_for(self, spare: SpareProcess) -> PendingChild:
        assert self._dir is not None
        directory = self._dir.new_channel_dir()
        try:
            mapping, second = create_ring_file(directory, RING_CAPACITY)
            ends = Ends(mapping, 0, second)
        except BaseException:
            shutil.rmtree(directory, ignore_errors=True)
            raise
        sockets = spare.sockets
        frames = SocketBell(sockets[ROLE_FRAMES])
        channel = HostChannel(
            ends,
            frames,
            frames,
            SocketBell(sockets[ROLE_SPACE]),
            StreamLink(sockets[ROLE_LINK], directory, send_prefix="h", recv_prefix="c"),
            FileSegments(directory),
            on_release=lambda: shutil.rmtree(directory, ignore_errors=True),
        )
        return PendingChild(channel, SocketBell(sockets[ROLE_SERVICE]), (spare, directory))

    def launch(self, pending: PendingChild, config: bytes, *, title: str, timeout: float) -> PagletProcess:
        spare, directory = pending.private
        assert isinstance(spare, SpareProcess)
        control = spare.sockets[ROLE_CONTROL]
        message = encode_spare_message(
            SpareSpawn(config=config, title=title, channel_dir=str(directory), sys_path=list(sys.path))
        )
        try:
            control.settimeout(timeout)
            control.sendall(message)
        except TimeoutError as exc:
            raise IpcTimeoutError(
                f"spare process {spare.pid} did not take its spawn within {timeout} s"
            ) from exc
        except OSError as exc:
            raise HostError(f"spare process {spare.pid} is gone: {exc}") from exc
        spare.title = title
        return spare

    def abandon(self, pending: PendingChild) -> None:
        spare, _directory = pending.private
        pending.channel.close()
        pending.service_bell.close()
        spare.kill()  # it may have half its configuration: never reuse it

    def preload(self, modules: Sequence[str]) -> None:
        names = [m for m in modules if m and m not in self._preload]
        if not names:
            return
        message = encode_spare_message(SparePreload(modules=names))
        with self._lock:
            self._preload.extend(names)
            ready = list(self._ready)
        for spare in ready:
            try:
                spare.sockets[ROLE_CONTROL].sendall(message)
            except OSError:
                pass  # a spare that went away is noticed by the reaper

    def statistics(self) -> dict[str, Any]:
        with self._lock:
            return {
                "backend": self.name,
                "spares_ready": len(self._ready),
                "spares_target": self._target,
                "processes": len(self._spares),
                "started_total": self._started_total,
                "cold_waits": self._cold_waits,
                "runtime_dir": str(self._dir.path) if self._dir is not None else None,
            }

    @property
    def process_parent(self) -> int | None:
        return os.getpid() if self._dir is not None else None

    @property
    def runtime_dir(self) -> Path | None:
        return self._dir.path if self._dir is not None else None


class _UnstartedSegments:
    """Segment factory of a backend that is not started yet: there is no directory to put them in."""

    def _fail(self) -> Any:
        raise HostError("the host's process backend is not started")

    def from_payload(self, payload: Any) -> Any:
        return self._fail()

    def allocate(self, size: int) -> Any:
        return self._fail()

    def growable(self) -> Any:
        return self._fail()
