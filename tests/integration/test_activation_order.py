"""Messages queued for an inactive paglet are handled before the message that activates it.

The paglet is deactivated, messages are queued for it (``activate_if_inactive: false``), then a message
activates it. The queued messages enter its mailbox in one step when it becomes active, before anything
else can reach it, and the mailbox's rule applies to everything waiting there (contract §2.1: highest
priority first, FIFO within a priority), as in paglets 2.0 whose activation queues them before it returns.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _paglets import SeenState, Sequenced, SlowActivation
from conftest import wait_until

from paglets.core.messages import Message
from paglets.remote.client import HostClient
from paglets.runtime.host import Host


def _message(kind: str, arg: Any = None, priority: int = 5) -> dict[str, Any]:
    message = Message(kind, arg=arg)
    message.priority = priority
    return message.to_wire()


def _seen(host: Host, agent_id: str) -> list[str]:
    return host.get_state(agent_id, SeenState).seen


def test_a_queued_message_runs_before_the_one_that_activates(make_host: Callable[..., Host]) -> None:
    """The attack: deactivate; queue ``seq 0`` with ``activate_if_inactive: false``; send ``stats``."""
    host = make_host("alpha")
    agent_id = host.create(Sequenced).agent_id
    host.deactivate(agent_id)
    url = f"{host.address}/agents/{agent_id}/messages"
    client = HostClient(api_key="")
    try:
        queued = client.post_json(url, {"message": _message("seq", 0), "activate_if_inactive": False})
        assert queued["result"]["queued"] is True
        answer = client.post_json(url, {"message": _message("stats")})
    finally:
        client.close()
    assert answer == {"result": {"count": 1, "seen": ["seq:0:p5"]}}
    assert _seen(host, agent_id) == ["seq:0:p5", "stats:p5"]


def test_queued_messages_keep_the_mailbox_order_before_a_later_message(
    make_host: Callable[..., Host], tmp_path: Path
) -> None:
    """Several queued messages, oneway and synchronous, of several priorities: they run highest priority
    first and in arrival order within a priority; the activating message, sent after them, runs after
    every queued message of its priority or higher, and before lower ones (as any later message would).
    The first queued message holds the paglet until the activating message is waiting too."""
    host = make_host("alpha")
    agent_id = host.create(Sequenced).agent_id
    host.deactivate(agent_id)
    url = f"{host.address}/agents/{agent_id}/messages"
    gate = tmp_path / "gate"
    queued = [
        ("hold", str(gate), 10, True),
        ("seq", 1, 1, True),
        ("seq", 2, 10, False),
        ("seq", 3, 5, True),
        ("seq", 4, 5, False),
        ("seq", 5, 1, False),
    ]
    client = HostClient(api_key="")
    try:
        for kind, arg, priority, oneway in queued:
            body = {"message": _message(kind, arg, priority), "activate_if_inactive": False, "oneway": oneway}
            result = client.post_json(url, body)["result"]
            assert result is None if oneway else result["queued"] is True
        answers: list[Any] = []
        sender = threading.Thread(
            target=lambda: answers.append(client.post_json(url, {"message": _message("stats")}, timeout=30.0))
        )
        sender.start()
        try:  # once the activating message waits behind the held one with the other five, let them go
            wait_until(lambda: agent_id in host.manager.controllers, timeout=30)

            # the held message in flight (the paglet is ready) and the other five plus the activating one
            # queued (before it is ready, the six queued ones are the record's, without the activating one)
            def waiting() -> tuple[int, int]:
                counts = host.mailbox_status(agent_id)
                return counts["in_flight_count"], counts["queued_count"]

            wait_until(lambda: waiting() == (1, 6), timeout=30)
        finally:
            gate.touch()
            sender.join(30)
    finally:
        client.close()
    assert answers[0]["result"]["seen"] == ["hold:p10", "seq:2:p10", "seq:3:p5", "seq:4:p5"]
    wait_until(lambda: len(_seen(host, agent_id)) == 7)
    assert _seen(host, agent_id) == [
        "hold:p10",
        "seq:2:p10",
        "seq:3:p5",
        "seq:4:p5",
        "stats:p5",
        "seq:1:p1",
        "seq:5:p1",
    ]


def test_queued_messages_run_before_a_message_sent_through_the_embedded_host(
    make_host: Callable[..., Host],
) -> None:
    host = make_host("alpha")
    agent_id = host.create(Sequenced).agent_id
    host.deactivate(agent_id)
    for seq in range(5):
        assert (
            host.deliver_message(agent_id, Message("seq", arg=seq), oneway=True, activate_if_inactive=False)
            is None
        )
    assert host.deliver_message(agent_id, Message("stats")) == {
        "count": 5,
        "seen": [f"seq:{seq}:p5" for seq in range(5)],
    }


def test_a_message_sent_during_the_activation_waits_for_it(
    make_host: Callable[..., Host], tmp_path: Path
) -> None:
    """A message that arrives while the activation hook runs waits for the activation (it used to fail
    with "still starting") and comes after the queued messages."""
    host = make_host("alpha")
    gate = tmp_path / "gate"
    agent_id = host.create(SlowActivation, SeenState(gate=str(gate))).agent_id
    host.deactivate(agent_id)
    for seq in range(3):
        host.deliver_message(agent_id, Message("seq", arg=seq), oneway=True, activate_if_inactive=False)
    activation = threading.Thread(target=host.activate, args=(agent_id,))
    activation.start()
    client = HostClient(api_key="")
    answers: list[Any] = []

    def send() -> None:
        url = f"{host.address}/agents/{agent_id}/messages"
        try:
            answers.append(client.post_json(url, {"message": _message("stats")}, timeout=30.0))
        except Exception as exc:
            answers.append(exc)

    sender = threading.Thread(target=send)
    try:
        wait_until(lambda: Path(f"{gate}.started").exists(), timeout=30)
        sender.start()
        stats = host.http_statistics
        wait_until(lambda: answers or (stats() is not None and stats().requests_in_flight == 1), timeout=30)
        gate.touch()  # the message is in the host, the activation still under way: let it finish
        sender.join(30)
        assert not sender.is_alive()
    finally:
        gate.touch()
        activation.join(30)
        client.close()
    assert not activation.is_alive()
    assert answers == [{"result": {"count": 3, "seen": ["seq:0:p5", "seq:1:p5", "seq:2:p5"]}}]


def test_an_invalid_queued_message_is_dropped_visibly_and_the_rest_delivered(
    make_host: Callable[..., Host], caplog: Any
) -> None:
    """A queued message that no longer checks (here: ``args`` a list, as a record written by another build
    might hold) does not keep the paglet from activating, and is not skipped silently: a warning and a
    ``message-dropped`` event name it and the reason; the valid queued messages around it are delivered."""
    host = make_host("alpha")
    agent_id = host.create(Sequenced).agent_id
    host.deactivate(agent_id)
    url = f"{host.address}/agents/{agent_id}/messages"
    client = HostClient(api_key="")
    store = host.persistence.store
    assert store is not None
    try:
        client.post_json(url, {"message": _message("seq", 1), "activate_if_inactive": False, "oneway": True})
        bad = _message("seq", 2)
        bad["args"] = [1, 2]
        store.append_message(agent_id, bad, oneway=True)
        client.post_json(url, {"message": _message("seq", 3), "activate_if_inactive": False, "oneway": True})
        with caplog.at_level("WARNING", logger="paglets.runtime"):
            answer = client.post_json(url, {"message": _message("stats")})
    finally:
        client.close()
    assert answer["result"]["seen"] == ["seq:1:p5", "seq:3:p5"]
    dropped = [e for e in host.events.events_since(0, 1000) if e.kind == "message-dropped"]
    assert len(dropped) == 1
    assert dropped[0].agent_id == agent_id
    assert dropped[0].message_id == bad["message_id"]
    assert dropped[0].error is not None
    assert "args" in dropped[0].error
    assert dropped[0].data["reason"] == "invalid-queued-message"
    assert any("dropped at activation" in r.getMessage() for r in caplog.records)
