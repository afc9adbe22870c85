"""Where the sandbox's notifications go: a loopback HTTP endpoint that stands in for Slack and email.

The sandbox writes the tenant's `[tenant.notifications]` blocks as Prefect `custom-webhook` blocks of the same
names that post here (only the address changes: the automations and their actions are the production ones).
Every notification received is kept in memory and appended to a JSON-lines file.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote, unquote

from dbt2prefect.tenant import TenantSettings

SANDBOX_BLOCK_TYPE = "custom-webhook"


class NotificationSink:
    """A running sink. Use `NotificationSink.start(log)` as a context manager.

    Attributes:
        url: base URL (`http://127.0.0.1:PORT`); a destination posts to `<url>/<destination>`.
    """

    def __init__(self, server: ThreadingHTTPServer, log: Path | None) -> None:
        self._server = server
        self._log = log
        self._lock = threading.Lock()
        self._received: list[dict[str, Any]] = []
        self.url = f"http://127.0.0.1:{server.server_address[1]}"
        self._thread = threading.Thread(target=server.serve_forever, name="notification-sink", daemon=True)

    def __repr__(self) -> str:
        return f"NotificationSink(url={self.url!r})"

    @classmethod
    def start(cls, log: Path | None = None) -> NotificationSink:
        """Listen on a free loopback port; `log` (if given) gets one JSON line per notification."""
        sink: NotificationSink

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    body = {"body": raw.decode("utf-8", "replace")}
                sink._record({"destination": unquote(self.path.lstrip("/")), **body})
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        sink = cls(server, log)
        sink._thread.start()
        return sink

    def _record(self, item: dict[str, Any]) -> None:
        with self._lock:
            self._received.append(item)
            if self._log is not None:
                with self._log.open("a", encoding="utf-8") as out:
                    out.write(json.dumps(item) + "\n")

    def destination_url(self, destination: str) -> str:
        return f"{self.url}/{quote(destination, safe='')}"

    def received(self) -> list[dict[str, Any]]:
        """Every notification so far: `destination`, `subject`, `body`."""
        with self._lock:
            return list(self._received)

    def wait_for(self, match: Callable[[dict[str, Any]], bool], timeout: float) -> dict[str, Any] | None:
        """The first notification `match` accepts, waiting up to `timeout` seconds; None if none came."""
        deadline = time.monotonic() + timeout
        while True:
            found = next((n for n in self.received() if match(n)), None)
            if found is not None or time.monotonic() >= deadline:
                return found
            time.sleep(0.25)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> NotificationSink:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def sandbox_notification_blocks(tenant: TenantSettings) -> dict[str, str]:
    """The tenant's `[tenant.notifications]` with every block a sandbox `custom-webhook` block of the same name."""
    return {dest: f"{SANDBOX_BLOCK_TYPE}/{block.partition('/')[2]}" for dest, block in tenant.notifications.items()}


def register_notification_blocks(tenant: TenantSettings, sink: NotificationSink) -> list[str]:
    """Save each of the tenant's notification blocks (see `sandbox_notification_blocks`) in the active Prefect API,
    posting `{"subject", "body"}` to the sink under its destination; returns the block names."""
    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    names = []
    for destination, reference in sorted(tenant.notifications.items()):
        name = reference.partition("/")[2]
        CustomWebhookNotificationBlock(
            name=destination,
            url=sink.destination_url(destination),
            json_data={"subject": "{{subject}}", "body": "{{body}}"},
        ).save(name, overwrite=True)
        names.append(name)
    return names
