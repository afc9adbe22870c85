"""apply writes exactly the diff it showed: a change on the Prefect API between the preview and the write is refused,
naming what changed, and nothing is written (on the in-memory gateway, which the contract test holds to the real API).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from app.workspace import Workspace
from dbt2prefect.names import schedule_job_id
from dbt2prefect.prefect_gateway_memory import MemoryPrefect
from dbt2prefect.tenant import TenantSettings, load_tenant
from migration.apply import ApplyDiff, ApplyError, apply_deployment
from migration.dbt_cloud.models import Job
from migration.deployment import DeploymentSpec, build_deployment, guard_deployment
from migration.translate import build_plan
from sandbox.stack import on_process_pool

FIXTURES = Path(__file__).parent / "fixtures"
NAME = "run_dbt_wg/dbt_wg_shown"


def _tenant() -> TenantSettings:
    return on_process_pool(load_tenant(), "wg-test-process", deployment_name="dbt_wg_shown")


def _spec(drop: set[int] | None = None) -> DeploymentSpec:
    raw = json.loads((FIXTURES / "jobs_edge_cases.json").read_text())
    jobs = [Job.from_api(item) for item in raw["data"] if item["id"] not in (drop or set())]
    tenant = _tenant()
    return build_deployment(build_plan(jobs, tenant), tenant, versions={})


def _slug(job_id: int) -> str:
    """The slug of the job's planned schedule (`job-<id>--<job name>`)."""
    return next(s.slug for s in _spec().schedules if schedule_job_id(s.slug) == job_id)


def _prefect(spec: DeploymentSpec) -> MemoryPrefect:
    prefect = MemoryPrefect()
    for notification in spec.notifications:
        slug, _, name = notification.block.partition("/")
        prefect.add_block(slug, name)
    return prefect


def _apply(spec: DeploymentSpec, prefect: MemoryPrefect, **options: Any) -> ApplyDiff:
    return apply_deployment(spec, parameter_schema={}, prefect=prefect, **options)


def _snapshot(prefect: MemoryPrefect) -> Any:
    """Everything apply could write, as JSON."""
    return (
        {str(k): d.model_dump(mode="json") for k, d in prefect.deployments.items()},
        {str(k): [s.model_dump(mode="json") for s in v] for k, v in prefect.schedules.items()},
        {str(k): a.model_dump(mode="json") for k, a in prefect.automations.items()},
        {name: pool.model_dump(mode="json") for name, pool in prefect.work_pools.items()},
    )


def _deployment_id(prefect: MemoryPrefect) -> Any:
    deployment = prefect.read_deployment(NAME)
    assert deployment is not None
    return deployment.id


def _edit_schedule(prefect: MemoryPrefect) -> None:
    from prefect.client.schemas.schedules import CronSchedule

    deployment_id = _deployment_id(prefect)
    schedule = next(s for s in prefect.read_schedules(deployment_id) if s.slug == _slug(103))
    prefect.update_schedule(
        deployment_id, schedule.id, schedule=CronSchedule(cron="5 5 * * *"), parameters=dict(schedule.parameters)
    )


def _activate_schedule(prefect: MemoryPrefect) -> None:
    # What a cutover does: the diff would still be the same, but the object it read is not.
    deployment_id = _deployment_id(prefect)
    schedule = next(s for s in prefect.read_schedules(deployment_id) if s.slug == _slug(103))
    prefect.update_schedule(deployment_id, schedule.id, active=True, parameters=dict(schedule.parameters))


def _add_schedule(prefect: MemoryPrefect) -> None:
    from prefect.client.schemas.actions import DeploymentScheduleCreate
    from prefect.client.schemas.schedules import CronSchedule

    create = DeploymentScheduleCreate(schedule=CronSchedule(cron="0 1 * * *"), slug="job-999", active=False)
    prefect.create_schedules(_deployment_id(prefect), [create])


def _delete_trigger(prefect: MemoryPrefect) -> None:
    (trigger,) = [a for a in prefect.automations.values() if a.name == "job-111-after-job-102"]
    prefect.delete_automation(trigger.id)


def _change_deployment(prefect: MemoryPrefect) -> None:
    prefect.update_deployment(_deployment_id(prefect), {"description": "changed by hand"})


def _change_guard(prefect: MemoryPrefect) -> None:
    guard = prefect.read_deployment(guard_deployment(_spec()).full_name)
    assert guard is not None
    prefect.update_deployment(guard.id, {"description": "changed by hand"})


def _switch_guard_trigger(prefect: MemoryPrefect) -> None:
    # What a cutover does to the job's guard trigger: the diff would be the same, the object read is not.
    (trigger,) = [a for a in prefect.automations.values() if a.name == "job-103-guard"]
    prefect.set_automation_enabled(trigger.id, True)


CHANGES: dict[str, tuple[Callable[[MemoryPrefect], None], str]] = {
    "schedule edited": (_edit_schedule, "schedule {103} (changed)"),
    "schedule switched on": (_activate_schedule, "schedule {103} (changed)"),
    "schedule added": (_add_schedule, "schedule job-999 (new)"),
    "trigger deleted": (_delete_trigger, "automation job-111-after-job-102 (gone)"),
    "deployment changed": (_change_deployment, "deployment (changed)"),
    "guard deployment changed": (_change_guard, "guard deployment (changed)"),
    "guard trigger switched on": (_switch_guard_trigger, "automation job-103-guard (changed)"),
}


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_a_change_between_preview_and_write_is_refused_and_nothing_is_written(change: str) -> None:
    spec = _spec()
    prefect = _prefect(spec)
    _apply(_spec(drop={101}), prefect, create_pool=True)
    shown = _apply(spec, prefect, dry_run=True)
    assert [c.slug for c in shown.schedules if c.status == "added"] == [_slug(101)]
    assert shown.guard is not None and "job-103-guard" in {c.slug for c in shown.guard_triggers}
    act, named = CHANGES[change]
    named = named.replace("{103}", _slug(103))
    act(prefect)
    before = _snapshot(prefect)
    with pytest.raises(ApplyError, match="changed since the diff was shown") as caught:
        _apply(spec, prefect, shown=shown)
    assert named in str(caught.value)
    assert caught.value.exit_code == 2
    assert _snapshot(prefect) == before


def test_a_deployment_created_after_the_preview_is_refused() -> None:
    spec = _spec()
    prefect = _prefect(spec)
    shown = _apply(spec, prefect, dry_run=True)
    assert shown.deployment.status == "added"
    _apply(_spec(drop={101}), prefect, create_pool=True)  # another apply, in between
    before = _snapshot(prefect)
    with pytest.raises(ApplyError, match=r"deployment \(changed\)"):
        _apply(spec, prefect, shown=shown, create_pool=True)
    assert _snapshot(prefect) == before


def test_the_shown_diff_is_written_when_nothing_changed_and_then_there_is_nothing_to_show() -> None:
    spec = _spec()
    prefect = _prefect(spec)
    _apply(_spec(drop={101}), prefect, create_pool=True)
    shown = _apply(spec, prefect, dry_run=True, prune=True)
    written = _apply(spec, prefect, shown=shown, prune=True)
    assert written.applied and written == shown.model_copy(update={"applied": True})
    assert _slug(101) in {s.slug for s in prefect.read_schedules(_deployment_id(prefect))}
    again = _apply(spec, prefect, dry_run=True)
    assert not again.has_changes and again.server_state != shown.server_state


def test_other_options_than_the_preview_had_are_refused() -> None:
    spec = _spec()
    prefect = _prefect(spec)
    _apply(spec, prefect, create_pool=True)
    shown = _apply(_spec(drop={102}), prefect, dry_run=True)  # job-102's inactive schedule: orphaned
    before = _snapshot(prefect)
    with pytest.raises(ApplyError, match=r"not the diff that was shown.*--prune"):
        _apply(_spec(drop={102}), prefect, shown=shown, prune=True)  # would remove it
    assert _snapshot(prefect) == before


def test_the_workspace_writes_the_shown_diff_or_refuses() -> None:
    spec = _spec()
    prefect = _prefect(spec)
    with Workspace(_tenant(), prefect=prefect) as workspace:
        shown = workspace.apply(spec, dry_run=True)
        _apply(_spec(drop={101}), prefect, create_pool=True)
        with pytest.raises(ApplyError, match=r"deployment \(changed\)"):
            workspace.apply(spec, create_pool=True, shown=shown)
        shown = workspace.apply(spec, dry_run=True)
        assert workspace.apply(spec, shown=shown).applied
        assert not workspace.apply(spec, dry_run=True).has_changes
