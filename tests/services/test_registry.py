"""The per-host service registry: keys, order, TTL expiry (injected clock, no sleeps), bounds."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from paglets.core.errors import HostError, LimitExceededError, SerializationError
from paglets.core.runtime_values import ServiceScope
from paglets.remote.references import PagletProxyRef
from paglets.services.contracts import ServiceRecord
from paglets.services.registry import (
    MAX_SERVICE_METADATA,
    MAX_SERVICE_NAME,
    ServiceRegistry,
    new_record,
)

HOST = "http://127.0.0.1:9001"


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def registry(clock: Clock) -> ServiceRegistry:
    return ServiceRegistry(clock=clock)


def advertise(registry: ServiceRegistry, agent: str, name: str, **kwargs: Any) -> ServiceRecord:
    return registry.advertise_service(agent, name, host_name="alpha", host_url=HOST, **kwargs)


def names(records: list[ServiceRecord]) -> list[tuple[str, str]]:
    return [(r.name, r.agent_id) for r in records]


def test_advertise_builds_the_record(registry: ServiceRegistry, clock: Clock) -> None:
    record = advertise(registry, "a1", "svc", capabilities=["x", "y"], metadata={"k": 1}, ttl=5)
    assert record == ServiceRecord(
        "svc",
        PagletProxyRef(HOST, "a1"),
        ("x", "y"),
        {"k": 1},
        ServiceScope.LOCAL,
        "alpha",
        HOST,
        advertised_at=clock.now,
        expires_at=clock.now + 5,
    )
    assert registry.get("svc", "a1") is record
    assert registry.records_of("a1") == [record]


def test_keys_order_and_replacement(registry: ServiceRegistry) -> None:
    advertise(registry, "a1", "svc")
    advertise(registry, "a2", "svc")
    advertise(registry, "a1", "other")
    replaced = advertise(registry, "a1", "svc", capabilities=["new"])
    assert names(registry.lookup()) == [("svc", "a1"), ("svc", "a2"), ("other", "a1")]
    assert registry.lookup("svc")[0] is replaced
    assert len(registry) == 3
    assert registry.statistics().advertised == 4


def test_lookup_filters(registry: ServiceRegistry) -> None:
    advertise(registry, "a1", "svc", capabilities=["read"], scope=ServiceScope.MESH)
    advertise(registry, "a2", "svc", capabilities=["read", "write"])
    advertise(registry, "a3", "log", capabilities=["write"], scope=ServiceScope.MESH)
    assert names(registry.lookup("svc", capability="write")) == [("svc", "a2")]
    assert names(registry.lookup(capability="write")) == [("svc", "a2"), ("log", "a3")]
    assert names(registry.lookup(scope=ServiceScope.MESH)) == [("svc", "a1"), ("log", "a3")]
    assert names(registry.lookup(scope=ServiceScope.LOCAL)) == [("svc", "a2")]
    assert registry.lookup("nothing") == []
    assert registry.lookup_one("svc", capability="read") is not None
    assert registry.lookup_one("svc", capability="read").agent_id == "a1"  # type: ignore[union-attr]
    assert registry.lookup_one("svc", capability="delete") is None


def test_unadvertise(registry: ServiceRegistry) -> None:
    advertise(registry, "a1", "svc")
    advertise(registry, "a2", "svc")
    advertise(registry, "a1", "other")
    assert registry.unadvertise("svc", "a3") == []
    assert names(registry.unadvertise("svc", "a1")) == [("svc", "a1")]
    assert names(registry.lookup()) == [("svc", "a2"), ("other", "a1")]
    advertise(registry, "a1", "svc")
    assert names(registry.unadvertise("svc")) == [("svc", "a2"), ("svc", "a1")]
    assert registry.unadvertise("svc") == []
    assert names(registry.lookup()) == [("other", "a1")]


def test_remove_agent_with_keep(registry: ServiceRegistry) -> None:
    advertise(registry, "a1", "svc")
    advertise(registry, "a1", "resident", metadata={"paglets.resident_service": {"agent_id": "a1"}})
    advertise(registry, "a2", "svc")
    removed = registry.remove_agent("a1", keep=lambda r: "paglets.resident_service" in r.metadata)
    assert names(removed) == [("svc", "a1")]
    assert names(registry.lookup()) == [("resident", "a1"), ("svc", "a2")]
    assert names(registry.remove_agent("a1")) == [("resident", "a1")]
    assert registry.remove_agent("a1") == []
    assert registry.statistics().agents == 1


def test_ttl_expiry_on_read_and_purge(registry: ServiceRegistry, clock: Clock) -> None:
    advertise(registry, "a1", "svc", ttl=10)
    advertise(registry, "a2", "svc", ttl=20)
    advertise(registry, "a3", "svc")
    clock.now += 9.99
    assert len(registry.lookup("svc")) == 3
    clock.now += 0.01  # expires_at <= now: gone
    assert names(registry.lookup("svc")) == [("svc", "a2"), ("svc", "a3")]
    assert registry.get("svc", "a1") is None
    assert names(registry.purge_expired(clock.now + 20)) == [("svc", "a2")]
    assert names(registry.lookup()) == [("svc", "a3")]
    assert registry.statistics().expired == 2


def test_refresh_extends_the_ttl(registry: ServiceRegistry, clock: Clock) -> None:
    advertise(registry, "a1", "svc", ttl=10)
    clock.now += 8
    advertise(registry, "a1", "svc", ttl=10)  # the old deadline no longer applies
    clock.now += 5
    assert names(registry.lookup()) == [("svc", "a1")]
    advertise(registry, "a1", "svc")  # no ttl any more
    clock.now += 100
    assert names(registry.lookup()) == [("svc", "a1")]
    assert registry.statistics().expired == 0


def test_stale_expiry_entries_stay_bounded(registry: ServiceRegistry, clock: Clock) -> None:
    for _ in range(1000):
        advertise(registry, "a1", "svc", ttl=3600)
    assert len(registry._expiry) <= 2 * len(registry._records) + 65
    clock.now += 3600
    assert registry.lookup() == []


def test_bounds(clock: Clock) -> None:
    registry = ServiceRegistry(max_records=3, max_per_agent=2, clock=clock)
    advertise(registry, "a1", "s1")
    advertise(registry, "a1", "s2")
    with pytest.raises(LimitExceededError, match="already advertises 2"):
        advertise(registry, "a1", "s3")
    advertise(registry, "a1", "s2", capabilities=["x"])  # replacing is always fine
    advertise(registry, "a2", "s1", ttl=1)
    with pytest.raises(LimitExceededError, match="full"):
        advertise(registry, "a3", "s1")
    clock.now += 1  # the expired record frees its slot
    advertise(registry, "a3", "s1")
    assert len(registry) == 3


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"name": ""}, HostError),
        ({"name": "   "}, HostError),
        ({"name": "x" * (MAX_SERVICE_NAME + 1)}, LimitExceededError),
        ({"capabilities": "abc"}, HostError),
        ({"capabilities": [""]}, HostError),
        ({"capabilities": [3]}, HostError),
        ({"capabilities": ["c"] * 300}, LimitExceededError),
        ({"metadata": {"big": "x" * MAX_SERVICE_METADATA}}, LimitExceededError),
        ({"metadata": {1: "int key"}}, HostError),
        ({"metadata": {"obj": object()}}, SerializationError),
        ({"ttl": 0}, HostError),
        ({"ttl": -1.0}, HostError),
        ({"ttl": float("inf")}, HostError),
        ({"ttl": float("nan")}, HostError),
        ({"ttl": True}, HostError),
        ({"agent_id": ""}, HostError),
    ],
)
def test_malformed_advertisements(registry: ServiceRegistry, kwargs: dict[str, Any], error: type) -> None:
    values: dict[str, Any] = {"agent_id": "a1", "name": "svc", "host_name": "alpha", "host_url": HOST}
    values.update(kwargs)
    with pytest.raises(error):
        registry.advertise_service(values.pop("agent_id"), values.pop("name"), **values)
    assert len(registry) == 0


def test_new_record_rejects_a_raw_scope_string() -> None:
    with pytest.raises(TypeError):
        new_record("a", "svc", host_name="h", host_url=HOST, scope="mesh", now=0.0)  # type: ignore[arg-type]


def test_advertise_checks_records_built_elsewhere(registry: ServiceRegistry) -> None:
    with pytest.raises(HostError):
        registry.advertise(ServiceRecord("", PagletProxyRef(HOST, "a1")))
    record = ServiceRecord("svc", PagletProxyRef(HOST, "a1"), advertised_at=1.0, expires_at=2.0)
    assert registry.advertise(record) is record
    assert registry.lookup() == []  # already expired by the registry's clock


def test_clear_and_statistics(registry: ServiceRegistry) -> None:
    advertise(registry, "a1", "svc", ttl=5)
    registry.lookup()
    registry.clear()
    stats = registry.statistics()
    assert (stats.records, stats.agents, stats.advertised, stats.removed, stats.lookups) == (0, 0, 1, 1, 1)


def test_concurrent_use_from_threads(clock: Clock) -> None:
    registry = ServiceRegistry(clock=clock)
    start = threading.Barrier(4)
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            start.wait(5)
            for i in range(200):
                advertise(registry, f"w{worker}", f"s{i % 50}", ttl=100)
                registry.lookup(f"s{i % 7}")
                if i % 3 == 0:
                    registry.unadvertise(f"s{i % 50}", f"w{worker}")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert not errors
    records = registry.lookup()
    assert len({(r.name, r.agent_id) for r in records}) == len(records)
    for worker in range(4):
        assert len(registry.records_of(f"w{worker}")) == len(
            [r for r in records if r.agent_id == f"w{worker}"]
        )


class RegistryMachine(RuleBasedStateMachine):
    """The registry against a plain dict model: same live records, same order, whatever the sequence."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = Clock(0.0)
        self.registry = ServiceRegistry(clock=self.clock, max_records=1000, max_per_agent=1000)
        self.model: dict[tuple[str, str], ServiceRecord] = {}

    def _expire_model(self) -> None:
        for key in [k for k, r in self.model.items() if r.is_expired(self.clock.now)]:
            del self.model[key]

    @rule(
        agent=st.sampled_from(["a", "b", "c"]),
        name=st.sampled_from(["s1", "s2", "s3"]),
        ttl=st.none() | st.integers(1, 5),
    )
    def advertise(self, agent: str, name: str, ttl: int | None) -> None:
        self._expire_model()
        record = advertise(self.registry, agent, name, ttl=ttl)
        self.model[(name, agent)] = record

    @rule(name=st.sampled_from(["s1", "s2", "s3"]), agent=st.none() | st.sampled_from(["a", "b", "c"]))
    def unadvertise(self, name: str, agent: str | None) -> None:
        self._expire_model()
        removed = self.registry.unadvertise(name, agent)
        expected = [r for k, r in self.model.items() if k[0] == name and (agent is None or k[1] == agent)]
        assert sorted(names(removed)) == sorted(names(expected))
        for record in expected:
            del self.model[(record.name, record.agent_id)]

    @rule(agent=st.sampled_from(["a", "b", "c"]))
    def remove_agent(self, agent: str) -> None:
        self._expire_model()
        removed = self.registry.remove_agent(agent)
        expected = [r for k, r in self.model.items() if k[1] == agent]
        assert names(removed) == names(expected)
        for record in expected:
            del self.model[(record.name, record.agent_id)]

    @rule(step=st.integers(0, 3))
    def tick(self, step: int) -> None:
        self.clock.now += step

    @invariant()
    def same_records(self) -> None:
        self._expire_model()
        assert self.registry.lookup() == list(self.model.values())
        for name in ("s1", "s2", "s3"):
            assert self.registry.lookup(name) == [r for r in self.model.values() if r.name == name]


TestRegistryMachine = RegistryMachine.TestCase
TestRegistryMachine.settings = settings(max_examples=40, stateful_step_count=30, deadline=None)
