"""The SPSC ring: framing around the wrap point, full detection, corruption handling."""

from __future__ import annotations

import struct
from collections import deque

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from paglets.core.errors import FrameError, LimitExceededError
from paglets.runtime._ring import (
    ALIGN,
    HEADER_SIZE,
    MIN_CAPACITY,
    RECORD_HEADER,
    RingReader,
    RingWriter,
    format_ring,
    max_frame_for,
    ring_size,
)

WRITE_CURSOR = 64
READ_CURSOR = 128


def _ring(capacity: int) -> tuple[bytearray, RingWriter, RingReader]:
    buf = bytearray(ring_size(capacity))
    format_ring(buf)
    return buf, RingWriter(buf), RingReader(buf)


def _record_size(length: int) -> int:
    return (RECORD_HEADER + length + ALIGN - 1) // ALIGN * ALIGN


# --- model-based test around the wrap point ------------------------------------------------------------


class RingMachine(RuleBasedStateMachine):
    """Interleaved writes and reads on a tiny ring; an independent model of the cursors says whether each
    write must fit, and a deque says what each read must return."""

    @initialize(capacity=st.sampled_from([64, 72, 96, 128, 136, 200, 256]))
    def setup(self, capacity: int) -> None:
        self.capacity = capacity
        self.buf, self.writer, self.reader = _ring(capacity)
        self.max_frame = max_frame_for(capacity)
        self.expected: deque[bytes] = deque()
        self.write = 0  # model cursors
        self.read = 0
        self.peeked: list[bytes] = []
        self.serial = 0

    def _payload(self, length: int) -> bytes:
        self.serial += 1
        stamp = self.serial.to_bytes(4, "little")
        return (stamp * (length // 4 + 1))[:length]

    def _must_fit(self, length: int) -> tuple[bool, int]:
        size = _record_size(length)
        offset = self.write % self.capacity
        tail = self.capacity - offset
        needed = size if size <= tail else tail + size
        return needed <= self.capacity - (self.write - self.read), needed

    def _write(self, length: int) -> None:
        payload = self._payload(length)
        fits, needed = self._must_fit(length)
        assert self.writer.try_write(payload) is fits
        event("full" if not fits else "wrapped" if needed > _record_size(length) else "fits")
        if fits:
            self.write += needed
            self.expected.append(payload)

    @rule(length=st.integers(min_value=0, max_value=128))
    def write_any(self, length: int) -> None:
        self._write(min(length, self.max_frame))

    @rule(delta=st.integers(min_value=-9, max_value=9))
    def write_to_the_end(self, delta: int) -> None:
        # Sizes around "exactly fills the space before the end" (delta 0; -7..0 pad up to the end)
        # and just over it (delta > 0: the record must wrap to offset 0).
        tail = self.capacity - self.write % self.capacity
        length = tail - RECORD_HEADER + delta
        if 0 <= length <= self.max_frame:
            self._write(length)

    @rule(parts=st.lists(st.integers(min_value=0, max_value=20), max_size=4))
    def write_parts(self, parts: list[int]) -> None:
        length = sum(parts)
        if length > self.max_frame:
            return
        payload = self._payload(length)
        chunks, at = [], 0
        for part in parts:
            chunks.append(payload[at : at + part])
            at += part
        fits, needed = self._must_fit(length)
        assert self.writer.try_write_parts(*chunks) is fits
        if fits:
            self.write += needed
            self.expected.append(payload)

    @precondition(lambda self: not self.peeked)
    @rule()
    def read_one(self) -> None:
        frame = self.reader.read()
        if not self.expected:
            assert frame is None
            return
        assert frame == self.expected.popleft()
        self.read = self.write - self.reader.pending()

    @rule(count=st.integers(min_value=1, max_value=5))
    def peek_some(self, count: int) -> None:
        views = self.reader.peek_batch(count)
        want = list(self.expected)[len(self.peeked) : len(self.peeked) + count]
        assert [bytes(v) for v in views] == want
        self.peeked.extend(bytes(v) for v in views)
        # Peeking releases nothing: the writer still sees the space as used.
        assert self.writer.pending() == self.write - self.read

    @precondition(lambda self: bool(self.peeked))
    @rule()
    def advance(self) -> None:
        self.reader.advance()
        for frame in self.peeked:
            assert frame == self.expected.popleft()
        self.peeked.clear()
        self.read = self.write - self.reader.pending()

    @precondition(lambda self: not self.peeked)
    @rule(count=st.integers(min_value=1, max_value=6))
    def read_batch(self, count: int) -> None:
        frames = self.reader.read_batch(count)
        want = [self.expected.popleft() for _ in range(min(count, len(self.expected)))]
        assert frames == want
        self.read = self.write - self.reader.pending()

    @invariant()
    def cursors_agree(self) -> None:
        used = self.write - self.read
        assert 0 <= used <= self.capacity
        assert self.writer.free_space() == self.capacity - used
        assert self.reader.pending() == used
        if not self.expected:
            assert used == 0


TestRingMachine = RingMachine.TestCase
TestRingMachine.settings = settings(max_examples=150, stateful_step_count=60, deadline=None)


# --- plain behaviour -------------------------------------------------------------------------------------


def test_round_trip_and_views() -> None:
    _buf, writer, reader = _ring(1024)
    assert writer.try_write(b"hello")
    assert writer.try_write(bytearray(b"world!"))
    assert writer.try_write(memoryview(struct.pack("=2Q", 1, 2)).cast("Q"))
    view = reader.peek()
    assert view is not None
    assert bytes(view) == b"hello"
    reader.advance()
    assert reader.read() == b"world!"
    assert reader.read() == struct.pack("=2Q", 1, 2)
    assert reader.read() is None
    assert reader.peek() is None


def test_empty_frame() -> None:
    _buf, writer, reader = _ring(64)
    assert writer.try_write(b"")
    assert reader.read() == b""
    assert reader.read() is None


def test_largest_frame_always_fits_an_empty_ring_wherever_the_cursors_are() -> None:
    capacity = 256
    _buf, writer, reader = _ring(capacity)
    biggest = b"z" * writer.max_frame
    for shift in range(0, capacity, ALIGN):
        assert writer.try_write(biggest), shift
        assert reader.read() == biggest
        if shift + ALIGN < capacity:  # move the cursors by one slot
            assert writer.try_write(b"")
            assert reader.read() == b""


def test_too_large_frames_are_refused_clearly() -> None:
    _buf, writer, _reader = _ring(256)
    with pytest.raises(LimitExceededError, match="handoff"):
        writer.try_write(b"x" * (writer.max_frame + 1))
    with pytest.raises(LimitExceededError):
        writer.try_write_parts(b"x" * writer.max_frame, b"y")


def test_full_ring_refuses_then_accepts_after_read() -> None:
    _buf, writer, reader = _ring(64)
    frame = b"a" * 8  # 16-byte records
    written = 0
    while writer.try_write(frame):
        written += 1
    assert written == 4
    assert writer.free_space() == 0
    assert reader.read() == frame
    assert writer.try_write(frame)


def test_space_request_is_seen_once() -> None:
    _buf, writer, reader = _ring(64)
    assert not reader.space_requested()
    writer.request_space()
    assert reader.space_requested()
    assert not reader.space_requested()
    writer.request_space()
    writer.request_space()
    assert reader.space_requested()
    assert not reader.space_requested()


def test_capacity_validation() -> None:
    with pytest.raises(ValueError, match="multiple"):
        ring_size(100)
    with pytest.raises(ValueError, match="multiple"):
        ring_size(MIN_CAPACITY - ALIGN)
    with pytest.raises(ValueError, match="writable"):
        RingWriter(bytes(ring_size(64)))


def test_unformatted_or_mismatched_buffer_is_refused() -> None:
    with pytest.raises(FrameError, match="magic"):
        RingReader(bytearray(ring_size(64)))
    buf = bytearray(ring_size(128))
    format_ring(buf)
    with pytest.raises(FrameError, match="capacity"):
        RingReader(buf + bytearray(8))


def test_release_lets_the_buffer_resize() -> None:
    buf, writer, reader = _ring(64)
    writer.release()
    reader.release()
    buf.extend(b"more")  # no exported views left


# --- corruption ---------------------------------------------------------------------------------------------


def _set_word(buf: bytearray, offset: int, value: int) -> None:
    struct.pack_into("=Q", buf, offset, value)


@pytest.mark.parametrize(
    ("offset", "value"),
    [
        (WRITE_CURSOR, 1 << 40),  # write cursor far beyond the ring
        (WRITE_CURSOR, 3),  # misaligned
        (READ_CURSOR, 1 << 40),  # (for the writer) read cursor ahead of the write cursor
    ],
)
def test_corrupt_cursor_raises_frame_error(offset: int, value: int) -> None:
    buf, writer, reader = _ring(128)
    assert writer.try_write(b"abc")
    _set_word(buf, offset, value)
    operation = (lambda: writer.try_write(b"x")) if offset == READ_CURSOR else reader.read
    with pytest.raises(FrameError):
        operation()


def test_corrupt_record_header_raises_frame_error() -> None:
    buf, writer, reader = _ring(128)
    assert writer.try_write(b"abcdef")
    struct.pack_into("=I", buf, HEADER_SIZE, 100)  # length without a matching check word
    with pytest.raises(FrameError, match="corrupt"):
        reader.read()


def test_impossible_length_raises_frame_error() -> None:
    buf, writer, reader = _ring(128)
    assert writer.try_write(b"abcdef")
    length = 1000
    struct.pack_into("=II", buf, HEADER_SIZE, length, length ^ 0xA5C35A3C)
    with pytest.raises(FrameError, match="impossible"):
        reader.read()


def test_wrap_marker_at_offset_zero_raises_frame_error() -> None:
    buf, writer, reader = _ring(128)
    assert writer.try_write(b"abcdef")
    struct.pack_into("=II", buf, HEADER_SIZE, 0xFFFFFFFF, 0xFFFFFFFF ^ 0xA5C35A3C)
    with pytest.raises(FrameError, match="wrap"):
        reader.read()


@settings(max_examples=300, deadline=None)
@given(
    frames=st.lists(st.binary(max_size=40), min_size=1, max_size=6),
    scribbles=st.lists(
        st.tuples(st.integers(min_value=0, max_value=ring_size(128) - 1), st.integers(0, 255)),
        min_size=1,
        max_size=8,
    ),
)
def test_scribbled_ring_never_hangs_or_reads_out_of_bounds(
    frames: list[bytes], scribbles: list[tuple[int, int]]
) -> None:
    buf = bytearray(ring_size(128))
    format_ring(buf)
    writer = RingWriter(buf)
    reader = RingReader(buf)
    for frame in frames:
        writer.try_write(frame)
    for offset, value in scribbles:
        buf[offset] = value
    # Whatever happens, each read returns a frame within the ring's limits or raises FrameError, and
    # reading terminates (at most capacity/8 records can be consumed).
    try:
        for _ in range(128 // ALIGN + 1):
            frame = reader.read()
            if frame is None:
                break
            assert len(frame) <= reader.max_frame
        else:
            pytest.fail("reader returned more records than the ring can hold")
    except FrameError:
        pass
