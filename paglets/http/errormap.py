"""Errors ↔ JSON error bodies, both directions.

Server side (:func:`error_payload`): a :class:`~paglets.core.errors.PagletError` answers with its class's
``http_status`` and ``{"error_type": <class name>, "error": str(exc), "code": <stable code>}`` plus
``remote_type`` when the error carries it (it came from a child or another host), and
``remote_traceback`` only when asked (``traceback=True``: a host configured with ``expose_tracebacks``;
a traceback shows the server's file paths and code, ``proto/PROTOCOL.md`` §3.1). Any other exception
answers 500 with ``error_type: "RemoteHostError"``, its message, and its own type name as
``remote_type`` — never its traceback, which stays in the server's log. The two fields of paglets 2.0
(``error_type``, ``error``) are always present, so 2.0 clients decode our errors.

Client side (:func:`error_from_response`): the class is chosen by ``code`` when we know it, else by
``error_type`` (bodies from paglets 2.0 hosts), else :class:`~paglets.core.errors.RemoteHostError`; a body
that is not a JSON error object gives ``RemoteHostError`` naming the status. A 401 always becomes
:class:`~paglets.core.errors.AuthenticationError` with a hint naming ``PAGLETS_API_KEY``; a caller that
knows whether it sent a key (``key_sent``) gets a hint that says which case it is.
"""

from __future__ import annotations

from typing import Any

import msgspec

from paglets._errors import (
    AuthenticationError,
    InvalidAgentError,
    PagletError,
    PagletMovedError,
    RemoteHostError,
    error_class_for,
    error_code_for,
)

__all__ = ["API_KEY_ENV", "auth_hint", "error_from_response", "error_payload", "error_status"]

#: Environment variable holding the API key (read by ``paglets.http.auth.default_api_key``).
API_KEY_ENV = "PAGLETS_API_KEY"

_DECODER = msgspec.json.Decoder()


def error_status(exc: BaseException) -> int:
    """The HTTP status for ``exc`` (500 for anything that is not a ``PagletError``)."""
    return exc.http_status if isinstance(exc, PagletError) else 500


def error_payload(exc: BaseException, *, traceback: bool = False) -> dict[str, Any]:
    """The JSON error object for ``exc`` (see the module docstring)."""
    if isinstance(exc, PagletError):
        payload: dict[str, Any] = {
            "error_type": type(exc).__name__,
            "error": str(exc),
            "code": error_code_for(exc),
        }
        if isinstance(exc, PagletMovedError):
            # 2.0 clients choose the class by ``error_type``: they keep raising InvalidAgentError
            payload["error_type"] = InvalidAgentError.__name__
            if exc.host_url:
                payload["moved_to"] = {"host_url": exc.host_url, "agent_id": exc.moved_agent_id}
        if exc.remote_type:
            payload["remote_type"] = exc.remote_type
        if traceback and exc.remote_traceback:
            payload["remote_traceback"] = exc.remote_traceback
        return payload
    return {
        "error_type": RemoteHostError.__name__,
        "error": str(exc),
        "code": RemoteHostError.code,
        "remote_type": type(exc).__name__,
    }


def auth_hint(url: str, key_sent: bool | None = None) -> str:
    """How to fix a 401 from ``url``; ``key_sent`` says whether the request carried a key (None: unknown)."""
    if key_sent is None:
        return (
            f"the host at {url} requires an API key: set {API_KEY_ENV} (or pass api_key=...) "
            "to the key the host was started with"
        )
    if key_sent:
        return (
            f"the host at {url} refused the API key this client sent: {API_KEY_ENV} (or api_key=...) "
            "must hold the key the host was started with"
        )
    return (
        f"no API key was sent to {url}, which requires one: set {API_KEY_ENV} (or pass api_key=...) "
        "to the key the host was started with"
    )


def error_from_response(status: int, body: bytes, url: str, *, key_sent: bool | None = None) -> PagletError:
    """The error a client raises for a non-2xx response (see the module docstring)."""
    payload: Any = None
    if body:
        try:
            payload = _DECODER.decode(body)
        except (msgspec.DecodeError, UnicodeDecodeError):
            payload = None
    message: str | None = None
    cls: type[PagletError] = RemoteHostError
    remote_type: str | None = None
    remote_traceback: str | None = None
    if isinstance(payload, dict) and isinstance(payload.get("error_type"), str):
        name = payload["error_type"]
        code = payload.get("code")
        cls = error_class_for(code if isinstance(code, str) else None, name=name)
        raw_message = payload.get("error")
        message = raw_message if isinstance(raw_message, str) else str(raw_message)
        remote = payload.get("remote_type")
        if isinstance(remote, str):
            remote_type = remote
        elif name != cls.__name__:
            remote_type = name
        trace = payload.get("remote_traceback")
        if isinstance(trace, str):
            remote_traceback = trace
    if status == 401:
        base = message or "Authentication required"
        return AuthenticationError(
            f"{base} ({auth_hint(url, key_sent)})", remote_type=remote_type, remote_traceback=remote_traceback
        )
    if message is None:
        snippet = body[:200].decode("utf-8", "replace")
        return RemoteHostError(f"HTTP {status} from {url}: {snippet}")
    if cls is PagletMovedError and isinstance(payload, dict):
        moved = payload.get("moved_to")
        if isinstance(moved, dict) and isinstance(moved.get("host_url"), str):
            new_id = moved.get("agent_id")
            return PagletMovedError(
                message,
                host_url=moved["host_url"],
                moved_agent_id=new_id if isinstance(new_id, str) else None,
                remote_type=remote_type,
            )
    return cls(message, remote_type=remote_type, remote_traceback=remote_traceback)
