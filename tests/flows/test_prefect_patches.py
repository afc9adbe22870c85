"""The replacements of Prefect's and prefect-dbt's internals change how fast a run is, never what it does.

The same small build runs with every replacement made and with none (the stock path, as on a Prefect or prefect-dbt
version they were not written for), through the sandbox's `prefect_api`, and must give the same node results,
artifacts and task-run states.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import prefect
import prefect.context
import pytest
from prefect import flow_engine, task_engine
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.client.schemas.objects import StateType
from prefect.settings import get_current_settings
from prefect_dbt.core import _tracker, runner

from dbt2prefect import compat, node_budget, node_states, prefect_context, prefect_heartbeat, state_task_runs
from dbt2prefect.artifact_store import ArtifactStore
from dbt2prefect.object_store import open_url
from dbt2prefect.run_events import WARNED_RUN_STATE
from flows.dbt_wg_flow import run_dbt_wg
from sandbox.stack import prefect_api

# Seeds, staging models on sources, and their tests: every kind of node a task run is made for, in a few seconds.
# stg_crm__distributors' accepted_values test of severity warn warns on the sandbox data; with cautious indirect
# selection, only tests whose every parent is selected run (the tables of the others may not exist on dev).
SELECTION = "brand_hierarchy stg_finance__fx_rates country_region_mapping channel_mapping stg_crm__distributors"
CAUTIOUS = {"DBT_INDIRECT_SELECTION": "cautious"}


def _task_run_states(flow_run_id: Any, expected: int) -> dict[str, tuple[str, str]]:
    with get_client(sync_client=True) as client:
        # Task runs reach the API through events, recorded asynchronously: poll until all have a final state.
        deadline = time.monotonic() + 30
        while True:
            runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
            states = {run.name: (str(run.state_type), str(run.state_name)) for run in runs}
            final = all(run.state is not None and run.state.is_final() for run in runs)
            if (len(states) >= expected and final) or time.monotonic() > deadline:
                return states
            time.sleep(0.3)


def _build(copy: Any) -> dict[str, Any]:
    with prefect_api(str(get_current_settings().api.url)):
        state = run_dbt_wg.with_options(retries=0)(  # prefect-dbt's per-node view, which the replacements are in
            command="build", target="dev", select=SELECTION, env_vars=CAUTIOUS, node_task_runs="all", return_state=True
        )
    assert state.is_completed(), state.message
    result: dict[str, Any] = state.result()  # type: ignore[assignment]
    store = ArtifactStore(str(copy.store))
    key = store.find_run("dbt_williamgrant", "dbt_wg", result["flow_run_id"])
    assert key is not None
    fs, _ = open_url(copy.store)
    run_results = store.read_json(key, "run_results.json")
    nodes = {item["unique_id"]: (item["status"], item["failures"]) for item in run_results["results"]}
    manifest = store.read_json(key, "manifest.json")
    summary = store.read_json(key, "run.json")["summary"]
    return {
        "state": (state.type, state.name, state.message),
        "counts": result["counts"],
        "nodes": nodes,
        "files": sorted(str(path).rsplit("/", 1)[-1] for path in fs.ls(store.run_dir(key), detail=False)),
        "manifest_nodes": sorted(manifest["nodes"]),
        "summary": {key: summary[key] for key in ("success", "counts", "failures")},
        "steps": [(step["args"], step["success"], step["nodes"]) for step in summary["steps"]],
        "task_runs": _task_run_states(state.state_details.flow_run_id, len(nodes)),
    }


@pytest.fixture
def stock_prefect(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No replacement made: as on a Prefect version none was written for."""
    prefect_context.uninstall()
    prefect_heartbeat.uninstall()
    node_states.uninstall()
    node_budget.uninstall()
    monkeypatch.setattr(prefect, "__version__", "3.10.0")
    monkeypatch.setattr(compat, "_reported", set())
    yield
    monkeypatch.undo()
    prefect_heartbeat.install()
    node_states.install()
    node_budget.install()


def test_every_replacement_applies_on_the_versions_it_was_written_for() -> None:
    assert prefect_context.install() is True
    assert prefect_heartbeat.install() is True
    assert node_states.install() is True
    assert node_budget.install() is True
    assert state_task_runs.state_events_apply() is True
    assert runner.PrefectDbtRunner._call_task is node_budget._call_task
    assert _tracker.NodeTaskTracker.set_node_status is node_budget._set_node_status
    assert runner.execute_dbt_node.__wrapped__ is node_states._stock[0]  # type: ignore[attr-defined]
    assert runner.hydrated_context is _tracker.hydrated_context is task_engine.hydrated_context  # type: ignore[attr-defined]
    assert runner.hydrated_context is not prefect.context.hydrated_context
    assert flow_engine._send_heartbeats is prefect_heartbeat.send_heartbeats


def test_the_same_build_with_and_without_the_replacements(
    tenant_copy: Any, request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture
) -> None:
    prefect_heartbeat.install()
    patched = _build(tenant_copy)
    assert runner.hydrated_context is not prefect.context.hydrated_context, "the patched build used the hand-off"

    request.getfixturevalue("stock_prefect")
    with caplog.at_level(logging.DEBUG, logger="dbt2prefect.compat"):
        stock = _build(tenant_copy)
        # The stock path really ran: prefect-dbt kept Prefect's own functions throughout.
        assert runner.hydrated_context is prefect.context.hydrated_context
        assert flow_engine._send_heartbeats is not prefect_heartbeat.send_heartbeats
        assert not hasattr(runner.execute_dbt_node, "__wrapped__"), "prefect-dbt's own node function ran"
        assert runner.PrefectDbtRunner._call_task.__module__ == runner.__name__, "prefect-dbt's own _call_task ran"
    skipped = [r.getMessage() for r in caplog.records if r.name == "dbt2prefect.compat"]
    assert sorted(m.split(" is not applied")[0] for m in skipped) == [
        "node_budget",
        "node_states",
        "prefect_context",
        "sandbox global settings context",
    ], "one warning per replacement (the heartbeat's was installed above, before the version changed)"
    assert all("written for prefect 3.9.*, installed 3.10.0" in m for m in skipped)

    # The same outcome, but for the name of the warned node's Completed state (the run's is the flow's own).
    assert patched["state"] == stock["state"]
    assert stock["state"][:2] == (StateType.COMPLETED, WARNED_RUN_STATE)
    warned_test = "test.dbt_williamgrant.accepted_values_stg_crm__distributors_distributor_status"
    assert str(stock["state"][2]).startswith(f"1 node warned: {warned_test}")
    assert patched["nodes"] == stock["nodes"] and len(stock["nodes"]) >= 10
    assert {status for status, _ in stock["nodes"].values()} == {"success", "pass", "warn"}
    assert patched["counts"] == stock["counts"]
    assert patched["files"] == stock["files"] and "dbt.log" in stock["files"], "dbt's log is kept with the artifacts"
    assert patched["manifest_nodes"] == stock["manifest_nodes"]
    assert patched["summary"] == stock["summary"] and patched["steps"] == stock["steps"]
    assert patched["task_runs"].keys() == stock["task_runs"].keys()
    assert len(stock["task_runs"]) == len(stock["nodes"])
    warned = {name for name, (_, state) in patched["task_runs"].items() if state == node_states.WARNED_STATE}
    assert len(warned) == 1 and next(iter(warned)).startswith("test accepted_values_stg_crm__distributors")
    for name, (kind, state) in stock["task_runs"].items():
        assert (kind, state) == (str(StateType.COMPLETED), "Completed")
        assert patched["task_runs"][name] == (kind, node_states.WARNED_STATE if name in warned else state)


def test_a_nodes_task_run_state_from_its_finished_event() -> None:
    failed = {"event_data": {"node_info": {"node_status": "fail"}, "run_result": {"message": "Got 3 results"}}}
    state = node_states.node_state("test.p.t", failed)
    assert state is not None and state.is_failed() and str(state.message).startswith("test.p.t fail in dbt")
    assert "Got 3 results" not in str(state.message), "dbt's error is logged by dbt and in the run's state"
    warned = {"event_data": {"node_info": {"node_status": "warn"}}, "event_message": "1 of 2 WARN 1 t"}
    state = node_states.node_state("test.p.t", warned)
    assert state is not None and state.is_completed() and state.name == node_states.WARNED_STATE
    assert state.message == "test.p.t warn: 1 of 2 WARN 1 t"
    passed = {"event_data": {"node_info": {"node_status": "pass"}}}
    assert node_states.node_state("test.p.t", passed) is None and node_states.node_state("test.p.t", None) is None


def test_a_missing_name_leaves_prefect_dbt_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    prefect_context.uninstall()
    monkeypatch.setattr(compat, "_reported", set())
    monkeypatch.delattr(_tracker, "hydrated_context")
    assert prefect_context.install() is False
    assert runner.hydrated_context is prefect.context.hydrated_context, "all or nothing: the runner keeps its own"
    assert task_engine.hydrated_context is prefect.context.hydrated_context  # type: ignore[attr-defined]
    monkeypatch.undo()
    assert prefect_context.install() is True


def test_a_name_that_is_no_longer_prefects_own_function_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    prefect_context.uninstall()
    monkeypatch.setattr(compat, "_reported", set())

    def their_own(*args: Any, **kwargs: Any) -> Any:
        return prefect.context.hydrated_context(*args, **kwargs)

    monkeypatch.setattr(runner, "hydrated_context", their_own)
    assert prefect_context.install() is False
    assert runner.hydrated_context is their_own
    monkeypatch.undo()
    assert prefect_context.install() is True


def test_a_missing_tracker_name_leaves_the_runner_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    node_budget.uninstall()
    stock = runner.PrefectDbtRunner._call_task
    monkeypatch.setattr(compat, "_reported", set())
    monkeypatch.delattr(_tracker.NodeTaskTracker, "set_node_status")
    assert node_budget.install() is False
    assert runner.PrefectDbtRunner._call_task is stock, "all or nothing: every node keeps its task run"
    monkeypatch.undo()
    assert node_budget.install() is True
    node_budget.uninstall()
    assert runner.PrefectDbtRunner._call_task is stock


def test_a_missing_heartbeat_name_keeps_prefects_heartbeats(monkeypatch: pytest.MonkeyPatch) -> None:
    prefect_heartbeat.uninstall()
    stock = flow_engine._send_heartbeats
    monkeypatch.setattr(compat, "_reported", set())
    monkeypatch.delattr(flow_engine.BaseFlowRunEngine, "_emit_flow_run_heartbeat")
    assert prefect_heartbeat.install() is False
    assert flow_engine._send_heartbeats is stock
    monkeypatch.undo()
    assert prefect_heartbeat.install() is True


def test_without_prefects_private_global_context_the_sandbox_block_still_sets_the_api(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(compat, "_reported", set())
    monkeypatch.delattr(prefect.context, "_temporary_global_settings_context")
    with prefect_api("http://127.0.0.1:9/api"):
        assert str(get_current_settings().api.url) == "http://127.0.0.1:9/api"
