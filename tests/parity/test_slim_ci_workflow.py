"""The CI workflow's steps, run against dbt on DuckDB.

The first test reuses this folder's session fixture, a real `dbt run` of the hourly selection on prod, as the
production run whose manifest the store holds: it takes the fetch line and the dbt lines out of the generated
workflow and runs them as the runner would (the profile step writes a Snowflake profile; here a DuckDB profile of
the same target name stands in). The second runs a CI job of the second tenant (tests/tenants/shop) step by step
with tests/migration/workflow_runner.py: the events start the jobs their `if:` says, two pull requests build into
two schemas, and closing one drops its schema.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import duckdb
import pytest
import yaml
from typer.testing import CliRunner

from cli.app import app
from dbt2prefect.artifact_store import ArtifactStore, RunKey
from dbt2prefect.tenant import REPO_ROOT, load_tenant
from migration.ci_workflow import render_workflow
from migration.dbt_cloud.models import Job
from migration.export import load_inventory
from migration.translate import build_plan
from sandbox.stack import derive_tenant_file
from sandbox.warehouse import database_path
from tests.migration.workflow_runner import jobs_started, pull_request_context, run_job
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


# --- Two pull requests of one CI job of the second tenant, run step by step as the runner would ---

SHOP_CI_JOB = 5010


def _shop_ci_job(**changes: object) -> dict[str, Any]:
    base = json.loads((REPO_ROOT / "tests" / "tenants" / "shop.jobs.json").read_text())["data"][0]
    return {
        **base,
        "id": SHOP_CI_JOB,
        "name": "CI build",
        "job_type": "ci",
        "execute_steps": ["dbt build"],
        "triggers": {"github_webhook": True, "git_provider_webhook": False, "schedule": False, "on_merge": False},
        "settings": {"threads": 3, "target_name": "ci"},
        **changes,
    }


def _duckdb_profile(path: Path) -> str:
    """The stand-in of the workflow's Snowflake profile: the same target and the same variables for schema and
    threads, on a DuckDB file."""
    output = {
        "type": "duckdb",
        "path": str(path),
        "schema": "{{ env_var('SNOWFLAKE_SCHEMA') }}",
        "threads": "{{ env_var('SNOWFLAKE_THREADS') | as_number }}",
    }
    return yaml.safe_dump({"default": {"target": "ci", "outputs": {"ci": output}}})


@pytest.mark.slow  # the workflow's steps run dbt
def test_each_pull_request_builds_into_its_own_schema_and_closing_one_drops_it(tmp_path: Path) -> None:
    tenant_file = REPO_ROOT / "tests" / "tenants" / "shop.toml"
    plan = build_plan([Job.from_api(_shop_ci_job())], load_tenant(tenant_file))
    workflow = yaml.safe_load(render_workflow(plan, load_tenant(tenant_file), source="test", tenant_file=tenant_file))
    # The checkout: the tenant's files where the repository has them.
    workspace = tmp_path / "checkout"
    for name in ("shop", "shop_utils"):
        shutil.copytree(REPO_ROOT / "tests" / "tenants" / name, workspace / "tests" / "tenants" / name,
                        ignore=shutil.ignore_patterns("target", "logs", "dbt_packages"))  # fmt: skip
    shutil.copy(tenant_file, workspace / "tests" / "tenants" / "shop.toml")
    project = workspace / "tests" / "tenants" / "shop"
    warehouse = tmp_path / "ci.duckdb"

    env = {  # what `pip install` gives the runner: the toolkit and dbt on PATH
        **os.environ,
        "PATH": os.pathsep.join([str(Path(DBT).parent), os.environ.get("PATH", "")]),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
    }
    # (Deferral and the state fetch run in the test above; this job defers to nothing, so its step is `dbt build`.)
    assert [s["run"] for s in workflow["jobs"][f"dbt-cloud-job-{SHOP_CI_JOB}"]["steps"] if "run" in s][
        -1
    ] == "dbt build"

    def handler(step: Mapping[str, Any], step_env: dict[str, str]) -> bool:
        if "uses" in step or step.get("name") == "Install the pinned toolkit":
            return True  # the checkout is in place; this Python has the toolkit
        if step.get("name") == "Write the profile (fields from the environment)":
            done = subprocess.run(["bash", "-e", "-c", step["run"]], cwd=workspace, env=step_env, check=True)
            written = workspace / step_env["DBT_PROFILES_DIR"] / "profiles.yml"
            output = yaml.safe_load(written.read_text())["default"]["outputs"]["ci"]
            assert output["schema"] == "{{ env_var('SNOWFLAKE_SCHEMA') }}" and done.returncode == 0
            written.write_text(_duckdb_profile(warehouse))
            return True
        return False

    def run(context: dict[str, Any]) -> list[str]:
        started = jobs_started(workflow, "pull_request", context)
        for name in started:
            ok, runs = run_job(workflow["jobs"][name], context, workspace, handler=handler, base_env=env)
            assert ok, "\n".join(f"{r.name}: {r.returncode}\n{r.output[-3000:]}" for r in runs)
        return started

    def schemas() -> dict[str, set[str]]:
        with duckdb.connect(str(warehouse), read_only=True) as con:
            rows = con.execute("select table_schema, table_name from information_schema.tables").fetchall()
        tables: dict[str, set[str]] = {}
        for schema, table in rows:
            tables.setdefault(schema, set()).add(table)
        return tables

    job = f"dbt-cloud-job-{SHOP_CI_JOB}"
    assert run(pull_request_context("opened", 1)) == [job]
    assert run(pull_request_context("opened", 2)) == [job]
    built = schemas()
    models = {"stg_customers", "stg_orders", "customer_orders", "orders_sample", "metricflow_time_spine"}
    # `dbt build` selects nothing, so the whole project is built, into each pull request's schema.
    assert models <= built["dbt_cloud_pr_5010_1"] and models <= built["dbt_cloud_pr_5010_2"]
    results = json.loads((project / "target" / "run_results.json").read_text())["results"]
    assert {r["unique_id"].split(".")[-1] for r in results if r["unique_id"].startswith("model.")} == models
    # The seeds' custom schema is used as named by the tenant's macro: shared, and the plan says so.
    assert {"raw_customers", "raw_orders"} <= built["raw"]
    assert any(f.reason_code == "ci_isolation" and "raw" in f.message for f in plan.findings)

    assert run(pull_request_context("closed", 1)) == [f"{job}-cleanup"]
    after = schemas()
    assert "dbt_cloud_pr_5010_1" not in after
    assert after["dbt_cloud_pr_5010_2"] == built["dbt_cloud_pr_5010_2"] and after["raw"] == built["raw"]
