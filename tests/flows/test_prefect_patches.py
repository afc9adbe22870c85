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
from prefect.settings import get_current_settings
from prefect_dbt.core import _tracker, runner

from dbt2prefect import compat, prefect_context, prefect_heartbeat
from dbt2prefect.artifact_store import ArtifactStore
from dbt2prefect.object_store import open_url
from flows.dbt_wg_flow import run_dbt_wg
from sandbox.stack import prefect_api

# A seed, a staging model on a source, and their tests: every kind of node a task run is made for, in a few seconds.
SELECTION = "brand_hierarchy stg_finance__fx_rates"


def _task_run_states(flow_run_id: Any, expected: int) -> dict[str, str]:
    with get_client(sync_client=True) as client:
        # Task runs reach the API through events, recorded asynchronously: poll until all have a final state.
        deadline = time.monotonic() + 30
        while True:
            runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
            states = {run.name: str(run.state_name) for run in runs}
            final = all(run.state is not None and run.state.is_final() for run in runs)
            if (len(states) >= expected and final) or time.monotonic() > deadline:
                return states
            time.sleep(0.3)


def _build(copy: Any) -> dict[str, Any]:
    with prefect_api(str(get_current_settings().api.url)):
        state = run_dbt_wg.with_options(retries=0)(command="build", target="dev", select=SELECTION, return_state=True)
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
        "state": state.type,
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
    monkeypatch.setattr(prefect, "__version__", "3.10.0")
    monkeypatch.setattr(compat, "_reported", set())
    yield
    monkeypatch.undo()
    prefect_heartbeat.install()


def test_every_replacement_applies_on_the_versions_it_was_written_for() -> None:
    assert prefect_context.install() is True
    assert prefect_heartbeat.install() is True
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
    skipped = [r.getMessage() for r in caplog.records if r.name == "dbt2prefect.compat"]
    assert sorted(m.split(" is not applied")[0] for m in skipped) == [
        "prefect_context",
        "sandbox global settings context",
    ], "one warning per replacement (the heartbeat's was installed above, before the version changed)"
    assert all("written for prefect 3.9.*, installed 3.10.0" in m for m in skipped)

    assert patched["state"] == stock["state"]
    assert patched["nodes"] == stock["nodes"] and len(stock["nodes"]) >= 5
    assert {status for status, _ in stock["nodes"].values()} == {"success", "pass"}
    assert patched["counts"] == stock["counts"]
    assert patched["files"] == stock["files"] and "dbt.log" in stock["files"], "dbt's log is kept with the artifacts"
    assert patched["manifest_nodes"] == stock["manifest_nodes"]
    assert patched["summary"] == stock["summary"] and patched["steps"] == stock["steps"]
    assert patched["task_runs"] == stock["task_runs"]
    assert set(stock["task_runs"].values()) == {"Completed"} and len(stock["task_runs"]) == len(stock["nodes"])


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
