"""run_dbt_wg on the tenant project with real dbt on DuckDB and a real Prefect API."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.events import Event
from prefect.events.filters import EventFilter, EventNameFilter, EventResourceFilter
from prefect.events.worker import EventsWorker
from prefect.states import State

from dbt2prefect.artifact_store import ArtifactStore, RunKey
from dbt2prefect.run_events import RUN_WARNED_EVENT
from dbt2prefect.run_job import parse_cache_dir
from flows.dbt_wg_flow import run_dbt_wg
from sandbox.stack import derive_tenant_file

FAILING_TEST = "select * from {{ ref('stg_erp__orders') }} where {{ env_var('DBT_WG_FORCE_FAILURE', '0') }} = 1\n"


def _run(**params: Any) -> State[Any]:
    return run_dbt_wg(**params, return_state=True)  # type: ignore[no-any-return]


def _record(copy: Any, target: str, flow_run_id: str) -> dict[str, Any]:
    return ArtifactStore(copy.store).read_json(RunKey("dbt_williamgrant", "dbt_wg", target, flow_run_id), "run.json")


def _leftover_profile_dirs() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob("dbt2prefect-profiles-*")}


@pytest.fixture(scope="module")
def built_dev(tenant_copy: Any) -> dict[str, Any]:
    """One full build on target dev through the blocks strategy, shared by the tests that inspect it."""
    # A private temp folder: other processes on a busy machine make profile folders of their own meanwhile.
    private = tempfile.mkdtemp(prefix="dbt2prefect-flow-tmp-")
    saved, tempfile.tempdir = tempfile.tempdir, private
    try:
        state = _run(command="build", target="dev")
        leftover = _leftover_profile_dirs()
    finally:
        tempfile.tempdir = saved
        shutil.rmtree(private, ignore_errors=True)
    assert state.is_completed(), state.message
    result: dict[str, Any] = state.result()  # type: ignore[assignment]
    result["leftover_profiles"] = leftover
    result["flow_run_id_obj"] = state.state_details.flow_run_id
    return result


def test_build_succeeds_and_stores_artifacts(tenant_copy: Any, built_dev: dict[str, Any]) -> None:
    assert built_dev["counts"].get("success", 0) >= 40
    assert "error" not in built_dev["counts"] and "fail" not in built_dev["counts"]
    store = ArtifactStore(str(tenant_copy.store))
    latest = store.latest("dbt_williamgrant", "dbt_wg", "dev")
    assert latest is not None and latest.flow_run_id == built_dev["flow_run_id"]
    run_results = store.read_json(latest, "run_results.json")
    assert run_results["args"]["which"] == "build"
    assert store.has(latest, "manifest.json")
    assert store.has(latest, "dbt.log"), "dbt's log is kept with the artifacts"
    record = store.read_json(latest, "run.json")
    assert record["success"] is True and record["parameters"]["profiles_strategy"] == "blocks"
    assert built_dev["leftover_profiles"] == set(), "the private profiles dir must be removed after the run"
    cache = parse_cache_dir(tenant_copy.project_dir.resolve(), "dev") / "partial_parse.msgpack"
    assert cache.is_file(), "the partial parse result is kept for the next run of this project and target"


def test_build_creates_per_node_task_runs_and_summary_artifacts(built_dev: dict[str, Any]) -> None:
    flow_run_id = built_dev["flow_run_id_obj"]
    with get_client(sync_client=True) as client:
        # Task runs reach the API through events, recorded asynchronously: poll briefly.
        deadline = time.monotonic() + 30
        while True:
            task_runs = client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])), limit=200
            )
            done = len(task_runs) >= 100 and all(run.state_name == "Completed" for run in task_runs)
            if done or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        names = {run.name for run in task_runs}
        assert any(name.startswith("model ") for name in names)
        assert any(name.startswith("test ") for name in names)
        assert len(task_runs) >= 100
        states = {run.state_name for run in task_runs}
        assert states == {"Completed"}, f"every node's task run ends Completed, got {states}"
        artifacts = client.read_artifacts()
    mine = [a for a in artifacts if a.flow_run_id == flow_run_id]
    kinds = {a.type for a in mine}
    assert {"markdown", "table"} <= kinds
    markdown = next(a for a in mine if a.type == "markdown")
    assert "Nodes by status" in str(markdown.data) and "Slowest nodes" in str(markdown.data)


def test_state_latest_defers_to_the_last_successful_run(tenant_copy: Any, built_dev: dict[str, Any]) -> None:
    state = _run(command="build", target="dev", select="state:modified", state_path="latest")
    assert state.is_completed(), state.message
    result: dict[str, Any] = state.result()  # type: ignore[assignment]
    assert result["counts"] == {}, "nothing changed since the latest run, so state:modified selects nothing"
    args = _record(tenant_copy, "dev", result["flow_run_id"])["summary"]["steps"][0]["args"]
    assert "--state" in args and "--defer" in args


def test_state_latest_without_a_previous_run_is_a_clear_error(
    tenant_copy: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An empty artifact store of its own: other tests of the session may have run on prod already.
    empty = {"artifact_store_url": str(tmp_path / "store")}
    tenant_file = derive_tenant_file(
        tmp_path / tenant_copy.settings_file.name, tenant_copy.settings_file, overrides=empty
    )
    monkeypatch.setenv("DBT2PREFECT_TENANT_FILE", str(tenant_file))
    state = _run(command="run", target="prod", state_path="latest")
    assert state.is_failed()
    assert "no successful run of dbt_wg on target 'prod'" in str(state.message)


def test_invalid_parameters_fail_before_dbt_starts(tenant_copy: Any) -> None:
    state = _run(command="build", vars="[not, a, mapping]")
    assert state.is_failed()
    assert "parameter 'vars'" in str(state.message)


def test_a_missing_secret_block_fails_before_dbt_starts(tenant_copy: Any) -> None:
    state = _run(command="build", secret_env_vars={"DBT_ENV_SECRET_KEY": "no-such-secret-block"})
    assert state.is_failed()
    assert "DBT_ENV_SECRET_KEY" in str(state.message) and "'no-such-secret-block'" in str(state.message)
    assert "DBT_ENV_SECRET_KEY" not in os.environ


@pytest.fixture(scope="module")
def failing_project(tenant_copy: Any) -> Path:
    tests_dir = tenant_copy.project_dir / "tests"
    (tests_dir / "assert_orders_forced_failure.sql").write_text(FAILING_TEST)
    # Build the local database once (lean mode), so that relationship tests picked up by selections resolve.
    full = run_dbt_wg.with_options(retries=0)(
        command="build", target="local", profiles_strategy="local", per_node_tasks=False, return_state=True
    )
    assert full.is_completed(), full.message
    yield tenant_copy.project_dir
    (tests_dir / "assert_orders_forced_failure.sql").unlink()


def test_failing_test_fails_the_flow_and_names_the_node(failing_project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The variable comes from the `env_vars` parameter (a dbt Cloud job's environment variables), and wins over
    # the process's own value for the run only.
    monkeypatch.setenv("DBT_WG_FORCE_FAILURE", "0")
    state = run_dbt_wg.with_options(retries=0)(
        command="build",
        target="local",
        profiles_strategy="local",
        select="+assert_orders_forced_failure",
        env_vars={"DBT_WG_FORCE_FAILURE": "1"},
        return_state=True,
    )
    assert state.is_failed()
    assert "test.dbt_williamgrant.assert_orders_forced_failure" in str(state.message)
    assert os.environ["DBT_WG_FORCE_FAILURE"] == "0"


def test_flow_retry_reruns_from_the_point_of_failure(
    tenant_copy: Any, failing_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DBT_WG_FORCE_FAILURE", "1")
    attempts: list[int] = []

    def fix_between_attempts(flow: Any, flow_run: Any, state: Any) -> None:
        attempts.append(flow_run.run_count)
        if len(attempts) > 1:
            os.environ["DBT_WG_FORCE_FAILURE"] = "0"

    flow = run_dbt_wg.with_options(retries=1, retry_delay_seconds=0, on_running=[fix_between_attempts])
    state = flow(
        command="build",
        target="local",
        profiles_strategy="local",
        select="+assert_orders_forced_failure",
        return_state=True,
    )
    assert state.is_completed(), state.message
    assert len(attempts) == 2
    result: dict[str, Any] = state.result()  # type: ignore[assignment]
    record = _record(tenant_copy, "local", result["flow_run_id"])
    assert record["attempt"] == 2
    (step,) = record["summary"]["steps"]
    assert step["args"][0] == "retry" and step["label"].startswith("dbt retry")


def test_steps_run_in_order_and_stop_at_the_first_failure(
    tenant_copy: Any, failing_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DBT_WG_FORCE_FAILURE", "1")
    flow = run_dbt_wg.with_options(retries=0)
    ok = flow(
        steps=["dbt seed", "dbt run --select staging"], target="local", profiles_strategy="local", return_state=True
    )
    assert ok.is_completed(), ok.message
    result: dict[str, Any] = ok.result()  # type: ignore[assignment]
    labels = [s["label"] for s in _record(tenant_copy, "local", result["flow_run_id"])["summary"]["steps"]]
    assert labels == ["dbt seed", "dbt run --select staging"]

    failed = flow(
        steps=["dbt test --select assert_orders_forced_failure", "dbt run --select staging"],
        target="local",
        profiles_strategy="local",
        generate_docs=True,
        return_state=True,
    )
    assert failed.is_failed()
    assert "step 0" in str(failed.message)


def _warned_events(flow_run_ids: list[str]) -> list[Event]:
    resources = [f"prefect.flow-run.{flow_run_id}" for flow_run_id in flow_run_ids]
    events = EventFilter(event=EventNameFilter(name=[RUN_WARNED_EVENT]), resource=EventResourceFilter(id=resources))
    with get_client(sync_client=True) as client:
        return client.read_events(events, limit=50).events


def test_a_run_in_which_a_test_warned_emits_one_warned_event(tenant_copy: Any, failing_project: Path) -> None:
    # The sandbox data has an 'inactive' distributor: the accepted_values test of severity warn on
    # stg_crm__distributors.distributor_status warns; the sales reps' tests pass.
    flow = run_dbt_wg.with_options(retries=0)
    job = {"dbt_cloud_job_id": 4216, "dbt_cloud_job_name": "Distributor checks"}
    lean = {"command": "test", "target": "local", "profiles_strategy": "local", "per_node_tasks": False, **job}
    clean = flow(select="stg_crm__sales_reps", **lean, return_state=True)
    warned = flow(select="stg_crm__distributors", **lean, return_state=True)
    assert clean.is_completed(), clean.message
    assert warned.is_completed(), warned.message
    runs = {name: str(state.state_details.flow_run_id) for name, state in (("clean", clean), ("warned", warned))}
    assert set(_record(tenant_copy, "local", runs["clean"])["summary"]["counts"]) == {"pass"}

    EventsWorker.drain_all(timeout=30, at_exit=False)  # the flow's events are sent in the background
    deadline = time.monotonic() + 30  # and the server records them asynchronously
    while not (events := _warned_events(list(runs.values()))) and time.monotonic() < deadline:
        time.sleep(0.5)
    (event,) = events
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(warned.state_details.flow_run_id)  # type: ignore[arg-type]
    assert run.name.startswith("job-4216 Distributor checks ("), run.name
    assert event.resource.root == {
        "prefect.resource.id": f"prefect.flow-run.{run.id}",
        "prefect.resource.name": run.name,
    }
    related = {resource.role: resource for resource in event.related}
    assert "deployment" not in related, "the flow function was called directly: no deployment"
    assert related["flow"].id == f"prefect.flow.{run.flow_id}" and related["flow"].name == "run_dbt_wg"
    assert "prefect.tag.dbt-cloud-job-4216" in {r.id for r in event.related if r.role == "tag"}
    assert event.payload["warned_nodes"] == 1 and event.payload["dbt_cloud_job_id"] == 4216
    (unique_id,) = event.payload["unique_ids"]
    assert unique_id.startswith("test.dbt_williamgrant.accepted_values_stg_crm__distributors_distributor_status")
    counts = _record(tenant_copy, "local", runs["warned"])["summary"]["counts"]
    assert counts["warn"] == 1 and set(counts) == {"pass", "warn"}


def test_checkbox_steps_do_not_fail_the_run(tenant_copy: Any) -> None:
    state = run_dbt_wg.with_options(retries=0)(
        command="run",
        select="staging",
        target="local",
        profiles_strategy="local",
        source_freshness=True,
        generate_docs=True,
        per_node_tasks=False,
        return_state=True,
    )
    assert state.is_completed(), state.message
    result: dict[str, Any] = state.result()  # type: ignore[assignment]
    store = ArtifactStore(str(tenant_copy.store))
    key = store.find_run("dbt_williamgrant", "dbt_wg", result["flow_run_id"])
    assert key is not None
    assert store.has(key, "catalog.json") and store.has(key, "sources.json")
    assert store.read_json(key, "run_results.json")["args"]["which"] == "run"


def test_two_concurrent_runs_do_not_clobber_each_other(tenant_copy: Any) -> None:
    from prefect.settings import PREFECT_API_URL

    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value())}
    # Lean: the run folders, profiles and artifact keys at stake are the same with or without per-node tasks.
    base = [sys.executable, "-m", "cli", "run", "--select", "staging", "--command", "run", "--lean"]
    procs = [
        subprocess.Popen(
            [*base, "--target", target], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        for target in ("dev", "prod")
    ]
    outputs = [proc.communicate(timeout=600)[0] for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], outputs
    store = ArtifactStore(str(tenant_copy.store))
    dev = store.latest("dbt_williamgrant", "dbt_wg", "dev")
    prod = store.latest("dbt_williamgrant", "dbt_wg", "prod")
    assert dev is not None and prod is not None and dev.flow_run_id != prod.flow_run_id
    for key in (dev, prod):
        assert store.read_json(key, "run.json")["target"] == key.target
