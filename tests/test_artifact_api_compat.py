"""The artifact API keeps paglets 2.0's signatures.

The tables below were read from paglets 2.0.0 (``inspect.signature``). For every method 2.0 has, ours must
exist and accept every call 2.0 accepts: the same positional parameters in the same places, the same
keyword-only names (a keyword-only one may also be positional-or-keyword here), the same defaults. Ours
may add optional parameters, and may give a default where 2.0 had none (``ALLOWED_NEW_DEFAULTS``).
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import pytest

from paglets import artifacts
from paglets.core.agent import Paglet, PagletContext
from paglets.remote.client import HostClient
from paglets.remote.proxy import PagletProxy

# (name, kind) or (name, kind, default); kind "P" = positional-or-keyword, "K" = keyword-only
Sig = tuple[tuple[Any, ...], ...]

STORE_20: dict[str, Sig] = {
    "__init__": (
        ("root", "P"),
        ("host_url", "K"),
        ("max_artifact_bytes", "K", 1073741824),
        ("quota_bytes", "K", 10737418240),
        ("spool_ttl_seconds", "K", 86400),
    ),
    "blob_path": (("artifact_id", "P"),),
    "cleanup_temporary": (("now", "K", None),),
    "create_from_http_request": (
        ("headers", "P"),
        ("source", "P"),
        ("owner_agent_id", "K", ""),
        ("name", "K", ""),
        ("compression", "K", ""),
        ("expires_at", "K", 0.0),
        ("expected_sha256", "K", None),
    ),
    "create_from_path": (
        ("source", "P"),
        ("owner_agent_id", "K", ""),
        ("name", "K", None),
        ("compression", "K", ""),
        ("expires_at", "K", 0.0),
        ("expected_sha256", "K", None),
    ),
    "create_from_stream": (
        ("source", "P"),
        ("size_bytes", "K", -1),
        ("owner_agent_id", "K", ""),
        ("name", "K", ""),
        ("compression", "K", ""),
        ("expires_at", "K", 0.0),
        ("expected_sha256", "K", None),
    ),
    "delete": (("artifact_id", "P"),),
    "delete_owner": (("owner_agent_id", "P"),),
    "export_to_path": (("artifact_id", "P"), ("target", "P"), ("expected_sha256", "K", None)),
    "list": (("owner_agent_id", "K", None),),
    "open_reader": (("artifact_id", "P"),),
    "ref": (("artifact_id", "P"),),
    "set_host_url": (("host_url", "P"),),
}

CLIENT_20: dict[str, Sig] = {
    "__init__": (("timeout", "P", 10.0), ("api_key", "K", None)),
    "artifact_metadata": (("host_url", "P"), ("artifact_id", "P"), ("timeout", "K", None)),
    "delete_artifact": (("artifact", "P"), ("artifact_id", "P", None), ("timeout", "K", None)),
    "download_artifact": (
        ("artifact", "P"),
        ("target", "P"),
        ("artifact_id", "P", None),
        ("move", "K", False),
        ("timeout", "K", None),
    ),
    "list_artifacts": (("host_url", "P"), ("owner_agent_id", "K", None), ("timeout", "K", None)),
    "upload_artifact": (
        ("host_url", "P"),
        ("path", "P"),
        ("owner_agent_id", "K", ""),
        ("name", "K", None),
        ("compression", "K", ""),
        ("expires_at", "K", 0.0),
        ("expected_sha256", "K", None),
        ("timeout", "K", None),
    ),
}

PROXY_20: dict[str, Sig] = {
    "send_artifact": (
        ("message", "P"),
        ("path", "P"),
        ("arg_name", "K", "artifact"),
        ("move", "K", False),
        ("name", "K", None),
        ("compression", "K", ""),
        ("timeout", "K", None),
    ),
}

PAGLET_20: dict[str, Sig] = {
    "delete_artifact": (("artifact", "P"),),
    "download_artifact": (("artifact", "P"), ("target", "P"), ("move", "K", False)),
    "upload_artifact": (
        ("path", "P"),
        ("host_url", "K", None),
        ("owner_agent_id", "K", None),
        ("name", "K", None),
        ("compression", "K", ""),
        ("expires_at", "K", 0.0),
    ),
}

#: Where ours gives a default to a parameter 2.0 required (a superset of 2.0's calls).
ALLOWED_NEW_DEFAULTS = {
    ("ArtifactStore", "__init__", "host_url"),  # a store without a host names no URL
    ("HostClient", "artifact_metadata", "artifact_id"),  # may be omitted when a reference is given
}

#: paglets 2.0's public names in ``paglets.artifacts`` (its imports and its private request readers aside).
MODULE_20 = [
    "ARTIFACT_COPY",
    "ARTIFACT_MOVE",
    "ARTIFACT_STATUS_AVAILABLE",
    "ARTIFACT_STATUS_FAILED",
    "ARTIFACT_STATUS_REGISTERED",
    "ArtifactRef",
    "ArtifactStore",
    "ArtifactWriteResult",
    "DEFAULT_ARTIFACT_MAX_BYTES",
    "DEFAULT_ARTIFACT_SPOOL_TTL_SECONDS",
    "DEFAULT_ARTIFACT_STORAGE_QUOTA_BYTES",
    "PagletFileRef",
    "STREAM_CHUNK_BYTES",
    "copy_path",
    "copy_stream",
    "file_sha256",
    "paglet_file_ref_from_path",
    "safe_target_filename",
]

_KINDS = {inspect.Parameter.POSITIONAL_OR_KEYWORD: "P", inspect.Parameter.KEYWORD_ONLY: "K"}


def _check(owner: str, cls: type, expected: dict[str, Sig]) -> list[str]:
    problems: list[str] = []
    for method, params in expected.items():
        function = getattr(cls, method, None)
        if function is None:
            problems.append(f"{owner}.{method} is missing")
            continue
        ours = list(inspect.signature(function).parameters.values())[1:]  # without self
        by_name = {p.name: p for p in ours}
        for index, want in enumerate(params):
            name, kind = want[0], want[1]
            where = f"{owner}.{method}({name})"
            got = by_name.get(name)
            # positional parameters must sit where 2.0 has them; keyword-only ones may be anywhere
            if got is None or (kind == "P" and (index >= len(ours) or ours[index].name != name)):
                problems.append(f"{where}: parameter missing or out of place")
                continue
            got_kind = _KINDS.get(got.kind, str(got.kind))
            if got_kind != kind and not (kind == "K" and got_kind == "P"):
                problems.append(f"{where}: kind {got_kind}, 2.0 has {kind}")
            if len(want) == 3:
                if got.default is inspect.Parameter.empty or got.default != want[2]:
                    problems.append(f"{where}: default {got.default!r}, 2.0 has {want[2]!r}")
            elif (
                got.default is not inspect.Parameter.empty
                and (owner, method, name) not in ALLOWED_NEW_DEFAULTS
            ):
                problems.append(f"{where}: has a default, 2.0 requires it")
        known = {want[0] for want in params}
        problems.extend(
            f"{owner}.{method}: new required parameter {extra.name}"
            for extra in ours
            if extra.name not in known
            and extra.default is inspect.Parameter.empty
            and extra.kind not in (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL)
        )
    return problems


@pytest.mark.parametrize(
    ("owner", "cls", "expected"),
    [
        ("ArtifactStore", artifacts.ArtifactStore, STORE_20),
        ("HostClient", HostClient, CLIENT_20),
        ("PagletProxy", PagletProxy, PROXY_20),
        ("Paglet", Paglet, PAGLET_20),
        ("PagletContext", PagletContext, PAGLET_20),
    ],
)
def test_signatures_accept_every_2_0_call(owner: str, cls: type, expected: dict[str, Sig]) -> None:
    assert _check(owner, cls, expected) == []


def test_return_types_follow_2_0() -> None:
    hints = {
        "HostClient.download_artifact": inspect.signature(HostClient.download_artifact).return_annotation,
        "ArtifactStore.create_from_path": inspect.signature(
            artifacts.ArtifactStore.create_from_path
        ).return_annotation,
        "ArtifactStore.create_from_stream": inspect.signature(
            artifacts.ArtifactStore.create_from_stream
        ).return_annotation,
        "ArtifactStore.export_to_path": inspect.signature(
            artifacts.ArtifactStore.export_to_path
        ).return_annotation,
    }
    assert hints == {
        "HostClient.download_artifact": "ArtifactRef",
        "ArtifactStore.create_from_path": "ArtifactWriteResult",
        "ArtifactStore.create_from_stream": "ArtifactWriteResult",
        "ArtifactStore.export_to_path": "ArtifactRef",
    }


def test_store_attributes_of_2_0(tmp_path: Path) -> None:
    store = artifacts.ArtifactStore(tmp_path / "a", host_url="http://h:1/", spool_ttl_seconds=60)
    try:
        assert store.root == (tmp_path / "a").resolve()
        assert store.host_url == "http://h:1"
        assert store.max_artifact_bytes == artifacts.DEFAULT_ARTIFACT_MAX_BYTES
        assert store.quota_bytes == artifacts.DEFAULT_ARTIFACT_STORAGE_QUOTA_BYTES
        assert store.spool_ttl_seconds == 60.0
    finally:
        store.close()


def test_module_keeps_2_0_names() -> None:
    assert [name for name in MODULE_20 if not hasattr(artifacts, name)] == []
