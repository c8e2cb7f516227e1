"""The relay behind a real nginx with TLS (``_netns_relay.py`` runs every scenario in one network and
mount namespace, where ``server-a.example.com`` resolves through a hosts entry and DNS is a sentinel)."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from ._netns import can_unshare, run_in_netns

HERE = Path(__file__).resolve().parent
HOSTS = "127.0.0.1 localhost\n127.0.0.1 server-a.example.com\n"

pytestmark = [
    pytest.mark.skipif(not can_unshare(), reason="needs unshare -n -m (root or user namespaces)"),
    pytest.mark.skipif(shutil.which("nginx") is None, reason="needs nginx (apt-get install nginx)"),
    pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl"),
    pytest.mark.skipif(os.geteuid() != 0, reason="nginx on port 443 in a namespace needs root"),
]

SCENARIOS = [
    "start",
    "walkthrough",
    "messages",
    "dispatch_clone_retract",
    "files_and_artifacts",
    "service_lookup",
    "auth",
    "oversized",
    "delivery_timeout",
    "host_disappears",
    "nginx_restart",
    "hub_restart_mid_move",
    "no_dns",
]


@pytest.fixture(scope="module")
def outcome() -> dict[str, str]:
    result = run_in_netns(
        [sys.executable, str(HERE / "_netns_relay.py")], dns_sentinel=True, hosts=HOSTS, timeout=280, cwd=HERE
    )
    text = result.stdout + "\n" + result.stderr
    found: dict[str, str] = {}
    current: str | None = None
    for line in result.stdout.splitlines():
        if line.startswith(("PASS ", "FAIL ")):
            verdict, _, name = line.partition(" ")
            current = name.strip()
            found[current] = verdict
        elif current is not None and found[current].startswith("FAIL"):
            found[current] += "\n" + line
    found["_all"] = text
    return found


@pytest.mark.timeout(300)
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_relay_behind_nginx(outcome: dict[str, str], scenario: str) -> None:
    assert scenario in outcome, outcome["_all"][-6000:]
    assert outcome[scenario] == "PASS", outcome[scenario]
