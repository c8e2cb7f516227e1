"""A source host stopped gracefully while a move is in doubt keeps the paglet (``docs/design.md``, Movement).

Two real host processes (``_movehosts.HostProcess``) and the HTTP fault proxy in front of the target. The
source decided commit, but the target's answer never comes back; the caller is told the move is in doubt
and the source keeps its paused copy. Then the source is stopped gracefully (``Host.stop()``): it saves the
paused copy, with the messages that waited for it, as the transfer's *held copy* instead of ending it.
After both hosts are back:

- the target had lost its prepared copy (SIGKILLed before executing): the held copy is the paglet again,
  on the source, with its state and its queued messages (before: reported ``lost``, gone);
- the target had executed (only its answers were lost): the paglet runs there, once, and the held copy
  is dropped.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import pytest
from _faultproxy import FaultProxy
from _movehosts import HostProcess, copies, create_hopper, marks_of, transfer_records
from conftest import wait_until

from paglets.core.errors import PagletError, TransferInDoubtError
from paglets.core.messages import Message
from paglets.http.client import HttpClient

#: Seconds a transfer may take to settle after a restart (the source asks at once, then backs off).
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


def _dispatch(client: HttpClient, source: HostProcess, agent_id: str, destination: str) -> Any:
    try:
        reply = client.request_json(
            "POST",
            f"{source.url}/agents/{agent_id}/dispatch",
            {"ticket": {"destination": destination, "timeout": 1.0}},
            timeout=90,
        )
    except (PagletError, OSError) as exc:
        return exc
    return reply["proxy"]


def _send(
    client: HttpClient, host: HostProcess, agent_id: str, kind: str, arg: Any = None, **opts: Any
) -> Any:
    body = {"message": Message(kind, arg=arg).to_wire(), **opts}
    return client.request_json("POST", f"{host.url}/agents/{agent_id}/messages", body, timeout=30)["result"]


def _held(host: HostProcess) -> list[str]:
    held = host.directory / "held"
    return sorted(p.name for p in held.glob("*.rec")) if held.is_dir() else []


def test_in_doubt_copy_held_at_stop_comes_back_when_the_target_lost_it(
    hosts: tuple[HostProcess, HostProcess], client: HttpClient, marks: Path
) -> None:
    alpha, beta = hosts
    proxy = FaultProxy("127.0.0.1", beta.port)
    try:
        agent_id = create_hopper(client, alpha, marks)
        wait_until(lambda: marks_of(marks, agent_id) == [(1, "alpha")])
        proxy.on_fault = beta.kill  # the commit never arrives; beta dies with its prepared copy
        proxy.arm("call_and_drop", path_prefix="/transfers/")
        outcome = _dispatch(client, alpha, agent_id, proxy.url)
        assert isinstance(outcome, TransferInDoubtError), outcome
        assert copies(client, agent_id, alpha) == [("alpha", "moving")]  # paused, kept
        # a message for the paused paglet waits in its mailbox
        assert _send(client, alpha, agent_id, "note", "while in doubt", oneway=True) is None
        alpha.stop()  # graceful: the paused copy is held, not ended
        assert len(_held(alpha)) == 1
        assert [role for _tid, role in transfer_records(alpha.directory)] == ["source"]
        beta.start()  # back without the prepared copy: it answers "unknown"
        alpha.start()
        wait_until(lambda: copies(client, agent_id, alpha, beta) == [("alpha", "ready")], timeout=SETTLE)
        wait_until(lambda: marks_of(marks, agent_id) == [(1, "alpha"), (2, "alpha")], timeout=SETTLE)
        assert _send(client, alpha, agent_id, "hops") == 2  # its state: one run() before, one after
        assert _send(client, alpha, agent_id, "notes") == ["while in doubt"]
        wait_until(lambda: not _held(alpha) and not transfer_records(alpha.directory), timeout=SETTLE)
    finally:
        proxy.close()


def test_in_doubt_copy_held_at_stop_is_dropped_when_the_target_ran_it(
    hosts: tuple[HostProcess, HostProcess], client: HttpClient, marks: Path
) -> None:
    alpha, beta = hosts
    proxy = FaultProxy("127.0.0.1", beta.port)

    def unreachable() -> None:  # from now on no transfer request reaches beta, which runs on
        proxy.on_fault = lambda: None
        proxy.arm("call_and_drop", times=10**6, path_prefix="/transfers/")

    try:
        agent_id = create_hopper(client, alpha, marks)
        proxy.on_fault = unreachable
        proxy.arm("forward_call_and_drop", path_prefix="/transfers/")  # executed, answer lost
        outcome = _dispatch(client, alpha, agent_id, proxy.url)
        assert isinstance(outcome, TransferInDoubtError), outcome
        wait_until(lambda: marks_of(marks, agent_id) == [(1, "alpha"), (2, "beta")], timeout=SETTLE)
        alpha.stop()
        assert len(_held(alpha)) == 1
        proxy.arm("none")  # beta is reachable again
        alpha.start()
        wait_until(lambda: not _held(alpha), timeout=SETTLE)
        wait_until(lambda: not transfer_records(alpha.directory), timeout=SETTLE)
        assert copies(client, agent_id, alpha, beta) == [("beta", "ready")]
        assert marks_of(marks, agent_id) == [(1, "alpha"), (2, "beta")]
    finally:
        proxy.close()
