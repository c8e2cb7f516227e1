from __future__ import annotations

import msgspec
import pytest

from paglets.core import errors
from paglets.core.errors import HostError, PagletError, RemoteHostError, TransferError
from paglets.wire.limits import MAX_ERROR_MESSAGE, MAX_ERROR_TRACEBACK
from paglets.wire.messages import (
    ErrorInfo,
    error_body_from_exception,
    error_info_from_body,
    error_info_from_exception,
    exception_from_error_body,
    exception_from_error_info,
)

CODES = sorted(errors.error_codes().items())


def _raised(exc: BaseException) -> BaseException:
    try:
        raise exc
    except BaseException as caught:
        return caught


@pytest.mark.parametrize(("code", "cls"), CODES, ids=[c for c, _ in CODES])
def test_every_error_code_maps_both_ways(code: str, cls: type[PagletError]) -> None:
    info = error_info_from_exception(_raised(cls("it failed")))
    assert info.code == code
    wire = msgspec.msgpack.decode(msgspec.msgpack.encode(info), type=ErrorInfo)
    rebuilt = exception_from_error_info(wire)
    assert type(rebuilt) is cls
    assert str(rebuilt) == "it failed"
    assert rebuilt.remote_type == cls.__name__
    assert rebuilt.remote_traceback is not None
    assert "it failed" in rebuilt.remote_traceback
    # and through the JSON error body
    body = error_body_from_exception(cls("it failed"))
    assert body["error_type"] == cls.__name__
    assert body["code"] == code
    assert type(exception_from_error_body(body)) is cls


def test_foreign_exceptions_keep_their_type_name() -> None:
    info = error_info_from_exception(_raised(RuntimeError("boom")))
    assert info.code == RemoteHostError.code
    assert info.type_name == "RuntimeError"
    assert "RuntimeError: boom" in info.traceback
    rebuilt = exception_from_error_info(info)
    assert type(rebuilt) is RemoteHostError
    assert rebuilt.remote_type == "RuntimeError"


def test_foreign_code_is_chosen_by_the_caller() -> None:
    # the child runtime reports user handler failures as HostError (contract §1.12)
    info = error_info_from_exception(KeyError("k"), foreign_code=HostError.code)
    assert type(exception_from_error_info(info)) is HostError
    assert info.type_name == "KeyError"
    assert info.traceback == ""  # never raised: no traceback


def test_user_subclass_travels_as_nearest_known_class() -> None:
    class MyTransferError(TransferError):
        pass

    info = error_info_from_exception(MyTransferError("x"))
    assert info.code == TransferError.code
    assert info.type_name.endswith("MyTransferError")
    assert type(exception_from_error_info(info)) is TransferError


def test_rebuilt_error_keeps_its_origin_when_forwarded() -> None:
    first = exception_from_error_info(ErrorInfo("host", "ValueError", "bad", "Traceback: child\n"))
    again = error_info_from_exception(_raised(first))
    assert again == ErrorInfo("host", "ValueError", "bad", "Traceback: child\n")


def test_unknown_code_becomes_remote_host_error() -> None:
    rebuilt = exception_from_error_info(ErrorInfo("from_the_future", "FutureError", "?"))
    assert type(rebuilt) is RemoteHostError
    assert rebuilt.remote_type == "FutureError"
    assert rebuilt.remote_traceback is None


def test_text_is_bounded() -> None:
    info = error_info_from_exception(ValueError("m" * (MAX_ERROR_MESSAGE * 2)))
    assert len(info.message) == MAX_ERROR_MESSAGE
    assert info.message.endswith("[...]")
    long_tb = ErrorInfo("host", "X", "m", "t" * (MAX_ERROR_TRACEBACK + 10) + "END")
    rebuilt = exception_from_error_info(long_tb)
    assert rebuilt.remote_traceback is not None
    assert len(rebuilt.remote_traceback) == MAX_ERROR_TRACEBACK
    assert rebuilt.remote_traceback.endswith("END")  # the end of a traceback is where the raise is


def test_unprintable_exception_is_still_reported() -> None:
    class Nasty(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no")

    info = error_info_from_exception(Nasty())
    assert info.message == "<unprintable Nasty>"


def test_error_body_leaves_traceback_out_by_default() -> None:
    exc = _raised(TransferError("preflight failed"))
    body = error_body_from_exception(exc)
    assert body == {
        "error_type": "TransferError",
        "error": "preflight failed",
        "code": "transfer",
        "remote_type": "TransferError",
    }
    assert "remote_traceback" in error_body_from_exception(exc, with_traceback=True)


def test_foreign_error_body_uses_the_class_of_the_code() -> None:
    body = error_body_from_exception(RuntimeError("boom"))
    assert body["error_type"] == "RemoteHostError"
    assert body["remote_type"] == "RuntimeError"


def test_paglets_2_error_body_is_understood() -> None:
    rebuilt = exception_from_error_body({"error_type": "InvalidAgentError", "error": "no such agent"})
    assert type(rebuilt) is errors.InvalidAgentError
    assert str(rebuilt) == "no such agent"
    assert rebuilt.remote_type == "InvalidAgentError"
    assert type(exception_from_error_body({"error_type": "ValueError", "error": "x"})) is RemoteHostError


def test_malformed_error_body_fields_are_ignored() -> None:
    info = error_info_from_body({"error_type": 5, "error": ["x"], "code": None, "remote_traceback": 1})
    assert info == ErrorInfo(RemoteHostError.code, "RemoteHostError", "", "")
