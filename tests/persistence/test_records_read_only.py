"""RecordStore read-only views: they index and read what is on disk, change nothing, take no lock."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from paglets.core.errors import HostError, InvalidAgentError
from paglets.core.messages import Message
from paglets.persistence._records import RecordStore, StoredRecord, file_stem


def _record(agent_id: str, state: bytes = b"state") -> StoredRecord:
    return StoredRecord(agent_id=agent_id, agent_class="m:A", state_class="m:S", state=state)


def _tree(root: Path) -> dict[str, Any]:
    return {
        str(path.relative_to(root)): (path.stat().st_size, path.stat().st_mtime_ns)
        for path in sorted(root.rglob("*"))
    }


def _messy_directory(root: Path) -> None:
    """Two good records (one with a queued message), a temporary file, an orphan log, a corrupt record
    and a file that is no record: everything ``load`` of an owning store would repair."""
    store = RecordStore(root, durable=False)
    store.load()
    store.write(_record("good"))
    store.write(_record("queued"))
    store.append_message("queued", Message("m").to_wire())
    store.close()
    inactive = root / "inactive"
    (inactive / ".debris.rec.tmp").write_bytes(b"half")
    (inactive / (file_stem("gone") + ".q")).write_bytes(b"orphan log")
    (inactive / (file_stem("bad") + ".rec")).write_bytes(b"not a record at all")
    (inactive / "old.json").write_text("{}")


def test_read_only_view_indexes_and_reads_without_changing_anything(tmp_path: Path) -> None:
    _messy_directory(tmp_path)
    before = _tree(tmp_path)
    view = RecordStore(tmp_path, read_only=True)
    assert view.load() == 2
    assert sorted(s.agent_id for s in view.summaries()) == ["good", "queued"]
    summary = view.summary("queued")
    assert summary is not None
    assert summary.queued_count == 1
    record = view.read("queued")
    assert bytes(record.state) == b"state"
    assert [m.message["kind"] for m in record.queued_messages] == ["m"]
    with pytest.raises(InvalidAgentError):
        view.read("bad")
    view.close()
    assert _tree(tmp_path) == before
    assert not (tmp_path / "quarantine").exists()


def test_read_only_view_refuses_changes(tmp_path: Path) -> None:
    _messy_directory(tmp_path)
    view = RecordStore(tmp_path, read_only=True)
    view.load()
    with pytest.raises(HostError, match="read-only"):
        view.write(_record("new"))
    with pytest.raises(HostError, match="read-only"):
        view.append_message("good", Message("m").to_wire())
    with pytest.raises(HostError, match="read-only"):
        view.delete("good")
    assert view.summary("good") is not None
    view.close()


def test_read_only_view_takes_no_lock_and_the_owner_still_repairs(tmp_path: Path) -> None:
    _messy_directory(tmp_path)
    view = RecordStore(tmp_path, read_only=True)
    view.load()
    owner = RecordStore(tmp_path, durable=False)  # would raise if the view held the lock
    assert owner.load() == 2
    names = set(os.listdir(tmp_path / "inactive"))
    assert ".debris.rec.tmp" not in names
    assert "old.json" not in names
    assert file_stem("gone") + ".q" not in names
    assert (tmp_path / "quarantine").exists()
    second_view = RecordStore(tmp_path, read_only=True)  # reading beside a running owner works too
    assert second_view.load() == 2
    second_view.close()
    owner.close()
    view.close()


def test_read_only_view_of_a_missing_directory_is_empty(tmp_path: Path) -> None:
    view = RecordStore(tmp_path / "nothing", read_only=True)
    assert view.load() == 0
    assert view.summaries() == []
    with pytest.raises(InvalidAgentError):
        view.read("x")
    view.close()
    assert not (tmp_path / "nothing").exists()
