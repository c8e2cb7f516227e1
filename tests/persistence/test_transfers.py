"""Durable transfer records (``paglets/persistence/_transfers.py``, ``proto/PROTOCOL.md`` §6.2)."""

from __future__ import annotations

import json
import os
import struct
import zlib
from pathlib import Path

import msgspec
import pytest

from paglets.core.errors import TransferError
from paglets.persistence import _transfers
from paglets.persistence._transfers import TransferRecord, TransferStore, decode_record, encode_record

VECTORS = sorted((Path(__file__).resolve().parents[2] / "proto" / "vectors" / "transfer").glob("*.bin"))


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


@pytest.mark.parametrize("path", VECTORS, ids=lambda p: p.stem)
def test_vectors_decode_and_reencode(path: Path) -> None:
    expected = json.loads(path.with_suffix(".json").read_text())
    data = path.read_bytes()
    record = decode_record(data)
    assert msgspec.structs.asdict(record) == expected["record"]
    assert record.file_name == expected["file_name"]
    assert encode_record(record) == data
    # an independent reading of the layout: magic, version, flags, length, CRC over head[:12] + body
    magic, version, flags, length, crc = struct.unpack_from("<4sHHII", data)
    assert (magic, version, flags, length) == (b"PGLT", 1, 0, len(data) - 16)
    assert zlib.crc32(data[:12] + data[16:]) == crc


def test_there_are_vectors() -> None:
    assert {p.stem for p in VECTORS} == {"source_committed", "source_aborted", "target_executed"}


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda d: b"XXXX" + d[4:], "bad magic"),
        (lambda d: d[:4] + b"\x02\x00" + d[6:], "unknown version"),
        (lambda d: d[:-1], "does not match"),
        (lambda d: d[:-1] + bytes([d[-1] ^ 1]), "checksum"),
        (lambda d: d[:10], "truncated head"),
    ],
)
def test_corrupt_records_are_refused(mutate: object, reason: str) -> None:
    data = encode_record(_record())
    with pytest.raises(ValueError, match=reason):
        decode_record(mutate(data))  # type: ignore[operator]


def test_write_load_drop(tmp_path: Path) -> None:
    store = TransferStore(tmp_path)
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


def test_debris_and_corrupt_files_at_start(tmp_path: Path) -> None:
    store = TransferStore(tmp_path)
    store.write(_record(1))
    directory = tmp_path / "transfers"
    (directory / f".{_record(2).file_name}.abc.tmp").write_bytes(b"half")
    (directory / _record(3).file_name).write_bytes(encode_record(_record(3))[:-2])
    (directory / _record(4).file_name).write_bytes(encode_record(_record(5)))  # another id's record
    store.close()
    reports: list[tuple[str, str]] = []
    again = TransferStore(tmp_path, on_quarantine=lambda name, reason: reports.append((name, reason)))
    assert [r.transfer_id for r in again.load()] == [_record(1).transfer_id]
    assert sorted(os.listdir(directory)) == [_record(1).file_name]
    assert sorted(name for name, _ in reports) == [_record(3).file_name, _record(4).file_name]
    assert len([n for n in os.listdir(tmp_path / "quarantine") if not n.endswith(".reason.json")]) == 2


def test_open_records_are_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_transfers, "MAX_OPEN_TRANSFERS", 2)
    store = TransferStore(tmp_path)
    store.write(_record(1))
    store.write(_record(2))
    store.write(_record(2, outcome="aborted"))  # a replacement is not a new record
    with pytest.raises(TransferError, match="MAX_OPEN_TRANSFERS"):
        store.write(_record(3))
    store.drop(_record(1).transfer_id, "source")
    store.write(_record(3))
