"""Single-producer / single-consumer ring buffer over a caller-supplied buffer.

The ring works over *any* writable buffer: production passes a ``memoryview`` of an ``mmap`` shared by a
host and one child process, tests pass a ``bytearray``. Exactly one ``RingWriter`` and one ``RingReader``
may be attached to a ring at a time (one per process in production). Frames are opaque bytes.

Layout (all integers are native-endian u64 words; offsets in bytes)::

    0    magic+version  (constant, written once by ``format_ring``)
    8    capacity       (size of the data area; constant)
    16   flags          (reserved, 0)
    64   write cursor   (written ONLY by the writer)
    72   space wanted   (written ONLY by the writer: bumped when it found the ring full and waits)
    128  read cursor    (written ONLY by the reader)
    192  data area      (``capacity`` bytes)

The two cursor words live on different 64-byte cache lines, so the two processes never write the same
line. ``ring_size(capacity)`` gives the buffer size for a capacity.

Cursor rules
    Cursors are monotonic byte counts since the ring was formatted; they never wrap (2**64 bytes is
    centuries at memory speed). The byte at cursor ``c`` lives at data offset ``c % capacity``.
    ``read <= write <= read + capacity`` always holds; ``write - read`` bytes are in use. Each side
    keeps a private copy of the cursor it owns and never trusts the shared copy of its own cursor after
    attaching, so a peer scribbling on the header cannot move it. The peer's cursor is re-read and
    validated on every operation.

Framing
    A record is an 8-byte header (u32 length, u32 ``length ^ CHECK``) followed by the payload, padded
    to the next multiple of 8, so every record starts 8-aligned. A record never straddles the end of the
    data area: when it does not fit before the end, the writer puts a *wrap marker* (length
    ``WRAP_LENGTH``) at the current offset, and the record starts at offset 0. The wrap marker and the
    record are published together, with one store of the write cursor. The largest payload is
    ``capacity // 2 - 8`` (rounded down to 8): that guarantees an empty ring can always take one frame
    wherever the cursors stand. Bigger payloads are refused with ``LimitExceededError``; callers send
    them through a handoff segment instead.

Worst-case cost
    ``try_write``: O(1) header work plus one copy of the payload. ``peek``: O(1), no copy; it skips at
    most one wrap marker, so a corrupt ring can never make it loop. Every length and cursor read from
    shared memory is bounds-checked before use; anything inconsistent raises ``FrameError``.

Memory ordering
    The writer copies the payload, *then* publishes the write cursor with a single aligned 8-byte store.
    The reader loads the write cursor, *then* reads the payload, and publishes the read cursor only after
    it is done with the payload (``advance``), which is what frees the space for the writer. The u64
    words are accessed through a ``memoryview`` cast to ``'Q'``, which CPython reads and writes with one
    ``memcpy`` of 8 bytes (a single aligned load or store, atomic on x86-64 and aarch64), so a cursor
    is never seen half-written. On x86-64 (total store order: stores become visible in program order,
    loads are not reordered with older loads) program order is enough for the payload to be visible
    before the cursor that covers it, and for the reader to finish with a payload before the writer
    sees it released. Pure Python cannot issue a memory fence, so on weakly ordered CPUs (aarch64) a
    reader could in theory see a new write cursor before the payload it covers; supporting them needs
    a release/acquire fence from a small native helper. The channel's doorbell system calls (full
    barriers) narrow but do not close that window. x86-64 Linux is the supported target.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Final

from paglets.core.errors import FrameError, LimitExceededError

if TYPE_CHECKING:
    from typing_extensions import Buffer

__all__ = [
    "ALIGN",
    "HEADER_SIZE",
    "MIN_CAPACITY",
    "RECORD_HEADER",
    "RingReader",
    "RingWriter",
    "format_ring",
    "max_frame_for",
    "ring_size",
]

#: Records start at multiples of this; also the size of a record header.
ALIGN: Final = 8
#: Bytes before the data area (three cache lines: constants, writer words, reader word).
HEADER_SIZE: Final = 192
#: Size of a record header: u32 length + u32 check word.
RECORD_HEADER: Final = 8
#: Smallest data area accepted: room for a few tiny frames, so tests can exercise wrapping cheaply.
MIN_CAPACITY: Final = 64
#: Largest data area accepted: record lengths are u32.
MAX_CAPACITY: Final = 1 << 31

_MAGIC: Final = 0x50474C52_00000001  # "PGLR", layout version 1
_CHECK: Final = 0xA5C3_5A3C  # a record header's second word is ``length ^ _CHECK``
#: Length field value of a wrap marker: the rest of the data area is padding.
WRAP_LENGTH: Final = 0xFFFF_FFFF

# Word indices in the header (u64 units).
_W_MAGIC: Final = 0
_W_CAPACITY: Final = 1
_W_FLAGS: Final = 2
_W_WRITE: Final = 8
_W_SPACE_WANTED: Final = 9
_W_READ: Final = 16

_RECORD = struct.Struct("=II")
_WRAP_RECORD: Final = _RECORD.pack(WRAP_LENGTH, WRAP_LENGTH ^ _CHECK)


def ring_size(capacity: int) -> int:
    """Bytes of buffer needed for a ring whose data area holds ``capacity`` bytes."""
    _check_capacity(capacity)
    return HEADER_SIZE + capacity


def max_frame_for(capacity: int) -> int:
    """Largest payload a ring of ``capacity`` accepts (see "Framing" above)."""
    return (capacity // 2 - RECORD_HEADER) & ~(ALIGN - 1)


def _check_capacity(capacity: int) -> None:
    if capacity % ALIGN or not MIN_CAPACITY <= capacity <= MAX_CAPACITY:
        raise ValueError(
            f"ring capacity must be a multiple of {ALIGN} in [{MIN_CAPACITY}, {MAX_CAPACITY}], got {capacity}"
        )


def _byte_view(buf: Buffer) -> memoryview:
    view = memoryview(buf)
    if view.readonly:
        raise ValueError("a ring needs a writable buffer")
    if not view.c_contiguous:
        raise ValueError("a ring needs a contiguous buffer")
    return view.cast("B") if view.format != "B" or view.ndim != 1 else view


def format_ring(buf: Buffer) -> int:
    """Write a fresh header into ``buf`` (the whole buffer is the ring) and return its capacity.

    Only the creator of a ring calls this, before any reader or writer attaches.
    """
    view = _byte_view(buf)
    capacity = len(view) - HEADER_SIZE
    _check_capacity(capacity)
    view[:HEADER_SIZE] = bytes(HEADER_SIZE)
    words = view[:HEADER_SIZE].cast("Q")
    words[_W_CAPACITY] = capacity
    words[_W_MAGIC] = _MAGIC
    words.release()
    view.release()
    return capacity


class _RingSide:
    """What readers and writers share: the validated header, the data view, the capacity."""

    __slots__ = ("_capacity", "_data", "_max_frame", "_view", "_words")

    def __init__(self, buf: Buffer) -> None:
        view = _byte_view(buf)
        if len(view) < HEADER_SIZE + MIN_CAPACITY:
            view.release()
            raise FrameError("buffer too small for a ring", fault="local")
        words = view[:HEADER_SIZE].cast("Q")
        capacity = words[_W_CAPACITY]
        problem = None
        if words[_W_MAGIC] != _MAGIC:
            problem = "ring header has a bad magic or version (not formatted?)"
        elif capacity != len(view) - HEADER_SIZE or capacity % ALIGN or capacity < MIN_CAPACITY:
            problem = f"ring header declares capacity {capacity} for a {len(view)}-byte buffer"
        if problem is not None:
            words.release()
            view.release()
            raise FrameError(problem)
        self._view = view
        self._words = words
        self._data = view[HEADER_SIZE:]
        self._capacity: int = capacity
        self._max_frame = max_frame_for(capacity)

    @property
    def capacity(self) -> int:
        """Size of the data area in bytes."""
        return self._capacity

    @property
    def max_frame(self) -> int:
        """Largest payload this ring accepts."""
        return self._max_frame

    def release(self) -> None:
        """Drop this side's views of the buffer (so an ``mmap`` can be closed). Idempotent."""
        self._data.release()
        self._words.release()
        self._view.release()

    def _used(self, read: int, write: int) -> int:
        used = write - read
        if used < 0 or used > self._capacity or used % ALIGN:
            raise FrameError(f"ring cursors are inconsistent (read={read}, write={write})")
        return used


class RingWriter(_RingSide):
    """The producing side of a ring. Not thread-safe: callers serialise writes."""

    __slots__ = ("_space_wanted", "_write")

    def __init__(self, buf: Buffer) -> None:
        super().__init__(buf)
        write = self._words[_W_WRITE]
        self._used(self._words[_W_READ], write)
        self._write: int = write
        self._space_wanted: int = self._words[_W_SPACE_WANTED]

    def free_space(self) -> int:
        """Bytes of the data area not in use (a frame also needs a header and maybe a wrap)."""
        return self._capacity - self._used(self._words[_W_READ], self._write)

    def pending(self) -> int:
        """Bytes written that the reader has not released yet."""
        return self._used(self._words[_W_READ], self._write)

    def _reserve(self, length: int) -> int:
        """Where a record of ``length`` payload bytes goes (data offset), or -1 when the ring is full.

        On success the record header (and any wrap marker) is written and the private write cursor
        moved; the caller copies the payload, then publishes the cursor.
        """
        if length > self._max_frame:
            raise LimitExceededError(
                f"frame of {length} bytes exceeds the ring's {self._max_frame}-byte limit; "
                "send it through a handoff segment",
                fault="local",
            )
        capacity = self._capacity
        write = self._write
        size = (RECORD_HEADER + length + ALIGN - 1) & ~(ALIGN - 1)
        offset = write % capacity
        tail = capacity - offset
        needed = size if size <= tail else tail + size
        if needed > capacity - self._used(self._words[_W_READ], write):
            return -1
        if size > tail:
            self._data[offset : offset + RECORD_HEADER] = _WRAP_RECORD
            offset = 0
        _RECORD.pack_into(self._data, offset, length, length ^ _CHECK)
        self._write = write + needed
        return offset + RECORD_HEADER

    def try_write(self, data: Buffer) -> bool:
        """Append one frame; False (nothing written) when the ring lacks space right now.

        Raises ``LimitExceededError`` for a frame larger than ``max_frame``.
        """
        if type(data) is bytes or type(data) is bytearray:
            length = len(data)
        else:
            data = _flat(data)
            length = data.nbytes
        start = self._reserve(length)
        if start < 0:
            return False
        if length:
            self._data[start : start + length] = data
        self._words[_W_WRITE] = self._write  # publish: payload first, cursor last
        return True

    def try_write_parts(self, *parts: Buffer) -> bool:
        """Append one frame made of the concatenation of ``parts`` (no intermediate join)."""
        views = [_flat(p) for p in parts]
        length = sum(v.nbytes for v in views)
        start = self._reserve(length)
        if start < 0:
            return False
        data = self._data
        for view in views:
            end = start + view.nbytes
            data[start:end] = view
            start = end
        self._words[_W_WRITE] = self._write
        return True

    def request_space(self) -> None:
        """Tell the reader that the writer is waiting for space (see ``RingReader.space_requested``)."""
        self._space_wanted = (self._space_wanted + 1) & 0xFFFF_FFFF_FFFF_FFFF
        self._words[_W_SPACE_WANTED] = self._space_wanted


class RingReader(_RingSide):
    """The consuming side of a ring. Not thread-safe.

    ``peek``/``peek_batch`` return views straight into the ring; they stay valid until ``advance``,
    which releases every frame returned since the previous ``advance``.
    """

    __slots__ = ("_next", "_read", "_space_seen")

    def __init__(self, buf: Buffer) -> None:
        super().__init__(buf)
        read = self._words[_W_READ]
        self._used(read, self._words[_W_WRITE])
        self._read: int = read  # published read cursor
        self._next: int = read  # end of the frames handed out since the last advance
        self._space_seen: int = self._words[_W_SPACE_WANTED]

    def pending(self) -> int:
        """Bytes written by the writer that this reader has not released yet."""
        return self._used(self._read, self._words[_W_WRITE])

    def _parse(self, cursor: int, write: int) -> tuple[int, int, int]:
        """Locate the record at ``cursor``: (payload start, payload length, next cursor); -1 if none."""
        available = self._used(cursor, write) if cursor != write else 0
        if not available:
            return -1, 0, cursor
        capacity = self._capacity
        offset = cursor % capacity
        data = self._data
        length, check = _RECORD.unpack_from(data, offset)
        if check != length ^ _CHECK:
            raise FrameError(f"corrupt ring record header at cursor {cursor}")
        if length == WRAP_LENGTH:
            skip = capacity - offset
            if offset == 0 or skip >= available:
                raise FrameError(f"misplaced wrap marker at cursor {cursor}")
            cursor += skip
            available -= skip
            offset = 0
            length, check = _RECORD.unpack_from(data, 0)
            if check != length ^ _CHECK or length == WRAP_LENGTH:
                raise FrameError(f"corrupt ring record header at cursor {cursor}")
        size = (RECORD_HEADER + length + ALIGN - 1) & ~(ALIGN - 1)
        if length > self._max_frame or size > available or offset + size > capacity:
            raise FrameError(f"ring record at cursor {cursor} declares an impossible length {length}")
        return offset + RECORD_HEADER, length, cursor + size

    def peek(self) -> memoryview | None:
        """A zero-copy view of the next frame not handed out yet, or None when there is none."""
        start, length, following = self._parse(self._next, self._words[_W_WRITE])
        if start < 0:
            return None
        self._next = following
        return self._data[start : start + length]

    def peek_batch(self, max_frames: int) -> list[memoryview]:
        """Up to ``max_frames`` zero-copy views (all valid until ``advance``)."""
        write = self._words[_W_WRITE]
        frames: list[memoryview] = []
        cursor = self._next
        data = self._data
        while len(frames) < max_frames:
            start, length, following = self._parse(cursor, write)
            if start < 0:
                break
            frames.append(data[start : start + length])
            cursor = following
        self._next = cursor
        return frames

    def advance(self) -> None:
        """Release every frame handed out so far; their views must not be used afterwards."""
        if self._next != self._read:
            self._read = self._next
            self._words[_W_READ] = self._read

    def read(self) -> bytes | None:
        """Copy out the next frame and release it (convenience); None when the ring is empty."""
        view = self.peek()
        if view is None:
            return None
        frame = bytes(view)
        self.advance()
        return frame

    def read_batch(self, max_frames: int) -> list[bytes]:
        """Copy out and release up to ``max_frames`` frames with one publish of the read cursor."""
        write = self._words[_W_WRITE]
        frames: list[bytes] = []
        cursor = self._next
        data = self._data
        while len(frames) < max_frames:
            start, length, following = self._parse(cursor, write)
            if start < 0:
                break
            frames.append(bytes(data[start : start + length]))
            cursor = following
        self._next = cursor
        self.advance()
        return frames

    def space_requested(self) -> bool:
        """True once per ``RingWriter.request_space`` seen since the last call.

        The caller then wakes the writer (the channel rings the writer's space doorbell).
        """
        wanted = self._words[_W_SPACE_WANTED]
        if wanted == self._space_seen:
            return False
        self._space_seen = wanted
        return True


def _flat(data: Buffer) -> memoryview:
    view = memoryview(data)
    if view.format != "B" or view.ndim != 1:
        view = view.cast("B")
    return view
