"""run_dbt_wg with `node_task_runs="exceptions"` (task runs only for the nodes that failed, warned or were slow) and
`node_task_runs="states"` (every node's task run recorded from dbt's events).

Real dbt on DuckDB (a small project with a failing and a warning data test) and the session's Prefect API; the same
build in the per-node view ("all") is the reference for names and the run's final state.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prefect.client.schemas.objects import StateType
from prefect.settings import get_current_settings

from bench.events_budget import prefect_http, read_events, settled
from dbt2prefect import compat, state_task_runs
from dbt2prefect.node_states import WARNED_STATE
from dbt2prefect.prefect_gateway import connect_prefect
from dbt2prefect.state_task_runs import SKIPPED_STATE
from flows.dbt_wg_flow import run_dbt_wg
from tests.flows.local_tenant import local_tenant_file

pytestmark = pytest.mark.e2e

NODES = {
    "model.views.m0",
    "model.views.m1",
    "test.views.fails_on_m0",
    "test.views.warns_on_m0",
    "test.views.passes_on_m0",
}


def _project(root: Path) -> Path:
    project = root / "project"
    (project / "models").mkdir(parents=True)
    (project / "tests").mkdir()
    (project / "dbt_project.yml").write_text('name: views\nversion: "1.0"\nprofile: views\n', encoding="utf-8")
    (project / "profiles.yml").write_text(
        f"views:\n  target: local\n  outputs:\n    local:\n      type: duckdb\n      path: {root / 'w.duckdb'}\n"
        "      threads: 2\n",
        encoding="utf-8",
    )
    (project / "models" / "m0.sql").write_text("select 1 as id union all select 2 as id\n", encoding="utf-8")
    (project / "models" / "m1.sql").write_text("select * from {{ ref('m0') }}\n", encoding="utf-8")
    tests = project / "tests"
    (tests / "fails_on_m0.sql").write_text("select * from {{ ref('m0') }} where id = 1\n", encoding="utf-8")
    (tests / "warns_on_m0.sql").write_text(
        "{{ config(severity='warn') }}\nselect * from {{ ref('m0') }} where id = 2\n", encoding="utf-8"
    )
    (tests / "passes_on_m0.sql").write_text("select * from {{ ref('m0') }} where id > 2\n", encoding="utf-8")
    return project


def _settings(root: Path, project: Path, view: str) -> Path:
    return local_tenant_file(root, project, "views", f'\n[tenant.observability]\nnode_task_runs = "{view}"\n')


def _build(root: Path, monkeypatch: pytest.MonkeyPatch, view: str, expect: int = 1, **params: Any) -> dict[str, Any]:
    """One build of the project with the tenant's `node_task_runs = view`; its final state, task runs (waiting for
    `expect` of them at least), artifacts."""
    root.mkdir()
    monkeypatch.setenv("DBT2PREFECT_TENANT_FILE", str(_settings(root, _project(root), view)))
    monkeypatch.setenv("DBT2PREFECT_RUNS_DIR", str(root / "runs"))
    state = run_dbt_wg(command="build", profiles_strategy="local", return_state=True, **params)  # type: ignore[call-overload]
    flow_run_id = state.state_details.flow_run_id
    with connect_prefect() as prefect:
        deadline = time.monotonic() + 30
        while True:  # per-node task runs are recorded from their events, asynchronously
            task_runs = prefect.read_task_runs(flow_run_id)
            final = all(run.state is not None and run.state.is_final() for run in task_runs)
            if (final and len(task_runs) >= expect) or time.monotonic() > deadline:
                break
            time.sleep(0.3)
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        artifacts = [a for a in client.read_artifacts() if a.flow_run_id == flow_run_id]
    table = next(a.data for a in artifacts if a.type == "table")
    return {
        "flow_run_id": flow_run_id,
        "state": state,
        "task_runs": {run.name: run.state for run in task_runs},
        "task_runs_read": task_runs,
        "table": table if isinstance(table, list) else json.loads(str(table)),
        "summary": next(str(a.data) for a in artifacts if a.type == "markdown"),
    }


def test_only_the_failed_and_warned_nodes_get_task_runs_in_their_states(
    prefect_api: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = _build(tmp_path / "exceptions", monkeypatch, "all", node_task_runs="exceptions")  # the parameter wins
    assert sorted(run["task_runs"]) == ["test fails_on_m0", "test warns_on_m0"]
    failed = run["task_runs"]["test fails_on_m0"]
    assert failed.type == StateType.FAILED
    assert failed.message == "test.views.fails_on_m0 fail: Got 1 result, configured to fail if != 0"
    warned = run["task_runs"]["test warns_on_m0"]
    assert (warned.type, warned.name) == (StateType.COMPLETED, WARNED_STATE)
    assert warned.message == "test.views.warns_on_m0 warn: Got 1 result, configured to warn if != 0"
    # Every node stays in the node table, the skipped downstream model too.
    statuses = {row["unique_id"]: row["status"] for row in run["table"]}
    assert set(statuses) == NODES
    assert statuses["model.views.m1"] == "skipped" and statuses["test.views.passes_on_m0"] == "pass"
    assert "**Task runs:** 2 nodes that failed, warned or ran longer than 300 s" in run["summary"]
    assert 'node view: exceptions (the run\'s parameter node_task_runs = "exceptions")' in run["summary"]
    assert "Left out" not in run["summary"]


def test_the_run_ends_as_in_the_per_node_view_whose_task_runs_have_the_same_names(
    prefect_api: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    exceptions = _build(tmp_path / "exceptions", monkeypatch, "exceptions")  # the tenant's setting
    every = _build(tmp_path / "all", monkeypatch, "exceptions", node_task_runs="all")
    assert exceptions["state"].type == every["state"].type == StateType.FAILED
    assert exceptions["state"].message == every["state"].message
    assert sorted(exceptions["task_runs"]) == ["test fails_on_m0", "test warns_on_m0"]
    assert 'node view: exceptions ([tenant.observability] node_task_runs = "exceptions")' in exceptions["summary"]
    names_in_all = set(every["task_runs"])
    assert set(exceptions["task_runs"]) < names_in_all, names_in_all
    for name, state in exceptions["task_runs"].items():
        assert (state.type, state.name) == (every["task_runs"][name].type, every["task_runs"][name].name), name
    assert {row["unique_id"] for row in every["table"]} == NODES


@pytest.mark.parametrize("written_by", ["state events", "state events, Running first", "API requests"])
def test_the_states_view_gives_every_node_a_task_run_ending_in_its_state(
    prefect_api: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, written_by: str
) -> None:
    if written_by == "API requests":  # where the task engine's state events do not apply: the gateway's requests
        monkeypatch.setattr(compat, "_reported", set())
        monkeypatch.setattr(state_task_runs, "WRITTEN_FOR", {"prefect": "0.0."})
    if written_by == "state events, Running first":  # every node as long as a slow one
        monkeypatch.setattr(state_task_runs, "RUNNING_AFTER_SECONDS", 0.0)
    started = datetime.now(UTC)
    run = _build(tmp_path / "states", monkeypatch, "all", expect=len(NODES), node_task_runs="states")
    states = {name: (state.type, state.name, state.message) for name, state in run["task_runs"].items()}
    assert states == {
        "model m0": (StateType.COMPLETED, "Completed", "model.views.m0 success: OK"),
        "test fails_on_m0": (
            StateType.FAILED,
            "Failed",
            "test.views.fails_on_m0 fail: Got 1 result, configured to fail if != 0",
        ),
        "test warns_on_m0": (
            StateType.COMPLETED,
            WARNED_STATE,
            "test.views.warns_on_m0 warn: Got 1 result, configured to warn if != 0",
        ),
        "test passes_on_m0": (StateType.COMPLETED, "Completed", "test.views.passes_on_m0 pass"),
        "model m1": (StateType.COMPLETED, SKIPPED_STATE, "model.views.m1 skipped"),
    }
    assert run["state"].type == StateType.FAILED and "fails_on_m0" in str(run["state"].message)
    assert "**Task runs:** 5 nodes, each recorded from dbt's events, Running first if it ran past 5 s" in run["summary"]
    assert 'node view: states (the run\'s parameter node_task_runs = "states")' in run["summary"]
    assert "Left out" not in run["summary"]
    task_runs = run["task_runs_read"]
    for task_run in task_runs:  # each task run lasts as long as its node, whichever events recorded it
        assert task_run.start_time is not None and task_run.end_time is not None, task_run.name
        assert task_run.total_run_time.total_seconds() > 0, task_run.name
    if written_by != "API requests":
        # 1 event per node that ends within RUNNING_AFTER_SECONDS, 2 for a longer one, related to the flow run as
        # the task engine's are (automations on it see them).
        sent = 1 if written_by == "state events" else 2
        since, until = started - timedelta(seconds=5), datetime.now(UTC) + timedelta(seconds=30)
        with prefect_http(str(get_current_settings().api.url)) as api:

            def task_run_events() -> list[dict[str, Any]]:
                found = read_events(api, since, until, resource=f"prefect.flow-run.{run['flow_run_id']}")
                return [e for e in found if e["event"].startswith("prefect.task-run.")]

            deadline = time.monotonic() + 30
            while len(task_run_events()) < sent * len(NODES) and time.monotonic() < deadline:
                time.sleep(0.5)  # the server stores events in batches
            events = settled(task_run_events)
        per_task_run = Counter(e["resource"]["prefect.resource.id"] for e in events if ".task-run." in e["event"])
        assert len(per_task_run) == len(NODES) and set(per_task_run.values()) == {sent}, per_task_run
