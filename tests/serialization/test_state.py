"""The binary state codec: encode_state / decode_state / StateCodec / codec_for."""

from __future__ import annotations

import datetime as dt
import decimal
import mmap
import socket
import uuid
from dataclasses import InitVar, dataclass, field
from enum import Enum, IntEnum
from pathlib import Path, PurePosixPath
from typing import Any

import msgspec
import pytest

from paglets.core.errors import SerializationError
from paglets.remote.references import PagletProxyRef
from paglets.serialization.codec import (
    CodecStatistics,
    StateCodec,
    codec_for,
    decode_state,
    encode_state,
    encode_state_into,
)


class Color(Enum):
    RED = "red"
    BLUE = "blue"


class Level(IntEnum):
    LOW = 1
    HIGH = 2


class Ratio(Enum):  # float values: msgspec has no typed decoder for this enum
    HALF = 0.5
    WHOLE = 1.0


@dataclass(frozen=True)
class Point:
    x: int
    y: int


@dataclass
class Handle:
    name: str
    handle: Any = None


@dataclass
class Rich:
    name: str = "r"
    blob: bytes = b"\x00\x01"
    buffer: bytearray = field(default_factory=lambda: bytearray(b"buf"))
    path: Path = Path("/var/x")
    pure: PurePosixPath = field(default_factory=lambda: PurePosixPath("rel/y"))
    maybe_path: Path | None = None
    color: Color = Color.BLUE
    level: Level = Level.HIGH
    ref: PagletProxyRef = field(default_factory=lambda: PagletProxyRef("http://h:9", "id-1"))
    pair: tuple[int, str] = (1, "one")
    many: tuple[float, ...] = (1.0, 2.5)
    tags: set[str] = field(default_factory=lambda: {"a", "b"})
    frozen: frozenset[int] = frozenset({1, 2})
    points: set[Point] = field(default_factory=lambda: {Point(1, 2)})
    by_id: dict[int, Point] = field(default_factory=lambda: {1: Point(0, 0), -5: Point(1, 1)})
    by_color: dict[Color, list[int]] = field(default_factory=lambda: {Color.RED: [1]})
    num_or_text: int | str = "5"
    items: list[Handle] = field(default_factory=list)
    anything: Any = None


def assert_same_types(a: Rich, b: Rich) -> None:
    for name in a.__dataclass_fields__:
        assert type(getattr(a, name)) is type(getattr(b, name)), name


def test_round_trip_keeps_values_and_types() -> None:
    state = Rich(items=[Handle("h", handle={"k": [1, 2]})], anything=[1, "x", b"y", None])
    data = encode_state(state)
    assert isinstance(data, bytes)
    back = decode_state(Rich, data)
    assert back == state
    assert_same_types(back, state)
    assert back.by_id == {1: Point(0, 0), -5: Point(1, 1)}  # int keys stay ints
    assert type(back.maybe_path) is type(None)
    assert codec_for(Rich).typed


def test_bytes_are_raw_msgpack_bin() -> None:
    @dataclass
    class Blob:
        data: bytes

    payload = bytes(range(256)) * 4
    encoded = encode_state(Blob(payload))
    assert payload in encoded  # stored as is: no base64
    assert len(encoded) < len(payload) + 16


def test_decode_reads_a_memoryview_in_place() -> None:
    state = Rich(name="from a view")
    prefix = b"HEADER--"
    buffer = bytearray(prefix)
    length = encode_state_into(state, buffer, len(prefix))
    assert length == len(buffer) - len(prefix)
    assert buffer[: len(prefix)] == prefix
    with memoryview(buffer) as view:
        assert decode_state(Rich, view[len(prefix) :]) == state


def test_decode_from_an_mmap() -> None:
    state = Rich(blob=b"z" * 100_000)
    data = encode_state(state)
    region = mmap.mmap(-1, len(data) + 100)
    try:
        region[10 : 10 + len(data)] = data
        with memoryview(region) as view:
            back = decode_state(Rich, view[10 : 10 + len(data)])
    finally:
        region.close()
    assert back == state  # decoded values own their memory


def test_encode_into_appends_and_truncates_on_error() -> None:
    buffer = bytearray(b"keep")
    codec = codec_for(Handle)
    first = codec.encode_into(Handle("a"), buffer, 4)
    assert bytes(buffer[4:]) == encode_state(Handle("a"))
    assert first == len(buffer) - 4
    with pytest.raises(SerializationError, match=r"^state\.handle: cannot serialize"):
        codec.encode_into(Handle("b", handle=object()), buffer, 4)
    assert buffer == bytearray(b"keep")
    with pytest.raises(ValueError, match="outside the buffer"):
        codec.encode_into(Handle("c"), buffer, 99)


def test_unsupported_value_names_the_field_path() -> None:
    @dataclass
    class Holder:
        items: list[Handle]

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        state = Holder([Handle("a"), Handle("b"), Handle("c"), Handle("d", handle=sock)])
        with pytest.raises(SerializationError) as info:
            encode_state(state)
    finally:
        sock.close()
    assert str(info.value).startswith("state.items[3].handle: cannot serialize object of type 'socket'")
    assert info.value.__cause__ is not None


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (lambda: None, r"^state\.handle: cannot serialize object of type 'function'"),
        ({"a": [2**64]}, r"^state\.handle\['a'\]\[0\]: integer outside the 64-bit range"),
        ({"k": {1, complex(0, 1)}}, r"^state\.handle\['k'\]\[<set item>\]: cannot serialize .*'complex'"),
    ],
)
def test_encode_errors(value: object, message: str) -> None:
    with pytest.raises(SerializationError, match=message):
        encode_state(Handle("x", handle=value))


def test_reference_cycle_is_an_error_not_a_crash() -> None:
    cycle: list[Any] = []
    cycle.append(cycle)
    with pytest.raises(SerializationError, match=r"^state\.handle(\[0\])+: nested deeper than"):
        encode_state(Handle("x", handle=cycle))


def test_schema_evolution_between_versions() -> None:
    @dataclass
    class V1:
        name: str
        count: int = 0
        removed: list[int] = field(default_factory=list)

    @dataclass
    class V2:
        name: str
        count: int = 0
        added: list[str] = field(default_factory=lambda: ["default"])
        note: str = ""

    old = encode_state(V1("n", 3, [1, 2]))
    assert decode_state(V2, old) == V2("n", 3, ["default"], "")
    assert decode_state(V1, encode_state(V2("m", 4, ["x"], "note"))) == V1("m", 4, [])


def test_missing_required_field() -> None:
    @dataclass
    class Needs:
        name: str
        value: int

    data = msgspec.msgpack.encode({"name": "x"})
    with pytest.raises(SerializationError, match="Needs") as info:
        decode_state(Needs, data)
    assert "value" in str(info.value)


def test_mismatched_data_is_coerced_like_2_0() -> None:
    @dataclass
    class Loose:
        names: dict[str, int] = field(default_factory=dict)
        count: int = 0

    codec = codec_for(Loose)
    # the state broke its own annotations: int keys in a dict[str, int], a str in an int field
    data = encode_state(Loose({1: 2}, "7"))  # type: ignore[dict-item, arg-type]
    before = codec.statistics().lenient_decodes
    assert codec.decode(data) == Loose({"1": 2}, 7)
    assert codec.statistics().lenient_decodes == before + 1


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xc1",  # never used in msgpack
        b"\x92\x01",  # truncated array
        b"\x81\xa4name",  # truncated map
        msgspec.msgpack.encode([1, 2, 3]),  # not a map
        msgspec.msgpack.encode({"name": {"nested": "dict"}, "blob": 12}),
        msgspec.msgpack.encode({"color": "green"}),
        b"\x91" * 100_000,  # nests deeper than any recursion limit
    ],
)
def test_corrupted_bytes_raise_serialization_error(data: bytes) -> None:
    with pytest.raises(SerializationError, match="Rich") as info:
        decode_state(Rich, data)
    assert info.value.__cause__ is not None


def test_post_init_errors_are_serialization_errors() -> None:
    class CustomError(Exception):
        pass

    @dataclass
    class Checked:
        value: int

        def __post_init__(self) -> None:
            if self.value == 1:
                raise ValueError("value 1 is not allowed")
            if self.value == 2:
                raise CustomError("custom")

    for value, cause in ((1, ValueError), (2, CustomError)):
        with pytest.raises(SerializationError, match="Checked") as info:
            decode_state(Checked, _raw({"value": value}))
        root: BaseException | None = info.value
        while root is not None and root.__cause__ is not None:
            root = root.__cause__
        assert isinstance(root, cause)


def _raw(obj: object) -> bytes:
    return msgspec.msgpack.encode(obj)


class Opaque:
    """A class msgspec knows nothing about, used as an annotation."""


@dataclass
class Circle:
    radius: float


@dataclass
class Square:
    side: float


@dataclass
class ExoticUnion:
    shape: Circle | Square
    where: Path | str = "."


@dataclass
class ExoticEnum:
    ratio: Ratio = Ratio.HALF


@dataclass
class ExoticInitVar:
    value: int = 0
    seed: InitVar[int] = 0


@dataclass
class ExoticForwardRef:
    value: int = 0
    later: NotDefinedYet | None = None  # type: ignore[name-defined]  # noqa: F821


@pytest.mark.parametrize(
    ("state", "reason"),
    [
        (ExoticUnion(Square(2.0), Path("/p")), "union"),
        (ExoticUnion(Circle(1.0), Path("rel")), "union"),
        (ExoticEnum(Ratio.WHOLE), "Enum"),
        (ExoticInitVar(5), "InitVar"),
        (ExoticForwardRef(3), "NotDefinedYet"),
    ],
)
def test_fallback_for_annotations_msgspec_cannot_decode(state: Any, reason: str) -> None:
    codec = codec_for(type(state))
    assert not codec.typed
    assert codec.fallback_reason is not None
    assert reason in codec.fallback_reason
    assert codec.decode(codec.encode(state)) == state
    assert codec.statistics().typed is False


def test_paths_and_strings_share_a_wire_form() -> None:
    # ``Path | str``: both are strings on the wire, so the first member that fits (Path) wins, as in 2.0
    back = decode_state(ExoticUnion, encode_state(ExoticUnion(Circle(1.0), "plain text")))
    assert back.where == Path("plain text")


def test_object_and_unknown_class_annotations_keep_the_value() -> None:
    @dataclass
    class Odd:
        anything: object = None
        opaque: Opaque | None = None

    assert codec_for(Odd).typed
    back = decode_state(Odd, _raw({"anything": [1, {"a": b"x"}], "opaque": None}))
    assert back == Odd([1, {"a": b"x"}], None)
    lenient: Any = decode_state(Odd, _raw({"opaque": {"k": 1}}))
    assert lenient.opaque == {"k": 1}  # 2.0 keeps values it cannot convert


def test_frozen_slotted_and_init_false_fields() -> None:
    @dataclass(frozen=True, slots=True)
    class Frozen:
        ref: PagletProxyRef
        label: str = ""
        derived: int = field(init=False, default=0)

    state = Frozen(PagletProxyRef("http://a", "b"), "x")
    object.__setattr__(state, "derived", 9)
    assert decode_state(Frozen, encode_state(state)) == state
    assert decode_state(Frozen, encode_state(state)).derived == 9


def test_msgspec_native_extras_round_trip() -> None:
    @dataclass
    class Times:
        when: dt.datetime
        day: dt.date
        span: dt.timedelta
        ident: uuid.UUID
        amount: decimal.Decimal

    state = Times(
        dt.datetime(2024, 2, 3, 4, 5, 6, tzinfo=dt.UTC),
        dt.date(2024, 2, 3),
        dt.timedelta(seconds=61.5),
        uuid.UUID(int=42),
        decimal.Decimal("12.50"),
    )
    assert decode_state(Times, encode_state(state)) == state


def test_codec_for_caches_and_checks() -> None:
    assert codec_for(Rich) is codec_for(Rich)
    assert isinstance(codec_for(Rich), StateCodec)
    with pytest.raises(SerializationError, match="not a dataclass"):
        codec_for(int)
    with pytest.raises(SerializationError, match="not a dataclass"):
        encode_state({"a": 1})
    assert "typed" in repr(codec_for(Rich))


def test_statistics() -> None:
    @dataclass
    class Counted:
        n: int = 0

    codec = codec_for(Counted)
    codec.decode(codec.encode(Counted(1)))
    codec.encode_into(Counted(2), bytearray())
    stats = codec.statistics()
    assert isinstance(stats, CodecStatistics)
    assert (stats.encoded, stats.decoded, stats.lenient_decodes) == (2, 1, 0)
    assert stats.typed
    assert stats.fallback_reason is None
    assert stats.state_class.endswith("Counted")
