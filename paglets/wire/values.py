"""Plain values (message arguments, handler results) as MessagePack, keeping their Python types.

Message arguments and handler results are free-form values. They travel between host and child (and
are stored in queued-message records) as MessagePack, so that ``bytes`` stay binary with no base64 pass.
The rules, matching what paglets 2.0 users observe:

- ``None``, ``bool``, ``int``, ``float``, ``str``, ``bytes``, ``list`` and ``dict`` round-trip as they are;
- ``bytearray`` round-trips as ``bytearray`` (MessagePack extension type ``BYTEARRAY_EXT``);
- ``tuple``, ``set`` and ``frozenset`` arrive as lists (as over JSON in paglets 2.0);
- dataclasses and msgspec Structs arrive as dicts, enums as their value, paths as strings;
- an object with a ``to_wire()`` method (proxies, references, events) arrives as that method's dict;
- anything else raises ``SerializationError`` naming the type.

The encoder walks containers only when they may hold a ``bytearray`` (MessagePack would otherwise write
it as plain binary and lose the type); values without containers cost nothing extra.
"""

from __future__ import annotations

import dataclasses
import enum
from pathlib import PurePath
from typing import Any

import msgspec

from paglets._errors import SerializationError

__all__ = ["BYTEARRAY_EXT", "decode_value", "encode_value", "ext_hook", "prepare_value"]

#: MessagePack extension type code for ``bytearray`` (never reused for anything else).
BYTEARRAY_EXT = 1

_SCALARS = frozenset({type(None), bool, int, float, str, bytes})
_CONTAINERS = (dict, list, tuple, set, frozenset)


def _enc_hook(obj: Any) -> Any:
    to_wire = getattr(obj, "to_wire", None)
    if callable(to_wire):
        return prepare_value(to_wire())
    if isinstance(obj, PurePath):
        return str(obj)
    if isinstance(obj, enum.Enum):
        return prepare_value(obj.value)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return prepare_value({f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)})
    raise SerializationError(f"cannot serialize a value of type {type(obj).__name__!r}")


def ext_hook(code: int, data: memoryview) -> Any:
    """MessagePack extension types of plain values (use as a Decoder's ``ext_hook``)."""
    if code == BYTEARRAY_EXT:
        return bytearray(data)
    raise SerializationError(f"unknown MessagePack extension type {code}")


_encoder = msgspec.msgpack.Encoder(enc_hook=_enc_hook)
_decoder = msgspec.msgpack.Decoder(ext_hook=ext_hook)


def prepare_value(obj: Any) -> Any:
    """``obj`` with every ``bytearray`` inside containers replaced by its extension value.

    Returns ``obj`` itself when nothing needed replacing, so plain values are not copied.
    """
    kind = type(obj)
    if kind in _SCALARS:
        return obj
    if kind is bytearray:
        return msgspec.msgpack.Ext(BYTEARRAY_EXT, bytes(obj))
    if kind is dict:
        changed = None
        for key, value in obj.items():
            if type(value) in _SCALARS:
                continue
            new = prepare_value(value)
            if new is not value:
                if changed is None:
                    changed = dict(obj)
                changed[key] = new
        return obj if changed is None else changed
    if kind is list or kind is tuple or kind is set or kind is frozenset:
        if set(map(type, obj)) <= _SCALARS:
            return obj
        items = [prepare_value(v) for v in obj]
        return items
    return obj


def encode_value(value: Any) -> bytes:
    """MessagePack bytes for a message argument or a handler result."""
    try:
        return _encoder.encode(prepare_value(value))
    except SerializationError:
        raise
    except (TypeError, ValueError, OverflowError) as exc:
        raise SerializationError(f"cannot serialize value: {exc}") from exc


def decode_value(data: bytes | memoryview) -> Any:
    """The value encoded by :func:`encode_value`; malformed input raises ``SerializationError``."""
    try:
        return _decoder.decode(data)
    except SerializationError:
        raise
    except (msgspec.DecodeError, ValueError, TypeError) as exc:
        raise SerializationError(f"malformed value: {exc}") from exc
