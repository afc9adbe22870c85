"""Translation of hand-written dbt Cloud jobs (tests/migration/fixtures/jobs_edge_cases.json) into a plan."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import pytest

from dbt2prefect.names import schedule_slug
from dbt2prefect.params import RunParameters, validate
from dbt2prefect.tenant import TenantSettings, load_tenant
from migration.dbt_cloud.models import Job
from migration.plan import MigrationPlan, Severity
from migration.translate import build_plan, describe_schedule

FIXTURES = Path(__file__).parent / "fixtures"


def _jobs() -> list[Job]:
    raw = json.loads((FIXTURES / "jobs_edge_cases.json").read_text())
    return [Job.from_api(item) for item in raw["data"]]


@pytest.fixture(scope="module")
def tenant() -> TenantSettings:
    return load_tenant()


@pytest.fixture(scope="module")
def plan(tenant: TenantSettings) -> MigrationPlan:
    return build_plan(_jobs(), tenant)


def _params(plan: MigrationPlan, job_id: int) -> dict[str, Any] | None:
    """The job's parameters without the two that name the job (see the test of those)."""
    params = next(job.parameters for job in plan.jobs if job.job_id == job_id)
    if params is None:
        return None
    return {k: v for k, v in params.items() if k not in ("dbt_cloud_job_id", "dbt_cloud_job_name")}


def test_every_schedule_and_on_demand_run_names_its_dbt_cloud_job(plan: MigrationPlan) -> None:
    for schedule in plan.schedules:
        assert schedule.parameters["dbt_cloud_job_id"] == schedule.job_id
        assert schedule.parameters["dbt_cloud_job_name"] == schedule.job_name
    on_demand = next(f for f in plan.findings if f.job_id == 108 and f.reason_code == "no_trigger")
    assert '"dbt_cloud_job_id": 108' in on_demand.manual_step


def _codes(plan: MigrationPlan, job_id: int) -> set[str]:
    return {f.reason_code for f in plan.findings if f.job_id == job_id}


def test_every_job_is_a_schedule_or_a_finding(plan: MigrationPlan) -> None:
    scheduled = {s.job_id for s in plan.schedules}
    with_findings = {f.job_id for f in plan.findings}
    all_ids = {job.id for job in _jobs()}
    assert all_ids == {job.job_id for job in plan.jobs}
    assert all_ids - scheduled - with_findings == set()


def test_one_schedule_per_scheduled_job_with_job_slug(plan: MigrationPlan) -> None:
    assert [s.job_id for s in plan.schedules] == [101, 102, 103, 105, 109, 110, 113, 114]
    assert [s.slug for s in plan.schedules] == [schedule_slug(s.job_id, s.job_name) for s in plan.schedules]
    assert all(s.slug.startswith(f"job-{s.job_id}--") for s in plan.schedules), "each slug names its job"
    assert all(s.timezone == "UTC" and s.active for s in plan.schedules)
    assert all(s.proof.equivalent and s.proof.checked == 500 for s in plan.schedules)
    assert plan.deployment_name == "dbt_wg"


def test_quoted_vars_json_with_spaces_and_checkboxes(plan: MigrationPlan) -> None:
    assert _params(plan, 101) == {
        "command": "run",
        "select": "tag:daily",
        "vars": '{"run_date": "2024-01-01", "region": "north west"}',
        "target": "prod",
        "threads": 4,
        "source_freshness": True,
        "generate_docs": True,
        "timeout_seconds": 5400,
    }


def test_selector_keeps_build_default_out(plan: MigrationPlan) -> None:
    assert _params(plan, 102) == {"selector": "nightly", "target": "prod", "threads": 8}


def test_target_in_step_wins_over_settings(plan: MigrationPlan) -> None:
    assert _params(plan, 103) == {"command": "seed", "full_refresh": True, "target": "prod", "threads": 2}


def test_unknown_flag_is_a_blocker_and_no_schedule(plan: MigrationPlan) -> None:
    assert "step_unknown_flag" in _codes(plan, 104)
    finding = next(f for f in plan.findings if f.job_id == 104)
    assert finding.severity == Severity.BLOCKER and "--no-such-flag" in finding.message
    assert next(j.status for j in plan.jobs if j.job_id == 104) == "blocked"


def test_flag_without_parameter_goes_to_steps(plan: MigrationPlan) -> None:
    assert _params(plan, 105) == {
        "steps": ["dbt build --fail-fast --select tag:hourly"],
        "target": "prod",
        "threads": 4,
    }
    assert _codes(plan, 105) == set()


def test_empty_steps_is_a_blocker(plan: MigrationPlan) -> None:
    assert _codes(plan, 106) == {"steps_empty"}
    assert "steps_empty:106" in plan.to_json_dict()["blocking"]


def test_deleted_job_is_info_not_migrated(plan: MigrationPlan) -> None:
    assert _codes(plan, 107) == {"job_deleted"}
    assert next(j.status for j in plan.jobs if j.job_id == 107) == "not_migrated"


def test_triggerless_job_runs_on_demand(plan: MigrationPlan) -> None:
    finding = next(f for f in plan.findings if f.job_id == 108)
    assert (finding.reason_code, finding.severity) == ("no_trigger", Severity.INFO)
    command = finding.manual_step.removeprefix("run it on demand: ")
    assert shlex.split(command)[:4] == ["prefect", "deployment", "run", "run_dbt_wg/dbt_wg"]
    assert _params(plan, 108) == {"exclude": "tag:slow", "select": "tag:adhoc", "target": "prod", "threads": 4}


def test_hash_with_day_of_month_becomes_rrule(plan: MigrationPlan) -> None:
    schedule = next(s for s in plan.schedules if s.job_id == 109)
    assert schedule.cron is None and schedule.rrule is not None and "BYDAY=+1MO" in schedule.rrule
    assert _codes(plan, 109) == {"schedule_rrule"}


def test_run_operation_with_args_is_a_valid_step(plan: MigrationPlan) -> None:
    assert _codes(plan, 110) == set()
    assert _params(plan, 110) == {
        "steps": ["dbt run-operation grant_select --args '{role: reporter}'"],
        "target": "prod",
        "threads": 4,
    }


def test_chained_job_becomes_a_trigger_on_its_upstream_job_runs(plan: MigrationPlan) -> None:
    finding = next(f for f in plan.findings if f.reason_code == "job_chaining")
    assert finding.job_id == 111 and finding.severity == Severity.INFO
    assert "102 (Selector on weekdays)" in finding.message and "Completed, Failed" in finding.message
    [trigger] = [t for t in plan.triggers if t.job_id == 111]
    assert trigger.name == "job-111-after-job-102" and trigger.name in finding.message
    assert trigger.upstream_job_id == 102
    # A run in which nodes warned succeeded, as in dbt Cloud: the trigger follows both Completed states.
    assert trigger.states == ["Completed", "Completed with warnings", "Crashed", "Failed"]
    assert trigger.parameters == next(j.parameters for j in plan.jobs if j.job_id == 111)
    assert next(j for j in plan.jobs if j.job_id == 111).trigger_name == trigger.name


def test_a_chain_to_a_job_outside_the_inventory_stays_a_blocker(tenant: TenantSettings) -> None:
    raw = json.loads((FIXTURES / "jobs_edge_cases.json").read_text())["data"]
    for item in raw:
        if item["id"] == 111:
            item["job_completion_trigger_condition"] = {"condition": {"job_id": 9, "statuses": [10]}}
    plan = build_plan([Job.from_api(item) for item in raw], tenant)
    finding = next(f for f in plan.findings if f.reason_code == "job_chaining")
    assert finding.severity == Severity.BLOCKER and "job 9 is not in this inventory" in finding.message
    assert not any(t.job_id == 111 for t in plan.triggers)


def test_ci_job_features_each_have_a_reason_code(plan: MigrationPlan) -> None:
    assert _codes(plan, 112) == {
        "ci_trigger",
        "ci_isolation",  # the first tenant's generate_schema_name keeps custom schemas as named
        "compare_changes",
        "lint",
        "lifecycle_webhooks",
        "job_env_vars",
        "custom_branch",
    }
    assert all(f.manual_step for f in plan.findings)


def test_a_ci_job_becomes_a_workflow_job_deferring_to_its_deferred_jobs_environment(plan: MigrationPlan) -> None:
    ci = next(job for job in plan.ci_jobs if job.job_id == 112)
    # It defers to job 102, whose environment is mapped to prod: its state is prod's latest successful run.
    assert (ci.event, ci.state_target, ci.target) == ("pull_request", "prod", "prod")
    assert [s.line for s in ci.steps] == ["dbt build --select state:modified+ --defer --state state"]
    finding = next(f for f in plan.findings if f.job_id == 112 and f.reason_code == "ci_trigger")
    assert finding.severity == Severity.INFO
    assert "dbt-cloud-job-112" in finding.message and "dbt_williamgrant.dbt-ci.yml" in finding.message
    assert next(j.status for j in plan.jobs if j.job_id == 112) == "ci_workflow"


def test_env_var_values_never_appear(plan: MigrationPlan) -> None:
    text = json.dumps(plan.to_json_dict())
    assert "DBT_ENV_SECRET_KEY" in text
    assert "s3cr3t-never-shown" not in text


def test_last_weekday_of_month_and_star_step_day(plan: MigrationPlan) -> None:
    last_friday = next(s for s in plan.schedules if s.job_id == 113)
    assert last_friday.rrule is not None and "BYDAY=-1FR" in last_friday.rrule
    star_step = next(s for s in plan.schedules if s.job_id == 114)
    assert (star_step.cron, star_step.day_or) == ("0 12 */2 * 1", False)


def test_every_planned_parameter_set_is_valid_for_the_flow(plan: MigrationPlan) -> None:
    for job in plan.jobs:
        if job.parameters is not None:
            validate(job.parameters)


def test_acknowledged_blockers_stop_blocking(tenant: TenantSettings) -> None:
    plan = build_plan(_jobs(), tenant)
    keys = [f.key for f in plan.blocking()]
    assert keys
    acknowledged = build_plan(_jobs(), tenant.model_copy(update={"acknowledged_findings": tuple(keys)}))
    assert acknowledged.blocking() == []


def test_plan_is_deterministic(tenant: TenantSettings) -> None:
    forward = build_plan(_jobs(), tenant).to_json_dict()
    backward = build_plan(list(reversed(_jobs())), tenant).to_json_dict()
    assert json.dumps(forward, sort_keys=True) == json.dumps(backward, sort_keys=True)


def test_schedule_in_words(plan: MigrationPlan) -> None:
    words = {s.job_id: s.description for s in plan.schedules}
    assert words[101] == "every day at 06:00, 18:00 UTC"
    assert words[102] == "on Mon, Tue, Wed, Thu, Fri, every 2 hours (UTC)"
    assert words[103] == "cron 0 0 L * FRI,SAT (UTC)"
    assert describe_schedule(_jobs()[0].schedule) == words[101]


def test_planned_parameters_are_run_parameters_and_the_plan_file_holds_their_api_form(plan: MigrationPlan) -> None:
    schedule = plan.schedules[0]
    assert schedule.run_parameters == validate(schedule.parameters)
    data = json.loads(plan.model_dump_json())
    assert [s["parameters"] for s in data["schedules"]] == [s.parameters for s in plan.schedules]
    assert [j.get("parameters") for j in data["jobs"]] == [j.parameters for j in plan.jobs]
    assert MigrationPlan.model_validate(data) == plan


def test_the_deployment_parameters_are_run_parameters_and_plan_files_of_the_old_shape_still_load(
    plan: MigrationPlan, tenant: TenantSettings
) -> None:
    from migration.deployment import build_deployment

    assert plan.deployment_parameters == RunParameters(target=tenant.default_target)
    data = json.loads(plan.model_dump_json())
    assert data["deployment_parameters"] == {"target": tenant.default_target}  # the file form is unchanged
    assert build_deployment(plan, tenant).parameters == {"target": tenant.default_target}
    # A plan file written while the field was a plain dict: its values validate into RunParameters.
    old = {**data, "deployment_parameters": {"target": "prod", "threads": 4}}
    loaded = MigrationPlan.model_validate_json(json.dumps(old))
    assert loaded.deployment_parameters == RunParameters(target="prod", threads=4)
    without = {key: value for key, value in data.items() if key != "deployment_parameters"}
    assert MigrationPlan.model_validate(without).deployment_parameters == RunParameters()
    with pytest.raises(ValueError, match="threads"):
        MigrationPlan.model_validate({**data, "deployment_parameters": {"threads": 0}})
