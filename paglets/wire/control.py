"""The control plane's operations: one frozen Struct per operation, one tagged union, one decoder.

Every operation a host offers (``proto/PROTOCOL.md`` §1.4) is a request Struct declared here with the
type of its answer: ``class AgentInfo(AgentRequest[AgentSummary], tag=1)`` answers an ``AgentSummary``.
The host serves them all from one table ``{request type: handler}`` (``paglets.runtime._control``), for
three kinds of callers:

- a paglet process sends a request in a ``HostCall`` frame (``paglets.wire.ipc``) and decodes the
  ``HostReply`` with :func:`reply_decoder` of its type;
- an HTTP route of the same operation decodes its JSON body (``paglets.wire.requests``), builds the
  request and answers the reply as JSON (the reply Structs below are the JSON bodies of those routes);
- a proxy to a paglet of the same process or host (``PagletProxy`` with a route) passes the request on.

Because a request declares its reply type (``Request[R]``), mypy checks that a paglet process that sends
``GetProxy`` reads a ``ProxyRef | None``, and that the host's handler of ``GetProxy`` returns one.

The reply Structs live in ``paglets.wire.replies`` (re-exported here). Encoding: requests are
``array_like`` Structs, ``[tag, field, ...]``; their tags are fixed forever and
never reused (PROTOCOL.md §5). Tags 1-31 are operations on one paglet or on the host that any caller may
ask (HTTP routes, proxies, paglets); 32-127 are host calls only a paglet process makes (they act on the
calling paglet or offer it its host). Replies are map-encoded Structs (their JSON form is the HTTP body).
User values (message arguments, ``init``, properties, service metadata) are MessagePack values with the
rules of ``paglets.wire.values`` (binary stays binary, ``bytearray`` is extension type 1).

A request that does not decode raises :class:`~paglets.core.errors.FrameError` naming the field
(``invalid host call: field 'CreateAgent.agent_class': expected str, got int``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Final, Generic, Literal, TypeAlias, TypeVar, get_args, get_origin

import msgspec

from paglets._errors import FrameError, SerializationError
from paglets.wire._paths import describe_array_error
from paglets.wire.limits import MAX_SEND_TIMEOUT
from paglets.wire.replies import (
    ArtifactLocation,
    ArtifactRefWire,
    CheckpointReply,
    DeactivatedReply,
    FileRefWire,
    HealthReply,
    HostRefWire,
    LeaseReply,
    OkReply,
    ProxyRef,
    ProxyReply,
    ReleasedReply,
    ServiceRecordWire,
    StateSegment,
    StorageStatusReply,
    TargetInfo,
)
from paglets.wire.values import encode_value, ext_hook

__all__ = [
    "CONTROL_REQUEST_TYPES",
    "AcquireLease",
    "ActivateAgent",
    "AdvertiseService",
    "AgentInfo",
    "AgentRequest",
    "AgentStateInfo",
    "AgentSummary",
    "ArtifactLocation",
    "ArtifactRefWire",
    "AvailableHosts",
    "CheckpointAgent",
    "CloneAgent",
    "ControlRequest",
    "CreateAgent",
    "CreateRemote",
    "DeactivateAgent",
    "DeactivateSelf",
    "DeactivatedReply",
    "DeleteArtifact",
    "DeliverMessage",
    "DispatchAgent",
    "DisposeAgent",
    "FileRefWire",
    "GetProperty",
    "GetProxies",
    "GetProxy",
    "HealthReply",
    "HostHealth",
    "HostRefWire",
    "HostStatus",
    "IsHostOnline",
    "LeaseReply",
    "ListAgents",
    "LocateArtifact",
    "LookupService",
    "LookupServices",
    "MeshCodeVersion",
    "MoveAction",
    "MoveKind",
    "MovePreflight",
    "MoveSelf",
    "OkReply",
    "ProxyRef",
    "ProxyReply",
    "RegisterFile",
    "RegisteredFilePath",
    "RegisteredFiles",
    "ReleaseLease",
    "ReleasedReply",
    "Request",
    "ResolveHostUrl",
    "RetractAgent",
    "ServiceRecordWire",
    "SetProperty",
    "StateSegment",
    "StorageClear",
    "StorageDelete",
    "StorageRead",
    "StorageStatusReply",
    "StorageStatusRequest",
    "StorageWrite",
    "TargetInfo",
    "UnadvertiseService",
    "UnregisterFile",
    "UploadArtifact",
    "WaitForHost",
    "decode_control",
    "encode_control",
    "encode_reply",
    "reply_decoder",
    "reply_type",
    "request_tag",
]

R = TypeVar("R")

#: A JSON object whose keys the caller reads as documented (a ``TransferTicket``, a summary): the
#: public classes of the layers above check such dicts with their ``from_wire``.
WireDict: TypeAlias = dict[str, Any]
#: What ``GET /agents/{id}`` answers: paglets 2.0's keys, which differ for active and inactive paglets
#: (``proto/PROTOCOL.md`` §6), so it stays a JSON object.
AgentSummary: TypeAlias = dict[str, Any]

#: What a paglet may do to itself (``MovePreflight``, ``MoveSelf``).
MoveKind = Literal["dispatch", "clone"]
#: What a host may do to one of its paglets.
MoveAction = Literal["dispatch", "clone", "retract"]
SendDeadline = Annotated[float, msgspec.Meta(gt=0, le=MAX_SEND_TIMEOUT)]


class Request(msgspec.Struct, Generic[R], frozen=True, array_like=True):
    """A control operation answered by an ``R``; subclasses set their tag."""


class AgentRequest(Request[R], frozen=True):
    """An operation on one paglet, named by ``agent_id`` (the ``{agent_id}`` of its HTTP path)."""

    agent_id: str


# --- operations any caller may ask (tags 1..31) ------------------------------------------------------------


class AgentInfo(AgentRequest[AgentSummary], frozen=True, tag=1):
    """``GET /agents/{id}``."""


class AgentStateInfo(AgentRequest[AgentSummary], frozen=True, tag=2):
    """``GET /agents/{id}/state``: the summary with the state (``state`` or ``state_error``)."""


class DisposeAgent(AgentRequest[OkReply], frozen=True, tag=3):
    """``POST /agents/{id}/dispose`` (active or inactive; artifacts it owns are deleted)."""


class DeactivateAgent(AgentRequest[DeactivatedReply], frozen=True, tag=4):
    """``POST /agents/{id}/deactivate``; ``request`` is a ``DeactivationRequest`` wire dict."""

    request: WireDict | None = None


class ActivateAgent(AgentRequest[ProxyReply], frozen=True, tag=5):
    """``POST /agents/{id}/activate``."""


class DispatchAgent(AgentRequest[ProxyReply], frozen=True, tag=6):
    """``POST /agents/{id}/dispatch``: to ``target`` (URL or mesh name) or with a ``TransferTicket`` wire
    dict (the ticket wins)."""

    target: str | None = None
    ticket: WireDict | None = None


class CloneAgent(AgentRequest[ProxyReply], frozen=True, tag=7):
    """``POST /agents/{id}/clone`` (no target: a clone on this host)."""

    target: str | None = None
    ticket: WireDict | None = None


class RetractAgent(AgentRequest[ProxyReply], frozen=True, tag=8):
    """``POST /agents/{id}/retract``: move the paglet from this host to ``target``."""

    target: str | None = None


class DeliverMessage(AgentRequest[Any], frozen=True, tag=9):
    """``POST /agents/{id}/messages``; answers the handler's reply (``None`` when oneway).

    ``message`` is one encoded ``MessageWire`` (PROTOCOL.md §1.2), kept encoded on its way to the paglet;
    the host checks it where it enters (``paglets.wire.ipc.check_message_bytes``). ``deadline``: seconds
    a synchronous send waits for the reply (``None``: the host's ``send_timeout``).
    """

    message: msgspec.Raw
    oneway: bool = False
    activate_if_inactive: bool = True
    no_delay: bool = False
    deadline: SendDeadline | None = None


class CreateAgent(Request[ProxyRef], frozen=True, tag=10):
    """``POST /agents`` (JSON form): ``state`` is the encoded state (``None``: the class's default)."""

    agent_class: str
    state_class: str
    state: bytes | None = None
    init: Any = None
    agent_id: str | None = None


class CreateRemote(Request[ProxyRef], frozen=True, tag=11):
    """A creation on ``target`` (URL or mesh name; this host itself creates locally)."""

    target: str
    creation: CreateAgent


class ListAgents(Request[list[AgentSummary]], frozen=True, tag=12):
    """``GET /agents``."""

    active: bool = True
    inactive: bool = False
    include_state: bool = False


class HostHealth(Request[HealthReply], frozen=True, tag=13):
    """``GET /health``."""


class AcquireLease(Request[LeaseReply], frozen=True, tag=14):
    """``POST /services/leases``."""

    agent_id: str
    service_name: str
    ttl: float = 60.0


class ReleaseLease(Request[ReleasedReply], frozen=True, tag=15):
    """``POST /services/leases/{lease_id}/release``."""

    lease_id: str


# --- host calls of a paglet process (tags 32..127) ---------------------------------------------------------


class GetProxy(Request[ProxyRef | None], frozen=True, tag=32):
    agent_id: str
    include_inactive: bool = False


class GetProxies(Request[list[ProxyRef]], frozen=True, tag=33):
    #: Bit mask: 1 active, 2 inactive.
    state: int = 1


class GetProperty(Request[Any], frozen=True, tag=34):
    key: str
    default: Any = None


class SetProperty(Request[None], frozen=True, tag=35):
    """Set a host property (``None`` deletes it)."""

    key: str
    value: Any = None


class AvailableHosts(Request[list[HostRefWire]], frozen=True, tag=36):
    online_only: bool = True
    include_self: bool = True


class MeshCodeVersion(Request[str], frozen=True, tag=37):
    pass


class HostStatus(Request[HostRefWire | None], frozen=True, tag=38):
    name_or_url: str


class IsHostOnline(Request[bool], frozen=True, tag=39):
    name_or_url: str


class WaitForHost(Request[HostRefWire], frozen=True, tag=40):
    name_or_url: str
    timeout: float = 10.0


class ResolveHostUrl(Request[str], frozen=True, tag=41):
    name_or_url: str


class MovePreflight(Request[TargetInfo], frozen=True, tag=42):
    """A paglet's own dispatch or clone, step 1: check the target (its leaving hook runs next)."""

    kind: MoveKind
    ticket: WireDict


class MoveSelf(Request[ProxyRef], frozen=True, tag=43):
    """A paglet's own dispatch or clone, step 2: it ran its leaving hook and cleanup; move it."""

    kind: MoveKind
    ticket: WireDict
    clone_id: str | None = None
    state_segment: StateSegment | None = None


class DeactivateSelf(Request[ProxyRef], frozen=True, tag=44):
    """A paglet's own deactivation: it ran ``deactivation_policy``, ``on_deactivating`` and its cleanup."""

    request: WireDict
    policy: WireDict
    state_segment: StateSegment | None = None


class StorageRead(Request[bytes], frozen=True, tag=45):
    path: str
    quota_bytes: int | None = None


class StorageWrite(Request[str], frozen=True, tag=46):
    path: str
    data: bytes
    quota_bytes: int | None = None


class StorageDelete(Request[None], frozen=True, tag=47):
    path: str
    quota_bytes: int | None = None


class StorageClear(Request[None], frozen=True, tag=48):
    quota_bytes: int | None = None


class StorageStatusRequest(Request[StorageStatusReply], frozen=True, tag=49):
    quota_bytes: int | None = None


class RegisterFile(Request[FileRefWire], frozen=True, tag=50):
    path: str
    name: str | None = None
    mode: str = "copy"


class RegisteredFiles(Request[list[FileRefWire]], frozen=True, tag=51):
    pass


class UnregisterFile(Request[None], frozen=True, tag=52):
    name: str


class RegisteredFilePath(Request[str], frozen=True, tag=53):
    name: str


class UploadArtifact(Request[ArtifactRefWire], frozen=True, tag=54):
    """Store the file at ``path`` (absolute; the host reads it) in the host's artifact store."""

    path: str
    #: ``None``: the calling paglet.
    owner_agent_id: str | None = None
    name: str | None = None
    compression: str = ""
    expires_at: float = 0.0


class LocateArtifact(Request[ArtifactLocation], frozen=True, tag=55):
    artifact_id: str


class DeleteArtifact(Request[None], frozen=True, tag=56):
    artifact_id: str


class AdvertiseService(Request[ServiceRecordWire], frozen=True, tag=57):
    name: str
    #: ``None``: the calling paglet.
    agent_id: str | None = None
    capabilities: list[str] = []
    metadata: dict[str, Any] = {}
    scope: str = "local"
    ttl: float | None = None


class UnadvertiseService(Request[list[ServiceRecordWire]], frozen=True, tag=58):
    name: str
    #: ``None``: every paglet's records of that name.
    agent_id: str | None = None


class LookupServices(Request[list[ServiceRecordWire]], frozen=True, tag=59):
    name: str | None = None
    capability: str | None = None
    scope: str = "local"


class LookupService(Request[ServiceRecordWire | None], frozen=True, tag=60):
    name: str | None = None
    capability: str | None = None
    scope: str = "local"


class CheckpointAgent(AgentRequest[CheckpointReply], frozen=True, tag=16):
    """``POST /agents/{id}/checkpoint``: save an active paglet's state and waiting messages durably
    while it keeps running (``paglets.runtime._checkpoints``)."""


ControlRequest: TypeAlias = (
    AgentInfo
    | AgentStateInfo
    | DisposeAgent
    | DeactivateAgent
    | ActivateAgent
    | DispatchAgent
    | CloneAgent
    | RetractAgent
    | DeliverMessage
    | CreateAgent
    | CreateRemote
    | ListAgents
    | HostHealth
    | AcquireLease
    | ReleaseLease
    | GetProxy
    | GetProxies
    | GetProperty
    | SetProperty
    | AvailableHosts
    | MeshCodeVersion
    | HostStatus
    | IsHostOnline
    | WaitForHost
    | ResolveHostUrl
    | MovePreflight
    | MoveSelf
    | DeactivateSelf
    | StorageRead
    | StorageWrite
    | StorageDelete
    | StorageClear
    | StorageStatusRequest
    | RegisterFile
    | RegisteredFiles
    | UnregisterFile
    | RegisteredFilePath
    | UploadArtifact
    | LocateArtifact
    | DeleteArtifact
    | AdvertiseService
    | UnadvertiseService
    | LookupServices
    | LookupService
    | CheckpointAgent
)


def request_tag(cls: type[Request[Any]]) -> int:
    """The type tag of a request class."""
    tag = cls.__struct_config__.tag
    assert isinstance(tag, int)
    return tag


#: Every request type, in tag order.
CONTROL_REQUEST_TYPES: Final[tuple[type[Request[Any]], ...]] = tuple(
    sorted(get_args(ControlRequest), key=request_tag)
)


def reply_type(cls: type[Request[Any]]) -> Any:
    """The reply type a request class declares (the ``R`` of its ``Request[R]`` base)."""
    for klass in cls.__mro__:
        for base in getattr(klass, "__orig_bases__", ()):
            origin = get_origin(base)
            if isinstance(origin, type) and issubclass(origin, Request):
                return get_args(base)[0]
    raise TypeError(f"{cls.__qualname__} declares no reply type")


# --- encoding and decoding -------------------------------------------------------------------------------


_decoder: Final = msgspec.msgpack.Decoder(ControlRequest, ext_hook=ext_hook)
_REPLY_DECODERS: Final[dict[type[Any], msgspec.msgpack.Decoder[Any]]] = {
    cls: msgspec.msgpack.Decoder(reply_type(cls), ext_hook=ext_hook) for cls in CONTROL_REQUEST_TYPES
}
_TYPES_BY_TAG: Final = {request_tag(cls): cls for cls in CONTROL_REQUEST_TYPES}


def encode_control(request: Request[Any]) -> bytes:
    """The MessagePack of a request. User values in its fields must have been prepared
    (``paglets.wire.values.prepare_value``, so that a ``bytearray`` stays one); a value MessagePack
    cannot hold is a ``SerializationError``."""
    return encode_value(request)


def decode_control(data: bytes | bytearray | memoryview) -> ControlRequest:
    """One request; ``FrameError`` naming the field for anything else. ``msgspec.Raw`` fields of the
    result keep a reference to ``data``."""
    try:
        request: ControlRequest = _decoder.decode(data)
    except msgspec.ValidationError as exc:
        raise FrameError(f"invalid host call: {_name_fields(str(exc), data)}") from None
    except (msgspec.DecodeError, ValueError, RecursionError, SerializationError) as exc:
        raise FrameError(f"invalid host call: {exc}") from None
    return request


def encode_reply(value: object) -> bytes:
    """The MessagePack of a reply (a reply Struct, or a user value with the rules of ``wire.values``)."""
    return encode_value(value)


def reply_decoder(cls: type[Request[Any]]) -> Callable[[bytes | bytearray | memoryview], Any]:
    """How a caller decodes the reply to a ``cls`` request (``SerializationError`` if it does not fit)."""
    decoder = _REPLY_DECODERS[cls]

    def decode(data: bytes | bytearray | memoryview) -> Any:
        try:
            return decoder.decode(data)
        except (msgspec.DecodeError, ValueError, RecursionError) as exc:
            raise SerializationError(f"invalid answer to {cls.__name__}: {exc}") from None

    return decode


class _Head(msgspec.Struct, array_like=True):
    tag: Any = None


def _name_fields(text: str, data: bytes | bytearray | memoryview) -> str:
    """A validation error with the request's field names (``field 'CreateAgent.agent_class': ...``)."""
    try:
        tag = msgspec.msgpack.decode(data, type=_Head).tag
    except (msgspec.DecodeError, ValueError, RecursionError):
        tag = None
    cls = _TYPES_BY_TAG.get(tag) if type(tag) is int else None
    if cls is None:
        return f"unknown request tag {tag!r}" if type(tag) is int else describe_array_error(text, None)
    return describe_array_error(text, cls, prefix=cls.__name__)
