"""Routing is data: patterns, parameters, precedence, 404/405, prefixes."""

from __future__ import annotations

from typing import Any

import pytest

from paglets.core.errors import MethodNotAllowedError, RouteNotFoundError
from paglets.http import Request, Response, Router
from paglets.http.routing import RouteMiss, normalize_prefix, split_path, strip_prefix


def handler(name: str) -> Any:
    async def handle(request: Request) -> Response:
        return Response(200, name.encode())

    handle.__name__ = name
    return handle


@pytest.fixture
def table() -> Router:
    router = Router()
    router.get("/health", handler("health"))
    router.get("/agents", handler("list"))
    router.post("/agents", handler("create"))
    router.get("/agents/{agent_id}", handler("info"))
    router.get("/agents/{agent_id}/state", handler("state"))
    router.post("/agents/{agent_id}/messages", handler("message"))
    router.get("/agents/list/special", handler("special"))
    router.add("*", "/relay/hosts/{name}/{rest:path}", handler("relay"))
    router.delete("/artifacts/{artifact_id}", handler("delete"))
    return router


@pytest.mark.parametrize(
    ("method", "path", "name", "params"),
    [
        ("GET", "/health", "health", {}),
        ("GET", "/agents", "list", {}),
        ("POST", "/agents", "create", {}),
        ("GET", "/agents/abc", "info", {"agent_id": "abc"}),
        ("GET", "/agents/a%2Fb%20c", "info", {"agent_id": "a/b c"}),
        ("GET", "/agents/abc/state", "state", {"agent_id": "abc"}),
        ("POST", "/agents/abc/messages", "message", {"agent_id": "abc"}),
        ("GET", "/agents/list/special", "special", {}),
        # the literal branch dead-ends: backtrack into the parameter branch
        ("GET", "/agents/list/state", "state", {"agent_id": "list"}),
        (
            "PUT",
            "/relay/hosts/h1/agents/x%2Fy/messages",
            "relay",
            {"name": "h1", "rest": "agents/x%2Fy/messages"},
        ),
        ("DELETE", "/artifacts/ff00", "delete", {"artifact_id": "ff00"}),
    ],
)
def test_matches(table: Router, method: str, path: str, name: str, params: dict[str, str]) -> None:
    found = table.match(method, path)
    assert found.handler.__name__ == name
    assert found.params == params


@pytest.mark.parametrize(
    "path", ["/nope", "/agents/abc/unknown", "/agents/", "/health/x", "/relay/hosts/h1", "/"]
)
def test_unknown_paths_are_404(table: Router, path: str) -> None:
    miss = table.lookup("GET", path)
    assert isinstance(miss, RouteMiss)
    assert miss.allow == ()
    with pytest.raises(RouteNotFoundError, match="No route for GET"):
        table.match("GET", path)


def test_wrong_method_is_405_with_the_allowed_methods(table: Router) -> None:
    miss = table.lookup("DELETE", "/agents")
    assert isinstance(miss, RouteMiss)
    assert miss.allow == ("GET", "POST")
    with pytest.raises(MethodNotAllowedError):
        table.match("DELETE", "/agents")


@pytest.mark.parametrize(
    "pattern",
    ["health", "/a/{x:path}/b", "/a/{x}/{x}", "/a/{bad-name}", "/a/b{c}", "/a/{"],
)
def test_bad_patterns_are_refused(pattern: str) -> None:
    with pytest.raises(ValueError, match=r"pattern|segment|parameter"):
        Router().get(pattern, handler("x"))


def test_duplicate_routes_and_bad_methods_are_refused(table: Router) -> None:
    with pytest.raises(ValueError, match="duplicate route"):
        table.get("/agents/{other}", handler("x"))
    with pytest.raises(ValueError, match="bad HTTP method"):
        table.add("G E T", "/x", handler("x"))
    assert len(table.routes) == 9


def test_match_cost_is_per_segment_not_per_route() -> None:
    router = Router()
    for i in range(2000):
        router.get(f"/r{i}/{{x}}", handler(f"h{i}"))
    assert router.match("GET", "/r1999/v").params == {"x": "v"}


@pytest.mark.parametrize(
    ("prefix", "normalized"), [("", ""), ("/", ""), ("paglets", "/paglets"), ("/paglets/", "/paglets")]
)
def test_normalize_prefix(prefix: str, normalized: str) -> None:
    assert normalize_prefix(prefix) == normalized


@pytest.mark.parametrize(
    ("path", "stripped"),
    [
        ("/paglets/health", "/health"),
        ("/paglets", "/"),
        ("/paglets/", "/"),
        ("/health", "/health"),
        ("/pagletsx/health", "/pagletsx/health"),
    ],
)
def test_strip_prefix(path: str, stripped: str) -> None:
    assert strip_prefix(path, "/paglets") == stripped
    assert strip_prefix(path, "") == path


def test_split_path() -> None:
    assert split_path("/") == []
    assert split_path("/a/b/") == ["a", "b", ""]
