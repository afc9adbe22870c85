"""Bad input, everywhere a user or an upstream system hands us data: a clear error naming the input, exit 2.

Each CLI case asserts: exit code 2 (bad input), the message names the input that was wrong, no Python traceback,
and no output file left behind. A few run in a real subprocess (true exit codes, stderr as a user sees it); the
rest through typer's CliRunner, where an uncaught exception would show up as `result.exception`.
Library cases assert the domain error class and that its message names the input.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from app.workspace import Workspace
from cli.app import app
from dbt2prefect.artifact_store import ArtifactStore, RunKey
from dbt2prefect.dbt_cli import flatten, parse_args
from dbt2prefect.dbt_run import RunPaths, _node_results, check_input_error, lean_invoker, run_invocations
from dbt2prefect.errors import ArtifactStoreError, DbtInputError, DbtRunError, ParameterError
from dbt2prefect.files import durable_url_problem
from dbt2prefect.params import plan_invocations, validate
from dbt2prefect.run_job import connect_step_targets, execute, prune_failed_runs
from dbt2prefect.tenant import REPO_ROOT, load_tenant
from migration.dbt_cloud.client import DbtCloudClient
from migration.dbt_cloud.errors import DbtCloudAuthError, DbtCloudResponseError
from migration.dbt_cloud.models import Job
from migration.dbt_cloud.settings import RetryPolicy
from migration.errors import LedgerDamagedError, LedgerError
from migration.export import export_inventory
from migration.ledger import Ledger, LedgerRecord, RecordKind, utcnow
from migration.schedules import translate_cron
from parity.artifacts import load_catalog, load_manifest, load_run_results
from parity.errors import ArtifactError
from parity.render import _md_cell as md_cell
from sandbox.dbt_cloud import SandboxDbtCloud

EDGE_JOBS = REPO_ROOT / "tests" / "migration" / "fixtures" / "jobs_edge_cases.json"
TENANT_TOML = REPO_ROOT / "tenants" / "dbt_williamgrant.toml"
NIGHTLY = 70403103936332
runner = CliRunner()


# ------------------------------------------------------------------------------------------------ helpers


def _cli(args: list[str], env: dict[str, str] | None = None) -> Result:
    return runner.invoke(app, args, env=env)


def _assert_bad_input(result: Result, *names: str) -> None:
    """Exit 2, a handled exit (no uncaught exception), no traceback, and every name in the message."""
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    for name in names:
        assert name in result.output, f"{name!r} not named in: {result.output}"


def _tenant_text(**replace: str) -> str:
    """The real tenant settings with an absolute project_dir, plus textual replacements."""
    text = TENANT_TOML.read_text(encoding="utf-8").replace(
        'project_dir = "dbt_williamgrant"', f'project_dir = "{REPO_ROOT / "tenants" / "dbt_williamgrant"}"'
    )
    for old, new in replace.items():
        assert old in text, old
        text = text.replace(old, new)
    return text


def _job(**changes: Any) -> dict[str, Any]:
    """A valid dbt Cloud job dict (the first edge-case fixture job) with top-level changes."""
    job: dict[str, Any] = dict(json.loads(EDGE_JOBS.read_text(encoding="utf-8"))["data"][0])
    job.update(changes)
    return job


def _inventory(jobs: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "format": "dbt2prefect-inventory",
        "version": 1,
        "account_id": _job()["account_id"],  # the tenant's: another account's inventory is refused
        "jobs": [{"raw": j} for j in jobs],
        **extra,
    }


# ------------------------------------------------------------------------------------------------ tenant settings

TENANT_CASES: dict[str, tuple[Callable[[Path], Path], tuple[str, ...]]] = {
    "missing file": (lambda d: d / "absent.toml", ("absent.toml", "does not exist", "--tenant-file")),
    "bad TOML": (
        lambda d: _write(d / "bad.toml", "[tenant\nname = 1\n"),
        ("bad.toml", "not valid TOML"),
    ),
    "not UTF-8": (lambda d: _write_bytes(d / "binary.toml", b"\xff\xfe\x00"), ("binary.toml", "not valid TOML")),
    "a folder": (lambda d: d, ("cannot be read", "--tenant-file")),
    "unknown key": (
        lambda d: _write(d / "unknown.toml", _tenant_text(**{"work_pool =": 'colour = "blue"\nwork_pool ='})),
        ("unknown.toml", "colour", "Extra inputs are not permitted"),
    ),
    "wrong type": (
        lambda d: _write(d / "type.toml", _tenant_text(**{"account_id = 70403103922125": 'account_id = "many"'})),
        ("type.toml", "dbt_cloud.account_id", "valid integer"),
    ),
    "bad project_dir": (
        lambda d: _write(
            d / "project.toml",
            _tenant_text(
                **{f'project_dir = "{REPO_ROOT / "tenants" / "dbt_williamgrant"}"': 'project_dir = "nowhere"'}
            ),
        ),
        ("project.toml", "project_dir", "nowhere", "is not a directory"),
    ),
    "[tenant] not a table": (
        lambda d: _write(d / "scalar.toml", "tenant = 3\n"),
        ("scalar.toml", "[tenant] must be a table"),
    ),
    "empty file": (lambda d: _write(d / "empty.toml", ""), ("empty.toml", "name: Field required", "blocks")),
    "slash in deployment name": (
        lambda d: _write(d / "slash.toml", _tenant_text(**{'deployment_name = "dbt_wg"': 'deployment_name = "a/b"'})),
        ("slash.toml", "deployment_name", "'/'"),
    ),
}


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _write_bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("case", list(TENANT_CASES))
def test_tenant_settings(case: str, tmp_path: Path) -> None:
    make, names = TENANT_CASES[case]
    tenant = make(tmp_path)
    result = _cli(["plan", "--from-file", str(EDGE_JOBS), "--tenant-file", str(tenant)])
    _assert_bad_input(result, *names)


# ------------------------------------------------------------------------------------------------ inventory files

INVENTORY_CASES: dict[str, tuple[Callable[[Path], Path], tuple[str, ...]]] = {
    "missing": (lambda d: d / "absent.json", ("absent.json", "does not exist", "dbt2prefect export")),
    "empty": (lambda d: _write(d / "empty.json", ""), ("empty.json", "not readable JSON")),
    "truncated": (
        lambda d: _write(d / "cut.json", json.dumps(_inventory([_job()]))[:120]),
        ("cut.json", "not readable JSON"),
    ),
    "a folder": (lambda d: d, ("not readable JSON",)),
    "JSON list": (lambda d: _write(d / "list.json", "[1, 2, 3]"), ("list.json", "neither a dbt2prefect inventory")),
    "JSON of another tool": (
        lambda d: _write(d / "other.json", json.dumps({"nodes": {}, "metadata": {}})),
        ("other.json", "neither a dbt2prefect inventory"),
    ),
    "job field wrong type": (
        lambda d: _write(d / "type.json", json.dumps(_inventory([_job(id=7, settings={"threads": "many"})]))),
        ("type.json", "job #0 (id 7)", "settings.threads"),
    ),
    "job missing field": (
        lambda d: _write(
            d / "missing.json",
            json.dumps(_inventory([{k: v for k, v in _job(id=8).items() if k != "environment_id"}])),
        ),
        ("missing.json", "job #0 (id 8)", "environment_id: Field required"),
    ),
    "job not an object": (
        lambda d: _write(d / "scalar.json", json.dumps({**_inventory([]), "jobs": [{"raw": "job"}]})),
        ("scalar.json", "jobs.0.raw"),
    ),
    "inventory unknown top-level field": (
        lambda d: _write(d / "extra.json", json.dumps(_inventory([_job()], surprise=1))),
        ("extra.json", "surprise"),
    ),
    "jobs list with a non-numeric account id": (
        lambda d: _write(
            d / "acct.json", json.dumps({"status": {"code": 200}, "data": [_job(id=9, account_id="abc")]})
        ),
        ("acct.json", "job #0 (id 9)", "account_id"),
    ),
    "jobs list that is empty": (
        lambda d: _write(d / "nojobs.json", json.dumps({"status": {"code": 200}, "data": []})),
        ("nojobs.json", "jobs list is empty"),
    ),
    "environment wrong type": (
        lambda d: _write(d / "env.json", json.dumps(_inventory([_job()], environments=[{"id": "x"}]))),
        ("env.json", "environment #0 (id x)", "id"),
    ),
}


@pytest.mark.parametrize("case", list(INVENTORY_CASES))
def test_inventory_file(case: str, tmp_path: Path) -> None:
    make, names = INVENTORY_CASES[case]
    result = _cli(["plan", "--from-file", str(make(tmp_path)), "--json"])
    _assert_bad_input(result, *names)
    assert result.stdout == "", "no plan may be printed from a bad inventory"


def test_inventory_unknown_job_fields_are_tolerated(tmp_path: Path) -> None:
    # The API adds fields without notice; a new field inside a job must not stop the plan.
    job = _job(brand_new_field={"x": 1}, settings={**_job()["settings"], "new_setting": True})
    inventory = _write(tmp_path / "inv.json", json.dumps(_inventory([job])))
    result = _cli(["plan", "--from-file", str(inventory), "--json"])
    assert result.exit_code in (0, 1), result.output  # 1 only when the job itself has a blocker finding
    assert json.loads(result.stdout)["jobs"][0]["job_id"] == job["id"]


def test_emit_with_bad_inventory_writes_no_prefect_yaml(tmp_path: Path) -> None:
    out = tmp_path / "prefect.yaml"
    result = _cli(["emit", "--from-file", str(_write(tmp_path / "cut.json", '{"format": "dbt2')), "--output", str(out)])
    _assert_bad_input(result, "cut.json")
    assert list(tmp_path.iterdir()) == [tmp_path / "cut.json"]


def test_emit_to_a_folder_is_a_clean_error(tmp_path: Path) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    result = _cli(["emit", "--from-file", str(EDGE_JOBS), "--allow-blockers", "--example", "--output", str(folder)])
    _assert_bad_input(result, str(folder), "--output")
    assert list(folder.iterdir()) == [] and sorted(p.name for p in tmp_path.iterdir()) == ["out"]


# ------------------------------------------------------------------------------------------------ CLI arguments

ARGUMENT_CASES: dict[str, tuple[list[str], tuple[str, ...]]] = {
    "run: threads 0": (["run", "--threads", "0"], ("'threads'", "greater than or equal to 1")),
    "run: threads not a number": (["run", "--threads", "abc"], ("--threads",)),
    "run: unknown command": (["run", "--command", "bild"], ("--command", "'bild'", "build")),
    "run: vars not a mapping": (["run", "--vars", "[1, 2]"], ("'vars'", "mapping")),
    "run: vars not YAML": (["run", "--vars", "{a: "], ("'vars'", "not valid YAML")),
    "run: reserved flag in a step": (["run", "--step", "dbt build --profiles-dir /x"], ("steps[0]", "--profiles-dir")),
    "run: a step that is not dbt": (["run", "--step", "rm -rf /"], ("steps[0]", "'rm -rf /'")),
    "run: selector with select": (["run", "--selector", "nightly", "--select", "x"], ("selector",)),
    "run: full refresh of tests": (["run", "--command", "test", "--full-refresh"], ("full_refresh", "'test'")),
    "run: bad profiles strategy": (["run", "--profiles-strategy", "cloud"], ("--profiles-strategy", "'cloud'")),
    "run: unknown option": (["run", "--colour"], ("--colour",)),
    "run: env var without a value": (["run", "--env-var", "DBT_REGION"], ("--env-var", "'DBT_REGION'", "NAME=VALUE")),
    "run: secret in env vars": (["run", "--env-var", "DBT_ENV_SECRET_KEY=x"], ("'env_vars'", "secret_env_vars")),
    "parity: candidate run shape": (
        ["parity", "--candidate-run", "nonsense"],
        ("--candidate-run", "JOB_ID=FLOW_RUN_ID"),
    ),
    "parity: profiles strategy": (["parity", "--profiles-strategy", "cloud"], ("--profiles-strategy", "'cloud'")),
    "blocks: unknown target": (["blocks", "register", "--target", "staging"], ("--target", "'staging'", "dev")),
    "blocks: unknown adapter": (["blocks", "register", "--target", "dev", "--adapter", "pg"], ("--adapter", "'pg'")),
    "blocks: duckdb without a path": (
        ["blocks", "register", "--target", "dev", "--adapter", "duckdb"],
        ("--duckdb-path",),
    ),
    "export: zero workers": (["export", "--workers", "0"], ("--workers",)),
}


@pytest.mark.parametrize("case", list(ARGUMENT_CASES))
def test_cli_arguments(case: str) -> None:
    args, names = ARGUMENT_CASES[case]
    _assert_bad_input(_cli(args), *names)


def test_blocks_register_without_snowflake_env_names_the_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [k for k in os.environ if k.startswith("SNOWFLAKE_")]:
        monkeypatch.delenv(name)
    result = _cli(["blocks", "register", "--target", "prod"])
    _assert_bad_input(result, "SNOWFLAKE_ACCOUNT", "SNOWFLAKE_USER", "SNOWFLAKE_SCHEMA")


def test_blocks_register_with_unreadable_key_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in ("ACCOUNT", "USER", "DATABASE", "WAREHOUSE", "SCHEMA"):
        monkeypatch.setenv(f"SNOWFLAKE_{var}", "x")
    monkeypatch.setenv("SNOWFLAKE_PRIVATE_KEY_PATH", str(tmp_path / "absent.p8"))
    monkeypatch.delenv("SNOWFLAKE_PRIVATE_KEY", raising=False)
    result = _cli(["blocks", "register", "--target", "prod"])
    _assert_bad_input(result, "SNOWFLAKE_PRIVATE_KEY_PATH", "absent.p8")


def test_parity_with_bad_parity_settings(tmp_path: Path) -> None:
    tenant = _write(tmp_path / "t.toml", _tenant_text())
    _write(tmp_path / "t.parity.toml", "[[[")
    reports = tmp_path / "reports"
    result = _cli(["parity", "--tenant-file", str(tenant), "--report-dir", str(reports)])
    _assert_bad_input(result, "t.parity.toml", "not valid TOML")
    assert not reports.exists()


@pytest.mark.parametrize("target", ["prod", "dev"])
def test_parity_refuses_a_production_candidate_target(tmp_path: Path, target: str) -> None:
    # prod and dev are targets of the tenant's dbt Cloud environments: a candidate there would rebuild them.
    tenant = _write(tmp_path / "t.toml", _tenant_text())
    _write(tmp_path / "t.parity.toml", f'[parity]\ncandidate_target = "{target}"\n')
    result = _cli(["parity", "--tenant-file", str(tenant), "--report-dir", str(tmp_path / "r")])
    _assert_bad_input(result, "t.parity.toml", f"candidate_target = '{target}'", "dbt Cloud environment")
    assert not (tmp_path / "r").exists()


ACCEPTED_CASES = {
    "a bare reason": ('"values_differ"', "'values_differ:*' to accept it for every node"),
    "a reason with an empty glob": ('"row_count_differs:"', "names no subjects"),
    "a misspelled reason": ('"value_differ:model.*"', "unknown reason 'value_differ'"),
    "an empty entry": ('""', "unknown reason ''"),
}


@pytest.mark.parametrize("entry,message", ACCEPTED_CASES.values(), ids=ACCEPTED_CASES.keys())
def test_parity_acceptances_never_fail_open(tmp_path: Path, entry: str, message: str) -> None:
    tenant = _write(tmp_path / "t.toml", _tenant_text())
    _write(tmp_path / "t.parity.toml", f"[parity]\naccepted = [{entry}]\n")
    result = _cli(["parity", "--tenant-file", str(tenant), "--report-dir", str(tmp_path / "r")])
    _assert_bad_input(result, "t.parity.toml", "accepted", message)
    assert not (tmp_path / "r").exists()


def test_an_explicit_glob_accepts_only_its_subjects() -> None:
    from parity.settings import ParitySettings

    settings = ParitySettings(accepted=("values_differ:model.p.fct_*", "status_changed:*"))
    assert settings.is_accepted("values_differ", "model.p.fct_orders")
    assert not settings.is_accepted("values_differ", "model.p.dim_brands")
    assert settings.is_accepted("status_changed", "model.p.anything")


def test_parity_with_unknown_parity_setting(tmp_path: Path) -> None:
    tenant = _write(tmp_path / "t.toml", _tenant_text())
    _write(tmp_path / "t.parity.toml", "[parity]\ncheck_schema = true\nsurprise = 1\n")
    result = _cli(["parity", "--tenant-file", str(tenant), "--report-dir", str(tmp_path / "r")])
    _assert_bad_input(result, "t.parity.toml", "surprise")
    assert not (tmp_path / "r").exists()


# ------------------------------------------------------------------------------------------------ subprocess


def _subprocess(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("case", "args", "names"),
    [
        ("truncated inventory", ["plan", "--from-file", "cut.json"], ("cut.json", "not readable JSON")),
        ("tenant file is a folder", ["plan", "--from-file", str(EDGE_JOBS), "--tenant-file", "."], ("cannot be read",)),
        ("bad flow parameter", ["run", "--threads", "0"], ("'threads'",)),
        (
            "emit from a bad inventory",
            ["emit", "--from-file", "cut.json", "--output", "prefect.yaml"],
            ("cut.json",),
        ),
    ],
)
def test_cli_in_a_subprocess(case: str, args: list[str], names: tuple[str, ...], tmp_path: Path) -> None:
    _write(tmp_path / "cut.json", '{"format": "dbt2prefect-inventory", "jobs": [')
    before = sorted(p.name for p in tmp_path.iterdir())
    done = _subprocess(args, tmp_path)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr and "Traceback" not in done.stdout
    assert done.stderr.startswith("error:"), done.stderr
    for name in names:
        assert name in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == before, "a failed command must leave no files"


# ------------------------------------------------------------------------------------------------ flow parameters

FLOW_PARAMETER_CASES: dict[str, tuple[dict[str, Any], tuple[str, ...]]] = {
    "unknown parameter": ({"colour": "blue"}, ("'colour'", "Extra inputs")),
    "threads above 64": ({"threads": 65}, ("'threads'",)),
    "threads not a number": ({"threads": "many"}, ("'threads'",)),
    "empty steps": ({"steps": []}, ("'steps'", "at least one")),
    "step with unbalanced quote": ({"steps": ["dbt build --select 'a"]}, ("steps[0]", "cannot split")),
    "steps with a selection": ({"steps": ["dbt build"], "select": "x"}, ("select", "inside the steps")),
    "target with a slash": ({"target": "prod/eu"}, ("'target'",)),
    "zero timeout": ({"timeout_seconds": 0}, ("'timeout_seconds'",)),
    "selection on deps": ({"command": "deps", "select": "x"}, ("'deps'", "select")),
    "steps not a list": ({"steps": "dbt build"}, ("'steps'",)),
}


@pytest.mark.parametrize("case", list(FLOW_PARAMETER_CASES))
def test_flow_parameters(case: str) -> None:
    raw, names = FLOW_PARAMETER_CASES[case]
    with pytest.raises(ParameterError) as caught:
        validate(raw)
    assert caught.value.exit_code == 2
    for name in names:
        assert name in str(caught.value)


@pytest.mark.parametrize("key", ["project_dir", "state_path", "target"])
def test_run_inputs_checked_before_dbt_starts(key: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Only checks on the tenant and the file system: no profile, no dbt, no Prefect API needed.
    monkeypatch.setenv("DBT2PREFECT_RUNS_DIR", str(tmp_path / "runs"))
    value = "staging" if key == "target" else str(tmp_path / "absent")
    tenant = load_tenant()
    with pytest.raises(ParameterError) as caught:
        execute(validate({key: value}), tenant, "bad-input-run", store=Workspace(tenant).store)
    assert f"parameter '{key}'" in str(caught.value)
    assert value in str(caught.value) or repr(value) in str(caught.value)


# ------------------------------------------------------------------------------------------------ cron strings


@pytest.mark.parametrize(
    ("cron", "words"),
    [
        ("0 0 * * * *", "five fields"),
        ("61 * * * *", "61"),
        ("every day at noon", "five fields"),
        ("0 25 * * *", "25"),
        ("", "five fields"),
    ],
)
def test_cron_strings_give_a_reason(cron: str, words: str) -> None:
    result = translate_cron(cron)
    assert result.spec is None and not result.equivalent
    assert result.error is not None and repr(cron) in result.error and words in result.error


def test_job_with_a_bad_cron_is_a_named_blocker_in_the_plan(tmp_path: Path) -> None:
    job = _job(id=4242, schedule={**_job()["schedule"], "cron": "61 * * * *"})
    job["triggers"] = {**job["triggers"], "schedule": True}
    inventory = _write(tmp_path / "inv.json", json.dumps(_inventory([job])))
    result = _cli(["plan", "--from-file", str(inventory), "--json"])
    assert result.exit_code == 1, result.output  # a check failed: the plan is blocked, not a crash
    plan = json.loads(result.stdout)
    (finding,) = [f for f in plan["findings"] if f["job_id"] == 4242 and "61 * * * *" in f["message"]]
    assert finding["severity"] == "blocker" and f"{finding['reason_code']}:4242" in plan["blocking"]


# ------------------------------------------------------------------------------------------------ dbt Cloud payloads


@pytest.fixture
def cloud() -> Iterator[SandboxDbtCloud]:
    with SandboxDbtCloud.start() as server:
        yield server


@pytest.fixture
def client(cloud: SandboxDbtCloud) -> Iterator[DbtCloudClient]:
    retry = RetryPolicy(max_attempts=2, backoff_base=0.01, backoff_max=0.02, deadline=5.0)
    with DbtCloudClient(cloud.url, cloud.account_id, cloud.token, retry=retry) as api:
        yield api


def test_payload_job_field_wrong_type(cloud: SandboxDbtCloud, client: DbtCloudClient) -> None:
    cloud.app.state.jobs[NIGHTLY]["settings"]["threads"] = "many"
    with pytest.raises(DbtCloudResponseError) as caught:
        client.get_job(NIGHTLY)
    assert str(NIGHTLY) in str(caught.value) and "settings.threads" in str(caught.value)


def test_payload_job_missing_field(cloud: SandboxDbtCloud, client: DbtCloudClient) -> None:
    del cloud.app.state.jobs[NIGHTLY]["environment_id"]
    with pytest.raises(DbtCloudResponseError) as caught:
        client.get_job(NIGHTLY)
    assert "environment_id" in str(caught.value)


def test_payload_unknown_fields_are_ignored(cloud: SandboxDbtCloud, client: DbtCloudClient) -> None:
    cloud.app.state.jobs[NIGHTLY]["shiny_new_field"] = {"nested": [1, 2]}
    cloud.app.state.jobs[NIGHTLY]["settings"]["new_setting"] = "x"
    job = client.get_job(NIGHTLY)
    assert job.id == NIGHTLY and job.settings.threads >= 1


def test_payload_run_with_unknown_status_code(cloud: SandboxDbtCloud, client: DbtCloudClient) -> None:
    run = cloud.app.state.add_run_record(NIGHTLY, 10)
    cloud.app.state.runs[run["id"]]["status"] = 99
    with pytest.raises(DbtCloudResponseError) as caught:
        client.get_run(run["id"])
    assert str(run["id"]) in str(caught.value) and "status" in str(caught.value)


def test_payload_export_stops_at_a_malformed_job(cloud: SandboxDbtCloud, client: DbtCloudClient) -> None:
    cloud.app.state.jobs[NIGHTLY]["execute_steps"] = "dbt build"
    with pytest.raises(DbtCloudResponseError) as caught:
        export_inventory(client)
    assert str(NIGHTLY) in str(caught.value) and "execute_steps" in str(caught.value)


def test_payload_job_from_api_wrong_type_and_extra_fields() -> None:
    assert Job.from_api({**_job(), "unknown": 1}).id == _job()["id"]
    with pytest.raises(ValueError, match=r"triggers\.schedule"):
        Job.from_api({**_job(), "triggers": {"schedule": "sometimes"}})


def test_export_with_a_wrong_token_leaves_no_inventory(cloud: SandboxDbtCloud, tmp_path: Path) -> None:
    out = tmp_path / "inventory.json"
    result = _cli(
        ["export", "--host", cloud.url, "--account-id", str(cloud.account_id), "--output", str(out)],
        env={"DBT_CLOUD_API_TOKEN": "dbtc_wrong_token_value"},
    )
    _assert_bad_input(result, "401", "environment variable DBT_CLOUD_API_TOKEN")
    assert "dbtc_wrong_token_value" not in result.output
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(DbtCloudAuthError):
        DbtCloudClient(cloud.url, cloud.account_id, "dbtc_wrong_token_value").get_job(NIGHTLY)


# ------------------------------------------------------------------------------------------------ dbt artifacts


def _artifact(kind: str, version: int, **body: Any) -> str:
    return json.dumps(
        {"metadata": {"dbt_schema_version": f"https://schemas.getdbt.com/dbt/{kind}/v{version}.json"}, **body}
    )


ARTIFACT_CASES: dict[str, tuple[Callable[[Path], Any], str, tuple[str, ...]]] = {
    "manifest from dbt 1.3 (v7)": (
        load_manifest,
        _artifact("manifest", 7, nodes={}),
        ("manifest schema v7 is not supported", "v9..v12"),
    ),
    "run_results from the future (v9)": (
        load_run_results,
        _artifact("run-results", 9, results=[]),
        ("run-results schema v9 is not supported",),
    ),
    "truncated manifest": (load_manifest, _artifact("manifest", 12, nodes={})[:40], ("not valid JSON", "truncated")),
    "empty run_results": (load_run_results, "", ("not valid JSON",)),
    "manifest that is a list": (load_manifest, "[]", ("expected a JSON object",)),
    "run_results without metadata": (
        load_run_results,
        json.dumps({"results": []}),
        ("no metadata.dbt_schema_version",),
    ),
    "catalog given as run_results": (load_run_results, _artifact("catalog", 1), ("is not a dbt run-results artifact",)),
    "run_results with results not a list": (
        load_run_results,
        _artifact("run-results", 6, results="x"),
        ("unexpected content at results",),
    ),
    "catalog with a column of the wrong shape": (
        load_catalog,
        _artifact("catalog", 1, nodes={"model.p.a": {"columns": {"id": "integer"}}}),
        ("unexpected content at nodes.model.p.a.columns.id",),
    ),
}


@pytest.mark.parametrize("case", list(ARTIFACT_CASES))
def test_dbt_artifacts(case: str, tmp_path: Path) -> None:
    loader, text, words = ARTIFACT_CASES[case]
    path = _write(tmp_path / "artifact.json", text)
    with pytest.raises(ArtifactError) as caught:
        loader(path)
    assert caught.value.exit_code == 2 and str(path) in str(caught.value)
    for word in words:
        assert word in str(caught.value)


def test_missing_artifact_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="does not exist"):
        load_manifest(tmp_path / "target" / "manifest.json")


# ------------------------------------------------------------------------------------------------ issue 14: flags


SELECTION_INJECTIONS: dict[str, dict[str, Any]] = {
    "select empties tables": {"command": "run", "select": "fct_orders --empty"},
    "select with a second target": {"select": "x --target prod"},
    "select with a short target flag": {"select": "x -t prod"},
    "select with a full refresh": {"select": "x --full-refresh"},
    "select with vars": {"select": "x --vars {a:1}"},
    "select starting with a flag": {"select": "--empty"},
    "select with a tab before the flag": {"select": "x\t--empty"},
    "select with a newline before the flag": {"select": "x\n--threads 1"},
    "select with a state flag": {"select": "state:modified --state /tmp"},
    "exclude with a flag": {"exclude": "x --full-refresh"},
    "exclude starting with a short flag": {"exclude": "-s y"},
    "exclude with a profiles dir": {"exclude": "y --profiles-dir /etc"},
}


@pytest.mark.parametrize("case", list(SELECTION_INJECTIONS))
def test_no_word_of_a_selection_becomes_a_dbt_flag(case: str) -> None:
    raw = SELECTION_INJECTIONS[case]
    name = "select" if "select" in raw else "exclude"
    with pytest.raises(ParameterError) as caught:
        validate(raw)
    assert caught.value.exit_code == 2
    assert f"parameter {name!r}" in str(caught.value) and "would reach dbt as a flag" in str(caught.value)


def test_a_plain_selection_still_reaches_dbt_as_one_select() -> None:
    (invocation,) = plan_invocations(validate({"select": "tag:a +fct_orders", "exclude": "b"}), "dev", None)
    parsed = parse_args(invocation.args)  # the one parser reads back exactly the selection given
    assert flatten(parsed.options["select"]) == ("tag:a", "+fct_orders")
    assert flatten(parsed.options["exclude"]) == ("b",) and set(parsed.options) == {"select", "exclude", "target"}


FLOW_PARAMETER_CASES_14: dict[str, tuple[dict[str, Any], tuple[str, ...]]] = {
    "selector that is a flag": ({"selector": "--empty"}, ("'selector'", "one selector")),
    "selector with two words": ({"selector": "nightly --empty"}, ("'selector'",)),
    "selector blank": ({"selector": " "}, ("'selector'",)),
    "steps with vars": ({"steps": ["dbt build"], "vars": "{a: 1}"}, ("'steps' is set", "vars", "--vars")),
    "steps with full_refresh": ({"steps": ["dbt run"], "full_refresh": True}, ("full_refresh", "--full-refresh")),
    "steps with vars and full_refresh": (
        {"steps": ["dbt run"], "vars": "{a: 1}", "full_refresh": True},
        ("vars, full_refresh",),
    ),
    "step with a target holding a slash": ({"steps": ["dbt run --target a/b"]}, ("steps[0]", "--target", "'a/b'")),
    "step dbt docs serve": ({"steps": ["dbt docs serve"]}, ("steps[0]", "docs serve", "unattended")),
    "step dbt init": ({"steps": ["dbt init"]}, ("steps[0]", "'dbt init'", "unattended")),
    "step dbt debug": ({"steps": ["dbt build", "dbt debug"]}, ("steps[1]", "'dbt debug'")),
    "step docs serve with a port": ({"steps": ["dbt docs serve --port 8081"]}, ("steps[0]", "docs serve")),
    "command docs serve": ({"command": "docs serve"}, ("'command'", "'docs serve'")),
    "command init": ({"command": "init"}, ("'command'", "'init'")),
    "command debug": ({"command": "debug"}, ("'command'", "'debug'")),
    "vars alias bomb": (
        {
            "vars": "a: &a [x,x,x,x,x,x,x,x,x]\n"
            + "".join(f"{n}: &{n} [{', '.join(['*' + p] * 9)}]\n" for p, n in zip("abcdef", "bcdefg", strict=True))
        },
        ("'vars'", "expands to more than"),
    ),
    "step vars alias bomb": (
        {
            "steps": [
                "dbt run --vars '" + "{a: &a [x,x,x,x,x,x,x,x,x], b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a], "
                "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b], d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c], "
                "e: [*d,*d,*d,*d,*d,*d,*d,*d,*d]}'"
            ]
        },
        ("steps[0]", "--vars", "expands to more than"),
    ),
    "step vars not a mapping": ({"steps": ["dbt run --vars '[1]'"]}, ("steps[0]", "--vars", "mapping")),
}


@pytest.mark.parametrize("case", list(FLOW_PARAMETER_CASES_14))
def test_flow_parameters_issue_14(case: str) -> None:
    raw, names = FLOW_PARAMETER_CASES_14[case]
    with pytest.raises(ParameterError) as caught:
        validate(raw)
    assert caught.value.exit_code == 2
    for name in names:
        assert name in str(caught.value)


def test_vars_of_ordinary_size_pass() -> None:
    assert validate({"vars": "{run_date: '2024-01-01', regions: [a, b, c]}"}).vars is not None


def test_a_steps_own_target_keeps_the_runs_connection() -> None:
    # dbt Cloud: a step's --target sets target.name only; the connection stays the environment's.
    profile = {"p": {"target": "dev", "outputs": {"dev": {"type": "duckdb", "path": "dev.db"}, "prod": {"path": "x"}}}}
    connected = connect_step_targets(profile, "p", "dev", {"prod"})
    outputs = connected["p"]["outputs"]
    assert set(outputs) == {"dev", "prod"} and outputs["prod"] == outputs["dev"] == {"type": "duckdb", "path": "dev.db"}


# ------------------------------------------------------------------------------------------------ issue 14: plan


@pytest.mark.parametrize(
    "steps", [["dbt docs serve"], ["dbt init"], ["dbt debug"], ["dbt build", "dbt docs serve --port 9"]]
)
def test_interactive_steps_are_plan_blockers(steps: list[str], tmp_path: Path) -> None:
    job = _job(id=5151, execute_steps=steps)
    result = _cli(["plan", "--from-file", str(_write(tmp_path / "inv.json", json.dumps(_inventory([job])))), "--json"])
    assert result.exit_code == 1, result.output
    plan = json.loads(result.stdout)
    (finding,) = [f for f in plan["findings"] if f["job_id"] == 5151 and f["reason_code"] == "step_interactive"]
    assert finding["severity"] == "blocker" and "unattended" in finding["message"]


@pytest.mark.parametrize("name", ["[/]", "[bold]x", "a [/] b [link=http://x]y", "[red]unclosed"])
def test_job_names_are_not_rich_markup(name: str, tmp_path: Path) -> None:
    job = _job(id=6161, name=name)
    result = _cli(["plan", "--from-file", str(_write(tmp_path / "inv.json", json.dumps(_inventory([job]))))])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code in (0, 1) and "Traceback" not in result.output
    assert name.split("\n")[0][:3] in result.output


def test_markdown_report_cells_escape_html_and_newlines() -> None:
    cell = md_cell("<script>alert(1)</script>\n| next")
    assert "<script>" not in cell and "\n" not in cell and "&lt;script&gt;" in cell and "\\|" in cell


# ------------------------------------------------------------------------------------------------ issue 14: files


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


INVENTORY_CASES_14: dict[str, tuple[Callable[[Path], Path], tuple[str, ...]]] = {
    "duplicate job ids": (
        lambda d: _write(d / "dup.json", json.dumps(_inventory([_job(id=11), _job(id=12), _job(id=11)]))),
        ("dup.json", "job #2 has id 11", "once"),
    ),
    "duplicate job ids in a jobs list": (
        lambda d: _write(d / "dup.json", json.dumps({"status": {"code": 200}, "data": [_job(id=3), _job(id=3)]})),
        ("dup.json", "id 3"),
    ),
    "future inventory version": (
        lambda d: _write(d / "v2.json", json.dumps({**_inventory([_job()]), "version": 2})),
        ("v2.json", "version 2", "upgrade"),
    ),
    "version zero": (
        lambda d: _write(d / "v0.json", json.dumps({**_inventory([_job()]), "version": 0})),
        ("v0.json", "version 0"),
    ),
    "version as text": (
        lambda d: _write(d / "vs.json", json.dumps({**_inventory([_job()]), "version": "1"})),
        ("vs.json", "version '1'"),
    ),
    "deeply nested JSON": (
        lambda d: _write(d / "deep.json", _nested(200_000)),
        ("deep.json", "nested too deeply"),
    ),
    "deeply nested inside an inventory": (
        lambda d: _write(d / "deep2.json", json.dumps(_inventory([]))[:-1] + ', "x": ' + _nested(200_000) + "}"),
        ("deep2.json",),
    ),
    "not UTF-8": (lambda d: _write_bytes(d / "latin.json", b'{"format": "\xe9t\xe9"}'), ("latin.json",)),
}


@pytest.mark.parametrize("case", list(INVENTORY_CASES_14))
def test_inventory_file_issue_14(case: str, tmp_path: Path) -> None:
    make, names = INVENTORY_CASES_14[case]
    result = _cli(["plan", "--from-file", str(make(tmp_path)), "--json"])
    _assert_bad_input(result, *names)
    assert result.stdout == ""


TENANT_CASES_14: dict[str, tuple[dict[str, str], tuple[str, ...]]] = {
    "memory ledger": ({'ledger_url = "../.dbt2prefect/ledger"': 'ledger_url = "memory://ledger"'}, ("memory://",)),
    "cached ledger": (
        {'ledger_url = "../.dbt2prefect/ledger"': 'ledger_url = "simplecache::s3://b/ledger"'},
        ("simplecache://",),
    ),
    "http ledger": ({'ledger_url = "../.dbt2prefect/ledger"': 'ledger_url = "https://h/ledger"'}, ("https://",)),
    "tenant named ..": ({'name = "dbt_williamgrant"': 'name = ".."'}, ("name", "'..'")),
    "tenant name with ..": ({'name = "dbt_williamgrant"': 'name = "a..b"'}, ("name", "'a..b'")),
    "tenant name hidden": ({'name = "dbt_williamgrant"': 'name = ".hidden"'}, ("name", "'.hidden'")),
    "tenant name with a space": ({'name = "dbt_williamgrant"': 'name = "a b"'}, ("name", "'a b'")),
    "deployment named ..": ({'deployment_name = "dbt_wg"': 'deployment_name = ".."'}, ("deployment_name",)),
    "targets empty": (
        {'targets = ["local", "dev", "prod", "parity"]': "targets = []"},
        ("targets", "at least one target"),
    ),
    "target named ..": ({'targets = ["local", "dev", "prod", "parity"]': 'targets = ["dev", ".."]'}, ("targets",)),
    "default target outside targets": (
        {'default_target = "dev"': 'default_target = "staging"'},
        ("default_target", "'staging'", "not one of targets"),
    ),
}


@pytest.mark.parametrize("case", list(TENANT_CASES_14))
def test_tenant_settings_issue_14(case: str, tmp_path: Path) -> None:
    replace, names = TENANT_CASES_14[case]
    tenant = _write(tmp_path / "t.toml", _tenant_text(**replace))
    _assert_bad_input(_cli(["plan", "--from-file", str(EDGE_JOBS), "--tenant-file", str(tenant)]), "t.toml", *names)


@pytest.mark.parametrize(
    ("extra", "names"),
    [
        ("\n[parity]\ncheck_schema = true\n", ("'parity'", "[tenant]")),
        ("\n[tenants]\nname = 'x'\n", ("'tenants'",)),
        ("\ncolour = 'blue'\n", ("'colour'",)),
    ],
)
def test_unknown_top_level_tables_are_refused(extra: str, names: tuple[str, ...], tmp_path: Path) -> None:
    text = _tenant_text()
    tenant = _write(tmp_path / "t.toml", extra + text if "colour" in extra else text + extra)
    _assert_bad_input(_cli(["plan", "--from-file", str(EDGE_JOBS), "--tenant-file", str(tenant)]), "t.toml", *names)


def test_parity_settings_path_that_is_a_folder(tmp_path: Path) -> None:
    tenant = _write(tmp_path / "t.toml", _tenant_text())
    (tmp_path / "t.parity.toml").mkdir()
    result = _cli(["parity", "--tenant-file", str(tenant), "--report-dir", str(tmp_path / "r")])
    _assert_bad_input(result, "t.parity.toml", "cannot be read")
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    ("loader", "data", "words"),
    [
        (load_manifest, b'{"metadata": {"x": "\xff\xfe"}}', ("not valid JSON",)),
        (load_run_results, b"\xff" * 10, ("not valid JSON",)),
        (load_manifest, _nested(200_000).encode(), ("nested too deeply",)),
    ],
)
def test_damaged_artifacts_name_the_file(
    loader: Callable[[Path], Any], data: bytes, words: tuple[str, ...], tmp_path: Path
) -> None:
    path = _write_bytes(tmp_path / "artifact.json", data)
    with pytest.raises(ArtifactError) as caught:
        loader(path)
    assert caught.value.exit_code == 2 and str(path) in str(caught.value)
    for word in words:
        assert word in str(caught.value)


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("run_results.json", b"\xff" * 10),
        ("manifest.json", b"{not json"),
        ("run_results.json", _nested(200_000).encode()),
    ],
)
def test_damaged_output_of_a_runs_own_step_names_the_file(name: str, data: bytes, tmp_path: Path) -> None:
    # dbt wrote these files for this run: damage to them fails the run (exit 1) and names the file.
    _write_bytes(tmp_path / "run_results.json", b'{"results": []}')
    path = _write_bytes(tmp_path / name, data)
    with pytest.raises(DbtRunError) as caught:
        _node_results(tmp_path, 0)
    assert caught.value.exit_code == 1 and str(path) in str(caught.value) and "cannot be read" in str(caught.value)


# ------------------------------------------------------------------------------------------------ issue 14: ledger


def _ledger_record(job_id: int = 7, **changes: Any) -> LedgerRecord:
    return LedgerRecord(
        tenant="t",
        job_id=job_id,
        seq=1,
        kind=RecordKind.CUTOVER_STARTED,
        operation="op",
        at=utcnow(),
        by="me",
        **changes,
    )


@pytest.mark.parametrize(
    ("damage", "words"),
    [
        (lambda p: p.write_text("{not json"), ("unreadable",)),
        (lambda p: p.write_bytes(b"\xff\xfe\x00"), ("unreadable",)),
        (lambda p: p.write_text(p.read_text().replace('"version": 1', '"version": 0')), ("version",)),
        (lambda p: p.write_text(p.read_text().replace('"kind": "cutover_started"', '"kind": "x"')), ("kind",)),
        (lambda p: p.write_text(p.read_text().replace('"job_id": 7', '"job_id": 8')), ("does not match",)),
        (lambda p: p.write_text(""), ("unreadable",)),
    ],
)
def test_a_damaged_ledger_says_restore_the_ledger(
    damage: Callable[[Path], Any], words: tuple[str, ...], tmp_path: Path
) -> None:
    ledger = Ledger(str(tmp_path), "t")
    ledger.append(_ledger_record())
    path = tmp_path / "t" / "job-7" / "000001-cutover_started.json"
    damage(path)
    with pytest.raises(LedgerDamagedError) as caught:
        ledger.records(7)
    message = str(caught.value)
    assert message.startswith("restore the ledger:") and str(path) in message and caught.value.exit_code == 2
    for word in words:
        assert word in message


def test_a_ledger_record_of_a_future_version_is_refused(tmp_path: Path) -> None:
    ledger = Ledger(str(tmp_path), "t")
    ledger.append(_ledger_record())
    path = tmp_path / "t" / "job-7" / "000001-cutover_started.json"
    path.write_text(path.read_text().replace('"version": 1', '"version": 2'))
    with pytest.raises(LedgerError, match=r"version 2 was written by a newer dbt2prefect.*upgrade") as caught:
        ledger.records(7)
    assert not isinstance(caught.value, LedgerDamagedError) and str(path) in str(caught.value)
    assert caught.value.exit_code == 2


@pytest.mark.parametrize("url", ["memory://l", "simplecache::file:///tmp/l", "zip://a::file:///tmp/x.zip", "ftp://h/l"])
def test_non_durable_ledger_urls_are_refused(url: str) -> None:
    with pytest.raises(LedgerError, match="does not keep what is written") as caught:
        Ledger(url, "t")
    assert caught.value.exit_code == 2


@pytest.mark.parametrize("url", ["s3://bucket/ledger", "gs://b/l", "abfs://c/l", "/tmp/ledger", "file:///tmp/l"])
def test_durable_ledger_urls_are_accepted(url: str) -> None:
    assert durable_url_problem(url) is None


@pytest.mark.parametrize("name", ["..", ".", "a/b", "../x", ""])
def test_ledger_tenant_names_are_checked_before_they_become_folders(name: str, tmp_path: Path) -> None:
    with pytest.raises(LedgerError, match="cannot be a folder name"):
        Ledger(str(tmp_path), name)
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------------------ issue 14: run store


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("{}", ("holds no usable flow_run_id",)),
        ('{"flow_run_id": "../../etc"}', ("holds no usable flow_run_id",)),
        ('{"flow_run_id": 5}', ("holds no usable flow_run_id",)),
        ("{half", ("unreadable",)),
        (b"\xff\xfe", ("unreadable",)),
    ],
)
def test_a_damaged_latest_pointer_names_the_file(content: str | bytes, words: tuple[str, ...], tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path))
    folder = tmp_path / "t" / "d" / "dev"
    folder.mkdir(parents=True)
    path = folder / "latest.json"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(ArtifactStoreError) as caught:
        store.latest("t", "d", "dev")
    assert caught.value.exit_code == 2 and "latest.json" in str(caught.value)
    for word in words:
        assert word in str(caught.value)


@pytest.mark.parametrize("run_id", ["../../..", "..", "a/b", ".x"])
def test_candidate_run_ids_are_checked_before_they_become_paths(run_id: str, tmp_path: Path) -> None:
    (tmp_path / "t" / "d" / "dev").mkdir(parents=True)
    with pytest.raises(ArtifactStoreError, match="cannot be a folder name") as caught:
        ArtifactStore(str(tmp_path)).find_run("t", "d", run_id)
    assert caught.value.exit_code == 2 and repr(run_id) in str(caught.value)


def test_dbt_clean_as_a_step_cleans_the_runs_folders_not_the_projects(tmp_path: Path) -> None:
    project = tmp_path / "project"
    for folder in ("target", "logs", "dbt_packages"):
        (project / folder).mkdir(parents=True)
        (project / folder / "keep.txt").write_text("other runs use this")
    paths = RunPaths(root=tmp_path / "run", project_dir=project, profiles_dir=tmp_path / "profiles")
    paths.step_target(0).mkdir(parents=True)
    (paths.step_target(0) / "manifest.json").write_text("{}")
    invocations = plan_invocations(validate({"steps": ["dbt seed", "dbt clean"]}), "dev", None)
    outcomes = run_invocations(invocations, paths, lean_invoker, start_at=1)
    assert [o.success for o in outcomes] == [True]
    assert not paths.step_target(0).exists()
    assert all((project / folder / "keep.txt").is_file() for folder in ("target", "logs", "dbt_packages"))


def test_latest_moves_only_to_a_run_with_a_manifest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DBT2PREFECT_RUNS_DIR", str(tmp_path / "runs"))
    tenant = load_tenant().model_copy(update={"artifact_store_url": str(tmp_path / "store")})
    params = validate({"command": "clean", "profiles_strategy": "local", "target": "local"})
    outcome = execute(params, tenant, "clean-run", store=Workspace(tenant).store)
    store = ArtifactStore(tenant.artifact_store_url)
    assert outcome.success and store.has(RunKey(tenant.name, tenant.deployment_name, "local", "clean-run"), "run.json")
    assert store.latest(tenant.name, tenant.deployment_name, "local") is None


def test_failed_run_folders_are_pruned_to_the_newest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DBT2PREFECT_RUNS_DIR", str(tmp_path))
    for index in range(5):
        (tmp_path / f"failed-{index}").mkdir()
        (tmp_path / f"failed-{index}" / "progress.json").write_text("{}")
        os.utime(tmp_path / f"failed-{index}" / "progress.json", (1_000_000 + index, 1_000_000 + index))
    (tmp_path / "running").mkdir()
    (tmp_path / "parse-cache").mkdir()
    removed = prune_failed_runs(keep=2)
    assert sorted(p.name for p in removed) == ["failed-0", "failed-1", "failed-2"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["failed-3", "failed-4", "parse-cache", "running"]


# ------------------------------------------------------------------------------------------------ issue 14: retries


class _FailingDbt:
    """Stands in for dbt at the invoker seam: fails with a fixed message and records what it was asked to run."""

    def __init__(self, message: str) -> None:
        self.message = message
        self.calls: list[list[str]] = []

    def __call__(self, args: list[str], paths: RunPaths, target_path: Path) -> tuple[bool, str | None]:
        self.calls.append(list(args))
        return False, self.message


@pytest.mark.parametrize("wrote_results", [False, True])
def test_retry_uses_dbt_retry_only_when_run_results_exist(wrote_results: bool, tmp_path: Path) -> None:
    paths = RunPaths(root=tmp_path / "run", project_dir=tmp_path, profiles_dir=tmp_path)
    if wrote_results:
        paths.step_target(0).mkdir(parents=True)
        (paths.step_target(0) / "run_results.json").write_text('{"results": []}')
    dbt = _FailingDbt("IO Error: Could not set lock on file")
    invocations = plan_invocations(validate({"command": "run"}), "dev", None)
    (outcome,) = run_invocations(invocations, paths, dbt, start_at=0, retry_first=True)
    assert dbt.calls[0][0] == ("retry" if wrote_results else "run")
    assert outcome.error == "IO Error: Could not set lock on file"


def test_a_retry_reports_the_first_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DBT2PREFECT_RUNS_DIR", str(tmp_path / "runs"))
    tenant = load_tenant().model_copy(update={"artifact_store_url": str(tmp_path / "store")})
    params = validate({"command": "run", "profiles_strategy": "local", "target": "local"})
    store = Workspace(tenant).store
    first = execute(params, tenant, "retried-run", run_count=1, invoker=_FailingDbt("IO Error: lock held"), store=store)
    second = execute(
        params, tenant, "retried-run", run_count=2, invoker=_FailingDbt("Could not find previous run"), store=store
    )
    assert first.failure is not None and "IO Error: lock held" in first.failure
    assert second.failure is not None and "Could not find previous run" in second.failure
    assert "first attempt" in second.failure and "IO Error: lock held" in second.failure


def test_sigterm_runs_the_cleanup_that_stops_child_processes(tmp_path: Path) -> None:
    # `sandbox up` holds its Prefect server in a `with` block inside terminate_as_interrupt(): SIGTERM must
    # unwind it as Ctrl-C does, or the server outlives the command.
    marker = tmp_path / "stopped"
    code = (
        "import contextlib, sys, time\n"
        "from cli.common import terminate_as_interrupt\n"
        "try:\n"
        "    with terminate_as_interrupt(), contextlib.ExitStack() as stop:\n"
        f"        stop.callback(lambda: open({str(marker)!r}, 'w').write('x'))\n"
        "        print('ready', flush=True)\n"
        "        time.sleep(60)\n"
        "except KeyboardInterrupt:\n"
        "    sys.exit(130)\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", code], cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True, env={**os.environ}
    )
    assert child.stdout is not None and child.stdout.readline().strip() == "ready"
    child.terminate()
    assert child.wait(timeout=30) == 130
    assert marker.read_text() == "x"


_DBT_JUDGED = {
    "unknown selector": ({"command": "ls", "selector": "no_such_selector"}, "Could not find selector named no_such_"),
    "run-operation args not YAML": (
        {"steps": ["dbt run-operation money --args '{bad: ['"]},
        "is not valid YAML",
    ),
    "state manifest not JSON": (
        {"steps": ["dbt ls --select state:modified --state {state}"]},
        "Could not read WritableManifest",
    ),
}


@pytest.mark.e2e  # real dbt parses the tenant project
@pytest.mark.parametrize("case", list(_DBT_JUDGED), ids=list(_DBT_JUDGED))
def test_input_only_dbt_can_judge_is_bad_input_with_dbts_message(
    case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Real dbt on the tenant project: only dbt knows the project's selectors, macros' arguments and state files.
    overrides, expected = _DBT_JUDGED[case]
    state = tmp_path / "state"
    state.mkdir()
    (state / "manifest.json").write_text("{not json", encoding="utf-8")
    if "steps" in overrides:
        overrides = {"steps": [line.replace("{state}", str(state)) for line in overrides["steps"]]}
    monkeypatch.setenv("DBT2PREFECT_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("DBT2PREFECT_WAREHOUSE_DIR", str(tmp_path / "warehouse"))
    tenant = load_tenant().model_copy(update={"artifact_store_url": str(tmp_path / "store")})
    params = validate({**overrides, "profiles_strategy": "local", "target": "local"})
    with pytest.raises(DbtInputError) as caught:
        execute(params, tenant, "dbt-judged", invoker=lean_invoker, store=Workspace(tenant).store)
    message = str(caught.value)
    assert caught.value.exit_code == 2 and expected in message, message
    assert message.count(expected) == 1 and "Traceback" not in message


def test_other_dbt_exceptions_stay_run_failures() -> None:
    check_input_error(["run"], RuntimeError("IO Error: Could not set lock on file"))
    check_input_error(["run"], None)
