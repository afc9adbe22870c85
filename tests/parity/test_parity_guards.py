"""The candidate never touches production: production targets refused as candidate targets, and a candidate run
that wrote another target (by its target or its connection) fails parity with a reason code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dbt2prefect.artifact_store import ArtifactStore
from dbt2prefect.errors import ConfigError
from parity.candidate import parameter_findings
from parity.errors import ParitySettingsError
from parity.model import Reason, Severity
from parity.runner import JobSpec, ParityContext, guard_candidate_target
from parity.settings import ParitySettings, production_targets, refuse_production_candidate

JOB = 70403103936340


def test_production_targets_name_environments_and_jobs_targets_and_connections() -> None:
    production = production_targets(
        {"7040": "prod", "7041": "dev"}, [(JOB, {"target": "default", "connection": "live"})]
    )
    assert set(production) == {"prod", "dev", "default", "live"}
    assert production["live"] == f"job {JOB}'s connection"
    assert production["prod"] == "dbt Cloud environment 7040 runs on it"


@pytest.mark.parametrize("target", ["prod", "live", "default"])
def test_a_candidate_target_that_production_uses_is_refused_naming_the_setting(target: str) -> None:
    production = production_targets({"7040": "prod"}, [(JOB, {"target": "default", "connection": "live"})])
    with pytest.raises(ParitySettingsError, match=f"candidate_target = '{target}' in t.parity.toml"):
        refuse_production_candidate(ParitySettings(candidate_target=target), production, "t.parity.toml")
    refuse_production_candidate(ParitySettings(candidate_target="parity"), production)  # its own target: fine


def _context(tmp_path: Path, outputs: dict[str, dict[str, Any]]) -> ParityContext:
    def output(target: str) -> dict[str, Any]:
        if target not in outputs:
            raise ConfigError(f"no output for {target!r}")
        return outputs[target]

    return ParityContext(
        tenant="t",
        deployment="d",
        store=ArtifactStore(str(tmp_path / "store")),
        baselines=None,  # type: ignore[arg-type]  # the guard runs before any baseline is fetched
        profile_outputs=output,
        environments={"7040": "prod"},
    )


def test_a_candidate_profile_that_writes_the_production_database_is_refused(tmp_path: Path) -> None:
    spec = JobSpec(job_id=JOB, parameters={"target": "default", "connection": "prod"})
    shared = {"type": "duckdb", "path": str(tmp_path / "prod.duckdb")}
    ctx = _context(tmp_path, {"prod": shared, "parity": dict(shared)})
    with pytest.raises(ParitySettingsError, match="same database as 'prod'"):
        guard_candidate_target([spec], ctx)
    separate = _context(tmp_path, {"prod": shared, "parity": {"type": "duckdb", "path": str(tmp_path / "p.duckdb")}})
    guard_candidate_target([spec], separate)


def test_a_run_on_the_parity_target_through_the_prod_connection_fails_parity() -> None:
    expected = {"selector": "hourly_finance", "dbt_cloud_job_id": JOB}
    recorded = {"parameters": {**expected, "target": "parity", "connection": "prod"}}
    [finding] = parameter_findings(expected, recorded, "parity", stored_under="prod")
    assert finding.reason == Reason.CANDIDATE_WRONG_CONNECTION.value
    assert finding.severity is Severity.ERROR and "'prod'" in finding.message
    assert "connection" in (finding.explanation or "")


def test_a_run_stored_under_another_target_fails_parity_even_without_recorded_parameters() -> None:
    [finding] = parameter_findings({"dbt_cloud_job_id": JOB}, {}, "parity", stored_under="prod")
    assert finding.reason == Reason.CANDIDATE_WRONG_CONNECTION.value
    assert parameter_findings({"dbt_cloud_job_id": JOB}, {}, "parity", stored_under="parity") == []
