"""Calling a resident service on a host from a command, and choosing which hosts to ask.

A service is called at its well-known agent id (``service.<name>``, what the bundled launch config
uses); a host that runs it under another id is asked for its record (``GET /services?name=``) and the
call is repeated there. A host that does not run the service at all gives a clear error naming it.
"""

from __future__ import annotations

import argparse
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from paglets.cli._common import CommandError, api_key, option

if TYPE_CHECKING:
    from paglets.cli._entry import Entry
    from paglets.remote.client import HostClient
    from paglets.services.contracts import ServiceOperation

__all__ = ["call_service", "connect", "target_hosts"]


def connect(args: argparse.Namespace, timeout: float) -> tuple[HostClient, Entry]:
    """A client with the command's API key, and the entry host (see :mod:`paglets.cli._entry`)."""
    from paglets.cli._entry import find_entry
    from paglets.remote.client import HostClient

    client = HostClient(timeout=timeout, api_key=api_key(args))
    entry = find_entry(client, option(args, "entry", None), multicast=bool(option(args, "multicast", False)))
    return client, entry


def target_hosts(entry: Entry, names: list[str] | None) -> tuple[list[tuple[str, str]], dict[str, str]]:
    """``(name, url)`` of the hosts to ask, and the known hosts left out because they are offline.

    ``names`` (from ``--host``) restricts the choice; an unknown name is a usage error listing the known
    ones, and an offline one is reported rather than asked.
    """
    chosen: list[tuple[str, str]] = []
    offline: dict[str, str] = {}
    if names:
        for wanted in names:
            host = entry.lookup(wanted)
            if host is None:
                raise CommandError(f"unknown host {wanted!r} (known: {entry.names()})")
            pair = (str(host["name"]), str(host["url"]).rstrip("/"))
            if not host.get("online"):
                offline[pair[0]] = "offline (not asked)"
            elif pair not in chosen:
                chosen.append(pair)
        return chosen, offline
    for host in sorted(entry.hosts, key=lambda h: str(h.get("name"))):
        name = str(host.get("name"))
        if host.get("online"):
            chosen.append((name, str(host["url"]).rstrip("/")))
        else:
            offline[name] = "offline (not asked)"
    return chosen, offline


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
