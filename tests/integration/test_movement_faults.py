"""Exactly one live copy, whatever fails during a move (issue: failure injection for the hand-over).

Each test injects one fault between two real hosts (an HTTP fault proxy on 127.0.0.1, or a killed host
process) and checks that the paglet ends up live on exactly one host with its state, and that no paglet
process is left behind anywhere.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from _faultproxy import FaultProxy
from _paglets import SlowRunner, Traveller, TravelState
from conftest import HERE, children_of, host_paglet_processes, wait_until

from paglets.core.errors import TransferError
from paglets.core.messages import Message
from paglets.remote.transfer import TransferTicket
from paglets.runtime.host import Host


def _paglet_processes(host: Host) -> set[int]:
    return host_paglet_processes(host)


def _live_copies(agent_id: str, *hosts: Host) -> list[str]:
    return [h.name for h in hosts for a in h.list_agents() if a["agent_id"] == agent_id and a["active"]]


@pytest.fixture
def pair(make_host: Callable[..., Host]) -> Iterator[tuple[Host, Host, FaultProxy]]:
    alpha, beta = make_host("alpha"), make_host("beta")
    parts = urlsplit(beta.address)
    proxy = FaultProxy(parts.hostname or "127.0.0.1", parts.port or 0)
    yield alpha, beta, proxy
    proxy.close()


def _settled(alpha: Host, beta: Host, agent_id: str, on: Host) -> None:
    """Exactly one copy, on ``on``, and exactly one paglet process in total."""
    wait_until(lambda: _live_copies(agent_id, alpha, beta) == [on.name])
    wait_until(lambda: len(_paglet_processes(alpha)) + len(_paglet_processes(beta)) == 1)


@pytest.mark.parametrize("fault", ["error_after_response", "drop_after_response"])
def test_failure_after_the_target_prepared_keeps_the_source_copy(
    pair: tuple[Host, Host, FaultProxy], fault: str
) -> None:
    alpha, beta, proxy = pair
    paglet = alpha.create(Traveller, TravelState(payload=b"x" * 300_000))
    proxy.arm(fault)
    with pytest.raises(TransferError):
        alpha.dispatch(paglet.agent_id, TransferTicket(proxy.url, timeout=5.0))
    _settled(alpha, beta, paglet.agent_id, alpha)
    assert paglet.send(Message("size")) == 300_000
    assert paglet.send(Message("log"))[-1] == "dispatching:alpha->beta"  # 2.0: leaving hook effects stay


def test_a_dropped_acknowledgement_is_retried_without_a_second_copy(
    pair: tuple[Host, Host, FaultProxy],
) -> None:
    alpha, beta, proxy = pair
    paglet = alpha.create(Traveller)
    proxy.arm("drop_after_response")
    moved = alpha.dispatch(
        paglet.agent_id, TransferTicket(proxy.url, timeout=5.0, retries=2, retry_interval=0.05)
    )
    assert moved.agent_id == paglet.agent_id
    _settled(alpha, beta, paglet.agent_id, beta)
    assert sum(1 for line in proxy.fault.seen if line == "POST /agents") == 2


def test_a_duplicated_delivery_creates_one_copy(pair: tuple[Host, Host, FaultProxy]) -> None:
    alpha, beta, proxy = pair
    paglet = alpha.create(Traveller)
    proxy.arm("duplicate")
    alpha.dispatch(paglet.agent_id, TransferTicket(proxy.url, timeout=5.0))
    _settled(alpha, beta, paglet.agent_id, beta)
    assert beta.get_state(paglet.agent_id, TravelState).log[-1] == "run:beta"


def test_a_stalled_network_times_out_and_keeps_the_paglet(pair: tuple[Host, Host, FaultProxy]) -> None:
    alpha, beta, proxy = pair
    paglet = alpha.create(Traveller)
    proxy.arm("stall")
    with pytest.raises(TransferError, match="after 1 attempt"):
        alpha.dispatch(paglet.agent_id, TransferTicket(proxy.url, timeout=1.0))
    _settled(alpha, beta, paglet.agent_id, alpha)
    assert paglet.send(Message("log"))[-1] == "dispatching:alpha->beta"


def test_a_slow_run_on_the_target_does_not_duplicate(make_host: Callable[..., Host]) -> None:
    alpha, beta = make_host("alpha"), make_host("beta")
    paglet = alpha.create(SlowRunner)
    moved = alpha.dispatch(paglet.agent_id, TransferTicket(beta.address, timeout=1.0))
    assert moved.host_url == beta.address
    _settled(alpha, beta, paglet.agent_id, beta)
    assert beta.get_state(paglet.agent_id, TravelState).log[-1] == "slow run done"


def test_the_target_host_killed_mid_stream(make_host: Callable[..., Host], tmp_path: Path) -> None:
    alpha = make_host("alpha")
    beta_proc = subprocess.Popen(
        [sys.executable, str(HERE / "_hostproc.py"), "beta", str(tmp_path / "beta")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert beta_proc.stdout is not None
        line = beta_proc.stdout.readline().split()
        assert line[0] == "READY"
        parts = urlsplit(line[1])
        proxy = FaultProxy(parts.hostname or "127.0.0.1", parts.port or 0)
        doomed: set[int] = set()

        def kill_beta() -> None:
            # the process tree is recorded before the kill: after it, the dead host has no children
            doomed.update(children_of(beta_proc.pid))
            os.kill(beta_proc.pid, signal.SIGKILL)

        proxy.on_fault = kill_beta
        paglet = alpha.create(Traveller, TravelState(payload=os.urandom(4 << 20)))
        proxy.arm("kill_mid_stream")
        with pytest.raises(TransferError):
            alpha.dispatch(paglet.agent_id, TransferTicket(proxy.url, timeout=5.0))
        assert beta_proc.wait(10) == -signal.SIGKILL
        assert paglet.send(Message("size")) == 4 << 20
        assert _live_copies(paglet.agent_id, alpha) == ["alpha"]
        proxy.close()
    finally:
        if beta_proc.poll() is None:
            beta_proc.kill()
        beta_proc.wait(10)
        if beta_proc.stdin is not None:
            beta_proc.stdin.close()
        if beta_proc.stdout is not None:
            beta_proc.stdout.close()
    # the killed host's zygote and its children die with it (parent-death signal)
    assert doomed, "the host had no template process when it was killed"
    wait_until(lambda: not any(os.path.exists(f"/proc/{p}") for p in doomed))


def _rss_anon_kib() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    return 0


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_256_mib_state_moves_with_bounded_host_memory(make_host: Callable[..., Host]) -> None:
    alpha, beta = make_host("alpha"), make_host("beta")
    size = 256 << 20
    paglet = alpha.create(Traveller, TravelState(payload=os.urandom(size)))
    before = _rss_anon_kib()
    moved = alpha.dispatch(paglet.agent_id, TransferTicket(beta.address, timeout=120.0))
    growth_mib = (_rss_anon_kib() - before) / 1024
    assert moved.send(Message("size")) == size
    # both hosts live in this process: the state never sits in their heaps (memfd segments instead)
    assert growth_mib < 64, f"host memory grew by {growth_mib:.0f} MiB"


def test_a_commit_in_doubt_waits_then_settles_on_the_source(
    make_host: Callable[..., Host], tmp_path: Path
) -> None:
    """The target stops between prepare and commit and stays away past the caller's window: the caller
    gets ``TransferInDoubtError`` (never success), the paglet stays paused on the source with its
    messages waiting, and once the target is back (without the prepared copy) the paglet runs on."""
    from _movehosts import free_port, transfer_records

    from paglets.core.errors import TransferInDoubtError

    alpha = make_host("alpha")
    port = free_port()
    beta = make_host("beta", port=port)
    proxy = FaultProxy("127.0.0.1", port)
    try:
        paglet = alpha.create(Traveller)
        proxy.on_fault = beta.stop
        proxy.arm("call_and_drop", path_prefix="/transfers/")
        started = time.monotonic()
        with pytest.raises(TransferInDoubtError) as caught:
            alpha.dispatch(paglet.agent_id, TransferTicket(proxy.url, timeout=0.5))
        assert time.monotonic() - started >= 3.0  # the commit window: at least 3 s and 5 attempts
        transfer_id = caught.value.transfer_id
        assert len(transfer_id) == 32
        assert transfer_id in str(caught.value)
        assert (transfer_id, "source") in transfer_records(tmp_path / "alpha")
        assert [a["status"] for a in alpha.list_agents() if a["agent_id"] == paglet.agent_id] == ["moving"]
        paused = alpha.get_proxy(paglet.agent_id)
        assert paused is not None
        waiting = paused.send_future(
            Message("log"), activate_if_inactive=False
        )  # waits in the paused mailbox
        assert not waiting.is_available()
        make_host("beta", port=port)  # back, without the prepared copy: the source resumes its own
        assert waiting.get_reply(30)[-1] == "dispatching:alpha->beta"
        _settled_one(alpha, paglet.agent_id)
        wait_until(lambda: (transfer_id, "source") not in transfer_records(tmp_path / "alpha"), 30)
    finally:
        proxy.close()


def _settled_one(alpha: Host, agent_id: str) -> None:
    wait_until(lambda: [a["status"] for a in alpha.list_agents() if a["agent_id"] == agent_id] == ["ready"])


def test_records_are_dropped_once_both_sides_know(make_host: Callable[..., Host], tmp_path: Path) -> None:
    """A dispatch and a fan-out of clones leave no transfer record behind on either host (the clones'
    forgets go out in one batch), and a move within one host writes none."""
    from _movehosts import transfer_records

    alpha, beta = make_host("alpha"), make_host("beta")
    original = alpha.create(Traveller)
    clones = [alpha.clone(original.agent_id, target=beta.address) for _ in range(3)]
    moved = alpha.dispatch(original.agent_id, beta.address)
    assert moved.host_url == beta.address
    wait_until(lambda: not transfer_records(tmp_path / "alpha") and not transfer_records(tmp_path / "beta"))
    assert all(clone.send(Message("log"))[-1] == "run:beta" for clone in clones)
    beta.dispatch(original.agent_id, beta.address)  # within one host
    assert not transfer_records(tmp_path / "beta")


@pytest.mark.parametrize("initiated", ["host", "self"])
def test_a_clone_confirmed_after_an_in_doubt_answer_runs_its_cloned_hook_once(
    pair: tuple[Host, Host, FaultProxy], initiated: str
) -> None:
    """The clone's commit executes on the target but no answer comes back: the caller is told the clone is
    in doubt and the original runs on. Once the target answers again, the background confirmation runs the
    original's ``on_cloned`` (once), as a clone confirmed while the caller waits does (paglets 2.0 runs it
    after the target accepted the clone)."""
    from paglets.core.errors import PagletError, TransferInDoubtError

    alpha, beta, proxy = pair

    def unreachable() -> None:  # no transfer request reaches beta from now on
        proxy.on_fault = lambda: None
        proxy.arm("call_and_drop", times=10**6, path_prefix="/transfers/")

    original = alpha.create(Traveller)
    proxy.on_fault = unreachable
    proxy.arm("forward_call_and_drop", path_prefix="/transfers/")  # executed; its answer is lost
    if initiated == "host":
        with pytest.raises(TransferInDoubtError):
            alpha.clone(original.agent_id, target=TransferTicket(proxy.url, timeout=0.5))
    else:
        with pytest.raises(PagletError, match="in doubt"):
            original.send(Message("clone_quick", arg=proxy.url))
    log = original.send(Message("log"))
    assert "cloning" in log
    assert "cloned" not in log  # not confirmed yet
    clones = [a["agent_id"] for a in beta.list_agents() if a["agent_id"] != original.agent_id]
    assert len(clones) == 1  # the clone runs on beta
    proxy.arm("none")  # the source's background confirmation gets through
    wait_until(lambda: "cloned" in original.send(Message("log")), timeout=30)
    wait_until(
        lambda: not alpha.movement.sources or all(r.machine.final for r in alpha.movement.sources.values())
    )
    assert original.send(Message("log")).count("cloned") == 1
    assert [e.kind for e in alpha.events.events_since(0, 1000) if e.kind == "clone"] == ["clone"]
