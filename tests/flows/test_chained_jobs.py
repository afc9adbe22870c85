"""A chained dbt Cloud job as a deployment trigger, on the session's Prefect server with its real worker.

Two jobs shaped like the seed's nightly → 'Supply chain after nightly' chain (success only), with cheap `dbt ls`
steps: translated, applied, the trigger switched on as cutover of the upstream job does, then the upstream job's deployment
run fails once (the downstream job must not start) and completes once (it must start, with its parameters).
"""

from __future__ import annotations

import asyncio
import copy
import json
from typing import Any

import pytest

from dbt2prefect.job_identity import job_tag
from dbt2prefect.tenant import REPO_ROOT, TenantSettings
from migration.apply import apply_deployment, deployment_triggers
from migration.dbt_cloud.models import Job
from migration.deployment import build_deployment
from migration.prefect_switch import PrefectTriggers
from migration.translate import build_plan, trigger_name
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
    from prefect.client.orchestration import get_client

    async def read() -> dict[str, Any]:
        async with get_client() as client:
            found = await client.read_deployment_by_name(deployment)
            return await deployment_triggers(client, found.id)

    return asyncio.run(read())


@pytest.fixture(scope="module")
def chain_tenant(tenant_copy: Any) -> TenantSettings:
    return on_process_pool(tenant_copy.settings, POOL).model_copy(update={"deployment_name": "dbt_wg_chain"})


def test_an_upstream_run_that_completes_starts_the_downstream_job_and_a_failed_one_does_not(
    chain_tenant: TenantSettings, process_worker: ProcessWorker
) -> None:
    plan = build_plan(_jobs(), chain_tenant)
    [trigger] = plan.triggers
    assert trigger.name == trigger_name(DOWNSTREAM, UPSTREAM) and trigger.states == ["Completed"]
    assert next(j for j in plan.jobs if j.job_id == DOWNSTREAM).status == "chained"
    # Created as the ledger says (the upstream job not cut over: off); apply after its cutover keeps the flag.
    off = build_deployment(plan, chain_tenant, versions={})
    assert apply_deployment(off, create_pool=True).triggers[0].status == "added"
    assert _automations(off.full_name)[trigger.name].enabled is False
    on = build_deployment(plan, chain_tenant, versions={}, active={UPSTREAM: True})
    again = apply_deployment(on)
    assert [(c.status, c.active) for c in again.triggers] == [("unchanged", False)]  # apply never flips it
    switch = PrefectTriggers(on.full_name)
    assert switch.after_job(UPSTREAM) == {trigger.name: False}
    switch.set_enabled(trigger.name, True)  # what cutover of the upstream job does
    assert switch.after_job(UPSTREAM) == {trigger.name: True} and switch.after_job(DOWNSTREAM) == {}

    upstream = next(j for j in plan.jobs if j.job_id == UPSTREAM).parameters
    assert upstream is not None
    # A bad parameter fails the run at once (no retry), already named after its job: what the trigger matches.
    failed = run_deployment_now(on.full_name, {**upstream, "timeout_seconds": 0}, timeout=300)
    assert failed.state == "Failed" and failed.name.startswith(f"job-{UPSTREAM} Upstream ("), failed.name
    completed = run_deployment_now(on.full_name, upstream, timeout=300)
    assert completed.completed, f"{completed.state}: {completed.message}\n{process_worker.log_tail(40)}"
    assert job_tag(UPSTREAM) in completed.tags

    downstream = wait_for_job_run(on.full_name, DOWNSTREAM, timeout=300)
    assert downstream.completed, f"{downstream.state}: {downstream.message}\n{process_worker.log_tail(40)}"
    assert downstream.parameters == trigger.parameters
    assert job_tag(DOWNSTREAM) in downstream.tags
    # Events are evaluated in order: had the failed run fired the trigger, its run would exist by now.
    assert len(_job_runs(on.full_name, DOWNSTREAM)) == 1
