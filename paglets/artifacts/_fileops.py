"""Local-file helpers of paglets 2.0's ``paglets.artifacts`` module (re-exported there).

``ArtifactWriteResult`` (what ``ArtifactStore.create_from_path``/``create_from_stream`` return),
``file_sha256``, ``copy_stream``, ``copy_path`` (atomic: temp file beside the target, then rename),
``safe_target_filename``, ``paglet_file_ref_from_path`` and the ``DEFAULT_ARTIFACT_*`` limits.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Protocol

from paglets.core._artifact_refs import ArtifactRef, PagletFileRef, normalize_file_mode
from paglets.core.errors import TransferError

__all__ = [
    "DEFAULT_ARTIFACT_MAX_BYTES",
    "DEFAULT_ARTIFACT_SPOOL_TTL_SECONDS",
    "DEFAULT_ARTIFACT_STORAGE_QUOTA_BYTES",
    "STREAM_CHUNK_BYTES",
    "ArtifactWriteResult",
    "copy_path",
    "copy_stream",
    "file_sha256",
    "paglet_file_ref_from_path",
    "safe_target_filename",
]

#: Largest artifact a host stores by default (``Host(artifact_max_bytes=...)``).
DEFAULT_ARTIFACT_MAX_BYTES: Final = 1024**3
#: Total bytes of all artifacts a host stores by default (``artifact_storage_quota_bytes``).
DEFAULT_ARTIFACT_STORAGE_QUOTA_BYTES: Final = 10 * 1024**3
#: Seconds an abandoned partial upload may stay before cleanup (``artifact_spool_ttl_seconds``).
DEFAULT_ARTIFACT_SPOOL_TTL_SECONDS: Final = 24 * 60 * 60
#: Bytes read or written per step when artifact bytes are copied.
STREAM_CHUNK_BYTES: Final = 1024 * 1024


@dataclass(frozen=True, slots=True)
class ArtifactWriteResult:
    """A new artifact's reference and where its bytes are in the store."""

    ref: ArtifactRef
    path: Path


class _Readable(Protocol):
    def read(self, size: int = ..., /) -> bytes | bytearray | memoryview | None: ...


class _Writable(Protocol):
    def write(self, data: bytes, /) -> object: ...


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of a file (lowercase hex), read in ``STREAM_CHUNK_BYTES`` pieces."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        while chunk := handle.read(STREAM_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def copy_stream(
    source: _Readable, target: _Writable, *, expected_bytes: int | None = None
) -> tuple[int, str]:
    """Copy ``source.read()`` pieces to ``target.write()``; ``(bytes copied, SHA-256)``.

    ``TransferError`` when ``expected_bytes`` is given and a different count was copied.
    """
    digest = hashlib.sha256()
    written = 0
    while chunk := source.read(STREAM_CHUNK_BYTES):
        data = bytes(chunk)
        target.write(data)
        digest.update(data)
        written += len(data)
    if expected_bytes is not None and written != expected_bytes:
        raise TransferError(f"artifact size mismatch: expected {expected_bytes}, got {written}")
    return written, digest.hexdigest()


def copy_path(source: str | Path, target: str | Path) -> None:
    """Copy a file so that ``target`` appears complete or not at all (temp file beside it, then rename)."""
    destination = Path(target)
    destination.parent.mkdir(parents=True, exist_ok=True)
    part = destination.with_name(f".{destination.name}.{uuid.uuid4().hex}.part")
    try:
        shutil.copyfile(source, part)
        os.replace(part, destination)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            part.unlink()
        raise


def safe_target_filename(name: str) -> str:
    """``name`` reduced to letters, digits, ``.``, ``_`` and ``-`` (others become ``_``), never empty."""
    kept = "".join(c if c.isalnum() or c in "._-" else "_" for c in name).strip("._")
    return kept or "artifact"


def paglet_file_ref_from_path(
    path: str | Path, *, name: str | None, mode: str, host_name: str, host_url: str
) -> PagletFileRef:
    """A registration for the regular file at ``path`` on this host, hashed now (``TransferError`` when
    it is not a regular file or the name is empty)."""
    source = Path(path).expanduser().resolve(strict=False)
    if not source.is_file():
        raise TransferError(f"registered path is not a file: {source}")
    label = (name or source.name).strip()
    if not label:
        raise TransferError("registered file name cannot be empty")
    info = source.stat()
    url = host_url.rstrip("/")
    return PagletFileRef(
        name=label,
        mode=normalize_file_mode(mode),
        source_host_name=host_name,
        source_host_url=url,
        source_path=str(source),
        source_created_at=getattr(info, "st_birthtime", info.st_ctime),
        source_modified_at=info.st_mtime,
        size_bytes=info.st_size,
        sha256=file_sha256(source),
        current_host_name=host_name,
        current_host_url=url,
        current_path=str(source),
    )
