"""dataclass_from_wire: type-hint driven rebuilding, coercion, unions, tags and errors."""

from __future__ import annotations

import base64
import collections.abc as cabc
import datetime as dt
import uuid
from dataclasses import InitVar, dataclass, field
from enum import Enum, IntEnum
from pathlib import Path, PurePosixPath
from typing import Any, Literal, NewType, Protocol

import pytest

from paglets.core.errors import SerializationError
from paglets.remote.references import PagletProxyRef
from paglets.serialization.codec import dataclass_from_wire, dataclass_to_wire, value_from_wire

BINARY_TAG_KEY = "__paglets_binary__"
BINARY_TAG_DATA = "base64"


def tag_binary(value: bytes | bytearray) -> dict[str, str]:
    kind = "bytearray" if isinstance(value, bytearray) else "bytes"
    return {BINARY_TAG_KEY: kind, BINARY_TAG_DATA: base64.b64encode(value).decode()}


UserId = NewType("UserId", int)


class Color(Enum):
    RED = "red"
    BLUE = "blue"


class Level(IntEnum):
    LOW = 1
    HIGH = 2


@dataclass
class Circle:
    radius: float


@dataclass
class Square:
    side: float
    label: str = ""


@dataclass
class Versioned:
    name: str
    count: int = 0
    tags: list[str] = field(default_factory=list)


@dataclass
class Typed:
    blob: bytes = b""
    buffer: bytearray = field(default_factory=bytearray)
    path: Path = Path(".")
    pure: PurePosixPath = field(default_factory=lambda: PurePosixPath("."))
    color: Color = Color.RED
    level: Level = Level.LOW
    ref: PagletProxyRef | None = None
    pair: tuple[int, str] = (0, "")
    many: tuple[int, ...] = ()
    tags: set[str] = field(default_factory=set)
    frozen: frozenset[int] = frozenset()
    by_id: dict[int, str] = field(default_factory=dict)
    by_color: dict[Color, int] = field(default_factory=dict)
    flags: dict[bool, str] = field(default_factory=dict)
    seq: cabc.Sequence[int] = ()
    mode: Literal["a", "b"] = "a"
    user: UserId = UserId(0)
    shape: Circle | Square | None = None
    num_or_text: int | str = 0
    text_or_num: str | int = ""
    anything: Any = None
    when: dt.datetime | None = None
    ident: uuid.UUID | None = None


def test_missing_fields_take_defaults_and_unknown_keys_are_ignored() -> None:
    assert dataclass_from_wire(Versioned, {"name": "n", "removed_field": 1}) == Versioned("n")
    assert dataclass_from_wire(Versioned, {"name": "n", "count": 2, "tags": ["a"]}) == Versioned(
        "n", 2, ["a"]
    )


def test_missing_required_field_is_a_serialization_error() -> None:
    with pytest.raises(SerializationError, match=r"Versioned\(\.\.\.\) raised TypeError") as info:
        dataclass_from_wire(Versioned, {"count": 1})
    assert isinstance(info.value.__cause__, TypeError)


def test_wire_values_are_converted_to_the_annotations() -> None:
    wire = {
        "blob": {BINARY_TAG_KEY: "bytes", BINARY_TAG_DATA: base64.b64encode(b"\x00\x01").decode()},
        "buffer": b"xy",
        "path": "/a/b",
        "pure": "c/d",
        "color": "blue",
        "level": 2,
        "ref": {"host_url": "http://h", "agent_id": "a"},
        "pair": [1, "x"],
        "many": [1, 2, 3],
        "tags": ["a", "b"],
        "frozen": [1, 2],
        "by_id": {"1": "one", "2": "two"},
        "by_color": {"red": 1},
        "flags": {"True": "yes", "False": "no"},
        "seq": [4, 5],
        "mode": "b",
        "user": 7,
        "shape": {"side": 2.0},
        "when": "2024-01-02T03:04:05Z",
        "ident": str(uuid.UUID(int=5)),
    }
    state = dataclass_from_wire(Typed, wire)
    assert state.blob == b"\x00\x01"
    assert type(state.blob) is bytes
    assert state.buffer == bytearray(b"xy")
    assert type(state.buffer) is bytearray
    assert state.path == Path("/a/b")
    assert isinstance(state.path, Path)
    assert type(state.pure) is PurePosixPath
    assert state.color is Color.BLUE
    assert state.level is Level.HIGH
    assert state.ref == PagletProxyRef("http://h", "a")
    assert state.pair == (1, "x")
    assert state.many == (1, 2, 3)
    assert state.tags == {"a", "b"}
    assert type(state.tags) is set
    assert type(state.frozen) is frozenset
    assert state.by_id == {1: "one", 2: "two"}
    assert state.by_color == {Color.RED: 1}
    assert state.flags == {True: "yes", False: "no"}
    assert state.seq == [4, 5]
    assert state.mode == "b"
    assert state.user == 7
    assert state.shape == Square(2.0)
    assert state.when == dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    assert state.ident == uuid.UUID(int=5)


def test_union_prefers_the_member_whose_shape_fits() -> None:
    assert dataclass_from_wire(Typed, {"num_or_text": "5"}).num_or_text == "5"
    assert dataclass_from_wire(Typed, {"num_or_text": 5}).num_or_text == 5
    assert dataclass_from_wire(Typed, {"text_or_num": 5}).text_or_num == 5
    assert dataclass_from_wire(Typed, {"shape": {"radius": 1.0}}).shape == Circle(1.0)
    assert dataclass_from_wire(Typed, {"shape": {"side": 1.0, "label": "s"}}).shape == Square(1.0, "s")
    # no member fits exactly: coercion in declaration order, as 2.0 does
    assert dataclass_from_wire(Typed, {"num_or_text": 1.5}).num_or_text == 1


def test_union_with_no_fitting_member() -> None:
    with pytest.raises(SerializationError, match=r"state\.shape: .*fits none of"):
        dataclass_from_wire(Typed, {"shape": [1, 2]})


def test_none_stays_none_whatever_the_annotation() -> None:
    assert dataclass_from_wire(Versioned, {"name": "n", "count": None}).count is None


def test_primitive_coercion_like_2_0() -> None:
    state = dataclass_from_wire(Versioned, {"name": 12, "count": "3", "tags": [1, 2]})
    assert state == Versioned("12", 3, ["1", "2"])


def test_bool_parsing() -> None:
    @dataclass
    class Flag:
        on: bool = False

    assert dataclass_from_wire(Flag, {"on": "false"}).on is False
    assert dataclass_from_wire(Flag, {"on": "True"}).on is True
    assert dataclass_from_wire(Flag, {"on": 1}).on is True
    with pytest.raises(SerializationError, match=r"state\.on: cannot convert 'maybe' to bool"):
        dataclass_from_wire(Flag, {"on": "maybe"})


@pytest.mark.parametrize(
    ("wire", "message"),
    [
        ({"pair": [1]}, r"state\.pair: expected 2 items, got 1"),
        ({"pair": [1, "a", 3]}, r"state\.pair: expected 2 items, got 3"),
        ({"pair": ["x", "a"]}, r"state\.pair\[0\]: cannot convert 'x' to int"),
        ({"many": "123"}, r"state\.many: expected a list, got '123'"),
        ({"by_id": [1]}, r"state\.by_id: expected a dict"),
        ({"color": "green"}, r"state\.color: cannot convert 'green' to Color"),
        ({"path": 5}, r"state\.path: expected a path string"),
        ({"blob": 10**9}, r"state\.blob: expected bytes, got 1000000000"),
        ({"buffer": [300]}, r"state\.buffer: cannot convert"),
        ({"mode": "c"}, r"state\.mode: 'c' is not one of"),
        ({"frozen": [["x"]]}, r"state\.frozen\[0\]: cannot convert"),
        ({"ref": {"host_url": "h"}}, r"state\.ref: .*fits none of"),
        ({"when": "not a date"}, r"state\.when: .*fits none of"),
    ],
)
def test_bad_values_name_the_field_path(wire: dict[str, Any], message: str) -> None:
    with pytest.raises(SerializationError, match=message):
        dataclass_from_wire(Typed, wire)


def test_bytes_never_built_from_a_count() -> None:
    # bytes(10**12) would allocate a terabyte; a number is not a bytes value
    with pytest.raises(SerializationError):
        dataclass_from_wire(Typed, {"buffer": 10**12})


def test_binary_tags() -> None:
    tag = tag_binary(bytearray(b"\x01\x02"))
    assert tag == {BINARY_TAG_KEY: "bytearray", BINARY_TAG_DATA: "AQI="}
    state = dataclass_from_wire(Typed, {"buffer": tag, "blob": tag, "anything": {"k": [tag]}})
    assert type(state.buffer) is bytearray
    assert type(state.blob) is bytes
    assert state.anything == {"k": [bytearray(b"\x01\x02")]}
    assert type(state.anything["k"][0]) is bytearray
    bad = {BINARY_TAG_KEY: "bytes", BINARY_TAG_DATA: "not base64!"}
    with pytest.raises(SerializationError, match=r"state\.blob: invalid base64"):
        dataclass_from_wire(Typed, {"blob": bad})
    with pytest.raises(SerializationError, match=r"state\.anything\['k'\]\[0\]: invalid base64"):
        dataclass_from_wire(Typed, {"anything": {"k": [bad]}})
    # a dict with extra keys is a plain dict, not a tag
    plain = {**tag, "other": 1}
    assert dataclass_from_wire(Typed, {"anything": plain}).anything == plain
    # a dict with exactly the two tag keys is always a tag: a bad one is an error, never passed on
    for broken in (
        {BINARY_TAG_KEY: "str", BINARY_TAG_DATA: "AQI="},
        {BINARY_TAG_KEY: "bytes", BINARY_TAG_DATA: 1},
    ):
        with pytest.raises(SerializationError, match=r"state\.anything: invalid binary tag"):
            dataclass_from_wire(Typed, {"anything": broken})


def test_constructor_errors_become_serialization_errors() -> None:
    @dataclass
    class Checked:
        value: int

        def __post_init__(self) -> None:
            if self.value < 0:
                raise ValueError("value must be >= 0")

    with pytest.raises(SerializationError, match="value must be >= 0") as info:
        dataclass_from_wire(Checked, {"value": -1})
    assert isinstance(info.value.__cause__, ValueError)


def test_init_false_fields_are_set_after_construction() -> None:
    @dataclass(frozen=True)
    class Derived:
        base: int
        double: int = field(init=False, default=0)

    assert dataclass_from_wire(Derived, {"base": 2, "double": 4}).double == 4


def test_initvar_and_unresolvable_annotations() -> None:
    @dataclass
    class WithInitVar:
        a: int
        seed: InitVar[int] = 0

        def __post_init__(self, seed: int) -> None:
            self.a += seed

    assert dataclass_from_wire(WithInitVar, {"a": 1, "seed": 5}).a == 1  # InitVars are not fields

    @dataclass
    class Unresolved:
        known: int
        unknown: NotDefinedAnywhere  # type: ignore[name-defined]  # noqa: F821

    state = dataclass_from_wire(Unresolved, {"known": "3", "unknown": {"x": [1]}})
    assert state.known == 3
    assert state.unknown == {"x": [1]}


def test_unknown_classes_and_protocols_keep_the_value() -> None:
    class Opaque:
        pass

    class Shaped(Protocol):
        def area(self) -> float: ...

    @dataclass
    class Odd:
        a: Opaque | None = None
        b: Shaped | None = None
        c: object = None

    state: Any = dataclass_from_wire(Odd, {"a": {"k": 1}, "b": [1], "c": (1, 2)})
    assert state.a == {"k": 1}
    assert state.b == [1]
    assert state.c == (1, 2)


def test_round_trip_with_nested_containers() -> None:
    @dataclass
    class Nest:
        grid: list[list[int]] = field(default_factory=list)
        index: dict[str, list[tuple[int, Color]]] = field(default_factory=dict)
        shapes: list[Circle | Square] = field(default_factory=list)

    state = Nest([[1], [2, 3]], {"a": [(1, Color.RED)]}, [Circle(1.0), Square(2.0, "x")])
    assert dataclass_from_wire(Nest, dataclass_to_wire(state)) == state


def test_inputs_that_are_not_dataclasses_or_dicts() -> None:
    with pytest.raises(SerializationError, match="is not a dataclass class"):
        dataclass_from_wire(dict, {})
    with pytest.raises(SerializationError, match="expected a dict for Versioned"):
        dataclass_from_wire(Versioned, ["name"])


def test_value_from_wire() -> None:
    assert value_from_wire(dict[int, list[Level]], {"1": [1, 2]}) == {1: [Level.LOW, Level.HIGH]}
    with pytest.raises(SerializationError, match=r"^value\[0\]: cannot convert"):
        value_from_wire(list[int], ["x"])
    with pytest.raises(SerializationError, match=r"^value: cannot convert a value of type 'list' to set"):
        value_from_wire(set[list[int]], [[1]])
    with pytest.raises(SerializationError, match=r"^value\[\(1,\)\]: key .* is not hashable"):
        value_from_wire(dict[list[int], int], {(1,): 2})


def test_deep_nesting_is_bounded() -> None:
    deep: Any = 1
    for _ in range(5000):
        deep = [deep]
    with pytest.raises(SerializationError, match="nested deeper than"):
        dataclass_from_wire(Typed, {"anything": deep})
