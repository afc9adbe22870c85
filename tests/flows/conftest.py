"""A private copy of the tenant: project, warehouse, artifact store and profile blocks in a temp folder."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from dbt2prefect.profiles import block_from_env
from dbt2prefect.tenant import TenantSettings, load_tenant, settings_path
from sandbox.datagen import generate
from sandbox.warehouse import duckdb_output

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class TenantCopy:
    root: Path
    settings_file: Path
    warehouse: Path
    project_dir: Path
    store: Path

    @property
    def settings(self) -> TenantSettings:
        return load_tenant(self.settings_file)


def _copy_tenant(root: Path) -> TenantCopy:
    project = root / "tenants" / "dbt_williamgrant"
    shutil.copytree(
        REPO / "tenants" / "dbt_williamgrant",
        project,
        ignore=shutil.ignore_patterns("target", "logs", "dbt_packages"),
    )
    settings_text = settings_path().read_text(encoding="utf-8")
    settings_file = root / "tenants" / "dbt_williamgrant.toml"
    settings_file.write_text(settings_text, encoding="utf-8")
    parity_settings = settings_path().with_name(f"{settings_path().stem}.parity.toml")
    shutil.copy(parity_settings, settings_file.with_name(parity_settings.name))
    return TenantCopy(root, settings_file, root / "warehouse", project, root / ".dbt2prefect" / "artifacts")


@pytest.fixture(scope="session")
def tenant_copy(tmp_path_factory: pytest.TempPathFactory, prefect_api: None) -> Iterator[TenantCopy]:
    """Tenant copy with generated raw data and one DuckDB profile block per target in the test Prefect API."""
    copy = _copy_tenant(tmp_path_factory.mktemp("tenant"))
    generate(copy.warehouse)
    saved = {
        key: os.environ.get(key)
        for key in ("DBT2PREFECT_TENANT_FILE", "DBT2PREFECT_WAREHOUSE_DIR", "DBT2PREFECT_RUNS_DIR")
    }
    os.environ["DBT2PREFECT_TENANT_FILE"] = str(copy.settings_file)
    os.environ["DBT2PREFECT_WAREHOUSE_DIR"] = str(copy.warehouse)
    os.environ["DBT2PREFECT_RUNS_DIR"] = str(copy.root / "runs")
    settings = copy.settings
    for target in ("dev", "prod", "parity"):
        block = block_from_env("duckdb", {}, duckdb_output(target, copy.warehouse, threads=4))
        block.save(settings.block_name(target), overwrite=True)
    yield copy
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
