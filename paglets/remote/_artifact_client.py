"""Blocking client calls for a host's artifact store; ``HostClient`` delegates here.

For users: docs/implementing/files.md.

Every function takes the :class:`~paglets.http.client.HttpClient` to use (``HostClient.http``), so calls
share its keep-alive pool, API key and default timeout. ``timeout`` bounds each send and receive of the
call (not the whole transfer: a large file takes as long as it takes while bytes keep moving).

Addressing: ``artifact`` is an :class:`ArtifactRef`, its wire dict, or a host URL string with
``artifact_id`` given separately (a host URL without an id is a ``ValueError`` naming ``artifact_id``, as
in paglets 2.0). Host URLs may carry a path prefix (``http://hub:8080/paglets``).

Upload: the file is streamed in ``UPLOAD_CHUNK`` pieces from one reused buffer with ``Content-Length``
(and the ``size`` query parameter), so the host refuses an oversized file before any byte is sent. The
SHA-256 is computed while reading. When ``expected_sha256`` is given it is sent as ``sha256`` and the
host refuses a mismatch before storing anything; in every case the client compares its own hash and size
with the host's answer and, on a difference (the file changed while it was read), deletes the new
artifact and raises ``TransferError``. A file that shrinks while it is sent aborts the upload.

Download: the body is written to ``.<target name>.<uuid>.part`` beside ``target`` (parents created),
checked against the ``Content-Length`` and ``X-Paglets-Artifact-Sha256`` the host sent (and against the
reference's size and hash when a non-empty reference was given), fsynced, and renamed over ``target``
atomically. Any failure removes the part file. ``move=True`` deletes the remote artifact afterwards. The
answer is the :class:`ArtifactRef` downloaded: the one given, or (for a host URL and an id) the host's
metadata, fetched first as paglets 2.0 does.

Errors: error responses become the exception their body names (as ``HostClient`` decodes them);
connection failures are ``RemoteHostError``; local file problems are ``TransferError``.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote, urlencode

from paglets import _oscompat
from paglets.artifacts import ArtifactRef, require_artifact_id
from paglets.core.errors import PagletError, RemoteHostError, TransferError
from paglets.http.client import ClientResponse, HttpClient
from paglets.wire.jsonbin import decode_json
from paglets.wire.limits import KiB, MiB

__all__ = [
    "DOWNLOAD_RECEIVE",
    "MAX_DOWNLOAD_ERROR_BODY",
    "UPLOAD_CHUNK",
    "ArtifactAddress",
    "artifact_metadata",
    "delete_artifact",
    "download_artifact",
    "list_artifacts",
    "upload_artifact",
]

#: Bytes read from the file per upload piece (one reused buffer).
UPLOAD_CHUNK: Final = 1 * MiB
#: Bytes received per ``recv`` while downloading.
DOWNLOAD_RECEIVE: Final = 1 * MiB
#: Largest error body read from a failed download.
MAX_DOWNLOAD_ERROR_BODY: Final = 64 * KiB

_SHA256_HEADER: Final = "x-paglets-artifact-sha256"
_OCTETS: Final = "application/octet-stream"

#: What names an artifact: a reference, its wire dict, or a host URL (with ``artifact_id`` beside it).
ArtifactAddress = ArtifactRef | Mapping[str, Any] | str


def _base(host_url: str) -> str:
    if not isinstance(host_url, str) or not host_url:
        raise TransferError("an artifact call needs a host URL")
    return host_url.rstrip("/")


def _resolve(
    target: ArtifactAddress, artifact_id: str | None, operation: str
) -> tuple[ArtifactRef | None, str, str]:
    """``(reference or None, host_url, artifact_id)`` for any accepted address."""
    if isinstance(target, str):
        if artifact_id is None or not str(artifact_id).strip():
            raise ValueError(
                f"HostClient.{operation}() requires artifact_id when the first argument is a host URL; "
                "pass an ArtifactRef or artifact_id=..."
            )
        return None, _base(target), require_artifact_id(artifact_id)
    ref = target if isinstance(target, ArtifactRef) else ArtifactRef.from_wire(dict(target))
    if artifact_id is not None and artifact_id != ref.artifact_id:
        raise TransferError(f"artifact_id {artifact_id!r} does not match the reference {ref.artifact_id!r}")
    return ref, _base(ref.host_url), require_artifact_id(ref.artifact_id)


def _error(http: HttpClient, url: str, status: int, body: bytes) -> PagletError:
    # Imported here: ``paglets.remote.client`` imports this module to delegate to it.
    from paglets.remote.client import error_from_response

    try:
        data = decode_json(body) if body else None
    except PagletError:
        data = None
    return error_from_response(url, status, data, key_sent=bool(http.api_key))


def _json(http: HttpClient, response: ClientResponse) -> Any:
    if not response.ok:
        raise _error(http, response.url, response.status, response.body)
    try:
        return decode_json(response.body) if response.body else {}
    except PagletError as exc:
        raise RemoteHostError(f"invalid JSON from {response.url}: {exc}") from exc


def _artifact(data: Any, url: str) -> ArtifactRef:
    if not isinstance(data, dict) or "artifact" not in data:
        raise RemoteHostError(f"{url} answered without an artifact")
    return ArtifactRef.from_wire(data["artifact"])


def _file_pieces(
    handle: io.FileIO, size: int, update: Callable[[memoryview], None], path: Path
) -> Iterator[memoryview]:
    """Exactly ``size`` bytes of ``handle`` in pieces of one reused buffer, hashed on the way."""
    buffer = bytearray(min(UPLOAD_CHUNK, max(size, 1)))
    view = memoryview(buffer)
    left = size
    while left:
        try:
            count = handle.readinto(view[: min(left, len(buffer))])
        except OSError as exc:
            raise TransferError(f"cannot read {path}: {exc}") from exc
        if not count:
            raise TransferError(f"{path} shrank while it was uploaded")
        piece = view[:count]
        update(piece)
        left -= count
        yield piece  # sent before the next read reuses the buffer


def upload_artifact(
    http: HttpClient,
    host_url: str,
    path: Path | str,
    *,
    owner_agent_id: str = "",
    name: str | None = None,
    compression: str = "",
    expires_at: float = 0.0,
    expected_sha256: str | None = None,
    timeout: float | None = None,
) -> ArtifactRef:
    """Upload a local file to ``host_url``'s artifact store (see the module docstring)."""
    source = Path(path)
    base = _base(host_url)
    try:
        handle = source.open("rb", buffering=0)
    except OSError as exc:
        raise TransferError(f"cannot read {source}: {exc}") from exc
    with handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise TransferError(f"{source} is not a regular file")
        size = info.st_size
        query: dict[str, str] = {
            "owner_agent_id": owner_agent_id,
            "name": source.name if name is None else name,
            "compression": compression,
            "expires_at": repr(float(expires_at)),
            "size": str(size),
        }
        if expected_sha256:
            query["sha256"] = expected_sha256.lower()
        url = f"{base}/artifacts?{urlencode(query)}"
        hasher = hashlib.sha256()
        response = http.request(
            "POST",
            url,
            body=_file_pieces(handle, size, hasher.update, source),
            headers={"Content-Length": str(size), "Content-Type": _OCTETS},
            timeout=timeout,
        )
    ref = _artifact(_json(http, response), url)
    if not ref.host_url:  # a host that does not know its own URL: the one we used names it
        ref = replace(ref, host_url=base)
    digest = hasher.hexdigest()
    if ref.sha256 != digest or ref.size_bytes != size:
        try:
            delete_artifact(http, base, ref.artifact_id, timeout=timeout)
        except PagletError:
            pass
        raise TransferError(
            f"{source} changed while it was uploaded (sent {size} bytes with SHA-256 {digest}, "
            f"the host stored {ref.size_bytes} bytes with {ref.sha256})"
        )
    if expected_sha256 and digest != expected_sha256.lower():  # pragma: no cover - the host refuses first
        raise TransferError(f"{source} does not have the expected SHA-256")
    return ref


def download_artifact(
    http: HttpClient,
    artifact: ArtifactAddress,
    target: Path | str,
    artifact_id: str | None = None,
    *,
    move: bool = False,
    timeout: float | None = None,
) -> ArtifactRef:
    """Download an artifact into ``target`` atomically (see the module docstring)."""
    ref, base, artifact_id = _resolve(artifact, artifact_id, "download_artifact")
    if ref is None:
        ref = artifact_metadata(http, base, artifact_id, timeout=timeout)
    destination = Path(target)
    if destination.is_dir():
        raise TransferError(f"download target {destination} is a directory")
    try:
        destination.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TransferError(f"cannot create {destination.parent}: {exc}") from exc
    part = destination.with_name(f".{destination.name}.{uuid.uuid4().hex}.part")
    url = f"{base}/artifacts/{quote(artifact_id)}"
    with http.stream("GET", url, timeout=timeout) as response:
        if not response.ok:
            raise _error(http, url, response.status, response.read(MAX_DOWNLOAD_ERROR_BODY))
        size, sha256 = _announced(response.header("content-length"), response.header(_SHA256_HEADER), url)
        if ref.sha256 and (ref.sha256 != sha256 or ref.size_bytes != size):
            raise TransferError(f"artifact {artifact_id} on {base} is not the one the reference describes")
        try:
            fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _oscompat.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise TransferError(f"cannot create {part}: {exc}") from exc
        try:
            try:
                hasher = hashlib.sha256()
                received = 0
                for piece in response.iter_chunks(DOWNLOAD_RECEIVE):
                    hasher.update(piece)
                    received += len(piece)
                    view = memoryview(piece)
                    while view:
                        view = view[os.write(fd, view) :]
                if received != size or hasher.hexdigest() != sha256:
                    raise TransferError(
                        f"artifact {artifact_id} arrived damaged ({received} of {size} bytes, "
                        f"SHA-256 {hasher.hexdigest()} instead of {sha256})"
                    )
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(part, destination)
        except OSError as exc:
            part.unlink(missing_ok=True)
            raise TransferError(f"cannot write {destination}: {exc}") from exc
        except BaseException:
            part.unlink(missing_ok=True)
            raise
    if move:
        delete_artifact(http, base, artifact_id, timeout=timeout)
    return ref


def _announced(length: str | None, sha256: str | None, url: str) -> tuple[int, str]:
    if length is None or not length.isdigit() or not sha256:
        raise RemoteHostError(f"{url} did not announce the artifact's size and SHA-256")
    return int(length), sha256.strip().lower()


def artifact_metadata(
    http: HttpClient,
    host_url: ArtifactAddress,
    artifact_id: str | None = None,
    *,
    timeout: float | None = None,
) -> ArtifactRef:
    """The host's current reference for an artifact (``TransferError`` when unknown); ``host_url`` may
    also be a reference."""
    _, base, artifact_id = _resolve(host_url, artifact_id, "artifact_metadata")
    url = f"{base}/artifacts/{quote(artifact_id)}/metadata"
    return _artifact(_json(http, http.request("GET", url, timeout=timeout)), url)


def list_artifacts(
    http: HttpClient,
    host_url: str,
    *,
    owner_agent_id: str | None = None,
    timeout: float | None = None,
) -> list[ArtifactRef]:
    """Every artifact on ``host_url`` (only ``owner_agent_id``'s when given)."""
    url = f"{_base(host_url)}/artifacts"
    if owner_agent_id:
        url += "?" + urlencode({"owner_agent_id": owner_agent_id})
    data = _json(http, http.request("GET", url, timeout=timeout))
    items = data.get("artifacts") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise RemoteHostError(f"{url} answered without an artifact list")
    return [ArtifactRef.from_wire(item) for item in items]


def delete_artifact(
    http: HttpClient,
    artifact: ArtifactAddress,
    artifact_id: str | None = None,
    *,
    timeout: float | None = None,
) -> None:
    """Delete an artifact (no error when it is already gone)."""
    _, base, artifact_id = _resolve(artifact, artifact_id, "delete_artifact")
    _json(http, http.request("DELETE", f"{base}/artifacts/{quote(artifact_id)}", timeout=timeout))
