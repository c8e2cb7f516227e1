"""File-level helpers of the artifact store (``paglets.artifacts._store``) and of same-host copies.

- :class:`BlobReader` streams an open blob: ``async for`` reads ``READ_CHUNK`` pieces with ``os.pread`` in
  an executor, one piece ahead of the consumer; ``iter_chunks()`` reads on the calling thread.
- :func:`copy_verified` copies a blob to a file of the caller's choosing: ``.<name>.<uuid>.part`` beside
  the target, size and SHA-256 checked against what the store recorded, fsynced, then renamed over the
  target, so the target appears complete or not at all. The blob is opened first, so a concurrent delete
  cannot cut a copy short. Paglet processes use it to read artifacts of their own host straight from
  disk (the host only tells them where the blob is).
- :class:`LimitedReader` and :class:`ChunkedReader` read a request body from a blocking binary stream
  (``Content-Length`` or ``Transfer-Encoding: chunked``) for ``ArtifactStore.create_from_http_request``.
  The chunked decoder is bounded: a size line is at most ``MAX_CHUNK_LINE`` bytes and at most
  ``MAX_TRAILER_LINES`` trailer lines follow the last chunk; anything malformed is a ``TransferError``.
- ``write_all``, ``fsync_dir``, ``io_error`` (``ENOSPC``/``EDQUOT`` become ``StorageQuotaError``),
  ``unlink_quietly`` and ``close_source`` are the small pieces the store's upload path shares.
"""

from __future__ import annotations

import concurrent.futures
import errno
import hashlib
import logging
import os
import uuid
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import Executor
from pathlib import Path
from typing import BinaryIO, Final

from paglets import _oscompat
from paglets.core._artifact_refs import ArtifactRef
from paglets.core.errors import PagletError, StorageQuotaError, TransferError
from paglets.wire.limits import KiB, MiB

__all__ = [
    "MAX_BATCH_PIECES",
    "MAX_CHUNK_LINE",
    "MAX_TRAILER_LINES",
    "READ_CHUNK",
    "BlobReader",
    "ChunkedReader",
    "LimitedReader",
    "close_source",
    "copy_verified",
    "fsync_dir",
    "io_error",
    "unlink_quietly",
    "write_all",
]

logger = logging.getLogger("paglets.artifacts")

#: Pieces in one ``writev`` (the kernel refuses more than ``IOV_MAX``, 1024 on Linux).
MAX_BATCH_PIECES: Final = 512
#: Bytes per blob read (one response piece of a download, one step of a same-host copy).
READ_CHUNK: Final = 1 * MiB
#: Longest chunk-size line (hex size plus extensions) of a chunked request body.
MAX_CHUNK_LINE: Final = 4 * KiB
#: Trailer lines accepted after the last chunk of a chunked request body.
MAX_TRAILER_LINES: Final = 64


def fsync_dir(path: Path) -> None:
    _oscompat.fsync_directory(path)


def write_all(fd: int, views: list[memoryview]) -> None:
    """``writev`` every view, resuming after short writes."""
    index = 0
    while index < len(views):
        written = _oscompat.writev(fd, views[index : index + MAX_BATCH_PIECES])
        while written:
            first = views[index]
            if written >= first.nbytes:
                written -= first.nbytes
                index += 1
            else:
                views[index] = first[written:]
                written = 0


def io_error(action: str, exc: OSError) -> PagletError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return StorageQuotaError(f"cannot {action}: the disk is full ({exc.strerror})")
    return TransferError(f"cannot {action}: {exc}")


async def close_source(chunks: object) -> None:
    """Close an async generator we stop reading (runs its ``finally``); its errors are not ours."""
    aclose = getattr(chunks, "aclose", None)
    if aclose is not None:
        try:
            await aclose()
        except Exception:
            logger.debug("closing an artifact source failed", exc_info=True)


def unlink_quietly(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError as exc:  # pragma: no cover - permissions changed under us
        logger.warning("cannot remove %s: %s", path, exc)


def _wrapped(future: concurrent.futures.Future[bytes]) -> Awaitable[bytes]:
    """``future`` awaitable on the running loop. asyncio is imported here, not with the module: blobs are
    read asynchronously by hosts only, and a paglet process that imports this module need not load it."""
    import asyncio

    return asyncio.wrap_future(future)


class BlobReader:
    """An open artifact blob (``ArtifactStore.open_blob``); always close it.

    ``async for piece in reader`` reads in the store's executor, one chunk ahead, and closes the reader
    at the end; ``iter_chunks()`` reads on the calling thread. ``aclose()``/``close()`` are idempotent.
    """

    __slots__ = ("_executor", "_fd", "_next", "_offset", "_served", "ref")

    def __init__(
        self, ref: ArtifactRef, fd: int, executor: Executor, served: Callable[[int], None] = lambda _: None
    ) -> None:
        self._served = served
        self.ref = ref
        self._fd = fd
        self._executor = executor
        self._offset = 0
        self._next: concurrent.futures.Future[bytes] | None = None

    @property
    def size(self) -> int:
        return self.ref.size_bytes

    def _read(self, offset: int) -> bytes:
        want = min(READ_CHUNK, self.ref.size_bytes - offset)
        try:
            data = _oscompat.pread(self._fd, want, offset)
        except OSError as exc:
            raise io_error("read an artifact", exc) from exc
        if len(data) != want:
            raise TransferError(f"artifact {self.ref.artifact_id} is shorter on disk than recorded")
        return data

    def __aiter__(self) -> BlobReader:
        return self

    async def __anext__(self) -> bytes:
        if self._fd < 0 or self._offset >= self.ref.size_bytes:
            await self.aclose()
            raise StopAsyncIteration
        future = self._next
        if future is None:
            future = self._executor.submit(self._read, self._offset)
        self._next = None
        try:
            data = await _wrapped(future)
        except BaseException:
            await self.aclose()
            raise
        self._offset += len(data)
        if self._offset < self.ref.size_bytes:
            self._next = self._executor.submit(self._read, self._offset)
        self._served(len(data))
        return data

    def iter_chunks(self) -> Iterator[bytes]:
        """The remaining bytes read on this thread (the reader is closed at the end)."""
        try:
            while self._fd >= 0 and self._offset < self.ref.size_bytes:
                data = self._read(self._offset)
                self._offset += len(data)
                self._served(len(data))
                yield data
        finally:
            self.close()

    async def aclose(self) -> None:
        pending, self._next = self._next, None
        if pending is not None:
            try:
                await _wrapped(pending)
            except Exception:
                pass
        self._close_fd()

    def close(self) -> None:
        pending, self._next = self._next, None
        if pending is not None:
            concurrent.futures.wait([pending])
        self._close_fd()

    def _close_fd(self) -> None:
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)


def copy_verified(source: Path, target: Path | str, *, size: int, sha256: str, what: str) -> Path:
    """Copy ``source`` to ``target`` atomically, checking ``size`` and ``sha256`` (see the module
    docstring); ``what`` names the artifact in errors. Returns the target path."""
    destination = Path(target)
    if destination.is_dir():
        raise TransferError(f"download target {destination} is a directory")
    try:
        destination.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TransferError(f"cannot create {destination.parent}: {exc}") from exc
    try:
        src = os.open(source, os.O_RDONLY | _oscompat.O_CLOEXEC)
    except FileNotFoundError as exc:
        raise TransferError(f"unknown artifact {what}") from exc
    except OSError as exc:
        raise io_error("open an artifact", exc) from exc
    part = destination.with_name(f".{destination.name}.{uuid.uuid4().hex}.part")
    try:
        try:
            fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _oscompat.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise TransferError(f"cannot create {part}: {exc}") from exc
        try:
            hasher = hashlib.sha256()
            buffer = bytearray(READ_CHUNK)
            view = memoryview(buffer)
            copied = 0
            while count := _oscompat.readinto(src, buffer):
                piece = view[:count]
                hasher.update(piece)
                copied += count
                write_all(fd, [piece])
            if copied != size or hasher.hexdigest() != sha256:
                raise TransferError(
                    f"artifact {what} is damaged on disk ({copied} of {size} bytes, "
                    f"SHA-256 {hasher.hexdigest()} instead of {sha256})"
                )
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(part, destination)
    except OSError as exc:
        unlink_quietly(part)
        raise TransferError(f"cannot write {destination}: {exc}") from exc
    except BaseException:
        unlink_quietly(part)
        raise
    finally:
        os.close(src)
    return destination


class LimitedReader:
    """Exactly ``length`` bytes of a blocking binary stream (``TransferError`` if it ends early)."""

    def __init__(self, source: BinaryIO, length: int) -> None:
        if length < 0:
            raise TransferError("Content-Length must not be negative")
        self._source = source
        self._left = length

    def read(self, size: int = READ_CHUNK) -> bytes:
        if self._left <= 0:
            return b""
        data = self._source.read(min(size, self._left))
        if not data:
            raise TransferError(f"request body ended {self._left} bytes early")
        self._left -= len(data)
        return bytes(data)


class ChunkedReader:
    """The decoded body of a ``Transfer-Encoding: chunked`` stream (bounded; see the module docstring)."""

    def __init__(self, source: BinaryIO) -> None:
        self._source = source
        self._left = 0
        self._done = False

    def _line(self) -> bytes:
        line = self._source.readline(MAX_CHUNK_LINE + 1)
        if not line.endswith(b"\n"):
            raise TransferError("malformed chunked body: a line is too long or the body ended")
        return line.rstrip(b"\r\n")

    def _next_chunk(self) -> None:
        size_text = self._line().split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise TransferError(f"malformed chunk size {size_text[:32]!r}") from None
        if size < 0:
            raise TransferError("malformed chunk size")
        if size == 0:
            for _ in range(MAX_TRAILER_LINES):
                if not self._line():
                    self._done = True
                    return
            raise TransferError(f"more than {MAX_TRAILER_LINES} trailer lines")
        self._left = size

    def read(self, size: int = READ_CHUNK) -> bytes:
        while not self._done and self._left == 0:
            self._next_chunk()
        if self._done:
            return b""
        data = self._source.read(min(size, self._left))
        if not data:
            raise TransferError("chunked body ended inside a chunk")
        self._left -= len(data)
        if self._left == 0 and self._source.read(2) != b"\r\n":
            raise TransferError("malformed chunked body: a chunk is not followed by CRLF")
        return bytes(data)
