"""latest.json, which cutover trusts, is written by compare-and-swap: a newer verdict is never lost to a race."""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from parity.model import JobParity, ParityReport, RunRef, Verdict
from parity.store import LocalVersionedFile, ReportStoreError, load_latest_verdicts, write_report

SHARED_JOB = 1
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _report(jobs: dict[int, Verdict], created_at: datetime) -> ParityReport:
    ref = RunRef(system="files", run_id="r")
    parities = [JobParity(job_id=j, verdict=v, baseline=ref, candidate=ref) for j, v in jobs.items()]
    return ParityReport.from_jobs("t", parities).model_copy(update={"created_at": created_at})


def test_an_older_report_written_last_does_not_replace_a_newer_verdict(tmp_path: Path) -> None:
    write_report(_report({SHARED_JOB: Verdict.FAIL}, T0 + timedelta(seconds=2)), tmp_path)
    write_report(_report({SHARED_JOB: Verdict.PASS, 2: Verdict.PASS}, T0 + timedelta(seconds=1)), tmp_path)
    verdicts = load_latest_verdicts(tmp_path)
    assert verdicts[SHARED_JOB] == (Verdict.FAIL, T0 + timedelta(seconds=2))
    assert verdicts[2] == (Verdict.PASS, T0 + timedelta(seconds=1))  # its only verdict is kept


def _writer(root: str, writer: int, reports: int, start: float) -> None:
    while time.time() < start:  # all writers begin together
        time.sleep(0.001)
    for index in range(reports):
        # Each report covers the shared job and one job of its own; the newest report's shared verdict is FAIL.
        created = T0 + timedelta(seconds=index * 100 + writer)
        shared = Verdict.FAIL if (writer, index) == (0, reports - 1) else Verdict.PASS
        write_report(_report({SHARED_JOB: shared, 1000 + writer * 100 + index: Verdict.PASS}, created), Path(root))


@pytest.mark.parametrize("kind", ["processes", "threads"])
def test_reports_written_at_once_by_several_writers_lose_no_verdict(tmp_path: Path, kind: str) -> None:
    writers, reports = 4, 6
    start = time.time() + 0.5
    make: Any = multiprocessing.get_context("fork").Process if kind == "processes" else threading.Thread
    workers = [make(target=_writer, args=(str(tmp_path), w, reports, start)) for w in range(writers)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    verdicts = load_latest_verdicts(tmp_path)
    own = {1000 + w * 100 + i for w in range(writers) for i in range(reports)}
    assert own <= set(verdicts), f"lost: {sorted(own - set(verdicts))}"
    # The newest report covering the shared job is writer 3's last (created latest); the FAIL of writer 0's
    # last report is older than it, so the shared job's verdict is that of the newest report: PASS at its time.
    newest = T0 + timedelta(seconds=(reports - 1) * 100 + writers - 1)
    assert verdicts[SHARED_JOB] == (Verdict.PASS, newest)
    assert not (tmp_path / "latest.json.lock").exists()


def test_a_swap_fails_when_the_file_changed_since_it_was_read(tmp_path: Path) -> None:
    pointer = LocalVersionedFile(tmp_path / "latest.json")
    assert pointer.replace(b"{}", None) is True
    first = pointer.read()
    assert pointer.replace(b'{"a": 1}', None) is False  # it exists now: a create-only write fails
    assert pointer.replace(b'{"a": 1}', first.version) is True
    assert pointer.replace(b'{"a": 2}', first.version) is False  # stale version: nothing written
    assert pointer.read().data == b'{"a": 1}'


def test_a_lock_left_by_a_dead_writer_expires_and_a_live_one_is_waited_for(tmp_path: Path) -> None:
    pointer = LocalVersionedFile(tmp_path / "latest.json", expiry=30, wait=0.2)
    pointer.lock.write_text("4242")
    with pytest.raises(ReportStoreError, match=r"latest\.json\.lock"):
        pointer.replace(b"{}", None)
    old = time.time() - 60
    os.utime(pointer.lock, (old, old))
    assert pointer.replace(b"{}", None) is True
    assert not pointer.lock.exists()
