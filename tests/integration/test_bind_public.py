"""``--bind-public`` with an explicit address and with ``auto`` inside a network namespace of our own."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
from conftest import HERE


def _can_unshare() -> bool:
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return False
    probe = subprocess.run(
        ["unshare", "-n", "ip", "link", "set", "lo", "up"], capture_output=True, timeout=10
    )
    return probe.returncode == 0


@pytest.mark.skipif(not _can_unshare(), reason="this machine cannot create a network namespace (unshare -n)")
def test_bind_public_in_a_network_namespace() -> None:
    done = subprocess.run(
        ["unshare", "-n", sys.executable, str(HERE / "_netns_bind.py")],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip().endswith("OK")


@pytest.mark.skipif(not _can_unshare(), reason="this machine cannot create a network namespace (unshare -n)")
def test_a_failed_rebind_keeps_the_old_address_serving() -> None:
    """The new LAN address is bound before the old server closes: while it cannot be bound (its port is
    taken), the host keeps serving where it was; once it is free, the host moves there."""
    done = subprocess.run(
        ["unshare", "-n", sys.executable, str(HERE / "_netns_rebind.py")],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip().endswith("OK")
