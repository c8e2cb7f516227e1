"""Routing is data: a table of (method, path pattern) → handler, matched segment by segment.

Patterns are absolute paths split on ``/``. Each segment is either

- a literal (``agents``), compared with the percent-decoded request segment;
- a parameter ``{name}`` matching exactly one non-empty segment (percent-decoded into
  ``path_params[name]``);
- a tail parameter ``{name:path}``, allowed only as the last segment, matching one or more remaining
  segments; its value is the *raw* (still percent-encoded) rest of the path, so that a relay can pass
  it on unchanged.

The table is a trie keyed by segment. Matching walks the request's segments once, trying a literal
child before the parameter child and the parameter child before a tail parameter; it backtracks only
when a literal branch dead-ends (``/agents/list/x`` vs ``/agents/{id}/state``), so the cost is
O(segments) for any realistic table. A method of ``"*"`` matches every method.

A router made with ``param_checks={"agent_id": check}`` runs ``check(value)`` on every parameter of that
name before the handler of any route that has it (a check raises the error the client gets, e.g. a 400),
so a rule for a kind of path parameter lives in one place whatever module adds the route.

``lookup`` returns a :class:`RouteMatch` (handler and parameters) or a :class:`RouteMiss`: a path that
matches some pattern but not the method lists the allowed methods (405 with an ``Allow`` header,
:class:`~paglets.core.errors.MethodNotAllowedError`); no pattern at all is a 404
(:class:`~paglets.core.errors.RouteNotFoundError`). ``match`` raises those errors instead.

:func:`strip_prefix` implements the reverse-proxy prefix rule: with a prefix such as
``/paglets``, ``/paglets/health`` and ``/health`` both route to ``/health``.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, TypeAlias
from urllib.parse import unquote

from paglets._errors import MethodNotAllowedError, RouteNotFoundError

if TYPE_CHECKING:
    from paglets.http.messages import Request, Response, StreamResponse

__all__ = [
    "Handler",
    "Route",
    "RouteMatch",
    "RouteMiss",
    "Router",
    "normalize_prefix",
    "split_path",
    "strip_prefix",
]

Handler: TypeAlias = "Callable[[Request], Awaitable[Response | StreamResponse]]"

ANY_METHOD: Final = "*"

_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_TAIL = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*):path\}")
_METHOD = re.compile(r"[A-Z]+|\*")


@dataclass(frozen=True, slots=True)
class Route:
    """One entry of the table."""

    method: str
    pattern: str
    handler: Handler
    param_names: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RouteMatch:
    route: Route
    params: dict[str, str]

    @property
    def handler(self) -> Handler:
        return self.route.handler


@dataclass(frozen=True, slots=True)
class RouteMiss:
    """No route: ``allow`` lists the methods the path would accept (empty: no pattern matches)."""

    allow: tuple[str, ...]

    def error(self, method: str, path: str) -> RouteNotFoundError | MethodNotAllowedError:
        if self.allow:
            return MethodNotAllowedError(f"Method {method} not allowed for {path}")
        return RouteNotFoundError(f"No route for {method} {path}")


@dataclass(slots=True)
class _Node:
    literals: dict[str, _Node] = field(default_factory=dict)
    param: _Node | None = None
    tail: _Node | None = None  # a {name:path} leaf
    methods: dict[str, Route] = field(default_factory=dict)


def _checked(handler: Handler, checks: list[tuple[str, Callable[[str], object]]]) -> Handler:
    """``handler`` behind the checks of its path parameters (see the module docstring)."""

    async def checked(request: Request) -> Response | StreamResponse:
        for name, check in checks:
            check(request.path_params[name])
        return await handler(request)

    checked.__wrapped__ = handler  # type: ignore[attr-defined]
    return checked


def split_path(path: str) -> list[str]:
    """Raw segments of an absolute path (``"/a/b/"`` → ``["a", "b", ""]``; ``"/"`` → ``[]``)."""
    return path[1:].split("/") if path != "/" else []


def normalize_prefix(prefix: str) -> str:
    """``"paglets/"`` → ``"/paglets"``; ``""`` and ``"/"`` → ``""`` (no prefix)."""
    prefix = prefix.strip()
    if not prefix or prefix == "/":
        return ""
    if not prefix.startswith("/"):
        prefix = "/" + prefix
    return prefix.rstrip("/")


def strip_prefix(path: str, prefix: str) -> str:
    """``path`` without the (normalized) ``prefix`` when it starts with it; otherwise unchanged."""
    if prefix and path.startswith(prefix):
        rest = path[len(prefix) :]
        if not rest:
            return "/"
        if rest[0] == "/":
            return rest
    return path


class Router:
    """The route table (see the module docstring)."""

    def __init__(self, *, param_checks: Mapping[str, Callable[[str], object]] | None = None) -> None:
        self._root = _Node()
        self._routes: list[Route] = []
        self._checks = dict(param_checks or {})

    def add(self, method: str, pattern: str, handler: Handler) -> None:
        """Register ``handler`` for ``method`` (``"*"`` for any) and ``pattern``.

        Raises ``ValueError`` for a malformed pattern, a duplicate parameter name or a duplicate
        (method, pattern) pair.
        """
        method = method.upper()
        if not _METHOD.fullmatch(method):
            raise ValueError(f"bad HTTP method {method!r}")
        if not pattern.startswith("/"):
            raise ValueError(f"route pattern must start with '/': {pattern!r}")
        node = self._root
        names: list[str] = []
        segments = split_path(pattern)
        for index, segment in enumerate(segments):
            tail = _TAIL.fullmatch(segment)
            param = _PARAM.fullmatch(segment)
            if tail is not None:
                if index != len(segments) - 1:
                    raise ValueError(f"{{name:path}} must be the last segment: {pattern!r}")
                names.append(tail.group(1))
                if node.tail is None:
                    node.tail = _Node()
                node = node.tail
            elif param is not None:
                names.append(param.group(1))
                if node.param is None:
                    node.param = _Node()
                node = node.param
            else:
                if "{" in segment or "}" in segment:
                    raise ValueError(f"bad route segment {segment!r} in {pattern!r}")
                node = node.literals.setdefault(segment, _Node())
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate parameter name in {pattern!r}")
        if method in node.methods:
            raise ValueError(f"duplicate route {method} {pattern}")
        checks = [(name, self._checks[name]) for name in names if name in self._checks]
        if checks:
            handler = _checked(handler, checks)
        route = Route(method, pattern, handler, tuple(names))
        node.methods[method] = route
        self._routes.append(route)

    def get(self, pattern: str, handler: Handler) -> None:
        self.add("GET", pattern, handler)

    def post(self, pattern: str, handler: Handler) -> None:
        self.add("POST", pattern, handler)

    def delete(self, pattern: str, handler: Handler) -> None:
        self.add("DELETE", pattern, handler)

    @property
    def routes(self) -> tuple[Route, ...]:
        return tuple(self._routes)

    def lookup(self, method: str, path: str) -> RouteMatch | RouteMiss:
        """The route for ``method`` and an absolute, prefix-stripped ``path`` (no query string)."""
        raw = split_path(path)
        decoded = [unquote(s) if "%" in s else s for s in raw]
        values: list[str] = []
        allowed: set[str] = set()
        found = self._walk(self._root, raw, decoded, 0, values, method, allowed)
        if found is not None:
            route, params = found
            return RouteMatch(route, dict(zip(route.param_names, params, strict=True)))
        return RouteMiss(tuple(sorted(allowed)))

    def match(self, method: str, path: str) -> RouteMatch:
        """Like :meth:`lookup` but raises :class:`RouteNotFoundError` / :class:`MethodNotAllowedError`."""
        found = self.lookup(method, path)
        if isinstance(found, RouteMiss):
            raise found.error(method, path)
        return found

    def _walk(
        self,
        node: _Node,
        raw: list[str],
        decoded: list[str],
        index: int,
        values: list[str],
        method: str,
        allowed: set[str],
    ) -> tuple[Route, list[str]] | None:
        if index == len(raw):
            route = node.methods.get(method) or node.methods.get(ANY_METHOD)
            if route is not None:
                return route, list(values)
            allowed.update(node.methods)
            return None
        segment = decoded[index]
        child = node.literals.get(segment)
        if child is not None:
            found = self._walk(child, raw, decoded, index + 1, values, method, allowed)
            if found is not None:
                return found
        if node.param is not None and segment:
            values.append(segment)
            found = self._walk(node.param, raw, decoded, index + 1, values, method, allowed)
            values.pop()
            if found is not None:
                return found
        if node.tail is not None:
            route = node.tail.methods.get(method) or node.tail.methods.get(ANY_METHOD)
            if route is not None:
                return route, [*values, "/".join(raw[index:])]
            allowed.update(node.tail.methods)
        return None
