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

from paglets._errors import FrameError, LimitExceededError, RequestError, SerializationError
from paglets.wire.ipc import Int64
from paglets.wire.jsonbin import BINARY_TAG, untag_binary
from paglets.wire.limits import MAX_JSON_BODY, MAX_SEND_TIMEOUT

__all__ = [
    "MAX_FORGET_BATCH",
    "AdvertiseRequest",
    "CreateRequest",
    "EmptyRequest",
    "ForgetBatchRequest",
    "ForgetRequest",
    "GitUpdateRequest",
    "Int64",
    "LeaseRequest",
    "MessageBody",
    "MessageRequest",
    "MoveRequest",
    "UnadvertiseRequest",
    "check_message_dict",
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
    """A ``Message.to_wire()`` dict, every field typed as the IPC ``MessageWire`` needs it.

    Every way a message enters a host is checked against this Struct (the HTTP route by its typed
    decode, the others by :func:`check_message_dict`) or, encoded, against ``MessageWire``
    (``paglets.wire.ipc.check_message``), so a paglet process never receives a message it cannot decode.
    """

    kind: str
    #: Argument names are strings (as over JSON); the values are free-form wire values.
    args: dict[str, Any] | None = None
    arg: Any = None
    sender: str | None = None
    reply_to: str | None = None
    priority: Int64 | None = None
    message_type: Int64 | None = None
    timestamp: float | None = None
    message_id: str | None = None


class MessageRequest(msgspec.Struct, kw_only=True):
    """``POST /agents/{id}/messages``."""

    message: MessageBody
    oneway: bool = False
    activate_if_inactive: bool = True
    no_delay: bool = False
    #: Seconds a synchronous send waits for the handler's reply (``None``: the host's ``send_timeout``).
    timeout: Annotated[float, msgspec.Meta(gt=0, le=MAX_SEND_TIMEOUT)] | None = None


class MoveRequest(msgspec.Struct, kw_only=True):
    """``POST /agents/{id}/{dispatch|clone|retract|deactivate|activate}``."""

    #: A host URL or mesh host name (dispatch, clone, retract).
    target: str | None = None
    #: A ``TransferTicket`` wire dict (dispatch, clone); checked by ``TransferTicket.from_wire``.
    ticket: dict[str, Any] | None = None
    #: A ``DeactivationRequest`` wire dict (deactivate); checked by ``DeactivationRequest.from_wire``.
    request: dict[str, Any] | None = None


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


GitHash = Annotated[str, msgspec.Meta(pattern=r"^([0-9a-fA-F]{4,64})?\Z")]


class GitUpdateRequest(msgspec.Struct, kw_only=True):
    """``POST /admin/git-update``: move this host's checkout to ``target_hash`` (empty: the upstream
    branch's newest commit) and restart on it; with ``broadcast`` the host then asks every other host of
    its mesh to move to the same commit and answers with their statuses too."""

    target_hash: GitHash = ""
    source_name: Annotated[str, msgspec.Meta(max_length=512)] = ""
    source_url: Annotated[str, msgspec.Meta(max_length=2048)] = ""
    broadcast: bool = False


class EmptyRequest(msgspec.Struct):
    """Routes that take no arguments (``{}`` or an empty body; keys are ignored)."""


class ForgetRequest(msgspec.Struct):
    """``POST /transfers/{id}/forget``: ``settle`` waits for the arrived paglet's ``run()`` (bounded)."""

    settle: bool = False


#: Transfer ids one ``POST /transfers/forget`` may name.
MAX_FORGET_BATCH: Final = 1000


class ForgetBatchRequest(msgspec.Struct):
    """``POST /transfers/forget``: several finished transfers at once (a source's batched ``forget``)."""

    transfer_ids: Annotated[
        list[Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{32}\Z")]],
        msgspec.Meta(max_length=MAX_FORGET_BATCH),
    ] = msgspec.field(default_factory=list)


def check_message_dict(wire: Any) -> MessageBody:
    """A message wire dict that did not come through the HTTP route (a paglet's host call, a stored or
    forwarded message, a ``Message`` built in the host's process) checked like one: a wrong field is a
    ``SerializationError`` naming it (``invalid message: field 'args': expected object | null, got
    list``)."""
    try:
        body = msgspec.convert(wire, MessageBody)
    except msgspec.ValidationError as exc:
        raise SerializationError(describe_validation_error(exc, subject="message")) from None
    return body


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


_AT: Final = re.compile(r"^(?P<what>.*?)(?: - at (?P<key>`key` in )?`\$(?P<path>[^`]*)`)?$", re.S)
_MISSING: Final = re.compile(r"^Object missing required field `(?P<name>[^`]*)`$")
_UNKNOWN: Final = re.compile(r"^Object contains unknown field `(?P<name>[^`]*)`$")


def describe_validation_error(exc: msgspec.ValidationError, *, subject: str = "request") -> str:
    """``Expected `bool`, got `str` - at `$.oneway``` → ``invalid request: field 'oneway': expected
    bool, got str``; the field path uses dots for keys and ``[i]`` for list items. ``subject`` names
    what was checked (``request``, ``message``)."""
    match = _AT.match(str(exc))
    what = match.group("what") if match else str(exc)
    path = (match.group("path") if match else None) or ""
    path = path.removeprefix(".")
    missing = _MISSING.match(what)
    if missing is not None:
        field = f"{path}.{missing['name']}" if path else missing["name"]
        return f"invalid {subject}: field {field!r} is required"
    unknown = _UNKNOWN.match(what)
    if unknown is not None:
        field = f"{path}.{unknown['name']}" if path else unknown["name"]
        return f"invalid {subject}: unknown field {field!r}"
    text = what.replace("`", "")
    text = text[:1].lower() + text[1:]
    if match and match.group("key"):
        text = f"a key: {text}"  # a dict key of the wrong type (argument names are strings)
    if not path:
        return f"invalid {subject} body: {text}" if subject == "request" else f"invalid {subject}: {text}"
    return f"invalid {subject}: field {path!r}: {text}"
