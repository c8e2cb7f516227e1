"""A ``Message`` built in the host's process is checked before it is encoded: the quick check of the
common case and the schema's check agree on what they accept, and a wrong field is named."""

from __future__ import annotations

import pytest

from paglets.core.errors import SerializationError
from paglets.core.messages import Message
from paglets.runtime._routing import encode_local_message, encode_message_dict, local_message_dict

pytestmark = pytest.mark.timeout(30)


@pytest.mark.parametrize(
    "message",
    [
        Message("add", {"n": 1, "blob": b"\x00" * 10, "data": bytearray(b"ab"), "deep": {"x": [1, (2, 3)]}}),
        Message("ping", arg=[1, 2], sender="http://127.0.0.1:1", reply_to="r", priority=9, message_type=1),
        Message("quiet", priority=-(2**63), message_type=2**63 - 1),
        Message("with-defaults", timestamp=0.0, message_id=""),
    ],
)
def test_the_quick_check_encodes_as_the_schema_check_does(message: Message) -> None:
    quick = encode_local_message(message)
    checked = encode_message_dict(local_message_dict(message))
    if message.timestamp and message.message_id:
        assert quick == checked
    else:  # the defaults filled in (now, a new id) differ between two calls; the rest is the same
        a, b = quick.decode(), checked.decode()
        assert (a.kind, a.args, a.priority, a.message_type) == (b.kind, b.args, b.priority, b.message_type)
        assert a.timestamp > 0
        assert a.message_id


def test_what_only_the_schema_accepts_still_passes() -> None:
    message = Message("late")
    message.timestamp = 7  # an int: the schema converts it
    assert encode_local_message(message).decode().timestamp == 7.0


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [
        ("args", [1, 2], "args"),
        ("args", {1: "x"}, "args"),
        ("priority", True, "priority"),
        ("priority", 2**63, "priority"),
        ("message_type", "sync", "message_type"),
        ("kind", 5, "kind"),
        ("sender", 5, "sender"),
        ("message_id", 5, "message_id"),
    ],
)
def test_a_wrong_field_is_refused_and_named(field: str, value: object, named: str) -> None:
    message = Message("bad")
    setattr(message, field, value)
    with pytest.raises(SerializationError, match=f"invalid message: field '{named}"):
        encode_local_message(message)
