"""``HostRef``: one host as the mesh sees it, and its JSON wire form (docs/operations/hosts.md).

Wire form (a JSON object; every key of paglets 2.0 plus one optional key of ours)::

    {"name": str, "url": str, "code_version": str, "online": bool, "last_seen": float,
     "active_count": int, "inactive_count": int, "tags": [str, ...], "properties": {str: str},
     "error": str,      # only when set
     "age": float}      # only when known (ours; 2.0 ignores it)

``tags`` and ``properties`` are always present in what we send. ``age`` is the number of seconds since
the *reporting* host last had evidence that this host is alive, measured on the reporter's own
monotonic clock; the mesh judges liveness from it and never from ``last_seen``, which is the reporter's
wall clock and is kept only for 2.0 compatibility (see :mod:`paglets.remote.mesh`).

:meth:`HostRef.from_wire` validates every field it reads and raises
:class:`~paglets.core.errors.HostError` for anything else than the types above, for out-of-range numbers
and for values above the limits below; unknown keys are ignored (forward compatibility). A missing
``url`` falls back to ``address`` (2.0 ``/health`` bodies). Tags are normalized (trimmed, case-folded,
de-duplicated, sorted) and the URL with :func:`normalize_host_url`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Final

from paglets.core._urls import MAX_HOST_URL, explicit_url, normalize_host_url
from paglets.core.errors import HostError

__all__ = [
    "MAX_CODE_VERSION",
    "MAX_HOST_NAME",
    "MAX_HOST_PROPERTIES",
    "MAX_HOST_TAGS",
    "MAX_HOST_URL",
    "MAX_PROPERTY_KEY",
    "MAX_PROPERTY_VALUE",
    "MAX_REF_ERROR",
    "MAX_TAG_LENGTH",
    "HostRef",
    "explicit_url",
    "name_from_url",
    "normalize_host_url",
    "normalize_tags",
    "peer_url",
]

#: Longest host name. Names are labels for people and for ``dispatch_to``; 256 is plenty.
MAX_HOST_NAME: Final = 256
#: Longest code version string (a git hash is 40 or 64 characters; version labels are short).
MAX_CODE_VERSION: Final = 256
#: Most tags per host and the longest tag. Tags are selection labels, not data.
MAX_HOST_TAGS: Final = 64
MAX_TAG_LENGTH: Final = 128
#: Most properties per host, longest key and value. Every heartbeat carries them, so they stay small.
MAX_HOST_PROPERTIES: Final = 64
MAX_PROPERTY_KEY: Final = 128
MAX_PROPERTY_VALUE: Final = 1024
#: Longest error text kept in a ref; longer text is cut (never refused: it is diagnostics).
MAX_REF_ERROR: Final = 1024
#: Largest paglet count accepted (the largest integer a JSON double holds exactly).
_MAX_COUNT: Final = 2**53


def looks_like_address(text: str) -> bool:
    """Whether a scheme-less string has the shape ``host:port`` (for hints in error messages)."""
    host, sep, port = text.strip().rstrip("/").rpartition(":")
    return bool(sep and host and port.isdigit())


def peer_url(text: str) -> str:
    """A URL for an argument that only takes URLs (``--peer``, ``peers=``, ``public_url``): an explicit
    ``http(s)://`` URL, or ``host:port``, which paglets 2.0 also accepted and which means ``http://``.
    A bare word is refused (``HostError``): it reads like a host name, and names are not URLs."""
    url = explicit_url(text)
    if url is not None:
        return url
    value = text.strip().rstrip("/")
    if looks_like_address(value):
        return normalize_host_url(value)
    if not value:
        raise HostError("empty host URL")
    raise HostError(
        f"{value[:200]!r} is not a URL: write it as http://HOST:PORT (e.g. http://127.0.0.1:8765)"
    )


def name_from_url(url: str) -> str:
    """A placeholder name for a host known only by its URL: its ``host:port`` part."""
    rest = url.split("://", 1)[-1]
    return rest.split("/", 1)[0] or url


def normalize_tags(values: Any) -> tuple[str, ...]:
    """Tags trimmed, case-folded, de-duplicated and sorted; ``HostError`` for non-strings or excess."""
    if not isinstance(values, (list, tuple, set, frozenset)):
        raise HostError(f"tags must be a list of strings, got {type(values).__name__}")
    if len(values) > MAX_HOST_TAGS:
        raise HostError(f"more than {MAX_HOST_TAGS} tags")
    out: set[str] = set()
    for value in values:
        if not isinstance(value, str):
            raise HostError(f"tags must be strings, got {type(value).__name__}")
        tag = value.strip().casefold()
        if len(tag) > MAX_TAG_LENGTH:
            raise HostError(f"tag longer than {MAX_TAG_LENGTH} characters")
        if tag:
            out.add(tag)
    return tuple(sorted(out))


def _properties(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise HostError(f"properties must be an object of strings, got {type(value).__name__}")
    if len(value) > MAX_HOST_PROPERTIES:
        raise HostError(f"more than {MAX_HOST_PROPERTIES} properties")
    out: dict[str, str] = {}
    for key, item in value.items():
        if not isinstance(key, str) or not isinstance(item, str):
            raise HostError("property keys and values must be strings")
        name = key.strip()
        if len(name) > MAX_PROPERTY_KEY or len(item) > MAX_PROPERTY_VALUE:
            raise HostError(f"property {name[:40]!r} is longer than the limits")
        if name:
            out[name] = item
    return out


def _text(payload: dict[str, Any], key: str, limit: int) -> str:
    value = payload.get(key)
    if not isinstance(value, str):
        raise HostError(f"host ref field {key!r} must be a string, got {type(value).__name__}")
    if len(value) > limit:
        raise HostError(f"host ref field {key!r} longer than {limit} characters")
    return value


def _number(value: Any, key: str, *, minimum: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise HostError(f"host ref field {key!r} must be a number, got {type(value).__name__}")
    number = float(value)
    if not math.isfinite(number) or (minimum is not None and number < minimum):
        raise HostError(f"host ref field {key!r} out of range: {value!r}")
    return number


def _count(payload: dict[str, Any], key: str) -> int:
    value = payload.get(key, 0)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_COUNT:
        raise HostError(f"host ref field {key!r} must be a non-negative integer, got {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class HostRef:
    """One host of the mesh; ``age`` is our addition (see the module docstring)."""

    name: str
    url: str
    code_version: str
    online: bool
    last_seen: float
    active_count: int
    inactive_count: int
    tags: tuple[str, ...] = ()
    properties: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    #: Seconds since the reporting host last heard from this host (its own monotonic clock), if known.
    age: float | None = None

    def to_wire(self) -> dict[str, Any]:
        """The JSON form: always ``tags`` and ``properties``; ``error`` and ``age`` only when set."""
        payload: dict[str, Any] = {
            "name": self.name,
            "url": self.url,
            "code_version": self.code_version,
            "online": self.online,
            "last_seen": self.last_seen,
            "active_count": self.active_count,
            "inactive_count": self.inactive_count,
            "tags": list(self.tags),
            "properties": dict(self.properties),
        }
        if self.error:
            payload["error"] = self.error
        if self.age is not None:
            payload["age"] = self.age
        return payload

    @classmethod
    def from_wire(cls, payload: Any) -> HostRef:
        """Validate and build a ref from its JSON form; ``HostError`` for anything malformed."""
        if not isinstance(payload, dict):
            raise HostError(f"host ref must be a JSON object, got {type(payload).__name__}")
        raw_url = payload.get("url") or payload.get("address")
        if not isinstance(raw_url, str):
            raise HostError("host ref needs a string 'url'")
        online = payload.get("online", True)
        if not isinstance(online, bool):
            raise HostError(f"host ref field 'online' must be a boolean, got {type(online).__name__}")
        error = payload.get("error")
        if error is not None and not isinstance(error, str):
            raise HostError(f"host ref field 'error' must be a string, got {type(error).__name__}")
        age = payload.get("age")
        return cls(
            name=_text(payload, "name", MAX_HOST_NAME),
            url=normalize_host_url(raw_url),
            code_version=_text(payload, "code_version", MAX_CODE_VERSION),
            online=online,
            last_seen=_number(payload.get("last_seen", 0.0), "last_seen"),
            active_count=_count(payload, "active_count"),
            inactive_count=_count(payload, "inactive_count"),
            tags=normalize_tags(payload.get("tags", ())),
            properties=_properties(payload.get("properties", {})),
            error=error[:MAX_REF_ERROR] if error else None,
            age=None if age is None else _number(age, "age", minimum=0.0),
        )

    def replace(self, **changes: Any) -> HostRef:
        """A copy with ``changes`` applied (``dataclasses.replace``)."""
        return dataclasses.replace(self, **changes)
