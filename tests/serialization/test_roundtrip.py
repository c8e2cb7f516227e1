"""Properties of the codec over generated states.

* Every generated state survives the binary path (encode_state/decode_state, also through
  encode_into + a memoryview), the wire-dict path (dataclass_to_wire/dataclass_from_wire) and the wire
  dict as JSON with binary tags, with equal values *and* the same types (a bytearray stays a bytearray,
  a tuple a tuple, a set a set, a Path a Path, an Enum member the member).
* Random or corrupted bytes only ever raise SerializationError.
"""

from __future__ import annotations

import base64
import dataclasses
import math
import random
import string
from dataclasses import dataclass, field
from enum import Enum, IntEnum
from pathlib import Path, PurePosixPath
from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from paglets.core.errors import SerializationError
from paglets.remote.references import PagletProxyRef
from paglets.serialization.codec import (
    codec_for,
    dataclass_from_wire,
    dataclass_to_wire,
    decode_state,
    encode_state,
    encode_state_into,
)

MiB = 1024 * 1024


class Color(Enum):
    RED = "red"
    GREEN = "green"
    BLUE = "blue"


class Level(IntEnum):
    LOW = 1
    MID = 2
    HIGH = 3


@dataclass(frozen=True)
class Point:
    x: int
    y: int


@dataclass
class Leaf:
    name: str
    weight: float
    flag: bool = False
    note: str | None = None


@dataclass
class Containers:
    ints: list[int] = field(default_factory=list)
    pair: tuple[int, str] = (0, "")
    floats: tuple[float, ...] = ()
    tags: set[str] = field(default_factory=set)
    frozen: frozenset[int] = frozenset()
    grid: list[list[int]] = field(default_factory=list)
    nested: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    by_id: dict[int, Leaf] = field(default_factory=dict)
    by_color: dict[Color, Level] = field(default_factory=dict)
    points: set[Point] = field(default_factory=set)
    leaves: list[Leaf] = field(default_factory=list)


@dataclass
class Everything:
    leaf: Leaf
    maybe_leaf: Leaf | None
    num_or_text: int | str
    color: Color
    level: Level
    path: Path
    pure: PurePosixPath
    maybe_path: Path | None
    ref: PagletProxyRef
    refs: list[PagletProxyRef]
    blob: bytes
    buffer: bytearray
    containers: Containers
    anything: Any = None
    counter: int = 0


@dataclass
class Circle:
    radius: float


@dataclass
class Square:
    side: float
    label: str = ""


@dataclass
class Exotic:
    """Annotations msgspec has no typed decoder for: decoded untyped and rebuilt."""

    shape: Circle | Square
    shapes: list[Circle | Square]
    levels: dict[int, Level]
    maybe: tuple[int, ...] | None
    mixed: list[int] | dict[str, int]
    blob: bytes


# --- strategies -------------------------------------------------------------------------------------------

ints = st.integers(min_value=-(2**63), max_value=2**64 - 1)
texts = st.text(max_size=12)


def floats(*, finite: bool) -> st.SearchStrategy[float]:
    return st.floats(allow_nan=False, allow_infinity=not finite)


def _random_bytes(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


blobs = st.one_of(
    st.binary(max_size=64),
    st.builds(_random_bytes, st.integers(min_value=0, max_value=4 * MiB), st.integers(0, 2**32)),
)
paths = st.lists(st.text(string.ascii_letters + string.digits + "._-", min_size=1, max_size=8), max_size=4)
refs = st.builds(PagletProxyRef, host_url=texts, agent_id=texts)


def json_like(*, finite: bool) -> st.SearchStrategy[Any]:
    scalars = st.one_of(st.none(), st.booleans(), ints, floats(finite=finite), texts, st.binary(max_size=16))
    return st.recursive(
        scalars,
        lambda children: st.lists(children, max_size=4) | st.dictionaries(texts, children, max_size=4),
        max_leaves=12,
    )


def leaves(*, finite: bool) -> st.SearchStrategy[Leaf]:
    return st.builds(Leaf, texts, floats(finite=finite), st.booleans(), st.none() | texts)


def containers(*, finite: bool) -> st.SearchStrategy[Containers]:
    leaf = leaves(finite=finite)
    return st.builds(
        Containers,
        ints=st.lists(ints, max_size=8),
        pair=st.tuples(ints, texts),
        floats=st.lists(floats(finite=finite), max_size=4).map(tuple),
        tags=st.sets(texts, max_size=4),
        frozen=st.frozensets(ints, max_size=4),
        grid=st.lists(st.lists(ints, max_size=3), max_size=3),
        nested=st.dictionaries(texts, st.lists(st.tuples(ints, ints), max_size=3), max_size=3),
        by_id=st.dictionaries(ints, leaf, max_size=3),
        by_color=st.dictionaries(st.sampled_from(Color), st.sampled_from(Level), max_size=3),
        points=st.sets(st.builds(Point, ints, ints), max_size=3),
        leaves=st.lists(leaf, max_size=3),
    )


def everything(*, finite: bool = False) -> st.SearchStrategy[Everything]:
    leaf = leaves(finite=finite)
    return st.builds(
        Everything,
        leaf=leaf,
        maybe_leaf=st.none() | leaf,
        num_or_text=ints | texts,
        color=st.sampled_from(Color),
        level=st.sampled_from(Level),
        path=paths.map(lambda parts: Path("/".join(parts))),
        pure=paths.map(lambda parts: PurePosixPath("/", *parts)),
        maybe_path=st.none() | paths.map(lambda parts: Path(*parts)),
        ref=refs,
        refs=st.lists(refs, max_size=3),
        blob=blobs,
        buffer=blobs.map(bytearray),
        containers=containers(finite=finite),
        anything=json_like(finite=finite),
        counter=ints,
    )


shapes = st.one_of(st.builds(Circle, floats(finite=False)), st.builds(Square, floats(finite=False), texts))
exotics = st.builds(
    Exotic,
    shape=shapes,
    shapes=st.lists(shapes, max_size=4),
    levels=st.dictionaries(ints, st.sampled_from(Level), max_size=3),
    maybe=st.none() | st.lists(ints, max_size=3).map(tuple),
    mixed=st.lists(ints, max_size=3) | st.dictionaries(texts, ints, max_size=3),
    blob=st.binary(max_size=32),
)


# --- comparison -------------------------------------------------------------------------------------------


def assert_identical(got: Any, want: Any, path: str = "state") -> None:
    """Equal values with exactly the same types, all the way down."""
    assert type(got) is type(want), f"{path}: {type(got).__name__} != {type(want).__name__}"
    if dataclasses.is_dataclass(want):
        for item in dataclasses.fields(want):
            assert_identical(getattr(got, item.name), getattr(want, item.name), f"{path}.{item.name}")
    elif isinstance(want, list | tuple):
        assert len(got) == len(want), f"{path}: length {len(got)} != {len(want)}"
        for index, (a, b) in enumerate(zip(got, want, strict=True)):
            assert_identical(a, b, f"{path}[{index}]")
    elif isinstance(want, dict):
        assert list(got) == list(want), f"{path}: keys differ"
        for (key_a, a), (key_b, b) in zip(got.items(), want.items(), strict=True):
            assert_identical(key_a, key_b, f"{path} key {key_b!r}")
            assert_identical(a, b, f"{path}[{key_b!r}]")
    elif isinstance(want, set | frozenset):
        assert got == want, f"{path}: {got!r} != {want!r}"
        by_value = {item: item for item in got}
        for item in want:
            assert_identical(by_value[item], item, f"{path}{{{item!r}}}")
    elif isinstance(want, float) and math.isnan(want):
        assert math.isnan(got)
    else:
        assert got == want, f"{path}: {got!r} != {want!r}"


def json_tagged(value: Any) -> Any:
    """What a JSON layer sends: bytes as 2.0's binary tags (see contract §1.20)."""
    if isinstance(value, bytes | bytearray):
        kind = "bytearray" if isinstance(value, bytearray) else "bytes"
        return {"__paglets_binary__": kind, "base64": base64.b64encode(value).decode()}
    if isinstance(value, dict):
        return {key: json_tagged(item) for key, item in value.items()}
    if isinstance(value, list):
        return [json_tagged(item) for item in value]
    return value


# --- properties -------------------------------------------------------------------------------------------


@settings(max_examples=60)
@given(everything())
def test_binary_round_trip(state: Everything) -> None:
    assert codec_for(Everything).typed
    assert_identical(decode_state(Everything, encode_state(state)), state)


@settings(max_examples=30)
@given(everything(), st.binary(max_size=16))
def test_binary_round_trip_through_a_buffer_view(state: Everything, prefix: bytes) -> None:
    buffer = bytearray(prefix)
    length = encode_state_into(state, buffer, len(prefix))
    assert len(buffer) == len(prefix) + length
    with memoryview(buffer) as view:
        assert_identical(decode_state(Everything, view[len(prefix) :]), state)


@settings(max_examples=60)
@given(everything())
def test_wire_dict_round_trip(state: Everything) -> None:
    assert_identical(dataclass_from_wire(Everything, dataclass_to_wire(state)), state)


@settings(max_examples=40)
@given(everything(finite=True))
def test_wire_dict_round_trip_through_json(state: Everything) -> None:
    wire = msgspec.json.decode(msgspec.json.encode(json_tagged(dataclass_to_wire(state))))
    assert_identical(dataclass_from_wire(Everything, wire), state)


@settings(max_examples=60)
@given(exotics)
def test_fallback_round_trip(state: Exotic) -> None:
    assert not codec_for(Exotic).typed
    assert_identical(decode_state(Exotic, encode_state(state)), state)
    assert_identical(dataclass_from_wire(Exotic, dataclass_to_wire(state)), state)


DECODE_TARGETS = (Everything, Containers, Leaf, Exotic, PagletProxyRef)


@settings(max_examples=300)
@given(st.sampled_from(DECODE_TARGETS), st.binary(max_size=256))
def test_random_bytes_only_raise_serialization_error(cls: type, data: bytes) -> None:
    try:
        decode_state(cls, data)
    except SerializationError:
        pass


@settings(max_examples=100)
@given(everything(), st.data())
def test_corrupted_states_only_raise_serialization_error(state: Everything, data: st.DataObject) -> None:
    encoded = bytearray(encode_state(state))
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(encoded) - 1))
        encoded[position] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(encoded)))
    try:
        decode_state(Everything, bytes(encoded[:cut]))
    except SerializationError:
        pass
