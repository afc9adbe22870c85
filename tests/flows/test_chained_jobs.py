"""A chained dbt Cloud job as a deployment trigger, and job notifications as automations, on the session's Prefect
server with its real worker.

Two jobs shaped like the seed's nightly → 'Supply chain after nightly' chain (success only), with cheap `dbt ls`
steps: translated, applied, the trigger and the notifications switched on as cutover of the upstream job does, then
the upstream job's deployment run fails once (the downstream job must not start; the upstream's failure
notification is sent), completes once as a parity candidate (nothing follows it) and once as the job (the
downstream job must start, with its parameters, and both jobs' success notifications are sent). Notifications go through `custom-webhook` blocks to a sink on loopback, the sandbox's
stand-in for Slack and email: the server's own action sends them.
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Iterator
from typing import Any

import pytest

from dbt2prefect.names import before_start_name, job_tag, notification_name, trigger_name
from dbt2prefect.prefect_gateway import connect_prefect
from dbt2prefect.tenant import REPO_ROOT, TenantSettings
from migration.apply import ApplyError, apply_deployment, deployment_triggers
from migration.dbt_cloud.models import Job, Notification
from migration.deployment import build_deployment
from migration.prefect_switch import PrefectSchedules, PrefectTriggers
from migration.translate import build_plan
from parity.runner import JobSpec
from sandbox.notification_sink import NotificationSink, register_notification_blocks
from sandbox.runs import run_deployment_now, wait_for_job_run
from sandbox.stack import on_process_pool
from sandbox.worker import ProcessWorker

POOL = "wg-test-worker"
UPSTREAM, DOWNSTREAM = 880001, 880002
STEP = "dbt ls --select stg_crm__distributors --resource-type model"


def _jobs() -> list[Job]:
    seed = json.loads((REPO_ROOT / "sandbox" / "dbt_cloud" / "seed_jobs.json").read_text(encoding="utf-8"))
    chained = next(j for j in seed["data"] if j["job_completion_trigger_condition"])
    # On `dev` (an environment the tenant does not map): the session's `prod` must keep no successful run.
    chained |= {"environment_id": 1, "settings": {"threads": 1, "target_name": "dev"}, "execute_steps": [STEP]}
    upstream = copy.deepcopy(chained) | {"id": UPSTREAM, "name": "Upstream"}
    upstream["job_completion_trigger_condition"] = None
    downstream = copy.deepcopy(chained) | {"id": DOWNSTREAM, "name": "After upstream"}
    downstream["job_completion_trigger_condition"] = {"condition": {"job_id": UPSTREAM, "statuses": [10]}}
    return [Job.from_api(upstream), Job.from_api(downstream)]


def _job_runs(deployment: str, job_id: int) -> list[Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    async def read() -> list[Any]:
        async with get_client() as client:
            found = await client.read_deployment_by_name(deployment)
            runs = await client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[found.id]))
            )
        return [r for r in runs if (r.parameters or {}).get("dbt_cloud_job_id") == job_id]

    return asyncio.run(read())


def _automations(deployment: str) -> dict[str, Any]:
    with connect_prefect() as prefect:
        found = prefect.read_deployment(deployment)
        assert found is not None
        return deployment_triggers(prefect, found.id)


NOTIFY_FAILED, NOTIFY_DONE = 880101, 880102
NOTIFICATIONS = [
    {
        "id": NOTIFY_FAILED,
        "type": 2,
        "slack_channel_name": "#wg-chain",
        "on_failure": [UPSTREAM],
        "on_success": [UPSTREAM],
    },
    {"id": NOTIFY_DONE, "type": 4, "external_email": "ops@example.com", "on_success": [DOWNSTREAM]},
]


@pytest.fixture(scope="module")
def sink() -> Iterator[NotificationSink]:
    with NotificationSink.start() as started:
        yield started


@pytest.fixture(scope="module")
def chain_tenant(tenant_copy: Any, sink: NotificationSink) -> TenantSettings:
    blocks = {
        "slack:#wg-chain": "custom-webhook/wg-chain-slack",
        "email:ops@example.com": "custom-webhook/wg-chain-ops",
    }
    tenant = on_process_pool(tenant_copy.settings, POOL).model_copy(
        update={"deployment_name": "dbt_wg_chain", "notifications": blocks}
    )
    register_notification_blocks(tenant, sink)
    return tenant


def test_apply_refuses_a_missing_notification_block_before_any_change(chain_tenant: TenantSettings) -> None:
    tenant = chain_tenant.model_copy(
        update={"deployment_name": "dbt_wg_no_block", "notifications": {"slack:#wg-chain": "custom-webhook/absent"}}
    )
    spec = build_deployment(build_plan(_jobs(), tenant, notifications=_notifications()), tenant, versions={})
    with pytest.raises(
        ApplyError, match=r"notification block 'custom-webhook/absent' .*prefect block create custom-webhook"
    ):
        apply_deployment(spec, create_pool=True)
    assert PrefectSchedules(spec.full_name).read_all() is None  # nothing was created


def _notifications() -> list[Notification]:
    return [Notification.from_api(n) for n in NOTIFICATIONS]


def test_an_upstream_run_that_completes_starts_the_downstream_job_and_a_failed_one_does_not(
    chain_tenant: TenantSettings, process_worker: ProcessWorker, sink: NotificationSink
) -> None:
    plan = build_plan(_jobs(), chain_tenant, notifications=_notifications())
    [trigger] = plan.triggers
    failed_name, done_name = (notification_name(UPSTREAM, NOTIFY_FAILED), notification_name(DOWNSTREAM, NOTIFY_DONE))
    # The failures setting also tells of runs that die before the flow starts (no job's name yet): one automation.
    early_name = before_start_name(NOTIFY_FAILED)
    assert [(n.name, n.switch_job_id) for n in plan.notifications] == [(failed_name, UPSTREAM), (done_name, UPSTREAM)]
    assert trigger.name == trigger_name(DOWNSTREAM, UPSTREAM)
    assert trigger.states == ["Completed", "Completed with warnings"]
    assert next(j for j in plan.jobs if j.job_id == DOWNSTREAM).status == "chained"
    # Created as the ledger says (the upstream job not cut over: off); apply after its cutover keeps the flag.
    off = build_deployment(plan, chain_tenant, versions={})
    created = apply_deployment(off, create_pool=True)
    assert created.triggers[0].status == "added"
    assert [(c.slug, c.status, c.active) for c in created.notifications] == [
        (failed_name, "added", False),
        (done_name, "added", False),
        (early_name, "added", False),
    ]
    assert _automations(off.full_name)[trigger.name].enabled is False
    on = build_deployment(plan, chain_tenant, versions={}, active={UPSTREAM: True})
    again = apply_deployment(on)
    assert [(c.status, c.active) for c in again.triggers] == [("unchanged", False)]  # apply never flips it
    assert [(c.status, c.active) for c in again.notifications] == [("unchanged", False)] * 3
    switch = PrefectTriggers(on.full_name)
    off_now = {trigger.name: False, failed_name: False, done_name: False, early_name: False}
    assert switch.switched_with(UPSTREAM) == off_now and switch.switched_with(DOWNSTREAM) == {done_name: False}
    for name in off_now:  # what cutover of the upstream job does
        switch.set_enabled(name, True)
    assert switch.after_job(UPSTREAM) == {trigger.name: True} and switch.after_job(DOWNSTREAM) == {}
    assert all(switch.switched_with(UPSTREAM).values())

    upstream = next(j for j in plan.jobs if j.job_id == UPSTREAM).parameters
    assert upstream is not None
    # A bad parameter fails the run at once (no retry), already named after its job: what the trigger matches.
    failed = run_deployment_now(on.full_name, {**upstream, "timeout_seconds": 0}, timeout=300)
    assert failed.state == "Failed" and failed.name.startswith(f"job-{UPSTREAM} Upstream ("), failed.name
    told = sink.wait_for(lambda n: failed.name in n.get("body", ""), timeout=120)
    assert told is not None, f"no notification of {failed.name}: {sink.received()}"
    assert told["destination"] == "slack:#wg-chain" and told["subject"] == "dbt job Upstream: Failed", told
    # A parity candidate run of the upstream job (as `parity` starts it) completes too, but is named apart.
    candidate = JobSpec(job_id=UPSTREAM, parameters=upstream).candidate_parameters("dev")
    checked = run_deployment_now(on.full_name, candidate, timeout=300)
    assert checked.completed and checked.name.startswith(f"parity-job-{UPSTREAM} Upstream ("), checked.name
    completed = run_deployment_now(on.full_name, upstream, timeout=300)
    assert completed.completed, f"{completed.state}: {completed.message}\n{process_worker.log_tail(40)}"
    assert job_tag(UPSTREAM) in completed.tags

    downstream = wait_for_job_run(on.full_name, DOWNSTREAM, timeout=300)
    assert downstream.completed, f"{downstream.state}: {downstream.message}\n{process_worker.log_tail(40)}"
    assert downstream.parameters == trigger.parameters
    assert job_tag(DOWNSTREAM) in downstream.tags
    # Events are evaluated in order: had the failed run or the parity run fired the trigger, its run would exist now.
    assert len(_job_runs(on.full_name, DOWNSTREAM)) == 1
    done = sink.wait_for(lambda n: downstream.name in n.get("body", ""), timeout=120)
    assert done is not None, f"no notification of {downstream.name}: {sink.received()}"
    assert done["destination"] == "email:ops@example.com" and done["subject"] == "dbt job After upstream: Completed"
    assert f"dbt Cloud job {DOWNSTREAM}" in done["body"] and "None" not in done["body"], done["body"]
    told = sink.wait_for(lambda n: completed.name in n.get("body", ""), timeout=120)
    assert told is not None and told["subject"] == "dbt job Upstream: Completed", sink.received()
    # The parity run of the upstream job, which completed before it, told nobody.
    assert not [n for n in sink.received() if checked.name in n.get("body", "")]

    # dbt Cloud's setting changes (its failures too): the automation is updated in place, still on (cutover's flag);
    # a setting dropped from dbt Cloud leaves an enabled automation, which apply reports and never prunes.
    changed = [NOTIFICATIONS[0], {**NOTIFICATIONS[1], "on_failure": [DOWNSTREAM]}]
    replan = build_plan(_jobs(), chain_tenant, notifications=[Notification.from_api(n) for n in changed])
    updated = apply_deployment(build_deployment(replan, chain_tenant, versions={}, active={UPSTREAM: True}))
    assert [(c.slug, c.status, c.fields, c.active) for c in updated.notifications] == [
        (failed_name, "unchanged", [], True),
        (done_name, "changed", ["description", "trigger"], True),
        (early_name, "unchanged", [], True),
        (before_start_name(NOTIFY_DONE), "added", [], True),
    ]
    assert switch.notifications_of(DOWNSTREAM) == {done_name: True}
    dropped = build_plan(_jobs(), chain_tenant, notifications=[Notification.from_api(NOTIFICATIONS[0])])
    pruned = apply_deployment(build_deployment(dropped, chain_tenant, versions={}, active={UPSTREAM: True}), prune=True)
    assert [(c.slug, c.status) for c in pruned.notifications] == [
        (failed_name, "unchanged"),
        (done_name, "orphaned"),
        (early_name, "unchanged"),
        (before_start_name(NOTIFY_DONE), "orphaned"),
    ]
