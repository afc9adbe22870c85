"""One event for "a dbt Cloud run of job J completed", whichever way the toolkit heard of it.

Two ways in, one shape out (`RunCompleted`, emitted as the Prefect event `RUN_COMPLETED_EVENT`):

- **webhook** (Prefect Cloud): dbt Cloud's outbound webhook `job.run.completed` is posted to a Prefect Cloud webhook,
  whose template (`webhook_template()`) turns it into the event. A template cannot check dbt Cloud's signature, so
  it copies the body as sent (`raw_body`) and the signature header (`signature`) into the payload, beside the
  fields it reads from the body. Nothing may act on such an event before `verify_webhook_event` has checked the
  HMAC with the webhook's secret: it answers the `RunCompleted` parsed from the signed body alone, or refuses.
- **poll** (Prefect OSS, or no right to create webhooks): `migration.shadow_poll` lists completed runs through the
  dbt Cloud API and emits the same event for each, built by `RunCompleted.from_run`.

Either way the event has the name `RUN_COMPLETED_EVENT`, the resource `dbt-cloud.run.<run id>`, the job's tag
(`dbt2prefect.names.job_tag`) as related resource, and the payload keys of `PAYLOAD_KEYS`. Its id, and the
`event_id` of the `RunCompleted`, is `run_event_id(account, run)`: the same for every report of one run, so a
run heard twice (a webhook redelivered, a poll repeated after a crash) is recognisable as one. The Prefect server
stores one event per id and its trigger service skips an id it has seen; whatever starts work from the event (a
shadow run) keys on the id too.

The template's context is the one Prefect Cloud documents for webhook templates: `body` (the JSON body, parsed),
`raw_body` (the body as sent) and `headers` (case-insensitive). Ids are written through `| int`, so a forged body
cannot inject JSON; `raw_body` and the signature through `| tojson`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import shlex
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import SecretStr

from dbt2prefect.dbt_cloud import RunStatus
from dbt2prefect.names import JOB_TAG_PREFIX, job_tag
from migration.errors import WebhookRefusedError

if TYPE_CHECKING:
    from prefect.events import Event

    from migration.dbt_cloud.models import Run

RUN_COMPLETED_EVENT = "dbt2prefect.dbt_cloud.run.completed"
RUN_RESOURCE_PREFIX = "dbt-cloud.run."
WEBHOOK_EVENT_TYPE = "job.run.completed"
"""The dbt Cloud webhook event to subscribe to (`job.run.errored` also fires for failed runs: not needed)."""
SIGNATURE_HEADER = "authorization"
"""dbt Cloud signs each delivery: the hex HMAC-SHA256 of the raw body with the webhook's secret, in this header."""

FEED_NAMESPACE = uuid.UUID("5d0b8f2e-3c1a-5e7b-9f41-27a6c0d4e8b1")
"""The uuid5 namespace of run event ids (fixed: changing it would make old and new reports of a run differ)."""

Source = Literal["webhook", "poll"]
COMPLETED_STATUSES: dict[RunStatus, str] = {
    RunStatus.SUCCESS: "success",
    RunStatus.ERROR: "error",
    RunStatus.CANCELLED: "cancelled",
}
"""The run statuses that end a run, and how the event's payload names them."""
PAYLOAD_KEYS = ("account_id", "job_id", "run_id", "status", "finished_at", "environment_id", "source")
"""The payload of every `RUN_COMPLETED_EVENT`; a webhook event adds `raw_body` and `signature`."""


def run_event_id(account_id: int, run_id: int) -> uuid.UUID:
    """The id of every event about run `run_id` of account `account_id` (uuid5: the same on every call)."""
    return uuid.uuid5(FEED_NAMESPACE, f"dbt-cloud/{int(account_id)}/run/{int(run_id)}")


def run_resource_id(run_id: int) -> str:
    """The event resource of a dbt Cloud run."""
    return f"{RUN_RESOURCE_PREFIX}{int(run_id)}"


def event_time(moment: datetime) -> str:
    """A finish time as the payload carries it: UTC, whole seconds, `Z` (dbt Cloud's webhook bodies' form)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class RunCompleted:
    """A completed dbt Cloud run of a job, as every path reports it (see the module)."""

    account_id: int
    job_id: int
    run_id: int
    status: str
    finished_at: str
    environment_id: int | None
    source: Source

    @property
    def event_id(self) -> uuid.UUID:
        return run_event_id(self.account_id, self.run_id)

    @property
    def job_tag(self) -> str:
        return job_tag(self.job_id)

    def payload(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in PAYLOAD_KEYS}

    def resource(self) -> dict[str, str]:
        return {"prefect.resource.id": run_resource_id(self.run_id), "dbt-cloud.account.id": str(self.account_id)}

    def related(self) -> list[dict[str, str]]:
        return [{"prefect.resource.id": f"prefect.tag.{self.job_tag}", "prefect.resource.role": "tag"}]

    def event(self) -> Event:
        """The Prefect event, with the run's deterministic id, occurred at the run's finish."""
        from prefect.events import Event

        return Event(
            id=self.event_id,
            event=RUN_COMPLETED_EVENT,
            occurred=datetime.fromisoformat(self.finished_at),
            resource=self.resource(),
            related=self.related(),
            payload=self.payload(),
        )

    def same_run(self, other: RunCompleted) -> bool:
        """Whether both report the same run alike, whichever path each came by."""
        return {**self.payload(), "source": None} == {**other.payload(), "source": None}

    @classmethod
    def from_run(cls, run: Run, account_id: int) -> RunCompleted:
        """The report of a run read through the API (the poll path).

        Raises:
            ValueError: the run has not completed, or has no job or finish time.
        """
        status = COMPLETED_STATUSES.get(run.status)
        if status is None or run.finished_at is None or run.job_definition_id is None:
            raise ValueError(f"dbt Cloud run {run.id} has not completed (status {int(run.status)}) or has no job")
        return cls(
            account_id=account_id,
            job_id=int(run.job_definition_id),
            run_id=int(run.id),
            status=status,
            finished_at=event_time(run.finished_at),
            environment_id=int(run.environment_id) if run.environment_id is not None else None,
            source="poll",
        )

    @classmethod
    def from_webhook_body(cls, raw_body: str) -> RunCompleted:
        """The report in a dbt Cloud webhook body (ids arrive as strings). Call it on a verified body only.

        Raises:
            WebhookRefusedError: the body is not a `job.run.completed` delivery of dbt Cloud's shape.
        """

        def refuse(why: str) -> WebhookRefusedError:
            return WebhookRefusedError(f"the dbt Cloud webhook body is refused: {why}", "bad-body")

        try:
            body = json.loads(raw_body)
        except (json.JSONDecodeError, TypeError):
            raise refuse("it is not JSON") from None
        if not isinstance(body, dict) or not isinstance(body.get("data"), dict):
            raise refuse("it has no 'data' object")
        if body.get("eventType") != WEBHOOK_EVENT_TYPE:
            raise refuse(
                f"its eventType is {body.get('eventType')!r}, not {WEBHOOK_EVENT_TYPE!r}; subscribe the webhook to "
                f"{WEBHOOK_EVENT_TYPE} only"
            )
        data = body["data"]
        try:
            status = COMPLETED_STATUSES[RunStatus(int(data["runStatusCode"]))]
            environment = data.get("environmentId")
            finished = datetime.fromisoformat(str(data["runFinishedAt"]).replace("Z", "+00:00"))
            return cls(
                account_id=int(body["accountId"]),
                job_id=int(data["jobId"]),
                run_id=int(data["runId"]),
                status=status,
                finished_at=event_time(finished),
                environment_id=int(environment) if environment not in (None, "") else None,
                source="webhook",
            )
        except (KeyError, TypeError, ValueError):
            raise refuse(
                "it lacks accountId or data.jobId, runId, runStatusCode (10, 20 or 30) or runFinishedAt"
            ) from None


# ---------------------------------------------------------------------------------------------- the webhook path


def webhook_signature(raw_body: str | bytes, secret: SecretStr | str) -> str:
    """The signature dbt Cloud sends with `raw_body`: hex HMAC-SHA256 keyed with the webhook's secret."""
    key = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
    data = raw_body.encode("utf-8") if isinstance(raw_body, str) else raw_body
    return hmac.new(key.encode("utf-8"), data, hashlib.sha256).hexdigest()


def verify_webhook_event(payload: Mapping[str, Any], secret: SecretStr | str) -> RunCompleted:
    """The run a webhook event reports, once its signature is checked against the webhook's secret.

    Args:
        payload: the event's payload, as `webhook_template()` made it (`raw_body`, `signature` and the fields).
        secret: the dbt Cloud webhook's secret (see `Workspace.webhook_secret`).

    Returns:
        The `RunCompleted` parsed from the signed body alone (source `webhook`).

    Raises:
        WebhookRefusedError: no signature, a signature that does not match, a body of the wrong shape, or fields
            outside the body that disagree with it (`reason` says which).
    """
    raw_body = payload.get("raw_body")
    signature = payload.get("signature")
    if not isinstance(raw_body, str) or not raw_body:
        raise WebhookRefusedError(
            "the webhook event carries no raw_body; create the Prefect Cloud webhook with the template of "
            "`webhook_template()`, which copies the body as sent",
            "missing-signature",
        )
    if not isinstance(signature, str) or not signature.strip():
        raise WebhookRefusedError(
            "the webhook event carries no signature (the request had no Authorization header): it did not come "
            "from a dbt Cloud webhook, or the template does not copy the header",
            "missing-signature",
        )
    if not hmac.compare_digest(webhook_signature(raw_body, secret), signature.strip().lower()):
        raise WebhookRefusedError(
            "the webhook event's signature does not match its body: it was not signed with the webhook secret in "
            "the tenant's Prefect Secret block ([tenant.blocks] dbt_cloud_webhook_secret_block), or the body was "
            "changed on the way; check that the block holds the secret of this dbt Cloud webhook",
            "bad-signature",
        )
    run = RunCompleted.from_webhook_body(raw_body)
    claimed = run.payload()
    disagree = [key for key in PAYLOAD_KEYS if key in payload and payload[key] != claimed[key]]
    if disagree:
        raise WebhookRefusedError(
            f"the webhook event's {', '.join(disagree)} disagree with its signed body; only the body is trusted",
            "bad-body",
        )
    return run


def webhook_template() -> str:
    """The Prefect Cloud webhook template (Jinja producing the event's JSON) for dbt Cloud's `job.run.completed`.

    Rendered with `body`, `raw_body` and `headers`, it gives the event of `RunCompleted.event()` for the same
    run (payload `source` `webhook`, plus `raw_body` and `signature`) without its id, which a template cannot
    compute: `verify_webhook_event` gives it back.
    """
    statuses = {int(code): name for code, name in COMPLETED_STATUSES.items()}
    lines = [
        "{",
        f'  "event": "{RUN_COMPLETED_EVENT}",',
        '  "occurred": {{ body.data.runFinishedAt | tojson }},',
        '  "resource": {',
        f'    "prefect.resource.id": "{RUN_RESOURCE_PREFIX}{{{{ body.data.runId | int }}}}",',
        '    "dbt-cloud.account.id": "{{ body.accountId | int }}"',
        "  },",
        '  "related": [',
        f'    {{"prefect.resource.id": "prefect.tag.{JOB_TAG_PREFIX}{{{{ body.data.jobId | int }}}}", '
        '"prefect.resource.role": "tag"}',
        "  ],",
        '  "payload": {',
        '    "account_id": {{ body.accountId | int }},',
        '    "job_id": {{ body.data.jobId | int }},',
        '    "run_id": {{ body.data.runId | int }},',
        f'    "status": {{{{ {json.dumps(statuses)}.get(body.data.runStatusCode | string) | tojson }}}},',
        '    "finished_at": {{ body.data.runFinishedAt | tojson }},',
        '    "environment_id": {% if body.data.environmentId %}{{ body.data.environmentId | int }}'
        "{% else %}null{% endif %},",
        '    "source": "webhook",',
        '    "raw_body": {{ raw_body | tojson }},',
        f'    "signature": {{{{ (headers["{SIGNATURE_HEADER}"] or "") | tojson }}}}',
        "  }",
        "}",
    ]
    return "\n".join(lines) + "\n"


def webhook_create_command(name: str = "dbt-cloud-runs") -> str:
    """The `prefect cloud webhook create` command line that creates the webhook with `webhook_template()`."""
    return (
        f"prefect cloud webhook create {shlex.quote(name)} "
        f"--description {shlex.quote('dbt Cloud job.run.completed -> ' + RUN_COMPLETED_EVENT)} "
        f"--template {shlex.quote(webhook_template())}"
    )


def webhook_body(run: RunCompleted, *, webhook_id: str = "wsu_sandbox", event_id: str | None = None) -> str:
    """A `job.run.completed` body in dbt Cloud's shape for `run` (ids as strings, as dbt Cloud sends them); the
    sandbox's dbt Cloud server sends it, and tests build deliveries with it."""
    data = {
        "jobId": str(run.job_id),
        "runId": str(run.run_id),
        "environmentId": str(run.environment_id) if run.environment_id is not None else None,
        "runStatus": run.status.capitalize(),
        "runStatusCode": next(int(code) for code, name in COMPLETED_STATUSES.items() if name == run.status),
        "runFinishedAt": run.finished_at,
    }
    body = {
        "accountId": run.account_id,
        "webhooksID": webhook_id,
        "eventId": event_id or f"wev_{run.event_id.hex}",
        "timestamp": run.finished_at,
        "eventType": WEBHOOK_EVENT_TYPE,
        "data": data,
    }
    return json.dumps(body)
