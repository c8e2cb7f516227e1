"""Every code example of the docs runs against real hosts and prints what the docs show."""

from __future__ import annotations

import configparser
import os
import re
import shlex
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from _docs import CODE, DOCS, INTEGRATION, ROOT
from _netns import can_unshare, run_in_netns

#: Outputs checked elsewhere than by running ``<name>.py`` in docs/code.
OTHER_OUTPUTS = {"tour_client.out"}
EXAMPLES = sorted(p.name for p in CODE.glob("*.out") if p.name not in OTHER_OUTPUTS)
RUN_TIMEOUT = 120


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PAGLETS_API_KEY")}
    env["HOME"] = str(tmp_path / "home")  # hosts with default directories write under ~/.paglets
    return env


#: Examples run at the same time (each mostly waits: for hosts to start, join and stop).
PARALLEL_RUNS = 4


@pytest.fixture(scope="module")
def example_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, subprocess.CompletedProcess[str]]:
    """Every example run once, ``python X.py`` in docs/code as a reader runs it, a few at a time."""
    home = tmp_path_factory.mktemp("examples")

    def run(output: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, output.replace(".out", ".py")],
            cwd=CODE,
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT,
            env=_env(home),
        )

    with ThreadPoolExecutor(PARALLEL_RUNS) as pool:
        return dict(zip(EXAMPLES, pool.map(run, EXAMPLES), strict=True))


@pytest.mark.parametrize("output", EXAMPLES)
def test_example_prints_its_documented_output(
    output: str, example_runs: dict[str, subprocess.CompletedProcess[str]]
) -> None:
    """``python docs/code/X.py`` in its folder prints exactly ``X.out``."""
    assert (CODE / output.replace(".out", ".py")).exists(), f"{output} has no script"
    done = example_runs[output]
    assert done.returncode == 0, done.stderr
    assert done.stdout == (CODE / output).read_text(), done.stderr


def test_every_example_with_a_host_has_an_output() -> None:
    """A driver script (one that starts hosts) without an ``.out`` file would never be run."""
    for script in sorted(CODE.glob("*.py")):
        text = script.read_text()
        starts_hosts = "Host(" in text or "HostClient(" in text
        if starts_hosts and script.name not in ("app.py", "client.py", "tour_client.py", "greet.py"):
            assert script.with_suffix(".out").exists(), f"{script.name} has no .out file"


def _readme_blocks() -> tuple[list[str], list[str], list[str]]:
    readme = (ROOT / "README.md").read_text()
    python = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    section = readme.split("## Hosts by hand", 1)[1].split("\n## ", 1)[0]
    return (
        python,
        re.findall(r"```sh\n(.*?)```", section, flags=re.S),
        re.findall(r"```python\n(.*?)```", section, flags=re.S),
    )


def test_readme_examples_are_the_docs_examples() -> None:
    """The README's quick start and hosts-by-hand walkthrough (run by tests/integration/test_readme.py)
    are the files the getting-started page shows."""
    python, shell, client = _readme_blocks()
    assert python[0] == (CODE / "counter.py").read_text()
    assert python[1] == (CODE / "app.py").read_text()
    assert shell[0] == (CODE / "hosts.sh").read_text()
    assert client[0] == (CODE / "client.py").read_text()


def test_app_runs_as_written(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "app.py"], cwd=CODE, capture_output=True, text=True, timeout=60, env=_env(tmp_path)
    )
    assert done.returncode == 0, done.stderr
    first, second = done.stdout.splitlines()
    assert first == "2"
    assert second.split()[1].startswith("http://127.0.0.1:")


@pytest.mark.skipif(not can_unshare(), reason="cannot create a network namespace (unshare -n)")
def test_tour_on_hosts_started_by_hand(tmp_path: Path) -> None:
    """The movement page's walkthrough, verbatim: the two host lines of hosts.sh on their fixed ports (in
    a network namespace of their own), started in the folder of tour.py, then tour_client.py."""
    commands = (CODE / "hosts.sh").read_text().strip().splitlines()
    assert [line.split()[0] for line in commands] == [".venv/bin/paglets-host"] * 2
    for name in ("tour.py", "tour_client.py"):
        shutil.copy(CODE / name, tmp_path / name)
    (tmp_path / ".venv").symlink_to(Path(sys.prefix))
    env = _env(tmp_path)
    done = run_in_netns(
        [sys.executable, str(INTEGRATION / "_netns_readme.py"), str(tmp_path), *commands, "tour_client.py"],
        env=env,
        cwd=INTEGRATION,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout == (CODE / "tour_client.out").read_text(), done.stdout + done.stderr


@pytest.mark.skipif(not can_unshare(), reason="cannot create a network namespace (unshare -n)")
@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_auto_update_walkthrough(tmp_path: Path) -> None:
    """docs/auto-update.md, verbatim: autoupdate.sh (the page includes its sections) makes a repository,
    runs two hosts from clones of it on their fixed ports (in a network namespace of their own), pushes a
    commit and runs ``paglets mesh update``: both hosts come back on the new commit with their greeters."""
    env = _env(tmp_path)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.update(
        GIT_AUTHOR_NAME="Reader",
        GIT_AUTHOR_EMAIL="reader@example.invalid",
        GIT_COMMITTER_NAME="Reader",
        GIT_COMMITTER_EMAIL="reader@example.invalid",
    )
    env.pop("PAGLETS_MESH_VERSION", None)
    done = run_in_netns(["bash", str(CODE / "autoupdate.sh")], env=env, cwd=tmp_path, timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    greetings = [line for line in lines if line.startswith(("alpha: Hello", "beta: Hello"))]
    assert greetings == [
        "alpha: Hello from v1 (greeting #1)",
        "beta: Hello from v1 (greeting #1)",
        "alpha: Hello from v2 (greeting #2)",
        "beta: Hello from v2 (greeting #2)",
    ]
    updated = [line for line in lines if ": updated " in line]
    assert [line.split(":")[0] for line in updated] == ["alpha", "beta"]
    assert all(line.endswith(", restarting") for line in updated)
    new = updated[0].split(" -> ")[1][:12]
    assert sum(1 for line in lines if line.strip().startswith(("alpha ", "beta ")) and new in line) == 2


def test_launch_example_runs_the_glossary_and_the_clock(tmp_path: Path) -> None:
    """glossary_launch.toml, loaded by a host: the resident glossary answers with the state the file
    sets, and the startup clock exists under its id."""
    script = f"""
import sys
sys.path.insert(0, {str(CODE)!r})
from paglets.core.messages import Message
from paglets.runtime.host import Host
from glossary import Reader
with Host("alpha", persistence_dir={str(tmp_path / "alpha")!r},
          launch_config={str(CODE / "glossary_launch.toml")!r}) as alpha:
    record = alpha.lookup_service("glossary")
    print(record.proxy.agent_id, [a["agent_id"] for a in alpha.list_agents()] == ["clock"])
    reader = alpha.create(Reader)
    print(reader.send(Message("define", arg="launch")))
    print(alpha.get_proxy("clock").send(Message("now")))
"""
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        env=_env(tmp_path),
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "service.glossary True",  # advertised before its process exists; only the clock runs
        "launch: what a host starts with (answered on alpha)",
        "tick 1 on alpha",
    ]


def _unit() -> configparser.ConfigParser:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]  # systemd keys are case-sensitive
    unit.read_string((CODE / "paglets-host.service").read_text())
    return unit


def test_systemd_unit_starts_paglets_host_with_valid_options() -> None:
    from paglets.cli.host import build_parser, host_options

    unit = _unit()
    assert unit.sections() == ["Unit", "Service", "Install"]
    service = unit["Service"]
    argv = shlex.split(service["ExecStart"])
    assert Path(argv[0]).name == "paglets-host"
    args = build_parser().parse_args(argv[1:])  # exits (SystemExit) on an unknown option
    os.environ.setdefault("PAGLETS_API_KEY", "")
    assert host_options(args)["name"] == "alpha"
    assert args.persistence_dir == Path("/var/lib/paglets/alpha")
    assert str(args.persistence_dir).startswith(f"/var/lib/{service['StateDirectory']}/")
    assert service["KillSignal"] == "SIGTERM"
    assert float(service["TimeoutStopSec"]) > 30  # the host's shutdown budget for saving paglets


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_unit_passes_systemd_analyze(tmp_path: Path) -> None:
    """``systemd-analyze verify`` finds nothing to say (it needs an executable that exists: ours)."""
    text = (CODE / "paglets-host.service").read_text()
    real = str(Path(sys.prefix) / "bin" / "paglets-host")
    unit = tmp_path / "paglets-host.service"
    unit.write_text(text.replace("/srv/paglets/venv/bin/paglets-host", real))
    done = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert (done.returncode, done.stdout + done.stderr) == (0, "")


FENCE = re.compile(r"^(?P<indent> *)```(?P<lang>[a-z]*)[^\n]*\n(?P<body>.*?)^(?P=indent)```", re.S | re.M)
#: Fenced blocks that may be written in a page: output, diagrams, shell commands (their options are
#: checked by test_cli_pages.py), layouts.
FREE_LANGUAGES = {"text", "mermaid", "sh", ""}


def _pages() -> list[Path]:
    return sorted(p for p in DOCS.rglob("*.md") if "_hooks" not in p.parts and "overrides" not in p.parts)


def test_code_examples_in_pages_are_included_files() -> None:
    """A Python (or TOML, INI) block written into a page would never run: pages include files."""
    found = []
    for page in _pages():
        for block in FENCE.finditer(page.read_text()):
            if block["lang"] in FREE_LANGUAGES:
                continue
            lines = [line.strip() for line in block["body"].splitlines() if line.strip()]
            if not lines or not all(line.startswith("--8<--") for line in lines):
                found.append(
                    f"{page.relative_to(ROOT)}: a {block['lang']} block that is not an included file"
                )
    assert not found, "\n".join(found)


def test_included_files_exist() -> None:
    """Every ``--8<-- "file[:section]"`` of a page names a file (and a section) that exists."""
    for page in _pages():
        for name in re.findall(r'--8<-- "([^"]+)"', page.read_text()):
            path, _, section = name.partition(":")
            candidates = [DOCS / path, ROOT / path]
            target = next((c for c in candidates if c.exists()), None)
            assert target is not None, f"{page.name}: {path} does not exist"
            if section and not section[0].isdigit():
                assert f"[start:{section}]" in target.read_text(), f"{page.name}: no section {name}"
