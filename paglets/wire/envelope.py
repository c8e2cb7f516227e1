"""The movement envelope: streaming encoder and incremental decoder (``proto/PROTOCOL.md`` §2).

Layout (all integers little-endian; CRC = ``zlib.crc32``)::

    header    magic "PGLE" | version u16 = 1 | flags u16 = 0 | metadata_length u32 | state_length u64
              | header_crc u32                                   (24 bytes)
    metadata  MessagePack map of EnvelopeMetadata               (metadata_length bytes)
    frames    kind u8 | flags u8 = 0 | reserved u16 = 0 | stored_length u32 | raw_length u32
              | crc u32                                          (16 bytes) + stored_length payload bytes
    trailer   kind u8 = "T" | flags u8 = 0 | reserved u16 = 0 | frame_count u32 | state_length u64
              | state_crc u32                                    (20 bytes)

``header_crc`` covers the first 20 header bytes and the metadata. A frame is ``R`` (raw: the payload is
the state bytes, ``stored_length == raw_length``) or ``Z`` (one zstd frame that declares its content
size, equal to ``raw_length``). A frame's ``crc`` is the CRC of its raw bytes; ``state_crc`` is the CRC of
the whole state (derived from the frame CRCs with ``crc32_combine``, no second pass).

Encoding (:class:`EnvelopeEncoder`) yields chunks without building the envelope in memory: raw frames are
``memoryview`` slices of the caller's state (no copy), so the state must not change until iteration ends.
Each ``STATE_FRAME_SIZE`` slice is compressed only when it pays (probe first, keep at <= 90 %; the rules
are in ``paglets.wire._zstd``).

Decoding (:class:`EnvelopeDecoder`) accepts any split of the stream and never keeps a reference to fed
data. Everything is checked before it is trusted and bounded before it is allocated:

- the header's declared state length against ``max_state_bytes``; metadata against
  ``MAX_ENVELOPE_METADATA`` (and its CRC before it is decoded);
- each frame: stored length against ``MAX_FRAME_PAYLOAD``, raw length against ``MAX_FRAME_RAW`` and the
  bytes still declared, the zstd content size against the raw length before decompressing (a bomb is
  refused before any output is allocated), the frame count against ``MAX_STATE_FRAMES``;
- the trailer against the frame count, the total length and the whole-state CRC.

State bytes go to a sink (``write(memoryview)``) as they arrive: raw payloads stream straight from the fed
chunks, compressed ones after decompression. **A sink's content is not valid until** :meth:`finish`
**returns**: a later frame or the trailer may still fail. By default the state collects in a
``bytearray``; pass ``sink_factory`` to write it elsewhere (e.g. a shared-memory segment, see
:class:`MemoryviewSink`). The declared length is the sender's claim: a receiver that allocates from it
before the bytes arrive lets 67 KB of zstd frames of zeros commit a GiB, so a sink should grow with the
data instead.

Pacing: a sink may also have ``reserve(nbytes) -> bool``. The decoder calls it before each state frame
with the frame's raw length, after the frame header was checked and before any of its bytes are written.
``False`` *pauses* the decoder at that frame: :meth:`feed` returns how many bytes it consumed (the frame
header is kept inside the decoder) and the caller feeds the rest again once the sink can take the frame
(``paused`` says so; ``feed(b"")`` retries without new data). This is how a receiver bounds the decoded
bytes one call may produce (a 49-byte frame may decode to ``MAX_FRAME_RAW``) and waits for a memory
budget without failing the stream.

Errors: truncated or malformed input raises ``FrameError``, a CRC or length mismatch ``ChecksumError``,
a limit ``LimitExceededError``; nothing else escapes for any input.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from typing import Annotated, Any, Final, Literal, Protocol

import msgspec
import zstandard

from paglets._errors import ChecksumError, FrameError, LimitExceededError, ProtocolError
from paglets.wire._zstd import (
    MIN_COMPRESS,
    ZSTD_LEVEL,
    acquire_compressor,
    acquire_decompressor,
    compress_if_worth_it,
    decompress_exact,
    release_compressor,
    release_decompressor,
)
from paglets.wire.checksum import crc32, crc32_combine
from paglets.wire.limits import (
    MAX_ENVELOPE_METADATA,
    MAX_FRAME_PAYLOAD,
    MAX_FRAME_RAW,
    MAX_STATE_BYTES,
    MAX_STATE_FRAMES,
    STATE_FRAME_SIZE,
)

__all__ = [
    "ENVELOPE_MAGIC",
    "ENVELOPE_VERSION",
    "DecodedEnvelope",
    "EnvelopeDecoder",
    "EnvelopeEncoder",
    "EnvelopeKind",
    "EnvelopeMetadata",
    "EnvelopeStatistics",
    "MemoryviewSink",
    "StateSink",
    "decode_envelope",
    "encode_envelope",
]

ENVELOPE_MAGIC: Final = b"PGLE"
ENVELOPE_VERSION: Final = 1

FRAME_RAW: Final = 0x52  # "R"
FRAME_ZSTD: Final = 0x5A  # "Z"
FRAME_TRAILER: Final = 0x54  # "T"

_HEADER: Final = struct.Struct("<4sHHIQI")
_FRAME: Final = struct.Struct("<BBHIII")
_TRAILER: Final = struct.Struct("<BBHIQI")
_HEADER_CRC_SPAN: Final = _HEADER.size - 4  # the header CRC covers everything before itself

EnvelopeKind = Literal["dispatch", "clone", "retract", "activation"]
TransferId = Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{32}\Z")]  # \Z: "$" would allow a newline


class EnvelopeMetadata(msgspec.Struct, frozen=True, kw_only=True):
    """Everything about a move except the state. Encoded as a MessagePack map.

    ``ticket`` is the wire dict of a ``TransferTicket``; ``registered_files`` lists the
    ``{file, artifact, transfer_mode, source_path}`` dicts of the registered files. Unknown keys from a
    newer peer are ignored.
    """

    kind: EnvelopeKind
    agent_id: str
    agent_class_name: str
    state_class_name: str
    transfer_id: TransferId
    source_host_name: str = ""
    source_host_address: str = ""
    target_host_name: str = ""
    target_host_address: str = ""
    clone_of: str | None = None
    ticket: dict[str, Any] | None = None
    registered_files: list[dict[str, Any]] = []


_metadata_encoder: Final = msgspec.msgpack.Encoder()
_metadata_decoder: Final = msgspec.msgpack.Decoder(EnvelopeMetadata)


class EnvelopeStatistics(msgspec.Struct, frozen=True):
    """What an encoder produced or a decoder consumed so far."""

    state_bytes: int
    stored_bytes: int
    raw_frames: int
    compressed_frames: int
    envelope_bytes: int


# --- encoding --------------------------------------------------------------------------------------------


def _encode_metadata(metadata: EnvelopeMetadata) -> bytes:
    try:
        data = _metadata_encoder.encode(metadata)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ProtocolError(f"cannot encode envelope metadata: {exc}", fault="local") from exc
    if len(data) > MAX_ENVELOPE_METADATA:
        raise LimitExceededError(
            f"envelope metadata is {len(data)} bytes, above MAX_ENVELOPE_METADATA ({MAX_ENVELOPE_METADATA})",
            fault="local",
        )
    return data


class EnvelopeEncoder:
    """Stream one envelope: iterate it to get the chunks (``bytes`` headers, payload ``memoryview``\\ s).

    ``state`` may be huge; it is never copied whole. ``level=None`` turns compression off. Iterate once;
    :meth:`statistics` is complete afterwards.
    """

    def __init__(
        self,
        metadata: EnvelopeMetadata,
        state: bytes | bytearray | memoryview,
        *,
        frame_size: int = STATE_FRAME_SIZE,
        level: int | None = ZSTD_LEVEL,
    ) -> None:
        if not 1 <= frame_size <= MAX_FRAME_RAW:
            raise ValueError(f"frame_size must be in 1..{MAX_FRAME_RAW}, got {frame_size}")
        view = memoryview(state)
        if view.ndim != 1 or view.itemsize != 1:
            view = view.cast("B")
        if view.nbytes > MAX_STATE_BYTES:
            raise LimitExceededError(
                f"state of {view.nbytes} bytes is above MAX_STATE_BYTES ({MAX_STATE_BYTES})", fault="local"
            )
        if -(-view.nbytes // frame_size) > MAX_STATE_FRAMES:
            raise LimitExceededError(
                f"{view.nbytes} bytes in frames of {frame_size} need more than MAX_STATE_FRAMES "
                f"({MAX_STATE_FRAMES}) frames",
                fault="local",
            )
        self._metadata_bytes = _encode_metadata(metadata)
        self._view = view
        self._frame_size = frame_size
        self._level = level
        self._started = False
        self._stored = 0
        self._raw_frames = 0
        self._zstd_frames = 0
        self._total = 0

    def __iter__(self) -> Iterator[bytes | memoryview]:
        if self._started:
            raise RuntimeError("an EnvelopeEncoder can be iterated only once")
        self._started = True
        view, size = self._view, self._view.nbytes
        meta = self._metadata_bytes
        fixed = _HEADER.pack(ENVELOPE_MAGIC, ENVELOPE_VERSION, 0, len(meta), size, 0)[:_HEADER_CRC_SPAN]
        header_crc = crc32(meta, crc32(fixed))
        head = fixed + header_crc.to_bytes(4, "little") + meta
        self._total += len(head)
        yield head
        state_crc = 0
        frames = 0
        level = self._level
        # tiny states are never compressed: do not even take a context
        cctx = acquire_compressor(level) if level is not None and size >= MIN_COMPRESS else None
        try:
            for start in range(0, size, self._frame_size):
                piece = view[start : start + self._frame_size]
                raw_length = piece.nbytes
                frame_crc = crc32(piece)
                state_crc = crc32_combine(state_crc, frame_crc, raw_length)
                packed = None if cctx is None else compress_if_worth_it(cctx, piece)
                frames += 1
                if packed is None:
                    self._raw_frames += 1
                    self._stored += raw_length
                    self._total += _FRAME.size + raw_length
                    yield _FRAME.pack(FRAME_RAW, 0, 0, raw_length, raw_length, frame_crc)
                    yield piece
                else:
                    self._zstd_frames += 1
                    self._stored += len(packed)
                    self._total += _FRAME.size + len(packed)
                    yield _FRAME.pack(FRAME_ZSTD, 0, 0, len(packed), raw_length, frame_crc) + packed
        finally:  # also when the consumer abandons the iteration (generator close)
            if cctx is not None:
                release_compressor(cctx, level if level is not None else ZSTD_LEVEL)
        self._total += _TRAILER.size
        yield _TRAILER.pack(FRAME_TRAILER, 0, 0, frames, size, state_crc)

    def statistics(self) -> EnvelopeStatistics:
        return EnvelopeStatistics(
            state_bytes=self._view.nbytes,
            stored_bytes=self._stored,
            raw_frames=self._raw_frames,
            compressed_frames=self._zstd_frames,
            envelope_bytes=self._total,
        )


def encode_envelope(
    metadata: EnvelopeMetadata,
    state: bytes | bytearray | memoryview,
    *,
    frame_size: int = STATE_FRAME_SIZE,
    level: int | None = ZSTD_LEVEL,
) -> bytes:
    """The whole envelope as one ``bytes`` (for small states, tests and vectors; stream large ones)."""
    return b"".join(EnvelopeEncoder(metadata, state, frame_size=frame_size, level=level))


# --- decoding --------------------------------------------------------------------------------------------


class StateSink(Protocol):
    """Where a decoder writes state bytes, in order. Nothing written is valid before ``finish()``.

    ``write`` must copy what it keeps: the view it gets is only valid during the call. A sink may also
    define ``reserve(nbytes) -> bool`` (see "Pacing" in the module docstring).
    """

    def write(self, data: memoryview, /) -> object: ...


class MemoryviewSink:
    """Writes the state sequentially into a caller-owned buffer (e.g. a mapped shared-memory segment)."""

    __slots__ = ("_pos", "_view")

    def __init__(self, target: bytearray | memoryview) -> None:
        view = memoryview(target)
        if view.readonly:
            raise ValueError("MemoryviewSink needs a writable buffer")
        self._view = view.cast("B") if view.format != "B" or view.ndim != 1 else view
        self._pos = 0

    def write(self, data: memoryview, /) -> int:
        n = data.nbytes
        end = self._pos + n
        if end > self._view.nbytes:
            raise LimitExceededError(
                f"state does not fit the sink buffer ({self._view.nbytes} bytes)", fault="local"
            )
        self._view[self._pos : end] = data
        self._pos = end
        return n

    @property
    def filled(self) -> int:
        """Bytes written so far."""
        return self._pos

    def release(self) -> None:
        """Drop the view of the target buffer (so an mmap can be closed)."""
        self._view.release()


class _BytearraySink:
    __slots__ = ("data",)

    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, data: memoryview, /) -> int:
        self.data += data
        return data.nbytes


class DecodedEnvelope(msgspec.Struct, frozen=True):
    """A verified envelope. ``state`` is the decoded state unless a ``sink_factory`` received it."""

    metadata: EnvelopeMetadata
    state_length: int
    state_crc: int
    frame_count: int
    state: bytearray | None = None


SinkFactory = Callable[[EnvelopeMetadata, int], StateSink]

# decoder states
_S_HEADER: Final = 0
_S_METADATA: Final = 1
_S_RECORD: Final = 2
_S_RAW: Final = 3
_S_ZSTD: Final = 4
_S_DONE: Final = 5

_RECORD_SIZES: Final = {FRAME_RAW: _FRAME.size, FRAME_ZSTD: _FRAME.size, FRAME_TRAILER: _TRAILER.size}


class EnvelopeDecoder:
    """Incremental envelope decoder: :meth:`feed` chunks, then :meth:`finish`.

    ``max_state_bytes`` lowers the accepted state size (it can never exceed ``MAX_STATE_BYTES``).
    ``sink_factory(metadata, declared_length)`` is called once the header and metadata are verified and
    returns the sink for the state; without it the state collects in a ``bytearray`` returned by
    :meth:`finish`. After an error the decoder stays failed.
    """

    __slots__ = (
        "_crc_running",
        "_dctx",
        "_declared",
        "_error",
        "_expect_crc",
        "_frame_raw",
        "_frames",
        "_max_state",
        "_metadata",
        "_need",
        "_paused",
        "_pending",
        "_raw_frames",
        "_received",
        "_remaining",
        "_reserve",
        "_sink",
        "_sink_factory",
        "_state",
        "_state_crc",
        "_stored",
        "_written",
        "_zstd_frames",
    )

    def __init__(
        self, *, max_state_bytes: int = MAX_STATE_BYTES, sink_factory: SinkFactory | None = None
    ) -> None:
        self._max_state = min(max_state_bytes, MAX_STATE_BYTES)
        self._sink_factory = sink_factory
        self._sink: StateSink | None = None
        self._reserve: Callable[[int], bool] | None = None
        self._paused = False  # a frame header waits in _pending until the sink reserves its bytes
        self._state = _S_HEADER
        self._need = _HEADER.size
        self._pending = bytearray()
        self._metadata: EnvelopeMetadata | None = None
        self._declared = -1
        self._crc_running = 0  # CRC of what arrived so far (header + metadata, then the current frame)
        self._expect_crc = 0  # the CRC that _crc_running must reach
        self._remaining = 0  # raw payload bytes still expected in the current R frame
        self._frame_raw = 0  # raw length of the current frame
        self._state_crc = 0
        self._written = 0
        self._frames = 0
        self._raw_frames = 0
        self._zstd_frames = 0
        self._stored = 0
        self._received = 0
        self._dctx: zstandard.ZstdDecompressor | None = None
        self._error: ProtocolError | None = None

    # -- public ---------------------------------------------------------------------------------------------

    @property
    def metadata(self) -> EnvelopeMetadata | None:
        """The verified metadata, once the header and metadata have arrived."""
        return self._metadata

    @property
    def declared_state_length(self) -> int | None:
        """The state length the header announces (already checked against ``max_state_bytes``)."""
        return self._declared if self._declared >= 0 else None

    @property
    def done(self) -> bool:
        """True once the trailer has been verified."""
        return self._state == _S_DONE

    @property
    def paused(self) -> bool:
        """True while the sink refuses to reserve the next frame (feed the rest again later)."""
        return self._paused

    def feed(self, data: bytes | bytearray | memoryview) -> int:
        """Consume the next bytes of the envelope (any split is fine); returns how many were consumed.

        That is ``len(data)`` unless the sink paused the decoder (see "Pacing" in the module docstring):
        then the caller feeds ``data[consumed:]`` again once the sink can take the next frame.
        """
        if self._error is not None:
            raise FrameError("envelope decoder already failed") from self._error
        view = memoryview(data)
        if view.ndim != 1 or view.itemsize != 1:
            view = view.cast("B")
        try:
            return self._consume(view)
        except ProtocolError as exc:
            self._error = exc
            self._release_context()
            raise
        finally:
            view.release()

    def finish(self) -> DecodedEnvelope:
        """Check the envelope is complete and return it; only now is the state valid."""
        if self._error is not None:
            raise FrameError("envelope decoder already failed") from self._error
        if self._state != _S_DONE:
            where = ("header", "metadata", "frame header", "raw frame", "zstd frame")[self._state]
            self._error = FrameError(f"envelope truncated in the {where} after {self._received} bytes")
            self._release_context()
            raise self._error
        self._release_context()
        assert self._metadata is not None
        state = self._sink.data if isinstance(self._sink, _BytearraySink) else None
        return DecodedEnvelope(
            metadata=self._metadata,
            state_length=self._declared,
            state_crc=self._state_crc,
            frame_count=self._frames,
            state=state,
        )

    def _release_context(self) -> None:
        if self._dctx is not None:
            release_decompressor(self._dctx)
            self._dctx = None

    def statistics(self) -> EnvelopeStatistics:
        return EnvelopeStatistics(
            state_bytes=self._written,
            stored_bytes=self._stored,
            raw_frames=self._raw_frames,
            compressed_frames=self._zstd_frames,
            envelope_bytes=self._received,
        )

    # -- parsing --------------------------------------------------------------------------------------------

    def _consume(self, view: memoryview) -> int:
        if self._paused:  # the held frame header first
            self._paused = False
            owned, self._pending = self._pending, bytearray()
            with memoryview(owned) as piece:
                try:
                    self._on_piece(piece)
                except _Pause:
                    self._pending, self._paused = owned, True
                    return 0
        end = view.nbytes
        try:
            self._consume_from(view, end)
        except _Pause as pause:
            end = pause.consumed
        self._received += end
        return end

    def _consume_from(self, view: memoryview, end: int) -> None:
        """The parsing loop of ``_consume``. When the sink pauses a frame, its header is kept in
        ``_pending`` and ``_Pause`` carries the bytes of ``view`` consumed so far."""
        pos = 0
        while pos < end:
            state = self._state
            if state == _S_RAW:
                take = min(self._remaining, end - pos)
                piece = view[pos : pos + take]
                self._crc_running = crc32(piece, self._crc_running)
                self._write(piece)
                pos += take
                self._remaining -= take
                if self._remaining == 0:
                    self._end_raw_frame()
                continue
            if state == _S_DONE:
                raise FrameError(f"{end - pos} bytes after the envelope trailer")
            if state == _S_RECORD and not self._pending:
                kind = view[pos]
                need = _RECORD_SIZES.get(kind)
                if need is None:
                    raise FrameError(f"unknown envelope frame kind 0x{kind:02x}")
                self._need = need
            have = len(self._pending)
            if have == 0 and end - pos >= self._need:
                piece = view[pos : pos + self._need]
                pos += self._need
                try:
                    self._on_piece(piece)
                except _Pause as pause:
                    self._pending, self._paused = bytearray(piece), True
                    pause.consumed = pos
                    raise
                continue
            take = min(self._need - have, end - pos)
            self._pending += view[pos : pos + take]
            pos += take
            if len(self._pending) < self._need:
                return
            owned, self._pending = self._pending, bytearray()
            with memoryview(owned) as piece:
                try:
                    self._on_piece(piece)
                except _Pause as pause:
                    self._pending, self._paused = owned, True
                    pause.consumed = pos
                    raise

    def _on_piece(self, piece: memoryview) -> None:
        state = self._state
        if state == _S_RECORD:
            self._on_record(piece)
        elif state == _S_ZSTD:
            self._on_zstd_payload(piece)
        elif state == _S_HEADER:
            self._on_header(piece)
        else:
            self._on_metadata(piece)

    def _on_header(self, piece: memoryview) -> None:
        magic, version, flags, meta_length, state_length, header_crc = _HEADER.unpack(piece)
        if magic != ENVELOPE_MAGIC:
            raise FrameError("not a paglets envelope (bad magic)")
        if version != ENVELOPE_VERSION:
            raise FrameError(f"unsupported envelope version {version} (this host reads {ENVELOPE_VERSION})")
        if flags:
            raise FrameError(f"unknown envelope header flags 0x{flags:04x}")
        if meta_length == 0:
            raise FrameError("envelope metadata is empty")
        if meta_length > MAX_ENVELOPE_METADATA:
            raise LimitExceededError(
                f"envelope metadata of {meta_length} bytes is above MAX_ENVELOPE_METADATA "
                f"({MAX_ENVELOPE_METADATA})"
            )
        if state_length > self._max_state:
            raise LimitExceededError(
                f"declared state of {state_length} bytes is above the limit ({self._max_state})"
            )
        self._declared = state_length
        self._crc_running = crc32(piece[:_HEADER_CRC_SPAN])
        self._expect_crc = header_crc
        self._state, self._need = _S_METADATA, meta_length

    def _on_metadata(self, piece: memoryview) -> None:
        if crc32(piece, self._crc_running) != self._expect_crc:
            raise ChecksumError("envelope header or metadata checksum mismatch")
        try:
            metadata = _metadata_decoder.decode(piece)
        except (msgspec.DecodeError, ValueError, RecursionError) as exc:  # ValueError: bad UTF-8
            raise FrameError(f"invalid envelope metadata: {exc}") from exc
        self._metadata = metadata
        factory = self._sink_factory
        self._sink = _BytearraySink() if factory is None else factory(metadata, self._declared)
        self._reserve = getattr(self._sink, "reserve", None)
        self._state = _S_RECORD

    def _on_record(self, piece: memoryview) -> None:
        kind = piece[0]
        if kind == FRAME_TRAILER:
            self._on_trailer(piece)
            return
        _, flags, reserved, stored, raw, frame_crc = _FRAME.unpack(piece)
        if flags or reserved:
            raise FrameError(f"unknown frame flags 0x{flags:02x}/0x{reserved:04x}")
        if raw == 0:
            raise FrameError("empty state frame")
        if raw > MAX_FRAME_RAW:
            raise LimitExceededError(
                f"state frame of {raw} raw bytes is above MAX_FRAME_RAW ({MAX_FRAME_RAW})"
            )
        if stored > MAX_FRAME_PAYLOAD:
            raise LimitExceededError(
                f"state frame payload of {stored} bytes is above MAX_FRAME_PAYLOAD ({MAX_FRAME_PAYLOAD})"
            )
        if raw > self._declared - self._written:
            raise ChecksumError(f"state frames carry more than the declared {self._declared} bytes")
        if self._frames >= MAX_STATE_FRAMES:
            raise LimitExceededError(f"more than MAX_STATE_FRAMES ({MAX_STATE_FRAMES}) state frames")
        if kind == FRAME_RAW and stored != raw:
            raise FrameError(f"raw frame stores {stored} bytes but declares {raw}")
        if kind == FRAME_ZSTD and stored == 0:
            raise FrameError("empty zstd frame")
        if self._reserve is not None and not self._reserve(raw):
            raise _Pause  # nothing changed yet: the same header is checked again when fed again
        self._frames += 1
        self._stored += stored
        self._frame_raw = raw
        if kind == FRAME_RAW:
            self._remaining = raw
            self._state = _S_RAW
        else:
            self._state, self._need = _S_ZSTD, stored
        self._expect_crc = frame_crc
        self._crc_running = 0

    def _end_frame(self) -> None:
        if self._crc_running != self._expect_crc:
            raise ChecksumError(f"state frame {self._frames} checksum mismatch")
        self._state_crc = crc32_combine(self._state_crc, self._expect_crc, self._frame_raw)
        self._state = _S_RECORD

    def _end_raw_frame(self) -> None:
        self._raw_frames += 1
        self._end_frame()

    def _on_zstd_payload(self, piece: memoryview) -> None:
        if self._dctx is None:
            self._dctx = acquire_decompressor()
        try:
            out = decompress_exact(self._dctx, piece, self._frame_raw)
        except ProtocolError as exc:
            exc.args = (f"state frame {self._frames}: {exc}",)
            raise
        with memoryview(out) as view:
            self._crc_running = crc32(view, self._crc_running)
            self._write(view)
        self._zstd_frames += 1
        self._end_frame()

    def _on_trailer(self, piece: memoryview) -> None:
        _, flags, reserved, frame_count, total, state_crc = _TRAILER.unpack(piece)
        if flags or reserved:
            raise FrameError(f"unknown trailer flags 0x{flags:02x}/0x{reserved:04x}")
        if frame_count != self._frames:
            raise ChecksumError(f"trailer counts {frame_count} frames, {self._frames} arrived")
        if total != self._written or total != self._declared:
            raise ChecksumError(
                f"trailer state length {total}, header {self._declared}, frames carried {self._written}"
            )
        if state_crc != self._state_crc:
            raise ChecksumError("whole-state checksum mismatch")
        self._state = _S_DONE

    def _write(self, piece: memoryview) -> None:
        assert self._sink is not None
        self._sink.write(piece)
        self._written += piece.nbytes


class _Pause(Exception):  # a signal inside the decoder, never raised to its callers
    """The sink did not reserve the next frame; ``consumed``: the bytes of the fed view used so far."""

    consumed = 0


def decode_envelope(
    data: bytes | bytearray | memoryview, *, max_state_bytes: int = MAX_STATE_BYTES
) -> DecodedEnvelope:
    """Decode a whole envelope held in memory (the state is returned in a ``bytearray``)."""
    decoder = EnvelopeDecoder(max_state_bytes=max_state_bytes)
    decoder.feed(data)
    return decoder.finish()
