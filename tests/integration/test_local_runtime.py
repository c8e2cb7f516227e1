"""The local runtime as a user of paglets 2.0 uses it: contract §10 behaviours 1-8 and 30, and more.

Every test runs real paglet processes (forked by the host's zygote) and checks what a user can see.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from _paglets import Counter, CounterState, FailsOnCreation, Gated, NoHandler, RunFails
from conftest import children_of, paglet_processes, wait_until

from paglets.core.errors import (
    HostError,
    InvalidAgentError,
    NotHandledError,
    PagletCrashedError,
)
from paglets.core.messages import Message
from paglets.runtime.host import Host


def test_create_runs_on_creation_in_a_child_process_then_run(host: Host) -> None:  # behaviour 1
    proxy = host.create(Counter, CounterState(), init="hello")
    assert proxy.host_url == host.address
    assert re.fullmatch(r"[0-9a-f]{32}", proxy.agent_id)
    pid = proxy.send(Message("pid"))
    assert pid != os.getpid()
    assert pid in children_of(os.getpid())
    wait_until(lambda: len(host.get_state(proxy.agent_id, CounterState).log) == 2)
    assert host.get_state(proxy.agent_id, CounterState).log == ["created:alpha:hello", "run:alpha"]


def test_send_returns_the_handler_value_with_binary_types_kept(host: Host) -> None:  # behaviour 2
    proxy = host.create(Counter)
    assert proxy.send(Message("add", {"n": 5})) == 5
    reply = proxy.send(
        Message("echo", {"b": b"\x00\xff", "ba": bytearray(b"ab"), "nested": [b"x", {"y": b"z"}]})
    )
    assert reply["args"] == {"b": b"\x00\xff", "ba": bytearray(b"ab"), "nested": [b"x", {"y": b"z"}]}
    assert type(reply["args"]["ba"]) is bytearray
    assert type(reply["args"]["b"]) is bytes


def test_not_handled_raises_and_the_paglet_stays_usable(host: Host) -> None:  # behaviour 3
    counter = host.create(Counter)
    with pytest.raises(NotHandledError):
        counter.send(Message("no-such-kind"))
    assert counter.send(Message("add")) == 1
    bare = host.create(NoHandler)
    with pytest.raises(NotHandledError):
        bare.send(Message("anything"))


def test_handler_exception_reaches_the_caller_and_the_process_survives(host: Host) -> None:  # behaviour 4
    proxy = host.create(Counter)
    pid = proxy.send(Message("pid"))
    with pytest.raises(HostError, match="boom: 7") as info:
        proxy.send(Message("fail", arg=7))
    assert info.value.remote_type == "RuntimeError"
    assert "RuntimeError" in (info.value.remote_traceback or "")
    assert proxy.send(Message("pid")) == pid


@pytest.mark.parametrize(("kind", "code"), [("exit", 3), ("hard_exit", 7)])
def test_exit_in_a_handler_crashes_only_that_paglet(host: Host, kind: str, code: int) -> None:  # behaviour 5
    victim = host.create(Counter)
    bystander = host.create(Counter)
    with pytest.raises(PagletCrashedError):
        victim.send(Message(kind, arg=code))
    summary = next(a for a in host.list_agents() if a["agent_id"] == victim.agent_id)
    assert summary["crashed"] is True
    assert summary["exitcode"] == code
    with pytest.raises(PagletCrashedError):
        victim.send(Message("add"))
    assert bystander.send(Message("add")) == 1
    kinds = [e.kind for e in host.list_events(limit=1000)]
    assert "paglet-crashed" in kinds
    host.dispose(victim.agent_id)
    assert victim.agent_id not in {a["agent_id"] for a in host.list_agents()}


def test_a_segfault_is_a_crash_with_the_signal_number(host: Host) -> None:
    proxy = host.create(Counter)
    pid = proxy.send(Message("pid"))
    os.kill(pid, 11)
    wait_until(lambda: next(a for a in host.list_agents() if a["agent_id"] == proxy.agent_id)["crashed"])
    summary = next(a for a in host.list_agents() if a["agent_id"] == proxy.agent_id)
    assert summary["exitcode"] == -11


def test_exception_in_run_marks_the_paglet_crashed_with_an_event(host: Host) -> None:  # behaviour 6
    proxy = host.create(RunFails)

    def crashed_event() -> bool:
        return any(
            e.kind == "paglet-crashed" and e.agent_id == proxy.agent_id and "run exploded" in (e.error or "")
            for e in host.list_events(limit=1000)
        )

    wait_until(crashed_event)
    with pytest.raises(PagletCrashedError):
        proxy.send(Message("ping"))
    host.dispose(proxy.agent_id)


def test_messages_to_one_paglet_run_strictly_one_at_a_time(host: Host, tmp_path: Path) -> None:  # behaviour 7
    proxy = host.create(Gated)
    gate = tmp_path / "open"
    first = threading.Thread(target=proxy.send, args=(Message("wait_file", arg=str(gate)),))
    first.start()
    wait_until(lambda: host.get_state(proxy.agent_id, _gate_state()).log == ["begin"])
    second_result: list[object] = []
    second = threading.Thread(target=lambda: second_result.append(proxy.send(Message("rec", arg="second"))))
    second.start()
    wait_until(lambda: host.mailbox_status(proxy.agent_id)["queued_count"] == 1)
    assert host.get_state(proxy.agent_id, _gate_state()).log == ["begin"]  # served while the handler runs
    gate.touch()
    first.join(20)
    second.join(20)
    assert host.get_state(proxy.agent_id, _gate_state()).log == ["begin", "end", "second"]
    assert second_result == [3]


def _gate_state() -> type:
    from _paglets import GateState

    return GateState


def test_priority_first_then_fifo(host: Host, tmp_path: Path) -> None:  # behaviour 8
    proxy = host.create(Gated)
    gate = tmp_path / "open"
    proxy.send_oneway(Message("wait_file", arg=str(gate)))
    wait_until(lambda: host.get_state(proxy.agent_id, _gate_state()).log == ["begin"])
    for text, priority in [("low", 1), ("high-1", 10), ("mid", 5), ("high-2", 10)]:
        proxy.send_oneway(Message("rec", arg=text, priority=priority))
    gate.touch()
    wait_until(lambda: host.mailbox_status(proxy.agent_id)["delivered_count"] == 5)
    assert host.get_state(proxy.agent_id, _gate_state()).log == [
        "begin",
        "end",
        "high-1",
        "high-2",
        "mid",
        "low",
    ]


def test_events_since_and_limit(host: Host) -> None:  # behaviour 30
    for _ in range(3):
        host.create(Counter).send(Message("add"))
    events = host.list_events(since=0, limit=1000)
    ids = [e.event_id for e in events]
    assert ids == list(range(1, len(ids) + 1))
    assert events[0].kind == "context-start"
    page = host.list_events(since=2, limit=3)
    assert [e.event_id for e in page] == [3, 4, 5]
    kinds = {e.kind for e in events}
    assert {"create", "message-queued", "message-delivered"} <= kinds


def test_failing_creation_hook_leaves_nothing_behind(host: Host) -> None:
    before = paglet_processes(os.getpid())
    with pytest.raises(HostError, match="refusing to be born"):
        host.create(FailsOnCreation)
    assert host.list_agents() == []
    wait_until(lambda: paglet_processes(os.getpid()) <= before)


def test_classes_from_main_or_locals_are_refused_with_the_fix(host: Host) -> None:
    from dataclasses import dataclass

    from paglets.core.agent import Paglet, PagletState

    @dataclass
    class LocalState(PagletState):
        x: int = 0

    class Local(Paglet[LocalState]):
        State = LocalState

    with pytest.raises(HostError, match="locals"):
        host.create(Local)
    Local.__module__ = "__main__"
    with pytest.raises(HostError, match="move it into a module"):
        host.create(Local)


def test_unknown_agent_and_wrong_state_type(host: Host) -> None:
    with pytest.raises(InvalidAgentError):
        host.deliver_message("f" * 32, Message("add"))
    with pytest.raises(HostError, match="must be a CounterState"):
        host.create(Counter, state={"count": 1})  # type: ignore[arg-type]


def test_state_and_init_values_survive_creation(host: Host) -> None:
    state = CounterState(count=41, log=["x"], blob=os.urandom(200_000))
    proxy = host.create(Counter, state)
    assert proxy.send(Message("add")) == 42
    got = host.get_state(proxy.agent_id, CounterState)
    assert got.blob == state.blob
    assert got.log[:2] == ["x", "created:alpha:None"]


def test_stop_leaves_no_processes_fds_or_shared_memory(make_host: Callable[..., Host]) -> None:
    fds_before = len(os.listdir("/proc/self/fd"))
    shm_before = set(os.listdir("/dev/shm"))
    host = make_host("cleanup")
    proxies = [host.create(Counter, CounterState(blob=b"x" * 100_000)) for _ in range(5)]
    for proxy in proxies:
        proxy.send(Message("add"))
        host.get_state(proxy.agent_id, CounterState)
    host.stop()
    wait_until(lambda: not children_of(os.getpid()))
    assert set(os.listdir("/dev/shm")) <= shm_before
    wait_until(lambda: len(os.listdir("/proc/self/fd")) <= fds_before + 2)
