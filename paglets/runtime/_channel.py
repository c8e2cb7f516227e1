"""One host <-> child channel: two mmap rings, eventfd doorbells, a unix socket for fds and death.

Resources (created by ``Channel.create`` in the host; the child rebuilds its side from the same fds)::

    memfd         two rings (``_ring``): host->child at offset 0, child->host at ``region``
    bell_to_child eventfd: the host rings it after writing frames; the child waits on it
    bell_to_host  eventfd: the child rings it after writing frames (and when the host asked for space)
    space_bell    eventfd: the host rings it when the child asked for space in the child->host ring
    socket        SOCK_SEQPACKET pair: handoff fds (``_handoff``) and death detection (EOF = peer gone)

The child receives ``ChildFds.fds`` in that order (memfd, bell_to_child, bell_to_host, space_bell,
socket). The host must call ``ChildFds.close()`` once the child (or the zygote) has them, otherwise the
host holds the child's socket end open and never sees EOF.

Doorbell rules (no lost wakeup)
    A writer publishes a frame, *then* writes 1 to the peer's eventfd, for every send. A reader clears
    its eventfd (read), *then* drains every frame in the ring. A frame published before the clear is
    drained now; one published after it rings again. The eventfds are non-blocking; a read of an
    eventfd at 0 is simply "nothing new".

Ring full
    Rare (frames above ``INLINE_THRESHOLD`` should go through handoff segments and rings hold thousands
    of small frames). The writer bumps the ring's *space wanted* word and retries; a reader that sees
    the word change after releasing frames rings the writer's doorbell (the host's own doorbell for the
    host, ``space_bell`` for the child). Because that handshake could in theory miss a wakeup on a CPU
    that reorders a store after a later load, writers also retry on a timer (host) or a poll timeout
    (child) with a capped backoff. The host never blocks its event loop: it queues frames in order (at
    most ``HOST_QUEUE_LIMIT`` bytes) and flushes them when space appears. The child blocks in ``send``
    for at most its timeout. Both sides keep draining their incoming ring while their outgoing ring is
    full, so two full rings cannot deadlock.

Frames handed to the host callback
    By default ``on_frames`` gets ``list[bytes]`` (copies). With ``attach(..., copy=False)`` it gets
    ``list[memoryview]`` straight into the ring, valid only until the callback returns: copy whatever
    you keep, including ``msgspec.Raw`` values decoded from them (they point into the ring).

Threads
    ``HostChannel`` belongs to its event loop thread (``send_large``'s copy can be done off-loop with
    ``OutgoingSegment.from_payload`` then ``send_segment`` on the loop). ``ChildChannel.send*`` are
    thread-safe (one lock); so is ``receive`` (each frame goes to exactly one caller, in order).

Both sides live in this one module (past the ~600-line guideline) because they share the memory
layout, the fd order, the doorbell and ring-full rules above and the socket message parsing; keeping
them side by side is what keeps the two halves of each rule in step.
"""

from __future__ import annotations

import itertools
import mmap
import os
import select
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Final

import msgspec

from paglets.core.errors import FrameError, LimitExceededError, PagletCrashedError, PagletError
from paglets.runtime._handoff import SEGMENT_MESSAGE, HandoffRef, OutgoingSegment, Segment, SegmentTable
from paglets.runtime._ring import HEADER_SIZE, RingReader, RingWriter, format_ring, ring_size
from paglets.wire.limits import KiB, MiB

if TYPE_CHECKING:
    import asyncio  # annotations only: the child side must not pay for importing asyncio

    from typing_extensions import Buffer

__all__ = [
    "HOST_QUEUE_LIMIT",
    "INLINE_THRESHOLD",
    "RING_CAPACITY",
    "Channel",
    "ChannelClosedError",
    "ChannelStatistics",
    "ChildChannel",
    "ChildFds",
    "HostChannel",
    "IpcTimeoutError",
]

#: Data bytes per ring. Every idle paglet keeps two rings mapped, and pages it ever touched stay
#: resident (shared between host and child, so half of each counts toward each side's PSS): 256 KiB
#: keeps that at most 256 KiB of the 4 MiB PSS budget, while holding thousands of small frames and
#: several ``INLINE_THRESHOLD`` frames.
RING_CAPACITY: Final = 256 * KiB

#: Payloads above this size should go through a handoff segment (the caller decides; the ring itself
#: accepts up to ``capacity // 2 - 8``). A handoff costs a memfd, a few system calls and a mapping (tens
#: of microseconds), about what copying 64 KiB in and out of the ring costs, and keeps the ring free
#: for small frames.
INLINE_THRESHOLD: Final = 64 * KiB

#: Frames the host hands to ``on_frames`` per call; more are drained on the next loop iteration, so
#: a chatty child cannot starve the other callbacks of the loop.
MAX_FRAMES_PER_WAKE: Final = 1024

#: Bytes of frames the host queues while its ring to a child is full. Mailboxes bound messages
#: upstream; this only catches a child that stopped reading while the host kept sending.
HOST_QUEUE_LIMIT: Final = 64 * MiB

#: Default seconds a child ``send`` waits for ring space before ``IpcTimeoutError``.
SEND_TIMEOUT: Final = 10.0

#: Retry delays (seconds) while a ring is full and no space doorbell came: first and largest.
_RETRY_FIRST: Final = 0.001
_RETRY_MAX: Final = 0.05

#: Bytes received per socket message (a segment message is 16; more is a protocol error).
_SOCKET_RECV: Final = 64

_FD_COUNT: Final = 5


class ChannelClosedError(PagletCrashedError):
    """The peer closed the channel or its process died."""


class IpcTimeoutError(PagletError, TimeoutError):
    """A bounded IPC wait (ring space, a handoff fd, a zygote reply) ran out of time."""


class ChannelStatistics(msgspec.Struct, frozen=True):
    """Counters of one channel side."""

    frames_sent: int
    frames_received: int
    ring_full_events: int
    queued_frames: int
    queued_bytes: int
    segments_sent: int
    segments_pending: int
    segments_open: int
    closed: bool


class ChildFds:
    """The fds a child needs, in the documented order. ``close`` drops the host's copies of the two
    that only the child uses (the memfd and the child's socket end); the eventfds stay with the host.
    """

    __slots__ = ("_closed", "fds")

    def __init__(self, fds: tuple[int, int, int, int, int]) -> None:
        self.fds = fds
        self._closed = False

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            os.close(self.fds[0])
            os.close(self.fds[4])


def _new_eventfd() -> int:
    return os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)


def _ring(fd: int, value: int = 1) -> None:
    os.eventfd_write(fd, value)


def _clear(fd: int) -> None:
    try:
        os.eventfd_read(fd)
    except BlockingIOError:
        pass


def _recv_segment(sock: socket.socket, table: SegmentTable) -> bool:
    """Receive one segment message into ``table``; False on EOF. Raises BlockingIOError when empty."""
    msg, fds, flags, _addr = socket.recv_fds(
        sock, _SOCKET_RECV, 4, socket.MSG_DONTWAIT | socket.MSG_CMSG_CLOEXEC
    )
    if not msg and not fds:
        return False
    if len(msg) != SEGMENT_MESSAGE.size or len(fds) != 1 or flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
        for fd in fds:
            os.close(fd)
        raise FrameError(
            f"malformed handoff message on the channel socket ({len(msg)} bytes, {len(fds)} fds)"
        )
    segment_id, length = SEGMENT_MESSAGE.unpack(msg)
    table.add_received(segment_id, length, fds[0])
    return True


def _ref_parts(ref: HandoffRef | int, length: int | None) -> tuple[int, int]:
    if isinstance(ref, HandoffRef):
        return ref.segment_id, ref.length
    if length is None:
        raise TypeError("open_handoff(segment_id, length) needs the length")
    return ref, length


class _Ends:
    """The mapped memory and both rings of one side; shared setup of host and child."""

    __slots__ = ("map", "reader", "writer")

    def __init__(self, mapping: mmap.mmap, write_at: int, read_at: int) -> None:
        self.map = mapping
        with memoryview(mapping) as view:
            self.writer = RingWriter(view[write_at : write_at + _ring_bytes(view, write_at)])
            try:
                self.reader = RingReader(view[read_at : read_at + _ring_bytes(view, read_at)])
            except BaseException:
                self.writer.release()
                raise

    def release(self) -> None:
        self.writer.release()
        self.reader.release()
        try:
            self.map.close()
        except BufferError:
            pass  # zero-copy views still alive somewhere: the mapping goes when they do


def _ring_bytes(view: memoryview, at: int) -> int:
    if at + HEADER_SIZE > len(view):
        raise FrameError("channel memory too small for its rings")
    capacity = int.from_bytes(view[at + 8 : at + 16], sys.byteorder)
    size = HEADER_SIZE + capacity
    if at + size > len(view):
        raise FrameError(f"ring at offset {at} declares capacity {capacity} beyond the channel memory")
    return size


def _region(capacity: int) -> int:
    return -(-ring_size(capacity) // mmap.PAGESIZE) * mmap.PAGESIZE


class Channel:
    """Factory of channel pairs."""

    @staticmethod
    def create(ring_capacity: int = RING_CAPACITY) -> tuple[HostChannel, ChildFds]:
        """A new channel: the host side and the fds to pass to the child (see ``ChildFds``)."""
        region = _region(ring_capacity)
        opened: list[int] = []
        mapping: mmap.mmap | None = None
        ends: _Ends | None = None
        try:
            memfd = os.memfd_create("paglets-ring", os.MFD_CLOEXEC)
            opened.append(memfd)
            os.ftruncate(memfd, 2 * region)
            mapping = mmap.mmap(memfd, 2 * region, flags=mmap.MAP_SHARED)
            with memoryview(mapping) as view:
                format_ring(view[: ring_size(ring_capacity)])
                format_ring(view[region : region + ring_size(ring_capacity)])
            ends = _Ends(mapping, 0, region)
            opened.extend(_new_eventfd() for _ in range(3))
            host_sock, child_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        except BaseException:
            for fd in opened:
                os.close(fd)
            if ends is not None:
                ends.release()
            elif mapping is not None:
                mapping.close()
            raise
        _memfd, to_child, to_host, space = opened
        host_sock.setblocking(False)
        child_fds = ChildFds((memfd, to_child, to_host, space, child_sock.detach()))
        host = HostChannel(ends, to_child, to_host, space, host_sock, child_fds)
        return host, child_fds


class HostChannel:
    """The host side of a channel, driven by an asyncio loop. See the module docstring."""

    def __init__(
        self,
        ends: _Ends,
        bell_out: int,
        bell_in: int,
        space_bell: int,
        sock: socket.socket,
        child_fds: ChildFds,
    ) -> None:
        self._ends = ends
        self._writer = ends.writer
        self._reader = ends.reader
        self._bell_out = bell_out
        self._bell_in = bell_in
        self._space_bell = space_bell
        self._sock = sock
        self._child_fds = child_fds
        self._segments = SegmentTable()
        self._segment_ids = itertools.count(1)
        self._queue: deque[bytes] = deque()
        self._queued_bytes = 0
        self._socket_queue: deque[tuple[bytes, OutgoingSegment]] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._on_frames: Callable[[Any], object] | None = None
        self._on_closed: Callable[[], object] | None = None
        self._copy = True
        self._retry: asyncio.TimerHandle | None = None
        self._retry_delay = _RETRY_FIRST
        self._drain_scheduled = False
        self._writing_socket = False
        self._closed = False
        self._peer_closed = False
        #: Why the channel closed: None while open or after a clean EOF / ``close``; the error when a
        #: corrupt ring or socket message ended it.
        self.close_reason: BaseException | None = None
        self._frames_sent = 0
        self._frames_received = 0
        self._ring_full = 0
        self._segments_sent = 0

    # --- properties ---------------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def max_frame(self) -> int:
        """Largest frame ``send`` accepts; bigger payloads need ``send_large``."""
        return self._writer.max_frame

    # --- wiring -------------------------------------------------------------------------------------

    def attach(
        self,
        loop: asyncio.AbstractEventLoop,
        on_frames: Callable[[list[bytes]], object] | Callable[[list[memoryview]], object],
        on_closed: Callable[[], object],
        *,
        copy: bool = True,
    ) -> None:
        """Start delivering frames on ``loop`` (call on the loop thread).

        ``on_frames`` receives every available frame per wake (at most ``MAX_FRAMES_PER_WAKE``), in
        order. ``on_closed`` is called exactly once when the peer closes or dies (after the frames it
        wrote before dying were delivered), or when the ring is found corrupt (``close_reason``); it is
        not called for a local ``close``. The channel releases its resources right after ``on_closed``.
        """
        if self._closed:
            raise ChannelClosedError("channel is closed")
        if self._loop is not None:
            raise RuntimeError("channel already attached")
        self._loop = loop
        self._on_frames = on_frames
        self._on_closed = on_closed
        self._copy = copy
        loop.add_reader(self._bell_in, self._on_doorbell)
        loop.add_reader(self._sock.fileno(), self._on_socket)
        if self._queue:
            self._flush()
        if self._socket_queue:
            self._flush_socket()
        loop.call_soon(self._on_doorbell)  # frames that arrived before attach; never inside attach()

    # --- sending ------------------------------------------------------------------------------------

    def send(self, frame: Buffer) -> None:
        """Send one frame; never blocks. Raises ``LimitExceededError`` past ``max_frame`` or when the
        host-side queue is full, ``ChannelClosedError`` once closed. A frame that has to wait in the
        queue is copied, so the caller may reuse its buffer at once."""
        if self._closed:
            raise ChannelClosedError("channel is closed")
        if not self._queue and self._writer.try_write(frame):
            _ring(self._bell_out)
            self._frames_sent += 1
            return
        self._enqueue(frame)

    def send_batch(self, frames: Sequence[Buffer]) -> None:
        """Send several frames in order with one doorbell (same rules as ``send``)."""
        if self._closed:
            raise ChannelClosedError("channel is closed")
        written = 0
        try:
            if not self._queue:
                writer = self._writer
                for frame in frames:
                    if not writer.try_write(frame):
                        break
                    written += 1
        finally:  # ring for what was written even if a later frame was refused
            if written:
                _ring(self._bell_out)
                self._frames_sent += written
        for frame in frames[written:]:
            self._enqueue(frame)

    def _enqueue(self, frame: Buffer) -> None:
        data = bytes(frame)
        if len(data) > self._writer.max_frame:
            raise LimitExceededError(
                f"frame of {len(data)} bytes exceeds the ring's {self._writer.max_frame}-byte limit; "
                "send it through a handoff segment",
                fault="local",
            )
        if self._queued_bytes + len(data) > HOST_QUEUE_LIMIT:
            raise LimitExceededError(
                f"more than {HOST_QUEUE_LIMIT} bytes queued for a child that does not read", fault="local"
            )
        if not self._queue:
            self._ring_full += 1
        self._queue.append(data)
        self._queued_bytes += len(data)
        self._flush()

    def _flush(self) -> None:
        queue = self._queue
        writer = self._writer
        written = 0
        while queue:
            if not writer.try_write(queue[0]):
                writer.request_space()
                if not writer.try_write(queue[0]):  # the reader may have freed space meanwhile
                    break
            self._queued_bytes -= len(queue.popleft())
            written += 1
        if written:
            _ring(self._bell_out)
            self._frames_sent += written
        if queue:
            if self._retry is None and self._loop is not None:
                self._retry = self._loop.call_later(self._retry_delay, self._on_retry)
        else:
            self._retry_delay = _RETRY_FIRST
            if self._retry is not None:
                self._retry.cancel()
                self._retry = None

    def _on_retry(self) -> None:
        self._retry = None
        if self._closed:
            return
        self._retry_delay = min(self._retry_delay * 2, _RETRY_MAX)
        self._flush()

    # --- handoff ------------------------------------------------------------------------------------

    def send_large(self, payload: Buffer | Sequence[Buffer]) -> HandoffRef:
        """Copy ``payload`` into a new sealed segment and send its fd; embed the returned reference in a
        frame. The copy runs on the calling thread: for tens of MiB, build the segment in a worker with
        ``OutgoingSegment.from_payload`` and pass it to ``send_segment`` on the loop."""
        return self.send_segment(OutgoingSegment.from_payload(payload))

    def create_segment(self, size: int) -> OutgoingSegment:
        """A writable segment to fill (e.g. decode or decompress into), then ``send_segment``."""
        return OutgoingSegment.allocate(size)

    def send_segment(self, segment: OutgoingSegment, length: int | None = None) -> HandoffRef:
        """Seal ``segment`` (trimmed to ``length``) and send it; the channel takes ownership of it."""
        if self._closed:
            segment.close()
            raise ChannelClosedError("channel is closed")
        try:
            segment.seal(length)
        except BaseException:
            segment.close()
            raise
        ref = HandoffRef(next(self._segment_ids), segment.length)
        self._socket_queue.append((SEGMENT_MESSAGE.pack(ref.segment_id, ref.length), segment))
        self._segments_sent += 1
        self._flush_socket()
        return ref

    def _flush_socket(self) -> None:
        queue = self._socket_queue
        while queue:
            message, segment = queue[0]
            try:
                socket.send_fds(self._sock, [message], [segment.fileno()], socket.MSG_DONTWAIT)
            except BlockingIOError:
                break
            except OSError as exc:  # peer gone: the socket's EOF closes the channel
                for _message, dropped in queue:
                    dropped.close()
                queue.clear()
                if self._loop is None:
                    raise ChannelClosedError(f"channel socket failed: {exc}") from exc
                break
            queue.popleft()
            segment.close()
        if queue and not self._writing_socket and self._loop is not None:
            self._writing_socket = True
            self._loop.add_writer(self._sock.fileno(), self._on_socket_writable)
        elif not queue and self._writing_socket and self._loop is not None:
            self._writing_socket = False
            self._loop.remove_writer(self._sock.fileno())

    def _on_socket_writable(self) -> None:
        if not self._closed:
            self._flush_socket()

    def open_handoff(self, ref: HandoffRef | int, length: int | None = None) -> Segment:
        """Map the segment a received frame names: ``open_handoff(ref)`` or
        ``open_handoff(segment_id, length)``. ``FrameError`` if it never arrived, has another length or
        is not sealed. The ``Segment`` is tracked by the channel (closed with it) unless you ``detach``
        it; use it as a context manager."""
        segment_id, length = _ref_parts(ref, length)
        if not self._segments.has(segment_id):
            self._pump_socket()
        return self._segments.open(segment_id, length)

    # --- receiving ----------------------------------------------------------------------------------

    def _on_doorbell(self) -> None:
        if self._closed:
            return
        _clear(self._bell_in)
        self._drain()
        if self._queue and not self._closed:
            self._flush()

    def _drain(self) -> None:
        self._drain_scheduled = False
        if self._closed:
            return
        reader = self._reader
        try:
            if self._copy:
                frames: list[bytes] | list[memoryview] = reader.read_batch(MAX_FRAMES_PER_WAKE)
            else:
                frames = reader.peek_batch(MAX_FRAMES_PER_WAKE)
        except FrameError as exc:
            self._fail(exc)
            return
        try:
            if frames:
                self._frames_received += len(frames)
                if self._on_frames is not None:
                    self._on_frames(frames)
        finally:  # even if the callback raised: release the views, keep draining, answer space requests
            if not self._closed:
                if not self._copy:
                    reader.advance()
                if len(frames) == MAX_FRAMES_PER_WAKE and not self._drain_scheduled and self._loop:
                    self._drain_scheduled = True
                    self._loop.call_soon(self._drain)
                if reader.space_requested():
                    _ring(self._space_bell)

    def _pump_socket(self) -> None:
        """Take every segment message waiting on the socket; notice EOF."""
        if self._peer_closed:
            return
        try:
            while _recv_segment(self._sock, self._segments):
                pass
            self._peer_closed = True
        except BlockingIOError:
            pass
        except ConnectionResetError:
            self._peer_closed = True

    def _on_socket(self) -> None:
        if self._closed:
            return
        try:
            self._pump_socket()
        except FrameError as exc:
            self._fail(exc)
            return
        if self._peer_closed:
            self._peer_gone()

    def _peer_gone(self) -> None:
        # Deliver what the peer wrote before it went away, then report.
        try:
            while not self._closed and self._reader.pending():
                before = self._frames_received
                self._drain()
                if self._frames_received == before:
                    break
        except FrameError as exc:
            self.close_reason = exc
        self._finish_closed()

    def _fail(self, exc: BaseException) -> None:
        self.close_reason = exc
        self._finish_closed()

    def _finish_closed(self) -> None:
        if self._closed:
            return
        callback = self._on_closed
        self._detach()
        self._closed = True
        try:
            if callback is not None:
                callback()
        finally:
            self._release()

    # --- closing ------------------------------------------------------------------------------------

    def _detach(self) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.remove_reader(self._bell_in)
            loop.remove_reader(self._sock.fileno())
            if self._writing_socket:
                loop.remove_writer(self._sock.fileno())
        self._writing_socket = False
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        self._on_frames = None
        self._on_closed = None

    def _release(self) -> None:
        self._ends.release()
        for fd in (self._bell_out, self._bell_in, self._space_bell):
            os.close(fd)
        self._sock.close()
        self._child_fds.close()
        self._segments.close_all()
        for _message, segment in self._socket_queue:
            segment.close()
        self._socket_queue.clear()
        self._queue.clear()
        self._queued_bytes = 0

    def close(self) -> None:
        """Release every fd, mapping, queued frame and tracked segment. Idempotent; no ``on_closed``.

        Call it on the loop thread (it unregisters the loop readers).
        """
        if self._closed:
            return
        self._detach()
        self._closed = True
        self._release()

    def statistics(self) -> ChannelStatistics:
        return ChannelStatistics(
            frames_sent=self._frames_sent,
            frames_received=self._frames_received,
            ring_full_events=self._ring_full,
            queued_frames=len(self._queue),
            queued_bytes=self._queued_bytes,
            segments_sent=self._segments_sent,
            segments_pending=self._segments.pending_count,
            segments_open=self._segments.open_count,
            closed=self._closed,
        )


class ChildChannel:
    """The child side of a channel, for a ``selectors``-driven child. See the module docstring."""

    def __init__(
        self, ends: _Ends, bell_in: int, bell_out: int, space_bell: int, sock: socket.socket
    ) -> None:
        self._ends = ends
        self._writer = ends.writer
        self._reader = ends.reader
        self._bell_in = bell_in
        self._bell_out = bell_out
        self._space_bell = space_bell
        self._sock = sock
        self._segments = SegmentTable()
        self._segment_ids = itertools.count(1)
        self._send_lock = threading.Lock()
        self._recv_lock = threading.RLock()
        self._local = threading.local()
        self._closed = False
        self._peer_closed = False
        self._frames_sent = 0
        self._frames_received = 0
        self._ring_full = 0
        self._segments_sent = 0

    @classmethod
    def from_fds(cls, fds: Sequence[int]) -> ChildChannel:
        """Rebuild the child side from ``ChildFds.fds`` as received; takes ownership of all of them
        (the memfd is closed once mapped)."""
        if len(fds) != _FD_COUNT:
            raise ValueError(f"a channel needs {_FD_COUNT} fds, got {len(fds)}")
        memfd, to_child, to_host, space, sock_fd = fds
        mapping: mmap.mmap | None = None
        try:
            size = os.fstat(memfd).st_size
            mapping = mmap.mmap(memfd, size, flags=mmap.MAP_SHARED)
            ends = _Ends(mapping, size // 2, 0)
            sock = socket.socket(fileno=sock_fd)
        except BaseException:
            if mapping is not None:
                mapping.close()
            for fd in (to_child, to_host, space, sock_fd):
                os.close(fd)
            raise
        finally:
            os.close(memfd)
        sock.setblocking(False)
        return cls(ends, to_child, to_host, space, sock)

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def max_frame(self) -> int:
        return self._writer.max_frame

    def filenos(self) -> tuple[int, int]:
        """(doorbell, socket): register both for reading in the child's selector, then call
        ``receive(0)`` when either is ready."""
        return self._bell_in, self._sock.fileno()

    # --- sending ------------------------------------------------------------------------------------

    def send(self, frame: Buffer, timeout: float = SEND_TIMEOUT) -> None:
        """Send one frame; waits at most ``timeout`` seconds for ring space (``IpcTimeoutError``).
        Raises ``ChannelClosedError`` when the host is gone. Thread-safe."""
        with self._send_lock:
            self._check_open()
            if not self._writer.try_write(frame):
                self._wait_and_write(frame, timeout)
            _ring(self._bell_out)
            self._frames_sent += 1

    def send_batch(self, frames: Sequence[Buffer], timeout: float = SEND_TIMEOUT) -> None:
        """Send several frames in order with one doorbell per ring-full wait. Thread-safe."""
        with self._send_lock:
            self._check_open()
            writer = self._writer
            deadline = time.monotonic() + timeout
            unrung = 0
            try:
                for frame in frames:
                    if not writer.try_write(frame):
                        if unrung:
                            _ring(self._bell_out)
                            unrung = 0
                        self._wait_and_write(frame, deadline - time.monotonic())
                    unrung += 1
                    self._frames_sent += 1
            finally:  # ring for what was written even if a later frame failed
                if unrung:
                    _ring(self._bell_out)

    def _wait_and_write(self, frame: Buffer, timeout: float) -> None:
        self._ring_full += 1
        deadline = time.monotonic() + timeout
        delay = _RETRY_FIRST
        poller = select.poll()
        poller.register(self._space_bell, select.POLLIN)
        poller.register(self._sock.fileno(), select.POLLIN)
        writer = self._writer
        while True:
            writer.request_space()
            if writer.try_write(frame):
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise IpcTimeoutError(f"no ring space for {timeout:.3f}s (host not reading)")
            for fd, _events in poller.poll(min(delay, remaining) * 1000):
                if fd == self._space_bell:
                    _clear(fd)
                else:
                    self._pump_socket()
            self._check_open()
            delay = min(delay * 2, _RETRY_MAX)

    def send_large(self, payload: Buffer | Sequence[Buffer], timeout: float = SEND_TIMEOUT) -> HandoffRef:
        """Copy ``payload`` into a sealed segment and send its fd; embed the reference in a frame."""
        return self.send_segment(OutgoingSegment.from_payload(payload), timeout=timeout)

    def create_segment(self, size: int) -> OutgoingSegment:
        """A writable segment to fill, then ``send_segment``."""
        return OutgoingSegment.allocate(size)

    def send_segment(
        self, segment: OutgoingSegment, length: int | None = None, timeout: float = SEND_TIMEOUT
    ) -> HandoffRef:
        """Seal ``segment`` (trimmed to ``length``), send its fd and free it. Thread-safe."""
        try:
            self._check_open()
            segment.seal(length)
            ref = HandoffRef(next(self._segment_ids), segment.length)
            message = SEGMENT_MESSAGE.pack(ref.segment_id, ref.length)
            deadline = time.monotonic() + timeout
            while True:
                try:
                    socket.send_fds(self._sock, [message], [segment.fileno()])
                    break
                except BlockingIOError:
                    self._wait_fd(self._sock.fileno(), select.POLLOUT, deadline)
                except (BrokenPipeError, ConnectionResetError) as exc:
                    self._peer_closed = True
                    raise ChannelClosedError("host closed the channel") from exc
        finally:
            segment.close()
        self._segments_sent += 1
        return ref

    # --- receiving ----------------------------------------------------------------------------------

    def receive(self, timeout: float, max_frames: int = MAX_FRAMES_PER_WAKE) -> list[bytes]:
        """Frames from the host, waiting up to ``timeout`` seconds for the first; [] on timeout.

        ``receive(0)`` never blocks: call it when the child's own selector reports one of ``filenos()``
        readable. Before it returns [] it clears the doorbell and takes pending socket messages, so a
        level-triggered selector does not report the same wakeup again. Several threads may call
        ``receive`` (each frame goes to exactly one of them, in order). Raises ``ChannelClosedError``
        once the host is gone and every frame it wrote was returned.
        """
        deadline = time.monotonic() + timeout
        while True:
            frames = self._drain(max_frames)
            if frames:
                return frames
            if self._peer_closed:
                raise ChannelClosedError("host closed the channel")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                # Clear, then look once more: a frame that raced in is returned, not left unannounced.
                _clear(self._bell_in)
                self._pump_socket()
                frames = self._drain(max_frames)
                if frames:
                    return frames
                if self._peer_closed:
                    raise ChannelClosedError("host closed the channel")
                return []
            for fd, _events in self._poller().poll(remaining * 1000):
                if fd == self._bell_in:
                    _clear(fd)
                else:
                    self._pump_socket()

    def _drain(self, max_frames: int) -> list[bytes]:
        with self._recv_lock:
            self._check_usable()
            frames = self._reader.read_batch(max_frames)
            if self._reader.space_requested():
                _ring(self._bell_out)
            self._frames_received += len(frames)
        return frames

    def _poller(self) -> select.poll:
        """This thread's poll object on (doorbell, socket): ``poll`` objects must not be shared by
        threads waiting at the same time."""
        poller: select.poll | None = getattr(self._local, "poller", None)
        if poller is None:
            poller = select.poll()
            poller.register(self._bell_in, select.POLLIN)
            poller.register(self._sock.fileno(), select.POLLIN)
            self._local.poller = poller
        return poller

    def pump(self) -> None:
        """Take every handoff message waiting on the socket and notice EOF, without blocking (for a
        child that polls ``filenos()`` itself). A closed peer shows in the next ``receive``/``send``."""
        self._pump_socket()

    def open_handoff(
        self, ref: HandoffRef | int, length: int | None = None, *, timeout: float = SEND_TIMEOUT
    ) -> Segment:
        """Map the segment a received frame names (``open_handoff(ref)`` or
        ``open_handoff(segment_id, length)``), waiting up to ``timeout`` for its fd to arrive."""
        segment_id, length = _ref_parts(ref, length)
        deadline = time.monotonic() + timeout
        while True:
            with self._recv_lock:
                self._check_usable()
                if not self._segments.has(segment_id):
                    self._pump_socket()
                if self._segments.has(segment_id):
                    return self._segments.open(segment_id, length)
                if self._peer_closed:
                    raise ChannelClosedError(f"host closed the channel before segment {segment_id}")
            self._wait_fd(self._sock.fileno(), select.POLLIN, deadline)

    def _pump_socket(self) -> None:
        with self._recv_lock:
            if self._peer_closed or self._closed:
                return
            try:
                while _recv_segment(self._sock, self._segments):
                    pass
                self._peer_closed = True
            except BlockingIOError:
                pass
            except ConnectionResetError:
                self._peer_closed = True

    def _wait_fd(self, fd: int, events: int, deadline: float) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise IpcTimeoutError("IPC wait timed out")
        poller = select.poll()
        poller.register(fd, events)
        poller.poll(remaining * 1000)

    def _check_usable(self) -> None:
        if self._closed:
            raise ChannelClosedError("channel is closed")

    def _check_open(self) -> None:
        if self._closed or self._peer_closed:
            raise ChannelClosedError("channel is closed" if self._closed else "host closed the channel")

    # --- closing ------------------------------------------------------------------------------------

    def close(self) -> None:
        """Release every fd and mapping (the host sees EOF). Idempotent."""
        with self._send_lock, self._recv_lock:
            if self._closed:
                return
            self._closed = True
            self._ends.release()
            for fd in (self._bell_in, self._bell_out, self._space_bell):
                os.close(fd)
            self._sock.close()
            self._segments.close_all()

    def statistics(self) -> ChannelStatistics:
        return ChannelStatistics(
            frames_sent=self._frames_sent,
            frames_received=self._frames_received,
            ring_full_events=self._ring_full,
            queued_frames=0,
            queued_bytes=0,
            segments_sent=self._segments_sent,
            segments_pending=self._segments.pending_count,
            segments_open=self._segments.open_count,
            closed=self._closed,
        )
