"""Bounded smoke run of the fuzz targets in fuzz/ without atheris: seed corpus plus mutations."""

from __future__ import annotations

import importlib.util
import random
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SEEDS = sorted(p for p in (ROOT / "proto" / "vectors").rglob("*") if p.is_file())
MUTATIONS_PER_TARGET = 400


def _target(name: str) -> Callable[[bytes], None]:
    spec = importlib.util.spec_from_file_location(f"fuzz_{name}_target", ROOT / "fuzz" / f"fuzz_{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    target: Callable[[bytes], None] = module.test_one_input
    return target


def _mutate(rng: random.Random, data: bytes, other: bytes) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        choice = rng.randrange(6)
        if choice == 0 and buf:  # flip a bit
            buf[rng.randrange(len(buf))] ^= 1 << rng.randrange(8)
        elif choice == 1 and buf:  # set a byte
            buf[rng.randrange(len(buf))] = rng.choice((0, 1, 0x7F, 0x80, 0xFF, rng.randrange(256)))
        elif choice == 2:  # insert random bytes
            at = rng.randint(0, len(buf))
            buf[at:at] = rng.randbytes(rng.randint(1, 8))
        elif choice == 3 and buf:  # delete a range
            at = rng.randrange(len(buf))
            del buf[at : at + rng.randint(1, 16)]
        elif choice == 4:  # truncate
            del buf[rng.randint(0, len(buf)) :]
        else:  # splice with another input
            at = rng.randint(0, len(buf))
            buf[at:] = other[rng.randint(0, len(other)) :]
    return bytes(buf)


def _inputs(seed: int) -> Iterator[bytes]:
    corpus = [p.read_bytes() for p in SEEDS]
    yield b""
    yield from corpus
    rng = random.Random(seed)
    for _ in range(MUTATIONS_PER_TARGET):
        if rng.random() < 0.1:
            yield rng.randbytes(rng.randint(0, 300))
        else:
            yield _mutate(rng, rng.choice(corpus), rng.choice(corpus))


@pytest.mark.parametrize("name", ["envelope", "ipc"])
def test_fuzz_target_holds_its_invariant_on_seeds_and_mutations(name: str) -> None:
    target = _target(name)
    count = 0
    for data in _inputs(seed=len(name)):
        target(data)
        count += 1
    assert count > len(SEEDS) + MUTATIONS_PER_TARGET


def test_seed_corpus_is_present() -> None:
    assert len([p for p in SEEDS if p.suffix == ".bin"]) >= 20
