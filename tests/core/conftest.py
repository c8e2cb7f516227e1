"""Authoring API test fixtures: a recording ``HostFacade`` for the forwarding done by ``PagletContext``.

Every call is checked against the signature declared by ``HostFacade`` (so a context that calls the
facade with a wrong name or wrong arguments fails) and recorded with its bound arguments.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import pytest

from paglets.core.agent import HostFacade


class RecordingHost:
    def __init__(self, name: str = "alpha", address: str = "http://127.0.0.1:8765") -> None:
        self.name = name
        self.address = address
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.results: dict[str, Any] = {}

    def __getattr__(self, method: str) -> Callable[..., Any]:
        declared = getattr(HostFacade, method, None)
        if declared is None or method.startswith("_") or isinstance(declared, property):
            raise AttributeError(method)
        signature = inspect.signature(declared)

        def record(*args: Any, **kwargs: Any) -> Any:
            bound = signature.bind(self, *args, **kwargs)
            bound.apply_defaults()
            arguments = dict(bound.arguments)
            arguments.pop("self")
            self.calls.append((method, arguments))
            result = self.results.get(method)
            return result(**arguments) if callable(result) else result

        return record

    def last(self, method: str) -> dict[str, Any]:
        for name, arguments in reversed(self.calls):
            if name == method:
                return arguments
        raise AssertionError(f"{method} was not called; calls: {[c[0] for c in self.calls]}")

    def methods(self) -> list[str]:
        return [name for name, _ in self.calls]


@pytest.fixture
def host() -> RecordingHost:
    return RecordingHost()
