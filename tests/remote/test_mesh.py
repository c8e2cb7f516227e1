"""Mesh membership over real HTTP servers on 127.0.0.1 (no Host: a self-ref function is enough)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import msgspec
import pytest

from paglets.core.errors import AuthenticationError, HostError, TransferError, UnknownHostError
from paglets.http import AsyncHttpClient, HttpServer, Request, Response, Router, new_event_loop
from paglets.remote._mesh_routes import build_mesh_routes
from paglets.remote.mesh import HostRef, MeshRegistry

T = TypeVar("T")

#: Longest any single wait may take before the test fails (never reached when green).
WAIT = 10.0
INTERVAL = 0.05
OFFLINE_AFTER = 0.5


class Node:
    """One mesh member: a registry and an HTTP server carrying its routes."""

    def __init__(
        self,
        name: str,
        *,
        version: str = "v1",
        seeds: tuple[str, ...] = (),
        port: int = 0,
        api_key: str | None = None,
        **options: Any,
    ) -> None:
        self.name = name
        self.port = port
        self.api_key = api_key
        self.events: list[tuple[str, dict[str, Any]]] = []
        options.setdefault("interval", INTERVAL)
        options.setdefault("offline_after", OFFLINE_AFTER)
        options.setdefault("request_timeout", 2.0)
        self.registry = MeshRegistry(
            self.self_ref,
            code_version=version,
            seeds=seeds,
            api_key=api_key,
            on_event=lambda kind, data: self.events.append((kind, data)),
            **options,
        )
        self.server: HttpServer | None = None

    def self_ref(self) -> HostRef:
        return HostRef(
            self.name, self.url, "overridden", True, 0.0, 1, 0, tags=("lab",), properties={"n": "1"}
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> Node:
        router = Router()
        build_mesh_routes(router, self.registry)
        self.server = HttpServer(router, api_key=self.api_key)
        self.port = await self.server.start(["127.0.0.1"], self.port)
        self.registry.start()
        return self

    async def stop(self) -> None:
        await self.registry.stop()
        if self.server is not None:
            await self.server.close(deadline=1.0)
            self.server = None

    def online_names(self) -> set[str]:
        return {ref.name for ref in self.registry.hosts(online_only=True, include_self=False)}


def run(make: Callable[[list[Node]], Awaitable[T]]) -> T:
    """Run ``make(nodes)`` on a fresh loop; every node appended to ``nodes`` is stopped afterwards."""
    nodes: list[Node] = []

    async def main() -> T:
        try:
            async with asyncio.timeout(WAIT * 3):
                return await make(nodes)
        finally:
            for node in nodes:
                await node.stop()

    loop = new_event_loop()
    try:
        return loop.run_until_complete(main())
    finally:
        loop.close()


async def until(condition: Callable[[], bool], what: str, timeout: float = WAIT) -> float:
    """Poll ``condition`` until it holds; the seconds it took (fails after ``timeout``)."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)
    return time.monotonic() - start


async def chain(nodes: list[Node], count: int, **options: Any) -> list[Node]:
    """``count`` nodes where each one seeds the previous one only."""
    for i in range(count):
        seeds = (nodes[-1].url,) if nodes else ()
        nodes.append(await Node(f"h{i}", seeds=seeds, **options).start())
    return nodes


def converged(nodes: list[Node]) -> bool:
    names = {node.name for node in nodes}
    return all(node.online_names() == names - {node.name} for node in nodes)


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- convergence ------------------------------------------------------------------------------------------


def test_three_hosts_converge_through_a_chain_of_seeds() -> None:
    async def main(nodes: list[Node]) -> None:
        await chain(nodes, 3)
        await until(lambda: converged(nodes), "convergence")
        first = nodes[0].registry
        listed = first.hosts()
        assert [ref.name for ref in listed] == ["h0", "h1", "h2"]  # sorted, self included
        me = next(ref for ref in listed if ref.name == "h0")
        assert me.code_version == "v1"
        assert me.age == 0.0
        peer = first.lookup("h2")
        assert peer is not None
        assert peer.online
        assert peer.tags == ("lab",)
        assert peer.properties == {"n": "1"}
        assert peer.active_count == 1
        assert first.resolve_url("h2") == nodes[2].url
        assert first.resolve_url("http://10.9.9.9:1/") == "http://10.9.9.9:1"
        with pytest.raises(UnknownHostError, match=r"a URL needs its scheme: http://10\.9\.9\.9:1"):
            first.resolve_url("10.9.9.9:1/")  # a scheme-less string is a name, and no member has it
        assert first.is_online(nodes[1].url + "/")
        assert not first.is_online("nobody")
        assert first.peer_urls() == sorted([nodes[1].url, nodes[2].url])
        assert nodes[2].registry.peer_urls(include_known=False) == [nodes[1].url]
        async with AsyncHttpClient() as client:
            body = await client.request_json("GET", nodes[1].url + "/hosts")
        assert sorted(item["name"] for item in body["hosts"]) == ["h0", "h1", "h2"]
        assert all("tags" in item and "properties" in item for item in body["hosts"])
        assert {kind for kind, _ in nodes[0].events} == {"mesh-host-online"}

    run(main)


def test_ten_hosts_converge() -> None:
    async def main(nodes: list[Node]) -> float:
        await chain(nodes, 10)
        return await until(lambda: converged(nodes), "convergence of ten hosts")

    took = run(main)
    assert took < WAIT


def test_steady_state_pairs_exchange_about_one_request_per_interval() -> None:
    async def main(nodes: list[Node]) -> None:
        await chain(nodes, 3)
        await until(lambda: converged(nodes), "convergence")
        servers = [node.server for node in nodes]
        before = sum(s.statistics().requests_served for s in servers if s is not None)
        start_rounds = nodes[0].registry.statistics().rounds
        await until(lambda: nodes[0].registry.statistics().rounds >= start_rounds + 40, "40 rounds")
        served = sum(s.statistics().requests_served for s in servers if s is not None) - before
        pairs = 3
        # one request per pair and interval (the reference: two per direction, so four)
        assert served <= 1.6 * pairs * 40, served
        assert converged(nodes)

    run(main)


# --- version gating -------------------------------------------------------------------------------------


def test_a_host_of_another_code_version_is_never_listed() -> None:
    async def main(nodes: list[Node]) -> None:
        alpha = await Node("alpha").start()
        nodes.append(alpha)
        nodes.append(await Node("other", version="v2", seeds=(alpha.url,)).start())
        nodes.append(await Node("gamma", seeds=(alpha.url,)).start())
        other = nodes[1]
        await until(lambda: alpha.online_names() == {"gamma"}, "alpha sees gamma")
        await until(lambda: nodes[2].online_names() == {"alpha"}, "gamma sees alpha")
        await until(lambda: other.registry.statistics().refusals >= 2, "other refused twice")
        await until(lambda: bool(alpha.registry.rejected()), "alpha records the refusal")
        for node in (alpha, nodes[2]):
            assert "other" not in {ref.name for ref in node.registry.hosts()}
            assert node.registry.lookup("other") is None
        assert [ref.name for ref in other.registry.hosts()] == ["other"]
        rejected = alpha.registry.rejected()
        assert [ref.name for ref in rejected] == ["other"]
        assert rejected[0].code_version == "v2"
        assert "v2" in (rejected[0].error or "")
        assert "mesh-host-rejected" in {kind for kind, _ in alpha.events}
        assert [ref.url for ref in other.registry.rejected()] == [alpha.url]
        assert other.registry.rejected()[0].code_version == "v1"
        assert alpha.registry.statistics().joins_refused >= 1

        wire = other.registry.self_ref().to_wire()
        async with AsyncHttpClient() as client:
            response = await client.request(
                "POST",
                alpha.url + "/hosts/join",
                body=msgspec.json.encode(wire),
                content_type="application/json",
            )
        assert response.status == 409
        body = response.json()
        assert body["error_type"] == "HostError"
        assert "v2" in body["error"]
        assert body["host"]["code_version"] == "v1"

    run(main)


def test_check_version_for_direct_moves() -> None:
    registry = MeshRegistry(lambda: HostRef("a", "http://a:1", "v1", True, 0.0, 0, 0), code_version="v1")
    registry.check_version("v1")
    with pytest.raises(TransferError, match="'v2'"):
        registry.check_version("v2")
    with pytest.raises(TransferError):
        registry.check_version(None)
    registry.check_version("v2", expected="v2")  # a ticket's expected_code_version overrides ours
    with pytest.raises(TransferError, match="expected_code_version"):
        registry.check_version("v1", expected="v2")


# --- liveness ---------------------------------------------------------------------------------------------


def test_a_closed_peer_goes_offline_then_back_online_on_the_same_port() -> None:
    async def main(nodes: list[Node]) -> None:
        alpha = await Node("alpha").start()
        beta = await Node("beta", seeds=(alpha.url,)).start()
        nodes.extend([alpha, beta])
        await until(lambda: converged(nodes), "convergence")
        port = beta.port
        stopped = time.monotonic()
        await beta.stop()
        took = await until(lambda: not alpha.registry.is_online("beta"), "beta offline")
        assert took <= OFFLINE_AFTER + 0.2
        assert time.monotonic() - stopped <= OFFLINE_AFTER + 0.2
        down = alpha.registry.lookup("beta")
        assert down is not None
        assert not down.online
        assert down.error
        assert "beta" in {ref.name for ref in alpha.registry.hosts()}  # offline peers stay listed
        assert "mesh-host-offline" in {kind for kind, _ in alpha.events}
        # back on the same port, without seeds: alpha's own (backed-off) probes find it
        again = await Node("beta", port=port).start()
        nodes.append(again)
        await until(lambda: alpha.registry.is_online("beta"), "beta back online", timeout=5.0)
        await until(lambda: again.online_names() == {"alpha"}, "beta knows alpha again")

    run(main)


def test_offline_detection_ignores_wall_clock_skew() -> None:
    async def main(nodes: list[Node]) -> None:
        alpha = await Node("alpha").start()
        nodes.append(alpha)
        nodes.append(await Node("past", seeds=(alpha.url,), wall_clock=lambda: time.time() - 3600).start())
        nodes.append(await Node("future", seeds=(alpha.url,), wall_clock=lambda: time.time() + 7200).start())
        await until(lambda: converged(nodes), "convergence")
        end = time.monotonic() + 3 * OFFLINE_AFTER
        while time.monotonic() < end:  # several offline_after periods: nobody flaps
            assert converged(nodes)
            await asyncio.sleep(0.02)
        for name in ("past", "future"):
            ref = alpha.registry.lookup(name)
            assert ref is not None
            assert abs(ref.last_seen - time.time()) < 60  # alpha's own clock, not the peer's
        # what "past" says about "future" (via gossip) is judged by the age, not the wall clock
        seen = nodes[1].registry.lookup("future")
        assert seen is not None
        assert seen.online
        assert abs(seen.last_seen - (time.time() - 3600)) < 60

    run(main)


def test_backoff_bounds_requests_to_a_dead_peer() -> None:
    async def main(nodes: list[Node]) -> None:
        dead = f"http://127.0.0.1:{free_port()}"
        alpha = await Node("alpha", seeds=(dead,)).start()
        nodes.append(alpha)
        await until(lambda: alpha.registry.statistics().rounds >= 40, "40 rounds")
        stats = alpha.registry.statistics()
        # 40 rounds without backoff would be 40 requests; with it: 0.05, 0.1, 0.2, 0.4, 0.8, 0.8 ... s
        assert 3 <= stats.requests_sent <= 10, stats
        assert stats.requests_failed == stats.requests_sent
        listed = alpha.registry.lookup(dead)
        assert listed is not None
        assert not listed.online
        assert "cannot connect" in (listed.error or "")

    run(main)


# --- waiting ------------------------------------------------------------------------------------------------


def test_wait_for_host_wakes_as_soon_as_the_host_joins() -> None:
    async def main(nodes: list[Node]) -> float:
        # a long interval: only an event-driven wait can return quickly
        alpha = await Node("alpha", interval=2.0, offline_after=20.0).start()
        nodes.append(alpha)
        waiter = asyncio.create_task(alpha.registry.wait_for_host_async("late", timeout=8.0))
        await asyncio.sleep(0)
        start = time.monotonic()
        late = await Node("late", seeds=(alpha.url,), interval=2.0, offline_after=20.0).start()
        nodes.append(late)
        by_url = asyncio.create_task(alpha.registry.wait_for_host_async(late.url, timeout=8.0))
        ref = await waiter
        took = time.monotonic() - start
        assert ref.name == "late"
        assert ref.online
        assert (await by_url).name == "late"
        # and the other way round: late waits for alpha, known through its seed
        assert (await late.registry.wait_for_host_async("alpha", timeout=8.0)).url == alpha.url
        return took

    took = run(main)
    assert took < 1.0  # well before the 8 s timeout and before the 2 s interval


def test_wait_for_host_times_out_with_host_error() -> None:
    async def main(nodes: list[Node]) -> None:
        alpha = await Node("alpha").start()
        nodes.append(alpha)
        start = time.monotonic()
        with pytest.raises(HostError, match="timed out"):
            await alpha.registry.wait_for_host_async("ghost", timeout=0.2)
        assert 0.15 <= time.monotonic() - start < 2.0  # loop timers may fire a little early
        assert (await alpha.registry.wait_for_host_async("alpha", timeout=0.0)).name == "alpha"
        waiter = asyncio.create_task(alpha.registry.wait_for_host_async("ghost", timeout=8.0))
        await asyncio.sleep(0)
        await alpha.registry.stop()
        with pytest.raises(HostError, match="stopped"):
            await waiter

    run(main)


# --- routes, public mutations, interoperability ---------------------------------------------------------


def test_join_route_refuses_malformed_bodies() -> None:
    async def main(nodes: list[Node]) -> None:
        alpha = await Node("alpha").start()
        nodes.append(alpha)
        bad: list[bytes] = [
            b"",
            b"not json",
            b"[1, 2]",
            b'{"name": 3}',
            b'{"name": "x", "url": "http://x:1", "code_version": "v1", "known_hosts": 5}',
        ]
        async with AsyncHttpClient() as client:
            for body in bad:
                response = await client.request(
                    "POST", alpha.url + "/hosts/join", body=body, content_type="application/json"
                )
                assert response.status == 400, body
            # garbage inside known_hosts is skipped, not fatal
            wire = {"name": "x", "url": "http://127.0.0.1:1", "code_version": "v1", "known_hosts": [1, {}]}
            response = await client.request(
                "POST",
                alpha.url + "/hosts/join",
                body=msgspec.json.encode(wire),
                content_type="application/json",
            )
            assert response.status == 200
            assert response.json()["host"]["name"] == "alpha"
        assert alpha.registry.statistics().invalid_refs == 2

    run(main)


def test_register_mark_offline_join_and_gossip_once() -> None:
    async def main(nodes: list[Node]) -> None:
        alpha = await Node("alpha", interval=5.0, offline_after=50.0).start()
        beta = await Node("beta", interval=5.0, offline_after=50.0).start()
        nodes.extend([alpha, beta])
        # a 2.0-style registration: no age, so no evidence yet
        registered = alpha.registry.register_wire(beta.registry.self_ref().replace(age=None).to_wire())
        assert registered is not None
        assert not registered.online
        assert registered.error == "not contacted yet"
        await until(lambda: alpha.registry.is_online("beta"), "alpha contacts the registered host")
        alpha.registry.mark_offline(beta.url, "dispatch failed")
        assert not alpha.registry.is_online("beta")
        down = alpha.registry.lookup("beta")
        assert down is not None
        assert down.error == "dispatch failed"
        await alpha.registry.gossip_once()
        assert alpha.registry.is_online("beta")
        gamma = await Node("gamma", interval=5.0, offline_after=50.0).start()
        nodes.append(gamma)
        listed = await gamma.registry.join(alpha.url)
        assert {ref.name for ref in listed} == {"alpha", "beta", "gamma"}
        assert gamma.registry.peer_urls(include_known=False) == []  # join does not make a seed
        with pytest.raises(HostError):
            alpha.registry.register_wire({"name": 1})
        with pytest.raises(HostError):
            alpha.registry.add_seed("  ")

    run(main)


def test_a_paglets_2_0_style_peer_is_understood() -> None:
    """A 2.0 host answers a join with refs without ``age`` or ``host``: we find it by its URL."""

    async def main(nodes: list[Node]) -> None:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        elsewhere = f"http://127.0.0.1:{free_port()}"
        joined: list[dict[str, Any]] = []

        async def join(request: Request) -> Response:
            joined.append(msgspec.json.decode(await request.body()))
            hosts = [
                {"name": "old", "url": url + "/", "code_version": "v1", "online": True, "last_seen": 1.0,
                 "active_count": 0, "inactive_count": 0, "tags": [], "properties": {}},
                {"name": "third", "url": elsewhere, "code_version": "v1", "online": True, "last_seen": 9e9,
                 "active_count": 0, "inactive_count": 0, "tags": [], "properties": {}},
            ]  # fmt: skip
            return Response(200, msgspec.json.encode({"hosts": hosts}))

        router = Router()
        router.post("/hosts/join", join)
        server = HttpServer(router)
        await server.start(["127.0.0.1"], port)
        try:
            alpha = await Node("alpha", seeds=(url,)).start()
            nodes.append(alpha)
            await until(lambda: alpha.registry.is_online("old"), "the 2.0 peer online")
            third = alpha.registry.lookup("third")
            assert third is not None
            assert not third.online  # introduced by the 2.0 peer, but no age: not evidence

            def third_probed() -> bool:
                ref = alpha.registry.lookup("third")
                return ref is not None and "cannot connect" in (ref.error or "")

            await until(third_probed, "alpha probes the third host itself")
            assert joined[0]["name"] == "alpha"
            assert "known_hosts" in joined[0]
        finally:
            await server.close(deadline=1.0)

    run(main)


def test_api_key_protects_the_mesh() -> None:
    async def main(nodes: list[Node]) -> None:
        alpha = await Node("alpha", api_key="k").start()
        beta = await Node("beta", api_key="k", seeds=(alpha.url,)).start()
        nodes.extend([alpha, beta])
        await until(lambda: converged(nodes), "convergence with a key")
        intruder = await Node("intruder", seeds=(alpha.url,)).start()
        nodes.append(intruder)
        await until(lambda: intruder.registry.statistics().requests_failed >= 1, "intruder refused")
        seed = intruder.registry.lookup(alpha.url)
        assert seed is not None
        assert "PAGLETS_API_KEY" in (seed.error or "")
        assert "intruder" not in {ref.name for ref in alpha.registry.hosts()}
        async with AsyncHttpClient() as client:
            with pytest.raises(AuthenticationError):
                await client.request_json("GET", alpha.url + "/hosts")

    run(main)


def test_queries_from_other_threads_while_the_loop_mutates() -> None:
    errors: list[BaseException] = []
    done = threading.Event()

    async def main(nodes: list[Node]) -> None:
        await chain(nodes, 4)
        registry = nodes[0].registry

        def reader() -> None:
            try:
                while not done.is_set():
                    registry.hosts()
                    registry.lookup("h3")
                    registry.statistics()
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        thread = threading.Thread(target=reader)
        thread.start()
        try:
            await until(lambda: converged(nodes), "convergence")
        finally:
            done.set()
            await asyncio.to_thread(thread.join, WAIT)

    run(main)
    assert errors == []


def test_multicast_beacons_introduce_hosts() -> None:
    port = free_port(socket.SOCK_DGRAM)
    options: dict[str, Any] = {"multicast": True, "beacon_port": port, "beacon_interface": "127.0.0.1"}

    async def main(nodes: list[Node]) -> None:
        alpha = await Node("alpha", **options).start()
        beta = await Node("beta", **options).start()
        nodes.extend([alpha, beta])

        def ready_or_refused() -> bool:
            stats = alpha.registry.statistics()
            return stats.multicast_active or any(k == "mesh-multicast-unavailable" for k, _ in alpha.events)

        await until(ready_or_refused, "beacon channel")
        if not alpha.registry.statistics().multicast_active:
            pytest.skip("no multicast on loopback here")
        await until(lambda: converged(nodes), "discovery by beacon")
        assert alpha.registry.statistics().beacons_received >= 1
        assert alpha.registry.peer_urls(include_known=False) == []  # beacons never make seeds

    run(main)


def test_rejects_bad_parameters() -> None:
    def make(**options: Any) -> MeshRegistry:
        return MeshRegistry(
            lambda: HostRef("a", "http://a:1", "v", True, 0.0, 0, 0), code_version="v", **options
        )

    for bad in (
        {"interval": 0},
        {"interval": 0.001},
        {"offline_after": -1},
        {"request_timeout": float("nan")},
    ):
        with pytest.raises(ValueError, match="must be"):
            make(**bad)
    with pytest.raises(ValueError, match="code_version"):
        MeshRegistry(lambda: HostRef("a", "http://a:1", "v", True, 0.0, 0, 0), code_version="")


def test_wait_for_host_blocks_from_another_thread() -> None:
    loop = new_event_loop()
    thread = threading.Thread(target=loop.run_forever)
    thread.start()

    def on_loop(coro: Awaitable[T]) -> T:
        async def wrapped() -> T:
            return await coro

        return asyncio.run_coroutine_threadsafe(wrapped(), loop).result(WAIT)

    alpha = Node("alpha", interval=2.0, offline_after=20.0)
    beta = Node("beta", interval=2.0, offline_after=20.0)
    try:
        with pytest.raises(HostError, match="not running"):
            alpha.registry.wait_for_host("alpha", timeout=0.1)
        on_loop(alpha.start())
        beta.registry.add_seed(alpha.url)
        on_loop(beta.start())
        assert alpha.registry.wait_for_host("beta", timeout=WAIT, interval=0.25).name == "beta"
        with pytest.raises(HostError, match="timed out"):
            alpha.registry.wait_for_host("ghost", timeout=0.1)

        async def on_its_own_loop() -> None:
            alpha.registry.wait_for_host("beta", timeout=0.1)

        with pytest.raises(RuntimeError, match="own loop"):
            on_loop(on_its_own_loop())
    finally:
        on_loop(beta.stop())
        on_loop(alpha.stop())
        loop.call_soon_threadsafe(loop.stop)
        thread.join(WAIT)
        loop.close()


# --- injected transports ---------------------------------------------------------------------------------


def test_an_injected_transport_replaces_http() -> None:
    """``post_json`` can be any callable: here the registries answer each other in memory."""
    registries: dict[str, MeshRegistry] = {}

    async def post_json(url: str, payload: dict[str, Any], timeout: float) -> Any:
        target = registries.get(url.removesuffix("/hosts/join"))
        if target is None:
            raise HostError(f"no host at {url}")
        return target.accept_join(payload).body  # 200 or 409 body, as the route would answer

    def make(name: str, version: str = "v1", seeds: tuple[str, ...] = ()) -> MeshRegistry:
        url = f"http://{name}:1"
        registry = MeshRegistry(
            lambda: HostRef(name, url, version, True, 0.0, 0, 0),
            code_version=version,
            seeds=seeds,
            interval=INTERVAL,
            offline_after=OFFLINE_AFTER,
            post_json=post_json,
        )
        registries[url] = registry
        return registry

    async def main() -> None:
        a = make("a")
        b = make("b", seeds=("http://a:1",))
        c = make("c", seeds=("http://b:1",))
        odd = make("odd", version="v2", seeds=("http://c:1",))
        ghost = make("ghost", seeds=("http://nowhere:1",))
        for registry in registries.values():
            registry.start()
        try:

            def names(registry: MeshRegistry) -> set[str]:
                return {ref.name for ref in registry.hosts(online_only=True)}

            await until(lambda: all(names(r) == {"a", "b", "c"} for r in (a, b, c)), "in-memory mesh")
            await until(lambda: bool(c.rejected()) and odd.statistics().refusals > 0, "odd refused")
            assert names(odd) == {"odd"}
            await until(lambda: ghost.statistics().requests_failed > 0, "ghost fails")
            seed = ghost.lookup("http://nowhere:1")
            assert seed is not None
            assert "no host at" in (seed.error or "")
        finally:
            for registry in registries.values():
                await registry.stop()

    loop = new_event_loop()
    try:
        loop.run_until_complete(asyncio.wait_for(main(), WAIT * 3))
    finally:
        loop.close()


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (RuntimeError("transport broke"), "RuntimeError: transport broke"),
        (["not", "an", "object"], "not a JSON object"),
        ({"hosts": 5}, "'hosts' is not a list"),
        ({"hosts": [], "host": {"name": 1}}, "malformed answer"),
    ],
)
def test_failing_or_malformed_answers_mark_the_peer_offline(answer: Any, error: str) -> None:
    async def post_json(url: str, payload: dict[str, Any], timeout: float) -> Any:
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def broken_sink(kind: str, data: dict[str, Any]) -> None:
        raise RuntimeError("listener bug")

    async def main() -> None:
        registry = MeshRegistry(
            lambda: HostRef("a", "http://a:1", "v1", True, 0.0, 0, 0),
            code_version="v1",
            seeds=("http://b:1",),
            interval=INTERVAL,
            post_json=post_json,
            on_event=broken_sink,
        )
        registry.start()
        try:
            await until(lambda: registry.statistics().requests_failed >= 2, "two failed heartbeats")
            seed = registry.lookup("http://b:1")
            assert seed is not None
            assert not seed.online
            assert error in (seed.error or "")
            registry.register(HostRef("c", "http://c:1", "v1", True, 0.0, 0, 0, age=0.0))  # an event
            assert registry.statistics().event_failures >= 1
        finally:
            await registry.stop()

    loop = new_event_loop()
    try:
        loop.run_until_complete(asyncio.wait_for(main(), WAIT * 3))
    finally:
        loop.close()
