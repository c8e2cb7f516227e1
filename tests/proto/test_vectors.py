"""The committed golden vectors of proto/vectors/ decode to their committed JSON and re-encode identically.

These tests read the committed files only; they never run the generator.
"""

from __future__ import annotations

import base64
import json
import struct
import zlib
from pathlib import Path
from typing import Any

import msgspec
import pytest
import zstandard

from paglets.core import errors
from paglets.core.errors import FrameError, ProtocolError
from paglets.wire import ipc
from paglets.wire.envelope import EnvelopeDecoder, encode_envelope
from paglets.wire.ipc import FrameBodyError, FrameDecoder, encode_frame

VECTORS = Path(__file__).resolve().parents[2] / "proto" / "vectors"
IPC = sorted((VECTORS / "ipc").glob("*.bin"))
ENVELOPES = sorted((VECTORS / "envelope").glob("*.bin"))
INVALID = sorted((VECTORS / "invalid").glob("*.bin"))

HEADER = struct.Struct("<4sHHIQI")
FRAME = struct.Struct("<BBHIII")
TRAILER = struct.Struct("<BBHIQI")


def _expected(path: Path) -> Any:
    return json.loads(path.with_suffix(".json").read_text())


def _describe(value: Any) -> Any:
    """The JSON form the vectors use: Structs as field dicts, Raw as hex, binary values tagged."""
    if isinstance(value, msgspec.Raw):
        return {"msgpack": bytes(value).hex()}
    if isinstance(value, msgspec.Struct):
        return {name: _describe(getattr(value, name)) for name in value.__struct_fields__}
    if isinstance(value, bytes | bytearray):
        kind = "bytearray" if isinstance(value, bytearray) else "bytes"
        return {"__paglets_binary__": kind, "base64": base64.b64encode(value).decode()}
    if isinstance(value, dict):
        return {str(k): _describe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_describe(v) for v in value]
    return value


def _state(expected: dict[str, Any]) -> bytes:
    return base64.b64decode(expected["state"]["base64"])


def test_every_vector_has_its_json() -> None:
    for path in IPC + ENVELOPES + INVALID:
        assert path.with_suffix(".json").is_file(), path


def test_every_ipc_message_type_has_a_vector() -> None:
    covered = {_expected(path)["type"] for path in IPC}
    assert covered == {t.__name__ for t in ipc.IPC_MESSAGE_TYPES}


def test_envelope_vectors_cover_every_frame_shape() -> None:
    assert {p.stem for p in ENVELOPES} >= {"empty_state", "raw_frame", "compressed_frame", "multi_frame"}
    kinds = {kind for path in ENVELOPES for kind, *_ in _records(path.read_bytes())}
    assert kinds == {"R", "Z", "T"}


@pytest.mark.parametrize("path", IPC, ids=lambda p: p.stem)
def test_ipc_vector_decodes_and_reencodes(path: Path) -> None:
    data = path.read_bytes()
    expected = _expected(path)
    whole = FrameDecoder()
    whole.feed(data)
    (msg,) = list(whole)
    whole.finish()
    assert type(msg).__name__ == expected["type"]
    assert type(msg).__struct_config__.tag == expected["tag"]
    assert _describe(msg) == expected["fields"]
    assert encode_frame(msg) == data
    # byte by byte gives the same message
    split = FrameDecoder()
    out = []
    for i in range(len(data)):
        split.feed(data[i : i + 1])
        out.extend(split)
    assert out == [msg]


def _records(data: bytes) -> list[tuple[str, int, int, int]]:
    """An independent reading of the envelope layout of PROTOCOL.md §2.1: (kind, stored, raw, crc)."""
    magic, version, flags, meta_length, state_length, header_crc = HEADER.unpack_from(data)
    assert (magic, version, flags) == (b"PGLE", 1, 0)
    assert zlib.crc32(data[HEADER.size : HEADER.size + meta_length], zlib.crc32(data[:20])) == header_crc
    pos = HEADER.size + meta_length
    records = []
    while data[pos] != ord("T"):
        kind, flags, reserved, stored, raw, crc = FRAME.unpack_from(data, pos)
        assert (flags, reserved) == (0, 0)
        records.append((chr(kind), stored, raw, crc))
        pos += FRAME.size + stored
    kind, flags, reserved, count, total, state_crc = TRAILER.unpack_from(data, pos)
    assert pos + TRAILER.size == len(data)
    assert count == len(records)
    assert total == state_length == sum(r[2] for r in records)
    records.append(("T", count, total, state_crc))
    return records


@pytest.mark.parametrize("path", ENVELOPES, ids=lambda p: p.stem)
def test_envelope_vector_decodes(path: Path) -> None:
    data = path.read_bytes()
    expected = _expected(path)
    state = _state(expected)
    decoder = EnvelopeDecoder()
    for i in range(0, len(data), 7):
        decoder.feed(data[i : i + 7])
    result = decoder.finish()
    assert _describe(result.metadata) == expected["metadata"]
    assert result.state == state
    assert result.state_length == expected["state_length"] == len(state)
    assert result.state_crc == expected["state_crc"] == zlib.crc32(state)
    records = _records(data)
    assert records[-1][3] == zlib.crc32(state)


@pytest.mark.parametrize("path", ENVELOPES, ids=lambda p: p.stem)
def test_envelope_vector_reencodes_identically(path: Path) -> None:
    data = path.read_bytes()
    expected = _expected(path)
    decoder = EnvelopeDecoder()
    decoder.feed(data)
    decoded = decoder.finish()  # the JSON sorts keys, the bytes keep the writer's map order: use the bytes
    assert decoded.state is not None
    again = encode_envelope(
        decoded.metadata, decoded.state, frame_size=expected["frame_size"], level=expected["zstd_level"]
    )
    if tuple(expected["zstd_version"]) == zstandard.ZSTD_VERSION:
        assert again == data
    else:  # another libzstd may pick other matches: the layout and every raw byte must still agree
        assert [r[0] for r in _records(again)] == [r[0] for r in _records(data)]
        assert [r[2:] for r in _records(again)] == [r[2:] for r in _records(data)]


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.stem)
def test_invalid_vector_is_refused(path: Path) -> None:
    data = path.read_bytes()
    expected = _expected(path)
    error = getattr(errors, expected["error"])
    with pytest.raises(ProtocolError) as caught:
        _decode_all(expected["decoder"], data)
    # an IPC frame whose body is bad is a FrameBodyError: a FrameError after which the stream stays in step
    found = FrameError if type(caught.value) is FrameBodyError else type(caught.value)
    assert found is error


def _decode_all(kind: str, data: bytes) -> None:
    if kind == "ipc":
        decoder = FrameDecoder()
        decoder.feed(data)
        list(decoder)
        decoder.finish()
    else:
        env = EnvelopeDecoder()
        env.feed(data)
        env.finish()


EARLIER = sorted((VECTORS / "ipc-earlier").glob("*.bin"))


@pytest.mark.parametrize("path", EARLIER, ids=lambda p: p.stem)
def test_earlier_ipc_encodings_still_decode(path: Path) -> None:
    """Frames written before a field was added (schema rule: new fields get defaults) decode to the
    message of today's vector of the same name: the missing trailing fields take their defaults."""
    old = FrameDecoder()
    old.feed(path.read_bytes())
    (msg,) = list(old)
    today = FrameDecoder()
    today.feed((VECTORS / "ipc" / path.name).read_bytes())
    (current,) = list(today)
    assert msg == current
    assert len(path.read_bytes()) < len((VECTORS / "ipc" / path.name).read_bytes())
