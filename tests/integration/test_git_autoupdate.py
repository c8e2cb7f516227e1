"""Git auto-update end to end: ``paglets-host --auto-update-from-git`` processes run from clones of a local
bare repository (``_gitlab``), ``paglets mesh update`` and ``POST /admin/git-update``.

A pushed commit changes the paglet's reply and its dependencies; both hosts move to it, restart in the
same process (re-exec), rejoin each other, keep their paglets and answer with the new code. Each fault
of an update has its own test; the attempt itself is tested in ``test_git_update_checkout.py``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from _gitlab import API_KEY, Lab, LabHost, git, greeter, requirements
from conftest import wait_until

from paglets.core.errors import AuthenticationError, ForbiddenError
from paglets.remote.client import HostClient
from paglets.runtime.host import Host


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Lab:
    return Lab(tmp_path_factory.mktemp("gitlab"))


@pytest.fixture
def hosts() -> Iterator[list[LabHost]]:
    started: list[LabHost] = []
    yield started
    for host in started:
        host.stop()


def head_of(lab: Lab) -> str:
    return git(lab.remote, "rev-parse", "main")


def push(lab: Lab, files: dict[str, str | bytes], message: str) -> str:
    writer = lab.root / "writer"
    if not writer.exists():
        lab.clone("writer")
    git(writer, "pull", "--quiet", "--ff-only")
    return lab.commit(writer, files, message, push=True)


def mesh_update(lab: Lab, entry: LabHost, *extra: str) -> tuple[int, list[str]]:
    done = lab.run_cli("mesh", "update", "--entry", entry.url, *extra)
    assert done.stderr == "", done.stderr
    return done.returncode, done.stdout.splitlines()


def members(host: LabHost) -> set[str]:
    hosts = host.client.get_json(f"{host.url}/hosts", timeout=5.0)["hosts"]
    return {h["name"] for h in hosts if h["online"]}


def test_mesh_update_moves_two_hosts_to_a_pushed_commit(lab: Lab, hosts: list[LabHost]) -> None:
    start = head_of(lab)
    alpha = LabHost(lab, "alpha", lab.clone("alpha"))
    hosts.append(alpha)
    beta = LabHost(lab, "beta", lab.clone("beta"), "--peer", alpha.url)
    hosts.append(beta)
    wait_until(lambda: members(alpha) == members(beta) == {"alpha", "beta"}, timeout=20)
    assert alpha.health()["code_version"] == start  # the commit is the mesh version
    greeters = {host.name: host.create_greeter() for host in (alpha, beta)}
    assert alpha.hello(greeters["alpha"]) == "v1 #1"
    assert beta.hello(greeters["beta"]) == "v1 #1"
    pids = {host.name: host.proc.pid for host in (alpha, beta)}

    new = push(
        lab,
        {"labpaglets/greeter.py": greeter("v2", dep=True), "requirements.txt": requirements("labdep==1.0")},
        "v2 replies with labdep",
    )
    code, lines = mesh_update(lab, alpha)
    assert code == 0, lines
    assert sorted(lines) == [
        f"alpha: updated {start[:12]} -> {new[:12]}, dependencies synced with pip, restarting",
        f"beta: updated {start[:12]} -> {new[:12]}, dependencies synced with pip, restarting",
    ]
    for host in (alpha, beta):
        host.wait_serving(2)
        health = host.health()
        assert health["code_version"] == health["git_process_start_head"] == health["git_head"] == new
        assert health["git_update"]["status"] == "updated"
        assert health["git_update"]["before_head"] == start
        assert host.proc.pid == pids[host.name]  # the same process, re-executed
        assert host.hello(greeters[host.name]) == "v2 dep-1.0 #2"  # kept its paglet, runs the new code
        assert "auto-update: restarted on" in host.console()
    wait_until(lambda: members(alpha) == members(beta) == {"alpha", "beta"}, timeout=20)
    listed = lab.run_cli("hosts", "--entry", alpha.url, "--json")
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)["hosts"]
    assert {(h["name"], h["commit"], h["commit_differs"]) for h in rows} == {
        ("alpha", new, False),
        ("beta", new, False),
    }


def test_host_updates_at_start_and_restarts_on_the_new_commit(lab: Lab, hosts: list[LabHost]) -> None:
    clone = lab.clone("late")
    behind = git(clone, "rev-parse", "HEAD")
    new = push(lab, {"labpaglets/greeter.py": greeter("v3", dep=True)}, "v3")
    host = LabHost(lab, "late", clone)
    hosts.append(host)
    host.wait_serving(1)
    health = host.health()
    assert health["git_process_start_head"] == health["code_version"] == new
    assert (health["git_update"]["status"], health["git_update"]["before_head"]) == ("updated", behind)
    assert host.starts() == 1  # re-executed before it served
    assert host.hello(host.create_greeter()) == "v3 dep-1.0 #1"


def test_dirty_checkout_the_host_starts_and_says_why(lab: Lab, hosts: list[LabHost]) -> None:
    clone = lab.clone("dirty-host")
    (clone / "labpaglets" / "greeter.py").write_text(greeter("local edit"))
    host = LabHost(lab, "dirty", clone)
    hosts.append(host)
    health = host.health()
    assert health["git_update"]["status"] == "dirty"
    assert health["code_version"] == head_of(lab)
    said = [line for line in host.console().splitlines() if "auto-update:" in line]
    assert len(said) == 1, said
    assert "dirty: the checkout has changes to tracked files: labpaglets/greeter.py" in said[0]
    assert "starting on the current code" in said[0]
    reply = host.client.post_json(f"{host.url}/admin/git-update", {}, timeout=60)
    assert (reply["ok"], reply["status"]) == (False, "dirty")
    assert host.hello(host.create_greeter()) == "local edit #1"


def test_host_outside_a_checkout_starts_without_updates(
    lab: Lab, hosts: list[LabHost], tmp_path: Path
) -> None:
    host = LabHost(lab, "nogit", tmp_path)
    hosts.append(host)
    health = host.health()
    assert health["auto_update_from_git"] is True
    assert health["git_update"]["status"] == "not-a-checkout"
    assert "git_repo_root" not in health
    assert "not-a-checkout" in host.console()


def test_failed_dependency_sync_keeps_the_old_code_running(lab: Lab, hosts: list[LabHost]) -> None:
    host = LabHost(lab, "steady", lab.clone("steady"))
    hosts.append(host)
    running = host.health()["git_process_start_head"]
    greeter_id = host.create_greeter()
    reply_before = host.hello(greeter_id)
    push(lab, {"requirements.txt": requirements("labdep==9.9"), "labpaglets/greeter.py": greeter("v9")}, "v9")
    code, lines = mesh_update(lab, host)
    assert code == 1
    assert lines[0].startswith("steady: sync-failed: pip: ")
    assert "the host keeps running its old code" in lines[0]
    health = host.health()
    assert health["git_update"]["status"] == "sync-failed"
    assert health["git_head"] == health["git_process_start_head"] == running  # the checkout went back
    assert not health["auto_update_restart_scheduled"]
    assert host.starts() == 1
    assert host.hello(greeter_id).split(" #")[0] == reply_before.split(" #")[0]
    push(lab, {"requirements.txt": requirements("labdep==1.0")}, "fix the requirement")


def test_commit_that_is_not_pushed_is_target_missing_everywhere(lab: Lab, hosts: list[LabHost]) -> None:
    one = LabHost(lab, "one", lab.clone("one"))
    hosts.append(one)
    two = LabHost(lab, "two", lab.clone("two"), "--peer", one.url)
    hosts.append(two)
    wait_until(lambda: members(one) == {"one", "two"}, timeout=20)
    local = lab.clone("unpushed-work")
    unpushed = lab.commit(local, {"wip.txt": "not yet\n"}, "wip")
    code, lines = mesh_update(lab, one, "--commit", unpushed)
    assert code == 1
    assert len(lines) == 2
    for line in lines:
        assert "target-missing" in line
        assert line.endswith("(push the commit, then retry)")
    git(local, "push", "--quiet", "origin", "HEAD:main")
    code, lines = mesh_update(lab, one, "--commit", unpushed)
    assert code == 0, lines
    for host in (one, two):
        host.wait_serving(2)
        assert host.health()["git_process_start_head"] == unpushed


def test_two_hosts_on_one_checkout_update_it_once(lab: Lab, hosts: list[LabHost]) -> None:
    shared = lab.clone("shared-checkout")
    first = LabHost(lab, "first", shared)
    hosts.append(first)
    second = LabHost(lab, "second", shared, "--peer", first.url)
    hosts.append(second)
    wait_until(lambda: members(first) == {"first", "second"}, timeout=20)
    new = push(lab, {"labpaglets/greeter.py": greeter("shared v2", dep=True)}, "shared v2")
    # both at once: each host is asked directly, in parallel, by the other's broadcast and the command
    reply = first.client.post_json(f"{first.url}/admin/git-update", {"broadcast": True}, timeout=120)
    statuses = [reply, *reply["hosts"]]
    assert [s["status"] for s in statuses] == ["updated", "updated"]
    assert sorted(s["changed"] for s in statuses) == [False, True]  # the checkout was fast-forwarded once
    for host in (first, second):
        host.wait_serving(2)
        assert host.health()["git_process_start_head"] == new
    assert git(shared, "rev-parse", "HEAD") == new
    assert not (shared / ".git" / "paglets-auto-update.lock").exists()


def test_update_request_needs_the_api_key(lab: Lab, hosts: list[LabHost], tmp_path: Path) -> None:
    host = LabHost(lab, "guarded", lab.clone("guarded"))
    hosts.append(host)
    url = f"{host.url}/admin/git-update"
    for key, error in (("", "no API key"), ("wrong", "wrong")):
        client = HostClient(timeout=10.0, api_key=key)
        try:
            with pytest.raises(AuthenticationError, match=f"Authentication required.*{error}"):
                client.post_json(url, {})
        finally:
            client.close()
    done = lab.run_cli("mesh", "update", "--entry", host.url, "--api-key-env", "HOME")
    assert done.returncode == 2
    assert "Authentication required" in done.stderr
    assert host.starts() == 1
    keyless = LabHost(lab, "keyless", lab.clone("keyless"), key=None)
    hosts.append(keyless)
    assert "accepts no update requests" in keyless.console()
    with pytest.raises(ForbiddenError, match="only with an API key"):
        keyless.client.post_json(f"{keyless.url}/admin/git-update", {})


def test_relay_mode_refuses_and_a_host_without_auto_update_is_disabled(lab: Lab, tmp_path: Path) -> None:
    relay = Host(
        "relay",
        public_url="http://127.0.0.1:9/paglets",
        api_key=API_KEY,
        auto_update_from_git=True,
        git_repo_root=lab.clone("relay"),
        persistence_dir=tmp_path / "relay",
    )
    plain = Host("plain", api_key=API_KEY, persistence_dir=tmp_path / "plain")
    client = HostClient(timeout=10.0, api_key=API_KEY)
    with relay, plain:
        port = relay.port
        with pytest.raises(ForbiddenError, match="relay mode"):
            client.post_json(f"http://127.0.0.1:{port}/admin/git-update", {})
        assert "admin:git-update" not in relay.health()["capabilities"]
        reply = client.post_json(f"{plain.address}/admin/git-update", {"target_hash": "abcd"})
        assert (reply["ok"], reply["status"], reply["target_hash"]) == (False, "disabled", "abcd")
        assert plain.health()["auto_update_from_git"] is False
        assert "git_repo_root" not in plain.health()
    client.close()
    assert os.environ.get("PAGLETS_AUTO_UPDATE_RESTARTED") is None


def test_hosts_on_different_commits_are_marked(lab: Lab, hosts: list[LabHost]) -> None:
    old = lab.clone("pinned")
    git(old, "checkout", "--quiet", "-b", "pinned")  # no upstream: it stays on its commit
    git(old, "reset", "--quiet", "--hard", git(old, "rev-list", "--max-parents=0", "HEAD"))
    pinned = LabHost(lab, "pinned", old)
    hosts.append(pinned)
    assert pinned.health()["git_update"]["status"] == "no-upstream"
    current = LabHost(lab, "current", lab.clone("current"), "--peer", pinned.url)
    hosts.append(current)
    wait_until(lambda: current.client.get_json(f"{current.url}/hosts?rejected=1")["rejected"], timeout=20)
    table = lab.run_cli("hosts", "--entry", current.url)
    assert table.returncode == 0, table.stderr
    assert "runs another commit than current" in table.stdout
    listed = json.loads(lab.run_cli("hosts", "--entry", current.url, "--json").stdout)
    assert [(h["name"], h["commit_differs"]) for h in listed["refused"]] == [("pinned", True)]
    assert listed["refused"][0]["commit"] == pinned.health()["git_process_start_head"]


def test_a_host_on_a_newer_commit_pulls_an_older_peer_along(lab: Lab, hosts: list[LabHost]) -> None:
    old = LabHost(lab, "old", lab.clone("old"))
    hosts.append(old)
    before = old.health()["git_process_start_head"]
    new = push(lab, {"labpaglets/greeter.py": greeter("pulled along")}, "pulled along")
    fresh = LabHost(lab, "fresh", lab.clone("fresh"), "--peer", old.url)  # starts on the new commit
    hosts.append(fresh)
    assert fresh.health()["git_process_start_head"] == new != before
    # they refuse each other; the newer host asks the older one to move to its commit, which it has
    old.wait_serving(2)
    assert old.health()["git_process_start_head"] == new
    assert old.health()["git_update"]["source_name"] == "fresh"
    wait_until(lambda: members(old) == members(fresh) == {"old", "fresh"}, timeout=20)
