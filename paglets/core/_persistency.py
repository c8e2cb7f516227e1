"""Value types of deactivation and activation (docs/implementing/persistence.md; public home
``paglets.persistence.persistency``).

- ``DeactivationRequest`` says *why* a paglet is being deactivated (``reason``) and *who* asked
  (``source``: ``"self"``, ``"external"``, ``"host"`` at shutdown, ``"transfer"`` for an inactive arrival,
  ``"resident-service-manager"`` for idle services). It may carry a suggested policy.
- ``DeactivationPolicy`` is what the paglet chose (``Paglet.deactivation_policy``): whether a message
  activates it, whether messages are queued while inactive, whether host start activates it, and an
  optional wall-clock time (``time.time()`` seconds) at which the host activates it by itself.
- ``QueuedMessage`` is a message kept while the paglet is inactive.
- ``InactiveRecord`` is the durable form of a deactivated paglet. Its wire form carries
  ``"schema_version": 1``; a record of another version is refused.

Wire rules (all ``from_wire``): missing fields take their defaults; malformed input (wrong types, not a
dict) raises ``SerializationError``. ``to_wire`` returns fresh dicts of wire values only.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from paglets.core.errors import SerializationError
from paglets.core.messages import Message

__all__ = [
    "INACTIVE_RECORD_SCHEMA_VERSION",
    "DeactivationPolicy",
    "DeactivationRequest",
    "InactiveRecord",
    "QueuedMessage",
]

#: Version of the ``InactiveRecord`` wire form; bumped only for incompatible changes.
INACTIVE_RECORD_SCHEMA_VERSION: Final = 1


def _require_dict(data: Any, what: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise SerializationError(f"{what} must be a dict, got {type(data).__name__}")
    return data


def _bool(data: dict[str, Any], key: str, default: bool, what: str) -> bool:
    value = data.get(key, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise SerializationError(f"{what}.{key} must be a boolean")
    return value


def _number(data: dict[str, Any], key: str, what: str) -> float | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SerializationError(f"{what}.{key} must be a number")
    return float(value)


def _text(data: dict[str, Any], key: str, default: str, what: str) -> str:
    value = data.get(key)
    if value is None or value == "":
        return default
    if not isinstance(value, str):
        raise SerializationError(f"{what}.{key} must be a string")
    return value


@dataclass(slots=True)
class DeactivationPolicy:
    """How an inactive paglet comes back (see the module docstring)."""

    activate_on_message: bool = True
    queue_messages_when_inactive: bool = True
    activate_on_startup: bool = False
    activate_at: float | None = None

    @classmethod
    def after(cls, seconds: float, **kwargs: Any) -> DeactivationPolicy:
        """A policy that activates the paglet ``seconds`` from now (other fields from ``kwargs``)."""
        return cls(activate_at=time.time() + seconds, **kwargs)

    def to_wire(self) -> dict[str, Any]:
        return {
            "activate_on_message": self.activate_on_message,
            "queue_messages_when_inactive": self.queue_messages_when_inactive,
            "activate_on_startup": self.activate_on_startup,
            "activate_at": self.activate_at,
        }

    @classmethod
    def from_wire(cls, payload: Any) -> DeactivationPolicy:
        """Rebuild a policy; ``None`` gives the default policy."""
        if payload is None:
            return cls()
        d = _require_dict(payload, "policy")
        return cls(
            activate_on_message=_bool(d, "activate_on_message", True, "policy"),
            queue_messages_when_inactive=_bool(d, "queue_messages_when_inactive", True, "policy"),
            activate_on_startup=_bool(d, "activate_on_startup", False, "policy"),
            activate_at=_number(d, "activate_at", "policy"),
        )


@dataclass(slots=True)
class DeactivationRequest:
    """Why and by whom a deactivation was asked for; ``policy`` is a suggestion to the paglet."""

    reason: str = "deactivate"
    source: str = "external"
    policy: DeactivationPolicy | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_wire(self) -> dict[str, Any]:
        return {
            "reason": self.reason,
            "source": self.source,
            "policy": self.policy.to_wire() if self.policy is not None else None,
            "metadata": dict(self.metadata),
        }

    @classmethod
    def from_wire(cls, payload: Any) -> DeactivationRequest:
        """Rebuild a request; ``None`` gives the default request."""
        if payload is None:
            return cls()
        d = _require_dict(payload, "request")
        policy = d.get("policy")
        metadata = d.get("metadata")
        if metadata is None:
            metadata = {}
        elif not isinstance(metadata, dict):
            raise SerializationError("request.metadata must be a dict")
        return cls(
            reason=_text(d, "reason", "deactivate", "request"),
            source=_text(d, "source", "external", "request"),
            policy=DeactivationPolicy.from_wire(policy) if policy is not None else None,
            metadata=dict(metadata),
        )


@dataclass(slots=True)
class QueuedMessage:
    """A message kept for an inactive paglet, delivered in order on activation."""

    message: Message
    oneway: bool = False
    queued_at: float = field(default_factory=time.time)

    def to_wire(self) -> dict[str, Any]:
        return {"message": self.message.to_wire(), "oneway": self.oneway, "queued_at": self.queued_at}

    @classmethod
    def from_wire(cls, payload: Any) -> QueuedMessage:
        d = _require_dict(payload, "queued message")
        if "message" not in d:
            raise SerializationError("queued message has no 'message'")
        queued_at = _number(d, "queued_at", "queued message")
        return cls(
            message=Message.from_wire(d["message"]),
            oneway=_bool(d, "oneway", False, "queued message"),
            queued_at=time.time() if queued_at is None else queued_at,
        )


@dataclass(slots=True)
class InactiveRecord:
    """The durable form of a deactivated paglet.

    ``envelope`` is the runtime's activation envelope. This module does not know its type: ``to_wire``
    calls its ``to_wire()`` when it has one (a plain dict is stored as is), and ``from_wire`` keeps the
    envelope's wire dict unless an ``envelope_from_wire`` function is given.
    """

    envelope: Any
    policy: DeactivationPolicy
    request: DeactivationRequest
    deactivated_at: float = field(default_factory=time.time)
    queued_messages: list[QueuedMessage] = field(default_factory=list)

    @property
    def agent_id(self) -> str:
        """The id of the paglet this record holds (read from the envelope)."""
        envelope = self.envelope
        if isinstance(envelope, dict):
            value = envelope.get("agent_id")
        else:
            value = getattr(envelope, "agent_id", None)
        if not isinstance(value, str):
            raise SerializationError("inactive record envelope has no agent_id")
        return value

    def to_wire(self) -> dict[str, Any]:
        envelope = self.envelope
        to_wire = getattr(envelope, "to_wire", None)
        return {
            "schema_version": INACTIVE_RECORD_SCHEMA_VERSION,
            "envelope": to_wire() if callable(to_wire) else envelope,
            "policy": self.policy.to_wire(),
            "request": self.request.to_wire(),
            "deactivated_at": self.deactivated_at,
            "queued_messages": [queued.to_wire() for queued in self.queued_messages],
        }

    @classmethod
    def from_wire(
        cls,
        data: Any,
        *,
        envelope_from_wire: Callable[[Any], Any] | None = None,
    ) -> InactiveRecord:
        d = _require_dict(data, "inactive record")
        version = d.get("schema_version", INACTIVE_RECORD_SCHEMA_VERSION)
        if version != INACTIVE_RECORD_SCHEMA_VERSION:
            raise SerializationError(f"unsupported inactive record schema_version {version!r}")
        if "envelope" not in d:
            raise SerializationError("inactive record has no 'envelope'")
        queued = d.get("queued_messages")
        if queued is None:
            queued = []
        elif not isinstance(queued, list):
            raise SerializationError("inactive record queued_messages must be a list")
        deactivated_at = _number(d, "deactivated_at", "inactive record")
        envelope = d["envelope"]
        return cls(
            envelope=envelope_from_wire(envelope) if envelope_from_wire is not None else envelope,
            policy=DeactivationPolicy.from_wire(d.get("policy")),
            request=DeactivationRequest.from_wire(d.get("request")),
            deactivated_at=time.time() if deactivated_at is None else deactivated_at,
            queued_messages=[QueuedMessage.from_wire(item) for item in queued],
        )
