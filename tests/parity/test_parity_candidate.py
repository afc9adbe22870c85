"""A job's candidate run found in the run-artifact store by its dbt_cloud_job_id, and a run of another job refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from dbt2prefect.artifact_store import ArtifactStore, RunKey
from parity.candidate import job_candidate_run, parameter_findings
from parity.errors import CandidateError

JOB = 70403103936340


def _store_run(store: ArtifactStore, tmp_path: Path, run_id: str, job_id: int | None) -> RunKey:
    key = RunKey("tenant", "dbt_wg", "parity", run_id)
    (tmp_path / run_id).mkdir()
    store.save_run(key, tmp_path / run_id, {"parameters": {"dbt_cloud_job_id": job_id}})
    if job_id is not None:
        store.mark_job_run(key, job_id)
    return key


def test_the_latest_run_of_a_job_on_the_parity_target_is_its_candidate(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path / "store"))
    _store_run(store, tmp_path, "first", JOB)
    _store_run(store, tmp_path, "other-job", 1)
    _store_run(store, tmp_path, "no-job", None)
    _store_run(store, tmp_path, "second", JOB)
    assert job_candidate_run(store, "tenant", "dbt_wg", "parity", JOB) == "second"
    with pytest.raises(CandidateError, match=f"no run of job {JOB} on target 'prod'"):
        job_candidate_run(store, "tenant", "dbt_wg", "prod", JOB)


def test_a_run_of_another_job_is_refused_and_a_run_without_a_job_is_not() -> None:
    expected = {"selector": "hourly_finance", "dbt_cloud_job_id": JOB, "dbt_cloud_job_name": "Hourly finance refresh"}
    other = {**expected, "dbt_cloud_job_id": 1, "dbt_cloud_job_name": "Something else"}
    [finding] = parameter_findings(expected, {"parameters": other}, "parity")
    assert finding.subject == "dbt_cloud_job_id" and "a run of job 1, not of job" in finding.message
    by_hand = {"selector": "hourly_finance", "dbt_cloud_job_id": None}
    assert parameter_findings(expected, {"parameters": by_hand}, "parity") == []
