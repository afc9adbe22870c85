"""The packages form layers without circles: each imports only packages to its left in LAYERS, and itself.

Every import counts, wherever it is written: at the top of a module, inside a function, under `if TYPE_CHECKING:`,
or as `importlib.import_module("...")` / `__import__("...")` of a literal name. There is no list of exceptions.
"""

from __future__ import annotations

import ast
import tomllib
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LAYERS = ("dbt2prefect", "parity", "migration", "app", "flows", "sandbox", "cli")
"""Lowest first: the core, parity, the migration, the composition root, the flows, the sandbox, the command line."""
RANK = {package: rank for rank, package in enumerate(LAYERS)}


def _imported(tree: ast.Module, module: str) -> Iterator[tuple[int, str]]:
    """(line, absolute module name) of every import in a module's syntax tree (`module`: its dotted name)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                # Relative: resolved against the importing module's package.
                base = module.split(".")[: -node.level]
                yield node.lineno, ".".join([*base, *([node.module] if node.module else [])])
            elif node.module:
                yield node.lineno, node.module
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
            if name in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                yield node.lineno, node.args[0].value


def layer_violations(path: Path, source: str, root: Path = REPO) -> list[str]:
    """`file:line: <package> imports <module>` for each import of `source` that goes against LAYERS."""
    relative = path.relative_to(root)
    package = relative.parts[0]
    if package not in RANK:
        return []
    module = ".".join(relative.with_suffix("").parts)
    found = []
    for line, imported in _imported(ast.parse(source, filename=str(path)), module):
        top = imported.split(".")[0]
        if top in RANK and RANK[top] > RANK[package]:
            found.append(f"{relative}:{line}: {package} imports {imported} (a layer above it)")
    return sorted(found, key=lambda problem: int(problem.split(":")[1]))


def _sources() -> list[Path]:
    return sorted(p for package in LAYERS if (REPO / package).is_dir() for p in (REPO / package).rglob("*.py"))


def test_no_package_imports_a_package_above_it() -> None:
    sources = _sources()
    assert len(sources) > 50, "the packages were not found"
    problems = [problem for path in sources for problem in layer_violations(path, path.read_text(encoding="utf-8"))]
    assert not problems, "imports against the layers " + " <- ".join(LAYERS) + ":\n" + "\n".join(problems)


def test_every_installed_package_has_its_place_in_the_layers() -> None:
    settings = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    installed = {pattern.rstrip("*") for pattern in settings["tool"]["setuptools"]["packages"]["find"]["include"]}
    assert installed <= set(LAYERS), f"place {sorted(installed - set(LAYERS))} in LAYERS (tests/quality/test_layers.py)"
    assert "dbt2prefect" in installed and "cli" in installed


def test_an_upward_import_is_found_wherever_it_is_written(tmp_path: Path) -> None:
    source = """\
from __future__ import annotations
import importlib
from typing import TYPE_CHECKING

from dbt2prefect.names import job_tag
from . import sibling

if TYPE_CHECKING:
    from flows.dbt_wg_flow import run_dbt_wg


def later() -> None:
    import cli.app
    importlib.import_module("sandbox.stack")
"""
    path = tmp_path / "parity" / "sub" / "example.py"
    assert layer_violations(path, source, root=tmp_path) == [
        "parity/sub/example.py:9: parity imports flows.dbt_wg_flow (a layer above it)",
        "parity/sub/example.py:13: parity imports cli.app (a layer above it)",
        "parity/sub/example.py:14: parity imports sandbox.stack (a layer above it)",
    ]
    # The same imports are allowed from the top layer, and a relative import stays in its own package.
    assert layer_violations(tmp_path / "cli" / "example.py", source, root=tmp_path) == []
    relative = "from .. import model\nfrom ..binding import Write\n"
    assert layer_violations(tmp_path / "migration" / "dbt_cloud" / "x.py", relative, root=tmp_path) == []
    assert layer_violations(tmp_path / "tests" / "x.py", source, root=tmp_path) == []
