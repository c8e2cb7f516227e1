"""Project-level checks: README and CI agree, no pickle anywhere (layering: ``test_layers.py``)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _shell_blocks(text: str) -> list[str]:
    return [b.strip() for b in re.findall(r"```sh\n(.*?)```", text, flags=re.S)]


def test_readme_starts_with_run_and_test_commands() -> None:
    blocks = _shell_blocks((ROOT / "README.md").read_text())
    assert len(blocks) >= 2
    run_cmd, test_cmd = blocks[0], blocks[1]
    assert "paglets" in run_cmd
    assert "pytest" in test_cmd


def test_ci_runs_exactly_the_readme_test_command() -> None:
    test_cmd = _shell_blocks((ROOT / "README.md").read_text())[1]
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert test_cmd in ci


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def test_no_pickle_anywhere_in_the_package() -> None:
    for path in sorted((ROOT / "paglets").rglob("*.py")):
        bad = _imported_modules(path) & {"pickle", "cloudpickle", "dill", "marshal", "shelve"}
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


def test_the_version_is_kept_in_one_place() -> None:
    """``paglets/__init__.py`` holds the version; the package metadata takes it from there (hatch)."""
    import tomllib

    import paglets

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in project["project"]
    assert "version" in project["project"]["dynamic"]
    assert project["tool"]["hatch"]["version"]["path"] == "paglets/__init__.py"
    assert re.fullmatch(r"\d+\.\d+\.\d+((a|b|rc)\d+)?(\.dev\d+)?", paglets.__version__)
    versions = [
        line for line in (ROOT / "paglets" / "__init__.py").read_text().splitlines() if "__version__" in line
    ]
    assert len(versions) == 1


def test_the_changelog_starts_with_the_current_release() -> None:
    """The top section of CHANGELOG.md is the release the version in ``paglets/__init__.py`` leads to."""
    import paglets

    release = re.sub(r"(\.dev\d+|(a|b|rc)\d+)$", "", paglets.__version__)
    headings = re.findall(r"^## (\S+)", (ROOT / "CHANGELOG.md").read_text(), flags=re.M)
    assert headings, "CHANGELOG.md has no release section"
    assert headings[0] == release, f"CHANGELOG.md starts with {headings[0]}, not {release}"
