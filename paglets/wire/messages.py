"""Errors on the wire: the ``ErrorInfo`` Struct and the JSON error body.

An exception never crosses a process or host boundary as an object. It travels as data and is rebuilt
on the other side from a fixed table (``paglets.core.errors.error_class_for``), so a peer can never make
us instantiate an arbitrary class.

- Between host and child (IPC frames) it is an :class:`ErrorInfo`: the stable error ``code``, the
  original exception type name, the message and the traceback text.
- On the HTTP control plane it is the JSON error body of ``proto/PROTOCOL.md`` §3.1::

      {"error_type": "<our class name>", "error": "<message>",
       "code": "<code>", "remote_type": "<original type>", "remote_traceback": "<text>"}

  The first two keys are those of paglets 2.0, whose clients ignore the others.

Rebuilding gives an instance of the class the code names (unknown codes give ``RemoteHostError``) with
``remote_type`` and ``remote_traceback`` set. Exceptions that are not ``PagletError`` travel with the code
the caller chooses (``foreign_code``, ``remote_host`` by default; the child runtime passes ``host`` for
exceptions raised by user handlers, as the contract wants).

Text is bounded (``MAX_ERROR_MESSAGE``, ``MAX_ERROR_TRACEBACK``, ``MAX_ERROR_TYPE_NAME``): longer text is
cut with a marker, keeping the start of a message and the end of a traceback (where the raise is).
"""

from __future__ import annotations

import traceback as _traceback
from collections.abc import Mapping
from typing import Any

import msgspec

from paglets._errors import PagletError, RemoteHostError, error_class_for, error_code_for
from paglets.wire.limits import MAX_ERROR_MESSAGE, MAX_ERROR_TRACEBACK, MAX_ERROR_TYPE_NAME

__all__ = [
    "ErrorInfo",
    "error_body_from_exception",
    "error_info_from_body",
    "error_info_from_exception",
    "exception_from_error_body",
    "exception_from_error_info",
]

_CUT_MARK = " [...]"
#: Types from these modules are named without their module (``RuntimeError``, ``TransferError``); any
#: other type is named ``module.QualName`` so a user exception says where it comes from.
_BARE_MODULES = frozenset({"builtins", "paglets._errors"})


class ErrorInfo(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """One exception as data: stable ``code``, original ``type_name``, ``message``, ``traceback`` text."""

    code: str
    type_name: str
    message: str
    traceback: str = ""


def _head(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - len(_CUT_MARK)] + _CUT_MARK


def _tail(text: str, limit: int) -> str:
    return text if len(text) <= limit else _CUT_MARK + text[len(text) - limit + len(_CUT_MARK) :]


def _type_name(exc: BaseException) -> str:
    remote = getattr(exc, "remote_type", None)
    if isinstance(remote, str) and remote:
        return remote  # an error rebuilt from a peer keeps the type it had where it was raised
    cls = type(exc)
    if cls.__module__ in _BARE_MODULES:
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


def _message(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:  # a broken __str__ must not hide the original error
        return f"<unprintable {type(exc).__name__}>"


def _traceback_text(exc: BaseException) -> str:
    remote = getattr(exc, "remote_traceback", None)
    if isinstance(remote, str) and remote:
        return remote
    if exc.__traceback__ is None:
        return ""
    try:
        return "".join(_traceback.format_exception(exc))
    except Exception:  # formatting runs user __str__/__repr__; never fail while reporting a failure
        return ""


def error_info_from_exception(
    exc: BaseException, *, foreign_code: str = RemoteHostError.code, with_traceback: bool = True
) -> ErrorInfo:
    """Describe ``exc`` for the wire.

    ``foreign_code`` is the code given to exceptions outside the ``PagletError`` tree. The traceback is the
    one of ``exc`` (or the remote traceback it already carries); pass ``with_traceback=False`` to omit it.
    """
    code = error_code_for(exc) if isinstance(exc, PagletError) else foreign_code
    return ErrorInfo(
        code=code,
        type_name=_head(_type_name(exc), MAX_ERROR_TYPE_NAME),
        message=_head(_message(exc), MAX_ERROR_MESSAGE),
        traceback=_tail(_traceback_text(exc), MAX_ERROR_TRACEBACK) if with_traceback else "",
    )


def exception_from_error_info(info: ErrorInfo) -> PagletError:
    """Rebuild the exception ``info`` describes (unknown codes give ``RemoteHostError``).

    The class comes from the fixed table of ``paglets.core.errors``; the result carries the original type
    name as ``remote_type`` and the traceback text (or ``None``) as ``remote_traceback``.
    """
    cls = error_class_for(info.code)
    return cls(
        _head(info.message, MAX_ERROR_MESSAGE),
        remote_type=_head(info.type_name, MAX_ERROR_TYPE_NAME) or None,
        remote_traceback=_tail(info.traceback, MAX_ERROR_TRACEBACK) or None,
    )


def error_body_from_exception(
    exc: BaseException, *, foreign_code: str = RemoteHostError.code, with_traceback: bool = False
) -> dict[str, str]:
    """The JSON error body for ``exc`` (keys of ``proto/PROTOCOL.md`` §3.1).

    ``error_type`` is the name of the class the code maps to, so paglets 2.0 clients rebuild the same
    class. Tracebacks are left out unless asked for: they can reveal paths to an unauthenticated client.
    """
    info = error_info_from_exception(exc, foreign_code=foreign_code, with_traceback=with_traceback)
    body = {
        "error_type": error_class_for(info.code).__name__,
        "error": info.message,
        "code": info.code,
        "remote_type": info.type_name,
    }
    if info.traceback:
        body["remote_traceback"] = info.traceback
    return body


def _text(body: Mapping[str, Any], key: str) -> str:
    value = body.get(key)
    return value if isinstance(value, str) else ""


def error_info_from_body(body: Mapping[str, Any]) -> ErrorInfo:
    """Read a JSON error body (ours or one from paglets 2.0, which has only ``error_type`` and ``error``).

    The class is chosen by ``code`` when it is known, else by the ``error_type`` class name; fields of the
    wrong type are ignored rather than trusted.
    """
    code = _text(body, "code")
    name = _text(body, "error_type")
    cls = error_class_for(code or None, name=name or None)
    return ErrorInfo(
        code=cls.code,
        type_name=_head(_text(body, "remote_type") or name or cls.__name__, MAX_ERROR_TYPE_NAME),
        message=_head(_text(body, "error"), MAX_ERROR_MESSAGE),
        traceback=_tail(_text(body, "remote_traceback"), MAX_ERROR_TRACEBACK),
    )


def exception_from_error_body(body: Mapping[str, Any]) -> PagletError:
    """Rebuild the exception a JSON error body describes (see :func:`error_info_from_body`)."""
    return exception_from_error_info(error_info_from_body(body))
