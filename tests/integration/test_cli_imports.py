"""What the command line and the host import: ``--help`` stays light, the host never loads the CLI's
table renderer or the services' psutil (its paglet processes do).

Timing targets for ``--help`` live in ``bench/bench_cli_help.py``; here only what makes them reachable
is checked, and a generous bound catches a command that became very slow.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from conftest import HERE

HEAVY = (
    "rich",
    "psutil",
    "paglets.remote.client",
    "paglets.http.client",
    "paglets.services.builtin.server_info",
)


def test_building_every_parser_imports_nothing_heavy() -> None:
    code = (
        "import sys\n"
        "from paglets.cli.tree import build_parser\n"
        "from paglets.cli import sysinfo, meshinfo, artifacts\n"
        "build_parser(); sysinfo.build_parser(); meshinfo.build_parser(); artifacts.build_parser()\n"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == ""


def test_help_of_every_command_is_quick() -> None:
    """A sanity bound far above the 0.3 s target (measured by the bench), so load cannot make it flaky."""
    bin_dir = Path(sys.executable).parent
    for argv in (
        ["paglets", "--help"],
        ["paglets", "sys", "ps", "--help"],
        ["paglets", "agents", "send", "--help"],
        ["paglets-sysinfo", "--help"],
        ["paglets-mesh-info", "targets", "--help"],
        ["paglets-artifacts", "get", "--help"],
    ):
        started = time.monotonic()
        done = subprocess.run(
            [str(bin_dir / argv[0]), *argv[1:]], capture_output=True, timeout=60, check=False
        )
        assert done.returncode == 0, argv
        assert time.monotonic() - started < 5.0, argv


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_host_process_imports_neither_rich_nor_the_commands(tmp_path: Path) -> None:
    out = tmp_path / "modules.txt"
    env = dict(
        os.environ,
        HOME=str(tmp_path),
        PYTHONPATH=os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
    )
    env.pop("PAGLETS_API_KEY", None)
    done = subprocess.run(
        [sys.executable, str(HERE / "_host_modules.py"), str(_free_port()), str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert out.exists(), (done.returncode, done.stdout, done.stderr)
    modules = set(out.read_text().split())
    assert "paglets.services.builtin.server_info" in modules  # the launch config was resolved
    assert "rich" not in modules
    assert "psutil" not in modules
    commands = {m for m in modules if m.startswith("paglets.cli.")}
    # the host's own command line (its relay options live in a module of their own), nothing else
    host_cli = {"paglets.cli.main", "paglets.cli.host", "paglets.cli._relay_options", "paglets.cli._console"}
    assert commands == host_cli, commands
    assert "copied the bundled launch config" in done.stderr
    assert (tmp_path / ".paglets" / "launch.toml").exists()


def test_the_umbrella_command_knows_every_tree_command() -> None:
    from paglets.cli.main import TREE_COMMANDS
    from paglets.cli.tree import COMMANDS

    assert tuple(COMMANDS) == TREE_COMMANDS


def test_the_host_command_spells_its_constants_like_their_modules() -> None:
    from paglets.cli import _console, host
    from paglets.remote import mesh

    assert host.LOGGER_NAME == _console.LOGGER_NAME
    assert host.MESH_VERSION_ENV == mesh.MESH_VERSION_ENV


def test_the_host_help_imports_neither_the_runtime_nor_the_mesh() -> None:
    code = (
        "import sys\n"
        "from paglets.cli.host import build_parser\n"
        "build_parser()\n"
        "heavy = ('paglets.remote.mesh', 'paglets.runtime.host', 'paglets.cli._console', 'asyncio')\n"
        "print(','.join(m for m in heavy if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == ""
