"""Artifact and registered-file references (docs/implementing/files.md; public home ``paglets.artifacts``).

- ``ArtifactRef`` names one blob in a host's artifact store (``host_url`` + ``artifact_id``) with its
  size, SHA-256 (lowercase hex), optional compression label, creation time, expiry (0 = never, else a
  ``time.time()`` value) and owner paglet id.
- ``PagletFileRef`` describes a file a paglet registered to travel with it: its logical ``name``, the
  ``mode`` (``"copy"`` keeps the source after a move, ``"move"`` deletes it), where it came from, where
  it is now, and its ``status`` (``"registered"``, ``"available"`` after arrival, ``"failed"``).

Artifact ids are uuid4 values written as 32 lowercase hex characters (:func:`is_valid_artifact_id`);
anything else is refused before it can reach a file name (:func:`require_artifact_id`).

Wire rules: ``to_wire`` gives every field; ``from_wire`` fills missing optional fields with defaults and
raises ``SerializationError`` for malformed input (not a dict, missing ``artifact_id``/``name``, wrong
types, an unknown file mode).

The references are values of the authoring API (``Paglet.create_artifact`` returns one), so they are
defined here, in the layer that does no I/O; ``paglets.artifacts`` re-exports them with the store and the
file helpers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

from paglets.core.errors import SerializationError, TransferError

__all__ = [
    "ARTIFACT_COPY",
    "ARTIFACT_MOVE",
    "ARTIFACT_STATUS_AVAILABLE",
    "ARTIFACT_STATUS_FAILED",
    "ARTIFACT_STATUS_REGISTERED",
    "FILE_MODES",
    "ArtifactRef",
    "PagletFileRef",
    "is_valid_artifact_id",
    "normalize_file_mode",
    "require_artifact_id",
]

ARTIFACT_COPY: Final = "copy"
ARTIFACT_MOVE: Final = "move"
FILE_MODES: Final = frozenset({ARTIFACT_COPY, ARTIFACT_MOVE})
ARTIFACT_STATUS_REGISTERED: Final = "registered"
ARTIFACT_STATUS_AVAILABLE: Final = "available"
ARTIFACT_STATUS_FAILED: Final = "failed"

_ARTIFACT_ID: Final = re.compile(r"[0-9a-f]{32}")


def is_valid_artifact_id(value: object) -> bool:
    """True for exactly 32 lowercase hex characters (a uuid4 ``.hex``)."""
    return isinstance(value, str) and _ARTIFACT_ID.fullmatch(value) is not None


def require_artifact_id(value: object) -> str:
    """``value`` if it is a valid artifact id, else ``TransferError`` (HTTP 400)."""
    if not is_valid_artifact_id(value):
        raise TransferError(f"invalid artifact id {value!r}")
    assert isinstance(value, str)
    return value


def normalize_file_mode(mode: object) -> str:
    """``"copy"`` or ``"move"`` (case and surrounding blanks ignored; empty means copy)."""
    if mode is None:
        return ARTIFACT_COPY
    text = mode.strip().casefold() or ARTIFACT_COPY if isinstance(mode, str) else None
    if text not in FILE_MODES:
        raise TransferError(f"registered file mode must be 'copy' or 'move', got {mode!r}")
    assert text is not None
    return text


def _dict(data: Any, what: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise SerializationError(f"{what} must be a dict, got {type(data).__name__}")
    return data


def _str(data: dict[str, Any], key: str, what: str, *, required: bool = False) -> str:
    value = data.get(key)
    if value is None:
        if required:
            raise SerializationError(f"{what} has no {key!r}")
        return ""
    if not isinstance(value, str):
        raise SerializationError(f"{what}.{key} must be a string")
    return value


def _int(data: dict[str, Any], key: str, what: str) -> int:
    value = data.get(key)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise SerializationError(f"{what}.{key} must be an integer")
    return value


def _float(data: dict[str, Any], key: str, what: str) -> float:
    value = data.get(key)
    if value is None:
        return 0.0
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SerializationError(f"{what}.{key} must be a number")
    return float(value)


@dataclass(frozen=True, slots=True)
class ArtifactRef:
    """A blob in one host's artifact store."""

    host_url: str
    artifact_id: str
    name: str = ""
    size_bytes: int = 0
    sha256: str = ""
    compression: str = ""
    created_at: float = 0.0
    expires_at: float = 0.0
    owner_agent_id: str = ""

    def to_wire(self) -> dict[str, Any]:
        return {
            "host_url": self.host_url,
            "artifact_id": self.artifact_id,
            "name": self.name,
            "size_bytes": self.size_bytes,
            "sha256": self.sha256,
            "compression": self.compression,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "owner_agent_id": self.owner_agent_id,
        }

    @classmethod
    def from_wire(cls, payload: Any) -> ArtifactRef:
        d = _dict(payload, "artifact")
        return cls(
            host_url=_str(d, "host_url", "artifact"),
            artifact_id=_str(d, "artifact_id", "artifact", required=True),
            name=_str(d, "name", "artifact"),
            size_bytes=_int(d, "size_bytes", "artifact"),
            sha256=_str(d, "sha256", "artifact"),
            compression=_str(d, "compression", "artifact"),
            created_at=_float(d, "created_at", "artifact"),
            expires_at=_float(d, "expires_at", "artifact"),
            owner_agent_id=_str(d, "owner_agent_id", "artifact"),
        )


@dataclass(slots=True)
class PagletFileRef:
    """A file registered to travel with a paglet (see the module docstring)."""

    name: str
    mode: str = ARTIFACT_COPY
    source_host_name: str = ""
    source_host_url: str = ""
    source_path: str = ""
    source_created_at: float = 0.0
    source_modified_at: float = 0.0
    size_bytes: int = 0
    sha256: str = ""
    current_host_name: str = ""
    current_host_url: str = ""
    current_path: str = ""
    status: str = ARTIFACT_STATUS_REGISTERED
    last_error: str = ""

    def to_wire(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "mode": self.mode,
            "source_host_name": self.source_host_name,
            "source_host_url": self.source_host_url,
            "source_path": self.source_path,
            "source_created_at": self.source_created_at,
            "source_modified_at": self.source_modified_at,
            "size_bytes": self.size_bytes,
            "sha256": self.sha256,
            "current_host_name": self.current_host_name,
            "current_host_url": self.current_host_url,
            "current_path": self.current_path,
            "status": self.status,
            "last_error": self.last_error,
        }

    @classmethod
    def from_wire(cls, payload: Any) -> PagletFileRef:
        d = _dict(payload, "registered file")
        what = "registered file"
        try:
            mode = normalize_file_mode(d.get("mode"))
        except TransferError as exc:
            raise SerializationError(str(exc)) from exc
        return cls(
            name=_str(d, "name", what, required=True),
            mode=mode,
            source_host_name=_str(d, "source_host_name", what),
            source_host_url=_str(d, "source_host_url", what),
            source_path=_str(d, "source_path", what),
            source_created_at=_float(d, "source_created_at", what),
            source_modified_at=_float(d, "source_modified_at", what),
            size_bytes=_int(d, "size_bytes", what),
            sha256=_str(d, "sha256", what),
            current_host_name=_str(d, "current_host_name", what),
            current_host_url=_str(d, "current_host_url", what),
            current_path=_str(d, "current_path", what),
            status=_str(d, "status", what) or ARTIFACT_STATUS_REGISTERED,
            last_error=_str(d, "last_error", what),
        )
