"""The live web dashboard at ``/dashboard`` and ``GET /metrics`` (docs/guide/asyncio.md).

The dashboard is three static files shipped in the package (``paglets/runtime/dashboard/``: HTML,
JavaScript, CSS; no build step) that poll the host's JSON API from the browser. They hold no data, so
they are served without the API key (:func:`open_request`); the page asks for the key when the API
answers 401, keeps it in the tab's ``sessionStorage`` and sends it as ``Authorization: Bearer`` with every
``fetch``. ``GET /`` from a browser (``Accept`` naming ``text/html``) is redirected there; JSON clients keep
the index.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from typing import Final

from paglets.core.errors import HostError
from paglets.http.messages import Request, Response
from paglets.http.routing import Router
from paglets.runtime._metrics import CONTENT_TYPE

__all__ = ["add_dashboard_routes", "open_request", "wants_html"]

#: The files of the dashboard and their content types (nothing else is served from the directory).
ASSETS: Final = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}
_SECURITY_HEADERS: Final = [
    ("Cache-Control", "no-cache"),
    ("X-Content-Type-Options", "nosniff"),
    ("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'"),
]


def _asset(name: str) -> bytes:
    return resources.files("paglets.runtime").joinpath("dashboard", name).read_bytes()


def wants_html(accept: bytes | str | None) -> bool:
    """Whether an ``Accept`` header asks for a page (a browser) rather than JSON."""
    if not accept:
        return False
    text = accept.decode("latin-1") if isinstance(accept, bytes) else accept
    return "text/html" in text.lower()


def open_request(method: str, path: str, headers: list[tuple[bytes, bytes]]) -> bool:
    """Requests served without the API key: the dashboard's files, and ``GET /`` from a browser (which
    only redirects to them)."""
    if method not in ("GET", "HEAD"):
        return False
    if path == "/dashboard" or (path.startswith("/dashboard/") and path[len("/dashboard/") :] in ASSETS):
        return True
    return path == "/" and wants_html(dict(headers).get(b"accept"))


def add_dashboard_routes(router: Router, *, address: Callable[[], str], metrics: Callable[[], str]) -> None:
    """``/dashboard``, its files, and ``/metrics`` (which, like the JSON API, needs the key)."""

    async def page(request: Request) -> Response:
        return Response(200, _asset("index.html"), ASSETS["index.html"], list(_SECURITY_HEADERS))

    async def asset(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in ASSETS:
            raise HostError(f"no dashboard file {name!r}")
        return Response(200, _asset(name), ASSETS[name], list(_SECURITY_HEADERS))

    async def exposition(request: Request) -> Response:
        return Response(200, metrics().encode(), CONTENT_TYPE)

    router.get("/dashboard", page)
    router.get("/dashboard/{name}", asset)
    router.get("/metrics", exposition)


def redirect_to_dashboard(address: str) -> Response:
    return Response(303, b"", "text/plain", [("Location", f"{address}/dashboard")])
