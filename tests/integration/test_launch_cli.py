"""``paglets-host`` and its launch config: an older bundled version is replaced (with a backup) on
``--yes``, and a host with ``--no-launch-config`` or an empty file runs no resident service."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from test_services_cli import CliHost, base_env

from paglets.remote.client import HostClient

OLD = """[launch]
demo_config_id = "paglets-default-launch"
demo_config_version = "1"
"""


def _agents_and_services(client: HostClient, url: str) -> tuple[list[str], list[str]]:
    agents = [a["agent_id"] for a in client.get_json(f"{url}/agents?state=all")["agents"]]
    services = [s["name"] for s in client.get_json(f"{url}/services")["services"]]
    return agents, services


def test_launch_config_update_and_hosts_without_one(tmp_path: Path) -> None:
    client = HostClient(timeout=10.0)
    old_home = tmp_path / "old"
    config = old_home / ".paglets" / "launch.toml"
    config.parent.mkdir(parents=True)
    config.write_text(OLD)
    empty_home = tmp_path / "empty"
    (empty_home / ".paglets").mkdir(parents=True)
    (empty_home / ".paglets" / "launch.toml").write_text("")
    hosts: list[CliHost] = []
    try:
        hosts.append(CliHost(old_home, "updated", "--yes"))
        hosts.append(CliHost(tmp_path / "none", "bare", "--no-launch-config"))
        hosts.append(CliHost(empty_home, "empty", "--no-sync-launch-config"))
        updated, bare, empty = hosts
        assert (config.parent / "launch.toml.old").read_text() == OLD
        assert 'demo_config_version = "8"' in config.read_text()
        assert any("previous launch config moved to" in line for line in updated.stderr), updated.stderr
        agents, services = _agents_and_services(client, updated.url)
        assert sorted(agents) == ["service.compute-slots", "service.mesh-info"]
        assert sorted(services) == ["compute-slots", "mesh-info", "server-info", "user-info"]
        for host in (bare, empty):
            assert _agents_and_services(client, host.url) == ([], []), host.name
        assert not (tmp_path / "none" / ".paglets" / "launch.toml").exists()  # not even copied
        done = subprocess.run(
            [str(Path(sys.executable).parent / "paglets"), "sys", "df", "--entry", bare.url],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env=base_env(tmp_path),
        )
        assert done.returncode == 1
        assert (
            "- bare: no server-info service on this host (its launch config does not enable it)"
            in done.stdout
        )
    finally:
        client.close()
        for host in hosts:
            host.stop(signal.SIGTERM)
