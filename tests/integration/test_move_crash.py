"""A host process SIGKILLed in the middle of a move, then restarted: the paglet runs exactly once.

Two real host processes (``_movehosts.HostProcess``: fixed ports, so a restart keeps the address) and the
HTTP fault proxy in front of the target, which kills a host at exactly one step of the hand-over:

- the **source**, after it decided commit (the commit request never reaches the target), and before it
  decided anything (the target prepared, the answer never reaches the source);
- the **target**, before the commit reaches it, and after it executed the commit (its answer never
  reaches the source).

The paglet (``_move_paglets.Hopper``) leaves a mark on disk each time its ``run()`` starts, so a test knows
where it ran even on a host that died. A caller is never told "success" unless the target executed the
move (then the paglet ran there; if that host dies afterwards, the paglet dies with it like any active
paglet, ``docs/design.md`` "Movement").
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import pytest
from _faultproxy import FaultProxy
from _movehosts import HostProcess, copies, create_hopper, executed_records, marks_of, transfer_records
from conftest import wait_until

from paglets.core.errors import PagletError, TransferError, TransferInDoubtError
from paglets.http.client import HttpClient

#: Seconds a settled transfer may take to show (a target asks a silent source after 5 s).
SETTLE: Final = 30.0


@pytest.fixture
def client() -> Iterator[HttpClient]:
    with HttpClient() as http:
        yield http


@pytest.fixture
def marks(tmp_path: Path) -> Path:
    path = tmp_path / "marks"
    path.mkdir()
    return path


@pytest.fixture
def hosts(tmp_path: Path) -> Iterator[tuple[HostProcess, HostProcess]]:
    alpha = HostProcess("alpha", tmp_path / "alpha")
    beta = HostProcess("beta", tmp_path / "beta")
    yield alpha, beta
    alpha.stop()
    beta.stop()


def _dispatch(
    client: HttpClient, source: HostProcess, agent_id: str, destination: str, timeout: float = 2.0
) -> Any:
    """Dispatch over HTTP; returns the proxy dict, or the error raised (a dead source: ``OSError``)."""
    try:
        reply = client.request_json(
            "POST",
            f"{source.url}/agents/{agent_id}/dispatch",
            {"ticket": {"destination": destination, "timeout": timeout}},
            timeout=60 + 2 * timeout,
        )
    except (PagletError, OSError) as exc:
        return exc
    return reply["proxy"]


def _runs_once_on(client: HttpClient, agent_id: str, where: str, *hosts: HostProcess) -> None:
    wait_until(lambda: copies(client, agent_id, *hosts) == [(where, "ready")], timeout=SETTLE)


def test_source_killed_after_deciding_commit(
    hosts: tuple[HostProcess, HostProcess], client: HttpClient, marks: Path
) -> None:
    alpha, beta = hosts
    proxy = FaultProxy("127.0.0.1", beta.port)
    try:
        agent_id = create_hopper(client, alpha, marks)
        proxy.on_fault = alpha.kill
        proxy.arm("call_and_drop", path_prefix="/transfers/")
        outcome = _dispatch(client, alpha, agent_id, proxy.url)
        assert not isinstance(outcome, dict), outcome  # the source died
        wait_until(lambda: not alpha.alive)
        assert any(line.endswith("/commit") for line in proxy.fault.seen)
        alpha.restart()  # its decision is durable: it pushes the commit again
        _runs_once_on(client, agent_id, "beta", alpha, beta)
        assert marks_of(marks, agent_id) == [(1, "alpha"), (2, "beta")]
        wait_until(lambda: not transfer_records(alpha.directory), timeout=SETTLE)
        wait_until(lambda: not transfer_records(beta.directory), timeout=SETTLE)
    finally:
        proxy.close()


def test_source_killed_before_deciding(
    hosts: tuple[HostProcess, HostProcess], client: HttpClient, marks: Path
) -> None:
    alpha, beta = hosts
    proxy = FaultProxy("127.0.0.1", beta.port)
    try:
        agent_id = create_hopper(client, alpha, marks)
        proxy.on_fault = alpha.kill
        proxy.arm("forward_call_and_drop", path_prefix="/agents")  # the envelope: prepared, unanswered
        outcome = _dispatch(client, alpha, agent_id, proxy.url)
        assert not isinstance(outcome, dict), outcome  # the source died
        wait_until(lambda: not alpha.alive)
        assert not transfer_records(alpha.directory)  # nothing was decided
        alpha.restart()  # a new incarnation that knows nothing: the target commits its prepared copy
        _runs_once_on(client, agent_id, "beta", alpha, beta)
        assert marks_of(marks, agent_id) == [(1, "alpha"), (2, "beta")]
    finally:
        proxy.close()


def _kill_and_restart(host: HostProcess) -> None:
    host.kill()
    threading.Thread(target=host.restart, daemon=True).start()


def test_target_killed_before_the_commit(
    hosts: tuple[HostProcess, HostProcess], client: HttpClient, marks: Path
) -> None:
    alpha, beta = hosts
    proxy = FaultProxy("127.0.0.1", beta.port)
    try:
        agent_id = create_hopper(client, alpha, marks)
        proxy.on_fault = lambda: _kill_and_restart(beta)
        proxy.arm("call_and_drop", path_prefix="/transfers/")
        outcome = _dispatch(client, alpha, agent_id, proxy.url)
        # the target lost its prepared copy: the source resumes its own (at once, or after an in-doubt answer)
        assert isinstance(outcome, TransferError), outcome
        _runs_once_on(client, agent_id, "alpha", alpha, beta)
        assert marks_of(marks, agent_id) == [(1, "alpha")]
        wait_until(lambda: not transfer_records(alpha.directory), timeout=SETTLE)
    finally:
        proxy.close()


def test_target_killed_after_executing(
    hosts: tuple[HostProcess, HostProcess], client: HttpClient, marks: Path
) -> None:
    alpha, beta = hosts
    proxy = FaultProxy("127.0.0.1", beta.port)
    try:
        agent_id = create_hopper(client, alpha, marks)
        proxy.on_fault = lambda: _kill_and_restart(beta)
        proxy.arm("forward_call_and_drop", path_prefix="/transfers/")  # executed, answer lost, killed
        outcome = _dispatch(client, alpha, agent_id, proxy.url)
        # the target executed: success (or in doubt until it is back), never a failure
        assert isinstance(outcome, dict | TransferInDoubtError), outcome
        # the paglet ran on beta and died with it (an active paglet); the source released its copy
        wait_until(lambda: beta.alive and copies(client, agent_id, alpha, beta) == [], timeout=SETTLE)
        wait_until(lambda: not transfer_records(alpha.directory), timeout=SETTLE)
        assert copies(client, agent_id, alpha, beta) == []
    finally:
        proxy.close()


# --- soak: move back and forth, kill the target at random moments ---------------------------------------


def soak(
    tmp: Path,
    rounds: int,
    *,
    seed: int,
    payload: int = 0,
    kill_window: float = 0.03,
    deadline: float = 90.0,
    ticket_timeout: float = 5.0,
) -> dict[str, int]:
    """Move one paglet back and forth between two host processes for ``rounds`` rounds, killing (then
    restarting) the target at a random moment in about half of them; returns the counts. The ticket's
    timeout is generous: on a loaded machine a short one makes healthy rounds fail (as failures, never
    as duplicates or losses)."""
    rng = random.Random(seed)
    marks = tmp / "marks"
    marks.mkdir()
    a, b = HostProcess("alpha", tmp / "alpha"), HostProcess("beta", tmp / "beta")
    counts = dict(
        rounds=0, kills=0, success=0, failure=0, in_doubt=0, duplicates=0, losses=0,
        losses_outside_case=0, success_for_lost=0, failure_but_moved=0,
    )  # fmt: skip
    started = time.monotonic()
    verbose = bool(os.environ.get("PAGLETS_MOVE_SOAK_VERBOSE"))
    try:
        with HttpClient() as client:
            agent_id = create_hopper(client, a, marks, payload)
            where = {"alpha": a, "beta": b}
            for _round in range(rounds):
                if time.monotonic() - started > deadline:
                    break
                counts["rounds"] += 1
                here = copies(client, agent_id, a, b)
                source = where[here[0][0]]
                target = b if source is a else a
                hop = marks_of(marks, agent_id)[-1][0] + 1
                killer = None
                before = executed_records(target)
                executed: set[str] = set()
                if rng.random() < 0.5:
                    counts["kills"] += 1
                    delay = rng.uniform(0.0, kill_window)

                    def seen(t: HostProcess = target, b: set[str] = before, e: set[str] = executed) -> None:
                        e.update(executed_records(t) - b)  # the record of this round's commit, if written

                    killer = threading.Timer(delay, target.restart, kwargs={"while_down": seen})
                    killer.start()
                outcome = _dispatch(client, source, agent_id, target.url, ticket_timeout)
                if killer is not None:
                    killer.join()
                    wait_until(lambda t=target: t.alive, timeout=30)
                if isinstance(outcome, dict):
                    counts["success"] += 1
                elif isinstance(outcome, TransferInDoubtError):
                    counts["in_doubt"] += 1
                else:
                    counts["failure"] += 1
                if verbose:
                    print(_round, source.name, "->", target.name, killer is not None, repr(outcome)[:200])
                found = _settle(client, agent_id, a, b)
                # evidence that the target executed this hop: run() left its mark, or the target had written
                # its executed record when it was killed (run() was starting)
                ran_on_target = (hop, target.name) in marks_of(marks, agent_id) or bool(executed)
                if len(found) > 1:
                    counts["duplicates"] += 1
                if not found:
                    counts["losses"] += 1
                    if not (killer is not None and ran_on_target):
                        counts["losses_outside_case"] += 1
                        print("lost outside the stated case:", _round, source.name, target.name, outcome)
                    if isinstance(outcome, dict) and not ran_on_target:
                        counts["success_for_lost"] += 1
                    agent_id = create_hopper(client, a, marks, payload)
                    continue
                failed = isinstance(outcome, TransferError) and not isinstance(outcome, TransferInDoubtError)
                if failed and found[0][0] == target.name:
                    counts["failure_but_moved"] += 1
    finally:
        a.stop()
        b.stop()
    return counts


def _settle(client: HttpClient, agent_id: str, *hosts: HostProcess) -> list[tuple[str, str]]:
    """The copies once no transfer of the paglet is open (none paused), or none at all."""
    deadline = time.monotonic() + SETTLE
    while True:
        found = copies(client, agent_id, *hosts)
        if all(status == "ready" for _name, status in found) and all(h.alive for h in hosts):
            if len(found) != 1:  # nothing, or two: look again once in-doubt resolution had its chance
                time.sleep(0.2)
                again = copies(client, agent_id, *hosts)
                if again == found and _no_open_records(*hosts):
                    return found
            else:
                return found
        if time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def _no_open_records(*hosts: HostProcess) -> bool:
    return not any(role == "source" for h in hosts for _tid, role in transfer_records(h.directory))


@pytest.mark.timeout(300)
def test_soak_moves_with_target_kills(tmp_path: Path) -> None:
    rounds = int(os.environ.get("PAGLETS_MOVE_SOAK_ROUNDS", "40"))
    counts = soak(tmp_path, rounds, seed=int(os.environ.get("PAGLETS_MOVE_SOAK_SEED", "12")))
    print(counts)
    assert counts["rounds"] >= min(rounds, 20), counts
    assert counts["duplicates"] == 0, counts
    assert counts["losses_outside_case"] == 0, counts
    assert counts["success_for_lost"] == 0, counts
    assert counts["failure_but_moved"] == 0, counts
