"""Host <-> child channels: rings, doorbells, handoff segments, death detection, no leaks.

Most tests talk to a real child forked by a real zygote (``_entries.echo``); a few drive the child side
in-process (``ChildChannel`` on duplicated fds) where the test needs to control both ends precisely.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import mmap
import os
import selectors
import signal
import socket
import struct
import threading
import tracemalloc
from collections.abc import AsyncIterator, Coroutine, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import pytest
import uvloop

from paglets.core.errors import FrameError, LimitExceededError
from paglets.runtime._channel import HOST_QUEUE_LIMIT, Channel, HostChannel
from paglets.runtime._channel_layout import ChannelClosedError, ChildFds, IpcTimeoutError
from paglets.runtime._handoff import SEGMENT_MESSAGE, HandoffRef, OutgoingSegment
from paglets.runtime._zygote import ChildProcess, Zygote
from paglets.runtime.child._channel import ChildChannel

pytestmark = pytest.mark.linux_only(
    reason="tests the Linux channel itself (memfd rings, eventfds, children forked by the zygote)"
)

HERE = Path(__file__).resolve().parent
TIMEOUT = 20.0
_ENC = msgspec.msgpack.Encoder()
_REF = msgspec.msgpack.Decoder(HandoffRef)
T = TypeVar("T")


def child_env() -> dict[str, str]:
    paths = [str(HERE), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}


def run(coro: Coroutine[Any, Any, T], loop_kind: str = "asyncio") -> T:
    factory = uvloop.new_event_loop if loop_kind == "uvloop" else None
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(coro)


class Peer:
    """The test's view of a host channel: a queue of received frames and a closed event."""

    def __init__(self, host: HostChannel, *, copy: bool = True) -> None:
        self.host = host
        self.frames: asyncio.Queue[bytes] = asyncio.Queue()
        self.closed = asyncio.Event()
        self.closed_calls = 0
        host.attach(asyncio.get_running_loop(), self._on_frames, self._on_closed, copy=copy)

    def _on_frames(self, frames: list[bytes]) -> None:
        for frame in frames:
            self.frames.put_nowait(frame)

    def _on_closed(self) -> None:
        self.closed_calls += 1
        self.closed.set()

    async def recv(self) -> bytes:
        return await asyncio.wait_for(self.frames.get(), TIMEOUT)

    async def wait_closed(self) -> None:
        await asyncio.wait_for(self.closed.wait(), TIMEOUT)


@pytest.fixture(scope="module")
def zygote() -> Iterator[Zygote]:
    zygote = Zygote.start(env=child_env(), preload=["_entries"])
    yield zygote
    zygote.close()


def spawn_echo(zygote: Zygote, child_fds: ChildFds, config: bytes = b"") -> ChildProcess:
    child = zygote.spawn("_entries:echo", config, child_fds.fds, title="paglet:test:Echo:0001")
    child_fds.close()
    return child


@asynccontextmanager
async def echo_child(zygote: Zygote, *, copy: bool = True) -> AsyncIterator[tuple[Peer, ChildProcess]]:
    host, child_fds = Channel.create()
    peer = Peer(host, copy=copy)
    child = spawn_echo(zygote, child_fds, b"cfg")
    try:
        assert await peer.recv() == b"ready:%d:cfg" % child.pid
        yield peer, child
    finally:
        host.close()
        child.kill()
        assert child.wait_exit(TIMEOUT) is not None


def _open_fds() -> set[int]:
    return {int(name) for name in os.listdir("/proc/self/fd")}


# --- with a forked child -------------------------------------------------------------------------------


@pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])
def test_round_trip_in_order(zygote: Zygote, loop_kind: str) -> None:
    async def scenario() -> None:
        async with echo_child(zygote) as (peer, _child):
            for i in range(200):
                peer.host.send(b"e%d" % i)
                assert await peer.recv() == b"e%d" % i
            peer.host.send_batch([b"e-batch-%d" % i for i in range(100)])
            assert [await peer.recv() for _ in range(100)] == [b"e-batch-%d" % i for i in range(100)]
            assert peer.host.statistics().frames_received == 301

    run(scenario(), loop_kind)


def test_many_frames_both_ways_with_full_rings(zygote: Zygote) -> None:
    """Frames queue host-side before the child exists (its ring fills), then both directions carry
    megabytes through 256 KiB rings; nothing is lost, duplicated or reordered."""

    async def scenario() -> None:
        host, child_fds = Channel.create()
        peer = Peer(host)
        filler = b"." * 1000
        first = [b"e%d:" % i + filler for i in range(1500)]
        last = [b"e%d:" % i + filler for i in range(1500, 3000)]
        host.send_batch(first)
        host.send(b"b5000")
        for frame in last:
            host.send(frame)
        assert host.statistics().queued_frames > 0  # the ring to the child is full
        child = spawn_echo(zygote, child_fds)
        try:
            assert (await peer.recv()).startswith(b"ready:")
            for frame in first:
                assert await peer.recv() == frame
            for i in range(5000):
                assert await peer.recv() == b"B%d" % i + b"." * 990
            assert await peer.recv() == b"done"
            for frame in last:
                assert await peer.recv() == frame
            stats = host.statistics()
            assert stats.queued_frames == 0
            assert stats.ring_full_events >= 1
            assert peer.frames.empty()
        finally:
            host.close()
            child.kill()
            child.wait_exit(TIMEOUT)

    run(scenario())


def test_handoff_of_64_mib_both_ways_with_bounded_memory(zygote: Zygote) -> None:
    payload = os.urandom(64 * 1024 * 1024)
    digest = hashlib.sha256(payload).hexdigest().encode()

    async def scenario() -> None:
        async with echo_child(zygote) as (peer, _child):
            ref = peer.host.send_large(payload)
            assert ref.length == len(payload)
            peer.host.send(b"h" + _ENC.encode(ref))
            reply = await peer.recv()
            assert reply[:1] == b"H"
            assert reply[1:65] == digest  # the child hashed the mapped segment
            back = _REF.decode(reply[65:])
            assert back.length == len(payload)
            tracemalloc.start()
            try:
                with peer.host.open_handoff(back.segment_id, back.length) as segment:
                    assert hashlib.sha256(segment.view).hexdigest().encode() == digest
                    assert segment.view[:64] == payload[:64]
                _current, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
            assert peak < 1024 * 1024  # the host never copied the payload
            peer.host.send(b"m")
            rss_anon_kib = int((await peer.recv())[1:])
            assert rss_anon_kib < 32 * 1024  # nor did the child (it decoded from the mapping)
            assert peer.host.statistics().segments_open == 0

    run(scenario())


def test_child_exit_is_detected_and_reported(zygote: Zygote) -> None:
    async def scenario() -> None:
        host, child_fds = Channel.create()
        peer = Peer(host)
        child = spawn_echo(zygote, child_fds)
        assert (await peer.recv()).startswith(b"ready:")
        # Frames written just before dying are delivered before on_closed.
        host.send_batch([b"b100", b"x5"])
        await peer.wait_closed()
        frames = []
        while not peer.frames.empty():
            frames.append(peer.frames.get_nowait())
        assert frames == [b"B%d" % i + b"." * 990 for i in range(100)] + [b"done"]
        assert peer.closed_calls == 1
        assert host.closed
        assert host.close_reason is None
        assert child.wait_exit(TIMEOUT) == 5
        with pytest.raises(ChannelClosedError):
            host.send(b"e")
        host.close()  # idempotent after on_closed
        assert peer.closed_calls == 1

    run(scenario())


def test_segfault_is_a_negative_signal(zygote: Zygote) -> None:
    async def scenario() -> None:
        async with echo_child(zygote) as (peer, child):
            peer.host.send(b"s")
            await peer.wait_closed()
            assert child.wait_exit(TIMEOUT) == -signal.SIGSEGV

    run(scenario())


def test_entry_return_value_is_the_exit_code(zygote: Zygote) -> None:
    async def scenario() -> None:
        async with echo_child(zygote) as (peer, child):
            peer.host.send(b"r7")
            await peer.wait_closed()
            assert child.wait_exit(TIMEOUT) == 7

    run(scenario())


def test_child_ignores_sigint(zygote: Zygote) -> None:
    async def scenario() -> None:
        async with echo_child(zygote) as (peer, child):
            peer.host.send(b"i")
            assert await peer.recv() == b"i%d" % signal.SIG_IGN
            child.kill(signal.SIGINT)
            peer.host.send(b"e-still-here")
            assert await peer.recv() == b"e-still-here"

    run(scenario())


def test_child_process_title(zygote: Zygote) -> None:
    async def scenario() -> None:
        async with echo_child(zygote) as (peer, _child):
            peer.host.send(b"t")
            reply = await peer.recv()
            cmdline, comm = reply[1:].split(b"|")
            assert cmdline == b"paglet:test:Echo:0001\0"
            assert comm == b"paglet:test:Ech\n"

    run(scenario())


def test_child_holds_only_its_own_fds(zygote: Zygote) -> None:
    async def scenario() -> None:
        async with echo_child(zygote) as (peer, child):
            peer.host.send(b"f")
            fds = [int(fd) for fd in (await peer.recv())[1:].split(b",")]
            kinds = []
            for fd in fds:
                try:
                    kinds.append(os.readlink(f"/proc/{child.pid}/fd/{fd}").split(":")[0])
                except FileNotFoundError:
                    kinds.append("gone")  # the fd that listed the directory
            # stdio (3), 3 eventfds + 1 socket, the ring mapping's fd (kept by mmap), and the fd that
            # listed the directory; nothing inherited from the zygote or the test process.
            assert len(fds) <= 9, kinds
            assert kinds.count("anon_inode") == 3
            assert kinds.count("socket") == 1
            assert kinds.count("/memfd") == 1

    run(scenario())


def test_zero_copy_delivery(zygote: Zygote) -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        host, child_fds = Channel.create()
        got: list[bytes] = []
        types: set[type] = set()
        done = loop.create_future()

        def on_frames(views: list[memoryview]) -> None:
            types.update(type(v) for v in views)
            got.extend(bytes(v) for v in views)
            if len(got) >= 51 and not done.done():
                done.set_result(None)

        host.attach(loop, on_frames, lambda: None, copy=False)
        child = spawn_echo(zygote, child_fds)
        try:
            host.send_batch([b"e%d" % i for i in range(50)])
            await asyncio.wait_for(done, TIMEOUT)
            assert types == {memoryview}
            assert got[1:] == [b"e%d" % i for i in range(50)]
        finally:
            host.close()
            child.kill()
            child.wait_exit(TIMEOUT)

    run(scenario())


def _references(pid: int | str) -> list[str]:
    """Every mapped file and fd target of a process."""
    refs = []
    with open(f"/proc/{pid}/maps") as maps:
        refs += [line.split(maxsplit=5)[5].strip() for line in maps if len(line.split(maxsplit=5)) == 6]
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            refs.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except FileNotFoundError:
            continue
    return refs


def test_nothing_leaks() -> None:
    """Shared memory is only ever memfds (never a /dev/shm file, so a crash cannot leave one behind),
    and after closing channels, children and the zygote the fd table and the mappings of this process
    are back to their baseline."""
    fds_before = _open_fds()
    zygote = Zygote.start(env=child_env(), preload=["_entries"])
    payload = os.urandom(3 * 1024 * 1024)

    async def scenario() -> None:
        for _ in range(3):
            async with echo_child(zygote) as (peer, child):
                ref = peer.host.send_large([payload[:1000], payload[1000:]])
                peer.host.send(b"h" + _ENC.encode(ref))
                reply = await peer.recv()
                back = _REF.decode(reply[65:])
                with peer.host.open_handoff(back) as segment:
                    assert segment.view == payload
                    ours = _references("self")
                    theirs = _references(child.pid)
                    assert any("memfd:paglets-handoff" in ref for ref in ours)
                    assert any("memfd:paglets-ring" in ref for ref in theirs)
                    assert not [ref for ref in ours + theirs if "/dev/shm" in ref]
                # A segment received but never opened is freed with the channel.
                peer.host.send(b"h" + _ENC.encode(peer.host.send_large(payload)))
                await peer.recv()
                assert peer.host.statistics().segments_pending <= 1

    try:
        run(scenario())
    finally:
        zygote.close()
    assert _open_fds() == fds_before
    assert not [ref for ref in _references("self") if "memfd:paglets" in ref or "/dev/shm" in ref]


# --- both ends in this process ---------------------------------------------------------------------------


def _pair(ring_capacity: int = 4096) -> tuple[HostChannel, ChildChannel]:
    host, child_fds = Channel.create(ring_capacity)
    child = ChildChannel.from_fds([os.dup(fd) for fd in child_fds.fds])
    child_fds.close()
    return host, child


def test_child_send_waits_for_space_then_times_out_or_completes() -> None:
    async def scenario() -> None:
        host, child = _pair()
        try:
            frame = b"x" * 1000
            sent = 0
            while True:  # nobody reads yet: fill the child->host ring
                try:
                    child.send(frame, timeout=0.02)
                except IpcTimeoutError:
                    break
                sent += 1
            assert sent == 4096 // 1008
            assert child.statistics().ring_full_events == 1
            # A blocked sender is released by the host draining (space doorbell), in order.
            released = threading.Event()

            def blocked_send() -> None:
                child.send_batch([b"late-1", b"late-2"], timeout=TIMEOUT)
                released.set()

            sender = threading.Thread(target=blocked_send)
            sender.start()
            peer = Peer(host)
            frames = [await peer.recv() for _ in range(sent + 2)]
            sender.join(TIMEOUT)
            assert released.is_set()
            assert frames == [frame] * sent + [b"late-1", b"late-2"]
        finally:
            host.close()
            child.close()

    run(scenario())


def test_child_receive_timeout_and_host_close() -> None:
    async def scenario() -> None:
        host, child = _pair()
        try:
            Peer(host)
            assert child.receive(0.01) == []
            host.send(b"one")
            host.send(b"two")
            assert child.receive(TIMEOUT) == [b"one", b"two"]
            host.send(b"last")
            host.close()
            assert child.receive(TIMEOUT) == [b"last"]  # frames written before the close survive
            with pytest.raises(ChannelClosedError):
                child.receive(TIMEOUT)
            with pytest.raises(ChannelClosedError):
                child.send(b"nobody listens")
        finally:
            host.close()
            child.close()
            child.close()

    run(scenario())


def test_child_side_in_a_selector() -> None:
    host, child = _pair()
    selector = selectors.DefaultSelector()
    try:
        for fd in child.filenos():
            selector.register(fd, selectors.EVENT_READ)
        host.send(b"a")
        host.send(b"b")
        assert selector.select(TIMEOUT)
        assert child.receive(0) == [b"a", b"b"]
        if selector.select(0):  # at most one extra wake per batch, then quiet
            assert child.receive(0) == []
        assert selector.select(0) == []
        host.close()
        assert selector.select(TIMEOUT)
        with pytest.raises(ChannelClosedError):
            child.receive(0)
    finally:
        selector.close()
        host.close()
        child.close()


def test_two_child_threads_receiving_share_the_frames() -> None:
    total = 3000
    got: dict[str, list[int]] = {"a": [], "b": []}
    lock = threading.Lock()
    everything = threading.Event()

    async def scenario() -> None:
        host, child = _pair(1024)  # a small ring: the host queues and both readers race for frames

        def reader(name: str) -> None:
            while not everything.is_set():
                frames = [int(frame) for frame in child.receive(0.01)]
                with lock:
                    got[name].extend(frames)
                    if len(got["a"]) + len(got["b"]) >= total:
                        everything.set()

        threads = [threading.Thread(target=reader, args=(name,)) for name in got]
        Peer(host)
        for thread in threads:
            thread.start()
        try:
            for i in range(total):
                host.send(b"%d" % i)
            loop = asyncio.get_running_loop()
            assert await loop.run_in_executor(None, everything.wait, TIMEOUT)
        finally:
            everything.set()
            for thread in threads:
                thread.join(TIMEOUT)
            host.close()
            child.close()

    run(scenario())
    assert sorted(got["a"] + got["b"]) == list(range(total))  # each frame exactly once
    assert got["a"] == sorted(got["a"])  # and in order within each reader
    assert got["b"] == sorted(got["b"])


def test_host_never_blocks_and_bounds_its_queue() -> None:
    host, child = _pair()
    try:
        frame = b"q" * host.max_frame

        def fill() -> None:
            for _ in range(HOST_QUEUE_LIMIT // len(frame) + 100):
                host.send(frame)

        with pytest.raises(LimitExceededError, match="queued"):
            fill()
        stats = host.statistics()
        assert 0 < stats.queued_bytes <= HOST_QUEUE_LIMIT
        with pytest.raises(LimitExceededError, match="handoff"):
            host.send(b"q" * (host.max_frame + 1))
    finally:
        host.close()
        child.close()


def test_corrupt_ring_closes_the_host_channel() -> None:
    async def scenario() -> None:
        host, child_fds = Channel.create(4096)
        memfd = os.dup(child_fds.fds[0])
        child = ChildChannel.from_fds([os.dup(fd) for fd in child_fds.fds])
        child_fds.close()
        size = os.fstat(memfd).st_size
        shared = mmap.mmap(memfd, size)
        os.close(memfd)
        try:
            peer = Peer(host)
            child.send(b"fine")
            assert await peer.recv() == b"fine"
            struct.pack_into("=Q", shared, size // 2 + 64, 3)  # child->host write cursor, misaligned
            os.eventfd_write(child_fds.fds[2], 1)
            await peer.wait_closed()
            assert isinstance(host.close_reason, FrameError)
            assert peer.closed_calls == 1
        finally:
            shared.close()
            host.close()
            child.close()

    run(scenario())


def test_handoff_validation() -> None:
    async def scenario() -> None:
        host, child = _pair()
        try:
            peer = Peer(host)
            with pytest.raises(FrameError, match="unknown"):
                host.open_handoff(99, 10)
            ref = child.send_large(b"abc")
            with pytest.raises(FrameError, match="says"):
                host.open_handoff(ref.segment_id, 4)
            # An fd that is not sealed is refused (the peer could truncate it under us).
            raw = os.memfd_create("unsealed")
            os.write(raw, b"abcd")
            socket.send_fds(child._link.sock, [SEGMENT_MESSAGE.pack(500, 4)], [raw])
            os.close(raw)
            with pytest.raises(FrameError, match="sealed"):
                host.open_handoff(500, 4)
            # A malformed socket message closes the channel with a FrameError.
            child._link.sock.send(b"garbage")
            await peer.wait_closed()
            assert isinstance(host.close_reason, FrameError)
        finally:
            host.close()
            child.close()

    run(scenario())


def test_decode_into_a_new_segment() -> None:
    async def scenario() -> None:
        host, child = _pair()
        try:
            Peer(host)
            segment = host.create_segment(1 << 20)
            assert segment.view is not None
            segment.view[:1000] = b"d" * 1000
            ref = host.send_segment(segment, length=1000)
            assert ref.length == 1000
            with child.open_handoff(ref, timeout=TIMEOUT) as received:
                assert received.view == b"d" * 1000
                with pytest.raises(TypeError):
                    received.view[0] = 1  # read-only mapping
            assert received.closed
            # The child can do the same towards the host, and an empty payload works too.
            empty = child.send_large(b"")
            with host.open_handoff(empty) as nothing:
                assert nothing.view == b""
        finally:
            host.close()
            child.close()

    run(scenario())


def test_outgoing_segment_is_sealed() -> None:
    with OutgoingSegment.from_payload([b"ab", memoryview(b"cd"), bytearray(b"ef")]) as segment:
        assert segment.sealed
        assert segment.length == 6
        seals = fcntl.fcntl(segment.fileno(), fcntl.F_GET_SEALS)
        assert seals & fcntl.F_SEAL_WRITE
        assert seals & fcntl.F_SEAL_SHRINK
        with pytest.raises(PermissionError):
            os.write(segment.fileno(), b"x")


def test_send_before_attach_is_flushed_on_attach() -> None:
    async def scenario() -> None:
        host, child = _pair()
        try:
            child.send(b"early")
            host.send(b"to-child")
            peer = Peer(host)
            assert await peer.recv() == b"early"
            assert child.receive(TIMEOUT) == [b"to-child"]
        finally:
            host.close()
            child.close()

    run(scenario())
