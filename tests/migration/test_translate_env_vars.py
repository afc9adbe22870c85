"""dbt Cloud environment variables in the plan: resolved values on each job's schedule, secrets as Secret blocks.

Inputs are the sandbox account's seed files, in the API's shapes (sandbox/dbt_cloud/seed_*.json).
"""

from __future__ import annotations

import json

import pytest

from dbt2prefect.params import validate
from dbt2prefect.tenant import load_tenant
from migration.dbt_cloud.models import Environment, EnvironmentVariables, Job
from migration.env_vars import AccountVariables, store_secret_command
from migration.plan import MigrationPlan, Severity
from migration.translate import build_plan
from sandbox.dbt_cloud.state import SEED_ENVIRONMENT_VARIABLES, SEED_ENVIRONMENTS, SEED_JOBS

NIGHTLY, HOURLY, CI = 70403103936332, 70403103936340, 70403103936362
SECRET = "DBT_ENV_SECRET_FX_API_KEY"


def _plan(with_variables: bool = True) -> MigrationPlan:
    jobs = [Job.from_api(j) for j in json.loads(SEED_JOBS.read_text())["data"]]
    environments = {int(e["id"]): Environment.from_api(e) for e in json.loads(SEED_ENVIRONMENTS.read_text())["data"]}
    seed = json.loads(SEED_ENVIRONMENT_VARIABLES.read_text())
    variables = AccountVariables(
        projects={jobs[0].project_id: EnvironmentVariables.from_api(seed["environment"])},
        jobs={int(job): EnvironmentVariables.from_api(data) for job, data in seed["jobs"].items()},
    )
    return build_plan(jobs, load_tenant(), environments, variables=variables if with_variables else None)


@pytest.fixture(scope="module")
def plan() -> MigrationPlan:
    return _plan()


def test_each_schedule_passes_the_values_dbt_cloud_resolves_for_its_job(plan: MigrationPlan) -> None:
    params = {s.job_id: s.parameters for s in plan.schedules}
    # project default < environment (Production: emea) < job override (the hourly job: uk)
    assert params[NIGHTLY]["env_vars"] == {"DBT_WG_FX_SOURCE": "ecb", "DBT_WG_REGION": "emea"}
    assert params[HOURLY]["env_vars"] == {"DBT_WG_FX_SOURCE": "ecb", "DBT_WG_REGION": "uk"}
    # The masked value is never passed: the secret's Production value is read from its own block at run time.
    assert params[HOURLY]["secret_env_vars"] == {SECRET: "dbt-wg-dbt-env-secret-fx-api-key-production"}
    assert "*****" not in json.dumps(plan.to_json_dict())
    assert all(validate(p) for p in params.values())
    ci = next(j for j in plan.jobs if j.job_id == CI)  # the CI environment sets nothing: the project defaults
    assert ci.parameters is not None and ci.parameters["env_vars"]["DBT_WG_REGION"] == "global"
    assert ci.parameters["secret_env_vars"] == {SECRET: "dbt-wg-dbt-env-secret-fx-api-key-project"}


def test_values_are_migrated_and_each_secret_is_a_finding_with_its_command(plan: MigrationPlan) -> None:
    by_code = {(f.reason_code, f.job_id): f for f in plan.findings}
    assert by_code[("env_vars", HOURLY)].severity == Severity.INFO
    block = "dbt-wg-dbt-env-secret-fx-api-key-production"
    # Every Production job reads the secret from one block: one finding, naming them, with one command.
    (secret,) = [f for f in plan.findings if f.reason_code == "env_var_secret" and block in f.manual_step]
    assert secret.severity == Severity.WARNING and "Production" in secret.message
    assert store_secret_command(SECRET, block) in secret.manual_step
    readers = {s.job_id for s in plan.schedules if block in (s.parameters.get("secret_env_vars") or {}).values()}
    assert HOURLY in readers and len(readers) > 1
    assert all(str(job_id) in secret.message for job_id in readers - {secret.job_id})
    assert not any(f.reason_code == "job_env_vars" for f in plan.findings)


def test_an_inventory_without_variables_plans_as_before() -> None:
    plan = _plan(with_variables=False)
    assert all("env_vars" not in s.parameters for s in plan.schedules)
    assert not any(f.reason_code.startswith("env_var") for f in plan.findings)


def test_the_sandbox_dbt_cloud_runs_each_job_with_the_values_its_schedule_passes(plan: MigrationPlan) -> None:
    from sandbox.dbt_cloud.state import SandboxState

    state = SandboxState.from_files()
    for job in plan.jobs:
        if job.parameters is not None:
            assert state.run_environment(job.job_id) == job.parameters["env_vars"], job.job_id
