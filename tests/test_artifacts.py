from __future__ import annotations

import uuid
from typing import Any

import msgspec
import pytest

from paglets.artifacts import (
    ARTIFACT_COPY,
    ARTIFACT_MOVE,
    ARTIFACT_STATUS_REGISTERED,
    ArtifactRef,
    PagletFileRef,
    is_valid_artifact_id,
    normalize_file_mode,
    require_artifact_id,
)
from paglets.core.errors import SerializationError, TransferError


def through_json(value: Any) -> Any:
    return msgspec.json.decode(msgspec.json.encode(value))


def test_artifact_ids() -> None:
    fresh = uuid.uuid4().hex
    assert is_valid_artifact_id(fresh)
    assert require_artifact_id(fresh) == fresh
    for bad in (fresh.upper(), fresh[:-1], fresh + "0", "g" * 32, "../" + fresh[3:], "", None, 5):
        assert not is_valid_artifact_id(bad)
        with pytest.raises(TransferError, match="invalid artifact id"):
            require_artifact_id(bad)


def test_artifact_ref_defaults_and_wire() -> None:
    ref = ArtifactRef("http://a:1", "0" * 32)
    assert (ref.name, ref.size_bytes, ref.sha256, ref.compression) == ("", 0, "", "")
    assert (ref.created_at, ref.expires_at, ref.owner_agent_id) == (0.0, 0.0, "")
    full = ArtifactRef("http://a:1", "1" * 32, "f.bin", 10, "ab" * 32, "zstd", 1.0, 2.0, "owner")
    wire = full.to_wire()
    assert list(wire) == [
        "host_url",
        "artifact_id",
        "name",
        "size_bytes",
        "sha256",
        "compression",
        "created_at",
        "expires_at",
        "owner_agent_id",
    ]
    assert ArtifactRef.from_wire(through_json(wire)) == full
    assert ArtifactRef.from_wire({"artifact_id": "2" * 32}) == ArtifactRef("", "2" * 32)
    with pytest.raises(AttributeError):
        full.name = "x"  # type: ignore[misc]


def test_file_ref_defaults_and_wire() -> None:
    ref = PagletFileRef("data")
    assert ref.mode == ARTIFACT_COPY
    assert ref.status == ARTIFACT_STATUS_REGISTERED
    full = PagletFileRef(
        "data",
        ARTIFACT_MOVE,
        "alpha",
        "http://a:1",
        "/tmp/data",
        1.0,
        2.0,
        3,
        "cd" * 32,
        "beta",
        "http://b:1",
        "/work/x/data",
        "available",
        "",
    )
    assert len(full.to_wire()) == 14
    assert PagletFileRef.from_wire(through_json(full.to_wire())) == full
    assert PagletFileRef.from_wire({"name": "n", "mode": " MOVE "}).mode == ARTIFACT_MOVE
    assert PagletFileRef.from_wire({"name": "n", "status": None}).status == ARTIFACT_STATUS_REGISTERED


def test_normalize_file_mode() -> None:
    assert normalize_file_mode("Copy") == "copy"
    assert normalize_file_mode(None) == "copy"
    assert normalize_file_mode("") == "copy"
    assert normalize_file_mode("move") == "move"
    with pytest.raises(TransferError):
        normalize_file_mode("link")
    with pytest.raises(TransferError):
        normalize_file_mode(1)


@pytest.mark.parametrize(
    ("cls", "bad"),
    [
        (ArtifactRef, {}),
        (ArtifactRef, {"artifact_id": 5}),
        (ArtifactRef, {"artifact_id": "a", "size_bytes": "big"}),
        (ArtifactRef, {"artifact_id": "a", "created_at": "now"}),
        (ArtifactRef, []),
        (PagletFileRef, {}),
        (PagletFileRef, {"name": "n", "mode": "link"}),
        (PagletFileRef, {"name": "n", "size_bytes": 1.5}),
    ],
)
def test_malformed_wire_is_a_serialization_error(cls: Any, bad: Any) -> None:
    with pytest.raises(SerializationError):
        cls.from_wire(bad)
