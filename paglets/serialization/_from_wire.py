"""Wire dict -> dataclass instance, driven by the resolved type hints of the class.

``dataclass_from_wire(cls, data)`` passes only the keys present in ``data`` (missing fields take their
defaults, unknown keys are ignored); ``init=False`` fields present in the data are set after
construction. Per annotation:

* ``None`` stays ``None`` whatever the annotation (as in 2.0).
* ``str``/``int``/``float`` (and their subclasses) are coerced with the constructor; ``bool`` accepts
  booleans, numbers and the strings ``true/false/1/0``; ``bytes``/``bytearray`` accept bytes-like values,
  a JSON binary tag or a list of ints (never ``bytes(n)``).
* Nested dataclasses from dicts; enums by value; paths from strings; ``datetime``/``UUID``/``Decimal``
  and ``msgspec.Struct`` through ``msgspec.convert``.
* ``list``/``tuple``/``set``/``frozenset[...]`` (also the ``collections.abc`` forms), variadic
  ``tuple[X, ...]`` and fixed ``tuple[X, Y]`` (length checked); ``dict[K, V]`` with keys coerced to
  ``K`` when possible (``"3"`` -> ``3``, ``"True"`` -> ``True``, enum keys by value) and kept as they
  are otherwise, as 2.0 does. ``Literal[...]`` checks membership; ``NewType`` uses its supertype.
* Unions are decided in two passes: first the members whose shape fits the value exactly (a ``str`` for
  ``str``, a dict with the right field names for a dataclass, ...), then every member with coercion in
  declaration order; the first that converts wins. So ``int | str`` keeps ``"5"`` a string, where 2.0
  turned it into ``5``.
* ``Any``, ``object``, type variables, annotations that do not resolve and classes we know nothing about
  keep the value, with JSON binary tags undone.

Every failure is a :class:`SerializationError` naming the class and the field path; a constructor that
raises (``__init__``/``__post_init__``) is reported the same way, chained with ``from``.
"""

from __future__ import annotations

import collections
import collections.abc as cabc
import enum
import types
from pathlib import PurePath
from typing import Any, Final, Literal, TypeVar, Union, get_args, get_origin

import msgspec

from paglets._errors import SerializationError
from paglets.serialization._common import (
    MAX_WIRE_NESTING,
    MSGSPEC_SCALARS,
    Failure,
    brief,
    field_specs,
    is_binary_tag,
    is_dataclass_type,
    key_segment,
    restore,
    untag,
)

__all__ = ["dataclass_from_wire", "unknown_wire_fields", "value_from_wire"]

T = TypeVar("T")

_LIST_ORIGINS: Final = frozenset({list, cabc.Sequence, cabc.MutableSequence, cabc.Collection, cabc.Iterable})
_SET_ORIGINS: Final = frozenset({set, cabc.Set, cabc.MutableSet})
_DICT_ORIGINS: Final = frozenset(
    {dict, cabc.Mapping, cabc.MutableMapping, collections.OrderedDict, collections.defaultdict}
)
_NONE_TYPE: Final = type(None)


def dataclass_from_wire(cls: type[T], payload: object) -> T:
    """Rebuild a ``cls`` instance from a wire dict (see the module docstring for the rules)."""
    if not is_dataclass_type(cls):
        raise SerializationError(f"{cls!r} is not a dataclass class")
    try:
        return _build_dataclass(cls, payload, 0)
    except Failure as failure:
        raise SerializationError(
            f"cannot rebuild {cls.__qualname__}: {failure.describe()}"
        ) from failure.__cause__
    except RecursionError as exc:
        raise SerializationError(f"cannot rebuild {cls.__qualname__}: nested too deeply") from exc


def value_from_wire(annotation: Any, value: Any) -> Any:
    """Convert one wire value to ``annotation`` with the same rules as :func:`dataclass_from_wire`."""
    try:
        return _from_wire(annotation, value, 0)
    except Failure as failure:
        raise SerializationError(failure.describe("value")) from failure.__cause__


def unknown_wire_fields(cls: type, data: object, *, limit: int = 10) -> list[str]:
    """Keys of the wire dict ``data`` that no field of ``cls`` has, as field paths (``log``,
    ``inner.nope``, ``items[2].nope``), also inside nested dataclasses reached through lists, tuples,
    sets, dict values and optional fields; at most ``limit`` of them.

    :func:`dataclass_from_wire` ignores such keys (paglets 2.0 does); a caller that wants them refused,
    such as a creation request, asks here first.
    """
    found: list[str] = []
    _unknown_in_dataclass(cls, data, "", found, 0, limit)
    return found


def _unknown_in_dataclass(
    cls: type, data: object, path: str, found: list[str], depth: int, limit: int
) -> None:
    if not isinstance(data, dict) or depth > MAX_WIRE_NESTING:
        return
    specs = {spec.name: spec for spec in field_specs(cls)}
    for key, value in data.items():
        if len(found) >= limit:
            return
        where = f"{path}{key}"
        spec = specs.get(key) if isinstance(key, str) else None
        if spec is None:
            found.append(where)
        else:
            _unknown_in_value(spec.annotation, value, where, found, depth + 1, limit)


def _unknown_in_value(
    annotation: Any, value: object, path: str, found: list[str], depth: int, limit: int
) -> None:
    if depth > MAX_WIRE_NESTING or len(found) >= limit:
        return
    if is_dataclass_type(annotation):
        _unknown_in_dataclass(annotation, value, path + ".", found, depth, limit)
        return
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Union or origin is types.UnionType:
        members = [a for a in args if a is not _NONE_TYPE]
        if len(members) == 1:  # Optional[X]: X decides
            _unknown_in_value(members[0], value, path, found, depth, limit)
        return  # a real union: the member is chosen by shape, unknown keys cannot be told apart
    if isinstance(value, list) and args:
        fixed = origin is tuple and not (len(args) == 2 and args[1] is Ellipsis)
        for index, item in enumerate(value):
            if fixed and index >= len(args):
                return
            _unknown_in_value(
                args[index] if fixed else args[0], item, f"{path}[{index}]", found, depth + 1, limit
            )
    elif isinstance(value, dict) and origin in _DICT_ORIGINS and len(args) == 2:
        for key, item in value.items():
            _unknown_in_value(args[1], item, f"{path}[{key!r}]", found, depth + 1, limit)


def _build_dataclass(cls: type[T], data: Any, depth: int) -> T:
    if not isinstance(data, dict):
        raise Failure(f"expected a dict for {cls.__qualname__}, got {brief(data)}")
    kwargs: dict[str, Any] = {}
    late: list[tuple[str, Any]] = []
    for spec in field_specs(cls):
        if spec.name not in data:
            continue
        try:
            converted = _from_wire(spec.annotation, data[spec.name], depth + 1)
        except Failure as failure:
            raise failure.at(f".{spec.name}") from failure.__cause__
        if spec.init:
            kwargs[spec.name] = converted
        else:
            late.append((spec.name, converted))
    try:
        obj = cls(**kwargs)
    except Exception as exc:  # the user's __init__/__post_init__ may raise anything
        raise Failure(f"{cls.__qualname__}(...) raised {type(exc).__name__}: {exc}") from exc
    for name, converted in late:  # init=False fields: set like msgspec does, frozen or not
        object.__setattr__(obj, name, converted)
    return obj


def _from_wire(annotation: Any, value: Any, depth: int) -> Any:
    if value is None or annotation is Any or annotation is object:
        return None if value is None else restore(value, depth)
    if depth >= MAX_WIRE_NESTING:
        raise Failure(f"nested deeper than {MAX_WIRE_NESTING} levels")
    origin = get_origin(annotation)
    if origin is None:
        if isinstance(annotation, type):
            return _from_class(annotation, value, depth)
        supertype = getattr(annotation, "__supertype__", None)  # typing.NewType
        if supertype is not None:
            return _from_wire(supertype, value, depth)
        return restore(value, depth)  # TypeVar, unresolved string, ...
    args = get_args(annotation)
    if origin is Union or origin is types.UnionType:
        return _from_union(annotation, args, value, depth)
    if origin is Literal:
        for allowed in args:
            if type(allowed) is type(value) and allowed == value:
                return value
        raise Failure(f"{brief(value)} is not one of {list(args)!r}")
    if origin is tuple:
        return _tuple_from_wire(args, value, depth)
    if origin in _LIST_ORIGINS:
        return _items_from_wire(args[0] if args else Any, value, depth)
    if origin in _SET_ORIGINS or origin is frozenset:
        items = _items_from_wire(args[0] if args else Any, value, depth)
        return _make(frozenset if origin is frozenset else set, items)
    if origin in _DICT_ORIGINS:
        key_ann = args[0] if args else Any
        value_ann = args[1] if len(args) > 1 else Any
        return _dict_from_wire(key_ann, value_ann, value, depth)
    if isinstance(origin, type):  # a user generic such as MyBox[int]
        return _from_class(origin, value, depth)
    return restore(value, depth)


def _from_class(cls: type, value: Any, depth: int) -> Any:
    if cls is str or cls is int or cls is float:
        return value if type(value) is cls else _make(cls, value)
    if cls is bool:
        return _bool_from_wire(value)
    if cls is bytes or cls is bytearray:
        return _bytes_from_wire(cls, value)
    if _is_instance(value, cls) and not isinstance(value, dict | list):
        return value
    if hasattr(cls, "__dataclass_fields__"):
        return _build_dataclass(cls, value, depth)
    if issubclass(cls, enum.Enum):
        return _make(cls, value)
    if issubclass(cls, PurePath):
        if not isinstance(value, str):
            raise Failure(f"expected a path string, got {brief(value)}")
        return _make(cls, value)
    if issubclass(cls, MSGSPEC_SCALARS) or issubclass(cls, msgspec.Struct):
        try:
            return msgspec.convert(restore(value, depth), cls, strict=False, dec_hook=_convert_hook)
        except Exception as exc:  # msgspec.ValidationError, or SerializationError from the hook
            raise Failure(f"cannot convert {brief(value)} to {cls.__qualname__}: {exc}") from exc
    if cls in (list, tuple, set, frozenset):
        return _make(cls, _items_from_wire(Any, value, depth))
    if cls is dict:
        return _dict_from_wire(Any, Any, value, depth)
    if issubclass(cls, str | int | float):
        return _make(cls, value)
    return restore(value, depth)  # a class we know nothing about keeps the value, as in 2.0


def _convert_hook(annotation: Any, value: Any) -> Any:
    return value_from_wire(annotation, value)


def _make(cls: Any, value: Any) -> Any:
    try:
        return cls(value)
    except Exception as exc:
        raise Failure(f"cannot convert {brief(value)} to {cls.__qualname__}") from exc


def _bool_from_wire(value: Any) -> bool:
    if type(value) is bool:
        return value
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("true", "1"):
            return True
        if lowered in ("false", "0", ""):
            return False
        raise Failure(f"cannot convert {brief(value)} to bool")
    if isinstance(value, int | float):
        return bool(value)
    raise Failure(f"cannot convert {brief(value)} to bool")


def _bytes_from_wire(cls: type[bytes] | type[bytearray], value: Any) -> Any:
    if type(value) is cls:
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        return cls(value)
    if is_binary_tag(value):
        return cls(untag(value))
    if isinstance(value, list) and all(type(item) is int for item in value):
        return _make(cls, value)  # ints out of 0..255 fail cleanly; never bytes(n)
    raise Failure(f"expected {cls.__name__}, got {brief(value)}")


def _items_from_wire(item_ann: Any, value: Any, depth: int) -> list[Any]:
    if not isinstance(value, list | tuple | set | frozenset):
        raise Failure(f"expected a list, got {brief(value)}")
    out: list[Any] = []
    for index, item in enumerate(value):
        try:
            out.append(_from_wire(item_ann, item, depth + 1))
        except Failure as failure:
            raise failure.at(f"[{index}]") from failure.__cause__
    return out


def _tuple_from_wire(args: tuple[Any, ...], value: Any, depth: int) -> tuple[Any, ...]:
    if not args or (len(args) == 2 and args[1] is Ellipsis):
        return tuple(_items_from_wire(args[0] if args else Any, value, depth))
    if not isinstance(value, list | tuple):
        raise Failure(f"expected a list of {len(args)} items, got {brief(value)}")
    if len(value) != len(args):
        raise Failure(f"expected {len(args)} items, got {len(value)}")
    out: list[Any] = []
    for index, (item_ann, item) in enumerate(zip(args, value, strict=True)):
        try:
            out.append(_from_wire(item_ann, item, depth + 1))
        except Failure as failure:
            raise failure.at(f"[{index}]") from failure.__cause__
    return tuple(out)


def _dict_from_wire(key_ann: Any, value_ann: Any, value: Any, depth: int) -> dict[Any, Any]:
    if not isinstance(value, dict) or is_binary_tag(value):
        raise Failure(f"expected a dict, got {brief(value)}")
    out: dict[Any, Any] = {}
    for key, item in value.items():
        try:
            converted = _from_wire(value_ann, item, depth + 1)
            new_key = _key_from_wire(key_ann, key, depth)
            try:
                out[new_key] = converted
            except TypeError as exc:  # the key annotation produced an unhashable value
                raise Failure(f"key {brief(new_key)} is not hashable") from exc
        except Failure as failure:
            raise failure.at(key_segment(key)) from failure.__cause__
    return out


def _key_from_wire(key_ann: Any, key: Any, depth: int) -> Any:
    """Coerce a key to its annotation when possible; keep it as it is otherwise (as 2.0 does)."""
    if key_ann is Any or key_ann is object:
        return key
    if key_ann is str:
        return key if type(key) is str else str(key)
    if type(key) is str and isinstance(key_ann, type):
        if key_ann is _NONE_TYPE:
            return None if key == "None" else key
        if issubclass(key_ann, enum.Enum):
            for member in key_ann:
                if member.value == key or str(member.value) == key:
                    return member
            return key
    try:
        return _from_wire(key_ann, key, depth + 1)
    except Failure:
        return key


def _from_union(annotation: Any, members: tuple[Any, ...], value: Any, depth: int) -> Any:
    candidates = [member for member in members if member is not _NONE_TYPE]
    for member in candidates:  # pass 1: members whose shape fits exactly
        if _shape_fits(member, value, depth):
            try:
                return _from_wire(member, value, depth)
            except Failure:
                continue
    last: Failure | None = None
    for member in candidates:  # pass 2: coercion, in declaration order (2.0's only pass)
        try:
            return _from_wire(member, value, depth)
        except Failure as failure:
            last = failure
    raise Failure(f"{brief(value)} fits none of {annotation}") from last


def _shape_fits(annotation: Any, value: Any, depth: int) -> bool:
    """Whether ``value`` has exactly the wire shape of ``annotation`` (no coercion needed)."""
    if annotation is Any or annotation is object:
        return True
    if depth >= MAX_WIRE_NESTING:
        return False
    origin = get_origin(annotation)
    args = get_args(annotation)
    if origin is Union or origin is types.UnionType:
        return value is None or any(_shape_fits(member, value, depth + 1) for member in args)
    if origin is Literal:
        return any(type(allowed) is type(value) and allowed == value for allowed in args)
    if origin is tuple or origin in _LIST_ORIGINS or origin in _SET_ORIGINS or origin is frozenset:
        if not isinstance(value, list | tuple | set | frozenset):
            return False
        if origin is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
            return len(value) == len(args) and all(
                _shape_fits(item_ann, item, depth + 1) for item_ann, item in zip(args, value, strict=False)
            )
        item_ann = args[0] if args else Any
        return all(_shape_fits(item_ann, item, depth + 1) for item in value)
    if origin in _DICT_ORIGINS:
        if not isinstance(value, dict) or is_binary_tag(value):
            return False
        value_ann = args[1] if len(args) > 1 else Any
        return all(_shape_fits(value_ann, item, depth + 1) for item in value.values())
    if origin is not None or not isinstance(annotation, type):
        return False
    return _class_shape_fits(annotation, value)


def _class_shape_fits(cls: type, value: Any) -> bool:
    if value is None:
        return cls is _NONE_TYPE
    if cls is int:
        return type(value) is int
    if cls is bool or cls is float or cls is str:
        return type(value) is cls
    if cls is bytes or cls is bytearray:
        return isinstance(value, bytes | bytearray) or is_binary_tag(value)
    if hasattr(cls, "__dataclass_fields__"):
        if isinstance(value, cls):
            return True
        if not isinstance(value, dict):
            return False
        specs = field_specs(cls)
        names = {spec.name for spec in specs}
        return all(key in names for key in value) and all(
            spec.name in value for spec in specs if spec.required
        )
    if issubclass(cls, enum.Enum):
        return isinstance(value, cls) or any(
            type(member.value) is type(value) and member.value == value for member in cls
        )
    if issubclass(cls, PurePath) or issubclass(cls, MSGSPEC_SCALARS):
        return isinstance(value, cls | str)
    if cls in (list, tuple, set, frozenset):
        return isinstance(value, list | tuple | set | frozenset)
    if cls is dict:
        return isinstance(value, dict) and not is_binary_tag(value)
    return _is_instance(value, cls)


def _is_instance(value: object, cls: type) -> bool:
    try:
        return isinstance(value, cls)
    except TypeError:  # e.g. a Protocol that is not runtime-checkable
        return False
