"""Hearing of completed dbt Cloud runs by polling, where webhooks are not available (Prefect OSS, no webhook rights).

Each poll lists the account's completed runs newest first (`DbtCloudClient.iter_completed_runs`), down to the
cursor's watermark less an overlap, and sends one `RUN_COMPLETED_EVENT` (`migration.shadow_feed`) per run of a
migrated job that the cursor has not seen; then it moves the cursor. The cursor is one small JSON file in the
tenant's store, `<artifact_store_url>/<tenant>/shadow/cursor.json`, replaced by compare-and-swap
(`dbt2prefect.object_store.versioned_file`), so it outlives the process and two pollers cannot both move it.

What holds across restarts and crashes:

- **No run is missed**: the cursor moves only after the API accepted the events. A run whose finish becomes
  visible late (a run that completed while the pages were read) is still listed by the next poll as long as it
  appears within `overlap` of the newest finish seen; the cursor keeps the ids of the runs it has seen in that
  window.
- **A repeat is recognisable, not counted twice**: a poller that dies after sending and before moving the cursor
  sends the same runs again on its next poll, with the same event ids (`run_event_id`: account and run). The
  Prefect server stores one event per id and its triggers skip an id they have seen; whatever starts work from
  the event keys on the id too. So the sending is at least once, and each run is one event.
- **Two pollers at once**: the second to move the cursor finds it changed and stops with `ShadowCursorError`
  (its events, repeats of the other's, carry the same ids).

The first poll (no cursor yet) sends the runs that finished at or after `start`, and only records those before.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from dbt2prefect.errors import ArtifactStoreError
from dbt2prefect.object_store import SwapMode, VersionedFile, open_url, versioned_file
from migration.errors import ShadowCursorError
from migration.shadow_feed import RunCompleted, event_time

if TYPE_CHECKING:
    from dbt2prefect.prefect_gateway import PrefectGateway
    from migration.dbt_cloud.client import DbtCloudClient

SHADOWED_STATUSES = ("scheduled", "chained", "on_demand")
"""Plan statuses of the jobs whose dbt Cloud runs are reported: those that become Prefect runs."""
CURSOR_SCHEMA = 1
DEFAULT_OVERLAP = timedelta(hours=1)
"""How far back of the newest finish each poll lists again: longer than a run's finish can take to show in the
API, and than the time between two polls."""


def cursor_url(artifact_store_url: str, tenant: str) -> str:
    """Where a tenant's polling cursor lives."""
    return f"{artifact_store_url.rstrip('/')}/{tenant}/shadow/cursor.json"


@dataclass(frozen=True)
class Cursor:
    """How far polling got: every completed run that finished before `watermark - overlap` has been handled, and
    `seen` holds the ids (with their finish) of the runs since then that have been."""

    watermark: str
    seen: dict[int, str] = field(default_factory=dict)

    def to_bytes(self) -> bytes:
        body = {"schema": CURSOR_SCHEMA, "watermark": self.watermark, "seen": {str(k): v for k, v in self.seen.items()}}
        return json.dumps(body, indent=1, sort_keys=True).encode()

    @classmethod
    def from_bytes(cls, data: bytes, where: str) -> Cursor:
        """Raises: ShadowCursorError naming the file, when it is not a cursor."""
        try:
            body = json.loads(data)
            if body["schema"] != CURSOR_SCHEMA:
                raise ValueError(f"schema {body['schema']!r}")
            watermark = event_time(datetime.fromisoformat(str(body["watermark"]).replace("Z", "+00:00")))
            return cls(watermark, {int(k): str(v) for k, v in dict(body["seen"]).items()})
        except (ValueError, KeyError, TypeError) as exc:
            raise ShadowCursorError(
                f"the polling cursor {where} is not one this toolkit wrote ({type(exc).__name__}: {exc}); move it "
                "aside and poll again with a start time (runs that finished after it are reported again, with the "
                "same event ids)"
            ) from None


class CursorFile:
    """The polling cursor of a tenant in its store, replaced only when unchanged since it was read."""

    def __init__(self, artifact_store_url: str, tenant: str, swap: SwapMode = "conditional") -> None:
        self.url = cursor_url(artifact_store_url, tenant)
        try:
            fs, path = open_url(self.url)
        except (ValueError, ImportError) as exc:
            raise ArtifactStoreError(
                f"artifact_store_url cannot hold the polling cursor {self.url}: {exc}; set [tenant] "
                "artifact_store_url to a folder or an fsspec URL"
            ) from None
        self._file: VersionedFile = versioned_file(fs, path, swap)

    def read(self) -> tuple[Cursor | None, str | None]:
        """The cursor (None before the first poll) and its version."""
        current = self._file.read()
        if current.data is None:
            return None, None
        return Cursor.from_bytes(current.data, self.url), current.version

    def replace(self, cursor: Cursor, expected: str | None) -> bool:
        """Write `cursor` if the file is still at version `expected`; False, writing nothing, otherwise."""
        return self._file.replace(cursor.to_bytes(), expected)


@dataclass(frozen=True)
class PollPlan:
    """What one poll found: the runs to report (oldest first), the cursor after them, and the version it replaces."""

    runs: list[RunCompleted]
    cursor: Cursor
    expected: str | None


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def plan_poll(
    client: DbtCloudClient,
    job_ids: Collection[int],
    cursor_file: CursorFile,
    *,
    start: datetime | None = None,
    overlap: timedelta = DEFAULT_OVERLAP,
) -> PollPlan:
    """List the completed runs of `job_ids` that the cursor has not seen (reads only; see the module).

    Args:
        start: on the first poll, report runs that finished at or after it (default: now, so only later runs).
        overlap: how far back of the watermark to list again.
    """
    cursor, version = cursor_file.read()
    first = cursor is None
    if cursor is None:
        cursor = Cursor(event_time(_utc(start) if start is not None else datetime.now(UTC)))
    watermark = datetime.fromisoformat(cursor.watermark.replace("Z", "+00:00"))
    floor = watermark - overlap
    jobs = set(job_ids)
    newest = watermark
    seen = dict(cursor.seen)
    found: list[RunCompleted] = []
    for run in client.iter_completed_runs(newest_first=True):
        if run.finished_at is None:
            continue
        finished = _utc(run.finished_at)
        if finished < floor:
            break
        newest = max(newest, finished.replace(microsecond=0))
        if run.job_definition_id not in jobs or run.id in seen:
            continue
        report = RunCompleted.from_run(run, client.account_id)
        seen[report.run_id] = report.finished_at
        if not (first and finished < watermark):
            found.append(report)
    keep_after = event_time(newest - overlap)
    moved = Cursor(event_time(newest), {k: v for k, v in seen.items() if v >= keep_after})
    found.sort(key=lambda report: (report.finished_at, report.run_id))
    return PollPlan(found, moved, version)


def send_poll(plan: PollPlan, prefect: PrefectGateway) -> None:
    """Send the plan's events; returns once the API accepted them."""
    prefect.emit_events([report.event() for report in plan.runs])


def commit_poll(plan: PollPlan, cursor_file: CursorFile) -> None:
    """Move the cursor past the plan's runs (after `send_poll`).

    Raises:
        ShadowCursorError: another poller moved the cursor since this one read it.
    """
    if not cursor_file.replace(plan.cursor, plan.expected):
        raise ShadowCursorError(
            f"another poller moved the polling cursor {cursor_file.url} while this one was sending; the runs this "
            "poll sent carry the same event ids as the other's, so none is counted twice. Run one polling "
            "deployment per tenant"
        )


def poll_completed_runs(
    client: DbtCloudClient,
    job_ids: Collection[int],
    cursor_file: CursorFile,
    prefect: PrefectGateway,
    *,
    start: datetime | None = None,
    overlap: timedelta = DEFAULT_OVERLAP,
) -> list[RunCompleted]:
    """One poll: list, send one event per new completed run of `job_ids`, then move the cursor.

    Returns:
        The runs reported, oldest first.

    Raises:
        ShadowCursorError: the cursor is unreadable, or another poller moved it meanwhile.
    """
    plan = plan_poll(client, job_ids, cursor_file, start=start, overlap=overlap)
    send_poll(plan, prefect)
    commit_poll(plan, cursor_file)
    return plan.runs
