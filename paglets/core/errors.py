"""The paglets exception tree (docs/implementing/errors.md).

Every error the runtime raises derives from :class:`PagletError`. The names and the parent classes of
the contract errors match paglets 2.0, so ``except HostError`` in existing code keeps working.

The classes are defined in the leaf module ``paglets._errors`` (which imports nothing from paglets, so
the sans-IO layers can use them) and re-exported here unchanged: ``paglets.core.errors.HostError is
paglets._errors.HostError``. This module is their public home; import them from here.

Each class carries the HTTP status that the control plane answers with (``http_status``) and a stable
``code`` used when the error crosses a process or host boundary (see ``paglets.wire.messages.ErrorInfo``
and ``error_class_for``). Errors that came from another process keep the original exception type name
(``remote_type``) and the remote traceback text (``remote_traceback``).
"""

from __future__ import annotations

from paglets._errors import (
    AuthenticationError,
    BodyTooLargeError,
    ChecksumError,
    Fault,
    ForbiddenError,
    ForwardingLimitError,
    FrameError,
    HeadersTooLargeError,
    HostBusyError,
    HostError,
    InvalidAgentError,
    InvalidAgentIdError,
    LifecycleError,
    LimitExceededError,
    MailboxFullError,
    MethodNotAllowedError,
    NotHandledError,
    PagletCrashedError,
    PagletError,
    PagletInactiveError,
    PagletMovedError,
    ProtocolError,
    RelayError,
    RelayTimeoutError,
    RemoteHostError,
    RequestError,
    ResourceCleanupError,
    RouteNotFoundError,
    SendTimeoutError,
    SerializationError,
    ServiceContractError,
    ServiceNotFoundError,
    StorageQuotaError,
    TransferError,
    TransferInDoubtError,
    UnknownHostError,
    error_class_for,
    error_code_for,
    error_codes,
)

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
