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
from sandbox.stack import derive_tenant_file, sandbox_deployment_settings
from sandbox.warehouse import duckdb_output
from sandbox.worker import ProcessWorker

REPO = Path(__file__).resolve().parents[2]
WORKER_POOL = "wg-test-worker"
"""The process pool that the session's worker polls (no other test's pool has a worker)."""


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
    # Deployments of the copy run on a process pool, this checkout in place (as the sandbox sets it up).
    derive_tenant_file(settings_file, settings_file, overrides=sandbox_deployment_settings(WORKER_POOL))
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


@pytest.fixture(scope="session")
def process_worker(tenant_copy: TenantCopy, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcessWorker]:
    """One real `prefect worker start` process for the session, in an empty folder outside the repository.

    Its host environment is the tenant copy's warehouse and run folders; the tenant file reaches each flow run
    through the deployment's job variables, as in production.
    """
    from prefect.settings import get_current_settings

    api_url = str(get_current_settings().api.url)
    folder = tmp_path_factory.mktemp("worker") / "cwd"
    env = {
        "DBT2PREFECT_WAREHOUSE_DIR": str(tenant_copy.warehouse),
        "DBT2PREFECT_RUNS_DIR": str(tenant_copy.root / "runs"),
    }
    with ProcessWorker.start(pool=WORKER_POOL, api_url=api_url, folder=folder, env=env) as worker:
        worker.wait_ready()
        yield worker
