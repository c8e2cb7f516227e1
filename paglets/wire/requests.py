"""JSON request bodies of the HTTP control plane: one typed msgspec Struct per route, decoded once.

:func:`decode_request` turns a body into its Struct with one ``msgspec.json.decode(raw, type=...)``.
Whatever does not fit the schema is a :class:`~paglets.core.errors.RequestError` (HTTP 400) whose message
names the field by its path (``message.args``, ``oneway``)::

    invalid request: field 'oneway': expected bool, got str

so handlers never check field types themselves. Rules (``proto/PROTOCOL.md`` §6):

- an empty body is ``{}``; a body that is not a JSON object is refused;
- unknown keys are ignored (newer clients stay readable, §5 rule 2); unknown *state* fields are not (the
  state is checked against its dataclass by the host);
- binary values may appear in the fields typed ``Any`` (message arguments, init, state) in the binary tag
  form of §3.2 and are restored after the typed decode; a tag where the schema wants something else
  (an object, a string) is refused like any other wrong type.

To validate more of a request, change its Struct (a narrower type, a ``msgspec.Meta`` constraint): the
decoder and the error mapping stay as they are.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Final, TypeVar

import msgspec

from paglets.core.errors import FrameError, LimitExceededError, RequestError
from paglets.wire.jsonbin import BINARY_TAG, untag_binary
from paglets.wire.limits import MAX_JSON_BODY

__all__ = [
    "AdvertiseRequest",
    "CreateRequest",
    "EmptyRequest",
    "ForgetRequest",
    "LeaseRequest",
    "MessageBody",
    "MessageRequest",
    "MoveRequest",
    "UnadvertiseRequest",
    "decode_request",
    "describe_validation_error",
]

S = TypeVar("S", bound=msgspec.Struct)

_TAG_KEY_BYTES: Final = BINARY_TAG.encode()


class CreateRequest(msgspec.Struct, kw_only=True):
    """``POST /agents`` (JSON form): create a paglet from class names and a wire state."""

    agent_class_name: str
    state_class_name: str | None = None
    #: The state as a wire dict of the state dataclass (checked field by field by the host).
    state: dict[str, Any] | None = None
    init: Any = None
    agent_id: str | None = None
    #: paglets 2.0 moved paglets as JSON/pickle envelopes here; refused with 415 when present.
    envelope: Any = msgspec.UNSET


class MessageBody(msgspec.Struct, kw_only=True):
    """A ``Message.to_wire()`` dict (contract §1.5)."""

    kind: str
    args: dict[str, Any] | None = None
    arg: Any = None
    sender: Any = None
    reply_to: Any = None
    priority: int | None = None
    message_type: int | None = None
    timestamp: float | None = None
    message_id: str | None = None


class MessageRequest(msgspec.Struct, kw_only=True):
    """``POST /agents/{id}/messages``."""

    message: MessageBody
    oneway: bool = False
    activate_if_inactive: bool = True
    no_delay: bool = False


class MoveRequest(msgspec.Struct, kw_only=True):
    """``POST /agents/{id}/{dispatch|clone|retract|deactivate|activate}``."""

    #: A host URL or mesh host name (dispatch, clone, retract).
    target: str | None = None
    #: A ``TransferTicket`` wire dict (dispatch, clone); checked by ``TransferTicket.from_wire``.
    ticket: dict[str, Any] | None = None
    #: A ``DeactivationRequest`` wire dict (deactivate); checked by ``DeactivationRequest.from_wire``.
    request: dict[str, Any] | None = None

    def to_args(self) -> dict[str, Any]:
        return {name: value for name in self.__struct_fields__ if (value := getattr(self, name)) is not None}


class LeaseRequest(msgspec.Struct, kw_only=True):
    """``POST /services/leases``."""

    agent_id: str
    service_name: str
    ttl: float = 60.0


NonEmptyStr = Annotated[str, msgspec.Meta(min_length=1)]


class AdvertiseRequest(msgspec.Struct, kw_only=True):
    """``POST /agents/{id}/services``: advertise a service of an active paglet."""

    name: NonEmptyStr
    capabilities: list[str] | None = None
    metadata: dict[str, Any] | None = None
    ttl: float | None = None
    #: ``"local"`` or ``"mesh"`` (checked against ``ServiceScope``).
    scope: str | None = None


class UnadvertiseRequest(msgspec.Struct, kw_only=True):
    """``POST /agents/{id}/unadvertise-service``."""

    name: NonEmptyStr


class EmptyRequest(msgspec.Struct):
    """Routes that take no arguments (``{}`` or an empty body; keys are ignored)."""


class ForgetRequest(msgspec.Struct):
    """``POST /transfers/{id}/forget``: ``settle`` waits for the arrived paglet's ``run()`` (bounded)."""

    settle: bool = False


_DECODERS: dict[type[Any], msgspec.json.Decoder[Any]] = {}


def _decoder(cls: type[S]) -> msgspec.json.Decoder[S]:
    decoder = _DECODERS.get(cls)
    if decoder is None:
        decoder = _DECODERS[cls] = msgspec.json.Decoder(cls)
    return decoder


def decode_request(raw: bytes | bytearray | memoryview, cls: type[S], *, max_bytes: int = MAX_JSON_BODY) -> S:
    """The ``cls`` Struct of a JSON body (see the module docstring for the errors)."""
    if len(raw) > max_bytes:
        raise LimitExceededError(f"JSON body of {len(raw)} bytes is above its limit ({max_bytes})")
    data = bytes(raw)
    if not data.strip():
        data = b"{}"
    try:
        obj = _decoder(cls).decode(data)
    except msgspec.ValidationError as exc:
        raise RequestError(describe_validation_error(exc)) from None
    except (msgspec.DecodeError, ValueError, RecursionError) as exc:  # ValueError: bad UTF-8
        raise FrameError(f"invalid JSON: {exc}") from exc
    if _TAG_KEY_BYTES in data or b"\\u" in data:
        _untag_fields(obj, "")
    return obj


def _untag_fields(obj: msgspec.Struct, prefix: str) -> None:
    """Restore binary tags in the fields typed ``Any`` (and inside containers) of ``obj``, in place."""
    for info in msgspec.structs.fields(obj):
        value = getattr(obj, info.name)
        if isinstance(value, msgspec.Struct):
            _untag_fields(value, f"{prefix}{info.name}.")
            continue
        if not isinstance(value, dict | list):
            continue
        restored = untag_binary(value)
        if restored is value:
            continue
        if isinstance(restored, bytes | bytearray) and info.type is not Any:
            raise RequestError(f"invalid request: field {prefix + info.name!r}: expected object, got binary")
        setattr(obj, info.name, restored)


_AT: Final = re.compile(r"^(?P<what>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.S)
_MISSING: Final = re.compile(r"^Object missing required field `(?P<name>[^`]*)`$")
_UNKNOWN: Final = re.compile(r"^Object contains unknown field `(?P<name>[^`]*)`$")


def describe_validation_error(exc: msgspec.ValidationError) -> str:
    """``Expected `bool`, got `str` - at `$.oneway``` → ``invalid request: field 'oneway': expected
    bool, got str``; the field path uses dots for keys and ``[i]`` for list items."""
    match = _AT.match(str(exc))
    what = match.group("what") if match else str(exc)
    path = (match.group("path") if match else None) or ""
    path = path.removeprefix(".")
    missing = _MISSING.match(what)
    if missing is not None:
        field = f"{path}.{missing['name']}" if path else missing["name"]
        return f"invalid request: field {field!r} is required"
    unknown = _UNKNOWN.match(what)
    if unknown is not None:
        field = f"{path}.{unknown['name']}" if path else unknown["name"]
        return f"invalid request: unknown field {field!r}"
    text = what.replace("`", "")
    text = text[:1].lower() + text[1:]
    if not path:
        return f"invalid request body: {text}"
    return f"invalid request: field {path!r}: {text}"
