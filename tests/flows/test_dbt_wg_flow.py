"""run_dbt_wg on the tenant project with real dbt on DuckDB and a real Prefect API."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.client.schemas.objects import StateType
from prefect.states import State

from dbt2prefect.artifact_store import ArtifactStore, RunKey
from dbt2prefect.node_states import WARNED_STATE
from dbt2prefect.run_events import WARNED_RUN_STATE
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
    result["state"] = (state.name, state.message)
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
            done = len(task_runs) >= 100 and all(run.state_type == StateType.COMPLETED for run in task_runs)
            if done or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        names = {run.name for run in task_runs}
        assert any(name.startswith("model ") for name in names)
        assert any(name.startswith("test ") for name in names)
        assert len(task_runs) >= 100
        states = {run.state_name for run in task_runs}
        # The sandbox data has an 'inactive' distributor: the accepted_values test of severity warn warns.
        assert states == {"Completed", WARNED_STATE}, f"every node's task run ends Completed, got {states}"
        (warned,) = [run for run in task_runs if run.state_name == WARNED_STATE]
        assert warned.state_type == StateType.COMPLETED
        assert warned.name.startswith("test accepted_values_stg_crm__distributors_distributor_status")
        assert str(warned.state.message).startswith(  # type: ignore[union-attr]
            "test.dbt_williamgrant.accepted_values_stg_crm__distributors_distributor_status"
        )
        assert "warn: Got 1 result, configured to warn if != 0" in str(warned.state.message)  # type: ignore[union-attr]
        artifacts = client.read_artifacts()
    # The flow run ends Completed under a name of its own, naming the warned node.
    name, message = built_dev["state"]
    assert name == WARNED_RUN_STATE and str(message).startswith("1 node warned: test.dbt_williamgrant.accepted_values")
    mine = [a for a in artifacts if a.flow_run_id == flow_run_id]
    kinds = {a.type for a in mine}
    assert {"markdown", "table"} <= kinds
    markdown = next(a for a in mine if a.type == "markdown")
    assert "Nodes by status" in str(markdown.data) and "Slowest nodes" in str(markdown.data)
    assert "succeeded with warnings" in str(markdown.data) and "## Warnings" in str(markdown.data)
    # The tenant's node_task_runs = "auto": its build is small enough for a task run per node ("states").
    assert "\nnode view: states (auto: " in str(markdown.data) and "<= budget 2,000 per minute)" in str(markdown.data)
    warnings = str(markdown.data).split("## Warnings", 1)[1].split("##", 1)[0]
    assert "`test.dbt_williamgrant.accepted_values_stg_crm__distributors_distributor_status" in warnings
    assert "Got 1 result, configured to warn if != 0" in warnings


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
    yield tenant_copy.project_dir
    (tests_dir / "assert_orders_forced_failure.sql").unlink()


def test_failing_test_fails_the_flow_and_names_the_node(failing_project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The variable comes from the `env_vars` parameter (a dbt Cloud job's environment variables), and wins over
    # the process's own value for the run only.
    # Cautious indirect selection: only tests whose every parent is selected run, so the local database needs no
    # build beforehand (a relationships test of an ancestor would otherwise read tables this run does not build).
    monkeypatch.setenv("DBT_WG_FORCE_FAILURE", "0")
    state = run_dbt_wg.with_options(retries=0)(
        command="build",
        target="local",
        profiles_strategy="local",
        select="+assert_orders_forced_failure",
        env_vars={"DBT_WG_FORCE_FAILURE": "1", "DBT_INDIRECT_SELECTION": "cautious"},
        node_task_runs="all",  # prefect-dbt's per-node view, whose failed task runs must not log a traceback
        return_state=True,
    )
    assert state.is_failed()
    assert "test.dbt_williamgrant.assert_orders_forced_failure" in str(state.message)
    assert os.environ["DBT_WG_FORCE_FAILURE"] == "0"
    # A node that failed in dbt is the run's outcome, not a crash: no Python traceback in the run's logs (its
    # task runs' included), and the failed node's task run ends Failed with dbt's message.
    logs = _flow_run_logs(state.state_details.flow_run_id)
    assert logs and not [line for line in logs if "Traceback" in line or "Encountered exception" in line], logs
    failed = [
        run
        for run in _task_runs(state.state_details.flow_run_id)
        if run.name.startswith("test assert_orders_forced_failure")
    ]
    assert [run.state_name for run in failed] == ["Failed"]
    assert "assert_orders_forced_failure fail in dbt" in str(failed[0].state.message)  # type: ignore[union-attr]
    # dbt's error: in dbt's own end-of-run summary and in the run's state message, not once more per Prefect log
    # line (an exception, a task run's final state).
    error = [line for line in logs if "configured to fail if != 0" in line and "Finished in state" not in line]
    assert len(error) == 1, error
    assert "configured to fail if != 0" in str(state.message)


def _task_runs(flow_run_id: Any) -> list[Any]:
    with get_client(sync_client=True) as client:
        deadline = time.monotonic() + 30  # task runs reach the API through events, recorded asynchronously
        while True:
            runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
            if (runs and all(run.state is not None and run.state.is_final() for run in runs)) or (
                time.monotonic() > deadline
            ):
                return runs
            time.sleep(0.3)


def _flow_run_logs(flow_run_id: Any) -> list[str]:
    """The messages of the flow run's logs (its task runs' included), oldest first."""
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.client.schemas.sorting import LogSort
    from prefect.logging.handlers import APILogHandler

    APILogHandler().flush()  # send what this process logged for the run (it has ended: nothing more comes)
    flow_logs = LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id]))
    with get_client(sync_client=True) as client:
        deadline = time.monotonic() + 30
        previous = -1
        while True:
            found: list[Any] = []
            while page := client.read_logs(
                log_filter=flow_logs, sort=LogSort.TIMESTAMP_ASC, limit=200, offset=len(found)
            ):
                found += page
            # The run's last line ("Finished in state ...") is an INFO line, below the suite's PREFECT_LOGGING_LEVEL:
            # the logs are complete when two reads half a second apart find the same ones.
            if (found and len(found) == previous) or time.monotonic() > deadline:
                return [log.message for log in found]
            previous = len(found)
            time.sleep(0.5)
