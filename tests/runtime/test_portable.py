"""The portable process backend: its pieces on real sockets and files, and a host on it leaving nothing
behind in its runtime directory, also when paglet processes or the host itself are killed."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from paglets.core.errors import FrameError, HostError
from paglets.core.messages import Message
from paglets.runtime._backend import BACKEND_ENV, choose_backend
from paglets.runtime._channel_layout import ChannelClosedError
from paglets.runtime._handoff import SEGMENT_MESSAGE
from paglets.runtime._portable_ipc import (
    HOST_DIR_PREFIX,
    IPC_DIR_ENV,
    FileSegments,
    SocketBell,
    StreamLink,
    sweep_stale,
    tune,
)
from paglets.runtime.host import Host

INTEGRATION = Path(__file__).resolve().parents[1] / "integration"
GUARD = Path(__file__).resolve().parents[1] / "_portable_guard"


def wait_until(predicate: object, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(0.02)


@pytest.fixture
def ipc_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A runtime-directory base of this test's own, so that what is left in it is this test's."""
    base = tmp_path / "ipc"
    base.mkdir()
    monkeypatch.setenv(IPC_DIR_ENV, str(base))
    return base


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair()
    yield tune(a), tune(b)
    a.close()
    b.close()


def test_backend_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(BACKEND_ENV, "portable")
    assert choose_backend() == "portable"
    assert choose_backend("linux") == "linux"
    monkeypatch.setenv(BACKEND_ENV, "")
    assert choose_backend() == ("linux" if sys.platform == "linux" else "portable")
    with pytest.raises(HostError, match="unknown process backend"):
        choose_backend("beos")
    with pytest.raises(HostError, match="unknown process backend"):
        Host("x", process_backend="beos")


def test_socket_bell_rings_clears_and_reports_eof(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    ringer, waiter = SocketBell(a), SocketBell(b)
    assert not waiter.clear()
    for _ in range(3):
        ringer.ring()
    assert waiter.clear()
    assert not waiter.clear()
    a.close()
    with pytest.raises(ChannelClosedError):
        waiter.clear()


def test_file_segments_cross_the_link_and_are_deleted_when_read(
    tmp_path: Path, pair: tuple[socket.socket, socket.socket]
) -> None:
    a, b = pair
    sender = StreamLink(a, tmp_path, send_prefix="h", recv_prefix="c")
    receiver = StreamLink(b, tmp_path, send_prefix="c", recv_prefix="h")
    table = receiver.table()
    segments = FileSegments(tmp_path)
    payload = os.urandom(200_000)
    outgoing = segments.from_payload([payload[:1000], payload[1000:]])
    assert sender.try_send(SEGMENT_MESSAGE.pack(7, len(payload)), outgoing)
    wait_until(lambda: _received(receiver, table, 7))
    with table.open(7, len(payload)) as segment:
        assert bytes(segment.view) == payload
    assert list(tmp_path.iterdir()) == []  # read and deleted
    grown = segments.growable()
    grown.grow(10)
    grown.write_at(0, b"0123456789")
    assert grown.read(4) == b"0123"
    assert sender.try_send(SEGMENT_MESSAGE.pack(8, 10), grown)
    wait_until(lambda: _received(receiver, table, 8))
    with pytest.raises(FrameError, match="says"):
        table.open(8, 11)  # a frame and a link that disagree: refused, and the file still goes
    assert list(tmp_path.iterdir()) == []
    unsent = segments.allocate(100)
    assert unsent.view is not None
    unsent.close()
    assert list(tmp_path.iterdir()) == []


def _received(link: StreamLink, table: object, segment_id: int) -> bool:
    try:
        link.receive(table)  # type: ignore[arg-type]
    except BlockingIOError:
        pass
    return table.has(segment_id)  # type: ignore[attr-defined, no-any-return]


def _host_dirs(base: Path) -> list[Path]:
    return [p for p in base.iterdir() if p.name.startswith(HOST_DIR_PREFIX)]


def test_a_portable_host_reclaims_everything(
    ipc_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(INTEGRATION))  # paglet processes import the classes from there
    from _paglets import Traveller, TravelState

    host = Host(
        "alpha",
        persistence_dir=tmp_path / "alpha",
        mesh_lan_discovery=False,
        mesh_multicast=False,
        process_backend="portable",
    )
    host.start_background()
    try:
        (runtime,) = _host_dirs(ipc_dir)
        big = os.urandom(300_000)
        proxy = host.create(Traveller, TravelState(payload=big))
        assert proxy.send(Message("size")) == len(big)
        assert host.get_state(proxy.agent_id, TravelState).payload == big  # a snapshot through a file
        channels = [p for p in runtime.iterdir() if p.name.startswith("c")]
        assert len(channels) == 1
        assert [p.name for p in channels[0].iterdir()] == ["ring"]  # every segment was read and deleted
        pid = next(a for a in host.list_agents() if a["agent_id"] == proxy.agent_id)["pid"]
        os.kill(pid, signal.SIGKILL)  # a paglet process dies: its channel directory goes with it
        wait_until(lambda: not channels[0].exists())
        assert list((runtime / "tmp").iterdir()) == []
    finally:
        host.stop()
    assert _host_dirs(ipc_dir) == []


HOST_SCRIPT = """
import sys, time
sys.path.insert(0, {integration!r})
from _paglets import Traveller, TravelState
from paglets.runtime.host import Host
host = Host("crashing", persistence_dir={store!r}, mesh_lan_discovery=False, mesh_multicast=False,
            process_backend="portable")
host.start_background()
for _ in range(3):
    host.create(Traveller, TravelState(payload=b"x" * 300_000))
print("ready", flush=True)
time.sleep(600)
"""


def test_nothing_is_left_when_the_host_is_killed(ipc_dir: Path, tmp_path: Path) -> None:
    script = HOST_SCRIPT.format(integration=str(INTEGRATION), store=str(tmp_path / "store"))
    env = dict(os.environ, **{IPC_DIR_ENV: str(ipc_dir)})
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script)], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        (runtime,) = _host_dirs(ipc_dir)
        assert len([p for p in runtime.iterdir() if p.name.startswith("c")]) == 3
        proc.kill()  # SIGKILL: the host cleans nothing up itself
        proc.wait(30)
        # its paglet processes and spares see EOF, remove their channel directories and the host's
        wait_until(lambda: _host_dirs(ipc_dir) == [], timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
        if proc.stdout is not None:
            proc.stdout.close()
    assert list(ipc_dir.iterdir()) == []


def test_stale_directories_of_dead_hosts_are_swept(ipc_dir: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    dead = int(done.stdout)
    stale = ipc_dir / f"{HOST_DIR_PREFIX}{dead}-abcd"
    (stale / "c1").mkdir(parents=True)
    (stale / "c1" / "ring").write_bytes(b"x")
    mine = ipc_dir / f"{HOST_DIR_PREFIX}{os.getpid()}-abcd"
    mine.mkdir()
    assert sweep_stale(ipc_dir) == 1
    assert not stale.exists()
    assert mine.exists()


@pytest.mark.skipif(sys.platform != "linux", reason="the Linux backend exists on Linux only")
def test_the_guard_refuses_the_linux_backend(tmp_path: Path) -> None:
    """The portable run's guard (tests/_portable_guard) is not a no-op: a Linux-backend host cannot start
    under it, and the violation is logged."""
    log = tmp_path / "forbidden.log"
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([str(GUARD), os.environ.get("PYTHONPATH", "")]),
        PAGLETS_FORBID_LINUX="1",
        PAGLETS_FORBID_LOG=str(log),
        PAGLETS_BACKEND="linux",
    )
    script = (
        "from paglets.runtime.host import Host\n"
        f"h = Host('g', persistence_dir={str(tmp_path / 'g')!r}, mesh_lan_discovery=False)\n"
        "h.start_background()\nh.create('x:Y') if False else None\nh.stop()\n"
        "from paglets.runtime._channel import Channel\nChannel.create()\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode != 0
    assert "Linux-only primitive" in done.stderr
    assert "Linux-only primitive" in log.read_text()
