"""Paths and helpers shared by the documentation tests."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
CODE = DOCS / "code"
INTEGRATION = ROOT / "tests" / "integration"


def load_hook(name: str) -> ModuleType:
    """A module of ``docs/_hooks`` (they are mkdocs hooks, not a package)."""
    spec = importlib.util.spec_from_file_location(f"_docs_hook_{name}", DOCS / "_hooks" / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module
