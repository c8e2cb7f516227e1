"""HTTP routes of mesh membership (proto/PROTOCOL.md §6): ``GET /hosts`` and ``POST /hosts/join``.

- ``GET /hosts`` → 200 ``{"hosts": [HostRef wire, ...]}``: self and offline members included, sorted by
  (name, url); each ref carries ``age`` when known. ``?rejected=1`` adds ``"rejected"``: the hosts
  refused for another code version (their reason in ``error``).
- ``POST /hosts/join`` with a JSON body (the caller's ``HostRef`` wire, optionally with
  ``known_hosts``: a list of refs it knows) → 200 ``{"hosts": [...], "host": <our ref>}`` when the
  caller runs our code version; 409 with the usual error body (``error_type``, ``error``, ``code``)
  plus ``host`` (our ref) when it does not; 400 for a malformed body or ref; 413 above
  :data:`MAX_JOIN_BODY`.

Bodies are JSON in the binary-tag form of ``proto/PROTOCOL.md`` (``paglets.wire.jsonbin``); refs never
hold binary values, so that is plain JSON in practice.
"""

from __future__ import annotations

from typing import Final

from paglets.core.errors import HostError
from paglets.http.messages import Request, Response
from paglets.http.routing import Router
from paglets.remote.mesh import MAX_GOSSIP_REFS, MeshRegistry
from paglets.wire.jsonbin import decode_json, encode_json
from paglets.wire.limits import KiB

__all__ = ["MAX_JOIN_BODY", "build_mesh_routes"]

#: Largest join body read: ``MAX_GOSSIP_REFS`` refs of up to 8 KiB each (real refs are a few hundred
#: bytes; a mesh of hosts with huge property bags is refused with 413 rather than buffered).
MAX_JOIN_BODY: Final = MAX_GOSSIP_REFS * 8 * KiB


def _json(obj: object, status: int = 200) -> Response:
    return Response(status, encode_json(obj), "application/json")


def _decode_join(raw: bytes) -> object:
    if not raw.strip():
        raise HostError("POST /hosts/join needs the caller's host ref as a JSON object")
    return decode_json(raw)


def build_mesh_routes(router: Router, registry: MeshRegistry) -> None:
    """Register the mesh routes of ``registry`` on ``router``."""

    async def list_hosts(request: Request) -> Response:
        body: dict[str, object] = {"hosts": [ref.to_wire() for ref in registry.hosts()]}
        if request.query.get("rejected", "").lower() in ("1", "true", "yes"):
            body["rejected"] = [ref.to_wire() for ref in registry.rejected()]
        return _json(body)

    async def join(request: Request) -> Response:
        payload = await request.json(MAX_JOIN_BODY, decode=_decode_join)  # large ones in a worker thread
        reply = registry.accept_join(payload)
        return _json(reply.body, reply.status)

    router.get("/hosts", list_hosts)
    router.post("/hosts/join", join)
