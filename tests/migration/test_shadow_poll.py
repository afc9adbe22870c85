"""Polling completed dbt Cloud runs: the sandbox dbt Cloud server, the in-memory Prefect gateway, the cursor in a
local folder or on the S3 API. A restart neither misses nor repeats a run; a crash between sending and moving the
cursor sends the same events again, with the same ids, and the store keeps one per run."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dbt2prefect.prefect_gateway_memory import MemoryPrefect
from migration.dbt_cloud.client import DbtCloudClient
from migration.errors import ShadowCursorError
from migration.shadow_feed import RUN_COMPLETED_EVENT, run_event_id
from migration.shadow_poll import CursorFile, commit_poll, plan_poll, poll_completed_runs, send_poll
from sandbox.dbt_cloud import SandboxDbtCloud
from sandbox.dbt_cloud.clock import run_timestamp
from sandbox.s3_api import BUCKET

NIGHTLY, HOURLY, OTHER = 70403103936332, 70403103936340, 70403103936347
MIGRATED = (NIGHTLY, HOURLY)


@pytest.fixture
def client(cloud: SandboxDbtCloud) -> Iterator[DbtCloudClient]:
    with DbtCloudClient(cloud.url, cloud.account_id, cloud.token, page_size=2) as api:
        yield api


@pytest.fixture(params=["local", "s3"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "s3":
        request.getfixturevalue("s3_api")
        return f"s3://{BUCKET}/test-shadow/{tmp_path.name}"
    return str(tmp_path / "store")


def _finished(cloud: SandboxDbtCloud, job_id: int, status: int = 10, at: datetime | None = None) -> int:
    """A run of `job_id` that completed (now, or at `at`: a run whose finish shows up late)."""
    run = cloud.app.state.add_run_record(job_id, status)
    if at is not None:
        cloud.app.state.runs[run["id"]]["finished_at"] = run_timestamp(at)
    return int(run["id"])


def _stored_runs(prefect: MemoryPrefect) -> list[int]:
    return sorted(int(e.payload["run_id"]) for e in prefect.read_events(RUN_COMPLETED_EVENT))


def test_a_crash_between_sending_and_the_cursor_repeats_runs_with_their_ids_and_misses_none(
    cloud: SandboxDbtCloud, client: DbtCloudClient, store_url: str
) -> None:
    prefect = MemoryPrefect()
    start = datetime.now(UTC) - timedelta(minutes=5)
    before = _finished(cloud, NIGHTLY, at=start - timedelta(minutes=10))
    assert poll_completed_runs(client, MIGRATED, CursorFile(store_url, "t"), prefect, start=start) == []

    first, second = _finished(cloud, NIGHTLY), _finished(cloud, HOURLY, status=20)
    _finished(cloud, OTHER)
    plan = plan_poll(client, MIGRATED, CursorFile(store_url, "t"))
    send_poll(plan, prefect)  # ... and the poller dies before moving the cursor
    assert [r.run_id for r in plan.runs] == [first, second]

    third = _finished(cloud, NIGHTLY, status=30)
    restarted = CursorFile(store_url, "t")  # a new process reads the cursor from the store
    again = poll_completed_runs(client, MIGRATED, restarted, prefect)
    assert [r.run_id for r in again] == [first, second, third]
    assert [r.status for r in again] == ["success", "error", "cancelled"]
    assert again[:2] == plan.runs  # the repeats are the same reports, with the same event ids
    assert [r.event_id for r in again] == [run_event_id(cloud.account_id, run) for run in (first, second, third)]

    assert prefect.sent_events == 5  # two runs were sent twice ...
    assert _stored_runs(prefect) == [first, second, third]  # ... and are stored once each
    assert before not in _stored_runs(prefect)
    assert poll_completed_runs(client, MIGRATED, CursorFile(store_url, "t"), prefect) == []
    assert prefect.sent_events == 5


def test_a_run_whose_finish_shows_late_is_reported_within_the_overlap(
    cloud: SandboxDbtCloud, client: DbtCloudClient, tmp_path: Path
) -> None:
    prefect, cursor = MemoryPrefect(), CursorFile(str(tmp_path), "t")
    now = datetime.now(UTC)
    poll_completed_runs(client, MIGRATED, cursor, prefect, start=now - timedelta(minutes=1))
    _finished(cloud, NIGHTLY)  # moves the watermark to now
    poll_completed_runs(client, MIGRATED, cursor, prefect)
    late = _finished(cloud, HOURLY, at=now - timedelta(minutes=20))
    too_late = _finished(cloud, HOURLY, at=now - timedelta(hours=3))
    reported = poll_completed_runs(client, MIGRATED, cursor, prefect, overlap=timedelta(hours=1))
    assert [r.run_id for r in reported] == [late]
    assert too_late not in _stored_runs(prefect)  # older than the overlap: the documented limit


def test_a_second_poller_cannot_move_the_cursor_the_first_moved(
    cloud: SandboxDbtCloud, client: DbtCloudClient, store_url: str
) -> None:
    prefect = MemoryPrefect()
    poll_completed_runs(client, MIGRATED, CursorFile(store_url, "t"), prefect, start=datetime.now(UTC))
    run = _finished(cloud, NIGHTLY)
    one, two = (plan_poll(client, MIGRATED, CursorFile(store_url, "t")) for _ in range(2))
    for plan in (one, two):
        send_poll(plan, prefect)
    commit_poll(one, CursorFile(store_url, "t"))
    with pytest.raises(ShadowCursorError, match="another poller moved the polling cursor"):
        commit_poll(two, CursorFile(store_url, "t"))
    assert _stored_runs(prefect) == [run]


def test_a_damaged_cursor_is_a_clear_error_naming_it(client: DbtCloudClient, tmp_path: Path) -> None:
    cursor = CursorFile(str(tmp_path), "t")
    path = tmp_path / "t" / "shadow" / "cursor.json"
    path.parent.mkdir(parents=True)
    path.write_text('{"watermark": "yesterday"}')
    with pytest.raises(ShadowCursorError, match=r"cursor\.json is not one this toolkit wrote.*move it aside"):
        plan_poll(client, MIGRATED, cursor)
