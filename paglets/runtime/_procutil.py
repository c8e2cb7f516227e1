"""Linux process helpers for the zygote and its children: prctl, process titles, fd and environment
hygiene.

Everything here degrades gracefully: on a system without ``prctl`` (or without ``/proc``) the setters
return False instead of raising, and the caller documents what is missing.

Process titles
    ``prctl(PR_SET_NAME)`` sets the 15-byte ``comm`` (``top``, ``ps -o comm``, ``/proc/<pid>/comm``).
    For the full command line (``ps aux``, ``/proc/<pid>/cmdline``) we overwrite the process's original
    argv strings in place: ``/proc/self/stat`` gives their exact address range (``arg_start``,
    ``arg_end``), write the title and a NUL there, and fill the rest with spaces, never writing outside
    that range. Because the area no longer ends in NUL, the kernel shows only the title (up to the first
    NUL) as the command line.
    CPython copied argv into ``sys.argv``/``sys.orig_argv`` at startup and never reads the C strings
    again, so this is safe. The title is truncated to the space the original argv occupied, which is
    why the zygote is started with a padding argument (``TITLE_ROOM``).
"""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Final

from paglets.http.errormap import API_KEY_ENV

__all__ = [
    "SECRET_ENV_NAMES",
    "TITLE_ROOM",
    "close_fds_except",
    "scrubbed_environment",
    "set_comm",
    "set_parent_death_signal",
    "set_process_title",
]

#: Bytes of argv reserved for process titles (``paglet:<host>:<Class>:<agent id>`` fits easily).
TITLE_ROOM: Final = 200

_PR_SET_PDEATHSIG: Final = 1
_PR_SET_NAME: Final = 15
_COMM_MAX: Final = 15
#: fd bound for ``close_fds_except`` when ``sysconf`` cannot tell.
_FALLBACK_MAX_FD: Final = 1 << 20


if sys.platform == "linux":

    def _libc() -> ctypes.CDLL | None:
        try:
            return ctypes.CDLL(None, use_errno=True)
        except OSError:  # pragma: no cover - no dynamic libc
            return None

else:  # prctl and glibc's argv pointer are Linux features

    def _libc() -> ctypes.CDLL | None:
        return None


_LIBC: Final = _libc()


def _prctl(option: int, arg: int | bytes) -> bool:
    if _LIBC is None:  # pragma: no cover
        return False
    prctl = _LIBC.prctl
    argument: ctypes.c_ulong | ctypes.c_char_p = (
        ctypes.c_char_p(arg) if isinstance(arg, bytes) else ctypes.c_ulong(arg)
    )
    return int(prctl(option, argument, ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0))) == 0


def set_parent_death_signal(sig: int = 9) -> bool:
    """Ask the kernel to send ``sig`` to this process when the thread that created it exits.

    Returns False if unsupported. The caller must then check ``os.getppid()``: if the parent died
    before this call, the signal will never come.
    """
    return _prctl(_PR_SET_PDEATHSIG, int(sig))


def set_comm(name: str) -> bool:
    """Set the kernel's 15-byte process name (``/proc/self/comm``)."""
    return _prctl(_PR_SET_NAME, name.encode("utf-8", "replace")[:_COMM_MAX])


def _argv_area() -> tuple[int, int] | None:
    try:
        with open("/proc/self/stat", "rb") as stat:
            raw = stat.read()
    except OSError:
        return None
    fields = raw[raw.rindex(b")") + 2 :].split()
    # Fields 48 and 49 of stat(5) (arg_start, arg_end); fields[0] is field 3 (state).
    if len(fields) < 47:
        return None
    start, end = int(fields[45]), int(fields[46])
    if not 0 < start < end:
        return None
    return start, end


def _argv_area_from_libc() -> tuple[int, int] | None:
    """The argv area without ``/proc``: glibc's ``program_invocation_name`` is ``argv[0]`` as the kernel
    placed it, and the strings of ``sys.orig_argv`` follow it, each with its NUL."""
    if _LIBC is None:
        return None
    try:
        start = ctypes.c_void_p.in_dll(_LIBC, "program_invocation_name").value
    except ValueError:  # not glibc
        return None
    if not start:
        return None
    length = sum(len(os.fsencode(arg)) + 1 for arg in sys.orig_argv)
    if ctypes.string_at(start, len(os.fsencode(sys.orig_argv[0]))) != os.fsencode(sys.orig_argv[0]):
        return None
    return start, start + length


def set_process_title(title: str, *, use_proc: bool = True) -> bool:
    """Show ``title`` as this process's command line and ``comm``. True if the command line changed.

    The title is truncated to the original argv area (see the module docstring). With ``use_proc=False``
    the area is found without reading ``/proc`` (glibc only; the portable backend's processes).
    """
    set_comm(title)
    area = _argv_area() if use_proc else _argv_area_from_libc()
    if area is None:
        return False
    start, end = area
    room = end - start
    if room < 2:
        return False
    data = title.encode("utf-8", "replace")[: room - 2]
    # Title, NUL, then non-NUL filler up to the end: a non-NUL last byte tells the kernel the area was
    # rewritten, and it then shows only the text up to the first NUL (``get_mm_proctitle``).
    ctypes.memmove(start, data + b"\0" + b" " * (room - len(data) - 1), room)
    return True


def close_fds_except(keep: Iterable[int]) -> None:
    """Close every fd >= 3 not in ``keep`` (used right after fork, before any Python object could reuse
    a number)."""
    low = 3
    for fd in sorted(f for f in set(keep) if f >= 3):
        if fd > low:
            os.closerange(low, fd)
        low = fd + 1
    max_fd = _FALLBACK_MAX_FD
    if sys.platform != "win32":
        try:
            max_fd = os.sysconf("SC_OPEN_MAX")
        except (OSError, ValueError):  # pragma: no cover
            pass
    os.closerange(low, max(max_fd, low))


#: Environment variables never passed to a zygote (nor, so, to any paglet process): the host's API key.
SECRET_ENV_NAMES: Final = frozenset({API_KEY_ENV})


def scrubbed_environment(environ: Mapping[str, str], *, secrets: Sequence[str] = ()) -> dict[str, str]:
    """``environ`` without the host's secrets: the variables of ``SECRET_ENV_NAMES`` and every variable
    whose value is one of ``secrets`` (the API key, whichever variable it came from, e.g.
    ``--api-key-env``). The zygote is started with it, so neither the template process nor any paglet
    process forked from it ever has them, not even in ``/proc/<pid>/environ``."""
    hidden = {secret for secret in secrets if secret}
    return {
        name: value for name, value in environ.items() if name not in SECRET_ENV_NAMES and value not in hidden
    }
