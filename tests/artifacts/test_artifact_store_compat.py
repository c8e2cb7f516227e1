"""``ArtifactStore`` used with paglets 2.0's methods and keywords, on real files."""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from paglets.artifacts import ArtifactStore, ArtifactWriteResult
from paglets.artifacts import _store as _artifacts
from paglets.core.errors import LimitExceededError, TransferError

HOST = "http://127.0.0.1:4711"
MiB = 1024 * 1024


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ArtifactStore]:
    with ArtifactStore(tmp_path / "artifacts", host_url=HOST + "/") as made:
        yield made


def files(store: ArtifactStore) -> list[str]:
    return sorted(
        f"{d.name}/{name}"
        for d in (store.blobs_dir, store.metadata_dir, store.tmp_dir)
        for name in os.listdir(d)
    )


def test_the_public_name_is_the_runtime_store() -> None:
    assert ArtifactStore is _artifacts.ArtifactStore


def test_2_0_keywords_and_their_rules(tmp_path: Path) -> None:
    with ArtifactStore(tmp_path / "a", host_url=HOST, max_artifact_bytes=None, spool_ttl_seconds=0.2) as a:
        assert (a.max_bytes, a.max_artifact_bytes, a.spool_ttl_seconds) == (None, 0, 1.0)
    with ArtifactStore(tmp_path / "b", host_url=HOST, max_artifact_bytes=0, quota_bytes=None) as b:
        assert (b.max_bytes, b.quota_bytes) == (None, None)  # 2.0: 0 means no limit
    with ArtifactStore(tmp_path / "c", host_url=HOST, max_artifact_bytes=5) as c:
        with pytest.raises(LimitExceededError):
            c.create_from_stream(io.BytesIO(b"123456"))
        assert c.create_from_stream(io.BytesIO(b"12345")).ref.size_bytes == 5
    with ArtifactStore(tmp_path / "d", max_bytes=0, spool_ttl=0.5) as d:  # our exact limits
        assert (d.max_bytes, d.spool_ttl) == (0, 0.5)
        assert d.host_url == ""


def test_create_from_path(store: ArtifactStore, tmp_path: Path) -> None:
    source = tmp_path / "in.bin"
    source.write_bytes(b"x" * 1000)
    result = store.create_from_path(source, owner_agent_id="a1", compression="zstd", expires_at=9.0)
    assert isinstance(result, ArtifactWriteResult)
    assert result.path == store.blob_path(result.ref.artifact_id)
    assert result.path.read_bytes() == b"x" * 1000
    ref = result.ref
    assert (ref.host_url, ref.name, ref.owner_agent_id, ref.compression, ref.expires_at) == (
        HOST,
        "in.bin",
        "a1",
        "zstd",
        9.0,
    )
    assert store.ref(ref.artifact_id) == ref
    assert store.list(owner_agent_id="a1") == [ref]
    named = store.create_from_path(source, name="other", expected_sha256=ref.sha256.upper())
    assert named.ref.name == "other"
    with pytest.raises(TransferError, match="directory"):
        store.create_from_path(tmp_path)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    held = os.open(fifo, os.O_RDWR)  # a writer, so that opening it for reading does not block
    try:
        with pytest.raises(TransferError, match="not a regular file"):
            store.create_from_path(fifo)
    finally:
        os.close(held)
    with pytest.raises(TransferError):
        store.create_from_path(tmp_path / "missing")


def test_create_from_stream_with_size_bytes(store: ArtifactStore) -> None:
    data = os.urandom(3 * MiB + 5)
    result = store.create_from_stream(io.BytesIO(data), size_bytes=len(data), name="s", owner_agent_id="o")
    assert result.ref.sha256 == hashlib.sha256(data).hexdigest()
    assert result.path.read_bytes() == data
    unknown = store.create_from_stream(io.BytesIO(b"abc"))  # size_bytes=-1: not known in advance
    assert (unknown.ref.size_bytes, unknown.ref.name) == (3, "")
    before = files(store)
    for wrong in (2, 4):  # the size given is the size
        with pytest.raises(TransferError):
            store.create_from_stream(io.BytesIO(b"abc"), size_bytes=wrong)
    with pytest.raises(TransferError, match="SHA-256"):
        store.create_from_stream(io.BytesIO(b"abc"), expected_sha256="0" * 64)
    assert files(store) == before  # failures leave nothing behind


def test_create_from_http_request(store: ArtifactStore) -> None:
    body = b"hello artifact world"
    plain = store.create_from_http_request(
        {"Content-Length": str(len(body))}, io.BytesIO(body + b"next request"), name="p", owner_agent_id="o"
    )
    assert plain.path.read_bytes() == body
    assert (plain.ref.name, plain.ref.owner_agent_id) == ("p", "o")
    chunked_body = b"5;ext=1\r\nhello\r\n7\r\n artifa\r\n8\r\nct world\r\n0\r\nX-Trailer: 1\r\n\r\n"
    chunked = store.create_from_http_request({"Transfer-Encoding": "chunked"}, io.BytesIO(chunked_body))
    assert chunked.path.read_bytes() == body
    empty = store.create_from_http_request({}, io.BytesIO(b""))
    assert empty.ref.size_bytes == 0
    before = files(store)
    for headers, raw in (
        ({"Content-Length": "100"}, body),  # ends early
        ({"Content-Length": "-1"}, body),
        ({"Transfer-Encoding": "chunked"}, b"zz\r\nhello\r\n0\r\n\r\n"),  # bad size
        ({"Transfer-Encoding": "chunked"}, b"5\r\nhelloXX0\r\n\r\n"),  # no CRLF after the data
        ({"Transfer-Encoding": "chunked"}, b"5\r\nhel"),  # ends inside a chunk
        ({"Transfer-Encoding": "chunked"}, b"f" * 10_000),  # endless size line
        ({"Transfer-Encoding": "chunked"}, b"0\r\n" + b"X: 1\r\n" * 100 + b"\r\n"),  # too many trailers
    ):
        with pytest.raises(TransferError):
            store.create_from_http_request(headers, io.BytesIO(raw))
    assert files(store) == before


def test_readers_export_and_delete(store: ArtifactStore, tmp_path: Path) -> None:
    data = os.urandom(MiB + 3)
    ref = store.create_from_stream(io.BytesIO(data), owner_agent_id="owner").ref
    with store.open_reader(ref.artifact_id) as reader:
        assert reader.read() == data
    target = tmp_path / "out" / "deep" / "copy.bin"
    assert store.export_to_path(ref.artifact_id, target, expected_sha256=ref.sha256.upper()) == ref
    assert target.read_bytes() == data
    assert os.listdir(target.parent) == ["copy.bin"]
    with pytest.raises(TransferError, match="checksum"):
        store.export_to_path(ref.artifact_id, tmp_path / "never.bin", expected_sha256="0" * 64)
    assert not (tmp_path / "never.bin").exists()
    other = store.create_from_stream(io.BytesIO(b"keep"), owner_agent_id="someone else").ref
    store.delete_owner("owner")
    assert store.list() == [other]
    for call in (store.ref, store.open_reader, store.blob_path):
        with pytest.raises(TransferError, match="unknown artifact"):
            call(ref.artifact_id)
    with pytest.raises(TransferError, match="unknown artifact"):
        store.export_to_path(ref.artifact_id, tmp_path / "gone.bin")
    with pytest.raises(TransferError, match="invalid artifact id"):
        store.ref("../etc/passwd")


def test_set_host_url_and_cleanup_temporary(tmp_path: Path) -> None:
    now = [1000.0]
    with ArtifactStore(
        tmp_path / "a", host_url="http://old:1", spool_ttl_seconds=5, clock=lambda: now[0]
    ) as store:
        soon = store.create_from_stream(io.BytesIO(b"soon"), expires_at=1010.0).ref
        keep = store.create_from_stream(io.BytesIO(b"keep")).ref
        store.set_host_url("http://new:2/")
        assert store.ref(keep.artifact_id).host_url == "http://new:2"
        assert store.host_url == "http://new:2"
        stale = store.tmp_dir / ("ab" * 16 + ".part")
        stale.write_bytes(b"left over")
        os.utime(stale, (0, 0))
        store.cleanup_temporary(now=1010.0)
        assert [r.artifact_id for r in store.list()] == [keep.artifact_id]
        assert soon.artifact_id not in store
        assert not stale.exists()
