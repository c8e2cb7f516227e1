"""How the compatibility scenarios describe a value: its *shape* (types, dict keys), never its contents.

Shapes are JSON values, so the two runs can be compared with ``==``:

- scalars and objects: the class name (``"str"``, ``"PagletProxy"``, ``"HostRef"``, ``"None"``);
- lists and tuples: ``["list", <shape of the first item>]`` (``["list"]`` when empty);
- dicts: ``{"dict": {key: shape, ...}}`` (keys sorted), down to :data:`MAX_DEPTH` levels.

Uses nothing but the standard library: the same file runs under both interpreters.
"""

from __future__ import annotations

from typing import Any

#: Levels of nested dicts and lists described (deeper values are shown by class name).
MAX_DEPTH = 4


def shape(value: Any, depth: int = 0) -> Any:
    if value is None:
        return "None"
    if isinstance(value, (list, tuple)) and depth < MAX_DEPTH:
        tag = "list" if isinstance(value, list) else "tuple"
        return [tag, shape(value[0], depth + 1)] if value else [tag]
    if isinstance(value, dict) and depth < MAX_DEPTH:
        return {"dict": {str(key): shape(value[key], depth + 1) for key in sorted(value, key=str)}}
    return type(value).__name__


def error_name(exc: BaseException) -> str:
    return type(exc).__name__
