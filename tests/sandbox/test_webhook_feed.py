"""The webhook path end to end: the sandbox dbt Cloud server sends a signed `job.run.completed` for a run that
completed, the stand-in for a Prefect Cloud webhook renders the production template into an event on a real
Prefect server, and the event read back from the API verifies with the webhook secret from a Prefect Secret block;
the polling path reports the same run with the same event id."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from app.workspace import Workspace
from dbt2prefect.prefect_gateway import PrefectGateway, connect_prefect
from dbt2prefect.tenant import load_tenant
from migration.errors import WebhookRefusedError
from migration.shadow_feed import RUN_COMPLETED_EVENT, run_resource_id, webhook_signature, webhook_template
from sandbox.dbt_cloud import SandboxDbtCloud
from sandbox.prefect_webhook import PrefectWebhookStandIn

NIGHTLY = 70403103936332
SECRET_BLOCK = "dbt-cloud-webhook-secret-test"


@pytest.fixture
def prefect(prefect_api: None) -> Iterator[PrefectGateway]:
    with connect_prefect() as gateway:
        yield gateway


def _events(prefect: PrefectGateway, run_id: int, count: int = 1) -> list[dict[str, object]]:
    deadline = time.monotonic() + 30  # the server records accepted events asynchronously
    while len(found := prefect.read_events(RUN_COMPLETED_EVENT, [run_resource_id(run_id)])) < count:
        if time.monotonic() > deadline:
            break
        time.sleep(0.2)
    return [event.model_dump(mode="json") for event in found]


def test_a_signed_webhook_becomes_an_event_that_verifies_and_matches_the_poll(
    prefect: PrefectGateway, tmp_path: Path
) -> None:
    from prefect.blocks.system import Secret

    with SandboxDbtCloud.start() as cloud, PrefectWebhookStandIn.start(webhook_template()) as hook:
        answer = httpx.post(
            f"{cloud.url}/api/v3/accounts/{cloud.account_id}/webhooks/subscriptions",
            headers={"Authorization": f"Token {cloud.token}"},
            json={"name": "prefect", "client_url": hook.url, "event_types": ["job.run.completed"], "job_ids": []},
        )
        answer.raise_for_status()
        secret = answer.json()["data"]["hmac_secret"]
        Secret(value=secret).save(SECRET_BLOCK, overwrite=True)

        run_id = int(cloud.app.state.add_run_record(NIGHTLY, 10)["id"])
        (delivery,) = cloud.app.webhooks.wait_delivered(run_id, timeout=30)
        assert delivery.statuses == [204], hook.failures
        (event,) = _events(prefect, run_id)

        tenant = load_tenant()
        tenant = tenant.model_copy(
            update={
                "artifact_store_url": str(tmp_path / "store"),
                "blocks": tenant.blocks.model_copy(update={"dbt_cloud_webhook_secret_block": SECRET_BLOCK}),
            }
        )
        with Workspace(
            tenant,
            token=cloud.token,
            dbt_cloud_host=cloud.url,
            dbt_cloud_account_id=cloud.account_id,
            prefect=prefect,
        ) as workspace:
            verified = workspace.verify_webhook_event(event["payload"])  # type: ignore[arg-type]
            assert (verified.job_id, verified.run_id, verified.status) == (NIGHTLY, run_id, "success")

            # A delivery that dbt Cloud did not sign becomes an event too (a webhook URL is public) ...
            forged = delivery.body.replace('"runStatusCode": 10', '"runStatusCode": 20')
            bad = webhook_signature(forged, "guessed")
            assert httpx.post(hook.url, content=forged, headers={"Authorization": bad}).status_code == 204
            (_, forged_event) = _events(prefect, run_id, count=2)
            with pytest.raises(WebhookRefusedError, match="signature does not match") as refused:
                workspace.verify_webhook_event(forged_event["payload"])  # type: ignore[arg-type]
            assert secret not in str(refused.value)

            # ... and the poll reports the run with the id the verified webhook gives it.
            start = datetime.now(UTC) - timedelta(minutes=5)
            (polled,) = workspace.poll_dbt_cloud_runs([NIGHTLY], start=start)
        assert polled.same_run(verified) and polled.event_id == verified.event_id
        stored = _events(prefect, run_id, count=3)
        assert str(verified.event_id) in {e["id"] for e in stored}
