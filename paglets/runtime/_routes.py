"""The HTTP control plane of a host (contract §6): a route table of handlers over the host's core.

Handlers run on the host's event loop and call the async core directly (no thread hops). Bodies are
JSON with the binary tag form of ``proto/PROTOCOL.md`` (``paglets.wire.jsonbin``), at most
``MAX_CONTROL_BODY`` bytes, except for the two routes that carry user values (messages, creations with
an inline state: ``MAX_JSON_BODY``). Large bodies are decoded, checked and converted in the server's
decoder threads (``Request.json(decode=...)``), so the loop keeps serving while they are. Errors are raised as
``PagletError`` subclasses; the HTTP server turns them into ``{error_type, error}`` bodies with the
status each class declares.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Final

from paglets.core.errors import HostError, PagletError, SerializationError
from paglets.http.messages import Request, Response
from paglets.http.routing import Router
from paglets.remote._mesh_routes import build_mesh_routes
from paglets.runtime._artifact_routes import build_artifact_routes
from paglets.runtime._movement import ENVELOPE_CONTENT_TYPE
from paglets.runtime._paglets import message_wire
from paglets.services._routes import build_service_routes
from paglets.wire.ipc import MessageWire
from paglets.wire.jsonbin import decode_json, encode_json
from paglets.wire.limits import MAX_CONTROL_BODY, MAX_JSON_BODY, MAX_STATE_BYTES

if TYPE_CHECKING:
    from paglets.runtime.host import Host

__all__ = ["build_router"]

#: Most events one ``GET /events`` returns.
MAX_EVENTS_PER_REQUEST: Final = 1000

_TRUE: Final = frozenset({"1", "true", "yes", "on"})


class UnsupportedMediaError(PagletError):
    http_status = 415
    code = "unsupported_media"


def _ok(obj: Any, status: int = 200) -> Response:
    return Response(status, encode_json(obj), "application/json")


#: What a JSON object body starts with (or a body of only white space), checked before decoding.
_OBJECT_START: Final = re.compile(rb"[ \t\r\n]*(\{|\Z)")


def _decode_object(raw: bytes) -> dict[str, Any]:
    """The JSON object in ``raw`` (``{}`` for an empty body); anything else is refused before decoding."""
    start = _OBJECT_START.match(raw)
    if start is None:
        raise HostError("request body must be a JSON object")
    if not start.group(1):
        return {}
    data = decode_json(raw)
    if not isinstance(data, dict):  # pragma: no cover - a document starting with "{" is an object
        raise HostError("request body must be a JSON object")
    return data


def _refuse_pickle(request: Request) -> None:
    content_type = (request.header("content-type") or "").split(";")[0].strip().lower()
    if content_type == "application/x-paglets-pickle":
        raise UnsupportedMediaError("pickle bodies are refused: paglets hosts never unpickle network input")


async def _body(request: Request, limit: int = MAX_CONTROL_BODY) -> dict[str, Any]:
    _refuse_pickle(request)
    data: dict[str, Any] = await request.json(limit, decode=_decode_object)
    return data


def _decode_message(raw: bytes) -> tuple[dict[str, Any], MessageWire]:
    """A message body and the IPC form of its message (in a decoder thread when the body is large)."""
    body = _decode_object(raw)
    wire = body.get("message")
    if not isinstance(wire, dict) or not isinstance(wire.get("kind"), str):
        raise HostError("message must be an object with a string 'kind'")
    try:
        return body, message_wire(wire)
    except (TypeError, ValueError) as exc:
        raise SerializationError(f"malformed message: {exc}") from exc


def _int_query(request: Request, name: str, default: int, *, low: int, high: int) -> int:
    text = request.query.get(name)
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise HostError(f"query parameter {name!r} must be an integer, got {text!r}") from None
    return max(low, min(high, value))


def build_router(host: Host) -> Router:
    """Every route of ``host``."""
    router = Router()

    async def health(request: Request) -> Response:
        return _ok(host.health())

    async def events(request: Request) -> Response:
        since = _int_query(request, "since", 0, low=0, high=2**62)
        limit = _int_query(request, "limit", 100, low=0, high=MAX_EVENTS_PER_REQUEST)
        return _ok({"events": [e.to_wire() for e in host.events.events_since(since, limit)]})

    async def list_agents(request: Request) -> Response:
        state = request.query.get("state", "active")
        if state not in ("active", "inactive", "all"):
            raise HostError(f"state must be active, inactive or all, not {state!r}")
        include_state = request.query.get("include_state", "").lower() in _TRUE
        agents = await host.list_agents_async(
            active=state in ("active", "all"),
            inactive=state in ("inactive", "all"),
            include_state=include_state,
        )
        return _ok({"agents": agents})

    async def create_agent(request: Request) -> Response:
        content_type = (request.header("content-type") or "").split(";")[0].strip().lower()
        if content_type == ENVELOPE_CONTENT_TYPE:
            return _ok(await host.movement.receive(request.stream(), max_state_bytes=MAX_STATE_BYTES))
        body = await _body(request, MAX_JSON_BODY)
        if "envelope" in body:
            raise UnsupportedMediaError(
                f"paglets move as binary envelopes ({ENVELOPE_CONTENT_TYPE}), not as JSON or pickle"
            )
        from paglets.runtime.host import decode_creation_state

        try:
            agent_class = str(body["agent_class_name"])
            state_class = str(body.get("state_class_name") or "")
        except KeyError:
            raise HostError("creation needs agent_class_name") from None
        agent_class, state_class = _check_names(agent_class, state_class)
        state = decode_creation_state(state_class, body.get("state"))
        agent_id = body.get("agent_id")
        if agent_id is not None and not isinstance(agent_id, str):
            raise HostError("agent_id must be a string")
        new_id = await host.create_async(
            agent_class=agent_class,
            state_class=state_class,
            state=state,
            init=body.get("init"),
            agent_id=agent_id,
        )
        return _ok({"proxy": {"host_url": host.address, "agent_id": new_id}})

    async def agent_info(request: Request) -> Response:
        return _ok(await host.agent_call_async(request.path_params["agent_id"], "info", {}))

    async def agent_state(request: Request) -> Response:
        agent_id = request.path_params["agent_id"]
        summary = await host.agent_call_async(agent_id, "info", {})
        summary.update(await host._state_item(agent_id))
        if "state_error" in summary and summary.get("crashed"):
            summary.pop("state_error")
        return _ok(summary)

    async def messages(request: Request) -> Response:
        agent_id = request.path_params["agent_id"]
        _refuse_pickle(request)
        body, message = await request.json(MAX_JSON_BODY, decode=_decode_message)
        result = await host.deliver_async(
            agent_id,
            message,
            oneway=bool(body.get("oneway")),
            activate_if_inactive=bool(body.get("activate_if_inactive", True)),
            no_delay=bool(body.get("no_delay")),
        )
        return _ok({"result": result})

    async def move(request: Request) -> Response:
        op = request.path.rstrip("/").rsplit("/", 1)[-1]
        body = await _body(request)
        return _ok(await host.agent_call_async(request.path_params["agent_id"], op, body))

    async def lease(request: Request) -> Response:
        body = await _body(request)
        agent_id, service_name = body.get("agent_id"), body.get("service_name")
        if not isinstance(agent_id, str) or not isinstance(service_name, str):
            raise HostError("a lease needs agent_id and service_name")
        ttl = body.get("ttl", 60.0)
        if isinstance(ttl, bool) or not isinstance(ttl, (int, float)):
            raise HostError("ttl must be a number of seconds")
        return _ok(await host.resident.acquire_lease(agent_id, service_name, float(ttl)))

    async def lease_release(request: Request) -> Response:
        await _body(request)
        return _ok({"released": host.resident.release_lease(request.path_params["lease_id"])})

    async def transfer_status(request: Request) -> Response:
        return _ok(host.movement.status(request.path_params["transfer_id"]))

    async def transfer_commit(request: Request) -> Response:
        await _body(request)
        return _ok(await host.movement.commit(request.path_params["transfer_id"]))

    async def transfer_abort(request: Request) -> Response:
        await _body(request)
        await host.movement.abort(request.path_params["transfer_id"])
        return _ok({"ok": True})

    async def dispose(request: Request) -> Response:
        await _body(request)
        await host.agent_call_async(request.path_params["agent_id"], "dispose", {})
        return _ok({"ok": True})

    router.get("/health", health)
    router.get("/events", events)
    build_mesh_routes(router, host.mesh)
    router.get("/agents", list_agents)
    router.post("/agents", create_agent)
    router.get("/agents/{agent_id}", agent_info)
    router.get("/agents/{agent_id}/state", agent_state)
    router.post("/agents/{agent_id}/messages", messages)
    router.post("/agents/{agent_id}/dispose", dispose)
    for op in ("dispatch", "clone", "retract", "deactivate", "activate"):
        router.post(f"/agents/{{agent_id}}/{op}", move)
    build_service_routes(
        router,
        host.services.registry,
        host_name=lambda: host.name,
        host_address=lambda: host.address,
        is_active=host._is_active,
    )
    build_artifact_routes(router, host.artifacts)
    router.post("/services/leases", lease)
    router.post("/services/leases/{lease_id}/release", lease_release)
    router.get("/transfers/{transfer_id}", transfer_status)
    router.post("/transfers/{transfer_id}/commit", transfer_commit)
    router.post("/transfers/{transfer_id}/abort", transfer_abort)
    return router


def _check_names(agent_class: str, state_class: str) -> tuple[str, str]:
    """Resolve and check a creation request's class names (unknown class → 400 with the reason)."""
    from paglets.runtime.host import _check_paglet_class
    from paglets.serialization.codec import qualified_name, resolve_qualified_name

    cls = resolve_qualified_name(agent_class)
    agent_name, state_name = _check_paglet_class(cls)
    if state_class and state_class != state_name:
        state_cls = resolve_qualified_name(state_class)
        if qualified_name(state_cls) != state_name:
            raise HostError(f"{agent_name} has state class {state_name}, not {state_class}")
    return agent_name, state_name
