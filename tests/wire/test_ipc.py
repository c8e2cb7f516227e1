from __future__ import annotations

import struct
from typing import Any, get_args

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paglets.core.errors import FrameError, LimitExceededError, ProtocolError
from paglets.wire import ipc
from paglets.wire.ipc import (
    FRAME_HEADER_SIZE,
    NIL,
    Deliver,
    FrameBodyError,
    FrameDecoder,
    GetState,
    HandoffRef,
    Hello,
    HostCall,
    HostReply,
    IpcMessage,
    Lifecycle,
    MessageWire,
    Reply,
    ResourceCall,
    RunFinished,
    Shutdown,
    decode_body,
    encode_frame,
    encode_frame_into,
)
from paglets.wire.limits import MAX_HANDOFF_BYTES, MAX_IPC_FRAME
from paglets.wire.messages import ErrorInfo

# --- strategies ------------------------------------------------------------------------------------------

call_ids = st.integers(min_value=0, max_value=2**63 - 1)
text = st.text(max_size=40)
scalars = st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats(allow_nan=False) | text
scalars = scalars | st.binary(max_size=40)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=12,
)
raws = values.map(lambda v: msgspec.Raw(msgspec.msgpack.encode(v)))
error_infos = st.builds(ErrorInfo, code=text, type_name=text, message=text, traceback=text)
handoffs = st.builds(
    HandoffRef,
    segment=call_ids,
    length=st.integers(0, MAX_HANDOFF_BYTES),
    checksum=st.integers(0, 0xFFFFFFFF),
)
message_wires = st.builds(
    MessageWire,
    kind=text,
    args=st.dictionaries(text, values, max_size=4),
    arg=values,
    sender=st.none() | text,
    reply_to=st.none() | text,
    priority=st.integers(0, 0xFFFFFFFF),
    message_type=st.integers(0, 2),
    timestamp=st.floats(allow_nan=False, allow_infinity=False),
    message_id=text,
)
hooks = st.sampled_from(get_args(ipc.LifecycleHook))

STRATEGIES: dict[type[Any], st.SearchStrategy[Any]] = {
    Lifecycle: st.builds(Lifecycle, call_id=call_ids, hook=hooks, event=raws),
    Deliver: st.builds(Deliver, call_id=call_ids, message=message_wires, oneway=st.booleans()),
    GetState: st.builds(GetState, call_id=call_ids),
    ResourceCall: st.builds(
        ResourceCall,
        call_id=call_ids,
        op=st.sampled_from(["status", "cleanup", "remove"]),
        name=text,
        reason=text,
    ),
    Shutdown: st.builds(Shutdown, reason=text),
    HostReply: st.builds(
        HostReply,
        call_id=call_ids,
        ok=st.booleans(),
        result=raws,
        error=st.none() | error_infos,
        handoff=st.none() | handoffs,
    ),
    ipc.Start: st.builds(ipc.Start, call_id=call_ids),
    Hello: st.builds(Hello, pid=st.integers(1, 2**31)),
    Reply: st.builds(
        Reply,
        call_id=call_ids,
        ok=st.booleans(),
        result=raws,
        error=st.none() | error_infos,
        handoff=st.none() | handoffs,
    ),
    HostCall: st.builds(HostCall, call_id=call_ids, op=text, args=raws),
    RunFinished: st.builds(RunFinished, error=st.none() | error_infos),
}
messages = st.one_of(*STRATEGIES.values())


def _same(a: Any, b: Any) -> bool:
    """Equality that compares Raw payloads by content."""
    return msgspec.msgpack.encode(a) == msgspec.msgpack.encode(b)


# --- message set -----------------------------------------------------------------------------------------


def test_every_message_type_has_a_strategy() -> None:
    assert set(STRATEGIES) == set(ipc.IPC_MESSAGE_TYPES)


def test_tags_are_unique_and_in_their_direction_range() -> None:
    tags = [t.__struct_config__.tag for t in ipc.IPC_MESSAGE_TYPES]
    assert len(tags) == len(set(tags))
    for t in get_args(ipc.HostToChild):
        assert 1 <= t.__struct_config__.tag <= 31
    for t in get_args(ipc.ChildToHost):
        assert 32 <= t.__struct_config__.tag <= 63
    assert set(get_args(ipc.IpcMessage)) == set(ipc.IPC_MESSAGE_TYPES)


def test_messages_are_frozen() -> None:
    msg = GetState(call_id=1)
    with pytest.raises(AttributeError):
        msg.call_id = 2  # type: ignore[misc]


@settings(max_examples=300)
@given(messages)
def test_every_message_round_trips(msg: IpcMessage) -> None:
    frame = encode_frame(msg)
    (length,) = struct.unpack_from("<I", frame)
    assert length == len(frame) - FRAME_HEADER_SIZE
    decoder = FrameDecoder()
    decoder.feed(frame)
    (out,) = list(decoder)
    assert type(out) is type(msg)
    assert _same(out, msg)


@settings(max_examples=100)
@given(st.lists(messages, min_size=1, max_size=6), st.data())
def test_any_split_of_a_stream_decodes_to_the_same_messages(
    msgs: list[IpcMessage], data: st.DataObject
) -> None:
    stream = b"".join(encode_frame(m) for m in msgs)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    decoder = FrameDecoder()
    out: list[IpcMessage] = []
    start = 0
    use_bytearray = data.draw(st.booleans())
    for cut in [*cuts, len(stream)]:
        piece = stream[start:cut]
        decoder.feed(bytearray(piece) if use_bytearray else piece)
        out.extend(decoder)
        start = cut
    decoder.finish()
    assert [type(m) for m in out] == [type(m) for m in msgs]
    assert all(_same(a, b) for a, b in zip(out, msgs, strict=True))
    assert decoder.statistics().frames == len(msgs)


@settings(max_examples=300)
@given(st.binary(max_size=200))
def test_random_bytes_only_raise_protocol_errors(data: bytes) -> None:
    decoder = FrameDecoder()
    decoder.feed(data)
    try:
        list(decoder)
        decoder.finish()
    except ProtocolError:
        pass


@settings(max_examples=200)
@given(messages, st.data())
def test_corrupted_frames_only_raise_protocol_errors(msg: IpcMessage, data: st.DataObject) -> None:
    frame = bytearray(encode_frame(msg))
    for _ in range(data.draw(st.integers(1, 4))):
        index = data.draw(st.integers(0, len(frame) - 1))
        frame[index] ^= 1 << data.draw(st.integers(0, 7))
    decoder = FrameDecoder()
    decoder.feed(bytes(frame))
    try:
        list(decoder)
        decoder.finish()
    except ProtocolError:
        pass


# --- limits and errors -----------------------------------------------------------------------------------


def test_oversized_frame_is_refused_from_its_length_alone() -> None:
    decoder = FrameDecoder()
    decoder.feed(struct.pack("<I", MAX_IPC_FRAME + 1))
    with pytest.raises(LimitExceededError):
        decoder.next_message()
    with pytest.raises(FrameError, match="already failed"):
        decoder.feed(b"more")


def test_frame_of_exactly_the_limit_is_accepted() -> None:
    payload = b"x" * (MAX_IPC_FRAME - 16)
    msg = HostCall(call_id=1, op="", args=msgspec.Raw(msgspec.msgpack.encode(payload)))
    frame = encode_frame(msg)
    assert len(frame) - FRAME_HEADER_SIZE <= MAX_IPC_FRAME
    decoder = FrameDecoder()
    decoder.feed(frame)
    assert list(decoder)


def test_encoding_too_large_a_message_is_a_local_limit_error() -> None:
    msg = HostCall(call_id=1, op="x", args=msgspec.Raw(msgspec.msgpack.encode(b"x" * MAX_IPC_FRAME)))
    buf = bytearray(b"keep")
    with pytest.raises(LimitExceededError) as caught:
        encode_frame_into(msg, buf, 4)
    assert caught.value.fault == "local"
    assert buf == b"keep"


def test_unknown_tag_and_bad_fields_are_frame_errors() -> None:
    for body in ([99, 1], [1, 1, "teleport"], [32, 0], [3, -1], ["GetState", 1], {"call_id": 1}):
        with pytest.raises(FrameError):
            decode_body(msgspec.msgpack.encode(body))
    with pytest.raises(FrameError):
        decode_body(b"\x92\x03\x01\xc0")  # GetState(1) followed by a stray nil
    with pytest.raises(FrameError):
        decode_body(b"\x92\x22\xa2\xc3\x28")  # invalid UTF-8
    with pytest.raises(FrameError):
        decode_body(b"")


def test_a_bad_body_is_skipped_and_the_stream_stays_in_step() -> None:
    """A frame whose body does not decode is reported with its tag and call id; its length was valid,
    so the frames after it decode normally (in any split of the stream)."""
    bad = Deliver(7, MessageWire("add", sender=1))  # type: ignore[arg-type]  # not what the schema allows
    stream = encode_frame(GetState(1)) + encode_frame(bad) + encode_frame(GetState(2))
    for cut in range(len(stream) + 1):
        decoder = FrameDecoder()
        out: list[object] = []
        errors: list[FrameBodyError] = []
        for piece in (stream[:cut], stream[cut:]):
            decoder.feed(piece)
            while True:
                try:
                    msg = decoder.next_message()
                except FrameBodyError as exc:
                    errors.append(exc)
                    continue
                if msg is None:
                    break
                out.append(msg)
        decoder.finish()
        assert out == [GetState(1), GetState(2)]
        assert [(e.tag, e.call_id) for e in errors] == [(2, 7)]


def test_a_bad_body_reports_what_it_can_read() -> None:
    with pytest.raises(FrameBodyError) as caught:
        decode_body(msgspec.msgpack.encode([2, 9, ["k", [1]]]))
    assert (caught.value.tag, caught.value.call_id) == (2, 9)
    with pytest.raises(FrameBodyError) as caught:
        decode_body(b"\x93\x02")  # truncated: nothing can be read
    assert (caught.value.tag, caught.value.call_id) == (None, None)
    with pytest.raises(FrameBodyError) as caught:
        decode_body(msgspec.msgpack.encode([6, -1]))
    assert (caught.value.tag, caught.value.call_id) == (6, None)


def test_empty_frame_is_refused() -> None:
    decoder = FrameDecoder()
    decoder.feed(b"\x00\x00\x00\x00")
    with pytest.raises(FrameError, match="empty"):
        list(decoder)


def test_truncated_stream_is_reported_by_finish() -> None:
    frame = encode_frame(Hello(pid=7))
    decoder = FrameDecoder()
    decoder.feed(frame[:-1])
    assert list(decoder) == []
    assert decoder.buffered == len(frame) - 1
    with pytest.raises(FrameError, match="incomplete"):
        decoder.finish()


def test_deep_nesting_is_a_frame_error() -> None:
    deep = b"\x91" * 100_000 + b"\xc0"  # [[[[...]]]] 100k levels as HostCall.op
    with pytest.raises(FrameError):
        decode_body(b"\x94\x22\x01\xa1x" + deep)


# --- buffers ---------------------------------------------------------------------------------------------


def test_encode_frame_into_appends_frames() -> None:
    buf = bytearray()
    end = encode_frame_into(Hello(pid=1), buf, 0)
    end = encode_frame_into(GetState(call_id=2), buf, end)
    assert end == len(buf)
    assert bytes(buf) == encode_frame(Hello(pid=1)) + encode_frame(GetState(call_id=2))
    with pytest.raises(ValueError, match="offset"):
        encode_frame_into(Hello(pid=1), buf, len(buf) + 1)


def test_mutable_input_buffers_can_be_reused_at_once() -> None:
    payload = msgspec.Raw(msgspec.msgpack.encode(b"payload"))
    frame = encode_frame(Reply(call_id=1, ok=True, result=payload))
    ring = bytearray(frame)
    decoder = FrameDecoder()
    decoder.feed(memoryview(ring))
    ring[:] = bytes(len(ring))  # the ring slot is reused before the message is read
    (msg,) = list(decoder)
    assert isinstance(msg, Reply)
    assert bytes(msg.result) == bytes(payload)


def test_whole_frames_in_bytes_are_decoded_without_copy() -> None:
    frame = encode_frame(Reply(call_id=1, ok=True, result=msgspec.Raw(msgspec.msgpack.encode(b"z" * 1000))))
    decoder = FrameDecoder()
    decoder.feed(frame)
    (msg,) = list(decoder)
    assert isinstance(msg, Reply)
    assert msgspec.msgpack.decode(msg.result) == b"z" * 1000
    assert decoder.buffered == 0


def test_defaults() -> None:
    reply = Reply(call_id=1, ok=True)
    assert bytes(reply.result) == bytes(NIL) == b"\xc0"
    assert reply.error is None
    assert reply.handoff is None
    assert MessageWire(kind="k").priority == 5
    decoded = decode_body(msgspec.msgpack.encode([33, 1, True]))  # trailing defaults may be omitted
    assert isinstance(decoded, Reply)
    assert bytes(decoded.result) == b"\xc0"


def test_extra_trailing_fields_are_ignored() -> None:
    decoded = decode_body(msgspec.msgpack.encode([3, 9, "from a newer peer"]))
    assert decoded == GetState(call_id=9)


def test_bytearray_extension_round_trips_and_other_extensions_are_refused() -> None:
    message = MessageWire(kind="k", args={"ba": msgspec.msgpack.Ext(ipc.BYTEARRAY_EXT, b"\x01\x02")})
    decoded = decode_body(encode_frame(Deliver(call_id=1, message=message))[FRAME_HEADER_SIZE:])
    assert isinstance(decoded, Deliver)
    assert decoded.message.args == {"ba": bytearray(b"\x01\x02")}
    assert type(decoded.message.args["ba"]) is bytearray
    with pytest.raises(FrameError, match="extension type 7"):
        decode_body(encode_frame(Deliver(1, MessageWire("k", arg=msgspec.msgpack.Ext(7, b""))))[4:])


def test_bytearray_extension_code_matches_the_value_codec() -> None:
    from paglets.wire import values  # the runtime's value codec writes the same extension type

    assert values.BYTEARRAY_EXT == ipc.BYTEARRAY_EXT
