"""A handler that never returns: dispose still ends the paglet, and synchronous sends get a deadline.

The attack: a paglet's handler blocks (for an hour), then ``dispose``. The paglet must be gone after the
dispose grace period, with its process, work directory, artifacts and services, and every caller that was
waiting for it must get an error (``PagletCrashedError`` for the message in progress, ``InvalidAgentError``
for the ones queued behind it). A synchronous send to a paglet that does not answer fails after its
deadline with ``SendTimeoutError`` (a ``TimeoutError``) naming the paglet, the message kind and the
deadline; a oneway send is never subject to it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from _paglets import Blocker, BlockerState
from conftest import host_paglet_processes, wait_until

from paglets.core.errors import InvalidAgentError, PagletCrashedError, SendTimeoutError
from paglets.core.messages import Message
from paglets.remote.client import HostClient
from paglets.remote.proxy import PagletProxy
from paglets.runtime.host import Host

WAIT = 30.0


def _in_thread(call: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    """Run ``call`` in a thread; the list receives its result or the exception it raised."""
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(call())
        except Exception as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def _processes(host: Host) -> set[int]:
    return host_paglet_processes(host)


def _blocked(host: Host, agent_id: str) -> None:
    """Send ``block`` oneway and wait until it is the message in progress."""
    host.deliver_message(agent_id, Message("block"), oneway=True)
    wait_until(lambda: host.mailbox_status(agent_id)["in_flight_count"] == 1, timeout=WAIT)


# --- dispose ------------------------------------------------------------------------------------------------


def test_dispose_ends_a_paglet_blocked_in_its_handler(make_host: Callable[..., Host], tmp_path: Path) -> None:
    host = make_host("alpha", dispose_grace=1.0)
    marker = tmp_path / "on_disposing-ran"
    proxy = host.create(Blocker, BlockerState(marker=str(marker)))
    agent_id = proxy.agent_id
    setup = proxy.send(Message("setup"))
    assert Path(setup["work"]).exists()
    assert [a.artifact_id for a in host.artifacts.list(agent_id)] == [setup["artifact"]]
    assert host.lookup_service("blocker-service") is not None
    assert len(_processes(host)) == 1

    in_progress, first = _in_thread(lambda: proxy.send(Message("block"), timeout=WAIT))
    wait_until(lambda: host.mailbox_status(agent_id)["in_flight_count"] == 1, timeout=WAIT)
    queued, second = _in_thread(lambda: proxy.send(Message("ping"), timeout=WAIT))
    wait_until(lambda: host.mailbox_status(agent_id)["queued_count"] == 1, timeout=WAIT)

    host.dispose(agent_id)  # returns after the grace period instead of failing after a minute

    in_progress.join(WAIT)
    queued.join(WAIT)
    assert isinstance(first[0], PagletCrashedError), first
    assert "disposed" in str(first[0])
    assert isinstance(second[0], InvalidAgentError), second
    assert "disposed" in str(second[0])
    with pytest.raises(InvalidAgentError):
        proxy.send(Message("ping"))
    assert host.list_agents(active=True, inactive=True) == []
    wait_until(lambda: not _processes(host), timeout=WAIT)
    assert not Path(setup["work"]).exists()
    assert host.artifacts.list(agent_id) == []
    assert host.lookup_service("blocker-service") is None
    assert not marker.exists()  # on_disposing could not run: the handler held the paglet
    disposed = [e for e in host.list_events(since=0, limit=1000) if e.kind == "dispose"]
    assert [(e.agent_id, e.data) for e in disposed] == [(agent_id, {"active": True, "forced": True})]


def test_dispose_waits_for_a_handler_that_returns_within_the_grace_period(
    make_host: Callable[..., Host], tmp_path: Path
) -> None:
    host = make_host("alpha", dispose_grace=WAIT)
    marker = tmp_path / "on_disposing-ran"
    proxy = host.create(Blocker, BlockerState(marker=str(marker)))
    thread, outcome = _in_thread(lambda: proxy.send(Message("slow", arg=0.5), timeout=WAIT))
    wait_until(lambda: host.mailbox_status(proxy.agent_id)["in_flight_count"] == 1, timeout=WAIT)
    host.dispose(proxy.agent_id)
    thread.join(WAIT)
    assert outcome == ["slow-done"]
    assert marker.read_text() == "disposed"  # on_disposing ran after the handler
    event = next(e for e in host.list_events(since=0, limit=1000) if e.kind == "dispose")
    assert event.data == {"active": True}


# --- the send deadline --------------------------------------------------------------------------------------


def _check_timeout(error: BaseException, agent_id: str, kind: str, deadline: str) -> None:
    assert isinstance(error, SendTimeoutError), repr(error)
    assert isinstance(error, TimeoutError)
    text = str(error)
    assert agent_id in text
    assert repr(kind) in text
    assert f"within {deadline} s" in text


def test_a_host_default_deadline_bounds_synchronous_sends(make_host: Callable[..., Host]) -> None:
    host = make_host("alpha", send_timeout=0.5)
    proxy = host.create(Blocker)
    _blocked(host, proxy.agent_id)
    with pytest.raises(SendTimeoutError) as embedded:
        proxy.send(Message("ping"))  # an in-process proxy: the host's deadline
    _check_timeout(embedded.value, proxy.agent_id, "ping", "0.5")
    with pytest.raises(SendTimeoutError) as delivered:
        host.deliver_message(proxy.agent_id, Message("ping"))
    _check_timeout(delivered.value, proxy.agent_id, "ping", "0.5")
    client = HostClient(api_key="")
    try:  # a client that gives no deadline (paglets 2.0, curl): the host's, answered 504
        with pytest.raises(SendTimeoutError) as over_http:
            client.post_json(
                f"{host.address}/agents/{proxy.agent_id}/messages", {"message": {"kind": "ping"}}
            )
    finally:
        client.close()
    _check_timeout(over_http.value, proxy.agent_id, "ping", "0.5")


@pytest.mark.parametrize("route", ["in-process", "http", "deliver_message"])
def test_a_deadline_per_call(make_host: Callable[..., Host], route: str) -> None:
    host = make_host("alpha")
    proxy = host.create(Blocker)
    _blocked(host, proxy.agent_id)
    client = HostClient(api_key="")
    sends: dict[str, Callable[[], Any]] = {
        "in-process": lambda: proxy.send(Message("ping"), timeout=0.3),
        "http": lambda: PagletProxy(host.address, proxy.agent_id, client).send(Message("ping"), timeout=0.3),
        "deliver_message": lambda: host.deliver_message(proxy.agent_id, Message("ping"), timeout=0.3),
    }
    try:
        with pytest.raises(SendTimeoutError) as caught:
            sends[route]()
    finally:
        client.close()
    _check_timeout(caught.value, proxy.agent_id, "ping", "0.3")


def test_a_paglet_sending_to_a_blocked_paglet_gets_the_deadline_error(make_host: Callable[..., Host]) -> None:
    host = make_host("alpha", send_timeout=0.5)
    blocked, sender = host.create(Blocker), host.create(Blocker)
    _blocked(host, blocked.agent_id)
    answer = sender.send(Message("send_to", {"to": blocked.agent_id, "kind": "ping"}), timeout=WAIT)
    assert answer["error"] == "SendTimeoutError"
    assert answer["timeout"] is True
    assert "within 0.5 s" in answer["message"]
    answer = sender.send(
        Message("send_to", {"to": blocked.agent_id, "kind": "ping", "timeout": 0.2}), timeout=WAIT
    )
    assert "within 0.2 s" in answer["message"]


def test_long_handlers_can_be_given_a_longer_deadline(make_host: Callable[..., Host]) -> None:
    host = make_host("alpha", send_timeout=0.2)
    proxy = host.create(Blocker)
    assert proxy.send(Message("slow", arg=1.0), timeout=WAIT) == "slow-done"  # per call
    patient = make_host("beta", send_timeout=None)  # no default deadline on this host
    other = patient.create(Blocker)
    assert other.send(Message("slow", arg=1.0)) == "slow-done"


def test_oneway_sends_have_no_deadline(make_host: Callable[..., Host]) -> None:
    host = make_host("alpha", send_timeout=0.2)
    proxy = host.create(Blocker)
    proxy.send_oneway(Message("slow", arg=1.0))
    proxy.send_oneway(Message("ping"))  # queued behind a handler longer than the deadline: accepted
    assert host.deliver_message(proxy.agent_id, Message("ping"), oneway=True) is None
    wait_until(lambda: proxy.send(Message("pings"), timeout=WAIT) == 2, timeout=WAIT)
