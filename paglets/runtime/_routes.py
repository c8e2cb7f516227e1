"""The HTTP control plane of a host (proto/PROTOCOL.md §6): a route table of handlers over the host's core.

Handlers run on the host's event loop and call the async core directly. JSON bodies are decoded once
into the route's request Struct (``paglets.wire.requests``): a wrong type or a missing field is a 400
naming the field, before the handler runs. Binary values use the tag form of ``proto/PROTOCOL.md``.
Bodies are at most ``MAX_CONTROL_BODY`` bytes, except on the two routes that carry user values
(messages, creations with an inline state: ``MAX_JSON_BODY``); large ones are decoded (and a message
converted to its IPC form) in the server's decoder threads (``Request.json(decode=...)``), so the loop
keeps serving meanwhile. Errors are raised as ``PagletError`` subclasses; the HTTP server turns them into
``{error_type, error}`` bodies with the status each class declares.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any, Final, TypeVar

import msgspec

from paglets import __version__
from paglets.core._ids import check_agent_id
from paglets.core.errors import HostError, PagletError
from paglets.http.messages import Request, Response
from paglets.http.routing import Router
from paglets.remote._mesh_routes import build_mesh_routes
from paglets.runtime._artifact_routes import build_artifact_routes
from paglets.runtime._movement import ENVELOPE_CONTENT_TYPE
from paglets.runtime._paglets import message_from_request
from paglets.services._routes import build_service_routes
from paglets.wire.ipc import MessageWire
from paglets.wire.jsonbin import encode_json
from paglets.wire.limits import MAX_CONTROL_BODY, MAX_JSON_BODY, MAX_STATE_BYTES
from paglets.wire.requests import (
    CreateRequest,
    EmptyRequest,
    ForgetBatchRequest,
    ForgetRequest,
    LeaseRequest,
    MessageRequest,
    MoveRequest,
    decode_request,
)

if TYPE_CHECKING:
    from paglets.runtime.host import Host

__all__ = ["build_router"]

S = TypeVar("S", bound=msgspec.Struct)

#: What ``GET /`` links to (relation -> path), for people and programs exploring a host.
INDEX_LINKS: Final = {
    "health": "/health",
    "agents": "/agents",
    "hosts": "/hosts",
    "events": "/events",
    "services": "/services",
    "artifacts": "/artifacts",
}
#: Where the HTTP API is documented (in the source distribution).
PROTOCOL_DOC: Final = "proto/PROTOCOL.md"

#: Most events one ``GET /events`` returns.
MAX_EVENTS_PER_REQUEST: Final = 1000

_TRUE: Final = frozenset({"1", "true", "yes", "on"})


class UnsupportedMediaError(PagletError):
    http_status = 415
    code = "unsupported_media"


def _ok(obj: Any, status: int = 200) -> Response:
    return Response(status, encode_json(obj), "application/json")


def _refuse_pickle(request: Request) -> None:
    content_type = (request.header("content-type") or "").split(";")[0].strip().lower()
    if content_type == "application/x-paglets-pickle":
        raise UnsupportedMediaError("pickle bodies are refused: paglets hosts never unpickle network input")


async def _read(request: Request, cls: type[S], limit: int = MAX_CONTROL_BODY) -> S:
    """The body of ``request`` decoded as ``cls`` (one typed decode; errors name the field)."""
    _refuse_pickle(request)
    body: S = await request.json(limit, decode=partial(decode_request, cls=cls, max_bytes=limit))
    return body


def _decode_message(raw: bytes) -> tuple[MessageRequest, MessageWire]:
    """A message request and the IPC form of its message (in a decoder thread when the body is large)."""
    body = decode_request(raw, MessageRequest)
    return body, message_from_request(body.message)


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
    router = Router(param_checks={"agent_id": check_agent_id})  # a bad id in a path is a 400

    async def index(request: Request) -> Response:
        return _ok(
            {
                "name": host.name,
                "address": host.address,
                "paglets_version": __version__,
                "code_version": host.code_version,
                "protocol": PROTOCOL_DOC,
                "links": {rel: f"{host.address}{path}" for rel, path in INDEX_LINKS.items()},
            }
        )

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
        body = await _read(request, CreateRequest, MAX_JSON_BODY)
        if body.envelope is not msgspec.UNSET:
            raise UnsupportedMediaError(
                f"paglets move as binary envelopes ({ENVELOPE_CONTENT_TYPE}), not as JSON or pickle"
            )
        from paglets.runtime.host import decode_creation_state

        agent_class, state_class = _check_names(body.agent_class_name, body.state_class_name or "")
        state = decode_creation_state(state_class, body.state)
        new_id = await host.create_async(
            agent_class=agent_class,
            state_class=state_class,
            state=state,
            init=body.init,
            agent_id=None if body.agent_id is None else check_agent_id(body.agent_id),
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
            oneway=body.oneway,
            activate_if_inactive=body.activate_if_inactive,
            no_delay=body.no_delay,
            timeout=body.timeout,
        )
        return _ok({"result": result})

    async def move(request: Request) -> Response:
        op = request.path.rstrip("/").rsplit("/", 1)[-1]
        body = await _read(request, MoveRequest)
        return _ok(await host.agent_call_async(request.path_params["agent_id"], op, body.to_args()))

    async def lease(request: Request) -> Response:
        body = await _read(request, LeaseRequest)
        agent_id = check_agent_id(body.agent_id)
        return _ok(await host.resident.acquire_lease(agent_id, body.service_name, body.ttl))

    async def lease_release(request: Request) -> Response:
        await _read(request, EmptyRequest)
        return _ok({"released": host.resident.release_lease(request.path_params["lease_id"])})

    async def transfer_status(request: Request) -> Response:
        return _ok(host.movement.status(request.path_params["transfer_id"]))

    async def transfer_commit(request: Request) -> Response:
        await _read(request, EmptyRequest)
        return _ok(await host.movement.commit(request.path_params["transfer_id"]))

    async def transfer_abort(request: Request) -> Response:
        await _read(request, EmptyRequest)
        answer = await host.movement.abort(request.path_params["transfer_id"])
        return _ok({"ok": True, **answer})

    async def transfer_forget_batch(request: Request) -> Response:
        body = await _read(request, ForgetBatchRequest)
        for transfer_id in body.transfer_ids:
            await host.movement.forget(transfer_id)
        return _ok({"ok": True, "forgotten": len(body.transfer_ids)})

    async def transfer_forget(request: Request) -> Response:
        body = await _read(request, ForgetRequest)
        return _ok(await host.movement.forget(request.path_params["transfer_id"], settle=body.settle))

    async def dispose(request: Request) -> Response:
        await _read(request, EmptyRequest)
        await host.agent_call_async(request.path_params["agent_id"], "dispose", {})
        return _ok({"ok": True})

    router.get("/", index)
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
    router.post("/transfers/{transfer_id}/forget", transfer_forget)
    router.post("/transfers/forget", transfer_forget_batch)
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
