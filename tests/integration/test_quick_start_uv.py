"""The quick start of the project description works verbatim in a checkout: two ``uv run paglets-host``
lines on the fixed ports 8765/8766, run in a network namespace of their own so that they cannot collide
with anything on this machine. ``uv sync`` runs first, outside the namespace (it needs the package
index), in a temporary copy of the checkout: the test never writes ``.venv`` or ``uv.lock`` here."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from _netns import can_unshare, run_in_netns
from conftest import HERE

ROOT = HERE.parents[1]
#: The two lines of the description's quick start, exactly as written there (and in README.md).
QUICK_START = (
    "uv run paglets-host --name alpha --port 8765 --mesh-version dev",
    "uv run paglets-host --name beta --port 8766 --peer http://127.0.0.1:8765 --mesh-version dev",
)
#: The description's first inspection commands, as written there (and the built-in services they need).
INSPECTION = (
    "uv run paglets-sysinfo df",
    "uv run paglets-sysinfo load",
    "uv run paglets-mesh-info summary",
    "uv run paglets-artifacts list",
    "uv run paglets-compute-slots status",
    "uv run paglets-compute-groups",
    "uv run paglets-analysis-jobs --tasks 3 --target-runtime 3",
)
#: The description's example commands, as written there (``./data.bin`` is made in the checkout).
EXAMPLES = (
    "uv run paglets-file-grabber push ./data.bin --remote beta --dest /tmp/data.bin --dry",
    "uv run paglets-pi-compute --digits 16",
    "uv run paglets-perf-test",
    "uv run paglets-mesh-benchmark --payload-size 64K",
)
#: Text of a ``uv sync`` that failed because the package index cannot be reached (then we skip).
OFFLINE_HINTS = (
    "dns error",
    "failed to fetch",
    "connection refused",
    "network is unreachable",
    "offline",
    "not found in the cache",
)


def test_the_readme_shows_the_same_lines() -> None:
    readme = (ROOT / "README.md").read_text()
    for line in QUICK_START:
        assert f"\n{line}\n" in readme, line


def _uv() -> str | None:
    return shutil.which("uv", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]))


def _copy_checkout(target: Path) -> None:
    """The files of this checkout that git tracks or would track (not ``.venv``, caches, build output)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
        timeout=60,
    )
    for name in filter(None, listed.stdout.decode().split("\0")):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)


@pytest.mark.timeout(400)
@pytest.mark.skipif(_uv() is None, reason="uv is not installed (pip install uv, or the 'test' extra)")
@pytest.mark.skipif(not can_unshare(), reason="cannot create a network namespace (unshare -n)")
@pytest.mark.skipif(shutil.which("git") is None or not (ROOT / ".git").exists(), reason="not a git checkout")
def test_the_uv_quick_start_runs_verbatim(tmp_path: Path) -> None:
    uv = _uv()
    assert uv is not None
    lock_before = _mtime(ROOT / "uv.lock")
    checkout = tmp_path / "checkout"
    _copy_checkout(checkout)
    env = {
        k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PAGLETS_MESH_VERSION")
    }
    env["UV_CACHE_DIR"] = os.environ.get("UV_CACHE_DIR") or str(Path.home() / ".cache" / "uv")
    env["HOME"] = str(tmp_path / "home")  # the hosts' launch config and persistence
    env["PATH"] = os.pathsep.join([str(Path(uv).parent), env["PATH"]])
    synced = _sync(uv, checkout, env)
    if _offline(synced):  # no package index: what uv has in its cache may do
        synced = _sync(uv, checkout, {**env, "UV_OFFLINE": "1"})
        if _offline(synced):
            pytest.skip(f"uv sync cannot reach the package index: {synced.stderr.strip()[-300:]}")
    assert synced.returncode == 0, synced.stderr
    done = run_in_netns(
        [sys.executable, str(HERE / "_netns_uv.py"), str(checkout), *QUICK_START, *INSPECTION, *EXAMPLES],
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip().endswith("OK"), done.stdout + done.stderr
    assert _mtime(ROOT / "uv.lock") == lock_before  # the working tree was not touched


def _sync(uv: str, checkout: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([uv, "sync"], cwd=checkout, env=env, capture_output=True, text=True, timeout=300)


def _offline(done: subprocess.CompletedProcess[str]) -> bool:
    return done.returncode != 0 and any(hint in done.stderr.lower() for hint in OFFLINE_HINTS)


def _mtime(path: Path) -> float | None:
    return path.stat().st_mtime if path.exists() else None
