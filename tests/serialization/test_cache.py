"""The bounded per-class cache behind codec_for and the field plans."""

from __future__ import annotations

import pytest

from paglets.serialization._cache import ClassCache


def _classes(count: int) -> list[type]:
    return [type(f"C{index}", (), {}) for index in range(count)]


def test_builds_once_and_returns_the_cached_value() -> None:
    built: list[type] = []

    def build(cls: type) -> str:
        built.append(cls)
        return cls.__name__

    cache = ClassCache(build, capacity=4)
    first, second = _classes(2)
    assert cache.get(first) == "C0"
    assert cache.get(first) == "C0"
    assert cache.get(second) == "C1"
    assert built == [first, second]


def test_is_bounded_and_drops_the_oldest_entry() -> None:
    built: list[type] = []

    def build(cls: type) -> int:
        built.append(cls)
        return len(built)

    cache = ClassCache(build, capacity=3)
    classes = _classes(5)
    for cls in classes:
        cache.get(cls)
    assert len(cache) == 3
    cache.get(classes[0])  # evicted, so built again
    assert built.count(classes[0]) == 2
    cache.get(classes[4])  # still cached
    assert built.count(classes[4]) == 1
    cache.clear()
    assert len(cache) == 0


def test_failed_builds_are_not_cached() -> None:
    calls = 0

    def build(cls: type) -> int:
        nonlocal calls
        calls += 1
        raise LookupError("nope")

    cache: ClassCache[int] = ClassCache(build, capacity=2)
    (cls,) = _classes(1)
    for _ in range(2):
        with pytest.raises(LookupError):
            cache.get(cls)
    assert calls == 2
    assert len(cache) == 0


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        ClassCache(lambda cls: cls, capacity=0)
