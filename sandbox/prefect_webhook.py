"""A stand-in for a Prefect Cloud webhook: an HTTP endpoint on loopback that turns a request into a Prefect event.

Prefect OSS has no webhooks. So that the webhook path runs end to end in the sandbox, this endpoint does what a
Prefect Cloud webhook does with its template: it renders the template (Jinja, sandboxed) with the request's
`body` (parsed when it is JSON), `raw_body` (as sent) and `headers` (case-insensitive), reads the result as an
event, and sends it to the Prefect API through the gateway. It answers 204, or 400 when the template cannot be
rendered into an event, as Prefect Cloud does. The template is the production one
(`migration.shadow_feed.webhook_template`), so the event is the one Prefect Cloud would make.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from jinja2 import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from pydantic import ValidationError

from dbt2prefect.prefect_gateway import PrefectApiError, PrefectGateway, connect_prefect

_ENVIRONMENT = ImmutableSandboxedEnvironment(autoescape=False)


class _Headers(dict[str, str]):
    """Request headers by lower-case name, read in any case (as a Prefect Cloud template reads them)."""

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(key.lower())

    def __contains__(self, key: object) -> bool:
        return super().__contains__(str(key).lower())


def render_webhook_event(template: str, raw_body: bytes, headers: Mapping[str, str]) -> dict[str, Any]:
    """The event a webhook template makes of a request, as a dict.

    Raises:
        ValueError: the template fails to render, or renders something that is not a JSON object.
    """
    text = raw_body.decode("utf-8", "replace")
    try:
        body: Any = json.loads(text) if text.strip() else None
    except ValueError:
        body = text
    context = {"body": body, "raw_body": text, "headers": _Headers({k.lower(): v for k, v in headers.items()})}
    try:
        rendered = _ENVIRONMENT.from_string(template).render(**context)
        event = json.loads(rendered)
    except (TemplateError, TypeError, ValueError) as exc:
        raise ValueError(f"the webhook template did not render an event: {type(exc).__name__}: {exc}") from None
    if not isinstance(event, dict):
        raise ValueError("the webhook template rendered JSON that is not an object")
    return event


class PrefectWebhookStandIn:
    """A running endpoint; `url` is what a dbt Cloud webhook subscription posts to. Use `start(...)`, as a context
    manager or with `stop()`.

    Attributes:
        url: the endpoint (`http://127.0.0.1:PORT/hooks/<slug>`).
        failures: why each refused request was refused (the stand-in's `prefect-cloud.webhook.failed`).
    """

    def __init__(self, server: ThreadingHTTPServer, slug: str) -> None:
        self._server = server
        self.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/{slug}"
        self.failures: list[str] = []
        self._thread = threading.Thread(target=server.serve_forever, name="prefect-webhook", daemon=True)

    def __repr__(self) -> str:
        return f"PrefectWebhookStandIn(url={self.url!r})"

    @classmethod
    def start(
        cls,
        template: str,
        *,
        slug: str = "dbt-cloud-runs",
        prefect: Callable[[], AbstractContextManager[PrefectGateway]] = connect_prefect,
    ) -> PrefectWebhookStandIn:
        """Listen on a free loopback port; each accepted request's event is sent through a gateway of `prefect()`."""
        from prefect.events import Event

        stand_in: PrefectWebhookStandIn

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                if self.path != f"/hooks/{slug}":
                    self._answer(404)
                    return
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    event = Event.model_validate(render_webhook_event(template, raw, dict(self.headers.items())))
                    with prefect() as gateway:
                        gateway.emit_events([event])
                except (ValueError, ValidationError, PrefectApiError) as exc:
                    stand_in.failures.append(str(exc))
                    self._answer(400)
                    return
                self._answer(204)

            def _answer(self, status: int) -> None:
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        stand_in = cls(server, slug)
        stand_in._thread.start()
        return stand_in

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> PrefectWebhookStandIn:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
