"""Smoke run of ``fuzz/fuzz_http.py`` without atheris: the seeds and a few hundred random inputs."""

from __future__ import annotations

import importlib.util
import random
from pathlib import Path
from types import ModuleType

import pytest

TARGET = Path(__file__).resolve().parents[2] / "fuzz" / "fuzz_http.py"


@pytest.fixture(scope="module")
def target() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fuzz_http", TARGET)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_seeds(target: ModuleType) -> None:
    for seed in target.SEEDS:
        target.test_one_input(seed)


def _mutate(rng: random.Random, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        choice = rng.random()
        position = rng.randint(0, len(out))
        if choice < 0.3 and out:
            out[min(position, len(out) - 1)] = rng.randint(0, 255)
        elif choice < 0.5:
            out[position:position] = rng.choice([b"\r\n", b"\n", b":", b" ", b"0", b"chunked", b"\x00"])
        elif choice < 0.7:
            del out[position : position + rng.randint(1, 20)]
        elif choice < 0.85:
            out[position:position] = rng.randbytes(rng.randint(1, 50))
        else:
            other = rng.choice([b"Content-Length: 99999\r\n", b"Transfer-Encoding: chunked\r\n", b"X: y\r\n"])
            out[position:position] = other
    return bytes(out)


def test_random_inputs(target: ModuleType) -> None:
    rng = random.Random(20_240_601)
    for _ in range(150):
        target.test_one_input(rng.randbytes(rng.randint(0, 300)))
    for _ in range(250):
        target.test_one_input(_mutate(rng, rng.choice(target.SEEDS)))
