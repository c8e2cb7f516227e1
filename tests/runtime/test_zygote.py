"""The zygote: forking children, exit reporting, spawn-mode parity, no orphans whatever dies."""

from __future__ import annotations

import asyncio
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from paglets.core.errors import LimitExceededError
from paglets.runtime._channel import Channel
from paglets.runtime._zygote import MAX_SPAWN_CONFIG, MAX_SPAWN_FDS, Zygote, ZygoteError

pytestmark = pytest.mark.linux_only(reason="tests the zygote itself (fork, pidfds, fd passing)")

HERE = Path(__file__).resolve().parent
TIMEOUT = 20.0


def child_env() -> dict[str, str]:
    paths = [str(HERE), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}


@pytest.fixture(scope="module")
def zygote() -> Iterator[Zygote]:
    zygote = Zygote.start(env=child_env(), preload=["_entries"])
    yield zygote
    zygote.close()


def _gone(pid: int) -> bool:
    """True when ``pid`` no longer runs (absent, or a zombie nobody reaped yet)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            state = stat.read().rsplit(b")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in (b"Z", b"X")


def wait_all_gone(pids: list[int], timeout: float) -> list[int]:
    """Wait (on pidfds, no sleeping) until every pid has exited; return the ones still running."""
    pidfds = {}
    for pid in pids:
        try:
            pidfds[pid] = os.pidfd_open(pid)
        except ProcessLookupError:
            continue
    try:
        deadline = time.monotonic() + timeout
        pending = dict(pidfds)
        while pending and time.monotonic() < deadline:
            ready, _, _ = select.select(list(pending.values()), [], [], deadline - time.monotonic())
            for pid, fd in list(pending.items()):
                if fd in ready:
                    del pending[pid]
    finally:
        for fd in pidfds.values():
            os.close(fd)
    return [pid for pid in pids if not _gone(pid)]


# --- basics -----------------------------------------------------------------------------------------------


def test_exit_codes_are_reported(zygote: Zygote) -> None:
    ok = zygote.spawn("_entries:returns", b"0", [], title="ret0")
    code = zygote.spawn("_entries:returns", b"42", [], title="ret42")
    failing = zygote.spawn("_entries:raises", b"", [], title="raises")
    missing = zygote.spawn("_no_such_module_abc:main", b"", [], title="missing")
    assert ok.wait_exit(TIMEOUT) == 0
    assert code.wait_exit(TIMEOUT) == 42
    assert failing.wait_exit(TIMEOUT) == 1
    assert missing.wait_exit(TIMEOUT) == 1
    assert not ok.is_alive()


def test_exit_callbacks_and_async_wait(zygote: Zygote) -> None:
    child = zygote.spawn("_entries:sleeper", b"", [], title="sleeper")
    seen: list[int] = []
    fired = threading.Event()

    def on_exit(code: int) -> None:
        seen.append(code)
        fired.set()

    child.add_exit_callback(on_exit)

    async def scenario() -> int:
        waiter = asyncio.ensure_future(child.wait_exit_async())
        await asyncio.sleep(0)
        assert child.is_alive()
        child.kill(signal.SIGTERM)
        return await asyncio.wait_for(waiter, TIMEOUT)

    assert asyncio.run(scenario()) == -signal.SIGTERM
    assert fired.wait(TIMEOUT)
    assert seen == [-signal.SIGTERM]
    late: list[int] = []
    child.add_exit_callback(late.append)  # already exited: called at once
    assert late == [-signal.SIGTERM]
    child.kill()  # no-op once exited


def test_traceback_goes_to_stderr(capfd: pytest.CaptureFixture[str]) -> None:
    zygote = Zygote.start(env=child_env())
    try:
        child = zygote.spawn("_entries:raises", b"", [], title="raises")
        assert child.wait_exit(TIMEOUT) == 1
    finally:
        zygote.close()
    err = capfd.readouterr().err
    assert "RuntimeError: entry failed on purpose" in err
    assert "Traceback" in err


def test_children_import_from_the_host_sys_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "zygote_probe_mod.py").write_text("def main(fds, config):\n    return 11\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    zygote = Zygote.start()  # no PYTHONPATH: the host's sys.path is enough
    try:
        assert zygote.spawn("zygote_probe_mod:main", b"", [], title="probe").wait_exit(TIMEOUT) == 11
    finally:
        zygote.close()


def test_a_zygote_that_cannot_start_is_reported() -> None:
    with pytest.raises(ZygoteError, match="exited during start"):
        Zygote.start(python="/bin/false")


def test_request_validation(zygote: Zygote) -> None:
    with pytest.raises(ValueError, match="module:function"):
        zygote.spawn("no_colon", b"", [], title="x")
    with pytest.raises(LimitExceededError):
        zygote.spawn("_entries:returns", b"0" * (MAX_SPAWN_CONFIG + 1), [], title="x")
    fds = [os.dup(0) for _ in range(MAX_SPAWN_FDS + 1)]
    try:
        with pytest.raises(LimitExceededError):
            zygote.spawn("_entries:returns", b"0", fds, title="x")
    finally:
        for fd in fds:
            os.close(fd)


def test_preload_reports_failures_and_statistics() -> None:
    zygote = Zygote.start(env=child_env(), preload=["_entries", "_no_such_module_xyz"])
    try:
        assert "_entries" in zygote.preloaded
        assert "paglets.runtime.child._channel" in zygote.preloaded
        assert "_no_such_module_xyz" in zygote.failed
        child = zygote.spawn("_entries:returns", b"3", [], title="x")
        assert child.wait_exit(TIMEOUT) == 3
        stats = zygote.statistics()
        assert stats.spawned_total == 1
        assert stats.exited_total == 1
        assert stats.children_alive == 0
        assert stats.mode == "fork"
    finally:
        zygote.close()
    assert zygote.statistics().closed


def test_close_stops_running_children() -> None:
    zygote = Zygote.start(env=child_env())
    children = [zygote.spawn("_entries:sleeper", b"", [], title=f"s{i}") for i in range(3)]
    zygote.close(grace=2.0)
    assert [c.wait_exit(0) for c in children] == [-signal.SIGTERM] * 3
    assert wait_all_gone([zygote.pid, *[c.pid for c in children]], TIMEOUT) == []
    zygote.close()  # idempotent
    with pytest.raises(ZygoteError):
        zygote.spawn("_entries:returns", b"0", [], title="x")


def test_children_die_with_the_zygote() -> None:
    zygote = Zygote.start(env=child_env())
    try:
        children = [zygote.spawn("_entries:sleeper", b"", [], title=f"s{i}") for i in range(3)]
        os.kill(zygote.pid, signal.SIGKILL)
        assert [c.wait_exit(TIMEOUT) for c in children] == [-signal.SIGKILL] * 3
        assert wait_all_gone([c.pid for c in children], TIMEOUT) == []
        with pytest.raises(ZygoteError):
            zygote.spawn("_entries:returns", b"0", [], title="x")
    finally:
        zygote.close()


@pytest.mark.parametrize("mode", ["fork", "spawn"])
def test_no_orphans_when_the_host_is_killed(mode: str) -> None:
    host = subprocess.Popen(
        [sys.executable, str(HERE / "_entries.py"), mode],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=child_env(),
    )
    try:
        assert host.stdout is not None
        line = host.stdout.readline()
        pids = json.loads(line)
        everyone = [pids["zygote"], *pids["children"]]
        assert len(everyone) == 4
        assert all(not _gone(pid) for pid in everyone)
        host.kill()
        assert host.wait(TIMEOUT) == -signal.SIGKILL
        assert wait_all_gone(everyone, TIMEOUT) == []
    finally:
        host.kill()
        host.wait(TIMEOUT)
        for stream in (host.stdin, host.stdout):
            if stream is not None:
                stream.close()


# --- spawn mode parity ------------------------------------------------------------------------------------


def test_spawn_mode_parity() -> None:
    zygote = Zygote.start(env=child_env(), mode="spawn")
    try:
        assert zygote.mode == "spawn"
        assert zygote.spawn("_entries:returns", b"9", [], title="x").wait_exit(TIMEOUT) == 9
        assert zygote.spawn("_entries:raises", b"", [], title="x").wait_exit(TIMEOUT) == 1

        async def scenario() -> None:
            loop = asyncio.get_running_loop()
            host, child_fds = Channel.create()
            frames: asyncio.Queue[bytes] = asyncio.Queue()
            closed = asyncio.Event()
            host.attach(loop, lambda batch: [frames.put_nowait(f) for f in batch], closed.set)
            child = zygote.spawn("_entries:echo", b"spawned", child_fds.fds, title="paglet:spawn:Echo:1")
            child_fds.close()
            try:
                assert await asyncio.wait_for(frames.get(), TIMEOUT) == b"ready:%d:spawned" % child.pid
                host.send(b"e-hello")
                assert await asyncio.wait_for(frames.get(), TIMEOUT) == b"e-hello"
                host.send(b"i")
                assert await asyncio.wait_for(frames.get(), TIMEOUT) == b"i%d" % signal.SIG_IGN
                host.send(b"t")
                cmdline, _comm = (await asyncio.wait_for(frames.get(), TIMEOUT))[1:].split(b"|")
                assert cmdline == b"paglet:spawn:Echo:1\0"
                host.send(b"s")
                await asyncio.wait_for(closed.wait(), TIMEOUT)
                assert child.wait_exit(TIMEOUT) == -signal.SIGSEGV
            finally:
                host.close()
                child.kill()

        asyncio.run(scenario())
    finally:
        zygote.close()
