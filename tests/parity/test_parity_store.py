"""latest.json, which cutover trusts, is written by compare-and-swap: a newer verdict is never lost to a race.

Each case runs on a local folder and on the S3 API on loopback, with conditional writes (S3 If-Match) and with a
lock object (S3-compatible stores without If-Match): operators, CI and the parity flow's container share only the
store.
"""

from __future__ import annotations

import json
import multiprocessing
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from dbt2prefect.errors import ArtifactStoreError
from dbt2prefect.object_store import LockedFile, open_url, versioned_file
from parity.model import JobParity, ParityReport, RunRef, Verdict
from parity.store import ReportRoot, load_latest_verdicts, write_report
from sandbox.s3_api import BUCKET

ROOTS = ["local", "s3-conditional", "s3-lock"]


@pytest.fixture(params=ROOTS)
def root(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A report root: `<url>|<swap mode>`."""
    if request.param == "local":
        return f"{tmp_path}|conditional"
    request.getfixturevalue("s3_api")
    url = f"s3://{BUCKET}/test-parity-store/{tmp_path.name}"
    return f"{url}|{request.param.removeprefix('s3-')}"


def _root(spec: str) -> ReportRoot:
    url, _, swap = spec.partition("|")
    return ReportRoot(url, "lock" if swap == "lock" else "conditional")


SHARED_JOB = 1
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _report(jobs: dict[int, Verdict], created_at: datetime) -> ParityReport:
    ref = RunRef(system="files", run_id="r")
    parities = [JobParity(job_id=j, verdict=v, baseline=ref, candidate=ref) for j, v in jobs.items()]
    return ParityReport.from_jobs("t", parities).model_copy(update={"created_at": created_at})


def test_an_older_report_written_last_does_not_replace_a_newer_verdict(root: str) -> None:
    write_report(_report({SHARED_JOB: Verdict.FAIL}, T0 + timedelta(seconds=2)), _root(root))
    write_report(_report({SHARED_JOB: Verdict.PASS, 2: Verdict.PASS}, T0 + timedelta(seconds=1)), _root(root))
    verdicts = load_latest_verdicts(_root(root))
    assert verdicts[SHARED_JOB] == (Verdict.FAIL, T0 + timedelta(seconds=2))
    assert verdicts[2] == (Verdict.PASS, T0 + timedelta(seconds=1))  # its only verdict is kept


def _writer(root: str, writer: int, reports: int, start: float) -> None:
    while time.time() < start:  # all writers begin together
        time.sleep(0.001)
    for index in range(reports):
        # Each report covers the shared job and one job of its own; the newest report's shared verdict is FAIL.
        created = T0 + timedelta(seconds=index * 100 + writer)
        shared = Verdict.FAIL if (writer, index) == (0, reports - 1) else Verdict.PASS
        write_report(_report({SHARED_JOB: shared, 1000 + writer * 100 + index: Verdict.PASS}, created), _root(root))


@pytest.mark.parametrize("kind", [pytest.param("processes", marks=pytest.mark.e2e), "threads"])
def test_reports_written_at_once_by_several_writers_lose_no_verdict(root: str, kind: str) -> None:
    writers, reports = 4, 6
    start = time.time() + 1.0
    # Separate processes are separate machines: each starts its own (spawned) interpreter and S3 client.
    make: Any = multiprocessing.get_context("spawn").Process if kind == "processes" else threading.Thread
    workers = [make(target=_writer, args=(root, w, reports, start)) for w in range(writers)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    verdicts = load_latest_verdicts(_root(root))
    own = {1000 + w * 100 + i for w in range(writers) for i in range(reports)}
    assert own <= set(verdicts), f"lost: {sorted(own - set(verdicts))}"
    # The newest report covering the shared job is writer 3's last (created latest); the FAIL of writer 0's
    # last report is older than it, so the shared job's verdict is that of the newest report: PASS at its time.
    newest = T0 + timedelta(seconds=(reports - 1) * 100 + writers - 1)
    assert verdicts[SHARED_JOB] == (Verdict.PASS, newest)
    store = _root(root)
    assert not store.fs.exists(store.path("latest.json.lock"))


def test_a_swap_fails_when_the_file_changed_since_it_was_read(root: str) -> None:
    store = _root(root)
    pointer = versioned_file(store.fs, store.path("latest.json"), store.swap)
    assert pointer.replace(b"{}", None) is True
    first = pointer.read()
    assert pointer.replace(b'{"a": 1}', None) is False  # it exists now: a create-only write fails
    assert pointer.replace(b'{"a": 1}', first.version) is True
    assert pointer.replace(b'{"a": 2}', first.version) is False  # stale version: nothing written
    assert pointer.read().data == b'{"a": 1}'


@pytest.mark.parametrize("where", ["local", "s3"])
def test_a_lock_left_by_a_dead_writer_expires_and_a_live_one_is_waited_for(
    where: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if where == "s3":
        request.getfixturevalue("s3_api")
    fs, base = open_url(str(tmp_path) if where == "local" else f"s3://{BUCKET}/test-parity-lock/{tmp_path.name}")
    pointer = LockedFile(fs, f"{base}/latest.json", expiry=30, wait=0.2)
    lock = f"{base}/latest.json.lock"
    fs.pipe_file(lock, json.dumps({"at": time.time(), "pid": 4242}).encode())
    with pytest.raises(ArtifactStoreError, match=r"latest\.json\.lock"):
        pointer.replace(b"{}", None)
    fs.pipe_file(lock, json.dumps({"at": time.time() - 60, "pid": 4242}).encode())
    assert pointer.replace(b"{}", None) is True
    assert not fs.exists(lock)
