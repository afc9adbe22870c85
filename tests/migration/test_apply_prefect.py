"""apply against a real Prefect API (the session's test server): slugs, crons, parameters, active flags, idempotence."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from dbt2prefect.tenant import TenantSettings, load_tenant
from migration.apply import ApplyDiff, ApplyError, apply_deployment
from migration.dbt_cloud.models import Job
from migration.deployment import build_deployment
from migration.plan import MigrationPlan
from migration.translate import build_plan
from sandbox.stack import on_process_pool

FIXTURES = Path(__file__).parent / "fixtures"


def _tenant(deployment: str) -> TenantSettings:
    return on_process_pool(load_tenant(), "wg-test-process", deployment_name=deployment)


def _plan_jobs() -> list[Job]:
    raw = json.loads((FIXTURES / "jobs_edge_cases.json").read_text())
    return [Job.from_api(item) for item in raw["data"]]


def _plan(deployment: str, *, drop: set[int] | None = None) -> MigrationPlan:
    raw = json.loads((FIXTURES / "jobs_edge_cases.json").read_text())
    jobs = [Job.from_api(item) for item in raw["data"] if item["id"] not in (drop or set())]
    return build_plan(jobs, _tenant(deployment))


def apply_plan(plan: MigrationPlan, **options: Any) -> ApplyDiff:
    return apply_deployment(build_deployment(plan, _tenant(plan.deployment_name)), **options)


async def _schedules(name: str) -> dict[str, Any]:
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        deployment = await client.read_deployment_by_name(name)
        return {s.slug: s for s in await client.read_deployment_schedules(deployment.id)}


def _read(name: str) -> dict[str, Any]:
    return asyncio.run(_schedules(name))


def _slug(job_id: int) -> str:
    """The slug the plan gives job `job_id`'s schedule (`job-<id>--<job name>`)."""
    return next(s.slug for s in _plan("dbt_wg_apply_test").schedules if s.job_id == job_id)


@pytest.fixture(scope="module")
def applied(prefect_api: None) -> MigrationPlan:
    plan = _plan("dbt_wg_apply_test")
    diff = apply_plan(plan, create_pool=True)
    assert diff.applied and diff.deployment.status == "added"
    return plan


def test_schedules_exist_with_slug_cron_timezone_parameters_inactive(applied: MigrationPlan) -> None:
    current = _read("run_dbt_wg/dbt_wg_apply_test")
    assert sorted(current) == sorted(s.slug for s in applied.schedules)
    for planned in applied.schedules:
        schedule = current[planned.slug]
        assert schedule.active is False
        assert schedule.parameters == planned.parameters
        assert schedule.schedule.timezone == "UTC"
        if planned.cron is not None:
            assert (schedule.schedule.cron, schedule.schedule.day_or) == (planned.cron, planned.day_or)
        else:
            assert schedule.schedule.rrule == planned.rrule
    assert current[_slug(102)].parameters == {
        "dbt_cloud_job_id": 102,
        "dbt_cloud_job_name": "Selector on weekdays",
        "selector": "nightly",
        "target": "prod",
        "threads": 8,
    }


def test_second_apply_is_a_noop(applied: MigrationPlan) -> None:
    diff = apply_plan(applied)
    assert not diff.has_changes and not diff.applied
    assert diff.deployment.status == "unchanged"
    assert {c.status for c in diff.schedules} == {"unchanged"}


def test_hand_added_schedule_survives_and_active_flags_are_kept(applied: MigrationPlan) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import DeploymentScheduleCreate
    from prefect.client.schemas.schedules import CronSchedule

    async def add_by_hand_and_activate() -> None:
        async with get_client() as client:
            deployment = await client.read_deployment_by_name("run_dbt_wg/dbt_wg_apply_test")
            await client.create_deployment_schedules(
                deployment.id,
                [DeploymentScheduleCreate(schedule=CronSchedule(cron="0 12 * * *"), slug="nightly-dev", active=True)],
            )
            by_slug = {s.slug: s for s in await client.read_deployment_schedules(deployment.id)}
            # As cutover does it: Prefect 3.9.1's PATCH resets parameters it is not sent, so send them.
            job_101 = by_slug[_slug(101)]
            await client.update_deployment_schedule(
                deployment.id, job_101.id, active=True, parameters=job_101.parameters
            )

    asyncio.run(add_by_hand_and_activate())
    # Job 102 leaves dbt Cloud: its schedule is ours, so --prune may remove it; the hand-made one stays.
    changed = _plan("dbt_wg_apply_test", drop={102})
    diff = apply_plan(changed, prune=True)
    assert {c.slug: (c.status, c.fields) for c in diff.schedules if c.status != "unchanged"} == {
        _slug(102): ("removed", [])
    }
    current = _read("run_dbt_wg/dbt_wg_apply_test")
    assert "nightly-dev" in current and current["nightly-dev"].active
    assert _slug(102) not in current
    assert current[_slug(101)].active is True  # cutover's flag survives apply

    # A cut-over job's trigger is off in dbt Cloud, so the live plan lacks it: --prune must keep its active schedule.
    cut_over = apply_plan(_plan("dbt_wg_apply_test", drop={101, 102}), prune=True)
    assert {c.slug: c.status for c in cut_over.schedules if c.slug == _slug(101)} == {_slug(101): "orphaned"}
    assert _read("run_dbt_wg/dbt_wg_apply_test")[_slug(101)].active is True


def test_changed_parameters_update_in_place(applied: MigrationPlan) -> None:
    raw = json.loads((FIXTURES / "jobs_edge_cases.json").read_text())
    jobs = [Job.from_api(item) for item in raw["data"] if item["id"] != 102]
    jobs = [
        j.model_copy(update={"settings": j.settings.model_copy(update={"threads": 16})}) if j.id == 105 else j
        for j in jobs
    ]
    tenant = _tenant("dbt_wg_apply_test")
    before = _read("run_dbt_wg/dbt_wg_apply_test")[_slug(105)]
    diff = apply_plan(build_plan(jobs, tenant))
    change = next(c for c in diff.schedules if c.slug == _slug(105))
    assert (change.status, change.fields) == ("changed", ["parameters"])
    after = _read("run_dbt_wg/dbt_wg_apply_test")[_slug(105)]
    assert after.id == before.id and after.parameters["threads"] == 16
    restored = apply_plan(_plan("dbt_wg_apply_test", drop={102}))
    assert [c.slug for c in restored.schedules if c.status == "changed"] == [_slug(105)]


def test_missing_work_pool_is_a_clear_error(prefect_api: None) -> None:
    plan = _plan("dbt_wg_no_pool").model_copy(update={"work_pool": "no-such-pool"})
    with pytest.raises(ApplyError, match=r"no-such-pool.*--create-pool"):
        apply_plan(plan)


def test_apply_repairs_parameters_a_bare_activation_wiped(applied: MigrationPlan) -> None:
    from prefect.client.orchestration import get_client

    async def activate_without_parameters() -> None:
        async with get_client() as client:
            deployment = await client.read_deployment_by_name("run_dbt_wg/dbt_wg_apply_test")
            by_slug = {s.slug: s for s in await client.read_deployment_schedules(deployment.id)}
            await client.update_deployment_schedule(deployment.id, by_slug[_slug(103)].id, active=True)

    asyncio.run(activate_without_parameters())
    assert _read("run_dbt_wg/dbt_wg_apply_test")[_slug(103)].parameters == {}
    diff = apply_plan(_plan("dbt_wg_apply_test", drop={102}))
    assert [(c.slug, c.fields) for c in diff.schedules if c.status == "changed"] == [(_slug(103), ["parameters"])]
    repaired = _read("run_dbt_wg/dbt_wg_apply_test")[_slug(103)]
    assert repaired.active is True
    assert repaired.parameters == next(s.parameters for s in applied.schedules if s.job_id == 103)


def test_the_settings_templates_placeholder_repository_is_refused_before_any_change() -> None:
    # The shipped settings name no real repository: a worker would have nothing to clone.
    tenant = load_tenant()
    plan = build_plan([], tenant)
    with pytest.raises(ApplyError, match=r"\[tenant.code_storage\] repository .*OWNER/REPO.*git URL") as caught:
        apply_deployment(build_deployment(plan, tenant), dry_run=True)
    assert caught.value.exit_code == 2


def test_a_changed_chained_job_updates_its_trigger_in_place(applied: MigrationPlan) -> None:
    from dbt2prefect.prefect_gateway import connect_prefect
    from migration.apply import deployment_triggers

    def triggers() -> dict[str, Any]:
        with connect_prefect() as prefect:
            deployment = prefect.read_deployment("run_dbt_wg/dbt_wg_apply_test")
            assert deployment is not None
            return deployment_triggers(prefect, deployment.id)

    jobs = [
        j.model_copy(update={"settings": j.settings.model_copy(update={"threads": 12})}) if j.id == 111 else j
        for j in _plan_jobs()  # job 111 is chained to job 102
    ]
    apply_plan(build_plan(_plan_jobs(), _tenant("dbt_wg_apply_test")))  # as the fixture applied it
    before = triggers()
    name = "job-111-after-job-102"
    assert name in before, sorted(before)
    diff = apply_plan(build_plan(jobs, _tenant("dbt_wg_apply_test")))
    change = next(c for c in diff.triggers if c.slug == name)
    assert (change.status, change.fields) == ("changed", ["actions"])
    after = triggers()[name]
    assert after.id == before[name].id and after.enabled == before[name].enabled
    assert after.actions[0].parameters["threads"] == 12  # type: ignore[union-attr]
    assert not apply_plan(build_plan(jobs, _tenant("dbt_wg_apply_test"))).has_changes


def test_an_old_or_renamed_slug_is_renamed_in_place_keeping_the_flag(prefect_api: None) -> None:
    from prefect.client.orchestration import get_client

    name = "dbt_wg_rename_test"
    plan = _plan(name)
    assert apply_plan(plan, create_pool=True).applied
    renamed = next(s for s in plan.schedules if s.job_id == 101)
    assert renamed.slug == f"job-101--{renamed.job_name.lower().replace(' ', '-')}"

    async def as_an_earlier_version_applied_it() -> str:
        async with get_client() as client:
            deployment = await client.read_deployment_by_name(f"run_dbt_wg/{name}")
            by_slug = {s.slug: s for s in await client.read_deployment_schedules(deployment.id)}
            old = by_slug[renamed.slug]
            # `job-<id>` as applied before slugs had names, switched on by a cutover.
            await client.update_deployment_schedule(
                deployment.id, old.id, active=True, parameters=old.parameters, slug="job-101"
            )
            return str(old.id)

    schedule_id = asyncio.run(as_an_earlier_version_applied_it())
    assert "job-101" in _read(f"run_dbt_wg/{name}")
    diff = apply_plan(plan)
    assert [(c.slug, c.status, c.fields) for c in diff.schedules if c.status != "unchanged"] == [
        (renamed.slug, "changed", ["slug"])
    ]
    current = _read(f"run_dbt_wg/{name}")
    assert "job-101" not in current and str(current[renamed.slug].id) == schedule_id
    assert current[renamed.slug].active is True  # cutover's flag survives the rename
    assert not apply_plan(plan).has_changes  # idempotent

    # The job is renamed in dbt Cloud: the same schedule takes the new name.
    jobs = [j.model_copy(update={"name": "Nightly <renamed>"}) if j.id == 101 else j for j in _plan_jobs()]
    again = build_plan(jobs, _tenant(name))
    diff = apply_plan(again)
    assert [(c.slug, c.fields) for c in diff.schedules if c.status != "unchanged"] == [
        ("job-101--nightly-renamed", ["parameters", "slug"])
    ]
    after = _read(f"run_dbt_wg/{name}")
    assert str(after["job-101--nightly-renamed"].id) == schedule_id and after["job-101--nightly-renamed"].active
    assert not apply_plan(again).has_changes


def test_a_jobs_second_schedule_is_removed_without_prune(prefect_api: None) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import DeploymentScheduleCreate
    from prefect.client.schemas.schedules import CronSchedule

    name = "dbt_wg_second_test"
    plan = _plan(name)
    assert apply_plan(plan, create_pool=True).applied
    kept = next(s for s in plan.schedules if s.job_id == 101)

    async def as_prefect_deploy_leaves_it() -> None:
        # `prefect deploy` matches by exact slug: the old `job-<id>` schedule stays beside the new one.
        async with get_client() as client:
            deployment = await client.read_deployment_by_name(f"run_dbt_wg/{name}")
            old = DeploymentScheduleCreate(
                schedule=CronSchedule(cron=kept.cron or "0 1 * * *"),
                slug="job-101",
                active=True,
                parameters=kept.parameters,
            )
            await client.create_deployment_schedules(deployment.id, [old])

    asyncio.run(as_prefect_deploy_leaves_it())
    assert {"job-101", kept.slug} <= set(_read(f"run_dbt_wg/{name}"))
    diff = apply_plan(plan)
    assert [(c.slug, c.status, c.reason) for c in diff.schedules if c.status != "unchanged"] == [
        ("job-101", "removed", "second schedule of job 101")
    ]
    current = _read(f"run_dbt_wg/{name}")
    assert "job-101" not in current and kept.slug in current
    assert not apply_plan(plan).has_changes
