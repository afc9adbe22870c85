"""One event shape for a completed dbt Cloud run: the webhook template and the poll path report a run alike, and a
webhook event is trusted only once its signature checks out."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from uuid import UUID

import pytest

from dbt2prefect.prefect_gateway import PrefectGateway
from dbt2prefect.prefect_gateway_memory import MemoryPrefect
from migration.dbt_cloud.client import DbtCloudClient
from migration.errors import WebhookRefusedError
from migration.shadow_feed import (
    PAYLOAD_KEYS,
    RUN_COMPLETED_EVENT,
    RunCompleted,
    run_event_id,
    verify_webhook_event,
    webhook_body,
    webhook_create_command,
    webhook_signature,
    webhook_template,
)
from sandbox.dbt_cloud import SandboxDbtCloud
from sandbox.prefect_webhook import PrefectWebhookStandIn, render_webhook_event

SECRET = "whsec-for-tests"
RUN = RunCompleted(
    account_id=43786,
    job_id=70403103936332,
    run_id=70403104500011,
    status="error",
    finished_at="2026-12-03T06:04:59Z",
    environment_id=218762,
    source="poll",
)


def _rendered(body: str, signature: str | None) -> dict[str, object]:
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers["Authorization"] = signature
    return render_webhook_event(webhook_template(), body.encode(), headers)


def test_a_signed_delivery_verifies_into_the_run_it_reports() -> None:
    body = webhook_body(RUN)
    event = _rendered(body, webhook_signature(body, SECRET))
    verified = verify_webhook_event(event["payload"], SECRET)  # type: ignore[arg-type]
    assert verified.source == "webhook"
    assert verified.same_run(RUN)
    assert verified.event_id == RUN.event_id == run_event_id(43786, 70403104500011)


def test_a_delivery_without_a_signature_is_refused() -> None:
    event = _rendered(webhook_body(RUN), None)
    with pytest.raises(WebhookRefusedError, match="carries no signature") as refused:
        verify_webhook_event(event["payload"], SECRET)  # type: ignore[arg-type]
    assert refused.value.reason == "missing-signature"


@pytest.mark.parametrize("how", ["other secret", "changed body"])
def test_a_delivery_whose_signature_does_not_match_is_refused(how: str) -> None:
    body = webhook_body(RUN)
    if how == "other secret":
        event = _rendered(body, webhook_signature(body, "not-the-secret"))
    else:
        changed = body.replace('"runStatusCode": 20', '"runStatusCode": 10')
        assert changed != body
        event = _rendered(changed, webhook_signature(body, SECRET))
    with pytest.raises(WebhookRefusedError, match="signature does not match") as refused:
        verify_webhook_event(event["payload"], SECRET)  # type: ignore[arg-type]
    assert refused.value.reason == "bad-signature"
    assert SECRET not in str(refused.value)


def test_fields_outside_the_signed_body_that_disagree_with_it_are_refused() -> None:
    body = webhook_body(RUN)
    payload = dict(_rendered(body, webhook_signature(body, SECRET))["payload"])  # type: ignore[call-overload]
    payload["job_id"] = 1
    with pytest.raises(WebhookRefusedError, match="job_id disagree with its signed body") as refused:
        verify_webhook_event(payload, SECRET)
    assert refused.value.reason == "bad-body"


def test_a_signed_body_of_another_event_type_is_refused() -> None:
    body = json.dumps({**json.loads(webhook_body(RUN)), "eventType": "job.run.started"})
    event = _rendered(body, webhook_signature(body, SECRET))
    with pytest.raises(WebhookRefusedError, match=r"subscribe the webhook to job\.run\.completed only"):
        verify_webhook_event(event["payload"], SECRET)  # type: ignore[arg-type]


def test_a_forged_id_cannot_inject_json_into_the_event() -> None:
    body = webhook_body(RUN).replace('"jobId": "70403103936332"', '"jobId": "1\\", \\"x\\": \\"y"')
    assert '"x\\"' in body
    event = _rendered(body, webhook_signature(body, SECRET))
    assert event["related"] == [{"prefect.resource.id": "prefect.tag.dbt-cloud-job-0", "prefect.resource.role": "tag"}]
    assert "x" not in event and "x" not in event["payload"]  # type: ignore[operator]
    with pytest.raises(WebhookRefusedError, match=r"lacks accountId or data\.jobId") as refused:
        verify_webhook_event(event["payload"], SECRET)  # type: ignore[arg-type]
    assert refused.value.reason == "bad-body"


def test_the_webhook_and_the_poll_report_a_sandbox_run_with_one_event_shape() -> None:
    memory = MemoryPrefect()

    @contextmanager
    def prefect() -> Iterator[PrefectGateway]:
        yield memory

    with (
        SandboxDbtCloud.start() as cloud,
        PrefectWebhookStandIn.start(webhook_template(), prefect=prefect) as hook,
        DbtCloudClient(cloud.url, cloud.account_id, cloud.token) as client,
    ):
        secret = cloud.app.webhooks.subscribe(
            {"name": "prefect", "client_url": hook.url, "event_types": ["job.run.completed"]}
        )["hmac_secret"]
        run_id = int(cloud.app.state.add_run_record(RUN.job_id, 20)["id"])
        (delivery,) = cloud.app.webhooks.wait_delivered(run_id, timeout=30)
        assert delivery.statuses == [204], hook.failures
        (polled_run,) = [r for r in client.iter_completed_runs() if r.id == run_id]
    polled = RunCompleted.from_run(polled_run, cloud.account_id).event().model_dump(mode="json")
    (heard,) = [e.model_dump(mode="json") for e in memory.events.values()]

    for key in ("event", "occurred", "resource", "related"):
        assert heard[key] == polled[key], key
    assert heard["event"] == RUN_COMPLETED_EVENT
    assert {k: heard["payload"][k] for k in PAYLOAD_KEYS if k != "source"} == {
        k: polled["payload"][k] for k in PAYLOAD_KEYS if k != "source"
    }
    assert (heard["payload"]["source"], polled["payload"]["source"]) == ("webhook", "poll")
    verified = verify_webhook_event(heard["payload"], secret)
    assert verified.event_id == run_event_id(cloud.account_id, run_id) == UUID(polled["id"])


def test_the_webhook_create_command_carries_the_template_quoted() -> None:
    command = webhook_create_command()
    assert command.startswith("prefect cloud webhook create dbt-cloud-runs ")
    assert "--template '{" in command and RUN_COMPLETED_EVENT in command


def test_a_run_that_has_not_completed_has_no_report() -> None:
    from migration.dbt_cloud.models import Run

    running = Run.from_api({"id": 5, "job_definition_id": 7, "status": 3, "finished_at": None})
    with pytest.raises(ValueError, match="has not completed"):
        RunCompleted.from_run(running, 1)
    done = Run.from_api({"id": 5, "job_definition_id": 7, "status": 10, "finished_at": "2026-12-03 06:04:59.5+00:00"})
    assert RunCompleted.from_run(done, 1).finished_at == "2026-12-03T06:04:59Z"
    assert datetime.fromisoformat(RunCompleted.from_run(done, 1).finished_at).tzinfo == UTC
