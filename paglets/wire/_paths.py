"""Field names for msgspec validation errors in array-encoded Structs.

msgspec reports where a value failed by position (``Expected `str`, got `int` - at `$[2][1]```); for an
``array_like`` Struct a position is a field, so the errors of IPC frames and control requests can name
it (``field 'creation.agent_class': expected str, got int``).
"""

from __future__ import annotations

import re
from typing import Any, Final

import msgspec

__all__ = ["describe_array_error"]

_AT: Final = re.compile(r"^(?P<what>.*?)(?: - at (?P<key>`key` in )?`\$(?P<path>[^`]*)`)?$", re.S)


def describe_array_error(text: str, cls: Any, *, prefix: str = "") -> str:
    """``text`` (a ``msgspec.ValidationError`` message about a value decoded as ``cls``) as ``field
    '<prefix><path>': <what>``, positions of ``array_like`` Structs replaced by field names; just
    ``<what>`` when the error is about the whole value."""
    match = _AT.match(text)
    what = match.group("what") if match else text
    path = (match.group("path") if match else None) or ""
    what = what.replace("`", "")
    what = what[:1].lower() + what[1:]
    if match and match.group("key"):
        what = f"a key: {what}"  # a dict key of the wrong type
    names: list[str] = [prefix] if prefix else []
    rest = path
    while rest.startswith("["):
        index_text, _, rest = rest[1:].partition("]")
        fields = getattr(cls, "__struct_fields__", None) if cls is not None else None
        offset = 1 if fields is not None and cls.__struct_config__.tag is not None else 0
        if fields is None or not index_text.isdigit() or not 0 <= int(index_text) - offset < len(fields):
            names.append(f"[{index_text}]")
            cls = None
            continue
        name = fields[int(index_text) - offset]
        names.append(name)
        cls = _struct_field_type(cls, name)
    if rest:
        names.append(rest.removeprefix("."))
    if not names:
        return what
    return f"field {'.'.join(names).replace('.[', '[')!r}: {what}"


def _struct_field_type(cls: Any, name: str) -> Any:
    for info in msgspec.structs.fields(cls):
        if info.name == name:
            kind = info.type
            return kind if isinstance(kind, type) and issubclass(kind, msgspec.Struct) else None
    return None
