"""The "states" node view records a task run per dbt node from dbt's own NodeStart and NodeFinished events.

The events are dbt's (its event types, turned into the messages its callbacks receive); the task runs are written
through API requests to the in-memory gateway, whose behaviour `tests/dbt2prefect/test_prefect_gateway_contract.py`
checks against a real server. End to end, with state events and with API requests (real dbt, the session's Prefect
server): `tests/flows/test_state_task_runs.py`.
"""

from __future__ import annotations

import threading
from typing import Any
from uuid import UUID, uuid4

import pytest
from dbt.events.types import ConcurrencyLine, NodeFinished, NodeStart
from dbt_common.events.base_types import msg_from_base_event
from prefect.client.schemas.objects import State, TaskRun

from dbt2prefect.exception_task_runs import RECORDED_COST, Recording
from dbt2prefect.node_budget import FLOW_RESERVE, NodeBudget
from dbt2prefect.prefect_gateway import PrefectApiError
from dbt2prefect.prefect_gateway_memory import MemoryPrefect
from dbt2prefect.state_task_runs import RECORDERS, ApiRequests, StateRecorder

FLOW_RUN = uuid4()
STARTED = "2026-12-04T17:00:00.250000"
FINISHED = "2026-12-04T17:00:03.500000"


def _info(unique_id: str, status: str = "started", finished: str = "") -> dict[str, Any]:
    resource_type, _, name = unique_id.split(".")
    return {
        "unique_id": unique_id,
        "node_name": name,
        "resource_type": resource_type,
        "node_status": status,
        "node_started_at": STARTED,
        "node_finished_at": finished,
    }


def _node(recorder: StateRecorder, unique_id: str, status: str, message: str = "") -> None:
    """dbt starting and finishing one node, as its callbacks hear it."""
    recorder(msg_from_base_event(NodeStart(node_info=_info(unique_id))))
    result = {"status": status, "message": message, "execution_time": 3.25}
    recorder(msg_from_base_event(NodeFinished(node_info=_info(unique_id, status, FINISHED), run_result=result)))


def _recorder(
    prefect: MemoryPrefect, budget: NodeBudget | None = None, step: int = 0, threads: int = RECORDERS
) -> StateRecorder:
    """A recorder writing through API requests to `prefect` (the path where state events do not apply)."""
    writer = ApiRequests(prefect, FLOW_RUN)
    writer.threads = threads
    return StateRecorder(writer, budget or NodeBudget(10_000), step, Recording())


def _by_name(prefect: MemoryPrefect) -> dict[str, State[Any]]:
    runs = prefect.read_task_runs(FLOW_RUN)
    return {run.name: run.state for run in runs if run.state is not None}


def test_each_node_gets_a_task_run_ending_in_its_dbt_state() -> None:
    prefect = MemoryPrefect()
    recorder = _recorder(prefect, step=2)
    with recorder.recording():
        recorder(msg_from_base_event(ConcurrencyLine(num_threads=4, target_name="dev", node_count=4)))
        _node(recorder, "model.shop.orders", "success", "OK created table")
        _node(recorder, "model.shop.payments", "error", "Database Error\n  relation missing")
        _node(recorder, "test.shop.not_null_orders_id", "warn", "Got 3 results, configured to warn if != 0")
        _node(recorder, "model.shop.revenue", "skipped", "")
    states = _by_name(prefect)
    assert set(states) == {
        "model orders",
        "model payments",
        "test not_null_orders_id",
        "model revenue",
    }
    assert states["model orders"].type.value == "COMPLETED" and states["model orders"].name == "Completed"
    assert states["model payments"].is_failed()
    assert states["model payments"].message == "model.shop.payments error: Database Error relation missing"
    assert states["test not_null_orders_id"].name == "Warned" and states["test not_null_orders_id"].is_completed()
    assert states["model revenue"].name == "Skipped" and states["model revenue"].is_completed()
    # One task run per node and step.
    keys = sorted(str(run.dynamic_key) for run in prefect.read_task_runs(FLOW_RUN))
    assert keys == [
        "model.shop.orders@step2",
        "model.shop.payments@step2",
        "model.shop.revenue@step2",
        "test.shop.not_null_orders_id@step2",
    ]
    assert recorder._recording == Recording(count=4)


def test_a_node_dbt_has_started_is_running_until_it_finishes() -> None:
    prefect = MemoryPrefect()
    recorder = _recorder(prefect)
    with recorder.recording():
        recorder(msg_from_base_event(NodeStart(node_info=_info("model.shop.orders"))))
    assert _by_name(prefect)["model orders"].is_running(), "no NodeFinished yet: still running"
    assert recorder._recording == Recording(count=0)


def test_nodes_over_the_budget_run_without_a_task_run_and_are_named() -> None:
    prefect = MemoryPrefect()
    budget = NodeBudget(FLOW_RESERVE + 2 * RECORDED_COST)  # room for two nodes in 60 s
    recorder = _recorder(prefect, budget)
    with recorder.recording():
        for name in ("a", "b", "c"):
            _node(recorder, f"model.shop.{name}", "success")
    recorded = len(prefect.read_task_runs(FLOW_RUN))
    assert recorded == 2 == recorder._recording.count
    assert len(budget.left_out) == 1 and budget.left_out[0].startswith("model.shop.")


class _Refusing(MemoryPrefect):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def create_task_run(self, flow_run_id: UUID, name: str, key: str, state: State[Any]) -> TaskRun:
        self.calls += 1
        raise PrefectApiError("Prefect API POST /api/task_runs/ answered 429: Too Many Requests")


def test_a_refused_request_stops_the_recording_and_is_kept_for_the_summary() -> None:
    prefect = _Refusing()
    recorder = _recorder(prefect, threads=1)
    with recorder.recording():
        for name in ("a", "b", "c"):
            _node(recorder, f"model.shop.{name}", "success")
    assert recorder._recording == Recording(
        count=0, failure="Prefect API POST /api/task_runs/ answered 429: Too Many Requests"
    )
    assert prefect.calls == 1, "nothing is requested after the API refused"


class _Slow(MemoryPrefect):
    """The API answers the first request only once `answer` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.asked = threading.Event()
        self.answer = threading.Event()

    def create_task_run(self, flow_run_id: UUID, name: str, key: str, state: State[Any]) -> TaskRun:
        self.asked.set()
        assert self.answer.wait(30)
        return super().create_task_run(flow_run_id, name, key, state)


def test_what_is_still_queued_when_dbt_is_stopped_is_dropped() -> None:
    prefect = _Slow()
    recorder = _recorder(prefect, threads=1)
    with pytest.raises(KeyboardInterrupt), recorder.recording():
        for name in ("a", "b", "c"):
            _node(recorder, f"model.shop.{name}", "success")
        assert prefect.asked.wait(30)  # the first node's request is under way, the rest queued
        threading.Timer(0.2, prefect.answer.set).start()
        raise KeyboardInterrupt  # what stop_dbt_on_sigterm raises on SIGTERM
    assert list(_by_name(prefect)) == ["model a"], "only the request under way was made"


def test_the_summary_counts_the_recorded_task_runs_and_names_the_nodes_left_out() -> None:
    from pathlib import Path

    from dbt2prefect.dbt_run import NodeResult, StepOutcome
    from dbt2prefect.summary import summarize, to_markdown

    nodes = [NodeResult(f"model.shop.{n}", "model", n, "success", 0.1, "OK", 0) for n in ("a", "b", "c")]
    step = StepOutcome(0, "dbt build", "build", [], Path("t"), fails_run=True, success=True, nodes=nodes)
    summary = summarize(
        "dev",
        [step],
        True,
        left_out=["model.shop.c"],
        budget=104,
        budget_setting="logs_events_per_minute = 104",
        state_task_runs=2,
        recording_failure="Prefect API POST /api/task_runs/ answered 429: Too Many Requests",
    )
    text = to_markdown(summary, None)
    assert "**Task runs:** 2 nodes, each recorded from dbt's events, Running first if it ran past 5 s" in text
    assert "Recording the task runs stopped there: Prefect API POST /api/task_runs/ answered 429" in text
    assert (
        "1 of 3 nodes ran without a task run: each is counted as 2 (its state events, or API requests), and more "
        "of them would have gone over `[tenant.observability] logs_events_per_minute = 104`"
    ) in " ".join(text.split())
    assert "Left out: `model.shop.c`" in text
