"""ServiceRegistry change listener: one call per record added, replaced or removed (never for expiry)."""

from __future__ import annotations

from paglets.services.contracts import ServiceRecord
from paglets.services.registry import ServiceRegistry


def test_listener_hears_advertise_and_remove_but_not_expiry() -> None:
    now = [1000.0]
    changes: list[tuple[str, str, str]] = []

    def heard(change: str, record: ServiceRecord) -> None:
        changes.append((change, record.name, record.proxy.agent_id))

    registry = ServiceRegistry(clock=lambda: now[0], on_change=heard)

    def advertise(agent_id: str, name: str, ttl: float | None = None) -> None:
        registry.advertise_service(agent_id, name, host_name="h", host_url="http://h", ttl=ttl)

    advertise("a", "s1")
    advertise("a", "s1")  # replaced
    advertise("a", "s2")
    advertise("b", "s1", ttl=5.0)
    registry.unadvertise("s2", "a")
    registry.remove_agent("a")
    now[0] += 10.0
    assert registry.lookup("s1") == []  # b's record expired: no event
    assert changes == [
        ("advertise", "s1", "a"),
        ("advertise", "s1", "a"),
        ("advertise", "s2", "a"),
        ("advertise", "s1", "b"),
        ("remove", "s2", "a"),
        ("remove", "s1", "a"),
    ]


def test_a_failing_listener_does_not_break_the_registry() -> None:
    def broken(change: str, record: ServiceRecord) -> None:
        raise RuntimeError("listener bug")

    registry = ServiceRegistry(on_change=broken)
    registry.advertise_service("a", "s", host_name="h", host_url="http://h")
    assert [r.name for r in registry.lookup("s")] == ["s"]
    assert len(registry.unadvertise("s")) == 1
