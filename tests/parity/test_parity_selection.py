"""Reading a job's building steps with dbt's own parser, and resolving them on one parsed project."""

from __future__ import annotations

from pathlib import Path

import pytest

from parity.selection import parse_step_args, pick_step, selections_from_parameters


def test_multi_step_job_yields_its_building_steps_in_order() -> None:
    params = {
        "steps": ["dbt seed --select tag:daily", 'dbt run -s tag:finance --vars \'{"run_date": "2024-01-01"}\''],
        "generate_docs": True,
        "source_freshness": True,
        "target": "prod",
    }
    steps = selections_from_parameters(params, target="parity")
    assert [(s.command, s.select) for s in steps] == [("seed", ("tag:daily",)), ("run", ("tag:finance",))]
    assert steps[1].vars == '{"run_date": "2024-01-01"}'
    assert pick_step(steps, "run") is steps[1]
    assert pick_step(steps, "build") is steps[1]  # no build step: the last building step


def test_resource_type_flags_narrow_what_a_build_executes() -> None:
    step = parse_step_args(["build", "--select", "a", "b", "--resource-type", "model", "--resource-type", "test"])
    assert step is not None and step.select == ("a", "b")
    assert step.executed_types() == {"model", "test"}
    assert parse_step_args(["docs", "generate"]) is None


@pytest.mark.e2e  # real dbt parses the tenant project
def test_resolver_cache_reuses_the_parse_and_resolves_the_same_nodes(tmp_path: Path) -> None:
    from parity.selection import SelectionResolver, StepSelection

    project = Path(__file__).resolve().parents[2] / "tenants" / "dbt_williamgrant"
    steps = [StepSelection("build", selector="nightly"), StepSelection("build", select=("tag:hourly",))]
    with SelectionResolver(project, cache_dir=tmp_path) as cold:
        first = [cold.resolve(step, "parity") for step in steps]
    saved = list(tmp_path.rglob("partial_parse.msgpack"))
    assert len(saved) == 1, "the parse of the project under target parity is kept in the cache"
    with SelectionResolver(project, cache_dir=tmp_path) as warm:
        second = [warm.resolve(step, "parity") for step in steps]
    assert first == second
    assert all(nodes for nodes in first)
    assert "model.dbt_williamgrant.fct_fx_rates" in first[1] and "model.dbt_williamgrant.fct_fx_rates" not in first[0]
