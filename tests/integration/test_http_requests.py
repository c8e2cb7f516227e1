"""The HTTP API as documented: ``GET /``, typed request bodies with errors that name the field, and the
example exchanges of ``proto/PROTOCOL.md`` run against a live host."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from paglets import __version__
from paglets.http.client import HttpClient
from paglets.runtime.host import Host

ROOT = Path(__file__).resolve().parents[2]
EXCHANGE = re.compile(
    r"```http\n(?P<method>[A-Z]+) (?P<path>\S+) HTTP/1.1\n(?:[^\n]+\n)*\n(?P<body>.*?)\n```\s*"
    r"```json\n(?P<answer>.*?)\n```",
    re.S,
)
MODULE = "proto_example_counter"
COUNTER = """\
from dataclasses import dataclass, field

from paglets.core.agent import Paglet, PagletState
from paglets.core.messages import Message


@dataclass
class Inner:
    x: int = 0


@dataclass
class CounterState(PagletState):
    count: int = 0
    log: list[str] = field(default_factory=list)
    inner: Inner = field(default_factory=Inner)


class Counter(Paglet[CounterState]):
    State = CounterState

    def handle_message(self, msg: Message):
        if msg.kind == "add":
            self.state.count += msg.get_arg("n", 1)
            return self.state.count
        return self.not_handled()
"""


@pytest.fixture
def host(make_host: Callable[..., Host], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Host:
    folder = tmp_path / "modules"
    folder.mkdir()
    (folder / f"{MODULE}.py").write_text(COUNTER)
    monkeypatch.syspath_prepend(str(folder))  # before the host starts: its paglet processes inherit it
    return make_host("alpha")


def _call(client: HttpClient, host: Host, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode() if body is not None else None
    response = client.request(method, host.address + path, body=data, content_type="application/json")
    return response.status, response.json()


def test_the_protocol_examples_run_as_written(host: Host) -> None:
    text = (ROOT / "proto" / "PROTOCOL.md").read_text()
    exchanges = list(EXCHANGE.finditer(text))
    assert len(exchanges) >= 3, "PROTOCOL.md lost its example exchanges"
    client = HttpClient()
    try:
        for found in exchanges:
            body = found["body"].replace("counter:", f"{MODULE}:").encode()
            expected = json.loads(found["answer"].replace("http://127.0.0.1:8765", host.address))
            status, answer = _call(client, host, found["method"], found["path"], body)
            assert status == (400 if "error_type" in expected else 200), (found["path"], answer)
            assert answer == expected, found.group(0)
    finally:
        client.close()


def test_the_root_is_a_small_index(host: Host) -> None:
    client = HttpClient()
    try:
        status, index = _call(client, host, "GET", "/")
        assert status == 200
        assert index["name"] == "alpha"
        assert index["paglets_version"] == __version__
        assert index["links"]["health"] == host.address + "/health"
        for rel in ("agents", "hosts", "events", "services", "artifacts"):
            assert _call(client, host, "GET", index["links"][rel].removeprefix(host.address))[0] == 200
    finally:
        client.close()


@pytest.mark.parametrize(
    ("path", "body", "text"),
    [
        (
            "/agents",
            {"agent_class_name": 5},
            "invalid request: field 'agent_class_name': expected str, got int",
        ),
        (
            "/agents",
            {"agent_class_name": f"{MODULE}:Counter", "state": {"count": 1, "nope": 1}},
            "invalid request: unknown field 'state.nope' (CounterState has no such field)",
        ),
        (
            "/agents",
            {"agent_class_name": f"{MODULE}:Counter", "state": {"inner": {"x": 1, "y": 2}}},
            "invalid request: unknown field 'state.inner.y'",
        ),
        (
            "/agents",
            {"agent_class_name": f"{MODULE}:Counter", "init": 1, "agent_id": ["x"]},
            "field 'agent_id'",
        ),
        (
            "/agents/{id}/messages",
            {"message": {"kind": "add"}, "oneway": "yes"},
            "field 'oneway': expected bool",
        ),
        (
            "/agents/{id}/messages",
            {"message": {"kind": "add", "args": [2]}},
            "field 'message.args': expected",
        ),
        ("/agents/{id}/messages", {"message": {"args": {}}}, "field 'message.kind' is required"),
        ("/agents/{id}/dispatch", {"target": 7}, "field 'target': expected str"),
        (
            "/services/leases",
            {"agent_id": "a", "service_name": "s", "ttl": "long"},
            "field 'ttl': expected float",
        ),
    ],
)
def test_a_body_that_does_not_fit_is_a_400_naming_the_field(
    host: Host, path: str, body: Any, text: str
) -> None:
    client = HttpClient()
    try:
        status, created = _call(client, host, "POST", "/agents", {"agent_class_name": f"{MODULE}:Counter"})
        assert status == 200, created
        agent_id = created["proxy"]["agent_id"]
        status, answer = _call(client, host, "POST", path.replace("{id}", agent_id), body)
        assert status == 400, answer
        assert answer["error_type"] == "RequestError", answer
        assert text in answer["error"], answer
        # nothing was created, nothing was delivered, and the host keeps serving
        status, agents = _call(client, host, "GET", "/agents")
        assert [a["agent_id"] for a in agents["agents"]] == [agent_id]
        assert host.get_proxy(agent_id) is not None
    finally:
        client.close()
