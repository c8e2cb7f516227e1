"""Shared pieces of the wire-dict walks: limits, the failure that collects a field path, the
per-class field plans, and the JSON binary tag.

JSON binary tag: ``{"__paglets_binary__": "bytes" | "bytearray", "base64": "<standard base64>"}`` (a dict
with exactly those two keys). The JSON control plane (``paglets.wire.jsonbin``) tags and untags bodies;
``dataclass_from_wire`` also accepts tags in ``bytes``/``bytearray`` fields and undoes them in ``Any``
values, as 2.0 does, for wire dicts that did not pass through that layer.

Limits: containers and dataclasses nest at most :data:`MAX_WIRE_NESTING` levels in every walk here (this
also turns a reference cycle into a clear error instead of a ``RecursionError``).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as dt
import decimal
import sys
import typing
import uuid
from typing import Any, Final, NamedTuple

from paglets.serialization._cache import ClassCache

__all__ = [
    "BINARY_TAG_DATA",
    "BINARY_TAG_KEY",
    "MAX_CACHED_CLASSES",
    "MAX_WIRE_NESTING",
    "MSGSPEC_SCALARS",
    "Failure",
    "FieldSpec",
    "brief",
    "field_names",
    "field_specs",
    "is_binary_tag",
    "is_dataclass_type",
    "key_segment",
    "restore",
    "untag",
]

#: Nesting depth of containers and dataclasses the wire-dict walks accept. Real states nest a few
#: levels; 200 stays well inside CPython's default recursion limit (1000) even when the caller is
#: already deep, and turns a reference cycle into a precise error.
MAX_WIRE_NESTING: Final = 200

#: State classes whose resolved field plan stays cached. A host runs few state classes; the bound keeps
#: code reloading (new class objects under the same name) from growing memory.
MAX_CACHED_CLASSES: Final = 512

BINARY_TAG_KEY: Final = "__paglets_binary__"
BINARY_TAG_DATA: Final = "base64"
_BINARY_KINDS: Final = {"bytes": bytes, "bytearray": bytearray}

#: Scalar types msgspec encodes natively as strings (and decodes when annotated); an extension over 2.0.
MSGSPEC_SCALARS: Final = (dt.datetime, dt.date, dt.time, dt.timedelta, uuid.UUID, decimal.Decimal)


class Failure(Exception):
    """Internal: a value could not be converted. Collects the path while the walk unwinds."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.segments: list[str] = []

    def at(self, segment: str) -> Failure:
        self.segments.append(segment)
        return self

    def describe(self, root: str = "state") -> str:
        return f"{root}{''.join(reversed(self.segments))}: {self.reason}"


def brief(value: object) -> str:
    """A short description of ``value`` that never renders a large value whole."""
    if isinstance(value, str | bytes | bytearray):
        text = repr(value[:40])
        return text if len(value) <= 40 else f"{text}... ({len(value)} long)"
    if isinstance(value, int | float | bool) or value is None:
        text = repr(value)
        return text if len(text) <= 60 else f"{text[:60]}..."
    if isinstance(value, tuple | frozenset) and len(value) <= 8 and all(map(_small_scalar, value)):
        text = repr(value)  # small keys such as (1, 2) are worth showing
        if len(text) <= 60:
            return text
    return f"a value of type {type(value).__name__!r}"


def _small_scalar(value: object) -> bool:
    if isinstance(value, str | bytes):
        return len(value) <= 40
    return isinstance(value, int | float) or value is None


def key_segment(key: object) -> str:
    return f"[{brief(key)}]"


# --- field plans ------------------------------------------------------------------------------------------


class FieldSpec(NamedTuple):
    name: str
    annotation: Any
    init: bool
    required: bool


def _resolve_hints_one_by_one(cls: type) -> dict[str, Any]:
    """Resolve each annotation on its own, so one unresolvable name does not hide the others."""
    hints: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        module = sys.modules.get(klass.__module__)
        globalns = dict(vars(module)) if module is not None else {}
        localns = dict(vars(klass))
        for name, annotation in vars(klass).get("__annotations__", {}).items():
            probe = type("_Probe", (), {"__annotations__": {name: annotation}})
            try:
                hints[name] = typing.get_type_hints(probe, globalns=globalns, localns=localns)[name]
            except Exception:  # an unresolvable annotation is treated as Any
                hints.pop(name, None)
    return hints


def _build_field_specs(cls: type) -> tuple[FieldSpec, ...]:
    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # NameError for a forward reference, TypeError for odd annotations, ...
        hints = _resolve_hints_one_by_one(cls)
    specs = []
    for field in dataclasses.fields(cls):
        required = (
            field.init
            and field.default is dataclasses.MISSING
            and field.default_factory is dataclasses.MISSING
        )
        specs.append(FieldSpec(field.name, hints.get(field.name, Any), field.init, required))
    return tuple(specs)


def _build_field_names(cls: type) -> tuple[str, ...]:
    return tuple(field.name for field in dataclasses.fields(cls))


field_specs: Final = ClassCache(_build_field_specs, MAX_CACHED_CLASSES).get
field_names: Final = ClassCache(_build_field_names, MAX_CACHED_CLASSES).get


def is_dataclass_type(cls: object) -> bool:
    return isinstance(cls, type) and dataclasses.is_dataclass(cls)


# --- binary tags ------------------------------------------------------------------------------------------


def is_binary_tag(value: object) -> bool:
    """Whether ``value`` has the shape of a JSON binary tag: a dict with exactly the two tag keys.

    Such a dict is always read as a tag (as ``paglets.wire.jsonbin`` does); :func:`untag` then rejects
    an unknown kind or invalid base64 instead of passing the dict on silently.
    """
    return type(value) is dict and len(value) == 2 and BINARY_TAG_KEY in value and BINARY_TAG_DATA in value


def untag(tag: dict[str, Any]) -> bytes | bytearray:
    """The bytes a binary tag carries (``tag`` passed :func:`is_binary_tag`)."""
    kind = _BINARY_KINDS.get(tag[BINARY_TAG_KEY]) if isinstance(tag[BINARY_TAG_KEY], str) else None
    text = tag[BINARY_TAG_DATA]
    if kind is None or not isinstance(text, str):
        raise Failure(f"invalid binary tag: kind {brief(tag[BINARY_TAG_KEY])}, base64 {brief(text)}")
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise Failure(f"invalid base64 in binary tag: {exc}") from exc
    return bytearray(data) if kind is bytearray else data


def restore(value: Any, depth: int) -> Any:
    """``value`` with binary tags inside dicts and lists turned back into bytes (for ``Any`` fields)."""
    kind = type(value)
    if kind is not dict and kind is not list:
        return value
    if depth >= MAX_WIRE_NESTING:
        raise Failure(f"nested deeper than {MAX_WIRE_NESTING} levels")
    if kind is list:
        out: list[Any] = []
        for index, item in enumerate(value):
            try:
                out.append(restore(item, depth + 1))
            except Failure as failure:
                raise failure.at(f"[{index}]") from failure.__cause__
        return out
    if is_binary_tag(value):
        return untag(value)
    restored: dict[Any, Any] = {}
    for key, item in value.items():
        try:
            restored[key] = restore(item, depth + 1)
        except Failure as failure:
            raise failure.at(key_segment(key)) from failure.__cause__
    return restored
