"""The ``/artifacts`` routes over real sockets on 127.0.0.1, driven by the blocking client functions."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from paglets.artifacts import ArtifactRef, ArtifactStore
from paglets.core.errors import LimitExceededError, StorageQuotaError, TransferError
from paglets.http import HttpClient, HttpServer, Router, new_event_loop
from paglets.remote._artifact_client import (
    artifact_metadata,
    delete_artifact,
    download_artifact,
    list_artifacts,
    upload_artifact,
)
from paglets.runtime._artifact_routes import SHA256_HEADER, build_artifact_routes

T = TypeVar("T")

KiB = 1024
MiB = 1024 * KiB
#: Seconds any single wait may take before a test fails (never reached when green).
WAIT = 20.0


def payload(size: int, seed: int = 0) -> bytes:
    block = hashlib.sha256(b"%d" % seed).digest() * 2048
    return (block * (size // len(block) + 1))[:size]


@dataclass
class Served:
    store: ArtifactStore
    url: str
    http: HttpClient

    def disk(self) -> dict[str, list[str]]:
        s = self.store
        return {d.name: sorted(os.listdir(d)) for d in (s.blobs_dir, s.metadata_dir, s.tmp_dir)}

    def assert_empty_disk(self) -> None:
        assert self.disk() == {"blobs": [], "metadata": [], "tmp": []}
        assert self.store.statistics().reserved_bytes == 0


class ServerThread:
    """An ``HttpServer`` on a uvloop loop in a background thread (as the embedded Host runs it)."""

    def __init__(self, router: Router) -> None:
        self.loop = new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="artifact-server", daemon=True)
        self._thread.start()
        self.server = HttpServer(router)
        self.port = self.call(lambda: self.server.start(["127.0.0.1"], 0))

    def call(self, make: Callable[[], Awaitable[T]]) -> T:
        async def run() -> T:
            return await make()

        future: Future[T] = asyncio.run_coroutine_threadsafe(run(), self.loop)
        return future.result(WAIT)

    def stop(self) -> None:
        try:
            self.call(lambda: self.server.close(deadline=2.0))
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(WAIT)
            self.loop.close()


@pytest.fixture
def make_served(tmp_path: Path) -> Iterator[Callable[..., Served]]:
    cleanup: list[Callable[[], None]] = []

    def make(*, route_host_url: Callable[[], str] | None = None, **options: Any) -> Served:
        router = Router()
        box: list[str] = []
        store = ArtifactStore(tmp_path / f"store{len(cleanup)}", host_url=lambda: box[0], **options)
        build_artifact_routes(router, store, host_url=route_host_url)
        server = ServerThread(router)
        box.append(f"http://127.0.0.1:{server.port}")
        http = HttpClient(timeout=WAIT)
        cleanup.extend([http.close, server.stop, store.close])
        return Served(store, box[0], http)

    yield make
    for step in cleanup:
        step()


@pytest.fixture
def served(make_served: Callable[..., Served]) -> Served:
    return make_served()


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


# --- round trips ------------------------------------------------------------------------------------------


def test_upload_download_round_trip(served: Served, tmp_path: Path) -> None:
    data = payload(3 * MiB + 1)
    source = write(tmp_path / "report.bin", data)
    ref = upload_artifact(
        served.http, served.url + "/", source, owner_agent_id="agent-7", compression="zstd", expires_at=9e9
    )
    assert (ref.host_url, ref.name, ref.size_bytes, ref.owner_agent_id) == (
        served.url,
        "report.bin",
        len(data),
        "agent-7",
    )
    assert (ref.sha256, ref.compression, ref.expires_at) == (hashlib.sha256(data).hexdigest(), "zstd", 9e9)
    assert artifact_metadata(served.http, ref) == ref
    assert artifact_metadata(served.http, served.url, ref.artifact_id) == ref
    assert list_artifacts(served.http, served.url) == [ref]
    assert list_artifacts(served.http, served.url, owner_agent_id="agent-7") == [ref]
    assert list_artifacts(served.http, served.url, owner_agent_id="nobody") == []

    target = tmp_path / "out" / "deeper" / "copy.bin"
    assert download_artifact(served.http, ref, target) == ref
    assert target.read_bytes() == data
    assert os.listdir(target.parent) == ["copy.bin"]  # no part file left
    again = download_artifact(served.http, ref.to_wire(), target, move=True)  # overwrites atomically
    assert again == ref
    assert target.read_bytes() == data
    with pytest.raises(TransferError, match="unknown artifact"):
        artifact_metadata(served.http, ref)
    served.assert_empty_disk()


def test_download_response_head(served: Served, tmp_path: Path) -> None:
    data = payload(100 * KiB)
    ref = upload_artifact(served.http, served.url, write(tmp_path / "a", data), name="custom name")
    assert ref.name == "custom name"
    with served.http.stream("GET", f"{served.url}/artifacts/{ref.artifact_id}") as response:
        assert response.status == 200
        assert response.header("content-type") == "application/octet-stream"
        assert response.header("content-length") == str(len(data))
        assert response.header(SHA256_HEADER) == ref.sha256
        assert response.read() == data


def test_empty_artifact(served: Served, tmp_path: Path) -> None:
    ref = upload_artifact(served.http, served.url, write(tmp_path / "empty", b""))
    assert (ref.size_bytes, ref.sha256) == (0, hashlib.sha256(b"").hexdigest())
    target = tmp_path / "empty.out"
    assert download_artifact(served.http, ref, target) == ref
    assert target.read_bytes() == b""


def test_chunked_upload_with_query_parameters(served: Served) -> None:
    data = payload(2 * MiB + 3)
    digest = hashlib.sha256(data).hexdigest()

    def body() -> Iterator[bytes]:
        for start in range(0, len(data), 100 * KiB):
            yield data[start : start + 100 * KiB]

    url = f"{served.url}/artifacts?owner_agent_id=o&name=n&expires_at=12.5&sha256={digest}&size={len(data)}"
    response = served.http.request("POST", url, body=body())
    assert response.status == 200, response.body
    ref = ArtifactRef.from_wire(response.json()["artifact"])
    assert (ref.owner_agent_id, ref.name, ref.expires_at, ref.sha256, ref.size_bytes) == (
        "o",
        "n",
        12.5,
        digest,
        len(data),
    )
    assert b"".join(served.store.open_blob(ref.artifact_id).iter_chunks()) == data


def test_route_host_url_override(make_served: Callable[..., Served], tmp_path: Path) -> None:
    served = make_served(route_host_url=lambda: "http://public.example:80/paglets")
    ref = upload_artifact(served.http, served.url, write(tmp_path / "x", b"xyz"))
    assert ref.host_url == "http://public.example:80/paglets"
    assert list_artifacts(served.http, served.url)[0].host_url == ref.host_url


# --- errors ------------------------------------------------------------------------------------------------


def test_unknown_and_malformed_ids(served: Served, tmp_path: Path) -> None:
    unknown = "0123456789abcdef" * 2
    response = served.http.request("GET", f"{served.url}/artifacts/{unknown}")
    assert response.status == 400
    assert response.json()["error_type"] == "TransferError"
    with pytest.raises(TransferError):
        artifact_metadata(served.http, served.url, unknown)
    target = tmp_path / "dl" / "never.bin"
    with pytest.raises(TransferError):
        download_artifact(served.http, served.url, target, unknown)
    assert not target.parent.exists()  # the metadata is asked first
    delete_artifact(served.http, served.url, unknown)  # unknown hex id: ok
    response = served.http.request("DELETE", f"{served.url}/artifacts/not-hex")
    assert (response.status, response.json()["error_type"]) == (400, "TransferError")
    with pytest.raises(TransferError):
        delete_artifact(served.http, served.url, "../../etc")
    with pytest.raises(ValueError, match=r"download_artifact\(\) requires artifact_id"):
        download_artifact(served.http, served.url, target)  # no id at all
    with pytest.raises(ValueError, match=r"delete_artifact\(\) requires artifact_id"):
        delete_artifact(served.http, served.url)


def test_wrong_sha256_is_refused_and_leaves_nothing(served: Served, tmp_path: Path) -> None:
    source = write(tmp_path / "f", payload(3 * MiB))
    with pytest.raises(TransferError, match="SHA-256 mismatch"):
        upload_artifact(served.http, served.url, source, expected_sha256="ab" * 32)
    served.assert_empty_disk()
    ref = upload_artifact(served.http, served.url, source)  # the pool recovers
    assert ref.size_bytes == 3 * MiB


def test_reference_mismatch_on_download(served: Served, tmp_path: Path) -> None:
    ref = upload_artifact(served.http, served.url, write(tmp_path / "f", b"content"))
    forged = ArtifactRef(ref.host_url, ref.artifact_id, size_bytes=ref.size_bytes, sha256="cd" * 32)
    target = tmp_path / "t.bin"
    with pytest.raises(TransferError, match="not the one"):
        download_artifact(served.http, forged, target)
    assert not target.exists()
    with pytest.raises(TransferError, match="does not match"):
        download_artifact(served.http, ref, target, "f" * 32)
    with pytest.raises(TransferError, match="directory"):
        download_artifact(served.http, ref, tmp_path)


def test_oversize_is_413(make_served: Callable[..., Served], tmp_path: Path) -> None:
    served = make_served(max_bytes=1 * MiB)
    source = write(tmp_path / "big", payload(2 * MiB))
    with pytest.raises(LimitExceededError) as declared:
        upload_artifact(served.http, served.url, source)
    assert declared.value.http_status == 413

    def chunked() -> Iterator[bytes]:
        for _ in range(4):
            yield payload(512 * KiB)

    response = served.http.request("POST", f"{served.url}/artifacts", body=chunked())
    assert response.status == 413
    response = served.http.request("POST", f"{served.url}/artifacts?size={2 * MiB}", body=chunked())
    assert response.status == 413
    served.assert_empty_disk()
    assert upload_artifact(served.http, served.url, write(tmp_path / "ok", payload(MiB))).size_bytes == MiB


def test_bad_query_parameters(served: Served) -> None:
    for query in ("size=abc", "size=5", "expires_at=nan", "expires_at=later", "sha256=xyz"):
        response = served.http.request("POST", f"{served.url}/artifacts?{query}", body=b"1234")
        assert response.status == 400, query
        assert response.json()["error_type"] == "TransferError", query
    served.assert_empty_disk()


def test_quota_over_http(make_served: Callable[..., Served], tmp_path: Path) -> None:
    served = make_served(quota_bytes=1 * MiB)
    source = write(tmp_path / "f", payload(700 * KiB))
    first = upload_artifact(served.http, served.url, source)
    with pytest.raises(StorageQuotaError):
        upload_artifact(served.http, served.url, source)
    delete_artifact(served.http, first)
    upload_artifact(served.http, served.url, source)
    assert served.store.usage() == 700 * KiB


def test_not_a_regular_file(served: Served, tmp_path: Path) -> None:
    with pytest.raises(TransferError):
        upload_artifact(served.http, served.url, tmp_path)
    with pytest.raises(TransferError):
        upload_artifact(served.http, served.url, tmp_path / "missing")


def wait_for(condition: Callable[[], bool], what: str) -> None:
    """Poll ``condition`` until it holds (fails after ``WAIT`` seconds)."""
    deadline = time.monotonic() + WAIT
    pause = threading.Event()  # never set: ``wait`` is the polling interval
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        pause.wait(0.005)


def raw_connection(served: Served) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", int(served.url.rsplit(":", 1)[1])), timeout=WAIT)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def test_client_gone_during_upload_leaves_nothing(served: Served) -> None:
    with raw_connection(served) as sock:
        sock.sendall(b"POST /artifacts HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % (10 * MiB))
        sock.sendall(payload(3 * MiB))
        wait_for(lambda: served.store.statistics().active_uploads == 1, "the upload to start")
    wait_for(lambda: served.store.statistics().failed_uploads == 1, "the upload to fail")
    served.assert_empty_disk()
    assert served.store.statistics().active_uploads == 0


def test_client_gone_during_download_closes_the_blob(served: Served, tmp_path: Path) -> None:
    ref = upload_artifact(served.http, served.url, write(tmp_path / "f", payload(16 * MiB)))
    fds = len(os.listdir("/proc/self/fd"))
    with raw_connection(served) as sock:
        sock.sendall(b"GET /artifacts/%s HTTP/1.1\r\nHost: t\r\n\r\n" % ref.artifact_id.encode())
        received = b""
        while len(received) < 64 * KiB:
            received += sock.recv(64 * KiB)
        assert received.startswith(b"HTTP/1.1 200 ")
    wait_for(lambda: len(os.listdir("/proc/self/fd")) <= fds, "the blob to be closed")
    assert served.store.delete(ref.artifact_id)


# --- concurrency --------------------------------------------------------------------------------------------


def test_concurrent_uploads_and_downloads(served: Served, tmp_path: Path) -> None:
    count = 8
    datas = [payload(2 * MiB + i * 4099, seed=i) for i in range(count)]
    sources = [write(tmp_path / f"in{i}", d) for i, d in enumerate(datas)]

    def round_trip(i: int) -> ArtifactRef:
        ref = upload_artifact(served.http, served.url, sources[i], owner_agent_id=f"a{i % 2}")
        target = tmp_path / f"out{i}"
        assert download_artifact(served.http, ref, target) == ref
        assert target.read_bytes() == datas[i]
        return ref

    with ThreadPoolExecutor(count) as pool:
        refs = list(pool.map(round_trip, range(count), timeout=WAIT * 3))
    assert len({r.artifact_id for r in refs}) == count
    assert served.store.usage() == sum(map(len, datas))
    assert len(list_artifacts(served.http, served.url, owner_agent_id="a1")) == count // 2
    stats = served.store.statistics()
    assert (stats.created, stats.active_uploads, stats.reserved_bytes) == (count, 0, 0)


# --- 256 MiB with bounded server memory (server in its own process) ----------------------------------------

HELPER = Path(__file__).with_name("_artifact_server.py")
BIG = 256 * MiB
MAX_GROWTH = 32 * MiB


@pytest.mark.slow
def test_256_mib_streamed_with_bounded_server_memory(tmp_path: Path) -> None:
    source = tmp_path / "big.bin"
    block = os.urandom(MiB)
    with source.open("wb") as out:
        for i in range(BIG // MiB):
            out.write(block[i:] + block[:i])
    proc = subprocess.Popen(
        [sys.executable, str(HELPER), str(tmp_path / "store")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin is not None
    assert proc.stdout is not None
    try:
        url = f"http://127.0.0.1:{int(proc.stdout.readline())}"
        with HttpClient(timeout=60.0) as http:
            results: dict[str, Any] = {}
            for kind in ("upload", "download"):
                base = http.request_json("GET", f"{url}/rss?reset=1")["rss"]
                started = time.perf_counter()
                if kind == "upload":
                    ref = upload_artifact(http, url, source)
                else:
                    target = tmp_path / "back.bin"
                    download_artifact(http, ref, target)
                elapsed = time.perf_counter() - started
                peak = http.request_json("GET", f"{url}/rss")["peak"]
                results[kind] = {"growth_mib": (peak - base) / MiB, "mb_per_s": BIG / elapsed / 1e6}
            assert ref.size_bytes == BIG
            assert target.stat().st_size == BIG
            assert ref.sha256 == file_sha256(target) == file_sha256(source)
        print(json.dumps(results))
        for kind, result in results.items():
            assert result["growth_mib"] * MiB < MAX_GROWTH, (
                f"server grew by {result['growth_mib']:.1f} MiB ({kind})"
            )
    finally:
        proc.stdin.close()
        proc.wait(WAIT)
        proc.stdout.close()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(MiB):
            digest.update(block)
    return digest.hexdigest()
