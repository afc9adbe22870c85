"""`dbt2prefect status | cutover | rollback` through the CLI (CliRunner) on the sandbox and the real Prefect API."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from dbt2prefect.cli.app import app
from dbt2prefect.tenant import REPO_ROOT, load_tenant
from migration.apply import apply_deployment
from migration.dbt_cloud.client import DbtCloudClient
from migration.dbt_cloud.models import RunStatus
from migration.deployment import build_deployment
from migration.translate import build_plan
from parity.model import JobParity, ParityReport, RunRef, Verdict
from parity.store import write_report
from sandbox.dbt_cloud import SandboxDbtCloud
from sandbox.stack import on_process_pool

NIGHTLY = 70403103936332
HOURLY = 70403103936340
runner = CliRunner()


async def _start_prefect_run(deployment: str, parameters: dict[str, Any]) -> str:
    from prefect.client.orchestration import get_client
    from prefect.states import Running

    async with get_client() as client:
        found = await client.read_deployment_by_name(deployment)
        run = await client.create_flow_run_from_deployment(found.id, parameters=parameters)
        await client.set_flow_run_state(run.id, Running(), force=True)
        return str(run.id)


@pytest.fixture
def setup(tmp_path: Path, prefect_api: None) -> Iterator[dict[str, Any]]:
    with SandboxDbtCloud.start() as cloud:
        base = load_tenant()
        deployment = f"dbt_wg_status_{uuid.uuid4().hex[:8]}"
        tenant = on_process_pool(base, "wg-test-process", deployment_name=deployment)
        with DbtCloudClient(cloud.url, cloud.account_id, cloud.token) as client:
            plan = build_plan(list(client.iter_jobs(state="all")), tenant)
        apply_deployment(build_deployment(plan, tenant), create_pool=True)
        text = (REPO_ROOT / "tenants" / "dbt_williamgrant.toml").read_text()
        for old, new in {
            'project_dir = "dbt_williamgrant"': f'project_dir = "{base.project_dir}"',
            'local_profiles_dir = "dbt_williamgrant/profiles"': "",
            'deployment_name = "dbt_wg"': f'deployment_name = "{deployment}"',
            'ledger_url = "../.dbt2prefect/ledger"': f'ledger_url = "{tmp_path / "ledger"}"',
            'host = "https://emea.dbt.com"': f'host = "{cloud.url}"',
            "account_id = 70403103922125": f"account_id = {cloud.account_id}",
        }.items():
            text = text.replace(old, new)
        (tmp_path / "tenant.toml").write_text(text)
        env = {
            "DBT2PREFECT_TENANT_FILE": str(tmp_path / "tenant.toml"),
            "DBT_CLOUD_API_TOKEN": cloud.token,
            "DBT2PREFECT_PARITY_DIR": str(tmp_path / "parity"),
            "COLUMNS": "250",
        }
        params = next(s.parameters for s in plan.schedules if s.job_id == NIGHTLY)
        yield {"cloud": cloud, "env": env, "deployment": f"{tenant.flow_name}/{deployment}", "params": params}


def _status(env: dict[str, str]) -> dict[int, dict[str, Any]]:
    result = runner.invoke(app, ["status", "--json"], env=env)
    assert result.exit_code == 0, result.output
    return {row["job_id"]: row for row in json.loads(result.stdout)["jobs"]}


def test_status_cutover_rollback_through_the_cli(setup: dict[str, Any], tmp_path: Path) -> None:
    env, cloud = setup["env"], setup["cloud"]
    before = _status(env)
    assert before[NIGHTLY]["dbt_cloud_schedule_on"] is True
    assert before[NIGHTLY]["prefect_schedule"] == "paused"
    assert before[NIGHTLY]["ledger_state"] == "none" and before[NIGHTLY]["parity_verdict"] is None

    refused = runner.invoke(app, ["cutover", "--job", str(NIGHTLY)], env=env)
    assert refused.exit_code == 1
    assert f"job {NIGHTLY}: has no parity verdict" in refused.output

    write_report(
        ParityReport.from_jobs(
            "dbt_williamgrant",
            [
                JobParity(
                    job_id=NIGHTLY,
                    verdict=Verdict.PASS,
                    baseline=RunRef(system="dbt_cloud", run_id="1"),
                    candidate=RunRef(system="prefect", run_id="x"),
                )
            ],
        ),
        tmp_path / "parity",
    )
    done = runner.invoke(app, ["cutover", "--job", str(NIGHTLY), "--by", "alice"], env=env)
    assert done.exit_code == 0, done.output
    assert "cut over" in done.stdout and "70403103936373" in done.stderr  # chained job warning

    cloud.app.state.add_run_record(NIGHTLY, int(RunStatus.SUCCESS))
    flow_run = asyncio.run(_start_prefect_run(setup["deployment"], setup["params"]))
    after = _status(env)[NIGHTLY]
    assert (after["dbt_cloud_schedule_on"], after["prefect_schedule"], after["ledger_state"]) == (
        False,
        "active",
        "cut over",
    )
    assert after["parity_verdict"] == "PASS"
    assert after["dbt_cloud_last_run"]["status"] == "success"
    assert after["prefect_last_run"]["id"] == flow_run and after["prefect_last_run"]["state"] == "Running"
    assert _status(env)[HOURLY]["ledger_state"] == "none"

    table = runner.invoke(app, ["status"], env=env)
    assert table.exit_code == 0 and "cut over" in table.stdout and "active" in table.stdout

    back = runner.invoke(app, ["rollback", "--json"], env=env)
    assert back.exit_code == 0, back.output
    assert [j["action"] for j in json.loads(back.stdout)["jobs"]] == ["rolled back"]
    final = _status(env)[NIGHTLY]
    assert (final["dbt_cloud_schedule_on"], final["prefect_schedule"], final["ledger_state"]) == (
        True,
        "paused",
        "rolled back",
    )


def test_rollback_of_unknown_job_and_bad_force_are_exit_1(setup: dict[str, Any]) -> None:
    env = setup["env"]
    unknown = runner.invoke(app, ["rollback", "--job", "123"], env=env)
    assert unknown.exit_code == 1 and "no cutover in the ledger" in unknown.output
    no_reason = runner.invoke(app, ["cutover", "--job", str(NIGHTLY), "--force"], env=env)
    assert no_reason.exit_code == 1 and "--force needs --reason" in no_reason.output
    assert setup["cloud"].token not in unknown.output + no_reason.output
