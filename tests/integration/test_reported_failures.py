"""Errors nobody waits for are reported, never dropped: a failing background task (``task-failed``), a
oneway message that cannot be forwarded to a paglet that moved (``message-forward-failed``), a staged
registered file that cannot be removed after a failed move (``file-unstage-failed``). Each is a context
event and an error log line; what must hold is checked without timing (the events appear)."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from _faultproxy import FaultProxy
from _paglets import FileCarrier, LeavesWithMail
from conftest import wait_until

from paglets.core.context_events import ContextEvent
from paglets.core.errors import TransferError
from paglets.core.messages import Message
from paglets.remote.transfer import TransferTicket
from paglets.runtime.host import Host

HERE = Path(__file__).resolve().parent


def _events(host: Host, kind: str) -> list[ContextEvent]:
    return [e for e in host.list_events(limit=1000) if e.kind == kind]


async def _boom() -> None:
    raise RuntimeError("the background task failed")


async def _start_failing_tasks(host: Host) -> None:
    host.spawn_task(_boom())
    host.movement.spawn(_boom())


def test_a_failing_background_task_is_reported(host: Host, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="paglets.runtime"):
        host._run(_start_failing_tasks(host))
        wait_until(lambda: len(_events(host, "task-failed")) == 2)
    for event in _events(host, "task-failed"):
        assert event.data["task"] == "_boom"
        assert event.data["error_type"] == "RuntimeError"
        assert event.error == "RuntimeError: the background task failed"
    assert caplog.text.count("background task _boom failed") == 2
    assert "Traceback" in caplog.text


def test_oneway_messages_that_cannot_be_forwarded_are_reported(
    make_host: Callable[..., Host], tmp_path: Path
) -> None:
    alpha, beta = make_host("alpha"), make_host("beta")
    gate = tmp_path / "gate"
    proxy = alpha.create(LeavesWithMail, agent_id="leaver")
    proxy.send_oneway(Message("wait_then_go", {"gate": str(gate), "to": beta.address}))
    for n in range(3):  # queued behind the handler: they move with the paglet
        proxy.send_oneway(Message("rec", message_id=f"waiting-{n}"))
    wait_until(lambda: alpha.mailbox_status("leaver")["queued_count"] == 3)
    gate.touch()
    wait_until(lambda: len(_events(alpha, "message-forward-failed")) == 3, timeout=30)
    reported = _events(alpha, "message-forward-failed")
    assert sorted(e.message_id or "" for e in reported) == ["waiting-0", "waiting-1", "waiting-2"]
    for event in reported:
        assert event.agent_id == "leaver"
        assert event.data["target"] == beta.address
        assert event.data["message_kind"] == "rec"
        assert event.error is not None


def test_a_staged_file_that_cannot_be_removed_is_reported(
    make_host: Callable[..., Host], tmp_path: Path
) -> None:
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
        fault = FaultProxy(parts.hostname or "127.0.0.1", parts.port or 0)
        fault.on_fault = lambda: os.kill(beta_proc.pid, signal.SIGKILL)
        source = tmp_path / "input.bin"
        source.write_bytes(os.urandom(1 << 20))
        carrier = alpha.create(FileCarrier, agent_id="carrier")
        carrier.send(Message("register", arg=str(source)))
        fault.arm("kill_mid_stream")  # the file is staged on beta, then beta dies during the envelope
        with pytest.raises(TransferError):
            alpha.dispatch("carrier", TransferTicket(fault.url, timeout=5.0))
        assert beta_proc.wait(10) == -signal.SIGKILL
        wait_until(lambda: _events(alpha, "file-unstage-failed"), timeout=30)
        (event,) = _events(alpha, "file-unstage-failed")
        assert event.agent_id == "carrier"
        assert event.data["file"] == "data"
        assert event.error is not None
        assert source.exists()  # the paglet and its file stay where they were
        assert carrier.send(Message("read")) == source.read_bytes()
        fault.close()
    finally:
        if beta_proc.poll() is None:
            beta_proc.kill()
        beta_proc.wait(10)
        for stream in (beta_proc.stdin, beta_proc.stdout):
            if stream is not None:
                stream.close()
