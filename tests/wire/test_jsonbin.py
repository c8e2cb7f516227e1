from __future__ import annotations

import dataclasses
import enum
import json
from pathlib import PurePosixPath
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from paglets.core.errors import FrameError, LimitExceededError, ProtocolError, SerializationError
from paglets.wire.jsonbin import BINARY_TAG, decode_json, encode_json, tag_binary, untag_binary
from paglets.wire.limits import MAX_JSON_BODY, MAX_JSON_DEPTH

json_scalars = st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=20)
json_scalars = json_scalars | st.floats(allow_nan=False, allow_infinity=False)
binary = st.binary(max_size=40) | st.binary(max_size=40).map(bytearray)
values = st.recursive(
    json_scalars | binary,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)


@given(values)
def test_round_trip_keeps_bytes_and_bytearrays(value: Any) -> None:
    out = decode_json(encode_json(value))
    assert out == value
    assert _types(out) == _types(value)


def _types(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _types(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_types(v) for v in value]
    return type(value)


@given(values)
def test_tag_and_untag_are_inverse(value: Any) -> None:
    tagged = tag_binary(value)
    assert not _has_binary(tagged)
    assert untag_binary(tagged) == value


def _has_binary(value: Any) -> bool:
    if isinstance(value, dict):
        return any(_has_binary(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_binary(v) for v in value)
    return isinstance(value, bytes | bytearray)


def test_exact_tag_form() -> None:
    body = json.loads(encode_json({"a": [b"\x00\xff", bytearray(b"hi")]}))
    assert body == {
        "a": [
            {"__paglets_binary__": "bytes", "base64": "AP8="},
            {"__paglets_binary__": "bytearray", "base64": "aGk="},
        ]
    }


def test_reference_tag_dicts_decode() -> None:
    text = b'{"state": {"blob": {"base64": "cGFnbGV0cw==", "__paglets_binary__": "bytes"}}}'
    assert decode_json(text) == {"state": {"blob": b"paglets"}}


def test_other_python_types() -> None:
    class Color(enum.Enum):
        RED = "red"

    @dataclasses.dataclass
    class Point:
        x: int
        blob: bytes

    class Ticket:
        def to_wire(self) -> dict[str, Any]:
            return {"destination": "http://h", "raw": b"\x01"}

    class S(msgspec.Struct):
        name: str
        data: bytearray

    value = {
        "tuple": (1, 2),
        "set": {3},
        "enum": Color.RED,
        "path": PurePosixPath("/tmp/x"),
        "dc": Point(1, b"\x02"),
        "ticket": Ticket(),
        "struct": S("s", bytearray(b"\x03")),
    }
    assert decode_json(encode_json(value)) == {
        "tuple": [1, 2],
        "set": [3],
        "enum": "red",
        "path": "/tmp/x",
        "dc": {"x": 1, "blob": b"\x02"},
        "ticket": {"destination": "http://h", "raw": b"\x01"},
        "struct": {"name": "s", "data": bytearray(b"\x03")},
    }
    # and without any binary inside (the fast path)
    assert decode_json(encode_json({"enum": Color.RED, "path": PurePosixPath("/p")})) == {
        "enum": "red",
        "path": "/p",
    }


def test_unencodable_values_raise_serialization_error() -> None:
    with pytest.raises(SerializationError):
        encode_json({"x": object()})
    with pytest.raises(SerializationError):
        encode_json({"x": b"1", "y": object()})


def test_structures_without_binary_are_not_copied() -> None:
    value = {"a": [1, {"b": "c"}], "d": None}
    assert tag_binary(value) is value
    assert untag_binary(value) is value


def test_escaped_tag_key_is_still_restored() -> None:
    text = b'{"x": {"\\u005f_paglets_binary__": "bytes", "base64": "AQI="}}'
    assert decode_json(text) == {"x": b"\x01\x02"}
    assert decode_json(text.decode()) == {"x": b"\x01\x02"}
    assert decode_json(memoryview(text)) == {"x": b"\x01\x02"}


def test_dicts_with_other_keys_are_plain() -> None:
    value = {BINARY_TAG: "bytes", "base64": "AQI=", "extra": 1}
    assert decode_json(json.dumps(value)) == value
    assert decode_json(json.dumps({BINARY_TAG: "bytes"})) == {BINARY_TAG: "bytes"}


@pytest.mark.parametrize(
    "tag",
    [
        {BINARY_TAG: "str", "base64": "AQI="},
        {BINARY_TAG: "bytes", "base64": "not base64!"},
        {BINARY_TAG: "bytes", "base64": "AQI"},  # bad padding
        {BINARY_TAG: "bytes", "base64": 5},
        {BINARY_TAG: None, "base64": ""},
    ],
)
def test_bad_tags_are_frame_errors(tag: dict[str, Any]) -> None:
    with pytest.raises(FrameError) as caught:
        decode_json(json.dumps({"v": [tag]}))
    assert caught.value.http_status == 400


@pytest.mark.parametrize("text", [b"", b"{", b'{"a": }', b"\xff\xfe", b'"\xc3\x28"', b"[" * 100_000])
def test_malformed_json_is_a_frame_error(text: bytes) -> None:
    with pytest.raises(FrameError):
        decode_json(text)


def test_depth_is_bounded_both_ways() -> None:
    deep: Any = b"x"
    for _ in range(MAX_JSON_DEPTH + 5):
        deep = [deep]
    with pytest.raises(ProtocolError):
        encode_json(deep)
    text = "[" * (MAX_JSON_DEPTH + 5) + '{"a": 1}' + "]" * (MAX_JSON_DEPTH + 5)
    escaped = text.replace('"a"', '"\\u0061"')  # an escape makes the decoder walk the document
    with pytest.raises(FrameError):
        decode_json(escaped)


def test_body_size_is_bounded() -> None:
    with pytest.raises(LimitExceededError):
        decode_json(b" " * (MAX_JSON_BODY + 1))
