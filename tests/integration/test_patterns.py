"""``paglets.patterns`` on real hosts: tasks, operations, clone fan-out, file mobility, notifications."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from _pattern_paglets import (
    ADD,
    NOTE,
    AddReply,
    AddRequest,
    Calculator,
    NoteRequest,
    Notifier,
    SumRequest,
    SumResult,
    SumTask,
    Survey,
    SurveyState,
)
from conftest import wait_until

from paglets.core.errors import NotHandledError
from paglets.core.messages import Message
from paglets.patterns import (
    FileTransferMode,
    FileTransferRequest,
    FileTransferResult,
    OperationClient,
    SingleFileTransferPaglet,
    TaskClient,
    TaskStatus,
    format_bytes,
)
from paglets.remote.client import HostClient
from paglets.remote.proxy import PagletProxy
from paglets.runtime.host import Host
from paglets.services.builtin.user_info import READ_USER_INFO, USER_INFO_AGENT_ID, UserInfoReadRequest

USER_INFO_CONFIG = """
[launch]
sync_demo_config = false

[[resident_services]]
class = "paglets.services.builtin.user_info:UserInfoAgent"
state = { echo = false }
"""


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Host, Host]]:
    """alpha and beta, each with a user-info service, shared by the module's tests."""
    root = tmp_path_factory.mktemp("pair")
    config = root / "launch.toml"
    config.write_text(USER_INFO_CONFIG)
    options: dict[str, object] = {
        "mesh_lan_discovery": False,
        "mesh_multicast": False,
        "launch_config": config,
    }
    alpha = Host("alpha", persistence_dir=root / "alpha", **options)  # type: ignore[arg-type]
    alpha.start_background()
    beta = Host("beta", persistence_dir=root / "beta", peers=[alpha.address], **options)  # type: ignore[arg-type]
    try:
        beta.start_background()
        wait_until(lambda: {h.name for h in alpha.list_hosts(online_only=True)} == {"alpha", "beta"}, 20)
        wait_until(lambda: {h.name for h in beta.list_hosts(online_only=True)} == {"alpha", "beta"}, 20)
        yield alpha, beta
    finally:
        beta.stop()
        alpha.stop()


@pytest.fixture
def host(pair: tuple[Host, Host]) -> Host:
    return pair[0]


_HTTP: list[HostClient] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _HTTP:
        _HTTP.pop().close()


def _http() -> HostClient:
    _HTTP.append(HostClient(timeout=10.0))
    return _HTTP[-1]


def _client(proxy: PagletProxy) -> PagletProxy:
    """The proxy as a remote process would hold it (HTTP, no same-process shortcut)."""
    return PagletProxy(proxy.host_url, proxy.agent_id, _http())


# --- tasks ----------------------------------------------------------------------------------------------


def test_task_completes_in_run_task_and_reports_a_typed_result(host: Host) -> None:
    client = TaskClient.for_paglet(_client(host.create(SumTask)), SumTask)
    before = client.status()
    assert (before.status, before.done, before.result) == (TaskStatus.NEW, False, None)
    snapshot = client.start_and_wait(SumRequest([1, 2, 3]))
    assert snapshot.status is TaskStatus.COMPLETED
    assert snapshot.done
    assert snapshot.result == SumResult(6, 3)
    assert (snapshot.host_name, snapshot.host_url) == ("alpha", host.address)
    assert snapshot.started_at <= snapshot.completed_at
    assert snapshot.to_wire()["result"] == {"total": 6, "count": 3}


def test_task_left_running_is_completed_later_and_wait_returns_it(host: Host) -> None:
    proxy = _client(host.create(SumTask))
    client = TaskClient.for_paglet(proxy, SumTask)
    started = client.start(SumRequest([4, 5], mode="later"))
    assert (started.status, started.done) == (TaskStatus.RUNNING, False)
    began = time.monotonic()
    waited = client.wait(wait_timeout=0.2)
    assert not waited.done
    assert time.monotonic() - began >= 0.2  # the handler waited for the task, as long as asked
    assert proxy.send(Message("finish")) == "finished"
    done = client.wait(wait_timeout=5)
    assert done.result == SumResult(9, 2)
    assert host.get_state(proxy.agent_id, SumTask.State).finished_by == "message"


def test_task_failure_and_unknown_messages(host: Host) -> None:
    proxy = _client(host.create(SumTask))
    client = TaskClient.for_paglet(proxy, SumTask)
    failed = client.start(SumRequest([1], mode="fail"))
    assert (failed.status, failed.done, failed.error) == (TaskStatus.FAILED, True, "cannot sum that")
    assert failed.result is None
    with pytest.raises(NotHandledError):
        proxy.send(Message("nonsense"))


# --- operations -----------------------------------------------------------------------------------------


def test_operation_paglet_routes_typed_operations(host: Host) -> None:
    proxy = _client(host.create(Calculator))
    client = OperationClient(proxy)
    assert client.call(ADD, AddRequest(2, 40)) == AddReply(42)
    client.send_oneway(NOTE, NoteRequest("hello"))
    wait_until(lambda: proxy.send(Message("notes")) == ["hello"])
    with pytest.raises(NotHandledError):
        proxy.send(Message("subtract"))


# --- fan-out --------------------------------------------------------------------------------------------


def test_fanout_clones_collects_expires_and_cleans_up(pair: tuple[Host, Host]) -> None:
    alpha, _beta = pair
    before = {a["agent_id"] for a in alpha.list_agents()}
    proxy = _client(alpha.create(Survey, SurveyState(silent=["beta"])))
    assert proxy.send(Message("start", {"timeout": 0.5})) == ["alpha", "beta"]
    summary: dict[str, object] = {}

    def alpha_reported() -> bool:
        summary.update(proxy.send(Message("summary")))
        return summary["done"] == ["alpha"]

    wait_until(alpha_reported)
    assert summary["role"] == "parent"
    assert summary["reports"] == {"alpha": "alpha"}
    assert summary["children"] == ["alpha", "beta"]
    assert summary["pending"] == ["beta"]
    wait_until(lambda: proxy.send(Message("expire")) == {"beta": "no report before the deadline"})
    clones = {a["agent_id"] for a in alpha.list_agents()} - before - {proxy.agent_id}
    assert len(clones) == 1
    assert proxy.send(Message("cleanup")) == {}
    assert {a["agent_id"] for a in alpha.list_agents()} == before | {proxy.agent_id}
    after = proxy.send(Message("summary"))
    assert after["children"] == []
    assert after["pending"] == []


def test_fanout_records_unknown_targets(pair: tuple[Host, Host]) -> None:
    alpha, _beta = pair
    proxy = _client(alpha.create(Survey))
    assert proxy.send(Message("start", {"targets": ["beta", "nowhere"], "timeout": 10})) == ["beta"]
    wait_until(lambda: proxy.send(Message("summary"))["done"] == ["beta"])
    summary = proxy.send(Message("summary"))
    assert summary["errors"] == {"nowhere": "host is not online (or not in the mesh)"}
    assert summary["reports"] == {"beta": "beta"}
    proxy.send(Message("cleanup"))


# --- file mobility --------------------------------------------------------------------------------------


def _push(alpha: Host, request: FileTransferRequest) -> TaskClient[FileTransferRequest, FileTransferResult]:
    client = TaskClient.for_paglet(_client(alpha.create(SingleFileTransferPaglet)), SingleFileTransferPaglet)
    client.start(request, timeout=30)
    return client


@pytest.mark.parametrize("mode", [FileTransferMode.COPY, FileTransferMode.MOVE])
def test_file_travels_and_is_saved_atomically(
    pair: tuple[Host, Host], tmp_path: Path, mode: FileTransferMode
) -> None:
    alpha, beta = pair
    data = os.urandom(300_000)
    source = tmp_path / "data.bin"
    source.write_bytes(data)
    destination = tmp_path / "out" / "copy.bin"
    client = _push(alpha, FileTransferRequest(str(source), str(destination), target_host="beta", mode=mode))
    snapshot = client.wait(wait_timeout=5)
    assert snapshot.status is TaskStatus.COMPLETED, snapshot.error
    assert client.proxy.host_url == beta.address  # the client followed the paglet
    result = snapshot.result
    assert result is not None
    assert result.destination.host_name == "beta"
    assert result.destination.path == str(destination)
    assert result.source.host_name == "alpha"
    assert result.size_bytes == len(data)
    assert result.size == format_bytes(len(data)) == "293.0 KB"
    assert result.sha256 == hashlib.sha256(data).hexdigest()
    assert destination.read_bytes() == data
    assert source.exists() is (mode is FileTransferMode.COPY)
    assert not [p for p in destination.parent.iterdir() if p.name.endswith(".part")]
    client.proxy.dispose()
    assert destination.read_bytes() == data  # outside the work dir: kept


def test_existing_destination_needs_overwrite_and_a_failed_move_keeps_the_source(
    pair: tuple[Host, Host], tmp_path: Path
) -> None:
    alpha, _beta = pair
    source = tmp_path / "data.bin"
    source.write_bytes(b"new" * 1000)
    destination = tmp_path / "there.bin"
    destination.write_bytes(b"old")
    request = FileTransferRequest(
        str(source), str(destination), target_host="beta", mode=FileTransferMode.MOVE
    )
    client = _push(alpha, request)
    snapshot = client.status()
    assert snapshot.status is TaskStatus.FAILED
    assert "destination already exists" in snapshot.error
    assert client.proxy.host_url == alpha.address  # the paglet never left
    assert source.read_bytes() == b"new" * 1000  # move mode, failed arrival: the source stays
    assert destination.read_bytes() == b"old"
    replaced = _push(
        alpha, FileTransferRequest(str(source), str(destination), target_host="beta", overwrite=True)
    )
    done = replaced.wait(wait_timeout=5)
    assert done.status is TaskStatus.COMPLETED, done.error
    assert done.result is not None
    assert done.result.replaced
    assert destination.read_bytes() == b"new" * 1000


def test_dry_run_and_bad_sources(pair: tuple[Host, Host], tmp_path: Path) -> None:
    alpha, _beta = pair
    source = tmp_path / "data.bin"
    source.write_bytes(b"x" * 2048)
    dry = _push(alpha, FileTransferRequest(str(source), "/tmp/", target_host="beta", dry_run=True)).status()
    assert dry.status is TaskStatus.COMPLETED
    assert dry.result is not None
    assert dry.result.dry_run
    assert dry.result.destination.path == "/tmp/data.bin"
    assert (dry.result.destination.host_name, dry.result.size) == ("beta", "2.0 KB")
    missing = _push(alpha, FileTransferRequest(str(tmp_path / "nope.bin"), target_host="beta")).status()
    assert (missing.status, missing.error) == (
        TaskStatus.FAILED,
        f"source file not found: {tmp_path / 'nope.bin'}",
    )
    folder = _push(alpha, FileTransferRequest(str(tmp_path), target_host="beta")).status()
    assert folder.error == f"source is a directory, not a file: {tmp_path}"
    unknown = _push(alpha, FileTransferRequest(str(source), target_host="nowhere")).status()
    assert unknown.error == "unknown host 'nowhere' (known: alpha, beta)"


# --- notifications --------------------------------------------------------------------------------------


def test_notifications_reach_user_info_and_never_fail(
    pair: tuple[Host, Host], make_host: Callable[..., Host]
) -> None:
    alpha, beta = pair
    proxy = _client(beta.create(Notifier))
    args = {"severity": "warning", "title": "t", "text": "hello", "job": "job-1", "home": alpha.address}
    assert proxy.send(Message("notify", args)) is True
    reply = PagletProxy(alpha.address, USER_INFO_AGENT_ID, _http()).send(
        READ_USER_INFO.to_message(UserInfoReadRequest(job_id="job-1"))
    )
    entries = READ_USER_INFO.decode_reply(reply).entries
    assert [(e.severity, e.title, e.text, e.metadata) for e in entries] == [
        ("warning", "t", "hello", {"k": "v"})
    ]
    assert entries[0].source_agent_id == proxy.agent_id
    assert proxy.send(Message("notify", {"title": "local", "text": "x"})) is True  # beta's own service
    lonely = make_host("gamma")  # no user-info anywhere in its mesh
    began = time.monotonic()
    assert _client(lonely.create(Notifier)).send(Message("notify", {"text": "lost"})) is False
    dead = _client(lonely.create(Notifier))
    assert dead.send(Message("notify", {"text": "x", "home": "http://127.0.0.1:9", "timeout": 0.5})) is False
    assert time.monotonic() - began < 5
