"""Build noise: two real dbt builds of the same code (tests/tenants/noisy on DuckDB) differ in a run timestamp and
in a row number among tied rows. Calibration on that A/A pair names both, with the SQL causing them and the exact
settings lines; with those lines the pair passes, while a real change to the same models still fails.

The two builds read the same raw orders stored in a different physical order, as a warehouse's parallel scans
deliver them: the row number over tied rows then follows that order.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pytest
import yaml

from dbt2prefect.artifact_store import ArtifactStore, RunKey
from dbt2prefect.warehouse import DuckDBWarehouse
from parity.artifacts import RunArtifacts, load_manifest, load_run_results
from parity.compare import JobInputs, compare_job
from parity.errors import ParitySettingsError
from parity.model import JobParity, ParityReport, Reason, RunRef, Severity, Verdict
from parity.noise import calibrate, sql_noise
from parity.render import report_markdown
from parity.runner import JobSpec, ParityContext, calibrate_jobs
from parity.settings import ParitySettings

REPO = Path(__file__).resolve().parents[2]
DBT = str(Path(sys.executable).with_name("dbt"))
SYNCED = "model.noisy.orders_synced"
SEQ = "model.noisy.customer_order_seq"
TOTALS = "model.noisy.customer_totals"
ORDERS = (
    "select range as order_id, range % 5 as customer_id, date '2024-01-01' + cast(range // 10 as integer) as order_date, "
    "round(10 + range * 1.5, 2) as amount from range(60)"
)


@dataclass(frozen=True)
class Builds:
    folder: Path
    artifacts: dict[str, RunArtifacts]

    def warehouse(self, target: str) -> DuckDBWarehouse:
        return DuckDBWarehouse(
            self.folder / f"{target}.duckdb",
            attach=[{"path": str(self.folder / f"raw_{target}.duckdb"), "alias": "raw"}],
        )


def _raw(path: Path, descending: bool) -> None:
    with duckdb.connect(str(path)) as conn:
        conn.execute(
            f"create table orders as select * from ({ORDERS}) order by order_id {'desc' if descending else ''}"
        )


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory) -> Builds:
    """Targets a and b: the same code; c: a real change (amounts) in both noisy models."""
    root = tmp_path_factory.mktemp("noise")
    project = root / "noisy"
    shutil.copytree(REPO / "tests" / "tenants" / "noisy", project)
    outputs = {}
    for target, descending in (("a", False), ("b", True), ("c", False)):
        _raw(root / f"raw_{target}.duckdb", descending)
        outputs[target] = {
            "type": "duckdb",
            "path": str(root / f"{target}.duckdb"),
            "threads": 1,
            "attach": [{"path": str(root / f"raw_{target}.duckdb"), "alias": "raw", "read_only": True}],
        }
    (root / "profiles.yml").write_text(yaml.safe_dump({"noisy": {"target": "a", "outputs": outputs}}), "utf-8")
    artifacts = {}
    for target in ("a", "b", "c"):
        if target == "c":
            for model in ("orders_synced", "customer_order_seq"):
                sql = project / "models" / f"{model}.sql"
                sql.write_text(sql.read_text("utf-8").replace("amount,", "amount * 2 as amount,", 1), "utf-8")
        target_path = root / f"target-{target}"
        args = ["--quiet", "--log-path", str(root / "logs"), "run", "--target", target, "--project-dir", str(project)]
        args += ["--profiles-dir", str(root), "--target-path", str(target_path)]
        done = subprocess.run([DBT, *args], capture_output=True, text=True, check=False, timeout=600)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        artifacts[target] = RunArtifacts(
            label=target,
            manifest=load_manifest(target_path / "manifest.json"),
            run_results=load_run_results(target_path / "run_results.json"),
        )
    return Builds(root, artifacts)


def _compare(builds: Builds, first: str, second: str, settings: ParitySettings) -> JobParity:
    inputs = JobInputs(
        job_id=7,
        baseline=builds.artifacts[first],
        baseline_ref=RunRef(system="files", run_id=first, target=first),
        candidate=builds.artifacts[second],
        candidate_ref=RunRef(system="files", run_id=second, target=second),
    )
    with builds.warehouse(first) as one, builds.warehouse(second) as two:
        return compare_job(inputs, settings, one, two)


@pytest.mark.slow
def test_the_same_code_built_twice_fails_without_calibration(builds: Builds) -> None:
    job = _compare(builds, "a", "b", ParitySettings())
    assert job.verdict is Verdict.FAIL
    errors = {f.subject: f for f in job.errors()}
    assert set(errors) == {SYNCED, SEQ}
    rows = {r.unique_id: r for r in job.value_checks}
    assert rows[SYNCED].differing_columns == ["synced_at"]
    # "(no single column)" explained: every column holds the same values; order_seq's go to different rows, and the
    # window numbering rows that tie on (customer_id, order_date) is named.
    assert rows[SEQ].differing_columns == [] and rows[SEQ].moved_columns == ["order_seq"]
    assert "order_seq go to different rows" in errors[SEQ].message
    assert rows[SEQ].note is not None and "rows tying on (customer_id, order_date)" in rows[SEQ].note
    # Each failure says what to do: here, confirm the noise and the exact line to add.
    assert '[parity.values.nondeterministic]: "orders_synced" = ["synced_at"]' in (errors[SYNCED].explanation or "")
    assert "CURRENT_TIMESTAMP" in (errors[SYNCED].explanation or "")


@pytest.mark.slow
def test_calibration_names_the_noise_and_its_lines_make_the_pair_pass(builds: Builds) -> None:
    job = calibrate(_compare(builds, "a", "b", ParitySettings()), builds.artifacts["b"].manifest)
    assert job.verdict is Verdict.PASS, job.errors()
    noisy = {f.subject: f for f in job.findings if f.reason == Reason.NONDETERMINISTIC.value}
    assert set(noisy) == {SYNCED, SEQ} and all(f.severity is Severity.EXPLAINED for f in noisy.values())
    assert "current_timestamp" in (noisy[SYNCED].explanation or "").lower()
    assert "row_number" in (noisy[SEQ].explanation or "").lower()
    assert job.calibration is not None
    lines = job.calibration.settings_lines()
    assert lines == (
        '[parity.values.nondeterministic]\n"orders_synced" = ["synced_at"]\n"customer_order_seq" = ["order_seq"]'
    ) or lines == (
        '[parity.values.nondeterministic]\n"customer_order_seq" = ["order_seq"]\n"orders_synced" = ["synced_at"]'
    )
    markdown = report_markdown(ParityReport.from_jobs("noisy", [job]))
    assert "Build noise" in markdown and '"orders_synced" = ["synced_at"]' in markdown

    # The proposed lines, pasted into the settings, make the next comparison of the pair pass...
    settings = ParitySettings.model_validate(tomllib.loads(lines)["parity"])
    again = _compare(builds, "a", "b", settings)
    assert again.verdict is Verdict.PASS, again.errors()
    info = {f.subject: f for f in again.findings if f.reason == Reason.NONDETERMINISTIC.value}
    assert set(info) == {SYNCED, SEQ} and all(f.severity is Severity.INFO for f in info.values())
    assert "synced_at" in info[SYNCED].message and "current_timestamp" in (info[SYNCED].explanation or "").lower()

    # ...while a real change to the same models still fails, in the columns it changed.
    changed = _compare(builds, "a", "c", settings)
    assert changed.verdict is Verdict.FAIL
    assert {f.subject for f in changed.errors()} == {SYNCED, SEQ}
    rows = {r.unique_id: r for r in changed.value_checks}
    assert rows[SYNCED].differing_columns == ["amount"] and rows[SEQ].differing_columns == ["amount"]
    assert rows[TOTALS].status.value == "equal"
    # A change the SQL does not explain: fix it, or accept it with this exact line.
    advice = next(f.explanation for f in changed.errors() if (f.subject, f.reason) == (SYNCED, "values_differ"))
    advice = advice or ""
    assert advice.startswith("fix the model") and f'accepted = ["values_differ:{SYNCED}"]' in advice


def test_sql_noise_reads_snowflake_and_duckdb_sql() -> None:
    snowflake = sql_noise(
        "select id, sysdate() as exported_at, uuid_string() as batch_id, "
        "ntile(4) over (order by revenue) as quartile, rank() over (order by revenue) as rnk, "
        "convert_timezone('UTC', current_timestamp()) as loaded_at from t",
        "snowflake",
    )
    assert snowflake is not None
    assert [(n.kind, n.column) for n in snowflake] == [
        ("clock", "exported_at"),
        ("random", "batch_id"),
        ("tie_prone_window", "quartile"),
        ("clock", "loaded_at"),
    ]
    assert snowflake[2].ties == ("revenue",)  # rank() gives ties equal values: not flagged
    assert sql_noise("select id from t where x > 1", "duckdb") == []
    assert sql_noise("select ((( from", "duckdb") is None


@pytest.mark.slow  # the module's three dbt builds
def test_calibrate_jobs_pairs_the_parity_run_with_a_new_run_on_the_calibration_target(
    builds: Builds, tmp_path: Path
) -> None:
    store = ArtifactStore(str(tmp_path / "store"))
    spec = JobSpec(job_id=7, parameters={"target": "prod", "dbt_cloud_job_id": 7, "command": "run"}, name="Noisy")
    for build, target, run_id in (("a", "parity", "run-a"), ("b", "parity_calibration", "run-b")):
        key = RunKey("noisy", "dbt_wg", target, run_id)
        store.save_run(key, builds.folder / f"target-{build}", {"parameters": spec.candidate_parameters(target)})
        store.mark_job_run(key, 7)
    started: list[dict[str, Any]] = []

    def start(job: JobSpec, parameters: dict[str, Any]) -> str:
        started.append(parameters)
        return "run-b"  # the run on the calibration target, finished (as `run_dbt_wg` would leave it)

    def outputs(target: str) -> dict[str, Any]:
        build = {"parity": "a", "parity_calibration": "b"}[target]
        attach = [{"path": str(builds.folder / f"raw_{build}.duckdb"), "alias": "raw"}]
        return {"type": "duckdb", "path": str(builds.folder / f"{build}.duckdb"), "attach": attach}

    ctx = ParityContext(
        tenant="noisy",
        deployment="dbt_wg",
        store=store,
        baselines=None,  # type: ignore[arg-type]  # a calibration reads no dbt Cloud baseline
        settings=ParitySettings.model_validate({"values": {"nondeterministic": {"orders_synced": ["synced_at"]}}}),
        profile_outputs=outputs,
        start_candidate=start,
    )
    report = calibrate_jobs([JobSpec(**{**spec.__dict__, "candidate_run_id": "latest"})], ctx)
    assert [p["target"] for p in started] == ["parity_calibration"]
    [job] = report.jobs
    assert report.verdict is Verdict.PASS, job.errors()
    assert (job.baseline.run_id, job.candidate.run_id) == ("run-a", "run-b")
    assert job.calibration is not None
    # Columns already in the settings are calibrated again: the proposal is the whole noise, not only new noise.
    assert {e.unique_id: e.columns for e in job.calibration.entries} == {SYNCED: ["synced_at"], SEQ: ["order_seq"]}

    # A calibration never runs on a job's own target.
    on_prod = ParityContext(**{**ctx.__dict__, "settings": ParitySettings(calibration_target="prod")})
    with pytest.raises(ParitySettingsError, match="calibration_target 'prod' is the target of job"):
        calibrate_jobs([spec], on_prod)
    assert len(started) == 1


def test_the_calibration_target_must_differ_from_the_parity_target(tmp_path: Path) -> None:
    from parity.errors import ParitySettingsError
    from parity.settings import load_parity_settings

    path = tmp_path / "t.parity.toml"
    path.write_text('[parity]\ncalibration_target = "parity"\n', encoding="utf-8")
    with pytest.raises(ParitySettingsError, match="calibration_target 'parity' is the candidate_target"):
        load_parity_settings(path)


def test_calibration_proposes_tolerances_and_accepted_lines_where_no_column_can_be_left_out() -> None:
    from parity import synthetic as syn
    from parity.artifacts import parse_manifest
    from parity.model import Check, Finding, RowCountRow, RowCountStatus, ValueRow, ValueStatus

    top = "model.p.top_customers"
    sample = "model.p.sampled_orders"
    data = syn.manifest([syn.node(top), syn.node(sample)])
    data["metadata"]["adapter_type"] = "snowflake"
    data["nodes"][top]["compiled_code"] = (
        "select customer_id, revenue from rev qualify row_number() over (order by revenue desc) <= 10"
    )
    data["nodes"][sample]["compiled_code"] = "select * from orders sample (10)"
    manifest = parse_manifest(data)

    def error(check: Check, reason: str, subject: str, message: str) -> Finding:
        return Finding(check=check, reason=reason, severity=Severity.ERROR, subject=subject, message=message)

    ref = RunRef(system="prefect", run_id="r1", target="parity")
    job = JobParity(
        job_id=1,
        verdict=Verdict.FAIL,
        baseline=ref,
        candidate=ref.model_copy(update={"run_id": "r2", "target": "parity_calibration"}),
        value_checks=[ValueRow(unique_id=top, materialized="table", status=ValueStatus.DIFFERENT)],
        row_counts=[
            RowCountRow(
                unique_id=sample,
                materialized="table",
                baseline_relation="a",
                candidate_relation="b",
                baseline_rows=100,
                candidate_rows=97,
                delta=-3,
                relative_delta=-0.03,
                tolerance_abs=0,
                tolerance_rel=0,
                tolerance_source="default",
                status=RowCountStatus.DIFFERENT,
            )
        ],
        findings=[
            error(Check.VALUES, "values_differ", top, f"{top}: values differ in (no single column)"),
            error(Check.ROW_COUNTS, "row_count_differs", sample, f"{sample}: 100 rows, 97 in the candidate"),
            error(Check.STATUSES, "status_changed", "model.p.x", "success -> error"),
        ],
    )
    calibrated = calibrate(job, manifest)
    # Two runs of the same code must not differ in statuses: that stays an error.
    assert calibrated.verdict is Verdict.FAIL and [f.reason for f in calibrated.errors()] == ["status_changed"]
    assert calibrated.calibration is not None
    entries = {e.unique_id: e for e in calibrated.calibration.entries}
    assert entries[top].kind == "rows" and "rows tying on (revenue)" in entries[top].sql[0]
    assert entries[sample].kind == "row_count" and "SAMPLE" in entries[sample].sql[0].upper()
    assert calibrated.calibration.settings_lines() == (
        f'[parity]\naccepted = ["values_differ:{top}"]  # merge with the entries already there\n\n'
        '[parity.row_counts.models]\n"sampled_orders" = { abs = 3 }'
    )
    proposed = ParitySettings.model_validate(tomllib.loads(calibrated.calibration.settings_lines())["parity"])
    assert proposed.is_accepted("values_differ", top) and proposed.row_counts.models["sampled_orders"].abs == 3


def test_calibrating_needs_the_calibration_target_among_the_tenants_targets() -> None:
    from app.workspace import Workspace
    from dbt2prefect.errors import ConfigError
    from dbt2prefect.tenant import load_tenant

    tenant = load_tenant(REPO / "tenants" / "dbt_williamgrant.toml")
    with pytest.raises(
        ConfigError, match=r"calibration_target 'parity_calibration' is not one of the tenant's targets"
    ):
        Workspace(tenant).parity_report(None, {}, "local", calibrate=True)
