"""A run that dies before its flow starts (here: its pull step cannot enter the code's folder) still reaches the
failure destinations of its job: the session's Prefect server, its worker, and the sandbox's notification sink."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from dbt2prefect.tenant import REPO_ROOT
from migration.apply import apply_deployment
from migration.dbt_cloud.models import Notification
from migration.deployment import build_deployment
from migration.export import load_inventory
from migration.translate import build_plan
from sandbox.notification_sink import NotificationSink, register_notification_blocks, sandbox_notification_blocks
from sandbox.stack import on_process_pool
from sandbox.worker import ProcessWorker
from tests.flows.conftest import WORKER_POOL, TenantCopy

SEED = REPO_ROOT / "sandbox" / "dbt_cloud"
NIGHTLY = 70403103936332
SLACK = "slack:#data-alerts"


async def _run(deployment: str, parameters: dict[str, Any]) -> tuple[str, str]:
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        found = await client.read_deployment_by_name(deployment)
        run = await client.create_flow_run_from_deployment(found.id, parameters=parameters)
        return str(run.id), run.name


async def _final_state(flow_run_id: str, timeout: float) -> str | None:
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        for _ in range(int(timeout)):
            run = await client.read_flow_run(flow_run_id)  # type: ignore[arg-type]
            if run.state is not None and run.state.is_final():
                return run.state.name
            await asyncio.sleep(1)
    return None


def test_a_run_that_dies_before_the_flow_starts_reaches_its_jobs_failure_destinations(
    tenant_copy: TenantCopy, process_worker: ProcessWorker, tmp_path: Path
) -> None:
    base = tenant_copy.settings
    absent = tmp_path / "no-such-checkout"
    tenant = on_process_pool(
        base,
        WORKER_POOL,
        deployment_name="dbt_wg_before_start",
        code_storage={"directory": str(absent)},
        notifications=sandbox_notification_blocks(base),
    )
    inventory = load_inventory(SEED / "seed_jobs.json")
    raw = json.loads((SEED / "seed_notifications.json").read_text())["data"]
    plan = build_plan(
        inventory.job_models(),
        tenant,
        inventory.environment_models(),
        notifications=[Notification.from_api(item) for item in raw],
    )
    spec = build_deployment(plan, tenant, active={NIGHTLY: True})  # the nightly job is cut over
    with NotificationSink.start() as sink:
        register_notification_blocks(tenant, sink)
        apply_deployment(spec)
        parameters = spec.job_schedule(NIGHTLY).parameters
        flow_run_id, generated = asyncio.run(_run(spec.full_name, parameters))  # as its schedule creates it
        state = asyncio.run(_final_state(flow_run_id, timeout=180))
        assert state in ("Crashed", "Failed"), state
        told = sink.wait_for(lambda n: n["destination"] == SLACK and generated in n.get("body", ""), timeout=120)
    assert told is not None, sink.received()
    assert "before the flow started" in told["body"] and str(NIGHTLY) in told["body"]
    assert "Nightly production build" in told["subject"], told
    assert not any(
        n["destination"] == SLACK and generated in n.get("body", "") for n in sink.received() if n is not told
    )
