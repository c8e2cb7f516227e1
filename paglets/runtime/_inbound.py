"""Inbound moves: the memory they may hold, where their state goes, and decoding them off the event loop.

An envelope declares its state length in its first 24 bytes, and its zstd frames may decode to 20,000
times their size (a 49-byte frame holds a MiB of zeros). A receiver that believed the declaration, or let
one connection decode as fast as its frames arrive, handed 67 KB of wire the power to fill a GiB of shared
memory for as long as the connection stayed open. Here:

- **Nothing is allocated ahead of data.** The state goes into a memfd segment that starts empty and grows
  (``ftruncate`` + ``mremap``, no copy) only when the decoder is about to write a frame
  (``InboundSink.reserve``, the envelope decoder's pacing hook); it is still handed to the paglet process
  as one sealed segment, so an honest move keeps its zero-copy path.
- **Every growth is paid from a host-wide budget** (``InboundBudget``): the bytes of decoded state held by
  unfinished inbound moves stay at or below ``inbound_move_budget`` (default ``INBOUND_MOVE_BUDGET``). A
  declared state larger than the whole budget is refused at once (413). A move that needs more than is
  free pauses: it stops reading its connection and waits, in arrival order with the other waiters, at
  most ``INBOUND_BUDGET_WAIT`` seconds; then it is refused with 503, ``Retry-After`` and a JSON body
  (``HostBusyError``) and everything it held is freed. The budget is given back when the move ends:
  prepared, refused or failed.
- **Decoding runs in a small thread pool** (``INBOUND_DECODE_WORKERS``), in batches of about
  ``DECODE_BATCH`` wire bytes, so decompression and copying never hold the event loop. Only a small
  envelope's first bytes are decoded on the loop (at most ``ON_LOOP_DECODE`` bytes of state), because a
  thread hop costs more than that work; its header and metadata are checked there at once.
- **A move that stalls is cut by its connection**: the HTTP server requires an average of
  ``MIN_BODY_RATE`` bytes per second of waiting after ``BODY_RATE_GRACE`` (``paglets.http.limits``), so a
  sender trickling a byte a second loses its connection, and its budget, within seconds. Time spent
  waiting for budget or for the decoder is the host's own and does not count against the sender.

Not refused: a large ratio of decoded to compressed bytes. zstd frames of zeros are the honest encoding of
a sparse state, and a frame can never decode beyond ``MAX_FRAME_RAW`` (checked before decompression), so
what bounds an attacker is the budget and the pacing above, not a ratio.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Final

import msgspec

from paglets.core.errors import HostBusyError, LimitExceededError
from paglets.http._body import Piece
from paglets.runtime._handoff import MEMFD_SEGMENTS, SegmentFactory, WritableSegment
from paglets.wire.envelope import DecodedEnvelope, EnvelopeDecoder, EnvelopeMetadata
from paglets.wire.limits import KiB, MiB

__all__ = [
    "DECODE_BATCH",
    "INBOUND_BUDGET_WAIT",
    "INBOUND_DECODE_WORKERS",
    "INBOUND_MOVE_BUDGET",
    "INBOUND_RETRY_AFTER",
    "ON_LOOP_DECODE",
    "BudgetStatistics",
    "InboundBudget",
    "InboundMove",
    "InboundSink",
]

#: Bytes of decoded state that unfinished inbound moves may hold together on one host. 512 MiB lets a
#: host take a state eight times the 64 MiB of the movement benchmark, or several ordinary moves at
#: once, while a host with a few GiB of memory survives any number of hostile envelopes; a move whose
#: declared state is larger than the whole budget is refused at once (413). Raise it with
#: ``Host(inbound_move_budget=...)`` for larger paglets.
INBOUND_MOVE_BUDGET: Final = 512 * MiB

#: Seconds a move waits for budget held by other moves before it is refused with 503. Budget frees when
#: a move completes or its connection is cut, which takes seconds; the wait stays below the 10 s that a
#: sender waits by default for each step of a move (``TransferTicket.timeout``), so the sender reads the
#: 503 instead of timing out.
INBOUND_BUDGET_WAIT: Final = 5.0

#: ``Retry-After`` (seconds) of that 503: about the time for moves in progress to end or be cut.
INBOUND_RETRY_AFTER: Final = 5.0

#: Threads decoding inbound envelopes (one pool per host). zstd and the copies release the interpreter
#: lock for large buffers, so two threads keep two moves progressing on a 2-core host; the queue behind
#: them is bounded by the connections, and each job by ``DECODE_BATCH`` and the budget.
INBOUND_DECODE_WORKERS: Final = 2

#: Wire bytes handed to a decoding thread at a time: large enough that the hop (tens of microseconds) is
#: a small part of the work (a MiB takes about a millisecond to check and copy), small enough that the
#: connection keeps being read while a batch is decoded.
DECODE_BATCH: Final = 1 * MiB

#: Bytes of state an envelope may decode on the event loop itself before the rest goes to the threads:
#: a tiny state (the common case) then costs no thread hop, and the loop is held for at most about a
#: hundred microseconds.
ON_LOOP_DECODE: Final = 256 * KiB

#: Smallest step by which a segment grows (fewer ``mremap`` calls for many small frames).
_GROW_MIN: Final = 1 * MiB
#: Largest step: growth doubles up to it, then goes up by it, so that one move does not reserve far more
#: budget than it is about to write.
_GROW_MAX: Final = 64 * MiB


class BudgetStatistics(msgspec.Struct, frozen=True):
    """What an ``InboundBudget`` holds and has done."""

    limit: int
    used: int
    peak: int
    waiting: int
    waits: int
    refusals: int


class InboundBudget:
    """A host-wide count of bytes held by unfinished inbound moves, never above ``limit``.

    ``try_take`` may be called from any thread (decoding threads grow segments); ``take`` (which waits)
    and ``give`` run on the event loop. Waiters are served in arrival order, and ``try_take`` fails while
    anyone waits, so a stream of small requests cannot starve a larger one.
    """

    def __init__(self, limit: int) -> None:
        if limit <= 0:
            raise ValueError(f"the inbound move budget must be positive, got {limit}")
        self.limit = limit
        self._lock = threading.Lock()
        self._used = 0
        self._peak = 0
        self._waiters: deque[tuple[int, asyncio.Future[None]]] = deque()
        self._waits = 0
        self._refusals = 0

    def try_take(self, nbytes: int) -> bool:
        """Take ``nbytes`` now if they are free and nobody waits (any thread)."""
        with self._lock:
            if self._waiters or self._used + nbytes > self.limit:
                return False
            self._used += nbytes
            self._peak = max(self._peak, self._used)
            return True

    async def take(self, nbytes: int, timeout: float, *, holding: int = 0) -> bool:
        """Take ``nbytes``, waiting at most ``timeout`` seconds for them to be given back; False if they
        were not (the caller then refuses its move).

        ``holding``: bytes the caller holds already. A move that holds bytes does not wait behind another
        waiting move: the one ahead may be waiting for exactly those bytes, and both would wait until
        their deadlines and be refused together. It is refused at once instead (and gives its bytes
        back), so that the move ahead goes on."""
        if nbytes > self.limit:
            return False
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (nbytes, future)
        with self._lock:
            if not self._waiters and self._used + nbytes <= self.limit:
                self._used += nbytes
                self._peak = max(self._peak, self._used)
                return True
            if holding > 0 and self._waiters:
                self._refusals += 1
                return False
            self._waiters.append(entry)
            self._waits += 1
        try:
            async with asyncio.timeout(timeout):
                await future
        except TimeoutError:
            if self._withdraw(entry):
                with self._lock:
                    self._refusals += 1
                return False
            return True  # granted in the same turn as the deadline: keep it
        except BaseException:  # cancelled: the move is going away
            if not self._withdraw(entry):
                self.give(nbytes)
            raise
        return True

    def _withdraw(self, entry: tuple[int, asyncio.Future[None]]) -> bool:
        """Remove a waiter that gave up; False if it was served meanwhile (it then holds its bytes)."""
        future = entry[1]
        with self._lock:
            if future.done() and not future.cancelled():
                return False
            try:
                self._waiters.remove(entry)
            except ValueError:
                pass  # a cancelled future at the head was dropped by _grant already
        future.cancel()
        self._grant()  # a larger request leaving the head of the line may unblock the next ones
        return True

    def give(self, nbytes: int) -> None:
        """Give back ``nbytes`` taken earlier (loop thread) and serve waiters that now fit."""
        if nbytes <= 0:
            return
        with self._lock:
            self._used -= nbytes
        self._grant()

    def _grant(self) -> None:
        with self._lock:
            while self._waiters:
                nbytes, future = self._waiters[0]
                if future.done():
                    self._waiters.popleft()
                    continue
                if self._used + nbytes > self.limit:
                    return
                self._waiters.popleft()
                self._used += nbytes
                self._peak = max(self._peak, self._used)
                future.set_result(None)

    @property
    def used(self) -> int:
        return self._used

    def statistics(self) -> BudgetStatistics:
        with self._lock:
            return BudgetStatistics(
                limit=self.limit,
                used=self._used,
                peak=self._peak,
                waiting=len(self._waiters),
                waits=self._waits,
                refusals=self._refusals,
            )


class InboundSink:
    """Where one inbound move's state goes: a growable memfd segment, each growth paid from the budget.

    ``reserve`` is the envelope decoder's pacing hook: it runs in whichever thread decodes, never waits,
    and answers False either because the budget has not enough free (``wanted`` then says how many bytes
    the move needs; the move waits for them on the loop and feeds again) or because the move decodes on
    the loop and reached its ``loop_limit`` (it continues in a thread).
    """

    __slots__ = (
        "_budget",
        "charged",
        "declared",
        "loop_limit",
        "segment",
        "stopped_on_loop",
        "wanted",
        "written",
    )

    def __init__(
        self, budget: InboundBudget, declared: int, segments: SegmentFactory = MEMFD_SEGMENTS
    ) -> None:
        self._budget = budget
        self.declared = declared
        self.segment = segments.growable()
        #: Budget bytes this move holds (at least the segment's size).
        self.charged = 0
        self.written = 0
        self.wanted = 0
        #: While the move decodes on the loop: the state bytes it may write before moving to a thread.
        self.loop_limit: int | None = None
        self.stopped_on_loop = False

    def reserve(self, nbytes: int) -> bool:
        need = self.written + nbytes
        if self.loop_limit is not None and need > self.loop_limit:
            self.stopped_on_loop = True
            return False
        capacity = self.segment.length
        if need <= capacity:
            return True
        step = min(max(capacity, _GROW_MIN), _GROW_MAX)
        target = min(self.declared, max(need, capacity + step))
        extra = target - self.charged
        if extra > 0 and not self._budget.try_take(extra):
            target = need  # at least this frame
            extra = target - self.charged
            if extra > 0 and not self._budget.try_take(extra):
                self.wanted = extra
                return False
        if extra > 0:
            self.charged += extra
        self.segment.grow(target)
        return True

    def write(self, data: memoryview, /) -> int:
        self.segment.write_at(self.written, data)
        self.written += data.nbytes
        return data.nbytes


class InboundMove:
    """Decode one envelope from an HTTP body into an ``InboundSink`` under the host's budget.

    ``run`` returns the verified envelope, or ``None`` if ``known(metadata)`` said the transfer is one
    this host has already seen (a retry: the caller answers it from its record and the state is
    dropped). Afterwards ``sink`` holds the state; ``release`` (always call it) gives the budget back and
    closes the segment unless the caller took it with ``take_segment``.
    """

    def __init__(
        self,
        budget: InboundBudget,
        executor: concurrent.futures.Executor,
        *,
        max_state_bytes: int,
        wait: float = INBOUND_BUDGET_WAIT,
        segments: SegmentFactory = MEMFD_SEGMENTS,
    ) -> None:
        self._segments = segments
        self._budget = budget
        self._executor = executor
        self._wait = wait
        self._max_state = max_state_bytes
        self.sink: InboundSink | None = None
        self._taken = False
        self._loop_limit: int | None = None
        self.decoder = EnvelopeDecoder(max_state_bytes=max_state_bytes, sink_factory=self._new_sink)

    def _new_sink(self, metadata: EnvelopeMetadata, declared: int) -> InboundSink:
        budget = self._budget.limit
        if declared > budget:
            raise LimitExceededError(
                f"the paglet's state of {declared} bytes is larger than this host's inbound move budget "
                f"({budget} bytes; Host(inbound_move_budget=...) raises it)"
            )
        self.sink = InboundSink(self._budget, declared, self._segments)
        self.sink.loop_limit = self._loop_limit
        return self.sink

    async def run(
        self, chunks: AsyncIterator[Piece], known: Callable[[EnvelopeMetadata], bool]
    ) -> DecodedEnvelope | None:
        batch: list[Piece] = []
        size = 0
        first = True
        async for piece in chunks:
            batch.append(piece)
            size += len(piece)
            if size >= DECODE_BATCH:
                await self._decode(batch, on_loop=False)
                batch, size = [], 0
            elif first:  # the head: header and metadata are checked at once (and tiny states decoded)
                await self._decode(batch, on_loop=True)
                batch, size = [], 0
            first = False
            if self.decoder.metadata is not None and known(self.decoder.metadata):
                return None
        if batch:
            await self._decode(batch, on_loop=size <= ON_LOOP_DECODE)
        if self.decoder.metadata is not None and known(self.decoder.metadata):
            return None
        return self.decoder.finish()

    async def _decode(self, pieces: list[Piece], *, on_loop: bool) -> None:
        loop = asyncio.get_running_loop()
        rest: list[memoryview] = [memoryview(p) for p in pieces]
        while True:
            if on_loop:
                rest = self._feed_on_loop(rest)
            else:
                job = loop.run_in_executor(self._executor, self._feed, rest)
                try:
                    rest = await asyncio.shield(job)
                except asyncio.CancelledError:
                    # the move is going away: let the running job end (it is bounded by the batch and the
                    # budget) before ``release`` gives back what it may still take
                    await asyncio.wait({job})
                    if not job.cancelled():
                        job.exception()  # retrieved: whatever it ended with, the move is over
                    raise
            if not rest:
                return
            sink = self.sink
            assert sink is not None  # only a sink pauses the decoder
            if sink.stopped_on_loop:
                sink.stopped_on_loop = False
                on_loop = False
                continue
            if not await self._budget.take(sink.wanted, self._wait, holding=sink.charged):
                raise HostBusyError(
                    f"this host's inbound move budget ({self._budget.limit} bytes) is taken by other moves; "
                    f"retry in {INBOUND_RETRY_AFTER:g} s",
                    retry_after=INBOUND_RETRY_AFTER,
                )
            sink.charged += sink.wanted
            sink.wanted = 0

    def _feed_on_loop(self, pieces: list[memoryview]) -> list[memoryview]:
        """``_feed`` on the loop, writing at most ``ON_LOOP_DECODE`` state bytes (a sink created meanwhile
        gets the same bound)."""
        self._loop_limit = ON_LOOP_DECODE
        if self.sink is not None:
            self.sink.loop_limit = self.sink.written + ON_LOOP_DECODE
        try:
            return self._feed(pieces)
        finally:
            self._loop_limit = None
            if self.sink is not None:
                self.sink.loop_limit = None

    def _feed(self, pieces: list[memoryview]) -> list[memoryview]:
        """Feed ``pieces`` in order; the ones left (the first partly) if the sink paused the decoder."""
        decoder = self.decoder
        for index, piece in enumerate(pieces):
            used = decoder.feed(piece)
            if decoder.paused:
                return [piece[used:], *pieces[index + 1 :]]
        return []

    def take_segment(self) -> WritableSegment:
        """The state's segment, now owned by the caller (``release`` no longer closes it)."""
        if self.sink is None:  # an empty state: no frame, no sink
            return self._segments.growable()
        self._taken = True
        return self.sink.segment

    def release(self) -> None:
        """The move ended: give its budget back and free the segment unless the caller took it (loop
        thread; idempotent)."""
        sink, self.sink = self.sink, None
        if sink is None:
            return
        if not self._taken:
            sink.segment.close()
        charged, sink.charged = sink.charged, 0
        self._budget.give(charged)
