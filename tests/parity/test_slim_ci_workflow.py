"""The CI workflow's dbt commands, run against the sandbox's DuckDB with state from the run-artifact store.

Here rather than under tests/migration/ because it reuses this folder's session fixture, a real `dbt run` of the
hourly selection on prod, as the production run whose manifest the store holds. No workflow runner runs: the test
takes the fetch line and the dbt lines out of the generated workflow and runs them as the runner would (the
profile step writes a Snowflake profile; here a DuckDB profile of the same target name stands in).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
from pathlib import Path

import duckdb
import pytest
import yaml
from typer.testing import CliRunner

from dbt2prefect.artifact_store import ArtifactStore, RunKey
from dbt2prefect.cli.app import app
from dbt2prefect.tenant import REPO_ROOT, load_tenant
from migration.ci_workflow import render_workflow
from migration.export import load_inventory
from migration.translate import build_plan
from sandbox.stack import derive_tenant_file
from sandbox.warehouse import database_path
from tests.parity.conftest import DBT, BuiltTenant

MERGE_JOB = 70403103936369
"""The merge job: its target is prod, the state's own. The CI job's lines are the same, but it runs as target
`ci`, and the tenant materialises int_order_lines_enriched by target name, so dbt rightly counts that model as
modified too (dbt Cloud's CI would as well) and rebuilds its descendants, which this fixture's prod run lacks."""
CHANGED = "rpt_revenue_by_currency"


def _workflow_job(tenant_file: Path) -> dict[str, object]:
    tenant = load_tenant(tenant_file)
    inventory = load_inventory(REPO_ROOT / "sandbox" / "dbt_cloud" / "seed_jobs.json")
    plan = build_plan(inventory.job_models(), tenant, inventory.environment_models())
    document = yaml.safe_load(render_workflow(plan, tenant, source="test", tenant_file=tenant_file))
    job: dict[str, object] = document["jobs"][f"dbt-cloud-job-{MERGE_JOB}"]
    return job


def test_slim_ci_builds_only_the_changed_model_deferring_to_the_stored_prod_run(
    built_tenant: BuiltTenant, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tenant_file = derive_tenant_file(
        tmp_path / "tenant.toml", overrides={"artifact_store_url": str(tmp_path / "store")}
    )
    tenant = load_tenant(tenant_file)
    store = ArtifactStore(tenant.artifact_store_url)
    prod_run = RunKey(tenant.name, tenant.deployment_name, "prod", "prod-run-1")
    store.save_run(prod_run, built_tenant.project_dir.parent / "target-prod", {"status": "COMPLETED"})
    store.mark_latest(prod_run)

    job = _workflow_job(tenant_file)
    runs = [str(step["run"]) for step in job["steps"] if "run" in step]  # type: ignore[attr-defined]
    fetch = next(r for r in runs if r.startswith("dbt2prefect "))
    dbt_lines = [r for r in runs if r.startswith("dbt ")]
    assert dbt_lines[-1] == "dbt build --select state:modified+ --defer --state state"

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DBT2PREFECT_TENANT_FILE", str(tenant_file))
    # The checkout: a copy of the project where the workflow's DBT_PROJECT_DIR says (relative to the checkout).
    project = tmp_path / str(job["env"]["DBT_PROJECT_DIR"])  # type: ignore[index]
    fetched = CliRunner().invoke(app, shlex.split(fetch)[1:])
    assert fetched.exit_code == 0, fetched.output
    assert (project / "state" / "manifest.json").is_file()

    # A pull request changes one model (a leaf of the hourly selection).
    shutil.copytree(
        built_tenant.project_dir, project, ignore=shutil.ignore_patterns("target", "logs"), dirs_exist_ok=True
    )
    model = project / "models" / "marts" / "finance" / f"{CHANGED}.sql"
    model.write_text(model.read_text().replace("group by l.currency_code", "group by all"), encoding="utf-8")
    ci_db = tmp_path / "ci.duckdb"  # not prod.duckdb: the deferred relations must come from the attached prod
    output = {
        "type": "duckdb",
        "path": str(ci_db),
        "threads": 2,
        "schema": "main",
        "attach": [
            {"path": str(database_path("raw", built_tenant.warehouse)), "alias": "raw", "read_only": True},
            {"path": str(database_path("prod", built_tenant.warehouse)), "alias": "prod", "read_only": True},
        ],
    }
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    target = "prod"  # the merge job's target name, as the workflow's profile names it
    (profiles / "profiles.yml").write_text(
        yaml.safe_dump({"dbt_williamgrant": {"target": target, "outputs": {target: output}}}), encoding="utf-8"
    )
    env = {**os.environ, "DBT_PROJECT_DIR": str(job["env"]["DBT_PROJECT_DIR"]), "DBT_PROFILES_DIR": str(profiles)}  # type: ignore[index]
    for line in dbt_lines:
        words = shlex.split(line)
        done = subprocess.run([DBT, *words[1:]], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"{line}\n{done.stdout[-3000:]}{done.stderr[-2000:]}"

    results = json.loads((project / "target" / "run_results.json").read_text())["results"]
    statuses = {r["unique_id"]: r["status"] for r in results}
    model_id = f"model.dbt_williamgrant.{CHANGED}"
    assert statuses.pop(model_id) == "success"
    # Only the changed model and its own tests ran; everything upstream was read from prod (deferred).
    assert statuses and all(uid.startswith("test.") and CHANGED in uid for uid in statuses), statuses
    assert set(statuses.values()) == {"pass"}
    with duckdb.connect(str(ci_db), read_only=True) as con:
        built = {row[0] for row in con.execute("select table_name from information_schema.tables").fetchall()}
    assert CHANGED in built and "int_fx_rates_daily" not in built
