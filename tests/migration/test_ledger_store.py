"""The cutover ledger on its own: append-only records, whole files only, state per job, fsspec URLs."""

from __future__ import annotations

import json
import multiprocessing
import time
from datetime import UTC, datetime
from pathlib import Path

import fsspec
import pytest

from migration.errors import LedgerDamagedError, LedgerError
from migration.ledger import Ledger, LedgerRecord, LedgerState, RecordKind, Verification
from sandbox.s3_api import BUCKET, S3Api

AT = datetime(2026, 3, 1, 6, 0, tzinfo=UTC)


def record(kind: RecordKind, job_id: int = 7, ok: bool | None = None) -> LedgerRecord:
    verification = None if ok is None else Verification(ok=ok, dbt_cloud_schedule_on=False, prefect_active=True)
    original = {"id": job_id, "name": "Nightly", "triggers": {"schedule": True}} if kind.endswith("started") else None
    return LedgerRecord(
        tenant="t",
        job_id=job_id,
        seq=0,
        kind=kind,
        operation="cutover-x",
        at=AT,
        by="me",
        original_job=original,
        verification=verification,
    )


def test_records_get_consecutive_files_and_round_trip(tmp_path: Path) -> None:
    ledger = Ledger(str(tmp_path), "t")
    first = ledger.append(record(RecordKind.CUTOVER_STARTED))
    second = ledger.append(record(RecordKind.CUTOVER_VERIFIED, ok=True))
    assert (first.seq, second.seq) == (1, 2)
    files = sorted(p.name for p in (tmp_path / "t" / "job-7").iterdir() if not p.name.startswith("."))
    assert files == ["000001-cutover_started.json", "000002-cutover_verified.json"]
    assert ledger.records(7) == [first, second]
    assert json.loads((tmp_path / "t" / "job-7" / files[0]).read_text())["original_job"]["name"] == "Nightly"
    assert ledger.job_ids() == [7]


def test_an_existing_entry_is_never_overwritten(tmp_path: Path) -> None:
    ledger = Ledger(str(tmp_path), "t")
    ledger.append(record(RecordKind.CUTOVER_STARTED))
    # Another writer takes seq 2 between our read and our write: simulate it by racing the name.
    racing = tmp_path / "t" / "job-7" / "000002-cutover_verified.json"
    read_records = ledger.records

    def stale_records(job_id: int) -> list[LedgerRecord]:
        seen = read_records(job_id)
        racing.write_text("other writer")
        return seen

    ledger.records = stale_records  # type: ignore[method-assign]
    with pytest.raises(LedgerError, match="already exists: another cutover or rollback"):
        ledger.append(record(RecordKind.CUTOVER_VERIFIED, ok=True))
    assert racing.read_text() == "other writer"
    assert not [p for p in racing.parent.iterdir() if p.name.endswith(".tmp")]


def test_two_writers_of_different_kinds_never_share_a_sequence_number(tmp_path: Path) -> None:
    """Record names carry their kind: without the claim, a rollback and a cutover could both be record 2."""
    ours, theirs = Ledger(str(tmp_path), "t"), Ledger(str(tmp_path), "t")
    ours.append(record(RecordKind.CUTOVER_STARTED))
    read_records = ours.records

    def stale_records(job_id: int) -> list[LedgerRecord]:
        seen = read_records(job_id)
        theirs.append(record(RecordKind.CUTOVER_VERIFIED, ok=True))  # lands between our read and our write
        return seen

    ours.records = stale_records  # type: ignore[method-assign]
    with pytest.raises(LedgerError, match="another cutover or rollback of job 7 is running"):
        ours.append(record(RecordKind.ROLLBACK_STARTED))
    assert [(r.seq, r.kind) for r in theirs.records(7)] == [
        (1, RecordKind.CUTOVER_STARTED),
        (2, RecordKind.CUTOVER_VERIFIED),
    ]


def test_a_claim_left_by_a_writer_that_died_is_skipped(tmp_path: Path) -> None:
    ledger = Ledger(str(tmp_path), "t")
    ledger.append(record(RecordKind.CUTOVER_STARTED))
    folder = tmp_path / "t" / "job-7"
    (folder / ".claim-000002").write_text(json.dumps({"at": "2020-01-01T00:00:00+00:00"}))
    assert ledger.append(record(RecordKind.CUTOVER_VERIFIED, ok=True)).seq == 3
    (folder / ".claim-000004").write_text(json.dumps({"at": datetime.now(UTC).isoformat()}))
    with pytest.raises(LedgerError, match="is running; wait for it and rerun"):
        ledger.append(record(RecordKind.ROLLBACK_STARTED))


def test_temporary_files_of_an_interrupted_write_are_ignored(tmp_path: Path) -> None:
    ledger = Ledger(str(tmp_path), "t")
    ledger.append(record(RecordKind.CUTOVER_STARTED))
    (tmp_path / "t" / "job-7" / ".000002-cutover_verified.json.abc.tmp").write_text('{"half')
    assert [r.seq for r in ledger.records(7)] == [1]
    assert ledger.append(record(RecordKind.CUTOVER_VERIFIED, ok=True)).seq == 2


def test_a_damaged_record_is_a_clear_error(tmp_path: Path) -> None:
    ledger = Ledger(str(tmp_path), "t")
    ledger.append(record(RecordKind.CUTOVER_STARTED))
    (tmp_path / "t" / "job-7" / "000001-cutover_started.json").write_text("{not json")
    with pytest.raises(
        LedgerDamagedError, match=r"^restore the ledger: .*000001-cutover_started.json is unreadable"
    ) as caught:
        ledger.records(7)
    assert caught.value.exit_code == 2  # not 3: rerunning cannot help, a person restores the file


@pytest.mark.parametrize(
    ("kinds", "state"),
    [
        ([], LedgerState.NONE),
        ([(RecordKind.CUTOVER_STARTED, None)], LedgerState.CUTOVER_IN_PROGRESS),
        ([(RecordKind.CUTOVER_STARTED, None), (RecordKind.CUTOVER_VERIFIED, True)], LedgerState.CUT_OVER),
        ([(RecordKind.CUTOVER_STARTED, None), (RecordKind.CUTOVER_VERIFIED, False)], LedgerState.CUTOVER_IN_PROGRESS),
        ([(RecordKind.CUTOVER_STARTED, None), (RecordKind.ROLLBACK_STARTED, None)], LedgerState.ROLLBACK_IN_PROGRESS),
        (
            [
                (RecordKind.CUTOVER_STARTED, None),
                (RecordKind.ROLLBACK_STARTED, None),
                (RecordKind.ROLLBACK_VERIFIED, True),
            ],
            LedgerState.ROLLED_BACK,
        ),
    ],
)
def test_state_follows_the_last_record(
    tmp_path: Path, kinds: list[tuple[RecordKind, bool | None]], state: LedgerState
) -> None:
    ledger = Ledger(str(tmp_path), "t")
    for kind, ok in kinds:
        ledger.append(record(kind, ok=ok))
    assert ledger.state(7) == state


def test_fsspec_urls_work(tmp_path: Path) -> None:
    ledger = Ledger(f"file://{tmp_path}/ledger", "t")
    ledger.append(record(RecordKind.CUTOVER_STARTED, job_id=9))
    ledger.append(record(RecordKind.CUTOVER_VERIFIED, job_id=9, ok=True))
    assert [r.kind for r in ledger.records(9)] == [RecordKind.CUTOVER_STARTED, RecordKind.CUTOVER_VERIFIED]
    assert ledger.state(9) == LedgerState.CUT_OVER


@pytest.mark.parametrize("url", ["memory://ledger-test", "simplecache::s3://bucket/ledger", "http://host/ledger"])
def test_a_ledger_that_would_not_outlive_the_process_is_refused(url: str) -> None:
    with pytest.raises(LedgerError, match="does not keep what is written"):
        Ledger(url, "t")


def test_unusable_url_names_the_setting() -> None:
    with pytest.raises(LedgerError, match="set `ledger_url`"):
        Ledger("nosuchprotocol://x", "t")


def _append_many(url: str, writer: int, count: int, start: float) -> None:
    ledger = Ledger(url, "t")
    while time.time() < start:
        time.sleep(0.001)
    written = 0
    while written < count:
        try:
            ledger.append(record(RecordKind.CUTOVER_STARTED).model_copy(update={"by": f"writer-{writer}"}))
            written += 1
        except LedgerError:
            time.sleep(0.01)  # another writer holds the number: what an operator does on "wait and rerun"


@pytest.mark.e2e  # spawned interpreters
@pytest.mark.parametrize("where", ["local", "s3"])
def test_writers_on_two_machines_lose_no_record(where: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """Two processes (each its own interpreter and S3 client, as two operators' laptops) append to one job."""
    if where == "s3":
        request.getfixturevalue("s3_api")
    url = str(tmp_path) if where == "local" else f"s3://{BUCKET}/test-ledger/{tmp_path.name}"
    start, count = time.time() + 1.0, 4
    spawn = multiprocessing.get_context("spawn")
    writers = [spawn.Process(target=_append_many, args=(url, w, count, start)) for w in range(2)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(timeout=120)
    records = Ledger(url, "t").records(7)
    assert sorted(r.by for r in records) == ["writer-0"] * count + ["writer-1"] * count
    assert [r.seq for r in records] == sorted({r.seq for r in records})  # one record per number


def test_a_record_written_on_another_machine_is_seen_at_once(s3_api: S3Api, tmp_path: Path) -> None:
    """s3fs caches listings per client: the ledger lists afresh, or it would miss the other machine's record."""
    url = f"s3://{BUCKET}/test-ledger-fresh/{tmp_path.name}"
    ledger = Ledger(url, "t")
    assert ledger.records(7) == []  # the empty listing a cache would keep
    other = fsspec.filesystem("s3", skip_instance_cache=True)
    stored = record(RecordKind.CUTOVER_STARTED).model_copy(update={"seq": 1})
    other.pipe_file(f"{url.removeprefix('s3://')}/t/job-7/{stored.file_name}", stored.model_dump_json().encode())
    assert ledger.records(7) == [stored]
    assert ledger.state(7) == LedgerState.CUTOVER_IN_PROGRESS
