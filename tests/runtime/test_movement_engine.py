"""``MovementEngine`` built on a fake ``MovementSite`` (no ``Host``, no processes, no sockets).

The engine reaches its host only through ``MovementSite`` (``paglets/runtime/_move_site.py``): here a
fake answers ``/health`` of a target, names, and the paglet processes, and the transfer records are real
files in a temp dir. The checks: the records open and close with the engine, a target that cannot take
the paglet is refused before anything is paused (and reported), and nothing moves without a known
destination.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from paglets.core.context_events import ContextEventLog
from paglets.core.errors import InvalidAgentError, TransferError, UnknownHostError
from paglets.remote.transfer import TransferTicket
from paglets.runtime._move_depart import Target
from paglets.runtime._movement import MovementEngine
from paglets.runtime._paglets import Timeouts

ALPHA = "http://127.0.0.1:8701"
BETA = "http://127.0.0.1:8702"


class FakeAClient:
    """The host's async HTTP client: only ``GET <target>/health`` is asked here."""

    def __init__(self, health: dict[str, Any]) -> None:
        self.health = health
        self.asked: list[str] = []

    async def request_json(self, method: str, url: str, payload: Any = None, **kwargs: Any) -> Any:
        self.asked.append(f"{method} {url}")
        return self.health


class FakeAgents:
    def __init__(self) -> None:
        self.controllers: dict[str, Any] = {}
        self.timeouts = Timeouts()

    def ready(self, agent_id: str) -> Any:
        raise InvalidAgentError(f"no paglet {agent_id} on host alpha")


class FakeConfig:
    inbound_move_budget = 64 * 1024 * 1024
    inbound_budget_wait = 1.0

    def __init__(self, root: Path) -> None:
        self.persistence_dir = root


class FakeSite:
    """What the engine uses of its host (``MovementSite``), as plain attributes."""

    def __init__(self, root: Path, health: dict[str, Any]) -> None:
        self.name = "alpha"
        self.address = ALPHA
        self.code_version = "v1"
        self.persistence_dir = root
        self.config = FakeConfig(root)
        self.events = ContextEventLog(host_name="alpha", host_address=ALPHA)
        self.manager = FakeAgents()
        self.persistence = None
        self.files = None
        self.artifacts = None
        self.client = None
        self.aclient = FakeAClient(health)

    def resolve_host_url(self, name_or_url: str) -> str:
        known = {"alpha": ALPHA, "beta": BETA}
        if name_or_url.startswith("http"):
            return name_or_url
        if name_or_url not in known:
            raise UnknownHostError(f"no host named {name_or_url!r} in this mesh")
        return known[name_or_url]

    def health(self) -> dict[str, Any]:
        return {"name": "alpha", "address": ALPHA, "code_version": "v1", "capabilities": []}

    async def forward_waiting(self, items: Any, where: Any) -> None:
        raise AssertionError("nothing waits here")


def _failures(site: FakeSite) -> list[tuple[str, str]]:
    return [
        (e.data["stage"], e.error or "")
        for e in site.events.events_since(0, 100)
        if e.kind == "transfer-failed"
    ]


def _run(site: FakeSite, body: Any) -> Any:
    async def main() -> Any:
        engine = MovementEngine(site)  # type: ignore[arg-type]  # a fake MovementSite
        await engine.start()
        try:
            return await body(engine)
        finally:
            await engine.stop()

    return asyncio.run(main())


def test_the_transfer_records_open_with_the_engine_and_unknown_transfers_are_unknown(tmp_path: Path) -> None:
    site = FakeSite(tmp_path, {})

    async def body(engine: MovementEngine) -> None:
        assert engine.store is not None
        answer = engine.status("0" * 32)
        assert (answer["status"], answer["role"], answer["incarnation"]) == (
            "unknown",
            None,
            engine.incarnation,
        )

    _run(site, body)
    assert any(tmp_path.rglob("*")), "the engine keeps its transfer records in the host's directory"


def test_a_target_that_cannot_take_the_paglet_is_refused_and_reported(tmp_path: Path) -> None:
    site = FakeSite(
        tmp_path, {"name": "beta", "address": BETA, "code_version": "v2", "capabilities": ["cpu"]}
    )
    target = Target(url=BETA, name="beta", same_host=False)

    async def body(engine: MovementEngine) -> None:
        with pytest.raises(TransferError, match=r"lacks capabilities \['gpu'\]"):
            await engine.preflight(
                TransferTicket(BETA, required_capabilities=("gpu",)), target, agent_id="a1"
            )
        with pytest.raises(TransferError, match="runs code version 'v2', this host 'v1'"):
            await engine.preflight(TransferTicket(BETA), target, agent_id="a1")
        info = await engine.preflight(TransferTicket(BETA, expected_code_version="v2"), target)
        assert (info["name"], info["address"], info["capabilities"]) == ("beta", BETA, ["cpu"])

    _run(site, body)
    assert site.aclient.asked == [f"GET {BETA}/health"] * 3
    assert [stage for stage, _ in _failures(site)] == ["preflight", "preflight"]


def test_nothing_moves_to_an_unknown_host_or_for_an_unknown_paglet(tmp_path: Path) -> None:
    site = FakeSite(tmp_path, {"name": "beta", "address": BETA, "code_version": "v1", "capabilities": []})

    async def body(engine: MovementEngine) -> None:
        with pytest.raises(UnknownHostError):
            await engine.move("a1", "zeta", kind="dispatch")
        with pytest.raises(InvalidAgentError):
            await engine.move("a1", "beta", kind="dispatch")
        assert engine.sources == {}

    _run(site, body)
    assert _failures(site) == [("resolve", "no host named 'zeta' in this mesh")]
    assert site.aclient.asked == []  # no preflight for a paglet that is not here
