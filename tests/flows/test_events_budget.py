"""run_dbt_wg stays under `[tenant.observability] logs_events_per_minute` and says what it left out.

Real dbt on DuckDB (a project of 30 small models) and the session's Prefect API; what the run sent is read back from
the API as bench/events_budget.py reads it (events about the flow run or related to it, log lines of the flow run
and its task runs).
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.logging.handlers import APILogHandler
from prefect.settings import get_current_settings

from bench.events_budget import parse_time, peak_per_minute, prefect_http, read_events, read_logs, settled
from dbt2prefect import compat, node_budget
from dbt2prefect.node_budget import NODE_COST
from flows.dbt_wg_flow import run_dbt_wg
from tests.flows.local_tenant import local_tenant_file

MODELS = 30


def _project(root: Path) -> Path:
    project = root / "project"
    (project / "models").mkdir(parents=True)
    (project / "dbt_project.yml").write_text('name: budget\nversion: "1.0"\nprofile: budget\n', encoding="utf-8")
    (project / "profiles.yml").write_text(
        f"budget:\n  target: local\n  outputs:\n    local:\n      type: duckdb\n      path: {root / 'w.duckdb'}\n"
        "      threads: 4\n",
        encoding="utf-8",
    )
    for i in range(MODELS):
        upstream = f"select * from {{{{ ref('m{i - 1:02d}') }}}}" if i % 5 else f"select {i} as id"
        (project / "models" / f"m{i:02d}.sql").write_text(upstream + "\n", encoding="utf-8")
    return project


def _settings(root: Path, project: Path, budget: int | None, view: str) -> Path:
    """A budget is tried on the `view` ("auto" takes "states" for 30 nodes over a budget of 200); without one, the
    tenant's defaults."""
    table = f'\n[tenant.observability]\nlogs_events_per_minute = {budget}\nnode_task_runs = "{view}"\n'
    return local_tenant_file(root, project, "budget", table if budget is not None else "")


def _run(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    budget: int | None,
    view: str = "all",
    expect_task_runs: int = 1,
) -> dict[str, Any]:
    """One build of the project; what the run sent and what it shows, read back from the API. `expect_task_runs`: how
    many task runs to wait for at least (the server records them from their events, after the flow has returned)."""
    settings = _settings(tmp_path, _project(tmp_path), budget, view)
    monkeypatch.setenv("DBT2PREFECT_TENANT_FILE", str(settings))
    monkeypatch.setenv("DBT2PREFECT_RUNS_DIR", str(tmp_path / "runs"))
    started = datetime.now().astimezone()
    state = run_dbt_wg(command="build", profiles_strategy="local", return_state=True)  # type: ignore[call-overload]
    finished = datetime.now().astimezone()
    assert state.is_completed(), state.message
    flow_run_id = state.state_details.flow_run_id
    with get_client(sync_client=True) as client:
        deadline = time.monotonic() + 30
        while True:  # task runs are recorded from their events, asynchronously
            task_runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
            final = all(run.state is not None and run.state.is_final() for run in task_runs)
            if (final and len(task_runs) >= expect_task_runs) or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        artifacts = [a for a in client.read_artifacts() if a.flow_run_id == flow_run_id]
    with prefect_http(str(get_current_settings().api.url)) as api:
        since, until = started - timedelta(seconds=5), finished + timedelta(seconds=30)
        events = settled(lambda: read_events(api, since, until, resource=f"prefect.flow-run.{flow_run_id}"))
        APILogHandler().flush()  # sends the queued batch and waits for it
        logs = settled(lambda: read_logs(api, str(flow_run_id)))
    times = [parse_time(e["occurred"]) for e in events] + [parse_time(line["timestamp"]) for line in logs]
    return {
        "task_runs": {run.name: str(run.state_name) for run in task_runs},
        "summary": next(str(a.data) for a in artifacts if a.type == "markdown"),
        "table": next(a.data for a in artifacts if a.type == "table"),
        "sent": len(events) + len(logs),
        "peak": peak_per_minute(times)[0],
    }


def test_a_small_budget_is_kept_and_the_summary_says_what_was_left_out(
    prefect_api: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = _run(tmp_path, monkeypatch, budget=200)
    admitted = len(run["task_runs"])
    assert 1 <= admitted <= (200 - node_budget.FLOW_RESERVE) // NODE_COST
    assert set(run["task_runs"].values()) == {"Completed"}
    assert run["peak"] <= 200, f"{run['peak']} log lines and events in 60 s, over the budget of 200"
    section = run["summary"].split("## Left out of Prefect", 1)[1]
    assert f"{MODELS - admitted} of {MODELS} nodes ran without a task run" in section
    assert "logs_events_per_minute = 200" in section
    # Every node's status stays visible: the node table lists all of them.
    rows = run["table"] if isinstance(run["table"], list) else json.loads(run["table"])
    assert sorted(row["unique_id"] for row in rows) == [f"model.budget.m{i:02d}" for i in range(MODELS)]
    assert {row["status"] for row in rows} == {"success"}


def test_auto_takes_the_states_view_and_sends_at_most_1_5_per_node_under_a_small_budget(
    prefect_api: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = _run(tmp_path, monkeypatch, budget=200, view="auto", expect_task_runs=MODELS)
    reason = f"auto: {MODELS} nodes x 2 <= budget 200 per minute"
    assert f"\nnode view: states ({reason})\n" in run["summary"]
    assert len(run["task_runs"]) == MODELS and set(run["task_runs"].values()) == {"Completed"}
    assert "Left out" not in run["summary"]
    assert run["sent"] <= 1.5 * MODELS, f"{run['sent']} log lines and events for {MODELS} nodes"
    assert run["peak"] <= 200
    rows = run["table"] if isinstance(run["table"], list) else json.loads(run["table"])
    assert sorted(row["unique_id"] for row in rows) == [f"model.budget.m{i:02d}" for i in range(MODELS)]
    assert {row["status"] for row in rows} == {"success"}


def test_the_default_budget_gives_every_node_its_task_run(
    prefect_api: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = _run(tmp_path, monkeypatch, budget=None, expect_task_runs=MODELS)
    assert len(run["task_runs"]) == MODELS and set(run["task_runs"].values()) == {"Completed"}
    assert "Left out" not in run["summary"]
    assert run["peak"] <= 2000
    # The default node view, "auto", is "states" for a project this small.
    assert f"\nnode view: states (auto: {MODELS} nodes x 2 <= budget 2,000 per minute)\n" in run["summary"]


def test_without_the_replacement_every_node_gets_its_task_run_whatever_the_budget(
    prefect_api: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    node_budget.uninstall()
    monkeypatch.setattr(compat, "_reported", set())
    monkeypatch.setattr(node_budget, "WRITTEN_FOR", {"prefect-dbt": "0.0."})
    try:
        assert node_budget.install() is False
        run = _run(tmp_path, monkeypatch, budget=200)
    finally:
        monkeypatch.undo()
        node_budget.install()
    assert len(run["task_runs"]) == MODELS, "the stock path: a task run per node, as before the budget"
    assert "Left out" not in run["summary"]
