"""Writing one new artifact: checks, bytes to a part file, hash, commit (steps 1-5 of the store).

1. :func:`begin` checks the arguments and refuses a declared size at once when it passes ``max_bytes``
   (``LimitExceededError``, 413) or the quota (``StorageQuotaError``);
2. bytes go to ``tmp/<id>.part``. :func:`write_async` (the event loop's path) batches received pieces
   into writes of about ``WRITE_BATCH`` bytes done by ``os.writev`` in the store's bounded executor,
   hashing SHA-256 in the same worker call; while one batch is written the next one is collected, so disk
   and network overlap and at most two batches are held. The event loop never touches the disk.
   :func:`write_blocking` does the same on the caller's thread. Every ``SYNC_EVERY`` bytes the writer
   calls ``fdatasync``, so the final fsync stays short;
3. the running size is checked against ``max_bytes``, the declared size and the quota on every piece;
4. at the end the size must equal the declared size and the hash the expected one (``TransferError``);
5. commit: fsync the part file, rename it to ``blobs/<id>.bin``, write the metadata (temp file, fsync,
   rename), fsync both directories, then publish it in the index.

Any failure (including cancellation) closes and removes the part file, a blob or metadata already written,
and releases the quota reservation (:meth:`Upload.abort`): nothing is left on disk.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import math
import os
import uuid
from collections.abc import AsyncIterable, Callable
from concurrent.futures import Executor
from typing import Final

import msgspec

from paglets import _oscompat
from paglets.artifacts._index import Meta, StoreIndex, is_sha256_hex
from paglets.artifacts._io import (
    MAX_BATCH_PIECES,
    READ_CHUNK,
    close_source,
    fsync_dir,
    io_error,
    unlink_quietly,
    write_all,
)
from paglets.core.errors import LimitExceededError, TransferError
from paglets.wire.limits import MiB

__all__ = [
    "MAX_LABEL_CHARS",
    "MAX_NAME_CHARS",
    "SYNC_EVERY",
    "WRITE_BATCH",
    "Chunk",
    "Upload",
    "begin",
    "write_async",
    "write_blocking",
]

#: Bytes collected before one disk write: large enough to amortise a worker hop and a syscall, small
#: enough that the two batches an upload holds stay a small constant.
WRITE_BATCH: Final = 1 * MiB
#: Bytes written between two ``fdatasync`` calls of an upload. Syncing as we go keeps the final fsync
#: (which the client waits for with its receive timeout) short, whatever the artifact size, and slows a
#: sender down to what the disk really absorbs instead of filling the page cache.
SYNC_EVERY: Final = 64 * MiB
#: Longest artifact name (characters). Names are labels, never paths inside the store.
MAX_NAME_CHARS: Final = 1024
#: Longest owner agent id or compression label (characters).
MAX_LABEL_CHARS: Final = 256

#: What a stream of artifact bytes may yield. Pieces must not change once yielded (they are held until
#: written): the HTTP server's pieces are slices of immutable ``bytes``.
Chunk = bytes | bytearray | memoryview


class Upload:
    """One artifact being written (see the module docstring, steps 2-5)."""

    def __init__(
        self, index: StoreIndex, max_bytes: int | None, meta: Meta, declared: int | None, expected: str | None
    ) -> None:
        self.index = index
        self.max_bytes = max_bytes
        self.artifact_id = meta.artifact_id
        self.meta = meta
        self.declared = declared
        self.expected_sha256 = expected
        self.reservation = index.begin(meta.artifact_id, declared)
        self.fd = -1
        self.hasher = hashlib.sha256()
        self.size = 0
        self.unsynced = 0

    # --- on the caller's thread ------------------------------------------------------------------------

    def account(self, count: int) -> None:
        """Check ``count`` more bytes against the limits and reserve quota for them."""
        size = self.size + count
        if self.max_bytes is not None and size > self.max_bytes:
            raise LimitExceededError(f"artifact is larger than the limit of {self.max_bytes} bytes")
        if self.declared is not None and size > self.declared:
            raise TransferError(f"artifact upload sent more than its declared {self.declared} bytes")
        if size > self.reservation.reserved:
            self.index.reserve(self.reservation, size - self.reservation.reserved)
        self.size = size

    def finish(self) -> Meta:
        """Check the final size and hash; the metadata to commit."""
        if self.declared is not None and self.size != self.declared:
            raise TransferError(f"artifact upload ended after {self.size} of {self.declared} declared bytes")
        digest = self.hasher.hexdigest()
        if self.expected_sha256 is not None and digest != self.expected_sha256:
            raise TransferError(
                f"artifact SHA-256 mismatch: expected {self.expected_sha256}, received {digest}"
            )
        self.meta = msgspec.structs.replace(self.meta, size_bytes=self.size, sha256=digest)
        return self.meta

    # --- blocking steps (a worker thread, or the caller's thread for write_blocking) ---------------------

    def open(self) -> None:
        path = self.index.part_path(self.artifact_id)
        try:
            self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _oscompat.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise io_error("create an artifact file", exc) from exc

    def write(self, pieces: list[memoryview]) -> None:
        update = self.hasher.update
        count = 0
        for view in pieces:
            update(view)
            count += view.nbytes
        try:
            write_all(self.fd, pieces)
            self.unsynced += count
            if self.unsynced >= SYNC_EVERY:
                _oscompat.fdatasync(self.fd)
                self.unsynced = 0
        except OSError as exc:
            raise io_error("write an artifact", exc) from exc

    def commit(self) -> None:
        index = self.index
        blob = index.blob_path(self.artifact_id)
        try:
            os.fsync(self.fd)
            os.close(self.fd)
            self.fd = -1
            os.replace(index.part_path(self.artifact_id), blob)
            fsync_dir(index.blobs_dir)
            index.write_metadata(self.meta)
        except OSError as exc:
            raise io_error("store an artifact", exc) from exc
        index.publish(self.reservation, self.meta)

    def abort(self, prior: concurrent.futures.Future[None] | None = None) -> None:
        """Undo everything (after ``prior``, a write still running, has ended)."""
        if prior is not None:
            concurrent.futures.wait([prior])
        if self.fd >= 0:
            try:
                os.close(self.fd)
            except OSError:  # pragma: no cover - nothing more to do with it
                pass
            self.fd = -1
        index = self.index
        unlink_quietly(index.part_path(self.artifact_id))
        if self.reservation.committed:
            index.remove(self.artifact_id)
        else:
            unlink_quietly(index.meta_path(self.artifact_id))
            unlink_quietly(index.blob_path(self.artifact_id))
            unlink_quietly(index.meta_tmp_path(self.artifact_id))
        index.release(self.reservation)


def begin(
    index: StoreIndex,
    max_bytes: int | None,
    *,
    created_at: float,
    owner_agent_id: str,
    name: str,
    compression: str,
    expires_at: float,
    expected_sha256: str | None,
    declared_size: int | None,
) -> Upload:
    """Check the arguments of a new artifact and admit its upload (step 1 of the module docstring)."""
    for label, value, bound in (
        ("owner_agent_id", owner_agent_id, MAX_LABEL_CHARS),
        ("compression", compression, MAX_LABEL_CHARS),
        ("name", name, MAX_NAME_CHARS),
    ):
        if not isinstance(value, str):
            raise TransferError(f"artifact {label} must be a string")
        if len(value) > bound:
            raise LimitExceededError(f"artifact {label} is longer than {bound} characters")
    if isinstance(expires_at, bool) or not isinstance(expires_at, int | float):
        raise TransferError("artifact expires_at must be a number")
    if not math.isfinite(expires_at):
        raise TransferError("artifact expires_at must be finite")
    if expected_sha256 is not None:
        expected_sha256 = expected_sha256.lower() if isinstance(expected_sha256, str) else ""
        if not is_sha256_hex(expected_sha256):
            raise TransferError("expected SHA-256 must be 64 hex characters")
    if declared_size is not None:
        if isinstance(declared_size, bool) or not isinstance(declared_size, int) or declared_size < 0:
            raise TransferError("declared artifact size must be a non-negative integer")
        if max_bytes is not None and declared_size > max_bytes:
            raise LimitExceededError(
                f"artifact of {declared_size} bytes exceeds the limit of {max_bytes} bytes"
            )
    meta = Meta(
        artifact_id=uuid.uuid4().hex,
        name=name,
        compression=compression,
        created_at=created_at,
        expires_at=float(expires_at),
        owner_agent_id=owner_agent_id,
    )
    return Upload(index, max_bytes, meta, declared_size, expected_sha256)


async def write_async(upload: Upload, chunks: AsyncIterable[Chunk], executor: Executor) -> Meta:
    """Fill ``upload`` from ``chunks`` with the disk work in ``executor`` and commit it (undone on any
    failure, cancellation included); the committed metadata."""
    running: concurrent.futures.Future[None] | None = None
    try:
        running = executor.submit(upload.open)
        await asyncio.wrap_future(running)
        batch: list[memoryview] = []
        batch_bytes = 0
        async for piece in chunks:
            view = memoryview(piece)
            if view.format != "B" or view.ndim != 1:
                view = view.cast("B")
            count = view.nbytes
            if not count:
                continue
            upload.account(count)
            batch.append(view)
            batch_bytes += count
            if batch_bytes >= WRITE_BATCH or len(batch) >= MAX_BATCH_PIECES:
                if running is not None:
                    await asyncio.wrap_future(running)
                running = executor.submit(upload.write, batch)
                batch, batch_bytes = [], 0
        if running is not None:
            await asyncio.wrap_future(running)
        if batch:
            running = executor.submit(upload.write, batch)
            await asyncio.wrap_future(running)
        upload.finish()
        running = executor.submit(upload.commit)
        await asyncio.wrap_future(running)
    except BaseException:
        await close_source(chunks)
        try:
            cleanup = executor.submit(upload.abort, running)
        except RuntimeError:  # the executor was shut down under us: clean up here
            upload.abort(running)
        else:
            await asyncio.wrap_future(cleanup)
        raise
    return upload.meta


def write_blocking(upload: Upload, read_into: Callable[[bytearray], int], *, reserve: int) -> Meta:
    """Fill ``upload`` from ``read_into`` on this thread and commit it (undone on any failure).

    ``reserve`` bytes of quota are taken first, so a file of known size fails fast on the quota; growth
    beyond it is accounted as it comes.
    """
    try:
        if reserve:
            upload.index.reserve(upload.reservation, reserve)
        upload.open()
        buffer = bytearray(READ_CHUNK)
        view = memoryview(buffer)
        while count := read_into(buffer):
            upload.account(count)
            upload.write([view[:count]])
        upload.finish()
        upload.commit()
    except BaseException:
        upload.abort()
        raise
    return upload.meta
