from __future__ import annotations

import hashlib
import os
import struct
import tracemalloc
import zlib
from typing import Any

import msgspec
import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from paglets.core.errors import ChecksumError, FrameError, LimitExceededError, ProtocolError
from paglets.wire.envelope import (
    DecodedEnvelope,
    EnvelopeDecoder,
    EnvelopeEncoder,
    EnvelopeMetadata,
    MemoryviewSink,
    decode_envelope,
    encode_envelope,
)
from paglets.wire.limits import (
    MAX_ENVELOPE_METADATA,
    MAX_FRAME_PAYLOAD,
    MAX_FRAME_RAW,
    MAX_STATE_BYTES,
    MiB,
)

HEADER = struct.Struct("<4sHHIQI")
FRAME = struct.Struct("<BBHIII")
TRAILER = struct.Struct("<BBHIQI")

META = EnvelopeMetadata(
    kind="dispatch",
    agent_id="5f0c4a3e9b2d4c1f8e7a6b5c4d3e2f10",
    agent_class_name="tests.Agent",
    state_class_name="tests.State",
    transfer_id="00112233445566778899aabbccddeeff",
    source_host_name="alpha",
    source_host_address="http://127.0.0.1:1",
    ticket={"destination": "http://127.0.0.1:2", "timeout": 10.0},
)


def random_bytes(n: int, seed: int = 0) -> bytes:
    out = bytearray()
    counter = 0
    while len(out) < n:
        out += hashlib.blake2b(f"{seed}:{counter}".encode(), digest_size=64).digest()
        counter += 1
    return bytes(out[:n])


def compressible(n: int) -> bytes:
    return (b"paglets carry state, not code. " * (n // 31 + 1))[:n]


def decode_chunks(chunks: Any, **kwargs: Any) -> DecodedEnvelope:
    decoder = EnvelopeDecoder(**kwargs)
    for chunk in chunks:
        decoder.feed(chunk)
    return decoder.finish()


def frame_kinds(data: bytes) -> list[str]:
    meta_length = HEADER.unpack_from(data)[3]
    pos = HEADER.size + meta_length
    kinds = []
    while data[pos] != ord("T"):
        kind, _, _, stored, _, _ = FRAME.unpack_from(data, pos)
        kinds.append(chr(kind))
        pos += FRAME.size + stored
    return kinds


def header_with(data: bytes, **changes: int) -> bytes:
    """``data`` with header fields replaced and the header CRC recomputed (a well-formed lie)."""
    fields = dict(
        zip(("magic", "version", "flags", "meta", "state", "crc"), HEADER.unpack_from(data), strict=True)
    )
    fields.update(changes)
    fixed = HEADER.pack(*fields.values())[:20]
    meta = data[HEADER.size : HEADER.size + fields["meta"]]
    crc = zlib.crc32(meta, zlib.crc32(fixed))
    return fixed + crc.to_bytes(4, "little") + data[HEADER.size :]


# --- round trips -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "state",
    [b"", b"x", random_bytes(1000), compressible(5000), random_bytes(3 * MiB + 5), compressible(2 * MiB)],
    ids=["empty", "one-byte", "small-random", "small-text", "multi-random", "multi-text"],
)
def test_round_trip(state: bytes) -> None:
    data = encode_envelope(META, state)
    result = decode_envelope(data)
    assert result.metadata == META
    assert result.state == state
    assert result.state_length == len(state)
    assert result.state_crc == zlib.crc32(state)


def test_incompressible_frames_are_raw_and_compressible_ones_zstd() -> None:
    state = random_bytes(MiB) + compressible(MiB) + random_bytes(100)
    encoder = EnvelopeEncoder(META, state)
    data = b"".join(encoder)
    assert frame_kinds(data) == ["R", "Z", "R"]
    stats = encoder.statistics()
    assert (stats.raw_frames, stats.compressed_frames) == (2, 1)
    assert stats.envelope_bytes == len(data)
    assert stats.stored_bytes < len(state)


def test_compressible_state_shrinks() -> None:
    state = compressible(4 * MiB)
    data = encode_envelope(META, state)
    assert len(data) * 20 < len(state)
    assert frame_kinds(data) == ["Z"] * 4


def test_compression_can_be_turned_off() -> None:
    data = encode_envelope(META, compressible(10_000), level=None)
    assert frame_kinds(data) == ["R"]


def test_raw_frames_are_views_of_the_state() -> None:
    state = bytearray(random_bytes(2 * MiB))
    chunks = list(EnvelopeEncoder(META, state))
    payloads = [c for c in chunks if isinstance(c, memoryview)]
    assert len(payloads) == 2
    assert all(p.obj is state for p in payloads)


def test_encoder_accepts_memoryviews_of_any_format() -> None:
    state = random_bytes(4096)
    view = memoryview(state).cast("I")
    assert decode_envelope(encode_envelope(META, view)).state == state


def test_encoder_iterates_once() -> None:
    encoder = EnvelopeEncoder(META, b"abc")
    list(encoder)
    with pytest.raises(RuntimeError):
        list(encoder)


@settings(max_examples=60)
@given(
    st.binary(max_size=3000) | st.sampled_from([compressible(2500), b"\x00" * 4000]),
    st.integers(1, 1024),
    st.data(),
)
def test_any_split_decodes_to_the_same_envelope(state: bytes, frame_size: int, data: st.DataObject) -> None:
    envelope = encode_envelope(META, state, frame_size=frame_size)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(envelope)), max_size=12)))
    pieces = [envelope[a:b] for a, b in zip([0, *cuts], [*cuts, len(envelope)], strict=True)]
    as_views = data.draw(st.booleans())
    result = decode_chunks(memoryview(p) if as_views else bytearray(p) for p in pieces)
    assert result.metadata == META
    assert result.state == state
    assert result.frame_count == -(-len(state) // frame_size)


def test_metadata_is_available_before_the_state() -> None:
    data = encode_envelope(META, random_bytes(5000))
    decoder = EnvelopeDecoder()
    decoder.feed(data[:400])
    assert decoder.metadata == META
    assert decoder.declared_state_length == 5000
    assert not decoder.done


# --- sinks -----------------------------------------------------------------------------------------------


def test_sink_factory_receives_the_state() -> None:
    state = random_bytes(MiB) + compressible(MiB)
    target = bytearray(len(state))
    calls = []

    def factory(metadata: EnvelopeMetadata, length: int) -> MemoryviewSink:
        calls.append((metadata.agent_id, length))
        return MemoryviewSink(memoryview(target)[:length])

    result = decode_chunks(EnvelopeEncoder(META, state), sink_factory=factory)
    assert result.state is None
    assert calls == [(META.agent_id, len(state))]
    assert target == state


class _PacingSink:
    """A sink that reserves each frame only when ``allow`` says so (and records what it was asked)."""

    def __init__(self, allow: Any) -> None:
        self.data = bytearray()
        self.asked: list[int] = []
        self.allow = allow
        self.reserved = 0

    def reserve(self, nbytes: int) -> bool:
        self.asked.append(nbytes)
        if not self.allow(len(self.asked), nbytes):
            return False
        self.reserved += nbytes
        return True

    def write(self, data: memoryview, /) -> int:
        assert len(self.data) + data.nbytes <= self.reserved, "wrote bytes that were not reserved"
        self.data += data
        return data.nbytes


def _feed_all(decoder: EnvelopeDecoder, pieces: list[bytes]) -> int:
    """Feed every piece, feeding the rest again whenever the decoder pauses; returns the pauses seen."""
    pauses = 0
    for piece in pieces:
        view = memoryview(piece)
        while True:
            used = decoder.feed(view)
            assert 0 <= used <= view.nbytes
            if used == view.nbytes and not decoder.paused:
                break
            assert decoder.paused
            pauses += 1
            view = view[used:]
    return pauses


@settings(max_examples=60)
@given(
    st.binary(max_size=3000) | st.sampled_from([compressible(2500), b"\x00" * 4000]),
    st.integers(1, 700),
    st.data(),
)
def test_a_pausing_sink_gets_the_same_state_under_any_split(
    state: bytes, frame_size: int, data: st.DataObject
) -> None:
    envelope = encode_envelope(META, state, frame_size=frame_size)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(envelope)), max_size=12)))
    pieces = [envelope[a:b] for a, b in zip([0, *cuts], [*cuts, len(envelope)], strict=True)]
    refusals = data.draw(st.lists(st.booleans(), max_size=40))
    sinks: list[_PacingSink] = []

    def allow(call: int, nbytes: int) -> bool:  # refuse some first asks, never the same one for ever
        return call > len(refusals) or not refusals[call - 1]

    def factory(metadata: EnvelopeMetadata, length: int) -> _PacingSink:
        sinks.append(_PacingSink(allow))
        return sinks[-1]

    decoder = EnvelopeDecoder(sink_factory=factory)
    _feed_all(decoder, pieces)
    result = decoder.finish()
    assert result.frame_count == -(-len(state) // frame_size)
    assert bytes(sinks[0].data) == state if state else not sinks or not sinks[0].data


def test_a_pause_keeps_the_frame_header_and_consumes_nothing_of_the_frame() -> None:
    state = b"\x00" * (3 * MiB)  # three zstd frames of 1 MiB of zeros, a few dozen bytes each
    envelope = encode_envelope(META, state)
    budget = [MiB]  # the sink takes one frame, then refuses until more budget comes

    def allow(call: int, nbytes: int) -> bool:
        if budget[0] < nbytes:
            return False
        budget[0] -= nbytes
        return True

    sink = _PacingSink(allow)
    decoder = EnvelopeDecoder(sink_factory=lambda metadata, length: sink)
    used = decoder.feed(envelope)
    assert decoder.paused
    assert len(sink.data) == MiB  # one frame decoded, not three
    assert decoder.statistics().envelope_bytes == used < len(envelope)
    assert decoder.feed(b"") == 0  # still no budget: nothing moves
    assert decoder.paused
    budget[0] = 2 * MiB
    rest = envelope[used:]
    assert decoder.feed(rest) == len(rest)
    assert not decoder.paused
    assert decoder.finish().state_length == len(state)
    assert bytes(sink.data) == state
    assert sink.asked == [MiB, MiB, MiB, MiB, MiB]  # the paused frame was asked again, not skipped


def test_a_bad_frame_header_is_refused_before_the_sink_is_asked() -> None:
    envelope = bytearray(encode_envelope(META, b"\x00" * (2 * MiB)))
    meta_length = HEADER.unpack_from(envelope)[3]
    first = HEADER.size + meta_length
    second = first + FRAME.size + FRAME.unpack_from(envelope, first)[3]
    envelope[second + 1] = 1  # unknown frame flags
    sink = _PacingSink(lambda call, nbytes: call == 1)  # would pause at the second frame
    decoder = EnvelopeDecoder(sink_factory=lambda metadata, length: sink)
    with pytest.raises(FrameError, match="flags"):
        decoder.feed(envelope)
    assert sink.asked == [MiB]


def test_memoryview_sink_bounds() -> None:
    sink = MemoryviewSink(bytearray(4))
    sink.write(memoryview(b"abc"))
    assert sink.filled == 3
    with pytest.raises(LimitExceededError):
        sink.write(memoryview(b"de"))
    sink.release()
    with pytest.raises(ValueError, match="writable"):
        MemoryviewSink(memoryview(b"read-only"))


# --- refusals --------------------------------------------------------------------------------------------


def test_every_single_bit_flip_is_detected() -> None:
    state = compressible(500) + random_bytes(500)
    data = encode_envelope(META, state, frame_size=500)
    assert frame_kinds(data) == ["Z", "R"]
    for index in range(len(data)):
        for bit in (0, 3, 7):
            corrupted = bytearray(data)
            corrupted[index] ^= 1 << bit
            with pytest.raises(ProtocolError):
                decode_envelope(bytes(corrupted))


def test_every_truncation_is_a_frame_error() -> None:
    data = encode_envelope(META, compressible(700) + random_bytes(300), frame_size=512)
    for end in range(len(data)):
        decoder = EnvelopeDecoder()
        decoder.feed(data[:end])
        with pytest.raises(FrameError, match="truncated"):
            decoder.finish()


@settings(max_examples=150)
@given(st.binary(max_size=400), st.binary(min_size=1, max_size=64))
def test_random_bytes_and_prefixes_only_raise_protocol_errors(noise: bytes, prefix: bytes) -> None:
    valid = encode_envelope(META, b"state")
    for candidate in (noise, prefix + valid, b"PGLE\x01\x00\x00\x00" + noise, valid[:24] + noise):
        with pytest.raises(ProtocolError):
            decode_chunks([candidate])


@settings(max_examples=150)
@given(st.data())
def test_corruption_only_raises_protocol_errors(data: st.DataObject) -> None:
    envelope = bytearray(encode_envelope(META, compressible(900) + random_bytes(300), frame_size=400))
    for _ in range(data.draw(st.integers(1, 6))):
        envelope[data.draw(st.integers(0, len(envelope) - 1))] = data.draw(st.integers(0, 255))
    try:
        decode_envelope(bytes(envelope))
    except ProtocolError:
        pass


def test_errors_poison_the_decoder() -> None:
    decoder = EnvelopeDecoder()
    with pytest.raises(FrameError, match="magic"):
        decoder.feed(b"NOPE" + bytes(30))
    with pytest.raises(FrameError, match="already failed"):
        decoder.feed(b"")
    with pytest.raises(FrameError, match="already failed"):
        decoder.finish()


def test_unknown_version_and_flags_are_refused() -> None:
    data = encode_envelope(META, b"abc")
    with pytest.raises(FrameError, match="version 2"):
        decode_envelope(header_with(data, version=2))
    with pytest.raises(FrameError, match="flags"):
        decode_envelope(header_with(data, flags=1))


def test_declared_state_above_the_limit_is_refused_before_any_state() -> None:
    data = encode_envelope(META, b"a" * 1000)
    decoder = EnvelopeDecoder(max_state_bytes=999)
    with pytest.raises(LimitExceededError):
        decoder.feed(data[: HEADER.size])
    with pytest.raises(LimitExceededError):
        decode_envelope(header_with(data, state=MAX_STATE_BYTES + 1))


def test_metadata_limits() -> None:
    data = encode_envelope(META, b"")
    with pytest.raises(LimitExceededError):
        EnvelopeDecoder().feed(header_with(data, meta=MAX_ENVELOPE_METADATA + 1)[: HEADER.size])
    with pytest.raises(FrameError, match="empty"):
        EnvelopeDecoder().feed(header_with(data, meta=0)[: HEADER.size])
    huge = msgspec.structs.replace(META, registered_files=[{"x": "y" * 1000}] * 1100)
    with pytest.raises(LimitExceededError) as caught:
        encode_envelope(huge, b"")
    assert caught.value.fault == "local"


def test_bad_metadata_is_a_frame_error() -> None:
    good = encode_envelope(META, b"")
    meta = msgspec.msgpack.encode({"kind": "teleport", "agent_id": "x"})
    fixed = HEADER.pack(b"PGLE", 1, 0, len(meta), 0, 0)[:20]
    crc = zlib.crc32(meta, zlib.crc32(fixed))
    data = fixed + crc.to_bytes(4, "little") + meta + good[-TRAILER.size :]
    with pytest.raises(FrameError, match="metadata"):
        decode_envelope(data)


def _envelope_with_frame(kind: int, stored: bytes, raw_length: int, crc: int | None = None) -> bytes:
    head = encode_envelope(META, b"")[: -TRAILER.size]
    head = header_with(head, state=raw_length)
    frame = FRAME.pack(kind, 0, 0, len(stored), raw_length, crc if crc is not None else 0) + stored
    return head + frame + TRAILER.pack(ord("T"), 0, 0, 1, raw_length, crc or 0)


def test_decompression_bomb_is_refused_before_decompressing() -> None:
    bomb = zstandard.ZstdCompressor(level=19).compress(bytes(512 * MiB))
    assert len(bomb) < MAX_FRAME_PAYLOAD
    tracemalloc.start()
    try:
        with pytest.raises(LimitExceededError):  # honest frame header: 512 MiB raw is above MAX_FRAME_RAW
            decode_envelope(_envelope_with_frame(ord("Z"), bomb, 512 * MiB))
        with pytest.raises(ChecksumError, match="declares"):  # lying frame header: content size disagrees
            decode_envelope(_envelope_with_frame(ord("Z"), bomb, 1000))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * MiB


def test_zstd_frame_without_content_size_is_refused() -> None:
    packed = zstandard.ZstdCompressor(level=1, write_content_size=False).compress(b"a" * 1000)
    with pytest.raises(ChecksumError):
        decode_envelope(_envelope_with_frame(ord("Z"), packed, 1000, zlib.crc32(b"a" * 1000)))


def test_frame_limits() -> None:
    with pytest.raises(LimitExceededError):
        decode_envelope(_envelope_with_frame(ord("R"), b"", MAX_FRAME_RAW + 1))
    with pytest.raises(FrameError, match="empty state frame"):
        decode_envelope(_envelope_with_frame(ord("R"), b"", 0))
    with pytest.raises(FrameError, match="declares"):
        decode_envelope(_envelope_with_frame(ord("R"), b"abc", 4))


def test_frames_beyond_the_declared_length_are_refused() -> None:
    data = encode_envelope(META, b"abcdef")
    with pytest.raises(ChecksumError, match="more than the declared"):
        decode_envelope(header_with(data, state=5))


def test_trailer_mismatches_are_checksum_errors() -> None:
    data = bytearray(encode_envelope(META, b"abcdef"))
    for offset in (4, 8, 16):  # frame_count, state_length, state_crc
        corrupted = bytearray(data)
        corrupted[len(data) - TRAILER.size + offset] ^= 1
        with pytest.raises(ChecksumError):
            decode_envelope(bytes(corrupted))


def test_encoder_argument_checks() -> None:
    with pytest.raises(ValueError, match="frame_size"):
        EnvelopeEncoder(META, b"", frame_size=0)
    with pytest.raises(ValueError, match="frame_size"):
        EnvelopeEncoder(META, b"", frame_size=MAX_FRAME_RAW + 1)
    with pytest.raises(LimitExceededError):
        EnvelopeEncoder(META, b"x" * 70_000, frame_size=1)  # more than MAX_STATE_FRAMES frames


# --- memory ----------------------------------------------------------------------------------------------


def test_large_state_streams_with_bounded_memory() -> None:
    state = os.urandom(64 * MiB)
    tracemalloc.start()
    try:
        encoder = EnvelopeEncoder(META, state)
        total = 0
        crc = 0
        for chunk in encoder:  # consume like a socket writer: nothing kept
            total += len(chunk)
            crc = zlib.crc32(chunk, crc)
        _, encode_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        target = bytearray(len(state))  # e.g. a shared-memory segment, allocated by the runtime
        baseline, _ = tracemalloc.get_traced_memory()
        decoder = EnvelopeDecoder(sink_factory=lambda _m, n: MemoryviewSink(memoryview(target)[:n]))
        for chunk in EnvelopeEncoder(META, state):
            decoder.feed(chunk)
        decoder.finish()
        _, decode_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert total == encoder.statistics().envelope_bytes
    assert encode_peak < 4 * MiB  # far below the 64 MiB state: no whole copy
    assert decode_peak - baseline < 8 * MiB
    assert target == state


@pytest.mark.parametrize("transfer_id", ["0" * 31, "0" * 32 + "\n", "A" * 32, "g" * 32, ""])
def test_transfer_id_must_be_32_lowercase_hex(transfer_id: str) -> None:
    fields = msgspec.structs.asdict(META) | {"transfer_id": transfer_id}
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert(fields, EnvelopeMetadata)
