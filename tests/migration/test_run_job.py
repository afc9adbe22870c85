"""`run-job`: a job found by id or name starts a deployment run with the job's parameters from the plan, named and
tagged as the job's runs (on the in-memory gateway, which the contract test holds to the real API), and the CLI
creates such a run on the session's real Prefect server.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from typer.testing import CliRunner

from app.workspace import Workspace
from cli.app import app
from dbt2prefect.names import run_name_job
from dbt2prefect.prefect_gateway_memory import MemoryPrefect
from dbt2prefect.tenant import REPO_ROOT, load_tenant
from migration.apply import apply_deployment, flow_parameter_schema
from migration.errors import RunJobError
from migration.run_job import wait_for_run
from sandbox.stack import derive_tenant_file, on_process_pool, sandbox_deployment_settings

SEED = REPO_ROOT / "sandbox" / "dbt_cloud" / "seed_jobs.json"
NIGHTLY = 70403103936332
HOURLY = 70403103936340
CHAINED = 70403103936373
runner = CliRunner()


@pytest.fixture
def workspace(tmp_path: Path) -> Any:
    """The tenant's workspace on an in-memory Prefect with the seed jobs' deployment applied."""
    tenant = on_process_pool(load_tenant(), "wg-test-process", ledger_url=str(tmp_path / "ledger"))
    prefect = MemoryPrefect()
    with Workspace(tenant, prefect=prefect) as opened:
        spec = opened.deployment(opened.plan(SEED))
        for notification in spec.notifications:
            prefect.add_block(*notification.block.split("/", 1))
        apply_deployment(spec, parameter_schema={}, prefect=prefect, create_pool=True)
        yield opened


def _planned(workspace: Workspace, job_id: int) -> dict[str, Any]:
    plan = workspace.plan(SEED)
    schedule = next((s for s in plan.schedules if s.job_id == job_id), None)
    if schedule is not None:
        return schedule.parameters
    return next(t.parameters for t in plan.triggers if t.job_id == job_id)


@pytest.mark.parametrize(
    ("query", "job_id"),
    [
        (str(NIGHTLY), NIGHTLY),
        ("hourly finance refresh", HOURLY),  # the whole name, any case
        ("Hourly", HOURLY),  # part of one name
        ("after nightly", CHAINED),  # a chained job: its trigger's parameters
    ],
)
def test_a_job_found_by_id_or_name_runs_with_its_schedules_parameters_named_and_tagged_as_its_runs(
    workspace: Workspace, query: str, job_id: int
) -> None:
    started = workspace.run_job(query, from_file=SEED)
    assert started.job_id == job_id
    prefect = workspace.prefect_gateway
    run = prefect.read_flow_run(started.flow_run_id)
    assert run is not None and run.state is not None and run.state.name == "Scheduled"
    deployment = prefect.read_deployment(workspace.prefect.deployment)
    assert deployment is not None and run.deployment_id == deployment.id
    assert run.parameters == _planned(workspace, job_id) != {}
    assert run_name_job(run.name) == (job_id, False) and run.name.endswith(" (run-job)")
    assert f"dbt-cloud-job-{job_id}" in run.tags
    assert started.url is None or started.url.endswith(f"/runs/flow-run/{run.id}")


def test_target_runs_the_job_on_that_target_with_its_own_connection(workspace: Workspace) -> None:
    started = workspace.run_job(str(NIGHTLY), target="dev", from_file=SEED)
    expected = {**_planned(workspace, NIGHTLY), "target": "dev"}
    expected.pop("connection", None)
    assert started.parameters == expected
    with pytest.raises(RunJobError, match=r"--target 'staging' is not a target of the tenant; use one of: local, dev"):
        workspace.run_job(str(NIGHTLY), target="staging", from_file=SEED)


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("finance", r"2 jobs match 'finance': 70403103936340 'Hourly finance refresh' \(scheduled\); 70403103936358"),
        ("nowhere", r"no job of the plan has the id or name 'nowhere'.*70403103936332 'Nightly production build'"),
        ("123", r"no job of the plan has the id or name '123'"),
        ("CI: pull request", r"job 70403103936362 \('CI: pull request build'\) is ci workflow in the plan"),
        ("retired", r"job 70403103936380 .* is not migrated in the plan"),
    ],
)
def test_no_match_several_or_a_job_without_a_prefect_run_is_refused(
    workspace: Workspace, query: str, message: str
) -> None:
    with pytest.raises(RunJobError, match=message) as caught:
        workspace.run_job(query, from_file=SEED)
    assert caught.value.exit_code == 2
    assert workspace.prefect_gateway.read_flow_runs(_deployment_id(workspace), started_only=False) == []


def _deployment_id(workspace: Workspace) -> Any:
    deployment = workspace.prefect_gateway.read_deployment(workspace.prefect.deployment)
    assert deployment is not None
    return deployment.id


def test_waiting_ends_with_the_runs_final_state(workspace: Workspace) -> None:
    from prefect.states import Completed, Running

    started = workspace.run_job(str(HOURLY), from_file=SEED)
    prefect = workspace.prefect_gateway
    assert isinstance(prefect, MemoryPrefect)
    states = iter([Running(), Completed()])

    def worker_moves_it_on(_: float) -> None:
        index = next(i for i, r in enumerate(prefect.flow_runs) if r.id == started.flow_run_id)
        prefect.flow_runs[index] = prefect.flow_runs[index].model_copy(update={"state": next(states)})

    ended = wait_for_run(prefect, started.flow_run_id, sleep=worker_moves_it_on)
    assert ended.state is not None and ended.state.is_completed()


@pytest.mark.usefixtures("prefect_api")
def test_the_cli_creates_the_jobs_run_on_a_real_prefect_server(tmp_path: Path) -> None:
    from dbt2prefect.prefect_gateway import connect_prefect

    overrides = {"deployment_name": "dbt_wg_run_job", "ledger_url": str(tmp_path / "ledger")}
    overrides |= sandbox_deployment_settings("wg-test-process")  # a pool no worker polls: the run stays Scheduled
    tenant_file = derive_tenant_file(tmp_path / "tenant.toml", overrides=overrides)
    with Workspace.open(tenant_file) as workspace:
        spec = workspace.deployment(workspace.plan(SEED))
    spec = spec.model_copy(update={"notifications": []})  # no notification blocks on the test server
    apply_deployment(spec, create_pool=True, parameter_schema=flow_parameter_schema(spec.entrypoint))

    args = ["run-job", "supply chain after", "--from-file", str(SEED), "--tenant-file", str(tenant_file)]
    result = runner.invoke(app, args, env={"COLUMNS": "80"})  # ids and the URL are never wrapped
    assert result.exit_code == 0, result.output
    (line,) = [line for line in result.stdout.splitlines() if "flow run" in line]
    run_id = line.rsplit(" ", 1)[1]
    assert "/runs/flow-run/" + run_id in result.stdout
    with connect_prefect() as prefect:
        run = prefect.read_flow_run(UUID(run_id))
        assert run is not None
        assert run.name == "job-70403103936373 Supply chain after nightly (run-job)"
        assert "dbt-cloud-job-70403103936373" in run.tags
        assert run.parameters["dbt_cloud_job_id"] == CHAINED and run.parameters["selector"] == "supply_chain"
        deployment = prefect.read_deployment("run_dbt_wg/dbt_wg_run_job")
        assert deployment is not None and run.deployment_id == deployment.id

    ambiguous = runner.invoke(app, ["run-job", "finance", "--from-file", str(SEED), "--tenant-file", str(tenant_file)])
    assert ambiguous.exit_code == 2 and "2 jobs match 'finance'" in ambiguous.stderr
    assert "Traceback" not in ambiguous.output
