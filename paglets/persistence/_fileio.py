"""Small durable-file helpers for the record store (all relative to a directory file descriptor).

Durability rule used everywhere: a file that must survive a crash is written under a temporary name in the
same directory, written completely, ``fdatasync``'d, renamed over its final name, and then the directory
is ``fsync``'d (which makes the rename itself durable). A crash at any point leaves either the old file
or the new one under the final name, plus possibly a temporary file that the next start removes.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from collections.abc import Iterable
from typing import Final

from paglets import _oscompat
from paglets.wire.limits import MiB

__all__ = [
    "INLINE_SYNC_BELOW",
    "TEMP_SUFFIX",
    "SyncTimer",
    "datasync",
    "fsync_fd",
    "open_directory",
    "open_flags",
    "pwrite_all",
    "read_exact",
    "temp_name",
    "write_all",
    "write_new_file",
]

#: Suffix of temporary files; any dot-file with it in a store directory is debris from a crash.
TEMP_SUFFIX: Final = ".tmp"
#: Buffers per ``writev`` call (Linux IOV_MAX is 1024).
_IOV_BATCH: Final = 512
#: Bytes gathered before a ``writev`` call: big enough to amortise the call, small enough to stream.
_WRITE_BATCH: Final = 8 * MiB

#: A small durable write may run on the event loop's thread while this file's recent ones took less
#: (seconds, weighted mean): on fast storage a 512-byte write and its ``fdatasync`` take tens of
#: microseconds, less than handing them to a worker thread and back; slower storage gets the worker.
INLINE_SYNC_BELOW: Final = 0.0005
_O_CLOEXEC: Final = _oscompat.O_CLOEXEC
_O_NOFOLLOW: Final = _oscompat.O_NOFOLLOW


def open_flags(base: int) -> int:
    """``base`` plus close-on-exec and no-follow (record files are never symbolic links)."""
    return base | _O_CLOEXEC | _O_NOFOLLOW


def open_directory(path: str | os.PathLike[str]) -> int:
    """A descriptor of a directory, for ``dir_fd`` calls and for fsyncing the directory itself."""
    return os.open(path, os.O_RDONLY | _oscompat.O_DIRECTORY | _O_CLOEXEC)


def temp_name(stem: str, kind: str) -> str:
    """A fresh temporary name for ``<stem><kind>``: hidden, unique, recognisable at start."""
    return f".{stem}{kind}.{secrets.token_hex(6)}{TEMP_SUFFIX}"


def datasync(fd: int) -> None:
    """Flush a file's data and the metadata needed to read it back (its size)."""
    _oscompat.fdatasync(fd)


class SyncTimer:
    """How long the small durable writes to one file took lately (a weighted mean of the last few), so
    that a caller on an event loop can run the next one in place when the storage is fast."""

    __slots__ = ("_limit", "_mean")

    def __init__(self, inline_below: float = INLINE_SYNC_BELOW) -> None:
        self._limit = inline_below
        self._mean: float | None = None  # unknown until a write was timed: the first one goes to a worker

    @property
    def inline(self) -> bool:
        """Whether the next small write is cheap enough to run on the calling (loop) thread."""
        return self._mean is not None and self._mean < self._limit

    def timed(self, started: float) -> None:
        """Account a write that began at ``time.perf_counter()`` value ``started`` and just ended."""
        seconds = time.perf_counter() - started
        self._mean = seconds if self._mean is None else 0.75 * self._mean + 0.25 * seconds


def fsync_fd(fd: int) -> None:
    os.fsync(fd)


def _writev_all(fd: int, buffers: list[bytes | memoryview]) -> None:
    """Write all (non-empty) buffers, resuming after partial writes."""
    start = 0
    while start < len(buffers):
        written = _oscompat.writev(fd, buffers[start:] if start else buffers)
        while start < len(buffers) and written >= len(buffers[start]):
            written -= len(buffers[start])
            start += 1
        if written:
            buffers[start] = memoryview(buffers[start])[written:]


def write_all(fd: int, chunks: Iterable[bytes | memoryview]) -> int:
    """Write every chunk in order (gathered into ``writev`` calls); returns the byte count."""
    total = 0
    batch: list[bytes | memoryview] = []
    batch_bytes = 0
    for chunk in chunks:
        size = len(chunk)
        if not size:
            continue
        batch.append(chunk)
        batch_bytes += size
        if len(batch) >= _IOV_BATCH or batch_bytes >= _WRITE_BATCH:
            _writev_all(fd, batch)
            total += batch_bytes
            batch, batch_bytes = [], 0
    if batch:
        _writev_all(fd, batch)
        total += batch_bytes
    return total


def pwrite_all(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    done = 0
    while done < len(view):
        done += _oscompat.pwrite(fd, view[done:], offset + done)


def read_exact(fd: int, size: int, offset: int = 0) -> bytes:
    """``size`` bytes from ``offset``, or fewer when the file ends first."""
    data = _oscompat.pread(fd, size, offset)
    if len(data) == size or not data:
        return data
    parts = [data]
    got = len(data)
    while got < size:
        more = _oscompat.pread(fd, size - got, offset + got)
        if not more:
            break
        parts.append(more)
        got += len(more)
    return b"".join(parts)


def write_new_file(dir_fd: int, name: str, chunks: Iterable[bytes | memoryview], *, durable: bool) -> int:
    """Create ``name`` (it must not exist), write the chunks, sync them; removes the file on failure."""
    fd = os.open(name, open_flags(os.O_WRONLY | os.O_CREAT | os.O_EXCL), 0o600, dir_fd=dir_fd)
    try:
        try:
            size = write_all(fd, chunks)
            if durable:
                datasync(fd)
        finally:
            os.close(fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(name, dir_fd=dir_fd)
        raise
    return size
