"""Translation fidelity: every line dbt's own CLI accepts translates and runs through the same parser in the
flow and in parity; deactivated jobs get no schedule; a pinned dbt version is a warning parity must confirm."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from dbt2prefect.dbt_cli import parse_step_line
from dbt2prefect.params import plan_invocations, validate
from dbt2prefect.tenant import TenantSettings, load_tenant
from migration.dbt_cloud.models import Job
from migration.plan import Severity
from migration.translate import translate_job
from parity.selection import parse_step_args, selections_from_parameters

BASE = json.loads((Path(__file__).parent / "fixtures" / "jobs_edge_cases.json").read_text())["data"][0]

ACCEPTED_BY_DBT = [
    ("dbt --warn-error run --select tag:daily", "run", ("tag:daily",)),
    ("dbt --log-format json build -s tag:a tag:b", "build", ("tag:a", "tag:b")),
    ("dbt --no-partial-parse --target prod build -s a --select b -x", "build", ("a", "b")),
    ("dbt -q test --select a", "test", ("a",)),
    ("dbt list --select tag:x", "ls", None),
    ("dbt source snapshot-freshness", "source freshness", None),
    ("dbt seed --full-refresh -t prod --select s", "seed", ("s",)),
]


@pytest.fixture(scope="module")
def tenant() -> TenantSettings:
    return load_tenant()


def _job(**changes: Any) -> Job:
    return Job.from_api({**BASE, **changes})


@pytest.mark.parametrize(("line", "command", "select"), ACCEPTED_BY_DBT)
def test_every_line_dbt_accepts_translates_and_runs_the_same_way(
    tenant: TenantSettings, line: str, command: str, select: tuple[str, ...] | None
) -> None:
    planned, schedule, findings = translate_job(_job(execute_steps=[line]), tenant)
    assert planned.status == "scheduled" and schedule is not None
    assert not [f.reason_code for f in findings if f.severity == Severity.BLOCKER]
    params = validate(schedule.parameters)  # the flow accepts what the translator produced
    invocations = plan_invocations(params, "parity", state_dir=None)
    read_back = [parse_step_line("dbt " + " ".join(i.args)) for i in invocations]
    assert command in [step.command for step in read_back]
    if select is not None:  # parity selects what the step selects, read by the same parser
        chosen = [s for s in selections_from_parameters(schedule.parameters) if s.command == command]
        assert [s.select for s in chosen] == [select]


def test_global_flags_before_the_command_stay_in_the_steps_parameter(tenant: TenantSettings) -> None:
    line = "dbt --warn-error run --select tag:daily"
    _, schedule, _ = translate_job(_job(execute_steps=[line]), tenant)
    assert schedule is not None and schedule.parameters["steps"] == [line]
    invocation = next(i for i in plan_invocations(validate(schedule.parameters), "prod", None) if i.label == line)
    assert invocation.args[:4] == ["--warn-error", "run", "--select", "tag:daily"]
    assert invocation.args[4:6] == ["--target", "prod"]
    assert invocation.command == "run"


def test_a_target_given_before_the_command_is_not_added_again() -> None:
    params = validate({"steps": ["dbt --target dev run"], "target": "prod"})
    assert plan_invocations(params, "prod", None)[0].args == ["--target", "dev", "run"]


def test_parity_reads_global_flags_with_the_same_parser() -> None:
    step = parse_step_args(["--warn-error", "build", "-s", "a", "--exclude", "b"])
    assert step is not None and (step.command, step.select, step.exclude) == ("build", ("a",), ("b",))


def test_deactivated_job_is_a_finding_and_gets_no_schedule(tenant: TenantSettings) -> None:
    job = _job(deactivated=True, deactivation_reason="Repeated failures")
    planned, schedule, findings = translate_job(job, tenant)
    assert schedule is None and planned.status == "on_demand" and planned.parameters
    finding = next(f for f in findings if f.reason_code == "job_deactivated")
    assert finding.severity == Severity.WARNING and "Repeated failures" in finding.message
    assert "prefect deployment run" in finding.manual_step


@pytest.mark.parametrize(("pinned", "warned"), [("1.9.0-latest", True), ("1.11", False), (None, False)])
def test_a_job_pinned_to_another_dbt_version_is_a_warning(
    tenant: TenantSettings, pinned: str | None, warned: bool
) -> None:
    _, _, findings = translate_job(_job(dbt_version=pinned), tenant)
    found = [f for f in findings if f.reason_code == "dbt_version_pinned"]
    assert bool(found) is warned
    if found:
        assert found[0].severity == Severity.WARNING and "parity" in found[0].manual_step


def test_environment_decides_the_block_and_target_name_is_kept(tenant: TenantSettings) -> None:
    # BASE runs in the Production environment, which the tenant maps to the `prod` target's block.
    job = _job(settings={"threads": 4, "target_name": "default"})
    planned, schedule, findings = translate_job(job, tenant)
    assert planned.status == "scheduled" and schedule is not None
    assert schedule.parameters["target"] == "default" and schedule.parameters["connection"] == "prod"
    assert schedule.profile_block == tenant.block_name("prod")
    assert not [f for f in findings if f.severity == Severity.BLOCKER]


def test_unmapped_environment_with_an_unknown_target_name_is_a_blocker_naming_the_setting(
    tenant: TenantSettings,
) -> None:
    job = _job(environment_id=555, settings={"threads": 4, "target_name": "default"})
    _, schedule, findings = translate_job(job, tenant)
    finding = next(f for f in findings if f.reason_code == "environment_unmapped")
    assert finding.severity == Severity.BLOCKER and "environment 555" in finding.message
    assert "[tenant.dbt_cloud_environments]" in finding.manual_step and '"555" = ' in finding.manual_step
    assert schedule is not None and "connection" not in schedule.parameters


def test_environment_mapping_by_name_and_to_unknown_targets(tenant: TenantSettings) -> None:
    from pydantic import ValidationError

    mapped = tenant.model_copy(update={"dbt_cloud_environments": {"Staging": "dev"}})
    assert mapped.environment_target(1, "Staging") == "dev" and mapped.environment_target(1, "Other") is None
    with pytest.raises(ValidationError, match="not one of targets"):
        TenantSettings.model_validate({**tenant.model_dump(), "dbt_cloud_environments": {"1": "staging"}})
