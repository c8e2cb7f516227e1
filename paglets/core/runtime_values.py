"""Small enumerations shared by the authoring API, the runtime and the wire.

Every enum here is a :class:`enum.StrEnum`: members compare equal to their string values
(``ArrivalMode.INACTIVE == "inactive"``), ``str()`` gives the value, and msgspec/JSON encode them as the
value. Values are part of the HTTP and on-disk formats and never change.

Two helpers convert at the edges:

- :func:`require_enum` is for constructors of typed values: it accepts only a member of the enum and
  raises ``TypeError`` otherwise (a raw string is refused, so typos are caught where they are written);
- :func:`enum_from_wire` is for decoding: it accepts a member or its value and raises ``ValueError``
  naming the allowed values.
"""

from __future__ import annotations

from enum import Enum, StrEnum
from typing import TypeVar, overload

__all__ = [
    "ArrivalMode",
    "EnvelopeKind",
    "LaunchConfigSyncAction",
    "ResidentLifecycle",
    "ServiceScope",
    "enum_from_wire",
    "require_enum",
]

E = TypeVar("E", bound=Enum)


class ServiceScope(StrEnum):
    """Where a service record is visible: this host only, or every host of the mesh."""

    LOCAL = "local"
    MESH = "mesh"


class ResidentLifecycle(StrEnum):
    """When a resident service starts: on first use (``LAZY``) or with its host (``EAGER``)."""

    LAZY = "lazy"
    EAGER = "eager"


class ArrivalMode(StrEnum):
    """What the target host does with an arriving paglet: run it, or store it inactive."""

    ACTIVATE = "activate"
    INACTIVE = "inactive"


class EnvelopeKind(StrEnum):
    """Why an envelope was built (the movement that carries it)."""

    DISPATCH = "dispatch"
    CLONE = "clone"
    RETRACT = "retract"
    ACTIVATION = "activation"


class LaunchConfigSyncAction(StrEnum):
    """Outcome of synchronising the user's ``launch.toml`` with the bundled template."""

    COPIED = "copied"
    SKIPPED = "skipped"
    UNCHANGED = "unchanged"
    UPDATED = "updated"
    UPDATE_AVAILABLE = "update-available"


def _enum_and_value(first: object, second: object, func: str) -> tuple[type[Enum], object]:
    """Sort the two arguments into (enum class, value), accepting either order."""
    if isinstance(first, type) and issubclass(first, Enum):
        return first, second
    if isinstance(second, type) and issubclass(second, Enum):
        return second, first
    raise TypeError(f"{func}() needs an Enum class, got {first!r} and {second!r}")


@overload
def require_enum(enum_cls: type[E], value: object, name: str = ...) -> E: ...
@overload
def require_enum(enum_cls: object, value: type[E], name: str = ...) -> E: ...
def require_enum(enum_cls: object, value: object, name: str = "value") -> Enum:
    """Return ``value`` if it is a member of ``enum_cls``; raise ``TypeError`` otherwise.

    The two first arguments may also be given the other way round (``require_enum(value, EnumCls,
    name)``), which is the order paglets 2.0 code uses; whichever one is an enum class is the class.
    """
    cls, candidate = _enum_and_value(enum_cls, value, "require_enum")
    if not isinstance(candidate, cls):
        allowed = ", ".join(f"{cls.__name__}.{member.name}" for member in cls)
        raise TypeError(f"{name} must be a {cls.__name__} member ({allowed}), got {candidate!r}")
    return candidate


@overload
def enum_from_wire(enum_cls: type[E], value: object, name: str = ...) -> E: ...
@overload
def enum_from_wire(enum_cls: object, value: type[E], name: str = ...) -> E: ...
def enum_from_wire(enum_cls: object, value: object, name: str = "value") -> Enum:
    """Decode ``value`` (a member or a member's value) into a member of ``enum_cls``.

    Unknown values raise ``ValueError`` naming the field and the allowed values. As with
    :func:`require_enum`, the value may come first (paglets 2.0 order).
    """
    cls, candidate = _enum_and_value(enum_cls, value, "enum_from_wire")
    if isinstance(candidate, cls):
        return candidate
    try:
        return cls(candidate)
    except (ValueError, TypeError):
        allowed = ", ".join(repr(member.value) for member in cls)
        raise ValueError(f"{name} must be one of {allowed}, got {candidate!r}") from None
