"""One update attempt of a checkout (``paglets.runtime._gitupdate``) against real git repositories, and the
checkout's lock between real processes.

Attempts run in a subprocess on the lab's venv (``_gitlab``), so that a dependency sync installs into
that venv and never into the test environment.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from _gitlab import Lab, free_port, git, greeter, requirements

from paglets.runtime._gitupdate import LOCK_NAME, CheckoutLock, LockBusyError, _process_start, update_checkout

ATTEMPT = textwrap.dedent(
    """
    import json, sys
    from paglets.runtime._gitupdate import encode_status, update_checkout
    kwargs = json.loads(sys.argv[2])
    print(encode_status(update_checkout(sys.argv[1], **kwargs)))
    """
)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Lab:
    return Lab(tmp_path_factory.mktemp("gitlab"))


def attempt(lab: Lab, clone: Path, **kwargs: Any) -> dict[str, Any]:
    """``update_checkout(clone, **kwargs)`` in the lab's venv; the status as a dict."""
    done = subprocess.run(
        [str(lab.python), "-c", ATTEMPT, str(clone), json.dumps(kwargs)],
        capture_output=True,
        text=True,
        timeout=120,
        env=lab.env(),
        check=True,
    )
    status: dict[str, Any] = json.loads(done.stdout)
    return status


def push_commit(lab: Lab, files: dict[str, str | bytes], message: str) -> str:
    writer = lab.root / f"writer-{message}"
    if not writer.exists():
        writer = lab.clone(writer.name)
    git(writer, "pull", "--quiet", "--ff-only")
    return lab.commit(writer, files, message, push=True)


def test_outside_a_checkout(lab: Lab, tmp_path: Path) -> None:
    status = update_checkout(tmp_path)
    assert status.status == "not-a-checkout"
    assert not status.ok
    assert "not inside a git checkout" in status.error
    assert "git clone" in status.advice


def test_detached_head(lab: Lab) -> None:
    clone = lab.clone("detached")
    git(clone, "checkout", "--quiet", "--detach")
    status = attempt(lab, clone)
    assert status["status"] == "detached"
    assert "not on a branch" in status["error"]
    assert "git switch" in status["advice"]


def test_branch_without_upstream(lab: Lab) -> None:
    clone = lab.clone("no-upstream")
    git(clone, "checkout", "--quiet", "-b", "local-work")
    status = attempt(lab, clone)
    assert status["status"] == "no-upstream"
    assert "local-work has no upstream" in status["error"]
    assert "--set-upstream-to" in status["advice"]


def test_network_error_during_fetch(lab: Lab) -> None:
    clone = lab.clone("offline")
    port = free_port()  # nothing listens there: the connection is refused
    git(clone, "remote", "set-url", "origin", f"http://127.0.0.1:{port}/remote.git")
    before = git(clone, "rev-parse", "HEAD")
    began = time.monotonic()
    status = attempt(lab, clone)
    assert time.monotonic() - began < 30
    assert status["status"] == "fetch-failed"
    assert f"127.0.0.1 port {port}" in status["error"] or "Connection refused" in status["error"]
    assert "network" in status["advice"]
    assert git(clone, "rev-parse", "HEAD") == before


def test_diverged_branch_is_a_conflict_and_never_merged(lab: Lab) -> None:
    clone = lab.clone("diverged")
    local = lab.commit(clone, {"local.txt": "mine\n"}, "local work")
    push_commit(lab, {"remote.txt": "theirs\n"}, "diverge")
    status = attempt(lab, clone)
    assert status["status"] == "conflict"
    assert "diverged" in status["error"]
    assert "rebase" in status["advice"]
    assert git(clone, "rev-parse", "HEAD") == local
    assert git(clone, "status", "--porcelain") == ""


def test_dirty_tree_is_refused_but_untracked_files_are_not_changes(lab: Lab) -> None:
    clone = lab.clone("dirty")
    (clone / "notes.txt").write_text("untracked\n")
    (clone / "labpaglets" / "__pycache__").mkdir()
    (clone / "labpaglets" / "__pycache__" / "greeter.cpython-311.pyc").write_bytes(b"x")
    assert attempt(lab, clone)["ok"]
    (clone / "labpaglets" / "greeter.py").write_text(greeter("edited"))
    status = attempt(lab, clone)
    assert status["status"] == "dirty"
    assert "labpaglets/greeter.py" in status["error"]
    assert "stash" in status["advice"]


def test_commit_that_is_not_pushed_is_target_missing(lab: Lab) -> None:
    clone = lab.clone("behind")
    other = lab.clone("unpushed")
    unpushed = lab.commit(other, {"wip.txt": "wip\n"}, "not pushed")
    status = attempt(lab, clone, target=unpushed)
    assert status["status"] == "target-missing"
    assert "not pushed yet" in status["error"]
    assert status["advice"] == "push the commit, then retry"
    git(other, "push", "--quiet", "origin", "HEAD:refs/heads/side")  # pushed, but not to the branch followed
    status = attempt(lab, clone, target=unpushed)
    assert status["status"] == "target-missing"
    assert "not on origin/main" in status["error"]
    assert attempt(lab, clone, target="not-a-hash")["status"] == "target-missing"


def test_update_fast_forwards_and_syncs_dependencies(lab: Lab) -> None:
    clone = lab.clone("follower")
    start = git(clone, "rev-parse", "HEAD")
    assert attempt(lab, clone)["status"] == "unchanged"
    pushed = push_commit(
        lab,
        {"labpaglets/greeter.py": greeter("v2", dep=True), "requirements.txt": requirements("labdep==1.0")},
        "needs labdep",
    )
    status = attempt(lab, clone)
    assert status["status"] == "updated", status
    assert (status["ok"], status["changed"], status["restart_required"]) == (True, True, True)
    assert (status["before_head"], status["after_head"], status["process_start_head"]) == (
        start,
        pushed,
        start,
    )
    assert status["synced"] == "pip"
    assert lab.installed("labdep")
    # the checkout is current now, but a process started on the old commit still has to restart
    again = attempt(lab, clone, process_start_head=start)
    assert (again["status"], again["changed"], again["restart_required"]) == ("updated", False, True)
    assert again["synced"] == ""  # synced for this commit and environment already


def test_failed_sync_moves_the_checkout_back(lab: Lab) -> None:
    clone = lab.clone("sync-fails")
    git(clone, "pull", "--quiet", "--ff-only")
    before = git(clone, "rev-parse", "HEAD")
    push_commit(lab, {"requirements.txt": requirements("labdep==9.9")}, "impossible requirement")
    status = attempt(lab, clone)
    assert status["status"] == "sync-failed"
    assert "labdep==9.9" in status["error"]
    assert "keeps running its old code" in status["advice"]
    assert not status["restart_required"]
    assert status["after_head"] == before
    assert git(clone, "rev-parse", "HEAD") == before
    assert git(clone, "status", "--porcelain") == ""
    push_commit(lab, {"requirements.txt": requirements("labdep==1.0")}, "fixed requirement")
    assert attempt(lab, clone)["status"] == "updated"


def test_two_processes_update_one_checkout_once(lab: Lab) -> None:
    clone = lab.clone("shared")
    start = git(clone, "rev-parse", "HEAD")
    pushed = push_commit(lab, {"labpaglets/greeter.py": greeter("shared")}, "for the shared checkout")
    argv = [str(lab.python), "-c", ATTEMPT, str(clone), json.dumps({"process_start_head": start})]
    procs = [subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env=lab.env()) for _ in range(2)]
    statuses = [json.loads(p.communicate(timeout=120)[0]) for p in procs]
    assert [s["status"] for s in statuses] == ["updated", "updated"]
    assert sorted(s["changed"] for s in statuses) == [False, True]  # one moved it, the other found it moved
    assert all(s["after_head"] == pushed and s["restart_required"] for s in statuses)
    assert not (clone / ".git" / LOCK_NAME).exists()


# --- the lock ------------------------------------------------------------------------------------------

HOLDER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from paglets.runtime._gitupdate import CheckoutLock
    lock = CheckoutLock(Path(sys.argv[1]), wait=30)
    if sys.argv[2] == "hold":
        lock.acquire()
        print("held", flush=True)
        sys.stdin.read()
        lock.release()
    else:
        log = Path(sys.argv[3])
        for i in range(int(sys.argv[2])):
            with lock:
                with log.open("a") as f:
                    f.write(f"enter {sys.argv[4]}\\n")
                time.sleep(0.002)
                with log.open("a") as f:
                    f.write(f"exit {sys.argv[4]}\\n")
    """
)


def _owner(path: Path, **fields: object) -> None:
    owner = {"pid": os.getpid(), "machine": socket.gethostname(), "started": _process_start(os.getpid())}
    owner.update(created=time.time(), token="x" * 32)
    owner.update(fields)
    path.write_text(json.dumps(owner))


def test_lock_serialises_two_racing_processes(tmp_path: Path) -> None:
    log = tmp_path / "log"
    procs = [
        subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path), "40", str(log), name])
        for name in ("a", "b")
    ]
    for proc in procs:
        assert proc.wait(60) == 0
    lines = log.read_text().splitlines()
    assert len(lines) == 160
    for enter, leave in zip(lines[::2], lines[1::2], strict=True):
        assert enter.startswith("enter ")
        assert leave == "exit " + enter[6:], (enter, leave)
    assert not (tmp_path / LOCK_NAME).exists()


def test_lock_of_a_live_owner_is_waited_for_then_busy(lab: Lab, tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path), "hold"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        began = time.monotonic()
        with pytest.raises(LockBusyError, match=f"held by pid {holder.pid}"):
            CheckoutLock(tmp_path, wait=0.5).acquire()
        assert 0.4 < time.monotonic() - began < 10
    finally:
        holder.kill()  # dies holding the lock: its file stays behind
        holder.communicate(timeout=10)
    assert (tmp_path / LOCK_NAME).exists()
    lock = CheckoutLock(tmp_path, wait=0)
    with lock:  # the owner is gone: the lock is stale and taken over at once
        assert lock.broke is not None
        assert lock.broke["pid"] == holder.pid
    assert not (tmp_path / LOCK_NAME).exists()


def test_update_waits_for_the_checkout_lock_and_reports_busy(lab: Lab) -> None:
    clone = lab.clone("locked")
    lock = CheckoutLock(clone / ".git", wait=0)
    with lock:
        status = attempt(lab, clone, lock_wait=0.3)
    assert status["status"] == "busy"
    assert f"held by pid {os.getpid()}" in status["error"]
    assert attempt(lab, clone)["ok"]


@pytest.mark.parametrize(
    ("case", "fields"),
    [
        ("dead owner", {"pid": 0}),
        ("pid reused by a younger process", {"started": "1"}),
        ("older than the bound", {"created": time.time() - 7200}),
        ("unreadable", None),
    ],
)
def test_stale_locks_are_recovered(tmp_path: Path, case: str, fields: dict[str, object] | None) -> None:
    path = tmp_path / LOCK_NAME
    if fields is None:
        path.write_text("{not json")
    else:
        if fields.get("pid") == 0:
            gone = subprocess.Popen([sys.executable, "-c", "pass"])
            gone.wait(30)
            fields = {"pid": gone.pid, "started": ""}
        _owner(path, **fields)
    lock = CheckoutLock(tmp_path, wait=0)
    with lock:
        assert lock.broke is not None, case
        assert json.loads(path.read_text())["pid"] == os.getpid()


def test_a_fresh_lock_of_a_live_owner_on_another_machine_is_kept(tmp_path: Path) -> None:
    _owner(tmp_path / LOCK_NAME, machine="elsewhere", pid=1)
    with pytest.raises(LockBusyError, match="on elsewhere"):
        CheckoutLock(tmp_path, wait=0.1).acquire()
    _owner(tmp_path / LOCK_NAME, pid=os.getpid())  # our own process, alive: kept too
    with pytest.raises(LockBusyError):
        CheckoutLock(tmp_path, wait=0.1).acquire()
