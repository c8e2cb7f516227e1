"""Every demo in ``demos/`` runs with one command (``python demos/NAME.py``) and prints what it shows.

The demos start their own hosts; they run here three at a time, each in its own process.
"""

from __future__ import annotations

import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEMOS = (
    "hello",
    "message_patterns",
    "mobility_events",
    "clone_workers",
    "service_finder",
    "master_slave",
    "itinerary_tour",
    "disk_survey",
)


def _run(name: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "demos" / f"{name}.py")],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
        stdin=subprocess.DEVNULL,
        check=False,
    )


@pytest.fixture(scope="module")
def outputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, subprocess.CompletedProcess[str]]:
    cwd = tmp_path_factory.mktemp("demos")  # not the checkout: the demos find their package themselves
    with ThreadPoolExecutor(3) as pool:
        return dict(zip(DEMOS, pool.map(lambda name: _run(name, cwd), DEMOS), strict=True))


def test_every_demo_is_tested() -> None:
    assert sorted(
        p.stem for p in (ROOT / "demos").glob("*.py") if p.stem not in ("__init__", "support")
    ) == sorted(DEMOS)


@pytest.mark.parametrize("name", DEMOS)
def test_demo_runs_cleanly(outputs: dict[str, subprocess.CompletedProcess[str]], name: str) -> None:
    done = outputs[name]
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # no warnings, no tracebacks, no runtime complaints


def test_demo_outputs(outputs: dict[str, subprocess.CompletedProcess[str]]) -> None:
    out = {name: done.stdout for name, done in outputs.items()}
    assert re.fullmatch(
        r"Hello World! I am [0-9a-f]{8} on alpha \(process \d+\)\nHello from beta, I came from alpha\n",
        out["hello"],
    )
    assert out["message_patterns"] == (
        "future: one:future\nreply set (in the order the answers came):\n- fast after 0.0s\n"
        "- medium after 0.15s\n- slow after 0.3s\nmulticast:\n- pong from fast\n- pong from future\n"
        "- pong from medium\n- pong from slow\n"
    )
    assert out["mobility_events"].split("history:\n")[1] == (
        "- on_creation on alpha\n- run on alpha\n- on_dispatching alpha -> beta\n"
        "- on_arrival on beta from alpha (dispatch)\n- run on beta\n- on_reverting beta -> alpha\n"
        "- on_arrival on alpha from beta (retract)\n- run on alpha\n"
    )
    assert out["clone_workers"] == (
        "original on alpha: right-original -> 40\nclone on beta: left-clone -> 15\ncombined result: 55\n"
    )
    finder = out["service_finder"].splitlines()
    assert finder[0].startswith("initial lookup (from gamma): alpha {")
    assert finder[1].startswith("after dispatch (from alpha): beta {")
    assert finder[2] == "calling it: printed 'hello' on beta"
    assert finder[3] == "after dispose (from beta):   None"
    slave = out["master_slave"]
    assert re.findall(r"^- (\w+): process \d+", slave, re.M) == ["beta", "gamma", "alpha", "beta"]
    assert slave.endswith("slave finished: True\n")
    tour = out["itinerary_tour"]
    assert tour.startswith("final host: beta\nroute:\n- alpha\n- beta\n- alpha\n- beta\nreport:\n")
    assert (
        "- task:dispatch:pack:heading home\n- task:arrival:visit:alpha\n- task:arrival:note:back home\n"
        in tour
    )
    survey = out["disk_survey"]
    assert re.match(r"parent paglet [0-9a-f]{32} started on alpha at http://127\.0\.0\.1:\d+\n", survey)
    assert "diagnostics:\n- clone sent to alpha" in survey
    findings = survey.split("findings:\n")[1].split("errors:\n")
    rows = findings[0].splitlines()[1:]
    assert {row.split()[0] for row in rows} == {"alpha", "beta", "gamma"}
    assert all(re.fullmatch(r"\w+ +\S+ +\d+\.\d\d +\d+\.\d\d +\d+\.\d\d", row) for row in rows)
    assert findings[1] == "- none\n"
