"""The membership protocol in a deterministic simulation: real registries, a simulated clock, an
in-memory transport that can kill, slow down or drop hosts, and a seeded random source.

Each simulated host is a ``MeshRegistry`` whose protocol steps (periods and gossip ticks) the simulation
runs itself at simulated times, instead of the registry's own task; requests go straight to the target
registry's ``accept_join`` / ``accept_probe``. Nothing sleeps: a run of minutes of simulated time takes
well under a second per test.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paglets.core.errors import HostError
from paglets.http import new_event_loop
from paglets.remote._mesh_gossip import GOSSIP_TICKS
from paglets.remote._mesh_ref import HostRef
from paglets.remote._mesh_updates import ALIVE, BroadcastQueue, Update, retransmit_limit
from paglets.remote.mesh import MeshRegistry

T = TypeVar("T")

INTERVAL = 1.0
OFFLINE_AFTER = 10.0
TICK = INTERVAL / GOSSIP_TICKS


class Sim:
    """``count`` hosts ``http://hN:1``; host i>0 seeds ``seed_of(i)``."""

    def __init__(self, count: int, *, seed: int = 1, seed_of: Callable[[int], int] = lambda i: 0) -> None:
        self.now = 0.0
        self.rng = random.Random(seed)
        self.dead: set[str] = set()
        #: url -> probability that a request *to* it is lost (a slow host whose answers time out)
        self.lossy: dict[str, float] = {}
        #: url -> how many of the others' periods pass per period of its own (a starved host)
        self.slowness: dict[str, int] = {}
        self.requests: dict[str, int] = {}
        self.first_request_to: dict[str, float] = {}
        self.registries: dict[str, MeshRegistry] = {}
        self.next_period: dict[str, float] = {}
        self.periods: dict[str, int] = {}
        for i in range(count):
            url = f"http://h{i}:1"
            seeds = (f"http://h{seed_of(i)}:1",) if i else ()
            self.registries[url] = self._make(f"h{i}", url, seeds)
            self.next_period[url] = self.rng.uniform(0, INTERVAL)
            self.periods[url] = 0

    def _make(self, name: str, url: str, seeds: tuple[str, ...]) -> MeshRegistry:
        return MeshRegistry(
            lambda: HostRef(name, url, "v1", True, 0.0, 0, 0),
            code_version="v1",
            seeds=seeds,
            interval=INTERVAL,
            offline_after=OFFLINE_AFTER,
            request_timeout=0.5,
            post_json=self.post,
            clock=lambda: self.now,
            wall_clock=lambda: 1_000_000.0 + self.now,
            rng=random.Random(self.rng.random()),
        )

    async def post(self, url: str, payload: dict[str, Any], timeout: float) -> Any:
        base, _, route = url.rpartition("/hosts/")
        self.requests[base] = self.requests.get(base, 0) + 1
        if base in self.dead:
            self.first_request_to.setdefault(base, self.now)
            raise HostError(f"cannot connect to {base}")
        target = self.registries.get(base)
        if target is None:
            raise HostError(f"cannot connect to {base}")
        if self.rng.random() < self.lossy.get(base, 0.0):
            raise TimeoutError
        if route == "probe":
            return await target.accept_probe(payload)
        return target.accept_join(payload).body

    def live(self) -> list[str]:
        return [url for url in self.registries if url not in self.dead]

    async def run(self, seconds: float, check: Callable[[], None] | None = None) -> None:
        """Advance the simulated time by ``seconds``, one gossip tick at a time."""
        end = self.now + seconds
        while self.now < end:
            self.now = round(self.now + TICK, 9)
            for url in self.live():
                gossip = self.registries[url]._gossip
                period = False
                if self.now >= self.next_period[url]:
                    self.periods[url] += 1
                    period = self.periods[url] % self.slowness.get(url, 1) == 0
                    self.next_period[url] += INTERVAL
                if period or gossip.busy():
                    await gossip.step(period=period)
            if check is not None:
                check()

    def online_view(self, url: str) -> set[str]:
        return {ref.url for ref in self.registries[url].hosts(online_only=True)}

    def converged(self) -> bool:
        live = set(self.live())
        return all(self.online_view(url) == live for url in live)


def simulate(body: Callable[[Sim], Awaitable[T]], sim: Sim) -> T:
    loop = new_event_loop()
    try:
        return loop.run_until_complete(asyncio.wait_for(body(sim), 60))
    finally:
        loop.close()


@pytest.mark.parametrize(("count", "topology"), [(10, "star"), (40, "star"), (25, "chain")])
def test_hosts_converge_quickly_and_then_send_a_constant_load(count: int, topology: str) -> None:
    seed_of: Callable[[int], int] = (lambda i: 0) if topology == "star" else (lambda i: i - 1)
    sim = Sim(count, seed_of=seed_of)

    async def body(sim: Sim) -> tuple[float, float]:
        start = sim.now
        while not sim.converged():
            await sim.run(TICK)
            assert sim.now - start < 30, "no convergence"
        took = sim.now - start
        await sim.run(20)  # let the updates of the joins die down
        before = sum(sim.requests.values())
        await sim.run(60)
        per_host_period = (sum(sim.requests.values()) - before) / count / 60
        assert sim.converged()
        return took, per_host_period

    took, load = simulate(body, sim)
    assert took < 10, took
    # one probe per period and host, plus the occasional full sync: independent of the mesh size
    assert load <= 1.2, load


def test_a_killed_host_is_declared_offline_everywhere_within_the_bound() -> None:
    sim = Sim(30)

    async def body(sim: Sim) -> float:
        await sim.run(15)
        assert sim.converged()
        victim = "http://h7:1"
        sim.dead.add(victim)
        killed = sim.now
        while any(victim in sim.online_view(url) for url in sim.live()):
            await sim.run(TICK)
            assert sim.now - killed < 60, "never declared offline"
        first_probe = sim.first_request_to[victim]
        # suspected at the first failed probe; offline everywhere within offline_after of it
        assert sim.now - first_probe <= OFFLINE_AFTER, sim.now - first_probe
        for url in sim.live():
            ref = sim.registries[url].lookup(victim)
            assert ref is not None
            assert not ref.online
        await sim.run(5)
        assert sim.converged()  # and nobody else went offline meanwhile
        return sim.now - killed

    took = simulate(body, sim)
    assert took <= OFFLINE_AFTER + 3 * INTERVAL, took


def test_a_slow_but_alive_host_is_never_declared_offline() -> None:
    sim = Sim(20, seed=7)
    slow = "http://h5:1"

    def never_offline() -> None:
        for url in sim.live():
            if url != slow:
                assert slow in sim.online_view(url), (url, sim.now)

    async def body(sim: Sim) -> int:
        await sim.run(15)
        assert sim.converged()
        sim.lossy[slow] = 0.3  # almost a third of the requests to it time out
        sim.slowness[slow] = 4  # and it runs one period in four
        await sim.run(200, never_offline)
        return sum(r.statistics().suspicions for r in sim.registries.values())

    suspicions = simulate(body, sim)
    assert suspicions > 0  # it was suspected now and then, and refuted every time


def test_a_restarted_host_comes_back_and_its_refutation_wins() -> None:
    sim = Sim(12, seed=3)

    async def body(sim: Sim) -> None:
        await sim.run(15)
        victim = "http://h4:1"
        sim.dead.add(victim)
        await sim.run(OFFLINE_AFTER + 5)
        assert all(victim not in sim.online_view(url) for url in sim.live())
        # the same URL again, a fresh process that knows only its seed
        sim.registries[victim] = sim._make("h4", victim, ("http://h0:1",))
        sim.dead.discard(victim)
        await sim.run(10)
        assert sim.converged()

    simulate(body, sim)


def test_the_broadcast_queue_empties_and_never_outgrows_the_mesh() -> None:
    sim = Sim(30, seed=11)

    def bounded() -> None:
        for registry in sim.registries.values():
            assert len(registry._gossip.queue) <= len(sim.registries)

    async def body(sim: Sim) -> None:
        await sim.run(30, bounded)
        sim.dead.add("http://h3:1")
        await sim.run(30, bounded)
        await sim.run(20, bounded)
        assert all(len(r._gossip.queue) == 0 for url, r in sim.registries.items() if url not in sim.dead)

    simulate(body, sim)


# --- the broadcast queue on its own ------------------------------------------------------------------------


def _update(i: int, incarnation: int = 0) -> Update:
    return Update(HostRef(f"h{i}", f"http://h{i}:1", "v1", True, 0.0, 0, 0), incarnation, ALIVE)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.tuples(st.just("put"), st.integers(0, 40)),
            st.tuples(st.just("take"), st.integers(0, 20)),
        ),
        max_size=300,
    ),
    st.integers(1, 64),
)
def test_queue_is_bounded_and_sends_each_update_a_bounded_number_of_times(
    ops: list[tuple[str, int]], members: int
) -> None:
    queue = BroadcastQueue(max_entries=16)
    sent: dict[tuple[str, int], int] = {}
    version = 0
    for op, n in ops:
        if op == "put":
            version += 1
            queue.put(_update(n, version))
        else:
            out = queue.take(n, members)
            assert len(out) <= n
            assert len({item["url"] for item in out}) == len(out)  # one update per host per message
            for item in out:
                key = (item["url"], item["incarnation"])
                sent[key] = sent.get(key, 0) + 1
        assert len(queue) <= 16
    assert all(count <= retransmit_limit(members) for count in sent.values())


def test_queue_sends_what_concerns_the_receiver_first() -> None:
    queue = BroadcastQueue(max_entries=8)
    for i in range(5):
        queue.put(_update(i))
    first = queue.take(2, 10, first="http://h3:1")
    assert first[0]["url"] == "http://h3:1"
    queue.put(_update(1, 7))  # a newer update replaces the pending one about the same host
    urls = [item["url"] for item in queue.take(8, 10)]
    assert urls.count("http://h1:1") == 1
