"""The host's artifact store: blobs named by uuid, with JSON metadata (contract §4.10).

Layout under ``root`` (a host uses ``<persistence_dir>/artifacts``)::

    blobs/<id>.bin        the bytes of one artifact
    metadata/<id>.json    its metadata (msgspec JSON of ``_Meta``; the host URL is not stored)
    tmp/<id>.part         an upload in progress
    tmp/<id>.json.tmp     metadata being written

Ids are uuid4 values as 32 lowercase hex characters; every id taken from outside goes through
``require_artifact_id`` before it is used in a path.

Creation (``create_from_stream_async`` on the event loop; ``create_from_file``, ``create_from_path`` and
``create_from_stream`` from any thread):

1. arguments are checked and the declared size (if any) is refused at once when it passes ``max_bytes``
   (``LimitExceededError``, 413) or the quota (``StorageQuotaError``);
2. bytes go to ``tmp/<id>.part``. The async path batches received pieces into writes of about
   ``WRITE_BATCH`` bytes done by ``os.writev`` in the store's bounded executor, hashing SHA-256 in the same
   worker call; while one batch is written the next one is collected, so disk and network overlap and at
   most two batches are held. The event loop never touches the disk;
   Every ``SYNC_EVERY`` bytes the worker calls ``fdatasync``, so the final fsync stays short;
3. the running size is checked against ``max_bytes``, the declared size and the quota on every piece;
4. at the end the size must equal the declared size and the hash the expected one (``TransferError``);
5. commit: fsync the part file, rename it to ``blobs/<id>.bin``, write the metadata (temp file, fsync,
   rename), fsync both directories, then publish it in the in-memory index.

Any failure (including cancellation) closes and removes the part file, a blob or metadata already written,
and releases the quota reservation — nothing is left on disk.

Quota accounting is incremental: ``used`` (sum of committed blob sizes) plus ``reserved`` (bytes that
uploads in progress hold: their declared size, or what they have received so far) may never pass
``quota_bytes``; nothing walks the directory on a write. The in-memory index (built by one scan at
construction) answers ``metadata``, ``list`` and ``usage`` without disk I/O.

Crash consistency: a blob is renamed into place before its metadata, and deleting removes the metadata
before the blob, so after a crash only *orphans* can exist. The construction scan removes them (a blob
without metadata, metadata without a blob or with a different size, unreadable metadata) and every
leftover temp file.

Reads: ``open_blob`` opens the blob at once (a concurrent delete does not break a download in progress)
and returns a :class:`BlobReader` that yields ``READ_CHUNK`` pieces, read with ``os.pread`` in the
executor one chunk ahead of the consumer; ``export_to_path`` copies a blob to a file (size and SHA-256
checked, atomic rename). File-level helpers live in ``paglets.runtime._artifact_io``.

paglets 2.0 names: the store also answers to 2.0's constructor keywords (``host_url`` as a string,
``max_artifact_bytes`` where ``None`` or 0 means unlimited, ``spool_ttl_seconds`` of at least one second)
and methods (``create_from_path``, ``create_from_stream(source, size_bytes=...)`` on a blocking reader,
``create_from_http_request``, ``ref``, ``open_reader``, ``export_to_path``, ``delete_owner``,
``cleanup_temporary``, ``set_host_url``). One difference: a ``size_bytes`` given to
``create_from_stream`` must be the exact size (2.0 only compared it with the limit).

Housekeeping: ``cleanup_expired(now)`` deletes artifacts whose ``expires_at`` (0 = never) has passed;
``cleanup_stale_parts(now)`` deletes temp files older than ``spool_ttl`` that no upload in progress owns;
``delete_owned_by(agent_id)`` deletes what a disposed paglet owned (paglets 2.0 leaks those).
A host calls ``cleanup_async`` every ``cleanup_interval`` seconds.

Thread safety: the index, counters and reservations are guarded by one lock; every public method may be
called from any thread, the ``*_async`` ones from a running event loop.

Limits defined here (not in ``paglets.wire.limits``, which the store does not own): ``ARTIFACT_MAX_BYTES``,
``ARTIFACT_QUOTA_BYTES``, ``ARTIFACT_SPOOL_TTL``, ``CLEANUP_INTERVAL_MAX``, ``WRITE_BATCH``,
``SYNC_EVERY``, ``MAX_BATCH_PIECES``, ``READ_CHUNK``, ``IO_WORKERS``, ``MAX_ACTIVE_UPLOADS``,
``MAX_NAME_CHARS``, ``MAX_LABEL_CHARS``, ``MAX_METADATA_FILE`` (``MAX_BATCH_PIECES`` and ``READ_CHUNK``
come from ``_artifact_io``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import enum
import hashlib
import logging
import math
import os
import stat
import threading
import time
import uuid
from collections.abc import AsyncIterable, Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from pathlib import Path
from typing import Any, BinaryIO, Final, Literal, Protocol

import msgspec

from paglets.artifacts import (
    DEFAULT_ARTIFACT_MAX_BYTES,
    DEFAULT_ARTIFACT_SPOOL_TTL_SECONDS,
    DEFAULT_ARTIFACT_STORAGE_QUOTA_BYTES,
    ArtifactRef,
    ArtifactWriteResult,
    is_valid_artifact_id,
    require_artifact_id,
)
from paglets.core.errors import LimitExceededError, StorageQuotaError, TransferError
from paglets.runtime._artifact_io import (
    MAX_BATCH_PIECES,
    READ_CHUNK,
    BlobReader,
    ChunkedReader,
    LimitedReader,
    close_source,
    copy_verified,
    fsync_dir,
    io_error,
    unlink_quietly,
    write_all,
)
from paglets.wire.limits import KiB, MiB

__all__ = [
    "ARTIFACT_MAX_BYTES",
    "ARTIFACT_QUOTA_BYTES",
    "ARTIFACT_SPOOL_TTL",
    "CLEANUP_INTERVAL_MAX",
    "IO_WORKERS",
    "MAX_ACTIVE_UPLOADS",
    "MAX_BATCH_PIECES",
    "MAX_LABEL_CHARS",
    "MAX_METADATA_FILE",
    "MAX_NAME_CHARS",
    "READ_CHUNK",
    "SYNC_EVERY",
    "WRITE_BATCH",
    "ArtifactStore",
    "ArtifactStoreStatistics",
    "BlobReader",
    "Chunk",
    "CleanupResult",
]

logger = logging.getLogger(__name__)

#: Default largest artifact (contract default of ``artifact_max_bytes``); ``None`` disables the check.
ARTIFACT_MAX_BYTES: Final = DEFAULT_ARTIFACT_MAX_BYTES
#: Default total of all blob sizes (contract default of ``artifact_storage_quota_bytes``).
ARTIFACT_QUOTA_BYTES: Final = DEFAULT_ARTIFACT_STORAGE_QUOTA_BYTES
#: Default seconds an orphaned temp file may stay before cleanup (``artifact_spool_ttl_seconds``).
ARTIFACT_SPOOL_TTL: Final = float(DEFAULT_ARTIFACT_SPOOL_TTL_SECONDS)
#: Longest pause between two cleanup rounds of a host, whatever the spool TTL.
CLEANUP_INTERVAL_MAX: Final = 300.0
#: Bytes collected before one disk write: large enough to amortise a worker hop and a syscall, small
#: enough that the two batches an upload holds stay a small constant.
WRITE_BATCH: Final = 1 * MiB
#: Bytes written between two ``fdatasync`` calls of an upload. Syncing as we go keeps the final fsync
#: (which the client waits for with its receive timeout) short, whatever the artifact size, and slows a
#: sender down to what the disk really absorbs instead of filling the page cache.
SYNC_EVERY: Final = 64 * MiB
#: Worker threads of the store's own executor: disk writes and reads block, and a few in parallel keep a
#: disk busy without letting many uploads pile up threads.
IO_WORKERS: Final = 4
#: Uploads in progress at once. Each holds up to two ``WRITE_BATCH`` buffers and an open file, so this
#: bounds the store's memory and descriptors; more are refused with ``TransferError``.
MAX_ACTIVE_UPLOADS: Final = 64
#: Longest artifact name (characters). Names are labels, never paths inside the store.
MAX_NAME_CHARS: Final = 1024
#: Longest owner agent id or compression label (characters).
MAX_LABEL_CHARS: Final = 256
#: Largest metadata file read at startup (real ones are well under 2 KiB).
MAX_METADATA_FILE: Final = 64 * KiB

#: What a stream of artifact bytes may yield. Pieces must not change once yielded (they are held until
#: written): the HTTP server's pieces are slices of immutable ``bytes``.
Chunk = bytes | bytearray | memoryview

_BLOB: Final = ".bin"
_META: Final = ".json"
_PART: Final = ".part"
_META_TMP: Final = ".json.tmp"
_SHA256_HEX: Final = frozenset("0123456789abcdef")


class _Meta(msgspec.Struct, frozen=True, kw_only=True):
    """What ``metadata/<id>.json`` holds (new fields get defaults; see the module docstring)."""

    artifact_id: str
    name: str = ""
    size_bytes: int = 0
    sha256: str = ""
    compression: str = ""
    created_at: float = 0.0
    expires_at: float = 0.0
    owner_agent_id: str = ""


_META_ENCODER: Final = msgspec.json.Encoder()
_META_DECODER: Final = msgspec.json.Decoder(_Meta)


class ArtifactStoreStatistics(msgspec.Struct, frozen=True, kw_only=True):
    """A snapshot of an :class:`ArtifactStore`'s counters."""

    artifacts: int
    used_bytes: int
    reserved_bytes: int
    active_uploads: int
    max_bytes: int | None
    quota_bytes: int | None
    created: int
    failed_uploads: int
    deleted: int
    expired: int
    stale_parts_removed: int
    bytes_received: int
    bytes_served: int


class CleanupResult(msgspec.Struct, frozen=True, kw_only=True):
    """What one cleanup round removed."""

    expired: int
    stale_parts: int


def _is_sha256_hex(value: str) -> bool:
    return len(value) == 64 and _SHA256_HEX.issuperset(value)


class _Upload:
    """One artifact being written (see the module docstring, steps 2-5)."""

    def __init__(self, store: ArtifactStore, meta: _Meta, declared: int | None, expected: str | None) -> None:
        self.store = store
        self.artifact_id = meta.artifact_id
        self.meta = meta
        self.declared = declared
        self.expected_sha256 = expected
        self.fd = -1
        self.hasher = hashlib.sha256()
        self.size = 0
        self.unsynced = 0
        self.reserved = 0
        self.committed = False
        self.released = False

    # --- on the caller's thread ------------------------------------------------------------------------

    def account(self, count: int) -> None:
        """Check ``count`` more bytes against the limits and reserve quota for them."""
        size = self.size + count
        store = self.store
        if store.max_bytes is not None and size > store.max_bytes:
            raise LimitExceededError(f"artifact is larger than the limit of {store.max_bytes} bytes")
        if self.declared is not None and size > self.declared:
            raise TransferError(f"artifact upload sent more than its declared {self.declared} bytes")
        if size > self.reserved:
            store._reserve(self, size - self.reserved)
        self.size = size

    def finish(self) -> _Meta:
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

    # --- blocking steps (a worker thread, or the caller's thread for create_from_file) ---------------------

    def open(self) -> None:
        path = self.store._part_path(self.artifact_id)
        try:
            self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
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
                os.fdatasync(self.fd)
                self.unsynced = 0
        except OSError as exc:
            raise io_error("write an artifact", exc) from exc

    def commit(self) -> None:
        store = self.store
        blob = store._blob_path(self.artifact_id)
        try:
            os.fsync(self.fd)
            os.close(self.fd)
            self.fd = -1
            os.replace(store._part_path(self.artifact_id), blob)
            fsync_dir(store.blobs_dir)
            store._write_metadata(self.meta)
        except OSError as exc:
            raise io_error("store an artifact", exc) from exc
        store._publish(self)

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
        store = self.store
        unlink_quietly(store._part_path(self.artifact_id))
        if self.committed:
            store._remove(self.artifact_id)
        else:
            unlink_quietly(store._meta_path(self.artifact_id))
            unlink_quietly(store._blob_path(self.artifact_id))
            unlink_quietly(store.tmp_dir / (self.artifact_id + _META_TMP))
        store._release(self)


class _Unset(enum.Enum):
    """Marks a keyword that was not given."""

    TOKEN = enum.auto()


class _Headers(Protocol):
    def get(self, name: str, default: Any = None, /) -> Any: ...


def _constant(url: str) -> Callable[[], str]:
    value = url.rstrip("/")
    return lambda: value


class ArtifactStore:
    """Host-owned artifact blobs (see the module docstring).

    ``host_url`` is the URL references name (a string, or a function asked each time: a host's address
    can change). Limits, with paglets 2.0's keywords and rules: ``max_artifact_bytes`` (``None`` or
    anything below 1: unlimited), ``quota_bytes`` (``None``: unlimited), ``spool_ttl_seconds`` (at least
    one second). ``max_bytes`` and ``spool_ttl``, when given, set the same two limits exactly instead
    (``max_bytes=0`` admits only empty artifacts; any positive TTL).
    """

    def __init__(
        self,
        root: Path | str,
        *,
        host_url: str | Callable[[], str] = "",
        max_artifact_bytes: int | None = ARTIFACT_MAX_BYTES,
        quota_bytes: int | None = ARTIFACT_QUOTA_BYTES,
        spool_ttl_seconds: float = DEFAULT_ARTIFACT_SPOOL_TTL_SECONDS,
        max_bytes: int | Literal[_Unset.TOKEN] | None = _Unset.TOKEN,
        spool_ttl: float | Literal[_Unset.TOKEN] = _Unset.TOKEN,
        clock: Callable[[], float] = time.time,
        executor: Executor | None = None,
    ) -> None:
        if max_bytes is _Unset.TOKEN:
            max_bytes = None if max_artifact_bytes is None or max_artifact_bytes <= 0 else max_artifact_bytes
        if spool_ttl is _Unset.TOKEN:
            spool_ttl = max(1.0, float(spool_ttl_seconds))
        if max_bytes is not None and max_bytes < 0:
            raise ValueError("max_bytes must be >= 0 or None")
        if quota_bytes is not None and quota_bytes < 0:
            raise ValueError("quota_bytes must be >= 0 or None")
        if not spool_ttl > 0:
            raise ValueError("spool_ttl must be positive")
        # absolute: blob paths are handed to paglet processes, whose working directory may differ
        self.root = Path(root).expanduser().resolve(strict=False)
        self.blobs_dir = self.root / "blobs"
        self.metadata_dir = self.root / "metadata"
        self.tmp_dir = self.root / "tmp"
        self.max_bytes = max_bytes
        self.quota_bytes = quota_bytes
        self.spool_ttl = float(spool_ttl)
        self._host_url = _constant(host_url) if isinstance(host_url, str) else host_url
        self._clock = clock
        self._lock = threading.Lock()
        self._index: dict[str, _Meta] = {}
        self._active: set[str] = set()
        self._used = 0
        self._reserved = 0
        self._counts = dict.fromkeys(
            ("created", "failed", "deleted", "expired", "stale", "received", "served"), 0
        )
        self._own_executor = executor is None
        self._executor_obj = executor
        for directory in (self.blobs_dir, self.metadata_dir, self.tmp_dir):
            directory.mkdir(parents=True, exist_ok=True)
        self._scan()

    def __enter__(self) -> ArtifactStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the store's own worker threads after the work they hold (a host calls it on stop).

        Uploads and downloads still running on the old workers fail and clean up. The store stays
        usable: a later call that needs workers starts new ones (so a stopped host can start again).
        """
        with self._lock:
            executor, self._executor_obj = self._executor_obj, None
        if executor is not None and self._own_executor:
            executor.shutdown(wait=True)

    @property
    def cleanup_interval(self) -> float:
        """Seconds between two cleanup rounds: ``min(spool_ttl, CLEANUP_INTERVAL_MAX)``."""
        return min(self.spool_ttl, CLEANUP_INTERVAL_MAX)

    @property
    def host_url(self) -> str:
        """The URL references of this store name (without a trailing ``/``)."""
        return self._host_url().rstrip("/")

    def set_host_url(self, host_url: str | Callable[[], str]) -> None:
        """Name references after ``host_url`` from now on (a string, or a function asked each time)."""
        self._host_url = _constant(host_url) if isinstance(host_url, str) else host_url

    @property
    def max_artifact_bytes(self) -> int:
        """``max_bytes`` as paglets 2.0 showed it: 0 when unlimited."""
        return 0 if self.max_bytes is None else self.max_bytes

    @property
    def spool_ttl_seconds(self) -> float:
        return self.spool_ttl

    # --- paths -----------------------------------------------------------------------------------------

    def _blob_path(self, artifact_id: str) -> Path:
        return self.blobs_dir / (artifact_id + _BLOB)

    def _meta_path(self, artifact_id: str) -> Path:
        return self.metadata_dir / (artifact_id + _META)

    def _part_path(self, artifact_id: str) -> Path:
        return self.tmp_dir / (artifact_id + _PART)

    def _executor(self) -> Executor:
        with self._lock:
            if self._executor_obj is None:
                if not self._own_executor:
                    raise TransferError("the artifact store is closed")
                self._executor_obj = ThreadPoolExecutor(IO_WORKERS, thread_name_prefix="paglets-artifacts")
            return self._executor_obj

    # --- creation --------------------------------------------------------------------------------------

    async def create_from_stream_async(
        self,
        chunks: AsyncIterable[Chunk],
        *,
        owner_agent_id: str = "",
        name: str = "",
        compression: str = "",
        expires_at: float = 0.0,
        expected_sha256: str | None = None,
        declared_size: int | None = None,
    ) -> ArtifactRef:
        """Store the bytes ``chunks`` yields as a new artifact (see the module docstring)."""
        executor = self._executor()
        upload = self._begin(owner_agent_id, name, compression, expires_at, expected_sha256, declared_size)
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
        return self._ref(upload.meta)

    def create_from_file(
        self,
        path: Path | str,
        *,
        owner_agent_id: str = "",
        name: str | None = None,
        compression: str = "",
        expires_at: float = 0.0,
        expected_sha256: str | None = None,
    ) -> ArtifactRef:
        """Copy a local regular file into the store while hashing it (blocking; for same-host use)."""
        source = Path(path)
        try:
            handle = source.open("rb", buffering=0)
        except OSError as exc:
            raise TransferError(f"cannot read {source}: {exc}") from exc
        with handle:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise TransferError(f"artifact source is not a regular file: {source}")
            size = info.st_size
            if self.max_bytes is not None and size > self.max_bytes:
                raise LimitExceededError(
                    f"{source} has {size} bytes, more than the artifact limit of {self.max_bytes}"
                )
            upload = self._begin(
                owner_agent_id,
                source.name if name is None else name,
                compression,
                expires_at,
                expected_sha256,
                None,
            )

            def read_into(buffer: bytearray) -> int:
                try:
                    return handle.readinto(buffer) or 0
                except OSError as exc:
                    raise TransferError(f"cannot read {source}: {exc}") from exc

            return self._write_blocking(upload, read_into, reserve=size)

    async def create_from_file_async(
        self,
        path: Path | str,
        *,
        owner_agent_id: str = "",
        name: str | None = None,
        compression: str = "",
        expires_at: float = 0.0,
        expected_sha256: str | None = None,
    ) -> ArtifactRef:
        """``create_from_file`` in the event loop's default executor (long copies must not hold the
        store's own workers, which serve HTTP uploads and downloads)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            None,
            lambda: self.create_from_file(
                path,
                owner_agent_id=owner_agent_id,
                name=name,
                compression=compression,
                expires_at=expires_at,
                expected_sha256=expected_sha256,
            ),
        )

    def create_from_path(
        self,
        source: str | Path,
        *,
        owner_agent_id: str = "",
        name: str | None = None,
        compression: str = "",
        expires_at: float = 0.0,
        expected_sha256: str | None = None,
    ) -> ArtifactWriteResult:
        """paglets 2.0's name for ``create_from_file``: the reference and the blob's path."""
        ref = self.create_from_file(
            source,
            owner_agent_id=owner_agent_id,
            name=name,
            compression=compression,
            expires_at=expires_at,
            expected_sha256=expected_sha256,
        )
        return ArtifactWriteResult(ref=ref, path=self._blob_path(ref.artifact_id))

    def create_from_stream(
        self,
        source: Any,
        *,
        size_bytes: int = -1,
        owner_agent_id: str = "",
        name: str = "",
        compression: str = "",
        expires_at: float = 0.0,
        expected_sha256: str | None = None,
    ) -> ArtifactWriteResult:
        """Store what a blocking binary reader (``source.read(n)``) yields until it returns ``b""``.

        ``size_bytes`` (-1: unknown) is the exact size, checked against the limit and the quota at once.
        """
        if isinstance(size_bytes, bool) or not isinstance(size_bytes, int):
            raise TransferError("size_bytes must be an integer")
        upload = self._begin(
            owner_agent_id,
            name,
            compression,
            expires_at,
            expected_sha256,
            None if size_bytes < 0 else size_bytes,
        )

        def read_into(buffer: bytearray) -> int:
            data = source.read(len(buffer))
            if not data:
                return 0
            count = len(data)
            if count > len(buffer):
                raise TransferError(f"artifact source returned {count} bytes for a read of {len(buffer)}")
            buffer[:count] = data
            return count

        ref = self._write_blocking(upload, read_into, reserve=0)
        return ArtifactWriteResult(ref=ref, path=self._blob_path(ref.artifact_id))

    def create_from_http_request(
        self,
        headers: _Headers,
        source: BinaryIO,
        *,
        owner_agent_id: str = "",
        name: str = "",
        compression: str = "",
        expires_at: float = 0.0,
        expected_sha256: str | None = None,
    ) -> ArtifactWriteResult:
        """Store a request body read from a blocking stream (``http.server``'s ``headers`` and ``rfile``):
        chunked when ``Transfer-Encoding`` says so, else ``Content-Length`` bytes (0 when absent)."""
        chunked = "chunked" in str(headers.get("Transfer-Encoding") or "").casefold()
        reader: LimitedReader | ChunkedReader
        if chunked:
            reader, size = ChunkedReader(source), -1
        else:
            text = str(headers.get("Content-Length") or "0").strip()
            if not text.isdigit():
                raise TransferError(f"invalid Content-Length {text[:32]!r}")
            size = int(text)
            reader = LimitedReader(source, size)
        return self.create_from_stream(
            reader,
            size_bytes=size,
            owner_agent_id=owner_agent_id,
            name=name,
            compression=compression,
            expires_at=expires_at,
            expected_sha256=expected_sha256,
        )

    def _write_blocking(
        self, upload: _Upload, read_into: Callable[[bytearray], int], *, reserve: int
    ) -> ArtifactRef:
        """Fill ``upload`` from ``read_into`` on this thread and commit it (undone on any failure)."""
        try:
            if reserve:
                self._reserve(upload, reserve)  # fail fast on the quota; growth is accounted as it comes
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
        return self._ref(upload.meta)

    def _begin(
        self,
        owner_agent_id: str,
        name: str,
        compression: str,
        expires_at: float,
        expected_sha256: str | None,
        declared_size: int | None,
    ) -> _Upload:
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
            if not _is_sha256_hex(expected_sha256):
                raise TransferError("expected SHA-256 must be 64 hex characters")
        if declared_size is not None:
            if isinstance(declared_size, bool) or not isinstance(declared_size, int) or declared_size < 0:
                raise TransferError("declared artifact size must be a non-negative integer")
            if self.max_bytes is not None and declared_size > self.max_bytes:
                raise LimitExceededError(
                    f"artifact of {declared_size} bytes exceeds the limit of {self.max_bytes} bytes"
                )
        meta = _Meta(
            artifact_id=uuid.uuid4().hex,
            name=name,
            compression=compression,
            created_at=self._clock(),
            expires_at=float(expires_at),
            owner_agent_id=owner_agent_id,
        )
        upload = _Upload(self, meta, declared_size, expected_sha256)
        with self._lock:
            if len(self._active) >= MAX_ACTIVE_UPLOADS:
                raise TransferError(
                    f"too many artifact uploads in progress (limit {MAX_ACTIVE_UPLOADS}); retry later"
                )
            if declared_size:
                self._reserve_locked(upload, declared_size)
            self._active.add(meta.artifact_id)
        return upload

    # --- accounting (all under the lock) -------------------------------------------------------------

    def _reserve(self, upload: _Upload, count: int) -> None:
        with self._lock:
            self._reserve_locked(upload, count)

    def _reserve_locked(self, upload: _Upload, count: int) -> None:
        quota = self.quota_bytes
        if quota is not None and self._used + self._reserved + count > quota:
            raise StorageQuotaError(
                f"artifact storage quota of {quota} bytes exceeded "
                f"({self._used} stored, {self._reserved} reserved by uploads, {count} more needed)"
            )
        self._reserved += count
        upload.reserved += count

    def _publish(self, upload: _Upload) -> None:
        meta = upload.meta
        with self._lock:
            self._index[meta.artifact_id] = meta
            self._used += meta.size_bytes
            self._reserved -= upload.reserved
            self._active.discard(meta.artifact_id)
            self._counts["created"] += 1
            self._counts["received"] += meta.size_bytes
            upload.committed = True
            upload.released = True

    def _release(self, upload: _Upload) -> None:
        """Give back what a failed upload held."""
        with self._lock:
            if not upload.released:
                upload.released = True
                self._reserved -= upload.reserved
                self._active.discard(upload.artifact_id)
            self._counts["failed"] += 1

    def _served(self, count: int) -> None:
        with self._lock:
            self._counts["served"] += count

    # --- metadata files ----------------------------------------------------------------------------------

    def _write_metadata(self, meta: _Meta) -> None:
        temp = self.tmp_dir / (meta.artifact_id + _META_TMP)
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, _META_ENCODER.encode(meta))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, self._meta_path(meta.artifact_id))
        fsync_dir(self.metadata_dir)

    def _read_metadata(self, path: Path) -> _Meta | None:
        try:
            with path.open("rb") as handle:
                raw = handle.read(MAX_METADATA_FILE + 1)
        except OSError as exc:
            logger.warning("cannot read artifact metadata %s: %s", path, exc)
            return None
        if len(raw) > MAX_METADATA_FILE:
            return None
        try:
            meta = _META_DECODER.decode(raw)
        except msgspec.DecodeError:
            return None
        if (
            meta.artifact_id != path.name[: -len(_META)]
            or meta.size_bytes < 0
            or not _is_sha256_hex(meta.sha256)
        ):
            return None
        return meta

    def _scan(self) -> None:
        """Rebuild the index and usage from disk; remove orphans and temp files (module docstring)."""
        blobs: dict[str, int] = {}
        for entry in os.scandir(self.blobs_dir):
            stem = entry.name[: -len(_BLOB)]
            if entry.name.endswith(_BLOB) and is_valid_artifact_id(stem) and entry.is_file():
                blobs[stem] = entry.stat().st_size
        for entry in os.scandir(self.metadata_dir):
            stem = entry.name[: -len(_META)]
            if not (entry.name.endswith(_META) and is_valid_artifact_id(stem)):
                continue
            meta = self._read_metadata(Path(entry.path))
            if meta is None or blobs.get(stem) != meta.size_bytes:
                logger.warning("removing damaged or orphaned artifact metadata %s", entry.path)
                unlink_quietly(Path(entry.path))
                continue
            self._index[stem] = meta
            self._used += meta.size_bytes
        for stem in blobs.keys() - self._index.keys():
            logger.warning("removing orphaned artifact blob %s", stem)
            unlink_quietly(self._blob_path(stem))
        for entry in os.scandir(self.tmp_dir):
            if entry.name.endswith((_PART, _META_TMP)) and entry.is_file():
                unlink_quietly(Path(entry.path))

    # --- queries -------------------------------------------------------------------------------------------

    def _ref(self, meta: _Meta) -> ArtifactRef:
        return ArtifactRef(
            host_url=self._host_url(),
            artifact_id=meta.artifact_id,
            name=meta.name,
            size_bytes=meta.size_bytes,
            sha256=meta.sha256,
            compression=meta.compression,
            created_at=meta.created_at,
            expires_at=meta.expires_at,
            owner_agent_id=meta.owner_agent_id,
        )

    def _get(self, artifact_id: str) -> _Meta:
        require_artifact_id(artifact_id)
        with self._lock:
            meta = self._index.get(artifact_id)
        if meta is None:
            raise TransferError(f"unknown artifact {artifact_id}")
        return meta

    def metadata(self, artifact_id: str) -> ArtifactRef:
        """The artifact's reference; ``TransferError`` for an unknown or malformed id."""
        return self._ref(self._get(artifact_id))

    def ref(self, artifact_id: str) -> ArtifactRef:
        """paglets 2.0's name for :meth:`metadata`."""
        return self.metadata(artifact_id)

    def __contains__(self, artifact_id: object) -> bool:
        with self._lock:
            return artifact_id in self._index

    def list(self, owner_agent_id: str | None = None) -> list[ArtifactRef]:
        """Every artifact (of one owner when given), oldest first."""
        with self._lock:
            metas = [
                m
                for m in self._index.values()
                if owner_agent_id is None or m.owner_agent_id == owner_agent_id
            ]
        metas.sort(key=lambda m: m.created_at)
        return [self._ref(m) for m in metas]

    def usage(self) -> int:
        """Bytes of all stored blobs (uploads in progress not included)."""
        with self._lock:
            return self._used

    def statistics(self) -> ArtifactStoreStatistics:
        with self._lock:
            counts = self._counts
            return ArtifactStoreStatistics(
                artifacts=len(self._index),
                used_bytes=self._used,
                reserved_bytes=self._reserved,
                active_uploads=len(self._active),
                max_bytes=self.max_bytes,
                quota_bytes=self.quota_bytes,
                created=counts["created"],
                failed_uploads=counts["failed"],
                deleted=counts["deleted"],
                expired=counts["expired"],
                stale_parts_removed=counts["stale"],
                bytes_received=counts["received"],
                bytes_served=counts["served"],
            )

    def open_blob(self, artifact_id: str) -> BlobReader:
        """Open the artifact for reading (``TransferError`` when unknown); close the reader."""
        meta = self._get(artifact_id)
        try:
            fd = os.open(self._blob_path(artifact_id), os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError as exc:
            raise TransferError(f"unknown artifact {artifact_id}") from exc
        except OSError as exc:
            raise io_error("open an artifact", exc) from exc
        return BlobReader(self._ref(meta), fd, self._executor(), self._served)

    def blob_path(self, artifact_id: str) -> Path:
        """Where the artifact's bytes are (for same-host copies); ``TransferError`` when unknown."""
        self._get(artifact_id)
        return self._blob_path(artifact_id)

    def open_reader(self, artifact_id: str) -> BinaryIO:
        """The artifact's bytes as a blocking binary file (close it); ``TransferError`` when unknown."""
        self._get(artifact_id)
        try:
            return self._blob_path(artifact_id).open("rb")
        except FileNotFoundError as exc:
            raise TransferError(f"unknown artifact {artifact_id}") from exc
        except OSError as exc:
            raise io_error("open an artifact", exc) from exc

    def export_to_path(
        self, artifact_id: str, target: str | Path, *, expected_sha256: str | None = None
    ) -> ArtifactRef:
        """Copy the artifact to ``target`` (parents created; size and SHA-256 checked; atomic rename).

        ``expected_sha256`` (any case) must match the stored hash, else ``TransferError`` and no file.
        """
        ref = self.metadata(artifact_id)
        if expected_sha256 and expected_sha256.lower() != ref.sha256:
            raise TransferError(
                f"artifact checksum mismatch: expected {expected_sha256}, the store has {ref.sha256}"
            )
        copy_verified(
            self._blob_path(artifact_id), target, size=ref.size_bytes, sha256=ref.sha256, what=artifact_id
        )
        self._served(ref.size_bytes)
        return ref

    # --- removal -------------------------------------------------------------------------------------------

    def _remove(self, artifact_id: str, counter: str = "deleted") -> bool:
        with self._lock:
            meta = self._index.pop(artifact_id, None)
            if meta is None:
                return False
            self._used -= meta.size_bytes
            self._counts[counter] += 1
        unlink_quietly(self._meta_path(artifact_id))  # metadata first: a crash leaves only an orphan blob
        unlink_quietly(self._blob_path(artifact_id))
        return True

    def delete(self, artifact_id: str) -> bool:
        """Delete an artifact: ``False`` for an unknown id, ``TransferError`` for a malformed one."""
        return self._remove(require_artifact_id(artifact_id))

    def delete_owner(self, owner_agent_id: str) -> None:
        """paglets 2.0's name for :meth:`delete_owned_by`."""
        self.delete_owned_by(owner_agent_id)

    def delete_owned_by(self, agent_id: str) -> int:
        """Delete every artifact ``agent_id`` owns (none for an empty id); how many were deleted."""
        if not agent_id:
            return 0
        with self._lock:
            owned = [i for i, m in self._index.items() if m.owner_agent_id == agent_id]
        return sum(self._remove(i) for i in owned)

    def cleanup_expired(self, now: float | None = None) -> int:
        """Delete artifacts whose ``expires_at`` (non-zero) is at or before ``now``; how many."""
        now = self._clock() if now is None else now
        with self._lock:
            expired = [i for i, m in self._index.items() if 0 < m.expires_at <= now]
        return sum(self._remove(i, "expired") for i in expired)

    def cleanup_stale_parts(self, now: float | None = None) -> int:
        """Delete temp files older than ``spool_ttl`` that no upload in progress owns; how many."""
        cutoff = (self._clock() if now is None else now) - self.spool_ttl
        removed = 0
        for entry in os.scandir(self.tmp_dir):
            if not entry.name.endswith((_PART, _META_TMP)):
                continue
            with self._lock:
                if entry.name.split(".", 1)[0] in self._active:
                    continue
            try:
                if not entry.is_file() or entry.stat().st_mtime > cutoff:
                    continue
            except FileNotFoundError:
                continue
            unlink_quietly(Path(entry.path))
            removed += 1
        with self._lock:
            self._counts["stale"] += removed
        return removed

    def cleanup_temporary(self, *, now: float | None = None) -> None:
        """One cleanup round on this thread: stale temp files, then expired artifacts (2.0's name)."""
        self.cleanup_stale_parts(now)
        self.cleanup_expired(now)

    # --- the same on a running event loop (disk work in the executor) ------------------------------------

    async def delete_async(self, artifact_id: str) -> bool:
        require_artifact_id(artifact_id)
        return await asyncio.get_running_loop().run_in_executor(self._executor(), self.delete, artifact_id)

    async def delete_owned_by_async(self, agent_id: str) -> int:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor(), self.delete_owned_by, agent_id)

    async def cleanup_async(self, now: float | None = None) -> CleanupResult:
        """One cleanup round (expired artifacts, then stale temp files)."""
        loop = asyncio.get_running_loop()
        executor = self._executor()
        expired = await loop.run_in_executor(executor, self.cleanup_expired, now)
        stale = await loop.run_in_executor(executor, self.cleanup_stale_parts, now)
        return CleanupResult(expired=expired, stale_parts=stale)
