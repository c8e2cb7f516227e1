"""Optional API-key authentication (proto/PROTOCOL.md §6).

When a server has a key, *every* request — ``/health`` included — must carry
``Authorization: Bearer <key>``. The scheme is matched case-insensitively, the key with
``hmac.compare_digest`` (constant time). A request without a valid key is answered ``401`` with
``WWW-Authenticate: Bearer`` and ``{"error_type": "AuthenticationError", "error": ...}`` *before its body
is read*; if it announced a body, the connection closes after the 401. The message starts with
paglets 2.0's ``Authentication required`` and says what was wrong: no key was sent, the key is wrong, or
the ``Authorization`` header is not a bearer token (:func:`authorization_problem`).

Clients send the key they were given; :func:`default_api_key` reads it from ``PAGLETS_API_KEY``.
"""

from __future__ import annotations

import hmac
import os
from typing import Final, Literal

from paglets._errors import AuthenticationError
from paglets.http.errormap import API_KEY_ENV
from paglets.http.messages import Response, json_response

__all__ = [
    "API_KEY_ENV",
    "AUTH_MESSAGES",
    "AUTH_REQUIRED_MESSAGE",
    "AuthProblem",
    "authorization_header",
    "authorization_problem",
    "check_authorization",
    "default_api_key",
    "unauthorized_response",
]

AUTH_REQUIRED_MESSAGE = "Authentication required"

#: What is wrong with a request's credentials.
AuthProblem = Literal["missing", "wrong", "scheme"]

#: The 401 message for each problem.
AUTH_MESSAGES: Final[dict[AuthProblem, str]] = {
    "missing": f"{AUTH_REQUIRED_MESSAGE}: the request has no API key (Authorization: Bearer <key>)",
    "wrong": f"{AUTH_REQUIRED_MESSAGE}: the API key is wrong",
    "scheme": f"{AUTH_REQUIRED_MESSAGE}: the Authorization header is not 'Bearer <key>'",
}

_BEARER = b"bearer"


def default_api_key() -> str | None:
    """The API key from ``PAGLETS_API_KEY`` (``None`` when unset or empty)."""
    return os.environ.get(API_KEY_ENV) or None


def authorization_header(api_key: str) -> tuple[str, str]:
    """The header a client sends for ``api_key``."""
    return ("Authorization", f"Bearer {api_key}")


def authorization_problem(headers: list[tuple[bytes, bytes]], expected: bytes) -> AuthProblem | None:
    """``None`` when ``headers`` (lower-cased names) carry ``Bearer <expected>`` (constant-time compare),
    else what is wrong. Only the first ``Authorization`` header counts."""
    for name, value in headers:
        if name == b"authorization":
            scheme, _, token = value.strip().partition(b" ")
            if scheme.lower() != _BEARER:
                return "scheme"
            return None if hmac.compare_digest(token.strip(), expected) else "wrong"
    return "missing"


def check_authorization(headers: list[tuple[bytes, bytes]], expected: bytes) -> bool:
    """Whether ``headers`` (lower-cased names) carry ``Bearer <expected>`` (constant-time compare)."""
    return authorization_problem(headers, expected) is None


def unauthorized_response(problem: AuthProblem = "missing") -> Response:
    """The 401 answer, with exactly the two fields of paglets 2.0's body (the message says ``problem``)."""
    return json_response(
        {"error_type": AuthenticationError.__name__, "error": AUTH_MESSAGES[problem]},
        AuthenticationError.http_status,
        headers=[("WWW-Authenticate", "Bearer")],
    )
