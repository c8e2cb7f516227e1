"""The artifact store's files and bookkeeping: layout, metadata files, in-memory index, quota.

Layout under the store's root (a host uses ``<persistence_dir>/artifacts``)::

    blobs/<id>.bin        the bytes of one artifact
    metadata/<id>.json    its metadata (msgspec JSON of :class:`Meta`; the host URL is not stored)
    tmp/<id>.part         an upload in progress
    tmp/<id>.json.tmp     metadata being written

:class:`StoreIndex` owns that layout and everything the store counts, under one lock:

- the index ``{artifact id: Meta}`` of committed artifacts, built by one scan at construction
  (:meth:`StoreIndex.scan` removes orphans: a blob without metadata, metadata without a blob or with a
  different size, unreadable metadata, and every leftover temp file);
- the quota: ``used`` (sum of committed blob sizes) plus ``reserved`` (what uploads in progress hold, one
  :class:`Reservation` each) never passes ``quota_bytes``; nothing walks the directory on a write;
- the uploads in progress (at most ``MAX_ACTIVE_UPLOADS``), so housekeeping never removes their files;
- the counters behind ``ArtifactStore.statistics()``.

Crash consistency: a blob is renamed into place before its metadata (the upload path,
``paglets.artifacts._upload``), and :meth:`StoreIndex.remove` deletes the metadata before the blob, so
after a crash only orphans can exist, which the next scan removes.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import msgspec

from paglets import _oscompat
from paglets.artifacts._io import fsync_dir, unlink_quietly
from paglets.core._artifact_refs import is_valid_artifact_id, require_artifact_id
from paglets.core.errors import StorageQuotaError, TransferError
from paglets.wire.limits import KiB

__all__ = [
    "MAX_ACTIVE_UPLOADS",
    "MAX_METADATA_FILE",
    "ArtifactStoreStatistics",
    "Meta",
    "Reservation",
    "StoreIndex",
    "is_sha256_hex",
]

logger = logging.getLogger("paglets.artifacts")

#: Uploads in progress at once. Each holds up to two ``WRITE_BATCH`` buffers and an open file, so this
#: bounds the store's memory and descriptors; more are refused with ``TransferError``.
MAX_ACTIVE_UPLOADS: Final = 64
#: Largest metadata file read at startup (real ones are well under 2 KiB).
MAX_METADATA_FILE: Final = 64 * KiB

_BLOB: Final = ".bin"
_META: Final = ".json"
_PART: Final = ".part"
_META_TMP: Final = ".json.tmp"
_SHA256_HEX: Final = frozenset("0123456789abcdef")


def is_sha256_hex(value: str) -> bool:
    return len(value) == 64 and _SHA256_HEX.issuperset(value)


class Meta(msgspec.Struct, frozen=True, kw_only=True):
    """What ``metadata/<id>.json`` holds (new fields get defaults)."""

    artifact_id: str
    name: str = ""
    size_bytes: int = 0
    sha256: str = ""
    compression: str = ""
    created_at: float = 0.0
    expires_at: float = 0.0
    owner_agent_id: str = ""


_META_ENCODER: Final = msgspec.json.Encoder()
_META_DECODER: Final = msgspec.json.Decoder(Meta)


class ArtifactStoreStatistics(msgspec.Struct, frozen=True, kw_only=True):
    """A snapshot of an ``ArtifactStore``'s counters."""

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


@dataclass(slots=True)
class Reservation:
    """What one upload in progress holds: quota bytes, and its place among the active uploads."""

    artifact_id: str
    reserved: int = 0
    committed: bool = False
    released: bool = False


class StoreIndex:
    """See the module docstring. ``quota_bytes`` ``None`` is unlimited."""

    def __init__(self, root: Path, quota_bytes: int | None) -> None:
        self.root = root
        self.blobs_dir = root / "blobs"
        self.metadata_dir = root / "metadata"
        self.tmp_dir = root / "tmp"
        self.quota_bytes = quota_bytes
        self.lock = threading.Lock()
        self._index: dict[str, Meta] = {}
        self._active: set[str] = set()
        self._used = 0
        self._reserved = 0
        self._counts = dict.fromkeys(
            ("created", "failed", "deleted", "expired", "stale", "received", "served"), 0
        )
        for directory in (self.blobs_dir, self.metadata_dir, self.tmp_dir):
            directory.mkdir(parents=True, exist_ok=True)
        self.scan()

    # --- paths -----------------------------------------------------------------------------------------

    def blob_path(self, artifact_id: str) -> Path:
        return self.blobs_dir / (artifact_id + _BLOB)

    def meta_path(self, artifact_id: str) -> Path:
        return self.metadata_dir / (artifact_id + _META)

    def part_path(self, artifact_id: str) -> Path:
        return self.tmp_dir / (artifact_id + _PART)

    def meta_tmp_path(self, artifact_id: str) -> Path:
        return self.tmp_dir / (artifact_id + _META_TMP)

    # --- uploads and the quota -------------------------------------------------------------------------

    def begin(self, artifact_id: str, declared: int | None) -> Reservation:
        """Admit a new upload (``TransferError`` past ``MAX_ACTIVE_UPLOADS``), reserving ``declared``."""
        reservation = Reservation(artifact_id)
        with self.lock:
            if len(self._active) >= MAX_ACTIVE_UPLOADS:
                raise TransferError(
                    f"too many artifact uploads in progress (limit {MAX_ACTIVE_UPLOADS}); retry later"
                )
            if declared:
                self._reserve_locked(reservation, declared)
            self._active.add(artifact_id)
        return reservation

    def reserve(self, reservation: Reservation, count: int) -> None:
        """Hold ``count`` more bytes for an upload; ``StorageQuotaError`` when the quota is passed."""
        with self.lock:
            self._reserve_locked(reservation, count)

    def _reserve_locked(self, reservation: Reservation, count: int) -> None:
        quota = self.quota_bytes
        if quota is not None and self._used + self._reserved + count > quota:
            raise StorageQuotaError(
                f"artifact storage quota of {quota} bytes exceeded "
                f"({self._used} stored, {self._reserved} reserved by uploads, {count} more needed)"
            )
        self._reserved += count
        reservation.reserved += count

    def publish(self, reservation: Reservation, meta: Meta) -> None:
        """Make a committed upload visible: index it, turn its reservation into used bytes."""
        with self.lock:
            self._index[meta.artifact_id] = meta
            self._used += meta.size_bytes
            self._reserved -= reservation.reserved
            self._active.discard(meta.artifact_id)
            self._counts["created"] += 1
            self._counts["received"] += meta.size_bytes
            reservation.committed = True
            reservation.released = True

    def release(self, reservation: Reservation) -> None:
        """Give back what a failed upload held."""
        with self.lock:
            if not reservation.released:
                reservation.released = True
                self._reserved -= reservation.reserved
                self._active.discard(reservation.artifact_id)
            self._counts["failed"] += 1

    def served(self, count: int) -> None:
        with self.lock:
            self._counts["served"] += count

    # --- metadata files ----------------------------------------------------------------------------------

    def write_metadata(self, meta: Meta) -> None:
        """Write ``metadata/<id>.json`` atomically (temp file, fsync, rename, directory fsync)."""
        temp = self.meta_tmp_path(meta.artifact_id)
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | _oscompat.O_CLOEXEC, 0o600)
        try:
            os.write(fd, _META_ENCODER.encode(meta))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, self.meta_path(meta.artifact_id))
        fsync_dir(self.metadata_dir)

    def _read_metadata(self, path: Path) -> Meta | None:
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
            or not is_sha256_hex(meta.sha256)
        ):
            return None
        return meta

    def scan(self) -> None:
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
            unlink_quietly(self.blob_path(stem))
        for entry in os.scandir(self.tmp_dir):
            if entry.name.endswith((_PART, _META_TMP)) and entry.is_file():
                unlink_quietly(Path(entry.path))

    # --- queries -------------------------------------------------------------------------------------------

    def get(self, artifact_id: str) -> Meta:
        """The metadata of a committed artifact; ``TransferError`` for an unknown or malformed id."""
        require_artifact_id(artifact_id)
        with self.lock:
            meta = self._index.get(artifact_id)
        if meta is None:
            raise TransferError(f"unknown artifact {artifact_id}")
        return meta

    def __contains__(self, artifact_id: object) -> bool:
        with self.lock:
            return artifact_id in self._index

    def metas(self, owner_agent_id: str | None = None) -> list[Meta]:
        """Every artifact (of one owner when given), oldest first."""
        with self.lock:
            metas = [
                m
                for m in self._index.values()
                if owner_agent_id is None or m.owner_agent_id == owner_agent_id
            ]
        metas.sort(key=lambda m: m.created_at)
        return metas

    def usage(self) -> int:
        with self.lock:
            return self._used

    def statistics(self, max_bytes: int | None) -> ArtifactStoreStatistics:
        with self.lock:
            counts = self._counts
            return ArtifactStoreStatistics(
                artifacts=len(self._index),
                used_bytes=self._used,
                reserved_bytes=self._reserved,
                active_uploads=len(self._active),
                max_bytes=max_bytes,
                quota_bytes=self.quota_bytes,
                created=counts["created"],
                failed_uploads=counts["failed"],
                deleted=counts["deleted"],
                expired=counts["expired"],
                stale_parts_removed=counts["stale"],
                bytes_received=counts["received"],
                bytes_served=counts["served"],
            )

    # --- removal -------------------------------------------------------------------------------------------

    def remove(self, artifact_id: str, counter: str = "deleted") -> bool:
        """Delete a committed artifact (metadata first); ``False`` when it is not in the index."""
        with self.lock:
            meta = self._index.pop(artifact_id, None)
            if meta is None:
                return False
            self._used -= meta.size_bytes
            self._counts[counter] += 1
        unlink_quietly(self.meta_path(artifact_id))  # metadata first: a crash leaves only an orphan blob
        unlink_quietly(self.blob_path(artifact_id))
        return True

    def owned_by(self, agent_id: str) -> list[str]:
        with self.lock:
            return [i for i, m in self._index.items() if m.owner_agent_id == agent_id]

    def expired(self, now: float) -> list[str]:
        """Ids whose ``expires_at`` (non-zero) is at or before ``now``."""
        with self.lock:
            return [i for i, m in self._index.items() if 0 < m.expires_at <= now]

    def remove_stale_parts(self, cutoff: float) -> int:
        """Delete temp files last modified at or before ``cutoff`` that no upload in progress owns."""
        removed = 0
        for entry in os.scandir(self.tmp_dir):
            if not entry.name.endswith((_PART, _META_TMP)):
                continue
            with self.lock:
                if entry.name.split(".", 1)[0] in self._active:
                    continue
            try:
                if not entry.is_file() or entry.stat().st_mtime > cutoff:
                    continue
            except FileNotFoundError:
                continue
            unlink_quietly(Path(entry.path))
            removed += 1
        with self.lock:
            self._counts["stale"] += removed
        return removed
