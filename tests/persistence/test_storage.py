from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from paglets.core.errors import StorageQuotaError
from paglets.persistence import storage as storage_module
from paglets.persistence.storage import (
    DEFAULT_PERSISTENT_STORAGE_QUOTA_BYTES,
    ManagedStorage,
    StorageStatus,
    sanitize_name,
)


def leftovers(root: Path) -> list[str]:
    return [p.name for p in root.rglob("*") if p.name.endswith(".paglets-tmp")]


def test_round_trip_and_nested_directories(tmp_path: Path) -> None:
    storage = ManagedStorage(tmp_path / "store")
    path = storage.write_bytes("a/b/c.bin", b"\x00\x01")
    assert path == (tmp_path / "store" / "a" / "b" / "c.bin").resolve()
    assert storage.read_bytes("a/b/c.bin") == b"\x00\x01"
    assert storage.read_bytes(Path("a") / "b" / "c.bin") == b"\x00\x01"
    storage.write_text("t.txt", "grüße", encoding="latin-1")
    assert storage.read_bytes("t.txt") == "grüße".encode("latin-1")
    storage.write_bytes("mv.bin", memoryview(b"abcdef")[2:4])
    assert storage.read_bytes("mv.bin") == b"cd"
    assert leftovers(storage.root) == []
    with pytest.raises(FileNotFoundError):
        storage.read_bytes("missing")


def test_default_quota(tmp_path: Path) -> None:
    assert DEFAULT_PERSISTENT_STORAGE_QUOTA_BYTES == 10 * 1024 * 1024
    assert ManagedStorage(tmp_path).quota_bytes == DEFAULT_PERSISTENT_STORAGE_QUOTA_BYTES


@pytest.mark.parametrize("bad", ["../x", "a/../../x", "a/../..", "/etc/passwd", ".", "", "a/.."])
def test_paths_must_stay_inside_the_root(tmp_path: Path, bad: str) -> None:
    storage = ManagedStorage(tmp_path / "store")
    with pytest.raises(ValueError, match="managed storage path"):
        storage.write_bytes(bad, b"x")
    with pytest.raises(ValueError, match="managed storage path"):
        storage.read_bytes(bad)


def test_symlinks_out_of_the_root_are_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"s")
    storage = ManagedStorage(tmp_path / "store")
    os.symlink(outside, storage.root / "door")
    os.symlink(outside / "secret", storage.root / "file-link")
    for bad in ("door/secret", "door/new", "file-link"):
        with pytest.raises(ValueError, match="escapes"):
            storage.read_bytes(bad)
        with pytest.raises(ValueError, match="escapes"):
            storage.write_bytes(bad, b"x")
        with pytest.raises(ValueError, match="escapes"):
            storage.delete(bad)
    assert (outside / "secret").read_bytes() == b"s"
    assert sorted(p.name for p in outside.iterdir()) == ["secret"]


def test_symlinks_inside_the_root_are_followed(tmp_path: Path) -> None:
    storage = ManagedStorage(tmp_path / "store")
    storage.write_bytes("real/f", b"1")
    os.symlink(storage.root / "real", storage.root / "alias")
    assert storage.read_bytes("alias/f") == b"1"


def test_quota_is_enforced_and_nothing_changes_on_refusal(tmp_path: Path) -> None:
    storage = ManagedStorage(tmp_path, quota_bytes=10)
    storage.write_bytes("a", b"12345")
    storage.write_bytes("b", b"123")
    with pytest.raises(StorageQuotaError, match="quota"):
        storage.write_bytes("c", b"123")
    assert not (storage.root / "c").exists()
    with pytest.raises(StorageQuotaError):
        storage.write_bytes("a", b"12345678")
    assert storage.read_bytes("a") == b"12345"
    storage.write_bytes("a", b"1234567")  # replacing counts the old size: 7 + 3 = 10
    assert storage.status() == StorageStatus(str(storage.root), 10, 10, 0)
    assert leftovers(storage.root) == []


def test_deletes_free_quota(tmp_path: Path) -> None:
    storage = ManagedStorage(tmp_path, quota_bytes=100)
    storage.write_bytes("d/x", b"1" * 30)
    storage.write_bytes("d/e/y", b"1" * 30)
    storage.write_bytes("z", b"1" * 30)
    assert storage.status().used_bytes == 90
    storage.delete("d")
    assert storage.status().used_bytes == 30
    assert not (storage.root / "d").exists()
    storage.delete("z")
    storage.delete("z")  # missing: no error
    assert storage.status().used_bytes == 0
    assert storage.status().available_bytes == 100


def test_delete_of_the_root_and_clear_empty_the_storage(tmp_path: Path) -> None:
    storage = ManagedStorage(tmp_path / "s", quota_bytes=None)
    storage.write_bytes("a/b", b"123")
    storage.write_bytes("c", b"4")
    storage.delete(".")
    assert list(storage.root.iterdir()) == []
    assert storage.status() == StorageStatus(str(storage.root), 0, None, None)
    storage.write_bytes("x", b"1")
    os.symlink(tmp_path, storage.root / "up")
    storage.clear()
    assert storage.root.is_dir()
    assert list(storage.root.iterdir()) == []
    assert tmp_path.is_dir()  # the link was removed, not followed


def test_usage_is_scanned_once_then_tracked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "s"
    (root / "old").mkdir(parents=True)
    (root / "old" / "f").write_bytes(b"1" * 7)
    storage = ManagedStorage(root, quota_bytes=20)
    assert storage.status().used_bytes == 7

    def no_walks(*args: object, **kwargs: object) -> None:
        raise AssertionError("a write walked the directory tree")

    monkeypatch.setattr(storage_module.os, "walk", no_walks)
    storage.write_bytes("new", b"1" * 10)
    storage.write_bytes("new", b"1" * 3)
    assert storage.status().used_bytes == 10
    monkeypatch.undo()
    (root / "outside-change").write_bytes(b"1" * 5)
    assert storage.status().used_bytes == 10
    assert storage.rescan() == 15


def test_writes_replace_atomically(tmp_path: Path) -> None:
    storage = ManagedStorage(tmp_path)
    storage.write_bytes("f", b"old")
    inode_before = (storage.root / "f").stat().st_ino
    reader = open(storage.root / "f", "rb")  # noqa: SIM115 - held open across the replacement
    try:
        storage.write_bytes("f", b"new content")
        assert reader.read() == b"old"  # the open file is the old one: it was replaced, not rewritten
    finally:
        reader.close()
    assert (storage.root / "f").stat().st_ino != inode_before
    assert storage.read_bytes("f") == b"new content"


def test_failed_writes_leave_no_temporary_files(tmp_path: Path) -> None:
    storage = ManagedStorage(tmp_path, quota_bytes=100)
    storage.write_bytes("file", b"1")
    with pytest.raises(OSError):  # noqa: PT011 - the platform picks the exact error
        storage.write_bytes("file/child", b"2")
    storage.write_bytes("dir/inner", b"3")
    with pytest.raises(IsADirectoryError):
        storage.write_bytes("dir", b"2")
    assert leftovers(storage.root) == []
    assert storage.status().used_bytes == 2


def test_concurrent_writers_never_exceed_the_quota(tmp_path: Path) -> None:
    storage = ManagedStorage(tmp_path, quota_bytes=1000)
    barrier = threading.Barrier(4)
    refused: list[int] = []

    def writer(index: int) -> None:
        barrier.wait(5)
        for i in range(20):
            try:
                storage.write_bytes(f"w{index}/{i}", b"x" * 25)
            except StorageQuotaError:
                refused.append(index)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    on_disk = sum(p.stat().st_size for p in storage.root.rglob("*") if p.is_file())
    assert on_disk == storage.status().used_bytes == 1000
    assert len(refused) == 40


def test_quota_validation(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="negative"):
        ManagedStorage(tmp_path, quota_bytes=-1)
    with pytest.raises(TypeError):
        ManagedStorage(tmp_path, quota_bytes="10")  # type: ignore[arg-type]


def test_sanitize_name() -> None:
    assert sanitize_name("alpha host/1:ü") == "alpha_host_1__"
    assert sanitize_name("pkg.mod.Class") == "pkg.mod.Class"
    assert sanitize_name("a-b_c.d") == "a-b_c.d"
    assert sanitize_name("..") == "__"
    assert sanitize_name(".") == "_"
    assert sanitize_name("") == "_"
    assert sanitize_name("../x") == ".._x"
