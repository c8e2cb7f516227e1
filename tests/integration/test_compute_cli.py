"""Compute slots from the command line, end to end: three ``paglets-host`` processes (2 declared slots
each, the bundled launch config with fast loops), the analysis campaign, the job views, cancellation,
the 2.0 command shapes, and a host SIGKILLed in the middle of a campaign (last: it takes gamma down).
"""

from __future__ import annotations

import json
import re
import signal
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import wait_until
from test_services_cli import CliHost, Mesh, base_env

from paglets.config.startup import bundled_launch_config_text

FAST_COMPUTE = (
    "state = { loop_interval = 0.2, gossip_interval = 0.5, lost_after_seconds = 2.0, "
    "usage_sample_interval = 0.5, max_load_per_cpu = 0.0 }"
)


def launch_text() -> str:
    text, count = re.subn(r"state = \{ loop_interval = .*\}", FAST_COMPUTE, bundled_launch_config_text())
    assert count == 1
    return text


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    home = tmp_path_factory.mktemp("home")
    config = home / ".paglets" / "launch.toml"
    config.parent.mkdir(parents=True)
    config.write_text(launch_text())
    hosts: dict[str, CliHost] = {}
    mesh = Mesh(home, hosts, 0.0)
    try:
        hosts["alpha"] = CliHost(home, "alpha", "--cpu-slots", "2")
        for name in ("beta", "gamma"):
            hosts[name] = CliHost(home, name, "--cpu-slots", "2", "--peer", hosts["alpha"].url)
        names = set(hosts)
        wait_until(lambda: all(mesh.online(h.url) == names for h in hosts.values()), timeout=30)
        yield mesh
    finally:
        mesh.client.close()
        for host in hosts.values():
            host.stop(signal.SIGKILL)


def run(mesh: Mesh, *argv: str, timeout: float = 120) -> Any:
    script = Path(__import__("sys").executable).parent / argv[0]
    import subprocess

    return subprocess.run(
        [str(script), *argv[1:]],
        capture_output=True,
        text=True,
        env=dict(base_env(mesh.home), PAGLETS_ENTRY=mesh.alpha.url),
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def table(output: str, title: str) -> list[list[str]]:
    """The rows of the table titled ``title`` (cells split on runs of two spaces or more)."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith(title))
    rows = []
    for line in lines[start + 1 :]:
        if not line.strip():
            if rows:
                break
            continue
        if "━" in line:
            continue
        rows.append(re.split(r"\s{2,}", line.strip()))
    return rows[1:]  # without the header


def no_blank_cells(rows: list[list[str]], width: int) -> None:
    for row in rows:
        assert len(row) == width, row
        assert all(cell.strip() for cell in row), row


def jobs_of(mesh: Mesh, group: str) -> list[dict[str, Any]]:
    done = run(mesh, "paglets", "jobs", "ps", "--group-id", group, "--json")
    return [j for j in json.loads(done.stdout)["jobs"]]


def group(mesh: Mesh, group_id: str) -> dict[str, Any]:
    done = run(mesh, "paglets", "jobs", "groups", "--group", group_id, "--json")
    groups = json.loads(done.stdout)["groups"]
    return groups[0] if groups else {}


def start_campaign(mesh: Mesh, db: Path, *argv: str) -> str:
    done = run(mesh, "paglets-analysis-jobs", "--db", str(db), "--no-wait", *argv)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()[1]


def test_status_shows_every_host_with_its_declared_slots(mesh: Mesh) -> None:
    done = run(mesh, "paglets-compute-slots", "status")
    assert done.returncode == 0, done.stdout + done.stderr
    rows = table(done.stdout, "Scheduler Status")
    assert [r[0] for r in rows] == ["alpha", "beta", "gamma"]
    no_blank_cells(rows, 9)
    assert all(r[1] == "2 (declared)" and r[2] == "2" for r in rows)
    data = json.loads(run(mesh, "paglets", "jobs", "status", "--json").stdout)
    assert {host: r["result"]["status"]["cpu_slots"] for host, r in data["results"].items()} == {
        "alpha": 2,
        "beta": 2,
        "gamma": 2,
    }
    groups = run(mesh, "paglets-compute-groups")
    assert groups.returncode == 0, groups.stderr
    hosts = run(mesh, "paglets", "jobs", "hosts", "--cores", "2")
    assert hosts.returncode == 0
    assert len(table(hosts.stdout, "Candidate Hosts")) == 3


def test_analysis_campaign_commits_every_result_and_the_views_show_each_job(
    mesh: Mesh, tmp_path: Path
) -> None:
    db = tmp_path / "results.sqlite"
    done = run(mesh, "paglets-analysis-jobs", "--tasks", "6", "--target-runtime", "2", "--db", str(db))
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"6 of 6 results committed to .*results\.sqlite", done.stdout), done.stdout
    results = table(done.stdout, "Analysis Results")
    no_blank_cells(results, 5)
    with sqlite3.connect(db) as connection:
        rows = connection.execute("SELECT job_id, host_name, rounds FROM job_summary").fetchall()
        features = connection.execute("SELECT COUNT(*) FROM feature_summary").fetchone()[0]
    assert len(rows) == 6
    assert all(rounds >= 1 for _, _, rounds in rows)
    assert features == 6 * 16
    assert {host for _, host, _ in rows} == {"alpha", "beta", "gamma"}  # 2 slots each: spread
    history = run(mesh, "paglets", "jobs", "history", "--limit", "0")
    assert history.returncode == 0, history.stderr
    finished = table(history.stdout, "Finished Jobs")
    no_blank_cells(finished, 11)
    data = json.loads(run(mesh, "paglets", "jobs", "history", "--json", "--limit", "0").stdout)
    records = [r for item in data["results"].values() for r in item["result"]["finished_usage"]]
    campaign = {job_id for job_id, _, _ in rows}
    mine = [r for r in records if r["job_id"] in campaign]
    assert len(mine) == 6
    assert all(r["class_name"].endswith(":AnalysisJobPaglet") and r["runtime_seconds"] > 1.5 for r in mine)
    assert all(r["finish_reason"] == "released" and r["max_process_tree_memory_rss_bytes"] > 0 for r in mine)


def test_top_shows_running_jobs_and_rm_stops_them(mesh: Mesh, tmp_path: Path) -> None:
    campaign = start_campaign(mesh, tmp_path / "db.sqlite", "--tasks", "2", "--target-runtime", "60")

    def running() -> list[dict[str, Any]]:
        data = json.loads(run(mesh, "paglets", "jobs", "top", "--json").stdout)
        return [
            job
            for item in data["results"].values()
            for job in item["result"]["active_jobs"]
            if job["job_id"].startswith(campaign) and job["pid"]
        ]

    wait_until(lambda: len(running()) == 2, timeout=60, interval=0.2)
    top = run(mesh, "paglets", "jobs", "top")
    active = [r for r in table(top.stdout, "Active Jobs") if r[1].endswith(("0000", "0001"))]
    no_blank_cells(active, 11)
    usage = table(top.stdout, "Active Usage")
    no_blank_cells(usage, 11)
    pids = [job["pid"] for job in running()]
    preview = run(mesh, "paglets", "jobs", "rm", "--group-id", campaign, "-n")
    assert preview.returncode == 0
    assert "Matched jobs: 2" in preview.stdout
    refused = run(mesh, "paglets", "jobs", "rm", "--group-id", campaign)
    assert refused.returncode == 2
    assert "refusing to cancel without --force" in refused.stderr
    removed = run(mesh, "paglets", "jobs", "rm", "--group-id", campaign, "--force")
    assert removed.returncode == 0, removed.stdout + removed.stderr
    assert "Cancelled jobs=2" in removed.stdout
    assert "stopped running jobs=2" in removed.stdout

    def gone(pid: int) -> bool:
        try:
            with open(f"/proc/{pid}/stat") as fh:
                return fh.read().rsplit(")", 1)[1].split()[0] == "Z"
        except OSError:
            return True

    wait_until(lambda: all(gone(pid) for pid in pids), timeout=30, interval=0.1)
    wait_until(lambda: group(mesh, campaign).get("status") == "COMPLETE", timeout=30, interval=0.2)
    summary = group(mesh, campaign)
    assert summary["failed_count"] == 2
    assert {j["status"] for j in jobs_of(mesh, campaign)} == {"CANCELLED"}


def test_impossible_jobs_are_refused_at_once(mesh: Mesh, tmp_path: Path) -> None:
    hosts = run(mesh, "paglets", "jobs", "hosts", "--cores", "64")
    assert hosts.returncode == 1
    assert "No host could run such a job." in hosts.stdout
    assert "- alpha: needs 64 CPU cores, the host offers 2" in hosts.stdout
    started = time.monotonic()
    done = run(
        mesh,
        "paglets-analysis-jobs",
        "--tasks",
        "1",
        "--cpu-cores",
        "64",
        "--target-runtime",
        "1",
        "--db",
        str(tmp_path / "x.sqlite"),
    )
    assert done.returncode == 1
    assert time.monotonic() - started < 30
    assert "0 of 1 results committed" in done.stdout
    assert "no host can run this job (alpha: needs 64 CPU cores, the host offers 2;" in done.stdout


def test_legacy_command_shapes(mesh: Mesh) -> None:
    full = run(mesh, "paglets-compute-slots", "status", "--queue", "--jobs", "--blocked", "--usage")
    assert full.returncode == 0, full.stderr
    assert "Scheduler Status" in full.stdout
    assert "Queue: empty." in full.stdout
    candidates = run(
        mesh, "paglets-compute-slots", "--json", "candidates", "--cpu-cores", "1", "--memory", "1G"
    )
    assert candidates.returncode == 0
    assert len(json.loads(candidates.stdout)["candidates"]) == 3
    listed = run(mesh, "paglets-compute-slots", "jobs", "list", "--status", "COMPLETED")
    assert listed.returncode == 0
    assert "Compute Jobs" in listed.stdout
    history = run(mesh, "paglets-compute-slots", "jobs", "history", "--limit", "1")
    assert history.returncode == 0
    assert len(table(history.stdout, "Finished Jobs")) == 3  # the latest of each host
    unfiltered = run(mesh, "paglets-compute-slots", "cancel")
    assert unfiltered.returncode == 2
    assert (
        unfiltered.stderr.strip()
        == "paglets-compute-slots: cancel needs --request-id, --agent-id, --job-id or --all"
    )
    unconfirmed = run(mesh, "paglets-compute-slots", "cancel", "--all")
    assert unconfirmed.returncode == 2
    dry = run(mesh, "paglets-compute-slots", "cancel", "--all", "--dry-run")
    assert dry.stdout.strip() == "matched queued_requests=0 leases=0"
    clear = run(mesh, "paglets-compute-slots", "jobs", "clear", "--dry-run")
    assert clear.returncode == 0
    assert "Matched jobs: 0" in clear.stdout
    groups = run(mesh, "paglets-compute-groups", "--group", "no-such-group")
    assert groups.returncode == 1
    assert "No job group no-such-group." in groups.stdout


def test_queue_and_why_show_what_waits_and_why(mesh: Mesh, tmp_path: Path) -> None:
    # 2-core jobs on hosts of 2 slots: three run (one per host), the fourth waits for cores
    campaign = start_campaign(
        mesh, tmp_path / "q.sqlite", "--tasks", "4", "--cpu-cores", "2", "--target-runtime", "60"
    )

    def queued() -> list[dict[str, Any]]:
        data = json.loads(run(mesh, "paglets", "jobs", "queue", "--json").stdout)
        return [
            request
            for item in data["results"].values()
            for request in item["result"]["queued_requests"]
            if request["job_id"].startswith(campaign)
        ]

    def states() -> list[str]:
        return sorted(j["status"] for j in jobs_of(mesh, campaign))

    wait_until(lambda: states() == ["RUNNING"] * 3 + ["WAITING_FOR_SLOT"], timeout=90, interval=0.3)
    wait_until(lambda: len(queued()) == 1, timeout=30, interval=0.3)
    (waiting,) = queued()
    queue = run(mesh, "paglets", "jobs", "queue")
    assert queue.returncode == 0, queue.stderr
    rows = table(queue.stdout, "Queue")
    no_blank_cells(rows, 8)
    (row,) = [r for r in rows if waiting["job_id"].endswith(r[2].lstrip("…"))]
    assert (row[1], row[4]) == ("1", "2")  # first in its host's queue, 2 cores
    why = run(mesh, "paglets", "jobs", "why")
    assert why.returncode == 0, why.stderr
    (blocked,) = table(why.stdout, "Blocked Queue")
    assert blocked[0] == row[0]
    assert blocked[3] == "cpu", blocked  # only the cores are missing
    assert "Blocked: cpu=1" in why.stdout
    data = json.loads(run(mesh, "paglets", "jobs", "why", "--json").stdout)
    reasons = [r["blockers"] for found in data["blocked_requests"].values() for r in found]
    assert reasons == [["cpu"]]
    removed = run(mesh, "paglets", "jobs", "rm", "--group-id", campaign, "--force")
    assert removed.returncode == 0, removed.stdout + removed.stderr
    assert "Cancelled jobs=4" in removed.stdout
    wait_until(lambda: group(mesh, campaign).get("status") == "COMPLETE", timeout=30, interval=0.2)
    wait_until(lambda: not queued(), timeout=30, interval=0.2)


def test_examples_analysis_is_the_same_campaign(mesh: Mesh, tmp_path: Path) -> None:
    db = tmp_path / "examples.sqlite"
    done = run(
        mesh, "paglets", "examples", "analysis", "--tasks", "1", "--target-runtime", "1", "--db", str(db)
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"1 of 1 results committed to .*examples\.sqlite", done.stdout), done.stdout
    with sqlite3.connect(db) as connection:
        assert connection.execute("SELECT COUNT(*) FROM job_summary").fetchone()[0] == 1


def test_a_host_killed_mid_campaign_loses_no_job(mesh: Mesh, tmp_path: Path) -> None:
    db = tmp_path / "campaign.sqlite"
    campaign = start_campaign(mesh, db, "--tasks", "6", "--target-runtime", "2")

    def on_gamma() -> bool:
        return any(j["status"] == "RUNNING" and j["host_name"] == "gamma" for j in jobs_of(mesh, campaign))

    wait_until(on_gamma, timeout=60, interval=0.1)
    mesh.hosts["gamma"].stop(signal.SIGKILL)
    wait_until(lambda: group(mesh, campaign).get("status") == "COMPLETE", timeout=120, interval=0.3)
    summary = group(mesh, campaign)
    assert (summary["completed_count"], summary["failed_count"]) == (6, 0), summary
    jobs = jobs_of(mesh, campaign)
    restarted = [j for j in jobs if j["attempt"] > 1]
    assert restarted, jobs
    assert all(j["host_name"] in ("alpha", "beta") for j in restarted)
    assert all("gamma" in j["excluded_host_urls"][0] or j["excluded_host_urls"] for j in restarted)
    with sqlite3.connect(db) as connection:
        stored = connection.execute("SELECT job_id FROM job_summary").fetchall()
    assert len(stored) == len({row[0] for row in stored}) == 6
