"""Run a bench scenario against the reference implementation (paglets 2.0.0 from PyPI).

The reference is installed once into its own virtual environment under ``bench/.ref/`` (git-ignored).
Its scenarios run inside a fresh network namespace with only loopback up (``unshare -n``), because the
reference probes its whole /24 LAN and multicasts by default; scenario scripts must also start its hosts
with ``mesh_lan_discovery=False, mesh_multicast=False``.

A scenario is a Python file that prints one JSON object on its last stdout line.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REF_DIR = BENCH_DIR / ".ref"
REF_VENV = REF_DIR / "venv"
REF_VERSION = "2.0.0"

#: How long installing the reference may take (PyPI download plus about 26 packages).
INSTALL_TIMEOUT = 600.0


def reference_python() -> Path:
    return REF_VENV / "bin" / "python"


def ensure_reference(*, quiet: bool = True) -> Path:
    """Install ``paglets==2.0.0`` into ``bench/.ref/venv`` unless it is there already."""
    python = reference_python()
    marker = REF_DIR / f"installed-{REF_VERSION}"
    if python.exists() and marker.exists():
        return python
    if REF_VENV.exists():
        shutil.rmtree(REF_VENV)
    REF_DIR.mkdir(parents=True, exist_ok=True)
    venv.EnvBuilder(with_pip=True).create(REF_VENV)
    cmd = [str(python), "-m", "pip", "install", f"paglets=={REF_VERSION}"]
    if quiet:
        cmd.insert(4, "-q")
    subprocess.run(cmd, check=True, timeout=INSTALL_TIMEOUT)
    marker.write_text(REF_VERSION)
    return python


def compile_bytecode(python: str, tree: Path | None = None) -> None:
    """Write the bytecode of ``tree/paglets`` (default: this checkout) first, as installing a wheel does
    (2.0's venv has it): with ``PYTHONDONTWRITEBYTECODE`` set, an editable checkout would otherwise
    compile every module it imports in every new process, which is most of a host's start and most of
    a spare interpreter's (the portable backend's paglet processes)."""
    tree = tree or BENCH_DIR.parent
    command = [python, "-m", "compileall", "-q", str(tree / "paglets")]
    subprocess.run(command, check=False, timeout=300, capture_output=True)


def can_isolate_network() -> bool:
    """Whether ``unshare -n`` works here (root or user namespaces)."""
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return False
    probe = subprocess.run(
        ["unshare", "-n", "ip", "link", "set", "lo", "up"], capture_output=True, timeout=10
    )
    return probe.returncode == 0


def run_scenario(
    script: Path,
    args: list[str] | None = None,
    *,
    python: Path | str | None = None,
    isolate: bool = True,
    timeout: float = 300.0,
    env: dict[str, str] | None = None,
) -> dict[str, object]:
    """Run ``script`` with ``python`` (default: the reference) and return its JSON result.

    With ``isolate`` the run happens in a new network namespace with only ``lo`` up; ``env`` adds to the
    environment the script inherits.
    """
    interpreter = str(python or ensure_reference())
    inner = [interpreter, str(script), *(args or [])]
    if isolate:
        if not can_isolate_network():
            raise RuntimeError("cannot create a network namespace (unshare -n); not running the reference")
        quoted = " ".join(_sh_quote(part) for part in inner)
        cmd = ["unshare", "-n", "sh", "-c", f"ip link set lo up && exec {quoted}"]
    else:
        cmd = inner
    environ = dict(os.environ)
    environ.pop("PYTHONPATH", None)
    environ.update(env or {})
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=environ)
    if done.returncode != 0:
        sys.stderr.write(done.stderr[-4000:])
        raise RuntimeError(f"scenario {script.name} failed with exit code {done.returncode}")
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    if not lines:
        raise RuntimeError(f"scenario {script.name} printed nothing")
    result = json.loads(lines[-1])
    if not isinstance(result, dict):
        raise RuntimeError(f"scenario {script.name} did not print a JSON object")
    return result


def _sh_quote(part: str) -> str:
    return "'" + part.replace("'", "'\"'\"'") + "'"
