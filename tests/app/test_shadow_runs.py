"""Which completed dbt Cloud runs get a shadow twin (Workspace.shadow_run), against the sandbox dbt Cloud server on
loopback and the in-memory Prefect gateway; the twin itself and its pair are the flows' end-to-end tests."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from prefect.server.events.schemas.events import matches

from app.workspace import Workspace
from dbt2prefect import names
from dbt2prefect.errors import ParameterError
from dbt2prefect.prefect_gateway_memory import MemoryPrefect
from dbt2prefect.tenant import TenantSettings, load_tenant
from parity.model import Verdict
from parity.runner import JobSpec
from parity.shadow import ShadowPair
from sandbox.dbt_cloud import SandboxDbtCloud

NIGHTLY, HOURLY = 70403103936332, 70403103936340
SUCCESS, ERROR = 10, 20


class Twins:
    """Stands in for the subflow start: notes each twin's parameters and answers a flow run Prefect does not know,
    so the pair is refused (ParameterError) and nothing is recorded."""

    def __init__(self) -> None:
        self.started: list[dict[str, Any]] = []

    def __call__(self, spec: JobSpec, parameters: dict[str, Any]) -> str:
        self.started.append(parameters)
        return str(uuid.uuid4())


@pytest.fixture(scope="module")
def cloud() -> Iterator[SandboxDbtCloud]:
    with SandboxDbtCloud.start() as server:
        yield server


def _tenant(**shadow: Any) -> TenantSettings:
    base = load_tenant()
    return base.model_copy(update={"shadow": base.shadow.model_copy(update={"enabled": True, **shadow})})


def _workspace(cloud: SandboxDbtCloud, tmp_path: Path, tenant: TenantSettings) -> Workspace:
    return Workspace(
        tenant,
        ledger_url=str(tmp_path / "ledger"),
        report_dir=tmp_path / "reports",
        token=cloud.token,
        dbt_cloud_host=cloud.url,
        dbt_cloud_account_id=cloud.account_id,
        prefect=MemoryPrefect(),
    )


def _finished(cloud: SandboxDbtCloud, job_id: int, status: int = SUCCESS) -> int:
    return int(cloud.app.state.add_run_record(job_id, status)["id"])


def test_shadowing_is_off_by_default(cloud: SandboxDbtCloud, tmp_path: Path) -> None:
    twins, run = Twins(), _finished(cloud, NIGHTLY)
    assert not load_tenant().shadow.enabled
    with _workspace(cloud, tmp_path, load_tenant()) as workspace:
        outcome = workspace.shadow_run(NIGHTLY, run, start_twin=twins)
    assert (outcome.action, outcome.pair) == ("skipped", None) and "enabled = false" in outcome.why
    assert twins.started == []


def test_a_failed_dbt_cloud_run_gets_no_twin_and_no_pair(cloud: SandboxDbtCloud, tmp_path: Path) -> None:
    twins = Twins()
    failed, said_success = _finished(cloud, NIGHTLY, ERROR), _finished(cloud, NIGHTLY, ERROR)
    with _workspace(cloud, tmp_path, _tenant()) as workspace:
        by_event = workspace.shadow_run(NIGHTLY, failed, start_twin=twins, status="error")
        # An event that calls a failed run successful: dbt Cloud's own status decides.
        by_cloud = workspace.shadow_run(NIGHTLY, said_success, start_twin=twins, status="success")
        assert workspace.shadow_store.pairs(NIGHTLY) == [] and workspace.readiness([NIGHTLY])[NIGHTLY].pairs == 0
    for outcome in (by_event, by_cloud):
        assert outcome.action == "skipped" and "ended error: no twin and no pair" in outcome.why
    assert twins.started == []


def test_a_run_of_another_job_is_refused(cloud: SandboxDbtCloud, tmp_path: Path) -> None:
    twins, run = Twins(), _finished(cloud, HOURLY)
    refused = f"run {run} is a run of job {HOURLY}, not of job {NIGHTLY}"
    with _workspace(cloud, tmp_path, _tenant()) as workspace, pytest.raises(ParameterError, match=refused):
        workspace.shadow_run(NIGHTLY, run, start_twin=twins)
    assert twins.started == []


def test_a_job_out_of_shadow_is_skipped(cloud: SandboxDbtCloud, tmp_path: Path) -> None:
    twins, run = Twins(), _finished(cloud, NIGHTLY)
    with _workspace(cloud, tmp_path, _tenant(jobs=(HOURLY,))) as workspace:
        outcome = workspace.shadow_run(NIGHTLY, run, start_twin=twins)
    assert outcome.action == "skipped" and "not in shadow" in outcome.why and twins.started == []


def test_the_twin_runs_the_jobs_parameters_on_the_parity_target_named_and_tagged_as_a_shadow_run(
    cloud: SandboxDbtCloud, tmp_path: Path
) -> None:
    twins, run = Twins(), _finished(cloud, NIGHTLY)
    with _workspace(cloud, tmp_path, _tenant()) as workspace:
        planned = next(s for s in workspace.current_plan().plan.schedules if s.job_id == NIGHTLY).parameters
        with pytest.raises(ParameterError, match="Prefect has no flow run"):  # the stand-in twin is unknown ...
            workspace.shadow_run(NIGHTLY, run, start_twin=twins)
        assert workspace.shadow_store.pairs(NIGHTLY) == []  # ... so no pair is recorded
    [parameters] = twins.started
    assert parameters["target"] == "parity" and parameters.get("connection") is None
    assert parameters["shadow_of_run"] == run and parameters["parity_candidate"] is True
    ignored = {"target", "connection", "parity_candidate", "shadow_of_run"}
    assert {k: v for k, v in parameters.items() if k not in ignored} == {
        k: v for k, v in planned.items() if k not in ignored
    }
    label = names.job_label(parameters)
    assert label is not None and label.startswith(f"shadow job-{NIGHTLY} ")
    assert names.run_name_job(f"{label} (brave-fox)") == (NIGHTLY, True)
    # Nothing that follows the job's runs (chained jobs' triggers, notifications) matches the twin's name.
    assert not matches(names.runs_of_job(NIGHTLY), f"{label} (brave-fox)")
    assert names.shadow_tag() == "shadow" != names.job_tag(NIGHTLY)


def _pair(run: int) -> ShadowPair:
    now = datetime.now(UTC)
    return ShadowPair(
        tenant="t",
        job_id=NIGHTLY,
        dbt_cloud_run_id=run,
        prefect_run_id=str(uuid.uuid4()),
        verdict=Verdict.PASS,
        compared_at=now,
    )


def test_a_repeated_event_for_a_paired_run_runs_nothing(cloud: SandboxDbtCloud, tmp_path: Path) -> None:
    twins, run = Twins(), _finished(cloud, NIGHTLY)
    with _workspace(cloud, tmp_path, _tenant()) as workspace:
        assert workspace.shadow_store.record(_pair(run))
        outcome = workspace.shadow_run(NIGHTLY, run, start_twin=twins)
    assert outcome.action == "already paired" and outcome.pair is not None and outcome.pair.dbt_cloud_run_id == run
    assert twins.started == []


def test_every_nth_successful_run_gets_a_twin_and_a_repeat_is_sampled_alike(
    cloud: SandboxDbtCloud, tmp_path: Path
) -> None:
    twins = Twins()
    runs = [_finished(cloud, NIGHTLY) for _ in range(3)]
    failed = _finished(cloud, NIGHTLY, ERROR)
    outcomes = []
    with _workspace(cloud, tmp_path, _tenant(sample=2)) as workspace:
        for run in [runs[0], runs[1], failed, runs[2], runs[1]]:
            try:
                outcomes.append(workspace.shadow_run(NIGHTLY, run, start_twin=twins).action)
            except ParameterError:  # the stand-in twin: started, then refused
                outcomes.append("started")
    assert outcomes == ["started", "skipped", "skipped", "started", "skipped"]
    assert [p["shadow_of_run"] for p in twins.started] == [runs[0], runs[2]]  # the failed run does not count
