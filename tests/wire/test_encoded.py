"""``paglets.wire.encoded``: messages a host carries encoded, their check, their head, their frame."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from paglets.core.errors import SerializationError
from paglets.wire.encoded import EncodedMessage, check_message, encode_deliver, message_head
from paglets.wire.ipc import Deliver, MessageWire, encode_body, encode_message

from .test_ipc import call_ids, message_wires


def _same(a: object, b: object) -> bool:
    return msgspec.msgpack.encode(a) == msgspec.msgpack.encode(b)


@given(message_wires, call_ids, st.booleans())
def test_an_encoded_message_makes_the_same_deliver_frame(
    message: MessageWire, call_id: int, oneway: bool
) -> None:
    encoded = EncodedMessage.of(message)
    assert encode_deliver(call_id, encoded, oneway) == encode_body(Deliver(call_id, message, oneway))
    assert (encoded.kind, encoded.priority, encoded.message_id) == (
        message.kind,
        message.priority,
        message.message_id,
    )
    assert _same(encoded.decode(), message)
    assert message_head(encoded.body) == encoded


@given(message_wires)
def test_a_valid_encoded_message_passes_the_check(message: MessageWire) -> None:
    assert _same(check_message(encode_message(message)), message)


@pytest.mark.parametrize(
    ("message", "field"),
    [
        (MessageWire("add", args=[1]), "args"),  # type: ignore[arg-type]
        (MessageWire("add", args={1: 2}), "args"),  # type: ignore[dict-item]
        (MessageWire("add", sender=1), "sender"),  # type: ignore[arg-type]
        (MessageWire("add", priority=2**63), "priority"),
        (MessageWire("add", message_id=5), "message_id"),  # type: ignore[arg-type]
        (MessageWire(5), "kind"),  # type: ignore[arg-type]
    ],
)
def test_the_message_check_names_the_wrong_field(message: MessageWire, field: str) -> None:
    with pytest.raises(SerializationError, match=f"invalid message: field '{field}'"):
        check_message(encode_message(message))


@given(st.binary(max_size=64))
def test_the_message_check_of_random_bytes_is_a_serialization_error(data: bytes) -> None:
    try:
        check_message(data)
    except SerializationError:
        pass
