"""The README's quick start runs as written, and so does the demo of its first command."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


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
