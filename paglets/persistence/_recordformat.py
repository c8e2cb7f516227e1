"""The bytes of inactive records on disk: record files and queue logs (no I/O here).

A deactivated paglet is stored as one **record file** ``<stem>.rec``, plus, once messages are queued for it,
one append-only **queue log** ``<stem>.q`` (``proto/PROTOCOL.md`` §7 has the same rules). All integers
are little-endian; CRC is ``zlib.crc32``.

Record file (written once, atomically; never modified in place)::

    head      magic "PGLR" | version u16 = 1 | flags u16 = 0 | summary_length u32 | details_length u32
              | messages_length u32 | message_count u32 | generation 16 bytes | details_crc u32
              | head_crc u32                                                         (48 bytes)
    summary   MessagePack map: RecordSummary                            (summary_length bytes)
    details   MessagePack map: RecordDetails                            (details_length bytes)
    messages  message_count queue entries (same framing as the log)     (messages_length bytes)
    envelope  a movement envelope (PROTOCOL.md §2), kind "activation", whose transfer_id is the
              generation in hex; it holds the state in raw or zstd frames and runs to the end of file

- ``head_crc`` covers the first 44 head bytes and the summary, so the head and the summary — everything
  a host needs at start to decide activations — are checked by reading the first few hundred bytes of
  the file. ``details_crc`` covers the details; every queue entry and every state frame carries its own
  CRC, and the envelope trailer the CRC of the whole state.
- ``generation`` is 16 random bytes chosen at each write. It binds the queue log to the record: a log
  whose header names another generation is stale (left over from an older record) and is ignored.
- The summary's ``queued_count`` counts the messages in the record file itself (``message_count``).

Queue log (appended to, one fsync'd entry at a time)::

    header    magic "PGLQ" | version u16 = 1 | flags u16 = 0 | generation 16 bytes | header_crc u32
                                                                                      (28 bytes)
    entry*    length u32 | crc u32 | payload (length bytes)

- An entry's ``crc`` is the CRC of its four length bytes followed by its payload; ``length`` is
  1 .. ``MAX_QUEUED_ENTRY``. The payload is a MessagePack map: StoredMessage (``bytearray`` values are
  MessagePack extension 1, as in ``paglets.wire.values``).
- The log is created atomically with its header and first entry, so a log with a bad header is corrupt.
- **Torn tail.** A crash during an append can leave the last entry incomplete or garbled. Scanning stops
  at the first entry that is invalid; when that entry reaches the end of the file (or its length field is
  out of range or runs past the end), it is a torn tail: it is ignored, and the next append truncates
  the file at the end of the last valid entry before writing. An invalid entry followed by more bytes is
  corruption (reported); the entries before it are kept.

Reading rules: a reader refuses an unknown magic, version or flag bit, lengths out of their limits, and
CRC mismatches (``FrameError``, ``ChecksumError``, ``LimitExceededError``); it checks that the summary,
the details and the envelope agree (agent id, class names, state length, generation). Schema evolution
follows PROTOCOL.md §5: new summary/details keys get defaults, unknown keys are ignored.
"""

from __future__ import annotations

import struct
import time
from typing import Any, Final, NamedTuple

import msgspec

from paglets.core.errors import ChecksumError, FrameError, LimitExceededError, SerializationError
from paglets.persistence.persistency import (
    INACTIVE_RECORD_SCHEMA_VERSION,
    DeactivationPolicy,
    DeactivationRequest,
)
from paglets.persistence.storage import path_component
from paglets.wire.checksum import crc32
from paglets.wire.envelope import EnvelopeMetadata
from paglets.wire.limits import MAILBOX_DEPTH, MAX_ENVELOPE_METADATA, KiB, MiB
from paglets.wire.values import encode_value, ext_hook

__all__ = [
    "ENTRY_HEADER_SIZE",
    "GENERATION_SIZE",
    "LOG_HEADER_SIZE",
    "LOG_MAGIC",
    "MAX_AGENT_ID_BYTES",
    "MAX_QUEUED_ENTRY",
    "MAX_QUEUED_MESSAGES",
    "MAX_QUEUE_BYTES",
    "MAX_RECORD_DETAILS",
    "MAX_SUMMARY_BYTES",
    "RECORD_HEAD_SIZE",
    "RECORD_MAGIC",
    "RECORD_SCHEMA_VERSION",
    "RECORD_VERSION",
    "EntryScan",
    "RecordDetails",
    "RecordHead",
    "RecordSummary",
    "StoredMessage",
    "StoredRecord",
    "decode_details",
    "decode_message",
    "decode_summary",
    "encode_entry",
    "encode_log_header",
    "encode_message",
    "encode_record_prefix",
    "envelope_metadata",
    "file_stem",
    "parse_head",
    "parse_log_header",
    "scan_entries",
    "summary_for",
]

RECORD_MAGIC: Final = b"PGLR"
RECORD_VERSION: Final = 1
LOG_MAGIC: Final = b"PGLQ"
LOG_VERSION: Final = 1
#: Meaning of the record fields; the same version as the contract's ``InactiveRecord`` wire form.
RECORD_SCHEMA_VERSION: Final = INACTIVE_RECORD_SCHEMA_VERSION

# --- limits (defined here: this brief does not own paglets/wire/limits.py) ----------------------------

#: Largest encoded summary. It is read for every record at start, so it must stay small; ids and class
#: names are a few hundred bytes.
MAX_SUMMARY_BYTES: Final = 16 * KiB

#: Largest encoded details (policy, request, registered files, runtime metadata). Decoded whole, like the
#: envelope metadata, and bounded the same way.
MAX_RECORD_DETAILS: Final = MAX_ENVELOPE_METADATA

#: Messages queued for one inactive paglet. Equal to the mailbox depth: activation delivers the whole
#: queue into the mailbox, which must be able to hold it.
MAX_QUEUED_MESSAGES: Final = MAILBOX_DEPTH

#: Largest encoded queued message. Queued messages are read whole when the paglet activates.
MAX_QUEUED_ENTRY: Final = 16 * MiB

#: Largest total of queued message payloads for one paglet (what an activation loads at once).
MAX_QUEUE_BYTES: Final = 256 * MiB

#: Longest agent id (UTF-8 bytes) the store accepts; longer ids would not make bounded file names.
MAX_AGENT_ID_BYTES: Final = 1 * KiB

_HEAD: Final = struct.Struct("<4sHHIIII16sII")
_LOG_HEAD: Final = struct.Struct("<4sHH16sI")
_ENTRY: Final = struct.Struct("<II")
RECORD_HEAD_SIZE: Final = _HEAD.size  # 48
LOG_HEADER_SIZE: Final = _LOG_HEAD.size  # 28
ENTRY_HEADER_SIZE: Final = _ENTRY.size  # 8
_HEAD_CRC_SPAN: Final = RECORD_HEAD_SIZE - 4
GENERATION_SIZE: Final = 16

# --- value types ---------------------------------------------------------------------------------------


class RecordSummary(msgspec.Struct, frozen=True, kw_only=True):
    """Everything needed to decide about an inactive paglet without reading its state.

    Stored at the head of the record file. ``queued_count`` is, on disk, the number of messages inside the
    record file; summaries returned by the store count the appended queue-log messages too.
    """

    schema_version: int = RECORD_SCHEMA_VERSION
    agent_id: str
    agent_class: str
    state_class: str
    deactivated_at: float
    activate_on_message: bool = True
    queue_messages_when_inactive: bool = True
    activate_on_startup: bool = False
    activate_at: float | None = None
    reason: str = "deactivate"
    source: str = "external"
    state_length: int = 0
    queued_count: int = 0


class RecordDetails(msgspec.Struct, frozen=True, kw_only=True):
    """The small rest of a record: wire dicts the runtime reads back on activation."""

    policy: dict[str, Any]
    request: dict[str, Any]
    registered_files: list[dict[str, Any]] = []
    metadata: dict[str, Any] = {}


class StoredMessage(msgspec.Struct, frozen=True, kw_only=True):
    """One queued message: the ``Message`` wire dict, how it was sent, when it was queued."""

    message: dict[str, Any]
    oneway: bool = False
    queued_at: float = 0.0

    def to_wire(self) -> dict[str, Any]:
        """The ``QueuedMessage`` wire dict (``QueuedMessage.from_wire`` reads it)."""
        return {"message": dict(self.message), "oneway": self.oneway, "queued_at": self.queued_at}

    @classmethod
    def from_wire(cls, data: Any) -> StoredMessage:
        """From a ``QueuedMessage`` wire dict (``queued_at`` defaults to now)."""
        if not isinstance(data, dict) or not isinstance(data.get("message"), dict):
            raise SerializationError("a queued message must be a dict with a 'message' dict")
        oneway = data.get("oneway", False)
        queued_at = data.get("queued_at")
        if not isinstance(oneway, bool):
            raise SerializationError("queued message 'oneway' must be a boolean")
        if queued_at is None:
            queued_at = time.time()
        elif isinstance(queued_at, bool) or not isinstance(queued_at, int | float):
            raise SerializationError("queued message 'queued_at' must be a number")
        return cls(message=data["message"], oneway=oneway, queued_at=float(queued_at))


class StoredRecord(msgspec.Struct, frozen=True, kw_only=True):
    """A whole inactive record: what ``RecordStore.write`` takes and ``RecordStore.read`` returns.

    ``state`` is the already-encoded state (opaque here). ``read`` returns it as a ``bytearray``; ``write``
    takes any buffer and does not copy it whole, so it must not change while ``write`` runs. ``policy`` and
    ``request`` are the ``DeactivationPolicy``/``DeactivationRequest`` wire dicts; ``registered_files``
    and ``metadata`` are opaque wire values for the runtime.
    """

    agent_id: str
    agent_class: str
    state_class: str
    state: bytes | bytearray | memoryview
    policy: dict[str, Any] = {}
    request: dict[str, Any] = {}
    deactivated_at: float = msgspec.field(default_factory=time.time)
    registered_files: list[dict[str, Any]] = []
    metadata: dict[str, Any] = {}
    queued_messages: list[StoredMessage] = []
    schema_version: int = RECORD_SCHEMA_VERSION


class RecordHead(NamedTuple):
    """The parsed fixed head of a record file."""

    summary_length: int
    details_length: int
    messages_length: int
    message_count: int
    generation: bytes
    details_crc: int
    head_crc: int

    @property
    def summary_end(self) -> int:
        return RECORD_HEAD_SIZE + self.summary_length

    @property
    def details_end(self) -> int:
        return self.summary_end + self.details_length

    @property
    def messages_end(self) -> int:
        """Where the envelope starts."""
        return self.details_end + self.messages_length


class EntryScan(NamedTuple):
    """Valid entries found in a run of queue entries, and how the run ended."""

    spans: list[tuple[int, int]]  # (start, end) of each valid payload
    end: int  # offset just past the last valid entry
    payload_bytes: int
    problem: str | None  # why scanning stopped before the end of the data (None: it did not)
    torn: bool  # the problem is a torn tail (crash mid-append), not corruption


# --- file names ------------------------------------------------------------------------------------------


def file_stem(agent_id: str) -> str:
    """The file name stem for ``agent_id``: injective, safe, bounded, never starting with ``.``.

    ``path_component`` of the id (``paglets.persistence.storage``): bytes outside ``[A-Za-z0-9._-]`` of
    the UTF-8 id are written ``%XX`` (so the usual uuid-hex ids are their own stem), a leading ``.`` too;
    a stem that would pass 200 characters becomes ``%%`` and the SHA-256 of the id (escaping never
    produces ``%%``). The id itself is stored in the record.
    """
    raw = agent_id.encode("utf-8", "surrogatepass")
    if not raw or len(raw) > MAX_AGENT_ID_BYTES:
        raise SerializationError(f"agent id must be 1..{MAX_AGENT_ID_BYTES} UTF-8 bytes")
    return path_component(agent_id)


# --- encoding --------------------------------------------------------------------------------------------

_summary_encoder: Final = msgspec.msgpack.Encoder()
_summary_decoder: Final = msgspec.msgpack.Decoder(RecordSummary)
_details_decoder: Final = msgspec.msgpack.Decoder(RecordDetails, ext_hook=ext_hook)
_message_decoder: Final = msgspec.msgpack.Decoder(StoredMessage, ext_hook=ext_hook)


def summary_for(record: StoredRecord, state_length: int, queued_count: int) -> RecordSummary:
    """The summary of ``record`` (validates the policy and request wire dicts)."""
    policy = DeactivationPolicy.from_wire(record.policy)
    request = DeactivationRequest.from_wire(record.request)
    for name in ("agent_class", "state_class"):
        if not isinstance(getattr(record, name), str):
            raise SerializationError(f"record {name} must be a string")
    if isinstance(record.deactivated_at, bool) or not isinstance(record.deactivated_at, int | float):
        raise SerializationError("record deactivated_at must be a number")
    return RecordSummary(
        agent_id=record.agent_id,
        agent_class=record.agent_class,
        state_class=record.state_class,
        deactivated_at=float(record.deactivated_at),
        activate_on_message=policy.activate_on_message,
        queue_messages_when_inactive=policy.queue_messages_when_inactive,
        activate_on_startup=policy.activate_on_startup,
        activate_at=policy.activate_at,
        reason=request.reason,
        source=request.source,
        state_length=state_length,
        queued_count=queued_count,
    )


def encode_message(message: StoredMessage) -> bytes:
    """The payload of one queue entry (bounded by ``MAX_QUEUED_ENTRY``)."""
    if not isinstance(message.message, dict):
        raise SerializationError("a queued message must be a Message wire dict")
    payload = encode_value(
        {"message": message.message, "oneway": bool(message.oneway), "queued_at": float(message.queued_at)}
    )
    if len(payload) > MAX_QUEUED_ENTRY:
        raise LimitExceededError(
            f"queued message of {len(payload)} bytes is above MAX_QUEUED_ENTRY ({MAX_QUEUED_ENTRY})"
        )
    return payload


def encode_entry(payload: bytes) -> bytes:
    """One framed queue entry: length, CRC of length + payload, payload."""
    length = len(payload).to_bytes(4, "little")
    return length + crc32(payload, crc32(length)).to_bytes(4, "little") + payload


def encode_log_header(generation: bytes) -> bytes:
    fixed = _LOG_HEAD.pack(LOG_MAGIC, LOG_VERSION, 0, generation, 0)[:-4]
    return fixed + crc32(fixed).to_bytes(4, "little")


def encode_record_prefix(
    summary: RecordSummary, details: RecordDetails, entries: list[bytes], generation: bytes
) -> bytes:
    """Head, summary, details and message entries: every record byte before the envelope."""
    summary_bytes = _summary_encoder.encode(summary)
    if len(summary_bytes) > MAX_SUMMARY_BYTES:
        raise LimitExceededError(
            f"record summary of {len(summary_bytes)} bytes is above MAX_SUMMARY_BYTES ({MAX_SUMMARY_BYTES})",
            fault="local",
        )
    # a plain map (not the Struct) so that encode_value keeps bytearray values inside the wire dicts
    details_bytes = encode_value(
        {
            "policy": details.policy,
            "request": details.request,
            "registered_files": details.registered_files,
            "metadata": details.metadata,
        }
    )
    if len(details_bytes) > MAX_RECORD_DETAILS:
        raise LimitExceededError(
            f"record details of {len(details_bytes)} bytes are above MAX_RECORD_DETAILS "
            f"({MAX_RECORD_DETAILS})",
            fault="local",
        )
    messages_length = sum(map(len, entries))
    fixed = _HEAD.pack(
        RECORD_MAGIC,
        RECORD_VERSION,
        0,
        len(summary_bytes),
        len(details_bytes),
        messages_length,
        len(entries),
        generation,
        crc32(details_bytes),
        0,
    )[:_HEAD_CRC_SPAN]
    head_crc = crc32(summary_bytes, crc32(fixed))
    return b"".join((fixed, head_crc.to_bytes(4, "little"), summary_bytes, details_bytes, *entries))


def envelope_metadata(summary: RecordSummary, generation: bytes) -> EnvelopeMetadata:
    return EnvelopeMetadata(
        kind="activation",
        agent_id=summary.agent_id,
        agent_class_name=summary.agent_class,
        state_class_name=summary.state_class,
        transfer_id=generation.hex(),
    )


# --- decoding --------------------------------------------------------------------------------------------


def parse_head(data: bytes | memoryview) -> RecordHead:
    """Check the fixed head (not its CRC, which needs the summary: see :func:`decode_summary`)."""
    if len(data) < RECORD_HEAD_SIZE:
        raise FrameError(f"record file truncated in its head ({len(data)} bytes)")
    magic, version, flags, summary_len, details_len, messages_len, count, generation, details_crc, crc = (
        _HEAD.unpack_from(data)
    )
    if magic != RECORD_MAGIC:
        raise FrameError("not a paglets record (bad magic)")
    if version != RECORD_VERSION:
        raise FrameError(f"unsupported record version {version} (this host reads {RECORD_VERSION})")
    if flags:
        raise FrameError(f"unknown record flags 0x{flags:04x}")
    if not 1 <= summary_len <= MAX_SUMMARY_BYTES:
        raise LimitExceededError(f"record summary length {summary_len} out of 1..{MAX_SUMMARY_BYTES}")
    if not 1 <= details_len <= MAX_RECORD_DETAILS:
        raise LimitExceededError(f"record details length {details_len} out of 1..{MAX_RECORD_DETAILS}")
    if count > MAX_QUEUED_MESSAGES:
        raise LimitExceededError(f"record holds {count} messages, above MAX_QUEUED_MESSAGES")
    if messages_len > MAX_QUEUE_BYTES + count * ENTRY_HEADER_SIZE or (messages_len == 0) != (count == 0):
        raise FrameError(f"record messages length {messages_len} does not fit {count} messages")
    return RecordHead(summary_len, details_len, messages_len, count, generation, details_crc, crc)


def decode_summary(data: bytes | memoryview, head: RecordHead) -> RecordSummary:
    """Check the head CRC and decode the summary; ``data`` starts at the head.

    Runs once per record at every start, so it avoids any work beyond one CRC and one decode.
    """
    end = RECORD_HEAD_SIZE + head.summary_length
    if len(data) < end:
        raise FrameError("record file truncated in its summary")
    body = data[RECORD_HEAD_SIZE:end]
    if crc32(body, crc32(data[:_HEAD_CRC_SPAN])) != head.head_crc:
        raise ChecksumError("record head or summary checksum mismatch")
    try:
        summary = _summary_decoder.decode(body)
    except (msgspec.DecodeError, ValueError, RecursionError) as exc:
        raise FrameError(f"invalid record summary: {exc}") from exc
    if summary.schema_version != RECORD_SCHEMA_VERSION:
        raise FrameError(f"unsupported record schema_version {summary.schema_version}")
    if summary.queued_count != head.message_count or summary.state_length < 0:
        raise FrameError("record summary does not match its head")
    return summary


def decode_details(data: memoryview, head: RecordHead) -> RecordDetails:
    """Check and decode the details; ``data`` starts at the head."""
    if len(data) < head.details_end:
        raise FrameError("record file truncated in its details")
    piece = data[head.summary_end : head.details_end]
    if crc32(piece) != head.details_crc:
        raise ChecksumError("record details checksum mismatch")
    try:
        return _details_decoder.decode(piece)
    except (msgspec.DecodeError, ValueError, RecursionError, SerializationError) as exc:
        raise FrameError(f"invalid record details: {exc}") from exc


def decode_message(payload: memoryview) -> StoredMessage:
    try:
        return _message_decoder.decode(payload)
    except (msgspec.DecodeError, ValueError, RecursionError, SerializationError) as exc:
        raise FrameError(f"invalid queued message: {exc}") from exc


def parse_log_header(data: bytes | memoryview) -> bytes:
    """The generation named by a queue log header (``FrameError``/``ChecksumError`` when invalid)."""
    if len(data) < LOG_HEADER_SIZE:
        raise FrameError("queue log truncated in its header")
    magic, version, flags, generation, header_crc = _LOG_HEAD.unpack_from(data)
    if magic != LOG_MAGIC:
        raise FrameError("not a paglets queue log (bad magic)")
    if version != LOG_VERSION or flags:
        raise FrameError(f"unsupported queue log version {version} / flags 0x{flags:04x}")
    if crc32(memoryview(data)[: LOG_HEADER_SIZE - 4]) != header_crc:
        raise ChecksumError("queue log header checksum mismatch")
    return bytes(generation)


def scan_entries(data: memoryview, start: int, end: int, max_count: int) -> EntryScan:
    """Walk the queue entries in ``data[start:end]`` (rules in the module docstring).

    At most ``max_count`` entries and ``MAX_QUEUE_BYTES`` payload bytes are accepted; more is corruption.
    """
    spans: list[tuple[int, int]] = []
    pos = start
    total = 0
    while pos < end:
        if end - pos < ENTRY_HEADER_SIZE:
            return EntryScan(spans, pos, total, "entry header cut short", True)
        length, crc = _ENTRY.unpack_from(data, pos)
        payload_end = pos + ENTRY_HEADER_SIZE + length
        if length == 0 or length > MAX_QUEUED_ENTRY or payload_end > end:
            return EntryScan(spans, pos, total, f"entry length {length} out of range or cut short", True)
        payload = data[pos + ENTRY_HEADER_SIZE : payload_end]
        if crc32(payload, crc32(data[pos : pos + 4])) != crc:
            return EntryScan(spans, pos, total, "entry checksum mismatch", payload_end == end)
        if len(spans) >= max_count or total + length > MAX_QUEUE_BYTES:
            return EntryScan(spans, pos, total, "more queued messages than the limits allow", False)
        spans.append((pos + ENTRY_HEADER_SIZE, payload_end))
        total += length
        pos = payload_end
    return EntryScan(spans, pos, total, None, False)
