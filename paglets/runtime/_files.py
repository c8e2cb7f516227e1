"""Registered files: files that travel with a paglet (docs/implementing/files.md).

A paglet registers a file by path (``register_file``); the host hashes it at once and keeps a
``PagletFileRef`` under the paglet's id, in host memory. When the paglet moves to another host:

1. *staging* (source, before the envelope): every registered file is checked (it must still exist with
   the registered size), uploaded into the target host's artifact store (SHA-256 verified by the store),
   and listed in the envelope metadata as ``{file, artifact, transfer_mode, source_path}``;
2. *import* (target, before any hook): each artifact is copied into the arrived paglet's work directory
   (``<work>/<agent>/<sanitised name>``, size and SHA-256 checked), the artifact is deleted and the
   reference now points at the copy (``status="available"``), so files are present in ``on_arrival`` and
   ``on_clone``; a failed import removes what it imported and refuses the paglet;
3. after the commit (source): ``move`` files are deleted at their source, registrations are forgotten and
   the work directory is removed. A clone always copies and never deletes.

Moves within one host keep files and registrations as they are (nothing is copied, nothing deleted).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import threading
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from paglets.artifacts import (
    ARTIFACT_MOVE,
    ARTIFACT_STATUS_AVAILABLE,
    ArtifactRef,
    PagletFileRef,
    normalize_file_mode,
)
from paglets.core.context_events import ContextEventLog
from paglets.core.errors import HostError, TransferError
from paglets.persistence.storage import path_component
from paglets.runtime._tasks import FILE_UNSTAGE_FAILED, report_failure

if TYPE_CHECKING:
    from paglets.artifacts import ArtifactStore
    from paglets.remote.client import HostClient

__all__ = ["FileRegistry", "sha256_of"]

#: Files one paglet may register (each travels with every move).
MAX_REGISTERED_FILES: Final = 256
_HASH_CHUNK: Final = 1 << 20


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class FileRegistry:
    """Registered files of the paglets of one host (thread-safe; disk work runs in the caller's thread)."""

    def __init__(
        self, *, host_name: Any, host_url: Any, work_root: Path, events: ContextEventLog | None = None
    ) -> None:
        self._host_name = host_name
        self._host_url = host_url
        self._work_root = work_root
        self._events = events if events is not None else ContextEventLog()
        self._refs: dict[str, dict[str, PagletFileRef]] = {}
        self._lock = threading.Lock()

    def work_dir(self, agent_id: str) -> Path:
        return self._work_root / path_component(agent_id)

    # --- registration ---------------------------------------------------------------------------------

    def register(
        self, agent_id: str, path: str | Path, *, name: str | None = None, mode: str = "copy"
    ) -> PagletFileRef:
        source = Path(path).expanduser().resolve()
        if not source.is_file():
            raise HostError(f"cannot register {source}: not a regular file")
        label = name or source.name
        if not label or "/" in label or label in (".", ".."):
            raise HostError(f"invalid registered file name {label!r}")
        stat = source.stat()
        ref = PagletFileRef(
            name=label,
            mode=normalize_file_mode(mode),
            source_host_name=self._host_name(),
            source_host_url=self._host_url(),
            source_path=str(source),
            source_created_at=stat.st_ctime,
            source_modified_at=stat.st_mtime,
            size_bytes=stat.st_size,
            sha256=sha256_of(source),
            current_host_name=self._host_name(),
            current_host_url=self._host_url(),
            current_path=str(source),
        )
        with self._lock:
            refs = self._refs.setdefault(agent_id, {})
            if label not in refs and len(refs) >= MAX_REGISTERED_FILES:
                raise HostError(f"a paglet may register at most {MAX_REGISTERED_FILES} files")
            refs[label] = ref
        return ref

    def refs(self, agent_id: str) -> list[PagletFileRef]:
        with self._lock:
            return list(self._refs.get(agent_id, {}).values())

    def unregister(self, agent_id: str, name_or_ref: str | PagletFileRef | dict[str, Any]) -> None:
        label = _label(name_or_ref)
        with self._lock:
            if self._refs.get(agent_id, {}).pop(label, None) is None:
                raise HostError(f"no registered file {label!r} for paglet {agent_id}")

    def path(self, agent_id: str, name_or_ref: str | PagletFileRef | dict[str, Any]) -> Path:
        label = _label(name_or_ref)
        with self._lock:
            ref = self._refs.get(agent_id, {}).get(label)
        if ref is None:
            raise HostError(f"no registered file {label!r} for paglet {agent_id}")
        return Path(ref.current_path)

    def forget(self, agent_id: str, *, remove_work_dir: bool) -> None:
        with self._lock:
            self._refs.pop(agent_id, None)
        if remove_work_dir:
            shutil.rmtree(self.work_dir(agent_id), ignore_errors=True)

    def restore(self, agent_id: str, refs: list[PagletFileRef]) -> None:
        with self._lock:
            if refs:
                self._refs[agent_id] = {ref.name: ref for ref in refs}
            else:
                self._refs.pop(agent_id, None)

    # --- moving (blocking: run in an executor) --------------------------------------------------------

    def stage(
        self,
        agent_id: str,
        target_url: str,
        client: HostClient,
        *,
        new_agent_id: str,
        local_store: ArtifactStore | None = None,
    ) -> list[dict[str, Any]]:
        """Upload every registered file to ``target_url``'s artifact store (``local_store``: this host's
        own, without HTTP); returns the envelope's file list."""
        staged: list[dict[str, Any]] = []
        try:
            for ref in self.refs(agent_id):
                path = Path(ref.current_path)
                if not path.is_file():
                    raise TransferError(f"registered file {ref.name!r} is gone: {path}")
                if path.stat().st_size != ref.size_bytes:
                    raise TransferError(f"registered file {ref.name!r} changed size since it was registered")
                if local_store is not None:
                    artifact = local_store.create_from_file(
                        path, owner_agent_id=new_agent_id, name=ref.name, expected_sha256=ref.sha256
                    )
                else:
                    artifact = client.upload_artifact(
                        target_url,
                        path,
                        owner_agent_id=new_agent_id,
                        name=ref.name,
                        expected_sha256=ref.sha256,
                    )
                staged.append(
                    {
                        "file": ref.to_wire(),
                        "artifact": artifact.to_wire(),
                        "transfer_mode": ref.mode,
                        "source_path": str(path),
                    }
                )
        except BaseException:
            self.unstage(staged, client, local_store=local_store, agent_id=agent_id)
            raise
        return staged

    def unstage(
        self,
        staged: list[dict[str, Any]],
        client: HostClient,
        *,
        local_store: ArtifactStore | None = None,
        agent_id: str | None = None,
    ) -> None:
        """Delete the artifacts of a staging whose move did not happen. Best effort: a file that cannot
        be deleted is reported (``file-unstage-failed`` event and log line) and the others still go."""
        for entry in staged:
            try:
                artifact = ArtifactRef.from_wire(entry["artifact"])
                if local_store is not None:
                    local_store.delete(artifact.artifact_id)
                else:
                    client.delete_artifact(artifact)
            except Exception as exc:
                report_failure(
                    self._events,
                    FILE_UNSTAGE_FAILED,
                    "deleting a staged registered file",
                    exc,
                    agent_id=agent_id,
                    file=_staged_name(entry),
                    artifact=_staged_artifact(entry),
                )

    def import_files(
        self, agent_id: str, entries: list[dict[str, Any]], store: ArtifactStore
    ) -> list[PagletFileRef]:
        """Copy staged artifacts from this host's store into the paglet's work directory."""
        work = self.work_dir(agent_id)
        imported: list[PagletFileRef] = []
        written: list[Path] = []
        try:
            for entry in entries:
                ref = PagletFileRef.from_wire(entry["file"])
                artifact = ArtifactRef.from_wire(entry["artifact"])
                work.mkdir(parents=True, exist_ok=True)
                target = work / path_component(ref.name)
                part = target.with_name(f".{target.name}.part")
                shutil.copyfile(store.blob_path(artifact.artifact_id), part)
                if part.stat().st_size != ref.size_bytes or sha256_of(part) != ref.sha256:
                    part.unlink(missing_ok=True)
                    raise TransferError(f"registered file {ref.name!r} arrived damaged")
                os.replace(part, target)
                written.append(target)
                store.delete(artifact.artifact_id)
                imported.append(
                    replace(
                        ref,
                        current_host_name=self._host_name(),
                        current_host_url=self._host_url(),
                        current_path=str(target),
                        status=ARTIFACT_STATUS_AVAILABLE,
                    )
                )
        except BaseException:
            for path in written:
                path.unlink(missing_ok=True)
            for entry in entries:
                try:
                    store.delete(ArtifactRef.from_wire(entry["artifact"]).artifact_id)
                except Exception as exc:
                    report_failure(
                        self._events,
                        FILE_UNSTAGE_FAILED,
                        "deleting a registered file staged for a refused arrival",
                        exc,
                        agent_id=agent_id,
                        file=_staged_name(entry),
                        artifact=_staged_artifact(entry),
                    )
            raise
        return imported

    @staticmethod
    def finish_source(entries: list[dict[str, Any]], *, kind: str) -> None:
        """After a committed dispatch or retract: delete the sources of ``move`` files."""
        if kind == "clone":
            return
        for entry in entries:
            if entry.get("transfer_mode") == ARTIFACT_MOVE:
                Path(str(entry["source_path"])).unlink(missing_ok=True)


def _staged_name(entry: Any) -> str:
    file = entry.get("file") if isinstance(entry, dict) else None
    return str(file.get("name", "")) if isinstance(file, dict) else ""


def _staged_artifact(entry: Any) -> str:
    artifact = entry.get("artifact") if isinstance(entry, dict) else None
    return str(artifact.get("artifact_id", "")) if isinstance(artifact, dict) else ""


def _label(name_or_ref: str | PagletFileRef | dict[str, Any]) -> str:
    if isinstance(name_or_ref, PagletFileRef):
        return name_or_ref.name
    if isinstance(name_or_ref, dict):
        return str(name_or_ref.get("name", ""))
    return str(name_or_ref)
