"""The guarded window end to end, on the session's Prefect server and worker: a cut-over job's first deployment run
fails where dbt Cloud's last runs of the job succeeded; the job's guard trigger starts the guard deployment's run
on the worker, which rolls the job back (`guard_action = "rollback"`), records it in the ledger (object storage)
with the failed run's id, and notifies the job's destinations through their blocks (the sandbox's sink)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from prefect.blocks.system import Secret

from app.workspace import Workspace
from dbt2prefect.dbt_cloud import RunStatus
from dbt2prefect.prefect_gateway import connect_prefect
from dbt2prefect.tenant import TenantSettings, load_tenant
from migration.deployment import GUARD_FLOW
from migration.guard import GUARD_BY
from migration.ledger import LedgerState, RecordKind
from parity.model import Verdict
from sandbox.dbt_cloud import SandboxDbtCloud
from sandbox.notification_sink import NotificationSink, register_notification_blocks
from sandbox.runs import DeploymentRun, run_deployment_now
from sandbox.s3_api import BUCKET
from sandbox.stack import derive_tenant_file, sandbox_deployment_settings
from tests.flows.conftest import WORKER_POOL
from tests.migration.test_cutover_faults import write_verdicts

NIGHTLY = 70403103936332
FINAL = ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")


@dataclass(frozen=True)
class GuardStack:
    cloud: SandboxDbtCloud
    tenant: TenantSettings
    sink: NotificationSink
    reports: Path


@pytest.fixture(scope="module")
def stack(tenant_copy: Any, process_worker: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GuardStack]:
    """A tenant of its own in the copy's repository (the guard run reads it from its clone): its deployment, its
    ledger, dbt Cloud at a sandbox server whose token is in a Secret block, notifications to a sink, and
    `guard_action = "rollback"`."""
    suffix = uuid.uuid4().hex[:8]
    with SandboxDbtCloud.start() as cloud, NotificationSink.start() as sink:
        token_block = f"guard-e2e-token-{suffix}"
        Secret(value=cloud.token).save(token_block, overwrite=True)
        base = tenant_copy.settings
        blocks = {dest: f"custom-webhook/guard-{suffix}-{i}" for i, dest in enumerate(sorted(base.notifications))}
        settings_file = tenant_copy.settings_file.with_name(f"guard_{suffix}.toml")
        derive_tenant_file(  # as the session's copy is derived (tests/flows/conftest.py), with the test's changes
            settings_file,
            checkout=tenant_copy.remote.checkout,
            overrides={
                "artifact_store_url": tenant_copy.store,
                **sandbox_deployment_settings(WORKER_POOL, tenant_copy.remote.code_storage()),
                "deployment_name": f"dbt_wg_guard_{suffix}",
                "ledger_url": f"s3://{BUCKET}/guard-{suffix}/ledger",
                "dbt_cloud": {"host": cloud.url, "account_id": cloud.account_id},
                "blocks": {**base.blocks.model_dump(exclude_none=True), "dbt_cloud_token_block": token_block},
                "notifications": blocks,
                "shadow": {"guarded_runs": 3, "guard_action": "rollback"},
            },
        )
        tenant_copy.remote.publish("Tenant settings of the guarded-window test")
        tenant = load_tenant(settings_file)
        register_notification_blocks(tenant, sink)
        for _ in range(5):
            cloud.app.state.add_run_record(NIGHTLY, int(RunStatus.SUCCESS))
        yield GuardStack(cloud, tenant, sink, tmp_path_factory.mktemp("guard-parity"))


def _workspace(stack: GuardStack) -> Workspace:
    return Workspace(stack.tenant, report_dir=stack.reports, token=stack.cloud.token)


def _guard_run(deployment: str, timeout: float) -> Any:
    """The guard deployment's first run, once it is final (None when none finished within `timeout`)."""
    deadline = time.monotonic() + timeout
    with connect_prefect() as prefect:
        guard = prefect.read_deployment(f"{GUARD_FLOW}/{deployment}-guard")
        assert guard is not None
        while time.monotonic() < deadline:
            runs = prefect.read_flow_runs(guard.id, started_only=False)
            done = [r for r in runs if r.state is not None and r.state.type.value in FINAL]
            if done:
                return done[0]
            time.sleep(1.0)
    return None


def test_a_failed_run_in_the_guarded_window_rolls_the_job_back_and_notifies(stack: GuardStack) -> None:
    with _workspace(stack) as workspace:
        spec = workspace.deployment(workspace.plan())
        assert [t.name for t in spec.guard_triggers if t.job_id == NIGHTLY] == [f"job-{NIGHTLY}-guard"]
        workspace.apply(spec, create_pool=True)
        write_verdicts(stack.reports, {NIGHTLY: Verdict.PASS})
        assert workspace.cutover([NIGHTLY], by="oncall@test").ok
        parameters = spec.job_schedule(NIGHTLY).parameters
    assert stack.cloud.app.state.jobs[NIGHTLY]["triggers"]["schedule"] is False
    # The job's first Prefect run fails at once (a bad timeout), named after the job: what its guard trigger follows.
    failed: DeploymentRun = run_deployment_now(spec.full_name, {**parameters, "timeout_seconds": 0}, timeout=300)
    assert failed.state == "Failed" and failed.name.startswith(f"job-{NIGHTLY} "), failed
    guard = _guard_run(spec.name, timeout=300)
    assert guard is not None, "the guard trigger started no guard run"
    assert guard.parameters == {"flow_run_id": f"prefect.flow-run.{failed.flow_run_id}"}
    assert guard.state is not None and guard.state.type.value == "COMPLETED", guard.state
    with _workspace(stack) as workspace:
        records = workspace.ledger.records(NIGHTLY)
        assert workspace.ledger.state(NIGHTLY) == LedgerState.ROLLED_BACK
        prefect_schedule = workspace.prefect.read(f"job-{NIGHTLY}")
    kinds = [r.kind for r in records]
    assert kinds[-3:] == [RecordKind.GUARD_TRIPPED, RecordKind.ROLLBACK_STARTED, RecordKind.ROLLBACK_VERIFIED]
    tripped = records[-3]
    assert tripped.guard_run == failed.flow_run_id and tripped.by == GUARD_BY and tripped.guard_action == "rollback"
    assert records[-1].by == GUARD_BY
    assert stack.cloud.app.state.jobs[NIGHTLY]["triggers"]["schedule"] is True  # dbt Cloud runs it again
    assert prefect_schedule is not None and not prefect_schedule.active
    told = stack.sink.wait_for(lambda n: "failed after cutover" in n.get("subject", ""), timeout=30)
    assert told is not None, stack.sink.received()
    assert failed.flow_run_id in told["body"] and "rolled back" in told["body"]
