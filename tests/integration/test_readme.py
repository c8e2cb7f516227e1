"""The README's quick start runs as written, and so does the demo of its first command."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from _netns import can_unshare, run_in_netns

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def test_quick_start_runs(tmp_path: Path) -> None:
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    (tmp_path / "counter.py").write_text(blocks[0])
    (tmp_path / "app.py").write_text(blocks[1])
    done = subprocess.run(
        [sys.executable, "app.py"], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "2"
    assert lines[1].split()[1].startswith("http://127.0.0.1:")


@pytest.mark.skipif(not can_unshare(), reason="cannot create a network namespace (unshare -n)")
def test_hosts_by_hand_walkthrough_runs_verbatim(tmp_path: Path) -> None:
    """The "Hosts by hand" section: the two host lines on their fixed ports (in a namespace of their own)
    started in the folder that holds ``counter.py``, then the client snippet from another process."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Hosts by hand", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"```sh\n(.*?)```", section, flags=re.S)[0].strip().splitlines()
    assert [line.split()[0] for line in commands] == [".venv/bin/paglets-host"] * 2
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    (tmp_path / "counter.py").write_text(blocks[0])
    (tmp_path / "client.py").write_text(re.findall(r"```python\n(.*?)```", section, flags=re.S)[0])
    (tmp_path / ".venv").symlink_to(Path(sys.prefix))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PAGLETS_API_KEY")}
    env["HOME"] = str(tmp_path / "home")
    done = run_in_netns(
        [sys.executable, str(HERE / "_netns_readme.py"), str(tmp_path), *commands, "client.py"],
        env=env,
        cwd=HERE,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines() == ["2", "http://127.0.0.1:8766 3"], done.stdout + done.stderr


def test_demo_runs() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "paglets.demo", "--messages", "50", "--payload", "1000"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "tour done" in done.stdout
    assert "gamma -> alpha" in done.stdout
    assert "every paglet process is gone" in done.stdout
    # the crash caused on purpose is reported once, by the demo (not again by the host's log)
    assert (done.stdout + done.stderr).count("crashed:") == 1, done.stdout + done.stderr
