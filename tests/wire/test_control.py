"""The typed control requests of ``paglets.wire.control``: tags, round trips, errors that name fields."""

from __future__ import annotations

import types
import typing
from typing import Any, Literal, Union, get_args, get_origin

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paglets.core.errors import FrameError, SerializationError
from paglets.wire import control
from paglets.wire.control import (
    CONTROL_REQUEST_TYPES,
    AgentRequest,
    CreateAgent,
    CreateRemote,
    DeliverMessage,
    GetProxies,
    decode_control,
    encode_control,
    encode_reply,
    reply_decoder,
    reply_type,
    request_tag,
)

# --- strategies built from the Structs' own field types ------------------------------------------------

text = st.text(max_size=20)
values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False)
    | text
    | st.binary(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=8,
)


#: Struct types whose strategy is being built (see the recursion cut in ``strategy``).
_building: set[type] = set()


def strategy(kind: Any) -> st.SearchStrategy[Any]:
    """Values of ``kind`` (the field types the request and reply Structs use)."""
    if kind is Any:
        return values
    origin = get_origin(kind)
    if origin is typing.Annotated:
        base, *meta = get_args(kind)
        low = next((m.ge for m in meta if getattr(m, "ge", None) is not None), None)
        high = next((m.le for m in meta if getattr(m, "le", None) is not None), None)
        if base is float:
            return st.floats(min_value=0.001, max_value=high or 1e9)
        return st.integers(
            min_value=low if low is not None else 0, max_value=high if high is not None else 2**40
        )
    if origin in (Union, types.UnionType):
        return st.one_of(*(strategy(arg) for arg in get_args(kind)))
    if origin is Literal:
        return st.sampled_from(get_args(kind))
    if origin is list:
        element = strategy(get_args(kind)[0])
        return st.just([]) if element.is_empty else st.lists(element, max_size=3)
    if origin is dict:
        return st.dictionaries(text, strategy(get_args(kind)[1]), max_size=3)
    if kind is type(None):
        return st.none()
    if kind is int:
        return st.integers(-(2**63), 2**63 - 1)
    if kind is float:
        return st.floats(allow_nan=False)
    if kind is msgspec.Raw:
        return values.map(lambda v: msgspec.Raw(msgspec.msgpack.encode(v)))
    if isinstance(kind, type) and issubclass(kind, msgspec.Struct):
        if kind in _building:  # a Struct that holds itself (a list of them): the inner lists stay empty
            return st.nothing()
        _building.add(kind)
        try:
            hints = typing.get_type_hints(kind, include_extras=True)
            fields = {f.name: strategy(hints[f.name]) for f in msgspec.structs.fields(kind)}
        finally:
            _building.discard(kind)
        return st.builds(kind, **fields)
    return st.from_type(kind)


requests = st.one_of(*(strategy(cls) for cls in CONTROL_REQUEST_TYPES))


def _same(a: Any, b: Any) -> bool:
    return msgspec.msgpack.encode(a) == msgspec.msgpack.encode(b)


# --- the set of requests ---------------------------------------------------------------------------------


def test_tags_are_unique_and_in_their_range() -> None:
    tags = [request_tag(cls) for cls in CONTROL_REQUEST_TYPES]
    assert len(tags) == len(set(tags)) == len(get_args(control.ControlRequest))
    assert tags == sorted(tags)
    for cls in CONTROL_REQUEST_TYPES:
        # 1..31: any caller (HTTP, proxies, paglets); 32..127: host calls of paglet processes
        assert 1 <= request_tag(cls) <= 127
        if issubclass(cls, AgentRequest):
            assert request_tag(cls) <= 31, cls


def test_requests_are_frozen_array_structs_and_declare_a_reply() -> None:
    for cls in CONTROL_REQUEST_TYPES:
        config = cls.__struct_config__
        assert config.frozen, cls
        assert config.array_like, cls
        reply_type(cls)  # raises when the class has none


@settings(max_examples=200)
@given(requests)
def test_every_request_round_trips(request: Any) -> None:
    decoded = decode_control(encode_control(request))
    assert type(decoded) is type(request)
    assert _same(decoded, request)


@settings(max_examples=200)
@given(
    st.sampled_from(CONTROL_REQUEST_TYPES).flatmap(
        lambda cls: st.tuples(st.just(cls), strategy(reply_type(cls)))
    )
)
def test_each_reply_type_decodes_what_a_host_encodes(case: tuple[type[Any], Any]) -> None:
    cls, reply = case
    assert _same(reply_decoder(cls)(encode_reply(reply)), reply)


def test_a_reply_of_the_wrong_shape_is_a_serialization_error() -> None:
    with pytest.raises(SerializationError, match="invalid answer to GetProxies"):
        reply_decoder(GetProxies)(encode_reply({"not": "a list"}))


@settings(max_examples=500)
@given(st.binary(max_size=64))
def test_random_bytes_only_raise_frame_errors(data: bytes) -> None:
    try:
        decode_control(data)
    except FrameError:
        pass


def test_errors_name_the_field() -> None:
    bad = CreateRemote("x", CreateAgent(5, "a"))  # type: ignore[arg-type]
    with pytest.raises(
        FrameError, match=r"field 'CreateRemote\.creation\.agent_class': expected str, got int"
    ):
        decode_control(encode_control(bad))
    with pytest.raises(FrameError, match="unknown request tag 127"):
        decode_control(msgspec.msgpack.encode([127, "x"]))
    with pytest.raises(FrameError, match=r"field 'DeliverMessage\.deadline'"):
        decode_control(encode_control(DeliverMessage("a", msgspec.Raw(b"\xc0"), deadline=-1.0)))


def test_extra_trailing_fields_are_ignored() -> None:
    """Schema rule 2 (PROTOCOL.md §5): a newer sender may append fields."""
    assert decode_control(msgspec.msgpack.encode([33, 3, "later"])) == GetProxies(3)
