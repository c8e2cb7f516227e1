"""The HTTP control plane of a host (``proto/PROTOCOL.md`` §6): a route table over its control table.

An HTTP route that is a control operation (``GET /agents``, ``/agents/{id}``, ``/state``, ``/messages``,
``/dispatch``, ``/clone``, ``/retract``, ``/deactivate``, ``/activate``, ``/checkpoint``, ``/dispose``,
``POST /agents``,
``/health``, leases) decodes its JSON body once into its HTTP request Struct (``paglets.wire.requests``;
a wrong type or a missing field is a 400 naming the field, before anything runs), builds the typed
request of ``paglets.wire.control`` and calls the host's ``ControlTable``, the same handler that serves
paglet processes and in-process proxies; the reply Struct is the JSON answer. Binary values use the tag
form of ``proto/PROTOCOL.md``. Bodies are at most ``MAX_CONTROL_BODY`` bytes, except on the two routes
that carry user values (messages, creations with an inline state: ``MAX_JSON_BODY``); large ones are
decoded, checked and encoded for the paglet (a message) or its process (a state) in the server's decoder
threads (``Request.json(decode=...)``), so the loop keeps serving meanwhile and never holds a large
value as objects. Errors are raised as ``PagletError`` subclasses; the HTTP server turns them into
``{error_type, error}`` bodies with the status each class declares.

Routes that are not control operations of the table: ``GET /``, ``/events``, the movement hand-over
(envelopes, ``/transfers``), the mesh (``paglets.remote._mesh_routes``), the service registry
(``paglets.services._routes``) and artifacts (``paglets.runtime._artifact_routes``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from functools import partial
from typing import Any, Final, Protocol, TypeVar

import msgspec

from paglets import __version__
from paglets.artifacts import ArtifactStore
from paglets.core._ids import check_agent_id
from paglets.core.context_events import ContextEventLog
from paglets.core.errors import HostError, PagletError
from paglets.http.messages import Request, Response
from paglets.http.routing import Handler, Router
from paglets.remote._mesh_routes import build_mesh_routes
from paglets.remote.mesh import MeshRegistry
from paglets.runtime._artifact_routes import build_artifact_routes
from paglets.runtime._control import ControlTable
from paglets.runtime._creation import check_class_names, decode_creation_state
from paglets.runtime._dashboard import add_dashboard_routes, redirect_to_dashboard, wants_html
from paglets.runtime._movement import ENVELOPE_CONTENT_TYPE
from paglets.runtime._routing import encode_request_message
from paglets.services._routes import build_service_routes
from paglets.services.registry import ServiceRegistry
from paglets.wire.control import (
    AcquireLease,
    ActivateAgent,
    AgentInfo,
    AgentStateInfo,
    CheckpointAgent,
    CloneAgent,
    CreateAgent,
    DeactivateAgent,
    DeliverMessage,
    DispatchAgent,
    DisposeAgent,
    HostHealth,
    ListAgents,
    ProxyReply,
    ReleaseLease,
    RetractAgent,
)
from paglets.wire.control import (
    Request as ControlRequest,
)
from paglets.wire.jsonbin import BINARY_TAG, encode_json
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
    "metrics": "/metrics",
    "dashboard": "/dashboard",
}
#: Where the HTTP API is documented (in the source distribution).
PROTOCOL_DOC: Final = "proto/PROTOCOL.md"

#: Most events one ``GET /events`` returns.
MAX_EVENTS_PER_REQUEST: Final = 1000

_TRUE: Final = frozenset({"1", "true", "yes", "on"})
#: A JSON body without this key (nor a ``\u`` escape that could spell it) holds no binary values
#: (``proto/PROTOCOL.md`` §3.2), so no ``bytearray``.
_BINARY_TAG_BYTES: Final = BINARY_TAG.encode()


class UnsupportedMediaError(PagletError):
    http_status = 415
    code = "unsupported_media"


class Movement(Protocol):
    """The hand-over routes of the movement engine (``MovementEngine``)."""

    async def receive(self, chunks: AsyncIterator[Any], *, max_state_bytes: int) -> Any: ...
    def status(self, transfer_id: str) -> Any: ...
    async def commit(self, transfer_id: str) -> Any: ...
    async def abort(self, transfer_id: str) -> dict[str, Any]: ...
    async def forget(self, transfer_id: str, *, settle: bool = False) -> Any: ...


def _ok(obj: object, status: int = 200) -> Response:
    return Response(status, encode_json(obj), "application/json")


def _content_type(request: Request) -> str:
    return (request.header("content-type") or "").split(";")[0].strip().lower()


def _refuse_pickle(request: Request) -> None:
    if _content_type(request) == "application/x-paglets-pickle":
        raise UnsupportedMediaError("pickle bodies are refused: paglets hosts never unpickle network input")


async def _read(request: Request, cls: type[S], limit: int = MAX_CONTROL_BODY) -> S:
    """The body of ``request`` decoded as ``cls`` (one typed decode; errors name the field)."""
    _refuse_pickle(request)
    body: S = await request.json(limit, decode=partial(decode_request, cls=cls, max_bytes=limit))
    return body


def _decode_message(raw: bytes, *, agent_id: str) -> DeliverMessage:
    """A message request as the typed request, its message checked and encoded (in a decoder thread
    when the body is large: the objects of a large argument are made and freed there)."""
    body = decode_request(raw, MessageRequest)
    tagged = _BINARY_TAG_BYTES in raw or b"\\u" in raw  # what makes decode_request restore binary values
    message = encode_request_message(body.message, may_hold_bytearray=tagged)
    return DeliverMessage(
        agent_id,
        message.body,
        oneway=body.oneway,
        activate_if_inactive=body.activate_if_inactive,
        no_delay=body.no_delay,
        deadline=body.timeout,
    )


def _decode_creation(raw: bytes) -> CreateAgent:
    """A JSON creation as the typed request: class names checked, the state encoded (in a decoder thread
    when the body is large)."""
    body = decode_request(raw, CreateRequest, max_bytes=MAX_JSON_BODY)
    if body.envelope is not msgspec.UNSET:
        raise UnsupportedMediaError(
            f"paglets move as binary envelopes ({ENVELOPE_CONTENT_TYPE}), not as JSON or pickle"
        )
    agent_class, state_class = check_class_names(body.agent_class_name, body.state_class_name or "")
    state = decode_creation_state(state_class, body.state)
    return CreateAgent(agent_class, state_class, state, body.init, body.agent_id)


def _int_query(request: Request, name: str, default: int, *, low: int, high: int) -> int:
    text = request.query.get(name)
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise HostError(f"query parameter {name!r} must be an integer, got {text!r}") from None
    return max(low, min(high, value))


def build_router(
    *,
    name: str,
    address: Callable[[], str],
    code_version: str,
    control: ControlTable,
    events: ContextEventLog,
    movement: Movement,
    mesh: MeshRegistry,
    services: ServiceRegistry,
    is_active: Callable[[str], bool],
    artifacts: ArtifactStore,
    metrics: Callable[[], str] = lambda: "",
) -> Router:
    """Every route of a host (see the module docstring)."""
    router = Router(param_checks={"agent_id": check_agent_id})  # a bad id in a path is a 400

    async def index(request: Request) -> Response:
        here = address()
        if wants_html(request.header("accept")):  # a browser: the dashboard
            return redirect_to_dashboard(here)
        return _ok(
            {
                "name": name,
                "address": here,
                "paglets_version": __version__,
                "code_version": code_version,
                "protocol": PROTOCOL_DOC,
                "links": {rel: f"{here}{path}" for rel, path in INDEX_LINKS.items()},
            }
        )

    async def health(request: Request) -> Response:
        reply = await control.call(HostHealth())
        return _ok(reply)

    async def list_events(request: Request) -> Response:
        since = _int_query(request, "since", 0, low=0, high=2**62)
        limit = _int_query(request, "limit", 100, low=0, high=MAX_EVENTS_PER_REQUEST)
        return _ok({"events": [e.to_wire() for e in events.events_since(since, limit)]})

    async def list_agents(request: Request) -> Response:
        state = request.query.get("state", "active")
        if state not in ("active", "inactive", "all"):
            raise HostError(f"state must be active, inactive or all, not {state!r}")
        include_state = request.query.get("include_state", "").lower() in _TRUE
        query = ListAgents(state in ("active", "all"), state in ("inactive", "all"), include_state)
        return _ok({"agents": await control.call(query)})

    async def create_agent(request: Request) -> Response:
        if _content_type(request) == ENVELOPE_CONTENT_TYPE:
            return _ok(await movement.receive(request.stream(), max_state_bytes=MAX_STATE_BYTES))
        _refuse_pickle(request)
        creation: CreateAgent = await request.json(MAX_JSON_BODY, decode=_decode_creation)
        return _ok(ProxyReply(await control.call(creation)))

    async def agent_info(request: Request) -> Response:
        reply = await control.call(AgentInfo(request.path_params["agent_id"]))
        return _ok(reply)

    async def agent_state(request: Request) -> Response:
        reply = await control.call(AgentStateInfo(request.path_params["agent_id"]))
        return _ok(reply)

    async def messages(request: Request) -> Response:
        _refuse_pickle(request)
        decode = partial(_decode_message, agent_id=request.path_params["agent_id"])
        deliver: DeliverMessage = await request.json(MAX_JSON_BODY, decode=decode)
        return _ok({"result": await control.call(deliver)})

    def move(build: Callable[[str, MoveRequest], ControlRequest[Any]]) -> Handler:
        """A movement or persistence route: its body, with the agent id of its path, is the request."""

        async def handler(request: Request) -> Response:
            body = await _read(request, MoveRequest)
            return _ok(await control.call(build(request.path_params["agent_id"], body)))

        return handler

    async def dispose(request: Request) -> Response:
        await _read(request, EmptyRequest)
        reply = await control.call(DisposeAgent(request.path_params["agent_id"]))
        return _ok(reply)

    async def checkpoint(request: Request) -> Response:
        await _read(request, EmptyRequest)
        reply = await control.call(CheckpointAgent(request.path_params["agent_id"]))
        return _ok(reply)

    async def lease(request: Request) -> Response:
        body = await _read(request, LeaseRequest)
        reply = await control.call(AcquireLease(body.agent_id, body.service_name, body.ttl))
        return _ok(reply)

    async def lease_release(request: Request) -> Response:
        await _read(request, EmptyRequest)
        reply = await control.call(ReleaseLease(request.path_params["lease_id"]))
        return _ok(reply)

    async def transfer_status(request: Request) -> Response:
        return _ok(movement.status(request.path_params["transfer_id"]))

    async def transfer_commit(request: Request) -> Response:
        await _read(request, EmptyRequest)
        return _ok(await movement.commit(request.path_params["transfer_id"]))

    async def transfer_abort(request: Request) -> Response:
        await _read(request, EmptyRequest)
        answer = await movement.abort(request.path_params["transfer_id"])
        return _ok({"ok": True, **answer})

    async def transfer_forget_batch(request: Request) -> Response:
        body = await _read(request, ForgetBatchRequest)
        for transfer_id in body.transfer_ids:
            await movement.forget(transfer_id)
        return _ok({"ok": True, "forgotten": len(body.transfer_ids)})

    async def transfer_forget(request: Request) -> Response:
        body = await _read(request, ForgetRequest)
        return _ok(await movement.forget(request.path_params["transfer_id"], settle=body.settle))

    router.get("/", index)
    router.get("/health", health)
    router.get("/events", list_events)
    build_mesh_routes(router, mesh)
    router.get("/agents", list_agents)
    router.post("/agents", create_agent)
    router.get("/agents/{agent_id}", agent_info)
    router.get("/agents/{agent_id}/state", agent_state)
    router.post("/agents/{agent_id}/messages", messages)
    router.post("/agents/{agent_id}/dispose", dispose)
    router.post(
        "/agents/{agent_id}/dispatch", move(lambda a, body: DispatchAgent(a, body.target, body.ticket))
    )
    router.post("/agents/{agent_id}/clone", move(lambda a, body: CloneAgent(a, body.target, body.ticket)))
    router.post("/agents/{agent_id}/retract", move(lambda a, body: RetractAgent(a, body.target)))
    router.post("/agents/{agent_id}/deactivate", move(lambda a, body: DeactivateAgent(a, body.request)))
    router.post("/agents/{agent_id}/activate", move(lambda a, body: ActivateAgent(a)))
    router.post("/agents/{agent_id}/checkpoint", checkpoint)
    build_service_routes(router, services, host_name=lambda: name, host_address=address, is_active=is_active)
    build_artifact_routes(router, artifacts)
    add_dashboard_routes(router, address=address, metrics=metrics)
    router.post("/services/leases", lease)
    router.post("/services/leases/{lease_id}/release", lease_release)
    router.get("/transfers/{transfer_id}", transfer_status)
    router.post("/transfers/{transfer_id}/commit", transfer_commit)
    router.post("/transfers/{transfer_id}/abort", transfer_abort)
    router.post("/transfers/{transfer_id}/forget", transfer_forget)
    router.post("/transfers/forget", transfer_forget_batch)
    return router
