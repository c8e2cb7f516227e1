"""The forwarding log: entries visible at once, frames made durable in the order they were made."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from paglets.persistence._fileio import SyncTimer
from paglets.persistence._forwards import ForwardStore
from paglets.runtime._forwarding import Forwarding
from paglets.wire.control import ProxyRef


def _reopened(root: Path) -> ForwardStore:
    store = ForwardStore(root)
    store.load()
    return store


def test_a_noted_entry_is_seen_at_once_and_lasts_once_logged(tmp_path: Path) -> None:
    store = _reopened(tmp_path)
    frame = store.note("a1", "http://127.0.0.1:9", "a1")
    assert store.lookup("a1") is not None
    assert _reopened(tmp_path).lookup("a1") is None  # not on disk yet
    store.log(frame)
    store.close()
    found = _reopened(tmp_path).lookup("a1")
    assert found is not None
    assert found.host_url == "http://127.0.0.1:9"


def test_frames_logged_in_order_leave_the_last_word(tmp_path: Path) -> None:
    store = _reopened(tmp_path)
    added = store.note("a1", "http://127.0.0.1:9", "a1")
    removed = store.unnote("a1")
    assert removed is not None
    assert store.lookup("a1") is None
    assert store.unnote("a1") is None  # nothing left to remove
    store.log(added)
    store.log(removed)
    store.close()
    assert _reopened(tmp_path).lookup("a1") is None


def test_forwarding_answers_before_the_disk_and_flushes_in_order_at_close(tmp_path: Path) -> None:
    async def scenario() -> None:
        forwarding = Forwarding(
            tmp_path, host_name="alpha", address=lambda: "http://127.0.0.1:1", spawn=lambda coro: None
        )
        await forwarding.start()
        for n in range(50):  # the same paglets leave and come back, as a busy itinerary does
            agent = f"p{n % 5}"
            await forwarding.record(agent, ProxyRef("http://127.0.0.1:2", agent))
            assert forwarding.lookup(agent) == ProxyRef("http://127.0.0.1:2", agent)
            if n % 2:
                await forwarding.forget(agent)
                assert forwarding.lookup(agent) is None
        await forwarding.close()

    asyncio.run(asyncio.wait_for(scenario(), 30))
    live = _reopened(tmp_path).entries()
    # p0..p4 were last recorded at n = 45..49; those of odd n (p0, p2, p4) were forgotten right after
    assert sorted(live) == ["p1", "p3"]


def test_sync_timer_runs_in_place_only_while_syncs_are_fast() -> None:
    timer = SyncTimer(inline_below=0.010)
    assert not timer.inline  # unknown: the first write goes to a worker
    timer.timed(time.perf_counter())
    assert timer.inline
    timer.timed(time.perf_counter() - 0.5)  # one slow sync
    assert not timer.inline
    for _ in range(30):
        timer.timed(time.perf_counter())
    assert timer.inline  # fast again
