"""Typed service contracts, service records and handles (docs/implementing/services.md).

A *service* is a name a paglet advertises on its host, with a tuple of capabilities and free metadata
(:class:`ServiceRecord`). A *contract* (:class:`ServiceContract`) gives a service a typed interface: a
version and a set of :class:`ServiceOperation` s, each with a request and a reply dataclass. Calls are
plain paglet messages, so a contract adds no runtime machinery:

- **Call message.** ``kind`` is the operation name, ``args`` the wire dict of the request dataclass
  (``paglets.serialization.codec.dataclass_to_wire``). A ``None`` request means "the request type's
  default instance" (the type must then be constructible without arguments).
- **Reply.** The handler's return value is encoded as the wire dict of the reply dataclass
  (:meth:`ServiceContract.route` does that on the serving side); the caller decodes it back into the reply
  type. A reply of ``None`` for an ``EmptyPayload`` reply decodes to ``EmptyPayload()``.
- **Types by name.** Request and reply types must be module-level dataclasses whose
  :func:`~paglets.serialization.codec.qualified_name` resolves back to the very same class (checked when
  the operation is created): the contract metadata names them, and another process must find them.
- **Contract metadata** (:meth:`ServiceContract.metadata`)::

      {"name": ..., "version": ..., "operations": [{"name", "request_type", "reply_type"}, ...]}

  with types as qualified names. :meth:`ServiceContract.advertise_metadata` stores it in the record's
  metadata under the reserved key ``"paglets.service_contract"`` (``CONTRACT_METADATA_KEY``).
- **Matching.** A record matches a contract when its name, its capability tuple (operation names, in
  order) and its contract metadata are all identical to the contract's. A changed version or schema
  therefore makes old records invisible to new clients instead of failing at call time.
- **Handles.** :class:`ServiceHandle` calls operations of one matching record through a ``PagletProxy``
  resolved from the record: through a ``PagletContext`` (``context.get_proxy(agent_id, host_url)``: a
  same-host paglet is reached without HTTP), or through a ``HostClient`` / the default client (plain HTTP
  proxy); a ``Host`` given instead of a context answers with its ``remote_proxy``. The proxy is resolved
  once per handle.

Errors: a malformed contract, an operation outside the contract, a payload of the wrong type or a
payload that does not decode raise ``ServiceContractError``; a record whose paglet is not on its host any
more raises ``ServiceNotFoundError``; encoding a request or reply whose fields the codec cannot carry
raises ``SerializationError`` naming the field; a malformed record wire dict raises
``SerializationError``.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Generic, Protocol, TypeVar, cast, overload

import msgspec

from paglets.core.errors import SerializationError, ServiceContractError, ServiceNotFoundError
from paglets.core.messages import Message
from paglets.core.runtime_values import ServiceScope, enum_from_wire, require_enum
from paglets.remote.references import PagletProxyRef
from paglets.serialization.codec import (
    dataclass_from_wire,
    dataclass_to_wire,
    qualified_name,
    resolve_qualified_name,
)

if TYPE_CHECKING:
    from paglets.services._contract_registry import ServiceRegistry

__all__ = [
    "CONTRACT_METADATA_KEY",
    "MAX_CONTRACT_OPERATIONS",
    "MAX_OPERATION_NAME",
    "EmptyPayload",
    "ProxySource",
    "ServiceContract",
    "ServiceHandle",
    "ServiceOperation",
    "ServiceRecord",
    "ServiceRegistry",
]

#: The record metadata key that holds a contract's metadata (reserved: callers cannot set it).
CONTRACT_METADATA_KEY: Final = "paglets.service_contract"

#: Longest operation name. Operation names are message kinds and record capabilities; real ones are
#: short identifiers.
MAX_OPERATION_NAME: Final = 256

#: Most operations one contract may declare. Each becomes a capability of every record advertising the
#: contract, and records are bounded in their number of capabilities.
MAX_CONTRACT_OPERATIONS: Final = 256

ReqT = TypeVar("ReqT")
RepT = TypeVar("RepT")
_T = TypeVar("_T")


class _NoDefault:
    """Marker type of :meth:`ServiceContract.route`'s ``default`` when none is given."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<no default>"


_NO_DEFAULT: Final = _NoDefault()


@dataclass(frozen=True, slots=True)
class EmptyPayload:
    """The request or reply of an operation that carries no data."""


# --- operations -----------------------------------------------------------------------------------------


def _checked_type(payload_type: object, role: str, operation: str) -> str:
    """The qualified name of a request/reply type, after checking it resolves back to itself."""
    if not isinstance(payload_type, type) or not dataclasses.is_dataclass(payload_type):
        raise ServiceContractError(f"operation {operation!r}: {role} must be a dataclass class")
    try:
        name = qualified_name(payload_type)
        resolved = resolve_qualified_name(name)
    except SerializationError as exc:
        raise ServiceContractError(f"operation {operation!r}: {role} is not importable: {exc}") from exc
    if resolved is not payload_type:
        raise ServiceContractError(
            f"operation {operation!r}: {role} {name} resolves to another class (redefined or shadowed?)"
        )
    return name


def _default_instance(payload_type: type[_T], what: str) -> _T:
    try:
        return payload_type()
    except TypeError as exc:
        raise ServiceContractError(
            f"{what}: {payload_type.__qualname__} has required fields, pass an instance"
        ) from exc


def _encode(payload_type: type[Any], value: object, what: str) -> dict[str, Any]:
    if value is None:
        value = _default_instance(payload_type, what)
    if not isinstance(value, payload_type):
        raise ServiceContractError(
            f"{what} must be a {payload_type.__qualname__}, got {type(value).__qualname__}"
        )
    return dataclass_to_wire(value)


def _decode(payload_type: type[_T], payload: object, what: str) -> _T:
    if not isinstance(payload, dict):
        raise ServiceContractError(f"{what} must be a wire dict, got {type(payload).__qualname__}")
    try:
        return dataclass_from_wire(payload_type, payload)
    except SerializationError as exc:
        raise ServiceContractError(f"{what} does not decode: {exc}") from exc


class ServiceOperation(Generic[ReqT, RepT]):
    """One typed operation of a contract: a name plus request and reply dataclasses.

    Immutable and hashable (equal when name and both types are equal), so operations can key the
    handler mapping given to :meth:`ServiceContract.route`.
    """

    __slots__ = ("_name", "_reply_schema", "_reply_type", "_request_schema", "_request_type")

    _name: str
    _request_type: type[ReqT]
    _reply_type: type[RepT]
    _request_schema: str
    _reply_schema: str

    @overload
    def __init__(self: ServiceOperation[EmptyPayload, EmptyPayload], name: str) -> None: ...
    @overload
    def __init__(self: ServiceOperation[ReqT, EmptyPayload], name: str, request_type: type[ReqT]) -> None: ...
    @overload
    def __init__(
        self: ServiceOperation[EmptyPayload, RepT], name: str, *, reply_type: type[RepT]
    ) -> None: ...
    @overload
    def __init__(self, name: str, request_type: type[ReqT], reply_type: type[RepT]) -> None: ...
    def __init__(
        self, name: str, request_type: type[Any] = EmptyPayload, reply_type: type[Any] = EmptyPayload
    ) -> None:
        if not isinstance(name, str) or not name.strip():
            raise ServiceContractError("a service operation needs a non-empty name")
        name = name.strip()
        if len(name) > MAX_OPERATION_NAME:
            raise ServiceContractError(f"operation name longer than {MAX_OPERATION_NAME} characters")
        set_ = object.__setattr__
        set_(self, "_name", name)
        set_(self, "_request_schema", _checked_type(request_type, "request_type", name))
        set_(self, "_reply_schema", _checked_type(reply_type, "reply_type", name))
        set_(self, "_request_type", request_type)
        set_(self, "_reply_type", reply_type)

    @property
    def name(self) -> str:
        return self._name

    @property
    def request_type(self) -> type[ReqT]:
        return self._request_type

    @property
    def reply_type(self) -> type[RepT]:
        return self._reply_type

    @property
    def request_schema(self) -> str:
        """The request type's qualified name (``"module:Qual.Name"``)."""
        return self._request_schema

    @property
    def reply_schema(self) -> str:
        """The reply type's qualified name."""
        return self._reply_schema

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"ServiceOperation is immutable (cannot set {name!r})")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"ServiceOperation is immutable (cannot delete {name!r})")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ServiceOperation):
            return NotImplemented
        return (self._name, self._request_type, self._reply_type) == (
            other._name,
            other._request_type,
            other._reply_type,
        )

    def __hash__(self) -> int:
        return hash((self._name, self._request_type, self._reply_type))

    def __repr__(self) -> str:
        return (
            f"ServiceOperation({self._name!r}, request_type={self._request_schema}, "
            f"reply_type={self._reply_schema})"
        )

    def __reduce__(self) -> Any:  # copy/deepcopy support for a slotted immutable class
        return (ServiceOperation, (self._name, self._request_type, self._reply_type))

    # --- encoding -------------------------------------------------------------------------------------

    def to_message(self, request: ReqT | None = None) -> Message:
        """The message that calls this operation: ``Message(name, args=<wire dict of request>)``."""
        return Message(self._name, self.encode_request(request))

    def encode_request(self, request: ReqT | None = None) -> dict[str, Any]:
        return _encode(self._request_type, request, f"{self._name} request")

    def decode_request(self, message: Message | Mapping[str, Any]) -> ReqT:
        """The request carried by a call message (or by its ``args`` dict)."""
        payload = message.args if isinstance(message, Message) else message
        if isinstance(payload, Mapping) and not isinstance(payload, dict):
            payload = dict(payload)
        return _decode(self._request_type, payload, f"{self._name} request")

    def encode_reply(self, reply: RepT | None = None) -> dict[str, Any]:
        return _encode(self._reply_type, reply, f"{self._name} reply")

    def decode_reply(self, payload: object) -> RepT:
        """The reply type rebuilt from a handler's (wire) reply.

        An instance of the reply type is returned as is; ``None`` stands for an ``EmptyPayload`` reply.
        """
        if isinstance(payload, self._reply_type):
            return payload
        if payload is None and self._reply_type is EmptyPayload:
            return cast(RepT, EmptyPayload())
        return _decode(self._reply_type, payload, f"{self._name} reply")


# --- contracts ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ServiceContract:
    """A named, versioned set of operations (see the module docstring for the matching rule)."""

    name: str
    operations: tuple[ServiceOperation[Any, Any], ...]
    version: str = "1"
    _by_name: dict[str, ServiceOperation[Any, Any]] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )
    _metadata: dict[str, Any] = field(init=False, repr=False, compare=False, default_factory=dict)

    def __post_init__(self) -> None:
        name = self.name.strip() if isinstance(self.name, str) else ""
        version = self.version.strip() if isinstance(self.version, str) else ""
        if not name:
            raise ServiceContractError("a service contract needs a non-empty name")
        if not version:
            raise ServiceContractError(f"service contract {name!r} needs a non-empty version")
        given: object = self.operations
        if isinstance(given, (str, bytes)) or not isinstance(given, Iterable):
            raise ServiceContractError(f"service contract {name!r}: operations must be a sequence")
        operations = tuple(given)
        if not operations:
            raise ServiceContractError(f"service contract {name!r} must define at least one operation")
        if len(operations) > MAX_CONTRACT_OPERATIONS:
            raise ServiceContractError(
                f"service contract {name!r} has more than {MAX_CONTRACT_OPERATIONS} operations"
            )
        by_name: dict[str, ServiceOperation[Any, Any]] = {}
        for operation in operations:
            if not isinstance(operation, ServiceOperation):
                raise ServiceContractError(
                    f"service contract {name!r}: {operation!r} is not a ServiceOperation"
                )
            if operation.name in by_name:
                raise ServiceContractError(
                    f"service contract {name!r}: duplicate operation {operation.name!r}"
                )
            by_name[operation.name] = operation
        set_ = object.__setattr__
        set_(self, "name", name)
        set_(self, "version", version)
        set_(self, "operations", operations)
        set_(self, "_by_name", by_name)
        set_(self, "_metadata", self._build_metadata())

    def _build_metadata(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "operations": [
                {"name": op.name, "request_type": op.request_schema, "reply_type": op.reply_schema}
                for op in self.operations
            ],
        }

    @property
    def capabilities(self) -> tuple[str, ...]:
        """The operation names, in declaration order (what a record of this contract advertises)."""
        return tuple(self._by_name)

    def operation(self, name: str) -> ServiceOperation[Any, Any] | None:
        """The operation called ``name``, or None."""
        return self._by_name.get(name)

    def operation_for(self, name: str) -> ServiceOperation[Any, Any] | None:
        """The operation called ``name``, or None (paglets 2.0's name for :meth:`operation`)."""
        return self._by_name.get(name)

    def require_operation(
        self, operation: ServiceOperation[ReqT, RepT] | str
    ) -> ServiceOperation[ReqT, RepT]:
        """``operation`` (or the operation of that name) if it belongs to this contract.

        An operation object must be *equal* to the contract's (same name and types); otherwise
        ``ServiceContractError``.
        """
        name = operation if isinstance(operation, str) else getattr(operation, "name", None)
        known = self._by_name.get(name) if isinstance(name, str) else None
        if known is None or (not isinstance(operation, str) and known != operation):
            raise ServiceContractError(f"{operation!r} is not an operation of service contract {self.name!r}")
        return cast(ServiceOperation[ReqT, RepT], known)

    def metadata(self) -> dict[str, Any]:
        """``{name, version, operations: [{name, request_type, reply_type}]}`` (a fresh copy)."""
        return self._build_metadata()

    def advertise_metadata(self, metadata: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """``metadata`` plus this contract's metadata under ``CONTRACT_METADATA_KEY`` (reserved)."""
        merged = dict(metadata or {})
        if CONTRACT_METADATA_KEY in merged:
            raise ServiceContractError(f"metadata key {CONTRACT_METADATA_KEY!r} is reserved")
        merged[CONTRACT_METADATA_KEY] = self._build_metadata()
        return merged

    def matches_record(self, record: ServiceRecord) -> bool:
        """Same name, identical capability tuple and identical contract metadata."""
        return (
            record.name == self.name
            and tuple(record.capabilities) == self.capabilities
            and record.metadata.get(CONTRACT_METADATA_KEY) == self._metadata
        )

    def _handle_for(self, record: ServiceRecord, source: Any) -> ServiceHandle:
        """A ``ServiceHandle`` for ``record`` through ``source``: how ``PagletContext.lookup_contracts``
        builds handles without importing this package (it sits below it)."""
        return ServiceHandle(self, record, source)

    def route(
        self,
        message: Message,
        handlers: Mapping[Any, Callable[[Any], Any]],
        *,
        default: Any = _NO_DEFAULT,
    ) -> Any:
        """Serve one call: decode the request, run its handler, return the encoded reply.

        ``handlers`` maps operations (or operation names) to ``handler(request) -> reply``. A message
        whose kind is not an operation of this contract returns ``default`` when one is given (typically
        ``Paglet.not_handled()``) and raises ``ServiceContractError`` otherwise; an operation without a
        handler raises ``ServiceContractError``.
        """
        operation = self._by_name.get(message.kind)
        if operation is None:
            if default is _NO_DEFAULT:
                raise ServiceContractError(
                    f"{message.kind!r} is not an operation of service contract {self.name!r}"
                )
            return default
        handler = handlers.get(operation)
        if handler is None:
            handler = handlers.get(operation.name)
        if handler is None:
            raise ServiceContractError(
                f"service contract {self.name!r}: no handler for operation {operation.name!r}"
            )
        return operation.encode_reply(handler(operation.decode_request(message)))


# --- records --------------------------------------------------------------------------------------------


class _ProxyWire(msgspec.Struct, frozen=True):
    host_url: str
    agent_id: str


class _RecordWire(msgspec.Struct, frozen=True):
    """The wire form of a record, for validation of records that arrive from peers and clients."""

    name: str
    proxy: _ProxyWire
    capabilities: list[str] = []
    metadata: dict[str, Any] | None = None
    scope: str | None = None
    host_name: str | None = None
    host_url: str | None = None
    advertised_at: float | None = None
    expires_at: float | None = None


@dataclass(frozen=True, slots=True)
class ServiceRecord:
    """One advertised service: ``name`` offered by the paglet ``proxy`` names.

    ``advertised_at`` and ``expires_at`` are wall-clock times (``time.time()``) of the advertising host;
    ``expires_at=None`` never expires. ``host_name``/``host_url`` name the advertising host.
    """

    name: str
    proxy: PagletProxyRef
    capabilities: tuple[str, ...] = ()
    metadata: dict[str, Any] = field(default_factory=dict)
    scope: ServiceScope = ServiceScope.LOCAL
    host_name: str = ""
    host_url: str = ""
    advertised_at: float = field(default_factory=time.time)
    expires_at: float | None = None

    def __post_init__(self) -> None:
        require_enum(ServiceScope, self.scope, "scope")
        if not isinstance(self.proxy, PagletProxyRef):
            raise TypeError(f"proxy must be a PagletProxyRef, got {type(self.proxy).__qualname__}")
        capabilities: object = self.capabilities
        if not isinstance(capabilities, tuple):
            if isinstance(capabilities, str) or not isinstance(capabilities, Iterable):
                raise TypeError("capabilities must be a sequence of strings")
            object.__setattr__(self, "capabilities", tuple(capabilities))
        if self.expires_at is not None and math.isnan(self.expires_at):
            raise ValueError("expires_at must be a number or None")

    @property
    def agent_id(self) -> str:
        return self.proxy.agent_id

    @property
    def expired(self) -> bool:
        """True once ``expires_at`` has passed (by this machine's wall clock)."""
        return self.is_expired(time.time())

    def is_expired(self, now: float) -> bool:
        return self.expires_at is not None and self.expires_at <= now

    def matches(
        self, name: str | None = None, capability: str | None = None, scope: ServiceScope | None = None
    ) -> bool:
        """True when the record has ``name``, offers ``capability`` and has ``scope`` (None: any)."""
        return (
            (name is None or self.name == name)
            and (capability is None or capability in self.capabilities)
            and (scope is None or self.scope == scope)
        )

    def to_wire(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "proxy": self.proxy.to_wire(),
            "capabilities": list(self.capabilities),
            "metadata": self.metadata,
            "scope": self.scope.value,
            "host_name": self.host_name,
            "host_url": self.host_url,
            "advertised_at": self.advertised_at,
            "expires_at": self.expires_at,
        }

    @classmethod
    def from_wire(cls, payload: object) -> ServiceRecord:
        """A record from its wire dict; missing optional fields take their defaults.

        Raises ``SerializationError`` for anything that is not a well-formed record.
        """
        try:
            wire = msgspec.convert(payload, _RecordWire)
            scope = enum_from_wire(ServiceScope, wire.scope or ServiceScope.LOCAL.value, "scope")
            return cls(
                name=wire.name,
                proxy=PagletProxyRef(wire.proxy.host_url, wire.proxy.agent_id),
                capabilities=tuple(wire.capabilities),
                metadata=dict(wire.metadata or {}),
                scope=scope,
                host_name=wire.host_name or "",
                host_url=wire.host_url or "",
                advertised_at=time.time() if wire.advertised_at is None else wire.advertised_at,
                expires_at=wire.expires_at,
            )
        except (msgspec.ValidationError, ValueError, TypeError) as exc:
            raise SerializationError(f"malformed service record: {exc}") from exc


# --- handles --------------------------------------------------------------------------------------------


class _MessageTarget(Protocol):
    """What a handle needs from a ``PagletProxy``."""

    def send(
        self,
        message: Message,
        *,
        activate_if_inactive: bool = ...,
        no_delay: bool = ...,
        timeout: float | None = ...,
    ) -> Any: ...

    def send_oneway(
        self,
        message: Message,
        *,
        activate_if_inactive: bool = ...,
        no_delay: bool = ...,
        timeout: float | None = ...,
    ) -> None: ...


class ProxySource(Protocol):
    """Where a handle gets its proxy: a ``PagletContext`` (or anything with its ``get_proxy``)."""

    def get_proxy(self, agent_id: str, host_url: str | None = None) -> Any: ...


@dataclass(frozen=True, slots=True)
class ServiceHandle:
    """A typed client for the service of one record that matches ``contract``.

    ``context_or_client`` is a ``PagletContext`` (or any :class:`ProxySource`), a ``Host`` (its
    ``remote_proxy``: in-process route for its own paglets), a ``HostClient``, or None (the shared
    default client).
    """

    contract: ServiceContract
    record: ServiceRecord
    context_or_client: Any = None
    _proxy: list[_MessageTarget] = field(init=False, repr=False, compare=False, default_factory=list)

    def __post_init__(self) -> None:
        if not isinstance(self.contract, ServiceContract):
            raise ServiceContractError(f"not a ServiceContract: {self.contract!r}")
        if not isinstance(self.record, ServiceRecord):
            raise ServiceContractError(f"not a ServiceRecord: {self.record!r}")
        if not self.contract.matches_record(self.record):
            raise ServiceContractError(
                f"service record {self.record.name!r} of {self.record.proxy.agent_id} does not match "
                f"contract {self.contract.name!r} version {self.contract.version!r}"
            )

    @property
    def agent_id(self) -> str:
        return self.record.proxy.agent_id

    @property
    def host_url(self) -> str:
        """The URL of the host the service's paglet lives on."""
        return self.record.proxy.host_url or self.record.host_url

    def proxy(self) -> Any:
        """The ``PagletProxy`` the handle sends through (resolved on first use, then reused)."""
        if self._proxy:
            return self._proxy[0]
        source = self.context_or_client
        from paglets.remote.client import HostClient
        from paglets.remote.proxy import PagletProxy

        proxy: Any
        if source is None or isinstance(source, HostClient):
            proxy = PagletProxy(self.host_url, self.agent_id, source)
        elif callable(getattr(source, "remote_proxy", None)):  # a Host or a paglet's host facade
            proxy = source.remote_proxy(self.host_url, self.agent_id)
        elif callable(getattr(source, "get_proxy", None)):
            proxy = source.get_proxy(self.agent_id, host_url=self.host_url)
            if proxy is None:
                raise ServiceNotFoundError(
                    f"service {self.record.name!r}: paglet {self.agent_id} is no longer on {self.host_url}"
                )
        else:
            raise ServiceContractError(
                "context_or_client must be a PagletContext, a Host, a HostClient or None, "
                f"not {type(source).__qualname__}"
            )
        self._proxy.append(proxy)
        return proxy

    def _message(
        self, operation: ServiceOperation[Any, Any] | str, request: object
    ) -> tuple[ServiceOperation[Any, Any], Message]:
        known = self.contract.require_operation(operation)
        message = known.to_message(request)
        sender = getattr(self.context_or_client, "address", None)
        if isinstance(sender, str) and sender:
            message.sender = sender
        return known, message

    @overload
    def call(
        self,
        operation: ServiceOperation[ReqT, RepT],
        request: ReqT | None = None,
        *,
        activate_if_inactive: bool = True,
        no_delay: bool = False,
        timeout: float | None = None,
    ) -> RepT: ...
    @overload
    def call(
        self,
        operation: str,
        request: Any = None,
        *,
        activate_if_inactive: bool = True,
        no_delay: bool = False,
        timeout: float | None = None,
    ) -> Any: ...
    def call(
        self,
        operation: ServiceOperation[Any, Any] | str,
        request: Any = None,
        *,
        activate_if_inactive: bool = True,
        no_delay: bool = False,
        timeout: float | None = None,
    ) -> Any:
        """Call ``operation`` synchronously and return its decoded reply.

        ``timeout`` bounds the wait for the reply (None: the proxy's default); errors raised by the
        service's handler arrive as their own classes.
        """
        known, message = self._message(operation, request)
        reply = self.proxy().send(
            message, activate_if_inactive=activate_if_inactive, no_delay=no_delay, timeout=timeout
        )
        return known.decode_reply(reply)

    def send_oneway(
        self,
        operation: ServiceOperation[ReqT, Any] | str,
        request: ReqT | None = None,
        *,
        activate_if_inactive: bool = True,
        no_delay: bool = False,
        timeout: float | None = None,
    ) -> None:
        """Queue a call of ``operation`` without waiting for its reply."""
        _, message = self._message(operation, request)
        self.proxy().send_oneway(
            message, activate_if_inactive=activate_if_inactive, no_delay=no_delay, timeout=timeout
        )


def __getattr__(name: str) -> Any:
    # ``ServiceRegistry`` lives beside the registry it adapts (which imports this module).
    if name == "ServiceRegistry":
        from paglets.services._contract_registry import ServiceRegistry

        return ServiceRegistry
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
