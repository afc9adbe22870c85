"""Parity end to end on the sandbox: a real dbt Cloud-style baseline (sandbox server, real dbt on DuckDB `prod`)
against `run_dbt_wg` subflow runs on the `parity` target, through the `parity_report` flow and the CLI.

One module-scoped setup runs the hourly job in the sandbox dbt Cloud; the PASS case then runs the candidate as a
subflow, and the FAIL case changes a filter in the project copy the candidate runs from.
"""

from __future__ import annotations

import csv
import io
import json
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
from prefect.blocks.system import Secret
from typer.testing import CliRunner

from app.workspace import Workspace
from cli.app import app
from dbt2prefect.errors import ParameterError
from dbt2prefect.object_store import open_url
from dbt2prefect.tenant import load_tenant
from flows.dbt_wg_flow import run_dbt_wg
from flows.parity_flow import parity_report
from migration.env_vars import secret_block_name
from parity.errors import BaselineError
from parity.model import ParityReport, Verdict
from parity.store import load_latest_report, load_latest_verdicts
from sandbox.dbt_cloud import SandboxDbtCloud
from sandbox.s3_api import BUCKET
from sandbox.warehouse import database_path

HOURLY = 70403103936340
NIGHTLY = 70403103936332
SECRET = "DBT_ENV_SECRET_FX_API_KEY"
FX_MODEL = "model.dbt_williamgrant.fct_fx_rates"
PROD_ONLY = "model.dbt_williamgrant.audit_prod_run_log"
REVENUE = "model.dbt_williamgrant.rpt_revenue_by_currency"


@dataclass(frozen=True)
class Sandbox:
    cloud: SandboxDbtCloud
    project_dir: Path
    reports: Path

    def run(self, **kwargs: Any) -> dict[str, Any]:
        result: dict[str, Any] = parity_report(
            job_ids=[HOURLY],
            report_dir=str(self.reports),
            dbt_cloud_host=self.cloud.url,
            dbt_cloud_account_id=self.cloud.account_id,
            **kwargs,
        )
        return result


@pytest.fixture(scope="module")
def sandbox(tenant_copy: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """Baseline: the hourly job run by the sandbox dbt Cloud on `prod`; `parity` warmed with the same upstream."""
    with SandboxDbtCloud.start(project_dir=tenant_copy.project_dir, warehouse_base=tenant_copy.warehouse) as cloud:
        # The hourly selector reads upstream models the nightly job builds; build them on both databases first.
        warm = cloud.app.run_job(HOURLY, cause="warm-up", steps_override=["dbt run --select +tag:hourly"])
        assert warm["status"] == 10, [(s["name"], s["logs"][-2000:]) for s in warm["run_steps"]]
        baseline = cloud.app.run_job(HOURLY, cause="parity baseline")
        assert baseline["status"] == 10, [(s["name"], s["logs"][-2000:]) for s in baseline["run_steps"]]
        run_dbt_wg(command="run", select="+tag:hourly", target="parity", per_node_tasks=False)  # warm-up only
        # The hourly job's secret (masked by dbt Cloud) as a person saves it after reading the plan.
        secret = secret_block_name(tenant_copy.settings.blocks.profile_prefix, SECRET, "Production", HOURLY)
        Secret(value="stand-in").save(secret, overwrite=True)
        saved = os.environ.get("DBT_CLOUD_API_TOKEN")
        os.environ["DBT_CLOUD_API_TOKEN"] = cloud.token
        try:
            yield Sandbox(cloud, tenant_copy.project_dir, tmp_path_factory.mktemp("parity-reports"))
        finally:
            if saved is None:
                os.environ.pop("DBT_CLOUD_API_TOKEN", None)
            else:
                os.environ["DBT_CLOUD_API_TOKEN"] = saved


@pytest.fixture(scope="module")
def passing(sandbox: Sandbox) -> ParityReport:
    result = sandbox.run()
    assert result["verdict"] == "PASS", Path(result["report_dir"], "report.md").read_text()
    report = load_latest_report(sandbox.reports)
    assert report is not None
    return report


def _regions(tenant_copy: Any, database: str) -> list[tuple[str]]:
    path = str(database_path(database, tenant_copy.warehouse))
    try:
        db = duckdb.connect(path, read_only=True)
    except duckdb.ConnectionException:  # dbt-duckdb in this process still holds the file open read-write
        db = duckdb.connect(path)
    with db:
        return db.execute("select distinct reporting_region from marts_finance.fct_fx_rates").fetchall()


def test_same_job_on_parity_passes_and_explains_the_prod_only_model(tenant_copy: Any, passing: ParityReport) -> None:
    job = passing.job(HOURLY)
    # fct_fx_rates reads env_var('DBT_WG_REGION'): both sides built it with the hourly job's override, not the
    # project default or the Production value.
    assert _regions(tenant_copy, "prod") == [("uk",)] and _regions(tenant_copy, "parity") == [("uk",)]
    assert job.baseline.system == "dbt_cloud" and job.baseline.command == "build"
    assert job.candidate.system == "prefect" and job.candidate.target == "parity"
    # The run's folder in the artifact store (object storage here), for the notebook.
    assert job.candidate.location
    store, folder = open_url(job.candidate.location)
    assert store.exists(f"{folder}/manifest.json")
    assert job.node_sets == [] and job.statuses == []
    assert job.nodes_matched > 0
    model_counts = next(r for r in job.node_counts if r.resource_type == "model")
    assert model_counts.delta == -1 and model_counts.candidate_disabled == model_counts.baseline_disabled + 1
    [explained] = [f for f in job.findings if f.reason == "node_count_differs"]
    assert explained.severity.value == "explained"
    assert PROD_ONLY in (explained.explanation or "") and "target_dependent_config" in explained.message
    assert job.row_counts and all(r.status.value == "equal" for r in job.row_counts)
    # Row counts, schema and value fingerprints of every relation: at most two queries per database.
    assert 0 < job.queries_issued["baseline"] <= 2 and 0 < job.queries_issued["candidate"] <= 2
    assert {r.unique_id for r in job.value_checks} == {r.unique_id for r in job.row_counts}
    assert all(r.status.value == "equal" for r in job.value_checks), [
        r for r in job.value_checks if r.status.value != "equal"
    ]
    revenue = next(r for r in job.value_checks if r.unique_id == REVENUE)
    assert revenue.excluded_columns == ["revalued_at (model:rpt_revenue_by_currency)"]


def test_cli_gates_on_an_existing_candidate_run(sandbox: Sandbox, passing: ParityReport, tmp_path: Path) -> None:
    # `latest` finds the job's last run on the parity target by its dbt_cloud_job_id: the one `passing` started.
    run_id = passing.job(HOURLY).candidate.run_id
    args = ["parity", "--job", str(HOURLY), "--candidate-run", f"{HOURLY}=latest", "--report-dir", str(tmp_path)]
    args += ["--dbt-cloud-host", sandbox.cloud.url, "--account-id", str(sandbox.cloud.account_id), "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["verdict"] == "PASS" and report["jobs"][0]["candidate"]["run_id"] == run_id
    assert load_latest_verdicts(tmp_path)[HOURLY][0].value == "PASS"
    as_csv = CliRunner().invoke(app, [*args[:-1], "--format", "csv"])
    assert as_csv.exit_code == 0, as_csv.output
    [row] = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert (int(row["job_id"]), row["verdict"], row["errors"], row["row_counts_off"]) == (HOURLY, "PASS", "0", "0")
    markdown = CliRunner().invoke(app, [*args[:-1], "--format", "markdown"]).stdout.splitlines()
    assert markdown[0].startswith("| job_id | job_name | verdict |") and len(markdown) == 3
    bad = CliRunner().invoke(app, ["parity", "--job", str(HOURLY), "--candidate-run", f"{HOURLY}=not-a-run", *args[5:]])
    assert bad.exit_code == 2 and "not-a-run is not in the artifact store" in bad.output


def test_a_shadow_pair_compares_exactly_that_dbt_cloud_run_and_is_recorded_once(
    sandbox: Sandbox, passing: ParityReport, tenant_copy: Any, tmp_path: Path
) -> None:
    """Workspace.shadow_pair: the named dbt Cloud run against its twin, one record in object storage."""
    compared = passing.job(HOURLY)
    baseline_run, twin = int(compared.baseline.run_id), compared.candidate.run_id
    options = {"token": sandbox.cloud.token, "dbt_cloud_host": sandbox.cloud.url}
    reports = f"s3://{BUCKET}/shadow-pairs/{tmp_path.name}"
    with Workspace.open(
        tenant_copy.settings_file, report_dir=reports, dbt_cloud_account_id=sandbox.cloud.account_id, **options
    ) as workspace:
        with pytest.raises(BaselineError, match=f"is a run of job {HOURLY}, not of job {NIGHTLY}"):
            workspace.shadow_pair(NIGHTLY, baseline_run, twin)
        with pytest.raises(ParameterError, match="Prefect has no flow run"):
            workspace.shadow_pair(HOURLY, baseline_run, str(uuid.uuid4()))
        assert workspace.shadow_store.job_ids() == []  # neither refusal recorded anything
        result = workspace.shadow_pair(HOURLY, baseline_run, twin)
        pair = result.pair
        assert result.recorded and pair.verdict is Verdict.PASS, pair.reasons
        assert (pair.dbt_cloud_run_id, pair.prefect_run_id) == (baseline_run, twin)
        assert pair.dbt_cloud_finished_at == compared.baseline.finished_at and pair.warehouse_seconds > 0
        assert pair.report is not None and pair.report.startswith(reports)
        fs, path = open_url(pair.report)
        report = ParityReport.model_validate_json(fs.cat_file(path))
        assert report.job(HOURLY).baseline.run_id == str(baseline_run)  # that run, not the job's latest
        again = workspace.shadow_pair(HOURLY, baseline_run, twin)
        assert not again.recorded and again.pair == pair
        ready = workspace.readiness()[HOURLY]
        assert (ready.pairs, ready.streak, ready.ready) == (1, 1, False)
        assert ready.summary() == "1/3 PASS, 0/1 days"


def _shadowed_tenant(tenant_copy: Any, monkeypatch: pytest.MonkeyPatch, name: str = "shadowed", **shadow: Any) -> Path:
    """The session's tenant with shadowing on (and `shadow` settings), beside it with its parity settings, so
    other tests keep theirs."""
    original = Path(tenant_copy.settings_file)
    shadowed = original.with_name(f"{original.stem}_{name}.toml")
    settings = "".join(f"{key} = {json.dumps(value)}\n" for key, value in shadow.items())
    shadowed.write_text(original.read_text() + "\n[tenant.shadow]\nenabled = true\n" + settings)
    parity_file = original.with_name(f"{original.stem}.parity.toml")
    if parity_file.exists():
        shadowed.with_name(f"{shadowed.stem}.parity.toml").write_text(parity_file.read_text())
    monkeypatch.setenv("DBT2PREFECT_TENANT_FILE", str(shadowed))
    return shadowed


def test_a_changed_model_makes_the_next_pair_fail_resets_the_streak_and_cutover_refuses(
    sandbox: Sandbox, passing: ParityReport, tenant_copy: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A PASS pair earns the cutover (K = 1, D = 0); then a model changes in the project the twins run from: the
    next dbt Cloud run's twin differs, its pair is a FAIL, the streak is back to 0 and cutover refuses, naming it.

    It runs before the other tests that change the model, while `passing`'s pair is still comparable."""
    from flows.shadow_flow import start_twin
    from migration.errors import CutoverRefusedError

    shadowed = _shadowed_tenant(tenant_copy, monkeypatch, "earned", required_passes=1, required_days=0)
    reports = f"s3://{BUCKET}/shadow-fail/{tmp_path.name}"
    options = {"token": sandbox.cloud.token, "dbt_cloud_host": sandbox.cloud.url}
    compared = passing.job(HOURLY)
    with Workspace.open(shadowed, report_dir=reports, dbt_cloud_account_id=sandbox.cloud.account_id, **options) as ws:
        first = ws.shadow_pair(HOURLY, int(compared.baseline.run_id), compared.candidate.run_id)
        assert first.recorded and first.pair.verdict is Verdict.PASS, first.pair.reasons
        assert ws.readiness([HOURLY])[HOURLY].streak == 1 and ws.shadow_gate([HOURLY]).problem(HOURLY) is None

        # dbt Cloud runs the job as it is; the model then changes in the project the twin runs from.
        run = sandbox.cloud.app.run_job(HOURLY, cause="shadowed run")
        assert run["status"] == 10, [(s["name"], s["logs"][-2000:]) for s in run["run_steps"]]
        model = sandbox.project_dir / "models" / "marts" / "finance" / "fct_fx_rates.sql"
        original = model.read_text()
        model.write_text(original + "\nwhere currency_code <> 'USD'\n")
        try:
            outcome = ws.shadow_run(HOURLY, run["id"], start_twin=start_twin)
        finally:
            model.write_text(original)
        fail = outcome.pair
        assert outcome.action == "paired" and fail is not None and fail.verdict is Verdict.FAIL, outcome
        assert fail.dbt_cloud_run_id == run["id"] and fail.prefect_run_id != compared.candidate.run_id
        assert ("row_count_differs", FX_MODEL) in {(r.reason, r.subject) for r in fail.reasons}, fail.reasons

        ready = ws.readiness([HOURLY])[HOURLY]
        assert (ready.pairs, ready.passes, ready.streak, ready.ready) == (2, 1, 0, False)
        assert ready.last_fail == fail and [p.streak for p in ready.history] == [1, 0]
        why = ready.last_fail_text()
        assert why is not None and why.startswith(f"dbt Cloud run {run['id']} ") and fail.reasons[0].reason in why
        with pytest.raises(CutoverRefusedError) as refused:
            ws.cutover([HOURLY], dry_run=True)
    # (The plan is not applied in this sandbox, which the refusal names too; the streak is what this is about.)
    refusal = str(refused.value)
    assert f"job {HOURLY}: " in refusal and "shadow streak 0 of 1 consecutive PASS pairs" in refusal
    assert f"last FAIL: {why}" in refusal


def test_changed_filter_in_the_parity_project_fails_with_row_counts(sandbox: Sandbox, passing: ParityReport) -> None:
    model = sandbox.project_dir / "models" / "marts" / "finance" / "fct_fx_rates.sql"
    original = model.read_text()
    model.write_text(original + "\nwhere currency_code <> 'USD'\n")
    try:
        result = sandbox.run()
    finally:
        model.write_text(original)
    assert result["verdict"] == "FAIL"
    report = load_latest_report(sandbox.reports)
    assert report is not None
    job = report.job(HOURLY)
    errors = {(f.reason, f.subject) for f in job.errors()}
    assert ("row_count_differs", FX_MODEL) in errors, errors
    fx = next(r for r in job.row_counts if r.unique_id == FX_MODEL)
    assert fx.candidate_rows is not None and fx.baseline_rows is not None and fx.candidate_rows < fx.baseline_rows
    assert load_latest_verdicts(sandbox.reports)[HOURLY][0].value == "FAIL"


def test_changed_rate_with_the_same_row_count_fails_on_values(sandbox: Sandbox, tmp_path: Path) -> None:
    """A wrong FX rate keeps every row count: value parity names the column and sample keys; the CLI gate exits 1."""
    model = sandbox.project_dir / "models" / "marts" / "finance" / "fct_fx_rates.sql"
    original = model.read_text()
    assert "    units_per_gbp,\n" in original
    model.write_text(
        original.replace(
            "    units_per_gbp,\n", "    cast(units_per_gbp * 1.01 as {{ dbt.type_numeric() }}) as units_per_gbp,\n"
        )
    )
    try:
        result = sandbox.run()
    finally:
        model.write_text(original)
    assert result["verdict"] == "FAIL"
    report = load_latest_report(sandbox.reports)
    assert report is not None
    job = report.job(HOURLY)
    assert all(r.status.value == "equal" for r in job.row_counts)
    assert {(f.reason, f.subject) for f in job.errors()} == {("values_differ", FX_MODEL)}
    fx = next(r for r in job.value_checks if r.unique_id == FX_MODEL)
    assert fx.differing_columns == ["units_per_gbp"] and fx.key == ["fx_rate_key"]
    assert fx.samples and all(s.kind == "changed" for s in fx.samples)
    assert "values_differ" in Path(result["report_dir"], "report.html").read_text()
    args = ["parity", "--job", str(HOURLY), "--candidate-run", f"{HOURLY}={job.candidate.run_id}"]
    args += ["--report-dir", str(tmp_path), "--dbt-cloud-host", sandbox.cloud.url]
    args += ["--account-id", str(sandbox.cloud.account_id), "--json"]
    gate = CliRunner().invoke(app, args)
    assert gate.exit_code == 1, gate.output
    values = json.loads(gate.stdout)["jobs"][0]["value_checks"]
    assert [v["differing_columns"] for v in values if v["status"] == "different"] == [["units_per_gbp"]]


def _gate(sandbox: Sandbox, run: str, reports: Path) -> dict[str, Any]:
    args = ["parity", "--job", str(HOURLY), "--candidate-run", f"{HOURLY}={run}", "--report-dir", str(reports)]
    args += ["--dbt-cloud-host", sandbox.cloud.url, "--account-id", str(sandbox.cloud.account_id), "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1, result.output
    job: dict[str, Any] = json.loads(result.stdout)["jobs"][0]
    return job


def test_a_run_started_by_hand_on_parity_makes_the_named_candidate_stale(sandbox: Sandbox, tmp_path: Path) -> None:
    """The README's "try one run" (`--param target=parity`, without the job's environment variables) rebuilds
    the parity tables after the job's candidate run: naming that run fails instead of blaming it."""
    result = sandbox.run()
    report = load_latest_report(sandbox.reports)
    assert result["verdict"] == "PASS" and report is not None
    named = report.job(HOURLY).candidate.run_id
    state = run_dbt_wg(command="run", select="fct_fx_rates", target="parity", per_node_tasks=False, return_state=True)
    by_hand = str(state.state_details.flow_run_id)
    job = _gate(sandbox, named, tmp_path)
    [stale] = [f for f in job["findings"] if f["reason"] == "candidate_data_stale"]
    assert stale["subject"] == by_hand and FX_MODEL in stale["message"] and stale["severity"] == "error"
    assert REVENUE not in stale["message"]  # the writer record names the nodes the run wrote, nothing more
    assert job["candidate"]["run_id"] == named and job["candidate"]["finished_at"]


def test_a_later_dbt_cloud_run_of_the_environment_moves_the_baseline(sandbox: Sandbox, tmp_path: Path) -> None:
    """Another job of the baseline's environment rebuilds one of its relations after the baseline run: on DuckDB
    (no Time Travel) parity fails naming that run, whatever the candidate holds."""
    result = sandbox.run()
    report = load_latest_report(sandbox.reports)
    assert result["verdict"] == "PASS" and report is not None
    nightly = 70403103936332
    later = sandbox.cloud.app.run_job(nightly, cause="hourly rebuild", steps_override=["dbt run --select fct_fx_rates"])
    assert later["status"] == 10
    job = _gate(sandbox, report.job(HOURLY).candidate.run_id, tmp_path)
    [moved] = [f for f in job["findings"] if f["reason"] == "baseline_moved"]
    assert moved["subject"] == str(later["id"]) and FX_MODEL in moved["message"]
    assert f"of job {nightly}" in moved["message"] and REVENUE not in moved["message"]


def test_a_completed_dbt_cloud_run_heard_by_polling_gets_its_shadow_twin_and_pair(
    sandbox: Sandbox, passing: ParityReport, tenant_copy: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sandbox dbt Cloud runs the job -> the poll reports it as an event -> the shadow flow with the event's
    payload -> a twin on parity named and tagged as a shadow run -> one PASS pair and the readiness artifact."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from dbt2prefect.names import job_tag
    from flows.shadow_flow import readiness_artifact_key, shadow_run
    from migration.shadow_feed import RUN_COMPLETED_EVENT, run_resource_id

    shadowed = _shadowed_tenant(tenant_copy, monkeypatch)
    reports = f"s3://{BUCKET}/shadow-runs/{tmp_path.name}"
    options = {"token": sandbox.cloud.token, "dbt_cloud_host": sandbox.cloud.url}
    account = sandbox.cloud.account_id

    started = datetime.now(UTC) - timedelta(seconds=1)
    run = sandbox.cloud.app.run_job(HOURLY, cause="shadowed run")
    assert run["status"] == 10, [(s["name"], s["logs"][-2000:]) for s in run["run_steps"]]
    with Workspace.open(shadowed, report_dir=reports, dbt_cloud_account_id=account, **options) as workspace:
        heard = workspace.poll_dbt_cloud_runs([HOURLY], start=started)
        assert [r.run_id for r in heard] == [run["id"]]
        events: list[Any] = []
        deadline = time.monotonic() + 60  # the server stores events a moment after it receives them
        while not events and time.monotonic() < deadline:
            time.sleep(0.5)
            events = workspace.prefect_gateway.read_events(RUN_COMPLETED_EVENT, [run_resource_id(run["id"])])
    [event] = events
    payload = dict(event.payload)

    def shadow() -> dict[str, Any]:
        result: dict[str, Any] = shadow_run(
            job_id=payload["job_id"],
            dbt_cloud_run_id=payload["run_id"],
            status=payload["status"],
            event=payload,
            report_dir=reports,
            dbt_cloud_host=sandbox.cloud.url,
            dbt_cloud_account_id=account,
        )
        return result

    result = shadow()
    assert (result["action"], result["verdict"]) == ("paired", "PASS"), result
    with Workspace.open(shadowed, report_dir=reports, dbt_cloud_account_id=account, **options) as workspace:
        twin = workspace.prefect_gateway.read_flow_run(uuid.UUID(result["twin_run_id"]))
        pair = workspace.shadow_store.get(HOURLY, run["id"])
        assert pair is not None and pair.prefect_run_id == result["twin_run_id"]
        assert workspace.readiness()[HOURLY].pairs == 1
    assert twin is not None and twin.name.startswith(f"shadow job-{HOURLY} ")
    assert "shadow" in twin.tags and job_tag(HOURLY) not in twin.tags
    assert twin.parameters["target"] == "parity" and twin.parameters["shadow_of_run"] == run["id"]

    with get_client(sync_client=True) as client:
        key = readiness_artifact_key(load_tenant(shadowed).name)
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))
    assert artifacts and "| job | streak |" in str(artifacts[0].data)
    assert f"{HOURLY}" in str(artifacts[0].data)

    again = shadow()  # the same event once more: nothing runs, the pair stays
    assert (again["action"], again["twin_run_id"]) == ("already paired", result["twin_run_id"])
