"""Mesh service lookups: parallel fan-out within one deadline, caching, sharing, de-duplication."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from typing import Any

import pytest

from paglets.core.errors import RemoteHostError
from paglets.core.runtime_values import ServiceScope
from paglets.http import AsyncHttpClient
from paglets.remote.references import PagletProxyRef
from paglets.services._mesh_lookup import (
    MAX_MESH_LOOKUP_PEERS,
    Fetch,
    MeshServiceLookup,
    http_fetch,
    lookup_mesh,
    services_url,
)
from paglets.services.contracts import ServiceRecord

from .conftest import ServiceHost, run_async

MESH = ServiceScope.MESH


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def record(host: str, agent: str, name: str = "svc", **kwargs: Any) -> ServiceRecord:
    kwargs.setdefault("scope", MESH)
    return ServiceRecord(name, PagletProxyRef(host, agent), host_url=host, **kwargs)


def identities(records: list[ServiceRecord]) -> list[tuple[str, str]]:
    return [(r.host_url, r.agent_id) for r in records]


def test_services_url() -> None:
    assert services_url("http://h:1/") == "http://h:1/services?scope=mesh"
    assert services_url("http://h:1", name="a b", capability="c&d") == (
        "http://h:1/services?name=a+b&capability=c%26d&scope=mesh"
    )
    assert services_url("http://h:1", scope=None) == "http://h:1/services"


# --- against real hosts ---------------------------------------------------------------------------------


def test_parallel_fan_out_skips_a_slow_peer_and_caches(make_host: Callable[..., ServiceHost]) -> None:
    fast1, fast2 = make_host("fast1"), make_host("fast2")
    slow = make_host("slow", stall=True)
    fast1.advertise("f1", "svc", capabilities=["read"], scope=MESH)
    fast1.advertise("f1-local", "svc", capabilities=["read"])  # local scope: never seen by peers
    fast1.advertise("f1-other", "other", scope=MESH)
    fast2.advertise("f2", "svc", capabilities=["read", "write"], scope=MESH)
    slow.advertise("s1", "svc", capabilities=["read"], scope=MESH)
    here = record("http://127.0.0.1:1", "mine")
    deadline = 0.5

    async def main() -> tuple[list[ServiceRecord], list[ServiceRecord], float, Any]:
        lookup = MeshServiceLookup()
        async with AsyncHttpClient() as client:
            fetch = http_fetch(client)
            peers = [slow.url, fast1.url, fast2.url]
            started = time.monotonic()
            first = await lookup.lookup(
                [here], peers, fetch, name="svc", capability="read", deadline=deadline
            )
            elapsed = time.monotonic() - started
            second = await lookup.lookup([here], peers, fetch, name="svc", capability="read", deadline=0.05)
            stats = lookup.statistics()
            await lookup.aclose()
        return first, second, elapsed, stats

    first, second, elapsed, stats = run_async(main)
    # Sequential 2.0-style fan-out would wait for the slow peer before asking the others; in parallel the
    # whole lookup ends at the deadline with everybody else's answers.
    assert deadline - 0.02 <= elapsed < deadline + 1.0
    assert identities(first) == [("http://127.0.0.1:1", "mine"), (fast1.url, "f1"), (fast2.url, "f2")]
    assert first[1].scope is MESH
    assert first[1].host_name == "fast1"
    assert identities(second) == identities(first)
    assert (fast1.requests, fast2.requests, slow.requests) == (1, 1, 1)  # second lookup: cache + shared
    assert stats.cache_hits == 2
    assert stats.requests == 3
    assert stats.shared_requests == 1
    assert stats.in_flight == 1  # the slow request was still running when the stats were taken


def test_cache_expires_and_failures_are_skipped_for_a_while(make_host: Callable[..., ServiceHost]) -> None:
    peer = make_host("peer")
    peer.advertise("p1", "svc", scope=MESH)
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    clock = Clock()

    async def main() -> list[list[ServiceRecord]]:
        lookup = MeshServiceLookup(clock=clock, ttl=2.0, failure_ttl=1.0)
        calls: list[str] = []
        async with AsyncHttpClient() as client:
            inner = http_fetch(client)

            async def fetch(url: str) -> Any:
                calls.append(url.split("/services")[0])
                return await inner(url)

            results = [await lookup.lookup([], [dead, peer.url], fetch, name="svc")]
            assert calls == [dead, peer.url]
            clock.now = 0.9
            results.append(await lookup.lookup([], [dead, peer.url], fetch, name="svc"))
            assert len(calls) == 2  # both answers cached (the failure too)
            clock.now = 1.0
            results.append(await lookup.lookup([], [dead, peer.url], fetch, name="svc"))
            assert calls[2:] == [dead]  # the failure expired first
            peer.advertise("p2", "svc", scope=MESH)
            clock.now = 2.0
            results.append(await lookup.lookup([], [dead, peer.url], fetch, name="svc"))
            assert sorted(calls[3:]) == sorted([dead, peer.url])
            assert lookup.statistics().failures == 3
            lookup.invalidate(peer.url)
            results.append(await lookup.lookup([], [peer.url], fetch, name="svc"))
            assert calls[-1] == peer.url
            assert len(calls) == 6
            await lookup.aclose()
        return results

    results = run_async(main)
    assert [identities(r) for r in results[:3]] == [[(peer.url, "p1")]] * 3
    assert identities(results[3]) == [(peer.url, "p1"), (peer.url, "p2")]
    assert identities(results[4]) == identities(results[3])


def test_peer_scope_filter_and_dedup(make_host: Callable[..., ServiceHost]) -> None:
    peer = make_host("peer")
    mine = peer.advertise("p1", "svc", scope=MESH)
    peer.advertise("p2", "svc")  # local scope

    async def main() -> list[ServiceRecord]:
        async with AsyncHttpClient() as client:
            # The peer is listed twice and the local list already holds its record.
            return await lookup_mesh([mine], [peer.url, peer.url + "/"], http_fetch(client), name="svc")

    result = run_async(main)
    assert result == [mine]
    assert peer.requests == 1


# --- with fetch functions (no sockets) ------------------------------------------------------------------


def test_answers_in_peer_order_and_malformed_records_are_dropped() -> None:
    answers: dict[str, Any] = {
        "http://b": {"services": [record("http://b", "b1").to_wire(), {"name": "broken"}]},
        "http://a": [
            record("http://a", "a1").to_wire(),
            record("http://a", "a2", scope=ServiceScope.LOCAL).to_wire(),  # not mesh: dropped
            record("http://a", "a3", name="other").to_wire(),  # a peer ignoring ?name=: filtered
            record("http://a", "a4", capabilities=("x",)).to_wire(),
        ],
        "http://c": {"nothing": True},
        "http://d": "garbage",
    }

    async def fetch(url: str) -> Any:
        return answers[url.split("/services")[0]]

    async def main() -> tuple[list[ServiceRecord], list[ServiceRecord], Any]:
        lookup = MeshServiceLookup()
        peers = ["http://a", "http://b", "http://c", "http://d"]
        everything = await lookup.lookup([], peers, fetch, name="svc")
        with_x = await lookup.lookup([], peers, fetch, name="svc", capability="x")
        stats = lookup.statistics()
        await lookup.aclose()
        return everything, with_x, stats

    everything, with_x, stats = run_async(main)
    assert identities(everything) == [("http://a", "a1"), ("http://a", "a4"), ("http://b", "b1")]
    assert identities(with_x) == [("http://a", "a4")]
    assert stats.malformed_records == 2
    assert stats.failures == 4


def test_concurrent_lookups_share_one_request_per_peer() -> None:
    calls: list[str] = []

    async def main() -> list[list[ServiceRecord]]:
        gate, started = asyncio.Event(), asyncio.Event()

        async def fetch(url: str) -> Any:
            calls.append(url)
            started.set()
            await gate.wait()
            return [record("http://a", "a1").to_wire()]

        lookup = MeshServiceLookup()
        lookups = [
            asyncio.ensure_future(lookup.lookup([], ["http://a"], fetch, name="svc", deadline=5.0))
            for _ in range(5)
        ]
        await started.wait()
        gate.set()
        results = await asyncio.gather(*lookups)
        assert lookup.statistics().shared_requests == 4
        await lookup.aclose()
        return results

    results = run_async(main)
    assert len(calls) == 1
    assert all(identities(r) == [("http://a", "a1")] for r in results)


def test_one_shot_lookup_cancels_what_is_left_at_the_deadline() -> None:
    cancelled: list[str] = []

    async def main() -> list[ServiceRecord]:
        async def fetch(url: str) -> Any:
            if url.startswith("http://hung"):
                try:
                    await asyncio.Event().wait()
                except asyncio.CancelledError:
                    cancelled.append(url)
                    raise
            if url.startswith("http://err"):
                raise RemoteHostError("boom")
            return [record("http://ok", "o1").to_wire()]

        return await lookup_mesh(
            [record("http://me", "m1")], ["http://hung", "http://err", "http://ok"], fetch, deadline=0.05
        )

    result = run_async(main)
    assert identities(result) == [("http://me", "m1"), ("http://ok", "o1")]
    assert len(cancelled) == 1


def test_requests_outlive_a_short_lookup_and_fill_the_cache() -> None:
    async def main() -> tuple[list[ServiceRecord], list[ServiceRecord]]:
        gate = asyncio.Event()

        async def fetch(url: str) -> Any:
            await gate.wait()
            return [record("http://a", "a1").to_wire()]

        lookup = MeshServiceLookup()
        early = await lookup.lookup([], ["http://a"], fetch, deadline=0.0)
        gate.set()
        assert await lookup.wait_idle(5.0)
        late = await lookup.lookup([], ["http://a"], _never_called, deadline=0.0)
        await lookup.aclose()
        return early, late

    early, late = run_async(main)
    assert early == []
    assert identities(late) == [("http://a", "a1")]


async def _never_called(url: str) -> Any:
    raise AssertionError(f"unexpected request to {url}")


def test_peer_timeout_counts_as_failure() -> None:
    async def main() -> Any:
        async def fetch(url: str) -> Any:
            await asyncio.Event().wait()

        lookup = MeshServiceLookup(peer_timeout=0.01)
        assert await lookup.lookup([], ["http://a"], fetch, deadline=0.0) == []
        assert not await lookup.wait_idle(0.0)
        assert await lookup.wait_idle(5.0)
        stats = lookup.statistics()
        await lookup.aclose()
        return stats

    stats = run_async(main)
    assert stats.timeouts == 1
    assert stats.cached_entries == 1


def test_cache_is_bounded() -> None:
    async def fetch(url: str) -> Any:
        return []

    async def main() -> int:
        lookup = MeshServiceLookup(max_entries=8)
        for i in range(20):
            await lookup.lookup([], ["http://a", "http://b"], fetch, name=f"s{i}")
        count = lookup.statistics().cached_entries
        await lookup.aclose()
        return count

    assert run_async(main) == 8


def test_closed_lookup_refuses_work() -> None:
    async def main() -> None:
        lookup = MeshServiceLookup()
        await lookup.aclose()
        fetch: Fetch = _never_called
        with pytest.raises(RuntimeError):
            await lookup.lookup([], ["http://a"], fetch)

    run_async(main)


def test_peers_per_lookup_are_bounded() -> None:
    asked: list[str] = []

    async def fetch(url: str) -> Any:
        asked.append(url)
        return []

    async def main() -> Any:
        lookup = MeshServiceLookup()
        await lookup.lookup([], [f"http://p{i}" for i in range(MAX_MESH_LOOKUP_PEERS + 5)], fetch)
        stats = lookup.statistics()
        await lookup.aclose()
        return stats

    stats = run_async(main)
    assert len(asked) == MAX_MESH_LOOKUP_PEERS
    assert stats.skipped_peers == 5
