"""Artifacts and registered files (docs/implementing/files.md): the public names of paglets 2.0's
``paglets.artifacts`` module.

- ``ArtifactRef`` and ``PagletFileRef``, the references a paglet handles, with the id and file-mode
  rules (defined in ``paglets.core._artifact_refs``, since the authoring API uses them);
- ``ArtifactStore``, the blob store a host keeps under ``<persistence_dir>/artifacts``
  (``paglets.artifacts._store``; its on-disk index and quota in ``_index``, the write path in
  ``_upload``, readers and file-level helpers in ``_io``);
- the helpers 2.0 exported here: ``ArtifactWriteResult``, ``file_sha256``, ``copy_stream``,
  ``copy_path``, ``safe_target_filename``, ``paglet_file_ref_from_path`` and the ``DEFAULT_ARTIFACT_*``
  limits (``paglets.artifacts._fileops``).

This package sits between the authoring API and the runtime: it imports ``paglets.core`` and
``paglets.wire`` only; the host's routes and the paglet-side access live in ``paglets.runtime``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from paglets.artifacts._fileops import (
    DEFAULT_ARTIFACT_MAX_BYTES,
    DEFAULT_ARTIFACT_SPOOL_TTL_SECONDS,
    DEFAULT_ARTIFACT_STORAGE_QUOTA_BYTES,
    STREAM_CHUNK_BYTES,
    ArtifactWriteResult,
    copy_path,
    copy_stream,
    file_sha256,
    paglet_file_ref_from_path,
    safe_target_filename,
)
from paglets.core._artifact_refs import (
    ARTIFACT_COPY,
    ARTIFACT_MOVE,
    ARTIFACT_STATUS_AVAILABLE,
    ARTIFACT_STATUS_FAILED,
    ARTIFACT_STATUS_REGISTERED,
    FILE_MODES,
    ArtifactRef,
    PagletFileRef,
    is_valid_artifact_id,
    normalize_file_mode,
    require_artifact_id,
)

if TYPE_CHECKING:
    from paglets.artifacts._store import ArtifactStore

__all__ = [
    "ARTIFACT_COPY",
    "ARTIFACT_MOVE",
    "ARTIFACT_STATUS_AVAILABLE",
    "ARTIFACT_STATUS_FAILED",
    "ARTIFACT_STATUS_REGISTERED",
    "DEFAULT_ARTIFACT_MAX_BYTES",
    "DEFAULT_ARTIFACT_SPOOL_TTL_SECONDS",
    "DEFAULT_ARTIFACT_STORAGE_QUOTA_BYTES",
    "FILE_MODES",
    "STREAM_CHUNK_BYTES",
    "ArtifactRef",
    "ArtifactStore",
    "ArtifactWriteResult",
    "PagletFileRef",
    "copy_path",
    "copy_stream",
    "file_sha256",
    "is_valid_artifact_id",
    "normalize_file_mode",
    "paglet_file_ref_from_path",
    "require_artifact_id",
    "safe_target_filename",
]


def __getattr__(name: str) -> Any:
    # The store (threads, asyncio, disk I/O) is imported on first use: paglet processes import this
    # package for the references only.
    if name == "ArtifactStore":
        from paglets.artifacts._store import ArtifactStore

        return ArtifactStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
