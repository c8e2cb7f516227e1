"""RecordStore: every operation, the on-disk rules and every kind of corruption."""

from __future__ import annotations

import itertools
import os
import random
import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paglets.core.errors import (
    ChecksumError,
    FrameError,
    HostError,
    InvalidAgentError,
    LimitExceededError,
    MailboxFullError,
    ProtocolError,
    SerializationError,
)
from paglets.core.messages import Message
from paglets.persistence._recordformat import (
    LOG_HEADER_SIZE,
    RECORD_HEAD_SIZE,
    encode_entry,
    encode_message,
)
from paglets.persistence._records import (
    MAX_QUEUED_ENTRY,
    MAX_QUEUED_MESSAGES,
    RecordStore,
    StoredMessage,
    StoredRecord,
    file_stem,
)
from paglets.persistence.persistency import QueuedMessage

Reports = list[tuple[str, str]]


def make_record(
    agent_id: str = "a1", state: bytes | bytearray | memoryview = b"state", **kw: Any
) -> StoredRecord:
    kw.setdefault("agent_class", "tests.mod:Agent")
    kw.setdefault("state_class", "tests.mod:State")
    return StoredRecord(agent_id=agent_id, state=state, **kw)


def message(kind: str = "ping", **args: Any) -> dict[str, Any]:
    return Message(kind, args=args).to_wire()


@pytest.fixture
def reports() -> Reports:
    return []


@pytest.fixture
def store(tmp_path: Path, reports: Reports) -> Any:
    s = RecordStore(tmp_path, on_quarantine=lambda label, reason: reports.append((label, reason)))
    s.load()
    yield s
    s.close()


def reopen(store: RecordStore, reports: Reports, **kw: Any) -> RecordStore:
    store.close()
    fresh = RecordStore(store.root, on_quarantine=lambda label, reason: reports.append((label, reason)), **kw)
    fresh.load()
    return fresh


def kinds(record: StoredRecord) -> list[str]:
    return [m.message["kind"] for m in record.queued_messages]


def files(store: RecordStore) -> list[str]:
    return sorted(os.listdir(store.directory))


# --- operations ------------------------------------------------------------------------------------------


def test_write_read_round_trip_keeps_every_field(store: RecordStore, reports: Reports) -> None:
    record = make_record(
        state=b"\x00\x01state",
        policy={"activate_on_startup": True, "activate_at": 12.5, "queue_messages_when_inactive": False},
        request={"reason": "shutdown", "source": "host", "metadata": {"k": b"\xff"}},
        deactivated_at=1234.5,
        registered_files=[{"file": "a.txt", "artifact": "0" * 32}],
        metadata={"blob": bytearray(b"xy"), "n": 3},
        queued_messages=[StoredMessage(message=message("first"), oneway=True, queued_at=7.0)],
    )
    summary = store.write(record)
    assert summary.activate_on_startup
    assert summary.activate_at == 12.5
    assert not summary.queue_messages_when_inactive
    assert summary.activate_on_message
    assert (summary.reason, summary.source, summary.state_length, summary.queued_count) == (
        "shutdown",
        "host",
        7,
        1,
    )
    got = store.read("a1")
    assert bytes(got.state) == b"\x00\x01state"
    assert type(got.state) is bytearray
    assert got.policy == record.policy
    assert got.request == record.request
    assert got.metadata == {"blob": bytearray(b"xy"), "n": 3}
    assert type(got.metadata["blob"]) is bytearray
    assert got.registered_files == record.registered_files
    assert got.deactivated_at == 1234.5
    assert got.queued_messages == record.queued_messages
    store = reopen(store, reports)
    assert store.summaries() == [summary]
    assert store.read("a1") == got
    store.close()
    assert reports == []


@pytest.mark.parametrize(
    "state",
    [b"", os.urandom(3 * 1024 * 1024 + 17), b"compressible " * 300_000],
    ids=["empty", "random-3MiB", "compressible-3.9MiB"],
)
def test_states_of_any_size_round_trip(store: RecordStore, state: bytes) -> None:
    store.write(make_record(state=memoryview(state)))
    assert store.read("a1").state == state
    size = (store.directory / "a1.rec").stat().st_size
    if state.startswith(b"compressible"):
        assert size < len(state) // 5  # stored in zstd frames
    elif state:
        assert size < len(state) + 4096  # incompressible: stored raw, framing only


def test_write_accepts_non_byte_buffers(store: RecordStore) -> None:
    import array

    values = array.array("I", range(1000))
    store.write(make_record(state=memoryview(values)))
    assert store.read("a1").state == values.tobytes()


def test_append_keeps_order_types_and_survives_reload(store: RecordStore, reports: Reports) -> None:
    store.write(make_record(queued_messages=[StoredMessage(message=message("inline"))]))
    assert (
        store.append_message("a1", message("one", blob=bytearray(b"\x00")), oneway=True, queued_at=5.0) == 2
    )
    assert store.append_message("a1", message("two", data=b"\x01")) == 3
    assert store.summary("a1") is not None
    assert store.summary("a1").queued_count == 3
    store = reopen(store, reports)
    got = store.read("a1")
    assert kinds(got) == ["inline", "one", "two"]
    one = got.queued_messages[1]
    assert one.oneway
    assert one.queued_at == 5.0
    assert type(one.message["args"]["blob"]) is bytearray
    assert got.queued_messages[2].message["args"]["data"] == b"\x01"
    assert store.read_messages("a1") == got.queued_messages
    # the wire dicts are the contract's QueuedMessage wire form
    queued = QueuedMessage.from_wire(one.to_wire())
    assert queued.message.kind == "one"
    assert queued.oneway
    assert StoredMessage.from_wire(one.to_wire()) == one
    store.close()
    assert reports == []


def test_append_is_an_append_not_a_rewrite(store: RecordStore) -> None:
    store.write(make_record(state=os.urandom(200_000)))
    record_file = store.directory / "a1.rec"
    before = record_file.stat()
    store.append_message("a1", message("m0"))
    log = store.directory / "a1.q"
    sizes = [log.stat().st_size]
    for i in range(1, 5):
        store.append_message("a1", message(f"m{i}"))
        sizes.append(log.stat().st_size)
    after = record_file.stat()
    assert (after.st_ino, after.st_mtime_ns, after.st_size) == (
        before.st_ino,
        before.st_mtime_ns,
        before.st_size,
    )
    growth = {b - a for a, b in itertools.pairwise(sizes)}
    assert len(growth) == 1
    assert growth.pop() < 200
    assert sizes[0] < LOG_HEADER_SIZE + 200


def test_write_replaces_messages_unless_kept(store: RecordStore, reports: Reports) -> None:
    store.write(make_record(state=b"v1", queued_messages=[StoredMessage(message=message("a"))]))
    store.append_message("a1", message("b"))
    store.write(
        make_record(state=b"v2", queued_messages=[StoredMessage(message=message("c"))]), keep_messages=True
    )
    assert kinds(store.read("a1")) == ["a", "b", "c"]
    store.append_message("a1", message("d"))
    store.write(make_record(state=b"v3"))
    got = store.read("a1")
    assert got.state == b"v3"
    assert got.queued_messages == []
    assert files(store) == [".lock", "a1.rec"]  # the old log went with the old generation
    store.append_message("a1", message("e"))
    store = reopen(store, reports)
    assert kinds(store.read("a1")) == ["e"]
    store.close()


def test_delete_contains_len_and_statistics(store: RecordStore) -> None:
    for i in range(3):
        store.write(make_record(f"id{i}", state=b"x" * i))
    store.append_message("id1", message())
    assert len(store) == 3
    assert store.contains("id1")
    assert "id2" in store
    assert "nope" not in store
    stats = store.statistics()
    assert (stats.records, stats.queued_messages, stats.writes, stats.appends) == (3, 1, 3, 1)
    assert stats.stored_bytes == sum(p.stat().st_size for p in store.directory.iterdir() if p.name != ".lock")
    assert store.delete("id1") is True
    assert store.delete("id1") is False
    assert not store.contains("id1")
    assert len(store) == 2
    assert "id1.rec" not in files(store)
    assert "id1.q" not in files(store)
    with pytest.raises(InvalidAgentError):
        store.read("id1")
    with pytest.raises(InvalidAgentError):
        store.append_message("id1", message())
    with pytest.raises(InvalidAgentError):
        store.read_messages("id1")
    assert store.summary("id1") is None
    assert store.statistics().deletes == 1


def test_queue_limits(tmp_path: Path) -> None:
    with RecordStore(tmp_path, durable=False) as store:
        store.load()
        store.write(make_record())
        with pytest.raises(LimitExceededError):
            store.append_message("a1", message(blob=b"\x00" * (MAX_QUEUED_ENTRY + 1)))
        for i in range(MAX_QUEUED_MESSAGES):
            store.append_message("a1", {"kind": "k", "n": i})
        with pytest.raises(MailboxFullError):
            store.append_message("a1", message())
        with pytest.raises(MailboxFullError):
            store.write(make_record(queued_messages=[StoredMessage(message=message())]), keep_messages=True)
        assert store.summary("a1").queued_count == MAX_QUEUED_MESSAGES  # type: ignore[union-attr]
        assert len(store.read_messages("a1")) == MAX_QUEUED_MESSAGES


def test_bad_records_are_refused_and_nothing_is_written(store: RecordStore) -> None:
    with pytest.raises(SerializationError):
        store.write(make_record(policy={"activate_on_startup": "yes"}))
    with pytest.raises(SerializationError):
        store.write(make_record(agent_id=""))
    with pytest.raises(LimitExceededError):
        store.write(make_record(agent_class="x" * 20_000))
    with pytest.raises(LimitExceededError):
        store.write(make_record(metadata={"big": b"x" * (2 * 1024 * 1024)}))
    with pytest.raises(SerializationError):
        store.write(make_record(metadata={"obj": object()}))
    store.write(make_record())
    with pytest.raises(SerializationError):
        store.append_message("a1", ["not", "a", "dict"])  # type: ignore[arg-type]
    assert files(store) == [".lock", "a1.rec"]
    assert len(store) == 1


def test_store_must_be_loaded_and_open(tmp_path: Path) -> None:
    store = RecordStore(tmp_path)
    with pytest.raises(HostError, match="not loaded"):
        store.write(make_record())
    store.load()
    store.close()
    store.close()  # idempotent
    with pytest.raises(HostError, match="closed"):
        store.read("a1")
    with pytest.raises(HostError, match="closed"):
        store.load()


def test_one_store_per_directory(tmp_path: Path) -> None:
    with RecordStore(tmp_path) as first:
        with pytest.raises(HostError, match="in use"):
            RecordStore(tmp_path)
        first.load()
    with RecordStore(tmp_path) as second:
        second.load()


def test_agent_ids_with_any_characters(store: RecordStore, reports: Reports) -> None:
    ids = ["svc:queue", ".hidden", "a/b\\c", "ünï", "x" * 300, "%41", "A"]
    for i, agent_id in enumerate(ids):
        store.write(make_record(agent_id, state=bytes([i])))
        store.append_message(agent_id, message(str(i)))
    store = reopen(store, reports)
    assert sorted(s.agent_id for s in store.summaries()) == sorted(ids)
    for i, agent_id in enumerate(ids):
        got = store.read(agent_id)
        assert got.state == bytes([i])
        assert kinds(got) == [str(i)]
    store.close()
    assert reports == []


@settings(max_examples=200)
@given(st.lists(st.text(min_size=1, max_size=80), min_size=2, max_size=20, unique=True))
def test_file_stems_are_safe_and_distinct(ids: list[str]) -> None:
    stems = [file_stem(i) for i in ids]
    assert len(set(stems)) == len(stems)
    for stem in stems:
        assert not stem.startswith(".")
        assert "/" not in stem
        assert len(stem) <= 200
        assert set(stem) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-%")


def test_concurrent_operations_from_threads(tmp_path: Path) -> None:
    with RecordStore(tmp_path, durable=False) as store:
        store.load()
        ids = [f"t{i}" for i in range(4)]
        for agent_id in ids:
            store.write(make_record(agent_id))
        errors: list[BaseException] = []

        def work(agent_id: str) -> None:
            try:
                for n in range(50):
                    store.append_message(agent_id, {"kind": "k", "n": n})
                    if n % 10 == 0:
                        store.write(make_record(agent_id, state=bytes([n])), keep_messages=True)
                    store.summaries()
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(i,)) for i in ids for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert not errors
        for agent_id in ids:
            got = store.read(agent_id)
            numbers = [m.message["n"] for m in got.queued_messages]
            assert len(numbers) == 100
            assert sorted(numbers) == sorted(list(range(50)) * 2)


# --- corruption ------------------------------------------------------------------------------------------


def corrupt(path: Path, offset: int, *, xor: int = 0x01) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= xor
    path.write_bytes(bytes(data))


def quarantine_names(store: RecordStore) -> list[str]:
    return sorted(os.listdir(store.quarantine_directory)) if store.quarantine_directory.exists() else []


def test_truncated_head_is_quarantined_at_load(store: RecordStore, reports: Reports) -> None:
    store.write(make_record("good"))
    store.write(make_record("bad"))
    path = store.directory / "bad.rec"
    path.write_bytes(path.read_bytes()[:20])
    store = reopen(store, reports)
    assert [s.agent_id for s in store.summaries()] == ["good"]
    assert len(reports) == 1
    assert reports[0][0] == "bad.rec"
    assert "truncated" in reports[0][1]
    names = quarantine_names(store)
    assert len(names) == 2
    assert names[0].endswith("bad.rec")
    assert names[1].endswith(".reason.json")
    [listed] = store.quarantined()
    assert listed.original == "bad.rec"
    assert "truncated" in listed.reason
    assert listed.files == [names[0]]
    assert store.statistics().quarantined == 1
    store.close()


@pytest.mark.parametrize("where", ["summary", "head-field"])
def test_bad_summary_is_quarantined_at_load(store: RecordStore, reports: Reports, where: str) -> None:
    store.write(make_record())
    corrupt(store.directory / "a1.rec", RECORD_HEAD_SIZE + 3 if where == "summary" else 9)
    store = reopen(store, reports)
    assert len(store) == 0
    assert len(reports) == 1
    store.close()


@pytest.mark.parametrize("size", [5000, 2 * 1024 * 1024], ids=["read-whole", "mapped"])
def test_flipped_state_bit_is_found_at_read(store: RecordStore, reports: Reports, size: int) -> None:
    state = os.urandom(size)
    store.write(make_record(state=state))
    store.append_message("a1", message())
    path = store.directory / "a1.rec"
    corrupt(path, path.stat().st_size - 100)  # inside the raw state frame
    store = reopen(store, reports)
    assert len(store) == 1
    assert reports == []
    with pytest.raises(ChecksumError, match="quarantined"):
        store.read("a1")
    assert len(store) == 0
    assert len(reports) == 1
    assert reports[0][0] == "a1"
    names = quarantine_names(store)
    assert any(n.endswith("a1.rec") for n in names)
    assert any(n.endswith("a1.q") for n in names)
    assert files(store) == [".lock"]
    store.close()


def test_load_verify_checks_states_up_front(store: RecordStore, reports: Reports) -> None:
    store.write(make_record("ok", state=b"fine" * 100))
    store.write(make_record("bad", state=b"fine" * 100))
    corrupt(store.directory / "bad.rec", (store.directory / "bad.rec").stat().st_size - 30)
    store.close()
    with RecordStore(store.root, on_quarantine=lambda *r: reports.append(r)) as fresh:
        assert fresh.load(verify=True) == 1
        assert [s.agent_id for s in fresh.summaries()] == ["ok"]
        assert len(reports) == 1


@pytest.mark.parametrize("cut", [60, 200])
def test_record_truncated_after_its_summary(store: RecordStore, reports: Reports, cut: int) -> None:
    store.write(make_record(state=os.urandom(2000), metadata={"m": "x" * 100}))
    path = store.directory / "a1.rec"
    path.write_bytes(path.read_bytes()[:-cut])
    store = reopen(store, reports)
    if len(store):  # long enough to index: the state is found short at read
        with pytest.raises(FrameError):
            store.read("a1")
    assert len(store) == 0
    assert len(reports) == 1
    store.close()


def test_flipped_details_and_inline_message_bits(store: RecordStore, reports: Reports) -> None:
    inline = [StoredMessage(message=message("m"))]
    store.write(make_record("d", metadata={"x": "y" * 50}))
    store.write(make_record("m", queued_messages=inline))
    rec_d = (store.directory / "d.rec").read_bytes()
    corrupt(store.directory / "d.rec", rec_d.index(b"y" * 50) + 3)
    rec_m = (store.directory / "m.rec").read_bytes()
    corrupt(store.directory / "m.rec", rec_m.index(b"kind") + 1)
    store = reopen(store, reports)
    for agent_id in ("d", "m"):
        with pytest.raises(ProtocolError):
            store.read(agent_id)
    assert len(store) == 0
    assert {r[0] for r in reports} == {"d", "m"}
    store.close()


def test_torn_queue_entry_is_ignored_then_truncated(store: RecordStore, reports: Reports) -> None:
    store.write(make_record())
    for i in range(3):
        store.append_message("a1", message(f"m{i}"))
    log = store.directory / "a1.q"
    good_size = log.stat().st_size
    torn = encode_entry(b"\x81\xa1k\xa1v" * 20)
    with open(log, "ab") as f:
        f.write(torn[: len(torn) // 2])  # the crash came mid-append
    store = reopen(store, reports)
    assert store.summary("a1").queued_count == 3  # type: ignore[union-attr]
    assert kinds(store.read("a1")) == ["m0", "m1", "m2"]
    m3 = message("m3")
    assert store.append_message("a1", m3, queued_at=1.0) == 4
    # the torn half entry was cut before the new entry went in
    expected = encode_entry(encode_message(StoredMessage(message=m3, queued_at=1.0)))
    assert log.stat().st_size == good_size + len(expected)
    store = reopen(store, reports)
    assert kinds(store.read("a1")) == ["m0", "m1", "m2", "m3"]
    store.close()
    assert reports == []  # a torn tail is expected after a crash, not reported


@pytest.mark.parametrize("tail", ["zeros", "garbage-length", "header-only"])
def test_other_torn_tails_are_silent(store: RecordStore, reports: Reports, tail: str) -> None:
    store.write(make_record())
    store.append_message("a1", message("m0"))
    log = store.directory / "a1.q"
    extra = {
        "zeros": b"\x00" * 40,
        "garbage-length": b"\xff\xff\xff\x7f" + b"\x00" * 10,
        "header-only": b"\x05",
    }
    with open(log, "ab") as f:
        f.write(extra[tail])
    store = reopen(store, reports)
    assert kinds(store.read("a1")) == ["m0"]
    assert reports == []
    store.append_message("a1", message("m1"))
    store = reopen(store, reports)
    assert kinds(store.read("a1")) == ["m0", "m1"]
    assert reports == []
    store.close()


def test_corrupt_middle_entry_keeps_the_valid_prefix(store: RecordStore, reports: Reports) -> None:
    store.write(make_record())
    for i in range(4):
        store.append_message("a1", message(f"m{i}"))
    log = store.directory / "a1.q"
    data = log.read_bytes()
    corrupt(log, data.index(b"m2") + 1)
    store = reopen(store, reports)
    assert len(reports) == 1
    assert reports[0][0] == "a1"
    assert kinds(store.read("a1")) == ["m0", "m1"]
    assert store.append_message("a1", message("m9")) == 3
    store = reopen(store, reports)
    assert kinds(store.read("a1")) == ["m0", "m1", "m9"]
    assert len(reports) == 1
    assert any(n.endswith("a1.q") for n in quarantine_names(store))  # a copy for the operator
    store.close()


def test_corruption_of_the_log_found_at_read(store: RecordStore, reports: Reports) -> None:
    store.write(make_record())
    for i in range(3):
        store.append_message("a1", message(f"m{i}"))
    corrupt(store.directory / "a1.q", (store.directory / "a1.q").read_bytes().index(b"m1") + 1)
    got = store.read("a1")  # no reload: the running store finds it
    assert kinds(got) == ["m0"]
    assert len(reports) == 1
    assert store.summary("a1").queued_count == 1  # type: ignore[union-attr]
    assert store.append_message("a1", message("m3")) == 2
    assert kinds(store.read("a1")) == ["m0", "m3"]


def test_bad_log_header_quarantines_the_log_only(store: RecordStore, reports: Reports) -> None:
    store.write(make_record(queued_messages=[StoredMessage(message=message("inline"))]))
    store.append_message("a1", message("logged"))
    corrupt(store.directory / "a1.q", 2)
    store = reopen(store, reports)
    assert len(reports) == 1
    assert kinds(store.read("a1")) == ["inline"]
    assert store.append_message("a1", message("again")) == 2
    assert kinds(store.read("a1")) == ["inline", "again"]
    store.close()


def test_garbage_and_foreign_files(store: RecordStore, reports: Reports) -> None:
    store.write(make_record())
    rng = random.Random(7)
    (store.directory / "junk.rec").write_bytes(bytes(rng.randrange(256) for _ in range(300)))
    (store.directory / "old-agent.json").write_text('{"schema_version": 1}')
    (store.directory / "empty.rec").write_bytes(b"")
    (store.directory / "subdir").mkdir()
    os.symlink("a1.rec", store.directory / "link.rec")
    store = reopen(store, reports)
    assert [s.agent_id for s in store.summaries()] == ["a1"]
    assert sorted(r[0] for r in reports) == ["empty.rec", "junk.rec", "old-agent.json"]
    assert sorted(files(store)) == [".lock", "a1.rec", "link.rec", "subdir"]
    store.close()


def test_renamed_record_file_is_quarantined(store: RecordStore, reports: Reports) -> None:
    store.write(make_record("a1"))
    os.rename(store.directory / "a1.rec", store.directory / "b2.rec")
    store = reopen(store, reports)
    assert len(store) == 0
    assert "does not belong" in reports[0][1]
    store.close()


def test_crash_debris_is_cleaned_at_load(store: RecordStore, reports: Reports) -> None:
    store.write(make_record("a1"))
    store.write(make_record("gone"))
    store.append_message("gone", message())
    store.append_message("a1", message("stale"))
    stale_log = (store.directory / "a1.q").read_bytes()
    store.write(make_record("a1", state=b"new"))  # new generation: the old log is stale
    (store.directory / "a1.q").write_bytes(stale_log)  # as if its unlink had not reached the disk
    (store.directory / ".a1.rec.0123456789ab.tmp").write_bytes(b"half a record")
    (store.directory / ".a1.q.0123456789ab.tmp").write_bytes(b"half a log")
    os.unlink(store.directory / "gone.rec")  # as if the crash came between the two unlinks of delete
    store = reopen(store, reports)
    assert files(store) == [".lock", "a1.rec"]
    assert store.read("a1").queued_messages == []
    assert store.read("a1").state == b"new"
    assert store.statistics().temp_files_removed == 2
    assert reports == []
    store.close()


def test_unknown_versions_are_quarantined(store: RecordStore, reports: Reports) -> None:
    store.write(make_record())
    path = store.directory / "a1.rec"
    data = bytearray(path.read_bytes())
    data[4] = 2  # record version 2
    path.write_bytes(bytes(data))
    store = reopen(store, reports)
    assert len(store) == 0
    assert "version" in reports[0][1]
    store.close()


def test_callback_errors_do_not_break_the_store(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    def boom(label: str, reason: str) -> None:
        raise RuntimeError("callback failed")

    (tmp_path / "inactive").mkdir()
    (tmp_path / "inactive" / "x.rec").write_bytes(b"nope")
    with RecordStore(tmp_path, on_quarantine=boom) as store:
        assert store.load() == 0
    assert "callback failed" in caplog.text
    caplog.clear()
    (tmp_path / "inactive" / "y.rec").write_bytes(b"nope")
    with RecordStore(tmp_path) as store:  # no callback: a warning is logged
        store.load()
    assert "y.rec" in caplog.text
