"""No field of any route can make a host answer 500: every JSON field of every route, and the query
parameters of the GET routes, are sent with values of the wrong type or out of range (``"target": 5``,
priorities beyond int64, ...). Each answer must be a 4xx with a JSON error body, and the host keeps
serving (checked without timing: the paglet still answers, ``/health`` still works)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import msgspec
from _paglets import Counter

from paglets.core.messages import Message
from paglets.http.client import HttpClient
from paglets.remote.mesh import HostRef
from paglets.runtime._routes import build_router
from paglets.runtime.host import Host
from paglets.wire import requests

#: Values of the wrong type for nearly every field, and numbers outside what any field takes.
BAD_VALUES: list[Any] = [5, 2**70, -(2**70), 1.5e308, True, [1], {"k": [1]}, "x"]


def _field_names() -> list[str]:
    names: set[str] = {"known_hosts"}
    for obj in vars(requests).values():
        if isinstance(obj, type) and issubclass(obj, msgspec.Struct) and obj is not msgspec.Struct:
            names.update(obj.__struct_fields__)
    names.update(HostRef.__dataclass_fields__ if hasattr(HostRef, "__dataclass_fields__") else ())
    names.update(["url", "name", "code_version", "message", "ticket", "request", "target"])
    return sorted(names)


def _path(pattern: str, agent_id: str) -> str:
    return (
        pattern.replace("{agent_id}", agent_id)
        .replace("{transfer_id}", uuid.uuid4().hex)
        .replace("{lease_id}", "no-such-lease")
        .replace("{artifact_id}", uuid.uuid4().hex)
    )


def _check(status: int, answer: Any, where: str) -> None:
    assert 400 <= status < 500, (where, status, answer)
    assert isinstance(answer, dict), (where, answer)
    assert isinstance(answer.get("error_type"), str), (where, answer)


def test_no_json_field_of_any_route_gives_a_500(host: Host) -> None:
    fields = _field_names()
    client = HttpClient()
    try:
        for route in build_router(host).routes:
            if route.method != "POST" or route.pattern == "/artifacts":  # raw bytes, not JSON
                continue
            agent_id = host.create(Counter).agent_id
            values = [v for v in BAD_VALUES if not (route.pattern == "/hosts/join" and isinstance(v, str))]
            bodies: list[Any] = [dict.fromkeys(fields, value) for value in values]
            bodies += [{field: value} for field in fields for value in values]
            bodies += [[1], "x", 5, None]  # not an object at all
            if route.pattern.endswith("/messages"):
                bodies += [
                    {"message": {"kind": "add", name: value}, "oneway": oneway}
                    for name in requests.MessageBody.__struct_fields__
                    for value in values
                    for oneway in (False, True)
                ]
                pid = host.deliver_message(agent_id, Message("pid"))
            for body in bodies:
                url = host.address + _path(route.pattern, agent_id)
                response = client.request(
                    "POST", url, body=json.dumps(body).encode(), content_type="application/json"
                )
                if response.status < 400:
                    continue  # some combinations are valid requests (e.g. {"ttl": 5})
                _check(response.status, response.json(), f"POST {route.pattern} {body!r:.200}")
            if route.pattern.endswith("/messages"):  # none of them reached the paglet's process
                assert host.deliver_message(agent_id, Message("pid")) == pid
    finally:
        client.close()
    probe = host.create(Counter).agent_id
    assert host.deliver_message(probe, Message("add")) == 1
    assert host.health()["name"] == "alpha"


def test_no_query_parameter_gives_a_500(host: Host) -> None:
    agent_id = host.create(Counter).agent_id
    queries = [
        "since=x&limit=y",
        f"since={2**70}&limit={-(2**70)}",
        "state=%00&include_state=%FF",
        "name=%00&capability=%5B1%5D&scope=zz",
        "owner_agent_id=%00%0A",
        "state=all&include_state=1&since=-1",
    ]
    client = HttpClient()
    try:
        for route in build_router(host).routes:
            if route.method != "GET":
                continue
            for query in queries:
                url = f"{host.address}{_path(route.pattern, agent_id)}?{query}"
                response = client.request("GET", url)
                assert response.status < 500, (route.pattern, query, response.body[:300])
    finally:
        client.close()
    assert host.deliver_message(agent_id, Message("add")) == 1
