"""JSON for the HTTP control plane, with binary values in the tag form of paglets 2.0.

JSON has no binary type. A ``bytes`` or ``bytearray`` value anywhere in a body travels as a *binary tag*,
a dict with exactly two keys (``proto/PROTOCOL.md`` §3.2)::

    {"__paglets_binary__": "bytes" | "bytearray", "base64": "<standard base64 with padding>"}

:func:`encode_json` tags binary values (``memoryview`` counts as ``bytes``) and converts the rest the
way msgspec does: tuples and sets become lists, enums their value, dataclasses and Structs dicts,
datetimes ISO strings; paths become strings and objects with a ``to_wire()`` method (proxies, tickets)
their wire dict. :func:`decode_json` parses and restores tagged values. A dict with exactly the two tag
keys is always read as a tag: an unknown kind or invalid base64 is an error, never passed on silently.

Speed: the common body has no binary value. The encoder first serialises with MessagePack (C speed) and
only walks the value in Python when that output holds a binary marker byte (a false positive costs a walk,
never a wrong result); the decoder only walks when the raw text contains the tag key or a ``\\u`` escape
(an escaped key could otherwise hide). Walks follow at most ``MAX_JSON_DEPTH`` levels.

Errors: undecodable input, a bad tag or a too-deep document raise ``FrameError`` (HTTP 400); a body above
``MAX_JSON_BODY`` raises ``LimitExceededError`` (413); a value that cannot be encoded raises
``SerializationError``.
"""

from __future__ import annotations

import binascii
from pathlib import PurePath
from typing import Any, Final

import msgspec

from paglets._errors import FrameError, LimitExceededError, SerializationError
from paglets.wire.limits import MAX_JSON_BODY, MAX_JSON_DEPTH

__all__ = ["BINARY_TAG", "decode_json", "encode_json", "tag_binary", "untag_binary"]

#: The key that marks a binary tag dict.
BINARY_TAG: Final = "__paglets_binary__"
_BASE64: Final = "base64"
_TAG_KEYS: Final = frozenset({BINARY_TAG, _BASE64})
_TAG_KEY_BYTES: Final = BINARY_TAG.encode()
_BIN_MARKERS: Final = (b"\xc4", b"\xc5", b"\xc6")  # MessagePack bin 8/16/32 headers
_BINARY_TYPES: Final = (bytes, bytearray, memoryview)


def _enc_hook(obj: Any) -> Any:
    to_wire = getattr(obj, "to_wire", None)
    if callable(to_wire):
        return to_wire()
    if isinstance(obj, PurePath):
        return str(obj)
    raise NotImplementedError(f"cannot encode a value of type {type(obj).__qualname__!r} as JSON")


_json_encoder: Final = msgspec.json.Encoder(enc_hook=_enc_hook)
_probe_encoder: Final = msgspec.msgpack.Encoder(enc_hook=_enc_hook)
_json_decoder: Final = msgspec.json.Decoder()


_SCALARS: Final = frozenset({str, int, float, bool, type(None)})


def _tag_one(value: bytes | bytearray | memoryview) -> dict[str, str]:
    kind = "bytearray" if type(value) is bytearray else "bytes"
    return {BINARY_TAG: kind, _BASE64: binascii.b2a_base64(value, newline=False).decode("ascii")}


def _tag(obj: Any, depth: int) -> Any:
    kind = type(obj)
    if kind in _SCALARS:
        return obj
    if kind is bytes or kind is bytearray or kind is memoryview:
        return _tag_one(obj)
    if depth > MAX_JSON_DEPTH:
        raise FrameError(f"value nested deeper than MAX_JSON_DEPTH ({MAX_JSON_DEPTH})", fault="local")
    if isinstance(obj, dict):
        if _SCALARS.issuperset(map(type, obj.values())):  # C-speed skip of flat dicts
            return obj
        changed: dict[Any, Any] | None = None
        for key, value in obj.items():
            new = _tag(value, depth + 1)
            if new is not value:
                if changed is None:
                    changed = dict(obj)
                changed[key] = new
        return obj if changed is None else changed
    if isinstance(obj, list | tuple):
        if _SCALARS.issuperset(map(type, obj)):
            return obj
        items: list[Any] | None = None
        for index, value in enumerate(obj):
            new = _tag(value, depth + 1)
            if new is not value:
                if items is None:
                    items = list(obj)
                items[index] = new
        return obj if items is None else items
    if isinstance(obj, _BINARY_TYPES):  # subclasses of bytes/bytearray
        return _tag_one(obj)
    # anything else (dataclass, Struct, set, enum, path, object with to_wire): convert to builtins, keeping
    # binary values as they are, then tag what came out
    try:
        converted = msgspec.to_builtins(obj, builtin_types=_BINARY_TYPES, enc_hook=_enc_hook, str_keys=True)
    except (NotImplementedError, TypeError, ValueError) as exc:
        raise SerializationError(f"cannot encode as JSON: {exc}") from exc
    return _tag(converted, depth + 1)


def tag_binary(obj: Any) -> Any:
    """``obj`` with every ``bytes``/``bytearray``/``memoryview`` replaced by its tag dict.

    Dicts, lists and tuples are walked; other objects (dataclasses, Structs, sets...) are converted to
    builtins first. Containers without binary values are returned as they are (not copied).
    """
    return _tag(obj, 0)


def _untag_one(obj: dict[str, Any]) -> bytes | bytearray:
    kind, text = obj[BINARY_TAG], obj[_BASE64]
    if kind not in ("bytes", "bytearray") or not isinstance(text, str):
        raise FrameError(f"invalid binary tag: kind {kind!r}, base64 of type {type(text).__name__}")
    try:
        data = binascii.a2b_base64(text, strict_mode=True)
    except (binascii.Error, ValueError) as exc:
        raise FrameError(f"invalid base64 in binary tag: {exc}") from exc
    return data if kind == "bytes" else bytearray(data)


def _untag(obj: Any, depth: int) -> Any:
    if depth > MAX_JSON_DEPTH:
        raise FrameError(f"JSON nested deeper than MAX_JSON_DEPTH ({MAX_JSON_DEPTH})")
    if isinstance(obj, dict):
        if len(obj) == 2 and obj.keys() == _TAG_KEYS:
            return _untag_one(obj)
        if _SCALARS.issuperset(map(type, obj.values())):
            return obj
        changed: dict[Any, Any] | None = None
        for key, value in obj.items():
            new = _untag(value, depth + 1)
            if new is not value:
                if changed is None:
                    changed = dict(obj)
                changed[key] = new
        return obj if changed is None else changed
    if isinstance(obj, list):
        if _SCALARS.issuperset(map(type, obj)):
            return obj
        items: list[Any] | None = None
        for index, value in enumerate(obj):
            new = _untag(value, depth + 1)
            if new is not value:
                if items is None:
                    items = list(obj)
                items[index] = new
        return obj if items is None else items
    return obj


def untag_binary(obj: Any) -> Any:
    """``obj`` with every binary tag dict inside dicts and lists restored to ``bytes``/``bytearray``."""
    return _untag(obj, 0)


def encode_json(obj: Any) -> bytes:
    """JSON bytes for ``obj``, binary values tagged."""
    try:
        probe = _probe_encoder.encode(obj)
        if any(marker in probe for marker in _BIN_MARKERS):
            obj = tag_binary(obj)
        return _json_encoder.encode(obj)
    except (NotImplementedError, TypeError, ValueError, OverflowError, RecursionError) as exc:
        raise SerializationError(f"cannot encode as JSON: {exc}") from exc


def decode_json(data: bytes | bytearray | memoryview | str) -> Any:
    """The value of a JSON document, binary tags restored."""
    if len(data) > MAX_JSON_BODY:
        raise LimitExceededError(f"JSON body of {len(data)} bytes is above MAX_JSON_BODY ({MAX_JSON_BODY})")
    try:
        obj = _json_decoder.decode(data)
    except (msgspec.DecodeError, ValueError, RecursionError) as exc:  # ValueError: bad UTF-8
        raise FrameError(f"invalid JSON: {exc}") from exc
    if isinstance(data, str):
        may_hold_tags = BINARY_TAG in data or "\\u" in data
    elif isinstance(data, memoryview):
        may_hold_tags = True  # no substring search on views; walk (still correct, only slower)
    else:
        may_hold_tags = _TAG_KEY_BYTES in data or b"\\u" in data
    return untag_binary(obj) if may_hold_tags else obj
