"""One host <-> child channel: two mmap rings, eventfd doorbells, a unix socket for fds and death.

This module holds what both sides share: the memory layout and the fd order, the rules below, the
errors, the doorbell and socket-message primitives and the mapping of the rings (:class:`Ends`). The
host side is :class:`~paglets.runtime._channel.HostChannel` (``paglets.runtime._channel``, driven by
the host's event loop; ``Channel.create`` makes a pair); the child side is
:class:`~paglets.runtime.child._channel.ChildChannel` (blocking, for the paglet process). Each side
implements its half of every rule here, so a change to a rule changes both modules.

Resources (created by ``Channel.create`` in the host; the child rebuilds its side from the same fds)::

    memfd         two rings (``_ring``): host->child at offset 0, child->host at ``region_size``
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
"""

from __future__ import annotations

import mmap
import os
import socket
import sys
from typing import Any, Final, Protocol

import msgspec

from paglets.core.errors import FrameError, PagletCrashedError, PagletError
from paglets.runtime._handoff import SEGMENT_MESSAGE, HandoffRef, Segment, SegmentTable, map_segment
from paglets.runtime._ring import HEADER_SIZE, RingReader, RingWriter, ring_size
from paglets.wire.limits import KiB

__all__ = [
    "FD_COUNT",
    "INLINE_THRESHOLD",
    "MAX_FRAMES_PER_WAKE",
    "RETRY_FIRST",
    "RETRY_MAX",
    "RING_CAPACITY",
    "Bell",
    "ChannelClosedError",
    "ChannelStatistics",
    "ChildFds",
    "Ends",
    "EventBell",
    "FdLink",
    "IpcTimeoutError",
    "SegmentLink",
    "clear_bell",
    "new_eventfd",
    "recv_segment",
    "ref_parts",
    "region_size",
    "ring_bell",
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

#: Retry delays (seconds) while a ring is full and no space doorbell came: first and largest.
RETRY_FIRST: Final = 0.001
RETRY_MAX: Final = 0.05

#: Bytes received per socket message (a segment message is 16; more is a protocol error).
_SOCKET_RECV: Final = 64

#: The fds a child receives (see ``ChildFds``).
FD_COUNT: Final = 5


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


class Bell(Protocol):
    """One end of a doorbell: ``ring`` wakes whoever waits on the other end, ``clear`` takes the rings
    that arrived (True if there was one), ``fileno`` is what a waiter polls. An eventfd on Linux (both
    ends are the same fd), a connected socket with the portable backend."""

    def fileno(self) -> int: ...
    def ring(self) -> None: ...
    def clear(self) -> bool: ...
    def close(self) -> None: ...


class SegmentLink(Protocol):
    """What carries handoff segments beside a channel's rings, and tells when the peer is gone (EOF).

    ``try_send`` hands one sealed segment and its 16-byte message over without blocking (False: try
    again when ``fileno`` is writable; the segment is then still the caller's); ``receive`` takes one
    batch of messages into a ``SegmentTable`` (False at EOF; ``BlockingIOError`` when nothing waits);
    ``table`` makes the table whose handles this link understands."""

    def fileno(self) -> int: ...
    def try_send(self, message: bytes, segment: Any) -> bool: ...
    def pending_output(self) -> bool: ...
    def flush(self) -> None: ...
    def receive(self, table: SegmentTable) -> bool: ...
    def table(self) -> SegmentTable: ...
    def close(self) -> None: ...


class EventBell:
    """A doorbell on a Linux eventfd (the same fd rings and clears)."""

    __slots__ = ("fd",)

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def fileno(self) -> int:
        return self.fd

    def ring(self) -> None:
        ring_bell(self.fd)

    def clear(self) -> bool:
        try:
            read_bell(self.fd)
        except BlockingIOError:
            return False
        return True

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class FdLink:
    """The Linux segment link: a ``SOCK_SEQPACKET`` unix socket carrying sealed memfds (``SCM_RIGHTS``)."""

    __slots__ = ("sock",)

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def fileno(self) -> int:
        return self.sock.fileno()

    def try_send(self, message: bytes, segment: Any) -> bool:
        try:
            send_fd_message(self.sock, message, segment.fileno())
        except BlockingIOError:
            return False
        return True

    def pending_output(self) -> bool:
        return False

    def flush(self) -> None:
        pass

    def receive(self, table: SegmentTable) -> bool:
        return recv_segment(self.sock, table)

    def table(self) -> SegmentTable:
        return SegmentTable(_open_fd_segment, os.close)

    def close(self) -> None:
        self.sock.close()


def _open_fd_segment(fd: Any, segment_id: int, length: int) -> Segment:
    return map_segment(int(fd), segment_id, length)


if sys.platform == "linux":

    def new_eventfd() -> int:
        return os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)

    def ring_bell(fd: int, value: int = 1) -> None:
        os.eventfd_write(fd, value)

    def read_bell(fd: int) -> None:
        os.eventfd_read(fd)

    def send_fd_message(sock: socket.socket, message: bytes, fd: int) -> None:
        socket.send_fds(sock, [message], [fd], socket.MSG_DONTWAIT)

    def recv_segment(sock: socket.socket, table: SegmentTable) -> bool:
        """Receive one segment message into ``table``; False on EOF. Raises BlockingIOError when empty."""
        msg, fds, flags, _addr = socket.recv_fds(
            sock, _SOCKET_RECV, 4, socket.MSG_DONTWAIT | socket.MSG_CMSG_CLOEXEC
        )
        if not msg and not fds:
            return False
        if (
            len(msg) != SEGMENT_MESSAGE.size
            or len(fds) != 1
            or flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC)
        ):
            for fd in fds:
                os.close(fd)
            raise FrameError(
                f"malformed handoff message on the channel socket ({len(msg)} bytes, {len(fds)} fds)"
            )
        segment_id, length = SEGMENT_MESSAGE.unpack(msg)
        table.add_received(segment_id, length, fds[0])
        return True

else:  # eventfds and fd passing are Linux features; the portable backend uses sockets instead

    def new_eventfd() -> int:
        raise OSError("eventfd needs Linux; use the portable backend")

    def ring_bell(fd: int, value: int = 1) -> None:
        raise OSError("eventfd needs Linux")

    def read_bell(fd: int) -> None:
        raise OSError("eventfd needs Linux")

    def send_fd_message(sock: socket.socket, message: bytes, fd: int) -> None:
        raise OSError("fd passing needs Linux")

    def recv_segment(sock: socket.socket, table: SegmentTable) -> bool:
        raise OSError("fd passing needs Linux")


def clear_bell(fd: int) -> None:
    try:
        read_bell(fd)
    except BlockingIOError:
        pass


def ref_parts(ref: HandoffRef | int, length: int | None) -> tuple[int, int]:
    if isinstance(ref, HandoffRef):
        return ref.segment_id, ref.length
    if length is None:
        raise TypeError("open_handoff(segment_id, length) needs the length")
    return ref, length


class Ends:
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


def region_size(capacity: int) -> int:
    return -(-ring_size(capacity) // mmap.PAGESIZE) * mmap.PAGESIZE
