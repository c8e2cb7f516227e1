"""The dataclass state codec (public module, contract of paglets 2.0 plus the binary fast path).

Three groups of functions live here:

* **Class names.** :func:`qualified_name` names a class as ``"module.path:Qual.Name"``;
  :func:`resolve_qualified_name` imports the module and walks the qualname (never ``eval``). Classes
  defined inside a function (``<locals>`` in the qualname) cannot be found by another process, so
  they are refused with the fix in the message.
* **Wire dicts** (the JSON-ish form of 2.0): :func:`dataclass_to_wire` and :func:`dataclass_from_wire`
  (which accepts JSON binary tags for bytes). Rules: :mod:`paglets.serialization._to_wire`,
  :mod:`paglets.serialization._from_wire` and :mod:`paglets.serialization._common` (binary tags).
* **Binary states** (what the runtime snapshots, moves and persists): :func:`encode_state`,
  :func:`encode_state_into`, :func:`decode_state` and the per-class :class:`StateCodec` from
  :func:`codec_for`. msgspec MessagePack, typed decode straight into the dataclass, no pickle.
  Rules: :mod:`paglets.serialization._state`.

Supported field values (both forms): nested dataclasses, ``str``/``int``/``float``/``bool``/``None``,
``bytes``, ``bytearray``, ``list``, ``tuple``, ``set``, ``frozenset``, ``dict``, ``Enum`` (by value),
pathlib paths, ``PagletProxyRef``; as an extension also ``datetime``/``date``/``time``/``timedelta``,
``UUID``, ``Decimal`` and ``msgspec.Struct``. Anything else raises ``SerializationError`` naming the
field path.
"""

from __future__ import annotations

import importlib
import sys
from typing import Final

from paglets._errors import SerializationError
from paglets.serialization._common import MAX_WIRE_NESTING
from paglets.serialization._from_wire import dataclass_from_wire, value_from_wire
from paglets.serialization._state import (
    MAX_CACHED_CODECS,
    CodecStatistics,
    StateCodec,
    codec_for,
    decode_state,
    encode_state,
    encode_state_into,
)
from paglets.serialization._to_wire import dataclass_to_wire

__all__ = [
    "MAX_CACHED_CODECS",
    "MAX_QUALIFIED_NAME",
    "MAX_WIRE_NESTING",
    "CodecStatistics",
    "StateCodec",
    "codec_for",
    "dataclass_from_wire",
    "dataclass_to_wire",
    "decode_state",
    "encode_state",
    "encode_state_into",
    "qualified_name",
    "resolve_qualified_name",
    "value_from_wire",
]

#: Longest class name :func:`resolve_qualified_name` accepts. Names arrive from peers in envelopes and
#: records; real ones are well under 200 characters.
MAX_QUALIFIED_NAME: Final = 1024


def qualified_name(obj: object) -> str:
    """``"module.path:Qual.Name"`` of a class, or of the class of an instance.

    Raises ``SerializationError`` for classes another process could not import by that name: classes
    defined inside a function (``<locals>``) and objects without a module or qualname.
    """
    cls = obj if isinstance(obj, type) else type(obj)
    module = getattr(cls, "__module__", None)
    qualname = getattr(cls, "__qualname__", None)
    if not isinstance(module, str) or not module or not isinstance(qualname, str) or not qualname:
        raise SerializationError(f"cannot name {cls!r}: it has no module or qualified name")
    if "<locals>" in qualname:
        raise SerializationError(
            f"{module}:{qualname} is defined inside a function, so no other process can import it; "
            "define the class at module level"
        )
    return f"{module}:{qualname}"


def _dotted_identifiers(text: str) -> bool:
    return bool(text) and all(part.isidentifier() for part in text.split("."))


#: ``sys.path`` entries quoted in an import error (the head is what decides).
SYS_PATH_SHOWN: Final = 3


def _import_failure(module_name: str, name: str, exc: ImportError) -> str:
    """Why ``module_name`` did not import, where this process looked, and how to fix it."""
    text = f"cannot import module {module_name!r} for class {name!r}: {exc}"
    missing = exc.name if isinstance(exc, ModuleNotFoundError) else None
    if missing is None or not (module_name == missing or module_name.startswith(missing + ".")):
        return text  # the module was found; something it imports is missing
    if "." in missing:
        parent, _, leaf = missing.rpartition(".")
        return f"{text}. Package {parent!r} was found but has no module {leaf!r}: check the class name"
    head = [entry or "(the working directory)" for entry in sys.path[:SYS_PATH_SHOWN]]
    more = ", ..." if len(sys.path) > SYS_PATH_SHOWN else ""
    return (
        f"{text}. This process imports from sys.path = [{', '.join(head)}{more}]. Start the host in the "
        f"folder that holds {missing}.py (or the {missing}/ package), add that folder to PYTHONPATH, "
        "or install it into the host's environment"
    )


def resolve_qualified_name(name: str) -> type:
    """The class a :func:`qualified_name` string names.

    Imports the module (``importlib.import_module``) and walks the qualname with ``getattr``; nothing is
    evaluated. Raises ``SerializationError`` for a malformed name, a module that cannot be imported
    (or fails while importing), a missing attribute, or an attribute that is not a class. Note that
    importing runs the module's top-level code: callers that take names from untrusted peers should
    check the module against an allow-list first.
    """
    if not isinstance(name, str):
        raise SerializationError(f"a class name must be a str, got {type(name).__name__!r}")
    if len(name) > MAX_QUALIFIED_NAME:
        raise SerializationError(f"class name longer than {MAX_QUALIFIED_NAME} characters")
    module_name, sep, qualname = name.partition(":")
    if not sep or not _dotted_identifiers(module_name) or not _dotted_identifiers(qualname):
        raise SerializationError(
            f"malformed class name {name!r}: expected 'module.path:Qual.Name' (dotted identifiers, one ':')"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise SerializationError(_import_failure(module_name, name, exc)) from exc
    except Exception as exc:  # the module's own top-level code failed
        raise SerializationError(
            f"importing module {module_name!r} for class {name!r} failed: {type(exc).__name__}: {exc}"
        ) from exc
    obj: object = module
    walked: list[str] = []
    for part in qualname.split("."):
        walked.append(part)
        try:
            obj = getattr(obj, part)
        except AttributeError as exc:
            raise SerializationError(
                f"module {module_name!r} has no attribute {'.'.join(walked)!r} (class name {name!r})"
            ) from exc
    if not isinstance(obj, type):
        raise SerializationError(f"{name!r} names a {type(obj).__name__}, not a class")
    return obj
