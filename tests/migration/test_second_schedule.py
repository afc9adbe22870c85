"""A job has one schedule: `prefect deploy` of a file whose slugs name the jobs, onto a deployment that still has
the old `job-<id>` slugs, adds a second schedule per job (it matches by exact slug). `apply` removes the second
(without --prune) and `status` flags a job with two (exit 4), on the in-memory gateway, which the contract test
holds to the real API.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dbt2prefect.names import schedule_job_id
from dbt2prefect.prefect_gateway_memory import MemoryPrefect
from dbt2prefect.tenant import load_tenant
from migration.apply import ApplyDiff, apply_deployment, flow_parameter_schema
from migration.dbt_cloud.models import Job
from migration.deployment import DeploymentSpec, build_deployment
from migration.status import collect_status
from migration.translate import build_plan
from sandbox.stack import on_process_pool
from tests.migration.test_cutover_faults import NIGHTLY, World, make_world

FIXTURES = Path(__file__).parent / "fixtures"
NAME = "run_dbt_wg/dbt_wg_second"


def _spec() -> DeploymentSpec:
    tenant = on_process_pool(load_tenant(), "wg-test-process", deployment_name="dbt_wg_second")
    raw = json.loads((FIXTURES / "jobs_edge_cases.json").read_text())
    return build_deployment(build_plan([Job.from_api(item) for item in raw["data"]], tenant), tenant, versions={})


def _apply(spec: DeploymentSpec, prefect: MemoryPrefect, **options: Any) -> ApplyDiff:
    return apply_deployment(spec, parameter_schema={}, prefect=prefect, **options)


def _add_schedule(prefect: MemoryPrefect, deployment: str, slug: str, *, active: bool, parameters: Any = None) -> None:
    from prefect.client.schemas.actions import DeploymentScheduleCreate
    from prefect.client.schemas.schedules import CronSchedule

    found = prefect.read_deployment(deployment)
    assert found is not None
    create = DeploymentScheduleCreate(
        schedule=CronSchedule(cron="0 1 * * *"), slug=slug, active=active, parameters=parameters or {}
    )
    prefect.create_schedules(found.id, [create])


def _slugs(prefect: MemoryPrefect, deployment: str) -> list[str]:
    found = prefect.read_deployment(deployment)
    assert found is not None
    return sorted(s.slug or "" for s in prefect.read_schedules(found.id))


def test_apply_removes_a_planned_jobs_second_schedule_without_prune() -> None:
    spec = _spec()
    prefect = MemoryPrefect()
    for notification in spec.notifications:
        prefect.add_block(*notification.block.split("/", 1))
    _apply(spec, prefect, create_pool=True)
    planned = {schedule_job_id(s.slug): s.slug for s in spec.schedules}
    assert planned[103] != "job-103"
    # What an earlier apply left beside the new slug (and a cutover switched on), a hand-made one, one of a job
    # the plan lacks.
    _add_schedule(prefect, NAME, "job-103", active=True)
    _add_schedule(prefect, NAME, "nightly-by-hand", active=True)
    _add_schedule(prefect, NAME, "job-999", active=False)

    shown = _apply(spec, prefect, dry_run=True)
    odd = [(c.slug, c.status, c.reason) for c in shown.schedules if c.status != "unchanged"]
    assert odd == [("job-103", "removed", "second schedule of job 103"), ("job-999", "orphaned", None)]
    written = _apply(spec, prefect, shown=shown)
    assert written.applied
    assert _slugs(prefect, NAME) == sorted([*planned.values(), "nightly-by-hand", "job-999"])
    assert not _apply(spec, prefect, dry_run=True).has_changes


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    yield from make_world(tmp_path, flow_parameter_schema(load_tenant().entrypoint), MemoryPrefect())


def test_status_flags_a_job_with_two_schedules_until_apply_removes_one(world: World) -> None:
    assert isinstance(world.gateway, MemoryPrefect)
    _, plan = world.plan()
    (nightly,) = [s for s in plan.schedules if s.job_id == NIGHTLY]
    assert nightly.slug != f"job-{NIGHTLY}"

    def report() -> Any:
        return collect_status(plan, world.client, world.prefect, world.ledger, {})

    assert not report().not_running_once()
    _add_schedule(
        world.gateway, world.prefect.deployment, f"job-{NIGHTLY}", active=False, parameters=nightly.parameters
    )
    (row,) = report().not_running_once()
    assert row.job_id == NIGHTLY
    assert row.runs_problem is not None
    assert f"has 2 schedules on Prefect (job-{NIGHTLY}, {nightly.slug})" in row.runs_problem
    assert "dbt2prefect apply" in row.runs_problem

    spec = build_deployment(plan, world.tenant)
    diff = apply_deployment(spec, parameter_schema=flow_parameter_schema(spec.entrypoint), prefect=world.gateway)
    assert [(c.slug, c.reason) for c in diff.schedules if c.status == "removed"] == [
        (f"job-{NIGHTLY}", f"second schedule of job {NIGHTLY}")
    ]
    assert not report().not_running_once()
