"""The layering of paglets follows the declared table in ``paglets/_layers.toml``.

Every module under ``paglets/`` is parsed with ``ast``; every import counts: at module level, inside a
function, under ``if TYPE_CHECKING:``, and ``importlib.import_module``/``__import__`` called with a
constant name. Relative imports are resolved against the importing module. A failure names the file, the
line and the rule it breaks. The checker itself is tested on small planted trees (a function-local import
of a higher layer, a type-only one, an I/O module in a sans-IO package, a cycle in a table).
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
TABLE_PATH = ROOT / "paglets" / "_layers.toml"
DESIGN_PATH = ROOT / "docs" / "design.md"

# --- the checker ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Package:
    """One row of the table."""

    name: str  # relative to the root package: "wire", "runtime.child", "_errors"
    may_import: frozenset[str]
    third_party: frozenset[str] = frozenset()
    lazy_third_party: frozenset[str] = frozenset()
    forbidden_stdlib: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Table:
    root: str  # the top-level package: "paglets"
    packages: Mapping[str, Package]
    type_checking_only: frozenset[str] = frozenset()

    def package_of(self, module: str) -> str | None:
        """The longest declared package containing ``module``; ``None`` for the root ``__init__``."""
        if module == self.root:
            return None
        parts = module.split(".")[1:]
        for end in range(len(parts), 0, -1):
            name = ".".join(parts[:end])
            if name in self.packages:
                return name
        return "?"  # belongs to no declared package


def load_table(data: Mapping[str, Any], root: str = "paglets") -> Table:
    packages = {}
    for name, row in data["packages"].items():
        unknown = set(row) - {"may_import", "third_party", "lazy_third_party", "forbidden_stdlib"}
        if unknown:
            raise ValueError(f"package {name!r}: unknown keys {sorted(unknown)}")
        packages[name] = Package(
            name=name,
            may_import=frozenset(row.get("may_import", ())),
            third_party=frozenset(row.get("third_party", ())),
            lazy_third_party=frozenset(row.get("lazy_third_party", ())),
            forbidden_stdlib=frozenset(row.get("forbidden_stdlib", ())),
        )
    return Table(root, packages, frozenset(data.get("type_checking_only", ())))


@dataclass(frozen=True)
class Import:
    """One import statement (or constant ``import_module`` call) and where it sits."""

    path: Path
    line: int
    target: str  # absolute dotted name
    in_function: bool  # inside a function, or guarded by ``except ImportError`` (may be missing)
    type_checking: bool


def module_name(path: Path, base: Path) -> str:
    parts = list(path.relative_to(base).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _dynamic_target(node: ast.Call) -> str | None:
    """The constant module name of ``importlib.import_module("x")``/``import_module("x")``/``__import__``."""
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
    if name not in {"import_module", "__import__"} or not node.args:
        return None
    first = node.args[0]
    if isinstance(first, ast.Constant) and isinstance(first.value, str) and not first.value.startswith("."):
        return first.value
    return None


class _ImportCollector(ast.NodeVisitor):
    def __init__(self, path: Path, module: str, is_package: bool, modules: set[str]) -> None:
        self.path = path
        self.package = module if is_package else module.rpartition(".")[0]
        self.modules = modules
        self.found: list[Import] = []
        self._functions = 0
        self._guarded = 0
        self._type_checking = 0

    def _add(self, node: ast.stmt | ast.expr, target: str) -> None:
        lazy = self._functions > 0 or self._guarded > 0
        item = Import(self.path, node.lineno, target, lazy, self._type_checking > 0)
        if not self.found or self.found[-1] != item:  # ``from x import a, b``: one entry
            self.found.append(item)

    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> None:
        self._functions += 1
        self.generic_visit(node)
        self._functions -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _function

    def visit_Try(self, node: ast.Try) -> None:
        """``try: import x`` / ``except ImportError:``: the module imports without ``x``, as an import
        inside a function would."""
        caught = {
            name.id
            for handler in node.handlers
            for name in ast.walk(handler.type)
            if handler.type is not None
            if isinstance(name, ast.Name)
        }
        guarded = bool(caught & {"ImportError", "ModuleNotFoundError"})
        self._guarded += guarded
        for child in node.body:
            self.visit(child)
        self._guarded -= guarded
        for child in [*node.handlers, *node.orelse, *node.finalbody]:
            self.visit(child)

    def visit_If(self, node: ast.If) -> None:
        if _is_type_checking(node.test):
            self._type_checking += 1
            for child in node.body:
                self.visit(child)
            self._type_checking -= 1
            for child in node.orelse:
                self.visit(child)
        else:
            self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(node, alias.name)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            base = self.package.split(".")
            if node.level > 1:
                base = base[: len(base) - (node.level - 1)]
            module = ".".join([*base, node.module] if node.module else base)
        else:
            module = node.module or ""
        for alias in node.names:
            # ``from pkg import sub`` imports the submodule ``pkg.sub`` when there is one.
            sub = f"{module}.{alias.name}"
            self._add(node, sub if sub in self.modules else module)

    def visit_Call(self, node: ast.Call) -> None:
        target = _dynamic_target(node)
        if target is not None:
            self._add(node, target)
        self.generic_visit(node)


def collect_imports(base: Path, root: str) -> tuple[dict[str, Path], list[Import]]:
    """Every module of the package ``root`` under ``base`` and every import they make."""
    files = sorted((base / root).rglob("*.py"))
    modules = {module_name(path, base): path for path in files}
    found: list[Import] = []
    for name, path in modules.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        collector = _ImportCollector(path, name, path.name == "__init__.py", set(modules))
        collector.visit(tree)
        found.extend(collector.found)
    return modules, found


def _stdlib(top: str) -> bool:
    return top in sys.stdlib_module_names or top == "__future__"


@dataclass
class Report:
    violations: list[str] = field(default_factory=list)
    used_edges: set[tuple[str, str]] = field(default_factory=set, repr=False)


def check(base: Path, table: Table) -> Report:
    """Check every import of ``table.root`` under ``base`` against ``table``."""
    report = Report()
    root = table.root
    modules, imports = collect_imports(base, root)

    def where(item: Import | Path, line: int = 1) -> str:
        if isinstance(item, Import):
            item, line = item.path, item.line
        return f"{item.relative_to(base)}:{line}"

    for name, path in modules.items():
        if table.package_of(name) == "?":
            report.violations.append(f"{where(path)}: module {name} belongs to no package of the layer table")
    for item in imports:
        importer = module_name(item.path, base)
        source = table.package_of(importer)
        top = item.target.split(".")[0]
        if source is None:  # the root __init__
            if top == root:
                report.violations.append(f"{where(item)}: the root package {root} imports {item.target}")
            continue
        if source == "?":
            continue
        row = table.packages[source]
        if top == root:
            target = table.package_of(item.target)
            if target is None or target == source:
                continue
            if target == "?":
                report.violations.append(f"{where(item)}: {item.target} belongs to no package of the table")
            elif target in row.may_import:
                report.used_edges.add((source, target))
            else:
                allowed = ", ".join(sorted(row.may_import)) or "nothing"
                report.violations.append(
                    f"{where(item)}: {source} may not import {target} ({item.target}); "
                    f"{source} may import: {allowed}"
                )
        elif _stdlib(top):
            if top in row.forbidden_stdlib:
                report.violations.append(
                    f"{where(item)}: {source} must not import the I/O module {top} ({item.target})"
                )
        elif top in row.third_party:
            continue
        elif top in row.lazy_third_party:
            if not item.in_function:
                report.violations.append(
                    f"{where(item)}: {source} may import {top} only inside a function (optional extra)"
                )
        elif top in table.type_checking_only:
            if not item.type_checking:
                report.violations.append(
                    f"{where(item)}: {top} may only be imported under `if TYPE_CHECKING:`"
                )
        else:
            report.violations.append(
                f"{where(item)}: {source} may not import the third-party package {top} "
                f"(not in its third_party list)"
            )
    return report


def table_errors(table: Table) -> list[str]:
    """Rows naming unknown packages, and every cycle of the declared graph."""
    errors = [
        f"{name} may import unknown package {target}"
        for name, row in table.packages.items()
        for target in sorted(row.may_import)
        if target not in table.packages or target == name
    ]
    return errors + [" -> ".join(cycle) for cycle in cycles(table)]


def cycles(table: Table) -> list[list[str]]:
    """One cycle per back edge met by a depth-first search of the declared graph (empty: a DAG)."""
    graph = {
        name: sorted(t for t in row.may_import if t in table.packages) for name, row in table.packages.items()
    }
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                found.append([*path[path.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return found


def layer_order(table: Table) -> list[str]:
    """The packages from the bottom layer up (each after everything it may import)."""
    order: list[str] = []
    remaining = dict(table.packages)
    while remaining:
        ready = sorted(n for n, row in remaining.items() if row.may_import <= set(order))
        assert ready, f"cycle among {sorted(remaining)}"
        order.extend(ready)
        for name in ready:
            del remaining[name]
    return order


def iter_design_rows(text: str) -> Iterator[tuple[str, frozenset[str]]]:
    """``(package, may import)`` from the rows of the layer table in ``docs/design.md``."""
    section = text.split("\n## Layers\n", 1)[1].split("\n## ", 1)[0]
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 2 and re.fullmatch(r"`[\w.]+`", cells[0]):
            yield cells[0].strip("`"), frozenset(re.findall(r"`([\w.]+)`", cells[1]))


# --- the real tree -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def table() -> Table:
    return load_table(tomllib.loads(TABLE_PATH.read_text()))


@pytest.fixture(scope="module")
def report(table: Table) -> Report:
    return check(ROOT, table)


def test_every_import_follows_the_layer_table(report: Report) -> None:
    assert not report.violations, "layering violations:\n" + "\n".join(report.violations)


def test_the_layer_table_is_a_dag_of_known_packages(table: Table) -> None:
    assert table_errors(table) == []


def test_every_declared_edge_is_used(table: Table, report: Report) -> None:
    declared = {(name, target) for name, row in table.packages.items() for target in row.may_import}
    unused = sorted(declared - report.used_edges)
    assert not unused, f"edges nothing imports any more (remove them from {TABLE_PATH.name}): {unused}"


def test_every_declared_package_exists(table: Table) -> None:
    for name in table.packages:
        path = ROOT / "paglets" / Path(*name.split("."))
        assert path.is_dir() or path.with_suffix(".py").is_file(), (
            f"{name} is in the table but not in paglets/"
        )


def test_wire_and_http_know_no_paglets(table: Table) -> None:
    # The two rules stated in the architecture, independent of how the table evolves.
    assert table.packages["_errors"].may_import == frozenset()
    assert table.packages["wire"].may_import == {"_errors"}
    assert table.packages["http"].may_import <= {"_errors", "wire"}
    assert {"asyncio", "mmap", "os", "selectors", "socket", "time"} <= table.packages["wire"].forbidden_stdlib


def test_design_notes_show_the_same_table(table: Table) -> None:
    rows = dict(iter_design_rows(DESIGN_PATH.read_text()))
    assert rows == {name: row.may_import for name, row in table.packages.items()}


#: Lines above which a module needs its reason in ``docs/design.md`` ("Module sizes").
SIZE_CEILING = 600


def test_every_module_over_the_ceiling_has_a_reason_in_the_design_notes() -> None:
    section = DESIGN_PATH.read_text().split("\n## Module sizes\n", 1)[1].split("\n## ", 1)[0]
    explained = set(re.findall(r"^- `([\w/]+\.py)`:", section, flags=re.M))
    package = ROOT / "paglets"
    large = {
        path.relative_to(package).as_posix()
        for path in package.rglob("*.py")
        if len(path.read_text().splitlines()) > SIZE_CEILING
    }
    missing = sorted(large - explained)
    assert not missing, f"modules over {SIZE_CEILING} lines without a reason in the design notes: {missing}"


def test_the_exception_tree_is_one_set_of_classes() -> None:
    import paglets._errors as leaf
    import paglets.core.errors as public

    assert public.__all__ == leaf.__all__
    for name in leaf.__all__:
        assert getattr(public, name) is getattr(leaf, name), name
    assert public.error_class_for("host") is public.HostError
    assert public.HostError.code == "host"
    assert public.RouteNotFoundError.http_status == 404


@pytest.mark.parametrize(
    ("public", "names"),
    [
        ("paglets.runtime.resources", ["ResourceRegistry", "ResourceCleanupError"]),
        (
            "paglets.persistence.persistency",
            ["DeactivationPolicy", "DeactivationRequest", "InactiveRecord", "QueuedMessage"],
        ),
        ("paglets.remote.transfer", ["TransferTicket"]),
        ("paglets.artifacts", ["ArtifactRef", "PagletFileRef", "ArtifactStore"]),
    ],
)
def test_contract_modules_export_the_values_defined_in_lower_layers(public: str, names: list[str]) -> None:
    import importlib

    module = importlib.import_module(public)
    for name in names:
        assert name in module.__all__
        assert getattr(module, name) is not None


# --- the checker on planted trees ----------------------------------------------------------------------

PLANTED_TABLE = {
    "packages": {
        "low": {"may_import": [], "forbidden_stdlib": ["socket"]},
        "high": {"may_import": ["low"], "third_party": ["msgspec"]},
    },
    "type_checking_only": ["typing_extensions"],
}


def _tree(base: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = base / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return base


def _planted(tmp_path: Path, files: dict[str, str], data: Mapping[str, Any] = PLANTED_TABLE) -> Report:
    base = _tree(
        tmp_path,
        {"fake/__init__.py": "", "fake/low/__init__.py": "", "fake/high/__init__.py": "", **files},
    )
    return check(base, load_table(data, root="fake"))


def test_checker_accepts_a_clean_tree(tmp_path: Path) -> None:
    report = _planted(
        tmp_path,
        {
            "fake/low/a.py": "import json\n",
            "fake/high/b.py": "import msgspec\nfrom fake.low import a\nfrom . import c\n",
            "fake/high/c.py": (
                "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import typing_extensions\n"
            ),
        },
    )
    assert report.violations == []
    assert report.used_edges == {("high", "low")}


def test_checker_finds_a_function_local_import_of_a_higher_layer(tmp_path: Path) -> None:
    report = _planted(
        tmp_path,
        {
            "fake/low/a.py": "X = 1\n\n\ndef late():\n    from fake.high import b\n    return b\n",
            "fake/high/b.py": "",
        },
    )
    assert report.violations == [
        "fake/low/a.py:5: low may not import high (fake.high.b); low may import: nothing"
    ]


def test_checker_counts_type_checking_relative_and_dynamic_imports(tmp_path: Path) -> None:
    report = _planted(
        tmp_path,
        {
            "fake/low/a.py": (
                "from typing import TYPE_CHECKING\n"
                "if TYPE_CHECKING:\n"
                "    from ..high import b\n"
                "import importlib\n"
                "def f():\n"
                "    return importlib.import_module('fake.high.b')\n"
            ),
            "fake/high/b.py": "",
        },
    )
    assert [v.split(":")[1] for v in report.violations] == ["3", "6"]
    assert all("low may not import high" in v for v in report.violations)


def test_checker_finds_forbidden_io_and_undeclared_third_party(tmp_path: Path) -> None:
    report = _planted(
        tmp_path,
        {
            "fake/low/a.py": "def f():\n    import socket\n    return socket\n",
            "fake/low/b.py": "import msgspec\nimport typing_extensions\n",
            "fake/extra.py": "",
        },
    )
    assert report.violations == [
        "fake/extra.py:1: module fake.extra belongs to no package of the layer table",
        "fake/low/a.py:2: low must not import the I/O module socket (socket)",
        "fake/low/b.py:1: low may not import the third-party package msgspec (not in its third_party list)",
        "fake/low/b.py:2: typing_extensions may only be imported under `if TYPE_CHECKING:`",
    ]


def test_checker_finds_cycles_in_a_table() -> None:
    data = {
        "packages": {
            "a": {"may_import": ["b"]},
            "b": {"may_import": ["c"]},
            "c": {"may_import": ["a"]},
            "d": {"may_import": ["nowhere"]},
        }
    }
    assert table_errors(load_table(data)) == ["d may import unknown package nowhere", "a -> b -> c -> a"]


def test_layer_order_lists_the_bottom_first(table: Table) -> None:
    order = layer_order(table)
    assert order[0] == "_errors"
    assert order.index("wire") < order.index("http") < order.index("remote") < order.index("runtime")
    assert order.index("core") < order.index("persistence") < order.index("runtime")
