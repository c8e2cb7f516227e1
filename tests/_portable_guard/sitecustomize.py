"""Makes Linux-only primitives fail loudly in every process of a portable-backend test run.

``tests/conftest.py`` puts this directory on ``PYTHONPATH`` and imports this module when
``PAGLETS_FORBID_LINUX=1``; every process started from the test run (hosts, spare processes, paglet
processes, helper scripts) then imports it at startup through ``site``. In such a process:

- ``os.fork``/``os.forkpty`` raise (an audit hook on the ``os.fork`` and ``os.forkpty`` events);
- opening anything under ``/proc`` from code in the ``paglets`` package raises (audit hook on ``open``;
  psutil and the test helpers may still read it: they are the fallbacks a portable host may use);
- ``os.memfd_create``, ``os.eventfd``/``eventfd_read``/``eventfd_write``, ``os.pidfd_open``,
  ``signal.pidfd_send_signal`` and ``socket.send_fds``/``recv_fds`` are replaced by functions that raise.

Each violation is also appended to the file named by ``PAGLETS_FORBID_LOG`` (if set), so that a test run
fails even when the code under test swallowed the exception.
"""

from __future__ import annotations

import os
import signal
import socket
import sys

_ENV = "PAGLETS_FORBID_LINUX"
_LOG = "PAGLETS_FORBID_LOG"
_PACKAGE = os.sep + "paglets" + os.sep
_SELF = os.path.abspath(__file__)


class LinuxOnlyError(RuntimeError):
    """A Linux-only primitive was used in a portable-backend run."""


def _report(what: str) -> LinuxOnlyError:
    message = f"Linux-only primitive used under PAGLETS_FORBID_LINUX: {what} (pid {os.getpid()})"
    path = os.environ.get(_LOG)
    if path:
        try:
            with open(path, "a", encoding="utf-8") as log:
                log.write(message + "\n")
        except OSError:
            pass
    return LinuxOnlyError(message)


def _opened_by_paglets() -> bool:
    frame = sys._getframe(2)
    while frame is not None:
        filename = frame.f_code.co_filename
        if filename != _SELF and not filename.startswith("<"):
            return _PACKAGE in filename and (os.sep + "tests" + os.sep) not in filename
        frame = frame.f_back  # type: ignore[assignment]
    return False


def _hook(event: str, args: tuple[object, ...]) -> None:
    if event in ("os.fork", "os.forkpty"):
        raise _report(event)
    if event == "open" and args:
        path = args[0]
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        if isinstance(path, str) and (path == "/proc" or path.startswith("/proc/")) and _opened_by_paglets():
            raise _report(f"open({path!r}) from paglets code")


def _forbidden(name: str) -> object:
    def refuse(*_args: object, **_kwargs: object) -> object:
        raise _report(name)

    refuse.__name__ = name.rpartition(".")[2]
    return refuse


def install() -> None:
    if getattr(sys, "_paglets_guard_installed", False):
        return
    sys._paglets_guard_installed = True  # type: ignore[attr-defined]
    sys.addaudithook(_hook)
    for module, names in (
        (os, ("memfd_create", "eventfd", "eventfd_read", "eventfd_write", "pidfd_open")),
        (signal, ("pidfd_send_signal",)),
        (socket, ("send_fds", "recv_fds")),
    ):
        for name in names:
            if hasattr(module, name):
                setattr(module, name, _forbidden(f"{module.__name__}.{name}"))


if os.environ.get(_ENV) == "1":
    install()
