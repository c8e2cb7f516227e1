"""Replies of the control plane's operations (``paglets.wire.control``), and the pieces requests share.

Replies are map-encoded frozen Structs: their JSON form is the body the HTTP route of the same operation
answers (``{"proxy": {...}}``, ``/health``'s object), and over IPC they are the ``result`` of a
``HostReply``. Values of public classes of the layers above (``HostRef``, ``ServiceRecord``,
``PagletFileRef``, ``ArtifactRef``) travel as the ``*Wire`` Structs here and are converted at the edge
(``paglets.runtime._wireforms``). New fields go last and get defaults (``proto/PROTOCOL.md`` §5).
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

__all__ = [
    "ArtifactLocation",
    "ArtifactRefWire",
    "CheckpointReply",
    "DeactivatedReply",
    "FileRefWire",
    "GitUpdateStatus",
    "HealthReply",
    "HostRefWire",
    "LeaseReply",
    "OkReply",
    "ProxyRef",
    "ProxyReply",
    "ReleasedReply",
    "ServiceRecordWire",
    "StateSegment",
    "StorageStatusReply",
    "TargetInfo",
]


class ProxyRef(msgspec.Struct, frozen=True):
    """Where a paglet is: a ``PagletProxy`` as data."""

    host_url: str
    agent_id: str


class ProxyReply(msgspec.Struct, frozen=True):
    proxy: ProxyRef


class DeactivatedReply(msgspec.Struct, frozen=True):
    proxy: ProxyRef
    ok: bool = True


class CheckpointReply(msgspec.Struct, frozen=True):
    """``POST /agents/{id}/checkpoint``: when the checkpoint was taken and what it holds."""

    agent_id: str
    checkpoint_at: float
    state_bytes: int
    queued_message_count: int


class OkReply(msgspec.Struct, frozen=True):
    ok: bool = True


class LeaseReply(msgspec.Struct, frozen=True):
    lease_id: str
    expires_at: float


class ReleasedReply(msgspec.Struct, frozen=True):
    released: bool


class HealthReply(msgspec.Struct, frozen=True):
    """``GET /health`` (paglets 2.0's keys)."""

    name: str
    address: str
    active_count: int
    inactive_count: int
    code_version: str
    capabilities: list[str]
    tags: list[str]
    properties: dict[str, str]
    compute_capacity: dict[str, int] = {}
    auto_update_from_git: bool = False
    auto_update_restart_scheduled: bool = False
    #: Git auto-update (``proto/PROTOCOL.md`` §6.3): present only on hosts run from a git checkout with
    #: ``--auto-update-from-git``; the checkout's root, its HEAD at the last look, the commit this
    #: process started on, and the last update attempt.
    git_repo_root: str | msgspec.UnsetType = msgspec.UNSET
    git_head: str | msgspec.UnsetType = msgspec.UNSET
    git_process_start_head: str | msgspec.UnsetType = msgspec.UNSET
    git_update: GitUpdateStatus | msgspec.UnsetType = msgspec.UNSET


class GitUpdateStatus(msgspec.Struct, frozen=True, kw_only=True):
    """One git auto-update attempt: ``POST /admin/git-update``'s answer and ``/health``'s ``git_update``.

    ``status`` is one of ``updated``, ``unchanged``, ``dirty``, ``conflict``, ``target-missing``,
    ``sync-failed``, ``disabled``, ``not-a-checkout``, ``detached``, ``no-upstream``, ``fetch-failed``,
    ``busy``, ``failed`` (``docs/auto-update.md``); ``advice`` says what to do about it. ``hosts`` holds the
    answers of the other hosts when the request asked for a broadcast (each with ``host`` and ``url``).
    """

    ok: bool
    status: str
    error: str = ""
    advice: str = ""
    host: str = ""
    url: str = ""
    repo_root: str = ""
    branch: str = ""
    upstream: str = ""
    before_head: str = ""
    after_head: str = ""
    process_start_head: str = ""
    target_hash: str = ""
    #: This attempt moved the checkout (another host sharing it may have moved it before).
    changed: bool = False
    #: The checkout holds another commit than the one this process runs.
    restart_required: bool = False
    restart_scheduled: bool = False
    #: The dependency sync that ran: ``"pip"``, ``"uv"`` or ``""`` (none needed, or done already).
    synced: str = ""
    source_name: str = ""
    source_url: str = ""
    #: Wall-clock time (seconds since the epoch) the attempt finished, and how long it took.
    finished_at: float = 0.0
    duration: float = 0.0
    hosts: list[GitUpdateStatus] = []


class TargetInfo(msgspec.Struct, frozen=True):
    """What a move's preflight learnt about its target."""

    name: str
    address: str
    code_version: str = ""
    capabilities: list[str] = []


class StorageStatusReply(msgspec.Struct, frozen=True):
    root: str
    used_bytes: int
    quota_bytes: int | None
    available_bytes: int | None


class HostRefWire(msgspec.Struct, frozen=True):
    """A ``HostRef`` (``paglets.remote.mesh``)."""

    name: str
    url: str
    code_version: str
    online: bool
    last_seen: float
    active_count: int
    inactive_count: int
    tags: list[str] = []
    properties: dict[str, str] = {}
    error: str | None = None
    age: float | None = None


class ServiceRecordWire(msgspec.Struct, frozen=True):
    """A ``ServiceRecord`` (``paglets.services.contracts``)."""

    name: str
    proxy: ProxyRef
    capabilities: list[str] = []
    metadata: dict[str, Any] = {}
    scope: str = "local"
    host_name: str = ""
    host_url: str = ""
    advertised_at: float = 0.0
    expires_at: float | None = None


class FileRefWire(msgspec.Struct, frozen=True):
    """A ``PagletFileRef`` (``paglets.artifacts``)."""

    name: str
    mode: str = "copy"
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
    status: str = "registered"
    last_error: str = ""


class ArtifactRefWire(msgspec.Struct, frozen=True):
    """An ``ArtifactRef`` (``paglets.artifacts``)."""

    host_url: str
    artifact_id: str
    name: str = ""
    size_bytes: int = 0
    sha256: str = ""
    compression: str = ""
    created_at: float = 0.0
    expires_at: float = 0.0
    owner_agent_id: str = ""


class ArtifactLocation(msgspec.Struct, frozen=True):
    """Where a blob of the host's artifact store is (the paglet process copies it itself)."""

    artifact: ArtifactRefWire
    path: str


class StateSegment(msgspec.Struct, frozen=True, array_like=True):
    """A paglet's encoded state, sent ahead in handoff segment ``segment`` (``length`` bytes)."""

    segment: Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
    length: Annotated[int, msgspec.Meta(ge=0)]
