"""The artifact store on real files: creation, limits, quota, cleanup on failure, TTL, restart scan."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import os
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import pytest

from paglets.artifacts import is_valid_artifact_id
from paglets.artifacts._store import (
    MAX_BATCH_PIECES,
    READ_CHUNK,
    WRITE_BATCH,
    ArtifactStore,
)
from paglets.core.errors import LimitExceededError, StorageQuotaError, TransferError
from paglets.http.server import new_event_loop

T = TypeVar("T")

KiB = 1024
MiB = 1024 * KiB
HOST = "http://127.0.0.1:4711"
#: Seconds any single wait may take before a test fails (never reached when green).
WAIT = 20.0


def run(make: Callable[[], Awaitable[T]]) -> T:
    """Run ``make()`` on a fresh uvloop loop (closed afterwards, with its async generators)."""

    async def main() -> T:
        async with asyncio.timeout(WAIT):
            return await make()

    loop = new_event_loop()
    try:
        return loop.run_until_complete(main())
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


def payload(size: int, seed: int = 0) -> bytes:
    block = hashlib.sha256(b"%d" % seed).digest() * 2048  # 64 KiB, not all equal bytes
    return (block * (size // len(block) + 1))[:size]


async def pieces(data: bytes, size: int) -> AsyncIterator[bytes | memoryview]:
    view = memoryview(data)
    for start in range(0, len(data), size):
        yield view[start : start + size] if start % 2 else bytes(view[start : start + size])


def files(store: ArtifactStore) -> dict[str, list[str]]:
    return {d.name: sorted(os.listdir(d)) for d in (store.blobs_dir, store.metadata_dir, store.tmp_dir)}


def assert_empty_disk(store: ArtifactStore) -> None:
    assert files(store) == {"blobs": [], "metadata": [], "tmp": []}
    stats = store.statistics()
    assert (stats.reserved_bytes, stats.active_uploads) == (0, 0)


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def make_store(tmp_path: Path, clock: Clock) -> Iterator[Callable[..., ArtifactStore]]:
    stores: list[ArtifactStore] = []

    def make(**options: object) -> ArtifactStore:
        options.setdefault("host_url", lambda: HOST)
        options.setdefault("clock", clock)
        store = ArtifactStore(tmp_path / "artifacts", **options)  # type: ignore[arg-type]
        stores.append(store)
        return store

    yield make
    for store in stores:
        store.close()


@pytest.fixture
def store(make_store: Callable[..., ArtifactStore]) -> ArtifactStore:
    return make_store()


def read_all(store: ArtifactStore, artifact_id: str) -> bytes:
    return b"".join(store.open_blob(artifact_id).iter_chunks())


# --- creation ---------------------------------------------------------------------------------------------


def test_create_from_file_round_trip(store: ArtifactStore, tmp_path: Path, clock: Clock) -> None:
    data = payload(3 * MiB + 17)
    source = tmp_path / "input.bin"
    source.write_bytes(data)
    ref = store.create_from_file(source, owner_agent_id="agent-1", compression="zstd", expires_at=5.0)
    assert is_valid_artifact_id(ref.artifact_id)
    assert (ref.host_url, ref.name, ref.size_bytes) == (HOST, "input.bin", len(data))
    assert ref.sha256 == hashlib.sha256(data).hexdigest()
    assert (ref.compression, ref.expires_at, ref.owner_agent_id, ref.created_at) == (
        "zstd",
        5.0,
        "agent-1",
        clock.now,
    )
    assert store.metadata(ref.artifact_id) == ref
    assert store.list() == [ref]
    assert store.list("agent-1") == [ref]
    assert store.list("other") == []
    assert ref.artifact_id in store
    assert read_all(store, ref.artifact_id) == data
    assert store.usage() == len(data)
    assert files(store) == {
        "blobs": [f"{ref.artifact_id}.bin"],
        "metadata": [f"{ref.artifact_id}.json"],
        "tmp": [],
    }
    stats = store.statistics()
    assert (stats.artifacts, stats.used_bytes, stats.created, stats.bytes_received) == (
        1,
        len(data),
        1,
        len(data),
    )
    assert stats.bytes_served == len(data)


@pytest.mark.parametrize(
    ("size", "piece"),
    [(0, 1), (1, 1), (WRITE_BATCH * 3 + 5, 64 * KiB), (WRITE_BATCH, WRITE_BATCH), (MAX_BATCH_PIECES * 3, 1)],
)
def test_create_from_stream(store: ArtifactStore, size: int, piece: int) -> None:
    data = payload(size, seed=size)

    async def go() -> tuple[str, bytes]:
        ref = await store.create_from_stream_async(
            pieces(data, piece), name="n", owner_agent_id="a", declared_size=size
        )
        reader = store.open_blob(ref.artifact_id)
        got = [bytes(chunk) async for chunk in reader]
        assert all(len(chunk) <= READ_CHUNK for chunk in got)
        return ref.sha256, b"".join(got)

    digest, back = run(go)
    assert back == data
    assert digest == hashlib.sha256(data).hexdigest()
    assert store.usage() == size


def test_stream_accepts_bytearray_and_wide_memoryviews(store: ArtifactStore) -> None:
    async def source() -> AsyncIterator[bytes | bytearray | memoryview]:
        yield bytearray(b"ab")
        yield memoryview(b"\x01\x00\x02\x00").cast("H")  # 2-byte items: counted in bytes
        yield b""

    ref = run(lambda: store.create_from_stream_async(source()))
    assert read_all(store, ref.artifact_id) == b"ab\x01\x00\x02\x00"
    assert ref.size_bytes == 6


def test_expected_hash_accepted_in_any_case(store: ArtifactStore) -> None:
    data = payload(1000)
    digest = hashlib.sha256(data).hexdigest()
    ref = run(lambda: store.create_from_stream_async(pieces(data, 300), expected_sha256=digest.upper()))
    assert ref.sha256 == digest


# --- failures leave nothing behind -----------------------------------------------------------------------


def test_hash_mismatch_removes_everything(store: ArtifactStore) -> None:
    with pytest.raises(TransferError, match="SHA-256 mismatch"):
        run(
            lambda: store.create_from_stream_async(
                pieces(payload(2 * MiB), 64 * KiB), expected_sha256="0" * 64
            )
        )
    assert_empty_disk(store)
    assert store.statistics().failed_uploads == 1


def test_declared_size_is_checked_both_ways(store: ArtifactStore) -> None:
    data = payload(5000)
    with pytest.raises(TransferError, match="ended after 5000 of 6000"):
        run(lambda: store.create_from_stream_async(pieces(data, 1000), declared_size=6000))
    with pytest.raises(TransferError, match="more than its declared 4000"):
        run(lambda: store.create_from_stream_async(pieces(data, 1000), declared_size=4000))
    assert_empty_disk(store)


def test_max_bytes_declared_and_running(make_store: Callable[..., ArtifactStore]) -> None:
    store = make_store(max_bytes=1 * MiB)
    with pytest.raises(LimitExceededError) as declared:
        run(lambda: store.create_from_stream_async(pieces(b"x", 1), declared_size=MiB + 1))
    assert declared.value.http_status == 413
    with pytest.raises(LimitExceededError):
        run(lambda: store.create_from_stream_async(pieces(payload(2 * MiB), 64 * KiB)))
    assert_empty_disk(store)
    exact = run(lambda: store.create_from_stream_async(pieces(payload(MiB), 64 * KiB)))
    assert exact.size_bytes == MiB


def test_max_bytes_for_files(make_store: Callable[..., ArtifactStore], tmp_path: Path) -> None:
    store = make_store(max_bytes=1000)
    source = tmp_path / "big"
    source.write_bytes(b"y" * 1001)
    with pytest.raises(LimitExceededError):
        store.create_from_file(source)
    assert_empty_disk(store)


def test_failing_source_and_cancellation_clean_up(store: ArtifactStore) -> None:
    closed: list[bool] = []

    async def broken() -> AsyncIterator[bytes]:
        yield payload(3 * MiB)
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        run(lambda: store.create_from_stream_async(broken()))
    assert_empty_disk(store)

    async def cancelled() -> None:
        started = asyncio.Event()
        never = asyncio.Event()

        async def stalled() -> AsyncIterator[bytes]:
            try:
                yield payload(WRITE_BATCH * 2)
                started.set()
                await never.wait()
                yield b"unreachable"
            finally:
                closed.append(True)

        task = asyncio.ensure_future(store.create_from_stream_async(stalled()))
        await started.wait()
        assert len(os.listdir(store.tmp_dir)) == 1
        assert store.statistics().active_uploads == 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run(cancelled)
    assert closed == [True]
    assert_empty_disk(store)


def test_missing_source_file(store: ArtifactStore, tmp_path: Path) -> None:
    with pytest.raises(TransferError, match="cannot read"):
        store.create_from_file(tmp_path / "nope")
    assert_empty_disk(store)


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"expected_sha256": "abc"}, TransferError),
        ({"expected_sha256": "g" * 64}, TransferError),
        ({"expires_at": float("nan")}, TransferError),
        ({"expires_at": "soon"}, TransferError),
        ({"declared_size": -1}, TransferError),
        ({"name": "n" * 2000}, LimitExceededError),
        ({"owner_agent_id": "o" * 300}, LimitExceededError),
    ],
)
def test_bad_arguments(store: ArtifactStore, options: dict[str, object], error: type[Exception]) -> None:
    with pytest.raises(error):
        run(lambda: store.create_from_stream_async(pieces(b"data", 2), **options))  # type: ignore[arg-type]
    assert_empty_disk(store)


# --- quota -------------------------------------------------------------------------------------------------


def test_quota_is_tracked_incrementally(make_store: Callable[..., ArtifactStore]) -> None:
    store = make_store(quota_bytes=1 * MiB)
    first = run(lambda: store.create_from_stream_async(pieces(payload(600 * KiB), 64 * KiB)))
    with pytest.raises(StorageQuotaError):
        run(lambda: store.create_from_stream_async(pieces(payload(600 * KiB), 64 * KiB)))
    with pytest.raises(StorageQuotaError):  # refused before reading when declared
        run(lambda: store.create_from_stream_async(pieces(b"", 1), declared_size=600 * KiB))
    assert store.usage() == 600 * KiB
    assert files(store)["blobs"] == [f"{first.artifact_id}.bin"]
    assert store.delete(first.artifact_id) is True
    assert store.usage() == 0
    second = run(lambda: store.create_from_stream_async(pieces(payload(MiB), 64 * KiB)))
    assert store.usage() == second.size_bytes == MiB


def test_quota_for_files_fails_before_copying(
    make_store: Callable[..., ArtifactStore], tmp_path: Path
) -> None:
    store = make_store(quota_bytes=1 * MiB)
    source = tmp_path / "f"
    source.write_bytes(payload(MiB + 1))
    with pytest.raises(StorageQuotaError):
        store.create_from_file(source)
    assert_empty_disk(store)
    source.write_bytes(payload(MiB))
    assert store.create_from_file(source).size_bytes == store.usage() == MiB


def test_uploads_in_progress_hold_quota(make_store: Callable[..., ArtifactStore]) -> None:
    store = make_store(quota_bytes=1 * MiB)

    async def go() -> None:
        release = asyncio.Event()
        holding = asyncio.Event()

        async def slow() -> AsyncIterator[bytes]:
            yield payload(700 * KiB)
            holding.set()
            await release.wait()

        first = asyncio.ensure_future(store.create_from_stream_async(slow()))
        await holding.wait()
        assert store.statistics().reserved_bytes == 700 * KiB
        with pytest.raises(StorageQuotaError):
            await store.create_from_stream_async(pieces(payload(400 * KiB), 64 * KiB))
        release.set()
        ref = await first
        assert ref.size_bytes == 700 * KiB

    run(go)
    stats = store.statistics()
    assert (stats.used_bytes, stats.reserved_bytes, stats.artifacts) == (700 * KiB, 0, 1)


def test_unlimited_store(make_store: Callable[..., ArtifactStore]) -> None:
    store = make_store(max_bytes=None, quota_bytes=None)
    ref = run(lambda: store.create_from_stream_async(pieces(payload(2 * MiB), MiB), declared_size=2 * MiB))
    assert store.statistics().quota_bytes is None
    assert store.usage() == ref.size_bytes


# --- deletion and owners ----------------------------------------------------------------------------------


def test_delete_rules(store: ArtifactStore) -> None:
    ref = run(lambda: store.create_from_stream_async(pieces(b"abc", 1)))
    assert store.delete(ref.artifact_id) is True
    assert store.delete(ref.artifact_id) is False  # unknown hex id: fine
    for bad in ("../etc/passwd", ref.artifact_id.upper(), "", "0" * 31):
        with pytest.raises(TransferError):
            store.delete(bad)
    with pytest.raises(TransferError, match="unknown artifact"):
        store.metadata(ref.artifact_id)
    with pytest.raises(TransferError, match="unknown artifact"):
        store.open_blob(ref.artifact_id)
    assert run(lambda: store.delete_async("f" * 32)) is False
    assert_empty_disk(store)
    assert store.statistics().deleted == 1


def test_delete_owned_by(store: ArtifactStore) -> None:
    refs = [
        run(functools.partial(store.create_from_stream_async, pieces(b"x" * 10, 3), owner_agent_id=o))
        for o in "aab"
    ]
    unowned = run(lambda: store.create_from_stream_async(pieces(b"free", 3)))
    assert store.delete_owned_by("") == 0
    assert store.delete_owned_by("a") == 2
    assert run(lambda: store.delete_owned_by_async("a")) == 0
    assert [r.artifact_id for r in store.list()] == [refs[2].artifact_id, unowned.artifact_id]
    assert store.usage() == 10 + 4


def test_open_blob_survives_delete_and_early_close(store: ArtifactStore) -> None:
    data = payload(3 * READ_CHUNK + 1)
    ref = run(lambda: store.create_from_stream_async(pieces(data, MiB)))
    fds_before = len(os.listdir("/proc/self/fd"))
    reader = store.open_blob(ref.artifact_id)
    store.delete(ref.artifact_id)
    assert b"".join(reader.iter_chunks()) == data

    async def partial() -> bytes:
        reader = store.open_blob(other.artifact_id)
        first = await reader.__anext__()  # a second chunk is being read ahead now
        await reader.aclose()
        await reader.aclose()
        return first

    other = run(lambda: store.create_from_stream_async(pieces(data, MiB)))
    assert run(partial) == data[:READ_CHUNK]
    unused = store.open_blob(other.artifact_id)
    unused.close()
    assert len(os.listdir("/proc/self/fd")) == fds_before


# --- housekeeping -------------------------------------------------------------------------------------------


def test_cleanup_expired_with_injected_clock(store: ArtifactStore, clock: Clock) -> None:
    forever = run(lambda: store.create_from_stream_async(pieces(b"keep", 2)))
    soon = run(lambda: store.create_from_stream_async(pieces(b"soon", 2), expires_at=clock.now + 10))
    later = run(lambda: store.create_from_stream_async(pieces(b"later", 2), expires_at=clock.now + 100))
    assert store.cleanup_expired() == 0
    clock.now += 10
    assert store.cleanup_expired() == 1
    assert soon.artifact_id not in store
    assert store.cleanup_expired(clock.now + 1000) == 1
    assert later.artifact_id not in store
    assert [r.artifact_id for r in store.list()] == [forever.artifact_id]
    assert store.statistics().expired == 2


def test_cleanup_stale_parts_spares_active_uploads(make_store: Callable[..., ArtifactStore]) -> None:
    store = make_store(spool_ttl=60.0)
    assert store.cleanup_interval == 60.0
    stray = store.tmp_dir / ("a" * 32 + ".part")
    stray.write_bytes(b"left over")
    other = store.tmp_dir / "notes.txt"  # not ours: never touched
    other.write_bytes(b"")
    now = os.stat(stray).st_mtime

    async def go() -> None:
        holding = asyncio.Event()
        release = asyncio.Event()

        async def slow() -> AsyncIterator[bytes]:
            yield b"partial"
            holding.set()
            await release.wait()

        upload = asyncio.ensure_future(store.create_from_stream_async(slow()))
        await holding.wait()
        assert store.cleanup_stale_parts(now + 59) == 0
        result = await store.cleanup_async(now + 61)
        assert (result.expired, result.stale_parts) == (0, 1)
        release.set()
        await upload

    run(go)
    assert not stray.exists()
    assert other.exists()
    assert store.statistics().stale_parts_removed == 1
    assert len(store.list()) == 1


def test_cleanup_interval_is_capped(make_store: Callable[..., ArtifactStore]) -> None:
    assert make_store().cleanup_interval == 300.0


# --- restart ----------------------------------------------------------------------------------------------


def test_restart_scan_rebuilds_and_drops_orphans(make_store: Callable[..., ArtifactStore]) -> None:
    store = make_store()
    keep = [
        run(functools.partial(store.create_from_stream_async, pieces(payload(1000 + i), 100)))
        for i in range(3)
    ]
    damaged = run(lambda: store.create_from_stream_async(pieces(b"damaged", 3)))
    truncated = run(lambda: store.create_from_stream_async(pieces(b"truncated", 3)))
    store.close()
    (store.metadata_dir / f"{damaged.artifact_id}.json").write_bytes(b"{not json")
    (store.blobs_dir / f"{truncated.artifact_id}.bin").write_bytes(b"trunc")
    orphan_blob = store.blobs_dir / ("b" * 32 + ".bin")
    orphan_blob.write_bytes(b"nobody")
    orphan_meta = store.metadata_dir / ("c" * 32 + ".json")
    orphan_meta.write_bytes((store.metadata_dir / f"{keep[0].artifact_id}.json").read_bytes())
    (store.tmp_dir / ("d" * 32 + ".part")).write_bytes(b"half")
    (store.tmp_dir / ("e" * 32 + ".json.tmp")).write_bytes(b"{")
    foreign = store.blobs_dir / "README"
    foreign.write_bytes(b"")

    again = make_store()
    assert sorted(r.artifact_id for r in again.list()) == sorted(r.artifact_id for r in keep)
    assert again.usage() == sum(r.size_bytes for r in keep)
    assert again.metadata(keep[1].artifact_id) == keep[1]
    assert read_all(again, keep[2].artifact_id) == payload(1002)
    assert sorted(os.listdir(again.blobs_dir)) == sorted([f"{r.artifact_id}.bin" for r in keep] + ["README"])
    assert sorted(os.listdir(again.metadata_dir)) == sorted(f"{r.artifact_id}.json" for r in keep)
    assert os.listdir(again.tmp_dir) == []


def test_close_stops_workers_and_the_store_stays_usable(store: ArtifactStore) -> None:
    def workers() -> int:
        return sum(t.name.startswith("paglets-artifacts") for t in threading.enumerate())

    ref = run(lambda: store.create_from_stream_async(pieces(b"abc", 1)))
    assert workers() > 0
    store.close()
    store.close()
    assert workers() == 0
    again = run(lambda: store.create_from_stream_async(pieces(b"def", 1)))  # a restarted host uploads again
    assert read_all(store, ref.artifact_id) == b"abc"
    assert store.delete(again.artifact_id) is True
    store.close()
    assert workers() == 0


def test_borrowed_executor_is_not_shut_down(make_store: Callable[..., ArtifactStore]) -> None:
    with ThreadPoolExecutor(2) as executor:
        store = make_store(executor=executor)
        ref = run(lambda: store.create_from_stream_async(pieces(b"abc", 1)))
        store.close()
        assert executor.submit(lambda: 42).result(WAIT) == 42
        with pytest.raises(TransferError, match="closed"):
            store.open_blob(ref.artifact_id)
        assert store.delete(ref.artifact_id) is True  # blocking methods still work
    assert_empty_disk(store)


def test_constructor_validates_limits(tmp_path: Path) -> None:
    for options in ({"max_bytes": -1}, {"quota_bytes": -1}, {"spool_ttl": 0}):
        with pytest.raises(ValueError):  # noqa: PT011
            ArtifactStore(tmp_path, **options)  # type: ignore[arg-type]
