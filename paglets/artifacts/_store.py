"""The host's artifact store: blobs named by uuid, with JSON metadata (docs/implementing/files.md).

:class:`ArtifactStore` is the public face; its parts are

- ``paglets.artifacts._index``: the layout under ``root`` (``blobs/``, ``metadata/``, ``tmp/``), the
  metadata files, the in-memory index, the quota and the counters, and the scan that removes what a crash
  left behind (only orphans can exist: blobs are renamed into place before their metadata, and removed
  after it);
- ``paglets.artifacts._upload``: writing one new artifact, with every check (limits, quota, declared
  size, SHA-256) and the guarantee that a failed or cancelled upload leaves nothing on disk;
- ``paglets.artifacts._io``: the blob reader, same-host copies and the request-body readers.

Ids are uuid4 values as 32 lowercase hex characters; every id taken from outside goes through
``require_artifact_id`` before it is used in a path.

Creation: ``create_from_stream_async`` on the event loop (disk work in the store's bounded executor);
``create_from_file``, ``create_from_path`` and ``create_from_stream`` from any thread. The in-memory index
answers ``metadata``, ``list`` and ``usage`` without disk I/O.

Reads: ``open_blob`` opens the blob at once (a concurrent delete does not break a download in progress)
and returns a :class:`BlobReader` that yields ``READ_CHUNK`` pieces, read with ``os.pread`` in the
executor one chunk ahead of the consumer; ``export_to_path`` copies a blob to a file (size and SHA-256
checked, atomic rename).

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

Limits of the store (not in ``paglets.wire.limits``, which the store does not own): ``ARTIFACT_MAX_BYTES``,
``ARTIFACT_QUOTA_BYTES``, ``ARTIFACT_SPOOL_TTL``, ``CLEANUP_INTERVAL_MAX`` and ``IO_WORKERS`` here;
``WRITE_BATCH``, ``SYNC_EVERY``, ``MAX_NAME_CHARS``, ``MAX_LABEL_CHARS`` in ``_upload``;
``MAX_ACTIVE_UPLOADS``, ``MAX_METADATA_FILE`` in ``_index``; ``MAX_BATCH_PIECES``, ``READ_CHUNK`` in
``_io`` (all re-exported here).
"""

from __future__ import annotations

import asyncio
import enum
import os
import stat
import threading
import time
from collections.abc import AsyncIterable, Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from pathlib import Path
from typing import Any, BinaryIO, Final, Literal, Protocol

import msgspec

from paglets import _oscompat
from paglets.artifacts import _upload
from paglets.artifacts._fileops import (
    DEFAULT_ARTIFACT_MAX_BYTES,
    DEFAULT_ARTIFACT_SPOOL_TTL_SECONDS,
    DEFAULT_ARTIFACT_STORAGE_QUOTA_BYTES,
    ArtifactWriteResult,
)
from paglets.artifacts._index import (
    MAX_ACTIVE_UPLOADS,
    MAX_METADATA_FILE,
    ArtifactStoreStatistics,
    Meta,
    StoreIndex,
)
from paglets.artifacts._io import (
    MAX_BATCH_PIECES,
    READ_CHUNK,
    BlobReader,
    ChunkedReader,
    LimitedReader,
    copy_verified,
    io_error,
)
from paglets.artifacts._upload import (
    MAX_LABEL_CHARS,
    MAX_NAME_CHARS,
    SYNC_EVERY,
    WRITE_BATCH,
    Chunk,
    Upload,
)
from paglets.core._artifact_refs import ArtifactRef, require_artifact_id
from paglets.core.errors import LimitExceededError, TransferError

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

#: Default largest artifact (contract default of ``artifact_max_bytes``); ``None`` disables the check.
ARTIFACT_MAX_BYTES: Final = DEFAULT_ARTIFACT_MAX_BYTES
#: Default total of all blob sizes (contract default of ``artifact_storage_quota_bytes``).
ARTIFACT_QUOTA_BYTES: Final = DEFAULT_ARTIFACT_STORAGE_QUOTA_BYTES
#: Default seconds an orphaned temp file may stay before cleanup (``artifact_spool_ttl_seconds``).
ARTIFACT_SPOOL_TTL: Final = float(DEFAULT_ARTIFACT_SPOOL_TTL_SECONDS)
#: Longest pause between two cleanup rounds of a host, whatever the spool TTL.
CLEANUP_INTERVAL_MAX: Final = 300.0
#: Worker threads of the store's own executor: disk writes and reads block, and a few in parallel keep a
#: disk busy without letting many uploads pile up threads.
IO_WORKERS: Final = 4


class CleanupResult(msgspec.Struct, frozen=True, kw_only=True):
    """What one cleanup round removed."""

    expired: int
    stale_parts: int


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
        self.max_bytes = max_bytes
        self.spool_ttl = float(spool_ttl)
        self._host_url = _constant(host_url) if isinstance(host_url, str) else host_url
        self._clock = clock
        self._lock = threading.Lock()  # guards the executor; the index has its own lock
        self._own_executor = executor is None
        self._executor_obj = executor
        self._index = StoreIndex(self.root, quota_bytes)
        self.blobs_dir = self._index.blobs_dir
        self.metadata_dir = self._index.metadata_dir
        self.tmp_dir = self._index.tmp_dir

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

    @property
    def quota_bytes(self) -> int | None:
        """Total bytes of all blobs the store may hold (``None``: unlimited); may be changed."""
        return self._index.quota_bytes

    @quota_bytes.setter
    def quota_bytes(self, value: int | None) -> None:
        if value is not None and value < 0:
            raise ValueError("quota_bytes must be >= 0 or None")
        self._index.quota_bytes = value

    def _executor(self) -> Executor:
        with self._lock:
            if self._executor_obj is None:
                if not self._own_executor:
                    raise TransferError("the artifact store is closed")
                self._executor_obj = ThreadPoolExecutor(IO_WORKERS, thread_name_prefix="paglets-artifacts")
            return self._executor_obj

    # --- creation --------------------------------------------------------------------------------------

    def _begin(
        self,
        owner_agent_id: str,
        name: str,
        compression: str,
        expires_at: float,
        expected_sha256: str | None,
        declared_size: int | None,
    ) -> Upload:
        return _upload.begin(
            self._index,
            self.max_bytes,
            created_at=self._clock(),
            owner_agent_id=owner_agent_id,
            name=name,
            compression=compression,
            expires_at=expires_at,
            expected_sha256=expected_sha256,
            declared_size=declared_size,
        )

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
        """Store the bytes ``chunks`` yields as a new artifact (``paglets.artifacts._upload``)."""
        executor = self._executor()
        upload = self._begin(owner_agent_id, name, compression, expires_at, expected_sha256, declared_size)
        return self._ref(await _upload.write_async(upload, chunks, executor))

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

            return self._ref(_upload.write_blocking(upload, read_into, reserve=size))

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
        return ArtifactWriteResult(ref=ref, path=self._index.blob_path(ref.artifact_id))

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

        ref = self._ref(_upload.write_blocking(upload, read_into, reserve=0))
        return ArtifactWriteResult(ref=ref, path=self._index.blob_path(ref.artifact_id))

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

    # --- queries -------------------------------------------------------------------------------------------

    def _ref(self, meta: Meta) -> ArtifactRef:
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

    def metadata(self, artifact_id: str) -> ArtifactRef:
        """The artifact's reference; ``TransferError`` for an unknown or malformed id."""
        return self._ref(self._index.get(artifact_id))

    def ref(self, artifact_id: str) -> ArtifactRef:
        """paglets 2.0's name for :meth:`metadata`."""
        return self.metadata(artifact_id)

    def __contains__(self, artifact_id: object) -> bool:
        return artifact_id in self._index

    def list(self, owner_agent_id: str | None = None) -> list[ArtifactRef]:
        """Every artifact (of one owner when given), oldest first."""
        return [self._ref(m) for m in self._index.metas(owner_agent_id)]

    def usage(self) -> int:
        """Bytes of all stored blobs (uploads in progress not included)."""
        return self._index.usage()

    def statistics(self) -> ArtifactStoreStatistics:
        return self._index.statistics(self.max_bytes)

    # --- reads ---------------------------------------------------------------------------------------------

    def open_blob(self, artifact_id: str) -> BlobReader:
        """Open the artifact for reading (``TransferError`` when unknown); close the reader."""
        meta = self._index.get(artifact_id)
        try:
            fd = os.open(self._index.blob_path(artifact_id), os.O_RDONLY | _oscompat.O_CLOEXEC)
        except FileNotFoundError as exc:
            raise TransferError(f"unknown artifact {artifact_id}") from exc
        except OSError as exc:
            raise io_error("open an artifact", exc) from exc
        return BlobReader(self._ref(meta), fd, self._executor(), self._index.served)

    def blob_path(self, artifact_id: str) -> Path:
        """Where the artifact's bytes are (for same-host copies); ``TransferError`` when unknown."""
        self._index.get(artifact_id)
        return self._index.blob_path(artifact_id)

    def open_reader(self, artifact_id: str) -> BinaryIO:
        """The artifact's bytes as a blocking binary file (close it); ``TransferError`` when unknown."""
        self._index.get(artifact_id)
        try:
            return self._index.blob_path(artifact_id).open("rb")
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
            self._index.blob_path(artifact_id),
            target,
            size=ref.size_bytes,
            sha256=ref.sha256,
            what=artifact_id,
        )
        self._index.served(ref.size_bytes)
        return ref

    # --- removal -------------------------------------------------------------------------------------------

    def delete(self, artifact_id: str) -> bool:
        """Delete an artifact: ``False`` for an unknown id, ``TransferError`` for a malformed one."""
        return self._index.remove(require_artifact_id(artifact_id))

    def delete_owner(self, owner_agent_id: str) -> None:
        """paglets 2.0's name for :meth:`delete_owned_by`."""
        self.delete_owned_by(owner_agent_id)

    def delete_owned_by(self, agent_id: str) -> int:
        """Delete every artifact ``agent_id`` owns (none for an empty id); how many were deleted."""
        if not agent_id:
            return 0
        return sum(self._index.remove(i) for i in self._index.owned_by(agent_id))

    def cleanup_expired(self, now: float | None = None) -> int:
        """Delete artifacts whose ``expires_at`` (non-zero) is at or before ``now``; how many."""
        now = self._clock() if now is None else now
        return sum(self._index.remove(i, "expired") for i in self._index.expired(now))

    def cleanup_stale_parts(self, now: float | None = None) -> int:
        """Delete temp files older than ``spool_ttl`` that no upload in progress owns; how many."""
        return self._index.remove_stale_parts((self._clock() if now is None else now) - self.spool_ttl)

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
