"""A run's outcome is dbt's: no automatic retry turns a failed build into a success (issue 31, point 1).

Real dbt on DuckDB and the session's Prefect API, on two small projects: one whose model reads a table that the
project's `on-run-end` hook creates (bare `dbt build` fails; `dbt retry` would pass), one whose model attaches a
DuckDB file that another process holds locked (a transient failure that passes once the lock is gone).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
from prefect.client.orchestration import get_client
from typer.testing import CliRunner

from app.workspace import Workspace
from cli.app import app
from dbt2prefect.artifact_store import ArtifactStore
from dbt2prefect.dbt_run import lean_invoker
from dbt2prefect.params import validate
from dbt2prefect.run_job import execute
from dbt2prefect.tenant import load_tenant
from tests.flows.local_tenant import local_tenant_file

PROFILE = """hooked:
  target: local
  outputs:
    local:
      type: duckdb
      path: {path}
"""


def _tenant(root: Path, project: Path, retries: str = "delay_seconds = 0") -> Path:
    return local_tenant_file(root, project, "hooked", f"\n[tenant.retries]\n{retries}\n")


def _project(root: Path, models: dict[str, str], hooks: str = "") -> Path:
    project = root / "project"
    (project / "models").mkdir(parents=True)
    (project / "dbt_project.yml").write_text(
        f'name: hooked\nversion: "1.0"\nprofile: hooked\n{hooks}', encoding="utf-8"
    )
    (project / "profiles.yml").write_text(PROFILE.format(path=root / "warehouse.duckdb"), encoding="utf-8")
    for name, sql in models.items():
        (project / "models" / f"{name}.sql").write_text(sql, encoding="utf-8")
    return project


@pytest.fixture
def runs_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DBT2PREFECT_RUNS_DIR", str(tmp_path / "runs"))
    return tmp_path / "runs"


def _records(root: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted((root / "store").rglob("run.json"))]


def test_a_build_that_fails_only_on_ordering_fails_the_run_on_its_first_attempt(
    prefect_api: None, tmp_path: Path, runs_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hook = 'on-run-end:\n  - "create table if not exists made_by_hook as select 1 as id"\n'
    project = _project(tmp_path, {"reads_hook": "select * from made_by_hook\n"}, hooks=hook)
    settings = _tenant(tmp_path, project, retries="transient = 1\ndelay_seconds = 0")
    bare = subprocess.run(
        [
            str(Path(sys.executable).parent / "dbt"),
            "build",
            "--project-dir",
            str(project),
            "--profiles-dir",
            str(project),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert bare.returncode == 1, "bare dbt fails this build"
    (tmp_path / "warehouse.duckdb").unlink()  # the hook made the table: start again from an empty warehouse

    monkeypatch.setenv("DBT2PREFECT_TENANT_FILE", str(settings))
    result = CliRunner().invoke(
        app,
        ["run", "--lean", "--command", "build", "--profiles-strategy", "local", "--tenant-file", str(settings)],
        env={"COLUMNS": "300"},
    )
    assert result.exit_code == 1, result.output
    assert "succeeded" not in result.output and "made_by_hook does not exist" in result.output
    (record,) = _records(tmp_path)
    assert record["success"] is False and record["attempt"] == 1
    (attempt,) = record["attempts"]
    assert attempt["transient"] is None and attempt["retried"] is False
    (step,) = record["summary"]["steps"]
    assert step["args"][0] == "build", "a deterministic failure is never rerun with `dbt retry`"


class _Lock:
    """Another process holding a DuckDB file open for writing, as a second writer does in production."""

    def __init__(self, path: Path) -> None:
        code = "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('held', flush=True); time.sleep(600)"
        self.process = subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None and self.process.stdout.readline().strip() == "held"

    def release(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


@pytest.fixture
def locked(tmp_path: Path) -> Iterator[tuple[Path, _Lock]]:
    other = tmp_path / "other.duckdb"
    duckdb.connect(str(other)).close()
    lock = _Lock(other)
    yield other, lock
    if lock.process.poll() is None:
        lock.release()


def _locked_project(root: Path, other: Path) -> Path:
    attach = (
        f"{{{{ config(pre_hook=\"attach if not exists '{other}' as other\", "
        "post_hook='detach database if exists other') }}\n"
    )
    return _project(
        root,
        {
            "first": "select 1 as id\n",
            "attaches": attach + "select 2 as id\n",
            "after": "select * from {{ ref('attaches') }}\n",
        },
    )


@pytest.mark.slow  # real dbt builds (lean mode, in-process)
def test_a_transient_lock_is_retried_and_every_attempt_is_kept(
    tmp_path: Path, runs_dir: Path, locked: tuple[Path, _Lock]
) -> None:
    other, lock = locked
    project = _locked_project(tmp_path, other)
    tenant = load_tenant(_tenant(tmp_path, project))
    params = validate({"command": "build", "profiles_strategy": "local", "target": "local"})
    told: list[dict[str, Any]] = []

    def release_and_note(attempt: dict[str, Any]) -> None:
        told.append(attempt)
        lock.release()

    outcome = execute(
        params, tenant, "locked-run", invoker=lean_invoker, on_retry=release_and_note, store=Workspace(tenant).store
    )

    assert outcome.success, outcome.failure
    (first,) = told
    assert first["transient"] == "lock" and "Could not set lock" in first["failure"]
    assert (
        outcome.note is not None and "succeeded on attempt 2" in outcome.note and "Could not set lock" in outcome.note
    )
    store = ArtifactStore(str(tmp_path / "store"))
    (record,) = _records(tmp_path)
    assert record["attempt"] == 2 and record["attempts"] == [first]
    assert record["summary"]["failed_attempts"] == [first]
    key = store.latest("hooked", "hooked_dbt", "local")
    assert key is not None
    merged = {r["unique_id"]: r["status"] for r in store.read_json(key, "run_results.json")["results"]}
    assert merged == {f"model.hooked.{n}": "success" for n in ("first", "attaches", "after")}
    attempt_1 = {r["unique_id"]: r["status"] for r in store.read_json(key, "run_results.attempt-1.json")["results"]}
    assert attempt_1 == {
        "model.hooked.first": "success",
        "model.hooked.attaches": "error",
        "model.hooked.after": "skipped",
    }
    attempt_2 = {r["unique_id"] for r in store.read_json(key, "run_results.attempt-2.json")["results"]}
    assert attempt_2 == {"model.hooked.attaches", "model.hooked.after"}, "dbt retry reran only what had not passed"


@pytest.mark.slow  # a real dbt build (lean mode, in-process)
def test_no_retry_when_the_tenant_turns_them_off(tmp_path: Path, runs_dir: Path, locked: tuple[Path, _Lock]) -> None:
    other, _ = locked
    project = _locked_project(tmp_path, other)
    tenant = load_tenant(_tenant(tmp_path, project, retries="transient = 0"))
    params = validate({"command": "build", "profiles_strategy": "local", "target": "local"})
    outcome = execute(params, tenant, "no-retry", invoker=lean_invoker, store=Workspace(tenant).store)
    assert outcome.failure is not None and "Could not set lock" in outcome.failure
    (record,) = _records(tmp_path)
    assert record["attempts"][0]["transient"] == "lock" and record["attempts"][0]["retried"] is False


def test_the_flow_reports_a_retried_success_in_its_state_and_the_cli(
    prefect_api: None, tmp_path: Path, runs_dir: Path, locked: tuple[Path, _Lock], monkeypatch: pytest.MonkeyPatch
) -> None:
    other, lock = locked
    project = _locked_project(tmp_path, other)
    # The lock goes once the first attempt has written its results (the flow's retries wait for that).
    settings = _tenant(tmp_path, project, retries="transient = 3\ndelay_seconds = 2")

    def release_when_the_first_attempt_ended() -> None:
        deadline = time.monotonic() + 600
        while not any(runs_dir.rglob("run_results.json")) and time.monotonic() < deadline:
            time.sleep(0.1)
        lock.release()

    threading.Thread(target=release_when_the_first_attempt_ended, daemon=True).start()
    monkeypatch.setenv("DBT2PREFECT_TENANT_FILE", str(settings))
    result = CliRunner().invoke(
        app,
        ["run", "--lean", "--command", "build", "--profiles-strategy", "local", "--tenant-file", str(settings)],
        env={"COLUMNS": "300"},
    )
    assert result.exit_code == 0, result.output
    assert "succeeded" in result.output
    assert "attempt 1 failed (transient: lock, retried automatically)" in " ".join(result.output.split())
    (record,) = _records(tmp_path)
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(record["flow_run_id"])
    assert run.state is not None and run.state.is_completed()
    assert "succeeded on attempt" in str(run.state.message) and "Could not set lock" in str(run.state.message)


MODELS = 30


def test_sigterm_stops_a_per_node_run_promptly(prefect_api: None, tmp_path: Path) -> None:
    from prefect.settings import get_current_settings

    slow = "{{ config(materialized='table') }}\nselect sum(hash(i)) as s from range(100000000) t(i)\n"
    project = _project(tmp_path, {f"m{i:02d}": slow for i in range(MODELS)})
    profiles = (project / "profiles.yml").read_text(encoding="utf-8")
    (project / "profiles.yml").write_text(profiles + "      threads: 1\n", encoding="utf-8")
    settings = _tenant(tmp_path, project)
    runs = tmp_path / "runs"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DBT2PREFECT_")}
    # INFO: dbt logs each node's result at the level Prefect logs at.
    env.update(PREFECT_API_URL=str(get_current_settings().api.url), DBT2PREFECT_RUNS_DIR=str(runs))
    env.update(PREFECT_LOGGING_LEVEL="INFO")
    command = ["run", "--command", "build", "--profiles-strategy", "local", "--tenant-file", str(settings)]
    run = subprocess.Popen(
        [sys.executable, "-m", "cli", *command], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 300
        built_before = 0
        while time.monotonic() < deadline and run.poll() is None and not built_before:
            built_before = sum(p.read_text(errors="replace").count(f" of {MODELS} OK") for p in runs.rglob("dbt.log"))
            time.sleep(0.1)
        assert run.poll() is None, "the run ended before it could be stopped"
        run.send_signal(signal.SIGTERM)
        output, _ = run.communicate(timeout=300)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode != 0, output
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as warehouse:
        (built,) = warehouse.execute("select count(*) from information_schema.tables").fetchone()  # type: ignore[misc]
    # One thread: at most the node in flight when the signal came, and the one dbt may have started meanwhile.
    assert built <= built_before + 2, f"dbt went on building after SIGTERM: {built} tables, {built_before} before"
    (results,) = runs.rglob("run_results.json")
    assert len(json.loads(results.read_text())["results"]) < MODELS, "dbt stopped as on Ctrl-C, writing its results"
