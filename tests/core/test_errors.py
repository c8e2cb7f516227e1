from __future__ import annotations

import pytest

from paglets.core import errors
from paglets.core.errors import (
    HostError,
    PagletError,
    RemoteHostError,
    ServiceNotFoundError,
    error_class_for,
    error_code_for,
)


def test_every_code_maps_both_ways() -> None:
    table = errors.error_codes()
    assert len(table) == len(set(table))
    for code, cls in table.items():
        assert cls.code == code
        assert error_class_for(code) is cls
        assert error_code_for(cls("x")) == code
        assert error_class_for(name=cls.__name__) is cls


def test_contract_hierarchy_and_statuses() -> None:
    assert issubclass(ServiceNotFoundError, HostError)
    assert issubclass(errors.ResourceCleanupError, errors.LifecycleError)
    assert errors.AuthenticationError.http_status == 401
    assert errors.ForbiddenError.http_status == 403
    assert errors.InvalidAgentError.http_status == 404
    assert errors.NotHandledError.http_status == 422
    assert HostError.http_status == 400
    assert all(issubclass(c, PagletError) for c in errors.error_codes().values())


def test_unknown_codes_and_foreign_exceptions() -> None:
    assert error_class_for("no-such-code") is RemoteHostError
    assert error_class_for(name="RuntimeError") is RemoteHostError
    assert error_code_for(RuntimeError("boom")) == RemoteHostError.code


def test_user_subclass_travels_as_its_contract_parent() -> None:
    class MyError(HostError):
        pass

    assert error_code_for(MyError("x")) == HostError.code


def test_remote_details_are_kept() -> None:
    exc = HostError("bad", remote_type="ValueError", remote_traceback="Traceback ...")
    assert exc.remote_type == "ValueError"
    assert "Traceback" in (exc.remote_traceback or "")
    with pytest.raises(HostError, match="bad"):
        raise exc
