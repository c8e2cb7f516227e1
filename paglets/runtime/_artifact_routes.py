"""HTTP routes of the artifact store (proto/PROTOCOL.md §6, ``/artifacts``).

| route | answer |
|---|---|
| ``GET /artifacts?owner_agent_id=`` | ``{"artifacts": [ArtifactRef wire...]}`` (empty owner: all) |
| ``POST /artifacts?owner_agent_id&name&compression&expires_at&sha256&size`` | ``{"artifact": ...}`` |
| ``GET /artifacts/{id}`` | the bytes (``application/octet-stream``, ``X-Paglets-Artifact-Sha256``) |
| ``GET /artifacts/{id}/metadata`` | ``{"artifact": ...}`` |
| ``DELETE /artifacts/{id}`` | ``{"ok": true}`` (also for an unknown well-formed id) |

Uploads stream the raw body (``Content-Length`` or chunked, any content type) into
:meth:`ArtifactStore.create_from_stream_async` with the server's backpressure, and downloads stream the blob
from a :class:`BlobReader`, so memory stays bounded whatever the artifact size. The declared size is the
``size`` query parameter, else ``Content-Length``; when both are given they must agree.

Errors (the server maps them): a malformed id, an unknown id, a hash or size mismatch and malformed
query parameters → 400 ``TransferError``; a body above the store's ``max_bytes`` → 413; a full quota →
``StorageQuotaError``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from typing import Final

from paglets.artifacts import ArtifactRef, ArtifactStore, require_artifact_id
from paglets.core.errors import TransferError
from paglets.http.messages import Request, Response, StreamResponse, json_response
from paglets.http.routing import Router

__all__ = ["SHA256_HEADER", "build_artifact_routes"]

#: Response header carrying the blob's SHA-256 (lowercase hex) on ``GET /artifacts/{id}``.
SHA256_HEADER: Final = "X-Paglets-Artifact-Sha256"

#: Longest integer query parameter (digits); 19 digits hold any size a disk can have.
_MAX_INT_DIGITS: Final = 19


def _int_param(request: Request, name: str) -> int | None:
    text = request.query.get(name, "").strip()
    if not text:
        return None
    if not (text.isascii() and text.isdigit() and len(text) <= _MAX_INT_DIGITS):
        raise TransferError(f"query parameter {name!r} must be a non-negative integer, got {text!r}")
    return int(text)


def _float_param(request: Request, name: str) -> float:
    text = request.query.get(name, "").strip()
    if not text:
        return 0.0
    try:
        value = float(text)
    except ValueError:
        raise TransferError(f"query parameter {name!r} must be a number, got {text!r}") from None
    if not math.isfinite(value):
        raise TransferError(f"query parameter {name!r} must be finite")
    return value


def build_artifact_routes(
    router: Router,
    store: ArtifactStore,
    *,
    host_url: Callable[[], str] | None = None,
) -> None:
    """Register the ``/artifacts`` routes of ``store`` on ``router``.

    ``host_url``, when given, names the host in the returned references instead of the store's own
    callable (a relay hub's public URL, for example).
    """

    def wire(ref: ArtifactRef) -> dict[str, object]:
        if host_url is not None:
            ref = replace(ref, host_url=host_url())
        return ref.to_wire()

    async def list_artifacts(request: Request) -> Response:
        owner = request.query.get("owner_agent_id") or None
        return json_response({"artifacts": [wire(ref) for ref in store.list(owner)]})

    async def upload(request: Request) -> Response:
        query = request.query
        size = _int_param(request, "size")
        length = request.content_length
        if size is not None and length is not None and size != length:
            raise TransferError(f"size={size} does not match Content-Length {length}")
        declared = size if size is not None else length
        sha256 = query.get("sha256") or None
        ref = await store.create_from_stream_async(
            request.stream(store.max_bytes),
            owner_agent_id=query.get("owner_agent_id", ""),
            name=query.get("name", ""),
            compression=query.get("compression", ""),
            expires_at=_float_param(request, "expires_at"),
            expected_sha256=sha256,
            declared_size=declared,
        )
        return json_response({"artifact": wire(ref)})

    async def download(request: Request) -> StreamResponse:
        reader = store.open_blob(request.path_params["artifact_id"])
        return StreamResponse(
            200,
            reader,
            content_type="application/octet-stream",
            content_length=reader.size,
            headers=[(SHA256_HEADER, reader.ref.sha256)],
        )

    async def metadata(request: Request) -> Response:
        return json_response({"artifact": wire(store.metadata(request.path_params["artifact_id"]))})

    async def delete(request: Request) -> Response:
        artifact_id = require_artifact_id(request.path_params["artifact_id"])
        await store.delete_async(artifact_id)
        return json_response({"ok": True})

    router.get("/artifacts", list_artifacts)
    router.post("/artifacts", upload)
    router.get("/artifacts/{artifact_id}", download)
    router.get("/artifacts/{artifact_id}/metadata", metadata)
    router.delete("/artifacts/{artifact_id}", delete)
