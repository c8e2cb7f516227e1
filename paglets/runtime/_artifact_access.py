"""Artifacts as a paglet (or an embedding program) reaches them: ``upload_artifact``, ``download_artifact``
and ``delete_artifact`` of ``PagletContext``/``Paglet``, for the in-process ``Host`` and
for a paglet process alike.

Where the work happens:

- an artifact of **this host** never travels over HTTP. The in-process host works on its store directly
  (:class:`StoreArtifacts`); a paglet process asks its host with a host call that carries a *path*, never
  the bytes (:class:`HostCallArtifacts`, ops in ``paglets.runtime._hostcalls``): for an upload the host
  copies the file (the paglet and its host share the filesystem) into the store in an executor; for a
  download the host answers where the blob is and the paglet process copies it itself
  (``copy_verified``: size and SHA-256 checked, temp file, atomic rename), so a large copy costs the
  host nothing;
- an artifact of **another host** goes through the caller's ``HostClient`` (streamed both ways, checked
  as ``HostClient`` checks it).

``host_url`` of an upload is a URL (``http://``/``https://``) or a mesh host name, resolved by the host;
this host's own URL or name means "here". An :class:`ArtifactRef` names its host by URL; a reference with
an empty URL is taken as this host's. Semantics follow paglets 2.0: ``download_artifact`` returns the
reference it was given, ``move=True`` deletes the artifact after a good copy, deleting an unknown artifact
is not an error, and uploads are owned by the paglet unless ``owner_agent_id`` says otherwise (the owner's
artifacts on this host are deleted when it is disposed).

Timeouts: a same-host upload from a paglet process waits at most ``LOCAL_COPY_BASE`` seconds plus one
second per ``LOCAL_COPY_RATE`` bytes of the file (the host keeps copying if the paglet gives up; the
artifact then belongs to the paglet and goes with it); other calls use the caller's ``timeout`` or the
client's default.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Protocol

from paglets.artifacts import ArtifactRef, require_artifact_id
from paglets.artifacts._io import copy_verified
from paglets.core.errors import TransferError
from paglets.wire.limits import MiB

if TYPE_CHECKING:
    from paglets.artifacts import ArtifactStore
    from paglets.remote.client import HostClient

__all__ = [
    "LOCAL_COPY_BASE",
    "LOCAL_COPY_RATE",
    "ArtifactAccess",
    "HostCallArtifacts",
    "LocalArtifacts",
    "StoreArtifacts",
]

#: Seconds a paglet process waits for its host to store any file, before the size-dependent part.
LOCAL_COPY_BASE: Final = 60.0
#: Bytes per second a same-host copy is assumed to reach at worst (a slow disk with fsync).
LOCAL_COPY_RATE: Final = 16 * MiB


class LocalArtifacts(Protocol):
    """This host's artifact store, as the caller reaches it."""

    def create(
        self,
        path: Path,
        *,
        owner_agent_id: str,
        name: str | None,
        compression: str,
        expires_at: float,
        timeout: float | None,
    ) -> ArtifactRef: ...

    def locate(self, artifact_id: str, timeout: float | None) -> tuple[ArtifactRef, Path]:
        """The stored reference and where the blob is (``TransferError`` when unknown)."""
        ...

    def delete(self, artifact_id: str, timeout: float | None) -> None: ...


class StoreArtifacts:
    """The store itself (the in-process host): blocking calls on the caller's thread, bounded by the file
    and the disk (``timeout`` does not apply)."""

    def __init__(self, store: ArtifactStore) -> None:
        self._store = store

    def create(
        self,
        path: Path,
        *,
        owner_agent_id: str,
        name: str | None,
        compression: str,
        expires_at: float,
        timeout: float | None,
    ) -> ArtifactRef:
        return self._store.create_from_file(
            path, owner_agent_id=owner_agent_id, name=name, compression=compression, expires_at=expires_at
        )

    def locate(self, artifact_id: str, timeout: float | None) -> tuple[ArtifactRef, Path]:
        return self._store.metadata(artifact_id), self._store.blob_path(artifact_id)

    def delete(self, artifact_id: str, timeout: float | None) -> None:
        self._store.delete(artifact_id)


class HostCallArtifacts:
    """The store of a paglet process's host, through host calls (``call(op, timeout, **args)``)."""

    def __init__(self, call: Callable[..., Any]) -> None:
        self._call = call

    def create(
        self,
        path: Path,
        *,
        owner_agent_id: str,
        name: str | None,
        compression: str,
        expires_at: float,
        timeout: float | None,
    ) -> ArtifactRef:
        try:
            size = path.stat().st_size
        except OSError as exc:
            raise TransferError(f"cannot read {path}: {exc}") from exc
        wire = self._call(
            "upload_artifact",
            timeout if timeout is not None else LOCAL_COPY_BASE + size / LOCAL_COPY_RATE,
            path=str(path),
            owner_agent_id=owner_agent_id,
            name=name,
            compression=compression,
            expires_at=expires_at,
        )
        return ArtifactRef.from_wire(wire)

    def locate(self, artifact_id: str, timeout: float | None) -> tuple[ArtifactRef, Path]:
        data = self._call("locate_artifact", timeout, artifact_id=artifact_id)
        return ArtifactRef.from_wire(data["artifact"]), Path(str(data["path"]))

    def delete(self, artifact_id: str, timeout: float | None) -> None:
        self._call("delete_artifact", timeout, artifact_id=artifact_id)


def _as_ref(artifact: ArtifactRef | Mapping[str, Any]) -> ArtifactRef:
    if isinstance(artifact, ArtifactRef):
        return artifact
    if isinstance(artifact, Mapping):
        return ArtifactRef.from_wire(dict(artifact))
    raise TypeError(f"expected an ArtifactRef or its wire dict, got {type(artifact).__name__}")


def _is_url(text: str) -> bool:
    return text.startswith(("http://", "https://"))


class ArtifactAccess:
    """The three artifact calls of one host, or of one paglet process (see the module docstring)."""

    def __init__(
        self,
        *,
        address: Callable[[], str],
        resolve: Callable[[str], str],
        client: Callable[[], HostClient],
        local: LocalArtifacts,
    ) -> None:
        self._address = address
        self._resolve = resolve
        self._client = client
        self._local = local

    def _here(self, url: str) -> bool:
        return not url or url.rstrip("/") == self._address().rstrip("/")

    def _target(self, host_url: str | None) -> str | None:
        """``None`` for this host, else the other host's URL."""
        if not host_url:
            return None
        url = host_url if _is_url(host_url) else self._resolve(host_url)
        return None if self._here(url) else url.rstrip("/")

    def upload_artifact(
        self,
        path: Path | str,
        *,
        host_url: str | None = None,
        owner_agent_id: str = "",
        name: str | None = None,
        compression: str = "",
        expires_at: float = 0.0,
        timeout: float | None = None,
    ) -> ArtifactRef:
        """Store a file as an artifact on ``host_url`` (``None``: this host)."""
        source = Path(os.path.abspath(Path(path).expanduser()))  # the host may run elsewhere in the tree
        target = self._target(host_url)
        if target is None:
            return self._local.create(
                source,
                owner_agent_id=owner_agent_id,
                name=name,
                compression=compression,
                expires_at=expires_at,
                timeout=timeout,
            )
        return self._client().upload_artifact(
            target,
            source,
            owner_agent_id=owner_agent_id,
            name=name,
            compression=compression,
            expires_at=expires_at,
            timeout=timeout,
        )

    def download_artifact(
        self,
        artifact: ArtifactRef | Mapping[str, Any],
        target: Path | str,
        *,
        move: bool = False,
        timeout: float | None = None,
    ) -> ArtifactRef:
        """Copy an artifact to ``target`` (checked, atomic); ``move`` deletes it afterwards."""
        ref = _as_ref(artifact)
        if not self._here(ref.host_url):
            return self._client().download_artifact(ref, target, move=move, timeout=timeout)
        artifact_id = require_artifact_id(ref.artifact_id)
        stored, blob = self._local.locate(artifact_id, timeout)
        if ref.sha256 and (ref.sha256 != stored.sha256 or ref.size_bytes != stored.size_bytes):
            raise TransferError(f"artifact {artifact_id} on this host is not the one the reference describes")
        copy_verified(blob, target, size=stored.size_bytes, sha256=stored.sha256, what=artifact_id)
        if move:
            self._local.delete(artifact_id, timeout)
        return ref

    def delete_artifact(
        self, artifact: ArtifactRef | Mapping[str, Any], *, timeout: float | None = None
    ) -> None:
        """Delete an artifact wherever it is (no error when it is already gone)."""
        ref = _as_ref(artifact)
        if self._here(ref.host_url):
            self._local.delete(require_artifact_id(ref.artifact_id), timeout)
        else:
            self._client().delete_artifact(ref, timeout=timeout)
