"""Tests of ``paglets.runtime.resources`` (kept with the authoring API tests)."""

from __future__ import annotations

import threading

import pytest

from paglets.core.errors import LifecycleError
from paglets.runtime.resources import ResourceCleanupError, ResourceRegistry


def test_cleanup_runs_in_reverse_registration_order_and_empties() -> None:
    registry = ResourceRegistry()
    calls: list[str] = []
    for name in ("a", "b", "c"):
        registry.register(name, lambda name=name: calls.append(name))
    registry.cleanup(reason="dispatch")
    assert calls == ["c", "b", "a"]
    assert registry.status() == {}


def test_same_name_replaces_in_place() -> None:
    registry = ResourceRegistry()
    calls: list[str] = []
    registry.register("a", lambda: calls.append("a1"))
    registry.register("b", lambda: calls.append("b"))
    registry.register("a", lambda: calls.append("a2"), suppress=True)
    assert registry.status() == {"a": True, "b": False}
    registry.cleanup()
    assert calls == ["b", "a2"]


def test_empty_name_and_non_callable_are_refused() -> None:
    registry = ResourceRegistry()
    with pytest.raises(ValueError, match="non-empty"):
        registry.register("", lambda: None)
    with pytest.raises(TypeError):
        registry.register("x", 42)  # type: ignore[arg-type]


def test_failures_are_kept_and_reported_while_the_others_still_run() -> None:
    registry = ResourceRegistry()
    calls: list[str] = []

    def fail(name: str) -> None:
        calls.append(name)
        raise OSError(f"{name} stuck")

    registry.register("first", lambda: calls.append("first"))
    registry.register("broken", lambda: fail("broken"))
    registry.register("quiet", lambda: fail("quiet"), suppress=True)
    registry.register("last", lambda: calls.append("last"))
    with pytest.raises(ResourceCleanupError) as info:
        registry.cleanup(reason="deactivate")
    assert isinstance(info.value, LifecycleError)
    assert calls == ["last", "quiet", "broken", "first"]
    assert "broken" in str(info.value)
    assert "deactivate" in str(info.value)
    assert list(info.value.failures) == ["broken"]  # type: ignore[attr-defined]
    assert isinstance(info.value.__cause__, OSError)
    # the failed, non-suppressed registration stays; everything else is gone
    assert registry.status() == {"broken": False}


def test_track_closeable() -> None:
    class Thing:
        closed = False
        stopped = False

        def close(self) -> None:
            self.closed = True

        def stop(self) -> None:
            self.stopped = True

    registry = ResourceRegistry()
    thing = Thing()
    registry.track_closeable("c", thing)
    registry.track_closeable("s", thing, method="stop", suppress=True)
    assert registry.status() == {"c": False, "s": True}
    registry.cleanup()
    assert thing.closed
    assert thing.stopped
    with pytest.raises(AttributeError):
        registry.track_closeable("x", thing, method="missing")
    with pytest.raises(TypeError):
        registry.track_closeable("x", thing, method="closed")


def test_remove_and_clear_do_not_call_cleanups() -> None:
    registry = ResourceRegistry()
    calls: list[str] = []
    registry.register("a", lambda: calls.append("a"))
    registry.register("b", lambda: calls.append("b"))
    registry.remove("a")
    registry.remove("unknown")
    assert "b" in registry
    assert "a" not in registry
    assert len(registry) == 1
    registry.clear()
    registry.cleanup()
    assert calls == []


def test_a_cleanup_may_register_again() -> None:
    registry = ResourceRegistry()
    registry.register("a", lambda: registry.register("a", lambda: None))
    registry.cleanup()
    # the replacement registered during cleanup is kept for the next cleanup
    assert registry.status() == {"a": False}


def test_concurrent_registration_is_safe() -> None:
    registry = ResourceRegistry()
    barrier = threading.Barrier(4)

    def worker(prefix: str) -> None:
        barrier.wait(5)
        for i in range(200):
            registry.register(f"{prefix}{i}", lambda: None)

    threads = [threading.Thread(target=worker, args=(p,)) for p in "abcd"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(registry) == 800
    registry.cleanup()
    assert len(registry) == 0
