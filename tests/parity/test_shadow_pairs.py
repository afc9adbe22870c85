"""Shadow pair records and readiness, on a local folder and on the S3 API on loopback.

A pair is recorded once per dbt Cloud run (create-only); readiness counts the streak of consecutive PASS pairs in
the order of the dbt Cloud runs' finish times, however the records were written, and the days that streak covers.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from dbt2prefect.errors import ConfigError
from dbt2prefect.tenant import REPO_ROOT, ShadowSettings, load_tenant
from parity.model import Check, Finding, JobParity, ParityReport, RunRef, Severity, Verdict
from parity.shadow import (
    INDEX,
    PairIndex,
    ShadowGate,
    ShadowPair,
    ShadowStore,
    compared_pair,
    readiness,
    readiness_html,
    readiness_markdown,
)
from parity.store import ReportRoot, ReportStoreError
from sandbox.s3_api import BUCKET

JOB = 70403103936332
T0 = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ShadowStore:
    if request.param == "local":
        return ShadowStore(ReportRoot(tmp_path / "parity"))
    request.getfixturevalue("s3_api")
    return ShadowStore(ReportRoot(f"s3://{BUCKET}/test-shadow/{tmp_path.name}"))


def pair(run_id: int, verdict: Verdict, hours: float, *, minutes: float = 10, reason: str = "") -> ShadowPair:
    """A pair whose dbt Cloud run finished `hours` after T0 and whose twin ran `minutes`."""
    finished = T0 + timedelta(hours=hours)
    job = JobParity(
        job_id=JOB,
        job_name="Nightly | build",
        verdict=verdict,
        baseline=RunRef(system="dbt_cloud", run_id=str(run_id), finished_at=finished),
        candidate=RunRef(
            system="prefect",
            run_id=str(uuid.uuid4()),
            started_at=finished,
            finished_at=finished + timedelta(minutes=minutes),
        ),
        findings=[
            Finding(check=Check.ROW_COUNTS, reason=reason, severity=Severity.ERROR, subject="fct_orders", message="x")
        ]
        if reason
        else [],
    )
    return compared_pair(
        "dbt_williamgrant",
        job,
        dbt_cloud_run_id=run_id,
        dbt_cloud_started_at=finished - timedelta(minutes=12),
        dbt_cloud_finished_at=finished,
        report=None,
        compared_at=finished + timedelta(minutes=minutes + 1),
    )


SETTINGS = ShadowSettings(required_passes=3, required_days=1)


def test_a_pair_is_recorded_once_and_read_back(store: ShadowStore) -> None:
    first = pair(101, Verdict.PASS, 0)
    assert store.get(JOB, 101) is None
    assert store.record(first) is True
    again = first.model_copy(update={"prefect_run_id": str(uuid.uuid4()), "verdict": Verdict.FAIL})
    assert store.record(again) is False  # a second twin of the same dbt Cloud run: the first record stays
    assert store.get(JOB, 101) == first
    assert store.pairs(JOB) == [first] and store.job_ids() == [JOB]
    assert first.warehouse_seconds == 600.0


def test_the_pairs_report_is_written_beside_its_record(store: ShadowStore) -> None:
    first = pair(101, Verdict.PASS, 0)
    report = ParityReport.from_jobs("dbt_williamgrant", [])
    where = store.write_report(report, JOB, 101, first.prefect_run_id)
    assert where.endswith(f"shadow/{JOB}/101/{first.prefect_run_id}/report.json")
    assert store.record(first.model_copy(update={"report": where}))
    assert store.pairs(JOB)[0].report == where  # the report folder is not mistaken for a record
    text = store.root.read_bytes(f"shadow/{JOB}/101/{first.prefect_run_id}/report.md").decode()
    assert text.startswith("# Parity dbt_williamgrant")


def test_three_pass_pairs_over_a_day_are_ready(store: ShadowStore) -> None:
    # Written out of order: readiness orders by the dbt Cloud runs' finish times.
    for record in (pair(103, Verdict.PASS, 24), pair(101, Verdict.PASS, 0), pair(102, Verdict.PASS, 12)):
        store.record(record)
    ready = readiness(JOB, store.pairs(JOB), SETTINGS)
    assert (ready.streak, ready.streak_days, ready.pairs, ready.ready) == (3, 1.0, 3, True)
    assert ready.missing() is None and ready.summary() == "3/3 PASS, 1/1 days"
    assert ready.streak_since is not None and ready.streak_since.dbt_cloud_run_id == 101
    assert [point.streak for point in ready.history] == [1, 2, 3]


def test_a_fail_pair_resets_the_streak_and_names_why(store: ShadowStore) -> None:
    for record in (
        pair(101, Verdict.PASS, 0),
        pair(102, Verdict.PASS, 12),
        pair(103, Verdict.FAIL, 24, reason="row_count_differs"),
        pair(104, Verdict.PASS, 36),
    ):
        store.record(record)
    ready = readiness(JOB, store.pairs(JOB), SETTINGS)
    assert (ready.streak, ready.passes, ready.pairs, ready.ready) == (1, 3, 4, False)
    assert ready.last_fail is not None and ready.last_fail.dbt_cloud_run_id == 103
    missing = ready.missing()
    assert missing is not None
    assert "shadow streak 1 of 3 consecutive PASS pairs" in missing and "since dbt Cloud run 104" in missing
    assert "needs 2 more consecutive PASS pair(s) and the streak to cover 1 more day(s)" in missing
    assert "last FAIL: dbt Cloud run 103 (2026-12-02 02:00 UTC): row_count_differs (fct_orders): x" in missing


def test_enough_passes_in_too_short_a_time_are_not_ready() -> None:
    pairs = [pair(100 + n, Verdict.PASS, n) for n in range(5)]  # hourly: five passes over four hours
    ready = readiness(JOB, pairs, SETTINGS)
    assert (ready.streak, ready.ready) == (5, False)
    assert ready.missing() == (
        "shadow streak 5 of 3 consecutive PASS pairs over 0.2 of 1 days since dbt Cloud run 100 (2026-12-01 02:00); "
        "needs the streak to cover 0.8 more day(s)"
    )
    assert readiness(JOB, pairs, ShadowSettings(required_passes=3, required_days=0)).ready


def test_extra_warehouse_time_per_job_and_day() -> None:
    pairs = [pair(101, Verdict.PASS, 0, minutes=10), pair(102, Verdict.PASS, 12, minutes=20)]
    pairs.append(pair(103, Verdict.FAIL, 24, minutes=30, reason="values_differ"))
    ready = readiness(JOB, pairs, SETTINGS)
    assert ready.warehouse_seconds == 3600.0
    assert ready.warehouse_seconds_by_day == {"2026-12-01": 1800.0, "2026-12-02": 1800.0}
    markdown = readiness_markdown([ready])
    assert f"| {JOB} Nightly \\| build | 0/3 | 0/1 | no | 2 PASS of 3 |" in markdown
    assert "| 2026-12-02 | 0.50 h |" in markdown
    page = readiness_html([ready])
    assert page.count("<rect ") == 3 and "Nightly | build: 0/3 PASS, 0/1 days, not ready" in page
    assert "dbt Cloud run 103 2026-12-02 02:00: FAIL, streak 0" in page and "<script" not in page


def test_the_gate_applies_to_jobs_with_pairs_or_when_required() -> None:
    other = 70403103936340
    with_pairs = {JOB: readiness(JOB, [pair(101, Verdict.PASS, 0)], SETTINGS)}
    gate = ShadowGate(SETTINGS, with_pairs)
    assert gate.applies(JOB) and not gate.applies(other)
    assert (gate.problem(JOB) or "").startswith("shadow streak 1 of 3")
    required = ShadowGate(SETTINGS.model_copy(update={"required": True, "jobs": (JOB, other)}), with_pairs)
    assert required.applies(other) and not required.applies(70403103936373)  # not in jobs
    assert "has no shadow pair yet" in (required.problem(other) or "")


def test_an_unreadable_record_is_named(tmp_path: Path) -> None:
    store = ShadowStore(ReportRoot(tmp_path))
    (tmp_path / "shadow" / str(JOB)).mkdir(parents=True)
    (tmp_path / "shadow" / str(JOB) / "101.json").write_text("{not json")
    with pytest.raises(ReportStoreError, match=rf"shadow/{JOB}/101.json is unreadable"):
        store.pairs(JOB)


class CountingFs:
    """The store's file system, counting the requests that read: listings, single objects (`cat_file`), objects
    fetched in a batch (`cat`, one per path) and metadata (`info`)."""

    def __init__(self, fs: Any) -> None:
        self.fs = fs
        self.reads: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.fs, name)

    def ls(self, path: str, **kwargs: Any) -> Any:
        self.reads["list"] += 1
        return self.fs.ls(path, **kwargs)

    def cat_file(self, path: str, **kwargs: Any) -> Any:
        self.reads["object"] += 1
        return self.fs.cat_file(path, **kwargs)

    def cat(self, paths: Any, **kwargs: Any) -> Any:
        self.reads["record"] += len(paths) if isinstance(paths, list) else 1
        return self.fs.cat(paths, **kwargs)

    def info(self, path: str, **kwargs: Any) -> Any:
        self.reads["info"] += 1
        return self.fs.info(path, **kwargs)


def _counted(store: ShadowStore) -> CountingFs:
    counting = CountingFs(store.root.fs)
    store.root.fs = counting
    return counting


def _read_counted(store: ShadowStore, counting: CountingFs) -> tuple[list[ShadowPair], Counter[str]]:
    counting.reads.clear()
    pairs = store.pairs(JOB)
    return pairs, Counter(counting.reads)


def _index(store: ShadowStore) -> dict[int, ShadowPair]:
    data = store.root.read_bytes(f"shadow/{JOB}/{INDEX}")
    return {run_id: record.pair for run_id, record in PairIndex.model_validate_json(data).records.items()}


def _history(n: int) -> list[ShadowPair]:
    """n hourly pairs, every seventh a FAIL."""
    return [
        pair(
            1000 + i, Verdict.FAIL if i % 7 == 3 else Verdict.PASS, i, reason="row_count_differs" if i % 7 == 3 else ""
        )
        for i in range(n)
    ]


def test_readiness_reads_the_index_not_every_record_with_the_same_result(store: ShadowStore) -> None:
    """N pairs: without the index, readiness reads each record (N objects); with it, one listing and one object."""
    n = 40
    history = _history(n)
    for record in reversed(history):
        store.record(record)
    counting = _counted(store)
    indexed, reads = _read_counted(store, counting)
    assert indexed == history and reads == {"list": 1, "object": 1}
    store.root.fs.rm_file(store.root.path(f"shadow/{JOB}/{INDEX}"))
    rebuilt, reads = _read_counted(store, counting)
    assert rebuilt == history and reads["list"] == 1 and reads["record"] == n  # every record, as before the index
    assert readiness(JOB, rebuilt, SETTINGS) == readiness(JOB, indexed, SETTINGS)
    ready = readiness(JOB, indexed, SETTINGS)
    assert (ready.pairs, ready.streak) == (n, 1) and ready.last_fail == history[38]
    again, reads = _read_counted(store, counting)  # the read that rebuilt the index wrote it
    assert again == history and reads == {"list": 1, "object": 1}


def test_a_damaged_or_incomplete_index_is_rebuilt_from_the_records(store: ShadowStore) -> None:
    history = _history(5)
    for record in history[:3]:
        store.record(record)
    index_path = store.root.path(f"shadow/{JOB}/{INDEX}")
    store.root.fs.pipe_file(index_path, b'{"version": 1, "records": {"1000": {"size": "')
    assert store.pairs(JOB) == history[:3] and set(_index(store)) == {1000, 1001, 1002}
    # A record written without its index update (its writer stopped in between) is read, then indexed.
    fourth = history[3].model_dump_json(indent=2).encode()
    store.root.fs.pipe_file(store.root.path(f"shadow/{JOB}/1003.json"), fourth)
    assert store.pairs(JOB) == history[:4] and set(_index(store)) == {1000, 1001, 1002, 1003}
    # A record deleted and compared again: its new content is read (the listed size differs), the old is gone.
    store.root.fs.rm_file(store.root.path(f"shadow/{JOB}/1001.json"))
    assert store.pairs(JOB) == [history[0], history[2], history[3]]  # a deleted record is not read from the index
    redone = history[1].model_copy(update={"verdict": Verdict.FAIL, "reasons": history[3].reasons})
    assert store.record(redone)
    assert store.pairs(JOB) == [history[0], redone, history[2], history[3]] and _index(store)[1001] == redone


def test_two_writers_do_not_lose_each_others_pairs(store: ShadowStore) -> None:
    history = _history(16)
    writers = [ShadowStore(ReportRoot(store.root.url)) for _ in range(2)]
    failures: list[Exception] = []

    def write(writer: ShadowStore, records: list[ShadowPair]) -> None:
        try:
            for record in records:
                assert writer.record(record)
        except Exception as exc:  # the thread's failure, asserted below
            failures.append(exc)

    threads = [threading.Thread(target=write, args=(w, history[i::2])) for i, w in enumerate(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert _index(store) == {record.dbt_cloud_run_id: record for record in history}  # every pair, in the index
    counting = _counted(store)
    pairs, reads = _read_counted(store, counting)
    assert pairs == history and reads == {"list": 1, "object": 1}


def _tenant_with(tmp_path: Path, shadow: str) -> Path:
    text = (REPO_ROOT / "tenants" / "dbt_williamgrant.toml").read_text()
    path = tmp_path / "tenant.toml"
    path.write_text(text + "\n[tenant.shadow]\n" + shadow + "\n")
    (tmp_path / "dbt_williamgrant").mkdir()
    return path


def test_shadow_settings_default_and_load(tmp_path: Path) -> None:
    assert load_tenant().shadow == ShadowSettings(required_passes=3, required_days=1.0, jobs=None, sample=1)
    loaded = load_tenant(
        _tenant_with(tmp_path, f"required_passes = 5\nrequired_days = 0.5\njobs = [{JOB}]\nsample = 2")
    )
    assert (loaded.shadow.required_passes, loaded.shadow.required_days, loaded.shadow.jobs) == (5, 0.5, (JOB,))
    assert [loaded.shadow.takes(JOB, n) for n in (1, 2, 3)] == [True, False, True]
    assert not loaded.shadow.takes(70403103936340, 1)


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ("required_passes = 0", "shadow.required_passes"),
        ('required_passes = "3"', "shadow.required_passes"),
        ("required_days = -1", "shadow.required_days"),
        ("jobs = []", "leave jobs out to shadow every job"),
        ("jobs = [0]", "is not a dbt Cloud job id"),
        ("sample = 0", "shadow.sample"),
        ("passes = 3", "shadow.passes"),
    ],
)
def test_bad_shadow_settings_are_named(tmp_path: Path, line: str, words: str) -> None:
    with pytest.raises(ConfigError, match=r"tenant\.toml") as refused:
        load_tenant(_tenant_with(tmp_path, line))
    assert words in str(refused.value)
