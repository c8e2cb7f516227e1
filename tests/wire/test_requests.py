"""Typed request bodies: one decode per request, errors that name the field path."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from paglets.core.errors import FrameError, PagletError, RequestError
from paglets.wire.requests import (
    CreateRequest,
    EmptyRequest,
    LeaseRequest,
    MessageRequest,
    MoveRequest,
    decode_request,
)


@pytest.mark.parametrize(
    ("body", "cls", "text"),
    [
        (
            b'{"message": {"kind": "add"}, "oneway": "yes"}',
            MessageRequest,
            "field 'oneway': expected bool, got str",
        ),
        (b'{"message": {"kind": 5}}', MessageRequest, "field 'message.kind': expected str, got int"),
        (b'{"message": {"kind": "a", "args": [1]}}', MessageRequest, "field 'message.args': expected object"),
        (
            b'{"message": {"kind": "a", "priority": "high"}}',
            MessageRequest,
            "field 'message.priority': expected int",
        ),
        (b'{"message": {}}', MessageRequest, "field 'message.kind' is required"),
        (b"{}", MessageRequest, "field 'message' is required"),
        (b'{"agent_class_name": 5}', CreateRequest, "field 'agent_class_name': expected str, got int"),
        (b'{"agent_class_name": "m:C", "state": [1]}', CreateRequest, "field 'state': expected object"),
        (b'{"agent_class_name": "m:C", "agent_id": 7}', CreateRequest, "field 'agent_id': expected str"),
        (b'{"target": 3}', MoveRequest, "field 'target': expected str"),
        (
            b'{"agent_id": "a", "service_name": "s", "ttl": true}',
            LeaseRequest,
            "field 'ttl': expected float, got bool",
        ),
        (b"[1, 2]", MessageRequest, "invalid request body: expected object, got array"),
        (
            b'{"message": {"kind": "a", "args": {"__paglets_binary__": "bytes", "base64": "AAE="}}}',
            MessageRequest,
            "field 'message.args': expected object, got binary",
        ),
    ],
)
def test_a_body_that_does_not_fit_names_the_field(body: bytes, cls: type, text: str) -> None:
    with pytest.raises(RequestError) as info:
        decode_request(body, cls)
    assert text in str(info.value)
    assert info.value.http_status == 400


def test_valid_bodies_decode_with_defaults_and_binary_values() -> None:
    req = decode_request(
        b'{"message": {"kind": "add", "args": {"n": 2, "blob": {"__paglets_binary__": "bytes",'
        b' "base64": "AAE="}}, "arg": {"__paglets_binary__": "bytearray", "base64": "eg=="}},'
        b' "oneway": true, "extra": 1}',
        MessageRequest,
    )
    assert req.oneway is True
    assert req.activate_if_inactive is True
    assert req.no_delay is False
    assert req.message.args == {"n": 2, "blob": b"\x00\x01"}
    assert req.message.arg == bytearray(b"z")
    assert type(req.message.arg) is bytearray
    assert decode_request(b"", EmptyRequest) == EmptyRequest()
    assert decode_request(b'{"anything": [1]}', EmptyRequest) == EmptyRequest()
    move = decode_request(b'{"target": "beta"}', MoveRequest)
    assert (move.target, move.ticket, move.request) == ("beta", None, None)


def test_malformed_json_is_a_frame_error() -> None:
    with pytest.raises(FrameError, match="invalid JSON"):
        decode_request(b'{"message": ', MessageRequest)


@given(st.binary(max_size=200))
def test_random_bytes_only_raise_our_errors(data: bytes) -> None:
    try:
        decode_request(data, MessageRequest)
    except PagletError:
        pass
