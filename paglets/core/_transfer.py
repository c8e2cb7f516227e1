"""``TransferTicket``: where and how a paglet moves (docs/implementing/movement.md; public home
``paglets.remote.transfer``).

A ticket names a destination and the rules of the move. The destination is an ``http://`` or
``https://`` URL, or else the name of a mesh member, resolved by the moving host before preflight (a
name no member has fails with ``UnknownHostError``; it is never looked up in DNS). The rules:

- ``timeout`` — seconds for each delivery attempt (and for the preflight ``/health`` check), > 0;
- ``retries`` — extra attempts after the first one, ≥ 0; ``retry_interval`` — seconds between them;
- ``required_capabilities`` — every one must be listed by the target's ``/health`` or the move fails
  before any hook runs; ``expected_code_version`` — if set, the target's code version must equal it;
- ``arrival_mode`` — ``ArrivalMode.ACTIVATE`` (run on arrival) or ``ArrivalMode.INACTIVE`` (store it
  inactive; no hook runs until a later activation).

The constructor validates: ``arrival_mode`` must be an ``ArrivalMode`` member (a raw string is a
``TypeError``; ``from_wire`` accepts strings), numbers out of range are a ``ValueError``, wrong types a
``TypeError``. Every number is bounded by a named limit below so a ticket can never keep a move alive
for ever. ``from_wire`` raises ``SerializationError`` for malformed input.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Final

from paglets.core._urls import explicit_url
from paglets.core.errors import HostError, SerializationError
from paglets.core.runtime_values import ArrivalMode, enum_from_wire, require_enum

__all__ = [
    "DEFAULT_RETRY_INTERVAL",
    "DEFAULT_TRANSFER_TIMEOUT",
    "MAX_REQUIRED_CAPABILITIES",
    "MAX_RETRY_INTERVAL",
    "MAX_TRANSFER_RETRIES",
    "MAX_TRANSFER_TIMEOUT",
    "TransferTicket",
]

DEFAULT_TRANSFER_TIMEOUT: Final = 10.0
DEFAULT_RETRY_INTERVAL: Final = 0.25

#: Longest per-attempt timeout (one day): a move is an interactive operation, not a batch job.
MAX_TRANSFER_TIMEOUT: Final = 86_400.0
#: Most extra delivery attempts one ticket may ask for.
MAX_TRANSFER_RETRIES: Final = 100
#: Longest pause between two attempts (one hour).
MAX_RETRY_INTERVAL: Final = 3_600.0
#: Most required capabilities one ticket may list (a host advertises a few dozen).
MAX_REQUIRED_CAPABILITIES: Final = 256


def _check_number(value: object, name: str, *, minimum: float, maximum: float, strict: bool) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number, got {value!r}")
    low_ok = value > minimum if strict else value >= minimum
    if math.isnan(value) or not low_ok or value > maximum:
        bound = ">" if strict else ">="
        raise ValueError(f"{name} must be {bound} {minimum} and <= {maximum}, got {value!r}")


@dataclass(frozen=True, slots=True)
class TransferTicket:
    """Options and preflight requirements of one dispatch or clone (see the module docstring)."""

    destination: str
    timeout: float = DEFAULT_TRANSFER_TIMEOUT
    retries: int = 0
    retry_interval: float = DEFAULT_RETRY_INTERVAL
    required_capabilities: tuple[str, ...] = ()
    expected_code_version: str | None = None
    arrival_mode: ArrivalMode = ArrivalMode.ACTIVATE

    def __post_init__(self) -> None:
        if not isinstance(self.destination, str):
            raise TypeError(f"destination must be a string, got {self.destination!r}")
        if not self.destination.strip():
            raise ValueError("destination must not be empty")
        try:
            explicit_url(self.destination)
        except HostError as exc:
            raise ValueError(f"destination: {exc}") from None
        _check_number(self.timeout, "timeout", minimum=0.0, maximum=MAX_TRANSFER_TIMEOUT, strict=True)
        if isinstance(self.retries, bool) or not isinstance(self.retries, int):
            raise TypeError(f"retries must be an integer, got {self.retries!r}")
        if not 0 <= self.retries <= MAX_TRANSFER_RETRIES:
            raise ValueError(f"retries must be between 0 and {MAX_TRANSFER_RETRIES}, got {self.retries}")
        _check_number(
            self.retry_interval, "retry_interval", minimum=0.0, maximum=MAX_RETRY_INTERVAL, strict=False
        )
        capabilities: object = self.required_capabilities  # callers may pass a list or a set
        if isinstance(capabilities, str) or not isinstance(capabilities, tuple | list | frozenset | set):
            raise TypeError("required_capabilities must be a tuple of strings")
        if len(capabilities) > MAX_REQUIRED_CAPABILITIES:
            raise ValueError(f"at most {MAX_REQUIRED_CAPABILITIES} required capabilities")
        if not all(isinstance(item, str) for item in capabilities):
            raise TypeError("required_capabilities must be a tuple of strings")
        if isinstance(capabilities, set | frozenset):
            object.__setattr__(self, "required_capabilities", tuple(sorted(capabilities)))
        elif isinstance(capabilities, list):
            object.__setattr__(self, "required_capabilities", tuple(capabilities))
        if self.expected_code_version is not None and not isinstance(self.expected_code_version, str):
            raise TypeError("expected_code_version must be a string or None")
        require_enum(ArrivalMode, self.arrival_mode, "arrival_mode")

    @classmethod
    def from_target(cls, target: str | TransferTicket) -> TransferTicket:
        """``target`` itself when it is a ticket, else a default ticket to that destination (``HostError``
        for a URL whose scheme is not http or https)."""
        if isinstance(target, TransferTicket):
            return target
        if isinstance(target, str):
            explicit_url(target)
        return cls(destination=target)

    def to_wire(self) -> dict[str, Any]:
        return {
            "destination": self.destination,
            "timeout": self.timeout,
            "retries": self.retries,
            "retry_interval": self.retry_interval,
            "required_capabilities": list(self.required_capabilities),
            "expected_code_version": self.expected_code_version,
            "arrival_mode": self.arrival_mode.value,
        }

    @classmethod
    def from_wire(cls, payload: Any) -> TransferTicket:
        """Rebuild a ticket; missing fields take defaults, ``arrival_mode`` may be a string."""
        if not isinstance(payload, dict):
            raise SerializationError(f"transfer ticket must be a dict, got {type(payload).__name__}")
        if "destination" not in payload:
            raise SerializationError("transfer ticket has no 'destination'")
        capabilities = payload.get("required_capabilities")
        try:
            return cls(
                destination=payload["destination"],
                timeout=_or_default(payload, "timeout", DEFAULT_TRANSFER_TIMEOUT),
                retries=_integral(_or_default(payload, "retries", 0)),
                retry_interval=_or_default(payload, "retry_interval", DEFAULT_RETRY_INTERVAL),
                required_capabilities=() if capabilities is None else capabilities,
                expected_code_version=payload.get("expected_code_version"),
                arrival_mode=enum_from_wire(
                    ArrivalMode, payload.get("arrival_mode") or ArrivalMode.ACTIVATE, "arrival_mode"
                ),
            )
        except (TypeError, ValueError) as exc:
            raise SerializationError(f"malformed transfer ticket: {exc}") from exc


def _or_default(data: dict[str, Any], key: str, default: Any) -> Any:
    value = data.get(key)
    return default if value is None else value


def _integral(value: Any) -> Any:
    """JSON writers may turn ``2`` into ``2.0``; accept such floats where an integer is expected."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value
