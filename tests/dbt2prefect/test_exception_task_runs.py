"""The "exceptions" node view: which nodes get a task run, named and ended how, under the budget."""

from __future__ import annotations

from pathlib import Path
from uuid import UUID

import pytest
from prefect.client.schemas.objects import StateType
from pydantic import ValidationError

from dbt2prefect.dbt_run import NodeResult, StepOutcome
from dbt2prefect.errors import ParameterError
from dbt2prefect.exception_task_runs import RECORDED_COST, exceptional, record
from dbt2prefect.exception_task_runs import budget as exception_budget
from dbt2prefect.node_budget import FLOW_RESERVE, NodeBudget
from dbt2prefect.params import validate
from dbt2prefect.prefect_gateway import PrefectApiError
from dbt2prefect.prefect_gateway_memory import MemoryPrefect
from dbt2prefect.summary import summarize, to_markdown
from dbt2prefect.tenant import ObservabilitySettings


def _node(name: str, status: str, seconds: float = 1.0, kind: str = "model", message: str = "") -> NodeResult:
    return NodeResult(f"{kind}.p.{name}", kind, name, status, seconds, message, step=1)


NODES = [
    _node("ok", "success"),
    _node("broken", "error", message="Runtime Error\n  column x does not exist"),
    _node("not_null_id", "warn", kind="test", message="Got 2 results, configured to warn if != 0"),
    _node("unique_id", "fail", kind="test", message="Got 1 result, configured to fail if != 0"),
    _node("slow", "success", seconds=400.0),
    _node("skipped", "skipped"),
]


def _flow_run(memory: MemoryPrefect) -> UUID:
    deployment_id = memory.create_deployment("run_dbt_wg", "d", [], {})
    return memory.create_flow_run(deployment_id).id


def test_failed_warned_and_slow_nodes_get_a_task_run_ending_in_their_state() -> None:
    memory = MemoryPrefect()
    flow_run_id = _flow_run(memory)
    recorded = record(memory, flow_run_id, NODES, 300.0, NodeBudget(2000)).count
    runs = {run.name: run.state for run in memory.read_task_runs(flow_run_id)}
    assert recorded == 4
    assert sorted(runs) == ["model broken", "model slow", "test not_null_id", "test unique_id"]
    states = {name: (s.type, s.name) for name, s in runs.items() if s is not None}
    assert states == {
        "model broken": (StateType.FAILED, "Failed"),
        "test unique_id": (StateType.FAILED, "Failed"),
        "test not_null_id": (StateType.COMPLETED, "Warned"),
        "model slow": (StateType.COMPLETED, "Completed"),
    }
    messages = {name: s.message for name, s in runs.items() if s is not None}
    assert messages["model broken"] == "model.p.broken error: Runtime Error column x does not exist"
    assert messages["test not_null_id"] == "test.p.not_null_id warn: Got 2 results, configured to warn if != 0"
    assert messages["model slow"] == (
        "model.p.slow success in 400.0 s, longer than [tenant.observability] slow_node_seconds = 300"
    )


def test_recording_again_answers_the_task_runs_already_there() -> None:
    memory = MemoryPrefect()
    flow_run_id = _flow_run(memory)
    record(memory, flow_run_id, NODES, 300.0, NodeBudget(2000))
    record(memory, flow_run_id, NODES, 300.0, NodeBudget(2000))
    assert len(memory.read_task_runs(flow_run_id)) == 4


def test_a_node_that_does_not_fit_the_budget_is_left_out() -> None:
    memory = MemoryPrefect()
    flow_run_id = _flow_run(memory)
    many = [_node(f"m{i}", "error") for i in range(200)]
    budget = NodeBudget(FLOW_RESERVE + 100)
    recorded = record(memory, flow_run_id, many, 300.0, budget).count
    assert 0 < recorded < len(many)
    assert recorded * RECORDED_COST <= 100
    assert len(memory.read_task_runs(flow_run_id)) == recorded
    assert budget.left_out == [node.unique_id for node in many[recorded:]]


@pytest.mark.parametrize("seconds, slow", [(300.0, False), (300.5, True)])
def test_a_node_is_slow_only_over_the_threshold(seconds: float, slow: bool) -> None:
    assert exceptional([_node("x", "success", seconds)], 300.0) == ([_node("x", "success", seconds)] if slow else [])


def test_the_view_is_a_parameter_over_the_tenant_setting_and_not_for_the_lean_mode() -> None:
    assert ObservabilitySettings().node_task_runs == "auto"
    assert validate({"node_task_runs": "exceptions"}).node_task_runs == "exceptions"
    with pytest.raises(ParameterError, match="node_task_runs must be left out"):
        validate({"node_task_runs": "exceptions", "per_node_tasks": False})
    with pytest.raises(ParameterError, match="node_task_runs"):
        validate({"node_task_runs": "failures"})
    with pytest.raises(ValidationError, match="slow_node_seconds"):
        ObservabilitySettings(slow_node_seconds=0)


def test_the_recorded_task_runs_stay_under_the_smaller_of_the_two_limits() -> None:
    budget, setting = exception_budget(ObservabilitySettings(logs_events_per_minute=2000, api_requests_per_minute=625))
    assert (budget.per_minute, setting) == (625, "api_requests_per_minute = 625")
    budget, setting = exception_budget(ObservabilitySettings(logs_events_per_minute=400, api_requests_per_minute=625))
    assert (budget.per_minute, setting) == (400, "logs_events_per_minute = 400")


def test_the_summary_says_which_nodes_have_a_task_run_and_which_exceptions_were_left_out() -> None:
    memory = MemoryPrefect()
    flow_run_id = _flow_run(memory)
    many = [_node(f"m{i}", "error") for i in range(200)]
    budget, setting = exception_budget(ObservabilitySettings(logs_events_per_minute=200, api_requests_per_minute=625))
    recorded = record(memory, flow_run_id, many, 300.0, budget).count
    outcome = StepOutcome(1, "dbt build", "build", ["build"], Path("target"), True, nodes=many)
    summary = summarize(
        "dev",
        [outcome],
        success=False,
        left_out=budget.left_out,
        budget=200,
        budget_setting=setting,
        exception_task_runs=recorded,
        slow_node_seconds=300.0,
    )
    text = to_markdown(summary, None)
    assert f"**Task runs:** {recorded} nodes that failed, warned or ran longer than 300 s" in text
    left_out = text.split("## Left out of Prefect", 1)[1]
    assert f"{200 - recorded} of the nodes that failed, warned or were slow got no task run" in left_out
    assert "`[tenant.observability] logs_events_per_minute = 200`" in left_out


def test_a_failure_of_the_api_stops_the_recording_and_is_said() -> None:
    memory = MemoryPrefect()
    memory.set_task_run_state = _refusing  # type: ignore[method-assign]
    result = record(memory, _flow_run(memory), NODES, 300.0, NodeBudget(2000))
    assert (result.count, result.failure) == (0, "Prefect API POST /task_runs/x/set_state answered 503: down")
    outcome = StepOutcome(1, "dbt build", "build", ["build"], Path("target"), True, nodes=NODES)
    summary = summarize(
        "dev",
        [outcome],
        False,
        exception_task_runs=0,
        slow_node_seconds=300.0,
        recording_failure=result.failure,
    )
    assert "Recording the task runs stopped there: Prefect API POST" in to_markdown(summary, None)


def _refusing(task_run_id: UUID, state: object) -> None:
    raise PrefectApiError("Prefect API POST /task_runs/x/set_state answered 503: down")
