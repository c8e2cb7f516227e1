"""Calling a resident service on a host from a command, and choosing which hosts to ask.

A service is called at its well-known agent id (``service.<name>``, what the bundled launch config
uses); a host that runs it under another id is asked for its record (``GET /services?name=``) and the
call is repeated there. A host that does not run the service at all gives a clear error naming it.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from paglets.cli._common import CommandError, api_key, option

if TYPE_CHECKING:
    from paglets.cli._entry import Entry
    from paglets.remote.client import HostClient
    from paglets.services.contracts import ServiceOperation

__all__ = ["Targets", "call_service", "connect", "offline_note", "target_hosts"]


def connect(args: argparse.Namespace, timeout: float) -> tuple[HostClient, Entry]:
    """A client with the command's API key, and the entry host (see :mod:`paglets.cli._entry`)."""
    from paglets.cli._entry import find_entry
    from paglets.remote.client import HostClient

    client = HostClient(timeout=timeout, api_key=api_key(args))
    entry = find_entry(client, option(args, "entry", None), multicast=bool(option(args, "multicast", False)))
    return client, entry


@dataclass(slots=True)
class Targets:
    """The hosts a command asks: ``hosts`` as ``(name, url)``; ``errors`` for hosts named with ``--host``
    that cannot be asked (offline); ``offline`` for the mesh's offline hosts left out of a mesh-wide
    command (reported, but an answer without them is complete)."""

    hosts: list[tuple[str, str]] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    offline: list[str] = field(default_factory=list)


def target_hosts(entry: Entry, names: list[str] | None) -> Targets:
    """The hosts to ask: every online host of the entry's mesh, or the ``--host`` ones (``names``).

    An unknown name is a usage error listing the known ones.
    """
    targets = Targets()
    if names:
        for wanted in names:
            host = entry.lookup(wanted)
            if host is None:
                raise CommandError(f"unknown host {wanted!r} (known: {entry.names()})")
            pair = (str(host["name"]), str(host["url"]).rstrip("/"))
            if not host.get("online"):
                targets.errors[pair[0]] = f"offline according to {entry.name} (not asked)"
            elif pair not in targets.hosts:
                targets.hosts.append(pair)
        return targets
    for host in sorted(entry.hosts, key=lambda h: str(h.get("name"))):
        name = str(host.get("name"))
        if host.get("online"):
            targets.hosts.append((name, str(host["url"]).rstrip("/")))
        else:
            targets.offline.append(name)
    return targets


def call_service(
    client: HostClient,
    url: str,
    agent_id: str,
    service: str,
    operation: ServiceOperation[Any, Any],
    request: Any,
    *,
    deadline: float,
) -> Any:
    """Call ``operation`` of the ``service`` on the host at ``url`` and return the decoded reply."""
    from paglets.core.errors import InvalidAgentError
    from paglets.remote.proxy import PagletProxy

    def left() -> float:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("timed out")
        return remaining

    message = operation.to_message(request)
    try:
        reply = PagletProxy(url, agent_id, client).send(message, timeout=left())
    except InvalidAgentError:
        listed = client.get_json(f"{url}/services?name={quote(service)}", timeout=left())
        records = listed.get("services") if isinstance(listed, dict) else None
        ids = [
            str(r["proxy"]["agent_id"])
            for r in records or []
            if isinstance(r, dict) and isinstance(r.get("proxy"), dict) and r["proxy"].get("agent_id")
        ]
        if not ids or ids[0] == agent_id:
            raise CommandError(
                f"no {service} service on this host (its launch config does not enable it)"
            ) from None
        reply = PagletProxy(url, ids[0], client).send(operation.to_message(request), timeout=left())
    return operation.decode_reply(reply)


def offline_note(targets: Targets) -> dict[str, str]:
    """A note naming the offline hosts a mesh-wide command left out (empty when there are none)."""
    if not targets.offline:
        return {}
    return {"offline, not asked": ", ".join(targets.offline)}
