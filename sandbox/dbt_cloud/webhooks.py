"""The sandbox account's outbound webhooks: signed `job.run.completed` deliveries, as dbt Cloud sends them.

A subscription is created as in dbt Cloud (`POST /api/v3/accounts/{a}/webhooks/subscriptions`, answering the
`hmac_secret` once); each run that reaches a final status is then posted to every active subscription to
`job.run.completed` whose `job_ids` include its job (none listed: every job), with the body of
`migration.shadow_feed.webhook_body` and its HMAC-SHA256 in the `Authorization` header. A delivery that is not
answered with a 2xx is tried again, five attempts in all (dbt Cloud retries up to five times).
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from migration.dbt_cloud.models import Run
from migration.shadow_feed import RunCompleted, webhook_body, webhook_signature
from sandbox.dbt_cloud.contract import ApiError

log = logging.getLogger(__name__)

DELIVERY_ATTEMPTS = 5
EVENT_TYPES = ("job.run.started", "job.run.completed", "job.run.errored")


@dataclass
class Subscription:
    """One webhook subscription of the account."""

    id: str
    name: str
    client_url: str
    event_types: list[str]
    job_ids: list[int]
    hmac_secret: str
    active: bool = True

    def public(self, *, with_secret: bool = False) -> dict[str, Any]:
        body = {
            "id": self.id,
            "name": self.name,
            "client_url": self.client_url,
            "event_types": list(self.event_types),
            "job_ids": [str(job) for job in self.job_ids],
            "active": self.active,
        }
        return {**body, "hmac_secret": self.hmac_secret} if with_secret else body


@dataclass
class Delivery:
    """One delivery of one run to one subscription: its body, signature and the answers it got."""

    subscription_id: str
    run_id: int
    body: str
    signature: str
    statuses: list[int | str] = field(default_factory=list)

    @property
    def delivered(self) -> bool:
        return any(isinstance(status, int) and 200 <= status < 300 for status in self.statuses)


class Webhooks:
    """The account's subscriptions and the deliveries made to them."""

    def __init__(self, account_id: int, retry_wait: float = 0.5) -> None:
        self.account_id = account_id
        self.retry_wait = retry_wait
        self.subscriptions: dict[str, Subscription] = {}
        self.deliveries: list[Delivery] = []
        self._lock = threading.Lock()

    def subscribe(self, body: Any) -> dict[str, Any]:
        """Create a subscription from an API body; answers it with its `hmac_secret`.

        Raises:
            ApiError: 400 for a body without name, client_url or known event_types.
        """
        if not isinstance(body, dict):
            raise ApiError(400, "The request body must be an object.")
        name, url, types = body.get("name"), body.get("client_url"), body.get("event_types")
        if not isinstance(name, str) or not name:
            raise ApiError(400, "'name' is a required property", "name")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ApiError(400, "'client_url' must be an http(s) URL", "client_url")
        if not isinstance(types, list) or not types or any(t not in EVENT_TYPES for t in types):
            raise ApiError(400, f"'event_types' must be a list of {', '.join(EVENT_TYPES)}", "event_types")
        try:
            jobs = [int(job) for job in body.get("job_ids") or []]
        except (TypeError, ValueError):
            raise ApiError(400, "'job_ids' must be a list of job ids", "job_ids") from None
        subscription = Subscription(
            id=f"wsu_{secrets.token_hex(8)}",
            name=name,
            client_url=url,
            event_types=list(types),
            job_ids=jobs,
            hmac_secret=secrets.token_hex(24),
            active=bool(body.get("active", True)),
        )
        with self._lock:
            self.subscriptions[subscription.id] = subscription
        return subscription.public(with_secret=True)

    def listed(self) -> list[dict[str, Any]]:
        with self._lock:
            return [s.public() for s in self.subscriptions.values()]

    def run_completed(self, run: dict[str, Any]) -> None:
        """Deliver a run that reached a final status to the subscriptions that want it (in the background)."""
        if run.get("status") not in (10, 20, 30):
            return
        report = RunCompleted.from_run(Run.from_api(run), self.account_id)
        with self._lock:
            wanted = [
                s
                for s in self.subscriptions.values()
                if s.active and "job.run.completed" in s.event_types and (not s.job_ids or report.job_id in s.job_ids)
            ]
        for subscription in wanted:
            body = webhook_body(report, webhook_id=subscription.id)
            delivery = Delivery(subscription.id, report.run_id, body, webhook_signature(body, subscription.hmac_secret))
            with self._lock:
                self.deliveries.append(delivery)
            threading.Thread(
                target=self._deliver, args=(subscription.client_url, delivery), daemon=True, name="sandbox-webhook"
            ).start()

    def _deliver(self, url: str, delivery: Delivery) -> None:
        headers = {"Authorization": delivery.signature, "Content-Type": "application/json"}
        for attempt in range(DELIVERY_ATTEMPTS):
            try:
                answer = httpx.post(url, content=delivery.body.encode("utf-8"), headers=headers, timeout=30)
                delivery.statuses.append(answer.status_code)
                if answer.is_success:
                    return
            except httpx.HTTPError as exc:
                delivery.statuses.append(type(exc).__name__)
            if attempt + 1 < DELIVERY_ATTEMPTS:
                time.sleep(self.retry_wait * (attempt + 1))
        log.warning("sandbox webhook %s: run %s not delivered to %s", delivery.subscription_id, delivery.run_id, url)

    def wait_delivered(self, run_id: int, timeout: float) -> list[Delivery]:
        """The deliveries of `run_id` once each has ended (delivered or out of attempts), waiting up to `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                mine = [d for d in self.deliveries if d.run_id == run_id]
            done = all(d.delivered or len(d.statuses) >= DELIVERY_ATTEMPTS for d in mine)
            if (mine and done) or time.monotonic() >= deadline:
                return mine
            time.sleep(0.05)
