"""The workspace builds each service once, with the tenant's policies, and reads "the current jobs" through the
ledger wherever a use case plans them (here parity, against the sandbox dbt Cloud API on loopback)."""

from __future__ import annotations

from pathlib import Path

from app.parity_jobs import job_specs
from app.workspace import Workspace
from dbt2prefect.tenant import TenantSettings, load_tenant
from migration.ledger import LedgerRecord, RecordKind, utcnow
from sandbox.dbt_cloud import SandboxDbtCloud

NIGHTLY = 70403103936332


def _tenant(rate_limit_minutes: float) -> TenantSettings:
    base = load_tenant()
    return base.model_copy(
        update={"dbt_cloud": base.dbt_cloud.model_copy(update={"rate_limit_minutes": rate_limit_minutes})}
    )


def test_each_service_is_built_once_and_the_client_has_the_tenants_rate_limit_budget(tmp_path: Path) -> None:
    with Workspace(_tenant(3), ledger_url=str(tmp_path / "ledger"), token="not-a-real-token") as workspace:
        assert workspace.dbt_cloud is workspace.dbt_cloud
        assert workspace.ledger is workspace.ledger
        assert workspace.store is workspace.store
        assert workspace.report_root is workspace.report_root
        assert workspace.prefect is workspace.prefect
        assert workspace.dbt_cloud.retry.rate_limit_wait == 180.0
        assert workspace.ledger.url == str(tmp_path / "ledger")
        assert workspace.prefect.deployment == f"{workspace.tenant.flow_name}/{workspace.tenant.deployment_name}"


def test_parity_compares_a_cut_over_job_with_the_schedule_the_ledger_recorded(tmp_path: Path) -> None:
    """After cutover the job's dbt Cloud schedule trigger is off; parity still compares it, as it was planned."""
    with SandboxDbtCloud.start() as cloud:
        options = {"token": cloud.token, "dbt_cloud_host": cloud.url, "dbt_cloud_account_id": cloud.account_id}
        with (
            Workspace(load_tenant(), ledger_url=str(tmp_path / "ledger"), **options) as workspace,
            Workspace(load_tenant(), ledger_url=str(tmp_path / "empty"), **options) as unrecorded,
        ):
            client = workspace.dbt_cloud
            original = client.get_job_dict(NIGHTLY)
            assert NIGHTLY in {spec.job_id for spec in job_specs(client, workspace.tenant, workspace.ledger, None)}
            workspace.ledger.append(
                LedgerRecord(
                    tenant=workspace.tenant.name,
                    job_id=NIGHTLY,
                    seq=0,
                    kind=RecordKind.CUTOVER_STARTED,
                    operation="cutover-test",
                    at=utcnow(),
                    by="test",
                    original_job=original,
                )
            )
            client.update_job({**original, "triggers": {**original["triggers"], "schedule": False}})

            recorded = {spec.job_id: spec for spec in job_specs(client, workspace.tenant, workspace.ledger, None)}
            live = {spec.job_id for spec in job_specs(client, unrecorded.tenant, unrecorded.ledger, None)}
    assert NIGHTLY in recorded and recorded[NIGHTLY].parameters
    assert NIGHTLY not in live  # read live, the job has no schedule: the ledger is what keeps it compared
