"""The few operating-system calls whose names or existence differ between Linux, macOS and Windows.

Every package reads files the same way through these: positional reads and writes, gathered writes,
``fdatasync``, directory ``fsync`` (only where the OS has it: POSIX; NTFS makes a rename durable without
it), an exclusive non-blocking file lock (``fcntl.flock`` on POSIX, ``msvcrt.locking`` on Windows) and
the open flags that only some systems have (0 elsewhere). A leaf: imports nothing from paglets.

On Windows ``pread``/``pwrite`` are a seek then a read or write on the descriptor, so two threads must not
use the same descriptor at once there (the stores open one descriptor per reader).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from typing_extensions import Buffer

__all__ = [
    "HAS_DIRECTORY_FSYNC",
    "O_CLOEXEC",
    "O_DIRECTORY",
    "O_NOFOLLOW",
    "fdatasync",
    "fsync_directory",
    "lock_exclusive",
    "pread",
    "pwrite",
    "readinto",
    "unlock",
    "writev",
]

if sys.platform == "win32":
    import msvcrt

    O_CLOEXEC: Final = 0  # Windows handles are not inherited unless asked (os.set_inheritable)
    O_DIRECTORY: Final = 0
    O_NOFOLLOW: Final = 0
    #: Whether directories can be opened and fsync'd to make a rename durable.
    HAS_DIRECTORY_FSYNC: Final = False

    def writev(fd: int, buffers: Sequence[Buffer]) -> int:
        """Write the first non-empty buffer (callers resume after short writes)."""
        for buffer in buffers:
            view = memoryview(buffer)
            if view.nbytes:
                return os.write(fd, view)
        return 0

    def pread(fd: int, size: int, offset: int) -> bytes:
        os.lseek(fd, offset, os.SEEK_SET)
        return os.read(fd, size)

    def pwrite(fd: int, data: Buffer, offset: int) -> int:
        os.lseek(fd, offset, os.SEEK_SET)
        return os.write(fd, data)

    def readinto(fd: int, buffer: bytearray) -> int:
        data = os.read(fd, len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def fdatasync(fd: int) -> None:
        os.fsync(fd)

    def fsync_directory(path: str | os.PathLike[str]) -> None:
        """Nothing to do on Windows (directories cannot be opened as files; NTFS logs the rename)."""

    def lock_exclusive(fd: int) -> bool:
        """Take an exclusive lock on the file's first byte without waiting; False if another holds it."""
        os.lseek(fd, 0, os.SEEK_SET)
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True

    def unlock(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    O_CLOEXEC: Final = os.O_CLOEXEC
    O_DIRECTORY: Final = os.O_DIRECTORY
    O_NOFOLLOW: Final = os.O_NOFOLLOW
    #: Whether directories can be opened and fsync'd to make a rename durable.
    HAS_DIRECTORY_FSYNC: Final = True

    def writev(fd: int, buffers: Sequence[Buffer]) -> int:
        return os.writev(fd, buffers)

    def pread(fd: int, size: int, offset: int) -> bytes:
        return os.pread(fd, size, offset)

    def pwrite(fd: int, data: Buffer, offset: int) -> int:
        return os.pwrite(fd, data, offset)

    def readinto(fd: int, buffer: bytearray) -> int:
        return os.readv(fd, [buffer])

    if sys.platform == "darwin":  # macOS has no fdatasync; fsync is what it offers

        def fdatasync(fd: int) -> None:
            os.fsync(fd)

    else:

        def fdatasync(fd: int) -> None:
            os.fdatasync(fd)

    def fsync_directory(path: str | os.PathLike[str]) -> None:
        """``fsync`` a directory, which makes a rename into it durable."""
        fd = os.open(path, os.O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def lock_exclusive(fd: int) -> bool:
        """Take an exclusive lock on the file without waiting; False if another process holds it."""
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)
