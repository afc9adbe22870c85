"""The sandbox's S3 API: reached by address and credentials from the environment only, as S3 is in production."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import boto3
import fsspec
import pytest
from botocore.exceptions import ClientError
from s3fs import S3FileSystem

from dbt2prefect.artifact_store import ArtifactStore, RunKey, WriterRecord
from migration.ledger import Ledger, LedgerRecord, LedgerState, RecordKind, Verification
from sandbox.s3_api import BUCKET, S3Api


def test_fsspec_reaches_it_through_the_environment_alone(s3_api: S3Api) -> None:
    fs, path = fsspec.core.url_to_fs(f"s3://{BUCKET}/test-s3-api/one.json")
    fs.pipe_file(path, b'{"a": 1}')

    assert fs.cat_file(path) == b'{"a": 1}'
    assert s3_api.endpoint_url.startswith("http://127.0.0.1:")


def test_it_refuses_a_conditional_write_whose_condition_fails(s3_api: S3Api) -> None:
    client = boto3.client("s3")
    client.put_object(Bucket=BUCKET, Key="test-s3-api/cas.json", Body=b"1")

    with pytest.raises(ClientError, match="PreconditionFailed"):
        client.put_object(Bucket=BUCKET, Key="test-s3-api/cas.json", Body=b"2", IfNoneMatch="*")
    assert client.get_object(Bucket=BUCKET, Key="test-s3-api/cas.json")["Body"].read() == b"1"


def _separate_stores(url: str) -> tuple[ArtifactStore, ArtifactStore]:
    """Two stores on one URL with file system instances of their own, as two processes have."""
    writer = ArtifactStore(url)
    S3FileSystem.clear_instance_cache()
    reader = ArtifactStore(url)
    assert writer._fs is not reader._fs
    return writer, reader


def test_a_reader_sees_every_update_another_writer_makes(s3_api: S3Api) -> None:
    writer, reader = _separate_stores(f"s3://{BUCKET}/test-s3-api/store")
    first, second = (RunKey("t", "d", "prod", run_id) for run_id in ("run-1", "run-2"))
    started = datetime(2026, 3, 1, tzinfo=UTC)

    for key in (first, second):
        writer.mark_latest(key)
        writer.mark_job_run(key, 7)
        writer.record_writer(key, WriterRecord(key.flow_run_id, started, started + timedelta(hours=1)))
        # The reader listed and read the target's folder before this update: it must see the update all the same.
        assert reader.latest("t", "d", "prod") == key
        assert reader.job_run("t", "d", "prod", 7) == key
        assert reader.writers("t", "d", "prod")[-1].flow_run_id == key.flow_run_id
    assert [w.flow_run_id for w in reader.writers("t", "d", "prod")] == ["run-1", "run-2"]


def test_a_ledger_reader_sees_the_records_another_writer_appends(s3_api: S3Api) -> None:
    url = f"s3://{BUCKET}/test-s3-api/ledger"
    writer = Ledger(url, "t")
    S3FileSystem.clear_instance_cache()
    reader = Ledger(url, "t")
    assert reader.state(7) is LedgerState.NONE and reader.job_ids() == []

    writer.append(_ledger_record(RecordKind.CUTOVER_STARTED))
    assert reader.state(7) is LedgerState.CUTOVER_IN_PROGRESS and reader.job_ids() == [7]
    writer.append(_ledger_record(RecordKind.CUTOVER_VERIFIED, ok=True))
    assert reader.state(7) is LedgerState.CUT_OVER


def _ledger_record(kind: RecordKind, ok: bool | None = None) -> LedgerRecord:
    verification = None if ok is None else Verification(ok=ok, dbt_cloud_schedule_on=False, prefect_active=True)
    original = {"id": 7, "name": "Nightly", "triggers": {"schedule": True}} if kind.endswith("started") else None
    return LedgerRecord(
        tenant="t",
        job_id=7,
        seq=0,
        kind=kind,
        operation="cutover-x",
        at=datetime(2026, 3, 1, tzinfo=UTC),
        by="me",
        original_job=original,
        verification=verification,
    )
