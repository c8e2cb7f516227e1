"""dataclass_to_wire: the wire-dict form and its error messages."""

from __future__ import annotations

import collections
import datetime as dt
import decimal
import socket
import uuid
from dataclasses import dataclass, field
from enum import Enum, IntEnum
from pathlib import Path, PurePosixPath
from typing import Any

import msgspec
import pytest

from paglets.core.errors import SerializationError
from paglets.remote.references import PagletProxyRef
from paglets.serialization.codec import MAX_WIRE_NESTING, dataclass_to_wire


class Color(Enum):
    RED = "red"
    BLUE = "blue"


class Level(IntEnum):
    LOW = 1
    HIGH = 2


@dataclass
class Handle:
    name: str
    handle: Any = None


@dataclass
class Holder:
    items: list[Handle] = field(default_factory=list)
    extra: Any = None


@dataclass
class Inner:
    x: int


class Point(msgspec.Struct):
    x: int
    y: int


@dataclass
class Everything:
    text: str = "t"
    number: int = 3
    real: float = 1.5
    yes: bool = True
    nothing: None = None
    blob: bytes = b"\x00\xff"
    buffer: bytearray = field(default_factory=lambda: bytearray(b"ab"))
    inner: Inner = field(default_factory=lambda: Inner(1))
    color: Color = Color.RED
    level: Level = Level.HIGH
    path: Path = Path("/tmp/x")
    pure: PurePosixPath = field(default_factory=lambda: PurePosixPath("a/b"))
    ref: PagletProxyRef = field(default_factory=lambda: PagletProxyRef("http://h:1", "agent-1"))
    items: list[int] = field(default_factory=lambda: [1, 2])
    pair: tuple[int, str] = (1, "a")
    tags: set[str] = field(default_factory=lambda: {"b", "c", "a"})
    frozen: frozenset[int] = frozenset({3, 1, 2})
    mapping: dict[int, str] = field(default_factory=lambda: {2: "two", 1: "one"})


def test_every_supported_type_has_its_wire_form() -> None:
    state = Everything()
    wire = dataclass_to_wire(state)
    assert wire == {
        "text": "t",
        "number": 3,
        "real": 1.5,
        "yes": True,
        "nothing": None,
        "blob": b"\x00\xff",
        "buffer": bytearray(b"ab"),
        "inner": {"x": 1},
        "color": "red",
        "level": 2,
        "path": "/tmp/x",
        "pure": "a/b",
        "ref": {"host_url": "http://h:1", "agent_id": "agent-1"},
        "items": [1, 2],
        "pair": [1, "a"],
        "tags": ["a", "b", "c"],
        "frozen": [1, 2, 3],
        "mapping": {"2": "two", "1": "one"},
    }
    assert type(wire["blob"]) is bytes
    assert type(wire["buffer"]) is bytearray
    assert wire["buffer"] is not state.buffer  # a copy, not an alias of the live state
    assert type(wire["level"]) is int
    assert wire["ref"] == state.ref.to_wire()


def test_unsortable_sets_keep_their_items() -> None:
    wire = dataclass_to_wire(Holder(extra={1, "a"}))
    assert sorted(map(str, wire["extra"])) == ["1", "a"]


def test_dict_keys_become_strings() -> None:
    extra = {Color.BLUE: 1, Level.HIGH: 2, Path("/p"): 3, None: 4, True: 5, 1.5: 6, (1, 2): 7}
    wire = dataclass_to_wire(Holder(extra=extra))
    assert wire["extra"] == {"blue": 1, "2": 2, "/p": 3, "None": 4, "True": 5, "1.5": 6, "(1, 2)": 7}


def test_subclasses_of_basic_types_become_the_base_type() -> None:
    class Text(str):
        pass

    ordered = collections.OrderedDict(a=Text("x"))
    wire = dataclass_to_wire(Holder(extra=[ordered, collections.Counter("aa"), memoryview(b"mv")]))
    assert wire["extra"] == [{"a": "x"}, {"a": 2}, b"mv"]
    assert type(wire["extra"][0]["a"]) is str
    assert type(wire["extra"][0]) is dict


def test_msgspec_native_extras_become_strings() -> None:
    when = dt.datetime(2024, 5, 6, 7, 8, 9, tzinfo=dt.UTC)
    ident = uuid.UUID(int=7)
    extra = [when, dt.date(2024, 1, 2), dt.timedelta(seconds=90), ident, decimal.Decimal("1.25"), Point(1, 2)]
    wire = dataclass_to_wire(Holder(extra=extra))
    assert wire["extra"] == [
        "2024-05-06T07:08:09Z",
        "2024-01-02",
        "PT90S",
        str(ident),
        "1.25",
        {"x": 1, "y": 2},
    ]


def test_unsupported_value_names_the_field_path() -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        state = Holder(items=[Handle("a"), Handle("b"), Handle("c"), Handle("d", handle=sock)])
        with pytest.raises(SerializationError) as info:
            dataclass_to_wire(state)
    finally:
        sock.close()
    assert str(info.value).startswith("state.items[3].handle: cannot serialize object of type 'socket'")


@pytest.mark.parametrize(
    ("extra", "path", "what"),
    [
        (lambda: 1, "state.extra", "'function'"),
        (object(), "state.extra", "'object'"),
        ({"k": [1, {"deep": object()}]}, "state.extra['k'][1]['deep']", "'object'"),
        ({1, complex(1, 2)}, "state.extra[<set item>]", "'complex'"),
        ((1, 2, Handle("x", handle=print)), "state.extra[2].handle", "'builtin_function_or_method'"),
        (Inner, "state.extra", "'type'"),
    ],
)
def test_unsupported_values_in_any_position(extra: object, path: str, what: str) -> None:
    with pytest.raises(SerializationError) as info:
        dataclass_to_wire(Holder(extra=extra))
    assert str(info.value).startswith(f"{path}: cannot serialize object of type {what}")


def test_unsupported_dict_key() -> None:
    class Key:
        pass

    with pytest.raises(
        SerializationError, match=r"^state.extra\[.*\]: cannot serialize dict key of type 'Key'"
    ):
        dataclass_to_wire(Holder(extra={Key(): 1}))


def test_reference_cycle_is_a_clear_error() -> None:
    cycle: list[Any] = []
    cycle.append(cycle)
    with pytest.raises(SerializationError, match=f"nested deeper than {MAX_WIRE_NESTING} levels"):
        dataclass_to_wire(Holder(extra=cycle))


def test_only_dataclass_instances() -> None:
    with pytest.raises(SerializationError, match="expected a dataclass instance"):
        dataclass_to_wire({"a": 1})
    with pytest.raises(SerializationError, match="expected a dataclass instance"):
        dataclass_to_wire(Inner)


def test_big_ints_are_fine_in_the_wire_form() -> None:
    assert dataclass_to_wire(Inner(2**80)) == {"x": 2**80}


def test_unset_init_false_field_is_skipped() -> None:
    @dataclass
    class Lazy:
        a: int
        cache: list[int] = field(init=False)

    assert dataclass_to_wire(Lazy(1)) == {"a": 1}
