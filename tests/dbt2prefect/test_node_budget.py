"""The logs + events budget: its setting, which nodes it admits to a task run, and what the summary says."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.app import app
from dbt2prefect.dbt_run import NodeResult
from dbt2prefect.errors import ConfigError
from dbt2prefect.node_budget import FLOW_RESERVE, NODE_COST, START_COST, NodeBudget
from dbt2prefect.summary import RunSummary, to_markdown
from dbt2prefect.tenant import load_tenant, settings_path


def _settings(tmp_path: Path, table: str) -> Path:
    text = settings_path().read_text(encoding="utf-8")
    project = settings_path().parent / "dbt_williamgrant"
    text = text.replace('project_dir = "dbt_williamgrant"', f'project_dir = "{project}"')
    text = text.replace("[tenant.observability]\nlogs_events_per_minute = 2000\n", f"[tenant.observability]\n{table}\n")
    assert table in text, "the tenant file sets the budget"
    settings = tmp_path / "t.toml"
    settings.write_text(text, encoding="utf-8")
    return settings


def test_the_default_budget_is_the_smallest_plans_limit() -> None:
    assert load_tenant().observability.logs_events_per_minute == 2000


def test_a_budget_is_read_from_the_settings(tmp_path: Path) -> None:
    settings = _settings(tmp_path, "logs_events_per_minute = 8000")
    assert load_tenant(settings).observability.logs_events_per_minute == 8000


@pytest.mark.parametrize(
    ("table", "problem"),
    [
        ("logs_events_per_minute = 50", "set at least 200, e.g. your Prefect Cloud plan's Logs + Events limit"),
        ("logs_events_per_minute = -1", "logs_events_per_minute = -1 leaves a run no room"),
        ("logs_events_per_minute = 2000.5", "Input should be a valid integer"),
        ('logs_events_per_minute = "2000"', "Input should be a valid integer"),
        ("logs_per_minute = 2000", "observability.logs_per_minute: Extra inputs are not permitted"),
    ],
)
def test_bad_budgets_are_named(table: str, problem: str, tmp_path: Path) -> None:
    settings = _settings(tmp_path, table)
    with pytest.raises(ConfigError) as info:
        load_tenant(settings)
    message = str(info.value)
    assert problem in message and str(settings) in message
    assert "observability.logs_" in message, "the message names the key"


def test_a_bad_budget_is_bad_input_for_the_cli(tmp_path: Path) -> None:
    settings = _settings(tmp_path, "logs_events_per_minute = 10")
    result = CliRunner().invoke(app, ["run", "--tenant-file", str(settings), "--lean"])
    assert result.exit_code == 2, result.output
    assert "observability.logs_events_per_minute" in result.output and "Traceback" not in result.output


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_nodes_are_admitted_while_their_cost_fits_in_the_minute() -> None:
    clock = Clock()
    budget = NodeBudget(300, clock=clock)
    fits = (300 - FLOW_RESERVE) // NODE_COST
    admitted = [budget.admit(f"model.p.m{i}") for i in range(fits + 5)]
    assert admitted == [True] * fits + [False] * 5
    assert budget.admitted == fits and budget.left_out == [f"model.p.m{i}" for i in range(fits, fits + 5)]


def test_a_running_node_keeps_room_for_what_it_sends_when_it_ends() -> None:
    clock = Clock()
    budget = NodeBudget(FLOW_RESERVE + 2 * NODE_COST, clock=clock)
    assert budget.admit("a") and budget.admit("b")
    budget.finished("a")
    budget.finished("b")
    assert not budget.admit("c"), "both nodes' whole cost is still in the last 60 s"
    clock.now += 59.9
    assert not budget.admit("d")
    clock.now += 0.2
    assert budget.admit("e"), "what a and b sent is older than 60 s"
    budget.finished("never-admitted")
    assert budget.left_out == ["c", "d"]


def test_no_60_second_window_holds_more_than_the_budget() -> None:
    """Nodes of any length starting every 0.5 s: the sends of admitted nodes, by the time they happen."""
    clock = Clock()
    budget = NodeBudget(400, clock=clock)
    sends: list[tuple[float, int]] = []
    running: list[tuple[float, str]] = []
    for step in range(2000):
        clock.now = 1000.0 + step * 0.5
        for end, node in [r for r in running if r[0] <= clock.now]:
            running.remove((end, node))
            budget.finished(node)
            sends.append((clock.now, NODE_COST - START_COST))
        node = f"n{step}"
        if budget.admit(node):
            sends.append((clock.now, START_COST))
            running.append((clock.now + (step % 7) * 13.0, node))
    assert budget.left_out and budget.admitted > 50
    peak = max(sum(c for t, c in sends if start <= t < start + 60) for start, _ in sends)
    assert peak <= 400 - FLOW_RESERVE


def _summary(left_out: list[str]) -> RunSummary:
    nodes = [NodeResult(f"model.p.m{i}", "model", f"m{i}", "success", 0.1, "OK", 0) for i in range(30)]
    return RunSummary("dev", True, [], {"success": 30}, [], [], nodes, 1.0, left_out=left_out, budget=300)


def test_the_summary_says_which_nodes_were_left_out_and_why() -> None:
    text = to_markdown(_summary([f"model.p.m{i}" for i in range(5, 30)]), None)
    section = text.split("## Left out of Prefect", 1)[1]
    assert "25 of 30 nodes ran without a task run" in section
    assert "`[tenant.observability] logs_events_per_minute = 300`" in section
    assert "node table" in section
    assert "`model.p.m5`" in section and "`model.p.m24`" in section and "and 5 more" in section
    assert "`model.p.m25`" not in section


def test_a_summary_without_left_out_nodes_has_no_such_section() -> None:
    assert "Left out" not in to_markdown(_summary([]), None)


def test_a_node_that_builds_a_relation_costs_its_asset_events() -> None:
    from types import SimpleNamespace

    from dbt2prefect.node_budget import node_cost

    def node(kind: str, relation: str | None, upstream: list[str]) -> SimpleNamespace:
        return SimpleNamespace(resource_type=kind, relation_name=relation, depends_on=SimpleNamespace(nodes=upstream))

    assert node_cost(node("test", None, ["model.p.a"])) == NODE_COST
    assert node_cost(node("model", None, ["model.p.a"])) == NODE_COST, "an ephemeral model builds no relation"
    assert node_cost(node("seed", '"db"."s"."seed"', [])) == NODE_COST + 1
    assert node_cost(node("model", '"db"."s"."m"', ["model.p.a", "source.p.raw.b"])) == NODE_COST + 3
