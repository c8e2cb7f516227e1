"""HTTP routes of mesh membership (proto/PROTOCOL.md §6): ``GET /hosts``, ``POST /hosts/join`` and
``POST /hosts/probe``.

- ``GET /hosts`` → 200 ``{"hosts": [HostRef wire, ...]}``: self and offline members included, sorted by
  (name, url); each ref carries ``age`` when known. ``?rejected=1`` adds ``"rejected"``: the hosts
  refused for another code version (their reason in ``error``).
- ``POST /hosts/join`` (the protocol's ping, and a join) with a JSON body: the caller's ``HostRef`` wire
  plus, optionally, ``incarnation``, ``updates`` (piggybacked updates), ``sync`` and ``known_hosts``
  (its full list) → 200 ``{"host": <our ref>, "hosts": [...], "updates": [...]}`` when the caller runs
  our code version (``hosts``: our full list for a sync or a caller without ``incarnation``, else
  empty); 409 with the usual error body (``error_type``, ``error``, ``code``) plus ``host`` (our ref)
  when it does not; 400 for a malformed body or ref; 413 above :data:`MAX_JOIN_BODY`.
- ``POST /hosts/probe`` ``{"target": <member url>, "timeout": seconds}`` (an indirect probe) → 200
  ``{"ok": bool}`` once we pinged the member for the caller; 400 when malformed, 413 above
  :data:`MAX_PROBE_BODY`.

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

__all__ = ["MAX_JOIN_BODY", "MAX_PROBE_BODY", "build_mesh_routes"]

#: Largest join body read: ``MAX_GOSSIP_REFS`` refs of up to 8 KiB each (real refs are a few hundred
#: bytes; a mesh of hosts with huge property bags is refused with 413 rather than buffered).
MAX_JOIN_BODY: Final = MAX_GOSSIP_REFS * 8 * KiB
#: Largest indirect-probe body read (a URL and a number).
MAX_PROBE_BODY: Final = 4 * KiB


def _json(obj: object, status: int = 200) -> Response:
    return Response(status, encode_json(obj), "application/json")


def _decode_probe(raw: bytes) -> object:
    if not raw.strip():
        raise HostError("POST /hosts/probe needs {'target': <member url>}")
    return decode_json(raw)


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

    async def probe(request: Request) -> Response:
        payload = await request.json(MAX_PROBE_BODY, decode=_decode_probe)
        return _json(await registry.accept_probe(payload))

    router.get("/hosts", list_hosts)
    router.post("/hosts/join", join)
    router.post("/hosts/probe", probe)
