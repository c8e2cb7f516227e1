"""``PagletController`` built with fakes: a channel that records frames and a process that never runs.

The controller turns a paglet's ``HostCall`` frames into typed requests for the host's control table and
its answers into ``HostReply`` frames, and feeds its mailbox to the process one ``Deliver`` at a time
from messages that stay encoded (a large one through a handoff segment).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import msgspec

from paglets.core.errors import HostError
from paglets.runtime._controller import PagletController
from paglets.runtime._handoff import MEMFD_SEGMENTS, SegmentFactory
from paglets.wire.control import GetProxy, ProxyRef, encode_control, reply_decoder
from paglets.wire.encoded import EncodedMessage
from paglets.wire.ipc import (
    EMPTY_MESSAGE,
    Deliver,
    HostCall,
    HostReply,
    MessageWire,
    Reply,
    UntypedHostCall,
    decode_body,
    decode_message,
    encode_body,
)


class _Ref:
    def __init__(self, segment_id: int, length: int) -> None:
        self.segment_id = segment_id
        self.length = length


class FakeChannel:
    """Records what the controller sends; keeps the segments it hands over."""

    def __init__(self, segment_maker: SegmentFactory = MEMFD_SEGMENTS) -> None:
        self.frames: list[Any] = []
        self.segments: list[bytes] = []
        self.segment_maker = segment_maker
        self.closed = False
        self.on_frames: Callable[[list[bytes]], None] | None = None

    def attach(
        self, loop: Any, on_frames: Callable[[list[bytes]], None], on_closed: Callable[[], None]
    ) -> None:
        self.on_frames = on_frames

    def send(self, frame: bytes) -> None:
        self.frames.append(decode_body(frame))

    def send_segment(self, segment: Any) -> _Ref:
        try:
            self.segments.append(segment.read(segment.length))
        finally:
            segment.close()
        return _Ref(len(self.segments) - 1, len(self.segments[-1]))

    def close(self) -> None:
        self.closed = True


class FakeProcess:
    pid = 4242

    def add_exit_callback(self, callback: Callable[[int], None]) -> None:
        pass

    def kill(self) -> None:
        pass


def _controller(
    loop: asyncio.AbstractEventLoop, host_calls: Any, segments: SegmentFactory = MEMFD_SEGMENTS
) -> tuple[PagletController, FakeChannel]:
    channel = FakeChannel(segments)
    ctrl = PagletController(
        agent_id="a1",
        agent_class="tests:Counter",
        state_class="tests:CounterState",
        channel=channel,  # type: ignore[arg-type]
        service_bell=-1,
        process=FakeProcess(),  # type: ignore[arg-type]
        loop=loop,
        host_calls=host_calls,
        on_crash=lambda ctrl: None,
        on_message_done=lambda ctrl, message, error: None,
        mailbox_depth=16,
        spawn=lambda coro, **kw: loop.create_task(coro),
    )
    return ctrl, channel


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def test_a_host_call_reaches_the_table_as_its_typed_request_and_its_reply_goes_back() -> None:
    async def main() -> None:
        asked: list[tuple[Any, Any]] = []

        async def host_calls(caller: Any, request: Any) -> object:
            asked.append((caller, request))
            return ProxyRef("http://127.0.0.1:8701", request.agent_id)

        ctrl, channel = _controller(asyncio.get_running_loop(), host_calls)
        request = GetProxy("b2", include_inactive=True)
        ctrl._on_frames([encode_body(HostCall(6, msgspec.Raw(encode_control(request))))])
        await _settle()
        assert asked == [(ctrl, request)]
        (reply,) = channel.frames
        assert isinstance(reply, HostReply)
        assert (reply.call_id, reply.ok) == (6, True)
        assert reply_decoder(GetProxy)(reply.result) == ProxyRef("http://127.0.0.1:8701", "b2")

    asyncio.run(main())


def test_a_request_that_does_not_decode_fails_that_call_only() -> None:
    async def main() -> None:
        async def host_calls(caller: Any, request: Any) -> object:
            raise AssertionError("never called")

        ctrl, channel = _controller(asyncio.get_running_loop(), host_calls)
        ctrl._on_frames([encode_body(HostCall(8, msgspec.Raw(msgspec.msgpack.encode([32, 5]))))])
        ctrl._on_frames([encode_body(UntypedHostCall(10, "lookup_service"))])
        await _settle()
        frames = {frame.call_id: frame for frame in channel.frames}
        bad, retired = frames[8], frames[10]
        assert (bad.call_id, bad.ok, bad.error.code) == (8, False, "frame")
        assert "GetProxy.agent_id" in bad.error.message
        assert (retired.call_id, retired.ok, retired.error.type_name) == (10, False, HostError.__name__)
        assert ctrl.status == "starting"  # the process is not blamed for a bad request

    asyncio.run(main())


def test_the_mailbox_sends_encoded_messages_one_at_a_time() -> None:
    async def main() -> None:
        async def host_calls(caller: Any, request: Any) -> object:
            return None

        ctrl, channel = _controller(asyncio.get_running_loop(), host_calls)
        ctrl.mark_ready()
        first = EncodedMessage.of(MessageWire("add", {"n": 1}, message_id="m1"))
        second = EncodedMessage.of(MessageWire("add", {"n": 2}, message_id="m2"))
        done = [ctrl.submit(first, oneway=False), ctrl.submit(second, oneway=False)]
        (deliver,) = channel.frames  # strictly serial: the second waits for the first's reply
        assert isinstance(deliver, Deliver)
        assert deliver.message == first.decode()
        ctrl._on_frames([encode_body(Reply(deliver.call_id, True, msgspec.Raw(msgspec.msgpack.encode(7))))])
        assert await done[0] == 7
        assert channel.frames[-1].message.message_id == "m2"

    asyncio.run(main())


def test_a_message_too_large_for_the_ring_travels_in_a_segment(segments: SegmentFactory) -> None:
    async def main() -> None:
        async def host_calls(caller: Any, request: Any) -> object:
            return None

        ctrl, channel = _controller(asyncio.get_running_loop(), host_calls, segments)
        ctrl.mark_ready()
        big = EncodedMessage.of(MessageWire("blob", {"data": b"x" * 200_000}, message_id="big"))
        ctrl.submit(big, oneway=True)
        (deliver,) = channel.frames
        assert deliver.message == EMPTY_MESSAGE
        assert deliver.message_segment is not None
        assert channel.segments[deliver.message_segment.segment] == bytes(
            big.body
        )  # the bytes, not re-encoded
        assert decode_message(channel.segments[0]).args["data"] == b"x" * 200_000

    asyncio.run(main())
