"""Deactivation, activation and shutdown with durable records (contract §5, behaviours 19-24)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from _paglets import CounterState, Sleeper
from conftest import wait_until

from paglets.core.errors import HostError, LifecycleError, PagletInactiveError
from paglets.core.messages import Message
from paglets.persistence.persistency import DeactivationPolicy
from paglets.runtime.host import Host


def _log(host: Host, agent_id: str) -> list[str]:
    return host.get_state(agent_id, CounterState).log


def test_deactivate_and_activate_after_a_restart(
    make_host: Callable[..., Host], tmp_path: Path
) -> None:  # 19
    directory = tmp_path / "alpha-store"
    alpha = make_host("alpha", persistence_dir=directory)
    proxy = alpha.create(Sleeper, CounterState(count=7, blob=b"\x00" * 1000))
    proxy.send(Message("add", {"n": 3}))
    inactive = proxy.deactivate()
    assert inactive.agent_id == proxy.agent_id
    assert [a for a in alpha.list_agents() if a["active"]] == []
    assert any(p.name.endswith(".rec") for p in (directory / "inactive").iterdir())
    assert alpha.list_agents(active=False, inactive=True)[0]["active"] is False
    alpha.stop()
    again = make_host("alpha", persistence_dir=directory)
    assert again.get_state(proxy.agent_id, CounterState).count == 10  # readable while inactive
    active = again.activate(proxy.agent_id)
    assert active.send(Message("add", {"n": 0})) == 10
    log = _log(again, proxy.agent_id)
    assert log[-3:-1] == ["deactivating:deactivate", "activated:activate"]
    wait_until(lambda: _log(again, proxy.agent_id)[-1] == "run:alpha")


def test_queued_messages_when_inactive(host: Host) -> None:  # 20
    proxy = host.create(Sleeper)
    proxy.deactivate(policy=DeactivationPolicy(activate_on_message=False, queue_messages_when_inactive=True))
    reply = proxy.send(Message("add", {"n": 5}))
    assert reply["queued"] is True
    assert len(reply["message_id"]) == 32
    proxy.send_oneway(Message("add", {"n": 1}))
    with pytest.raises(PagletInactiveError):
        proxy.send(Message("add"), no_delay=True)
    host.activate(proxy.agent_id)
    wait_until(lambda: host.get_state(proxy.agent_id, CounterState).count == 6)


def test_a_message_activates_by_default(host: Host) -> None:  # 21
    proxy = host.create(Sleeper)
    proxy.send(Message("add", {"n": 2}))
    proxy.deactivate()
    assert proxy.send(Message("add", {"n": 2})) == 4
    assert [a["agent_id"] for a in host.list_agents()] == [proxy.agent_id]


def test_timed_activation(host: Host) -> None:  # 22
    proxy = host.create(Sleeper)
    started = time.monotonic()
    proxy.deactivate(policy=DeactivationPolicy.after(0.15))
    wait_until(lambda: any(a["agent_id"] == proxy.agent_id for a in host.list_agents()), 5)
    assert time.monotonic() - started < 2.0


def test_shutdown_keeps_every_paglet(make_host: Callable[..., Host], tmp_path: Path) -> None:  # 23
    directory = tmp_path / "store"
    alpha = make_host("alpha", persistence_dir=directory)
    proxies = [alpha.create(Sleeper, CounterState(count=i)) for i in range(5)]
    alpha.shutdown()
    again = make_host("alpha", persistence_dir=directory)
    wait_until(lambda: len(again.list_agents()) == 5)
    for i, proxy in enumerate(proxies):
        log = _log(again, proxy.agent_id)
        assert again.get_state(proxy.agent_id, CounterState).count == i
        assert "deactivating:shutdown" in log
        assert log[log.index("deactivating:shutdown") + 1] == "activated:activate"


def test_shutdown_saves_a_busy_paglet_and_requeues_its_message(
    make_host: Callable[..., Host], tmp_path: Path
) -> None:
    directory = tmp_path / "store"
    alpha = make_host("alpha", persistence_dir=directory)
    proxy = alpha.create(Sleeper, CounterState(count=41))
    outcome: list[BaseException | object] = []
    caller = threading.Thread(
        target=lambda: outcome.append(_outcome(lambda: proxy.send(Message("slow", arg=30))))
    )
    caller.start()
    wait_until(lambda: "slow-begin" in _log(alpha, proxy.agent_id))
    alpha.shutdown()
    caller.join(30)
    assert not caller.is_alive(), "the sender still waits after the host shut down"
    # the interrupted message was saved with the paglet: its sender is told so, not left waiting
    [answer] = outcome
    assert isinstance(answer, dict), answer
    assert answer["queued"] is True
    assert "message-requeued" in [e.kind for e in alpha.list_events(limit=1000)]
    again = make_host("alpha", persistence_dir=directory)
    wait_until(lambda: len(again.list_agents()) == 1)
    assert again.get_state(proxy.agent_id, CounterState).count == 41


def _outcome(fn: Callable[[], object]) -> BaseException | object:
    try:
        return fn()
    except Exception as exc:
        return exc


def test_failing_cleanup_aborts_deactivation(host: Host) -> None:  # 24
    proxy = host.create(Sleeper)
    proxy.send(Message("resources"))
    with pytest.raises(LifecycleError):
        proxy.deactivate()
    assert proxy.send(Message("add")) == 1  # still active
    assert _log(host, proxy.agent_id)[-2:] == ["cleanup:bad", "cleanup:first"]


def test_self_deactivation_from_a_handler(host: Host) -> None:
    proxy = host.create(Sleeper)
    reply = proxy.send(Message("sleep"))
    assert reply == {"host_url": host.address, "agent_id": proxy.agent_id}
    wait_until(lambda: host.list_agents() == [])
    assert _log(host, proxy.agent_id)[-1] == "deactivating:nap"
    assert proxy.send(Message("add")) == 1  # activates on message


def test_reserved_deactivate_message(host: Host) -> None:
    proxy = host.create(Sleeper)
    reply = proxy.send(Message("_deactivate", {"request": {"reason": "by-message"}}))
    assert reply["deactivated"] is True
    assert _log(host, proxy.agent_id)[-1] == "deactivating:by-message"


def test_a_second_host_on_the_same_directory_touches_none_of_its_files(
    make_host: Callable[..., Host], tmp_path: Path
) -> None:
    """The inactive-record store locks the directory before any other store reads it: a second host
    stops there, and the first one's forwarding log and transfer records stay as they were (loading
    them would compact the one and could repair the other)."""
    from paglets.persistence._forwards import FILE_NAME as FORWARDS
    from paglets.persistence._transfers import FILE_NAME as TRANSFERS

    directory = tmp_path / "shared"
    alpha = make_host("alpha", persistence_dir=directory)
    alpha.parts.forwarding.store.add("gone-1", "http://127.0.0.1:9", "gone-1")
    forwards, transfers = directory / "forwards" / FORWARDS, directory / TRANSFERS
    wait_until(transfers.exists)  # created in the background once alpha serves
    before = (forwards.stat().st_ino, forwards.read_bytes(), transfers.read_bytes())
    second = Host("alpha-2", persistence_dir=directory, mesh_lan_discovery=False, mesh_multicast=False)
    with pytest.raises(HostError, match="in use"):
        second.start_background()
    assert (forwards.stat().st_ino, forwards.read_bytes(), transfers.read_bytes()) == before
    assert alpha.parts.forwarding.lookup("gone-1") is not None
    proxy = alpha.create(Sleeper)  # alpha goes on
    assert proxy.send(Message("add", {"n": 1})) == 1
