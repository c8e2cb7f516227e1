"""The child side of a channel: ``ChildChannel``, for the paglet process's blocking loop.

The layout, the fd order and every rule both sides follow are in ``paglets.runtime._channel_layout``;
the host side is ``paglets.runtime._channel``. The child blocks in ``send`` for at most its timeout while
the ring to the host is full (asking for space, and retrying on a capped poll timeout), and keeps taking
handoff fds from the socket meanwhile. ``send*`` and ``receive`` are thread-safe.
"""

from __future__ import annotations

import itertools
import mmap
import os
import socket
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Final

from paglets.runtime._channel_layout import (
    FD_COUNT,
    MAX_FRAMES_PER_WAKE,
    RETRY_FIRST,
    RETRY_MAX,
    Bell,
    ChannelClosedError,
    ChannelStatistics,
    Ends,
    EventBell,
    FdLink,
    IpcTimeoutError,
    SegmentLink,
    ref_parts,
)
from paglets.runtime._handoff import (
    MEMFD_SEGMENTS,
    SEGMENT_MESSAGE,
    HandoffRef,
    Segment,
    SegmentFactory,
    WritableSegment,
)
from paglets.runtime._waitset import WaitSet

if TYPE_CHECKING:
    from typing_extensions import Buffer

__all__ = ["SEND_TIMEOUT", "ChildChannel"]

#: Default seconds a child ``send`` waits for ring space before ``IpcTimeoutError``.
SEND_TIMEOUT: Final = 10.0


class ChildChannel:
    """The child side of a channel, for a ``selectors``-driven child (rules: ``_channel_layout``)."""

    def __init__(
        self,
        ends: Ends,
        bell_in: Bell,
        bell_out: Bell,
        space_bell: Bell,
        link: SegmentLink,
        segments: SegmentFactory = MEMFD_SEGMENTS,
        wake: Bell | None = None,
    ) -> None:
        self._ends = ends
        self._writer = ends.writer
        self._reader = ends.reader
        self._bell_in = bell_in
        self._bell_out = bell_out
        self._space_bell = space_bell
        self._link = link
        #: Makes this side's outgoing segments.
        self.segment_maker = segments
        #: What ``wake_main`` rings: the incoming doorbell itself where this process may ring it (an
        #: eventfd), else a bell of its own (a local socket pair).
        self._wake = wake
        self._segments = link.table()
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
        if len(fds) != FD_COUNT:
            raise ValueError(f"a channel needs {FD_COUNT} fds, got {len(fds)}")
        memfd, to_child, to_host, space, sock_fd = fds
        mapping: mmap.mmap | None = None
        try:
            size = os.fstat(memfd).st_size
            mapping = mmap.mmap(memfd, size)
            ends = Ends(mapping, size // 2, 0)
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
        return cls(ends, EventBell(to_child), EventBell(to_host), EventBell(space), FdLink(sock))

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def max_frame(self) -> int:
        return self._writer.max_frame

    def filenos(self) -> tuple[int, ...]:
        """What the main thread waits on: the doorbell, the segment link and, where it is not the
        doorbell, the wake bell. When one is ready call ``clear_ready(fd)``, then ``receive(0)``."""
        if self._wake is None:
            return self._bell_in.fileno(), self._link.fileno()
        return self._bell_in.fileno(), self._link.fileno(), self._wake.fileno()

    def wake_main(self) -> None:
        """Wake a thread waiting on ``filenos()`` (another thread queued work for it)."""
        (self._wake or self._bell_in).ring()

    def clear_ready(self, fd: int) -> None:
        """``fd`` of ``filenos()`` was reported ready: clear it (a doorbell) or take segments (the link)."""
        if fd == self._link.fileno():
            self._pump_socket()
        elif self._wake is not None and fd == self._wake.fileno():
            self._wake.clear()
        else:
            self._clear_in()

    def _clear_in(self) -> None:
        try:
            self._bell_in.clear()
        except ChannelClosedError:
            self._peer_closed = True

    # --- sending ------------------------------------------------------------------------------------

    def send(self, frame: Buffer, timeout: float = SEND_TIMEOUT) -> None:
        """Send one frame; waits at most ``timeout`` seconds for ring space (``IpcTimeoutError``).
        Raises ``ChannelClosedError`` when the host is gone. Thread-safe."""
        with self._send_lock:
            self._check_open()
            if not self._writer.try_write(frame):
                self._wait_and_write(frame, timeout)
            self._bell_out.ring()
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
                            self._bell_out.ring()
                            unrung = 0
                        self._wait_and_write(frame, deadline - time.monotonic())
                    unrung += 1
                    self._frames_sent += 1
            finally:  # ring for what was written even if a later frame failed
                if unrung:
                    self._bell_out.ring()

    def _wait_and_write(self, frame: Buffer, timeout: float) -> None:
        self._ring_full += 1
        deadline = time.monotonic() + timeout
        delay = RETRY_FIRST
        poller = WaitSet((self._space_bell.fileno(), self._link.fileno()))
        space_fd = self._space_bell.fileno()
        writer = self._writer
        while True:
            writer.request_space()
            if writer.try_write(frame):
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise IpcTimeoutError(f"no ring space for {timeout:.3f}s (host not reading)")
            for fd in poller.wait(min(delay, remaining)):
                if fd == space_fd:
                    try:
                        self._space_bell.clear()
                    except ChannelClosedError:
                        self._peer_closed = True
                else:
                    self._pump_socket()
            self._check_open()
            delay = min(delay * 2, RETRY_MAX)

    def send_large(self, payload: Buffer | Sequence[Buffer], timeout: float = SEND_TIMEOUT) -> HandoffRef:
        """Copy ``payload`` into a sealed segment and send it; embed the reference in a frame."""
        return self.send_segment(self.segment_maker.from_payload(payload), timeout=timeout)

    def create_segment(self, size: int) -> WritableSegment:
        """A writable segment to fill, then ``send_segment``."""
        return self.segment_maker.allocate(size)

    def send_segment(
        self, segment: WritableSegment, length: int | None = None, timeout: float = SEND_TIMEOUT
    ) -> HandoffRef:
        """Seal ``segment`` (trimmed to ``length``), send its fd and free it. Thread-safe."""
        try:
            self._check_open()
            segment.seal(length)
            ref = HandoffRef(next(self._segment_ids), segment.length)
            message = SEGMENT_MESSAGE.pack(ref.segment_id, ref.length)
            deadline = time.monotonic() + timeout
            link = self._link
            while True:
                try:
                    if link.try_send(message, segment):
                        while link.pending_output():
                            self._wait_fd(link.fileno(), True, deadline)
                            link.flush()
                        break
                    self._wait_fd(link.fileno(), True, deadline)
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
                self._clear_in()
                self._pump_socket()
                frames = self._drain(max_frames)
                if frames:
                    return frames
                if self._peer_closed:
                    raise ChannelClosedError("host closed the channel")
                return []
            bell_fd = self._bell_in.fileno()
            for fd in self._poller().wait(remaining):
                if fd == bell_fd:
                    self._clear_in()
                else:
                    self._pump_socket()

    def _drain(self, max_frames: int) -> list[bytes]:
        with self._recv_lock:
            self._check_usable()
            frames = self._reader.read_batch(max_frames)
            if self._reader.space_requested():
                self._bell_out.ring()
            self._frames_received += len(frames)
        return frames

    def _poller(self) -> WaitSet:
        """This thread's wait set on (doorbell, link): ``poll`` objects must not be shared by threads
        waiting at the same time."""
        poller: WaitSet | None = getattr(self._local, "poller", None)
        if poller is None:
            poller = WaitSet((self._bell_in.fileno(), self._link.fileno()))
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
        segment_id, length = ref_parts(ref, length)
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
            self._wait_fd(self._link.fileno(), False, deadline)

    def _pump_socket(self) -> None:
        with self._recv_lock:
            if self._peer_closed or self._closed:
                return
            try:
                while self._link.receive(self._segments):
                    pass
                self._peer_closed = True
            except BlockingIOError:
                pass
            except ConnectionResetError:
                self._peer_closed = True

    def _wait_fd(self, fd: int, write: bool, deadline: float) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise IpcTimeoutError("IPC wait timed out")
        (WaitSet(write=(fd,)) if write else WaitSet((fd,))).wait(remaining)

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
            for bell in (self._bell_in, self._bell_out, self._space_bell):
                bell.close()
            if self._wake is not None:
                self._wake.close()
            self._link.close()
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
