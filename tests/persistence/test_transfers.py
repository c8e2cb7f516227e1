"""Durable transfer records (``paglets/persistence/_transfers.py``, ``proto/PROTOCOL.md`` §6.2)."""

from __future__ import annotations

import json
import os
import struct
import zlib
from pathlib import Path

import msgspec
import pytest

from paglets.core.errors import HostError, TransferError
from paglets.persistence import _transfers
from paglets.persistence._transfers import (
    FILE_NAME,
    SLOT_SIZE,
    TransferRecord,
    TransferStore,
    decode_slot,
    encode_header,
    encode_slot,
)

VECTORS = Path(__file__).resolve().parents[2] / "proto" / "vectors" / "transfer"
SLOTS = sorted(p for p in VECTORS.glob("*.bin") if p.stem != "header")


def _record(n: int = 1, role: str = "source", outcome: str = "committed") -> TransferRecord:
    return TransferRecord(
        transfer_id=f"{n:032x}",
        role=role,  # type: ignore[arg-type]
        outcome=outcome,  # type: ignore[arg-type]
        agent_id=f"agent-{n}",
        peer="http://127.0.0.1:9",
        kind="dispatch",
        written_at=1.5,
    )


@pytest.mark.parametrize("path", SLOTS, ids=lambda p: p.stem)
def test_slot_vectors_decode_and_reencode(path: Path) -> None:
    expected = json.loads(path.with_suffix(".json").read_text())
    data = path.read_bytes()
    decoded = decode_slot(data)
    assert decoded is not None
    record, sequence = decoded
    assert msgspec.structs.asdict(record) == expected["record"]
    assert sequence == expected["sequence"]
    assert encode_slot(record, sequence) == data
    # an independent reading of the layout: magic, body length, flags, sequence, CRC, body, zeros
    magic, length, flags, seq, crc = struct.unpack_from("<4sHHQI", data)
    assert (magic, flags, seq, len(data)) == (b"PGTR", 0, sequence, SLOT_SIZE)
    assert zlib.crc32(data[:16] + data[20 : 20 + length]) == crc
    assert data[20 + length :] == bytes(SLOT_SIZE - 20 - length)


def test_header_vector() -> None:
    data = (VECTORS / "header.bin").read_bytes()
    assert data == encode_header()
    magic, version, flags, slot_size, crc = struct.unpack_from("<4sHHII", data)
    assert (magic, version, flags, slot_size, len(data)) == (b"PGTS", 1, 0, SLOT_SIZE, SLOT_SIZE)
    assert zlib.crc32(data[:12]) == crc


def test_there_are_vectors() -> None:
    assert {p.stem for p in SLOTS} == {"source_committed", "source_aborted", "target_executed"}


def test_damaged_slots_are_refused() -> None:
    slot = encode_slot(_record(), 7)
    assert decode_slot(bytes(SLOT_SIZE)) is None  # free
    for damaged, reason in [
        (b"XXXX" + slot[4:], "not a record slot"),
        (slot[:30] + bytes([slot[30] ^ 1]) + slot[31:], "checksum"),
        (slot[:4] + b"\xff\x7f" + slot[6:], "not a record slot"),
    ]:
        with pytest.raises(ValueError, match=reason):
            decode_slot(damaged)


def test_write_load_replace_drop(tmp_path: Path) -> None:
    store = TransferStore(tmp_path)
    assert store.load() == []
    store.write(_record(1))
    store.write(_record(2, "target", "executed"))
    store.write(_record(1, outcome="aborted"))  # replaces the decision
    assert len(store) == 2
    store.close()
    again = TransferStore(tmp_path)
    loaded = sorted(again.load(), key=lambda r: r.transfer_id)
    assert [(r.transfer_id[-1], r.role, r.outcome) for r in loaded] == [
        ("1", "source", "aborted"),
        ("2", "target", "executed"),
    ]
    again.drop(loaded[0].transfer_id, "source")
    again.drop(loaded[0].transfer_id, "source")  # twice is fine
    assert len(again) == 1
    again.close()
    assert [r.transfer_id[-1] for r in TransferStore(tmp_path).load()] == ["2"]


def test_a_fresh_directory_gets_its_file_from_prepare_or_the_first_write(tmp_path: Path) -> None:
    """Loading finds nothing and writes nothing (a host's first start does not wait for a sync); the file
    comes from ``prepare`` or, if a write comes first, from that write."""
    first = TransferStore(tmp_path / "a")
    assert first.load() == []
    assert not (tmp_path / "a" / FILE_NAME).exists()
    assert not first.write_is_cheap  # a write that must create the file runs off the loop
    first.write(_record(1))
    first.prepare()  # too late to matter: nothing changes
    first.close()
    assert [r.transfer_id[-1] for r in TransferStore(tmp_path / "a").load()] == ["1"]

    second = TransferStore(tmp_path / "b")
    assert second.load() == []
    second.prepare()
    assert (tmp_path / "b" / FILE_NAME).stat().st_size > SLOT_SIZE
    second.close()
    second.prepare()  # closed: nothing is created again
    with pytest.raises(HostError, match="closed"):
        second.write(_record(2))
    assert TransferStore(tmp_path / "b").load() == []


def test_the_newest_of_two_slots_wins(tmp_path: Path) -> None:
    """A replacement whose clearing of the old slot never reached the disk: the higher sequence wins."""
    store = TransferStore(tmp_path)
    store.load()
    store.prepare()
    store.close()
    with open(tmp_path / FILE_NAME, "r+b") as fh:
        fh.seek(3 * SLOT_SIZE)
        fh.write(encode_slot(_record(1, outcome="aborted"), 9))
        fh.seek(5 * SLOT_SIZE)
        fh.write(encode_slot(_record(1), 4))
        fh.seek(6 * SLOT_SIZE)
        fh.write(encode_slot(_record(2), 5)[:100] + bytes(SLOT_SIZE - 100))  # torn
    again = TransferStore(tmp_path)
    assert [(r.transfer_id[-1], r.outcome) for r in again.load()] == [("1", "aborted")]
    again.write(_record(3))  # sequence continues above 9
    again.close()
    data = (tmp_path / FILE_NAME).read_bytes()
    assert data[5 * SLOT_SIZE : 7 * SLOT_SIZE] == bytes(2 * SLOT_SIZE)  # stale and torn slots cleared
    records = TransferStore(tmp_path).load()
    assert sorted(r.transfer_id[-1] for r in records) == ["1", "3"]


def test_a_bad_file_is_quarantined(tmp_path: Path) -> None:
    (tmp_path / FILE_NAME).write_bytes(b"not a transfer record file")
    reports: list[tuple[str, str]] = []
    store = TransferStore(tmp_path, on_quarantine=lambda name, reason: reports.append((name, reason)))
    assert store.load() == []
    assert [name for name, _ in reports] == [FILE_NAME]
    store.write(_record(1))
    assert len([n for n in os.listdir(tmp_path / "quarantine") if not n.endswith(".reason.json")]) == 1


def test_the_file_grows_and_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_transfers, "MAX_OPEN_TRANSFERS", 100)
    store = TransferStore(tmp_path)
    store.load()
    for n in range(100):
        store.write(_record(n))
    assert (tmp_path / FILE_NAME).stat().st_size == 102 * SLOT_SIZE  # 64 -> 102: header, 100, a spare
    store.write(_record(5, outcome="aborted"))  # a replacement is not a new record
    with pytest.raises(TransferError, match="MAX_OPEN_TRANSFERS"):
        store.write(_record(100))
    store.drop(_record(1).transfer_id, "source")
    store.write(_record(100))
    store.close()
    assert len(TransferStore(tmp_path).load()) == 100
