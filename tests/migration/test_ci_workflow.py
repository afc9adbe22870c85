"""The GitHub Actions workflow for dbt Cloud CI and merge jobs: its shape, its slim CI lines, the drift check."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from dbt2prefect.dbt_cli import parse_step_line
from dbt2prefect.tenant import REPO_ROOT, load_tenant, settings_path
from migration.ci_workflow import render_workflow, required_secrets, slim_ci_line
from migration.emit import REGENERATE
from migration.export import load_inventory
from migration.plan import MigrationPlan
from migration.translate import build_plan

SEED = REPO_ROOT / "sandbox" / "dbt_cloud" / "seed_jobs.json"
COMMITTED = REPO_ROOT / "tenants" / "dbt_williamgrant.dbt-ci.yml"
CI_JOB, MERGE_JOB = 70403103936362, 70403103936369


@pytest.fixture(scope="module")
def plan() -> MigrationPlan:
    inventory = load_inventory(SEED)
    return build_plan(inventory.job_models(), load_tenant(), inventory.environment_models())


def _render(plan: MigrationPlan) -> str:
    return render_workflow(plan, load_tenant(), source=REGENERATE, tenant_file=settings_path())


def test_committed_workflow_matches_the_seed_jobs(plan: MigrationPlan) -> None:
    assert COMMITTED.read_text() == _render(plan), (
        f"{COMMITTED} is out of date; regenerate with `.venv/bin/{REGENERATE}`"
    )


def test_pull_requests_run_the_ci_job_and_pushes_the_merge_job(plan: MigrationPlan) -> None:
    document = yaml.safe_load(_render(plan))
    assert document["on"] == {"pull_request": {"branches": ["main"]}, "push": {"branches": ["main"]}}
    jobs = document["jobs"]
    assert set(jobs) == {f"dbt-cloud-job-{CI_JOB}", f"dbt-cloud-job-{MERGE_JOB}"}
    ci, merge = jobs[f"dbt-cloud-job-{CI_JOB}"], jobs[f"dbt-cloud-job-{MERGE_JOB}"]
    assert (ci["if"], merge["if"]) == ("github.event_name == 'pull_request'", "github.event_name == 'push'")
    runs = [step.get("run", "") for step in ci["steps"]]
    assert "dbt2prefect artifacts fetch --target prod --to tenants/dbt_williamgrant/state" in runs
    assert runs[-2:] == ["dbt deps", "dbt build --select state:modified+ --defer --state state"]
    profile = yaml.safe_load(next(r for r in runs if "profiles.yml" in r).split("<<'EOF'\n")[1].split("EOF")[0])
    output = profile["dbt_williamgrant"]["outputs"]["ci"]  # the CI job's target name, on the dev connection
    assert output["type"] == "snowflake" and output["account"] == "{{ env_var('SNOWFLAKE_ACCOUNT') }}"
    # The CI job connects as dev, the merge job as prod: each reads its own block's secrets.
    assert ci["env"]["SNOWFLAKE_ACCOUNT"] == "${{ secrets.DBT_WG_DEV_SNOWFLAKE_ACCOUNT }}"
    assert merge["env"]["SNOWFLAKE_ACCOUNT"] == "${{ secrets.DBT_WG_PROD_SNOWFLAKE_ACCOUNT }}"
    assert ci["env"]["DBT_PROJECT_DIR"] == "tenants/dbt_williamgrant"
    assert ci["env"]["DBT2PREFECT_TENANT_FILE"] == "tenants/dbt_williamgrant.toml"
    header = _render(plan).split("\nname:")[0]
    assert all(secret in header for secret in required_secrets(plan, load_tenant()))


@pytest.mark.parametrize(
    ("line", "slim"),
    [
        ("dbt build", "dbt build --select state:modified+ --defer --state state"),
        ("dbt run -s tag:finance", "dbt run -s tag:finance --defer --state state"),
        ("dbt build --selector nightly", "dbt build --selector nightly --defer --state state"),
        ("dbt source freshness", "dbt source freshness"),
        ("dbt --warn-error test", "dbt --warn-error test --select state:modified+ --defer --state state"),
        ("dbt run-operation grant_all", "dbt run-operation grant_all"),
        ("dbt build --state prior --defer", "dbt build --state prior --defer"),
    ],
)
def test_slim_ci_lines(line: str, slim: str) -> None:
    assert slim_ci_line(parse_step_line(line)) == slim


def test_emit_writes_the_workflow_where_asked(tmp_path: Path, plan: MigrationPlan) -> None:
    from typer.testing import CliRunner

    from dbt2prefect.cli.app import app

    out, workflow = tmp_path / "prefect.yaml", tmp_path / "ci.yml"
    args = ["emit", "--from-file", str(SEED), "--tenant-file", str(settings_path()), "--output", str(out)]
    result = CliRunner().invoke(app, [*args, "--example", "--ci-workflow", str(workflow)])
    assert result.exit_code == 0, result.output
    assert workflow.read_text() == _render(plan)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ci.yml", "prefect.yaml"]


def test_fetch_without_a_stored_run_or_with_an_unknown_target_says_so(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from dbt2prefect.cli.app import app
    from sandbox.stack import derive_tenant_file

    tenant_file = derive_tenant_file(tmp_path / "t.toml", overrides={"artifact_store_url": str(tmp_path / "store")})
    base = ["artifacts", "fetch", "--tenant-file", str(tenant_file), "--to", str(tmp_path / "state")]
    empty = CliRunner().invoke(app, [*base, "--target", "parity"])  # no dbt Cloud environment is mapped to it
    assert empty.exit_code == 2 and "no successful run of dbt_wg on target 'parity'" in empty.stderr
    assert "[tenant.dbt_cloud_environments]" in empty.stderr
    assert "Traceback" not in empty.output
    unknown = CliRunner().invoke(app, [*base, "--target", "nope"])
    assert unknown.exit_code == 2 and "'nope' is not one of" in unknown.stderr
    assert not (tmp_path / "state").exists()


def test_fetch_before_the_first_cutover_takes_dbt_clouds_latest_production_manifest(tmp_path: Path) -> None:
    """CI from day one: nothing of `prod` is in the store, so the state is dbt Cloud's (sandbox server, HTTP)."""
    import json

    from typer.testing import CliRunner

    from dbt2prefect.cli.app import app
    from migration.dbt_cloud.models import RunStatus
    from parity import synthetic as syn
    from sandbox.dbt_cloud import SandboxDbtCloud
    from sandbox.stack import derive_tenant_file

    nightly = 70403103936332  # a job of the environment the tenant maps to `prod`
    built = tmp_path / "built"
    built.mkdir()
    manifest = syn.manifest([syn.node("model.dbt_williamgrant.orders")])
    (built / "manifest.json").write_text(json.dumps(manifest))
    (built / "run_results.json").write_text(json.dumps(syn.run_results({"model.dbt_williamgrant.orders": "success"})))
    with SandboxDbtCloud.start() as cloud:
        state = cloud.app.state
        building = state.add_run_record(nightly, int(RunStatus.SUCCESS))
        state.add_run_step(building["id"], {"index": 1, "name": "Invoke dbt with `dbt build`", "status": 10}, built)
        state.add_run_record(nightly, int(RunStatus.SUCCESS))  # newer, but no step built anything
        state.add_run_record(nightly, int(RunStatus.ERROR))
        tenant_file = derive_tenant_file(
            tmp_path / "t.toml",
            overrides={
                "artifact_store_url": str(tmp_path / "store"),
                "dbt_cloud": {"host": cloud.url, "account_id": cloud.account_id},
            },
        )
        args = [
            "artifacts",
            "fetch",
            "--tenant-file",
            str(tenant_file),
            "--target",
            "prod",
            "--to",
            str(tmp_path / "s"),
        ]
        fetched = CliRunner().invoke(app, args, env={"DBT_CLOUD_API_TOKEN": cloud.token})
    assert fetched.exit_code == 0, fetched.output
    assert json.loads((tmp_path / "s" / "manifest.json").read_text()) == manifest
    assert f"dbt Cloud run {building['id']} (job {nightly}, environment 70403103931988, step 1)" in fetched.stdout
    assert "no run of dbt_wg on target 'prod' is in the artifact store yet" in fetched.stdout
