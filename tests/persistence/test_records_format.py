"""The on-disk record format: golden bytes that decode forever, the documented limits, and checks that
catch every flipped bit and never raise anything but our protocol errors."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paglets.core.errors import ProtocolError, SerializationError
from paglets.persistence import _recordformat
from paglets.persistence._recordformat import (
    LOG_HEADER_SIZE,
    MAX_QUEUED_MESSAGES,
    RECORD_HEAD_SIZE,
    decode_summary,
    encode_entry,
    parse_head,
    parse_log_header,
    scan_entries,
)
from paglets.persistence._records import RecordStore

ROOT = Path(__file__).resolve().parents[2]

# Written once by RecordStore.write + append_message (record version 1); never edit: decode forever.
GOLDEN_RECORD = bytes.fromhex(
    "50474c52010000000e010000ee000000b400000001000000daaec131abb775cc838b9ce0ae17cfe98bfb783881dea527"
    "8dae736368656d615f76657273696f6e01a86167656e745f6964a8676f6c64656e2d31ab6167656e745f636c617373b2"
    "74657374732e676f6c64656e3a4167656e74ab73746174655f636c617373b274657374732e676f6c64656e3a53746174"
    "65ae64656163746976617465645f6174cb41d954fc40100000b361637469766174655f6f6e5f6d657373616765c3bc71"
    "756575655f6d657373616765735f7768656e5f696e616374697665c3b361637469766174655f6f6e5f73746172747570"
    "c3ab61637469766174655f6174cb41d954fc40200000a6726561736f6ea873687574646f776ea6736f75726365a4686f"
    "7374ac73746174655f6c656e67746812ac7175657565645f636f756e740184a6706f6c69637982b36163746976617465"
    "5f6f6e5f73746172747570c3ab61637469766174655f6174cb41d954fc40200000a77265717565737482a6726561736f"
    "6ea873687574646f776ea6736f75726365a4686f7374b0726567697374657265645f66696c65739184a466696c65a96e"
    "6f7465732e747874a86172746966616374d9203030303030303030303030303030303030303030303030303030303030"
    "303030ad7472616e736665725f6d6f6465a4636f7079ab736f757263655f70617468ae2f746d702f6e6f7465732e7478"
    "74a86d6574616461746182a87265736964656e74c2a3726177d401ffac000000def934a783a76d65737361676589a46b"
    "696e64a568656c6c6fa46172677381a2746fa3796f75a3617267c0a673656e646572c0a87265706c795f746fc0a87072"
    "696f7269747905ac6d6573736167655f7479706500a974696d657374616d70cb3ff8000000000000aa6d657373616765"
    "5f6964d9206161616161616161616161616161616161616161616161616161616161616161a66f6e65776179c3a97175"
    "657565645f6174cb41d954fc4040000050474c45010000000b01000012000000000000003501f4b38ca46b696e64aa61"
    "637469766174696f6ea86167656e745f6964a8676f6c64656e2d31b06167656e745f636c6173735f6e616d65b2746573"
    "74732e676f6c64656e3a4167656e74b073746174655f636c6173735f6e616d65b274657374732e676f6c64656e3a5374"
    "617465ab7472616e736665725f6964d92064616165633133316162623737356363383338623963653061653137636665"
    "39b0736f757263655f686f73745f6e616d65a0b3736f757263655f686f73745f61646472657373a0b07461726765745f"
    "686f73745f6e616d65a0b37461726765745f686f73745f61646472657373a0a8636c6f6e655f6f66c0a67469636b6574"
    "c0b0726567697374657265645f66696c657390520000001200000012000000acd921aa82a5636f756e7407a4626c6f62"
    "c40300010254000000010000001200000000000000acd921aa"
)

GOLDEN_LOG = bytes.fromhex(
    "50474c5101000000daaec131abb775cc838b9ce0ae17cfe9c999e628ae000000427a6a8383a76d65737361676589a46b"
    "696e64a56c61746572a46172677381a464617461c4020001a3617267c0a673656e646572c0a87265706c795f746fc0a8"
    "7072696f7269747905ac6d6573736167655f7479706500a974696d657374616d70cb4004000000000000aa6d65737361"
    "67655f6964d9206262626262626262626262626262626262626262626262626262626262626262a66f6e65776179c2a9"
    "7175657565645f6174cb41d954fc40800000"
)


def install(root: Path, record: bytes = GOLDEN_RECORD, log: bytes | None = GOLDEN_LOG) -> None:
    (root / "inactive").mkdir(parents=True, exist_ok=True)
    (root / "inactive" / "golden-1.rec").write_bytes(record)
    if log is not None:
        (root / "inactive" / "golden-1.q").write_bytes(log)


def test_golden_record_decodes_forever(tmp_path: Path) -> None:
    install(tmp_path)
    reports: list[tuple[str, str]] = []
    with RecordStore(tmp_path, on_quarantine=lambda *r: reports.append(r)) as store:
        assert store.load() == 1
        [summary] = store.summaries()
        assert summary.agent_id == "golden-1"
        assert (summary.agent_class, summary.state_class) == ("tests.golden:Agent", "tests.golden:State")
        assert summary.activate_on_startup
        assert summary.activate_on_message
        assert summary.queue_messages_when_inactive
        assert summary.activate_at == 1700000000.5
        assert summary.deactivated_at == 1700000000.25
        assert (summary.reason, summary.source, summary.state_length, summary.queued_count) == (
            "shutdown",
            "host",
            18,
            2,
        )
        record = store.read("golden-1")
    assert reports == []
    assert record.state == b"\x82\xa5count\x07\xa4blob\xc4\x03\x00\x01\x02"
    assert record.policy == {"activate_on_startup": True, "activate_at": 1700000000.5}
    assert record.request == {"reason": "shutdown", "source": "host"}
    assert record.registered_files == [
        {"file": "notes.txt", "artifact": "0" * 32, "transfer_mode": "copy", "source_path": "/tmp/notes.txt"}
    ]
    assert record.metadata == {"resident": False, "raw": bytearray(b"\xff")}
    assert type(record.metadata["raw"]) is bytearray
    first, second = record.queued_messages
    assert (first.message["kind"], first.oneway, first.queued_at) == ("hello", True, 1700000001.0)
    assert (second.message["kind"], second.oneway, second.queued_at) == ("later", False, 1700000002.0)
    assert second.message["args"] == {"data": b"\x00\x01"}


def test_golden_log_of_another_generation_is_stale(tmp_path: Path) -> None:
    log = bytearray(GOLDEN_LOG)
    log[8] ^= 0xFF  # another generation ...
    fixed = bytes(log[: LOG_HEADER_SIZE - 4])
    log[LOG_HEADER_SIZE - 4 : LOG_HEADER_SIZE] = _recordformat.crc32(fixed).to_bytes(4, "little")  # ... valid
    install(tmp_path, log=bytes(log))
    with RecordStore(tmp_path) as store:
        store.load()
        assert [m.message["kind"] for m in store.read("golden-1").queued_messages] == ["hello"]
        assert not (store.directory / "golden-1.q").exists()


def test_every_flipped_bit_is_caught(tmp_path: Path) -> None:
    """One flipped bit anywhere in the record: never loaded and read back as if nothing happened."""
    rng = random.Random(3)
    for offset in range(len(GOLDEN_RECORD)):
        data = bytearray(GOLDEN_RECORD)
        data[offset] ^= 1 << rng.randrange(8)
        root = tmp_path / str(offset)
        install(root, bytes(data), log=None)
        reports: list[tuple[str, str]] = []
        with RecordStore(root, durable=False, on_quarantine=lambda *r, out=reports: out.append(r)) as store:
            if store.load() == 1:
                with pytest.raises(ProtocolError):
                    store.read("golden-1")
        assert len(reports) == 1, f"flip at offset {offset} not reported"


@settings(max_examples=300)
@given(st.binary(max_size=400))
def test_random_bytes_only_raise_protocol_errors(data: bytes) -> None:
    try:
        head = parse_head(data)
        decode_summary(data, head)
    except (ProtocolError, SerializationError):
        pass
    try:
        parse_log_header(data)
    except ProtocolError:
        pass
    scan = scan_entries(memoryview(data), 0, len(data), MAX_QUEUED_MESSAGES)
    assert scan.end <= len(data)


@settings(max_examples=100)
@given(st.lists(st.binary(min_size=1, max_size=60), max_size=8), st.binary(max_size=40))
def test_scan_keeps_every_entry_before_a_torn_tail(payloads: list[bytes], tail: bytes) -> None:
    entries = b"".join(encode_entry(p) for p in payloads)
    scan = scan_entries(memoryview(entries + tail), 0, len(entries) + len(tail), MAX_QUEUED_MESSAGES)
    got = [(entries + tail)[a:b] for a, b in scan.spans]
    assert got[: len(payloads)] == payloads  # a tail can never hide a valid entry before it
    if tail:
        assert scan.end >= len(entries)


def test_head_size_and_magic_are_as_documented() -> None:
    text = (ROOT / "proto" / "PROTOCOL.md").read_text()
    assert RECORD_HEAD_SIZE == 48
    assert LOG_HEADER_SIZE == 28
    assert 'magic "PGLR"' in text
    assert 'magic "PGLQ"' in text


def test_limits_table_matches_the_module() -> None:
    text = (ROOT / "proto" / "PROTOCOL.md").read_text()
    section = re.search(r"^### 7\.5 Limits.*?(?=^## |\Z)", text, flags=re.S | re.M)
    assert section
    documented = {}
    for line in section.group(0).splitlines():
        match = re.match(r"\| `([A-Z_]+)` \| (\d+) \|", line)
        if match:
            documented[match.group(1)] = int(match.group(2))
    assert documented
    assert documented == {name: getattr(_recordformat, name) for name in documented}
    limits = {"MAX_SUMMARY_BYTES", "MAX_RECORD_DETAILS", "MAX_QUEUED_MESSAGES", "MAX_QUEUED_ENTRY"}
    assert limits | {"MAX_QUEUE_BYTES", "MAX_AGENT_ID_BYTES"} == set(documented)
