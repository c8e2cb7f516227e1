"""The inbound move budget, growing state segments, and envelope decoding off the event loop."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import threading
import time
from collections.abc import AsyncIterator, Iterable
from typing import Any

import pytest

from paglets.core.errors import HostBusyError, LimitExceededError
from paglets.runtime._handoff import SegmentFactory
from paglets.runtime._inbound import ON_LOOP_DECODE, InboundBudget, InboundMove, InboundSink
from paglets.wire.envelope import EnvelopeEncoder, EnvelopeMetadata
from paglets.wire.limits import KiB, MiB

META = EnvelopeMetadata(
    kind="dispatch",
    agent_id="a1",
    agent_class_name="m:A",
    state_class_name="m:S",
    transfer_id="00112233445566778899aabbccddeeff",
)
WAIT = 30.0


def run(coro: Any) -> Any:
    async def bounded() -> Any:
        async with asyncio.timeout(WAIT):
            return await coro

    return asyncio.run(bounded())


async def pieces(data: Iterable[bytes | memoryview], size: int = 64 * KiB) -> AsyncIterator[bytes]:
    """The envelope as an HTTP body would arrive: pieces of ``size`` bytes."""
    whole = b"".join(bytes(p) for p in data)
    for start in range(0, len(whole), size):
        yield whole[start : start + size]
        await asyncio.sleep(0)


async def until(condition: Any) -> None:
    """Poll ``condition`` (on the loop) until it holds, within ``WAIT`` seconds."""
    for _ in range(int(WAIT / 0.001)):
        if condition():
            return
        await asyncio.sleep(0.001)
    raise AssertionError(f"condition not met within {WAIT} s")


def segment_bytes(move: InboundMove, length: int) -> bytes:
    segment = move.take_segment()
    try:
        return segment.read(length)
    finally:
        segment.close()


# --- the budget ------------------------------------------------------------------------------------------


def test_budget_try_take_and_give() -> None:
    budget = InboundBudget(10)
    assert budget.try_take(6)
    assert not budget.try_take(5)
    assert budget.try_take(4)
    budget.give(10)
    assert budget.used == 0
    assert budget.statistics().peak == 10


def test_budget_waiters_are_served_in_arrival_order_and_block_try_take() -> None:
    async def scenario() -> list[str]:
        budget = InboundBudget(10)
        assert budget.try_take(10)
        order: list[str] = []

        async def waiter(name: str, nbytes: int) -> None:
            assert await budget.take(nbytes, WAIT)
            order.append(name)

        big = asyncio.create_task(waiter("big", 8))
        await asyncio.sleep(0)
        small = asyncio.create_task(waiter("small", 2))
        await asyncio.sleep(0)
        assert not budget.try_take(1)  # someone waits: no jumping the queue
        budget.give(4)  # 4 free: the big one is first in line and does not fit yet; the small one waits
        await asyncio.sleep(0)
        assert order == []
        budget.give(6)
        await asyncio.gather(big, small)
        assert budget.used == 10
        return order

    assert run(scenario()) == ["big", "small"]


def test_budget_wait_is_bounded_and_counted() -> None:
    async def scenario() -> None:
        budget = InboundBudget(10)
        assert budget.try_take(10)
        assert not await budget.take(1, 0.05)
        stats = budget.statistics()
        assert (stats.waiting, stats.waits, stats.refusals) == (0, 1, 1)
        assert not await budget.take(11, WAIT)  # more than the whole budget: at once
        budget.give(10)
        assert budget.try_take(10)

    run(scenario())


def test_two_moves_holding_bytes_never_wait_for_each_other() -> None:
    """Each of two moves holds half the budget and wants more: the first waits, the second is refused at
    once (not after the wait) and gives its half back, which lets the first go on."""

    async def scenario() -> None:
        budget = InboundBudget(10)
        assert budget.try_take(5)  # move one
        assert budget.try_take(5)  # move two
        first = asyncio.create_task(budget.take(3, WAIT, holding=5))
        await asyncio.sleep(0)
        assert budget.statistics().waiting == 1
        started = time.monotonic()
        assert not await budget.take(3, WAIT, holding=5)  # move two: refused at once
        assert time.monotonic() - started < WAIT / 2
        budget.give(5)  # move two gives its bytes back as it is refused
        assert await asyncio.wait_for(first, WAIT)
        assert budget.used == 8
        # a move that holds nothing may still wait in line behind another
        waiting = asyncio.create_task(budget.take(4, WAIT, holding=5))
        await asyncio.sleep(0)
        fresh = asyncio.create_task(budget.take(1, WAIT))
        await asyncio.sleep(0)
        assert budget.statistics().waiting == 2
        budget.give(8)
        assert await asyncio.wait_for(waiting, WAIT)
        assert await asyncio.wait_for(fresh, WAIT)

    run(scenario())


def test_a_cancelled_waiter_leaves_the_line() -> None:
    async def scenario() -> None:
        budget = InboundBudget(10)
        assert budget.try_take(10)
        task = asyncio.create_task(budget.take(5, WAIT))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        budget.give(10)
        assert budget.used == 0
        assert budget.try_take(10)

    run(scenario())


def test_budget_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        InboundBudget(0)


# --- the sink --------------------------------------------------------------------------------------------


def test_sink_grows_with_the_data_not_with_the_declaration(segments: SegmentFactory) -> None:
    budget = InboundBudget(1024 * MiB)
    sink = InboundSink(budget, declared=1024 * MiB, segments=segments)
    try:
        assert sink.segment.length == 0
        assert sink.reserve(MiB)
        sink.write(memoryview(bytes(MiB)))
        assert sink.segment.length == MiB
        for _ in range(9):
            assert sink.reserve(MiB)
            sink.write(memoryview(bytes(MiB)))
        # doubling growth: never more than twice what was written, and paid from the budget
        assert 10 * MiB <= sink.segment.length <= 20 * MiB
        assert budget.used == sink.charged == sink.segment.length
    finally:
        sink.segment.close()


def test_sink_takes_just_the_frame_when_the_budget_is_short_then_asks(segments: SegmentFactory) -> None:
    budget = InboundBudget(3 * MiB)
    sink = InboundSink(budget, declared=8 * MiB, segments=segments)
    try:
        for _ in range(3):
            assert sink.reserve(MiB)
            sink.write(memoryview(bytes(MiB)))
        assert sink.segment.length == 3 * MiB
        assert not sink.reserve(MiB)
        assert sink.wanted == MiB
        assert budget.used == 3 * MiB
    finally:
        sink.segment.close()


# --- decoding a move -------------------------------------------------------------------------------------


def test_a_move_decodes_in_the_pool_and_gives_its_budget_back(
    monkeypatch: pytest.MonkeyPatch, segments: SegmentFactory
) -> None:
    state = os.urandom(3 * MiB) + bytes(5 * MiB)
    writers: set[str] = set()
    original = InboundSink.write

    def spy(self: InboundSink, data: memoryview, /) -> int:
        writers.add(threading.current_thread().name)
        return original(self, data)

    monkeypatch.setattr(InboundSink, "write", spy)

    async def scenario() -> None:
        budget = InboundBudget(64 * MiB)
        with concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="decode") as pool:
            move = InboundMove(budget, pool, max_state_bytes=64 * MiB, segments=segments)
            decoded = await move.run(pieces(EnvelopeEncoder(META, state)), lambda metadata: False)
            assert decoded is not None
            assert decoded.state_length == len(state)
            assert segment_bytes(move, len(state)) == state
            assert budget.used == len(state)  # held until the move ends
            move.release()
            assert budget.used == 0

    run(scenario())
    assert writers
    assert all(name.startswith("decode") for name in writers), writers  # never on the loop's thread


def test_a_tiny_state_decodes_on_the_loop(segments: SegmentFactory) -> None:
    state = b"tiny state"

    async def scenario() -> None:
        budget = InboundBudget(MiB)
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pool.shutdown()  # any use of the pool would fail
            move = InboundMove(budget, pool, max_state_bytes=MiB, segments=segments)
            decoded = await move.run(pieces(EnvelopeEncoder(META, state)), lambda metadata: False)
            assert decoded is not None
            assert segment_bytes(move, len(state)) == state
            move.release()

    run(scenario())


def test_zero_frames_decode_on_the_loop_only_up_to_a_bound(
    monkeypatch: pytest.MonkeyPatch, segments: SegmentFactory
) -> None:
    """A small body of zstd frames of zeros may decode to far more than it weighs: the loop decodes at most
    ``ON_LOOP_DECODE`` bytes of it, the pool the rest."""
    state = bytes(8 * MiB)
    envelope = b"".join(bytes(p) for p in EnvelopeEncoder(META, state))
    assert len(envelope) < 64 * KiB  # one piece, far below a batch
    on_loop: list[int] = []
    loop_thread = threading.current_thread()  # asyncio.run runs the loop in this thread
    original = InboundSink.write

    def spy(self: InboundSink, data: memoryview, /) -> int:
        if threading.current_thread() is loop_thread:
            on_loop.append(data.nbytes)
        return original(self, data)

    monkeypatch.setattr(InboundSink, "write", spy)

    async def scenario() -> None:
        budget = InboundBudget(64 * MiB)
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            move = InboundMove(budget, pool, max_state_bytes=64 * MiB, segments=segments)
            decoded = await move.run(pieces([envelope]), lambda metadata: False)
            assert decoded is not None
            assert segment_bytes(move, len(state)) == state
            move.release()

    run(scenario())
    assert sum(on_loop) <= ON_LOOP_DECODE


def test_a_move_waits_for_budget_then_continues(segments: SegmentFactory) -> None:
    state = os.urandom(4 * MiB)

    async def scenario() -> None:
        budget = InboundBudget(6 * MiB)
        assert budget.try_take(4 * MiB)  # another move holds most of it
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            move = InboundMove(budget, pool, max_state_bytes=64 * MiB, wait=WAIT, segments=segments)
            task = asyncio.create_task(move.run(pieces(EnvelopeEncoder(META, state)), lambda m: False))
            await until(lambda: budget.statistics().waiting == 1)  # decoded what fits, waits for the rest
            assert not task.done()
            budget.give(4 * MiB)  # the other move ends
            decoded = await task
            assert decoded is not None
            assert segment_bytes(move, len(state)) == state
            move.release()
            assert budget.used == 0

    run(scenario())


def test_a_move_that_cannot_get_budget_is_refused_and_frees_what_it_held(segments: SegmentFactory) -> None:
    state = os.urandom(4 * MiB)

    async def scenario() -> None:
        budget = InboundBudget(6 * MiB)
        assert budget.try_take(4 * MiB)
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            move = InboundMove(budget, pool, max_state_bytes=64 * MiB, wait=0.05, segments=segments)
            with pytest.raises(HostBusyError) as caught:
                await move.run(pieces(EnvelopeEncoder(META, state)), lambda m: False)
            assert caught.value.http_status == 503
            assert caught.value.retry_after is not None
            assert caught.value.retry_after > 0
            assert budget.used == 6 * MiB  # what it decoded is still held ...
            move.release()
            assert budget.used == 4 * MiB  # ... until the move ends

    run(scenario())


def test_a_declared_state_above_the_whole_budget_is_refused_before_any_state(
    segments: SegmentFactory,
) -> None:
    async def scenario() -> None:
        budget = InboundBudget(MiB)
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            move = InboundMove(budget, pool, max_state_bytes=64 * MiB, segments=segments)
            body = pieces(EnvelopeEncoder(META, bytes(2 * MiB)))
            with pytest.raises(LimitExceededError, match="inbound move budget"):
                await move.run(body, lambda m: False)
            assert move.sink is None
            move.release()
            assert budget.used == 0

    run(scenario())


def test_a_known_transfer_stops_decoding_at_its_metadata(segments: SegmentFactory) -> None:
    seen: list[str] = []

    async def scenario() -> None:
        budget = InboundBudget(64 * MiB)
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            move = InboundMove(budget, pool, max_state_bytes=64 * MiB, segments=segments)

            def known(metadata: EnvelopeMetadata) -> bool:
                seen.append(metadata.transfer_id)
                return True

            assert await move.run(pieces(EnvelopeEncoder(META, os.urandom(4 * MiB))), known) is None
            move.release()
            assert budget.used == 0

    run(scenario())
    assert seen[0] == META.transfer_id
