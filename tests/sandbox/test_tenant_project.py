"""The tenant's dbt project builds, tests and passes freshness on freshly generated sandbox data."""

from __future__ import annotations

import shutil
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from sandbox.datagen import generate

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]
PROJECT_SRC = REPO_ROOT / "tenants" / "dbt_williamgrant"


@dataclass(frozen=True)
class Built:
    project_dir: Path
    work_dir: Path
    build: Any


def _dbt(project: Path, work_dir: Path, command: str, *args: str) -> Any:
    """Invoke dbt in-process on ``project``; target/ and logs/ go to ``work_dir``."""
    from dbt.cli.main import dbtRunner

    return dbtRunner().invoke(
        [
            "--log-path",
            str(work_dir / "logs"),
            "--quiet",
            *command.split(),
            "--project-dir",
            str(project),
            "--profiles-dir",
            str(project / "profiles"),
            "--target",
            "local",
            "--target-path",
            str(work_dir / "target"),
            *args,
        ]
    )


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    root = tmp_path_factory.mktemp("tenant")
    project = root / "dbt_williamgrant"
    shutil.copytree(PROJECT_SRC, project, ignore=shutil.ignore_patterns("target", "logs", "dbt_packages"))
    warehouse = root / "warehouse"
    generate(warehouse)
    mp = pytest.MonkeyPatch()
    mp.setenv("DBT2PREFECT_WAREHOUSE_DIR", str(warehouse))
    try:
        yield Built(project, root, _dbt(project, root, "build"))
    finally:
        mp.undo()


@pytest.fixture
def warehouse_env(built: Built, monkeypatch: pytest.MonkeyPatch) -> Built:
    monkeypatch.setenv("DBT2PREFECT_WAREHOUSE_DIR", str(built.work_dir / "warehouse"))
    return built


def test_build_succeeds_with_every_resource_type(built: Built) -> None:
    assert built.build.success, built.build.exception
    results = built.build.result.results
    kinds = Counter(r.node.resource_type.value for r in results)
    assert kinds["model"] >= 40
    assert kinds["snapshot"] >= 1
    assert kinds["seed"] >= 3
    assert kinds["test"] >= 40
    statuses = Counter(str(r.status) for r in results)
    assert statuses.get("error", 0) == 0 and statuses.get("fail", 0) == 0
    materialized = {r.node.config.materialized for r in results if r.node.resource_type.value == "model"}
    assert {"view", "table", "incremental"} <= materialized


def test_singular_tests_ran(built: Built) -> None:
    names = {r.node.name for r in built.build.result.results}
    assert "assert_order_line_net_not_above_gross" in names
    assert "assert_invoices_match_orders" in names


def test_prod_only_model_is_disabled_outside_prod(built: Built) -> None:
    names = {r.node.name for r in built.build.result.results}
    assert "audit_prod_run_log" not in names
    assert "audit_source_row_counts" in names


def test_incremental_model_runs_incrementally(warehouse_env: Built) -> None:
    result = _dbt(warehouse_env.project_dir, warehouse_env.work_dir, "run", "--select", "fct_depletions")
    assert result.success, result.exception
    assert [r.node.name for r in result.result.results] == ["fct_depletions"]


def test_source_freshness_passes(warehouse_env: Built) -> None:
    result = _dbt(warehouse_env.project_dir, warehouse_env.work_dir, "source freshness")
    assert result.success, result.exception
    statuses = {str(r.status) for r in result.result.results}
    assert statuses == {"pass"}
    assert len(result.result.results) == 13


def _selectors() -> list[str]:
    doc: dict[str, Any] = yaml.safe_load((PROJECT_SRC / "selectors.yml").read_text())
    return [s["name"] for s in doc["selectors"]]


def test_at_least_four_selectors() -> None:
    assert len(_selectors()) >= 4


@pytest.mark.parametrize("selector", _selectors())
def test_every_selector_selects_nodes(warehouse_env: Built, selector: str) -> None:
    result = _dbt(warehouse_env.project_dir, warehouse_env.work_dir, "ls", "--selector", selector, "--output", "name")
    assert result.success, result.exception
    assert len(result.result) > 0


def test_nightly_excludes_hourly_models(warehouse_env: Built) -> None:
    result = _dbt(warehouse_env.project_dir, warehouse_env.work_dir, "ls", "--selector", "nightly", "--output", "name")
    assert result.success
    assert "fct_fx_rates" not in result.result
    assert "fct_orders" in result.result
