from __future__ import annotations

import hashlib
import io
import os
import uuid
from pathlib import Path
from typing import Any

import msgspec
import pytest

from paglets.artifacts import (
    ARTIFACT_COPY,
    ARTIFACT_MOVE,
    ARTIFACT_STATUS_REGISTERED,
    DEFAULT_ARTIFACT_MAX_BYTES,
    DEFAULT_ARTIFACT_SPOOL_TTL_SECONDS,
    DEFAULT_ARTIFACT_STORAGE_QUOTA_BYTES,
    STREAM_CHUNK_BYTES,
    ArtifactRef,
    PagletFileRef,
    copy_path,
    copy_stream,
    file_sha256,
    is_valid_artifact_id,
    normalize_file_mode,
    paglet_file_ref_from_path,
    require_artifact_id,
    safe_target_filename,
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


# --- paglets 2.0's module helpers -----------------------------------------------------------------------


def test_file_helpers(tmp_path: Path) -> None:
    data = b"abc" * 500_000  # more than one STREAM_CHUNK_BYTES read
    source = tmp_path / "src.bin"
    source.write_bytes(data)
    assert file_sha256(source) == hashlib.sha256(data).hexdigest()
    sink = io.BytesIO()
    assert copy_stream(io.BytesIO(data), sink, expected_bytes=len(data)) == (
        len(data),
        hashlib.sha256(data).hexdigest(),
    )
    assert sink.getvalue() == data
    with pytest.raises(TransferError, match="size mismatch"):
        copy_stream(io.BytesIO(data), io.BytesIO(), expected_bytes=1)
    target = tmp_path / "a" / "b" / "copy.bin"
    copy_path(source, target)
    assert target.read_bytes() == data
    assert os.listdir(target.parent) == ["copy.bin"]
    with pytest.raises(FileNotFoundError):
        copy_path(tmp_path / "missing", target)
    assert os.listdir(target.parent) == ["copy.bin"]  # no part file left
    assert (DEFAULT_ARTIFACT_MAX_BYTES, DEFAULT_ARTIFACT_STORAGE_QUOTA_BYTES) == (1 << 30, 10 << 30)
    assert (DEFAULT_ARTIFACT_SPOOL_TTL_SECONDS, STREAM_CHUNK_BYTES) == (86400, 1 << 20)


def test_safe_target_filename() -> None:
    assert safe_target_filename("report 1.csv") == "report_1.csv"
    assert safe_target_filename("../../etc/passwd") == "etc_passwd"
    assert safe_target_filename("...") == "artifact"
    assert safe_target_filename("") == "artifact"


def test_paglet_file_ref_from_path(tmp_path: Path) -> None:
    source = tmp_path / "data.txt"
    source.write_bytes(b"payload")
    ref = paglet_file_ref_from_path(source, name=None, mode="MOVE", host_name="alpha", host_url="http://a:1/")
    assert (ref.name, ref.mode, ref.size_bytes, ref.status) == ("data.txt", "move", 7, "registered")
    assert ref.sha256 == hashlib.sha256(b"payload").hexdigest()
    assert (ref.source_host_url, ref.current_path) == ("http://a:1", str(source.resolve()))
    assert paglet_file_ref_from_path(source, name="x", mode="copy", host_name="a", host_url="u").name == "x"
    with pytest.raises(TransferError, match="not a file"):
        paglet_file_ref_from_path(tmp_path, name=None, mode="copy", host_name="a", host_url="u")
    with pytest.raises(TransferError):
        paglet_file_ref_from_path(source, name=None, mode="link", host_name="a", host_url="u")
