"""One real dbt Cloud-style run in the sandbox (real dbt on DuckDB), read back through the client.

The runs are module-scoped and are the only dbt executions of the dbt Cloud tests. The nightly selector
excludes the hourly models that the finance marts read (the hourly job keeps them fresh in the account), so on
a fresh warehouse a short `dbt run --select +tag:hourly` goes first.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator

import pytest

from dbt2prefect.tenant import load_tenant
from migration.dbt_cloud.client import DbtCloudClient
from migration.dbt_cloud.models import Run, RunStatus
from migration.dbt_cloud.settings import RetryPolicy
from migration.export import export_inventory
from sandbox.datagen import generate
from sandbox.dbt_cloud import SandboxDbtCloud

NIGHTLY = 70403103936332
HOURLY = 70403103936340
FRESHNESS_STEP, BUILD_STEP, DOCS_STEP = 4, 5, 6


@pytest.fixture(scope="module")
def nightly(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DbtCloudClient, Run]]:
    """The nightly job (freshness + build + docs) run once through POST /jobs/{id}/run/ on small data."""
    base = tmp_path_factory.mktemp("dbt-cloud-run")
    project = base / "project"
    shutil.copytree(load_tenant().project_dir, project, ignore=shutil.ignore_patterns("target", "logs", "dbt_packages"))
    generate(base / "warehouse", scale=0.2)
    with (
        SandboxDbtCloud.start(project_dir=project, warehouse_base=base / "warehouse") as cloud,
        DbtCloudClient(cloud.url, cloud.account_id, cloud.token, retry=RetryPolicy(backoff_base=0.1)) as client,
    ):
        warm = cloud.app.run_job(HOURLY, cause="warm-up", steps_override=["dbt run --select +tag:hourly"])
        assert warm["status"] == 10, [(s["name"], s["logs"][-2000:]) for s in warm["run_steps"]]
        queued = client.trigger_job_run(NIGHTLY, cause="parity baseline")
        assert queued.status == RunStatus.QUEUED
        deadline = time.monotonic() + 600
        run = client.get_run(queued.id)
        while run.status in (RunStatus.QUEUED, RunStatus.STARTING, RunStatus.RUNNING):
            assert time.monotonic() < deadline, "the sandbox run did not finish in 10 minutes"
            time.sleep(0.5)
            run = client.get_run(queued.id)
        yield client, run


def test_run_succeeds_with_dbt_cloud_steps(nightly: tuple[DbtCloudClient, Run]) -> None:
    _, run = nightly
    failed = [s for s in run.run_steps if s.status != 10]
    assert run.status == RunStatus.SUCCESS, f"failed steps: {[(s.name, (s.logs or '')[-2000:]) for s in failed]}"
    assert [(s.index, s.name) for s in run.run_steps] == [
        (1, "Clone git repository"),
        (2, "Create profile from connection DuckDB (sandbox)"),
        (3, "Invoke dbt with `dbt deps`"),
        (4, "Invoke dbt with `dbt source freshness`"),
        (5, "Invoke dbt with `dbt build --selector nightly`"),
        (6, "Invoke dbt with `dbt docs generate`"),
    ]
    build = run.run_steps[BUILD_STEP - 1]
    assert "ERROR=0" in (build.logs or "") and "Done. PASS=" in (build.logs or "")
    assert run.started_at is not None and run.finished_at is not None and run.finished_at >= run.started_at


def test_artifacts_per_step_and_the_step_pitfall(nightly: tuple[DbtCloudClient, Run]) -> None:
    client, run = nightly
    assert client.list_run_artifacts(run.id, step=FRESHNESS_STEP) == ["manifest.json", "sources.json"]
    assert client.list_run_artifacts(run.id, step=BUILD_STEP) == ["manifest.json", "run_results.json"]
    assert "catalog.json" in client.list_run_artifacts(run.id)  # no step: the last (docs) step
    pinned = client.get_run_artifact(run.id, "run_results.json", step=BUILD_STEP)
    assert pinned["args"]["which"] == "build"
    assert {r["status"] for r in pinned["results"]} <= {"success", "pass", "warn"} and len(pinned["results"]) > 20
    unpinned = client.get_run_artifact(run.id, "run_results.json", step=None)
    assert unpinned["args"]["which"] == "generate"  # why callers must pin the step
    sources = client.get_run_artifact(run.id, "sources.json", step=FRESHNESS_STEP)
    assert sources["results"] and all(r["status"] in ("pass", "warn") for r in sources["results"])
    catalog = client.get_run_artifact(run.id, "catalog.json", step=DOCS_STEP)
    assert any(key.startswith("model.dbt_williamgrant.") for key in catalog["nodes"])


def test_run_flags_and_latest_successful_run(nightly: tuple[DbtCloudClient, Run]) -> None:
    client, run = nightly
    assert run.has_docs_generated and run.has_sources_generated and run.artifacts_saved
    latest = client.latest_successful_run(NIGHTLY)
    assert latest is not None and latest.id == run.id
    inventory = export_inventory(client, max_workers=2)
    assert inventory.latest_successful_runs()[NIGHTLY] == run.id
