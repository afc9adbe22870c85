"""A private copy of the tenant, shaped as production: its code and settings in a git repository that deployment
runs clone, its artifact store and ledger in object storage (the S3 API on loopback), its warehouse and profile
blocks of its own."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from dbt2prefect.profiles import block_from_env
from dbt2prefect.tenant import REPO_ROOT, TenantSettings, load_tenant, settings_path
from sandbox.code_remote import CodeRemote, create_code_remote
from sandbox.datagen import generate
from sandbox.s3_api import BUCKET, S3Api
from sandbox.stack import derive_tenant_file, sandbox_deployment_settings
from sandbox.warehouse import duckdb_output
from sandbox.worker import ProcessWorker

WORKER_POOL = "wg-test-worker"
"""The process pool that the session's worker polls (no other test's pool has a worker)."""


@dataclass(frozen=True)
class TenantCopy:
    root: Path
    settings_file: Path
    warehouse: Path
    project_dir: Path
    store: str
    """The artifact store's URL (in the session's S3 API)."""
    remote: CodeRemote
    """The copy's repository: `remote.checkout` holds the settings file and project, deployments clone it."""

    @property
    def settings(self) -> TenantSettings:
        return load_tenant(self.settings_file)


def _copy_tenant(root: Path) -> TenantCopy:
    """A snapshot of this checkout with the tenant's settings rewritten for the session, pushed to a bare remote."""
    remote = create_code_remote(root / "code", root / "code.git")
    settings_file = remote.checkout / settings_path().relative_to(REPO_ROOT)
    store = f"s3://{BUCKET}/tenant-copy/artifacts"
    overrides = {
        "artifact_store_url": store,
        "ledger_url": f"s3://{BUCKET}/tenant-copy/ledger",
        # Deployments of the copy run on a process pool and clone the copy's repository (as the sandbox sets it up).
        **sandbox_deployment_settings(WORKER_POOL, remote.code_storage()),
    }
    derive_tenant_file(settings_file, overrides=overrides, checkout=remote.checkout)
    remote.publish("Tenant settings of the test session")
    project = settings_file.parent / "dbt_williamgrant"
    return TenantCopy(root, settings_file, root / "warehouse", project, store, remote)


@pytest.fixture(scope="session")
def tenant_copy(tmp_path_factory: pytest.TempPathFactory, prefect_api: None, s3_api: S3Api) -> Iterator[TenantCopy]:
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
def process_worker(
    tenant_copy: TenantCopy, s3_api: S3Api, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ProcessWorker]:
    """One real `prefect worker start` process for the session, in an empty folder outside the repository.

    Its host environment is the tenant copy's warehouse (Snowflake's stand-in, reached by both sides) and the S3
    API's address; nothing of the test process's files: its flow runs clone the copy's repository, read the tenant
    file from the clone (a job variable, as in production) and keep their run folders under the worker's folder.
    """
    from prefect.settings import get_current_settings

    api_url = str(get_current_settings().api.url)
    folder = tmp_path_factory.mktemp("worker") / "cwd"
    env = {"DBT2PREFECT_WAREHOUSE_DIR": str(tenant_copy.warehouse), **s3_api.environment()}
    with ProcessWorker.start(pool=WORKER_POOL, api_url=api_url, folder=folder, env=env) as worker:
        worker.wait_ready()
        yield worker
