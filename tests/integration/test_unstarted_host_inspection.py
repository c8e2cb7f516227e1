"""A ``Host`` constructed on a persistence directory but not started answers inspection from its records
(``list_agents``, ``get_proxy(include_inactive=True)``, ``get_proxies``, ``get_state``, ``health``), as
paglets 2.0 does, without changing the directory or taking its lock: a later start, or a running host
that owns the directory, is unaffected."""

from __future__ import annotations

import os
from pathlib import Path

from _compat_paglets import Starter, StartState

from paglets.core.agent import INACTIVE
from paglets.core.messages import Message
from paglets.persistence.persistency import DeactivationPolicy, DeactivationRequest
from paglets.remote.proxy import PagletProxy
from paglets.runtime.host import Host

INACTIVE_KEYS = {"agent_id", "class_name", "state_class_name", "host", "address", "active", "deactivated_at"}


def _host(name: str, root: Path) -> Host:
    return Host(name, persistence_dir=root, mesh_lan_discovery=False, mesh_multicast=False)


def _prepare(root: Path) -> tuple[str, str]:
    """Two inactive paglets in ``root`` (one with a queued message); returns their ids."""
    owner = _host("alpha", root).start_background()
    try:
        first = owner.create(Starter)
        second = owner.create(Starter)
        owner.deactivate(first.agent_id)
        policy = DeactivationPolicy(activate_on_message=False)
        owner.deactivate(second.agent_id, DeactivationRequest(policy=policy))
        owner.deliver_message(second.agent_id, Message("log"), oneway=True)
    finally:
        owner.stop()
    return first.agent_id, second.agent_id


def _tree(root: Path) -> dict[str, tuple[int, int]]:
    found: dict[str, tuple[int, int]] = {}
    for path in sorted(root.rglob("*")):
        stat = path.stat()
        found[str(path.relative_to(root))] = (stat.st_size, stat.st_mtime_ns)
    return found


def test_unstarted_host_lists_and_reads_its_inactive_paglets(tmp_path: Path) -> None:
    first, second = _prepare(tmp_path)
    before = _tree(tmp_path)
    host = _host("alpha", tmp_path)

    listed = host.list_agents(active=False, inactive=True)
    assert sorted(item["agent_id"] for item in listed) == sorted([first, second])
    assert all(item.keys() >= INACTIVE_KEYS and item["active"] is False for item in listed)
    assert host.list_agents() == []
    detailed = {
        item["agent_id"]: item for item in host.list_agents(active=False, inactive=True, include_state=True)
    }
    assert detailed[first]["state"]["log"] == ["created:alpha", "run:alpha"]
    assert detailed[second]["queued_message_count"] == 1
    assert detailed[second]["deactivation_policy"]["activate_on_message"] is False

    proxy = host.get_proxy(first, include_inactive=True)
    assert isinstance(proxy, PagletProxy)
    assert proxy.agent_id == first
    assert host.get_proxy(first) is None
    assert host.get_proxy("f" * 32, include_inactive=True) is None
    assert sorted(p.agent_id for p in host.get_proxies(INACTIVE)) == sorted([first, second])
    assert host.get_state(first, StartState).log == ["created:alpha", "run:alpha"]
    health = host.health()
    assert (health["active_count"], health["inactive_count"]) == (0, 2)
    assert [ref.inactive_count for ref in host.list_hosts()] == [2]

    assert _tree(tmp_path) == before  # nothing written, moved or removed


def test_inspection_before_start_does_not_conflict_with_the_start(tmp_path: Path) -> None:
    first, second = _prepare(tmp_path)
    host = _host("alpha", tmp_path)
    assert len(host.list_agents(active=False, inactive=True)) == 2
    host.start_background()
    try:
        assert len(host.list_agents(active=False, inactive=True)) == 2
        host.activate(first)
        assert host.get_state(first, StartState).log[-2:] == ["activated:activate", "run:alpha"]
        assert host.health()["inactive_count"] == 1
    finally:
        host.stop()
    again = _host("alpha", tmp_path)
    assert [item["agent_id"] for item in again.list_agents(active=False, inactive=True)] == [second]


def test_unstarted_host_reads_a_directory_owned_by_a_running_host(tmp_path: Path) -> None:
    first, _second = _prepare(tmp_path)
    owner = _host("alpha", tmp_path).start_background()
    try:
        reader = _host("alpha", tmp_path)
        assert len(reader.list_agents(active=False, inactive=True)) == 2
        owner.activate(first)
        assert owner.get_state(first, StartState).log[-1] == "run:alpha"
    finally:
        owner.stop()


def test_unstarted_host_on_an_empty_directory_creates_nothing(tmp_path: Path) -> None:
    root = tmp_path / "fresh"
    host = _host("alpha", root)
    assert host.list_agents(active=False, inactive=True) == []
    assert host.health()["inactive_count"] == 0
    assert not os.path.exists(root / "inactive")
