"""Lifecycle events passed to a paglet's hooks (docs/implementing/lifecycle.md).

All events are frozen, slotted dataclasses. ``host_name``/``host_address`` always name the host on
which the hook runs. Fields after ``timestamp`` have defaults, so events can be built positionally in
declaration order (base fields first) or, as the runtime does, with keywords.

Events cross the host/child boundary as *wire dicts*: ``to_wire()`` gives every field (a
``PersistencyEvent``'s ``request``/``policy`` become their own wire dicts; ``CreationEvent.init`` must
already be a wire value), ``from_wire()`` rebuilds the event (missing fields take defaults, malformed
input raises ``SerializationError``). ``event_to_wire``/``event_from_wire`` add and read an
``"event_type"`` tag so one decoder rebuilds any of the five classes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Final, TypeVar

from paglets.core._persistency import DeactivationPolicy, DeactivationRequest
from paglets.core.errors import SerializationError

__all__ = [
    "EVENT_TYPE_KEY",
    "CloneEvent",
    "CreationEvent",
    "MobilityEvent",
    "PagletEvent",
    "PersistencyEvent",
    "event_from_wire",
    "event_to_wire",
]

#: Key of the class tag written by :func:`event_to_wire`.
EVENT_TYPE_KEY: Final = "event_type"

EventT = TypeVar("EventT", bound="PagletEvent")


@dataclass(frozen=True, slots=True)
class PagletEvent:
    """Base of every lifecycle event."""

    event_type: ClassVar[str] = "paglet"

    agent_id: str
    host_name: str
    host_address: str
    timestamp: float = field(default_factory=time.time)

    def to_wire(self) -> dict[str, Any]:
        """Every field as a wire value (no class tag; see :func:`event_to_wire`)."""
        out: dict[str, Any] = {}
        for name in _field_names(type(self)):
            value = getattr(self, name)
            if isinstance(value, DeactivationRequest | DeactivationPolicy):
                value = value.to_wire()
            out[name] = value
        return out

    @classmethod
    def from_wire(cls: type[EventT], data: Any) -> EventT:
        """Rebuild an event of this class from ``to_wire()`` output (extra keys are ignored)."""
        if not isinstance(data, dict):
            raise SerializationError(f"event must be a dict, got {type(data).__name__}")
        kwargs: dict[str, Any] = {}
        for name in _field_names(cls):
            if name not in data:
                continue
            kwargs[name] = _decode_field(cls, name, data[name])
        try:
            return cls(**kwargs)
        except TypeError as exc:  # a required field is missing
            raise SerializationError(f"malformed {cls.__name__}: {exc}") from exc


@dataclass(frozen=True, slots=True)
class CreationEvent(PagletEvent):
    """``on_creation``: ``init`` is the value the creator passed (``Host.create(..., init=...)``)."""

    event_type: ClassVar[str] = "creation"

    init: Any = None


@dataclass(frozen=True, slots=True)
class MobilityEvent(PagletEvent):
    """``on_dispatching``/``on_arrival``/``on_reverting``; ``reason`` is ``"dispatch"`` or ``"retract"``."""

    event_type: ClassVar[str] = "mobility"

    source_host_name: str = ""
    source_host_address: str = ""
    target_host_name: str = ""
    target_host_address: str = ""
    reason: str = "dispatch"


@dataclass(frozen=True, slots=True)
class CloneEvent(PagletEvent):
    """``on_cloning``/``on_clone``/``on_cloned``."""

    event_type: ClassVar[str] = "clone"

    source_agent_id: str = ""
    clone_agent_id: str = ""
    source_host_name: str = ""
    source_host_address: str = ""
    target_host_name: str = ""
    target_host_address: str = ""


@dataclass(frozen=True, slots=True)
class PersistencyEvent(PagletEvent):
    """``on_deactivating``/``on_activation``/``on_disposing``; ``reason`` says which (or why)."""

    event_type: ClassVar[str] = "persistency"

    reason: str = "deactivate"
    request: DeactivationRequest | None = None
    policy: DeactivationPolicy | None = None


_EVENT_CLASSES: Final[dict[str, type[PagletEvent]]] = {
    cls.event_type: cls for cls in (PagletEvent, CreationEvent, MobilityEvent, CloneEvent, PersistencyEvent)
}
_FIELD_NAMES: dict[type[PagletEvent], tuple[str, ...]] = {}


def _field_names(cls: type[PagletEvent]) -> tuple[str, ...]:
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = tuple(f.name for f in fields(cls))
        _FIELD_NAMES[cls] = names
    return names


def _decode_field(cls: type[PagletEvent], name: str, value: Any) -> Any:
    if name == "request" and issubclass(cls, PersistencyEvent):
        return None if value is None else DeactivationRequest.from_wire(value)
    if name == "policy" and issubclass(cls, PersistencyEvent):
        return None if value is None else DeactivationPolicy.from_wire(value)
    if name == "init":
        return value
    if name == "timestamp":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise SerializationError(f"{cls.__name__}.timestamp must be a number")
        return float(value)
    if not isinstance(value, str):
        raise SerializationError(f"{cls.__name__}.{name} must be a string")
    return value


def event_to_wire(event: PagletEvent) -> dict[str, Any]:
    """``event.to_wire()`` plus the class tag under ``EVENT_TYPE_KEY``."""
    out = event.to_wire()
    out[EVENT_TYPE_KEY] = event.event_type
    return out


def event_from_wire(data: Any) -> PagletEvent:
    """Rebuild any event written by :func:`event_to_wire`."""
    if not isinstance(data, dict):
        raise SerializationError(f"event must be a dict, got {type(data).__name__}")
    cls = _EVENT_CLASSES.get(data.get(EVENT_TYPE_KEY))  # type: ignore[arg-type]
    if cls is None:
        raise SerializationError(f"unknown event type {data.get(EVENT_TYPE_KEY)!r}")
    return cls.from_wire(data)
