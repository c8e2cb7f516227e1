"""The host side of a channel: ``HostChannel``, driven by the host's event loop, and ``Channel.create``.

The layout, the fd order and every rule both sides follow (doorbells, ring full, frames handed to the
callback, threads) are in ``paglets.runtime._channel_layout``; the child side is
``paglets.runtime.child._channel``. The host never blocks its loop: while its ring to a child is full it
queues frames in order (at most ``HOST_QUEUE_LIMIT`` bytes), retries on a capped timer and flushes when
the child rings for space.
"""

from __future__ import annotations

import itertools
import mmap
import os
import socket
import sys
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Final

from paglets.core.errors import FrameError, LimitExceededError
from paglets.runtime._channel_layout import (
    MAX_FRAMES_PER_WAKE,
    RETRY_FIRST,
    RETRY_MAX,
    RING_CAPACITY,
    Bell,
    ChannelClosedError,
    ChannelStatistics,
    ChildFds,
    Ends,
    EventBell,
    FdLink,
    SegmentLink,
    new_eventfd,
    ref_parts,
    region_size,
)
from paglets.runtime._handoff import (
    MEMFD_SEGMENTS,
    SEGMENT_MESSAGE,
    HandoffRef,
    Segment,
    SegmentFactory,
    WritableSegment,
)
from paglets.runtime._ring import format_ring, ring_size
from paglets.wire.limits import MiB

if TYPE_CHECKING:
    import asyncio

    from typing_extensions import Buffer

__all__ = ["HOST_QUEUE_LIMIT", "Channel", "HostChannel"]

#: Bytes of frames the host queues while its ring to a child is full. Mailboxes bound messages
#: upstream; this only catches a child that stopped reading while the host kept sending.
HOST_QUEUE_LIMIT: Final = 64 * MiB


class Channel:
    """Factory of channel pairs."""

    @staticmethod
    def create(ring_capacity: int = RING_CAPACITY) -> tuple[HostChannel, ChildFds]:
        """A new channel: the host side and the fds to pass to the child (see ``ChildFds``)."""
        region = region_size(ring_capacity)
        opened: list[int] = []
        mapping: mmap.mmap | None = None
        ends: Ends | None = None
        try:
            memfd = _new_ring_memfd()
            opened.append(memfd)
            os.ftruncate(memfd, 2 * region)
            mapping = mmap.mmap(memfd, 2 * region)
            with memoryview(mapping) as view:
                format_ring(view[: ring_size(ring_capacity)])
                format_ring(view[region : region + ring_size(ring_capacity)])
            ends = Ends(mapping, 0, region)
            opened.extend(new_eventfd() for _ in range(3))
            host_sock, child_sock = _seqpacket_pair()
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
        host = HostChannel(
            ends,
            EventBell(to_child),
            EventBell(to_host),
            EventBell(space),
            FdLink(host_sock),
            MEMFD_SEGMENTS,
            on_release=child_fds.close,
        )
        return host, child_fds


if sys.platform == "linux":

    def _new_ring_memfd() -> int:
        return os.memfd_create("paglets-ring", os.MFD_CLOEXEC)

    def _seqpacket_pair() -> tuple[socket.socket, socket.socket]:
        return socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)

else:  # the Linux backend only; elsewhere channels come from the portable backend (_portable_ipc)

    def _new_ring_memfd() -> int:
        raise OSError("memfd rings need Linux; use the portable backend")

    def _seqpacket_pair() -> tuple[socket.socket, socket.socket]:
        raise OSError("the Linux channel needs unix sockets with fd passing")


class HostChannel:
    """The host side of a channel, driven by an asyncio loop. Rules: ``paglets.runtime._channel_layout``."""

    def __init__(
        self,
        ends: Ends,
        bell_out: Bell,
        bell_in: Bell,
        space_bell: Bell,
        link: SegmentLink,
        segments: SegmentFactory,
        *,
        on_release: Callable[[], object] | None = None,
    ) -> None:
        self._ends = ends
        self._writer = ends.writer
        self._reader = ends.reader
        self._bell_out = bell_out
        self._bell_in = bell_in
        self._space_bell = space_bell
        self._link = link
        #: Makes this channel's outgoing segments (memfds on Linux, files with the portable backend).
        self.segment_maker = segments
        self._on_release = on_release
        self._segments = link.table()
        self._segment_ids = itertools.count(1)
        self._queue: deque[bytes] = deque()
        self._queued_bytes = 0
        self._socket_queue: deque[tuple[bytes, WritableSegment]] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._on_frames: Callable[[Any], object] | None = None
        self._on_closed: Callable[[], object] | None = None
        self._copy = True
        self._retry: asyncio.TimerHandle | None = None
        self._retry_delay = RETRY_FIRST
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
        loop.add_reader(self._bell_in.fileno(), self._on_doorbell)
        loop.add_reader(self._link.fileno(), self._on_socket)
        if self._queue:
            self._flush()
        if self._socket_queue:
            self._flush_socket()
        loop.call_soon(self._on_doorbell)  # frames that arrived before attach; never inside attach()

    # --- sending ------------------------------------------------------------------------------------

    def pending_bytes(self) -> int:
        """Bytes written to the ring towards the paglet process that it has not read yet (a metric)."""
        try:
            return self._writer.pending() + self._queued_bytes
        except (ValueError, TypeError):  # the ring is closed
            return 0

    def send(self, frame: Buffer) -> None:
        """Send one frame; never blocks. Raises ``LimitExceededError`` past ``max_frame`` or when the
        host-side queue is full, ``ChannelClosedError`` once closed. A frame that has to wait in the
        queue is copied, so the caller may reuse its buffer at once."""
        if self._closed:
            raise ChannelClosedError("channel is closed")
        if not self._queue and self._writer.try_write(frame):
            self._bell_out.ring()
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
                self._bell_out.ring()
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
            self._bell_out.ring()
            self._frames_sent += written
        if queue:
            if self._retry is None and self._loop is not None:
                self._retry = self._loop.call_later(self._retry_delay, self._on_retry)
        else:
            self._retry_delay = RETRY_FIRST
            if self._retry is not None:
                self._retry.cancel()
                self._retry = None

    def _on_retry(self) -> None:
        self._retry = None
        if self._closed:
            return
        self._retry_delay = min(self._retry_delay * 2, RETRY_MAX)
        self._flush()

    # --- handoff ------------------------------------------------------------------------------------

    def send_large(self, payload: Buffer | Sequence[Buffer]) -> HandoffRef:
        """Copy ``payload`` into a new sealed segment and send it; embed the returned reference in a
        frame. The copy runs on the calling thread: for tens of MiB, build the segment in a worker with
        ``segments.from_payload`` and pass it to ``send_segment`` on the loop."""
        return self.send_segment(self.segment_maker.from_payload(payload))

    def create_segment(self, size: int) -> WritableSegment:
        """A writable segment to fill (e.g. decode or decompress into), then ``send_segment``."""
        return self.segment_maker.allocate(size)

    def send_segment(self, segment: WritableSegment, length: int | None = None) -> HandoffRef:
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
        link = self._link
        while queue:
            message, segment = queue[0]
            try:
                if not link.try_send(message, segment):
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
        waiting = bool(queue) or link.pending_output()
        if waiting and not self._writing_socket and self._loop is not None:
            self._writing_socket = True
            self._loop.add_writer(link.fileno(), self._on_socket_writable)
        elif not waiting and self._writing_socket and self._loop is not None:
            self._writing_socket = False
            self._loop.remove_writer(link.fileno())

    def _on_socket_writable(self) -> None:
        if not self._closed:
            try:
                self._link.flush()
            except OSError:
                return  # peer gone: the socket's EOF closes the channel
            self._flush_socket()

    def open_handoff(self, ref: HandoffRef | int, length: int | None = None) -> Segment:
        """Map the segment a received frame names: ``open_handoff(ref)`` or
        ``open_handoff(segment_id, length)``. ``FrameError`` if it never arrived, has another length or
        is not sealed. The ``Segment`` is tracked by the channel (closed with it) unless you ``detach``
        it; use it as a context manager."""
        segment_id, length = ref_parts(ref, length)
        if not self._segments.has(segment_id):
            self._pump_socket()
        return self._segments.open(segment_id, length)

    # --- receiving ----------------------------------------------------------------------------------

    def _on_doorbell(self) -> None:
        if self._closed:
            return
        try:
            self._bell_in.clear()
        except ChannelClosedError:  # a socket doorbell at EOF: the peer is gone
            self._peer_closed = True
            self._peer_gone()
            return
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
                    self._space_bell.ring()

    def _pump_socket(self) -> None:
        """Take every segment message waiting on the socket; notice EOF."""
        if self._peer_closed:
            return
        try:
            while self._link.receive(self._segments):
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
            loop.remove_reader(self._bell_in.fileno())
            loop.remove_reader(self._link.fileno())
            if self._writing_socket:
                loop.remove_writer(self._link.fileno())
        self._writing_socket = False
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        self._on_frames = None
        self._on_closed = None

    def _release(self) -> None:
        self._ends.release()
        for bell in (self._bell_out, self._bell_in, self._space_bell):
            bell.close()
        self._link.close()
        self._segments.close_all()
        if self._on_release is not None:
            self._on_release()
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
