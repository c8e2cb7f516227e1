"""Host <-> child IPC messages and their frame layout (``proto/PROTOCOL.md`` §1).

Frame layout (all integers little-endian)::

    +----------------+------------------------------------------------------------+
    | length: u32    | body: MessagePack array [tag, field1, field2, ...]          |
    +----------------+------------------------------------------------------------+

``length`` counts the body only; it is at least 1 and at most ``MAX_IPC_FRAME``. The body is one
msgspec ``array_like`` Struct: its first element is the integer type tag, the other elements are the
fields in declaration order. Payloads that would not fit (a large state, a big reply) are written to a
handoff segment and referenced by a :class:`HandoffRef`; the driver owns the segments.

Message types (the tag numbers are fixed forever; see the schema rules in PROTOCOL.md §5):

========  =================  ====================================================================
tag       type               direction and meaning
========  =================  ====================================================================
1         ``Lifecycle``      host -> child: run a lifecycle hook with an encoded event
2         ``Deliver``        host -> child: deliver a message to the paglet's handler
3         ``GetState``       host -> child: snapshot the state
4         ``ResourceCall``   host -> child: resource registry status / cleanup / remove
5         ``Shutdown``       host -> child: stop now (no reply)
6         ``HostReply``      host -> child: answer to a ``HostCall``
7         ``Start``          host -> child: start ``run()`` (the paglet is committed on this host)
32        ``Hello``          child -> host: first frame of a child, carries its pid
33        ``Reply``          child -> host: answer to a host request with the same ``call_id``
34        (retired)          child -> host: the untyped host call (``UntypedHostCall``; refused)
35        ``RunFinished``    child -> host: ``run()`` returned (``error`` set if it raised)
36        ``HostCall``       child -> host: a typed control request (``paglets.wire.control``)
========  =================  ====================================================================

Tags 1-31 are host -> child, 32-63 child -> host, 64-127 are free for either direction. Adding a message:
define a frozen ``array_like`` Struct with a new tag, add it to :data:`IpcMessage` and to
``proto/vectors/generate.py``; the tests check tags are unique and that every type has a golden vector.

Payload fields typed ``msgspec.Raw`` hold already-encoded MessagePack (events, results, host-call
requests) so routing code can pass them on without decoding them; ``NIL`` (MessagePack ``nil``) is the
empty payload. Messages stay encoded on their way through a host (``paglets.wire.encoded``).

Free-form values (``MessageWire.args``/``arg``) keep their Python types as far as MessagePack can: binary
stays ``bytes``; a ``bytearray`` travels as extension type ``BYTEARRAY_EXT`` (encode it as
``msgspec.msgpack.Ext(BYTEARRAY_EXT, data)``) and is decoded back to a ``bytearray``; the standard
timestamp extension gives a ``datetime``; any other extension type is refused (``FrameError``).

Decoding (:class:`FrameDecoder`) is incremental and never performs I/O: feed it bytes as they arrive and
iterate the complete messages. Two kinds of errors, with different consequences:

- a bad *length* (zero, or above ``MAX_IPC_FRAME``, raised as soon as the four length bytes are read):
  nothing after it can be framed, so the decoder stays failed and the stream must be closed;
- a bad *body* (unknown tag, a field of the wrong type, trailing bytes) raises :class:`FrameBodyError`
  carrying the frame's tag and ``call_id`` when they can still be read; its length was valid, so the
  decoder has already stepped past it and the next frame decodes normally. A receiver answers the request
  with an error instead of giving up (a paglet process answers an undecodable ``Deliver`` with a failed
  ``Reply`` and keeps running).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Annotated, Any, Final, Literal

import msgspec

from paglets._errors import FrameError, LimitExceededError, ProtocolError, SerializationError
from paglets.wire.limits import MAX_HANDOFF_BYTES, MAX_IPC_FRAME
from paglets.wire.messages import ErrorInfo

__all__ = [
    "BYTEARRAY_EXT",
    "EMPTY_MESSAGE",
    "FRAME_HEADER_SIZE",
    "NIL",
    "ChildToHost",
    "Deliver",
    "FrameBodyError",
    "FrameDecoder",
    "FrameDecoderStatistics",
    "GetState",
    "HandoffRef",
    "Hello",
    "HostCall",
    "HostReply",
    "HostToChild",
    "IpcMessage",
    "Lifecycle",
    "LifecycleHook",
    "MessageWire",
    "Reply",
    "ResourceCall",
    "ResourceOp",
    "RunFinished",
    "Shutdown",
    "Start",
    "UntypedHostCall",
    "decode_body",
    "decode_message",
    "encode_body",
    "encode_frame",
    "encode_frame_into",
    "encode_message",
    "message_tag",
]

#: MessagePack extension type that carries a ``bytearray`` (never reused for anything else).
BYTEARRAY_EXT: Final = 1

#: The empty payload: MessagePack ``nil``. (An empty ``Raw`` would encode to nothing and corrupt a frame.)
NIL: Final = msgspec.Raw(b"\xc0")

_HEADER: Final = struct.Struct("<I")
#: Bytes before each frame body (the u32 body length).
FRAME_HEADER_SIZE: Final = _HEADER.size

CallId = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
"""Correlates a request with its reply; unique among the requests in flight in one direction."""
#: The range of a signed 64-bit integer, what a MessagePack int field of an IPC frame holds.
INT64_MIN: Final = -(2**63)
INT64_MAX: Final = 2**63 - 1
#: A signed 64-bit integer (message priorities and types).
Int64 = Annotated[int, msgspec.Meta(ge=INT64_MIN, le=INT64_MAX)]

LifecycleHook = Literal[
    "creation",
    "arrival",
    "clone",
    "activation",
    "dispatching",
    "reverting",
    "cloning",
    "cloned",
    "deactivating",
    "disposing",
]

# --- shared pieces ---------------------------------------------------------------------------------------


class HandoffRef(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """A payload stored out of band: ``length`` bytes in handoff segment ``segment``, CRC-32 ``checksum``."""

    segment: Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
    length: Annotated[int, msgspec.Meta(ge=0, le=MAX_HANDOFF_BYTES)]
    checksum: Annotated[int, msgspec.Meta(ge=0, le=0xFFFFFFFF)]


class MessageWire(msgspec.Struct, frozen=True, array_like=True):
    """The nine fields of the contract's ``Message`` (``paglets.core.messages``), as carried over IPC.

    ``args`` and ``arg`` hold MessagePack values: ``bytes`` stay ``bytes``, tuples arrive as lists, a
    ``bytearray`` must be sent as ``Ext(BYTEARRAY_EXT, ...)`` and arrives as a ``bytearray``.
    """

    kind: str
    args: dict[str, Any] = {}
    arg: Any = None
    sender: str | None = None
    reply_to: str | None = None
    priority: Int64 = 5
    message_type: Int64 = 0
    timestamp: float = 0.0
    message_id: str = ""


# --- host -> child (tags 1..31) --------------------------------------------------------------------------


class Lifecycle(msgspec.Struct, frozen=True, array_like=True, tag=1):
    """Run the lifecycle hook ``hook`` with the encoded event dataclass ``event``; answered by a Reply."""

    call_id: CallId
    hook: LifecycleHook
    event: msgspec.Raw = NIL


class Deliver(msgspec.Struct, frozen=True, array_like=True, tag=2):
    """Deliver ``message``; a oneway delivery is still answered (with an empty result) to free the slot.

    A message too large for a frame travels in a handoff segment instead: ``message_segment`` names it
    (it holds the message encoded by :func:`encode_message`) and ``message`` is :data:`EMPTY_MESSAGE`.
    """

    call_id: CallId
    message: MessageWire
    oneway: bool = False
    message_segment: HandoffRef | None = None


class GetState(msgspec.Struct, frozen=True, array_like=True, tag=3):
    """Snapshot the state; the Reply carries it inline or through a handoff segment."""

    call_id: CallId


#: The operations of a paglet's resource registry the host can ask for.
ResourceOp = Literal["status", "cleanup", "remove"]


class ResourceCall(msgspec.Struct, frozen=True, array_like=True, tag=4):
    """Resource registry operation: ``status``, ``cleanup`` (with ``reason``) or ``remove`` (``name``)."""

    call_id: CallId
    op: ResourceOp
    name: str = ""
    reason: str = ""


class Shutdown(msgspec.Struct, frozen=True, array_like=True, tag=5):
    """Stop the child now; it is not answered."""

    reason: str = ""


class HostReply(msgspec.Struct, frozen=True, array_like=True, tag=6):
    """The host's answer to the child's ``HostCall`` with the same ``call_id``."""

    call_id: CallId
    ok: bool
    result: msgspec.Raw = NIL
    error: ErrorInfo | None = None
    handoff: HandoffRef | None = None


class Start(msgspec.Struct, frozen=True, array_like=True, tag=7):
    """Start the paglet's ``run()`` thread; answered by a Reply once ``run()`` is entered and reached its
    first pause (see PROTOCOL.md §1.2).

    The host sends it when the paglet is committed here: right after a creation, activation or clone,
    and, for a move, only once the source has dropped its copy, so two copies never run at once.
    """

    call_id: CallId


# --- child -> host (tags 32..63) -------------------------------------------------------------------------


class Hello(msgspec.Struct, frozen=True, array_like=True, tag=32):
    """First frame a child sends once it is ready."""

    pid: Annotated[int, msgspec.Meta(ge=1)]


class Reply(msgspec.Struct, frozen=True, array_like=True, tag=33):
    """Answer to the host request with the same ``call_id``.

    ``ok`` false means ``error`` is set. A large ``result`` is sent as ``handoff`` instead (then
    ``result`` is ``NIL``).
    """

    call_id: CallId
    ok: bool
    result: msgspec.Raw = NIL
    error: ErrorInfo | None = None
    handoff: HandoffRef | None = None


class UntypedHostCall(msgspec.Struct, frozen=True, array_like=True, tag=34):
    """Retired: the untyped host call of the first releases (an operation name and a map of arguments).

    Kept so that its golden vectors still decode (PROTOCOL.md §5); tag 34 is never reused. A host answers
    it with a ``HostError``; paglet processes send :class:`HostCall`.
    """

    call_id: CallId
    op: str
    args: msgspec.Raw = NIL
    args_segment: HandoffRef | None = None


class RunFinished(msgspec.Struct, frozen=True, array_like=True, tag=35):
    """The paglet's ``run()`` returned; ``error`` is set when it raised."""

    error: ErrorInfo | None = None


class HostCall(msgspec.Struct, frozen=True, array_like=True, tag=36):
    """Ask the host to run ``request``, one encoded ``paglets.wire.control`` request (its own tag says
    which); answered by a ``HostReply`` whose ``result`` is the request's reply type.

    A request too large for a frame travels in a handoff segment: ``request_segment`` names it (it holds
    the encoded request alone) and ``request`` is ``NIL``. The request is kept encoded here and decoded
    by ``paglets.wire.control.decode_control``, so one that does not decode fails that call only.
    """

    call_id: CallId
    request: msgspec.Raw = NIL
    request_segment: HandoffRef | None = None


HostToChild = Lifecycle | Deliver | GetState | ResourceCall | Shutdown | HostReply | Start
ChildToHost = Hello | Reply | UntypedHostCall | RunFinished | HostCall
IpcMessage = HostToChild | ChildToHost

#: Every IPC message type, in tag order.
IPC_MESSAGE_TYPES: Final[tuple[type[IpcMessage], ...]] = (
    Lifecycle,
    Deliver,
    GetState,
    ResourceCall,
    Shutdown,
    HostReply,
    Start,
    Hello,
    Reply,
    UntypedHostCall,
    RunFinished,
    HostCall,
)


def _ext_hook(code: int, data: memoryview) -> object:
    if code == BYTEARRAY_EXT:
        return bytearray(data)
    raise FrameError(f"unknown MessagePack extension type {code} in an IPC frame")


_encoder: Final = msgspec.msgpack.Encoder()
_decoder: Final = msgspec.msgpack.Decoder(IpcMessage, ext_hook=_ext_hook)  # bytearray values stay bytearray
_message_decoder: Final = msgspec.msgpack.Decoder(MessageWire, ext_hook=_ext_hook)

#: The ``message`` of a ``Deliver`` whose message travels in a handoff segment.
EMPTY_MESSAGE: Final = MessageWire(kind="")


# --- encoding --------------------------------------------------------------------------------------------


def encode_body(msg: IpcMessage) -> bytes:
    """The MessagePack body of ``msg`` (no length prefix).

    A value MessagePack cannot hold (an integer beyond -2**63..2**64-1, an object of an unknown type in
    message arguments) is a ``SerializationError`` naming the message type: the sender's values are at
    fault, not the stream.
    """
    try:
        return _encoder.encode(msg)
    except (TypeError, ValueError, OverflowError) as exc:
        raise SerializationError(f"cannot encode {type(msg).__name__}: {exc}") from exc


def encode_message(message: MessageWire) -> bytes:
    """A message alone, for a ``Deliver.message_segment`` (the same MessagePack as inside a frame)."""
    try:
        return _encoder.encode(message)
    except (TypeError, ValueError, OverflowError) as exc:
        raise SerializationError(f"cannot encode message {message.kind!r}: {exc}") from exc


def decode_message(data: bytes | bytearray | memoryview | msgspec.Raw) -> MessageWire:
    """The message a ``Deliver.message_segment`` holds; ``FrameError`` if it is not exactly one."""
    try:
        message: MessageWire = _message_decoder.decode(data)
    except (msgspec.DecodeError, ValueError, RecursionError) as exc:
        raise FrameError(f"invalid message in a handoff segment: {exc}") from exc
    return message


def encode_frame(msg: IpcMessage) -> bytes:
    """One complete frame: length prefix and body. Raises ``LimitExceededError`` past ``MAX_IPC_FRAME``."""
    buf = bytearray()
    encode_frame_into(msg, buf, 0)
    return bytes(buf)


def encode_frame_into(msg: IpcMessage, buf: bytearray, offset: int = 0) -> int:
    """Write one frame into ``buf`` at ``offset`` and return the offset just past it.

    ``buf`` is resized to end exactly after the frame (bytes after ``offset`` are replaced), so frames can
    be appended one after another into a reused buffer. On error ``buf`` is restored to ``offset`` bytes.
    """
    if offset < 0 or offset > len(buf):
        raise ValueError(f"offset {offset} outside the buffer (length {len(buf)})")
    start = offset + FRAME_HEADER_SIZE
    try:
        _encoder.encode_into(msg, buf, start)  # grows buf; the header gap is filled below
    except (TypeError, ValueError, OverflowError) as exc:
        del buf[offset:]
        raise ProtocolError(f"cannot encode {type(msg).__name__}: {exc}", fault="local") from exc
    length = len(buf) - start
    if length > MAX_IPC_FRAME:
        del buf[offset:]
        raise LimitExceededError(
            f"{type(msg).__name__} frame body is {length} bytes, above MAX_IPC_FRAME ({MAX_IPC_FRAME}); "
            "send large payloads through a handoff segment",
            fault="local",
        )
    _HEADER.pack_into(buf, offset, length)
    return len(buf)


# --- decoding --------------------------------------------------------------------------------------------


class FrameBodyError(FrameError):
    """A frame body that is not a valid message (its length was valid: the stream stays in step).

    ``tag`` and ``call_id`` are the frame's first two elements when they could still be read (``None``
    otherwise), so a receiver can answer the request that failed to decode.
    """

    def __init__(self, *args: object, tag: int | None = None, call_id: int | None = None) -> None:
        super().__init__(*args)
        self.tag = tag
        self.call_id = call_id


class _Head(msgspec.Struct, array_like=True):
    """The first two elements of any frame body; the rest is skipped unchecked."""

    tag: Any = None
    call_id: Any = None


_head_decoder: Final = msgspec.msgpack.Decoder(_Head)


def message_tag(cls: type[IpcMessage]) -> int:
    """The type tag of an IPC message class."""
    tag = cls.__struct_config__.tag
    assert isinstance(tag, int)
    return tag


def _frame_head(body: bytes | bytearray | memoryview) -> tuple[int | None, int | None]:
    """``(tag, call_id)`` of a body that failed to decode, each ``None`` when unreadable."""
    try:
        head = _head_decoder.decode(body)
    except (msgspec.DecodeError, ValueError, RecursionError):
        return None, None
    tag = head.tag if type(head.tag) is int else None
    call_id = head.call_id if type(head.call_id) is int and 0 <= head.call_id < 2**63 else None
    return tag, call_id


def decode_body(body: bytes | bytearray | memoryview) -> IpcMessage:
    """Decode one frame body. ``Raw`` fields of the result keep a reference to ``body``.

    Raises :class:`FrameBodyError` for anything that is not exactly one valid message.
    """
    try:
        msg: IpcMessage = _decoder.decode(body)
    except (msgspec.DecodeError, ValueError, RecursionError, FrameError) as exc:  # ValueError: bad UTF-8
        tag, call_id = _frame_head(body)
        raise FrameBodyError(f"invalid IPC frame body: {exc}", tag=tag, call_id=call_id) from exc
    return msg


class FrameDecoderStatistics(msgspec.Struct, frozen=True):
    """Counters of a :class:`FrameDecoder`."""

    frames: int
    bytes_received: int
    bytes_buffered: int


class FrameDecoder:
    """Incremental IPC frame decoder.

    ``feed(data)`` appends bytes; iterating (or :meth:`next_message`) yields each complete message in order
    and stops when the next frame is incomplete. ``feed`` never keeps a reference to ``data`` unless it is
    an immutable ``bytes`` object, so the caller may reuse a ring or socket buffer right away.

    Buffer rule: a caller that iterates after each ``feed`` makes the decoder hold at most one incomplete
    frame (``FRAME_HEADER_SIZE + MAX_IPC_FRAME`` bytes) plus the bytes of that one call. Cost: one copy of
    each frame body when bytes arrive split or in a mutable buffer; none when a ``bytes`` object holding
    whole frames is fed to an empty decoder (then ``Raw`` fields are views of it and keep it alive).
    """

    __slots__ = ("_buf", "_error", "_frames", "_owned", "_pos", "_received")

    def __init__(self) -> None:
        self._buf: bytes | bytearray = b""
        self._pos = 0
        self._owned = False  # True when _buf is our private bytearray
        self._frames = 0
        self._received = 0
        self._error: ProtocolError | None = None

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Append received bytes (any split of the stream is fine)."""
        if self._error is not None:
            raise FrameError("IPC frame decoder already failed") from self._error
        size = data.nbytes if isinstance(data, memoryview) else len(data)
        if not size:
            return
        self._received += size
        if self._pos >= len(self._buf):
            # nothing pending: keep an immutable bytes object as is (zero copy), copy anything else
            self._buf = data if type(data) is bytes else bytearray(data)
            self._owned = type(data) is not bytes
            self._pos = 0
            return
        if not self._owned:
            self._buf = bytearray(memoryview(self._buf)[self._pos :])
            self._owned = True
            self._pos = 0
        elif self._pos:
            del self._buf[: self._pos]  # type: ignore[union-attr]  # _owned means bytearray
            self._pos = 0
        self._buf += data

    def next_message(self) -> IpcMessage | None:
        """The next complete message, or ``None`` when more bytes are needed."""
        if self._error is not None:
            raise FrameError("IPC frame decoder already failed") from self._error
        buf, pos = self._buf, self._pos
        available = len(buf) - pos
        if available < FRAME_HEADER_SIZE:
            return None
        (length,) = _HEADER.unpack_from(buf, pos)
        try:
            if length > MAX_IPC_FRAME:
                raise LimitExceededError(
                    f"IPC frame of {length} bytes is above MAX_IPC_FRAME ({MAX_IPC_FRAME})"
                )
            if length == 0:
                raise FrameError("empty IPC frame")
        except ProtocolError as exc:
            self._error = exc
            raise
        end = pos + FRAME_HEADER_SIZE + length
        if len(buf) < end:
            return None
        if self._owned:
            body: bytes | memoryview = bytes(memoryview(buf)[pos + FRAME_HEADER_SIZE : end])
        else:
            body = memoryview(buf)[pos + FRAME_HEADER_SIZE : end]  # immutable bytes: Raw may keep a view
        self._pos = end
        if self._pos == len(buf):
            self._buf, self._pos, self._owned = b"", 0, False
        self._frames += 1
        return decode_body(body)  # a bad body raises FrameBodyError; the next frame still decodes

    def __iter__(self) -> Iterator[IpcMessage]:
        while (msg := self.next_message()) is not None:
            yield msg

    def finish(self) -> None:
        """Declare the end of the stream (EOF); ``FrameError`` if it stopped inside a frame.

        Call it after the last complete message has been taken; pending whole frames count as unread.
        """
        if self._error is not None:
            raise FrameError("IPC frame decoder already failed") from self._error
        if self.buffered:
            self._error = FrameError(f"IPC stream ended with {self.buffered} bytes of an incomplete frame")
            raise self._error

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as messages."""
        return len(self._buf) - self._pos

    def statistics(self) -> FrameDecoderStatistics:
        return FrameDecoderStatistics(
            frames=self._frames, bytes_received=self._received, bytes_buffered=self.buffered
        )
