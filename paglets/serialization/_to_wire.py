"""Dataclass instance -> wire dict (the JSON-ish form paglets 2.0 uses on its control plane).

``dataclass_to_wire(obj)`` turns a dataclass instance into plain values, field by field:

==============================  ===============================================================
value                           wire form
==============================  ===============================================================
str, int, float, bool, None     itself (subclasses become the base type)
bytes, bytearray                itself (a bytearray is copied); JSON bodies tag them (``jsonbin``)
nested dataclass                dict of its fields (``PagletProxyRef`` gives its own wire dict)
Enum                            the wire form of ``.value``
pathlib paths                   ``str(path)``
list, tuple                     list
set, frozenset                  list, sorted when the items are sortable
dict                            dict with ``str`` keys (enum keys use their value, others ``str()``)
datetime, date, time,           ISO 8601 string, as msgspec writes it (an extension over 2.0)
timedelta, UUID, Decimal
msgspec.Struct                  dict of its fields (an extension over 2.0)
==============================  ===============================================================

Anything else raises :class:`SerializationError` naming the field path, e.g.
``state.items[3].handle: cannot serialize object of type 'socket'``. Dict keys must be scalars, enums,
paths, or tuples/frozensets of those.

The same walk, in ``binary`` mode, explains why the msgpack encoder refused a state
(:func:`find_encoding_problem`); it then also checks that integers fit msgpack's 64-bit range.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
import typing
import uuid
from pathlib import PurePath
from typing import Any, Final

import msgspec

from paglets._errors import SerializationError
from paglets.serialization._common import (
    MAX_WIRE_NESTING,
    MSGSPEC_SCALARS,
    Failure,
    field_names,
    key_segment,
)

__all__ = ["dataclass_to_wire", "find_encoding_problem"]

# msgpack integers: signed 64-bit minimum to unsigned 64-bit maximum.
_INT_MIN: Final = -(2**63)
_INT_MAX: Final = 2**64 - 1

_MISSING: Final = object()  # an init=False field that was never set has no attribute

_SUPPORTED_HINT: Final = (
    "supported: dataclasses, str, int, float, bool, None, bytes, bytearray, list, tuple, set, frozenset, "
    "dict, Enum, pathlib paths, PagletProxyRef"
)


def dataclass_to_wire(instance: object) -> dict[str, Any]:
    """The wire dict of a dataclass instance (see the module docstring for the rules)."""
    if not dataclasses.is_dataclass(instance) or isinstance(instance, type):
        raise SerializationError(f"expected a dataclass instance, got {type(instance).__name__!r}")
    try:
        return _dataclass_to_wire(instance, 0, binary=False)
    except Failure as failure:
        raise SerializationError(failure.describe()) from failure.__cause__
    except RecursionError as exc:
        raise SerializationError("state: nested too deeply for this interpreter's recursion limit") from exc


def find_encoding_problem(obj: object) -> str | None:
    """Why ``obj`` cannot be encoded by the binary codec, with the field path; ``None`` if it can.

    Used only after a binary encode failed, so the walk costs nothing on the happy path. Besides the
    wire-dict rules it checks that integers fit msgpack's 64-bit range.
    """
    try:
        _to_wire(obj, 0, binary=True)
    except Failure as failure:
        return failure.describe()
    except RecursionError:
        return "state: nested too deeply for this interpreter's recursion limit"
    return None


def _dataclass_to_wire(obj: object, depth: int, *, binary: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    missing = _MISSING
    for name in field_names(type(obj)):
        value = getattr(obj, name, missing)
        if value is missing:  # an init=False field that was never set
            continue
        try:
            out[name] = _to_wire(value, depth + 1, binary=binary)
        except Failure as failure:
            raise failure.at(f".{name}") from failure.__cause__
    return out


def _to_wire(value: Any, depth: int, *, binary: bool) -> Any:
    kind = type(value)
    if kind is str or kind is float or kind is bool or value is None or kind is bytes:
        return value
    if kind is int:
        if binary and not _INT_MIN <= value <= _INT_MAX:
            raise Failure("integer outside the 64-bit range msgpack can carry")
        return value
    if kind is bytearray:
        return bytearray(value)
    if depth >= MAX_WIRE_NESTING:
        raise Failure(f"nested deeper than {MAX_WIRE_NESTING} levels (is there a reference cycle?)")
    if isinstance(value, enum.Enum):
        return _to_wire(value.value, depth + 1, binary=binary)
    if isinstance(value, PurePath):
        return str(value)
    if hasattr(kind, "__dataclass_fields__"):
        return _dataclass_to_wire(value, depth, binary=binary)
    if isinstance(value, list | tuple):
        items: list[Any] = []
        for index, item in enumerate(value):
            try:
                items.append(_to_wire(item, depth + 1, binary=binary))
            except Failure as failure:
                raise failure.at(f"[{index}]") from failure.__cause__
        return items
    if isinstance(value, dict):
        return _dict_to_wire(value, depth, binary=binary)
    if isinstance(value, set | frozenset):
        return _set_to_wire(value, depth, binary=binary)
    return _other_to_wire(value, depth, binary=binary)


def _dict_to_wire(value: dict[Any, Any], depth: int, *, binary: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, item in value.items():
        try:
            wire_key = _key_to_wire(key, depth + 1, binary=binary)
            out[wire_key] = _to_wire(item, depth + 1, binary=binary)
        except Failure as failure:
            raise failure.at(key_segment(key)) from failure.__cause__
    return out


def _set_to_wire(value: set[Any] | frozenset[Any], depth: int, *, binary: bool) -> list[Any]:
    items: list[Any] = []
    for item in value:
        try:
            items.append(_to_wire(item, depth + 1, binary=binary))
        except Failure as failure:
            raise failure.at("[<set item>]") from failure.__cause__
    try:
        items.sort()
    except TypeError:  # mixed or unorderable items keep iteration order, as in 2.0
        pass
    return items


def _other_to_wire(value: Any, depth: int, *, binary: bool) -> Any:
    """Subclasses of the basic types and the msgspec-native extras."""
    if isinstance(value, int):
        return _to_wire(int(value), depth, binary=binary)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, bytes | memoryview):
        return bytes(value)
    if isinstance(value, MSGSPEC_SCALARS):
        return msgspec.to_builtins(value)
    if isinstance(value, msgspec.Struct):
        out: dict[str, Any] = {}
        for name in value.__struct_fields__:
            try:
                out[name] = _to_wire(getattr(value, name), depth + 1, binary=binary)
            except Failure as failure:
                raise failure.at(f".{name}") from failure.__cause__
        return out
    raise Failure(f"cannot serialize object of type {type(value).__name__!r} ({_SUPPORTED_HINT})")


def _key_to_wire(key: Any, depth: int, *, binary: bool) -> str:
    """Validate a dict key and give its string form (enum keys use their value)."""
    if type(key) is str:
        return key
    if isinstance(key, enum.Enum):
        return _key_to_wire(key.value, depth + 1, binary=binary)
    if isinstance(key, str | int | float | bytes | PurePath | uuid.UUID | decimal.Decimal) or key is None:
        _to_wire(key, depth, binary=binary)  # range check for ints in binary mode
        return str(key)
    if isinstance(key, tuple | frozenset) and depth < MAX_WIRE_NESTING:
        for item in key:
            _key_to_wire(item, depth + 1, binary=binary)
        return str(key)
    if isinstance(key, dt.datetime | dt.date | dt.time | dt.timedelta):
        return typing.cast(str, msgspec.to_builtins(key))
    raise Failure(f"cannot serialize dict key of type {type(key).__name__!r}")
