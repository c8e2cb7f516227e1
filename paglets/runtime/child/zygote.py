"""The zygote process main (``python -m paglets.runtime.child.zygote``) and the child bootstrap.

Two ways in:

``--control-fd N --host-pid P --mode fork|spawn``
    The template process. It reads a ``Boot`` message first (``sys.path`` and the modules to
    preload), then serves ``Spawn`` requests one at a time from a single-threaded ``selectors`` loop
    that also wakes on SIGCHLD (``signal.set_wakeup_fd``) to reap children and report their exits. See
    ``paglets.runtime._zygote`` for the protocol and the guarantees.

``--child BOOT_FD --parent-pid P``
    Spawn mode: a fresh interpreter started by the zygote reads its ``Spawn`` request (and fds) from
    ``BOOT_FD`` and then runs the same bootstrap as a forked child.

Nothing here returns to the caller in a child: every child path ends in ``os._exit``.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import os
import selectors
import signal
import socket
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from typing import Final, NoReturn

import msgspec

from paglets.runtime._preload import preload_modules
from paglets.runtime._procutil import (
    TITLE_ROOM,
    close_fds_except,
    set_parent_death_signal,
    set_process_title,
)

# Linux only (fork, pidfds, fd passing, prctl): the Linux backend imports this module, no other
# (mypy checks what follows for Linux only).
assert sys.platform == "linux", "the zygote needs Linux; other systems use the portable backend"

from paglets.runtime._zygote import (  # noqa: E402  # after the platform check
    DECODER,
    ENCODER,
    MAX_CONTROL_MESSAGE,
    MAX_SPAWN_FDS,
    RUNTIME_MODULES,
    START_TIMEOUT,
    Boot,
    Exited,
    Preload,
    Ready,
    Shutdown,
    Spawn,
    Spawned,
    SpawnFailed,
    ZygoteMessage,
)

#: Seconds the zygote waits for SIGKILLed children to be reaped before it exits anyway.
_REAP_TIMEOUT: Final = 5.0
#: Exit code of a child whose entry raised.
_EXIT_ERROR: Final = 1


# --- child side --------------------------------------------------------------------------------------


def _resolve(entry: str) -> Callable[[list[int], bytes], object]:
    module_name, _, function_name = entry.partition(":")
    module = importlib.import_module(module_name)
    function = getattr(module, function_name)
    if not callable(function):
        raise TypeError(f"entry {entry!r} is not callable")
    return function  # type: ignore[no-any-return]  # user entry point


def _exit_code(value: object) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        print(value, file=sys.stderr)
        return _EXIT_ERROR
    return value & 0xFF


def run_child(request: Spawn, fds: list[int], parent_pid: int) -> NoReturn:
    """Everything a child does after it exists; never returns."""
    code = _EXIT_ERROR
    try:
        set_parent_death_signal(signal.SIGKILL)
        if os.getppid() != parent_pid:  # the zygote died before the death signal was armed
            os._exit(_EXIT_ERROR)
        close_fds_except(fds)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        set_process_title(request.title)
        sys.argv = [request.title]
        try:
            code = _exit_code(_resolve(request.entry)(fds, request.config))
        except SystemExit as exc:
            code = _exit_code(exc.code)
        except BaseException:
            traceback.print_exc()
            code = _EXIT_ERROR
    except BaseException:  # bootstrap failure
        try:
            traceback.print_exc()
        except BaseException:
            pass
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except BaseException:
                pass
        os._exit(code)


def _boot_child(boot_fd: int, parent_pid: int) -> NoReturn:
    """Spawn mode: read the request from the boot socket, then bootstrap like a forked child."""
    try:
        boot = socket.socket(fileno=boot_fd)
        data, fds, _flags, _addr = socket.recv_fds(boot, MAX_CONTROL_MESSAGE, MAX_SPAWN_FDS)
        boot.close()
        request = DECODER.decode(data)
        if not isinstance(request, Spawn) or len(fds) != request.fd_count:
            raise RuntimeError("bad boot request")
        sys.path[:] = request.sys_path
    except BaseException:
        traceback.print_exc()
        os._exit(_EXIT_ERROR)
    run_child(request, fds, parent_pid)


# --- zygote ------------------------------------------------------------------------------------------


_preload = preload_modules


class _Zygote:
    """The serving loop. Single-threaded; owns every fd it opens (closed again in each child)."""

    def __init__(self, control: socket.socket, mode: str) -> None:
        self.control = control
        self.mode = mode
        self.children: set[int] = set()
        self.wake_read, self.wake_write = socket.socketpair()
        self.wake_read.setblocking(False)
        self.wake_write.setblocking(False)
        self.selector = selectors.DefaultSelector()
        self.selector.register(control, selectors.EVENT_READ, "control")
        self.selector.register(self.wake_read, selectors.EVENT_READ, "wake")
        signal.signal(signal.SIGCHLD, lambda _signum, _frame: None)
        signal.set_wakeup_fd(self.wake_write.fileno(), warn_on_full_buffer=False)
        #: A child forked ahead of time that waits for its spawn request (fork mode): a spawn then costs
        #: a message instead of a fork. (pid, the zygote's end of its socket)
        self.spare: tuple[int, socket.socket] | None = None

    def close_in_child(self) -> None:
        if self.spare is not None:
            self.spare[1].close()
            self.spare = None
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        self.selector.close()
        self.control.close()
        self.wake_read.close()
        self.wake_write.close()

    def send(self, message: ZygoteMessage) -> None:
        try:
            self.control.send(ENCODER.encode(message))
        except OSError:
            pass  # host gone: the next read sees EOF

    def serve(self) -> None:
        while True:
            for key, _events in self.selector.select():
                if key.data == "wake":
                    self._drain_wake()
                    self.reap()
                    continue
                try:
                    data, fds, _flags, _addr = socket.recv_fds(
                        self.control, MAX_CONTROL_MESSAGE, MAX_SPAWN_FDS, socket.MSG_CMSG_CLOEXEC
                    )
                except InterruptedError:  # pragma: no cover - PEP 475 retries
                    continue
                except ConnectionResetError:  # the host died with data unread: it is gone
                    data, fds = b"", []
                if not data:  # the host is gone
                    self.shutdown(0.0)
                    return
                try:
                    message = DECODER.decode(data)
                except Exception:
                    for fd in fds:
                        os.close(fd)
                    continue
                if isinstance(message, Spawn):
                    self.spawn(message, fds)
                elif isinstance(message, Preload):
                    for fd in fds:
                        os.close(fd)
                    _preload(message.modules)
                    gc.freeze()
                    self.drop_spare()  # forked before these imports: replace it
                    self.make_spare()
                elif isinstance(message, Shutdown):
                    self.shutdown(max(0.0, message.grace))
                    return
                else:
                    for fd in fds:
                        os.close(fd)

    def _drain_wake(self) -> None:
        try:
            while self.wake_read.recv(4096):
                pass
        except BlockingIOError:
            pass

    def reap(self) -> None:
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                self.children.clear()
                return
            if pid == 0:
                return
            if pid in self.children:
                self.children.discard(pid)
                self.send(Exited(pid=pid, returncode=os.waitstatus_to_exitcode(status)))

    def make_spare(self) -> None:
        """Fork the next spare child (fork mode): it waits on its socket for a spawn request."""
        if self.mode != "fork" or self.spare is not None:
            return
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        zygote_pid = os.getpid()
        pid = os.fork()
        if pid == 0:
            try:
                parent.close()
                self.close_in_child()
                data, fds, _flags, _addr = socket.recv_fds(child, MAX_CONTROL_MESSAGE, MAX_SPAWN_FDS)
                child.close()
                request = DECODER.decode(data) if data else None
            except BaseException:
                os._exit(_EXIT_ERROR)
            if not isinstance(request, Spawn):  # the zygote closed it: no work for this spare
                os._exit(0)
            run_child(request, fds, zygote_pid)
        child.close()
        self.children.add(pid)
        self.spare = (pid, parent)

    def drop_spare(self) -> None:
        """Let the spare go (it exits when its socket closes); a fresh one is forked when needed."""
        if self.spare is not None:
            self.spare[1].close()
            self.spare = None

    def _use_spare(self, request: Spawn, fds: list[int]) -> int | None:
        spare, self.spare = self.spare, None
        if spare is None:
            return None
        pid, sock = spare
        try:
            socket.send_fds(sock, [ENCODER.encode(request)], fds)
        except OSError:  # the spare died: fork as usual
            return None
        finally:
            sock.close()
        return pid

    def spawn(self, request: Spawn, fds: list[int]) -> None:
        try:
            if len(fds) != request.fd_count:
                raise ValueError(f"expected {request.fd_count} fds, received {len(fds)}")
            pid = self._use_spare(request, fds) if self.mode == "fork" else None
            if pid is None:
                pid = self._fork(request, fds) if self.mode == "fork" else self._spawn(request, fds)
        except Exception as exc:
            self.send(SpawnFailed(request_id=request.request_id, error=f"{type(exc).__name__}: {exc}"))
            return
        finally:
            for fd in fds:
                os.close(fd)
        self.children.add(pid)
        self.send(Spawned(request_id=request.request_id, pid=pid))
        self.make_spare()  # after the answer: the next spawn finds a child waiting

    def _fork(self, request: Spawn, fds: list[int]) -> int:
        zygote_pid = os.getpid()
        pid = os.fork()
        if pid == 0:
            try:
                self.close_in_child()
            except BaseException:
                os._exit(_EXIT_ERROR)
            run_child(request, fds, zygote_pid)
        return pid

    def _spawn(self, request: Spawn, fds: list[int]) -> int:
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            boot = msgspec.structs.replace(request, sys_path=list(sys.path))
            socket.send_fds(parent, [ENCODER.encode(boot)], fds)
            os.set_inheritable(child.fileno(), True)
            argv = [
                sys.executable,
                "-m",
                "paglets.runtime.child.zygote",
                "--child",
                str(child.fileno()),
                "--parent-pid",
                str(os.getpid()),
                "--title-room",
                "." * TITLE_ROOM,
            ]
            return os.posix_spawn(sys.executable, argv, os.environ)
        finally:
            parent.close()
            child.close()

    def shutdown(self, grace: float) -> None:
        """Stop children (SIGTERM, then SIGKILL after ``grace``), report their exits."""
        self.drop_spare()
        self.selector.unregister(self.control)  # from now on only SIGCHLD wakeups matter
        signum = signal.SIGTERM if grace > 0 else signal.SIGKILL
        for pid in self.children:
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace
        self.reap()
        while self.children and time.monotonic() < deadline:
            self.selector.select(deadline - time.monotonic())
            self._drain_wake()
            self.reap()
        for pid in self.children:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + _REAP_TIMEOUT
        while self.children and time.monotonic() < deadline:
            self.selector.select(min(0.05, deadline - time.monotonic()))
            self._drain_wake()
            self.reap()


def serve_zygote(control_fd: int, host_pid: int, mode: str) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the host's business
    set_parent_death_signal(signal.SIGKILL)
    if os.getppid() != host_pid:
        return _EXIT_ERROR
    set_process_title(f"paglets-zygote host={host_pid}")
    control = socket.socket(fileno=control_fd)
    control.settimeout(START_TIMEOUT)
    try:
        boot = DECODER.decode(control.recv(MAX_CONTROL_MESSAGE))
    except (OSError, msgspec.DecodeError):  # host gone or not speaking our protocol
        return _EXIT_ERROR
    if not isinstance(boot, Boot):
        return _EXIT_ERROR
    control.settimeout(None)
    sys.path[:] = [*boot.sys_path, *(entry for entry in sys.path if entry not in boot.sys_path)]
    loaded, failed = _preload([*RUNTIME_MODULES, *boot.preload])
    zygote = _Zygote(control, mode)
    gc.collect()
    gc.freeze()
    zygote.send(Ready(pid=os.getpid(), mode=mode, preloaded=loaded, failed=failed))
    zygote.make_spare()
    zygote.serve()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="paglets.runtime.child.zygote", add_help=False)
    parser.add_argument("--control-fd", type=int)
    parser.add_argument("--host-pid", type=int)
    parser.add_argument("--mode", choices=("fork", "spawn"), default="fork")
    parser.add_argument("--child", type=int)
    parser.add_argument("--parent-pid", type=int)
    parser.add_argument("--title-room", default="")
    args = parser.parse_args(argv)
    if args.child is not None:
        _boot_child(args.child, args.parent_pid)
    if args.control_fd is None or args.host_pid is None:
        parser.error("--control-fd and --host-pid are required")
    return serve_zygote(args.control_fd, args.host_pid, args.mode)


if __name__ == "__main__":
    sys.exit(main())
