"""Optional API-key authentication (contract §6).

When a server has a key, *every* request — ``/health`` included — must carry
``Authorization: Bearer <key>``. The scheme is matched case-insensitively, the key with
``hmac.compare_digest`` (constant time). A request without a valid key is answered ``401`` with
``WWW-Authenticate: Bearer`` and ``{"error_type": "AuthenticationError", "error": "Authentication
required"}`` *before its body is read*; if it announced a body, the connection closes after the 401.

Clients send the key they were given; :func:`default_api_key` reads it from ``PAGLETS_API_KEY``.
"""

from __future__ import annotations

import hmac
import os

from paglets.core.errors import AuthenticationError
from paglets.http.errormap import API_KEY_ENV
from paglets.http.messages import Response, json_response

__all__ = [
    "API_KEY_ENV",
    "AUTH_REQUIRED_MESSAGE",
    "authorization_header",
    "check_authorization",
    "default_api_key",
    "unauthorized_response",
]

AUTH_REQUIRED_MESSAGE = "Authentication required"

_BEARER = b"bearer"


def default_api_key() -> str | None:
    """The API key from ``PAGLETS_API_KEY`` (``None`` when unset or empty)."""
    return os.environ.get(API_KEY_ENV) or None


def authorization_header(api_key: str) -> tuple[str, str]:
    """The header a client sends for ``api_key``."""
    return ("Authorization", f"Bearer {api_key}")


def check_authorization(headers: list[tuple[bytes, bytes]], expected: bytes) -> bool:
    """Whether ``headers`` (lower-cased names) carry ``Bearer <expected>`` (constant-time compare)."""
    for name, value in headers:
        if name == b"authorization":
            scheme, _, token = value.strip().partition(b" ")
            if scheme.lower() != _BEARER:
                return False
            return hmac.compare_digest(token.strip(), expected)
    return False


def unauthorized_response() -> Response:
    """The 401 answer, with exactly the two fields of the contract's body."""
    return json_response(
        {"error_type": AuthenticationError.__name__, "error": AUTH_REQUIRED_MESSAGE},
        AuthenticationError.http_status,
        headers=[("WWW-Authenticate", "Bearer")],
    )
