"""HTTP routes of the service registry (proto/PROTOCOL.md §6), registered on a host's route table.

- ``GET /services?name=&capability=&scope=local|mesh`` → ``{"services": [record...]}``
- ``POST /agents/{agent_id}/services`` with ``{name, capabilities?, metadata?, scope?="local", ttl?}``
  → ``{"service": record}``
- ``POST /agents/{agent_id}/unadvertise-service`` with ``{name}`` → ``{"services": [removed...]}``

Rules:

- ``GET /services`` answers from this host only and never fans out: ``scope=local`` (the default) lists
  every record of the host, ``scope=mesh`` only its mesh-scoped records (what peers ask for). Empty
  ``name``/``capability`` parameters mean "any".
- Advertising requires the paglet to be active on this host (``is_active``), else 404
  ``InvalidAgentError``; the record names this host (``host_name()``, ``host_address()``). Unadvertising
  does not: a record must stay removable after its paglet left.
- Bodies are decoded once into their request Struct (``paglets.wire.requests``), at most
  ``MAX_SERVICE_BODY`` bytes: a field of the wrong type is a 400 ``RequestError`` naming it, a bound
  exceeded a 413.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, Final, TypeVar

import msgspec

from paglets.core.errors import HostError, InvalidAgentError
from paglets.core.runtime_values import ServiceScope, enum_from_wire
from paglets.http.messages import Request, Response
from paglets.http.routing import Router
from paglets.services.registry import MAX_SERVICE_METADATA, ServiceRegistry
from paglets.wire.jsonbin import encode_json
from paglets.wire.limits import KiB
from paglets.wire.requests import AdvertiseRequest, UnadvertiseRequest, decode_request

__all__ = ["MAX_SERVICE_BODY", "build_service_routes"]

S = TypeVar("S", bound=msgspec.Struct)

#: Largest advertisement body: the metadata bound plus room for the name and the capabilities.
MAX_SERVICE_BODY: Final = MAX_SERVICE_METADATA + 192 * KiB


def _json(obj: Any) -> Response:
    return Response(200, encode_json(obj), "application/json")


async def _read(request: Request, cls: type[S]) -> S:
    """The body decoded as ``cls`` (large bodies in the server's decoder threads)."""
    body: S = await request.json(
        MAX_SERVICE_BODY, decode=partial(decode_request, cls=cls, max_bytes=MAX_SERVICE_BODY)
    )
    return body


def _scope(value: object, *, default: ServiceScope = ServiceScope.LOCAL) -> ServiceScope:
    if value is None or value == "":
        return default
    try:
        return enum_from_wire(ServiceScope, value, "scope")
    except ValueError as exc:
        raise HostError(str(exc)) from None


def build_service_routes(
    router: Router,
    registry: ServiceRegistry,
    *,
    host_name: Callable[[], str],
    host_address: Callable[[], str],
    is_active: Callable[[str], bool],
) -> None:
    """Register the service routes of ``registry`` on ``router`` (see the module docstring)."""

    async def list_services(request: Request) -> Response:
        query = request.query
        scope = _scope(query.get("scope"))
        records = registry.lookup(
            query.get("name") or None,
            capability=query.get("capability") or None,
            scope=ServiceScope.MESH if scope is ServiceScope.MESH else None,
        )
        return _json({"services": [record.to_wire() for record in records]})

    async def advertise(request: Request) -> Response:
        agent_id = request.path_params["agent_id"]
        body = await _read(request, AdvertiseRequest)
        scope = _scope(body.scope)
        if not is_active(agent_id):
            raise InvalidAgentError(f"no active paglet {agent_id} on this host")
        record = registry.advertise_service(
            agent_id,
            body.name,
            host_name=host_name(),
            host_url=host_address(),
            capabilities=body.capabilities,
            metadata=body.metadata,
            scope=scope,
            ttl=body.ttl,
        )
        return _json({"service": record.to_wire()})

    async def unadvertise(request: Request) -> Response:
        agent_id = request.path_params["agent_id"]
        body = await _read(request, UnadvertiseRequest)
        removed = registry.unadvertise(body.name, agent_id)
        return _json({"services": [record.to_wire() for record in removed]})

    router.get("/services", list_services)
    router.post("/agents/{agent_id}/services", advertise)
    router.post("/agents/{agent_id}/unadvertise-service", unadvertise)
