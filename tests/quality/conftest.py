"""A private tenant for the quality tests: its own project copy, warehouse, artifact store and block names."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from dbt2prefect.profiles import block_from_env
from dbt2prefect.tenant import REPO_ROOT, TenantSettings, load_tenant, settings_path
from sandbox.datagen import generate
from sandbox.warehouse import duckdb_output

# Block names of their own, so saving blocks here never changes the blocks other test modules use.
PROFILE_PREFIX = "quality-wg"


@dataclass(frozen=True)
class QualityTenant:
    root: Path
    settings_file: Path
    warehouse: Path
    runs: Path

    @property
    def settings(self) -> TenantSettings:
        return load_tenant(self.settings_file)


@pytest.fixture(scope="module")
def quality_tenant(tmp_path_factory: pytest.TempPathFactory, prefect_api: None) -> Iterator[QualityTenant]:
    """Tenant copy with generated raw data and a DuckDB profile block for target dev; env vars restored after."""
    root = tmp_path_factory.mktemp("quality-tenant")
    shutil.copytree(
        REPO_ROOT / "tenants" / "dbt_williamgrant",
        root / "tenants" / "dbt_williamgrant",
        ignore=shutil.ignore_patterns("target", "logs", "dbt_packages", ".user.yml"),
    )
    text = (
        settings_path()
        .read_text(encoding="utf-8")
        .replace('profile_prefix = "dbt-wg"', f'profile_prefix = "{PROFILE_PREFIX}"')
    )
    settings_file = root / "tenants" / "dbt_williamgrant.toml"
    settings_file.write_text(text, encoding="utf-8")
    tenant = QualityTenant(root, settings_file, root / "warehouse", root / "runs")
    generate(tenant.warehouse)
    names = ("DBT2PREFECT_TENANT_FILE", "DBT2PREFECT_WAREHOUSE_DIR", "DBT2PREFECT_RUNS_DIR")
    saved = {key: os.environ.get(key) for key in names}
    os.environ["DBT2PREFECT_TENANT_FILE"] = str(settings_file)
    os.environ["DBT2PREFECT_WAREHOUSE_DIR"] = str(tenant.warehouse)
    os.environ["DBT2PREFECT_RUNS_DIR"] = str(tenant.runs)
    block = block_from_env("duckdb", {}, duckdb_output("dev", tenant.warehouse, threads=4))
    block.save(tenant.settings.block_name("dev"), overwrite=True)
    yield tenant
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
