"""Errors <-> JSON error bodies, both directions."""

from __future__ import annotations

import msgspec
import pytest

from paglets.core.errors import (
    AuthenticationError,
    BodyTooLargeError,
    HostError,
    InvalidAgentError,
    LifecycleError,
    PagletError,
    RemoteHostError,
    ResourceCleanupError,
)
from paglets.http.errormap import error_from_response, error_payload, error_status


class CustomLifecycleError(LifecycleError):
    """A user subclass the client does not know: travels with its parent's code."""


def test_payload_of_paglet_errors() -> None:
    assert error_payload(InvalidAgentError("gone")) == {
        "error_type": "InvalidAgentError",
        "error": "gone",
        "code": "invalid_agent",
    }
    remote = HostError("boom", remote_type="RuntimeError", remote_traceback="tb")
    assert error_payload(remote)["remote_type"] == "RuntimeError"
    assert "remote_traceback" not in error_payload(remote)  # only when the host exposes tracebacks
    assert error_payload(remote, traceback=True)["remote_traceback"] == "tb"
    assert error_payload(CustomLifecycleError("x"))["code"] == "lifecycle"
    assert error_status(BodyTooLargeError("big")) == 413


def test_payload_of_foreign_exceptions_hides_the_traceback() -> None:
    payload = error_payload(KeyError("missing"))
    assert payload == {
        "error_type": "RemoteHostError",
        "error": "'missing'",
        "code": "remote_host",
        "remote_type": "KeyError",
    }
    assert error_status(KeyError()) == 500


@pytest.mark.parametrize(
    "exc",
    [
        InvalidAgentError("a"),
        ResourceCleanupError("b"),
        HostError("c", remote_type="ValueError"),
        KeyError("d"),
    ],
)
def test_round_trip(exc: BaseException) -> None:
    body = msgspec.json.encode(error_payload(exc))
    back = error_from_response(error_status(exc), body, "http://h/x")
    expected = type(exc) if isinstance(exc, PagletError) else RemoteHostError
    assert type(back) is expected
    if not isinstance(exc, PagletError):
        assert back.remote_type == "KeyError"


def test_bodies_from_paglets_20_and_unknown_types() -> None:
    legacy = error_from_response(404, b'{"error_type": "InvalidAgentError", "error": "nope"}', "u")
    assert type(legacy) is InvalidAgentError
    assert str(legacy) == "nope"
    unknown = error_from_response(400, b'{"error_type": "WeirdError", "error": "w"}', "u")
    assert type(unknown) is RemoteHostError
    assert unknown.remote_type == "WeirdError"
    by_code = error_from_response(
        400, b'{"error_type": "CustomLifecycleError", "error": "c", "code": "lifecycle"}', "u"
    )
    assert type(by_code) is LifecycleError
    assert by_code.remote_type == "CustomLifecycleError"


@pytest.mark.parametrize("body", [b"", b"<html>bad gateway</html>", b"[1, 2]", b'{"error": 1}', b"\xff\xfe"])
def test_non_error_bodies_give_remote_host_error(body: bytes) -> None:
    error = error_from_response(502, body, "http://h/x")
    assert type(error) is RemoteHostError
    assert "502" in str(error)
    assert "http://h/x" in str(error)


def test_401_always_hints_at_the_environment_variable() -> None:
    for body in (b"", b'{"error_type": "AuthenticationError", "error": "Authentication required"}'):
        error = error_from_response(401, body, "http://h:1")
        assert isinstance(error, AuthenticationError)
        assert "PAGLETS_API_KEY" in str(error)
        assert "http://h:1" in str(error)
