"""The paglets exception tree (public home: ``paglets.core.errors``, which re-exports every name).

This module is a leaf: it imports nothing from paglets, so every layer can raise and catch these errors,
the sans-IO ``wire`` and the ``http`` packages included, without depending on the authoring API. Import
the classes from ``paglets.core.errors``; the layers below ``core`` (``wire``, ``http``,
``serialization``) import them from here.

Every error the runtime raises derives from :class:`PagletError`. The names and the parent classes of
the contract errors match paglets 2.0, so ``except HostError`` in existing code keeps working.

Each class carries the HTTP status that the control plane answers with (``http_status``) and a stable
``code`` used when the error crosses a process or host boundary (see ``paglets.wire.messages.ErrorInfo``
and ``error_class_for``). Errors that came from another process keep the original exception type name
(``remote_type``) and the remote traceback text (``remote_traceback``).
"""

from __future__ import annotations

import re
from typing import ClassVar, Literal

Fault = Literal["local", "remote"]

__all__ = [
    "AuthenticationError",
    "BodyTooLargeError",
    "ChecksumError",
    "Fault",
    "ForbiddenError",
    "ForwardingLimitError",
    "FrameError",
    "HeadersTooLargeError",
    "HostBusyError",
    "HostError",
    "InvalidAgentError",
    "InvalidAgentIdError",
    "LifecycleError",
    "LimitExceededError",
    "MailboxFullError",
    "MethodNotAllowedError",
    "NotHandledError",
    "PagletCrashedError",
    "PagletError",
    "PagletInactiveError",
    "PagletMovedError",
    "ProtocolError",
    "RelayError",
    "RelayTimeoutError",
    "RemoteHostError",
    "RequestError",
    "ResourceCleanupError",
    "RouteNotFoundError",
    "SendTimeoutError",
    "SerializationError",
    "ServiceContractError",
    "ServiceNotFoundError",
    "StorageQuotaError",
    "TransferError",
    "TransferInDoubtError",
    "UnknownHostError",
    "error_class_for",
    "error_code_for",
    "error_codes",
]


class PagletError(Exception):
    """Root of every paglets error."""

    http_status: ClassVar[int] = 400
    code: ClassVar[str] = "paglet_error"

    remote_type: str | None
    remote_traceback: str | None

    def __init__(
        self,
        *args: object,
        remote_type: str | None = None,
        remote_traceback: str | None = None,
    ) -> None:
        super().__init__(*args)
        self.remote_type = remote_type
        self.remote_traceback = remote_traceback

    @property
    def message(self) -> str:
        return str(self)


class SerializationError(PagletError):
    """A value cannot be encoded or decoded (names the field path when known)."""

    code = "serialization"


class HostError(PagletError):
    code = "host"


class HostBusyError(HostError):
    """The host cannot take this request now, for want of a shared resource (HTTP 503); try again later.

    ``retry_after``: seconds after which a retry is worth it (sent as the ``Retry-After`` header).
    """

    http_status = 503
    code = "host_busy"

    def __init__(self, *args: object, retry_after: float | None = None, **kwargs: str | None) -> None:
        super().__init__(*args, **kwargs)
        self.retry_after = retry_after


class RequestError(HostError):
    """A request body that does not fit its route's schema; the message names the field (HTTP 400)."""

    code = "bad_request"


class ServiceContractError(HostError):
    code = "service_contract"


class ServiceNotFoundError(ServiceContractError):
    code = "service_not_found"


class AuthenticationError(PagletError):
    http_status = 401
    code = "authentication"


class ForbiddenError(PagletError):
    http_status = 403
    code = "forbidden"


class RemoteHostError(PagletError):
    """A remote host failed or could not be reached; also the class of unexpected remote errors."""

    http_status = 500
    code = "remote_host"


class RelayError(RemoteHostError):
    """A relay hub could not deliver a request to a connect-mode host (offline, reconnected as a new
    process, or gone while the request ran) (HTTP 502)."""

    http_status = 502
    code = "relay"


class RelayTimeoutError(RelayError, TimeoutError):
    """A relayed request was not taken by its connect-mode host within the delivery timeout; it was
    withdrawn and will never run (HTTP 504)."""

    http_status = 504
    code = "relay_timeout"


class InvalidAgentError(PagletError):
    http_status = 404
    code = "invalid_agent"


class InvalidAgentIdError(InvalidAgentError):
    """A string that cannot be an agent id (``paglets.core._ids``): the request is malformed (HTTP 400),
    whereas its parent means "no such paglet" (404)."""

    http_status = 400
    code = "invalid_agent_id"


class PagletMovedError(InvalidAgentError):
    """The paglet is not here any more: it moved to ``host_url`` (as ``moved_agent_id``), as the host it
    left remembers (a forwarding entry). Proxies follow it; code that catches ``InvalidAgentError`` (what
    paglets 2.0 raised for a paglet that left) keeps working. The message names the place in a fixed form
    (``... moved to <agent id> at <url>``), so the place survives every boundary that carries only an
    error's code and message."""

    code = "paglet_moved"

    def __init__(
        self,
        *args: object,
        host_url: str | None = None,
        moved_agent_id: str | None = None,
        remote_type: str | None = None,
        remote_traceback: str | None = None,
    ) -> None:
        super().__init__(*args, remote_type=remote_type, remote_traceback=remote_traceback)
        if host_url is None and args:
            found = _MOVED_TO.search(str(args[0]))
            if found is not None:
                moved_agent_id, host_url = found.group(1), found.group(2)
        self.host_url = host_url
        self.moved_agent_id = moved_agent_id


class ForwardingLimitError(InvalidAgentError):
    """A proxy followed ``MAX_FORWARD_HOPS`` forwarding answers without reaching its paglet (a loop of
    stale entries, or a paglet moving faster than it is followed)."""

    code = "forwarding_limit"


_MOVED_TO = re.compile(r"moved to (\S+) at (https?://\S+?)(?:[ ;)]|$)")


class PagletInactiveError(PagletError):
    code = "paglet_inactive"


class PagletCrashedError(PagletError):
    code = "paglet_crashed"


class NotHandledError(PagletError):
    http_status = 422
    code = "not_handled"


class SendTimeoutError(PagletError, TimeoutError):
    """A synchronous send got no reply within its deadline (HTTP 504). The handler may still be running:
    the message is not withdrawn. Also a ``TimeoutError``, which is what a paglets 2.0 client raised when
    its socket timed out."""

    http_status = 504
    code = "send_timeout"


class LifecycleError(PagletError):
    code = "lifecycle"


class ResourceCleanupError(LifecycleError):
    code = "resource_cleanup"


class TransferError(PagletError):
    code = "transfer"


class TransferInDoubtError(TransferError):
    """A move whose commit the target did not confirm in time (it may be down): the paglet is paused on
    the source and runs exactly once, on one of the two hosts, as soon as they reach each other again.
    ``transfer_id`` names the transfer (also when the error was rebuilt from its message)."""

    http_status = 504
    code = "transfer_in_doubt"

    def __init__(self, *args: object, transfer_id: str = "", **kwargs: str | None) -> None:
        super().__init__(*args, **kwargs)
        if not transfer_id and args:
            found = re.search(r"\btransfer ([0-9a-f]{32})\b", str(args[0]))
            transfer_id = found.group(1) if found else ""
        self.transfer_id = transfer_id


class UnknownHostError(HostError, TransferError):
    """A host name that no member of the mesh has (names are never looked up outside the mesh).

    Both a ``HostError`` (name resolution) and a ``TransferError`` (what a failed ``dispatch`` raises).
    """

    code = "unknown_host"


class StorageQuotaError(PagletError):
    code = "storage_quota"


class MailboxFullError(PagletError):
    """A paglet's mailbox reached its bound; the message was not accepted."""

    http_status = 429
    code = "mailbox_full"


# --- protocol errors: bad bytes on a wire, a pipe or a disk -------------------------------------------


class ProtocolError(PagletError):
    """Bytes that do not follow ``proto/PROTOCOL.md``.

    ``fault`` says who produced the bad bytes: ``"remote"`` (the peer sent them; answer 4xx) or
    ``"local"`` (we were asked to produce something invalid).
    """

    code = "protocol"

    def __init__(self, *args: object, fault: Fault = "remote", **kwargs: str | None) -> None:
        super().__init__(*args, **kwargs)
        self.fault: Fault = fault


class FrameError(ProtocolError):
    """A frame or envelope is malformed, truncated or of an unknown type."""

    code = "frame"


class ChecksumError(FrameError):
    """Content does not match its declared length or checksum."""

    code = "checksum"


class LimitExceededError(ProtocolError):
    """A declared or actual size passes one of the limits in ``paglets.wire.limits``."""

    http_status = 413
    code = "limit_exceeded"


class BodyTooLargeError(LimitExceededError):
    http_status = 413
    code = "body_too_large"


class HeadersTooLargeError(LimitExceededError):
    http_status = 431
    code = "headers_too_large"


class RouteNotFoundError(ProtocolError):
    http_status = 404
    code = "route_not_found"


class MethodNotAllowedError(ProtocolError):
    http_status = 405
    code = "method_not_allowed"


# --- code <-> class table -------------------------------------------------------------------------------


def _all_subclasses(cls: type[PagletError]) -> list[type[PagletError]]:
    """``cls`` and every class below it, each once (a class with two parents is met twice)."""
    found: dict[type[PagletError], None] = {cls: None}
    for sub in cls.__subclasses__():
        found.update(dict.fromkeys(_all_subclasses(sub)))
    return list(found)


_BY_CODE: dict[str, type[PagletError]] = {}
_BY_NAME: dict[str, type[PagletError]] = {}
for _cls in _all_subclasses(PagletError):
    if _cls.__module__ != __name__:  # pragma: no cover - only classes defined here
        continue
    if _cls.code in _BY_CODE:  # pragma: no cover - guarded by tests
        raise RuntimeError(f"duplicate error code {_cls.code!r}")
    _BY_CODE[_cls.code] = _cls
    _BY_NAME[_cls.__name__] = _cls


def error_code_for(exc: BaseException) -> str:
    """The stable code of ``exc``; foreign exceptions travel as ``remote_host`` with their type name."""
    if isinstance(exc, PagletError):
        return type(exc).code if type(exc).code in _BY_CODE else _nearest_code(type(exc))
    return RemoteHostError.code


def _nearest_code(cls: type[BaseException]) -> str:
    for base in cls.__mro__:
        code = getattr(base, "code", None)
        if isinstance(code, str) and _BY_CODE.get(code) is base:
            return code
    return PagletError.code


def error_class_for(code: str | None = None, *, name: str | None = None) -> type[PagletError]:
    """The class for a code (or, for JSON bodies from paglets 2.0, a class name).

    Unknown codes and names give :class:`RemoteHostError`, as the reference client does.
    """
    if code is not None and code in _BY_CODE:
        return _BY_CODE[code]
    if name is not None and name in _BY_NAME:
        return _BY_NAME[name]
    return RemoteHostError


def error_codes() -> dict[str, type[PagletError]]:
    """Every code and its class (a copy)."""
    return dict(_BY_CODE)
