"""Messages carried encoded through a host: checked once where they enter, then moved as bytes.

A message reaches a paglet as the ``message`` of a ``Deliver`` frame (``paglets.wire.ipc``), one encoded
``MessageWire``. A host holds every message it routes in that form (:class:`EncodedMessage`): the
bytes plus the three fields it reads itself (kind, priority, id), so that it never builds the objects
of the arguments, which can be large, on its event loop, and never encodes them twice. Where a message
enters encoded (a paglet's ``DeliverMessage``) :func:`check_message` decodes it once against the
``MessageWire`` types, so no paglet ever gets a message it cannot decode; a message a host encoded
itself is only read for its head (:func:`message_head`). :func:`encode_deliver` writes the ``Deliver``
frame around the bytes (the same bytes ``Deliver`` would encode to).
"""

from __future__ import annotations

from typing import Final

import msgspec

from paglets._errors import FrameError, SerializationError
from paglets.wire._paths import describe_array_error
from paglets.wire.ipc import NIL, MessageWire, decode_message, encode_message
from paglets.wire.values import ext_hook

__all__ = ["EncodedMessage", "check_message", "encode_deliver", "message_head"]

_encoder: Final = msgspec.msgpack.Encoder()
_message_decoder: Final = msgspec.msgpack.Decoder(MessageWire, ext_hook=ext_hook)


class EncodedMessage(msgspec.Struct, frozen=True, gc=False):
    """A message on its way through a host: checked where it entered, encoded once, carried as bytes.

    ``body`` is the MessagePack of one :class:`MessageWire` (what a ``Deliver`` frame or its handoff
    segment carries); ``kind``, ``priority`` and ``message_id`` are copies of its fields for the host's
    mailbox and events, so the host never decodes the arguments (they can be large) on its way.
    """

    kind: str
    priority: int
    message_id: str
    body: msgspec.Raw

    @classmethod
    def of(cls, message: MessageWire) -> EncodedMessage:
        """Encode ``message`` (``SerializationError`` for a value MessagePack cannot hold)."""
        return cls(message.kind, message.priority, message.message_id, msgspec.Raw(encode_message(message)))

    def decode(self) -> MessageWire:
        return decode_message(self.body)


def check_message(data: bytes | bytearray | memoryview | msgspec.Raw) -> MessageWire:
    """A message that entered a host encoded (a paglet's ``DeliverMessage``) checked against the
    ``MessageWire`` schema, so that no paglet gets a message it cannot decode: ``SerializationError``
    names the field (``invalid message: field 'args': expected object, got array``)."""
    try:
        message: MessageWire = _message_decoder.decode(data)
    except msgspec.ValidationError as exc:
        raise SerializationError(f"invalid message: {describe_array_error(str(exc), MessageWire)}") from None
    except (msgspec.DecodeError, ValueError, RecursionError, FrameError, SerializationError) as exc:
        raise SerializationError(f"invalid message: {exc}") from None
    return message


class _MessageHead(msgspec.Struct, frozen=True, array_like=True):
    """The fields of a ``MessageWire`` a host reads; the arguments stay encoded (``Raw``: no copy)."""

    kind: str
    args: msgspec.Raw = NIL
    arg: msgspec.Raw = NIL
    sender: msgspec.Raw = NIL
    reply_to: msgspec.Raw = NIL
    priority: int = 5
    message_type: msgspec.Raw = NIL
    timestamp: msgspec.Raw = NIL
    message_id: str = ""


_head_message_decoder: Final = msgspec.msgpack.Decoder(_MessageHead)


def message_head(data: msgspec.Raw) -> EncodedMessage:
    """An encoded message that was checked already (by the host that encoded it), as an
    :class:`EncodedMessage`: only its kind, priority and id are decoded. ``FrameError`` if even those
    do not decode."""
    try:
        head = _head_message_decoder.decode(data)
    except (msgspec.DecodeError, ValueError, RecursionError) as exc:
        raise FrameError(f"invalid message: {exc}") from None
    return EncodedMessage(head.kind, head.priority, head.message_id, data)


class _DeliverEncoded(msgspec.Struct, frozen=True, array_like=True, tag=2):
    """A ``Deliver`` whose message is already encoded (same bytes as ``Deliver``; never decoded)."""

    call_id: int
    message: msgspec.Raw
    oneway: bool = False
    message_segment: None = None


def encode_deliver(call_id: int, message: EncodedMessage, oneway: bool) -> bytes:
    """The body of ``Deliver(call_id, <message>, oneway)`` from an encoded message (no re-encoding)."""
    return _encoder.encode(_DeliverEncoded(call_id, message.body, oneway))
